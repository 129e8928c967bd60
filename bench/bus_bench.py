#!/usr/bin/env python3
"""Bus benchmark: a probe's records published to NATS JetStream (R1, and R3 on a cluster of three
on loopback) against the ZeroMQ path to one engine-side receiver, in one run; then a consumer
reading the R1 stream back.

    python3 bench/bus_bench.py                      # 1M records, 16 partitions
    python3 bench/bus_bench.py --records 200000     # quicker

The records are bench/engine_bench.py's (mixed kinds, 200,000 subscribers). ZeroMQ:
probe.transport.sending.Publisher to `touchpoint tap --count` over ipc, until the tap acknowledged
the end of stream. Bus: probe.transport.bus.BusPublisher until JetStream acknowledged every batch
and each partition's end (stored on every replica for R3). Read back: a pull consumer fetching
the R1 stream's messages, as an engine will. R3 is timed once its stream is made (the first
probe's wait for the cluster's leader is printed apart). Needs nats-server (Debian) and nats-py.
"""
import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from engine_bench import T0, records, subscriber_keys
from tests.natsserver import PASSWORD, USER, cluster, single
from touchpoint.probe.shard import Sharder
from touchpoint.probe.transport.bus import STREAM, BusPublisher
from touchpoint.probe.transport.sending import Publisher

CHUNK = 65536                       # records handed to the publisher at a time, as a decoder does


def publish(pub, recs, shards) -> float:
    start = time.perf_counter()
    for i in range(0, len(recs), CHUNK):
        pub.add(recs[i:i + CHUNK], shards[i:i + CHUNK])
    pub.close(600)
    return time.perf_counter() - start


def zeromq(tmp: Path, recs) -> float:
    ep = f"ipc://{tmp}/tap.sock"
    tap = subprocess.Popen([sys.executable, "-c", "from touchpoint.control.cli import run; run()", "tap", "--listen",
                            ep, "--count", "--expect-eos", "1"], stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)
    took = publish(Publisher([ep], lossless=True), recs, np.zeros(len(recs), np.int64))
    tap.wait(60)
    return took


def consume(url: str, n_msgs: int) -> float:
    import nats

    async def go():
        nc = await nats.connect(url, user=USER, password=PASSWORD)
        js = nc.jetstream()
        sub = await js.pull_subscribe("touchpoint.records.*", durable="bench", stream=STREAM)
        got, start = 0, time.perf_counter()
        while got < n_msgs:
            msgs = await sub.fetch(32, timeout=5)           # 32 batches: 22 MB
            got += len(msgs)
            await msgs[-1].ack()
        took = time.perf_counter() - start
        await nc.close()
        return took
    return asyncio.run(go())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--partitions", type=int, default=16)
    a = ap.parse_args()
    rng = np.random.default_rng(1)
    imsi, msisdn = subscriber_keys(200_000, rng)
    pick = rng.integers(0, 200_000, a.records)
    recs = records(a.records, imsi[pick], msisdn[pick], rng, T0)
    shards = Sharder(a.partitions).assign(recs)
    n = len(recs)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        z = zeromq(tmp, recs)
        print(f"ZeroMQ, probe -> tap (ipc, acknowledged):     {n / z:12,.0f} records/s")
        node = single(tmp / "r1")
        try:
            pub = BusPublisher([node.url], partitions=a.partitions, lossless=True, user=USER, password=PASSWORD)
            r1 = publish(pub, recs, shards)
            batches = sum(p.sent_batches for p in pub.links)
            print(f"JetStream R1, probe -> one server:            {n / r1:12,.0f} records/s ({z / r1:.2f}x ZeroMQ's "
                  f"rate; {batches:,} messages)")
            c = consume(node.url, batches)
            print(f"JetStream R1, a pull consumer reading back:   {n / c:12,.0f} records/s")
        finally:
            node.stop()
        nodes = cluster(tmp / "r3")
        try:
            warm = BusPublisher([x.url for x in nodes], partitions=a.partitions, lossless=True, user=USER,
                                password=PASSWORD, replicas=3)
            start = time.perf_counter()
            publish(warm, recs[:1000], shards[:1000])       # the stream made and its leader elected
            print(f"JetStream R3: the stream made on the cluster in {time.perf_counter() - start:.1f} s")
            pub = BusPublisher([x.url for x in nodes], partitions=a.partitions, lossless=True, user=USER,
                               password=PASSWORD, replicas=3)
            r3 = publish(pub, recs, shards)
            print(f"JetStream R3, probe -> a cluster of three:    {n / r3:12,.0f} records/s ({z / r3:.2f}x ZeroMQ's "
                  f"rate)")
        finally:
            for x in nodes:
                x.stop()


if __name__ == "__main__":
    main()
