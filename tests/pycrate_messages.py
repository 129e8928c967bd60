"""Shared by the tests/test_pycrate_*.py files: hypothesis settings, the fields compared, the
decoder run, SS7-over-IP framing, pycrate's TCAP (CAP and MAP) and ISUP number encoders, and the
truncation check (each message cut at every length). Every expected value is what a test encoded,
never what a decoder said. Frames are built by tests/packets.py.
"""
import contextlib
import struct

import pytest

pytest.importorskip("pycrate_asn1dir")
pytest.importorskip("pycrate_mobile")
pytest.importorskip("touchpoint.probe._decode")

from hypothesis import HealthCheck, Phase, assume, settings
from hypothesis import strategies as st
from pycrate_asn1dir import TCAP_CAP, TCAP_MAPv2v3
from pycrate_mobile import ISUP
from pycrate_mobile.TS24008_IE import PLMN

from touchpoint.probe.decode import ANOMALY_INFO, Stats, decode_bytes
from touchpoint.probe.format import to_dicts
from tests import packets as P


# No shrinking: a failing example is printed as drawn, and the file stays well under a minute.
SETTINGS = settings(max_examples=30, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])
FEW = settings(SETTINGS, max_examples=10)

# Identity fields compared strictly: equal when expected, absent when not.
STRICT = ("imsi", "msisdn", "imei", "peer", "node", "mcc", "mnc", "lac_tac", "cell", "loc_type", "apn",
          "cause", "service_key", "event", "nai", "version", "app_port", "sms_pid", "sms_dcs", "parts",
          "part", "octets", "ss_code", "duration_ms", "mms_class", "subject_hash")
# Fields format.to_dicts leaves out when zero.
IF_NONZERO = ("cause", "version", "octets", "service_key", "app_port", "sms_pid", "sms_dcs", "parts", "part",
              "event", "nai", "duration_ms")

D = "0123456789"


def digits(lo, hi):
    return st.text(D, min_size=lo, max_size=hi)


letters = st.text("abcdefghijklmnopqrstuvwxyz", min_size=8, max_size=30)
u16 = st.integers(0, 0xFFFF)
otids = st.integers(1, 0xFFFFFFFF)


def want_of(**f):
    """Expected record dict: None means absent; zero IF_NONZERO fields are absent too."""
    return {k: v for k, v in f.items() if v is not None and not (k in IF_NONZERO and v == 0)}


def check(got: dict, want: dict, loose=(), where=""):
    """Every field in want equal; every STRICT field not in want (nor in loose) absent.
    All differences are reported at once."""
    bad = [f"{k}: want {v!r}, got {got.get(k)!r}" for k, v in want.items() if got.get(k) != v]
    bad += [f"{k}: want absent, got {got[k]!r}" for k in STRICT if k in got and k not in want and k not in loose]
    assert not bad, "; ".join(bad) + f"\ngot  {got}\nwant {want}\n{where}"


def decode(frames, linktype=1, messages=True, **kw):
    st_ = Stats()
    recs = to_dicts(decode_bytes(P.pcap(frames, linktype), messages=messages, stats=st_, **kw))
    return recs, st_


COUNTRY_CODES = st.sampled_from(["", "86", "41", "1"])


def international(number, national: bool, cc: str):
    """What --country-code makes of a subscriber number: cc in front of a national one, when it
    still fits in 16 digits."""
    return cc + number if number and national and cc and len(cc) + len(number) <= 16 else number


def tbcd(d: str) -> bytes:
    return P.tbcd(d)


def addr(d: str, toa: int = 0x91) -> bytes:
    """AddressString / ISDN-AddressString: TON/NPI octet, TBCD digits."""
    return bytes([toa]) + tbcd(d)


def cgi(mcc, mnc, lac, ci) -> bytes:
    p = PLMN()
    p.encode(mcc + mnc)
    return p.to_bytes() + struct.pack(">HH", lac, ci)


# ---------------------------------------------------------------------------
# SS7 over IP framing (SSN 146 both sides for CAP)

SSF = ("861390000146", 146)
SCF = ("861380000146", 146)
MSC = ("861390020008", 8)
SMSC = ("861390040008", 8)
_tsn = [0]


def frame(tcap: bytes, src, dst, opc=1, dpc=2) -> bytes:
    """Ethernet/IPv4/SCTP/M3UA/SCCP UDT carrying tcap from party src to party dst."""
    assume(len(tcap) <= 255)                          # UDT data length is one octet
    _tsn[0] += 1
    sccp = P.udt(P.sccp_address(dst[0], dst[1]), P.sccp_address(src[0], src[1]), tcap)
    return P.ether(P.ipv4(P.sctp(P.data_chunk(P.m3ua(sccp, opc=opc, dpc=dpc), tsn=_tsn[0]))))


DIALOGUE_AS = (0, 0, 17, 773, 1, 1, 1)


def aarq(ac):
    return {"direct-reference": DIALOGUE_AS, "encoding": ("single-ASN1-type", ("DialoguePDU", (
        "dialogueRequest", {"protocol-version": (1, 1), "application-context-name": ac})))}


def aare(ac):
    return {"direct-reference": DIALOGUE_AS, "encoding": ("single-ASN1-type", ("DialoguePDU", (
        "dialogueResponse", {"protocol-version": (1, 1), "application-context-name": ac, "result": 0,
                             "result-source-diagnostic": ("dialogue-service-user", 0)})))}


def invoke(iid, op, arg=None):
    v = {"invokeId": ("present", iid), "opcode": ("local", op)}
    if arg is not None:
        v["argument"] = arg
    return ("basicROS", ("invoke", v))


def tcap_encode(obj, kind, otid=None, dtid=None, dialogue=None, comps=()):
    v = {}
    if otid is not None:
        v["otid"] = struct.pack(">I", otid)
    if dtid is not None:
        v["dtid"] = struct.pack(">I", dtid)
    if dialogue is not None:
        v["dialoguePortion"] = dialogue
    if comps:
        v["components"] = list(comps)
    obj.set_val((kind, v))
    return obj.to_ber()


def cap_tcap(*a, **k):
    return tcap_encode(TCAP_CAP.TCAP_CAP_Messages.TCAP_CAP_Message, *a, **k)


def map_tcap(*a, **k):
    return tcap_encode(TCAP_MAPv2v3.TCAP_MAP_Messages.TCAP_MAP_Message, *a, **k)


@contextlib.contextmanager
def ber_style(style):
    """pycrate's BER encoder in another style inside the block: "definite" (shortest lengths),
    "long" (every length in long form) or "indefinite" (every constructed element 0x80 ... 00 00)."""
    from pycrate_asn1rt.codecs import ASN1CodecBER as C
    old = (C.ENC_LUNDEF, C.ENC_LLONG)
    C.ENC_LUNDEF, C.ENC_LLONG = style == "indefinite", 2 if style == "long" else 0
    try:
        yield
    finally:
        C.ENC_LUNDEF, C.ENC_LLONG = old


styles = st.sampled_from(["definite", "definite", "long", "indefinite"])


# ---------------------------------------------------------------------------
# ISUP-format numbers (Q.763 3.9 / 3.10) by pycrate

def isup_called(num, nai):
    n = ISUP.CalledPartyNum()
    n["NAI"].set_val(nai)
    n["NumPlan"].set_val(1)
    n.set_num(num)
    return n.to_bytes()


def isup_calling(num, nai):
    n = ISUP.CallingPartyNum()
    n["NAI"].set_val(nai)
    n["NumPlan"].set_val(1)
    n["ScreeningInd"].set_val(3)
    n.set_num(num)
    return n.to_bytes()


# ---------------------------------------------------------------------------
# 4. Truncation: every prefix of every message

def damage(stats):
    """Anomalies that say a message was cut or malformed (not time-outs or unmatched messages)."""
    return sum(n for a, n in stats.anomalies.items() if ANOMALY_INFO[a.value][1] in ("truncated", "malformed"))


def strict(r):
    return {k: r[k] for k in STRICT if k in r}


def assert_prefixes(msg: bytes, make_frame, linktype, full: list):
    """Each msg[:k] (k < len) in its own capture: no exception; every field value of every
    record one the whole message's record has too; and unless the cut is counted as a truncated or
    malformed anomaly, the records are the whole message's (the cut lost nothing)."""
    for cut in range(len(msg)):
        stats = Stats()
        recs = to_dicts(decode_bytes(P.pcap([make_frame(msg[:cut])], linktype), messages=True, stats=stats))
        where = f"cut at {cut} of {msg.hex()}\ngot  {recs}\nfull {full}\nanomalies {dict(stats.anomalies)}"
        for r in recs:
            for k, v in strict(r).items():
                assert any(f.get(k) == v for f in full), f"{k}: {where}"
        if not damage(stats):
            assert [strict(r) for r in recs] == [strict(r) for r in full], f"uncounted loss: {where}"


def udt_frame(src, dst):
    def mk(tcap):
        assume(len(tcap) <= 255)
        sccp = P.udt(P.sccp_address(dst[0], dst[1]), P.sccp_address(src[0], src[1]), tcap)
        return P.ether(P.ipv4(P.sctp(P.data_chunk(P.m3ua(sccp)))))
    return mk
