"""`touchpoint engine`: one engine shard as a process.

Binds where the probes push (probe.transport.receiving.Receiver: headers, schema version and sequence
gaps checked), runs each batch through control.engine.Engine, appends the triggers to the
trigger log (DATA/triggers.jsonl) and, when asked, sends them on a ZeroMQ PUSH socket for the
dispatcher. Every chunk of records is appended to the journal (control.journal) before it is
processed, and only then acknowledged to its probe, which sends again what was not acknowledged.
The subscriber state is snapshotted to DATA/state/shard-N.npz every `snapshot_interval` seconds
(sooner when the journal reaches JOURNAL_MAX) and at shutdown, with the journal started anew;
at start the snapshot is restored and the journal's chunks run through the engine again, the
triggers already in the log not written twice: a crash loses nothing and changes nothing.
SIGHUP reloads the rules (a directory with errors is refused, the rules in force stay);
SIGINT/SIGTERM stop after the batch at hand. The control socket (control.ctl, `touchpoint ctl`) is
answered from the same loop, between batches. After each batch, the goal events are matched against
the attribution windows (control.goals), and the daily scorecard counters are written at each day's
end of record time (control.health). With `report_every`, `touchpoint report --json` of every
campaign is written to DATA/reports/report-PERIOD.json as each period ends (record time with
`--clock records`, else wall time; periods are whole multiples of it since the epoch, UTC) and,
incomplete, at shutdown.
"""
import contextlib
import errno
import fcntl
import json
import os
import sqlite3
import signal
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import zmq

from touchpoint.probe.record import RECORD_DTYPE
from touchpoint.probe.logline import write_line
from touchpoint.probe.signals import on_signals
from touchpoint.probe.transport import private_ipc, secure
from touchpoint.probe.transport.receiving import Receiver
from touchpoint.probe.transport.wire import WireError

from . import journal
from .contacts import ContactHistory
from .ctl import Commands, ControlServer, Refused, default_endpoint
from .datadir import private
from .dispatcher import Dispatcher
from .engine import SENT_NOW, Engine
from .forwards import ForwardLog
from .goals import Goals
from .health import WATCH, Health
from .policy import make_clock
from .pool import EVENTS as POOL_EVENTS, EventBuffer, PoolError, check_ids, export as export_pool
from .profiles import Days
from .replay import steps as replay_steps
from .schedule import Runs
from .report import ReportError, build as build_report

NAME = "touchpoint engine"
COALESCE = 16384            # records the engine takes at a time, at most (when they are there)
MIN_FREE = 64 << 20             # bytes free on the data directory's disk below which no record is taken
JOURNAL_MAX = 256 << 20     # bytes of journal that make a snapshot due before its interval
SYNC_S = 1.0                # the journal goes to the disk this often (a host crash loses at most this)
STREAMS_KEPT = 256          # probe streams (runs) whose sequence numbers a snapshot keeps


@dataclass
class EngineSettings:
    listen: list
    rules_dir: str
    data_dir: str
    shard: int = 0
    triggers_endpoint: str | None = None
    snapshot_interval: float = 60.0
    status_interval: float = 10.0
    expect_eos: int | None = None          # stop after this many ends of stream (replays, tests)
    capacity: int = 1 << 16
    ctl: str | None = None                  # the control socket (default ipc://DATA/ctl.sock)
    ctl_curve: object = None                # probe.transport.Curve: this engine's key pair for ctl over tcp
    ctl_clients: str | None = None          # directory of the public keys allowed to use ctl
    curve: object = None                    # probe.transport.Curve: this engine's key pair for the probes
    curve_clients: str | None = None        # directory of the probes' public keys allowed in
    token: bytes | None = None              # the secret of tcp sockets without Curve (probe.transport.load_token)
    dispatch: bool = True                   # run the dispatcher in this process (control.dispatcher)
    clock: str = "wall"                     # the dispatcher's now: wall | records
    report_every: int = 0                   # seconds: a report in DATA/reports/ each period (0: none)
    export_dir: str | None = None           # the marketing data pool (control.pool), written every export_every
    export_every: float = 3600.0            # seconds of wall time
    export_ids: str = "clear"               # the pool's identifiers: clear | hashed


class EngineServer:
    def __init__(self, cfg: EngineSettings, load_rules, lists=None, err=None, stop: threading.Event | None = None):
        self.cfg = cfg
        self.load_rules = load_rules        # rules_dir -> (ruleset, errors)
        self.err = err or sys.stderr
        self.stop = stop or threading.Event()
        self.reload = threading.Event()
        ruleset, errors = load_rules(cfg.rules_dir)
        if errors:
            raise ValueError("\n".join(str(e) for e in errors))
        self.ruleset = ruleset
        self._warn_rules(ruleset)
        watch = WATCH if not cfg.export_dir else POOL_EVENTS        # the pool has every scenario event
        self.engine = Engine(ruleset, lists, capacity=cfg.capacity, warn=self.say, watch=watch,
                             days=Days(os.path.join(private(cfg.data_dir), "profiles", f"shard-{cfg.shard}")))
        os.makedirs(os.path.join(private(cfg.data_dir), "state"), exist_ok=True)
        self.lock = _lock(os.path.join(cfg.data_dir, "state", f"shard-{cfg.shard}.lock"), cfg.shard)
        self.snapshot_path = os.path.join(cfg.data_dir, "state", f"shard-{cfg.shard}.npz")
        self.log_path = os.path.join(cfg.data_dir, f"triggers-shard-{cfg.shard}.jsonl")
        self.journal = journal.Journal(os.path.join(cfg.data_dir, "state", f"shard-{cfg.shard}.journal"))
        self.durable = {}                   # (probe_id, shard, epoch) -> the next sequence number journaled
        self.taken = {}                     # the same, of the pending batches
        self.duplicates = 0                 # batches sent again that were here already
        self.carry = np.zeros(0, RECORD_DTYPE)  # --clock records: the records of a minute not yet whole
        self.full_since = 0.0               # monotonic time the disk filled up; 0: there is room
        self.replaying = None               # at start: the lengths of the log's lines the journal's triggers have
        self.log_pos = 0                    # ... and where in the log the replay is
        self.offered_to = 0                 # ... and how far the outbox had offered the log
        self.lost = 0
        self.errors = 0
        self.pending, self.pending_n = [], 0     # batches received, not yet processed
        self.fired = Counter()              # triggers by campaign, since start
        self.rx = None
        self.started = time.monotonic()
        self.dispatcher = Dispatcher(cfg.data_dir, ruleset, lists, clock=make_clock(cfg.clock), warn=self.say) \
            if cfg.dispatch else None
        self.goals = Goals(cfg.data_dir, ruleset, warn=self.say)     # conversions, from the outbox
        self.engine.contacts = ContactHistory(cfg.data_dir)         # audiences' `contacted:`, from it too
        self.health = Health(cfg.data_dir, cfg.shard)                # the daily scorecard counters
        self.forwards = ForwardLog(cfg.data_dir, cfg.shard)          # the tracked seeds' notifications
        self.events = None                  # --export: the scenario events on their way to the pool
        if cfg.export_dir:
            try:
                check_ids(cfg.data_dir, cfg.export_dir, cfg.export_ids)
            except PoolError as e:
                raise Unusable(f"--export: {e}") from None
            self.events = EventBuffer(cfg.data_dir, cfg.export_dir, cfg.shard, cfg.export_ids)
            self.events.configure(ruleset)
        self.next_export = time.monotonic() + cfg.export_every
        self.events_retry = 0.0             # a pool that refused the events: not tried again before this
        self.report_period = None           # --report-every: the period the clock is in
        self.runs = Runs()                  # the scheduled campaigns' last runs (control.schedule)
        self.next_run_check = 0.0

    def campaigns(self) -> dict:
        """Every campaign of the rules in force, whatever its status, by id."""
        return {c.id: c for c in self.ruleset.campaigns}

    def say(self, line: str) -> None:
        write_line(self.err, f"{NAME} {self.cfg.shard}: {line}")

    def run(self, on_ready=None) -> int:
        restore = self._signals()
        try:
            return self._run(on_ready)
        except OSError as e:                    # a write the full disk refused past the checks
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            self.say(f"stopped: {e.filename or self.cfg.data_dir}: {e.strerror}; the journal and the last snapshot "
                     f"hold what was acknowledged: start again when there is room")
            return 1
        finally:
            restore()

    def _run(self, on_ready) -> int:
        cfg = self.cfg
        meta = {}
        if os.path.exists(self.snapshot_path):
            meta, arrays = self.engine.restore(self.snapshot_path)
            self.say(f"restored {self.engine.state.count:,} subscribers from {self.snapshot_path}")
            self.health.load(arrays)
            self.runs = Runs(meta.get("schedule"))
            if self.events is not None:
                self.events.load(arrays)
        if self.events is not None and (gone := self.events.discard_after(meta.get("journal", 0))):
            self.say(f"removed {gone} event files of {cfg.export_dir} no snapshot holds (the journal makes them again)")
        self.durable = {tuple(k): n for *k, n in meta.get("streams", [])}
        generation = meta.get("journal", 0)
        found, chunks, whole = journal.read(self.journal.path)
        if found != generation:         # none, or one the snapshot holds already
            chunks, whole = [], 0
        rx, push, ctl = self._open()
        try:
            with open(self.log_path, "a", encoding="utf-8") as log:
                self.out = (log, push)          # for ctl send
                if self.dispatcher is not None:     # sending as it would have been, the replay included
                    self.dispatcher.start()
                if chunks:
                    self._replay(chunks, meta.get("log_bytes", 0), log, push)
                self.journal.open(generation, whole)
                rx.restore((*k, n) for k, n in self.durable.items())
                if self.dispatcher is not None:     # what a crash left in the log past the outbox's offset
                    self.dispatcher.catch_up(self.log_path)
                self.say(f"security: records {rx.security()}, ctl {ctl.security()}")
                self.say("listening on " + ", ".join(rx.endpoints) + f"; triggers to {self.log_path}; "
                         f"ctl on {ctl.endpoint}")
                if on_ready:
                    on_ready(rx)
                self._loop(rx, ctl, log, push)
                self._flush(log, push)
                self._process(self.carry[:0], log, push, whole=True)
                if cfg.expect_eos:
                    self._emit(self.engine.finish(), log, push)
                    self.goals.observe(self.engine.goal_hits, self.engine.state.clock_ns)
        finally:
            self._close(rx, ctl, push)
        self._status(final=True)
        return 1 if self.lost or self.errors else 0

    def _replay(self, chunks, log_bytes: int, log, push) -> None:
        """The journal's chunks through the engine again, as they went the first time. Their
        triggers already in the log (past log_bytes, where the snapshot left it) are not written
        again, and those the outbox had taken not offered again."""
        self.replaying = self._logged_since(log_bytes)
        self.log_pos = log_bytes
        self.offered_to = self.dispatcher.outbox.offset(self.log_path) if self.dispatcher is not None else 0
        n = 0
        for records, marks in chunks:
            self._process(records, log, push)
            for m in marks:
                key = (int(m["probe_id"]), int(m["shard"]), int(m["epoch"]))
                self.durable[key] = max(self.durable.get(key, 0), int(m["next_seq"]))
            n += len(records)
        if self.replaying:
            self.say(f"{self.log_path} has {len(self.replaying)} triggers more than the journal's records gave "
                     f"(the rules or lists changed since?): kept")
        self.replaying = None
        self.say(f"replayed {n:,} records of {len(chunks):,} chunks journaled since the snapshot")

    def _logged_since(self, start: int) -> deque:
        """The byte lengths of the log's whole lines past start; a line a crash cut short is cut off."""
        try:
            with open(self.log_path, "rb+") as f:
                f.seek(start)
                tail = f.read()
                whole = tail.rfind(b"\n") + 1
                if whole < len(tail):
                    f.truncate(start + whole)
        except FileNotFoundError:
            return deque()
        return deque(len(line) for line in tail[:whole].splitlines(keepends=True))

    def _open(self):
        """The record receiver, the triggers socket (if any) and the control socket."""
        cfg = self.cfg
        try:
            rx = Receiver(cfg.listen, curve=cfg.curve, clients=cfg.curve_clients, acks=False, token=cfg.token)
        except ValueError as e:
            raise Unusable(f"--listen: {e}") from None
        push = None
        try:
            if cfg.triggers_endpoint:
                push = rx.ctx.socket(zmq.PUSH)
                push.setsockopt(zmq.SNDHWM, 100_000)
                try:
                    secure(push, cfg.triggers_endpoint, None, cfg.token, server=True)
                    push.bind(cfg.triggers_endpoint)
                except (zmq.ZMQError, ValueError) as e:
                    raise Unusable(f"--triggers: cannot bind {cfg.triggers_endpoint}: {e}") from None
                private_ipc(push.last_endpoint.decode())
            ctl = ControlServer(cfg.ctl or default_endpoint(cfg.data_dir, cfg.shard), Commands(self),
                                curve=cfg.ctl_curve, clients=cfg.ctl_clients, token=cfg.token, say=self.say)
        except (Unusable, ValueError) as e:    # ctl.CtlError is a ValueError
            if push is not None:
                push.close(linger=0)
            rx.close()
            raise e if isinstance(e, Unusable) else Unusable(f"--ctl: {e}") from None
        rx.poller.register(ctl.sock, zmq.POLLIN)        # a request wakes the loop as a batch does
        self.rx = rx
        return rx, push, ctl

    def _loop(self, rx, ctl, log, push) -> None:
        """Batches in until stopped (or, replaying, every probe's end of stream)."""
        cfg = self.cfg
        eos = 0
        next_snap = time.monotonic() + cfg.snapshot_interval
        next_sync = time.monotonic() + SYNC_S
        next_status = time.monotonic() + cfg.status_interval if cfg.status_interval else float("inf")
        while not self.stop.is_set():
            ctl.serve()                         # at the top: after the idle flush, so replies are current
            if self.reload.is_set():
                self.reload.clear()
                self._reload()
            if not self._room(log, push):
                self.stop.wait(0.5)
                continue
            try:
                got = rx.recv(100)
            except WireError as e:
                self.errors += 1
                self.say(str(e))
                continue
            now = time.monotonic()
            if self.events is not None and now >= self.next_export:
                with contextlib.suppress(Refused):      # said; the next export tries again
                    self._export()
                next_snap = now + cfg.snapshot_interval
            elif now >= next_snap or self.journal.bytes > JOURNAL_MAX or self._events_due(now):
                self._snapshot()
                next_snap = now + cfg.snapshot_interval
            if now >= next_sync:
                self.journal.sync()
                next_sync = now + SYNC_S
            if now >= next_status:
                self._status()
                next_status = now + cfg.status_interval
            if cfg.clock != "records":
                self._report_due(time.time_ns())
                if now >= self.next_run_check:
                    self.next_run_check = now + 1.0
                    self._flush(log, push)          # a run sees what has come
                    if self._scheduled(time.time_ns(), log, push):
                        self._snapshot()            # the run made, and the journal after it: a restart
                                                    # neither makes it again nor meets its triggers
            if got is None:
                self._flush(log, push)          # idle: what has come is processed
                continue
            st = got.stream
            if got.lost:
                self.lost += got.lost
                self.say(f"probe {st.probe_id} shard {st.shard}: {got.lost} batches lost "
                         f"(sequence {got.header.seq - got.lost} to {got.header.seq - 1})")
            if got.late:                        # sent again after a reconnection: here already
                self.duplicates += 1
                rx.ack(st, self.durable.get((st.probe_id, st.shard, st.epoch), 0))
                continue
            if got.end_of_stream:
                self._flush_all(ctl, log, push)     # what came before it is journaled and acknowledged first
                if self.pending:                # stopped while the disk was full: not ended, the probe keeps it
                    return
                self._process(self.carry[:0], log, push, whole=True)
                rx.end(st)
                eos += 1
                if cfg.expect_eos and eos >= cfg.expect_eos:
                    return
                continue
            self.taken[(st.probe_id, st.shard, st.epoch)] = got.header.seq + 1
            self._take(got.records, log, push)

    def _room(self, log, push) -> bool:
        """Whether there is room on the disk to take records. Below MIN_FREE, or once a write found
        the disk full, none is taken, so none is acknowledged: the probes keep them (a lossless one
        waits, another drops the oldest, counted) until twice MIN_FREE is free and what was taken
        is in the journal."""
        free = self._free()
        if not self.full_since:
            if free >= MIN_FREE:
                return True
            self._full(f"{free >> 20} MB free, below {MIN_FREE >> 20} MB")
            return False
        if free < 2 * MIN_FREE:
            return False
        self._flush(log, push)
        if self.pending:                        # full again
            return False
        self.say(f"room again on {self.cfg.data_dir} ({free >> 20} MB free): taking records again, "
                 f"{time.monotonic() - self.full_since:.0f} s after the disk filled up")
        self.full_since = 0.0
        return True

    def _free(self) -> int:
        try:
            st = os.statvfs(self.cfg.data_dir)
        except OSError:
            return MIN_FREE << 1                # nothing to tell: the writes will
        return st.f_bavail * st.f_frsize

    def _full(self, why: str) -> None:
        if not self.full_since:
            self.full_since = time.monotonic()
            self.say(f"the disk of {self.cfg.data_dir} is full ({why}): taking no records, the probes keep them, "
                     f"until there is room")

    def _flush_all(self, ctl, log, push) -> None:
        """What was taken, into the journal and processed, waiting for room if need be."""
        self._flush(log, push)
        while self.pending and not self.stop.is_set():
            ctl.serve()
            self.stop.wait(0.5)
            self._room(log, push)

    def _close(self, rx, ctl, push) -> None:
        """The last snapshot and health, the sockets, the dispatcher, the goals and the period's report."""
        cfg = self.cfg
        self._snapshot(export=self.events is not None)
        self.journal.close()
        self.health.write(self.engine, complete=False)
        if push is not None:
            push.close(linger=1000)
        rx.poller.unregister(ctl.sock)
        ctl.close()
        rx.close()
        if self.dispatcher is not None:
            if cfg.expect_eos and not self.stop.is_set():
                self.dispatcher.drain(30.0)         # a replay's end: what is due goes out first
            self.dispatcher.stop()
        self.goals.observe([], self.engine.state.clock_ns)      # what was sent last opens its windows
        self.goals.close()
        if self.events is not None:
            with contextlib.suppress(Refused):  # the last snapshot wrote the events: the rest, as they end
                self._export(snapshot=False)
        self.lock.close()
        if self.report_period is not None:
            self._write_report(self.report_period)              # the period at hand, incomplete

    def _export(self, snapshot: bool = True) -> dict:
        """--export: a snapshot that writes the events to the pool, then what the data directory
        holds up to it (control.pool). Returns the rows written; a failure is said (and raised as
        ctl.Refused for `ctl export`), and the next export tries again."""
        if snapshot:
            self._snapshot(export=True)
        self.next_export = time.monotonic() + self.cfg.export_every
        try:
            n = export_pool(self.cfg.data_dir, self.cfg.export_dir, self.ruleset, only=[self.cfg.shard],
                            ids=self.cfg.export_ids, warn=self.say)
        except (PoolError, OSError, sqlite3.Error) as e:
            self.say(f"export to {self.cfg.export_dir}: {e}")
            raise Refused(f"export to {self.cfg.export_dir}: {e}") from None
        self.say(f"exported to {self.cfg.export_dir}: events {self.events.written:,} in all, "
                 + ", ".join(f"{k} {v:,}" for k, v in n.items()))
        return {"pool": self.cfg.export_dir, "events": self.events.written, **n}

    def _events_due(self, now: float) -> bool:
        """Many events kept: a snapshot writes them (a pool that just refused them waits a while)."""
        return self.events is not None and self.events.full and now >= self.events_retry

    def _write_events(self, generation: int) -> bool:
        """The events kept, into the pool before the snapshot of `generation`; a pool that cannot
        be written keeps none of them (the snapshot does, for the next export)."""
        try:
            self.events.write(generation, self.ruleset.places)
            return True
        except (OSError, PoolError) as e:
            with contextlib.suppress(OSError):      # a file half written would be this generation's for good
                self.events.discard_after(generation - 1)
            self.events_retry = time.monotonic() + self.cfg.snapshot_interval
            self.say(f"export to {self.cfg.export_dir}: the events not written ({e}): kept for the next export"
                     + (f"; {self.events.dropped:,} of the oldest let go" if self.events.dropped else ""))
            return False

    def _snapshot(self, export: bool = False) -> None:
        """The state, the health counters, the trigger log's length and the probe streams' sequence
        numbers, then an empty journal of the next generation (a crash between the two: the
        journal's older generation tells it is in the snapshot). With --export, the scenario events
        since they were last written ride in the snapshot, or, at an export (or when they are
        many), go to the pool just before it, named by its generation (control.pool)."""
        generation = (self.journal.generation or 0) + 1
        streams = [[*k, n] for k, n in list(self.durable.items())[-STREAMS_KEPT:]]
        log_bytes = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        arrays, written = self.health.arrays(), False
        try:
            if self.events is not None:
                written = (export or self._events_due(time.monotonic())) and self._write_events(generation)
                arrays.update(self.events.arrays(written))
            self.engine.snapshot(self.snapshot_path, {"journal": generation, "log_bytes": log_bytes,
                                                      "streams": streams, "schedule": self.runs.last}, arrays)
        except OSError as e:                    # the last snapshot and the journal still cover it all
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            self._full(f"the snapshot could not be written: {e.strerror}")
            return
        if written:
            self.events.clear()
        self.journal.start(generation)
        if len(self.carry):                 # taken, not yet processed: the new journal's first chunk
            self.journal.append(self.carry, np.zeros(0, journal.MARK))

    def _take(self, records, log, push) -> None:
        """Batches are gathered up to COALESCE records before the engine runs: matching costs
        per batch as well as per record, and the probes' batches are small when traffic is."""
        self.pending.append(records)
        self.pending_n += len(records)
        if self.pending_n >= COALESCE:
            self._flush(log, push)

    def _flush(self, log, push) -> None:
        if not self.pending:
            return
        records = self.pending[0] if len(self.pending) == 1 else np.concatenate(self.pending)
        try:
            self.journal.append(records, np.array([(*k, n) for k, n in self.taken.items()], journal.MARK))
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            self._full(e.strerror)
            return                              # kept, neither acknowledged nor processed
        self.pending, self.pending_n = [], 0
        taken, self.taken = self.taken, {}
        self.durable.update(taken)
        for key, n in taken.items():
            st = self.rx.streams.get(key)
            if st is not None:
                self.rx.ack(st, n)
        self._process(records, log, push)

    def _process(self, records, log, push, whole: bool = False) -> None:
        """A chunk of records through the health counters, the engine, the goals and the dispatcher.
        Replaying on the records' clock, the dispatcher lives through the records' time a minute
        at a time, deciding and sending as it would have live (one batch of a fast replay may span
        hours, more than a campaign's window): records are taken a whole step at a time
        (control.replay; the last one waits for the next chunk, unless `whole`), so what it decides
        does not depend on where chunks were cut, and a journal replayed after a crash decides the
        same."""
        replay = self.dispatcher is not None and self.dispatcher.clock.name == "records"
        steps = [records]
        if replay:
            records = np.concatenate([self.carry, records]) if len(self.carry) else records
            steps, self.carry = replay_steps(records, self.engine.state.clock_ns, whole)
            with self.dispatcher.driving:
                self._parts(steps, log, push, replay)
        else:
            self._parts(steps, log, push, replay)

    def _parts(self, steps, log, push, replay: bool) -> None:
        for part in (p for step in steps for p in self.health.split(step) if len(p)):     # days end between parts
            if self.cfg.clock == "records":         # the report of a period is of what came before its end
                self._report_due(int(part["ts_ns"].max()))
            if self.cfg.clock == "records":         # a run at 12:00 sees the records before 12:00
                self._scheduled(max(self.engine.state.clock_ns, int(part["ts_ns"].min())), log, push)
            self.health.begin(part, self.engine)
            if replay:
                self.dispatcher.live_until(int(part["ts_ns"].max()))
            self._emit(self.engine.process(part), log, push)
            if self.events is not None:
                self.events.add(self.engine.last_events, self.engine.state.rows)
            reached = self.forwards.observe(self.engine.campaigns, part, self.engine.last_events,
                                            self.engine.state.rows)
            self.health.count(part, self.engine.last_events, self.engine.last_services)
            self.goals.observe(self.engine.goal_hits, self.engine.state.clock_ns, reached)
            if self.dispatcher is not None:
                self.dispatcher.clock.see(self.engine.state.clock_ns)   # the records clock moves with records
                if replay:
                    self.dispatcher.step()

    def _scheduled(self, now_ns: int, log, push) -> int:
        """The scheduled campaigns' runs due by now_ns: each to its audience. On the records'
        clock, a journal replayed after a crash makes them again where they were made, and their
        triggers already in the log are not written twice; on the wall clock, the snapshot taken
        after a run keeps it made, and a run made again (a crash before that snapshot) gives the
        same message ids, which the outbox takes once. Returns the runs made."""
        due = self.runs.due(self.engine.campaigns, self.ruleset.policy.tz, now_ns)
        missed = {}
        for cid, t in self.runs.missed:         # a replay's gap of weeks: a line a campaign, not a run
            missed.setdefault(cid, []).append(_local(t, self.ruleset.policy.tz))
        for cid, runs in missed.items():
            self.say(f"{cid}: the run of {runs[0]} is past its window: not made" if len(runs) == 1 else
                     f"{cid}: {len(runs):,} runs, {runs[0]} to {runs[-1]}, are past their window: not made")
        self.runs.missed = []
        for c, t in due:
            triggers = self.engine.scheduled(c, t)
            self.say(f"{c.id}: the run of {_local(t, self.ruleset.policy.tz)}: {len(triggers):,} in the audience")
            self.engine.triggers += len(triggers)
            self._emit(triggers, log, push)
        return len(due)

    def send_now(self, c, limit: int | None = None, dry_run: bool = False) -> dict:
        """`ctl send`: campaign c to its audience now (at most `limit` of it), through the contact
        policy, as a scheduled run is. Its triggers have the time of the send: a second send is
        other messages, which the campaign's cooldown holds back if it has one."""
        log, push = self.out
        self._flush(log, push)                  # the audience of what has come
        now = self.engine.state.clock_ns if self.cfg.clock == "records" else time.time_ns()
        steps = self.engine.audience(c)
        triggers = self.engine.scheduled(c, now, limit, SENT_NOW)
        out = {"campaign": c.id, "at_ns": now, "dry_run": dry_run,
               "steps": [{"what": w, "subscribers": n} for w, n in steps], "triggers": len(triggers)}
        if not dry_run and len(triggers):
            self.say(f"ctl: campaign {c.id} sent now to {len(triggers):,} subscribers")
            self.engine.triggers += len(triggers)
            out["outcomes"] = dict(self._emit(triggers, log, push) or {})
            self._snapshot()            # a journal replayed after a crash starts after the send's triggers
        return out

    def _report_due(self, now_ns: int) -> None:
        """--report-every: when `now_ns` is in a later period, the report of the one before."""
        if not self.cfg.report_every:
            return
        period = now_ns // (self.cfg.report_every * 10**9)
        if self.report_period is not None and period > self.report_period:
            self._write_report(self.report_period)
        if self.report_period is None or period > self.report_period:
            self.report_period = period

    def _write_report(self, period: int) -> None:
        """DATA/reports/report-<the period's start, UTC>.json, replaced whole (written beside, then
        renamed): a reader never sees half of one. Nothing to report yet is no file."""
        every = self.cfg.report_every
        start = datetime.fromtimestamp(period * every, timezone.utc)
        name = start.strftime("%Y-%m-%d" if every % 86400 == 0 else "%Y-%m-%dT%H%M%S")
        path = os.path.join(self.cfg.data_dir, "reports", f"report-{name}.json")
        try:
            rep = build_report(self.cfg.data_dir, self.cfg.rules_dir)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path + ".tmp", "w", encoding="utf-8") as f:
                json.dump(rep, f, ensure_ascii=False, indent=1)
            os.replace(path + ".tmp", path)
        except ReportError:
            return
        except (OSError, sqlite3.Error) as e:      # the engine goes on; the next period tries again
            self.say(f"report not written to {path}: {e}")

    def _emit(self, triggers, log, push) -> Counter | None:
        """Triggers to the log, the dispatcher (its outcomes returned) and the triggers socket."""
        if not triggers:
            return None
        triggers = list(triggers)
        self.fired.update(t.campaign for t in triggers)
        lines = [json.dumps(t.to_json(), ensure_ascii=False) for t in triggers]
        logged = 0
        if self.replaying is not None:      # at start: the first of them may be in the log already
            logged = min(len(lines), len(self.replaying))
            for _ in range(logged):
                self.log_pos += self.replaying.popleft()
        if logged < len(lines):
            log.write("\n".join(lines[logged:]) + "\n")
            log.flush()
        end = log.tell() if logged < len(lines) or self.replaying is None else self.log_pos
        outcomes = None
        if self.dispatcher is not None and (self.replaying is None or end > self.offered_to):
            outcomes = self.dispatcher.offer_logged(triggers, self.log_path, end)
        if push is not None:
            for line in lines:
                try:
                    push.send_string(line, zmq.NOBLOCK)
                except zmq.Again:
                    pass                    # the log has it; the dispatcher catches up from there
        return outcomes

    def _reload(self) -> None:
        self.reload_rules()

    def reload_rules(self) -> tuple:
        """SIGHUP and `ctl reload`: re-read the lists and the rules. Returns (errors, summary); with
        errors the rules in force stay."""
        changed = []
        if self.engine.lists is not None:
            changed = self.engine.lists.reload()
            if changed:
                self.say(f"lists reloaded: {', '.join(changed)}")
            self.engine.missing_lists.clear()
        ruleset, errors = self.load_rules(self.cfg.rules_dir)
        if errors:
            self.say(f"rules not reloaded: {len(errors)} errors, the first: {errors[0]}")
            return [str(e) for e in errors], None
        self.ruleset = ruleset
        self._warn_rules(ruleset)
        self.engine.load(ruleset)
        self.goals.reload(ruleset)
        if self.events is not None:
            self.events.configure(ruleset)
        if self.dispatcher is not None:
            self.dispatcher.reload(ruleset)
        active = sum(c.status == 'active' for c in ruleset.campaigns)
        self.say(f"rules reloaded: {active} active campaigns")
        return [], {"campaigns": len(ruleset.campaigns), "active": active, "lists_changed": changed}

    def _warn_rules(self, ruleset) -> None:
        for w in ruleset.warnings:
            self.say(f"rules: {w}")

    def _status(self, final: bool = False) -> None:
        e = self.engine
        m = e.memory()
        self.say(("done: " if final else "") + f"{e.records:,} records, {m['subscribers']:,} subscribers "
                 f"({m['allocated_bytes'] / 2**20:.1f} MB of state), {e.triggers:,} triggers, "
                 f"{self.lost:,} batches lost")

    def _signals(self):
        return on_signals({signal.SIGINT: self.stop.set, signal.SIGTERM: self.stop.set,
                           signal.SIGHUP: self.reload.set})


class DataInUse(Exception):
    """Another engine runs on this data directory and shard."""


class Unusable(Exception):
    """An endpoint the engine cannot bind (taken, malformed, no token): the message says which."""


def _local(ts_ns: int, tz) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, tz).strftime("%Y-%m-%d %H:%M %Z")


def _lock(path: str, shard: int):
    """The shard's lock, held while the engine lives: two engines on one --data and shard would
    each overwrite the other's snapshot, journal and log."""
    f = open(path, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        pid = f.read().strip()
        f.close()
        raise DataInUse(f"another engine (pid {pid or '?'}) runs on {os.path.dirname(os.path.dirname(path))} "
                        f"for shard {shard}: give this one its own --data or --shard") from None
    f.truncate(0)
    f.write(str(os.getpid()))
    f.flush()
    return f
