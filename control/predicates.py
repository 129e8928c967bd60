"""The predicate algebra: compiled conditions, evaluated on all candidate rows at once.

    mask = pred.mask(col, n)          # col(field name) -> the column of the candidate rows

A where-block (control.conditions compiles them) becomes a small tree of these. col(name)
returns the field's column (see docs/rules.md, "Columns"); n, the number of rows, is needed
only by a predicate that tests nothing, and defaults to len(col("kind")). Nothing here reads YAML.
"""
from dataclasses import dataclass

import numpy as np

from touchpoint.probe.record import pack


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

    @classmethod
    def of(cls, field: str, width: int, values, text: str) -> "Digits":
        """values: [(digits, is_prefix)]; prefixes grouped by length, one shifted compare each."""
        exact = [d for d, star in values if not star]
        by_shift = {}
        for d, star in values:
            if star:
                by_shift.setdefault(4 * (width - len(d)), []).append(d)
        packed = lambda ds: pack(ds, width).astype(np.uint64)
        return cls(field, width, frozen(packed(exact)),
                   tuple((s, frozen(packed(ds) >> np.uint64(s))) for s, ds in sorted(by_shift.items())), text)

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
OP_TEXT = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


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


def frozen(a: np.ndarray) -> np.ndarray:
    """a, read-only: the tables of a compiled rule set are shared, never changed."""
    a.flags.writeable = False
    return a
