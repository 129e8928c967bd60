"""SMS and MMS notifications: SMS-DELIVER / SMS-SUBMIT by pycrate_mobile.TS23040_SMS inside MAP
mt-/mo-forwardSM (TCAP_MAPv2v3); the WAP push / MMS m-notification-ind bytes by hand from
WAP-230 and OMA-TS-MMS-ENC; decoded by probe._decode, fields compared; and every message (and
every TPDU inside a whole MAP invoke) cut at every length.
"""
import pytest

pytest.importorskip("pycrate_asn1dir")
pytest.importorskip("pycrate_mobile")
pytest.importorskip("touchpoint.probe._decode")

from hypothesis import assume, given
from hypothesis import strategies as st
from pycrate_mobile import TS23040_SMS as SMS

from touchpoint.probe.decode import decode_bytes
from touchpoint.probe.format import to_dicts
from touchpoint.probe.record import subject_hash
from tests import packets as P
from tests.pycrate_messages import (
    FEW, MSC, SETTINGS, SMSC, STRICT, aare, aarq, addr, assert_prefixes, ber_style, check, decode, digits,
    frame, invoke, letters, map_tcap, otids, styles, tbcd, u16, udt_frame, want_of,
)

# ---------------------------------------------------------------------------
# 3. SMS TPDUs in MAP forwardSM

DCS_VALUES = [0x00, 0x01, 0x04, 0x08, 0x10, 0x11, 0x12, 0x14, 0x16, 0x18, 0x19, 0xF0, 0xF1, 0xF4, 0xF6]

udh_ies = st.fixed_dictionaries({
    "concat": st.one_of(st.none(), st.tuples(st.sampled_from([0, 8]), u16, st.integers(1, 255)).flatmap(
        lambda t: st.tuples(st.just(t[0]), st.just(t[1] & (0xFF if t[0] == 0 else 0xFFFF)), st.just(t[2]),
                            st.integers(1, t[2])))),
    "port": st.one_of(st.none(), st.tuples(st.just(5), u16, u16), st.tuples(st.just(4), st.integers(0, 255),
                                                                             st.integers(0, 255))),
    "other": st.lists(st.tuples(st.sampled_from([0x0C, 0x24, 0x25, 0x70]), st.binary(min_size=1, max_size=3)),
                      max_size=2),
}).flatmap(lambda u: st.permutations(
    ([("concat", u["concat"])] if u["concat"] else []) + ([("port", u["port"])] if u["port"] else []) +
    [("other", o) for o in u["other"]]).map(lambda order: (u, order)))

tp_addresses = st.one_of(
    st.tuples(st.just("num"), digits(1, 16), st.sampled_from([0, 1, 2])),
    st.tuples(st.just("alnum"), st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=11),
              st.just(5)))

smss = st.fixed_dictionaries({
    "mti": st.sampled_from(["deliver", "submit"]),
    "map": st.sampled_from([3, 2]),
    "addr": tp_addresses,
    "pid": st.integers(0, 255),
    "dcs": st.sampled_from(DCS_VALUES),
    "udh": st.one_of(st.none(), udh_ies),
    "vpf": st.integers(0, 3),
    "vp": st.integers(0, 255),
    "mr": st.integers(0, 255),
    "text": letters,
    "imsi": digits(14, 15),
    "msisdn": digits(8, 15),
    "sc": digits(5, 12),
    "more": st.booleans(),
    "bits": st.integers(0, 15),                        # TP-RP, TP-SRI/SRR, TP-LP/RD, TP-MMS: not read
})


def udh_value(order):
    out = []
    for kind, v in order:
        if kind == "concat":
            iei, ref, parts, part = v
            out.append({"T": iei, "V": {"MsgRef": ref, "MsgParts": parts, "MsgNum": part}})
        elif kind == "port":
            iei, dst, src = v
            out.append({"T": iei, "V": {"Dest": dst, "Origin": src}})
        else:
            out.append({"T": v[0], "V": v[1]})
    return out


def tpdu(f, ud=None):
    """The TPDU by pycrate; ud (bytes) replaces the text when given."""
    m = SMS.SMS_DELIVER() if f["mti"] == "deliver" else SMS.SMS_SUBMIT()
    a = m["TP_OA" if f["mti"] == "deliver" else "TP_DA"]
    kind, value, ton = f["addr"]
    a["Type"].set_val(ton)
    if kind == "alnum":
        a["NumberingPlan"].set_val(0)
    a["Num"].encode(value)
    names = ("TP_RP", "TP_SRI", "TP_LP", "TP_MMS") if f["mti"] == "deliver" else ("TP_RP", "TP_SRR", "TP_RD")
    for i, name in enumerate(names):
        m[name].set_val((f.get("bits", 0) >> i) & 1)
    m["TP_PID"].from_bytes(bytes([f["pid"]]))
    m["TP_DCS"].from_bytes(bytes([f["dcs"]]))
    if f["mti"] == "submit":
        m["TP_MR"].set_val(f["mr"])
        m["TP_VPF"].set_val(f["vpf"])
        if f["vpf"] == 2:                               # relative; absolute and enhanced: 7 octets
            m["TP_VP"].set_val(f["vp"])
    if f["udh"]:
        m["TP_UDHI"].set_val(1)
        m["TP_UD"]["UDH"]["UDH"].set_val(udh_value(f["udh"][1]))
    udv = m["TP_UD"]["UD"]
    if ud is not None:
        udv.set_val(ud)
    elif udv.get_dcs() == SMS.DCS_8B:
        udv.set_val(f["text"].encode())
    else:
        udv.set_val(f["text"])
    return m.to_bytes()


def sms_expect(f):
    kind, value, _ton = f["addr"]
    w = {"peer": value[:16] if kind == "num" else None, "sms_pid": f["pid"], "sms_dcs": f["dcs"]}
    for k, v in (f["udh"][1] if f["udh"] else ()):
        if k == "concat":
            w["parts"], w["part"] = v[2], v[3]
        elif k == "port":
            w["app_port"] = v[1]
    return w


def forward_sm(f, ui):
    """(op, ac, arg) of the MAP invoke carrying TPDU ui."""
    da = ("imsi", tbcd(f["imsi"])) if f["mti"] == "deliver" else ("serviceCentreAddressDA", addr(f["sc"]))
    oa = ("serviceCentreAddressOA", addr(f["sc"])) if f["mti"] == "deliver" else ("msisdn", addr(f["msisdn"]))
    val = {"sm-RP-DA": da, "sm-RP-OA": oa, "sm-RP-UI": ui}
    if f["map"] == 2:
        if f["more"] and f["mti"] == "deliver":
            val["moreMessagesToSend"] = 0
        return 46, (0, 4, 0, 0, 1, 0, 21, 2), (("MAPv2-SM-DataTypes", "ForwardSM-Arg"), val)
    if f["mti"] == "deliver":
        if f["more"]:
            val["moreMessagesToSend"] = 0
        return 44, (0, 4, 0, 0, 1, 0, 25, 3), (("MAP-SM-DataTypes", "MT-ForwardSM-Arg"), val)
    return 46, (0, 4, 0, 0, 1, 0, 21, 3), (("MAP-SM-DataTypes", "MO-ForwardSM-Arg"), val)


def sms_begin(f, ui, otid, style="definite"):
    op, ac, arg = forward_sm(f, ui)
    with ber_style(style):
        return op, map_tcap("begin", otid=otid, dialogue=aarq(ac), comps=[invoke(1, op, arg)])


def sms_parties(f):
    return (SMSC, MSC) if f["mti"] == "deliver" else (MSC, SMSC)


def sms_want(f, op, ui_fields):
    deliver = f["mti"] == "deliver"
    return want_of(proto="map", op=op, kind="mt_sms" if deliver else "mo_sms", flags=["request"],
                   imsi=f["imsi"] if deliver else None, msisdn=None if deliver else f["msisdn"],
                   node=MSC[0], version=f["map"], **ui_fields)


def assert_no_text(rec_array, rec_dicts, *secrets):
    raw = rec_array.tobytes()
    for s in secrets:
        sb = s.encode() if isinstance(s, str) else s
        assert sb not in raw, (s, rec_dicts)
        assert str(s) not in repr(rec_dicts), (s, rec_dicts)


@SETTINGS
@given(f=smss, otid=otids, style=styles)
def test_sms_tpdu_per_message(f, otid, style):
    ui = tpdu(f)
    op, b = sms_begin(f, ui, otid, style)
    src, dst = sms_parties(f)
    data = P.pcap([frame(b, src, dst)])
    arr = decode_bytes(data, messages=True)
    recs = to_dicts(arr)
    assert len(recs) == 1, (recs, b.hex())
    check(recs[0], sms_want(f, op, sms_expect(f)), where=f"tpdu {ui.hex()}\nbegin {b.hex()}")
    assert_no_text(arr, recs, f["text"])


@SETTINGS
@given(f=smss, otid=otids)
def test_sms_tpdu_dialogue(f, otid):
    """Dialogue mode (the default): Begin(forwardSM) + End(result): one record with the SMS fields."""
    ui = tpdu(f)
    op, b = sms_begin(f, ui, otid)
    ac = forward_sm(f, ui)[1]
    e = map_tcap("end", dtid=otid, dialogue=aare(ac),
                 comps=[("basicROS", ("returnResult", {"invokeId": ("present", 1)}))])
    src, dst = sms_parties(f)
    recs, stats = decode([frame(b, src, dst), frame(e, dst, src)], messages=False)
    assert len(recs) == 1, (recs, stats.anomalies)
    w = sms_want(f, op, sms_expect(f))
    w["flags"] = sorted(["request", "response", "correlated"])
    recs[0]["flags"] = sorted(recs[0]["flags"])
    check(recs[0], w, where=f"tpdu {ui.hex()}\nbegin {b.hex()}")


# --- MMS notification (WAP-230 WSP push, OMA-TS-MMS-ENC m-notification-ind), by hand

def uintvar(n):
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def value_length(n):
    return bytes([n]) if n < 31 else b"\x1f" + uintvar(n)


def text_string(s: bytes):
    return (b"\x7f" if s[:1] and s[0] >= 0x80 else b"") + s + b"\x00"


def encoded_string(s: bytes, charset):
    """Encoded-string-value: Text-string, or Value-length Char-set Text-string (a short-integer
    charset, or a long-integer one: 1000 UCS-2, its text 16-bit units ended by a 0 unit)."""
    if charset is None:
        return text_string(s)
    if charset == 1000:
        body = b"\x02\x03\xe8" + s.decode().encode("utf-16-be") + b"\x00\x00"
    else:
        if charset == 4 and not all(ord(c) < 256 for c in s.decode()):
            charset = 106                               # not a Latin-1 text
        body = bytes([0x80 | charset]) + text_string(s.decode().encode("latin-1") if charset == 4 else s)
    return value_length(len(body)) + body


def long_integer(v):
    b = v.to_bytes(max(1, (v.bit_length() + 7) // 8), "big")
    return bytes([len(b)]) + b


mmss = st.fixed_dictionaries({
    "from": digits(3, 15),
    "from_cs": st.sampled_from([None, 106, 3]),       # utf-8, us-ascii
    # a subject, forwarded or not: the record keeps its hash (probe.record.subject_hash), never its text
    "subject": st.one_of(st.none(), st.tuples(
        st.sampled_from(["", "Fwd: ", "FW:", "fwd:FWD: ", "转发：", " 转发:Fw： ", "Re: ", "FWx: "]),
        st.one_of(letters, st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12)),
        st.sampled_from(["", " ", "\u3000"])).map("".join)),
    "subj_cs": st.sampled_from([None, 106, 4, 1000]),
    "size": st.integers(1, 2 ** 32 - 1),
    "url": letters,
    "tid": st.text("0123456789ABCDEF", min_size=1, max_size=12),
    "expiry": st.one_of(st.none(), st.integers(1, 2 ** 24)),
    "class": st.sampled_from([None, 0x80, 0x81, 0x82, 0x83, "advert"]),
    "appid": st.booleans(),
    "push_tid": st.integers(0, 255),
    "oa": tp_addresses,
    "imsi": digits(14, 15),
    "sc": digits(5, 12),
    "order": st.permutations(range(6)),
    "map": st.sampled_from([3, 2]),
})


def mms_notification(m, from_length_quote=False):
    sender = b"+" + m["from"].encode() + b"/TYPE=PLMN"
    frm = b"\x80" + encoded_string(sender, m["from_cs"])
    from_len = (b"\x1f" + uintvar(len(frm))) if from_length_quote else value_length(len(frm))
    heads = [b"\x89" + from_len + frm,
             b"\x8e" + long_integer(m["size"]),
             b"\x83" + text_string(b"http://mmsc.example.net/" + m["url"].encode()),
             (b"\x96" + encoded_string(m["subject"].encode(), m["subj_cs"])) if m["subject"] is not None else b"",
             (b"\x8a" + (bytes([m["class"]]) if isinstance(m["class"], int) else text_string(m["class"].encode())))
             if m["class"] else b"",
             (b"\x88" + value_length(1 + len(long_integer(m["expiry"]))) + b"\x81" + long_integer(m["expiry"]))
             if m["expiry"] else b""]
    return (b"\x8c\x82" + b"\x98" + text_string(m["tid"].encode()) + b"\x8d\x92" +
            b"".join(heads[i] for i in m["order"]))


def wap_push(m, from_length_quote=False):
    headers = b"\xbe" + (b"\xaf\x84" if m["appid"] else b"")
    return bytes([m["push_tid"], 0x06]) + uintvar(len(headers)) + headers + mms_notification(m, from_length_quote)


def mms_deliver(m):
    return {"mti": "deliver", "map": m["map"], "addr": m["oa"], "pid": 0, "dcs": 0x04,
            "udh": ({}, [("port", (5, 2948, 9200))]), "vpf": 0, "vp": 0, "mr": 0, "text": "",
            "imsi": m["imsi"], "msisdn": "", "sc": m["sc"], "more": False}


@SETTINGS
@given(m=mmss, otid=otids)
def test_mms_notification(m, otid):
    f = mms_deliver(m)
    ui = tpdu(f, ud=wap_push(m))
    assume(len(ui) <= 200)                     # sm-RP-UI: one TPDU of 200 octets at most
    op, b = sms_begin(f, ui, otid)
    arr = decode_bytes(P.pcap([frame(b, SMSC, MSC)]), messages=True)
    recs = to_dicts(arr)
    assert len(recs) == 1, (recs, b.hex())
    w = sms_want(f, op, {"sms_dcs": 4, "app_port": 2948, "peer": m["from"], "octets": m["size"], **mms_want(m)})
    w["kind"] = "mms_notification"
    check(recs[0], w, where=f"tpdu {ui.hex()}\nbegin {b.hex()}")
    assert_no_text(arr, recs, "mmsc.example.net", m["url"], *([m["subject"]] if len(m["subject"] or "") > 3 else []))


def mms_want(m) -> dict:
    """The subject's hash and the class the record keeps of a notification."""
    w = {}
    if m["subject"] is not None and subject_hash(m["subject"]):
        w["subject_hash"] = f"{subject_hash(m['subject']):016x}"
    if m["class"]:
        w["mms_class"] = {0x80: "personal", 0x81: "advertisement", 0x82: "informational", 0x83: "auto"}.get(
            m["class"], "other")
    return w


def test_forwards_hash_as_their_seed():
    """What a forward adds before a subject, and the white space around it, is not in its hash;
    the rest is, character for character."""
    seed = subject_hash("周末特惠：全场五折")
    for fwd in ("Fwd: 周末特惠：全场五折", "FW:周末特惠：全场五折 ", "转发：Fwd: 周末特惠：全场五折",
                "\u3000fw：周末特惠：全场五折"):
        assert subject_hash(fwd) == seed, fwd
    for other in ("周末特惠：全场五折!", "Re: 周末特惠：全场五折", "Fwdx: 周末特惠：全场五折", "周末 特惠：全场五折"):
        assert subject_hash(other) != seed, other
    assert subject_hash("") == subject_hash(" Fwd: ") == 0 and subject_hash("x" * 1025) == 0


@FEW
@given(m=mmss, otid=otids)
def test_mms_notification_from_length_quote(m, otid):
    """Value-length is Short-length | Length-quote Length (WAP-230 8.4.2.2): a From whose
    value length is written 0x1F <uintvar> is the same From (Wireshark reads it)."""
    f = mms_deliver(m)
    ui = tpdu(f, ud=wap_push(m, from_length_quote=True))
    assume(len(ui) <= 200)                     # sm-RP-UI: one TPDU of 200 octets at most
    op, b = sms_begin(f, ui, otid)
    recs, _ = decode([frame(b, SMSC, MSC)])
    assert len(recs) == 1, (recs, b.hex())
    w = sms_want(f, op, {"sms_dcs": 4, "app_port": 2948, "peer": m["from"], "octets": m["size"], **mms_want(m)})
    w["kind"] = "mms_notification"
    check(recs[0], w, where=f"tpdu {ui.hex()}\nbegin {b.hex()}")


@FEW
@given(f=smss, otid=otids)
def test_truncated_sms_tcap(f, otid):
    ui = tpdu(f)
    op, b = sms_begin(f, ui, otid)
    assume(len(b) <= 255)
    src, dst = sms_parties(f)
    full, _ = decode([udt_frame(src, dst)(b)])
    assert len(full) == 1
    assert_prefixes(b, udt_frame(src, dst), 1, full)


@FEW
@given(f=smss, otid=otids)
def test_truncated_tpdu_in_whole_map(f, otid):
    """The TPDU cut at every length inside a well-formed MAP invoke: the record carries only
    what the whole TPDU said (the cut TPDU is not a MAP/TCAP anomaly)."""
    ui = tpdu(f)
    src, dst = sms_parties(f)
    full, _ = decode([udt_frame(src, dst)(sms_begin(f, ui, otid)[1])])
    for cut in range(1, len(ui)):                          # sm-RP-UI is SIZE (1..200)
        op, b = sms_begin(f, ui[:cut], otid)
        recs, stats = decode([udt_frame(src, dst)(b)])
        assert len(recs) == 1, (cut, ui.hex(), stats.anomalies)
        for k in STRICT:
            if k in recs[0]:
                assert recs[0][k] == full[0].get(k), (k, cut, ui.hex(), recs[0], full[0])


@FEW
@given(m=mmss, otid=otids)
def test_truncated_mms(m, otid):
    f = dict(mms_deliver(m), map=3, addr=("num", "10658000", 1))
    ui = tpdu(f, ud=wap_push(m))
    assume(len(ui) <= 200)                     # sm-RP-UI: one TPDU of 200 octets at most
    full, _ = decode([udt_frame(SMSC, MSC)(sms_begin(f, ui, otid)[1])])
    assert full[0]["kind"] == "mms_notification"
    for cut in range(1, len(ui)):
        recs, _ = decode([udt_frame(SMSC, MSC)(sms_begin(f, ui[:cut], otid)[1])])
        assert len(recs) == 1
        for k in STRICT:
            if k in recs[0]:
                ok = {full[0].get(k)} | ({"10658000"} if k == "peer" else set())
                assert recs[0][k] in ok, (k, cut, ui.hex(), recs[0], full[0])
