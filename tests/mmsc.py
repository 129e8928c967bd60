"""A test MMSC: the MMS Relay/Server end of MM7 (3GPP TS 23.140), on loopback.

Written apart from control/mm7.py (it imports nothing of touchpoint) so that it checks our encoder
with code we did not write: Python's email package reads the MIME, ElementTree the SOAP, and the
requests it makes of the VASP it builds with ElementTree and email.mime.

    with Mmsc(user, password, status_for=lambda msisdn: 1000) as mmsc:
        ... POST SubmitReqs to mmsc.url with HTTP Basic auth ...
        mmsc.received       # a dict a SubmitReq accepted: transaction_id, recipients, subject, texts,
                            # images [(type, length)], size (decoded content bytes), namespace, ...
        mmsc.errors         # why it refused the others (answered with a 4004 Validation error Fault)

A SubmitReq is checked as an MMSC would: the SOAP envelope, TransactionID mustUnderstand, the
MM7Version its namespace goes with, the Content part its href names, and every src of the SMIL a
part by Content-ID or Content-Location. The answer is a SubmitRsp with a fresh MessageID and the
status status_for(msisdn) gives each recipient (all alike: that one; some 1000: 1100).

Modes, attributes a test may change while it runs: slow (seconds to wait before answering), dead
(reads the request, closes the connection unanswered), http_status (that status and no SOAP), faults
(statuses past 1xxx as a SOAP Fault with an RSErrorRsp, HTTP 500), multipart (answers in a
multipart/related). Towards the VASP: send_delivery_report(...) and send_deliver(...).
"""
import base64
import http.client
import itertools
import threading
import uuid
from email import policy
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
SCHEMA = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/"
# The MM7Version a request in each namespace must carry: our own table, so a slip in mm7.py shows.
VERSIONS = {"REL-5-MM7-1-0": "5.3.0", "REL-5-MM7-1-2": "5.3.0", "REL-6-MM7-1-0": "6.3.0", "REL-6-MM7-1-4": "6.8.0"}


class Invalid(Exception):
    """What is wrong with a request the MMSC refuses."""


def mime(content_type: str, body: bytes):
    return BytesParser(policy=policy.default).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)


def mime_body(msg) -> tuple[str, bytes]:
    """(Content-Type, body) of an email.mime message, to send over HTTP."""
    data = msg.as_bytes(policy=policy.HTTP)
    return str(msg["Content-Type"]), data.partition(b"\r\n\r\n")[2]


def by_id(parts, ref: str):
    """The part a cid: URL or a Content-Location names, or None."""
    if ref.startswith("cid:"):
        return next((p for p in parts if str(p.get("Content-ID", "")).strip() == f"<{ref[4:]}>"), None)
    return next((p for p in parts if str(p.get("Content-Location", "")).strip() == ref), None)


def root_part(msg):
    """The SOAP part of a message: itself, or the multipart's start (its first part without one)."""
    if not msg.is_multipart():
        return msg
    parts, start = list(msg.iter_parts()), msg.get_param("start")
    root = by_id(parts, f"cid:{start.strip('<>')}") if start else parts[0]
    if root is None:
        raise Invalid(f"no part has the start Content-ID {start}")
    return root


def envelope(ns: str, transaction_id: str, message) -> bytes:
    env = ET.Element(f"{{{SOAP}}}Envelope")
    tid = ET.SubElement(ET.SubElement(env, f"{{{SOAP}}}Header"), f"{{{ns}}}TransactionID",
                        {f"{{{SOAP}}}mustUnderstand": "1"})
    tid.text = transaction_id
    ET.SubElement(env, f"{{{SOAP}}}Body").append(message)
    return ET.tostring(env, encoding="utf-8", xml_declaration=True)


def element(tag: str, *children, text: str | None = None, **attrs):
    el = ET.Element(tag, attrs)
    el.text = text
    el.extend(children)
    return el


def status_element(ns: str, code: int, text: str = ""):
    q = lambda name: f"{{{ns}}}{name}"
    return element(q("Status"), element(q("StatusCode"), text=str(code)), element(q("StatusText"), text=text or "-"))


def status_code(content_type: str, body: bytes) -> int | None:
    """The StatusCode anywhere in a SOAP answer, bare or multipart; None when there is none."""
    try:
        env = ET.fromstring(root_part(mime(content_type, body)).get_payload(decode=True))
    except (ET.ParseError, Invalid, TypeError):
        return None
    code = next((el.text for el in env.iter() if el.tag.rpartition("}")[2] == "StatusCode"), None)
    return int(code) if code and code.strip().isdigit() else None


def post(url: str, content_type: str, body: bytes, auth=None, timeout: float = 10.0) -> tuple[int, str, bytes]:
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    headers = {"Content-Type": content_type, "SOAPAction": '""'}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    try:
        conn.request("POST", u.path or "/", body, headers)
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type", ""), r.read()
    finally:
        conn.close()


class Mmsc:
    """The MMSC on 127.0.0.1, an ephemeral port, a thread of http.server's ThreadingHTTPServer."""

    def __init__(self, user: str = "vasp", password: str = "secret", status_for=None, *, slow: float = 0.0,
                 dead: bool = False, http_status: int | None = None, faults: bool = False,
                 multipart: bool = False, path: str = "/mm7"):
        self.user, self.password, self.path = user, password, path
        self.status_for = status_for or (lambda msisdn: 1000)
        self.slow, self.dead, self.http_status, self.faults, self.multipart = slow, dead, http_status, faults, multipart
        self.received, self.errors = [], []
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.prefix = uuid.uuid4().hex[:8]
        self.stopping = threading.Event()
        self.server = self.thread = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{self.path}"

    def start(self) -> "Mmsc":
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()                 # wakes the slow answers
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def __enter__(self) -> "Mmsc":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- the MMSC's side of a SubmitReq ---------------------------------------------------------

    def check_submit(self, content_type: str, body: bytes) -> dict:
        """The SubmitReq's fields, or Invalid saying what an MMSC would refuse it for."""
        msg = mime(content_type, body)
        if msg.get_content_type() != "multipart/related" or msg.get_param("type") != "text/xml":
            raise Invalid(f"a SubmitReq is multipart/related with type text/xml, not {content_type!r}")
        root = root_part(msg)
        if root.get_content_type() != "text/xml":
            raise Invalid(f"the SOAP part is {root.get_content_type()}")
        env = ET.fromstring(root.get_payload(decode=True))
        tid = env.find(f"{{{SOAP}}}Header/*")
        if env.tag != f"{{{SOAP}}}Envelope" or tid is None or not tid.tag.endswith("}TransactionID"):
            raise Invalid("no SOAP Envelope with a TransactionID header")
        ns = tid.tag[1:].partition("}")[0]
        short = ns.removeprefix(SCHEMA)
        if short not in VERSIONS or tid.get(f"{{{SOAP}}}mustUnderstand") != "1":
            raise Invalid(f"TransactionID in namespace {ns!r}, mustUnderstand {tid.get(f'{{{SOAP}}}mustUnderstand')}")
        m = {"m": ns}
        req = env.find("{%s}Body/m:SubmitReq" % SOAP, m)
        if req is None:
            raise Invalid("no SubmitReq in the Body, in the TransactionID's namespace")
        text = lambda path: (req.findtext(path, None, m) or "").strip()
        if text("m:MM7Version") != VERSIONS[short]:
            raise Invalid(f"MM7Version {text('m:MM7Version')!r} with {short}, not {VERSIONS[short]}")
        if text("m:DeliveryReport") not in ("true", "false"):
            raise Invalid(f"DeliveryReport {text('m:DeliveryReport')!r}")
        recipients = [n.text for n in req.findall("m:Recipients/m:To/m:Number", m)]
        if not recipients or not all(r and r.lstrip("+").isdigit() for r in recipients):
            raise Invalid(f"recipients {recipients}")
        sender = req.find("m:SenderIdentification/m:SenderAddress/*", m)
        href = req.find("m:Content", m)
        content = by_id(list(msg.iter_parts()), href.get("href", "")) if href is not None else None
        if content is None or content.get_content_type() != "multipart/related":
            raise Invalid("the Content href names no multipart/related part")
        parts = list(content.iter_parts())
        for p in parts:
            if not p.get("Content-ID") or not p.get("Content-Location"):
                raise Invalid(f"a {p.get_content_type()} part without Content-ID or Content-Location")
        start = content.get_param("start")
        smil = by_id(parts, f"cid:{start.strip('<>')}") if start else parts[0]
        if smil is None or smil.get_content_type() != "application/smil":
            raise Invalid("the content's start is no SMIL")
        for el in ET.fromstring(smil.get_payload(decode=True)).iter():
            if "src" in el.attrib:
                target = by_id(parts, el.get("src"))
                if target is None or target.get_content_maintype() != {"img": "image"}.get(el.tag, el.tag):
                    raise Invalid(f"SMIL <{el.tag} src={el.get('src')!r}> names no such part")
        return {
            "transaction_id": (tid.text or "").strip(), "namespace": short, "recipients": recipients,
            "subject": text("m:Subject"), "sender": (sender.text or "").strip() if sender is not None else "",
            "vasp_id": text("m:SenderIdentification/m:VASPID"), "vas_id": text("m:SenderIdentification/m:VASID"),
            "service_code": text("m:ServiceCode"), "linked_id": text("m:LinkedID"),
            "delivery_report": text("m:DeliveryReport") == "true",
            "texts": [p.get_content() for p in parts if p.get_content_type() == "text/plain"],
            "images": [(p.get_content_type(), len(p.get_content())) for p in parts
                       if p.get_content_maintype() == "image"],
            "size": sum(len(p.get_payload(decode=True)) for p in parts),
        }

    def answer(self, record: dict) -> tuple[int, str, bytes]:
        """The SubmitRsp (or Fault) to an accepted SubmitReq: (HTTP status, Content-Type, body)."""
        codes = [self.status_for(r) for r in record["recipients"]]
        code = codes[0] if len(set(codes)) == 1 else 1100 if 1000 in codes else next(c for c in codes if c != 1000)
        ns = SCHEMA + record["namespace"]
        if self.faults and code >= 2000:
            return (500, *self.reply(ns, record["transaction_id"], fault(ns, code, f"status {code}")))
        q = lambda name: f"{{{ns}}}{name}"
        rsp = element(q("SubmitRsp"), element(q("MM7Version"), text=VERSIONS[record["namespace"]]),
                      status_element(ns, code, f"status {code}"))
        if code < 2000:
            record["message_id"] = f"{self.prefix}-{next(self.ids):x}"
            rsp.append(element(q("MessageID"), text=record["message_id"]))
        return (200, *self.reply(ns, record["transaction_id"], rsp))

    def reply(self, ns: str, transaction_id: str, message) -> tuple[str, bytes]:
        xml = envelope(ns, transaction_id, message)
        if not self.multipart:
            return "text/xml; charset=utf-8", xml
        outer = MIMEMultipart("related", boundary=f"rsp-{uuid.uuid4().hex}", type="text/xml", start="<rsp>")
        part = MIMEText(xml.decode(), "xml", "utf-8")
        part["Content-ID"] = "<rsp>"
        outer.attach(part)
        return mime_body(outer)

    # --- the MMSC towards the VASP --------------------------------------------------------------

    def send_delivery_report(self, url: str, message_id: str, recipient: str, status: str = "Retrieved",
                             auth=None, sender: str = "10658888", namespace: str = "REL-5-MM7-1-2",
                             date: str = "2026-11-29T10:00:00+08:00") -> tuple[int, int | None]:
        """POST a DeliveryReportReq to the VASP at `url`: (HTTP status, the answer's StatusCode)."""
        ns = SCHEMA + namespace
        q = lambda name: f"{{{ns}}}{name}"
        req = element(q("DeliveryReportReq"), element(q("MM7Version"), text=VERSIONS[namespace]),
                      element(q("MMSRelayServerID"), text="test-mmsc"), element(q("MessageID"), text=message_id),
                      element(q("Recipient"), element(q("Number"), text=recipient)),
                      element(q("Sender"), element(q("ShortCode"), text=sender)),
                      element(q("Date"), text=date), element(q("MMStatus"), text=status),
                      element(q("StatusText"), text=f"message {status.lower()}"))
        status_, ctype, body = post(url, "text/xml; charset=utf-8", envelope(ns, uuid.uuid4().hex, req), auth)
        return status_, status_code(ctype, body)

    def send_deliver(self, url: str, sender: str, recipient: str, subject: str, text: str, auth=None,
                     namespace: str = "REL-5-MM7-1-2", linked_id: str = "") -> tuple[int, int | None]:
        """POST a DeliverReq (an MO MMS: a SMIL and a text part) to the VASP: (HTTP status, StatusCode)."""
        ns = SCHEMA + namespace
        q = lambda name: f"{{{ns}}}{name}"
        req = element(q("DeliverReq"), element(q("MM7Version"), text=VERSIONS[namespace]),
                      element(q("MMSRelayServerID"), text="test-mmsc"),
                      *([element(q("LinkedID"), text=linked_id)] if linked_id else []),
                      element(q("Sender"), element(q("Number"), text=sender)),
                      element(q("Recipients"), element(q("To"), element(q("ShortCode"), text=recipient))),
                      element(q("TimeStamp"), text="2026-11-29T10:00:00+08:00"),
                      element(q("Subject"), text=subject), element(q("Content"), href="cid:mo-content"))
        content = MIMEMultipart("related", boundary=f"mo-{uuid.uuid4().hex}", type="application/smil",
                                start="<mo.smil>")
        smil = MIMEText('<smil><body><par><text src="mo.txt"/></par></body></smil>', "smil", "utf-8")
        smil.replace_header("Content-Type", 'application/smil; charset="utf-8"')
        words = MIMEText(text, "plain", "utf-8")
        for part, cid, location in ((smil, "<mo.smil>", "mo.smil"), (words, "<mo.txt>", "mo.txt")):
            part["Content-ID"], part["Content-Location"] = cid, location
            content.attach(part)
        content["Content-ID"] = "<mo-content>"
        soap = MIMEText(envelope(ns, uuid.uuid4().hex, req).decode(), "xml", "utf-8")
        soap["Content-ID"] = "<mo-soap>"
        outer = MIMEMultipart("related", boundary=f"mo-{uuid.uuid4().hex}", type="text/xml", start="<mo-soap>")
        outer.attach(soap)
        outer.attach(content)
        status_, ctype, body = post(url, *mime_body(outer), auth)
        return status_, status_code(ctype, body)


def fault(ns: str, code: int, text: str):
    """A SOAP 1.1 Fault with the MM7 status in an RSErrorRsp detail."""
    q = lambda name: f"{{{ns}}}{name}"
    return element(f"{{{SOAP}}}Fault", element("faultcode", text="env:Server" if code // 1000 == 3 else "env:Client"),
                   element("faultstring", text=text),
                   element("detail", element(q("RSErrorRsp"), element(q("MM7Version"), text="5.3.0"),
                                             status_element(ns, code, text))))


def _handler(mmsc: Mmsc):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True      # the headers and the answer are two writes: no 40 ms stall

        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if mmsc.dead:
                self.close_connection = True
                return
            expected = "Basic " + base64.b64encode(f"{mmsc.user}:{mmsc.password}".encode()).decode()
            if self.headers.get("Authorization") != expected:
                return self.send(401, "text/plain", b"authorization required",
                                 ("WWW-Authenticate", 'Basic realm="MM7"'))
            if mmsc.slow:
                mmsc.stopping.wait(mmsc.slow)
            if mmsc.http_status:
                return self.send(mmsc.http_status, "text/plain", b"the MMSC is not answering SOAP")
            try:
                record = mmsc.check_submit(self.headers.get("Content-Type", ""), body)
            except (Invalid, ET.ParseError, LookupError, ValueError, AttributeError, TypeError) as e:
                with mmsc.lock:
                    mmsc.errors.append(f"{type(e).__name__}: {e}")
                ns = SCHEMA + "REL-5-MM7-1-2"
                return self.send(500, *mmsc.reply(ns, "", fault(ns, 4004, str(e))))
            status, ctype, data = mmsc.answer(record)
            with mmsc.lock:
                mmsc.received.append(record)
            self.send(status, ctype, data)

        def send(self, status: int, ctype: str, data: bytes, *headers) -> None:
            self.send_response(status)
            for k, v in (("Content-Type", ctype), ("Content-Length", str(len(data))), *headers):
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

    return Handler
