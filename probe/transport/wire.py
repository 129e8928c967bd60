"""The record batch on the wire: a two-part message, a 48-byte header (`HEADER`, little endian) and
the raw records (count x record size bytes of `probe.record.RECORD_DTYPE`, exactly as decoded).

    magic        4s  b"TPRB"
    wire         u16 version of this header (1)
    schema       u16 probe.record.SCHEMA_VERSION
    record_size  u16 bytes a record
    probe_id     u16
    shard        u16
    flags        u16 END_OF_STREAM, ACK, REJECT
    epoch        u32 random per probe run: a new epoch is a restarted probe, not a gap
    count        u32 records in the second part
    seq          u64 per (probe, shard), from 0; the end-of-stream message takes the next one
    first_ts     i64 smallest ts_ns of the batch (0 when empty)
    last_ts      i64 largest
"""
import struct
from dataclasses import dataclass

import numpy as np

from ..record import RECORD_DTYPE, SCHEMA_VERSION

MAGIC = b"TPRB"
WIRE_VERSION = 1
HEADER = struct.Struct("<4sHHHHHHIIQqq")
END_OF_STREAM = 0x1
ACK = 0x2
REJECT = 0x4


class WireError(Exception):
    """A message that is not a record batch this side can read."""



@dataclass
class Header:
    probe_id: int = 0
    shard: int = 0
    flags: int = 0
    epoch: int = 0
    count: int = 0
    seq: int = 0
    first_ts: int = 0
    last_ts: int = 0
    schema: int = SCHEMA_VERSION
    record_size: int = RECORD_DTYPE.itemsize
    wire: int = WIRE_VERSION

    def pack(self) -> bytes:
        return HEADER.pack(MAGIC, self.wire, self.schema, self.record_size, self.probe_id, self.shard,
                           self.flags, self.epoch, self.count, self.seq, self.first_ts, self.last_ts)

    @classmethod
    def unpack(cls, buf) -> "Header":
        if len(buf) != HEADER.size:
            raise WireError(f"a {len(buf)}-byte header, not {HEADER.size}: not a touchpoint record stream")
        magic, wire, schema, size, probe_id, shard, flags, epoch, count, seq, first, last = HEADER.unpack(buf)
        if magic != MAGIC:
            raise WireError(f"magic {magic!r}, not {MAGIC!r}: not a touchpoint record stream")
        return cls(probe_id, shard, flags, epoch, count, seq, first, last, schema, size, wire)


def batch_header(records: np.ndarray, **kw) -> Header:
    ts = records["ts_ns"]
    return Header(count=len(records), first_ts=int(ts.min()) if len(ts) else 0,
                  last_ts=int(ts.max()) if len(ts) else 0, **kw)
