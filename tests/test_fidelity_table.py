"""bench/fidelity.py: the per-file table says what the tshark tests say, and fails where they fail."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import test_tshark_cap_isup, test_tshark_gtp

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "fidelity.py"
needs_public = pytest.mark.skipif(not test_tshark_gtp.PUBLIC.is_dir() or test_tshark_gtp.TSHARK is None,
                                  reason="needs ../shared/pcaps-public and tshark")


def run(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env,
                          timeout=300)


@pytest.fixture
def fidelity():
    spec = importlib.util.spec_from_file_location("fidelity", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_skips_cleanly_without_tshark(tmp_path):
    res = run(env=dict(os.environ, PATH=str(tmp_path)))       # no tshark on an empty PATH
    assert res.returncode == 0 and "skipped" in res.stderr and not res.stdout


@needs_public
def test_known_difference_with_its_reason():
    res = run("--only", "velyfw_camel.pcap", "--json")
    assert res.returncode == 0, res.stderr
    (row,) = json.loads(res.stdout)["files"]
    called = row["columns"]["called"]
    assert called["text"] == "2"
    assert [d["reason"] for d in called["differences"]] == [test_tshark_cap_isup.BCD_3A]
    assert row["columns"]["ops"]["text"] == "=" and row["columns"]["imei"]["text"] == "n/a"


@needs_public
def test_a_difference_the_tests_do_not_know_fails(fidelity, monkeypatch):
    listed = fidelity.manifest()
    assert fidelity.problems(fidelity.compare_file("ndpi_gtp_c.pcap", listed)) == []
    monkeypatch.delitem(test_tshark_gtp.KNOWN, "ndpi_gtp_c.pcap")
    row = fidelity.compare_file("ndpi_gtp_c.pcap", listed)
    assert fidelity.problems(row) == ["ndpi_gtp_c.pcap: test_tshark_gtp eci: tshark (305419896,), ours (36984440,)"]
    assert row.cells["cells"].text(lambda section, why: "k") == "2! [k]"
