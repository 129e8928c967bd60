"""The story file (YAML, see "Stories" in docs/rules.md): its schema, read with file:line errors
into a Story of Persons and their Steps. story.py renders it."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

import yaml

from .digits import _GSM7

DEFAULT_START = datetime(2026, 1, 1, tzinfo=timezone.utc)
SS_CODES = {"cfall": 0x20, "cfallcond": 0x28, "cfu": 0x21, "cfb": 0x29, "cfnry": 0x2A, "cfnrc": 0x2B}
RATS = {"utran": 1, "geran": 2, "wlan": 3, "gan": 4, "hspa": 5, "eutran": 6, "nbiot": 8, "ltem": 9, "nr": 10}
GAP_NS = 20_000_000                      # between the messages of one step
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class StoryError(ValueError):
    """A story that cannot be rendered: the message is `file:line: why`."""


# ---------------------------------------------------------------------------
# YAML with line numbers
# ---------------------------------------------------------------------------

class _Map(dict):
    line = 0
    lines: dict = {}


class _List(list):
    line = 0
    lines: list = []


def _value(loader, node):
    """Plain Python values from a composed YAML node; mappings and lists keep their lines."""
    if isinstance(node, yaml.MappingNode):
        m = _Map()
        m.line, m.lines = node.start_mark.line + 1, {}
        for k, v in node.value:
            key = _value(loader, k)
            m[key] = _value(loader, v)
            m.lines[key] = k.start_mark.line + 1
        return m
    if isinstance(node, yaml.SequenceNode):
        out = _List(_value(loader, v) for v in node.value)
        out.line, out.lines = node.start_mark.line + 1, [v.start_mark.line + 1 for v in node.value]
        return out
    try:
        return loader.construct_object(node, deep=True)
    except ValueError as e:                 # a timestamp that is no date, ...
        raise yaml.MarkedYAMLError(problem=f"{node.value!r}: {e}", problem_mark=node.start_mark) from None


def _read_yaml(path: str):
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise StoryError(f"{path}:0: cannot read: {e.strerror}") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        return _value(loader, node) if node is not None else None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise StoryError(f"{path}:{mark.line + 1 if mark else 0}: {e.problem or e}") from None
    finally:
        loader.dispose()


class _Where:
    """Where a value came from, to say so when it is wrong."""

    def __init__(self, path: str):
        self.path = path

    def fail(self, line: int, why: str):
        raise StoryError(f"{self.path}:{line}: {why}")

    def mapping(self, v, line: int, what: str) -> _Map:
        if not isinstance(v, dict):
            self.fail(getattr(v, "line", line), f"{what} must be a mapping")
        return v

    def keys(self, m: _Map, allowed, what: str):
        for k in m:
            if k not in allowed:
                self.fail(m.lines.get(k, m.line), f"{what}: unknown key {k!r} (known: {', '.join(sorted(allowed))})")


def duration_ns(text, where: _Where, line: int) -> int:
    """'+2h', '90s', '1d12h', '+0s' -> nanoseconds."""
    s = str(text).strip()
    body = s[1:] if s.startswith("+") else s
    parts = _DURATION.findall(body)
    if not body or "".join(a + u for a, u in parts) != body:
        where.fail(line, f"{s!r} is not a duration like +0s, +90s, +2h, +1d12h")
    return int(sum(float(a) * _UNIT[u] for a, u in parts) * 1e9)


def _digits(v, where: _Where, line: int, what: str, lengths=range(1, 17)) -> str:
    s = str(v)
    if not s.isdigit() or len(s) not in lengths:
        where.fail(line, f"{what} {s!r} must be {min(lengths)} to {max(lengths)} digits (write it as a string)")
    return s


# ---------------------------------------------------------------------------
# Places: what the story's locations mean
# ---------------------------------------------------------------------------

@dataclass
class Region:
    name: str
    nodes: list                     # GTs, or prefixes ending in *
    mccmnc: list                    # serving networks, or
    not_mccmnc: list                # ... any network but these
    lacs: list                      # [(first, last)] LAC (2G/3G)
    tacs: list                      # [(first, last)] TAC (4G/5G)


@dataclass
class Places:
    home: list = field(default_factory=list)
    regions: dict = field(default_factory=dict)
    areas: dict = field(default_factory=dict)       # name -> [(lac, first cell, last cell)]
    hotlines: dict = field(default_factory=dict)    # name -> [numbers]

    def area_of(self, lac: int, cell: int):
        for name, spans in self.areas.items():
            if any(a == lac and f <= cell <= last for a, f, last in spans):
                return name
        return None

    def region_by_lac(self, lac: int, lte: bool):
        for r in self.regions.values():
            if any(f <= lac <= last for f, last in (r.tacs if lte else r.lacs)):
                return r
        return None


def _places(path: str, key: str | None = None) -> Places:
    """The story's view of places.yaml (or of the story's own `places:` mapping), read and checked
    by control.places as the engine reads it: one reading of the file format, the same errors."""
    from touchpoint.control.places import read_places

    rp, errors = read_places(path, key)
    if errors:
        more = f" (and {len(errors) - 1} more: touchpoint rules check)" if len(errors) > 1 else ""
        raise StoryError(f"{errors[0]}{more}")
    p = Places()
    if rp is None:
        return p
    p.home = list(rp.home)
    for r in rp.regions:
        p.regions[r.name] = Region(r.name, list(r.node), [] if r.negate else list(r.mccmnc),
                                   list(r.mccmnc) if r.negate else [], list(r.lac), list(r.tac))
    p.areas = {a.name: list(a.cells) for a in rp.areas}
    p.hotlines = {name: [n.rstrip("*") for n in nums] for name, nums in rp.hotlines.items()}
    return p


# ---------------------------------------------------------------------------
# The story as data
# ---------------------------------------------------------------------------

@dataclass
class Step:
    subscriber: str
    index: int                       # 1-based within the subscriber's timeline
    do: str
    at: str
    t_ns: int                        # from the story's start
    args: dict
    line: int
    records: list = field(default_factory=list)
    t_abs: int = 0                   # capture time, ns since the epoch


@dataclass
class Person:
    name: str
    imsi: str | None
    msisdn: str | None
    imei: str | None
    network: str | None
    steps: list
    line: int


@dataclass
class Story:
    path: str
    start_ns: int
    places: Places
    people: list
    background: int = 0
    activity: float = 1.0            # background actions per subscriber and hour
    end_ns: int = 0                  # from the start: the last step and 10 minutes


_LOCATION_KEYS = {"region", "area", "vlr", "lac", "cell", "mccmnc"}
# action -> the keys its step may have besides `at` and `do`
ACTIONS = {
    "attach": _LOCATION_KEYS | {"via", "apn", "rat"},
    "power_on": _LOCATION_KEYS | {"via", "apn", "rat"},
    "power_off": set(),
    "move": _LOCATION_KEYS,
    "roam_to": _LOCATION_KEYS,
    "change_handset": {"imei", "tac", "same_tac"},
    "register_cf": {"ss", "to"},
    "activate_cf": {"ss"},
    "deactivate_cf": {"ss"},
    "erase_cf": {"ss"},
    "call": {"to", "via", "answer", "duration"},
    "sms_mo": {"to"},
    "sms_mt": {"from"},
    "mms_mt": {"from", "subject", "size"},
    "ussd": {"code"},
    "data": {"apn", "rat", "duration", "packets"},
}


def _start_ns(v, where, line) -> int:
    if isinstance(v, datetime):
        dt = v if v.tzinfo else v.replace(tzinfo=timezone.utc)
    elif isinstance(v, date):
        dt = datetime(v.year, v.month, v.day, tzinfo=timezone.utc)
    else:
        try:
            dt = datetime.fromisoformat(str(v).replace("Z", "+00:00"))
        except ValueError:
            where.fail(line, f"start {v!r} is not an ISO time like 2026-11-02T08:00:00Z")
        dt = dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp()) * 1_000_000_000


def _check_args(step: _Map, do: str, places: Places, where: _Where):
    """Values of the step's keys, checked now so a typo is reported before anything is written."""
    ln = lambda k: step.lines.get(k, step.line)
    a = {k: v for k, v in step.items() if k not in ("at", "do")}
    for k, names, what in (("region", places.regions, "region"), ("area", places.areas, "area")):
        if k in a and a[k] not in names:
            where.fail(ln(k), f"unknown {what} {a[k]!r} (places has: {', '.join(names) or 'none'})")
    if do == "roam_to" and "region" not in a:
        where.fail(step.line, "roam_to needs a region")
    if "vlr" in a:
        a["vlr"] = _digits(a["vlr"], where, ln("vlr"), "VLR GT", range(5, 16))
    if "mccmnc" in a:
        a["mccmnc"] = _digits(a["mccmnc"], where, ln("mccmnc"), "MCC+MNC", range(5, 7))
    if "subject" in a:
        a["subject"] = "" if a["subject"] is None else str(a["subject"])
        if "\0" in a["subject"] or len(a["subject"].encode()) > 30:     # one SMS carries the notification
            where.fail(ln("subject"), "subject: up to 30 bytes of text in UTF-8, no NUL")
    if "size" in a and not (isinstance(a["size"], int) and 0 < a["size"] < 2**32):
        where.fail(ln("size"), "size: the message's bytes, a whole number above 0")
    for k in ("lac", "cell", "packets"):
        if k in a and not (isinstance(a[k], int) and a[k] >= 0):
            where.fail(ln(k), f"{k} must be a non-negative number")
    if "via" in a:
        ok = ("cap", "isup", "both") if do == "call" else ("cs", "gprs", "lte")
        if a["via"] not in ok:
            where.fail(ln("via"), f"via must be one of {', '.join(ok)}")
    if "rat" in a:
        if a["rat"] not in RATS:
            where.fail(ln("rat"), f"unknown RAT {a['rat']!r} (known: {', '.join(RATS)})")
        a["rat"] = RATS[a["rat"]]
    if "ss" in a or do.endswith("_cf"):
        code = a.get("ss", "cfu")
        if code not in SS_CODES:
            where.fail(ln("ss"), f"unknown SS code {code!r} (known: {', '.join(SS_CODES)})")
        a["ss"] = SS_CODES[code]
    if do == "register_cf" and "to" not in a:
        where.fail(step.line, "register_cf needs `to`, the forwarded-to number")
    if do in ("call", "sms_mo") and "to" not in a:
        where.fail(step.line, f"{do} needs `to`")
    if "to" in a:
        to = str(a["to"])
        if to in places.hotlines:
            a["to"] = places.hotlines[to][0]
        else:
            a["to"] = _digits(to, where, ln("to"), "number (or a hotline name)")
    if "from" in a:
        s = str(a["from"])
        if not s.isdigit() and not (0 < len(s) <= 11 and all(c in _GSM7 for c in s)):
            where.fail(ln("from"), f"sender {s!r} must be digits or up to 11 GSM characters")
        a["from"] = s
    if "code" in a:
        s = str(a["code"])
        if not s or not all(c in "0123456789*#" for c in s):
            where.fail(ln("code"), f"USSD code {s!r} must be digits, * and #")
        a["code"] = s
    if "imei" in a:
        a["imei"] = _digits(a["imei"], where, ln("imei"), "IMEI", range(14, 16))
    if "tac" in a:
        a["tac"] = _digits(a["tac"], where, ln("tac"), "TAC", range(8, 9))
    if "same_tac" in a and not isinstance(a["same_tac"], bool):
        where.fail(ln("same_tac"), "same_tac is true or false")
    if "answer" in a and not isinstance(a["answer"], bool):
        where.fail(ln("answer"), "answer is true or false")
    if "duration" in a:
        a["duration"] = duration_ns(a["duration"], where, ln("duration"))
    if "apn" in a:
        if not re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*", str(a["apn"])):
            where.fail(ln("apn"), f"APN {a['apn']!r} is not labels separated by dots")
        a["apn"] = str(a["apn"])
    return a


def load(path: str) -> Story:
    """Read and check a story; every mistake is a StoryError `file:line: why`."""
    where = _Where(path)
    doc = _read_yaml(path)
    if doc is None:
        where.fail(1, "the story is empty")
    doc = where.mapping(doc, 1, "a story")
    where.keys(doc, {"start", "places", "background", "subscribers"}, "story")
    ln = lambda k: doc.lines.get(k, doc.line)
    start = _start_ns(doc["start"], where, ln("start")) if "start" in doc else int(DEFAULT_START.timestamp()) * 10**9
    pl = doc.get("places")
    if pl is None:
        places = Places()
    elif isinstance(pl, str):
        places = _places(os.path.join(os.path.dirname(os.path.abspath(path)), pl))
    else:
        places = _places(path, "places")
    bg = doc.get("background", _Map())
    bg = where.mapping(bg, ln("background"), "background")
    where.keys(bg, {"subscribers", "activity"}, "background")
    nbg, activity = bg.get("subscribers", 0), bg.get("activity", 1.0)
    if not (isinstance(nbg, int) and 0 <= nbg <= 100_000):
        where.fail(bg.lines.get("subscribers", bg.line), "background subscribers must be 0 to 100000")
    if not (isinstance(activity, (int, float)) and 0 <= activity <= 60):
        where.fail(bg.lines.get("activity", bg.line), "background activity must be 0 to 60 actions an hour")
    subs = doc.get("subscribers", _Map())
    subs = where.mapping(subs, ln("subscribers"), "subscribers")
    people, seen = [], {}
    end = 0
    for name, p in subs.items():
        pline = subs.lines[name]
        p = where.mapping(p, pline, f"subscriber {name}")
        where.keys(p, {"imsi", "msisdn", "imei", "network", "steps"}, f"subscriber {name}")
        pl_ = lambda k, p=p: p.lines.get(k, p.line)
        ids = {}
        for k, lens in (("imsi", range(14, 16)), ("msisdn", range(5, 16)), ("imei", range(14, 16))):
            if p.get(k) is not None:
                ids[k] = _digits(p[k], where, pl_(k), k.upper(), lens)
                if (k, ids[k]) in seen:
                    where.fail(pl_(k), f"{k.upper()} {ids[k]} is also {seen[(k, ids[k])]}'s")
                seen[(k, ids[k])] = name
        net = _digits(p["network"], where, pl_("network"), "network MCC+MNC", range(5, 7)) if "network" in p else None
        steps_ = p.get("steps", _List())
        if not isinstance(steps_, list):
            where.fail(pl_("steps"), "steps must be a list")
        steps, last = [], 0
        for i, st in enumerate(steps_):
            sline = steps_.lines[i]
            st = where.mapping(st, sline, f"{name} step {i + 1}")
            if "do" not in st or "at" not in st:
                where.fail(sline, "a step needs `at` (like +2h) and `do` (an action)")
            do = st["do"]
            if do not in ACTIONS:
                where.fail(st.lines["do"], f"unknown action {do!r} (known: {', '.join(ACTIONS)})")
            where.keys(st, ACTIONS[do] | {"at", "do"}, f"{do}")
            t = duration_ns(st["at"], where, st.lines["at"])
            if t < last:
                where.fail(st.lines["at"], f"{st['at']} is before the step above it")
            last = t
            steps.append(Step(name, i + 1, do, str(st["at"]), t, _check_args(st, do, places, where), sline))
            end = max(end, t)
        people.append(Person(name, ids.get("imsi"), ids.get("msisdn"), ids.get("imei"), net, steps, pline))
    return Story(path, start, places, people, nbg, float(activity), end + 600 * 10**9)
