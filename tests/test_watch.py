"""probe.watch.WatchDir: a directory of rotating capture files, followed as writers write them.

Files are written here record by record (pcap records cut from the sample captures), grown in
pieces that split records, and rotated; the records must be exactly those of `touchpoint decode`
on each finished file, also across a restart.
"""
import json
import os
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from touchpoint.probe.decode import Options, decode_file
from touchpoint.probe.record import RECORD_DTYPE
from touchpoint.probe.watch import WatchDir, dumpcap_seq, natural

ROOT = Path(__file__).resolve().parents[1]
MIXED = ROOT / "pcaps" / "mixed_small.pcap"
MAP = ROOT / "pcaps" / "map_mixed_small.pcap"
TIMEOUT = 30


def pcap_records(path) -> tuple:
    """(24-byte file header, [each capture record's bytes])."""
    data = Path(path).read_bytes()
    pos, out = 24, []
    while pos < len(data):
        n = struct.unpack_from("<I", data, pos + 8)[0]
        out.append(data[pos:pos + 16 + n])
        pos += 16 + n
    return data[:24], out


def decoded(*paths) -> np.ndarray:
    parts = [r for p in paths for r in decode_file(p)]
    return np.concatenate(parts) if parts else np.empty(0, RECORD_DTYPE)


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """The same records, as multisets (shards and batches do not keep order across files)."""
    return len(a) == len(b) and np.array_equal(np.sort(a.view(np.void)), np.sort(b.view(np.void)))


class Consumer:
    """A WatchDir iterated on a thread, as ProbeRun does; keeps every record."""

    def __init__(self, directory, **kw):
        self.lines = []
        self.src = WatchDir(directory, Options(), poll=0.02, report=self.lines.append, **kw)
        self.got = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        for r in self.src:
            if len(r):
                self.got.append(r.copy())

    def records(self) -> np.ndarray:
        return np.concatenate(self.got) if self.got else np.empty(0, RECORD_DTYPE)

    def wait(self, cond, what: str):
        deadline = time.monotonic() + TIMEOUT
        while not cond():
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {self.src.counters()} {self.lines}"
            time.sleep(0.02)

    def stop(self):
        self.src.stop.set()
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive()


def write_growing(path, header, records, pause=0.002):
    """A writer's way: the header, then records, flushed in pieces that cut records in two."""
    with open(path, "wb") as f:
        f.write(header)
        f.flush()
        for i, rec in enumerate(records):
            if i % 7 == 0:
                f.write(rec[:11])
                f.flush()
                time.sleep(pause)
                f.write(rec[11:])
            else:
                f.write(rec)
            if i % 5 == 0:
                f.flush()
                time.sleep(pause)


def test_rotating_files_are_decoded_once_each_as_they_grow(tmp_path):
    header, recs = pcap_records(MIXED)
    c = Consumer(tmp_path)
    names = [tmp_path / f"cap_{i + 1:05d}_20261129{9 + i:02d}3000.pcap" for i in range(4)]
    for i, name in enumerate(names):
        write_growing(name, header, recs[i * 100:(i + 1) * 100])
    c.wait(lambda: c.src.files_done == 3, "three finished files")
    assert same(c.records()[:len(decoded(*names[:3]))], decoded(*names[:3]))
    open(tmp_path / "cap_00005_20261129133000.pcap", "wb").write(header)      # the fourth is complete now
    c.wait(lambda: c.src.files_done == 4 and (c.src.current or {}).get("name") == "cap_00005_20261129133000.pcap",
           "the fourth file done, the fifth started")
    c.stop()
    assert same(c.records(), decoded(*names))
    assert (c.src.files_bad, c.src.files_missed, c.src.files_truncated) == (0, 0, 0)
    st = json.loads((tmp_path / ".touchpoint-probe-0.json").read_text())
    assert st["mark"]["name"] == names[-1].name and st["current"]["name"] == "cap_00005_20261129133000.pcap"
    assert st["files_done"] == 4


def test_a_restart_resumes_the_half_done_file_without_repeating_or_losing_records(tmp_path):
    header, recs = pcap_records(MIXED)
    a, b = tmp_path / "x.pcap", tmp_path / "x.pcap1"
    write_growing(a, header, recs[:200])
    with open(b, "wb") as f:                        # half of the next file, ending inside a record
        f.write(header + b"".join(recs[200:300]) + recs[300][:30])
    c = Consumer(tmp_path)
    c.wait(lambda: c.src.files_done == 1 and (c.src.current or {}).get("frames") == 100, "x.pcap1 half done")
    c.stop()
    first = c.records()
    st = json.loads((tmp_path / ".touchpoint-probe-0.json").read_text())
    assert st["current"]["name"] == "x.pcap1" and st["current"]["frames"] == 100
    assert st["current"]["offset"] == 24 + sum(map(len, recs[200:300]))
    with open(b, "ab") as f:                         # the writer went on meanwhile, and rotated
        f.write(recs[300][30:] + b"".join(recs[301:]))
    open(tmp_path / "x.pcap2", "wb").write(header)
    c2 = Consumer(tmp_path)
    c2.wait(lambda: c2.src.files_done == 2, "x.pcap1 finished after the restart (counts go on)")
    c2.stop()
    assert any("resuming after 100 frames" in line for line in c2.lines)
    assert c2.src.replayed_frames == 100
    # exactly the records of both files: nothing twice, nothing missing, dialogues across the stop whole
    assert same(np.concatenate([first, c2.records()]), decoded(a, b))


def test_bad_truncated_and_deleted_files_are_reported_counted_and_skipped(tmp_path):
    header, recs = pcap_records(MAP)
    good1, garbage, cut, gone, good2, newest = (tmp_path / f"f{i}.pcap" for i in range(6))
    good1.write_bytes(header + b"".join(recs[:150]))
    garbage.write_bytes(b"this is not a capture file at all, but it is long enough")
    cut.write_bytes(header + b"".join(recs[150:200]) + recs[200][:40])
    gone.write_bytes(header + b"".join(recs[200:250]))
    good2.write_bytes(header + b"".join(recs[250:]))
    newest.write_bytes(header)
    for i, p in enumerate((good1, garbage, cut, gone, good2, newest)):      # written in this order
        os.utime(p, ns=(1_800_000_000_000_000_000 + i * 10**9,) * 2)
    src = WatchDir(tmp_path, Options(), poll=0.01, report=(lines := []).append)
    got, it = [], iter(src)
    while src.files_done == 0:                       # while the first file is read, the ring deletes one
        got.append(next(it))
    gone.unlink()
    while src.files_done + src.files_bad < 4:
        got.append(next(it))
    src.stop.set()
    got.extend(it)
    records = np.concatenate(got)
    assert same(records, decoded(good1, cut, good2))
    assert (src.files_bad, src.files_truncated, src.files_missed) == (1, 1, 1)
    assert src.files_done == 3                       # good1, cut (its whole records), good2
    assert any(f"{garbage}: not a pcap or pcapng file" in line and "skipped" in line for line in lines)
    assert any(f"{cut}: truncated: the last 40 bytes" in line for line in lines)
    assert any(f"{gone}: missed: deleted before it was read" in line for line in lines)
    assert len(src.errors) == 2
    st = json.loads((tmp_path / ".touchpoint-probe-0.json").read_text())
    assert (st["files_bad"], st["files_truncated"], st["files_missed"]) == (1, 1, 1)


def test_dumpcap_sequence_gaps_count_files_rotated_away_also_across_a_restart(tmp_path):
    header, recs = pcap_records(MAP)
    name = lambda n: tmp_path / f"ring_{n:05d}_20261129{n:06d}.pcapng"
    for n in (1, 3):
        name(n).write_bytes(header + b"".join(recs[n * 10:n * 10 + 10]))
    name(4).write_bytes(header)
    c = Consumer(tmp_path)
    c.wait(lambda: c.src.files_done == 2, "files 1 and 3")
    c.stop()
    assert c.src.files_missed == 1 and any("missed 1 files ring_00002" in line for line in c.lines)
    name(7).write_bytes(header + b"".join(recs[70:80]))     # 5 and 6 came and went while the probe was down
    name(8).write_bytes(header)
    c2 = Consumer(tmp_path)
    c2.wait(lambda: c2.src.files_done == 4, "files 4 and 7 (counts go on across restarts)")
    c2.stop()
    assert c2.src.files_missed == 3 and any("missed 2 files ring_00005" in line for line in c2.lines)
    assert same(np.concatenate([c.records(), c2.records()]), decoded(name(1), name(3), name(4), name(7)))


def test_a_ring_that_reuses_names_is_followed_by_time(tmp_path):
    """tcpdump -C 1 -W 3: x.pcap0, x.pcap1, x.pcap2, then x.pcap0 again."""
    header, recs = pcap_records(MAP)
    files = [tmp_path / f"x.pcap{i}" for i in range(3)]
    t0 = 1_800_000_000_000_000_000
    for i, p in enumerate(files):
        p.write_bytes(header + b"".join(recs[i * 50:i * 50 + 50]))
        os.utime(p, ns=(t0 + i * 10**9,) * 2)
    c = Consumer(tmp_path)
    c.wait(lambda: c.src.files_done == 2, "x.pcap0 and x.pcap1")
    before = decoded(*files[:2])
    files[0].write_bytes(header + b"".join(recs[150:250]))       # the ring wraps: x.pcap0 rewritten
    os.utime(files[0], ns=(t0 + 3 * 10**9,) * 2)
    c.wait(lambda: c.src.files_done == 3, "x.pcap2")
    again = decoded(files[0])
    files[1].write_bytes(header)                                  # ... and x.pcap1 starts: x.pcap0 is complete
    os.utime(files[1], ns=(t0 + 4 * 10**9,) * 2)
    c.wait(lambda: c.src.files_done == 4, "x.pcap0, second round")
    c.stop()
    assert same(c.records(), np.concatenate([before, decoded(files[2]), again]))


def test_names_order_files_of_the_same_time():
    assert sorted(["x.pcap10", "x.pcap2", "x.pcap", "x.pcap1"], key=natural) == \
        ["x.pcap", "x.pcap1", "x.pcap2", "x.pcap10"]
    assert dumpcap_seq("cap_00042_20261129093000.pcapng") == ("cap", 42)
    assert dumpcap_seq("cap_20261129_093000.pcap") is None


def test_equal_times_fall_back_to_the_names(tmp_path):
    header, recs = pcap_records(MAP)
    names = ["c.pcap", "c.pcap1", "c.pcap2", "c.pcap10"]
    for i, n in enumerate(names):
        (tmp_path / n).write_bytes(header + b"".join(recs[i * 20:i * 20 + 20]))
        os.utime(tmp_path / n, ns=(1_800_000_000_000_000_000,) * 2)
    src = WatchDir(tmp_path, Options())
    assert [f.name for f in src._pending(src._scan())] == names


def test_glob_selects_names_and_hidden_files_are_ignored(tmp_path):
    header, recs = pcap_records(MAP)
    (tmp_path / "a.pcapng").write_bytes(header + b"".join(recs[:20]))
    (tmp_path / "b.dump").write_bytes(header + b"".join(recs[20:40]))
    (tmp_path / ".a.pcap.tmp").write_bytes(b"rsync in progress")
    (tmp_path / "notes.txt").write_text("hello")
    assert [f.name for f in WatchDir(tmp_path)._scan()] == ["a.pcapng"]
    assert [f.name for f in WatchDir(tmp_path, patterns=["*.dump"])._scan()] == ["b.dump"]


def test_an_unreadable_or_unwritable_state_file_is_a_clear_error(tmp_path):
    state = tmp_path / "state.json"
    state.write_text("{not json")
    with pytest.raises(ValueError, match=f"state file {state}"):
        WatchDir(tmp_path, state=str(state))
    with pytest.raises(ValueError, match=f"state file {tmp_path}/no/such/dir/s.json: cannot write"):
        WatchDir(tmp_path, state=str(tmp_path / "no" / "such" / "dir" / "s.json"))
    with pytest.raises(ValueError, match="not a directory"):
        WatchDir(tmp_path / "nowhere")


def test_watch_options_come_from_the_config_file_and_the_environment(tmp_path):
    """[probe] watch/glob/state in --config, the push endpoint and status from TOUCHPOINT_PROBE_*."""
    import signal
    import subprocess
    from tests.test_probe import CLI, decode_lines, finish, start_tap

    d = tmp_path / "ring"
    d.mkdir()
    header, recs = pcap_records(MAP)
    (d / "one.dump").write_bytes(header + b"".join(recs))
    (d / "skipped.pcap").write_bytes(header + b"".join(recs[:50]))       # not selected by the glob
    (d / "two.dump").write_bytes(header)
    os.utime(d / "one.dump", ns=(time.time_ns() - 10**10,) * 2)
    state = tmp_path / "progress.json"
    cfg = tmp_path / "tp.toml"
    cfg.write_text(f'[probe]\nwatch = "{d}"\nglob = ["*.dump"]\nstate = "{state}"\n')
    tap, eps = start_tap("--listen", f"ipc://{tmp_path}/t.sock", "--format", "jsonl", "--expect-eos", "1")
    env = dict(os.environ, TOUCHPOINT_PROBE_PUSH=eps[0], TOUCHPOINT_PROBE_STATUS_INTERVAL="0")
    probe = subprocess.Popen(CLI[:4] + ["--config", str(cfg), "probe"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (state.exists() and json.loads(state.read_text())["files_done"] == 1):
            assert time.monotonic() < deadline and probe.poll() is None
            time.sleep(0.05)
        probe.send_signal(signal.SIGTERM)
        assert probe.wait(TIMEOUT) == 0, probe.stderr.read()
        code, out, err = finish(tap)
    finally:
        for proc in (probe, tap):
            if proc.poll() is None:
                proc.kill()
    assert code == 0 and sorted(out.splitlines()) == sorted(decode_lines(d / "one.dump"))
    assert json.loads(state.read_text())["current"]["name"] == "two.dump"
    assert not list(d.glob(".touchpoint-probe-*"))


def test_watch_usage_errors_exit_2(tmp_path):
    from click.testing import CliRunner
    from touchpoint.control.cli import main

    push = ["--push", f"ipc://{tmp_path}/x.sock"]
    for args, text in [(["--watch", str(tmp_path), "--pcap", str(MAP)], "one capture source at a time"),
                       (["--pcap", str(MAP), "--glob", "*.dump"], "--glob and --state go with --watch"),
                       (["--watch", str(tmp_path / "nowhere")], "does not exist"),
                       (["--watch", str(tmp_path), "--metrics-port", "http"], "--metrics-port"),
                       (["--watch", str(tmp_path), "--state", str(tmp_path / "no" / "s.json")], "cannot write")]:
        res = CliRunner().invoke(main, ["probe", *args, *push])
        assert res.exit_code == 2 and text in res.output, (args, res.output)
