"""Scheduled campaigns and send windows: when a campaign sends to its whole audience, and the
times of day its messages may go out.

    schedule:
      at: ["12:00", "19:30"]              # times of day, in policy.yaml's time zone
      days: [mon, tue, wed, thu, fri]     # or `dates: [2026-11-07]`: once on each date (default: every day)
      spread: 30m                         # the messages' due times spread evenly over it (default: none)
    send_window: ["11:30-13:00", "18:30-21:00"]

    runs = Runs(meta.get("schedule"))       # the last run of each campaign, from a snapshot
    for campaign, run_ns in runs.due(campaigns, tz, now_ns):
        ...                                 # the engine sends to the audience (Engine.scheduled)
    meta["schedule"] = runs.last

A run is its campaign and its time: the triggers of a run carry the run's time, so their
message ids (control.policy.message_id) are the same however often the run is made, and the
outbox takes each once. A campaign first seen starts from then (a new campaign does not send for
the times before it); a run missed while the engine was down is made when it comes back, unless
the campaign's window has passed since (its messages would expire unsent).
"""
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from .yamldoc import BAD, CLOCK_TIME

NS = 1_000_000_000
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_SETS = {"weekdays": DAYS[:5], "weekends": DAYS[5:], "daily": DAYS}
MAX_RUNS = 1000                 # a catch-up makes at most this many runs of a campaign at once


@dataclass(frozen=True)
class Schedule:
    times: tuple                # minutes after local midnight, sorted
    days: frozenset = frozenset(range(7))     # weekdays (0 Monday) it runs on, without dates
    dates: tuple = ()           # the dates it runs on, once each (then days are not used)
    spread_s: int = 0

    def runs(self, tz, after_ns: int, until_ns: int) -> list:
        """The run times in (after_ns, until_ns], ns since the epoch, in order."""
        if until_ns <= after_ns:
            return []
        first = datetime.fromtimestamp(after_ns // NS, tz).date() - timedelta(days=1)
        last = datetime.fromtimestamp(until_ns // NS, tz).date()
        days = [d for d in self.dates if first <= d <= last] if self.dates else \
            [first + timedelta(days=i) for i in range((last - first).days + 1)]
        out = []
        for d in days:
            if not self.dates and d.weekday() not in self.days:
                continue
            for m in self.times:
                t = int(datetime(d.year, d.month, d.day, m // 60, m % 60, tzinfo=tz).timestamp()) * NS
                if after_ns < t <= until_ns:
                    out.append(t)
        return sorted(out)

    def __str__(self) -> str:
        at = ", ".join(f"{m // 60:02d}:{m % 60:02d}" for m in self.times)
        on = ", ".join(map(str, self.dates)) if self.dates else \
            "every day" if len(self.days) == 7 else ", ".join(DAYS[d] for d in sorted(self.days))
        return f"at {at} on {on}" + (f", spread over {self.spread_s // 60} min" if self.spread_s else "")


def spread(run_ns: int, spread_s: int, keys: np.ndarray) -> np.ndarray:
    """Each message's earliest time in a run: the run's time plus an even share of the spread, in
    an order drawn from the subscriber's key and the run (not the same subscribers first each day)."""
    n = len(keys)
    if not spread_s or n < 2:
        return np.full(n, run_ns, np.int64)
    from touchpoint.probe.shard import splitmix64       # the one hash (ext/hash.h)
    rank = np.empty(n, np.int64)
    rank[np.argsort(splitmix64(keys.astype(np.uint64) ^ np.uint64(run_ns & (2**64 - 1))), kind="stable")] = \
        np.arange(n)
    return run_ns + rank * (spread_s * NS // n)


class Runs:
    """The last run made of each scheduled campaign (ns), kept in the engine's snapshot."""

    def __init__(self, last: dict | None = None):
        self.last = {str(k): int(v) for k, v in (last or {}).items()}
        self.missed = []            # (campaign id, run ns): past their window when they came due

    def due(self, campaigns, tz, now_ns: int) -> list:
        """[(campaign, run ns)] of the runs due by now_ns and not made yet, in time order; each
        is taken as made."""
        out = []
        for c in campaigns:
            if c.schedule is None:
                continue
            last = self.last.setdefault(c.id, now_ns)
            runs = c.schedule.runs(tz, last, now_ns)[-MAX_RUNS:]
            for t in runs:
                if not c.valid_at(t):
                    continue
                if now_ns > t + c.window_s * NS:
                    self.missed.append((c.id, t))
                else:
                    out.append((c, t))
            if runs:
                self.last[c.id] = runs[-1]
        return sorted(out, key=lambda x: (x[1], -x[0].priority, x[0].id))


# --- reading ------------------------------------------------------------------------------------

def read_schedule(doc, node) -> Schedule:
    errors = len(doc.errors)
    top = doc.mapping(node, "schedule", ("at", "days", "dates", "spread"), required=("at",))
    if top is None or "at" not in top:
        return BAD
    times = tuple(sorted({doc.clock_time(n, "schedule.at") for n in doc.items(top["at"], "schedule.at")} - {BAD}))
    kw = {}
    if "days" in top and "dates" in top:
        doc.err(top["dates"], "schedule.dates", "dates (once on each) or days (every week), not both")
    elif "days" in top:
        names = [doc.choice(n, "schedule.days", (*DAYS, *DAY_SETS)) for n in doc.items(top["days"], "schedule.days")]
        kw["days"] = frozenset(DAYS.index(d) for v in names if v is not BAD for d in DAY_SETS.get(v, (v,)))
    elif "dates" in top:
        kw["dates"] = tuple(sorted({d for n in doc.items(top["dates"], "schedule.dates")
                                    if (d := doc.date(n, "schedule.dates")) is not BAD}))
    if "spread" in top:
        kw["spread_s"] = doc.duration(top["spread"], "schedule.spread", zero=True)
    if len(doc.errors) > errors or not times:
        return BAD
    return Schedule(times, **kw)


def read_windows(doc, node, path: str = "send_window") -> tuple:
    """["11:30-13:00", ...] -> ((690, 780), ...): minutes after local midnight, from < to, or
    from > to for a window over midnight."""
    errors = len(doc.errors)
    out = []
    for n in doc.items(node, path):
        v = doc.scalar(n, path)
        if v is BAD:
            continue
        ends = v.replace(" ", "").split("-")
        m = [CLOCK_TIME.match(e) for e in ends] if len(ends) == 2 else [None]
        if not all(m):
            doc.err(n, path, f"{v!r} is not a time window like \"11:30-13:00\" (quote it)")
        elif m[0].group(0) == m[1].group(0):
            doc.err(n, path, f"{v!r} is empty: the window ends when it starts")
        else:
            out.append(tuple(int(x.group(1)) * 60 + int(x.group(2)) for x in m))
    return BAD if len(doc.errors) > errors or not out else tuple(out)


def in_windows(windows: tuple, minute: int) -> bool:
    return any(a <= minute < b if a < b else (minute >= a or minute < b) for a, b in windows)


def next_open(windows: tuple, tz, ts_ns: int) -> int:
    """The first time at or after ts_ns inside one of the windows (local minutes)."""
    local = datetime.fromtimestamp(ts_ns / NS, tz)
    minute = local.hour * 60 + local.minute
    if not windows or in_windows(windows, minute):
        return ts_ns
    day = local.date()
    later = sorted(a for a, _ in windows if a > minute)
    start, day = (later[0], day) if later else (min(a for a, _ in windows), day + timedelta(days=1))
    return int(datetime(day.year, day.month, day.day, start // 60, start % 60, tzinfo=tz).timestamp()) * NS
