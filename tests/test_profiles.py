"""Profiles (control/profiles.py): counts over the last days, at the event, in the policy's time
zone, kept across days, snapshots, restarts and reloads; windows checked by `rules check`."""
import json
import re
from pathlib import Path

import numpy as np
import pytest

from touchpoint.control import rules
from touchpoint.control.engine import Engine
from touchpoint.control.profiles import Days
from touchpoint.probe.record import Flag, Kind, Loc, pack

from .records import IMEI_A, IMEI_A2, IMEI_B, MIN, T0, rec
from .test_engine import campaign, ruleset

DAY = 24 * 60


def fired(engine, *records):
    return [(t.campaign, (t.ts_ns - T0) // MIN) for t in engine.process(np.concatenate(records))]


def sms(t, n=1):
    return [rec(Kind.MO_SMS, t + i) for i in range(n)]


def test_a_window_is_today_and_the_days_before(tmp_path):
    """Counted at the event, never at the end of its batch (all of these are one batch)."""
    e = Engine(ruleset(tmp_path, campaign("few", "event: sms_mo", "audience: {where: {sms_mo: {last: 3d, lte: 2}}}")))
    # day 0: the first and the second fire, the third does not; day 2: day 0's three are in the
    # window; day 3: they have left it, the next two fire
    got = fired(e, *sms(0, 3), *sms(2 * DAY), *sms(3 * DAY), *sms(3 * DAY + 10))
    assert got == [("few", 0), ("few", 1), ("few", 3 * DAY)]


def test_the_history_lives_in_files_and_a_restart_keeps_the_windows(tmp_path):
    (tmp_path / "r").mkdir()
    rs = ruleset(tmp_path / "r", campaign("busy", "event: sms_mo", "audience: {where: {sms_mo: {last: 7d, gte: 4}}}"))
    days = tmp_path / "profiles"
    a = Engine(rs, days=Days(str(days)))
    assert fired(a, *sms(0), *sms(DAY), *sms(2 * DAY)) == []
    assert sorted(p.name for p in days.iterdir()) == [                  # the finished days
        "2026-01-01.areas.npy", "2026-01-01.npy", "2026-01-02.areas.npy", "2026-01-02.npy"]
    a.snapshot(str(tmp_path / "s.npz"))
    b = Engine(rs, days=Days(str(days)))
    b.restore(str(tmp_path / "s.npz"))
    assert fired(b, *sms(2 * DAY + 5)) == [("busy", 2 * DAY + 5)]       # the fourth in 7 days
    assert fired(b, *sms(8 * DAY)) == []                  # days 2 to 8: day 2's two and this one


def test_a_window_a_reload_adds_is_summed_from_the_history(tmp_path):
    for d in "ab":
        (tmp_path / d).mkdir()
    e = Engine(ruleset(tmp_path / "a", campaign("any", "event: sms_mo")), days=Days(str(tmp_path / "p")))
    fired(e, *sms(0, 3), *sms(DAY, 2), *sms(2 * DAY))
    loyal = campaign("loyal", "event: sms_mo", "audience: {where: {sms_mo: {last: 30d, gte: 7}}}")
    e.load(ruleset(tmp_path / "b", loyal))
    assert fired(e, *sms(2 * DAY + 1)) == [("loyal", 2 * DAY + 1)]     # 3 + 2 + 1, and this one


def test_calls_count_by_direction_answer_and_minutes(tmp_path):
    rs = ruleset(tmp_path, *(campaign(f"c{i}", "event: sms_mo", f"audience: {{where: {{{w}}}}}") for i, w in enumerate((
        "calls_mo: {last: 1d, gte: 2}", "answered_mo: {last: 1d, gte: 1}", "call_minutes: {last: 1d, gte: 2}",
        "days_active: {last: 2d, gte: 2}"))))
    e = Engine(rs)
    end = dict(flags=Flag.REQUEST | Flag.RESPONSE | Flag.ANSWERED)
    talk = rec(Kind.CALL_END, 3, **end)
    talk["duration_ms"] = 119_999                       # a millisecond short of two minutes
    timed_out = rec(Kind.CALL_END, 4, flags=Flag.REQUEST | Flag.TIMEOUT)
    assert fired(e, rec(Kind.CALL_ATTEMPT, 0, flags=Flag.REQUEST), rec(Kind.CALL_ATTEMPT, 1, flags=Flag.REQUEST),
                 talk, timed_out, *sms(5)) == [("c0", 5), ("c1", 5)]
    more = rec(Kind.CALL_END, 6, **end)
    more["duration_ms"] = 1
    assert fired(e, more, *sms(7), *sms(DAY)) == [("c0", 7), ("c1", 7), ("c2", 7), ("c3", DAY)]


@pytest.mark.parametrize("where, why", [
    ("sms_mo: {gte: 5}", "sms_mo counts over days: say over how many, e.g. {last: 30d, gte: 5}"),
    ("sms_mo: 5", "sms_mo counts over days: say over how many"),
    ("sms_mo: {last: 12h, gte: 5}", "profiles count whole days (in the policy's time zone): 1d, 7d, 30d"),
    ("sms_mo: {last: 100d, gte: 5}", "at most 92d: profiles keep 92 days"),
    ("sms_mo: {last: 30d}", "a window alone tests nothing: add a test, e.g. {last: 30d, gte: 1}"),
    ("sms_mo: {last: 30d, gt: many}", "'many' is not"),
    ("sms_moo: {last: 30d, gte: 5}", "unknown field: did you mean 'sms_mo'?"),
    ("sms_mo: {month: next, gte: 5}", "'next' is not one of this, last"),
    ("call_minutes: {last: 1d, while: home, gte: 30}", "'home' is not one of roaming"),
    ("sms_mo: {last: 1d, while: roaming, gte: 30}", "unknown operator"),
    ("sms_mo: {month: last, last: 30d, gte: 5}", "or over which calendar month, {month: last, gte: 5} (this or last)"),
    ("area_days: {last: 30d, gte: 3}", "area_days is of one area: name it, e.g. {area: colleges, last: 30d, gte: 10}"),
    ("area_visits: {area: mall, last: 7d, gte: 3}", "areas are named in places.yaml, which is missing"),
])
def test_profile_conditions_are_checked(tmp_path, where, why):
    (tmp_path / "c.yaml").write_text(f"id: c\nstatus: active\ntrigger: {{event: sms_mo}}\n"
                                     f"audience: {{where: {{{where}}}}}\nmessage: {{text: hi}}\n")
    errors = [str(e) for e in rules.load(str(tmp_path)).errors]
    field = where.split(":")[0]
    assert len(errors) == 1 and why in errors[0] and f"c.yaml:4: audience.where.{field}" in errors[0], errors


def test_handset_age_and_the_brand_before(tmp_path):
    """An 18-month-old handset, and who switched from brand X: the IMEI's first sighting is when
    its age starts; another unit of the same model is another handset, not another brand."""
    from touchpoint.control.lists import ListStore, import_tac
    (tmp_path / "tac.csv").write_text("tac,brand,model,capabilities\n35693803,华为,Mate,4g;5g\n86012345,小米,Note,4g\n")
    import_tac(tmp_path / "data", tmp_path / "tac.csv")
    (tmp_path / "r").mkdir()
    rs = ruleset(tmp_path / "r", campaign("old", "event: sms_mo", "audience: {where: {handset_age: {gte: 540d}}}"),
                 campaign("new", "event: sms_mo", "audience: {where: {handset_age: {lt: 1d}}}"),
                 campaign("was-xiaomi", "event: sms_mo", "audience: {where: {previous_handset_brand: 小米}}"))
    e = Engine(rs, ListStore(tmp_path / "data"))
    a, b, a2 = IMEI_A + "0", IMEI_B + "0", IMEI_A2 + "0"
    assert fired(e, rec(Kind.MO_SMS, 0)) == []                           # no IMEI yet: no age, not even "new"
    assert fired(e, rec(Kind.CHECK_IMEI, 1, imei=b), rec(Kind.MO_SMS, 2)) == [("new", 2)]
    assert fired(e, rec(Kind.MO_SMS, 540 * DAY - 1)) == []
    assert fired(e, rec(Kind.MO_SMS, 540 * DAY + 1)) == [("old", 540 * DAY + 1)]
    t = 541 * DAY
    assert fired(e, rec(Kind.CHECK_IMEI, t, imei=a), rec(Kind.MO_SMS, t + 1)) == [("new", t + 1), ("was-xiaomi", t + 1)]
    assert fired(e, rec(Kind.CHECK_IMEI, t + 2, imei=a2), rec(Kind.MO_SMS, t + 3)) == [("new", t + 3),
                                                                                     ("was-xiaomi", t + 3)]


def test_how_long_in_the_current_region(tmp_path):
    rs = ruleset(tmp_path, campaign("stayer", "event: sms_mo", "audience: {where: {in_region: shanghai, "
                                                               "in_region_for: {gte: 6h}}}"))
    e = Engine(rs)
    bj, sh = dict(node="8613900010001"), dict(node="8613900021001")
    assert fired(e, rec(Kind.LOCATION_UPDATE, 0, **bj), rec(Kind.MO_SMS, 7 * 60)) == []       # Beijing
    assert fired(e, rec(Kind.LOCATION_UPDATE, 480, **sh), rec(Kind.LOCATION_UPDATE, 600, **sh),
                 rec(Kind.MO_SMS, 480 + 359)) == []                       # in Shanghai since 480, not 600
    assert fired(e, rec(Kind.MO_SMS, 480 + 360)) == [("stayer", 480 + 360)]


def test_area_minutes_and_a_snapshot_in_the_middle_of_the_day(tmp_path):
    """A visit's minutes count when it ends; today's facts come back with a snapshot."""
    (tmp_path / "r").mkdir()
    rs = ruleset(tmp_path / "r", campaign("long", "event: sms_mo", "audience: {where: "
                                          "{area_minutes: {area: mall, last: 2d, gte: 90}}}"))
    cell = dict(lac=4100, loc=Loc.CGI)
    a = Engine(rs, days=Days(str(tmp_path / "p")))
    assert fired(a, rec(Kind.LOCATION_UPDATE, 0, node="8613900010001"), rec(Kind.SUBSCRIBER_INFO, 10, cell=501, **cell),
                 rec(Kind.SUBSCRIBER_INFO, 70, cell=9, **cell), *sms(71)) == []        # 60 minutes
    a.snapshot(str(tmp_path / "s.npz"))
    b = Engine(rs, days=Days(str(tmp_path / "p")))
    b.restore(str(tmp_path / "s.npz"))
    assert fired(b, rec(Kind.SUBSCRIBER_INFO, DAY + 10, cell=501, **cell), *sms(DAY + 20)) == []   # still in the shop
    assert fired(b, rec(Kind.SUBSCRIBER_INFO, DAY + 40, cell=9, **cell), *sms(DAY + 41)) == [("long", DAY + 41)]


def test_calendar_months(tmp_path):
    """`month: last` is the calendar month before this one, without today; `month: this` the
    month so far (T0 is 2026-01-01 00:00 UTC, the policy's time zone here)."""
    rs = ruleset(tmp_path, campaign("last", "event: sms_mo", "audience: {where: {sms_mo: {month: last, gte: 2}}}"),
                 campaign("this", "event: sms_mo", "audience: {where: {sms_mo: {month: this, gte: 3}}}"))
    e = Engine(rs)
    feb, mar = 31 * DAY, 59 * DAY
    assert fired(e, *sms(9 * DAY), *sms(30 * DAY + 5, 2)) == [("this", 30 * DAY + 6)]   # January's third
    assert fired(e, *sms(feb + 1, 2)) == [("last", feb + 1), ("last", feb + 2)]      # January had 3
    assert fired(e, *sms(mar)) == [("last", mar)]             # March 1st: February had 2, this month 1
    e = Engine(rs)
    assert fired(e, *sms(feb - 1), *sms(feb)) == []           # January 31st's one is not February's


def test_an_audience_counted_now_condition_by_condition(tmp_path):
    from touchpoint.control.lists import ListStore, import_list
    (tmp_path / "members.csv").write_text("imsi,age\n460001000000001,30\n460001000000002,12\n460001000000003,40\n")
    import_list(tmp_path / "data", "members", tmp_path / "members.csv")
    (tmp_path / "staff.csv").write_text("imsi\n460001000000003\n")
    import_list(tmp_path / "data", "staff", tmp_path / "staff.csv")
    (tmp_path / "r").mkdir()
    rs = ruleset(tmp_path / "r", campaign("adults", "event: sms_mo", "audience: {lists: [members], where: "
                                          "{age: {gte: 18}, sms_mo: {last: 7d, gte: 2}}}\nexclude: {lists: [staff]}"))
    e = Engine(rs, ListStore(tmp_path / "data"))
    who = [f"46000100000000{i}" for i in (1, 2, 3, 4)]
    e.process(np.concatenate([rec(Kind.MO_SMS, t, imsi=i) for i in who for t in (0, 1)]))
    assert e.audience(rs.campaigns[0]) == [
        ("subscribers known", 4), ("in members", 3), ("age >= 18", 2), ("sms_mo/7d >= 2", 2), ("not in staff", 1)]
    e.process(np.concatenate([rec(Kind.MO_SMS, 8 * DAY, imsi=who[3])]))    # a week later: 0 SMS in 7 days for 1
    assert e.audience(rs.campaigns[0])[-2:] == [("sms_mo/7d >= 2", 0), ("not in staff", 0)]
    # the same from the engine's last snapshot, without an engine (`rules audience`)
    from click.testing import CliRunner

    from touchpoint.control.cli import main
    (tmp_path / "data" / "state").mkdir()
    e.snapshot(str(tmp_path / "data" / "state" / "shard-0.npz"))
    res = CliRunner().invoke(main, ["rules", "audience", "adults", "--rules", str(tmp_path / "r"),
                                    "--data", str(tmp_path / "data")])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[-3:] == ["           0  sms_mo/7d >= 2", "           0  not in staff",
                                            "adults: 0 subscribers in the audience (snapshot of shard 0)"]
    res = CliRunner().invoke(main, ["rules", "audience", "nope", "--rules", str(tmp_path / "r"),
                                    "--data", str(tmp_path / "data")])
    assert res.exit_code == 1 and "no active campaign 'nope'" in res.output


def test_rules_test_says_when_an_audience_is_empty(tmp_path):
    from click.testing import CliRunner

    from touchpoint.control.cli import main
    (tmp_path / "c.yaml").write_text("id: busy\nstatus: active\ntrigger: {event: sms_mo}\n"
                                     "audience: {where: {sms_mo: {last: 1d, gte: 1000}}}\nmessage: {text: hi}\n")
    pcap = Path(__file__).parents[1] / "pcaps" / "mixed_small.pcap"
    res = CliRunner().invoke(main, ["rules", "test", "--rules", str(tmp_path), "--pcap", str(pcap)],
                             env={"TOUCHPOINT_DATA": ""})
    assert res.exit_code == 0, res.output
    assert re.search(r"busy: its audience is empty at the end of the capture \(subscribers known: \d+, "
                     r"sms_mo/1d >= 1000: 0\)", res.output), res.output


def test_a_call_seen_as_cap_and_as_isup_counts_once(tmp_path):
    rs = ruleset(tmp_path, *(campaign(f"c{n}", "event: sms_mo", f"audience: {{where: {{{w}}}}}") for n, w in enumerate((
        "calls_mo: {last: 1d, gte: 2}", "answered_mo: {last: 1d, gte: 2}", "call_minutes: {last: 1d, gte: 2}"))))
    e = Engine(rs)

    def call(t, proto, end=False):
        r = rec(Kind.CALL_END if end else Kind.CALL_ATTEMPT, t, peer="10086",
                flags=Flag.REQUEST | (Flag.ANSWERED if end else 0))
        r["proto"], r["duration_ms"] = proto, 60_000 if end else 0
        return r
    # one call, its set-up and its end each seen by CAP (2) and ISUP (3) a second apart
    one = [call(0, 2), call(1 / 60, 3), call(2, 2, True), call(2 + 1 / 60, 3, True)]
    assert fired(e, *one, *sms(3)) == []                      # 1 call, 1 answered, 1 minute
    assert fired(e, *[call(t + 10, p, end) for t, p, end in ((0, 2, 0), (2, 2, 1))], *sms(13)) == [
        ("c0", 13), ("c1", 13), ("c2", 13)]                   # a second call, 10 minutes later


def test_one_subscribers_profile_today_7_and_30_days(tmp_path):
    e = Engine(ruleset(tmp_path, campaign("any", "event: sms_mo")), days=Days(str(tmp_path / "p")))
    mine = dict(imsi="460001234567890", msisdn="8613800000001")
    e.process(np.concatenate([rec(Kind.MO_SMS, t, **mine) for t in (0, 1, 10 * DAY, 20 * DAY, 20 * DAY + 1)]))
    got = e.subscriber("8613800000001")
    assert got["profile"]["sms_mo"] == [2, 2, 5] and got["profile"]["days_active"] == [1, 1, 3]   # days 0, 10, 20
    assert got["imsi"] == mine["imsi"] and e.subscriber("8613899999999") is None


def test_call_minutes_while_roaming(tmp_path):
    """Talk time of calls answered while served by another operator's network."""
    rs = ruleset(tmp_path, campaign("away", "event: sms_mo", "audience: {where: "
                                    "{call_minutes: {last: 1d, while: roaming, gte: 30}}}"))
    e = Engine(rs)

    def talk(t, minutes):
        r = rec(Kind.CALL_END, t, flags=Flag.REQUEST | Flag.ANSWERED)
        r["proto"], r["duration_ms"], r["peer"] = 3, minutes * 60_000, pack([str(13900000000 + t)])[0]
        return r
    home = rec(Kind.LOCATION_UPDATE, 0, mcc="460", mnc="00", node="8613900010001")
    abroad = rec(Kind.LOCATION_UPDATE, 100, mcc="234", mnc="15", node="447700900001")
    assert fired(e, home, talk(10, 40), *sms(20), abroad, talk(110, 29), *sms(120)) == []     # 40 at home, 29 away
    assert fired(e, talk(130, 1), *sms(140)) == [("away", 140)]


def lifecycle_rules(tmp_path, policy: str, *campaigns):
    (tmp_path / "policy.yaml").write_text(policy)
    return ruleset(tmp_path, *campaigns)


def test_the_default_lifecycle_by_data_volume_and_services(tmp_path):
    """The playbook's segments, the first that holds: loyal (1500 MB and two services in 90
    days), active (300 MB), trial (a data service), silent (data once, none of it now), potential."""
    rs = ruleset(tmp_path, *(campaign(s, "event: sms_mo", f"audience: {{where: {{lifecycle: {s}}}}}")
                             for s in ("loyal", "active", "trial", "silent", "potential")))
    e = Engine(rs)
    who = {n: dict(imsi=f"46000100000{i:04d}") for i, n in enumerate(("heavy", "medium", "light", "ims", "none"))}

    def use(name, t, mb=0, apn=""):
        out = [rec(Kind.SESSION_CREATE, t, apn=apn, **who[name])] if apn else []
        return out + ([rec(Kind.DATA_USAGE, t + 1, octets=mb << 20, **who[name])] if mb else [])
    e.process(np.concatenate([*use("heavy", 0, 1000, "cmnet"), *use("heavy", 10, 499, "cmwap"),
                              *use("medium", 0, 299, "cmnet"), *use("light", 0, 10, "cmnet"),
                              *use("ims", 0, 50, "ims"), rec(Kind.LOCATION_UPDATE, 0, **who["none"])]))
    got = [(t.campaign, t.imsi) for t in e.process(np.concatenate([rec(Kind.MO_SMS, 30, **w) for w in who.values()]))]
    assert got == [("active", who["heavy"]["imsi"]), ("trial", who["medium"]["imsi"]),
                   ("trial", who["light"]["imsi"]), ("silent", who["ims"]["imsi"]),
                   ("potential", who["none"]["imsi"])]          # 1499 MB is not loyal, 299 not active
    more = [*use("heavy", 40, 1), *use("medium", 40, 1)]
    got = [(t.campaign, t.imsi) for t in e.process(np.concatenate(
        [*more, rec(Kind.MO_SMS, 50, **who["heavy"]), rec(Kind.MO_SMS, 50, **who["medium"])]))]
    assert got == [("loyal", who["heavy"]["imsi"]), ("active", who["medium"]["imsi"])]
    assert e.lifecycle_names() == ("loyal", "active", "trial", "silent", "potential")


def test_a_lifecycle_of_the_operators_with_a_list_column(tmp_path):
    """A plan from an imported list (lifecycle_lists), and the data services the operator names."""
    from touchpoint.control.lists import ListStore, import_list
    (tmp_path / "plans.csv").write_text("imsi,plan\n460001000000001,data-100\n460001000000002,voice\n")
    import_list(tmp_path / "data", "plans", tmp_path / "plans.csv")
    (tmp_path / "r").mkdir()
    rs = lifecycle_rules(tmp_path / "r", "data_services: {web: [internet]}\nlifecycle_lists: [plans]\n"
                         "lifecycle:\n  subscribed: {plan: data-*, data_services: {last: 7d, gte: 1}}\n"
                         "  other: {}\n",
                         campaign("sub", "event: sms_mo", "audience: {where: {lifecycle: subscribed}}"))
    e = Engine(rs, ListStore(tmp_path / "data"))
    a, b = dict(imsi="460001000000001"), dict(imsi="460001000000002")
    recs = [rec(Kind.SESSION_CREATE, 0, apn="INTERNET", **x) for x in (a, b)]
    recs += [rec(Kind.MO_SMS, 1, **x) for x in (a, b)]
    assert [t.imsi for t in e.process(np.concatenate(recs))] == [a["imsi"]]
    assert [t.imsi for t in e.process(np.concatenate([rec(Kind.MO_SMS, 7 * DAY + 1, **a)]))] == []   # 8 days on


@pytest.mark.parametrize("policy, campaign_where, why", [
    ("lifecycle: {gold: {data_mbb: {last: 90d, gte: 1}}}", None,
     "policy.yaml:1: lifecycle.gold.data_mbb: unknown field: did you mean 'data_mb'?"),
    ("lifecycle: {gold: {data_services: {month: last, gte: 1}}}", None,
     "policy.yaml:1: lifecycle.gold.data_services.month: data services are counted over days"),
    ("lifecycle: {gold: {lifecycle: gold}}", None, "lifecycle.gold.lifecycle: a segment is defined by other fields"),
    ("data_services: {a: [x], b: [y], c: [z], d: [w], e: [v]}", None,
     "policy.yaml:1: data_services: 5 services: the state tells at most 4 apart"),
    ("data_services: {a: [cmnet], b: [CMNET]}", None, "data_services.b[0]: cmnet is already an APN of a"),
    ("lifecycle: {gold: {}, rest: {}}", "lifecycle: golden",
     "c0.yaml:6: audience.where.lifecycle: 'golden' is not a lifecycle segment of the policy: did you mean 'gold'?"),
    ("timezone: UTC", "lifecycle: gold", "'gold' is not a lifecycle segment of the policy (loyal, active, trial"),
])
def test_lifecycle_settings_are_checked(tmp_path, policy, campaign_where, why):
    (tmp_path / "policy.yaml").write_text(policy)
    if campaign_where:
        where = f"audience: {{where: {{{campaign_where}}}}}"
        (tmp_path / "c0.yaml").write_text(campaign("c", "event: sms_mo", where))
    errors = [str(e) for e in rules.load(str(tmp_path)).errors]
    assert len(errors) == 1 and why in errors[0], errors


def test_a_version_2_snapshot_is_read(tmp_path):
    """Before the data services' days: its rows are read by field name, the services unknown."""
    from touchpoint.control._state import STATE_DTYPE
    rs = ruleset(tmp_path, campaign("any", "event: sms_mo"))
    a = Engine(rs)
    a.process(np.concatenate([rec(Kind.SESSION_CREATE, 0, apn="cmnet"), rec(Kind.MO_SMS, 1)]))
    a.snapshot(str(tmp_path / "s.npz"))
    with np.load(tmp_path / "s.npz") as z:
        arrays = {k: z[k] for k in z.files}
    old = np.dtype([(n, STATE_DTYPE.fields[n][0]) for n in STATE_DTYPE.names if n != "svc"])
    rows = np.zeros(len(arrays["rows"]), old)
    for n in old.names:
        rows[n] = arrays["rows"][n]
    meta = json.loads(arrays["meta"].tobytes())
    arrays["rows"], arrays["meta"] = rows, np.frombuffer(json.dumps({**meta, "version": 2}).encode(), np.uint8)
    np.savez(tmp_path / "v2.npz", **arrays)
    b = Engine(rs)
    b.restore(str(tmp_path / "v2.npz"))
    assert b.state.rows[0]["imsi"] == a.state.rows[0]["imsi"] and not b.state.rows[0]["svc"].any()
    assert a.state.rows[0]["svc"].any()
