"""Robustness: truncated captures, truncated layers, random bytes, every capture format.

(a) every prefix of a small capture decodes without an exception (a CaptureError only when it
    names the byte offset), counts CAP_TRUNCATED exactly when the cut is inside a record and
    keeps every record of the packets before the cut;
(b) each layer of one packet cut at every length, the layers below fixed up to agree (pcap
    caplen, IP total length, SCTP chunk length, M3UA length, SCCP data length, BER lengths) so
    the cut is seen at the layer under test: no crash, an anomaly of that layer whose byte offset
    lies inside the packet at or after the start of that layer;
(c) random bytes substituted in every layer of several packets (seeded, a few thousand cases), in
    a subprocess so that a crash or a hang is reported, not fatal: no exception but CaptureError,
    and a clean packet after the damaged one still decodes;
(d) pcap (µs/ns, both byte orders) and pcapng (both byte orders, two interfaces of different
    link types) give the same records.
The atheris harness is tests/fuzz_decode.py (run by test_atheris_harness when atheris is there).
"""
import json
import os
import random
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from touchpoint.probe.decode import ANOMALY_INFO, CaptureError, Stats, decode_bytes
from touchpoint.probe.format import to_dicts
from tests import packets as P
from tests import gtp_messages as gtp_builders

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = ROOT.parent / "shared" / "pcaps-public"

IMSI, MSISDN, VLR, MSC, HLR = "460001234567890", "8613812345678", "8613900001", "8613900002", "8613900009"
UL_ARG = P.ber(0x30, P.ber(0x04, P.tbcd(IMSI)) + P.ber(0x81, P.address(MSC)) + P.ber(0x04, P.address(VLR)))
ISD_ARG = P.ber(0x30, P.ber(0x80, P.tbcd(IMSI)) + P.ber(0x81, P.address(MSISDN)))
UL_RES = P.ber(0x30, P.ber(0x04, P.address(HLR)))
SRI_SM_ARG = P.ber(0x30, P.ber(0x80, P.address(MSISDN)) + P.ber(0x81, b"\x01") + P.ber(0x82, P.address(HLR)))

# Small bounded tables: a decoder with the default ones costs ~2 ms to set up, these ~0.1 ms.
SMALL = dict(max_dialogues=256, max_tunnels=256, capacity=1024)

HLR_SIDE = dict(calling_gt="8613900000001", called_gt="8613800000001", calling_ssn=6, called_ssn=7)


def tcap_begin(otid=0x11223344, arg=UL_ARG, op=2):
    return P.tcap("begin", P.invoke(1, op, arg), otid=otid, dlg=P.dialogue(1, 3))


def tcap_continue(otid=0x55667788, dtid=0x11223344):
    return P.tcap("continue", P.invoke(2, 7, ISD_ARG), otid=otid, dtid=dtid)


def tcap_end(dtid=0x11223344):
    return P.tcap("end", P.result(1, 2, UL_RES), dtid=dtid)


def eth_m3ua(tcap_bytes, **sccp_kw):
    return P.ether(P.ipv4(P.sctp(P.data_chunk(P.m3ua(P.sccp_map(tcap_bytes, **sccp_kw))))))


def dialogue_frames():
    """Begin (updateLocation), Continue (insertSubscriberData), End (result): 3 records in messages mode."""
    return [eth_m3ua(tcap_begin()), eth_m3ua(tcap_continue(), **HLR_SIDE), eth_m3ua(tcap_end(), **HLR_SIDE)]


# --- capture writers that also say where each record ends ---------------------------------------

def pcap_with_bounds(frames, linktype=1):
    data = P.pcap(frames, linktype)
    bounds, pos = [0, 24], 24
    for f in frames:
        pos += 16 + len(f)
        bounds.append(pos)
    return data, bounds


def _block(e, btype, body):
    body += b"\x00" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)


def pcapng(frames, ifaces=(1,), which=None, big=False, t0=1_700_000_000, with_bounds=False):
    """pcapng: SHB, one IDB per link type in ifaces, one EPB per frame (on interface which[i]).

    Timestamps in microseconds (default if_tsresol), the same as P.pcap's."""
    e = ">" if big else "<"
    blocks = [_block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1))]
    for lt in ifaces:
        blocks.append(_block(e, 1, struct.pack(e + "HHI", lt, 0, 262144)))
    for i, f in enumerate(frames):
        ts = (t0 + i) * 1_000_000 + 123
        ifid = which[i] if which else 0
        blocks.append(_block(e, 6, struct.pack(e + "IIIII", ifid, ts >> 32, ts & 0xFFFFFFFF, len(f), len(f)) + f))
    data = b"".join(blocks)
    if not with_bounds:
        return data
    bounds, pos = [0], 0
    for b in blocks:
        pos += len(b)
        bounds.append(pos)
    return data, bounds


def records(data, **kw):
    st = Stats()
    return decode_bytes(data, messages=True, stats=st, **SMALL, **kw), st


def layer_of(anomaly) -> str:
    return ANOMALY_INFO[anomaly.value][0]


OFFSET = re.compile(r"at byte \d+")


def read_pcap_frames(path: Path, numbers):
    """Frames (1-based numbers) of a classic little-endian µs pcap, raw bytes."""
    data = path.read_bytes()
    assert struct.unpack("<I", data[:4])[0] == 0xA1B2C3D4
    pos, i, out = 24, 0, {}
    want = set(numbers)
    while pos + 16 <= len(data) and want - out.keys():
        caplen = struct.unpack("<I", data[pos + 8:pos + 12])[0]
        i += 1
        if i in want:
            out[i] = data[pos + 16:pos + 16 + caplen]
        pos += 16 + caplen
    return [out[n] for n in numbers]


def real_frames():
    """A USSD invoke (M2UA) and two SRI-SM results (M3UA) from the public captures, if present."""
    ussd, out = PUBLIC / "velyfw_gsm_map_with_ussd_string.pcap", PUBLIC / "velyfw_output.pcap"
    if not (ussd.is_file() and out.is_file()):
        return []
    return read_pcap_frames(ussd, [1]) + read_pcap_frames(out, [5, 7])


# --- (a) every prefix of the capture ------------------------------------------------------------

def _captures():
    frames = dialogue_frames()
    caps = [("pcap", *pcap_with_bounds(frames)),
            ("pcapng-le", *pcapng(frames, with_bounds=True)),
            ("pcapng-be", *pcapng(frames, big=True, with_bounds=True))]
    real = real_frames()
    if real:
        caps.append(("public", *pcap_with_bounds(real)))
    return caps


@pytest.mark.parametrize("name,data,bounds", _captures(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_prefix_of_the_capture(name, data, bounds):
    full, _ = records(data)
    assert len(full) >= 3
    # records of the packets wholly inside each prefix: decode each packet-boundary prefix
    at_bound = {}
    for b in bounds:
        at_bound[b] = len(records(data[:b])[0])
    assert at_bound[bounds[-1]] == len(full)
    problems = []
    for n in range(len(data) + 1):
        st = Stats()
        try:
            recs = decode_bytes(data[:n], messages=True, stats=st, **SMALL)
        except CaptureError as e:
            if not OFFSET.search(str(e)):
                problems.append(f"{n}: CaptureError without a byte offset: {e}")
            continue
        except Exception as e:  # noqa: BLE001 - the point of the test
            problems.append(f"{n}: {type(e).__name__}: {e}")
            continue
        truncated = sum(v for a, v in st.anomalies.items() if a.name == "CAP_TRUNCATED")
        inside = n not in at_bound
        if inside and not truncated:
            problems.append(f"{n}: cut inside a record but no CAP_TRUNCATED ({dict(st.anomalies)})")
        if not inside and truncated:
            problems.append(f"{n}: cut on a record boundary counted CAP_TRUNCATED")
        before = max(b for b in bounds if b <= n)
        if len(recs) != at_bound[before]:
            problems.append(f"{n}: {len(recs)} records, the {bounds.index(before)} whole blocks before the cut "
                            f"give {at_bound[before]}")
    assert not problems, f"{name}: {len(problems)} problems, first: " + "\n".join(problems[:10])


def test_corrupt_header_names_the_offset():
    data = P.pcap(dialogue_frames())
    with pytest.raises(CaptureError, match=r"at byte 0"):
        decode_bytes(b"\xde\xad\xbe\xef" + data[4:])
    # an impossible record length in the second record header
    second = 24 + 16 + len(dialogue_frames()[0])
    bad = bytearray(data)
    bad[second + 8:second + 16] = struct.pack("<II", 0x7FFFFFF0, 0x7FFFFFF0)
    st = Stats()
    try:
        recs = decode_bytes(bytes(bad), messages=True, stats=st)
    except CaptureError as e:
        assert OFFSET.search(str(e)), e
    else:
        assert any(a.name.startswith("CAP_") for a in st.anomalies), st.anomalies
        assert len(recs) >= 1


# --- (b) one layer cut at every length ----------------------------------------------------------

def build_cut(layer, k):
    """The updateLocation Begin with `layer` cut to k bytes and everything around it consistent.

    Returns (frame, start of the layer under test in the frame, length of that layer's bytes)."""
    inner = UL_ARG[2:]
    if layer == "map":                                  # an element of the argument cut, SEQUENCE length fixed
        inner = inner[:k]
    param = P.ber(0x30, inner)
    tc = P.tcap("begin", P.invoke(1, 2, param), otid=0x11223344, dlg=P.dialogue(1, 3))
    parts = {"map": inner}
    for name, build in (("tcap", None), ("sccp", P.sccp_map), ("m3ua", P.m3ua),
                        ("sctp", lambda m: P.sctp(P.data_chunk(m))), ("ip", P.ipv4), ("link", P.ether)):
        if build is not None:
            tc = build(tc)
        if name == layer:
            tc = tc[:k]
        parts[name] = tc
    frame = tc
    start = frame.find(parts[layer]) if parts[layer] else len(frame)
    if layer == "map":
        start = frame.find(param)
    assert start >= 0
    return frame, start, len(parts[layer])


def _full_len(layer):
    if layer == "map":
        return len(UL_ARG) - 2
    if layer == "link":
        return 14                                   # Ethernet has no length: a cut after 14 bytes is the IP's
    return build_cut(layer, 1 << 20)[2]


# Layers that may report a cut: by design (ip.pxi) an IPv4 total length beyond the captured bytes
# is clamped and the layer that then runs out (SCTP) reports it.
MAY_REPORT = {"link": {"link"}, "ip": {"ip", "sctp"}, "sctp": {"sctp"}, "m3ua": {"m3ua"}, "sccp": {"sccp"},
              "tcap": {"tcap"}, "map": {"map"}}


def _map_element_bounds():
    """Offsets in the UpdateLocationArg contents where an element ends (a cut there is valid BER)."""
    inner, pos, out = UL_ARG[2:], 0, {0}
    while pos < len(inner):
        pos += 2 + inner[pos + 1]
        out.add(pos)
    return out


@pytest.mark.parametrize("layer", ["link", "ip", "sctp", "m3ua", "sccp", "tcap", "map"])
def test_layer_cut_at_every_length(layer):
    problems = []
    element_ends = _map_element_bounds()
    n = _full_len(layer)
    assert n > 0
    for k in range(n):
        frame, start, _ = build_cut(layer, k)
        st = Stats()
        try:
            recs = to_dicts(decode_bytes(P.pcap([frame]), messages=True, stats=st, **SMALL))
        except Exception as e:  # noqa: BLE001 - any exception is the failure this test reports
            problems.append(f"k={k}: {type(e).__name__}: {e}")
            continue
        seen = [(a, off) for (_src, _frame, a, off) in st.recent if a.name != "TCAP_TIMEOUT"]
        at_layer = [(a, off) for a, off in seen if layer_of(a) in MAY_REPORT[layer]]
        issues = []
        lower = [f"{a.name}@{off}" for a, off in seen if layer_of(a) not in MAY_REPORT[layer]]
        if lower:
            issues.append(f"anomaly at another layer: {lower}")
        if layer == "map" and k in element_ends:
            # valid BER with mandatory elements missing: tolerated; the invoke must still be there
            if not (len(recs) == 1 and recs[0]["op"] == 2):
                issues.append(f"element boundary: want the invoke record, got {recs}")
        else:
            if not at_layer:
                issues.append(f"no {'/'.join(sorted(MAY_REPORT[layer]))} anomaly")
            for a, off in at_layer:
                if not start <= off <= len(frame):
                    issues.append(f"{a.name} at byte {off}, outside [{start}, {len(frame)}] (the {layer} bytes)")
            if layer == "map" and not (len(recs) == 1 and recs[0]["op"] == 2 and "partial" in recs[0]["flags"]):
                issues.append(f"want one partial updateLocation invoke record, got {recs}")
        if issues:
            problems.append(f"k={k}: " + "; ".join(issues))
    assert not problems, f"{layer}: {len(problems)} of {n} cuts wrong:\n" + "\n".join(problems[:12])


# GTP-C over TCP: a TCP header and the messages of its segment cut at every length.
GTPV2 = gtp_builders.csr(seq=7)
GTPV1 = gtp_builders.gtpv1(16, gtp_builders.tv(2, P.tbcd(IMSI)) + gtp_builders.tv(20, b"\x05"), seq=8)


@pytest.mark.parametrize("msgs", [GTPV2, GTPV2 + GTPV1], ids=["v2", "v2+v1"])
def test_gtp_over_tcp_cut_at_every_length(msgs):
    """The segment (TCP header, then GTP-C messages back to back) cut at every length, the IP
    length fixed up: the messages wholly inside decode; a cut in the TCP header is counted at the
    ip layer, a cut message as split at the gtp layer, each at an offset inside its layer."""
    seg = P.tcp(msgs, 40000, 2123, seq=1000)
    ends = [20 + len(GTPV2), 20 + len(msgs)]
    problems = []
    for k in range(len(seg) + 1):
        frame = P.ether(P.ipv4(seg[:k], proto=6))
        st = Stats()
        recs = to_dicts(decode_bytes(P.pcap([frame]), messages=True, stats=st, **SMALL))
        seen = {(a.name, off) for (_src, _frame, a, off) in st.recent if a.name != "GTP_TIMEOUT"}
        whole = sum(1 for e in set(ends) if e <= k)
        if k < 4:
            want = {("IP_NOT_SIGNALING", 34)}                   # no ports: not TCP for us
        elif k < 20:
            want = {("IP_TCP_TRUNCATED", 34)}
        elif k == 20:
            want = {("IP_NOT_SIGNALING", 34)}                   # a segment without data
        elif k in ends:
            want = set()
        else:
            want = {("GTP_TCP_SPLIT", 34 + 20 + (ends[0] - 20 if k > ends[0] else 0))}
        if seen != want or len(recs) != whole:
            problems.append(f"k={k}: {len(recs)} records (want {whole}), {sorted(seen)} (want {sorted(want)})")
    assert not problems, "\n".join(problems[:12])


# --- (c) random bytes in every layer, in a subprocess -------------------------------------------

def _stacks():
    """Packets with the byte range of each layer: (name, frame, linktype, {layer: (start, end)})."""
    out = []

    def add(name, frame, linktype, layers):
        regions = {}
        for layer, part in layers.items():
            i = frame.find(part)
            assert i >= 0, (name, layer)
            regions[layer] = (i, i + len(part))
        out.append((name, frame, linktype, regions))

    for name, tc, arg in (("begin", tcap_begin(), UL_ARG), ("continue", tcap_continue(), ISD_ARG),
                          ("end", tcap_end(), UL_RES), ("sri_sm", tcap_begin(0x01020304, SRI_SM_ARG, 45), SRI_SM_ARG)):
        sccp = P.sccp_map(tc)
        m3ua = P.m3ua(sccp)
        sctp = P.sctp(P.data_chunk(m3ua))
        ip = P.ipv4(sctp)
        frame = P.ether(ip)
        add(name, frame, 1, {"link": frame[:14], "ip": ip, "sctp": sctp, "m3ua": m3ua, "sccp": sccp, "tcap": tc,
                             "map": arg})
    tc = tcap_begin(0x0A0B0C0D)
    sccp = P.xudt(P.sccp_address("8613900000001", 6), P.sccp_address("8613800000001", 7), tc)
    mtp3 = P.mtp3(sccp)
    m2ua = P.m2ua(mtp3)
    sctp = P.sctp(P.data_chunk(m2ua, ppid=2))
    ip = P.ipv6(sctp)
    frame = P.sll(ip, 0x86DD)
    add("m2ua-ipv6-sll-xudt", frame, 113, {"link": frame[:16], "ip": ip, "sctp": sctp, "m2ua": m2ua, "mtp3": mtp3,
                                            "sccp": sccp, "tcap": tc})
    mtp3 = P.mtp3(P.sccp_map(tcap_begin(0x0E0F1011)))
    m2pa = P.m2pa(mtp3)
    sctp = P.sctp(P.data_chunk(m2pa, ppid=5))
    frame = P.ipv4(sctp)
    add("m2pa-rawip", frame, 101, {"ip": frame, "sctp": sctp, "m2pa": m2pa, "mtp3": mtp3})
    for name, gtpc in (("gtpv2-tcp", GTPV2 + GTPV1), ("gtpv1-tcp", GTPV1)):
        tcp = P.tcp(gtpc, 40000, 2123, seq=1000)
        ip = P.ipv4(tcp, proto=6)
        frame = P.ether(ip)
        add(name, frame, 1, {"link": frame[:14], "ip": ip, "tcp": tcp[:20], "gtp": gtpc})
    for i, f in enumerate(real_frames()):
        add(f"public{i}", f, 1, {"link": f[:14], "packet": f})
    return out


def fuzz_worker(seed: int, per_layer: int) -> dict:
    """Mutate every layer of every stack per_layer times; decode each alone and followed by a clean
    Begin. Prints 'C <i>' before each case (a crash names its case), then 'RESULT <json>'."""
    rng = random.Random(seed)
    clean = eth_m3ua(tcap_begin(0x7E7E7E7E))
    bad, lost, cases = [], [], 0
    for name, frame, linktype, regions in _stacks():
        for layer, (a, b) in regions.items():
            for _ in range(per_layer):
                f = bytearray(frame)
                mode = rng.randrange(4)
                if mode == 0:                                   # a few random bytes
                    for _ in range(rng.randint(1, 4)):
                        f[rng.randrange(a, b)] = rng.randrange(256)
                elif mode == 1:                                 # a run of random bytes
                    i = rng.randrange(a, b)
                    j = min(b, i + rng.randint(1, 16))
                    f[i:j] = bytes(rng.randrange(256) for _ in range(j - i))
                elif mode == 2:                                 # length-ish extremes
                    f[rng.randrange(a, b)] = rng.choice((0x00, 0x01, 0x7F, 0x80, 0x81, 0x82, 0x84, 0xFF))
                else:                                           # one bit
                    i = rng.randrange(a, b)
                    f[i] ^= 1 << rng.randrange(8)
                cases += 1
                print(f"C {cases} {name} {layer} {mode}", flush=True)
                for frames in ([bytes(f)], [bytes(f), clean] if linktype == 1 else None):
                    if frames is None:
                        continue
                    st = Stats()
                    try:
                        recs = decode_bytes(P.pcap(frames, linktype), messages=True, stats=st, **SMALL)
                    except CaptureError as e:
                        if not OFFSET.search(str(e)):
                            bad.append([cases, name, layer, f"CaptureError without offset: {e}"])
                        continue
                    except Exception as e:  # noqa: BLE001 - any exception is the failure this test reports
                        bad.append([cases, name, layer, f"{type(e).__name__}: {e}", bytes(f).hex()])
                        continue
                    if len(frames) == 2:
                        tids = [int(t) for t, fr in zip(recs["tid"], recs["frame"]) if fr == 2]
                        if 0x7E7E7E7E not in tids:
                            lost.append([cases, name, layer, bytes(f).hex()])
    result = {"cases": cases, "bad": bad[:20], "nbad": len(bad), "lost": lost[:20], "nlost": len(lost)}
    print("RESULT " + json.dumps(result), flush=True)
    return result


def test_random_bytes_in_every_layer():
    per_layer = 200
    proc = subprocess.run(
        [sys.executable, "-c", f"from tests.test_fuzz import fuzz_worker; fuzz_worker(7, {per_layer})"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = proc.stdout.splitlines()
    last = next((ln for ln in reversed(lines) if ln.startswith("C ")), "none")
    assert proc.returncode == 0, f"worker died ({proc.returncode}) at case {last}: {proc.stderr[-2000:]}"
    result = json.loads(next(ln for ln in lines if ln.startswith("RESULT "))[7:])
    assert result["cases"] >= 2000
    assert result["nbad"] == 0, result["bad"]
    assert result["nlost"] == 0, f"a damaged packet made the next clean one disappear: {result['lost'][:5]}"


# --- (d) every capture format gives the same records --------------------------------------------

def _same(a, b):
    assert len(a) == len(b) and len(a) > 0
    assert a.tobytes() == b.tobytes(), (to_dicts(a)[:2], to_dicts(b)[:2])


def test_capture_formats_give_the_same_records():
    frames = dialogue_frames()
    ref, st = records(P.pcap(frames))
    assert len(ref) == 3 and not [a for a in st.anomalies if a.name != "TCAP_TIMEOUT"]
    for kw in (dict(nsec=True), dict(swap=True), dict(nsec=True, swap=True)):
        _same(ref, records(P.pcap(frames, **kw))[0])
    # pcapng, two interfaces with different link types: Ethernet and raw IPv4 / Linux SLL
    raw = [f[14:] for f in frames]                      # the IPv4 packets
    for big in (False, True):
        _same(ref, records(pcapng(frames, big=big))[0])
        mixed = [frames[0], raw[1], frames[2]]
        _same(ref, records(pcapng(mixed, ifaces=(1, 101), which=[0, 1, 0], big=big))[0])
        sll = [P.sll(raw[0]), frames[1], P.sll(raw[2])]
        _same(ref, records(pcapng(sll, ifaces=(113, 1), which=[0, 1, 0], big=big))[0])


# --- the atheris harness, for ~20 s -------------------------------------------------------------

def test_atheris_harness(tmp_path):
    pytest.importorskip("atheris")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "dialogue.pcap").write_bytes(P.pcap(dialogue_frames()))
    (corpus / "dialogue.pcapng").write_bytes(pcapng(dialogue_frames(), big=True))
    (corpus / "packet").write_bytes(b"\x01\x00" + dialogue_frames()[0])
    for i, f in enumerate(real_frames()):
        (corpus / f"public{i}").write_bytes(b"\x01\x00" + f)
    seconds = int(os.environ.get("TOUCHPOINT_FUZZ_SECONDS", "12"))
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "fuzz_decode.py"), f"-max_total_time={seconds}",
                           "-timeout=10", f"-artifact_prefix={tmp_path}/", "-print_final_stats=1", str(corpus)],
                          cwd=ROOT, capture_output=True, text=True, timeout=seconds + 60)
    tail = (proc.stdout + proc.stderr)[-3000:]
    assert proc.returncode == 0, f"atheris found a failure (artifacts in {tmp_path}):\n{tail}"
    m = re.search(r"stat::number_of_executed_units:\s*(\d+)", proc.stderr)
    assert m and int(m.group(1)) > 1000, tail
