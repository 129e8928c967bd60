"""The traffic generator: determinism, packet count, and tshark as an independent reference."""
import collections
import hashlib
import json
import shutil
import struct
import subprocess

import pytest

pytest.importorskip("pycrate_asn1dir")

from probe import synth  # noqa: E402


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pcap_frames(data: bytes):
    """(ts_us, frame) of a classic little-endian pcap."""
    magic, _, _, _, _, _, link = struct.unpack_from("<IHHiIII", data, 0)
    assert magic == 0xA1B2C3D4 and link == 1
    pos, out = 24, []
    while pos < len(data):
        sec, usec, incl, orig = struct.unpack_from("<IIII", data, pos)
        assert incl == orig
        out.append((sec * 1_000_000 + usec, data[pos + 16:pos + 16 + incl]))
        pos += 16 + incl
    assert pos == len(data)
    return out


def _load(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    d = tmp_path_factory.mktemp("synth")
    p, e = d / "s.pcap", d / "s.expected.jsonl"
    st = synth.generate(p, packets=3000, seed=5, subscribers=200, expected_path=e)
    return p, e, st


def test_same_seed_same_bytes(tmp_path):
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    ea, eb = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    sa = synth.generate(a, packets=1500, seed=42, subscribers=100, expected_path=ea)
    sb = synth.generate(b, packets=1500, seed=42, subscribers=100, expected_path=eb)
    assert sa == sb
    assert _sha(a) == _sha(b)
    assert ea.read_bytes() == eb.read_bytes()


def test_different_seed_different_bytes(tmp_path):
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    synth.generate(a, packets=500, seed=1, subscribers=50)
    synth.generate(b, packets=500, seed=2, subscribers=50)
    assert _sha(a) != _sha(b)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 17, 1000])
def test_exact_packet_count(tmp_path, n):
    p, e = tmp_path / "n.pcap", tmp_path / "n.jsonl"
    st = synth.generate(p, packets=n, seed=n, subscribers=20, expected_path=e)
    frames = _pcap_frames(p.read_bytes())
    assert st["packets"] == n == len(frames)
    assert st["bytes"] == p.stat().st_size
    exp = _load(e)
    assert st["dialogues"] == len(exp)
    assert all(1 <= r["frame"] <= n for r in exp)
    ts = [t for t, _ in frames]
    assert ts == sorted(ts)


def test_timestamps_follow_rate(tmp_path):
    p = tmp_path / "r.pcap"
    synth.generate(p, packets=1001, seed=3, subscribers=20, rate_pps=500.0, start_ns=1_600_000_000_000_000_000)
    ts = [t for t, _ in _pcap_frames(p.read_bytes())]
    assert ts[0] >= 1_600_000_000_000_000 and ts[0] < 1_600_000_000_003_000
    span = (ts[-1] - ts[0]) / 1e6
    assert 1.9 < span < 2.1                       # 1000 intervals of 2 ms, small jitter


def test_expected_records_shape(small):
    _, e, st = small
    exp = _load(e)
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
    ops = collections.Counter(r["op"] for r in _load(e))
    for op in (10, 11, 12, 13, 59, 70, 71):
        assert ops[op] > 0, op
    ss = [r for r in _load(e) if r["op"] in (10, 11, 12, 13)]
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
    assert synth._crc32c_batch(msgs) == [synth.crc32c(m) for m in msgs]


def test_100k_packets(tmp_path):
    p = tmp_path / "big.pcap"
    st = synth.generate(p, packets=100_000, seed=1)
    assert st["packets"] == 100_000
    assert p.stat().st_size == st["bytes"]


# --- tshark as the independent reference ------------------------------------

TSHARK = shutil.which("tshark")
FIELDS = ("frame.number", "frame.protocols", "tcap.otid", "tcap.dtid", "tcap.p_abortCause",
          "tcap.application_context_name", "gsm_old.localValue", "e212.imsi", "e164.msisdn",
          "gsm_map.tbcd_digits", "gsm_sms.tp-oa", "gsm_sms.tp-da", "gsm_map.ussd_string",
          "gsm_map.ss.ss_Code", "sccp.digits", "_ws.malformed", "_ws.expert.severity",
          "ip.checksum.status", "sctp.checksum.status")


def _tshark(path):
    out = subprocess.run(
        [TSHARK, "-n", "-r", str(path), "-o", "ip.check_checksum:TRUE", "-o", "sctp.checksum:CRC-32C",
         "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|"] + [a for f in FIELDS for a in ("-e", f)],
        check=True, capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        cols = line.split("\t")
        cols += [""] * (len(FIELDS) - len(cols))
        rows.append({f: [x for x in c.split("|") if x] for f, c in zip(FIELDS, cols)})
    return rows


@pytest.mark.skipif(TSHARK is None, reason="tshark not installed")
def test_tshark_decodes_every_packet(small):
    p, e, st = small
    rows = _tshark(p)
    assert len(rows) == st["packets"]
    for r in rows:
        n = r["frame.number"][0]
        protos = r["frame.protocols"][0].split(":")
        assert protos[:6] == ["eth", "ethertype", "ip", "sctp", "m3ua", "sccp"], n
        assert "tcap" in protos, n
        if not r["tcap.p_abortCause"]:
            assert "gsm_map" in protos, n
        assert not r["_ws.malformed"], n
        assert not r["_ws.expert.severity"], (n, r["_ws.expert.severity"])
        assert r["ip.checksum.status"] == ["1"] and r["sctp.checksum.status"] == ["1"], n


@pytest.mark.skipif(TSHARK is None, reason="tshark not installed")
def test_tshark_agrees_with_expectations(small):
    p, e, _ = small
    rows = _tshark(p)
    exp = _load(e)
    by_tid = {r["tid"]: r for r in exp}
    frames = collections.defaultdict(list)          # dialogue tid -> tshark rows
    for r in rows:
        tids = {int(t.replace(":", ""), 16) for t in r["tcap.otid"] + r["tcap.dtid"]}
        owner = [t for t in tids if t in by_tid]
        assert len(owner) == 1, r["frame.number"]
        frames[owner[0]].append(r)
    assert set(frames) == set(by_tid)

    begin_ops = collections.Counter()
    for tid, x in by_tid.items():
        fr = frames[tid]
        nums = [int(r["frame.number"][0]) for r in fr]
        begin = fr[0]
        assert begin["tcap.otid"] and not begin["tcap.dtid"]
        op = int(begin["gsm_old.localValue"][0])
        begin_ops[op] += 1
        assert op == x["op"]
        if "timeout" in x["flags"]:
            assert nums == [x["frame"]]
        else:
            assert nums[-1] == x["frame"]
        if "abort" in x["flags"]:
            assert fr[-1]["tcap.p_abortCause"]
        acn = begin["tcap.application_context_name"]
        if x["version"] >= 2:
            assert acn and int(acn[0].split(".")[-1]) == x["version"]
        else:
            assert not acn
        seen = {k: set() for k in FIELDS}
        for r in fr:
            for k in FIELDS:
                seen[k].update(r[k])
        assert seen["e212.imsi"] == ({x["imsi"]} if "imsi" in x else set()), x
        numbers = seen["e164.msisdn"] | seen["sccp.digits"]
        if "msisdn" in x:
            assert x["msisdn"] in seen["e164.msisdn"], x
        if "node" in x:
            assert x["node"] in numbers, x
        if "imei" in x:
            assert x["imei"] in seen["gsm_map.tbcd_digits"], x
        if "ss_code" in x:
            assert {int(c) for c in seen["gsm_map.ss.ss_Code"]} == {x["ss_code"]}
        if "peer" in x:
            if x["kind"] == "mt_sms":
                assert seen["gsm_sms.tp-oa"] == {x["peer"]}
            elif x["kind"] == "mo_sms":
                assert seen["gsm_sms.tp-da"] == {x["peer"]}
            elif x["kind"] == "ussd":
                # tshark shows the CR padding of 7-spare-bit strings (TS 23.038) as "\\r"
                assert x["peer"] in {u.replace("\\r", "") for u in seen["gsm_map.ussd_string"]}
            else:
                assert x["peer"] in numbers, x
    assert begin_ops == collections.Counter(x["op"] for x in exp)


@pytest.mark.skipif(TSHARK is None, reason="tshark not installed")
def test_tshark_operation_statistics(small):
    """tshark's own MAP statistics count the invokes we expect."""
    p, e, _ = small
    out = subprocess.run([TSHARK, "-n", "-q", "-z", "gsm_map,operation", "-r", str(p)],
                         check=True, capture_output=True, text=True).stdout
    invokes = {}
    for line in out.splitlines():
        cols = [c.strip() for c in line.split("|")]
        if len(cols) > 3 and cols[0].isdigit():
            invokes[int(cols[0])] = int(cols[2])
    exp = _load(e)
    want = collections.Counter(r["op"] for r in exp)
    want[7] += sum(1 for r in exp if r["op"] == 2 and "response" in r["flags"])   # ISD inside UL
    for op, n in want.items():
        assert invokes.get(op) == n, (op, invokes.get(op), n)


def test_pycrate_decodes_every_generated_message(tmp_path):
    """pycrate (the reference) reads back every patched template as a valid TCAP/MAP message."""
    from pycrate_asn1dir import TCAP_MAPv2v3
    t = TCAP_MAPv2v3.TCAP_MAP_Messages.TCAP_MAP_Message
    p, e = tmp_path / "p.pcap", tmp_path / "p.jsonl"
    synth.generate(p, packets=400, seed=13, subscribers=50, expected_path=e, failures=0.1)
    imsis = set()
    for _, f in _pcap_frames(p.read_bytes()):
        plen = struct.unpack_from(">H", f, 72)[0]          # M3UA Protocol Data length
        sccp = f[86:70 + plen]
        assert sccp[0] == 0x09                              # UDT
        at = 4 + sccp[4]
        tcap = sccp[at + 1:at + 1 + sccp[at]]
        assert len(tcap) == sccp[at] and at + 1 + len(tcap) == len(sccp)
        t.from_ber(tcap)
        assert t.to_ber() == tcap                            # canonical: what pycrate would encode
        kind, v = t.get_val()
        for c in v.get("components", []):
            x = c[1][1]
            prm = x.get("argument") or (x.get("result") or {}).get("result")
            if prm and isinstance(prm[1], dict) and isinstance(prm[1].get("imsi"), bytes):
                imsis.add(prm[1]["imsi"].hex())
    want = {synth.tbcd(r["imsi"]).hex() for r in _load(e) if "imsi" in r}
    assert imsis and imsis <= want
