"""Each layer of the decoder, varied one at a time around the same MAP dialogue."""
import pytest

from touchpoint.probe.decode import Anomaly, Stats, decode_bytes
from touchpoint.probe.format import to_dicts
from tests import packets as P

IMSI, MSISDN, VLR, MSC = "460001234567890", "8613812345678", "8613900001", "8613900002"
UL_ARG = P.ber(0x30, P.ber(0x04, P.tbcd(IMSI)) + P.ber(0x81, P.address(MSC)) + P.ber(0x04, P.address(VLR)))
UL_BEGIN = P.tcap("begin", P.invoke(1, 2, UL_ARG), otid=0x11223344, dlg=P.dialogue(1, 3))
UL_END = P.tcap("end", P.result(1, 2, P.ber(0x30, P.ber(0x04, P.address("8613900009")))), dtid=0x11223344)


def decode(frames, linktype=1, **kw):
    st = Stats()
    recs = to_dicts(decode_bytes(P.pcap(frames, linktype), stats=st, **kw))
    return recs, st


def eth_m3ua(tcap_bytes, **sccp_kw):
    return P.ether(P.ipv4(P.sctp(P.data_chunk(P.m3ua(P.sccp_map(tcap_bytes, **sccp_kw))))))


def assert_ul(recs):
    assert len(recs) == 1, recs
    r = recs[0]
    assert (r["kind"], r["op"], r["imsi"], r["node"], r["version"]) == ("location_update", 2, IMSI, VLR, 3)
    assert set(r["flags"]) == {"request", "response", "correlated"}


def test_ethernet_m3ua_dialogue():
    recs, st = decode([eth_m3ua(UL_BEGIN), eth_m3ua(UL_END, calling_gt="8613900000001", called_gt="8613800000001",
                                                    calling_ssn=6, called_ssn=7)])
    assert_ul(recs)
    assert recs[0]["frame"] == 2 and recs[0]["tid"] == 0x11223344
    assert st.layer_ok["map"] == 2 and not any(a.name.endswith(("TRUNCATED", "MALFORMED")) for a in st.anomalies)


@pytest.mark.parametrize("wrap,linktype", [
    (lambda ip: P.ether(ip, vlans=[(0x8100, 10)]), 1),
    (lambda ip: P.ether(ip, vlans=[(0x88A8, 10), (0x8100, 20)]), 1),
    (P.sll, 113),
    (P.sll2, 276),
    (lambda ip: ip, 101),
    (lambda ip: (2).to_bytes(4, "little") + ip, 0),
])
def test_link_types(wrap, linktype):
    begin = wrap(P.ipv4(P.sctp(P.data_chunk(P.m3ua(P.sccp_map(UL_BEGIN))))))
    end = wrap(P.ipv4(P.sctp(P.data_chunk(P.m3ua(P.sccp_map(UL_END, calling_gt="8613900000001",
                                                            called_gt="8613800000001"))))))
    recs, _ = decode([begin, end], linktype)
    assert_ul(recs)


def test_ipv6_with_extension_header():
    frames = [P.ether(P.ipv6(P.sctp(P.data_chunk(P.m3ua(P.sccp_map(t)))), hop_by_hop=True), 0x86DD)
              for t in (UL_BEGIN,)]
    recs, st = decode(frames, messages=True)
    assert [r["imsi"] for r in recs] == [IMSI]


@pytest.mark.parametrize("name", ["mtp2", "mtp2_phdr", "mtp3", "m2ua", "m2pa"])
def test_ss7_links(name):
    msg = P.mtp3(P.sccp_map(UL_BEGIN), opc=100, dpc=200)
    if name == "mtp2":
        frames, lt = [b"\x81\x82\x3f" + msg], 140
    elif name == "mtp2_phdr":
        frames, lt = [b"\x00\x00\x00\x01" + b"\x81\x82\x3f" + msg], 139
    elif name == "mtp3":
        frames, lt = [msg], 141
    elif name == "m2ua":
        frames, lt = [P.ether(P.ipv4(P.sctp(P.data_chunk(P.m2ua(msg), ppid=2), sport=2904, dport=2904)))], 1
    else:
        frames, lt = [P.ether(P.ipv4(P.sctp(P.data_chunk(P.m2pa(msg), ppid=5), sport=3565, dport=3565)))], 1
    recs, _ = decode(frames, lt, messages=True)
    assert len(recs) == 1
    assert (recs[0]["imsi"], recs[0]["src"], recs[0]["dst"]) == (IMSI, 100, 200)


def test_mtp2_fill_in_units_are_not_errors():
    recs, st = decode([b"\x81\x82\x00", b"\x81\x82\x01\x01"], 140)
    assert recs == [] and st.anomalies[Anomaly.MTP2_NOT_MSU] == 2


def test_ipv4_fragments_out_of_order():
    sctp = P.sctp(P.data_chunk(P.m3ua(P.sccp_map(UL_BEGIN))))
    frags = P.ipv4_fragments(sctp, 32)
    assert len(frags) >= 3
    recs, st = decode([P.ether(f) for f in [frags[-1]] + frags[:-1]], messages=True)
    assert [r["imsi"] for r in recs] == [IMSI]
    assert st.anomalies[Anomaly.IP_FRAG_HELD] == len(frags) - 1


def test_ipv4_fragment_missing_gives_nothing():
    frags = P.ipv4_fragments(P.sctp(P.data_chunk(P.m3ua(P.sccp_map(UL_BEGIN)))), 32)
    recs, st = decode([P.ether(f) for f in frags[:1] + frags[2:]], messages=True)
    assert recs == [] and st.anomalies[Anomaly.IP_FRAG_HELD] == len(frags) - 1


def test_sctp_bundle_and_fragments():
    m = P.m3ua(P.sccp_map(UL_BEGIN))
    # two complete messages bundled in one packet
    recs, _ = decode([P.ether(P.ipv4(P.sctp(P.data_chunk(m, tsn=1), P.data_chunk(m, tsn=2))))], messages=True)
    assert len(recs) == 2
    # one message in three fragments (B, middle, E) across packets
    parts = [m[:20], m[20:50], m[50:]]
    flags = [2, 0, 1]
    frames = [P.ether(P.ipv4(P.sctp(P.data_chunk(p, tsn=10 + i, sid=3, flags=f)))) for i, (p, f) in
              enumerate(zip(parts, flags))]
    recs, st = decode(frames, messages=True)
    assert [r["imsi"] for r in recs] == [IMSI]
    assert st.anomalies[Anomaly.SCTP_FRAG_HELD] == 2
    recs, st = decode([frames[0], frames[2]], messages=True)
    assert recs == [] and st.anomalies[Anomaly.SCTP_FRAG_LOST] == 1


def test_sctp_retransmission_decoded_once():
    chunk = P.data_chunk(P.m3ua(P.sccp_map(UL_BEGIN)), tsn=77)
    first = P.ether(P.ipv4(P.sctp(chunk)))
    other_path = P.ether(P.ipv4(P.sctp(chunk), src="10.0.1.1", dst="10.0.1.2"))   # multi-homed peer
    recs, st = decode([first, other_path], messages=True)
    assert len(recs) == 1 and st.anomalies[Anomaly.SCTP_RETRANSMISSION] == 1
    later = P.ether(P.ipv4(P.sctp(P.data_chunk(P.m3ua(P.sccp_map(UL_BEGIN)), tsn=78))))
    recs, _ = decode([first, later, other_path], messages=True)
    assert len(recs) == 2


def test_xudt_segmentation_and_ludt():
    called, calling = P.sccp_address("8613900000001", 6), P.sccp_address("8613800000001", 7)
    half = len(UL_BEGIN) // 2
    seg1 = P.xudt(called, calling, UL_BEGIN[:half], segment=bytes([0x81, 0, 0, 9]))
    seg2 = P.xudt(called, calling, UL_BEGIN[half:], segment=bytes([0x00, 0, 0, 9]))
    frames = [P.ether(P.ipv4(P.sctp(P.data_chunk(P.m3ua(s))))) for s in (seg1, seg2)]
    recs, st = decode(frames, messages=True)
    assert [r["imsi"] for r in recs] == [IMSI] and st.anomalies[Anomaly.SCCP_SEG_HELD] == 1
    recs, _ = decode([P.ether(P.ipv4(P.sctp(P.data_chunk(P.m3ua(P.ludt(called, calling, UL_BEGIN))))))],
                     messages=True)
    assert [r["imsi"] for r in recs] == [IMSI]


def test_indefinite_lengths():
    t = P.tcap("begin", P.invoke(1, 2, UL_ARG), otid=5, dlg=P.dialogue(1, 3), indefinite=True)
    recs, st = decode([eth_m3ua(t)], messages=True)
    assert [(r["imsi"], r["node"]) for r in recs] == [(IMSI, VLR)]


def test_dialogue_folds_insert_subscriber_data():
    isd = P.ber(0x30, P.ber(0x81, P.address(MSISDN)))
    hlr = dict(calling_gt="8613900000001", called_gt="8613800000001", calling_ssn=6, called_ssn=7)
    frames = [
        eth_m3ua(UL_BEGIN),
        eth_m3ua(
            P.tcap("continue", P.invoke(2, 7, isd), otid=0x99, dtid=0x11223344, dlg=P.dialogue(1, 3, response=True)),
            **hlr,
        ),
        eth_m3ua(P.tcap("continue", P.result(2, 7), otid=0x11223344, dtid=0x99)),
        eth_m3ua(UL_END, **hlr),
    ]
    recs, st = decode(frames)
    assert_ul(recs)
    assert recs[0]["msisdn"] == MSISDN and recs[0]["frame"] == 4
    msgs, _ = decode(frames, messages=True)
    assert [(r["op"], r["flags"]) for r in msgs] == [(2, ["request"]), (7, ["request"]), (7, ["response"]),
                                                     (2, ["response"])]


def test_end_from_the_initiator_matches_the_responder_id():
    hlr = dict(calling_gt="8613900000001", called_gt="8613800000001", calling_ssn=6, called_ssn=7)
    frames = [
        eth_m3ua(UL_BEGIN),
        eth_m3ua(P.tcap("continue", P.result(1, 2), otid=0x77, dtid=0x11223344), **hlr),
        eth_m3ua(P.tcap("end", dtid=0x77)),
    ]
    recs, st = decode(frames)
    assert len(recs) == 1 and recs[0]["frame"] == 3 and "timeout" not in recs[0]["flags"]
    assert st.anomalies[Anomaly.TCAP_UNMATCHED] == 0


def test_errors_aborts_and_timeouts():
    sri_sm = P.ber(0x30, P.ber(0x80, P.address(MSISDN)) + P.ber(0x81, b"\x00") + P.ber(0x82, P.address("8613800500")))
    hlr = dict(calling_gt="8613900000001", called_gt="8613800000001", calling_ssn=6, called_ssn=8)
    frames = [
        eth_m3ua(P.tcap("begin", P.invoke(1, 45, sri_sm), otid=1, dlg=P.dialogue(20, 3)), calling_ssn=8),
        eth_m3ua(P.tcap("end", P.error(1, 27), dtid=1), **hlr),
        eth_m3ua(P.tcap("begin", P.invoke(1, 45, sri_sm), otid=2, dlg=P.dialogue(20, 3)), calling_ssn=8),
        eth_m3ua(P.tcap("abort", dtid=2), **hlr),
        eth_m3ua(P.tcap("begin", P.invoke(1, 45, sri_sm), otid=3, dlg=P.dialogue(20, 3)), calling_ssn=8),
    ]
    recs, st = decode(frames)
    by_tid = {r["tid"]: r for r in recs}
    assert by_tid[1]["cause"] == 27 and "error" in by_tid[1]["flags"] and by_tid[1]["msisdn"] == MSISDN
    assert by_tid[1]["peer"] == "8613800500" and "node" not in by_tid[1]
    assert "abort" in by_tid[2]["flags"]
    assert "timeout" in by_tid[3]["flags"] and st.anomalies[Anomaly.TCAP_TIMEOUT] == 1


def test_dialogue_timeout_on_capture_time():
    frames = [eth_m3ua(P.tcap("begin", P.invoke(1, 2, UL_ARG), otid=i, dlg=P.dialogue(1, 3))) for i in range(5)]
    # frames are one second apart: with a 1.5 s time-out each Begin expires two frames later
    recs, st = decode(frames, dialogue_timeout=1.5)
    assert len(recs) == 5 and all("timeout" in r["flags"] for r in recs)
    assert [r["tid"] for r in recs] == [0, 1, 2, 3, 4]


def test_transaction_table_is_bounded():
    frames = [eth_m3ua(P.tcap("begin", P.invoke(1, 2, UL_ARG), otid=i, dlg=P.dialogue(1, 3))) for i in range(100)]
    recs, st = decode(frames, max_dialogues=16)
    assert len(recs) == 100 and st.anomalies[Anomaly.TCAP_EVICTED] == 84


def test_unknown_tcap_user_is_counted_not_decoded():
    t = P.tcap("begin", P.invoke(1, 0, P.ber(0x30, P.ber(0x80, b"\x01"))), otid=1)
    recs, st = decode([eth_m3ua(t, calling_ssn=200, called_ssn=201)])
    assert recs == [] and st.anomalies[Anomaly.TCAP_OTHER_USER] == 1
    recs, st = decode([eth_m3ua(t, calling_ssn=200, called_ssn=201)], map_ssns=(200,))
    assert len(recs) == 1 and recs[0]["proto"] == "map"


def test_truncated_last_record_is_counted():
    data = P.pcap([eth_m3ua(UL_BEGIN), eth_m3ua(UL_BEGIN)])
    st = Stats()
    recs = decode_bytes(data[:-10], messages=True, stats=st)
    assert len(recs) == 1 and st.anomalies[Anomaly.CAP_TRUNCATED] == 1
