"""`touchpoint demo` from end to end, as a newcomer runs it: real processes over ZeroMQ, the
example campaigns of rules/, and what it leaves in its directory checked against its report."""
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest
import yaml

from touchpoint.control import rules

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def touchpoint(*args, cwd=None, timeout=300):
    return subprocess.run([sys.executable, "-c", "from touchpoint.control.cli import run; run()", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`touchpoint demo` as `pip install '.[demo]' && touchpoint demo` gives it a newcomer, outside
    any checkout: the files setuptools installs (setup.py build_py: the modules and the package
    data pyproject.toml lists) with the extensions built for this checkout, run from an empty
    directory. A sample rule, image, list or story left out of the package data fails here."""
    tmp = tmp_path_factory.mktemp("demo")
    site = tmp / "site"
    r = subprocess.run([sys.executable, "setup.py", "-q", "build_py", "-d", str(site)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for built in ("probe", "control"):
        for so in os.listdir(os.path.join(ROOT, built)):
            if so.endswith(".so"):
                shutil.copy(os.path.join(ROOT, built, so), site / "touchpoint" / built / so)
    empty = tmp / "empty"
    empty.mkdir()
    env = dict(os.environ, PYTHONPATH=str(site))
    where = subprocess.run([sys.executable, "-c", "import touchpoint.control.demo as d; print(d.__file__)"],
                           cwd=empty, env=env, capture_output=True, text=True, timeout=60)
    assert where.stdout.startswith(str(site)), where.stdout + where.stderr      # not the checkout's
    r = subprocess.run([sys.executable, "-c", "from touchpoint.control.cli import run; run()", "demo",
                        "--subscribers", "800", "--seed", "3"], cwd=empty, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr + r.stdout
    return empty / "touchpoint-demo", r


def test_every_active_campaign_triggers_and_sends(demo):
    out, r = demo
    active = [c.id for c in rules.load(os.path.join(ROOT, "rules")).campaigns if c.status == "active"]
    assert len(active) >= 7
    triggers = {}
    with open(out / "data" / "triggers-shard-0.jsonl", encoding="utf-8") as f:
        for line in f:
            c = json.loads(line)["campaign"]
            triggers[c] = triggers.get(c, 0) + 1
    db = sqlite3.connect(out / "data" / "outbox.sqlite")
    states = {}
    for campaign, state, n in db.execute("SELECT campaign, state, count(*) FROM messages GROUP BY 1, 2"):
        states.setdefault(campaign, {})[state] = n
    sent = {c: s.get("sent", 0) + s.get("delivered", 0) for c, s in states.items()}
    for c in active:
        assert triggers.get(c, 0) > 0, f"{c}: no trigger"
        assert sent.get(c, 0) > 0, f"{c}: nothing sent ({states.get(c)})"
    # the file channel holds each message the outbox says it sent; the sms campaign went to the SMSC
    with open(out / "data" / "outbox.jsonl", encoding="utf-8") as f:
        filed = [json.loads(line) for line in f]
    assert len(filed) == len({m["id"] for m in filed}) == sum(s.get("sent", 0) for s in states.values())
    assert states["new-handset-5g"].get("delivered", 0) > 0            # receipts from the demo's SMSC
    # the printed report names every campaign with the number of its triggers
    for c in active:
        at = r.stdout.index(c)
        assert f"{triggers[c]:,}" in r.stdout[at:at + 2000], c
    # and every active campaign has a goal and conversions among the subscribers it contacted
    rep = touchpoint("report", "--data", str(out / "data"), "--rules", str(out / "rules"), "--json")
    assert rep.returncode == 0, rep.stderr
    funnels = {c["id"]: c for c in json.loads(rep.stdout)["campaigns"]}
    goals = {c.id for c in rules.load(os.path.join(ROOT, "rules")).campaigns if c.goal}
    for c in active:
        assert c in goals, f"{c}: no goal"
        f = funnels[c]["funnel"]
        assert f["triggered"] == triggers[c] and f["sent"] == sent[c]
        assert funnels[c]["conversion"]["contacted"]["converted"] > 0, c


def test_the_mms_groups_get_picture_messages_at_lunch_and_in_the_evening(demo):
    """The MMS playbook's groups: each campaign went over MM7 to the demo's MMSC at its times of
    the sample day (Beijing), every one it took came back delivered, and the report has the
    replies by word (the MMSC's DeliverReqs, all of them) and the conversions of the contacted
    beside the held-out group's."""
    out, r = demo
    beijing = timezone(timedelta(hours=8))
    db = sqlite3.connect(out / "data" / "outbox.sqlite")
    sent = {}
    for campaign, state, channel, sent_ns in db.execute(
            "SELECT campaign, state, channel, sent_ns FROM messages WHERE campaign LIKE 'mms-%' AND sent_ns"):
        assert (channel, state) == ("mms", "delivered"), campaign
        at = datetime.fromtimestamp(sent_ns / 1e9, beijing)
        sent.setdefault(campaign, set()).add("lunch" if (11, 30) <= (at.hour, at.minute) < (13, 30) else
                                             "evening" if (19, 0) <= (at.hour, at.minute) < (21, 0) else at)
    assert sent == {"mms-campus": {"lunch", "evening"}, "mms-office": {"lunch"}, "mms-airport": {"evening"},
                    "mms-seed": {"lunch"}}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mmsc_submitted"] == db.execute(
        "SELECT count(*) FROM messages WHERE channel = 'mms' AND sent_ns").fetchone()[0]
    rep = touchpoint("report", "--data", str(out / "data"), "--rules", str(out / "rules"), "--json")
    funnels = {c["id"]: c for c in json.loads(rep.stdout)["campaigns"]}
    replied = 0
    for c in ("mms-campus", "mms-office", "mms-airport"):        # the seed asks for no reply
        by_word = funnels[c]["replies"]["by_word"]
        assert set(by_word) <= {"y", "是", "td"} and by_word.get("y", 0) + by_word.get("是", 0) > 0, (c, by_word)
        replied += funnels[c]["replies"]["replied"]
        conv = funnels[c]["conversion"]
        assert conv["contacted"]["converted"] > 0 and conv["held_out"]["subscribers"] > 0, c
    assert replied == summary["mmsc_replies"] > 0
    for c in ("mms-campus", "mms-office", "mms-airport"):
        assert f"replies: {funnels[c]['replies']['replied']:,} of" in r.stdout[r.stdout.index(f"== {c} "):]


def test_the_seed_mms_travels_as_the_story_passed_it_on(demo):
    """The seed MMS went to the `seeds` list's contacted subscribers; the story passed it on
    among their friends (demo._forwards: generations, copies to those who had it already, one
    from outside the network, the reached who then convert): the report gives that trail
    exactly, and prints it."""
    out, r = demo
    story = json.loads((out / "summary.json").read_text())["forwards"]
    assert story["forwards"] > story["reached"] > 0 and len(story["generations"]) >= 3 and story["unlinked"] == 1
    rep = touchpoint("report", "mms-seed", "--forwards", "--data", str(out / "data"), "--rules", str(out / "rules"),
                     "--json")
    assert rep.returncode == 0, rep.stderr
    t = json.loads(rep.stdout)
    assert {k: t[k] for k in ("seeded", "forwards", "reached", "unlinked", "generations")} == \
        {k: story[k] for k in ("seeded", "forwards", "reached", "unlinked", "generations")}
    db = sqlite3.connect(out / "data" / "outbox.sqlite")
    sent = db.execute("SELECT count(*) FROM messages WHERE campaign = 'mms-seed' AND sent_ns").fetchone()[0]
    assert t["seeded"] == sent
    c = t["conversion"]
    assert (c["reached"]["subscribers"], c["reached"]["converted"]) == (story["reached"], story["reached_converted"])
    assert c["contacted"]["subscribers"] == t["seeded"] and c["contacted"]["converted"] > 0
    assert f"seeded {t['seeded']:,}; forwards {t['forwards']:,}; reached {t['reached']:,} more" in r.stdout


def test_the_scorecard_of_the_sample_month_and_the_data_pool(demo):
    """The service scorecard of November against October, every default indicator with a value
    (from the health lines and the demo's billing, complaints and satisfaction lists); the data
    pool the engine exported holds what the outbox and the trigger log hold."""
    import pyarrow.dataset as ds
    out, r = demo
    rep = touchpoint("report", "--scorecard", "--data", str(out / "data"), "--rules", str(out / "rules"), "--json")
    assert rep.returncode == 0, rep.stderr
    card = json.loads(rep.stdout)
    assert (card["month"], card["previous"]) == ("2026-11", "2026-10")
    with open(os.path.join(ROOT, "rules", "scorecard.yaml"), encoding="utf-8") as f:
        defaults = {i["id"] for i in yaml.safe_load(f)["indicators"]}
    assert {i["id"] for i in card["indicators"] if i["value"] is not None} == defaults and not card["no_data"]
    assert f"total weight 100: {card['total']['score']:.1f} points" in r.stdout
    pool = out / "pool"
    table = lambda name: ds.dataset(pool / name, format="parquet", partitioning="hive").to_table()
    db = sqlite3.connect(out / "data" / "outbox.sqlite")
    outcomes = table("outcomes")
    assert sorted(outcomes.column("message").to_pylist()) == [m for (m,) in db.execute("SELECT id FROM messages "
                                                                                        "ORDER BY id")]
    with open(out / "data" / "triggers-shard-0.jsonl", encoding="utf-8") as f:
        assert table("triggers").num_rows == sum(1 for _ in f)
    areas = set(table("events").filter(ds.field("event") == "area_enter").column("area").to_pylist())
    assert {"colleges", "office-towers", "airport", "wangfujing"} <= areas
    assert {str(d) for d in table("profiles").column("day").to_pylist()} >= {"2026-10-18", "2026-11-07"}


def test_plots_and_story(demo):
    out, r = demo
    pngs = [line.split(": ", 1)[1] for line in r.stdout.splitlines() if line.startswith("plot: ")]
    assert pngs
    for p in pngs:
        with open(out.parent / p, "rb") as f:         # as printed: relative to where the demo ran
            head = f.read(8)
        assert head == b"\x89PNG\r\n\x1a\n" and os.path.getsize(out.parent / p) > 10_000
    assert (out / "story.yaml").exists() and (out / "day.pcap").stat().st_size > 0


def test_same_seed_same_day(tmp_path):
    from touchpoint.control.demo import make_day
    assert make_day(300, 5) == make_day(300, 5)
    assert make_day(300, 5) != make_day(300, 6)


def test_port_in_use_is_a_clear_error(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = touchpoint("demo", "--out", str(tmp_path / "d"), "--subscribers", "100", "--port", str(port))
    assert r.returncode == 1
    assert f"port {port} on 127.0.0.1" in r.stderr and "--port" in r.stderr


def test_a_dying_engine_is_reported_and_nothing_is_left(tmp_path):
    """The engine cannot start (its data directory's state file is not a snapshot): the demo says
    so with the engine's own words and leaves no process behind."""
    from touchpoint.control import demo as d

    out = tmp_path / "d"

    class Broken(d.Children):
        def start(self, name, args):
            if name == "engine":
                os.makedirs(out / "data" / "state", exist_ok=True)
                (out / "data" / "state" / "shard-0.npz").write_bytes(b"not a snapshot")
            return super().start(name, args)

    real = d.Children
    d.Children = Broken
    try:
        with pytest.raises(d.DemoError, match="touchpoint engine stopped with exit code") as e:
            d.run(str(out), 100, 1, echo=lambda *_: None)
    finally:
        d.Children = real
    last = (out / "engine.log").read_text().strip().splitlines()[-1]
    assert last in str(e.value)                     # the engine's own words
    assert running_in(out) == []


def running_in(directory) -> list:
    """Processes whose working directory is `directory` (the demo starts its children there)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{pid}/cwd") == str(directory):
                found.append(int(pid))
        except OSError:
            pass
    return found


def test_sigterm_ends_the_children(tmp_path):
    out = tmp_path / "d"
    p = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from touchpoint.control.cli import run; run()",
            "demo",
            "--out",
            str(out),
            "--subscribers",
            "200",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(600):                        # until the day's replay runs
            if (out / "probe.log").exists() or p.poll() is not None:
                break
            time.sleep(0.1)
        assert p.poll() is None and running_in(out)
        p.terminate()
        _, err = p.communicate(timeout=30)
    finally:
        p.kill()
    assert p.returncode != 0 and "stopped by signal 15" in err
    assert running_in(out) == []


def test_the_demo_writes_in_its_directory_only(demo):
    """Run from an empty directory (the fixture), the demo wrote ./touchpoint-demo and nothing else."""
    out, r = demo
    assert "touchpoint demo: 800 subscribers" in r.stdout
    assert (out / "report.png").stat().st_size > 0
    assert sorted(os.listdir(out.parent)) == ["touchpoint-demo"]
