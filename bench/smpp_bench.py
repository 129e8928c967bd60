#!/usr/bin/env python3
"""SMPP benchmark: submit_sm/s sustained by control.smpp.SmppClient to a local SMSC.

    python3 bench/smpp_bench.py                          # 20,000 messages, window 64
    python3 bench/smpp_bench.py --messages 50000 --window 64 --text ucs2
    python3 bench/dispatch_bench.py --smpp               # the same, after the contact policy's figure

The SMSC is the server side of smpp34 (PyPI, Rust core; tests/smsc.py, the one the tests use)
in its own process on loopback. Our client sends --messages single-part messages with a window
of --window, as the dispatcher does (send() until it says not now); the figure is messages
answered ESME_ROK a second, from the first send to the last answer. Then smpp34's own
Rust-backed client sends the same number to the same server, --window at a time: the server's
ceiling on this machine, to tell whose limit the first figure is. Target: 2,000/s.
"""
import argparse
import asyncio
import os
import socket
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from touchpoint.control.channels import Outgoing
from touchpoint.control.smpp import SmppClient
from tests.smsc import Smsc

TEXTS = {"gsm": "Welcome to Shanghai! 1GB of local data for 10 CNY today, reply TD to stop. #{n}",
         "ucs2": "欢迎来到上海！本地流量包1GB仅需10元，回复TD退订。第{n}条"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ours(port: int, n: int, window: int, text: str) -> tuple:
    done = threading.Event()
    counts = {"sent": 0, "other": 0}

    def on_result(mid, state, reason, smsc_id=None):
        counts["sent" if state == "sent" else "other"] += 1
        if counts["sent"] + counts["other"] >= n:
            done.set()

    c = SmppClient("127.0.0.1", port, "bench", "bench", window=window, on_result=on_result, say=lambda line: None)
    c.start()
    deadline = time.monotonic() + 10
    while not c.health()["connected"]:
        if time.monotonic() > deadline:
            raise SystemExit(f"no bind within 10 s: {c.health()['last_error']}")
        time.sleep(0.01)
    msgs = [Outgoing(f"b{i}", f"86138{i:08d}", "10658000", text.format(n=i), "bench") for i in range(n)]
    t = time.perf_counter()
    i = 0
    while i < n:
        if c.send(msgs[i]):
            i += 1
        else:
            time.sleep(0.0005)
    if not done.wait(120):
        raise SystemExit(f"only {counts} of {n} answered within 120 s")
    took = time.perf_counter() - t
    h = c.health()
    c.stop(2)
    return n / took, counts, h


def ceiling(port: int, n: int, window: int, text: str) -> float:
    import smpp34

    async def run():
        client = smpp34.Client(host="127.0.0.1", port=port, system_id="ref", password="ref", bind_type="TRX",
                               window_size=window)
        smsc = await client.connect()
        coding = 0 if text.isascii() else 8
        body = (lambda i: text.format(n=i).encode("ascii")) if coding == 0 else \
            (lambda i: text.format(n=i).encode("utf-16-be"))
        sem = asyncio.Semaphore(window)
        ok = 0

        async def one(i):
            nonlocal ok
            async with sem:
                r = await smsc.submit_sm(f"86139{i:08d}", body(i), source_addr="10658000", data_coding=coding,
                                         source_addr_ton=3, dest_addr_ton=1, dest_addr_npi=1)
                ok += r.is_success
        t = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        took = time.perf_counter() - t
        await smsc.unbind()
        await client.stop()
        return ok / took
    return asyncio.run(run())


def smpp_bench(args) -> None:
    n = getattr(args, "messages", 20_000)
    window = getattr(args, "window", 64)
    text = TEXTS[getattr(args, "text", "gsm")]
    server = Smsc(free_port(), "--quiet")
    try:
        rate, counts, h = ours(server.port, n, window, text)
        print(f"SMPP: {n:,} submit_sm in a window of {window}: {rate:,.0f} submit_sm/s sustained "
              f"(target 2,000/s: {rate / 2000:.1f}x); {counts['sent']:,} answered ESME_ROK, "
              f"{h['throttled']} throttled, {counts['other']} other")
        ref = ceiling(server.port, n, window, text)
        print(f"  the SMSC (smpp34's server, one process) with smpp34's own Rust-backed client on the same "
              f"machine: {ref:,.0f} submit_sm/s; ours is {rate / ref:.0%} of that")
    finally:
        server.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--text", choices=tuple(TEXTS), default="gsm")
    smpp_bench(ap.parse_args())


if __name__ == "__main__":
    main()
