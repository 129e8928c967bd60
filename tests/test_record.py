"""The record contract: the numpy dtype mirrors the C struct byte for byte."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from touchpoint.probe import _decode
from touchpoint.probe.record import (
    RECORD_DTYPE,
    SCHEMA_VERSION,
    Flag,
    Kind,
    Loc,
    MmsClass,
    Proto,
    digits,
    pack,
    to_digits,
    unpack,
)


def test_dtype_matches_c_struct():
    fields, size = _decode.record_layout()
    assert RECORD_DTYPE.itemsize == size
    assert [name for name, _, _ in fields] == list(RECORD_DTYPE.names)
    for name, offset, nbytes in fields:
        dt, off = RECORD_DTYPE.fields[name][:2]
        assert (off, dt.itemsize) == (offset, nbytes), name


def test_schema_version():
    assert _decode.SCHEMA_VERSION == SCHEMA_VERSION


def test_enums_match_c():
    c = _decode.enum_values()
    for enum, key in ((Proto, "proto"), (Flag, "flag"), (Loc, "loc"), (Kind, "kind"), (MmsClass, "mms_class")):
        for name, value in c[key].items():
            assert enum[name].value == value, (key, name)


def test_digits_examples():
    assert to_digits("460001") == 0x460001FFFFFFFFFF
    assert digits(0xFFFFFFFFFFFFFFFF) == ""
    assert digits(to_digits("0123")) == "0123"          # leading zeros survive
    assert digits(to_digits("*140#")) == "*140#"
    assert digits(to_digits("01", 4), 4) == "01" and digits(to_digits("001", 4), 4) == "001"
    with pytest.raises(ValueError):
        pack(["12x"])


@given(st.lists(st.text("0123456789*#", max_size=16), max_size=50))
def test_pack_unpack_roundtrip(strings):
    packed = pack(strings)
    assert list(unpack(packed)) == strings
    # numeric order is string order for digit strings of equal length
    if len(strings) > 1 and len({len(s) for s in strings}) == 1 and all(s.isdigit() for s in strings):
        assert sorted(strings) == list(unpack(np.sort(packed)))
