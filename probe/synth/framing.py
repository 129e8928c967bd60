"""Framing: CRC32c for SCTP, Ethernet / IPv4 / SCTP / M3UA / SCCP, classic pcap bytes."""
from __future__ import annotations

import itertools
import struct

import numpy as np

from .digits import tbcd


def _crc_table() -> np.ndarray:
    t = np.zeros(256, np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t[i] = c
    return t


_CRC_T = _crc_table()
_CRC_L = _CRC_T.tolist()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    t = _CRC_L
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _crc32c_batch(msgs: list) -> list:
    """CRC32c of many byte strings at once.

    Right-aligned in a zero-padded matrix: with the initial value folded into the
    first four octets, a reflected CRC is unchanged by leading zero octets, so all
    rows run through the same column loop."""
    n = len(msgs)
    lens = np.fromiter(map(len, msgs), np.int64, n)
    width = int(lens.max())
    buf = np.frombuffer(b"".join(b"\0" * (width - len(m)) + m for m in msgs), np.uint8)
    a = buf.reshape(n, width).copy()
    rows = np.arange(n)
    start = width - lens
    for k in range(4):
        a[rows, start + k] ^= 0xFF
    cols = np.ascontiguousarray(a.T)
    crc = np.zeros(n, np.uint32)
    t = _CRC_T
    for j in range(width):
        crc = t[(crc ^ cols[j]) & 0xFF] ^ (crc >> 8)
    return (crc ^ np.uint32(0xFFFFFFFF)).tolist()


# ---------------------------------------------------------------------------
# Framing: Ethernet / IPv4 / SCTP / M3UA / SCCP
# ---------------------------------------------------------------------------

SCTP_OFF = 34            # Ethernet 14 + IPv4 20
_CSUM_OFF = SCTP_OFF + 8


def sccp_address(gt: str, ssn: int) -> bytes:
    """Called/calling party address with its length octet: route on GT, GTI 4
    (TT 0, NP E.164, ES BCD odd/even, NAI international), SSN present, no PC."""
    body = bytes([0x12, ssn, 0x00, 0x10 | (1 if len(gt) & 1 else 2), 0x04]) + tbcd(gt)
    return bytes([len(body)]) + body


def sccp_udt(called: bytes, calling: bytes, data: bytes, cls: int = 0x81) -> bytes:
    lc, lg = len(called), len(calling)
    if len(data) > 255:
        raise ValueError("UDT data longer than 255 octets: use sccp='ludt'")
    return (bytes([0x09, cls, 3, 2 + lc, 1 + lc + lg]) + called + calling
            + bytes([len(data)]) + data)


def sccp_xudt(called: bytes, calling: bytes, data: bytes, cls: int = 0x81, hops: int = 15) -> bytes:
    lc, lg = len(called), len(calling)
    if len(data) > 255:
        raise ValueError("XUDT data longer than 255 octets: use sccp='ludt'")
    return (bytes([0x11, cls, hops, 4, 3 + lc, 2 + lc + lg, 0]) + called + calling
            + bytes([len(data)]) + data)


def sccp_ludt(called: bytes, calling: bytes, data: bytes, cls: int = 0x81, hops: int = 15) -> bytes:
    """LUDT: 2-octet pointers (LSB first), each counted from its own second (MSB) octet
    (Q.713 section 2.3, as Wireshark and pycrate's SCCP read them); 2-octet data length."""
    lc, lg = len(called), len(calling)
    return (bytes([0x13, cls, hops]) + struct.pack("<HHHH", 7, 5 + lc, 3 + lc + lg, 0)
            + called + calling + struct.pack("<H", len(data)) + data)


def m3ua_data(opc: int, dpc: int, sls: int, user: bytes, si: int = 3, ni: int = 2, mp: int = 0) -> bytes:
    plen = 16 + len(user)
    pad = (-plen) & 3
    return (struct.pack(">BBBBIHHIIBBBB", 1, 0, 1, 1, 8 + plen + pad, 0x0210, plen, opc, dpc,
                        si, ni, mp, sls) + user + b"\0" * pad)


def _ip_partial(src: int, dst: int) -> int:
    """One's-complement sum of the IPv4 header words that never change."""
    s = 0x4500 + 0x4000 + ((64 << 8) | 132)
    s += (src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF)
    return s


def _ip_csum(partial: int, total_len: int, ident: int) -> int:
    s = partial + total_len + ident
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _mac(ip: int) -> bytes:
    return b"\x02\x00" + struct.pack(">I", ip)


class _Assoc:
    """One direction of an SCTP association between two signaling nodes."""
    __slots__ = ("eth", "src", "dst", "partial", "ports_vtag", "tsn", "ssn", "ident")

    def __init__(self, src_ip: int, dst_ip: int, vtag: int, tsn: int, ident: int,
                 sport: int = 2905, dport: int = 2905):
        self.eth = _mac(dst_ip) + _mac(src_ip) + b"\x08\x00"
        self.src = struct.pack(">I", src_ip)
        self.dst = struct.pack(">I", dst_ip)
        self.partial = _ip_partial(src_ip, dst_ip)
        self.ports_vtag = struct.pack(">HHI", sport, dport, vtag)
        self.tsn = tsn
        self.ssn = 0
        self.ident = ident

    def frame(self, m3ua: bytes, stream: int = 1) -> bytes:
        """The frame with the SCTP checksum left zero (filled in later)."""
        clen = 16 + len(m3ua)
        pad = (-clen) & 3
        total = 20 + 12 + clen + pad
        ident = self.ident
        self.ident = (ident + 1) & 0xFFFF
        tsn = self.tsn
        self.tsn = (tsn + 1) & 0xFFFFFFFF
        ssn = self.ssn
        self.ssn = (ssn + 1) & 0xFFFF
        ip = (struct.pack(">HHHHBBH", 0x4500, total, ident, 0x4000, 64, 132,
                          _ip_csum(self.partial, total, ident)) + self.src + self.dst)
        return b"".join((self.eth, ip, self.ports_vtag, b"\0\0\0\0",
                         struct.pack(">BBHIHHI", 0, 3, clen, tsn, stream, ssn, 3),
                         m3ua, b"\0" * pad))


_TSN = itertools.count(1000)


def _fill_crc(frame: bytes) -> bytes:
    c = crc32c(frame[SCTP_OFF:])
    return frame[:_CSUM_OFF] + struct.pack("<I", c) + frame[_CSUM_OFF + 4:]


def frame_tcap(tcap: bytes, *, calling_gt: str = "8613800000001", called_gt: str = "8613900000001",
               calling_ssn: int = 7, called_ssn: int = 6, opc: int = 1, dpc: int = 2,
               ts_ns: int | None = None, sccp: str = "udt", sls: int = 0,
               src_ip: int = 0x0A000001, dst_ip: int = 0x0A000002, tsn: int | None = None,
               cls: int = 0x81) -> bytes:
    """One Ethernet frame carrying `tcap` through IPv4/SCTP/M3UA/SCCP (udt, xudt or ludt).

    Each call takes the next SCTP TSN (and IP id) unless tsn is given, so frames put
    in one capture are not retransmissions of each other. ts_ns is accepted for
    symmetry with pcap_bytes and not used: a frame has no time."""
    called = sccp_address(called_gt, called_ssn)
    calling = sccp_address(calling_gt, calling_ssn)
    enc = {"udt": sccp_udt, "xudt": sccp_xudt, "ludt": sccp_ludt}[sccp]
    user = enc(called, calling, tcap, cls)
    if tsn is None:
        tsn = next(_TSN)
    a = _Assoc(src_ip, dst_ip, vtag=0x11223344, tsn=tsn, ident=tsn & 0xFFFF)
    return _fill_crc(a.frame(m3ua_data(opc, dpc, sls, user)))


PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)


def pcap_bytes(frames, ts_ns_list=None, start_ns: int = 1_700_000_000_000_000_000,
               step_ns: int = 1_000_000) -> bytes:
    """A classic pcap file (microsecond timestamps, Ethernet) in memory."""
    out = [PCAP_HEADER]
    for i, f in enumerate(frames):
        ts = ts_ns_list[i] if ts_ns_list is not None else start_ns + i * step_ns
        us = ts // 1000
        out.append(struct.pack("<IIII", us // 1_000_000, us % 1_000_000, len(f), len(f)))
        out.append(f)
    return b"".join(out)
