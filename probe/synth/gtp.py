"""GTPv2-C (TS 29.274), GTPv1-C (TS 29.060) and GTP-U (TS 29.281) with pycrate."""
from __future__ import annotations

from .digits import tbcd
from .templates import _imsi8, _mod, _plmn_text


class IEGroup(list):
    """The member IEs of a grouped GTPv2 IE: [(type, instance, value)]."""


def encode_gtpv2(msg: str, seq: int, teid, ies, *, piggy: bool = False, partial: bool = False) -> bytes:
    """A GTPv2-C message encoded by pycrate: msg is the pycrate class name
    (CreateSessionReq, ...), ies [(type, instance, value)] with an IEGroup for a
    grouped IE; teid None leaves the TEID out (T = 0); piggy sets the P flag (another
    message follows). pycrate must parse it back, with every mandatory IE unless partial
    (a message that carries only the IEs a test is about)."""
    g2 = _mod("pycrate_mobile.TS29274_GTPC")
    m = getattr(g2, msg)()
    hdr = m[0]
    hdr["SeqNum"].set_val(seq)
    if teid is None:
        hdr["T"].set_val(0)
    else:
        hdr["TEID"].set_val(teid)
    if piggy:
        hdr["P"].set_val(1)
    body = m[1]
    body.clear()
    for t, inst, val in ies:
        if isinstance(val, IEGroup):
            body.add_ie(t, inst)
            grp = body[-1][1]
            grp.clear()
            for t2, i2, v2 in val:
                grp.add_ie(t2, i2, v2)
        else:
            body.add_ie(t, inst, val)
    out = m.to_bytes()
    back, err = g2.parse_GTPC(out)
    if partial and err == g2.ERR_GTPC_MAND_IE_MISS:
        return out
    if err or back.to_bytes() != out:
        raise ValueError(f"pycrate does not read back its own {msg} (error {err})")
    return out


def _apn_ie(name: str):
    a = _mod("pycrate_mobile.TS24008_IE").APN()
    a.encode(name)
    return a.get_val()


def _fteid(iface: int, teid: bytes, ip: bytes) -> dict:
    return {"V4": 1, "V6": 0, "IF": iface, "TEID_GREKey": int.from_bytes(teid, "big"), "IPv4Addr": ip}


def _uli2_val(b: bytes) -> dict:
    return {"Flags": {"TAI": 1, "ECGI": 1},
            "TAI": {"PLMN": _plmn_text(b[1:4]), "TAC": int.from_bytes(b[4:6], "big")},
            "ECGI": {"PLMN": _plmn_text(b[6:9]), "ECI": int.from_bytes(b[9:13], "big")}}


_QOS = {"PCI": 0, "PL": 9, "PVI": 0, "QCI": 9, "MaxBitRateUL": 0, "MaxBitRateDL": 0,
        "GuaranteedBitRateUL": 0, "GuaranteedBitRateDL": 0}


def _b_g2_csr(f, apn, rat):
    """Create Session Request, MME -> SGW on S11 (initial attach: header TEID 0)."""
    return encode_gtpv2("CreateSessionReq", int.from_bytes(f["seq3"], "big"), 0, [
        (1, 0, f["imsi"]), (76, 0, f["msisdn"]), (75, 0, f["mei"]), (86, 0, _uli2_val(f["uli2"])),
        (83, 0, {"PLMN": _plmn_text(f["sn"])}), (82, 0, {"Val": rat}),
        (87, 0, _fteid(10, f["teid_mme"], f["ip_mme"])), (87, 1, _fteid(7, b"\0\0\0\0", f["ip_pgw"])),
        (71, 0, _apn_ie(apn)), (128, 0, {"Val": 0}), (99, 0, {"Val": 1}),
        (79, 0, {"PDNType": 1, "PDNAddress": b"\0\0\0\0"}), (127, 0, {"Val": 0}),
        (72, 0, {"APN-AMBR-UL": 50000, "APN-AMBR-DL": 150000}),
        (93, 0, IEGroup([(73, 0, {"Val": 5}), (80, 0, _QOS)]))])


def _b_g2_csresp(f):
    """Create Session Response, accepted: the SGW's S11 and the PGW's S5/S8 control
    F-TEIDs, the UE address, and the S1-U SGW / S5/S8-U PGW F-TEIDs of the bearer."""
    return encode_gtpv2("CreateSessionResp", int.from_bytes(f["seq3"], "big"), int.from_bytes(f["teid_mme"], "big"), [
        (2, 0, {"Val": 16}), (87, 0, _fteid(11, f["teid_sgw"], f["ip_sgw"])),
        (87, 1, _fteid(7, f["teid_pgw"], f["ip_pgw"])), (79, 0, {"PDNType": 1, "PDNAddress": f["ue_ip"]}),
        (127, 0, {"Val": 1}), (72, 0, {"APN-AMBR-UL": 50000, "APN-AMBR-DL": 150000}),
        (93, 0, IEGroup([(73, 0, {"Val": 5}), (2, 0, {"Val": 16}), (87, 0, _fteid(1, f["teid_sgwu"], f["ip_sgwu"])),
                        (87, 2, _fteid(5, f["teid_pgwu"], f["ip_pgwu"])), (80, 0, _QOS),
                        (94, 0, {"Val": int.from_bytes(f["charging_id"], "big")})]))])


def _b_g2_csresp_reject(f, cause):
    return encode_gtpv2("CreateSessionResp", int.from_bytes(f["seq3"], "big"), int.from_bytes(f["teid_mme"], "big"),
                        [(2, 0, {"Val": cause}), (93, 0, IEGroup([(73, 0, {"Val": 5}), (2, 0, {"Val": cause})]))])


def _b_g2_mbr(f, rat):
    """Modify Bearer Request on the SGW's S11 TEID: the new cell and the eNodeB's S1-U F-TEID."""
    return encode_gtpv2("ModifyBearerReq", int.from_bytes(f["seq3"], "big"), int.from_bytes(f["teid_sgw"], "big"), [
        (86, 0, _uli2_val(f["uli2"])), (82, 0, {"Val": rat}),
        (93, 0, IEGroup([(73, 0, {"Val": 5}), (87, 0, _fteid(0, f["teid_enb"], f["ip_enb"]))]))])


def _b_g2_mbresp(f):
    return encode_gtpv2("ModifyBearerResp", int.from_bytes(f["seq3"], "big"), int.from_bytes(f["teid_mme"], "big"), [
        (2, 0, {"Val": 16}), (93, 0, IEGroup([(73, 0, {"Val": 5}), (2, 0, {"Val": 16})]))])


def _b_g2_dsr(f):
    return encode_gtpv2("DeleteSessionReq", int.from_bytes(f["seq3"], "big"), int.from_bytes(f["teid_sgw"], "big"), [
        (73, 0, {"Val": 5})])


def _b_g2_dsresp(f):
    return encode_gtpv2("DeleteSessionResp", int.from_bytes(f["seq3"], "big"), int.from_bytes(f["teid_mme"], "big"),
                        [(2, 0, {"Val": 16})])


# --- GTPv1-C (TS 29.060) with pycrate_mobile.TS29060_GTP --------------------

def encode_gtpv1(msg: str, seq: int, teid: int, ies, *, check: bool = True) -> bytes:
    """A GTPv1-C message (S flag, sequence number) encoded by pycrate: ies [(IE name,
    value)], raw bytes as they are; pycrate puts them in TS 29.060 order. pycrate must
    parse it back unless check is False (it reads a raw ULI carrying a RAI as 7 octets)."""
    g1 = _mod("pycrate_mobile.TS29060_GTP")
    m = getattr(g1, msg)()
    m[0]["S"].set_val(1)
    m[0]["GTPHdrOpt"]["SeqNum"].set_val(seq)
    m[0]["TEID"].set_val(teid)
    body = m[1]
    for name, val in ies:
        body.add_ie(name)
        if isinstance(val, bytes):
            body[name].set_val({"Data": val})
        elif name == "APN":
            body[name]["Data"].encode(val)
        elif val is not None:
            body[name]["Data"].set_val(val)
    out = m.to_bytes()
    if check:
        back, err = g1.parse_GTP(out)
        if err or back.to_bytes() != out:
            raise ValueError(f"pycrate does not read back its own {msg} (error {err})")
    return out


def _v1_cause(c: int) -> dict:
    """Cause (TS 29.060 7.7.1): response bit, rejection bit, value."""
    return {"Resp": c >> 7, "Rej": (c >> 6) & 1, "Val": c & 0x3F}


def _b_g1_cpdp(f, apn, rat):
    """Create PDP Context Request, SGSN -> GGSN (header TEID 0)."""
    return encode_gtpv1("CreatePDPCtxtReq", int.from_bytes(f["seq2"], "big"), 0, [
        ("IMSI", _imsi8(f["imsi8"])), ("RAI", f["rai"]), ("SelectionMode", {"Val": 0}),
        ("TEIDDataI", int.from_bytes(f["teid_sgsnu"], "big")), ("TEIDCP", int.from_bytes(f["teid_sgsnc"], "big")),
        ("NSAPI", {"Val": 5}), ("EndUserAddr", {"TypeOrg": 1, "Type": 0x21, "Addr": b""}), ("APN", apn),
        ("SGSNAddrForSignalling", f["ip_sgsnc"]), ("SGSNAddrForUserTraffic", f["ip_sgsnu"]),
        ("MSISDN", b"\x91" + tbcd(f["msisdn"])), ("QoSProfile", None), ("RATType", rat), ("ULI", f["uli1"]),
        ("IMEI", tbcd(f["imeisv"]))])


def _b_g1_cpdp_resp(f):
    return encode_gtpv1("CreatePDPCtxtResp", int.from_bytes(f["seq2"], "big"), int.from_bytes(f["teid_sgsnc"], "big"), [
        ("Cause", _v1_cause(128)), ("ReorderingRequired", {"Val": 0}),
        ("TEIDDataI", int.from_bytes(f["teid_ggsnu"], "big")),
        ("TEIDCP", int.from_bytes(f["teid_ggsnc"], "big")), ("ChargingID", f["charging_id"]),
        ("EndUserAddr", {"TypeOrg": 1, "Type": 0x21, "Addr": f["ue_ip"]}),
        ("GGSNAddrForControlPlane", f["ip_ggsnc"]), ("GGSNAddrForUserTraffic", f["ip_ggsnu"]),
        ("QoSProfile", None)])


def _b_g1_cpdp_reject(f, cause):
    return encode_gtpv1("CreatePDPCtxtResp", int.from_bytes(f["seq2"], "big"), int.from_bytes(f["teid_sgsnc"], "big"),
                        [("Cause", _v1_cause(cause))])


def _b_g1_dpdp(f):
    return encode_gtpv1("DeletePDPCtxtReq", int.from_bytes(f["seq2"], "big"), int.from_bytes(f["teid_ggsnc"], "big"),
                        [("TeardownInd", {"Val": 1}), ("NSAPI", {"Val": 5})])


def _b_g1_dpdp_resp(f):
    return encode_gtpv1("DeletePDPCtxtResp", int.from_bytes(f["seq2"], "big"), int.from_bytes(f["teid_sgsnc"], "big"),
                        [("Cause", _v1_cause(128))])


def gtpu_header() -> bytes:
    """The G-PDU header (TS 29.281 5.1) as pycrate encodes it, TEID and length zero:
    every G-PDU is this with its length and TEID filled in."""
    h = _mod("pycrate_mobile.TS29281_GTPU").GTPUHdr()
    h["Type"].set_val(255)
    return h.to_bytes()
