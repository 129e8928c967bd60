"""An import: read the source, check and convert every row, spill, then store the new generation
and swap it in (the layout it writes: lists.layout)."""
import fcntl
import math
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from touchpoint.probe.record import NO_DIGITS

from ..datadir import private
from .columns import PROBLEM, Key, as_text, convert, fixed_width, infer_type, native_type
from .layout import KEYS, ListError, clean_generations, fsync, generation_of, read_meta, save, write_json
from .source import BadRows, open_source, prefetch

MAX_SHRINK = 0.5                    # an import may shrink a list by this share at most, unless forced

TAC_TEXT = ("brand", "model")
MAX_DIGITS = 15                     # E.164 numbers and IMSIs
MAX_CATEGORIES = 32767              # text with more distinct values is stored as fixed-width UTF-8
MAX_CAPABILITIES = 64               # bits of the TAC table's capability mask
COLUMN_RE = re.compile(r"\w+")

INT_NULL = np.iinfo(np.int64).min


@dataclass
class ImportColumn:
    """One attribute column between the passes: what pass 1 learns of it, and its values spilled
    to a file so that memory stays flat however large the source is.

    Numbers spill as int64 (INT_NULL where missing), float64 (NaN), bool as int8 (-1); text as
    int32 codes in order of first appearance while it has at most MAX_CATEGORIES distinct
    values, then as an Arrow stream of strings.
    """
    name: str
    type: str
    index: int                              # in the source
    min: float | None = None
    max: float | None = None
    missing: int = 0
    width: int = 0                          # text: the longest value in UTF-8 bytes
    codes: dict | None = field(default_factory=dict)    # text: value -> code; None past MAX_CATEGORIES
    rows: int = 0

    def open(self, directory: Path) -> None:
        self.spill = directory / f"spill.{self.name}"
        self.file = open(self.spill, "wb")
        self.stream = None

    def append(self, values: pa.Array) -> None:
        self.missing += values.null_count
        self.rows += len(values)
        if self.type in ("int", "float"):
            mm = pc.min_max(values)
            lo, hi = mm["min"].as_py(), mm["max"].as_py()
            if lo is not None:
                self.min = lo if self.min is None else min(self.min, lo)
                self.max = hi if self.max is None else max(self.max, hi)
        if self.type == "text":
            self.width = max(self.width, pc.max(pc.binary_length(values)).as_py() or 0)
            if self.codes is not None:
                encoded = pc.dictionary_encode(values)
                for v in encoded.dictionary.to_pylist():
                    self.codes.setdefault(v, len(self.codes))
                if len(self.codes) <= MAX_CATEGORIES:
                    recode = np.array([self.codes[v] for v in encoded.dictionary.to_pylist()] + [-1], np.int32)
                    recode[encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)].tofile(self.file)
                    return
                self._codes_to_text()
            if self.stream is None:
                self.stream = ipc.new_stream(self.file, pa.schema([("v", pa.string())]))
            self.stream.write_batch(pa.record_batch([values], ["v"]))
            return
        null = {"int": INT_NULL, "float": math.nan, "bool": -1, "bitmask": 0}[self.type]
        pc.fill_null(values, null).to_numpy(zero_copy_only=False).tofile(self.file)

    def _codes_to_text(self) -> None:
        """Too many distinct values for categories: the codes spilled so far become text."""
        self.file.close()
        codes = np.fromfile(self.spill, np.int32)
        table = pa.array(list(self.codes), pa.string())
        self.codes = None
        self.file = open(self.spill, "wb")
        self.stream = ipc.new_stream(self.file, pa.schema([("v", pa.string())]))
        for at in range(0, len(codes), 1 << 20):
            part = pa.array(codes[at:at + (1 << 20)], mask=codes[at:at + (1 << 20)] < 0)
            self.stream.write_batch(pa.record_batch([pc.take(table, part)], ["v"]))

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
        self.file.close()

    def dtype(self) -> np.dtype:
        """The stored form: the smallest that holds the values and the missing value."""
        if self.type == "int":
            lo, hi = self.min or 0, self.max or 0
            for dt in (np.int8, np.int16, np.int32):
                if np.iinfo(dt).min < lo and hi <= np.iinfo(dt).max:      # the minimum means missing
                    return np.dtype(dt)
            return np.dtype(np.int64)
        if self.type == "text" and self.codes is None:
            return np.dtype(f"S{max(self.width, 1)}")
        if self.type == "text":
            return np.dtype(np.int8 if len(self.codes) <= 127 else np.int16)
        return np.dtype({"float": np.float64, "bool": np.int8, "bitmask": np.uint64}[self.type])

    def store(self, path: Path) -> np.ndarray | None:
        """Writes the column in its stored form to `path`; returns its categories, sorted, if any."""
        dtype = self.dtype()
        target = np.lib.format.open_memmap(path, "w+", dtype, (self.rows,))
        categories = None
        if self.type == "text" and self.codes is not None:
            categories = np.array(list(self.codes), str)
            order = np.argsort(categories)
            rank = np.empty(len(order) + 1, np.int32)           # code of first appearance -> sorted code
            rank[order] = np.arange(len(order))
            rank[-1] = -1
            codes = np.memmap(self.spill, np.int32, "r") if self.rows else np.zeros(0, np.int32)
            for at in range(0, self.rows, 1 << 22):
                target[at:at + (1 << 22)] = rank[codes[at:at + (1 << 22)]]
            categories = categories[order]
        elif self.type == "text":
            at = 0
            with pa.memory_map(str(self.spill)) as mm:
                for batch in ipc.open_stream(mm):
                    target[at:at + batch.num_rows] = fixed_width(batch.column(0), dtype.itemsize)
                    at += batch.num_rows
        else:
            spilled = {"int": np.int64, "float": np.float64, "bool": np.int8, "bitmask": np.uint64}[self.type]
            values = np.memmap(self.spill, spilled, "r") if self.rows else np.zeros(0, spilled)
            for at in range(0, self.rows, 1 << 22):
                part = values[at:at + (1 << 22)]
                if self.type == "int":
                    part = np.where(part == INT_NULL, np.iinfo(dtype).min, part)
                target[at:at + (1 << 22)] = part
        target.flush()
        del target
        fsync(path)
        self.spill.unlink()
        return categories

    def describe(self) -> dict:
        d = {"name": self.name, "type": self.type, "dtype": str(self.dtype()), "missing": self.missing}
        if self.min is not None:
            d["min"], d["max"] = self.min, self.max
        if self.type == "text" and self.codes is not None:
            d["categories"] = len(self.codes)
        return d


class Capabilities:
    """The TAC table's capability names, each given the next bit when it first appears."""

    def __init__(self):
        self.names: list[str] = []

    def bits(self, names: list[str]) -> np.ndarray:
        for name in names:
            if name not in self.names:
                if len(self.names) == MAX_CAPABILITIES:
                    raise ListError(f"more than {MAX_CAPABILITIES} capabilities ({name!r} is one too many)")
                self.names.append(name)
        return np.array([self.names.index(n) for n in names], np.uint64)

    def mask(self, capsets: pa.Array | None, flags: dict[str, np.ndarray], n: int) -> np.ndarray:
        """A `capabilities` column ("5g;volte") and flag columns (1/0) to one uint64 mask per row."""
        out = np.zeros(n, np.uint64)
        if capsets is not None:
            lists = pc.split_pattern_regex(pc.utf8_lower(pc.fill_null(capsets, "")), r"[;|,\s]+")
            parent = pc.list_parent_indices(lists).to_numpy()
            names = pc.list_flatten(lists)
            keep = pc.not_equal(names, "").to_numpy(zero_copy_only=False)
            names = names.filter(pa.array(keep))
            distinct = pc.unique(names)
            bits = self.bits(distinct.to_pylist())[pc.index_in(names, value_set=distinct).to_numpy()]
            np.bitwise_or.at(out, parent[keep], np.uint64(1) << bits)
        for name, flag in flags.items():
            out[flag == 1] |= np.uint64(1) << self.bits([name])[0]
        return out


class Import:
    """One import: read the source, check and convert every row, spill, then store and swap.

    Pass 1 converts each batch, reports its bad rows, keeps the keys in memory and spills the
    attribute columns (ImportColumn). Pass 2 sorts the keys and writes every column in its
    final, smallest form. Then the symlink swap makes the new generation the list.
    """

    def __init__(self, data_dir, name: str, path, types: dict[str, str] | None = None, errors=None,
                 tac: bool = False, force: bool = False, max_shrink: float = MAX_SHRINK):
        self.force, self.max_shrink = force, max_shrink
        self.lists = Path(private(data_dir)) / "lists"
        self.name = name
        self.path = str(path)
        self.forced = dict(types or {})
        self.errors = errors
        self.tac = tac
        self.caps = Capabilities() if tac else None
        self.bad = None

    def run(self) -> dict:
        t0 = time.perf_counter()
        if not os.path.isfile(self.path):
            raise ListError(f"{self.path}: no such file")
        self.lists.mkdir(parents=True, exist_ok=True)
        with open(self.lists / f".{self.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)                       # one import of a name at a time
            old = generation_of(self.lists / self.name)
            clean_generations(self.lists, self.name)
            generation = max(time.time_ns() // 1000, old + 1)      # unique even after an rm
            final = self.lists / f".{self.name}.{generation}"
            final.mkdir()
            try:
                meta = self._build(final)
                self._check_shrink(old, meta["rows"])
                meta.update(name=self.name, generation=generation, seconds=round(time.perf_counter() - t0, 3))
                write_json(final / "meta.json", meta)
                fsync(final)
                link = self.lists / f".{self.name}.link"
                if link.is_symlink():
                    link.unlink()
                link.symlink_to(final.name)
                os.replace(link, self.lists / self.name)           # the swap: old or new, never a mix
                fsync(self.lists)
            except BaseException:
                shutil.rmtree(final, ignore_errors=True)
                raise
            clean_generations(self.lists, self.name)
        return meta

    def _check_shrink(self, old: int, rows: int) -> None:
        """An import that leaves far fewer rows than the list had is refused unless forced: for an
        exclusion or opt-out list, a list emptied by mistake means messaging who must not be."""
        if self.force or not old:
            return
        try:
            before = read_meta(self.lists / f".{self.name}.{old}")["rows"]
        except (ListError, KeyError):
            return
        if rows < before * (1 - self.max_shrink):
            raise ListError(f"{self.path}: {rows:,} rows would replace the {before:,} of list {self.name}, "
                            f"{1 - rows / before:.0%} fewer (more than {self.max_shrink:.0%}): the list is "
                            f"unchanged; --force replaces it", [])

    def _layout(self, source) -> tuple[list[Key], list[ImportColumn]]:
        names = [c.strip().lower() for c in source.columns]
        where = f"{self.path}:1" if source.unit == "line" else self.path
        for i, c in enumerate(names):
            if not COLUMN_RE.fullmatch(c):
                raise ListError(f"{where}: column {i + 1} ({c!r}) needs a name of letters, digits and _")
            if names.index(c) != i:
                raise ListError(f"{where}: column {c!r} appears twice")
        if self.tac:
            need = [c for c in ("tac", *TAC_TEXT) if c not in names]
            if need:
                raise ListError(f"{where}: a TAC table needs the columns tac, brand and model; "
                                f"{', '.join(need)} missing (the columns are {', '.join(names)})")
            keys = [Key("tac", names.index("tac"), (8, 8))]
            for c in names:              # brand, model, capabilities ("5g;volte"); any other: a flag
                self.forced[c] = "text" if c in (*TAC_TEXT, "capabilities") else "bool"
        else:
            keys = [Key(k, names.index(k), (1, MAX_DIGITS)) for k in KEYS if k in names]
            if not keys:
                raise ListError(f"{where}: an msisdn or an imsi column (or both) is needed; "
                                f"the columns are {', '.join(names) or 'none'}")
            for col in self.forced:
                if col not in names or col in KEYS:
                    raise ListError(f"--type {col}=...: {self.path} has no attribute column {col!r}")
        key_names = {k.name for k in keys}
        return keys, [ImportColumn(c, self.forced.get(c, ""), i) for i, c in enumerate(names)
                      if c not in key_names]

    def _build(self, out: Path) -> dict:
        source = open_source(self.path)
        keys, cols = self._layout(source)
        stored = ([c for c in cols if c.name in TAC_TEXT] + [ImportColumn("capabilities", "bitmask", -1)]
                  if self.tac else cols)
        rows, blank = self._pass1(source, keys, cols, stored, out)
        bad = self.bad
        if not rows:
            what = "the TAC table" if self.tac else f"list {self.name}"
            raise ListError(f"{self.path}: no rows to import ({bad.count} bad); {what} is unchanged", bad.first)
        meta = {"kind": "tac" if self.tac else "subscribers", "source": os.path.abspath(self.path),
                "format": "parquet" if source.unit == "row" else "csv", "delimiter": source.delimiter,
                "rows": rows, "bad_rows": bad.count, "first_bad": bad.first, "blank_lines": blank,
                "imported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "keys": {}, "duplicates": {}, "columns": [c.describe() for c in stored]}
        self._pass2(out, keys, stored, meta)
        return meta

    def _pass1(self, source, keys: list[Key], cols: list[ImportColumn], stored: list[ImportColumn],
               out: Path) -> tuple[int, int]:
        """Every batch converted and checked, its bad rows reported, the keys and the columns of the
        rows kept spilled to `out`: (rows kept, blank lines)."""
        for col in stored:
            col.open(out)
        bad = self.bad = BadRows(source, self.errors)
        key_files = {k.name: open(out / f"spill.{k.name}.keys", "wb") for k in keys}
        rows = blank = 0
        try:
            for arrays, lines, skipped in prefetch(source.batches()):
                for number, why in skipped:
                    bad.add(number, why)
                if source.unit == "line" and not self.force:
                    self._no_newlines(arrays, lines)
                converted, problems = self._convert(arrays, len(lines), keys, cols)
                keep, blanks = self._reject(source, arrays, lines, problems)
                blank += blanks
                bad.flush()
                whole = keep.all()
                for key in keys:
                    (converted[key.name] if whole else converted[key.name][keep]).tofile(key_files[key.name])
                for col in stored:
                    values = converted[col.name]
                    col.append(values if whole else values.filter(pa.array(keep)))
                rows += int(keep.sum())
            bad.flush()
            pa.default_memory_pool().release_unused()          # what parsing held, before the sort
        finally:
            for f in key_files.values():
                f.close()
            for col in stored:
                col.close()
        return rows, blank

    def _no_newlines(self, arrays, lines) -> None:
        """A field that runs over lines is an unclosed quote far more often than a list's text:
        one stray quote once read a 100,001-line file as 1 row. Refused, unless forced."""
        for arr in arrays:
            hit = pc.match_substring(arr, "\n")
            if pc.any(hit).as_py():
                at = int(np.flatnonzero(hit.to_numpy(zero_copy_only=False))[0])
                raise ListError(f"{self.path}:{lines[at]}: a field runs over more than one line (a quote opened "
                                f"there and not closed?); the list is unchanged; --force imports it as read", [])

    def _convert(self, arrays, n: int, keys: list[Key], cols: list[ImportColumn]) -> tuple[dict, list]:
        """The keys and columns of one batch converted, and the problems found: (mask, why(row))
        pairs, the first that holds for a row is its reason."""
        problems, converted, present = [], {}, np.zeros(n, bool)
        for key in keys:
            values, empty, key_problems = key.parse(arrays[key.index])
            problems += key_problems
            present |= ~empty
            converted[key.name] = values
        need = " or ".join(k.name for k in keys)
        problems.append((~present, lambda i: f"no {need}"))
        for col in cols:
            arr = arrays[col.index]
            if not col.type:
                col.type = native_type(arr) or infer_type(as_text(arr)[0])
            values, not_utf8, wrong, text = convert(arr, col.type)
            problems.append((not_utf8, lambda i, c=col.name: f"{c} is not UTF-8 text (save the file as UTF-8)"))
            why = PROBLEM.get(col.type)
            problems.append((wrong, lambda i, c=col.name, t=text, w=why:
                             f"{c}: {str(t[i].as_py())[:40]!r} {w}"))
            converted[col.name] = values
        if self.tac:
            flags = {c.name: converted.pop(c.name).fill_null(0).to_numpy(zero_copy_only=False)
                     for c in cols if c.type == "bool"}
            converted["capabilities"] = pa.array(self.caps.mask(converted.get("capabilities"), flags, n))
        return converted, problems

    def _reject(self, source, arrays, lines: np.ndarray, problems: list) -> tuple[np.ndarray, int]:
        """The rows of a batch to keep, and its blank lines; each rejected row goes to the bad rows."""
        n = len(lines)
        rejected = np.zeros(n, bool)
        for mask, _ in problems:
            rejected |= mask
        blank = 0
        if source.unit == "line":                          # a blank line: no row, no error
            filled = sum(pc.binary_length(a).to_numpy() for a in arrays) > 0
            blank = int(n - filled.sum())
            rejected &= filled
            keep = filled & ~rejected
        else:
            keep = ~rejected
        for i in np.flatnonzero(rejected):
            self.bad.add(int(lines[i]), next(why(i) for mask, why in problems if mask[i]))
        return keep, blank

    def _pass2(self, out: Path, keys: list[Key], stored: list[ImportColumn], meta: dict) -> None:
        """The spilled keys sorted into their index, every column in its stored form; `meta` gets
        the key counts, the duplicates and the TAC table's capabilities."""
        for key in keys:
            spill = out / f"spill.{key.name}.keys"
            distinct, last, dups = index_keys(np.fromfile(spill, np.uint64))
            spill.unlink()
            save(out / f"{key.name}.keys.npy", distinct.astype(np.uint32) if self.tac else distinct)
            save(out / f"{key.name}.rows.npy", last)
            meta["keys"][key.name] = len(distinct)
            meta["duplicates"][key.name] = dups
        for col in stored:
            categories = col.store(out / f"col.{col.name}.npy")
            if categories is not None:
                save(out / f"col.{col.name}.categories.npy", categories)
        if self.tac:
            meta["capabilities"] = self.caps.names

def index_keys(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Keys in row order to (sorted distinct keys, the last row of each, duplicates dropped).

    Rows are int32 below 2**31 rows: half the memory, and lookups touch fewer cache lines.
    """
    order = np.argsort(values)              # not stable: the last row of a run is taken below
    keys = np.sort(values)                  # (faster than values[order], a random gather)
    del values
    present = int(np.searchsorted(keys, NO_DIGITS))        # absent keys (NO_DIGITS) sort last
    keys, order = keys[:present], order[:present]
    rows = np.int32 if len(order) < 2**31 else np.int64
    if not present or (keys[1:] != keys[:-1]).all():
        return keys, order.astype(rows), 0
    starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    return keys[starts], np.maximum.reduceat(order, starts).astype(rows), present - len(starts)
