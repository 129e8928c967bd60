"""`touchpoint probe --bus` (probe.transport.bus) against a real nats-server with JetStream and
auth on: every record of a capture stored once, in its subscriber's partition, each partition
ended; a bus killed mid-replay and started again loses nothing and stores nothing twice; wrong
credentials and another partition count are refused with what to do."""
import json
import subprocess
import threading
import time

import numpy as np
import pytest

from touchpoint.probe.decode import decode_file
from touchpoint.probe.shard import Sharder
from touchpoint.probe.transport.bus import PUBLISH_TIMEOUT_S, STREAM, SUBJECT, read_batch
from touchpoint.probe.transport.wire import END_OF_STREAM

from .natsserver import credentials, fetch_all, single, stored_messages
from .test_engine_run import CLI, ROOT

PCAP = ROOT / "pcaps" / "mixed_small.pcap"


def probe(url, creds, *args, timeout=120):
    return subprocess.run(CLI + ["probe", "--pcap", str(PCAP), "--bus", url, "--bus-credentials", creds,
                                 "--status-interval", "0", *args], capture_output=True, text=True, timeout=timeout)


def stored(url) -> dict:
    """partition -> (the records in stream order, the end-of-stream headers)."""
    out = {}
    for subject, data in fetch_all(url, STREAM):
        h, recs = read_batch(data)
        part = int(subject.removeprefix(SUBJECT))
        assert h.shard == part
        got = out.setdefault(part, ([], []))
        (got[1] if h.flags & END_OF_STREAM else got[0]).append(h if h.flags & END_OF_STREAM else recs)
    return out


@pytest.fixture
def bus(tmp_path):
    node = single(tmp_path)
    yield node
    node.stop()


def test_every_record_once_in_its_subscribers_partition(bus, tmp_path):
    r = probe(bus.url, credentials(tmp_path), "--partitions", "4", "--lossless", "--batch", "64")
    assert r.returncode == 0, r.stderr
    assert "end of stream acknowledged by 4/4 shards" in r.stderr and "drops: none" in r.stderr
    want = np.concatenate(list(decode_file(str(PCAP))))
    parts = stored(bus.url)
    assert sorted(parts) == [0, 1, 2, 3] and all(len(eos) == 1 for _, eos in parts.values())
    got = np.concatenate([np.concatenate(recs) for recs, _ in parts.values() if recs])
    assert len(got) == len(want)
    assert sorted(got.tobytes()[i:i + got.itemsize] for i in range(0, got.nbytes, got.itemsize)) == \
        sorted(want.tobytes()[i:i + want.itemsize] for i in range(0, want.nbytes, want.itemsize))
    assign = Sharder(4).assign(want)                # each record where the ZeroMQ path's shard 4 would put it
    for p, (recs, _) in parts.items():
        mine = want[assign == p]
        assert np.concatenate(recs).tobytes() == mine.tobytes() if recs else not len(mine)


def test_a_bus_killed_and_started_again_loses_nothing_and_stores_nothing_twice(bus, tmp_path):
    creds = credentials(tmp_path)
    result = {}
    stats = tmp_path / "stats.json"
    t = threading.Thread(target=lambda: result.update(r=probe(bus.url, creds, "--partitions", "2", "--lossless",
                                                               "--batch", "16", "--speed", "40x", "--ack-timeout",
                                                               "60", "--stats-json", str(stats))))
    t.start()
    end = time.monotonic() + 60
    while stored_messages(bus.url, STREAM) < 4:     # publishing under way (the replay takes 5 s more)
        assert time.monotonic() < end and t.is_alive(), result
        time.sleep(0.05)
    bus.kill()                                      # mid-replay: publishes time out, the probe keeps its batches
    time.sleep(PUBLISH_TIMEOUT_S + 1.5)             # past the publishes' time-out: they are made again
    bus.start()                                     # the same port and store
    t.join(150)
    r = result["r"]
    assert r.returncode == 0, r.stderr
    want = np.concatenate(list(decode_file(str(PCAP))))
    parts = stored(bus.url)
    got = sum(sum(len(x) for x in recs) for recs, _ in parts.values())
    assert got == len(want)                         # none lost, none twice (a publish again: the same message id)
    assert all(len(eos) == 1 for _, eos in parts.values())
    shards = json.loads(stats.read_text())["shards"]
    assert shards[0]["bus_disconnects"] >= 1 and sum(p["resent_batches"] for p in shards) > 0     # the kill was felt


def test_wrong_credentials_and_another_partition_count_are_refused(bus, tmp_path):
    r = probe(bus.url, credentials(tmp_path, password="wrong"), "--partitions", "4", "--lossless",
              "--ack-timeout", "10")
    assert r.returncode == 3 and "refused the credentials" in r.stderr, r.stderr
    assert probe(bus.url, credentials(tmp_path), "--partitions", "4").returncode == 0
    r = probe(bus.url, credentials(tmp_path), "--partitions", "8")
    assert r.returncode == 3 and "has 4 partitions, not --partitions 8" in r.stderr, r.stderr
