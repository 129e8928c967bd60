"""The MMS channel's MM7 codec (control.mm7) against a test MMSC written apart from it (tests/mmsc.py:
Python's email package and ElementTree), over real HTTP on loopback: what we submit the MMSC reads
back whole, what the MMSC answers and sends us we read, and nothing an MMSC could send (garbage, cut
short, hostile XML) gets out of our parsers as anything but an MM7Error."""
import http.client
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.etree import ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from touchpoint.control import mm7
from touchpoint.control.mm7 import MM7Error, Slide, Submit, SubmitResult

from .mmsc import SCHEMA, SOAP, VERSIONS, Mmsc, by_id, element, envelope, fault, mime, post, root_part, status_code

AUTH = ("vasp-1", "s3cret")
PNG = b"\x89PNG\r\n\x1a\n" + random.Random(1).randbytes(100_000)
JPEG = b"\xff\xd8\xff\xe0" + random.Random(2).randbytes(100_000)
PARSERS = (mm7.parse_submit_response, mm7.parse_delivery_report, mm7.parse_deliver)


def submit(**kw) -> Submit:
    fields = dict(transaction_id="tp-0001", vasp_id="VASP01", vas_id="offers", service_code="3111005101",
                  sender="10658888", recipients=["8613800000001", "8613800000002", "8613900000003"],
                  subject="周末特惠：全场五折",
                  slides=[Slide("欢迎光临！本周末全场五折。", PNG, image_name="offer.png"),
                          Slide("回复 TD 退订\n第二行", JPEG)], linked_id="mo-77")
    return Submit(**{**fields, **kw})


def send(mmsc: Mmsc, s: Submit, auth=AUTH) -> tuple[int, str, bytes]:
    return post(mmsc.url, *mm7.submit_request(s), auth)


@pytest.fixture
def mmsc():
    with Mmsc(*AUTH) as m:
        yield m


class Vasp:
    """The VASP end of the MMSC's requests: our parser behind http.server, and our response to it."""

    def __init__(self, parse, respond):
        self.parse, self.respond, self.got, self.raw = parse, respond, [], []
        vasp = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                ctype, body = self.headers["Content-Type"], self.rfile.read(int(self.headers["Content-Length"]))
                vasp.raw.append((ctype, body))
                try:
                    msg = vasp.parse(ctype, body)
                    status, (rtype, data) = 200, vasp.respond(msg)
                except MM7Error as e:
                    msg, status, rtype, data = e, 400, "text/plain", str(e).encode()
                vasp.got.append(msg)
                self.send_response(status)
                self.send_header("Content-Type", rtype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/vasp"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


# --- SubmitReq: our encoder, the MMSC's reading ------------------------------------------------

def test_the_mmsc_reads_back_every_field_of_a_submit(mmsc):
    s = submit()
    status, ctype, body = send(mmsc, s)
    assert (status, mmsc.errors) == (200, [])
    [got] = mmsc.received
    assert {k: got[k] for k in ("transaction_id", "recipients", "subject", "sender", "vasp_id", "vas_id",
                                "service_code", "linked_id", "delivery_report", "namespace")} == {
        "transaction_id": "tp-0001", "recipients": s.recipients, "subject": "周末特惠：全场五折", "sender": "10658888",
        "vasp_id": "VASP01", "vas_id": "offers", "service_code": "3111005101", "linked_id": "mo-77",
        "delivery_report": True, "namespace": "REL-5-MM7-1-2"}
    assert got["texts"] == ["欢迎光临！本周末全场五折。", "回复 TD 退订\n第二行"]
    assert got["images"] == [("image/png", len(PNG)), ("image/jpeg", len(JPEG))]
    assert mm7.parse_submit_response(ctype, body) == SubmitResult(1000, "status 1000", got["message_id"], "tp-0001")


@pytest.mark.parametrize("name", mm7.NAMESPACES)
def test_every_namespace_goes_with_its_version(mmsc, name):
    s = submit(namespace=name, delivery_report=False, sender="8613800009999", slides=[Slide("only text")])
    status, ctype, body = send(mmsc, s)
    assert (status, mmsc.errors) == (200, [])
    assert (mmsc.received[0]["namespace"], mmsc.received[0]["delivery_report"]) == (name, False)
    assert mmsc.received[0]["sender"] == "8613800009999"
    assert mm7.parse_submit_response(ctype, body).status_code == 1000
    assert mm7.submit_request(submit(namespace=SCHEMA + name))[1].count(f"{SCHEMA}{name}".encode()) == 2


def test_message_ids_are_unique_and_answers_echo_the_transaction(mmsc):
    results = [mm7.parse_submit_response(*send(mmsc, submit(transaction_id=f"t{n}"))[1:]) for n in range(5)]
    assert len({r.message_id for r in results}) == 5
    assert [r.transaction_id for r in results] == [f"t{n}" for n in range(5)]


def expected_outcome(code: int) -> str:
    return "sent" if code in (1000, 1100) else "retry" if code in (3000, 4006) else "failed"


@pytest.mark.parametrize("faults,multipart", [(False, False), (True, False), (False, True)])
def test_every_status_code_comes_back_with_its_outcome(mmsc, faults, multipart):
    mmsc.faults, mmsc.multipart = faults, multipart
    assert sorted(mm7.STATUS) == [1000, 1100, *range(2000, 2010), *range(3000, 3005), *range(4000, 4009)]
    for code in mm7.STATUS:
        mmsc.status_for = lambda msisdn, code=code: code
        status, ctype, body = send(mmsc, submit(slides=[Slide("hi")]))
        r = mm7.parse_submit_response(ctype, body)
        assert (status, r.status_code, mm7.outcome(code)) == (500 if faults and code >= 2000 else 200, code,
                                                               expected_outcome(code))
        assert bool(r.message_id) == (code < 2000)
    assert [mm7.outcome(c) for c in (1001, 1199, 2999, 3005, 4999, 5000, 0)] == ["sent", "sent"] + ["failed"] * 5


def test_recipients_that_differ_make_a_partial_success(mmsc):
    mmsc.status_for = lambda msisdn: 2002 if msisdn.endswith("2") else 1000
    r = mm7.parse_submit_response(*send(mmsc, submit())[1:])
    assert (r.status_code, mm7.outcome(r.status_code)) == (1100, "sent")
    mmsc.status_for = lambda msisdn: 2002 if msisdn.endswith("2") else 4007
    assert mm7.parse_submit_response(*send(mmsc, submit())[1:]).status_code == 4007


def test_soap_faults_give_their_status_or_say_why_not():
    ns = SCHEMA + "REL-6-MM7-1-4"
    q = lambda name: f"{{{ns}}}{name}"
    vasp_error = element(f"{{{mm7.SOAP_ENV}}}Fault", element("faultcode", text="env:Server"),
                         element("faultstring", text="busy"),
                         element("detail", element(q("VASPErrorRsp"), element(q("MM7Version"), text="6.8.0"),
                                                   element(q("Status"), element(q("StatusCode"), text="4006")))))
    r = mm7.parse_submit_response("text/xml", envelope(ns, "t9", vasp_error))
    assert (r.status_code, r.status_text, r.transaction_id, mm7.outcome(4006)) == (4006, "Service unavailable", "t9",
                                                                                 "retry")
    assert mm7.parse_submit_response("text/xml", envelope(ns, "t9", fault(ns, 2004, "too big"))).status_code == 2004
    bare = element(f"{{{mm7.SOAP_ENV}}}Fault", element("faultcode", text="env:Client"),
                   element("faultstring", text="no such VASP"))
    with pytest.raises(MM7Error, match="no such VASP"):
        mm7.parse_submit_response("text/xml", envelope(ns, "t9", bare))


def test_a_wrong_password_is_refused(mmsc):
    assert send(mmsc, submit(), auth=("vasp-1", "guess"))[0] == 401
    assert mmsc.received == []


def test_an_mmsc_that_is_slow_dead_or_not_soap(mmsc):
    ctype, body = mm7.submit_request(submit())
    mmsc.slow = 2.0
    with pytest.raises(TimeoutError):
        post(mmsc.url, ctype, body, AUTH, timeout=0.3)
    mmsc.slow, mmsc.dead = 0.0, True
    with pytest.raises(http.client.RemoteDisconnected):
        post(mmsc.url, ctype, body, AUTH)
    mmsc.dead, mmsc.http_status = False, 503
    status, rtype, rbody = post(mmsc.url, ctype, body, AUTH)
    assert status == 503
    with pytest.raises(MM7Error, match="not a SOAP message"):
        mm7.parse_submit_response(rtype, rbody)


def test_size_is_what_the_mmsc_counts(mmsc):
    s = submit()
    ctype, body = mm7.submit_request(s)
    assert post(mmsc.url, ctype, body, AUTH)[0] == 200
    assert mm7.size(s) == mmsc.received[0]["size"]
    assert len(PNG) + len(JPEG) < mm7.size(s) < len(PNG) + len(JPEG) + 1000 < len(body)
    big = submit(slides=[Slide("大图", PNG * 3 + JPEG)])
    assert mm7.size(big) > mm7.MAX_SIZE > mm7.size(s)


@pytest.mark.parametrize("bad,match", [
    ({"recipients": ["86 138"]}, "MSISDN"), ({"recipients": []}, "recipients"), ({"sender": "VASP"}, "MSISDN"),
    ({"slides": []}, "slide"), ({"slides": [Slide()]}, "neither"), ({"namespace": "REL-7-MM7-1-0"}, "namespace"),
    ({"slides": [Slide("x", b"\x00\x01")]}, "image type"), ({"subject": "bell\x07"}, "XML"),
    ({"slides": [Slide("a", PNG, image_name="slide1.txt")]}, "alike"),
])
def test_the_encoder_refuses_what_no_mmsc_would_take(bad, match):
    with pytest.raises(MM7Error, match=match):
        mm7.submit_request(submit(**bad))


# --- the MMSC's requests to us: DeliveryReportReq, DeliverReq ----------------------------------

@pytest.mark.parametrize("name", mm7.NAMESPACES)
def test_delivery_reports_from_the_mmsc(mmsc, name):
    respond = lambda r: mm7.delivery_report_response(r.transaction_id, r.namespace)
    with Vasp(mm7.parse_delivery_report, respond) as vasp:
        for status in ("Retrieved", "Expired", "Rejected", "Indeterminate", "Forwarded", "Deferred"):
            assert mmsc.send_delivery_report(vasp.url, "mid-42", "8613800000001", status, AUTH,
                                             namespace=name) == (200, 1000)
    assert [r.status for r in vasp.got] == ["Retrieved", "Expired", "Rejected", "Indeterminate", "Forwarded",
                                            "Deferred"]
    r = vasp.got[0]
    assert (r.message_id, r.recipient, r.sender, r.status_text, r.date, r.namespace) == (
        "mid-42", "8613800000001", "10658888", "message retrieved", "2026-11-29T10:00:00+08:00", name)
    assert len(r.transaction_id) == 32


def test_a_deliver_from_the_mmsc(mmsc):
    respond = lambda d: mm7.deliver_response(d.transaction_id, d.namespace)
    with Vasp(mm7.parse_deliver, respond) as vasp:
        assert mmsc.send_deliver(vasp.url, "8613800000001", "10658888", "报名", "我要参加 周六活动", AUTH,
                                 namespace="REL-6-MM7-1-4", linked_id="lk-1") == (200, 1000)
    [d] = vasp.got
    assert (d.sender, d.recipients, d.subject, d.texts, d.linked_id, d.namespace) == (
        "8613800000001", ["10658888"], "报名", ["我要参加 周六活动"], "lk-1", "REL-6-MM7-1-4")


def test_our_answers_carry_the_status_we_give():
    for make in (mm7.delivery_report_response, mm7.deliver_response):
        for code in (1000, 2007, 4004):
            assert status_code(*make("t1", "REL-6-MM7-1-0", code)) == code
    with pytest.raises(MM7Error):
        mm7.deliver_response("t1", "REL-6-MM7-1-0", 10000)


# --- what other MMSCs send: hand-written in their styles ------------------------------------------

SPEC_STYLE_RSP = """<?xml version="1.0"?>
<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/">
 <env:Header>
  <mm7:TransactionID xmlns:mm7="http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-5-MM7-1-0"
     env:mustUnderstand="1">
     vas00001-sub
  </mm7:TransactionID>
 </env:Header>
 <env:Body>
  <mm7:SubmitRsp xmlns:mm7="http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-5-MM7-1-0">
   <MM7Version>5.3.0</MM7Version>
   <Status><StatusCode> 1000 </StatusCode><StatusText>Success</StatusText></Status>
   <MessageID>041502073667</MessageID>
  </mm7:SubmitRsp>
 </env:Body>
</env:Envelope>"""

GB2312_REPORT = ('<?xml version="1.0" encoding="GB2312"?><SOAP-ENV:Envelope '
                 'xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Header>'
                 '<TransactionID xmlns="http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-6-MM7-1-0">'
                 'dr-7</TransactionID></SOAP-ENV:Header><SOAP-ENV:Body><DeliveryReportReq xmlns="'
                 'http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-6-MM7-1-0"><MM7Version>6.3.0'
                 '</MM7Version><MessageID>m-9</MessageID><Recipient><Number>8613161608360</Number></Recipient>'
                 '<Sender>1065580001</Sender><TimeStamp>2010-02-10T09:14:39+08:00</TimeStamp><MMStatus>Retrieved'
                 '</MMStatus><StatusText>已下载</StatusText></DeliveryReportReq></SOAP-ENV:Body></SOAP-ENV:Envelope>')


def test_other_mmscs_styles():
    r = mm7.parse_submit_response("text/xml", SPEC_STYLE_RSP.encode())
    assert r == SubmitResult(1000, "Success", "041502073667", "vas00001-sub")
    d = mm7.parse_delivery_report("text/xml", GB2312_REPORT.encode("gb2312"))
    assert (d.transaction_id, d.sender, d.recipient, d.status, d.status_text, d.date, d.namespace) == (
        "dr-7", "1065580001", "8613161608360", "Retrieved", "已下载", "2010-02-10T09:14:39+08:00", "REL-6-MM7-1-0")
    assert mm7.parse_delivery_report('text/xml; charset="gb18030"', GB2312_REPORT.encode("gb18030")) == d
    unknown = SPEC_STYLE_RSP.replace("REL-5-MM7-1-0", "REL-6-MM7-6-7").encode()
    assert mm7.parse_submit_response("application/soap+xml", unknown).status_code == 1000
    with pytest.raises(MM7Error, match="expected SubmitRsp"):
        mm7.parse_submit_response("text/xml", GB2312_REPORT.encode("gb2312"))
    with pytest.raises(MM7Error, match="expected DeliveryReportReq"):
        mm7.parse_delivery_report("text/xml", SPEC_STYLE_RSP.encode())


# --- robustness: MM7Error and nothing else ---------------------------------------------------

def captured(mmsc: Mmsc) -> list[tuple]:
    """(parser, Content-Type, body) of real messages: SubmitRsps bare and multipart, a Fault, a
    DeliveryReportReq and a DeliverReq as the MMSC sent them."""
    out = []
    for faults, multipart, code in ((False, False, 1000), (False, True, 1000), (True, True, 2004)):
        mmsc.faults, mmsc.multipart, mmsc.status_for = faults, multipart, lambda m, code=code: code
        out.append((mm7.parse_submit_response, *send(mmsc, submit(slides=[Slide("hi")]))[1:]))
    with Vasp(mm7.parse_delivery_report, lambda r: mm7.delivery_report_response(r.transaction_id)) as vasp:
        mmsc.send_delivery_report(vasp.url, "mid-1", "8613800000001", "Expired")
    with Vasp(mm7.parse_deliver, lambda d: mm7.deliver_response(d.transaction_id)) as vasp2:
        mmsc.send_deliver(vasp2.url, "8613800000001", "10658888", "主题", "内容", linked_id="x")
    return out + [(mm7.parse_delivery_report, *vasp.raw[0]), (mm7.parse_deliver, *vasp2.raw[0])]


def test_every_truncation_of_a_real_message_is_an_mm7error(mmsc):
    for parse, ctype, body in captured(mmsc):
        whole = parse(ctype, body)
        for cut in range(len(body)):
            if cut < len(body.rstrip()):
                with pytest.raises(MM7Error):
                    parse(ctype, body[:cut])
            else:
                assert parse(ctype, body[:cut]) == whole


def test_damaged_messages_parse_or_raise_mm7error(mmsc):
    rng = random.Random(7)
    for parse, ctype, body in captured(mmsc):
        for _ in range(400):
            damaged = bytearray(body)
            for _ in range(rng.randint(1, 4)):
                damaged[rng.randrange(len(damaged))] = rng.randrange(256)
            try:
                parse(ctype, bytes(damaged))
            except MM7Error:
                pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000), st.sampled_from(["text/xml", 'multipart/related; boundary="b"; start="<r>"',
                                                  "multipart/related; boundary=b", "image/png", "",
                                                  "text/xml; charset=x"]))
def test_random_bytes_are_an_mm7error(data, ctype):
    for parse in PARSERS:
        with pytest.raises(MM7Error):
            parse(ctype, data)
        with pytest.raises(MM7Error):
            parse(ctype, b"--b\r\nContent-ID: <r>\r\n\r\n" + data + b"\r\n--b--\r\n")


LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
          + "".join(f'<!ENTITY lol{n} "{("&lol%s;" % (n - 1 or "")) * 10}">' for n in range(1, 10))
          + ']><env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"><env:Body>'
            "<SubmitRsp><Status><StatusCode>1000</StatusCode><StatusText>&lol9;</StatusText></Status></SubmitRsp>"
            "</env:Body></env:Envelope>")
XXE = ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><env:Envelope '
       'xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"><env:Body><SubmitRsp><MessageID>&x;</MessageID>'
       "</SubmitRsp></env:Body></env:Envelope>")


@pytest.mark.parametrize("body", [LAUGHS, XXE, '<!DOCTYPE x SYSTEM "http://127.0.0.1:9/x.dtd"><x/>',
                                  "<x>&undefined;</x>", "<a>" * 100_000, "<a>" * 50_000 + "</a>" * 50_000,
                                  '<?xml version="1.0" encoding="x-nonesuch"?><x/>'],
                         ids=["laughs", "xxe", "external-dtd", "undefined-entity", "deep", "deep-closed", "encoding"])
def test_hostile_xml_is_refused(body):
    for parse in PARSERS:
        for ctype, data in (("text/xml", body.encode()),
                            ('multipart/related; boundary="b"', b"--b\r\n\r\n" + body.encode() + b"\r\n--b--")):
            with pytest.raises(MM7Error):
                parse(ctype, data)


def test_hostile_mime_is_refused():
    soap = envelope(SCHEMA + "REL-5-MM7-1-2", "t", element("DeliverReq", element("Content", href="cid:c")))

    def nested(depth: int) -> bytes:
        part = b"Content-Type: text/plain\r\n\r\nx"
        for n in range(depth):
            part = (f"Content-Type: multipart/related; boundary=n{n}\r\n\r\n--n{n}\r\n".encode() + part
                    + f"\r\n--n{n}--".encode())
        return b"--b\r\n\r\n" + soap + b"\r\n--b\r\nContent-ID: <c>\r\n" + part + b"\r\n--b--"

    mixed = 'multipart/related; boundary="b"'
    assert mm7.parse_deliver(mixed, nested(7)).texts == ["x"]
    cases = [
        (mixed, nested(30), "nested deeper"),
        (mixed, b"--b\r\n\r\n" + soap + b"\r\n--b\r\nContent-ID: <c>\r\nContent-Transfer-Encoding: base64\r\n\r\n"
         b"!!!a\r\n--b--", "base64"),
        (mixed, b"--b\r\n" * 50_000, "no closing boundary"),
        ("multipart/related; boundary=" + "b" * 300, b"", "boundary"),
        (mixed + '; start="<nope>"', b"--b\r\n\r\n" + soap + b"\r\n--b--", "start Content-ID <nope>"),
        (mixed, b"--b\r\nContent-Transfer-Encoding: uuencode\r\n\r\n" + soap + b"\r\n--b--", "uuencode"),
        (mixed, b"--b\r\n\r\n" + soap + b"\r\n--b--", "in no part"),
        (mixed, b"--b\r\nno colon here\r\n\r\n" + soap + b"\r\n--b--", "header line"),
        (None, b"", "str"),
        ("text/xml; charset=punycode", b"a" * 200_000 + b"-" + b"9" * 200_000, "punycode"),   # quadratic decoder
    ]
    for ctype, body, match in cases:
        with pytest.raises(MM7Error, match=match):
            mm7.parse_deliver(ctype, body)


@pytest.mark.parametrize("name", mm7.NAMESPACES)
def test_the_mmsc_side_the_demo_speaks(name):
    """The requests touchpoint demo's MMSC makes, read with email and ElementTree, and read back by
    our VASP side as the dispatcher does."""
    ns = {"m": SCHEMA + name}
    q = lambda ctype, body: ET.fromstring(root_part(mime(ctype, body)).get_payload(decode=True))
    ctype, body = mm7.submit_response("tp-9", "mmsc-41", name)
    assert status_code(ctype, body) == 1000
    assert q(ctype, body).findtext(f"{{{SOAP}}}Body/m:SubmitRsp/m:MessageID", None, ns) == "mmsc-41"
    assert mm7.parse_submit_response(ctype, body) == SubmitResult(1000, "Success", "mmsc-41", "tp-9")

    ctype, body = mm7.delivery_report_request("dr-1", "mmsc-41", "8613800000001", "10658000", "Expired", name)
    req = q(ctype, body).find(f"{{{SOAP}}}Body/m:DeliveryReportReq", ns)
    assert req.findtext("m:MM7Version", None, ns) == VERSIONS[name]
    assert [req.findtext(p, None, ns) for p in ("m:MessageID", "m:Recipient/m:Number", "m:Sender/m:ShortCode",
                                                 "m:MMStatus")] == ["mmsc-41", "8613800000001", "10658000", "Expired"]
    r = mm7.parse_delivery_report(ctype, body)
    assert (r.message_id, r.recipient, r.status, r.namespace) == ("mmsc-41", "8613800000001", "Expired", name)

    ctype, body = mm7.deliver_request("mo-1", "8613800000001", "10658000", "是 <好>", "回复", name)
    msg = mime(ctype, body)
    req = q(ctype, body).find(f"{{{SOAP}}}Body/m:DeliverReq", ns)
    assert req.findtext("m:Sender/m:Number", None, ns) == "8613800000001"
    assert req.findtext("m:Recipients/m:To/m:ShortCode", None, ns) == "10658000"
    assert by_id(list(msg.iter_parts()), req.find("m:Content", ns).get("href")).get_content() == "是 <好>"
    d = mm7.parse_deliver(ctype, body)
    assert (d.sender, d.recipients, d.subject, d.texts) == ("8613800000001", ["10658000"], "回复", ["是 <好>"])


def test_the_mmsc_reads_a_submit_as_the_tests_mmsc_does(mmsc):
    s = submit()
    ctype, body = mm7.submit_request(s)
    got = mm7.parse_submit_request(ctype, body)
    assert got == mm7.Submitted("tp-0001", "10658888", s.recipients, "周末特惠：全场五折", "REL-5-MM7-1-2")
    want = mmsc.check_submit(ctype, body)
    assert (got.transaction_id, got.sender, got.recipients, got.subject) == (
        want["transaction_id"], want["sender"], want["recipients"], want["subject"])
    with pytest.raises(MM7Error, match="expected SubmitReq"):
        mm7.parse_submit_request(*mm7.deliver_request("mo-1", "8613800000001", "10658000", "Y"))
