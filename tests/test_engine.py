"""The engine core: scenario events matched against campaigns (trigger conditions, validity,
dwell minutes, forwarding window, hotline numbers, deadline), places, snapshots and reload."""
import json
import textwrap

import numpy as np
import pytest

from touchpoint.control import rules
from touchpoint.control.engine import Engine
from touchpoint.probe.record import Kind, Loc

from .records import IMEI_A, IMEI_B, IMSI, MIN, MSISDN, T0, rec

PLACES = """
home: ["46000"]
regions:
  beijing: {node: ["8613900010*"], lac: [[4096, 4351]]}
  shanghai: {node: ["8613900021*"]}
areas:
  mall: {cells: [[4100, 501], [4100, 502]]}
hotlines:
  service: ["10086", "114"]
"""


def ruleset(tmp_path, *campaigns, places=PLACES):
    (tmp_path / "places.yaml").write_text(places)
    for i, c in enumerate(campaigns):
        (tmp_path / f"c{i}.yaml").write_text(textwrap.dedent(c))
    rs = rules.load(str(tmp_path))
    assert not rs.errors, [str(e) for e in rs.errors]
    return rs


def campaign(cid, trigger, extra=""):
    return f"""\
id: {cid}
status: active
trigger:
{textwrap.indent(textwrap.dedent(trigger), "  ")}
message: {{text: "hi"}}
{extra}"""


def fired(engine, *records):
    out = engine.process(np.concatenate(records))
    return [(t.campaign, t.event, (t.ts_ns - T0) // MIN) for t in out]


def test_trigger_conditions_and_deadline(tmp_path):
    rs = ruleset(tmp_path, campaign("new-model", "event: imei_change\nwhere: {new_handset: true}", "window: 2h"),
                 campaign("any-swap", "event: imei_change"))
    e = Engine(rs)
    got = list(e.process(np.concatenate([rec(Kind.CHECK_IMEI, 0, imei=IMEI_A + "0"),
                                    rec(Kind.CHECK_IMEI, 5, imei=IMEI_A[:8] + "999999" + "0"),
                                    rec(Kind.CHECK_IMEI, 9, imei=IMEI_B + "0")])))
    assert [(t.campaign, (t.ts_ns - T0) // MIN) for t in got] == [("any-swap", 5), ("any-swap", 9), ("new-model", 9)]
    nm = got[-1]
    assert nm.imsi == IMSI and nm.deadline_ns == nm.ts_ns + 2 * 3600 * 10**9
    assert nm.fields["new_handset"] is True and nm.fields["tac"] == IMEI_B[:8] and nm.fields["old_tac"] == IMEI_A[:8]


def test_validity_period(tmp_path):
    rs = ruleset(
        tmp_path, campaign("jan", "event: sms_mo", "valid: {from: 2026-01-01T00:10:00Z, until: 2026-01-01T00:20:00Z}")
    )
    e = Engine(rs)
    assert fired(e, rec(Kind.MO_SMS, 5), rec(Kind.MO_SMS, 15), rec(Kind.MO_SMS, 25)) == [("jan", "sms_mo", 15)]


def test_regions_from_places(tmp_path):
    rs = ruleset(tmp_path, campaign("to-sh", "event: roaming_in\nwhere: {region: shanghai}"),
                 campaign("left-bj", "event: roaming_out\nwhere: {region: beijing}"))
    e = Engine(rs)
    got = fired(e, rec(Kind.LOCATION_UPDATE, 0, node="8613900010001"),
                rec(Kind.LOCATION_UPDATE, 1, node="8613900010002"),
                rec(Kind.SRI, 2, node="8613900021000"),               # an HLR-side record: not a location
                rec(Kind.LOCATION_UPDATE, 3, node="8613900021007"))
    assert sorted(got) == [("left-bj", "roaming_out", 3), ("to-sh", "roaming_in", 3)]


def test_area_dwell_minutes_per_campaign(tmp_path):
    rs = ruleset(tmp_path, campaign("d20", "event: area_dwell\nminutes: 20\nwhere: {area: mall}"),
                 campaign("d45", "event: area_dwell\nminutes: 45"),
                 campaign("in", "event: area_enter\nwhere: {area: mall}"))
    e = Engine(rs)
    cell = dict(lac=4100, loc=Loc.CGI)
    got = fired(e, rec(Kind.SUBSCRIBER_INFO, 0, cell=900, **cell),
                rec(Kind.SUBSCRIBER_INFO, 1, cell=501, **cell),
                rec(Kind.SUBSCRIBER_INFO, 30, cell=502, **cell),      # same area, another cell
                rec(Kind.MO_SMS, 50, imsi="460009999999999"))
    assert got == [("in", "area_enter", 1), ("d20", "area_dwell", 21), ("d45", "area_dwell", 46)]


def test_cf_within_and_condition(tmp_path):
    rs = ruleset(tmp_path, campaign("churn", """\
        event: cf_then_power_on
        within: 2h
        where: {ss_code: cfu, forwarded_to: {not: ["86138*"]}}"""))
    e = Engine(rs)
    base = [rec(Kind.LOCATION_UPDATE, 0), rec(Kind.SS_REGISTER, 1, ss=0x21, peer="13600000000")]
    assert fired(e, *base, rec(Kind.PURGE_MS, 2), rec(Kind.LOCATION_UPDATE, 100)) == [
        ("churn", "cf_then_power_on", 100)
    ]
    e = Engine(rs)
    assert fired(e, *base, rec(Kind.PURGE_MS, 2), rec(Kind.LOCATION_UPDATE, 130)) == []      # after 2 h
    e = Engine(rs)
    own = [rec(Kind.LOCATION_UPDATE, 0), rec(Kind.SS_REGISTER, 1, ss=0x21, peer="8613812345678")]
    assert fired(e, *own, rec(Kind.PURGE_MS, 2), rec(Kind.LOCATION_UPDATE, 10)) == []


def test_two_forwardings_fire_once_with_the_latest_that_qualifies(tmp_path):
    rs = ruleset(tmp_path, campaign("any", "event: cf_then_power_on\nwithin: 2h"),
                 campaign("cfu", "event: cf_then_power_on\nwithin: 2h\nwhere: {ss_code: cfu}"))
    recs = [rec(Kind.LOCATION_UPDATE, 0), rec(Kind.SS_REGISTER, 1, ss=0x21, peer="13600000001"),
            rec(Kind.SS_REGISTER, 2, ss=0x29, peer="13600000002"), rec(Kind.PURGE_MS, 3), rec(Kind.LOCATION_UPDATE, 9)]
    out = Engine(rs).process(np.concatenate(recs))
    got = sorted((t.campaign, t.fields["ss_code"], t.fields["forwarded_to"]) for t in out)
    assert got == [("any", "cfb", "13600000002"), ("cfu", "cfu", "13600000001")]


def test_hotline_numbers(tmp_path):
    rs = ruleset(tmp_path, campaign("hot", "event: hotline_call\nhotlines: [service]"),
                 campaign("bank", "event: hotline_call\nnumbers: ['95*']"))
    e = Engine(rs)
    got = fired(e, rec(Kind.CALL_ATTEMPT, 0, peer="10086"), rec(Kind.CALL_ATTEMPT, 1, peer="100861"),
                rec(Kind.CALL_ATTEMPT, 2, peer="95588"), rec(Kind.CALL_ATTEMPT, 3, peer="13800000000"),
                rec(Kind.CALL_END, 4, peer="10086"))         # the call's end: it fired at its set-up
    assert sorted(got) == [("bank", "hotline_call", 2), ("hot", "hotline_call", 0)]


def test_priority_orders_campaigns_and_paused_never_fires(tmp_path):
    rs = ruleset(tmp_path, campaign("low", "event: sms_mt", "priority: 1"),
                 campaign("high", "event: sms_mt", "priority: 9"),
                 campaign("off", "event: sms_mt", "priority: 99").replace("status: active", "status: paused"))
    e = Engine(rs)
    assert [t.campaign for t in e.process(rec(Kind.MT_SMS, 0))] == ["high", "low"]


def test_roaming_state_and_inbound_roamer(tmp_path):
    rs = ruleset(tmp_path, campaign("visitor", "event: inbound_roamer"),
                 campaign("abroad-sms", "event: sms_mo\nwhere: {roaming: true}"))
    e = Engine(rs)
    got = fired(e, rec(Kind.LOCATION_UPDATE, 0, imsi="310150123456789"),
                rec(Kind.SESSION_CREATE, 1, mcc="262", mnc="01"),              # our subscriber, in Germany
                rec(Kind.MO_SMS, 2), rec(Kind.MO_SMS, 3, imsi="460001111111111"))
    assert got == [("visitor", "inbound_roamer", 0), ("abroad-sms", "sms_mo", 2)]


def test_the_shanghai_welcome_is_for_our_subscribers_not_for_foreign_visitors():
    """rules/roaming-shanghai.yaml offered a domestic pack to inbound roamers arriving from Beijing
    (served by a home network, `roaming` is false for them): `visitor: false` keeps them out."""
    from pathlib import Path
    rs = rules.load(str(Path(__file__).resolve().parents[1] / "rules"))
    assert not rs.errors, [str(e) for e in rs.errors]
    e = Engine(rs)
    ours, theirs = "460001000000071", "234150000000072"
    recs = [rec(Kind.LOCATION_UPDATE, 0, imsi=i, node="861390020003") for i in (ours, theirs)] + \
        [rec(Kind.LOCATION_UPDATE, 60, imsi=i, node="861390020005") for i in (ours, theirs)]
    got = [(t.imsi, t.event) for t in e.process(np.concatenate(recs)) if t.campaign == "roaming-in-shanghai"]
    assert got == [(ours, "roaming_in")]


def test_visitor_is_an_imsi_of_another_operators(tmp_path):
    rs = ruleset(tmp_path, campaign("guests", "event: sms_mo\nwhere: {visitor: true}"),
                 campaign("hosts", "event: sms_mo\nwhere: {visitor: false}"))
    got = [(t.campaign, t.imsi or t.msisdn) for t in Engine(rs).process(np.concatenate([
        rec(Kind.MO_SMS, 0, imsi="234150000000073"), rec(Kind.MO_SMS, 1, imsi="460001000000074"),
        rec(Kind.MO_SMS, 2, imsi="", msisdn="8613800000075")]))]
    assert got == [("guests", "234150000000073"), ("hosts", "460001000000074"), ("hosts", "8613800000075")]


def test_snapshot_restore_gives_the_same_triggers(tmp_path):
    (tmp_path / "r").mkdir()
    rs = ruleset(
        tmp_path / "r", campaign("swap", "event: imei_change"), campaign("d", "event: area_dwell\nminutes: 10")
    )
    cell = dict(lac=4100, loc=Loc.CGI)
    recs = [rec(Kind.LOCATION_UPDATE, 0, node="8613900000001"), rec(Kind.CHECK_IMEI, 0, imei=IMEI_A + "0"),
            rec(Kind.SUBSCRIBER_INFO, 1, cell=501, **cell),             # from a VLR into the area
            rec(Kind.CHECK_IMEI, 5, imei=IMEI_B + "0"), rec(Kind.MO_SMS, 20, imsi="460009999999999")]
    whole = fired(Engine(rs), *recs)
    a = Engine(rs)
    first = fired(a, *recs[:3])
    a.snapshot(str(tmp_path / "s.npz"))
    b = Engine(rs)
    b.restore(str(tmp_path / "s.npz"))
    assert first + fired(b, *recs[3:]) == whole == [("swap", "imei_change", 5), ("d", "area_dwell", 11)]


def forwarding_campaign(tmp_path):
    (tmp_path / "r").mkdir()
    rs = ruleset(tmp_path / "r", campaign("churn", "event: cf_then_power_on\nwithin: 2h"))
    before = [rec(Kind.LOCATION_UPDATE, 0), rec(Kind.SS_REGISTER, 1, ss=0x29, peer="13600000002"),
              rec(Kind.SS_REGISTER, 30, ss=0x21, peer="13600000001"), rec(Kind.PURGE_MS, 40)]
    return rs, before, [rec(Kind.LOCATION_UPDATE, 100)]


def test_a_snapshot_keeps_each_forwarding(tmp_path):
    rs, before, after = forwarding_campaign(tmp_path)
    a = Engine(rs)
    fired(a, *before)
    a.snapshot(str(tmp_path / "s.npz"))
    b = Engine(rs)
    b.restore(str(tmp_path / "s.npz"))
    assert [(t.fields["ss_code"], t.fields["forwarded_to"]) for t in b.process(np.concatenate(after))] == [
        ("cfu", "13600000001")]                 # cfb, set 99 minutes before, is past `within`


def test_a_version_1_snapshot_is_migrated_and_another_refused(tmp_path):
    """Version 1 kept one set time and number for all of a subscriber's forwardings (the latest)."""
    rs, before, after = forwarding_campaign(tmp_path)
    a = Engine(rs)
    fired(a, *before)
    a.snapshot(str(tmp_path / "s.npz"))
    with np.load(tmp_path / "s.npz") as z:
        rows, fwd, meta, timers = z["rows"], z["forwards"], json.loads(z["meta"].tobytes()), z["timers"]
    names = list(rows.dtype.names)
    field = [(n, rows.dtype[n]) for n in names]
    v1 = np.dtype(field[:4] + [("cf_to", "<u8")] + field[4:9] + [("cf_at", "<u4")] + field[9:])
    old = np.zeros(len(rows), v1)
    for n in names:
        old[n] = rows[n]
    latest = fwd[np.argmax(fwd["at"])]
    old["cf_to"][latest["sub"]], old["cf_at"][latest["sub"]] = latest["to"], latest["at"]
    for version, path in ((1, tmp_path / "v1.npz"), (99, tmp_path / "v99.npz")):
        np.savez(path, rows=old, timers=timers,
                 meta=np.frombuffer(json.dumps({**meta, "version": version}).encode(), np.uint8))
    b = Engine(rs)
    b.restore(str(tmp_path / "v1.npz"))
    # both forwardings take the one time and number (cfu's): both qualify, and the lower code wins
    assert [(t.fields["ss_code"], t.fields["forwarded_to"]) for t in b.process(np.concatenate(after))] == [
        ("cfu", "13600000001")]
    with pytest.raises(ValueError, match="v99.npz: a snapshot of version 99, which this touchpoint does not read"):
        Engine(rs).restore(str(tmp_path / "v99.npz"))


def test_reload_keeps_state(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    e = Engine(ruleset(tmp_path / "a", campaign("sms", "event: sms_mo")))
    fired(e, rec(Kind.CHECK_IMEI, 0, imei=IMEI_A + "0"))
    e.load(ruleset(tmp_path / "b", campaign("swap", "event: imei_change")))
    assert fired(e, rec(Kind.CHECK_IMEI, 1, imei=IMEI_B + "0"), rec(Kind.MO_SMS, 2)) == [("swap", "imei_change", 1)]


@pytest.mark.parametrize("days, segment", [
    ([], "silent"),
    ([1, 2], "trial"),                      # first data in the last 7 days
    ([1, 9, 15], "active"),
    (list(range(1, 26)), "loyal"),          # data on at least 20 of the last 30 days
    ([31, 33], "silent"),                   # nothing in the last 30 days
])
def test_segment_from_data_days(tmp_path, days, segment):
    rs = ruleset(tmp_path, campaign("seg", "event: sms_mo", f"audience: {{where: {{segment: {segment}}}}}"))
    e = Engine(rs)
    day = 24 * 60
    now = 40 * day
    usage = [rec(Kind.DATA_USAGE, now - d * day, octets=10_000) for d in sorted(days, reverse=True)]
    assert fired(e, *usage, rec(Kind.MO_SMS, now)) == [("seg", "sms_mo", now)]
    other = {"silent": "loyal", "trial": "silent", "active": "trial", "loyal": "active"}[segment]
    rs2 = ruleset(tmp_path, campaign("seg", "event: sms_mo", f"audience: {{where: {{segment: {other}}}}}"))
    e = Engine(rs2)
    assert fired(e, *usage, rec(Kind.MO_SMS, now)) == []


def test_audience_lists_attributes_exclusions_and_handsets(tmp_path):
    from touchpoint.control.lists import ListStore, import_list, import_tac
    data = tmp_path / "data"
    (tmp_path / "members.csv").write_text(
        "msisdn,imsi,age,plan\n"
        "8613800000001,,30,gold\n"               # by MSISDN only
        ",460001000000002,12,gold\n"             # too young
        ",460001000000003,,gold\n"               # age unknown: fails every test on it
        ",460001000000004,40,test\n"             # excluded by where
        ",460001000000005,50,gold\n")            # excluded by the staff list
    (tmp_path / "staff.csv").write_text("imsi\n460001000000005\n")
    (tmp_path / "tac.csv").write_text("tac,brand,model,capabilities\n35693803,华为,Mate,4g;5g\n86012345,小米,Note,4g\n")
    import_list(data, "members", tmp_path / "members.csv")
    import_list(data, "staff", tmp_path / "staff.csv")
    import_tac(data, tmp_path / "tac.csv")
    (tmp_path / "r").mkdir()
    rs = ruleset(tmp_path / "r",
                 campaign("adults", "event: sms_mo", "audience: {lists: [members], where: {age: {gte: 18}}}\n"
                                                     "exclude: {lists: [staff], where: {plan: test}}"),
                 campaign("not-18", "event: sms_mo", "audience: {lists: [members], where: {age: {not: 18}}}"),
                 campaign("5g", "event: imei_change", "audience: {where: {handset: {has: 5g}, handset_brand: 华为}}"))
    e = Engine(rs, ListStore(data))
    subs = [rec(Kind.MO_SMS, i, imsi=f"46000100000000{i}", msisdn=f"86138000000{i:02d}") for i in range(1, 7)]
    got = [(t.campaign, t.imsi[-1]) for t in e.process(np.concatenate(subs))]
    # 1 adult; 2 too young; 3 age unknown (fails `not` too); 4 excluded by plan; 5 staff; 6 no member
    assert got == [("adults", "1"), ("not-18", "1"), ("not-18", "2"), ("not-18", "4"), ("not-18", "5")]
    got = [(t.campaign, t.fields) for t in e.process(np.concatenate([
        rec(Kind.CHECK_IMEI, 10, imei=IMEI_B + "0"), rec(Kind.CHECK_IMEI, 11, imei=IMEI_A + "0")]))]
    assert got == [("5g", {"new_handset": True, "old_tac": IMEI_B[:8], "tac": IMEI_A[:8],
                           "handset": 0b1100, "handset_brand": "华为"})]      # 4g, 5g


def test_a_reimported_list_is_used_at_once(tmp_path):
    """List rows are cached per subscriber; a re-import (seen by ListStore.reload) drops the cache."""
    from touchpoint.control.lists import ListStore, import_list
    data = tmp_path / "data"
    (tmp_path / "a.csv").write_text("imsi\n460001000000001\n")
    (tmp_path / "b.csv").write_text("imsi\n460001000000002\n")
    import_list(data, "vip", tmp_path / "a.csv")
    (tmp_path / "r").mkdir()
    store = ListStore(data)
    e = Engine(ruleset(tmp_path / "r", campaign("vip", "event: sms_mo", "audience: {lists: [vip]}")), store)
    sms = lambda t: np.concatenate([rec(Kind.MO_SMS, t, imsi=f"46000100000000{i}") for i in (1, 2)])
    assert [t.imsi[-1] for t in e.process(sms(0))] == ["1"]
    import_list(data, "vip", tmp_path / "b.csv")
    assert [t.imsi[-1] for t in e.process(sms(1))] == ["1"]          # until the engine reloads
    store.reload()
    assert [t.imsi[-1] for t in e.process(sms(2))] == ["2"]


def test_a_subscriber_whose_msisdn_is_learned_later_joins_a_list_keyed_by_msisdn(tmp_path):
    """The list-row cache remembers the identities it looked up by: an IMSI-only subscriber (a GTP
    session) is not in an MSISDN list until a dialogue tells its MSISDN, and then it is."""
    from touchpoint.control.lists import ListStore, import_list
    data = tmp_path / "data"
    (tmp_path / "vip.csv").write_text(f"msisdn\n{MSISDN}\n")
    import_list(data, "vip", tmp_path / "vip.csv")
    (tmp_path / "r").mkdir()
    e = Engine(ruleset(tmp_path / "r", campaign("vip", "event: sms_mo", "audience: {lists: [vip]}")), ListStore(data))
    assert fired(e, rec(Kind.MO_SMS, 0)) == []                              # IMSI only: not known to be in it
    assert fired(e, rec(Kind.INSERT_SUB_DATA, 1, msisdn=MSISDN)) == []     # the HLR tells the MSISDN
    assert fired(e, rec(Kind.MO_SMS, 2)) == [("vip", "sms_mo", 2)]


def test_segment_is_judged_at_the_event(tmp_path):
    """A silent subscriber's first data session: its usage arriving later in the same batch does
    not make it `trial` at the moment of the event."""
    rs = ruleset(tmp_path, campaign("first-data", "event: data_session_start", "audience: {where: {segment: silent}}"))
    e = Engine(rs)
    assert fired(e, rec(Kind.LOCATION_UPDATE, 0), rec(Kind.SESSION_CREATE, 5),
                 rec(Kind.DATA_USAGE, 6, octets=10**6)) == [("first-data", "data_session_start", 5)]
    assert fired(e, rec(Kind.SESSION_CREATE, 60)) == []          # now a trial user
