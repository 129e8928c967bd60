"""Hand-built SS7-over-IP packets for layer tests: each builder is one layer,
written from the specs (Q.713, Q.773, RFC 4666/4165/3331/9260), so a test can
vary exactly one layer and keep the rest."""
import itertools
import struct


def tbcd(digits: str) -> bytes:
    d = digits + ("F" if len(digits) % 2 else "")
    return bytes(int(d[i + 1], 16) << 4 | int(d[i], 16) for i in range(0, len(d), 2))


def address(digits: str) -> bytes:
    """AddressString: international, ISDN/E.164, then TBCD."""
    return b"\x91" + tbcd(digits)


def ber(tag: int, content: bytes, indefinite: bool = False) -> bytes:
    if indefinite:
        return bytes([tag, 0x80]) + content + b"\x00\x00"
    n = len(content)
    if n < 0x80:
        ln = bytes([n])
    elif n < 0x100:
        ln = bytes([0x81, n])
    else:
        ln = bytes([0x82, n >> 8, n & 0xFF])
    return bytes([tag]) + ln + content


def integer(v: int) -> bytes:
    return ber(0x02, bytes([v & 0xFF]))


def invoke(iid: int, op: int, param: bytes) -> bytes:
    return ber(0xA1, integer(iid) + integer(op) + param)


def result(iid: int, op: int, param: bytes = b"") -> bytes:
    return ber(0xA2, integer(iid) + (ber(0x30, integer(op) + param) if param else b""))


def error(iid: int, code: int) -> bytes:
    return ber(0xA3, integer(iid) + integer(code))


def dialogue(ac_x: int, version: int, dest_ref: str = None, orig_ref: str = None, response=False) -> bytes:
    """Dialogue portion: AARQ (or AARE) with a MAP application context and MAP-OpenInfo."""
    ac = ber(0xA1, ber(0x06, bytes([4, 0, 0, 1, 0, ac_x, version])))
    user = b""
    if dest_ref or orig_ref:
        refs = (ber(0x80, address(dest_ref)) if dest_ref else b"") + (ber(0x81, address(orig_ref)) if orig_ref else b"")
        map_dialogue = ber(0x28, ber(0x06, bytes([4, 0, 0, 1, 1, 1, 1])) + ber(0xA0, ber(0xA0, refs)))
        user = ber(0xBE, map_dialogue)
    pdu = ber(0x61 if response else 0x60, ber(0x80, b"\x07\x80") + ac + user)
    return ber(0x6B, ber(0x28, ber(0x06, bytes([0, 0x11, 0x86, 0x05, 1, 1, 1])) + ber(0xA0, pdu)))


def tcap(kind: str, comps: bytes = b"", otid: int = None, dtid: int = None, dlg: bytes = b"",
         indefinite=False) -> bytes:
    tag = {"begin": 0x62, "continue": 0x65, "end": 0x64, "abort": 0x67, "uni": 0x61}[kind]
    body = b""
    if otid is not None:
        body += ber(0x48, struct.pack(">I", otid))
    if dtid is not None:
        body += ber(0x49, struct.pack(">I", dtid))
    body += dlg
    if comps:
        body += ber(0x6C, comps, indefinite)
    return ber(tag, body, indefinite)


def sccp_address(gt: str = None, ssn: int = 6, pc: int = None) -> bytes:
    ai = 0x02 | (0x01 if pc is not None else 0)
    body = b""
    if pc is not None:
        body += struct.pack("<H", pc)
    body += bytes([ssn])
    if gt:
        ai |= 4 << 2
        body += bytes([0, 0x10 | (1 if len(gt) % 2 else 2), 0x04]) + tbcd(gt)
    else:
        ai |= 0x40
    return bytes([ai]) + body


def udt(called: bytes, calling: bytes, data: bytes) -> bytes:
    p1 = 3
    p2 = p1 - 1 + 1 + len(called)
    p3 = p2 - 1 + 1 + len(calling)
    return bytes([0x09, 0x81, p1, p2, p3, len(called)]) + called + bytes([len(calling)]) + calling + \
        bytes([len(data)]) + data


def xudt(called: bytes, calling: bytes, data: bytes, segment: bytes = None) -> bytes:
    """XUDT; segment = the 4-octet Segmentation parameter value, if any."""
    p1 = 4
    p2 = p1 - 1 + 1 + len(called)
    p3 = p2 - 1 + 1 + len(calling)
    p4 = (p3 - 1 + 1 + len(data)) if segment else 0
    out = bytes([0x11, 0x81, 0x0F, p1, p2, p3, p4, len(called)]) + called + bytes([len(calling)]) + calling + \
        bytes([len(data)]) + data
    if segment:
        out += bytes([0x10, 4]) + segment + b"\x00"
    return out


def ludt(called: bytes, calling: bytes, data: bytes) -> bytes:
    """LUDT: 2-octet pointers, each counted from its second octet (Q.713 2.3)."""
    p1 = 11 - 4
    p2 = 11 + 1 + len(called) - 6
    p3 = 11 + 1 + len(called) + 1 + len(calling) - 8
    return bytes([0x13, 0x81, 0x0F]) + struct.pack("<HHHH", p1, p2, p3, 0) + bytes([len(called)]) + called + \
        bytes([len(calling)]) + calling + struct.pack("<H", len(data)) + data


def sccp_map(tcap_bytes: bytes, calling_gt="8613800000001", called_gt="8613900000001", calling_ssn=7,
             called_ssn=6) -> bytes:
    return udt(sccp_address(called_gt, called_ssn), sccp_address(calling_gt, calling_ssn), tcap_bytes)


def _pad4(b: bytes) -> bytes:
    return b + b"\x00" * (-len(b) % 4)


def m3ua(user: bytes, opc=1, dpc=2, si=3) -> bytes:
    pd = struct.pack(">IIBBBB", opc, dpc, si, 2, 0, 0) + user
    param = _pad4(struct.pack(">HH", 0x0210, 4 + len(pd)) + pd)
    return struct.pack(">BBBBI", 1, 0, 1, 1, 8 + len(param)) + param


def mtp3(user: bytes, opc=1, dpc=2, si=3) -> bytes:
    """ITU MTP3: SIO (national, SI) and the 4-octet routing label."""
    label = dpc | (opc << 14) | (0 << 28)
    return bytes([0x80 | si]) + struct.pack("<I", label) + user


def m2ua(mtp3_msg: bytes) -> bytes:
    iid = struct.pack(">HHI", 0x0001, 8, 0)
    pd = _pad4(struct.pack(">HH", 0x0300, 4 + len(mtp3_msg)) + mtp3_msg)
    return struct.pack(">BBBBI", 1, 0, 6, 1, 8 + len(iid) + len(pd)) + iid + pd


def m2pa(mtp3_msg: bytes) -> bytes:
    body = struct.pack(">II", 0, 0) + b"\x00" + mtp3_msg
    return struct.pack(">BBBBI", 1, 0, 11, 1, 8 + len(body)) + body


_TSN = itertools.count(1)


def data_chunk(payload: bytes, ppid=3, tsn=None, sid=0, flags=3) -> bytes:
    """A DATA chunk; each call takes the next TSN unless one is given (a repeated TSN is a retransmission)."""
    tsn = next(_TSN) if tsn is None else tsn
    return _pad4(struct.pack(">BBHIHHI", 0, flags, 16 + len(payload), tsn, sid, 0, ppid) + payload)


def sctp(*chunks: bytes, sport=2905, dport=2905) -> bytes:
    return struct.pack(">HHII", sport, dport, 1, 0) + b"".join(chunks)


def tcp(payload: bytes, sport=2123, dport=2123, seq=1, flags=0x18, ack=0, offset=5) -> bytes:
    """A TCP segment (RFC 9293): flags 0x18 = PSH ACK, 0x02 SYN, 0x04 RST; offset in 32-bit words."""
    opts = b"\x01" * (4 * offset - 20) if offset > 5 else b""
    return struct.pack(">HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack, offset << 4, flags, 65535, 0, 0) + \
        opts + payload


def ipv4(payload: bytes, proto=132, src="10.0.0.1", dst="10.0.0.2", ident=1, offset=0, more=False) -> bytes:
    s = bytes(int(x) for x in src.split("."))
    d = bytes(int(x) for x in dst.split("."))
    flags = (0x2000 if more else 0) | (offset // 8)
    return struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, flags, 64, proto, 0, s, d) + payload


def ipv4_fragments(payload: bytes, size: int, proto=132, ident=7) -> list:
    out = []
    for off in range(0, len(payload), size):
        out.append(ipv4(payload[off:off + size], proto, ident=ident, offset=off, more=off + size < len(payload)))
    return out


def ipv6(payload: bytes, nh=132, hop_by_hop=False) -> bytes:
    if hop_by_hop:
        payload = bytes([nh, 0]) + b"\x00" * 6 + payload
        nh = 0
    return struct.pack(">IHBB", 0x60000000, len(payload), nh, 64) + b"\x20\x01" + b"\x00" * 13 + b"\x01" + \
        b"\x20\x01" + b"\x00" * 13 + b"\x02" + payload


def ether(payload: bytes, ethertype=0x0800, vlans=()) -> bytes:
    out = b"\x00\x11\x22\x33\x44\x55\x00\x66\x77\x88\x99\xaa"
    for tpid, vid in vlans:
        out += struct.pack(">HH", tpid, vid)
    return out + struct.pack(">H", ethertype) + payload


def sll(payload: bytes, ethertype=0x0800) -> bytes:
    return struct.pack(">HHH8sH", 0, 1, 6, b"\x00" * 8, ethertype) + payload


def sll2(payload: bytes, ethertype=0x0800) -> bytes:
    return struct.pack(">HHIHBB8s", ethertype, 0, 1, 1, 0, 6, b"\x00" * 8) + payload


def pcap(frames, linktype=1, t0=1_700_000_000, nsec=False, swap=False) -> bytes:
    e = ">" if swap else "<"
    magic = 0xA1B23C4D if nsec else 0xA1B2C3D4
    out = [struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, 262144, linktype)]
    for i, f in enumerate(frames):
        out.append(struct.pack(e + "IIII", t0 + i, 123 * (1000 if nsec else 1), len(f), len(f)) + f)
    return b"".join(out)
