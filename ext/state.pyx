# cython: language_level=3
"""Subscriber state and scenario events: the engine's per-record loop (control._state).

One fixed-size row per subscriber in a numpy structured array (STATE_DTYPE mirrors `Sub`), found
through an open-addressing index over IMSI and MSISDN that holds row numbers only (the keys are
read back from the rows). `State.process(records, region, area)` walks a batch in order, updates
each subscriber's row and writes the scenario events it finds into an event array; what an event
means is defined in rules/README.md. Time is always the records' time: the engine's clock is the
latest record time seen, and dwell timers fire against it, so a replay gives what live traffic gave.
"""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memset

from core cimport *

cnp.import_array()

DEF NO_PLMN = 0xFFFF
DEF DAY = 86400
DEF SERVICES = 4             # data services the state tells apart (Sub.svc)

# record kinds and flags: tp_kind, tp_flag (ext/record.h, through core.pxd)
cdef enum:
    F_FAILED = TP_F_ERROR | TP_F_ABORT | TP_F_TIMEOUT      # nothing happened to the subscriber

# scenario events (control.events.Event mirrors these)
DEF E_IMEI_CHANGE = 1
DEF E_ROAMING_IN = 2
DEF E_ROAMING_OUT = 3
DEF E_INBOUND_ROAMER = 4
DEF E_AREA_ENTER = 5
DEF E_AREA_DWELL = 6
DEF E_POWER_OFF = 7
DEF E_POWER_ON = 8
DEF E_CF_THEN_POWER_ON = 9
DEF E_HOTLINE_CALL = 10
DEF E_SMS_MO = 11
DEF E_SMS_MT = 12
DEF E_MMS_MT = 13
DEF E_USSD = 14
DEF E_DATA_SESSION_START = 15
DEF E_RAT_CHANGE = 16
DEF E_RECORD = 17

# profile series: today's count of each, a subscriber (State.today; control/profiles.py names them)
DEF P_SMS_MO = 0
DEF P_SMS_MT = 1
DEF P_MMS_MT = 2
DEF P_CALLS_MO = 3           # call attempts made
DEF P_CALLS_MT = 4           # ... and received
DEF P_ANSWERED_MO = 5
DEF P_ANSWERED_MT = 6
DEF P_CALL_MS = 7            # talk time of the calls whose end was seen, answer to end
DEF P_SESSIONS = 8
DEF P_DATA_KIB = 9
DEF P_ACTIVE = 10            # 1: any record today
DEF P_ROAMING_CALL_MS = 11   # talk time of those calls answered while roaming (served by another network)
DEF SERIES = 12
# ... and of each named area, as facts of the day (State.area_facts): present (1 a day, a
# record placed it there), a visit (an entry), minutes (a visit's, when it ends)
DEF A_DAYS = 0
DEF A_VISITS = 1
DEF A_MINUTES = 2
DEF AREA_QUERY = 100                  # q_series of an area query: AREA_QUERY + A_*
DEF SERVICE_QUERY = 200               # q_series of the data services used in the last q_window days
cdef uint64_t MAX_U32 = 0xFFFFFFFF     # a count saturates there

# Sub.flags
DEF S_OFF = 0x01           # powered off (purged, or its last session deleted)
DEF S_LOCATED = 0x02       # in a region
DEF S_CELL = 0x04          # a cell has been seen (area is meaningful)
DEF S_CS = 0x08            # attached in the circuit-switched domain (a location update since the last purge)
DEF S_SEEN_2G = 0x10       # radio generations seen (first time on a RAT)
DEF CF_MASK = 0x0F         # Sub.cf: cfu, cfb, cfnry, cfnrc active (State.fwd: when, to whom); the high nibble counts open sessions


cdef extern from "state.h":
    ctypedef struct tp_sub:
        uint64_t imsi, msisdn, imei, node
        uint32_t lac_tac, cell, last_seen, area_since, off_at, data_days
        uint32_t imei_since, prev_tac, region_since
        uint32_t call_at, call_peer, end_at, end_peer
        uint16_t mcc, mnc, area, data_day, area_day
        uint16_t svc[4]
        uint8_t rat, region, flags, cf
    ctypedef struct tp_event:
        int64_t ts_ns
        int32_t rec, sub
        uint8_t event, flag, region, other_region
        uint16_t area, minutes
        uint32_t tac, old_tac, seconds
        uint8_t rat, from_rat, ss_code, segment
        uint64_t number
    ctypedef struct tp_timer:
        int64_t ts_ns
        uint32_t sub, since
        uint16_t area, minutes
    ctypedef struct tp_fact:
        uint32_t sub, value
        uint16_t area
        uint8_t series, pad


STATE_DTYPE = np.dtype([
    ("imsi", "<u8"), ("msisdn", "<u8"), ("imei", "<u8"), ("node", "<u8"),
    ("lac_tac", "<u4"), ("cell", "<u4"), ("last_seen", "<u4"), ("area_since", "<u4"), ("off_at", "<u4"),
    ("data_days", "<u4"),
    ("imei_since", "<u4"), ("prev_tac", "<u4"), ("region_since", "<u4"),
    ("call_at", "<u4"), ("call_peer", "<u4"), ("end_at", "<u4"), ("end_peer", "<u4"),
    ("mcc", "<u2"), ("mnc", "<u2"), ("area", "<u2"), ("data_day", "<u2"), ("area_day", "<u2"),
    ("svc", "<u2", (SERVICES,)),
    ("rat", "u1"), ("region", "u1"), ("flags", "u1"), ("cf", "u1"),
])
EVENT_DTYPE = np.dtype([
    ("ts_ns", "<i8"), ("rec", "<i4"), ("sub", "<i4"),
    ("event", "u1"), ("flag", "u1"), ("region", "u1"), ("other_region", "u1"),
    ("area", "<u2"), ("minutes", "<u2"),
    ("tac", "<u4"), ("old_tac", "<u4"), ("seconds", "<u4"),
    ("rat", "u1"), ("from_rat", "u1"), ("ss_code", "u1"), ("segment", "u1"),
    ("number", "<u8"),
])
# a registered call forwarding (few subscribers have one, so they live beside the rows): the
# subscriber's row, the code's bit in Sub.cf, when it was last set (activated) and the number
FORWARD_DTYPE = np.dtype([("sub", "<u4"), ("bit", "u1"), ("at", "<u4"), ("to", "<u8")])
TIMER_DTYPE = np.dtype([("ts_ns", "<i8"), ("sub", "<u4"), ("since", "<u4"), ("area", "<u2"), ("minutes", "<u2")])
FACT_DTYPE = np.dtype([("sub", "<u4"), ("value", "<u4"), ("area", "<u2"), ("series", "u1"), ("pad", "u1")])
SUB_SIZE = sizeof(tp_sub)
EVENT_SIZE = sizeof(tp_event)
assert STATE_DTYPE.itemsize == SUB_SIZE and EVENT_DTYPE.itemsize == EVENT_SIZE
assert TIMER_DTYPE.itemsize == sizeof(tp_timer) and FACT_DTYPE.itemsize == sizeof(tp_fact)


cdef extern from *:
    void __builtin_prefetch(const void *p) noexcept nogil
    int __builtin_popcount(unsigned int x) noexcept nogil

cdef extern from *:
    """
    #define TP_IMSI_SALT TP_GOLDEN
    """
    const uint64_t IMSI_SALT "TP_IMSI_SALT"     # IMSI and MSISDN keys hash apart

cdef uint8_t[4] CF_CODES = [0x21, 0x29, 0x2a, 0x2b]


DEF CALL_TWIN = 5             # seconds: a call's CAP and ISUP records as far apart as this are one call


cdef inline bint _twin(uint32_t at, uint32_t peer_then, uint32_t t, uint32_t peer) noexcept nogil:
    """The same call as the one at `at`, seen on another protocol."""
    return at != 0 and peer == peer_then and (t - at if t >= at else at - t) <= CALL_TWIN


cdef inline uint8_t segment_of(const tp_sub *s, int64_t ts_ns) noexcept nogil:
    """The subscriber's data segment at this moment (rules/README.md): silent 1 (no data in the
    last 30 days), trial 2 (data in the last 7 days, none in the 23 before), active 3, loyal 4
    (data on at least 20 of the last 30 days). Bit 0 of data_days is the day data_day."""
    cdef int64_t age = ts_ns // 1000000000 // DAY - <int64_t>s.data_day
    cdef uint32_t days = 0
    cdef int n
    if 0 <= age < 32:
        days = s.data_days << age
    elif age < 0:                   # a record older than the last data day: as of that day
        days = s.data_days
    n = __builtin_popcount(days & 0x3FFFFFFF)
    if n == 0:
        return 1
    if days & 0x7F and not days & (0x3FFFFFFF ^ 0x7F):
        return 2
    return 4 if n >= 20 else 3


cdef inline int rat_generation(uint8_t rat) noexcept nogil:
    """GTP RAT type to 0 (2G), 1 (3G), 2 (4G), 3 (5G), -1 (other)."""
    if rat == 2 or rat == 4:
        return 0
    if rat == 1 or rat == 5:
        return 1
    if rat == 6 or rat == 8 or rat == 9:
        return 2
    if rat == 10:
        return 3
    return -1


cdef inline uint8_t cf_bits(uint8_t ss) noexcept nogil:
    if ss == 0x21:
        return 1
    if ss == 0x29:
        return 2
    if ss == 0x2a:
        return 4
    if ss == 0x2b:
        return 8
    if ss == 0x20:          # all call forwarding
        return 15
    if ss == 0x28:          # all conditional call forwarding
        return 14
    return 0


def segments(rows, int64_t ts_ns):
    """segment_of for each row of a STATE_DTYPE array, at ts_ns (1 silent .. 4 loyal)."""
    assert rows.dtype == STATE_DTYPE and rows.flags.c_contiguous
    cdef Py_ssize_t i, n = len(rows)
    out = np.empty(n, np.uint8)
    cdef uint8_t[:] o = out
    cdef const tp_sub *r = <const tp_sub *>cnp.PyArray_DATA(rows) if n else NULL
    for i in range(n):
        o[i] = segment_of(&r[i], ts_ns)
    return out


cdef class State:
    """Every subscriber of one engine shard.

    rows: the STATE_DTYPE array (its first `count` rows are subscribers); the index is rebuilt from
    it on load. dwell: the minute thresholds of area_dwell the active campaigns ask for."""
    cdef public object rows
    cdef tp_sub *subs
    cdef public uint32_t count
    cdef object _slots
    cdef uint32_t *slots        # row + 1, 0 empty
    cdef uint64_t mask
    cdef uint32_t used
    cdef public int64_t clock_ns
    cdef public object dwell          # uint16 array of minute thresholds
    cdef uint16_t home_mcc[16]        # home networks as the records' mcc and mnc say them (packed digits)
    cdef uint16_t home_mnc[16]
    cdef int nplmn
    cdef uint64_t home_mask[16]       # home MCC+MNC prefixes of IMSIs: mask and packed value
    cdef uint64_t home_value[16]
    cdef uint8_t home_len[16]
    cdef int nhome
    cdef uint32_t cap                 # rows allocated
    cdef public uint32_t emit         # bit per event code: which events the campaigns want
    cdef dict fwd                     # Sub row * 4 + code bit -> (set at, forwarded-to number)
    cdef object _timers
    cdef tp_timer *timers
    cdef public uint32_t ntimers
    cdef object _events
    cdef tp_event *ev
    cdef uint32_t nev, evcap, timercap
    # profiles (control/profiles.py): today's series and area facts, the windows' sums of the days
    # before, and the queries whose values events carry: a query is a series (of an area, or not),
    # a window's sum (-1: none, today only) and whether today's count is in it
    cdef public object today          # (rows, SERIES) uint32
    cdef uint32_t *td
    cdef public object sums           # (rows, windows) uint32
    cdef uint32_t *sm
    cdef public int nwin
    cdef public int64_t day_end_ns    # the current day's end; the first record after it calls on_day
    cdef public object on_day         # on_day(state, ts_ns): archive the day, move the windows on
    cdef int nq
    cdef int q_series[64]
    cdef int q_window[64]
    cdef uint16_t q_area[64]
    cdef bint q_today[64]             # today's counts are in the value (not in "last month")
    cdef public int day_no            # today, days since 1970-01-01 in the policy's time zone
    cdef public object atoday         # (rows, queries) uint32: today's value of each area query
    cdef uint32_t *atd
    cdef object _facts
    cdef tp_fact *facts
    cdef public uint32_t nfacts
    cdef uint32_t factcap
    cdef public uint32_t q_events     # bit per event code whose events carry the query values
    cdef object _qv
    cdef uint32_t *qv

    def __init__(self, capacity=1024):
        self._set_rows(np.zeros(max(int(capacity), 16), STATE_DTYPE))
        self.count = 0
        self.clock_ns = 0
        self.dwell = np.zeros(0, np.uint16)
        self.nhome = 0
        self.nplmn = 0
        self.emit = 0xFFFFFFFF
        self._set_timers(np.zeros(64, TIMER_DTYPE))
        self.ntimers = 0
        self.fwd = {}
        self.nwin = 0
        self.nq = 0
        self.q_events = 0
        self.day_end_ns = 0
        self.day_no = 0
        self.on_day = None
        self._set_facts(np.zeros(1024, FACT_DTYPE), 0)
        self._profile_arrays(np.zeros((self.cap, SERIES), np.uint32), np.zeros((self.cap, 0), np.uint32),
                             np.zeros((self.cap, 0), np.uint32))
        self._index(self.cap)

    cdef void _set_rows(self, a):
        self.rows = a
        self.subs = <tp_sub *>cnp.PyArray_DATA(a)
        self.cap = a.shape[0]
        if self.today is not None and self.today.shape[0] != self.cap:
            self._profile_arrays(_grown(self.today, self.cap), _grown(self.sums, self.cap),
                                 _grown(self.atoday, self.cap))

    def _profile_arrays(self, today, sums, atoday):
        assert today.dtype == sums.dtype == atoday.dtype == np.uint32 and today.shape[1] == SERIES
        self.today = np.ascontiguousarray(today)
        self.sums = np.ascontiguousarray(sums)
        self.atoday = np.ascontiguousarray(atoday)
        self.td = <uint32_t *>cnp.PyArray_DATA(self.today)
        self.sm = <uint32_t *>cnp.PyArray_DATA(self.sums)
        self.atd = <uint32_t *>cnp.PyArray_DATA(self.atoday)
        self.nwin = self.sums.shape[1]

    cdef void _set_facts(self, a, uint32_t n):
        self._facts = a
        self.facts = <tp_fact *>cnp.PyArray_DATA(a)
        self.factcap = a.shape[0]
        self.nfacts = n

    @property
    def area_facts(self):
        """Today's facts about subscribers in named areas (FACT_DTYPE), in order."""
        return self._facts[:self.nfacts]

    @area_facts.setter
    def area_facts(self, a):
        self._set_facts(np.concatenate([np.asarray(a, FACT_DTYPE), np.zeros(1024, FACT_DTYPE)]), len(a))

    def profile(self, today, sums, queries, events, atoday=None):
        """Set the profile arrays (rows as the state's) and the queries: [(series, window
        index or -1, area, with today)] (an area's series are AREA_QUERY + A_*; area 0 for the
        others), carried by the events whose codes are in `events`; atoday: the area queries' today."""
        assert len(queries) <= 64
        if atoday is None:
            atoday = np.zeros((self.cap, len(queries)), np.uint32)
        self._profile_arrays(_grown(today, self.cap), _grown(sums, self.cap), _grown(atoday, self.cap))
        self.nq = len(queries)
        for j, (s, w, a, with_today) in enumerate(queries):
            assert (0 <= s < SERIES and not a) or (AREA_QUERY <= s < AREA_QUERY + 3 and a) or s == SERVICE_QUERY
            assert -1 <= w < self.nwin or (s == SERVICE_QUERY and w > 0)
            self.q_series[j], self.q_window[j], self.q_area[j], self.q_today[j] = s, w, a, with_today
        self.q_events = 0
        for code in events:
            self.q_events |= <uint32_t>1 << code

    def query_now(self):
        """The queries' values for every subscriber now (subscribers x queries)."""
        out = np.zeros((self.count, self.nq), np.uint32)
        cdef uint32_t *keep = self.qv
        cdef uint32_t i
        if self.count and self.nq:
            self.qv = <uint32_t *>cnp.PyArray_DATA(out)
            for i in range(self.count):
                self._query(i, i)
            self.qv = keep
        return out

    @property
    def query_values(self):
        """The queries' values at each event of the last process() or flush() (events x queries)."""
        return self._qv[:self.nev]

    @property
    def home_networks(self):
        return [(self.home_mcc[i], self.home_mnc[i]) for i in range(self.nplmn)]

    @home_networks.setter
    def home_networks(self, pairs):
        """(mcc, mnc) of the home networks, packed as the records' (probe.record.pack, 4 digits)."""
        cdef int i = 0
        for mcc, mnc in list(pairs)[:16]:
            self.home_mcc[i], self.home_mnc[i] = mcc, mnc
            i += 1
        self.nplmn = i

    cdef bint _roaming(self, const tp_sub *s) noexcept nogil:
        """Served by a network that is not a home network (as the `roaming` field)."""
        cdef int i
        if s.mcc == NO_PLMN:
            return False
        for i in range(self.nplmn):
            if s.mcc == self.home_mcc[i] and s.mnc == self.home_mnc[i]:
                return False
        return True

    @property
    def home(self):
        return [(self.home_value[i], self.home_len[i]) for i in range(self.nhome)]

    @home.setter
    def home(self, pairs):
        """(packed digits, digit count) of the home networks' MCC+MNC: IMSI prefixes."""
        cdef int i = 0, digits
        cdef uint64_t value
        for value, digits in list(pairs)[:16]:
            self.home_mask[i] = ~((<uint64_t>1 << (64 - 4 * digits)) - 1)
            self.home_value[i] = value & self.home_mask[i]
            self.home_len[i] = digits
            i += 1
        self.nhome = i

    # ---- index -------------------------------------------------------------------------------

    def _index(self, rows_capacity):
        cdef uint64_t n = 64
        while n < <uint64_t>rows_capacity * 5 // 2:     # two keys a row, load at most 0.8
            n <<= 1
        self._slots = np.zeros(n, np.uint32)
        self.slots = <uint32_t *>cnp.PyArray_DATA(self._slots)
        self.mask = n - 1
        self.used = 0
        cdef uint32_t i
        for i in range(self.count):
            if self.subs[i].imsi != NO_DIGITS:
                self._put(self.subs[i].imsi, i, 1)
            if self.subs[i].msisdn != NO_DIGITS:
                self._put(self.subs[i].msisdn, i, 0)

    cdef inline uint64_t _key(self, uint32_t row, int by_imsi) noexcept nogil:
        return self.subs[row].imsi if by_imsi else self.subs[row].msisdn

    cdef int64_t _find(self, uint64_t key, int by_imsi) noexcept nogil:
        """The row whose IMSI (or MSISDN) is key, or -1. IMSI and MSISDN keys share the table;
        a slot holds a row, and the row's own field tells whose key it is. A key that moved to
        another row, or a row whose MSISDN changed, leaves a stale slot that lookups step over
        and the next rebuild drops."""
        cdef uint64_t h = tp_mix64(key ^ (<uint64_t>by_imsi * IMSI_SALT)) & self.mask
        cdef uint32_t s
        while True:
            s = self.slots[h]
            if s == 0:
                return -1
            if self._key(s - 1, by_imsi) == key:
                return s - 1
            h = (h + 1) & self.mask

    cdef inline void _prefetch(self, const tp_record *r, bint row) noexcept nogil:
        """Ask for the index slot of a record a few ahead (row: and, once its slot is in cache,
        for its row): the lookups' cache misses overlap instead of queueing."""
        cdef uint64_t h
        cdef uint32_t s
        if r.imsi != NO_DIGITS:
            h = tp_mix64(r.imsi ^ IMSI_SALT) & self.mask
        elif r.msisdn != NO_DIGITS:
            h = tp_mix64(r.msisdn) & self.mask
        else:
            return
        if not row:
            __builtin_prefetch(&self.slots[h])
            return
        s = self.slots[h]
        if s:
            __builtin_prefetch(&self.subs[s - 1])
            __builtin_prefetch(<char *>&self.subs[s - 1] + 64)       # a row spans two lines
            if s - 1 < self.cap:
                __builtin_prefetch(&self.td[<uint64_t>(s - 1) * SERIES])

    cdef void _room(self):
        """Keep the table at most 0.8 full (stale slots count): rebuild, doubling if the live
        keys alone fill half of it."""
        if (self.used + 1) * 5 >= (self.mask + 1) * 4:
            self._index(max(<uint64_t>self.cap, (self.mask + 1) * 2 // 5 + 1))

    cdef void _put(self, uint64_t key, uint32_t row, int by_imsi) noexcept nogil:
        cdef uint64_t h = tp_mix64(key ^ (<uint64_t>by_imsi * IMSI_SALT)) & self.mask
        cdef uint32_t s
        while True:
            s = self.slots[h]
            if s == 0:
                self.slots[h] = row + 1
                self.used += 1
                return
            if self._key(s - 1, by_imsi) == key:
                self.slots[h] = row + 1      # the key moves to this row
                return
            h = (h + 1) & self.mask

    cdef uint32_t _new(self, uint64_t imsi, uint64_t msisdn):
        cdef uint32_t row
        if self.count == self.cap:
            self._set_rows(np.resize(self.rows, self.count * 2))
            self._index(self.cap)
        row = self.count
        self.count += 1
        memset(&self.subs[row], 0, sizeof(tp_sub))
        self.subs[row].imsi = imsi
        self.subs[row].msisdn = msisdn
        self.subs[row].imei = NO_DIGITS
        self.subs[row].node = NO_DIGITS
        self.subs[row].mcc = NO_PLMN
        self.subs[row].mnc = NO_PLMN
        self._room()
        if imsi != NO_DIGITS:
            self._put(imsi, row, 1)
        self._room()
        if msisdn != NO_DIGITS:
            self._put(msisdn, row, 0)
        return row

    def find(self, imsi=NO_DIGITS, msisdn=NO_DIGITS):
        """The row of a subscriber (packed IMSI first, else packed MSISDN), or -1."""
        cdef int64_t r = -1
        if imsi != NO_DIGITS:
            r = self._find(imsi, 1)
        if r < 0 and msisdn != NO_DIGITS:
            r = self._find(msisdn, 0)
        return r

    def lookup(self, cnp.uint64_t[:] imsi, cnp.uint64_t[:] msisdn):
        """Rows of many subscribers (-1 where unknown), IMSI first, else MSISDN."""
        out = np.full(imsi.shape[0], -1, np.int64)
        cdef cnp.int64_t[:] o = out
        cdef Py_ssize_t i
        cdef int64_t r
        for i in range(imsi.shape[0]):
            r = -1
            if imsi[i] != NO_DIGITS:
                r = self._find(imsi[i], 1)
            if r < 0 and msisdn[i] != NO_DIGITS:
                r = self._find(msisdn[i], 0)
            o[i] = r
        return out

    @property
    def index_bytes(self):
        return self._slots.nbytes

    def restore(self, rows, timers, clock_ns, forwards=()):
        """Take rows, dwell timers and call forwardings from a snapshot; the index is rebuilt."""
        self.fwd = {int(f["sub"]) * 4 + int(f["bit"]): (int(f["at"]), int(f["to"])) for f in forwards}
        self.count = len(rows)
        self._set_rows(np.zeros(max(len(rows) * 5 // 4, 1024), STATE_DTYPE))
        self.rows[:len(rows)] = rows
        self._index(self.cap)
        self._set_timers(np.zeros(max(len(timers) * 2, 64), TIMER_DTYPE))
        self._timers[:len(timers)] = timers
        self.ntimers = len(timers)
        self.clock_ns = clock_ns

    def pending_timers(self):
        return self._timers[:self.ntimers].copy()

    # ---- dwell timers: a binary min-heap on ts_ns ----------------------------------------------

    cdef void _set_timers(self, a):
        self._timers = a
        self.timers = <tp_timer *>cnp.PyArray_DATA(a)
        self.timercap = a.shape[0]

    cdef void _set_events(self, a):
        if self._qv is None or self._qv.shape[1] != self.nq:
            self._qv = np.zeros((a.shape[0], self.nq), np.uint32)
        elif self._qv.shape[0] != a.shape[0]:
            self._qv = _grown(self._qv, a.shape[0])
        self.qv = <uint32_t *>cnp.PyArray_DATA(self._qv)
        self._events = a
        self.ev = <tp_event *>cnp.PyArray_DATA(a)
        self.evcap = a.shape[0]

    cdef void _push_timer(self, int64_t ts_ns, uint32_t sub, uint32_t since, uint16_t area, uint16_t minutes):
        cdef uint32_t i, p
        cdef tp_timer t
        if self.ntimers == self.timercap:
            self._set_timers(np.resize(self._timers, self.ntimers * 2))
        i = self.ntimers
        self.ntimers += 1
        t.ts_ns, t.sub, t.since, t.area, t.minutes = ts_ns, sub, since, area, minutes
        while i > 0:
            p = (i - 1) // 2
            if self.timers[p].ts_ns <= ts_ns:
                break
            self.timers[i] = self.timers[p]
            i = p
        self.timers[i] = t

    cdef tp_timer _pop_timer(self) noexcept nogil:
        cdef tp_timer top = self.timers[0], last
        cdef uint32_t i = 0, c, n
        self.ntimers -= 1
        n = self.ntimers
        if n:
            last = self.timers[n]
            while True:
                c = 2 * i + 1
                if c >= n:
                    break
                if c + 1 < n and self.timers[c + 1].ts_ns < self.timers[c].ts_ns:
                    c += 1
                if self.timers[c].ts_ns >= last.ts_ns:
                    break
                self.timers[i] = self.timers[c]
                i = c
            self.timers[i] = last
        return top

    cdef void _fire_due(self, int64_t now_ns):
        cdef tp_timer t
        cdef tp_sub *s
        cdef tp_event *e
        while self.ntimers and self.timers[0].ts_ns <= now_ns:
            t = self._pop_timer()
            s = &self.subs[t.sub]
            if s.area == t.area and s.area_since == t.since:       # still the same visit
                e = self._event(E_AREA_DWELL, t.ts_ns, -1, t.sub)
                if e != NULL:
                    e.area = t.area
                    e.minutes = t.minutes
                    e.seconds = <uint32_t>t.minutes * 60

    # ---- events ----------------------------------------------------------------------------

    cdef tp_event *_event(self, uint8_t code, int64_t ts_ns, int32_t rec, uint32_t sub):
        cdef tp_event *e
        if not (self.emit >> code) & 1:
            return NULL
        if self.nev == self.evcap:
            self._set_events(np.resize(self._events, self.nev * 2))
        e = &self.ev[self.nev]
        self.nev += 1
        memset(e, 0, sizeof(tp_event))
        e.ts_ns, e.rec, e.sub, e.event = ts_ns, rec, sub, code
        e.number = NO_DIGITS
        e.segment = segment_of(&self.subs[sub], ts_ns)
        if (self.q_events >> code) & 1:
            self._query(self.nev - 1, sub)
        return e

    cdef void _query(self, uint32_t at, uint32_t sub) noexcept nogil:
        """The queries' values for this subscriber now, into row `at` of the query values."""
        cdef int j, w, k
        cdef uint64_t v
        cdef const uint16_t *svc = self.subs[sub].svc
        for j in range(self.nq):
            if self.q_series[j] == SERVICE_QUERY:     # a service last used within the window
                v = 0
                for k in range(SERVICES):
                    v += svc[k] != 0 and self.day_no - svc[k] < self.q_window[j]
                self.qv[<uint64_t>at * self.nq + j] = <uint32_t>v
                continue
            if not self.q_today[j]:
                v = 0
            elif self.q_area[j]:
                v = self.atd[<uint64_t>sub * self.nq + j]
            else:
                v = self.td[<uint64_t>sub * SERIES + self.q_series[j]]
            w = self.q_window[j]
            if w >= 0:
                v += self.sm[<uint64_t>sub * self.nwin + w]
            self.qv[<uint64_t>at * self.nq + j] = <uint32_t>(v if v < MAX_U32 else MAX_U32)

    cdef void _fact(self, uint32_t sub, uint16_t area, uint8_t series, uint32_t value):
        """A fact of the day about the subscriber in a named area; the area queries that ask see it."""
        cdef tp_fact *f
        cdef uint32_t *c
        cdef int j
        if self.nfacts == self.factcap:
            self._set_facts(np.resize(self._facts, self.factcap * 2), self.nfacts)
        f = &self.facts[self.nfacts]
        self.nfacts += 1
        f.sub, f.area, f.series, f.value, f.pad = sub, area, series, value, 0
        for j in range(self.nq):
            if self.q_area[j] == area and self.q_series[j] == AREA_QUERY + series:
                c = &self.atd[<uint64_t>sub * self.nq + j]
                c[0] = 1 if series == A_DAYS else c[0] + value

    cdef void _present(self, uint32_t sub, tp_sub *s, uint16_t area):
        """The subscriber is in the area today (Sub.area_day: counted once a day)."""
        self._fact(sub, area, A_DAYS, 1)
        s.area_day = <uint16_t>self.day_no

    cdef void _profile_count(self, uint32_t sub, const tp_record *r, bint failed, uint32_t t,
                             int8_t service) noexcept nogil:
        """Today's series, before the record's events (an event sees its own record counted). A
        call seen twice, as CAP and as ISUP (its set-up, or its end, to the same number within
        CALL_TWIN seconds), counts once."""
        cdef bint mt = r.proto == TP_PROTO_CAP and r.event >= 12     # DP12: the served party is called
        cdef tp_sub *s = &self.subs[sub]
        cdef uint32_t peer
        self.td[<uint64_t>sub * SERIES + P_ACTIVE] = 1
        if r.kind == TP_K_CALL_END:                  # answered, even when its end was not seen
            peer = <uint32_t>(r.peer ^ (r.peer >> 32))
            if _twin(s.end_at, s.end_peer, t, peer):
                return
            s.end_at, s.end_peer = t, peer
            if r.flags & TP_F_ANSWERED:
                self._add(sub, P_ANSWERED_MT if mt else P_ANSWERED_MO, 1)
                self._add(sub, P_CALL_MS, r.duration_ms)
                if self._roaming(s):
                    self._add(sub, P_ROAMING_CALL_MS, r.duration_ms)
        elif failed:
            return
        elif r.kind == TP_K_CALL_ATTEMPT:
            peer = <uint32_t>(r.peer ^ (r.peer >> 32))
            if _twin(s.call_at, s.call_peer, t, peer):
                return
            s.call_at, s.call_peer = t, peer
            self._add(sub, P_CALLS_MT if mt else P_CALLS_MO, 1)
        elif r.kind == TP_K_MO_SMS:
            self._add(sub, P_SMS_MO, 1)
        elif r.kind == TP_K_MT_SMS:
            self._add(sub, P_SMS_MT, 1)
        elif r.kind == TP_K_MMS_NOTIFICATION:
            self._add(sub, P_MMS_MT, 1)
        elif r.kind == TP_K_SESSION_CREATE or r.kind == TP_K_PDP_CREATE:
            self._add(sub, P_SESSIONS, 1)
            if 0 <= service < SERVICES:
                s.svc[service] = <uint16_t>self.day_no
        elif r.kind == TP_K_DATA_USAGE:
            self._add(sub, P_DATA_KIB, (r.octets + 512) // 1024)

    cdef inline void _add(self, uint32_t sub, int series, uint64_t n) noexcept nogil:
        cdef uint32_t *c = &self.td[<uint64_t>sub * SERIES + series]
        n += c[0]
        c[0] = <uint32_t>(n if n < MAX_U32 else MAX_U32)

    cdef bint _home(self, uint64_t imsi) noexcept nogil:
        cdef int i
        for i in range(self.nhome):
            if (imsi & self.home_mask[i]) == self.home_value[i]:
                return True
        return False

    def process(self, records, cnp.int16_t[:] region, cnp.int32_t[:] area, cnp.int8_t[:] service=None):
        """Update the state with a batch of records (RECORD_DTYPE, in arrival order) and return
        the scenario events found (EVENT_DTYPE), in order. region[i]: the region of record i's
        location (0 in none, -1 the record tells no location); area[i]: its area (0 none, -1 no
        cell); service[i]: the data service (0..SERVICES-1) of a session's APN, -1 none."""
        cdef Py_ssize_t n = len(records), i, stride = records.dtype.itemsize
        cdef char *base = <char *>cnp.PyArray_DATA(records)
        cdef const tp_record *r
        cdef tp_sub *s
        cdef tp_event *e
        cdef int64_t row, other
        cdef uint32_t sub, t, w_now, w_then, d, today, tac_new, tac_old
        cdef int16_t reg
        cdef int32_t ar
        cdef int gen, j
        cdef uint8_t bits
        cdef bint first, new_imsi, failed, located
        cdef uint16_t[:] dwell = self.dwell
        assert records.flags.c_contiguous and stride == sizeof(tp_record), "records: RECORD_DTYPE, contiguous"
        assert region.shape[0] == n and area.shape[0] == n
        if service is None:
            service = np.full(n, -1, np.int8)
        assert service.shape[0] == n
        self._set_events(np.zeros(n * 3 + 64, EVENT_DTYPE))
        self.nev = 0
        for i in range(n):
            r = <const tp_record *>(base + i * stride)
            if i + 16 < n:
                self._prefetch(<const tp_record *>(base + (i + 16) * stride), False)
            if i + 8 < n:
                self._prefetch(<const tp_record *>(base + (i + 8) * stride), True)
            if r.ts_ns > self.clock_ns:
                self.clock_ns = r.ts_ns
                if self.ntimers:
                    self._fire_due(self.clock_ns)
                if self.on_day is not None and self.clock_ns >= self.day_end_ns:
                    self.on_day(self, self.clock_ns)        # a new day (the first: the profiles start)
            # the subscriber: by IMSI, else by MSISDN; a new IMSI adopts a row known by MSISDN only
            row = -1
            new_imsi = False
            if r.imsi != NO_DIGITS:
                row = self._find(r.imsi, 1)
                if row < 0 and r.msisdn != NO_DIGITS:
                    row = self._find(r.msisdn, 0)
                    if row >= 0 and self.subs[row].imsi == NO_DIGITS:
                        self.subs[row].imsi = r.imsi
                        self._room()
                        self._put(r.imsi, <uint32_t>row, 1)
                        new_imsi = True
                    else:
                        row = -1
            elif r.msisdn != NO_DIGITS:
                row = self._find(r.msisdn, 0)
            else:
                continue
            first = row < 0
            if first:
                row = self._new(r.imsi, r.msisdn)
                new_imsi = r.imsi != NO_DIGITS
            # (the IMSI's first sighting: a visitor is welcomed, and attached, when its IMSI is
            # first seen, even if its number was seen before, in an ISUP call)
            sub = <uint32_t>row
            s = &self.subs[sub]
            if r.msisdn != NO_DIGITS and s.msisdn != r.msisdn:
                # the number is this row's now: a row that had it (known by it alone, before its
                # IMSI was seen with it) gives it up, or an index rebuilt from the rows (a restart,
                # a bigger table) would find that row again for it
                other = self._find(r.msisdn, 0)
                if other >= 0:
                    self.subs[other].msisdn = NO_DIGITS
                s.msisdn = r.msisdn
                self._room()
                self._put(r.msisdn, sub, 0)
            t = <uint32_t>(r.ts_ns // 1000000000) if r.ts_ns > 0 else 0
            # a call attempt is one whatever became of it (busy, unanswered, longer than the
            # dialogue time-out): the subscriber called
            failed = (r.flags & F_FAILED) != 0 and r.kind != TP_K_CALL_ATTEMPT
            if self.on_day is not None:
                self._profile_count(sub, r, failed, t, service[i])

            if t > s.last_seen:
                s.last_seen = t

            if new_imsi and self.nhome and not self._home(r.imsi):
                e = self._event(E_INBOUND_ROAMER, r.ts_ns, i, sub)
            located = (s.flags & (S_LOCATED | S_CELL)) != 0 or s.node != NO_DIGITS     # before this record

            if not failed:
                # handset
                if r.imei != NO_DIGITS:
                    if s.imei != NO_DIGITS and (s.imei >> 8) != (r.imei >> 8):
                        tac_new, tac_old = tp_tac_of(r.imei), tp_tac_of(s.imei)
                        e = self._event(E_IMEI_CHANGE, r.ts_ns, i, sub)
                        if e != NULL:
                            e.flag = tac_new != tac_old
                            e.tac, e.old_tac = tac_new, tac_old
                        if tac_new != tac_old:
                            s.prev_tac = tac_old
                    if s.imei == NO_DIGITS or (s.imei >> 8) != (r.imei >> 8):
                        s.imei_since = t            # this handset, since (first seen, for the first)
                    s.imei = r.imei
                # radio access type
                if r.rat:
                    gen = rat_generation(r.rat)
                    if s.rat and s.rat != r.rat:
                        e = self._event(E_RAT_CHANGE, r.ts_ns, i, sub)
                        if e != NULL:
                            e.rat, e.from_rat = r.rat, s.rat
                            e.flag = gen >= 0 and not (s.flags >> (4 + gen)) & 1
                    s.rat = r.rat
                    if gen >= 0:
                        s.flags |= <uint8_t>(S_SEEN_2G << gen)
                # location: region, then area
                # (a location in no region leaves the region as it was: records tell locations
                # at different grains, a VLR GT, an SGSN GT, a TAC, and places may not name all)
                reg = region[i]
                if reg > 0:
                    if s.flags & S_LOCATED and reg != s.region:
                        e = self._event(E_ROAMING_OUT, r.ts_ns, i, sub)
                        if e != NULL:
                            e.region, e.other_region = s.region, <uint8_t>reg
                        e = self._event(E_ROAMING_IN, r.ts_ns, i, sub)
                        if e != NULL:
                            e.region, e.other_region = <uint8_t>reg, s.region
                    if not s.flags & S_LOCATED or reg != s.region:
                        s.region_since = t
                    s.region = <uint8_t>reg
                    s.flags |= S_LOCATED
                if reg >= 0:
                    if r.node != NO_DIGITS:
                        s.node = r.node
                    if r.mcc != NO_PLMN:
                        s.mcc, s.mnc = r.mcc, r.mnc
                ar = area[i]
                if ar >= 0:
                    if not s.flags & S_CELL or ar != s.area:
                        # an entry when the last known location (a cell, or only a VLR) was not
                        # in the area; the first location known is no entry, and no visit: the
                        # dwell timers start with the entry, so enter and dwell always agree
                        if self.on_day is not None:
                            if s.area and s.flags & S_CELL:         # a visit ends: its minutes
                                self._fact(sub, s.area, A_MINUTES, (t - s.area_since) // 60 if t > s.area_since else 0)
                            if ar and located:
                                self._fact(sub, <uint16_t>ar, A_VISITS, 1)
                            if ar:                                  # before area_enter: its queries see it
                                self._present(sub, s, <uint16_t>ar)
                        s.area = <uint16_t>ar
                        s.area_since = t
                        if ar and located:
                            e = self._event(E_AREA_ENTER, r.ts_ns, i, sub)
                            if e != NULL:
                                e.area = <uint16_t>ar
                            for j in range(dwell.shape[0]):
                                self._push_timer(r.ts_ns + <int64_t>dwell[j] * 60000000000, sub, t,
                                                 <uint16_t>ar, dwell[j])
                    s.flags |= S_CELL
                    s.lac_tac, s.cell = r.lac_tac, r.cell
                if s.area and s.flags & S_CELL and s.area_day != <uint16_t>self.day_no and self.on_day is not None:
                    self._present(sub, s, s.area)                   # still there on another day

                # what the record is
                if r.kind == TP_K_PURGE_MS:
                    self._power_off(s, sub, r, i, t)
                elif r.kind == TP_K_SESSION_DELETE or r.kind == TP_K_PDP_DELETE:
                    # an EPS detach deletes the last session; a 2G/3G PDP context goes whenever
                    # data is switched off, so only GTPv2 can tell a power-off, and only for a
                    # subscriber not attached in the CS domain (where the data may just have ended)
                    if s.cf >> 4:
                        s.cf -= 0x10
                        if not s.cf >> 4 and r.kind == TP_K_SESSION_DELETE and not s.flags & S_CS:
                            self._power_off(s, sub, r, i, t)
                elif (r.kind == TP_K_LOCATION_UPDATE or r.kind == TP_K_GPRS_LOCATION_UPDATE
                      or r.kind == TP_K_SESSION_CREATE or r.kind == TP_K_PDP_CREATE):
                    if new_imsi or first or s.flags & S_OFF:
                        e = self._event(E_POWER_ON, r.ts_ns, i, sub)
                        if e != NULL and s.flags & S_OFF:
                            e.seconds = t - s.off_at if t > s.off_at else 0
                        if s.flags & S_OFF and s.cf & CF_MASK:
                            self._forwarded_then_on(s, sub, r, i, t)
                        s.flags &= ~S_OFF
                    if r.kind == TP_K_LOCATION_UPDATE:
                        s.flags |= S_CS
                    if r.kind == TP_K_SESSION_CREATE or r.kind == TP_K_PDP_CREATE:
                        if s.cf >> 4 < 15:
                            s.cf += 0x10
                        e = self._event(E_DATA_SESSION_START, r.ts_ns, i, sub)
                        if e != NULL:
                            e.rat = r.rat
                elif r.kind == TP_K_SS_REGISTER or r.kind == TP_K_SS_ACTIVATE:
                    bits = cf_bits(r.ss_code)
                    if bits:
                        self._forward(sub, bits, t, r.peer)
                        s.cf |= bits
                elif r.kind == TP_K_SS_ERASE or r.kind == TP_K_SS_DEACTIVATE:
                    bits = cf_bits(r.ss_code)
                    if bits:
                        s.cf &= ~bits
                        if r.kind == TP_K_SS_ERASE:         # deactivated, the number stays registered
                            for j in range(4):
                                if (bits >> j) & 1:
                                    self.fwd.pop(sub * 4 + j, None)
                elif r.kind == TP_K_CALL_ATTEMPT:
                    e = self._event(E_HOTLINE_CALL, r.ts_ns, i, sub)
                    if e != NULL:
                        e.number = r.peer
                elif r.kind == TP_K_MO_SMS:
                    e = self._event(E_SMS_MO, r.ts_ns, i, sub)
                elif r.kind == TP_K_MT_SMS:
                    e = self._event(E_SMS_MT, r.ts_ns, i, sub)
                elif r.kind == TP_K_MMS_NOTIFICATION:
                    e = self._event(E_MMS_MT, r.ts_ns, i, sub)
                elif r.kind == TP_K_USSD:
                    e = self._event(E_USSD, r.ts_ns, i, sub)
                    if e != NULL:
                        e.number = r.peer
                elif r.kind == TP_K_DATA_USAGE:
                    self._usage(s, r.octets, t)
            e = self._event(E_RECORD, r.ts_ns, i, sub)
        out = self._events[:self.nev]
        self._events = None
        return out

    def flush(self, int64_t now_ns):
        """Fire the dwell timers due by now_ns (the end of a replay: the latest record time)."""
        self._set_events(np.zeros(64, EVENT_DTYPE))
        self.nev = 0
        if now_ns > self.clock_ns:
            self.clock_ns = now_ns
        self._fire_due(self.clock_ns)
        out = self._events[:self.nev]
        self._events = None
        return out

    cdef void _power_off(self, tp_sub *s, uint32_t sub, const tp_record *r, Py_ssize_t i, uint32_t t):
        if not s.flags & S_OFF:
            self._event(E_POWER_OFF, r.ts_ns, i, sub)
        s.flags |= S_OFF
        s.flags &= ~S_CS
        s.off_at = t
        s.cf &= CF_MASK             # nothing is open once the subscriber is off

    cdef void _forward(self, uint32_t sub, uint8_t bits, uint32_t t, uint64_t to):
        """registerSS / activateSS: these forwardings are on from t; a number given replaces the
        one registered."""
        cdef int b
        for b in range(4):
            if (bits >> b) & 1:
                old = self.fwd.get(sub * 4 + b)
                self.fwd[sub * 4 + b] = (t, old[1] if to == NO_DIGITS and old is not None else to)

    cdef void _forwarded_then_on(self, tp_sub *s, uint32_t sub, const tp_record *r, Py_ssize_t i, uint32_t t):
        """cf_then_power_on for each forwarding on since before the power-off, with its own code,
        time and number: the most recently set first (a campaign takes the first that qualifies)."""
        cdef tp_event *e
        cdef int b
        found = []
        for b in range(4):
            f = self.fwd.get(sub * 4 + b) if (s.cf >> b) & 1 else None
            if f is not None and f[0] <= s.off_at:
                found.append((-f[0], b, f[0], f[1]))            # the latest set first
        found.sort()
        for _, b, at, to in found:
            e = self._event(E_CF_THEN_POWER_ON, r.ts_ns, i, sub)
            if e != NULL:
                e.seconds = t - at if t > at else 0
                e.number = to
                e.ss_code = CF_CODES[b]

    @property
    def nforwards(self):
        return len(self.fwd)

    def forwards(self):
        """The registered call forwardings (FORWARD_DTYPE), for a snapshot."""
        out = np.zeros(len(self.fwd), FORWARD_DTYPE)
        for j, (k, (at, to)) in enumerate(sorted(self.fwd.items())):
            out[j] = (k >> 2, k & 3, at, to)
        return out

    cdef void _usage(self, tp_sub *s, uint64_t octets, uint32_t t) noexcept:
        cdef uint32_t today = t // DAY, d
        if octets:
            d = today - s.data_day if today > s.data_day else 0
            s.data_days = (s.data_days << d) | 1 if d < 32 else 1
            if today > s.data_day:
                s.data_day = <uint16_t>today


def _grown(a, rows):
    """a with `rows` rows: cut, or padded with zeros."""
    out = np.zeros((rows,) + a.shape[1:], a.dtype)
    n = min(rows, a.shape[0])
    out[:n] = a[:n]
    return out
