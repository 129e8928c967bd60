"""Digits and small encoders the messages share: TBCD, address strings (MAP's and SMS's), GSM
7-bit packing, PLMN, cell and location ids, the IMEI check digit."""
from __future__ import annotations

import struct

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


def luhn(d14: str) -> str:
    """The 15-digit IMEI for a 14-digit TAC+SNR (Luhn check digit)."""
    s = 0
    for i, c in enumerate(d14):
        k = int(c) * (2 if i % 2 else 1)
        s += k // 10 + k % 10
    return d14 + str((10 - s % 10) % 10)
