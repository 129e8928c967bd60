"""CAP encoded by pycrate (TCAP_CAP: Begin / Continue / End with InitialDP, InitialDPSMS,
InitialDPGPRS and other CAP operations; ISUP-format numbers by pycrate_mobile.ISUP), decoded by
probe._decode, fields compared; and every message cut at every length.
"""
import pytest

pytest.importorskip("pycrate_asn1dir")
pytest.importorskip("pycrate_mobile")
pytest.importorskip("touchpoint.probe._decode")

from hypothesis import assume, given
from hypothesis import strategies as st
from tests.pycrate_messages import (
    COUNTRY_CODES, FEW, SCF, SETTINGS, SSF, aare, aarq, addr, assert_prefixes, ber_style, cap_tcap, cgi,
    check, decode, digits, frame, international, invoke, isup_called, isup_calling, otids, styles, tbcd,
    u16, udt_frame, want_of,
)

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
@given(f=idps, otid=otids, dtid=otids, ops1=other_ops, end=st.booleans(),
       report=st.sampled_from([None, "oAnswer", "tAnswer", "oDisconnect", "oNoAnswer"]))
def test_cap_initial_dp_dialogue(f, otid, dtid, ops1, end, report):
    """Dialogue mode: a call_attempt record with the IDP's fields at the IDP, and a call_end
    record with them at the dialogue's end: answered when an event report says so, and then
    its duration from the answer to the end."""
    b, c, e = cap_idp_dialogue(f, otid, dtid, ops1, [22])
    frames = [frame(b, SSF, SCF, 1, 2), frame(c, SCF, SSF, 2, 1)]
    if report:                                             # the SSF reports an event of the call
        erb = {"eventTypeBCSM": report, "miscCallInfo": {"messageType": "notification"}}
        frames.append(frame(cap_tcap("continue", otid=otid, dtid=dtid, comps=[
            invoke(5, 24, ((SSF_OPS, "EventReportBCSMArg"), erb))]), SSF, SCF, 1, 2))
    frames += [frame(e, SCF, SSF, 2, 1)] if end else []
    recs, stats = decode(frames, messages=False)
    assert [r["kind"] for r in recs] == ["call_attempt", "call_end"], (recs, stats.anomalies)
    check(recs[0], dict(idp_want(f, otid), flags=["request"], frame=1), where=f"begin {b.hex()}")
    answered = report in ("oAnswer", "tAnswer")
    flags = ["request"] + (["timeout"] if not end else []) + (["answered"] if answered else [])
    talk = (len(frames) - 3) * 1000 if answered and end else None         # a frame a second
    check(recs[1], dict(idp_want(f, otid), kind="call_end", flags=flags, frame=len(frames), duration_ms=talk),
          where=f"begin {b.hex()}")


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


@FEW
@given(f=idps, otid=otids)
def test_truncated_cap(f, otid):
    b = cap_tcap("begin", otid=otid, dialogue=aarq(GSMSSF_SCF_AC[f["ac"] or 2]), comps=[invoke(1, 0, idp_arg(f))])
    assume(len(b) <= 255)
    full, _ = decode([udt_frame(SSF, SCF)(b)])
    assert len(full) == 1
    assert_prefixes(b, udt_frame(SSF, SCF), 1, full)
