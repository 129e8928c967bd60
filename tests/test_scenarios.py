"""Every scenario event on the example stories (rules/stories/), end to end: the story rendered
into a capture with background traffic (`touchpoint synth --scenario`), decoded and run through
the engine with one campaign per event; the triggers of the story's subscribers are exactly the
expected ones (who, which campaign, when), edge cases included. Then the same story through
`rules test`, through `engine` behind `probe`, and through two engine shards behind two probes
gives the same triggers."""
import io
import json
import shutil
import struct
from pathlib import Path

import pytest
from click.testing import CliRunner

from touchpoint.control import dryrun, rules
from touchpoint.control.cli import main
from touchpoint.probe.decode import Options

from .test_engine_run import finish, logged, probe, start_engine

ROOT = Path(__file__).resolve().parents[1]
STORIES = ROOT / "rules" / "stories"

EVENTS = ["imei_change", "roaming_in", "roaming_out", "inbound_roamer", "area_enter", "power_off", "power_on",
          "sms_mo", "sms_mt", "mms_mt", "ussd", "data_session_start", "rat_change"]
SPECIAL = {
    "area_dwell": "event: area_dwell\n  minutes: 30",
    "cf": "event: cf_then_power_on\n  within: 72h",
    "hotline": "event: hotline_call\n  hotlines: [service, directory]",
}

# "who campaign minute": minutes since the story's start, floored.
EXPECTED = {
    "imei-change": [
        "li-wei power_on 0",                # first sighting: power_on, never an imei_change
        "zhang-min power_on 5",
        "zhang-min data_session_start 5",
        "li-wei imei_change 120",           # a new TAC
        "zhang-min power_off 180",          # on 4G the new handset re-attaches
        "zhang-min imei_change 180",
        "zhang-min power_on 180",
        "zhang-min data_session_start 180",
        "li-wei imei_change 1440",          # same TAC, another unit
    ],
    "roaming": [
        "wang-fang power_on 0",
        "chen-jie power_on 10",             # chen-jie moves inside Shanghai: nothing more
        "wang-fang roaming_out 180",
        "wang-fang roaming_in 180",
        "wang-fang roaming_out 1440",       # abroad: a UK VLR, then a cell in 234-15
        "wang-fang roaming_in 1440",
        "wang-fang roaming_out 4320",
        "wang-fang roaming_in 4320",
    ],
    "inbound-roamer": [
        "visitor inbound_roamer 0",         # once, at the first sighting; never for `local`
        "visitor power_on 0",
        "local power_on 5",
        "visitor sms_mo 60",
        "us-visitor inbound_roamer 120",
        "us-visitor power_on 120",
        "caller-first inbound_roamer 180",  # its number called at 30 (ISUP): the IMSI's first sighting
        "caller-first power_on 180",
        "visitor roaming_out 360",
        "visitor roaming_in 360",
    ],
    "area-dwell": [
        "passer-by power_on 0",
        "passer-by data_session_start 0",
        "node-first power_on 0",
        "shopper power_on 0",
        "shopper area_enter 5",
        "passer-by area_enter 5",
        "node-first area_enter 10",         # an SGSN was all it knew: the first cell, in the area, enters
        "shopper area_dwell 35",            # once per visit, 30 minutes after entering
        "node-first area_dwell 40",         # the dwell of that entry, never one without it
        "passer-by area_enter 40",          # left at 15 (dwell interrupted), back at 40
        "passer-by area_dwell 70",
    ],
    "cf-then-power-on": [
        "churner power_on 0",
        "changed-mind power_on 0",
        "late power_on 0",
        "two-codes power_on 0",
        "erased-one power_on 0",
        "reactivated power_on 0",
        "churner power_off 120",
        "changed-mind power_off 120",
        "late power_off 120",
        "erased-one power_off 240",
        "reactivated power_off 240",
        "erased-one power_on 300",
        "erased-one cf 300",                # cfu, the one left after cfb was erased
        "changed-mind power_on 360",        # forwarding erased before the power-on: no cf
        "reactivated power_on 360",
        "reactivated cf 360",
        "churner power_on 1440",
        "churner cf 1440",
        "two-codes power_off 4320",
        "two-codes power_on 4450",
        "two-codes cf 4450",                # cfb (3 h); cfu, set 74 h before, is past `within`
        "late power_on 5760",               # 4 days after the forwarding: past `within`
    ],
    "hotline": [
        "caller power_on 0",
        "long-talker power_on 0",
        "caller hotline 30",                # CAP InitialDP to 10086, at the InitialDP
        "msisdn-only hotline 60",           # known only by its MSISDN (ISUP), at the IAM
        "msisdn-only sms_mo 70",
        "caller hotline 120",               # ISUP to 114; the call to a mobile number is no hotline
        "long-talker hotline 240",          # 45 minutes long: at its set-up, as CAP and as ISUP
        "long-talker hotline 240",
    ],
    "power": [
        "sleeper power_on 0",
        "lte-user power_on 1",
        "lte-user data_session_start 1",
        "lte-user power_off 120",           # the last GTPv2 session deleted, no CS attach
        "lte-user power_on 180",
        "sleeper power_off 480",
        "sleeper power_on 960",
    ],
    "messaging": [
        "texter power_on 0",
        "texter sms_mo 10",
        "texter sms_mt 20",
        "texter sms_mt 30",
        "texter mms_mt 40",
        "texter ussd 50",
    ],
    "data": [
        "surfer power_on 0",
        "surfer data_session_start 10",
        "surfer rat_change 60",             # first time on 5G
        "surfer data_session_start 60",
        "surfer rat_change 120",
        "surfer data_session_start 120",
    ],
    "demo": [
        "zhao-lei power_on 0",
        "zhao-lei data_session_start 0",
        "li-na power_on 0",
        "li-na imei_change 30",
        "li-na data_session_start 60",
        "li-na hotline 120",                # one call seen twice, as CAP InitialDP and ISUP IAM: two
        "li-na hotline 120",                # call attempts (the dispatcher's frequency cap keeps one)
        "zhao-lei power_off 120",
        "visitor inbound_roamer 180",
        "visitor power_on 180",
        "visitor sms_mo 185",
        "li-na roaming_out 300",
        "li-na roaming_in 300",
        "li-na area_enter 330",
        "li-na area_dwell 360",
        "li-na sms_mt 420",
        "li-na sms_mo 425",
        "zhao-lei power_on 540",
        "zhao-lei cf 540",
        "zhao-lei data_session_start 540",
        "zhao-lei mms_mt 545",
        "zhao-lei ussd 550",
    ],
}


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("rules")
    shutil.copy(ROOT / "rules" / "places.yaml", d)
    for cid, trigger in [(e, f"event: {e}") for e in EVENTS] + list(SPECIAL.items()):
        (d / f"{cid}.yaml").write_text(f"id: {cid}\nstatus: active\ntrigger:\n  {trigger}\nmessage: {{text: hi}}\n")
    assert not rules.load(str(d)).errors
    return d


def render(tmp_path, story: str) -> tuple:
    """The story's capture, and its steps (who, time, the identities its records carry)."""
    pcap, steps = tmp_path / f"{story}.pcap", tmp_path / f"{story}.steps.jsonl"
    res = CliRunner().invoke(main, ["synth", str(pcap), "--scenario", str(STORIES / f"{story}.yaml"),
                                    "--expect", str(steps)])
    assert res.exit_code == 0, res.output
    return pcap, [json.loads(line) for line in steps.read_text().splitlines()]


def story_view(steps, triggers) -> list:
    """The triggers of the story's own subscribers as 'who campaign minute'."""
    who = {}
    for s in steps:
        for r in s["records"]:
            for k in ("imsi", "msisdn"):
                if r.get(k):
                    who[r[k]] = s["subscriber"]
    start = min(s["ts_ns"] - _offset(s) for s in steps)
    out = []
    for t in triggers:
        name = who.get(t["imsi"]) or who.get(t["msisdn"])
        if name:
            out.append(f"{name} {t['campaign']} {(t['ts_ns'] - start) // 60_000_000_000}")
    return out


def _offset(step) -> int:
    """ns from the story's start to the step ("+1d2h30m")."""
    at, total, num = step["at"].lstrip("+"), 0, ""
    for ch in at:
        if ch.isdigit():
            num += ch
        else:
            total += int(num) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[ch]
            num = ""
    return total * 1_000_000_000


def dry(rules_dir, *pcaps, lists=None) -> list:
    out = io.StringIO()
    dryrun.run(rules.load(str(rules_dir)), [str(p) for p in pcaps], Options(), lists, fmt="jsonl", out=out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.mark.parametrize("story", sorted(EXPECTED))
def test_story_fires_exactly_the_expected_triggers(rules_dir, tmp_path, story):
    pcap, steps = render(tmp_path, story)
    assert story_view(steps, dry(rules_dir, pcap)) == EXPECTED[story]


def test_each_forwarding_fires_with_its_own_code_and_number(rules_dir, tmp_path):
    """A subscriber's forwardings are kept apart: the one that qualifies fires with its own code,
    number and set time, never another's (a merged state gave cfu with cfb's number)."""
    pcap, _ = render(tmp_path, "cf-then-power-on")
    fired = {t["msisdn"]: t["fields"] for t in dry(rules_dir, pcap) if t["campaign"] == "cf"}
    assert fired == {
        "8613800000041": {"ss_code": "cfu", "forwarded_to": "8613312345678"},
        "8613800000044": {"ss_code": "cfb", "forwarded_to": "8613312345602"},
        "8613800000045": {"ss_code": "cfu", "forwarded_to": "8613312345603"},
        "8613800000046": {"ss_code": "cfnry", "forwarded_to": "8613312345605"},   # deactivated, activated again
    }
    since = tmp_path / "since"                  # each its own set time: cfb's 3 h, not cfu's 74 h
    shutil.copytree(rules_dir, since)
    (since / "cf.yaml").write_text("id: cf\nstatus: active\ntrigger:\n  event: cf_then_power_on\n  within: 210m\n"
                                   "message: {text: hi}\n")
    assert sorted(t["msisdn"] for t in dry(since, pcap) if t["campaign"] == "cf") == [
        "8613800000044", "8613800000046"]


def test_an_inbound_roamers_mccmnc_has_its_countrys_mnc_length(rules_dir, tmp_path):
    """E.212: 310 (the US) has 3-digit MNCs, 234 (the UK) 2; `{not: ["310410"]}` keeps AT&T's out."""
    pcap, steps = render(tmp_path, "inbound-roamer")
    ours = {"234150000000021", "310410000000023"}                  # not the background's
    fired = {t["imsi"]: t["fields"]["mccmnc"] for t in dry(rules_dir, pcap)
             if t["campaign"] == "inbound_roamer" and t["imsi"] in ours}
    assert fired == {"234150000000021": "23415", "310410000000023": "310410"}
    only = tmp_path / "only"
    shutil.copytree(rules_dir, only)
    (only / "inbound_roamer.yaml").write_text(
        "id: inbound_roamer\nstatus: active\ntrigger:\n  event: inbound_roamer\n"
        "  where:\n    mccmnc: {not: [\"310410\"]}\nmessage: {text: hi}\n")
    assert {t["imsi"] for t in dry(only, pcap) if t["campaign"] == "inbound_roamer"} & ours == {"234150000000021"}


def test_the_mnc_length_table_agrees_with_pycrates_networks():
    """Every country of the table has 3-digit MNCs in pycrate's MCC/MNC list, and none of the
    countries pycrate lists with 2-digit MNCs alone is in it."""
    from pycrate_mobile.MCC_MNC import MNC_dict

    from touchpoint.control.e212 import THREE_DIGIT_MNC, mccmnc
    lengths = {}
    for k in MNC_dict:
        lengths.setdefault(k[:3], set()).add(len(k) - 3)
    assert all(3 in lengths[mcc] for mcc in THREE_DIGIT_MNC if mcc in lengths), \
        [mcc for mcc in THREE_DIGIT_MNC if 3 not in lengths.get(mcc, {3})]
    assert not {mcc for mcc, n in lengths.items() if n == {2}} & THREE_DIGIT_MNC
    assert sum(mcc in lengths for mcc in THREE_DIGIT_MNC) >= 20
    assert mccmnc(["310410123456789", "460001234567890", ""]).tolist() == ["310410", "46000", ""]


def key(t: dict) -> tuple:
    return t["campaign"], t["ts_ns"], t["imsi"], t["msisdn"], json.dumps(t["fields"], sort_keys=True)


def test_same_triggers_from_rules_test_engine_and_two_shards(rules_dir, tmp_path):
    pcap, _ = render(tmp_path, "demo")
    want = sorted(key(t) for t in dry(rules_dir, pcap))
    assert len(want) > 50
    # rules test, as the operator runs it
    res = CliRunner().invoke(main, ["rules", "test", "--rules", str(rules_dir), "--pcap", str(pcap),
                                    "--format", "jsonl"])
    assert res.exit_code == 0, res.output
    assert sorted(key(json.loads(line)) for line in res.stdout.splitlines()) == want
    # one engine behind one probe
    one = tmp_path / "one"
    proc, ep = start_engine(rules_dir, one, "--expect-eos", "1")
    probe(pcap, ep)
    finish(proc)
    assert sorted(logged(one)) == want
    # two shards fed by two probes: the capture cut in two at its longest quiet gap (no dialogue
    # open), the first half replayed by one probe, then the second by another, both to both shards
    first, second = split_at_longest_gap(pcap, tmp_path)
    two = tmp_path / "two"
    a, ep_a = start_engine(rules_dir, two, "--shard", "0", "--expect-eos", "2")
    b, ep_b = start_engine(rules_dir, two, "--shard", "1", "--expect-eos", "2")
    probe(first, ep_a, ep_b)
    probe(second, ep_a, ep_b, probe_id=2)
    finish(a), finish(b)
    assert logged(two, 0) and logged(two, 1)
    assert sorted(logged(two, 0) + logged(two, 1)) == want


def split_at_longest_gap(pcap: Path, tmp_path: Path) -> tuple:
    """Two pcap files: the packets before and after the longest pause between two packets."""
    raw = pcap.read_bytes()
    head, pos, packets = raw[:24], 24, []
    while pos < len(raw):
        sec, frac, incl = struct.unpack_from("<IIi", raw, pos)
        packets.append((sec * 10**9 + frac * (1000 if raw[:4] == b"\xd4\xc3\xb2\xa1" else 1), raw[pos:pos + 16 + incl]))
        pos += 16 + incl
    gaps = [packets[i + 1][0] - packets[i][0] for i in range(len(packets) - 1)]
    cut = gaps.index(max(gaps)) + 1
    out = []
    for name, part in (("first", packets[:cut]), ("second", packets[cut:])):
        path = tmp_path / f"{name}.pcap"
        path.write_bytes(head + b"".join(p for _, p in part))
        out.append(path)
    return tuple(out)


def profile_rules(tmp_path, campaigns: dict) -> Path:
    d = tmp_path / "rules"
    d.mkdir()
    shutil.copy(ROOT / "rules" / "places.yaml", d)
    (d / "policy.yaml").write_text("timezone: Asia/Shanghai\n")
    for cid, (trigger, where) in campaigns.items():
        (d / f"{cid}.yaml").write_text(f"id: {cid}\nstatus: active\ntrigger: {trigger}\n"
                                       f"audience: {{where: {{{where}}}}}\nmessage: {{text: hi}}\n")
    return d


def test_area_days_and_visits_at_their_borders(tmp_path):
    """Often around the colleges (10 days of 30), three visits to the phone shops in 7 days."""
    d = profile_rules(tmp_path, {
        "campus": ("{event: sms_mo}", "area_days: {area: colleges, last: 30d, gte: 10}"),
        "shops": ("{event: area_enter, where: {area: phone-shops}}",
                  "area_visits: {area: phone-shops, last: 7d, gte: 3}")})
    pcap, steps = render(tmp_path, "areas")
    assert story_view(steps, dry(d, pcap)) == [
        "browser shops 7800",           # the third visit, on day 5; slow-browser's third is 7 days after its first
        "student campus 13080",         # the tenth day around the colleges; the SMS on the ninth did not fire
    ]


def test_profile_windows_at_their_borders(tmp_path):
    """`last: 30d` is today and the 29 days before it in the policy's time zone (Beijing: in UTC
    both fifth messages fall on one day); call minutes count the talk of the calls that ended."""
    d = profile_rules(tmp_path, {"texter": ("{event: sms_mo}", "sms_mo: {last: 30d, gte: 5}"),
                                 "talker": ("{event: sms_mo}", "call_minutes: {last: 1d, gte: 30}")})
    pcap, steps = render(tmp_path, "profiles")
    assert story_view(steps, dry(d, pcap)) == [
        "talker talker 240",            # 29 minutes (ISUP) and 1 (CAP): 30; the SMS after the 29 alone did not fire
        "regular texter 42540",         # the fifth SMS on day 29 counts day 0's; `late`'s on day 30 does not
    ]


def test_lifecycle_segments_at_their_borders(tmp_path):
    """policy.yaml's lifecycle: the first segment that holds, at the event; a data service used
    on day 0 is in the 90-day window on day 89, not on day 90; an IMS session is no data service."""
    d = profile_rules(tmp_path, {f"is-{s}": ("{event: sms_mo}", f"lifecycle: {s}")
                                 for s in ("loyal", "trial", "silent", "potential")})
    (d / "policy.yaml").write_text("timezone: Asia/Shanghai\n"
                                   "data_services: {internet: [cmnet], wap: [cmwap]}\n"
                                   "lifecycle:\n"
                                   "  loyal: {data_services: {last: 90d, gte: 2}}\n"
                                   "  trial: {data_services: {last: 90d, gte: 1}}\n"
                                   "  silent: {used_data: true}\n"
                                   "  potential: {}\n")
    pcap, steps = render(tmp_path, "lifecycle")
    assert sorted(story_view(steps, dry(d, pcap))) == [
        "ims-only is-silent 1440",
        "never is-potential 1440",
        "one-too-late is-trial 129660",
        "two-services is-loyal 128220",
    ]


def test_handset_age_brand_before_and_mms_over_months(tmp_path):
    """18 months with one handset (an hour short does not fire), switched from Apple (a
    repaired unit of the same model did not switch), an MMS on day 0 is in the last 92 days on
    day 91, not on day 92."""
    from touchpoint.control.lists import ListStore, import_tac
    import_tac(tmp_path / "data", ROOT / "rules" / "lists" / "tac.csv")
    d = profile_rules(tmp_path, {"kept": ("{event: sms_mo}", "handset_age: {gte: 540d}"),
                                 "from-apple": ("{event: sms_mo}", "previous_handset_brand: 苹果"),
                                 "mms-3m": ("{event: sms_mo}", "mms_mt: {last: 92d, gte: 1}")})
    pcap, steps = render(tmp_path, "long-profiles")
    assert sorted(story_view(steps, dry(d, pcap, lists=ListStore(tmp_path / "data")))) == [
        "keeper kept 777660",
        "mms-in-time mms-3m 131100",
        "switcher from-apple 1500",
    ]


def test_time_in_a_region_and_call_minutes_while_roaming(tmp_path):
    d = profile_rules(tmp_path, {
        "six-hours": ("{event: sms_mo}", "in_region: shanghai, in_region_for: {gte: 6h}"),
        "talk-away": ("{event: sms_mo}", "call_minutes: {last: 1d, while: roaming, gte: 30}")})
    pcap, steps = render(tmp_path, "roaming-time")
    assert sorted(story_view(steps, dry(d, pcap))) == [
        "stayer six-hours 421",
        "traveller talk-away 300",
    ]


SENT = {"queued", "sending", "sent", "delivered", "failed"}     # the policy let it go; the channel did the rest


@pytest.fixture(scope="module")
def example_rules(tmp_path_factory):
    """The example rules and their lists, the text messages on the file channel (no SMSC here),
    the picture messages to a test MMSC: a channel that cannot send holds its messages up past
    their send windows, which the dry run does not model."""
    from touchpoint.control.lists import import_list, import_tac

    from .mmsc import Mmsc
    d = tmp_path_factory.mktemp("examples")
    shutil.copytree(ROOT / "rules", d / "rules", ignore=shutil.ignore_patterns("stories", "lists", "*.py"))
    with Mmsc("touchpoint", "secret") as mmsc:
        for f in (d / "rules").glob("*.yaml"):
            text = f.read_text(encoding="utf-8").replace("channel: sms", "channel: file")
            f.write_text(text.replace("url: http://127.0.0.1:8790/mm7", f"url: {mmsc.url}"), encoding="utf-8")
        assert mmsc.url in (d / "rules" / "policy.yaml").read_text(encoding="utf-8")
        data = d / "data"
        for name in ("postpaid", "staff", "seeds"):
            import_list(data, name, ROOT / "rules" / "lists" / f"{name}.csv")
        import_tac(data, ROOT / "rules" / "lists" / "tac.csv")
        yield d / "rules", data


@pytest.mark.parametrize("story", sorted(p.stem for p in STORIES.glob("*.yaml")))
def test_the_dry_run_decides_what_the_engine_then_sends(example_rules, tmp_path, story):
    """`rules test` runs the triggers through the dispatcher's contact policy: on every example
    story its decisions are those the engine (--clock records) stores in its outbox."""
    import sqlite3

    from touchpoint.control.lists import ListStore
    rules_dir, lists = example_rules
    data = tmp_path / "data"
    shutil.copytree(lists, data)
    pcap, _ = render(tmp_path, story)
    want = {t["decision"]["id"]: (t["decision"]["state"], t["decision"]["reason"])
            for t in dry(rules_dir, pcap, lists=ListStore(data))}
    proc, ep = start_engine(rules_dir, data, "--expect-eos", "1", "--clock", "records")
    probe(pcap, ep, args=("--ack-timeout", "300"))    # a month of records replayed a minute at a time
    finish(proc)
    got = {}
    if (data / "outbox.sqlite").exists():
        with sqlite3.connect(data / "outbox.sqlite") as db:
            got = {i: ("queued" if s in SENT else s, r if s not in SENT else "")
                   for i, s, r in db.execute("SELECT id, state, reason FROM messages")}
    assert got == want
