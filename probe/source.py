"""Capture sources: where the probe's packets come from, decoded into record arrays.

A source is an iterable of record arrays (RECORD_DTYPE), some of them empty: an empty array
only gives the caller a turn (flush timers, status line) while the source waits. It stops when
its input ends or its `stop` event is set, and tells what it read: `packets()`, `stats()`,
`errors`. `PcapReplay` replays files; the directory watcher and live capture come next, behind
the same interface.
"""
import threading
import time
from typing import Iterator

import numpy as np

from .decode import CaptureError, Decoder, Options, Stats
from .record import RECORD_DTYPE

EMPTY = np.empty(0, RECORD_DTYPE)


class FileSource:
    """What the file sources tell of the decoders they ran: those done (_stats) and the one at
    work (_dec)."""
    _stats: Stats
    _dec: Decoder | None

    def packets(self) -> int:
        return self._stats.frames + (self._dec.frames if self._dec else 0)

    def stats(self) -> Stats:
        s = Stats()
        s.merge(self._stats)
        if self._dec:
            s.merge(self._dec.stats())
        return s


class PcapReplay(FileSource):
    """Capture files decoded in order, `loop` rounds (0: until stopped), each file with a decoder
    of its own (as `touchpoint decode` does), at `speed` times the original pace (0: as fast as it
    goes). Pacing follows the records' timestamps: each record leaves when the capture's clock,
    scaled, reaches it."""

    CHUNK = 1 << 20             # as fast as it goes
    PACED_CHUNK = 1 << 16       # paced: smaller steps, so records leave close to their time

    def __init__(self, paths, options: Options | None = None, *, speed: float = 0.0, loop: int = 1,
                 stop: threading.Event | None = None, tick: float = 0.05):
        self.paths = [str(p) for p in paths]
        self.options = options or Options()
        self.speed = speed
        self.loop = loop
        self.stop = stop or threading.Event()
        self.tick = tick
        self.errors: list[str] = []         # one line per file that could not be read to its end
        self.rounds = 0
        self._stats = Stats()               # of the decoders that are done
        self._dec: Decoder | None = None
        self._origin: tuple | None = None   # (monotonic, ts_ns) the pacing counts from

    def __iter__(self) -> Iterator[np.ndarray]:
        while not self.stop.is_set() and (self.loop == 0 or self.rounds < self.loop):
            self._origin = None
            for path in self.paths:
                if self.stop.is_set():
                    return
                yield from self._file(path)
            self.rounds += 1

    def _file(self, path: str) -> Iterator[np.ndarray]:
        dec = self._dec = Decoder(self.options, source=path)
        chunk = self.PACED_CHUNK if self.speed else self.CHUNK
        buf = bytearray(chunk * 2)
        have = 0
        try:
            with open(path, "rb") as f:
                while not self.stop.is_set():
                    if have == len(buf):
                        buf.extend(bytes(len(buf)))
                    got = f.readinto(memoryview(buf)[have:have + chunk])
                    if not got:
                        break
                    have += got
                    for records in dec.feed(buf, have):
                        yield from self._paced(records)
                    used = dec.consumed
                    # Paced, records leave as soon as decoded; as fast as it goes, in the decoder's
                    # full outputs (fewer, bigger arrays: sliced into batches without a copy).
                    yield from self._paced(dec.take()) if self.speed else iter((EMPTY,))
                    if used:
                        buf[:have - used] = buf[used:have]
                        have -= used
            if not self.stop.is_set():
                for records in dec.finish(leftover=have):
                    yield from self._paced(records)
            else:                                # stopped: what is open still goes out, unpaced
                yield from dec.finish(leftover=0)
        except CaptureError as e:
            self.errors.append(str(e))
        except OSError as e:
            self.errors.append(f"{path}: {e.strerror or e}")
        finally:
            self._stats.merge(dec.stats())
            self._dec = None

    def _paced(self, records: np.ndarray) -> Iterator[np.ndarray]:
        """records, each part once its time has come (the running maximum of ts_ns decides, so a
        record never overtakes the ones before it)."""
        if not self.speed or not len(records):
            yield records
            return
        ts = np.maximum.accumulate(records["ts_ns"])
        if self._origin is None:
            self._origin = (time.monotonic(), int(records["ts_ns"].min()))
        wall0, ts0 = self._origin
        start = 0
        while start < len(records) and not self.stop.is_set():
            now = time.monotonic()
            end = int(np.searchsorted(ts, ts0 + (now - wall0) * self.speed * 1e9, side="right"))
            if end > start:
                yield records[start:end]
                start = end
                continue
            due = wall0 + (int(ts[start]) - ts0) / 1e9 / self.speed
            self.stop.wait(min(due - now, self.tick))
            yield EMPTY
        if start < len(records):                     # stopped: the rest goes now
            yield records[start:]
