"""SMS texts: the GSM 03.38 default alphabet, UCS-2, and cutting a long text into concatenated parts.

    dc, parts = encode_text("Welcome to Shanghai")     # (data_coding, [payload, ...])
    count_parts(text)                                   # how many messages a text costs

Texts go out in the GSM 03.38 default alphabet (data_coding 0, one septet an octet, as SMSCs
take it over SMPP) when every character is in it or its extension table, else in UCS-2
(data_coding 8); a long text is cut into parts of 153 septets or 67 UCS-2 characters, each
with a concatenation UDH (8-bit reference).

Spec: GSM 03.38 / 3GPP TS 23.038 (alphabet), 3GPP TS 23.040 9.2.3.24.1 (concatenation IE).
"""
from .smpp_pdu import PduError     # a UDH that runs past its message is a bad deliver_sm

# 3GPP TS 23.038 6.2.1, in code order. 0x1B is the escape to the extension table, never a
# character of its own. 0x09 is shown as capital C-cedilla in the spec; the Unicode mapping
# (GSM0338.TXT) reads it as the small one, so both encode to it.
GSM7_BASIC = ("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
              "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
# 6.2.1.1, the extension table (escape, then this code).
GSM7_EXT = {"\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C, "~": 0x3D,
            "]": 0x3E, "|": 0x40, "€": 0x65}
ESC = 0x1B
_GSM7_ENC = {c: bytes((i,)) for i, c in enumerate(GSM7_BASIC) if i != ESC}
_GSM7_ENC.update({c: bytes((ESC, v)) for c, v in GSM7_EXT.items()})
_GSM7_ENC["ç"] = b"\x09"
_GSM7_DEC = {**{i: c for i, c in enumerate(GSM7_BASIC)}, **{0x100 | v: c for c, v in GSM7_EXT.items()}}

DC_DEFAULT, DC_IA5, DC_LATIN1, DC_BINARY, DC_UCS2 = 0, 1, 3, 4, 8
SINGLE = {DC_DEFAULT: 160, DC_UCS2: 140}        # septets / octets in one message
PART = {DC_DEFAULT: 153, DC_UCS2: 134}          # ... in one part after the 6-octet UDH
MAX_PARTS = 255


def gsm7_encode(text: str) -> bytes | None:
    """The text as GSM 03.38 septets, one an octet; None when a character is not in the alphabet."""
    try:
        return b"".join([_GSM7_ENC[c] for c in text])
    except KeyError:
        return None


def gsm7_decode(data: bytes) -> str:
    out, esc = [], False
    for b in data:
        if esc:
            # An unknown extension code shows as its basic character (23.038 6.2.1.1).
            out.append(_GSM7_DEC.get(0x100 | b, _GSM7_DEC.get(b & 0x7F)))
            esc = False
        elif b == ESC:
            esc = True
        else:
            out.append(_GSM7_DEC[b & 0x7F])
    return "".join(out)


def encode_text(text: str) -> tuple[int, list[bytes]]:
    """(data_coding, payloads): one payload when it fits one message, else the parts, each
    still without its UDH. Raises ValueError past 255 parts."""
    data = gsm7_encode(text)
    dc = DC_DEFAULT
    if data is None:
        dc, data = DC_UCS2, text.encode("utf-16-be")
    if len(data) <= SINGLE[dc]:
        return dc, [data]
    parts, pos, size = [], 0, PART[dc]
    while pos < len(data):
        end = min(pos + size, len(data))
        if end < len(data):
            # Never cut an escape from its code, nor a surrogate pair in two.
            if dc == DC_DEFAULT and data[end - 1] == ESC:
                end -= 1
            elif dc == DC_UCS2 and 0xD8 <= data[end - 2] <= 0xDB:
                end -= 2
        parts.append(data[pos:end])
        pos = end
    if len(parts) > MAX_PARTS:
        raise ValueError(f"text of {len(text)} characters needs {len(parts)} parts, at most {MAX_PARTS}")
    return dc, parts


def count_parts(text: str) -> int:
    return len(encode_text(text)[1])


def udh_concat(ref: int, total: int, seq: int) -> bytes:
    """UDH with the 8-bit reference concatenation IE (23.040 9.2.3.24.1)."""
    return bytes((5, 0x00, 3, ref & 0xFF, total, seq))


def split_udh(data: bytes) -> tuple[bytes, bytes]:
    """(UDH with its length octet, the rest) of a short_message whose UDHI is set."""
    if not data or data[0] + 1 > len(data):
        raise PduError(f"UDH length {data[0] if data else 'missing'} runs past the {len(data)}-octet message")
    return data[:data[0] + 1], data[data[0] + 1:]


def decode_text(data: bytes, data_coding: int) -> str:
    if data_coding == DC_UCS2:
        return data.decode("utf-16-be", "replace")
    if data_coding in (DC_LATIN1, DC_BINARY) or data_coding & 0xF0 == 0xF0 and data_coding & 0x04:
        return data.decode("latin-1")
    if data_coding == DC_IA5:
        return data.decode("ascii", "replace")
    return gsm7_decode(data)
