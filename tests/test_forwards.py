"""Seed-MMS forwards (control.forwards): the story rules/stories/forwards.yaml through a real engine
behind a probe, then `touchpoint report --forwards`: the exact trail the story put in."""
import json
import os

from click.testing import CliRunner

from touchpoint.control import rules
from touchpoint.control.cli import main

from .test_engine_run import finish, probe, start_engine
from .test_scenarios import render

SEED = ("id: seed\nstatus: active\ntrigger: {event: imei_change}\nmessage: {text: x}\n"    # sends nothing here
        "goal: {event: data_session_start, within: 2d, where: {apn: cmnet}}\n")


def rules_dir(tmp_path, track: str):
    d = tmp_path / "rules"
    d.mkdir(exist_ok=True)
    (d / "seed.yaml").write_text(SEED + f"track_forwards: {track}\n", encoding="utf-8")
    (d / "policy.yaml").write_text("channels: {file: {path: sent.jsonl}}\n")
    return d


def test_the_trail_of_a_seed_through_the_network(tmp_path):
    """ann and bob get the seed from 10658888 (generation 0); ann -> cat (1) -> dan (2), cat ->
    ann and bob -> cat again (forwards, no new reach), dan -> hal without a subject (3: the size),
    and the next day dan -> gus (3); eve's photo, dan's smaller MMS to ivy and a copy from outside
    the network (unlinked) are no forwards. Of the reached, cat reaches the goal after her copy,
    hal before his (no conversion); ivy's is not counted (her copy is unlinked). An engine killed
    and run again over the same capture notes every notification twice: each counts once."""
    d = rules_dir(tmp_path, '{subject: "周末五折", size: 120000, tolerance: 5%, from: "10658888"}')
    pcap, _ = render(tmp_path, "forwards")
    data = tmp_path / "data"
    for _ in range(2):                          # the second run: as a journal replay would note them again
        proc, ep = start_engine(d, data, "--expect-eos", "1", "--clock", "records")
        probe(pcap, ep)
        finish(proc)
    lines = (data / "forwards-shard-0.jsonl").read_text().splitlines()
    assert len(lines) == 2 * 9 and all(json.loads(x)["campaign"] == "seed" for x in lines)
    r = CliRunner().invoke(main, ["report", "seed", "--forwards", "--data", str(data), "--rules", str(d), "--json"])
    assert r.exit_code == 0, r.output
    t = json.loads(r.output)
    assert (t["seeded"], t["forwards"], t["reached"], t["unlinked"]) == (2, 6, 4, 1)
    assert t["generations"] == {"0": 2, "1": 1, "2": 1, "3": 2}
    assert [(x["day"], x["seeded"], x["forwards"], x["forwards_total"], x["reached"], x["reached_total"])
            for x in t["days"]] == [("2026-11-07", 2, 5, 5, 3, 3), ("2026-11-08", 0, 1, 6, 1, 4)]
    assert t["top_forwarders"] == [{"msisdn": "86138****0203", "forwards": 2},
                                   {"msisdn": "86138****0204", "forwards": 2},
                                   {"msisdn": "86138****0201", "forwards": 1},
                                   {"msisdn": "86138****0202", "forwards": 1}]
    text = CliRunner().invoke(main, ["report", "seed", "--forwards", "--data", str(data), "--rules", str(d)]).output
    assert "seeded 2; forwards 6; reached 4 more; unlinked 1 (from no known holder)" in text
    assert "2026-11-08         1         6        1        4" in text
    assert "8613800000203" not in text                      # numbers are personal: shown masked
    c = t["conversion"]
    assert (c["reached"]["subscribers"], c["reached"]["converted"]) == (4, 1)
    assert (c["contacted"]["subscribers"], c["held_out"]["subscribers"]) == (0, 0)
    assert "goal data_session_start (with conditions), within 2d: reached 1 of 4 (25.0%); contacted 0 of 0" in text
    png = tmp_path / "fw.png"
    r = CliRunner().invoke(main, ["report", "seed", "--forwards", "--data", str(data), "--rules", str(d),
                                  "--plot", str(png)])
    assert r.exit_code == 0 and f"plot: {png}" in r.output, r.output
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and png.stat().st_size > 10_000


def test_track_forwards_in_a_rule(tmp_path):
    """`true` follows the campaign's own picture message, whose subject must be the same for all;
    a seed of another system is named by its subject, its size or both."""
    d = tmp_path / "r"
    d.mkdir()
    (d / "images").mkdir()
    (d / "images" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    (d / "policy.yaml").write_text("channels:\n  mms: {url: 'http://127.0.0.1:9/mm7', source: '10658000'}\n")
    mms = "message:\n  channel: mms\n  subject: {}\n  slides: [{{image: images/a.png, text: hi}}]\n"
    cases = {
        "own": ("track_forwards: true\n" + mms.format("周末五折"), None),
        "templated": ("track_forwards: true\n" + mms.format("'{msisdn} 的五折'"), "the same for every recipient"),
        "text": ("track_forwards: true\nmessage: {text: x}\n", "picture message"),
        "external": ("track_forwards: {size: 120000, tolerance: 10%}\nmessage: {text: x}\n", None),
        "nothing": ("track_forwards: {tolerance: 10%}\nmessage: {text: x}\n", "its subject, its size, or both"),
    }
    for name, (body, _) in cases.items():
        (d / f"{name}.yaml").write_text(f"id: {name}\nstatus: active\ntrigger: {{event: power_on}}\n{body}",
                                        encoding="utf-8")
    rs = rules.load(str(d))
    errors = {os.path.basename(e.file).removesuffix(".yaml"): str(e) for e in rs.errors}
    for name, (_, why) in cases.items():
        assert (why in errors[name]) if why else name not in errors, (name, errors.get(name))
    own = next(c for c in rs.campaigns if c.id == "own").forwards
    from touchpoint.probe.record import subject_hash
    assert (own.subject_hash, own.sender) == (subject_hash("周末五折"), "10658000")
    assert next(c for c in rs.campaigns if c.id == "external").forwards.size == 120000
