"""Decoding capture files into record arrays: the Python API over probe._decode.

    for batch in decode_file("capture.pcap"):   # numpy arrays of RECORD_DTYPE
        ...
    records = decode_bytes(data, messages=True)

The file is read in chunks and decoded a whole buffer of packets per call, so
memory stays flat whatever the file size.
"""
from collections import Counter
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Iterator

import numpy as np

from . import _decode
from .record import RECORD_DTYPE

CHUNK = 1 << 20

Anomaly = IntEnum("Anomaly", [(name, code) for code, name, *_ in _decode.anomaly_table()])
ANOMALY_INFO = {code: (layer, cls, text) for code, _name, layer, cls, text in _decode.anomaly_table()}
LAYERS = list(_decode.LAYERS)


class CaptureError(Exception):
    """The capture file cannot be read on from here."""


@dataclass
class Options:
    messages: bool = False          # one record per TCAP component, like a dissector
    mtp3: str = "itu"               # itu | ansi | japan
    probe_id: int = 0
    dialogue_timeout: float = 600.0 # seconds of capture time
    call_timeout: float = 14400.0   # seconds of capture time an answered call lives after its answer
    max_dialogues: int = 131072
    capacity: int = 65536  # records per batch
    map_ssns: tuple = (
        6,
        7,
        8,
        9,
        145,
        148,
        149,
        150,
    )  # MAP when no application context says (tshark's gsm_map.tcap.ssn)
    cap_ssns: tuple = (146,)        # CAP when no application context says (tshark's camel.tcap.ssn)
    gtpc_ports: tuple = (2123,)
    gtpu_ports: tuple = (2152,)
    usage_interval: float = 60.0    # seconds of capture time between data-usage records of a tunnel
    max_tunnels: int = 131072
    country_code: str = ""         # national subscriber numbers get it in front: international


@dataclass
class Stats:
    """What the decoder saw, per layer and per anomaly."""
    frames: int = 0
    bytes: int = 0
    records: int = 0
    layer_in: dict = field(default_factory=dict)
    layer_ok: dict = field(default_factory=dict)
    anomalies: Counter = field(default_factory=Counter)
    recent: list = field(default_factory=list)   # (source, frame, anomaly, byte offset in the frame)

    @classmethod
    def from_counters(cls, c: dict, source: str = "") -> "Stats":
        s = cls(frames=c["frames"], bytes=c["bytes"], records=c["records"])
        s.layer_in = dict(zip(LAYERS, c["layer_in"]))
        s.layer_ok = dict(zip(LAYERS, c["layer_ok"]))
        s.anomalies = Counter({Anomaly(i): n for i, n in enumerate(c["anomalies"]) if n and i})
        s.recent = [(source, frame, Anomaly(code), off) for frame, code, off in c["recent"]]
        return s

    def merge(self, other: "Stats") -> None:
        self.frames += other.frames
        self.bytes += other.bytes
        self.records += other.records
        for k, v in other.layer_in.items():
            self.layer_in[k] = self.layer_in.get(k, 0) + v
        for k, v in other.layer_ok.items():
            self.layer_ok[k] = self.layer_ok.get(k, 0) + v
        self.anomalies.update(other.anomalies)
        self.recent = (self.recent + other.recent)[-64:]

    def by_layer(self) -> dict:
        """layer -> {packets, decoded, truncated, malformed, unsupported, other, evicted}."""
        rows = {}
        for layer in LAYERS:
            rows[layer] = {"packets": self.layer_in.get(layer, 0), "decoded": self.layer_ok.get(layer, 0),
                           "truncated": 0, "malformed": 0, "unsupported": 0, "other": 0, "evicted": 0}
        for a, n in self.anomalies.items():
            layer, cls, _text = ANOMALY_INFO[a.value]
            if cls in rows[layer]:
                rows[layer][cls] += n
        return rows


class Decoder:
    """A streaming decoder for one capture: feed bytes, take record arrays."""

    def __init__(self, options: Options | None = None, source: str = "<bytes>"):
        self.options = options or Options()
        o = self.options
        self.source = source
        self._d = _decode.Decoder(RECORD_DTYPE, messages=o.messages, mtp3=o.mtp3, probe_id=o.probe_id,
                                  capacity=o.capacity, dialogue_timeout=o.dialogue_timeout,
                                  call_timeout=o.call_timeout,
                                  max_dialogues=o.max_dialogues, map_ssns=o.map_ssns, cap_ssns=o.cap_ssns,
                                  gtpc_ports=o.gtpc_ports, gtpu_ports=o.gtpu_ports, usage_interval=o.usage_interval,
                                  max_tunnels=o.max_tunnels, country_code=o.country_code)
        self.consumed = 0                   # bytes the last feed() took

    def feed(self, buf, length: int = -1) -> Iterator[np.ndarray]:
        """Decode buf[:length] in full except an incomplete last record; yields record batches.

        The bytes consumed are its return value (for `yield from`) and, once it is done, in
        `consumed` (for a plain loop over the batches).
        """
        view = memoryview(buf)
        n = len(view) if length < 0 else length
        pos = self.consumed = 0
        while True:
            pos += self._d.feed(view[pos:n]) if pos < n else 0
            self.consumed = pos
            err = self._d.error
            if err is not None:
                if self._d.pending:
                    yield self._d.take()
                code, off = err
                raise CaptureError(f"{self.source}: {ANOMALY_INFO[code][2]} at byte {off}; "
                                   f"decoding stopped after frame {self._d.frames}")
            if not self._d.full:
                return pos
            yield self._d.take()

    def finish(self, leftover: int = 0) -> Iterator[np.ndarray]:
        """End of input: what remains, with open dialogues as timed out."""
        self._d.truncated(leftover)
        while True:
            more = self._d.flush()
            if self._d.pending:
                yield self._d.take()
            if not more:
                return

    def take(self) -> np.ndarray:
        """The records decoded so far (maybe none), without waiting for a full output: for
        sources that must not hold records back (paced replay, live capture)."""
        return self._d.take() if self._d.pending else np.empty(0, RECORD_DTYPE)

    @property
    def frames(self) -> int:
        """Capture records (packets) read so far."""
        return self._d.frames

    def stats(self) -> Stats:
        return Stats.from_counters(self._d.counters(), self.source)


def decode_file(path, options: Options | None = None, stats: Stats | None = None) -> Iterator[np.ndarray]:
    """Record batches from a pcap or pcapng file. A truncated last record is counted, not fatal."""
    dec = Decoder(options, source=str(path))
    buf = bytearray(CHUNK * 2)
    have = 0
    try:
        with open(path, "rb") as f:
            while True:
                if have == len(buf):           # one record bigger than the buffer: grow
                    buf.extend(bytes(len(buf)))
                got = f.readinto(memoryview(buf)[have:])
                if not got:
                    break
                have += got
                used = yield from dec.feed(buf, have)
                if used:
                    buf[:have - used] = buf[used:have]
                    have -= used
            yield from dec.finish(leftover=have)
    finally:
        if stats is not None:
            stats.merge(dec.stats())


def decode_bytes(data: bytes, messages: bool = False, stats: Stats | None = None, **kw) -> np.ndarray:
    """Every record of a capture held in memory, as one array."""
    dec = Decoder(Options(messages=messages, **kw))
    batches = []
    try:
        batches.extend(dec.feed(data))
        batches.extend(dec.finish(leftover=len(data) - dec.consumed))
    finally:
        if stats is not None:
            stats.merge(dec.stats())
    return np.concatenate(batches) if batches else np.empty(0, RECORD_DTYPE)
