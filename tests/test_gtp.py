"""GTPv2-C, GTPv1-C and GTP-U through the decoder, one behaviour at a time.

Messages are hand-built from the specs (TS 29.274, TS 29.060, TS 29.281) with the
builders below, so a test can vary exactly one field; tests/test_gtp_pycrate.py
encodes the same messages with pycrate. The public captures in
/work/shared/pcaps-public are compared with tshark at the end of this file.
"""
import collections
import ipaddress
import random
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("touchpoint.probe._decode")

from touchpoint.probe.decode import ANOMALY_INFO, Anomaly, Options, Stats, decode_bytes, decode_file  # noqa: E402
from touchpoint.probe.format import to_dicts  # noqa: E402
from tests import packets as P  # noqa: E402

# ---- wire builders -----------------------------------------------------------

T0 = 1_700_000_000


def ip_int(addr: str) -> int:
    """An IPv4 address as the record's src/dst hold it."""
    return int(ipaddress.IPv4Address(addr))


def udp(payload: bytes, sport: int = 2123, dport: int = 2123) -> bytes:
    return struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload


def frame(payload: bytes, src: str, dst: str, sport: int = 2123, dport: int = 2123) -> bytes:
    """GTP payload in UDP in IPv4 in Ethernet."""
    return P.ether(P.ipv4(udp(payload, sport, dport), proto=17, src=src, dst=dst))


def pcap_at(frames_at) -> bytes:
    """A pcap of (seconds after T0, frame) pairs: explicit capture times."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)]
    for t, f in frames_at:
        us = round(t * 1_000_000)
        out.append(struct.pack("<IIII", T0 + us // 1_000_000, us % 1_000_000, len(f), len(f)) + f)
    return b"".join(out)


def plmn(mcc: str, mnc: str) -> bytes:
    """TS 24.008 10.5.1.3: MCC2 MCC1 | MNC3 MCC3 | MNC2 MNC1 (MNC3 = F for two digits)."""
    n3 = int(mnc[2]) if len(mnc) == 3 else 0xF
    return bytes([int(mcc[1]) << 4 | int(mcc[0]), n3 << 4 | int(mcc[2]), int(mnc[1]) << 4 | int(mnc[0])])


def apn(name: str) -> bytes:
    """APN as DNS labels (TS 23.003 9.1)."""
    return b"".join(bytes([len(label)]) + label.encode() for label in name.split("."))


def ipb(addr: str) -> bytes:
    return ipaddress.IPv4Address(addr).packed


# GTPv2-C (TS 29.274)

def ie2(t: int, value: bytes, inst: int = 0) -> bytes:
    return struct.pack(">BHB", t, len(value), inst & 0x0F) + value


def fteid(iface: int, teid: int, ip: str, inst: int = 0) -> bytes:
    """F-TEID (8.22) with an IPv4 address."""
    return ie2(87, bytes([0x80 | iface]) + struct.pack(">I", teid) + ipb(ip), inst)


def uli(mcc="208", mnc="15", cgi=None, sai=None, rai=None, tai=None, ecgi=None, lai=None) -> bytes:
    """User Location Information (8.21): the items given, in flag-bit order."""
    p = plmn(mcc, mnc)
    flags, body = 0, b""
    if cgi is not None:
        flags |= 0x01
        body += p + struct.pack(">HH", *cgi)
    if sai is not None:
        flags |= 0x02
        body += p + struct.pack(">HH", *sai)
    if rai is not None:
        flags |= 0x04
        body += p + struct.pack(">HBB", rai[0], rai[1], 0xFF)
    if tai is not None:
        flags |= 0x08
        body += p + struct.pack(">H", tai)
    if ecgi is not None:
        flags |= 0x10
        body += p + struct.pack(">I", ecgi)
    if lai is not None:
        flags |= 0x20
        body += p + struct.pack(">H", lai)
    return ie2(86, bytes([flags]) + body)


def gtpv2(mtype: int, ies: bytes, seq: int, teid=None, piggy: bool = False) -> bytes:
    """GTPv2-C header (5.1): version 2, P, T; TEID when given; 3-octet sequence number."""
    flags = 0x40 | (0x10 if piggy else 0) | (0x08 if teid is not None else 0)
    body = (struct.pack(">I", teid) if teid is not None else b"") + struct.pack(">I", seq << 8) + ies
    return struct.pack(">BBH", flags, mtype, len(body)) + body


# GTPv1 (TS 29.060 / 29.281)

def tv(t: int, value: bytes) -> bytes:
    return bytes([t]) + value


def tlv(t: int, value: bytes) -> bytes:
    return struct.pack(">BH", t, len(value)) + value


def gtpv1(mtype: int, ies: bytes, teid: int = 0, seq=None, ext=(), npdu=None) -> bytes:
    """GTPv1 header (6): the optional 4 octets when S, PN or E is set; extension
    headers as (type, content) with len(content) % 4 == 2."""
    flags = 0x30 | (0x04 if ext else 0) | (0x02 if seq is not None else 0) | (0x01 if npdu is not None else 0)
    opt = b""
    if flags & 0x07:
        opt = struct.pack(">HBB", seq or 0, npdu or 0, ext[0][0] if ext else 0)
        for i, (_typ, content) in enumerate(ext):
            assert len(content) % 4 == 2
            nxt = ext[i + 1][0] if i + 1 < len(ext) else 0
            opt += bytes([(len(content) + 2) // 4]) + content + bytes([nxt])
    body = opt + ies
    return struct.pack(">BBHI", flags, mtype, len(body), teid) + body


def gtpu(teid: int, inner: bytes, **kw) -> bytes:
    """A G-PDU (type 255) carrying inner."""
    return gtpv1(255, inner, teid=teid, **kw)


def inner_ip(size: int) -> bytes:
    """An inner IPv4/UDP packet of exactly size octets (size >= 28)."""
    return P.ipv4(udp(b"u" * (size - 28), 40000, 53), proto=17, src="100.64.0.7", dst="8.8.8.8")


PDU_SESSION = 0x85          # TS 29.281 5.2.1: PDU Session Container


# ---- a subscriber and her session --------------------------------------------

IMSI, MSISDN, IMEI = "208150123456789", "33612345678", "3534900698733190"
MCC, MNC = "208", "15"
MME, SGW, ENB, SGWU = "10.1.0.1", "10.2.0.1", "10.3.0.1", "10.2.0.9"
MME_TEID, SGW_TEID, ENB_TEID, SGWU_TEID = 0x1000, 0x2000, 0xE0001, 0x5001


def csr(seq=1, imsi=IMSI, enb_teid=ENB_TEID, mme_teid=MME_TEID, extra=b"") -> bytes:
    ies = (ie2(1, P.tbcd(imsi)) + ie2(76, P.tbcd(MSISDN)) + ie2(75, P.tbcd(IMEI))
           + uli(MCC, MNC, tai=0x1234, ecgi=0x0ABCDEF) + ie2(83, plmn(MCC, MNC)) + ie2(82, b"\x06")
           + fteid(10, mme_teid, MME) + ie2(71, apn("internet.mnc015.mcc208.gprs"))
           + ie2(93, ie2(73, b"\x05") + fteid(0, enb_teid, ENB)) + extra)
    return gtpv2(32, ies, seq, teid=0)


def csresp(seq=1, cause=16, sgwu_teid=SGWU_TEID, mme_teid=MME_TEID, piggy=False) -> bytes:
    ies = (ie2(2, bytes([cause, 0])) + fteid(11, SGW_TEID, SGW, inst=0)
           + ie2(93, ie2(73, b"\x05") + ie2(2, bytes([cause, 0])) + fteid(1, sgwu_teid, SGWU)))
    return gtpv2(33, ies, seq, teid=mme_teid, piggy=piggy)


def decode(frames, messages=False, at=None, **kw):
    """frames one second apart (or at the given times) -> (record dicts, Stats)."""
    st = Stats()
    data = pcap_at(zip(at if at is not None else range(len(frames)), frames))
    return to_dicts(decode_bytes(data, messages=messages, stats=st, **kw)), st


def control(recs):
    return [r for r in recs if r["proto"] != "gtpu"]


def usage(recs):
    return [r for r in recs if r["kind"] == "data_usage"]


def up(size, teid=SGWU_TEID, **kw):
    """A G-PDU from the eNodeB to the SGW's S1-U endpoint, inner packet of size octets."""
    return frame(gtpu(teid, inner_ip(size), **kw), ENB, SGWU, 2152, 2152)


def down(size, teid=ENB_TEID, **kw):
    return frame(gtpu(teid, inner_ip(size), **kw), SGWU, ENB, 2152, 2152)


SESSION = [frame(csr(), MME, SGW), frame(csresp(), SGW, MME)]


# ---- GTP-C transactions ----------------------------------------------------------

@pytest.mark.parametrize("messages", [False, True])
def test_create_session_fields(messages):
    recs, st = decode(SESSION, messages=messages)
    want = dict(kind="session_create", proto="gtpv2c", op=32, tid=1, imsi=IMSI, msisdn=MSISDN, imei=IMEI,
                mcc=MCC, mnc=MNC, loc_type="ecgi", lac_tac=0x1234, cell=0x0ABCDEF, rat=6, apn="internet",
                src=ip_int(MME), dst=ip_int(SGW))
    if messages:
        assert [r["flags"] for r in recs] == [["request"], ["response"]]
        assert all(recs[0][k] == v for k, v in want.items()), recs[0]
        assert (recs[1]["op"], recs[1]["cause"], recs[1]["imsi"], recs[1]["src"]) == (33, 16, IMSI, ip_int(SGW))
    else:
        assert len(recs) == 1
        assert all(recs[0][k] == v for k, v in want.items()), recs[0]
        assert recs[0]["flags"] == ["request", "response", "correlated"]
        assert (recs[0]["cause"], recs[0]["frame"]) == (16, 2)
    assert st.layer_ok["gtp"] == 2 and not st.anomalies


def test_rejected_response_sets_error():
    recs, _ = decode([frame(csr(), MME, SGW), frame(csresp(cause=73), SGW, MME)])
    assert recs[0]["cause"] == 73 and recs[0]["flags"] == ["request", "response", "error", "correlated"]
    ies = tv(1, b"\xc7") + tv(16, b"\0\0\0\1")
    recs, _ = decode([frame(gtpv1(16, tv(2, P.tbcd(IMSI)) + tv(20, b"\x05"), seq=9), "10.5.0.1", "10.6.0.1"),
                      frame(gtpv1(17, ies, teid=0, seq=9), "10.6.0.1", "10.5.0.1")])
    assert (recs[0]["cause"], recs[0]["flags"]) == (199, ["request", "response", "error", "correlated"])


def test_request_retransmission():
    """The same request twice, then the answer: one record; per message all three."""
    frames = [frame(csr(), MME, SGW), frame(csr(), MME, SGW), frame(csresp(), SGW, MME)]
    recs, st = decode(frames)
    assert len(recs) == 1 and recs[0]["flags"] == ["request", "response", "correlated"]
    assert recs[0]["frame"] == 3 and not st.anomalies
    recs, _ = decode(frames, messages=True)
    assert [(r["op"], r["flags"]) for r in recs] == [(32, ["request"]), (32, ["request"]), (33, ["response"])]


def test_response_without_request():
    recs, st = decode([frame(csresp(cause=64), SGW, MME)])
    assert len(recs) == 1
    assert (recs[0]["op"], recs[0]["flags"], recs[0]["cause"]) == (33, ["response", "error"], 64)
    assert "imsi" not in recs[0] and st.anomalies[Anomaly.GTP_UNMATCHED] == 1
    recs, _ = decode([frame(csresp(cause=64), SGW, MME)], messages=True)
    assert len(recs) == 1                       # not twice


def test_response_from_another_address_pair_does_not_match():
    recs, st = decode([frame(csr(), MME, SGW), frame(csresp(), "10.9.9.9", MME)])
    assert sorted(tuple(r["flags"]) for r in recs) == [("request", "timeout"), ("response",)]
    assert st.anomalies[Anomaly.GTP_UNMATCHED] == 1 and st.anomalies[Anomaly.GTP_TIMEOUT] == 1


def test_timeouts_on_capture_time():
    # one request a second, a 1.5 s time-out; the answer to the last comes 2 s after it
    frames = [frame(csr(seq=i), MME, SGW) for i in range(1, 6)] + [frame(csresp(seq=5), SGW, MME)]
    at = [0, 1, 2, 3, 4, 6]
    recs, st = decode(frames, at=at, dialogue_timeout=1.5)
    assert [(r["tid"], r["flags"], r["frame"]) for r in recs] == \
        [(i, ["request", "timeout"], i) for i in range(1, 6)] + [(5, ["response"], 6)]
    assert st.anomalies[Anomaly.GTP_TIMEOUT] == 5 and st.anomalies[Anomaly.GTP_UNMATCHED] == 1
    # the default time-out (600 s): four still open at the end of the capture, one answered
    recs, st = decode(frames, at=at)
    assert sorted((r["tid"], tuple(r["flags"])) for r in recs) == \
        [(i, ("request", "timeout")) for i in range(1, 5)] + [(5, ("request", "response", "correlated"))]
    assert st.anomalies[Anomaly.GTP_TIMEOUT] == 4 and not st.anomalies[Anomaly.GTP_UNMATCHED]


def test_dialogue_table_is_bounded():
    frames = [frame(csr(seq=i), MME, SGW) for i in range(100)]
    recs, st = decode(frames, max_dialogues=16)
    assert sorted(r["tid"] for r in recs) == list(range(100))
    assert st.anomalies[Anomaly.GTP_EVICTED] == 84 and st.anomalies[Anomaly.GTP_TIMEOUT] == 16


def test_messages_without_imsi_take_it_from_the_tunnel():
    """Header TEID + destination address name a tunnel a Create Session announced."""
    mbr = gtpv2(34, ie2(93, ie2(73, b"\x05") + fteid(0, 0xE0002, "10.3.0.2")), 60, teid=SGW_TEID)
    mbresp = gtpv2(35, ie2(2, b"\x10\x00"), 60, teid=MME_TEID)
    ddn = gtpv2(176, ie2(73, b"\x05"), 61, teid=MME_TEID)
    ddnack = gtpv2(177, ie2(2, b"\x10\x00"), 61, teid=SGW_TEID)
    stranger = gtpv2(36, ie2(73, b"\x05"), 62, teid=0x7777)
    frames = SESSION + [frame(mbr, MME, SGW), frame(mbresp, SGW, MME), frame(ddn, SGW, MME), frame(ddnack, MME, SGW),
                        frame(stranger, MME, SGW), frame(gtpu(0xE0002, inner_ip(99)), SGWU, "10.3.0.2", 2152, 2152)]
    recs, _ = decode(frames, messages=True)
    got = [(r["op"], r["kind"], r.get("imsi")) for r in recs]
    assert got == [(32, "session_create", IMSI), (33, "session_create", IMSI), (34, "session_modify", IMSI),
                   (35, "session_modify", IMSI), (176, "other", IMSI), (177, "other", IMSI),
                   (36, "session_delete", None), (255, "data_usage", IMSI)], got
    assert recs[2]["msisdn"] == MSISDN and recs[2]["imei"] == IMEI
    # the same TEID at another address is another tunnel
    recs, _ = decode(SESSION + [frame(gtpv2(36, b"", 63, teid=SGW_TEID), MME, "10.2.0.2")], messages=True)
    assert "imsi" not in recs[-1]


def test_serving_network_gives_the_plmn_without_uli():
    """TS 29.274 8.18: without a ULI the Serving Network is where the subscriber is served.
    Per message this works; a dialogue record must keep it too."""
    ies = ie2(1, P.tbcd(IMSI)) + ie2(83, plmn("310", "260")) + ie2(82, b"\x06")
    frames = [frame(gtpv2(32, ies, 7, teid=0), MME, SGW), frame(gtpv2(33, ie2(2, b"\x10\x00"), 7, teid=1), SGW, MME)]
    recs, _ = decode(frames, messages=True)
    assert (recs[0].get("mcc"), recs[0].get("mnc")) == ("310", "260")
    recs, _ = decode(frames)
    assert len(recs) == 1 and (recs[0].get("mcc"), recs[0].get("mnc")) == ("310", "260"), recs


def test_dialogue_cause_is_the_responses():
    """A request may carry a Cause (Delete Session Request: 5 ISR deactivation, TS 29.274
    7.2.9.1); the dialogue's cause is the answer's."""
    dsr = gtpv2(36, ie2(2, b"\x05\x00") + ie2(73, b"\x05"), 40, teid=SGW_TEID)
    dsresp = gtpv2(37, ie2(2, b"\x40\x00"), 40, teid=MME_TEID)
    recs, _ = decode(SESSION + [frame(dsr, MME, SGW), frame(dsresp, SGW, MME)])
    ds = [r for r in recs if r["op"] == 36]
    assert len(ds) == 1
    assert (ds[0]["cause"], ds[0]["flags"]) == (64, ["request", "response", "error", "correlated"]), ds


@pytest.mark.parametrize("name,want", [
    ("internet", "internet"),
    ("internet.mnc015.mcc208.gprs", "internet"),
    ("ims.example.mnc001.mcc001.gprs", "ims.example"),
    ("a" * 30, "a" * 24),
    ("operator.example.com.mnc123.mcc456.gprs", "operator.example.com"),
])
def test_apn_network_identifier(name, want):
    recs, _ = decode([frame(gtpv2(32, ie2(1, P.tbcd(IMSI)) + ie2(71, apn(name)), 7, teid=0), MME, SGW)],
                     messages=True)
    assert recs[0]["apn"] == want


def test_apn_label_starting_with_mnc():
    """Only "mnc" + 3 digits is the operator identifier (TS 23.003 9.1.2); "mncportal"
    is an ordinary network-identifier label."""
    recs, _ = decode([frame(gtpv2(32, ie2(1, P.tbcd(IMSI)) + ie2(71, apn("web.mncportal")), 7, teid=0), MME, SGW)],
                     messages=True)
    assert recs[0]["apn"] == "web.mncportal"


@pytest.mark.parametrize("items,want", [
    (dict(tai=0x10, ecgi=0x1234567), ("ecgi", 0x10, 0x1234567)),
    (dict(cgi=(0x20, 0x30)), ("cgi", 0x20, 0x30)),
    (dict(sai=(0x21, 0x31)), ("sai", 0x21, 0x31)),
    (dict(rai=(0x22, 5)), ("rai", 0x22, 0)),
    (dict(tai=0x23), ("tai", 0x23, 0)),
    (dict(lai=0x24), ("lai", 0x24, 0)),
    (dict(ecgi=0xFFFFFFFF), ("ecgi", 0, 0x0FFFFFFF)),          # spare nibble is not the ECI
    (dict(ecgi=0x1, lai=0x25), ("ecgi", 0x25, 0x1)),
    (dict(cgi=(0x26, 0x36), tai=0x99, ecgi=0x2), ("cgi", 0x26, 0x36)),
])
def test_uli_v2_items(items, want):
    ies = ie2(1, P.tbcd(IMSI)) + ie2(83, plmn("001", "01")) + uli("262", "012", **items)
    recs, _ = decode([frame(gtpv2(32, ies, 7, teid=0), MME, SGW)], messages=True)
    r = recs[0]
    assert (r["loc_type"], r["lac_tac"], r["cell"], r["mcc"], r["mnc"]) == want + ("262", "012")


def test_v1_rai_and_uli():
    base = tv(2, P.tbcd(IMSI)) + tv(3, plmn("262", "01") + struct.pack(">HB", 0x100, 7)) + tv(20, b"\x05")
    recs, _ = decode([frame(gtpv1(16, base, seq=1), "10.5.0.1", "10.6.0.1")], messages=True)
    assert (recs[0]["loc_type"], recs[0]["lac_tac"], recs[0]["cell"], recs[0]["mnc"]) == ("rai", 0x100, 0, "01")
    for typ, name in ((0, "cgi"), (1, "sai")):
        ies = base + tlv(152, bytes([typ]) + plmn("262", "02") + struct.pack(">HH", 0x200, 0x300))
        recs, _ = decode([frame(gtpv1(16, ies, seq=1), "10.5.0.1", "10.6.0.1")], messages=True)
        assert (recs[0]["loc_type"], recs[0]["lac_tac"], recs[0]["cell"], recs[0]["mnc"]) == (name, 0x200, 0x300, "02")


# ---- bearers ---------------------------------------------------------------------

def bearer(ebi: int, qci=None, extra: bytes = b"") -> bytes:
    """A Bearer Context (TS 29.274 8.28): EBI (8.8), Bearer QoS (8.15: ARP, QCI, 4 bit rates)."""
    qos = ie2(80, bytes([0x09, qci]) + b"\x00" * 20) if qci is not None else b""
    return ie2(93, ie2(73, bytes([ebi])) + qos + extra)


BEARER = ("bearers", "ebi", "qci")


def bearer_fields(r):
    return tuple(r.get(k, 0) for k in BEARER)


@pytest.mark.parametrize("messages", [False, True])
def test_bearers_of_a_dedicated_bearer(messages):
    """Create Bearer Request: the linked (default) bearer 5, two new bearers (EBI 0, QCI 1 and 2);
    the response assigns EBIs 6 and 7. The record: two bearers, EBI 5, QCI 1."""
    cbr = gtpv2(95, ie2(73, b"\x05") + bearer(0, 1, fteid(1, 0x7001, SGWU)) + bearer(0, 2), 0x42, teid=MME_TEID)
    cbresp = gtpv2(96, ie2(2, b"\x10\x00") + bearer(6, extra=ie2(2, b"\x10\x00")) + bearer(7), 0x42, teid=SGW_TEID)
    recs, _ = decode(SESSION + [frame(cbr, SGW, MME), frame(cbresp, MME, SGW)], messages=messages)
    got = [(r["op"], bearer_fields(r)) for r in recs]
    if messages:
        assert got == [(32, (1, 5, 0)), (33, (1, 5, 0)), (95, (2, 5, 1)), (96, (2, 6, 0))]
    else:
        assert got == [(32, (1, 5, 0)), (95, (2, 5, 1))]


def test_bearer_fields_edges():
    def one(ies):
        return bearer_fields(decode([frame(gtpv2(34, ies, 1, teid=1), MME, SGW)], messages=True)[0][0])
    assert one(b"") == (0, 0, 0)
    assert one(bearer(0xF6, 9)) == (1, 6, 9)                              # EBI: the spare nibble is not the EBI
    assert one(bearer(0) + bearer(0, 3) + bearer(8, 4)) == (3, 8, 3)      # EBI 0 is none; the first QCI
    assert one(ie2(93, ie2(73, b"") + ie2(80, b"\x09"))) == (1, 0, 0)     # EBI and Bearer QoS too short
    assert one(b"".join(bearer(5) for _ in range(300))) == (255, 5, 0)    # the count saturates
    # a bearer context that runs past the message: the bearers before it count, the record is partial
    rec = decode([frame(gtpv2(34, bearer(5, 7) + bearer(6)[:-1], 1, teid=1), MME, SGW)], messages=True)[0][0]
    assert bearer_fields(rec) == (1, 5, 7) and "partial" in rec["flags"]


def test_v1_nsapi_is_the_bearer():
    linked = gtpv1(16, tv(2, P.tbcd(IMSI)) + tv(20, b"\x06") + tv(20, b"\x05"), seq=9)     # secondary PDP context
    delete = gtpv1(20, tv(19, b"\xff") + tv(20, b"\x07"), seq=10)
    recs, _ = decode([frame(linked, MME, SGW), frame(delete, MME, SGW)], messages=True)
    assert [bearer_fields(r) for r in recs] == [(1, 6, 0), (1, 7, 0)]


def test_usage_records_name_no_bearer():
    recs, _ = decode(SESSION + [up(100)])
    assert [bearer_fields(r) for r in usage(recs)] == [(0, 0, 0)]


# ---- piggybacking, GTP', GTPv0, echo -------------------------------------------

def test_piggybacked_message_is_decoded():
    cbr = gtpv2(95, ie2(73, b"\x05") + ie2(93, ie2(73, b"\x06") + fteid(1, 0x7777, SGWU)), 0x99, teid=MME_TEID)
    cbresp = gtpv2(96, ie2(2, b"\x10\x00"), 0x99, teid=SGW_TEID)
    frames = [frame(csr(), MME, SGW), frame(csresp(piggy=True) + cbr, SGW, MME), frame(cbresp, MME, SGW),
              up(64, teid=0x7777)]
    recs, st = decode(frames, messages=True)
    assert [(r["op"], r.get("imsi")) for r in recs] == [(32, IMSI), (33, IMSI), (95, IMSI), (96, IMSI), (255, IMSI)]
    recs, _ = decode(frames)
    assert sorted((r["op"], tuple(r["flags"])) for r in recs) == [
        (32, ("request", "response", "correlated")), (95, ("request", "response", "correlated")), (255, ())]


def test_message_piggybacked_on_an_echo_is_not_lost():
    """An Echo Request with the P flag and a Create Session Response after it (frame 2 of
    pcapplusplus_gtpv2.pcap is one): the echo is counted, the message after it decoded,
    as tshark does and as the decoder did before commit f9cfe0d."""
    echo = gtpv2(1, ie2(3, b"\x11"), 0x3039, piggy=True)
    recs, st = decode([frame(echo + csresp(), SGW, MME)], messages=True)
    assert [(r["op"], r["flags"]) for r in recs] == [(33, ["response"])]
    assert st.anomalies[Anomaly.GTP_ECHO] == 1


def test_gtp_prime_v0_and_echo_are_counted_not_recorded():
    prime = bytes([0x0E, 240, 0, 2]) + b"\x00\x01" + b"\x00\x00"              # GTP' v0 header, PT = 0
    prime2 = bytes([0x2E, 240, 0, 2]) + b"\x00\x01" + b"\x00\x00"             # GTP' v1
    v0 = bytes([0x1E, 16, 0, 0]) + b"\x00" * 16                                # GTPv0 Create PDP Context Request
    frames = [frame(prime, MME, SGW, 3386, 3386), frame(prime2, MME, SGW, 3386, 3386), frame(v0, MME, SGW, 3386, 3386),
              frame(v0, MME, SGW), frame(gtpv2(1, ie2(3, b"\x05"), 9), MME, SGW),
              frame(gtpv2(2, ie2(3, b"\x05"), 9), SGW, MME), frame(gtpv1(1, b"", seq=3), MME, SGW),
              frame(gtpv1(2, tv(14, b"\x01"), seq=3), SGW, MME)]
    recs, st = decode(frames)
    assert recs == []
    assert st.anomalies[Anomaly.GTP_PRIME] == 2 and st.anomalies[Anomaly.GTP_V0] == 2
    assert st.anomalies[Anomaly.GTP_ECHO] == 4
    gtp = st.by_layer()["gtp"]
    assert (gtp["packets"], gtp["unsupported"], gtp["other"]) == (8, 4, 4)


# ---- GTP-U ---------------------------------------------------------------------

def test_gtpu_counted_per_tunnel_and_attributed():
    frames = SESSION + [up(100), down(200), up(300), down(400), down(50)]
    for messages in (False, True):
        recs, st = decode(frames, messages=messages)
        u = {r["tid"]: r for r in usage(recs)}
        assert set(u) == {SGWU_TEID, ENB_TEID}
        assert (u[SGWU_TEID]["packets"], u[SGWU_TEID]["octets"], u[SGWU_TEID]["dst"]) == (2, 400, ip_int(SGWU))
        assert (u[ENB_TEID]["packets"], u[ENB_TEID]["octets"], u[ENB_TEID]["dst"]) == (3, 650, ip_int(ENB))
        for r in u.values():
            assert (r["proto"], r["op"], r["imsi"], r["msisdn"], r["imei"], r["apn"], r["rat"]) == \
                ("gtpu", 255, IMSI, MSISDN, IMEI, "internet", 6)
            assert r["frame"] == len(frames) and r["ts_ns"] == (T0 + len(frames) - 1) * 10**9
        assert not st.anomalies.get(Anomaly.GTPU_UNKNOWN_TEID)
        assert st.by_layer()["gtpu"]["decoded"] == 5


def test_usage_interval_splits_the_counts():
    sizes = [60 + 10 * i for i in range(30)]
    frames = SESSION + [up(s) for s in sizes]
    recs, _ = decode(frames, usage_interval=4)
    u = usage(recs)
    assert len(u) >= 7
    assert sum(r["packets"] for r in u) == 30 and sum(r["octets"] for r in u) == sum(sizes)
    assert all(r["imsi"] == IMSI for r in u)
    ts = [r["ts_ns"] for r in u]
    assert ts == sorted(ts) and len(set(ts)) == len(ts)
    # the interval is capture time: 4 s between records of the tunnel (the last one at the end)
    assert all(b - a == 4 * 10**9 for a, b in zip(ts, ts[1:-1]))
    whole, _ = decode(frames)
    assert [(r["packets"], r["octets"]) for r in usage(whole)] == [(30, sum(sizes))]


def test_unknown_teid_still_counts():
    recs, st = decode([up(80, teid=0xABC), up(90, teid=0xABC)])
    assert len(recs) == 1
    r = recs[0]
    assert (r["kind"], r["tid"], r["dst"], r["packets"], r["octets"]) == ("data_usage", 0xABC, ip_int(SGWU), 2, 170)
    assert "imsi" not in r and "msisdn" not in r
    assert st.anomalies[Anomaly.GTPU_UNKNOWN_TEID] == 1          # once per tunnel, when it is first seen


@pytest.mark.parametrize("kw,hdr", [
    ({}, 8),
    (dict(seq=0x1234), 12),
    (dict(npdu=7), 12),
    (dict(ext=[(PDU_SESSION, b"\x00\x09")]), 16),                                # TS 38.415 PDU Session Container
    (dict(seq=5, ext=[(PDU_SESSION, b"\x10\x05"), (0xC0, b"\x00\x01\x02\x03\x04\x05")]), 24),  # + PDCP PDU number
])
def test_gtpu_optional_header_and_extension_headers(kw, hdr):
    g = gtpu(SGWU_TEID, inner_ip(333), **kw)
    assert len(g) == hdr + 333
    recs, st = decode(SESSION + [frame(g, ENB, SGWU, 2152, 2152)])
    u = usage(recs)
    assert [(r["packets"], r["octets"], r["imsi"]) for r in u] == [(1, 333, IMSI)]
    assert st.by_layer()["gtpu"]["decoded"] == 1


def test_gtpu_signalling_is_not_counted():
    frames = [frame(gtpv1(1, b"", seq=1), ENB, SGWU, 2152, 2152),                       # echo
              frame(gtpv1(26, tv(16, b"\0\0\0\1") + tlv(133, ipb(ENB))), ENB, SGWU, 2152, 2152),  # error ind.
              frame(gtpv1(254, b"", teid=SGWU_TEID), ENB, SGWU, 2152, 2152)]             # end marker
    recs, st = decode(frames)
    assert recs == [] and st.anomalies[Anomaly.GTPU_SIGNALLING] == 3


def test_gtpu_port_is_configurable():
    g = frame(gtpu(0x42, inner_ip(80)), ENB, SGWU, 2153, 2153)
    recs, st = decode([g])
    assert recs == [] and st.anomalies[Anomaly.IP_NOT_SIGNALING] == 1
    recs, _ = decode([g], gtpu_ports=(2152, 2153))
    assert [(r["tid"], r["packets"], r["octets"]) for r in recs] == [(0x42, 1, 80)]
    # the configured list replaces the default
    recs, _ = decode([up(80)], gtpu_ports=(2153,))
    assert recs == []


def test_tunnel_table_is_bounded():
    """100 tunnels through a table of 16: the evicted ones come out as records, none lost."""
    frames = [up(60 + i, teid=0x100 + i) for i in range(100)]
    recs, st = decode(frames, max_tunnels=16)
    assert sorted((r["tid"], r["packets"], r["octets"]) for r in recs) == [(0x100 + i, 1, 60 + i) for i in range(100)]
    assert st.anomalies[Anomaly.GTPU_EVICTED] == 84
    # known subscribers keep their identity when their tunnel is evicted
    frames = []
    for i in range(40):
        frames += [frame(csr(seq=i + 1, imsi=f"20815{i:010d}", enb_teid=0x10000 + i, mme_teid=0x100 + i), MME, SGW),
                   down(100, teid=0x10000 + i)]
    recs, st = decode(frames, max_tunnels=16, messages=True)
    u = usage(recs)
    assert sorted((r["tid"], r["imsi"], r["packets"]) for r in u) == \
        [(0x10000 + i, f"20815{i:010d}", 1) for i in range(40)]
    assert st.anomalies[Anomaly.GTPU_EVICTED] == 80 - 16


# ---- robustness ----------------------------------------------------------------

ANOMALY_LAYER = {Anomaly(code).name: layer for code, (layer, _cls, _text) in ANOMALY_INFO.items()}

V2_FULL = csr(extra=uli(cgi=(1, 2)) + ie2(255, b"\x00\x01private"))
V1_FULL = gtpv1(16, tv(2, P.tbcd(IMSI)) + tv(3, plmn("262", "01") + b"\x01\x00\x07") + tv(16, b"\0\0\0\1")
                + tv(17, b"\0\0\0\2") + tv(20, b"\x05") + tlv(131, apn("internet")) + tlv(133, ipb("10.5.0.1"))
                + tlv(133, ipb("10.5.0.2")) + tlv(134, b"\x91" + P.tbcd(MSISDN)) + tlv(151, b"\x01")
                + tlv(152, b"\x00" + plmn("262", "01") + b"\x01\x00\x00\x02") + tlv(154, P.tbcd(IMEI)),
                seq=77)
V1_EXT = gtpv1(16, tv(2, P.tbcd(IMSI)) + tv(20, b"\x05"), seq=78,
               ext=[(PDU_SESSION, b"\x00\x09"), (0xC0, b"\x00\x01\x02\x03\x04\x05")])


@pytest.mark.parametrize("msg", [V2_FULL, V1_FULL, V1_EXT], ids=["v2", "v1", "v1-ext"])
def test_truncated_at_every_length(msg):
    """Cut anywhere: no record, no crash, the anomaly counted in layer gtp; the whole
    message still decodes in the same capture afterwards."""
    frames = [frame(msg[:n], MME, SGW) for n in range(len(msg))] + [frame(msg, MME, SGW)]
    recs, st = decode(frames, messages=True)
    assert len(recs) == 1 and recs[0]["imsi"] == IMSI and "partial" not in recs[0]["flags"]
    gtp = st.by_layer()["gtp"]
    assert gtp["packets"] == len(frames) and gtp["decoded"] == 1
    assert gtp["truncated"] + gtp["malformed"] == len(msg)


@pytest.mark.parametrize("msg", [V2_FULL, V1_FULL, V1_EXT], ids=["v2", "v1", "v1-ext"])
def test_truncated_message_is_truncated_whatever_follows(msg):
    """A message cut short is GTP_TRUNCATED, and what follows it in the capture (the
    next record, here all zeros or all ones) cannot change that: the decoder reads only
    the bytes of the packet."""
    for n in range(len(msg)):
        for filler in (b"\x00", b"\x01", b"\xff"):
            recs, st = decode([frame(msg[:n], MME, SGW), filler * 64], messages=True)
            got = {a.name: c for a, c in st.anomalies.items() if ANOMALY_LAYER.get(a.name) == "gtp"}
            assert got == {"GTP_TRUNCATED": 1}, f"cut at {n} of {len(msg)}, then {filler * 4!r}...: {got}"


def _corrupt(rng: random.Random, msg: bytes) -> bytes:
    b = bytearray(msg)
    how = rng.randrange(4)
    if how == 0:                                               # flip a few bytes
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif how == 1:                                             # a length field anywhere
        i = rng.randrange(len(b) - 1)
        b[i:i + 2] = struct.pack(">H", rng.choice([0, 1, 3, 4, 0xFF, 0xFFFF, len(b), rng.randrange(65536)]))
    elif how == 2:                                             # cut and splice
        i = rng.randrange(len(b))
        b = b[:i] + bytes(rng.randrange(256) for _ in range(rng.randrange(8))) + b[i + rng.randrange(8):]
    else:                                                      # garbage after a valid header
        b = b[:rng.randrange(4, 16)] + rng.randbytes(rng.randrange(64))
    return bytes(b)


def test_random_corruption_does_not_crash():
    rng = random.Random(20240601)
    seeds = [V2_FULL, V1_FULL, V1_EXT, csresp(), csresp(piggy=True) + csr(seq=9),
             gtpu(SGWU_TEID, inner_ip(60), seq=1, ext=[(PDU_SESSION, b"\x00\x09")]), gtpu(ENB_TEID, inner_ip(40))]
    frames = []
    for i in range(4000):
        msg = _corrupt(rng, rng.choice(seeds))
        port = 2152 if i % 3 == 0 else 2123
        frames.append(frame(msg, MME if i % 2 else SGW, SGW if i % 2 else MME, port, port))
    for messages in (False, True):
        recs, st = decode(frames, messages=messages, max_tunnels=64, max_dialogues=64)
        assert st.frames == len(frames)
        assert st.layer_in["gtp"] + st.layer_in["gtpu"] == len(frames)
        assert set(r["proto"] for r in recs) <= {"gtpv1c", "gtpv2c", "gtpu"}
        assert sum(r.get("packets", 0) for r in usage(recs)) == st.layer_ok["gtpu"]



# ---- GTP-C over TCP ------------------------------------------------------------
#
# GTP-C is UDP (TS 29.274 4.2, TS 29.060 4.4), but TCP to port 2123 is seen (a PcapPlusPlus
# test packet among the public captures). Each direction of a connection is a stream of
# messages back to back; tshark 4.0 dissects only the first message of a segment (and its
# piggybacked one), does not reassemble, and does not dissect a retransmitted segment.

def tcp_frame(payload: bytes, src: str, dst: str, seq: int, sport: int = 40000, dport: int = 2123,
              flags: int = 0x18) -> bytes:
    return P.ether(P.ipv4(P.tcp(payload, sport, dport, seq, flags), proto=6, src=src, dst=dst))


def tcp_session(*segments):
    """MME -> SGW segments (payloads) one after the other in sequence, then SGW -> MME the answer."""
    frames, seq = [], 1000
    for s in segments:
        frames.append(tcp_frame(s, MME, SGW, seq))
        seq += len(s)
    return frames


def v2_ops(recs):
    return [(r["op"], r["tid"]) for r in control(recs)]


def counted(st):
    """The anomalies counted, but for the time-outs of requests left unanswered at the end."""
    return {a: n for a, n in st.anomalies.items() if n and a != Anomaly.GTP_TIMEOUT}


def test_tcp_gives_what_udp_gives():
    """A Create Session and its answer over TCP: the same records as over UDP, both modes."""
    tcp = [tcp_frame(csr(), MME, SGW, 1000), tcp_frame(csresp(), SGW, MME, 7000, 2123, 40000)]
    v1req = gtpv1(16, tv(2, P.tbcd(IMSI)) + tv(20, b"\x05"), seq=9)
    v1resp = gtpv1(17, tv(1, b"\x80") + tv(16, b"\0\0\0\1"), seq=9)
    tcp += [tcp_frame(v1req, MME, SGW, 1000 + len(csr())), tcp_frame(v1resp, SGW, MME, 7000 + len(csresp()), 2123,
                                                                        40000)]
    udp = SESSION + [frame(v1req, MME, SGW), frame(v1resp, SGW, MME)]
    for messages in (False, True):
        got, st = decode(tcp, messages=messages)
        want, _ = decode(udp, messages=messages)
        assert got == want and len(got) == (4 if messages else 2)
        assert st.layer_ok["gtp"] == 4 and not st.anomalies


def test_tcp_messages_back_to_back():
    """One segment holds several messages; every one is decoded (tshark: only the first)."""
    reqs = [csr(seq=i, imsi=f"20815000000000{i}", enb_teid=0x100 + i) for i in range(1, 4)]
    recs, st = decode([tcp_frame(b"".join(reqs), MME, SGW, 1000)], messages=True)
    assert v2_ops(recs) == [(32, 1), (32, 2), (32, 3)]
    assert [r["imsi"] for r in recs] == [f"20815000000000{i}" for i in range(1, 4)]
    assert st.layer_in["gtp"] == 3 and not counted(st)


def test_tcp_retransmission_is_decoded_once():
    """The same segment again (same sequence number on the same flow): one request, as tshark
    shows it; a retransmission that brings new octets too decodes those."""
    a, b = csr(seq=1), csr(seq=2)
    frames = [tcp_frame(a, MME, SGW, 1000), tcp_frame(a, MME, SGW, 1000), tcp_frame(csresp(seq=1), SGW, MME, 1)]
    recs, st = decode(frames, messages=True)
    assert v2_ops(recs) == [(32, 1), (33, 1)]
    assert st.anomalies[Anomaly.GTP_TCP_RETRANSMISSION] == 1
    recs, st = decode(frames)
    assert len(recs) == 1 and recs[0]["flags"] == ["request", "response", "correlated"]
    # a repacketized retransmission: a's octets again, then b's, in one segment
    recs, st = decode([tcp_frame(a, MME, SGW, 1000), tcp_frame(a + b, MME, SGW, 1000)], messages=True)
    assert v2_ops(recs) == [(32, 1), (32, 2)] and not counted(st)
    # the same octets on another flow (other ports, other direction) are not a retransmission
    recs, _ = decode([tcp_frame(a, MME, SGW, 1000), tcp_frame(a, MME, SGW, 1000, sport=40001),
                      tcp_frame(a, SGW, MME, 1000, 2123, 40000)], messages=True)
    assert len(recs) == 3


def test_tcp_retransmission_against_tshark(tmp_path):
    if TSHARK is None:
        pytest.skip("tshark not installed")
    a = csr(seq=1)
    path = tmp_path / "retx.pcap"
    path.write_bytes(pcap_at(enumerate([tcp_frame(a, MME, SGW, 1000), tcp_frame(a, MME, SGW, 1000),
                                        tcp_frame(csresp(seq=1), SGW, MME, 1, 2123, 40000)])))
    theirs = tshark_view(path)
    assert (theirs.get("v2:32"), theirs.get("v2:33")) == (1, 1)
    ours = our_view(path)
    assert differences(theirs, ours) == {}


@pytest.mark.parametrize("cut", [1, 2, 3, 4, 10, 40])
def test_tcp_message_split_across_segments(cut):
    """A message that continues in the next segment is counted (not reassembled); the rest of
    it is stepped over, so the message after it in the same segment still decodes."""
    a, b, c = csr(seq=1), csr(seq=2, imsi="208150000000002"), csr(seq=3, imsi="208150000000003")
    frames = tcp_session(a + b[:cut], b[cut:] + c)
    recs, st = decode(frames, messages=True)
    assert v2_ops(recs) == [(32, 1), (32, 3)]
    assert counted(st) == {Anomaly.GTP_TCP_SPLIT: 1, Anomaly.GTP_TCP_REST: 1}
    gtp = st.by_layer()["gtp"]
    assert (gtp["packets"], gtp["decoded"], gtp["unsupported"]) == (4, 2, 1)


def test_tcp_split_over_three_segments():
    a, b = csr(seq=1), csr(seq=2)
    recs, st = decode(tcp_session(a[:2], a[2:3], a[3:50], a[50:] + b), messages=True)
    assert v2_ops(recs) == [(32, 2)]
    assert st.anomalies[Anomaly.GTP_TCP_SPLIT] == 1 and st.anomalies[Anomaly.GTP_TCP_REST] == 3


def test_tcp_stream_cut_anywhere():
    """Three messages in two segments, cut at every octet: the messages not cut decode, a cut
    message is counted once as split, nothing else is counted."""
    msgs = [csr(seq=1), gtpv1(16, tv(2, P.tbcd(IMSI)) + tv(20, b"\x05"), seq=2), csresp(seq=3)]
    stream = b"".join(msgs)
    ends = [sum(len(m) for m in msgs[:i + 1]) for i in range(3)]
    for k in range(1, len(stream)):
        recs, st = decode(tcp_session(stream[:k], stream[k:]), messages=True)
        whole = [i + 1 for i, e in enumerate(ends) if e <= k or e - len(msgs[i]) >= k]
        assert [r["tid"] for r in control(recs)] == whole, k
        split = 0 if k in ends else 1
        want = {Anomaly.GTP_TCP_SPLIT: split, Anomaly.GTP_TCP_REST: split, Anomaly.GTP_UNMATCHED: int(3 in whole)}
        assert counted(st) == {a: n for a, n in want.items() if n}, k


def test_tcp_gap_syn_and_idle_start_afresh():
    a, b = csr(seq=1), csr(seq=2)
    # a lost segment: the next one is decoded from its first octet
    recs, st = decode([tcp_frame(a[:30], MME, SGW, 1000), tcp_frame(b, MME, SGW, 5000)], messages=True)
    assert v2_ops(recs) == [(32, 2)] and st.anomalies[Anomaly.GTP_TCP_SPLIT] == 1
    assert not st.anomalies[Anomaly.GTP_TCP_REST]
    # a SYN carrying data (frame 3 of pcapplusplus_gtpv2.pcap): its data follows the SYN's number;
    # a new connection on the same ports with a lower sequence number is not a retransmission
    frames = [tcp_frame(a, MME, SGW, 999, flags=0x02), tcp_frame(b, MME, SGW, 1000 + len(a)),
              tcp_frame(a, MME, SGW, 99, flags=0x02)]
    recs, st = decode(frames, messages=True)
    assert v2_ops(recs) == [(32, 1), (32, 2), (32, 1)] and not counted(st)
    # the same segment ten minutes and more later: the flow was forgotten, it is decoded again
    recs, st = decode([tcp_frame(a, MME, SGW, 1000), tcp_frame(a, MME, SGW, 1000)], messages=True, at=[0, 601])
    assert len(recs) == 2 and not st.anomalies[Anomaly.GTP_TCP_RETRANSMISSION]


def test_tcp_without_gtp():
    a = csr(seq=1)
    frames = [tcp_frame(b"", MME, SGW, 1000, flags=0x10),                  # an ACK
              tcp_frame(a, MME, SGW, 1000, flags=0x14),                    # a reset with data
              tcp_frame(a, MME, SGW, 1000, sport=40000, dport=2124),       # another port
              tcp_frame(a, MME, SGW, 1000, sport=2152, dport=40000)]       # GTP-U's port: UDP only
    recs, st = decode(frames, messages=True)
    assert recs == [] and st.anomalies == {Anomaly.IP_NOT_SIGNALING: 4}
    recs, _ = decode([tcp_frame(a, MME, SGW, 1000, dport=3000)], messages=True, gtpc_ports=(3000,))
    assert v2_ops(recs) == [(32, 1)]


def test_tcp_garbage():
    a = csr(seq=1)
    frames = [tcp_frame(b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09", MME, SGW, 1000),   # no GTP header
              tcp_frame(a + b"\x00\x11\x22", MME, SGW, 2000),                            # 3 octets after a message
              tcp_frame(a + b"\x00\x11\x22\x33", MME, SGW, 3000),                        # 4 that start nothing
              tcp_frame(bytes([0x48, 32, 0, 2]) + b"\x00" * 8, MME, SGW, 4000)]          # v2 length < its header
    recs, st = decode(frames, messages=True)
    assert v2_ops(recs) == [(32, 1), (32, 1)]
    assert counted(st) == {Anomaly.GTP_TCP_UNFRAMED: 2, Anomaly.GTP_TCP_SPLIT: 1, Anomaly.GTP_MALFORMED: 1}
    # TCP header cut, or a data offset under 5 words
    for k in range(20):
        _, st = decode([P.ether(P.ipv4(P.tcp(a, 40000, 2123)[:k], proto=6, src=MME, dst=SGW))])
        assert counted(st) == ({Anomaly.IP_TCP_TRUNCATED: 1} if k >= 4 else {Anomaly.IP_NOT_SIGNALING: 1}), k
    _, st = decode([P.ether(P.ipv4(P.tcp(a, 40000, 2123, offset=4), proto=6, src=MME, dst=SGW))])
    assert counted(st) == {Anomaly.IP_TCP_MALFORMED: 1}
    _, st = decode([P.ether(P.ipv4(P.tcp(b"", 40000, 2123, offset=15)[:40], proto=6, src=MME, dst=SGW))])
    assert counted(st) == {Anomaly.IP_TCP_TRUNCATED: 1}
    # options before the data
    recs, st = decode([P.ether(P.ipv4(P.tcp(a, 40000, 2123, offset=8), proto=6, src=MME, dst=SGW))])
    assert len(recs) == 1 and recs[0]["op"] == 32


def test_tcp_flow_table_is_bounded():
    """More connections than the flow table holds: the least recently used is forgotten and
    counted; every message is still decoded."""
    frames = [tcp_frame(csr(seq=i), MME, SGW, 1000, sport=10000 + i) for i in range(4200)]
    recs, st = decode(frames, messages=True)
    assert len(recs) == 4200
    assert st.anomalies[Anomaly.GTP_TCP_EVICTED] == 4200 - 4096


def test_tcp_random_corruption_does_not_crash():
    rng = random.Random(20261129)
    seeds = [csr(seq=1) + csr(seq=2), csresp(piggy=True) + csr(seq=9), V1_FULL + V2_FULL, V1_EXT]
    frames, seq = [], 1000
    for i in range(3000):
        msg = _corrupt(rng, rng.choice(seeds))
        if rng.random() < 0.2:
            seq -= rng.randrange(200)                        # retransmissions and overlaps
        frames.append(tcp_frame(msg, MME, SGW, seq, sport=40000 + i % 3, flags=rng.choice((0x18, 0x18, 0x02, 0x11))))
        seq += len(msg) if rng.random() < 0.9 else rng.randrange(1 << 32)
    for messages in (False, True):
        recs, st = decode(frames, messages=messages, max_dialogues=64)
        assert st.frames == len(frames)
        assert set(r["proto"] for r in recs) <= {"gtpv1c", "gtpv2c"}


# ---- public captures against tshark ---------------------------------------------
#
# Per file, in per-message mode, ours against `tshark -T fields` of the frames with GTP:
#   v2:<type>  GTPv2-C messages of each type the decoder records (RECORDED_V2),
#   v1:<type>  GTPv1-C messages of each type it records (RECORDED_V1),
#   v0:<type>  GTPv0 messages (tshark decodes them, ours counts GTP_V0: always 0),
#   tpdu       GTPv1-U G-PDUs (tshark: T-PDUs of the outer GTP layer; ours: the packets
#              of the data-usage records),
#   imsi, msisdn, imei, eci, tac  the sets of values (tshark: e212.imsi, e164.msisdn,
#              gtpv2.mei + gtp.ext_imeisv, gtpv2.ecgi_eci, gtpv2.tai_tac; ours: the GTP-C
#              records' fields, eci = cell when loc_type is ecgi, tac = lac_tac of a v2
#              record whose ULI had a TAI),
#   lac, rac, ci, sac  GTPv1 locations, RAI IE (TS 29.060 7.7.3) and ULI IE (7.7.51) (tshark:
#              gtp.lac, gtp.rai_rac, gtp.cgi_ci, gtp.sai_sac; ours: lac_tac of a v1 record whose
#              loc_type is rai, cgi or sai, cell when it is cgi (ci) or sai (sac); the record
#              keeps no RAC, so ours has none),
#   called     called numbers (tshark: gsm_a.dtap.cld_party_bcd_num, which only user-plane
#              payload carries here; ours: the peer of any record),
#   GTP_ECHO, GTP_OTHER_MESSAGE, GTPU_SIGNALLING  the GTPv1/v2 messages of the types outside
#              RECORDED_*, which the decoder counts and never records, by design: in number
#              against the --stats counters of those names (tshark: echo and version not supported,
#              types 1-3, and the other types, e.g. SGSN context, Bearer Resource Command, on
#              GTP-C; any type but the G-PDU on a GTP-U port).
# Every other difference is in KNOWN with its reason; a difference not there, or a known one
# that went away, fails.

PUBLIC = Path(__file__).resolve().parents[2] / "shared" / "pcaps-public"
TSHARK = shutil.which("tshark")
RECORDED_V2 = {32, 33, 34, 35, 36, 37, 95, 96, 97, 98, 99, 100, 170, 171, 176, 177}
RECORDED_V1 = {16, 17, 18, 19, 20, 21, 50, 51}
COUNTED = ("GTP_ECHO", "GTP_OTHER_MESSAGE", "GTPU_SIGNALLING")
GTPU_PORT = 2152

KNOWN = {
    "ndpi_gtp_c.pcap": {
        "eci": ((305419896,), (36984440,),
                "the ECGI's ECI octets are 0x12345678: TS 29.274 8.21.5 makes the top nibble spare and the ECI "
                "28 bits (0x2345678 = 36984440); tshark 4.0's gtpv2.ecgi_eci shows all 32 bits"),
    },
    "pcapplusplus_gtpv2.pcap": {
        "v2:34": (3, 2, "frame 6 is a Modify Bearer Request whose header says 42 octets and 8 follow: counted "
                        "GTP_TRUNCATED, no record (tshark dissects it as malformed)"),
    },
    "ndpi_gtp_false_positive.pcapng": {
        "GTP_ECHO": (2, 1, "frame 6 is a GTPv1 Version Not Supported (37 03 00 00) whose flags announce the "
                           "4 optional octets and an extension header where its length says 0 follow: counted "
                           "GTP_MALFORMED, not GTP_ECHO (tshark flags it malformed too)"),
    },
    "ndpi_gtp_prime.pcapng": {
        "imsi": (("310012000000000",), (),
                 "the IMSI is inside a charging data record of a GTP' Data Record Transfer Request: "
                 "GTP' is counted (GTP_PRIME), not decoded, by design"),
    },
    "zeek_gtp_control_prime.pcap": {
        "v0:1": (1, 0, "frames 5-10 are GTPv0 (TS 09.60, port 3386): counted GTP_V0, not decoded, by design"),
        "v0:2": (1, 0, "GTPv0 echo response, see v0:1"),
        "v0:16": (1, 0, "GTPv0 Create PDP Context Request, see v0:1"),
        "v0:17": (1, 0, "GTPv0 Create PDP Context Response, see v0:1"),
        "v0:255": (2, 0, "GTPv0 T-PDUs, see v0:1"),
    },
    "zeek_gtp_create_pdp_ctx.pcap": {
        "rac": ((255,), (),
                "frame 2's RAI IE (TS 29.060 7.7.3) is 03 64 f0 60 ff fe ff: MCC 460, MNC 06, LAC 0xfffe = 65534 "
                "(equal on both sides), RAC 0xff = 255 (tshark is right). The record keeps the area code in "
                "lac_tac and a cell identity (CI, SAC, ECI) in cell; an RAI has no cell, so cell is 0 and the "
                "RAC is not recorded, by design (README record fields, test_v1_rai_and_uli)"),
    },
    "arkime_gtp-iphone.pcap": {
        "called": (("7",), (),
                   "frame 90 is a SIP MESSAGE (SMS over IP, TS 24.341) inside a GTP-U tunnel (TEID 0x7e10b56d): "
                   "tshark's gsm_a.dtap.cld_party_bcd_num 7 is its RP-DATA's RP-Destination Address. User-plane "
                   "payload is not decoded, by design: GTP-U gives per-tunnel usage counters only"),
    },
}

TSHARK_FIELDS = ("gtp.flags.version", "gtp.message", "gtpv2.message_type", "e212.imsi", "e164.msisdn",
                 "gtpv2.mei", "gtp.ext_imeisv", "gtpv2.ecgi_eci", "gtpv2.tai_tac", "gtp.lac", "gtp.rai_rac",
                 "gtp.cgi_ci", "gtp.sai_sac", "gsm_a.dtap.cld_party_bcd_num", "udp.srcport", "udp.dstport")
VALUE_KEYS = ("imsi", "msisdn", "imei", "eci", "tac", "lac", "rac", "ci", "sac", "called")
NUMERIC = {"eci": "gtpv2.ecgi_eci", "tac": "gtpv2.tai_tac", "lac": "gtp.lac", "rac": "gtp.rai_rac",
           "ci": "gtp.cgi_ci", "sac": "gtp.sai_sac"}


def gtp_captures() -> list:
    """The files of the MANIFEST's GTP sections (every file with gtp in its name if there is none)."""
    manifest = PUBLIC / "MANIFEST.md"
    if not manifest.is_file():
        return sorted(p.name for p in PUBLIC.glob("*gtp*")) if PUBLIC.is_dir() else []
    names, section = [], ""
    for line in manifest.read_text().splitlines():
        if line.startswith("## "):
            section = line
        elif line.startswith("### ") and "GTP" in section:
            names.append(line[4:].strip())
    return names


def tshark_view(path: Path) -> dict:
    cmd = [TSHARK, "-n", "-r", str(path), "-Y", "gtp or gtpv2 or gtpprime", "-T", "fields",
           "-E", "occurrence=a", "-E", "aggregator=;"]
    for f in TSHARK_FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300).stdout
    view = collections.Counter()
    ids = {k: set() for k in VALUE_KEYS}
    for line in out.splitlines():
        row = dict(zip(TSHARK_FIELDS, (c.split(";") if c else [] for c in line.split("\t"))))
        for layer, (ver, msg) in enumerate(zip(row["gtp.flags.version"], row["gtp.message"])):
            ver, msg = int(ver), int(msg, 0)
            if ver == 1 and msg == 255:
                if layer == 0:                          # the outer tunnel, not GTP inside it
                    view["tpdu"] += 1
            elif ver == 1 and msg in RECORDED_V1:
                view[f"v1:{msg}"] += 1
            elif ver == 0:
                view[f"v0:{msg}"] += 1
            elif ver == 1:
                view[counter(msg, row)] += 1
        for t in row["gtpv2.message_type"]:
            if int(t) in RECORDED_V2:
                view[f"v2:{int(t)}"] += 1
            else:
                view[counter(int(t), row)] += 1
        ids["imsi"] |= set(row["e212.imsi"])
        ids["msisdn"] |= set(row["e164.msisdn"])
        ids["imei"] |= set(row["gtpv2.mei"]) | set(row["gtp.ext_imeisv"])
        ids["called"] |= set(row["gsm_a.dtap.cld_party_bcd_num"])
        for key, f in NUMERIC.items():
            ids[key] |= {int(x, 0) for x in row[f]}
    return dict(view, **{k: tuple(sorted(v)) for k, v in ids.items()})


def counter(msg: int, row: dict) -> str:
    """The --stats counter of a message of a type the decoder does not record."""
    if GTPU_PORT in {int(p) for p in row["udp.srcport"][:1] + row["udp.dstport"][:1]}:
        return "GTPU_SIGNALLING"
    return "GTP_ECHO" if msg <= 3 else "GTP_OTHER_MESSAGE"


def our_view(path: Path) -> dict:
    st = Stats()
    recs = [r for batch in decode_file(path, Options(messages=True), stats=st) for r in to_dicts(batch)]
    ctrl = [r for r in recs if r["proto"] in ("gtpv1c", "gtpv2c")]
    view = collections.Counter(f"v{r['proto'][4]}:{r['op']}" for r in ctrl)
    view["tpdu"] = sum(r.get("packets", 0) for r in usage(recs))
    for name in COUNTED:
        view[name] = st.anomalies[Anomaly[name]]
    ids = {k: {r[k] for r in ctrl if k in r} for k in ("imsi", "msisdn", "imei")}
    ids["eci"] = {r["cell"] for r in ctrl if r.get("loc_type") == "ecgi"}
    ids["tac"] = {r["lac_tac"] for r in ctrl if r["proto"] == "gtpv2c" and r.get("loc_type") in ("ecgi", "tai")}
    v1 = [r for r in ctrl if r["proto"] == "gtpv1c"]
    ids["lac"] = {r["lac_tac"] for r in v1 if r.get("loc_type") in ("rai", "cgi", "sai")}
    ids["rac"] = set()                                  # the record keeps no RAC (README: lac_tac, cell)
    ids["ci"] = {r["cell"] for r in v1 if r.get("loc_type") == "cgi"}
    ids["sac"] = {r["cell"] for r in v1 if r.get("loc_type") == "sai"}
    ids["called"] = {r["peer"] for r in recs if "peer" in r}
    return dict(view, **{k: tuple(sorted(v)) for k, v in ids.items()})


def differences(theirs: dict, ours: dict) -> dict:
    empty = lambda k: () if k in VALUE_KEYS else 0  # noqa: E731
    return {k: (theirs.get(k, empty(k)), ours.get(k, empty(k))) for k in sorted(set(theirs) | set(ours))
            if theirs.get(k, empty(k)) != ours.get(k, empty(k))}


@pytest.mark.skipif(TSHARK is None, reason="tshark not installed")
@pytest.mark.skipif(not PUBLIC.is_dir(), reason=f"{PUBLIC} not present")
@pytest.mark.parametrize("name", gtp_captures())
def test_public_capture_against_tshark(name):
    path = PUBLIC / name
    if not path.is_file():
        pytest.skip(f"{name} listed in the MANIFEST but absent")
    theirs, ours = tshark_view(path), our_view(path)
    known = {k: (t, o) for k, (t, o, _why) in KNOWN.get(name, {}).items()}
    assert differences(theirs, ours) == known, f"tshark {theirs}\nours   {ours}"


def test_known_differences_name_listed_captures():
    assert set(KNOWN) <= set(gtp_captures()) or not PUBLIC.is_dir()


BEARER_FIELDS_TSHARK = ("gtp.flags.version", "gtp.message", "gtpv2.message_type", "gtpv2.ie_type", "gtpv2.ebi",
                        "gtpv2.bearer_qos_label_qci", "gtp.nsapi")


def tshark_bearers(path: Path) -> dict:
    """frame -> (bearers, ebi, qci) of the frames with exactly one GTP-C message, one we record:
    Bearer Context IEs (type 93), the first EBI that is not 0, the first Bearer QoS QCI; GTPv1:
    one bearer when an NSAPI is there, the first NSAPI."""
    cmd = [TSHARK, "-n", "-r", str(path), "-Y", "gtp or gtpv2", "-T", "fields", "-E", "occurrence=a",
           "-E", "aggregator=;", "-e", "frame.number"]
    for f in BEARER_FIELDS_TSHARK:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300).stdout
    view = {}
    for line in out.splitlines():
        num, *cols = line.split("\t")
        row = dict(zip(BEARER_FIELDS_TSHARK, (c.split(";") if c else [] for c in cols)))
        v1 = [int(m, 0) for ver, m in zip(row["gtp.flags.version"], row["gtp.message"]) if ver == "1"]
        v2 = [int(t) for t in row["gtpv2.message_type"]]
        if len(v1) + len(v2) != 1:
            continue
        if v2 and v2[0] in RECORDED_V2:
            ebis = [int(x) for x in row["gtpv2.ebi"] if int(x)]
            qcis = [int(x) for x in row["gtpv2.bearer_qos_label_qci"]]
            view[int(num)] = (row["gtpv2.ie_type"].count("93"), ebis[0] if ebis else 0, qcis[0] if qcis else 0)
        elif v1 and v1[0] in RECORDED_V1:
            nsapis = [int(x) for x in row["gtp.nsapi"] if int(x)]
            view[int(num)] = (1 if row["gtp.nsapi"] else 0, nsapis[0] if nsapis else 0, 0)
    return view


def our_bearers(path: Path) -> dict:
    recs = [r for batch in decode_file(path, Options(messages=True)) for r in to_dicts(batch)]
    per_frame = collections.defaultdict(list)
    for r in control(recs):
        per_frame[r["frame"]].append(bearer_fields(r))
    return {n: v[0] for n, v in per_frame.items() if len(v) == 1}


@pytest.mark.skipif(TSHARK is None, reason="tshark not installed")
@pytest.mark.skipif(not PUBLIC.is_dir(), reason=f"{PUBLIC} not present")
@pytest.mark.parametrize("name", gtp_captures())
def test_public_capture_bearers_against_tshark(name):
    """Per frame with one GTP-C message on both sides: bearer contexts, first EBI, first QCI as
    tshark shows them. Whether a frame gives a record at all is test_public_capture_against_tshark's
    (message counts, with their known reasons); a message piggybacked on an echo is two for tshark."""
    path = PUBLIC / name
    if not path.is_file():
        pytest.skip(f"{name} listed in the MANIFEST but absent")
    theirs, ours = tshark_bearers(path), our_bearers(path)
    both = set(theirs) & set(ours)
    assert {n: theirs[n] for n in both} == {n: ours[n] for n in both}
    assert both or not theirs


def test_public_captures_have_bearers():
    """The comparison above is not empty: the public captures hold bearer contexts, QCIs and NSAPIs."""
    if TSHARK is None or not PUBLIC.is_dir():
        pytest.skip("needs tshark and the public captures")
    seen = [v for name in gtp_captures() if (PUBLIC / name).is_file() for v in our_bearers(PUBLIC / name).values()]
    assert any(b > 0 and q > 0 for b, _e, q in seen) and any(e == 6 for _b, e, _q in seen)
