"""GTPv2-C, GTPv1-C and GTP-U messages hand-built from the specs (TS 29.274, TS 29.060,
TS 29.281), so that a test can vary exactly one field; a subscriber and her session; the
decoder run over frames. Shared by tests/test_gtp*.py and tests/test_tshark_gtp.py
(tests/test_gtp_pycrate.py encodes the same messages with pycrate)."""
import ipaddress
import random
import struct

from touchpoint.probe.decode import Stats, decode_bytes
from touchpoint.probe.format import to_dicts
from tests import packets as P

# ---- wire builders -----------------------------------------------------------

T0 = 1_700_000_000


def ip_int(addr: str) -> int:
    """An IPv4 address as the record's src/dst hold it."""
    return int(ipaddress.IPv4Address(addr))


def udp(payload: bytes, sport: int = 2123, dport: int = 2123) -> bytes:
    return struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload


def frame(payload: bytes, src: str, dst: str, sport: int = 2123, dport: int = 2123) -> bytes:
    """GTP payload in UDP in IPv4 in Ethernet."""
    return P.ether(P.ipv4(udp(payload, sport, dport), proto=17, src=src, dst=dst))


def pcap_at(frames_at) -> bytes:
    """A pcap of (seconds after T0, frame) pairs: explicit capture times."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)]
    for t, f in frames_at:
        us = round(t * 1_000_000)
        out.append(struct.pack("<IIII", T0 + us // 1_000_000, us % 1_000_000, len(f), len(f)) + f)
    return b"".join(out)


def plmn(mcc: str, mnc: str) -> bytes:
    """TS 24.008 10.5.1.3: MCC2 MCC1 | MNC3 MCC3 | MNC2 MNC1 (MNC3 = F for two digits)."""
    n3 = int(mnc[2]) if len(mnc) == 3 else 0xF
    return bytes([int(mcc[1]) << 4 | int(mcc[0]), n3 << 4 | int(mcc[2]), int(mnc[1]) << 4 | int(mnc[0])])


def apn(name: str) -> bytes:
    """APN as DNS labels (TS 23.003 9.1)."""
    return b"".join(bytes([len(label)]) + label.encode() for label in name.split("."))


def ipb(addr: str) -> bytes:
    return ipaddress.IPv4Address(addr).packed


# GTPv2-C (TS 29.274)

def ie2(t: int, value: bytes, inst: int = 0) -> bytes:
    return struct.pack(">BHB", t, len(value), inst & 0x0F) + value


def fteid(iface: int, teid: int, ip: str, inst: int = 0) -> bytes:
    """F-TEID (8.22) with an IPv4 address."""
    return ie2(87, bytes([0x80 | iface]) + struct.pack(">I", teid) + ipb(ip), inst)


def uli(mcc="208", mnc="15", cgi=None, sai=None, rai=None, tai=None, ecgi=None, lai=None) -> bytes:
    """User Location Information (8.21): the items given, in flag-bit order."""
    p = plmn(mcc, mnc)
    flags, body = 0, b""
    if cgi is not None:
        flags |= 0x01
        body += p + struct.pack(">HH", *cgi)
    if sai is not None:
        flags |= 0x02
        body += p + struct.pack(">HH", *sai)
    if rai is not None:
        flags |= 0x04
        body += p + struct.pack(">HBB", rai[0], rai[1], 0xFF)
    if tai is not None:
        flags |= 0x08
        body += p + struct.pack(">H", tai)
    if ecgi is not None:
        flags |= 0x10
        body += p + struct.pack(">I", ecgi)
    if lai is not None:
        flags |= 0x20
        body += p + struct.pack(">H", lai)
    return ie2(86, bytes([flags]) + body)


def gtpv2(mtype: int, ies: bytes, seq: int, teid=None, piggy: bool = False) -> bytes:
    """GTPv2-C header (5.1): version 2, P, T; TEID when given; 3-octet sequence number."""
    flags = 0x40 | (0x10 if piggy else 0) | (0x08 if teid is not None else 0)
    body = (struct.pack(">I", teid) if teid is not None else b"") + struct.pack(">I", seq << 8) + ies
    return struct.pack(">BBH", flags, mtype, len(body)) + body


# GTPv1 (TS 29.060 / 29.281)

def tv(t: int, value: bytes) -> bytes:
    return bytes([t]) + value


def tlv(t: int, value: bytes) -> bytes:
    return struct.pack(">BH", t, len(value)) + value


def gtpv1(mtype: int, ies: bytes, teid: int = 0, seq=None, ext=(), npdu=None) -> bytes:
    """GTPv1 header (6): the optional 4 octets when S, PN or E is set; extension
    headers as (type, content) with len(content) % 4 == 2."""
    flags = 0x30 | (0x04 if ext else 0) | (0x02 if seq is not None else 0) | (0x01 if npdu is not None else 0)
    opt = b""
    if flags & 0x07:
        opt = struct.pack(">HBB", seq or 0, npdu or 0, ext[0][0] if ext else 0)
        for i, (_typ, content) in enumerate(ext):
            assert len(content) % 4 == 2
            nxt = ext[i + 1][0] if i + 1 < len(ext) else 0
            opt += bytes([(len(content) + 2) // 4]) + content + bytes([nxt])
    body = opt + ies
    return struct.pack(">BBHI", flags, mtype, len(body), teid) + body


def gtpu(teid: int, inner: bytes, **kw) -> bytes:
    """A G-PDU (type 255) carrying inner."""
    return gtpv1(255, inner, teid=teid, **kw)


def inner_ip(size: int) -> bytes:
    """An inner IPv4/UDP packet of exactly size octets (size >= 28)."""
    return P.ipv4(udp(b"u" * (size - 28), 40000, 53), proto=17, src="100.64.0.7", dst="8.8.8.8")


PDU_SESSION = 0x85          # TS 29.281 5.2.1: PDU Session Container


# ---- a subscriber and her session --------------------------------------------

IMSI, MSISDN, IMEI = "208150123456789", "33612345678", "3534900698733190"
MCC, MNC = "208", "15"
MME, SGW, ENB, SGWU = "10.1.0.1", "10.2.0.1", "10.3.0.1", "10.2.0.9"
MME_TEID, SGW_TEID, ENB_TEID, SGWU_TEID = 0x1000, 0x2000, 0xE0001, 0x5001


def csr(seq=1, imsi=IMSI, enb_teid=ENB_TEID, mme_teid=MME_TEID, extra=b"") -> bytes:
    ies = (ie2(1, P.tbcd(imsi)) + ie2(76, P.tbcd(MSISDN)) + ie2(75, P.tbcd(IMEI))
           + uli(MCC, MNC, tai=0x1234, ecgi=0x0ABCDEF) + ie2(83, plmn(MCC, MNC)) + ie2(82, b"\x06")
           + fteid(10, mme_teid, MME) + ie2(71, apn("internet.mnc015.mcc208.gprs"))
           + ie2(93, ie2(73, b"\x05") + fteid(0, enb_teid, ENB)) + extra)
    return gtpv2(32, ies, seq, teid=0)


def csresp(seq=1, cause=16, sgwu_teid=SGWU_TEID, mme_teid=MME_TEID, piggy=False) -> bytes:
    ies = (ie2(2, bytes([cause, 0])) + fteid(11, SGW_TEID, SGW, inst=0)
           + ie2(93, ie2(73, b"\x05") + ie2(2, bytes([cause, 0])) + fteid(1, sgwu_teid, SGWU)))
    return gtpv2(33, ies, seq, teid=mme_teid, piggy=piggy)


def decode(frames, messages=False, at=None, **kw):
    """frames one second apart (or at the given times) -> (record dicts, Stats)."""
    st = Stats()
    data = pcap_at(zip(at if at is not None else range(len(frames)), frames))
    return to_dicts(decode_bytes(data, messages=messages, stats=st, **kw)), st


def control(recs):
    return [r for r in recs if r["proto"] != "gtpu"]


def usage(recs):
    return [r for r in recs if r["kind"] == "data_usage"]


def up(size, teid=SGWU_TEID, **kw):
    """A G-PDU from the eNodeB to the SGW's S1-U endpoint, inner packet of size octets."""
    return frame(gtpu(teid, inner_ip(size), **kw), ENB, SGWU, 2152, 2152)


def down(size, teid=ENB_TEID, **kw):
    return frame(gtpu(teid, inner_ip(size), **kw), SGWU, ENB, 2152, 2152)


SESSION = [frame(csr(), MME, SGW), frame(csresp(), SGW, MME)]


# ---- bearers ---------------------------------------------------------------------

BEARER = ("bearers", "ebi", "qci")


def bearer_fields(r):
    return tuple(r.get(k, 0) for k in BEARER)


# ---- whole messages, every IE the decoder reads ------------------------------------

V2_FULL = csr(extra=uli(cgi=(1, 2)) + ie2(255, b"\x00\x01private"))
V1_FULL = gtpv1(16, tv(2, P.tbcd(IMSI)) + tv(3, plmn("262", "01") + b"\x01\x00\x07") + tv(16, b"\0\0\0\1")
                + tv(17, b"\0\0\0\2") + tv(20, b"\x05") + tlv(131, apn("internet")) + tlv(133, ipb("10.5.0.1"))
                + tlv(133, ipb("10.5.0.2")) + tlv(134, b"\x91" + P.tbcd(MSISDN)) + tlv(151, b"\x01")
                + tlv(152, b"\x00" + plmn("262", "01") + b"\x01\x00\x00\x02") + tlv(154, P.tbcd(IMEI)),
                seq=77)
V1_EXT = gtpv1(16, tv(2, P.tbcd(IMSI)) + tv(20, b"\x05"), seq=78,
               ext=[(PDU_SESSION, b"\x00\x09"), (0xC0, b"\x00\x01\x02\x03\x04\x05")])


def corrupt(rng: random.Random, msg: bytes) -> bytes:
    """msg damaged one of four ways: bytes flipped, a length field, a cut and splice, garbage after a header."""
    b = bytearray(msg)
    how = rng.randrange(4)
    if how == 0:                                               # flip a few bytes
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif how == 1:                                             # a length field anywhere
        i = rng.randrange(len(b) - 1)
        b[i:i + 2] = struct.pack(">H", rng.choice([0, 1, 3, 4, 0xFF, 0xFFFF, len(b), rng.randrange(65536)]))
    elif how == 2:                                             # cut and splice
        i = rng.randrange(len(b))
        b = b[:i] + bytes(rng.randrange(256) for _ in range(rng.randrange(8))) + b[i + rng.randrange(8):]
    else:                                                      # garbage after a valid header
        b = b[:rng.randrange(4, 16)] + rng.randbytes(rng.randrange(64))
    return bytes(b)


# ---- GTP-C over TCP ------------------------------------------------------------

def tcp_frame(payload: bytes, src: str, dst: str, seq: int, sport: int = 40000, dport: int = 2123,
              flags: int = 0x18) -> bytes:
    return P.ether(P.ipv4(P.tcp(payload, sport, dport, seq, flags), proto=6, src=src, dst=dst))
