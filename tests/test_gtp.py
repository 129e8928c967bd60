"""GTPv2-C, GTPv1-C and GTP-U through the decoder, one behaviour at a time: transactions,
locations, bearers, piggybacking, the messages counted and not recorded, usage per tunnel.

Messages are hand-built from the specs with the builders of tests/gtp_messages.py;
tests/test_gtp_pycrate.py encodes the same messages with pycrate. Truncated and corrupted
messages: tests/test_gtp_robustness.py; GTP-C over TCP: tests/test_gtp_tcp.py; the public
captures against tshark: tests/test_tshark_gtp.py.
"""
import struct

import pytest

pytest.importorskip("touchpoint.probe._decode")

from touchpoint.probe.decode import Anomaly
from tests import packets as P
from tests.gtp_messages import (
    ENB, ENB_TEID, IMEI, IMSI, MCC, MME, MME_TEID, MNC, MSISDN, PDU_SESSION, SESSION, SGW, SGWU, SGWU_TEID,
    SGW_TEID, T0, apn, bearer_fields, csr, csresp, decode, down, frame, fteid, gtpu, gtpv1, gtpv2, ie2, inner_ip,
    ip_int, ipb, plmn, tlv, tv, uli, up, usage,
)

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


def bearer(ebi: int, qci=None, extra: bytes = b"") -> bytes:
    """A Bearer Context (TS 29.274 8.28): EBI (8.8), Bearer QoS (8.15: ARP, QCI, 4 bit rates)."""
    qos = ie2(80, bytes([0x09, qci]) + b"\x00" * 20) if qci is not None else b""
    return ie2(93, ie2(73, bytes([ebi])) + qos + extra)


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

