"""Profiles: what each subscriber did, day by day, over weeks (docs/rules.md, "Profiles").

The state counts today's series for every subscriber (State.today, ext/state.pyx). When the
records' clock passes midnight in the policy's time zone, the day goes to the history (Days: in
memory for a dry run, a file a day in the engine's data directory) and the sums of the windows
the rules ask for move on by a day. A window `last: 30d` is today and the 29 days before it, so
its value at an event is today's count so far plus one sum: the state computes it at the event
(it is never the value at the end of a batch), for the events of the campaigns that ask.

    profiles = Profiles(tz, Days(directory))
    profiles.configure(state, columns, events)      # columns: {(series, days)}, from the rules
"""
import os
import re
from datetime import date, datetime, time, timedelta

import numpy as np

# The state's series (ext/state.pyx P_*), in its order.
SERIES = ("sms_mo", "sms_mt", "mms_mt", "calls_mo", "calls_mt", "answered_mo", "answered_mt", "call_ms",
          "sessions", "data_kib", "active")
MAX_DAYS = 92                       # the longest window: three months; the history keeps as many days
DAY_FILE = re.compile(r"\d{4}-\d{2}-\d{2}\.npy")


class Days:
    """The finished days' series, one (subscribers, SERIES) uint32 array a day; a subscriber is
    its state row (rows never move). directory None: in memory."""

    def __init__(self, directory: str | None = None):
        self.directory = directory
        self._mem = {}
        if directory:
            os.makedirs(directory, mode=0o700, exist_ok=True)

    def put(self, day: date, series: np.ndarray) -> None:
        if self.directory is None:
            self._mem[day] = series
            return
        path = os.path.join(self.directory, f"{day.isoformat()}.npy")
        with open(f"{path}.tmp", "wb") as f:
            np.save(f, series)
            f.flush()
            os.fsync(f.fileno())
        os.replace(f"{path}.tmp", path)
        for name in sorted(os.listdir(self.directory)):        # what no window reaches any more
            if DAY_FILE.fullmatch(name) and date.fromisoformat(name[:10]) <= day - timedelta(MAX_DAYS):
                os.unlink(os.path.join(self.directory, name))

    def get(self, day: date) -> np.ndarray | None:
        if self.directory is None:
            return self._mem.get(day)
        path = os.path.join(self.directory, f"{day.isoformat()}.npy")
        return np.load(path, mmap_mode="r") if os.path.exists(path) else None


class Profiles:
    """The day in the policy's time zone, and the window sums the state keeps."""

    def __init__(self, tz, days: Days | None = None):
        self.tz = tz
        self.days = days or Days()
        self.day = None                     # today, once the first record came
        self.pairs = []                     # (series index, days) of the state's sums' columns
        self.columns = {}                   # (series name, days) -> query number

    def configure(self, state, columns, events) -> None:
        """Keep the sums of these (series name, days) windows, and have the events of these
        codes carry their values. Windows kept before keep their sums; new ones are summed
        from the history."""
        want = sorted({(SERIES.index(s), n) for s, n in columns if n > 1})
        old = dict(zip(self.pairs, range(len(self.pairs))))
        sums = np.zeros((state.count, len(want)), np.uint32)
        for k, pair in enumerate(want):
            if pair in old:
                sums[:, k] = state.sums[:state.count, old[pair]]
            elif self.day is not None:
                sums[:, k] = self._history(pair, self.day, state.count)
        self.pairs = want
        self.columns = {c: j for j, c in enumerate(sorted(columns))}
        index = {p: k for k, p in enumerate(want)}
        queries = [(SERIES.index(s), index[SERIES.index(s), n] if n > 1 else -1) for s, n in sorted(columns)]
        state.profile(state.today[:state.count], sums, queries, sorted(events) if queries else [])
        state.on_day = self.on_day

    def _history(self, pair, today: date, rows: int) -> np.ndarray:
        """The series' sum over the n - 1 days before today."""
        s, n = pair
        out = np.zeros(rows, np.uint64)
        for k in range(1, n):
            d = self.days.get(today - timedelta(k))
            if d is not None:
                m = min(len(d), rows)
                out[:m] += d[:m, s]
        return np.minimum(out, 0xFFFFFFFF).astype(np.uint32)

    def on_day(self, state, ts_ns: int) -> None:
        """The records' clock reached ts_ns, past the end of today (or the first record came)."""
        if self.day is None:
            self.day = datetime.fromtimestamp(ts_ns / 1e9, self.tz).date()
            state.day_end_ns = self._end(self.day)
            return
        while ts_ns >= state.day_end_ns:
            done = state.today[:state.count].copy()
            self.days.put(self.day, done)
            for k, (s, n) in enumerate(self.pairs):        # the window of tomorrow: + today, - the day it leaves
                col = state.sums[:state.count, k].astype(np.int64) + done[:, s]
                gone = self.days.get(self.day - timedelta(n - 1))
                if gone is not None:
                    m = min(len(gone), state.count)
                    col[:m] -= gone[:m, s]
                state.sums[:state.count, k] = np.clip(col, 0, 0xFFFFFFFF)
            state.today[:] = 0
            self.day += timedelta(1)
            state.day_end_ns = self._end(self.day)

    def _end(self, day: date) -> int:
        return int(datetime.combine(day + timedelta(1), time(0), self.tz).timestamp()) * 1_000_000_000

    # ---- snapshots ----------------------------------------------------------------------------

    def snapshot(self, state) -> tuple:
        """(meta, arrays) for the engine's snapshot."""
        return ({"profile_day": self.day.isoformat() if self.day else None,
                 "profile_windows": [[SERIES[s], n] for s, n in self.pairs]},
                {"profile_today": state.today[:state.count], "profile_sums": state.sums[:state.count]})

    def restore(self, state, meta: dict, arrays: dict) -> None:
        """Back to a snapshot's day, counts and sums (configure() then keeps the sums it can)."""
        if meta.get("profile_day") is None or "profile_today" not in arrays:
            return
        self.day = date.fromisoformat(meta["profile_day"])
        self.pairs = [(SERIES.index(s), n) for s, n in meta["profile_windows"]]
        state.profile(arrays["profile_today"], arrays["profile_sums"], [], [])
        state.day_end_ns = self._end(self.day)
