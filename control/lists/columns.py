"""Converting a source's columns: text cleaned, types inferred and checked row by row, keys
packed as digits. A value that does not convert costs its row, not the file."""
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from touchpoint.probe.record import NO_DIGITS

TRUE = ("true", "yes", "y", "t", "1", "是")
FALSE = ("false", "no", "n", "f", "0", "否")


def as_text(arr: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Any column as strings without surrounding spaces and tabs (null where empty), and the
    rows that are not UTF-8."""
    bad = np.zeros(len(arr), bool)
    if pa.types.is_binary(arr.type):
        arr, bad = cast_rows(arr, pa.string())
    elif not pa.types.is_string(arr.type):
        arr = pc.cast(arr, pa.string())
    if padded(arr):
        arr = pc.utf8_trim(arr, " \t")
    return pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr), bad


def padded(arr: pa.Array) -> bool:
    """Whether any value of a string array starts or ends with a space or a tab."""
    offsets, data = string_buffers(arr)
    lengths = np.diff(offsets)
    ends = np.concatenate([offsets[:-1][lengths > 0], offsets[1:][lengths > 0] - 1])
    edge = data[ends]
    return bool(((edge == 0x20) | (edge == 0x09)).any())


def string_buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The offsets (n + 1) and the data bytes of a string or binary array."""
    buffers = arr.buffers()
    offsets = np.frombuffer(buffers[1], np.int32)[arr.offset:arr.offset + len(arr) + 1]
    data = np.frombuffer(buffers[2], np.uint8) if buffers[2] is not None else np.zeros(0, np.uint8)
    return offsets, data


def byte_matrix(arr: pa.Array, width: int, fill: int, take: np.ndarray | None = None) -> np.ndarray:
    """The bytes of each string in a row of `width`, padded with `fill` (rows not in `take`: fill
    only). Strings must fit."""
    offsets, data = string_buffers(arr)
    n = len(arr)
    lengths = np.diff(offsets)
    if take is not None:
        lengths = np.where(take, lengths, 0)
    if n and (lengths == lengths[0]).all() and (take is None or take.all()):
        out = np.full((n, width), fill, np.uint8)    # every string as long: a reshape, no scatter
        out[:, :lengths[0]] = data[offsets[0]:offsets[0] + n * lengths[0]].reshape(n, lengths[0])
        return out
    out = np.full((n, width), fill, np.uint8)
    total = int(lengths.sum())
    row = np.repeat(np.arange(n), lengths)
    col = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out[row, col] = data[np.repeat(offsets[:-1], lengths) + col]
    return out


def pack_text(arr: pa.Array, take: np.ndarray) -> np.ndarray:
    """Strings of 1 to 16 ASCII digits to packed digits (probe.record.pack); NO_DIGITS where not `take`."""
    nibbles = byte_matrix(arr, 16, ord("?"), take) - np.uint8(ord("0"))        # '?' - '0' = 0xF filler
    pairs = (nibbles[:, 0::2] << np.uint8(4)) | nibbles[:, 1::2]
    packed = np.ascontiguousarray(pairs).view(">u8").ravel().astype(np.uint64)
    packed[~take] = NO_DIGITS
    return packed


def cast_rows(arr: pa.Array, to: pa.DataType) -> tuple[pa.Array, np.ndarray]:
    """pc.cast row by row in effect: the rows that do not convert become null and are flagged.

    The whole array is cast at once; only when that fails is it halved until the culprits are
    alone, so a clean batch costs one cast and k bad values about k * log2(n) small ones.
    """
    try:
        return pc.cast(arr, to), np.zeros(len(arr), bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        if len(arr) == 1:
            return pa.nulls(1, to), np.ones(1, bool)
    half = len(arr) // 2
    a, bad_a = cast_rows(arr[:half], to)
    b, bad_b = cast_rows(arr[half:], to)
    return pa.concat_arrays([a, b]), np.concatenate([bad_a, bad_b])


def infer_type(text: pa.Array) -> str:
    """The type of a text column from its values (in the first batch): int, float, bool or text."""
    values = text.drop_null()
    if not len(values):
        return "text"
    for name, arrow in (("int", pa.int64()), ("float", pa.float64())):
        try:
            pc.cast(values, arrow)
            return name
        except pa.ArrowInvalid:
            pass
    if pc.all(pc.is_in(pc.utf8_lower(values), pa.array(TRUE + FALSE))).as_py():
        return "bool"
    return "text"


def native_type(arr: pa.Array) -> str | None:
    """The list type of a Parquet column that has one; None for text."""
    t = arr.type
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_boolean(t):
        return "bool"
    return None


PASS1 = {"int": pa.int64(), "float": pa.float64(), "bool": pa.int8(), "text": pa.string()}
PROBLEM = {"int": "is not an integer", "float": "is not a number", "bool": "is not true or false"}


def convert(arr: pa.Array, typ: str) -> tuple[pa.Array, np.ndarray, np.ndarray, pa.Array]:
    """A source column to its type (int64, float64, int8 for bool, string; null where missing):
    (values, not UTF-8, not of the type, the text)."""
    if native_type(arr) == typ:
        none = np.zeros(len(arr), bool)
        return pc.cast(arr, PASS1[typ]), none, none, arr
    text, not_utf8 = as_text(arr)
    if typ == "bool":
        low = pc.utf8_lower(text)
        yes = pc.is_in(low, pa.array(TRUE))
        wrong = ~pc.is_in(low, pa.array(TRUE + FALSE)).to_numpy(zero_copy_only=False)
        wrong &= text.is_valid().to_numpy(zero_copy_only=False)
        values = pc.if_else(text.is_valid(), pc.cast(yes, pa.int8()), pa.scalar(None, pa.int8()))
        return values, not_utf8, wrong, text
    if typ == "text":
        return text, not_utf8, np.zeros(len(text), bool), text
    values, wrong = cast_rows(text, PASS1[typ])
    if typ == "float":
        finite = pc.fill_null(pc.is_finite(values), True).to_numpy(zero_copy_only=False)
        values = pc.if_else(pa.array(finite), values, pa.scalar(None, pa.float64()))
        wrong |= ~finite
    return values, not_utf8, wrong, text


@dataclass
class Key:
    """A key column: its name, where it is in the source and how many digits it may have."""
    name: str
    index: int
    digits: tuple[int, int]

    def parse(self, arr: pa.Array) -> tuple[np.ndarray, np.ndarray, list]:
        """(values, empty, problems): packed digits (the TAC as a number), NO_DIGITS where absent.

        An MSISDN may be written with a leading '+' or the international prefix 00: both are
        dropped, so +8613800138000, 008613800138000 and 8613800138000 are one number. Plain
        digits take a fast path; only the rest are trimmed, checked for UTF-8 and stripped.
        """
        raw = arr.view(pa.string()) if pa.types.is_binary(arr.type) else as_text(arr)[0]
        lengths, digits = self._check(raw)
        empty = lengths == 0
        lo, hi = self.digits
        good = digits & (lengths >= lo) & (lengths <= hi)
        redo = ~good & ~empty
        if self.name == "msisdn":
            redo |= pc.fill_null(pc.starts_with(raw, "00"), False).to_numpy(zero_copy_only=False)
        values = self._values(raw, good & ~redo)
        not_utf8 = np.zeros(len(raw), bool)
        if redo.any():
            at = np.flatnonzero(redo)
            text, not_utf8[at] = as_text(raw.take(pa.array(at)))
            if self.name == "msisdn":
                text = pc.replace_substring_regex(text, r"^(\+|00)", "")
            lengths[at], digits[at] = self._check(text)
            empty[at] = lengths[at] == 0
            good[at] = digits[at] & (lengths[at] >= lo) & (lengths[at] <= hi) & ~not_utf8[at]
            values[at] = self._values(text, good[at])
        need = f"{lo}" if lo == hi else f"{lo} to {hi}"
        problems = [(not_utf8 | (~digits & ~empty), lambda i: f"{self.name} is not digits"),
                    (digits & ~good & ~not_utf8, lambda i: f"{self.name} has {lengths[i]} digits, not {need}")]
        return values, empty, problems

    @staticmethod
    def _check(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        lengths = pc.fill_null(pc.binary_length(text), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        digits = pc.fill_null(pc.ascii_is_decimal(text), False).to_numpy(zero_copy_only=False)
        return lengths, digits.copy()

    def _values(self, text: pa.Array, good: np.ndarray) -> np.ndarray:
        if self.name != "tac":
            return pack_text(text, good)
        values = pc.cast(pc.if_else(pa.array(good), text, "0"), pa.uint64()).to_numpy(zero_copy_only=False)
        return np.where(good, values, NO_DIGITS)


def fixed_width(arr: pa.Array, width: int) -> np.ndarray:
    """A string array to NUL-padded UTF-8 of `width` bytes (null: empty)."""
    return byte_matrix(pc.fill_null(arr, ""), width, 0).view(f"S{width}").ravel()

