"""SMS: SMS-DELIVER and SMS-SUBMIT TPDUs (TS 23.040; pycrate for the ones with a user data
header), the long texts of multi-part SMS, the MMS notification push."""
from __future__ import annotations

from .digits import gsm7_pack, sms_addr
from .tcap_map import AC, encode_begin, map_arg
from .templates import _FIELD_SPECS, _mod

_SCTS = bytes.fromhex("32111420203000")   # 2023-11-14 02:02:03 +00, semi-octets swapped


def sms_deliver(oa: str, text: str, *, toa: int = 0x91) -> bytes:
    """SMS-DELIVER TPDU (TP-MTI 00, TP-MMS set) from a numeric originator."""
    ud, n = gsm7_pack(text)
    return b"\x04" + sms_addr(oa, toa) + b"\x00\x00" + _SCTS + bytes([n]) + ud


def sms_submit(da: str, text: str, *, mr: int = 0x21, toa: int = 0x91) -> bytes:
    """SMS-SUBMIT TPDU (TP-MTI 01, relative validity period) to a numeric destination."""
    ud, n = gsm7_pack(text)
    return bytes([0x11, mr]) + sms_addr(da, toa) + b"\x00\x00\xa7" + bytes([n]) + ud


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


def _encoded_string(text: str) -> bytes:
    """Encoded-string-value (OMA-TS-MMS-ENC 7.2.9): ASCII as a Text-string; anything else in
    UTF-8, with its charset (106) and a Quote before a first octet of 128 or more."""
    if text.isascii():
        return text.encode() + b"\x00"
    body = b"\xea" + (b"\x7f" if text.encode()[0] >= 0x80 else b"") + text.encode() + b"\x00"
    return (bytes([len(body)]) if len(body) < 31 else b"\x1f" + _uintvar(len(body))) + body


def mms_notification_pdu(txn: bytes, sender: bytes, subject: str, size: bytes, location: bytes,
                         wsp_tid: int = 1) -> bytes:
    """WSP Push (WAP-230 8.2.4.1) of an MMS m-notification-ind (OMA MMS encapsulation
    7.2.10): transaction id, version 1.2, From "+<digits>/TYPE=PLMN", Subject, class
    personal, Message-Size (long integer), expiry, Content-Location."""
    sender_v = b"\x80+" + sender + b"/TYPE=PLMN\x00"
    mms = (b"\x8c\x82" + b"\x98" + txn + b"\x00" + b"\x8d\x92" + b"\x89" + bytes([len(sender_v)]) + sender_v
           + b"\x96" + _encoded_string(subject) + b"\x8a\x80" + b"\x8e" + bytes([len(size)]) + size
           + b"\x88\x05\x81\x03\x09\x3a\x80" + b"\x83" + b"http://mmsc.monternet.com/" + location + b"\x00")
    headers = b"\xbe" + b"\xaf\x84"          # application/vnd.wap.mms-message; X-Wap-Application-Id mms.ua
    return bytes([wsp_tid, 0x06]) + _uintvar(len(headers)) + headers + mms


def _b_begin_mms(f, subject, wsp_tid):
    """mt-forwardSM v3 Begin: SMS-DELIVER, 8-bit data, ports 2948 <- 9200, the WAP push."""
    pdu = mms_notification_pdu(f["mms_txn"], f["mms_from"].encode(), subject, f["mms_size"],
                               f["mms_loc"], wsp_tid)
    tpdu = sms_deliver_udh(f["tp_oa"], pdu, dcs=0x04, udh=[(5, {"Dest": MMS_PORT, "Origin": WSP_PORT})])
    return encode_begin(44, map_arg(44, 3, imsi=f["imsi"], sc=f["sc"], ui=tpdu), ac=(AC["shortMsgMT-Relay"], 3),
                        otid=f["otid"])
