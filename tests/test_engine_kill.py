"""An engine SIGKILLed mid-stream and restarted, with its in-process dispatcher, behind a lossless
probe: the same trigger log, line for line, and the same messages in the same states as an engine
that was never disturbed. What makes it so: the journal (control.journal) of every chunk before it
is processed and acknowledged, the probe that sends again what was not acknowledged, and the
restart that runs the journal through the engine again without writing a trigger twice. Both
export the marketing data pool (control.pool): the undisturbed one at its end, the killed one
also halfway to each kill (`ctl export`), and its pool holds the same rows, each once."""
import json
import re
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.test_engine_run import CLI, TIMEOUT
from touchpoint.control.ctlclient import request

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


def engine(rules, data, sock, err: Path, extra=()) -> subprocess.Popen:
    with open(err, "w") as f:           # a file, not a pipe: nobody reads it until the end
        return subprocess.Popen(CLI + ["engine", "--rules", str(rules), "--data", str(data), "--listen", sock,
                                       "--status-interval", "0", "--expect-eos", "1", "--clock", "records",
                                       "--snapshot-interval", "1", *extra], stdout=subprocess.DEVNULL, stderr=f)


def lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0


def run(rules, pcap, data: Path, kill_at=(), export: bool = False) -> dict:
    """A lossless probe (small batches, paced by the engine's acknowledgements) into an engine
    that is SIGKILLed when its trigger log reaches each of kill_at lines, and started again;
    `export`: to DATA-pool, and halfway to each kill (`ctl export`); before each restart, an event
    file of a generation no snapshot holds is planted, as a kill between writing it and the
    snapshot after it leaves one."""
    sock = f"ipc://{data.parent}/{data.name}.sock"
    errs = [data.parent / f"{data.name}-engine-{i}.err" for i in range(len(kill_at) + 1)]
    pool = data.parent / f"{data.name}-pool"
    extra = ("--export", str(pool)) if export else ()
    proc = engine(rules, data, sock, errs[0], extra)
    probe = subprocess.Popen(CLI + ["probe", "--status-interval", "0", "--lossless", "--batch", "200",
                                    "--queue", "4000", "--ack-timeout", "60", "--pcap", str(pcap), "--push", sock],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log = data / "triggers-shard-0.jsonl"
    prev = 0
    for i, at in enumerate(kill_at, 1):
        for step in ((prev + at) // 2, at) if export else (at,):
            end = time.monotonic() + TIMEOUT
            while lines(log) < step:
                assert proc.poll() is None, errs[i - 1].read_text()
                assert time.monotonic() < end, f"the trigger log never reached {step} lines"
                time.sleep(0.01)
            if step != at:
                assert request(f"ipc://{data}/ctl.sock", "export", timeout=TIMEOUT)["ok"]
        proc.send_signal(signal.SIGKILL)
        proc.wait(TIMEOUT)
        if export:
            written = sorted(p for p in pool.glob("events/*/*.parquet") if "-g99999999" not in p.name)
            shutil.copy(written[-1], re.sub(r"-g\d+\.parquet$", "-g99999999.parquet", str(written[-1])))
        proc = engine(rules, data, sock, errs[i], extra)
        prev = at
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
            "probe": perr, "pool": _pool(data.parent / f"{data.name}-pool") if export else None}


def _pool(pool: Path) -> dict:
    """Each table of a pool as the sorted list of its rows (an outcome: what became of the message)."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    out = {}
    for name in ("events", "triggers", "outcomes", "profiles", "areas"):
        t = ds.dataset(pool / name, format="parquet", partitioning="hive").to_table()
        if name == "outcomes":
            t = t.select(["message", "state", "reason", "held_out"])
        cols = [c.cast(pa.int64()) if pa.types.is_timestamp(c.type) else c for c in t.columns]
        out[name] = sorted(zip(*(c.to_pylist() for c in cols)), key=repr)
    return out


def test_killed_engine_gives_what_an_undisturbed_one_gives(setup, tmp_path):
    rules, pcap = setup
    calm = run(rules, pcap, tmp_path / "calm", export=True)
    n = len(calm["log"])
    assert n > 200 and len(calm["sent"]) > 100
    assert {s for s, _ in calm["messages"].values()} >= {"sent", "suppressed"}
    killed = run(rules, pcap, tmp_path / "killed", kill_at=(n // 5, n // 2, 3 * n // 4), export=True)
    assert sum("replayed " in e for e in killed["err"]) == 3, killed["err"]
    assert sum("removed 1 event files" in e for e in killed["err"]) == 3, killed["err"]
    assert killed["log"] == calm["log"]                 # the same triggers, in the same order, once each
    assert killed["messages"] == calm["messages"]       # the same messages, decided the same way
    assert killed["sent"] == calm["sent"]               # and each sent once
    assert "drops: none" in killed["probe"].splitlines()[-1]
    assert len(calm["pool"]["events"]) > 1000 and len(calm["pool"]["triggers"]) == n
    for name, rows in calm["pool"].items():             # the same pool, each row once
        assert killed["pool"][name] == rows, name
