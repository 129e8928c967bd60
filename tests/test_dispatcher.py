"""The dispatcher with the real file channel and SQLite outbox: triggers in, messages out exactly
once; idempotent offers; opt-outs, pauses, approvals and arbitration across batches; the engine
with its in-process dispatcher; and `touchpoint dispatcher` SIGKILLed at random points and
restarted: every trigger ends exactly once in sent, expired or suppressed."""
import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from touchpoint.control.dispatcher import Dispatcher
from touchpoint.control.engine import Trigger
from touchpoint.control.policy import RecordClock, message_id
from touchpoint.control.rules import load

ROOT = Path(__file__).resolve().parents[1]
CLI = [
    sys.executable,
    "-c",
    "import sys; sys.path.insert(0, sys.argv.pop(1)); from touchpoint.control.cli import run; run()",
    str(ROOT),
]
NS = 10**9
H = 3600 * NS
T0 = 1_794_000_000 * NS             # 2026-11-06 16:00 UTC
TIMEOUT = 60


def rules_dir(tmp_path, campaigns: dict, policy: str = "caps: []\n", rate: str = "") -> Path:
    d = tmp_path / "rules"
    d.mkdir(exist_ok=True)
    for cid, extra in campaigns.items():
        status = "" if "status:" in extra else "status: active\n"
        (d / f"{cid}.yaml").write_text(f"id: {cid}\ntrigger: {{event: power_on}}\n{status}"
                                       f"message: {{text: '{cid}: 欢迎 {{msisdn}}'}}\n{extra}", encoding="utf-8")
    (d / "policy.yaml").write_text(policy + f"channels: {{file: {{path: sent.jsonl{rate}}}}}\n", encoding="utf-8")
    assert load(str(d)).ok, load(str(d)).errors
    return d


def trig(cid, i, ts, window=48 * H, priority=0) -> Trigger:
    return Trigger(cid, "power_on", ts, ts + window, f"46000{i:010d}", f"86139{i:08d}", priority, {"after": 5})


def sent_lines(data: Path) -> list:
    path = data / "sent.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def states(data: Path) -> dict:
    db = sqlite3.connect(str(data / "outbox.sqlite"))
    try:
        return {i: (s, r) for i, s, r in db.execute("SELECT id, state, reason FROM messages")}
    finally:
        db.close()


def drain(d: Dispatcher, timeout: float = TIMEOUT) -> None:
    end = time.monotonic() + timeout
    while not d.idle():
        assert time.monotonic() < end, d.status()
        time.sleep(0.02)


@pytest.fixture
def make(tmp_path):
    made = []

    def make(campaigns, policy="caps: []\n", clock=None):
        rs = load(str(rules_dir(tmp_path, campaigns, policy)))
        d = Dispatcher(str(tmp_path / "data"), rs, clock=clock or RecordClock())
        d.start()
        made.append(d)
        return d

    yield make
    for d in made:
        if not d.stopping.is_set():
            d.stop()


def test_triggers_become_messages_once(make, tmp_path):
    d = make({"hello": "holdout: 20%\n"})
    triggers = [trig("hello", i, T0 + i * NS) for i in range(500)]
    first = d.offer(triggers)
    assert first["queued"] + first["suppressed:holdout"] == 500 and first["suppressed:holdout"] > 50
    again = d.offer(triggers[::-1])                 # offered twice: one message each
    assert sum(again.values()) == 0 and d.counts["duplicates"] == 500
    drain(d)
    d.stop()
    out = sent_lines(tmp_path / "data")
    st = states(tmp_path / "data")
    sent = {i for i, (s, _) in st.items() if s == "sent"}
    assert len(out) == len(sent) == first["queued"] and {m["id"] for m in out} == sent
    assert set(st) == {message_id("hello", t.imsi, t.msisdn, t.ts_ns) for t in triggers}
    assert all(m["text"] == f"hello: 欢迎 {m['msisdn']}" and m["campaign"] == "hello" for m in out)


def test_optout_stops_what_is_queued_and_what_comes(make, tmp_path):
    d = make({"a": "", "b": ""}, 'caps: []\ntimezone: UTC\nquiet: {from: "00:00", to: "23:59"}\ncountry_code: "86"\n')
    # quiet all day but a minute: everything waits until 23:59, so the opt-out finds it queued
    d.offer([trig(c, i, T0 + k * 120 * NS) for i in range(10) for k, c in enumerate("ab")])
    assert d.optout_add("8613900000001") == 2                      # both campaigns
    assert d.optout_add("8613900000002", "a") == 1                 # campaign a only
    d.mo("+8613900000003", " 退订 ")                                 # an MO keyword: everything
    d.mo("8613900000004", "Y")                                     # not a keyword
    d.mo("13900000005", "TD", national=True)                       # the SMSC gave the sender in national format
    assert d.counts["mo"] == 3 and d.counts["mo_optouts"] == 2
    assert [r["source"] for r in d.optout_check("8613900000003")] == ["mo"]
    assert [r["source"] for r in d.optout_check("8613900000005")] == ["mo"]
    later = d.offer([trig(c, i, T0 + H + k * 120 * NS) for i in range(1, 6) for k, c in enumerate("ab")])
    assert later == {"suppressed:optout": 7, "queued": 3}            # 2 of number 1, a of 2, 2 of 3, 2 of 5
    st = Counter(states(tmp_path / "data").values())
    assert st[("suppressed", "optout")] == 2 + 1 + 2 + 2 + 7
    assert d.optout_remove("8613900000001") == 1 and d.optout_check("8613900000001") == []


def test_pause_holds_and_resume_releases(make, tmp_path):
    d = make({"p": ""})
    d.pause("p")
    assert d.offer([trig("p", 1, T0)]) == {"suppressed:campaign_inactive": 1}
    d.resume("p")
    assert d.offer([trig("p", 2, T0 + NS)]) == {"queued": 1}
    drain(d)
    assert len(sent_lines(tmp_path / "data")) == 1
    assert d.overrides() == {}


def test_approve_and_reject(make, tmp_path):
    d = make({"manual": "send: approve\n"})
    d.offer([trig("manual", i, T0 + i * NS) for i in range(6)])
    pend = d.pending("manual")["pending"]
    assert len(pend) == 6 and all(p["text"].startswith("manual: 欢迎") for p in pend)
    assert d.approve(id=pend[0]["id"]) == 1
    assert d.reject(campaign="manual") == 5 and d.pending()["pending"] == []
    drain(d)
    st = Counter(s for s, _ in states(tmp_path / "data").values())
    assert st == {"sent": 1, "rejected": 5}
    assert [m["id"] for m in sent_lines(tmp_path / "data")] == [pend[0]["id"]]


def test_a_pending_message_whose_window_closes_is_said_to_have_expired_waiting(make, tmp_path):
    """A replay on the records' clock runs through a window in seconds: what expired waiting for
    an operator is told apart from what expired in the queue, and `ctl pending` says so."""
    clock = RecordClock()
    d = make({"manual": "send: approve\n", "other": "send: approve\n"}, clock=clock)
    d.offer([trig("manual", i, T0, window=H) for i in range(3)] + [trig("other", 9, T0, window=3 * H)])
    clock.see(T0 + 2 * H)
    d.step()
    assert Counter(states(tmp_path / "data").values()) == {("expired", "unapproved"): 3, ("pending", ""): 1}
    assert d.pending("manual") == {"pending": [], "expired_unapproved": 3, "last_expired_ns": T0 + 2 * H}
    assert d.pending("other")["expired_unapproved"] == 0 and len(d.pending()["pending"]) == 1


def test_higher_priority_takes_over_a_queued_message(make, tmp_path):
    d = make({"low": "priority: 1\n", "high": "priority: 9\n"},
             'caps: [{per: 1d, max: 1}]\ntimezone: UTC\nquiet: {from: "00:00", to: "23:59"}\n')
    assert d.offer([trig("low", 1, T0, priority=1)]) == {"queued": 1}
    assert d.offer([trig("high", 1, T0 + 30 * NS, priority=9)]) == {"queued": 1}    # within 60 s, still queued
    assert d.offer([trig("low", 1, T0 + 50 * NS, priority=1)]) == {"suppressed:arbitration": 1}
    st = {s + ":" + r for s, r in states(tmp_path / "data").values()}
    assert st == {"suppressed:arbitration", "queued:"}
    assert d.status()["reasons"] == {"suppressed:arbitration": 2}


def test_window_closes_while_queued(make, tmp_path):
    d = make({"short": "window: 1h\n"}, 'caps: []\ntimezone: UTC\nquiet: {from: "00:00", to: "23:59"}\n')
    assert d.offer([trig("short", 1, T0 - 30 * 60 * NS, window=H)]) == {"expired:quiet_hours": 1}
    d2 = d.offer([trig("short", 2, T0, window=24 * H)])
    assert d2 == {"queued": 1}
    d.offer([trig("short", 3, T0 + 25 * H, window=H)])               # the clock moves past message 2's window
    drain(d)
    assert Counter(states(tmp_path / "data").values())[("expired", "window")] == 1


def test_status_counts(make, tmp_path):
    d = make({"a": "holdout: 50%\n"})
    d.offer([trig("a", i, T0 + i * NS) for i in range(100)])
    drain(d)
    st = d.status()
    held = st["reasons"]["suppressed:holdout"]
    assert st["states"] == {"sent": 100 - held, "suppressed": held}
    assert st["campaigns"] == {"a": {"sent": 100 - held, "suppressed": held}}
    assert st["channels"]["file"]["sent"] == 100 - held and st["channels"]["file"]["outbox_sent"] == 100 - held


def test_a_trigger_the_outbox_cannot_hold_is_set_aside_and_nothing_else_stops(tmp_path):
    """A trigger log with triggers no rule can make today (numbers beyond int64, as a priority
    of 20 digits once made): each is set aside with its reason and counted, the others are
    decided, and the log's offset moves past them: a restart is not stopped by them again."""
    rules = load(str(rules_dir(tmp_path, {"a": ""})))
    log = tmp_path / "triggers.jsonl"
    good = [trig("a", i, T0 + i * NS) for i in range(6)]
    poison = [trig("a", 90, T0, priority=10**20), trig("a", 91, T0, window=1 << 70)]
    lines = [good[0], poison[0], *good[1:4], poison[1], *good[4:]]
    log.write_text("".join(json.dumps(t.to_json()) + "\n" for t in lines))
    said = []
    for _restart in range(2):
        d = Dispatcher(str(tmp_path / "data"), rules, clock=RecordClock(), warn=said.append)
        d.catch_up(str(log))
        assert d.outbox.offset(str(log)) == log.stat().st_size
        d.stop()
    assert set(states(tmp_path / "data")) == {message_id("a", t.imsi, t.msisdn, t.ts_ns) for t in good}
    aside = [json.loads(x) for x in (tmp_path / "data" / "triggers-set-aside.jsonl").read_text().splitlines()]
    assert [a["trigger"]["imsi"] for a in aside] == [poison[0].imsi, poison[1].imsi]    # once: the offset moved
    assert "priority 100000000000000000000 is not a 64-bit integer" == aside[0]["why"]
    assert aside[1]["why"].startswith("deadline_ns ")
    assert len([x for x in said if "set aside" in x]) == 2 and not any(t.imsi in x for x in said for t in poison)


# --- processes ---------------------------------------------------------------------------------------

def write_log(path: Path, n: int, seed: int) -> list:
    """n triggers of four campaigns over 200 subscribers, 20 s apart; `late` ones have a 10 s
    window and half of them come a minute late."""
    rng = random.Random(seed)
    out = []
    for k in range(n):
        i = rng.randrange(200)
        cid = rng.choice(["welcome", "promo", "vip", "late"])
        ts = T0 + k * 20 * NS
        window = 48 * H if cid != "late" else 10 * NS
        t = trig(cid, i, ts - (60 * NS if cid == "late" and k % 2 else 0), window,
                 {"welcome": 1, "promo": 2, "vip": 5, "late": 0}[cid])
        out.append(t)
    with open(path, "w", encoding="utf-8") as f:
        for t in out:
            f.write(json.dumps(t.to_json(), ensure_ascii=False) + "\n")
    return out


KILL_CAMPAIGNS = {"welcome": "holdout: 20%\n", "promo": "cooldown: 6h\n", "vip": "quota: 40\n", "late": ""}
KILL_POLICY = "caps: [{per: 1h, max: 2}]\narbitration: 60s\n"


def start_dispatcher(rules, data, log) -> subprocess.Popen:
    """The file channel sends 200 a second: kills land in start-up, offers and sending alike."""
    return subprocess.Popen(CLI + ["dispatcher", "--log", str(log), "--rules", str(rules), "--data", str(data),
                                   "--clock", "records", "--status-interval", "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def done(data: Path, log: Path) -> bool:
    if not (data / "outbox.sqlite").exists():
        return False
    db = sqlite3.connect(str(data / "outbox.sqlite"), timeout=10)
    try:
        offset = db.execute("SELECT coalesce(max(position), 0) FROM offsets").fetchone()[0]
        busy = db.execute("SELECT count(*) FROM messages WHERE state IN ('queued', 'sending')").fetchone()[0]
    except sqlite3.OperationalError:
        return False
    finally:
        db.close()
    return offset == log.stat().st_size and busy == 0


def run_to_the_end(rules, data, log, kills: int, seed: int) -> int:
    rng = random.Random(seed)
    killed = 0
    while True:
        proc = start_dispatcher(rules, data, log)
        if killed < kills:
            time.sleep(rng.uniform(0.3, 1.5))       # start-up included: kills land anywhere
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                killed += 1
            proc.wait(TIMEOUT)
            continue
        line = proc.stderr.readline()
        while "ready:" not in line:
            assert line, proc.stderr.read()
            line = proc.stderr.readline()
        end = time.monotonic() + TIMEOUT
        while not done(data, log):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < end, "the dispatcher did not finish"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=TIMEOUT)[1]
        assert proc.returncode == 0, err
        return killed


def test_sigkill_at_random_points_every_trigger_ends_exactly_once(tmp_path):
    rules = rules_dir(tmp_path, KILL_CAMPAIGNS, KILL_POLICY, rate=", rate: 200")
    log = tmp_path / "triggers.jsonl"
    triggers = write_log(log, 3000, seed=11)
    killed = run_to_the_end(rules, tmp_path / "killed", log, kills=8, seed=5)
    assert killed >= 5
    run_to_the_end(rules, tmp_path / "calm", log, kills=0, seed=0)

    ids = {message_id(t.campaign, t.imsi, t.msisdn, t.ts_ns) for t in triggers}
    for data in (tmp_path / "killed", tmp_path / "calm"):
        st = states(data)
        assert set(st) == ids                                               # none lost
        assert {s for s, _ in st.values()} <= {"sent", "expired", "suppressed"}
        out = [m["id"] for m in sent_lines(data)]
        assert len(out) == len(set(out))                                    # none sent twice
        assert set(out) == {i for i, (s, _) in st.items() if s == "sent"}  # and every sent one is out
    # the hold-out group does not depend on when anything ran; the rest may (the records clock
    # moves by batch, and a batch read again after a crash may be cut elsewhere)
    held = [{i for i, v in states(tmp_path / d).items() if v == ("suppressed", "holdout")} for d in ("killed", "calm")]
    assert held[0] == held[1] and held[0]
    for data in (tmp_path / "killed", tmp_path / "calm"):
        got = Counter(states(data).values())
        assert got[("sent", "")] > 300 and got[("suppressed", "cooldown")] and got[("expired", "window")]
        assert got[("suppressed", "frequency_cap")] and got[("suppressed", "quota")]


def engine_behind_probe(rules: Path, data: Path, pcap: Path) -> None:
    """`touchpoint engine --clock records` fed one capture by `touchpoint probe`, to its end."""
    proc = subprocess.Popen(CLI + ["engine", "--rules", str(rules), "--data", str(data), "--status-interval", "0",
                                   "--listen", "tcp://127.0.0.1:*", "--expect-eos", "1", "--clock", "records"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    while "listening on" not in line:
        assert line, proc.stderr.read()
        line = proc.stderr.readline()
    endpoint = line.split("listening on ", 1)[1].split(";")[0].strip()
    res = subprocess.run(
        CLI + ["probe", "--status-interval", "0", "--lossless", "--pcap", str(pcap), "--push", endpoint],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert res.returncode == 0, res.stderr
    err = proc.communicate(timeout=TIMEOUT)[1]
    assert proc.returncode == 0, err


def test_engine_dispatches_in_process(tmp_path):
    """`touchpoint engine` behind `touchpoint probe`: every trigger of its log is one message in the
    outbox, and what was sent is in the file channel's output, once."""
    pcap = ROOT / "pcaps" / "map_mixed_small.pcap"
    rules = tmp_path / "rules"
    rules.mkdir()
    for cid, event in (("sms", "sms_mo"), ("mt", "sms_mt"), ("on", "power_on")):
        (rules / f"{cid}.yaml").write_text(f"id: {cid}\nstatus: active\ntrigger: {{event: {event}}}\n"
                                           f"message: {{text: 'hi {{msisdn}}'}}\nholdout: 10%\n")
    (rules / "policy.yaml").write_text("caps: [{per: 1h, max: 1}]\nchannels: {file: {path: sent.jsonl}}\n")
    data = tmp_path / "data"
    engine_behind_probe(rules, data, pcap)
    logged = [json.loads(x) for x in (data / "triggers-shard-0.jsonl").read_text().splitlines()]
    assert len(logged) > 20
    st = states(data)
    assert set(st) == {message_id(t["campaign"], t["imsi"], t["msisdn"], t["ts_ns"]) for t in logged}
    got = Counter(st.values())
    assert got[("suppressed", "holdout")] and got[("sent", "")] and got[("suppressed", "arbitration")]
    out = [m["id"] for m in sent_lines(data)]
    assert len(out) == len(set(out)) and set(out) == {i for i, (s, _) in st.items() if s == "sent"}
    assert not {s for s, _ in st.values()} - {"sent", "suppressed", "expired"}


def test_a_replay_on_the_records_clock_sends_as_live_would(tmp_path):
    """A fast replay of hours of traffic reaches the engine in one batch; with `--clock records`
    the dispatcher lives through it a minute at a time, so a trigger early in the batch is sent
    inside its short window instead of expiring against the batch's last record time."""
    pcap = tmp_path / "story.pcap"
    res = subprocess.run(CLI + ["synth", str(pcap), "--scenario", str(ROOT / "rules" / "stories" / "hotline.yaml")],
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert res.returncode == 0, res.stderr
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "places.yaml").write_text((ROOT / "rules" / "places.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    (rules / "hot.yaml").write_text("id: hot\nstatus: active\ntrigger: {event: hotline_call, hotlines: [service]}\n"
                                    "message: {text: 'hi'}\nwindow: 5m\n")
    (rules / "policy.yaml").write_text("caps: []\nchannels: {file: {path: sent.jsonl}}\n")
    data = tmp_path / "data"
    engine_behind_probe(rules, data, pcap)
    got = Counter(states(data).values())
    # caller at +30m, msisdn-only at +1h, hours before the last record; long-talker at +4h, its one
    # call seen as CAP and as ISUP at the same moment: one message
    assert got == {("sent", ""): 3}
    assert len(sent_lines(data)) == 3
