"""Synthetic signaling traffic: valid pcap captures with their expected records.

`generate()` writes a classic pcap (microsecond magic, link type Ethernet) of
what a probe sees between the nodes of a few mobile networks, for a population
of random subscribers. The same seed gives a byte-identical file. By default
(`DEFAULT_MIX`) about 60 % of the packets are SS7 and 40 % GTP:

- MAP dialogues (every operation the decoder knows, v1/v2/v3 forms, errors,
  Aborts, unanswered Begins), multi-part MT SMS (concatenation UDH) and MMS
  notifications (SMS-DELIVER, ports 2948/9200, WSP push of an m-notification-ind);
- CAP v2 CAMEL calls: InitialDP (DP2 with calledPartyBCDNumber, DP3, DP12 at the
  GMSC), requestReportBCSMEvent + continue, eventReportBCSM in the End;
- ISUP calls: IAM, ACM, ANM, REL, RLC, and calls released unanswered (16, 17, 19);
  all of the above over Ethernet / IPv4 / SCTP (one DATA chunk, PPID 3) / M3UA DATA
  (SI 3: SCCP UDT; SI 5: ISUP);
- GTPv2-C (UDP 2123): Create Session (and rejections), Modify Bearer with a new
  cell and the eNodeB's S1-U F-TEID (sometimes twice: a handover), Delete Session;
- GTPv1-C: Create PDP Context (and rejections), Delete PDP Context;
- GTP-U (UDP 2152): G-PDUs on the tunnels those announced, both directions, inner
  IPv4/UDP packets of varied sizes.
`MAP_MIX` gives MAP dialogues only (the first version of this generator, byte
for byte); `SS_MIX` weights supplementary services and USSD.

Every message is encoded with pycrate (the reference encoder: TCAP_MAPv2v3,
TCAP_CAP, TS29274_GTPC, TS29060_GTP, TS29281_GTPU, ISUP, TS23040_SMS), but only
once per shape: a *template* is encoded with placeholder identities, the
placeholders are located in the encoded bytes, and each packet patches its
own identities in (IMSI, MSISDN, IMEI, numbers, TCAP transaction ids, TEIDs,
addresses, sequence numbers, CICs, ...). Shapes whose lengths differ (a 14- or
15-digit IMSI, an 11- or 12-digit node number) are separate templates, so every
length is right. Framing (Ethernet to SCCP, UDP) is built with struct; IPv4
header checksums (also of the packets inside G-PDUs) and the SCTP CRC32c are
computed for every packet.

The expected records (`expected_path`, JSONL in the shape of
`probe.format.to_dicts`, dialogue mode) are the ground truth of what was
encoded, never the output of the decoder; ts_ns, src, dst and probe_id are left
out. One record per MAP or CAP dialogue (op = the first invoke's), per ISUP call
(at its REL), per GTP-C request/response (at the response; tid = sequence
number; Modify Bearer and Delete Session name their subscriber only through the
tunnel of their header TEID), and `data_usage` records for the user plane: per
tunnel (TEID at an address) when a G-PDU finds its counters a usage interval
(60 s of capture time) old, at the decoder's sweep of idle counters (every usage
interval of capture time, at the first packet after it), and at the end of the capture (the last frame), with the identity of the
GTP-C message that announced the tunnel. Records are in frame order; the
end-of-capture ones by TEID.

Packet count: exactly `packets` packets are written. Near the end only
dialogues and flows that still fit are started (a GTP session with fewer
G-PDUs, a Begin that is never answered), so every dialogue in the file is
complete.

Helpers for tests: `frame_tcap`, `pcap_bytes`, `encode_tcap`, `encode_begin`,
`encode_continue`, `encode_end`, `encode_abort`, `map_arg`, `map_res`,
`map_err`, `tbcd`, `addr`, `gsm7_pack`, `sms_deliver`, `sms_submit`, `cgi`,
`lai`, `crc32c`, `encode_gtpv2`, `encode_gtpv1`, `encode_cap`,
`sms_deliver_udh`, `mms_notification_pdu`.

Command line: `python -m touchpoint.probe.synth OUT.pcap [--packets N --seed S
--subscribers N --mix default|map|ss --expected OUT.jsonl]` and `python -m
probe.synth --regen-goldens` (rewrites pcaps/*.pcap and pcaps/*.expected.jsonl).
"""
from __future__ import annotations

import argparse
import bisect
import collections
import contextlib
import itertools
import json
import os
import random
import struct
import sys
import zlib
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "generate", "frame_tcap", "pcap_bytes", "encode_tcap", "encode_begin", "encode_continue",
    "encode_end", "encode_abort", "invoke", "result", "error", "dialogue_request",
    "dialogue_response", "map_arg", "map_res", "map_err", "tbcd", "addr", "gsm7_pack",
    "sms_deliver", "sms_submit", "cgi", "lai", "crc32c", "AC", "GOLDENS", "regen_goldens", "ber_style",
    "encode_gtpv2", "encode_gtpv1", "encode_cap", "sms_deliver_udh", "mms_notification_pdu", "gtpu_header",
    "IEGroup", "DEFAULT_MIX", "MAP_MIX", "SS_MIX", "MIXED_SMALL_MIX", "MIXES",
]

# ---------------------------------------------------------------------------
# Digits and small encoders
# ---------------------------------------------------------------------------

_TBCD_CHAR = {c: i for i, c in enumerate("0123456789")}
_TBCD_CHAR.update({"*": 10, "#": 11, "a": 12, "b": 13, "c": 14})


def tbcd(digits: str) -> bytes:
    """TBCD semi-octets, first digit in the low nibble, 0xF filler when odd."""
    n = [_TBCD_CHAR[c] for c in digits]
    if len(n) & 1:
        n.append(0xF)
    return bytes(n[i] | (n[i + 1] << 4) for i in range(0, len(n), 2))


def addr(digits: str, ton_npi: int = 0x91) -> bytes:
    """(ISDN-)AddressString: one octet TON/NPI (default international, E.164), then TBCD."""
    return bytes([ton_npi]) + tbcd(digits)


def sms_addr(digits: str, toa: int = 0x91) -> bytes:
    """TP-OA / TP-DA: length in digits, type of address, semi-octets. A name that is not
    digits (a sender like BANK) is alphanumeric: GSM 7-bit packed, TOA 0xD0, the length
    in useful semi-octets (TS 23.040 9.1.2.5)."""
    if not digits.isdigit():
        packed, n = gsm7_pack(digits)
        return bytes([(n * 7 + 3) // 4, 0xD0]) + packed
    return bytes([len(digits), toa]) + tbcd(digits)


_GSM7 = ("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
         "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")


def gsm7_pack(text: str, ussd: bool = False) -> tuple[bytes, int]:
    """GSM 7-bit default alphabet, packed; returns (octets, septet count).

    With ussd=True a CR is added when 7 spare bits would otherwise remain at the
    end (3GPP TS 23.038 section 6.1.2.3.1), as USSD strings have no length in septets."""
    septets = [_GSM7.index(c) for c in text]
    if ussd and (len(septets) * 7) % 8 == 1:
        septets.append(0x0D)
    v = 0
    for i, s in enumerate(septets):
        v |= s << (7 * i)
    nbytes = (len(septets) * 7 + 7) // 8
    return v.to_bytes(nbytes, "little"), len(septets)


def plmn(mcc: str, mnc: str) -> bytes:
    """3 octets MCC/MNC, TBCD; MNC digit 3 is 0xF for 2-digit MNCs."""
    m = [int(c) for c in mcc]
    n = [int(c) for c in mnc]
    n3 = n[2] if len(n) == 3 else 0xF
    return bytes([m[0] | (m[1] << 4), m[2] | (n3 << 4), n[0] | (n[1] << 4)])


def cgi(mcc: str, mnc: str, lac: int, ci: int) -> bytes:
    """CellGlobalIdOrServiceAreaIdFixedLength: PLMN, LAC, CI (7 octets)."""
    return plmn(mcc, mnc) + struct.pack(">HH", lac, ci)


def lai(mcc: str, mnc: str, lac: int) -> bytes:
    """LAIFixedLength: PLMN, LAC (5 octets)."""
    return plmn(mcc, mnc) + struct.pack(">H", lac)


_SCTS = bytes.fromhex("32111420203000")   # 2023-11-14 02:02:03 +00, semi-octets swapped


def sms_deliver(oa: str, text: str, *, toa: int = 0x91) -> bytes:
    """SMS-DELIVER TPDU (TP-MTI 00, TP-MMS set) from a numeric originator."""
    ud, n = gsm7_pack(text)
    return b"\x04" + sms_addr(oa, toa) + b"\x00\x00" + _SCTS + bytes([n]) + ud


def sms_submit(da: str, text: str, *, mr: int = 0x21, toa: int = 0x91) -> bytes:
    """SMS-SUBMIT TPDU (TP-MTI 01, relative validity period) to a numeric destination."""
    ud, n = gsm7_pack(text)
    return bytes([0x11, mr]) + sms_addr(da, toa) + b"\x00\x00\xa7" + bytes([n]) + ud


def luhn(d14: str) -> str:
    """The 15-digit IMEI for a 14-digit TAC+SNR (Luhn check digit)."""
    s = 0
    for i, c in enumerate(d14):
        k = int(c) * (2 if i % 2 else 1)
        s += k // 10 + k % 10
    return d14 + str((10 - s % 10) % 10)


# ---------------------------------------------------------------------------
# CRC32c (SCTP): scalar for single frames, numpy for batches
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# TCAP / MAP encoding with pycrate
# ---------------------------------------------------------------------------

_PYCRATE = None


def _tcap_obj():
    global _PYCRATE
    if _PYCRATE is None:
        from pycrate_asn1dir import TCAP_MAPv2v3
        _PYCRATE = TCAP_MAPv2v3.TCAP_MAP_Messages.TCAP_MAP_Message
    return _PYCRATE


# Application context X of {0 4 0 0 1 0 X v}
AC = {
    "networkLocUp": 1, "locationCancellation": 2, "locationInfoRetrieval": 5,
    "equipmentMngt": 13, "infoRetrieval": 14, "subscriberDataMngt": 16,
    "networkFunctionalSs": 18, "networkUnstructuredSs": 19, "shortMsgGateway": 20,
    "shortMsgMO-Relay": 21, "shortMsgMT-Relay": 25, "msPurging": 27,
    "subscriberInfoEnquiry": 28, "anyTimeInfoEnquiry": 29, "gprsLocationUpdate": 32,
}
DIALOGUE_AS = (0, 0, 17, 773, 1, 1, 1)
MAP_DIALOGUE_AS = (0, 4, 0, 0, 1, 1, 1, 1)


@contextlib.contextmanager
def ber_style(style: str = "definite"):
    """Encode with pycrate in another BER style inside the block: "definite" (shortest
    lengths), "long" (every length in long form, 0x82 hi lo) or "indefinite" (every
    constructed element with 0x80 ... 00 00)."""
    from pycrate_asn1rt.codecs import ASN1CodecBER as C
    if style not in ("definite", "long", "indefinite"):
        raise ValueError(f"unknown BER style {style!r}")
    old = (C.ENC_LUNDEF, C.ENC_LLONG)
    C.ENC_LUNDEF = style == "indefinite"
    C.ENC_LLONG = 2 if style == "long" else 0
    try:
        yield
    finally:
        C.ENC_LUNDEF, C.ENC_LLONG = old


def ac_oid(ac) -> tuple:
    x, v = ac
    return (0, 4, 0, 0, 1, 0, x, v)


def dialogue_request(ac, dest_ref: bytes | None = None, orig_ref: bytes | None = None) -> dict:
    """AARQ with the application context and, when given, a MAP-OpenInfo
    (destinationReference / originationReference are AddressStrings: TON/NPI + TBCD)."""
    req = {"protocol-version": (1, 1), "application-context-name": ac_oid(ac)}
    if dest_ref is not None or orig_ref is not None:
        mo = {}
        if dest_ref is not None:
            mo["destinationReference"] = dest_ref
        if orig_ref is not None:
            mo["originationReference"] = orig_ref
        req["user-information"] = [{
            "direct-reference": MAP_DIALOGUE_AS,
            "encoding": ("single-ASN1-type", ("MAP-DialoguePDU", ("map-open", mo)))}]
    return {"direct-reference": DIALOGUE_AS,
            "encoding": ("single-ASN1-type", ("DialoguePDU", ("dialogueRequest", req)))}


def dialogue_response(ac) -> dict:
    """AARE: accepted, diagnostic dialogue-service-user null."""
    return {"direct-reference": DIALOGUE_AS,
            "encoding": ("single-ASN1-type", ("DialoguePDU", ("dialogueResponse", {
                "protocol-version": (1, 1), "application-context-name": ac_oid(ac),
                "result": 0, "result-source-diagnostic": ("dialogue-service-user", 0)})))}


def invoke(op: int, arg=None, invoke_id: int = 1) -> tuple:
    v = {"invokeId": ("present", invoke_id), "opcode": ("local", op)}
    if arg is not None:
        v["argument"] = arg
    return ("basicROS", ("invoke", v))


def result(op: int, res=None, invoke_id: int = 1) -> tuple:
    v = {"invokeId": ("present", invoke_id)}
    if res is not None:
        v["result"] = {"opcode": ("local", op), "result": res}
    return ("basicROS", ("returnResult", v))


def error(code: int, param=None, invoke_id: int = 1) -> tuple:
    v = {"invokeId": ("present", invoke_id), "errcode": ("local", code)}
    if param is not None:
        v["parameter"] = param
    return ("basicROS", ("returnError", v))


def encode_tcap(msg: str, *, otid: bytes | None = None, dtid: bytes | None = None,
                dialogue: dict | None = None, components=()) -> bytes:
    """One TCAP message (begin / continue / end / unidirectional) encoded by pycrate."""
    v = {}
    if otid is not None:
        v["otid"] = otid
    if dtid is not None:
        v["dtid"] = dtid
    if dialogue is not None:
        v["dialoguePortion"] = dialogue
    if components:
        v["components"] = list(components)
    t = _tcap_obj()
    t.set_val((msg, v))
    return t.to_ber()


def encode_begin(op: int, arg=None, ac=None, dest_ref: bytes | None = None,
                 orig_ref: bytes | None = None, otid: bytes = b"\x00\x00\x00\x01",
                 invoke_id: int = 1, components=None) -> bytes:
    """A Begin with one invoke; ac=(X, v) adds the AARQ dialogue portion (None: MAP v1)."""
    dlg = dialogue_request(ac, dest_ref, orig_ref) if ac is not None else None
    comps = components if components is not None else [invoke(op, arg, invoke_id)]
    return encode_tcap("begin", otid=otid, dialogue=dlg, components=comps)


def encode_continue(otid: bytes, dtid: bytes, components=(), ac=None) -> bytes:
    """A Continue; ac=(X, v) adds the AARE (first answer of the responder)."""
    return encode_tcap("continue", otid=otid, dtid=dtid,
                       dialogue=dialogue_response(ac) if ac is not None else None,
                       components=components)


def encode_end(dtid: bytes, components=(), ac=None) -> bytes:
    return encode_tcap("end", dtid=dtid, dialogue=dialogue_response(ac) if ac is not None else None,
                       components=components)


def encode_abort(dtid: bytes, cause: int = 4) -> bytes:
    """TCAP Abort with a p-abortCause (4 = resourceLimitation)."""
    t = _tcap_obj()
    t.set_val(("abort", {"dtid": dtid, "reason": ("p-abortCause", cause)}))
    return t.to_ber()


# --- MAP arguments, results and errors as pycrate open-type values ---------

_MS3, _MS2 = "MAP-MS-DataTypes", "MAPv2-MS-DataTypes"
_SM3, _SM2 = "MAP-SM-DataTypes", "MAPv2-SM-DataTypes"
_CH3, _CH2 = "MAP-CH-DataTypes", "MAPv2-CH-DataTypes"
_SS3, _SS2 = "MAP-SS-DataTypes", "MAPv2-SS-DataTypes"


def _ext(pad: int) -> dict:
    """An extensionContainer of about `pad` octets (up to 10 private extensions with
    long OIDs), to force long-form BER lengths in tests."""
    n = max(1, min(10, pad // 24))
    arcs = max(1, (pad // n - 12) // 4)
    return {"privateExtensionList": [{"extId": (1, 3, 6, 1, 4, 1, 99999, i) + (0xFFFFFFF,) * arcs}
                                     for i in range(n)]}


def map_arg(op: int, v: int = 3, **f):
    """Invoke argument for `op` in MAP version `v` (2 or 3) from identity fields
    (digit strings unless noted). Returns ((module, type), value) for pycrate."""
    pad = f.get("pad")
    if op == 2:                                       # updateLocation
        if v >= 3:
            val = {"imsi": tbcd(f["imsi"]), "msc-Number": addr(f["msc"]), "vlr-Number": addr(f["vlr"]),
                   "vlr-Capability": {"supportedCamelPhases": (0b1110, 4)}}
            if pad:
                val["extensionContainer"] = _ext(pad)
            return ((_MS3, "UpdateLocationArg"), val)
        return ((_MS2, "UpdateLocationArg"), {"imsi": tbcd(f["imsi"]), "locationInfo": ("msc-Number", addr(f["msc"])),
                                              "vlr-Number": addr(f["vlr"])})
    if op == 3:                                       # cancelLocation
        if v >= 3:
            val = {"identity": ("imsi", tbcd(f["imsi"])), "cancellationType": "updateProcedure"}
            if pad:
                val["extensionContainer"] = _ext(pad)
            return ((_MS3, "CancelLocationArg"), val)
        return ((_MS2, "CancelLocationArg"), ("imsi", tbcd(f["imsi"])))
    if op == 7:                                       # insertSubscriberData
        val = {}
        if f.get("imsi"):
            val["imsi"] = tbcd(f["imsi"])
        if f.get("msisdn"):
            val["msisdn"] = addr(f["msisdn"], f.get("msisdn_toa", 0x91))
        val.update({"category": b"\x0a", "subscriberStatus": "serviceGranted",
                    "teleserviceList": [b"\x11", b"\x21", b"\x22"]})
        if v >= 3:
            if pad:
                val["extensionContainer"] = _ext(pad)
            return ((_MS3, "InsertSubscriberDataArg"), val)
        return ((_MS2, "InsertSubscriberDataArg"), val)
    if op == 10:                                      # registerSS
        val = {"ss-Code": bytes([f["ss_code"]]), "basicService": ("teleservice", b"\x10")}
        if f.get("ftn"):
            val["forwardedToNumber"] = addr(f["ftn"])
        if f.get("nrct"):
            val["noReplyConditionTime"] = f["nrct"]
        return ((_SS3 if v >= 3 else _SS2, "RegisterSS-Arg"), val)
    if op in (11, 12, 13):                            # eraseSS / activateSS / deactivateSS
        return ((_SS3 if v >= 3 else _SS2, "SS-ForBS-Code"),
                {"ss-Code": bytes([f["ss_code"]]), "basicService": ("teleservice", b"\x10")})
    if op == 22:                                      # sendRoutingInfo
        if v >= 3:
            val = {"msisdn": addr(f["msisdn"]), "interrogationType": "basicCall",
                   "gmsc-OrGsmSCF-Address": addr(f["gmsc"])}
            if pad:
                val["extensionContainer"] = _ext(pad)
            return ((_CH3, "SendRoutingInfoArg"), val)
        return ((_CH2, "SendRoutingInfoArg"), {"msisdn": addr(f["msisdn"])})
    if op == 23:                                      # updateGprsLocation
        val = {"imsi": tbcd(f["imsi"]), "sgsn-Number": addr(f["sgsn"]),
               "sgsn-Address": b"\x04" + f.get("gsn", b"\x0a\x00\x00\x01")}
        if pad:
            val["extensionContainer"] = _ext(pad)
        return ((_MS3, "UpdateGprsLocationArg"), val)
    if op == 43:                                      # checkIMEI
        if v >= 3:
            val = {"imei": tbcd(f["imei"]), "requestedEquipmentInfo": (0b10, 2)}
            if pad:
                val["extensionContainer"] = _ext(pad)
            return ((_MS3, "CheckIMEI-Arg"), val)
        return (("MAPv2-CommonDataTypes", "IMEI"), tbcd(f["imei"]))
    if op in (44, 46):                                # mt-forwardSM / mo-forwardSM / forwardSM
        if "imsi" in f and f["imsi"]:
            da = ("imsi", tbcd(f["imsi"]))
        else:
            da = ("serviceCentreAddressDA", addr(f["sc"]))
        if "msisdn" in f and f["msisdn"]:
            oa = ("msisdn", addr(f["msisdn"]))
        else:
            oa = ("serviceCentreAddressOA", addr(f["sc"]))
        val = {"sm-RP-DA": da, "sm-RP-OA": oa, "sm-RP-UI": f["ui"]}
        if v >= 3:
            if pad:
                val["extensionContainer"] = _ext(pad)
            return ((_SM3, "MT-ForwardSM-Arg" if op == 44 else "MO-ForwardSM-Arg"), val)
        return ((_SM2, "ForwardSM-Arg"), val)
    if op == 45:                                      # sendRoutingInfoForSM
        val = {"msisdn": addr(f["msisdn"]), "sm-RP-PRI": True, "serviceCentreAddress": addr(f["sc"])}
        if v >= 3:
            if pad:
                val["extensionContainer"] = _ext(pad)
            return ((_SM3, "RoutingInfoForSM-Arg"), val)
        return ((_SM2, "RoutingInfoForSM-Arg"), val)
    if op == 56:                                      # sendAuthenticationInfo
        if v >= 3:
            val = {"imsi": tbcd(f["imsi"]), "numberOfRequestedVectors": f.get("nvec", 5)}
            if pad:
                val["extensionContainer"] = _ext(pad)
            return ((_MS3, "SendAuthenticationInfoArg"), val)
        return ((_MS2, "SendAuthenticationInfoArg"), tbcd(f["imsi"]))
    if op == 59:                                      # processUnstructuredSS-Request
        s, _ = gsm7_pack(f["ussd"], ussd=True)
        val = {"ussd-DataCodingScheme": bytes([f.get("dcs", 0x0F)]), "ussd-String": s}
        if f.get("msisdn_arg"):
            val["msisdn"] = addr(f["msisdn_arg"])
        return ((_SS3 if v >= 3 else _SS2, "USSD-Arg"), val)
    if op == 67:                                      # purgeMS
        if v >= 3:
            val = {"imsi": tbcd(f["imsi"])}
            if f.get("vlr"):
                val["vlr-Number"] = addr(f["vlr"])
            if f.get("sgsn"):
                val["sgsn-Number"] = addr(f["sgsn"])
            if pad:
                val["extensionContainer"] = _ext(pad)
            return ((_MS3, "PurgeMS-Arg"), val)
        return ((_MS2, "PurgeMS-Arg"), {"imsi": tbcd(f["imsi"]), "vlr-Number": addr(f["vlr"])})
    if op == 70:                                      # provideSubscriberInfo
        req = {"locationInformation": 0, "subscriberState": 0}
        if f.get("want_imei"):
            req["imei"] = 0
        val = {"imsi": tbcd(f["imsi"]), "requestedInfo": req}
        if pad:
            val["extensionContainer"] = _ext(pad)
        return ((_MS3, "ProvideSubscriberInfoArg"), val)
    if op == 71:                                      # anyTimeInterrogation
        ident = ("imsi", tbcd(f["imsi"])) if f.get("imsi") else ("msisdn", addr(f["msisdn"]))
        req = {"locationInformation": 0, "subscriberState": 0}
        if f.get("want_imei"):
            req["imei"] = 0
        val = {"subscriberIdentity": ident, "requestedInfo": req, "gsmSCF-Address": addr(f["scf"])}
        if pad:
            val["extensionContainer"] = _ext(pad)
        return ((_MS3, "AnyTimeInterrogationArg"), val)
    raise ValueError(f"no argument encoder for MAP operation {op}")


def _subscriber_info(f) -> dict:
    loc = {"ageOfLocationInformation": f.get("age", 3)}
    if f.get("vlr"):
        loc["vlr-number"] = addr(f["vlr"])
    if f.get("cgi") is not None:
        loc["cellGlobalIdOrServiceAreaIdOrLAI"] = ("cellGlobalIdOrServiceAreaIdFixedLength", f["cgi"])
    elif f.get("lai") is not None:
        loc["cellGlobalIdOrServiceAreaIdOrLAI"] = ("laiFixedLength", f["lai"])
    si = {"locationInformation": loc, "subscriberState": ("assumedIdle", 0)}
    if f.get("imei"):
        si["imei"] = tbcd(f["imei"])
    return si


_RAND = bytes(range(0x10, 0x20))


def map_res(op: int, v: int = 3, **f):
    """returnResultLast parameter for `op` (None when the operation has no result in v)."""
    pad = f.get("pad")
    if op in (2, 23):
        val = {"hlr-Number": addr(f["hlr"])}
        if pad:
            val["extensionContainer"] = _ext(pad)
        if op == 23:
            return ((_MS3, "UpdateGprsLocationRes"), val)
        if v >= 3:
            return ((_MS3, "UpdateLocationRes"), val)
        return ((_MS2, "UpdateLocationRes"), ("extensibleUpdateLocationRes", {"hlr-Number": addr(f["hlr"])}))
    if op == 3:
        return ((_MS3, "CancelLocationRes"), {}) if v >= 3 else None
    if op == 7:
        return ((_MS3 if v >= 3 else _MS2, "InsertSubscriberDataRes"), {"ss-List": [b"\x21"]} if f.get("sslist") else {})
    if op == 10:
        ff = {"basicService": ("teleservice", b"\x10"), "ss-Status": b"\x07"}
        if f.get("ftn"):
            ff["forwardedToNumber"] = addr(f["ftn"])
        return ((_SS3 if v >= 3 else _SS2, "SS-Info"),
                ("forwardingInfo", {"ss-Code": bytes([f["ss_code"]]), "forwardingFeatureList": [ff]}))
    if op in (11, 12, 13):
        status = b"\x05" if op == 12 else b"\x04" if op == 13 else b"\x00"
        return ((_SS3 if v >= 3 else _SS2, "SS-Info"),
                ("forwardingInfo", {"ss-Code": bytes([f["ss_code"]]), "forwardingFeatureList": [
                    {"basicService": ("teleservice", b"\x10"), "ss-Status": status}]}))
    if op == 22:
        if v >= 3:
            val = {}
            if f.get("imsi"):
                val["imsi"] = tbcd(f["imsi"])
            val["extendedRoutingInfo"] = ("routingInfo", ("roamingNumber", addr(f["msrn"])))
            if f.get("vmsc"):
                val["vmsc-Address"] = addr(f["vmsc"])
            if pad:
                val["extensionContainer"] = _ext(pad)
            return ((_CH3, "SendRoutingInfoRes"), val)
        return ((_CH2, "SendRoutingInfoRes"), {"imsi": tbcd(f["imsi"]),
                                               "routingInfo": ("roamingNumber", addr(f["msrn"]))})
    if op == 43:
        if v >= 3:
            return ((_MS3, "CheckIMEI-Res"), {"equipmentStatus": f.get("status", "whiteListed")})
        return ((_MS2, "EquipmentStatus"), f.get("status", "whiteListed"))
    if op == 44:
        return ((_SM3, "MT-ForwardSM-Res"), {})
    if op == 46:
        return ((_SM3, "MO-ForwardSM-Res"), {}) if v >= 3 else None
    if op == 45:
        if v >= 3:
            val = {"imsi": tbcd(f["imsi"]), "locationInfoWithLMSI": {"networkNode-Number": addr(f["nnn"])}}
            if pad:
                val["extensionContainer"] = _ext(pad)
            return ((_SM3, "RoutingInfoForSM-Res"), val)
        return ((_SM2, "RoutingInfoForSM-Res"), {"imsi": tbcd(f["imsi"]),
                                                 "locationInfoWithLMSI": {"locationInfo": ("msc-Number", addr(f["nnn"]))}})
    if op == 56:
        if v >= 3:
            q = {"rand": _RAND, "xres": b"\x22" * 8, "ck": b"\x33" * 16, "ik": b"\x44" * 16, "autn": b"\x55" * 16}
            return ((_MS3, "SendAuthenticationInfoRes"), {"authenticationSetList": ("quintupletList", [q] * f.get("nvec", 1))})
        return ((_MS2, "SendAuthenticationInfoRes"), [{"rand": _RAND, "sres": b"\x22" * 4, "kc": b"\x33" * 8}] * f.get("nvec", 1))
    if op == 59:
        s, _ = gsm7_pack(f.get("text", "Balance 12.34"), ussd=True)
        return ((_SS3 if v >= 3 else _SS2, "USSD-Res"), {"ussd-DataCodingScheme": b"\x0f", "ussd-String": s})
    if op == 67:
        return ((_MS3, "PurgeMS-Res"), {}) if v >= 3 else None
    if op == 70:
        val = {"subscriberInfo": _subscriber_info(f)}
        if pad:
            val["extensionContainer"] = _ext(pad)
        return ((_MS3, "ProvideSubscriberInfoRes"), val)
    if op == 71:
        val = {"subscriberInfo": _subscriber_info(f)}
        if pad:
            val["extensionContainer"] = _ext(pad)
        return ((_MS3, "AnyTimeInterrogationRes"), val)
    raise ValueError(f"no result encoder for MAP operation {op}")


def map_err(code: int):
    """returnError parameter: absentSubscriberSM (6), unknownSubscriber (1), else none."""
    if code == 6:
        return (("MAP-ER-DataTypes", "AbsentSubscriberSM-Param"), {"absentSubscriberDiagnosticSM": 2})
    if code == 1:
        return (("MAP-ER-DataTypes", "UnknownSubscriberParam"), {"unknownSubscriberDiagnostic": "imsiUnknown"})
    return None


# ---------------------------------------------------------------------------
# Templates: encode once with placeholders, patch per packet
# ---------------------------------------------------------------------------

# Field kinds. Values handed to templates are the *encoded* octets of each field;
# builders receive digit strings (tbcd, smsaddr) or raw octets (raw).
_RAW_FIELDS = frozenset(("otid", "dtid", "cgi", "lai", "gsn"))
_SMS_FIELDS = frozenset(("tp_oa", "tp_da"))


# Fields of the templates beyond MAP (GTP, ISUP, CAP, SMS): name -> (encode(value) -> octets,
# placeholder(nbytes, rnd) -> value). Filled in by the mixed-traffic section below.
_FIELD_SPECS: dict = {}


def _enc_field(name: str, value):
    spec = _FIELD_SPECS.get(name)
    if spec is not None:
        return spec[0](value)
    if name in _RAW_FIELDS:
        return value
    if name in _SMS_FIELDS:
        return sms_addr(value)
    return tbcd(value)


class _Template:
    __slots__ = ("pieces", "names")

    def __init__(self, pieces, names):
        self.pieces = pieces
        self.names = names

    def render(self, vals: dict) -> bytes:
        p = self.pieces
        out = [p[0]]
        for i, n in enumerate(self.names):
            out.append(vals[n])
            out.append(p[i + 1])
        return b"".join(out)


def _placeholder(name: str, nbytes: int, rnd: random.Random):
    """A python value for `name` whose encoding is `nbytes` octets of random content."""
    spec = _FIELD_SPECS.get(name)
    if spec is not None:
        return spec[1](nbytes, rnd)
    if name in _RAW_FIELDS:
        return bytes(rnd.randrange(256) for _ in range(nbytes))
    if name in _SMS_FIELDS:
        return "".join(rnd.choice("0123456789") for _ in range(2 * (nbytes - 2)))
    return "".join(rnd.choice("0123456789") for _ in range(2 * nbytes))


def _make_template(builder, disc: tuple, names: tuple, lens: tuple) -> _Template:
    for attempt in range(20):
        rnd = random.Random(zlib.crc32(repr((builder.__name__, disc, names, lens, attempt)).encode()))
        ph = {n: _placeholder(n, l, rnd) for n, l in zip(names, lens)}
        enc = {n: _enc_field(n, ph[n]) for n in names}
        with ber_style("definite"):
            data = builder(ph, *disc)
        spots = []
        ok = True
        for n in names:
            e = enc[n]
            i = data.find(e)
            if i < 0 or data.find(e, i + 1) >= 0:
                ok = False
                break
            spots.append((i, n, len(e)))
        if not ok:
            continue
        spots.sort()
        if any(spots[k][0] + spots[k][2] > spots[k + 1][0] for k in range(len(spots) - 1)):
            continue
        pieces, order, pos = [], [], 0
        for i, n, l in spots:
            pieces.append(data[pos:i])
            order.append(n)
            pos = i + l
        pieces.append(data[pos:])
        t = _Template(pieces, tuple(order))
        check = t.render(enc)
        assert check == data, f"template {builder.__name__} does not round-trip"
        return t
    raise RuntimeError(f"cannot place the fields {names} of {builder.__name__}")


class _Templates:
    """Templates by (builder, discrete choices, field names, field lengths), made on first use."""

    def __init__(self):
        self.cache = {}

    def render(self, builder, disc: tuple, vals: dict) -> bytes:
        names = tuple(vals)
        lens = tuple(map(len, vals.values()))
        key = (builder, disc, names, lens)
        t = self.cache.get(key)
        if t is None:
            t = self.cache[key] = _make_template(builder, disc, names, lens)
        return t.render(vals)


# --- message builders: (fields, *discrete) -> TCAP octets ------------------
# Fields arrive as digit strings / raw octets; discrete choices are hashable.

def _b_end_error(f, op, v, code):
    return encode_end(f["dtid"], [error(code, map_err(code))], ac=(_OP_AC[op][0], v) if v >= 2 else None)


def _b_abort(f, cause):
    return encode_abort(f["dtid"], cause)


def _b_ul_isd(f, v):
    """HLR -> VLR Continue: AARE + insertSubscriberData invoke carrying the MSISDN."""
    return encode_continue(f["otid"], f["dtid"], [invoke(7, map_arg(7, v, msisdn=f["msisdn"]), 1)],
                           ac=(AC["networkLocUp"], v))


def _b_ul_isd_res(f, v):
    return encode_continue(f["otid"], f["dtid"], [result(7, map_res(7, v), 1)])


def _b_ul_end(f, v):
    return encode_end(f["dtid"], [result(2, map_res(2, v, hlr=f["hlr"]), 1)])


_OP_AC = {
    2: (AC["networkLocUp"],), 3: (AC["locationCancellation"],), 7: (AC["subscriberDataMngt"],),
    10: (AC["networkFunctionalSs"],), 11: (AC["networkFunctionalSs"],), 12: (AC["networkFunctionalSs"],),
    13: (AC["networkFunctionalSs"],), 22: (AC["locationInfoRetrieval"],), 23: (AC["gprsLocationUpdate"],),
    43: (AC["equipmentMngt"],), 44: (AC["shortMsgMT-Relay"],), 45: (AC["shortMsgGateway"],),
    46: (AC["shortMsgMO-Relay"],), 56: (AC["infoRetrieval"],), 59: (AC["networkUnstructuredSs"],),
    67: (AC["msPurging"],), 70: (AC["subscriberInfoEnquiry"],), 71: (AC["anyTimeInfoEnquiry"],),
}


# ---------------------------------------------------------------------------
# The simulated networks
# ---------------------------------------------------------------------------

SSN_HLR, SSN_VLR, SSN_MSC, SSN_EIR, SSN_SCF, SSN_SGSN = 6, 7, 8, 9, 147, 149
SERVING_SSNS = (SSN_VLR, SSN_MSC, SSN_SGSN)


@dataclass
class Node:
    gt: str
    ssn: int
    pc: int
    ip: int
    net: "Network" = None
    kind: str = ""


@dataclass
class Network:
    name: str
    cc: str
    mcc: str
    mnc: str
    imsi_prefix: str
    msisdn_prefixes: tuple
    msisdn_len: tuple          # national significant number lengths after the CC
    node_prefix: str
    msrn_prefix: str
    msrn_len: int
    lacs: tuple
    index: int = 0
    hlrs: list = field(default_factory=list)
    vlrs: list = field(default_factory=list)   # (vlr node, msc number)
    sgsns: list = field(default_factory=list)
    smscs: list = field(default_factory=list)
    gmscs: list = field(default_factory=list)
    scfs: list = field(default_factory=list)
    eirs: list = field(default_factory=list)


def _networks() -> list:
    nets = [
        Network("cn", "86", "460", "00", "46000", ("86138", "86139", "86135"), (11,),
                "8613900", "8613944", 13, (0x2A01, 0x2A02, 0x2A03, 0x5C10)),
        Network("uk", "44", "234", "15", "23415", ("447700", "447711"), (10,),
                "4477009", "447785", 12, (0x0101, 0x0203)),
        Network("us", "1", "310", "260", "310260", ("1206", "1425"), (10,),
                "120655", "120677", 11, (0x1F40, 0x1F41)),
    ]
    for i, n in enumerate(nets):
        n.index = i
        width = 12 if n.cc != "1" else 11
        serial = [0]

        def mk(kind, ssn, n=n, i=i, width=width, serial=serial):
            serial[0] += 1
            k = serial[0]
            gt = (n.node_prefix + kind).ljust(width - 3, "0") + f"{k:03d}"
            return Node(gt, ssn, pc=(i + 1) * 1000 + k, ip=(10 << 24) | ((i + 1) << 16) | k, net=n, kind=kind)

        n.hlrs = [mk("1", SSN_HLR) for _ in range(2)]
        for _ in range(3):
            vlr = mk("2", SSN_VLR)
            msc = mk("2", SSN_MSC)
            msc.ip, msc.pc = vlr.ip, vlr.pc         # one MSC/VLR box, two numbers
            n.vlrs.append((vlr, msc))
        n.sgsns = [mk("3", SSN_SGSN) for _ in range(2)]
        n.smscs = [mk("4", SSN_MSC)]
        n.gmscs = [mk("5", SSN_MSC)]
        n.scfs = [mk("6", SSN_SCF)]
        n.eirs = [mk("7", SSN_EIR)]
    return nets


@dataclass
class Subscriber:
    imsi: str
    msisdn: str
    imei: str
    home: Network
    hlr: Node
    vlr: Node
    msc: Node
    sgsn: Node
    mcc: str
    mnc: str
    lac: int
    ci: int
    imsi_t: bytes = b""
    msisdn_t: bytes = b""
    imei_t: bytes = b""


_TACS = ("35332509", "35391110", "86769503", "35290611", "01326300", "35875505")


def _subscribers(rng: random.Random, nets: list, count: int) -> list:
    subs = []
    seen_imsi, seen_msisdn = set(), set()
    home = nets[0]
    while len(subs) < count:
        r = rng.random()
        net = home if r < 0.8 else nets[1] if r < 0.92 else nets[2]
        ilen = 15 if rng.random() < 0.85 else 14
        imsi = net.imsi_prefix + "".join(rng.choice("0123456789") for _ in range(ilen - len(net.imsi_prefix)))
        p = rng.choice(net.msisdn_prefixes)
        nsn = rng.choice(net.msisdn_len)
        if net is home and rng.random() < 0.1:
            nsn -= 1                                # a few shorter (10-digit) national numbers
        msisdn = p + "".join(rng.choice("0123456789") for _ in range(len(net.cc) + nsn - len(p)))
        if imsi in seen_imsi or msisdn in seen_msisdn:
            continue
        seen_imsi.add(imsi)
        seen_msisdn.add(msisdn)
        imei = luhn(rng.choice(_TACS) + "".join(rng.choice("0123456789") for _ in range(6)))
        # where is the subscriber: mostly at home, some roaming out, roamers in
        if net is home:
            vnet = home if rng.random() < 0.9 else rng.choice(nets[1:])
        else:
            vnet = home if rng.random() < 0.7 else net
        vlr, msc = rng.choice(vnet.vlrs)
        s = Subscriber(imsi, msisdn, imei, net, rng.choice(net.hlrs), vlr, msc, rng.choice(vnet.sgsns),
                       vnet.mcc, vnet.mnc, rng.choice(vnet.lacs), rng.randrange(1, 65535))
        s.imsi_t, s.msisdn_t, s.imei_t = tbcd(imsi), tbcd(msisdn), tbcd(imei)
        subs.append(s)
    return subs


# ---------------------------------------------------------------------------
# Dialogues
# ---------------------------------------------------------------------------

@dataclass
class _Msg:
    builder: object
    disc: tuple
    vals: dict
    src: Node
    dst: Node
    called: tuple            # (gt, ssn)
    calling: tuple


class _Dialogue:
    __slots__ = ("msgs", "pos", "expect", "begin_frame", "sls", "cls")

    def __init__(self, msgs, expect, sls, cls):
        self.msgs = msgs
        self.pos = 0
        self.expect = expect
        self.begin_frame = 0
        self.sls = sls
        self.cls = cls


_KIND = {2: "location_update", 3: "cancel_location", 7: "insert_sub_data", 10: "ss_register",
         11: "ss_erase", 12: "ss_activate", 13: "ss_deactivate", 22: "sri", 23: "gprs_location_update",
         43: "check_imei", 44: "mt_sms", 45: "sri_sm", 46: "mo_sms", 56: "auth_info", 59: "ussd",
         67: "purge_ms", 70: "subscriber_info", 71: "subscriber_info"}
_FLAG_ORDER = ("request", "response", "error", "abort", "timeout", "partial", "correlated")


def _flags(*names) -> list:
    return [n for n in _FLAG_ORDER if n in names]


def _ssn_node(called: tuple, calling: tuple):
    """The serving node by SCCP: called party first, then calling, SSN 7, 8 or 149."""
    if called[1] in SERVING_SSNS:
        return called[0]
    if calling[1] in SERVING_SSNS:
        return calling[0]
    return None


_SMS_TEXTS = ("Your code is 482913", "See you at 7?", "Meeting moved to 3pm",
              "Happy birthday!", "Call me back please", "OK")
_USSD = ("*100#", "*101#", "*123*1#", "#111#", "*135#")
_SS_CODES = (0x21, 0x29, 0x2A, 0x2B)


class _Gen:
    """Builds dialogues (messages + expected record) for a population."""

    def __init__(self, rng: random.Random, nets: list, subs: list):
        self.rng = rng
        self.nets = nets
        self.subs = subs
        self.used_tids = set()

    def tid(self) -> bytes:
        r = self.rng
        while True:
            t = r.getrandbits(32)
            if t not in self.used_tids and t != 0:
                self.used_tids.add(t)
                return t.to_bytes(4, "big")

    # A dialogue: Begin from `a` to `b`, answered by `b`.
    def _two(self, sub, op, v, a, b, called, calling, begin_fields, begin_args, end, exp, dlg_refs=False,
             outcome="ok"):
        """Begin + End (or Abort / nothing). end: (builder, disc, vals-without-dtid) for the ok case."""
        otid = self.tid()
        vals = {"otid": otid}
        vals.update(begin_fields)
        msgs = [_Msg(_b_begin, (op, v, begin_args, dlg_refs), vals, a, b, called, calling)]
        exp = dict(exp)
        exp.update(op=op, kind=exp.get("kind", _KIND[op]), tid=int.from_bytes(otid, "big"),
                   version=v if v >= 2 else 1)
        if outcome == "timeout":
            exp["flags"] = _flags("request", "timeout")
        elif outcome == "abort":
            msgs.append(_Msg(_b_abort, (4,), {"dtid": otid}, b, a, calling, called))
            exp["flags"] = _flags("request", "abort")
        else:
            builder, disc, evals = end
            ev = {"dtid": otid}
            ev.update(evals)
            msgs.append(_Msg(builder, disc, ev, b, a, calling, called))
        return msgs, exp

    fail_rate = 0.03

    def _outcome(self, allow=True) -> str:
        if not allow:
            return "ok"
        r = self.rng.random()
        return "abort" if r < self.fail_rate / 2 else "timeout" if r < self.fail_rate else "ok"

    # --- scenarios -------------------------------------------------------
    def ul(self, sub, outcome):
        v = 3 if self.rng.random() < 0.8 else 2
        vlr, msc, hlr = sub.vlr, sub.msc, sub.hlr
        called, calling = (hlr.gt, SSN_HLR), (vlr.gt, SSN_VLR)
        otid = self.tid()
        vals = {"otid": otid, "imsi": sub.imsi_t, "msc": tbcd(msc.gt), "vlr": tbcd(vlr.gt)}
        args = (("imsi", "imsi"), ("msc", "msc"), ("vlr", "vlr"))
        msgs = [_Msg(_b_begin, (2, v, args, False), vals, vlr, hlr, called, calling)]
        exp = {"op": 2, "kind": "location_update", "tid": int.from_bytes(otid, "big"), "version": v,
               "imsi": sub.imsi, "node": vlr.gt}
        if outcome == "abort":
            msgs.append(_Msg(_b_abort, (4,), {"dtid": otid}, hlr, vlr, calling, called))
            exp["flags"] = _flags("request", "abort")
        elif outcome == "timeout":
            exp["flags"] = _flags("request", "timeout")
        else:
            htid = self.tid()
            msgs.append(_Msg(_b_ul_isd, (v,), {"otid": htid, "dtid": otid, "msisdn": sub.msisdn_t},
                             hlr, vlr, calling, called))
            msgs.append(_Msg(_b_ul_isd_res, (v,), {"otid": otid, "dtid": htid}, vlr, hlr, called, calling))
            msgs.append(_Msg(_b_ul_end, (v,), {"dtid": otid, "hlr": tbcd(hlr.gt)}, hlr, vlr, calling, called))
            exp["msisdn"] = sub.msisdn
            exp["flags"] = _flags("request", "response", "correlated")
        return msgs, exp

    def _ok(self, exp, outcome):
        if outcome == "ok":
            exp["flags"] = _flags("request", "response", "correlated")
        return exp

    def cancel_location(self, sub, outcome):
        v = 3 if self.rng.random() < 0.7 else 2
        hlr, vlr = sub.hlr, sub.vlr
        called, calling = (vlr.gt, SSN_VLR), (hlr.gt, SSN_HLR)
        end = (_b_end_result, (3, v, ()), {})
        msgs, exp = self._two(sub, 3, v, hlr, vlr, called, calling, {"imsi": sub.imsi_t},
                              (("imsi", "imsi"),), end, {"imsi": sub.imsi, "node": _ssn_node(called, calling)},
                              outcome=outcome)
        return msgs, self._ok(exp, outcome)

    def purge_ms(self, sub, outcome):
        v = 3 if self.rng.random() < 0.7 else 2
        hlr, vlr = sub.hlr, sub.vlr
        called, calling = (hlr.gt, SSN_HLR), (vlr.gt, SSN_VLR)
        end = (_b_end_result, (67, v, ()), {})
        msgs, exp = self._two(sub, 67, v, vlr, hlr, called, calling, {"imsi": sub.imsi_t, "vlr": tbcd(vlr.gt)},
                              (("imsi", "imsi"), ("vlr", "vlr")), end, {"imsi": sub.imsi, "node": vlr.gt},
                              outcome=outcome)
        return msgs, self._ok(exp, outcome)

    def sai(self, sub, outcome):
        v = 3 if self.rng.random() < 0.75 else 2
        gprs = self.rng.random() < 0.25
        asker = sub.sgsn if gprs else sub.vlr
        hlr = sub.hlr
        called, calling = (hlr.gt, SSN_HLR), (asker.gt, asker.ssn)
        nvec = self.rng.choice((1, 2)) if v >= 3 else 1
        end = (_b_end_result, (56, v, ((None, ("nvec", nvec)),)), {})
        bargs = (("imsi", "imsi"), (None, ("nvec", nvec)))
        msgs, exp = self._two(sub, 56, v, asker, hlr, called, calling, {"imsi": sub.imsi_t}, bargs, end,
                              {"imsi": sub.imsi, "node": _ssn_node(called, calling)}, outcome=outcome)
        return msgs, self._ok(exp, outcome)

    def isd(self, sub, outcome):
        v = 3 if self.rng.random() < 0.7 else 2
        hlr, vlr = sub.hlr, sub.vlr
        called, calling = (vlr.gt, SSN_VLR), (hlr.gt, SSN_HLR)
        end = (_b_end_result, (7, v, ((None, ("sslist", True)),)), {})
        msgs, exp = self._two(sub, 7, v, hlr, vlr, called, calling,
                              {"imsi": sub.imsi_t, "msisdn": sub.msisdn_t}, (("imsi", "imsi"), ("msisdn", "msisdn")),
                              end, {"imsi": sub.imsi, "msisdn": sub.msisdn, "node": _ssn_node(called, calling)},
                              outcome=outcome)
        return msgs, self._ok(exp, outcome)

    def ugl(self, sub, outcome):
        sgsn, hlr = sub.sgsn, sub.hlr
        called, calling = (hlr.gt, SSN_HLR), (sgsn.gt, SSN_SGSN)
        end = (_b_end_result, (23, 3, (("hlr", "hlr"),)), {"hlr": tbcd(hlr.gt)})
        gsn = struct.pack(">I", sgsn.ip)
        msgs, exp = self._two(sub, 23, 3, sgsn, hlr, called, calling,
                              {"imsi": sub.imsi_t, "sgsn": tbcd(sgsn.gt), "gsn": gsn},
                              (("imsi", "imsi"), ("sgsn", "sgsn"), ("gsn", "gsn")), end,
                              {"imsi": sub.imsi, "node": sgsn.gt}, outcome=outcome)
        return msgs, self._ok(exp, outcome)

    def ss(self, sub, outcome, op, code=None, ftn=None):
        v = 2                                          # networkFunctionalSs has no v3
        vlr, hlr = sub.vlr, sub.hlr
        called, calling = (hlr.gt, SSN_HLR), (vlr.gt, SSN_VLR)
        if code is None:
            code = self.rng.choice(_SS_CODES)
        fields = {"imsi": sub.imsi_t, "msisdn": sub.msisdn_t}
        args = [(None, ("ss_code", code))]
        rargs = [(None, ("ss_code", code))]
        e = {"imsi": sub.imsi, "msisdn": sub.msisdn, "ss_code": code, "node": _ssn_node(called, calling)}
        evals = {}
        if op == 10:
            if ftn is not None:
                pass
            elif self.rng.random() < 0.7:
                ftn = self.rng.choice(self.subs).msisdn      # another subscriber
            else:
                ftn = sub.home.node_prefix + "999"             # the voicemail platform
            fields["ftn"] = tbcd(ftn)
            args.append(("ftn", "ftn"))
            rargs.append(("ftn", "ftn"))
            evals["ftn"] = tbcd(ftn)
            e["peer"] = ftn
            if code == 0x2A:
                args.append((None, ("nrct", 20)))
        end = (_b_end_result, (op, v, tuple(rargs)), evals)
        msgs, exp = self._two(sub, op, v, vlr, hlr, called, calling, fields, tuple(args), end, e,
                              dlg_refs=True, outcome=outcome)
        return msgs, self._ok(exp, outcome)

    def sri(self, sub, outcome):
        v = 3 if self.rng.random() < 0.75 else 2
        gmsc = self.rng.choice(self.nets[0].gmscs)
        hlr = sub.hlr
        called, calling = (sub.msisdn, SSN_HLR), (gmsc.gt, SSN_MSC)   # routed on the MSISDN
        vnet = sub.vlr.net
        msrn = vnet.msrn_prefix + "".join(self.rng.choice("0123456789")
                                          for _ in range(vnet.msrn_len - len(vnet.msrn_prefix)))
        e = {"msisdn": sub.msisdn}
        fields = {"msisdn": sub.msisdn_t}
        args = [("msisdn", "msisdn")]
        if v >= 3:
            fields["gmsc"] = tbcd(gmsc.gt)
            args.append(("gmsc", "gmsc"))
        rvals = {"imsi": sub.imsi_t, "msrn": tbcd(msrn)}
        rargs = [("imsi", "imsi"), ("msrn", "msrn")]
        if outcome == "ok":
            e.update(imsi=sub.imsi, peer=msrn)
            if v >= 3:
                rvals["vmsc"] = tbcd(sub.msc.gt)
                rargs.append(("vmsc", "vmsc"))
                e["node"] = sub.msc.gt
        end = (_b_end_result, (22, v, tuple(rargs)), rvals)
        msgs, exp = self._two(sub, 22, v, gmsc, hlr, called, calling, fields, tuple(args), end, e,
                              outcome=outcome)
        return msgs, self._ok(exp, outcome)

    def sri_sm(self, sub, outcome, served=False):
        """served: the HLR answers with the serving MSC, never an error."""
        v = 3 if self.rng.random() < 0.8 else 2
        smsc = self.rng.choice(self.nets[0].smscs)
        hlr = sub.hlr
        called, calling = (sub.msisdn, SSN_HLR), (smsc.gt, SSN_MSC)
        e = {"msisdn": sub.msisdn, "peer": smsc.gt}
        r = self.rng.random()
        err = 0 if served else 6 if r < 0.10 else 1 if r < 0.13 else 0
        if err and outcome == "ok":
            end = (_b_end_error, (45, v, err), {})
        else:
            nnn = sub.msc if self.rng.random() < 0.85 or served else sub.sgsn
            end = (_b_end_result, (45, v, (("imsi", "imsi"), ("nnn", "nnn"))),
                   {"imsi": sub.imsi_t, "nnn": tbcd(nnn.gt)})
            if outcome == "ok":
                e.update(imsi=sub.imsi, node=nnn.gt)
        msgs, exp = self._two(sub, 45, v, smsc, hlr, called, calling,
                              {"msisdn": sub.msisdn_t, "sc": tbcd(smsc.gt)}, (("msisdn", "msisdn"), ("sc", "sc")),
                              end, e, outcome=outcome)
        if outcome == "ok":
            if err:
                exp["flags"] = _flags("request", "response", "error", "correlated")   # returnError answers
                exp["cause"] = err
            else:
                exp["flags"] = _flags("request", "response", "correlated")
        return msgs, exp

    def mt_sms(self, sub, outcome, v2=False, oa=None):
        v = 2 if v2 else 3
        smsc = self.rng.choice(self.nets[0].smscs)
        msc = sub.msc
        called, calling = (msc.gt, SSN_MSC), (smsc.gt, SSN_MSC)
        oa = oa or self.rng.choice(self.subs).msisdn
        text = self.rng.randrange(len(_SMS_TEXTS))
        op = 46 if v2 else 44
        fields = {"imsi": sub.imsi_t, "sc": tbcd(smsc.gt), "tp_oa": sms_addr(oa)}
        end = (_b_end_result, (op, v, ()), {}) if not v2 else (_b_end_empty, (op, v, AC["shortMsgMT-Relay"]), {})
        msgs, exp = self._two(sub, op, v, smsc, msc, called, calling, fields, (("imsi", "imsi"), ("sc", "sc"),
                              ("tp_oa", ("ui_deliver", text))), end,
                              {"kind": "mt_sms", "imsi": sub.imsi, "peer": oa, "node": _ssn_node(called, calling)},
                              outcome=outcome)
        if v2:
            msgs[0].builder = _b_begin_fsm_v2
            msgs[0].disc = (text, AC["shortMsgMT-Relay"], "mt")
        return msgs, self._ok(exp, outcome)

    def mo_sms(self, sub, outcome, v2=False, da=None):
        v = 2 if v2 else 3
        smsc = self.rng.choice(sub.home.smscs)
        msc = sub.msc
        called, calling = (smsc.gt, SSN_MSC), (msc.gt, SSN_MSC)
        da = da or self.rng.choice(self.subs).msisdn
        text = self.rng.randrange(len(_SMS_TEXTS))
        fields = {"sc": tbcd(smsc.gt), "msisdn": sub.msisdn_t, "tp_da": sms_addr(da)}
        end = (_b_end_result, (46, v, ()), {}) if not v2 else (_b_end_empty, (46, v, AC["shortMsgMO-Relay"]), {})
        msgs, exp = self._two(sub, 46, v, msc, smsc, called, calling, fields,
                              (("sc", "sc"), ("msisdn", "msisdn"), ("tp_da", ("ui_submit", text))), end,
                              # the serving node of an MO SMS is the sending MSC, not the SMSC's (both SSN 8)
                              {"kind": "mo_sms", "msisdn": sub.msisdn, "peer": da, "node": msc.gt},
                              outcome=outcome)
        if v2:
            msgs[0].builder = _b_begin_fsm_v2
            msgs[0].disc = (text, AC["shortMsgMO-Relay"], "mo")
        return msgs, self._ok(exp, outcome)

    def check_imei(self, sub, outcome):
        r = self.rng.random()
        v = 3 if r < 0.6 else 2 if r < 0.9 else 1
        msc = sub.msc
        eir = sub.msc.net.eirs[0]
        called, calling = (eir.gt, SSN_EIR), (msc.gt, SSN_MSC)
        status = "whiteListed" if self.rng.random() < 0.95 else "greyListed"
        end = (_b_end_result, (43, v, ((None, ("status", status)),), v >= 2), {})
        msgs, exp = self._two(sub, 43, v, msc, eir, called, calling, {"imei": sub.imei_t}, (("imei", "imei"),),
                              end, {"imei": sub.imei, "node": _ssn_node(called, calling)}, outcome=outcome)
        return msgs, self._ok(exp, outcome)

    def ussd(self, sub, outcome, code=None):
        v = 2
        vlr, hlr = sub.vlr, sub.hlr
        called, calling = (hlr.gt, SSN_HLR), (vlr.gt, SSN_VLR)
        s = code or self.rng.choice(_USSD)
        end = (_b_end_result, (59, v, ((None, ("text", "Balance 12.34 CNY")),)), {})
        msgs, exp = self._two(sub, 59, v, vlr, hlr, called, calling, {"imsi": sub.imsi_t, "msisdn": sub.msisdn_t},
                              ((None, ("ussd", s)),), end,
                              {"imsi": sub.imsi, "msisdn": sub.msisdn, "peer": s, "node": _ssn_node(called, calling)},
                              dlg_refs=True, outcome=outcome)
        return msgs, self._ok(exp, outcome)

    def _location(self, sub, use_lai: bool, want_imei: bool):
        rvals, rargs, e = {}, [], {}
        rvals["vlr"] = tbcd(sub.vlr.gt)
        rargs.append(("vlr", "vlr"))
        e["node"] = sub.vlr.gt
        e["mcc"], e["mnc"], e["lac_tac"] = sub.mcc, sub.mnc, sub.lac
        if use_lai:
            rvals["lai"] = lai(sub.mcc, sub.mnc, sub.lac)
            rargs.append(("lai", "lai"))
            e["loc_type"], e["cell"] = "lai", 0
        else:
            rvals["cgi"] = cgi(sub.mcc, sub.mnc, sub.lac, sub.ci)
            rargs.append(("cgi", "cgi"))
            e["loc_type"], e["cell"] = "cgi", sub.ci
        if want_imei:
            rvals["imei"] = sub.imei_t
            rargs.append(("imei", "imei"))
            e["imei"] = sub.imei
        return rvals, tuple(rargs), e

    def psi(self, sub, outcome, want_imei=None):
        hlr, vlr = sub.hlr, sub.vlr
        called, calling = (vlr.gt, SSN_VLR), (hlr.gt, SSN_HLR)
        if want_imei is None:
            want_imei = self.rng.random() < 0.5
        rvals, rargs, le = self._location(sub, False, want_imei)
        end = (_b_end_result, (70, 3, rargs), rvals)
        e = {"imsi": sub.imsi}
        e.update(le)
        msgs, exp = self._two(sub, 70, 3, hlr, vlr, called, calling, {"imsi": sub.imsi_t},
                              (("imsi", "imsi"), (None, ("want_imei", want_imei))), end, e, outcome=outcome)
        return msgs, self._ok(exp, outcome)

    def ati(self, sub, outcome):
        scf = self.rng.choice(sub.home.scfs)
        hlr = sub.hlr
        called, calling = (hlr.gt, SSN_HLR), (scf.gt, SSN_SCF)
        want_imei = self.rng.random() < 0.4
        by_imsi = self.rng.random() < 0.3
        rvals, rargs, le = self._location(sub, self.rng.random() < 0.3, want_imei)
        end = (_b_end_result, (71, 3, rargs), rvals)
        if by_imsi:
            fields, args, e = {"imsi": sub.imsi_t}, [("imsi", "imsi")], {"imsi": sub.imsi}
        else:
            fields, args, e = {"msisdn": sub.msisdn_t}, [("msisdn", "msisdn")], {"msisdn": sub.msisdn}
        fields["scf"] = tbcd(scf.gt)
        args.append(("scf", "scf"))
        args.append((None, ("want_imei", want_imei)))
        e.update(le)
        msgs, exp = self._two(sub, 71, 3, scf, hlr, called, calling, fields, tuple(args), end, e, outcome=outcome)
        return msgs, self._ok(exp, outcome)


def _b_end_empty(f, op, v, acx):
    """End with a returnResultLast that has no parameter (v2 operations without result)."""
    return encode_end(f["dtid"], [result(op, None)], ac=(acx, v))


def _b_begin_fsm_v2(f, text, acx, direction):
    """forwardSM (op 46) in MAP v2: shortMsgMT-Relay (sm-RP-DA imsi) or MO-Relay."""
    if direction == "mt":
        arg = map_arg(46, 2, imsi=f["imsi"], sc=f["sc"], ui=sms_deliver(f["tp_oa"], _SMS_TEXTS[text]))
    else:
        arg = map_arg(46, 2, msisdn=f["msisdn"], sc=f["sc"], ui=sms_submit(f["tp_da"], _SMS_TEXTS[text]))
    return encode_begin(46, arg, ac=(acx, 2), otid=f["otid"])


def _resolve_args(f, args):
    """Turn (field, kw) pairs into map_arg keywords; the sm-RP-UI pseudo-field builds a TPDU."""
    kw = {}
    for name, k in args:
        if name is None:
            kw[k[0]] = k[1]
        elif isinstance(k, tuple) and k[0] == "ui_deliver":
            kw["ui"] = sms_deliver(f[name], _SMS_TEXTS[k[1]])
        elif isinstance(k, tuple) and k[0] == "ui_submit":
            kw["ui"] = sms_submit(f[name], _SMS_TEXTS[k[1]])
        else:
            kw[k] = f[name]
    return kw


def _b_begin(f, op, v, args, dlg_refs=False):
    """Begin with one invoke. args: (field name, map_arg keyword) pairs, or
    (None, (keyword, constant)); dlg_refs puts imsi / msisdn into the MAP-OpenInfo."""
    kw = _resolve_args(f, args)
    dest = orig = None
    if dlg_refs:
        dest = addr(f["imsi"], 0x96) if "imsi" in f else None
        orig = addr(f["msisdn"]) if "msisdn" in f else None
    ac = (_OP_AC[op][0], v) if v >= 2 else None
    return encode_begin(op, map_arg(op, v, **kw), ac=ac, dest_ref=dest, orig_ref=orig, otid=f["otid"])


def _b_end_result(f, op, v, args, with_aare=True):
    """End with the AARE (v2+) and a returnResultLast built like _b_begin's invoke."""
    kw = _resolve_args(f, args)
    ac = (_OP_AC[op][0], v) if (with_aare and v >= 2) else None
    return encode_end(f["dtid"], [result(op, map_res(op, v, **kw))], ac=ac)


_TEMPLATES = _Templates()

# Scenario weights (per dialogue started): MAP only
MAP_MIX = {
    "sai": 18, "ul": 11, "sri_sm": 14, "mt_sms": 12, "mo_sms": 10, "sri": 8, "check_imei": 5,
    "ugl": 4, "psi": 3, "ati": 3, "isd": 3, "cancel_location": 3, "purge_ms": 3, "ussd": 3,
    "fsm_v2_mt": 2, "fsm_v2_mo": 1, "register_ss": 1, "activate_ss": 1, "deactivate_ss": 1,
    "erase_ss": 1,
}
_MAP_SCENARIOS = frozenset(MAP_MIX)
# MAP, CAP, ISUP and SMS flows and GTP sessions (per dialogue or flow started): about 60 % of
# the packets SS7, 40 % GTP-C and GTP-U
DEFAULT_MIX = dict(MAP_MIX, cap_call=10, isup_call=10, mt_sms_concat=3, mms_notification=3,
                   gtpv2_session=5.7, gtpv2_reject=0.7, gtpv1_pdp=3.3)
# The mixed golden: every flow kind often enough to show up in 400 packets
MIXED_SMALL_MIX = dict({k: v / 3 for k, v in MAP_MIX.items()}, cap_call=4, isup_call=4, mt_sms_concat=2,
                       mms_notification=2, gtpv2_session=3, gtpv2_reject=1, gtpv1_pdp=2)
SS_MIX = {"register_ss": 6, "activate_ss": 3, "deactivate_ss": 3, "erase_ss": 3, "ussd": 6,
          "psi": 4, "ati": 5, "ul": 1, "sai": 1}
# Scenarios that may get an Abort or no answer (their record fields do not depend on the answer).
_MAY_FAIL = frozenset(("sai", "ul", "ugl", "mt_sms", "mo_sms", "check_imei", "purge_ms"))


def _scenario(gen: _Gen, name: str, sub, outcome):
    if name == "sai": return gen.sai(sub, outcome)
    if name == "ul": return gen.ul(sub, outcome)
    if name == "sri_sm": return gen.sri_sm(sub, outcome)
    if name == "mt_sms": return gen.mt_sms(sub, outcome)
    if name == "mo_sms": return gen.mo_sms(sub, outcome)
    if name == "sri": return gen.sri(sub, outcome)
    if name == "check_imei": return gen.check_imei(sub, outcome)
    if name == "ugl": return gen.ugl(sub, outcome)
    if name == "psi": return gen.psi(sub, outcome)
    if name == "ati": return gen.ati(sub, outcome)
    if name == "isd": return gen.isd(sub, outcome)
    if name == "cancel_location": return gen.cancel_location(sub, outcome)
    if name == "purge_ms": return gen.purge_ms(sub, outcome)
    if name == "ussd": return gen.ussd(sub, outcome)
    if name == "fsm_v2_mt": return gen.mt_sms(sub, outcome, v2=True)
    if name == "fsm_v2_mo": return gen.mo_sms(sub, outcome, v2=True)
    if name == "register_ss": return gen.ss(sub, outcome, 10)
    if name == "activate_ss": return gen.ss(sub, outcome, 12)
    if name == "deactivate_ss": return gen.ss(sub, outcome, 13)
    if name == "erase_ss": return gen.ss(sub, outcome, 11)
    raise ValueError(f"unknown scenario {name!r}")


_ORDER = ("frame", "kind", "proto", "flags", "op", "cause", "imsi", "msisdn", "imei", "peer", "node",
          "mcc", "mnc", "lac_tac", "cell", "loc_type", "ss_code", "version", "tid")


def _finish_expect(exp: dict, frame: int) -> dict:
    exp["frame"] = frame
    exp["proto"] = "map"
    exp = {k: v for k, v in exp.items() if v is not None}
    return {k: exp[k] for k in _ORDER if k in exp}


# ---------------------------------------------------------------------------
# Mixed traffic: GTPv2-C, GTPv1-C, GTP-U, CAP, ISUP, multi-part SMS, MMS
# ---------------------------------------------------------------------------
#
# Every message is encoded by pycrate once per shape (TS29274_GTPC, TS29060_GTP, ISUP,
# TS23040_SMS, TCAP_CAP), then patched per packet like the MAP templates. A *flow*
# (a GTP session, a call, a CAMEL dialogue, a multi-part SMS) is a list of steps
# made up front; each step may carry the record it completes (`exp`), the tunnels it
# announces (`learn`) or, for a G-PDU, the tunnel it counts on (`tun`).

GTPC_PORT, GTPU_PORT = 2123, 2152
USAGE_INTERVAL_NS = 60_000_000_000        # the decoder's default --usage-interval


def _raw_spec():
    return (lambda v: v, lambda n, r: bytes(r.randrange(256) for _ in range(n)))


def _ascii_spec(alphabet: str):
    return (lambda v: v, lambda n, r: "".join(r.choice(alphabet) for _ in range(n)).encode())


def _rand_plmn(r: random.Random) -> bytes:
    return plmn("".join(r.choice("0123456789") for _ in range(3)),
                "".join(r.choice("0123456789") for _ in range(r.choice((2, 3)))))


def _isup_digits(digits: str) -> bytes:
    """ISUP address signals (Q.763 3.9): BCD, first digit in the low nibble, filler 0."""
    n = [int(c) for c in digits]
    if len(n) & 1:
        n.append(0)
    return bytes(n[i] | (n[i + 1] << 4) for i in range(0, len(n), 2))


def _imsi8(digits: str) -> bytes:
    """GTPv1 IMSI TV value: always 8 octets, 0xF filler (TS 29.060 7.7.2)."""
    return (tbcd(digits) + b"\xff" * 8)[:8]


def _uli_tai_ecgi(mcc: str, mnc: str, tac: int, eci: int) -> bytes:
    """GTPv2 ULI value (TS 29.274 8.21) with a TAI and an ECGI."""
    p = plmn(mcc, mnc)
    return b"\x18" + p + struct.pack(">H", tac) + p + struct.pack(">I", eci & 0x0FFFFFFF)


def _uli_cgi(mcc: str, mnc: str, lac: int, ci: int) -> bytes:
    """GTPv1 ULI value (TS 29.060 7.7.51), geographic location type 0 (CGI)."""
    return b"\x00" + cgi(mcc, mnc, lac, ci)


def _rai(mcc: str, mnc: str, lac: int, rac: int) -> bytes:
    return plmn(mcc, mnc) + struct.pack(">HB", lac, rac)


for _n in ("seq3", "seq2", "teid_mme", "teid_sgw", "teid_pgw", "teid_sgwu", "teid_pgwu", "teid_enb",
           "teid_sgsnc", "teid_sgsnu", "teid_ggsnc", "teid_ggsnu", "ip_mme", "ip_sgw", "ip_pgw", "ip_sgwu",
           "ip_pgwu", "ip_enb", "ip_sgsnc", "ip_sgsnu", "ip_ggsnc", "ip_ggsnu", "ue_ip", "charging_id", "cic",
           "cref", "mms_size"):
    _FIELD_SPECS[_n] = _raw_spec()
_FIELD_SPECS["mms_txn"] = _ascii_spec("abcdefghijklmnopqrstuvwxyz0123456789")
_FIELD_SPECS["mms_loc"] = _ascii_spec("abcdefghijklmnopqrstuvwxyz0123456789")
_FIELD_SPECS["mms_from"] = (lambda v: v.encode(), lambda n, r: "".join(r.choice("0123456789") for _ in range(n)))
_FIELD_SPECS["imsi8"] = (_imsi8, lambda n, r: "".join(r.choice("0123456789") for _ in range(15)))
_FIELD_SPECS["called_isup"] = (_isup_digits, lambda n, r: "".join(r.choice("0123456789") for _ in range(2 * n)))
_FIELD_SPECS["calling_isup"] = _FIELD_SPECS["called_isup"]
_FIELD_SPECS["uli2"] = (lambda v: v, lambda n, r: (b"\x18" + _rand_plmn(r) + bytes(r.randrange(256) for _ in range(2))
                                                   + _rand_plmn(r) + bytes([r.randrange(16)])
                                                   + bytes(r.randrange(256) for _ in range(3))))
_FIELD_SPECS["uli1"] = (lambda v: v, lambda n, r: b"\x00" + _rand_plmn(r) + bytes(r.randrange(256) for _ in range(4)))
_FIELD_SPECS["sn"] = (lambda v: v, lambda n, r: _rand_plmn(r))
_FIELD_SPECS["rai"] = (lambda v: v, lambda n, r: _rand_plmn(r) + bytes(r.randrange(256) for _ in range(3)))


def _bcd_text(hexbytes: str) -> str:
    """The digits of a TON/NPI octet + TBCD digits, given as "81:11:f4" (tshark's bytes)."""
    b = bytes.fromhex(hexbytes.replace(":", ""))[1:]
    out = []
    for x in b:
        for d in (x & 0xF, x >> 4):
            if d == 0xF:
                return "".join(out)
            out.append("0123456789*#abc"[d])
    return "".join(out)


def _plmn_text(p: bytes) -> str:
    """The MCC+MNC digits of 3 PLMN octets, as pycrate's PLMN fields take them."""
    d = [p[0] & 0xF, p[0] >> 4, p[1] & 0xF, p[2] & 0xF, p[2] >> 4]
    if p[1] >> 4 != 0xF:
        d.append(p[1] >> 4)
    return "".join(map(str, d))


# --- GTPv2-C (TS 29.274) with pycrate_mobile.TS29274_GTPC -------------------

_PYCRATE_MOD = {}


def _mod(name: str):
    m = _PYCRATE_MOD.get(name)
    if m is None:
        import importlib
        m = _PYCRATE_MOD[name] = importlib.import_module(name)
    return m


class IEGroup(list):
    """The member IEs of a grouped GTPv2 IE: [(type, instance, value)]."""


def encode_gtpv2(msg: str, seq: int, teid, ies) -> bytes:
    """A GTPv2-C message encoded by pycrate: msg is the pycrate class name
    (CreateSessionReq, ...), ies [(type, instance, value)] with an IEGroup for a
    grouped IE; teid None leaves the TEID out (T = 0). pycrate must parse it back."""
    g2 = _mod("pycrate_mobile.TS29274_GTPC")
    m = getattr(g2, msg)()
    hdr = m[0]
    hdr["SeqNum"].set_val(seq)
    if teid is None:
        hdr["T"].set_val(0)
    else:
        hdr["TEID"].set_val(teid)
    body = m[1]
    body.clear()
    for t, inst, val in ies:
        if isinstance(val, IEGroup):
            body.add_ie(t, inst)
            grp = body[-1][1]
            grp.clear()
            for t2, i2, v2 in val:
                grp.add_ie(t2, i2, v2)
        else:
            body.add_ie(t, inst, val)
    out = m.to_bytes()
    back, err = g2.parse_GTPC(out)
    if err or back.to_bytes() != out:
        raise ValueError(f"pycrate does not read back its own {msg} (error {err})")
    return out


def _apn_ie(name: str):
    a = _mod("pycrate_mobile.TS24008_IE").APN()
    a.encode(name)
    return a.get_val()


def _fteid(iface: int, teid: bytes, ip: bytes) -> dict:
    return {"V4": 1, "V6": 0, "IF": iface, "TEID_GREKey": int.from_bytes(teid, "big"), "IPv4Addr": ip}


def _uli2_val(b: bytes) -> dict:
    return {"Flags": {"TAI": 1, "ECGI": 1},
            "TAI": {"PLMN": _plmn_text(b[1:4]), "TAC": int.from_bytes(b[4:6], "big")},
            "ECGI": {"PLMN": _plmn_text(b[6:9]), "ECI": int.from_bytes(b[9:13], "big")}}


_QOS = {"PCI": 0, "PL": 9, "PVI": 0, "QCI": 9, "MaxBitRateUL": 0, "MaxBitRateDL": 0,
        "GuaranteedBitRateUL": 0, "GuaranteedBitRateDL": 0}


def _b_g2_csr(f, apn, rat):
    """Create Session Request, MME -> SGW on S11 (initial attach: header TEID 0)."""
    return encode_gtpv2("CreateSessionReq", int.from_bytes(f["seq3"], "big"), 0, [
        (1, 0, f["imsi"]), (76, 0, f["msisdn"]), (75, 0, f["mei"]), (86, 0, _uli2_val(f["uli2"])),
        (83, 0, {"PLMN": _plmn_text(f["sn"])}), (82, 0, {"Val": rat}),
        (87, 0, _fteid(10, f["teid_mme"], f["ip_mme"])), (87, 1, _fteid(7, b"\0\0\0\0", f["ip_pgw"])),
        (71, 0, _apn_ie(apn)), (128, 0, {"Val": 0}), (99, 0, {"Val": 1}),
        (79, 0, {"PDNType": 1, "PDNAddress": b"\0\0\0\0"}), (127, 0, {"Val": 0}),
        (72, 0, {"APN-AMBR-UL": 50000, "APN-AMBR-DL": 150000}),
        (93, 0, IEGroup([(73, 0, {"Val": 5}), (80, 0, _QOS)]))])


def _b_g2_csresp(f):
    """Create Session Response, accepted: the SGW's S11 and the PGW's S5/S8 control
    F-TEIDs, the UE address, and the S1-U SGW / S5/S8-U PGW F-TEIDs of the bearer."""
    return encode_gtpv2("CreateSessionResp", int.from_bytes(f["seq3"], "big"), int.from_bytes(f["teid_mme"], "big"), [
        (2, 0, {"Val": 16}), (87, 0, _fteid(11, f["teid_sgw"], f["ip_sgw"])),
        (87, 1, _fteid(7, f["teid_pgw"], f["ip_pgw"])), (79, 0, {"PDNType": 1, "PDNAddress": f["ue_ip"]}),
        (127, 0, {"Val": 1}), (72, 0, {"APN-AMBR-UL": 50000, "APN-AMBR-DL": 150000}),
        (93, 0, IEGroup([(73, 0, {"Val": 5}), (2, 0, {"Val": 16}), (87, 0, _fteid(1, f["teid_sgwu"], f["ip_sgwu"])),
                        (87, 2, _fteid(5, f["teid_pgwu"], f["ip_pgwu"])), (80, 0, _QOS),
                        (94, 0, {"Val": int.from_bytes(f["charging_id"], "big")})]))])


def _b_g2_csresp_reject(f, cause):
    return encode_gtpv2("CreateSessionResp", int.from_bytes(f["seq3"], "big"), int.from_bytes(f["teid_mme"], "big"),
                        [(2, 0, {"Val": cause}), (93, 0, IEGroup([(73, 0, {"Val": 5}), (2, 0, {"Val": cause})]))])


def _b_g2_mbr(f, rat):
    """Modify Bearer Request on the SGW's S11 TEID: the new cell and the eNodeB's S1-U F-TEID."""
    return encode_gtpv2("ModifyBearerReq", int.from_bytes(f["seq3"], "big"), int.from_bytes(f["teid_sgw"], "big"), [
        (86, 0, _uli2_val(f["uli2"])), (82, 0, {"Val": rat}),
        (93, 0, IEGroup([(73, 0, {"Val": 5}), (87, 0, _fteid(0, f["teid_enb"], f["ip_enb"]))]))])


def _b_g2_mbresp(f):
    return encode_gtpv2("ModifyBearerResp", int.from_bytes(f["seq3"], "big"), int.from_bytes(f["teid_mme"], "big"), [
        (2, 0, {"Val": 16}), (93, 0, IEGroup([(73, 0, {"Val": 5}), (2, 0, {"Val": 16})]))])


def _b_g2_dsr(f):
    return encode_gtpv2("DeleteSessionReq", int.from_bytes(f["seq3"], "big"), int.from_bytes(f["teid_sgw"], "big"), [
        (73, 0, {"Val": 5})])


def _b_g2_dsresp(f):
    return encode_gtpv2("DeleteSessionResp", int.from_bytes(f["seq3"], "big"), int.from_bytes(f["teid_mme"], "big"),
                        [(2, 0, {"Val": 16})])


# --- GTPv1-C (TS 29.060) with pycrate_mobile.TS29060_GTP --------------------

def encode_gtpv1(msg: str, seq: int, teid: int, ies) -> bytes:
    """A GTPv1-C message (S flag, sequence number) encoded by pycrate: ies [(IE name,
    value)], raw bytes as they are; pycrate puts them in TS 29.060 order."""
    g1 = _mod("pycrate_mobile.TS29060_GTP")
    m = getattr(g1, msg)()
    m[0]["S"].set_val(1)
    m[0]["GTPHdrOpt"]["SeqNum"].set_val(seq)
    m[0]["TEID"].set_val(teid)
    body = m[1]
    for name, val in ies:
        body.add_ie(name)
        if isinstance(val, bytes):
            body[name].set_val({"Data": val})
        elif name == "APN":
            body[name]["Data"].encode(val)
        elif val is not None:
            body[name]["Data"].set_val(val)
    out = m.to_bytes()
    back, err = g1.parse_GTP(out)
    if err or back.to_bytes() != out:
        raise ValueError(f"pycrate does not read back its own {msg} (error {err})")
    return out


def _v1_cause(c: int) -> dict:
    """Cause (TS 29.060 7.7.1): response bit, rejection bit, value."""
    return {"Resp": c >> 7, "Rej": (c >> 6) & 1, "Val": c & 0x3F}


def _b_g1_cpdp(f, apn, rat):
    """Create PDP Context Request, SGSN -> GGSN (header TEID 0)."""
    return encode_gtpv1("CreatePDPCtxtReq", int.from_bytes(f["seq2"], "big"), 0, [
        ("IMSI", _imsi8(f["imsi8"])), ("RAI", f["rai"]), ("SelectionMode", {"Val": 0}),
        ("TEIDDataI", int.from_bytes(f["teid_sgsnu"], "big")), ("TEIDCP", int.from_bytes(f["teid_sgsnc"], "big")),
        ("NSAPI", {"Val": 5}), ("EndUserAddr", {"TypeOrg": 1, "Type": 0x21, "Addr": b""}), ("APN", apn),
        ("SGSNAddrForSignalling", f["ip_sgsnc"]), ("SGSNAddrForUserTraffic", f["ip_sgsnu"]),
        ("MSISDN", b"\x91" + tbcd(f["msisdn"])), ("QoSProfile", None), ("RATType", rat), ("ULI", f["uli1"]),
        ("IMEI", tbcd(f["imeisv"]))])


def _b_g1_cpdp_resp(f):
    return encode_gtpv1("CreatePDPCtxtResp", int.from_bytes(f["seq2"], "big"), int.from_bytes(f["teid_sgsnc"], "big"), [
        ("Cause", _v1_cause(128)), ("ReorderingRequired", {"Val": 0}),
        ("TEIDDataI", int.from_bytes(f["teid_ggsnu"], "big")),
        ("TEIDCP", int.from_bytes(f["teid_ggsnc"], "big")), ("ChargingID", f["charging_id"]),
        ("EndUserAddr", {"TypeOrg": 1, "Type": 0x21, "Addr": f["ue_ip"]}),
        ("GGSNAddrForControlPlane", f["ip_ggsnc"]), ("GGSNAddrForUserTraffic", f["ip_ggsnu"]),
        ("QoSProfile", None)])


def _b_g1_cpdp_reject(f, cause):
    return encode_gtpv1("CreatePDPCtxtResp", int.from_bytes(f["seq2"], "big"), int.from_bytes(f["teid_sgsnc"], "big"),
                        [("Cause", _v1_cause(cause))])


def _b_g1_dpdp(f):
    return encode_gtpv1("DeletePDPCtxtReq", int.from_bytes(f["seq2"], "big"), int.from_bytes(f["teid_ggsnc"], "big"),
                        [("TeardownInd", {"Val": 1}), ("NSAPI", {"Val": 5})])


def _b_g1_dpdp_resp(f):
    return encode_gtpv1("DeletePDPCtxtResp", int.from_bytes(f["seq2"], "big"), int.from_bytes(f["teid_sgsnc"], "big"),
                        [("Cause", _v1_cause(128))])


def gtpu_header() -> bytes:
    """The G-PDU header (TS 29.281 5.1) as pycrate encodes it, TEID and length zero:
    every G-PDU is this with its length and TEID filled in."""
    h = _mod("pycrate_mobile.TS29281_GTPU").GTPUHdr()
    h["Type"].set_val(255)
    return h.to_bytes()


# --- ISUP (Q.763) with pycrate_mobile.ISUP ----------------------------------

def _isup_msg(cls: str):
    return getattr(_mod("pycrate_mobile.ISUP"), cls)()


def _b_iam(f, n_called, nai_called, n_calling):
    m = _isup_msg("InitialAddress")
    m["CIC"].set_val(int.from_bytes(f["cic"], "little"))
    m["NatureConnectionInd"].set_val({"EchoControlDeviceInd": 1})
    m["ForwardCallInd"].set_val({"ISDNUserPartInd": 1, "ISDNAccessInd": 1})
    m["CallingPartyCat"].set_val(10)
    m["CalledPartyNum"]["CalledPartyNum"].set_val({"OE": n_called & 1, "NAI": nai_called, "INN": 0, "NumPlan": 1,
                                                   "Num": f["called_isup"]})
    opt = m["Opt"]
    o = opt._opts[10]                                   # calling party number
    o.set_trans(False)
    o[2].set_val({"OE": n_calling & 1, "NAI": 4, "NI": 0, "NumPlan": 1, "AddrPresInd": 0, "ScreeningInd": 3,
                  "Num": f["calling_isup"]})
    opt._opts[0].set_trans(False)                       # end of optional parameters
    return _isup_check(m)


def _isup_check(m) -> bytes:
    out = m.to_bytes()
    back = type(m)()
    back.from_bytes(out)
    if back.to_bytes() != out:
        raise ValueError(f"pycrate does not read back its own {type(m).__name__}")
    return out


def _b_acm(f):
    m = _isup_msg("AddressComplete")
    m["CIC"].set_val(int.from_bytes(f["cic"], "little"))
    m["BackwardCallInd"].set_val({"ChargeInd": 2, "CalledPartyStatusInd": 1, "CalledPartyCatInd": 1,
                                  "ISDNUserPartInd": 1, "ISDNAccessInd": 1})
    return _isup_check(m)


def _b_anm(f):
    m = _isup_msg("Answer")
    m["CIC"].set_val(int.from_bytes(f["cic"], "little"))
    return _isup_check(m)


def _b_rel(f, cause):
    m = _isup_msg("Release")
    m["CIC"].set_val(int.from_bytes(f["cic"], "little"))
    # ext, coding standard ITU-T, spare, location (user / public network serving the remote user), ext, cause
    m["CauseInd"]["CauseInd"].set_val([1, 0, 0, 0 if cause == 16 else 4, 1, cause >> 4, cause & 0xF, b""])
    return _isup_check(m)


def _b_rlc(f):
    m = _isup_msg("ReleaseComplete")
    m["CIC"].set_val(int.from_bytes(f["cic"], "little"))
    return _isup_check(m)


# --- CAP (TS 29.078) over TCAP with pycrate_asn1dir.TCAP_CAP -----------------

CAP_V2_AC = (0, 4, 0, 0, 1, 0, 50, 1)
_CAP_OPS = "CAP-gsmSSF-gsmSCF-ops-args"
SSN_CAP = 146


def encode_cap(msg: str, *, otid: bytes | None = None, dtid: bytes | None = None, dialogue: dict | None = None,
               components=()) -> bytes:
    """One TCAP message carrying CAP, encoded by pycrate (TCAP_CAP)."""
    v = {}
    if otid is not None:
        v["otid"] = otid
    if dtid is not None:
        v["dtid"] = dtid
    if dialogue is not None:
        v["dialoguePortion"] = dialogue
    if components:
        v["components"] = list(components)
    t = _mod("pycrate_asn1dir.TCAP_CAP").TCAP_CAP_Messages.TCAP_CAP_Message
    t.set_val((msg, v))
    return t.to_ber()


def _cap_aarq() -> dict:
    return {"direct-reference": DIALOGUE_AS, "encoding": ("single-ASN1-type", ("DialoguePDU", ("dialogueRequest", {
        "protocol-version": (1, 1), "application-context-name": CAP_V2_AC})))}


def _cap_aare() -> dict:
    return {"direct-reference": DIALOGUE_AS, "encoding": ("single-ASN1-type", ("DialoguePDU", ("dialogueResponse", {
        "protocol-version": (1, 1), "application-context-name": CAP_V2_AC,
        "result": 0, "result-source-diagnostic": ("dialogue-service-user", 0)})))}


def _isup_number(digits: str, nai: int, ndigits: int, calling: bool = False) -> bytes:
    """ISUP-format number (Q.763 3.9 / 3.10): odd/even + NAI, INN/NI + plan E.164 (+ screening), digits."""
    return bytes([((ndigits & 1) << 7) | nai, 0x13 if calling else 0x10]) + _isup_digits(digits)


_TIME_AND_TZ = bytes.fromhex("0232111420203023")      # 2023-11-14 02:02:03, +08:00 (TS 29.078)


def _b_cap_idp(f, variant, service_key, n_called, nai_called, n_calling, ton_bcd):
    """Begin (AARQ CAP v2) with InitialDP, gsmSSF (MSC) -> gsmSCF. variant: "bcd" (DP2
    collectedInfo, calledPartyBCDNumber), "isup" (DP3 analyzedInformation,
    calledPartyNumber) or "term" (DP12 termAttemptAuthorized at the GMSC)."""
    arg = {"serviceKey": service_key}
    if variant != "bcd":
        arg["calledPartyNumber"] = _isup_number(f["called_isup"], nai_called, n_called)
    arg["callingPartyNumber"] = _isup_number(f["calling_isup"], 4, n_calling, calling=True)
    arg["callingPartysCategory"] = b"\x0a"
    arg["eventTypeBCSM"] = {"bcd": "collectedInfo", "isup": "analyzedInformation",
                            "term": "termAttemptAuthorized"}[variant]
    arg["iMSI"] = tbcd(f["imsi"])
    if variant != "term":
        arg["locationInformation"] = {
            "ageOfLocationInformation": 0, "vlr-number": addr(f["vlr"]),
            "cellGlobalIdOrServiceAreaIdOrLAI": ("cellGlobalIdOrServiceAreaIdFixedLength", f["cgi"])}
    arg["ext-basicServiceCode"] = ("ext-Teleservice", b"\x11")
    arg["callReferenceNumber"] = f["cref"]
    arg["mscAddress"] = addr(f["msc"])
    if variant == "bcd":
        arg["calledPartyBCDNumber"] = bytes([ton_bcd]) + tbcd(f["cbcd"])
    arg["timeAndTimezone"] = _TIME_AND_TZ
    return encode_cap("begin", otid=f["otid"], dialogue=_cap_aarq(), components=[
        ("basicROS", ("invoke", {"invokeId": ("present", 1), "opcode": ("local", 0),
                                 "argument": ((_CAP_OPS, "InitialDPArg"), arg)}))])


def _b_cap_rrbe(f, term):
    """gsmSCF -> gsmSSF Continue (AARE): requestReportBCSMEvent (answer, disconnect) and continue."""
    a, d = ("tAnswer", "tDisconnect") if term else ("oAnswer", "oDisconnect")
    rr = {"bcsmEvents": [{"eventTypeBCSM": a, "monitorMode": "notifyAndContinue", "legID": ("sendingSideID", b"\x02")},
                         {"eventTypeBCSM": d, "monitorMode": "notifyAndContinue", "legID": ("sendingSideID", b"\x01")},
                         {"eventTypeBCSM": d, "monitorMode": "notifyAndContinue", "legID": ("sendingSideID", b"\x02")}]}
    return encode_cap("continue", otid=f["otid"], dtid=f["dtid"], dialogue=_cap_aare(), components=[
        ("basicROS", ("invoke", {"invokeId": ("present", 1), "opcode": ("local", 23),
                                 "argument": ((_CAP_OPS, "RequestReportBCSMEventArg"), rr)})),
        ("basicROS", ("invoke", {"invokeId": ("present", 2), "opcode": ("local", 31)}))])


def _b_cap_erb_end(f, term):
    """gsmSSF -> gsmSCF End: eventReportBCSM (disconnect, notification)."""
    erb = {"eventTypeBCSM": "tDisconnect" if term else "oDisconnect",
           "legID": ("receivingSideID", b"\x01"), "miscCallInfo": {"messageType": "notification"}}
    return encode_cap("end", dtid=f["dtid"], components=[
        ("basicROS", ("invoke", {"invokeId": ("present", 3), "opcode": ("local", 24),
                                 "argument": ((_CAP_OPS, "EventReportBCSMArg"), erb)}))])


# --- SMS TPDUs (TS 23.040) with pycrate_mobile.TS23040_SMS -------------------

_SCTS_TIME = (2023, 11, 14, 2, 2, 3, 1, 318, 0)


def sms_deliver_udh(oa: str, ud, *, dcs: int, udh: list, toa: int = 0x91, more: bool = False) -> bytes:
    """SMS-DELIVER with a user data header, encoded by pycrate: udh [(IEI, value dict)],
    ud text (GSM 7-bit or UCS2 by dcs) or octets (8-bit data)."""
    import time as _time
    s = _mod("pycrate_mobile.TS23040_SMS")
    m = s.SMS_DELIVER()
    m.set_val({"TP_UDHI": 1, "TP_MMS": 0 if more else 1,
               "TP_OA": {"Type": (toa >> 4) & 7, "NumberingPlan": toa & 0xF, "Num": oa},
               "TP_DCS": {"Group": 0, "Charset": {0x00: 0, 0x04: 1, 0x08: 2}[dcs]}})
    m["TP_SCTS"].encode(_time.struct_time(_SCTS_TIME), 8.0)
    m["TP_UD"]["UDH"]["UDH"].set_val([{"T": t, "V": v} for t, v in udh])
    m["TP_UD"]["UD"].set_val(ud)
    out = m.to_bytes()
    back = s.SMS_DELIVER()
    back.from_bytes(out)
    if back.to_bytes() != out:
        raise ValueError("pycrate does not read back its own SMS-DELIVER")
    return out


_FIELD_SPECS["udh_cc"] = (lambda v: v, lambda n, r: b"\x00\x03" + bytes(r.randrange(256) for _ in range(3)))

# Long texts, split in parts by the sender: (coding, parts)
_LONG_SMS = (
    (0x08, ("您好！您本月的套餐使用情况如下：语音剩余120分钟，", "流量剩余2.5GB，短信剩余80条。",
            "感谢您的使用，详询10086。")),
    (0x00, ("Your parcel 4471-22 is out for delivery today between 10:00 and 14:00. ",
            "If nobody is home the courier will leave it at the nearest pick-up point. ",
            "Reply STOP to opt out.")),
    (0x08, ("【航班提醒】您预订的CA1501航班将于明日08:30起飞，",
            "请提前90分钟到达机场办理值机手续。")),
    (0x00, ("Reminder: your appointment with Dr. Chen is on Tuesday at 15:30, room 204. ",
            "Please bring your insurance card and arrive 10 minutes early. ",
            "Call 4008-123-123 to reschedule. ", "Thank you.")),
)


def _b_begin_mt_part(f, text, part):
    """mt-forwardSM v3 Begin whose SMS-DELIVER is one part of a concatenated message."""
    dcs, parts = _LONG_SMS[text]
    u = f["udh_cc"]
    tpdu = sms_deliver_udh(f["tp_oa"], parts[part], dcs=dcs, more=part + 1 < len(parts),
                           udh=[(0, {"MsgRef": u[2], "MsgParts": u[3], "MsgNum": u[4]})])
    return encode_begin(44, map_arg(44, 3, imsi=f["imsi"], sc=f["sc"], ui=tpdu), ac=(AC["shortMsgMT-Relay"], 3),
                        otid=f["otid"])


_MMS_SUBJECTS = ("Photo", "Happy New Year", "Holiday pictures", "Video message", "Bill 2023-11")
MMS_PORT, WSP_PORT = 2948, 9200


def _uintvar(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def mms_notification_pdu(txn: bytes, sender: bytes, subject: str, size: bytes, location: bytes,
                         wsp_tid: int = 1) -> bytes:
    """WSP Push (WAP-230 8.2.4.1) of an MMS m-notification-ind (OMA MMS encapsulation
    7.2.10): transaction id, version 1.2, From "+<digits>/TYPE=PLMN", Subject, class
    personal, Message-Size (long integer), expiry, Content-Location."""
    sender_v = b"\x80+" + sender + b"/TYPE=PLMN\x00"
    mms = (b"\x8c\x82" + b"\x98" + txn + b"\x00" + b"\x8d\x92" + b"\x89" + bytes([len(sender_v)]) + sender_v
           + b"\x96" + subject.encode() + b"\x00" + b"\x8a\x80" + b"\x8e" + bytes([len(size)]) + size
           + b"\x88\x05\x81\x03\x09\x3a\x80" + b"\x83" + b"http://mmsc.monternet.com/" + location + b"\x00")
    headers = b"\xbe" + b"\xaf\x84"          # application/vnd.wap.mms-message; X-Wap-Application-Id mms.ua
    return bytes([wsp_tid, 0x06]) + _uintvar(len(headers)) + headers + mms


def _b_begin_mms(f, subject, wsp_tid):
    """mt-forwardSM v3 Begin: SMS-DELIVER, 8-bit data, ports 2948 <- 9200, the WAP push."""
    pdu = mms_notification_pdu(f["mms_txn"], f["mms_from"].encode(), _MMS_SUBJECTS[subject], f["mms_size"],
                               f["mms_loc"], wsp_tid)
    tpdu = sms_deliver_udh(f["tp_oa"], pdu, dcs=0x04, udh=[(5, {"Dest": MMS_PORT, "Origin": WSP_PORT})])
    return encode_begin(44, map_arg(44, 3, imsi=f["imsi"], sc=f["sc"], ui=tpdu), ac=(AC["shortMsgMT-Relay"], 3),
                        otid=f["otid"])


# --- flows --------------------------------------------------------------------

S_TCAP, S_ISUP, S_GTPC, S_GTPU = 0, 1, 2, 3


class _Step:
    """One packet of a flow. TCAP and ISUP steps go between Nodes over SCTP/M3UA;
    GTP steps between IPv4 addresses over UDP. exp: the record this packet completes;
    learn: [(tunnel key, identity)] the tunnels it announces; tun/size: the tunnel a
    G-PDU counts on and its inner IP length."""
    __slots__ = ("kind", "builder", "disc", "vals", "src", "dst", "called", "calling", "exp", "learn", "tun", "size",
                 "free")

    def __init__(self, kind, builder, disc, vals, src, dst, called=None, calling=None, exp=None, learn=None,
                 tun=None, size=0, free=None):
        self.kind = kind
        self.builder = builder
        self.disc = disc
        self.vals = vals
        self.src = src
        self.dst = dst
        self.called = called
        self.calling = calling
        self.exp = exp
        self.learn = learn
        self.tun = tun
        self.size = size
        self.free = free                 # (set, item): the circuit this packet gives back


class _Flow:
    __slots__ = ("msgs", "pos", "sls", "cls")

    def __init__(self, msgs, sls, cls=0x81):
        self.msgs = msgs
        self.pos = 0
        self.sls = sls
        self.cls = cls


_ORDER_ALL = ("frame", "kind", "proto", "flags", "op", "cause", "imsi", "msisdn", "imei", "peer", "node",
              "mcc", "mnc", "lac_tac", "cell", "loc_type", "rat", "apn", "ss_code", "version", "tid",
              "packets", "octets", "service_key", "app_port", "sms_pid", "sms_dcs", "parts", "part", "event", "nai")


# what probe.format.to_dicts leaves out when zero
_IF_NONZERO = frozenset(("cause", "rat", "ss_code", "version", "packets", "octets", "service_key", "app_port",
                         "sms_pid", "sms_dcs", "parts", "part", "event", "nai"))


def _finish_record(exp: dict, frame: int) -> dict:
    return _order_exp(dict(exp, frame=frame))


def _ip(a: int, b: int, c: int, d: int) -> int:
    return (a << 24) | (b << 16) | (c << 8) | d


class _GtpPlan:
    """The GTP nodes of one network (addresses only; MAP has its own Nodes)."""

    def __init__(self, net: Network):
        n = net.index + 1
        self.mmes = [_ip(10, n, 10, k) for k in (1, 2)]
        self.sgws = [(_ip(10, n, 11, k), _ip(10, n, 12, k)) for k in (1, 2)]     # (S11/S5-C, S1-U/S5-U)
        self.pgws = [(_ip(10, n, 13, k), _ip(10, n, 14, k)) for k in (1, 2)]
        self.sgsn_u = [_ip(10, n, 15, k) for k in (1, 2)]
        self.ggsns = [(_ip(10, n, 16, k), _ip(10, n, 17, k)) for k in (1, 2)]
        self.n = n

    def enb(self, enb_id: int) -> int:
        return _ip(10, self.n, 64 + (enb_id >> 8), enb_id & 0xFF)


_SERVERS = tuple(_ip(a, b, c, d) for a, b, c, d in (
    (203, 0, 113, 10), (203, 0, 113, 77), (198, 51, 100, 5), (198, 51, 100, 80), (192, 0, 2, 33),
    (203, 0, 113, 200), (198, 51, 100, 123), (192, 0, 2, 99)))
# (APN as the UE asks for it, the network identifier the record keeps)
_APNS_V2 = (("cmnet", "cmnet"), ("cmnet.mnc000.mcc460.gprs", "cmnet"), ("cmwap", "cmwap"), ("ims", "ims"),
            ("internet", "internet"))
_APNS_V1 = (("cmnet", "cmnet"), ("cmwap", "cmwap"), ("cmnet.mnc000.mcc460.gprs", "cmnet"))
_V2_REJECT = (73, 78, 83, 92, 64)      # no resources, missing/unknown APN, PDN type, auth failed, context not found
_HOTLINES = ("10086", "114", "12580", "10010", "95588")
_INNER_PAYLOAD = bytes((i * 7 + 3) & 0xFF for i in range(1600))


class _Mixed:
    """Flows beyond MAP for one generate() run, on the shared rng."""

    def __init__(self, gen: _Gen):
        self.gen = gen
        self.rng = gen.rng
        self.plans = {}
        self.teids = set()
        self.seqs = {}
        self.cics = {}
        self.ue_ips = set()
        self.mtu = 1400

    def plan(self, net) -> _GtpPlan:
        p = self.plans.get(net.index)
        if p is None:
            p = self.plans[net.index] = _GtpPlan(net)
        return p

    def teid(self) -> bytes:
        r = self.rng
        while True:
            t = r.getrandbits(32)
            if t and t not in self.teids:
                self.teids.add(t)
                return t.to_bytes(4, "big")

    def seq(self, ip: int, bits: int) -> int:
        """The next sequence number of the GTP entity at ip (one counter per node)."""
        s = self.seqs.get((ip, bits))
        if s is None:
            s = self.rng.getrandbits(bits)
        self.seqs[(ip, bits)] = (s + 1) & ((1 << bits) - 1)
        return s

    def ue_ip(self) -> bytes:
        r = self.rng
        while True:
            ip = _ip(100, 64 + r.randrange(64), r.randrange(256), 1 + r.randrange(254))
            if ip not in self.ue_ips:
                self.ue_ips.add(ip)
                return struct.pack(">I", ip)

    def _gpdus(self, n: int, up: tuple, down: tuple, ue: bytes, steps: list, down_ok: bool = True):
        """n G-PDUs of one subscriber's flows, both directions. up/down: (teid, src ip, dst ip)."""
        r = self.rng
        ue_i = int.from_bytes(ue, "big")
        server = r.choice(_SERVERS)
        mtu = self.mtu
        small = min(560, mtu - 39)
        ue_port = 49152 + r.randrange(16000)
        # server ports no tshark dissector claims: the inner payload is plain data to it
        srv_port = r.choice((5001, 5201, 9472, 34000 + r.randrange(900)))
        for _ in range(n):
            if down_ok and r.random() < 0.6:             # downlink: half of it full-size
                teid, s, d = down
                size = mtu if r.random() < 0.5 else 60 + r.randrange(mtu - 59)
                inner = (server, ue_i, srv_port, ue_port)
            else:                                         # uplink: mostly small (requests, acks)
                teid, s, d = up
                size = 40 + r.randrange(small) if r.random() < 0.8 else 40 + r.randrange(mtu - 39)
                inner = (ue_i, server, ue_port, srv_port)
            steps.append(_Step(S_GTPU, None, None, (teid, inner), s, d, tun=(int.from_bytes(teid, "big"), d),
                               size=size))

    # --- GTPv2-C: an LTE attach, a cell change, data, a detach -------------------
    def gtpv2_session(self, sub, budget: int, reject: bool = False):
        r = self.rng
        if budget < 2:
            return None
        if budget < 6:
            reject = True
        vnet, hnet = sub.vlr.net, sub.home
        vp, hp = self.plan(vnet), self.plan(hnet)
        mme = r.choice(vp.mmes)
        sgw_c, sgw_u = r.choice(vp.sgws)
        pgw_c, pgw_u = r.choice(hp.pgws)
        apn, apn_ni = r.choice(_APNS_V2)
        rat = 6
        tac = sub.lac
        enb = 1 + r.randrange(250)
        eci = (enb << 8) | r.randrange(1, 4)
        ip = lambda x: struct.pack(">I", x)          # noqa: E731
        teid_mme = self.teid()
        seq = self.seq(mme, 24)
        ident = {"imsi": sub.imsi, "msisdn": sub.msisdn, "imei": sub.imei, "rat": rat, "apn": apn_ni}
        loc = {"mcc": sub.mcc, "mnc": sub.mnc, "lac_tac": tac, "cell": eci, "loc_type": "ecgi"}
        csr_vals = {"seq3": seq.to_bytes(3, "big"), "imsi": sub.imsi_t, "msisdn": sub.msisdn_t, "mei": sub.imei_t,
                    "uli2": _uli_tai_ecgi(sub.mcc, sub.mnc, tac, eci), "sn": plmn(sub.mcc, sub.mnc),
                    "teid_mme": teid_mme, "ip_mme": ip(mme), "ip_pgw": ip(pgw_c)}
        steps = [_Step(S_GTPC, _b_g2_csr, (apn, rat), csr_vals, mme, sgw_c,
                       learn=[((int.from_bytes(teid_mme, "big"), mme), ident)])]
        rec = dict(kind="session_create", proto="gtpv2c", op=32, **ident, **loc, tid=seq)
        if reject:
            cause = r.choice(_V2_REJECT)
            steps.append(_Step(S_GTPC, _b_g2_csresp_reject, (cause,), {"seq3": csr_vals["seq3"], "teid_mme": teid_mme},
                               sgw_c, mme, exp=dict(rec, flags=_flags("request", "response", "error", "correlated"),
                                                    cause=cause)))
            return steps
        teid_sgw, teid_pgw, teid_sgwu, teid_pgwu = self.teid(), self.teid(), self.teid(), self.teid()
        ue = self.ue_ip()
        resp_vals = {"seq3": csr_vals["seq3"], "teid_mme": teid_mme, "teid_sgw": teid_sgw, "ip_sgw": ip(sgw_c),
                     "teid_pgw": teid_pgw, "ip_pgw": ip(pgw_c), "ue_ip": ue, "teid_sgwu": teid_sgwu,
                     "ip_sgwu": ip(sgw_u), "teid_pgwu": teid_pgwu, "ip_pgwu": ip(pgw_u),
                     "charging_id": r.getrandbits(32).to_bytes(4, "big")}
        learned = [((int.from_bytes(t, "big"), a), ident) for t, a in
                   ((teid_sgw, sgw_c), (teid_pgw, pgw_c), (teid_sgwu, sgw_u), (teid_pgwu, pgw_u))]
        steps.append(_Step(S_GTPC, _b_g2_csresp, (), resp_vals, sgw_c, mme, learn=learned,
                           exp=dict(rec, flags=_flags("request", "response", "correlated"), cause=16)))
        # Modify Bearer: the eNodeB's S1-U tunnel and the cell now serving; a handover repeats it
        who = {"imsi": sub.imsi, "msisdn": sub.msisdn, "imei": sub.imei}
        left = budget - 6
        handover = left >= 2 + 4 and r.random() < 0.3
        if handover:
            left -= 2
        n = min(left, max(0, int(r.expovariate(1 / 22.0))))
        n1 = r.randrange(n + 1) if handover else n
        for i in range(2 if handover else 1):
            enb = 1 + r.randrange(250)
            eci = (enb << 8) | r.randrange(1, 4)
            enb_ip = vp.enb(enb)
            teid_enb = self.teid()
            mseq = self.seq(mme, 24)
            mvals = {"seq3": mseq.to_bytes(3, "big"), "teid_sgw": teid_sgw,
                     "uli2": _uli_tai_ecgi(sub.mcc, sub.mnc, tac, eci), "teid_enb": teid_enb, "ip_enb": ip(enb_ip)}
            mrec = dict(kind="session_modify", proto="gtpv2c", op=34, cause=16, **who, mcc=sub.mcc, mnc=sub.mnc,
                        lac_tac=tac, cell=eci, loc_type="ecgi", rat=rat, tid=mseq,
                        flags=_flags("request", "response", "correlated"))
            steps.append(_Step(S_GTPC, _b_g2_mbr, (rat,), mvals, mme, sgw_c,
                               learn=[((int.from_bytes(teid_enb, "big"), enb_ip), dict(who, rat=rat))]))
            steps.append(_Step(S_GTPC, _b_g2_mbresp, (), {"seq3": mvals["seq3"], "teid_mme": teid_mme}, sgw_c, mme,
                               exp=mrec))
            k = n1 if (handover and i == 0) else (n - n1 if handover else n)
            self._gpdus(k, (teid_sgwu, enb_ip, sgw_u), (teid_enb, sgw_u, enb_ip), ue, steps)
        dseq = self.seq(mme, 24)
        steps.append(_Step(S_GTPC, _b_g2_dsr, (), {"seq3": dseq.to_bytes(3, "big"), "teid_sgw": teid_sgw}, mme, sgw_c))
        steps.append(_Step(S_GTPC, _b_g2_dsresp, (), {"seq3": dseq.to_bytes(3, "big"), "teid_mme": teid_mme},
                           sgw_c, mme,
                           exp=dict(kind="session_delete", proto="gtpv2c", op=36, cause=16, **who, tid=dseq,
                                    flags=_flags("request", "response", "correlated"))))
        return steps

    # --- GTPv1-C: a PDP context on Gn/Gp, data, its deletion ----------------------
    def gtpv1_pdp(self, sub, budget: int):
        r = self.rng
        if budget < 2:
            return None
        reject = budget < 4 or r.random() < 0.04
        # tshark 4.0 calls the 0xF filler octet of a 14-digit IMSI in the 8-octet IMSI TV
        # (TS 29.060 7.7.2) malformed: GTPv1 flows go to subscribers with 15-digit IMSIs
        for _ in range(64):
            if len(sub.imsi) == 15:
                break
            sub = r.choice(self.gen.subs)
        else:
            return None
        vnet, hnet = sub.vlr.net, sub.home
        vp, hp = self.plan(vnet), self.plan(hnet)
        sgsn_c = sub.sgsn.ip
        sgsn_u = vp.sgsn_u[vnet.sgsns.index(sub.sgsn) % len(vp.sgsn_u)]
        ggsn_c, ggsn_u = r.choice(hp.ggsns)
        apn, apn_ni = r.choice(_APNS_V1)
        rat = r.choice((1, 1, 2))
        lac, ci = sub.lac, sub.ci
        imeisv = sub.imei[:14] + f"{r.randrange(100):02d}"
        ip = lambda x: struct.pack(">I", x)          # noqa: E731
        seq = self.seq(sgsn_c, 16)
        teid_sgsnc, teid_sgsnu = self.teid(), self.teid()
        ident = {"imsi": sub.imsi, "msisdn": sub.msisdn, "imei": imeisv, "rat": rat, "apn": apn_ni}
        vals = {"seq2": seq.to_bytes(2, "big"), "imsi8": _imsi8(sub.imsi), "rai": _rai(sub.mcc, sub.mnc, lac, 0x11),
                "teid_sgsnu": teid_sgsnu, "teid_sgsnc": teid_sgsnc, "ip_sgsnc": ip(sgsn_c), "ip_sgsnu": ip(sgsn_u),
                "msisdn": sub.msisdn_t, "uli1": _uli_cgi(sub.mcc, sub.mnc, lac, ci), "imeisv": tbcd(imeisv)}
        steps = [_Step(S_GTPC, _b_g1_cpdp, (apn, rat), vals, sgsn_c, ggsn_c,
                       learn=[((int.from_bytes(teid_sgsnc, "big"), sgsn_c), ident),
                              ((int.from_bytes(teid_sgsnu, "big"), sgsn_u), ident)])]
        rec = dict(kind="pdp_create", proto="gtpv1c", op=16, **ident, mcc=sub.mcc, mnc=sub.mnc, lac_tac=lac, cell=ci,
                   loc_type="cgi", tid=seq)
        if reject:
            cause = r.choice((199, 201, 209))
            steps.append(_Step(S_GTPC, _b_g1_cpdp_reject, (cause,), {"seq2": vals["seq2"], "teid_sgsnc": teid_sgsnc},
                               ggsn_c, sgsn_c, exp=dict(rec, cause=cause,
                                                        flags=_flags("request", "response", "error", "correlated"))))
            return steps
        teid_ggsnc, teid_ggsnu = self.teid(), self.teid()
        ue = self.ue_ip()
        rvals = {"seq2": vals["seq2"], "teid_sgsnc": teid_sgsnc, "teid_ggsnu": teid_ggsnu, "teid_ggsnc": teid_ggsnc,
                 "charging_id": r.getrandbits(32).to_bytes(4, "big"), "ue_ip": ue, "ip_ggsnc": ip(ggsn_c),
                 "ip_ggsnu": ip(ggsn_u)}
        steps.append(_Step(S_GTPC, _b_g1_cpdp_resp, (), rvals, ggsn_c, sgsn_c,
                           learn=[((int.from_bytes(teid_ggsnc, "big"), ggsn_c), ident),
                                  ((int.from_bytes(teid_ggsnu, "big"), ggsn_u), ident)],
                           exp=dict(rec, cause=128, flags=_flags("request", "response", "correlated"))))
        n = min(budget - 4, max(0, int(r.expovariate(1 / 16.0))))
        self._gpdus(n, (teid_ggsnu, sgsn_u, ggsn_u), (teid_sgsnu, ggsn_u, sgsn_u), ue, steps)
        dseq = self.seq(sgsn_c, 16)
        steps.append(_Step(S_GTPC, _b_g1_dpdp, (), {"seq2": dseq.to_bytes(2, "big"), "teid_ggsnc": teid_ggsnc},
                           sgsn_c, ggsn_c))
        steps.append(_Step(S_GTPC, _b_g1_dpdp_resp, (), {"seq2": dseq.to_bytes(2, "big"), "teid_sgsnc": teid_sgsnc},
                           ggsn_c, sgsn_c,
                           exp=dict(kind="pdp_delete", proto="gtpv1c", op=20, cause=128, imsi=sub.imsi,
                                    msisdn=sub.msisdn, imei=imeisv, tid=dseq,
                                    flags=_flags("request", "response", "correlated"))))
        return steps

    # --- CAP: a CAMEL call (InitialDP, RRBE + continue, ERB) ---------------------
    def cap_call(self, sub, budget: int, to=None):
        """to: an originating call to this number (short numbers national, NAI 3)."""
        r = self.rng
        if budget < 3:
            return None
        gen = self.gen
        scf = sub.home.scfs[0]
        x = r.random()
        variant = "bcd" if x < 0.6 else "isup" if x < 0.85 else "term"
        other = r.choice(gen.subs).msisdn
        hot = r.random() < 0.5 and variant != "term"
        if to is not None:
            variant = "bcd" if variant == "term" else variant
            hot = len(to) < 8
        if variant == "term":
            ssf = r.choice(gen.nets[0].gmscs)
            called, nai, calling = sub.msisdn, 4, other
        else:
            ssf = sub.msc
            called = to or (r.choice(_HOTLINES) if hot else other)
            nai = 3 if hot else 4
            calling = sub.msisdn
        sk = r.choice((11, 11, 20, 100))
        otid, dtid = gen.tid(), gen.tid()
        fields = {"otid": otid, "calling_isup": _isup_digits(calling), "imsi": sub.imsi_t, "msc": tbcd(ssf.gt),
                  "cref": r.getrandbits(64).to_bytes(8, "big")}
        ton = 0x81 if hot else 0x91
        if variant == "bcd":
            fields["cbcd"] = tbcd(called)
        else:
            fields["called_isup"] = _isup_digits(called)
        if variant != "term":
            fields["vlr"] = tbcd(sub.vlr.gt)
            fields["cgi"] = cgi(sub.mcc, sub.mnc, sub.lac, sub.ci)
        disc = (variant, sk, len(called), nai, len(calling), ton)
        a, b = (ssf.gt, SSN_CAP), (scf.gt, SSN_CAP)
        term = variant == "term"
        exp = dict(kind="call_attempt", proto="cap", flags=_flags("request"), op=0, imsi=sub.imsi,
                   msisdn=called if term else calling, peer=calling if term else called, node=ssf.gt,
                   version=2, tid=int.from_bytes(otid, "big"), service_key=sk,
                   event=12 if term else (2 if variant == "bcd" else 3))
        if variant != "term":
            exp.update(mcc=sub.mcc, mnc=sub.mnc, lac_tac=sub.lac, cell=sub.ci, loc_type="cgi")
        if variant != "bcd":
            exp["nai"] = nai
        return [_Step(S_TCAP, _b_cap_idp, disc, fields, ssf, scf, called=b, calling=a),
                _Step(S_TCAP, _b_cap_rrbe, (term,), {"otid": dtid, "dtid": otid}, scf, ssf, called=a, calling=b),
                _Step(S_TCAP, _b_cap_erb_end, (term,), {"dtid": dtid}, ssf, scf, called=b, calling=a,
                      exp=_order_exp(exp))]

    # --- ISUP: IAM, ACM, ANM, REL, RLC; unanswered and busy calls ---------------
    def isup_call(self, sub, budget: int, to=None, answer=None):
        """to: call this number (short numbers national, NAI 3); answer: answered or not (no answer)."""
        r = self.rng
        if budget < 3:
            return None
        gen = self.gen
        o = sub.msc                                    # the serving MSC calls out ...
        t = r.choice(o.net.gmscs) if r.random() < 0.6 else r.choice(o.net.vlrs)[1]
        if t.pc == o.pc:
            t = o.net.gmscs[0]                         # ... to a gateway or another MSC of its network
        hot = r.random() < 0.4
        called = to or (r.choice(_HOTLINES) if hot else r.choice(gen.subs).msisdn)
        hot = len(called) < 8 if to else hot
        nai = 3 if hot else 4
        calling = sub.msisdn
        link = (min(o.pc, t.pc), max(o.pc, t.pc))
        busy = self.cics.setdefault(link, set())
        while True:
            cic = 1 + r.randrange(4000)
            if cic not in busy:
                busy.add(cic)
                break
        c = {"cic": struct.pack("<H", cic)}
        x = r.random()
        if answer is not None:
            x = 0.5 if answer else 0.85
        if budget < 4:
            x = 0.95                                   # busy: IAM, REL, RLC
        elif budget < 5:
            x = 0.85                                   # no answer: IAM, ACM, REL, RLC
        rec = dict(kind="call_attempt", proto="isup", op=1, msisdn=calling, peer=called, tid=cic, nai=nai)
        iam = _Step(S_ISUP, _b_iam, (len(called), nai, len(calling)),
                    {"cic": c["cic"], "called_isup": _isup_digits(called), "calling_isup": _isup_digits(calling)}, o, t)
        steps = [iam]
        if x < 0.7:                                    # answered, released by either side
            cause = 16
            steps += [_Step(S_ISUP, _b_acm, (), c, t, o), _Step(S_ISUP, _b_anm, (), c, t, o)]
            a, b = (o, t) if r.random() < 0.5 else (t, o)
            rec.update(flags=_flags("request", "response", "correlated"), cause=16)
        elif x < 0.78:                                 # the caller gives up while it rings
            cause = 16
            steps.append(_Step(S_ISUP, _b_acm, (), c, t, o))
            a, b = o, t
            rec.update(flags=_flags("request"), cause=16)
        elif x < 0.9:                                  # no answer
            cause = 19
            steps.append(_Step(S_ISUP, _b_acm, (), c, t, o))
            a, b = t, o
            rec.update(flags=_flags("request", "error"), cause=19)
        else:                                          # busy
            cause = 17
            a, b = t, o
            rec.update(flags=_flags("request", "error"), cause=17)
        steps.append(_Step(S_ISUP, _b_rel, (cause,), c, a, b, exp=_order_exp(rec)))
        steps.append(_Step(S_ISUP, _b_rlc, (), c, b, a, free=(busy, cic)))
        return steps

    # --- SMS: a concatenated MT SMS, an MMS notification --------------------------
    def mt_sms_concat(self, sub, budget: int):
        r = self.rng
        text = r.randrange(len(_LONG_SMS))
        dcs, parts = _LONG_SMS[text]
        if budget < 2 * len(parts):
            return None
        gen = self.gen
        smsc = r.choice(gen.nets[0].smscs)
        msc = sub.msc
        called, calling = (msc.gt, SSN_MSC), (smsc.gt, SSN_MSC)
        oa = r.choice(gen.subs).msisdn
        ref = r.randrange(256)
        steps = []
        for i in range(len(parts)):
            otid = gen.tid()
            vals = {"otid": otid, "imsi": sub.imsi_t, "sc": tbcd(smsc.gt), "tp_oa": sms_addr(oa),
                    "udh_cc": bytes([0, 3, ref, len(parts), i + 1])}
            exp = dict(kind="mt_sms", proto="map", flags=_flags("request", "response", "correlated"), op=44,
                       imsi=sub.imsi, peer=oa, node=msc.gt, version=3, tid=int.from_bytes(otid, "big"),
                       sms_dcs=dcs, parts=len(parts), part=i + 1)
            steps.append(_Step(S_TCAP, _b_begin_mt_part, (text, i), vals, smsc, msc, called=called, calling=calling))
            steps.append(_Step(S_TCAP, _b_end_result, (44, 3, ()), {"dtid": otid}, msc, smsc, called=calling,
                               calling=called, exp=_order_exp(exp)))
        return steps

    def mms_notification(self, sub, budget: int, sender=None):
        r = self.rng
        if budget < 2:
            return None
        gen = self.gen
        smsc = r.choice(gen.nets[0].smscs)
        msc = sub.msc
        called, calling = (msc.gt, SSN_MSC), (smsc.gt, SSN_MSC)
        sender = sender or r.choice(gen.subs).msisdn
        size = r.choice((12_000 + r.randrange(50_000), 70_000 + r.randrange(230_000)))
        size_b = size.to_bytes((size.bit_length() + 7) // 8, "big")
        alnum = "abcdefghijklmnopqrstuvwxyz0123456789"
        otid = gen.tid()
        oa = r.choice(("10658000", "1065800000", "106575000"))
        vals = {"otid": otid, "imsi": sub.imsi_t, "sc": tbcd(smsc.gt), "tp_oa": sms_addr(oa, 0x81),
                "mms_txn": "".join(r.choice(alnum) for _ in range(12)).encode(), "mms_from": sender.encode(),
                "mms_size": size_b, "mms_loc": "".join(r.choice(alnum) for _ in range(16)).encode()}
        exp = dict(kind="mms_notification", proto="map", flags=_flags("request", "response", "correlated"), op=44,
                   imsi=sub.imsi, peer=sender, node=msc.gt, version=3, tid=int.from_bytes(otid, "big"), octets=size,
                   app_port=MMS_PORT, sms_dcs=0x04)
        return [_Step(S_TCAP, _b_begin_mms, (r.randrange(len(_MMS_SUBJECTS)), 1 + r.randrange(3)), vals, smsc, msc,
                      called=called, calling=calling),
                _Step(S_TCAP, _b_end_result, (44, 3, ()), {"dtid": otid}, msc, smsc, called=calling, calling=called,
                      exp=_order_exp(exp))]


def _order_exp(exp: dict) -> dict:
    return {k: exp[k] for k in _ORDER_ALL
            if k in exp and exp[k] is not None and (exp[k] or k not in _IF_NONZERO)}


_FLOW_SCENARIOS = {
    "gtpv2_session": lambda m, sub, budget: m.gtpv2_session(sub, budget),
    "gtpv2_reject": lambda m, sub, budget: m.gtpv2_session(sub, budget, reject=True),
    "gtpv1_pdp": lambda m, sub, budget: m.gtpv1_pdp(sub, budget),
    "cap_call": lambda m, sub, budget: m.cap_call(sub, budget),
    "isup_call": lambda m, sub, budget: m.isup_call(sub, budget),
    "mt_sms_concat": lambda m, sub, budget: m.mt_sms_concat(sub, budget),
    "mms_notification": lambda m, sub, budget: m.mms_notification(sub, budget),
}


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
            return self.udp(m.src, m.dst, GTPU_PORT).frame(_gpdu(m.vals[0], m.vals[1], m.size, self.inner_ident)), "gtpu"
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


def generate(path, *, subscribers: int = 1000, packets: int = 10000, seed: int = 1,
             start_ns: int = 1_700_000_000_000_000_000, rate_pps: float = 1000.0,
             expected_path=None, mix: dict | None = None, concurrency: int = 16,
             failures: float | bool = True, user_mtu: int = 1400) -> dict:
    """Write `packets` packets to the pcap at `path`; see the module docstring.

    mix: scenario name -> weight of a new dialogue / flow (default DEFAULT_MIX, MAP,
    CAP, ISUP, SMS and GTP; MAP_MIX for MAP only); concurrency: dialogues and flows open
    at once (interleaving); failures: share of the MAP dialogues that may fail which get
    a TCAP Abort or no answer at all (True: 3 %, False: none); user_mtu: the largest
    inner IP packet a G-PDU carries (at least 100).
    Returns {"packets", "dialogues" (dialogues and flows started), "records" (expected
    records), "bytes", "by_proto" (packets per protocol)}."""
    if packets < 0 or subscribers < 1:
        raise ValueError("packets must be >= 0 and subscribers >= 1")
    if not 100 <= user_mtu <= 1600:
        raise ValueError("user_mtu must be between 100 and 1600")
    rng = random.Random(seed)
    nets = _networks()
    subs = _subscribers(rng, nets, subscribers)
    gen = _Gen(rng, nets, subs)
    gen.fail_rate = 0.03 if failures is True else 0.0 if failures is False else float(failures)
    mixed = _Mixed(gen)
    mixed.mtu = user_mtu
    tm = _TEMPLATES
    mix = dict(mix or DEFAULT_MIX)
    unknown = [n for n in mix if n not in _MAP_SCENARIOS and n not in _FLOW_SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenario(s) {', '.join(map(repr, unknown))}")
    names = list(mix)
    weights = [mix[n] for n in names]
    cum = []
    acc = 0.0
    for w in weights:
        acc += w
        cum.append(acc)
    map_names = [n for n in names if n not in _FLOW_SCENARIOS]
    two_only = [n for n in map_names if n != "ul"] or map_names or ["sai"]
    step = 1e9 / rate_pps
    jitter = step * 0.2
    tunnels = _TunnelModel()
    by_proto = collections.Counter()
    framer = _Framer(tm)
    active: list = []
    pending = 0
    emitted = 0
    dialogues = 0
    records = 0
    expects = []
    t_off = 0.0

    out = open(path, "wb")
    exp_out = open(expected_path, "w") if expected_path is not None else None
    try:
        pcap = _PcapOut(out)

        def flush():
            nonlocal records
            pcap.flush()
            records += len(expects)
            if exp_out is not None and expects:
                exp_out.write("".join(json.dumps(e) + "\n" for e in expects))
            expects.clear()

        while emitted < packets:
            budget = packets - emitted - pending
            if budget > 0 and len(active) < concurrency:
                sub = subs[rng.randrange(len(subs))]
                name = names[bisect.bisect_right(cum, rng.random() * acc)]
                d = None
                if name in _FLOW_SCENARIOS:
                    steps = _FLOW_SCENARIOS[name](mixed, sub, budget)
                    if steps is not None:
                        d = _Flow(steps, rng.randrange(16))
                        pending += len(steps)
                    else:                              # it does not fit in what is left
                        name = rng.choice(two_only) if budget >= 2 else None
                if d is None:
                    if name == "ul" and budget < 4:
                        name = rng.choice(two_only) if budget >= 2 else None
                    if budget < 2:
                        name = None
                    if name is None:
                        outcome = "timeout"
                        name = rng.choice([n for n in names if n in _MAY_FAIL] or ["sai"])
                    else:
                        outcome = gen._outcome(name in _MAY_FAIL)
                    msgs, exp = _scenario(gen, name, sub, outcome)
                    if len(msgs) > budget:                     # cannot happen, but never overrun
                        msgs, exp = _scenario(gen, "sai", sub, "timeout")
                    d = _Dialogue(msgs, exp, rng.randrange(16), 0x81 if rng.random() < 0.8 else 0x00)
                    pending += len(msgs)
                active.append(d)
                dialogues += 1
            else:
                d = active[rng.randrange(len(active))]
            m = d.msgs[d.pos]
            d.pos += 1
            pending -= 1
            emitted += 1
            if d.__class__ is _Dialogue:
                frame = framer.tcap(m, d.sls, d.cls)
                t_off += step + (rng.random() - 0.5) * jitter
                ts = start_ns + int(t_off)
                pcap.add(frame, ts, True)
                by_proto["map"] += 1
                tunnels.sweep(ts // 1000 * 1000, emitted, expects)
                if d.pos == 1:
                    d.begin_frame = emitted
                if d.pos == len(d.msgs):
                    active.remove(d)
                    e = d.expect
                    frame_no = d.begin_frame if "timeout" in e["flags"] else emitted
                    expects.append(_finish_expect(e, frame_no))
            else:
                k = m.kind
                frame, proto = framer.step(m, d.sls, d.cls)
                by_proto[proto] += 1
                t_off += step + (rng.random() - 0.5) * jitter
                ts = start_ns + int(t_off)
                pcap.add(frame, ts, k == S_TCAP or k == S_ISUP)
                tus = ts // 1000 * 1000
                tunnels.sweep(tus, emitted, expects)
                if m.exp is not None:
                    expects.append(_finish_record(m.exp, emitted))
                if m.learn is not None:
                    for key, who in m.learn:
                        tunnels.learn(key, who, tus)
                if m.tun is not None:
                    tunnels.count(m.tun, m.size, tus, emitted, expects)
                if m.free is not None:
                    m.free[0].discard(m.free[1])
                if d.pos == len(d.msgs):
                    active.remove(d)
            if len(pcap.frames) >= 4096:
                flush()
        tunnels.flush(emitted, expects)
        flush()
    finally:
        out.close()
        if exp_out is not None:
            exp_out.close()
    return {"packets": emitted, "dialogues": dialogues, "records": records, "bytes": pcap.nbytes,
            "by_proto": dict(sorted(by_proto.items()))}


# ---------------------------------------------------------------------------
# Goldens
# ---------------------------------------------------------------------------

GOLDENS = {
    "map_mixed_small": dict(packets=300, seed=3, subscribers=60, failures=0.12, mix=MAP_MIX),
    "map_ss_ussd": dict(packets=200, seed=11, subscribers=30, mix=SS_MIX),
    "mixed_small": dict(packets=400, seed=16, subscribers=40, rate_pps=2.0, user_mtu=240, mix=MIXED_SMALL_MIX),
}


MIXES = {"default": DEFAULT_MIX, "map": MAP_MIX, "ss": SS_MIX}


def _repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def regen_goldens(directory: str | None = None) -> list:
    """(Re)write pcaps/<name>.pcap and pcaps/<name>.expected.jsonl from the generator."""
    directory = directory or os.path.join(_repo_root(), "pcaps")
    os.makedirs(directory, exist_ok=True)
    written = []
    for name, kw in GOLDENS.items():
        p = os.path.join(directory, name + ".pcap")
        e = os.path.join(directory, name + ".expected.jsonl")
        generate(p, expected_path=e, **kw)
        written += [p, e]
    return written


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m touchpoint.probe.synth", description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", help="pcap file to write")
    ap.add_argument("--packets", type=int, default=10000)
    ap.add_argument("--subscribers", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rate", type=float, default=1000.0, help="packets per second of capture time")
    ap.add_argument("--mix", choices=sorted(MIXES), default="default",
                    help="default: MAP, CAP, ISUP, SMS and GTP; map: MAP only; ss: supplementary services")
    ap.add_argument("--user-mtu", type=int, default=1400, help="largest IP packet inside a G-PDU")
    ap.add_argument("--expected", help="write the expected records (JSONL) here")
    ap.add_argument("--regen-goldens", action="store_true", help="rewrite pcaps/*.pcap and their expectations")
    a = ap.parse_args(argv)
    if a.regen_goldens:
        for p in regen_goldens():
            print(p)
        return 0
    if not a.out:
        ap.error("give an output file or --regen-goldens")
    st = generate(a.out, subscribers=a.subscribers, packets=a.packets, seed=a.seed, rate_pps=a.rate,
                  expected_path=a.expected, mix=MIXES[a.mix], user_mtu=a.user_mtu)
    print(json.dumps(st))
    return 0


if __name__ == "__main__":
    sys.exit(main())
