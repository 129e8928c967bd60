"""MM7 (3GPP TS 23.140) SOAP codec: the MMS channel's VASP side of an operator's MMSC.

    ctype, body = submit_request(Submit(...))           # POST to the MMSC, HTTP Basic auth
    result = parse_submit_response(rsp_ctype, rsp_body)  # a SubmitRsp, or a SOAP Fault's status
    outcome(result.status_code)                          # "sent", "retry" or "failed"

and what the MMSC posts to us: parse_delivery_report / delivery_report_response, parse_deliver /
deliver_response. The MMSC's side (parse_submit_request, submit_response, delivery_report_request,
deliver_request) is what `touchpoint demo`'s own MMSC speaks; the tests' MMSC is written apart.
A request is SOAP 1.1 in a multipart/related body: the envelope, then the content,
itself multipart/related with a SMIL presentation as its start. The parsers take bare or multipart
bodies, any namespace, the peer's prefixes and unqualified children (the spec's own examples have
them); anything else is an MM7Error, never another exception. XML goes through expat with any
DOCTYPE refused: no entities, so nothing to expand.

Spec: 3GPP TS 23.140 Release 5/6, the technical realisation of MM7 (SOAP binding, status codes).
"""
import base64
import binascii
import codecs
import functools
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import unquote
from xml.etree import ElementTree as ET
from xml.parsers import expat

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
_SCHEMA = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/"
# Short name -> (namespace, the MM7Version sent with it). The version is not the schema's spec
# version (REL-5-MM7-1-2 is of 23.140 v5.5.0, yet its peers send 5.3.0): these are the pairs MMSCs
# and VASP libraries use (Oracle OCSG, Mbuni, instantcom-mm7, Momentum, China Mobile's MM7 docs).
NAMESPACES = {name: (_SCHEMA + name, version) for name, version in (
    ("REL-5-MM7-1-0", "5.3.0"), ("REL-5-MM7-1-2", "5.3.0"), ("REL-6-MM7-1-0", "6.3.0"), ("REL-6-MM7-1-4", "6.8.0"))}
DEFAULT_NAMESPACE = "REL-5-MM7-1-2"

# Status codes and texts (23.140 Release 6; 2008, 2009, 3004 and 4008 are new in it).
STATUS = {
    1000: "Success", 1100: "Partial success",
    2000: "Client error", 2001: "Operation restricted", 2002: "Address Error", 2003: "Address Not Found",
    2004: "Multimedia content refused", 2005: "Message ID Not found", 2006: "LinkedID not found",
    2007: "Message format corrupt", 2008: "Application ID not found", 2009: "Reply Application ID not found",
    3000: "Server Error", 3001: "Not Possible", 3002: "Message rejected", 3003: "Multiple addresses not supported",
    3004: "Application Addressing not supported",
    4000: "General service error", 4001: "Improper identification", 4002: "Unsupported version",
    4003: "Unsupported operation", 4004: "Validation error", 4005: "Service error", 4006: "Service unavailable",
    4007: "Service denied", 4008: "Application denied",
}
# The only transient ones: 3000 "failed to fulfil an apparently valid request" and 4006 "temporarily
# unavailable". 3001 is "not possible" for a message past cancelling, 3003 asks for single-recipient
# requests and 4005 "should not be resent": the same request again would fail the same way.
_TRANSIENT = {3000, 4006}
MAX_SIZE = 300 * 1024   # what most MMSCs take; size() is what they count


class MM7Error(ValueError):
    """A request that cannot be encoded, or a message from the MMSC that cannot be understood."""


@dataclass
class Slide:
    text: str = ""
    image: bytes = b""
    image_type: str = ""    # from the image's first bytes when empty: image/jpeg, image/png, image/gif
    image_name: str = ""    # its Content-Location; slide<n>.<ext> when empty or not a plain ASCII name


@dataclass
class Submit:
    transaction_id: str
    vasp_id: str
    vas_id: str
    service_code: str
    sender: str             # a short code (up to 8 digits) or a number; empty: the MMSC's default
    recipients: list[str]   # MSISDNs, digits
    subject: str
    slides: list[Slide]
    delivery_report: bool = True
    namespace: str = DEFAULT_NAMESPACE
    linked_id: str = ""


@dataclass
class SubmitResult:
    status_code: int
    status_text: str
    message_id: str
    transaction_id: str


@dataclass
class DeliveryReport:
    transaction_id: str
    message_id: str
    recipient: str
    sender: str
    status: str             # MMStatus: Retrieved, Expired, Rejected, Deferred, Indeterminate, Forwarded, ...
    status_text: str
    date: str
    namespace: str = ""     # short name when known, else the URI: the response goes in it


@dataclass
class Deliver:
    transaction_id: str
    sender: str
    recipients: list[str]
    subject: str
    texts: list[str] = field(default_factory=list)
    linked_id: str = ""
    namespace: str = ""


@dataclass
class Submitted:
    """A SubmitReq as the MMSC reads it."""
    transaction_id: str
    sender: str
    recipients: list[str]
    subject: str
    namespace: str = ""


def outcome(status_code: int) -> str:
    """A SubmitRsp's status as the dispatcher acts on it.

    sent: 1000 Success, 1100 Partial success (and any other 1xxx, whose lower digits only say what
    part was not done). retry: 3000 Server Error, 4006 Service unavailable. failed: everything else,
    2xxx client errors, the other 3xxx and 4xxx, and codes the spec does not name."""
    if status_code // 1000 == 1:
        return "sent"
    return "retry" if status_code in _TRANSIENT else "failed"


# --- encoding ---------------------------------------------------------------------------------

_NUMBER = re.compile(r"\+?[0-9]{1,20}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_MEDIA_TYPE = re.compile(r"[a-z]+/[a-z0-9.+-]+")
_IMAGES = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"), (b"GIF8", "image/gif"))
_EXT = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif"}
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _esc(text: str) -> str:
    if m := _NOT_XML.search(text):
        raise MM7Error(f"character {m[0]!r} cannot go in XML: {text[:40]!r}")
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
            .replace("\r", "&#13;"))


def _x(name: str, value: str | list = "") -> str:
    """An element: `value` is its text, or a list of its children already written."""
    inner = "".join(value) if isinstance(value, list) else _esc(value)
    return f"<{name}>{inner}</{name}>"


def _namespace(namespace: str) -> tuple[str, str]:
    for name, (uri, version) in NAMESPACES.items():
        if namespace in (name, uri):
            return uri, version
    raise MM7Error(f"unknown MM7 namespace {namespace!r}: one of {', '.join(NAMESPACES)}")


def _envelope(uri: str, transaction_id: str, kind: str, message: list) -> bytes:
    return ('<?xml version="1.0" encoding="utf-8"?>\r\n'
            f'<env:Envelope xmlns:env="{SOAP_ENV}"><env:Header>'
            f'<mm7:TransactionID xmlns:mm7="{uri}" env:mustUnderstand="1">{_esc(transaction_id)}</mm7:TransactionID>'
            f'</env:Header><env:Body><{kind} xmlns="{uri}">{"".join(message)}</{kind}></env:Body></env:Envelope>'
            ).encode()


def _multipart(parts: list[tuple[list, bytes]], start: str, kind: str) -> tuple[str, bytes]:
    """(Content-Type, body) of a multipart/related of (headers, payload) parts, `start` its root."""
    boundary = "=_" + uuid.uuid4().hex     # "=_" is never in base64, and the rest is random
    while any(boundary.encode() in payload for _, payload in parts):
        boundary = "=_" + uuid.uuid4().hex
    delim = b"--" + boundary.encode()
    body = b"".join(delim + b"\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers).encode() + b"\r\n"
                    + payload + b"\r\n" for headers, payload in parts) + delim + b"--\r\n"
    return f'multipart/related; boundary="{boundary}"; type="{kind}"; start="<{start}>"', body


def _content(s: Submit) -> list[tuple[str, str, bytes]]:
    """The content's parts, (Content-Location, Content-Type, payload), the SMIL first: one <par> a
    slide, its image and text by Content-ID."""
    parts, pars = [], []
    for n, slide in enumerate(s.slides, 1):
        if not slide.text and not slide.image:
            raise MM7Error(f"slide {n} has neither text nor image")
        par = ""
        if slide.image:
            kind = slide.image_type or next((t for magic, t in _IMAGES if slide.image.startswith(magic)), "")
            if not _MEDIA_TYPE.fullmatch(kind):
                raise MM7Error(f"slide {n}: image type {kind or 'unknown'!r}, give image_type")
            name = slide.image_name if _NAME.fullmatch(slide.image_name) else f"slide{n}.{_EXT.get(kind, 'img')}"
            parts.append((name, kind, slide.image))
            par += f'<img src="cid:{name}" region="Image"/>'
        if slide.text:
            parts.append((f"slide{n}.txt", "text/plain; charset=utf-8", slide.text.encode()))
            par += f'<text src="cid:slide{n}.txt" region="Text"/>'
        pars.append(f'<par dur="5000ms">{par}</par>')
    names = [name for name, _, _ in parts]
    if len(set(names)) != len(names):
        raise MM7Error(f"two parts named alike: {names}")
    smil = ('<smil><head><layout><root-layout width="100%" height="100%"/>'
            '<region id="Image" top="0" left="0" width="100%" height="70%" fit="meet"/>'
            '<region id="Text" top="70%" left="0" width="100%" height="30%" fit="scroll"/>'
            f'</layout></head><body>{"".join(pars)}</body></smil>').encode()
    return [("presentation.smil", "application/smil", smil)] + parts


def size(s: Submit) -> int:
    """The bytes of the content the MMSC counts against its maximum (MAX_SIZE, often): the SMIL, the
    texts and the images decoded, as the handset fetches them (base64 on the wire is a third more)."""
    return sum(len(payload) for _, _, payload in _content(s))


def _encoded(payload: bytes, kind: str) -> tuple[str, bytes]:
    if not kind.startswith("image/") and b"\r" not in payload and max(map(len, payload.split(b"\n"))) <= 998:
        return "8bit", payload      # 998: the line limit of RFC 5322
    return "base64", base64.encodebytes(payload).replace(b"\n", b"\r\n").rstrip(b"\r\n")


def submit_request(s: Submit) -> tuple[str, bytes]:
    """The HTTP Content-Type and body of the SubmitReq for `s`."""
    uri, version = _namespace(s.namespace)
    if not s.transaction_id or not s.recipients or not s.slides:
        raise MM7Error("a SubmitReq needs a transaction id, recipients and a slide")
    if bad := [n for n in [*s.recipients, *([s.sender] if s.sender else [])] if not _NUMBER.fullmatch(n)]:
        raise MM7Error(f"{bad[0]!r} is not an MSISDN or short code (digits)")
    parts = []
    for name, kind, payload in _content(s):
        cte, data = _encoded(payload, kind)
        parts.append(([("Content-Type", kind), ("Content-Transfer-Encoding", cte), ("Content-ID", f"<{name}>"),
                       ("Content-Location", name)], data))
    content_type, content = _multipart(parts, "presentation.smil", "application/smil")
    content_id = f"content-{uuid.uuid4().hex}"
    sender = [_x(name, value) for name, value in (("VASPID", s.vasp_id), ("VASID", s.vas_id)) if value]
    if s.sender:
        short = len(s.sender) <= 8 and s.sender.isdigit()
        sender.append(_x("SenderAddress", [_x("ShortCode" if short else "Number", s.sender)]))
    req = [_x("MM7Version", version), _x("SenderIdentification", sender),
           _x("Recipients", [_x("To", [_x("Number", r)]) for r in s.recipients])]
    req += [_x("ServiceCode", s.service_code)] if s.service_code else []
    req += [_x("LinkedID", s.linked_id)] if s.linked_id else []
    req += [_x("DeliveryReport", "true" if s.delivery_report else "false")]
    req += [_x("Subject", s.subject)] if s.subject else []
    req += [f'<Content href="cid:{content_id}"/>']
    envelope = _envelope(uri, s.transaction_id, "SubmitReq", req)
    root_id = f"mm7-submit-{uuid.uuid4().hex}"
    return _multipart([([("Content-Type", 'text/xml; charset="utf-8"'), ("Content-ID", f"<{root_id}>")], envelope),
                       ([("Content-Type", content_type), ("Content-ID", f"<{content_id}>")], content)],
                      root_id, "text/xml")


def _response(kind: str, transaction_id: str, namespace: str, status_code: int, *more: str) -> tuple[str, bytes]:
    uri, version = _namespace(namespace)
    if not 0 <= status_code <= 9999:
        raise MM7Error(f"status code {status_code} is not four digits")
    status = _x("Status", [_x("StatusCode", str(status_code)), _x("StatusText", STATUS.get(status_code, ""))])
    return "text/xml; charset=utf-8", _envelope(uri, transaction_id, kind, [_x("MM7Version", version), status, *more])


def delivery_report_response(transaction_id: str, namespace: str = DEFAULT_NAMESPACE,
                             status_code: int = 1000) -> tuple[str, bytes]:
    """The DeliveryReportRsp to a DeliveryReportReq: (Content-Type, body)."""
    return _response("DeliveryReportRsp", transaction_id, namespace, status_code)


def deliver_response(transaction_id: str, namespace: str = DEFAULT_NAMESPACE,
                     status_code: int = 1000) -> tuple[str, bytes]:
    """The DeliverRsp to a DeliverReq: (Content-Type, body)."""
    return _response("DeliverRsp", transaction_id, namespace, status_code)


def submit_response(transaction_id: str, message_id: str, namespace: str = DEFAULT_NAMESPACE,
                    status_code: int = 1000) -> tuple[str, bytes]:
    """The MMSC's SubmitRsp: (Content-Type, body)."""
    return _response("SubmitRsp", transaction_id, namespace, status_code, _x("MessageID", message_id))


_now = lambda: datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _number(value: str) -> str:
    return _x("ShortCode" if len(value) <= 8 and value.isdigit() else "Number", value)


def delivery_report_request(transaction_id: str, message_id: str, recipient: str, sender: str,
                            status: str = "Retrieved", namespace: str = DEFAULT_NAMESPACE) -> tuple[str, bytes]:
    """The MMSC's DeliveryReportReq: the message `message_id` reached `recipient` (or not, by `status`)."""
    uri, version = _namespace(namespace)
    return "text/xml; charset=utf-8", _envelope(uri, transaction_id, "DeliveryReportReq", [
        _x("MM7Version", version), _x("MessageID", message_id), _x("Recipient", [_number(recipient)]),
        _x("Sender", [_number(sender)]), _x("Date", _now()), _x("MMStatus", status)])


def deliver_request(transaction_id: str, sender: str, recipient: str, text: str, subject: str = "",
                    namespace: str = DEFAULT_NAMESPACE) -> tuple[str, bytes]:
    """The MMSC's DeliverReq: an MMS of one text from the subscriber `sender` to the VASP's `recipient`."""
    uri, version = _namespace(namespace)
    req = [_x("MM7Version", version), _x("Sender", [_number(sender)]),
           _x("Recipients", [_x("To", [_number(recipient)])]), _x("TimeStamp", _now())]
    req += [_x("Subject", subject)] if subject else []
    req += ['<Content href="cid:text"/>']
    return _multipart([([("Content-Type", 'text/xml; charset="utf-8"'), ("Content-ID", "<envelope>")],
                        _envelope(uri, transaction_id, "DeliverReq", req)),
                       ([("Content-Type", "text/plain; charset=utf-8"), ("Content-Transfer-Encoding", "8bit"),
                         ("Content-ID", "<text>")], text.encode())], "envelope", "text/xml")


# --- parsing ----------------------------------------------------------------------------------

_PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')
_BLANK_LINE = re.compile(rb"(?:^|\r?\n)\r?\n")
_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]{1,40})["']""")
_XML_TYPES = ("text/xml", "application/xml", "application/soap+xml", "")


@dataclass
class _Part:
    ctype: str
    params: dict
    headers: dict
    data: bytes     # transfer-decoded


def _ctype(value: str) -> tuple[str, dict]:
    main, sep, rest = value.partition(";")
    params = {m[1].lower(): re.sub(r"\\(.)", r"\1", m[2][1:-1]) if m[2].startswith('"') else m[2].strip()
              for m in _PARAM.finditer(sep + rest)}
    return main.strip().lower(), params


_cid = lambda value: value.strip().strip("<>").strip()       # a Content-ID without its <>


def _part(raw: bytes) -> _Part:
    m = _BLANK_LINE.search(raw)
    head, data = (raw[:m.start()], raw[m.end():]) if m else (raw, b"")
    headers, name = {}, None
    for line in re.split(r"\r?\n", head.decode("latin-1")):
        if line[:1] in (" ", "\t") and name:
            headers[name] += " " + line.strip()
        elif ":" in line:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            headers[name] = value.strip()
        elif line.strip():
            raise MM7Error(f"not a MIME header line: {line[:40]!r}")
    ctype, params = _ctype(headers.get("content-type", "text/plain"))
    cte = headers.get("content-transfer-encoding", "").strip().lower()
    if cte == "base64":
        data = base64.b64decode(data)
    elif cte == "quoted-printable":
        data = binascii.a2b_qp(data)
    elif cte not in ("", "7bit", "8bit", "binary"):
        raise MM7Error(f"unknown Content-Transfer-Encoding {cte!r}")
    return _Part(ctype, params, headers, data)


def _split(body: bytes, boundary: str) -> list[_Part]:
    """The parts of a multipart body; the closing delimiter is required (a body cut short is no body)."""
    if not 0 < len(boundary) <= 200:
        raise MM7Error(f"multipart without a usable boundary ({boundary[:40]!r})")
    delim = b"\n--" + boundary.encode("latin-1")
    data = b"\n" + body
    at = data.find(delim)
    if at < 0:
        raise MM7Error(f"multipart: boundary {boundary!r} not found")
    parts = []
    while not data.startswith(b"--", at + len(delim)):
        eol = data.find(b"\n", at + len(delim))
        nxt = data.find(delim, eol) if eol >= 0 else -1
        if nxt < 0:
            raise MM7Error(f"multipart cut short: no closing boundary after byte {max(at, 0)}")
        parts.append(_part(data[eol + 1:nxt - 1 if data[nxt - 1:nxt] == b"\r" else nxt]))
        at = nxt
    if not parts:
        raise MM7Error("multipart with no parts")
    return parts


def _refuse(*_) -> None:
    raise MM7Error("XML with a DOCTYPE refused (entities are not expanded)")


def _decode(data: bytes, charset: str, errors: str = "strict") -> str:
    if codecs.lookup(charset).name in ("punycode", "idna"):    # quadratic: a hang on a hostile body
        raise MM7Error(f"charset {charset!r} refused")
    return data.decode(charset, errors)


def _xml(data: bytes, charset: str | None) -> ET.Element:
    """The element tree of `data`, tags as {namespace}local; no DOCTYPE, so no entity but the five."""
    if charset:
        data = _decode(data, charset)
    elif (m := _ENCODING.match(data)) and m[1].lower() not in (b"utf-8", b"us-ascii", b"iso-8859-1", b"utf-16"):
        data = _decode(data, m[1].decode())     # expat knows only those; a str it reads as it is
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator=" ")
    name = lambda n: "{%s}%s" % tuple(n.rsplit(" ", 1)) if " " in n else n
    parser.StartElementHandler = lambda n, attrs: builder.start(name(n), {k.rsplit(" ", 1)[-1]: v
                                                                          for k, v in attrs.items()})
    parser.EndElementHandler = lambda n: builder.end(name(n))
    parser.CharacterDataHandler = builder.data
    parser.StartDoctypeDeclHandler = parser.EntityDeclHandler = _refuse
    try:
        parser.Parse(data, True)
    except expat.ExpatError as e:
        raise MM7Error(f"SOAP XML not well-formed: {e}")
    return builder.close()


_local = lambda tag: tag.rpartition("}")[2]
_child = lambda el, name: None if el is None else next((c for c in el if _local(c.tag) == name), None)
_text = lambda el, name: "" if (c := _child(el, name)) is None else (c.text or "").strip()


def _address(el: ET.Element | None) -> str:
    """Number, ShortCode or RFC2822Address inside `el`, or its bare text (some MMSCs send that)."""
    return "" if el is None else ((el[0].text if len(el) else el.text) or "").strip()


def _status(el: ET.Element) -> tuple[int, str]:
    code = _text(el, "StatusCode")
    if not (code.isascii() and code.isdigit() and len(code) <= 6):
        raise MM7Error(f"StatusCode {code[:20]!r} is not a number")
    return int(code), _text(el, "StatusText") or STATUS.get(int(code), "")


def _soap(content_type: str, body: bytes, *expect: str) -> tuple[ET.Element, str, str, list]:
    """The Body's message (one of `expect`), the TransactionID, the namespace and the MIME parts."""
    if not isinstance(content_type, str) or not isinstance(body, (bytes, bytearray, memoryview)):
        raise MM7Error("the Content-Type is a str and the body bytes")
    ctype, params = _ctype(content_type)
    parts, xml, charset = [], bytes(body), params.get("charset")
    if ctype.startswith("multipart/"):
        parts = _split(xml, params.get("boundary", ""))
        start = _cid(params.get("start", ""))
        root = next((p for p in parts if _cid(p.headers.get("content-id", "")) == start), None) if start else parts[0]
        if root is None:
            raise MM7Error(f"no part has the start Content-ID <{start}>")
        xml, charset = root.data, root.params.get("charset")
    elif ctype not in _XML_TYPES:
        raise MM7Error(f"not a SOAP message: Content-Type {ctype!r}")
    envelope = _xml(xml, charset)
    body_el = _child(envelope, "Body")
    message = body_el[0] if body_el is not None and len(body_el) else None
    if _local(envelope.tag) != "Envelope" or message is None:
        raise MM7Error(f"not a SOAP envelope with a Body: <{_local(envelope.tag)}>")
    if _local(message.tag) not in expect:
        raise MM7Error(f"expected {' or '.join(expect)}, got {_local(message.tag)}")
    tid = _child(_child(envelope, "Header"), "TransactionID")
    uri = (message.tag if message.tag.startswith("{") else tid.tag if tid is not None else "")[1:].partition("}")[0]
    short = next((name for name, (ns, _) in NAMESPACES.items() if ns == uri), uri)
    return message, (tid.text or "").strip() if tid is not None else "", short, parts


def _guarded(parse):
    """Anything the parsing below trips on is the message's fault: an MM7Error saying what."""
    @functools.wraps(parse)
    def guarded(content_type, body):
        try:
            return parse(content_type, body)
        except MM7Error:
            raise
        except (ValueError, LookupError) as e:      # UnicodeError and binascii.Error are ValueErrors
            raise MM7Error(f"unparseable MM7 message: {type(e).__name__}: {e}")
    return guarded


@_guarded
def parse_submit_response(content_type: str, body: bytes) -> SubmitResult:
    """The SubmitRsp's status and MessageID; a SOAP Fault's RSErrorRsp (or VASPErrorRsp) status."""
    m, tid, _, _ = _soap(content_type, body, "SubmitRsp", "Fault")
    if _local(m.tag) == "Fault":
        status = next((el for el in m.iter() if _child(el, "StatusCode") is not None), None)
        if status is None:
            raise MM7Error(f"SOAP Fault without an MM7 status: {_text(m, 'faultcode')} {_text(m, 'faultstring')!r}")
        return SubmitResult(*_status(status), "", tid)
    if (status := _child(m, "Status")) is None:
        raise MM7Error("SubmitRsp without a Status")
    return SubmitResult(*_status(status), _text(m, "MessageID"), tid)


@_guarded
def parse_submit_request(content_type: str, body: bytes) -> Submitted:
    """A SubmitReq as the MMSC reads it: whom it is for, from which sender, and its subject."""
    m, tid, namespace, _ = _soap(content_type, body, "SubmitReq")
    to = _child(m, "Recipients")
    recipients = [_address(a) for a in (to if to is not None else ()) if _local(a.tag) in ("To", "Cc", "Bcc")]
    sender = _address(_child(_child(m, "SenderIdentification"), "SenderAddress"))
    return Submitted(tid, sender, recipients, _text(m, "Subject"), namespace)


@_guarded
def parse_delivery_report(content_type: str, body: bytes) -> DeliveryReport:
    """A DeliveryReportReq from the MMSC: which message reached (or did not reach) whom."""
    m, tid, namespace, _ = _soap(content_type, body, "DeliveryReportReq")
    report = DeliveryReport(tid, _text(m, "MessageID"), _address(_child(m, "Recipient")), _address(_child(m, "Sender")),
                            _text(m, "MMStatus"), _text(m, "StatusText") or _text(m, "MMStatusText"),
                            _text(m, "Date") or _text(m, "TimeStamp"), namespace)
    if not report.message_id or not report.status:
        raise MM7Error("DeliveryReportReq without a MessageID or an MMStatus")
    return report


def _leaves(part: _Part, depth: int = 0):
    if not part.ctype.startswith("multipart/"):
        yield part
        return
    if depth >= 8:
        raise MM7Error("multipart nested deeper than 8: hostile")
    for p in _split(part.data, part.params.get("boundary", "")):
        yield from _leaves(p, depth + 1)


@_guarded
def parse_deliver(content_type: str, body: bytes) -> Deliver:
    """A DeliverReq: an MMS a subscriber sent to the VASP, its texts (text/plain parts) in order."""
    m, tid, namespace, parts = _soap(content_type, body, "DeliverReq")
    texts = []
    if (content := _child(m, "Content")) is not None:
        href = content.get("href", "")
        cid = unquote(href[4:]) if href.lower().startswith("cid:") else None
        part = next((p for p in parts if (_cid(p.headers.get("content-id", "")) == cid if cid is not None
                                               else p.headers.get("content-location") == href)), None)
        if part is None:
            raise MM7Error(f"the Content {href[:60]!r} is in no part")
        for leaf in _leaves(part):
            if leaf.ctype == "text/plain":
                try:
                    texts.append(_decode(leaf.data, leaf.params.get("charset") or "utf-8", "replace"))
                except (LookupError, MM7Error):     # a charset we cannot or will not read: UTF-8, the likeliest
                    texts.append(leaf.data.decode("utf-8", "replace"))
    to = _child(m, "Recipients")
    recipients = [_address(a) for a in (to if to is not None else ()) if _local(a.tag) in ("To", "Cc", "Bcc")]
    return Deliver(tid, _address(_child(m, "Sender")), recipients, _text(m, "Subject"), texts, _text(m, "LinkedID"),
                   namespace)
