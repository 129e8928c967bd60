#!/usr/bin/env python3
"""Dispatcher benchmark: contact-policy decisions a second with 10,000,000 subscribers' history.

    python3 bench/dispatch_bench.py                        # 10M subscribers' history, 200k triggers
    python3 bench/dispatch_bench.py --subscribers 1000000 --triggers 50000   # quicker
    python3 bench/dispatch_bench.py --rebuild 1000000      # also: the history rebuilt from SQLite

Builds the contact history of --subscribers subscribers (each contacted 1 to 3 times in the last
7 days by one of 10 campaigns: about 2 contacts a subscriber) in control.policy.History, as the
dispatcher holds it after a start, then times ContactPolicy.decide on --triggers triggers for
random subscribers of that population, in batches of --batch, under the example policy (caps 1 a
day and 3 a week, quiet hours, arbitration) and campaigns with hold-out, cooldown and quota. Each
batch is decided at a later time (the records clock), so caps, cooldowns, quotas and arbitration
all bite. Prints decisions/s, the outcome counts and the history's memory.

--rebuild N writes N contacts to an outbox.sqlite (cached under bench/out/) and times the
policy's restore from it (what a dispatcher start does).

SMPP: `--smpp` also runs bench/smpp_bench.py (the channels' benchmark: submit_sm/s to a local SMPP
server with a window of 64) in this run, so both figures print together.
"""
import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from touchpoint.control.engine import Trigger
from touchpoint.control.outbox import Outbox
from touchpoint.control.policy import ContactPolicy
from touchpoint.control.rules import load
from touchpoint.probe.record import pack

OUT = HERE / "out"
NS = 10**9
DAY = 86400 * NS
T0 = 1_795_000_000 * NS            # 2026-11-18, a Wednesday, 08:26 in Shanghai

POLICY = """
timezone: Asia/Shanghai
caps: [{per: 1d, max: 1}, {per: 7d, max: 3}]
quiet: {from: "21:00", to: "08:00"}
arbitration: 60s
"""


def rules_dir(root: Path) -> str:
    d = root / "dispatch-bench-rules"
    d.mkdir(parents=True, exist_ok=True)
    (d / "policy.yaml").write_text(POLICY)
    for i in range(10):
        extra = ["holdout: 10%", "cooldown: 30d", "quota: 100000", "priority: 5", ""][i % 5]
        (d / f"c{i}.yaml").write_text(f"id: c{i}\nstatus: active\ntrigger: {{event: power_on}}\n"
                                      f"message: {{text: '欢迎回来 {{msisdn}}，{{after}} 秒'}}\n{extra}\n")
    rs = load(str(d))
    assert rs.ok, rs.errors
    return str(d)


def msisdns(n: int, rng) -> np.ndarray:
    return np.char.add("86138", np.char.zfill(np.arange(n).astype("U8"), 8))


def history(n: int, rng):
    """About 2 contacts a subscriber in the week before T0."""
    per = rng.integers(1, 4, n)
    keys = np.repeat(pack(msisdns(n, rng)), per)
    ts = T0 - rng.integers(0, 7 * DAY, len(keys))
    camp = rng.integers(0, 10, len(keys)).astype(np.int32)
    return keys, ts, camp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subscribers", type=int, default=10_000_000)
    ap.add_argument("--triggers", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rebuild", type=int, default=0, help="contacts to write to SQLite and restore from")
    ap.add_argument("--smpp", action="store_true", help="also run the SMPP benchmark (bench/smpp_bench.py)")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    OUT.mkdir(exist_ok=True)
    rs = load(rules_dir(OUT))

    t = time.perf_counter()
    keys, ts, camp = history(args.subscribers, rng)
    policy = ContactPolicy(rs)
    policy.history.load(keys, ts, camp)
    built = time.perf_counter() - t
    hbytes = policy.history.keys.nbytes + policy.history.ts.nbytes + policy.history.camp.nbytes
    print(f"history: {args.subscribers:,} subscribers, {len(keys):,} contacts, {hbytes / 2**20:.0f} MB "
          f"({hbytes / args.subscribers:.1f} bytes a subscriber), sorted in {built:.1f} s")

    numbers = msisdns(args.subscribers, rng)
    who = rng.integers(0, args.subscribers, args.triggers)
    cids = rng.integers(0, 10, args.triggers)
    batches = []
    for b in range(0, args.triggers, args.batch):
        now = T0 + (b // args.batch) * 7 * NS           # 7 s of traffic a batch
        batches.append([Trigger(f"c{cids[k]}", "power_on", now - int(rng.integers(0, 5 * NS)), now + 2 * DAY,
                                f"46000{who[k]:010d}", str(numbers[who[k]]), 0, {"after": int(k % 900)})
                        for k in range(b, min(b + args.batch, args.triggers))])
    outcomes = {}
    t = time.perf_counter()
    for i, batch in enumerate(batches):
        for d in policy.decide(batch, T0 + i * 7 * NS):
            key = d.state + (":" + d.reason if d.reason else "")
            outcomes[key] = outcomes.get(key, 0) + 1
        policy.compact(T0 + i * 7 * NS)
    took = time.perf_counter() - t
    rate = args.triggers / took
    print(f"contact policy: {args.triggers:,} triggers in {took:.2f} s = {rate:,.0f} decisions/s "
          f"(target 20,000/s: {rate / 20_000:.1f}x) with {args.subscribers:,} subscribers' history")
    print("  outcomes: " + ", ".join(f"{k} {v:,}" for k, v in sorted(outcomes.items(), key=lambda kv: -kv[1])))
    print(f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MB")

    if args.rebuild:
        rebuild(args.rebuild, rs, rng)
    if args.smpp:
        sys.stdout.flush()
        subprocess.run([sys.executable, str(HERE / "smpp_bench.py")], check=False)


def rebuild(n: int, rs, rng) -> None:
    """Write n contacts to an outbox (cached) and time the restore a dispatcher start does."""
    d = OUT / f"dispatch-bench-outbox-{n}"
    ob = Outbox(str(d))
    have = ob.db.execute("SELECT count(*) FROM messages").fetchone()[0]
    if have != n:
        t = time.perf_counter()
        ob.db.execute("DELETE FROM messages")
        ob.db.execute("PRAGMA synchronous=OFF")
        who = rng.integers(0, max(n // 2, 1), n)
        due = T0 - rng.integers(0, 7 * DAY, n)
        with ob.tx():
            ob.db.executemany(
                "INSERT INTO messages (id, campaign, event, imsi, msisdn, created_ns, trigger_ns, deadline_ns, due_ns, "
                "state) VALUES (?, ?, 'power_on', '', ?, ?, ?, ?, ?, 'sent')",
                ((f"{k:040x}", f"c{k % 10}", f"86138{who[k]:08d}", int(due[k]), int(due[k]), int(due[k]) + DAY,
                  int(due[k])) for k in range(n)))
        print(f"rebuild: wrote {n:,} sent messages to {d}/outbox.sqlite in {time.perf_counter() - t:.1f} s")
    p = ContactPolicy(rs)
    t = time.perf_counter()
    p.restore(ob, T0)
    took = time.perf_counter() - t
    print(f"rebuild: {len(p.history):,} contacts restored from SQLite in {took:.2f} s "
          f"({n / took:,.0f} messages/s)")
    ob.close()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
