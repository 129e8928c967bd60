#!/usr/bin/env python3
"""Fidelity against tshark: per public capture, where our per-message records and tshark agree.

    python3 bench/fidelity.py                              # markdown on stdout
    python3 bench/fidelity.py --only velyfw_camel.pcap     # one file (or the files whose name holds it)
    python3 bench/fidelity.py --json                       # the same as JSON

Every file of ../shared/pcaps-public is compared the way the tests compare it, with their code and
their tables of known differences (nothing here decides what agrees):
  tests/test_tshark.py            MAP: components per frame, IMSIs, subscriber MSISDNs;
  tests/test_tshark_cap_isup.py   CAP components, ISUP messages (other types and BICC in number),
                                  IMSI, calling number and MSC address (the MSISDN column), called
                                  number (BICC's too), service key, cell global id;
  tests/test_tshark_gtp.py        the GTP message types the decoder records, G-PDUs, the types it
                                  counts without a record (in number), IMSI, MSISDN,
                                  IMEI, ECI and TAC, GTPv1 LAC, RAC, CI and SAC (the cells column),
                                  called numbers;
each with the tshark prefs and our options it gives the file. A column reads "n/a" only when no
comparison sees a value on either side and the MANIFEST lists no such identifier for the file;
values that no test compares are footnoted as such. Frames without a record are explained as
tests/test_stats_public.py explains them (the anomaly classes `touchpoint decode --stats` counts),
in a per-message run with our options for the MANIFEST's tshark prefs: its records are the
"records" column.

Exit status 1 when a difference is not in the tests' KNOWN tables, a known one is no longer seen,
a frame without a record is unexplained, or one counted malformed or truncated is neither flagged
by tshark nor known (the tests fail then too); 0 otherwise, and 0 with a message when
../shared/pcaps-public or tshark is absent.
"""
import argparse
import json
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
PUBLIC = ROOT.parent / "shared" / "pcaps-public"

COLUMNS = {"ops": "operations / message types", "imsi": "IMSI", "msisdn": "MSISDN", "imei": "IMEI",
           "cells": "cell / ECGI / TAI", "called": "called number", "key": "service key"}
# What each test compares -> its column (GTP: the message type keys v1:, v2:, v0:, tpdu and the counters
# of the types not recorded, GTP_ECHO, GTP_OTHER_MESSAGE, GTPU_SIGNALLING, are "ops").
MAP_COLUMN = {"ops": "ops", "imsi": "imsi", "msisdn": "msisdn"}
CAP_COLUMN = {"comps": "ops", "isup": "ops", "isup other": "ops", "bicc": "ops", "imsi": "imsi",
              "calling": "msisdn", "called": "called", "key": "key", "cgi": "cells", "node": "msisdn"}
GTP_COLUMN = {"imsi": "imsi", "msisdn": "msisdn", "imei": "imei", "eci": "cells", "tac": "cells", "lac": "cells",
              "rac": "cells", "ci": "cells", "sac": "cells", "called": "called"}
GTP_FAMILY = {"v2": "GTPv2-C", "v1": "GTPv1-C", "v0": "GTPv0", "tpdu": "GTP-U"}
# The MANIFEST's "Subscriber identifiers" labels: what tshark shows in each file.
MANIFEST_COLUMN = {"IMSI": "imsi", "MSISDN": "msisdn", "IMEI/IMEISV/MEI": "imei", "cell/location": "cells",
                   "called number": "called"}
CLASS_ORDER = ("malformed", "truncated", "unsupported", "other")     # a frame goes under the first it has
NOT_EXPLAINED = "NOT EXPLAINED by the tests' KNOWN tables"
NOT_COMPARED = "values the MANIFEST (tshark) lists or our records hold that no test compares"


@dataclass
class Cell:
    compared: bool = False
    seen: bool = False                              # a value on either side of a comparison
    diffs: list = field(default_factory=list)       # (count, reason or None when not explained, what differs)
    left_out: list = field(default_factory=list)    # (reason, detail): tshark values a test leaves out
    gaps: list = field(default_factory=list)        # (reason, detail): values no test compares

    def text(self, note) -> str:
        """The table cell; note(section, reason) gives a footnote's number."""
        parts = [f"{n} [{note('known', why)}]" if why else f"{n}! [{note('known', NOT_EXPLAINED)}]"
                 for n, why, _what in self.diffs]
        if not parts and (self.seen or not self.gaps):
            parts = ["=" if self.seen else "n/a"]
        if parts:
            parts[-1] += "".join(f" [{note('left out', why)}]" for why, _detail in self.left_out)
        return ", ".join(parts + [f"- [{note('not compared', why)}]" for why, _detail in self.gaps])


@dataclass
class Row:
    name: str
    section: str = ""                   # the MANIFEST's: SS7 or GTP
    family: list = field(default_factory=list)
    frames: int = 0
    records: int = 0
    cells: dict = field(default_factory=lambda: {c: Cell() for c in COLUMNS})
    stats: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)       # (test, the test's NOTES text)


def shorten(values, most: int = 4) -> str:
    try:
        items = sorted(values)
    except TypeError:
        items = sorted(values, key=str)
    text = ", ".join(str(v) for v in items[:most])
    return f"{text}, ... ({len(items)} in all)" if len(items) > most else text


def size(values) -> int:
    return sum(Counter(values).values())


# --- the tests' comparisons ------------------------------------------------------------------------

def add_comparison(cell: Cell, test: str, cmp, ts, ours) -> None:
    """A tests.fidelity.Comparison of ts against ours into its cell."""
    cell.compared = True
    cell.seen |= bool(+Counter(ts)) or bool(+Counter(ours))
    for k in cmp.known:
        cell.diffs.append((size(k.only_tshark) + size(k.only_ours), k.reason,
                           f"{test} {k.what}: only tshark {{{shorten(k.only_tshark)}}}, "
                           f"only ours {{{shorten(k.only_ours)}}}"))
    cell.diffs += [(0, None, f"{test} {k.what}: known difference no longer seen: {k.reason}") for k in cmp.stale]
    if cmp.only_tshark or cmp.only_ours:
        cell.diffs.append((size(cmp.only_tshark) + size(cmp.only_ours), None,
                           f"{test} {cmp.what}: only tshark {{{shorten(cmp.only_tshark.elements())}}}, "
                           f"only ours {{{shorten(cmp.only_ours.elements())}}}"))


def map_file(row: Row, path: Path) -> None:
    from tests import test_tshark as t
    from tests.fidelity import compare
    c = t.BY_NAME[path.name]
    ts, ours = t.run_tshark(path, c.prefs), t.run_ours(path, c.mtp3)
    for what, (theirs, mine) in t.compared(ts, ours).items():
        add_comparison(row.cells[MAP_COLUMN[what]], "test_tshark",
                       compare(what, theirs, mine, t.KNOWN.get(path.name, [])), theirs, mine)
    row.family += ["MAP"] if ts.comps or ours.comps else []
    cell = row.cells["msisdn"]
    for parent, digits in ts.node_numbers.items():      # the e164.msisdn test_msisdns_match_tshark leaves out
        cell.seen = True
        role = t.NODE_ADDRESS_FIELDS[parent]
        cell.left_out.append((f"MAP: tshark's e164.msisdn under {parent} are node addresses, not subscriber "
                              "MSISDNs (test_tshark.NODE_ADDRESS_FIELDS); " +
                              ("they are in our records' node" if role else "ours does not record them"),
                              f"{len(digits)} distinct"))
        if role == "node" and not digits <= ours.nodes:
            cell.diffs.append((len(digits - ours.nodes), None, f"test_tshark {parent} not in ours' node: "
                               f"{shorten(digits - ours.nodes)}"))
    if ts.unclassified:
        cell.diffs.append((len(ts.unclassified), None, f"test_tshark e164.msisdn under an unclassified parent: "
                           f"{shorten(ts.unclassified)}"))
    row.notes += [("test_tshark", t.NOTES[path.name])] if path.name in t.NOTES else []


def cap_isup_file(row: Row, path: Path) -> None:
    from tests import test_tshark_cap_isup as t
    from tests.fidelity import compare
    c = t.BY_NAME[path.name]
    ts, ours = t.tshark_view(c), t.run_ours(c)
    sides = t.compared(ts, ours)
    for what, (theirs, mine) in sides.items():
        add_comparison(row.cells[CAP_COLUMN[what]], "test_tshark_cap_isup",
                       compare(what, theirs, mine, t.KNOWN.get(path.name, [])), theirs, mine)
    for family, whats in (("CAP", ("comps",)), ("ISUP", ("isup", "isup other")), ("BICC", ("bicc",))):
        if any(+Counter(side) for w in whats for side in sides[w]):
            row.family.append(family)
    row.notes += [("test_tshark_cap_isup", t.NOTES[path.name])] if path.name in t.NOTES else []


def gtp_file(row: Row, path: Path) -> None:
    from tests import test_tshark_gtp as t
    theirs, ours = t.tshark_view(path), t.our_view(path)
    diffs, known = t.differences(theirs, ours), t.KNOWN.get(path.name, {})
    for key in sorted(set(theirs) | set(ours) | set(known)):
        cell = row.cells[GTP_COLUMN.get(key, "ops")]
        cell.compared = True
        cell.seen |= bool(theirs.get(key)) or bool(ours.get(key))
        if key in diffs:
            ts, o = diffs[key]
            n = abs(ts - o) if isinstance(ts, int) else len(set(ts) ^ set(o))
            why = known[key][2] if known.get(key, ())[:2] == (ts, o) else None
            cell.diffs.append((n, why, f"test_tshark_gtp {key}: tshark {ts}, ours {o}"))
        elif key in known:
            cell.diffs.append((0, None, f"test_tshark_gtp {key}: known difference no longer seen: {known[key][2]}"))
    shown = {k.split(":")[0] for k in set(theirs) | set(ours) if theirs.get(k) or ours.get(k)}
    row.family += [family for prefix, family in GTP_FAMILY.items() if prefix in shown]


# --- what the tests do not compare -----------------------------------------------------------------

def manifest() -> dict:
    """name -> (SS7 or GTP, {column: "field: n distinct, ..."}) from the MANIFEST's sections and
    "Subscriber identifiers" lines."""
    out, group, name = {}, "", None
    for line in (PUBLIC / "MANIFEST.md").read_text().splitlines():
        if line.startswith("## "):
            group = "SS7" if line.startswith("## SS7") else "GTP"
        elif line.startswith("### "):
            name = line[4:].strip()
            out[name] = (group, {})
        elif line.startswith("- Subscriber identifiers: ") and name:
            for part in line.split(": ", 1)[1].split("); "):
                label, _, fields = part.partition(" (")
                if label in MANIFEST_COLUMN:
                    out[name][1][MANIFEST_COLUMN[label]] = fields.rstrip(")")
    return out


def our_values(records: list) -> dict:
    """column -> the distinct values of our records."""
    calls = [r for r in records if r["kind"] == "call_attempt"]
    return {"ops": set(), "imsi": {r["imsi"] for r in records if "imsi" in r},
            "msisdn": {r["msisdn"] for r in records if "msisdn" in r},
            "imei": {r["imei"] for r in records if "imei" in r},
            "cells": {(r["loc_type"], r.get("mcc"), r["lac_tac"], r["cell"]) for r in records if "loc_type" in r},
            "called": {r["peer"] for r in calls if "peer" in r},
            "key": {r["service_key"] for r in records if "service_key" in r}}


def add_gaps(row: Row, listed: dict, ours: dict) -> None:
    """A column no comparison covers, or whose comparisons see no value at all, while the MANIFEST
    lists tshark values or our records hold some: footnoted, never "n/a"."""
    for column, cell in row.cells.items():
        if cell.gaps or cell.seen or not (column in listed or ours[column]):
            continue
        tshark = f"tshark {listed[column]} (MANIFEST)" if column in listed else "tshark: none in the MANIFEST"
        how = "the file's comparisons read other fields" if cell.compared else "no test compares them"
        cell.gaps.append((NOT_COMPARED, f"{COLUMNS[column]}: {tshark}; ours {len(ours[column])} distinct; {how}"))


# --- frames without a record -----------------------------------------------------------------------

def frames_explained(path: Path) -> tuple:
    """(frames, records as dicts, summary) of the per-message run test_stats_public makes with our
    options for the MANIFEST's tshark prefs, its frames without a record explained as it does."""
    from touchpoint.probe.decode import Options
    from touchpoint.probe.format import to_dicts
    from tests import test_stats_public as st
    prof = st.profiles(path.name)[-1]
    run = st.per_frame(path, Options(messages=True, **dict(prof.options)))
    why = st.explain(run)
    reasons, names = Counter(), {}
    for num, reason in why.items():
        if reason == "anomaly":
            anomalies = [a for a in run.frames[num].anomalies if a not in st.BOOKKEEPING]
            reason = next(c for c in CLASS_ORDER if any(st.CLASS[a] == c for a in anomalies))
            names.setdefault(reason, Counter()).update(a for a in anomalies if st.CLASS[a] == reason)
        reasons[reason] += 1
    malformed, truncated = set(st.frames_of(run, "malformed")), set(st.frames_of(run, "truncated"))
    known, reason = st.TRUNCATED_KNOWN.get(path.name, (frozenset(), ""))
    flagged = st.run_tshark(path, prof.prefs).flagged if malformed or truncated else set()
    return run.stats.frames, to_dicts(run.records), {
        "options": dict(prof.options), "without_record": len(why), "reasons": dict(reasons),
        "anomalies": {c: [a for a, _n in n.most_common()] for c, n in names.items()},
        "malformed": sorted(malformed), "malformed_not_flagged": sorted(malformed - flagged),
        "truncated": sorted(truncated), "truncated_known": sorted(known & truncated),
        "truncated_not_flagged": sorted(truncated - flagged - known),
        "truncated_reason": reason if known & truncated else ""}


def stats_text(row: Row) -> str:
    s = row.stats
    opts = ", ".join(f"{k}={v}" for k, v in s["options"].items())
    parts = []
    for reason, n in sorted(s["reasons"].items(), key=lambda kv: -kv[1]):
        label = {"sctp-control": "SCTP without DATA", "gtpu": "GTP-U counted in data_usage"}.get(reason, reason)
        names = s["anomalies"].get(reason)
        parts.append(f"{label} {n}" + (f" ({', '.join(names)})" if names else ""))
    text = (f"frames {row.frames}{f' ({opts})' if opts else ''}, with a record {row.frames - s['without_record']}, "
            f"without {s['without_record']}" + (": " + "; ".join(parts) if parts else ""))
    text += f". Malformed: {len(s['malformed']) or 'none'}"
    if s["malformed"]:
        text += f" (frames {shorten(s['malformed'])}; " + (
            "tshark flags them too)" if not s["malformed_not_flagged"] else
            f"tshark does not flag {shorten(s['malformed_not_flagged'])})")
    if s["truncated"]:
        text += f". Truncated: {len(s['truncated'])} (frames {shorten(s['truncated'])}; " + (
            f"tshark does not flag {len(s['truncated_known'])}: {s['truncated_reason']})" if s["truncated_known"]
            else "tshark flags them too)")
    return text + "."


# --- one file, all files ---------------------------------------------------------------------------

def compare_file(name: str, listed: dict) -> Row:
    from tests import test_tshark, test_tshark_cap_isup, test_tshark_gtp
    path = PUBLIC / name
    group, identifiers = listed.get(name, ("", {}))
    row = Row(name, group)
    row.frames, records, row.stats = frames_explained(path)
    row.records = len(records)
    if name in test_tshark.BY_NAME:
        map_file(row, path)
    if name in test_tshark_cap_isup.BY_NAME:
        cap_isup_file(row, path)
    if name in test_tshark_gtp.gtp_captures():
        gtp_file(row, path)
    add_gaps(row, identifiers, our_values(records))
    return row


def problems(row: Row) -> list:
    out = [f"{row.name}: {what}" for cell in row.cells.values() for _n, why, what in cell.diffs if why is None]
    s = row.stats
    if s["reasons"].get("unexplained"):
        out.append(f"{row.name}: {s['reasons']['unexplained']} frames without a record and without a reason")
    if s["malformed_not_flagged"] or s["truncated_not_flagged"]:
        out.append(f"{row.name}: counted malformed {s['malformed_not_flagged']}, truncated "
                   f"{s['truncated_not_flagged']}, where tshark flags nothing")
    return out


def footnotes(rows: list) -> dict:
    """(section, reason) -> (number, [(file, detail)]), numbered section by section."""
    found = {"known": {}, "left out": {}, "not compared": {}}
    for row in rows:
        for cell in row.cells.values():
            entries = [("known", why or NOT_EXPLAINED, what) for _n, why, what in cell.diffs]
            entries += [("left out", why, detail) for why, detail in cell.left_out]
            entries += [("not compared", why, detail) for why, detail in cell.gaps]
            for section, why, detail in entries:
                found[section].setdefault(why, []).append((row.name, detail))
    notes = [((section, why), lines) for section, reasons in found.items() for why, lines in reasons.items()]
    return {key: (i, lines) for i, (key, lines) in enumerate(notes, 1)}


def markdown(rows: list, tshark: str) -> str:
    notes = footnotes(rows)
    note = lambda section, why: notes[(section, why)][0]
    out = [
        f"# Fidelity against {tshark}",
        "",
        f"{len(rows)} file{'s' * (len(rows) != 1)} of `{PUBLIC}`, our decoder in per-message mode. "
        "`=` identical, `n/a` absent on both sides, `N [k]` N values differ for reason k, "
        "`N! [k]` a difference the tests do not explain, "
        "`- [k]` values no test compares. MSISDN: for CAP and ISUP the calling party number, and CAP's MSC "
        "address against our node; cells: the CGI for CAP, the ECI and TAC for GTPv2, the LAC, RAC, CI and "
        "SAC for GTPv1.",
        "",
        "| file | family | frames | records | " + " | ".join(COLUMNS.values()) + " |",
        "|---|---|---:|---:|" + "---|" * len(COLUMNS),
    ]
    for row in rows:
        family = "+".join(row.family) or f"none ({row.section or '?'})"
        cells = " | ".join(row.cells[c].text(note) for c in COLUMNS)
        out.append(f"| `{row.name}` | {family} | {row.frames} | {row.records} | {cells} |")
    titles = {"known": "Known differences (the tests' KNOWN)", "left out": "Left out by the tests, by design",
              "not compared": "Not compared by the tests"}
    for section, title in titles.items():
        entries = [(n, why, lines) for (sec, why), (n, lines) in notes.items() if sec == section]
        if entries:
            out += ["", f"## {title}", ""]
        for n, why, lines in entries:
            out.append(f"[{n}] {why}")
            out += [f"  - `{name}`: {detail}" for name, detail in lines]
    file_notes = [f"- `{row.name}` ({test}): {text}" for row in rows for test, text in row.notes]
    if file_notes:
        out += ["", "## What a comparison checks beyond the obvious (the tests' NOTES)", ""] + file_notes
    out += ["", "## Frames without a record (`touchpoint decode --stats`)", ""]
    out += [f"- `{row.name}`: {stats_text(row)}" for row in rows]
    return "\n".join(out)


def as_json(rows: list, tshark: str) -> str:
    def cell(c: Cell) -> dict:
        return {"text": c.text(lambda _section, _why: "").replace(" []", ""), "compared": c.compared,
                "differences": [{"count": n, "reason": why, "what": what} for n, why, what in c.diffs],
                "left_out": [{"reason": why, "detail": d} for why, d in c.left_out],
                "not_compared": [{"reason": why, "detail": d} for why, d in c.gaps]}
    return json.dumps({"tshark": tshark, "files": [
        {"name": r.name, "family": r.family, "frames": r.frames, "records": r.records,
         "columns": {c: cell(r.cells[c]) for c in COLUMNS}, "notes": dict(r.notes), "stats": r.stats}
        for r in rows]}, indent=1, default=str)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", metavar="NAME", help="only this public file (or the files whose name holds NAME)")
    ap.add_argument("--json", action="store_true", help="JSON instead of markdown")
    args = ap.parse_args()
    tshark = shutil.which("tshark")
    if not PUBLIC.is_dir() or tshark is None:
        print(f"fidelity: skipped, needs {PUBLIC} and tshark", file=sys.stderr)
        return 0
    names = sorted(p.name for p in PUBLIC.iterdir() if p.suffix in (".pcap", ".pcapng"))
    if args.only:
        names = [n for n in names if n == args.only] or [n for n in names if args.only in n]
        if not names:
            ap.error(f"--only {args.only}: no such file in {PUBLIC}")
    version = subprocess.run([tshark, "--version"], capture_output=True, text=True).stdout
    version = version.splitlines()[0].split(" (Git")[0] if version else "tshark"
    listed = manifest()
    rows = [compare_file(n, listed) for n in names]
    print(as_json(rows, version) if args.json else markdown(rows, version))
    bad = [p for row in rows for p in problems(row)]
    for p in bad:
        print(f"fidelity: {p}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
