"""`touchpoint demo`: the whole product on one sample day, with nothing to configure.

    run(out="touchpoint-demo", subscribers=3000, seed=1)

1. A story is written for the day (OUT/story.yaml, touchpoint.probe.synth.story): a share of the subscribers
   lives each scenario of the example campaigns in rules/ (a new 5G handset, the first time on
   5G, the first data session after a silent month, a hotline call, arriving in Shanghai,
   shopping at Wangfujing in the evening, forwarding calls then a power cycle; the MMS
   playbook's groups: students around the colleges, women at the office towers, men of a high
   ARPU landing at the airport), some of them then reach the campaign's goal (more often when
   contacted than when held out), and the rest are background subscribers doing ordinary
   things. A second story (OUT/history.yaml) gives the new-handset subscribers the data days of
   the previous weeks that make them `active`, and the groups their weeks at the colleges and
   the towers (and the students' picture messages of October). Both are rendered to captures;
   the lists of the day's subscribers (postpaid, staff, seeds, billing's and the service desk's)
   are written (with the rows of rules/lists/) and imported with the TAC table.
2. `touchpoint engine` (with its in-process dispatcher, `--clock records`) and `touchpoint
   probe` run as processes over ZeroMQ on loopback with a copy of rules/; the weeks before go as
   fast as they can, the day at SPEED times its pace: the channels send at their `rate` a
   second of wall time, and a day replayed at full speed would leave the sms campaign's
   messages hours of record time behind their triggers. The campaigns with `send: approve` are approved as the
   operator would, with `ctl`: during the replay and at its end (the Wangfujing evening is
   late in the day, so its two-hour window is still open then).
   The `sms` channel's SMSC is a small one on loopback (LocalSmsc) that answers each submit_sm
   with a delivery receipt; the `mms` channel's MMSC (LocalMmsc) answers each SubmitReq, posts
   its delivery report and, from some subscribers, a reply; the others go to the file channel.
3. The report: `touchpoint report` of the campaigns, `--health`, the service scorecard of the
   month (`--scorecard`: billing's and the service desk's lists are the demo's, _billing()) and
   the seed's forwards, with their plots (OUT/report.png, health.png, scorecard.png,
   forwards.png); `ctl campaigns` at the end in OUT/summary.json. The engine exports the
   marketing data pool into OUT/pool (control.pool).

Failures (a port in use, a process that dies) stop the demo with the process's own last
lines; the child processes are always ended.
"""
import contextlib
import http.client
import json
import os
import queue
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources

import click
import yaml

from . import mm7, smpp_pdu
from .mms import basic_auth
from .ctlclient import Unreachable, request
from .policy import holdout_share

RULES = str(resources.files("touchpoint.rules"))        # the example campaigns, shipped with the package
DAY = datetime(2026, 11, 7, 8, 0, tzinfo=timezone(timedelta(hours=8)))    # 08:00 in Beijing
SPEED = 3000                # the day's replay: 12 hours in about 15 s
APPROVE = ("cf-churn-retention", "dwell-wangfujing")   # `send: approve`: the demo approves them
# Scenario -> share of the story's subscribers (the rest of --subscribers is background).
COHORTS = (("handset", 0.11), ("5g", 0.11), ("silent", 0.12), ("hotline", 0.12), ("roam", 0.12),
           ("dwell", 0.10), ("churn", 0.07), ("campus", 0.06), ("office", 0.06), ("airport", 0.04),
           ("seed", 0.02), ("friend", 0.04))
MMS_GROUPS = ("campus", "office", "airport")
SEED = "mms-seed"           # the seed MMS: to the `seeds` list, passed on among their friends
BACKGROUND = 0.25
CONVERT = (0.45, 0.15)      # goal reached: contacted, held out
REPLY = (0.30, 0.03)        # of the MMS groups, who answers a picture message: Y or 是, TD (opts out)
FORWARD = 0.5               # of the seed's holders, who passes it on (to 1 to 3 others)
REACHED_CONVERT = 0.35      # of those a forward reached, who then reaches the seed campaign's goal


class DemoError(Exception):
    """The demo cannot go on: the message says what and where."""


# ---------------------------------------------------------------------------
# The sample day
# ---------------------------------------------------------------------------

def _at(minutes: float) -> str:
    return f"+{int(minutes)}m"


def _minutes(step: dict) -> int:
    """A step's time in minutes from the story's start: `+Nm`, or `+DdNm` in the history."""
    days, _, minutes = step["at"][1:-1].rpartition("d")
    return int(days or 0) * 1440 + int(minutes)


def _campaign_of(cohort: str) -> str:
    return {"handset": "new-handset-5g", "5g": "first-5g", "silent": "first-data-use", "hotline": "hotline-caller",
            "roam": "roaming-in-shanghai", "dwell": "dwell-wangfujing", "churn": "cf-churn-retention",
            "campus": "mms-campus", "office": "mms-office", "airport": "mms-airport", "seed": SEED,
            "friend": SEED}[cohort]


def _holdouts() -> dict:
    """Each example campaign's hold-out share, from its rule file."""
    out = {}
    for name in os.listdir(RULES):
        if name.endswith(".yaml") and name not in ("places.yaml", "policy.yaml"):
            with open(os.path.join(RULES, name), encoding="utf-8") as f:
                doc = yaml.safe_load(f)
            h = str(doc.get("holdout", "0%")).rstrip("%")
            out[doc["id"]] = float(h) / 100
    return out


def make_day(subscribers: int, seed: int) -> tuple:
    """(day story, history story, lists, replies, trail) as plain data: lists are the rows of the
    postpaid, staff and seeds lists and of billing's and the service desk's (_billing()); replies
    what the MMS groups' subscribers answer a picture message with, by MSISDN; trail the seed's
    forwards the day holds (_forwards())."""
    rng = random.Random(seed)
    holdout = _holdouts()
    n_story = max(len(COHORTS), int(subscribers * (1 - BACKGROUND)))
    people, history, postpaid, staff, seeds, replies = {}, {}, [], [], [], {}
    holders, friends = [], []
    k = 0
    for cohort, share in COHORTS:
        for _ in range(max(1, round(n_story * share))):
            k += 1
            name = f"{cohort}-{k}"
            imsi, msisdn = f"4600077{k:08d}", f"86137{k:08d}"
            tac = {"handset": "86837504", "5g": rng.choice(("35391110", "35332509", "35290611"))}.get(
                cohort, rng.choice(("86837504", "35332509", "01326300", "35875505")))
            campaign = _campaign_of(cohort)
            contacted = holdout_share(campaign, msisdn) >= holdout.get(campaign, 0)
            converts = rng.random() < CONVERT[0 if contacted else 1]
            steps = _steps(cohort, rng, converts)
            people[name] = {"imsi": imsi, "msisdn": msisdn, "imei": tac + f"{k % 1000000:06d}", "steps": steps}
            if past := _history(cohort, rng, steps):
                history[name] = {"imsi": imsi, "msisdn": msisdn, "imei": people[name]["imei"], "steps": past}
            if cohort == "5g" or cohort in MMS_GROUPS or rng.random() < 0.88:   # most are postpaid
                age = rng.choice((16, 17)) if rng.random() < 0.03 else rng.randrange(18, 70)
                gender, arpu = rng.choice(("男", "女")), rng.choice((59.0, 129.5, 198.0, 398.0))
                if cohort == "campus":          # the groups' list columns: who they are
                    age = rng.randrange(18, 24)
                elif cohort == "office":
                    age, gender = rng.randrange(25, 36), "女"
                elif cohort == "airport":
                    age, gender, arpu = rng.randrange(28, 60), "男", rng.choice((198.0, 398.0))
                postpaid.append((msisdn, imsi, rng.choice(("华为", "苹果", "小米", "OPPO", "vivo")), age, gender, arpu,
                                 rng.choice(("动感地带", "畅享129", "全球通398")),
                                 rng.choice(("北京", "上海", "广州"))))
            if cohort in MMS_GROUPS and (r := rng.random()) < REPLY[0] + REPLY[1]:
                replies[msisdn] = "TD" if r < REPLY[1] else rng.choice(("Y", "Y", "是"))
            if cohort == "seed":
                seeds.append((msisdn, "意见领袖"))
                if contacted:
                    holders.append(people[name])
            elif cohort == "friend":
                friends.append(people[name])
            elif rng.random() < 0.01:
                staff.append((msisdn, "市场部"))
    trail = _forwards(holders, friends, rng)
    mms = [p["msisdn"] for name, p in people.items() if name.split("-")[0] in (*MMS_GROUPS, "seed", "friend")]
    lists = {"postpaid": postpaid, "staff": staff, "seeds": seeds,
             **_billing(mms, [p["msisdn"] for p in people.values()], random.Random(seed + 1))}
    start = DAY.isoformat()
    day = {"start": start, "places": "rules/places.yaml",
           "background": {"subscribers": max(0, subscribers - len(people)), "activity": 1},
           "subscribers": people}
    hist = {"start": (DAY - timedelta(days=20)).isoformat(), "places": "rules/places.yaml", "subscribers": history}
    return day, hist, lists, replies, trail


def _steps(cohort: str, rng: random.Random, converts: bool) -> list:
    """One subscriber's day in its scenario (times from 08:00; all done by about 20:00, before
    the policy's quiet hours), and the goal when it converts."""
    t0 = rng.uniform(0, 50)
    via = "lte" if cohort == "5g" else "cs"
    s = [{"at": _at(t0), "do": "attach", "via": via, "region": "beijing"}]
    t = rng.uniform(70, 560)                                  # the moment, 09:10 to 17:20
    goal = None
    if cohort == "handset":
        s.append({"at": _at(t), "do": "change_handset", "tac": rng.choice(("35391110", "35332509"))})
        goal = {"do": "data", "apn": "cmnet", "rat": "nr", "duration": "10m", "packets": 6}
    elif cohort == "5g":
        s.append({"at": _at(t), "do": "data", "apn": "cmnet", "rat": "nr", "duration": "10m", "packets": 6})
        goal = {"do": "data", "apn": "cmnet", "rat": "nr", "duration": "10m", "packets": 6}
    elif cohort == "silent":
        # a session that carries nothing yet: the engine sees the segment as of its batch's end
        s.append({"at": _at(t), "do": "data", "apn": "cmnet", "duration": "5m", "packets": 0})
        goal = {"do": "data", "apn": "cmnet", "duration": "20s", "packets": 1600}    # a megabyte and more
    elif cohort == "hotline":
        s.append({"at": _at(t), "do": "call", "to": rng.choice(("service", "directory")), "via": "cap"})
        goal = {"do": "data", "apn": "cmnet", "duration": "5m", "packets": 4}
    elif cohort == "roam":
        s.append({"at": _at(t), "do": "roam_to", "region": "shanghai"})
        goal = {"do": "data", "apn": "cmnet", "duration": "5m", "packets": 4}
    elif cohort == "dwell":                                   # evening shopping: 18:20 to 19:00
        t = rng.uniform(620, 660)
        s.append({"at": _at(t), "do": "move", "area": "wangfujing"})
        t += rng.uniform(25, 35)
        s.append({"at": _at(t), "do": "move", "area": "wangfujing"})
        if converts:                        # out for dinner (a cell outside), then back: the goal, area_enter
            t += rng.uniform(5, 15)
            s.append({"at": _at(t), "do": "move", "region": "beijing", "cell": rng.randrange(20000, 60000)})
            goal = {"do": "move", "area": "wangfujing"}
    elif cohort == "churn":
        t = rng.uniform(60, 300)
        s.append({"at": _at(t), "do": "register_cf", "ss": "cfu", "to": f"86133{rng.randrange(10**8):08d}"})
        t += rng.uniform(30, 120)
        s.append({"at": _at(t), "do": "power_off"})
        t += rng.uniform(60, 240)
        s.append({"at": _at(t), "do": "power_on"})
        goal = {"do": "move", "vlr": "861390020009"}         # still with us: a location update
    elif cohort == "seed":                                    # the seed MMS comes at 12:30
        s[0]["via"] = "lte"
        t = 270
        goal = {"do": "data", "apn": "cmnet", "duration": "5m", "packets": 4}
    elif cohort == "friend":                                  # their day: _forwards()
        return s
    elif cohort in MMS_GROUPS:                                # the MMS groups: picture messages at set times
        s[0].update(via="lte", region="shanghai" if cohort == "airport" else "beijing")     # areas of 4G cells
        if cohort == "campus" and rng.random() < 0.3:     # back from a weekend at home after lunch: the evening run
            s[0]["region"] = "guangzhou"
            s.append({"at": _at(rng.uniform(300, 560)), "do": "move", "area": "colleges"})
        elif cohort == "campus":
            s.append({"at": _at(rng.uniform(60, 200)), "do": "move", "area": "colleges"})
        elif cohort == "office":
            s.append({"at": _at(rng.uniform(60, 180)), "do": "move", "area": "office-towers"})
        else:                       # landed in Beijing between 17:00 and 19:20
            s.append({"at": _at(rng.uniform(540, 680)), "do": "move", "area": "airport"})
        t = 710 if cohort == "airport" or _minutes(s[-1]) > 240 else 260     # sent by about 19:50, 12:20
        goal = {"do": "data", "apn": "cmnet", "duration": "5m", "packets": 4}
    if goal and converts:
        late = cohort in MMS_GROUPS or cohort == "seed"        # after a picture message's time
        s.append(dict(goal, at=_at(t + rng.uniform(60, 180) if late else t + rng.uniform(20, 120))))
    return s


def _forwards(holders: list, friends: list, rng: random.Random) -> dict:
    """The seed MMS passed on: the seeds it was sent to at 12:30 (`holders`, generation 0) and,
    from 13:30, half of each generation's holders send it to one to three others within the next
    100 minutes, mostly friends who have none yet (the next generation), sometimes one who has it
    already (a forward, no new reach); a friend gets a copy from outside the network (unlinked).
    The notifications go into the recipients' days, and a data session after being reached into
    those who convert. Returns the trail `report --forwards` must show."""
    with open(os.path.join(RULES, f"{SEED}.yaml"), encoding="utf-8") as f:
        subject = yaml.safe_load(f)["message"]["subject"]
    free = list(friends)
    rng.shuffle(free)
    outsider = free.pop() if len(free) > 1 else None
    t = {"seeded": len(holders), "forwards": 0, "reached": 0, "unlinked": 0, "reached_converted": 0}
    gens = {0: len(holders)}
    have, frontier = list(holders), list(holders)       # have: holders since before this generation
    for g in (1, 2, 3):
        start, nxt = 330 + 120 * (g - 1), []
        for p in frontier:
            if rng.random() >= FORWARD:
                continue
            for _ in range(rng.choice((1, 1, 2, 3))):
                at = rng.uniform(start, start + 100)
                again = [q for q in have if q is not p]
                if free and (rng.random() < 0.85 or not again):
                    q = free.pop()
                    nxt.append(q)
                    t["reached"] += 1
                    if rng.random() < REACHED_CONVERT:
                        q["steps"].append({"at": _at(at + rng.uniform(20, 90)), "do": "data", "apn": "cmnet",
                                           "duration": "5m", "packets": 4})
                        t["reached_converted"] += 1
                elif again:
                    q = rng.choice(again)
                else:
                    continue
                t["forwards"] += 1
                q["steps"].append({"at": _at(at), "do": "mms_mt", "from": p["msisdn"],
                                   "subject": rng.choice(("转发：", "Fwd: ", "FW:", "")) + subject,
                                   "size": rng.randrange(60_000, 150_000)})
        if nxt:
            gens[g] = len(nxt)
        have += nxt
        frontier = nxt
    if outsider is not None:                # from a number of another network: no known holder
        outsider["steps"].append({"at": _at(rng.uniform(330, 690)), "do": "mms_mt", "from": "8613900000999",
                                  "subject": "转发：" + subject, "size": 90_000})
        t["unlinked"] = 1
    for p in holders + friends:
        p["steps"].sort(key=_minutes)
    return {"campaign": SEED, **t, "generations": {str(g): n for g, n in gens.items()}}


def _history(cohort: str, rng: random.Random, today: list) -> list:
    """A subscriber's weeks before the day (from 20 days before it): data days that make the new-handset
    subscribers `active`; the days around the colleges or the office towers of the MMS groups."""
    if cohort == "handset":
        return [{"at": f"+{d}d{rng.randrange(60, 600)}m", "do": "data", "apn": "ims", "duration": "5m", "packets": 4}
                for d in (0, 8, 14, 17)]
    if cohort == "campus":          # with today, ten days or more by lunch; the afternoon ones, ten by the evening
        late = _minutes(next(x for x in today if x.get("area") == "colleges")) > 240
        days = rng.sample(range(20), 9 if late else rng.randrange(9, 14))
        mms = [{"at": f"+{d}d{rng.randrange(600, 700)}m", "do": "mms_mt", "from": "8613900000003"}
               for d in sorted(rng.sample(range(14), 2))]          # picture messages in October, too
        return sorted([{"at": f"+{d}d{rng.randrange(30, 600)}m", "do": "move", "area": "colleges"} for d in days]
                      + mms, key=_minutes)
    if cohort == "office":          # 8 to 12 days at the towers, and a picture message received
        days = sorted(rng.sample(range(20), rng.randrange(8, 13)))
        steps = [{"at": f"+{d}d{rng.randrange(30, 120)}m", "do": "move", "area": "office-towers"} for d in days]
        return steps + [{"at": f"+{days[-1]}d{rng.randrange(200, 500)}m", "do": "mms_mt", "from": "8613900000002"}]
    return []


def _billing(mms: list, everyone: list, rng: random.Random) -> dict:
    """What billing and the service desk know of the sample month and the one before, for the
    service scorecard (`report --scorecard`): each MMS user's revenue in October and November
    (some pay nothing; November a little more), complaints, and survey answers."""
    billing, complaints, satisfaction = [], [], []
    for m in mms:
        october = rng.choice((0.0, 0.0, 3.0, 5.0, 10.0))
        billing.append((m, "2026-10", "mms", october))
        billing.append((m, "2026-11", "mms", october + rng.choice((0.0, 0.0, 2.0, 5.0)) if october else
                        rng.choice((0.0, 0.0, 5.0))))
    for month, days in (("2026-10", range(18, 32)), ("2026-11", range(1, 8))):
        for m in rng.sample(everyone, max(1, len(everyone) // 250)):
            complaints.append((m, f"{month}-{rng.choice(days):02d}", "mms"))
        for m in rng.sample(mms, max(1, len(mms) // 12)):
            satisfaction.append((m, month, "mms", rng.choice((6, 7, 8, 8, 9, 9, 10))))
    return {"billing": billing, "complaints": complaints, "satisfaction": satisfaction}


def write_lists(out: str, lists: dict) -> dict:
    """The demo's lists (make_day()): the rows of rules/lists/ and the day's subscribers; their
    paths by name."""
    os.makedirs(os.path.join(out, "lists"), exist_ok=True)
    paths = {}
    for name, rows in lists.items():
        path = os.path.join(out, "lists", f"{name}.csv")
        with open(os.path.join(RULES, "lists", f"{name}.csv"), encoding="utf-8") as f:
            sample = f.read().rstrip("\n") + "\n"
        with open(path, "w", encoding="utf-8") as f:
            f.write(sample)
            f.writelines(",".join(str(x) for x in r) + "\n" for r in rows)
        paths[name] = path
    return paths


# ---------------------------------------------------------------------------
# A small SMSC on loopback for the campaigns whose channel is sms
# ---------------------------------------------------------------------------

class LocalSmsc:
    """Binds any ESME, answers submit_sm with a message id and sends a DELIVRD receipt for
    it: what an operator's SMSC does for a message that reaches the handset."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.submitted = 0
        self.stopping = False
        threading.Thread(target=self._accept, name="demo-smsc", daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket):
        seq = 0x10000
        with conn:
            f = conn.makefile("rb")
            while True:
                head = f.read(16)
                if len(head) < 16:
                    return
                length, cid, _, n = smpp_pdu.HEADER.unpack(head)
                body = f.read(length - 16)
                if cid in (smpp_pdu.BIND_TRANSCEIVER, smpp_pdu.BIND_TRANSMITTER):
                    conn.sendall(smpp_pdu.pack(cid | smpp_pdu.RESP, n, smpp_pdu.c_octets("demo", 16, "system_id")))
                elif cid == smpp_pdu.SUBMIT_SM:
                    self.submitted += 1
                    sm = smpp_pdu.ShortMessage.decode(body)
                    mid = f"{self.submitted:x}"
                    out = smpp_pdu.pack(cid | smpp_pdu.RESP, n, smpp_pdu.c_octets(mid, 65, "message_id"))
                    seq += 1
                    receipt = smpp_pdu.ShortMessage(source_addr=sm.destination_addr, destination_addr=sm.source_addr,
                                                    esm_class=smpp_pdu.ESM_RECEIPT,
                                                    short_message=f"id:{mid} stat:DELIVRD err:000".encode(),
                                                    tlvs={smpp_pdu.TLV_RECEIPTED_MESSAGE_ID: mid.encode() + b"\0",
                                                          smpp_pdu.TLV_MESSAGE_STATE: bytes((2,))})
                    conn.sendall(out + smpp_pdu.pack(smpp_pdu.DELIVER_SM, seq, receipt.encode()))
                elif cid == smpp_pdu.UNBIND:
                    conn.sendall(smpp_pdu.pack(cid | smpp_pdu.RESP, n))
                    return
                elif not cid & smpp_pdu.RESP:                     # enquire_link and the rest: OK
                    conn.sendall(smpp_pdu.pack(cid | smpp_pdu.RESP, n))

    def close(self):
        self.stopping = True
        self.sock.close()


class LocalMmsc:
    """Takes a SubmitReq (mm7.parse_submit_request) with the mms channel's credentials, answers it
    1000 with a MessageID, then posts to the channel's `listen` endpoint the DeliveryReportReq
    Retrieved and, from the subscribers of `replies`, their answer as a DeliverReq to the message's
    sender address: what an MMSC does for a picture message that reaches the handset and is
    answered. The report goes a moment after the answer, as a handset's fetch does; a request the
    dispatcher did not take is counted (`lost`), not made again. serve() gives the settings."""

    DELAY = 0.3                 # seconds from the SubmitRsp to the report, and on to the reply

    def __init__(self):
        self.replies, self.vasp, self.auth = {}, None, None
        self.submitted = self.replied = self.lost = 0
        self.lock = threading.Lock()            # the handler threads' count of submits
        self.todo = queue.Queue()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, name="demo-mmsc", daemon=True).start()
        threading.Thread(target=self._post, name="demo-mmsc-reports", daemon=True).start()

    def serve(self, settings: dict, replies: dict) -> None:
        """The policy's mms channel `settings` (url, user, password, listen, listen_user and
        listen_password) and what each subscriber replies."""
        self.replies, self.auth = replies, basic_auth(settings.get("user", ""), settings.get("password", ""))
        host, port = settings["listen"].rsplit(":", 1)
        self.vasp = (host, int(port), basic_auth(settings.get("listen_user", "mmsc"), settings["listen_password"]))

    def _handler(self):
        mmsc = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if mmsc.auth is None or self.headers.get("Authorization") != mmsc.auth:
                    return self._reply(401, "text/plain", b"authentication required\n")
                try:
                    req = mm7.parse_submit_request(self.headers.get("Content-Type", ""), body)
                except mm7.MM7Error as e:
                    return self._reply(400, "text/plain", f"{e}\n".encode())
                with mmsc.lock:
                    mmsc.submitted += 1
                    mid = f"mmsc-{mmsc.submitted:06d}"
                self._reply(200, *mm7.submit_response(req.transaction_id, mid, req.namespace or mm7.DEFAULT_NAMESPACE))
                mmsc.todo.put((time.monotonic() + mmsc.DELAY, mid, req))

            def _reply(self, status: int, ctype: str, data: bytes):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        return Handler

    def _post(self):
        """The reports and replies, in order, each when its time comes."""
        while (item := self.todo.get()) is not None:
            at, mid, req = item
            time.sleep(max(0.0, at - time.monotonic()))
            ns = req.namespace or mm7.DEFAULT_NAMESPACE
            for to in req.recipients:
                self._send(*mm7.delivery_report_request(f"dr-{mid}", mid, to, req.sender, "Retrieved", ns))
                if word := self.replies.get(to):
                    self.replied += self._send(*mm7.deliver_request(f"mo-{mid}", to, req.sender, word, "", ns))

    def _send(self, ctype: str, body: bytes) -> bool:
        if self.vasp is None:
            self.lost += 1
            return False
        host, port, auth = self.vasp
        conn = http.client.HTTPConnection(host, port, timeout=5)
        try:
            conn.request("POST", "/", body, {"Content-Type": ctype, "Authorization": auth})
            ok = conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            ok = False
        finally:
            conn.close()
        self.lost += not ok
        return ok

    def close(self):
        self.todo.put(None)
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------
# Running it
# ---------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _touchpoint(*args) -> list:
    return [sys.executable, "-c", "from touchpoint.control.cli import run; run()", *args]


class Children:
    """The demo's processes: each one's stderr in OUT/NAME.log; all ended on the way out."""

    def __init__(self, out: str):
        self.out = out
        self.procs = {}

    def start(self, name: str, args: list) -> subprocess.Popen:
        log = open(os.path.join(self.out, f"{name}.log"), "w")
        with _signals_held():                   # a child started is a child known, to be ended
            self.procs[name] = p = subprocess.Popen(_touchpoint(*args), stdout=log, stderr=subprocess.STDOUT,
                                                    stdin=subprocess.DEVNULL, cwd=self.out, start_new_session=True)
        log.close()
        return p

    def tail(self, name: str, n: int = 5) -> str:
        try:
            with open(os.path.join(self.out, f"{name}.log"), errors="replace") as f:
                return "".join(f.readlines()[-n:]).rstrip()
        except OSError:
            return ""

    def died(self, name: str) -> DemoError:
        p = self.procs[name]
        return DemoError(f"touchpoint {name} stopped with exit code {p.returncode}; the last lines of "
                         f"{os.path.join(self.out, name + '.log')}:\n{self.tail(name)}")

    def check(self, *names) -> None:
        for name in names:
            if self.procs[name].poll() is not None:
                raise self.died(name)

    def stop(self, timeout: float = 10.0) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        end = time.monotonic() + timeout
        for p in self.procs.values():
            try:
                p.wait(max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def run(out: str = "touchpoint-demo", subscribers: int = 3000, seed: int = 1, port: int = 0,
        echo=click.echo) -> dict:
    """The demo from start to report; returns the per-campaign summary. Raises DemoError."""
    t_start = time.monotonic()
    if not os.path.isfile(os.path.join(RULES, "policy.yaml")):
        raise DemoError(f"no example campaigns in {RULES}: the touchpoint installation is incomplete")
    out = os.path.abspath(out)
    if os.path.exists(out):
        if not os.path.isdir(out) or (os.listdir(out) and not os.path.exists(os.path.join(out, "story.yaml"))):
            raise DemoError(f"{out} exists and is not a demo directory: give another --out")
        shutil.rmtree(out)
    os.makedirs(out)
    port = port or _free_port()
    with socket.socket() as s:                  # a port in use: say so before anything starts
        try:
            s.bind(("127.0.0.1", port))
        except OSError as e:
            raise DemoError(f"port {port} on 127.0.0.1: {e.strerror}; give another with --port") from None
    smsc, mmsc = LocalSmsc(), LocalMmsc()
    kids = Children(out)
    status = _Status(echo)
    main = threading.current_thread() is threading.main_thread()
    stopped = signal.signal(signal.SIGTERM, _terminated) if main else None     # children are ended then too
    try:
        h, d, summary, campaigns = _run(out, subscribers, seed, port, smsc, mmsc, kids, status)
    finally:
        kids.stop()
        smsc.close()
        mmsc.close()
        if stopped is not None:
            signal.signal(signal.SIGTERM, stopped)
    summary = {"seconds": round(time.monotonic() - t_start, 1), "subscribers": subscribers, "seed": seed,
               "records": d["records"] + h["records"], "smsc_submitted": smsc.submitted,
               "mmsc_submitted": mmsc.submitted, "mmsc_replies": mmsc.replied, "mmsc_lost": mmsc.lost, **summary,
               "campaigns": campaigns}
    with open(os.path.join(out, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, ensure_ascii=False, indent=1)
    status.done()
    return summary


@contextlib.contextmanager
def _signals_held():
    """SIGTERM and SIGINT wait until the block is done: raised inside Popen, after the fork, they
    left a child running that nobody knew of (tests/test_demo.py caught one)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got = []
    old = {s: signal.signal(s, lambda signum, frame: got.append(signum)) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        if got and callable(old[got[0]]):
            old[got[0]](got[0], None)
        elif got and old[got[0]] == signal.SIG_DFL:
            signal.raise_signal(got[0])


def _terminated(signum, frame):
    raise SystemExit(f"touchpoint demo: stopped by signal {signum}")


def _run(out, subscribers, seed, port, smsc, mmsc, kids, status) -> tuple:
    """run() between the SMSC and MMSC and the end of the child processes: (history stats, day
    stats, the dispatcher's last states, ctl campaigns)."""
    from touchpoint.probe.synth import story

    data = os.path.join(out, "data")
    rules = os.path.join(out, "rules")
    shutil.copytree(RULES, rules, ignore=shutil.ignore_patterns("lists", "stories"))
    with open(os.path.join(rules, "policy.yaml"), encoding="utf-8") as f:
        policy = f.read()
    policy = re.sub(r"(?m)^(\s+port:\s*)\d+", rf"\g<1>{smsc.port}", policy)         # the demo's SMSC
    policy = re.sub(r"(?m)^(\s+url:\s*http://127\.0\.0\.1:)\d+", rf"\g<1>{mmsc.port}", policy)   # and MMSC
    policy = re.sub(r"(?m)^(\s+listen:\s*127\.0\.0\.1:)\d+", rf"\g<1>{_free_port()}", policy)
    with open(os.path.join(rules, "policy.yaml"), "w", encoding="utf-8") as f:
        f.write(policy)

    status.say(f"generating a day of {subscribers:,} subscribers (seed {seed})")
    day, hist, lists, replies, trail = make_day(subscribers, seed)
    mmsc.serve(yaml.safe_load(policy)["channels"]["mms"], replies)
    for name, doc in (("story", day), ("history", hist)):
        with open(os.path.join(out, f"{name}.yaml"), "w", encoding="utf-8") as f:
            f.write(f"# touchpoint demo: {'the sample day' if name == 'story' else 'the weeks before it'}\n")
            yaml.safe_dump(doc, f, allow_unicode=True, sort_keys=False, default_flow_style=None, width=200)
    try:
        h = story.render(os.path.join(out, "history.yaml"), os.path.join(out, "history.pcap"), seed=seed)
        d = story.render(os.path.join(out, "story.yaml"), os.path.join(out, "day.pcap"), seed=seed)
    except story.StoryError as e:
        raise DemoError(str(e)) from None
    status.say(f"day.pcap: {d['packets']:,} packets, {d['records']:,} records; history.pcap: {h['packets']:,} packets")

    from .lists import import_list, import_tac
    rows = {name: import_list(data, name, path)["rows"] for name, path in write_lists(out, lists).items()}
    import_tac(data, os.path.join(RULES, "lists", "tac.csv"))
    status.say("imported the lists " + ", ".join(f"{name} ({n:,} rows)" for name, n in rows.items())
               + " and the TAC table")

    ctl = f"ipc://{data}/ctl.sock"
    push = f"tcp://127.0.0.1:{port}"
    kids.start("engine", ["engine", "--rules", rules, "--data", data, "--listen", push, "--clock", "records",
                          "--status-interval", "0", "--export", os.path.join(out, "pool")])
    _wait_ctl(ctl, kids)
    kids.start("probe-history", ["probe", "--pcap", "history.pcap", "--push", push, "--lossless",
                                 "--status-interval", "0"])
    _wait(kids, "probe-history", ctl, None, status)
    kids.start("probe", ["probe", "--pcap", "day.pcap", "--push", push, "--lossless", "--speed", f"{SPEED}x",
                         "--status-interval", "0"])
    total = h["records"] + d["records"]
    _wait(kids, "probe", ctl, total, status)
    summary = {**_finish(ctl, kids, status), "forwards": trail}     # the trail the day holds, for the report's
    campaigns = _call(ctl, "campaigns", kids)
    kids.stop()
    if kids.procs["engine"].returncode not in (0, -signal.SIGTERM):
        raise kids.died("engine")
    return h, d, summary, campaigns


class _Status:
    """One status line on stderr, rewritten in place on a terminal."""

    def __init__(self, echo):
        self.echo = echo
        self.tty = sys.stderr.isatty()
        self.t0 = time.monotonic()
        self.last = ""

    def say(self, text: str, final: bool = False) -> None:
        """A new step, or progress within one (on a terminal: the line is rewritten; else only
        its first and `final` lines are written)."""
        line = f"[{time.monotonic() - self.t0:5.1f} s] {text}"
        step = text.split(":")[0]
        if self.tty:
            sys.stderr.write(("\r\033[K" if step == self.last else "\n" if self.last else "") + line)
            sys.stderr.flush()
        elif final or step != self.last:
            sys.stderr.write(line + "\n")
        self.last = step

    def done(self) -> None:
        if self.tty and self.last:
            sys.stderr.write("\n")
        self.last = ""


def _call(ctl: str, cmd: str, kids: Children, **args):
    try:
        r = request(ctl, cmd, args)
    except Unreachable as e:
        kids.check("engine")
        raise DemoError(f"touchpoint ctl {cmd}: {e}") from None
    if not r.get("ok"):
        if cmd == "approve" and str(r.get("error", "")).startswith("nothing pending"):
            return 0
        raise DemoError(f"touchpoint ctl {cmd}: {r.get('error')}")
    return r["result"]


def _wait_ctl(ctl: str, kids: Children, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        kids.check("engine")
        try:
            if request(ctl, "status", timeout=1.0).get("ok"):
                return
        except Unreachable:
            time.sleep(0.1)
    raise DemoError(f"touchpoint engine did not answer on {ctl} within {timeout:g} s:\n{kids.tail('engine')}")


def _wait(kids: Children, name: str, ctl: str, total, status: _Status) -> None:
    """Until the probe is done; meanwhile the progress and the operator's approvals."""
    p = kids.procs[name]
    while True:
        running = p.poll() is None
        kids.check("engine")
        if total:
            s = _call(ctl, "status", kids)
            done = min(s["engine"]["records"], total)
            bar = 30 * done // total
            status.say(f"replaying the day at {SPEED}x: [{'#' * bar}{'.' * (30 - bar)}] {100 * done // total}%  "
                       f"{s['engine']['records']:,} records, {s['engine']['triggers']:,} triggers", final=not running)
            for c in APPROVE:
                _call(ctl, "approve", kids, campaign=c)
        if not running:
            break
        time.sleep(0.3)
    if p.returncode != 0:
        raise kids.died(name)


def _finish(ctl: str, kids: Children, status: _Status, timeout: float = 30.0) -> dict:
    """The last approvals, then until the dispatcher has sent what is due."""
    status.say("end of the day: approving, sending what is due")
    for c in APPROVE:
        _call(ctl, "approve", kids, campaign=c)
    end, last, still = time.monotonic() + timeout, None, 0
    while time.monotonic() < end:
        d = _call(ctl, "status", kids)["dispatcher"]
        now = (d["states"].get("queued", 0), d["states"].get("sending", 0), d["states"].get("sent", 0))
        still = still + 1 if now == last and now[1] == 0 else 0
        if still >= 4:
            break
        last = now
        time.sleep(0.25)
    return {"states": d["states"], "reasons": d["reasons"]}


# ---------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------

def report(out: str, summary: dict, echo=click.echo) -> list:
    """A headline, then `touchpoint report` of the campaigns and of the service health, each
    with its plot. Returns the plot files."""
    echo(f"touchpoint demo: {summary['subscribers']:,} subscribers, {summary['records']:,} records, "
         f"{summary['seconds']:.0f} s; messages in {os.path.join(out, 'data', 'outbox.jsonl')}, the demo's SMSC "
         f"({summary['smsc_submitted']:,} submitted) and MMSC ({summary['mmsc_submitted']:,} submitted, "
         f"{summary['mmsc_replies']:,} replies)")
    plots = []
    for args, png in (([], "report.png"), (["--health"], "health.png"), (["--scorecard"], "scorecard.png"),
                      ([SEED, "--forwards"], "forwards.png")):
        r = subprocess.run(_touchpoint("report", "--data", "data", "--rules", "rules", *args, "--plot", png),
                           cwd=out, capture_output=True, text=True)
        if r.returncode != 0:
            raise DemoError(f"touchpoint report {' '.join(args)}: exit code {r.returncode}\n{r.stderr.strip()}")
        echo("\n".join(x for x in r.stdout.rstrip().splitlines() if not x.startswith("plot: ")))
        plots.append(os.path.join(out, png))
    echo(f"\nthe marketing data pool (docs/pool.md): {os.path.join(out, 'pool')}")
    return plots
