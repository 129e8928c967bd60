"""The contact policy: what becomes of each trigger, in a fixed order, each decision with its reason.

    policy = ContactPolicy(ruleset, lists)          # lists: control.lists.ListStore or None
    policy.restore(outbox, now_ns)                  # contact history, opt-outs, pauses from SQLite
    for d in policy.decide(triggers, now_ns):       # Decision: state, reason, due_ns, text, ...
        ...

The order (README, "the contact policy"): 1 campaign inactive, 2 hold-out, 3 unsendable (no
MSISDN, a template field without a value), 4 opt-out, 5 window, 6 cooldown, 7 arbitration,
8 frequency caps, 9 daily quota, 10 quiet hours (defer or expire), 11 approve mode (pending),
12 queued. The first step that stops a trigger gives its reason.

A held-out trigger (step 2 draws the group) goes on through steps 3 to 10 as if it were to be
sent, taking nothing from anybody: if one of them stops it, that is its reason; if it would have
been sent, it is `suppressed: holdout`, with the time it would have gone out. So the hold-out
group is what the contacted group would have been: the same opt-outs, windows, cooldowns,
arbitration, caps, quotas and quiet hours. Its would-be contacts count for its own campaign only
(history code -1 - campaign: its cooldown, caps and arbitration), never for other campaigns.

The contact history (what caps, cooldowns and quotas count) is every message queued and not
taken back (queued, sending, sent, delivered, failed), at its due time, per subscriber by packed
MSISDN: sorted numpy arrays rebuilt from the outbox at start, plus a dict of what came since,
merged into the arrays when it grows. A batch's subscribers are found in the arrays with one
searchsorted; the rest is a few list operations a trigger.
"""
import hashlib
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from touchpoint.probe.record import pack

from .lists.layout import ListError
from .policyfile import reply_word
from .schedule import next_open

NS = 1_000_000_000
DAY_NS = 86400 * NS
ANY = "*"                               # an opt-out from every campaign
GONE = np.iinfo(np.int64).min           # a contact taken back (superseded, expired unsent)

# States and reasons, as the outbox stores them.
SUPPRESSED, EXPIRED, PENDING, QUEUED = "suppressed", "expired", "pending", "queued"
REASONS = ("campaign_inactive", "holdout", "no_msisdn", "missing_field", "optout", "window", "cooldown",
           "arbitration", "frequency_cap", "quota", "quiet_hours", "send_window",
           "unapproved")                   # the last: a pending message whose window closed before an approval


# --- time ----------------------------------------------------------------------------------------

class WallClock:
    """Now is the wall clock (production)."""
    name = "wall"

    def now_ns(self) -> int:
        return time.time_ns()

    def see(self, ts_ns: int) -> None:
        pass


class RecordClock:
    """Now is the latest trigger (record) time seen: a replayed capture gets the decisions the
    live traffic got, whatever the wall clock says."""
    name = "records"

    def __init__(self, start_ns: int = 0):
        self.now = start_ns

    def now_ns(self) -> int:
        return self.now

    def see(self, ts_ns: int) -> None:
        if ts_ns > self.now:
            self.now = ts_ns


def make_clock(name: str):
    return {"wall": WallClock, "records": RecordClock}[name]()


# --- what each trigger becomes --------------------------------------------------------------------

@dataclass
class Decision:
    id: str                     # idempotency key: sha1(campaign|imsi-or-msisdn|ts_ns)
    trigger: object             # control.engine.Trigger
    state: str = QUEUED         # suppressed | expired | pending | queued
    reason: str = ""
    due_ns: int | None = None   # when it may go out (queued); None otherwise
    channel: str = ""
    source: str = ""
    text: str = ""
    holdout: int = 0
    key: int = 0                # packed MSISDN

    @property
    def priority(self) -> int:
        return self.trigger.priority


def message_id(campaign: str, imsi: str, msisdn: str, ts_ns: int) -> str:
    return hashlib.sha1(f"{campaign}|{imsi or msisdn}|{ts_ns}".encode()).hexdigest()


def holdout_share(campaign: str, subscriber: str) -> float:
    """sha256(campaign:subscriber) as a number in [0, 1): a subscriber stays in its group for ever."""
    return int.from_bytes(hashlib.sha256(f"{campaign}:{subscriber}".encode()).digest()[:8], "big") / 2.0**64


# --- contact history ------------------------------------------------------------------------------

class History:
    """Contacts per subscriber (packed MSISDN): (due time ns, campaign index).

    `keys`/`ts`/`camp` are sorted by key (the base); `delta` holds what came since as
    key -> [[ts, camp], ...]. A contact taken back is a tombstone (ts GONE) in the base."""

    def __init__(self):
        self.keys = np.empty(0, np.uint64)
        self.ts = np.empty(0, np.int64)
        self.camp = np.empty(0, np.int32)
        self.delta = {}
        self.pending = 0                    # contacts in delta

    def __len__(self) -> int:
        return len(self.keys) + self.pending

    def load(self, keys: np.ndarray, ts: np.ndarray, camp: np.ndarray) -> None:
        order = np.lexsort((ts, keys))
        self.keys, self.ts, self.camp = keys[order], ts[order], camp[order].astype(np.int32)
        self.delta, self.pending = {}, 0

    def find(self, keys: np.ndarray):
        """(lo, hi) of each key's contacts in the base, as lists."""
        return (np.searchsorted(self.keys, keys, "left").tolist(), np.searchsorted(self.keys, keys, "right").tolist())

    def of(self, key: int, lo: int, hi: int) -> list:
        """[(ts, camp)] of one subscriber."""
        out = list(zip(self.ts[lo:hi].tolist(), self.camp[lo:hi].tolist())) if hi > lo else []
        more = self.delta.get(key)
        return out + [tuple(c) for c in more] if more else out

    def add(self, key: int, ts: int, camp: int) -> None:
        self.delta.setdefault(key, []).append([ts, camp])
        self.pending += 1

    def discard(self, key: int, ts: int, camp: int) -> None:
        more = self.delta.get(key)
        if more and [ts, camp] in more:
            more.remove([ts, camp])
            self.pending -= 1
            return
        k = np.uint64(key)
        for i in range(int(np.searchsorted(self.keys, k, "left")), int(np.searchsorted(self.keys, k, "right"))):
            if self.ts[i] == ts and self.camp[i] == camp:
                self.ts[i] = GONE
                return

    def merge(self, since_ns: int) -> None:
        """Fold the delta into the base, dropping what is older than since_ns (and tombstones)."""
        if self.pending:
            n = self.pending
            k = np.fromiter((key for key, cs in self.delta.items() for _ in cs), np.uint64, n)
            t = np.fromiter((c[0] for cs in self.delta.values() for c in cs), np.int64, n)
            c = np.fromiter((c[1] for cs in self.delta.values() for c in cs), np.int32, n)
            keys, ts, camp = (
                np.concatenate([self.keys, k]),
                np.concatenate([self.ts, t]),
                np.concatenate([self.camp, c]),
            )
        else:
            keys, ts, camp = self.keys, self.ts, self.camp
        keep = ts >= since_ns
        self.load(keys[keep], ts[keep], camp[keep])


# --- the policy -------------------------------------------------------------------------------------

class ContactPolicy:
    def __init__(self, ruleset, lists=None, warn=None):
        self.lists = lists
        self.warn = warn or (lambda line: None)
        self.history = History()
        self.camp_index = {}                # campaign id -> index in the history (stable for the process)
        self.quota_used = {}                # (campaign id, local day ordinal) -> messages
        self.recent = {}                    # key -> [trigger_ns, priority, id, campaign, due_ns]: arbitration
        self.held = {}                      # (key, campaign) -> [trigger_ns, id]: held-out would-be winners
        self.optouts = set()                # (msisdn, campaign or ANY)
        self.paused = set()                 # campaigns paused by ctl
        self.missing_lists = set()
        self.is_queued = lambda message_id: False      # the outbox's answer (set by the dispatcher)
        self.superseded = []                # (id, key, due_ns, campaign) taken back by a later winner
        self.load(ruleset)

    def load(self, ruleset) -> None:
        """Take a checked rule set: campaigns and policy.yaml. The history is kept."""
        self.ruleset = ruleset
        self.settings = ruleset.policy
        self.campaigns = {c.id: c for c in ruleset.campaigns}
        self.tz = self.settings.tz
        self.caps = [(per * NS, mx) for per, mx in self.settings.caps]
        self.arbitration_ns = self.settings.arbitration_s * NS
        self.keywords = {reply_word(k) for k in self.settings.optout_keywords}
        # the words of a reply worth keeping (goals, opt-outs): any other text is never stored
        self.reply_words = self.keywords | {w for c in self.campaigns.values()
                                            for w in c.replies + (c.goal.reply if c.goal else ())}
        self._days = {}                     # minute -> local day
        for cid in self.campaigns:
            self.camp_index.setdefault(cid, len(self.camp_index))

    def horizon_ns(self) -> int:
        """How far back the history must reach: the longest cap period, cooldown or a quota day."""
        spans = [per for per, _ in self.caps] + [c.cooldown_s * NS for c in self.campaigns.values()]
        return max(spans + [2 * DAY_NS, self.arbitration_ns])

    # ---- state from the outbox ----------------------------------------------------------------------

    def restore(self, outbox, now_ns: int) -> None:
        names, keys, due, camp, held = outbox.contacts(now_ns - self.horizon_ns())
        for cid in names:
            self.camp_index.setdefault(cid, len(self.camp_index))
        remap = np.array([self.camp_index[n] for n in names] or [0], np.int32)
        codes = remap[camp]
        self.history.load(keys, due, np.where(held, -1 - codes, codes))
        self.quota_used = {}
        recent_since = now_ns - 2 * DAY_NS
        for cid, due in outbox.queued_since(recent_since):
            k = (cid, self.day(due))
            self.quota_used[k] = self.quota_used.get(k, 0) + 1
        self.recent = {}
        self.held = {}
        winners = outbox.winners_since(now_ns - 2 * self.arbitration_ns)
        for msisdn, trigger_ns, priority, mid, cid, due, holdout in winners:
            key = int(pack([msisdn])[0])
            if holdout:
                self.held[(key, cid)] = [trigger_ns, mid]
            else:
                self.recent[key] = [trigger_ns, priority, mid, cid, due]
        self.optouts = set(outbox.optouts())
        self.paused = set(outbox.paused())

    def compact(self, now_ns: int) -> None:
        """Between batches: merge the history's delta when it has grown, forget old arbitration."""
        if self.history.pending > max(1 << 16, len(self.history.keys) // 4):
            self.history.merge(now_ns - self.horizon_ns())
        old = now_ns - 2 * self.arbitration_ns
        if len(self.recent) > 1 << 16:
            self.recent = {k: v for k, v in self.recent.items() if v[0] >= old}
        if len(self.held) > 1 << 16:
            self.held = {k: v for k, v in self.held.items() if v[0] >= old}

    # ---- opt-outs --------------------------------------------------------------------------------------

    def opted_out(self, msisdn: str, campaign: str) -> bool:
        return (msisdn, ANY) in self.optouts or (msisdn, campaign) in self.optouts

    def keyword(self, text: str) -> bool:
        """Is an MO text an opt-out keyword ("TD", "退订", ...; case, width and spaces ignored)?"""
        return reply_word(text) in self.keywords

    def listed(self, msisdns: np.ndarray, imsis: np.ndarray) -> np.ndarray:
        """In any of policy.yaml's optout_lists."""
        out = np.zeros(len(msisdns), bool)
        for name in self.settings.optout_lists:
            lst = self._list(name)
            if lst is not None:
                out |= lst.rows(msisdns, imsis) >= 0
        return out

    def lists_holding(self, msisdn: str) -> list:
        """The opt-out lists this number is in."""
        key = pack([msisdn])
        return [n for n in self.settings.optout_lists if (lst := self._list(n)) is not None and lst.rows(key)[0] >= 0]

    def _list(self, name: str):
        """An opt-out list (a missing one is said once and holds nobody)."""
        try:
            return self.lists.get(name) if self.lists is not None else None
        except ListError as e:
            if name not in self.missing_lists:
                self.missing_lists.add(name)
                self.warn(f"opt-out list: {e}: nobody is in it")
            return None

    # ---- time ------------------------------------------------------------------------------------------

    def day(self, ts_ns: int) -> int:
        """The local day (ordinal) of a time, in the policy's time zone (kept by the minute)."""
        minute = ts_ns // (60 * NS)
        d = self._days.get(minute)
        if d is None:
            if len(self._days) > 4096:
                self._days.clear()
            d = self._days[minute] = datetime.fromtimestamp(minute * 60, self.tz).toordinal()
        return d

    def allowed_at(self, ts_ns: int, windows: tuple = ()) -> int:
        """The first time at or after ts_ns outside the quiet hours and, given a campaign's send
        windows, inside one of them (`rules check` refuses windows wholly in the quiet hours)."""
        t = self._outside_quiet(ts_ns)
        for _ in range(8 if windows else 0):        # bounded, whatever the windows and quiet hours
            opened = next_open(windows, self.tz, t)
            if opened == t:
                break
            t = self._outside_quiet(opened)
        return t

    def late_reason(self, c, earliest: int, deadline: int) -> str:
        """Why a message may not go out before its deadline: the quiet hours, or its campaign's
        send windows (the quiet hours alone would have let it)."""
        return "send_window" if c.send_window and self._outside_quiet(earliest) <= deadline else "quiet_hours"

    def _outside_quiet(self, ts_ns: int) -> int:
        if self.settings.quiet is None:
            return ts_ns
        start, end = self.settings.quiet
        local = datetime.fromtimestamp(ts_ns / NS, self.tz)
        minute = local.hour * 60 + local.minute
        quiet = start <= minute < end if start < end else (minute >= start or minute < end)
        if not quiet:
            return ts_ns
        day = local.date() + timedelta(days=1) if start > end and minute >= start else local.date()
        wake = datetime(day.year, day.month, day.day, end // 60, end % 60, tzinfo=self.tz)
        return int(wake.timestamp()) * NS

    # ---- deciding ------------------------------------------------------------------------------------

    def decide(self, triggers: list, now_ns: int, ids: list | None = None) -> list:
        """The decision for each trigger (in the order given). The history, quotas and
        arbitration are updated as the decisions are made; messages of earlier batches that a
        higher priority took over are left in self.superseded for the outbox."""
        triggers = list(triggers)
        if not triggers:
            return []
        ids = ids or [message_id(t.campaign, t.imsi, t.msisdn, t.ts_ns) for t in triggers]
        out = [Decision(i, t) for i, t in zip(ids, triggers)]
        msisdn = pack([t.msisdn for t in triggers])
        listed = self.listed(msisdn, pack([t.imsi for t in triggers])) if self.settings.optout_lists else None
        lo, hi = self.history.find(msisdn)
        keys = msisdn.tolist()
        due = {}                            # (earliest, send windows) -> due time
        # steps 1-5 in trigger order; the rest by priority (the highest wins arbitration), each
        # seeing the contacts the batch's earlier decisions made.
        survivors = []
        for i, d in enumerate(out):
            d.key = keys[i]
            reason = self._first_steps(d, self.campaigns.get(d.trigger.campaign), now_ns,
                                       listed is not None and listed[i])
            if reason:
                d.state, d.reason = (EXPIRED if reason == "window" else SUPPRESSED), reason
            else:
                c = self.campaigns[d.trigger.campaign]
                at = (max(now_ns, d.trigger.after_ns), c.send_window)
                d.due_ns = due.get(at) or due.setdefault(at, self.allowed_at(*at))
                survivors.append(i)
        survivors.sort(key=lambda i: -out[i].priority)
        for i in survivors:
            self._last_steps(out[i], self.campaigns[out[i].trigger.campaign], self.history.of(keys[i], lo[i], hi[i]),
                             now_ns)
        return out

    def approve(self, decisions: list, now_ns: int) -> list:
        """Approved pending messages, checked again from the window on (not sent for approval again)."""
        msisdn = pack([d.trigger.msisdn for d in decisions])
        lo, hi = self.history.find(msisdn)
        for i, d in enumerate(decisions):
            d.key = int(msisdn[i])
            c = self.campaigns.get(d.trigger.campaign)
            if c is None:
                d.state, d.reason = SUPPRESSED, "campaign_inactive"
                continue
            d.due_ns = self.allowed_at(max(now_ns, d.trigger.after_ns), c.send_window)
            if now_ns > d.trigger.deadline_ns:
                d.state, d.reason, d.due_ns = EXPIRED, "window", None
            else:
                self._last_steps(d, c, self.history.of(d.key, lo[i], hi[i]), now_ns, approved=True)
        return decisions

    def _first_steps(self, d: Decision, c, now_ns: int, listed: bool) -> str:
        t = d.trigger
        if c is None or c.status != "active" or c.id in self.paused or not c.valid_at(now_ns):
            return "campaign_inactive"
        if c.holdout and holdout_share(c.id, t.msisdn or t.imsi) < c.holdout:
            d.holdout = 1                   # and on, as if to be sent: _last_steps says holdout
        if not t.msisdn:
            return "no_msisdn"
        try:
            d.text = c.message.render(self.values(t))
        except KeyError:
            return "missing_field"
        d.channel = c.message.channel or self.settings.channel
        d.source = c.message.source or self.settings.channels.get(d.channel, {}).get("source", "")
        if listed or self.opted_out(t.msisdn, c.id):
            return "optout"
        if now_ns > t.deadline_ns:
            return "window"
        return ""

    @staticmethod
    def values(t) -> dict:
        """What a template may name, for one trigger; a field without a value is left out."""
        v = {k: x for k, x in t.fields.items() if x is not None and x != ""}
        v.update((k, x) for k, x in (("msisdn", t.msisdn), ("imsi", t.imsi), ("campaign", t.campaign)) if x)
        return v

    def _last_steps(self, d: Decision, c, contacts: list, now_ns: int, approved: bool = False) -> None:
        """Cooldown, arbitration, caps, quota, quiet hours, approve mode; a winner is recorded.
        A held-out trigger that gets through is `suppressed: holdout`, due when it would have gone
        out, and recorded for its own campaign only (module doc)."""
        t, due = d.trigger, d.due_ns
        own = self.camp_index[c.id]
        if d.holdout:
            own = -1 - own                  # its would-be contacts, seen by its campaign alone
        if any(camp < 0 for _, camp in contacts):
            contacts = [x for x in contacts if x[1] >= 0 or x[1] == own]
        if c.cooldown_s and self._within(contacts, due, c.cooldown_s * NS, own):
            d.state, d.reason, d.due_ns = SUPPRESSED, "cooldown", None
            return
        if d.holdout:
            mine = self.held.get((d.key, c.id))
            if mine is not None and abs(t.ts_ns - mine[0]) <= self.arbitration_ns and mine[1] != d.id:
                d.state, d.reason, d.due_ns = SUPPRESSED, "arbitration", None
                return
        w = self.recent.get(d.key)
        taken = None                        # an earlier winner this one takes over from
        if w is not None and abs(t.ts_ns - w[0]) <= self.arbitration_ns and w[2] != d.id:
            if t.priority <= w[1]:
                d.state, d.reason, d.due_ns = SUPPRESSED, "arbitration", None
                return
            if self.is_queued(w[2]):        # not yet out: it gives way (if this one goes out)
                taken = w
                contacts = [x for x in contacts if x != (w[4], self.camp_index[w[3]])]
            # else: it is out already; this one goes on to the caps
        reason = ""
        if any(self._count(contacts, due, per) >= mx for per, mx in self.caps):
            reason = "frequency_cap"
        elif c.quota and self.quota_used.get((c.id, self.day(due)), 0) >= c.quota:
            reason = "quota"
        if reason:
            d.state, d.reason, d.due_ns = SUPPRESSED, reason, None
            return
        if due > t.deadline_ns:
            d.state, d.reason, d.due_ns = EXPIRED, self.late_reason(c, max(now_ns, t.after_ns), t.deadline_ns), None
            return
        if d.holdout:                       # it would have been sent (or put to an operator) at due
            d.state, d.reason = SUPPRESSED, "holdout"
            self.history.add(d.key, due, own)
            self.held[(d.key, c.id)] = [t.ts_ns, d.id]
            return
        if taken is not None:
            self.superseded.append((taken[2], d.key, taken[4], taken[3]))
            if taken[4] is not None:
                self._take_back(d.key, taken[4], taken[3])
        if c.send == "approve" and not approved:
            d.state, d.due_ns = PENDING, None
            self.recent[d.key] = [t.ts_ns, t.priority, d.id, c.id, None]
            return
        d.state = QUEUED
        self.history.add(d.key, due, own)
        q = (c.id, self.day(due))
        self.quota_used[q] = self.quota_used.get(q, 0) + 1
        self.recent[d.key] = [t.ts_ns, t.priority, d.id, c.id, due]

    def _take_back(self, key: int, due_ns: int, campaign: str) -> None:
        """A queued message that will not go out after all (superseded, expired unsent)."""
        self.history.discard(key, due_ns, self.camp_index.setdefault(campaign, len(self.camp_index)))
        q = (campaign, self.day(due_ns))
        if self.quota_used.get(q):
            self.quota_used[q] -= 1

    def forget(self, msisdn: str, due_ns: int, campaign: str) -> None:
        self._take_back(int(pack([msisdn])[0]), due_ns, campaign)

    def remember(self, msisdn: str, due_ns: int, campaign: str) -> None:
        """A queued message's new due time (deferred, retried)."""
        self.history.add(int(pack([msisdn])[0]), due_ns, self.camp_index.setdefault(campaign, len(self.camp_index)))
        q = (campaign, self.day(due_ns))
        self.quota_used[q] = self.quota_used.get(q, 0) + 1

    @staticmethod
    def _count(contacts: list, due: int, per: int) -> int:
        """Contacts within `per` of due, before or after: with fewer than `max` of them, no
        period of length `per` holding due holds more than `max` once this one is added."""
        return sum(1 for ts, _ in contacts if abs(ts - due) < per)

    @staticmethod
    def _within(contacts: list, due: int, span: int, camp: int) -> bool:
        return any(c == camp and abs(ts - due) < span for ts, c in contacts)
