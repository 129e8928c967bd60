"""Scheduled campaigns and send windows: the run times in the policy's time zone (weekdays, dates,
a daylight-saving change), the spread of a run's due times, send windows with the quiet hours,
the exact triggers of a scheduled story, and an engine killed in the middle of a run's spread
that neither sends twice nor skips anybody."""
import io
import json
import shutil
import subprocess
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np

from touchpoint.control import dryrun, rules
from touchpoint.control.engine import Trigger
from touchpoint.control.policy import ContactPolicy
from touchpoint.control.schedule import Runs, spread
from touchpoint.probe.decode import Options, decode_file

from .test_engine_kill import run as run_killed
from .test_engine_run import CLI, TIMEOUT, finish, probe, start_engine
from .test_scenarios import ROOT, render, story_view

SH = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
NS = 10**9
MIN = 60 * NS


def at(tz, *args) -> int:
    return int(datetime(*args, tzinfo=tz).timestamp()) * NS


def load(tmp_path, campaigns: dict, policy: str = "timezone: Asia/Shanghai\ncaps: []\n"):
    d = tmp_path / f"rules{len(list(tmp_path.glob('rules*')))}"
    d.mkdir()
    shutil.copy(ROOT / "rules" / "places.yaml", d)
    (d / "policy.yaml").write_text(policy)
    for cid, body in campaigns.items():
        (d / f"{cid}.yaml").write_text(f"id: {cid}\nstatus: active\n{body}"
                                       + ("" if "message:" in body else "message: {text: 'hi {msisdn}'}\n"))
    return d, rules.load(str(d))


def test_runs_on_weekdays_dates_and_across_a_clock_change(tmp_path):
    _, rs = load(tmp_path, {
        "weekdays": 'schedule: {at: ["19:30", "12:00"], days: [weekdays]}\n',
        "once": 'schedule: {at: ["09:15"], dates: [2026-11-07, 2026-11-20]}\n',
        "sunday": 'schedule: {at: ["02:30", "12:00"], days: [sun]}\n'})
    assert rs.ok, [str(e) for e in rs.errors]
    c = {x.id: x for x in rs.campaigns}
    fri, mon_evening = at(SH, 2026, 11, 6, 0, 0), at(SH, 2026, 11, 9, 19, 30)
    assert c["weekdays"].schedule.runs(SH, fri, mon_evening) == [
        at(SH, 2026, 11, 6, 12, 0), at(SH, 2026, 11, 6, 19, 30), at(SH, 2026, 11, 9, 12, 0), mon_evening]
    # (after, until]: a run at `after` was made already
    assert c["weekdays"].schedule.runs(SH, at(SH, 2026, 11, 6, 12, 0), at(SH, 2026, 11, 6, 19, 29)) == []
    assert c["once"].schedule.runs(SH, fri, at(SH, 2026, 12, 31, 0, 0)) == [
        at(SH, 2026, 11, 7, 9, 15), at(SH, 2026, 11, 20, 9, 15)]
    # Berlin, 29 March 2026: 02:30 does not exist (the clocks go from 02:00 to 03:00): it is taken
    # at the offset before the change, 01:30 UTC; noon is summer time's, 10:00 UTC
    runs = c["sunday"].schedule.runs(BERLIN, at(BERLIN, 2026, 3, 28, 0, 0), at(BERLIN, 2026, 3, 30, 0, 0))
    utc = ZoneInfo("UTC")
    assert runs == [at(utc, 2026, 3, 29, 1, 30), at(utc, 2026, 3, 29, 10, 0)]


def test_a_campaign_first_seen_starts_then_and_a_run_past_its_window_is_not_made(tmp_path):
    _, rs = load(tmp_path, {"noon": 'schedule: {at: ["12:00"]}\nwindow: 2h\n'})
    runs = Runs()
    morning = at(SH, 2026, 11, 6, 9, 0)
    assert runs.due(rs.campaigns, SH, morning) == []            # yesterday's noon is not sent for
    [(c, t)] = runs.due(rs.campaigns, SH, at(SH, 2026, 11, 6, 12, 0))
    assert t == at(SH, 2026, 11, 6, 12, 0)
    assert runs.due(rs.campaigns, SH, at(SH, 2026, 11, 6, 12, 5)) == []        # made once
    back = Runs(json.loads(json.dumps(runs.last)))          # as a snapshot keeps it
    assert [t for _, t in back.due(rs.campaigns, SH, at(SH, 2026, 11, 7, 13, 0))] == [at(SH, 2026, 11, 7, 12, 0)]
    assert back.due(rs.campaigns, SH, at(SH, 2026, 11, 9, 9, 0)) == []        # Sunday's noon: past its 2 h
    assert back.missed == [("noon", at(SH, 2026, 11, 8, 12, 0))]


def test_a_runs_spread_is_even_and_its_order_changes_from_run_to_run():
    keys = np.arange(1000, dtype=np.uint64) + 8613800000000
    a, b = spread(0, 1800, keys), spread(86400 * NS, 1800, keys) - 86400 * NS
    assert sorted(a.tolist()) == [i * 1800 * NS // 1000 for i in range(1000)]
    assert sorted(b.tolist()) == sorted(a.tolist()) and (a != b).mean() > 0.9
    assert spread(5, 0, keys).tolist() == [5] * 1000


def test_send_windows_with_the_quiet_hours(tmp_path):
    _, rs = load(tmp_path, {"lunch": 'trigger: {event: power_on}\nsend_window: ["11:30-13:00", "18:30-21:30"]\n',
                            "short": 'trigger: {event: power_on}\nsend_window: ["11:30-13:00"]\nwindow: 3h\n',
                            "night": 'trigger: {event: power_on}\nsend_window: ["23:00-01:00"]\n'},
                 'timezone: Asia/Shanghai\ncaps: []\nquiet: {from: "21:00", to: "08:00"}\n')
    assert not rs.ok and [e.why for e in rs.errors] == ["wholly inside policy.yaml's quiet hours: nothing would go out"]
    _, rs = load(tmp_path, {"lunch": 'trigger: {event: power_on}\nsend_window: ["11:30-13:00", "18:30-21:30"]\n',
                            "short": 'trigger: {event: power_on}\nsend_window: ["11:30-13:00"]\nwindow: 3h\n'},
                 'timezone: Asia/Shanghai\ncaps: []\nquiet: {from: "21:00", to: "08:00"}\n')
    p = ContactPolicy(rs)

    def due(cid, ts, n=0, window=48 * 3600 * NS):
        t = Trigger(cid, "power_on", ts, ts + window, f"4600000000{n:05d}", f"86138000{n:05d}", 0)
        d = p.decide([t], ts)[0]
        return d.due_ns if d.state == "queued" else f"{d.state}: {d.reason}"

    assert due("lunch", at(SH, 2026, 11, 6, 12, 10)) == at(SH, 2026, 11, 6, 12, 10)      # inside
    assert due("lunch", at(SH, 2026, 11, 6, 9, 0), 1) == at(SH, 2026, 11, 6, 11, 30)     # the next window
    assert due("lunch", at(SH, 2026, 11, 6, 14, 0), 2) == at(SH, 2026, 11, 6, 18, 30)
    # 21:10 is in the window but in the quiet hours: the next morning's window, not 08:00
    assert due("lunch", at(SH, 2026, 11, 6, 21, 10), 3) == at(SH, 2026, 11, 7, 11, 30)
    assert due("short", at(SH, 2026, 11, 6, 9, 0), 4, 3 * 3600 * NS) == at(SH, 2026, 11, 6, 11, 30)
    assert due("short", at(SH, 2026, 11, 6, 7, 0), 5, 3 * 3600 * NS) == "expired: send_window"    # by 10:00
    assert due("short", at(SH, 2026, 11, 6, 20, 0), 6, 3 * 3600 * NS) == "expired: send_window"
    assert due("short", at(SH, 2026, 11, 6, 22, 0), 7, 3 * 3600 * NS) == "expired: quiet_hours"     # either


def test_schedule_errors_name_the_file_line_and_setting(tmp_path):
    d, rs = load(tmp_path, {
        "bad": 'trigger: {event: schedule}\nschedule: {at: ["25:00"], days: [mond], spread: x}\n'
               'send_window: ["11:30-11:30", "9-10"]\n',
        "none": "audience: {}\n",
        "both": 'schedule: {at: ["12:00"], days: [mon], dates: [2026-11-07]}\n'})
    got = sorted(f"{e.file.rsplit('/', 1)[-1]}:{e.line}: {e.field}: {e.why}" for e in rs.errors)
    assert got == [
        "bad.yaml:3: trigger.event: a scheduled campaign says when under schedule: {at: [\"12:00\"], days: "
        "[weekdays]}, beside or instead of a trigger",
        "bad.yaml:4: schedule.at: '25:00' is not a time of day like \"21:00\" (quote it)",
        "bad.yaml:4: schedule.days: 'mond' is not one of mon, tue, wed, thu, fri, sat, sun, weekdays, weekends, "
        "daily: did you mean 'mon'?",
        "bad.yaml:4: schedule.spread: 'x' is not a duration: a number followed by s, m, h or d (48h)",
        "bad.yaml:5: send_window: '11:30-11:30' is empty: the window ends when it starts",
        "bad.yaml:5: send_window: '9-10' is not a time window like \"11:30-13:00\" (quote it)",
        "both.yaml:3: schedule.dates: dates (once on each) or days (every week), not both",
        "none.yaml:1: trigger: missing: a campaign has a trigger (an event), a schedule, or both",
    ]


def dry(d, pcap) -> list:
    out = io.StringIO()
    dryrun.run(rules.load(str(d)), [str(pcap)], Options(), fmt="jsonl", out=out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_scheduled_campaign_reaches_its_audience_at_each_run(tmp_path):
    """rules/stories/scheduled.yaml: Friday noon and Monday noon, not the weekend; who is known
    and in the audience at the moment of the run, with the run's time; spread over 30 minutes."""
    d, rs = load(tmp_path, {
        "lunch": 'schedule: {at: ["12:00"], days: [weekdays], spread: 30m}\naudience: {where: {in_region: beijing}}\n',
        "texters": 'schedule: {at: ["12:00"], days: [fri]}\naudience: {where: {sms_mo: {last: 7d, gte: 1}}}\n'
                   "priority: 1\n"})
    assert rs.ok, [str(e) for e in rs.errors]
    pcap, steps = render(tmp_path, "scheduled")
    got = dry(d, pcap)
    assert sorted(story_view(steps, got)) == sorted([
        "early lunch 240", "texter lunch 240", "texter texters 240",       # Friday 12:00; late comes at 13:00
        "early lunch 4560", "texter lunch 4560", "late lunch 4560",        # Monday 12:00; idle is in Shanghai
    ])
    run = at(SH, 2026, 11, 6, 12, 0)
    friday = [t for t in got if t["campaign"] == "lunch" and t["ts_ns"] == run]
    assert all(t["event"] == "schedule" for t in got)
    assert sorted(t["after_ns"] for t in friday) == [run + i * 30 * MIN // len(friday) for i in range(len(friday))]
    assert all(t["decision"]["due_ns"] == t["after_ns"] for t in friday if t["decision"]["state"] == "queued")
    by = {(t["campaign"], t["msisdn"]): t["decision"] for t in got if t["ts_ns"] == run}
    # the higher priority takes the subscriber both campaigns reach at once
    assert by[("lunch", "8613800000122")]["reason"] == "arbitration"


def test_an_engine_killed_in_the_middle_of_a_run_neither_resends_nor_skips(tmp_path):
    """A run at a minute in the middle of a synth capture, its messages spread over 20 minutes of
    record time: the engine SIGKILLed just after the run's triggers are in its log (before most
    are due) and again while they go out; restarted, the same log, messages and sends as an
    undisturbed engine's, each message once."""
    pcap = tmp_path / "day.pcap"
    res = subprocess.run(CLI + ["synth", str(pcap), "--subscribers", "300", "--packets", "16000", "--rate", "10",
                                "--seed", "3"], capture_output=True, text=True, timeout=TIMEOUT)
    assert res.returncode == 0, res.stderr
    ts = np.concatenate([b["ts_ns"] for b in decode_file(str(pcap), Options())])
    mid = datetime.fromtimestamp((int(ts.min()) + int(ts.max())) / 2 / NS, ZoneInfo("UTC"))
    d = tmp_path / "rules"
    d.mkdir()
    (d / "policy.yaml").write_text("caps: []\nchannels: {file: {path: sent.jsonl}}\n")
    (d / "run.yaml").write_text(f'id: run\nstatus: active\nschedule: {{at: ["{mid:%H:%M}"], spread: 20m}}\n'
                                "holdout: 10%\nmessage: {text: 'hi {msisdn}'}\n")
    (d / "power.yaml").write_text("id: power\nstatus: active\ntrigger: {event: power_on}\nmessage: {text: on}\n")
    calm = run_killed(d, pcap, tmp_path / "calm")
    ran = [i for i, line in enumerate(calm["log"]) if '"campaign": "run"' in line]
    sent_of_run = {m for m, (s, _) in calm["messages"].items() if s == "sent"} & set(calm["sent"])
    assert len(ran) > 50 and ran == list(range(ran[0], ran[-1] + 1))    # one run, its triggers together
    assert len(sent_of_run) > 50
    killed = run_killed(d, pcap, tmp_path / "killed", kill_at=(ran[-1] + 1, ran[-1] + 40))
    assert "run: the run of" in killed["err"][0] and "done:" not in killed["err"][0]     # killed after its run
    assert all("done:" not in e for e in killed["err"][1:-1]) and "done:" in killed["err"][-1]
    assert killed["log"] == calm["log"]
    assert killed["messages"] == calm["messages"]
    assert killed["sent"] == calm["sent"] and len(set(killed["sent"])) == len(killed["sent"])



def test_a_follow_up_wave_reaches_whom_the_first_did_or_did_not(tmp_path):
    """Friday 12:00 a lunch send to Beijing; at 19:30 one wave to whom it reached and who did not
    reply, another to Beijing except whom it reached in the last 12 hours. The engine (records
    clock, its outbox) and the dry run decide the same; the waves split Beijing as lunch did."""
    import sqlite3
    d, rs = load(tmp_path, {
        "lunch": 'schedule: {at: ["12:00"], dates: [2026-11-06]}\naudience: {where: {in_region: beijing}}\n',
        "again": 'schedule: {at: ["19:30"], dates: [2026-11-06]}\n'
                 "audience: {contacted: {campaign: lunch, within: 12h, replied: false}}\n",
        "others": 'schedule: {at: ["19:30"], dates: [2026-11-06]}\naudience: {where: {in_region: beijing}}\n'
                  "exclude: {contacted: {campaign: lunch, within: 12h}}\n"})
    assert rs.ok, [str(e) for e in rs.errors]
    pcap, steps = render(tmp_path, "scheduled")
    want = {t["decision"]["id"]: (t["campaign"], t["msisdn"], t["decision"]["state"]) for t in dry(d, pcap)}
    data = tmp_path / "data"
    proc, ep = start_engine(d, data, "--expect-eos", "1", "--clock", "records")
    probe(pcap, ep)
    finish(proc)
    with sqlite3.connect(data / "outbox.sqlite") as db:
        got = {i: (c, m, "queued" if s in ("queued", "sent", "delivered") else s)
               for i, c, m, s in db.execute("SELECT id, campaign, msisdn, state FROM messages")}
    assert got == want
    by = {cid: {m for c, m, s in got.values() if c == cid and s == "queued"} for cid in ("lunch", "again", "others")}
    assert {"8613800000121", "8613800000122"} <= by["lunch"] and "8613800000123" not in by["lunch"]
    assert by["again"] == by["lunch"] and "8613800000123" in by["others"] and not by["others"] & by["lunch"]


def test_contacted_names_a_campaign_of_the_folder(tmp_path):
    _, rs = load(tmp_path, {"wave": 'schedule: {at: ["12:00"]}\naudience: {contacted: {campaign: lunhc}}\n',
                            "lunch": 'schedule: {at: ["12:00"]}\n',
                            "bad": 'schedule: {at: ["12:00"]}\n'
                                   "exclude: {contacted: [{campaign: lunch, replied: no}]}\n"})
    got = sorted(f"{e.file.rsplit('/', 1)[-1]}:{e.line}: {e.field}: {e.why}" for e in rs.errors)
    assert got == ["bad.yaml:4: exclude.contacted[0].replied: 'no' is not true or false",
                   "wave.yaml:4: audience.contacted.campaign: no campaign 'lunhc' in this folder: "
                   "did you mean 'lunch'?"]


def test_a_scheduled_campaign_in_approve_mode_waits_for_an_operator(tmp_path):
    d, rs = load(tmp_path, {"lunch": 'schedule: {at: ["12:00"], dates: [2026-11-06]}\nsend: approve\n'
                                     "audience: {where: {in_region: beijing}}\n"})
    pcap, _ = render(tmp_path, "scheduled")
    got = dry(d, pcap)
    assert len(got) >= 2 and {t["decision"]["state"] for t in got} == {"pending"}
