"""CurveZMQ on the probe -> engine links: keys, an encrypted stream, refused keys, the plain-text rule.

probe and tap run as subprocesses over tcp on loopback (the only place this test sends to).
"""
import os
import re
import stat
import subprocess
from unittest import mock

import pytest
import zmq.auth
from click.testing import CliRunner

from touchpoint.control.cli import main
from touchpoint.probe.transport import plain_allowed
from tests.test_probe import CLI, MIXED_RECORDS, PCAPS, ROOT, TIMEOUT, decode_lines, finish, run_probe, start_tap

MIXED = ROOT / "pcaps" / "mixed_small.pcap"


@pytest.fixture()
def keys(tmp_path):
    """engine, probe (authorised) and rogue (not) key pairs, made by `touchpoint keys generate`."""
    runner = CliRunner()
    for where, name in [(tmp_path, "engine"), (tmp_path / "clients", "probe"), (tmp_path, "rogue")]:
        res = runner.invoke(main, ["keys", "generate", str(where), "--name", name])
        assert res.exit_code == 0, res.output
    return tmp_path


def test_keys_generate_writes_a_private_pair_and_never_overwrites(keys):
    public, secret = zmq.auth.load_certificate(str(keys / "engine.key_secret"))
    assert len(public) == len(secret) == 40
    assert zmq.auth.load_certificate(str(keys / "engine.key")) == (public, None)
    assert stat.S_IMODE(os.stat(keys / "engine.key_secret").st_mode) == 0o600
    res = CliRunner().invoke(main, ["keys", "generate", str(keys), "--name", "engine"])
    assert res.exit_code == 1 and "exists: keys are not overwritten" in res.output
    assert zmq.auth.load_certificate(str(keys / "engine.key_secret")) == (public, secret)


def test_keys_are_private_from_their_first_byte_whatever_the_umask(tmp_path):
    """zmq.auth writes with the umask's mode; under 000 the secret was world-readable until the
    chmod after it (a reader running as another user read 2 of 150)."""
    seen = []
    real_open = open

    def watching(path, *a, **kw):           # the mode each file has as it is written
        f = real_open(path, *a, **kw)
        if "key" in str(path):
            seen.append((os.path.basename(str(path)), stat.S_IMODE(os.fstat(f.fileno()).st_mode)))
        return f

    old = os.umask(0)
    try:
        with mock.patch("builtins.open", watching):
            res = CliRunner().invoke(main, ["keys", "generate", str(tmp_path), "--name", "e"])
    finally:
        os.umask(old)
    assert res.exit_code == 0, res.output
    assert ("e.key_secret", 0o600) in seen and all(m == 0o600 for _, m in seen)
    assert stat.S_IMODE(os.stat(tmp_path / "e.key").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(tmp_path / "e.key_secret").st_mode) == 0o600


def curve_tap(keys, *args):
    return start_tap("--listen", "tcp://127.0.0.1:0", "--curve-key", str(keys / "engine.key_secret"), *args)


def curve_probe(keys, ep, client="clients/probe.key_secret", server="engine.key", args=()):
    return run_probe("--pcap", str(MIXED), "--push", ep, "--lossless", "--curve-server-key", str(keys / server),
                     "--curve-key", str(keys / client), *args)


def test_an_encrypted_stream_from_an_authorised_probe_arrives_whole(keys):
    tap, eps = curve_tap(keys, "--curve-clients", str(keys / "clients"), "--format", "jsonl", "--expect-eos", "1")
    probe = curve_probe(keys, eps[0])
    code, out, err = finish(tap)
    assert probe.returncode == 0 and code == 0, probe.stderr + err
    assert sorted(out.splitlines()) == sorted(decode_lines(MIXED))
    assert "acknowledged by 1/1" in probe.stderr


def test_without_a_client_list_any_curve_probe_with_the_server_key_gets_in(keys):
    tap, eps = curve_tap(keys, "--count", "--expect-eos", "1")
    probe = curve_probe(keys, eps[0], client="rogue.key_secret")
    code, out, err = finish(tap)
    assert probe.returncode == 0 and code == 0 and int(out) == MIXED_RECORDS, probe.stderr + err


MISMATCH = r"(security mismatch|closed during the handshake)"      # whichever side notices first


@pytest.mark.parametrize(
    "client, server, probe_says, tap_says",
    [
        (
            "rogue.key_secret",
            "engine.key",
            r"the Curve key was refused \(status 400",
            "not among the authorised client keys",
        ),
        (
            "clients/probe.key_secret",
            "rogue.key",
            "closed during the handshake",
            "does not have this server's public key",
        ),
        (None, None, MISMATCH, MISMATCH),
    ],
    ids=["unauthorised probe key", "wrong server key", "plain probe"],
)
def test_a_wrong_key_is_refused_and_reported_by_both_sides(keys, client, server, probe_says, tap_says):
    """The probe stops with exit 3 and the reason (it does not wait, or hang); the tap names it."""
    tap, eps = curve_tap(keys, "--curve-clients", str(keys / "clients"), "--count")
    if client:
        probe = curve_probe(keys, eps[0], client=client, server=server, args=("--ack-timeout", "60"))
    else:
        probe = run_probe("--pcap", str(MIXED), "--push", eps[0], "--lossless", "--ack-timeout", "60")
    tap.send_signal(2)
    code, out, err = finish(tap)
    assert probe.returncode == 3, probe.stderr
    assert re.search(f"shard 0 \\({eps[0]}\\) failed: .*{probe_says}", probe.stderr), probe.stderr
    assert "end of stream acknowledged by 0/1" in probe.stderr
    assert code == 1 and out.strip() == "0"
    assert re.search(f"a peer on {eps[0]}: .*{tap_says}", err), err


def test_a_curve_probe_cannot_talk_to_a_plain_tap():
    tap, eps = start_tap("--listen", "tcp://127.0.0.1:0", "--count")
    try:
        keys = CliRunner()
        with keys.isolated_filesystem():
            assert keys.invoke(main, ["keys", "generate", ".", "--name", "k"]).exit_code == 0
            probe = run_probe("--pcap", str(PCAPS[0]), "--push", eps[0], "--lossless", "--ack-timeout", "60",
                              "--curve-server-key", "k.key", "--curve-key", "k.key_secret")
    finally:
        tap.send_signal(2)
        finish(tap)
    assert probe.returncode == 3 and re.search(MISMATCH, probe.stderr), probe.stderr


# --- the plain-text rule -------------------------------------------------------------------------

def test_plain_text_is_allowed_only_on_this_host_by_default():
    for ep in ["ipc:///run/tp.sock", "inproc://x", "tcp://127.0.0.1:5555", "tcp://127.8.9.1:5555",
               "tcp://[::1]:5555", "tcp://localhost:5555", "tcp://eth0;127.0.0.1:5555"]:
        assert plain_allowed(ep), ep
    for ep in ["tcp://10.1.2.3:5555", "tcp://0.0.0.0:5555", "tcp://*:5555", "tcp://engine:5555",
               "tcp://[2001:db8::1]:5555", "tcp://eth0:5555", "tcp://127.0.0.1;10.1.2.3:5555"]:
        assert not plain_allowed(ep), ep


def test_unencrypted_tcp_beyond_loopback_needs_plain(keys):
    runner = CliRunner()
    res = runner.invoke(main, ["probe", "--pcap", str(PCAPS[0]), "--push", "tcp://192.0.2.7:5555"])
    assert res.exit_code == 2 and "--push tcp://192.0.2.7:5555 is not on loopback" in res.output
    assert "--curve-server-key and --curve-key" in res.output and "--plain" in res.output
    res = runner.invoke(main, ["tap", "--listen", "tcp://0.0.0.0:5555", "--count"])
    assert res.exit_code == 2 and "--listen tcp://0.0.0.0:5555 is not on loopback" in res.output
    for args, text in [(["--curve-key", str(keys / "clients" / "probe.key_secret")], "go together"),
                       (["--plain", "--curve-server-key", str(keys / "engine.key"),
                         "--curve-key", str(keys / "clients" / "probe.key_secret")], "exclude each other"),
                       (["--curve-server-key", str(keys / "engine.key"), "--curve-key", str(keys / "engine.key")],
                        "holds no secret key")]:
        res = runner.invoke(main, ["probe", "--pcap", str(PCAPS[0]), "--push", "tcp://127.0.0.1:5", *args])
        assert res.exit_code == 2 and text in res.output, (args, res.output)
    res = runner.invoke(main, ["tap", "--listen", "tcp://127.0.0.1:0", "--curve-clients", str(keys)])
    assert res.exit_code == 2 and "--curve-clients goes with --curve-key" in res.output


def test_plain_lets_a_tap_listen_on_every_interface():
    """Binding is local: nothing is sent anywhere."""
    proc = subprocess.Popen(CLI + ["tap", "--listen", "tcp://0.0.0.0:0", "--plain", "--count"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stderr.readline()
    proc.send_signal(2)
    code, out, err = finish(proc, TIMEOUT)
    assert "listening on tcp://0.0.0.0:" in first and code == 0 and out.strip() == "0"
