"""Profiles: what each subscriber did, day by day, over weeks (docs/rules.md, "Profiles").

The state counts today's series for every subscriber (State.today, ext/state.pyx), and keeps
today's facts about subscribers in named areas (State.area_facts: present, a visit, a visit's
minutes). When the records' clock passes midnight in the policy's time zone, the day goes to the
history (Days: in memory for a dry run, files a day in the engine's data directory) and the sums
of the windows the rules ask for move on by a day. A window `last: 30d` is today and the 29 days
before it, so its value at an event is today's so far plus one sum: the state computes it at the
event (never the value at the end of a batch), for the events of the campaigns that ask.

    profiles = Profiles(tz, Days(directory))
    profiles.configure(state, columns, events)      # columns: {(series, days, area)}, from the rules
"""
import os
import re
from datetime import date, datetime, time, timedelta

import numpy as np

# The state's series (ext/state.pyx P_*), in its order.
SERIES = ("sms_mo", "sms_mt", "mms_mt", "calls_mo", "calls_mt", "answered_mo", "answered_mt", "call_ms",
          "sessions", "data_kib", "active", "roaming_call_ms")
AREA_SERIES = ("area_days", "area_visits", "area_minutes")     # State.area_facts' series, in order
AREA_COLUMN = {"area_days": "days", "area_visits": "visits", "area_minutes": "minutes"}   # in AREA_DAY_DTYPE
AREA_QUERY = 100                    # ext/state.pyx: the series number of an area query
SERVICES = "services"               # the data services used in a window: from the state's rows, no sums
SERVICE_QUERY = 200                 # ext/state.pyx: its series number
MAX_SERVICES = 4                    # ext/state.pyx SERVICES: the data services the state tells apart
AREA_DAY_DTYPE = np.dtype([("sub", "<u4"), ("area", "<u2"), ("days", "u1"), ("visits", "<u4"), ("minutes", "<u4")])
MAX_DAYS = 92                       # the longest window: three months; the history keeps as many days
THIS_MONTH, LAST_MONTH = -1, -2     # a column's days: the calendar month so far, the one before it
DAY_FILE = re.compile(r"(\d{4}-\d{2}-\d{2})(\.areas)?\.npy")
EPOCH = date(1970, 1, 1)


class Days:
    """The finished days: each day's series, one (subscribers, SERIES) uint32 array, and its area
    facts (AREA_DAY_DTYPE); a subscriber is its state row (rows never move). directory None: in
    memory."""

    def __init__(self, directory: str | None = None):
        self.directory = directory
        self._mem = {}
        if directory:
            os.makedirs(directory, mode=0o700, exist_ok=True)

    def put(self, day: date, series: np.ndarray, areas: np.ndarray) -> None:
        if self.directory is None:
            self._mem[day] = (series, areas)
            return
        for suffix, a in ((".areas.npy", areas), (".npy", series)):
            path = os.path.join(self.directory, f"{day.isoformat()}{suffix}")
            with open(f"{path}.tmp", "wb") as f:
                np.save(f, a)
                f.flush()
                os.fsync(f.fileno())
            os.replace(f"{path}.tmp", path)
        for name in sorted(os.listdir(self.directory)):        # what no window reaches any more
            m = DAY_FILE.fullmatch(name)
            if m and date.fromisoformat(m.group(1)) <= day - timedelta(MAX_DAYS):
                os.unlink(os.path.join(self.directory, name))

    def get(self, day: date, areas: bool = False) -> np.ndarray | None:
        """A day's series, or with areas its area facts; None: no such day."""
        if self.directory is None:
            return self._mem[day][areas] if day in self._mem else None
        path = os.path.join(self.directory, f"{day.isoformat()}{'.areas' if areas else ''}.npy")
        return np.load(path, mmap_mode=None if areas else "r") if os.path.exists(path) else None


class Profiles:
    """The day in the policy's time zone, and the window sums the state keeps. A column is
    (series, days, area): a series of SERIES with area 0, or of AREA_SERIES with the area's
    number in places.yaml; days is a window of days, or THIS_MONTH or LAST_MONTH."""

    def __init__(self, tz, days: Days | None = None):
        self.tz = tz
        self.days = days or Days()
        self.day = None                     # today, once the first record came
        self.pairs = []                     # the columns of more than a day: the state's sums, in order
        self.columns = {}                   # column -> query number

    def configure(self, state, columns, events) -> None:
        """Keep the sums of these columns' windows, and have the events of these codes carry
        their values. Windows kept before keep their sums; new ones are summed from the history."""
        columns = sorted(columns)
        want = [c for c in columns if c[1] != 1 and c[0] != SERVICES]
        old = {p: k for k, p in enumerate(self.pairs)}
        sums = np.zeros((state.count, len(want)), np.uint32)
        for k, pair in enumerate(want):
            if pair in old:
                sums[:, k] = state.sums[:state.count, old[pair]]
            elif self.day is not None:
                sums[:, k] = self._history(pair, self.day, state.count)
        atoday = np.zeros((state.count, len(columns)), np.uint32)
        today = day_areas(state.area_facts)
        for j, c in enumerate(columns):               # an area query's today, from today's facts
            if c[2]:
                atoday[:, j] = np.minimum(_values(today, c, state.count), 0xFFFFFFFF)
        self.pairs = want
        self.columns = {c: j for j, c in enumerate(columns)}
        index = {p: k for k, p in enumerate(want)}
        queries = [(SERVICE_QUERY, n, 0, True) if s == SERVICES else
                   (_series_number(s), index[s, n, a] if n != 1 else -1, a, n != LAST_MONTH) for s, n, a in columns]
        state.profile(state.today[:state.count], sums, queries, sorted(events) if queries else [], atoday)
        state.on_day = self.on_day

    def history_of(self, column, row: int) -> int:
        """One subscriber's sum of a series over the days - 1 days before today (`ctl subscriber`)."""
        s, n, _ = column
        days = [self.days.get(self.day - timedelta(k)) for k in range(1, n)] if self.day is not None else []
        return sum(int(d[row, SERIES.index(s)]) for d in days if d is not None and row < len(d))

    def _history(self, column, today: date, rows: int) -> np.ndarray:
        """A column's sum of the days before today it covers: the window's days - 1, or this
        month's days before today, or all of last month's."""
        n = column[1]
        if n == THIS_MONTH:
            days = [today.replace(day=d) for d in range(1, today.day)]
        elif n == LAST_MONTH:
            last = today.replace(day=1) - timedelta(1)
            days = [last.replace(day=d) for d in range(1, last.day + 1)]
        else:
            days = [today - timedelta(k) for k in range(1, n)]
        out = np.zeros(rows, np.uint64)
        for d in days:
            out += self._day_values(d, column, rows)
        return np.minimum(out, 0xFFFFFFFF).astype(np.uint32)

    def _day_values(self, day: date, column, rows: int, got=None) -> np.ndarray:
        """A finished day's value of the column for each subscriber (0 for a day not kept);
        got: the day's series or area facts, when they are at hand."""
        s, _, a = column
        if got is None:
            got = self.days.get(day, areas=bool(a))
        if got is None:
            return np.zeros(rows, np.uint64)
        if a:
            return _values(got, column, rows)
        out = np.zeros(rows, np.uint64)
        m = min(len(got), rows)
        out[:m] = got[:m, SERIES.index(s)]
        return out

    def on_day(self, state, ts_ns: int) -> None:
        """The records' clock reached ts_ns, past the end of today (or the first record came)."""
        if self.day is None:
            self._today(state, datetime.fromtimestamp(ts_ns / 1e9, self.tz).date())
            return
        while ts_ns >= state.day_end_ns:
            done = (state.today[:state.count], day_areas(state.area_facts))
            # a fresh day: new zeroed arrays (the OS zeroes them as they are touched), the day
            # done keeps the old ones
            state._profile_arrays(np.zeros_like(state.today), state.sums, np.zeros_like(state.atoday))
            self.days.put(self.day, *done)
            new_month = (self.day + timedelta(1)).day == 1
            for k, pair in enumerate(self.pairs):         # the window of tomorrow: + today, - the day it leaves
                if pair[1] == LAST_MONTH:
                    if new_month:
                        state.sums[:state.count, k] = self._history(pair, self.day + timedelta(1), state.count)
                    continue
                if pair[1] == THIS_MONTH and new_month:
                    state.sums[:state.count, k] = 0
                    continue
                col = state.sums[:state.count, k].astype(np.int64)
                col += self._day_values(self.day, pair, state.count, done[bool(pair[2])]).astype(np.int64)
                if pair[1] > 1:
                    col -= self._day_values(self.day - timedelta(pair[1] - 1), pair, state.count).astype(np.int64)
                state.sums[:state.count, k] = np.clip(col, 0, 0xFFFFFFFF)
            state.area_facts = np.zeros(0, state.area_facts.dtype)
            self._today(state, self.day + timedelta(1))

    def _today(self, state, day: date) -> None:
        self.day = day
        state.day_no = (day - EPOCH).days
        state.day_end_ns = int(datetime.combine(day + timedelta(1), time(0), self.tz).timestamp()) * 1_000_000_000

    # ---- snapshots ----------------------------------------------------------------------------

    def snapshot(self, state) -> tuple:
        """(meta, arrays) for the engine's snapshot."""
        return ({"profile_day": self.day.isoformat() if self.day else None,
                 "profile_windows": [list(p) for p in self.pairs]},
                {"profile_today": state.today[:state.count], "profile_sums": state.sums[:state.count],
                 "profile_facts": state.area_facts})

    def restore(self, state, meta: dict, arrays: dict) -> None:
        """Back to a snapshot's day, counts, facts and sums (configure() then keeps the sums it can)."""
        if meta.get("profile_day") is None or "profile_today" not in arrays:
            return
        self.pairs = [tuple(p) for p in meta["profile_windows"]]
        state.profile(arrays["profile_today"], arrays["profile_sums"], [], [])
        state.area_facts = arrays["profile_facts"]
        self._today(state, date.fromisoformat(meta["profile_day"]))


def _series_number(s: str) -> int:
    return AREA_QUERY + AREA_SERIES.index(s) if s in AREA_SERIES else SERIES.index(s)


def day_areas(facts: np.ndarray) -> np.ndarray:
    """A day's area facts, a row a subscriber and an area: present (0/1), visits, minutes."""
    if not len(facts):
        return np.zeros(0, AREA_DAY_DTYPE)
    key = facts["sub"].astype(np.uint64) << np.uint64(16) | facts["area"].astype(np.uint64)
    keys, inverse = np.unique(key, return_inverse=True)
    out = np.zeros(len(keys), AREA_DAY_DTYPE)
    out["sub"], out["area"] = keys >> np.uint64(16), keys & np.uint64(0xFFFF)
    out["days"][inverse[facts["series"] == 0]] = 1
    for i, name in ((1, "visits"), (2, "minutes")):
        mine = facts["series"] == i
        np.add.at(out[name], inverse[mine], facts["value"][mine])
    return out


def _values(day: np.ndarray, column, rows: int) -> np.ndarray:
    """An area column's values for each subscriber from a day's aggregated facts."""
    s, _, a = column
    day = day[(day["area"] == a) & (day["sub"] < rows)]
    out = np.zeros(rows, np.uint64)
    out[day["sub"]] = day[AREA_COLUMN[s]]
    return out
