"""Campaign rules: the examples, every kind of mistake an operator makes, and the compiled masks."""
import os
import re
import tempfile
import textwrap
from datetime import datetime, timezone

import numpy as np
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from touchpoint.control import fields as F
from touchpoint.control.cli import main
from touchpoint.control.rules import load
from touchpoint.probe.record import RECORD_DTYPE, empty, pack

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RULES = os.path.join(ROOT, "rules")

PLACES = """\
home: ["46000", "46002"]
regions:
  beijing: {node: ["8613900010*"], lac: [[4096, 4351]]}
  shanghai: {node: ["861390002100"], tac: [[20480, 20735]]}
  abroad: {mccmnc: {not: ["46000", "46002"]}}
areas:
  wangfujing: {cells: [[4100, 10001]], ranges: [[4100, 10100, 10199]]}
  sanlitun: {ranges: [[4101, 1, 63]]}
hotlines:
  service: ["10086", "114"]
"""

CAMPAIGN = """\
id: {id}
status: active
trigger:
  event: imei_change
  where:
    new_handset: true
message:
  text: 新机到手！
"""


def ns(t: datetime) -> int:
    return int(t.timestamp()) * 10**9


def write(tmp_path, files: dict) -> str:
    """A new rules directory under tmp_path with these files."""
    d = tempfile.mkdtemp(dir=tmp_path)
    for name, text in files.items():
        with open(os.path.join(d, name), "w", encoding="utf-8") as f:
            f.write(textwrap.dedent(text))
    return d


def errors(tmp_path, files: dict, places=PLACES) -> list:
    """The errors of a rules directory with these files, as (file name, line, field, why)."""
    if places is not None:
        files = {"places.yaml": places, **files}
    rs = load(write(tmp_path, files))
    return [(os.path.basename(e.file), e.line, e.field, e.why) for e in rs.errors]


def one_error(tmp_path, text: str, places=PLACES):
    errs = errors(tmp_path, {"c.yaml": text}, places)
    assert len(errs) == 1, errs
    return errs[0]


def one_error_each(tmp_path, cases: dict) -> None:
    """Each extra line added to CAMPAIGN gives one error: {extra: (line, field, part of why)}."""
    for extra, (line, field, why) in cases.items():
        e = one_error(tmp_path, CAMPAIGN.format(id="a") + extra + "\n")
        assert e[1:3] == (line + 1, field) and why in e[3], (extra, e)


def campaign(tmp_path, text: str, places=PLACES):
    rs = load(write(tmp_path, {"c.yaml": text, **({"places.yaml": places} if places else {})}))
    assert rs.ok, [str(e) for e in rs.errors]
    return rs.campaigns[0]


# --- the examples ----------------------------------------------------------------------------------

def test_examples_pass():
    rs = load(RULES)
    assert rs.ok, [str(e) for e in rs.errors]
    events = {c.trigger.event if c.trigger else "schedule" for c in rs.campaigns}
    assert {"imei_change", "roaming_in", "area_dwell", "hotline_call", "cf_then_power_on", "power_on",
            "data_session_start", "rat_change", "schedule"} <= events
    assert {c.status for c in rs.campaigns} == {"active", "draft", "paused"}
    assert all(re.search(r"[\u4e00-\u9fff]", c.message.text or c.message.subject) for c in rs.campaigns)
    assert [r.name for r in rs.places.regions][:2] == ["beijing", "shanghai"]
    mms = {c.id: c for c in rs.campaigns if c.message.channel == "mms"}     # the MMS playbook's groups, the seed
    assert set(mms) == {"mms-campus", "mms-office", "mms-airport", "mms-seed"}
    assert all(c.schedule and c.message.slides[0].image.startswith(b"\x89PNG") for c in mms.values())
    assert all(bool(c.replies) != bool(c.forwards) for c in mms.values())      # the seed asks for no reply
    hot = next(c for c in rs.campaigns if c.trigger and c.trigger.event == "hotline_call")
    assert set(hot.trigger.numbers) == {"10086", "114"}


def test_cli_check_examples():
    res = CliRunner().invoke(main, ["rules", "check", RULES])
    assert res.exit_code == 0, res.output
    assert re.search(r"ok: \d+ campaigns \(\d+ active, 1 draft, 1 paused\); places: 4 regions, 7 areas", res.output)


def test_cli_check_reports_errors(tmp_path):
    d = write(tmp_path, {"a.yaml": CAMPAIGN.format(id="a").replace("new_handset: true", "new_handset: yes"),
                         "b.yaml": "id: b\ntrigger: {event: power_on}\nmessage: {text: hi}\nwindow: 2 days\n"})
    res = CliRunner().invoke(main, ["rules", "check", d])
    assert res.exit_code == 1
    lines = res.output.splitlines()
    assert lines[0] == f"{d}/a.yaml:6: trigger.where.new_handset: 'yes' is not true or false"
    assert lines[1].startswith(f"{d}/b.yaml:4: window: '2 days' is not a duration")
    assert lines[2].startswith("2 errors in 2 files")
    assert CliRunner().invoke(main, ["rules", "check", str(tmp_path / "nowhere")]).exit_code == 2


# --- mistakes, each with its file, line and field ----------------------------------------------------------

def test_malformed_yaml_has_its_line(tmp_path):
    f, line, field, why = one_error(tmp_path, "id: a\nstatus: active\ntrigger:\n  event: [power_on\nmessage: x\n")
    assert (f, field) == ("c.yaml", "syntax") and line in (4, 5) and why
    f, line, field, why = one_error(tmp_path, "id: a\nmessage:\n  text: \"*100#\n")
    assert (line, field) == (4, "syntax")
    assert one_error(tmp_path, "id: a\n  bad indent: 1\n")[1:3] == (2, "syntax")


def test_unreadable_files(tmp_path):
    (tmp_path / "places.yaml").write_text(PLACES)
    (tmp_path / "latin1.yaml").write_bytes(b"id: a\nname: caf\xe9\n")
    (tmp_path / "empty.yaml").write_text("# nothing\n")
    (tmp_path / "two.yaml").write_text(CAMPAIGN.format(id="two") + "---\nid: three\n")
    (tmp_path / "list.yaml").write_text("- id: x\n")
    (tmp_path / "nul.yaml").write_text("id: a\nname: \x00\n")
    os.mkdir(tmp_path / "lists")
    (tmp_path / "lists" / "ignored.yaml").write_text("not: [a rule")
    got = {os.path.basename(e.file): (e.line, e.field, e.why) for e in load(str(tmp_path)).errors}
    assert got["latin1.yaml"][:2] == (2, "") and "not UTF-8" in got["latin1.yaml"][2]
    assert got["empty.yaml"] == (0, "", "empty file")
    assert got["two.yaml"][0] == 10 and "one campaign per file" in got["two.yaml"][2]
    assert got["list.yaml"][:2] == (1, "(file)")
    assert got["nul.yaml"][:2] == (2, "syntax")
    assert set(got) == {"latin1.yaml", "empty.yaml", "two.yaml", "list.yaml", "nul.yaml"}
    missing = load(str(tmp_path / "nowhere"))
    assert not missing.ok and "No such file" in str(missing.errors[0])


def test_unknown_keys_and_fields_are_suggested(tmp_path):
    assert one_error(tmp_path, CAMPAIGN.format(id="a") + "holdot: 10%\n")[1:3] == (9, "holdot")
    assert "did you mean 'holdout'" in one_error(tmp_path, CAMPAIGN.format(id="a") + "holdot: 10%\n")[3]
    e = one_error(tmp_path, CAMPAIGN.format(id="a").replace("new_handset", "new_handst"))
    assert e[1:3] == (6, "trigger.where.new_handst") and "did you mean 'new_handset'" in e[3]
    e = one_error(tmp_path, CAMPAIGN.format(id="a").replace("new_handset", "region"))
    assert e[2] == "trigger.where.region" and "roaming_in" in e[3]
    e = one_error(tmp_path, CAMPAIGN.format(id="a") + "audience:\n  where:\n    handest: {has: 5g}\n")
    assert e[1:3] == (11, "audience.where.handest") and "did you mean 'handset'" in e[3]
    e = one_error(tmp_path, CAMPAIGN.format(id="a") + "audience:\n  where:\n    rat: nr\n")
    assert e[2] == "audience.where.rat" and "trigger.where" in e[3]
    e = one_error(tmp_path, CAMPAIGN.format(id="a").replace("event: imei_change", "event: imei_chnage"))
    assert e[1:3] == (4, "trigger.event") and "did you mean 'imei_change'" in e[3]
    e = one_error(tmp_path, "id: a\ntrigger:\n  event: power_on\n  minutes: 5\nmessage: {text: x}\n")
    assert e[1:3] == (4, "trigger.minutes") and "unknown key" in e[3]
    e = one_error(tmp_path, CAMPAIGN.format(id="a") + "message: {text: again}\n")
    assert e[1:3] == (9, "message") and "given twice (first at line 7)" in e[3]


def test_unknown_operators(tmp_path):
    e = one_error(tmp_path, CAMPAIGN.format(id="a") + "audience:\n  where:\n    age: {gtee: 18}\n")
    assert e[1:3] == (11, "audience.where.age.gtee") and "did you mean 'gte'" in e[3]
    e = one_error(tmp_path, CAMPAIGN.format(id="a").replace("new_handset: true", "rat: {in: [nr, eutran]}"))
    assert e[1:3] == (6, "trigger.where.rat.in") and "write the list itself" in e[3]
    e = one_error(tmp_path, CAMPAIGN.format(id="a").replace("new_handset: true", "rat: {gt: eutran}"))
    assert e[2] == "trigger.where.rat.gt" and "compares numbers" in e[3]
    e = one_error(tmp_path, CAMPAIGN.format(id="a").replace("new_handset: true", "apn: {has: cmnet}"))
    assert e[2] == "trigger.where.apn.has" and "capability" in e[3]


def test_wrong_types(tmp_path):
    cases = {
        "new_handset: yes": ("trigger.where.new_handset", "'yes' is not true or false"),
        "op: two": ("trigger.where.op", "'two' is not a whole number"),
        "msisdn: '86 138'": ("trigger.where.msisdn", "is not a string of digits"),
        "msisdn: '*'": ("trigger.where.msisdn", "'*' alone matches everything"),
        "mcc: '46000'": ("trigger.where.mcc", "has more than 4 digits"),
        "rat: lte": ("trigger.where.rat", "did you mean 'ltem'"),
        "rat: 4g": ("trigger.where.rat", "is not a rat (utran, geran"),
        "ss_code: cfuu": ("trigger.where.ss_code", "did you mean"),
        "tac: {gt: 5}": ("trigger.where.tac.gt", "compares numbers; tac is a digits field"),
        "octets: [1, big]": ("trigger.where.octets[1]", "'big' is not a whole number"),
        "flags: error": ("trigger.where.flags", "test it with {has:"),
        "flags: {has: eror}": ("trigger.where.flags.has", "did you mean 'error'"),
        "rat: {not: {a: 1}}": ("trigger.where.rat.not", "not a mapping"),
        "rat: []": ("trigger.where.rat", "empty list"),
        "rat:": ("trigger.where.rat", "no value given"),
        "kind: !!python/name:os.system x": ("trigger.where.kind", "YAML tags"),
    }
    for cond, (field, why) in cases.items():
        e = one_error(tmp_path, CAMPAIGN.format(id="a").replace("new_handset: true", cond))
        assert e[1:3] == (6, field) and why in e[3], (cond, e)


def test_durations_percentages_dates(tmp_path):
    cases = {
        "window: 48": (8, "window", "is not a duration"),
        "window: 0h": (8, "window", "longer than 0"),
        "window: 2w": (8, "window", "is not a duration"),
        "holdout: 10": (8, "holdout", "is not a percentage"),
        "holdout: 100%": (8, "holdout", "below 100%"),
        "holdout: -5%": (8, "holdout", "is not a percentage"),
        "priority: high": (8, "priority", "is not a whole number"),
        "valid: {from: 2026-13-01}": (8, "valid.from", "is not a date"),
        "valid: {from: 2026-12-01, until: 2026-11-30}": (8, "valid.until", "is not after valid.from"),
        "valid: {since: 2026-12-01}": (8, "valid.since", "unknown key"),
        "send: manual": (8, "send", "is not one of auto, approve"),
        "goal: {event: power_on}": (8, "goal.within", "missing"),
        "goal: {event: power_on, within: 1 week}": (8, "goal.within", "is not a duration"),
    }
    one_error_each(tmp_path, cases)
    e = one_error(tmp_path, CAMPAIGN.format(id="a").replace("status: active", "status: on"))
    assert e[1:] == (2, "status", "'on' is not one of draft, active, paused")
    c = campaign(tmp_path, CAMPAIGN.format(id="a") + "valid: {from: 2026-11-01, until: '2026-11-30T08:00+08:00'}\n"
                           "window: 90m\nholdout: 12.5%\n")
    assert c.valid_from_ns == ns(datetime(2026, 11, 1, tzinfo=timezone.utc))
    assert c.valid_until_ns == ns(datetime(2026, 11, 30, tzinfo=timezone.utc))    # 08:00 in UTC+8
    assert c.window_s == 5400 and c.holdout == 0.125
    whole_day = campaign(tmp_path, CAMPAIGN.format(id="a") + "valid: {until: 2026-11-30}\n")
    end = ns(datetime(2026, 12, 1, tzinfo=timezone.utc))
    assert whole_day.valid_until_ns == end and whole_day.valid_from_ns is None
    assert list(whole_day.valid_at([end - 1, end])) == [True, False]


def test_numbers_times_and_durations_are_bounded(tmp_path):
    """What passes the checker fits the engine's int64 nanoseconds and SQLite's INTEGER: each of
    these once passed, then crashed the engine when the campaign first fired."""
    cases = {
        "priority: 99999999999999999999": (8, "priority", "beyond"),
        "priority: 1000000000000000000": (8, "priority", "beyond"),
        "window: 300000d": (8, "window", "longer than 3650d"),
        "cooldown: 99999999999999999999d": (8, "cooldown", "too long a duration"),
        "goal: {event: power_on, within: 3651d}": (8, "goal.within", "longer than 3650d"),
        "valid: {until: 9999-12-31}": (8, "valid.until", "between 1970 and 2200"),
        "valid: {from: '1969-12-31T23:00'}": (8, "valid.from", "between 1970 and 2200"),
    }
    one_error_each(tmp_path, cases)
    c = campaign(tmp_path, CAMPAIGN.format(id="a") + "window: 3650d\npriority: -999999999999999999\n")
    assert c.window_s == 3650 * 86400 and c.priority == -(10**18 - 1)
    e = one_error(tmp_path, CAMPAIGN.format(id="a").replace("new_handset: true", "octets: {gte: 99999999999999999999}"))
    assert e[2] == "trigger.where.octets.gte" and "beyond" in e[3], e


def test_deep_or_huge_yaml_is_an_error_with_its_line(tmp_path):
    """A kilobyte of brackets once exhausted Python's stack in the YAML composer (a RecursionError,
    not a YAMLError): a traceback from `rules check`, a dead engine on SIGHUP."""
    deep = "id: a\ntrigger: {event: power_on}\nmessage:\n  x: " + "[" * 500 + "]" * 500 + "\n"
    assert one_error(tmp_path, deep, places=None) == ("c.yaml", 4, "syntax", "nested more than 64 levels deep")
    nested = CAMPAIGN.format(id="a") + "\n".join("  " * i + "a:" for i in range(1, 70)) + " 1\n"
    e = one_error(tmp_path, nested, places=None)
    assert e[2:] == ("syntax", "nested more than 64 levels deep") and e[1] == 8 + 64, e
    big = CAMPAIGN.format(id="a") + "# " + "x" * (1 << 20) + "\n"
    assert one_error(tmp_path, big, places=None)[1:] == (0, "", "larger than 1 MiB: not a rule file")


def test_fifos_and_broken_links_among_rule_files_are_errors(tmp_path):
    """They were skipped without a word: a campaign gone missing behind a broken link; a fifo
    named like a rule file must never be opened (the reader would wait for ever)."""
    d = tmp_path / "r"
    d.mkdir()
    (d / "a.yaml").write_text(CAMPAIGN.format(id="a"))
    os.symlink("gone.yaml", d / "b.yaml")
    os.mkfifo(d / "c.yaml")
    (d / "sub.yaml").mkdir()                                   # a directory: not a rule file, as before
    rs = load(str(d))
    assert [(os.path.basename(e.file), e.why) for e in rs.errors] == [
        ("b.yaml", "a broken symbolic link (to gone.yaml): not read"),
        ("c.yaml", "not a regular file (a fifo, a socket or a device): not read")]
    assert [c.id for c in rs.campaigns] == ["a"]


def test_list_values_never_bring_control_characters_into_a_message():
    from touchpoint.control.campaigns import Message
    assert Message("", "{brand} 好", ("brand",)).render({"brand": "Apple\x1b[2J\x00\r\n\x85 12"}) == "Apple[2J 12 好"


def test_message_and_trigger_settings(tmp_path):
    e = one_error(tmp_path, CAMPAIGN.format(id="a").replace("新机到手！", "'{brand!r} 好'"))
    assert e[2] == "message.text" and "is not a field name" in e[3]
    text = CAMPAIGN.format(id="a").replace("message:\n  text: 新机到手！", "message: {channel: fax, text: x}")
    e = one_error(tmp_path, text)
    assert e[2] == "message.channel" and "sms" in e[3]
    c = campaign(
        tmp_path,
        CAMPAIGN.format(id="a").replace("新机到手！", "'{handset_brand}新机到手，{handset_brand}用户专享 {{5G}}'"),
    )
    assert c.message.fields == ("handset_brand",) and c.message.channel == ""     # "": the policy's channel
    e = one_error(tmp_path, "id: a\ntrigger:\n  event: hotline_call\nmessage: {text: x}\n")
    assert e[1:3] == (3, "trigger") and "needs hotlines" in e[3]
    text = "id: a\ntrigger:\n  event: hotline_call\n  hotlines: [servise]\nmessage: {text: x}\n"
    e = one_error(tmp_path, text)
    assert e[1:3] == (4, "trigger.hotlines[0]") and "did you mean 'service'" in e[3]
    e = one_error(tmp_path, "id: a\ntrigger: {event: area_dwell, minutes: 0}\nmessage: {text: x}\n")
    assert e[2] == "trigger.minutes" and "below 1" in e[3]
    c = campaign(tmp_path, "id: a\ntrigger: {event: cf_then_power_on}\nmessage: {text: x}\n")
    assert c.trigger.within_s == 72 * 3600 and c.window_s == 48 * 3600 and c.status == "draft"


def test_place_names(tmp_path):
    e = one_error(tmp_path, "id: a\ntrigger: {event: roaming_in, where: {region: shanghia}}\nmessage: {text: x}\n")
    assert e[1:3] == (2, "trigger.where.region") and "did you mean 'shanghai'" in e[3]
    e = one_error(tmp_path, "id: a\ntrigger: {event: area_enter, where: {area: wangfujing}}\nmessage: {text: x}\n",
                  places=None)
    assert e[2] == "trigger.where.area" and "places.yaml, which is missing" in e[3]
    c = campaign(tmp_path, "id: a\ntrigger: {event: roaming_in, where: {region: shanghai, from_region: [beijing]}}\n"
                           "message: {text: x}\n")
    region = np.array([1, 2, 2, 0, 3])
    from_region = np.array([0, 1, 3, 1, 1])
    cols = {"region": region, "from_region": from_region}
    assert list(c.trigger.mask(cols.__getitem__)) == [False, True, False, False, False]


def test_duplicate_ids(tmp_path):
    d = write(tmp_path, {"a.yaml": CAMPAIGN.format(id="same"), "b.yaml": "\n" + CAMPAIGN.format(id="same"),
                         "c.yaml": CAMPAIGN.format(id="Bad Id")})
    errs = [str(e) for e in load(d).errors]
    assert errs == [f"{d}/b.yaml:2: id: 'same' is already the id of the campaign in {d}/a.yaml:1",
                    f"{d}/c.yaml:1: id: 'Bad Id' is not an id of lower-case letters, digits, _ and -"]


def test_bad_places(tmp_path):
    bad = """\
    home: ["46000", "4600"]
    regions:
      beijing: {lac: [[4351, 4096]], nodes: ["8613*"]}
      shanghai: {tac: [[0, 20000000]]}
      nowhere: {}
      Wuhan: {node: ["8627*"]}
      abroad: {mccmnc: {not: ["460x0"]}}
    areas:
      wangfujing: {cells: [[4100, 10001, 5], [4100, 10001]], ranges: [[4100, 10100]]}
      mall: {ranges: [[4100, 10000, 10001]]}
      park: {cells: [[70000, 1]]}
    hotlines:
      service: ["10086", "10o86"]
    zones: {}
    """
    got = sorted(e[1:] for e in errors(tmp_path, {}, places=bad))
    expect = [
        (1, "home[1]", "'4600' is not an MCC+MNC of 5 or 6 digits"),
        (3, "regions.beijing.lac[0]", "first lac 4351 is above last lac 4096"),
        (3, "regions.beijing.nodes", "unknown key: did you mean 'node'? (known: node, mccmnc, lac, tac)"),
        (4, "regions.shanghai.tac[0]", "20000000 is out of range (0 to 16777215)"),
        (5, "regions.nowhere", "a region needs node, mccmnc, lac or tac"),
        (6, "regions", "'Wuhan' is not a name of lower-case letters, digits, _ and -"),
        (7, "regions.abroad.mccmnc[0]", "'460x0' is not a string of digits"),
        (9, "areas.wangfujing.cells[0]", "must be [lac, cell]"),
        (9, "areas.wangfujing.ranges[0]", "must be [lac, first cell, last cell]"),
        (10, "areas.mall", "shares cells with area 'wangfujing' (line 9): LAC/TAC 4100, cell 10001"),
        (11, "areas.park.cells[0]", "70000 is out of range (0 to 65535)"),
        (13, "hotlines.service[1]", "'10o86' is not a string of digits (a trailing * makes a prefix)"),
        (14, "zones", "unknown key (known: home, regions, areas, hotlines)"),
    ]
    assert got == sorted(expect)


def test_two_areas_with_the_same_cell_are_an_error_not_a_crash(tmp_path):
    twice = "areas:\n  mall: {cells: [[4100, 501]]}\n  shop: {cells: [[4100, 501]]}\n"
    assert [e[1:] for e in errors(tmp_path, {}, places=twice)] == [
        (3, "areas.shop", "shares cells with area 'mall' (line 2): LAC/TAC 4100, cell 501")]


# --- places: regions and areas as lookups ---------------------------------------------------------

def test_region_and_area_lookup(tmp_path):
    places = load(write(tmp_path, {"places.yaml": PLACES})).places
    r = empty(6)
    r["node"] = pack(["861390001005", "861390002100", "", "", "", "447700900123"])
    r["mcc"][2:6] = pack(["460", "460", "234", "234"], 4)
    r["mnc"][2:6] = pack(["00", "00", "15", "15"], 4)
    r["lac_tac"][2:5] = [4100, 20500, 4100]
    r["loc_type"][2:5] = [1, 4, 1]                  # CGI, TAI, CGI
    # beijing by node, shanghai by node, beijing by LAC, shanghai by TAC, abroad (its LAC 4100 is not ours)
    assert list(places.region_of(r)) == [1, 2, 1, 2, 3, 3]
    assert places.region_index("abroad") == 3 and places.area_index("sanlitun") == 2
    lac = np.array([4100, 4100, 4100, 4100, 4101, 4101, 4102, 4100])
    cell = np.array([10001, 10002, 10100, 10199, 63, 64, 5, 10200])
    assert list(places.area_of(lac, cell)) == [1, 0, 1, 1, 2, 0, 0, 0]
    assert places.area_table.flags.writeable is False and list(places.area_table["area"]) == [1, 1, 2]
    assert list(places.range_table["tac"]) == [False, True]
    assert list(places.network_table["negate"]) == [True, True]
    assert len(load(write(tmp_path / "..", {})).places.area_of([1], [2])) == 1


# --- masks agree with a plain evaluation of the rule text ------------------------------------------------

DIG = st.text("0186", min_size=1, max_size=5)
MCC = st.text("046", min_size=1, max_size=3)


def yaml_test(values, compare=False):
    """A YAML test: a value, a list, {not: ...} and, for numbers, comparisons."""
    one_or_list = st.one_of(values, st.lists(values, min_size=1, max_size=3))
    forms = [one_or_list, st.fixed_dictionaries({"not": one_or_list})]
    if compare:
        forms.append(st.dictionaries(st.sampled_from(["gt", "gte", "lt", "lte"]), st.integers(-2, 20), min_size=1))
    return st.one_of(*forms)


TRIGGER_TESTS = {
    "msisdn": yaml_test(st.one_of(DIG, DIG.map(lambda d: d + "*"))),
    "mcc": yaml_test(st.one_of(MCC, MCC.map(lambda d: d + "*"))),
    "rat": yaml_test(st.sampled_from(["eutran", "nr", "utran", "geran"])),
    "proto": yaml_test(st.sampled_from(list(F.PROTOS))),
    "octets": yaml_test(st.integers(0, 20), compare=True),
    "apn": yaml_test(st.sampled_from(["cmnet", "CMWAP", "ims", "cm*"])),
    "flags": st.fixed_dictionaries({"has": st.lists(st.sampled_from(["request", "error", "partial"]), min_size=1,
                                                    max_size=2, unique=True)}),
    "roaming": yaml_test(st.booleans()),
}
AUDIENCE_TESTS = {
    "handset": st.fixed_dictionaries({"has": st.sampled_from(["5g", "volte", "nfc"])}),
    "segment": yaml_test(st.sampled_from(list(F.SEGMENTS))),
    "age": yaml_test(st.integers(-2, 30), compare=True),
    "plan": yaml_test(st.sampled_from(["gold", "silver", "go*"])),
    "handset_brand": yaml_test(st.sampled_from(["Huawei", "xiaomi", "hua*"])),
}


def random_columns(seed: int, n: int = 64) -> tuple:
    """Columns as the engine hands them over, and the same rows as plain Python values."""
    rng = np.random.default_rng(seed)
    digits = lambda alphabet, hi: ["".join(rng.choice(list(alphabet), rng.integers(0, hi))) for _ in range(n)]
    py = {
        "msisdn": digits("01867", 8), "mcc": digits("0467", 4),
        "rat": list(rng.integers(0, 12, n)), "proto": list(rng.integers(0, 7, n)),
        "octets": list(rng.integers(0, 22, n)),
        "apn": list(rng.choice(["cmnet", "CMNET", "cmwap", "ims", "", "cmnet.mnc000"], n)),
        "flags": list(rng.integers(0, 128, n)), "roaming": list(rng.integers(0, 2, n).astype(bool)),
        "handset": list(rng.integers(0, 1 << 11, n)), "segment": list(rng.integers(0, 5, n)),
        "age": list(rng.integers(-3, 32, n)), "plan": list(rng.choice(["gold", "silver", "good", "", "Gold"], n)),
        "handset_brand": list(rng.choice(["HUAWEI", "Huawei", "Xiaomi", "Apple", ""], n)),
    }
    rec = empty(n)
    rec["msisdn"], rec["mcc"] = pack(py["msisdn"]), pack(py["mcc"], 4)
    for k in ("rat", "proto", "octets", "flags"):
        rec[k] = py[k]
    rec["apn"] = [a.encode() for a in py["apn"]]
    cols = {k: rec[k] for k in ("kind", "msisdn", "mcc", "rat", "proto", "octets", "apn", "flags")}
    cols.update(roaming=np.array(py["roaming"]), handset=np.array(py["handset"], np.uint32),
                segment=np.array(py["segment"], np.uint8), age=np.array(py["age"], np.int64),
                plan=np.array(py["plan"]), handset_brand=np.array(py["handset_brand"], object))
    return cols, py


def plain_holds(name, test, value) -> bool:
    """The rule text evaluated on one Python value, straight from docs/rules.md."""
    f = {**F.RECORD_FIELDS, **F.STATE_FIELDS, **F.AUDIENCE_FIELDS}.get(name)

    def equal(t):
        if f is None or f.type == F.TEXT:                      # a list column or a text
            v, t = (value.lower(), t.lower()) if f is not None and f.fold else (value, t)
            if isinstance(t, str):
                return v.startswith(t[:-1]) if t.endswith("*") else v == t
            return v == t
        if f.type == F.DIGITS:
            return value.startswith(t[:-1]) if t.endswith("*") else value == t
        if f.type == F.ENUM:
            return value == f.names[t]
        return value == t

    def one_of(t):
        return any(equal(x) for x in t) if isinstance(t, list) else equal(t)

    if not isinstance(test, dict):
        return one_of(test)
    ops = {"not": lambda t: not one_of(t), "gt": lambda t: value > t, "gte": lambda t: value >= t,
           "lt": lambda t: value < t, "lte": lambda t: value <= t,
           "has": lambda t: all(value & f.names[c] for c in (t if isinstance(t, list) else [t]))}
    return all(ops[op](t) for op, t in test.items())


@settings(max_examples=150, deadline=None)
@given(trigger=st.dictionaries(st.sampled_from(list(TRIGGER_TESTS)), st.none(), max_size=4).flatmap(
           lambda keys: st.fixed_dictionaries({k: TRIGGER_TESTS[k] for k in keys})),
       audience=st.dictionaries(st.sampled_from(list(AUDIENCE_TESTS)), st.none(), min_size=1, max_size=3).flatmap(
           lambda keys: st.fixed_dictionaries({k: AUDIENCE_TESTS[k] for k in keys})),
       seed=st.integers(0, 2**32 - 1))
def test_masks_agree_with_plain_evaluation(tmp_path_factory, trigger, audience, seed):
    doc = {"id": "p", "trigger": {"event": "record", "where": trigger}, "audience": {"where": audience},
           "message": {"text": "测试"}}
    d = tmp_path_factory.mktemp("rules")
    (d / "p.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    rs = load(str(d))
    assert rs.ok, [str(e) for e in rs.errors]
    c = rs.campaigns[0]
    cols, py = random_columns(seed)
    n = len(py["msisdn"])
    for where, tests in ((c.trigger.where, trigger), (c.audience.where, audience)):
        got = where.mask(cols.__getitem__)
        want = [all(plain_holds(k, t, py[k][i]) for k, t in tests.items()) for i in range(n)]
        assert got.dtype == bool and list(got) == want, (tests, where.text)
        assert where.fields == set(tests)


def test_field_names_and_trigger_masks(tmp_path):
    c = campaign(tmp_path, CAMPAIGN.format(id="a") + "audience: {lists: [postpaid, vip], where: {age: {gte: 18}}}\n")
    assert c.field_names() == ("new_handset", "old_tac", "tac", "age")
    assert list(c.trigger.mask({"kind": np.zeros(3), "new_handset": np.array([1, 0, 1], bool)}.__getitem__)) \
        == [True, False, True]
    always = campaign(tmp_path, "id: a\ntrigger: {event: power_off}\nmessage: {text: x}\n")
    assert list(always.trigger.mask({"kind": np.zeros(2)}.__getitem__)) == [True, True]


def test_known_lists_are_checked(tmp_path):
    d = write(tmp_path, {"c.yaml": CAMPAIGN.format(id="a") + "audience:\n  lists: [postpaid, prepiad]\n"
                                                             "  where: {agee: {gte: 18}, arpu: {gt: 50}}\n"})
    got = [(e.line, e.field, e.why) for e in load(d, lists={"postpaid": ["age", "arpu"], "prepaid": ["age"]}).errors]
    assert got == [(10, "audience.lists", "no list 'prepiad' is imported: did you mean 'prepaid'?"),
                   (11, "audience.where.agee", "unknown field: did you mean 'age'?")]
    assert load(d).ok                     # without the lists, any column name may be a list's


def test_never_raises_on_garbage(tmp_path):
    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.sampled_from(list("ab:-[]{}!&*'\" \n\t#|>%@`,?0123456789新\x00") + [
        "id: ", "trigger: ", "where: ", "event: ", "rat: ", "regions: ", "areas: ", "  ", "\n  "]),
        max_size=40).map("".join),
        st.sampled_from(["c.yaml", "places.yaml"]))
    def run(text, name):
        d = tmp_path / "g"
        d.mkdir(exist_ok=True)
        for f in d.iterdir():
            f.unlink()
        (d / name).write_text(text, encoding="utf-8")
        rs = load(str(d))
        assert all(isinstance(e.line, int) and e.file.endswith(name) for e in rs.errors)
    run()


def test_record_fields_follow_the_record():
    """Every record field is a condition field unless it is plumbing: a field appended to the record
    is at once something rules can test."""
    named = set(F.RECORD_FIELDS) | F.NOT_CONDITIONS
    assert {n for n in RECORD_DTYPE.names if not n.startswith("pad")} == named
    assert F.RECORD_FIELDS["kind"].names["mt_sms"] == 10 and F.RATS["nr"] == 10 and F.SS_CODES["cfu"] == 0x21
    assert F.RECORD_FIELDS["mcc"].width == 4 and F.RECORD_FIELDS["imsi"].type == F.DIGITS
    assert set(F.EVENTS) == {e.lower() for e in (
        "imei_change roaming_in roaming_out inbound_roamer area_enter area_dwell power_off power_on "
        "cf_then_power_on hotline_call sms_mo sms_mt mms_mt ussd data_session_start rat_change record").split()}


def test_spec_examples_pass(tmp_path):
    """The campaign and places.yaml shown in docs/rules.md are valid as written."""
    with open(os.path.join(ROOT, "docs", "rules.md"), encoding="utf-8") as f:
        rules_doc = f.read()
    blocks = re.findall(r"```yaml\n(.*?)```", rules_doc, re.S)
    rs = load(write(tmp_path, {"example.yaml": blocks[0], "places.yaml": blocks[1]}))
    assert rs.ok, [str(e) for e in rs.errors]
    assert rs.campaigns[0].holdout == 0.1 and rs.places.hotlines["service"] == ("10086", "114")
    block = re.findall(r"```yaml\n(.*?)```", rules_doc[rules_doc.index("## Write a rule"):], re.S)[0]
    assert load(write(tmp_path, {"c.yaml": block})).ok


def test_audiences_are_checked_against_the_imported_lists(tmp_path):
    """A condition on a column no list has would reach nobody: with the lists it is an error of
    `rules check --lists` and of the engine at its start; without, a warning says it is unchecked."""
    import subprocess

    from click.testing import CliRunner

    from touchpoint.control.cli import main
    from touchpoint.control.lists import import_list

    from .test_engine_run import CLI
    (tmp_path / "members.csv").write_text("msisdn,age,plan\n8613800000001,30,gold\n")
    import_list(tmp_path / "data", "members", tmp_path / "members.csv")
    rules_dir = tmp_path / "r"
    rules_dir.mkdir()
    (rules_dir / "c.yaml").write_text("id: c\nstatus: active\ntrigger: {event: sms_mo}\n"
                                      "audience: {lists: [members], where: {agee: {gte: 18}}}\nmessage: {text: hi}\n")
    env = {"TOUCHPOINT_DATA": ""}
    res = CliRunner().invoke(main, ["rules", "check", str(rules_dir), "--lists", str(tmp_path / "data")], env=env)
    assert res.exit_code == 1 and "c.yaml:4: audience.where.agee: unknown field: did you mean 'age'?" in res.output
    res = CliRunner().invoke(main, ["rules", "check", str(rules_dir)], env=env)
    assert res.exit_code == 0, res.output
    assert "c.yaml:4: audience.where.agee: agee is taken for a list column, not checked" in res.output
    assert res.output.rstrip().endswith("; 1 warning")
    eng = subprocess.run(CLI + ["engine", "--rules", str(rules_dir), "--data", str(tmp_path / "data"), "--listen",
                                "tcp://127.0.0.1:0", "--no-dispatch"], capture_output=True, text=True, timeout=60)
    assert eng.returncode == 2 and "audience.where.agee: unknown field: did you mean 'age'?" in eng.stderr
