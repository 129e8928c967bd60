"""`touchpoint report` (control.report) on data whose effect is known, and the health scorecard's
daily counters (control.health) written by the engine's loop."""
import csv
import json
import math
import random

import numpy as np
import pytest
from click.testing import CliRunner

from touchpoint.control import report as R
from touchpoint.control.cli import main
from touchpoint.control.engine import Engine
from touchpoint.control.health import Health, read
from touchpoint.control.lists import import_list
from touchpoint.control.outbox import Outbox
from touchpoint.control.policy import holdout_share
from touchpoint.control.rules import load
from touchpoint.probe.record import Kind, unpack
from tests.records import MIN, T0, rec
from tests.test_goals import CAMPAIGN, replay, rules, story, subscriber

H = 60 * MIN
PNG = b"\x89PNG\r\n\x1a\n"
P1, P0 = 0.30, 0.12


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    """4,000 subscribers: contacted convert with P1, held out (20%) with P0."""
    tmp = tmp_path_factory.mktemp("report")
    recs, truth = story(4000, P1, P0, seed=11)
    data = tmp / "data"
    replay(rules(tmp), data, recs).close()
    return tmp, data, truth


def test_the_report_recovers_the_rates_and_the_interval_covers_the_uplift(known):
    tmp, data, truth = known
    rep = R.build(str(data), str(tmp / "rules"))
    (c,) = rep["campaigns"]
    held = sum(holdout_share(CAMPAIGN, subscriber(i)[1]) < 0.2 for i in range(4000))
    f = c["funnel"]
    assert (f["triggered"], f["held_out"], f["sent"]) == (4000, held, 4000 - held)
    cv = c["conversion"]
    assert (cv["contacted"]["converted"], cv["held_out"]["converted"]) == (len(truth[0]), len(truth[1]))
    assert (cv["contacted"]["subscribers"], cv["held_out"]["subscribers"]) == (4000 - held, held)
    for name, p in (("contacted", P1), ("held_out", P0)):
        lo, hi = cv[name]["ci95"]
        assert lo <= p <= hi and abs(cv[name]["rate"] - p) < 0.05
    u = cv["uplift"]
    assert u["low"] <= P1 - P0 <= u["high"] and u["low"] > 0
    assert c["send_delay"]["sent"] == 4000 - held and c["send_delay"]["within_1h"] == 1.0   # sent by the next chunk
    assert sum(d["triggered"] for d in c["days"]) == 4000


def test_the_funnel_adds_up(known):
    tmp, data, _ = known
    (c,) = R.build(str(data), str(tmp / "rules"))["campaigns"]
    f = c["funnel"]
    assert f["triggered"] == f["inactive"] + f["eligible"]
    assert f["eligible"] == f["held_out"] + f["not_sent"] + f["waiting"] + f["sent"]
    assert f["not_sent"] == sum(c["not_sent"].values())
    assert f["converted"] <= f["sent"] and f["delivered"] <= f["sent"]


def test_opted_out_subscribers_weigh_on_neither_group(tmp_path):
    """A third of the subscribers opted out and never convert. They are not sent to, and the
    held-out ones among them would not have been: they leave both groups, so the held-out rate is
    still the rate of those who would have been sent to, and the funnel says why."""
    recs, truth = story(3000, P1, P0, seed=5)
    opted = {subscriber(i)[1] for i in range(0, 3000, 3)}
    imsi_of = {subscriber(i)[0]: subscriber(i)[1] for i in range(3000)}
    goal = (recs["kind"] == Kind.MMS_NOTIFICATION) & np.isin(unpack(recs["imsi"]), [i for i, m in imsi_of.items()
                                                                                     if m in opted])
    recs = recs[~goal]
    data = tmp_path / "data"
    ob = Outbox(str(data))
    for m in opted:
        ob.add_optout(m, "*", "ctl", T0)
    ob.close()
    replay(rules(tmp_path), data, recs).close()
    (c,) = R.build(str(data), str(tmp_path / "rules"))["campaigns"]
    held = {subscriber(i)[1] for i in range(3000) if holdout_share(CAMPAIGN, subscriber(i)[1]) < 0.2}
    f, cv = c["funnel"], c["conversion"]
    assert f["held_out"] == len(held) and c["held_out_not_sendable"] == {"optout": len(held & opted)}
    assert c["not_sent"] == {"optout": len(opted - held)} and f["sent"] == 3000 - len(held | opted)
    assert (cv["contacted"]["subscribers"], cv["held_out"]["subscribers"]) == (f["sent"], len(held - opted))
    assert (cv["contacted"]["converted"], cv["held_out"]["converted"]) == (len(truth[0] - opted), len(truth[1] - opted))
    for name, p in (("contacted", P1), ("held_out", P0)):
        lo, hi = cv[name]["ci95"]
        assert lo <= p <= hi
    assert "would not have been sent: optout" in R.render({"since": None, "until": None, "uplift_interval": "",
                                                         "campaigns": [c]})


def test_since_until_and_unknown_campaigns(known):
    tmp, data, _ = known
    mid = T0 + 60 * MIN
    a = R.build(str(data), str(tmp / "rules"), since_ns=mid)["campaigns"][0]["funnel"]["triggered"]
    b = R.build(str(data), str(tmp / "rules"), until_ns=mid)["campaigns"][0]["funnel"]["triggered"]
    assert a + b == 4000 and 0 < a < 4000
    with pytest.raises(R.ReportError, match="no campaign 'nope'.*welcome"):
        R.build(str(data), None, "nope")
    (tmp / "empty").mkdir(exist_ok=True)
    with pytest.raises(R.ReportError, match="nothing to report"):
        R.build(str(tmp / "empty"))


def test_newcombe_interval():
    """Newcombe (1998) table II, example (a): 56/70 vs 48/80 -> 0.2, 95% CI 0.0524 to 0.3339."""
    d, lo, hi = R.newcombe(56, 70, 48, 80)
    assert (round(d, 4), round(lo, 4), round(hi, 4)) == (0.2, 0.0524, 0.3339)
    assert math.isnan(R.newcombe(1, 2, 0, 0)[0])


def test_cli_tables_json_and_plots(known):
    tmp, data, _ = known
    run = CliRunner().invoke
    res = run(main, ["report", "--data", str(data), "--rules", str(tmp / "rules"), "--plot", str(tmp / "r.png")])
    assert res.exit_code == 0, res.output
    assert "uplift: +" in res.output and "Newcombe" in res.output and "within 48 h 100.0%" in res.output
    png = (tmp / "r.png").read_bytes()
    assert png.startswith(PNG) and len(png) > 10_000
    res = run(main, ["report", CAMPAIGN, "--data", str(data), "--rules", str(tmp / "rules"), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["campaigns"][0]["id"] == CAMPAIGN
    res = run(main, ["report", "--data", str(tmp / "nowhere")])
    assert res.exit_code == 1 and "no such data directory" in res.output
    res = run(main, ["report", "nope", "--data", str(data)])
    assert res.exit_code == 1 and "no campaign 'nope'" in res.output


def test_a_goal_of_an_imported_conversion_list(tmp_path):
    """goal: {list: conversions, product: 5g, within: 1d}: a billing row in the window converts."""
    d = rules(tmp_path)
    (d / f"{CAMPAIGN}.yaml").write_text((d / f"{CAMPAIGN}.yaml").read_text().replace(
        "{event: mms_mt, within: 1d}", "{list: conversions, product: 5g, within: 1d}"), encoding="utf-8")
    recs, _ = story(200, 0.0, 0.0, seed=2)
    data = tmp_path / "data"
    replay(d, data, recs).close()
    rnd = random.Random(1)
    rows, want = [], {0: 0, 1: 0}
    for i in range(200):
        msisdn = subscriber(i)[1]
        kind = rnd.choice(["in", "late", "other"])
        at = T0 + (3 * H if kind != "late" else 40 * H)
        rows.append((msisdn, "5g" if kind != "other" else "data-pack", f"{at // 10**9}"))
        if kind == "in":
            want[int(holdout_share(CAMPAIGN, msisdn) < 0.2)] += 1
    with open(tmp_path / "conv.csv", "w", newline="") as f:
        csv.writer(f).writerows([("msisdn", "product", "time"), *rows])
    import_list(str(data), "conversions", str(tmp_path / "conv.csv"), {"time": "text"})
    (c,) = R.build(str(data), str(d))["campaigns"]
    assert (c["conversion"]["contacted"]["converted"], c["conversion"]["held_out"]["converted"]) == (want[0], want[1])
    assert c["goal"] == "list conversions product 5g, within 1d"


def test_health_counters_per_day(tmp_path):
    """Day 1: 100 seen, 20 with an MMS, 50 with a data session (cmnet) and data, 10 others with an
    IMS session only (no data use: not in data_users, sessions or trial); day 2: 60 seen,
    10 MMS, 20 of the 50 use 400 MB; day 10: 5 seen, each a session on cmwap and 1.2 GB. By the
    default lifecycle the 50 are trial on day 1, 20 of them active on day 2, 5 of these loyal on
    day 10 (two services, 1.6 GB in 90 days); the rest potential."""
    D = 24 * H // MIN
    recs = []
    for i in range(100):
        imsi, msisdn = subscriber(i)
        recs.append(rec(Kind.LOCATION_UPDATE, 10 + i, imsi=imsi, msisdn=msisdn, node="861390001000"))
        if i < 20:
            recs.append(rec(Kind.MMS_NOTIFICATION, 200 + i, imsi=imsi))
        if i < 50:
            recs.append(rec(Kind.SESSION_CREATE, 300 + i, imsi=imsi, msisdn=msisdn, rat=6, apn="cmnet"))
            recs.append(rec(Kind.DATA_USAGE, 400 + i, imsi=imsi, octets=5 << 20))
        elif i < 60:
            recs.append(rec(Kind.SESSION_CREATE, 300 + i, imsi=imsi, msisdn=msisdn, rat=6, apn="ims"))
        if i < 60:
            recs.append(rec(Kind.LOCATION_UPDATE, D + 10 + i, imsi=imsi, msisdn=msisdn, node="861390001000"))
        if i < 20:
            recs.append(rec(Kind.DATA_USAGE, D + 200 + i, imsi=imsi, octets=400 << 20))
        if i < 10:
            recs.append(rec(Kind.MMS_NOTIFICATION, D + 100 + i, imsi=imsi))
        if i < 5:
            recs.append(rec(Kind.LOCATION_UPDATE, 9 * D + 10 + i, imsi=imsi, msisdn=msisdn, node="861390001000"))
            recs.append(rec(Kind.SESSION_CREATE, 9 * D + 20 + i, imsi=imsi, msisdn=msisdn, rat=6, apn="cmwap"))
            recs.append(rec(Kind.DATA_USAGE, 9 * D + 30 + i, imsi=imsi, octets=1200 << 20))
    recs = np.concatenate(recs)
    recs = recs[np.argsort(recs["ts_ns"], kind="stable")]
    data = tmp_path / "data"
    (data / "state").mkdir(parents=True)
    engine = Engine(load(str(rules(tmp_path))), watch=("mms_mt", "data_session_start"))
    health = Health(str(data))
    half = len(recs) // 2
    for chunk in (recs[:half], recs[half:]):        # a restart in the middle of day 1
        for part in health.split(chunk):
            health.begin(part, engine)
            engine.process(part)
            health.count(part, engine.last_events, engine.last_services)
        health.write(engine, complete=False)
        kept = health.arrays()                      # what the engine's snapshot keeps
        health = Health(str(data))
        health.load(kept)
    days = {d["day"]: d for d in read(str(data))}
    assert list(days) == ["2026-01-01", "2026-01-02", "2026-01-10"]
    d1, d2, d10 = days.values()
    assert (d1["seen"], d1["mms_users"], d1["data_users"], d1["mms"], d1["sessions"]) == (100, 20, 50, 20, 50)
    assert d1["segments"] == {"loyal": 0, "active": 0, "trial": 50, "silent": 0, "potential": 50}
    assert (d2["seen"], d2["mms_users"], d2["data_users"], d2["moves"]) == (60, 10, 20, {"trial>active": 20})
    assert d10["seen"] == 5 and not d10["complete"] and d1["complete"]
    assert d10["segments"] == {"loyal": 5, "active": 15, "trial": 30, "silent": 0, "potential": 50}
    assert d10["moves"] == {"active>loyal": 5}
    assert d1["records"] + d2["records"] + d10["records"] == len(recs)
    text = R.render_health(list(days.values()))
    assert "2026-01-10*" in text and "20.0%" in text
    R.plot_health(list(days.values()), str(tmp_path / "h.png"))
    assert (tmp_path / "h.png").read_bytes().startswith(PNG)
    res = CliRunner().invoke(main, ["report", "--health", "--data", str(data), "--json"])
    assert res.exit_code == 0 and len(json.loads(res.output)) == 3
