"""GTP messages encoded by pycrate (the reference), decoded by probe._decode, fields compared.

GTPv2-C with pycrate_mobile.TS29274_GTPC, GTPv1-C with pycrate_mobile.TS29060_GTP;
encoded by the generator's encoders (touchpoint.probe.synth.gtp: one copy, which also
checks that pycrate parses the message back); each message goes in Ethernet/IPv4/UDP
(tests/gtp_messages.py's builders) into a pcap.
Every expected value is what the test encoded, never what a decoder said.

Per-message mode (messages=True): one record per GTP-C message. Dialogue mode: a
request and its response (same sequence number, same address pair) in one record.
"""
import os

import pytest

pytest.importorskip("pycrate_mobile")
pytest.importorskip("touchpoint.probe._decode")

import pycrate_mobile.TS29060_GTP as G1
import pycrate_mobile.TS29274_GTPC as G2
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from pycrate_mobile.TS24008_IE import APN as APN_IE

from touchpoint.probe.synth import IEGroup, encode_gtpv1, encode_gtpv2
from tests.gtp_messages import decode, frame, gtpu, inner_ip, ip_int, ipb

# Shrinking a failure costs a minute or more (every step encodes with pycrate): it is on
# only with GTP_SHRINK=1, so a failing run stays as quick as a passing one.
SETTINGS = settings(max_examples=60, deadline=None,
                    phases=[Phase.explicit, Phase.reuse, Phase.generate]
                    + ([Phase.shrink] if os.environ.get("GTP_SHRINK") else []),
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Fields compared strictly: equal when the test expects them, absent when it does not.
STRICT = ("imsi", "msisdn", "imei", "cause", "rat", "mcc", "mnc", "loc_type", "lac_tac", "cell", "apn")

MME, SGW, ENB, SGWU = "10.1.0.1", "10.2.0.1", "10.3.0.1", "10.2.0.9"
SGSN_C, SGSN_U, GGSN_C, GGSN_U = "10.5.0.1", "10.5.0.2", "10.6.0.1", "10.6.0.2"

D = "0123456789"


def digits(lo, hi):
    return st.text(D, min_size=lo, max_size=hi)


imsis = digits(14, 15)
msisdns = digits(8, 15)
meis = digits(15, 16)                     # IMEI or IMEISV
imeisvs = digits(16, 16)                  # GTPv1 IMEI(SV) IE: 8 octets
mccs = digits(3, 3)
mncs = digits(2, 3)
u16 = st.integers(0, 0xFFFF)
ecis = st.integers(0, 0x0FFFFFFF)
teids = st.integers(1, 0xFFFFFFFF)        # TEID 0 announces nothing
seq24 = st.integers(0, 0xFFFFFF)
seq16 = st.integers(0, 0xFFFF)
# Network identifier labels. Not starting with "mnc": the decoder ends the APN at the
# first later label that does (the operator identifier "mncXXX.mccYYY.gprs"); see
# tests/test_gtp.py::test_apn_label_starting_with_mnc for that edge.
labels = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12).filter(
    lambda s: not s.startswith("mnc"))
network_ids = st.lists(labels, min_size=1, max_size=4).map(".".join)
apns = st.tuples(network_ids, st.booleans(), mccs, mncs)


def apn_text(a) -> tuple:
    """(the APN as encoded, the record's apn: network identifier truncated to 24 octets)."""
    ni, with_oi, mcc, mnc = a
    full = ni + (f".mnc{mnc.zfill(3)}.mcc{mcc}.gprs" if with_oi else "")
    return full, ni[:24]


def apn_value(name: str):
    a = APN_IE()
    a.encode(name)
    return a.get_val()


def check(got: dict, want: dict):
    where = f"\ngot  {got}\nwant {want}"
    for k, v in want.items():
        assert got.get(k) == v, f"{k}{where}"
    for k in STRICT:
        if k not in want:
            assert k not in got, f"{k} unexpected{where}"


# ---- GTPv2-C with pycrate -------------------------------------------------------

def v2(cls, seq: int, teid, ies, piggy: bool = False, partial: bool = False) -> bytes:
    """The generator's GTPv2-C encoder (pycrate, parsed back) for a pycrate message class."""
    return encode_gtpv2(cls.__name__, seq, teid, ies, piggy=piggy, partial=partial)


def f_teid(iface: int, teid: int, ip: str) -> dict:
    return {"V4": 1, "V6": 0, "IF": iface, "TEID_GREKey": teid, "IPv4Addr": ipb(ip)}


def plmn_str(mcc: str, mnc: str) -> str:
    return mcc + mnc


ULI_KINDS = ["tai_ecgi", "cgi", "sai", "rai", "tai", "ecgi", "lai", "cgi_tai_ecgi", "rai_lai", "none"]


@st.composite
def v2_locations(draw):
    """A ULI (or none), and what the record should say about it."""
    kind = draw(st.sampled_from(ULI_KINDS))
    mcc, mnc = draw(mccs), draw(mncs)
    lac, ci, tac, eci = draw(u16), draw(u16), draw(u16), draw(ecis)
    p = plmn_str(mcc, mnc)
    items = kind.split("_")
    flags, val = {}, {}
    if "cgi" in items:
        flags["CGI"] = 1
        val["CGI"] = {"PLMN": p, "LAC": lac, "CI": ci}
    if kind == "sai":
        flags["SAI"] = 1
        val["SAI"] = {"PLMN": p, "LAC": lac, "SAC": ci}
    if "rai" in items:
        flags["RAI"] = 1
        val["RAI"] = {"PLMN": p, "LAC": lac, "RAC": 7}
    if "tai" in items:
        flags["TAI"] = 1
        val["TAI"] = {"PLMN": p, "TAC": tac}
    if "ecgi" in items:
        flags["ECGI"] = 1
        val["ECGI"] = {"PLMN": p, "ECI": eci}
    if "lai" in items:
        flags["LAI"] = 1
        val["LAI"] = {"PLMN": p, "LAC": (lac + 1) & 0xFFFF}
    if kind == "none":
        return None, {}
    val["Flags"] = flags
    # first area code and first cell identity, in flag-bit order (CGI SAI RAI TAI ECGI LAI)
    want = {"mcc": mcc, "mnc": mnc}
    if kind in ("cgi", "cgi_tai_ecgi"):
        want.update(loc_type="cgi", lac_tac=lac, cell=ci)
    elif kind == "sai":
        want.update(loc_type="sai", lac_tac=lac, cell=ci)
    elif kind == "rai":
        want.update(loc_type="rai", lac_tac=lac, cell=0)
    elif kind == "rai_lai":
        want.update(loc_type="rai", lac_tac=lac, cell=0)
    elif kind == "tai":
        want.update(loc_type="tai", lac_tac=tac, cell=0)
    elif kind == "lai":
        want.update(loc_type="lai", lac_tac=(lac + 1) & 0xFFFF, cell=0)
    elif kind == "ecgi":
        want.update(loc_type="ecgi", lac_tac=0, cell=eci)
    else:                                                  # tai_ecgi
        want.update(loc_type="ecgi", lac_tac=tac, cell=eci)
    return val, want


@st.composite
def v2_sessions(draw):
    s = dict(imsi=draw(imsis), msisdn=draw(msisdns), mei=draw(meis), apn=draw(apns),
             rat=draw(st.sampled_from([1, 2, 6, 10])), sn=(draw(mccs), draw(mncs)),
             loc=draw(v2_locations()), seq=draw(seq24), mme_teid=draw(teids), sgw_teid=draw(teids),
             enb_teid=draw(teids), sgwu_teid=draw(teids),
             with_msisdn=draw(st.booleans()), with_mei=draw(st.booleans()), with_sn=draw(st.booleans()))
    return s


def create_session_request(s) -> bytes:
    full_apn, _ = apn_text(s["apn"])
    ies = [(1, 0, s["imsi"])]
    if s["with_msisdn"]:
        ies.append((76, 0, s["msisdn"]))
    if s["with_mei"]:
        ies.append((75, 0, s["mei"]))
    uli_val = s["loc"][0]
    if s["with_sn"]:
        ies.append((83, 0, {"PLMN": plmn_str(*s["sn"])}))
    if uli_val is not None:
        ies.append((86, 0, uli_val))
    ies += [(82, 0, {"Val": s["rat"]}), (87, 0, f_teid(10, s["mme_teid"], MME)),
            (71, 0, apn_value(full_apn)),
            (93, 0, IEGroup([(73, 0, {"Val": 5}), (80, 0, None), (87, 0, f_teid(0, s["enb_teid"], ENB))]))]
    return v2(G2.CreateSessionReq, s["seq"], 0, ies)


def create_session_response(s, cause: int, piggy=False) -> bytes:
    ies = [(2, 0, {"Val": cause}), (87, 0, f_teid(11, s["sgw_teid"], SGW)),
           (93, 0, IEGroup([(73, 0, {"Val": 5}), (2, 0, {"Val": cause}), (87, 0, f_teid(1, s["sgwu_teid"], SGWU))]))]
    return v2(G2.CreateSessionResp, s["seq"], s["mme_teid"], ies, piggy=piggy)


def request_identity(s) -> dict:
    want = {"imsi": s["imsi"], "rat": s["rat"], "apn": apn_text(s["apn"])[1]}
    if s["with_msisdn"]:
        want["msisdn"] = s["msisdn"]
    if s["with_mei"]:
        want["imei"] = s["mei"]
    loc_want = s["loc"][1]
    if loc_want:
        want.update(loc_want)                  # ULI's PLMN wins over the Serving Network
    elif s["with_sn"]:
        want["mcc"], want["mnc"] = s["sn"]
    return want


def tunnel_identity(s) -> dict:
    """What a message naming one of the session's tunnels inherits."""
    want = {"imsi": s["imsi"]}
    if s["with_msisdn"]:
        want["msisdn"] = s["msisdn"]
    if s["with_mei"]:
        want["imei"] = s["mei"]
    return want


@SETTINGS
@given(v2_sessions())
def test_v2_create_session_request(s):
    recs, st_ = decode([frame(create_session_request(s), MME, SGW)], messages=True)
    assert len(recs) == 1, recs
    want = dict(request_identity(s), kind="session_create", proto="gtpv2c", op=32, flags=["request"],
                tid=s["seq"], src=ip_int(MME), dst=ip_int(SGW))
    check(recs[0], want)
    assert st_.layer_ok["gtp"] == 1


rejections = st.integers(64, 127)
acceptances = st.integers(16, 19)


# A Serving Network and no ULI: the record's mcc/mnc come from the Serving Network.
SN_ONLY = dict(imsi="001010000000001", msisdn="33600000001", mei="353490069873319", apn=("internet", True, "001", "01"),
               rat=6, sn=("310", "260"), loc=(None, {}), seq=7, mme_teid=0x1000, sgw_teid=0x2000, enb_teid=0x3000,
               sgwu_teid=0x4000, with_msisdn=True, with_mei=True, with_sn=True)


@SETTINGS
@given(v2_sessions(), st.one_of(acceptances, rejections), st.booleans())
@example(SN_ONLY, 16, True)
@example(SN_ONLY, 16, False)
def test_v2_create_session_dialogue(s, cause, messages):
    frames = [frame(create_session_request(s), MME, SGW), frame(create_session_response(s, cause), SGW, MME)]
    recs, st_ = decode(frames, messages=messages)
    error = ["error"] if cause >= 64 else []
    if messages:
        assert len(recs) == 2, recs
        check(recs[0], dict(request_identity(s), op=32, flags=["request"], tid=s["seq"]))
        # the response names the MME's S11 tunnel: the subscriber comes from there
        check(recs[1], dict(tunnel_identity(s), op=33, kind="session_create", flags=["response"] + error,
                            cause=cause, tid=s["seq"], src=ip_int(SGW), dst=ip_int(MME)))
    else:
        assert len(recs) == 1, recs
        check(recs[0], dict(request_identity(s), op=32, kind="session_create", cause=cause, tid=s["seq"],
                            flags=["request", "response"] + error + ["correlated"],
                            src=ip_int(MME), dst=ip_int(SGW), frame=2))


@SETTINGS
@given(v2_sessions(), st.integers(1, 0xFFFFFF), st.integers(1, 0xFFFFFF), teids, u16, ecis)
def test_v2_later_messages_get_the_subscriber_from_the_tunnel(s, seq_mb, seq_ds, new_enb_teid, tac, eci):
    """Modify Bearer and Delete Session carry no IMSI: their header TEID (the SGW's S11
    F-TEID, announced in the Create Session Response) names the subscriber; the eNodeB
    F-TEID the Modify Bearer Request announces carries her to the user plane."""
    s["seq"] = 1
    mbr = v2(G2.ModifyBearerReq, seq_mb, s["sgw_teid"],
             [(86, 0, {"Flags": {"TAI": 1, "ECGI": 1}, "TAI": {"PLMN": "00101", "TAC": tac},
                       "ECGI": {"PLMN": "00101", "ECI": eci}}),
              (93, 0, IEGroup([(73, 0, {"Val": 5}), (87, 0, f_teid(0, new_enb_teid, "10.3.0.77"))]))])
    mbresp = v2(G2.ModifyBearerResp, seq_mb, s["mme_teid"], [(2, 0, {"Val": 16})])
    dsr = v2(G2.DeleteSessionReq, seq_ds, s["sgw_teid"], [(73, 0, {"Val": 5})])
    dsresp = v2(G2.DeleteSessionResp, seq_ds, s["mme_teid"], [(2, 0, {"Val": 16})])
    down = gtpu(new_enb_teid, inner_ip(120))
    frames = [frame(create_session_request(s), MME, SGW), frame(create_session_response(s, 16), SGW, MME),
              frame(mbr, MME, SGW), frame(mbresp, SGW, MME), frame(down, SGWU, "10.3.0.77", 2152, 2152),
              frame(dsr, MME, SGW), frame(dsresp, SGW, MME)]
    recs, _ = decode(frames)
    by_op = {r["op"]: r for r in recs}
    assert sorted(by_op) == [32, 34, 36, 255], recs
    who = tunnel_identity(s)
    check(by_op[34], dict(who, kind="session_modify", cause=16, tid=seq_mb, mcc="001", mnc="01",
                          loc_type="ecgi", lac_tac=tac, cell=eci, flags=["request", "response", "correlated"]))
    check(by_op[36], dict(who, kind="session_delete", cause=16, tid=seq_ds,
                          flags=["request", "response", "correlated"]))
    u = by_op[255]
    assert (u["kind"], u["tid"], u["dst"], u["packets"], u["octets"]) == \
        ("data_usage", new_enb_teid, ip_int("10.3.0.77"), 1, 120)
    assert u["imsi"] == s["imsi"] and u.get("msisdn") == who.get("msisdn") and u.get("imei") == who.get("imei")


@SETTINGS
@given(v2_sessions(), st.integers(1, 0xFFFFFF), teids, st.booleans())
def test_v2_piggybacked_messages_are_both_decoded(s, seq_cb, bearer_teid, messages):
    """TS 29.274 5.5: a Create Session Response with a Create Bearer Request piggybacked
    (P flag), answered by a Create Bearer Response piggybacked on a Modify Bearer Request."""
    s["seq"] = 1
    cbr = v2(G2.CreateBearerReq, seq_cb, s["mme_teid"],
             [(73, 0, {"Val": 5}), (93, 0, IEGroup([(73, 0, {"Val": 0}), (80, 0, None),
                                             (87, 0, f_teid(1, bearer_teid, SGWU))]))])
    cbresp = v2(G2.CreateBearerResp, seq_cb, s["sgw_teid"],
                [(2, 0, {"Val": 16}), (93, 0, IEGroup([(73, 0, {"Val": 6}), (2, 0, {"Val": 16})]))], piggy=True)
    mbr = v2(G2.ModifyBearerReq, 0x777, s["sgw_teid"], [(93, 0, IEGroup([(73, 0, {"Val": 5})]))])
    frames = [frame(create_session_request(s), MME, SGW),
              frame(create_session_response(s, 16, piggy=True) + cbr, SGW, MME),
              frame(cbresp + mbr, MME, SGW)]
    recs, st_ = decode(frames, messages=messages)
    who = tunnel_identity(s)
    if messages:
        assert [r["op"] for r in recs] == [32, 33, 95, 96, 34], recs
        check(recs[2], dict(who, kind="bearer_create", flags=["request"], tid=seq_cb))
        check(recs[3], dict(who, kind="bearer_create", flags=["response"], cause=16, tid=seq_cb))
        check(recs[4], dict(who, kind="session_modify", flags=["request"], tid=0x777))
    else:
        ops = sorted((r["op"], tuple(r["flags"])) for r in recs)
        assert ops == [(32, ("request", "response", "correlated")), (34, ("request", "timeout")),
                       (95, ("request", "response", "correlated"))], recs
        cb = next(r for r in recs if r["op"] == 95)
        check(cb, dict(who, kind="bearer_create", cause=16, tid=seq_cb))
    assert st_.layer_ok["gtp"] == 5


# ---- GTPv1-C with pycrate -------------------------------------------------------

def v1(cls, seq: int, teid: int, ies: dict) -> bytes:
    """The generator's GTPv1-C encoder for a pycrate message class; ies: IE name -> value."""
    return encode_gtpv1(cls.__name__, seq, teid, ies.items(), check=not isinstance(ies.get("ULI"), bytes))


def v1_imsi(imsi: str) -> bytes:
    """IMSI TV (7.7.2) is 8 octets: a 14-digit IMSI ends with an 0xFF filler octet,
    which pycrate's fixed-size BCD cannot express."""
    x = G1.IMSI()
    x.set_val(imsi)
    return x.to_bytes() + b"\xff" * (8 - len(x.to_bytes()))


@st.composite
def v1_locations(draw):
    """RAI IE and/or ULI (7.7.51), and what the record should say."""
    kind = draw(st.sampled_from(["rai", "cgi", "sai", "uli_rai", "rai+cgi", "rai+sai", "none"]))
    mcc, mnc, lac, ci = draw(mccs), draw(mncs), draw(u16), draw(u16)
    rai_mcc, rai_mnc, rai_lac = draw(mccs), draw(mncs), draw(u16)
    ies, want = {}, {}
    if kind.startswith("rai"):
        ies["RAI"] = {"PLMN": rai_mcc + rai_mnc, "LAC": rai_lac, "RAC": 3}
        want = {"mcc": rai_mcc, "mnc": rai_mnc, "lac_tac": rai_lac, "cell": 0, "loc_type": "rai"}
    uli = kind.split("+")[-1]
    if uli in ("cgi", "sai"):
        ies["ULI"] = {"Type": 0 if uli == "cgi" else 1,
                      "Loc": {"PLMN": mcc + mnc, "LAC": lac, ("CI" if uli == "cgi" else "SAC"): ci}}
        want = {"mcc": mcc, "mnc": mnc, "lac_tac": lac, "cell": ci, "loc_type": uli}
    elif uli == "uli_rai":
        # pycrate encodes the RAI in a ULI in 7 octets; TS 29.060 7.7.51 gives the RAC
        # two octets, the second all ones: encode those 8 octets raw.
        x = G1.ULI()
        x.set_val({"Type": 2, "Loc": {"PLMN": mcc + mnc, "LAC": lac, "RAC": 9}})
        ies["ULI"] = x.to_bytes() + b"\xff"
        want = {"mcc": mcc, "mnc": mnc, "lac_tac": lac, "cell": 0, "loc_type": "rai"}
    return ies, want


@st.composite
def v1_sessions(draw):
    s = dict(imsi=draw(imsis), msisdn=draw(msisdns), imeisv=draw(imeisvs), apn=draw(apns),
             rat=draw(st.sampled_from([1, 2])), loc=draw(v1_locations()), seq=draw(seq16),
             sgsn_c=draw(teids), sgsn_u=draw(teids), ggsn_c=draw(teids), ggsn_u=draw(teids),
             with_msisdn=draw(st.booleans()), with_imei=draw(st.booleans()), with_rat=draw(st.booleans()))
    return s


def create_pdp_request(s) -> bytes:
    loc_ies = s["loc"][0]
    ies = {"IMSI": v1_imsi(s["imsi"])}
    if "RAI" in loc_ies:
        ies["RAI"] = loc_ies["RAI"]
    ies.update({"TEIDDataI": s["sgsn_u"], "TEIDCP": s["sgsn_c"], "NSAPI": {"Val": 5},
                "APN": apn_text(s["apn"])[0], "SGSNAddrForSignalling": ipb(SGSN_C),
                "SGSNAddrForUserTraffic": ipb(SGSN_U)})
    if s["with_msisdn"]:
        ies["MSISDN"] = {"NumType": 1, "NumPlan": 1, "Num": s["msisdn"]}
    ies["QoSProfile"] = None
    if s["with_rat"]:
        ies["RATType"] = s["rat"]
    if "ULI" in loc_ies:
        ies["ULI"] = loc_ies["ULI"]
    if s["with_imei"]:
        ies["IMEI"] = s["imeisv"]
    return v1(G1.CreatePDPCtxtReq, s["seq"], 0, ies)


def create_pdp_response(s, cause: int) -> bytes:
    return v1(G1.CreatePDPCtxtResp, s["seq"], s["sgsn_c"],
              {"Cause": bytes([cause]), "TEIDDataI": s["ggsn_u"], "TEIDCP": s["ggsn_c"],
               "GGSNAddrForControlPlane": ipb(GGSN_C), "GGSNAddrForUserTraffic": ipb(GGSN_U)})


def v1_request_identity(s) -> dict:
    want = {"imsi": s["imsi"], "apn": apn_text(s["apn"])[1]}
    if s["with_msisdn"]:
        want["msisdn"] = s["msisdn"]
    if s["with_imei"]:
        want["imei"] = s["imeisv"]
    if s["with_rat"]:
        want["rat"] = s["rat"]
    want.update(s["loc"][1])
    return want


def v1_tunnel_identity(s) -> dict:
    want = {"imsi": s["imsi"]}
    if s["with_msisdn"]:
        want["msisdn"] = s["msisdn"]
    if s["with_imei"]:
        want["imei"] = s["imeisv"]
    return want


@SETTINGS
@given(v1_sessions(), st.one_of(st.integers(128, 130), st.integers(192, 230)), st.booleans())
def test_v1_create_pdp_context(s, cause, messages):
    frames = [frame(create_pdp_request(s), SGSN_C, GGSN_C), frame(create_pdp_response(s, cause), GGSN_C, SGSN_C)]
    recs, _ = decode(frames, messages=messages)
    error = ["error"] if cause >= 192 else []
    if messages:
        assert len(recs) == 2, recs
        check(recs[0], dict(v1_request_identity(s), kind="pdp_create", proto="gtpv1c", op=16, flags=["request"],
                            tid=s["seq"], src=ip_int(SGSN_C), dst=ip_int(GGSN_C)))
        # header TEID = the SGSN's TEID Control Plane at the SGSN's signalling address
        check(recs[1], dict(v1_tunnel_identity(s), kind="pdp_create", proto="gtpv1c", op=17,
                            flags=["response"] + error, cause=cause, tid=s["seq"]))
    else:
        assert len(recs) == 1, recs
        check(recs[0], dict(v1_request_identity(s), kind="pdp_create", proto="gtpv1c", op=16, cause=cause,
                            flags=["request", "response"] + error + ["correlated"], tid=s["seq"]))


@SETTINGS
@given(v1_sessions(), seq16, st.integers(28, 1400), st.integers(28, 1400))
def test_v1_tunnels_carry_the_subscriber(s, seq_del, up_size, down_size):
    """The GGSN's TEIDs (response) and the SGSN's (request) name the subscriber for the
    Delete PDP Context Request and the G-PDUs of both directions."""
    dreq = v1(G1.DeletePDPCtxtReq, seq_del, s["ggsn_c"], {"TeardownInd": b"\x01", "NSAPI": {"Val": 5}})
    dresp = v1(G1.DeletePDPCtxtResp, seq_del, s["sgsn_c"], {"Cause": bytes([128])})
    frames = [frame(create_pdp_request(s), SGSN_C, GGSN_C), frame(create_pdp_response(s, 128), GGSN_C, SGSN_C),
              frame(gtpu(s["ggsn_u"], inner_ip(up_size)), SGSN_U, GGSN_U, 2152, 2152),
              frame(gtpu(s["sgsn_u"], inner_ip(down_size), seq=1), GGSN_U, SGSN_U, 2152, 2152),
              frame(dreq, SGSN_C, GGSN_C), frame(dresp, GGSN_C, SGSN_C)]
    recs, _ = decode(frames)
    who = v1_tunnel_identity(s)
    dele = [r for r in recs if r["op"] == 20]
    assert len(dele) == 1
    check(dele[0], dict(who, kind="pdp_delete", cause=128, flags=["request", "response", "correlated"]))
    use = {(r["tid"], r["dst"]): r for r in recs if r["kind"] == "data_usage"}
    assert set(use) == {(s["ggsn_u"], ip_int(GGSN_U)), (s["sgsn_u"], ip_int(SGSN_U))}, recs
    for key, size in (((s["ggsn_u"], ip_int(GGSN_U)), up_size), ((s["sgsn_u"], ip_int(SGSN_U)), down_size)):
        u = use[key]
        assert (u["packets"], u["octets"], u["imsi"]) == (1, size, s["imsi"])
        assert u.get("msisdn") == who.get("msisdn") and u.get("imei") == who.get("imei")
        assert u.get("apn") == apn_text(s["apn"])[1]


# ---- bearers: Bearer Context (TS 29.274 8.28), EBI (8.8), Bearer QoS (8.15); NSAPI (TS 29.060 7.7.17)

BEARER_FIELDS = ("bearers", "ebi", "qci")
# (pycrate message, type, request or response); a linked EBI at the top only where the spec has one
V2_BEARER_MESSAGES = [(G2.CreateSessionReq, 32, False), (G2.CreateSessionResp, 33, False),
                      (G2.ModifyBearerReq, 34, False), (G2.CreateBearerReq, 95, True),
                      (G2.CreateBearerResp, 96, False), (G2.UpdateBearerReq, 97, False),
                      (G2.DeleteBearerReq, 99, True), (G2.DeleteBearerResp, 100, True)]
# bearer contexts: (EBI, QCI or no Bearer QoS); EBI 0 is what a Create Bearer Request sends
bearer_lists = st.lists(st.tuples(st.integers(0, 15), st.one_of(st.none(), st.integers(1, 255))), max_size=6)


def bearer_ies(lbi, bearers) -> list:
    ies = [] if lbi is None else [(73, 0, {"Val": lbi})]
    for ebi, qci in bearers:
        members = [(73, 0, {"Val": ebi})]
        if qci is not None:
            members.append((80, 0, {"QCI": qci, "PL": 2}))
        ies.append((93, 0, IEGroup(members)))
    return ies


def bearer_want(lbi, bearers) -> dict:
    """bearer contexts counted; the first EBI that is not 0 (the linked one first); the first QCI."""
    ebis = ([lbi] if lbi is not None else []) + [e for e, _q in bearers]
    qcis = [q for _e, q in bearers if q is not None]
    return {"bearers": len(bearers), "ebi": next((e for e in ebis if e), 0), "qci": qcis[0] if qcis else 0}


def bearer_fields(rec: dict) -> dict:
    return {k: rec.get(k, 0) for k in BEARER_FIELDS}


@SETTINGS
@given(st.sampled_from(V2_BEARER_MESSAGES), st.one_of(st.none(), st.integers(0, 15)), bearer_lists, seq24)
def test_v2_bearer_contexts(msg, lbi, bearers, seq):
    cls, mtype, has_lbi = msg
    lbi = lbi if has_lbi else None
    data = v2(cls, seq, 0x1234, bearer_ies(lbi, bearers), partial=True)
    recs, _ = decode([frame(data, MME, SGW)], messages=True)
    assert [r["op"] for r in recs] == [mtype]
    assert bearer_fields(recs[0]) == bearer_want(lbi, bearers), recs[0]


@SETTINGS
@given(st.integers(5, 15), bearer_lists, bearer_lists, seq24, st.booleans())
def test_v2_bearers_of_a_transaction(lbi, req_bearers, resp_bearers, seq, messages):
    """Create Bearer Request (linked EBI, new bearers with EBI 0 and their QoS) and its response
    (the EBIs assigned): the transaction's record has the request's EBI and QCI where it names
    them, else the response's, and the larger count of bearer contexts."""
    req = v2(G2.CreateBearerReq, seq, 0x1000, bearer_ies(lbi, req_bearers), partial=True)
    resp = v2(G2.CreateBearerResp, seq, 0x2000, [(2, 0, {"Val": 16})] + bearer_ies(None, resp_bearers), partial=True)
    recs, _ = decode([frame(req, SGW, MME), frame(resp, MME, SGW)], messages=messages)
    a, b = bearer_want(lbi, req_bearers), bearer_want(None, resp_bearers)
    if messages:
        assert [bearer_fields(r) for r in recs] == [a, b]
    else:
        assert len(recs) == 1
        assert bearer_fields(recs[0]) == {"bearers": max(a["bearers"], b["bearers"]), "ebi": a["ebi"] or b["ebi"],
                                          "qci": a["qci"] or b["qci"]}


@SETTINGS
@given(v1_sessions(), st.integers(0, 15), st.one_of(st.none(), st.integers(0, 15)))
def test_v1_nsapi(s, nsapi, linked):
    """GTPv1 names one PDP context per message by its NSAPI (a secondary context also its Linked
    NSAPI, second): bearers 1, ebi the NSAPI."""
    ies = {"IMSI": v1_imsi(s["imsi"]), "TEIDDataI": s["sgsn_u"], "TEIDCP": s["sgsn_c"], "NSAPI": {"Val": nsapi}}
    if linked is not None:
        ies["LinkedNSAPI"] = {"Val": linked}
    ies.update({"SGSNAddrForSignalling": ipb(SGSN_C), "SGSNAddrForUserTraffic": ipb(SGSN_U), "QoSProfile": None})
    recs, _ = decode([frame(v1(G1.CreatePDPCtxtReq, s["seq"], 0, ies), SGSN_C, GGSN_C)], messages=True)
    assert len(recs) == 1
    assert bearer_fields(recs[0]) == {"bearers": 1, "ebi": nsapi or (linked or 0), "qci": 0}
    resp = create_pdp_response(s, 128)                     # no NSAPI: nothing to say
    recs, _ = decode([frame(resp, GGSN_C, SGSN_C)], messages=True)
    assert bearer_fields(recs[0]) == {"bearers": 0, "ebi": 0, "qci": 0}
