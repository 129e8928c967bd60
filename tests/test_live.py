"""`touchpoint probe --iface`: live capture on a real veth pair in a network namespace made here.

tcpreplay sends captures into one end (tpa), the probe captures on the other (tpb) and pushes
to `touchpoint tap` over ipc (a file: it crosses network namespaces). The records must be those
of `touchpoint decode` on the same file, every field but ts_ns (the capture time is now),
duration_ms (a call's, from those times) and frame (the packet count of the worker that
decoded it).

Time-outs: the probe's clock is the capture's, and tcpreplay --topspeed packs a capture's
minutes into milliseconds, so what the decoder emits on a capture-time schedule would differ.
Dialogue time-outs (600 s) are longer than the captures, so on both sides open dialogues go
out as timed out at the end (end of file; the probe's SIGINT); data usage is reported every
3,600 s of capture time on both sides, that is at the end too.

Skipped, with the reason, where the namespace cannot be made (not root, no CAP_SYS_ADMIN, no
veth) or `ip`/`tcpreplay` is missing. The namespace goes away after the tests, failed or not.
"""
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from touchpoint.control.cli import main
from touchpoint.probe import bpf

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = [ROOT / "pcaps" / n for n in ("mixed_small.pcap", "map_mixed_small.pcap", "map_ss_ussd.pcap")]
CLI = [
    sys.executable,
    "-c",
    "import sys; sys.path.insert(0, sys.argv.pop(1)); from touchpoint.control.cli import run; run()",
    str(ROOT),
]
DECODER = ["--usage-interval", "3600"]
TIMEOUT = 30


# --- the namespace -------------------------------------------------------------------------------

def sh(*cmd, check=True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def netns():
    """A network namespace with a veth pair tpa <-> tpb, both up: the name."""
    for tool in ("ip", "tcpreplay"):
        if not shutil.which(tool):
            pytest.skip(f"`{tool}` is not installed (Debian: iproute2, tcpreplay)")
    if not sys.platform.startswith("linux"):
        pytest.skip("AF_PACKET live capture is Linux only")
    name = f"tp-live-{os.getpid()}"
    made = sh("ip", "netns", "add", name, check=False)
    if made.returncode:
        pytest.skip(f"cannot create a network namespace: {made.stderr.strip()}")
    try:
        veth = sh("ip", "-n", name, "link", "add", "name", "tpa", "type", "veth", "peer", "name", "tpb", check=False)
        if veth.returncode:
            pytest.skip(f"cannot create a veth pair: {veth.stderr.strip()}")
        for end in ("tpa", "tpb"):
            sh("ip", "-n", name, "link", "set", end, "mtu", "9000", "up")
        yield name
    finally:
        sh("ip", "netns", "del", name, check=False)


# --- helpers -------------------------------------------------------------------------------------

def pcap_packets(path: Path) -> int:
    data = path.read_bytes()
    assert struct.unpack("<I", data[:4])[0] == 0xA1B2C3D4, f"{path}: classic little-endian pcap expected"
    n, pos = 0, 24
    while pos + 16 <= len(data):
        pos += 16 + struct.unpack_from("<I", data, pos + 8)[0]
        n += 1
    return n


def comparable(line: str) -> str:
    d = json.loads(line)
    d.pop("ts_ns")
    d.pop("frame")
    d.pop("duration_ms", None)
    return json.dumps(d, sort_keys=True)


def decoded(path: Path, *args) -> list:
    res = CliRunner().invoke(main, ["decode", "--format", "jsonl", *DECODER, *args, str(path)])
    assert res.exit_code == 0, res.output
    return sorted(comparable(line) for line in res.stdout.splitlines())


class Live:
    """One probe run on tpb inside the namespace, pushing to a tap outside it."""

    def __init__(self, ns: str, tmp: Path, *probe_args):
        self.ns, self.tmp = ns, tmp
        ep = f"ipc://{tmp}/tap.sock"
        self.tap_out = open(tmp / "tap.out", "w+")
        self.tap = subprocess.Popen(CLI + ["tap", "--listen", ep, "--format", "jsonl", "--expect-eos", "1"],
                                    stdout=self.tap_out, stderr=subprocess.PIPE, text=True)
        assert "listening on" in self.tap.stderr.readline()
        self.stats_path = tmp / "probe.json"
        self.err = open(tmp / "probe.err", "w+")
        self.probe = subprocess.Popen(["ip", "netns", "exec", ns] + CLI + [
            "probe", "--iface", "tpb", "--push", ep, "--status-interval", "0.2", "--stats-json",
            str(self.stats_path), *DECODER, *probe_args], stdout=subprocess.DEVNULL, stderr=self.err)
        self.wait_for(lambda st: True, "the probe to start capturing")

    def stats(self) -> dict | None:
        try:
            return json.loads(self.stats_path.read_text())
        except (OSError, ValueError):
            return None

    def wait_for(self, cond, what: str) -> dict:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            st = self.stats()
            if st is not None and cond(st):
                return st
            if self.probe.poll() is not None:
                break
            time.sleep(0.05)
        self.kill()
        self.err.seek(0)
        pytest.fail(f"waiting for {what}: {self.err.read()[-2000:]}")

    def send(self, path: Path) -> None:
        rx = self.rx_packets()
        res = sh("ip", "netns", "exec", self.ns, "tcpreplay", "-q", "--topspeed", "-i", "tpa", str(path), check=False)
        assert res.returncode == 0, res.stdout + res.stderr
        # What went on the wire, to tell a probe that counts twice from packets that came twice.
        sent = re.search(r"Successful packets:\s+(\d+)", res.stdout)
        self.wire = {"tcpreplay_sent": int(sent[1]) if sent else None, "tpb_rx": self.rx_packets() - rx}

    def rx_packets(self) -> int:
        out = sh("ip", "-n", self.ns, "-s", "-j", "link", "show", "tpb").stdout
        return json.loads(out)[0]["stats64"]["rx"]["packets"]

    def stop(self, packets: int) -> tuple:
        """Once the probe decoded `packets`, SIGINT: (records, stats, probe stderr)."""
        self.wait_for(lambda st: st["packets"] >= packets, f"{packets} packets")
        time.sleep(0.3)                                         # anything beyond: counted below
        self.probe.send_signal(signal.SIGINT)
        code = self.probe.wait(TIMEOUT)
        _, tap_err = self.tap.communicate(timeout=TIMEOUT)
        self.err.seek(0)
        err = self.err.read()
        assert code == 0, err
        assert self.tap.returncode == 0, tap_err
        self.tap_out.seek(0)
        records = sorted(comparable(line) for line in self.tap_out.read().splitlines())
        stats = self.stats()
        stats["wire"] = getattr(self, "wire", None)
        return records, stats, err

    def kill(self) -> None:
        for p in (self.probe, self.tap):
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.fixture
def live(netns, tmp_path):
    runs = []

    def start(*args) -> Live:
        runs.append(Live(netns, tmp_path, *args))
        return runs[-1]

    yield start
    for r in runs:
        r.kill()


def assert_no_drops(stats: dict, err: str, packets: int) -> None:
    cap = stats["capture"]
    assert stats["packets"] == packets == cap["kernel_packets"], (stats["packets"], packets, cap, stats["wire"])
    assert cap["kernel_drops"] == 0 and cap["ring_full"] == 0, cap
    assert "kernel drops 0 (ring full 0)" in err and "drops: none" in err, err


# --- live capture equals decode ------------------------------------------------------------------

@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_live_capture_gives_the_records_of_decode(live, path):
    run = live()
    run.send(path)
    records, stats, err = run.stop(pcap_packets(path))
    assert records == decoded(path)
    assert_no_drops(stats, err, pcap_packets(path))
    assert "stopped in" in err and "acknowledged by 1/1 shards" in err


def test_two_workers_share_the_packets_by_flow(live):
    """--workers 2: the MAP dialogues are exactly those of decode; GTP-U tunnels count the same
    packets and bytes, but a tunnel whose user plane hashes to the other worker than its GTP-C
    session has no subscriber (README: what --workers costs)."""
    path = ROOT / "pcaps" / "mixed_small.pcap"
    run = live("--workers", "2")
    run.send(path)
    records, stats, err = run.stop(pcap_packets(path))
    assert_no_drops(stats, err, pcap_packets(path))
    assert all(n > 0 for n in stats["capture"]["worker_packets"]), stats["capture"]
    want = decoded(path)

    def split(lines):
        usage, other = Counter(), []
        for line in lines:
            d = json.loads(line)
            if d["kind"] == "data_usage":
                usage[(d["tid"], d["dst"], "packets")] += d["packets"]
                usage[(d["tid"], d["dst"], "octets")] += d["octets"]
            else:
                other.append(line)
        return usage, other

    got_usage, got_other = split(records)
    want_usage, want_other = split(want)
    assert got_other == want_other
    assert got_usage == want_usage


def test_two_workers_give_the_map_dialogues_of_decode(live):
    path = ROOT / "pcaps" / "map_mixed_small.pcap"
    run = live("--workers", "2")
    run.send(path)
    records, stats, err = run.stop(pcap_packets(path))
    assert records == decoded(path)
    assert_no_drops(stats, err, pcap_packets(path))


def test_a_full_ring_drops_in_the_kernel_and_the_drops_are_counted(live):
    """A stopped probe (SIGSTOP) with a one-block ring: the kernel drops what does not fit and
    says so; captured + dropped = sent, and the probe goes on when it continues."""
    path = ROOT / "pcaps" / "mixed_small.pcap"
    rounds = 40
    run = live("--ring-mb", "1")
    run.probe.send_signal(signal.SIGSTOP)
    try:
        res = sh("ip", "netns", "exec", run.ns, "tcpreplay", "-q", "--topspeed", f"--loop={rounds}", "-i", "tpa",
                 str(path), check=False)
        assert res.returncode == 0, res.stdout + res.stderr
    finally:
        run.probe.send_signal(signal.SIGCONT)
    sent = rounds * pcap_packets(path)
    st = run.wait_for(lambda st: st["capture"]["kernel_packets"] == sent and
                      st["packets"] == sent - st["capture"]["kernel_drops"], "the kernel's count of all packets")
    _, stats, err = run.stop(st["packets"])
    cap = stats["capture"]
    assert cap["kernel_drops"] > 0 and cap["ring_full"] > 0, cap
    assert stats["packets"] + cap["kernel_drops"] == sent == cap["kernel_packets"]
    assert f"kernel drops {cap['kernel_drops']:,} (ring full {cap['ring_full']:,})" in err


# --- the fanout group: no packet twice -----------------------------------------------------------

# Run inside the namespace (a ring binds to the namespace's tpb): two rings in one fanout group,
# as LiveCapture opens them for --workers 2. A packet socket receives from bind() on, and a member
# receives on its own until it joins the group, so packets sent in that window would reach both
# members; the rings keep nothing until set_filter(), called once both have joined.
FANOUT_SCRIPT = r"""
import json, subprocess, sys, time
sys.path.insert(0, sys.argv[1])
from touchpoint.probe import _ring, bpf
pcap = sys.argv[2]

def send():
    subprocess.run(["tcpreplay", "-q", "--topspeed", "-i", "tpa", pcap], check=True, capture_output=True)

def collect(rings, buf):
    for _ in range(10):                     # blocks retire after retire_ms: wait for them
        for r in rings:
            _ring.gather([r], buf, 50)
    return [r.stats() for r in rings]

founder = _ring.NEW_GROUP if sys.argv[3] == "new" else int(sys.argv[3])
a = _ring.Ring("tpb", ring_bytes=4 << 20, retire_ms=10, fanout=founder)
send()                                      # a member alone, before the other joins
b = _ring.Ring("tpb", ring_bytes=4 << 20, retire_ms=10, fanout=a.fanout_id)
send()                                      # both joined, no filter set yet
buf = bytearray(8 << 20)
before = collect([a, b], buf)
for r in (a, b):
    r.set_filter(bpf.default_filter())
send()
after = collect([a, b], buf)
print(json.dumps({"group": a.fanout_id, "joined": b.fanout_id, "before": before, "after": after}))
"""


@pytest.mark.parametrize("founder", ["new", "0"])
def test_a_packet_reaches_one_member_of_the_fanout_group_once(netns, founder):
    """A group the kernel numbers (as --workers founds one), and group 0: the kernel hands out
    unique ids from a counter that starts at 0 at boot, so on a fresh machine the first group a
    probe founds is 0, and its second worker must join 0, not found a group of its own (that
    was the 800 packets of a 400-packet capture: two groups of one, each with every packet)."""
    path = ROOT / "pcaps" / "mixed_small.pcap"
    res = sh("ip", "netns", "exec", netns, sys.executable, "-c", FANOUT_SCRIPT, str(ROOT), str(path), founder,
             check=False)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert got["joined"] == got["group"] and (founder == "new" or got["group"] == 0), got
    for st in got["before"]:
        assert st["kernel_packets"] == st["packets"] == 0, got["before"]
    sent = pcap_packets(path)
    assert sum(st["kernel_packets"] for st in got["after"]) == sent, got["after"]
    assert sum(st["packets"] for st in got["after"]) == sent, got["after"]
    assert all(st["packets"] > 0 for st in got["after"]), got["after"]


# --- the filter and bad packets ------------------------------------------------------------------

def odd_packets(tmp_path) -> tuple:
    """(pcap of packets the default filter keeps - garbage for the decoder - and ones it drops,
    how many it keeps)."""
    from scapy.all import ARP, ICMP, IP, UDP, Dot1Q, Ether, IPv6, Raw, wrpcap
    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    keep = [
        e / IP(src="192.0.2.1", dst="192.0.2.2", proto=132) / Raw(b"\x0b\x59\x0b\x59\x00\x00\x00"),  # SCTP cut short
        e / IP(src="192.0.2.1", dst="192.0.2.2", proto=132, ihl=15) / Raw(b"\x00" * 8),  # IHL past the end
        e / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=2123, dport=2123) / Raw(b"\xff" * 12),  # not GTP
        e / Dot1Q(vlan=7) / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=40000, dport=2152) / Raw(b"\x00" * 9),
        e / Dot1Q(vlan=7) / Dot1Q(vlan=8) / IP(src="192.0.2.1", dst="192.0.2.2", proto=132) / Raw(b"\x00" * 5),
        e / IPv6(src="2001:db8::1", dst="2001:db8::2", nh=132) / Raw(b"\x00" * 5),
        e / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=2123, dport=40000) / Raw(b"\x00" * 3),
        e / IP(src="192.0.2.1", dst="192.0.2.2", proto=17, flags=0, frag=100) / Raw(b"\x00" * 16),  # a fragment
    ]
    drop = [
        e / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=5353, dport=53) / Raw(b"\x00" * 12),
        e / Dot1Q(vlan=7) / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=5353, dport=53),
        e / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=5353, dport=53),
        e / IP(src="192.0.2.1", dst="192.0.2.2") / ICMP(),
        Ether(src="02:00:00:00:00:01", dst="ff:ff:ff:ff:ff:ff") / ARP(pdst="192.0.2.2"),
    ]
    path = tmp_path / "odd.pcap"
    wrpcap(str(path), drop[:2] + keep[:4] + drop[2:] + keep[4:])
    return path, len(keep)


def test_garbage_on_the_wire_is_counted_not_fatal_and_the_default_filter_keeps_the_decoders_packets(live, tmp_path):
    odd, kept = odd_packets(tmp_path)
    path = ROOT / "pcaps" / "map_ss_ussd.pcap"
    run = live()
    run.send(odd)
    run.send(path)
    run.send(odd)
    total = pcap_packets(path) + 2 * kept
    records, stats, err = run.stop(total)
    assert records == decoded(path)
    assert_no_drops(stats, err, total)
    garbage = Counter(stats["anomalies"]) - decode_anomalies(path)
    assert sum(garbage.values()) == 2 * kept, garbage       # one anomaly each (the fragment: held)


def decode_anomalies(path: Path) -> Counter:
    from touchpoint.probe.decode import Stats, decode_file
    st = Stats()
    for _ in decode_file(path, stats=st):
        pass
    return Counter({a.name: n for a, n in st.anomalies.items()})


@pytest.mark.skipif(bpf.libpcap() is None, reason="libpcap is not installed (Debian: libpcap0.8)")
def test_a_bpf_expression_selects_what_is_captured(live):
    """--bpf 'udp port 2152': the GTP-U packets only, so only data usage records."""
    from scapy.all import UDP, rdpcap
    path = ROOT / "pcaps" / "mixed_small.pcap"
    gtpu = sum(1 for p in rdpcap(str(path)) if UDP in p and 2152 in (p[UDP].sport, p[UDP].dport))
    assert 0 < gtpu < pcap_packets(path)
    run = live("--bpf", "udp port 2152")
    run.send(path)
    records, stats, err = run.stop(gtpu)
    assert_no_drops(stats, err, gtpu)
    assert stats["capture"]["filter"] == "udp port 2152"
    kinds = Counter(json.loads(r)["kind"] for r in records)
    assert set(kinds) == {"data_usage"}, kinds


# --- usage errors (no namespace needed) ----------------------------------------------------------

@pytest.mark.parametrize("group", [-2, 0x10000])
def test_a_fanout_group_id_is_16_bits(group):
    _ring = pytest.importorskip("touchpoint.probe._ring")
    with pytest.raises(ValueError, match="an id is 0 to 65535"):
        _ring.Ring("lo", fanout=group)


def test_a_missing_interface_is_a_usage_error():
    res = CliRunner().invoke(main, ["probe", "--iface", "tp-no-such0", "--push", "ipc:///tmp/tp-none.sock"])
    assert res.exit_code == 2
    assert "--iface" in res.output and "tp-no-such0: No such device" in res.output


@pytest.mark.skipif(bpf.libpcap() is None, reason="libpcap is not installed (Debian: libpcap0.8)")
def test_a_bad_filter_expression_is_a_usage_error():
    res = CliRunner().invoke(main, ["probe", "--iface", "lo", "--bpf", "udp prot 5", "--push",
                                    "ipc:///tmp/tp-none.sock"])
    assert res.exit_code == 2, res.output
    assert "--bpf" in res.output and "'udp prot 5'" in res.output and "syntax error" in res.output


def test_bpf_needs_a_live_interface():
    res = CliRunner().invoke(main, ["probe", "--pcap", str(SAMPLES[0]), "--bpf", "udp", "--push",
                                    "ipc:///tmp/tp-none.sock"])
    assert res.exit_code == 2 and "--bpf filters live capture" in res.output


def test_the_default_filter_is_a_valid_classic_bpf_program():
    prog = bpf.default_filter((2123,), (2152, 3386))
    assert len(prog) % 8 == 0 and 16 < len(prog) // 8 < 256
    code, jt, jf, k = struct.unpack_from("=HBBI", prog, len(prog) - 8)
    assert (code, k) == (0x06, bpf.KEEP)                     # ends in: keep the packet
    for i in range(len(prog) // 8):                            # every jump lands inside the program
        code, jt, jf, k = struct.unpack_from("=HBBI", prog, 8 * i)
        if code & 0x07 == 0x05:
            assert i + 1 + max(jt, jf) < len(prog) // 8
