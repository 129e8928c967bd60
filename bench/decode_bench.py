#!/usr/bin/env python3
"""Decoder benchmark: ours against tshark and pycrate, in one run, on the same capture.

    python3 bench/decode_bench.py                       # 1,000,000-packet synthetic MAP capture
    python3 bench/decode_bench.py --packets 200000      # smaller
    python3 bench/decode_bench.py --input capture.pcap  # any capture
    python3 bench/decode_bench.py --skip-tshark --json results.json

Measures, in packets per second of the capture:
  1. ours into a discarded numpy sink (iterate decode_file, count records): dialogue mode and
     per-message mode, in this process, best of --repeat runs;
  2. ours into jsonl: `touchpoint decode --format jsonl FILE > /dev/null` (the working tree's CLI);
  3. tshark -T fields -e gsm_old.localValue -e e212.imsi > /dev/null, on the first
     --tshark-packets packets (tshark -c) when the capture is bigger, scaled to packets/s;
  4. pycrate (the reference ASN.1 runtime) decoding TCAP+MAP with
     TCAP_MAPv2v3.TCAP_MAP_Messages.TCAP_MAP_Message.from_ber on --pycrate-sample TCAP payloads;
and the peak RSS of a fresh process that only decodes the file (ru_maxrss).
Targets (bench/README.md): >= 1,000,000 packets/s into records on one core, >= 40x tshark,
peak RSS < 200 MB.

The capture is generated once with probe.synth.generate(path, subscribers=100000,
packets=N, seed=1, mix=--mix) and cached under bench/out/. Without probe.synth, the fallback repeats
the packets of ../shared/pcaps-public/velyfw_output.pcap up to N packets.
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out"
PUBLIC = ROOT.parent / "shared" / "pcaps-public"

TARGET_PPS = 1_000_000
TARGET_VS_TSHARK = 40.0
TARGET_RSS_MB = 200.0


# --- the capture ---------------------------------------------------------------------------------

def synth_capture(packets: int, subscribers: int, seed: int, mix: str = "default") -> Path:
    path = OUT / f"{mix}_{packets}p_{subscribers}s_seed{seed}.pcap"
    if path.is_file() and path.stat().st_size > 24:
        return path
    from touchpoint.probe.synth import MIXES, generate               # ImportError: caller falls back
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    t0 = time.perf_counter()
    print(f"generating {path.relative_to(ROOT)} with probe.synth.generate(packets={packets:,}, "
          f"subscribers={subscribers:,}, seed={seed}) ...", file=sys.stderr, flush=True)
    generate(tmp, subscribers=subscribers, packets=packets, seed=seed, mix=MIXES[mix])
    os.replace(tmp, path)
    print(f"  done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return path


def pcap_records(path: Path):
    """(header, [(ts_sec, ts_frac, caplen, origlen, data)]) of a classic pcap."""
    data = path.read_bytes()
    magic = struct.unpack("<I", data[:4])[0]
    if magic not in (0xA1B2C3D4, 0xA1B23C4D):
        raise SystemExit(f"{path}: only classic little-endian pcap is read here")
    out, pos = [], 24
    while pos + 16 <= len(data):
        ts, frac, caplen, origlen = struct.unpack_from("<IIII", data, pos)
        out.append((ts, frac, caplen, origlen, data[pos + 16:pos + 16 + caplen]))
        pos += 16 + caplen
    return data[:24], out


def repeated_capture(src: Path, packets: int) -> Path:
    """src's packets over and over (timestamps moved on each round) up to `packets` packets."""
    path = OUT / f"{src.stem}_x{packets}p.pcap"
    if path.is_file() and path.stat().st_size > 24:
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    head, recs = pcap_records(src)
    span = recs[-1][0] - recs[0][0] + 1
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(head)
        n, rnd = 0, 0
        while n < packets:
            for ts, frac, caplen, origlen, pkt in recs:
                if n == packets:
                    break
                f.write(struct.pack("<IIII", ts + rnd * span, frac, caplen, origlen) + pkt)
                n += 1
            rnd += 1
    os.replace(tmp, path)
    return path


def capture(args) -> tuple:
    if args.input:
        return Path(args.input), "given with --input"
    try:
        return (synth_capture(args.packets, args.subscribers, args.seed, args.mix),
                f"probe.synth.generate(subscribers={args.subscribers:,}, packets={args.packets:,}, seed={args.seed}, "
                f"mix={args.mix})")
    except ImportError as e:
        src = PUBLIC / "velyfw_output.pcap"
        if not src.is_file():
            raise SystemExit(f"probe.synth not importable ({e}) and {src} missing: use --input FILE")
        return repeated_capture(src, args.packets), f"{src.name} repeated (probe.synth not importable: {e})"


# --- ours ----------------------------------------------------------------------------------------

def time_ours(path: Path, messages: bool, repeat: int) -> dict:
    from touchpoint.probe.decode import Options, Stats, decode_file
    best = None
    for _ in range(repeat):
        st = Stats()
        n = 0
        t0 = time.perf_counter()
        for batch in decode_file(path, Options(messages=messages), stats=st):
            n += len(batch)                    # the sink: records counted, then dropped
        dt = time.perf_counter() - t0
        if best is None or dt < best["seconds"]:
            best = {"seconds": dt, "records": n, "packets": st.frames}
    best["pps"] = best["packets"] / best["seconds"]
    return best


# Peak RSS of the decoding process. VmHWM (/proc/self/status) is the high-water mark of this
# process image; ru_maxrss is what getrusage reports, but on Linux a child starts with its
# parent's maximum (it survives fork and exec), so it is only the fallback.
RSS_SCRIPT = r"""
import json, resource, sys
def peak_kb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
from touchpoint.probe.decode import Options, decode_file
base = peak_kb()
n = 0
for b in decode_file(sys.argv[1], Options(messages=sys.argv[2] == "1")):
    n += len(b)
print(json.dumps({"base_kb": base, "peak_kb": peak_kb(), "records": n,
                  "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def rss_ours(path: Path, messages: bool) -> dict:
    out = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(path), "1" if messages else "0"], cwd=ROOT,
                         check=True, capture_output=True, text=True).stdout
    r = json.loads(out)
    return {
        "peak_mb": r["peak_kb"] / 1024,
        "baseline_mb": r["base_kb"] / 1024,
        "ru_maxrss_mb": r["ru_maxrss_kb"] / 1024,
    }


CLI = "import sys; sys.argv[0] = 'touchpoint'; from touchpoint.control.cli import run; run()"


def time_jsonl(path: Path, packets: int) -> dict:
    try:
        import touchpoint.control.cli  # noqa: F401 - only whether the CLI imports here
        args = [sys.executable, "-c", CLI, "decode", "--format", "jsonl", str(path)]
        how = "touchpoint decode --format jsonl FILE > /dev/null"
        t0 = time.perf_counter()
        subprocess.run(args, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        dt = time.perf_counter() - t0
    except ImportError:
        from touchpoint.probe.decode import decode_file
        from touchpoint.probe.format import to_dicts
        how = "probe.format.to_dicts + json.dumps > /dev/null (no CLI)"
        t0 = time.perf_counter()
        with open(os.devnull, "w") as sink:
            for batch in decode_file(path):
                sink.write("".join(json.dumps(d, separators=(",", ":")) + "\n" for d in to_dicts(batch)))
        dt = time.perf_counter() - t0
    return {"seconds": dt, "packets": packets, "pps": packets / dt, "how": how}


# --- tshark --------------------------------------------------------------------------------------

def time_tshark(path: Path, packets: int, limit: int) -> dict:
    tshark = shutil.which("tshark")
    if not tshark:
        return {"skipped": "tshark not installed"}
    n = min(packets, limit)
    args = [tshark, "-n", "-r", str(path)] + (["-c", str(n)] if n < packets else []) + \
        ["-T", "fields", "-e", "gsm_old.localValue", "-e", "e212.imsi"]
    t0 = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dt = time.perf_counter() - t0
    return {"seconds": dt, "packets": n, "pps": n / dt, "prefix": n < packets,
            "how": " ".join(["tshark", "-r", "FILE"] + (["-c", str(n)] if n < packets else []) +
                            ["-T", "fields", "-e", "gsm_old.localValue", "-e", "e212.imsi", "> /dev/null"])}


# --- pycrate -------------------------------------------------------------------------------------

def tcap_payload(pkt: bytes):
    """TCAP bytes of an Ethernet/IPv4/SCTP(DATA)/M3UA/SCCP UDT|XUDT packet, else None."""
    pos = 12
    et = struct.unpack_from(">H", pkt, pos)[0]
    while et in (0x8100, 0x88A8):
        pos += 4
        et = struct.unpack_from(">H", pkt, pos)[0]
    pos += 2
    if et != 0x0800 or pkt[pos + 9] != 132:
        return None
    pos += (pkt[pos] & 0x0F) * 4 + 12
    while pos + 16 <= len(pkt):                              # SCTP chunks: the first M3UA DATA
        ctype, clen = pkt[pos], struct.unpack_from(">H", pkt, pos + 2)[0]
        if clen < 4:
            return None
        if ctype == 0 and struct.unpack_from(">I", pkt, pos + 12)[0] == 3 and (pkt[pos + 1] & 3) == 3:
            m = pkt[pos + 16:pos + clen]
            if len(m) < 8 or m[2] != 1 or m[3] != 1:
                return None
            p = 8
            while p + 4 <= len(m):
                tag, ln = struct.unpack_from(">HH", m, p)
                if tag == 0x0210:
                    if m[p + 12] != 3:                       # not SCCP (ISUP)
                        return None
                    sccp = m[p + 16:p + ln]
                    if len(sccp) > 5 and sccp[0] == 0x09:
                        d = 4 + sccp[4]
                    elif len(sccp) > 6 and sccp[0] == 0x11:
                        d = 5 + sccp[5]
                    else:
                        return None
                    return sccp[d + 1:d + 1 + sccp[d]] if d < len(sccp) else None
                p += (ln + 3) & ~3
            return None
        pos += (clen + 3) & ~3
    return None


def time_pycrate(path: Path, sample: int) -> dict:
    try:
        from pycrate_asn1dir import TCAP_MAPv2v3
    except ImportError:
        return {"skipped": "pycrate_asn1dir not installed"}
    msgs = []
    with open(path, "rb") as f:
        head = f.read(24)
        if struct.unpack("<I", head[:4])[0] not in (0xA1B2C3D4, 0xA1B23C4D):
            return {"skipped": "pycrate sample needs a classic little-endian pcap"}
        seen = 0
        while len(msgs) < sample * 4 and seen < 400_000:     # a spread over the start of the file
            rh = f.read(16)
            if len(rh) < 16:
                break
            caplen = struct.unpack("<IIII", rh)[2]
            pkt = f.read(caplen)
            seen += 1
            t = tcap_payload(pkt)
            if t:
                msgs.append(t)
    if not msgs:
        return {"skipped": "no TCAP payload found for pycrate"}
    msgs = msgs[::max(1, len(msgs) // sample)][:sample]
    obj = TCAP_MAPv2v3.TCAP_MAP_Messages.TCAP_MAP_Message
    failed = 0
    t0 = time.perf_counter()
    for m in msgs:
        try:
            obj.from_ber(m)
        except Exception:  # noqa: BLE001 - counted, pycrate rejects some valid variants
            failed += 1
    dt = time.perf_counter() - t0
    return {"seconds": dt, "packets": len(msgs), "pps": len(msgs) / dt, "failed": failed,
            "how": f"TCAP_MAPv2v3.TCAP_MAP_Messages.TCAP_MAP_Message.from_ber on {len(msgs):,} TCAP payloads"}


# --- report --------------------------------------------------------------------------------------

def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packets", type=int, default=1_000_000, help="packets of the generated capture")
    ap.add_argument("--input", help="benchmark this capture instead of the generated one")
    ap.add_argument("--mix", choices=("default", "map"), default="default",
                    help="generated traffic: default = about 60%% SS7 (MAP, CAP, ISUP) and 40%% GTP-C/GTP-U; "
                         "map = MAP dialogues only")
    ap.add_argument("--subscribers", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip-tshark", action="store_true")
    ap.add_argument("--skip-jsonl", action="store_true")
    ap.add_argument("--tshark-packets", type=int, default=100_000,
                    help="tshark reads at most this many packets (-c); packets/s is scaled from them")
    ap.add_argument("--pycrate-sample", type=int, default=2000, help="TCAP messages pycrate decodes")
    ap.add_argument("--repeat", type=int, default=3, help="runs of ours into numpy; the best counts")
    ap.add_argument("--json", help="also write the figures to this file")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    res = measure(args)
    print_table(res, args.repeat)
    print_ratios_and_targets(res)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


def measure(args) -> dict:
    """Ours (both modes, JSON lines, peak RSS), tshark and pycrate on the same capture."""
    path, origin = capture(args)
    size = path.stat().st_size
    res = {"input": str(path), "origin": origin, "bytes": size}
    res["ours_dialogues"] = d = time_ours(path, False, args.repeat)
    packets = d["packets"]
    res["packets"] = packets
    res["ours_messages"] = time_ours(path, True, args.repeat)
    res["rss"] = rss_ours(path, False)
    res["rss_messages"] = rss_ours(path, True)
    if not args.skip_jsonl:
        res["ours_jsonl"] = time_jsonl(path, packets)
    res["tshark"] = (
        {"skipped": "--skip-tshark"} if args.skip_tshark else time_tshark(path, packets, args.tshark_packets)
    )
    res["pycrate"] = time_pycrate(path, args.pycrate_sample)
    return res


def print_table(res: dict, repeat: int) -> None:
    path, origin, size, packets = res["input"], res["origin"], res["bytes"], res["packets"]
    d, m = res["ours_dialogues"], res["ours_messages"]
    print(f"input    {path} ({origin})")
    print(f"         {packets:,} packets, {size / 1e6:,.1f} MB; one core, {os.cpu_count()} CPUs on this machine")
    print()
    print(f"{'decoder':<58}{'packets/s':>14}{'seconds':>10}  notes")

    def row(name, r, note=""):
        if "skipped" in r:
            print(f"{name:<58}{'-':>14}{'-':>10}  skipped: {r['skipped']}")
        else:
            print(f"{name:<58}{r['pps']:>14,.0f}{r['seconds']:>10.2f}  {note}")

    row("ours -> numpy records, dialogue mode", d, f"{d['records']:,} records, best of {repeat}")
    row("ours -> numpy records, per-message mode", m, f"{m['records']:,} records, best of {repeat}")
    if "ours_jsonl" in res:
        row("ours -> jsonl (" + res["ours_jsonl"]["how"].split(" >")[0] + ")", res["ours_jsonl"], "incl. startup")
    t = res["tshark"]
    row("tshark -T fields -e gsm_old.localValue -e e212.imsi", t,
        (f"first {t['packets']:,} packets (-c), scaled; incl. startup" if t.get("prefix") else "incl. startup")
        if "skipped" not in t else "")
    p = res["pycrate"]
    row(
        "pycrate TCAP+MAP from_ber",
        p,
        f"{p['packets']:,} messages, {p['failed']} not decoded" if "skipped" not in p else "",
    )
    print()


def print_ratios_and_targets(res: dict) -> None:
    d, m, r = res["ours_dialogues"], res["ours_messages"], res["rss"]
    ratios = {}
    for other in ("tshark", "pycrate"):
        if "skipped" not in res[other]:
            ratios[f"dialogues_vs_{other}"] = d["pps"] / res[other]["pps"]
            ratios[f"messages_vs_{other}"] = m["pps"] / res[other]["pps"]
            if "ours_jsonl" in res:
                ratios[f"jsonl_vs_{other}"] = res["ours_jsonl"]["pps"] / res[other]["pps"]
    res["ratios"] = ratios
    for k, v in ratios.items():
        a, b = k.split("_vs_")
        print(f"ratio    ours ({a}) / {b}: {v:,.1f}x")
    print(f"peak RSS (VmHWM) of a process that only decodes (dialogue mode): {r['peak_mb']:.0f} MB "
          f"(interpreter + numpy + probe before decoding: {r['baseline_mb']:.0f} MB); "
          f"per-message mode: {res['rss_messages']['peak_mb']:.0f} MB")
    print()
    checks = [("records/s on one core >= 1,000,000 (dialogue mode)", d["pps"] >= TARGET_PPS),
              ("records/s on one core >= 1,000,000 (per-message mode)", m["pps"] >= TARGET_PPS),
              ("peak RSS < 200 MB", max(r["peak_mb"], res["rss_messages"]["peak_mb"]) < TARGET_RSS_MB)]
    if "dialogues_vs_tshark" in ratios:
        checks.append((f"ours >= {TARGET_VS_TSHARK:.0f}x tshark", ratios["dialogues_vs_tshark"] >= TARGET_VS_TSHARK))
    res["targets"] = {name: ok for name, ok in checks}
    for name, ok in checks:
        print(f"target   {name}: {'met' if ok else 'NOT MET'}")


if __name__ == "__main__":
    sys.exit(main())
