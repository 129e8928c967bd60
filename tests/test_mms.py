"""The `mms` channel against the test MMSC (tests/mmsc.py, its own MIME and SOAP parsers): every
status class, slow, dead and unreachable MMSCs, a wrong password; delivery reports and MO picture
messages received on the channel's authenticated endpoint; a picture message campaign through the
dispatcher, its delivery report in the outbox; `touchpoint dispatcher` SIGKILLed while it sends,
restarted: every message ends once, none reaches the MMSC twice."""
import json
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections import Counter

import pytest

from touchpoint.control.channel_settings import MM7_NAMESPACES
from touchpoint.control.channels import Outgoing
from touchpoint.control.dispatcher import Dispatcher
from touchpoint.control.engine import Trigger
from touchpoint.control.mm7 import NAMESPACES
from touchpoint.control.mms import MmsChannel
from touchpoint.control.policy import RecordClock
from touchpoint.control.rules import load

from .mmsc import Mmsc
from .test_engine_run import CLI, TIMEOUT

PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(100_000)        # a 100 KB picture
NS = 10**9
T0 = 1_794_000_000 * NS


class Results:
    def __init__(self):
        self.got, self.mo = {}, []
        self.cond = threading.Condition()

    def on_result(self, mid, state, reason="", smsc_id=None):
        with self.cond:
            self.got.setdefault(mid or smsc_id, []).append((state, reason, smsc_id))
            self.cond.notify_all()

    def on_mo(self, msisdn, text, national=False, to=""):
        with self.cond:
            self.mo.append((msisdn, text, to))
            self.cond.notify_all()

    def wait(self, check, what: str):
        with self.cond:
            assert self.cond.wait_for(lambda: check(self), TIMEOUT), f"gave up waiting for {what}: {self.got}"


def channel(url: str, **kw) -> tuple:
    r = Results()
    settings = dict(user="vasp", password="secret", vasp_id="SP01", vas_id="lunch", service_code="1065",
                    source="10658000", timeout=5, listen="127.0.0.1:0", listen_password="pw")
    ch = MmsChannel(url, **{**settings, **kw})
    ch.start(r.on_result, r.on_mo)
    return ch, r


def message(i: int, text=None) -> Outgoing:
    from touchpoint.control.campaigns import Slide
    body = text or json.dumps({"subject": f"午餐 {i}", "slides": ["午休时间到！", "回复 Y 领取"]}, ensure_ascii=False)
    return Outgoing(f"m{i}", f"86138000000{i:02d}", "", body, "lunch", (Slide("", PNG, "lunch.png"), Slide()))


def test_namespaces_are_the_settings_choices():
    assert tuple(NAMESPACES) == MM7_NAMESPACES


@pytest.mark.parametrize("faults", [False, True])
def test_each_status_class_becomes_sent_retry_or_failed(faults):
    statuses = {1: 1000, 2: 3000, 3: 2002, 4: 4006, 5: 1100, 6: 4004}
    with Mmsc(status_for=lambda msisdn: statuses[int(msisdn[-2:])], faults=faults) as mmsc:
        ch, r = channel(mmsc.url)
        try:
            for i in statuses:
                assert ch.send(message(i))
            r.wait(lambda r: len(r.got) == len(statuses), "every answer")
        finally:
            ch.stop()
    got = {mid: states[0][:2] for mid, states in r.got.items()}
    assert got == {"m1": ("sent", ""), "m2": ("retry", "mm7_3000"), "m3": ("failed", "mm7_2002"),
                   "m4": ("retry", "mm7_4006"), "m5": ("sent", ""), "m6": ("failed", "mm7_4004")}
    ids = {rec["transaction_id"]: rec.get("message_id") for rec in mmsc.received}
    assert r.got["m1"][0][2] == ids["m1"] and r.got["m5"][0][2] == ids["m5"]    # the MMSC's MessageID kept
    first = next(rec for rec in mmsc.received if rec["transaction_id"] == "m1")
    assert (first["subject"], first["texts"], first["images"]) == ("午餐 1", ["午休时间到！", "回复 Y 领取"],
                                                                   [("image/png", len(PNG))])
    assert (first["sender"], first["vasp_id"], first["vas_id"], first["service_code"], first["recipients"]) == \
        ("10658000", "SP01", "lunch", "1065", ["8613800000001"])
    assert not mmsc.errors


def test_slow_dead_unreachable_and_refusing_mmscs():
    with Mmsc(slow=0.3) as mmsc:                                    # slow, within the timeout: sent
        ch, r = channel(mmsc.url)
        ch.send(message(1))
        r.wait(lambda r: "m1" in r.got, "the slow answer")
        ch.stop()
        assert r.got["m1"][0][0] == "sent"
        ch, r = channel(mmsc.url, timeout=0.2)                      # slower than the timeout: maybe taken
        ch.send(message(2))
        r.wait(lambda r: "m2" in r.got, "the timeout")
        ch.stop()
        assert r.got["m2"] == [("failed", "mm7_no_answer", None)]
        mmsc.slow, mmsc.dead = 0, True                               # reads it, closes: maybe taken, never again
        ch, r = channel(mmsc.url)
        ch.send(message(3))
        r.wait(lambda r: "m3" in r.got, "the dead MMSC")
        ch.stop()
        assert r.got["m3"] == [("failed", "mm7_no_answer", None)]
        mmsc.dead, mmsc.http_status = False, 503                     # nothing taken: again later
        ch, r = channel(mmsc.url)
        ch.send(message(4))
        r.wait(lambda r: "m4" in r.got, "the 503")
        ch.stop()
        assert r.got["m4"] == [("retry", "http_503", None)]
        mmsc.http_status = None
        ch, r = channel(mmsc.url, password="wrong")                  # a wrong password: nothing taken
        ch.send(message(5))
        r.wait(lambda r: "m5" in r.got, "the 401")
        ch.stop()
        assert r.got["m5"] == [("retry", "http_401", None)] and "http 401" in ch.last_error
    with socket.socket() as s:                                       # nobody listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ch, r = channel(f"http://127.0.0.1:{port}/mm7")
    ch.send(message(6))
    r.wait(lambda r: "m6" in r.got, "the refused connection")
    ch.stop()
    assert r.got["m6"] == [("retry", "mm7_unreachable", None)]


def test_delivery_reports_and_mo_on_the_authenticated_endpoint():
    with Mmsc() as mmsc:
        ch, r = channel(mmsc.url)
        try:
            ch.send(message(1))
            ch.send(message(2))
            r.wait(lambda r: len(r.got) == 2, "both sent")
            mid = {rec["transaction_id"]: rec["message_id"] for rec in mmsc.received}
            url = f"http://{ch.listening}/mm7"
            assert mmsc.send_delivery_report(url, mid["m1"], "8613800000001", "Retrieved", auth=("mmsc", "pw")) == \
                (200, 1000)
            assert mmsc.send_delivery_report(url, mid["m2"], "8613800000002", "Expired", auth=("mmsc", "pw")) == \
                (200, 1000)
            assert mmsc.send_delivery_report(url, mid["m2"], "8613800000002", "Deferred", auth=("mmsc", "pw")) == \
                (200, 1000)                                          # not final: nothing changes
            assert mmsc.send_delivery_report(url, mid["m1"], "8613800000001", auth=("mmsc", "nope"))[0] == 401
            assert mmsc.send_deliver(url, "8613800000001", "1065800012", "回复", "是", auth=("mmsc", "pw")) == \
                (200, 1000)
            r.wait(lambda r: len(r.mo) == 1 and len(r.got) == 4, "the report and the MO")
        finally:
            ch.stop()
    assert r.got[mid["m1"]] == [("delivered", "", mid["m1"])]
    assert r.got[mid["m2"]] == [("failed", "mm7_expired", mid["m2"])]
    assert r.mo == [("8613800000001", "是", "1065800012")]


def test_a_listen_address_in_use_is_said_and_taken_once_free(monkeypatch):
    """Another process holds the endpoint's port: the channel says so once, sends all the same,
    and serves the MMSC's requests from when the port is free."""
    from touchpoint.control import mms
    monkeypatch.setattr(mms, "REBIND_S", 0.1)
    holder = socket.create_server(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    said = []
    with Mmsc() as mmsc:
        ch, r = channel(mmsc.url, listen=f"127.0.0.1:{port}", say=said.append)
        try:
            assert ch.listening == "" and "Address already in use" in ch.health()["listen_error"]
            ch.send(message(1))
            r.wait(lambda r: len(r.got) == 1, "sent while the port is taken")
            time.sleep(0.5)                              # several tries: said once
            assert [line for line in said if "listen" in line] == [
                f"listen 127.0.0.1:{port}: Address already in use: delivery reports and MO wait, tried again every "
                "0.1 s"]
            holder.close()
            deadline = time.monotonic() + TIMEOUT
            while ch.listening != f"127.0.0.1:{port}" and time.monotonic() < deadline:
                time.sleep(0.05)
            [rec] = mmsc.received
            assert mmsc.send_delivery_report(f"http://127.0.0.1:{port}/mm7", rec["message_id"], "8613800000001",
                                             auth=("mmsc", "pw")) == (200, 1000)
            r.wait(lambda r: len(r.got[rec["message_id"]]) == 1, "the report")
            assert "listen_error" not in ch.health()
        finally:
            ch.stop()
            holder.close()


def rules(tmp_path, url: str, listen: str = "127.0.0.1:0", window: int = 4, rate: str = "") -> str:
    d = tmp_path / "rules"
    (d / "images").mkdir(parents=True)
    (d / "images" / "lunch.png").write_bytes(PNG)
    (d / "lunch.yaml").write_text(
        "id: lunch\nstatus: active\ntrigger: {event: power_on}\nmessage:\n  channel: mms\n  source: '10658000'\n"
        "  subject: '{msisdn} 的午餐'\n  slides:\n    - {image: images/lunch.png, text: 午休时间到！}\n"
        "    - {text: 回复 Y 领取}\n", encoding="utf-8")
    (d / "policy.yaml").write_text(
        f"caps: []\nchannels:\n  mms: {{url: '{url}', user: vasp, password: secret, vasp_id: SP01, vas_id: lunch, "
        + (f"listen: '{listen}', listen_password: pw, " if listen else "") + f"window: {window}{rate}}}\n",
        encoding="utf-8")
    rs = load(str(d))
    assert rs.ok, [str(e) for e in rs.errors]
    return str(d)


def test_a_picture_message_campaign_through_the_dispatcher_and_its_report(tmp_path):
    with Mmsc() as mmsc:
        rs = load(rules(tmp_path, mmsc.url))
        d = Dispatcher(str(tmp_path / "data"), rs, clock=RecordClock())
        d.start()
        try:
            d.offer([Trigger("lunch", "power_on", T0 + i * NS, T0 + 3600 * NS, f"46000{i:010d}", f"86139{i:08d}", 0)
                     for i in range(5)])
            end = time.monotonic() + TIMEOUT
            while len(mmsc.received) < 5:
                assert time.monotonic() < end, d.status()
                time.sleep(0.02)
            got = {rec["recipients"][0]: rec for rec in mmsc.received}
            assert got["8613900000003"]["subject"] == "8613900000003 的午餐"
            assert got["8613900000003"]["texts"] == ["午休时间到！", "回复 Y 领取"]
            assert got["8613900000003"]["images"] == [("image/png", len(PNG))]
            rec = got["8613900000003"]
            listening = d.channels["mms"].listening
            wait = time.monotonic() + TIMEOUT
            db = sqlite3.connect(tmp_path / "data" / "outbox.sqlite")
            while db.execute("SELECT count(*) FROM messages WHERE state = 'sent'").fetchone()[0] < 5:
                assert time.monotonic() < wait
                time.sleep(0.02)
            assert mmsc.send_delivery_report(f"http://{listening}/", rec["message_id"], "8613900000003",
                                             auth=("mmsc", "pw")) == (200, 1000)
            while db.execute("SELECT count(*) FROM messages WHERE state = 'delivered'").fetchone()[0] < 1:
                assert time.monotonic() < wait
                d.step()
                time.sleep(0.02)
            assert db.execute("SELECT msisdn FROM messages WHERE state = 'delivered'").fetchall() == \
                [("8613900000003",)]
        finally:
            d.stop()


def test_a_picture_message_over_the_maximum_size_is_a_rules_check_error(tmp_path):
    d = rules(tmp_path, "http://127.0.0.1:1/mm7")
    policy = (tmp_path / "rules" / "policy.yaml")
    policy.write_text(policy.read_text().replace("window: 4", "window: 4, max_size: 50000"))
    errors = [str(e) for e in load(d).errors]
    assert len(errors) == 1 and "lunch.yaml:5: message: the picture message is 100,4" in errors[0] and \
        "over channels.mms.max_size (50,000)" in errors[0]
    (tmp_path / "rules" / "images" / "lunch.png").write_bytes(b"not an image")
    assert any("images/lunch.png is not a JPEG, PNG or GIF image" in str(e) for e in load(d).errors)


def test_a_killed_dispatcher_sends_no_picture_message_twice(tmp_path):
    """`touchpoint dispatcher` following a trigger log, SIGKILLed while the MMSC (slow) takes its
    messages, twice: once back, every message ends once (sent, or failed: unknown_after_crash for
    those it had posted when killed, whether the MMSC got them whole or not) and the MMSC got none
    twice."""
    n = 60
    with Mmsc(slow=0.05) as mmsc:
        d = rules(tmp_path, mmsc.url, listen="", window=2)
        log = tmp_path / "triggers.jsonl"
        log.write_text("".join(json.dumps(Trigger("lunch", "power_on", T0 + i * NS, T0 + 10**6 * NS, f"46000{i:010d}",
                                                  f"86139{i:08d}", 0).to_json()) + "\n" for i in range(n)))
        data = tmp_path / "data"

        def start():
            return subprocess.Popen(CLI + ["dispatcher", "--rules", d, "--data", str(data), "--log", str(log),
                                           "--clock", "records", "--status-interval", "0"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for kill_at in (10, 30):
            proc = start()
            end = time.monotonic() + TIMEOUT
            while len(mmsc.received) < kill_at:
                assert proc.poll() is None and time.monotonic() < end, proc.stderr.read() if proc.poll() else ""
                time.sleep(0.01)
            proc.send_signal(signal.SIGKILL)
            proc.wait(TIMEOUT)
        proc = start()
        try:
            db = sqlite3.connect(data / "outbox.sqlite")
            end = time.monotonic() + TIMEOUT
            while db.execute("SELECT count(*) FROM messages WHERE state IN ('sent', 'failed')").fetchone()[0] < n:
                assert proc.poll() is None and time.monotonic() < end
                time.sleep(0.05)
        finally:
            proc.terminate()
            proc.communicate(timeout=TIMEOUT)
    states = Counter((s, r) for s, r in db.execute("SELECT state, reason FROM messages"))
    got = Counter(rec["transaction_id"] for rec in mmsc.received)
    assert max(got.values()) == 1                           # none twice
    sent = {i for (i,) in db.execute("SELECT id FROM messages WHERE state = 'sent'")}
    assert sent <= set(got) and states[("sent", "")] == len(sent)
    assert sum(states.values()) == n and set(states) <= {("sent", ""), ("failed", "unknown_after_crash")}
    unknown = {i for (i,) in db.execute("SELECT id FROM messages WHERE reason = 'unknown_after_crash'")}
    assert set(got) - sent <= unknown       # taken, its answer lost with the dispatcher: not sent again
    assert len(unknown) <= 2 * 2            # at most the window (2) in flight at each kill: the rest went again
