"""An engine SIGKILLed mid-stream and restarted, with its in-process dispatcher, behind a lossless
probe: the same trigger log, line for line, and the same messages in the same states as an engine
that was never disturbed. What makes it so: the journal (control.journal) of every chunk before it
is processed and acknowledged, the probe that sends again what was not acknowledged, and the
restart that runs the journal through the engine again without writing a trigger twice."""
import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.test_engine_run import CLI, TIMEOUT

CAMPAIGNS = {
    "sms": "trigger: {event: sms_mo}\nholdout: 10%\ncooldown: 10m\n",
    "mt": "trigger: {event: sms_mt}\npriority: 2\n",
    "on": "trigger: {event: power_on}\n",
    "data": "trigger: {event: data_session_start}\nholdout: 20%\n",
    "calls": "trigger: {event: hotline_call, numbers: ['1*', '8*']}\n",
}
POLICY = "caps: [{per: 1h, max: 3}]\narbitration: 60s\nchannels: {file: {path: sent.jsonl}}\n"


def rules_and_day(d: Path, campaigns: dict, *synth: str) -> tuple:
    """A rules directory of these campaigns (and POLICY) and a synth day, in d."""
    rules = d / "rules"
    rules.mkdir()
    for cid, body in campaigns.items():
        (rules / f"{cid}.yaml").write_text(f"id: {cid}\nstatus: active\n{body}message: {{text: 'hi {{msisdn}}'}}\n")
    (rules / "policy.yaml").write_text(POLICY)
    pcap = d / "day.pcap"
    res = subprocess.run(CLI + ["synth", str(pcap), *synth], capture_output=True, text=True, timeout=TIMEOUT)
    assert res.returncode == 0, res.stderr
    return rules, pcap


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return rules_and_day(tmp_path_factory.mktemp("kill"), CAMPAIGNS,
                         "--subscribers", "400", "--packets", "60000", "--rate", "20", "--seed", "7")


def engine(rules, data, sock, err: Path) -> subprocess.Popen:
    with open(err, "w") as f:           # a file, not a pipe: nobody reads it until the end
        return subprocess.Popen(CLI + ["engine", "--rules", str(rules), "--data", str(data), "--listen", sock,
                                       "--status-interval", "0", "--expect-eos", "1", "--clock", "records",
                                       "--snapshot-interval", "1"], stdout=subprocess.DEVNULL, stderr=f)


def lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0


def run(rules, pcap, data: Path, kill_at=()) -> dict:
    """A lossless probe (small batches, paced by the engine's acknowledgements) into an engine
    that is SIGKILLed when its trigger log reaches each of kill_at lines, and started again."""
    sock = f"ipc://{data.parent}/{data.name}.sock"
    errs = [data.parent / f"{data.name}-engine-{i}.err" for i in range(len(kill_at) + 1)]
    proc = engine(rules, data, sock, errs[0])
    probe = subprocess.Popen(CLI + ["probe", "--status-interval", "0", "--lossless", "--batch", "200",
                                    "--queue", "4000", "--ack-timeout", "60", "--pcap", str(pcap), "--push", sock],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log = data / "triggers-shard-0.jsonl"
    for i, at in enumerate(kill_at, 1):
        end = time.monotonic() + TIMEOUT
        while lines(log) < at:
            assert proc.poll() is None, errs[i - 1].read_text()
            assert time.monotonic() < end, f"the trigger log never reached {at} lines"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(TIMEOUT)
        proc = engine(rules, data, sock, errs[i])
    perr = probe.communicate(timeout=TIMEOUT * 2)[1]
    proc.wait(TIMEOUT)
    err = [e.read_text() for e in errs]
    assert probe.returncode == 0, perr
    assert proc.returncode == 0, err[-1]
    db = sqlite3.connect(str(data / "outbox.sqlite"))
    try:
        messages = {i: (s, r) for i, s, r in db.execute("SELECT id, state, reason FROM messages")}
    finally:
        db.close()
    sent = [json.loads(x)["id"] for x in (data / "sent.jsonl").read_text().splitlines()]
    return {"log": log.read_text().splitlines(), "messages": messages, "sent": sorted(sent), "err": err,
            "probe": perr}


def test_killed_engine_gives_what_an_undisturbed_one_gives(setup, tmp_path):
    rules, pcap = setup
    calm = run(rules, pcap, tmp_path / "calm")
    n = len(calm["log"])
    assert n > 200 and len(calm["sent"]) > 100
    assert {s for s, _ in calm["messages"].values()} >= {"sent", "suppressed"}
    killed = run(rules, pcap, tmp_path / "killed", kill_at=(n // 5, n // 2, 3 * n // 4))
    assert sum("replayed " in e for e in killed["err"]) == 3, killed["err"]
    assert killed["log"] == calm["log"]                 # the same triggers, in the same order, once each
    assert killed["messages"] == calm["messages"]       # the same messages, decided the same way
    assert killed["sent"] == calm["sent"]               # and each sent once
    assert "drops: none" in killed["probe"].splitlines()[-1]
