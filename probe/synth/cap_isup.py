"""ISUP calls (Q.763) and CAMEL dialogues (CAP v2, TS 29.078 over TCAP) with pycrate."""
from __future__ import annotations

from .digits import addr, tbcd
from .tcap_map import DIALOGUE_AS, tcap_ber
from .templates import _isup_digits, _mod

# --- ISUP (Q.763) with pycrate_mobile.ISUP ----------------------------------

def _isup_msg(cls: str):
    return getattr(_mod("pycrate_mobile.ISUP"), cls)()


def _b_iam(f, n_called, nai_called, n_calling):
    m = _isup_msg("InitialAddress")
    m["CIC"].set_val(int.from_bytes(f["cic"], "little"))
    m["NatureConnectionInd"].set_val({"EchoControlDeviceInd": 1})
    m["ForwardCallInd"].set_val({"ISDNUserPartInd": 1, "ISDNAccessInd": 1})
    m["CallingPartyCat"].set_val(10)
    m["CalledPartyNum"]["CalledPartyNum"].set_val({"OE": n_called & 1, "NAI": nai_called, "INN": 0, "NumPlan": 1,
                                                   "Num": f["called_isup"]})
    opt = m["Opt"]
    o = opt._opts[10]                                   # calling party number
    o.set_trans(False)
    o[2].set_val({"OE": n_calling & 1, "NAI": 4, "NI": 0, "NumPlan": 1, "AddrPresInd": 0, "ScreeningInd": 3,
                  "Num": f["calling_isup"]})
    opt._opts[0].set_trans(False)                       # end of optional parameters
    return _isup_check(m)


def _isup_check(m) -> bytes:
    out = m.to_bytes()
    back = type(m)()
    back.from_bytes(out)
    if back.to_bytes() != out:
        raise ValueError(f"pycrate does not read back its own {type(m).__name__}")
    return out


def _b_acm(f):
    m = _isup_msg("AddressComplete")
    m["CIC"].set_val(int.from_bytes(f["cic"], "little"))
    m["BackwardCallInd"].set_val({"ChargeInd": 2, "CalledPartyStatusInd": 1, "CalledPartyCatInd": 1,
                                  "ISDNUserPartInd": 1, "ISDNAccessInd": 1})
    return _isup_check(m)


def _b_anm(f):
    m = _isup_msg("Answer")
    m["CIC"].set_val(int.from_bytes(f["cic"], "little"))
    return _isup_check(m)


def _b_rel(f, cause):
    m = _isup_msg("Release")
    m["CIC"].set_val(int.from_bytes(f["cic"], "little"))
    # ext, coding standard ITU-T, spare, location (user / public network serving the remote user), ext, cause
    m["CauseInd"]["CauseInd"].set_val([1, 0, 0, 0 if cause == 16 else 4, 1, cause >> 4, cause & 0xF, b""])
    return _isup_check(m)


def _b_rlc(f):
    m = _isup_msg("ReleaseComplete")
    m["CIC"].set_val(int.from_bytes(f["cic"], "little"))
    return _isup_check(m)


# --- CAP (TS 29.078) over TCAP with pycrate_asn1dir.TCAP_CAP -----------------

CAP_V2_AC = (0, 4, 0, 0, 1, 0, 50, 1)
_CAP_OPS = "CAP-gsmSSF-gsmSCF-ops-args"
SSN_CAP = 146


def encode_cap(msg: str, *, otid: bytes | None = None, dtid: bytes | None = None, dialogue: dict | None = None,
               components=()) -> bytes:
    """One TCAP message carrying CAP, encoded by pycrate (TCAP_CAP)."""
    return tcap_ber(_mod("pycrate_asn1dir.TCAP_CAP").TCAP_CAP_Messages.TCAP_CAP_Message, msg, otid, dtid, dialogue,
                    components)


def _cap_aarq() -> dict:
    return {"direct-reference": DIALOGUE_AS, "encoding": ("single-ASN1-type", ("DialoguePDU", ("dialogueRequest", {
        "protocol-version": (1, 1), "application-context-name": CAP_V2_AC})))}


def _cap_aare() -> dict:
    return {"direct-reference": DIALOGUE_AS, "encoding": ("single-ASN1-type", ("DialoguePDU", ("dialogueResponse", {
        "protocol-version": (1, 1), "application-context-name": CAP_V2_AC,
        "result": 0, "result-source-diagnostic": ("dialogue-service-user", 0)})))}


def _isup_number(digits: str, nai: int, ndigits: int, calling: bool = False) -> bytes:
    """ISUP-format number (Q.763 3.9 / 3.10): odd/even + NAI, INN/NI + plan E.164 (+ screening), digits."""
    return bytes([((ndigits & 1) << 7) | nai, 0x13 if calling else 0x10]) + _isup_digits(digits)


_TIME_AND_TZ = bytes.fromhex("0232111420203023")      # 2023-11-14 02:02:03, +08:00 (TS 29.078)


def _b_cap_idp(f, variant, service_key, n_called, nai_called, n_calling, ton_bcd):
    """Begin (AARQ CAP v2) with InitialDP, gsmSSF (MSC) -> gsmSCF. variant: "bcd" (DP2
    collectedInfo, calledPartyBCDNumber), "isup" (DP3 analyzedInformation,
    calledPartyNumber) or "term" (DP12 termAttemptAuthorized at the GMSC)."""
    arg = {"serviceKey": service_key}
    if variant != "bcd":
        arg["calledPartyNumber"] = _isup_number(f["called_isup"], nai_called, n_called)
    arg["callingPartyNumber"] = _isup_number(f["calling_isup"], 4, n_calling, calling=True)
    arg["callingPartysCategory"] = b"\x0a"
    arg["eventTypeBCSM"] = {"bcd": "collectedInfo", "isup": "analyzedInformation",
                            "term": "termAttemptAuthorized"}[variant]
    arg["iMSI"] = tbcd(f["imsi"])
    if variant != "term":
        arg["locationInformation"] = {
            "ageOfLocationInformation": 0, "vlr-number": addr(f["vlr"]),
            "cellGlobalIdOrServiceAreaIdOrLAI": ("cellGlobalIdOrServiceAreaIdFixedLength", f["cgi"])}
    arg["ext-basicServiceCode"] = ("ext-Teleservice", b"\x11")
    arg["callReferenceNumber"] = f["cref"]
    arg["mscAddress"] = addr(f["msc"])
    if variant == "bcd":
        arg["calledPartyBCDNumber"] = bytes([ton_bcd]) + tbcd(f["cbcd"])
    arg["timeAndTimezone"] = _TIME_AND_TZ
    return encode_cap("begin", otid=f["otid"], dialogue=_cap_aarq(), components=[
        ("basicROS", ("invoke", {"invokeId": ("present", 1), "opcode": ("local", 0),
                                 "argument": ((_CAP_OPS, "InitialDPArg"), arg)}))])


def _b_cap_rrbe(f, term):
    """gsmSCF -> gsmSSF Continue (AARE): requestReportBCSMEvent (answer, disconnect) and continue."""
    a, d = ("tAnswer", "tDisconnect") if term else ("oAnswer", "oDisconnect")
    rr = {"bcsmEvents": [{"eventTypeBCSM": a, "monitorMode": "notifyAndContinue", "legID": ("sendingSideID", b"\x02")},
                         {"eventTypeBCSM": d, "monitorMode": "notifyAndContinue", "legID": ("sendingSideID", b"\x01")},
                         {"eventTypeBCSM": d, "monitorMode": "notifyAndContinue", "legID": ("sendingSideID", b"\x02")}]}
    return encode_cap("continue", otid=f["otid"], dtid=f["dtid"], dialogue=_cap_aare(), components=[
        ("basicROS", ("invoke", {"invokeId": ("present", 1), "opcode": ("local", 23),
                                 "argument": ((_CAP_OPS, "RequestReportBCSMEventArg"), rr)})),
        ("basicROS", ("invoke", {"invokeId": ("present", 2), "opcode": ("local", 31)}))])


def _b_cap_erb_answer(f, term):
    """gsmSSF -> gsmSCF Continue: eventReportBCSM (answer, notification)."""
    erb = {"eventTypeBCSM": "tAnswer" if term else "oAnswer",
           "legID": ("receivingSideID", b"\x02"), "miscCallInfo": {"messageType": "notification"}}
    return encode_cap("continue", otid=f["otid"], dtid=f["dtid"], components=[
        ("basicROS", ("invoke", {"invokeId": ("present", 2), "opcode": ("local", 24),
                                 "argument": ((_CAP_OPS, "EventReportBCSMArg"), erb)}))])


def _b_cap_erb_end(f, term):
    """gsmSSF -> gsmSCF End: eventReportBCSM (disconnect, notification)."""
    erb = {"eventTypeBCSM": "tDisconnect" if term else "oDisconnect",
           "legID": ("receivingSideID", b"\x01"), "miscCallInfo": {"messageType": "notification"}}
    return encode_cap("end", dtid=f["dtid"], components=[
        ("basicROS", ("invoke", {"invokeId": ("present", 3), "opcode": ("local", 24),
                                 "argument": ((_CAP_OPS, "EventReportBCSMArg"), erb)}))])
