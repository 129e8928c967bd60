"""Synthetic MAP traffic: valid pcap captures with their expected records.

`generate()` writes a classic pcap (microsecond magic, link type Ethernet) of
Ethernet / IPv4 / SCTP (one DATA chunk, PPID 3) / M3UA DATA / SCCP UDT / TCAP /
MAP dialogues between the nodes of a few mobile networks, for a population of
random subscribers. The same seed gives a byte-identical file.

Every MAP message is encoded with pycrate (the reference encoder), but only
once per shape: a *template* is encoded with placeholder identities, the
placeholders are located in the encoded bytes, and each packet patches its
own identities in (IMSI, MSISDN, IMEI, node numbers, TCAP transaction ids,
...). Shapes whose lengths differ (a 14- or 15-digit IMSI, an 11- or
12-digit node number) are separate templates, so every length in the BER is
right. Framing (Ethernet to SCCP) is built with struct; the IPv4 header
checksum and the SCTP CRC32c are computed for every packet.

The expected records (`expected_path`, JSONL in the shape of
`probe.format.to_dicts`) are the ground truth of what was encoded, one per
dialogue, never the output of the decoder. See `_Dialogue.expect` and the
scenario functions for the semantics; keys: frame, kind, proto, flags, op,
tid, version, cause, and the identity fields present. ts_ns, src, dst and
probe_id are left out.

Packet count: exactly `packets` packets are written. Near the end only
dialogues that still fit are started (a Begin that is never answered fits in
one packet), so every dialogue in the file is complete.

Helpers for tests: `frame_tcap`, `pcap_bytes`, `encode_tcap`, `encode_begin`,
`encode_continue`, `encode_end`, `encode_abort`, `map_arg`, `map_res`,
`map_err`, `tbcd`, `addr`, `gsm7_pack`, `sms_deliver`, `sms_submit`, `cgi`,
`lai`, `crc32c`.

Command line: `python -m probe.synth OUT.pcap [--packets N --seed S
--subscribers N --expected OUT.jsonl]` and `python -m probe.synth
--regen-goldens` (rewrites pcaps/*.pcap and pcaps/*.expected.jsonl).
"""
from __future__ import annotations

import argparse
import bisect
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
    """TP-OA / TP-DA: length in digits, type of address, semi-octets."""
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
            val["msisdn"] = addr(f["msisdn"])
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


def _enc_field(name: str, value):
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

    def ss(self, sub, outcome, op):
        v = 2                                          # networkFunctionalSs has no v3
        vlr, hlr = sub.vlr, sub.hlr
        called, calling = (hlr.gt, SSN_HLR), (vlr.gt, SSN_VLR)
        code = self.rng.choice(_SS_CODES)
        fields = {"imsi": sub.imsi_t, "msisdn": sub.msisdn_t}
        args = [(None, ("ss_code", code))]
        rargs = [(None, ("ss_code", code))]
        e = {"imsi": sub.imsi, "msisdn": sub.msisdn, "ss_code": code, "node": _ssn_node(called, calling)}
        evals = {}
        if op == 10:
            if self.rng.random() < 0.7:
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

    def sri_sm(self, sub, outcome):
        v = 3 if self.rng.random() < 0.8 else 2
        smsc = self.rng.choice(self.nets[0].smscs)
        hlr = sub.hlr
        called, calling = (sub.msisdn, SSN_HLR), (smsc.gt, SSN_MSC)
        e = {"msisdn": sub.msisdn, "peer": smsc.gt}
        r = self.rng.random()
        err = 6 if r < 0.10 else 1 if r < 0.13 else 0
        if err and outcome == "ok":
            end = (_b_end_error, (45, v, err), {})
        else:
            nnn = sub.msc if self.rng.random() < 0.85 else sub.sgsn
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

    def mt_sms(self, sub, outcome, v2=False):
        v = 2 if v2 else 3
        smsc = self.rng.choice(self.nets[0].smscs)
        msc = sub.msc
        called, calling = (msc.gt, SSN_MSC), (smsc.gt, SSN_MSC)
        oa = self.rng.choice(self.subs).msisdn
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

    def mo_sms(self, sub, outcome, v2=False):
        v = 2 if v2 else 3
        smsc = self.rng.choice(sub.home.smscs)
        msc = sub.msc
        called, calling = (smsc.gt, SSN_MSC), (msc.gt, SSN_MSC)
        da = self.rng.choice(self.subs).msisdn
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

    def ussd(self, sub, outcome):
        v = 2
        vlr, hlr = sub.vlr, sub.hlr
        called, calling = (hlr.gt, SSN_HLR), (vlr.gt, SSN_VLR)
        s = self.rng.choice(_USSD)
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

    def psi(self, sub, outcome):
        hlr, vlr = sub.hlr, sub.vlr
        called, calling = (vlr.gt, SSN_VLR), (hlr.gt, SSN_HLR)
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

# Scenario weights (per dialogue started)
DEFAULT_MIX = {
    "sai": 18, "ul": 11, "sri_sm": 14, "mt_sms": 12, "mo_sms": 10, "sri": 8, "check_imei": 5,
    "ugl": 4, "psi": 3, "ati": 3, "isd": 3, "cancel_location": 3, "purge_ms": 3, "ussd": 3,
    "fsm_v2_mt": 2, "fsm_v2_mo": 1, "register_ss": 1, "activate_ss": 1, "deactivate_ss": 1,
    "erase_ss": 1,
}
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


def generate(path, *, subscribers: int = 1000, packets: int = 10000, seed: int = 1,
             start_ns: int = 1_700_000_000_000_000_000, rate_pps: float = 1000.0,
             expected_path=None, mix: dict | None = None, concurrency: int = 16,
             failures: float | bool = True) -> dict:
    """Write `packets` MAP packets to the pcap at `path`; see the module docstring.

    mix: scenario name -> weight (default DEFAULT_MIX); concurrency: dialogues open at
    once (interleaving); failures: share of the dialogues that may fail which get a TCAP
    Abort or no answer at all (True: 3 %, False: none).
    Returns {"packets", "dialogues", "bytes"}."""
    if packets < 0 or subscribers < 1:
        raise ValueError("packets must be >= 0 and subscribers >= 1")
    rng = random.Random(seed)
    nets = _networks()
    subs = _subscribers(rng, nets, subscribers)
    gen = _Gen(rng, nets, subs)
    gen.fail_rate = 0.03 if failures is True else 0.0 if failures is False else float(failures)
    tm = _TEMPLATES
    mix = dict(mix or DEFAULT_MIX)
    names = list(mix)
    weights = [mix[n] for n in names]
    cum = []
    acc = 0.0
    for w in weights:
        acc += w
        cum.append(acc)
    two_only = [n for n in names if n != "ul"] or names
    assocs = {}
    addr_cache = {}
    step = 1e9 / rate_pps
    jitter = step * 0.2

    def assoc(a: Node, b: Node) -> _Assoc:
        key = (a.ip, b.ip)
        s = assocs.get(key)
        if s is None:
            r = random.Random((a.ip << 32) | b.ip)
            s = assocs[key] = _Assoc(a.ip, b.ip, r.getrandbits(32) | 1, r.getrandbits(32), r.getrandbits(16))
        return s

    def sccp_addr(p):
        b = addr_cache.get(p)
        if b is None:
            b = addr_cache[p] = sccp_address(p[0], p[1])
        return b

    active: list = []
    pending = 0
    emitted = 0
    dialogues = 0
    nbytes = len(PCAP_HEADER)
    expects = []
    batch_frames, batch_ts = [], []
    t_off = 0.0

    out = open(path, "wb")
    exp_out = open(expected_path, "w") if expected_path is not None else None
    try:
        out.write(PCAP_HEADER)

        def flush():
            nonlocal nbytes
            if not batch_frames:
                return
            crcs = _crc32c_batch([f[SCTP_OFF:] for f in batch_frames])
            parts = []
            pk = struct.pack
            for f, c, ts in zip(batch_frames, crcs, batch_ts):
                us = ts // 1000
                n = len(f)
                parts.append(pk("<IIII", us // 1_000_000, us % 1_000_000, n, n))
                parts.append(f[:_CSUM_OFF])
                parts.append(pk("<I", c))
                parts.append(f[_CSUM_OFF + 4:])
                nbytes += 16 + n
            out.write(b"".join(parts))
            batch_frames.clear()
            batch_ts.clear()
            if exp_out is not None and expects:
                exp_out.write("".join(json.dumps(e) + "\n" for e in expects))
                expects.clear()

        while emitted < packets:
            budget = packets - emitted - pending
            if budget > 0 and len(active) < concurrency:
                sub = subs[rng.randrange(len(subs))]
                name = names[bisect.bisect_right(cum, rng.random() * acc)]
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
                active.append(d)
                pending += len(msgs)
                dialogues += 1
            else:
                d = active[rng.randrange(len(active))]
            m = d.msgs[d.pos]
            d.pos += 1
            pending -= 1
            emitted += 1
            tcap = tm.render(m.builder, m.disc, m.vals)
            user = sccp_udt(sccp_addr(m.called), sccp_addr(m.calling), tcap, d.cls)
            frame = assoc(m.src, m.dst).frame(m3ua_data(m.src.pc, m.dst.pc, d.sls, user))
            t_off += step + (rng.random() - 0.5) * jitter
            batch_frames.append(frame)
            batch_ts.append(start_ns + int(t_off))
            if d.pos == 1:
                d.begin_frame = emitted
            if d.pos == len(d.msgs):
                active.remove(d)
                e = d.expect
                frame_no = d.begin_frame if "timeout" in e["flags"] else emitted
                if exp_out is not None:
                    expects.append(_finish_expect(e, frame_no))
            if len(batch_frames) >= 4096:
                flush()
        flush()
    finally:
        out.close()
        if exp_out is not None:
            exp_out.close()
    return {"packets": emitted, "dialogues": dialogues, "bytes": nbytes}


# ---------------------------------------------------------------------------
# Goldens
# ---------------------------------------------------------------------------

GOLDENS = {
    "map_mixed_small": dict(packets=300, seed=3, subscribers=60, failures=0.12),
    "map_ss_ussd": dict(packets=200, seed=11, subscribers=30, mix=SS_MIX),
}


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
    ap = argparse.ArgumentParser(prog="python -m probe.synth", description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", help="pcap file to write")
    ap.add_argument("--packets", type=int, default=10000)
    ap.add_argument("--subscribers", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rate", type=float, default=1000.0, help="packets per second of capture time")
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
                  expected_path=a.expected)
    print(json.dumps(st))
    return 0


if __name__ == "__main__":
    sys.exit(main())
