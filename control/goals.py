"""Goals: did the subscriber do what the campaign wanted, within its window after the message?

Every campaign with a goal (docs/rules.md, `goal:`) gets an *attribution window* for each
message the dispatcher sent (from its sent time) and for each held-out trigger that would have
been sent (control.policy: from the time it would have gone out): `goal.within` long, kept in
the outbox's SQLite (table `conversions`) so a restart keeps it. The engine finds the goal events of each batch
(`Engine.goal_hits`: the goal's event whose `where` holds); they are matched here against the
open windows of the same campaign and subscriber (by IMSI or MSISDN), and the first one inside a
window is its conversion. Windows close at their end; a goal of an imported list
(`goal: {list: conversions, ...}`) is resolved by the report instead, from the list.

A tracked seed (`track_forwards`, control.forwards) opens a window too, `holdout` REACHED, for
each subscriber the seed's notification reached, from the first one: the report counts those
among them a forward reached (control.forwards.trail) beside the contacted and the held out.

Sending is asynchronous: a message is marked sent after the batch that triggered it, and goal
events may already have gone by. So the goal events of the last `HORIZON_NS` of record time
(at most `RECENT` of them a campaign) are kept, and a window that opens is matched against
them too: the result does not depend on how records were batched.

    goals = Goals(data_dir, ruleset)
    goals.observe(engine.goal_hits, engine.state.clock_ns)     # after the batch's triggers were offered
"""
import numpy as np

from touchpoint.probe.record import NO_DIGITS, pack, unpack

from .outbox import Outbox

HORIZON_NS = 86400 * 10**9          # goal events kept for windows that open late (record time)
RECENT = 1 << 20                    # at most this many a campaign
ROWID = "goals:rowid"               # offsets: the messages scanned for hold-outs up to this rowid
CLOCK = "goals:clock"               # offsets: the record time goal events were matched up to
REPLIES = "goals:replies"           # offsets: the replies matched up to this rowid
REACHED = 2                         # conversions.holdout of a seed's recipient (0 contacted, 1 held out)


class _Open:
    """One campaign's open windows: per window its message id, start, end and first goal seen
    (0: none); an index of their subscriber keys (IMSI and MSISDN, packed), sorted."""

    def __init__(self):
        self.ids = np.empty(0, object)
        self.start = np.empty(0, np.int64)
        self.end = np.empty(0, np.int64)
        self.done = np.empty(0, np.int64)
        self.keys = np.empty(0, np.uint64)          # sorted
        self.at = np.empty(0, np.int64)             # the window of each key
        self.hit_keys = np.empty(0, np.uint64)      # recent goal events
        self.hit_ts = np.empty(0, np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, ids, imsi, msisdn, start, end, done) -> np.ndarray:
        """Add windows; returns their positions."""
        base = len(self.ids)
        self.ids = np.concatenate([self.ids, np.array(ids, object)])
        self.start = np.concatenate([self.start, start])
        self.end = np.concatenate([self.end, end])
        self.done = np.concatenate([self.done, done])
        pos = np.arange(base, base + len(ids))
        self._index(np.concatenate([imsi, msisdn]), np.concatenate([pos, pos]))
        return pos

    def _index(self, keys, at) -> None:
        known = keys != NO_DIGITS
        keys = np.concatenate([self.keys, keys[known]])
        at = np.concatenate([self.at, at[known]])
        order = np.argsort(keys, kind="stable")     # two sorted runs: merged in linear time
        self.keys, self.at = keys[order], at[order]

    def match(self, keys: np.ndarray, ts: np.ndarray, only=None) -> list:
        """Goal events (subscriber keys, times) against the windows (or those at `only`): the
        windows whose first goal this makes earlier, as (position, ts)."""
        if not len(self.keys) or not len(keys):
            return []
        lo = np.searchsorted(self.keys, keys, "left")
        hi = np.searchsorted(self.keys, keys, "right")
        changed = {}
        for i in np.flatnonzero(hi > lo):
            t = int(ts[i])
            for w in self.at[lo[i]:hi[i]]:
                if only is not None and not only[w]:
                    continue
                # strictly after the window opens: the record that triggered the campaign (a
                # held-out window opens at the decision, at that record's time) is not its own goal
                if self.start[w] < t <= self.end[w] and (not self.done[w] or t < self.done[w]):
                    self.done[w] = t
                    changed[int(w)] = t
        return list(changed.items())

    def remember(self, keys: np.ndarray, ts: np.ndarray, now_ns: int) -> None:
        keep = keys != NO_DIGITS
        k = np.concatenate([self.hit_keys, keys[keep]])
        t = np.concatenate([self.hit_ts, ts[keep]])
        recent = t >= now_ns - HORIZON_NS
        k, t = k[recent][-RECENT:], t[recent][-RECENT:]
        self.hit_keys, self.hit_ts = k, t

    def close(self, now_ns: int) -> int:
        """Forget the windows that ended or converted (their rows stay). Returns how many."""
        gone = (self.end < now_ns) | (self.done > 0)
        if not gone.any():
            return 0
        keep = ~gone
        new_pos = np.cumsum(keep) - 1
        k = keep[self.at]
        self.keys, self.at = self.keys[k], new_pos[self.at[k]]
        self.ids, self.start, self.end, self.done = self.ids[keep], self.start[keep], self.end[keep], self.done[keep]
        return int(gone.sum())


class Goals:
    def __init__(self, data_dir: str, ruleset, warn=None):
        self.outbox = Outbox(data_dir)
        self.db = self.outbox.db
        self.warn = warn or (lambda line: None)
        self.open = {}                  # campaign id -> _Open
        self.counts = {"windows": 0, "conversions": 0, "expired": 0}
        self.reload(ruleset)
        self._restore()

    def close(self) -> None:
        self.outbox.close()

    def reload(self, ruleset) -> None:
        self.goals = {c.id: c.goal for c in ruleset.campaigns if c.goal is not None}
        for cid in self.goals:
            self.open.setdefault(cid, _Open())

    def _restore(self) -> None:
        """The windows still open, and how far the outbox has been read, from SQLite."""
        self.rowid = self.outbox.offset(ROWID)
        self.reply_rowid = self.outbox.offset(REPLIES)
        self.sent_mark = {}             # campaign -> (latest sent_ns taken, the ids taken at it)
        for cid, mark in self.db.execute("SELECT campaign, max(start_ns) FROM conversions WHERE holdout = 0 "
                                         "GROUP BY campaign"):
            ids = {r[0] for r in self.db.execute("SELECT message FROM conversions WHERE campaign = ? AND holdout = 0 "
                                                 "AND start_ns = ?", (cid, mark))}
            self.sent_mark[cid] = (mark, ids)
        rows = self.db.execute("SELECT message, campaign, imsi, msisdn, start_ns, end_ns FROM conversions "
                               "WHERE converted_ns IS NULL").fetchall()
        self._add(rows)

    def _add(self, rows) -> dict:
        """Windows (message, campaign, imsi, msisdn, start_ns, end_ns) into memory; returns
        campaign -> their positions."""
        by = {}
        for r in rows:
            by.setdefault(r[1], []).append(r)
        out = {}
        for cid, rs in by.items():
            ids, _, imsi, msisdn, start, end = zip(*rs)
            o = self.open.setdefault(cid, _Open())
            out[cid] = o.add(ids, pack(list(imsi)), pack(list(msisdn)), np.array(start, np.int64),
                             np.array(end, np.int64), np.zeros(len(ids), np.int64))
        return out

    # ---- the windows that open ---------------------------------------------------------------------

    def _new_windows(self) -> list:
        """Messages of goal campaigns held out or sent since the last look: rows for `conversions`."""
        out = []
        top = self.db.execute("SELECT coalesce(max(rowid), 0) FROM messages").fetchone()[0]
        if top > self.rowid:
            for mid, cid, imsi, msisdn, at in self.db.execute(
                    "SELECT id, campaign, imsi, msisdn, due_ns FROM messages WHERE rowid > ? AND rowid <= ? "
                    "AND holdout = 1 AND reason = 'holdout' AND due_ns IS NOT NULL", (self.rowid, top)):
                g = self.goals.get(cid)
                if g is not None:
                    out.append((mid, cid, imsi, msisdn, 1, at, at + g.within_s * 10**9))
            self.rowid = top
        for cid, g in self.goals.items():
            mark, ids = self.sent_mark.get(cid, (-1, set()))
            rows = self.db.execute("SELECT id, imsi, msisdn, sent_ns FROM messages WHERE campaign = ? AND sent_ns >= ? "
                                   "AND holdout = 0 ORDER BY sent_ns", (cid, mark)).fetchall()
            rows = [r for r in rows if r[0] not in ids]
            if not rows:
                continue
            top_sent = rows[-1][3]
            at_top = {r[0] for r in rows if r[3] == top_sent}
            self.sent_mark[cid] = (top_sent, at_top | (ids if top_sent == mark else set()))
            out += [(mid, cid, imsi, msisdn, 0, at, at + g.within_s * 10**9) for mid, imsi, msisdn, at in rows]
        return out

    def _reached(self, notified) -> list:
        """Rows for `conversions` of the seeds' recipients (ForwardLog.observe) who have no window
        yet: one a subscriber and campaign, from its first notification."""
        first = {}
        for cid, ts, imsi, msisdn in notified:
            g = self.goals.get(cid)
            if g is None or g.reply:            # a reply goal: the recipient has no message to answer
                continue
            for t, i, m in zip(ts.tolist(), unpack(imsi).tolist(), unpack(msisdn).tolist()):
                mid = f"{cid}/reached/{m or i}"
                if mid not in first or t < first[mid][5]:
                    first[mid] = (mid, cid, i, m, REACHED, t, t + g.within_s * 10**9)
        return [r for mid, r in first.items()
                if self.db.execute("SELECT 1 FROM conversions WHERE message = ?", (mid,)).fetchone() is None]

    def _replies(self) -> list:
        """The replies since the last look that answer a message of a reply goal (`goal: {reply:
        [...]}`) with one of its words: (message id, reply time)."""
        top = self.db.execute("SELECT coalesce(max(rowid), 0) FROM replies").fetchone()[0]
        if top <= self.reply_rowid:
            return []
        rows = self.db.execute("SELECT message, campaign, at_ns, word FROM replies WHERE rowid > ? AND rowid <= ? "
                               "AND message != ''", (self.reply_rowid, top)).fetchall()
        self.reply_rowid = top
        return [(mid, at) for mid, cid, at, word in rows
                if (g := self.goals.get(cid)) is not None and word in g.reply]

    # ---- goal events ---------------------------------------------------------------------------------

    def observe(self, hits: list, now_ns: int, notified=()) -> int:
        """Open the windows of what was sent or held out since the last call and of the seeds'
        recipients `notified` (ForwardLog.observe), then match the goal events (Engine.goal_hits:
        (campaign, ts_ns, imsi, msisdn) arrays) against every open window of their campaign.
        Returns the conversions found."""
        rows = self._new_windows() + self._reached(notified)
        converted = []
        with self.outbox.tx():
            if rows:
                self.db.executemany("INSERT OR IGNORE INTO conversions (message, campaign, holdout, imsi, msisdn, "
                                    "start_ns, end_ns) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                    [(m, c, h, i, s, a, e) for m, c, i, s, h, a, e in rows])
                self.counts["windows"] += len(rows)
                fresh = self._add([(m, c, i, s, a, e) for m, c, i, s, h, a, e in rows])
                for cid, pos in fresh.items():        # goal events that came before the window opened
                    o = self.open[cid]
                    only = np.zeros(len(o), bool)
                    only[pos] = True
                    converted += [(o, w, t) for w, t in o.match(o.hit_keys, o.hit_ts, only)]
            for cid, ts, imsi, msisdn in hits:
                o = self.open.get(cid)
                if o is None or not len(ts):
                    continue
                keys, times = np.concatenate([imsi, msisdn]), np.concatenate([ts, ts])
                converted += [(o, w, t) for w, t in o.match(keys, times)]
                o.remember(keys, times, now_ns)
            self.db.executemany("UPDATE conversions SET converted_ns = ? WHERE message = ? "
                                "AND (converted_ns IS NULL OR converted_ns > ?)",
                                [(t, o.ids[w], t) for o, w, t in converted])
            replied = self._replies()       # the message's own window: a held-out subscriber has none to answer
            self.db.executemany("UPDATE conversions SET converted_ns = ? WHERE message = ? AND start_ns < ? "
                                "AND ? <= end_ns AND (converted_ns IS NULL OR converted_ns > ?)",
                                [(t, mid, t, t, t) for mid, t in replied])
            self.outbox.set_offset(ROWID, self.rowid)
            self.outbox.set_offset(REPLIES, self.reply_rowid)
            self.outbox.set_offset(CLOCK, now_ns)       # the report's now: which windows are still open
        for o in self.open.values():
            o.close(now_ns)
        self.counts["conversions"] += len(converted)
        return len(converted)

    def status(self) -> dict:
        return {**self.counts, "open": sum(len(o) for o in self.open.values())}
