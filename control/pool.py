"""The marketing data pool: what the engine found, as Parquet files that DuckDB and pyarrow read
without touchpoint (docs/pool.md). Raw signaling is never in it: no record, no message text.

    POOL/events/day=2026-11-07/shard-0-ID-g00000003.parquet     scenario events (engine --export)
    POOL/triggers/day=2026-11-07/shard-0-ID-b000000000000.parquet   campaign triggers
    POOL/outcomes/day=2026-11-07/outbox-ID.parquet              every message: sent, delivered, replied, converted
    POOL/profiles/day=2026-11-07/shard-0-ID.parquet             each subscriber's day: its counts
    POOL/areas/day=2026-11-07/shard-0-ID.parquet                each subscriber's named areas that day
    POOL/_export/ID.json                                        how far each source is in the pool

ID names the data directory (DATA/pool-id, made once): a data directory started afresh never
takes another's files for its own. Each row is in the pool once, whatever crashes and restarts
come between: a file is written beside and renamed (a reader never sees half of one), and named
for what it holds, so that what is written again after a crash replaces its earlier self:

- events: the engine (EventBuffer) keeps the scenario events since it last wrote them in memory
  and in its snapshot, and writes them when it exports, just before the snapshot that drops them,
  named by that snapshot's journal generation. A crash before the snapshot is written: the
  restart removes the files of generations no snapshot holds, and makes the same events again
  from the journal;
- triggers: the trigger log from where the last export stopped up to where the last snapshot
  left it (the lines past it may be cut at a restart), named by that byte offset;
- outcomes: a file a day (UTC, of the trigger) of all its messages, written again at each export
  while they can still change (the day within the longest send or attribution window of the
  newest trigger, and SETTLE_NS more), and when a reply comes to one of them;
- profiles and areas: a file a profile day (the policy's time zone) and shard, from the day's
  counts the engine keeps (control.profiles); the day in progress, from the snapshot, as
  `complete` false, replaced when it is over.

Identifiers are the engine's, IMSI and MSISDN in clear, unless the export is made with
ids="hashed": then each is HMAC-SHA256 with the data directory's key (DATA/pool.key, made once),
its first 16 hex digits, the same in every table and every export; a trigger's fields (which may
hold a forwarded-to number) are left out.
"""
import fcntl
import glob
import hashlib
import hmac
import json
import os
import re
import secrets
import sqlite3
from datetime import date, datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from touchpoint.probe.record import pack, unpack
from touchpoint.probe.transport import write_once

from ._state import EVENT_DTYPE

from .datadir import private
from .events import Event
from .fields import RATS, SEGMENTS, SS_CODES
from .profiles import AREA_DAY_DTYPE, DAY_FILE, SERIES, day_areas

VERSION = 1                         # the pool's schema (docs/pool.md): a column of every row
NS = 10**9
DAY_NS = 86400 * NS
EVENTS_MAX = 1 << 20                # events kept before a snapshot writes them, export due or not
EVENTS_KEPT = 8 * EVENTS_MAX        # while the pool cannot be written: the oldest beyond it go, counted
SETTLE_NS = 2 * DAY_NS              # outcomes are written again this long past their last window
IDS = ("clear", "hashed")
# The scenario events the pool has: all but `record` (every record: raw signaling). A call attempt
# (`hotline_call`) only to a hotline of places.yaml or a number a campaign's trigger names.
EVENTS = tuple(e.label for e in Event if e != Event.RECORD)

# The engine's events as the pool keeps them until written: the state's event row (control._state
# EVENT_DTYPE, copied whole) and the subscriber's identities after it.
EVENT_ROW = np.dtype(EVENT_DTYPE.descr + [("imsi", "<u8"), ("msisdn", "<u8")])


class PoolError(Exception):
    """The pool cannot be written: the message says what and where."""


TS = pa.timestamp("ns", tz="UTC")
_ID = [("imsi", pa.string()), ("msisdn", pa.string())]
# The tables' schemas (docs/pool.md): every file of a table has its table's, null columns included.
SCHEMAS = {name: pa.schema([("version", pa.int16()), *fields]) for name, fields in {
    "events": [("shard", pa.int16()), ("ts", TS), ("event", pa.string()), *_ID, ("region", pa.string()),
               ("other_region", pa.string()), ("area", pa.string()), ("minutes", pa.int32()), ("tac", pa.string()),
               ("old_tac", pa.string()), ("seconds", pa.int64()), ("rat", pa.string()), ("from_rat", pa.string()),
               ("ss_code", pa.string()), ("segment", pa.string()), ("flag", pa.bool_()), ("number", pa.string())],
    "triggers": [("shard", pa.int16()), ("ts", TS), ("campaign", pa.string()), ("event", pa.string()), *_ID,
                 ("deadline", TS), ("not_before", TS), ("priority", pa.int16()), ("fields", pa.string())],
    "outcomes": [("message", pa.string()), ("campaign", pa.string()), ("event", pa.string()), ("channel", pa.string()),
                 *_ID, ("held_out", pa.bool_()), ("state", pa.string()), ("reason", pa.string()),
                 ("priority", pa.int16()), ("trigger_ts", TS), ("due_ts", TS), ("sent_ts", TS), ("done_ts", TS),
                 ("delivered", pa.bool_()), ("replied_ts", TS), ("reply", pa.string()), ("window_start", TS),
                 ("window_end", TS), ("converted_ts", TS)],
    "profiles": [("shard", pa.int16()), ("complete", pa.bool_()), *_ID, ("tac", pa.string()),
                 *[(n, pa.int64()) for n in SERIES if not n.endswith("_ms")],
                 ("call_seconds", pa.float64()), ("roaming_call_seconds", pa.float64())],
    "areas": [("shard", pa.int16()), ("complete", pa.bool_()), *_ID, ("area", pa.string()), ("present", pa.bool_()),
              ("visits", pa.int64()), ("minutes", pa.int64())],
}.items()}


def _made_once(path: str, content: bytes) -> bytes:
    """The file's content; made with `content` if there is none (probe.transport.write_once)."""
    if not os.path.exists(path):
        write_once(path, content)
    with open(path, "rb") as f:
        return f.read()


def pool_id(data_dir: str) -> str:
    """The data directory's name in the pool (DATA/pool-id), made the first time."""
    path = os.path.join(private(data_dir), "pool-id")
    got = _made_once(path, secrets.token_hex(6).encode() + b"\n").decode("ascii", "replace").strip()
    if not re.fullmatch(r"[0-9a-f]{12}", got):
        raise PoolError(f"{path}: not a pool id ({got[:20]!r}): remove it, and the data directory gets a new one")
    return got


def _ids(data_dir: str, ids: str):
    """A function from an array of identifiers (str, "" none) to what the pool holds of them."""
    if ids not in IDS:
        raise PoolError(f"ids: {ids!r} is not one of {', '.join(IDS)}")
    if ids == "clear":
        return lambda values: pa.array(values, pa.string(), mask=values == "")
    key = _made_once(os.path.join(private(data_dir), "pool.key"), secrets.token_bytes(32))
    return lambda values: pa.array([hmac.new(key, v.encode(), hashlib.sha256).hexdigest()[:16] if v else None
                                    for v in values.tolist()], pa.string())


def _write(path: str, name: str, n: int, columns: dict, shard: int = 0) -> None:
    """A Parquet file of table `name`, n rows of `columns` (lists or arrays; version and shard
    filled in), whole or not at all: written beside, synced, renamed."""
    schema = SCHEMAS[name]
    columns = {"version": np.full(n, VERSION, np.int16), "shard": np.full(n, shard, np.int16), **columns}
    table = pa.table([c if isinstance(c := columns[f.name], pa.Array) else pa.array(c, f.type) for f in schema],
                     schema=schema)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "wb") as f:
        pq.write_table(table, f, compression="zstd")
        f.flush()
        os.fsync(f.fileno())
    os.replace(path + ".tmp", path)


def _day(ns) -> str:
    return datetime.fromtimestamp(int(ns) // NS, timezone.utc).strftime("%Y-%m-%d")


def _names(codes: np.ndarray, names: dict) -> "pa.Array":
    """Codes as their names: a string column, null where a code has none."""
    known = [names.get(i) for i in range(max(int(codes.max(initial=0)), max(names, default=0)) + 1)]
    valid = np.array([n is not None for n in known])[codes]
    index = pa.array(codes.astype(np.int32), mask=~valid)
    return pa.DictionaryArray.from_arrays(index, pa.array([n or "" for n in known])).cast(pa.string())


def _identities(packed: np.ndarray, ident) -> "pa.Array":
    """Packed identifiers as the pool holds them (`ident`: _ids()): each distinct one made once,
    as events come many to a subscriber."""
    distinct, at = np.unique(packed, return_inverse=True)
    return pa.DictionaryArray.from_arrays(pa.array(at.astype(np.int32)), ident(unpack(distinct))).cast(pa.string())


def _tac(tac: np.ndarray) -> "pa.Array":
    return pa.array(np.char.zfill(tac.astype("U8"), 8), pa.string(), mask=tac == 0)


# ---------------------------------------------------------------------------
# The engine's side: the events
# ---------------------------------------------------------------------------

class EventBuffer:
    """The scenario events since they were last written (engine --export), kept in the engine's
    snapshot (arrays(), load()) until written (write(), just before the snapshot that drops them)."""

    def __init__(self, data_dir: str, pool_dir: str, shard: int, ids: str = "clear"):
        self.pool, self.shard, self.ids = pool_dir, shard, ids
        self.data_dir = data_dir
        self.id = pool_id(data_dir)
        self.parts, self.count = [], 0
        self.written = self.dropped = 0
        self.exact, self.prefixes = np.zeros(0, np.uint64), ()

    def configure(self, ruleset) -> None:
        """The hotline numbers whose calls are scenario events (the others are not the pool's)."""
        numbers = {n for ns in ruleset.places.hotlines.values() for n in ns}
        numbers |= {n for c in ruleset.campaigns if c.trigger is not None for n in c.trigger.numbers}
        self.exact = pack(sorted(n for n in numbers if not n.endswith("*")))
        # a prefix as the packed digits' mask and value (digits first, from the top nibble)
        self.prefixes = tuple((m := ~np.uint64((1 << (64 - 4 * len(p))) - 1), pack([p])[0] & m)
                              for p in sorted(n[:-1] for n in numbers if n.endswith("*")))

    @property
    def full(self) -> bool:
        return self.count >= EVENTS_MAX

    def add(self, events: np.ndarray, rows: np.ndarray) -> None:
        """The engine's events of a batch (Engine.last_events), `rows` its state's rows."""
        code = events["event"]
        keep = (code != Event.RECORD) & (events["sub"] >= 0)
        calls = code == Event.HOTLINE_CALL
        if calls.any():
            number = events["number"]
            hot = np.isin(number, self.exact)
            for mask, value in self.prefixes:
                hot |= (number & mask) == value
            keep &= ~calls | hot
        ev = events[keep]
        if not len(ev):
            return
        out = np.empty(len(ev), EVENT_ROW)
        out.view(np.uint8).reshape(len(ev), EVENT_ROW.itemsize)[:, :EVENT_DTYPE.itemsize] = \
            ev.view(np.uint8).reshape(len(ev), EVENT_DTYPE.itemsize)      # the row as it is: one copy
        out["imsi"], out["msisdn"] = rows["imsi"][ev["sub"]], rows["msisdn"][ev["sub"]]
        self.parts.append(out)
        self.count += len(out)
        while self.count > EVENTS_KEPT and len(self.parts) > 1:     # the pool is not there: memory is not endless
            self.count -= len(self.parts[0])
            self.dropped += len(self.parts.pop(0))

    def arrays(self, written: bool) -> dict:
        """For the snapshot: the events not yet in the pool."""
        if written or not self.parts:
            return {"pool_events": np.zeros(0, EVENT_ROW)}
        return {"pool_events": np.concatenate(self.parts)}

    def load(self, arrays: dict) -> None:
        got = arrays.get("pool_events")
        self.parts = [got.astype(EVENT_ROW)] if got is not None and len(got) else []
        self.count = sum(len(p) for p in self.parts)

    def discard_after(self, generation: int) -> int:
        """At start: remove this shard's event files of generations after the snapshot's (written
        for a snapshot a crash kept from being made; the journal makes their events again)."""
        gone = 0
        for path in glob.glob(os.path.join(self.pool, "events", "day=*", f"shard-{self.shard}-{self.id}-g*.parquet")):
            m = re.search(r"-g(\d+)\.parquet$", path)
            if m and int(m.group(1)) > generation:
                os.unlink(path)
                gone += 1
        return gone

    def write(self, generation: int, places) -> int:
        """The events kept, into the pool as the files of `generation`, a file a UTC day. Kept
        until clear(): a snapshot that fails leaves them to be written again, under the same names."""
        if not self.parts:
            return 0
        ev = np.concatenate(self.parts)
        self.parts = [ev]
        ident = _ids(self.data_dir, self.ids)
        regions = {r.index: r.name for r in places.regions}
        areas = {a.index: a.name for a in places.areas}
        events = {int(e): e.label for e in Event}
        rats, segments = {v: k for k, v in RATS.items()}, {v: k for k, v in SEGMENTS.items()}
        ss = {v: k for k, v in SS_CODES.items()}
        day = ev["ts_ns"] // DAY_NS
        for d in np.unique(day):
            e = ev[day == d]
            number = unpack(e["number"])
            cf = e["event"] == Event.CF_THEN_POWER_ON          # forwarded to a number: an identifier
            if self.ids == "hashed" and cf.any():
                hashed = np.array(ident(number[cf]).to_pylist(), "U16")
                number = number.astype("U16")
                number[cf] = hashed
            _write(os.path.join(self.pool, "events", f"day={_day(d * DAY_NS)}",
                                f"shard-{self.shard}-{self.id}-g{generation:08d}.parquet"), "events", len(e), {
                "ts": e["ts_ns"], "event": _names(e["event"], events),
                "imsi": _identities(e["imsi"], ident), "msisdn": _identities(e["msisdn"], ident),
                "region": _names(e["region"], regions), "other_region": _names(e["other_region"], regions),
                "area": _names(e["area"], areas), "minutes": e["minutes"].astype(np.int32),
                "tac": _tac(e["tac"]), "old_tac": _tac(e["old_tac"]),
                "seconds": e["seconds"].astype(np.int64), "rat": _names(e["rat"], rats),
                "from_rat": _names(e["from_rat"], rats), "ss_code": _names(e["ss_code"], ss),
                "segment": _names(e["segment"], segments), "flag": e["flag"] != 0,
                "number": pa.array(number, pa.string(), mask=number == "")}, self.shard)
        return len(ev)

    def clear(self) -> None:
        """The snapshot after write() is made: what was written is the pool's."""
        self.written += self.count
        self.parts, self.count = [], 0


# ---------------------------------------------------------------------------
# Export: triggers, outcomes, profiles and areas from a data directory
# ---------------------------------------------------------------------------

class _State:
    """POOL/_export/ID.json: how far each source of one data directory is in the pool."""

    def __init__(self, pool_dir: str, pid: str):
        self.path = os.path.join(pool_dir, "_export", f"{pid}.json")
        try:
            with open(self.path, encoding="utf-8") as f:
                self.doc = json.load(f)
        except FileNotFoundError:
            self.doc = {"version": VERSION}
        except (OSError, ValueError) as e:
            raise PoolError(f"{self.path}: not the pool's export state ({e}): move it away to export all again")

    def check(self, ids: str) -> None:
        """Refuse to mix a data directory's identifiers in clear and hashed in one pool."""
        if ids not in IDS:
            raise PoolError(f"ids: {ids!r} is not one of {', '.join(IDS)}")
        had = self.doc.get("ids", ids)
        if had != ids:
            raise PoolError(f"{os.path.dirname(os.path.dirname(self.path))} holds this data directory's identifiers "
                            f"{had}: give ids {had}, or another pool")

    def save(self) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with open(self.path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(self.doc, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(self.path + ".tmp", self.path)


def _snapshot(data_dir: str, shard: int):
    """(meta, rows, profile_today, profile_facts) of a shard's snapshot; None: none yet."""
    path = os.path.join(data_dir, "state", f"shard-{shard}.npz")
    if not os.path.exists(path):
        return None
    with np.load(path) as z:
        meta = json.loads(z["meta"].tobytes())
        get = lambda k: z[k] if k in z.files else None
        return meta, get("rows"), get("profile_today"), get("profile_facts")


def shards(data_dir: str) -> list:
    """The shards with a snapshot in the data directory."""
    state = os.path.join(data_dir, "state")
    names = os.listdir(state) if os.path.isdir(state) else []
    return sorted(int(m.group(1)) for n in names if (m := re.fullmatch(r"shard-(\d+)\.npz", n)))


def check_ids(data_dir: str, pool_dir: str, ids: str) -> None:
    """_State.check, for an engine starting with --export."""
    _State(pool_dir, pool_id(data_dir)).check(ids)


def export(data_dir: str, pool_dir: str, ruleset, only=None, ids: str = "clear", warn=None) -> dict:
    """The data directory's triggers, outcomes, profiles and areas into the pool (the events come
    from the engine: EventBuffer). `only`: these shards (default: every one with a snapshot).
    Returns the rows written by table."""
    warn = warn or (lambda line: None)
    if not os.path.isdir(data_dir):
        raise PoolError(f"{data_dir}: no such data directory")
    os.makedirs(private(pool_dir), exist_ok=True)
    pid = pool_id(data_dir)
    os.makedirs(os.path.join(pool_dir, "_export"), exist_ok=True)
    with open(os.path.join(pool_dir, "_export", "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)        # one export at a time (the engine's, a `touchpoint export`)
        state = _State(pool_dir, pid)
        state.check(ids)
        state.doc["ids"] = ids
        ident = _ids(data_dir, ids)
        out = {"triggers": 0, "outcomes": 0, "profiles": 0, "areas": 0}
        for shard in (only if only is not None else shards(data_dir)):
            snap = _snapshot(data_dir, shard)
            if snap is None:
                continue
            shard_state = state.doc.setdefault("shards", {}).setdefault(str(shard), {})
            out["triggers"] += _triggers(data_dir, pool_dir, pid, shard, snap[0], shard_state, ident, ids, warn)
            p, a = _profiles(data_dir, pool_dir, pid, shard, snap, shard_state, ident, ruleset)
            out["profiles"] += p
            out["areas"] += a
            state.save()
        out["outcomes"] = _outcomes(data_dir, pool_dir, pid, state.doc.setdefault("outbox", {}), ident)
        state.save()
    return out


def _triggers(data_dir, pool_dir, pid, shard, meta, st, ident, ids, warn) -> int:
    """The trigger log's lines from the last export's end to the snapshot's, a file a UTC day."""
    path = os.path.join(data_dir, f"triggers-shard-{shard}.jsonl")
    start, end = st.get("triggers_bytes", 0), meta.get("log_bytes", 0)
    if end <= start or not os.path.exists(path):
        return 0
    with open(path, "rb") as f:
        f.seek(start)
        chunk = f.read(end - start)
    rows, at = [], start
    for line in chunk.splitlines(keepends=True):
        at += len(line)
        try:
            t = json.loads(line)
            rows.append((int(t["ts_ns"]), t["campaign"], t.get("event", ""), t.get("imsi", ""), t.get("msisdn", ""),
                         t.get("deadline_ns"), t.get("after_ns"), int(t.get("priority", 0)),
                         json.dumps(t.get("fields", {}), ensure_ascii=False)))
        except (ValueError, KeyError, TypeError):
            warn(f"{path}: the line ending at byte {at}: not a trigger, left out of the pool")
    by_day = {}
    for r in rows:
        by_day.setdefault(_day(r[0]), []).append(r)
    for day, rs in by_day.items():
        ts, campaign, event, imsi, msisdn, deadline, after, priority, fields = zip(*rs)
        _write(os.path.join(pool_dir, "triggers", f"day={day}", f"shard-{shard}-{pid}-b{start:012d}.parquet"),
               "triggers", len(rs), {
                   "ts": ts, "campaign": campaign, "event": event, "imsi": ident(np.array(imsi, str)),
                   "msisdn": ident(np.array(msisdn, str)), "deadline": deadline, "not_before": after,
                   "priority": priority, "fields": fields if ids == "clear" else [None] * len(rs)}, shard)
    st["triggers_bytes"] = end
    return len(rows)


def _outcomes(data_dir, pool_dir, pid, st, ident) -> int:
    """Every message of a UTC day of triggers with what became of it; the days whose messages may
    still change (and those not in the pool yet) written again."""
    path = os.path.join(data_dir, "outbox.sqlite")
    if not os.path.exists(path):
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        conv = "conversions" in tables
        replies = "replies" in tables
        newest = db.execute("SELECT max(trigger_ns) FROM messages").fetchone()[0]
        if newest is None:
            return 0
        longest = db.execute("SELECT coalesce(max(deadline_ns - trigger_ns), 0) FROM messages").fetchone()[0]
        if conv:
            longest = max(longest, db.execute("SELECT coalesce(max(end_ns - start_ns), 0) FROM conversions "
                                              "WHERE holdout < 2").fetchone()[0])
        open_from = (newest - longest - SETTLE_NS) // DAY_NS
        done = set(st.get("days", []))
        days = [d for (d,) in db.execute("SELECT DISTINCT trigger_ns / ? FROM messages", (DAY_NS,))
                if d >= open_from or _day(d * DAY_NS) not in done]
        if replies:                          # a reply can come any time: its message's day again
            mark = st.get("replies_rowid", 0)
            top = db.execute("SELECT coalesce(max(rowid), 0) FROM replies").fetchone()[0]
            days += [d for (d,) in db.execute("SELECT DISTINCT m.trigger_ns / ? FROM replies r JOIN messages m "
                                              "ON m.id = r.message WHERE r.rowid > ?", (DAY_NS, mark))]
            st["replies_rowid"] = top
        n = 0
        for d in sorted(set(days)):
            rows = db.execute(
                "SELECT m.id, m.campaign, m.event, m.channel, m.imsi, m.msisdn, m.holdout, m.state, m.reason, "
                "m.priority, m.trigger_ns, m.due_ns, m.sent_ns, m.done_ns, "
                + ("(SELECT min(at_ns) FROM replies r WHERE r.message = m.id), "
                   "(SELECT word FROM replies r WHERE r.message = m.id ORDER BY at_ns LIMIT 1), " if replies else
                   "NULL, NULL, ")
                + ("c.start_ns, c.end_ns, c.converted_ns FROM messages m LEFT JOIN conversions c ON c.message = m.id "
                   if conv else "NULL, NULL, NULL FROM messages m ")
                + "WHERE m.trigger_ns >= ? AND m.trigger_ns < ? ORDER BY m.trigger_ns, m.id",
                (d * DAY_NS, (d + 1) * DAY_NS)).fetchall()
            if not rows:
                continue
            c = list(zip(*rows))
            _write(os.path.join(pool_dir, "outcomes", f"day={_day(d * DAY_NS)}", f"outbox-{pid}.parquet"),
                   "outcomes", len(rows), {
                       "message": c[0], "campaign": c[1], "event": c[2], "channel": [x or None for x in c[3]],
                       "imsi": ident(np.array(c[4], str)), "msisdn": ident(np.array(c[5], str)),
                       "held_out": [bool(x) for x in c[6]], "state": c[7], "reason": [x or None for x in c[8]],
                       "priority": c[9], "trigger_ts": c[10], "due_ts": c[11], "sent_ts": c[12], "done_ts": c[13],
                       "delivered": [s == "delivered" for s in c[7]], "replied_ts": c[14],
                       "reply": [w or None for w in c[15]], "window_start": c[16], "window_end": c[17],
                       "converted_ts": c[18]})
            done.add(_day(d * DAY_NS))
            n += len(rows)
        st["days"] = sorted(done)
        return n
    finally:
        db.close()


def _profiles(data_dir, pool_dir, pid, shard, snap, st, ident, ruleset) -> tuple:
    """The profile days the pool has not got whole: the finished ones from the engine's day files
    (control.profiles.Days), the day in progress from the snapshot."""
    meta, rows, today, facts = snap
    if rows is None or meta.get("profile_day") is None:
        return 0, 0
    current = date.fromisoformat(meta["profile_day"])
    directory = os.path.join(data_dir, "profiles", f"shard-{shard}")
    done = set(st.get("profile_days", []))
    todo = []
    for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else ():
        m = DAY_FILE.fullmatch(name)
        if m and not m.group(2) and date.fromisoformat(m.group(1)) < current and m.group(1) not in done:
            day = m.group(1)
            areas_path = os.path.join(directory, f"{day}.areas.npy")
            todo.append((day, True, np.load(os.path.join(directory, name)),
                         np.load(areas_path) if os.path.exists(areas_path) else np.zeros(0, AREA_DAY_DTYPE)))
    if today is not None:
        todo.append((current.isoformat(), False, today, day_areas(facts) if facts is not None else
                     np.zeros(0, AREA_DAY_DTYPE)))
    imsi, msisdn, imei = (unpack(rows[k]) for k in ("imsi", "msisdn", "imei"))
    names = {a.index: a.name for a in ruleset.places.areas}
    n_prof = n_area = 0
    for day, complete, series, areas in todo:
        n_prof += _profile_day(pool_dir, pid, shard, day, complete, series, imsi, msisdn, imei, ident)
        n_area += _areas_day(pool_dir, pid, shard, day, complete, areas, imsi, msisdn, names, ident)
        if complete:
            done.add(day)
    st["profile_days"] = sorted(done)
    return n_prof, n_area


def _profile_day(pool_dir, pid, shard, day, complete, series, imsi, msisdn, imei, ident) -> int:
    series = np.asarray(series)[:len(imsi)]
    known = (imsi[:len(series)] != "") | (msisdn[:len(series)] != "")   # a row that gave its number up: nobody's
    subs = np.flatnonzero(series.any(axis=1) & known)   # who did something that day
    s = series[subs].astype(np.int64)
    col = lambda name: s[:, SERIES.index(name)]
    _write(os.path.join(pool_dir, "profiles", f"day={day}", f"shard-{shard}-{pid}.parquet"), "profiles", len(subs), {
        "complete": np.full(len(subs), complete), "imsi": ident(imsi[subs]), "msisdn": ident(msisdn[subs]),
        "tac": [x[:8] or None for x in imei[subs].tolist()],
        **{name: col(name) for name in SERIES if not name.endswith("_ms")},
        "call_seconds": col("call_ms") / 1000.0, "roaming_call_seconds": col("roaming_call_ms") / 1000.0}, shard)
    return len(subs)


def _areas_day(pool_dir, pid, shard, day, complete, areas, imsi, msisdn, names, ident) -> int:
    a = areas[areas["sub"] < len(imsi)]
    a = a[(imsi[a["sub"]] != "") | (msisdn[a["sub"]] != "")]
    subs = a["sub"].astype(np.int64)
    _write(os.path.join(pool_dir, "areas", f"day={day}", f"shard-{shard}-{pid}.parquet"), "areas", len(a), {
        "complete": np.full(len(a), complete), "imsi": ident(imsi[subs]), "msisdn": ident(msisdn[subs]),
        "area": [names.get(x, str(x)) for x in a["area"].tolist()], "present": a["days"] != 0,
        "visits": a["visits"].astype(np.int64), "minutes": a["minutes"].astype(np.int64)}, shard)
    return len(a)

