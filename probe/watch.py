"""Following a directory of rotating capture files, as dumpcap and tcpdump write them.

    source = WatchDir("/var/spool/capture", options, state=None, stop=stop)   # a capture source

Which files: the regular files whose names match one of the patterns (`*.pcap*`, `*.cap*`), not
hidden ones (`.name`: rsync's and editors' temporary files, the state file).

In which order: by modification time, then by name (numbers in names compared as numbers, so
`x.pcap2` < `x.pcap10`). A rotating writer finishes file N before it starts file N+1, so the
modification time is what every writer's naming means - dumpcap's `cap_00007_20261129093000.pcapng`
sequence and start time, tcpdump -C's `x.pcap`, `x.pcap1`, ..., strftime names of tcpdump -G -
and it stays right where names alone mislead: a ring that reuses names (tcpdump -C -W wraps back
to `x.pcap0`), a restarted dumpcap that counts from 00001 again. Names break ties (several files
closed in one clock tick). Files copied in must keep that order in their times (cp -p, rsync -t,
or one at a time in order).

When: each file is decoded as it grows, a whole capture record at a time (a partial last record
waits for the rest). A file is complete when a newer file exists: the writer closed it before it
created the next one, so what is read after seeing the newer file is all there is; then its open
dialogues are reported as timed out (as `touchpoint decode FILE` does at the end of a file) and
the next file starts. Each file has a decoder of its own, so records (frame numbers included) are
those of `touchpoint decode FILE`; a dialogue that spans a rotation gives two records, the Begin's
timed out and the End's alone, as in the files.

Progress survives restarts in a small JSON state file (written atomically, every second and at
each file's end): the last finished file (name, inode, size, mtime: files up to it in the order
are done) and the file in progress (name, inode, a hash of its first bytes, bytes and frames
decoded, records given out). A restarted watcher decodes that file again from its start and
withholds the records it had already given out, so its open dialogues are rebuilt: after a
SIGTERM or SIGINT the records are exactly those of a run without the stop. Limits: a stop holds
back the open dialogues of the file in progress until the restart (they are lost if the file is
gone by then); after SIGKILL or a power cut, up to the last second's records are given out again
(the state file was that old); what the probe had queued for an engine when it stopped is gone,
as with any drop.

Bad files: one that is not a capture, or becomes garbage, is reported and counted, what it gave
before stays, and the next file follows; a complete file that ends inside a record is reported
as truncated. Missed files: a file seen waiting that disappears before it is read (the ring buffer
deleted it), and a gap in dumpcap's sequence numbers (files rotated away unseen, also while the
probe was down).
"""
import fnmatch
import hashlib
import json
import os
import re
import sys
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Iterator

import numpy as np

from .decode import CaptureError, Decoder, Options, Stats
from .logline import write_line
from .record import RECORD_DTYPE
from .source import FileSource

EMPTY = np.empty(0, RECORD_DTYPE)
MAGICS = {bytes.fromhex(m) for m in ("d4c3b2a1", "a1b2c3d4", "4d3cb2a1", "a1b23c4d", "0a0d0d0a")}  # pcap, pcapng
PATTERNS = ("*.pcap*", "*.cap*")
FINGERPRINT = 4096                  # bytes of a file's start that identify it across a restart
STATE_VERSION = 1
_DIGITS = re.compile(r"(\d+)")
_DUMPCAP = re.compile(r"^(.*)_(\d{5,})_(\d{14})(\.[^.]+)?$")


def natural(name: str) -> tuple:
    """Sort key: runs of digits compared as numbers."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in _DIGITS.split(name) if p)


def dumpcap_seq(name: str) -> tuple | None:
    """(prefix, sequence number) of a dumpcap ring-buffer name like cap_00007_20261129093000.pcapng."""
    m = _DUMPCAP.match(name)
    return (m.group(1), int(m.group(2))) if m else None


@dataclass
class FileId:
    name: str
    inode: int
    size: int
    mtime_ns: int

    def key(self) -> tuple:
        return (self.mtime_ns, natural(self.name))


def state_path(directory: str, probe_id: int) -> str:
    return os.path.join(directory, f".touchpoint-probe-{probe_id}.json")


class WatchDir(FileSource):
    """A capture source (see probe.source) over a directory of rotating capture files."""

    CHUNK = 1 << 20

    def __init__(self, directory, options: Options | None = None, *, patterns=PATTERNS, state: str | None = None,
                 stop: threading.Event | None = None, poll: float = 0.2, state_interval: float = 1.0,
                 report=None):
        self.dir = str(directory)
        if not os.path.isdir(self.dir):
            raise ValueError(f"{self.dir}: not a directory")
        self.options = options or Options()
        self.patterns = tuple(patterns) or PATTERNS
        self.state_file = state or state_path(self.dir, self.options.probe_id)
        self.stop = stop or threading.Event()
        self.poll = poll
        self.state_interval = state_interval
        self.report = report or (lambda line: write_line(sys.stderr, f"touchpoint probe: {line}"))
        self.errors: deque = deque(maxlen=100)  # one line per file that could not be read to its end
        self.files_done = self.files_bad = self.files_truncated = self.files_missed = 0
        self.replayed_frames = 0            # frames decoded again after a restart (their records withheld)
        self.mark: FileId | None = None     # the last finished file: it and everything before it are done
        self.current: dict | None = None    # the file in progress, as saved
        self.last_seq: tuple | None = None  # (prefix, number) of the last dumpcap file started
        self._stats = Stats()               # of the decoders that are done
        self._dec: Decoder | None = None
        self._waiting: set = set()          # names seen waiting their turn, not yet started
        self._vanished_seqs: set = set()
        self._saved_at = 0.0
        self._state_error: str | None = None
        self._load_state()
        if not self._save_state(quiet=True):    # at once: a state that cannot be kept is a usage error
            raise ValueError(f"state file {self.state_file}: cannot write it ({self._state_error})")

    # what it tells

    def counters(self) -> dict:
        cur = self.current or {}
        return {"directory": self.dir, "files_done": self.files_done, "files_bad": self.files_bad,
                "files_truncated": self.files_truncated, "files_missed": self.files_missed,
                "files_waiting": len(self._waiting), "replayed_frames": self.replayed_frames,
                "current_file": cur.get("name"), "current_offset": cur.get("offset", 0)}

    # the state file

    def _load_state(self) -> None:
        try:
            with open(self.state_file) as f:
                st = json.load(f)
            if st.get("version") != STATE_VERSION:
                raise ValueError(f"state version {st.get('version')}, not {STATE_VERSION}")
            self.mark = FileId(**st["mark"]) if st.get("mark") else None
            self.current = st.get("current")
            self.last_seq = tuple(st["last_seq"]) if st.get("last_seq") else None
            for k in ("files_done", "files_bad", "files_truncated", "files_missed"):
                setattr(self, k, int(st.get(k, 0)))
        except FileNotFoundError:
            return
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise ValueError(f"state file {self.state_file}: {e}") from None

    def _save_state(self, quiet: bool = False) -> bool:
        st = {"version": STATE_VERSION, "directory": os.path.abspath(self.dir),
              "mark": asdict(self.mark) if self.mark else None, "current": self.current,
              "last_seq": list(self.last_seq) if self.last_seq else None,
              "files_done": self.files_done, "files_bad": self.files_bad,
              "files_truncated": self.files_truncated, "files_missed": self.files_missed}
        tmp = f"{self.state_file}.tmp{os.getpid()}"
        try:
            with open(tmp, "w") as f:
                json.dump(st, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.state_file)
        except OSError as e:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            if self._state_error is None and not quiet:     # once, not every second
                self.report(f"state file {self.state_file}: {e.strerror or e}: progress is not kept")
            self._state_error = e.strerror or str(e)
            return False
        finally:
            self._saved_at = time.monotonic()
        if self._state_error is not None:
            self.report(f"state file {self.state_file}: written again")
            self._state_error = None
        return True

    # the directory

    def _scan(self) -> list:
        """The matching files, oldest first."""
        out = []
        try:
            entries = list(os.scandir(self.dir))
        except OSError as e:
            self.report(f"{self.dir}: {e.strerror or e}")
            return out
        for e in entries:
            if e.name.startswith(".") or not any(fnmatch.fnmatchcase(e.name, p) for p in self.patterns):
                continue
            try:
                st = e.stat(follow_symlinks=True)
            except OSError:
                continue                        # gone meanwhile
            if not (st.st_mode & 0o170000 == 0o100000):
                continue
            out.append(FileId(e.name, st.st_ino, st.st_size, st.st_mtime_ns))
        out.sort(key=FileId.key)
        return out

    def _pending(self, files: list) -> list:
        """Files not done yet, in order; counts those that vanished while waiting as missed."""
        mark = self.mark.key() if self.mark else None
        todo = [f for f in files if mark is None or f.key() > mark]
        cur = self.current
        if cur:                                 # the file in progress stays first, whatever its time says now
            mine = [f for f in files if f.name == cur["name"] and f.inode == cur["inode"]]
            todo = mine + [f for f in todo if not mine or f is not mine[0]]
        names = {f.name for f in todo}
        for name in self._waiting - {f.name for f in files}:
            self._missed(name, "deleted before it was read")
        self._waiting = names - ({cur["name"]} if cur else set())
        return todo

    def _missed(self, name: str, why: str) -> None:
        self.files_missed += 1
        seq = dumpcap_seq(name)
        if seq:
            self._vanished_seqs.add(seq)
        self.report(f"{os.path.join(self.dir, name)}: missed: {why}")

    def _sequence(self, name: str) -> None:
        """Count the dumpcap files rotated away unseen before this one."""
        seq = dumpcap_seq(name)
        if seq is None:
            return
        last = self.last_seq
        if last and last[0] == seq[0] and seq[1] > last[1] + 1:
            unseen = [n for n in range(last[1] + 1, seq[1]) if (seq[0], n) not in self._vanished_seqs]
            if unseen:
                self.files_missed += len(unseen)
                self.report(f"{self.dir}: missed {len(unseen)} files {seq[0]}_{unseen[0]:05d}... "
                            f"(rotated away before they were read)")
        self._vanished_seqs = {s for s in self._vanished_seqs if s[0] == seq[0] and s[1] > seq[1]}
        self.last_seq = seq

    # the records

    def __iter__(self) -> Iterator[np.ndarray]:
        try:
            while not self.stop.is_set():
                todo = self._pending(self._scan())
                if not todo:
                    self.stop.wait(self.poll)
                    yield EMPTY
                    continue
                done = yield from self._follow(todo[0], complete=len(todo) > 1)
                if not done and not self.stop.is_set():
                    if time.monotonic() - self._saved_at >= self.state_interval:
                        self._save_state()
                    self.stop.wait(self.poll)
                    yield EMPTY
        finally:
            if self._dec is not None:
                self._progress()
            self._close_file()
            self._save_state()

    def _start(self, f: FileId) -> bool:
        """Open f: a new file, or the one in progress resumed after a restart."""
        path = os.path.join(self.dir, f.name)
        try:
            fh = open(path, "rb")
        except FileNotFoundError:
            self._missed(f.name, "deleted before it was read")
            self._finished(f)
            return False
        except OSError as e:
            self._bad(f, f"{path}: {e.strerror or e}")
            return False
        cur, resume = self.current, False
        if cur is not None:
            if cur["name"] == f.name and cur["inode"] == f.inode:
                head = fh.read(cur["fp_len"])
                fh.seek(0)
                resume = len(head) == cur["fp_len"] and _fingerprint(head) == cur["fingerprint"] \
                    and f.size >= cur["offset"]
            if not resume:
                self.files_missed += 1
                self.report(f"{os.path.join(self.dir, cur['name'])}: in progress before the restart, now gone "
                            f"or rewritten: the rest of it is missed")
        self._dec = Decoder(self.options, source=path)
        self._fh = fh
        self._buf = bytearray(self.CHUNK * 2)
        self._have = 0
        self._pos = 0                           # bytes decoded (whole capture records)
        self._emitted = 0                       # records given out, or withheld as given out before
        if resume:
            self._withhold = cur["records"]
            self.replayed_frames += cur["frames"]
            self.report(f"{path}: resuming after {cur['frames']:,} frames ({cur['records']:,} records): "
                        f"decoding it again from its start, those records withheld")
        else:
            self._withhold = 0
            self._sequence(f.name)
            cur = self.current = {"name": f.name, "inode": f.inode, "fingerprint": _fingerprint(b""),
                                  "fp_len": 0, "offset": 0, "frames": 0, "records": 0}
        self._waiting.discard(f.name)
        return True

    def _follow(self, f: FileId, complete: bool):
        """Decode what f holds now; finish it when complete. Returns True when done with it."""
        if self._dec is None or self.current is None or self.current["name"] != f.name:
            self._close_file()
            if not self._start(f):
                return True
        dec, fh = self._dec, self._fh
        try:
            while not self.stop.is_set():
                if self._have == len(self._buf):
                    self._buf.extend(bytes(len(self._buf)))
                got = fh.readinto(memoryview(self._buf)[self._have:self._have + self.CHUNK])
                if not got:
                    break
                self._have += got
                if self._pos == 0 and self._have >= 4 and bytes(self._buf[:4]) not in MAGICS:
                    raise CaptureError(f"{self._path()}: not a pcap or pcapng file (it starts with "
                                       f"{bytes(self._buf[:4]).hex()})")
                for records in dec.feed(self._buf, self._have):
                    yield from self._out(records)
                used = dec.consumed
                yield from self._out(dec.take())     # a growing file: nothing waits for a full output
                if used:
                    self._buf[:self._have - used] = self._buf[used:self._have]
                    self._have -= used
                    self._pos += used
                    self._progress()
            if self.stop.is_set():
                return False
            if not complete:
                return False
            for records in dec.finish(leftover=self._have):
                yield from self._out(records)
            if self._have and self._pos == 0 and dec.frames == 0:
                raise CaptureError(f"{self._path()}: not a capture: {self._have} bytes, no whole file header")
            if self._have:
                self.files_truncated += 1
                msg = (f"{self._path()}: truncated: the last {self._have} bytes are an incomplete capture "
                       f"record (after frame {dec.frames:,})")
                self.errors.append(msg)
                self.report(msg)
        except CaptureError as e:
            self._bad(f, f"{e}: the rest of the file is skipped")
            return True
        except OSError as e:
            self._bad(f, f"{self._path()}: {e.strerror or e}: the rest of the file is skipped")
            return True
        self.files_done += 1
        self._finished(f)
        return True

    def _out(self, records: np.ndarray) -> Iterator[np.ndarray]:
        """records, less those given out before a restart."""
        n = len(records)
        if not n:
            yield EMPTY
            return
        skip = min(max(self._withhold - self._emitted, 0), n)
        self._emitted += n
        if skip < n:
            yield records[skip:] if skip else records

    def _progress(self) -> None:
        """Remember how far this file is given out (what the state file saves)."""
        cur, dec = self.current, self._dec
        cur["records"] = max(self._emitted, self._withhold)
        if self._emitted < self._withhold:      # still decoding again what was given out before
            return
        if cur["fp_len"] < FINGERPRINT and self._pos > cur["fp_len"]:
            cur["fp_len"] = min(self._pos, FINGERPRINT)
            with open(self._path(), "rb") as f:
                cur["fingerprint"] = _fingerprint(f.read(cur["fp_len"]))
        cur.update(offset=self._pos, frames=dec.frames)

    def _bad(self, f: FileId, msg: str) -> None:
        self.files_bad += 1
        self.errors.append(msg)
        self.report(msg)
        self._finished(f)

    def _finished(self, f: FileId) -> None:
        """f is done: everything up to it in the order is."""
        try:                                        # its time as it is now, at its end
            st = os.stat(os.path.join(self.dir, f.name))
            if st.st_ino == f.inode:
                f = FileId(f.name, f.inode, st.st_size, st.st_mtime_ns)
        except OSError:
            pass
        if self.mark is None or f.key() > self.mark.key():
            self.mark = f
        self._close_file()
        self.current = None
        self._save_state()

    def _close_file(self) -> None:
        if self._dec is not None:
            self._stats.merge(self._dec.stats())
            self._dec = None
            self._fh.close()

    def _path(self) -> str:
        return os.path.join(self.dir, self.current["name"]) if self.current else self.dir


def _fingerprint(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()
