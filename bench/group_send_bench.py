#!/usr/bin/env python3
"""Group send benchmark: a scheduled send to a big audience, from the state to the MMSC.

    python3 bench/group_send_bench.py                   # 1M subscribers, 10M contacts of history
    python3 bench/group_send_bench.py --subscribers 200000 --history 2000000 --mm7 500   # quicker

Prints, on one core:
1. audience evaluation: Engine.scheduled over --subscribers known subscribers (a region, a
   lifecycle segment, a profile window; the hold-out is the policy's), subscribers/s; then the
   triggers made into objects, triggers/s (target: 1M subscribers/s for the evaluation);
2. policy decisions: ContactPolicy.decide on those triggers in batches of 10,000 with --history
   contacts of other subscribers and of these (caps, cooldown, quota), decisions/s (target 50k/s);
3. MM7: a SubmitReq of a 100 KB picture message encoded by control.mm7 and, for the ratio, the
   same MIME built by Python's email package; then --mm7 submissions through the mms channel to
   a loopback MMSC that answers at once, and to tests/mmsc.py, which parses each with email and
   ElementTree (its parsing, not our channel, is the limit there). Target: 500 submissions/s.

Not asserted anywhere: the test suite asserts behaviour, never timings.
"""
import argparse
import os
import sys
import tempfile
import threading
import time
from email.mime.image import MIMEImage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from touchpoint.control import mm7, rules
from touchpoint.control.campaigns import Slide
from touchpoint.control.engine import Engine
from touchpoint.control.mms import MmsChannel
from touchpoint.control.outgoing import Outgoing
from touchpoint.control.policy import ContactPolicy
from touchpoint.probe.record import Kind, Loc, empty, pack

T0 = 1_794_000_000 * 10**9          # 2026-11-06
PICTURE = b"\xff\xd8\xff\xe0" + os.urandom(100 * 1024 - 4)
PLACES = """
home: ["46000"]
regions:
  beijing: {node: ["8613900010*"]}
  shanghai: {node: ["8613900021*"]}
"""
CAMPAIGN = """id: lunch
status: active
schedule: {at: ["12:00"], spread: 30m}
audience:
  where:
    in_region: beijing
    lifecycle: [trial, silent, potential]
    sms_mo: {last: 30d, lt: 5}
holdout: 10%
cooldown: 7d
quota: 2000000
message: {text: "午休时间到！回复 Y 领取 1GB 午间流量包。"}
"""


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:>12,.0f}/s  ({n:,} in {seconds:.2f} s)"


def state(engine: Engine, n: int) -> None:
    """n subscribers, two thirds of them in Beijing, each seen once (a location update)."""
    for lo in range(0, n, 65536):
        k = np.arange(lo, min(n, lo + 65536))
        r = empty(len(k))
        r["kind"], r["loc_type"], r["ts_ns"] = Kind.LOCATION_UPDATE, Loc.CGI, T0 + k * 1000
        r["imsi"] = pack(np.char.add("46000", np.char.zfill(k.astype("U10"), 10)))
        r["msisdn"] = pack(np.char.add("86138", np.char.zfill(k.astype("U8"), 8)))
        r["node"] = pack(np.where(k % 3 == 2, "8613900021001", "8613900010001"))
        r["lac_tac"], r["cell"] = 4100, 7
        engine.process(r)


def encode_with_email(s: mm7.Submit) -> bytes:
    """The same message's MIME built by the standard library, for the ratio."""
    content = MIMEMultipart("related", type="application/smil", start="<smil>")
    smil = MIMEText("<smil><body><par><img src='cid:img'/><text src='cid:t'/></par></body></smil>", "plain", "utf-8")
    content.attach(smil)
    for slide in s.slides:
        content.attach(MIMEImage(slide.image, "jpeg"))
        content.attach(MIMEText(slide.text, "plain", "utf-8"))
    outer = MIMEMultipart("related", type="text/xml", start="<soap>")
    outer.attach(MIMEText("<env:Envelope/>", "xml", "utf-8"))
    outer.attach(content)
    return outer.as_bytes()


class Canned(BaseHTTPRequestHandler):
    """An MMSC that takes every SubmitReq at once: the channel's own throughput."""
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True          # the headers and the body are two writes
    answer = mm7.delivery_report_response("x")[1].replace(b"DeliveryReportRsp", b"SubmitRsp").replace(
        b"</Status>", b"</Status><MessageID>canned</MessageID>")

    def do_POST(self):                      # http.server's name for it
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "text/xml; charset=utf-8")
        self.send_header("Content-Length", str(len(self.answer)))
        self.end_headers()
        self.wfile.write(self.answer)

    def log_message(self, *args):
        pass


def submissions(url: str, n: int, user: str = "vasp", password: str = "secret") -> tuple:
    done, cond = [], threading.Condition()

    def on_result(mid, state, reason="", smsc_id=None):
        with cond:
            done.append(state)
            cond.notify_all()
    ch = MmsChannel(url, user=user, password=password, vasp_id="SP01", window=8, timeout=30)
    ch.start(on_result)
    text = '{"subject": "午餐", "slides": ["午休时间到！", "回复 Y"]}'
    t = time.perf_counter()
    for i in range(n):
        while not ch.send(Outgoing(f"m{i}", f"86138{i:08d}", "10658000", text, "lunch",
                                   (Slide("", PICTURE, "lunch.jpg"), Slide()))):
            time.sleep(0.001)
    with cond:
        cond.wait_for(lambda: len(done) >= n, 600)
    seconds = time.perf_counter() - t
    ch.stop()
    return seconds, {s: done.count(s) for s in set(done)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subscribers", type=int, default=1_000_000)
    ap.add_argument("--history", type=int, default=10_000_000, help="contacts in the policy's history")
    ap.add_argument("--mm7", type=int, default=2000, help="submissions through the mms channel")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "places.yaml").write_text(PLACES)
        (Path(d) / "policy.yaml").write_text("timezone: Asia/Shanghai\ncaps: [{per: 1d, max: 1}, {per: 7d, max: 3}]\n")
        (Path(d) / "lunch.yaml").write_text(CAMPAIGN)
        rs = rules.load(d)
        assert rs.ok, rs.errors
    c = rs.campaigns[0]
    engine = Engine(rs, capacity=1 << 21)
    t = time.perf_counter()
    state(engine, args.subscribers)
    print(f"state: {args.subscribers:,} subscribers in {time.perf_counter() - t:.1f} s")
    run = T0 + 4 * 3600 * 10**9
    t = time.perf_counter()
    triggers = engine.scheduled(c, run)
    evaluated = time.perf_counter() - t
    print(f"1. audience evaluation    {rate(args.subscribers, evaluated)}: {len(triggers):,} in the audience")
    t = time.perf_counter()
    made = list(triggers)
    print(f"   triggers made          {rate(len(made), time.perf_counter() - t)}")

    policy = ContactPolicy(rs)
    rng = np.random.default_rng(1)
    own = pack([x.msisdn for x in made[: args.history // 4]])
    others = pack(np.char.add("86139", np.char.zfill(rng.integers(0, 10**8, args.history - len(own)).astype("U8"), 8)))
    keys = np.concatenate([own, others])
    ts = run - rng.integers(1, 30 * 86400, len(keys)) * 10**9
    policy.history.load(keys, ts, rng.integers(0, 4, len(keys)).astype(np.int32))
    print(f"   history: {len(policy.history):,} contacts ({len(own):,} of the audience's)")
    t = time.perf_counter()
    outcomes = {}
    for lo in range(0, len(made), 10_000):
        for dec in policy.decide(made[lo:lo + 10_000], run):
            key = dec.state + (":" + dec.reason if dec.reason else "")
            outcomes[key] = outcomes.get(key, 0) + 1
    print(f"2. policy decisions       {rate(len(made), time.perf_counter() - t)}: "
          + ", ".join(f"{k} {v:,}" for k, v in sorted(outcomes.items())))

    s = mm7.Submit("m1", "SP01", "lunch", "1065", "10658000", ["8613800000001"], "午餐",
                   [mm7.Slide("午休时间到！", PICTURE), mm7.Slide("回复 Y")])
    n = 300
    t = time.perf_counter()
    for _ in range(n):
        mm7.submit_request(s)
    ours = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(n):
        encode_with_email(s)
    theirs = time.perf_counter() - t
    print(f"3. MM7 SubmitReq, 100 KB  ours {rate(n, ours)}; email package {rate(n, theirs)}; "
          f"ratio {theirs / ours:.1f}x")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Canned)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    seconds, states = submissions(f"http://127.0.0.1:{server.server_port}/mm7", args.mm7)
    server.shutdown()
    print(f"   to an MMSC answering at once  {rate(args.mm7, seconds)}: {states}")
    from tests.mmsc import Mmsc
    with Mmsc() as peer:
        seconds, states = submissions(peer.url, max(100, args.mm7 // 4))
    print(f"   to tests/mmsc.py (parses each) {rate(max(100, args.mm7 // 4), seconds)}: {states}")


if __name__ == "__main__":
    main()
