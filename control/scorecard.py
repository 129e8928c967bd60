"""The service scorecard: a service judged by weighted indicators, as the operators' playbooks do
(`touchpoint report --scorecard`, docs/report.md "Service scorecard").

    card = read_scorecard(doc, root, segments)     # rules/scorecard.yaml; what is wrong is in doc.errors
    sc = compute(card, data_dir, "2026-11")        # each indicator's value, score and lost points
    print(report.render_scorecard(sc))         # the text and the plot are control.report's

An indicator's value comes from the engine's daily health lines (control.health) or from the
imported lists billing and the service desk give (control.lists: `billing`, `complaints`,
`satisfaction`); it is scored by the benchmark method, min(value / benchmark, 1) x weight, or by
interpolation, clamp((value - g1) / (g2 - g1), 0, 1) x weight (g2 < g1: lower is better). An
indicator whose inputs are missing has no score: its weight is counted apart, never as 0.
"""
import calendar
import re
from dataclasses import dataclass

import numpy as np
from yaml.nodes import SequenceNode

from . import health
from .lists import ListStore
from .lists.layout import ListError
from .yamldoc import BAD, NUMBER, Doc, line_of, suggest

SCORECARD_FILES = ("scorecard.yaml", "scorecard.yml")
FAMILIES = ("scale", "health")
METHODS = ("benchmark", "interpolation")
PERIODS = ("day", "month")
CARD_KEYS = ("id", "name", "service", "indicators")
KEYS = ("id", "name", "family", "source", "method", "weight", "benchmark", "g1", "g2", "period", "segments")
SEGMENT_SOURCES = {"active_rate": ("loyal", "active"), "silent_rate": ("silent",)}   # their default segments
MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])\Z")
DAY = re.compile(r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])\Z")
# The imported lists the scorecard reads: name -> {column: what it holds} (docs/report.md).
LAYOUTS = {"billing": {"month": MONTH, "service": None, "revenue": float},
           "complaints": {"day": DAY, "service": None},
           "satisfaction": {"month": MONTH, "service": None, "score": float}}
PERCENT = re.compile(r"([-+]?(?:\d+\.?\d*|\.\d+))\s*%\Z")
WEAKEST = 3                         # how many the report names as the weakest (the playbook's 短板)


class NoData(Exception):
    """An indicator's inputs are missing: the message says which."""


class ScorecardError(Exception):
    """No scorecard to compute: the message says why."""


# ---- the definition: scorecard.yaml -----------------------------------------------------------------

@dataclass(frozen=True)
class Indicator:
    id: str
    name: str
    family: str
    source: str
    method: str
    weight: float
    benchmark: float | None = None
    g1: float | None = None
    g2: float | None = None
    period: str = "month"
    segments: tuple = ()            # active_rate, silent_rate: the lifecycle segments counted
    line: int = 0

    def score(self, value: float) -> float:
        if self.method == "benchmark":
            return benchmark_score(value, self.benchmark, self.weight)
        return interpolation_score(value, self.g1, self.g2, self.weight)


@dataclass(frozen=True)
class Scorecard:
    id: str
    name: str
    service: str                    # as the lists' service column names it
    indicators: tuple
    file: str = ""

    @property
    def weight(self) -> float:
        return sum(i.weight for i in self.indicators)


def benchmark_score(value: float, benchmark: float, weight: float) -> float:
    """min(value / benchmark, 1) x weight, and 0 for a value below 0 (a score is never negative)."""
    return min(max(value / benchmark, 0.0), 1.0) * weight


def interpolation_score(value: float, g1: float, g2: float, weight: float) -> float:
    """(value - g1) / (g2 - g1), clamped to [0, 1], x weight: g1 scores 0, g2 all; g2 < g1 when lower is better."""
    return min(max((value - g1) / (g2 - g1), 0.0), 1.0) * weight


def read_scorecard(doc: Doc, root, segments: tuple | None = None) -> Scorecard | None:
    """The scorecard of a composed scorecard.yaml; segments, the policy's lifecycle segment names,
    check what `segments` names (None: not checked). None when it has errors (all in doc.errors)."""
    before = len(doc.errors)
    top = doc.mapping(root, "", CARD_KEYS, required=("service", "indicators"))
    if top is None:
        return None
    cid = doc.name(top["id"], "id") if "id" in top else "scorecard"
    name = doc.scalar(top["name"], "name") if "name" in top else cid
    service = doc.scalar(top["service"], "service") if "service" in top else BAD
    items = top.get("indicators")
    if items is not None and not (isinstance(items, SequenceNode) and items.value):
        doc.err(items, "indicators", "must be a list of indicators, each a mapping with id, family, source, ...")
        items = None
    ids = {}                        # id -> the line of its indicator
    out = [_indicator(doc, node, f"indicators[{i}]", segments, ids)
           for i, node in enumerate(items.value if items is not None else ())]
    if len(doc.errors) > before or BAD in (cid, name, service):
        return None
    return Scorecard(cid, name, service.strip().lower(), tuple(out), doc.file)


def _indicator(doc: Doc, node, path: str, segments, ids: dict) -> Indicator | None:
    need = ("id", "family", "source", "method", "weight")
    m = doc.mapping(node, path, KEYS, required=need)
    if m is None:
        return None
    kw = {"line": line_of(node)}
    if "id" in m:
        kw["id"] = doc.name(m["id"], f"{path}.id")
        if kw["id"] is not BAD and ids.setdefault(kw["id"], kw["line"]) != kw["line"]:
            kw["id"] = doc.err(m["id"], f"{path}.id", f"{kw['id']!r} is already the id of the indicator at line "
                                                      f"{ids[kw['id']]}")
    for key, choices in (("family", FAMILIES), ("source", tuple(SOURCES)), ("method", METHODS), ("period", PERIODS)):
        if key in m:
            kw[key] = doc.choice(m[key], f"{path}.{key}", choices)
    if "name" in m:
        kw["name"] = doc.scalar(m["name"], f"{path}.name")
    for key in ("weight", "benchmark", "g1", "g2"):
        if key in m:
            kw[key] = _number(doc, m[key], f"{path}.{key}")
    if kw.get("weight", BAD) is not BAD and kw["weight"] < 0:
        kw["weight"] = doc.err(m["weight"], f"{path}.weight", f"{kw['weight']:g} is negative: a weight is 0 or more")
    method = kw.get("method")
    points = {"benchmark": ("benchmark",), "interpolation": ("g1", "g2")}
    for key in ("benchmark", "g1", "g2"):
        if method in points and key in points[method] and key not in m:
            kw[key] = doc.err(node, f"{path}.{key}", f"missing: the {method} method needs "
                                                     f"{' and '.join(points[method])}")
        elif method in points and key in m and key not in points[method]:
            other = "interpolation" if method == "benchmark" else "benchmark"
            kw[key] = doc.err(m[key], f"{path}.{key}", f"is for the {other} method, not {method}")
    if method == "benchmark" and kw.get("benchmark", BAD) is not BAD and kw["benchmark"] <= 0:
        doc.err(m["benchmark"], f"{path}.benchmark", "must be above 0 (lower is better: the interpolation method, "
                                                     "g2 below g1)")
    if method == "interpolation" and BAD not in (kw.get("g1", BAD), kw.get("g2", BAD)) and kw["g1"] == kw["g2"]:
        doc.err(m["g2"], f"{path}.g2", "equals g1: the interpolation needs two different points")
    kw["segments"] = _segments(doc, m, path, kw.get("source"), segments)
    if BAD in kw.values() or BAD in kw["segments"] or any(k not in kw for k in need):
        return None
    return Indicator(**{"name": kw["id"], **kw})


def _segments(doc: Doc, m: dict, path: str, source, known) -> tuple:
    if "segments" not in m:
        return SEGMENT_SOURCES.get(source, ())
    if source not in SEGMENT_SOURCES:
        doc.err(m["segments"], f"{path}.segments", f"only {' and '.join(SEGMENT_SOURCES)} count segments")
        return (BAD,)
    nodes = doc.items(m["segments"], f"{path}.segments")
    names = tuple(doc.scalar(n, f"{path}.segments") for n in nodes)
    for n, v in zip(nodes, names):
        if v is not BAD and known is not None and v not in known:
            doc.err(n, f"{path}.segments", f"{v!r} is not a lifecycle segment of the policy ({', '.join(known)})"
                                           f"{suggest(v, known)}")
            return (BAD,)
    return names


def _number(doc: Doc, node, path: str):
    """A number, or a percentage (30% is 0.3)."""
    v = doc.scalar(node, path)
    if v is BAD:
        return v
    if m := PERCENT.match(v.strip()):
        return float(m.group(1)) / 100
    if not NUMBER.match(v.strip()):
        return doc.err(node, path, f"{v!r} is not a number (or a percentage like 30%)")
    return float(v)


# ---- the inputs: health lines and lists ---------------------------------------------------------------

def previous(month: str) -> str:
    y, m = int(month[:4]), int(month[5:])
    return f"{y - (m == 1)}-{12 if m == 1 else m - 1:02d}"


class Lists:
    """The scorecard's lists of a data directory, each read and checked once (LAYOUTS)."""

    def __init__(self, data_dir: str):
        self.store = ListStore(data_dir)
        self.read = {}                  # name -> {column: array} or the NoData that says why not

    def get(self, name: str) -> dict:
        if name not in self.read:
            try:
                self.read[name] = self._read(name)
            except NoData as e:
                self.read[name] = e
        got = self.read[name]
        if isinstance(got, NoData):
            raise got
        return got

    def _read(self, name: str) -> dict:
        layout = LAYOUTS[name]
        try:
            lst = self.store.get(name)
        except ListError:
            raise NoData(f"list {name} is not imported (touchpoint lists import {name} FILE, with the columns "
                         f"msisdn, {', '.join(layout)})")
        if missing := [c for c in layout if c not in lst.columns]:
            raise NoData(f"list {name} has no column {', '.join(missing)} (it has {', '.join(lst.columns)})")
        rows = np.arange(len(lst))
        out = {}
        for col, kind in layout.items():
            c = lst.column(col)
            if kind is float and c.type in ("int", "float") and c.present(rows).all():
                out[col] = c[rows].astype(np.float64)
                continue
            if kind is float:               # text, or values missing: the first that is no number is named
                text = np.char.strip(c.strings(rows).astype(str))
                bad = next((i for i, t in enumerate(text) if not NUMBER.match(t)), None)
                if bad is not None:
                    why = f"{col} {str(text[bad])!r} is not a number" if text[bad] else f"no {col}"
                    raise NoData(f"{_where(lst, bad)}: {why} (list {name})")
                out[col] = text.astype(np.float64)
                continue
            text = np.char.strip(c.strings(rows).astype(str))
            if kind is None:
                out[col] = np.char.lower(text)
                continue
            for v in np.unique(text):
                if not kind.match(v):
                    bad = int(np.flatnonzero(text == v)[0])
                    like = "a month like 2026-11" if kind is MONTH else "a day like 2026-11-07"
                    raise NoData(f"{_where(lst, bad)}: {col} {str(v)!r} is not {like} (list {name})")
            out[col] = text
        if "day" in out:
            out["month"] = out["day"].astype("U7")
        return out


def _where(lst, row: int) -> str:
    """Where a row of an imported list was in its file: the line when the import skipped nothing."""
    m = lst.meta
    if m.get("bad_rows") or m.get("blank_lines"):
        return f"{m['source']}: row {row + 1} of the {len(lst):,} imported into list {lst.name}"
    return f"{m['source']}:{row + 2}" if m.get("format") == "csv" else f"{m['source']}: row {row + 1}"


class Period:
    """One month's figures for indicators of one period (day or month), as docs/report.md defines them:
    for a month, flows (messages, moves, revenue, complaints) are summed, subscriber counts are the
    busiest day's and segments the last day's; for a day, every daily figure is the mean over the
    month's days with health lines, and a list's flow is divided by the days of the month."""

    def __init__(self, month: str, kind: str, days: list, lists: Lists, service: str):
        self.month, self.kind, self.all, self.lists, self.service = month, kind, days, lists, service
        self.days = [d for d in days if d["day"][:7] == month]

    def before(self) -> "Period":
        return Period(previous(self.month), self.kind, self.all, self.lists, self.service)

    def _health(self) -> list:
        if not self.days:
            raise NoData(f"no health lines for {self.month}")
        return self.days

    def users(self, key: str) -> float:
        v = [d[key] for d in self._health()]
        return sum(v) / len(v) if self.kind == "day" else max(v)

    def flow(self, key: str) -> float:
        v = sum(d[key] for d in self._health())
        return v / len(self.days) if self.kind == "day" else v

    def share(self, names: tuple) -> float:
        """Of every subscriber in a lifecycle segment, the share in these."""
        days = self._health() if self.kind == "day" else self._health()[-1:]
        if not any(n in d["segments"] for d in days for n in names):
            raise NoData(f"the health lines of {self.month} have no segment {' or '.join(names)}")
        part = sum(d["segments"].get(n, 0) for d in days for n in names)
        return div(part, sum(sum(d["segments"].values()) for d in days), f"no subscriber in a segment in {self.month}")

    def moves_up(self) -> float:
        """Of the moves between lifecycle segments, the share to a better one (earlier in the policy's order)."""
        days = self._health()
        order = {s: i for i, s in enumerate(dict.fromkeys(s for d in days for s in d["segments"]))}
        up = down = 0
        for d in days:
            for move, n in d["moves"].items():
                a, _, b = move.partition(">")
                if a in order and b in order:
                    up, down = up + n * (order[b] < order[a]), down + n * (order[b] > order[a])
        return div(up, up + down, f"no lifecycle moves in {self.month}")

    def _rows(self, name: str, spanned_is_known: bool = False) -> dict:
        """A list's rows of this month and service; with spanned_is_known, none is a known 0 when the
        list's rows (of any service) reach this month from both sides."""
        t = self.lists.get(name)
        sel = (t["month"] == self.month) & (t["service"] == self.service)
        months = np.unique(t["month"])
        if not sel.any() and not (spanned_is_known and len(months) and months[0] <= self.month <= months[-1]):
            raise NoData(f"list {name} has no row of {self.service} for {self.month}"
                         + (f", nor does it span it (its rows are of {months[0]} to {months[-1]})"
                            if spanned_is_known and len(months) else ""))
        return {k: v[sel] for k, v in t.items()}

    def _per(self, total: float) -> float:
        y, m = int(self.month[:4]), int(self.month[5:])
        return total / calendar.monthrange(y, m)[1] if self.kind == "day" else total

    def revenue(self) -> float:
        return self._per(float(self._rows("billing")["revenue"].sum()))

    def paying(self) -> int:
        return int((self._rows("billing")["revenue"] > 0).sum())

    def complaints(self) -> float:
        return self._per(len(self._rows("complaints", spanned_is_known=True)["day"]))

    def satisfaction(self) -> float:
        return float(self._rows("satisfaction")["score"].mean())


def div(a: float, b: float, why: str) -> float:
    if not b:
        raise NoData(why)
    return a / b


def _per_user(p: Period, x: float, users: str = "mms_users") -> float:
    """x over the period's subscribers seen or MMS users."""
    return div(x, p.users(users), f"no {'subscriber seen' if users == 'seen' else 'MMS user'} in {p.month}")


def _growth(p: Period, of) -> float:
    """of(period) this month over of(period) the month before."""
    return div(of(p), of(p.before()), f"no {of.__name__} in {previous(p.month)}")


def revenue(p: Period) -> float:
    return p.revenue()


def mms(p: Period) -> float:
    return p.flow("mms")


# source -> (unit, its value in a Period for an indicator); docs/report.md's table "Sources" says each in words.
SOURCES = {
    "revenue": ("yuan", lambda p, i: revenue(p)),
    "revenue_growth": ("growth", lambda p, i: _growth(p, revenue) - 1),
    "revenue_per_user": ("yuan", lambda p, i: div(p.revenue(), p.paying(), f"no paying user in {p.month}")),
    "penetration": ("share", lambda p, i: _per_user(p, p.users("mms_users"), "seen")),
    "data_penetration": ("share", lambda p, i: _per_user(p, p.users("data_users"), "seen")),
    "messages_per_user": ("number", lambda p, i: _per_user(p, p.flow("mms"))),
    "satisfaction": ("number", lambda p, i: p.satisfaction()),
    "complaints_per_10k": ("number", lambda p, i: 10000 * _per_user(p, p.complaints(), "seen")),
    "paying_ratio": ("share", lambda p, i: _per_user(p, p.paying())),
    "volume_revenue_match": ("number", lambda p, i: div(_growth(p, revenue), _growth(p, mms), f"no mms in {p.month}")),
    "active_rate": ("share", lambda p, i: p.share(i.segments)),
    "silent_rate": ("share", lambda p, i: p.share(i.segments)),
    "moves_up": ("share", lambda p, i: p.moves_up()),
    **{k: ("number", lambda p, i, k=k: p.users(k)) for k in ("seen", "mms_users", "data_users")},
    **{k: ("number", lambda p, i, k=k: p.flow(k)) for k in ("mms", "sessions", "new")},
}


# ---- the scorecard of a month -----------------------------------------------------------------------

def latest_month(days: list) -> str | None:
    return max((d["day"][:7] for d in days), default=None)


def evaluate(ind: Indicator, p: Period) -> dict:
    """{value, score, lost, no_data}: no_data says why there is no value (then no score either)."""
    try:
        value = float(SOURCES[ind.source][1](p, ind))
    except NoData as e:
        return {"value": None, "score": None, "lost": None, "no_data": str(e)}
    score = ind.score(value)
    return {"value": value, "score": score, "lost": ind.weight - score, "no_data": None}


def _coverage(days: list, month: str) -> dict:
    mine = [d for d in days if d["day"][:7] == month]
    return {"days": len(mine), "first": mine[0]["day"] if mine else None, "last": mine[-1]["day"] if mine else None,
            "incomplete": sum(not d["complete"] for d in mine)}


def _totals(rows: list) -> dict:
    scored = [r for r in rows if r["no_data"] is None]
    score, weight = sum(r["score"] for r in scored), sum(r["weight"] for r in scored)
    return {"score": score, "weight": sum(r["weight"] for r in rows), "weight_with_data": weight,
            "weight_no_data": sum(r["weight"] for r in rows) - weight, "share": score / weight if weight else None}


def compute(card: Scorecard, data_dir: str, month: str | None = None) -> dict:
    """The scorecard of a month (default: the latest with health lines) against the month before,
    as a dict (what --json prints); indicators weakest first: the most points lost, no data last."""
    days = health.read(data_dir)
    month = month or latest_month(days)
    if month is None:
        raise ScorecardError(f"{data_dir}: no health lines to choose a month by (the engine writes them at each "
                             "day's end of record time); give --month")
    lists, before = Lists(data_dir), previous(month)
    rows = []
    for n, ind in enumerate(card.indicators):
        now = evaluate(ind, Period(month, ind.period, days, lists, card.service))
        was = evaluate(ind, Period(before, ind.period, days, lists, card.service))
        rows.append({"id": ind.id, "name": ind.name, "family": ind.family, "source": ind.source,
                     "method": ind.method, "period": ind.period, "weight": ind.weight,
                     **({"benchmark": ind.benchmark} if ind.method == "benchmark" else {"g1": ind.g1, "g2": ind.g2}),
                     "unit": SOURCES[ind.source][0], **now, "previous": was,
                     "trend": None if None in (now["score"], was["score"]) else now["score"] - was["score"], "n": n})
    rows.sort(key=lambda r: (r["no_data"] is not None, -(r["lost"] or 0), -r["weight"], r["n"]))
    for r in rows:
        del r["n"]
    return {"scorecard": card.id, "name": card.name, "service": card.service, "month": month, "previous": before,
            "health": {m: _coverage(days, m) for m in (month, before)}, "indicators": rows,
            "families": {f: _totals([r for r in rows if r["family"] == f]) for f in FAMILIES
                         if any(r["family"] == f for r in rows)},
            "total": _totals(rows),
            "weakest": [r["id"] for r in rows if r["no_data"] is None and r["lost"] > 0][:WEAKEST],
            "no_data": [r["id"] for r in rows if r["no_data"] is not None]}
