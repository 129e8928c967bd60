"""Reading what the generator wrote: pcap frames, expected records, payloads (tests/test_synth*.py)."""
import hashlib
import json
import struct


def sha256_of(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pcap_frames(data: bytes):
    """(ts_us, frame) of a classic little-endian pcap."""
    magic, _, _, _, _, _, link = struct.unpack_from("<IHHiIII", data, 0)
    assert magic == 0xA1B2C3D4 and link == 1
    pos, out = 24, []
    while pos < len(data):
        sec, usec, incl, orig = struct.unpack_from("<IIII", data, pos)
        assert incl == orig
        out.append((sec * 1_000_000 + usec, data[pos + 16:pos + 16 + incl]))
        pos += 16 + incl
    assert pos == len(data)
    return out


def load_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def udp_payload(f: bytes):
    """(dport, payload) of an Ethernet/IPv4/UDP frame, or None."""
    if f[12:14] != b"\x08\x00" or f[23] != 17:
        return None
    ihl = (f[14] & 0xF) * 4
    u = 14 + ihl
    return struct.unpack_from(">H", f, u + 2)[0], f[u + 8:]


def m3ua_user(f: bytes):
    """(SI, user data) of an Ethernet/IPv4/SCTP/M3UA DATA frame."""
    plen = struct.unpack_from(">H", f, 72)[0]
    return f[82], f[86:70 + plen]
