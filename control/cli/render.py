"""Output of the CLI: decode's writers (table, jsonl, csv), its --stats, digit masking. Imports no CLI module."""

import csv
import json
from datetime import datetime, timezone

import click
import numpy as np


class Writer:
    """Records to text as table, jsonl or csv."""

    def __init__(self, fmt: str, stream):
        self.fmt = fmt
        self.stream = stream
        self.started = False

    def write(self, batch: np.ndarray) -> None:
        from touchpoint.probe.format import COLUMNS, to_dicts
        if not len(batch):
            return
        dicts = to_dicts(batch)
        w = self.stream.write
        if self.fmt == "jsonl":
            w("".join(json.dumps(d, separators=(",", ":")) + "\n" for d in dicts))
        elif self.fmt == "csv":
            writer = csv.DictWriter(self.stream, COLUMNS, extrasaction="ignore", lineterminator="\n")
            if not self.started:
                writer.writeheader()
            for d in dicts:
                d["flags"] = "|".join(d["flags"])
            writer.writerows(dicts)
        else:
            if not self.started:
                w(TABLE.format(frame="frame", time="time (UTC)", kind="kind", op="op", flags="flags",
                               imsi="imsi", msisdn="msisdn", peer="peer", node="node", extra="more") + "\n")
            for d in dicts:
                w(table_row(d) + "\n")
        self.started = True


TABLE = "{frame:>8} {time:<23} {kind:<21} {op:>3} {flags:<6} {imsi:<16} {msisdn:<16} {peer:<16} {node:<16} {extra}"
FLAG_LETTERS = {"request": "Q", "response": "R", "error": "E", "abort": "A", "timeout": "T", "partial": "P",
                "correlated": "C", "answered": "N"}


EXTRA = (("imei", "imei={}"), ("ss_code", "ss=0x{:02x}"), ("cause", "cause={}"), ("apn", "apn={}"),
         ("rat", "rat={}"), ("service_key", "key={}"), ("event", "event={}"), ("packets", "pkts={}"),
         ("octets", "bytes={}"), ("parts", "parts={}"), ("part", "part={}"), ("app_port", "port={}"),
         ("version", "v{}"), ("duration_ms", "talk={}ms"))


def table_row(d: dict) -> str:
    extra = [fmt.format(d[k]) for k, fmt in EXTRA if k in d]
    if "loc_type" in d:
        extra.append(f"{d['loc_type']}={d.get('mcc', '')}-{d.get('mnc', '')}-{d['lac_tac']}-{d['cell']}")
    t = datetime.fromtimestamp(d["ts_ns"] / 1e9, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:23]
    return TABLE.format(frame=d["frame"], time=t, kind=d["kind"], op=d["op"],
                        flags="".join(FLAG_LETTERS[f] for f in d["flags"]), imsi=d.get("imsi", "-"),
                        msisdn=d.get("msisdn", "-"), peer=d.get("peer", "-"), node=d.get("node", "-"),
                        extra=" ".join(extra))


def print_stats(s) -> None:
    from touchpoint.probe.decode import ANOMALY_INFO
    echo = lambda line="": click.echo(line, err=True)
    echo(f"frames {s.frames}  bytes {s.bytes}  records {s.records}")
    cols = ("packets", "decoded", "truncated", "malformed", "unsupported", "other", "evicted")
    echo(f"{'layer':<8}" + "".join(f"{c:>12}" for c in cols))
    for layer, row in s.by_layer().items():
        if any(row.values()):
            echo(f"{layer:<8}" + "".join(f"{row[c]:>12}" for c in cols))
    if s.anomalies:
        echo("top anomalies:")
        for a, n in s.anomalies.most_common(10):
            layer, cls, text = ANOMALY_INFO[a.value]
            echo(f"  {n:>10}  {layer}/{cls}: {a.name} ({text})")
    bad = [r for r in s.recent if ANOMALY_INFO[r[2].value][1] in ("truncated", "malformed")]
    if bad:
        echo("last truncated or malformed (file, frame, anomaly, byte offset in frame):")
        for src, frame, a, off in bad[-5:]:
            echo(f"  {src} frame {frame}: {a.name} at byte {off}")


def mask_digits(digits: str) -> str:
    """8613800138000 -> 86138******00: enough to tell rows apart, not to call anyone."""
    if len(digits) > 9:
        return digits[:5] + "*" * (len(digits) - 7) + digits[-2:]
    return digits[:3] + "*" * (len(digits) - 3) if digits else "-"
