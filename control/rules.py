"""Campaign rules: load a rules directory, check every file, compile conditions to numpy masks.

    rules = load("rules/")            # never raises: bad input becomes rules.errors
    for e in rules.errors:
        print(e)                      # file:line: field: why
    pred = rules.campaigns[0].trigger.where
    mask = pred.mask(col)             # col(field name) -> the column of the candidate rows

The format is rules/README.md; the fields a condition may name are control/fields.py.
YAML is composed into nodes (never constructed) so every value keeps its line and is read
as written: `010` stays the digits 010, `no` is not a boolean, `2026-11-01` not a date
object. Values are then read by what the field they belong to needs.
"""
import difflib
import os
import re
import string
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from touchpoint.probe.record import Loc, pack

from . import fields as F

PLACES_FILES = ("places.yaml", "places.yml")
POLICY_FILES = ("policy.yaml", "policy.yml")
STATUSES = ("draft", "active", "paused")
CHANNELS = ("sms", "http", "file")
SEND_MODES = ("auto", "approve")
DEFAULT_WINDOW_S = 48 * 3600
DEFAULT_DWELL_MINUTES = 30
DEFAULT_CF_WITHIN_S = 72 * 3600

NAME = re.compile(r"[a-z0-9][a-z0-9_-]*\Z")
LIST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")      # as control.lists.NAME_RE
TEMPLATE_FIELD = re.compile(r"[a-z_][a-z0-9_]*\Z")
SOURCE = re.compile(r"\d{1,20}\Z|[A-Za-z0-9 ]{1,11}\Z")
DURATION = re.compile(r"(\d+)\s*([smhd])\Z")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
PERCENT = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*%\Z")
INTEGER = re.compile(r"[-+]?(?:0x[0-9a-fA-F]+|\d+)\Z")
NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\Z")
DIGITS = re.compile(r"\d+\Z")
LAC_LOCS = (Loc.CGI, Loc.SAI, Loc.RAI, Loc.LAI)
TAC_LOCS = (Loc.TAI, Loc.ECGI)
LIMITS = {"lac": 0xFFFF, "tac": 0xFFFFFF, "cell": 0xFFFFFFFF}
NO_PLMN = 0xFFFF
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
YAML_TAG = "tag:yaml.org,2002:"
NULL_TAG = YAML_TAG + "null"
PLAIN_TAGS = {YAML_TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp")}


@dataclass(frozen=True)
class Error:
    file: str
    line: int           # 1-based; 0 when the error is about the file as a whole
    field: str          # dotted path of the value at fault, e.g. trigger.where.rat
    why: str

    def __str__(self):
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.why}" if self.field else f"{where}: {self.why}"


# --- predicates -------------------------------------------------------------------------------
#
# A where-block compiles to a small tree. mask(col, n) evaluates it on all candidate rows at
# once: col(name) returns the field's column (see rules/README.md, "Columns"); n, the number of
# rows, is needed only by a predicate that tests nothing, and defaults to len(col("kind")).

def isin(v: np.ndarray, values) -> np.ndarray:
    """np.isin, without its sorting for the few values conditions name."""
    values = np.asarray(values)
    if len(values) > 8:
        return np.isin(v, values)
    m = np.zeros(v.shape, bool)
    for x in values:
        m |= v == x
    return m


class Pred:
    """A compiled condition."""
    text = ""

    @property
    def fields(self) -> frozenset:
        return frozenset({self.field})

    def mask(self, col, n=None) -> np.ndarray:
        raise NotImplementedError

    def __str__(self):
        return self.text


@dataclass(frozen=True, eq=False)
class AllOf(Pred):
    """Every part holds (a where-block); no parts: always true."""
    parts: tuple = ()

    @property
    def fields(self):
        return frozenset().union(*(p.fields for p in self.parts))

    @property
    def text(self):
        return " and ".join(str(p) for p in self.parts) or "always"

    def mask(self, col, n=None):
        if not self.parts:
            return np.ones(len(col("kind")) if n is None else n, bool)
        m = self.parts[0].mask(col, n)
        for p in self.parts[1:]:
            m &= p.mask(col, n)
        return m


@dataclass(frozen=True, eq=False)
class Not(Pred):
    part: Pred
    text: str

    @property
    def fields(self):
        return self.part.fields

    def mask(self, col, n=None):
        return ~self.part.mask(col, n)


@dataclass(frozen=True, eq=False)
class Digits(Pred):
    """Packed digit strings (probe.record.pack): equal to one of `exact`, or starting with a
    prefix; a prefix of L digits is the value shifted right by 4*(width-L) bits."""
    field: str
    width: int
    exact: np.ndarray               # uint64
    prefixes: tuple                 # ((shift, uint64 array of shifted prefixes), ...)
    text: str

    def mask(self, col, n=None):
        v = np.asarray(col(self.field)).astype(np.uint64, copy=False)
        m = isin(v, self.exact)
        for shift, values in self.prefixes:
            m |= isin(v >> np.uint64(shift), values)
        return m


@dataclass(frozen=True, eq=False)
class Values(Pred):
    """Equal to one of `values` (ints for enums and numbers, bools for flags)."""
    field: str
    values: np.ndarray
    text: str

    def mask(self, col, n=None):
        return isin(np.asarray(col(self.field)), self.values)


_COMPARE = {"gt": np.greater, "gte": np.greater_equal, "lt": np.less, "lte": np.less_equal}
_OP_TEXT = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


@dataclass(frozen=True, eq=False)
class Compare(Pred):
    field: str
    op: str                         # gt, gte, lt, lte
    value: object
    text: str

    def mask(self, col, n=None):
        return _COMPARE[self.op](np.asarray(col(self.field)), self.value)


@dataclass(frozen=True, eq=False)
class Text(Pred):
    """Equal to one of `exact` or starting with one of `prefixes`; str or bytes columns
    (bytes are compared as UTF-8); `fold` compares in lower case."""
    field: str
    exact: tuple
    prefixes: tuple
    fold: bool
    text: str

    def mask(self, col, n=None):
        c = np.asarray(col(self.field))
        if c.dtype.kind not in "SU":
            c = c.astype(str)
        enc = (lambda s: s.encode()) if c.dtype.kind == "S" else (lambda s: s)
        if self.fold:
            c = np.char.lower(c)
        m = np.isin(c, np.array([enc(s) for s in self.exact])) if self.exact else np.zeros(len(c), bool)
        for p in self.prefixes:
            m |= np.char.startswith(c, enc(p))
        return m


@dataclass(frozen=True, eq=False)
class Has(Pred):
    """A capability bitmask holds every bit of `bits`."""
    field: str
    bits: int
    text: str

    def mask(self, col, n=None):
        c = np.asarray(col(self.field))
        return (c & c.dtype.type(self.bits)) == self.bits


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


# --- what a rules directory becomes -------------------------------------------------------------

@dataclass(frozen=True)
class Region:
    name: str
    index: int                      # 1-based, in file order; 0 is "no region"
    node: tuple = ()                # GT prefixes of the serving node ('8613900010*') or whole GTs
    mccmnc: tuple = ()              # serving networks, 'MCCMNC'
    negate: bool = False            # mccmnc is {not: [...]}: any known network but these
    lac: tuple = ()                 # ((first, last), ...) inclusive, in home networks
    tac: tuple = ()
    line: int = 0


@dataclass(frozen=True)
class Area:
    name: str
    index: int                      # 1-based, in file order; 0 is "no area"
    cells: tuple = ()               # ((lac_tac, first_cell, last_cell), ...) inclusive
    line: int = 0


_PREFIX_DT = np.dtype([("region", "<u2"), ("value", "<u8"), ("digits", "u1")])
_NETWORK_DT = np.dtype([("region", "<u2"), ("mcc", "<u2"), ("mnc", "<u2"), ("negate", "?")])
_RANGE_DT = np.dtype([("region", "<u2"), ("tac", "?"), ("first", "<u4"), ("last", "<u4")])
_AREA_DT = np.dtype([("first", "<u8"), ("last", "<u8"), ("area", "<u2")])
_PLMN_DT = np.dtype([("mcc", "<u2"), ("mnc", "<u2")])


def _plmn(mccmnc: str) -> tuple:
    """'46000' -> (mcc, mnc) packed as the record packs them (uint16, 4 digits, 0xF filler)."""
    return int(pack(mccmnc[:3], 4)), int(pack(mccmnc[3:], 4))


@dataclass(frozen=True, eq=False)
class Places:
    """places.yaml, with lookup tables as numpy arrays (read-only) for vectorised or native use:

    home_table    (mcc, mnc) of the home networks
    prefix_table  (region, value, digits): node GT prefixes, value packed as probe.record.pack
    network_table (region, mcc, mnc, negate): serving networks of a region
    range_table   (region, tac, first, last): LAC (tac false) or TAC ranges, home networks only
    area_table    (first, last, area): sorted, disjoint ranges of key = lac_tac << 32 | cell

    A region's tests are alternatives; the first region (lowest index) that matches wins.
    """
    home: tuple = ()
    regions: tuple = ()
    areas: tuple = ()
    hotlines: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))  # name -> numbers
    file: str = ""
    home_table: np.ndarray = field(init=False, repr=False)
    prefix_table: np.ndarray = field(init=False, repr=False)
    network_table: np.ndarray = field(init=False, repr=False)
    range_table: np.ndarray = field(init=False, repr=False)
    area_table: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, _frozen(v))
        set_("home_table", np.array([_plmn(p) for p in self.home], _PLMN_DT))
        set_("prefix_table", np.array([(r.index, pack(p.rstrip("*")), len(p.rstrip("*")))
                                       for r in self.regions for p in r.node], _PREFIX_DT))
        set_("network_table", np.array([(r.index, *_plmn(p), r.negate) for r in self.regions for p in r.mccmnc],
                                       _NETWORK_DT))
        set_("range_table", np.array([(r.index, tac, a, b) for r in self.regions
                                      for tac, ranges in ((False, r.lac), (True, r.tac)) for a, b in ranges],
                                     _RANGE_DT))
        areas = sorted(((lac << 32 | a), (lac << 32 | b), area.index) for area in self.areas
                       for lac, a, b in area.cells)
        set_("area_table", np.array(areas, _AREA_DT))

    def region_index(self, name: str) -> int:
        return next((r.index for r in self.regions if r.name == name), 0)

    def area_index(self, name: str) -> int:
        return next((a.index for a in self.areas if a.name == name), 0)

    def region_of(self, records: np.ndarray) -> np.ndarray:
        """Region index (0: none) of each record's serving location (node, mcc, mnc, lac_tac,
        loc_type: a RECORD_DTYPE array, or a mapping of these names to columns)."""
        node, mcc, mnc = records["node"].astype(np.uint64), records["mcc"], records["mnc"]
        lac_tac, loc_type = records["lac_tac"], records["loc_type"]
        known = mcc != NO_PLMN
        home = ~known if len(self.home_table) else np.ones(len(node), bool)
        for h in self.home_table:
            home |= (mcc == h["mcc"]) & (mnc == h["mnc"])
        is_lac, is_tac = isin(loc_type, LAC_LOCS) & home, isin(loc_type, TAC_LOCS) & home
        out = np.zeros(len(node), np.uint16)
        for r in reversed(self.regions):                 # the first region listed wins
            hit = np.zeros(len(node), bool)
            for p in self.prefix_table[self.prefix_table["region"] == r.index]:
                shift = np.uint64(4 * (16 - int(p["digits"])))
                hit |= (node >> shift) == (p["value"] >> shift)
            nets = self.network_table[self.network_table["region"] == r.index]
            if len(nets):
                same = np.zeros(len(node), bool)
                for net in nets:
                    same |= (mcc == net["mcc"]) & (mnc == net["mnc"])
                hit |= known & (~same if r.negate else same)
            for rg in self.range_table[self.range_table["region"] == r.index]:
                hit |= (is_tac if rg["tac"] else is_lac) & (lac_tac >= rg["first"]) & (lac_tac <= rg["last"])
            out[hit] = r.index
        return out

    def area_of(self, lac_tac, cell) -> np.ndarray:
        """Area index (0: none) of each (LAC or TAC, cell)."""
        key = np.asarray(lac_tac, np.uint64) << np.uint64(32) | np.asarray(cell, np.uint64)
        t = self.area_table
        i = np.searchsorted(t["first"], key, side="right") - 1
        j = np.maximum(i, 0)
        hit = (i >= 0) & (key <= t["last"][j]) if len(t) else np.zeros(len(key), bool)
        return np.where(hit, t["area"][j] if len(t) else 0, 0).astype(np.uint16)


@dataclass(frozen=True)
class Trigger:
    event: str
    where: Pred                     # on the event's, the record's and the state's fields
    minutes: int = 0                # area_dwell: the dwell time
    within_s: int = 0               # cf_then_power_on: seconds from setting the forwarding
    numbers: tuple = ()             # hotline_call: the numbers ('10086', '95*'), also tested by `where`

    def mask(self, col, n=None) -> np.ndarray:
        return self.where.mask(col, n)


@dataclass(frozen=True)
class Audience:
    lists: tuple = ()               # in at least one of these lists (none named: anyone)
    where: Pred | None = None       # None: no condition


@dataclass(frozen=True)
class Message:
    channel: str                    # sms | http | file; "": the policy's default channel
    text: str
    fields: tuple = ()              # the template's {names}, in order of first use
    source: str = ""                # the SMPP source address / service code ("": the channel's)

    def render(self, values: dict) -> str:
        """The text with each {name} replaced by str(values[name]); nothing else is looked up,
        so no attribute or index of a value is ever reached ({x.__class__} cannot be written:
        `rules check` refuses it). KeyError names a field without a value."""
        return TEMPLATE.sub(lambda m: m.group(0)[0] if m.group(1) is None else str(values[m.group(1)]), self.text)


TEMPLATE = re.compile(r"\{\{|\}\}|\{([a-z_][a-z0-9_]*)\}")


@dataclass(frozen=True)
class Goal:
    event: str                      # a scenario event ("": a conversion of an imported list)
    within_s: int                   # seconds after the message (held out: after the decision)
    where: Pred
    list: str = ""                  # an imported list of conversions (msisdn, product, time)
    product: str = ""               # only its rows of this product ("": any)


@dataclass(frozen=True)
class Campaign:
    id: str
    name: str
    status: str
    trigger: Trigger
    audience: Audience
    exclude: Audience
    message: Message
    valid_from_ns: int | None = None    # since the epoch, inclusive
    valid_until_ns: int | None = None   # since the epoch, exclusive (a date `until` is its whole day)
    window_s: int = DEFAULT_WINDOW_S      # the message goes out at most this long after the trigger
    priority: int = 0
    holdout: float = 0.0            # a fraction, 0.1 for 10%
    goal: Goal | None = None
    send: str = "auto"
    cooldown_s: int = 0             # no second message of this campaign to a subscriber within it (0: none)
    quota: int = 0                  # messages a day, in the policy's time zone (0: no quota)
    file: str = ""
    line: int = 0

    def valid_at(self, ts_ns) -> np.ndarray:
        """Mask of event times inside the validity period."""
        ts = np.asarray(ts_ns, np.int64)
        m = np.ones(ts.shape, bool)
        if self.valid_from_ns is not None:
            m &= ts >= self.valid_from_ns
        if self.valid_until_ns is not None:
            m &= ts < self.valid_until_ns
        return m

    def field_names(self) -> tuple:
        """What a trigger shows: the event's own fields, then those the conditions test."""
        names = list(F.EVENTS[self.trigger.event].fields)
        for pred in (self.trigger.where, self.audience.where):
            names += sorted(pred.fields - set(names)) if pred is not None else []
        # and what the message's template needs (the trigger names the subscriber itself)
        names += [n for n in self.message.fields if n not in names and n not in TRIGGER_KEYS]
        return tuple(names)


TRIGGER_KEYS = ("imsi", "msisdn", "campaign")       # a template field every trigger gives
DEFAULT_CAPS = ((86400, 1), (7 * 86400, 3))         # ((per seconds, at most), ...)
DEFAULT_OPTOUT_KEYWORDS = ("TD", "退订", "T", "STOP")
# The settings policy.yaml may give each channel, and what each one is (control/channels.py,
# control/smpp.py read them).
CHANNEL_SETTINGS = MappingProxyType({
    "sms": {"host": "text", "port": "port", "system_id": "text", "password": "text", "system_type": "text",
            "bind": ("transceiver", "transmitter"), "window": "count", "rate": "rate", "source": "text"},
    "http": {"url": "url", "headers": "headers", "timeout": "duration", "rate": "rate"},
    "file": {"path": "text", "rate": "rate"},
})
REQUIRED_SETTINGS = {"sms": ("host", "system_id"), "http": ("url",), "file": ()}


@dataclass(frozen=True)
class Policy:
    """policy.yaml: the contact policy's settings (control.policy applies them); these defaults
    when the rules directory has none."""
    timezone: str = "UTC"
    caps: tuple = DEFAULT_CAPS      # ((per seconds, at most), ...)
    quiet: tuple | None = None      # (from, to) in minutes after local midnight; from > to spans midnight
    arbitration_s: int = 60
    channel: str = "file"           # the channel of a message that names none
    channels: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))  # name -> {setting: value}
    optout_lists: tuple = ()
    optout_keywords: tuple = DEFAULT_OPTOUT_KEYWORDS
    country_code: str = ""          # put in front of MO senders in national format
    file: str = ""

    @property
    def tz(self):
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class RuleSet:
    path: str
    campaigns: tuple                # the campaigns without errors, by file name
    places: Places
    errors: tuple                   # Error, by file and line
    policy: Policy = Policy()

    @property
    def ok(self) -> bool:
        return not self.errors


# --- reading YAML with lines -----------------------------------------------------------------------

_BAD = object()                     # a value that was reported as wrong


def _line(node) -> int:
    return node.start_mark.line + 1


def _suggest(name: str, choices, cutoff=0.7) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=cutoff)
    return f": did you mean {close[0]!r}?" if close else ""


def _one_of(choices) -> str:
    return ", ".join(choices)


class _Doc:
    """The checks of one file: each reports what is wrong and where, and carries on."""

    def __init__(self, file: str):
        self.file = file
        self.errors = []

    def err(self, where, path: str, why: str):
        line = where if isinstance(where, int) else _line(where)
        self.errors.append(Error(self.file, line, path, why))
        return _BAD

    def compose(self, text: str):
        """The YAML document's node tree, or None after reporting why not."""
        try:
            docs = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            why = " ".join(filter(None, (e.context, e.problem)))
            return self.err(mark.line + 1 if mark else 0, "syntax", why or str(e))
        except yaml.YAMLError as e:      # a reader error: a character YAML does not allow
            pos = getattr(e, "position", None)
            line = text.count("\n", 0, pos) + 1 if pos is not None else 0
            return self.err(line, "syntax", str(e).splitlines()[0])
        docs = [d for d in docs if d is not None]
        if not docs:
            return self.err(0, "", "empty file")
        if len(docs) > 1:
            return self.err(_line(docs[1]), "", "one campaign per file: this file has another document")
        return docs[0]

    def mapping(self, node, path: str, keys, required=(), hints=None) -> dict | None:
        """{key: value node} of a mapping; unknown, duplicate and missing keys reported."""
        if not isinstance(node, MappingNode):
            self.err(node, path or "(file)", f"must be a mapping of {_one_of(keys)}")
            return None
        out = {}
        for knode, vnode in node.value:
            key = knode.value if isinstance(knode, ScalarNode) else None
            kpath = f"{path}.{key}" if path else key
            if key is None:
                self.err(knode, path, "a key must be a plain name")
            elif key in out:
                self.err(knode, kpath, f"given twice (first at line {_line(out[key][0])})")
            elif key not in keys:
                hint = (hints or {}).get(key) or _suggest(key, keys).lstrip(": ")
                self.err(knode, kpath, f"unknown key{': ' + hint if hint else ''} (known: {_one_of(keys)})")
            else:
                out[key] = (knode, vnode)
        for key in required:
            if key not in out:
                self.err(node, f"{path}.{key}" if path else key, "missing")
        return {k: v for k, (_, v) in out.items()}

    def scalar(self, node, path: str):
        """The scalar's text as written."""
        if not isinstance(node, ScalarNode):
            return self.err(node, path, "must be a single value, not a " +
                            ("list" if isinstance(node, SequenceNode) else "mapping"))
        if node.tag == NULL_TAG and node.style is None:
            return self.err(node, path, "no value given")
        if node.tag not in PLAIN_TAGS:
            return self.err(node, path, f"YAML tags such as {node.tag} are not used in rules")
        return node.value

    def items(self, node, path: str) -> list:
        """A list's nodes (a single value is a list of one)."""
        if isinstance(node, SequenceNode):
            if not node.value:
                self.err(node, path, "empty list")
            return node.value
        if isinstance(node, MappingNode):
            self.err(node, path, "must be a value or a list of values, not a mapping")
            return []
        return [node]

    def choice(self, node, path, choices, what="one of"):
        v = self.scalar(node, path)
        if v is not _BAD and v not in choices:
            return self.err(node, path, f"{v!r} is not {what}" + (_suggest(v, choices) or f" ({_one_of(choices)})")
                            if what != "one of" else f"{v!r} is not one of {_one_of(choices)}{_suggest(v, choices)}")
        return v

    def name(self, node, path, what="a name", pattern=NAME):
        v = self.scalar(node, path)
        if v is not _BAD and not pattern.match(v):
            return self.err(node, path, f"{v!r} is not {what}")
        return v

    def integer(self, node, path, lo=None, hi=None, seconds=False):
        v = self.scalar(node, path)
        if v is _BAD:
            return v
        if seconds and DURATION.match(v.strip()):
            return self.duration(node, path, zero=True)
        if not INTEGER.match(v.strip()):
            return self.err(node, path, f"{v!r} is not a whole number" + (" or a duration like 30m" if seconds else ""))
        n = int(v.strip(), 0) if "x" in v.lower() else int(v.strip())
        if (lo is not None and n < lo) or (hi is not None and n > hi):
            return self.err(node, path, f"{n} is out of range ({lo} to {hi})" if hi is not None
                            else f"{n} is below {lo}")
        return n

    def duration(self, node, path, zero=False):
        v = self.scalar(node, path)
        if v is _BAD:
            return v
        m = DURATION.match(v.strip())
        if not m:
            return self.err(node, path, f"{v!r} is not a duration: a number followed by s, m, h or d (48h)")
        n = int(m.group(1)) * UNITS[m.group(2)]
        if not n and not zero:
            return self.err(node, path, "must be longer than 0")
        return n

    def percent(self, node, path):
        v = self.scalar(node, path)
        if v is _BAD:
            return v
        m = PERCENT.match(v.strip())
        if not m:
            return self.err(node, path, f"{v!r} is not a percentage like 10%")
        p = float(m.group(1))
        if p >= 100:
            return self.err(node, path, f"{v} leaves no one to send to: below 100% please")
        return p / 100

    def time(self, node, path, end=False):
        """A date (UTC; as an end: the end of that day) or an ISO time, to ns since the epoch."""
        v = self.scalar(node, path)
        if v is _BAD:
            return v
        try:
            d = date.fromisoformat(v.strip())
            t = datetime(d.year, d.month, d.day, tzinfo=timezone.utc) + (timedelta(days=1) if end else timedelta())
        except ValueError:
            try:
                t = datetime.fromisoformat(v.strip())
            except ValueError:
                return self.err(node, path, f"{v!r} is not a date (2026-11-01) or an ISO time (2026-11-01T08:00+08:00)")
            if t.tzinfo is None:
                t = t.replace(tzinfo=timezone.utc)
        return (t - EPOCH) // timedelta(microseconds=1) * 1000

    def digits(self, node, path, width=16, prefix=True):
        """Digits as written, ('8613', True) for '8613*'."""
        v = self.scalar(node, path)
        if v is _BAD:
            return v
        v = v.strip()
        star = prefix and v.endswith("*")
        d = v[:-1] if star else v
        if not DIGITS.match(d):
            if star and not d:
                return self.err(node, path, "'*' alone matches everything: leave the condition out")
            return self.err(node, path, f"{v!r} is not a string of digits" + (" (a trailing * makes a prefix)"
                                                                                   if prefix else ""))
        if len(d) > width:
            return self.err(node, path, f"{v!r} has more than {width} digits")
        return d, star

    def mccmnc(self, node, path):
        v = self.digits(node, path, prefix=False)
        if v is not _BAD and len(v[0]) not in (5, 6):
            return self.err(node, path, f"{v[0]!r} is not an MCC+MNC of 5 or 6 digits")
        return v if v is _BAD else v[0]


# --- conditions ------------------------------------------------------------------------------------

OPERATORS = ("not", "gt", "gte", "lt", "lte", "has")
OP_HINTS = {"in": "write the list itself: field: [a, b]", "eq": "write the value itself: field: a",
            "is": "write the value itself: field: a", "ne": "use {not: a}", "neq": "use {not: a}"}


@dataclass(frozen=True)
class _Column:
    """A list column: typed by the values a rule compares it with."""
    name: str
    type: str = "list"


class _Conditions:
    """Compiles where-blocks of one file against the field catalogue and the places."""

    def __init__(self, doc: _Doc, places: "Places | None", columns=None):
        self.doc = doc
        self.places = places
        self.columns = columns          # known list columns, or None: any name may be a list column

    def where(self, node, path, fields, context) -> Pred:
        """context: 'trigger' (event fields given) or 'audience' (list columns allowed)."""
        doc = self.doc
        if not isinstance(node, MappingNode):
            doc.err(node, path, "must be a mapping of field: test")
            return AllOf(())
        parts, seen = [], {}
        for knode, vnode in node.value:
            name = knode.value if isinstance(knode, ScalarNode) else None
            fpath = f"{path}.{name}"
            if name is None:
                doc.err(knode, path, "a field name must be a plain name")
                continue
            if name in seen:
                doc.err(knode, fpath, f"given twice (first at line {seen[name]})")
                continue
            seen[name] = _line(knode)
            f = fields.get(name)
            if f is None:
                f = self.unknown(knode, fpath, name, fields, context)
                if f is None:
                    continue
            p = self.test(f, vnode, fpath)
            if p is not _BAD:
                parts.append(p)
        return AllOf(tuple(parts))

    def unknown(self, knode, path, name, fields, context):
        """A name not in the catalogue: a list column in an audience, else an error with a hint."""
        of_event = name in F.RECORD_FIELDS or any(name in e.fields for e in F.EVENTS.values())
        if context == "audience" and of_event:
            hint = ": a field of the event, put it under trigger.where"
        elif context == "audience" and self.columns is not None:
            if name in self.columns:
                return _Column(name)
            hint = _suggest(name, [*fields, *sorted(self.columns)]) or ": not a column of the imported lists"
        elif context == "audience":
            # Lists are imported later: any name may be a column, but not a near miss of a built-in one.
            if TEMPLATE_FIELD.match(name) and not _suggest(name, fields, cutoff=0.75):
                return _Column(name)
            hint = _suggest(name, fields) or ": a list column name is lower-case letters, digits and _"
        else:
            events = [e.name for e in F.EVENTS.values() if name in e.fields]
            if events:
                hint = f": a field of {_one_of(events)}, not of this event"
            elif name in F.AUDIENCE_FIELDS:
                hint = ": an audience attribute, put it under audience.where"
            else:
                hint = _suggest(name, fields)
        self.doc.err(knode, path, f"unknown field{hint}")
        return None

    def test(self, f, node, path):
        doc = self.doc
        if isinstance(node, MappingNode):
            parts, ops = [], set()
            if not node.value:
                return doc.err(node, path, "empty test")
            for knode, vnode in node.value:
                op = knode.value if isinstance(knode, ScalarNode) else "?"
                opath = f"{path}.{op}"
                if op in ops:
                    doc.err(knode, opath, "given twice")
                    continue
                ops.add(op)
                if op not in OPERATORS:
                    hint = OP_HINTS.get(op) or _suggest(op, OPERATORS).lstrip(": ")
                    doc.err(knode, opath, f"unknown operator{': ' + hint if hint else ''} "
                                          f"(operators: {_one_of(OPERATORS)})")
                    continue
                if op == "not":
                    p = self.equal(f, vnode, opath)
                    if p is not _BAD:
                        p = Not(p, f"{f.name} not in [{_values_text(vnode)}]" if isinstance(vnode, SequenceNode)
                                else f"{f.name} != {vnode.value}")
                elif op == "has":
                    p = self.has(f, vnode, opath)
                else:
                    p = self.compare(f, op, vnode, opath)
                if p is not _BAD:
                    parts.append(p)
            if len(parts) != len(node.value):
                return _BAD
            return parts[0] if len(parts) == 1 else AllOf(tuple(parts))
        return self.equal(f, node, path)

    def equal(self, f, node, path):
        """field: value, field: [a, b] (one of them), digit and text prefixes with a trailing *."""
        doc = self.doc
        if f.type == F.CAPS:
            return doc.err(node, path, f"{f.name} is a capability set: test it with {{has: {next(iter(f.names))}}}")
        items = doc.items(node, path)
        if not items:
            return _BAD
        paths = [path if len(items) == 1 or not isinstance(node, SequenceNode) else f"{path}[{i}]"
                 for i in range(len(items))]
        text = f"{f.name} in [{_values_text(node)}]" if isinstance(node, SequenceNode) else f"{f.name} = {node.value}"
        if f.type == "list":
            return self.column_equal(f, items, paths, text)
        values = [self.value(f, n, p) for n, p in zip(items, paths)]
        if any(v is _BAD for v in values):
            return _BAD
        if f.type == F.DIGITS:
            return _digits(f, values, text)
        if f.type == F.TEXT:
            fold = (lambda s: s.lower()) if f.fold else (lambda s: s)
            return Text(f.name, tuple(fold(s) for s, star in values if not star),
                        tuple(fold(s) for s, star in values if star), f.fold, text)
        return Values(f.name, _frozen(np.array(values)), text)

    def value(self, f, node, path):
        doc = self.doc
        if f.type == F.DIGITS:
            return doc.digits(node, path, f.width)
        if f.type == F.INT:
            return doc.integer(node, path, seconds=f.seconds)
        if f.type == F.BOOL:
            v = doc.scalar(node, path)
            if v is not _BAD and v.lower() not in ("true", "false"):
                return doc.err(node, path, f"{v!r} is not true or false")
            return v if v is _BAD else v.lower() == "true"
        if f.type == F.TEXT:
            v = doc.scalar(node, path)
            if v is _BAD:
                return v
            if v == "*" or not v:
                return doc.err(node, path, "an empty text or '*' alone: leave the condition out")
            return (v[:-1], True) if v.endswith("*") else (v, False)
        # an enum: a name, or for record enums also the raw number
        v = doc.scalar(node, path)
        if v is _BAD:
            return v
        if f.places:
            if self.places is None:
                return doc.err(node, path, f"{f.places} are named in places.yaml, which is missing")
            names = [x.name for x in getattr(self.places, f.places)]
            index = names.index(v) + 1 if v in names else 0
            if not index:
                return doc.err(node, path, f"{v!r} is not one of the {f.places} in places.yaml"
                                           f"{_suggest(v, names) or ' (' + _one_of(names) + ')'}")
            return index
        if v in f.names:
            return f.names[v]
        if f.source == F.RECORD and INTEGER.match(v):
            return int(v, 0) if "x" in v.lower() else int(v)
        return doc.err(node, path, f"{v!r} is not a {f.name}{_suggest(v, f.names) or ' (' + _one_of(f.names) + ')'}")

    def column_equal(self, f, items, paths, text):
        """A list column compared with numbers, true/false, or texts (prefixes with *)."""
        doc = self.doc
        vals = [doc.scalar(n, p) for n, p in zip(items, paths)]
        if any(v is _BAD for v in vals):
            return _BAD
        plain = [n.style is None for n in items]
        if all(p and NUMBER.match(v) for p, v in zip(plain, vals)):
            return Values(f.name, _frozen(np.array([_number(v) for v in vals])), text)
        if all(p and v.lower() in ("true", "false") for p, v in zip(plain, vals)):
            return Values(f.name, _frozen(np.array([v.lower() == "true" for v in vals])), text)
        if any(p and (NUMBER.match(v) or v.lower() in ("true", "false")) for p, v in zip(plain, vals)):
            return doc.err(items[0], paths[0], "mixes numbers or true/false with texts: quote the texts")
        return Text(f.name, tuple(v for v in vals if not v.endswith("*")),
                    tuple(v[:-1] for v in vals if v.endswith("*")), False, text)

    def compare(self, f, op, node, path):
        doc = self.doc
        if f.type not in (F.INT, "list"):
            return doc.err(node, path, f"{op} compares numbers; {f.name} is {_a(f.type)}")
        if f.type == F.INT:
            v = doc.integer(node, path, seconds=f.seconds)
        else:
            v = doc.scalar(node, path)
            if v is not _BAD and not NUMBER.match(v):
                v = doc.err(node, path, f"{v!r} is not a number")
            elif v is not _BAD:
                v = _number(v)
        if v is _BAD:
            return v
        return Compare(f.name, op, v, f"{f.name} {_OP_TEXT[op]} {node.value}")

    def has(self, f, node, path):
        doc = self.doc
        if f.type != F.CAPS:
            return doc.err(node, path, f"has tests a capability set; {f.name} is {_a(f.type)}")
        bits = 0
        for i, n in enumerate(doc.items(node, path)):
            v = doc.scalar(n, path)
            if v is _BAD:
                return v
            if v not in f.names:
                return doc.err(n, path, f"{v!r} is not a {f.name} capability"
                                        f"{_suggest(v, f.names) or ' (' + _one_of(f.names) + ')'}")
            bits |= f.names[v]
        return Has(f.name, bits, f"{f.name} has {_values_text(node)}") if bits else _BAD


def _digits(f, values, text) -> Digits:
    """values: [(digits, is_prefix)]; prefixes grouped by length, one shifted compare each."""
    exact = [d for d, star in values if not star]
    by_shift = {}
    for d, star in values:
        if star:
            by_shift.setdefault(4 * (f.width - len(d)), []).append(d)
    packed = lambda ds: pack(ds, f.width).astype(np.uint64)
    return Digits(f.name, f.width, _frozen(packed(exact)),
                  tuple((s, _frozen(packed(ds) >> np.uint64(s))) for s, ds in sorted(by_shift.items())), text)


def _a(type_: str) -> str:
    return {"int": "a number", "enum": "a set of names", "list": "a list column"}.get(type_, f"a {type_} field")


def _number(v: str):
    return int(v) if re.fullmatch(r"[-+]?\d+", v) else float(v)


def _values_text(node) -> str:
    if isinstance(node, SequenceNode):
        return ", ".join(getattr(n, "value", "?") for n in node.value)
    return getattr(node, "value", "?")


# --- places.yaml -------------------------------------------------------------------------------------

def _places(doc: _Doc, root) -> Places:
    top = doc.mapping(root, "", ("home", "regions", "areas", "hotlines"))
    if top is None:
        return Places(file=doc.file)
    home = ()
    if "home" in top:
        home = tuple(v for i, n in enumerate(doc.items(top["home"], "home"))
                     if (v := doc.mccmnc(n, f"home[{i}]")) is not _BAD)
    regions = tuple(_region(doc, i + 1, k, v) for i, (k, v) in enumerate(_named(doc, top.get("regions"), "regions")))
    areas = tuple(_area(doc, i + 1, k, v) for i, (k, v) in enumerate(_named(doc, top.get("areas"), "areas")))
    _check_overlaps(doc, areas)
    hotlines = {}
    for knode, node in _named(doc, top.get("hotlines"), "hotlines"):
        path = f"hotlines.{knode.value}"
        nums = [doc.digits(n, f"{path}[{i}]") for i, n in enumerate(doc.items(node, path))]
        hotlines[knode.value] = tuple(d + ("*" if star else "") for d, star in (x for x in nums if x is not _BAD))
    return Places(home, regions, areas, MappingProxyType(hotlines), doc.file)


def _named(doc, node, path) -> list:
    """[(name node, value node)] of a mapping of named things; names checked, duplicates reported."""
    if node is None:
        return []
    if not isinstance(node, MappingNode):
        doc.err(node, path, "must be a mapping of name: definition")
        return []
    out, seen = [], {}
    for knode, vnode in node.value:
        name = doc.name(knode, path, "a name of lower-case letters, digits, _ and -")
        if name is _BAD:
            continue
        if name in seen:
            doc.err(knode, f"{path}.{name}", f"given twice (first at line {seen[name]})")
            continue
        seen[name] = _line(knode)
        out.append((knode, vnode))
    return out


def _region(doc, index, knode, node) -> Region:
    name, path = knode.value, f"regions.{knode.value}"
    keys = doc.mapping(node, path, ("node", "mccmnc", "lac", "tac")) or {}
    if not keys and isinstance(node, MappingNode):
        doc.err(node, path, "a region needs node, mccmnc, lac or tac")
    nodes = []
    for i, n in enumerate(doc.items(keys["node"], f"{path}.node") if "node" in keys else ()):
        d = doc.digits(n, f"{path}.node[{i}]")
        if d is not _BAD:
            nodes.append(d[0] + ("*" if d[1] else ""))
    networks, negate = (), False
    if "mccmnc" in keys:
        net = keys["mccmnc"]
        if isinstance(net, MappingNode):
            inner = doc.mapping(net, f"{path}.mccmnc", ("not",), required=("not",)) or {}
            net, negate = inner.get("not"), True
        if net is not None:
            networks = tuple(v for i, n in enumerate(doc.items(net, f"{path}.mccmnc"))
                             if (v := doc.mccmnc(n, f"{path}.mccmnc[{i}]")) is not _BAD)
    ranges = {k: _ranges(doc, keys[k], f"{path}.{k}", (k,)) if k in keys else () for k in ("lac", "tac")}
    return Region(name, index, tuple(nodes), networks, negate, ranges["lac"], ranges["tac"], _line(knode))


def _ranges(doc, node, path, parts) -> tuple:
    """[[first, last], ...] (parts: what each number is, e.g. ('lac',) or ('lac', 'cell'))."""
    out = []
    if not isinstance(node, SequenceNode):
        doc.err(node, path, f"must be a list of [{', '.join(parts[:-1] + ('first', 'last'))}]")
        return ()
    want = len(parts) + 1
    names = parts[:-1] + (f"first {parts[-1]}", f"last {parts[-1]}")
    for i, item in enumerate(node.value):
        ipath = f"{path}[{i}]"
        if not isinstance(item, SequenceNode) or len(item.value) != want:
            doc.err(item, ipath, f"must be [{', '.join(names)}]")
            continue
        limits = [LIMITS[p] for p in parts[:-1]] + [LIMITS[parts[-1]]] * 2
        nums = [doc.integer(n, ipath, 0, hi) for n, hi in zip(item.value, limits)]
        if _BAD in nums:
            continue
        if nums[-2] > nums[-1]:
            doc.err(item, ipath, f"{names[-2]} {nums[-2]} is above {names[-1]} {nums[-1]}")
            continue
        out.append(tuple(nums))
    return tuple(out)


def _area(doc, index, knode, node) -> Area:
    name, path = knode.value, f"areas.{knode.value}"
    keys = doc.mapping(node, path, ("cells", "ranges")) or {}
    if not keys and isinstance(node, MappingNode):
        doc.err(node, path, "an area needs cells or ranges")
    cells = [(lac, c, c) for lac, c in _ranges_pairs(doc, keys.get("cells"), f"{path}.cells")]
    if "ranges" in keys:
        cells += _ranges(doc, keys["ranges"], f"{path}.ranges", ("lac", "cell"))
    return Area(name, index, tuple(cells), _line(knode))


def _ranges_pairs(doc, node, path) -> list:
    """cells: [[lac, cell], ...]."""
    if node is None:
        return []
    if not isinstance(node, SequenceNode):
        doc.err(node, path, "must be a list of [lac, cell]")
        return []
    out = []
    for i, item in enumerate(node.value):
        ipath = f"{path}[{i}]"
        if not isinstance(item, SequenceNode) or len(item.value) != 2:
            doc.err(item, ipath, "must be [lac, cell]")
            continue
        lac = doc.integer(item.value[0], ipath, 0, LIMITS["lac"])
        cell = doc.integer(item.value[1], ipath, 0, LIMITS["cell"])
        if _BAD not in (lac, cell):
            out.append((lac, cell))
    return out


def _check_overlaps(doc, areas):
    """Two areas sharing a cell make the area of a location ambiguous."""
    spans = sorted(((lac << 32 | a, lac << 32 | b, area) for area in areas for lac, a, b in area.cells),
                   key=lambda span: span[:2])
    for (a0, b0, x), (a1, b1, y) in zip(spans, spans[1:]):
        if a1 <= b0 and x is not y:
            later = max(x, y, key=lambda ar: ar.index)
            other = x if later is y else y
            doc.err(later.line, f"areas.{later.name}",
                    f"shares cells with area {other.name!r} (line {other.line}): LAC/TAC {a1 >> 32}, "
                    f"cell {a1 & 0xFFFFFFFF}")


# --- campaigns -------------------------------------------------------------------------------------

CAMPAIGN_KEYS = ("id", "name", "status", "valid", "trigger", "audience", "exclude", "window", "message",
                 "priority", "holdout", "goal", "send", "cooldown", "quota")
CAMPAIGN_HINTS = {"when": "the scenario goes under trigger.event", "event": "put it under trigger: {event: ...}",
                  "text": "put it under message: {text: ...}", "lists": "put it under audience: {lists: [...]}"}


def _campaign(doc: _Doc, root, places: Places | None, columns, policy: Policy = Policy()) -> Campaign | None:
    top = doc.mapping(root, "", CAMPAIGN_KEYS, required=("id", "trigger", "message"), hints=CAMPAIGN_HINTS)
    if top is None:
        return None
    cond = _Conditions(doc, places, columns)
    get = lambda key, fn, default: fn(top[key], key) if key in top else default
    cid = get("id", lambda n, p: doc.name(n, p, "an id of lower-case letters, digits, _ and -"), _BAD)
    name = get("name", doc.scalar, cid if isinstance(cid, str) else "")
    status = get("status", lambda n, p: doc.choice(n, p, STATUSES), "draft")
    valid_from = valid_until = None
    if "valid" in top:
        v = doc.mapping(top["valid"], "valid", ("from", "until"))
        if v:
            valid_from = doc.time(v["from"], "valid.from") if "from" in v else None
            valid_until = doc.time(v["until"], "valid.until", end=True) if "until" in v else None
            if isinstance(valid_from, int) and isinstance(valid_until, int) and valid_from >= valid_until:
                doc.err(v["until"], "valid.until", "is not after valid.from")
    trigger = _trigger(doc, top["trigger"], cond, places) if "trigger" in top else _BAD
    audience = _audience(doc, top["audience"], "audience", cond, columns) if "audience" in top else Audience()
    exclude = _audience(doc, top["exclude"], "exclude", cond, columns) if "exclude" in top else Audience()
    window = get("window", doc.duration, DEFAULT_WINDOW_S)
    message = _message(doc, top["message"], columns, policy) if "message" in top else _BAD
    priority = get("priority", doc.integer, 0)
    holdout = get("holdout", doc.percent, 0.0)
    goal = _goal(doc, top["goal"], cond, columns) if "goal" in top else None
    send = get("send", lambda n, p: doc.choice(n, p, SEND_MODES), "auto")
    cooldown = get("cooldown", doc.duration, 0)
    quota = get("quota", lambda n, p: doc.integer(n, p, 1), 0)
    if trigger is not _BAD and message is not _BAD:
        _check_template(doc, top["message"], message, trigger.event, audience, columns)
    parts = (cid, name, status, trigger, audience, exclude, message, valid_from, valid_until, window, priority,
             holdout, goal, send, cooldown, quota)
    if doc.errors or any(p is _BAD for p in parts):
        return None
    return Campaign(*parts, file=doc.file, line=_line(root))


def _trigger(doc, node, cond, places) -> Trigger:
    event_node = next((v for k, v in node.value if getattr(k, "value", None) == "event"), None) \
        if isinstance(node, MappingNode) else None
    event = doc.choice(event_node, "trigger.event", F.EVENTS, "a scenario event") if event_node is not None else _BAD
    # With the event unknown, every event's settings are let through: one error, not a cascade.
    params = F.EVENTS[event].params if event is not _BAD else tuple(p for e in F.EVENTS.values() for p in e.params)
    keys = ("event", "where", *params)
    top = doc.mapping(node, "trigger", keys, required=("event",))
    if top is None or event is _BAD:
        return _BAD
    fields = F.trigger_fields(event)
    where = cond.where(top["where"], "trigger.where", fields, "trigger") if "where" in top else AllOf(())
    minutes = within = 0
    numbers = ()
    if event == "area_dwell":
        minutes = doc.integer(top["minutes"], "trigger.minutes", 1) if "minutes" in top else DEFAULT_DWELL_MINUTES
    if event == "cf_then_power_on":
        within = doc.duration(top["within"], "trigger.within") if "within" in top else DEFAULT_CF_WITHIN_S
    if event == "hotline_call":
        numbers, number_pred = _numbers(doc, node, top, places, fields["number"])
        if number_pred is _BAD:
            return _BAD
        where = AllOf((number_pred, *where.parts))
    if _BAD in (minutes, within):
        return _BAD
    return Trigger(event, where, minutes, within, numbers)


def _numbers(doc, node, top, places, number_field):
    """hotline_call: the numbers of the named hotlines and the trigger's own numbers, compiled
    into a test on the `number` field."""
    numbers = []
    if "hotlines" in top:
        for i, n in enumerate(doc.items(top["hotlines"], "trigger.hotlines")):
            path = "trigger.hotlines" if not isinstance(top["hotlines"], SequenceNode) else f"trigger.hotlines[{i}]"
            name = doc.scalar(n, path)
            if name is _BAD:
                continue
            if places is None:
                doc.err(n, path, "hotlines are named in places.yaml, which is missing")
            elif name not in places.hotlines:
                doc.err(n, path, f"{name!r} is not a hotline in places.yaml"
                                 f"{_suggest(name, places.hotlines) or ' (' + _one_of(places.hotlines) + ')'}")
            else:
                numbers += places.hotlines[name]
    if "numbers" in top:
        for i, n in enumerate(doc.items(top["numbers"], "trigger.numbers")):
            d = doc.digits(n, f"trigger.numbers[{i}]")
            if d is not _BAD:
                numbers.append(d[0] + ("*" if d[1] else ""))
    if "hotlines" not in top and "numbers" not in top:
        return (), doc.err(node, "trigger", "hotline_call needs hotlines (names from places.yaml) or numbers")
    if not numbers:
        return (), _BAD
    values = [(n.rstrip("*"), n.endswith("*")) for n in numbers]
    return tuple(numbers), _digits(number_field, values, f"number in [{', '.join(numbers)}]")


def _audience(doc, node, path, cond, columns) -> Audience:
    top = doc.mapping(node, path, ("lists", "where"))
    if top is None:
        return _BAD
    lists = ()
    if "lists" in top:
        lists = tuple(doc.name(n, f"{path}.lists", "a list name", LIST_NAME)
                      for n in doc.items(top["lists"], f"{path}.lists"))
        if columns is not None:
            for n, name in zip(doc.items(top["lists"], f"{path}.lists"), lists):
                if name is not _BAD and name not in columns.lists:
                    doc.err(n, f"{path}.lists", f"no list {name!r} is imported{_suggest(name, columns.lists)}")
        if _BAD in lists:
            return _BAD
    where = cond.where(top["where"], f"{path}.where", F.audience_fields(), "audience") if "where" in top else None
    return Audience(lists, where)


def _message(doc, node, columns, policy: Policy) -> Message:
    top = doc.mapping(node, "message", ("channel", "text", "source"), required=("text",))
    if top is None or "text" not in top:
        return _BAD
    channel = doc.choice(top["channel"], "message.channel", CHANNELS) if "channel" in top else ""
    if channel not in (_BAD, "") and channel != "file" and channel not in policy.channels:
        doc.err(top["channel"], "message.channel", f"{channel} has no settings in policy.yaml "
                                                   f"(channels.{channel}.{REQUIRED_SETTINGS[channel][0]})")
    source = doc.scalar(top["source"], "message.source") if "source" in top else ""
    if source not in (_BAD, "") and not SOURCE.match(source):
        source = doc.err(top["source"], "message.source", f"{source!r} is not a source address: up to 20 digits "
                                                          "(a service code, 10658000) or up to 11 letters and digits")
    text = doc.scalar(top["text"], "message.text")
    if _BAD in (text, channel, source):
        return _BAD
    if not text.strip():
        return doc.err(top["text"], "message.text", "empty")
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as e:
        return doc.err(top["text"], "message.text", f"{e}: write {{{{ and }}}} for literal braces")
    names = []
    for _, fname, spec, conv in parsed:
        if fname is None:
            continue
        if not TEMPLATE_FIELD.match(fname) or spec or conv:
            written = f"{{{fname}{'!' + conv if conv else ''}{':' + spec if spec else ''}}}"
            return doc.err(top["text"], "message.text", f"{written} is not a field name like {{brand}}")
        if fname not in names:
            names.append(fname)
    return Message(channel, text, tuple(names), source)


def _check_template(doc, node, message, event, audience, columns) -> None:
    """Every {field} must have a source: the trigger (imsi, msisdn, campaign), the event's,
    the record's or the state's fields, the TAC table, or a column of the audience's lists
    (any name not built in, while the lists are not known; none when the audience names no list)."""
    text_node = next((v for k, v in node.value if getattr(k, "value", None) == "text"), node)
    built_in = {**F.trigger_fields(event), **F.AUDIENCE_FIELDS}
    lists = audience.lists if audience is not _BAD else ()
    for fname in message.fields:
        if fname in built_in or fname in TRIGGER_KEYS:
            continue
        if not lists:
            why = "no source gives it: not a field of the event, and the audience names no list"
        elif columns is None:
            if not _suggest(fname, built_in, cutoff=0.75):
                continue            # a column of the audience's lists, known once they are imported
            why = "not a field"
        elif fname in columns:
            continue
        else:
            why = "not a column of the imported lists"
        events = [e.name for e in F.EVENTS.values() if fname in e.fields]
        if events:
            why = f"a field of {_one_of(events)}, not of {event}"
        doc.err(text_node, "message.text", f"{{{fname}}}: {why}{_suggest(fname, [*built_in, *(columns or ())])}")


def _goal(doc, node, cond, columns=None) -> Goal:
    """`{event, within, where}`, or `{list, product, within}`: a conversion imported from billing."""
    top = doc.mapping(node, "goal", ("event", "within", "where", "list", "product"), required=("within",))
    if top is None or "within" not in top:
        return _BAD
    within = doc.duration(top["within"], "goal.within")
    if ("event" in top) == ("list" in top):
        return doc.err(node, "goal", "names an event or a list of conversions (list:), not both" if "event" in top
                       else "missing: an event, or a list of conversions (list:)")
    if "list" in top:
        for key in ("where",):
            if key in top:
                doc.err(top[key], f"goal.{key}", "a goal of a list takes product and within, not where")
        name = doc.name(top["list"], "goal.list", "a list name", LIST_NAME)
        product = doc.scalar(top["product"], "goal.product") if "product" in top else ""
        if columns is not None and name is not _BAD:
            if name not in columns.lists:
                doc.err(top["list"], "goal.list", f"no list {name!r} is imported{_suggest(name, columns.lists)}")
            elif "time" not in columns.names or (product and "product" not in columns.names):
                doc.err(top["list"], "goal.list", "a list of conversions has the columns msisdn, product and time")
        if _BAD in (name, product, within):
            return _BAD
        return Goal("", within, AllOf(()), list=name, product=product)
    if "product" in top:
        doc.err(top["product"], "goal.product", "only a goal of a list (list:) has a product")
    event = doc.choice(top["event"], "goal.event", F.EVENTS, "a scenario event")
    if event is _BAD:
        return _BAD
    where = cond.where(top["where"], "goal.where", F.trigger_fields(event), "trigger") if "where" in top else AllOf(())
    return _BAD if within is _BAD else Goal(event, within, where)


# --- policy.yaml -------------------------------------------------------------------------------------

POLICY_KEYS = ("timezone", "caps", "quiet", "arbitration", "channel", "channels", "optout_lists", "optout_keywords",
               "country_code")
CLOCK_TIME = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)\Z")


def _policy(doc: _Doc, root) -> Policy:
    top = doc.mapping(root, "", POLICY_KEYS)
    if top is None:
        return Policy(file=doc.file)
    kw = {}
    if "timezone" in top:
        tz = doc.scalar(top["timezone"], "timezone")
        try:
            if tz is not _BAD:
                ZoneInfo(tz)
                kw["timezone"] = tz
        except (ZoneInfoNotFoundError, ValueError):
            doc.err(top["timezone"], "timezone", f"{tz!r} is not a time zone name like Asia/Shanghai or UTC")
    if "caps" in top:
        kw["caps"] = _caps(doc, top["caps"])
    if "quiet" in top:
        q = doc.mapping(top["quiet"], "quiet", ("from", "to"), required=("from", "to")) or {}
        ends = [_clock_time(doc, q[k], f"quiet.{k}") for k in ("from", "to") if k in q]
        if len(ends) == 2 and _BAD not in ends:
            if ends[0] == ends[1]:
                doc.err(q["to"], "quiet.to", "is the same time as quiet.from: leave quiet out for no quiet hours")
            kw["quiet"] = tuple(ends)
    if "arbitration" in top:
        kw["arbitration_s"] = doc.duration(top["arbitration"], "arbitration", zero=True)
    channels = {}
    if "channels" in top:
        for knode, vnode in _named(doc, top["channels"], "channels"):
            name = knode.value
            if name not in CHANNEL_SETTINGS:
                doc.err(knode, f"channels.{name}", f"{name!r} is not a channel ({_one_of(CHANNEL_SETTINGS)})"
                                                   f"{_suggest(name, CHANNEL_SETTINGS)}")
                continue
            channels[name] = MappingProxyType(_channel_settings(doc, name, vnode))
    kw["channels"] = MappingProxyType(channels)
    if "channel" in top:
        kw["channel"] = doc.choice(top["channel"], "channel", CHANNELS)
        if kw["channel"] not in (_BAD, "file") and kw["channel"] not in channels:
            doc.err(top["channel"], "channel", f"{kw['channel']} has no settings under channels")
    if "optout_lists" in top and not (isinstance(top["optout_lists"], SequenceNode) and not top["optout_lists"].value):
        kw["optout_lists"] = tuple(doc.name(n, "optout_lists", "a list name", LIST_NAME)
                                   for n in doc.items(top["optout_lists"], "optout_lists"))
    if "optout_keywords" in top:
        kw["optout_keywords"] = tuple(doc.scalar(n, "optout_keywords")
                                      for n in doc.items(top["optout_keywords"], "optout_keywords"))
        if any(k is not _BAD and not k.strip() for k in kw["optout_keywords"]):
            doc.err(top["optout_keywords"], "optout_keywords", "an empty keyword")
    if "country_code" in top:
        cc = doc.scalar(top["country_code"], "country_code")
        if cc is not _BAD and not (cc.isascii() and cc.isdigit() and len(cc) <= 3):
            cc = doc.err(top["country_code"], "country_code", f"{cc!r} is not a country code: 1 to 3 digits, like 86")
        kw["country_code"] = cc
    if any(v is _BAD or (isinstance(v, tuple) and _BAD in v) for v in kw.values()):
        return Policy(file=doc.file)
    return Policy(**kw, file=doc.file)


def _caps(doc, node) -> tuple:
    if not isinstance(node, SequenceNode):
        doc.err(node, "caps", "must be a list of {per: 1d, max: 1}")
        return _BAD
    caps = []
    for i, item in enumerate(node.value):
        m = doc.mapping(item, f"caps[{i}]", ("per", "max"), required=("per", "max")) or {}
        if "per" in m and "max" in m:
            cap = (doc.duration(m["per"], f"caps[{i}].per"), doc.integer(m["max"], f"caps[{i}].max", 1))
            if _BAD not in cap:
                caps.append(cap)
    return tuple(sorted(caps))


def _clock_time(doc, node, path):
    """'21:00' -> minutes after midnight."""
    v = doc.scalar(node, path)
    if v is _BAD:
        return v
    m = CLOCK_TIME.match(v.strip())
    if not m:
        return doc.err(node, path, f"{v!r} is not a time of day like \"21:00\" (quote it)")
    return int(m.group(1)) * 60 + int(m.group(2))


def _channel_settings(doc, name, node) -> dict:
    known = CHANNEL_SETTINGS[name]
    top = doc.mapping(node, f"channels.{name}", tuple(known), required=REQUIRED_SETTINGS[name])
    out = {}
    for key, vnode in (top or {}).items():
        path, kind = f"channels.{name}.{key}", known[key]
        if isinstance(kind, tuple):
            v = doc.choice(vnode, path, kind)
        elif kind == "port":
            v = doc.integer(vnode, path, 1, 65535)
        elif kind == "count":
            v = doc.integer(vnode, path, 1)
        elif kind == "duration":
            v = doc.duration(vnode, path)
        elif kind == "headers":
            v = {k.value: doc.scalar(n, f"{path}.{k.value}") for k, n in vnode.value} \
                if isinstance(vnode, MappingNode) else doc.err(vnode, path, "must be a mapping of header: value")
        else:
            v = doc.scalar(vnode, path)
            if v is not _BAD and kind == "rate":
                v = float(v) if NUMBER.match(v.strip()) and float(v) > 0 else \
                    doc.err(vnode, path, f"{v!r} is not a rate in messages a second (a number above 0)")
            elif v is not _BAD and kind == "url" and not re.match(r"https?://[^\s/]+", v):
                v = doc.err(vnode, path, f"{v!r} is not an http:// or https:// URL")
        if v is not _BAD and v is not None:
            out[key] = v
    return out


# --- a directory -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Lists:
    """What is imported: list names and their columns, to check audiences against."""
    lists: frozenset
    names: frozenset                # every column of every list

    def __contains__(self, name):
        return name in self.names

    def __iter__(self):
        return iter(self.names)


def _read(doc: _Doc, path: str):
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        return doc.err(0, "", e.strerror or str(e))
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        return doc.err(raw.count(b"\n", 0, e.start) + 1, "", f"not UTF-8 (byte {e.start}: {raw[e.start]:#04x})")


def load(path: str, lists: dict | None = None) -> RuleSet:
    """Read and check a rules directory: its *.yaml / *.yml campaigns (one per file) and
    places.yaml; subdirectories and hidden files are not read. lists, when given, maps the
    imported list names to their columns: audiences are then checked against them.
    Never raises: every problem is in the result's errors."""
    columns = None if lists is None else Lists(frozenset(lists), frozenset(c for cs in lists.values() for c in cs))
    try:
        names = sorted(n for n in os.listdir(path) if n.endswith((".yaml", ".yml")) and not n.startswith(".")
                       and os.path.isfile(os.path.join(path, n)))
    except OSError as e:
        return RuleSet(path, (), Places(), (Error(path, 0, "", e.strerror or str(e)),))
    errors, places, policy = [], None, None
    for pname in [n for n in names if n in POLICY_FILES][:1]:
        doc = _Doc(os.path.join(path, pname))
        text = _read(doc, doc.file)
        root = doc.compose(text) if text is not _BAD else None
        if root is not None and root is not _BAD:
            policy = _guard(doc, lambda: _policy(doc, root))
        errors += sorted(doc.errors, key=lambda e: e.line)
    for pname in [n for n in names if n in PLACES_FILES][:1]:
        places, errs = read_places(os.path.join(path, pname))
        errors += errs
    campaigns, ids = [], {}
    for name in names:
        if name in PLACES_FILES:
            if places is None or name != os.path.basename(places.file):
                errors.append(Error(os.path.join(path, name), 0, "", "a second places file: keep one, places.yaml"))
            continue
        if name in POLICY_FILES:
            if policy is None or name != os.path.basename(policy.file):
                errors.append(Error(os.path.join(path, name), 0, "", "a second policy file: keep one, policy.yaml"))
            continue
        doc = _Doc(os.path.join(path, name))
        text = _read(doc, doc.file)
        root = doc.compose(text) if text is not _BAD else None
        c = None
        if root is not None and root is not _BAD:
            c = _guard(doc, lambda: _campaign(doc, root, places, columns, policy or Policy()))
            cid = _id_of(root)
            if cid is not None:
                first = ids.setdefault(cid[0], (doc.file, cid[1]))
                if first != (doc.file, cid[1]):
                    doc.err(cid[1], "id", f"{cid[0]!r} is already the id of the campaign in {first[0]}:{first[1]}")
                    c = None
        errors += sorted(doc.errors, key=lambda e: e.line)
        if c is not None:
            campaigns.append(c)
    return RuleSet(path, tuple(campaigns), places or Places(), tuple(errors), policy or Policy())


def read_places(path: str, key: str | None = None) -> tuple:
    """(Places or None, errors) of a places.yaml, or of the mapping under `key` in another YAML
    file (a story's own places), checked as `load` checks a rules directory's."""
    doc = _Doc(path)
    text = _read(doc, path)
    root = doc.compose(text) if text is not _BAD else None
    places = None
    if key is not None and isinstance(root, MappingNode):
        root = next((v for k, v in root.value if getattr(k, "value", None) == key), None)
    if root is not None and root is not _BAD:
        places = _guard(doc, lambda: _places(doc, root))
    return places, tuple(sorted(doc.errors, key=lambda e: e.line))


def _id_of(root):
    """(id, line) of a campaign document, when it has one."""
    if isinstance(root, MappingNode):
        for k, v in root.value:
            if getattr(k, "value", None) == "id" and isinstance(v, ScalarNode) and v.value:
                return v.value, _line(v)
    return None


def _guard(doc, fn):
    """A bug of this checker is reported against the file, never raised at the operator."""
    try:
        return fn()
    except Exception as e:          # noqa: BLE001 - the last line of defence, reported
        doc.err(0, "", f"could not be checked ({type(e).__name__}: {e}); please report this")
        return None
