"""The service health scorecard's daily counters, written by the engine (`touchpoint report --health`).

Per UTC day of record time, one JSON line in DATA/health-shard-N.jsonl, written when the records
cross into the next day and at shutdown (`complete: false`: the day was not over; a later line
for the same day replaces it):

    day, seen (subscribers with a record that day), mms_users (with an MMS), data_users (with a
    session on a data service's APN, policy.yaml's data_services, or data volume: an IMS session
    is no data use), records, mms, sessions (on a data service's APN), segments {name: n} (every subscriber
    the state knows in each of the policy's lifecycle segments, control.lifecycle, in its order, at
    the end of the day), moves {"a>b": n} (segment changes since the previous day's end), new
    (subscribers first known that day)

Nothing per subscriber is written: what the counts need beyond the engine's state (who had an
MMS or a data session today, each one's segment at the last day's end) is a byte per subscriber,
kept in the engine's snapshot (arrays(), load()) so a restart carries on the same day.
"""
import json
import os

import numpy as np

from .engine import DAY_S
from .events import Event

WATCH = ("mms_mt", "data_session_start")
NS = 10**9
MMS, DATA = 1, 2                    # today's bits


class Health:
    def __init__(self, data_dir: str, shard: int = 0):
        self.path = os.path.join(data_dir, f"health-shard-{shard}.jsonl")
        self.day = None                 # the day being counted
        self.today = np.zeros(0, np.uint8)      # MMS / DATA bits per state row
        self.segment = np.zeros(0, np.uint8)    # at the end of the last day written
        self.known = 0                  # state rows at the start of the day
        self.counts = {"records": 0, "mms": 0, "sessions": 0}

    @staticmethod
    def split(records: np.ndarray) -> list:
        """A batch cut where its records' day moves on (in arrival order)."""
        if not len(records):
            return [records]
        day = np.maximum.accumulate(records["ts_ns"] // (DAY_S * NS))
        cuts = np.flatnonzero(np.diff(day)) + 1
        return np.split(records, cuts) if len(cuts) else [records]

    def begin(self, records: np.ndarray, engine) -> None:
        """Before the engine takes these records (one day's, split()): close the day before."""
        if not len(records):
            return
        day = int(records["ts_ns"].max() // (DAY_S * NS))
        if self.day is None:
            self.day, self.known = day, engine.state.count
        elif day > self.day:
            self.write(engine, complete=True)
            self.day, self.known = day, engine.state.count
            self.today[:] = 0
            self.counts = dict.fromkeys(self.counts, 0)

    def count(self, records: np.ndarray, events: np.ndarray, services: np.ndarray) -> None:
        """After the engine took them: today's MMS and data sessions, from its events and the
        records' data services (Engine.last_services)."""
        self.counts["records"] += len(records)
        if not len(events):
            return
        top = int(events["sub"].max()) + 1
        if top > len(self.today):
            self.today = np.concatenate(
                [self.today, np.zeros(max(top, 2 * len(self.today)) - len(self.today), np.uint8)]
            )
        for code, bit, name in ((Event.MMS_MT, MMS, "mms"), (Event.DATA_SESSION_START, DATA, "sessions")):
            sel = events["event"] == code
            if code == Event.DATA_SESSION_START:        # of a data service: not the IMS
                sel &= services[np.maximum(events["rec"], 0)] >= 0
            sub = events["sub"][sel]
            self.today[sub[sub >= 0]] |= bit
            self.counts[name] += len(sub)

    def write(self, engine, complete: bool) -> dict | None:
        if self.day is None:
            return None
        rows = engine.state.rows[:engine.state.count]
        n = len(rows)
        today = np.zeros(n, np.uint8)
        m = min(n, len(self.today))
        today[:m] = self.today[:m]
        seen = (rows["last_seen"].astype(np.int64) // DAY_S) == self.day
        data = ((today & DATA) != 0) | (rows["data_day"].astype(np.int64) == self.day)
        seg, names = engine.lifecycle_now(), engine.lifecycle_names()
        before = np.zeros(n, np.uint8)
        k = min(n, len(self.segment))
        before[:k] = self.segment[:k]
        moved = (before != 0) & (before != seg)
        pairs = before[moved].astype(np.int64) * 256 + seg[moved]
        name = lambda code: names[code - 1] if code <= len(names) else str(code)    # the policy changed
        moves = {f"{name(p // 256)}>{name(p % 256)}": int(c) for p, c in zip(*np.unique(pairs, return_counts=True))}
        line = {"day": str(np.datetime64(self.day, "D")), "complete": complete, "seen": int(seen.sum()),
                "mms_users": int(((today & MMS) != 0)[seen].sum()), "data_users": int(data[seen].sum()),
                **self.counts, "segments": {s: int((seg == i).sum()) for i, s in enumerate(names, 1)},
                "moves": moves, "new": int(max(n - self.known, 0))}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
        if complete:
            self.segment = seg
        return line

    # ---- across a restart ----------------------------------------------------------------------------

    def arrays(self) -> dict:
        """What a restart needs to carry on the same day (kept in the engine's snapshot)."""
        if self.day is None:
            return {}
        return {"health_today": self.today, "health_segment": self.segment,
                "health_meta": np.array([self.day, self.known, *self.counts.values()], np.int64)}

    def load(self, arrays: dict) -> None:
        if "health_meta" not in arrays:
            return
        self.today, self.segment = arrays["health_today"].copy(), arrays["health_segment"].copy()
        self.day, self.known, *counts = (int(x) for x in arrays["health_meta"])
        self.counts = dict(zip(self.counts, counts))

def read(data_dir: str) -> list:
    """The days of every shard's file, summed per day (a day's last line per shard counts)."""
    per = {}
    for name in sorted(os.listdir(data_dir)) if os.path.isdir(data_dir) else ():
        if name.startswith("health-shard-") and name.endswith(".jsonl"):
            with open(os.path.join(data_dir, name), encoding="utf-8") as f:
                for _n, line in enumerate(f, 1):
                    try:
                        d = json.loads(line)
                        per[(name, d["day"])] = d
                    except (ValueError, KeyError, TypeError):
                        continue            # a line cut short by a crash
    days = {}
    for (_, day), d in sorted(per.items(), key=lambda kv: kv[0][1]):
        t = days.setdefault(day, {"day": day, "complete": True, "seen": 0, "mms_users": 0, "data_users": 0,
                                  "records": 0, "mms": 0, "sessions": 0, "new": 0, "segments": {}, "moves": {}})
        t["complete"] &= bool(d.get("complete"))
        for k in ("seen", "mms_users", "data_users", "records", "mms", "sessions", "new"):
            t[k] += int(d.get(k, 0))
        for k, v in d.get("segments", {}).items():
            t["segments"][k] = t["segments"].get(k, 0) + int(v)
        for k, v in d.get("moves", {}).items():
            t["moves"][k] = t["moves"].get(k, 0) + int(v)
    return list(days.values())
