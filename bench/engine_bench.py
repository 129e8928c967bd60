#!/usr/bin/env python3
"""Engine benchmark: subscriber state, scenario events and campaign matching on one core.

    python3 bench/engine_bench.py                      # 1M records, 1M subscribers, 20 campaigns, 10M-row list
    python3 bench/engine_bench.py --records 200000 --list-rows 1000000   # quicker

Builds (or reuses, under bench/out/) a CSV list of --list-rows subscribers with brand, age,
gender, ARPU and plan columns and imports it (rows/s), writes 20 active campaigns over the
scenario events with audiences on that list, then times control.engine.Engine.process on
--records records in batches of --batch: a first pass in which every record is a subscriber's
first sighting (--records distinct subscribers), and a second pass of the same number of
records over those subscribers, in which the scenario events fire (by default across midnight,
so the profiles' day goes to the history in it). It runs twice in one go: the 20 campaigns as
they are, then with profile conditions added to 5 of them (windows of days, an area's visits,
handset age). Prints records/s for each pass, triggers, and the memory per subscriber, as
allocated: rows, index, profiles (today's counts and the windows' sums), forwardings.

There is no other engine to compare with in the same run: tshark and pycrate decode, they keep no
subscriber state. The figure to compare is the issue's target, 1,000,000 records/s.
"""
import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from touchpoint.control import rules
from touchpoint.control.engine import Engine
from touchpoint.control.lists import ListStore, import_list
from touchpoint.probe.record import Kind, Loc, empty, pack

OUT = HERE / "out"
T0 = 1_767_225_600 * 10**9

PLACES = """
home: ["46000", "46002"]
regions:
  beijing: {node: ["8613900010*"], lac: [[4096, 4351]]}
  shanghai: {node: ["8613900021*"], lac: [[8192, 8447]]}
  guangzhou: {node: ["8613900030*"]}
areas:
  mall-a: {ranges: [[4100, 1000, 1099]]}
  mall-b: {ranges: [[8200, 2000, 2049]]}
hotlines:
  service: ["10086", "114"]
"""

# 20 campaigns: (trigger, trigger where, audience where)
CAMPAIGNS = [
    ("event: imei_change", "{new_handset: true}", "{age: {gte: 18}}"),
    ("event: imei_change", "{new_handset: false}", "{plan: [gold, silver]}"),
    ("event: roaming_in", "{region: shanghai}", "{arpu: {gte: 50}}"),
    ("event: roaming_in", "{region: beijing}", None),
    ("event: roaming_out", "{region: guangzhou}", "{gender: f}"),
    ("event: inbound_roamer", None, None),
    ("event: area_enter", "{area: mall-a}", "{age: {lt: 40}}"),
    ("event: area_dwell\n  minutes: 20", "{area: mall-b}", None),
    ("event: power_on", "{after: {gte: 3600}}", "{brand: [中国移动, 动感地带]}"),
    ("event: cf_then_power_on\n  within: 72h", "{ss_code: [cfu, allcf]}", None),
    ("event: hotline_call\n  hotlines: [service]", None, "{arpu: {lt: 30}}"),
    ("event: sms_mo", "{peer: '95*'}", None),
    ("event: sms_mt", "{peer_alpha: BANK}", "{age: {gte: 25, lt: 60}}"),
    ("event: mms_mt", None, "{plan: gold}"),
    ("event: ussd", "{code: '*100#'}", None),
    ("event: data_session_start", "{apn: cmnet}", "{gender: m}"),
    ("event: data_session_start", "{rat: nr}", None),
    ("event: rat_change", "{rat: nr, first: true}", "{age: {gte: 18}}"),
    ("event: power_off", None, "{plan: bronze}"),
    ("event: record", "{kind: check_imei}", "{arpu: {gte: 100}}"),
]


# ... of which these 5 also test profiles (over windows of days, and of an area)
PROFILED = {
    0: "{handset_age: {gte: 540d}}",
    2: "{sms_mo: {last: 30d, gte: 2}, in_region_for: {gte: 6h}}",
    6: "{area_visits: {area: mall-a, last: 7d, gte: 3}}",
    11: "{call_minutes: {last: 1d, gte: 30}}",
    15: "{data_mb: {last: 30d, gte: 100}, days_active: {last: 30d, gte: 10}}",
}


def write_rules(path: Path, profiles: bool) -> None:
    (path / "places.yaml").write_text(PLACES)
    for i, (trigger, where, aud) in enumerate(CAMPAIGNS):
        text = f"id: c{i:02d}\nstatus: active\ntrigger:\n  {trigger}\n"
        if where:
            text += f"  where: {where}\n"
        if profiles and i in PROFILED:
            aud = "{" + ", ".join(a[1:-1] for a in (aud, PROFILED[i]) if a) + "}"
        text += "audience:\n  lists: [base]\n" + (f"  where: {aud}\n" if aud else "")
        text += "message: {text: hi}\n"
        (path / f"c{i:02d}.yaml").write_text(text, encoding="utf-8")


def subscriber_keys(n: int, rng):
    imsi = np.uint64(460000000000000) + rng.choice(10**10, n, replace=False).astype(np.uint64)
    msisdn = np.uint64(8613800000000) + rng.choice(10**8 * 9, n, replace=False).astype(np.uint64)
    return imsi, msisdn


def to_packed(numbers: np.ndarray) -> np.ndarray:
    return pack(numbers.astype(str))


def list_csv(rows: int, keys, seed: int) -> Path:
    """A CSV of `rows` subscribers: the benchmark's own subscribers first, then others."""
    path = OUT / f"base_{rows}_{seed}.csv"
    if path.exists():
        return path
    import pyarrow as pa
    import pyarrow.csv as pacsv
    rng = np.random.default_rng(seed + 1)
    imsi, msisdn = keys
    extra = rows - len(imsi)
    if extra > 0:
        more_imsi, more_msisdn = subscriber_keys(extra + len(imsi), rng)
        more = ~np.isin(more_imsi, imsi) & ~np.isin(more_msisdn, msisdn)
        imsi = np.concatenate([imsi, more_imsi[more][:extra]])
        msisdn = np.concatenate([msisdn, more_msisdn[more][:extra]])
    n = len(imsi)
    table = pa.table({
        "msisdn": msisdn[:rows].astype(str), "imsi": imsi[:rows].astype(str),
        "brand": np.array(["全球通", "动感地带", "神州行", "中国移动"])[rng.integers(0, 4, n)][:rows],
        "age": rng.integers(16, 80, n)[:rows], "gender": np.array(["m", "f"])[rng.integers(0, 2, n)][:rows],
        "arpu": np.round(rng.gamma(2.0, 40.0, n), 2)[:rows],
        "plan": np.array(["gold", "silver", "bronze", "basic"])[rng.integers(0, 4, n)][:rows],
    })
    OUT.mkdir(exist_ok=True)
    tmp = path.with_suffix(".tmp")
    pacsv.write_csv(table, tmp)
    os.replace(tmp, path)
    return path


KINDS = np.array([Kind.LOCATION_UPDATE, Kind.GPRS_LOCATION_UPDATE, Kind.MO_SMS, Kind.MT_SMS, Kind.SESSION_CREATE,
                  Kind.SESSION_DELETE, Kind.DATA_USAGE, Kind.CALL_ATTEMPT, Kind.CHECK_IMEI, Kind.SUBSCRIBER_INFO,
                  Kind.SS_REGISTER, Kind.PURGE_MS, Kind.USSD, Kind.MMS_NOTIFICATION, Kind.SESSION_MODIFY],
                 np.uint16)
SHARE = np.array([14, 6, 12, 12, 8, 5, 14, 8, 4, 5, 1, 3, 2, 2, 4], float)


def records(n: int, imsi, msisdn, rng, t0: int) -> np.ndarray:
    """n records of mixed kinds for the given subscribers (one each, in this order)."""
    r = empty(n)
    r["ts_ns"] = t0 + np.sort(rng.integers(0, 3600 * 10**9, n))
    kind = KINDS[rng.choice(len(KINDS), n, p=SHARE / SHARE.sum())]
    r["kind"], r["flags"] = kind, 3
    r["imsi"] = to_packed(imsi)
    with_msisdn = rng.random(n) < 0.6
    r["msisdn"][with_msisdn] = to_packed(msisdn[with_msisdn])
    imei = np.uint64(35693803000000) + rng.integers(0, 3, n).astype(np.uint64) * np.uint64(10**7) \
        + rng.integers(0, 2, n).astype(np.uint64)
    carries_imei = np.isin(kind, [Kind.CHECK_IMEI, Kind.SESSION_CREATE])
    r["imei"][carries_imei] = to_packed(imei[carries_imei] * np.uint64(10))
    locating = np.isin(kind, [Kind.LOCATION_UPDATE, Kind.GPRS_LOCATION_UPDATE, Kind.SUBSCRIBER_INFO,
                              Kind.CALL_ATTEMPT, Kind.MO_SMS, Kind.SESSION_CREATE, Kind.SESSION_MODIFY])
    nodes = pack(["8613900010001", "8613900021001", "8613900030001", "8613900040001"])
    r["node"][locating] = nodes[rng.integers(0, 4, locating.sum())]
    lac = np.array([4100, 8200, 4200, 9000], np.uint32)[rng.integers(0, 4, n)]
    r["lac_tac"] = np.where(locating, lac, 0)
    r["cell"] = np.where(locating, np.where(lac == 4100, 1000, 2000) + rng.integers(0, 120, n), 0)
    r["loc_type"] = np.where(locating, Loc.CGI, 0)
    r["rat"] = np.where(np.isin(kind, [Kind.SESSION_CREATE, Kind.SESSION_MODIFY]),
                        np.array([6, 10, 1], np.uint8)[rng.integers(0, 3, n)], 0)
    r["peer"] = pack(np.array(["10086", "95588", "13912345678", "*100#"])[rng.integers(0, 4, n)])
    r["ss_code"] = np.where(kind == Kind.SS_REGISTER, 0x21, 0)
    r["octets"] = np.where(kind == Kind.DATA_USAGE, rng.integers(1, 10**7, n), 0)
    r["apn"] = np.array([b"cmnet", b"cmwap", b"ims"])[rng.integers(0, 3, n)]
    return r


def timed(engine: Engine, recs: np.ndarray, batch: int) -> tuple[float, float, int]:
    """Wall and CPU seconds (the CPU time tells the engine's own cost on a busy machine)."""
    triggers = 0
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(recs), batch):
        triggers += len(engine.process(recs[i:i + batch]))
    return time.perf_counter() - start, time.process_time() - cpu, triggers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--list-rows", type=int, default=10_000_000)
    ap.add_argument("--batch", type=int, default=16384,
                    help="records the engine takes at a time (the engine process gathers the probes' batches "
                         "up to control.server.COALESCE = 16,384)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--second-pass-at", type=int, default=24 * 3600 - 1800, metavar="S",
                    help="seconds of record time from the first pass to the second (the default crosses "
                         "midnight: the profiles' day goes to the history in the middle of the pass)")
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    imsi, msisdn = subscriber_keys(a.records, rng)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        csv_path = list_csv(a.list_rows, (imsi, msisdn), a.seed)
        start = time.perf_counter()
        meta = import_list(tmp / "data", "base", csv_path)
        took = time.perf_counter() - start
        print(f"list import: {meta['rows']:,} rows in {took:.1f} s = {meta['rows'] / took:,.0f} rows/s "
              f"({csv_path.stat().st_size / 2**20:.0f} MB CSV)")

        first = records(a.records, imsi, msisdn, rng, T0)
        pick = rng.integers(0, a.records, a.records)
        second = records(a.records, imsi[pick], msisdn[pick], rng, T0 + a.second_pass_at * 10**9)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for profiles in (False, True):
            d = tmp / f"rules-{profiles}"
            d.mkdir()
            write_rules(d, profiles)
            rs = rules.load(str(d), {"base": ["brand", "age", "gender", "arpu", "plan"]})
            if rs.errors:
                sys.exit("\n".join(map(str, rs.errors)))
            engine = Engine(rs, ListStore(tmp / "data"), capacity=a.records)
            t1, c1, n1 = timed(engine, first, a.batch)
            t2, c2, n2 = timed(engine, second, a.batch)
            mem = engine.memory()
            print(f"campaigns: {len(engine.campaigns)} active, {len(PROFILED) if profiles else 0} of them with "
                  f"profile conditions; batches of {a.batch:,} records")
            print(f"  pass 1 (every record a new subscriber): {a.records / t1:,.0f} records/s "
                  f"({a.records / c1:,.0f} a CPU second), {n1:,} triggers")
            print(f"  pass 2 (known subscribers, events):      {a.records / t2:,.0f} records/s "
                  f"({a.records / c2:,.0f} a CPU second), {n2:,} triggers")
            each = ", ".join(f"{k} {v / max(mem['subscribers'], 1):.1f}" for k, v in mem["parts"].items())
            print(f"  state: {mem['subscribers']:,} subscribers, {mem['row_bytes']} bytes a row, "
                  f"{mem['bytes_per_subscriber']:.1f} bytes a subscriber allocated ({each})")
        print("events: " + ", ".join(f"{k}={v:,}" for k, v in engine.event_counts().items() if v))
        print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB "
              f"(before the passes: {rss0 / 1024:.0f} MB; the list is memory-mapped)")


if __name__ == "__main__":
    main()
