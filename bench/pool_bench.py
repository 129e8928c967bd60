#!/usr/bin/env python3
"""Data pool benchmark: what `engine --export` costs the engine, and the pool's Parquet against
pyarrow's own and DuckDB reading it back.

    python3 bench/pool_bench.py                     # 1M records over 200,000 subscribers
    python3 bench/pool_bench.py --records 200000    # quicker

Generates the records of bench/engine_bench.py (mixed kinds, one subscriber each, then a pass of
events over known subscribers), and times control.engine.Engine.process on the second pass as an
engine without the pool runs it (the campaigns' events only) and as one with --export runs it
(every scenario event, each batch's kept by control.pool.EventBuffer): records/s and the
overhead. Then EventBuffer.write of those events into Parquet (events/s, bytes an event) beside
pyarrow.parquet.write_table of the same columns as plain integers (the floor: no names, no
identifiers as text), and DuckDB's count and a group-by over the files written (rows/s).
"""
import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import pyarrow as pa
import pyarrow.parquet as pq

from engine_bench import T0, records, subscriber_keys, write_rules
from touchpoint.control import rules
from touchpoint.control.engine import Engine
from touchpoint.control.pool import EVENTS, EventBuffer


def run(rs, recs, batch, watch, buffer=None) -> tuple:
    """Seconds of Engine.process over the second pass (after the first), each batch's events to
    `buffer`; and the engine."""
    engine = Engine(rs, None, capacity=len(recs[0]), watch=watch)
    first, second = recs
    for i in range(0, len(first), batch):
        engine.process(first[i:i + batch])
    start = time.perf_counter()
    for i in range(0, len(second), batch):
        engine.process(second[i:i + batch])
        if buffer is not None:
            buffer.add(engine.last_events, engine.state.rows)
    return time.perf_counter() - start, engine


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--subscribers", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=16384)
    a = ap.parse_args()
    rng = np.random.default_rng(1)
    imsi, msisdn = subscriber_keys(a.subscribers, rng)
    first = records(a.subscribers, imsi, msisdn, rng, T0)
    pick = rng.integers(0, a.subscribers, a.records)
    second = records(a.records, imsi[pick], msisdn[pick], rng, T0 + 3600 * 10**9)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "rules").mkdir()
        write_rules(tmp / "rules", False)         # engine_bench's campaigns; no list here: the events all the same
        rs = rules.load(str(tmp / "rules"), {"base": ["brand", "age", "gender", "arpu", "plan"]})
        if rs.errors:
            sys.exit("\n".join(map(str, rs.errors)))
        plain, _ = run(rs, (first, second), a.batch, ())
        buf = EventBuffer(str(tmp / "data"), str(tmp / "pool"), 0)
        buf.configure(rs)
        pooled, _ = run(rs, (first, second), a.batch, EVENTS, buf)
        print(f"engine, pass over known subscribers ({a.records:,} records, batches of {a.batch:,}):")
        print(f"  without the pool: {a.records / plain:,.0f} records/s")
        print(f"  with --export:    {a.records / pooled:,.0f} records/s ({100 * (pooled / plain - 1):+.0f}%), "
              f"{buf.count:,} events kept")

        n = buf.count
        start = time.perf_counter()
        buf.write(1, rs.places)
        ours = time.perf_counter() - start
        size = sum(p.stat().st_size for p in (tmp / "pool").rglob("*.parquet"))
        ev = np.concatenate(buf.parts)
        start = time.perf_counter()
        pq.write_table(pa.table({name: ev[name] for name in ev.dtype.names}), tmp / "plain.parquet",
                       compression="zstd")
        floor = time.perf_counter() - start
        print(f"Parquet: EventBuffer.write {n / ours:,.0f} events/s, {size / n:.1f} bytes an event; "
              f"pyarrow write_table of the raw integer columns {n / floor:,.0f} events/s "
              f"(ours {ours / floor:.1f}x its time: names and identifiers as text)")
        duckdb = shutil.which("duckdb")
        if duckdb is None:
            print("DuckDB: no duckdb command (pip install duckdb-cli)")
            return
        glob = f"{tmp}/pool/events/*/*.parquet"
        for what, sql in (("count", f"SELECT count(*) FROM '{glob}'"),
                          ("events by kind and hour", f"SELECT event, hour(ts), count(*), count(DISTINCT msisdn) "
                                                      f"FROM '{glob}' GROUP BY ALL")):
            start = time.perf_counter()
            subprocess.run([duckdb, "-c", sql], check=True, capture_output=True)
            took = time.perf_counter() - start
            print(f"DuckDB {what}: {n / took:,.0f} rows/s ({took:.2f} s, the process's start included)")


if __name__ == "__main__":
    main()
