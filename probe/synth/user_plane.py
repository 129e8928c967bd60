"""The user plane: G-PDUs on the announced tunnels, and what the decoder's tunnel counters must
report."""
from __future__ import annotations

import collections
import random
import struct

from .flows import _INNER_PAYLOAD, _finish_record
from .framing import _ip_csum, _mac
from .gtp import gtpu_header
from .templates import USAGE_INTERVAL_NS

# --- the user plane: what the decoder's tunnel counters must report -------------

class _TunnelModel:
    """Per (TEID, address) tunnel: who it belongs to (the record of the GTP-C message
    that announced it: subscriber, and the RAT and APN when that message had them),
    and its G-PDU counters. A data_usage record when a G-PDU finds the counters a
    usage interval or more old (the G-PDU included), at the decoder's sweep of idle
    counters (every usage interval of capture time from the first packet, at the first
    packet after it), and at the end of the capture. Tunnels are never forgotten for
    being idle. Times are the capture's (microseconds, as the pcap stores them)."""

    def __init__(self, interval_ns: int = USAGE_INTERVAL_NS):
        self.t = collections.OrderedDict()      # key -> [identity, packets, octets, counted since, last]
        self.interval = interval_ns
        self.next_sweep = None

    def learn(self, key, ident: dict, ts: int):
        t = self.t.get(key)
        if t is None:
            self.t[key] = [dict(ident), 0, 0, ts, ts]
            return
        x = t[0]
        x["imsi"], x["msisdn"] = ident.get("imsi"), ident.get("msisdn")
        for k in ("imei", "rat", "apn"):
            if ident.get(k):
                x[k] = ident[k]
        t[4] = ts
        self.t.move_to_end(key)

    def count(self, key, size: int, ts: int, frame: int, out: list):
        t = self.t.get(key)
        if t is None:
            t = self.t[key] = [{}, 0, 0, ts, ts]
        else:
            self.t.move_to_end(key)
        t[1] += 1
        t[2] += size
        t[4] = ts
        if ts - t[3] >= self.interval:
            out.append(self._record(key, t, frame))
            t[1] = t[2] = 0
            t[3] = ts

    def sweep(self, ts: int, frame: int, out: list):
        """Called before every packet of the capture, as the decoder does."""
        every = max(self.interval, 1_000_000_000)
        if self.next_sweep is None:
            self.next_sweep = ts + every
        if ts < self.next_sweep:
            return
        for key, x in self.t.items():
            if x[1] and ts - x[3] >= self.interval:
                out.append(self._record(key, x, frame))
                x[1] = x[2] = 0
                x[3] = ts
        self.next_sweep = ts + every

    def flush(self, frame: int, out: list):
        recs = [self._record(k, x, frame) for k, x in self.t.items() if x[1]]
        recs.sort(key=lambda r: r["tid"])
        out.extend(recs)
        self.t.clear()

    @staticmethod
    def _record(key, t, frame) -> dict:
        who = t[0]
        return _finish_record(dict(kind="data_usage", proto="gtpu", flags=[], op=255, imsi=who.get("imsi"),
                                   msisdn=who.get("msisdn"), imei=who.get("imei"), rat=who.get("rat"),
                                   apn=who.get("apn"), tid=key[0], packets=t[1], octets=t[2]), frame)


class _UdpPath:
    """One direction of UDP between two addresses (GTP-C 2123, GTP-U 2152)."""
    __slots__ = ("eth", "tail", "partial", "ports", "ident")

    def __init__(self, src_ip: int, dst_ip: int, port: int):
        self.eth = _mac(dst_ip) + _mac(src_ip) + b"\x08\x00"
        self.tail = struct.pack(">II", src_ip, dst_ip)
        s = 0x4500 + 0x4000 + ((64 << 8) | 17) + (src_ip >> 16) + (src_ip & 0xFFFF) + (dst_ip >> 16) + (dst_ip & 0xFFFF)
        self.partial = s
        self.ports = port
        self.ident = random.Random((src_ip << 32) | dst_ip | (port << 64)).getrandbits(16)

    def frame(self, payload: bytes) -> bytes:
        total = 28 + len(payload)
        ident = self.ident
        self.ident = (ident + 1) & 0xFFFF
        return b"".join((self.eth, struct.pack(">HHHHBBH", 0x4500, total, ident, 0x4000, 64, 17,
                                               _ip_csum(self.partial, total, ident)),
                         self.tail, struct.pack(">HHHH", self.ports, self.ports, 8 + len(payload), 0), payload))


_GTPU_HDR = None


def _gpdu(teid: bytes, inner: tuple, size: int, ident: int) -> bytes:
    """G-PDU: the pycrate-encoded header with length and TEID, an inner IPv4/UDP packet
    of `size` octets (UDP checksum 0, as IPv4 allows)."""
    global _GTPU_HDR
    if _GTPU_HDR is None:
        _GTPU_HDR = gtpu_header()
    src, dst, sport, dport = inner
    s = 0x4500 + size + ident + 0x4000 + ((64 << 8) | 17) + (src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF)
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    h = _GTPU_HDR
    return b"".join((h[:2], struct.pack(">H", size), teid,
                     struct.pack(">HHHHBBHIIHHHH", 0x4500, size, ident, 0x4000, 64, 17, ~s & 0xFFFF, src, dst,
                                 sport, dport, size - 20, 0),
                     _INNER_PAYLOAD[:size - 28]))
