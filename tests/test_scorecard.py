"""The service scorecard (control.scorecard, `touchpoint report --scorecard`): both scoring methods,
every default indicator of rules/scorecard.yaml from health lines and imported lists whose effect
is worked out by hand, missing inputs, the checks of scorecard.yaml, the command line."""
import json
import os
import textwrap

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from touchpoint.control import report as R
from touchpoint.control import scorecard as S
from touchpoint.control.cli import main
from touchpoint.control.lists import import_list
from touchpoint.control.rules import load

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RULES = os.path.join(ROOT, "rules")
PNG = b"\x89PNG\r\n\x1a\n"
SEGMENTS = ("loyal", "active", "trial", "silent", "potential")


# ---- the two methods ------------------------------------------------------------------------------------

def test_the_benchmark_method_by_hand():
    assert S.benchmark_score(45, 60, 10) == 7.5
    assert S.benchmark_score(60, 60, 10) == 10
    assert S.benchmark_score(90, 60, 10) == 10           # capped at the weight
    assert S.benchmark_score(-5, 60, 10) == 0            # and never below 0


def test_the_interpolation_method_by_hand():
    assert S.interpolation_score(0.05, 0, 0.1, 10) == 5
    assert S.interpolation_score(-0.1, 0, 0.1, 10) == 0  # clamped below g1
    assert S.interpolation_score(0.3, 0, 0.1, 10) == 10  # and above g2
    assert S.interpolation_score(16, 20, 4, 8) == 2      # g2 < g1: lower is better
    assert S.interpolation_score(25, 20, 4, 8) == 0
    assert S.interpolation_score(3, 20, 4, 8) == 8


finite = st.floats(-1e6, 1e6, allow_nan=False)
weights = st.one_of(st.just(0.0), st.floats(0.01, 1000))     # a weight of 1e-300 points is none a card has


@given(finite, st.floats(1e-3, 1e6), weights)
def test_a_benchmark_score_is_between_0_and_the_weight_and_full_from_the_benchmark_on(x, b, w):
    s = S.benchmark_score(x, b, w)
    assert 0 <= s <= w
    assert (s == w) == (x >= b or w == 0) or x / b > 1 - 1e-12    # a hair below the benchmark rounds to full
    assert S.benchmark_score(x + abs(x) + 1, b, w) >= s          # more is never worse


@given(finite, finite, finite, weights)
def test_interpolation_from_either_side_adds_up_to_the_weight(x, g1, g2, w):
    """g1 -> g2 and g2 -> g1 are the same scale read both ways: their scores make the weight."""
    if g1 == g2:
        return
    a, b = S.interpolation_score(x, g1, g2, w), S.interpolation_score(x, g2, g1, w)
    assert 0 <= a <= w and 0 <= b <= w
    assert a + b == pytest.approx(w, rel=1e-9, abs=1e-9)
    assert S.interpolation_score(g1, g1, g2, w) == 0 and S.interpolation_score(g2, g1, g2, w) == pytest.approx(w)


# ---- every default indicator, by hand --------------------------------------------------------------------

def day(d, seen, mms_users, mms, segments, moves=None, complete=True):
    return {"day": d, "complete": complete, "seen": seen, "mms_users": mms_users, "data_users": 0, "records": 0,
            "mms": mms, "sessions": 0, "segments": dict(zip(SEGMENTS, segments)), "moves": moves or {}, "new": 0}


def write_health(data, shards: dict) -> None:
    data.mkdir(parents=True, exist_ok=True)
    for shard, lines in shards.items():
        with open(data / f"health-shard-{shard}.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(x) + "\n" for x in lines)


def write_csv(path, header: str, rows: list) -> str:
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def msisdn(i: int) -> str:
    return f"86139{i:08d}"


# Two shards, and a day shard 0 wrote twice (a stop mid-day, then the day's end): the later line counts.
#   2026-10-31: seen 600 + 400, MMS users 100 + 50, MMS 150 + 90; segments at the end 700
#   2026-11-01: seen 500 + 300, MMS users 120 + 60, MMS 240 + 100
#   2026-11-02: seen 400 + 350, MMS users 100 + 100, MMS 300 + 180; segments at the end:
#               loyal 80, active 260, trial 150, silent 105, potential 105 (700)
HEALTH = {
    0: [day("2026-10-31", 600, 100, 150, (50, 150, 100, 100, 100), {"trial>active": 4, "active>silent": 6}),
        day("2026-11-01", 1, 1, 1, (0, 0, 0, 0, 0), complete=False),
        day("2026-11-01", 500, 120, 240, (60, 160, 100, 90, 90), {"trial>active": 10}),
        day("2026-11-02", 400, 100, 300, (60, 170, 100, 80, 90), {"silent>trial": 5, "trial>silent": 5})],
    1: [day("2026-10-31", 400, 50, 90, (20, 60, 60, 40, 20), {"trial>silent": 2}),
        day("2026-11-01", 300, 60, 100, (20, 80, 50, 30, 20), {"active>loyal": 5, "loyal>active": 5}),
        day("2026-11-02", 350, 100, 180, (20, 90, 50, 25, 15))],
}


def lists(tmp_path, data) -> dict:
    """billing: October 100 paying 6.00 (600), November 120 paying 7.50 (900; half written MMS) and 30
    at 0, SMS rows beside; complaints: one of MMS a month, SMS ones beside; satisfaction: November
    7, 8, 9, 6 (7.5), October 6, 7 (6.5). Imported as an operator does."""
    billing = ([(msisdn(i), "2026-10", "mms", "6.00") for i in range(100)]
               + [(msisdn(i), "2026-11", "mms" if i < 60 else "MMS", "7.50") for i in range(120)]
               + [(msisdn(i), "2026-11", "mms", "0") for i in range(120, 150)]
               + [(msisdn(i), "2026-11", "sms", "3.00") for i in range(50)])
    files = {"billing": write_csv(tmp_path / "billing.csv", "msisdn,month,service,revenue", billing),
             "complaints": write_csv(tmp_path / "complaints.csv", "msisdn,day,service", [
                 (msisdn(1), "2026-10-20", "mms"), (msisdn(2), "2026-10-21", "sms"), (msisdn(3), "2026-11-02", "mms"),
                 (msisdn(4), "2026-11-05", "sms"), (msisdn(4), "2026-11-06", "sms")]),
             "satisfaction": write_csv(tmp_path / "satisfaction.csv", "msisdn,month,service,score", [
                 (msisdn(i), "2026-11", "mms", s) for i, s in enumerate((7, 8, 9, 6))] + [
                 (msisdn(10 + i), "2026-10", "mms", s) for i, s in enumerate((6, 7))])}
    for name, path in files.items():
        import_list(data, name, path)
    return files


# By hand: November's day figures are the means of its two days (seen 775, MMS users 190, MMS 410),
# its month figures the busiest day's subscribers (seen 800, MMS users 200), the summed MMS (820),
# the last day's segments; October is its one day (seen 1000, MMS users 150, MMS 240).
NOVEMBER = {
    "revenue_completion": (900, 900 / 5000 * 15),
    "penetration": (190 / 775, 190 / 775 / 0.3 * 10),
    "growth_contribution": (0.5, 10),                              # 900 / 600 - 1, past g2 (10%)
    "revenue_per_user": (7.5, 7.5 / 10 * 5),                       # 900 / 120 paying
    "messages_per_user": (410 / 190, 8),                           # past the benchmark, 2
    "satisfaction": (7.5, (7.5 - 6) / 3 * 8),
    "complaints": (12.5, (12.5 - 20) / (5 - 20) * 8),              # 1 / 800 x 10,000
    "paying_ratio": (120 / 200, 120 / 200 / 0.8 * 8),
    "volume_revenue_match": ((900 / 30) / (600 / 31) / (410 / 240), (900 / 30) / (600 / 31) / (410 / 240) * 7),
    "active_rate": (340 / 700, 5.0),                               # (80 + 260) / 700: (17/35 - 1/5) / (2/5) = 5/7
    "silent_rate": (0.15, (0.15 - 0.3) / (0.1 - 0.3) * 7),         # 105 / 700
    "lifecycle_moves": (20 / 30, (20 / 30 - 0.4) / 0.3 * 7),       # up 10 + 5 + 5, down 5 + 5
}
OCTOBER = {
    "revenue_completion": 600 / 5000 * 15, "penetration": 0.15 / 0.3 * 10, "growth_contribution": None,
    "revenue_per_user": 6 / 10 * 5, "messages_per_user": 1.6 / 2 * 8, "satisfaction": 0.5 / 3 * 8,
    "complaints": (10 - 20) / (5 - 20) * 8, "paying_ratio": 100 / 150 / 0.8 * 8, "volume_revenue_match": None,
    "active_rate": (280 / 700 - 0.2) / 0.4 * 7, "silent_rate": (0.2 - 0.3) / (0.1 - 0.3) * 7,
    "lifecycle_moves": 0,                                          # up 4, down 6 + 2: 1/3, below g1
}


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scorecard")
    data = tmp / "data"
    write_health(data, HEALTH)
    return data, lists(tmp, data)


def card():
    rs = load(RULES)
    assert rs.ok, [str(e) for e in rs.errors]
    return rs.scorecard


def test_every_default_indicator_from_health_lines_and_lists(filled):
    data, _ = filled
    sc = S.compute(card(), str(data), "2026-11")
    got = {r["id"]: r for r in sc["indicators"]}
    assert set(got) == set(NOVEMBER) and not sc["no_data"]
    for i, (value, score) in NOVEMBER.items():
        assert got[i]["value"] == pytest.approx(value, rel=1e-12), i
        assert got[i]["score"] == pytest.approx(score, rel=1e-12, abs=1e-12), i
        assert got[i]["lost"] == pytest.approx(got[i]["weight"] - score, abs=1e-12), i
        before = OCTOBER[i]
        assert got[i]["previous"]["score"] == (None if before is None else pytest.approx(before, abs=1e-12)), i
        assert got[i]["trend"] == (None if before is None else pytest.approx(score - before, abs=1e-12)), i
    assert got["growth_contribution"]["previous"]["no_data"] == "list billing has no row of mms for 2026-09"
    assert sc["total"]["score"] == pytest.approx(sum(s for _, s in NOVEMBER.values()), rel=1e-12)
    assert (sc["total"]["weight"], sc["total"]["weight_no_data"]) == (100, 0)
    assert sc["families"]["scale"]["weight"] == 40 and sc["families"]["health"]["weight"] == 60
    # the most points lost first: revenue 12.3, then satisfaction and complaints 4 each (in the file's order)
    assert sc["weakest"] == ["revenue_completion", "satisfaction", "complaints"]
    assert [r["id"] for r in sc["indicators"]][:3] == sc["weakest"]
    assert sc["health"]["2026-11"] == {"days": 2, "first": "2026-11-01", "last": "2026-11-02", "incomplete": 0}


def test_without_a_month_the_latest_with_health_lines(filled):
    data, _ = filled
    assert S.compute(card(), str(data))["month"] == "2026-11"
    jan = S.compute(card(), str(data), "2027-01")
    assert jan["previous"] == "2026-12" and set(jan["no_data"]) == set(NOVEMBER)


def test_the_text_names_no_subscriber(filled):
    data, files = filled
    text = R.render_scorecard(S.compute(card(), str(data), "2026-11"))
    assert "weakest (短板): revenue_completion −12.3, satisfaction −4.0, complaints −4.0" in text
    assert "total weight 100: " in text and "no data (" not in text
    numbers = {line.split(",")[0] for f in files.values() for line in open(f, encoding="utf-8").read().split()[1:]}
    assert not any(n in text for n in numbers)
    assert not any(n[-8:] in text for n in numbers)


# ---- missing and bad inputs ---------------------------------------------------------------------------------

def test_missing_inputs_are_no_data_and_their_weight_is_counted_apart(tmp_path):
    data = tmp_path / "data"
    write_health(data, HEALTH)                  # no list imported
    sc = S.compute(card(), str(data), "2026-11")
    by = {r["id"]: r for r in sc["indicators"]}
    listed = {"revenue_completion", "growth_contribution", "revenue_per_user", "satisfaction", "complaints",
              "paying_ratio", "volume_revenue_match"}
    assert set(sc["no_data"]) == listed
    assert all(by[i]["value"] is None and by[i]["score"] is None for i in listed)
    assert by["satisfaction"]["no_data"].startswith("list satisfaction is not imported")
    assert sc["total"]["weight_no_data"] == 15 + 10 + 5 + 8 + 8 + 8 + 7
    assert sc["total"]["weight_with_data"] == 100 - sc["total"]["weight_no_data"]
    assert sc["total"]["score"] == pytest.approx(sum(NOVEMBER[i][1] for i in set(NOVEMBER) - listed))
    assert [r["id"] for r in sc["indicators"]][-len(listed):] == [      # the heaviest first
        "revenue_completion", "growth_contribution", "satisfaction", "complaints", "paying_ratio",
        "volume_revenue_match", "revenue_per_user"]
    text = R.render_scorecard(sc)
    assert "no data (weight 61 of 100, counted apart):" in text
    assert "  complaints: list complaints is not imported" in text


def test_a_month_without_complaints_counts_0_where_the_list_spans_it(tmp_path):
    data = tmp_path / "data"
    write_health(data, HEALTH)
    import_list(data, "complaints", write_csv(tmp_path / "c.csv", "msisdn,day,service", [
        (msisdn(1), "2026-10-03", "mms"), (msisdn(2), "2026-12-01", "sms")]))
    by = {r["id"]: r for r in S.compute(card(), str(data), "2026-11")["indicators"]}
    assert (by["complaints"]["value"], by["complaints"]["score"]) == (0, 8)
    assert by["complaints"]["previous"]["value"] == 10            # 1 / 1000 seen in October
    sept = {r["id"]: r for r in S.compute(card(), str(data), "2026-09")["indicators"]}
    assert sept["complaints"]["no_data"] == ("list complaints has no row of mms for 2026-09, nor does it span it "
                                             "(its rows are of 2026-10 to 2026-12)")


def test_a_bad_list_row_is_named_by_file_and_line(tmp_path):
    data = tmp_path / "data"
    write_health(data, HEALTH)
    path = write_csv(tmp_path / "billing.csv", "msisdn,month,service,revenue", [
        (msisdn(1), "2026-11", "mms", "5"), (msisdn(2), "Nov 2026", "mms", "5"), (msisdn(3), "2026-11", "mms", "5")])
    import_list(data, "billing", path)
    by = {r["id"]: r for r in S.compute(card(), str(data), "2026-11")["indicators"]}
    assert by["revenue_completion"]["no_data"] == f"{path}:3: month 'Nov 2026' is not a month like 2026-11 " \
                                                  "(list billing)"
    path = write_csv(tmp_path / "billing2.csv", "msisdn,month,service,revenue", [
        (msisdn(1), "2026-11", "mms", "5"), (msisdn(2), "2026-11", "mms", "5元")])
    import_list(data, "billing", path)
    by = {r["id"]: r for r in S.compute(card(), str(data), "2026-11")["indicators"]}
    assert by["revenue_per_user"]["no_data"] == f"{path}:3: revenue '5元' is not a number (list billing)"
    path = write_csv(tmp_path / "billing3.csv", "msisdn,month,service,revenue", [
        (msisdn(1), "2026-11", "mms", "5"), (msisdn(2), "2026-11", "mms", "")])
    import_list(data, "billing", path)
    by = {r["id"]: r for r in S.compute(card(), str(data), "2026-11")["indicators"]}
    assert by["paying_ratio"]["no_data"] == f"{path}:3: no revenue (list billing)"
    import_list(data, "satisfaction", write_csv(tmp_path / "s.csv", "msisdn,month,score", [(msisdn(1), "2026-11", 8)]))
    by = {r["id"]: r for r in S.compute(card(), str(data), "2026-11")["indicators"]}
    assert by["satisfaction"]["no_data"] == "list satisfaction has no column service (it has month, score)"


# ---- scorecard.yaml and `rules check` -----------------------------------------------------------------------

GOOD = """\
id: test-card
service: mms
indicators:
  - {id: a, family: scale, source: revenue, method: benchmark, benchmark: 100, weight: 10}
"""


def check(tmp_path, text: str):
    d = tmp_path / "r"
    d.mkdir(exist_ok=True)
    (d / "scorecard.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    res = CliRunner().invoke(main, ["rules", "check", str(d)])
    return res, str(d / "scorecard.yaml")


def test_rules_check_reads_the_scorecard(tmp_path):
    res, _ = check(tmp_path, GOOD)
    assert res.exit_code == 0, res.output
    assert res.output.rstrip().endswith("; scorecard test-card: 1 indicators, weight 10")
    res = CliRunner().invoke(main, ["rules", "check", RULES])
    assert "; scorecard mms-scorecard: 12 indicators, weight 100" in res.output


def test_every_mistake_of_a_scorecard_with_its_line(tmp_path):
    res, f = check(tmp_path, """\
        id: test-card
        service: mms
        colour: red
        indicators:
          - {id: a, family: scale, source: revenu, method: benchmark, benchmark: 100, weight: 10}
          - {id: b, family: scale, source: revenue, method: median, weight: 10}
          - {id: c, family: scale, source: revenue, method: benchmark, weight: 10}
          - {id: d, family: health, source: silent_rate, method: interpolation, g1: 30%, weight: 7}
          - {id: e, family: health, source: silent_rate, method: interpolation, g1: 30%, g2: 0.3, weight: 7}
          - {id: f, family: health, source: revenue, method: benchmark, benchmark: 100, weight: -5}
          - {id: g, family: health, source: revenue, method: benchmark, benchmark: 100, weight: 5, period: week}
          - {id: h, family: size, source: revenue, method: benchmark, benchmark: 0, weight: 5, g1: 1}
          - {id: a, family: scale, source: revenue, method: benchmark, benchmark: ten, weight: 1, bench: 1}
          - {id: i, family: health, source: revenue, method: benchmark, benchmark: 1, weight: 1, segments: [silent]}
          - {id: j, family: health, source: active_rate, method: benchmark, benchmark: 1, weight: 1, segments: [gold]}
        """)
    assert res.exit_code == 1
    lines = res.output.splitlines()
    want = [
        (3, "colour: unknown key (known: id, name, service, indicators)"),
        (5, "indicators[0].source: 'revenu' is not one of "),
        (6, "indicators[1].method: 'median' is not one of benchmark, interpolation"),
        (7, "indicators[2].benchmark: missing: the benchmark method needs benchmark"),
        (8, "indicators[3].g2: missing: the interpolation method needs g1 and g2"),
        (9, "indicators[4].g2: equals g1: the interpolation needs two different points"),
        (10, "indicators[5].weight: -5 is negative: a weight is 0 or more"),
        (11, "indicators[6].period: 'week' is not one of day, month"),
        (12, "indicators[7].family: 'size' is not one of scale, health"),
        (12, "indicators[7].benchmark: must be above 0"),
        (12, "indicators[7].g1: is for the interpolation method, not benchmark"),
        (13, "indicators[8].bench: unknown key: did you mean 'benchmark'?"),
        (13, "indicators[8].benchmark: 'ten' is not a number (or a percentage like 30%)"),
        (13, "indicators[8].id: 'a' is already the id of the indicator at line 5"),
        (14, "indicators[9].segments: only active_rate and silent_rate count segments"),
        (15, "indicators[10].segments: 'gold' is not a lifecycle segment of the policy (loyal, active, trial, "
             "silent, potential)"),
    ]
    for line, text in want:
        assert any(x.startswith(f"{f}:{line}: {text}") for x in lines), (line, text, res.output)
    assert "did you mean 'revenue'?" in res.output
    assert lines[-1].startswith(f"{len(want)} errors in 1 file")
    assert len(lines) == len(want) + 1


def test_a_broken_scorecard_file_has_its_line_and_the_report_refuses_it(tmp_path):
    res, f = check(tmp_path, "service: mms\nindicators:\n  - {id: a, family: [scale\n")
    assert res.exit_code == 1 and res.output.startswith(f"{f}:") and ": syntax: " in res.output
    data = tmp_path / "data"
    write_health(data, HEALTH)
    res = CliRunner().invoke(main, ["report", "--scorecard", "--data", str(data), "--rules", str(tmp_path / "r")])
    assert res.exit_code == 1 and f"{f}:" in res.output and "errors in the scorecard" in res.output


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(["id: ", "service: ", "indicators:", "\n  - ", "{", "}", "[", "]", ", ", "a",
                                 "method: ", "benchmark", "interpolation", "g1: ", "g2: ", "weight: ", "-1", "0",
                                 "30%", "source: ", "revenue", "family: ", "scale", "period: ", "\n", "  ", ":"]),
                max_size=30).map("".join))
def test_never_raises_on_garbage(tmp_path_factory, text):
    d = tmp_path_factory.mktemp("g")
    (d / "scorecard.yaml").write_text(text, encoding="utf-8")
    rs = load(str(d))
    assert all(isinstance(e.line, int) and e.file.endswith("scorecard.yaml") for e in rs.errors)
    assert (rs.scorecard is None) == bool(rs.errors) or not text.strip()


# ---- the command line ----------------------------------------------------------------------------------------

def test_cli_text_json_and_plot(filled, tmp_path):
    data, _ = filled
    args = ["report", "--scorecard", "--data", str(data), "--rules", RULES]
    res = CliRunner().invoke(main, args + ["--month", "2026-11"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0] == "== 彩信业务评分卡 (mms-scorecard), service mms: 2026-11 against 2026-10"
    assert lines[1] == "health lines: 2026-11 2 days (2026-11-01 to 2026-11-02), 2026-10 1 day (2026-10-31)"
    assert lines[3].split()[:3] == ["indicator", "name", "family"]
    assert lines[5].split() == ["revenue_completion", "收入完成率", "scale", "900.00", "5,000.00", "2.7", "15", "12.3",
                                "1.8", "+0.9"]
    res = CliRunner().invoke(main, args + ["--json"])
    assert res.exit_code == 0, res.output
    sc = json.loads(res.output)
    assert set(sc) == {"scorecard", "name", "service", "month", "previous", "health", "indicators", "families",
                       "total", "weakest", "no_data"}
    assert (sc["month"], sc["previous"], len(sc["indicators"])) == ("2026-11", "2026-10", 12)
    r = sc["indicators"][0]
    assert set(r) == {"id", "name", "family", "source", "method", "period", "weight", "benchmark", "unit", "value",
                      "score", "lost", "no_data", "previous", "trend"}
    assert set(sc["total"]) == {"score", "weight", "weight_with_data", "weight_no_data", "share"}
    png = tmp_path / "card.png"
    res = CliRunner().invoke(main, args + ["--plot", str(png)])
    assert res.exit_code == 0 and f"plot: {png}" in res.output
    assert png.read_bytes().startswith(PNG)


def test_cli_mistakes(filled, tmp_path):
    data, _ = filled
    run = lambda *a: CliRunner().invoke(main, ["report", *a])
    assert run("--month", "2026-11", "--data", str(data)).exit_code == 2                  # --month needs --scorecard
    assert run("--scorecard", "--health", "--data", str(data), "--rules", RULES).exit_code == 2
    res = run("--scorecard", "--data", str(tmp_path / "nowhere"), "--rules", RULES)
    assert res.exit_code == 1 and "no such data directory" in res.output
    (tmp_path / "empty").mkdir()
    res = run("--scorecard", "--data", str(tmp_path / "empty"), "--rules", RULES)
    assert res.exit_code == 1 and "give --month" in res.output
    (tmp_path / "norules").mkdir()
    res = run("--scorecard", "--data", str(data), "--rules", str(tmp_path / "norules"))
    assert res.exit_code == 1 and "no scorecard.yaml" in res.output
