"""`touchpoint probe` and `tap`: replay, transport, sharding, faults - over real ZeroMQ sockets.

The end-to-end tests run probe and tap as the subprocesses a user runs; the rest drive the
Python side (Sharder, Publisher, Receiver) over tcp loopback or ipc in a temporary directory.
"""
import json
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq
from click.testing import CliRunner

from touchpoint.control.cli import main
from touchpoint.probe.decode import Options
from touchpoint.probe.record import RECORD_DTYPE, SCHEMA_VERSION, empty, pack
from touchpoint.probe.run import ProbeRun, ProbeSettings
from touchpoint.probe.shard import Bindings, KeyMap, KeySource, Sharder, shard_of, splitmix64
from touchpoint.probe.source import PcapReplay
from touchpoint.probe.transport.receiving import Receiver
from touchpoint.probe.transport.sending import Publisher
from touchpoint.probe.transport.wire import ACK, END_OF_STREAM, REJECT, Header, WireError

ROOT = Path(__file__).resolve().parents[1]
PCAPS = sorted((ROOT / "pcaps").glob("*.pcap"))
# the records mixed_small.pcap decodes to (tests/test_goldens.py holds the decoder to that file)
MIXED_RECORDS = len((ROOT / "pcaps" / "mixed_small.expected.jsonl").read_text().splitlines())
PUBLIC = ROOT.parent / "shared" / "pcaps-public"
PUBLIC_PICKS = ["velyfw_isup_load_generator.pcap", "open5gs_volte.pcapng", "arkime_gtp-iphone.pcap"]
CLI = [
    sys.executable,
    "-c",
    "import sys; sys.path.insert(0, sys.argv.pop(1)); from touchpoint.control.cli import run; run()",
    str(ROOT),
]
TIMEOUT = 30


# --- helpers -------------------------------------------------------------------------------------

def decode_lines(path, *args) -> list:
    res = CliRunner().invoke(main, ["decode", "--format", "jsonl", *args, str(path)])
    assert res.exit_code == 0, res.output
    return res.stdout.splitlines()


def start_tap(*args) -> tuple:
    """A `touchpoint tap` subprocess, once it listens: (process, [bound endpoints]).

    Its stdout goes to a file, not a pipe, so a tap printing much never waits for the test."""
    out = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(CLI + ["tap", *args], stdout=out, stderr=subprocess.PIPE, text=True)
    proc.out = out
    first = proc.stderr.readline()
    while "listening on" not in first:          # a warning may come first (tests/test_curve.py)
        assert first, proc.stderr.read()
        first = proc.stderr.readline()
    return proc, first.split("listening on ", 1)[1].strip().split(", ")


def run_probe(*args, timeout=TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + ["probe", "--status-interval", "0", *args], capture_output=True, text=True,
                          timeout=timeout)


def finish(proc, timeout=TIMEOUT) -> tuple:
    out, err = proc.communicate(timeout=timeout)
    if hasattr(proc, "out"):
        proc.out.seek(0)
        out = proc.out.read()
        proc.out.close()
    return proc.returncode, out, err


def ipc(tmp_path, name) -> str:
    return f"ipc://{tmp_path}/{name}.sock"


def records(n: int, **fields) -> np.ndarray:
    r = empty(n)
    r["ts_ns"] = np.arange(n, dtype=np.int64) + 1_700_000_000_000_000_000
    for k, v in fields.items():
        r[k] = v
    return r


class Collector:
    """Receivers on threads, keeping every batch (shard, records) until `eos` ends of stream."""

    def __init__(self, endpoints, eos: int):
        self.rx = [Receiver([ep]) for ep in endpoints]
        self.endpoints = [r.endpoints[0] for r in self.rx]
        self.got = [[] for _ in self.rx]
        self.eos = 0
        self.want = eos
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._serve, args=(i,), daemon=True) for i in range(len(self.rx))]
        for t in self.threads:
            t.start()

    def _serve(self, i):
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            with self.lock:
                if self.eos >= self.want:
                    break
            got = self.rx[i].recv(50)
            if got is None:
                continue
            if got.end_of_stream:
                with self.lock:
                    self.eos += 1
            else:
                self.got[i].append(got.records.copy())
        self.rx[i].close()

    def join(self) -> list:
        for t in self.threads:
            t.join(TIMEOUT)
        return [np.concatenate(g) if g else np.empty(0, RECORD_DTYPE) for g in self.got]


# --- replay end to end ---------------------------------------------------------------------------

def replay_captures():
    out = [pytest.param(p, id=p.name) for p in PCAPS]
    for name in PUBLIC_PICKS:
        out.append(pytest.param(PUBLIC / name, id=name, marks=pytest.mark.skipif(
            not (PUBLIC / name).is_file(), reason=f"{PUBLIC / name} not present")))
    return out


@pytest.mark.parametrize("path", replay_captures())
def test_replay_through_probe_and_tap_equals_decode(path):
    """probe --lossless (two shards, tcp loopback) -> tap --format jsonl gives the records of decode."""
    tap, eps = start_tap("--listen", "tcp://127.0.0.1:0", "--listen", "tcp://127.0.0.1:0",
                         "--format", "jsonl", "--expect-eos", "2")
    probe = run_probe("--pcap", str(path), "--push", eps[0], "--push", eps[1], "--lossless")
    code, out, err = finish(tap)
    assert probe.returncode == 0, probe.stderr
    assert "acknowledged by 2/2 shards" in probe.stderr and "drops: none" in probe.stderr
    assert code == 0, err
    assert sorted(out.splitlines()) == sorted(decode_lines(path))


def test_loop_twice_doubles_the_records(tmp_path):
    path = ROOT / "pcaps" / "mixed_small.pcap"
    tap, eps = start_tap("--listen", ipc(tmp_path, "s0"), "--count", "--expect-eos", "1")
    stats = tmp_path / "probe.json"
    probe = run_probe("--pcap", str(path), "--push", eps[0], "--lossless", "--loop", "2", "--stats-json", str(stats))
    code, out, err = finish(tap)
    assert probe.returncode == 0 and code == 0, probe.stderr + err
    assert int(out) == 2 * len(decode_lines(path))
    st = json.loads(stats.read_text())
    assert st["records"] == int(out) and st["rounds"] == 2 and st["packets"] == 800 and st["exit_code"] == 0


def test_messages_mode_and_decoder_options_apply(tmp_path):
    path = ROOT / "pcaps" / "map_mixed_small.pcap"
    tap, eps = start_tap("--listen", ipc(tmp_path, "s0"), "--format", "jsonl", "--expect-eos", "1")
    probe = run_probe("--pcap", str(path), "--push", eps[0], "--lossless", "--messages", "--probe-id", "7")
    code, out, err = finish(tap)
    assert probe.returncode == 0 and code == 0, probe.stderr + err
    want = [json.dumps(dict(json.loads(line), probe_id=7), separators=(",", ":"))
            for line in decode_lines(path, "--messages")]
    assert sorted(out.splitlines()) == sorted(want)
    assert "probe 7 shard 0: end of stream" in err


# --- faults --------------------------------------------------------------------------------------

def test_engine_absent_at_start_does_not_block_and_counts_drops(tmp_path):
    path = ROOT / "pcaps" / "mixed_small.pcap"
    stats = tmp_path / "probe.json"
    t0 = time.monotonic()
    probe = run_probe("--pcap", str(path), "--push", ipc(tmp_path, "nobody"), "--push", "tcp://127.0.0.1:9",
                      "--stats-json", str(stats))
    assert time.monotonic() - t0 < 15
    assert probe.returncode == 0, probe.stderr
    st = json.loads(stats.read_text())
    assert st["drops"]["engine_absent"]["records"] == st["records"] == MIXED_RECORDS
    assert st["drops"]["queue_full"]["batches"] == 0
    assert all(not s["acknowledged"] and not s["connected"] for s in st["shards"])
    assert f"engine absent 2 batches ({MIXED_RECORDS} records)" in probe.stderr
    assert "acknowledged by 0/2" in probe.stderr


def test_lossless_without_engine_exits_3(tmp_path):
    probe = run_probe("--pcap", str(PCAPS[0]), "--push", ipc(tmp_path, "nobody"), "--lossless", "--ack-timeout", "1")
    assert probe.returncode == 3
    assert "no acknowledgement within --ack-timeout 1 s from shard 0" in probe.stderr


def test_queue_full_drops_the_oldest_and_the_receiver_sees_the_gap(tmp_path):
    """A receiver that is not reading: the probe keeps going, drops by cause, the gap shows."""
    ep = ipc(tmp_path, "slow")
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.RCVHWM, 1)
    router.bind(ep)
    pub = Publisher([ep], batch=1000, queue_records=2000, ctx=ctx)
    try:
        deadline = time.monotonic() + 5
        while not pub.links[0].up and time.monotonic() < deadline:
            time.sleep(0.01)
        for _ in range(400):                       # 400 batches of 1000 records, far more than fit anywhere
            pub.add(records(1000, imsi=pack("001010000000001")), None)
        drops = pub.drops()
        assert drops["queue_full"]["batches"] > 0 and drops["queue_full"]["records"] % 1000 == 0
        assert pub.links[0].queued <= 2000
    finally:
        pub.abort()
        pub.close(0.5)
        ctx.destroy(linger=0)


def _dealer(ctx, ep):
    d = ctx.socket(zmq.DEALER)
    d.setsockopt(zmq.LINGER, 1000)
    d.connect(ep)
    return d


def _batch(seq, n=3, **kw):
    recs = records(n, imsi=pack("001010000000002"))
    hdr = Header(probe_id=5, shard=0, epoch=42, seq=seq, count=n, first_ts=int(recs["ts_ns"][0]),
                 last_ts=int(recs["ts_ns"][-1]), **kw)
    return [hdr.pack(), recs.tobytes()]


def test_tap_reports_a_sequence_gap(tmp_path):
    tap, eps = start_tap("--listen", ipc(tmp_path, "t"), "--format", "jsonl", "--expect-eos", "1")
    ctx = zmq.Context()
    d = _dealer(ctx, eps[0])
    try:
        d.send_multipart(_batch(0))
        d.send_multipart(_batch(2))                # 1 never sent
        d.send_multipart(_batch(4))                # 3 never sent
        d.send_multipart([Header(probe_id=5, epoch=42, seq=5, flags=END_OF_STREAM).pack(), b""])
        acks = []
        while not acks or not acks[-1][0].flags & END_OF_STREAM:
            assert d.poll(TIMEOUT * 1000)
            ack, info = d.recv_multipart()
            acks.append((Header.unpack(ack), info))
        assert [(h.flags, h.seq) for h, _ in acks] == [(ACK, 1), (ACK, 3), (ACK, 5), (ACK | END_OF_STREAM, 5)]
        assert json.loads(info) == {"batches": 3, "records": 9, "lost_batches": 2, "gaps": 2, "out_of_order": 0}
    finally:
        ctx.destroy(linger=1000)
    code, out, err = finish(tap)
    assert code == 1
    assert len(out.splitlines()) == 9
    assert "probe 5 shard 0: 1 batches lost (sequence 1 to 1)" in err
    assert "probe 5 shard 0: 1 batches lost (sequence 3 to 3)" in err
    assert "2 batches lost" in err.splitlines()[-1]


def test_tap_rejects_another_schema_with_a_clear_error(tmp_path):
    tap, eps = start_tap("--listen", ipc(tmp_path, "t"), "--count")
    ctx = zmq.Context()
    d = _dealer(ctx, eps[0])
    try:
        d.send_multipart(_batch(0, schema=SCHEMA_VERSION + 1))
        assert d.poll(TIMEOUT * 1000)
        nack, info = d.recv_multipart()
        assert Header.unpack(nack).flags & REJECT
        assert f"record schema version {SCHEMA_VERSION + 1}" in json.loads(info)["error"]
        d.send_multipart(_batch(1))                # ignored from then on
        time.sleep(0.2)
    finally:
        ctx.destroy(linger=1000)
    tap.send_signal(signal.SIGINT)
    code, out, err = finish(tap)
    assert code == 1 and out.strip() == "0"
    assert re.search(f"probe 5 at .*: record schema version {SCHEMA_VERSION + 1}; this side reads version "
                     f"{SCHEMA_VERSION}", err)
    assert "2 messages rejected" in err


def test_probe_stops_with_exit_3_when_the_engine_rejects_it(tmp_path):
    ep = ipc(tmp_path, "e")
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.bind(ep)

    def engine():
        if router.poll(TIMEOUT * 1000):
            ident, hdr, _ = router.recv_multipart()
            router.send_multipart([ident, Header(flags=REJECT).pack(), b'{"error": "record schema version 1; '
                                                                         b'this side reads version 2"}'])
    t = threading.Thread(target=engine)
    t.start()
    probe = run_probe("--pcap", str(ROOT / "pcaps" / "mixed_small.pcap"), "--push", ep, "--lossless",
                      "--batch", "10", "--loop", "0")
    t.join()
    ctx.destroy(linger=0)
    assert probe.returncode == 3
    assert "shard 0 (" in probe.stderr and "rejected the stream: record schema version 1" in probe.stderr


def test_receiver_rejects_what_it_cannot_read(tmp_path):
    rx = Receiver([ipc(tmp_path, "r")])
    ctx = zmq.Context()
    try:
        cases = [([b"hello"], "a message of 1 parts"),
                 ([b"x" * 48, b""], "magic"),
                 (_batch(0, record_size=RECORD_DTYPE.itemsize + 8), f"{RECORD_DTYPE.itemsize + 8}-byte records"),
                 ([_batch(0)[0], b"\0" * 10], "10 bytes of records for a count of 3")]
        for frames, text in cases:
            d = _dealer(ctx, rx.endpoints[0])           # a new peer each time: one error each
            d.send_multipart(frames)
            with pytest.raises(WireError, match=text):
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    rx.recv(100)
            assert d.poll(5000) and Header.unpack(d.recv_multipart()[0]).flags & REJECT
    finally:
        rx.close()
        ctx.destroy(linger=0)


def test_sigint_stops_a_probe_cleanly_with_a_summary(tmp_path):
    tap, eps = start_tap("--listen", ipc(tmp_path, "t"), "--count", "--expect-eos", "1")
    stats = tmp_path / "probe.json"
    probe = subprocess.Popen(CLI + ["probe", "--pcap", str(ROOT / "pcaps" / "mixed_small.pcap"), "--push", eps[0],
                                    "--loop", "0", "--speed", "20x", "--status-interval", "0.2",
                                    "--stats-json", str(stats)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    probe.send_signal(signal.SIGINT)
    pcode, _, perr = finish(probe)
    code, out, err = finish(tap)
    assert pcode == 0 and code == 0, perr + err
    lines = perr.splitlines()
    assert any("packets (" in line and "records (" in line and "drops: none" in line for line in lines[:-1])
    assert "stopped in" in lines[-1] and "acknowledged by 1/1" in lines[-1]
    st = json.loads(stats.read_text())
    assert st["interrupted"] and not st["running"] and st["records"] == int(out) > 0


# --- batching ------------------------------------------------------------------------------------

def test_batches_flush_at_n_records_or_t_ms_and_once_more_on_stop(tmp_path):
    ep = ipc(tmp_path, "b")
    rx = Receiver([ep])
    pub = Publisher([ep], batch=100, flush_ms=50, lossless=True)
    try:
        got = []

        def take(timeout=2.0):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                r = rx.recv(20)
                if r is not None:
                    got.append(r)
                    return r
            return None

        pub.add(records(250), None)                   # two full batches go at once, 50 wait
        assert [take().header.count, take().header.count] == [100, 100]
        assert take(0.2) is None
        time.sleep(0.06)
        pub.tick()                                      # 50 ms passed: the rest goes
        assert take().header.count == 50
        pub.add(records(7), None)
        closer = threading.Thread(target=pub.close, args=(5,))
        closer.start()
        last = take()
        assert last.header.count == 7 and not last.end_of_stream
        eos = take()
        closer.join()
        assert eos.end_of_stream and eos.header.seq == 4
        assert [g.header.seq for g in got] == [0, 1, 2, 3, 4]
        assert pub.links[0].acked == {"batches": 4, "records": 257, "lost_batches": 0, "gaps": 0,
                                      "out_of_order": 0}
        h = got[0].header
        assert (h.first_ts, h.last_ts) == (int(got[0].records["ts_ns"].min()), int(got[0].records["ts_ns"].max()))
    finally:
        pub.abort()
        rx.close()


def test_paced_replay_follows_the_capture_timing():
    path = ROOT / "pcaps" / "mixed_small.pcap"      # 200 s of capture time
    src = PcapReplay([path], Options(), speed=400.0)
    t0 = time.monotonic()
    got = [r for r in src if len(r)]
    elapsed = time.monotonic() - t0
    span = (max(int(r["ts_ns"].max()) for r in got) - min(int(r["ts_ns"].min()) for r in got)) / 1e9
    assert sum(map(len, got)) == MIXED_RECORDS and len(got) > 1
    assert elapsed >= 0.8 * span / 400


# --- sharding ------------------------------------------------------------------------------------

def test_splitmix64_is_the_published_function():
    # splitmix64 seeded with 0: its first outputs (Vigna's reference implementation)
    assert splitmix64(np.array([0], np.uint64))[0] == np.uint64(0xE220A8397B1DCDAF)
    assert splitmix64(np.array([0x9E3779B97F4A7C15], np.uint64))[0] == np.uint64(0x6E789E6AA1B965F4)


def subscribers(n: int, start: int) -> tuple:
    imsi = pack(np.array([f"00101{start + i:010d}" for i in range(n)], "U16"))
    msisdn = pack(np.array([f"4477{start + i:08d}" for i in range(n)], "U16"))
    return imsi, msisdn


def test_each_subscriber_lands_on_one_shard_for_every_key_type(tmp_path):
    """IMSI; MSISDN learned from a record with both; MSISDN from the key map; MSISDN only."""
    n = 300
    a_imsi, a_msisdn = subscribers(n, 0)            # learned: IMSI records, then both, then MSISDN only
    b_imsi, b_msisdn = subscribers(n, 1000)         # key map: IMSI records and MSISDN-only ones
    _, c_msisdn = subscribers(n, 2000)              # MSISDN only
    kmap = tmp_path / "keys.csv"
    kmap.write_text("msisdn,imsi\n" + "".join(f"4477{1000 + i:08d},00101{1000 + i:010d}\n" for i in range(n)))
    stream = [
        records(n, imsi=a_imsi),
        records(n, imsi=a_imsi, msisdn=a_msisdn),
        records(n, msisdn=a_msisdn),
        records(n, imsi=b_imsi),
        records(n, msisdn=b_msisdn),
        records(n, msisdn=c_msisdn),
        records(n, msisdn=c_msisdn, kind=9),
        records(5, imei=pack("35693803564380")),    # no subscriber: shard 0
    ]
    # the Sharder alone: the key of each record, and where it goes
    sharder = Sharder(3, KeyMap.load(kmap))
    want_sources = [KeySource.IMSI, KeySource.IMSI, KeySource.LEARNED, KeySource.IMSI, KeySource.KEY_MAP,
                    KeySource.MSISDN, KeySource.MSISDN, KeySource.NONE]
    for recs, want in zip(stream, want_sources):
        key, source = sharder.keys(recs)
        assert (source == want).all()
    # over the wire: three engine shards
    eps = [ipc(tmp_path, f"shard{i}") for i in range(3)]
    col = Collector(eps, eos=3)
    pub = Publisher(col.endpoints, batch=128, lossless=True)
    sharder = Sharder(3, KeyMap.load(kmap))
    for recs in stream:
        pub.add(recs, sharder.assign(recs))
    pub.close(10)
    shards = col.join()
    assert sum(map(len, shards)) == sum(map(len, stream))
    owner = dict(zip(a_msisdn.tolist() + b_msisdn.tolist(), a_imsi.tolist() + b_imsi.tolist()))
    where = {}                                      # subscriber -> shards its records reached
    for s, recs in enumerate(shards):
        for imsi, msisdn, imei in zip(recs["imsi"].tolist(), recs["msisdn"].tolist(), recs["imei"].tolist()):
            sub = imsi if imsi != NONE else owner.get(msisdn, msisdn) if msisdn != NONE else ("imei", imei)
            where.setdefault(sub, set()).add(s)
    assert len(where) == 3 * n + 1 and all(len(v) == 1 for v in where.values())
    assert where[("imei", int(pack("35693803564380")))] == {0}
    assert all(len(r) for r in shards)               # 900 subscribers spread over all three
    assert all(where[i] == {s} for i, s in zip(a_imsi.tolist(), shard_of(a_imsi, 3).tolist()))


NONE = 0xFFFFFFFFFFFFFFFF


def test_a_capture_over_three_shards_keeps_each_imsi_on_one_shard(tmp_path):
    eps = [ipc(tmp_path, f"shard{i}") for i in range(3)]
    col = Collector(eps, eos=3)
    src = PcapReplay([ROOT / "pcaps" / "mixed_small.pcap"], Options())
    run = ProbeRun(src, ProbeSettings(push=col.endpoints, lossless=True, status_interval=0), stop=src.stop,
                   err=open("/dev/null", "w"))
    assert run.run() == 0
    shards = col.join()
    assert sum(map(len, shards)) == MIXED_RECORDS and all(len(s) for s in shards)
    where = {}
    for s, recs in enumerate(shards):
        for imsi in recs["imsi"][recs["imsi"] != np.uint64(NONE)].tolist():
            where.setdefault(imsi, set()).add(s)
    assert where and all(len(v) == 1 for v in where.values())
    counts = run.sharder.counts()
    assert counts["imsi"] > 0 and counts["msisdn"] + counts["learned"] > 0 and counts["none"] > 0


def test_the_sharding_loop_agrees_with_a_plain_model(tmp_path):
    """probe._shard against the rules written out in Python: per record IMSI, else the IMSI a
    record with both bound to its MSISDN (earlier, or anywhere in the same batch), else the key
    map's, else the MSISDN, else none (shard 0); shard = splitmix64(key) % shards."""
    rng = np.random.default_rng(5)
    imsi, msisdn = subscribers(400, 0)
    kmap = tmp_path / "keys.csv"
    mapped = range(300, 350)
    kmap.write_text("msisdn,imsi\n" + "".join(f"4477{i:08d},00101{9000 + i:010d}\n" for i in mapped))
    sharder = Sharder(3, KeyMap.load(kmap))
    bound = {}
    for _batch in range(6):
        n = 500
        who = rng.integers(0, 400, n)
        has = rng.integers(0, 4, n)                 # 0 none, 1 IMSI, 2 MSISDN, 3 both
        recs = records(n, imsi=np.where(has & 1, imsi[who], np.uint64(NONE)),
                       msisdn=np.where(has & 2, msisdn[who], np.uint64(NONE)))
        for w, h in zip(who.tolist(), has.tolist()):
            if h == 3:
                bound[int(msisdn[w])] = int(imsi[w])
        want_key, want_src = [], []
        for w, h in zip(who.tolist(), has.tolist()):
            m = int(msisdn[w])
            if h & 1:
                want_key.append(int(imsi[w])), want_src.append(KeySource.IMSI)
            elif not h:
                want_key.append(NONE), want_src.append(KeySource.NONE)
            elif m in bound:
                want_key.append(bound[m]), want_src.append(KeySource.LEARNED)
            elif w in mapped:
                want_key.append(int(pack(f"00101{9000 + w:010d}"))), want_src.append(KeySource.KEY_MAP)
            else:
                want_key.append(m), want_src.append(KeySource.MSISDN)
        before = sharder.by_source.copy()
        got = sharder.assign(recs)
        want_key = np.array(want_key, np.uint64)
        want_shard = np.where(np.array(want_src) == KeySource.NONE, 0, shard_of(want_key, 3))
        assert got.tolist() == want_shard.tolist()
        assert (sharder.by_source - before).tolist() == np.bincount(want_src, minlength=len(KeySource)).tolist()
        key, src = Sharder(3, KeyMap.load(kmap)).keys(recs)     # a fresh one: same-batch bindings only
        assert ((src == KeySource.IMSI) == (has & 1).astype(bool)).all()


def test_bindings_are_bounded_and_keep_the_recent_ones():
    b = Bindings(capacity=64, ways=4)
    imsi, msisdn = subscribers(1000, 0)
    for i in range(0, 1000, 50):
        b.learn(msisdn[i:i + 50], imsi[i:i + 50])
    assert len(b) <= b.capacity == 64 and b.evicted >= 1000 - 64
    got, found = b.lookup(msisdn[-10:])
    assert found.sum() >= 5 and (got[found] == imsi[-10:][found]).all()
    b.learn(msisdn[-1:], imsi[:1])                  # a new binding replaces the old one
    assert b.lookup(msisdn[-1:])[0][0] == imsi[0]


def test_key_map_skips_and_names_malformed_rows(tmp_path):
    f = tmp_path / "keys.csv"
    f.write_text("msisdn,imsi\n# comment\n447700000001,001010000000001\nnot,a row\n447700000002,00101x\n"
                 "447700000001,001010000000009\n")
    km = KeyMap.load(f)
    assert len(km) == 1 and km.bad_rows == 2 and km.first_bad.startswith(f"{f}:4:")
    got, found = km.lookup(pack(np.array(["447700000001", "447700000003"], "U16")))
    assert found.tolist() == [True, False] and got[0] == pack("001010000000009")   # the last row wins


# --- the command line ----------------------------------------------------------------------------

def test_probe_usage_errors_exit_2(tmp_path):
    pcap = str(PCAPS[0])
    runner = CliRunner()
    for args, text in [(["--pcap", pcap], "--push"),
                       ([pcap, "--push", "tcp://127.0.0.1:5"], "--pcap"),
                       (["--pcap", pcap, "--push", "udp://x:1"], "not a ZeroMQ endpoint"),
                       (["--pcap", pcap, "--push", "tcp://127.0.0.1:70000"], "the port must be 0 to 65535"),
                       (["--pcap", pcap, "--push", "tcp://127.0.0.1:5", "--speed", "fast"], "max, 1x"),
                       (["--pcap", pcap, "--push", "tcp://127.0.0.1:5", "--speed", "0x"], "above 0"),
                       (["--pcap", pcap, "--push", "tcp://127.0.0.1:5", "--map-ssn", "6-x"], "--map-ssn")]:
        res = runner.invoke(main, ["probe", *args])
        assert res.exit_code == 2 and text in res.output, (args, res.output)
    res = runner.invoke(main, ["tap", "--count"])
    assert res.exit_code == 2 and "--listen" in res.output


def test_probe_takes_options_from_config_and_environment(tmp_path):
    ep = ipc(tmp_path, "cfg")
    col = Collector([ep], eos=1)
    cfg = tmp_path / "tp.toml"
    cfg.write_text(f'[probe]\npush = ["{col.endpoints[0]}"]\nlossless = true\nstatus-interval = 0\n'
                   f'probe-id = 3\n')
    stats = tmp_path / "st.json"
    res = CliRunner().invoke(main, ["--config", str(cfg), "probe", "--pcap", str(PCAPS[0])],
                             env={"TOUCHPOINT_PROBE_PROBE_ID": "4", "TOUCHPOINT_PROBE_STATS_JSON": str(stats)})
    assert res.exit_code == 0, res.output
    got = col.join()[0]
    assert len(got) == len(decode_lines(PCAPS[0])) and set(got["probe_id"].tolist()) == {4}
    assert json.loads(stats.read_text())["probe_id"] == 4
