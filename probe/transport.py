"""Record batches over ZeroMQ: the wire format, the probe's sending side and the receiving side.

A batch is a two-part message: a 48-byte header (`HEADER`, little endian) and the raw records
(count x record size bytes of `probe.record.RECORD_DTYPE`, exactly as decoded).

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

The probe connects one DEALER per engine shard; the engine (or `touchpoint tap`) binds a ROUTER.
The end-of-stream message is acknowledged by the receiver on the same connection, with a header
carrying ACK and, as second part, JSON of what it received of that stream; a receiver that cannot
read the stream (another schema, another record size) answers its first message with REJECT and
the reason. PUSH/PULL is not used: a PUSH socket that closes while its peer is behind loses the
tail of the stream even with linger (seen with pyzmq 27.3 / libzmq 4.3.5), and it has no way back.

Sequence numbers are given when a batch is cut, before it is queued, so every batch lost after
that - dropped by the probe because a queue was full or the engine absent, or lost on a link that
broke - is a gap at the receiver.

Security: CurveZMQ (`Curve`), the engine the server, each probe a client with a key pair of its own
(zmq.auth certificate files, `touchpoint keys generate`); the engine may accept only the client
keys of a directory (ZAP, zmq.auth.thread.ThreadAuthenticator). A probe whose key is refused,
that has the wrong server key, or whose security does not match the engine's stops with the
reason (as for a rejected stream); the receiver reports each failed handshake. tcp without Curve
is allowed by default only to loopback addresses (`plain_allowed`): ipc and inproc stay local.
"""
import ipaddress
import json
import os
import struct
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass

import numpy as np
import zmq
import zmq.auth
from zmq.utils.monitor import recv_monitor_message

from .record import RECORD_DTYPE, SCHEMA_VERSION
from .shard import as_void, split

MAGIC = b"TPRB"
WIRE_VERSION = 1
HEADER = struct.Struct("<4sHHHHHHIIQqq")
END_OF_STREAM = 0x1
ACK = 0x2
REJECT = 0x4

ZERO_COPY_MIN = 1000        # records; smaller batches are faster copied than handed over
SNDHWM = 4                  # messages in libzmq's pipe per shard, on top of the probe's queue
DROP_CAUSES = ("queue_full", "engine_absent", "stopped")


HANDSHAKE_FAILED = zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | \
    zmq.EVENT_HANDSHAKE_FAILED_AUTH
HANDSHAKE_TRIES = 3         # handshakes failing without detail before a Curve probe gives up


class WireError(Exception):
    """A message that is not a record batch this side can read."""


# --- security ------------------------------------------------------------------------------------

def plain_allowed(endpoint: str) -> bool:
    """Whether records may travel to/from endpoint unencrypted without an explicit --plain:
    ipc and inproc (this host), tcp to or on a loopback address (127.0.0.0/8, ::1, localhost)."""
    scheme, _, rest = endpoint.partition("://")
    if scheme != "tcp":
        return True
    host = rest.rpartition(";")[2].rpartition(":")[0].strip("[]")   # tcp://[src;]host:port
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False                            # a name or an interface: may be anywhere


def load_key(path: str, secret: bool) -> tuple:
    """(public, secret) Z85 keys of a zmq.auth certificate file; secret None unless asked for."""
    try:
        public, sec = zmq.auth.load_certificate(path)
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"{path}: not a Curve key file ({e})") from None
    if secret and not sec:
        raise ValueError(f"{path} holds no secret key: give the .key_secret file of the pair")
    return public, sec


@dataclass
class Curve:
    """This side's key pair and, on a probe (client), the engine's public key."""
    public: bytes
    secret: bytes
    server: bytes | None = None

    @classmethod
    def client(cls, key_file: str, server_key_file: str) -> "Curve":
        return cls(*load_key(key_file, secret=True), server=load_key(server_key_file, secret=False)[0])

    @classmethod
    def server_keys(cls, key_file: str) -> "Curve":
        return cls(*load_key(key_file, secret=True))

    def apply(self, sock: zmq.Socket) -> None:
        sock.curve_publickey = self.public
        sock.curve_secretkey = self.secret
        if self.server is None:
            sock.curve_server = True
        else:
            sock.curve_serverkey = self.server


def handshake_failure(event: int, value: int) -> str:
    """What a failed ZMTP handshake means, for a person."""
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return f"the Curve key was refused (status {value}: not among the authorised client keys)"
    if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
        if value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
            return "security mismatch: one side uses Curve, the other does not"
        if value == zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
            return "Curve handshake failed: the client does not have this server's public key"
        return f"handshake protocol error 0x{value:x}"
    return "the connection closed during the handshake (wrong Curve server key, or a server without Curve?)"


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


# --- the probe's side ----------------------------------------------------------------------------

class Link:
    """One engine shard: a bounded queue of batches and the thread that sends them over a DEALER.

    `put` (the capture thread) never blocks unless lossless: when the queue would hold more than
    `queue_records`, the oldest batches are dropped - counted as engine_absent when the engine is
    not connected, else queue_full - so the newest events, the ones that still matter, get through.
    The sender thread owns the socket: it sends, watches the connection (socket monitor) and reads
    what the receiver answers (ACK, REJECT).
    """

    def __init__(self, ctx: zmq.Context, endpoint: str, shard: int, *, probe_id: int, epoch: int,
                 queue_records: int, lossless: bool, stop: threading.Event, grace: float = 1.0,
                 setup=None, curve: Curve | None = None):
        self.ctx, self.endpoint, self.shard = ctx, endpoint, shard
        self.probe_id, self.epoch = probe_id, epoch
        self.queue_records, self.lossless, self.stop = queue_records, lossless, stop
        self.grace = grace                  # at the end, how long a never-connected link is waited for
        self.setup = setup                  # called with the socket before connect
        self.curve = curve
        self.handshake_failures = 0
        self.refused = False                # the error is a failed handshake, not a REJECT
        self.seq = 0                        # batches cut so far: the next sequence number
        self.cut_records = 0
        self.sent_batches = self.sent_records = 0
        self.drop_batches = Counter()
        self.drop_records = Counter()
        self.up = False                     # engine connected (ZMTP handshake done)
        self.ever_up = False
        self.connects = self.disconnects = 0
        self.acked: dict | None = None      # what the engine said it received, once it acknowledged
        self.error: str | None = None       # the engine's reason for rejecting the stream
        self.eos_sent = False
        self._waiting = [0, 0]              # batches, records handed to libzmq while no engine was connected
        self._q: deque = deque()
        self._queued = 0
        self.queued_max = 0                 # the queue's high-water mark, in records
        self._cond = threading.Condition()
        self._closing = False
        self._abort = False
        self._deadline = 0.0
        self._started = time.monotonic()
        self._ready = threading.Event()
        self._fatal: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"touchpoint-link-{shard}", daemon=True)
        self.thread.start()
        self._ready.wait()
        if self._fatal:
            raise self._fatal

    @property
    def queued(self) -> int:
        return self._queued

    def lag(self, now: float | None = None) -> float:
        """Seconds the oldest queued batch has waited (0 when the queue is empty)."""
        try:
            oldest = self._q[0][3]
        except IndexError:
            return 0.0
        return max(0.0, (time.monotonic() if now is None else now) - oldest)

    # capture thread

    def put(self, records: np.ndarray) -> None:
        hdr = batch_header(records, probe_id=self.probe_id, shard=self.shard, epoch=self.epoch, seq=self.seq)
        self.seq += 1
        self.cut_records += len(records)
        n = len(records)
        with self._cond:
            if self.lossless:
                while self._queued and self._queued + n > self.queue_records and not self.stop.is_set() \
                        and not self._abort and self.error is None:
                    self._cond.wait(0.1)
            else:
                while self._queued and self._queued + n > self.queue_records:
                    old = self._q.popleft()
                    self._queued -= old[1]
                    self._drop(old, "queue_full" if self.up else "engine_absent")
            if self.error is not None:
                self._drop((hdr, n, records), "stopped")
                return
            self._q.append((hdr, n, records, time.monotonic()))
            self._queued += n
            self.queued_max = max(self.queued_max, self._queued)
            self._cond.notify_all()

    def finish(self, deadline: float) -> None:
        """No more batches: send what is queued and the end of stream, until deadline."""
        with self._cond:
            self._closing = True
            self._deadline = deadline
            self._cond.notify_all()

    def abort(self) -> None:
        with self._cond:
            self._abort = True
            self._cond.notify_all()

    def _drop(self, item, cause: str) -> None:
        with self._cond:                                # both threads drop
            self.drop_batches[cause] += 1
            self.drop_records[cause] += item[1]

    # sender thread

    def _run(self) -> None:
        try:
            sock = self.ctx.socket(zmq.DEALER)
            # IMMEDIATE stays 0: with 1, libzmq drops the unread answers of a peer that closes right
            # after acknowledging (the pipe goes with the connection). So up to SNDHWM batches wait in
            # libzmq's pipe while no engine is connected; they are counted as dropped if none comes.
            sock.setsockopt(zmq.SNDHWM, SNDHWM)
            sock.setsockopt(zmq.LINGER, 0)              # the end of stream is acknowledged instead
            sock.setsockopt(zmq.RECONNECT_IVL, 100)
            sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
            sock.setsockopt(zmq.HEARTBEAT_IVL, 1000)    # a dead engine host is noticed in seconds
            sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 5000)
            if self.curve:
                self.curve.apply(sock)
            if self.setup:
                self.setup(sock)
            monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED |
                                              HANDSHAKE_FAILED)
            sock.connect(self.endpoint)
        except (zmq.ZMQError, ValueError) as e:
            self._fatal = ValueError(f"{self.endpoint}: {e}")
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                item = None
                with self._cond:
                    if not self._q and not self._closing and not self._abort:
                        self._cond.wait(0.05)
                    if self._abort or (not self._q and self._closing):
                        break
                    if self._q:
                        item = self._q.popleft()
                        self._queued -= item[1]
                        self._cond.notify_all()
                if item is None:
                    self._service(sock, monitor)
                else:
                    self._send(sock, monitor, item)
            with self._cond:
                while self._q:                          # aborted: what is left is lost
                    item = self._q.popleft()
                    self._queued -= item[1]
                    self._drop(item, "stopped")
            if not self._abort and self.error is None:
                self._end_of_stream(sock, monitor)
            if self.acked is None and not self.up and self._waiting[0]:
                cause = "stopped" if self._abort else "engine_absent"   # still in libzmq's pipe: lost
                with self._cond:
                    self.drop_batches[cause] += self._waiting[0]
                    self.drop_records[cause] += self._waiting[1]
                self.sent_batches -= self._waiting[0]
                self.sent_records -= self._waiting[1]
        finally:
            sock.disable_monitor()
            monitor.close(linger=0)
            sock.close(linger=0)

    def _service(self, sock, monitor) -> None:
        """Connection events and the receiver's answers, without waiting."""
        while monitor.poll(0):
            ev = recv_monitor_message(monitor)
            if ev["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.up = self.ever_up = True
                self.connects += 1
                self._waiting = [0, 0]              # on their way now
            elif ev["event"] == zmq.EVENT_DISCONNECTED:
                self.up = False
                self.disconnects += 1
            elif ev["event"] & HANDSHAKE_FAILED:
                self._handshake_failed(ev["event"], ev["value"])
        while sock.poll(0):
            self._answer(sock.recv_multipart())

    def _handshake_failed(self, event: int, value: int) -> None:
        """A refused key or a security mismatch will not mend by retrying: stop, as for a REJECT.
        Without detail (the server just closed) it may be a restart: only a Curve probe that never
        got through gives up, after a few tries."""
        self.handshake_failures += 1
        if event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL and (
                not self.curve or self.ever_up or self.handshake_failures < HANDSHAKE_TRIES):
            return
        if self.error is None:
            self.error = handshake_failure(event, value)
            self.refused = True
            with self._cond:
                self._cond.notify_all()

    def _answer(self, frames) -> None:
        try:
            hdr = Header.unpack(frames[0])
            info = json.loads(frames[1]) if len(frames) > 1 and frames[1] else {}
        except (WireError, ValueError):
            return
        if hdr.flags & REJECT:
            self.error = str(info.get("error", "rejected the stream"))
        elif hdr.flags & ACK and hdr.epoch == self.epoch and hdr.seq == self.seq:
            self.acked = info

    def _give_up(self) -> str | None:
        """Why the batch in hand cannot wait any longer, or None."""
        if self._abort or self.error is not None:
            return "stopped"
        if self._closing:
            now = time.monotonic()
            if now >= self._deadline:
                return "stopped"
            if not self.lossless and not self.up and (self.ever_up or now - self._started >= self.grace):
                return "engine_absent"
        return None

    def _send(self, sock, monitor, item) -> bool:
        hdr, n, records, _ = item
        payload = records.view(np.uint8)
        while True:
            self._service(sock, monitor)
            try:
                sock.send(hdr.pack(), zmq.SNDMORE | zmq.NOBLOCK)
            except zmq.Again:
                cause = self._give_up()
                if cause:
                    self._drop(item, cause)
                    return False
                zmq.select([monitor], [sock], [], 0.05)
                continue
            sock.send(payload, 0, copy=n < ZERO_COPY_MIN)   # the rest of a multipart never blocks
            self.sent_batches += 1
            self.sent_records += n
            if not self.up:
                self._waiting[0] += 1
                self._waiting[1] += n
            return True

    def _end_of_stream(self, sock, monitor) -> None:
        hdr = Header(probe_id=self.probe_id, shard=self.shard, flags=END_OF_STREAM, epoch=self.epoch,
                     seq=self.seq)
        while True:
            self._service(sock, monitor)
            if self._give_up():
                return
            try:
                sock.send_multipart([hdr.pack(), b""], zmq.NOBLOCK)
                break
            except zmq.Again:
                zmq.select([monitor], [sock], [], 0.05)
        self.eos_sent = True
        while self.acked is None and not self._give_up():
            zmq.select([sock, monitor], [], [], 0.05)
            self._service(sock, monitor)


class Publisher:
    """Records in, batches out: per shard, flushed at `batch` records or `flush_ms`, whichever first.

    The caller passes each decoded array with the shard of each record (probe.shard.Sharder),
    calls `tick()` often (at least every flush_ms) and `close()` once at the end.
    """

    def __init__(self, endpoints, *, probe_id: int = 0, batch: int = 4096, flush_ms: float = 100.0,
                 lossless: bool = False, queue_records: int = 262144, ctx: zmq.Context | None = None,
                 stop: threading.Event | None = None, grace: float = 1.0, setup=None,
                 curve: Curve | None = None):
        self.ctx = ctx or zmq.Context.instance()
        self.batch = batch
        self.flush_s = flush_ms / 1000.0
        self.lossless = lossless
        self.stop = stop or threading.Event()
        self.epoch = int.from_bytes(os.urandom(4), "little")
        per_shard = max(queue_records // max(len(endpoints), 1), 2 * batch)   # one budget for all shards
        self.links = []
        try:
            for shard, ep in enumerate(endpoints):
                self.links.append(Link(self.ctx, ep, shard, probe_id=probe_id, epoch=self.epoch,
                                       queue_records=per_shard, lossless=lossless, stop=self.stop,
                                       grace=grace, setup=setup, curve=curve))
        except ValueError:
            self.abort()
            raise
        n = len(self.links)
        self._pending = [[] for _ in range(n)]
        self._pending_n = [0] * n
        self._since = [0.0] * n

    @property
    def shards(self) -> int:
        return len(self.links)

    @property
    def error(self) -> str | None:
        """The first rejection by an engine, naming the shard."""
        for link in self.links:
            if link.error:
                how = "failed" if link.refused else "rejected the stream"
                return f"shard {link.shard} ({link.endpoint}) {how}: {link.error}"
        return None

    def add(self, records: np.ndarray, shard: np.ndarray | None) -> None:
        if not len(records):
            return
        now = time.monotonic()
        for s, part in enumerate(split(records, shard, self.shards)):
            n = len(part)
            if not n:
                continue
            if n >= self.batch and _owns(part):
                # A big array of its own is sent in slices, without a copy; what waited goes first.
                if self._pending_n[s]:
                    self._cut(s, everything=True)
                full = n - n % self.batch
                for i in range(0, full, self.batch):
                    self.links[s].put(part[i:i + self.batch])
                if full < n:
                    self._pending[s], self._pending_n[s], self._since[s] = [part[full:]], n - full, now
                continue
            if not self._pending_n[s]:
                self._since[s] = now
            self._pending[s].append(part)
            self._pending_n[s] += n
            if self._pending_n[s] >= self.batch:
                self._cut(s, everything=False)

    def tick(self, now: float | None = None) -> None:
        """Flush the shards whose oldest pending record has waited flush_ms."""
        now = time.monotonic() if now is None else now
        for s in range(self.shards):
            if self._pending_n[s] and now - self._since[s] >= self.flush_s:
                self._cut(s, everything=True)

    def flush(self) -> None:
        for s in range(self.shards):
            if self._pending_n[s]:
                self._cut(s, everything=True)

    def _cut(self, s: int, everything: bool) -> None:
        # Always a fresh array: a queued batch must not keep a larger decoder output alive.
        merged = np.concatenate([as_void(p) for p in self._pending[s]]).view(RECORD_DTYPE)
        n = len(merged)
        full = n if everything else n - n % self.batch
        link = self.links[s]
        for i in range(0, full, self.batch):
            link.put(merged[i:min(i + self.batch, full)])
        self._pending[s] = [merged[full:]] if full < n else []
        self._pending_n[s] = n - full

    def close(self, timeout: float) -> None:
        """Flush, then give each shard until `timeout` seconds from now to send everything queued
        and have its end of stream acknowledged."""
        self.flush()
        deadline = time.monotonic() + timeout
        for link in self.links:
            link.finish(deadline)
        for link in self.links:
            link.thread.join(max(0.0, deadline - time.monotonic()) + 1.0)
        for link in self.links:
            if link.thread.is_alive():
                link.abort()
                link.thread.join(1.0)

    def abort(self) -> None:
        for link in self.links:
            link.abort()

    def drops(self) -> dict:
        """cause -> {"batches", "records"} over all shards."""
        out = {c: {"batches": 0, "records": 0} for c in DROP_CAUSES}
        for link in self.links:
            for c in DROP_CAUSES:
                out[c]["batches"] += link.drop_batches[c]
                out[c]["records"] += link.drop_records[c]
        return out

    def shard_stats(self) -> list:
        out = []
        for link in self.links:
            out.append({
                "shard": link.shard, "endpoint": link.endpoint, "connected": link.up,
                "connects": link.connects, "disconnects": link.disconnects,
                "batches": link.seq, "records": link.cut_records,
                "sent_batches": link.sent_batches, "sent_records": link.sent_records,
                "queued_records": link.queued, "queued_max": link.queued_max, "queue_capacity": link.queue_records,
                "lag_s": round(link.lag(), 3), "handshake_failures": link.handshake_failures,
                "drops": {c: {"batches": link.drop_batches[c], "records": link.drop_records[c]}
                          for c in DROP_CAUSES},
                "end_of_stream_sent": link.eos_sent,
                "acknowledged": link.acked is not None, "engine": link.acked, "error": link.error,
            })
        return out


def _owns(part: np.ndarray) -> bool:
    """part is most of the memory it lives in, so queued slices of it cannot keep much more alive."""
    root = part
    while isinstance(root.base, np.ndarray):
        root = root.base
    return root.nbytes <= part.nbytes + part.nbytes // 4


# --- the receiving side --------------------------------------------------------------------------

@dataclass
class Stream:
    """What a receiver knows of one probe's stream to one shard (one epoch: one probe run)."""
    probe_id: int
    shard: int
    epoch: int
    peer: str
    next_seq: int = 0
    batches: int = 0
    records: int = 0
    gaps: int = 0               # times batches were missing
    lost_batches: int = 0       # batches missing in all
    out_of_order: int = 0       # a sequence number below the expected one (duplicate or late)
    ended: bool = False

    def summary(self) -> dict:
        return {"batches": self.batches, "records": self.records, "lost_batches": self.lost_batches,
                "gaps": self.gaps, "out_of_order": self.out_of_order}


@dataclass
class Received:
    header: Header
    records: np.ndarray         # read-only view of the message (empty for an end of stream)
    stream: Stream
    lost: int = 0               # batches missing just before this one
    late: bool = False          # its sequence number was below the expected one
    new_stream: bool = False

    @property
    def end_of_stream(self) -> bool:
        return bool(self.header.flags & END_OF_STREAM)


def authenticator(ctx: zmq.Context, clients: str):
    """A ZAP authenticator on ctx that lets in only the Curve clients whose public keys (*.key)
    are in the directory `clients` (read now)."""
    from zmq.auth.thread import ThreadAuthenticator
    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.configure_curve(domain="*", location=clients)
    return auth


class Receiver:
    """The ROUTER side: binds, validates each message, tracks sequence numbers, acknowledges the
    end of each stream.  recv() returns a Received, None when nothing came in time, and raises
    WireError once for each peer whose messages it cannot read (it tells that peer with REJECT and
    ignores it from then on), and for failed handshakes (a refused Curve key, a security mismatch:
    the first of each kind, then at most every REPORT_EVERY seconds with the count)."""

    REPORT_EVERY = 10.0

    def __init__(self, endpoints, ctx: zmq.Context | None = None, setup=None, curve: Curve | None = None,
                 clients: str | None = None):
        self._own_ctx = ctx is None
        self.ctx = ctx or zmq.Context()
        self.auth = authenticator(self.ctx, clients) if curve and clients else None
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 1000)
        self.sock.setsockopt(zmq.HEARTBEAT_IVL, 1000)
        self.sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 5000)
        if curve:
            curve.apply(self.sock)
        if setup:
            setup(self.sock)
        self.monitor = self.sock.get_monitor_socket(HANDSHAKE_FAILED)
        self.poller = zmq.Poller()
        self.poller.register(self.sock, zmq.POLLIN)
        self.poller.register(self.monitor, zmq.POLLIN)
        self.handshake_failures = Counter()     # reason -> count
        self._reported: dict = {}               # reason -> (time, count) of its last report
        self.endpoints = []
        try:
            for ep in endpoints:
                self.sock.bind(ep)
                self.endpoints.append(self.sock.last_endpoint.decode())
        except zmq.ZMQError as e:
            self._close_monitor()
            self.sock.close(linger=0)
            self._close_auth()
            raise ValueError(f"cannot listen on {ep}: {e}") from None
        self.streams: dict = {}         # (probe_id, shard, epoch) -> Stream
        self.rejected: dict = {}        # peer identity -> reason
        self.rejected_messages = 0
        self.messages = 0

    def close(self) -> None:
        """Close, after at most a second to deliver the last acknowledgements."""
        self._close_monitor()
        self.sock.close()
        self._close_auth()

    def _close_auth(self) -> None:
        if self.auth:
            self.auth.stop()
        if self._own_ctx:
            self.ctx.term()

    def security(self) -> str:
        """What a listener says of its security at start."""
        if self.auth:
            return f"Curve: {len(self.auth.certs.get('*', {}))} authorised client keys"
        return "Curve: any client that has this server's public key" if self.sock.curve_server else "plain"

    def _close_monitor(self) -> None:
        self.sock.disable_monitor()
        self.monitor.close(linger=0)

    def recv(self, timeout_ms: int = 100) -> Received | None:
        ready = dict(self.poller.poll(timeout_ms))
        if self.monitor in ready:
            self._handshake(recv_monitor_message(self.monitor))
        if self.sock not in ready:
            return None
        frames = self.sock.recv_multipart(copy=False)
        self.messages += 1
        ident = frames[0].bytes
        if ident in self.rejected:
            self.rejected_messages += 1
            return None
        hdr = None
        try:
            if len(frames) != 3:
                raise WireError(f"a message of {len(frames) - 1} parts, not 2: not a touchpoint record stream")
            hdr = Header.unpack(frames[1].buffer)
            self._check(hdr, len(frames[2].buffer))
        except WireError as e:
            return self._reject(frames, ident, hdr, e)
        key = (hdr.probe_id, hdr.shard, hdr.epoch)
        st = self.streams.get(key)
        new = st is None
        if new:
            st = self.streams[key] = Stream(hdr.probe_id, hdr.shard, hdr.epoch, self._peer(frames, hdr))
        lost, late = 0, hdr.seq < st.next_seq
        if hdr.seq > st.next_seq:
            lost = hdr.seq - st.next_seq
            st.gaps += 1
            st.lost_batches += lost
        elif hdr.seq < st.next_seq:
            st.out_of_order += 1
        st.next_seq = max(st.next_seq, hdr.seq + 1)
        records = np.frombuffer(frames[2].buffer, RECORD_DTYPE) if hdr.count else np.empty(0, RECORD_DTYPE)
        if hdr.flags & END_OF_STREAM:
            st.ended = True
            ack = Header(probe_id=hdr.probe_id, shard=hdr.shard, flags=END_OF_STREAM | ACK, epoch=hdr.epoch,
                         seq=hdr.seq)
            self.sock.send_multipart([ident, ack.pack(), json.dumps(st.summary()).encode()])
        else:
            st.batches += 1
            st.records += hdr.count
        return Received(hdr, records, st, lost, late, new)

    def _handshake(self, ev: dict) -> None:
        reason = handshake_failure(ev["event"], ev["value"])
        self.handshake_failures[reason] += 1
        now = time.monotonic()
        last, count = self._reported.get(reason, (None, 0))
        if last is not None and now - last < self.REPORT_EVERY:
            return
        self._reported[reason] = (now, self.handshake_failures[reason])
        more = self.handshake_failures[reason] - count - 1
        where = ev.get("endpoint", b"")
        where = where.decode(errors="replace") if isinstance(where, bytes) else str(where)
        raise WireError(f"a peer on {where}: {reason}" + (f" ({more} more since the last report)" if more else ""))

    def _check(self, hdr: Header, payload: int) -> None:
        if hdr.wire != WIRE_VERSION:
            raise WireError(f"wire header version {hdr.wire}; this side reads version {WIRE_VERSION}")
        if hdr.schema != SCHEMA_VERSION:
            raise WireError(f"record schema version {hdr.schema}; this side reads version {SCHEMA_VERSION} "
                            f"(run the same touchpoint release on probes and engines)")
        if hdr.record_size != RECORD_DTYPE.itemsize:
            raise WireError(f"{hdr.record_size}-byte records; schema {SCHEMA_VERSION} records are "
                            f"{RECORD_DTYPE.itemsize} bytes")
        if payload != hdr.count * hdr.record_size:
            raise WireError(f"{payload} bytes of records for a count of {hdr.count} "
                            f"({hdr.count * hdr.record_size} expected)")

    def _reject(self, frames, ident: bytes, hdr: Header | None, err: WireError):
        who = self._peer(frames, hdr)
        reason = str(err)
        if len(self.rejected) < 4096:
            self.rejected[ident] = reason
        self.rejected_messages += 1
        nack = Header(probe_id=hdr.probe_id if hdr else 0, shard=hdr.shard if hdr else 0, flags=REJECT,
                      epoch=hdr.epoch if hdr else 0, seq=hdr.seq if hdr else 0)
        self.sock.send_multipart([ident, nack.pack(), json.dumps({"error": reason}).encode()])
        raise WireError(f"{who}: {reason}")

    @staticmethod
    def _peer(frames, hdr: Header | None) -> str:
        try:
            addr = frames[1].get("Peer-Address") if len(frames) > 1 else ""
        except zmq.ZMQError:
            addr = ""
        name = f"probe {hdr.probe_id}" if hdr is not None else "peer " + frames[0].bytes.hex()
        return f"{name} at {addr}" if addr else name
