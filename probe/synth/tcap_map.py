"""TCAP and MAP encoding with pycrate (TCAP_MAPv2v3): dialogues, components, MAP arguments,
results and errors."""
from __future__ import annotations

import contextlib

from .digits import addr, gsm7_pack, tbcd

_PYCRATE = None


def _tcap_obj():
    global _PYCRATE
    if _PYCRATE is None:
        from pycrate_asn1dir import TCAP_MAPv2v3
        _PYCRATE = TCAP_MAPv2v3.TCAP_MAP_Messages.TCAP_MAP_Message
    return _PYCRATE


# Application context X of {0 4 0 0 1 0 X v}
AC = {
    "networkLocUp": 1, "locationCancellation": 2, "locationInfoRetrieval": 5,
    "equipmentMngt": 13, "infoRetrieval": 14, "subscriberDataMngt": 16,
    "networkFunctionalSs": 18, "networkUnstructuredSs": 19, "shortMsgGateway": 20,
    "shortMsgMO-Relay": 21, "shortMsgMT-Relay": 25, "msPurging": 27,
    "subscriberInfoEnquiry": 28, "anyTimeInfoEnquiry": 29, "gprsLocationUpdate": 32,
}
DIALOGUE_AS = (0, 0, 17, 773, 1, 1, 1)
MAP_DIALOGUE_AS = (0, 4, 0, 0, 1, 1, 1, 1)


@contextlib.contextmanager
def ber_style(style: str = "definite"):
    """Encode with pycrate in another BER style inside the block: "definite" (shortest
    lengths), "long" (every length in long form, 0x82 hi lo) or "indefinite" (every
    constructed element with 0x80 ... 00 00)."""
    from pycrate_asn1rt.codecs import ASN1CodecBER as C
    if style not in ("definite", "long", "indefinite"):
        raise ValueError(f"unknown BER style {style!r}")
    old = (C.ENC_LUNDEF, C.ENC_LLONG)
    C.ENC_LUNDEF = style == "indefinite"
    C.ENC_LLONG = 2 if style == "long" else 0
    try:
        yield
    finally:
        C.ENC_LUNDEF, C.ENC_LLONG = old


def ac_oid(ac) -> tuple:
    x, v = ac
    return (0, 4, 0, 0, 1, 0, x, v)


def dialogue_request(ac, dest_ref: bytes | None = None, orig_ref: bytes | None = None) -> dict:
    """AARQ with the application context and, when given, a MAP-OpenInfo
    (destinationReference / originationReference are AddressStrings: TON/NPI + TBCD)."""
    req = {"protocol-version": (1, 1), "application-context-name": ac_oid(ac)}
    if dest_ref is not None or orig_ref is not None:
        mo = {}
        if dest_ref is not None:
            mo["destinationReference"] = dest_ref
        if orig_ref is not None:
            mo["originationReference"] = orig_ref
        req["user-information"] = [{
            "direct-reference": MAP_DIALOGUE_AS,
            "encoding": ("single-ASN1-type", ("MAP-DialoguePDU", ("map-open", mo)))}]
    return {"direct-reference": DIALOGUE_AS,
            "encoding": ("single-ASN1-type", ("DialoguePDU", ("dialogueRequest", req)))}


def dialogue_response(ac) -> dict:
    """AARE: accepted, diagnostic dialogue-service-user null."""
    return {"direct-reference": DIALOGUE_AS,
            "encoding": ("single-ASN1-type", ("DialoguePDU", ("dialogueResponse", {
                "protocol-version": (1, 1), "application-context-name": ac_oid(ac),
                "result": 0, "result-source-diagnostic": ("dialogue-service-user", 0)})))}


def invoke(op: int, arg=None, invoke_id: int = 1) -> tuple:
    v = {"invokeId": ("present", invoke_id), "opcode": ("local", op)}
    if arg is not None:
        v["argument"] = arg
    return ("basicROS", ("invoke", v))


def result(op: int, res=None, invoke_id: int = 1) -> tuple:
    v = {"invokeId": ("present", invoke_id)}
    if res is not None:
        v["result"] = {"opcode": ("local", op), "result": res}
    return ("basicROS", ("returnResult", v))


def error(code: int, param=None, invoke_id: int = 1) -> tuple:
    v = {"invokeId": ("present", invoke_id), "errcode": ("local", code)}
    if param is not None:
        v["parameter"] = param
    return ("basicROS", ("returnError", v))


def encode_tcap(msg: str, *, otid: bytes | None = None, dtid: bytes | None = None,
                dialogue: dict | None = None, components=()) -> bytes:
    """One TCAP message (begin / continue / end / unidirectional) encoded by pycrate."""
    return tcap_ber(_tcap_obj(), msg, otid, dtid, dialogue, components)


def tcap_ber(asn1, msg: str, otid, dtid, dialogue, components) -> bytes:
    """A TCAP message of the pycrate type `asn1` (MAP's or CAP's TCAP) with the parts given."""
    v = {}
    if otid is not None:
        v["otid"] = otid
    if dtid is not None:
        v["dtid"] = dtid
    if dialogue is not None:
        v["dialoguePortion"] = dialogue
    if components:
        v["components"] = list(components)
    asn1.set_val((msg, v))
    return asn1.to_ber()


def encode_begin(op: int, arg=None, ac=None, dest_ref: bytes | None = None,
                 orig_ref: bytes | None = None, otid: bytes = b"\x00\x00\x00\x01",
                 invoke_id: int = 1, components=None) -> bytes:
    """A Begin with one invoke; ac=(X, v) adds the AARQ dialogue portion (None: MAP v1)."""
    dlg = dialogue_request(ac, dest_ref, orig_ref) if ac is not None else None
    comps = components if components is not None else [invoke(op, arg, invoke_id)]
    return encode_tcap("begin", otid=otid, dialogue=dlg, components=comps)


def encode_continue(otid: bytes, dtid: bytes, components=(), ac=None) -> bytes:
    """A Continue; ac=(X, v) adds the AARE (first answer of the responder)."""
    return encode_tcap("continue", otid=otid, dtid=dtid,
                       dialogue=dialogue_response(ac) if ac is not None else None,
                       components=components)


def encode_end(dtid: bytes, components=(), ac=None) -> bytes:
    return encode_tcap("end", dtid=dtid, dialogue=dialogue_response(ac) if ac is not None else None,
                       components=components)


def encode_abort(dtid: bytes, cause: int = 4) -> bytes:
    """TCAP Abort with a p-abortCause (4 = resourceLimitation)."""
    t = _tcap_obj()
    t.set_val(("abort", {"dtid": dtid, "reason": ("p-abortCause", cause)}))
    return t.to_ber()


# --- MAP arguments, results and errors as pycrate open-type values ---------

_MS3, _MS2 = "MAP-MS-DataTypes", "MAPv2-MS-DataTypes"
_SM3, _SM2 = "MAP-SM-DataTypes", "MAPv2-SM-DataTypes"
_CH3, _CH2 = "MAP-CH-DataTypes", "MAPv2-CH-DataTypes"
_SS3, _SS2 = "MAP-SS-DataTypes", "MAPv2-SS-DataTypes"


def _ext(pad: int) -> dict:
    """An extensionContainer of about `pad` octets (up to 10 private extensions with
    long OIDs), to force long-form BER lengths in tests."""
    n = max(1, min(10, pad // 24))
    arcs = max(1, (pad // n - 12) // 4)
    return {"privateExtensionList": [{"extId": (1, 3, 6, 1, 4, 1, 99999, i) + (0xFFFFFFF,) * arcs}
                                     for i in range(n)]}


def map_arg(op: int, v: int = 3, **f):
    """Invoke argument for `op` in MAP version `v` (2 or 3) from identity fields
    (digit strings unless noted). Returns ((module, type), value) for pycrate."""
    enc = _ARGS.get(op)
    if enc is None:
        raise ValueError(f"no argument encoder for MAP operation {op}")
    return enc(op, v, f)


def _padded(val: dict, f) -> dict:
    """val with the extension container that pads it to the length asked (f["pad"]), if asked."""
    if f.get("pad"):
        val["extensionContainer"] = _ext(f["pad"])
    return val


def _update_location(op, v, f):
    if v >= 3:
        return ((_MS3, "UpdateLocationArg"), _padded(
            {"imsi": tbcd(f["imsi"]), "msc-Number": addr(f["msc"]), "vlr-Number": addr(f["vlr"]),
             "vlr-Capability": {"supportedCamelPhases": (0b1110, 4)}}, f))
    return ((_MS2, "UpdateLocationArg"), {"imsi": tbcd(f["imsi"]), "locationInfo": ("msc-Number", addr(f["msc"])),
                                          "vlr-Number": addr(f["vlr"])})


def _cancel_location(op, v, f):
    if v >= 3:
        return ((_MS3, "CancelLocationArg"), _padded(
            {"identity": ("imsi", tbcd(f["imsi"])), "cancellationType": "updateProcedure"}, f))
    return ((_MS2, "CancelLocationArg"), ("imsi", tbcd(f["imsi"])))


def _insert_subscriber_data(op, v, f):
    val = {}
    if f.get("imsi"):
        val["imsi"] = tbcd(f["imsi"])
    if f.get("msisdn"):
        val["msisdn"] = addr(f["msisdn"], f.get("msisdn_toa", 0x91))
    val.update({"category": b"\x0a", "subscriberStatus": "serviceGranted",
                "teleserviceList": [b"\x11", b"\x21", b"\x22"]})
    if v >= 3:
        return ((_MS3, "InsertSubscriberDataArg"), _padded(val, f))
    return ((_MS2, "InsertSubscriberDataArg"), val)


def _register_ss(op, v, f):
    val = {"ss-Code": bytes([f["ss_code"]]), "basicService": ("teleservice", b"\x10")}
    if f.get("ftn"):
        val["forwardedToNumber"] = addr(f["ftn"])
    if f.get("nrct"):
        val["noReplyConditionTime"] = f["nrct"]
    return ((_SS3 if v >= 3 else _SS2, "RegisterSS-Arg"), val)


def _ss_for_bs(op, v, f):
    return ((_SS3 if v >= 3 else _SS2, "SS-ForBS-Code"),
            {"ss-Code": bytes([f["ss_code"]]), "basicService": ("teleservice", b"\x10")})


def _send_routing_info(op, v, f):
    if v >= 3:
        return ((_CH3, "SendRoutingInfoArg"), _padded(
            {"msisdn": addr(f["msisdn"]), "interrogationType": "basicCall", "gmsc-OrGsmSCF-Address": addr(f["gmsc"])},
            f))
    return ((_CH2, "SendRoutingInfoArg"), {"msisdn": addr(f["msisdn"])})


def _update_gprs_location(op, v, f):
    return ((_MS3, "UpdateGprsLocationArg"), _padded(
        {"imsi": tbcd(f["imsi"]), "sgsn-Number": addr(f["sgsn"]),
         "sgsn-Address": b"\x04" + f.get("gsn", b"\x0a\x00\x00\x01")}, f))


def _check_imei(op, v, f):
    if v >= 3:
        return ((_MS3, "CheckIMEI-Arg"), _padded({"imei": tbcd(f["imei"]), "requestedEquipmentInfo": (0b10, 2)}, f))
    return (("MAPv2-CommonDataTypes", "IMEI"), tbcd(f["imei"]))


def _forward_sm(op, v, f):
    da = ("imsi", tbcd(f["imsi"])) if f.get("imsi") else ("serviceCentreAddressDA", addr(f["sc"]))
    oa = ("msisdn", addr(f["msisdn"])) if f.get("msisdn") else ("serviceCentreAddressOA", addr(f["sc"]))
    val = {"sm-RP-DA": da, "sm-RP-OA": oa, "sm-RP-UI": f["ui"]}
    if v >= 3:
        return ((_SM3, "MT-ForwardSM-Arg" if op == 44 else "MO-ForwardSM-Arg"), _padded(val, f))
    return ((_SM2, "ForwardSM-Arg"), val)


def _routing_info_for_sm(op, v, f):
    val = {"msisdn": addr(f["msisdn"]), "sm-RP-PRI": True, "serviceCentreAddress": addr(f["sc"])}
    if v >= 3:
        return ((_SM3, "RoutingInfoForSM-Arg"), _padded(val, f))
    return ((_SM2, "RoutingInfoForSM-Arg"), val)


def _send_authentication_info(op, v, f):
    if v >= 3:
        return ((_MS3, "SendAuthenticationInfoArg"), _padded(
            {"imsi": tbcd(f["imsi"]), "numberOfRequestedVectors": f.get("nvec", 5)}, f))
    return ((_MS2, "SendAuthenticationInfoArg"), tbcd(f["imsi"]))


def _ussd_request(op, v, f):
    s, _ = gsm7_pack(f["ussd"], ussd=True)
    val = {"ussd-DataCodingScheme": bytes([f.get("dcs", 0x0F)]), "ussd-String": s}
    if f.get("msisdn_arg"):
        val["msisdn"] = addr(f["msisdn_arg"])
    return ((_SS3 if v >= 3 else _SS2, "USSD-Arg"), val)


def _purge_ms(op, v, f):
    if v >= 3:
        val = {"imsi": tbcd(f["imsi"])}
        if f.get("vlr"):
            val["vlr-Number"] = addr(f["vlr"])
        if f.get("sgsn"):
            val["sgsn-Number"] = addr(f["sgsn"])
        return ((_MS3, "PurgeMS-Arg"), _padded(val, f))
    return ((_MS2, "PurgeMS-Arg"), {"imsi": tbcd(f["imsi"]), "vlr-Number": addr(f["vlr"])})


def _requested_info(f) -> dict:
    req = {"locationInformation": 0, "subscriberState": 0}
    if f.get("want_imei"):
        req["imei"] = 0
    return req


def _provide_subscriber_info(op, v, f):
    return ((_MS3, "ProvideSubscriberInfoArg"), _padded({"imsi": tbcd(f["imsi"]), "requestedInfo": _requested_info(f)},
                                                       f))


def _any_time_interrogation(op, v, f):
    ident = ("imsi", tbcd(f["imsi"])) if f.get("imsi") else ("msisdn", addr(f["msisdn"]))
    return ((_MS3, "AnyTimeInterrogationArg"), _padded(
        {"subscriberIdentity": ident, "requestedInfo": _requested_info(f), "gsmSCF-Address": addr(f["scf"])}, f))


_ARGS = {2: _update_location, 3: _cancel_location, 7: _insert_subscriber_data, 10: _register_ss,
         11: _ss_for_bs, 12: _ss_for_bs, 13: _ss_for_bs,                  # eraseSS, activateSS, deactivateSS
         22: _send_routing_info, 23: _update_gprs_location, 43: _check_imei,
         44: _forward_sm, 46: _forward_sm,                                # mt-forwardSM, mo-forwardSM / forwardSM
         45: _routing_info_for_sm, 56: _send_authentication_info, 59: _ussd_request, 67: _purge_ms,
         70: _provide_subscriber_info, 71: _any_time_interrogation}


def _subscriber_info(f) -> dict:
    loc = {"ageOfLocationInformation": f.get("age", 3)}
    if f.get("vlr"):
        loc["vlr-number"] = addr(f["vlr"])
    if f.get("cgi") is not None:
        loc["cellGlobalIdOrServiceAreaIdOrLAI"] = ("cellGlobalIdOrServiceAreaIdFixedLength", f["cgi"])
    elif f.get("lai") is not None:
        loc["cellGlobalIdOrServiceAreaIdOrLAI"] = ("laiFixedLength", f["lai"])
    si = {"locationInformation": loc, "subscriberState": ("assumedIdle", 0)}
    if f.get("imei"):
        si["imei"] = tbcd(f["imei"])
    return si


_RAND = bytes(range(0x10, 0x20))


def map_res(op: int, v: int = 3, **f):
    """returnResultLast parameter for `op` (None when the operation has no result in v)."""
    if op in (2, 23):
        val = _padded({"hlr-Number": addr(f["hlr"])}, f)
        if op == 23:
            return ((_MS3, "UpdateGprsLocationRes"), val)
        if v >= 3:
            return ((_MS3, "UpdateLocationRes"), val)
        return ((_MS2, "UpdateLocationRes"), ("extensibleUpdateLocationRes", {"hlr-Number": addr(f["hlr"])}))
    if op == 3:
        return ((_MS3, "CancelLocationRes"), {}) if v >= 3 else None
    if op == 7:
        return ((_MS3 if v >= 3 else _MS2, "InsertSubscriberDataRes"),
                {"ss-List": [b"\x21"]} if f.get("sslist") else {})
    if op == 10:
        ff = {"basicService": ("teleservice", b"\x10"), "ss-Status": b"\x07"}
        if f.get("ftn"):
            ff["forwardedToNumber"] = addr(f["ftn"])
        return ((_SS3 if v >= 3 else _SS2, "SS-Info"),
                ("forwardingInfo", {"ss-Code": bytes([f["ss_code"]]), "forwardingFeatureList": [ff]}))
    if op in (11, 12, 13):
        status = b"\x05" if op == 12 else b"\x04" if op == 13 else b"\x00"
        return ((_SS3 if v >= 3 else _SS2, "SS-Info"),
                ("forwardingInfo", {"ss-Code": bytes([f["ss_code"]]), "forwardingFeatureList": [
                    {"basicService": ("teleservice", b"\x10"), "ss-Status": status}]}))
    if op == 22:
        if v >= 3:
            val = {}
            if f.get("imsi"):
                val["imsi"] = tbcd(f["imsi"])
            val["extendedRoutingInfo"] = ("routingInfo", ("roamingNumber", addr(f["msrn"])))
            if f.get("vmsc"):
                val["vmsc-Address"] = addr(f["vmsc"])
            return ((_CH3, "SendRoutingInfoRes"), _padded(val, f))
        return ((_CH2, "SendRoutingInfoRes"), {"imsi": tbcd(f["imsi"]),
                                               "routingInfo": ("roamingNumber", addr(f["msrn"]))})
    if op == 43:
        if v >= 3:
            return ((_MS3, "CheckIMEI-Res"), {"equipmentStatus": f.get("status", "whiteListed")})
        return ((_MS2, "EquipmentStatus"), f.get("status", "whiteListed"))
    if op == 44:
        return ((_SM3, "MT-ForwardSM-Res"), {})
    if op == 46:
        return ((_SM3, "MO-ForwardSM-Res"), {}) if v >= 3 else None
    if op == 45:
        if v >= 3:
            val = {"imsi": tbcd(f["imsi"]), "locationInfoWithLMSI": {"networkNode-Number": addr(f["nnn"])}}
            return ((_SM3, "RoutingInfoForSM-Res"), _padded(val, f))
        return ((_SM2, "RoutingInfoForSM-Res"),
                {"imsi": tbcd(f["imsi"]), "locationInfoWithLMSI": {"locationInfo": ("msc-Number", addr(f["nnn"]))}})
    if op == 56:
        if v >= 3:
            q = {"rand": _RAND, "xres": b"\x22" * 8, "ck": b"\x33" * 16, "ik": b"\x44" * 16, "autn": b"\x55" * 16}
            return ((_MS3, "SendAuthenticationInfoRes"),
                    {"authenticationSetList": ("quintupletList", [q] * f.get("nvec", 1))})
        return ((_MS2, "SendAuthenticationInfoRes"),
                [{"rand": _RAND, "sres": b"\x22" * 4, "kc": b"\x33" * 8}] * f.get("nvec", 1))
    if op == 59:
        s, _ = gsm7_pack(f.get("text", "Balance 12.34"), ussd=True)
        return ((_SS3 if v >= 3 else _SS2, "USSD-Res"), {"ussd-DataCodingScheme": b"\x0f", "ussd-String": s})
    if op == 67:
        return ((_MS3, "PurgeMS-Res"), {}) if v >= 3 else None
    if op in (70, 71):                              # provideSubscriberInfo, anyTimeInterrogation
        return ((_MS3, "ProvideSubscriberInfoRes" if op == 70 else "AnyTimeInterrogationRes"),
                _padded({"subscriberInfo": _subscriber_info(f)}, f))
    raise ValueError(f"no result encoder for MAP operation {op}")


def map_err(code: int):
    """returnError parameter: absentSubscriberSM (6), unknownSubscriber (1), else none."""
    if code == 6:
        return (("MAP-ER-DataTypes", "AbsentSubscriberSM-Param"), {"absentSubscriberDiagnosticSM": 2})
    if code == 1:
        return (("MAP-ER-DataTypes", "UnknownSubscriberParam"), {"unknownSubscriberDiagnostic": "imsiUnknown"})
    return None
