"""CAP, ISUP and SMS / MMS-notification messages encoded by pycrate (the reference),
decoded by probe._decode, fields compared.

Every expected value is what the test encoded, never what a decoder said:
- CAP: TCAP_CAP (pycrate_asn1dir) Begin / Continue / End with InitialDP, InitialDPSMS,
  InitialDPGPRS and other CAP operations; ISUP-format numbers by pycrate_mobile.ISUP.
- ISUP: IAM / ACM / CON / ANM / REL / RLC by pycrate_mobile.ISUP, over MTP3 and M3UA.
- SMS: SMS-DELIVER / SMS-SUBMIT by pycrate_mobile.TS23040_SMS inside MAP mt-/mo-forwardSM
  (TCAP_MAPv2v3); the WAP push / MMS m-notification-ind bytes by hand from WAP-230 and
  OMA-TS-MMS-ENC.
- Truncation: each encoded message cut at every length decodes without an exception and
  without a field value the whole message does not carry; a cut that loses a field is
  counted as a truncated / malformed anomaly.
Frames are built by tests/packets.py (Ethernet/IPv4/SCTP/M3UA/SCCP UDT, or MTP3).
"""
import contextlib
import struct

import pytest

pytest.importorskip("pycrate_asn1dir")
pytest.importorskip("pycrate_mobile")
pytest.importorskip("touchpoint.probe._decode")

from hypothesis import HealthCheck, Phase, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from pycrate_asn1dir import TCAP_CAP, TCAP_MAPv2v3  # noqa: E402
from pycrate_mobile import ISUP  # noqa: E402
from pycrate_mobile import TS23040_SMS as SMS  # noqa: E402
from pycrate_mobile.TS24008_IE import PLMN  # noqa: E402

from touchpoint.probe.decode import ANOMALY_INFO, Stats, decode_bytes  # noqa: E402
from touchpoint.probe.format import to_dicts  # noqa: E402
from tests import packets as P  # noqa: E402

# No shrinking: a failing example is printed as drawn, and the file stays well under a minute.
SETTINGS = settings(max_examples=30, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])
FEW = settings(SETTINGS, max_examples=10)

# Identity fields compared strictly: equal when expected, absent when not.
STRICT = ("imsi", "msisdn", "imei", "peer", "node", "mcc", "mnc", "lac_tac", "cell", "loc_type", "apn",
          "cause", "service_key", "event", "nai", "version", "app_port", "sms_pid", "sms_dcs", "parts",
          "part", "octets", "ss_code")
# Fields format.to_dicts leaves out when zero.
IF_NONZERO = ("cause", "version", "octets", "service_key", "app_port", "sms_pid", "sms_dcs", "parts", "part",
              "event", "nai")

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
# 1. CAP

GSMSSF_SCF_AC = {2: (0, 4, 0, 0, 1, 0, 50, 1), 3: (0, 4, 0, 0, 1, 21, 3, 4), 4: (0, 4, 0, 0, 1, 22, 3, 4)}
SMS_AC = {3: (0, 4, 0, 0, 1, 21, 3, 61), 4: (0, 4, 0, 0, 1, 22, 3, 61)}
GPRS_AC = {3: (0, 4, 0, 0, 1, 21, 3, 50), 4: (0, 4, 0, 0, 1, 22, 3, 50)}
EVENT_BCSM = {2: "collectedInfo", 3: "analyzedInformation", 12: "termAttemptAuthorized"}
EVENT_SMS = {1: "sms-CollectedInfo", 2: "o-smsFailure", 3: "o-smsSubmission", 11: "sms-DeliveryRequested",
             12: "t-smsFailure", 13: "t-smsDelivery"}
TIME_AND_TZ = bytes.fromhex("0242112221436500")    # 2024-11-22 12:34:56 +00:00, TBCD
EVENT_GPRS = {1: "attach", 2: "attachChangeOfPosition", 3: "detached", 11: "pdp-ContextEstablishment",
              12: "pdp-ContextEstablishmentAcknowledgement", 13: "disonnect", 14: "pdp-ContextChangeOfPosition"}
SSF_OPS = "CAP-gsmSSF-gsmSCF-ops-args"

locations = st.fixed_dictionaries({
    "mcc": digits(3, 3), "mnc": st.one_of(digits(2, 2), digits(3, 3)), "lac": u16, "ci": u16,
    "sai": st.booleans(), "vlr": st.one_of(st.none(), digits(5, 15))})

idps = st.fixed_dictionaries({
    "ac": st.sampled_from([2, 3, 4, None]),
    "sk": st.integers(0, 2 ** 31 - 1),
    "called": st.one_of(st.none(), digits(3, 15), digits(3, 15)),
    "called_nai": st.integers(1, 127),
    "calling": st.one_of(st.none(), digits(3, 15)),
    "calling_nai": st.integers(1, 127),
    "event": st.sampled_from([2, 3, 12]),
    "imsi": st.one_of(st.none(), digits(14, 15)),
    "loc": st.one_of(st.none(), locations),
    "msc": st.one_of(st.none(), digits(5, 15), digits(5, 15)),
    "bcd": st.one_of(st.none(), digits(3, 15)),
    "bcd_toa": st.sampled_from([0x81, 0x91, 0xA1]),
    "extra": st.booleans(),                            # fields the decoder skips
})


def location_information(loc):
    li = {"cellGlobalIdOrServiceAreaIdOrLAI": ("cellGlobalIdOrServiceAreaIdFixedLength",
                                               cgi(loc["mcc"], loc["mnc"], loc["lac"], loc["ci"]))}
    if loc["vlr"]:
        li["vlr-number"] = addr(loc["vlr"])
    if loc["sai"]:
        li["sai-Present"] = 0
    return li


def loc_want(loc):
    if not loc:
        return {}
    return {"mcc": loc["mcc"], "mnc": loc["mnc"], "lac_tac": loc["lac"], "cell": loc["ci"],
            "loc_type": "sai" if loc["sai"] else "cgi"}


def idp_arg(f):
    v = {"serviceKey": f["sk"]}
    if f["called"]:
        v["calledPartyNumber"] = isup_called(f["called"], f["called_nai"])
    if f["calling"]:
        v["callingPartyNumber"] = isup_calling(f["calling"], f["calling_nai"])
    v["eventTypeBCSM"] = EVENT_BCSM[f["event"]]
    if f["imsi"]:
        v["iMSI"] = tbcd(f["imsi"])
    if f["loc"]:
        v["locationInformation"] = location_information(f["loc"])
    if f["msc"]:
        v["mscAddress"] = addr(f["msc"])
    if f["bcd"]:
        v["calledPartyBCDNumber"] = addr(f["bcd"], f["bcd_toa"])
    if f["extra"]:
        v.update({"callingPartysCategory": b"\x0a", "highLayerCompatibility": b"\x91\x81",
                  "bearerCapability": ("bearerCap", b"\x80\x90\xa3"),
                  "ext-basicServiceCode": ("ext-Teleservice", b"\x11"), "callReferenceNumber": b"\x01\x02\x03\x04",
                  "timeAndTimezone": TIME_AND_TZ, "initialDPArgExtension": {"gmscAddress": addr("8613900009")}})
    return ((SSF_OPS, "InitialDPArg"), v)


def idp_want(f, otid, cc=""):
    if f["event"] >= 12:                                   # terminating: the served subscriber is called
        msisdn, peer = international(f["called"], f["called_nai"] == 3, cc), f["calling"]
    else:
        msisdn, peer = international(f["calling"], f["calling_nai"] == 3, cc), f["bcd"] or f["called"]
    node = f["msc"] or (f["loc"] or {}).get("vlr")
    return dict(want_of(proto="cap", kind="call_attempt", op=0, service_key=f["sk"], event=f["event"],
                        imsi=f["imsi"], msisdn=msisdn, peer=peer, node=node,
                        nai=f["called_nai"] if f["called"] else None, version=f["ac"], tid=otid,
                        src=1, dst=2), **loc_want(f["loc"]))


# Other CAP operations the SCF sends (recorded by opcode only)
OTHER_OPS = {
    23: ((SSF_OPS, "RequestReportBCSMEventArg"), {"bcsmEvents": [
        {"eventTypeBCSM": "oAnswer", "monitorMode": "notifyAndContinue"},
        {"eventTypeBCSM": "oDisconnect", "monitorMode": "interrupted", "legID": ("sendingSideID", b"\x02")}]}),
    20: ((SSF_OPS, "ConnectArg"), {"destinationRoutingAddress": [isup_called("8613912345678", 4)]}),
    22: ((SSF_OPS, "ReleaseCallArg"), ("allCallSegments", b"\x80\x90")),
    31: None,                                              # continue: no argument
    34: ((SSF_OPS, "FurnishChargingInformationArg"), b"\xa0\x05\xa0\x03\x81\x01\x01"),
    35: ((SSF_OPS, "ApplyChargingArg"), {"aChBillingChargingCharacteristics": b"\xa0\x04\x80\x02\x01\x2c",
                                         "partyToCharge": ("sendingSideID", b"\x01")}),
}
other_ops = st.lists(st.sampled_from(sorted(OTHER_OPS)), min_size=1, max_size=3)


def cap_idp_dialogue(f, otid, dtid, ops1, ops2, style="definite"):
    """Begin (IDP) from the gsmSSF, Continue (AARE + ops1) and End (ops2) from the gsmSCF."""
    ac = GSMSSF_SCF_AC.get(f["ac"])
    with ber_style(style):
        b = cap_tcap("begin", otid=otid, dialogue=aarq(ac) if ac else None, comps=[invoke(1, 0, idp_arg(f))])
        c = cap_tcap("continue", otid=dtid, dtid=otid, dialogue=aare(ac) if ac else None,
                     comps=[invoke(i + 1, op, OTHER_OPS[op]) for i, op in enumerate(ops1)])
        e = cap_tcap("end", dtid=otid, comps=[invoke(i + 10, op, OTHER_OPS[op]) for i, op in enumerate(ops2)])
    return b, c, e


@SETTINGS
@given(f=idps, otid=otids, dtid=otids, ops1=other_ops, ops2=st.lists(st.sampled_from(sorted(OTHER_OPS)), max_size=2),
       style=styles, cc=COUNTRY_CODES)
def test_cap_initial_dp_per_message(f, otid, dtid, ops1, ops2, style, cc):
    b, c, e = cap_idp_dialogue(f, otid, dtid, ops1, ops2, style)
    recs, stats = decode([frame(b, SSF, SCF, 1, 2), frame(c, SCF, SSF, 2, 1), frame(e, SCF, SSF, 2, 1)],
                         country_code=cc)
    where = f"begin {b.hex()}"
    assert len(recs) == 1 + len(ops1) + len(ops2), (recs, stats.anomalies, where)
    check(recs[0], dict(idp_want(f, otid, cc), flags=["request"], frame=1), where=where)
    for r, op in zip(recs[1:], ops1 + ops2):
        check(r, want_of(proto="cap", kind="other", op=op, flags=["request"]), loose=("version",),
              where=f"continue {c.hex()}\nend {e.hex()}")
    for r in recs[1:1 + len(ops1)]:                        # the Continue carries the AARE
        assert r.get("version") == f["ac"], r


@SETTINGS
@given(f=idps, otid=otids, dtid=otids, ops1=other_ops, end=st.booleans())
def test_cap_initial_dp_dialogue(f, otid, dtid, ops1, end):
    """Dialogue mode: the whole SSF-SCF dialogue is one call_attempt record with the IDP's fields."""
    b, c, e = cap_idp_dialogue(f, otid, dtid, ops1, [22])
    frames = [frame(b, SSF, SCF, 1, 2), frame(c, SCF, SSF, 2, 1)] + ([frame(e, SCF, SSF, 2, 1)] if end else [])
    recs, stats = decode(frames, messages=False)
    assert len(recs) == 1, (recs, stats.anomalies)
    flags = ["request"] if end else ["request", "timeout"]
    check(recs[0], dict(idp_want(f, otid), flags=flags, frame=len(frames)), where=f"begin {b.hex()}")


idp_sms = st.fixed_dictionaries({
    "ac": st.sampled_from([3, 4]),
    "sk": st.integers(0, 2 ** 31 - 1),
    "dest": st.one_of(st.none(), digits(3, 15)),
    "dest_toa": st.sampled_from([0x81, 0x91, 0xA1]),
    "calling": st.one_of(st.none(), digits(5, 15)),
    "event": st.sampled_from(sorted(EVENT_SMS)),
    "imsi": st.one_of(st.none(), digits(14, 15)),
    "loc": st.one_of(st.none(), locations),
    "smsc": digits(5, 12),
    "msc": st.one_of(st.none(), digits(5, 15)),
    "sgsn": st.one_of(st.none(), digits(5, 15)),
})


@SETTINGS
@given(f=idp_sms, otid=otids, cc=COUNTRY_CODES, calling_toa=st.sampled_from([0x91, 0xA1, 0x81]))
def test_cap_initial_dp_sms(f, otid, cc, calling_toa):
    v = {"serviceKey": f["sk"]}
    if f["dest"]:
        v["destinationSubscriberNumber"] = addr(f["dest"], f["dest_toa"])
    if f["calling"]:
        v["callingPartyNumber"] = addr(f["calling"], calling_toa)        # international, national, unknown
    v["eventTypeSMS"] = EVENT_SMS[f["event"]]
    if f["imsi"]:
        v["iMSI"] = tbcd(f["imsi"])
    if f["loc"]:
        v["locationInformationMSC"] = location_information(f["loc"])
    v["sMSCAddress"] = addr(f["smsc"])
    v["tPShortMessageSpecificInfo"] = b"\x01"
    if f["msc"]:
        v["mscAddress"] = addr(f["msc"])
    if f["sgsn"]:
        v["sgsn-Number"] = addr(f["sgsn"])
    b = cap_tcap("begin", otid=otid, dialogue=aarq(SMS_AC[f["ac"]]),
                 comps=[invoke(1, 60, (("CAP-SMS-ops-args", "InitialDPSMSArg"), v))])
    recs, stats = decode([frame(b, SSF, SCF)], country_code=cc)
    assert len(recs) == 1, (recs, stats.anomalies)
    node = f["msc"] or (f["loc"] or {}).get("vlr") or f["sgsn"]
    check(recs[0], dict(want_of(proto="cap", kind="mt_sms" if f["event"] >= 11 else "mo_sms", op=60,
                                flags=["request"], service_key=f["sk"], event=f["event"], peer=f["dest"],
                                msisdn=international(f["calling"], calling_toa == 0xA1, cc), imsi=f["imsi"],
                                node=node, version=f["ac"], tid=otid),
                        **loc_want(f["loc"])), where=f"begin {b.hex()}")


apn_labels = st.lists(st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=8),
                      min_size=1, max_size=3).filter(lambda ls: len(".".join(ls)) <= 24)

idp_gprs = st.fixed_dictionaries({
    "ac": st.sampled_from([3, 4]),
    "sk": st.integers(0, 2 ** 31 - 1),
    "event": st.sampled_from(sorted(EVENT_GPRS)),
    "msisdn": digits(5, 15),
    "imsi": digits(14, 15),
    "apn": st.one_of(st.none(), apn_labels),
    "oi": st.booleans(),
})


@SETTINGS
@given(f=idp_gprs, otid=otids)
def test_cap_initial_dp_gprs(f, otid):
    v = {"serviceKey": f["sk"], "gPRSEventType": EVENT_GPRS[f["event"]], "mSISDN": addr(f["msisdn"]),
         "iMSI": tbcd(f["imsi"]), "timeAndTimeZone": TIME_AND_TZ}
    if f["apn"]:
        labels = f["apn"] + (["mnc001", "mcc460", "gprs"] if f["oi"] else [])
        v["accessPointName"] = b"".join(bytes([len(x)]) + x.encode() for x in labels)
    b = cap_tcap("begin", otid=otid, dialogue=aarq(GPRS_AC[f["ac"]]),
                 comps=[invoke(1, 78, (("CAP-gprsSSF-gsmSCF-ops-args", "InitialDPGPRSArg"), v))])
    recs, stats = decode([frame(b, ("861390030149", 149), SCF)])
    assert len(recs) == 1, (recs, stats.anomalies)
    kind = "pdp_create" if f["event"] in (11, 12) else "other"
    check(recs[0], want_of(proto="cap", kind=kind, op=78, flags=["request"], service_key=f["sk"],
                           event=f["event"], msisdn=f["msisdn"], imsi=f["imsi"],
                           apn=".".join(f["apn"]) if f["apn"] else None, version=f["ac"], tid=otid),
          where=f"begin {b.hex()}")


@FEW
@given(sk=st.integers(0, 2 ** 31 - 1), mcc=digits(3, 3), mnc=digits(2, 3), lac=u16, ci=u16, sgsn=digits(5, 15),
       otid=otids)
def test_cap_initial_dp_gprs_location(sk, mcc, mnc, lac, ci, sgsn, otid):
    """CAP's LocationInformationGPRS has cellGlobalIdOrServiceAreaIdOrLAI [0] as a plain OCTET
    STRING (TS 29.078), not MAP's explicitly tagged CHOICE; sgsn-Number [3] is the serving node."""
    v = {"serviceKey": sk, "gPRSEventType": "pdp-ContextEstablishment", "mSISDN": addr("8613800000078"),
         "iMSI": tbcd("460001234567890"), "timeAndTimeZone": TIME_AND_TZ,
         "locationInformationGPRS": {"cellGlobalIdOrServiceAreaIdOrLAI": cgi(mcc, mnc, lac, ci),
                                     "sgsn-Number": addr(sgsn)}}
    b = cap_tcap("begin", otid=otid, dialogue=aarq(GPRS_AC[3]),
                 comps=[invoke(1, 78, (("CAP-gprsSSF-gsmSCF-ops-args", "InitialDPGPRSArg"), v))])
    recs, stats = decode([frame(b, ("861390030149", 149), SCF)])
    assert len(recs) == 1, (recs, stats.anomalies)
    check(recs[0], want_of(proto="cap", kind="pdp_create", op=78, service_key=sk, event=11, msisdn="8613800000078",
                           imsi="460001234567890", node=sgsn, version=3, mcc=mcc, mnc=mnc, lac_tac=lac, cell=ci,
                           loc_type="cgi"), where=f"begin {b.hex()}")


@FEW
@given(f=idps, otid=otids)
def test_cap_phase1_context(f, otid):
    """CAP v1 (phase 1) gsmSSF-scfGenericAC is {0 4 0 0 1 0 50 0}; its version is 1, not 2."""
    b = cap_tcap("begin", otid=otid, dialogue=aarq((0, 4, 0, 0, 1, 0, 50, 0)),
                 comps=[invoke(1, 0, idp_arg(f))])
    recs, _ = decode([frame(b, SSF, SCF)])
    got = [(r["proto"], r["op"], r.get("version")) for r in recs]
    assert got == [("cap", 0, 1)], f"(proto, op, version): want [('cap', 0, 1)], got {got}\nbegin {b.hex()}"


# ---------------------------------------------------------------------------
# 2. ISUP

def iam(cic, c):
    m = ISUP.InitialAddress()
    m["CIC"].set_val(cic)
    m["CallingPartyCat"].set_val(10)
    num = m["CalledPartyNum"]["CalledPartyNum"]
    num["NAI"].set_val(c["called_nai"])
    num["NumPlan"].set_val(1)
    num.set_num(c["called"])
    opt = m["Opt"]
    if c["calling"]:
        opt["CallingPartyNum"].set_trans(False)
        cpn = opt["CallingPartyNum"]["CallingPartyNum"]
        cpn["NAI"].set_val(c["calling_nai"])
        cpn["NumPlan"].set_val(1)
        cpn["ScreeningInd"].set_val(3)
        cpn.set_num(c["calling"])
    if c["extras"]:                                        # optional parameters around the calling number
        for name in ("TransitNetworkSel", "OptForwardCallInd", "HopCounter"):
            opt[name].set_trans(False)
    opt["EOO"].set_trans(c["calling"] is None and not c["extras"])
    return m.to_bytes()


def simple(cls, cic):
    m = cls()
    m["CIC"].set_val(cic)
    return m.to_bytes()


def rel(cic, cause, location):
    m = ISUP.Release()
    m["CIC"].set_val(cic)
    ci = m["CauseInd"]["CauseInd"]
    ci[0].set_val(1)                                       # ext: no octet 3a (pycrate's default is 0)
    ci["Location"].set_val(location)
    ci["Class"].set_val(cause >> 4)
    ci["Cause"].set_val(cause & 0xF)
    return m.to_bytes()


calls = st.fixed_dictionaries({
    "called": digits(3, 15), "called_nai": st.integers(1, 127),
    "calling": st.one_of(st.none(), digits(3, 15)), "calling_nai": st.integers(1, 127),
    "extras": st.booleans(),
    "acm": st.booleans(),
    "answer": st.sampled_from([None, "ANM", "CON"]),
    "release": st.one_of(st.none(), st.integers(1, 127), st.sampled_from([16, 31])),
    "location": st.integers(0, 15),
    "rel_back": st.booleans(),
    "rlc": st.booleans(),
})
OP = {"IAM": 1, "ACM": 6, "CON": 7, "ANM": 9, "REL": 12, "RLC": 16}


def call_messages(cic, c):
    """[(name, isup bytes, forward?)] for one call."""
    out = [("IAM", iam(cic, c), True)]
    if c["acm"] and c["answer"] != "CON":
        out.append(("ACM", simple(ISUP.AddressComplete, cic), False))
    if c["answer"] == "ANM":
        out.append(("ANM", simple(ISUP.Answer, cic), False))
    elif c["answer"] == "CON":
        out.append(("CON", simple(ISUP.Connect, cic), False))
    if c["release"] is not None:
        out.append(("REL", rel(cic, c["release"], c["location"]), not c["rel_back"]))
        if c["rlc"]:
            out.append(("RLC", simple(ISUP.ReleaseComplete, cic), c["rel_back"]))
    return out


def isup_frame(msg, forward, opc, dpc, carrier):
    a, b = (opc, dpc) if forward else (dpc, opc)
    if carrier == "mtp3":
        return P.mtp3(msg, opc=a, dpc=b, si=5)
    _tsn[0] += 1
    return P.ether(P.ipv4(P.sctp(P.data_chunk(P.m3ua(msg, opc=a, dpc=b, si=5), tsn=_tsn[0]))))


def isup_capture(cics, cs, opc, dpc, carrier):
    """Calls interleaved round-robin; returns frames and [(frame no, cic, name, msg, forward)]."""
    queues = [[(cic, *m) for m in call_messages(cic, c)] for cic, c in zip(cics, cs)]
    order = []
    while any(queues):
        for q in queues:
            if q:
                order.append(q.pop(0))
    frames = [isup_frame(msg, fwd, opc, dpc, carrier) for _cic, _n, msg, fwd in order]
    return frames, [(i + 1, *o) for i, o in enumerate(order)]


isup_calls = st.lists(st.integers(0, 0xFFF), min_size=1, max_size=4, unique=True).flatmap(
    lambda cics: st.tuples(st.just(cics), st.lists(calls, min_size=len(cics), max_size=len(cics))))
pcs = st.integers(1, 0x3FFF)
carriers = st.sampled_from(["mtp3", "m3ua"])


@SETTINGS
@given(cc=isup_calls, opc=pcs, dpc=pcs, carrier=carriers, country=COUNTRY_CODES)
def test_isup_calls_dialogue(cc, opc, dpc, carrier, country):
    cics, cs = cc
    frames, order = isup_capture(cics, cs, opc, dpc, carrier)
    recs, stats = decode(frames, 141 if carrier == "mtp3" else 1, messages=False, country_code=country)
    where = "\n".join(f"{n} {name} {msg.hex()}" for n, _c, name, msg, _f in order)
    assert sorted(r["tid"] for r in recs) == sorted(cics), (recs, stats.anomalies, where)
    by_cic = {r["tid"]: r for r in recs}
    for cic, c in zip(cics, cs):
        r = by_cic[cic]
        mine = [o for o in order if o[1] == cic]
        answered = c["answer"] is not None
        released = c["release"] is not None
        flags = {"request"}
        if answered:
            flags |= {"response", "correlated"}
        if released and not answered and c["release"] not in (16, 31):
            flags.add("error")
        if not released:
            flags.add("timeout")
        last = [o[0] for o in mine if o[2] != "RLC"][-1]
        check(r, want_of(proto="isup", kind="call_attempt", op=1, tid=cic, peer=c["called"], nai=c["called_nai"],
                         msisdn=international(c["calling"], c["calling_nai"] == 3, country),
                         cause=c["release"], src=opc, dst=dpc, frame=last), where=where)
        assert set(r["flags"]) == flags, (r, where)


@SETTINGS
@given(cc=isup_calls, opc=pcs, dpc=pcs, carrier=carriers)
def test_isup_per_message(cc, opc, dpc, carrier):
    cics, cs = cc
    frames, order = isup_capture(cics, cs, opc, dpc, carrier)
    recs, stats = decode(frames, 141 if carrier == "mtp3" else 1, messages=True)
    where = "\n".join(f"{n} {name} {msg.hex()}" for n, _c, name, msg, _f in order)
    assert len(recs) == len(order), (recs, stats.anomalies, where)
    call = dict(zip(cics, cs))
    for r, (n, cic, name, msg, fwd) in zip(recs, order):
        c = call[cic]
        a, b = (opc, dpc) if fwd else (dpc, opc)
        w = want_of(proto="isup", kind="call_attempt", op=OP[name], tid=cic, src=a, dst=b, frame=n)
        flags = []
        if name == "IAM":
            w.update(want_of(msisdn=c["calling"], peer=c["called"], nai=c["called_nai"]))
            flags = ["request"]
        elif name in ("ANM", "CON"):
            flags = ["response"]
        elif name == "REL":
            w["cause"] = c["release"]
            flags = ["response"] if c["release"] in (16, 31) else ["error"]
        check(r, dict(w, flags=flags), where=f"{name} {msg.hex()}")


# ---------------------------------------------------------------------------
# 3. SMS TPDUs in MAP forwardSM

DCS_VALUES = [0x00, 0x01, 0x04, 0x08, 0x10, 0x11, 0x12, 0x14, 0x16, 0x18, 0x19, 0xF0, 0xF1, 0xF4, 0xF6]

udh_ies = st.fixed_dictionaries({
    "concat": st.one_of(st.none(), st.tuples(st.sampled_from([0, 8]), u16, st.integers(1, 255)).flatmap(
        lambda t: st.tuples(st.just(t[0]), st.just(t[1] & (0xFF if t[0] == 0 else 0xFFFF)), st.just(t[2]),
                            st.integers(1, t[2])))),
    "port": st.one_of(st.none(), st.tuples(st.just(5), u16, u16), st.tuples(st.just(4), st.integers(0, 255),
                                                                             st.integers(0, 255))),
    "other": st.lists(st.tuples(st.sampled_from([0x0C, 0x24, 0x25, 0x70]), st.binary(min_size=1, max_size=3)),
                      max_size=2),
}).flatmap(lambda u: st.permutations(
    ([("concat", u["concat"])] if u["concat"] else []) + ([("port", u["port"])] if u["port"] else []) +
    [("other", o) for o in u["other"]]).map(lambda order: (u, order)))

tp_addresses = st.one_of(
    st.tuples(st.just("num"), digits(1, 16), st.sampled_from([0, 1, 2])),
    st.tuples(st.just("alnum"), st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=11),
              st.just(5)))

smss = st.fixed_dictionaries({
    "mti": st.sampled_from(["deliver", "submit"]),
    "map": st.sampled_from([3, 2]),
    "addr": tp_addresses,
    "pid": st.integers(0, 255),
    "dcs": st.sampled_from(DCS_VALUES),
    "udh": st.one_of(st.none(), udh_ies),
    "vpf": st.integers(0, 3),
    "vp": st.integers(0, 255),
    "mr": st.integers(0, 255),
    "text": letters,
    "imsi": digits(14, 15),
    "msisdn": digits(8, 15),
    "sc": digits(5, 12),
    "more": st.booleans(),
    "bits": st.integers(0, 15),                        # TP-RP, TP-SRI/SRR, TP-LP/RD, TP-MMS: not read
})


def udh_value(order):
    out = []
    for kind, v in order:
        if kind == "concat":
            iei, ref, parts, part = v
            out.append({"T": iei, "V": {"MsgRef": ref, "MsgParts": parts, "MsgNum": part}})
        elif kind == "port":
            iei, dst, src = v
            out.append({"T": iei, "V": {"Dest": dst, "Origin": src}})
        else:
            out.append({"T": v[0], "V": v[1]})
    return out


def tpdu(f, ud=None):
    """The TPDU by pycrate; ud (bytes) replaces the text when given."""
    m = SMS.SMS_DELIVER() if f["mti"] == "deliver" else SMS.SMS_SUBMIT()
    a = m["TP_OA" if f["mti"] == "deliver" else "TP_DA"]
    kind, value, ton = f["addr"]
    a["Type"].set_val(ton)
    if kind == "alnum":
        a["NumberingPlan"].set_val(0)
    a["Num"].encode(value)
    names = ("TP_RP", "TP_SRI", "TP_LP", "TP_MMS") if f["mti"] == "deliver" else ("TP_RP", "TP_SRR", "TP_RD")
    for i, name in enumerate(names):
        m[name].set_val((f.get("bits", 0) >> i) & 1)
    m["TP_PID"].from_bytes(bytes([f["pid"]]))
    m["TP_DCS"].from_bytes(bytes([f["dcs"]]))
    if f["mti"] == "submit":
        m["TP_MR"].set_val(f["mr"])
        m["TP_VPF"].set_val(f["vpf"])
        if f["vpf"] == 2:                               # relative; absolute and enhanced: 7 octets
            m["TP_VP"].set_val(f["vp"])
    if f["udh"]:
        m["TP_UDHI"].set_val(1)
        m["TP_UD"]["UDH"]["UDH"].set_val(udh_value(f["udh"][1]))
    udv = m["TP_UD"]["UD"]
    if ud is not None:
        udv.set_val(ud)
    elif udv.get_dcs() == SMS.DCS_8B:
        udv.set_val(f["text"].encode())
    else:
        udv.set_val(f["text"])
    return m.to_bytes()


def sms_expect(f):
    kind, value, _ton = f["addr"]
    w = {"peer": value[:16] if kind == "num" else None, "sms_pid": f["pid"], "sms_dcs": f["dcs"]}
    for k, v in (f["udh"][1] if f["udh"] else ()):
        if k == "concat":
            w["parts"], w["part"] = v[2], v[3]
        elif k == "port":
            w["app_port"] = v[1]
    return w


def forward_sm(f, ui):
    """(op, ac, arg) of the MAP invoke carrying TPDU ui."""
    da = ("imsi", tbcd(f["imsi"])) if f["mti"] == "deliver" else ("serviceCentreAddressDA", addr(f["sc"]))
    oa = ("serviceCentreAddressOA", addr(f["sc"])) if f["mti"] == "deliver" else ("msisdn", addr(f["msisdn"]))
    val = {"sm-RP-DA": da, "sm-RP-OA": oa, "sm-RP-UI": ui}
    if f["map"] == 2:
        if f["more"] and f["mti"] == "deliver":
            val["moreMessagesToSend"] = 0
        return 46, (0, 4, 0, 0, 1, 0, 21, 2), (("MAPv2-SM-DataTypes", "ForwardSM-Arg"), val)
    if f["mti"] == "deliver":
        if f["more"]:
            val["moreMessagesToSend"] = 0
        return 44, (0, 4, 0, 0, 1, 0, 25, 3), (("MAP-SM-DataTypes", "MT-ForwardSM-Arg"), val)
    return 46, (0, 4, 0, 0, 1, 0, 21, 3), (("MAP-SM-DataTypes", "MO-ForwardSM-Arg"), val)


def sms_begin(f, ui, otid, style="definite"):
    op, ac, arg = forward_sm(f, ui)
    with ber_style(style):
        return op, map_tcap("begin", otid=otid, dialogue=aarq(ac), comps=[invoke(1, op, arg)])


def sms_parties(f):
    return (SMSC, MSC) if f["mti"] == "deliver" else (MSC, SMSC)


def sms_want(f, op, ui_fields):
    deliver = f["mti"] == "deliver"
    return want_of(proto="map", op=op, kind="mt_sms" if deliver else "mo_sms", flags=["request"],
                   imsi=f["imsi"] if deliver else None, msisdn=None if deliver else f["msisdn"],
                   node=MSC[0], version=f["map"], **ui_fields)


def assert_no_text(rec_array, rec_dicts, *secrets):
    raw = rec_array.tobytes()
    for s in secrets:
        sb = s.encode() if isinstance(s, str) else s
        assert sb not in raw, (s, rec_dicts)
        assert str(s) not in repr(rec_dicts), (s, rec_dicts)


@SETTINGS
@given(f=smss, otid=otids, style=styles)
def test_sms_tpdu_per_message(f, otid, style):
    ui = tpdu(f)
    op, b = sms_begin(f, ui, otid, style)
    src, dst = sms_parties(f)
    data = P.pcap([frame(b, src, dst)])
    arr = decode_bytes(data, messages=True)
    recs = to_dicts(arr)
    assert len(recs) == 1, (recs, b.hex())
    check(recs[0], sms_want(f, op, sms_expect(f)), where=f"tpdu {ui.hex()}\nbegin {b.hex()}")
    assert_no_text(arr, recs, f["text"])


@SETTINGS
@given(f=smss, otid=otids)
def test_sms_tpdu_dialogue(f, otid):
    """Dialogue mode (the default): Begin(forwardSM) + End(result): one record with the SMS fields."""
    ui = tpdu(f)
    op, b = sms_begin(f, ui, otid)
    ac = forward_sm(f, ui)[1]
    e = map_tcap("end", dtid=otid, dialogue=aare(ac),
                 comps=[("basicROS", ("returnResult", {"invokeId": ("present", 1)}))])
    src, dst = sms_parties(f)
    recs, stats = decode([frame(b, src, dst), frame(e, dst, src)], messages=False)
    assert len(recs) == 1, (recs, stats.anomalies)
    w = sms_want(f, op, sms_expect(f))
    w["flags"] = sorted(["request", "response", "correlated"])
    recs[0]["flags"] = sorted(recs[0]["flags"])
    check(recs[0], w, where=f"tpdu {ui.hex()}\nbegin {b.hex()}")


# --- MMS notification (WAP-230 WSP push, OMA-TS-MMS-ENC m-notification-ind), by hand

def uintvar(n):
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def value_length(n):
    return bytes([n]) if n < 31 else b"\x1f" + uintvar(n)


def text_string(s: bytes):
    return (b"\x7f" if s[:1] and s[0] >= 0x80 else b"") + s + b"\x00"


def encoded_string(s: bytes, charset):
    """Encoded-string-value: Text-string, or Value-length Char-set Text-string (short-integer charset)."""
    if charset is None:
        return text_string(s)
    body = bytes([0x80 | charset]) + text_string(s)
    return value_length(len(body)) + body


def long_integer(v):
    b = v.to_bytes(max(1, (v.bit_length() + 7) // 8), "big")
    return bytes([len(b)]) + b


mmss = st.fixed_dictionaries({
    "from": digits(3, 15),
    "from_cs": st.sampled_from([None, 106, 3]),       # utf-8, us-ascii
    "subject": st.one_of(st.none(), letters),
    "subj_cs": st.sampled_from([None, 106]),
    "size": st.integers(1, 2 ** 32 - 1),
    "url": letters,
    "tid": st.text("0123456789ABCDEF", min_size=1, max_size=12),
    "expiry": st.one_of(st.none(), st.integers(1, 2 ** 24)),
    "class": st.booleans(),
    "appid": st.booleans(),
    "push_tid": st.integers(0, 255),
    "oa": tp_addresses,
    "imsi": digits(14, 15),
    "sc": digits(5, 12),
    "order": st.permutations(range(6)),
    "map": st.sampled_from([3, 2]),
})


def mms_notification(m, from_length_quote=False):
    sender = b"+" + m["from"].encode() + b"/TYPE=PLMN"
    frm = b"\x80" + encoded_string(sender, m["from_cs"])
    from_len = (b"\x1f" + uintvar(len(frm))) if from_length_quote else value_length(len(frm))
    heads = [b"\x89" + from_len + frm,
             b"\x8e" + long_integer(m["size"]),
             b"\x83" + text_string(b"http://mmsc.example.net/" + m["url"].encode()),
             (b"\x96" + encoded_string(m["subject"].encode(), m["subj_cs"])) if m["subject"] else b"",
             (b"\x8a\x80") if m["class"] else b"",
             (b"\x88" + value_length(1 + len(long_integer(m["expiry"]))) + b"\x81" + long_integer(m["expiry"]))
             if m["expiry"] else b""]
    return (b"\x8c\x82" + b"\x98" + text_string(m["tid"].encode()) + b"\x8d\x92" +
            b"".join(heads[i] for i in m["order"]))


def wap_push(m, from_length_quote=False):
    headers = b"\xbe" + (b"\xaf\x84" if m["appid"] else b"")
    return bytes([m["push_tid"], 0x06]) + uintvar(len(headers)) + headers + mms_notification(m, from_length_quote)


def mms_deliver(m):
    return {"mti": "deliver", "map": m["map"], "addr": m["oa"], "pid": 0, "dcs": 0x04,
            "udh": ({}, [("port", (5, 2948, 9200))]), "vpf": 0, "vp": 0, "mr": 0, "text": "",
            "imsi": m["imsi"], "msisdn": "", "sc": m["sc"], "more": False}


@SETTINGS
@given(m=mmss, otid=otids)
def test_mms_notification(m, otid):
    f = mms_deliver(m)
    ui = tpdu(f, ud=wap_push(m))
    op, b = sms_begin(f, ui, otid)
    arr = decode_bytes(P.pcap([frame(b, SMSC, MSC)]), messages=True)
    recs = to_dicts(arr)
    assert len(recs) == 1, (recs, b.hex())
    w = sms_want(f, op, {"sms_dcs": 4, "app_port": 2948, "peer": m["from"], "octets": m["size"]})
    w["kind"] = "mms_notification"
    check(recs[0], w, where=f"tpdu {ui.hex()}\nbegin {b.hex()}")
    assert_no_text(arr, recs, "mmsc.example.net", m["url"], *([m["subject"]] if m["subject"] else []))


@FEW
@given(m=mmss, otid=otids)
def test_mms_notification_from_length_quote(m, otid):
    """Value-length is Short-length | Length-quote Length (WAP-230 8.4.2.2): a From whose
    value length is written 0x1F <uintvar> is the same From (Wireshark reads it)."""
    f = mms_deliver(m)
    ui = tpdu(f, ud=wap_push(m, from_length_quote=True))
    op, b = sms_begin(f, ui, otid)
    recs, _ = decode([frame(b, SMSC, MSC)])
    assert len(recs) == 1, (recs, b.hex())
    w = sms_want(f, op, {"sms_dcs": 4, "app_port": 2948, "peer": m["from"], "octets": m["size"]})
    w["kind"] = "mms_notification"
    check(recs[0], w, where=f"tpdu {ui.hex()}\nbegin {b.hex()}")


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


@FEW
@given(f=idps, otid=otids)
def test_truncated_cap(f, otid):
    b = cap_tcap("begin", otid=otid, dialogue=aarq(GSMSSF_SCF_AC[f["ac"] or 2]), comps=[invoke(1, 0, idp_arg(f))])
    assume(len(b) <= 255)
    full, _ = decode([udt_frame(SSF, SCF)(b)])
    assert len(full) == 1
    assert_prefixes(b, udt_frame(SSF, SCF), 1, full)


@FEW
@given(cc=isup_calls, opc=pcs, dpc=pcs)
def test_truncated_isup(cc, opc, dpc):
    cics, cs = cc
    for name, msg, fwd in call_messages(cics[0], cs[0]):
        mk = (lambda m: P.mtp3(m, opc=opc, dpc=dpc, si=5))
        full, _ = decode([mk(msg)], 141)
        assert len(full) == 1, (name, msg.hex())
        assert_prefixes(msg, mk, 141, full)


@FEW
@given(f=smss, otid=otids)
def test_truncated_sms_tcap(f, otid):
    ui = tpdu(f)
    op, b = sms_begin(f, ui, otid)
    assume(len(b) <= 255)
    src, dst = sms_parties(f)
    full, _ = decode([udt_frame(src, dst)(b)])
    assert len(full) == 1
    assert_prefixes(b, udt_frame(src, dst), 1, full)


@FEW
@given(f=smss, otid=otids)
def test_truncated_tpdu_in_whole_map(f, otid):
    """The TPDU cut at every length inside a well-formed MAP invoke: the record carries only
    what the whole TPDU said (the cut TPDU is not a MAP/TCAP anomaly)."""
    ui = tpdu(f)
    src, dst = sms_parties(f)
    full, _ = decode([udt_frame(src, dst)(sms_begin(f, ui, otid)[1])])
    for cut in range(1, len(ui)):                          # sm-RP-UI is SIZE (1..200)
        op, b = sms_begin(f, ui[:cut], otid)
        recs, stats = decode([udt_frame(src, dst)(b)])
        assert len(recs) == 1, (cut, ui.hex(), stats.anomalies)
        for k in STRICT:
            if k in recs[0]:
                assert recs[0][k] == full[0].get(k), (k, cut, ui.hex(), recs[0], full[0])


@FEW
@given(m=mmss, otid=otids)
def test_truncated_mms(m, otid):
    f = dict(mms_deliver(m), map=3, addr=("num", "10658000", 1))
    ui = tpdu(f, ud=wap_push(m))
    full, _ = decode([udt_frame(SMSC, MSC)(sms_begin(f, ui, otid)[1])])
    assert full[0]["kind"] == "mms_notification"
    for cut in range(1, len(ui)):
        recs, _ = decode([udt_frame(SMSC, MSC)(sms_begin(f, ui[:cut], otid)[1])])
        assert len(recs) == 1
        for k in STRICT:
            if k in recs[0]:
                ok = {full[0].get(k)} | ({"10658000"} if k == "peer" else set())
                assert recs[0][k] in ok, (k, cut, ui.hex(), recs[0], full[0])
