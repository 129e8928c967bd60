"""Static lists: subscriber attributes for campaign audiences, and the TAC table.

An operator imports a list from CSV or Parquet (`touchpoint lists import NAME FILE`); the engine
looks a whole batch of subscribers up at once:

    store = ListStore(data_dir)
    lst = store.get("postpaid")
    rows = lst.rows(msisdn_packed, imsi_packed)        # row per subscriber, -1 when not listed
    age = lst.column("age")[rows]                       # the missing value where rows == -1
    brand, model, caps = store.tac().lookup(imei_tac(imei_packed))

A re-import builds the next generation beside the current one, fsyncs it and swaps the symlink:
a reader sees the old list or the new one, never a mix, and one that holds the old list keeps
it (its files stay mapped) until it reloads.

This module: importing and removing a list, and reading the imported ones. The parts of an
import are the submodules: source (reading the file), columns (converting its values),
importing (spilling, indexing, storing, the swap); layout is a list on disk.
"""
import fcntl
import math
import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from touchpoint.probe.record import NO_DIGITS

from .importing import MAX_SHRINK, Import
from .layout import NAME_RE, TAC, TYPES, ListError, check_name, clean_generations, fsync, generation_of, read_meta


def import_list(data_dir, name: str, path, types: dict[str, str] | None = None, errors=None, force: bool = False,
                max_shrink: float = MAX_SHRINK) -> dict:
    """Imports (or replaces) list NAME from a CSV or Parquet file; returns its meta.json.

    `types` forces column types ({"age": "int"}); `errors`, a text stream, gets every bad row.
    Raises ListError when nothing can be imported, when a CSV field runs over lines, or when the
    list would shrink by more than max_shrink (a share); the list then stays as it was. `force`
    imports it all the same.
    """
    for col, typ in (types or {}).items():
        if typ not in TYPES:
            raise ListError(f"--type {col}={typ}: the types are {', '.join(TYPES)}")
    return _run(Import(data_dir, check_name(name), path, types, errors, force=force, max_shrink=max_shrink))


def import_tac(data_dir, path, errors=None) -> dict:
    """Imports (or replaces) the TAC table: tac, brand, model, capabilities and flag columns."""
    return _run(Import(data_dir, TAC, path, errors=errors, tac=True))


def _run(job: Import) -> dict:
    try:
        return job.run()
    except pa.ArrowException as e:
        raise ListError(f"{job.path}: {e}")
    except OSError as e:
        raise ListError(f"{e.filename or job.path}: {e.strerror or e}")


def remove_list(data_dir, name: str) -> None:
    """Removes list NAME (or the TAC table, `_tac`); readers that hold it keep their copy."""
    lists = Path(data_dir) / "lists"
    if name != TAC:
        check_name(name)
    if not (lists / name).is_symlink():
        raise ListError(f"no list {name!r} in {lists}")
    with open(lists / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        (lists / name).unlink()
        fsync(lists)
        clean_generations(lists, name)


def missing_value(typ: str, dtype: np.dtype):
    """What a column holds where a value is missing: NaN, the integer minimum, -1, 0 or b''."""
    if typ == "float":
        return math.nan
    if typ == "int":
        return int(np.iinfo(dtype).min)
    if typ == "bitmask":
        return 0
    if dtype.kind == "S":
        return b""
    return -1                                                      # bool, category code


class Column:
    """One attribute column of a list, memory-mapped; `col[rows]` reads whole batches.

    `type` is int, float, bool or text (bitmask: the TAC table's capabilities). Where a value is
    missing, or a row is -1, a column holds `missing`: NaN for float, the smallest integer of its
    dtype for int, -1 for bool (stored 1/0) and for a category code, b'' for fixed-width text.
    Text with few distinct values holds codes into `categories`; `code(text)` gives one.
    """

    def __init__(self, name: str, typ: str, values: np.ndarray, categories: np.ndarray | None = None):
        self.name = name
        self.type = typ
        self.values = values
        self.categories = categories
        self.missing = missing_value(typ, values.dtype)

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, rows) -> np.ndarray:
        rows = np.asarray(rows, np.int64)
        if not len(self.values):
            return np.full(rows.shape, self.missing, self.values.dtype)
        out = self.values[np.maximum(rows, 0)]
        out[rows < 0] = self.missing
        return out

    def present(self, rows) -> np.ndarray:
        """True where the row exists and holds a value."""
        if self.type == "bitmask":
            return np.asarray(rows) >= 0
        v = self[rows]
        return ~np.isnan(v) if self.type == "float" else v != self.missing

    def code(self, text: str) -> int:
        """The code of a category (-1, which no row holds, when no row has it)."""
        if self.categories is None:
            raise ListError(f"column {self.name!r} is not a text column with categories")
        i = int(np.searchsorted(self.categories, text))
        return i if i < len(self.categories) and self.categories[i] == text else -1

    def strings(self, rows) -> np.ndarray:
        """The values as text, '' where missing (for display and message templates)."""
        v = self[rows]
        if self.categories is not None:
            return np.append(self.categories, "")[v]
        if self.type == "text":
            return np.char.decode(v, "utf-8")
        if self.type == "bool":
            return np.array(["false", "true", ""])[v]
        if self.type == "float":
            return np.array([repr(float(x)) if x == x else "" for x in v], dtype=str)
        return np.where(self.present(np.asarray(rows)), v.astype(str), "")


class StaticList:
    """An imported list as one generation holds it: sorted keys and memory-mapped columns."""

    def __init__(self, path: Path, name: str):
        self.path = Path(path)
        self.name = name
        self.meta = read_meta(self.path)
        self.generation = self.meta["generation"]
        load = lambda f: np.load(self.path / f, mmap_mode="r", allow_pickle=False)
        self.keys = {k: (load(f"{k}.keys.npy"), load(f"{k}.rows.npy")) for k in self.meta["keys"]}
        self.columns: dict[str, Column] = {}
        for c in self.meta["columns"]:
            cats = None
            if "categories" in c:
                cats = np.load(self.path / f"col.{c['name']}.categories.npy", allow_pickle=False)
            self.columns[c["name"]] = Column(c["name"], c["type"], load(f"col.{c['name']}.npy"), cats)

    def __len__(self) -> int:
        return self.meta["rows"]

    def column(self, name: str) -> Column:
        try:
            return self.columns[name]
        except KeyError:
            raise ListError(f"list {self.name!r} has no column {name!r}; it has {', '.join(self.columns)}")

    def find(self, key: str, values: np.ndarray) -> np.ndarray:
        """The row of each value of one key column (msisdn, imsi, tac), -1 where absent."""
        out = np.full(len(values), -1, np.int64)
        if key not in self.keys or not len(self.keys[key][0]):
            return out
        sorted_keys, rows = self.keys[key]
        values = np.asarray(values, sorted_keys.dtype)
        # Sorted queries let each binary search start where the last one ended: ~10x fewer
        # cache misses on a large list than searching in record order.
        order = np.argsort(values)
        at = np.empty(len(values), np.int64)
        at[order] = np.searchsorted(sorted_keys, values[order])
        np.minimum(at, len(sorted_keys) - 1, out=at)
        hit = sorted_keys[at] == values
        out[hit] = rows[at[hit]]
        return out

    def rows(self, msisdn: np.ndarray | None, imsi: np.ndarray | None = None) -> np.ndarray:
        """The row of each subscriber (packed digits, NO_DIGITS where unknown): by IMSI first,
        else by MSISDN; -1 when the list has neither."""
        if imsi is None:
            return self.find("msisdn", msisdn)
        out = self.find("imsi", imsi)
        if msisdn is not None:
            miss = np.flatnonzero(out < 0)
            out[miss] = self.find("msisdn", np.asarray(msisdn)[miss])
        return out

    def key_of(self, key: str, rows: np.ndarray) -> np.ndarray:
        """The key (msisdn, imsi) that names each row, NO_DIGITS where none does (a few rows: a scan)."""
        out = np.full(len(rows), NO_DIGITS, np.uint64)
        if key in self.keys:
            sorted_keys, key_rows = self.keys[key]
            at = np.flatnonzero(np.isin(key_rows, rows))
            where = {int(r): k for r, k in zip(key_rows[at], sorted_keys[at])}
            out[:] = [where.get(int(r), NO_DIGITS) for r in rows]
        return out


class TacTable(StaticList):
    """The TAC table: brand, model and a capability mask per type allocation code."""

    @property
    def capabilities(self) -> list[str]:
        return self.meta["capabilities"]

    def capability_bit(self, name: str) -> int:
        """The mask bit of a capability (`caps & bit` is non-zero where a handset has it)."""
        try:
            return 1 << self.capabilities.index(name.lower())
        except ValueError:
            raise ListError(f"the TAC table has no capability {name!r}; it has {', '.join(self.capabilities)}")

    def capability_names(self, rows: np.ndarray) -> list[str]:
        """The capabilities of each row as text, "5g;volte" (for display)."""
        masks = self.column("capabilities")[rows]
        return [";".join(c for i, c in enumerate(self.capabilities) if int(m) >> i & 1) for m in masks]

    def lookup(self, tacs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(brand, model, capability mask) of each TAC (uint32): '', '', 0 when it is not listed."""
        rows = self.find("tac", tacs)
        return (self.column("brand").strings(rows), self.column("model").strings(rows),
                self.column("capabilities")[rows])


def imei_tac(imei: np.ndarray) -> np.ndarray:
    """Packed IMEIs to their TAC (the first 8 digits) as uint32; 0 where there is no IMEI."""
    imei = np.asarray(imei, np.uint64)
    nibbles = (imei[:, None] >> np.arange(60, 28, -4, dtype=np.uint64)) & np.uint64(0xF)
    tac = (nibbles * 10 ** np.arange(7, -1, -1, dtype=np.uint64)).sum(axis=1, dtype=np.uint64)
    return np.where((nibbles < 10).all(axis=1), tac, 0).astype(np.uint32)


class ListStore:
    """The lists of a data directory, loaded on first use and kept until reload() sees a change.

    A running engine calls reload() (cheap: one readlink per loaded list) to pick up re-imports
    and removals; `generation` counts the changes it has seen.
    """

    def __init__(self, data_dir):
        self.root = Path(data_dir) / "lists"
        self.generation = 0
        self._loaded: dict[str, StaticList] = {}

    def names(self) -> list[str]:
        """The imported lists (not the TAC table)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_symlink() and NAME_RE.fullmatch(p.name))

    def catalogue(self) -> dict | None:
        """Each imported list's columns, for control.rules.load to check audiences against;
        None when no list is imported (nothing to check against yet)."""
        names = self.names()
        return {n: list(self.get(n).columns) for n in names} if names else None

    def get(self, name: str) -> StaticList:
        if name != TAC:
            check_name(name)
        if name not in self._loaded:
            self._loaded[name] = self._load(name)
        return self._loaded[name]

    def tac(self) -> TacTable | None:
        """The TAC table, or None when none has been imported."""
        if not (self.root / TAC).is_symlink():
            return None
        return self.get(TAC)

    def _load(self, name: str) -> StaticList:
        link = self.root / name
        for _ in range(5):                           # an import may swap and clean up meanwhile
            if not link.is_symlink():
                raise ListError(f"no list {name!r} in {self.root} (import it: touchpoint lists import {name} FILE)")
            target = self.root / os.readlink(link)
            try:
                return (TacTable if name == TAC else StaticList)(target, name)
            except (ListError, FileNotFoundError):
                if os.path.realpath(link) == str(target.resolve()):
                    raise
        raise ListError(f"list {name!r} in {self.root} keeps changing while it is read")

    def reload(self) -> list[str]:
        """Re-reads the loaded lists that were re-imported or removed; returns their names."""
        changed = [n for n, lst in self._loaded.items() if generation_of(self.root / n) != lst.generation]
        for name in changed:
            del self._loaded[name]
        if changed:
            self.generation += 1
        return changed
