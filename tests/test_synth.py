"""The traffic generator: determinism, packet count, mixes, the user plane, the decoder over hours.
The generated captures are the `small` and `mixed` fixtures of tests/conftest.py."""
import collections
import struct

import pytest

pytest.importorskip("pycrate_asn1dir")

from touchpoint.probe import synth
from touchpoint.probe.synth.framing import _crc32c_batch
from tests.synth_captures import load_jsonl, pcap_frames, sha256_of, udp_payload


def test_same_seed_same_bytes(tmp_path):
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    ea, eb = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    sa = synth.generate(a, packets=1500, seed=42, subscribers=100, expected_path=ea)
    sb = synth.generate(b, packets=1500, seed=42, subscribers=100, expected_path=eb)
    assert sa == sb
    assert sha256_of(a) == sha256_of(b)
    assert ea.read_bytes() == eb.read_bytes()


def test_different_seed_different_bytes(tmp_path):
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    synth.generate(a, packets=500, seed=1, subscribers=50)
    synth.generate(b, packets=500, seed=2, subscribers=50)
    assert sha256_of(a) != sha256_of(b)


@pytest.mark.parametrize("mix", ["default", "map"])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 17, 1000])
def test_exact_packet_count(tmp_path, n, mix):
    p, e = tmp_path / "n.pcap", tmp_path / "n.jsonl"
    st = synth.generate(p, packets=n, seed=n, subscribers=20, expected_path=e, mix=synth.MIXES[mix])
    frames = pcap_frames(p.read_bytes())
    assert st["packets"] == n == len(frames) == sum(st["by_proto"].values())
    assert st["bytes"] == p.stat().st_size
    exp = load_jsonl(e)
    assert st["records"] == len(exp)
    if mix == "map":
        assert st["dialogues"] == len(exp)
    assert all(1 <= r["frame"] <= n for r in exp)
    assert [r["frame"] for r in exp] == sorted(r["frame"] for r in exp)
    ts = [t for t, _ in frames]
    assert ts == sorted(ts)


def test_timestamps_follow_rate(tmp_path):
    p = tmp_path / "r.pcap"
    synth.generate(p, packets=1001, seed=3, subscribers=20, rate_pps=500.0, start_ns=1_600_000_000_000_000_000)
    ts = [t for t, _ in pcap_frames(p.read_bytes())]
    assert ts[0] >= 1_600_000_000_000_000 and ts[0] < 1_600_000_000_003_000
    span = (ts[-1] - ts[0]) / 1e6
    assert 1.9 < span < 2.1                       # 1000 intervals of 2 ms, small jitter


def test_expected_records_shape(small):
    _, e, st = small
    exp = load_jsonl(e)
    assert len(exp) == st["dialogues"]
    frames = [r["frame"] for r in exp]
    assert frames == sorted(frames) and len(set(frames)) == len(frames)
    tids = [r["tid"] for r in exp]
    assert len(set(tids)) == len(tids)
    kinds = collections.Counter(r["kind"] for r in exp)
    ops = collections.Counter(r["op"] for r in exp)
    for op in (2, 3, 7, 22, 23, 43, 44, 45, 46, 56, 59, 67, 70, 71):
        assert ops[op] > 0, op
    assert kinds["mt_sms"] > ops[44]             # v2 forwardSM towards the handset
    flags = collections.Counter(tuple(r["flags"]) for r in exp)
    assert flags[("request", "response", "correlated")] > len(exp) * 0.8
    assert flags[("request", "abort")] > 0
    assert flags[("request", "timeout")] > 0
    assert flags[("request", "response", "error", "correlated")] > 0
    for r in exp:
        assert r["proto"] == "map"
        assert r["version"] in (1, 2, 3)
        if "error" in r["flags"]:
            assert r["cause"] in (1, 6)
        for k in ("imsi", "msisdn", "imei", "peer", "node"):
            if k in r:
                assert r[k] and all(c in "0123456789*#" for c in r[k]), (k, r)


def test_all_operations_across_mixes(tmp_path):
    p, e = tmp_path / "ss.pcap", tmp_path / "ss.jsonl"
    synth.generate(p, packets=600, seed=9, subscribers=40, mix=synth.SS_MIX, expected_path=e)
    ops = collections.Counter(r["op"] for r in load_jsonl(e))
    for op in (10, 11, 12, 13, 59, 70, 71):
        assert ops[op] > 0, op
    ss = [r for r in load_jsonl(e) if r["op"] in (10, 11, 12, 13)]
    assert {r["ss_code"] for r in ss} <= {0x21, 0x29, 0x2A, 0x2B}
    assert all("imsi" in r and "msisdn" in r for r in ss)


def test_frame_tcap_checksums():
    tcap = synth.encode_begin(56, synth.map_arg(56, 3, imsi="460001234567890"), ac=(14, 3),
                              otid=b"\x01\x02\x03\x04")
    for sccp in ("udt", "xudt", "ludt"):
        f = synth.frame_tcap(tcap, sccp=sccp)
        assert f[12:14] == b"\x08\x00"
        ip = f[14:34]
        s = sum(struct.unpack(">10H", ip))
        s = (s & 0xFFFF) + (s >> 16)
        assert (s + (s >> 16)) & 0xFFFF == 0xFFFF
        sctp = bytearray(f[34:])
        want = struct.unpack_from("<I", sctp, 8)[0]
        sctp[8:12] = b"\0\0\0\0"
        assert synth.crc32c(bytes(sctp)) == want
        assert tcap in f


def test_crc32c_known_value():
    assert synth.crc32c(b"123456789") == 0xE3069283
    msgs = [b"123456789", b"\x00" * 40, bytes(range(200)), b"abcd"]
    assert _crc32c_batch(msgs) == [synth.crc32c(m) for m in msgs]


def test_100k_packets(tmp_path):
    p = tmp_path / "big.pcap"
    st = synth.generate(p, packets=100_000, seed=1)
    assert st["packets"] == 100_000
    assert p.stat().st_size == st["bytes"]


# --- mixed traffic: GTP, CAP, ISUP, multi-part SMS, MMS ----------------------------

def test_default_mix_shares(tmp_path):
    """About 60 % of the packets SS7 (MAP, CAP, ISUP), 40 % GTP-C and GTP-U; every protocol there."""
    st = synth.generate(tmp_path / "x.pcap", packets=20_000, seed=3)
    by = st["by_proto"]
    assert set(by) == {"map", "cap", "isup", "gtpv1c", "gtpv2c", "gtpu"}
    ss7 = (by["map"] + by["cap"] + by["isup"]) / st["packets"]
    assert 0.55 < ss7 < 0.65, by
    assert by["gtpu"] > by["gtpv2c"] + by["gtpv1c"]


def test_map_mix_is_the_first_generator(tmp_path):
    """mix=MAP_MIX writes MAP dialogues only, and the goldens made that way have not moved
    (tests/test_goldens.py compares them byte for byte)."""
    st = synth.generate(tmp_path / "x.pcap", packets=2000, seed=4, mix=synth.MAP_MIX)
    assert st["by_proto"] == {"map": 2000}
    assert synth.GOLDENS["map_mixed_small"]["mix"] is synth.MAP_MIX


def test_unknown_scenario_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown scenario"):
        synth.generate(tmp_path / "x.pcap", packets=10, mix={"sai": 1, "gtpv3": 1})


def test_mixed_records(mixed):
    p, e, st = mixed
    exp = load_jsonl(e)
    assert len(exp) == st["records"]
    kinds = collections.Counter((r["proto"], r["kind"]) for r in exp)
    for k in (("gtpv2c", "session_create"), ("gtpv2c", "session_modify"), ("gtpv2c", "session_delete"),
              ("gtpv1c", "pdp_create"), ("gtpv1c", "pdp_delete"), ("gtpu", "data_usage"), ("cap", "call_attempt"),
              ("isup", "call_attempt"), ("cap", "call_end"), ("isup", "call_end"), ("map", "mms_notification"),
              ("map", "mt_sms"), ("map", "auth_info")):
        assert kinds[k] > 0, k
    for r in exp:
        if r["proto"] in ("gtpv2c", "gtpv1c"):
            assert r["flags"][:2] == ["request", "response"] and r["flags"][-1] == "correlated"
            assert ("error" in r["flags"]) == (r["cause"] >= (64 if r["proto"] == "gtpv2c" else 192))
            assert "imsi" in r and "msisdn" in r and "imei" in r
        if r["kind"] in ("session_create", "pdp_create"):
            assert r["apn"] in ("cmnet", "cmwap", "ims", "internet") and r["rat"] in (1, 2, 6)
        if r["proto"] == "isup" and r["kind"] == "call_end":
            answered = "answered" in r["flags"]
            assert answered == ("response" in r["flags"]) == ("duration_ms" in r)
            assert r["cause"] == 16 if answered else r["cause"] in (16, 17, 19)
            assert ("error" in r["flags"]) == (r["cause"] != 16)
        if r["kind"] == "call_attempt":
            assert r["flags"] == ["request"] and "cause" not in r
        if r["kind"] == "data_usage":
            assert r["packets"] > 0 and r["octets"] >= 40 * r["packets"] and r["op"] == 255 and r["flags"] == []
    usage = [r for r in exp if r["kind"] == "data_usage"]
    assert any(r["frame"] < st["packets"] for r in usage)          # periodic (60 s of capture time)
    assert any(r["frame"] == st["packets"] for r in usage)         # end of capture
    assert {r["event"] for r in exp if r["proto"] == "cap"} == {2, 3, 12}
    parts = [r for r in exp if r.get("parts")]
    assert parts and all(1 <= r["part"] <= r["parts"] for r in parts)


def test_user_plane_totals(mixed):
    """The data usage records add up to every G-PDU in the file, per TEID: packets and inner
    IP octets (read from the frames, not from the generator's model)."""
    p, e, _ = mixed
    pk, octets = collections.Counter(), collections.Counter()
    for _, f in pcap_frames(p.read_bytes()):
        u = udp_payload(f)
        if u and u[0] == 2152:
            g = u[1]
            assert g[:2] == b"\x30\xff" and struct.unpack_from(">H", g, 2)[0] == len(g) - 8
            teid = struct.unpack_from(">I", g, 4)[0]
            pk[teid] += 1
            octets[teid] += struct.unpack_from(">H", g, 10)[0]         # inner IPv4 total length
            assert struct.unpack_from(">H", g, 10)[0] == len(g) - 8
    rp, ro = collections.Counter(), collections.Counter()
    for r in load_jsonl(e):
        if r["kind"] == "data_usage":
            rp[r["tid"]] += r["packets"]
            ro[r["tid"]] += r["octets"]
    assert pk and rp == pk and ro == octets


def _decode_and_sort(p, e):
    pytest.importorskip("touchpoint.probe._decode")
    from touchpoint.probe.decode import decode_bytes
    from touchpoint.probe.format import to_dicts
    from tests.test_goldens import _key

    want = sorted(load_jsonl(e), key=_key)
    got = sorted(to_dicts(decode_bytes(p.read_bytes())), key=_key)
    assert [_key(r) for r in got] == [_key(r) for r in want]
    return got, want


def test_decoder_agrees_over_hours(tmp_path):
    """A capture spanning two hours (1 packet a second; every session shorter than an hour):
    periodic data usage, idle tunnels' counters reported by the decoder's sweep at the next
    packet, and everything else as the generator says."""
    from tests.test_goldens import IDENTITY

    p, e = tmp_path / "h.pcap", tmp_path / "h.jsonl"
    st = synth.generate(p, packets=7200, seed=21, subscribers=150, rate_pps=1.0, user_mtu=300, expected_path=e)
    got, want = _decode_and_sort(p, e)
    gpdu_frames = set()
    for i, (_, f) in enumerate(pcap_frames(p.read_bytes()), 1):
        u = udp_payload(f)
        if u and u[0] == 2152:
            gpdu_frames.add(i)
    idle = [r for r in want if r["kind"] == "data_usage" and r["frame"] not in gpdu_frames
            and r["frame"] != st["packets"]]
    assert idle                                        # reported because idle, not by a G-PDU
    for g, w in zip(got, want):
        for k, v in w.items():
            assert g.get(k) == v, (k, w, g)
        for k in IDENTITY:
            assert k in w or k not in g, (k, w, g)


def test_decoder_keeps_the_subscriber_of_a_long_session(tmp_path):
    """GTPv2 sessions one after the other, 500 s of capture time between packets: the Modify
    Bearer and Delete Session of a session older than an hour still name its subscriber
    (through the SGW's S11 tunnel of their header TEID)."""
    p, e = tmp_path / "l.pcap", tmp_path / "l.jsonl"
    synth.generate(p, packets=60, seed=2, subscribers=5, rate_pps=0.002, concurrency=1,
                   mix={"gtpv2_session": 1}, expected_path=e)
    got, want = _decode_and_sort(p, e)
    late = [(g, w) for g, w in zip(got, want) if w["kind"] == "session_delete"]
    assert late
    for g, w in late:
        assert g.get("imsi") == w["imsi"], (w, g)
