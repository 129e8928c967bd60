"""The dispatcher: triggers in, the contact policy applied, messages persisted, then sent.

    d = Dispatcher(data_dir, ruleset, lists, channels=None, clock=WallClock())
    d.catch_up(trigger_log)             # what the log holds past the offset the outbox has
    d.start()                           # channels and the sending thread
    d.offer(triggers, source=(trigger_log, offset))   # decided and committed in one transaction
    d.stop(5.0)

`offer` decides each new trigger (control.policy) and commits the decisions to the outbox
(control.outbox) before returning; nothing goes out before it is committed. The sending thread
takes due queued messages per channel, paced by the channel's `rate` (messages a second), marks
them `sending` (committed), then hands them to the channel; results, delivery receipts and MO
replies come back through the Channel interface (notes: dispatch.md) and are applied in the
same thread. Messages whose window closes while they wait are expired.

Crash safety: a message is `sending` in SQLite before a channel sees it. At start, each
`sending` message is resolved: the channel says it sent it (`recover`) → sent; else a channel
that may be offered a message twice (`idempotent`: the file channel, HTTP with its
Idempotency-Key) gets it again; else (SMPP, which has no idempotency key) it is
`failed:unknown_after_crash`: at most once, never a duplicate.
"""
import json
import os
import queue
import signal
import sqlite3
import sys
import threading
import time
from collections import Counter

from touchpoint.probe.logline import write_line
from touchpoint.probe.signals import on_signals

from .channels import Outgoing
from .engine import Trigger
from .outbox import Outbox
from .policy import PENDING, QUEUED, ContactPolicy, Decision, RecordClock, WallClock, message_id, reply_word

NS = 1_000_000_000
BURST_S = 1.0                   # a channel's pacing allows this many seconds of its rate at once
MAX_ROUND = 1000                # messages handed to one channel in one round
INT64 = 1 << 63
SET_ASIDE = "triggers-set-aside.jsonl"
# What a trigger the checker should have stopped raises in the policy or the outbox (a number
# SQLite cannot hold, ...): that trigger is set aside; sqlite3.Error (a full disk) is not its fault.
BAD_TRIGGER = (OverflowError, ValueError, TypeError)
RETRY_S = (5, 30, 120, 600)     # back-off of a message a channel could not take for now


class Pacer:
    """Token bucket: `rate` messages a second (None: no limit), at most BURST_S of them at once."""

    def __init__(self, rate):
        self.rate = rate
        self.tokens = 0.0
        self.at = time.monotonic()

    def allow(self) -> int:
        if self.rate is None:
            return MAX_ROUND
        now = time.monotonic()
        self.tokens = min(self.tokens + (now - self.at) * self.rate, max(self.rate * BURST_S, 1.0))
        self.at = now
        return min(int(self.tokens), MAX_ROUND)

    def spend(self, n: int) -> None:
        if self.rate is not None:
            self.tokens -= n


class Dispatcher:
    def __init__(self, data_dir: str, ruleset, lists=None, channels: dict | None = None, clock=None, warn=None):
        self.data_dir = data_dir
        self.clock = clock or WallClock()
        self.warn = warn or (lambda line: None)
        self.lock = threading.RLock()
        # Held by whoever moves a records clock through a replay (the engine's server, a chunk at a
        # time): the sending loop's rounds wait, so none runs at a time the replay has not reached
        # with the messages of the times before it still unsent.
        self.driving = threading.Lock()
        self.results = queue.SimpleQueue()
        self.stopping = threading.Event()
        self.thread = None
        self.counts = Counter()             # offered, duplicates, mo, mo_optouts, bad results, ...
        self.behind = False                 # an offer failed: catch up from the trigger log
        self.outbox = Outbox(data_dir)
        if isinstance(self.clock, RecordClock):
            self.clock.see(self.outbox.latest_trigger_ns())
        self.policy = ContactPolicy(ruleset, lists, warn=self.warn)
        self.policy.is_queued = lambda mid: self.outbox.state_of(mid) in ("queued", "pending")
        self.policy.restore(self.outbox, self.clock.now_ns())
        self.given = channels is not None   # channels handed in (tests); else opened from policy.yaml
        self.channels = dict(channels or {})
        self.pacers = {}
        self._open_channels()
        self._recover()

    # ---- channels ---------------------------------------------------------------------------------------

    def _wanted(self) -> set:
        s = self.policy.settings
        names = {c.message.channel or s.channel for c in self.policy.campaigns.values()}
        return names | {r[0] for r in self.outbox.db.execute(
            "SELECT DISTINCT channel FROM messages WHERE state IN ('queued', 'sending', 'pending')")}

    def _open_channels(self) -> None:
        settings = self.policy.settings.channels
        if not self.given:
            from .channels import make_channel
            for name in sorted(self._wanted() - set(self.channels) - {""}):
                self.channels[name] = make_channel(name, settings.get(name, {}), self.data_dir, say=self.warn)
        for name in self.channels:
            self.pacers.setdefault(name, Pacer(settings.get(name, {}).get("rate")))
            self.pacers[name].rate = settings.get(name, {}).get("rate")

    def _recover(self) -> None:
        """Resolve the messages a crash left `sending` (module docstring)."""
        by_channel = {}
        for mid, channel, *_ in self.outbox.in_state("sending"):
            by_channel.setdefault(channel, []).append(mid)
        now = self.clock.now_ns()
        with self.lock, self.outbox.tx():
            for name, ids in by_channel.items():
                ch = self.channels.get(name)
                found = ch.recover(ids) if hasattr(ch, "recover") else {}
                sent = [i for i in ids if i in found]
                for i in sent:
                    self.outbox.mark([i], "sent", now_ns=now, sent_ns=now, smsc_id=found[i] or None)
                rest = [i for i in ids if i not in found]
                if ch is not None and getattr(ch, "idempotent", False):
                    again, lost = rest, []
                else:                       # a channel that knows what it never handed on sends that again
                    again = ch.unsent(rest) if hasattr(ch, "unsent") else []
                    lost = list(set(rest) - set(again))
                self.outbox.mark(again, "queued", where="state = 'sending'")
                self.outbox.mark(lost, "failed", "unknown_after_crash", now)
                self.counts["recovered_sent"] += len(sent)
                self.counts["recovered_requeued"] += len(again)
                self.counts["recovered_failed"] += len(lost)
        if by_channel:
            self.warn(f"after a crash: {sum(map(len, by_channel.values()))} messages were being sent: "
                      f"{self.counts['recovered_sent']} sent, {self.counts['recovered_requeued']} to send again, "
                      f"{self.counts['recovered_failed']} failed:unknown_after_crash (at most once)")

    def start(self) -> None:
        for ch in self.channels.values():
            ch.start(self._on_result, self.mo)
        self.thread = threading.Thread(target=self._run, name="dispatcher", daemon=True)
        self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout)
        for ch in self.channels.values():
            ch.stop(timeout)
        self._apply_results()
        self.outbox.close()

    # ---- triggers in ---------------------------------------------------------------------------------

    def offer(self, triggers, source: tuple | None = None) -> Counter:
        """Decide and persist these triggers (a trigger already in the outbox is skipped);
        source (path, offset): the trigger log read up to offset, stored with them. Returns the
        count of each outcome ("queued", "suppressed:holdout", ...)."""
        triggers = [t for t in triggers if self._storable(t)]
        with self.lock:
            try:
                decisions = self._decide(triggers, source)
            except BAD_TRIGGER:             # one of them, so one at a time: the others go on
                decisions = []
                for t in triggers:
                    try:
                        decisions += self._decide([t], None)
                    except BAD_TRIGGER as e:
                        self._set_aside(t, f"{type(e).__name__}: {e}")
                if source is not None and triggers:
                    with self.outbox.tx():
                        self.outbox.set_offset(*source)
        out = Counter()
        for d in decisions:
            out[d.state + (":" + d.reason if d.reason else "")] += 1
        return out

    def _decide(self, triggers: list, source) -> list:
        for t in triggers:
            self.clock.see(t.ts_ns)
        now = self.clock.now_ns()
        ids = [message_id(t.campaign, t.imsi, t.msisdn, t.ts_ns) for t in triggers]
        known = self.outbox.known(ids)
        fresh = {}
        for i, t in zip(ids, triggers):
            if i not in known:
                fresh.setdefault(i, t)
        try:
            decisions = self.policy.decide(fresh.values(), now, list(fresh))
            superseded, self.policy.superseded = self.policy.superseded, []
            with self.outbox.tx():
                self.outbox.insert(decisions, now)
                for mid, *_ in superseded:
                    self.outbox.mark([mid], "suppressed", "arbitration", now, where="state IN ('queued', 'pending')")
                if source is not None:
                    self.outbox.set_offset(*source)
        except Exception:
            self.policy.restore(self.outbox, now)   # the history holds decisions that were not stored
            raise
        self.policy.compact(now)
        self.counts["offered"] += len(triggers)         # counted once decided: a retried batch counts once
        self.counts["duplicates"] += len(triggers) - len(fresh)
        return decisions

    def _storable(self, t) -> bool:
        """A trigger whose numbers fit the outbox (int64); any other is set aside."""
        for name in ("ts_ns", "deadline_ns", "priority", "after_ns"):
            v = getattr(t, name)
            if not isinstance(v, int) or not -INT64 <= v < INT64:
                self._set_aside(t, f"{name} {v!r} is not a 64-bit integer")
                return False
        return True

    def _set_aside(self, t, why: str) -> None:
        """A trigger that cannot be decided stops nothing: it is kept in DATA/triggers-set-aside.jsonl
        with the reason, counted and reported (without the subscriber, which is in the file)."""
        self.counts["set_aside"] += 1
        self.warn(f"a trigger of campaign {t.campaign!r} set aside in {SET_ASIDE}: {why}")
        try:
            with open(os.path.join(self.data_dir, SET_ASIDE), "a", encoding="utf-8") as f:
                f.write(json.dumps({"why": why, "trigger": t.to_json()}, ensure_ascii=False, default=repr) + "\n")
        except OSError as e:
            self.warn(f"{SET_ASIDE}: {e}")

    def offer_logged(self, triggers, path: str, offset: int) -> Counter:
        """offer() for triggers just appended to a log that now ends at offset. When an offer
        failed (the outbox could not be written), the log is read again from the offset the
        outbox has: the triggers wait there, none is skipped."""
        try:
            if self.behind:
                self.catch_up(path)
                return Counter()
            return self.offer(triggers, (path, offset))
        except sqlite3.Error as e:
            self.behind = True
            self.counts["outbox_errors"] += 1
            self.warn(f"outbox {self.outbox.path}: {e}: the triggers wait in {path}")
            return Counter()

    def catch_up(self, path: str, batch: int = 10_000) -> int:
        """Offer what the trigger log holds past the offset stored with the outbox (what a crash
        between writing the log and committing the messages left behind). Returns triggers offered."""
        n = self.follow(path, batch)[0]
        self.behind = False
        return n

    def follow(self, path: str, batch: int = 10_000, offset: int | None = None) -> tuple:
        """Offer the whole lines of the log from offset (default: the stored one) to its end.
        Returns (triggers offered, the offset reached)."""
        if offset is None:
            offset = self.outbox.offset(path)
        try:
            size = os.path.getsize(path)
        except OSError:
            return 0, offset
        if size < offset:                   # a new log under the old name: read it all (ids dedupe)
            self.warn(f"{path} is shorter than the {offset:,} bytes already read: reading it from the start")
            offset = 0
        n = 0
        with open(path, "rb") as f:
            f.seek(offset)
            while True:
                lines = f.readlines(batch * 300)
                whole = lines if not lines or lines[-1].endswith(b"\n") else lines[:-1]
                if not whole:
                    break
                triggers = []
                for number, raw in enumerate(whole):
                    try:
                        triggers.append(trigger_from_json(json.loads(raw)))
                    except (ValueError, TypeError, KeyError) as e:
                        self.counts["bad_triggers"] += 1
                        self.warn(f"{path}: byte {offset + sum(map(len, whole[:number]))}: not a trigger ({e})")
                offset += sum(map(len, whole))
                self.offer(triggers, source=(path, offset))
                n += len(triggers)
                if len(whole) < len(lines):
                    break
        return n, offset

    # ---- the sending thread -------------------------------------------------------------------------

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                with self.driving:
                    busy = self.step()
            except Exception as e:          # noqa: BLE001 - reported; the loop (and the engine) go on
                self.counts["loop_errors"] += 1
                self.warn(f"sending loop: {type(e).__name__}: {e}")
                busy = 0
            if not busy:
                self.stopping.wait(0.02)

    def step(self) -> int:
        """One round: results applied, overdue messages expired, due messages handed to their
        channels. Returns how many were handed over."""
        self._apply_results()
        taken = {}
        with self.lock:
            now = self.clock.now_ns()
            self._expire(now)
            wake = {}                           # campaign -> when its messages may go out
            held = self.policy.paused | {cid for cid, c in self.policy.campaigns.items() if c.status != "active"}
            with self.outbox.tx():
                for name in self.channels:
                    budget = self.pacers[name].allow()
                    rows = self.outbox.due(name, now, budget, held) if budget else []
                    for r in rows:
                        if r[4] not in wake:
                            c = self.policy.campaigns.get(r[4])
                            wake[r[4]] = self.policy.allowed_at(now, c.send_window if c else ())
                    late = [r for r in rows if wake[r[4]] > now]    # quiet hours or its window began to wait
                    if late:
                        self._defer(late, wake, now)
                        rows = [r for r in rows if wake[r[4]] <= now]
                    if rows:
                        self.outbox.sending([r[0] for r in rows])
                        taken[name] = rows
        handed = 0
        for name, rows in taken.items():
            ch, n = self.channels[name], 0
            for mid, msisdn, src, text, campaign, *_ in rows:
                c = self.policy.campaigns.get(campaign)
                try:
                    took = ch.send(Outgoing(mid, msisdn, src, text, campaign, c.message.slides if c else ()))
                except Exception as e:      # noqa: BLE001 - a channel's bug: the message waits, said once a round
                    self.counts["send_errors"] += 1
                    self.warn(f"{name} channel: send failed: {type(e).__name__}: {e}")
                    took = False
                if not took:
                    break
                n += 1
            self.pacers[name].spend(n)
            handed += n
            if n < len(rows):                   # not now: back to the queue, not an attempt
                with self.lock, self.outbox.tx():
                    self.outbox.db.executemany("UPDATE messages SET state = 'queued', attempts = attempts - 1 "
                                               "WHERE id = ? AND state = 'sending'", [(r[0],) for r in rows[n:]])
        return handed

    def live_until(self, now_ns: int) -> None:
        """A replay on the records' clock: before the clock jumps to now_ns (a gap in the
        records), a step at each due time on the way, so a message due in the gap goes out when
        it would have live, not expired for a window that closed while no records came."""
        t = self.clock.now_ns()
        self.step()             # what is due by now first: the walk finds the due times after it
        while True:
            with self.lock:
                t = self.outbox.next_due(t, now_ns)
            if t is None:
                return
            self.clock.see(t)
            self.step()

    def _expire(self, now: int) -> None:
        rows = self.outbox.overdue(now)
        if not rows:
            return
        with self.outbox.tx():          # a pending one expired waiting for an operator: said by `ctl pending`
            for state, reason in ((QUEUED, "window"), (PENDING, "unapproved")):
                self.outbox.mark([r[0] for r in rows if r[4] == state], "expired", reason, now)
        for _mid, msisdn, due, campaign, state in rows:
            if state == QUEUED:
                self.policy.forget(msisdn, due, campaign)

    def _defer(self, rows: list, wake: dict, now: int) -> None:
        for mid, msisdn, _, _, campaign, deadline, due, _ in rows:
            self.policy.forget(msisdn, due, campaign)
            if wake[campaign] > deadline:
                c = self.policy.campaigns.get(campaign)
                why = self.policy.late_reason(c, now, deadline) if c else "quiet_hours"
                self.outbox.mark([mid], "expired", why, now)
            else:
                self.outbox.mark([mid], "queued", due_ns=wake[campaign])
                self.policy.remember(msisdn, wake[campaign], campaign)

    # ---- what channels report -----------------------------------------------------------------------

    def _on_result(self, message_id, state, reason="", smsc_id=None) -> None:
        self.results.put((message_id, state, reason or "", smsc_id))

    def _apply_results(self) -> None:
        got = []
        while True:
            try:
                got.append(self.results.get_nowait())
            except queue.Empty:
                break
        if not got:
            return
        with self.lock:
            now = self.clock.now_ns()
            with self.outbox.tx():
                for mid, state, reason, smsc_id in got:
                    self._result(mid, state, reason, smsc_id, now)

    def _result(self, mid, state, reason, smsc_id, now) -> None:
        row = self.outbox.get(mid, smsc_id)
        if row is None:
            self.counts["results_unknown"] += 1
            self.warn(f"a {state} result for a message not in the outbox (id {mid}, SMSC id {smsc_id})")
            return
        mid, was, msisdn, due, campaign, attempts, deadline = row
        if state == "sent" and was == "sending":
            self.outbox.mark([mid], "sent", now_ns=now, sent_ns=now, smsc_id=smsc_id)
        elif state == "delivered" and was in ("sending", "sent"):
            self.outbox.mark([mid], "delivered", now_ns=now)
        elif state == "failed" and was in ("sending", "sent"):
            self.outbox.mark([mid], "failed", reason or "channel", now)
        elif state == "retry" and was == "sending":
            later = now + RETRY_S[min(attempts, len(RETRY_S)) - 1] * NS if attempts else now
            self.outbox.mark([mid], "queued", reason, due_ns=later)
            self.policy.forget(msisdn, due, campaign)
            self.policy.remember(msisdn, later, campaign)
        else:
            self.counts["results_ignored"] += 1
            return
        self.counts["results_" + state] += 1

    def mo(self, msisdn: str, text: str, national: bool = False, to: str = "") -> None:
        """An MO message (not a receipt) to the address `to` (the SMPP destination, the MM7
        recipient; "": not told): a reply, attributed to the last message sent to the sender from
        that address (Outbox.reply; goals `reply:` count it, control.goals); an opt-out keyword
        also opts the sender out of every campaign. A sender in national format (the SMSC's TON)
        gets policy.yaml's country_code in front: the outbox's numbers are international."""
        self.counts["mo"] += 1
        msisdn = msisdn.strip().lstrip("+")
        if msisdn.startswith("00"):
            msisdn = msisdn[2:]
        elif national and self.policy.settings.country_code:
            msisdn = self.policy.settings.country_code + msisdn
        if not msisdn.isdigit():
            return
        word = reply_word(text)
        with self.lock, self.outbox.tx():
            cid, _ = self.outbox.reply(msisdn, to.strip().lstrip("+"), self.clock.now_ns(),
                                       word if word in self.policy.reply_words else "")
        self.counts["mo_replies" if cid else "mo_unattributed"] += 1
        if word in self.policy.keywords:        # reply_word as policy.keyword compares it
            self.counts["mo_optouts"] += 1
            self.optout_add(msisdn, "*", source="mo")

    # ---- what ctl asks -----------------------------------------------------------------------------

    def reload(self, ruleset) -> None:
        with self.lock:
            horizon = self.policy.horizon_ns()
            self.policy.load(ruleset)
            if self.policy.horizon_ns() > horizon:
                self.policy.restore(self.outbox, self.clock.now_ns())
            before = set(self.channels)
            self._open_channels()
        for name in set(self.channels) - before:
            self.channels[name].start(self._on_result, self.mo)

    def pause(self, campaign: str) -> bool:
        """New triggers are suppressed (campaign_inactive); queued messages wait (and expire at
        their deadline) until resume."""
        with self.lock, self.outbox.tx():
            self.policy.paused.add(campaign)
            return self.outbox.set_paused(campaign, True, time.time_ns())

    def resume(self, campaign: str) -> bool:
        with self.lock, self.outbox.tx():
            self.policy.paused.discard(campaign)
            return self.outbox.set_paused(campaign, False, time.time_ns())

    def overrides(self) -> dict:
        with self.lock:
            return {cid: "paused" for cid in self.policy.paused}

    def optout_add(self, msisdn: str, campaign: str = "*", source: str = "ctl") -> int:
        """Opt out; what is queued or pending for the number (and campaign) is suppressed at once.
        Returns how many messages that stopped."""
        now = self.clock.now_ns()
        with self.lock:
            with self.outbox.tx():
                self.outbox.add_optout(msisdn, campaign, source, time.time_ns())
                rows = self.outbox.db.execute(
                    "SELECT id, due_ns, campaign, state FROM messages "
                    "WHERE msisdn = ? AND state IN ('queued', 'pending')"
                    + (" AND campaign = ?" if campaign != "*" else ""),
                    (msisdn, campaign) if campaign != "*" else (msisdn,),
                ).fetchall()
                self.outbox.mark([r[0] for r in rows], "suppressed", "optout", now)
            self.policy.optouts.add((msisdn, campaign))
            for _, due, cid, state in rows:
                if state == QUEUED:
                    self.policy.forget(msisdn, due, cid)
        return len(rows)

    def optout_remove(self, msisdn: str, campaign: str = "*") -> int:
        with self.lock, self.outbox.tx():
            self.policy.optouts.discard((msisdn, campaign))
            return self.outbox.remove_optout(msisdn, campaign)

    def optout_check(self, msisdn: str) -> list:
        with self.lock:
            rows = [{"campaign": c, "source": s, "at": at} for c, s, at in self.outbox.optout_rows(msisdn)]
            return rows + [{"campaign": "*", "source": f"list {name}", "at": None}
                           for name in self.policy.lists_holding(msisdn)]

    def trail(self, msisdn: str) -> list:
        with self.lock:
            return self.outbox.trail(msisdn)

    def pending(self, campaign: str | None = None, limit: int = 1000) -> dict:
        """The messages waiting for an approval, and those whose window closed while they waited."""
        with self.lock:
            n, last = self.outbox.expired_unapproved(campaign)
            return {"pending": self.outbox.pending(campaign, limit=limit), "expired_unapproved": n,
                    "last_expired_ns": last}

    def approve(self, campaign: str | None = None, id: str | None = None) -> int:
        """Approved pending messages are checked again from the window on, then queued (or
        suppressed / expired with the reason). Returns how many were pending."""
        with self.lock:
            rows = self.outbox.pending(campaign, [id] if id else None)
            if not rows:
                return 0
            now = self.clock.now_ns()
            decisions = self.policy.approve([_decision(r) for r in rows], now)
            with self.outbox.tx():
                for d in decisions:
                    self.outbox.mark([d.id], d.state, d.reason, now, where="state = 'pending'", due_ns=d.due_ns)
            return len(rows)

    def reject(self, campaign: str | None = None, id: str | None = None) -> int:
        with self.lock:
            rows = self.outbox.pending(campaign, [id] if id else None)
            with self.outbox.tx():
                return self.outbox.mark([r["id"] for r in rows], "rejected", "ctl", self.clock.now_ns(),
                                        where="state = 'pending'")

    def campaign_counts(self) -> dict:
        out = {}
        with self.lock:
            for cid, _, state, _, n in self.outbox.counts():
                out.setdefault(cid, Counter())[state] += n
        return {k: dict(v) for k, v in out.items()}

    def status(self) -> dict:
        """Counts per state, per reason, per campaign and per channel (with its health)."""
        with self.lock:
            rows = self.outbox.counts()
            clock_now = self.clock.now_ns()
        states, reasons, campaigns, channels = Counter(), Counter(), {}, {}
        for cid, channel, state, reason, n in rows:
            states[state] += n
            if reason:
                reasons[f"{state}:{reason}"] += n
            campaigns.setdefault(cid, Counter())[state] += n
            if channel:
                channels.setdefault(channel, Counter())[state] += n
        health = {}
        for name, ch in self.channels.items():
            try:
                h = ch.health()
            except Exception as e:          # noqa: BLE001 - a channel's bug shows in status, not as a crash
                h = {"error": f"{type(e).__name__}: {e}"}
            health[name] = {**{f"outbox_{k}": v for k, v in channels.get(name, {}).items()}, **h}
        return {"clock": f"{self.clock.name} {clock_now}", "states": dict(states), "reasons": dict(reasons),
                "campaigns": {k: dict(v) for k, v in sorted(campaigns.items())}, "channels": health,
                "counters": dict(self.counts), "history": {"contacts": len(self.policy.history)}}

    def drain(self, timeout: float) -> bool:
        """Wait (at most timeout seconds) until idle(): the end of a replay."""
        end = time.monotonic() + timeout
        while not self.idle():
            if time.monotonic() > end or self.thread is None or not self.thread.is_alive():
                return False
            time.sleep(0.02)
        return True

    def idle(self) -> bool:
        """Nothing due waits for a channel and nothing is being sent (tests, replays)."""
        with self.lock:
            now = self.clock.now_ns()
            n = self.outbox.db.execute("SELECT count(*) FROM messages WHERE state = 'sending' "
                                       "OR (state = 'queued' AND due_ns <= ?)", (now,)).fetchone()[0]
        return n == 0 and self.results.empty()


def _decision(row: dict) -> Decision:
    t = Trigger(row["campaign"], row["event"], row["trigger_ns"], row["deadline_ns"], row["imsi"], row["msisdn"],
                row["priority"])
    return Decision(row["id"], t, text=row["text"], channel=row["channel"], source=row["source"])


def trigger_from_json(d: dict) -> Trigger:
    """A trigger as the engine sends it (Trigger.to_json); ValueError says what is wrong."""
    if not isinstance(d, dict):
        raise ValueError("not a JSON object")
    ints = {k: d[k] for k in ("ts_ns", "deadline_ns", "priority")}
    strs = {k: d[k] for k in ("campaign", "event", "imsi", "msisdn")}
    for k, v in ints.items():
        if not isinstance(v, int) or isinstance(v, bool):
            raise ValueError(f"{k} is not an integer")
    for k, v in strs.items():
        if not isinstance(v, str):
            raise ValueError(f"{k} is not a string")
    fields = d.get("fields", {})
    if not isinstance(fields, dict):
        raise ValueError("fields is not an object")
    after = d.get("after_ns", 0)
    if not isinstance(after, int) or isinstance(after, bool):
        raise ValueError("after_ns is not an integer")
    return Trigger(strs["campaign"], strs["event"], ints["ts_ns"], ints["deadline_ns"], strs["imsi"], strs["msisdn"],
                   ints["priority"], fields, after)


# --- `touchpoint dispatcher`: the same Dispatcher as its own process -----------------------------------

def serve(rules_dir: str, data_dir: str, log: str | None = None, endpoint: str | None = None, clock=None,
          status_interval: float = 10.0, stop: threading.Event | None = None, err=None,
          token: bytes | None = None) -> int:
    """Run a Dispatcher on the triggers of an engine's log (`log`: followed as it grows, from the
    offset the outbox has: nothing lost across a crash) and/or its PUSH socket (`endpoint`:
    what is in flight in ZeroMQ when this process dies is lost, unless the log is followed too).
    SIGHUP reloads the rules; SIGINT/SIGTERM stop; tcp gives the token. Raises ValueError for rules
    with errors."""
    import zmq
    from zmq.utils.monitor import recv_monitor_message

    from touchpoint.probe.transport import HANDSHAKE_FAILED, handshake_failure, secure

    from .lists import ListStore
    from .rules import load

    err = err or sys.stderr
    say = lambda line: write_line(err, f"touchpoint dispatcher: {line}")
    rs = load(rules_dir)
    if rs.errors:
        raise ValueError("\n".join(map(str, rs.errors)))
    stop = stop or threading.Event()
    reload = threading.Event()
    restore = on_signals({signal.SIGINT: stop.set, signal.SIGTERM: stop.set, signal.SIGHUP: reload.set})
    d = Dispatcher(data_dir, rs, ListStore(data_dir), clock=clock, warn=say)
    d.start()
    ctx = pull = monitor = None
    if endpoint:
        ctx = zmq.Context()
        pull = ctx.socket(zmq.PULL)
        mechanism = secure(pull, endpoint, None, token, server=False)
        monitor = pull.get_monitor_socket(HANDSHAKE_FAILED)     # a wrong token: say so, not silence
        pull.connect(endpoint)
    say("ready: triggers from " + " and ".join(filter(None, (log, endpoint))) + f"; outbox {d.outbox.path}")
    next_status = time.monotonic() + status_interval if status_interval else float("inf")
    try:
        while not stop.is_set():
            got = 0
            if log:
                got += d.follow(log)[0]
            if monitor is not None and monitor.poll(0):
                ev = recv_monitor_message(monitor)
                say(f"{endpoint}: {handshake_failure(ev['event'], ev['value'], mechanism)}")
            if pull is not None and pull.poll(100):
                batch = []
                while len(batch) < 10_000:
                    try:
                        raw = pull.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    try:
                        batch.append(trigger_from_json(json.loads(raw)))
                    except (ValueError, TypeError, KeyError) as e:
                        d.counts["bad_triggers"] += 1
                        say(f"{endpoint}: not a trigger ({e})")
                d.offer(batch)
                got += len(batch)
            elif not got:
                stop.wait(0.1)
            if reload.is_set():
                reload.clear()
                new = load(rules_dir)
                if new.errors:
                    say(f"rules not reloaded: {len(new.errors)} errors, the first: {new.errors[0]}")
                else:
                    d.reload(new)
                    say(f"rules reloaded: {sum(c.status == 'active' for c in new.campaigns)} active campaigns")
            if time.monotonic() >= next_status:
                next_status = time.monotonic() + status_interval
                st = d.status()["states"]
                say(", ".join(f"{k} {v:,}" for k, v in sorted(st.items())) or "no messages yet")
    finally:
        if pull is not None:
            pull.disable_monitor()
            monitor.close(linger=0)
            pull.close(linger=0)
            ctx.term()
        d.stop()
        restore()
    return 0
