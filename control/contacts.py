"""Contact history for audiences (`contacted:` in an audience or an exclusion): whom a campaign's
messages reached, and whether they converted or were replied to, read from the outbox.

    history = ContactHistory(data_dir)              # the engine's; the dry run has DryHistory
    mask = history.holds(contacted, msisdns, now_ns)  # campaigns.Contacted, packed MSISDNs

A subscriber was contacted by a campaign when a message of it was sent to its MSISDN (held-out
subscribers were not: a follow-up wave reaches the contacted), within `within` before now when it
says so. `converted: false` is contacted and converted by none of those messages (its goal's
window, control.goals); `replied: false`, replied to none of them. Each set is read once a minute
of the engine's clock at most: a scheduled run reads it afresh, a batch a minute later too.
"""
import os
import sqlite3

import numpy as np

from touchpoint.probe.record import pack

MINUTE_NS = 60 * 10**9


class ContactHistory:
    def __init__(self, data_dir: str):
        self.path = os.path.join(data_dir, "outbox.sqlite")
        self.db = None
        self.cache = {}

    def holds(self, h, msisdns: np.ndarray, now_ns: int) -> np.ndarray:
        members = self.members(h, now_ns)
        at = np.searchsorted(members, msisdns)
        return (at < len(members)) & (members[np.minimum(at, len(members) - 1)] == msisdns) if len(members) else \
            np.zeros(len(msisdns), bool)

    def members(self, h, now_ns: int) -> np.ndarray:
        """The packed MSISDNs, sorted, of whom `h` (campaigns.Contacted) holds for at now_ns."""
        key = (h, now_ns // MINUTE_NS)
        if key not in self.cache:
            if len(self.cache) > 64:
                self.cache.clear()
            self.cache[key] = np.unique(pack(self._query(h, now_ns))) if self._open() else np.empty(0, np.uint64)
        return self.cache[key]

    def _open(self) -> bool:
        if self.db is None and os.path.exists(self.path):
            self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False, timeout=30)
        return self.db is not None

    def _query(self, h, now_ns: int) -> list:
        sql = ("SELECT DISTINCT msisdn FROM messages m WHERE campaign = ? AND holdout = 0 AND sent_ns IS NOT NULL "
               "AND sent_ns <= ?" + (" AND sent_ns > ?" if h.within_s else ""))
        args = [h.campaign, now_ns] + ([now_ns - h.within_s * 10**9] if h.within_s else [])
        tests = {"converted": "EXISTS (SELECT 1 FROM conversions c WHERE c.message = m.id "
                              "AND c.converted_ns IS NOT NULL AND c.converted_ns <= ?)",
                 "replied": "EXISTS (SELECT 1 FROM replies r WHERE r.message = m.id AND r.at_ns <= ?)"}
        contacted = {r[0] for r in self.db.execute(sql, args)}
        for name, test in tests.items():
            want = getattr(h, name)
            if want is not None:
                did = {r[0] for r in self.db.execute(sql + " AND " + test, args + [now_ns])}
                contacted = contacted & did if want else contacted - did
        return sorted(contacted)


class DryHistory(ContactHistory):
    """`rules test`'s contact history: the messages its contact policy decided to send, due by
    now. It sends nothing, so nobody converts or replies in it: `converted: true` and
    `replied: true` hold for no one (said once), their `false` for every contacted subscriber."""

    def __init__(self, decisions: dict, warn=None):
        super().__init__("")
        self.decisions, self.warn, self.said = decisions, warn or (lambda line: None), False

    def _open(self) -> bool:
        return True

    def _query(self, h, now_ns: int) -> list:
        if (h.converted is not None or h.replied is not None) and not self.said:
            self.said = True
            self.warn("a dry run sends nothing: nobody converts or replies in it (contacted: converted/replied)")
        if h.converted or h.replied:
            return []
        since = now_ns - h.within_s * 10**9 if h.within_s else None
        return sorted({d.trigger.msisdn for d in self.decisions.values()
                       if d.trigger.campaign == h.campaign and d.state == "queued" and not d.holdout
                       and d.due_ns <= now_ns and (since is None or d.due_ns > since)})
