"""The conditions compiler: a rules file's where-blocks, checked against the field catalogue
(control/fields.py), the places and the imported lists' columns, become predicates.

    cond = Conditions(doc, places, columns)
    pred = cond.where(node, "trigger.where", fields.trigger_fields(event), "trigger")

Every mistake is reported on the Doc with its line; a test that cannot be read is left out.
"""
import re
from dataclasses import dataclass

import numpy as np
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from . import fields as F
from .places import Places
from .profiles import MAX_DAYS
from .predicates import OP_TEXT, AllOf, Compare, Digits, Has, Not, Pred, Text, Values, frozen
from .yamldoc import BAD, INTEGER, MAX_INTEGER, NUMBER, TEMPLATE_FIELD, Doc, line_of, one_of, suggest

OPERATORS = ("not", "gt", "gte", "lt", "lte", "has")
OP_HINTS = {"in": "write the list itself: field: [a, b]", "eq": "write the value itself: field: a",
            "is": "write the value itself: field: a", "ne": "use {not: a}", "neq": "use {not: a}"}


@dataclass(frozen=True)
class _Column:
    """A list column: typed by the values a rule compares it with."""
    name: str
    type: str = "list"
    source: str = "list"


class Conditions:
    """Compiles where-blocks of one file against the field catalogue and the places."""

    def __init__(self, doc: Doc, places: Places | None, columns=None, lifecycle=()):
        self.doc = doc
        self.places = places
        self.columns = columns          # known list columns, or None: any name may be a list column
        self.lifecycle = tuple(lifecycle)   # the lifecycle segments' names (policy.yaml)

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
            seen[name] = line_of(knode)
            f = fields.get(name)
            if f is None:
                f = self.unknown(knode, fpath, name, fields, context)
                if f is None:
                    continue
            p = self.profile(f, vnode, fpath) if f.source == F.PROFILE else self.test(f, vnode, fpath)
            if p is not BAD:
                parts.append(p)
        return AllOf(tuple(parts))

    def profile(self, f, node, path):
        """A profile field over a window of days, `{last: 30d, gte: 5}`, or a calendar month,
        `{month: last, ...}`; an area's field names it (`area: colleges`), call_minutes may be
        `while: roaming`. It is a test of the column `field/30d`, `field/last-month`,
        `field/30d@AREA` or `call_minutes:roaming/1d` (control.engine reads them)."""
        doc = self.doc
        per_area = f.name in F.AREA_PROFILE
        example = "{area: colleges, last: 30d, gte: 10}" if per_area else "{last: 30d, gte: 5}"
        keys = [getattr(k, "value", "") for k, _ in node.value] if isinstance(node, MappingNode) else []
        if ("last" in keys) == ("month" in keys):
            return doc.err(node, path, f"{f.name} counts over days: say over how many, e.g. {example}, "
                                       "or over which calendar month, {month: last, gte: 5} (this or last)")
        days, area, rest, during = BAD, 0, [], ""
        for knode, vnode in node.value:
            key = getattr(knode, "value", "")
            if key == "while" and f.name == "call_minutes":
                during = doc.choice(vnode, f"{path}.while", ("roaming",))
            elif key == "last":
                days = self.days(vnode, f"{path}.last")
            elif key == "month" and f.name == "data_services":
                days = doc.err(vnode, f"{path}.month", "data services are counted over days: {last: 30d, gte: 1}")
            elif key == "month":
                days = doc.choice(vnode, f"{path}.month", ("this", "last"))
            elif key == "area" and per_area:
                area = self.value(F.Field("area", F.ENUM, F.STATE, places="areas"), vnode, f"{path}.area")
            else:
                rest.append((knode, vnode))
        if per_area and not area:
            return doc.err(node, path, f"{f.name} is of one area: name it, e.g. {example}") if area == 0 else BAD
        if days is BAD:
            return BAD
        window = f"{days}-month" if isinstance(days, str) else f"{days}d"
        if not rest:
            shown = f"month: {days}" if isinstance(days, str) else f"last: {days}d"
            return doc.err(node, path, f"a window alone tests nothing: add a test, e.g. {{{shown}, gte: 1}}")
        if during is BAD:
            return BAD
        name = f"{f.name}{':' + during if during else ''}/{window}" + (f"@{area}" if per_area else "")
        col = F.Field(name, F.INT, F.PROFILE, f.doc, series=f.series, scale=f.scale)
        return self.test(col, MappingNode(node.tag, rest, node.start_mark, node.end_mark), path)

    def days(self, node, path):
        """A window in whole days: today and the days before, in the policy's time zone."""
        s = self.doc.duration(node, path)
        if s is BAD:
            return s
        if s % 86400:
            return self.doc.err(node, path, "profiles count whole days (in the policy's time zone): 1d, 7d, 30d")
        if s // 86400 > MAX_DAYS:
            return self.doc.err(node, path, f"at most {MAX_DAYS}d: profiles keep {MAX_DAYS} days")
        return s // 86400

    def unknown(self, knode, path, name, fields, context):
        """A name not in the catalogue: a list column in an audience, else an error with a hint."""
        of_event = name in F.RECORD_FIELDS or any(name in e.fields for e in F.EVENTS.values())
        if context == "audience" and of_event:
            hint = ": a field of the event, put it under trigger.where"
        elif context == "audience" and self.columns is not None:
            if name in self.columns:
                return _Column(name)
            hint = suggest(name, [*fields, *sorted(self.columns)]) or ": not a column of the imported lists"
        elif context == "audience":
            # Lists are imported later: any name may be a column, but not a near miss of a built-in one.
            if TEMPLATE_FIELD.match(name) and not suggest(name, fields, cutoff=0.75):
                self.doc.warn(knode, path, f"{name} is taken for a list column, not checked: no imported lists "
                                           "(with --lists DATA, a column no list has is an error)")
                return _Column(name)
            hint = suggest(name, fields) or ": a list column name is lower-case letters, digits and _"
        else:
            events = [e.name for e in F.EVENTS.values() if name in e.fields]
            if events:
                hint = f": a field of {one_of(events)}, not of this event"
            elif name in F.AUDIENCE_FIELDS:
                hint = ": an audience attribute, put it under audience.where"
            else:
                hint = suggest(name, fields)
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
                    hint = OP_HINTS.get(op) or suggest(op, OPERATORS).lstrip(": ")
                    doc.err(knode, opath, f"unknown operator{': ' + hint if hint else ''} "
                                          f"(operators: {one_of(OPERATORS)})")
                    continue
                if op == "not":
                    p = self.equal(f, vnode, opath)
                    if p is not BAD:
                        p = Not(p, f"{f.name} not in [{_values_text(vnode)}]" if isinstance(vnode, SequenceNode)
                                else f"{f.name} != {vnode.value}")
                elif op == "has":
                    p = self.has(f, vnode, opath)
                else:
                    p = self.compare(f, op, vnode, opath)
                if p is not BAD:
                    parts.append(p)
            if len(parts) != len(node.value):
                return BAD
            return parts[0] if len(parts) == 1 else AllOf(tuple(parts))
        return self.equal(f, node, path)

    def equal(self, f, node, path):
        """field: value, field: [a, b] (one of them), digit and text prefixes with a trailing *."""
        doc = self.doc
        if f.type == F.CAPS:
            return doc.err(node, path, f"{f.name} is a capability set: test it with {{has: {next(iter(f.names))}}}")
        items = doc.items(node, path)
        if not items:
            return BAD
        paths = [path if len(items) == 1 or not isinstance(node, SequenceNode) else f"{path}[{i}]"
                 for i in range(len(items))]
        text = f"{f.name} in [{_values_text(node)}]" if isinstance(node, SequenceNode) else f"{f.name} = {node.value}"
        if f.type == "list":
            return self.column_equal(f, items, paths, text)
        values = [self.value(f, n, p) for n, p in zip(items, paths)]
        if any(v is BAD for v in values):
            return BAD
        if f.type == F.DIGITS:
            return Digits.of(f.name, f.width, values, text)
        if f.type == F.TEXT:
            fold = (lambda s: s.lower()) if f.fold else (lambda s: s)
            return Text(f.name, tuple(fold(s) for s, star in values if not star),
                        tuple(fold(s) for s, star in values if star), f.fold, text)
        return Values(f.name, frozen(np.array(values)), text)

    def value(self, f, node, path):
        doc = self.doc
        if f.type == F.DIGITS:
            return doc.digits(node, path, f.width)
        if f.type == F.INT:
            return doc.integer(node, path, seconds=f.seconds)
        if f.type == F.BOOL:
            v = doc.scalar(node, path)
            if v is not BAD and v.lower() not in ("true", "false"):
                return doc.err(node, path, f"{v!r} is not true or false")
            return v if v is BAD else v.lower() == "true"
        if f.type == F.TEXT:
            v = doc.scalar(node, path)
            if v is BAD:
                return v
            if v == "*" or not v:
                return doc.err(node, path, "an empty text or '*' alone: leave the condition out")
            return (v[:-1], True) if v.endswith("*") else (v, False)
        # an enum: a name, or for record enums also the raw number
        v = doc.scalar(node, path)
        if v is BAD:
            return v
        if f.places == "lifecycle":
            if v not in self.lifecycle:
                return doc.err(node, path, f"{v!r} is not a lifecycle segment of the policy"
                                           f"{suggest(v, self.lifecycle) or ' (' + one_of(self.lifecycle) + ')'}")
            return self.lifecycle.index(v) + 1
        if f.places:
            if self.places is None:
                return doc.err(node, path, f"{f.places} are named in places.yaml, which is missing")
            names = [x.name for x in getattr(self.places, f.places)]
            index = names.index(v) + 1 if v in names else 0
            if not index:
                return doc.err(node, path, f"{v!r} is not one of the {f.places} in places.yaml"
                                           f"{suggest(v, names) or ' (' + one_of(names) + ')'}")
            return index
        if v in f.names:
            return f.names[v]
        if f.source == F.RECORD and INTEGER.match(v):
            return doc.integer(node, path, 0, 2**32 - 1)
        return doc.err(node, path, f"{v!r} is not a {f.name}{suggest(v, f.names) or ' (' + one_of(f.names) + ')'}")

    def column_equal(self, f, items, paths, text):
        """A list column compared with numbers, true/false, or texts (prefixes with *)."""
        doc = self.doc
        vals = [doc.scalar(n, p) for n, p in zip(items, paths)]
        if any(v is BAD for v in vals):
            return BAD
        plain = [n.style is None for n in items]
        if all(p and NUMBER.match(v) for p, v in zip(plain, vals)):
            if any(abs(_number(v)) > MAX_INTEGER for v in vals):
                return doc.err(items[0], paths[0], f"a number beyond {MAX_INTEGER:.0e}")
            return Values(f.name, frozen(np.array([_number(v) for v in vals])), text)
        if all(p and v.lower() in ("true", "false") for p, v in zip(plain, vals)):
            return Values(f.name, frozen(np.array([v.lower() == "true" for v in vals])), text)
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
            if v is not BAD and not NUMBER.match(v):
                v = doc.err(node, path, f"{v!r} is not a number")
            elif v is not BAD:
                n = _number(v)
                v = n if abs(n) <= MAX_INTEGER else doc.err(node, path, f"{v!r} is beyond {MAX_INTEGER:.0e}")
        if v is BAD:
            return v
        return Compare(f.name, op, v, f"{f.name} {OP_TEXT[op]} {node.value}")

    def has(self, f, node, path):
        doc = self.doc
        if f.type != F.CAPS:
            return doc.err(node, path, f"has tests a capability set; {f.name} is {_a(f.type)}")
        bits = 0
        for _i, n in enumerate(doc.items(node, path)):
            v = doc.scalar(n, path)
            if v is BAD:
                return v
            if v not in f.names:
                return doc.err(n, path, f"{v!r} is not a {f.name} capability"
                                        f"{suggest(v, f.names) or ' (' + one_of(f.names) + ')'}")
            bits |= f.names[v]
        return Has(f.name, bits, f"{f.name} has {_values_text(node)}") if bits else BAD


def _a(type_: str) -> str:
    return {"int": "a number", "enum": "a set of names", "list": "a list column"}.get(type_, f"a {type_} field")


def _number(v: str):
    return int(v) if re.fullmatch(r"[-+]?\d+", v) else float(v)


def _values_text(node) -> str:
    if isinstance(node, SequenceNode):
        return ", ".join(getattr(n, "value", "?") for n in node.value)
    return getattr(node, "value", "?")
