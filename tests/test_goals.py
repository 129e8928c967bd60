"""Goals and conversions (control.goals): the engine's goal events matched against attribution
windows opened from the outbox, for contacted and held-out subscribers, in-process with the real
Engine, Dispatcher (file channel, records clock) and SQLite outbox."""
import random
import sqlite3
import time
from pathlib import Path

import numpy as np

from touchpoint.control.dispatcher import Dispatcher
from touchpoint.control.engine import Engine
from touchpoint.control.goals import Goals
from touchpoint.control.policy import RecordClock, holdout_share
from touchpoint.control.rules import load
from touchpoint.probe.record import Kind, Loc
from tests.records import MIN, T0, rec

H = 60 * MIN
CAMPAIGN = "welcome"


def rules(tmp_path: Path, holdout: str = "20%", within: str = "1d", policy: str = "caps: []\n") -> Path:
    d = tmp_path / "rules"
    d.mkdir(exist_ok=True)
    (d / f"{CAMPAIGN}.yaml").write_text(
        f"id: {CAMPAIGN}\nstatus: active\ntrigger: {{event: power_on}}\nmessage: {{text: '欢迎 {{msisdn}}'}}\n"
        f"holdout: {holdout}\ngoal: {{event: mms_mt, within: {within}}}\n", encoding="utf-8")
    (d / "policy.yaml").write_text(policy + "channels: {file: {path: sent.jsonl}}\n", encoding="utf-8")
    return d


def subscriber(i: int) -> tuple:
    return f"4600{i:011d}", f"86139{i:08d}"


def story(n: int, p1: float, p0: float, seed: int = 7, holdout: float = 0.2) -> tuple:
    """n subscribers power on in the first two hours; a contacted one gets an MMS (the goal) 1-20 h
    later with probability p1, a held-out one (by the policy's own hash) with p0; of the others,
    half get one 30 h later, after the window. Returns (records in time order, the subscribers
    who convert within the window by group)."""
    rnd = random.Random(seed)
    recs, truth = [], {0: set(), 1: set()}
    for i in range(n):
        imsi, msisdn = subscriber(i)
        t = rnd.uniform(0, 120)
        recs.append(rec(Kind.LOCATION_UPDATE, t, imsi=imsi, msisdn=msisdn, node="861390001000", lac=4100, cell=7,
                        loc=Loc.CGI))
        held = holdout_share(CAMPAIGN, msisdn) < holdout
        if rnd.random() < (p0 if held else p1):
            truth[int(held)].add(msisdn)
            recs.append(rec(Kind.MMS_NOTIFICATION, t + rnd.uniform(60, 1200), imsi=imsi, peer="8613900000000"))
        elif rnd.random() < 0.5:
            recs.append(rec(Kind.MMS_NOTIFICATION, t + 30 * 60, imsi=imsi, peer="8613900000000"))
    recs = np.concatenate(recs)
    return recs[np.argsort(recs["ts_ns"], kind="stable")], truth


def drain(d: Dispatcher) -> None:
    end = time.monotonic() + 60
    while not d.idle():
        assert time.monotonic() < end, d.status()
        time.sleep(0.01)


def replay(rules_dir: Path, data: Path, recs: np.ndarray, step_min: int = 10, goals: Goals | None = None) -> Goals:
    """The engine process's loop, in-process: a chunk of records (step_min of record time), its
    triggers offered, what is due sent, then the goal events matched."""
    rs = load(str(rules_dir))
    assert rs.ok, rs.errors
    engine = Engine(rs)
    d = Dispatcher(str(data), rs, clock=RecordClock())
    d.start()
    goals = goals or Goals(str(data), rs)
    try:
        edges = np.arange(T0, int(recs["ts_ns"].max()) + step_min * MIN + 1, step_min * MIN)
        for lo, hi in zip(edges[:-1], edges[1:]):
            part = recs[(recs["ts_ns"] >= lo) & (recs["ts_ns"] < hi)]
            d.offer(engine.process(part))
            d.clock.see(engine.state.clock_ns)
            drain(d)
            goals.observe(engine.goal_hits, engine.state.clock_ns)
        goals.observe([], engine.state.clock_ns)
    finally:
        d.stop()
    return goals


def conversions(data: Path) -> dict:
    db = sqlite3.connect(str(data / "outbox.sqlite"))
    try:
        rows = db.execute("SELECT msisdn, holdout, start_ns, end_ns, converted_ns FROM conversions").fetchall()
    finally:
        db.close()
    return {r[0]: r[1:] for r in rows}


def test_conversions_within_the_window_for_both_groups(tmp_path):
    recs, truth = story(600, 0.5, 0.2)
    data = tmp_path / "data"
    goals = replay(rules(tmp_path), data, recs)
    goals.close()
    conv = conversions(data)
    assert len(conv) == 600                         # every subscriber was sent to or held out
    held = {m for m, (h, *_) in conv.items() if h}
    assert held == {subscriber(i)[1] for i in range(600) if holdout_share(CAMPAIGN, subscriber(i)[1]) < 0.2}
    for group in (0, 1):
        got = {m for m, (h, s, e, c) in conv.items() if h == group and c is not None}
        assert got == truth[group]                  # the MMS 30 h later, after the window, never counts
    for _m, (_h, s, e, c) in conv.items():
        assert e - s == 24 * H and (c is None or s <= c <= e)


def test_held_out_windows_open_when_the_message_would_have_gone_out(tmp_path):
    """The held-out group is what the contacted one would have been: an opted-out subscriber gets
    no window in either group, and a held-out one's window opens at the end of the quiet hours,
    as a contacted one's does (everyone powers on between 00:00 and 02:00, quiet until 03:00)."""
    from touchpoint.control.outbox import Outbox
    recs, _ = story(400, 0.5, 0.2, seed=11)
    data = tmp_path / "data"
    ob = Outbox(str(data))
    opted = {subscriber(i)[1] for i in range(0, 400, 4)}
    for m in opted:
        ob.add_optout(m, "*", "ctl", T0)
    ob.close()
    rdir = rules(tmp_path, policy='caps: []\ntimezone: UTC\nquiet: {from: "00:00", to: "03:00"}\n')
    replay(rdir, data, recs).close()
    conv = conversions(data)
    everyone = {subscriber(i)[1] for i in range(400)}
    assert set(conv) == everyone - opted
    held = {m for m in everyone - opted if holdout_share(CAMPAIGN, m) < 0.2}
    assert {m for m, (h, *_) in conv.items() if h} == held and len(held) > 40
    assert {s for m, (h, s, e, c) in conv.items() if h} == {T0 + 3 * H}
    assert min(s for m, (h, s, e, c) in conv.items() if not h) >= T0 + 3 * H
    assert all(c is None or s <= c <= e for h, s, e, c in conv.values())


def test_a_restart_keeps_the_open_windows(tmp_path):
    """Windows opened before a restart convert on goal events after it; the goal event buffer of
    late windows and expiry work across it too."""
    recs, truth = story(300, 0.6, 0.3, seed=3)
    data, rdir = tmp_path / "data", rules(tmp_path)
    cut = T0 + 3 * H                                # every trigger before it, most goals after
    first = replay(rdir, data, recs[recs["ts_ns"] < cut])
    assert first.status()["open"] > 200
    first.close()
    before = conversions(data)
    again = Goals(str(data), load(str(rdir)))
    assert again.status()["open"] == sum(1 for h, s, e, c in before.values() if c is None)
    replay(rdir, data, recs[recs["ts_ns"] >= cut], goals=again).close()
    conv = conversions(data)
    assert set(conv) == set(before)                 # no window twice
    for group in (0, 1):
        assert {m for m, (h, s, e, c) in conv.items() if h == group and c is not None} == truth[group]


def test_windows_close_at_their_end(tmp_path):
    recs, _ = story(100, 0.0, 0.0, seed=5)
    data = tmp_path / "data"
    goals = replay(rules(tmp_path, within="2h"), data, recs)
    assert goals.status()["open"] == 0 and goals.status()["windows"] == 100
    assert all(c is None for *_, c in conversions(data).values())


def test_goal_rules(tmp_path):
    d = tmp_path / "r"
    d.mkdir()
    bad = {"a": "{list: conversions, where: {apn: cmnet}, within: 7d}", "b": "{event: mms_mt, list: x, within: 1d}",
           "c": "{event: mms_mt, product: x, within: 1d}", "d": "{list: conversions}", "e": "{within: 1d}",
           "f": "{list: 'no good', within: 1d}", "g": "{reply: [Y], where: {apn: cmnet}, within: 1d}",
           "h": "{reply: [' '], within: 1d}", "i": "{reply: [Y], event: mms_mt, within: 1d}"}
    for cid, goal in {**bad, "ok": "{list: conversions, product: 5g-plan, within: 7d}",
                      "yes": "{reply: [Ｙ, 是], within: 2d}"}.items():
        (d / f"{cid}.yaml").write_text(f"id: {cid}\ntrigger: {{event: power_on}}\nmessage: {{text: hi}}\n"
                                       f"goal: {goal}\n")
    rs = load(str(d))
    where = {Path(e.file).stem: (e.line, e.field, e.why) for e in rs.errors}
    assert set(where) == set(bad)
    assert all(line == 4 for line, *_ in where.values())
    assert where["a"][1] == "goal.where" and where["c"][1] == "goal.product" and where["d"][1] == "goal.within"
    assert "not event and list" in where["b"][2] and "missing" in where["e"][2]
    assert where["g"][1] == "goal.where" and "empty reply word" in where["h"][2]
    assert "not event and reply" in where["i"][2]
    assert {c.id: c for c in rs.campaigns}["yes"].goal.reply == ("y", "是")
    ok = {c.id: c for c in rs.campaigns}["ok"].goal
    assert (ok.list, ok.product, ok.within_s, ok.event) == ("conversions", "5g-plan", 7 * 86400, "")


def test_the_triggering_record_is_not_its_own_goal(tmp_path):
    """A goal that the triggering record itself satisfies (power_on by a location update, goal: a
    location update): a held-out window opens when it would have gone out (at once: that record's time), and must
    not count the record; a later location update does."""
    d = tmp_path / "rules"
    d.mkdir()
    (d / f"{CAMPAIGN}.yaml").write_text(
        f"id: {CAMPAIGN}\nstatus: active\ntrigger: {{event: power_on}}\nmessage: {{text: hi}}\nholdout: 99%\n"
        "goal: {event: record, within: 1d, where: {kind: location_update}}\n", encoding="utf-8")
    (d / "policy.yaml").write_text("caps: []\nchannels: {file: {path: sent.jsonl}}\n", encoding="utf-8")
    held = [i for i in range(200) if holdout_share(CAMPAIGN, subscriber(i)[1]) < 0.99][:20]
    recs = []
    for n, i in enumerate(held):
        imsi, msisdn = subscriber(i)
        recs.append(rec(Kind.LOCATION_UPDATE, n, imsi=imsi, msisdn=msisdn, node="861390001000"))
        if n % 2 == 0:                              # half come back an hour later: they convert
            recs.append(rec(Kind.LOCATION_UPDATE, n + 60, imsi=imsi, msisdn=msisdn, node="861390001000"))
    recs = np.concatenate(recs)
    data = tmp_path / "data"
    replay(d, data, recs[np.argsort(recs["ts_ns"], kind="stable")]).close()
    conv = conversions(data)
    assert len(conv) == 20 and all(h == 1 for h, *_ in conv.values())
    assert {m for m, (h, s, e, c) in conv.items() if c is not None} == {subscriber(i)[1] for i in held[::2]}


def test_replies_are_attributed_to_the_last_message_from_their_address_and_count_for_reply_goals(tmp_path):
    """Two campaigns message the same subscribers from two service codes; an MO reply to a code
    (or to the code with an extension) is the last message's from it; a reply goal converts on
    its words only (full width and case folded), inside its window; the report gives the reply
    rate and no uplift (the held-out got nothing to reply to); free text is never stored, a word a
    campaign's `replies` names is, and counted by word."""
    from touchpoint.control.engine import Trigger
    from touchpoint.control.report import build, render
    d = tmp_path / "rules"
    d.mkdir()
    for cid, code, goal in (("offer", "10658001", "goal: {reply: [Y, 是], within: 1d}\nholdout: 30%\n"),
                            ("news", "10658002", "replies: [好]\n")):
        (d / f"{cid}.yaml").write_text(f"id: {cid}\nstatus: active\ntrigger: {{event: power_on}}\n"
                                       f"message: {{text: '回复 Y', source: '{code}'}}\n{goal}", encoding="utf-8")
    (d / "policy.yaml").write_text("caps: []\narbitration: 0s\nchannels: {file: {path: sent.jsonl}}\n")
    rs = load(str(d))
    assert rs.ok, rs.errors
    data = tmp_path / "data"
    clock = RecordClock()
    disp = Dispatcher(str(data), rs, clock=clock)
    disp.start()
    goals = Goals(str(data), rs)
    subs = [subscriber(i) for i in range(40)]
    disp.offer([Trigger(cid, "power_on", T0 + k * MIN, T0 + 10 * H, imsi, msisdn, 0)
                for k, cid in enumerate(("offer", "news")) for imsi, msisdn in subs])
    drain(disp)
    contacted = {m for (m,) in sqlite3.connect(data / "outbox.sqlite").execute(
        "SELECT msisdn FROM messages WHERE campaign = 'offer' AND sent_ns IS NOT NULL")}
    assert 15 < len(contacted) < 40
    yes = sorted(contacted)[:6]
    clock.see(T0 + 2 * H)
    for i, msisdn in enumerate(yes):        # "Ｙ" and " 是 " are the goal's words; to the code and an extension
        disp.mo(msisdn, ["Ｙ", " 是 ", "y"][i % 3], to="10658001" + ("12" if i % 2 else ""))
    other = sorted(contacted)[6]
    disp.mo(other, "我的身份证号是 110101199001011234", to="10658001")      # a reply, not the goal; not kept
    disp.mo(other, "Y", to="10658002")                                       # news's reply: not offer's goal
    disp.mo(other, " 好 ", to="10658002")                                     # a word news asks for
    disp.mo("8613000000000", "Y", to="10658001")                             # nobody messaged: unattributed
    held = sorted({m for _, m in subs} - contacted)[0]
    disp.mo(held, "Y", to="10658001")           # held out: no offer; news's is from another code: nobody's
    goals.observe([], T0 + 2 * H)
    disp.stop()
    goals.close()
    db = sqlite3.connect(data / "outbox.sqlite")
    replies = db.execute("SELECT msisdn, campaign, word FROM replies").fetchall()
    assert sorted(replies) == sorted([(m, "offer", "y" if i % 3 != 1 else "是") for i, m in enumerate(yes)] +
                                     [(other, "offer", ""), (other, "news", "y"), (other, "news", "好"),
                                      ("8613000000000", "", "y"),
                                      (held, "", "y")])
    converted = {m for (m,) in db.execute("SELECT msisdn FROM conversions WHERE campaign = 'offer' "
                                          "AND converted_ns IS NOT NULL")}
    assert converted == set(yes)
    assert "110101" not in (data / "outbox.sqlite").read_bytes().decode("latin-1")
    whole = build(str(data), str(d))
    rep = {c["id"]: c for c in whole["campaigns"]}
    text = render(whole)
    assert f"replies: 7 of {len(contacted)} contacted" in text and "held out: – (no message to reply to)" in text
    assert "uplift: – (a reply goal has no uplift" in text
    assert rep["offer"]["replies"] == {"contacted": len(contacted), "replied": 7, "rate": 7 / len(contacted),
                                       "by_word": {"y": 4, "是": 2, "(other text)": 1}}
    assert rep["news"]["replies"]["by_word"] == {"y": 1, "好": 1}
    conv = rep["offer"]["conversion"]
    assert conv["uplift"] is None and "no message to reply to" in conv["note"]
    assert rep["offer"]["conversion"]["contacted"]["converted"] == 6
