"""GTP-C over TCP through the decoder: messages back to back, split across segments,
retransmitted; flows forgotten, garbage, a bounded flow table."""
import random

import pytest

pytest.importorskip("touchpoint.probe._decode")

from touchpoint.probe.decode import Anomaly
from tests import packets as P
from tests.gtp_messages import (
    IMSI, MME, SESSION, SGW, V1_EXT, V1_FULL, V2_FULL, control, corrupt, csr, csresp, decode, frame, gtpv1,
    tcp_frame, tv,
)

# ---- GTP-C over TCP ------------------------------------------------------------
#
# GTP-C is UDP (TS 29.274 4.2, TS 29.060 4.4), but TCP to port 2123 is seen (a PcapPlusPlus
# test packet among the public captures). Each direction of a connection is a stream of
# messages back to back; tshark 4.0 dissects only the first message of a segment (and its
# piggybacked one), does not reassemble, and does not dissect a retransmitted segment.

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
        msg = corrupt(rng, rng.choice(seeds))
        if rng.random() < 0.2:
            seq -= rng.randrange(200)                        # retransmissions and overlaps
        frames.append(tcp_frame(msg, MME, SGW, seq, sport=40000 + i % 3, flags=rng.choice((0x18, 0x18, 0x02, 0x11))))
        seq += len(msg) if rng.random() < 0.9 else rng.randrange(1 << 32)
    for messages in (False, True):
        recs, st = decode(frames, messages=messages, max_dialogues=64)
        assert st.frames == len(frames)
        assert set(r["proto"] for r in recs) <= {"gtpv1c", "gtpv2c"}

