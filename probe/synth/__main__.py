"""`python -m touchpoint.probe.synth`: write a capture, or rewrite the goldens."""
from __future__ import annotations

import argparse
import json
import sys

from .traffic import MIXES, generate, regen_goldens


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m touchpoint.probe.synth",
        description="Synthetic signaling traffic: valid pcap captures with their expected records.",
    )
    ap.add_argument("out", nargs="?", help="pcap file to write")
    ap.add_argument("--packets", type=int, default=10000)
    ap.add_argument("--subscribers", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rate", type=float, default=1000.0, help="packets per second of capture time")
    ap.add_argument("--mix", choices=sorted(MIXES), default="default",
                    help="default: MAP, CAP, ISUP, SMS and GTP; map: MAP only; ss: supplementary services")
    ap.add_argument("--user-mtu", type=int, default=1400, help="largest IP packet inside a G-PDU")
    ap.add_argument("--expected", help="write the expected records (JSONL) here")
    ap.add_argument("--regen-goldens", action="store_true", help="rewrite pcaps/*.pcap and their expectations")
    a = ap.parse_args(argv)
    if a.regen_goldens:
        for p in regen_goldens():
            print(p)
        return 0
    if not a.out:
        ap.error("give an output file or --regen-goldens")
    st = generate(a.out, subscribers=a.subscribers, packets=a.packets, seed=a.seed, rate_pps=a.rate,
                  expected_path=a.expected, mix=MIXES[a.mix], user_mtu=a.user_mtu)
    print(json.dumps(st))
    return 0


if __name__ == "__main__":
    sys.exit(main())
