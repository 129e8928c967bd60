"""control.channels: the file channel, the HTTP channel against a real http.server on loopback,
the SMPP channel through make_channel against smpp34's server, and make_channel's settings."""
import inspect
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from touchpoint.control.channel_settings import SETTINGS, resolve
from touchpoint.control.channels import FileChannel, HttpChannel, Outgoing, SmppChannel, make_channel

from .smsc import Feeder, Smsc


def msgs(n, text="您好 {i}", prefix="h"):
    return [Outgoing(f"{prefix}{i}", f"86138{i:08d}", "10658000", text.format(i=i), "camp") for i in range(n)]


# --- file ------------------------------------------------------------------------------------

def test_file_channel_writes_what_would_be_sent(tmp_path):
    ch = make_channel("file", {"path": "out/sent.jsonl"}, str(tmp_path))
    ms = msgs(3) + [Outgoing("long", "8613800000009", "BANK", "长" * 71, "camp")]
    f = Feeder(ch, ms)
    ch.start(f.on_result)
    f.run(f.all_final("sent"), timeout=5)
    ch.stop(1)
    lines = [json.loads(x) for x in (tmp_path / "out" / "sent.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(x["id"], x["msisdn"], x["source"], x["text"], x["parts"]) for x in lines] == \
        [(m.id, m.msisdn, m.source, m.text, 2 if m.id == "long" else 1) for m in ms]
    assert ch.health()["sent"] == 4


def test_file_channel_rate(tmp_path):
    ch = FileChannel(str(tmp_path / "x.jsonl"), rate=10)
    ch.start(lambda *a, **k: None)
    took = sum(ch.send(m) for m in msgs(50))
    ch.stop(1)
    assert 1 <= took < 50                   # the burst, then not now


def test_file_channel_unwritable_gives_retry(tmp_path):
    ch = FileChannel(str(tmp_path / "x.jsonl"))
    got = []
    ch.start(lambda *a, **k: got.append(a))
    ch.fh.close()                           # as a full or vanished disk would
    assert ch.send(msgs(1)[0])
    assert got[0][:2] == ("h0", "retry") and "x.jsonl" in got[0][2]


# --- http ------------------------------------------------------------------------------------

class Gateway(ThreadingHTTPServer):
    """A messaging gateway on loopback: answers from `script` (a list of statuses, then 200),
    records every request with its headers and body."""
    daemon_threads = True

    def __init__(self, script=(), delay=0.0):
        self.script = list(script)
        self.delay = delay
        self.requests = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/v1/sms?acct=7"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        gw = self.server
        with gw.lock:
            gw.requests.append((self.path, dict(self.headers), json.loads(body)))
            status = gw.script.pop(0) if gw.script else 200
            n = len(gw.requests)
        time.sleep(gw.delay)
        doc = {"id": f"gw-{n}"} if status == 200 else {"error": "busy"}
        out = json.dumps(doc).encode()
        self.send_response(status)
        if status == 503:
            self.send_header("Retry-After", "0")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


def http_channel(gw, **kw):
    kw.setdefault("backoff", (0.05, 0.2))
    return HttpChannel(gw.url, headers={"Authorization": "Bearer t0ken"}, say=lambda line: None, **kw)


def test_http_posts_json_with_the_idempotency_key():
    gw = Gateway()
    ch = http_channel(gw)
    ms = msgs(10)
    f = Feeder(ch, ms)
    ch.start(f.on_result)
    try:
        f.run(f.all_final("sent"), timeout=20)
    finally:
        ch.stop(2)
        gw.shutdown()
    assert len(gw.requests) == 10
    for path, headers, body in gw.requests:
        assert path == "/v1/sms?acct=7"
        assert headers["Idempotency-Key"] == body["id"] and headers["Authorization"] == "Bearer t0ken"
        assert headers["Content-Type"] == "application/json"
        m = next(x for x in ms if x.id == body["id"])
        assert body == {"id": m.id, "to": m.msisdn, "from": m.source, "text": m.text, "campaign": "camp"}
    assert {f.results[m.id][0][2] for m in ms} == {f"gw-{i}" for i in range(1, 11)}   # the gateway's ids


def test_a_message_http_client_refuses_fails_and_the_worker_goes_on():
    """What the checker lets through and http.client refuses (a header of another source) fails its
    message by name; the worker thread lives on and sends the next ones."""
    gw = Gateway()
    ch = HttpChannel(gw.url, headers={"X-Token": "a\r\nb"}, say=lambda line: None, backoff=(0.05, 0.2))
    ms = msgs(2)
    f = Feeder(ch, ms[:1])
    ch.start(f.on_result)
    try:
        f.run(f.all_final("failed"), timeout=20)
        ch.headers.pop("X-Token")
        f2 = Feeder(ch, ms[1:])
        ch.on_result = f2.on_result
        f2.run(f2.all_final("sent"), timeout=20)
    finally:
        ch.stop(2)
        gw.shutdown()
    assert "Invalid header value" in f.results[ms[0].id][0][1] and len(gw.requests) == 1


def test_http_retries_503_with_the_same_key():
    gw = Gateway(script=[503, 503, 500])
    ch = http_channel(gw, workers=1)
    f = Feeder(ch, msgs(2))
    ch.start(f.on_result)
    try:
        f.run(f.all_final("sent"), timeout=20)
    finally:
        ch.stop(2)
        gw.shutdown()
    keys = [h["Idempotency-Key"] for _, h, _ in gw.requests]
    assert keys == ["h0", "h0", "h0", "h0", "h1"]           # three failures, then each once
    assert ch.health()["attempts_failed"] == 3 and ch.health()["sent"] == 2


def test_http_gives_up_with_retry_and_fails_on_4xx():
    gw = Gateway(script=[503] * 4 + [400])
    ch = http_channel(gw, workers=1, attempts=4)
    f = Feeder(ch, [])
    got = []
    ch.start(lambda *a, **k: got.append(a))
    try:
        assert ch.send(msgs(1)[0])
        deadline = time.monotonic() + 10
        while not got:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert got[0][:2] == ("h0", "retry") and "http 503" in got[0][2]
        assert ch.send(msgs(1)[0])
        while len(got) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert got[1][:2] == ("h0", "failed") and got[1][2].startswith("http 400")
    finally:
        ch.stop(2)
        gw.shutdown()
    assert f.results == {}


def test_http_unreachable_gateway_is_bounded():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]               # nobody listens there
    ch = HttpChannel(f"http://127.0.0.1:{port}/", timeout=1, attempts=2, backoff=(0.05, 0.1), say=lambda line: None)
    got = []
    ch.start(lambda *a, **k: got.append(a))
    t = time.monotonic()
    assert ch.send(msgs(1)[0])
    while not got:
        assert time.monotonic() - t < 10
        time.sleep(0.01)
    ch.stop(1)
    assert got[0][:2] == ("h0", "retry") and "ConnectionRefused" in got[0][2]
    assert ch.health()["connected"] is False


def test_http_stop_gives_back_what_waits():
    gw = Gateway(delay=0.5)
    ch = http_channel(gw, workers=1)
    got = []
    ch.start(lambda *a, **k: got.append(a))
    taken = [m for m in msgs(4) if ch.send(m)]
    time.sleep(0.1)
    t = time.monotonic()
    ch.stop(1)
    gw.shutdown()
    assert time.monotonic() - t < 5
    states = {a[0]: a[1] for a in got}
    assert set(states) == {m.id for m in taken}                # each one answered
    assert set(states.values()) <= {"sent", "retry"} and "retry" in states.values()


# --- sms through make_channel ------------------------------------------------------------------

def test_sms_channel_from_settings():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    smsc = Smsc(port, "--receipts", "tlv")
    ch = make_channel("sms", {"host": "127.0.0.1", "port": port, "system_id": "tp", "password": "pw",
                              "system_type": "VMA", "bind": "transceiver", "window": 8, "rate": 500,
                              "source": "10658000"}, say=lambda line: None)
    assert isinstance(ch, SmppChannel)
    ms = [Outgoing(f"s{i}", f"86138{i:08d}", "", f"hi {i}", "camp") for i in range(5)]
    f = Feeder(ch, ms)
    ch.start(f.on_result, f.on_mo)
    try:
        f.run(lambda f: all([s for s, _, _ in f.results.get(m.id, ())] == ["sent", "delivered"] for m in ms),
              timeout=20)
    finally:
        ch.stop(2)
        smsc.close()
    assert {s["source"] for s in smsc.submits()} == {"10658000"}    # the channel's default source
    assert ch.health()["window"] == 8


def test_make_channel_refuses_what_it_cannot_use(tmp_path):
    with pytest.raises(ValueError, match="channels.sms.host"):
        make_channel("sms", {"system_id": "x"})
    with pytest.raises(ValueError, match="bind"):
        make_channel("sms", {"host": "h", "system_id": "x", "bind": "receiver"})
    with pytest.raises(ValueError, match="system_id"):
        make_channel("sms", {"host": "h", "system_id": "a-system-id-too-long"})
    with pytest.raises(ValueError, match="url"):
        make_channel("http", {"url": "ftp://x"})
    with pytest.raises(ValueError, match="not a channel"):
        make_channel("fax", {})
    with pytest.raises(ValueError, match="channels.mms.url is missing"):
        make_channel("mms", {})
    with pytest.raises(ValueError, match="listen_password"):
        make_channel("mms", {"url": "http://mmsc/mm7", "listen": "127.0.0.1:0"})
    ch = make_channel("file", {}, str(tmp_path))
    assert ch.path == str(tmp_path / "sent.jsonl")


def test_each_channel_declares_its_settings_once():
    """make_channel builds every channel from the declarations: a setting the constructor also
    defaults has the same default there, and a setting not declared is refused."""
    for name, cls in (("sms", SmppChannel), ("http", HttpChannel), ("file", FileChannel)):
        params = inspect.signature(cls).parameters
        for key, setting in SETTINGS[name].items():
            if not setting.required and key in params and params[key].default is not inspect.Parameter.empty:
                assert params[key].default == setting.default, (name, key)
        with pytest.raises(ValueError, match=f"channels.{name}: unknown settings colour"):
            make_channel(name, {**{k: "x" for k in SETTINGS[name] if SETTINGS[name][k].required}, "colour": 1})
    assert resolve("file", {}) == {"path": "sent.jsonl", "rate": None}
    assert resolve("sms", {"host": "h", "system_id": "tp"})["port"] == 2775


def test_file_channel_recovers_what_a_crash_left(tmp_path):
    path = tmp_path / "sent.jsonl"
    ch = FileChannel(str(path))
    ch.start(lambda *a, **k: None)
    for m in msgs(3):
        assert ch.send(m)
    ch.stop(1)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"id": "h3", "msisdn": "86')        # the crash cut this line short
    ch = FileChannel(str(path))
    assert ch.idempotent and ch.recover(["h1", "h3", "h9"]) == {"h1": None}
    ch.start(lambda *a, **k: None)
    assert ch.send(msgs(4)[3])
    ch.stop(1)
    assert ch.recover(["h3"]) == {"h3": None}           # written whole on its own line
    assert len(path.read_text(encoding="utf-8").splitlines()) == 5
