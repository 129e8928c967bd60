"""The engine's core: records in, triggers out, for one shard.

    engine = Engine(ruleset, lists=ListStore(data_dir))
    for batch in batches:                       # RECORD_DTYPE arrays, in arrival order
        for t in engine.process(batch):         # Trigger
            ...
    engine.finish()                             # the end of a replay: dwell timers due by then

`control._state` walks each batch in Cython, updating the subscribers' rows and writing the
scenario events; the campaigns are then matched against the events a whole batch at a time:
each condition is a numpy mask over the event rows (control.predicates), the audience a sorted-array
lookup in the imported lists (control.lists). Time is the records' time throughout.
"""
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from touchpoint.probe.record import NO_DIGITS, RECORD_DTYPE, Kind, Loc, empty, pack, unpack

from ._state import EVENT_DTYPE, FORWARD_DTYPE, STATE_DTYPE, TIMER_DTYPE, State, segments
from .e212 import mccmnc
from .events import EVENT_FIELDS, Event
from .fields import EVENTS, HANDSET_CAPS, PROFILE_FIELDS, RECORD_FIELDS, SEGMENTS, STATE_FIELDS
from .lists import imei_tac
from .profiles import LAST_MONTH, SERIES, THIS_MONTH, Days, Profiles
from .schedule import spread
from .lists.layout import ListError

# Every condition field by name, to show values in the trigger log (event fields last: they win).
FIELDS = {**RECORD_FIELDS, **STATE_FIELDS, **{k: f for e in EVENTS.values() for k, f in e.fields.items()}}

DAY_S = 86400
NO_PLMN = 0xFFFF
# Record kinds whose location is the subscriber's own serving location (others name an HLR,
# an SMSC or a gateway as their node).
LOCATING = np.zeros(1 << 16, bool)
LOCATING[[Kind.LOCATION_UPDATE, Kind.GPRS_LOCATION_UPDATE, Kind.MO_SMS, Kind.MT_SMS, Kind.SUBSCRIBER_INFO,
          Kind.CALL_ATTEMPT, Kind.PDP_CREATE, Kind.PDP_UPDATE, Kind.SESSION_CREATE, Kind.SESSION_MODIFY]] = True
SESSION_START = np.zeros(1 << 16, bool)
SESSION_START[[Kind.PDP_CREATE, Kind.SESSION_CREATE]] = True
CELL = np.zeros(256, bool)
CELL[[Loc.CGI, Loc.SAI, Loc.ECGI]] = True      # a cell, not only an area code
SNAPSHOT_VERSION = 3
REGION_FIELDS = ("node", "mcc", "mnc", "lac_tac", "loc_type")      # what places.region_of reads
MEMBER_CACHE = 1 << 20                  # subscribers whose list rows are remembered, a list
ABSENT = empty(1)[0]                    # a record field's value when the record does not have it
SCHEDULED = "schedule"                  # the event of a scheduled run's triggers
SENT_NOW = "send"                       # ... and of an operator's `ctl send`


@dataclass
class Trigger:
    """A campaign fired for a subscriber: what the dispatcher acts on."""
    campaign: str
    event: str
    ts_ns: int
    deadline_ns: int
    imsi: str
    msisdn: str
    priority: int
    fields: dict = field(default_factory=dict)      # the conditions' fields and the event's own
    after_ns: int = 0               # not to go out before (a scheduled run's spread)

    def to_json(self) -> dict:
        out = {"campaign": self.campaign, "event": self.event, "ts_ns": self.ts_ns,
               "deadline_ns": self.deadline_ns, "imsi": self.imsi, "msisdn": self.msisdn,
               "priority": self.priority, "fields": self.fields}
        if self.after_ns:
            out["after_ns"] = self.after_ns
        return out


@dataclass
class Fired:
    """One campaign's triggers in a batch, as arrays."""
    campaign: object
    positions: np.ndarray           # of the events in the batch's events: the order of triggers
    ts_ns: np.ndarray
    imsi: np.ndarray                # packed
    msisdn: np.ndarray
    fields: dict                    # name -> raw column
    show: object                    # (name, column) -> display values
    event: str = ""                 # "": the campaign's trigger event
    after_ns: np.ndarray | None = None      # not to go out before (a scheduled run's spread)

    def triggers(self) -> list:
        c = self.campaign
        imsi, msisdn = unpack(self.imsi), unpack(self.msisdn)
        vals = {n: self.show(n, v) for n, v in self.fields.items()}
        window = c.window_s * 1_000_000_000
        event = self.event or c.trigger.event
        after = self.after_ns.tolist() if self.after_ns is not None else [0] * len(self.ts_ns)
        return [Trigger(c.id, event, int(t), int(t) + window, str(imsi[i]), str(msisdn[i]), c.priority,
                        {n: vals[n][i] for n in vals}, after[i]) for i, t in enumerate(self.ts_ns.tolist())]


class Triggers:
    """A batch's triggers in event order (for one event, by campaign priority), made into
    Trigger objects only when iterated: matching stays array work."""

    def __init__(self, parts: list):
        self.parts = parts
        self.n = sum(len(p.positions) for p in parts)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        if not self.n:
            return iter(())
        made = [p.triggers() for p in self.parts]
        part = np.concatenate([np.full(len(p.positions), i) for i, p in enumerate(self.parts)])
        index = np.concatenate([np.arange(len(p.positions)) for p in self.parts])
        order = np.argsort(np.concatenate([p.positions for p in self.parts]), kind="stable")
        return (made[part[k]][index[k]] for k in order)


class Engine:
    def __init__(self, ruleset, lists=None, *, capacity: int = 1 << 16, warn=None, watch=(),
                 days: Days | None = None):
        self.state = State(capacity)
        self.profiles = Profiles(ruleset.policy.tz, days)
        self.query_values = np.zeros((0, 0), np.uint32)   # the last batch's profile values, by event
        self._ev, self._rows = np.zeros(0, EVENT_DTYPE), {}   # the batch being matched, its list rows
        self.watch = {Event.named(e) for e in watch}       # events written for others (control.health)
        self.last_events = np.zeros(0, EVENT_DTYPE)       # the last batch's events
        self.last_services = np.zeros(0, np.int8)         # and its records' data services (-1: none)
        self.goal_hits = []                 # the last batch's goal events: (campaign, ts_ns, imsi, msisdn)
        self.lists = lists
        self.triggers = 0
        self.events = np.zeros(len(Event) + 1, np.int64)     # counted by code
        self.records = 0
        self.missing_lists = set()
        self.contacts = None                # control.contacts: what audiences' `contacted:` read
        self._members = {}                  # list name -> (list, imsi, msisdn, row): _member_rows' cache
        self.warn = warn or (lambda line: None)
        self.load(ruleset)

    # ---- rules ---------------------------------------------------------------------------------

    def load(self, ruleset) -> None:
        """Take a checked rule set (control.rules.load): the campaigns and places. Subscriber
        state is kept."""
        self.places = ruleset.places
        self.campaigns = sorted((c for c in ruleset.campaigns if c.status == "active"),
                                key=lambda c: (-c.priority, c.id))
        self.event_campaigns = [c for c in self.campaigns if c.trigger is not None]
        want = {Event.named(c.trigger.event) for c in self.event_campaigns}
        # goals of every campaign, active or not: the messages it sent are still being measured
        self.goal_campaigns = [c for c in ruleset.campaigns if c.goal is not None and c.goal.event]
        want |= {Event.named(c.goal.event) for c in self.goal_campaigns} | self.watch
        self.state.emit = sum(1 << e for e in want)
        self.state.dwell = np.array(sorted({c.trigger.minutes for c in self.event_campaigns
                                            if c.trigger.event == "area_dwell"}), np.uint16)
        self.state.home = [(int(pack([h])[0]), len(h)) for h in self.places.home]
        self.state.home_networks = [(int(h["mcc"]), int(h["mnc"])) for h in self.places.home_table]
        self.profiles.tz = ruleset.policy.tz
        self.lifecycle, self.lifecycle_lists = ruleset.policy.lifecycle, ruleset.policy.lifecycle_lists
        self.services = {apn.encode(): i for i, apns in enumerate(ruleset.policy.data_services.values())
                         for apn in apns}
        self._profile_columns()

    def _profile_columns(self) -> None:
        """The profile windows the campaigns and goals test, computed at the events they look at."""
        uses = [(c.trigger.event, (c.trigger.where, c.audience.where, c.exclude.where)) for c in self.event_campaigns]
        uses += [(c.goal.event, (c.goal.where,)) for c in self.goal_campaigns]
        # scheduled sends read them now, at no event
        uses += [(None, (c.audience.where, c.exclude.where)) for c in self.campaigns if c.schedule is not None]
        # the lifecycle's windows are always kept: the health counts every subscriber's segment
        lifecycle = {_profile_column(n) for _, where in self.lifecycle for n in where.fields} - {None}
        columns, events = set(lifecycle), set()
        for event, preds in uses:
            names = {n for p in preds if p for n in p.fields}
            mine = {_profile_column(n) for n in names} - {None} | (lifecycle if "lifecycle" in names else set())
            if mine:
                columns |= mine
                if event is not None:
                    events.add(Event.named(event))
        self.profiles.configure(self.state, columns, events)

    # ---- records in, triggers out ------------------------------------------------------------------

    def process(self, records: np.ndarray) -> "Triggers":
        if not len(records):
            self.last_events, self.goal_hits = empty(0), []
            return Triggers([])
        records = np.ascontiguousarray(records)
        self.records += len(records)
        self.last_services = self._services(records)
        ev = self.state.process(records, *self._where(records), self.last_services)
        self.query_values = self.state.query_values
        return self._match(ev, records)

    def finish(self, now_ns: int | None = None) -> "Triggers":
        """Fire the dwell timers due by now_ns (default: the latest record time seen)."""
        ev = self.state.flush(now_ns if now_ns is not None else self.state.clock_ns)
        self.query_values = self.state.query_values
        return self._match(ev, empty(0))

    def _where(self, records: np.ndarray):
        """Each record's region (0: none, -1: the record tells no location of the subscriber's)
        and area (0: none, -1: no cell)."""
        locating = LOCATING[records["kind"]]
        has = locating & ((records["node"] != NO_DIGITS) | (records["mcc"] != NO_PLMN)
                          | (records["loc_type"] != 0))
        region = np.where(has, 0, -1).astype(np.int16)
        if has.any():
            region[has] = self.places.region_of({f: records[f][has] for f in REGION_FIELDS})
        cell = locating & CELL[records["loc_type"]]
        area = np.where(cell, 0, -1).astype(np.int32)
        if cell.any():
            area[cell] = self.places.area_of(records["lac_tac"][cell], records["cell"][cell])
        return region, area

    def _services(self, records: np.ndarray) -> np.ndarray:
        """Each record's data service (policy.yaml's data_services, by the session's APN), -1: none."""
        out = np.full(len(records), -1, np.int8)
        at = np.flatnonzero(SESSION_START[records["kind"]])
        if len(at) and self.services:
            apns, inverse = np.unique(np.char.lower(records["apn"][at]), return_inverse=True)
            out[at] = np.array([self.services.get(a, -1) for a in apns.tolist()], np.int8)[inverse]
        return out

    def _match(self, ev: np.ndarray, records: np.ndarray) -> "Triggers":
        self.last_events, self.goal_hits = ev, []
        if not len(ev):
            return Triggers([])
        np.add.at(self.events, ev["event"], 1)
        self._ev = ev
        self._rows = {}                     # list name -> each event's subscriber's row in it
        self.goal_hits = self._goal_hits(ev, records)
        out = []
        for c in self.event_campaigns:
            t = c.trigger
            sel = np.flatnonzero(ev["event"] == Event.named(t.event))
            if not len(sel):
                continue
            sel = sel[c.valid_at(ev["ts_ns"][sel])]
            if t.event == "area_dwell":
                sel = sel[ev["minutes"][sel] == t.minutes]
            elif t.event == "cf_then_power_on":
                sel = sel[ev["seconds"][sel] <= t.within_s]
            if not len(sel):
                continue
            col = Columns(self, ev, sel, records, c.audience.lists + c.exclude.lists)
            keep = t.where.mask(col, len(sel))
            if t.event == "cf_then_power_on":       # of a power-on's forwardings, the latest set that qualifies
                at = np.flatnonzero(keep)
                keep[at[1:][ev["rec"][sel[at[1:]]] == ev["rec"][sel[at[:-1]]]]] = False
            if not keep.any():
                continue
            if not keep.all():                  # the audience is looked up for these only
                col = col.subset(keep)
            keep = col.admitted(c)
            if keep.any():
                out.append(col.fired(c, keep))
        batch = Triggers(out)
        self.triggers += len(batch)
        return batch

    def _goal_hits(self, ev: np.ndarray, records: np.ndarray) -> list:
        """Each goal's events whose `where` holds, for control.goals: (campaign id, ts_ns, packed
        IMSI, packed MSISDN), the subscriber's identities as the state knows them."""
        out = []
        for c in self.goal_campaigns:
            sel = np.flatnonzero(ev["event"] == Event.named(c.goal.event))
            if not len(sel):
                continue
            col = Columns(self, ev, sel, records)
            keep = c.goal.where.mask(col, len(sel))
            if keep.any():
                out.append((c.id, col._ev("ts_ns")[keep], col("imsi")[keep], col("msisdn")[keep]))
        return out

    def list(self, name: str):
        """An imported list, or None (said once) when it is not there: nobody is in it."""
        if self.lists is None:
            return None
        try:
            return self.lists.get(name)
        except ListError as e:
            if name not in self.missing_lists:
                self.missing_lists.add(name)
                self.warn(f"{e}: nobody is in it")
            return None

    def list_rows(self, name: str, positions: np.ndarray) -> np.ndarray:
        """The row in the list of the subscriber of the batch's events at these positions, by the
        identities the state knows (IMSI first, else MSISDN); each looked up once a batch."""
        rows = self._rows.get(name)
        if rows is None:
            rows = self._rows[name] = np.full(len(self._ev), -2, np.int64)      # -2: not looked up
        todo = positions[rows[positions] == -2]
        if len(todo):
            lst = self.list(name)
            if lst is None:
                rows[todo] = -1
            else:
                rows[todo] = self._member_rows(name, lst, self._ev["sub"][todo])
        return rows[positions]

    def _member_rows(self, name: str, lst, subs: np.ndarray) -> np.ndarray:
        """Rows in the list of these subscribers (state rows): through a direct-mapped cache of
        MEMBER_CACHE entries a list (20 MB, not state: dropped when the list is re-imported), so a
        subscriber seen again soon needs no binary search of a list of millions. An entry holds the
        IMSI and MSISDN it was looked up by: a subscriber whose identity the state learns since (an
        IMSI-only GTP session, then a MAP dialogue with the MSISDN) is looked up again."""
        cached = self._members.get(name)
        if cached is None or cached[0] is not lst:
            cached = self._members[name] = (lst, np.full(MEMBER_CACHE, NO_DIGITS, np.uint64),
                                            np.full(MEMBER_CACHE, NO_DIGITS, np.uint64),
                                            np.full(MEMBER_CACHE, -1, np.int32))
        _, imsi_c, msisdn_c, row = cached
        imsi, msisdn = self.state.rows["imsi"][subs], self.state.rows["msisdn"][subs]
        slot = subs & (MEMBER_CACHE - 1)
        out = row[slot].astype(np.int64)
        miss = np.flatnonzero((imsi_c[slot] != imsi) | (msisdn_c[slot] != msisdn))
        if len(miss):
            out[miss] = lst.rows(msisdn[miss], imsi[miss])
            at = slot[miss]
            imsi_c[at], msisdn_c[at], row[at] = imsi[miss], msisdn[miss], out[miss]
        return out

    def tac_table(self):
        return self.lists.tac() if self.lists is not None else None

    # ---- snapshots ----------------------------------------------------------------------------

    def snapshot(self, path: str, meta: dict | None = None, arrays: dict | None = None) -> None:
        """Write the subscriber state (never a record) to path, atomically, with the caller's own
        meta (JSON) and arrays."""
        st = self.state
        pmeta, parrays = self.profiles.snapshot(st)
        tmp = f"{path}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with open(fd, "wb") as f:
                np.savez(f, rows=st.rows[:st.count], timers=st.pending_timers(), forwards=st.forwards(),
                         **parrays, **(arrays or {}),
                         meta=np.frombuffer(json.dumps({
                             **(meta or {}), **pmeta, "version": SNAPSHOT_VERSION, "clock_ns": st.clock_ns,
                             "subscribers": st.count}).encode(), np.uint8))
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            os.unlink(tmp)                  # half a snapshot takes room and serves nobody
            raise
        os.replace(tmp, path)

    def restore(self, path: str) -> tuple:
        """The state of a snapshot; returns its (meta, other arrays)."""
        with np.load(path) as z:
            meta = json.loads(z["meta"].tobytes())
            rows, version = z["rows"], meta.get("version")
            if version == 1 and "cf_to" in (rows.dtype.names or ()):
                rows, forwards = _from_v1(rows)
            elif version in (2, SNAPSHOT_VERSION) and rows.dtype.names:
                rows, forwards = _by_name(rows), z["forwards"]      # 2: before the data services' days
            else:
                raise ValueError(f"{path}: a snapshot of version {version}, which this touchpoint does not "
                                 f"read (it reads {SNAPSHOT_VERSION}, 2 and 1)")
            self.state.restore(rows, z["timers"].astype(TIMER_DTYPE), meta["clock_ns"], forwards)
            mine = ("rows", "timers", "forwards", "meta", "profile_today", "profile_sums", "profile_facts")
            self.profiles.restore(self.state, meta, {k: z[k] for k in mine[4:] if k in z.files})
            self._profile_columns()
            return meta, {k: z[k] for k in z.files if k not in mine}

    def memory(self) -> dict:
        """What the state holds, in bytes allocated: rows, their index, today's profile counts
        and the windows' sums, and the call forwardings (a dict entry each, about 150 bytes)."""
        st = self.state
        parts = {"rows": st.rows.nbytes, "index": st.index_bytes, "profiles": st.today.nbytes + st.sums.nbytes,
                 "forwardings": 150 * st.nforwards}
        allocated = sum(parts.values())
        return {"subscribers": st.count, "row_bytes": STATE_DTYPE.itemsize, "allocated_bytes": allocated,
                "bytes_per_subscriber": allocated / max(st.count, 1), "parts": parts}

    def audience(self, campaign) -> list:
        """How many of the subscribers the state knows are in the campaign's audience now, step
        by step: [(what, how many are left)]: known, in its lists, each of its conditions, not
        excluded (the trigger's own conditions are the event's, and not counted)."""
        preds = [p for p in (campaign.audience.where, campaign.exclude.where) if p is not None]
        kept = {_profile_column(f) for p in preds for f in p.fields} - {None} - set(self.profiles.columns)
        if kept:
            raise LookupError(f"{campaign.id} tests profile windows the engine keeps for active campaigns only")
        n = self.state.count
        a, x = campaign.audience, campaign.exclude
        with self._now(np.arange(n), a.lists + x.lists) as col:
            m = np.ones(n, bool)
            steps = [("subscribers known", n)]
            if a.lists:
                m &= col.in_lists(a.lists)
                steps.append((f"in {' or '.join(a.lists)}", int(m.sum())))
            for part in _parts(a.where):
                m &= col.holds(part)
                steps.append((str(part), int(m.sum())))
            for h in a.contacted:
                m &= col.contacted(h)
                steps.append((str(h), int(m.sum())))
            if x.lists:
                m &= ~col.in_lists(x.lists)
                steps.append((f"not in {' or '.join(x.lists)}", int(m.sum())))
            if x.where is not None:
                m &= ~col.holds(x.where)
                steps.append((f"not ({x.where})", int(m.sum())))
            for h in x.contacted:
                m &= ~col.contacted(h)
                steps.append((f"not {h}", int(m.sum())))
        return steps

    def scheduled(self, c, run_ns: int, limit: int | None = None, event: str = SCHEDULED) -> "Triggers":
        """A run of campaign c at run_ns (its schedule's, or an operator's `ctl send`): a trigger
        for each subscriber the state knows, with an MSISDN, in the campaign's audience now (at
        most `limit`), with the run's time, each not to go out before its share of the schedule's
        spread (control.schedule.spread)."""
        n = self.state.count
        if not n:
            return Triggers([])
        with self._now(np.arange(n), c.audience.lists + c.exclude.lists) as col:
            col = col.subset(self.state.rows["msisdn"][:n] != NO_DIGITS)
            keep = col.admitted(c)
            if limit is not None:
                keep[np.flatnonzero(keep)[limit:]] = False
            if not keep.any():
                return Triggers([])
            fired = col.fired(c, keep)
        fired.ts_ns = np.full(len(fired.ts_ns), run_ns, np.int64)
        fired.event = event
        fired.after_ns = spread(run_ns, c.schedule.spread_s if c.schedule else 0, fired.msisdn)
        return Triggers([fired])

    @contextmanager
    def _now(self, subs: np.ndarray, lists=()):
        """Columns of these subscribers (state rows) as they are now: one event each, of no record."""
        st = self.state
        ev = np.zeros(len(subs), EVENT_DTYPE)
        ev["sub"], ev["rec"], ev["event"], ev["ts_ns"] = subs, -1, Event.RECORD, st.clock_ns
        ev["segment"] = segments(st.rows[:st.count] if len(subs) == st.count else st.rows[subs], st.clock_ns)
        saved = self._ev, self._rows, self.query_values
        self._ev, self._rows, self.query_values = ev, {}, st.query_now()[subs]
        try:
            yield Columns(self, ev, np.arange(len(subs)), empty(0), lists)
        finally:
            self._ev, self._rows, self.query_values = saved

    def subscriber(self, msisdn: str) -> dict | None:
        """What the state knows of one subscriber now: identities, where, handset, and its
        profile (today, the last 7 and 30 days; its areas today). None: not known."""
        st = self.state
        row = st.find(msisdn=int(pack([msisdn])[0]))
        if row < 0:
            return None
        r = st.rows[row]
        names = {a.index: a.name for a in self.places.areas}
        regions = {x.index: x.name for x in self.places.regions}
        counts = {}
        for name, f in PROFILE_FIELDS.items():
            if f.series in SERIES:
                today = int(st.today[row, SERIES.index(f.series)])
                week, month = (today + self.profiles.history_of((f.series, n, 0), row) for n in (7, 30))
                counts[name] = [v / f.scale if f.scale != 1 else v for v in (today, week, month)]
        used = r["svc"][r["svc"] != 0].astype(np.int64)
        counts["data_services"] = [int((st.day_no - used < n).sum()) for n in (1, 7, 30)]
        facts = st.area_facts
        mine = facts[facts["sub"] == row]
        areas = {names.get(int(a), str(a)): {s: int(mine["value"][(mine["area"] == a) & (mine["series"] == i)].sum())
                                             for i, s in enumerate(("present", "visits", "minutes"))}
                 for a in sorted(set(mine["area"].tolist()))}
        with self._now(np.array([row]), self.lifecycle_lists) as col:
            now = {f: col(f)[0] for f in ("in_region", "in_region_for", "roaming", "handset_age", "segment",
                                          "lifecycle")}
        seconds = {f: None if np.isnan(now[f]) else int(now[f]) for f in ("in_region_for", "handset_age")}
        ids = {k: str(unpack(np.array([r[k]]))[0]) for k in ("imsi", "msisdn", "imei")}
        return {**ids, "region": regions.get(int(now["in_region"]), ""), "in_region_for_s": seconds["in_region_for"],
                "area": names.get(int(r["area"]), ""), "roaming": bool(now["roaming"]),
                "handset_age_s": seconds["handset_age"],
                "segment": {v: k for k, v in SEGMENTS.items()}[int(now["segment"])],
                "lifecycle": self.lifecycle_names()[int(now["lifecycle"]) - 1] if now["lifecycle"] else "",
                "profile": counts, "areas_today": areas}

    def lifecycle_names(self) -> tuple:
        return tuple(name for name, _ in self.lifecycle)

    def lifecycle_now(self) -> np.ndarray:
        """Every known subscriber's lifecycle segment now: 1-based in lifecycle_names(), 0 none."""
        with self._now(np.arange(self.state.count), self.lifecycle_lists) as col:
            return col("lifecycle").astype(np.uint8)

    def event_counts(self) -> dict:
        return {e.label: int(self.events[e]) for e in Event}


WHILE_SERIES = {"roaming": "roaming_call_ms"}      # call_minutes `while: roaming`


def _parts(where) -> tuple:
    """A where-block's conditions, one by one."""
    if where is None:
        return ()
    return getattr(where, "parts", None) or (where,)


def _profile_column(name: str):
    """A profile condition's column name (control.conditions: `sms_mo/30d`, `sms_mo/last-month`,
    `area_days/30d@2`) as control.profiles has it, (series, days, area); None for another field."""
    metric, _, window = name.partition("/")
    metric, _, condition = metric.partition(":")
    if metric not in PROFILE_FIELDS or not window:
        return None
    days, _, area = window.partition("@")
    n = {"this-month": THIS_MONTH, "last-month": LAST_MONTH}.get(days) or int(days[:-1])
    return WHILE_SERIES[condition] if condition else PROFILE_FIELDS[metric].series, n, int(area or 0)


def _by_name(old: np.ndarray) -> np.ndarray:
    """Rows of an older layout as STATE_DTYPE: the fields both have, the others zero."""
    if old.dtype == STATE_DTYPE:
        return old
    rows = np.zeros(len(old), STATE_DTYPE)
    for name in set(STATE_DTYPE.names) & set(old.dtype.names):
        rows[name] = old[name]
    return rows


def _from_v1(old: np.ndarray) -> tuple:
    """A version 1 snapshot's rows and forwardings: it kept one set time and number for all of
    a subscriber's forwardings, which each active code now takes as its own."""
    rows = _by_name(old)
    sub, bit = np.nonzero((old["cf"][:, None] >> np.arange(4)) & 1)
    forwards = np.zeros(len(sub), FORWARD_DTYPE)
    forwards["sub"], forwards["bit"] = sub, bit
    forwards["at"], forwards["to"] = old["cf_at"][sub], old["cf_to"][sub]
    return rows, forwards


class Columns:
    """The columns conditions read, for the events a campaign is looking at: gathered lazily,
    one field at a time, from the events, their records and the subscribers' rows."""

    def __init__(self, engine: Engine, ev: np.ndarray, sel: np.ndarray, records: np.ndarray, lists=()):
        self.engine = engine
        self.lists = tuple(lists)           # the audience's lists: where list columns come from
        self.sel = sel                      # the events' positions in the batch's events
        self._all_ev = ev
        self.n = len(sel)
        self.rec = ev["rec"][sel]
        self.sub = ev["sub"][sel]
        self._records = records
        self._cache = {}
        self._present = {}                  # list column -> who has it

    def _rec(self, name: str) -> np.ndarray:
        """A record field; timer events (area_dwell) have no record: absent values."""
        if not len(self._records):
            return np.full(self.n, ABSENT[name])
        v = self._records[name][np.maximum(self.rec, 0)]
        gone = self.rec < 0
        if gone.any():
            v[gone] = ABSENT[name]
        return v

    def _row(self, name: str) -> np.ndarray:
        return self.engine.state.rows[name][self.sub]

    def __len__(self) -> int:
        return self.n

    def _ev(self, name: str) -> np.ndarray:
        return self._all_ev[name][self.sel]

    def __call__(self, name: str) -> np.ndarray:
        if name not in self._cache:
            self._cache[name] = self._column(name)
        return self._cache[name]

    def _column(self, name: str) -> np.ndarray:
        code = Event(int(self._all_ev["event"][self.sel[0]])) if self.n else Event.RECORD
        own = EVENT_FIELDS.get(code, {})
        if name in own:
            v = self._ev(own[name])
            if name in ("tac", "old_tac"):
                return pack(np.char.zfill(v.astype("U8"), 8))
            if name in ("new_handset", "first"):
                return v.astype(bool)
            if name == "code":
                return unpack(v)
            return v
        column = _profile_column(name)
        if column is not None:                      # at the event: today so far and the days before
            f = PROFILE_FIELDS[name.partition("/")[0].partition(":")[0]]
            v = self.engine.query_values[self.sel, self.engine.profiles.columns[column]]
            return v / f.scale if f.scale != 1 else v.astype(np.int64)
        if name == "mccmnc":
            return pack(mccmnc(unpack(self._row("imsi"))))
        if name in ("imsi", "msisdn", "imei"):         # the subscriber's, also for timer events
            known = self._row(name)
            return np.where(known != NO_DIGITS, known, self._rec(name))
        if name in RECORD_DTYPE.names:
            return self._rec(name)
        if name == "roaming":
            return self._roaming()
        if name == "visitor":
            return self._visitor()
        if name == "segment":           # at the event, not at the end of the batch
            return self._ev("segment").astype(np.int64)
        if name == "lifecycle":
            return self._lifecycle()
        if name == "used_data":
            return (self._row("data_days") != 0) | (self._row("svc") != 0).any(axis=1)
        if name in ("handset_age", "in_region_for"):   # seconds at the event; unknown (NaN) fails every test
            since = self._row("imei_since" if name == "handset_age" else "region_since").astype(np.float64)
            known = self._row("imei") != NO_DIGITS if name == "handset_age" else self._row("region") > 0
            return np.where(known, np.maximum(self._ev("ts_ns") / 1e9 - since, 0), np.nan)
        if name == "in_region":
            return self._row("region").astype(np.int64)
        if name.startswith("handset") or name == "previous_handset_brand":
            return self._handset(name)
        return self._list_column(name)

    # state and audience columns

    def _lifecycle(self) -> np.ndarray:
        """The first of the policy's lifecycle segments that holds (1-based; 0: none), its list
        columns from the policy's lifecycle_lists."""
        col = Columns(self.engine, self._all_ev, self.sel, self._records, self.engine.lifecycle_lists)
        out, left = np.zeros(self.n, np.int64), np.ones(self.n, bool)
        for i, (_, where) in enumerate(self.engine.lifecycle, 1):
            if not left.any():
                break
            m = left & col.holds(where)
            out[m], left = i, left & ~m
        return out

    def _roaming(self) -> np.ndarray:
        mcc, mnc = self._row("mcc"), self._row("mnc")
        at_home = np.zeros(len(mcc), bool)
        for h in self.engine.places.home_table:
            at_home |= (mcc == h["mcc"]) & (mnc == h["mnc"])
        return (mcc != NO_PLMN) & ~at_home

    def _visitor(self) -> np.ndarray:
        """An IMSI of another operator's (served by a home network, `roaming` is false for it)."""
        imsi = unpack(self._row("imsi")).astype("U15")
        own = np.zeros(len(imsi), bool)
        for h in self.engine.places.home:
            own |= np.char.startswith(imsi, h)
        return (imsi != "") & ~own if self.engine.places.home else own

    def _handset(self, name: str) -> np.ndarray:
        """From the TAC table: brand, model, or the capabilities as control.fields.HANDSET_CAPS
        bits (the table names its own)."""
        table = self.engine.tac_table()
        n = self.n
        if table is None:
            return np.zeros(n, np.int64) if name == "handset" else np.full(n, "", object)
        if name == "previous_handset_brand":
            return table.lookup(self._row("prev_tac").astype(np.uint32))[0]
        brand, model, caps = table.lookup(imei_tac(self._row("imei")))
        if name != "handset":
            return brand if name == "handset_brand" else model
        out = np.zeros(n, np.int64)
        for i, cap in enumerate(table.capabilities):
            if cap in HANDSET_CAPS:
                out |= ((caps.astype(np.int64) >> i) & 1) * HANDSET_CAPS[cap]
        return out

    def _list_column(self, name: str) -> np.ndarray:
        """A column of the audience's lists: from the first list that has it and the subscriber.
        Text comes as str, bool as bool; who has a value is kept for audience()."""
        n = self.n
        value, present = None, np.zeros(n, bool)
        for lname in self.lists:
            lst = self.engine.list(lname)
            if lst is None or name not in lst.columns:
                continue
            rows = self.list_rows(lname)
            col = lst.columns[name]
            if col.type == "text":
                v = col.strings(rows)
            elif col.type == "bool":
                v = col[rows] == 1
            else:
                v = col[rows]
            take = col.present(rows) & ~present
            value = v if value is None else np.where(take, v, value)
            present |= take
        self._present[name] = present
        if value is None:               # not imported (yet): nobody has the attribute
            value = np.zeros(n, np.int64)
        return value

    def list_rows(self, name: str) -> np.ndarray:
        """Each subscriber's row in the list (-1: not in it)."""
        return self.engine.list_rows(name, self.sel)

    def subset(self, keep: np.ndarray) -> "Columns":
        """The same columns for fewer events (what is gathered already is kept)."""
        sub = Columns(self.engine, self._all_ev, self.sel[keep], self._records, self.lists)
        sub._cache = {k: v[keep] for k, v in self._cache.items()}
        sub._present = {k: v[keep] for k, v in self._present.items()}
        return sub

    def in_lists(self, names) -> np.ndarray:
        m = np.zeros(self.n, bool)
        for name in names:
            m |= self.list_rows(name) >= 0
        return m

    def holds(self, where) -> np.ndarray:
        """Where the conditions hold; a subscriber without a list attribute fails every test on
        it (`{not: x}` included: an unknown age is not "not 18")."""
        m = where.mask(self, self.n)
        for f in where.fields:
            if f in self._present:
                m &= self._present[f]
        return m

    def admitted(self, c) -> np.ndarray:
        """In the campaign's audience (in one of its lists, if it names any, and its conditions
        hold) and not excluded (in one of the exclusion's lists, or its conditions hold)."""
        m = self.in_lists(c.audience.lists) if c.audience.lists else np.ones(self.n, bool)
        if c.audience.where is not None:
            m &= self.holds(c.audience.where)
        for h in c.audience.contacted:
            m &= self.contacted(h)
        if c.exclude.lists:
            m &= ~self.in_lists(c.exclude.lists)
        if c.exclude.where is not None:
            m &= ~self.holds(c.exclude.where)
        for h in c.exclude.contacted:
            m &= ~self.contacted(h)
        return m

    def contacted(self, h) -> np.ndarray:
        """Whom the contact history `h` (campaigns.Contacted) holds for, at the latest event's time."""
        history = self.engine.contacts
        if history is None or not self.n:
            return np.zeros(self.n, bool)
        return history.holds(h, self("msisdn"), int(self._ev("ts_ns").max()))

    # out

    def fired(self, c, keep: np.ndarray) -> "Fired":
        """What the campaign fired for (kept raw: Trigger objects are made only when read)."""
        names = c.field_names()
        return Fired(c, self.sel[keep], self._ev("ts_ns")[keep], self("imsi")[keep], self("msisdn")[keep],
                     {n: self(n)[keep] for n in names}, self._show)

    def _show(self, name: str, v: np.ndarray) -> list:
        """Values as the trigger log shows them: digits as strings, names for enumerations."""
        f = FIELDS.get(name)
        if f is not None and f.type == "digits":
            return unpack(v, f.width).tolist()          # absent: all filler, ''

        if f is not None and f.type == "enum":
            if f.places == "lifecycle":
                names = dict(enumerate(self.engine.lifecycle_names(), 1))
            elif f.places:
                table = self.engine.places.regions if f.places == "regions" else self.engine.places.areas
                names = {p.index: p.name for p in table}
            else:
                names = {value: key for key, value in f.names.items()}
            return [names.get(int(x), int(x) or "") for x in v]
        if v.dtype.kind == "S":
            return [x.decode(errors="replace") for x in v]
        return v.tolist()
