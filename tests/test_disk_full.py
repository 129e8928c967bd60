"""A full disk (issue 17 item 8): the engine stops taking records, says so, and takes them again
when there is room; what it gives in the end is what an engine that never ran short gives. The
data directory is on a tmpfs of its own (root; skipped elsewhere)."""
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from touchpoint.control import journal
from touchpoint.control.server import MIN_FREE
from touchpoint.probe.record import RECORD_DTYPE

from .test_engine_kill import engine, run, setup  # noqa: F401 - setup: the fixture, used by name
from .test_engine_run import CLI, TIMEOUT


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of 2 x MIN_FREE + 32 MB, unmounted at the end."""
    where = tmp_path / "disk"
    where.mkdir()
    size = (2 * MIN_FREE >> 20) + 32
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}m,mode=0700", "tmpfs", str(where)],
                         capture_output=True, text=True)
    if res.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=True)


def free(path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill(path: Path, leave: int) -> Path:
    """A file that leaves `leave` bytes free."""
    filler = path / "filler"
    with open(filler, "wb") as f:
        f.truncate(0)
        chunk = b"\0" * (1 << 20)
        while free(path) > leave + len(chunk):
            f.write(chunk)
            f.flush()
        f.write(b"\0" * max(free(path) - leave, 0))
    return filler


def wait_for(path: Path, text: str, proc) -> None:
    end = time.monotonic() + TIMEOUT
    while text not in path.read_text():
        assert proc.poll() is None, path.read_text()
        assert time.monotonic() < end, f"never said {text!r}: {path.read_text()}"
        time.sleep(0.05)


def test_a_full_disk_pauses_the_engine_and_loses_nothing(setup, small_disk, tmp_path):  # noqa: F811 - the fixture
    rules, pcap = setup
    calm = run(rules, pcap, tmp_path / "calm")
    data = small_disk / "data"
    err = tmp_path / "engine.err"
    sock = f"ipc://{tmp_path}/full.sock"
    proc = engine(rules, data, sock, err)
    probe = subprocess.Popen(CLI + ["probe", "--status-interval", "0", "--lossless", "--batch", "200",
                                    "--queue", "4000", "--ack-timeout", "120", "--pcap", str(pcap), "--push", sock],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(err, "listening on", proc)
    log = data / "triggers-shard-0.jsonl"
    end = time.monotonic() + TIMEOUT
    while not log.exists() or log.stat().st_size < 10_000:
        assert time.monotonic() < end and proc.poll() is None, err.read_text()
        time.sleep(0.01)
    filler = fill(small_disk, MIN_FREE // 2)
    wait_for(err, "is full", proc)
    size = log.stat().st_size
    time.sleep(1)
    assert log.stat().st_size == size and probe.poll() is None       # nothing taken, the probe waits
    filler.unlink()
    wait_for(err, "room again", proc)
    perr = probe.communicate(timeout=TIMEOUT * 2)[1]
    proc.wait(TIMEOUT)
    assert probe.returncode == 0, perr
    assert proc.returncode == 0, err.read_text()
    assert "drops: none," in perr
    assert log.read_text().splitlines() == calm["log"]
    assert "Traceback" not in err.read_text()


def test_a_journal_write_the_disk_refuses_leaves_the_journal_whole(tmp_path):
    where = tmp_path / "tiny"
    where.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)], capture_output=True, text=True)
    if res.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        (where / "spacer").write_bytes(b"\0" * (256 << 10))
        j = journal.Journal(str(where / "journal"))
        j.start(3)
        chunk = np.zeros(1000, RECORD_DTYPE)
        marks = np.array([(1, 0, 7, 0)], journal.MARK)
        appended = 0
        with pytest.raises(OSError, match="No space left"):
            for appended in range(100):
                marks["next_seq"] = appended + 1
                j.append(chunk, marks)
        assert os.path.getsize(where / "journal") == j.bytes            # no half chunk at its end
        (where / "spacer").unlink()
        j.append(chunk, marks)                                          # the refused chunk, again
        gen, chunks, _ = journal.read(str(where / "journal"))
        assert gen == 3 and [int(m["next_seq"][0]) for _, m in chunks] == list(range(1, appended + 2))
        j.close()
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)
