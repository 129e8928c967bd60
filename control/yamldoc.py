"""The YAML reader of the rules: nodes with their lines, and checks that report `file:line: field: why`.

    doc = Doc("rules/welcome.yaml")
    root = doc.root()                 # the node tree, or None; what is wrong is in doc.errors
    top = doc.mapping(root, "", ("id", "trigger"), required=("id",))
    n = doc.duration(top["window"], "window")    # 172800, or BAD after reporting why not

YAML is composed into nodes (never constructed) so every value keeps its line and is read
as written: `010` stays the digits 010, `no` is not a boolean, `2026-11-01` not a date
object. Values are then read by what the field they belong to needs. Each check reports
what is wrong and carries on, returning BAD, so one run finds every mistake of a file.
"""
import difflib
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

NAME = re.compile(r"[a-z0-9][a-z0-9_-]*\Z")
LIST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")      # as control.lists.NAME_RE
TEMPLATE_FIELD = re.compile(r"[a-z_][a-z0-9_]*\Z")
DURATION = re.compile(r"(\d+)\s*([smhd])\Z")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
PERCENT = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*%\Z")
INTEGER = re.compile(r"[-+]?(?:0x[0-9a-fA-F]+|\d+)\Z")
NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\Z")
DIGITS = re.compile(r"\d+\Z")
CLOCK_TIME = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)\Z")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")      # C0, DEL and C1: never in a header or a message

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# Bounds every value is read within, so whatever passes the checker fits the engine's int64
# timestamps and SQLite's INTEGER: a duration of ten years at most, a time before 2200, whole
# numbers of 18 digits at most; and files the size and depth of rules, not of an attack.
MAX_DURATION_S = 3650 * 86400
LAST_TIME = datetime(2200, 1, 1, tzinfo=timezone.utc)
MAX_INTEGER = 10**18 - 1
MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 64
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


BAD = object()                     # a value that was reported as wrong


def line_of(node) -> int:
    return node.start_mark.line + 1


def suggest(name: str, choices, cutoff=0.7) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=cutoff)
    return f": did you mean {close[0]!r}?" if close else ""


def one_of(choices) -> str:
    return ", ".join(choices)


class Doc:
    """The checks of one file: each reports what is wrong and where, and carries on."""

    def __init__(self, file: str):
        self.file = file
        self.errors = []
        self.warnings = []              # what could not be checked, or may not be meant (Error too)

    def err(self, where, path: str, why: str):
        line = where if isinstance(where, int) else line_of(where)
        self.errors.append(Error(self.file, line, path, why))
        return BAD

    def warn(self, where, path: str, why: str) -> None:
        self.warnings.append(Error(self.file, line_of(where), path, why))

    def root(self):
        """The file's YAML node tree, or None after reporting why not (unreadable, not UTF-8,
        not YAML, empty, or more than one document)."""
        text = self.read()
        root = self.compose(text) if text is not BAD else BAD
        return None if root is BAD else root

    def read(self):
        """The file's text, or BAD after reporting why not."""
        try:
            with open(self.file, "rb") as f:
                raw = f.read(MAX_FILE_BYTES + 1)
        except OSError as e:
            return self.err(0, "", e.strerror or str(e))
        if len(raw) > MAX_FILE_BYTES:
            return self.err(0, "", f"larger than {MAX_FILE_BYTES >> 20} MiB: not a rule file")
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            return self.err(raw.count(b"\n", 0, e.start) + 1, "", f"not UTF-8 (byte {e.start}: {raw[e.start]:#04x})")

    def guard(self, fn):
        """fn(), with a bug of this checker reported against the file, never raised at the operator."""
        try:
            return fn()
        except Exception as e:          # noqa: BLE001 - the last line of defence, reported
            self.err(0, "", f"could not be checked ({type(e).__name__}: {e}); please report this")
            return None

    def sorted_errors(self) -> list:
        return sorted(self.errors, key=lambda e: e.line)

    def compose(self, text: str):
        """The YAML document's node tree, or BAD after reporting why not."""
        try:
            if self._too_deep(text):
                return BAD
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
            return self.err(line_of(docs[1]), "", "one campaign per file: this file has another document")
        return docs[0]

    def _too_deep(self, text: str) -> bool:
        """Nesting beyond MAX_DEPTH, reported where it goes deeper: found from the parser's events
        (a loop), since the composer recurses and a kilobyte of brackets exhausts Python's stack."""
        depth = 0
        for ev in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    self.err(ev.start_mark.line + 1, "syntax", f"nested more than {MAX_DEPTH} levels deep")
                    return True
            elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
        return False

    def mapping(self, node, path: str, keys, required=(), hints=None) -> dict | None:
        """{key: value node} of a mapping; unknown, duplicate and missing keys reported."""
        if not isinstance(node, MappingNode):
            self.err(node, path or "(file)", f"must be a mapping of {one_of(keys)}")
            return None
        out = {}
        for knode, vnode in node.value:
            key = knode.value if isinstance(knode, ScalarNode) else None
            kpath = f"{path}.{key}" if path else key
            if key is None:
                self.err(knode, path, "a key must be a plain name")
            elif key in out:
                self.err(knode, kpath, f"given twice (first at line {line_of(out[key][0])})")
            elif key not in keys:
                hint = (hints or {}).get(key) or suggest(key, keys).lstrip(": ")
                self.err(knode, kpath, f"unknown key{': ' + hint if hint else ''} (known: {one_of(keys)})")
            else:
                out[key] = (knode, vnode)
        for key in required:
            if key not in out:
                self.err(node, f"{path}.{key}" if path else key, "missing")
        return {k: v for k, (_, v) in out.items()}

    def named(self, node, path) -> list:
        """[(name node, value node)] of a mapping of named things; names checked, duplicates reported."""
        if node is None:
            return []
        if not isinstance(node, MappingNode):
            self.err(node, path, "must be a mapping of name: definition")
            return []
        out, seen = [], {}
        for knode, vnode in node.value:
            name = self.name(knode, path, "a name of lower-case letters, digits, _ and -")
            if name is BAD:
                continue
            if name in seen:
                self.err(knode, f"{path}.{name}", f"given twice (first at line {seen[name]})")
                continue
            seen[name] = line_of(knode)
            out.append((knode, vnode))
        return out

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
        if v is not BAD and v not in choices:
            return self.err(node, path, f"{v!r} is not {what}" + (suggest(v, choices) or f" ({one_of(choices)})")
                            if what != "one of" else f"{v!r} is not one of {one_of(choices)}{suggest(v, choices)}")
        return v

    def name(self, node, path, what="a name", pattern=NAME):
        v = self.scalar(node, path)
        if v is not BAD and not pattern.match(v):
            return self.err(node, path, f"{v!r} is not {what}")
        return v

    def integer(self, node, path, lo=None, hi=None, seconds=False):
        v = self.scalar(node, path)
        if v is BAD:
            return v
        if seconds and DURATION.match(v.strip()):
            return self.duration(node, path, zero=True)
        if not INTEGER.match(v.strip()):
            return self.err(node, path, f"{v!r} is not a whole number" + (" or a duration like 30m" if seconds else ""))
        if len(v.strip().lstrip("+-")) > 20:
            return self.err(node, path, f"{v.strip()[:24]}... is too long a number")
        n = int(v.strip(), 0) if "x" in v.lower() else int(v.strip())
        if lo is not None and n < lo:
            return self.err(node, path, f"{n} is below {lo}" if hi is None else f"{n} is out of range ({lo} to {hi})")
        if n > (MAX_INTEGER if hi is None else hi) or n < -MAX_INTEGER:
            return self.err(node, path, f"{n} is out of range ({lo} to {hi})" if hi is not None
                            else f"{n} is beyond {MAX_INTEGER:.0e}")
        return n

    def duration(self, node, path, zero=False):
        v = self.scalar(node, path)
        if v is BAD:
            return v
        m = DURATION.match(v.strip())
        if not m:
            return self.err(node, path, f"{v!r} is not a duration: a number followed by s, m, h or d (48h)")
        if len(m.group(1)) > 12:
            return self.err(node, path, f"{v.strip()[:24]}... is too long a duration")
        n = int(m.group(1)) * UNITS[m.group(2)]
        if not n and not zero:
            return self.err(node, path, "must be longer than 0")
        if n > MAX_DURATION_S:
            return self.err(node, path, f"{v.strip()} is longer than {MAX_DURATION_S // 86400}d, ten years")
        return n

    def percent(self, node, path):
        v = self.scalar(node, path)
        if v is BAD:
            return v
        m = PERCENT.match(v.strip())
        if not m:
            return self.err(node, path, f"{v!r} is not a percentage like 10%")
        p = float(m.group(1))
        if p >= 100:
            return self.err(node, path, f"{v} leaves no one to send to: below 100% please")
        return p / 100

    def clock_time(self, node, path):
        """'21:00' -> minutes after midnight."""
        v = self.scalar(node, path)
        if v is BAD:
            return v
        m = CLOCK_TIME.match(v.strip())
        if not m:
            return self.err(node, path, f"{v!r} is not a time of day like \"21:00\" (quote it)")
        return int(m.group(1)) * 60 + int(m.group(2))

    def date(self, node, path):
        v = self.scalar(node, path)
        if v is BAD:
            return v
        try:
            return date.fromisoformat(v.strip())
        except ValueError:
            return self.err(node, path, f"{v!r} is not a date like 2026-11-07")

    def time(self, node, path, end=False):
        """A date (UTC; as an end: the end of that day) or an ISO time, to ns since the epoch."""
        v = self.scalar(node, path)
        if v is BAD:
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
        except OverflowError:           # the day after 9999-12-31
            t = LAST_TIME
        if not EPOCH <= t < LAST_TIME:
            return self.err(node, path, f"{v.strip()} is not between 1970 and {LAST_TIME.year}")
        return (t - EPOCH) // timedelta(microseconds=1) * 1000

    def digits(self, node, path, width=16, prefix=True):
        """Digits as written, ('8613', True) for '8613*'."""
        v = self.scalar(node, path)
        if v is BAD:
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
        if v is not BAD and len(v[0]) not in (5, 6):
            return self.err(node, path, f"{v[0]!r} is not an MCC+MNC of 5 or 6 digits")
        return v if v is BAD else v[0]
