"""Faults, with real processes and sockets: engines absent, killed and restarted, slower than the
probe; a probe that is full everywhere; rotating files written while the probe runs and a probe
restarted halfway; the status line and the metrics endpoint that tell about it.

The probe never waits for an engine here (no --lossless): it must keep going, count what it drops
by cause, and the receivers must see the same losses as sequence gaps. Waits are on conditions
(counters in --stats-json), each with a deadline; nothing asserts a duration.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path


import pytest

from tests import test_probe
from tests.test_probe import CLI, ROOT, TIMEOUT, decode_lines, finish
from tests.test_watch import pcap_records

MIXED = ROOT / "pcaps" / "mixed_small.pcap"
MAP = ROOT / "pcaps" / "map_mixed_small.pcap"
DEADLINE = 60
_started: list = []          # processes of the running test, killed at its end if still there


@pytest.fixture(autouse=True)
def _no_leftovers():
    yield
    while _started:
        proc = _started.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(TIMEOUT)


def start_tap(*args) -> tuple:
    tap, eps = test_probe.start_tap(*args)
    _started.append(tap)
    return tap, eps


class Probe:
    """A `touchpoint probe` subprocess with its counters in a --stats-json file."""

    def __init__(self, tmp_path, *args, name="probe"):
        self.stats_path = tmp_path / f"{name}.json"
        self.err = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(CLI + ["probe", "--stats-json", str(self.stats_path), *args],
                                     stdout=subprocess.DEVNULL, stderr=self.err, text=True)
        _started.append(self.proc)

    def stats(self) -> dict:
        try:
            return json.loads(self.stats_path.read_text())
        except (OSError, ValueError):
            return {}

    def wait(self, cond, what: str) -> dict:
        deadline = time.monotonic() + DEADLINE
        while True:
            st = self.stats()
            if st and cond(st):
                return st
            assert self.proc.poll() is None, f"probe ended ({self.proc.returncode}) waiting for {what}: {self.stderr()}"
            assert time.monotonic() < deadline, f"no {what} within {DEADLINE} s: {st}"
            time.sleep(0.05)

    def stderr(self) -> str:
        self.err.seek(0)
        return self.err.read()

    def stop(self, sig=signal.SIGTERM) -> tuple:
        """Signal it, wait for its end: (exit code, final stats, stderr)."""
        self.proc.send_signal(sig)
        code = self.proc.wait(TIMEOUT)
        return code, self.stats(), self.stderr()


def free_tcp() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def dropped(st: dict, cause: str, what="records") -> int:
    return st["drops"][cause][what]


def all_dropped(st: dict, what="records") -> int:
    return sum(d[what] for d in st["drops"].values())


def tap_total(err: str) -> tuple:
    """(records, batches lost) from tap's last line."""
    last = err.strip().splitlines()[-1]
    words = last.split()
    return int(words[2].replace(",", "")), int(last.split(" probe runs, ")[1].split()[0].replace(",", ""))


# --- engines that are not there, die, or are slow ------------------------------------------------

FAST_REPLAY = ["--pcap", str(MIXED), "--loop", "0", "--speed", "200x", "--batch", "50", "--queue", "100",
               "--status-interval", "0.2"]


def test_engine_absent_at_start_then_started(tmp_path):
    ep = free_tcp()
    probe = Probe(tmp_path, *FAST_REPLAY, "--push", ep)
    probe.wait(lambda st: dropped(st, "engine_absent") > 0, "engine_absent drops while no engine listens")
    tap, _ = start_tap("--listen", ep, "--count", "--expect-eos", "1")
    probe.wait(lambda st: st["shards"][0]["connected"] and st["shards"][0]["sent_records"] > 500,
               "records flowing to the engine that came")
    code, st, perr = probe.stop()
    tcode, out, terr = finish(tap)
    assert code == 0, perr
    assert "engine absent" in perr.splitlines()[-1] and "acknowledged by 1/1" in perr.splitlines()[-1]
    # every record cut either reached the tap or was dropped (and counted) by the probe; every
    # dropped batch is a gap the tap reported
    received, lost = tap_total(terr)
    assert int(out) == received > 0
    assert received + all_dropped(st) == st["records"]
    assert lost == all_dropped(st, "batches") > 0 and re.search(r"\d+ batches lost \(sequence \d+ to \d+\)", terr)
    assert tcode == 1
    assert st["shards"][0]["engine"]["lost_batches"] == lost      # what the tap acknowledged


def test_engine_killed_mid_stream_and_restarted(tmp_path):
    ep = free_tcp()
    tap1, _ = start_tap("--listen", ep, "--count")
    probe = Probe(tmp_path, *FAST_REPLAY, "--push", ep)
    probe.wait(lambda st: st["shards"][0]["sent_records"] > 500, "records flowing to the first engine")
    tap1.kill()                                        # SIGKILL: no goodbye
    tap1.wait(TIMEOUT)
    finish(tap1)
    before = probe.wait(lambda st: not st["shards"][0]["connected"], "the probe noticing the dead engine")
    probe.wait(lambda st: dropped(st, "engine_absent") > dropped(before, "engine_absent"),
               "engine_absent drops while the engine is dead")
    tap2, _ = start_tap("--listen", ep, "--count", "--expect-eos", "1")
    probe.wait(lambda st: st["shards"][0]["connects"] == 2 and st["shards"][0]["connected"],
               "the probe reconnected to the restarted engine")
    code, st, perr = probe.stop()
    tcode, out, terr = finish(tap2)
    assert code == 0, perr
    last = perr.splitlines()[-1]
    assert "stopped in" in last and "engine absent" in last and "acknowledged by 1/1" in last
    assert st["shards"][0]["disconnects"] >= 1 and dropped(st, "engine_absent") > 0
    received, lost = tap_total(terr)
    assert int(out) == received > 0 and tcode == 1
    assert "batches lost (sequence 0 to" in terr        # everything before it, as the new engine sees it
    assert received < st["records"]


SLOW_ENGINE = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
import zmq
from touchpoint.probe.transport.receiving import Receiver
rx = Receiver([sys.argv[2]], setup=lambda sock: sock.setsockopt(zmq.RCVHWM, 1))   # no slack in libzmq
print(rx.endpoints[0], flush=True)
got = gaps = 0
while True:
    r = rx.recv(100)
    if r is None:
        continue
    gaps += bool(r.lost)
    if r.end_of_stream:
        print(json.dumps(dict(r.stream.summary(), gap_reports=gaps)), flush=True)
        break
    got += len(r.records)
    time.sleep(0.02)                    # a slow engine: 20 ms for every batch
rx.close()
"""


def test_slower_engine_than_probe_drops_the_oldest_and_the_probe_never_waits(tmp_path):
    engine = subprocess.Popen([sys.executable, "-c", SLOW_ENGINE, str(ROOT), f"ipc://{tmp_path}/slow.sock"],
                              stdout=subprocess.PIPE, text=True)
    _started.append(engine)
    ep = engine.stdout.readline().strip()
    probe = Probe(tmp_path, "--pcap", str(MIXED), "--loop", "300", "--batch", "100", "--queue", "1000",
                  "--status-interval", "0.05", "--push", ep)
    code = probe.proc.wait(TIMEOUT)                    # the replay ends by itself: nothing held it up
    st, perr = probe.stats(), probe.stderr()
    summary = json.loads(engine.stdout.readline())
    engine.wait(TIMEOUT)
    assert code == 0, perr
    assert st["records"] == 300 * test_probe.MIXED_RECORDS
    assert dropped(st, "queue_full", "batches") > 0
    assert summary["records"] + all_dropped(st) == st["records"]
    assert summary["lost_batches"] == all_dropped(st, "batches") and summary["gap_reports"] > 0
    shard = st["shards"][0]
    assert shard["queued_max"] <= shard["queue_capacity"] == 1000        # bounded
    assert "queue full" in perr.splitlines()[-1] and "acknowledged by 1/1" in perr.splitlines()[-1]
    status = [line for line in perr.splitlines() if " packets (" in line]
    assert status and all("queued " in line and "(lag " in line for line in status)


def test_memory_stays_bounded_with_every_queue_full(tmp_path):
    """3 shards, no engine, an endless replay: every queue fills and stays full; the probe's
    resident memory (its high-water mark) stays under 300 MB."""
    eps = [f"ipc://{tmp_path}/absent{i}.sock" for i in range(3)]
    probe = Probe(tmp_path, "--pcap", str(MIXED), "--messages", "--loop", "0", "--status-interval", "0.2",
                  *[a for ep in eps for a in ("--push", ep)])
    full = lambda st: all(s["drops"]["engine_absent"]["batches"] >= 3 for s in st["shards"])
    probe.wait(full, "every shard's queue full and dropping")
    hwm_kb = int(next(line.split()[1] for line in Path(f"/proc/{probe.proc.pid}/status").read_text().splitlines()
                      if line.startswith("VmHWM:")))
    code, st, perr = probe.stop()
    assert code == 0, perr
    assert all(s["queued_max"] >= s["queue_capacity"] - 4096 for s in st["shards"])
    print(f"probe VmHWM with 3 full queues: {hwm_kb / 1024:.0f} MB")
    assert hwm_kb < 300 * 1024


# --- rotating files, a restart halfway -----------------------------------------------------------

class Writer(threading.Thread):
    """dumpcap -b files: ring files written record by record; pauses at `hold` (file, record)
    until released, so the test can stop the probe exactly there."""

    def __init__(self, directory, chunks, hold):
        super().__init__(daemon=True)
        self.dir, self.chunks, self.hold = directory, chunks, hold
        self.held = threading.Event()
        self.release = threading.Event()
        self.files = []

    def run(self):
        for i, (header, recs) in enumerate(self.chunks):
            path = self.dir / f"cap_{i + 1:05d}_20261129{93000 + i:06d}.pcap"
            self.files.append(path)
            with open(path, "wb") as f:
                f.write(header)
                for j, rec in enumerate(recs):
                    if (i, j) == self.hold:
                        f.write(rec[:20])                      # stop inside a record
                        f.flush()
                        self.held.set()
                        self.release.wait(TIMEOUT)
                        f.write(rec[20:])
                    else:
                        f.write(rec)
                    if j % 10 == 0:
                        f.flush()
                        time.sleep(0.003)
        last = self.dir / f"cap_{len(self.chunks) + 1:05d}_20261129{93000 + len(self.chunks):06d}.pcap"
        last.write_bytes(self.chunks[0][0])                    # the next file starts: all before are complete


def test_rotating_files_each_packet_once_across_a_probe_restart(tmp_path):
    """Files appear, grow and rotate while the probe runs; the probe is stopped (SIGTERM) in the
    middle of a file and restarted: the tap receives exactly what `touchpoint decode` gives for
    each file - nothing twice, nothing missed, dialogues across the stop whole."""
    d = tmp_path / "ring"
    d.mkdir()
    mixed, maps = pcap_records(MIXED), pcap_records(MAP)
    chunks = [(mixed[0], mixed[1][:130]), (mixed[0], mixed[1][130:270]), (maps[0], maps[1][:150]),
              (mixed[0], mixed[1][270:]), (maps[0], maps[1][150:])]
    writer = Writer(d, chunks, hold=(2, 70))
    tap, eps = start_tap("--listen", "tcp://127.0.0.1:0", "--format", "jsonl", "--expect-eos", "2")
    args = ["--watch", str(d), "--push", eps[0], "--status-interval", "0.1", "--flush-ms", "20"]
    probe = Probe(tmp_path, *args, name="first")
    writer.start()
    assert writer.held.wait(TIMEOUT)
    third = writer.files[2].name
    probe.wait(lambda st: st["source"]["current_file"] == third and st["source"]["current_offset"] > 24,
               "the probe inside the third file")
    code, st, perr = probe.stop()
    assert code == 0 and "acknowledged by 1/1" in perr, perr
    state = json.loads((d / ".touchpoint-probe-0.json").read_text())
    assert state["current"]["name"] == third and 0 < state["current"]["frames"] <= 70
    writer.release.set()                                        # the writer goes on while no probe runs
    writer.join(TIMEOUT)
    probe2 = Probe(tmp_path, *args, name="second")
    probe2.wait(lambda st: st["source"]["files_done"] == len(chunks), "every file done")
    code2, st2, perr2 = probe2.stop()
    tcode, out, terr = finish(tap)
    assert code2 == 0 and tcode == 0, perr2 + terr
    assert f"{third}: resuming after {state['current']['frames']} frames" in perr2
    want = [line for f in writer.files for line in decode_lines(f)]
    assert sorted(out.splitlines()) == sorted(want)
    assert st["records"] + st2["records"] == len(want)
    assert st2["source"]["files_missed"] == st2["source"]["files_bad"] == 0


# --- what it tells -------------------------------------------------------------------------------

def scrape(url: str) -> dict:
    """Prometheus text -> {'name{labels}': value}."""
    with urllib.request.urlopen(url, timeout=5) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def test_metrics_endpoint_tells_what_the_probe_counts(tmp_path):
    d = tmp_path / "ring"
    d.mkdir()
    header, recs = pcap_records(MIXED)
    (d / "a.pcap").write_bytes(header + b"".join(recs))
    (d / "b.pcap").write_bytes(header)                  # newer: a.pcap is complete
    os.utime(d / "a.pcap", ns=(time.time_ns() - 10**10,) * 2)
    want = len(decode_lines(d / "a.pcap"))
    tap, eps = start_tap("--listen", f"ipc://{tmp_path}/s0", "--count", "--expect-eos", "1")
    absent = f"ipc://{tmp_path}/nobody"
    probe = Probe(tmp_path, "--watch", str(d), "--push", eps[0], "--push", absent, "--metrics-port", "127.0.0.1:0",
                  "--status-interval", "0.1", "--probe-id", "9")
    probe.wait(lambda st: st["source"]["files_done"] == 1 and st["records"] == want, "a.pcap done")
    deadline = time.monotonic() + DEADLINE
    while "metrics on " not in probe.stderr():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    url = probe.stderr().split("metrics on ", 1)[1].split()[0]
    m = {}
    p = 'probe="9"'
    while m.get(f"touchpoint_probe_records_total{{{p}}}") != want or \
            m.get(f'touchpoint_probe_engine_up{{{p},shard="0"}}') != 1:
        assert time.monotonic() < deadline, m
        m = scrape(url)
        time.sleep(0.1)
    assert m[f"touchpoint_probe_packets_total{{{p}}}"] == len(recs)
    assert m[f'touchpoint_probe_source{{{p},name="files_done"}}'] == 1
    assert m[f'touchpoint_probe_layer_packets_total{{{p},layer="map"}}'] > 0
    assert f'touchpoint_probe_anomalies_total{{{p},layer="sctp",class="malformed"}}' in m
    assert m[f'touchpoint_probe_engine_up{{{p},shard="1"}}'] == 0
    for shard in "01":
        assert f'touchpoint_probe_lag_seconds{{{p},shard="{shard}"}}' in m
        assert m[f'touchpoint_probe_queue_capacity_records{{{p},shard="{shard}"}}'] == 262144 // 2
        for cause in ("queue_full", "engine_absent", "stopped"):
            assert f'touchpoint_probe_dropped_records_total{{{p},shard="{shard}",cause="{cause}"}}' in m
    cut = [m[f'touchpoint_probe_shard_records_total{{{p},shard="{shard}"}}'] for shard in "01"]
    assert sum(cut) == want and all(cut)
    code, st, perr = probe.stop()
    tcode, out, terr = finish(tap)
    assert code == 0 and int(out) == cut[0]
    assert dropped(st, "engine_absent") == cut[1]                     # shard 1's engine never came
    status = [line for line in perr.splitlines() if " packets (" in line]
    assert status and all(re.search(r"queued [\d,]+/[\d,]+ \(lag [\d.]+/[\d.]+ s\)", line) for line in status)


def test_a_gap_the_engine_reports_is_never_drops_none(tmp_path):
    """A receiver that acknowledges every batch but says at the end of stream that 2 were missing
    (they were lost on the way, not by the probe): the summary says so, and --lossless fails."""
    import zmq

    from touchpoint.probe.transport.wire import ACK, END_OF_STREAM, Header

    ep = test_probe.ipc(tmp_path, "liar")
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.bind(ep)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            if not router.poll(50):
                continue
            ident, raw, _ = router.recv_multipart()
            h = Header.unpack(raw)
            if h.flags & END_OF_STREAM:
                said = {"batches": h.seq - 2, "records": 0, "lost_batches": 2, "gaps": 1, "out_of_order": 0}
                reply = Header(probe_id=h.probe_id, shard=h.shard, flags=END_OF_STREAM | ACK, epoch=h.epoch, seq=h.seq)
                router.send_multipart([ident, reply.pack(), json.dumps(said).encode()])
            else:
                reply = Header(probe_id=h.probe_id, shard=h.shard, flags=ACK, epoch=h.epoch, seq=h.seq + 1)
                router.send_multipart([ident, reply.pack(), b""])

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        for args, code in (((), 0), (("--lossless",), 3)):
            res = test_probe.run_probe("--pcap", str(MIXED), "--push", ep, "--batch", "16", *args)
            assert res.returncode == code, res.stderr
            assert "drops: none here, 2 batches the engines never got, end of stream acknowledged by 1/1" \
                in res.stderr
            assert "drops: none," not in res.stderr
        assert "; --lossless: the engines missed batches" in res.stderr
    finally:
        stop.set()
        t.join()
        router.close(linger=0)
        ctx.term()
