"""The contact policy on generated scenarios: exact counts for every step (hold-out, opt-out,
caps, cooldown, quiet hours deferred and expired, window, arbitration, quota, approve), each
expected count worked out from the scenario itself, not from the code under test."""
import hashlib
from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from touchpoint.control.engine import Trigger
from touchpoint.control.lists import import_list
from touchpoint.control.outbox import Outbox
from touchpoint.control.policy import ContactPolicy, History, RecordClock, message_id
from touchpoint.control.rules import load
from touchpoint.probe.record import pack

SH = ZoneInfo("Asia/Shanghai")
NS = 10**9
H = 3600 * NS
DAY = 24 * H
T0 = int(datetime(2026, 11, 2, 12, 0, tzinfo=SH).timestamp()) * NS     # a Monday noon in Shanghai


def ruleset(tmp_path, campaigns: dict, policy: str = "caps: []\n"):
    """campaigns: id -> extra YAML lines (status active, a power_on trigger, a text)."""
    d = tmp_path / f"rules{len(list(tmp_path.glob('rules*')))}"
    d.mkdir()
    for cid, extra in campaigns.items():
        status = "" if "status:" in extra else "status: active\n"
        message = "" if "message:" in extra else "message: {text: 'hello {msisdn}'}\n"
        (d / f"{cid}.yaml").write_text(f"id: {cid}\ntrigger: {{event: power_on}}\n{status}{message}{extra}",
                                       encoding="utf-8")
    (d / "policy.yaml").write_text(policy, encoding="utf-8")
    rs = load(str(d))
    assert rs.ok, [str(e) for e in rs.errors]
    return rs


def msisdn(i: int) -> str:
    return f"86138{i:08d}"


def trig(cid, i, ts, window=48 * H, priority=0, **fields) -> Trigger:
    return Trigger(cid, "power_on", ts, ts + window, f"46000{i:010d}", msisdn(i), priority, fields)


def outcomes(decisions) -> Counter:
    return Counter(d.state + (":" + d.reason if d.reason else "") for d in decisions)


def decide(policy, triggers, clock=None):
    """Offer each batch at the records clock (the latest trigger time seen)."""
    clock = clock or RecordClock()
    for t in triggers:
        clock.see(t.ts_ns)
    return policy.decide(triggers, clock.now_ns())


def test_holdout_is_the_documented_hash_and_stays_put(tmp_path):
    rs = ruleset(tmp_path, {"welcome": "holdout: 10%\n"})
    p = ContactPolicy(rs)
    n = 10_000
    share = [int.from_bytes(hashlib.sha256(f"welcome:{msisdn(i)}".encode()).digest()[:8], "big") / 2**64
             for i in range(n)]
    expected = sum(s < 0.10 for s in share)
    first = decide(p, [trig("welcome", i, T0 + i * NS) for i in range(n)])
    held = {d.trigger.msisdn for d in first if d.reason == "holdout"}
    assert len(held) == expected and 0.09 * n < expected < 0.11 * n
    assert all(d.holdout == 1 for d in first if d.reason == "holdout")
    assert outcomes(first)["queued"] == n - expected
    # a month later the same subscribers are in the same group, whatever else happened
    later = decide(p, [trig("welcome", i, T0 + 30 * DAY + i * NS) for i in range(n)])
    assert {d.trigger.msisdn for d in later if d.reason == "holdout"} == held


def test_the_held_out_meet_the_policy_the_contacted_meet(tmp_path):
    """A held-out trigger goes through every later step as if it were to be sent: opted out, it is
    suppressed for that; again within the cooldown or the arbitration time, likewise; else it is
    `suppressed: holdout`, due when it would have gone out. Its would-be contacts count for its own
    campaign only (another campaign's message still reaches it under a cap of 1 a day), and they
    survive a restore from the outbox."""
    rs = ruleset(
        tmp_path,
        {"welcome": "holdout: 50%\ncooldown: 1d\n", "other": "", "flash": "holdout: 50%\n"},
        'caps: [{per: 1d, max: 1}]\narbitration: 60s\ntimezone: Asia/Shanghai\nquiet: {from: "21:00", to: "08:00"}\n',
    )
    n = 400
    held = {i for i in range(n) if int.from_bytes(hashlib.sha256(f"welcome:{msisdn(i)}".encode()).digest()[:8],
                                                  "big") / 2**64 < 0.5}
    optout = set(range(100))
    live = ContactPolicy(rs)
    for i in optout:
        live.optouts.add((msisdn(i), "*"))
    clock = RecordClock()
    first = decide(live, [trig("welcome", i, T0) for i in range(n)] +
                   [trig("welcome", i, T0 + 30 * NS) for i in range(n)], clock)     # again at once
    ob = Outbox(str(tmp_path / "d"))
    with ob.tx():
        ob.insert(first, clock.now_ns())
    p = ContactPolicy(rs)
    p.restore(ob, clock.now_ns())
    p.optouts |= live.optouts
    later = decide(p, [trig("welcome", i, T0 + H) for i in range(n)], clock)            # within the cooldown
    other = decide(p, [trig("other", i, T0 + 2 * H) for i in range(n)], clock)          # the cap: 1 a day

    def expect(i, contacted, held_out):
        return "suppressed:optout" if i in optout else held_out if i in held else contacted
    assert [(d.state + ":" + d.reason).rstrip(":") for d in first[:n]] == \
        [expect(i, "queued", "suppressed:holdout") for i in range(n)]
    assert [(d.state + ":" + d.reason) for d in first[n:]] == \
        [expect(i, "suppressed:cooldown", "suppressed:cooldown") for i in range(n)]
    assert [d.state + ":" + d.reason for d in later] == [expect(i, "suppressed:cooldown", "suppressed:cooldown")
                                                          for i in range(n)]
    assert [(d.state + ":" + d.reason).rstrip(":") for d in other] == \
        [expect(i, "suppressed:frequency_cap", "queued") for i in range(n)]
    assert [d.holdout for d in first[:n] + later] == [int(i in held) for i in range(n)] * 2
    assert {d.due_ns for d in first[:n] if d.reason == "holdout"} == {T0 + 30 * NS}     # the batch's now
    # quiet hours: due when it would have gone out
    evening = int(datetime(2026, 11, 5, 22, 30, tzinfo=SH).timestamp()) * NS
    next_8 = int(datetime(2026, 11, 6, 8, 0, tzinfo=SH).timestamp()) * NS
    got = decide(p, [trig("welcome", i, evening) for i in sorted(held - optout)[:5]], clock)
    assert outcomes(got) == {"suppressed:holdout": 5} and {d.due_ns for d in got} == {next_8}
    # without a cooldown, again within the arbitration time: arbitration, in both groups
    fresh = range(1000, 1400)
    got = decide(p, [trig("flash", i, T0 + 3 * DAY) for i in fresh] + [trig("flash", i, T0 + 3 * DAY + 30 * NS)
                                                                       for i in fresh], clock)
    flash_held = sum(int.from_bytes(hashlib.sha256(f"flash:{msisdn(i)}".encode()).digest()[:8], "big") / 2**64 < 0.5
                     for i in fresh)
    assert outcomes(got) == {"queued": len(fresh) - flash_held, "suppressed:holdout": flash_held,
                             "suppressed:arbitration": len(fresh)}


def test_optouts_global_per_campaign_keywords_and_lists(tmp_path):
    data = tmp_path / "data"
    listed = range(300, 320)
    csv = tmp_path / "dnd.csv"
    csv.write_text("msisdn\n" + "".join(f"{msisdn(i)}\n" for i in listed))
    import_list(str(data), "dnd", str(csv))
    from touchpoint.control.lists import ListStore
    rs = ruleset(tmp_path, {"a": "", "b": ""}, "caps: []\noptout_lists: [dnd]\n")
    p = ContactPolicy(rs, ListStore(str(data)))
    for i in range(0, 100):
        p.optouts.add((msisdn(i), "*"))                 # ctl: every campaign
    for i in range(100, 150):
        p.optouts.add((msisdn(i), "a"))                 # ctl: campaign a only
    replies = ["TD", " td ", "退订", "stop", "T", "TD please", "Y"]
    said = {200 + k: text for k, text in enumerate(replies)}
    for i, text in said.items():                        # MO replies: only exact keywords count
        if p.keyword(text):
            p.optouts.add((msisdn(i), "*"))
    out = decide(p, [trig(cid, i, T0 + i * NS + k * 120 * NS) for i in range(400) for k, cid in enumerate("ab")])
    by = Counter((d.trigger.campaign, d.reason or d.state) for d in out)
    mo = 5                                              # the first five replies are keywords
    assert by[("a", "optout")] == 100 + 50 + mo + len(listed)
    assert by[("b", "optout")] == 100 + mo + len(listed)
    assert by[("a", "queued")] == 400 - by[("a", "optout")] and by[("b", "queued")] == 400 - by[("b", "optout")]


def test_frequency_caps_one_a_day_three_a_week(tmp_path):
    rs = ruleset(tmp_path, {"morning": "", "afternoon": ""},
                 "caps: [{per: 1d, max: 1}, {per: 7d, max: 3}]\narbitration: 0s\n")
    p = ContactPolicy(rs)
    clock = RecordClock()
    got = []
    for day in range(14):
        for cid, hour in (("morning", -2), ("afternoon", 3)):       # 10:00 and 15:00 Shanghai
            got += decide(p, [trig(cid, 1, T0 + day * DAY + hour * H)], clock)
    queued_days = [(d.trigger.ts_ns - T0 + 2 * H) // DAY for d in got if d.state == "queued"]
    # worked out by hand: at most 3 in any 7 days and 1 in any day, the earliest first
    assert queued_days == [0, 1, 2, 7, 8, 9]
    assert outcomes(got) == {"queued": 6, "suppressed:frequency_cap": 22}
    # the guarantee itself, on the queued times
    ts = sorted(d.due_ns for d in got if d.state == "queued")
    assert all(sum(1 for u in ts if t <= u < t + 7 * DAY) <= 3 and sum(1 for u in ts if t <= u < t + DAY) <= 1
               for t in ts)


def test_caps_and_cooldown_within_one_batch(tmp_path):
    """A batch's earlier decisions count for its later triggers."""
    rs = ruleset(tmp_path, {f"c{k}": "cooldown: 1d\n" for k in range(5)}, "caps: [{per: 1d, max: 2}]\n")
    p = ContactPolicy(rs)
    batch = [trig(f"c{k % 5}", i, T0 + k * 120 * NS) for i in range(30) for k in range(8)]
    got = decide(p, batch)
    # per subscriber, c0 c1 c2 c3 c4 c0 c1 c2: c0 and c1 go out (the cap is 2), c2-c4 hit the cap,
    # the second c0 and c1 their cooldown (before the cap: it comes first), the second c2 the cap
    assert outcomes(got) == {"queued": 60, "suppressed:frequency_cap": 120, "suppressed:cooldown": 60}


def test_cooldown_per_campaign(tmp_path):
    rs = ruleset(tmp_path, {"monthly": "cooldown: 30d\n", "other": ""})
    p = ContactPolicy(rs)
    clock = RecordClock()
    got = []
    for day in range(0, 100, 10):
        got += decide(p, [trig("monthly", 7, T0 + day * DAY), trig("other", 8, T0 + day * DAY)], clock)
    monthly = [(d.trigger.ts_ns - T0) // DAY for d in got if d.trigger.campaign == "monthly" and d.state == "queued"]
    assert monthly == [0, 30, 60, 90]
    assert outcomes(got) == {"queued": 4 + 10, "suppressed:cooldown": 6}


def test_quiet_hours_defer_or_expire(tmp_path):
    rs = ruleset(tmp_path, {"long": "", "short": "window: 2h\n"},
                 'caps: []\ntimezone: Asia/Shanghai\nquiet: {from: "21:00", to: "08:00"}\n')
    p = ContactPolicy(rs)
    evening = int(datetime(2026, 11, 2, 22, 30, tzinfo=SH).timestamp()) * NS
    early = int(datetime(2026, 11, 3, 7, 0, tzinfo=SH).timestamp()) * NS
    next_8 = int(datetime(2026, 11, 3, 8, 0, tzinfo=SH).timestamp()) * NS
    got = decide(p, [trig("long", i, evening) for i in range(10)] +
                 [trig("short", 100 + i, evening, window=2 * H) for i in range(4)])
    assert outcomes(got) == {"queued": 10, "expired:quiet_hours": 4}
    assert {d.due_ns for d in got if d.state == "queued"} == {next_8}
    # 07:00 with a 2h window: 08:00 is still inside it
    got = decide(p, [trig("short", 200 + i, early, window=2 * H) for i in range(3)])
    assert outcomes(got) == {"queued": 3} and {d.due_ns for d in got} == {next_8}
    # noon: no deferral
    got = decide(p, [trig("short", 300, T0 + DAY)])
    assert got[0].due_ns == T0 + DAY


def test_window_expiry_by_the_records_clock(tmp_path):
    rs = ruleset(tmp_path, {"quick": "window: 1h\n"})
    p = ContactPolicy(rs)
    # one batch: the latest trigger sets now; those older than their 1h window have expired
    batch = [trig("quick", i, T0 - i * 20 * 60 * NS, window=H) for i in range(10)]    # 0, 20, ..., 180 min old
    assert outcomes(decide(p, batch)) == {"queued": 4, "expired:window": 6}          # 0, 20, 40, 60 min: in time


def test_priority_arbitration(tmp_path):
    rs = ruleset(tmp_path, {"low": "priority: 5\n", "mid": "priority: 10\n", "high": "priority: 20\n"})
    p = ContactPolicy(rs)
    clock = RecordClock()
    batch = [trig(cid, i, T0, priority=pr) for i in range(50) for cid, pr in (("low", 5), ("high", 20), ("mid", 10))]
    got = decide(p, batch, clock)
    won = Counter(d.trigger.campaign for d in got if d.state == "queued")
    assert won == {"high": 50} and outcomes(got)["suppressed:arbitration"] == 100
    # within the 60 s that follow, a lower or equal priority loses to what was sent; after, it is not arbitration
    got = decide(p, [trig("mid", 1, T0 + 30 * NS, priority=10), trig("high", 2, T0 + 59 * NS, priority=20),
                     trig("mid", 3, T0 + 61 * NS, priority=10)], clock)
    assert [d.reason or d.state for d in got] == ["arbitration", "arbitration", "queued"]


def test_daily_quota_in_the_policy_time_zone(tmp_path):
    rs = ruleset(tmp_path, {"limited": "quota: 5\n"}, "caps: []\ntimezone: Asia/Shanghai\n")
    p = ContactPolicy(rs)
    clock = RecordClock()
    before_midnight = int(datetime(2026, 11, 2, 23, 0, tzinfo=SH).timestamp()) * NS   # 15:00 UTC
    after_midnight = before_midnight + 2 * H                                           # 17:00 UTC: a new day
    got = decide(p, [trig("limited", i, before_midnight + i * NS) for i in range(20)], clock)
    assert outcomes(got) == {"queued": 5, "suppressed:quota": 15}
    got = decide(p, [trig("limited", 100 + i, after_midnight + i * NS) for i in range(20)], clock)
    assert outcomes(got) == {"queued": 5, "suppressed:quota": 15}


def test_inactive_campaigns_unsendable_and_templates(tmp_path):
    rs = ruleset(tmp_path, {"on": "", "off": "status: paused\n", "old": "valid: {until: 2026-01-01}\n",
                            "tpl": "message: {text: '{after} 秒后开机 {{ok}} {msisdn}'}\n"})
    p = ContactPolicy(rs)
    p.paused.add("on")
    got = decide(p, [trig("on", 1, T0), trig("off", 2, T0), trig("old", 3, T0), trig("gone", 4, T0),
                     Trigger("tpl", "power_on", T0, T0 + DAY, "460001", "", 0, {"after": 60}),
                     trig("tpl", 6, T0, after=""), trig("tpl", 7, T0, after=90),
                     trig("tpl", 8, T0, after="{msisdn.__class__}")])
    assert [d.reason or d.state for d in got] == ["campaign_inactive"] * 4 + ["no_msisdn", "missing_field",
                                                                               "queued", "queued"]
    assert got[6].text == f"90 秒后开机 {{ok}} {msisdn(7)}"
    assert got[7].text == f"{{msisdn.__class__}} 秒后开机 {{ok}} {msisdn(8)}"     # a value is never looked into


def test_approve_mode_holds_then_rechecks(tmp_path):
    rs = ruleset(tmp_path, {"manual": "send: approve\n", "auto": ""}, "caps: [{per: 1d, max: 1}]\narbitration: 0s\n")
    p = ContactPolicy(rs)
    clock = RecordClock()
    got = decide(p, [trig("manual", i, T0) for i in range(5)], clock)
    assert outcomes(got) == {"pending": 5}
    # pending counts nothing: the automatic campaign still reaches them
    auto = decide(p, [trig("auto", i, T0 + H) for i in range(2)], clock)
    assert outcomes(auto) == {"queued": 2}
    clock.see(T0 + 2 * H)
    again = p.approve(got, clock.now_ns())
    assert outcomes(again) == {"queued": 3, "suppressed:frequency_cap": 2}


def test_history_lookup_merge_and_take_back():
    h = History()
    keys = pack([msisdn(i) for i in (5, 1, 3, 1)])
    h.load(keys, np.array([50, 10, 30, 11], np.int64), np.array([0, 0, 1, 2], np.int32))
    h.add(int(pack([msisdn(1)])[0]), 12, 3)
    lo, hi = h.find(pack([msisdn(1), msisdn(2)]))
    k1 = int(pack([msisdn(1)])[0])
    assert h.of(k1, lo[0], hi[0]) == [(10, 0), (11, 2), (12, 3)] and h.of(0, lo[1], hi[1]) == []
    h.discard(k1, 11, 2)
    h.discard(k1, 12, 3)
    lo, hi = h.find(pack([msisdn(1)]))
    assert [c for c in h.of(k1, lo[0], hi[0]) if c[0] >= 0] == [(10, 0)]
    h.add(k1, 40, 1)
    h.merge(since_ns=20)
    lo, hi = h.find(pack([msisdn(1), msisdn(3), msisdn(5)]))
    assert [h.of(k, a, b) for k, a, b in zip(pack([msisdn(i) for i in (1, 3, 5)]).tolist(), lo, hi)] == \
        [[(40, 1)], [(30, 1)], [(50, 0)]]


def test_restore_from_the_outbox_gives_the_same_decisions(tmp_path):
    """The history rebuilt from SQLite decides as the one built up in memory did."""
    rs = ruleset(
        tmp_path, {"a": "cooldown: 3d\nquota: 40\n", "b": ""}, "caps: [{per: 1d, max: 1}, {per: 7d, max: 2}]\n"
    )
    rng = np.random.default_rng(3)
    first = [trig(["a", "b"][k % 2], int(rng.integers(60)), T0 + k * 300 * NS) for k in range(300)]
    second = [trig(["a", "b"][k % 2], int(rng.integers(60)), T0 + DAY + k * 300 * NS) for k in range(300)]
    ob = Outbox(str(tmp_path / "d"))
    live = ContactPolicy(rs)
    clock = RecordClock()
    made = decide(live, first, clock)
    with ob.tx():
        ob.insert(made, clock.now_ns())
    restored = ContactPolicy(rs)
    restored.restore(ob, clock.now_ns())
    a = [(d.state, d.reason) for d in decide(live, second, RecordClock(clock.now_ns()))]
    b = [(d.state, d.reason) for d in decide(restored, second, RecordClock(clock.now_ns()))]
    assert a == b and len(set(a)) >= 3


def test_message_ids_are_the_idempotency_key():
    assert message_id("c", "460001", "8613", 5) == hashlib.sha1(b"c|460001|5").hexdigest()
    assert message_id("c", "", "8613", 5) == hashlib.sha1(b"c|8613|5").hexdigest()


@pytest.mark.parametrize("tz,text", [("UTC", "21:00"), ("Asia/Shanghai", "21:00")])
def test_allowed_at_spans_midnight(tmp_path, tz, text):
    rs = ruleset(tmp_path, {"a": ""}, f'timezone: {tz}\nquiet: {{from: "{text}", to: "08:00"}}\n')
    p = ContactPolicy(rs)
    zone = ZoneInfo(tz)
    for hour, expect_next_day in ((20, None), (21, True), (23, True), (0, False), (7, False), (8, None)):
        t = datetime(2026, 3, 10, hour, 59, tzinfo=zone)
        got = p.allowed_at(int(t.timestamp()) * NS)
        if expect_next_day is None:
            assert got == int(t.timestamp()) * NS
        else:
            wake = datetime.combine(t.date() + timedelta(days=expect_next_day), datetime.min.time().replace(hour=8),
                                    zone)
            assert got == int(wake.timestamp()) * NS


def test_policy_yaml_errors_name_file_line_and_setting(tmp_path):
    d = tmp_path / "r"
    d.mkdir()
    (d / "policy.yaml").write_text('timezone: Mars/Olympus\ncaps: []\ncountry_code: "8x6"\nquiet: {from: "25:00"}\n',
                                   encoding="utf-8")
    rs = load(str(d))
    got = sorted((e.line, e.field) for e in rs.errors)
    assert (1, "timezone") in got and (3, "country_code") in got and any(p.startswith("quiet") for _, p in got)
    assert any("'8x6' is not a country code" in str(e) and str(e).startswith(str(d / "policy.yaml"))
               for e in rs.errors)
    (d / "policy.yaml").write_text("country_code: 86\n", encoding="utf-8")
    assert load(str(d)).policy.country_code == "86"


def test_http_headers_are_one_line_of_text_each(tmp_path):
    """A header with CR/LF once passed the checker and killed the HTTP channel's worker thread
    (http.client refuses it), leaving the message `sending` for ever."""
    d = tmp_path / "r"
    d.mkdir()
    (d / "policy.yaml").write_text('channels:\n  http:\n    url: http://127.0.0.1:9/\n    headers:\n'
                                   '      X-Token: "abc\\r\\nX-Evil: 1"\n      "Bad Name": x\n      X-Ok: fine\n')
    got = sorted((e.line, e.field, e.why) for e in load(str(d)).errors)
    assert got == [(5, "channels.http.headers.X-Token", "has a control character (CR, LF, ...): a header value is "
                                                         "one line of text"),
                   (6, "channels.http.headers", "'Bad Name' is not a header name (letters, digits and -)")]
