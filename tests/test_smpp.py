"""The SMS channel: the PDU codec (control.smpp_pdu) and the texts (control.sms_text) against
independent references (smpp34's codec, pycrate's GSM 03.38 tables, Python's UTF-16), and the
client (control.smpp) against a real SMSC: the server side of smpp34 (PyPI), run by
tests/smsc.py on loopback."""
import socket
import struct
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from touchpoint.control import smpp_pdu
from touchpoint.control.channels import Outgoing
from touchpoint.control.smpp import SmppClient
from touchpoint.control.smpp_pdu import ESM_UDHI, PduError, ShortMessage, address_type, parse_receipt
from touchpoint.control.sms_text import DC_DEFAULT, DC_UCS2, GSM7_BASIC, GSM7_EXT, encode_text, gsm7_decode, gsm7_encode

from .smsc import Feeder, Smsc

smpp34 = pytest.importorskip("smpp34", reason="the test SMSC is smpp34's server (pip install '.[test]')")
from pycrate_mobile import TS23038


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- references ------------------------------------------------------------------------------

def pack7(septets: bytes) -> bytes:
    """GSM 7-bit packing (23.038 6.1.2.1.1), to compare with pycrate's encoder: seven spare
    bits in the last octet take a CR, as pycrate (and 23.038 6.1.2.3.1) does."""
    if len(septets) % 8 == 7:
        septets += b"\r"
    bits = out = 0
    res = bytearray()
    for s in septets:
        out |= s << bits
        bits += 7
        while bits >= 8:
            res.append(out & 0xFF)
            out >>= 8
            bits -= 8
    if bits:
        res.append(out)
    return bytes(res)


def ref_gsm7_decode(data: bytes) -> str:
    """Unpacked septets to text through pycrate's tables."""
    out, esc = [], False
    for b in data:
        if esc:
            out.append(TS23038._GSM7bExtLUT[b])
            esc = False
        elif b == 0x1B:
            esc = True
        else:
            out.append(TS23038._GSM7bTab[b])
    return "".join(out)


def reassemble(submits: list) -> dict:
    """Texts the SMSC received, by (destination, source): parts joined by their UDH, decoded
    with the references. Each value is a list (a message sent twice shows twice)."""
    texts, parts = {}, {}
    for s in submits:
        sm = bytes.fromhex(s["sm"])
        key = (s["dest"], s["source"])
        if s["esm_class"] & 0x40:
            udh_len = sm[0]
            udh, body = sm[1:1 + udh_len], sm[1 + udh_len:]
            assert udh[:2] == b"\x00\x03", udh            # IEI 0: concatenation, 8-bit reference
            ref, total, seq = udh[2], udh[3], udh[4]
            p = parts.setdefault((key, ref, total), {})
            assert seq not in p, f"part {seq} of {key} twice"
            p[seq] = (s["data_coding"], body)
            if len(p) == total:
                dcs = {dc for dc, _ in p.values()}
                assert len(dcs) == 1
                data = b"".join(p[i][1] for i in range(1, total + 1))
                texts.setdefault(key, []).append(decode_ref(dcs.pop(), data))
                del parts[(key, ref, total)]
        else:
            texts.setdefault(key, []).append(decode_ref(s["data_coding"], sm))
    assert not parts, f"incomplete multi-part messages at the SMSC: {list(parts)}"
    return texts


def decode_ref(dc: int, data: bytes) -> str:
    assert dc in (0, 8), dc
    return data.decode("utf-16-be") if dc == 8 else ref_gsm7_decode(data)


# --- the GSM 03.38 alphabet and the splitting ------------------------------------------------

def test_gsm7_tables_are_the_published_ones():
    assert GSM7_BASIC == TS23038._GSM7bTab
    # pycrate keeps placeholders for the two reserved codes (0x0D, 0x1B); every real one agrees.
    ext = {code: ch for code, ch in TS23038._GSM7bExtLUT.items() if code not in (0x0D, 0x1B)}
    assert {v: k for k, v in GSM7_EXT.items()} == ext


@given(st.text(alphabet=GSM7_BASIC.replace("\x1b", "") + "".join(GSM7_EXT), max_size=400))
def test_gsm7_encoding_matches_pycrate(text):
    septets = gsm7_encode(text)
    packed, count = TS23038.encode_7b(text)
    assert (pack7(septets), len(septets)) == (packed, count)
    assert gsm7_decode(septets) == text


def test_characters_outside_the_alphabet_mean_ucs2():
    for text in ("你好", "naïve", "emoji 🙂", "ç" + "中"):
        assert gsm7_encode(text) is None or text == "ç"
        dc, parts = encode_text(text)
        assert dc == DC_UCS2 and parts == [text.encode("utf-16-be")]
    assert encode_text("ça va") == (DC_DEFAULT, [b"\x09a va"])      # 0x09: C-cedilla


@pytest.mark.parametrize("text,dc,sizes", [
    ("a" * 160, DC_DEFAULT, [160]),
    ("a" * 161, DC_DEFAULT, [153, 8]),
    ("€" * 80, DC_DEFAULT, [160]),                   # 80 escapes: 160 septets, one message
    ("a" * 152 + "€" + "b" * 10, DC_DEFAULT, [152, 12]),   # the escape never leaves its code
    ("a" * 151 + "€" + "b" * 10, DC_DEFAULT, [153, 10]),
    ("中" * 70, DC_UCS2, [140]),
    ("中" * 71, DC_UCS2, [134, 8]),
    ("中" * 66 + "🙂" + "中" * 5, DC_UCS2, [132, 14]),   # a surrogate pair is never cut
    ("中" * 67 * 3, DC_UCS2, [134, 134, 134]),
])
def test_split_points(text, dc, sizes):
    got_dc, parts = encode_text(text)
    assert got_dc == dc and [len(p) for p in parts] == sizes
    data = b"".join(parts)
    assert (data.decode("utf-16-be") if dc == DC_UCS2 else ref_gsm7_decode(data)) == text


@settings(max_examples=300)
@given(st.text(alphabet=st.sampled_from(list("aZ09 €[]{}^~|\\\n@£") + list("中文退订") + ["🙂"]), max_size=700))
def test_any_text_splits_and_joins_back(text):
    dc, parts = encode_text(text)
    limit = (160, 153) if dc == DC_DEFAULT else (140, 134)
    assert len(parts[0]) <= limit[0] if len(parts) == 1 else all(len(p) <= limit[1] for p in parts)
    data = b"".join(parts)
    assert (data.decode("utf-16-be") if dc == DC_UCS2 else ref_gsm7_decode(data)) == text


def test_too_long_a_text_is_refused():
    with pytest.raises(ValueError, match="parts"):
        encode_text("中" * 67 * 256)


def test_address_forms():
    assert address_type("10658000") == (3, 0, "10658000")           # short code
    assert address_type("TOUCHPOINT") == (5, 0, "TOUCHPOINT")       # alphanumeric
    assert address_type("中国移动") == (5, 0, "中国移动")
    assert address_type("+8613912345678") == (1, 1, "8613912345678")
    assert address_type("008613912345678") == (1, 1, "8613912345678")
    assert address_type("8613912345678") == (1, 1, "8613912345678")  # MSISDNs: international
    assert address_type("") == (0, 0, "")


# --- the PDU codec against smpp34's -----------------------------------------------------------

short_strings = st.text(alphabet="abcdefXYZ0123456789+ ", max_size=20)


@settings(max_examples=200)
@given(source=short_strings, dest=short_strings, sm=st.binary(max_size=254), esm=st.integers(0, 255),
       dc=st.integers(0, 255), ton=st.integers(0, 6), npi=st.integers(0, 18), rd=st.integers(0, 31),
       seq=st.integers(1, 0x7FFFFFFF), tlv=st.binary(max_size=40))
def test_submit_sm_as_smpp34_reads_it(source, dest, sm, esm, dc, ton, npi, rd, seq, tlv):
    body = ShortMessage(source_addr=source, destination_addr=dest, short_message=sm, esm_class=esm,
                        data_coding=dc, source_addr_ton=ton, source_addr_npi=npi, dest_addr_ton=npi % 7,
                        dest_addr_npi=ton, registered_delivery=rd, service_type="CMT",
                        validity_period="000001000000000R", tlvs={0x1403: tlv}).encode()
    pdu = smpp34.decode(smpp_pdu.pack(smpp_pdu.SUBMIT_SM, seq, body))
    assert isinstance(pdu, smpp34.SubmitSm)
    assert (pdu.sequence_number, pdu.source_addr, pdu.destination_addr, pdu.short_message) == (seq, source, dest, sm)
    assert (pdu.esm_class, pdu.data_coding, pdu.registered_delivery) == (esm, dc, rd)
    assert (pdu.source_addr_ton, pdu.source_addr_npi, pdu.dest_addr_ton, pdu.dest_addr_npi) == (ton, npi, npi % 7, ton)
    assert (pdu.service_type, pdu.validity_period) == ("CMT", "000001000000000R")
    assert [(t.tag, t.value) for t in pdu.tlvs] == [(0x1403, tlv)]


@settings(max_examples=200)
@given(source=short_strings, dest=short_strings, sm=st.binary(max_size=254), esm=st.integers(0, 255),
       dc=st.integers(0, 255), seq=st.integers(1, 0x7FFFFFFF), mid=st.text(alphabet="0123456789abcdef-", max_size=64))
def test_deliver_sm_from_smpp34(source, dest, sm, esm, dc, seq, mid):
    wire = smpp34.DeliverSm(source, dest, sm, esm_class=esm, data_coding=dc, sequence_number=seq,
                            source_addr_ton=1, source_addr_npi=1,
                            tlvs=[smpp34.Tlv(smpp34.TLV_RECEIPTED_MESSAGE_ID, mid.encode() + b"\0")]).encode()
    length, cid, status, got_seq = smpp_pdu.HEADER.unpack(wire[:16])
    assert (length, cid, status, got_seq) == (len(wire), smpp_pdu.DELIVER_SM, 0, seq)
    m = ShortMessage.decode(wire[16:])
    assert (m.source_addr, m.destination_addr, m.short_message, m.esm_class, m.data_coding) == (
        source,
        dest,
        sm,
        esm,
        dc,
    )
    assert (m.source_addr_ton, m.source_addr_npi) == (1, 1)
    assert m.tlvs == {smpp_pdu.TLV_RECEIPTED_MESSAGE_ID: mid.encode() + b"\0"}
    # and back: our encoding of what we read is smpp34's byte for byte
    assert smpp_pdu.pack(smpp_pdu.DELIVER_SM, seq, m.encode()) == wire


def test_every_truncation_is_a_pdu_error():
    body = ShortMessage(source_addr="10658000", destination_addr="8613800000001", short_message=b"hello",
                        tlvs={smpp_pdu.TLV_MESSAGE_STATE: b"\x02"}).encode()
    for n in range(len(body)):
        if n == len(body) - 5:              # cut just before the optional parameters: still whole
            assert ShortMessage.decode(body[:n]).tlvs == {}
            continue
        with pytest.raises(PduError):
            ShortMessage.decode(body[:n])
    assert ShortMessage.decode(body).short_message == b"hello"


@given(st.binary(max_size=300))
def test_garbage_is_a_pdu_error_or_a_message(data):
    try:
        ShortMessage.decode(data)
    except PduError:
        pass


def test_field_limits():
    with pytest.raises(PduError, match="source_addr"):
        ShortMessage(source_addr="1" * 21).encode()
    with pytest.raises(PduError, match="short_message"):
        ShortMessage(short_message=b"x" * 255).encode()
    with pytest.raises(ValueError, match="password"):
        SmppClient("127.0.0.1", 1, "tp", "longer-than-8")


def test_receipts_parsed():
    text = ShortMessage(esm_class=4, short_message=b"id:7f0a-3 sub:001 dlvrd:000 submit date:2611291000 "
                                                   b"done date:2611291001 stat:UNDELIV err:021 text:hi")
    assert parse_receipt(text) == ("7f0a-3", "UNDELIV", "021")
    tlv = ShortMessage(esm_class=4, tlvs={smpp_pdu.TLV_RECEIPTED_MESSAGE_ID: b"ab12\0",
                                          smpp_pdu.TLV_MESSAGE_STATE: b"\x02"})
    assert parse_receipt(tlv) == ("ab12", "DELIVRD", "")
    assert parse_receipt(ShortMessage(esm_class=4, short_message=b"nothing here")) is None


# --- the client against smpp34's server ------------------------------------------------------

def client(port, feeder, **kw) -> SmppClient:
    kw.setdefault("reconnect", (0.2, 1.0))
    c = SmppClient("127.0.0.1", port, "tp-esme", "secret", on_result=feeder.on_result, on_mo=feeder.on_mo,
                   say=lambda line: None, **kw)
    c.start()
    return c


@pytest.fixture
def smsc_factory():
    started = []

    def make(*args):
        s = Smsc(free_port(), *args)
        started.append(s)
        return s
    yield make
    for s in started:
        s.close()


TEXTS = [
    ("10658000", "Hello {n}, your bill is ready"),
    ("TOUCHPOINT", "GSM with extensions: €5 [promo] {{curly}} ^~|\\ " * 9 + "#{n}"),       # > 160 septets
    ("+8613912345678", "欢迎来到上海！流量包 {n} 号"),
    ("10658000", "尊敬的客户，您已到达上海虹桥，本地流量包限时优惠，回复TD退订。" * 5 + "第{n}条"),
    ("BANK", "emoji 🙂 and 中文 mixed, long enough to need parts: " * 4 + "{n}"),
]


def make_messages(n: int, texts=TEXTS, prefix="m") -> list:
    out = []
    for i in range(n):
        source, text = texts[i % len(texts)]
        out.append(Outgoing(f"{prefix}{i}", f"86138{i:08d}", source, text.format(n=i), "camp"))
    return out


def test_messages_arrive_as_sent(smsc_factory):
    s = smsc_factory()
    msgs = make_messages(25)
    f = Feeder(None, msgs)
    f.channel = c = client(s.port, f)
    try:
        f.run(f.all_final("sent"), what="every message sent")
    finally:
        c.stop(2)
    binds = [e["bind"] for e in s.events if "bind" in e]
    assert binds[0]["system_id"] == "tp-esme" and binds[0]["can_receive"]     # a transceiver bind
    submits = s.submits()
    got = reassemble(submits)
    want = {}
    for m in msgs:
        want.setdefault((m.msisdn, address_type(m.source)[2]), []).append(m.text)
    assert got == want
    forms = {sub["source"]: (sub["source_ton"], sub["source_npi"]) for sub in submits}
    assert forms == {"10658000": (3, 0), "TOUCHPOINT": (5, 0), "8613912345678": (1, 1), "BANK": (5, 0)}
    assert {(sub["dest_ton"], sub["dest_npi"], sub["registered_delivery"]) for sub in submits} == {(1, 1, 1)}
    coding = {sub["source"]: sub["data_coding"] for sub in submits}
    assert coding["TOUCHPOINT"] == 0 and coding["8613912345678"] == 8
    assert {sub["esm_class"] for sub in submits if sub["source"] == "TOUCHPOINT"} == {ESM_UDHI}
    # sent carries the SMSC's id of the first part
    ids = {sub["id"] for sub in submits}
    assert all(f.results[m.id][-1][2] in ids for m in msgs)
    h = c.health()
    assert h["sent"] == 25 and h["parts"] == len(submits) and h["failed"] == 0


@pytest.mark.parametrize("form", ["text", "tlv"])
def test_receipts_move_messages_to_delivered(smsc_factory, form):
    s = smsc_factory("--receipts", form, "--undeliverable", "8613800000003")
    msgs = make_messages(20)
    f = Feeder(None, msgs)
    f.channel = c = client(s.port, f)
    try:
        def receipted(f):                   # sent, then delivered or failed
            return all(len(f.results.get(m.id, ())) >= 2 for m in msgs)
        f.run(receipted, what="a receipt for every message")
    finally:
        c.stop(2)
    for m in msgs:
        states = [st for st, _, _ in f.results[m.id]]
        assert states[0] == "sent", states
        if m.msisdn.startswith("8613800000003"):
            assert (
                states[1:] == ["failed"]
                and f.results[m.id][1][1] == {"text": "undeliv err:000", "tlv": "undeliv"}[form]
            )
        else:
            assert states[1:] == ["delivered"], (m.id, states)
        assert f.results[m.id][-1][2] == f.results[m.id][0][2]      # matched by the SMSC's id
    assert not f.unmatched


def test_mo_messages_reach_on_mo(smsc_factory):
    s = smsc_factory()
    f = Feeder(None, [])
    f.channel = c = client(s.port, f)
    try:
        s.wait(lambda ev: any("bind" in e for e in ev), what="the bind")
        s.command({"mo": {"from": "8613900000001", "to": "10658000", "text": "退订"}})
        s.command({"mo": {"from": "8613900000002", "to": "10658000", "text": "TD"}})
        s.command({"mo": {"from": "13900000003", "to": "10658000", "text": "T", "ton": 2}})     # national
        f.run(lambda f: len(f.mo) == 3, timeout=10, what="three MO messages")
        # the server logs an answer after the client has passed the message on: wait for all
        s.wait(lambda ev: sum("mo_sent" in e for e in ev) == 3, what="every deliver_sm answered")
    finally:
        c.stop(2)
    assert sorted(f.mo) == [("13900000003", "T", "10658000", "national"), ("8613900000001", "退订", "10658000"),
                            ("8613900000002", "TD", "10658000")]
    assert [e["mo_sent"] for e in s.events if "mo_sent" in e] == [0, 0, 0]    # all answered ESME_ROK


def test_error_status_fails_the_message_with_its_name(smsc_factory):
    s = smsc_factory("--reject-dest", "8613800000001")
    msgs = make_messages(3, texts=[("10658000", "hi {n}")])
    f = Feeder(None, msgs)
    f.channel = c = client(s.port, f)
    try:
        f.run(lambda f: all(f.final(m.id) for m in msgs), what="answers")
    finally:
        c.stop(2)
    assert f.results["m1"] == [("failed", "ESME_RINVDSTADR", None)]
    assert f.final("m0") == f.final("m2") == "sent"


def test_throttling_slows_the_sender_down(smsc_factory):
    rate = 200
    s = smsc_factory("--max-rate", str(rate), "--burst", "10")
    n = 600
    msgs = make_messages(n, texts=[("10658000", "throttled {n}")])
    f = Feeder(None, msgs)
    f.channel = c = client(s.port, f)
    try:
        f.run(f.all_final("sent"), timeout=60, what="every message through the throttle")
    finally:
        c.stop(2)
    h = c.health()
    submits = s.submits()
    texts = sorted(sub["sm"] for sub in submits)
    assert texts == sorted(m.text.encode().hex() for m in msgs)        # each once, none lost
    rejected = submits[-1]["rejected"]
    assert h["throttled"] == rejected > 0
    # A sender that did not slow down would meet the throttle for most of its window again and
    # again; this one saw fewer throttling answers than messages.
    assert rejected < n
    span = submits[-1]["t"] - submits[0]["t"]
    print(f"throttled at {rate}/s: {n} accepted in {span:.2f} s ({n / span:.0f}/s), {rejected} throttling answers")


def test_smsc_killed_and_restarted_mid_run(smsc_factory):
    s = smsc_factory("--hold-after", "150")
    n = 500
    msgs = make_messages(n, texts=[("10658000", "kill test {n}"), ("10658000", "长消息" * 30 + "{n}")])
    f = Feeder(None, msgs)
    f.channel = c = client(s.port, f)
    try:
        f.run(lambda f: any("held" in e for e in s.events), timeout=30, what="the SMSC to stop answering")
        s.kill()                                        # SIGKILL, with submits waiting for answers
        s.restart("--receipts", "text")
        f.run(f.all_final("sent"), timeout=60, what="every message sent after the restart")
    finally:
        c.stop(2)
    got = reassemble(s.submits())
    texts = sorted(t for v in got.values() for t in v)
    assert texts == sorted(m.text for m in msgs)         # no loss, no duplicate
    h = c.health()
    assert h["connects"] == 2 and h["retried"] > 0 and h["sent"] == n


def test_transmitter_bind(smsc_factory):
    s = smsc_factory()
    msgs = make_messages(3)
    f = Feeder(None, msgs)
    f.channel = c = client(s.port, f, bind="transmitter")
    try:
        f.run(f.all_final("sent"), what="every message sent")
    finally:
        c.stop(2)
    assert [e["bind"]["can_receive"] for e in s.events if "bind" in e] == [False]


def test_a_dead_smsc_hangs_nothing():
    port = free_port()                                  # nobody listens
    f = Feeder(None, [])
    lines = []
    c = SmppClient("127.0.0.1", port, "tp", on_result=f.on_result, say=lines.append, reconnect=(0.1, 0.2))
    c.start()
    try:
        t = time.monotonic()
        assert not c.send(Outgoing("x", "8613800000000", "1", "hi", "c"))
        assert time.monotonic() - t < 0.5
        deadline = time.monotonic() + 10
        while "refused" not in c.health()["last_error"].lower():
            assert time.monotonic() < deadline, c.health()
            time.sleep(0.05)
        time.sleep(0.5)
    finally:
        t = time.monotonic()
        c.stop(1)
        assert not c.thread.is_alive() and time.monotonic() - t < 5
    assert len(lines) == 1                              # told once, not at every attempt
    assert c.health()["connected"] is False


class RawSmsc:
    """A listening socket that speaks SMPP by hand: for the cases smpp34's server never shows
    (an SMSC that sends enquire_link, a silent one, a broken stream)."""

    def __init__(self, handler):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        self.seen = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.settimeout(10)
            try:
                self.handler(self, conn)
            except (OSError, struct.error):
                pass
            finally:
                conn.close()

    def read(self, conn):
        head = b""
        while len(head) < 16:
            chunk = conn.recv(16 - len(head))
            if not chunk:
                raise OSError("closed")
            head += chunk
        length, cid, status, seq = struct.unpack(">IIII", head)
        body = b""
        while len(body) < length - 16:
            body += conn.recv(length - 16 - len(body))
        self.seen.append(cid)
        return cid, status, seq, body

    def close(self):
        self.sock.close()


def test_answers_the_smscs_enquire_link_and_unknown_commands():
    answers = []

    def handler(srv, conn):
        cid, _, seq, _ = srv.read(conn)
        conn.sendall(smpp_pdu.pack(cid | smpp_pdu.RESP, seq, b"RAW\0"))
        conn.sendall(smpp_pdu.pack(smpp_pdu.ENQUIRE_LINK, 77))
        conn.sendall(smpp_pdu.pack(0x00000099, 78))                 # a command that does not exist
        for _ in range(2):
            answers.append(srv.read(conn)[:3])
        time.sleep(5)

    srv = RawSmsc(handler)
    c = SmppClient("127.0.0.1", srv.port, "tp", say=lambda line: None)
    c.start()
    try:
        deadline = time.monotonic() + 10
        while len(answers) < 2:
            assert time.monotonic() < deadline, answers
            time.sleep(0.02)
    finally:
        c.stop(1)
        srv.close()
    assert answers == [(smpp_pdu.ENQUIRE_LINK | smpp_pdu.RESP, 0, 77),
                       (smpp_pdu.GENERIC_NACK, smpp_pdu.ESME_RINVCMDID, 78)]


def test_silent_smsc_and_broken_stream_reconnect():
    def silent(srv, conn):                  # takes the connection, never answers the bind
        srv.read(conn)
        time.sleep(3)

    srv = RawSmsc(silent)
    lines = []
    c = SmppClient("127.0.0.1", srv.port, "tp", say=lines.append, response_timeout=0.3, reconnect=(0.1, 0.2))
    c.start()
    try:
        deadline = time.monotonic() + 10
        while srv.seen.count(smpp_pdu.BIND_TRANSCEIVER) < 2:
            assert time.monotonic() < deadline, lines
            time.sleep(0.02)
        assert c.health()["connected"] is False and "no bind response" in c.health()["last_error"]
    finally:
        c.stop(1)
        srv.close()

    def broken(srv, conn):                  # binds, then a command_length of 5
        cid, _, seq, _ = srv.read(conn)
        conn.sendall(smpp_pdu.pack(cid | smpp_pdu.RESP, seq, b"RAW\0"))
        conn.sendall(struct.pack(">IIII", 5, smpp_pdu.ENQUIRE_LINK, 0, 1))
        time.sleep(3)

    srv = RawSmsc(broken)
    lines = []
    c = SmppClient("127.0.0.1", srv.port, "tp", say=lines.append, reconnect=(0.1, 0.2))
    c.start()
    try:
        deadline = time.monotonic() + 10
        while srv.seen.count(smpp_pdu.BIND_TRANSCEIVER) < 2:
            assert time.monotonic() < deadline, lines
            time.sleep(0.02)
    finally:
        c.stop(1)
        srv.close()
    assert any("command_length 5" in line for line in lines)


def test_enquire_link_keeps_an_idle_session(smsc_factory):
    s = smsc_factory()
    f = Feeder(None, [])
    f.channel = c = client(s.port, f, enquire_link=0.2, response_timeout=1.0)
    try:
        s.wait(lambda ev: any("bind" in e for e in ev), what="the bind")
        time.sleep(2.0)                     # ten enquire_links, each answered by smpp34
        h = c.health()
    finally:
        c.stop(2)
    assert h["connected"] and h["connects"] == 1 and h["last_error"] == ""
