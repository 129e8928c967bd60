"""CAP InitialDP, ISUP calls, SMS TPDUs and MMS notifications, built from the specs."""
from touchpoint.probe.decode import Anomaly
from tests import packets as P
from tests.test_layers import decode, eth_m3ua

IMSI, CALLING, CALLED = "460001234567890", "8613812345678", "10086"


def isup_number(digits, nai=4, calling=False):
    odd = len(digits) % 2
    return bytes([odd << 7 | nai, 0x11 if calling else 0x10]) + P.tbcd(digits)[: (len(digits) + 1) // 2]


def high(tag_num, content, constructed=False):
    return bytes([0xBF if constructed else 0x9F, tag_num]) + bytes([len(content)]) + content


def idp(event=2):
    cgi = bytes([0x64, 0xF0, 0x00, 0x12, 0x34, 0x56, 0x78])          # 460-00, LAC 0x1234, CI 0x5678
    location = P.ber(0xA3, P.ber(0x80, cgi)) + P.ber(0x81, P.address("8613900001"))
    return P.ber(0x30, P.ber(0x80, b"\x00\x00\x00\x2a") + P.ber(0x82, isup_number(CALLED, 3)) +
                 P.ber(0x83, isup_number(CALLING, calling=True)) + P.ber(0x9C, bytes([event])) +
                 high(50, P.tbcd(IMSI)) + high(52, location, constructed=True) +
                 high(55, P.address("8613900002")) + high(56, b"\x81" + P.tbcd(CALLED)))


def cap_begin(event=2, ac=True):
    dlg = P.ber(0x6B, P.ber(0x28, P.ber(0x06, bytes([0, 0x11, 0x86, 0x05, 1, 1, 1])) + P.ber(
        0xA0, P.ber(0x60, P.ber(0xA1, P.ber(0x06, bytes([4, 0, 0, 1, 0, 50, 1]))))))) if ac else b""
    return P.tcap("begin", P.invoke(1, 0, idp(event)), otid=7, dlg=dlg)


def test_cap_initial_dp_by_context_and_by_ssn():
    for t, ssn in ((cap_begin(), 147), (cap_begin(ac=False), 146)):
        recs, st = decode([eth_m3ua(t, calling_ssn=ssn, called_ssn=ssn)], messages=True)
        assert len(recs) == 1, st.anomalies
        r = recs[0]
        assert (r["proto"], r["kind"], r["op"], r["service_key"], r["event"]) == ("cap", "call_attempt", 0, 42, 2)
        assert (r["imsi"], r["msisdn"], r["peer"], r["node"]) == (IMSI, CALLING, CALLED, "8613900002")
        assert (r["mcc"], r["mnc"], r["lac_tac"], r["cell"], r["loc_type"]) == ("460", "00", 0x1234, 0x5678, "cgi")


def test_cap_terminating_call_serves_the_called_party():
    recs, _ = decode([eth_m3ua(cap_begin(event=12), calling_ssn=146, called_ssn=146)], messages=True)
    assert (recs[0]["msisdn"], recs[0]["peer"]) == (CALLED, CALLING)


def test_cap_ssn_option():
    t = cap_begin(ac=False)
    recs, st = decode([eth_m3ua(t, calling_ssn=200, called_ssn=200)], messages=True)
    assert recs == [] and st.anomalies[Anomaly.TCAP_OTHER_USER] == 1
    recs, _ = decode([eth_m3ua(t, calling_ssn=200, called_ssn=200)], messages=True, cap_ssns=(146, 200))
    assert [r["proto"] for r in recs] == ["cap"]


def isup(cic, mt, body):
    return P.mtp3(bytes([cic & 0xFF, cic >> 8, mt]) + body, opc=10, dpc=20, si=5)


def iam(cic):
    called = isup_number(CALLED, 3)
    calling = isup_number(CALLING, calling=True)
    fixed = b"\x00\x20\x01\x0a\x00"
    # pointers: called party (2 on from its octet), optional part (after the called number)
    return isup(cic, 0x01, fixed + bytes([2, 2 + len(called)]) + bytes([len(called)]) + called +
                bytes([0x0A, len(calling)]) + calling + b"\x00")


def rel(cic, cause):
    return isup(cic, 0x0C, bytes([2, 0, 2, 0x80, 0x80 | cause]))


def test_isup_call_folds_answer_and_release():
    frames = [iam(5), isup(5, 0x06, b"\x00\x00\x00"), isup(5, 0x09, b"\x00"), rel(5, 16), isup(5, 0x10, b"\x00"),
              iam(6), rel(6, 17)]
    recs, st = decode(frames, 141)
    assert [(r["kind"], r["tid"], r["frame"]) for r in recs] == [
        ("call_attempt", 5, 1), ("call_end", 5, 4), ("call_attempt", 6, 6), ("call_end", 6, 7)]
    setup, a, _, b = recs
    for r in setup, a:
        assert (r["proto"], r["msisdn"], r["peer"], r["nai"]) == ("isup", CALLING, CALLED, 3)
    assert setup["flags"] == ["request"] and "cause" not in setup and "duration_ms" not in setup
    assert set(a["flags"]) == {"request", "response", "correlated", "answered"} and a["cause"] == 16
    assert a["duration_ms"] == 1000                    # ANM to REL, a frame a second
    assert "error" in b["flags"] and b["cause"] == 17 and "response" not in b["flags"] and "duration_ms" not in b
    msgs, _ = decode(frames, 141, messages=True)
    assert [m["op"] for m in msgs] == [1, 6, 9, 12, 16, 1, 12]


def test_an_answered_call_outlives_the_dialogue_timeout_up_to_the_call_timeout():
    """A frame a second: call 5 answered at 1 s, released at 3 s (2 s in silence, longer than the
    dialogue time-out); call 7 never answered, still open when the capture ends."""
    frames = [iam(5), isup(5, 0x09, b"\x00"), iam(7), rel(5, 16)]
    ends = lambda recs: {r["tid"]: r for r in recs if r["kind"] == "call_end"}
    recs, st = decode(frames, 141, dialogue_timeout=1.5, call_timeout=3)
    five, seven = ends(recs)[5], ends(recs)[7]
    assert five["duration_ms"] == 2000 and "timeout" not in five["flags"] and "answered" in five["flags"]
    assert "timeout" in seven["flags"] and st.anomalies[Anomaly.ISUP_TIMEOUT] == 1
    recs, st = decode(frames, 141, dialogue_timeout=1.5, call_timeout=1.5)         # too long a call
    five = ends(recs)[5]
    assert "timeout" in five["flags"] and "answered" in five["flags"] and "duration_ms" not in five
    assert st.anomalies[Anomaly.ISUP_TIMEOUT] == 2 and st.anomalies[Anomaly.ISUP_UNMATCHED] == 1


def test_isup_over_m3ua_and_bicc_counted():
    body = iam(9)[5:]                                  # the ISUP message without SIO and label
    recs, _ = decode([P.ether(P.ipv4(P.sctp(P.data_chunk(P.m3ua(body, si=5)))))], messages=True)
    assert recs[0]["peer"] == CALLED
    recs, st = decode([P.ether(P.ipv4(P.sctp(P.data_chunk(P.m3ua(b"\x00" * 12, si=13)))))])
    assert recs == [] and st.anomalies[Anomaly.ISUP_BICC] == 1


def deliver(oa, ud, udh=b"", dcs=0x00):
    first = 0x04 | (0x40 if udh else 0)
    addr = bytes([len(oa), 0x91]) + P.tbcd(oa)
    payload = (bytes([len(udh)]) + udh if udh else b"") + ud
    return (
        bytes([first]) + addr + bytes([0x00, dcs]) + b"\x42\x11\x22\x33\x44\x55\x00" + bytes([len(payload)]) + payload
    )


def mt_fsm(tpdu):
    arg = P.ber(0x30, P.ber(0x80, P.tbcd(IMSI)) + P.ber(0x84, P.address("8613800500")) + P.ber(0x04, tpdu))
    return P.tcap("begin", P.invoke(1, 44, arg), otid=3, dlg=P.dialogue(25, 3))


def test_sms_deliver_fields_and_concatenation():
    udh = bytes([0x00, 0x03, 0x42, 0x03, 0x02])       # part 2 of 3
    recs, _ = decode([eth_m3ua(mt_fsm(deliver("8613800138000", b"hello", udh)), calling_ssn=8, called_ssn=8)],
                     messages=True)
    r = recs[0]
    assert (r["kind"], r["imsi"], r["peer"], r["parts"], r["part"]) == ("mt_sms", IMSI, "8613800138000", 3, 2)
    assert "hello" not in str(r)


def test_mms_notification():
    sender = b"\x80+8613912345678/TYPE=PLMN\x00"
    mms = (b"\x8c\x82" + b"\x98" + b"T1\x00" + b"\x8d\x92" + b"\x89" + bytes([len(sender)]) + sender +
           b"\x96" + b"Hi\x00" + b"\x8e\x02\x30\x39" + b"\x83" + b"http://mmsc/x\x00")
    wsp = b"\x01\x06\x01\xbe" + mms
    udh = bytes([0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0])
    recs, _ = decode([eth_m3ua(mt_fsm(deliver("10658000", wsp, udh, dcs=0x04)), calling_ssn=8, called_ssn=8)],
                     messages=True)
    r = recs[0]
    assert (r["kind"], r["peer"], r["octets"], r["app_port"]) == ("mms_notification", "8613912345678", 12345, 2948)


def gsm7_pack(text):
    bits, out, n = 0, bytearray(), 0
    for ch in text.encode("ascii"):
        bits |= ch << n
        n += 7
        while n >= 8:
            out.append(bits & 0xFF)
            bits >>= 8
            n -= 8
    if n:
        out.append(bits & 0xFF)
    return bytes(out)


def test_alphanumeric_sender():
    name = "CMCC Bank"
    packed = gsm7_pack(name)
    addr = bytes([len(packed) * 2 if len(name) * 7 % 8 == 0 else (len(name) * 7 + 3) // 4, 0xD0]) + packed
    tpdu = bytes([0x04]) + addr + b"\x00\x00" + b"\x42\x11\x22\x33\x44\x55\x00" + b"\x02hi"
    recs, _ = decode([eth_m3ua(mt_fsm(tpdu), calling_ssn=8, called_ssn=8)], messages=True)
    assert recs[0]["peer_alpha"] == name and "peer" not in recs[0]
    recs, _ = decode([eth_m3ua(mt_fsm(tpdu), calling_ssn=8, called_ssn=8)])
    assert recs[0]["peer_alpha"] == name
