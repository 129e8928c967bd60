"""The framer that numbers each SCTP association's and UDP path's packets, and the pcap writer."""
from __future__ import annotations

import random
import struct

from .cap_isup import SSN_CAP
from .flows import S_GTPC, S_GTPU, S_TCAP, _Step
from .framing import _CSUM_OFF, PCAP_HEADER, SCTP_OFF, _Assoc, _crc32c_batch, m3ua_data, sccp_address, sccp_udt
from .network import Node
from .templates import GTPC_PORT, GTPU_PORT, _Templates
from .user_plane import _gpdu, _UdpPath


class _Framer:
    """Frames the messages of dialogues and flows: one SCTP association per node pair, one
    UDP path per address pair and port, each numbering its own packets."""

    def __init__(self, templates: "_Templates"):
        self.tm = templates
        self.assocs = {}
        self.udps = {}
        self.addrs = {}
        self.inner_ident = 0

    def assoc(self, a: Node, b: Node) -> _Assoc:
        key = (a.ip, b.ip)
        s = self.assocs.get(key)
        if s is None:
            r = random.Random((a.ip << 32) | b.ip)
            s = self.assocs[key] = _Assoc(a.ip, b.ip, r.getrandbits(32) | 1, r.getrandbits(32), r.getrandbits(16))
        return s

    def udp(self, a: int, b: int, port: int) -> _UdpPath:
        key = (a, b, port)
        s = self.udps.get(key)
        if s is None:
            s = self.udps[key] = _UdpPath(a, b, port)
        return s

    def sccp_addr(self, p: tuple) -> bytes:
        b = self.addrs.get(p)
        if b is None:
            b = self.addrs[p] = sccp_address(p[0], p[1])
        return b

    def tcap(self, m, sls: int, cls: int) -> bytes:
        """A MAP or CAP message (_Msg or S_TCAP _Step) over SCCP UDT / M3UA / SCTP, CRC left zero."""
        user = sccp_udt(self.sccp_addr(m.called), self.sccp_addr(m.calling), self.tm.render(m.builder, m.disc, m.vals),
                        cls)
        return self.assoc(m.src, m.dst).frame(m3ua_data(m.src.pc, m.dst.pc, sls, user))

    def step(self, m: "_Step", sls: int, cls: int) -> tuple:
        """(frame, protocol name) of a flow's step; SCTP frames have their CRC left zero."""
        k = m.kind
        if k == S_GTPU:
            self.inner_ident = (self.inner_ident + 1) & 0xFFFF
            return self.udp(m.src, m.dst, GTPU_PORT).frame(
                _gpdu(m.vals[0], m.vals[1], m.size, self.inner_ident)
            ), "gtpu"
        if k == S_GTPC:
            return (self.udp(m.src, m.dst, GTPC_PORT).frame(self.tm.render(m.builder, m.disc, m.vals)),
                    "gtpv2c" if m.builder.__name__.startswith("_b_g2") else "gtpv1c")
        if k == S_TCAP:
            return self.tcap(m, sls, cls), "cap" if m.called[1] == SSN_CAP else "map"
        return (self.assoc(m.src, m.dst).frame(m3ua_data(m.src.pc, m.dst.pc, sls,
                                                         self.tm.render(m.builder, m.disc, m.vals), si=5)), "isup")


class _PcapOut:
    """Frames gathered in batches and written with their pcap headers; the SCTP CRC32c of
    a batch is computed at once."""

    def __init__(self, out):
        self.out = out
        self.frames, self.ts, self.sctp = [], [], []
        self.nbytes = len(PCAP_HEADER)
        out.write(PCAP_HEADER)

    def add(self, frame: bytes, ts_ns: int, sctp: bool):
        self.frames.append(frame)
        self.ts.append(ts_ns)
        self.sctp.append(sctp)

    def flush(self):
        if not self.frames:
            return
        sctp = [i for i, s in enumerate(self.sctp) if s]
        crcs = dict(zip(sctp, _crc32c_batch([self.frames[i][SCTP_OFF:] for i in sctp]))) if sctp else {}
        parts = []
        pk = struct.pack
        for i, (f, ts) in enumerate(zip(self.frames, self.ts)):
            us = ts // 1000
            n = len(f)
            parts.append(pk("<IIII", us // 1_000_000, us % 1_000_000, n, n))
            c = crcs.get(i)
            if c is None:
                parts.append(f)
            else:
                parts.append(f[:_CSUM_OFF])
                parts.append(pk("<I", c))
                parts.append(f[_CSUM_OFF + 4:])
            self.nbytes += 16 + n
        self.out.write(b"".join(parts))
        self.frames.clear()
        self.ts.clear()
        self.sctp.clear()
