"""`touchpoint ctl` against a running `touchpoint engine` process fed by `touchpoint probe`: every
command end to end over the real control socket (ipc, and tcp with CurveZMQ), the errors and exit
codes of bad commands, bad arguments, refused keys and a socket nobody answers on."""
import json
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import zmq
from click.testing import CliRunner

from touchpoint.control.cli import main
from touchpoint.probe.transport import authenticator, load_token

ROOT = Path(__file__).resolve().parents[1]
CLI = [
    sys.executable,
    "-c",
    "import sys; sys.path.insert(0, sys.argv.pop(1)); from touchpoint.control.cli import run; run()",
    str(ROOT),
]
PCAP_A = ROOT / "pcaps" / "map_mixed_small.pcap"       # 135 records
TIMEOUT = 60

CAMPAIGNS = {
    "sms": "status: active\ntrigger: {event: sms_mo}\nmessage: {text: hi}\n",
    "on": "status: active\nsend: approve\ntrigger: {event: power_on}\nmessage: {text: 开机有礼}\n",
    "mt": "status: active\ntrigger: {event: sms_mt}\naudience: {lists: [vip]}\nmessage: {text: hi}\n",
    "later": "status: draft\ntrigger: {event: ussd}\nmessage: {text: hi}\n",
}
VIP = "msisdn,level\n8613800000001,3\n8613800000002,1\n"


POLICY = "channel: file\nchannels:\n  file: {path: sent.jsonl}\n"     # no caps, no quiet hours


def write_rules(d, campaigns=CAMPAIGNS):
    d.mkdir(exist_ok=True)
    (d / "policy.yaml").write_text(POLICY)
    for cid, body in campaigns.items():
        (d / f"{cid}.yaml").write_text(f"id: {cid}\n{body}")
    return d


class Engine:
    """A `touchpoint engine` process with its rules and data directory in tmp."""

    def __init__(self, rules, data, *args):
        self.rules, self.data = rules, data
        self.proc = subprocess.Popen(CLI + ["engine", "--rules", str(rules), "--data", str(data),
                                            "--status-interval", "0", "--listen", "tcp://127.0.0.1:*", *args],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.head = []                              # what it said before it listened
        line = self.proc.stderr.readline()
        while "listening on" not in line:
            assert line, self.proc.stderr.read()
            self.head.append(line)
            line = self.proc.stderr.readline()
        self.listen = line.split("listening on ", 1)[1].split(";")[0].strip()
        self.ctl_endpoint = line.rsplit("ctl on ", 1)[1].strip()

    def ctl(self, *args, socket=None, expect=0) -> subprocess.CompletedProcess:
        where = ["--socket", socket] if socket else ["--data", str(self.data)]
        res = subprocess.run(CLI + ["ctl", *where, *args], capture_output=True, text=True, timeout=TIMEOUT)
        assert res.returncode == expect, (args, res.returncode, res.stdout, res.stderr)
        return res

    def json(self, *args, **kw):
        return json.loads(self.ctl("--json", *args, **kw).stdout)

    def stop(self, code: int = 0) -> str:
        self.proc.terminate()
        err = self.proc.communicate(timeout=TIMEOUT)[1]
        assert self.proc.returncode == code, err
        return err


def probe(pcap, endpoint) -> None:
    res = subprocess.run(
        CLI + ["probe", "--status-interval", "0", "--lossless", "--pcap", str(pcap), "--push", endpoint],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert res.returncode == 0, res.stderr


def import_vip(data):
    path = data.parent / "vip.csv"
    path.write_text(VIP)
    res = CliRunner().invoke(main, ["lists", "import", "vip", str(path), "--data", str(data)])
    assert res.exit_code == 0, res.output


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ctl")
    import_vip(tmp / "data")
    eng = Engine(write_rules(tmp / "rules"), tmp / "data", "--clock", "records")    # the capture's 2023 is "now"
    probe(PCAP_A, eng.listen)
    yield eng
    eng.stop()


def logged_triggers(data) -> list:
    return [json.loads(line) for line in (data / "triggers-shard-0.jsonl").read_text().splitlines()]


def sent_ids(data) -> set:
    path = data / "sent.jsonl"                  # the file channel's output (the default channel)
    return {json.loads(line)["id"] for line in path.read_text().splitlines()} if path.exists() else set()


def wait_for(check, what: str):
    """The sending thread works on its own: wait for what it must do (never asserting how fast)."""
    end = time.monotonic() + TIMEOUT
    while not (got := check()):
        assert time.monotonic() < end, f"gave up waiting for {what}"
        time.sleep(0.05)
    return got


# --- the engine's side of status, campaigns, lists, reload ----------------------------------------

def test_status_counts_what_the_probe_sent(engine):
    st = engine.json("status")["engine"]
    log = logged_triggers(engine.data)
    assert st["records"] == 135 and st["batches_lost"] == 0 and st["stream_errors"] == 0
    assert st["triggers"] == len(log) > 0
    assert st["subscribers"] > 0 and st["state_bytes"] > 0 and st["rss_bytes"] > st["state_bytes"]
    [stream] = st["streams"]
    assert (stream["probe"], stream["records"], stream["lost_batches"], stream["ended"]) == (0, 135, 0, True)
    d = engine.json("status")["dispatcher"]
    assert d["counters"]["offered"] == len(log) and d["counters"]["duplicates"] == 0
    assert sum(d["states"].values()) == len(log)                # one message a trigger, whatever became of it
    assert {cid: sum(n.values()) for cid, n in d["campaigns"].items()} == Counter(t["campaign"] for t in log)
    assert d["channels"]["file"]["connected"] is True
    text = engine.ctl("status").stdout
    assert "135 records" in text and f"{len(log)} triggers" in text and "probe streams:" in text
    assert "dispatcher:" in text and "states:" in text and "channels:" in text


def test_campaigns_show_every_campaign_with_its_triggers(engine):
    rows = {r["id"]: r for r in engine.json("campaigns")}
    fired = Counter(t["campaign"] for t in logged_triggers(engine.data))
    assert set(rows) == set(CAMPAIGNS)
    assert {cid: r["triggers"] for cid, r in rows.items()} == {cid: fired[cid] for cid in CAMPAIGNS}
    assert rows["later"]["status"] == "draft" and rows["on"]["send"] == "approve"
    counts = engine.json("status")["dispatcher"]["campaigns"]
    assert rows["sms"]["sent"] == counts["sms"].get("sent", 0) + counts["sms"].get("delivered", 0) > 0
    assert rows["on"]["pending"] == counts["on"]["pending"] > 0 and rows["on"]["sent"] == 0
    text = engine.ctl("campaigns").stdout.splitlines()
    assert text[0].split()[:2] == ["campaign", "status"] and len(text) == 1 + len(CAMPAIGNS)


def test_audience_counts_a_campaigns_group_now(engine):
    """`mt` is for the vip list: of the subscribers the engine knows, those in it (the list's
    MSISDNs 8613800000001 and 02 are not in the capture: nobody)."""
    got = engine.json("audience", "mt")
    known = engine.json("status")["engine"]["subscribers"]
    assert got == {"campaign": "mt", "audience": 0, "steps": [{"what": "subscribers known", "subscribers": known},
                                                              {"what": "in vip", "subscribers": 0}]}
    assert engine.json("audience", "sms")["audience"] == known            # no audience: everyone
    text = engine.ctl("audience", "mt").stdout
    assert text.splitlines()[0].split() == ["step", "subscribers"] and "mt: 0 subscribers in the audience now" in text
    assert "no campaign 'nope'" in engine.ctl("audience", "nope", expect=1).stderr


def test_lists_show_rows_columns_generation_and_users(engine):
    [vip] = engine.json("lists")
    assert (vip["name"], vip["rows"], vip["columns"], vip["used_by"]) == ("vip", 2, ["level"], ["mt"])
    assert vip["generation"] > 0
    assert "vip" in engine.ctl("lists").stdout


def test_reload_answers_with_the_rule_errors_and_keeps_the_rules(tmp_path):
    rules = write_rules(tmp_path / "rules")
    eng = Engine(rules, tmp_path / "data")
    try:
        assert eng.json("reload")["campaigns"] == len(CAMPAIGNS)
        (rules / "broken.yaml").write_text("id: broken\nstatus: active\ntrigger: {event: no_such_event}\n")
        res = eng.ctl("reload", expect=1)
        assert "rules not reloaded" in res.stderr and "broken.yaml:3" in res.stderr and "no_such_event" in res.stderr
        assert {r["id"] for r in eng.json("campaigns")} == set(CAMPAIGNS)       # the rules in force stay
        (rules / "broken.yaml").write_text("id: broken\nx: " + "[" * 500 + "]" * 500 + "\n")   # 1 KB
        res = eng.ctl("reload", expect=1)
        assert "broken.yaml:2: syntax: nested more than 64 levels deep" in res.stderr, res.stderr
        assert {r["id"] for r in eng.json("campaigns")} == set(CAMPAIGNS)
        (rules / "broken.yaml").write_text("id: broken\nstatus: active\ntrigger: {event: ussd}\nmessage: {text: x}\n")
        assert eng.json("reload")["active"] == 4
        assert "broken" in {r["id"] for r in eng.json("campaigns")}
    finally:
        eng.stop()


# --- the dispatcher's side: opt-outs, approvals, pause ----------------------------------------------

def test_optout_add_check_remove(engine):
    number = "8613800000009"                    # no one in the capture: nothing of the others' changes
    assert engine.json("optout", "check", number) == {"msisdn": number, "optouts": []}
    assert "no opt-out" in engine.ctl("optout", "check", number).stdout
    assert engine.json("optout", "add", "+" + number)["stopped"] == 0
    engine.ctl("optout", "add", number, "--campaign", "sms")
    got = engine.json("optout", "check", number)["optouts"]
    assert sorted((o["campaign"], o["source"]) for o in got) == [("*", "ctl"), ("sms", "ctl")]
    text = engine.ctl("optout", "check", number).stdout
    assert text.startswith(f"{number}: opted out") and "sms" in text
    engine.ctl("optout", "remove", number)
    assert [o["campaign"] for o in engine.json("optout", "check", number)["optouts"]] == ["sms"]
    res = engine.ctl("optout", "remove", number, expect=1)
    assert f"{number} has no opt-out from all campaigns set by ctl" in res.stderr
    engine.ctl("optout", "remove", number, "--campaign", "sms")
    assert engine.json("optout", "check", number)["optouts"] == []


def test_pending_messages_are_approved_rejected_or_stopped_by_an_optout(engine):
    pending = engine.json("pending", "--campaign", "on")["pending"]
    assert len(pending) == engine.json("status")["dispatcher"]["campaigns"]["on"]["pending"] >= 3
    assert {p["campaign"] for p in pending} == {"on"} and all(p["text"] == "开机有礼" for p in pending)
    text = engine.ctl("pending").stdout
    assert f"{len(pending)} pending" in text and pending[0]["id"] in text and "开机有礼" in text
    assert pending[0]["msisdn"] not in text and pending[0]["msisdn"][:5] in text      # half hidden

    first, second, *rest = pending
    res = engine.json("optout", "add", first["msisdn"], "--campaign", "on")
    assert res["stopped"] == 1
    assert engine.json("approve", "--id", second["id"]) == {"campaign": None, "id": second["id"], "approved": 1}
    assert [p["id"] for p in engine.json("pending")["pending"]] == [p["id"] for p in rest]
    wait_for(lambda: second["id"] in sent_ids(engine.data), "the approved message to go out")
    assert first["id"] not in sent_ids(engine.data)

    assert engine.ctl("reject", "on").stdout.strip() == f"rejected {len(rest)} messages"       # 3 or more
    assert engine.ctl("pending", "--campaign", "on").stdout.strip() == "nothing pending for campaign on"
    assert "nothing pending for campaign on" in engine.ctl("approve", "on", expect=1).stderr
    assert "nothing pending with id" in engine.ctl("reject", "--id", first["id"], expect=1).stderr
    states = engine.json("status")["dispatcher"]["reasons"]
    assert states["suppressed:optout"] >= 1 and states["rejected:ctl"] == len(rest)
    assert not {p["id"] for p in rest} & sent_ids(engine.data)
    engine.ctl("optout", "remove", first["msisdn"], "--campaign", "on")


def test_a_pause_suppresses_the_campaign_and_survives_a_restart(tmp_path):
    rules, data = write_rules(tmp_path / "rules"), tmp_path / "data"
    eng = Engine(rules, data, "--clock", "records")
    try:
        assert eng.ctl("pause", "sms").stdout.startswith("campaign sms paused")
        probe(PCAP_A, eng.listen)
        rows = {r["id"]: r for r in eng.json("campaigns")}
        assert (rows["sms"]["status"], rows["sms"]["override"], rows["sms"]["sent"]) == ("paused", "paused", 0)
        assert rows["sms"]["triggers"] > 0
        reasons = eng.json("status")["dispatcher"]["reasons"]
        assert reasons["suppressed:campaign_inactive"] == rows["sms"]["suppressed"]
        assert not any(json.loads(line)["campaign"] == "sms" for line in
                       (data / "sent.jsonl").read_text().splitlines())
    finally:
        eng.stop()
    eng = Engine(rules, data, "--clock", "records")
    try:
        assert {r["id"]: r["status"] for r in eng.json("campaigns")}["sms"] == "paused"
        assert "paused (ctl)" in eng.ctl("campaigns").stdout
        assert eng.ctl("resume", "sms").stdout.strip() == "campaign sms resumed"
    finally:
        eng.stop()
    eng = Engine(rules, data, "--clock", "records")
    try:
        rows = {r["id"]: r for r in eng.json("campaigns")}
        assert (rows["sms"]["status"], rows["sms"]["override"]) == ("active", None)
    finally:
        eng.stop()


def test_send_a_campaign_now_to_its_audience_once(tmp_path):
    """`ctl send`: --dry-run gives the funnel and sends nothing; --limit 2 sends to two; a send of
    the whole audience at the same (record) time sends to the others only: the two have their
    messages already (the same ids), none is sent twice."""
    group = 'status: active\nschedule: {at: ["12:00"], dates: [2030-01-01]}\nmessage: {text: 全体}\npriority: 5\n'
    eng = Engine(write_rules(tmp_path / "rules", {**CAMPAIGNS, "group": group}), tmp_path / "data",
                 "--clock", "records")
    try:
        probe(PCAP_A, eng.listen)
        known = eng.json("status")["engine"]["subscribers"]
        dry = eng.json("send", "group", "--dry-run")
        n = dry["triggers"]
        assert dry["steps"] == [{"what": "subscribers known", "subscribers": known}] and 3 < n <= known
        assert "outcomes" not in dry and not any(t["campaign"] == "group" for t in logged_triggers(eng.data))
        text = eng.ctl("send", "group", "--dry-run").stdout
        assert f"group: {n} subscribers with an MSISDN would be offered to the contact policy; nothing sent" in text
        two = eng.json("send", "group", "--limit", "2")
        assert (two["triggers"], two["outcomes"]) == (2, {"queued": 2})

        def group_sent():
            return [json.loads(line)["id"] for line in (eng.data / "sent.jsonl").read_text().splitlines()
                    if json.loads(line)["campaign"] == "group"]
        wait_for(lambda: len(group_sent()) == 2, "the two messages")
        rest = eng.json("send", "group")["outcomes"]             # the caps (1 a day) stop some
        assert sum(rest.values()) == n - 2 and rest["queued"] > 0
        sent = wait_for(lambda: len(group_sent()) == 2 + rest["queued"] and group_sent(), "the others' messages")
        assert len(set(sent)) == len(sent)
        assert {t["event"] for t in logged_triggers(eng.data) if t["campaign"] == "group"} == {"send"}
        assert "is 'draft' in" in eng.ctl("send", "later", expect=1).stderr
    finally:
        eng.stop()


def test_without_a_dispatcher_its_commands_say_so(tmp_path):
    eng = Engine(write_rules(tmp_path / "rules"), tmp_path / "data", "--no-dispatch")
    try:
        assert eng.json("status")["dispatcher"] is None
        assert "dispatcher: none in this engine" in eng.ctl("status").stdout
        assert [r["sent"] for r in eng.json("campaigns")] == [0] * len(CAMPAIGNS)
        for args in (["pause", "sms"], ["pending"], ["optout", "check", "8613800000009"]):
            assert "this engine runs without a dispatcher" in eng.ctl(*args, expect=1).stderr
    finally:
        eng.stop()


# --- errors ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, code, says", [
    (["bogus"], 2, "No such command 'bogus'"),
    (["pause"], 2, "Missing argument 'CAMPAIGN'"),
    (["pause", "Not!Valid"], 2, "is not a campaign id"),
    (["optout", "add", "12ab"], 2, "is not an MSISDN"),
    (["approve"], 2, "name a CAMPAIGN or a message --id"),
    (["approve", "on", "--id", "abcdef0123"], 2, "name a CAMPAIGN or a message --id"),
    (["pause", "nosuch"], 1, "no campaign 'nosuch'"),
    (["resume", "later"], 1, "is 'draft' in"),
    (["pending", "--campaign", "nosuch"], 1, "no campaign 'nosuch'"),
])
def test_bad_commands_and_arguments_exit_with_a_clear_message(engine, args, code, says):
    res = engine.ctl(*args, expect=code)
    assert says in res.stderr


@pytest.mark.parametrize("payload, says", [
    (b"not json", "not JSON"),
    (b'["status"]', '{"cmd": NAME'),
    (b'{"cmd": "format_disk"}', "unknown command 'format_disk'"),
    (b'{"cmd": "pause", "args": {"campaign": 7}}', "campaign 7 is not a campaign id"),
    (b'{"cmd": "pause", "args": {"campaign": "sms", "force": true}}', "unknown argument 'force'"),
    (b'{"cmd": "optout", "args": {"action": "add"}}', "msisdn is needed"),
    (b'{"cmd": "status", "args": []}', "args must be an object"),
])
def test_a_malformed_request_gets_an_error_reply_and_the_engine_goes_on(engine, payload, says):
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(engine.ctl_endpoint)
    try:
        sock.send(payload)
        assert sock.poll(TIMEOUT * 1000)
        reply = json.loads(sock.recv())
    finally:
        sock.close()
        ctx.term()
    assert reply["ok"] is False and says in reply["error"]
    assert engine.json("status")["engine"]["records"] == 135


def test_an_oversized_request_is_dropped_and_the_engine_goes_on(engine):
    with zmq.Context() as ctx, ctx.socket(zmq.REQ) as sock:
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(engine.ctl_endpoint)
        sock.send(json.dumps({"cmd": "status", "args": {"pad": "x" * (1 << 20)}}).encode())
        assert not sock.poll(500)               # libzmq cut the connection: no reply, no engine hurt
    assert engine.json("status")["engine"]["records"] == 135


def test_a_socket_nobody_answers_on_exits_3_naming_it(tmp_path):
    res = subprocess.run(CLI + ["ctl", "--data", str(tmp_path), "status"], capture_output=True, text=True,
                         timeout=TIMEOUT)
    assert res.returncode == 3
    assert f"no control socket at {tmp_path}/ctl.sock" in res.stderr and f"--data {tmp_path}" in res.stderr
    with zmq.Context() as ctx, ctx.socket(zmq.ROUTER) as silent:   # takes the token, never answers
        auth = authenticator(ctx, token=load_token())
        silent.plain_server = True
        port = silent.bind_to_random_port("tcp://127.0.0.1")
        res = subprocess.run(CLI + ["ctl", "--socket", f"tcp://127.0.0.1:{port}", "status"], capture_output=True,
                             text=True, timeout=TIMEOUT)
        auth.stop()
    assert res.returncode == 3
    assert f"tcp://127.0.0.1:{port}: no answer within 5 s" in res.stderr and "--ctl tcp://" in res.stderr


def test_a_control_socket_off_loopback_needs_curve(tmp_path):
    rules = write_rules(tmp_path / "rules")
    res = subprocess.run(CLI + ["engine", "--rules", str(rules), "--data", str(tmp_path / "d"),
                                "--ctl", "tcp://0.0.0.0:0"], capture_output=True, text=True, timeout=TIMEOUT)
    assert res.returncode == 2 and "needs --ctl-curve-key and --ctl-curve-clients" in res.stderr
    res = CliRunner().invoke(main, ["ctl", "--socket", "tcp://10.1.2.3:5560", "status"])
    assert res.exit_code == 2 and "give --curve-server-key and --curve-key" in res.output


# --- CurveZMQ on tcp ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    for where, name in [(d, "engine"), (d / "clients", "ops"), (d, "rogue")]:
        res = CliRunner().invoke(main, ["keys", "generate", str(where), "--name", name])
        assert res.exit_code == 0, res.output
    return d


@pytest.fixture(scope="module")
def curve_engine(tmp_path_factory, keys):
    tmp = tmp_path_factory.mktemp("curve")
    eng = Engine(write_rules(tmp / "rules"), tmp / "data", "--ctl", "tcp://127.0.0.1:*",
                 "--ctl-curve-key", str(keys / "engine.key_secret"), "--ctl-curve-clients", str(keys / "clients"))
    yield eng
    eng.stop()


def test_curve_on_tcp_lets_an_authorised_key_in(curve_engine, keys):
    assert curve_engine.ctl_endpoint.startswith("tcp://127.0.0.1:")
    st = curve_engine.json("--curve-server-key", str(keys / "engine.key"), "--curve-key",
                           str(keys / "clients/ops.key_secret"), "status", socket=curve_engine.ctl_endpoint)
    assert st["engine"]["records"] == 0


@pytest.mark.parametrize("client, server, says", [
    ("rogue.key_secret", "engine.key", "the Curve key was refused"),
    ("clients/ops.key_secret", "rogue.key", "closed during the handshake"),
    (None, None, "(security mismatch|closed during the handshake)"),     # whichever side notices first
], ids=["unauthorised key", "wrong server key", "no key"])
def test_a_wrong_key_is_refused_without_hanging(curve_engine, keys, client, server, says):
    curve = ["--curve-server-key", str(keys / server), "--curve-key", str(keys / client)] if client else []
    res = curve_engine.ctl(*curve, "status", socket=curve_engine.ctl_endpoint, expect=3)
    assert re.search(says, res.stderr) and "check the keys" in res.stderr and "no answer" not in res.stderr


def test_subscriber_shows_one_profile_and_trail_masked(engine):
    """A subscriber of the capture with messages: its state and trail, the numbers masked
    unless --reveal (they are personal data)."""
    log = logged_triggers(engine.data)
    msisdn = next(t["msisdn"] for t in log if t["msisdn"] and t["campaign"] == "sms")
    full = engine.json("subscriber", msisdn, "--reveal")
    assert full["msisdn"] == msisdn and full["state"]["msisdn"] == msisdn
    mine = [t for t in log if t["msisdn"] == msisdn]
    assert sorted(m["campaign"] for m in full["trail"]) == sorted(t["campaign"] for t in mine)
    assert full["state"]["profile"]["sms_mo"][0] >= sum(t["campaign"] == "sms" for t in mine)
    assert full["state"]["lifecycle"] in ("loyal", "active", "trial", "silent", "potential")
    masked = engine.json("subscriber", msisdn)
    assert masked["msisdn"] != msisdn and "*" in masked["msisdn"] and msisdn not in json.dumps(masked)
    text = engine.ctl("subscriber", msisdn).stdout
    assert msisdn not in text and "profile" in text and "messages:" in text and "lifecycle " in text
    assert "no such subscriber" in engine.ctl("subscriber", "8613999999999", expect=1).stderr
