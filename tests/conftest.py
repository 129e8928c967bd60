import os
import sys

import pytest

# Import the working tree's packages (probe, control) whatever the current directory.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@pytest.fixture(scope="session", autouse=True)
def token_file(tmp_path_factory):
    """The token tcp sockets authenticate with, this run's own (the tests' engines, probes and ctl
    are subprocesses: they find it through the environment), not the user's."""
    path = tmp_path_factory.mktemp("config") / "token"
    os.environ["TOUCHPOINT_TOKEN_FILE"] = str(path)
    yield path
    os.environ.pop("TOUCHPOINT_TOKEN_FILE", None)


# The generator's captures for tests/test_synth*.py, made once a module.
@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """MAP only (MAP_MIX): the first generator's traffic."""
    d = tmp_path_factory.mktemp("synth")
    p, e = d / "s.pcap", d / "s.expected.jsonl"
    from touchpoint.probe import synth
    st = synth.generate(p, packets=3000, seed=5, subscribers=200, expected_path=e, mix=synth.MAP_MIX)
    return p, e, st


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """The default mix, slow enough (10 packets a second) for periodic data usage records."""
    d = tmp_path_factory.mktemp("synth_mixed")
    p, e = d / "m.pcap", d / "m.expected.jsonl"
    from touchpoint.probe import synth
    st = synth.generate(p, packets=3000, seed=7, subscribers=200, rate_pps=10.0, expected_path=e)
    return p, e, st
