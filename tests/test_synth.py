"""The traffic generator: determinism, packet count, and tshark as an independent reference."""
import collections
import hashlib
import json
import shutil
import struct
import subprocess

import pytest

pytest.importorskip("pycrate_asn1dir")

from touchpoint.probe import synth  # noqa: E402
from touchpoint.probe.synth.framing import _crc32c_batch  # noqa: E402
from touchpoint.probe.synth.templates import _bcd_text  # noqa: E402


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
    """MAP only (MAP_MIX): the first generator's traffic."""
    d = tmp_path_factory.mktemp("synth")
    p, e = d / "s.pcap", d / "s.expected.jsonl"
    st = synth.generate(p, packets=3000, seed=5, subscribers=200, expected_path=e, mix=synth.MAP_MIX)
    return p, e, st


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """The default mix, slow enough (10 packets a second) for periodic data usage records."""
    d = tmp_path_factory.mktemp("synth_mixed")
    p, e = d / "m.pcap", d / "m.expected.jsonl"
    st = synth.generate(p, packets=3000, seed=7, subscribers=200, rate_pps=10.0, expected_path=e)
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


@pytest.mark.parametrize("mix", ["default", "map"])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 17, 1000])
def test_exact_packet_count(tmp_path, n, mix):
    p, e = tmp_path / "n.pcap", tmp_path / "n.jsonl"
    st = synth.generate(p, packets=n, seed=n, subscribers=20, expected_path=e, mix=synth.MIXES[mix])
    frames = _pcap_frames(p.read_bytes())
    assert st["packets"] == n == len(frames) == sum(st["by_proto"].values())
    assert st["bytes"] == p.stat().st_size
    exp = _load(e)
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
    assert _crc32c_batch(msgs) == [synth.crc32c(m) for m in msgs]


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
    synth.generate(p, packets=400, seed=13, subscribers=50, expected_path=e, failures=0.1, mix=synth.MAP_MIX)
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


# --- mixed traffic: GTP, CAP, ISUP, multi-part SMS, MMS ----------------------------

def _udp_payload(f: bytes):
    """(dport, payload) of an Ethernet/IPv4/UDP frame, or None."""
    if f[12:14] != b"\x08\x00" or f[23] != 17:
        return None
    ihl = (f[14] & 0xF) * 4
    u = 14 + ihl
    return struct.unpack_from(">H", f, u + 2)[0], f[u + 8:]


def _m3ua_user(f: bytes):
    """(SI, user data) of an Ethernet/IPv4/SCTP/M3UA DATA frame."""
    plen = struct.unpack_from(">H", f, 72)[0]
    return f[82], f[86:70 + plen]


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
    exp = _load(e)
    assert len(exp) == st["records"]
    kinds = collections.Counter((r["proto"], r["kind"]) for r in exp)
    for k in (("gtpv2c", "session_create"), ("gtpv2c", "session_modify"), ("gtpv2c", "session_delete"),
              ("gtpv1c", "pdp_create"), ("gtpv1c", "pdp_delete"), ("gtpu", "data_usage"), ("cap", "call_attempt"),
              ("isup", "call_attempt"), ("map", "mms_notification"), ("map", "mt_sms"), ("map", "auth_info")):
        assert kinds[k] > 0, k
    for r in exp:
        if r["proto"] in ("gtpv2c", "gtpv1c"):
            assert r["flags"][:2] == ["request", "response"] and r["flags"][-1] == "correlated"
            assert ("error" in r["flags"]) == (r["cause"] >= (64 if r["proto"] == "gtpv2c" else 192))
            assert "imsi" in r and "msisdn" in r and "imei" in r
        if r["kind"] in ("session_create", "pdp_create"):
            assert r["apn"] in ("cmnet", "cmwap", "ims", "internet") and r["rat"] in (1, 2, 6)
        if r["proto"] == "isup":
            answered = "response" in r["flags"]
            assert r["cause"] == 16 if answered else r["cause"] in (16, 17, 19)
            assert ("error" in r["flags"]) == (r["cause"] != 16)
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
    for _, f in _pcap_frames(p.read_bytes()):
        u = _udp_payload(f)
        if u and u[0] == 2152:
            g = u[1]
            assert g[:2] == b"\x30\xff" and struct.unpack_from(">H", g, 2)[0] == len(g) - 8
            teid = struct.unpack_from(">I", g, 4)[0]
            pk[teid] += 1
            octets[teid] += struct.unpack_from(">H", g, 10)[0]         # inner IPv4 total length
            assert struct.unpack_from(">H", g, 10)[0] == len(g) - 8
    rp, ro = collections.Counter(), collections.Counter()
    for r in _load(e):
        if r["kind"] == "data_usage":
            rp[r["tid"]] += r["packets"]
            ro[r["tid"]] += r["octets"]
    assert pk and rp == pk and ro == octets


def test_pycrate_reads_every_mixed_message(mixed):
    """pycrate parses every GTP-C, GTP-U header, ISUP and TCAP (CAP, MAP) message back
    to the same octets: the patched templates are still what pycrate would encode."""
    import pycrate_mobile.TS29060_GTP as G1
    import pycrate_mobile.TS29274_GTPC as G2
    import pycrate_mobile.TS29281_GTPU as GU
    from pycrate_asn1dir import TCAP_CAP, TCAP_MAPv2v3
    from pycrate_mobile import ISUP
    cap = TCAP_CAP.TCAP_CAP_Messages.TCAP_CAP_Message
    tmap = TCAP_MAPv2v3.TCAP_MAP_Messages.TCAP_MAP_Message
    p, _, st = mixed
    seen = collections.Counter()
    for _, f in _pcap_frames(p.read_bytes()):
        u = _udp_payload(f)
        if u is not None:
            port, g = u
            if port == 2152:
                m, err = GU.parse_GTPU(g)
                assert err == 0 and m[0]["TEID"].get_val() == struct.unpack_from(">I", g, 4)[0]
                seen["gtpu"] += 1
            elif g[0] >> 5 == 2:
                m, err = G2.parse_GTPC(g)
                assert err == 0 and m.to_bytes() == g
                seen["gtpv2c"] += 1
            else:
                m, err = G1.parse_GTP(g)
                assert err == 0 and m.to_bytes() == g
                seen["gtpv1c"] += 1
            continue
        si, user = _m3ua_user(f)
        if si == 5:
            m = ISUP.ISUPTypeClasses[user[2]]()
            m.from_bytes(user)
            assert m.to_bytes() == user
            seen["isup"] += 1
        else:
            at = 4 + user[4]
            tcap = user[at + 1:at + 1 + user[at]]
            ssn = user[2 + user[2] + 2]                        # called party: length, indicator, SSN
            t = cap if ssn == synth.SSN_CAP else tmap
            t.from_ber(tcap)
            assert t.to_ber() == tcap
            seen["cap" if ssn == synth.SSN_CAP else "map"] += 1
    assert seen == collections.Counter(st["by_proto"])


MIX_FIELDS = (
    "frame.number", "frame.protocols", "_ws.malformed", "_ws.expert.severity", "ip.checksum.status",
    "sctp.checksum.status", "ip.len", "ip.dst", "gtp.message", "gtp.teid", "gtp.seq_number", "gtp.cause",
    "gtp.apn", "gtp.ext_imeisv", "gtp.ext_rat_type", "gtp.lac", "gtp.cgi_ci", "gtp.teid_data", "gtp.teid_cp",
    "gtpv2.message_type", "gtpv2.teid", "gtpv2.seq", "gtpv2.cause", "gtpv2.mei", "gtpv2.apn", "gtpv2.rat_type",
    "gtpv2.tai_tac", "gtpv2.ecgi_eci", "gtpv2.f_teid_interface_type", "gtpv2.f_teid_gre_key", "e212.imsi",
    "e164.msisdn", "e212.tai.mcc", "e212.tai.mnc", "e212.cgi.mcc", "e212.cgi.mnc", "tcap.otid", "tcap.dtid",
    "camel.local", "camel.serviceKey", "camel.eventTypeBCSM", "camel.calledPartyBCDNumber", "isup.cic",
    "isup.message_type", "isup.called", "isup.calling", "isup.cause_indicator",
    "isup.called_party_nature_of_address_indicator", "gsm_sms.tp-oa", "gsm_sms.tp-dcs",
    "gsm_sms.udh.mm.msg_parts", "gsm_sms.udh.mm.msg_part", "gsm_sms.destination_port", "mmse.from",
    "mmse.message_size", "gsm_old.localValue", "tcap.p_abortCause")


@pytest.fixture(scope="module")
def mixed_tshark(mixed):
    if TSHARK is None:
        pytest.skip("tshark not installed")
    p, _, _ = mixed
    out = subprocess.run(
        [TSHARK, "-n", "-r", str(p), "-o", "ip.check_checksum:TRUE", "-o", "sctp.checksum:CRC-32C",
         "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|"] + [a for f in MIX_FIELDS for a in ("-e", f)],
        check=True, capture_output=True, text=True).stdout
    rows = {}
    for line in out.splitlines():
        cols = line.split("\t")
        cols += [""] * (len(MIX_FIELDS) - len(cols))
        r = {f: [x for x in c.split("|") if x] for f, c in zip(MIX_FIELDS, cols)}
        rows[int(r["frame.number"][0])] = r
    return rows


def _one(r, f, conv=str):
    assert len(r[f]) == 1, (r["frame.number"], f, r[f])
    return conv(r[f][0])


def _hex(x):
    return int(x, 0)


def test_tshark_decodes_every_mixed_packet(mixed, mixed_tshark):
    """Every packet of every protocol decodes in tshark, with no malformed or expert item and
    good checksums (the IPv4 headers inside G-PDUs too)."""
    _, _, st = mixed
    rows = mixed_tshark
    assert len(rows) == st["packets"]
    seen = collections.Counter()
    for n, r in rows.items():
        protos = r["frame.protocols"][0].split(":")
        assert not r["_ws.malformed"], n
        assert not r["_ws.expert.severity"], (n, r["_ws.expert.severity"])
        assert r["ip.checksum.status"] and set(r["ip.checksum.status"]) == {"1"}, n
        if protos[3] == "sctp":
            assert r["sctp.checksum.status"] == ["1"], n
            if protos[5] == "isup":
                seen["isup"] += 1
            else:
                assert protos[5:7] == ["sccp", "tcap"], (n, protos)
                if r["tcap.p_abortCause"]:                  # a MAP dialogue's Abort: TCAP only
                    assert len(protos) == 7, n
                    seen["map"] += 1
                else:
                    assert protos[7] in ("gsm_map", "camel"), (n, protos)
                    seen["cap" if protos[7] == "camel" else "map"] += 1
        else:
            assert protos[3:5] == ["udp", "gtp"], (n, protos)
            if r["gtpv2.message_type"]:
                assert protos[5:] == ["gtpv2"], (n, protos)
                seen["gtpv2c"] += 1
            elif _one(r, "gtp.message", _hex) == 0xFF:
                assert protos[5:] == ["ip", "udp", "data"], (n, protos)
                seen["gtpu"] += 1
            else:
                assert _one(r, "gtp.message", _hex) in (0x10, 0x11, 0x14, 0x15), n
                seen["gtpv1c"] += 1
    assert seen == collections.Counter(st["by_proto"])


def _apn_ni(apn: str) -> str:
    return apn.split(".mnc")[0]


def test_tshark_agrees_on_gtp(mixed, mixed_tshark):
    """Each GTP-C record against tshark's fields of its request and response; the subscriber
    of Modify Bearer / Delete Session / Delete PDP Context and of every data usage record
    followed through the TEIDs as tshark shows them (header TEIDs and F-TEIDs)."""
    _, e, st = mixed
    rows = mixed_tshark
    exp = _load(e)
    v2, v1, gpdu = {}, {}, []                        # (type, seq) -> [frame]; G-PDU frames
    for n, r in sorted(rows.items()):
        if r["gtpv2.message_type"]:
            v2.setdefault((_one(r, "gtpv2.message_type", int), _one(r, "gtpv2.seq", _hex)), []).append(n)
        elif r["gtp.message"]:
            t = _one(r, "gtp.message", _hex)
            if t == 0xFF:
                gpdu.append(n)
            else:
                v1.setdefault((t, _one(r, "gtp.seq_number", _hex)), []).append(n)

    def pair(table, op, seq, frame):
        resp = [n for n in table[(op + 1, seq)] if n == frame]
        req = [n for n in table[(op, seq)] if n < frame]
        assert resp and req, (op, seq, frame)
        return rows[req[-1]], rows[resp[0]]

    owner = {}                                        # TEID announced -> IMSI, as tshark shows them
    checked = collections.Counter()
    for x in sorted(exp, key=lambda r: r["frame"]):
        if x["proto"] == "gtpv2c":
            q, a = pair(v2, x["op"], x["tid"], x["frame"])
            assert int(a["gtpv2.cause"][0]) == x["cause"]        # the message's (then the bearer's)
            if x["op"] == 32:
                assert _one(q, "e212.imsi") == x["imsi"] and _one(q, "e164.msisdn") == x["msisdn"]
                assert _one(q, "gtpv2.mei") == x["imei"] and _apn_ni(_one(q, "gtpv2.apn")) == x["apn"]
                assert _one(q, "gtpv2.rat_type", int) == x["rat"]
                who = x["imsi"]
                for t in q["gtpv2.f_teid_gre_key"] + a["gtpv2.f_teid_gre_key"]:
                    owner[_hex(t)] = who
            else:
                assert not q["e212.imsi"]                 # only the tunnel names the subscriber
                who = owner[_one(q, "gtpv2.teid", _hex)]
                assert who == x["imsi"]
                for t in q["gtpv2.f_teid_gre_key"]:
                    owner[_hex(t)] = who
            if "loc_type" in x:
                assert (_one(q, "gtpv2.tai_tac", _hex), _one(q, "gtpv2.ecgi_eci", int)) == (x["lac_tac"], x["cell"])
                assert (_one(q, "e212.tai.mcc", int), _one(q, "e212.tai.mnc", int)) == (int(x["mcc"]), int(x["mnc"]))
            checked["gtpv2c"] += 1
        elif x["proto"] == "gtpv1c":
            q, a = pair(v1, x["op"], x["tid"], x["frame"])
            assert _one(a, "gtp.cause", int) == x["cause"]
            if x["op"] == 16:
                assert _one(q, "e212.imsi") == x["imsi"] and _one(q, "e164.msisdn") == x["msisdn"]
                assert _one(q, "gtp.ext_imeisv") == x["imei"] and _apn_ni(_one(q, "gtp.apn")) == x["apn"]
                assert _one(q, "gtp.ext_rat_type", int) == x["rat"]
                assert _one(q, "gtp.cgi_ci", int) == x["cell"] and x["lac_tac"] in {int(v) for v in q["gtp.lac"]}
                for t in q["gtp.teid_data"] + q["gtp.teid_cp"] + a["gtp.teid_data"] + a["gtp.teid_cp"]:
                    owner[_hex(t)] = x["imsi"]
            else:
                assert not q["e212.imsi"] and owner[_one(q, "gtp.teid", _hex)] == x["imsi"]
            checked["gtpv1c"] += 1
    # data usage: per TEID, the G-PDUs since the tunnel's previous record
    last = collections.defaultdict(int)
    for x in sorted((r for r in exp if r["kind"] == "data_usage"), key=lambda r: r["frame"]):
        teid = x["tid"]
        mine = [n for n in gpdu if last[teid] < n <= x["frame"] and _one(rows[n], "gtp.teid", _hex) == teid]
        assert len(mine) == x["packets"], x
        assert sum(int(rows[n]["ip.len"][1]) for n in mine) == x["octets"], x
        assert owner[teid] == x["imsi"], x
        last[teid] = x["frame"]
        checked["data_usage"] += 1
    assert checked["gtpv2c"] and checked["gtpv1c"] and checked["data_usage"]


def test_tshark_agrees_on_cap_isup_sms(mixed, mixed_tshark):
    """CAP InitialDP, ISUP calls, multi-part MT SMS and MMS notifications against tshark."""
    _, e, _ = mixed
    rows = mixed_tshark
    exp = _load(e)
    begins = {}
    for n, r in rows.items():
        for t in r["tcap.otid"]:
            if not r["tcap.dtid"]:
                begins[int(t.replace(":", ""), 16)] = r
    checked = collections.Counter()
    for x in exp:
        if x["proto"] == "cap":
            b = begins[x["tid"]]
            assert b["camel.local"] == ["0"]
            assert _one(b, "camel.serviceKey", int) == x["service_key"]
            assert _one(b, "camel.eventTypeBCSM", int) == x["event"]
            assert _one(b, "e212.imsi") == x["imsi"]
            called = b["isup.called"] or [_bcd_text(b["camel.calledPartyBCDNumber"][0])]
            if x["event"] == 12:
                assert (called, b["isup.calling"]) == ([x["msisdn"]], [x["peer"]])
            else:
                assert (called, b["isup.calling"]) == ([x["peer"]], [x["msisdn"]])
            assert x["node"] in b["e164.msisdn"]
            if "nai" in x:
                assert _one(b, "isup.called_party_nature_of_address_indicator", int) == x["nai"]
            assert "24" in rows[x["frame"]]["camel.local"]       # the End: eventReportBCSM
            checked["cap"] += 1
        elif x["proto"] == "isup":
            rel = rows[x["frame"]]
            assert _one(rel, "isup.message_type", int) == 12 and _one(rel, "isup.cic", int) == x["tid"]
            assert _one(rel, "isup.cause_indicator", int) == x["cause"]
            call = [n for n in range(1, x["frame"]) if rows[n]["isup.cic"] == [str(x["tid"])]]
            iam = max(n for n in call if rows[n]["isup.message_type"] == ["1"])
            assert rows[iam]["isup.called"] == [x["peer"]] and rows[iam]["isup.calling"] == [x["msisdn"]]
            assert _one(rows[iam], "isup.called_party_nature_of_address_indicator", int) == x["nai"]
            answered = any(rows[n]["isup.message_type"] == ["9"] for n in call if n > iam)
            assert answered == ("response" in x["flags"])
            checked["isup"] += 1
        elif x["kind"] == "mt_sms" and "parts" in x:
            b = begins[x["tid"]]
            assert _one(b, "e212.imsi") == x["imsi"] and _one(b, "gsm_sms.tp-oa") == x["peer"]
            assert (_one(b, "gsm_sms.udh.mm.msg_parts", int), _one(b, "gsm_sms.udh.mm.msg_part", int)) == \
                (x["parts"], x["part"])
            assert _one(b, "gsm_sms.tp-dcs", int) == x.get("sms_dcs", 0)
            checked["concat"] += 1
        elif x["kind"] == "mms_notification":
            b = begins[x["tid"]]
            assert _one(b, "e212.imsi") == x["imsi"]
            assert _one(b, "mmse.from") == "+" + x["peer"] + "/TYPE=PLMN"
            assert _one(b, "mmse.message_size", int) == x["octets"]
            assert _one(b, "gsm_sms.destination_port", int) == x["app_port"] == 2948
            assert _one(b, "gsm_sms.tp-dcs", int) == x["sms_dcs"] == 4
            checked["mms"] += 1
    assert checked["cap"] and checked["isup"] and checked["concat"] and checked["mms"]


def _decode_and_sort(p, e):
    pytest.importorskip("touchpoint.probe._decode")
    from touchpoint.probe.decode import decode_bytes
    from touchpoint.probe.format import to_dicts
    from tests.test_goldens import _key

    want = sorted(_load(e), key=_key)
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
    for i, (_, f) in enumerate(_pcap_frames(p.read_bytes()), 1):
        u = _udp_payload(f)
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
