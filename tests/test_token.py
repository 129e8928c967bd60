"""Loopback is not trust (issue 17 item 5): tcp without Curve authenticates with the token, even on
127.0.0.1, so another local user cannot feed an engine, read its pending subscribers or steer it;
ipc sockets are their owner's; the engine logs who issued each ctl command; an engine with Curve
keys but no client key directory says it lets in any client.

"Another user" is another token file here: that is all the sockets can tell them apart by (a user
who can read this user's token file is this user, as far as the engine can know)."""
import json
import os
import re
import socket
import stat
import subprocess
import time

import pytest
import zmq

from zmq.utils.monitor import recv_monitor_message

from touchpoint.probe.transport import HANDSHAKE_FAILED, load_token

from .test_ctl import CLI, PCAP_A, TIMEOUT, Engine, probe, write_rules
from .test_probe import _batch

STRANGER = {"user": "mallory", "pid": 1}


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("token")
    eng = Engine(write_rules(tmp / "rules"), tmp / "data", "--clock", "records",
                 "--ctl", "tcp://127.0.0.1:*")
    probe(PCAP_A, eng.listen)
    yield eng
    err = eng.stop(code=1)                      # 1: it had to turn clients away
    assert f"a peer on {eng.listen}: the token was refused" in err
    assert re.search(f"a peer on {eng.listen}: (security mismatch|the connection closed during the handshake)",
                     err), err                  # the key-less client: whichever side notices first


def stranger(tmp_path) -> dict:
    """The environment of a user with a token of their own."""
    return dict(os.environ, TOUCHPOINT_TOKEN_FILE=str(tmp_path / "theirs" / "token"))


def run(args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + args, capture_output=True, text=True, timeout=TIMEOUT, env=env)


def records(eng, env=None) -> int:
    res = run(["ctl", "--socket", eng.ctl_endpoint, "--json", "status"], env)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)["engine"]["records"]


def test_the_token_file_is_made_for_its_owner_alone_and_refused_when_others_may_read_it(tmp_path):
    path = tmp_path / "cfg" / "touchpoint" / "token"
    secret = load_token(str(path))
    assert len(secret) >= 32 and load_token(str(path)) == secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    path.chmod(0o644)
    with pytest.raises(ValueError, match=r"others may read it \(mode 644\): chmod 600"):
        load_token(str(path))
    path.chmod(0o600)
    path.write_text("")
    with pytest.raises(ValueError, match="is empty"):
        load_token(str(path))


def test_processes_making_the_token_at_once_agree_on_it(tmp_path):
    path = tmp_path / "token"
    code = "import sys; from touchpoint.probe.transport import load_token; print(load_token(sys.argv[1]).decode())"
    procs = [subprocess.Popen([CLI[0], "-c", code, str(path)], stdout=subprocess.PIPE, text=True) for _ in range(8)]
    got = {p.communicate(timeout=TIMEOUT)[0].strip() for p in procs}
    assert got == {path.read_text().strip()}


def test_a_probe_with_another_token_is_refused_and_feeds_nothing(engine, tmp_path):
    before = records(engine)
    res = run(["probe", "--status-interval", "0", "--lossless", "--pcap", str(PCAP_A), "--push", engine.listen],
              stranger(tmp_path))
    assert res.returncode == 3, res.stderr
    assert "the token was refused" in res.stderr
    assert records(engine) == before


def test_a_client_without_any_security_feeds_nothing(engine):
    before = records(engine)
    with zmq.Context() as ctx, ctx.socket(zmq.DEALER) as d:
        d.setsockopt(zmq.LINGER, 0)
        monitor = d.get_monitor_socket(HANDSHAKE_FAILED)
        d.connect(engine.listen)
        for seq in (0, 1):          # once the handshake has failed the DEALER has no peer: a send would block
            try:
                d.send_multipart(_batch(seq), flags=zmq.NOBLOCK)
            except zmq.Again:
                pass
        assert monitor.poll(TIMEOUT * 1000), "the engine never turned it away"
        assert recv_monitor_message(monitor)["event"] & HANDSHAKE_FAILED
        assert not d.poll(0)                    # no acknowledgement: nothing reached the engine
        d.disable_monitor()
        monitor.close(linger=0)
    assert records(engine) == before


def test_ctl_with_another_token_gets_nothing_and_changes_nothing(engine, tmp_path):
    env = stranger(tmp_path)
    for args in (["pending"], ["pause", "sms"], ["optout", "add", "8613800000009"]):
        res = run(["ctl", "--socket", engine.ctl_endpoint, *args], env)
        assert res.returncode == 3, (args, res.stdout, res.stderr)
        assert "the token was refused" in res.stderr and "--token-file" in res.stderr
        assert "8613800000009" not in res.stdout
    res = run(["ctl", "--socket", engine.ctl_endpoint, "--json", "campaigns"])
    assert res.returncode == 0, res.stderr
    assert {c["id"]: c["status"] for c in json.loads(res.stdout)}["sms"] == "active"


def test_the_engine_logs_who_issued_each_command_and_never_the_number(tmp_path):
    eng = Engine(write_rules(tmp_path / "rules"), tmp_path / "data", "--ctl", "tcp://127.0.0.1:*")
    try:
        for args in (["pause", "sms"], ["optout", "add", "8613800000009"], ["status"]):
            res = run(["ctl", "--socket", eng.ctl_endpoint, *args])
            assert res.returncode == 0, res.stderr
        with zmq.Context() as ctx, ctx.socket(zmq.REQ) as sock:      # one that names nobody
            sock.plain_username, sock.plain_password = b"touchpoint", load_token()
            sock.connect(eng.ctl_endpoint)
            sock.send(json.dumps({"cmd": "status", "from": STRANGER}).encode())
            assert sock.poll(TIMEOUT * 1000) and json.loads(sock.recv())["ok"]
    finally:
        err = eng.stop()
    log = [line for line in err.splitlines() if " ctl " in line]
    me = f"by {os.environ.get('USER') or __import__('getpass').getuser()} pid "
    assert len(log) == 4, err
    assert "ctl pause campaign sms " + me in log[0] and log[0].endswith("(the token, from 127.0.0.1)")
    assert "ctl optout add " + me in log[1]
    assert "ctl status " + me in log[2]
    assert "ctl status by mallory pid 1 (the token, from 127.0.0.1)" in log[3]
    assert "8613800000009" not in err


def test_ipc_sockets_are_their_owners_alone(tmp_path):
    listen = tmp_path / "records.sock"
    eng = Engine(write_rules(tmp_path / "rules"), tmp_path / "data", "--listen", f"ipc://{listen}")
    try:
        assert stat.S_IMODE(listen.stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "data" / "ctl.sock").stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    finally:
        eng.stop()


def test_a_dispatcher_with_another_token_says_it_was_refused(tmp_path):
    with socket.socket() as s:                  # a free port: --triggers binds no wildcard
        s.bind(("127.0.0.1", 0))
        triggers = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    eng = Engine(write_rules(tmp_path / "rules"), tmp_path / "data", "--no-dispatch", "--triggers", triggers)
    disp = subprocess.Popen(CLI + ["dispatcher", "--triggers", triggers, "--rules",
                                   str(tmp_path / "rules"), "--data", str(tmp_path / "d2"), "--status-interval", "0"],
                            stderr=subprocess.PIPE, text=True, env=stranger(tmp_path))
    try:
        deadline = time.monotonic() + TIMEOUT
        line = ""
        while "refused" not in line and time.monotonic() < deadline:
            line = disp.stderr.readline()
            assert line, "the dispatcher ended"
        assert f"{triggers}: the token was refused" in line
    finally:
        disp.terminate()
        disp.communicate(timeout=TIMEOUT)
        eng.stop()


def test_curve_keys_without_client_keys_warn_that_any_client_gets_in(tmp_path):
    keys = tmp_path / "keys"
    res = run(["keys", "generate", str(keys), "--name", "engine"])
    assert res.returncode == 0, res.stderr
    eng = Engine(write_rules(tmp_path / "rules"), tmp_path / "data", "--curve-key", str(keys / "engine.key_secret"))
    err = "".join(eng.head) + eng.stop()
    assert "warning: --curve-key without --curve-clients: --listen accepts any client that has this server's " \
           "public key" in err
