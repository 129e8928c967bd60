"""The marketing data pool (control.pool): a real engine with --export over the example story,
read back with DuckDB and pyarrow and held against the story, the outbox and the trigger log;
`touchpoint export` again (nothing twice), with hashed identifiers, and over bad input. What a
killed engine leaves in its pool: tests/test_engine_kill.py."""
import hashlib
import hmac
import json
import os
import shutil
import sqlite3
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

pa = pytest.importorskip("pyarrow")
import pyarrow.dataset as ds

from touchpoint.control import rules
from touchpoint.control._state import EVENT_DTYPE
from touchpoint.control.cli import main
from touchpoint.control.events import Event
from touchpoint.control.lists import import_list, import_tac
from touchpoint.control.pool import EVENT_ROW, EventBuffer, PoolError, export
from touchpoint.probe.record import pack

from .test_engine_run import finish, probe, start_engine
from .test_scenarios import ROOT, render

LI_NA = "8613812345678"
TABLES = ("events", "triggers", "outcomes", "profiles", "areas")


@pytest.fixture(scope="module")
def pooled(tmp_path_factory):
    """The example rules and lists, the example story (rules/stories/demo.yaml) through an engine
    that exports; its data directory, pool and story steps."""
    tmp = tmp_path_factory.mktemp("pool")
    shutil.copytree(ROOT / "rules", tmp / "rules", ignore=shutil.ignore_patterns("stories", "lists", "*.py"))
    data = tmp / "data"
    for name in ("postpaid", "staff", "seeds"):
        import_list(data, name, ROOT / "rules" / "lists" / f"{name}.csv")
    import_tac(data, ROOT / "rules" / "lists" / "tac.csv")
    pcap, steps = render(tmp, "demo")
    proc, ep = start_engine(tmp / "rules", data, "--expect-eos", "1", "--clock", "records", "--export",
                            str(tmp / "pool"))
    probe(pcap, ep)
    err = finish(proc)
    assert "exported to " in err, err
    return tmp, data, tmp / "pool", steps


def table(pool, name) -> "pa.Table":
    return ds.dataset(pool / name, format="parquet", partitioning="hive").to_table()


def duckdb(sql: str) -> list:
    exe = shutil.which("duckdb")
    if exe is None:
        pytest.skip("no duckdb command (pip install duckdb-cli)")
    r = subprocess.run([exe, "-json", "-c", sql], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout or "[]")


def test_the_pool_holds_what_the_engine_found(pooled):
    """Li Na's day in the story is her trail in the pool's events, in order; the triggers are the
    trigger log's, the outcomes the outbox's messages with their states and conversions."""
    tmp, data, pool, _ = pooled
    trail = duckdb(f"SELECT event, coalesce(area, region, number, '') AS detail FROM '{pool}/events/*/*.parquet' "
                   f"WHERE msisdn = '{LI_NA}' ORDER BY ts, event")
    assert [(r["event"], r["detail"]) for r in trail] == [
        ("power_on", ""), ("imei_change", ""), ("data_session_start", ""),
        ("hotline_call", "10086"), ("hotline_call", "10086"),          # the call on CAP and on ISUP
        ("roaming_in", "shanghai"), ("roaming_out", "beijing"), ("area_enter", "nanjing-road"),
        ("area_dwell", "nanjing-road"), ("sms_mt", ""), ("sms_mo", "")]
    swap = duckdb(f"SELECT tac, old_tac, flag FROM '{pool}/events/*/*.parquet' WHERE event = 'imei_change'")
    assert swap == [{"tac": "35391110", "old_tac": "35332509", "flag": True}]
    calls = table(pool, "events").filter(ds.field("event") == "hotline_call").column("number").to_pylist()
    assert set(calls) <= {"10086", "114", "12300"}             # only hotline calls: no one's call record

    log = [json.loads(x) for x in (data / "triggers-shard-0.jsonl").read_text().splitlines()]
    t = table(pool, "triggers")
    assert sorted((x["ts_ns"], x["campaign"], x["msisdn"]) for x in log) == sorted(zip(
        t.column("ts").cast(pa.int64()).to_pylist(), t.column("campaign").to_pylist(), t.column("msisdn").to_pylist()))
    db = sqlite3.connect(data / "outbox.sqlite")
    want = dict(((i, (s, bool(h))) for i, s, h in db.execute("SELECT id, state, holdout FROM messages")))
    converted = {m for (m,) in db.execute("SELECT message FROM conversions WHERE converted_ns IS NOT NULL")}
    o = table(pool, "outcomes")
    got = {m: (s, h) for m, s, h in zip(*(o.column(c).to_pylist() for c in ("message", "state", "held_out")))}
    assert got == want and len(want) > 40
    assert {m for m, c in zip(o.column("message").to_pylist(), o.column("converted_ts").to_pylist()) if c} == converted
    by_campaign = duckdb(f"SELECT campaign, count(*) FILTER (NOT held_out AND sent_ts IS NOT NULL) AS sent "
                         f"FROM read_parquet('{pool}/outcomes/*/*.parquet', hive_partitioning = true) GROUP BY 1")
    assert {r["campaign"]: r["sent"] for r in by_campaign} == dict(db.execute(
        "SELECT campaign, count(sent_ns) FROM messages WHERE holdout = 0 GROUP BY 1"))
    # no raw signaling and no message text: the tables' columns are the documented ones
    texts = {x for (x,) in db.execute("SELECT text FROM messages WHERE text != ''")}
    for name in TABLES:
        tb = table(pool, name)
        assert "text" not in tb.column_names and set(tb.column("version").to_pylist()) == {1}, name
        strings = {v for c in tb.columns if pa.types.is_string(c.type) for v in c.to_pylist()}
        assert not strings & texts, name


def test_profiles_are_the_days_counts(pooled):
    _, _, pool, _ = pooled
    p = duckdb(f"SELECT day, complete, sms_mo, sms_mt, sessions, tac FROM read_parquet('{pool}/profiles/*/*.parquet', "
               f"hive_partitioning = true) WHERE msisdn = '{LI_NA}'")
    assert len(p) == 1 and p[0]["complete"] is False            # the day was not over when the engine stopped
    assert (p[0]["sms_mo"], p[0]["sms_mt"], p[0]["sessions"], p[0]["tac"]) == (1, 1, 1, "35391110")
    a = duckdb(f"SELECT area, present, visits FROM '{pool}/areas/*/*.parquet' WHERE msisdn = '{LI_NA}'")
    assert a == [{"area": "nanjing-road", "present": True, "visits": 1}]


def test_exporting_again_writes_nothing_twice(pooled, tmp_path):
    tmp, data, pool, _ = pooled
    again = tmp_path / "pool"
    shutil.copytree(pool, again)
    before = {name: table(again, name).num_rows for name in TABLES}
    for _ in range(2):
        r = CliRunner().invoke(main, ["export", "--data", str(data), "--rules", str(tmp / "rules"),
                                      "--out", str(again)])
        assert r.exit_code == 0, r.output
    assert {name: table(again, name).num_rows for name in TABLES} == before


def test_hashed_identifiers(pooled, tmp_path):
    """--ids hashed: no IMSI or MSISDN in the pool, the same pseudonym in every table (they join),
    and a pool of one kind takes no export of the other."""
    tmp, data, _, _ = pooled
    out = tmp_path / "hashed"
    args = ["export", "--data", str(data), "--rules", str(tmp / "rules"), "--out", str(out)]
    r = CliRunner().invoke(main, [*args, "--ids", "hashed"])
    assert r.exit_code == 0, r.output
    key = (data / "pool.key").read_bytes()
    pseudonym = hmac.new(key, LI_NA.encode(), hashlib.sha256).hexdigest()[:16]
    numbers = {x for (x,) in sqlite3.connect(data / "outbox.sqlite").execute("SELECT msisdn FROM messages")}
    for name in ("triggers", "outcomes", "profiles"):
        tb = table(out, name)
        assert not set(tb.column("msisdn").to_pylist()) & numbers, name
        assert pseudonym in tb.column("msisdn").to_pylist(), name
        assert name != "triggers" or set(tb.column("fields").to_pylist()) == {None}
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1 and "identifiers hashed" in r.output


def test_the_engine_side_hashes_a_forwarded_to_number(tmp_path):
    data, pool = tmp_path / "data", tmp_path / "pool"
    buf = EventBuffer(str(data), str(pool), 3, ids="hashed")
    buf.configure(rules.load(str(ROOT / "rules")))
    rows = np.zeros(2, [("imsi", "<u8"), ("msisdn", "<u8")])
    rows["imsi"] = pack(["460001000000001", "460001000000002"])
    rows["msisdn"] = pack(["8613800000001", "8613800000002"])
    ev = np.zeros(4, EVENT_DTYPE)
    ev["sub"], ev["rec"], ev["ts_ns"] = [0, 1, 1, 0], 0, 1_762_473_600 * 10**9
    ev["event"] = [Event.CF_THEN_POWER_ON, Event.HOTLINE_CALL, Event.HOTLINE_CALL, Event.RECORD]
    ev["number"] = pack(["8613300000009", "10086", "8613900000001", ""])
    buf.add(ev, rows)
    assert buf.count == 2 and buf.arrays(False)["pool_events"].dtype == EVENT_ROW   # no record, no call but a hotline
    assert buf.write(7, rules.load(str(ROOT / "rules")).places) == 2
    buf.clear()
    t = ds.dataset(pool / "events", format="parquet", partitioning="hive").to_table().sort_by("event")
    key = (data / "pool.key").read_bytes()
    h = lambda v: hmac.new(key, v.encode(), hashlib.sha256).hexdigest()[:16]
    assert t.column("event").to_pylist() == ["cf_then_power_on", "hotline_call"]
    assert t.column("number").to_pylist() == [h("8613300000009"), "10086"]   # the hotline stays, the number not
    assert t.column("msisdn").to_pylist() == [h("8613800000001"), h("8613800000002")]
    assert os.listdir(pool / "events" / "day=2025-11-07")[0].startswith("shard-3-")
    assert buf.discard_after(6) == 1 and not os.listdir(pool / "events" / "day=2025-11-07")


def test_bad_input_is_named_and_the_rest_exported(pooled, tmp_path):
    tmp, data, _, _ = pooled
    broken = tmp_path / "data"
    shutil.copytree(data, broken, ignore=shutil.ignore_patterns("*.sock"))
    log = broken / "triggers-shard-0.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:3] + [b"x" * (len(lines[3]) - 1) + b"\n"] + lines[4:]))   # the same length
    out, said = tmp_path / "pool", []
    got = export(str(broken), str(out), rules.load(str(tmp / "rules")), warn=said.append)
    assert got["triggers"] == len(lines) - 1
    assert len(said) == 1 and f"{log}: the line ending at byte" in said[0] and "not a trigger" in said[0]
    (out / "_export" / f"{(broken / 'pool-id').read_text().strip()}.json").write_text("{not json")
    with pytest.raises(PoolError, match="not the pool's export state"):
        export(str(broken), str(out), rules.load(str(tmp / "rules")))
    r = CliRunner().invoke(main, ["export", "--data", str(tmp_path / "nothing"), "--rules", str(tmp / "rules"),
                                  "--out", str(out)])
    assert r.exit_code == 1 and "no such data directory" in r.output


def test_a_pool_that_cannot_be_written_stops_nothing(tmp_path):
    """The pool's events directory is a file: the engine says its events could not be written,
    keeps them in its snapshot for the next export, and goes on; the other tables are exported."""
    d = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", d, ignore=shutil.ignore_patterns("stories", "lists", "*.py"))
    data, pool = tmp_path / "data", tmp_path / "pool"
    for name in ("postpaid", "staff", "seeds"):
        import_list(data, name, ROOT / "rules" / "lists" / f"{name}.csv")
    pool.mkdir()
    (pool / "events").write_text("not a directory")
    pcap, _ = render(tmp_path, "demo")
    proc, ep = start_engine(d, data, "--expect-eos", "1", "--clock", "records", "--export", str(pool))
    probe(pcap, ep)
    err = finish(proc)
    assert "the events not written" in err and "kept for the next export" in err, err
    with np.load(data / "state" / "shard-0.npz") as z:
        assert len(z["pool_events"]) > 100
    assert table(pool, "triggers").num_rows == len((data / "triggers-shard-0.jsonl").read_text().splitlines())
