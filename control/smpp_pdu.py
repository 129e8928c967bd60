"""SMPP 3.4 PDUs: the command ids, statuses and TLV tags, a checked body reader, the submit_sm /
deliver_sm body, the bind body, addresses and delivery receipts.

    pdu = pack(SUBMIT_SM, seq, ShortMessage(destination_addr="8613800000000", short_message=b"hi").encode())
    length, command_id, status, seq = HEADER.unpack(pdu[:16])
    sm = ShortMessage.decode(body)    # PduError names the field and the body offset at fault

Delivery receipts are deliver_sm with esm_class 0x04: the receipted_message_id TLV, else the
"id:... stat:..." text (appendix B). control.smpp is the client session that speaks these.

Spec: SMPP v3.4 (issue 1.2, 1999).
"""
import re
import struct
from dataclasses import dataclass, field

# Command ids (section 5.1.2).
GENERIC_NACK = 0x80000000
BIND_RECEIVER = 0x00000001
BIND_TRANSMITTER = 0x00000002
QUERY_SM = 0x00000003
SUBMIT_SM = 0x00000004
DELIVER_SM = 0x00000005
UNBIND = 0x00000006
REPLACE_SM = 0x00000007
CANCEL_SM = 0x00000008
BIND_TRANSCEIVER = 0x00000009
OUTBIND = 0x0000000B
ENQUIRE_LINK = 0x00000015
SUBMIT_MULTI = 0x00000021
ALERT_NOTIFICATION = 0x00000102
DATA_SM = 0x00000103
RESP = 0x80000000                   # a response's command_id is its request's with this bit

BINDS = {"transceiver": BIND_TRANSCEIVER, "transmitter": BIND_TRANSMITTER}

# Command status (section 5.1.3).
STATUS = {
    0x00: "ESME_ROK", 0x01: "ESME_RINVMSGLEN", 0x02: "ESME_RINVCMDLEN", 0x03: "ESME_RINVCMDID",
    0x04: "ESME_RINVBNDSTS", 0x05: "ESME_RALYBND", 0x06: "ESME_RINVPRTFLG",
    0x07: "ESME_RINVREGDLVFLG", 0x08: "ESME_RSYSERR", 0x0A: "ESME_RINVSRCADR",
    0x0B: "ESME_RINVDSTADR", 0x0C: "ESME_RINVMSGID", 0x0D: "ESME_RBINDFAIL",
    0x0E: "ESME_RINVPASWD", 0x0F: "ESME_RINVSYSID", 0x11: "ESME_RCANCELFAIL",
    0x13: "ESME_RREPLACEFAIL", 0x14: "ESME_RMSGQFUL", 0x15: "ESME_RINVSERTYP",
    0x33: "ESME_RINVNUMDESTS", 0x34: "ESME_RINVDLNAME", 0x40: "ESME_RINVDESTFLAG",
    0x42: "ESME_RINVSUBREP", 0x43: "ESME_RINVESMCLASS", 0x44: "ESME_RCNTSUBDL",
    0x45: "ESME_RSUBMITFAIL", 0x48: "ESME_RINVSRCTON", 0x49: "ESME_RINVSRCNPI",
    0x50: "ESME_RINVDSTTON", 0x51: "ESME_RINVDSTNPI", 0x53: "ESME_RINVSYSTYP",
    0x54: "ESME_RINVREPFLAG", 0x55: "ESME_RINVNUMMSGS", 0x58: "ESME_RTHROTTLED",
    0x61: "ESME_RINVSCHED", 0x62: "ESME_RINVEXPIRY", 0x63: "ESME_RINVDFTMSGID",
    0x64: "ESME_RX_T_APPN", 0x65: "ESME_RX_P_APPN", 0x66: "ESME_RX_R_APPN",
    0x67: "ESME_RQUERYFAIL", 0xC0: "ESME_RINVOPTPARSTREAM", 0xC1: "ESME_ROPTPARNOTALLWD",
    0xC2: "ESME_RINVPARLEN", 0xC3: "ESME_RMISSINGOPTPARAM", 0xC4: "ESME_RINVOPTPARAMVAL",
    0xFE: "ESME_RDELIVERYFAILURE", 0xFF: "ESME_RUNKNOWNERR",
}
ESME_ROK = 0x00
ESME_RINVCMDLEN = 0x02
ESME_RINVCMDID = 0x03
ESME_RMSGQFUL = 0x14
ESME_RTHROTTLED = 0x58
ESME_RX_P_APPN = 0x65
SLOW_DOWN = (ESME_RTHROTTLED, ESME_RMSGQFUL)

# Optional parameter tags (section 5.3.2).
TLV_RECEIPTED_MESSAGE_ID = 0x001E
TLV_SC_INTERFACE_VERSION = 0x0210
TLV_MESSAGE_PAYLOAD = 0x0424
TLV_MESSAGE_STATE = 0x0427

INTERFACE_VERSION = 0x34
HEADER = struct.Struct(">IIII")     # command_length, command_id, command_status, sequence_number
MAX_PDU = 65536                     # larger is a broken stream, not a PDU
MAX_SM = 254                        # short_message octets


class PduError(ValueError):
    """A PDU that does not follow the spec; says which field and at which body offset."""


def status_name(status: int) -> str:
    return STATUS.get(status, f"status 0x{status:08x}")


def pack(command_id: int, seq: int, body: bytes = b"", status: int = 0) -> bytes:
    return HEADER.pack(16 + len(body), command_id, status, seq) + body


def c_octets(value: str | bytes, size: int, name: str) -> bytes:
    """A C-Octet String of at most `size` octets with its NUL (section 3.1)."""
    b = value.encode("latin-1") if isinstance(value, str) else value
    if len(b) >= size or b"\0" in b:
        raise PduError(f"{name}: {b!r} is longer than {size - 1} octets or holds a NUL")
    return b + b"\0"


class Reader:
    """Reads a PDU body field by field; every read is checked against what remains."""
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes):
        self.buf = buf
        self.pos = 0

    def u8(self, name: str) -> int:
        if self.pos >= len(self.buf):
            raise PduError(f"{name}: body ends at offset {self.pos}")
        self.pos += 1
        return self.buf[self.pos - 1]

    def c_string(self, size: int, name: str) -> str:
        end = self.buf.find(b"\0", self.pos, self.pos + size)
        if end < 0:
            raise PduError(f"{name} at offset {self.pos}: no NUL within {size} octets")
        s = self.buf[self.pos:end].decode("latin-1")
        self.pos = end + 1
        return s

    def octets(self, n: int, name: str) -> bytes:
        if self.pos + n > len(self.buf):
            raise PduError(f"{name} at offset {self.pos}: {n} octets wanted, {len(self.buf) - self.pos} remain")
        self.pos += n
        return self.buf[self.pos - n:self.pos]

    def tlvs(self) -> dict:
        out = {}
        while self.pos < len(self.buf):
            if self.pos + 4 > len(self.buf):
                raise PduError(f"TLV at offset {self.pos}: {len(self.buf) - self.pos} octets, a header needs 4")
            tag, n = struct.unpack_from(">HH", self.buf, self.pos)
            self.pos += 4
            out[tag] = self.octets(n, f"TLV 0x{tag:04x} value")
        return out


def encode_tlvs(tlvs: dict) -> bytes:
    return b"".join(struct.pack(">HH", tag, len(v)) + v for tag, v in tlvs.items())


@dataclass
class ShortMessage:
    """The body of submit_sm and deliver_sm (sections 4.4.1 and 4.6.1: the same fields)."""
    source_addr: str = ""
    destination_addr: str = ""
    short_message: bytes = b""
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    tlvs: dict = field(default_factory=dict)

    def encode(self) -> bytes:
        if len(self.short_message) > MAX_SM:
            raise PduError(f"short_message: {len(self.short_message)} octets, at most {MAX_SM}")
        return b"".join((
            c_octets(self.service_type, 6, "service_type"),
            bytes((self.source_addr_ton, self.source_addr_npi)),
            c_octets(self.source_addr, 21, "source_addr"),
            bytes((self.dest_addr_ton, self.dest_addr_npi)),
            c_octets(self.destination_addr, 21, "destination_addr"),
            bytes((self.esm_class, self.protocol_id, self.priority_flag)),
            c_octets(self.schedule_delivery_time, 17, "schedule_delivery_time"),
            c_octets(self.validity_period, 17, "validity_period"),
            bytes((self.registered_delivery, self.replace_if_present_flag, self.data_coding,
                   self.sm_default_msg_id, len(self.short_message))),
            self.short_message,
            encode_tlvs(self.tlvs),
        ))

    @classmethod
    def decode(cls, body: bytes) -> "ShortMessage":
        r = Reader(body)
        m = cls()
        m.service_type = r.c_string(6, "service_type")
        m.source_addr_ton, m.source_addr_npi = r.u8("source_addr_ton"), r.u8("source_addr_npi")
        m.source_addr = r.c_string(21, "source_addr")
        m.dest_addr_ton, m.dest_addr_npi = r.u8("dest_addr_ton"), r.u8("dest_addr_npi")
        m.destination_addr = r.c_string(21, "destination_addr")
        m.esm_class, m.protocol_id, m.priority_flag = r.u8("esm_class"), r.u8("protocol_id"), r.u8("priority_flag")
        m.schedule_delivery_time = r.c_string(17, "schedule_delivery_time")
        m.validity_period = r.c_string(17, "validity_period")
        m.registered_delivery = r.u8("registered_delivery")
        m.replace_if_present_flag = r.u8("replace_if_present_flag")
        m.data_coding = r.u8("data_coding")
        m.sm_default_msg_id = r.u8("sm_default_msg_id")
        m.short_message = r.octets(r.u8("sm_length"), "short_message")
        m.tlvs = r.tlvs()
        return m


def bind_body(system_id: str, password: str, system_type: str = "", addr_ton: int = 0,
              addr_npi: int = 0, address_range: str = "") -> bytes:
    """bind_transmitter / bind_receiver / bind_transceiver (section 4.1)."""
    return b"".join((c_octets(system_id, 16, "system_id"), c_octets(password, 9, "password"),
                     c_octets(system_type, 13, "system_type"),
                     bytes((INTERFACE_VERSION, addr_ton, addr_npi)),
                     c_octets(address_range, 41, "address_range")))


def resp_id(body: bytes, name: str) -> str:
    """The C-string that leads a bind or submit_sm response (empty when the body is: an error
    response may carry none, section 4.4.2)."""
    return Reader(body).c_string(66, name) if body else ""


# esm_class (5.2.12) and source_addr_ton (5.2.5).
ESM_UDHI = 0x40
ESM_RECEIPT = 0x04                  # esm_class message type: SMSC delivery receipt (bits 5-2 = 0001)
ESM_TYPE = 0x3C
TON_NATIONAL = 2                    # source_addr_ton of a number in national format (5.2.5)


def address_type(addr: str) -> tuple[int, int, str]:
    """(TON, NPI, address) from the address's form: alphanumeric (TON 5, NPI 0), '+' or '00'
    then digits international (1, 1, digits only), digits of 8 or fewer a short code (3, 0),
    longer digits international (1, 1: MSISDNs are kept in international format)."""
    if not addr:
        return 0, 0, ""
    if addr.startswith("+") and addr[1:].isdigit():
        return 1, 1, addr[1:]
    if addr.isdigit() and addr.isascii():
        if addr.startswith("00"):
            return 1, 1, addr[2:]
        return (3, 0, addr) if len(addr) <= 8 else (1, 1, addr)
    return 5, 0, addr


# --- delivery receipts -------------------------------------------------------------------

RECEIPT_ID = re.compile(r"\bid:(\S+)", re.I)
RECEIPT_STAT = re.compile(r"\bstat:(\S+)", re.I)
RECEIPT_ERR = re.compile(r"\berr:(\S+)", re.I)
# message_state TLV values (5.3.2.35) and the receipt text's stat (appendix B).
MESSAGE_STATE = {1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIV",
                 6: "ACCEPTD", 7: "UNKNOWN", 8: "REJECTD"}
FINAL = {"DELIVRD": "delivered", "EXPIRED": "failed", "DELETED": "failed", "UNDELIV": "failed",
         "UNKNOWN": "failed", "REJECTD": "failed"}


def parse_receipt(sm: ShortMessage) -> tuple[str, str, str] | None:
    """(smsc message id, stat, err) of a delivery receipt, or None when it names no message."""
    text = sm.short_message.decode("latin-1")
    mid = sm.tlvs.get(TLV_RECEIPTED_MESSAGE_ID)
    mid = mid.rstrip(b"\0").decode("latin-1") if mid else None
    if not mid:
        m = RECEIPT_ID.search(text)
        if not m:
            return None
        mid = m.group(1)
    state = sm.tlvs.get(TLV_MESSAGE_STATE)
    stat = MESSAGE_STATE.get(state[0], "UNKNOWN") if state else None
    if stat is None:
        m = RECEIPT_STAT.search(text)
        stat = m.group(1).upper() if m else "UNKNOWN"
    m = RECEIPT_ERR.search(text)
    return mid, stat, m.group(1) if m else ""
