"""The engine's journal: every record taken since the last snapshot, so a crash loses none.

Each chunk of records is appended before the engine processes it, as the engine cut it, with the
sequence number each probe stream has reached; only then is it acknowledged to the probes, which
keep and send again what was not acknowledged. A restart restores the snapshot and runs the
journal's chunks through the engine again, in order and in the same cuts: the same state and the
same triggers as if the engine had never stopped. A snapshot starts the next generation: a journal
of an older generation than the snapshot names is in the snapshot already.

    file    b"TPJ1", u32 generation, u32 record size
    chunk   b"TPJC", u32 records, u32 streams, u32 crc32 of what follows,
            streams x (u16 probe, u16 shard, u32 epoch, u64 next sequence number),
            records x record size

A chunk cut short by a kill (its length or its crc) ends the journal: it is cut off there. Only
records are journaled, never triggers or anything of the rules. Writes go to the operating system
at once (an engine crash loses nothing acknowledged) and to the disk at sync() (the server calls it
every second: a host crash loses at most that).
"""
import os
import struct
import zlib

import numpy as np

from touchpoint.probe.record import RECORD_DTYPE

FILE = struct.Struct("<4sII")
CHUNK = struct.Struct("<4sIII")
MARK = np.dtype([("probe_id", "<u2"), ("shard", "<u2"), ("epoch", "<u4"), ("next_seq", "<u8")])
FILE_MAGIC, CHUNK_MAGIC = b"TPJ1", b"TPJC"


class JournalError(Exception):
    """A journal this engine cannot read (another record size, not a journal)."""


def read(path: str) -> tuple:
    """(generation, [(records, marks)], bytes of whole chunks) of the journal at path; (None, [], 0)
    when there is none."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None, [], 0
    if len(raw) < FILE.size:
        return None, [], 0              # killed while creating it: nothing was journaled
    magic, gen, size = FILE.unpack_from(raw)
    if magic != FILE_MAGIC:
        raise JournalError(f"{path}: not a touchpoint engine journal")
    if size != RECORD_DTYPE.itemsize:
        raise JournalError(f"{path}: {size}-byte records; this engine's are {RECORD_DTYPE.itemsize} "
                           f"(replay it with the release that wrote it, or move it away to start without it)")
    chunks, at = [], FILE.size
    while at + CHUNK.size <= len(raw):
        magic, n, streams, crc = CHUNK.unpack_from(raw, at)
        body = at + CHUNK.size
        end = body + streams * MARK.itemsize + n * size
        if magic != CHUNK_MAGIC or end > len(raw) or zlib.crc32(raw[body:end]) != crc:
            break
        marks = np.frombuffer(raw, MARK, streams, body)            # read-only views: no second copy
        records = np.frombuffer(raw, RECORD_DTYPE, n, body + streams * MARK.itemsize)
        chunks.append((records, marks))
        at = end
    return gen, chunks, at


class Journal:
    def __init__(self, path: str):
        self.path = path
        self.fd = None
        self.generation = None
        self.bytes = 0

    def open(self, generation: int, keep: int = 0) -> None:
        """Append to the journal of this generation, its first `keep` bytes kept (what read()
        found whole); any other journal is replaced by an empty one."""
        self.close()
        if keep:
            self.fd = os.open(self.path, os.O_WRONLY)
            os.ftruncate(self.fd, keep)
            os.lseek(self.fd, keep, os.SEEK_SET)
            self.generation, self.bytes = generation, keep
        else:
            self.start(generation)

    def start(self, generation: int) -> None:
        """An empty journal of this generation in place of the one there (written beside, synced,
        then renamed: a crash leaves the one or the other)."""
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        _write(fd, FILE.pack(FILE_MAGIC, generation, RECORD_DTYPE.itemsize))
        os.fsync(fd)
        os.replace(tmp, self.path)
        if self.fd is not None:
            os.close(self.fd)
        self.fd, self.generation, self.bytes = fd, generation, FILE.size

    def append(self, records: np.ndarray, marks: np.ndarray) -> None:
        """One chunk, whole or not at all: a write that fails (a full disk) leaves the journal as
        it was, for the same chunk to be appended again."""
        body = marks.astype(MARK).tobytes() + np.ascontiguousarray(records).tobytes()
        try:
            _write(self.fd, CHUNK.pack(CHUNK_MAGIC, len(records), len(marks), zlib.crc32(body)) + body)
        except OSError:
            os.ftruncate(self.fd, self.bytes)
            os.lseek(self.fd, self.bytes, os.SEEK_SET)
            raise
        self.bytes += CHUNK.size + len(body)

    def sync(self) -> None:
        if self.fd is not None:
            os.fdatasync(self.fd)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
