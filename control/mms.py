"""The `mms` channel: picture messages over MM7 (3GPP TS 23.140) to the operator's MMSC.

    ch = MmsChannel("http://mmsc:8080/mm7", user="vasp", password="...", vasp_id="SP01", listen="0.0.0.0:8790",
                    listen_password="...")
    ch.start(on_result, on_mo)
    ch.send(Outgoing(id, msisdn, source, text, campaign, slides))    # text: Message.render's JSON

Each message is one SubmitReq (control.mm7), `window` of them in flight, at most `rate` a second,
its TransactionID the outbox's message id. The SubmitRsp's status decides (mm7.outcome): sent,
with the MMSC's MessageID kept for its delivery report; retry (3000, 4006, an HTTP 5xx or 429,
a refused connection, a wrong password: nothing was taken); failed. A request that went out and
got no answer (the MMSC closed the connection, or took longer than `timeout`) may have been
taken: it is `failed: mm7_no_answer`, never sent again, as SMPP's are after a crash, so a
subscriber never gets a picture message twice.

With `listen`, an HTTP endpoint takes what the MMSC posts, with HTTP Basic authentication
(`listen_user`, `listen_password`): a DeliveryReportReq is the message's receipt (Retrieved:
delivered; Expired, Rejected, Unrecognised: failed; others change nothing), matched by the
MessageID; a DeliverReq (an MO picture message to the VASP) goes to on_mo with its text and
recipient, as an SMPP deliver_sm does.
"""
import base64
import hmac
import http.client
import json
import os
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import mm7
from .outgoing import Posting

REBIND_S = 5.0                 # seconds between tries to bind a listen address another process holds
MAX_REQUEST = 4 << 20           # bytes of a request from the MMSC that are read at most
DELIVERED = {"retrieved": "delivered"}
UNDELIVERED = {"expired", "rejected", "unrecognised", "unrecognized"}


class MmsChannel(Posting):
    name = "mms"

    def __init__(self, url: str, user: str = "", password: str = "", vasp_id: str = "", vas_id: str = "",
                 service_code: str = "", source: str = "", namespace: str = mm7.DEFAULT_NAMESPACE,
                 delivery_report: str = "true", max_size: int = mm7.MAX_SIZE, window: int = 4, timeout: float = 30,
                 rate: float | None = None, listen: str = "", listen_user: str = "mmsc", listen_password: str = "",
                 journal: str = "", say=None):
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"url: {url!r} is not an http:// or https:// URL")
        if listen and not listen_password:
            raise ValueError("listen: the MMSC's delivery reports need listen_password (HTTP Basic authentication)")
        super().__init__(url, u, window, timeout, rate, say,
                         dict(sent=0, failed=0, retried=0, no_answer=0, reports=0, mo=0, refused_requests=0))
        self.auth = basic_auth(user, password) if user or password else None
        self.ids = dict(vasp_id=vasp_id, vas_id=vas_id, service_code=service_code)
        self.source, self.namespace = source, namespace
        self.delivery_report = delivery_report == "true"
        self.max_size = max_size
        self.listen, self.listen_auth = listen, basic_auth(listen_user, listen_password) if listen else None
        self.listen_error = ""
        self.journal_path, self.journal, self.posted = journal, None, set()
        self.server = None

    # ---- the dispatcher's side --------------------------------------------------------------------

    def recover(self, ids) -> dict:
        """After a crash, of the messages left `sending`: {id: MessageID} of those the MMSC took
        (its answer in the journal); unsent() tells those never posted."""
        self.posted, taken = set(), {}
        try:
            with open(self.journal_path, encoding="ascii", errors="replace") as f:
                for line in f:
                    what, _, rest = line.rstrip("\n").partition(" ")
                    mid, _, mmsc_id = rest.partition(" ")
                    if what == "P":
                        self.posted.add(mid)
                    elif what == "A" and line.endswith("\n"):
                        taken[mid] = mmsc_id or None
        except (OSError, TypeError):
            pass
        return {i: taken[i] for i in ids if i in taken}

    def unsent(self, ids) -> list:
        """Of these, the messages whose SubmitReq never went out: safe to send again."""
        return [i for i in ids if i not in self.posted]

    def start(self, on_result, on_mo=None) -> None:
        self.on_mo = on_mo or (lambda *a, **k: None)
        if self.journal_path:               # what it recorded is resolved (recover): anew
            fd = os.open(self.journal_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            self.journal = os.fdopen(fd, "w", encoding="ascii")
        super().start(on_result)
        if self.listen and not self._bind():
            threading.Thread(target=self._rebind, name="mms listen", daemon=True).start()

    def _bind(self) -> bool:
        """Serve the endpoint from now on; False (and said) when its address is taken or wrong."""
        host, port = self.listen.rsplit(":", 1)
        with self.lock:         # stop() sees the server made, or this sees it stopping
            if self.stopping.is_set():
                return True
            try:
                self.server = ThreadingHTTPServer((host, int(port)), _handler(self))
            except (OSError, OverflowError) as e:
                why = f"listen {self.listen}: {getattr(e, 'strerror', None) or e}"
                if why != self.listen_error:
                    self.say(f"{why}: delivery reports and MO wait, tried again every {REBIND_S:g} s")
                self.listen_error = why
                return False
            self.server.daemon_threads = True
            self.listen_error = ""
            threading.Thread(target=self.server.serve_forever, name="mms reports", daemon=True).start()
        return True

    def _rebind(self) -> None:
        while not self.stopping.wait(REBIND_S) and not self._bind():
            pass

    @property
    def listening(self) -> str:
        """The endpoint's address as bound (port 0: the one the system chose)."""
        if self.server is None:
            return ""
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def health(self) -> dict:
        return {**super().health(), "listening": self.listening, **({"listen_error": self.listen_error}
                                                                    if self.listen_error else {})}

    def stop(self, timeout: float = 5.0) -> None:
        """Stop taking messages (those not yet posted go back as `retry`), and the endpoint."""
        super().stop(timeout)
        with self.lock:
            server = self.server
        if server is not None:
            server.shutdown()
            server.server_close()
        if self.journal is not None:
            with self.lock:
                self.journal.close()
                self.journal = None

    # ---- SubmitReq ------------------------------------------------------------------------------------

    def request(self, msg) -> tuple:
        """(Content-Type, body) of the message's SubmitReq; MM7Error when it cannot be one."""
        content = _content(msg.text)
        images = list(msg.slides) + [None] * max(0, len(content["slides"]) - len(msg.slides))
        pages = [mm7.Slide(text, s.image if s else b"", image_name=s.image_name if s else "")
                 for text, s in zip(content["slides"], images)]
        submit = mm7.Submit(msg.id, sender=msg.source or self.source, recipients=[msg.msisdn],
                            subject=content["subject"], slides=pages, delivery_report=self.delivery_report,
                            namespace=self.namespace, **self.ids)
        if mm7.size(submit) > self.max_size:
            raise mm7.MM7Error(f"{mm7.size(submit):,} bytes, over max_size {self.max_size:,}")
        return mm7.submit_request(submit)

    def _deliver(self, msg, conn):
        try:
            ctype, body = self.request(msg)
        except (mm7.MM7Error, ValueError) as e:
            self._result(msg.id, "failed", f"mm7_unsendable: {e}")
            return conn
        while (wait := self.bucket.wait()) > 0:
            if self.stopping.wait(wait):
                self._result(msg.id, "retry", "stopped")
                return conn
        headers = {"Content-Type": ctype, "SOAPAction": '""', **({"Authorization": self.auth} if self.auth else {})}
        for fresh in (False, True):         # a kept connection the MMSC closed while idle: once more, anew
            reused = conn is not None and not fresh
            sent = False
            try:
                if conn is None or fresh:
                    if conn is not None:
                        conn.close()
                    cls = http.client.HTTPSConnection if self.u.scheme == "https" else http.client.HTTPConnection
                    conn = cls(self.u.hostname, self.u.port, timeout=self.timeout)
                    conn.connect()
                self._note(f"P {msg.id}")      # before it goes: after a crash, it may have been taken
                conn.request("POST", (self.u.path or "/") + (f"?{self.u.query}" if self.u.query else ""), body,
                             headers)
                sent = True
                resp = conn.getresponse()
                data, status = resp.read(1 << 20), resp.status
                rsp_type = resp.getheader("Content-Type", "")
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
                break
            except (OSError, http.client.HTTPException) as e:
                if conn is not None:
                    conn.close()
                conn = None
                if reused and isinstance(e, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)):
                    continue
                if sent:                    # it may have been taken: never twice
                    self.counts["no_answer"] += 1
                    self._error(f"no answer: {type(e).__name__}: {e}")
                    self._result(msg.id, "failed", "mm7_no_answer")
                else:
                    self._error(f"cannot connect: {type(e).__name__}: {e}")
                    self._result(msg.id, "retry", "mm7_unreachable")
                return conn
        return self._answer(msg, status, rsp_type, data, conn)

    def _answer(self, msg, status: int, rsp_type: str, data: bytes, conn):
        try:
            rsp = mm7.parse_submit_response(rsp_type, data)
        except mm7.MM7Error as e:
            if status in (401, 403, 429) or status >= 500:     # nothing was taken
                self._error(f"http {status}")
                self._result(msg.id, "retry", f"http_{status}")
            else:
                self._error(f"http {status}: {e}")
                self._result(msg.id, "failed", f"mm7_bad_answer: http {status}")
            return conn
        self.ok_at, self.last_error = time.monotonic(), ""
        what = mm7.outcome(rsp.status_code)
        reason = "" if what == "sent" else f"mm7_{rsp.status_code}"
        if what == "sent":
            self._note(f"A {msg.id} {rsp.message_id}")
        self._result(msg.id, what, reason, (rsp.message_id or None) if what == "sent" else None)
        return conn

    def _note(self, line: str) -> None:
        """A line of the journal (DATA/mms-journal.log), in the page cache before the request goes:
        a killed dispatcher knows what it had posted (a host crash may lose the last lines)."""
        with self.lock:
            if self.journal is not None:
                self.journal.write(line + "\n")
                self.journal.flush()

    def _error(self, why: str) -> None:
        if why != self.last_error:
            self.say(f"{self.url}: {why}")
        self.last_error = why

    # ---- what the MMSC posts ------------------------------------------------------------------------

    def received(self, ctype: str, body: bytes) -> tuple:
        """A DeliveryReportReq or DeliverReq from the MMSC: (Content-Type, body) of the answer."""
        try:
            dr = mm7.parse_delivery_report(ctype, body)
        except mm7.MM7Error:
            dr = None
        if dr is not None:
            self.counts["reports"] += 1
            status = dr.status.strip().lower()
            if status in DELIVERED:
                self._result(None, "delivered", "", dr.message_id)
            elif status in UNDELIVERED:
                self._result(None, "failed", f"mm7_{status}", dr.message_id)
            return mm7.delivery_report_response(dr.transaction_id, _known(dr.namespace, self.namespace))
        mo = mm7.parse_deliver(ctype, body)
        self.counts["mo"] += 1
        try:
            self.on_mo(mo.sender, "\n".join(mo.texts).strip() or mo.subject, False,
                       mo.recipients[0] if mo.recipients else "")
        except Exception as e:  # noqa: BLE001 - a failing callback must not refuse the MMSC's MO
            self.say(f"on_mo failed: {type(e).__name__}: {e}")
        return mm7.deliver_response(mo.transaction_id, _known(mo.namespace, self.namespace))


def _content(text: str) -> dict:
    """The outbox's text of a picture message (campaigns.Message.render): subject and slide texts."""
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("slides"), list):
        return {"subject": str(doc.get("subject", "")), "slides": [str(t) for t in doc["slides"]]}
    return {"subject": "", "slides": [text]}        # a text message sent as a picture message


def _known(namespace: str, default: str) -> str:
    return namespace if namespace in mm7.NAMESPACES else default


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _handler(channel: MmsChannel):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True      # the headers and the answer are two writes: no 40 ms stall

        def do_POST(self):
            if not hmac.compare_digest(self.headers.get("Authorization", ""), channel.listen_auth):
                return self._reply(401, "text/plain", b"authentication required\n",
                                   {"WWW-Authenticate": 'Basic realm="touchpoint"'})
            try:
                n = int(self.headers.get("Content-Length", ""))
            except ValueError:
                return self._reply(411, "text/plain", b"Content-Length required\n")
            if not 0 < n <= MAX_REQUEST:
                return self._reply(413, "text/plain", b"too large\n")
            body = self.rfile.read(n)
            try:
                ctype, answer = channel.received(self.headers.get("Content-Type", ""), body)
            except mm7.MM7Error as e:
                channel.counts["refused_requests"] += 1
                channel.say(f"a request from {self.client_address[0]} refused: {e}")
                return self._reply(400, "text/plain", f"{e}\n".encode())
            self._reply(200, ctype, answer)

        def _reply(self, status: int, ctype: str, body: bytes, headers=None):
            self.send_response(status)
            for k, v in {"Content-Type": ctype, "Content-Length": str(len(body)), **(headers or {})}.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):       # the channel says what matters
            pass

    return Handler
