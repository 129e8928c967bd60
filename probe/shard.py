"""Which engine shard a record goes to: a stable hash of its subscriber key.

The key of a record, first that applies:

1. its IMSI;
2. the IMSI learned for its MSISDN from records that carried both (updateLocation with the
   insertSubscriberData inside it, SRI, SRI-SM, GTP sessions, ...: earlier ones, or ones in the
   same batch), kept in a bounded table (`Bindings`, LRU within small sets, 1,048,576 entries by
   default);
3. the IMSI the operator's key-map file gives for its MSISDN (`KeyMap`, CSV `msisdn,imsi`);
4. its MSISDN;
5. none (no subscriber at all: a check_imei with only an IMEI, the data usage of a tunnel whose
   GTP-C was not seen): shard 0.

shard = splitmix64(key) % shards, where key is the packed 64-bit digit value of `probe.record`
(so an IMSI and its learned binding give the same key). A batch is keyed in one C pass
(probe._shard).

What this means for the engine: a subscriber always seen with an IMSI, or whose MSISDN the
key map names, always reaches the same shard. A subscriber first seen by MSISDN only (an MO SMS,
a CAP or ISUP call, an SRI-SM without a result) before any record binds that MSISDN to an IMSI
goes to the shard of the MSISDN; once a record carries both, later records go to the shard of
the IMSI. Until then the two shards each hold part of that subscriber (the MSISDN shard's part
keyed by MSISDN), and a binding evicted from the table, or learned by another probe only, moves
the MSISDN-only records back to the MSISDN's shard. An engine that needs every event of a
subscriber in one place runs one shard, or gives the probes a key map of its subscriber list.
"""
from enum import IntEnum

import numpy as np

from ._shard import Bindings, assign as _assign, splitmix64
from .record import NO_DIGITS, pack


class KeySource(IntEnum):
    NONE = 0        # no subscriber: shard 0
    IMSI = 1
    LEARNED = 2     # MSISDN -> IMSI learned from earlier records
    KEY_MAP = 3     # MSISDN -> IMSI from the operator's key-map file
    MSISDN = 4


def shard_of(keys: np.ndarray, shards: int) -> np.ndarray:
    """The shard of each packed subscriber key (uint64)."""
    return (splitmix64(keys) % np.uint64(shards)).astype(np.uint16)


class KeyMap:
    """The operator's MSISDN -> IMSI list: sorted arrays, looked up with searchsorted."""

    def __init__(self, msisdn: np.ndarray, imsi: np.ndarray, source: str = "", bad_rows: int = 0,
                 first_bad: str = ""):
        order = np.argsort(msisdn, kind="stable")
        msisdn, imsi = msisdn[order], imsi[order]
        last = np.ones(len(msisdn), bool)                 # an msisdn listed twice: the last row wins
        last[:-1] = msisdn[1:] != msisdn[:-1]
        self.msisdn, self.imsi = msisdn[last], imsi[last]
        self.source = source
        self.bad_rows = bad_rows
        self.first_bad = first_bad

    def __len__(self) -> int:
        return len(self.msisdn)

    @classmethod
    def load(cls, path) -> "KeyMap":
        """A CSV file of `msisdn,imsi` rows (digits as in the records: international format).

        Blank lines, lines starting with '#' and a header row are skipped; a malformed row is
        counted and skipped (`bad_rows`, `first_bad` names the first one by line number).
        """
        msisdns, imsis = [], []
        bad, first_bad = 0, ""
        with open(path, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                m, _, i = (p.strip().strip('"') for p in line.partition(","))
                if "," in i or not _is_digits(m, 16) or not _is_digits(i, 15):
                    if n == 1 and not any(c.isdigit() for c in line):
                        continue                          # header
                    bad += 1
                    first_bad = first_bad or f"{path}:{n}: {line[:60]!r}"
                    continue
                msisdns.append(m)
                imsis.append(i)
        return cls(pack(np.array(msisdns, "U16")) if msisdns else np.empty(0, np.uint64),
                   pack(np.array(imsis, "U16")) if imsis else np.empty(0, np.uint64),
                   source=str(path), bad_rows=bad, first_bad=first_bad)

    def lookup(self, msisdn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(imsi, found) for each msisdn."""
        if not len(self.msisdn):
            return np.full(len(msisdn), NO_DIGITS, np.uint64), np.zeros(len(msisdn), bool)
        i = np.minimum(np.searchsorted(self.msisdn, msisdn), len(self.msisdn) - 1)
        found = self.msisdn[i] == msisdn
        return np.where(found, self.imsi[i], NO_DIGITS), found


_NO_KEYS = np.empty(0, np.uint64)


def _is_digits(s: str, most: int) -> bool:
    return 0 < len(s) <= most and s.isascii() and s.isdigit()


class Sharder:
    """Assigns each record of a batch to a shard by its subscriber key (see the module doc)."""

    def __init__(self, shards: int, key_map: KeyMap | None = None, bindings: int = 1 << 20):
        if shards < 1:
            raise ValueError("at least one shard")
        self.shards = shards
        self.key_map = key_map
        self.capacity = bindings
        self.bindings = None                                  # made on first use: one shard needs none
        self.by_source = np.zeros(len(KeySource), np.int64)   # records keyed each way

    def keys(self, records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(key, KeySource) of each record; learns the bindings the records carry first."""
        key, source, _ = self._assign(records, 1, np.zeros(len(KeySource), np.int64))
        return key, source

    def assign(self, records: np.ndarray) -> np.ndarray | None:
        """The shard (uint16) of each record; None when there is one shard (all to shard 0)."""
        if self.shards == 1:
            return None
        return self._assign(records, self.shards, self.by_source)[2]

    def _assign(self, records: np.ndarray, shards: int, counts: np.ndarray):
        if self.bindings is None:
            self.bindings = Bindings(self.capacity)
        km = self.key_map
        return _assign(records["imsi"], records["msisdn"], self.bindings, km.msisdn if km else _NO_KEYS,
                       km.imsi if km else _NO_KEYS, shards, counts)

    def counts(self) -> dict:
        out = {s.name.lower(): int(self.by_source[s]) for s in KeySource}
        if self.bindings is not None:
            out["bindings"] = len(self.bindings)
            out["bindings_evicted"] = self.bindings.evicted
        return out


def split(records: np.ndarray, shard: np.ndarray | None, shards: int) -> list:
    """records grouped by shard, order kept within each: a list of `shards` arrays (views)."""
    if shard is None:
        return [records] + [records[:0]] * (shards - 1)
    order = np.argsort(shard, kind="stable")               # radix sort on uint16
    ends = np.cumsum(np.bincount(shard, minlength=shards)).tolist()
    items = as_void(records)
    # One gather per shard into an array of its own: a shard's batches can then be sliced from it
    # without a second copy, and they keep no other shard's records alive.
    return [items[order[a:b]].view(records.dtype) for a, b in zip([0] + ends[:-1], ends)]


def as_void(records: np.ndarray) -> np.ndarray:
    """The same memory as opaque fixed-size items: numpy copies and gathers these some 30 times
    faster than a structured dtype, which it copies field by field."""
    return records.view(np.dtype((np.void, records.dtype.itemsize)))

