"""Golden captures in pcaps/: the decoder's dialogue records against the generator's ground truth.

TOUCHPOINT_REGEN=1 rewrites pcaps/*.pcap and *.expected.jsonl from the generator
(probe.synth, never the decoder) before comparing; the same as
`python -m touchpoint.probe.synth --regen-goldens`.
"""
import json
import os
from pathlib import Path

import pytest

from touchpoint.probe import synth

PCAPS = Path(__file__).resolve().parent.parent / "pcaps"
NAMES = sorted(synth.GOLDENS)
# identity and detail fields: when the expectation leaves one out, the decoder must not invent it
IDENTITY = ("imsi", "msisdn", "imei", "peer", "node", "mcc", "mnc", "lac_tac", "cell", "loc_type",
            "ss_code", "cause", "rat", "apn", "packets", "octets", "service_key", "app_port", "sms_pid",
            "sms_dcs", "parts", "part", "event", "nai", "mms_class", "subject_hash")

if os.environ.get("TOUCHPOINT_REGEN") == "1":
    pytest.importorskip("pycrate_asn1dir")
    synth.regen_goldens(str(PCAPS))


def _expected(name):
    return [json.loads(line) for line in (PCAPS / f"{name}.expected.jsonl").read_text().splitlines()]


def _key(r):
    """Records of one frame (a response and the end-of-capture data usage) in a stable order."""
    return r["frame"], r["proto"], r["kind"], r["tid"]


def _decoded(name):
    pytest.importorskip("touchpoint.probe._decode")
    from touchpoint.probe.decode import decode_bytes
    from touchpoint.probe.format import to_dicts

    got = sorted(to_dicts(decode_bytes((PCAPS / f"{name}.pcap").read_bytes())), key=_key)
    want = sorted(_expected(name), key=_key)
    assert [_key(r) for r in got] == [_key(r) for r in want]
    return got, want


@pytest.mark.parametrize("name", NAMES)
def test_golden_files_are_small(name):
    for suffix in (".pcap", ".expected.jsonl"):
        p = PCAPS / (name + suffix)
        assert p.exists(), f"{p} missing: run python -m touchpoint.probe.synth --regen-goldens"
        assert p.stat().st_size < 100_000


@pytest.mark.parametrize("name", NAMES)
def test_generator_still_makes_the_goldens(name, tmp_path):
    """The committed goldens are what the generator makes now (else: regenerate them)."""
    pytest.importorskip("pycrate_asn1dir")
    p, e = tmp_path / "g.pcap", tmp_path / "g.jsonl"
    synth.generate(p, expected_path=e, **synth.GOLDENS[name])
    assert p.read_bytes() == (PCAPS / f"{name}.pcap").read_bytes(), "stale golden: TOUCHPOINT_REGEN=1"
    assert e.read_text() == (PCAPS / f"{name}.expected.jsonl").read_text(), "stale golden: TOUCHPOINT_REGEN=1"


@pytest.mark.parametrize("name", NAMES)
def test_golden_decodes_to_expected(name):
    got, want = _decoded(name)
    problems = []
    for g, w in zip(got, want):
        for k, v in w.items():
            if g.get(k) != v:
                problems.append(f"frame {w['frame']} {w['kind']} {k}: expected {v!r}, got {g.get(k)!r}")
        for k in IDENTITY:
            if k in g and k not in w:
                problems.append(f"frame {w['frame']} {w['kind']} {k}: not expected, got {g[k]!r}")
    assert not problems, f"{len(problems)} mismatches:\n" + "\n".join(problems[:40])


def test_mixed_golden_covers_every_flow():
    """The mixed golden holds every kind of record the generator makes, data usage both
    periodic and at the end of the capture."""
    want = _expected("mixed_small")
    kinds = {(r["proto"], r["kind"]) for r in want}
    for k in (("gtpv2c", "session_create"), ("gtpv2c", "session_modify"), ("gtpv2c", "session_delete"),
              ("gtpv1c", "pdp_create"), ("gtpv1c", "pdp_delete"), ("gtpu", "data_usage"), ("cap", "call_attempt"),
              ("isup", "call_attempt"), ("cap", "call_end"), ("isup", "call_end"), ("map", "mms_notification"),
              ("map", "mt_sms"), ("map", "location_update")):
        assert k in kinds, k
    last = max(r["frame"] for r in want)
    usage = [r for r in want if r["kind"] == "data_usage"]
    assert any(r["frame"] < last for r in usage) and any(r["frame"] == last for r in usage)
    assert any(r["proto"] == "gtpv2c" and "error" in r["flags"] for r in want)
    assert {r["event"] for r in want if r["proto"] == "cap"} == {2, 3, 12}
    assert {r["cause"] for r in want if r["proto"] == "isup" and r["kind"] == "call_end"} >= {16, 17, 19}
    assert any(r.get("parts", 0) > 1 for r in want)
