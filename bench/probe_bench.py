#!/usr/bin/env python3
"""Probe benchmark: a capture replayed at --speed max through `touchpoint probe` -> ZeroMQ (tcp on
loopback) -> `touchpoint tap --count` in another process.

    python3 bench/probe_bench.py                         # 1,000,000-packet mixed capture
    python3 bench/probe_bench.py --packets 200000        # smaller
    python3 bench/probe_bench.py --input capture.pcap    # any capture
    python3 bench/probe_bench.py --shards 2 --messages   # two shards into one tap; a record per component

Prints, in records per second:
  1. decode alone: `decode_file` into a discarded sink in this process (best of --repeat);
  2. end to end: `touchpoint probe --lossless` in one process, `tap --count` in another, from the
     probe's start (after its imports) to the tap's acknowledgement of the end of stream, as the
     probe's --stats-json reports it (best of --repeat); and with interpreter start-up (the wall
     time of the probe process);
  3. the probe's own decode rate: records over the time the probe spent in its capture source
     (reading and decoding) during that end-to-end run;
and the transport's share: the part of the end-to-end time not spent reading and decoding
(sharding, batching and queueing in the capture thread; then draining the queues, the end of
stream and its acknowledgement).
Target: >= 800,000 records/s end to end on the 2-core machine this was written on.

    python3 bench/probe_bench.py --live                  # live capture on a veth pair (root)
    python3 bench/probe_bench.py --live --pps 50000,100000,200000 --workers 2 --limit 500000

--live: in a network namespace made for the run, a veth pair; tcpreplay sends the capture into
one end, at each --pps step and then --topspeed, while `touchpoint probe --iface` captures on
the other end and pushes to `tap --count` (ipc). Per step: the rate tcpreplay achieved, what the
probe captured, its kernel drops (ring full) and the packets lost before its socket (sent but
never seen: the veth's backlog); then the highest rate captured without any drop, next to what
tcpreplay achieved. Also the time the workers spent copying ring blocks out as pcap records,
against the decoder's own rate, to show that the copy is not the bottleneck.

The capture is generated with probe.synth.generate(path, subscribers=100000, packets=N, seed=1)
(the default mix: MAP, CAP, ISUP, SMS/MMS, GTP-C and GTP-U) and cached under bench/out/, the one
bench/decode_bench.py uses; without probe.synth, the packets of pcaps/mixed_small.pcap are
repeated up to N packets.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from decode_bench import repeated_capture, synth_capture

TARGET = 800_000
CLI = [
    sys.executable,
    "-c",
    "import sys; sys.path.insert(0, sys.argv.pop(1)); from touchpoint.control.cli import run; run()",
    str(ROOT),
]


def free_ports(n: int) -> list:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def decode_only(path: Path, messages: bool, repeat: int) -> tuple:
    from touchpoint.probe.decode import Options, Stats, decode_file
    best, records, packets = float("inf"), 0, 0
    for _ in range(repeat):
        stats = Stats()
        t0 = time.perf_counter()
        records = sum(len(b) for b in decode_file(path, Options(messages=messages), stats=stats))
        best = min(best, time.perf_counter() - t0)
        packets = stats.frames
    return best, records, packets


def end_to_end(path: Path, messages: bool, shards: int, batch: int) -> dict:
    ports = free_ports(shards)
    eps = [f"tcp://127.0.0.1:{p}" for p in ports]
    with tempfile.TemporaryDirectory() as tmp:
        stats_path = Path(tmp) / "probe.json"
        tap_cmd = CLI + ["tap", "--count", "--expect-eos", str(shards)]
        for ep in eps:
            tap_cmd += ["--listen", ep]
        tap = subprocess.Popen(tap_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        tap.stderr.readline()                              # "listening on ..."
        probe_cmd = CLI + ["probe", "--pcap", str(path), "--speed", "max", "--lossless", "--batch", str(batch),
                           "--status-interval", "0", "--ack-timeout", "60", "--stats-json", str(stats_path)]
        for ep in eps:
            probe_cmd += ["--push", ep]
        if messages:
            probe_cmd.append("--messages")
        t0 = time.perf_counter()
        probe = subprocess.run(probe_cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        out, err = tap.communicate(timeout=60)
        if probe.returncode or tap.returncode:
            raise SystemExit(f"probe exit {probe.returncode}: {probe.stderr}\ntap exit {tap.returncode}: {err}")
        st = json.loads(stats_path.read_text())
    received = int(out.split()[-1])
    return {"records": st["records"], "received": received, "packets": st["packets"],
            "elapsed_s": st["elapsed_s"], "source_s": st["source_s"], "publish_s": st["publish_s"],
            "wall_s": wall, "batches": [s["batches"] for s in st["shards"]]}


class Namespace:
    """A network namespace with a veth pair tpa <-> tpb, deleted on exit."""

    def __init__(self):
        self.name = f"tp-bench-{os.getpid()}"

    def __enter__(self):
        for tool in ("ip", "tcpreplay"):
            if not shutil.which(tool):
                raise SystemExit(f"--live needs `{tool}` (Debian: iproute2, tcpreplay)")
        steps = [["ip", "netns", "add", self.name],
                 ["ip", "-n", self.name, "link", "add", "name", "tpa", "type", "veth", "peer", "name", "tpb"],
                 ["ip", "-n", self.name, "link", "set", "tpa", "mtu", "9000", "up"],
                 ["ip", "-n", self.name, "link", "set", "tpb", "mtu", "9000", "up"]]
        for cmd in steps:
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode:
                self.__exit__()
                raise SystemExit(f"--live: {' '.join(cmd)}: {res.stderr.strip()} (needs root)")
        return self

    def __exit__(self, *exc):
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)

    def run(self, cmd, **kw):
        return subprocess.Popen(["ip", "netns", "exec", self.name] + cmd, **kw)


def live_step(ns: Namespace, path: Path, pps: int | None, limit: int, workers: int, ring_mb: int) -> dict:
    """One tcpreplay run (pps None: --topspeed) into tpa while the probe captures on tpb."""
    with tempfile.TemporaryDirectory() as tmp:
        ep = f"ipc://{tmp}/tap.sock"
        stats_path = Path(tmp) / "probe.json"
        tap = subprocess.Popen(CLI + ["tap", "--listen", ep, "--count", "--expect-eos", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        tap.stderr.readline()
        probe = ns.run(CLI + ["probe", "--iface", "tpb", "--workers", str(workers), "--ring-mb", str(ring_mb),
                              "--push", ep, "--status-interval", "0.25", "--stats-json", str(stats_path)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

        def stats():
            try:
                return json.loads(stats_path.read_text())
            except (OSError, ValueError):
                return None

        deadline = time.monotonic() + 60
        while stats() is None:
            if probe.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the probe did not start: {probe.stderr.read()}")
            time.sleep(0.05)
        rate = ["--topspeed"] if pps is None else [f"--pps={pps}"]
        res = subprocess.run(["ip", "netns", "exec", ns.name, "tcpreplay", *rate, f"--limit={limit}", "-i", "tpa",
                              str(path)], capture_output=True, text=True)
        if res.returncode:
            raise SystemExit(f"tcpreplay: {res.stderr or res.stdout}")
        sent = int(re.search(r"Actual: (\d+) packets", res.stdout).group(1))
        achieved = float(re.search(r"Rated: .*?([\d.]+) pps", res.stdout).group(1))
        # until the probe has everything the kernel gave it (or nothing more comes for 2 s)
        last, still = -1, time.monotonic()
        while True:
            st = stats()
            cap = st["capture"]
            if st["packets"] >= cap["kernel_packets"] - cap["kernel_drops"] and st["packets"] >= sent \
                    or time.monotonic() - still > 2:
                break
            if st["packets"] != last:
                last, still = st["packets"], time.monotonic()
            time.sleep(0.1)
        probe.send_signal(signal.SIGINT)
        err = probe.communicate(timeout=120)[1]
        out, _ = tap.communicate(timeout=60)
        st = stats()
    cap = st["capture"]
    seen = cap["kernel_packets"]
    return {"pps": pps, "sent": sent, "achieved_pps": achieved, "captured": st["packets"], "records": st["records"],
            "received": int(out.split()[-1]), "kernel_drops": cap["kernel_drops"], "ring_full": cap["ring_full"],
            "lost_before_socket": max(sent - seen, 0), "copy_s": cap["copy_s"], "elapsed_s": st["elapsed_s"],
            "publish_drops": st["drops"], "summary": err.strip().splitlines()[-1] if err.strip() else ""}


def live(a, path: Path) -> None:
    steps = [int(x) for x in a.pps.split(",") if x] + [None]
    t_dec, _, decode_packets = decode_only(path, False, 1)
    decode_pps = decode_packets / t_dec
    print(f"live: {a.limit:,} packets a step from {path.name}, --workers {a.workers}, --ring-mb {a.ring_mb}; "
          f"decode alone {decode_pps:,.0f} packets/s", flush=True)
    print(f"  {'tcpreplay':>12} {'achieved':>12} {'captured':>10} {'kernel drops':>13} {'ring full':>10} "
          f"{'lost before':>12} {'records':>9}")
    rows = []
    with Namespace() as ns:
        for pps in steps:
            r = live_step(ns, path, pps, a.limit, a.workers, a.ring_mb)
            rows.append(r)
            print(f"  {'topspeed' if pps is None else f'{pps:,} pps':>12} {r['achieved_pps']:>12,.0f} "
                  f"{r['captured']:>10,} {r['kernel_drops']:>13,} {r['ring_full']:>10,} {r['lost_before_socket']:>12,} "
                  f"{r['records']:>9,}", flush=True)
    clean = [r for r in rows if r["captured"] == r["sent"] and not r["kernel_drops"]]
    best = max(clean, key=lambda r: r["achieved_pps"], default=None)
    if best:
        print(f"  highest rate captured without a drop: {best['achieved_pps']:,.0f} packets/s "
              f"(tcpreplay asked {'topspeed' if best['pps'] is None else format(best['pps'], ',')}, "
              f"achieved {best['achieved_pps']:,.0f}); tcpreplay's top speed: "
              f"{rows[-1]['achieved_pps']:,.0f} packets/s")
    else:
        print("  every step dropped packets")
    copy = max(rows, key=lambda r: r["captured"])
    if copy["copy_s"]:
        print(f"  copying ring blocks out as pcap records: {copy['captured'] / copy['copy_s']:,.0f} packets/s of copy "
              f"time ({copy['copy_s']:.3f} s for {copy['captured']:,} packets), decoding "
              f"{decode_pps:,.0f} packets/s: the copy is {decode_pps / (copy['captured'] / copy['copy_s']):.1%} "
              f"of the decoder's cost")
    if a.json:
        a.json.write_text(json.dumps({"live": rows, "decode_packets_per_s": decode_pps}, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--subscribers", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--input", type=Path, help="benchmark this capture instead of generating one")
    ap.add_argument("--shards", type=int, default=1, help="engine shards (one tap binds them all)")
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--messages", action="store_true", help="a record per TCAP component, not per dialogue")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each measurement; the best counts")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--live", action="store_true", help="live capture on a veth pair instead (root)")
    ap.add_argument("--pps", default="50000,100000,200000,400000",
                    help="--live: tcpreplay rates to try, then --topspeed")
    ap.add_argument("--limit", type=int, default=1_000_000, help="--live: packets sent a step")
    ap.add_argument("--workers", type=int, default=1, help="--live: probe --workers")
    ap.add_argument("--ring-mb", type=int, default=64, help="--live: probe --ring-mb")
    a = ap.parse_args()

    if a.input:
        path = a.input
    else:
        try:
            path = synth_capture(a.packets, a.subscribers, a.seed)
        except ImportError as e:
            print(f"probe.synth not importable ({e}); repeating pcaps/mixed_small.pcap", file=sys.stderr)
            path = repeated_capture(ROOT / "pcaps" / "mixed_small.pcap", a.packets)
    if a.live:
        live(a, path)
        return
    mode = "per-message" if a.messages else "dialogue"
    print(f"capture {path} ({path.stat().st_size / 1e6:.1f} MB), {mode} mode, {a.shards} shard(s), "
          f"batches of {a.batch} records", flush=True)

    t_dec, records, packets = decode_only(path, a.messages, a.repeat)
    runs = [end_to_end(path, a.messages, a.shards, a.batch) for _ in range(a.repeat)]
    e2e = min(runs, key=lambda r: r["elapsed_s"])
    if e2e["received"] != records or e2e["records"] != records:
        raise SystemExit(f"records: decoded {records}, probe sent {e2e['records']}, tap counted {e2e['received']}")
    el, src, pub = e2e["elapsed_s"], e2e["source_s"], e2e["publish_s"]
    res = {
        "capture": str(path), "packets": packets, "records": records, "mode": mode, "shards": a.shards,
        "batch": a.batch,
        "decode_alone_records_per_s": records / t_dec, "decode_alone_packets_per_s": packets / t_dec,
        "end_to_end_records_per_s": records / el,
        "end_to_end_with_startup_records_per_s": records / e2e["wall_s"],
        "probe_decode_records_per_s": records / src, "probe_decode_packets_per_s": packets / src,
        "transport_share": (el - src) / el, "publish_share": pub / el, "drain_share": (el - src - pub) / el,
        "runs": runs, "target": TARGET,
    }
    print(f"{packets:,} packets -> {records:,} records")
    print(f"  decode alone, in this process          {res['decode_alone_records_per_s']:>12,.0f} records/s "
          f"({res['decode_alone_packets_per_s']:,.0f} packets/s, best of {a.repeat})")
    print(f"  end to end: probe -> tcp -> tap        {res['end_to_end_records_per_s']:>12,.0f} records/s "
          f"({el:.3f} s from the probe's start to the tap's acknowledgement, best of {len(runs)})")
    print(f"  ... with interpreter start-up          {res['end_to_end_with_startup_records_per_s']:>12,.0f} records/s "
          f"({e2e['wall_s']:.2f} s)")
    print(f"  the probe's own decode rate            {res['probe_decode_records_per_s']:>12,.0f} records/s "
          f"({res['probe_decode_packets_per_s']:,.0f} packets/s: reading and decoding, {src:.3f} s)")
    print(f"  transport's share of end-to-end time   {res['transport_share']:>12.0%}  "
          f"(sharding, batching, queueing {res['publish_share']:.0%}; draining, end of stream, "
          f"acknowledgement {res['drain_share']:.0%})")
    met = res["end_to_end_records_per_s"] >= TARGET
    print(f"  target >= {TARGET:,} records/s end to end: {'met' if met else 'NOT MET'}")
    if a.json:
        a.json.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
