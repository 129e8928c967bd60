"""`touchpoint engine --report-every 1d --clock records` behind `touchpoint probe`, as processes:
three days of arrivals in Shanghai in two captures; each day's report appears in DATA/reports/
as the records' time leaves the day, and holds what `touchpoint report --json` says then."""
import json
import random
import shutil
import subprocess
import time
from pathlib import Path

import yaml

from touchpoint.control.ctl import default_endpoint
from touchpoint.control.ctlclient import request
from touchpoint.probe.synth import story
from tests.test_engine_run import CLI, ROOT, TIMEOUT, probe, start_engine

DAYS = ("2026-11-07", "2026-11-08", "2026-11-09")


def day_story(path: Path, start: str, days: int, seed: int) -> int:
    """Per day 30 subscribers arrive in Shanghai between 10:00 and 18:00 (Beijing time); about half
    then open a data session (the campaign's goal). Returns its records."""
    rng = random.Random(seed)
    people = {}
    for d in range(days):
        for i in range(30):
            k = seed * 1000 + d * 100 + i
            t = rng.randrange(120, 600)
            steps = [{"at": f"+{d}d{t - 60}m", "do": "attach", "region": "beijing"},
                     {"at": f"+{d}d{t}m", "do": "roam_to", "region": "shanghai"}]
            if rng.random() < 0.5:
                steps.append({"at": f"+{d}d{t + rng.randrange(30, 90)}m", "do": "data", "apn": "cmnet",
                              "duration": "5m", "packets": 4})
            people[f"s{k}"] = {"imsi": f"4600077{k:08d}", "msisdn": f"86137{k:08d}", "steps": steps}
    path.write_text(yaml.safe_dump({"start": start, "places": str(ROOT / "rules" / "places.yaml"),
                                    "background": {"subscribers": 5}, "subscribers": people}))
    return story.render(str(path), str(path.with_suffix(".pcap")), seed=seed)["records"]


def report_json(data, rules_dir) -> dict:
    r = subprocess.run(CLI + ["report", "--data", str(data), "--rules", str(rules_dir), "--json"],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def settled(data, records: int) -> None:
    """Until the engine has taken `records` and its dispatcher has nothing left to do."""
    ctl, last, still = default_endpoint(str(data)), None, 0
    end = time.monotonic() + TIMEOUT
    while still < 4:
        assert time.monotonic() < end, last
        s = request(ctl, "status")["result"]
        now = (s["engine"]["records"], s["dispatcher"]["states"])
        busy = now[0] < records or any(now[1].get(k) for k in ("queued", "sending"))
        still = 0 if busy or now != last else still + 1
        last = now
        time.sleep(0.2)


def test_daily_reports_hold_what_report_says_then(tmp_path):
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    for name in ("policy.yaml", "places.yaml", "roaming-shanghai.yaml"):
        shutil.copy(ROOT / "rules" / name, rules_dir)
    first = day_story(tmp_path / "day1.yaml", f"{DAYS[0]}T08:00:00+08:00", 1, 1)
    day_story(tmp_path / "days23.yaml", f"{DAYS[1]}T08:00:00+08:00", 2, 2)
    data = tmp_path / "data"
    proc, ep = start_engine(rules_dir, data, "--clock", "records", "--report-every", "1d", "--expect-eos", "2")
    try:
        probe(tmp_path / "day1.pcap", ep)
        settled(data, first)
        assert not (data / "reports").exists()          # the first day is not over yet
        then = report_json(data, rules_dir)
        probe(tmp_path / "days23.pcap", ep)
        err = proc.communicate(timeout=TIMEOUT)[1]
        assert proc.returncode == 0, err
    finally:
        proc.kill()
    assert sorted(p.name for p in (data / "reports").iterdir()) == [f"report-{d}.json" for d in DAYS]
    reps = [json.loads((data / "reports" / f"report-{d}.json").read_text()) for d in DAYS]
    # the first day's report: written as the second day's records came, before they were taken
    assert reps[0]["campaigns"] == then["campaigns"]
    # the last one, at shutdown: what touchpoint report says afterwards
    assert reps[2]["campaigns"] == report_json(data, rules_dir)["campaigns"]
    triggered = [r["campaigns"][0]["funnel"]["triggered"] for r in reps]
    converted = [r["campaigns"][0]["conversion"]["contacted"]["converted"] for r in reps]
    assert 0 < triggered[0] < triggered[1] < triggered[2] and 0 < converted[0] < converted[2]
    assert [r["campaigns"][0]["id"] for r in reps] == ["roaming-in-shanghai"] * 3


def test_report_every_needs_a_duration(tmp_path):
    r = subprocess.run(CLI + ["engine", "--data", str(tmp_path), "--report-every", "daily"],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 2 and "'daily' is not a duration" in r.stderr
