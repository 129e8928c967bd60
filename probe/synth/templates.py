"""Templates: every message shape is encoded by pycrate once, with placeholder identities; the
placeholders are located in the encoded bytes and each packet patches its own in."""
from __future__ import annotations

import random
import struct
import zlib

from .digits import cgi, plmn, sms_addr, tbcd
from .tcap_map import (
    AC, ber_style, encode_abort, encode_continue, encode_end, error, invoke, map_arg, map_err, map_res,
    result,
)

# Field kinds. Values handed to templates are the *encoded* octets of each field;
# builders receive digit strings (tbcd, smsaddr) or raw octets (raw).
_RAW_FIELDS = frozenset(("otid", "dtid", "cgi", "lai", "gsn"))
_SMS_FIELDS = frozenset(("tp_oa", "tp_da"))


# Fields of the templates beyond MAP (GTP, ISUP, CAP, SMS): name -> (encode(value) -> octets,
# placeholder(nbytes, rnd) -> value). Filled in by the mixed-traffic section below.
_FIELD_SPECS: dict = {}


def _enc_field(name: str, value):
    spec = _FIELD_SPECS.get(name)
    if spec is not None:
        return spec[0](value)
    if name in _RAW_FIELDS:
        return value
    if name in _SMS_FIELDS:
        return sms_addr(value)
    return tbcd(value)


class _Template:
    __slots__ = ("pieces", "names")

    def __init__(self, pieces, names):
        self.pieces = pieces
        self.names = names

    def render(self, vals: dict) -> bytes:
        p = self.pieces
        out = [p[0]]
        for i, n in enumerate(self.names):
            out.append(vals[n])
            out.append(p[i + 1])
        return b"".join(out)


def _placeholder(name: str, nbytes: int, rnd: random.Random):
    """A python value for `name` whose encoding is `nbytes` octets of random content."""
    spec = _FIELD_SPECS.get(name)
    if spec is not None:
        return spec[1](nbytes, rnd)
    if name in _RAW_FIELDS:
        return bytes(rnd.randrange(256) for _ in range(nbytes))
    if name in _SMS_FIELDS:
        return "".join(rnd.choice("0123456789") for _ in range(2 * (nbytes - 2)))
    return "".join(rnd.choice("0123456789") for _ in range(2 * nbytes))


def _make_template(builder, disc: tuple, names: tuple, lens: tuple) -> _Template:
    for attempt in range(20):
        rnd = random.Random(zlib.crc32(repr((builder.__name__, disc, names, lens, attempt)).encode()))
        ph = {n: _placeholder(n, ln, rnd) for n, ln in zip(names, lens)}
        enc = {n: _enc_field(n, ph[n]) for n in names}
        with ber_style("definite"):
            data = builder(ph, *disc)
        spots = []
        ok = True
        for n in names:
            e = enc[n]
            i = data.find(e)
            if i < 0 or data.find(e, i + 1) >= 0:
                ok = False
                break
            spots.append((i, n, len(e)))
        if not ok:
            continue
        spots.sort()
        if any(spots[k][0] + spots[k][2] > spots[k + 1][0] for k in range(len(spots) - 1)):
            continue
        pieces, order, pos = [], [], 0
        for i, n, ln in spots:
            pieces.append(data[pos:i])
            order.append(n)
            pos = i + ln
        pieces.append(data[pos:])
        t = _Template(pieces, tuple(order))
        check = t.render(enc)
        assert check == data, f"template {builder.__name__} does not round-trip"
        return t
    raise RuntimeError(f"cannot place the fields {names} of {builder.__name__}")


class _Templates:
    """Templates by (builder, discrete choices, field names, field lengths), made on first use."""

    def __init__(self):
        self.cache = {}

    def render(self, builder, disc: tuple, vals: dict) -> bytes:
        names = tuple(vals)
        lens = tuple(map(len, vals.values()))
        key = (builder, disc, names, lens)
        t = self.cache.get(key)
        if t is None:
            t = self.cache[key] = _make_template(builder, disc, names, lens)
        return t.render(vals)


# --- message builders: (fields, *discrete) -> TCAP octets ------------------
# Fields arrive as digit strings / raw octets; discrete choices are hashable.

def _b_end_error(f, op, v, code):
    return encode_end(f["dtid"], [error(code, map_err(code))], ac=(_OP_AC[op][0], v) if v >= 2 else None)


def _b_abort(f, cause):
    return encode_abort(f["dtid"], cause)


def _b_ul_isd(f, v):
    """HLR -> VLR Continue: AARE + insertSubscriberData invoke carrying the MSISDN."""
    return encode_continue(f["otid"], f["dtid"], [invoke(7, map_arg(7, v, msisdn=f["msisdn"]), 1)],
                           ac=(AC["networkLocUp"], v))


def _b_ul_isd_res(f, v):
    return encode_continue(f["otid"], f["dtid"], [result(7, map_res(7, v), 1)])


def _b_ul_end(f, v):
    return encode_end(f["dtid"], [result(2, map_res(2, v, hlr=f["hlr"]), 1)])


_OP_AC = {
    2: (AC["networkLocUp"],), 3: (AC["locationCancellation"],), 7: (AC["subscriberDataMngt"],),
    10: (AC["networkFunctionalSs"],), 11: (AC["networkFunctionalSs"],), 12: (AC["networkFunctionalSs"],),
    13: (AC["networkFunctionalSs"],), 22: (AC["locationInfoRetrieval"],), 23: (AC["gprsLocationUpdate"],),
    43: (AC["equipmentMngt"],), 44: (AC["shortMsgMT-Relay"],), 45: (AC["shortMsgGateway"],),
    46: (AC["shortMsgMO-Relay"],), 56: (AC["infoRetrieval"],), 59: (AC["networkUnstructuredSs"],),
    67: (AC["msPurging"],), 70: (AC["subscriberInfoEnquiry"],), 71: (AC["anyTimeInfoEnquiry"],),
}


# ---------------------------------------------------------------------------
# The fields of the mixed traffic: GTPv2-C, GTPv1-C, GTP-U, CAP, ISUP, multi-part SMS, MMS
# ---------------------------------------------------------------------------
#
# Every message is encoded by pycrate once per shape (TS29274_GTPC, TS29060_GTP, ISUP,
# TS23040_SMS, TCAP_CAP), then patched per packet like the MAP templates (flows.py makes
# the messages; these are how their fields are encoded and drawn).

GTPC_PORT, GTPU_PORT = 2123, 2152
USAGE_INTERVAL_NS = 60_000_000_000        # the decoder's default --usage-interval


def _raw_spec():
    return (lambda v: v, lambda n, r: bytes(r.randrange(256) for _ in range(n)))


def _ascii_spec(alphabet: str):
    return (lambda v: v, lambda n, r: "".join(r.choice(alphabet) for _ in range(n)).encode())


def _rand_plmn(r: random.Random) -> bytes:
    return plmn("".join(r.choice("0123456789") for _ in range(3)),
                "".join(r.choice("0123456789") for _ in range(r.choice((2, 3)))))


def _isup_digits(digits: str) -> bytes:
    """ISUP address signals (Q.763 3.9): BCD, first digit in the low nibble, filler 0."""
    n = [int(c) for c in digits]
    if len(n) & 1:
        n.append(0)
    return bytes(n[i] | (n[i + 1] << 4) for i in range(0, len(n), 2))


def _imsi8(digits: str) -> bytes:
    """GTPv1 IMSI TV value: always 8 octets, 0xF filler (TS 29.060 7.7.2)."""
    return (tbcd(digits) + b"\xff" * 8)[:8]


def _uli_tai_ecgi(mcc: str, mnc: str, tac: int, eci: int) -> bytes:
    """GTPv2 ULI value (TS 29.274 8.21) with a TAI and an ECGI."""
    p = plmn(mcc, mnc)
    return b"\x18" + p + struct.pack(">H", tac) + p + struct.pack(">I", eci & 0x0FFFFFFF)


def _uli_cgi(mcc: str, mnc: str, lac: int, ci: int) -> bytes:
    """GTPv1 ULI value (TS 29.060 7.7.51), geographic location type 0 (CGI)."""
    return b"\x00" + cgi(mcc, mnc, lac, ci)


def _rai(mcc: str, mnc: str, lac: int, rac: int) -> bytes:
    return plmn(mcc, mnc) + struct.pack(">HB", lac, rac)


for _n in ("seq3", "seq2", "teid_mme", "teid_sgw", "teid_pgw", "teid_sgwu", "teid_pgwu", "teid_enb",
           "teid_sgsnc", "teid_sgsnu", "teid_ggsnc", "teid_ggsnu", "ip_mme", "ip_sgw", "ip_pgw", "ip_sgwu",
           "ip_pgwu", "ip_enb", "ip_sgsnc", "ip_sgsnu", "ip_ggsnc", "ip_ggsnu", "ue_ip", "charging_id", "cic",
           "cref", "mms_size"):
    _FIELD_SPECS[_n] = _raw_spec()
_FIELD_SPECS["mms_txn"] = _ascii_spec("abcdefghijklmnopqrstuvwxyz0123456789")
_FIELD_SPECS["mms_loc"] = _ascii_spec("abcdefghijklmnopqrstuvwxyz0123456789")
_FIELD_SPECS["mms_from"] = (lambda v: v.encode(), lambda n, r: "".join(r.choice("0123456789") for _ in range(n)))
_FIELD_SPECS["imsi8"] = (_imsi8, lambda n, r: "".join(r.choice("0123456789") for _ in range(15)))
_FIELD_SPECS["called_isup"] = (_isup_digits, lambda n, r: "".join(r.choice("0123456789") for _ in range(2 * n)))
_FIELD_SPECS["calling_isup"] = _FIELD_SPECS["called_isup"]
_FIELD_SPECS["uli2"] = (lambda v: v, lambda n, r: (b"\x18" + _rand_plmn(r) + bytes(r.randrange(256) for _ in range(2))
                                                   + _rand_plmn(r) + bytes([r.randrange(16)])
                                                   + bytes(r.randrange(256) for _ in range(3))))
_FIELD_SPECS["uli1"] = (lambda v: v, lambda n, r: b"\x00" + _rand_plmn(r) + bytes(r.randrange(256) for _ in range(4)))
_FIELD_SPECS["sn"] = (lambda v: v, lambda n, r: _rand_plmn(r))
_FIELD_SPECS["rai"] = (lambda v: v, lambda n, r: _rand_plmn(r) + bytes(r.randrange(256) for _ in range(3)))


def _bcd_text(hexbytes: str) -> str:
    """The digits of a TON/NPI octet + TBCD digits, given as "81:11:f4" (tshark's bytes)."""
    b = bytes.fromhex(hexbytes.replace(":", ""))[1:]
    out = []
    for x in b:
        for d in (x & 0xF, x >> 4):
            if d == 0xF:
                return "".join(out)
            out.append("0123456789*#abc"[d])
    return "".join(out)


def _plmn_text(p: bytes) -> str:
    """The MCC+MNC digits of 3 PLMN octets, as pycrate's PLMN fields take them."""
    d = [p[0] & 0xF, p[0] >> 4, p[1] & 0xF, p[2] & 0xF, p[2] >> 4]
    if p[1] >> 4 != 0xF:
        d.append(p[1] >> 4)
    return "".join(map(str, d))


# --- GTPv2-C (TS 29.274) with pycrate_mobile.TS29274_GTPC -------------------

_PYCRATE_MOD = {}


def _mod(name: str):
    m = _PYCRATE_MOD.get(name)
    if m is None:
        import importlib
        m = _PYCRATE_MOD[name] = importlib.import_module(name)
    return m
