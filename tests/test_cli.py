"""`touchpoint decode` as a user runs it."""
import importlib.util
import json
import os

import pytest
from click.testing import CliRunner

from touchpoint.control.cli import main
from tests import packets as P
from tests.test_layers import UL_BEGIN, UL_END, IMSI, eth_m3ua


def capture(tmp_path, n=3):
    frames = []
    for i in range(n):
        begin = P.tcap("begin", P.invoke(1, 2, P.ber(0x30, P.ber(0x04, P.tbcd(IMSI[:-1] + str(i))) +
                                                     P.ber(0x04, P.address("8613900001")))), otid=i,
                       dlg=P.dialogue(1, 3))
        frames.append(eth_m3ua(begin))
    path = tmp_path / "c.pcap"
    path.write_bytes(P.pcap(frames))
    return str(path)


def run(*args):
    return CliRunner().invoke(main, ["decode", *args])


def test_jsonl(tmp_path):
    res = run("--format", "jsonl", capture(tmp_path))
    assert res.exit_code == 0, res.output
    recs = [json.loads(line) for line in res.output.splitlines()]
    assert [r["imsi"] for r in recs] == [IMSI[:-1] + str(i) for i in range(3)]
    assert all(r["kind"] == "location_update" and "timeout" in r["flags"] for r in recs)
    assert "msisdn" not in recs[0]                       # absent fields are omitted


def test_filters_limit_count(tmp_path):
    path = capture(tmp_path, 5)
    assert run("--count", path).output.strip() == "5"
    assert run("--count", "--imsi", IMSI[:-1] + "3", path).output.strip() == "1"
    assert run("--count", "--imsi", IMSI[:5] + "*", path).output.strip() == "5"
    assert run("--count", "--kind", "sri_sm", path).output.strip() == "0"
    assert run("--count", "--limit", "2", path).output.strip() == "2"
    lines = run("--format", "csv", "--limit", "2", path).output.splitlines()
    assert lines[0].startswith("ts_ns,frame,kind") and len(lines) == 3


def test_table_and_stats(tmp_path):
    res = run("--stats", capture(tmp_path))
    assert res.exit_code == 0
    assert "location_update" in res.stdout and IMSI[:-1] + "0" in res.stdout
    assert "layer" in res.stderr and "tcap" in res.stderr and "TCAP_TIMEOUT" in res.stderr


def test_messages_mode(tmp_path):
    path = tmp_path / "d.pcap"
    hlr = dict(calling_gt="8613900000001", called_gt="8613800000001", calling_ssn=6, called_ssn=7)
    path.write_bytes(P.pcap([eth_m3ua(UL_BEGIN), eth_m3ua(UL_END, **hlr)]))
    assert run("--count", str(path)).output.strip() == "1"
    assert run("--count", "--messages", str(path)).output.strip() == "2"


def test_bad_input_is_a_clear_message(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("this is not a capture file at all, just some text")
    res = run(str(bad))
    assert res.exit_code == 1 and "notes.txt" in res.output and "not a pcap or pcapng file" in res.output
    res = run("--map-ssn", "6-x", str(bad))
    assert res.exit_code == 2 and "--map-ssn" in res.output
    res = run("--imsi", "12x34", str(bad))
    assert res.exit_code == 2
    assert run(str(tmp_path / "missing.pcap")).exit_code == 2


def test_config_file_then_environment_then_command_line(tmp_path):
    path = capture(tmp_path, 3)
    cfg = tmp_path / "tp.toml"
    cfg.write_text('[decode]\nformat = "jsonl"\nlimit = 1\n')
    res = CliRunner().invoke(main, ["--config", str(cfg), "decode", path])
    assert res.exit_code == 0 and len(res.stdout.splitlines()) == 1 and res.stdout.startswith("{")
    res = CliRunner().invoke(main, ["--config", str(cfg), "decode", path], env={"TOUCHPOINT_DECODE_LIMIT": "2"})
    assert len(res.stdout.splitlines()) == 2
    res = CliRunner().invoke(main, ["--config", str(cfg), "decode", "--limit", "3", path],
                             env={"TOUCHPOINT_DECODE_LIMIT": "2"})
    assert len(res.stdout.splitlines()) == 3
    cfg.write_text("[decode]\nbogus = 1\n")
    res = CliRunner().invoke(main, ["--config", str(cfg), "decode", path])
    assert res.exit_code == 2 and "unknown setting 'bogus' in [decode]" in res.output


@pytest.mark.parametrize("command, extra", [(["synth", "x.pcap"], "synth"), (["demo"], "demo")])
def test_a_missing_extra_is_named_before_anything_runs(tmp_path, monkeypatch, command, extra):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("pycrate") else real(name, *a))
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, command)
    assert res.exit_code == 1, res.output
    assert f"pip install 'touchpoint[{extra}]'" in res.output and "pycrate_asn1dir" in res.output
    assert os.listdir(tmp_path) == []                       # nothing written
