"""The record contract, mirrored from ext/record.h.

One fixed-size record per signaling event. Fields are only ever appended;
tests/test_record.py checks this dtype against the C struct byte for byte.
"""
import re
from enum import IntEnum, IntFlag

import numpy as np

SCHEMA_VERSION = 4
APN_LEN = 24
ALPHA_LEN = 12
NO_DIGITS = np.uint64(0xFFFFFFFFFFFFFFFF)

RECORD_DTYPE = np.dtype([
    ("ts_ns", "<i8"),
    ("kind", "<u2"),
    ("proto", "u1"),
    ("flags", "u1"),
    ("op", "<u2"),
    ("cause", "<u2"),
    ("imsi", "<u8"),
    ("msisdn", "<u8"),
    ("imei", "<u8"),
    ("peer", "<u8"),
    ("node", "<u8"),
    ("mcc", "<u2"),
    ("mnc", "<u2"),
    ("lac_tac", "<u4"),
    ("cell", "<u4"),
    ("rat", "u1"),
    ("ss_code", "u1"),
    ("version", "u1"),
    ("loc_type", "u1"),
    ("apn", f"S{APN_LEN}"),
    ("tid", "<u4"),
    ("src", "<u4"),
    ("dst", "<u4"),
    ("frame", "<u4"),
    ("probe_id", "<u2"),
    ("pad0", "<u2"),
    ("packets", "<u4"),
    ("octets", "<u8"),
    ("service_key", "<u4"),
    ("app_port", "<u2"),
    ("sms_pid", "u1"),
    ("sms_dcs", "u1"),
    ("parts", "u1"),
    ("part", "u1"),
    ("event", "u1"),
    ("nai", "u1"),
    ("duration_ms", "<u4"),
    ("peer_alpha", f"S{ALPHA_LEN}"),
    ("bearers", "u1"),
    ("ebi", "u1"),
    ("qci", "u1"),
    ("mms_class", "u1"),        # schema 4 (a pad before): MmsClass
    ("subject_hash", "<u8"),    # schema 4: subject_hash() of an MMS notification's subject; 0 none
])

DIGIT_FIELDS = ("imsi", "msisdn", "imei", "peer", "node")
PLMN_FIELDS = ("mcc", "mnc")


class MmsClass(IntEnum):
    """X-Mms-Message-Class of an MMS notification (OMA-TS-MMS-ENC 7.3.27); OTHER: a token text."""
    NONE = 0
    PERSONAL = 1
    ADVERTISEMENT = 2
    INFORMATIONAL = 3
    AUTO = 4
    OTHER = 5


SUBJECT_MAX = 1024          # bytes of a subject in UTF-8 hashed at most: a longer one is 0
_SPACE = " \t\r\n\u3000"
_FORWARD = re.compile(r"(?:[Ff][Ww][Dd]?|转发)[:：]")


def subject_hash(subject: str) -> int:
    """What the decoder keeps of an MMS subject (ext/subject.h): FNV-1a 64 of its UTF-8 text
    without the white space around it and the forward prefixes before it ("Fwd:", "FW:",
    "转发：", repeated, ASCII case folded), so a seed and its forwards hash alike; 0 for none."""
    if len(subject.encode()) > SUBJECT_MAX:
        return 0
    while (m := _FORWARD.match(subject := subject.lstrip(_SPACE))):
        subject = subject[m.end():]
    h = 0
    if text := subject.rstrip(_SPACE).encode():
        h = 0xCBF29CE484222325
        for b in text:
            h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h or (1 if text else 0)


class Proto(IntEnum):
    NONE = 0
    MAP = 1
    CAP = 2
    ISUP = 3
    GTPV1C = 4
    GTPV2C = 5
    GTPU = 6


class Flag(IntFlag):
    REQUEST = 0x01
    RESPONSE = 0x02
    ERROR = 0x04
    ABORT = 0x08
    TIMEOUT = 0x10
    PARTIAL = 0x20
    CORRELATED = 0x40
    ANSWERED = 0x80


class Loc(IntEnum):
    NONE = 0
    CGI = 1
    SAI = 2
    RAI = 3
    TAI = 4
    ECGI = 5
    LAI = 6


class Kind(IntEnum):
    OTHER = 0
    LOCATION_UPDATE = 1
    GPRS_LOCATION_UPDATE = 2
    CANCEL_LOCATION = 3
    PURGE_MS = 4
    AUTH_INFO = 5
    INSERT_SUB_DATA = 6
    SRI = 7
    SRI_SM = 8
    MO_SMS = 9
    MT_SMS = 10
    MMS_NOTIFICATION = 11
    SS_REGISTER = 12
    SS_ACTIVATE = 13
    SS_DEACTIVATE = 14
    SS_ERASE = 15
    CHECK_IMEI = 16
    SUBSCRIBER_INFO = 17
    USSD = 18
    CALL_ATTEMPT = 19
    PDP_CREATE = 20
    PDP_UPDATE = 21
    PDP_DELETE = 22
    SESSION_CREATE = 23
    SESSION_MODIFY = 24
    SESSION_DELETE = 25
    BEARER_CREATE = 26
    BEARER_UPDATE = 27
    BEARER_DELETE = 28
    DATA_USAGE = 29
    CALL_END = 30


def empty(n: int) -> np.ndarray:
    """n records with every field absent (digit fields all filler)."""
    out = np.zeros(n, RECORD_DTYPE)
    for f in DIGIT_FIELDS:
        out[f] = NO_DIGITS
    for f in PLMN_FIELDS:
        out[f] = 0xFFFF
    return out


# Packed digits: first digit in the top nibble, 0xF filler; A-E are TBCD * # a b c.
_CHARS = np.frombuffer(b"0123456789*#abc\0", np.uint8)
_NIBBLE = np.full(256, 0xFF, np.uint8)
for _i, _c in enumerate(b"0123456789*#abc"):
    _NIBBLE[_c] = _i
_NIBBLE[ord("A")], _NIBBLE[ord("B")], _NIBBLE[ord("C")] = 12, 13, 14
_NIBBLE[0] = 0xF


def _shifts(width: int) -> np.ndarray:
    return np.arange(width * 4 - 4, -4, -4, dtype=np.uint64)


def unpack(values, width: int = 16) -> np.ndarray:
    """Packed digits (uint64, or uint16 with width=4) to an array of str."""
    v = np.asarray(values, dtype=np.uint64)
    nib = ((v[..., None] >> _shifts(width)) & np.uint64(0xF)).astype(np.uint8)
    ended = np.logical_or.accumulate(nib == 0xF, axis=-1)
    chars = np.where(ended, 0, _CHARS[nib]).astype(np.uint8)
    return np.ascontiguousarray(chars).view(f"S{width}")[..., 0].astype(f"U{width}")


def pack(strings, width: int = 16) -> np.ndarray:
    """Digit strings to packed uint64 (width=4: to uint16 values). '' packs to all filler."""
    s = np.asarray(strings, dtype=f"S{width}")
    raw = np.frombuffer(np.ascontiguousarray(s).tobytes(), np.uint8).reshape(s.shape + (width,))
    nib = _NIBBLE[raw]
    if (nib == 0xFF).any():
        bad = [x for x in np.atleast_1d(s).ravel() if (_NIBBLE[np.frombuffer(x, np.uint8)] == 0xFF).any()]
        raise ValueError(f"not a digit string: {bad[0].decode(errors='replace')!r}")
    packed = (nib.astype(np.uint64) << _shifts(width)).sum(axis=-1, dtype=np.uint64)
    return packed if width == 16 else packed.astype(np.uint16)


def digits(value: int, width: int = 16) -> str:
    """One packed value to its digit string."""
    return str(unpack(np.uint64(value), width))


def to_digits(s: str, width: int = 16) -> int:
    """One digit string to its packed value."""
    if len(s) > width:
        raise ValueError(f"{s!r} has more than {width} digits")
    return int(pack(s, width))
