"""Channels: how the dispatcher's messages leave. One interface, three kinds:

    ch = make_channel("sms", {"host": "smsc.example", "system_id": "tp", ...}, data_dir)
    ch.start(on_result, on_mo)        # on_result(message_id, state, reason, smsc_id=None)
    ch.send(Outgoing(id, msisdn, source, text, campaign))   # False: not now, offer it later
    ch.health()                       # connected, in flight, sent, failed, throttled, ...
    ch.stop(timeout)

- `sms`: SMPP 3.4 to an SMSC (control.smpp).
- `http`: POST JSON to an operator's messaging/MMS gateway, with retries, back-off and an
  `Idempotency-Key` header carrying the message id, so a retried POST cannot send twice.
- `file` (the embedded default): JSONL of what would be sent.

send() never blocks on the network and never raises for a message: a message it takes ends in
exactly one of `sent`, `failed` (permanent) or `retry` (temporary: the dispatcher queues it
again with back-off), reported through on_result from the channel's own thread (the file
channel reports from the caller's). `delivered` and `failed` may follow `sent` (SMPP receipts).
"""
import http.client
import json
import os
import threading
import time
import urllib.parse


from .channel_settings import SETTINGS, resolve
from .outgoing import Bucket, Channel, Outgoing, Posting, say_as
from .smpp import SmppClient
from .sms_text import count_parts


class FileChannel(Channel):
    """Appends one JSON line per message to `path`: what would have been sent. After a crash,
    recover() finds which messages the file already has."""
    name = "file"
    idempotent = True

    def __init__(self, path: str, rate: float | None = None, say=None):
        self.path = path
        self.bucket = Bucket(rate)
        self.say = say or say_as(self.name)
        self.lock = threading.Lock()
        self.fh = None
        self.sent = self.failed = 0
        self.last_error = ""

    def start(self, on_result, on_mo=None) -> None:
        self.on_result = on_result
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self.fh = open(self.path, "a+", encoding="utf-8")
        if self.fh.tell():
            self.fh.seek(self.fh.tell() - 1)
            if self.fh.read(1) != "\n":        # a line a crash cut short stays apart
                self.fh.write("\n")

    def recover(self, ids) -> dict:
        """{id: None} for each of `ids` the file holds (a line a crash cut short does not count)."""
        want, found = set(ids), {}
        try:
            with open(self.path, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    try:
                        mid = json.loads(line).get("id")
                    except (ValueError, AttributeError):
                        continue
                    if mid in want:
                        found[mid] = None
        except FileNotFoundError:
            pass
        return found

    def send(self, msg: Outgoing) -> bool:
        if self.fh is None or self.bucket.wait() > 0:
            return False
        line = json.dumps({"id": msg.id, "campaign": msg.campaign, "msisdn": msg.msisdn, "source": msg.source,
                           "text": msg.text, "parts": count_parts(msg.text), "at": round(time.time(), 3)},
                          ensure_ascii=False)
        try:
            with self.lock:
                self.fh.write(line + "\n")
                self.fh.flush()
        except (OSError, ValueError) as e:
            self.failed += 1
            self.last_error = f"{self.path}: {e}"
            self.on_result(msg.id, "retry", self.last_error)
            return True
        self.sent += 1
        self.on_result(msg.id, "sent", "")
        return True

    def health(self) -> dict:
        return {"channel": self.name, "path": self.path, "connected": self.fh is not None, "in_flight": 0,
                "sent": self.sent, "failed": self.failed, "last_error": self.last_error}

    def stop(self, timeout: float = 5.0) -> None:
        with self.lock:
            if self.fh is not None:
                self.fh.close()
                self.fh = None


class HttpChannel(Posting):
    """POSTs each message as JSON to a gateway, `workers` requests at a time:

        {"id": ..., "to": msisdn, "from": source, "text": ..., "campaign": ...}

    with `Idempotency-Key: <id>`. A 2xx answer is `sent` (the answer's JSON `id` or
    `message_id`, when it has one, is the smsc_id); 408, 425, 429, 5xx and network errors are
    tried again after 0.5 s, doubling (or the answer's Retry-After), up to `attempts` times,
    then given back as `retry`; any other answer is `failed` with its status and the start of
    its body."""
    name = "http"
    idempotent = True                       # with a gateway that honours Idempotency-Key
    RETRY_STATUS = (408, 425, 429, 500, 502, 503, 504)

    def __init__(self, url: str, headers: dict | None = None, timeout: float = 10.0,
                 rate: float | None = None, workers: int = 4, attempts: int = 4,
                 backoff: tuple = (0.5, 8.0), say=None):
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"url: {url!r} is not an http:// or https:// URL")
        super().__init__(url, u, workers, timeout, rate, say, dict(sent=0, failed=0, retried=0, attempts_failed=0))
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.attempts, self.backoff = attempts, backoff

    def _deliver(self, msg: Outgoing, conn):
        body = json.dumps({"id": msg.id, "to": msg.msisdn, "from": msg.source, "text": msg.text,
                           "campaign": msg.campaign}, ensure_ascii=False).encode()
        headers = {**self.headers, "Idempotency-Key": msg.id}
        delay = self.backoff[0]
        reason = ""
        attempt = 0
        while attempt < self.attempts:
            while (wait := self.bucket.wait()) > 0:
                if self.stopping.wait(wait):
                    self._result(msg.id, "retry", "stopped")
                    return conn
            reused = conn is not None
            try:
                if conn is None:
                    cls = http.client.HTTPSConnection if self.u.scheme == "https" else http.client.HTTPConnection
                    conn = cls(self.u.hostname, self.u.port, timeout=self.timeout)
                path = self.u.path or "/"
                conn.request("POST", path + (f"?{self.u.query}" if self.u.query else ""), body, headers)
                resp = conn.getresponse()
                data = resp.read(65536)
                status, retry_after = resp.status, resp.getheader("Retry-After")
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                if conn is not None:
                    conn.close()
                conn = None
                if reused:
                    continue                # the gateway closed an idle connection: once more, at once
                status, retry_after, reason = None, None, f"{type(e).__name__}: {e}"
            attempt += 1
            if status is not None and 200 <= status < 300:
                self.ok_at = time.monotonic()
                self.last_error = ""
                self._result(msg.id, "sent", "", self._gateway_id(data))
                return conn
            if status is not None:
                reason = f"http {status}: {data[:200].decode('utf-8', 'replace').strip()}"
                if status not in self.RETRY_STATUS:
                    self._result(msg.id, "failed", reason)
                    return conn
            self.counts["attempts_failed"] += 1
            if reason != self.last_error:
                self.say(f"{self.url}: {reason}")
            self.last_error = reason
            if attempt < self.attempts:
                pause = delay
                if retry_after and retry_after.strip().isdigit():
                    pause = min(float(retry_after), self.backoff[1])
                if self.stopping.wait(pause):
                    break
                delay = min(delay * 2, self.backoff[1])
        self._result(msg.id, "retry", reason)
        return conn

    @staticmethod
    def _gateway_id(data: bytes):
        try:
            doc = json.loads(data)
        except ValueError:
            return None
        if isinstance(doc, dict):
            v = doc.get("id", doc.get("message_id"))
            return str(v) if v is not None else None
        return None


class SmppChannel(Channel):
    """The `sms` channel: control.smpp.SmppClient to one SMSC."""
    name = "sms"

    def __init__(self, host: str, port: int = 2775, system_id: str = "", password: str = "",
                 system_type: str = "", bind: str = "transceiver", window: int = 64,
                 rate: float | None = None, source: str = "", say=None, **client):
        self.source = source
        self.client = SmppClient(host, port, system_id, password, system_type=system_type, bind=bind,
                                 window=window, rate=rate, say=say, **client)

    def start(self, on_result, on_mo=None) -> None:
        self.client.on_result = on_result
        if on_mo is not None:
            self.client.on_mo = on_mo
        self.client.start()

    def send(self, msg: Outgoing) -> bool:
        if not msg.source and self.source:
            msg = Outgoing(msg.id, msg.msisdn, self.source, msg.text, msg.campaign)
        return self.client.send(msg)

    def health(self) -> dict:
        return self.client.health()

    def stop(self, timeout: float = 5.0) -> None:
        self.client.stop(timeout)


def make_channel(name: str, settings, data_dir: str = ".", say=None) -> Channel:
    """The channel `name` (sms, http, mms, file) from its policy.yaml settings, declared in
    control.channel_settings, whose defaults fill in what is not given. Raises ValueError for
    settings it cannot use."""
    s = resolve(name, settings)
    if name == "file":
        path = s["path"] or SETTINGS["file"]["path"].default
        return FileChannel(os.path.join(data_dir, path), rate=s["rate"], say=say)
    if name == "http":
        return HttpChannel(s["url"], headers=s["headers"], timeout=s["timeout"], rate=s["rate"], say=say)
    if name == "mms":
        from .mms import MmsChannel
        return MmsChannel(say=say, journal=os.path.join(data_dir, "mms-journal.log"), **s)
    return SmppChannel(say=say, **s)
