#!/usr/bin/env python3
"""List benchmark: import a 10,000,000-row subscriber list, then look up 1,000,000 subscribers.

    python3 bench/lists_bench.py                      # 10,000,000 rows (the CSV is generated once)
    python3 bench/lists_bench.py --rows 1000000       # smaller
    python3 bench/lists_bench.py --input my.csv       # any list file (CSV or Parquet)

Prints:
  1. import: `control.lists.import_list` of a msisdn,imsi,brand,age,gender,arpu,plan CSV (UTF-8,
     Chinese text) in a fresh process: rows/s over the wall time (parse, check, convert, sort,
     write, fsync, swap), the process's CPU time, and its peak RSS (VmHWM) and baseline (after
     its imports); best of --repeat runs;
  2. lookup: `StaticList.rows(msisdn, imsi)` for --keys subscribers (half listed, half not; a
     third known by MSISDN only), then two columns read for them; best of 5, in this process.
Target: >= 1,000,000 rows/s import (issue 5) on the 2-core machine this was written on.

The CSV is generated with pyarrow from --seed and cached as bench/out/lists_<rows>r_seed<S>.csv
(about 61 bytes a row; bench/out/ is git-ignored).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out"
TARGET = 1_000_000
BRANDS = ["华为", "苹果", "小米", "OPPO", "vivo", "荣耀", "三星", "realme", "一加", "中兴"]
PLANS = ["畅享199", "畅享129", "神州行", "动感地带", "全球通398", "5G智享套餐", "大王卡", "校园卡"]

# Runs in a fresh process, so that its peak RSS is the import's own.
IMPORT = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from touchpoint.control.lists import import_list
def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
base = rss("VmRSS")
wall, cpu = time.perf_counter(), time.process_time()
meta = import_list(sys.argv[2], "bench", sys.argv[3])
print(json.dumps({"seconds": time.perf_counter() - wall, "cpu": time.process_time() - cpu, "rows": meta["rows"],
                  "bad_rows": meta["bad_rows"], "peak_rss": rss("VmHWM"), "base_rss": base,
                  "duplicates": meta["duplicates"]}))
"""


def generate(rows: int, seed: int) -> Path:
    path = OUT / f"lists_{rows}r_seed{seed}.csv"
    if path.is_file() and path.stat().st_size > 0:
        return path
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    OUT.mkdir(parents=True, exist_ok=True)
    print(f"generating {path.relative_to(ROOT)} ({rows:,} rows, seed {seed}) ...", file=sys.stderr, flush=True)
    rng = np.random.default_rng(seed)

    def chunk(start: int, n: int) -> pa.Table:
        digits = lambda v: pa.array(v).cast(pa.string())
        pick = lambda names: pa.DictionaryArray.from_arrays(
            pa.array(rng.integers(0, len(names), n).astype(np.int32)), pa.array(names)).cast(pa.string())
        return pa.table(
            {
                "msisdn": pc.binary_join_element_wise("86", digits(13_000_000_000 + rng.integers(0, 7 * 10**9, n)), ""),
                "imsi": pc.binary_join_element_wise(
                    "46000", pc.utf8_lpad(digits(np.arange(start, start + n)), 10, "0"), ""
                ),
                "brand": pick(BRANDS),
                "age": rng.integers(16, 90, n),
                "gender": pick(["男", "女"]),
                "arpu": np.round(rng.gamma(2.0, 40.0, n), 2),
                "plan": pick(PLANS),
            }
        )

    tmp = path.with_suffix(".tmp")
    options = pacsv.WriteOptions(quoting_style="none")
    with pacsv.CSVWriter(tmp, chunk(0, 1).schema, write_options=options) as w:
        for start in range(0, rows, 1_000_000):
            w.write_table(chunk(start, min(1_000_000, rows - start)))
    os.replace(tmp, path)
    return path


def bench_import(path: Path, data: Path, repeat: int) -> dict:
    best = None
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", IMPORT, str(ROOT), str(data), str(path)],
                             check=True, capture_output=True, text=True).stdout
        run = json.loads(out)
        print(f"  import: {run['rows']:,} rows in {run['seconds']:.2f} s = {run['rows'] / run['seconds']:,.0f} rows/s "
              f"(CPU {run['cpu']:.2f} s), peak RSS {run['peak_rss'] / 2**20:.0f} MB", file=sys.stderr)
        if best is None or run["seconds"] < best["seconds"]:
            best = run
    return best


def bench_lookup(data: Path, keys: int, seed: int) -> dict:
    from touchpoint.control.lists import ListStore
    from touchpoint.probe.record import NO_DIGITS

    lst = ListStore(data).get("bench")
    rng = np.random.default_rng(seed)
    msisdn_keys, imsi_keys = lst.keys["msisdn"][0], lst.keys["imsi"][0]
    listed = rng.random(keys) < 0.5
    by_msisdn_only = rng.random(keys) < 1 / 3
    msisdn = np.where(listed, msisdn_keys[rng.integers(0, len(msisdn_keys), keys)],
                      np.uint64(0x8617000000000FFF) + rng.integers(0, 10**6, keys).astype(np.uint64) * np.uint64(16**3))
    imsi = np.where(listed, imsi_keys[rng.integers(0, len(imsi_keys), keys)], np.uint64(0x460020000000000F))
    imsi[by_msisdn_only] = NO_DIGITS
    times, found = [], 0
    for _ in range(5):
        start = time.perf_counter()
        rows = lst.rows(msisdn, imsi)
        age, brand = lst.column("age")[rows], lst.column("brand")[rows]
        times.append(time.perf_counter() - start)
        found = int((rows >= 0).sum())
    assert len(age) == len(brand) == keys
    return {"keys": keys, "seconds": min(times), "found": found}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--input", type=Path, help="import this list file instead of the generated one")
    ap.add_argument("--keys", type=int, default=1_000_000, help="subscribers to look up")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1, help="import runs; the best one counts")
    ap.add_argument("--json", type=Path, help="also write every figure to this file")
    a = ap.parse_args()
    path = a.input or generate(a.rows, a.seed)
    size = path.stat().st_size
    print(f"list: {path} ({size / 2**20:.0f} MB)", file=sys.stderr)
    with tempfile.TemporaryDirectory(dir=OUT if OUT.is_dir() else None) as tmp:
        data = Path(tmp) / "data"
        imp = bench_import(path, data, a.repeat)
        look = bench_lookup(data, a.keys, a.seed) if not a.input else None
    rate = imp["rows"] / imp["seconds"]
    print(f"import  {imp['rows']:>12,} rows  {imp['seconds']:7.2f} s  {rate:>12,.0f} rows/s  "
          f"({size / imp['seconds'] / 2**20:.0f} MB/s, CPU {imp['cpu']:.2f} s)  "
          f"peak RSS {imp['peak_rss'] / 2**20:.0f} MB (baseline {imp['base_rss'] / 2**20:.0f} MB)  "
          f"target >= {TARGET:,} rows/s: {'met' if rate >= TARGET else 'NOT MET'}")
    if look:
        print(
            f"lookup  {look['keys']:>12,} keys  {look['seconds']:7.3f} s  "
            f"{look['keys'] / look['seconds']:>12,.0f} keys/s"
            f"  ({look['found']:,} listed; rows by IMSI else MSISDN, then two columns)"
        )
    if a.json:
        a.json.write_text(json.dumps({"import": imp, "lookup": look, "file_bytes": size}, indent=1))


if __name__ == "__main__":
    main()
