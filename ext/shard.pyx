# cython: language_level=3
"""The probe's sharding loop in C (probe.shard documents the keys): one pass over a batch's
IMSI and MSISDN columns learns the MSISDN -> IMSI bindings, a second gives each record its key,
where the key came from, and its shard. It runs in the capture thread for every record, where
the numpy version's temporaries cost a quarter of a 3-shard probe's time."""
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint64_t

from core cimport NO_DIGITS, tp_splitmix64

import numpy as np

# probe.shard.KeySource
cdef enum:
    SRC_NONE = 0
    SRC_IMSI = 1
    SRC_LEARNED = 2
    SRC_KEY_MAP = 3
    SRC_MSISDN = 4


def splitmix64(keys):
    """splitmix64 of each uint64 (what `assign` shards by), as an array."""
    cdef const uint64_t[:] k = np.ascontiguousarray(keys, np.uint64).reshape(-1)
    out = np.empty(k.shape[0], np.uint64)
    cdef uint64_t[::1] o = out
    cdef Py_ssize_t i
    with nogil:
        for i in range(k.shape[0]):
            o[i] = tp_splitmix64(k[i])
    return out


cdef class Bindings:
    """A bounded MSISDN -> IMSI table: `ways`-way set-associative, least recently used out.

    Slots are grouped in sets of `ways`; a key lives in the set its hash names, and a new key
    takes the least recently used slot of that set (the clock advances once a batch). Memory is
    fixed: 24 bytes a slot (MSISDN, IMSI, clock of the last use: a set's slots share cache lines
    and pages), taken from the system as the slots fill (a zeroed array: a last use of 0 is an
    empty slot, and no MSISDN packs to 0, which would take 16 zeros)."""

    cdef readonly object slots                  # (sets, ways, 3) uint64
    cdef uint64_t[:, :, ::1] t
    cdef readonly uint64_t clock
    cdef public Py_ssize_t evicted
    cdef uint64_t mask
    cdef Py_ssize_t ways

    def __init__(self, Py_ssize_t capacity=1 << 20, Py_ssize_t ways=4):
        cdef Py_ssize_t sets = 1
        if ways < 1:
            raise ValueError("at least one way")
        while sets * ways < capacity:
            sets <<= 1
        self.ways = ways
        self.mask = sets - 1
        self.slots = np.zeros((sets, ways, 3), np.uint64)
        self.t = self.slots
        self.clock = 0
        self.evicted = 0

    @property
    def capacity(self) -> int:
        return self.slots.shape[0] * self.slots.shape[1]

    def __len__(self) -> int:
        return int(np.count_nonzero(self.slots[:, :, 2]))

    cdef inline void put(self, uint64_t msisdn, uint64_t imsi) noexcept nogil:
        cdef Py_ssize_t s = <Py_ssize_t>(tp_splitmix64(msisdn) & self.mask), w, at = 0
        for w in range(self.ways):
            if self.t[s, w, 0] == msisdn:
                at = w
                break
            if self.t[s, w, 2] < self.t[s, at, 2]:
                at = w
        else:
            if self.t[s, at, 2]:
                self.evicted += 1
            self.t[s, at, 0] = msisdn
        self.t[s, at, 1] = imsi
        self.t[s, at, 2] = self.clock

    cdef inline uint64_t get(self, uint64_t msisdn, bint refresh) noexcept nogil:
        """The IMSI bound to msisdn, or NO_DIGITS."""
        cdef Py_ssize_t s = <Py_ssize_t>(tp_splitmix64(msisdn) & self.mask), w
        for w in range(self.ways):
            if self.t[s, w, 0] == msisdn and self.t[s, w, 2]:
                if refresh:
                    self.t[s, w, 2] = self.clock
                return self.t[s, w, 1]
        return NO_DIGITS

    def learn(self, const uint64_t[:] msisdn, const uint64_t[:] imsi) -> None:
        """Bind each msisdn to its imsi (the last pair wins for an msisdn given twice)."""
        cdef Py_ssize_t i
        if msisdn.shape[0] != imsi.shape[0]:
            raise ValueError("as many IMSIs as MSISDNs")
        self.clock += 1
        with nogil:
            for i in range(msisdn.shape[0]):
                self.put(msisdn[i], imsi[i])

    def lookup(self, const uint64_t[:] msisdn, bint refresh=True):
        """(imsi, found) for each msisdn; a hit counts as a use."""
        cdef Py_ssize_t i, n = msisdn.shape[0]
        out = np.empty(n, np.uint64)
        cdef uint64_t[::1] o = out
        with nogil:
            for i in range(n):
                o[i] = self.get(msisdn[i], refresh)
        return out, out != NO_DIGITS


def assign(const uint64_t[:] imsi, const uint64_t[:] msisdn, Bindings bindings, const uint64_t[::1] map_msisdn,
           const uint64_t[::1] map_imsi, int shards, int64_t[::1] by_source):
    """(key, source, shard) of each record (probe.shard.Sharder.keys and .assign); the bindings
    of the records that carry both identities are learned first; by_source counts the sources."""
    cdef Py_ssize_t i, n = imsi.shape[0], lo, hi, mid, nmap = map_msisdn.shape[0]
    key = np.empty(n, np.uint64)
    source = np.empty(n, np.uint8)
    shard = np.zeros(n, np.uint16)
    cdef uint64_t[::1] k = key
    cdef uint8_t[::1] src = source
    cdef uint16_t[::1] sh = shard
    cdef uint64_t m, got
    bindings.clock += 1
    with nogil:
        for i in range(n):
            if imsi[i] != NO_DIGITS and msisdn[i] != NO_DIGITS:
                bindings.put(msisdn[i], imsi[i])
        for i in range(n):
            m = msisdn[i]
            if imsi[i] != NO_DIGITS:
                k[i], src[i] = imsi[i], SRC_IMSI
            elif m == NO_DIGITS:
                k[i], src[i] = NO_DIGITS, SRC_NONE
            else:
                got = bindings.get(m, True)
                if got != NO_DIGITS:
                    k[i], src[i] = got, SRC_LEARNED
                else:
                    k[i], src[i] = m, SRC_MSISDN
                    lo, hi = 0, nmap                    # the operator's key map: sorted
                    while lo < hi:
                        mid = (lo + hi) >> 1
                        if map_msisdn[mid] < m:
                            lo = mid + 1
                        else:
                            hi = mid
                    if lo < nmap and map_msisdn[lo] == m:
                        k[i], src[i] = map_imsi[lo], SRC_KEY_MAP
            by_source[src[i]] += 1
            if src[i] != SRC_NONE and shards > 1:
                sh[i] = <uint16_t>(tp_splitmix64(k[i]) % <uint64_t>shards)
    return key, source, shard
