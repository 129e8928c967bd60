"""tshark's values against ours, with the differences that are understood taken out.

Shared by the tshark tests of SS7 captures (tests/test_tshark.py, tests/test_tshark_cap_isup.py),
which fail on any difference left, and bench/fidelity.py, which tabulates them per file.
"""
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Known:
    what: str                 # what the test compares ("ops", "imsi", "called", ...)
    only_tshark: set = field(default_factory=set)
    only_ours: set = field(default_factory=set)
    reason: str = ""


@dataclass
class Comparison:
    what: str
    only_tshark: Counter      # what no Known difference explains
    only_ours: Counter
    known: list               # the Known differences seen
    stale: list               # the Known differences no longer seen

    def problems(self) -> list:
        out = [f"known {self.what} difference no longer seen, update KNOWN: {k}" for k in self.stale]
        if self.only_tshark:
            out.append(f"{self.what} only in tshark: {sorted(self.only_tshark.elements(), key=str)[:20]}")
        if self.only_ours:
            out.append(f"{self.what} only in ours: {sorted(self.only_ours.elements(), key=str)[:20]}")
        return out


def compare(what: str, ts, ours, known: list) -> Comparison:
    """ts and ours are sets or Counters (multiplicity counts); known: the file's Known entries."""
    ts, ours = Counter(ts), Counter(ours)
    only_t, only_o = ts - ours, ours - ts
    seen, stale = [], []
    for k in known:
        if k.what != what:
            continue
        kt, ko = Counter(k.only_tshark), Counter(k.only_ours)
        (stale if kt - only_t or ko - only_o else seen).append(k)
        only_t -= kt
        only_o -= ko
    return Comparison(what, only_t, only_o, seen, stale)
