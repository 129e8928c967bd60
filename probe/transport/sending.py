"""The probe's side of the transport: per engine shard a bounded queue and a sender thread (Link),
and the batching of decoded records by shard (Publisher)."""
import json
import os
import threading
import time
from collections import Counter, deque

import numpy as np
import zmq
from zmq.utils.monitor import recv_monitor_message

from ..record import RECORD_DTYPE
from ..shard import as_void, split
from . import HANDSHAKE_FAILED, HANDSHAKE_TRIES, Curve, handshake_failure, secure
from .wire import ACK, END_OF_STREAM, REJECT, Header, WireError, batch_header

ZERO_COPY_MIN = 1000        # records; smaller batches are faster copied than handed over
SNDHWM = 4                  # messages in libzmq's pipe per shard, on top of the probe's queue
DROP_CAUSES = ("queue_full", "engine_absent", "stopped")


class Link:
    """One engine shard: a bounded queue of batches and the thread that sends them over a DEALER.

    A batch sent is kept until the receiver acknowledges it (an engine: once it is in its journal,
    control.journal); when the connection drops, the socket is made anew (what libzmq still held
    for the old connection goes with it) and every batch not acknowledged is sent again first, so
    an engine killed and restarted gets them all; it drops the ones it had already.
    `put` (the capture thread) never blocks unless lossless: when queued and unacknowledged batches
    would hold more than `queue_records`, the oldest unacknowledged are forgotten first (they were
    sent), then the oldest queued are dropped - counted as engine_absent when the engine is not
    connected, else queue_full - so the newest events, the ones that still matter, get through.
    Lossless, `put` waits instead: the engine's acknowledgements are the probe's credit.
    The sender thread owns the socket: it sends, watches the connection (socket monitor) and reads
    what the receiver answers (ACK, REJECT).
    """

    def __init__(self, ctx: zmq.Context, endpoint: str, shard: int, *, probe_id: int, epoch: int,
                 queue_records: int, lossless: bool, stop: threading.Event, grace: float = 1.0,
                 setup=None, curve: Curve | None = None, token: bytes | None = None):
        self.ctx, self.endpoint, self.shard = ctx, endpoint, shard
        self.probe_id, self.epoch = probe_id, epoch
        self.queue_records, self.lossless, self.stop = queue_records, lossless, stop
        self.grace = grace                  # at the end, how long a never-connected link is waited for
        self.setup = setup                  # called with the socket before connect
        self.curve, self.token = curve, token
        self.mechanism = "none"
        self.handshake_failures = 0
        self.refused = False                # the error is a failed handshake, not a REJECT
        self.seq = 0                        # batches cut so far: the next sequence number
        self.cut_records = 0
        self.sent_batches = self.sent_records = 0
        self.resent_batches = 0             # sent again after a reconnection
        self._sent_seq = 0                  # below it: sent before
        self.drop_batches = Counter()
        self.drop_records = Counter()
        self.up = False                     # engine connected (ZMTP handshake done)
        self.ever_up = False
        self.connects = self.disconnects = 0
        self.acked: dict | None = None      # what the engine said it received, once it acknowledged
        self.error: str | None = None       # the engine's reason for rejecting the stream
        self.eos_sent = False
        self._q: deque = deque()
        self._queued = 0
        self._unacked: deque = deque()      # sent, not acknowledged: (hdr, n, records, t)
        self._unacked_n = 0
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

    @property
    def unacked(self) -> int:
        return self._unacked_n

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
                while self._queued + self._unacked_n and self._queued + self._unacked_n + n > self.queue_records \
                        and not self.stop.is_set() and not self._abort and self.error is None:
                    self._cond.wait(0.1)
            else:
                while self._unacked and self._queued + self._unacked_n + n > self.queue_records:
                    self._unacked_n -= self._unacked.popleft()[1]
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

    def _socket(self):
        sock = self.ctx.socket(zmq.DEALER)
        # IMMEDIATE stays 0: with 1, libzmq drops the unread answers of a peer that closes right
        # after acknowledging (the pipe goes with the connection).
        sock.setsockopt(zmq.SNDHWM, SNDHWM)
        sock.setsockopt(zmq.LINGER, 0)              # what is not acknowledged is sent again instead
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        sock.setsockopt(zmq.HEARTBEAT_IVL, 1000)    # a dead engine host is noticed in seconds
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 5000)
        self.mechanism = secure(sock, self.endpoint, self.curve, self.token, server=False)
        if self.setup:
            self.setup(sock)
        monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED |
                                          HANDSHAKE_FAILED)
        try:
            sock.connect(self.endpoint)
        except (zmq.ZMQError, ValueError):
            self._close(sock, monitor)
            raise
        return sock, monitor

    @staticmethod
    def _close(sock, monitor) -> None:
        sock.disable_monitor()
        monitor.close(linger=0)
        sock.close(linger=0)

    def _run(self) -> None:
        try:
            self._sock = self._socket()
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
                    if self._abort or self.error is not None:
                        break
                    if self._q:
                        item = self._q.popleft()
                        self._queued -= item[1]
                        self._cond.notify_all()
                if item is not None:
                    self._send(item)
                elif self._closing:
                    if self._end_of_stream():
                        break
                else:
                    self._service()
            self._give_back()
        finally:
            self._close(*self._sock)

    def _give_back(self) -> None:
        """At the end, what is left is lost: queued (aborted), or sent and never acknowledged."""
        cause = "stopped" if self._abort or self.error is not None or self.ever_up else "engine_absent"
        with self._cond:
            while self._q:
                item = self._q.popleft()
                self._queued -= item[1]
                self._drop(item, "stopped")
            if self.acked is None:
                for item in self._unacked:
                    self._drop(item, cause)
                    self.sent_batches -= 1
                    self.sent_records -= item[1]
            self._unacked.clear()
            self._unacked_n = 0

    def _service(self) -> None:
        """Connection events and the receiver's answers, without waiting."""
        sock, monitor = self._sock
        while monitor.poll(0):
            self._answers(sock)             # what came before an event is read before it
            ev = recv_monitor_message(monitor)
            if ev["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.up = self.ever_up = True
                self.connects += 1
            elif ev["event"] == zmq.EVENT_DISCONNECTED:
                self.up = False
                self.disconnects += 1
                if self.acked is None:      # a receiver that ended our stream and left needs nothing more
                    self._reconnect()
                    return
            elif ev["event"] & HANDSHAKE_FAILED:
                self._handshake_failed(ev["event"], ev["value"])
        self._answers(sock)

    def _answers(self, sock) -> None:
        while sock.poll(0):
            self._answer(sock.recv_multipart())

    def _reconnect(self) -> None:
        """A new socket, and what was not acknowledged queued again ahead of the rest."""
        self._close(*self._sock)
        self._sock = self._socket()
        self.eos_sent = False
        with self._cond:
            again = list(self._unacked)
            self._unacked.clear()
            self._unacked_n = 0
            self._q.extendleft(reversed(again))
            self._queued += sum(item[1] for item in again)
            self.resent_batches += len(again)

    def _requeue(self, item) -> None:
        with self._cond:
            at = 0
            while at < len(self._q) and self._q[at][0].seq < item[0].seq:
                at += 1
            self._q.insert(at, item)
            self._queued += item[1]

    def _handshake_failed(self, event: int, value: int) -> None:
        """A refused key or a security mismatch will not mend by retrying: stop, as for a REJECT.
        Without detail (the server just closed) it may be a restart: only a Curve probe that never
        got through gives up, after a few tries."""
        self.handshake_failures += 1
        if event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL and (
                self.mechanism != "curve" or self.ever_up or self.handshake_failures < HANDSHAKE_TRIES):
            return
        if self.error is None:
            self.error = handshake_failure(event, value, self.mechanism)
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
        elif hdr.flags & ACK and hdr.epoch == self.epoch:
            if hdr.flags & END_OF_STREAM:
                if hdr.seq == self.seq:
                    self.acked = info
                return
            with self._cond:                # batches below hdr.seq are the receiver's now
                while self._unacked and self._unacked[0][0].seq < hdr.seq:
                    self._unacked_n -= self._unacked.popleft()[1]
                self._cond.notify_all()

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

    def _send(self, item) -> bool:
        hdr, n, records, _ = item
        payload = records.view(np.uint8)
        while True:
            sock = self._sock
            self._service()
            if self._sock is not sock:          # reconnected: the batches sent again go before this one
                self._requeue(item)
                return False
            sock, monitor = self._sock
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
            if hdr.seq >= self._sent_seq:                  # a first sending, not a resending
                self._sent_seq = hdr.seq + 1
                self.sent_batches += 1
                self.sent_records += n
            with self._cond:
                self._unacked.append(item)
                self._unacked_n += n
            return True

    def _end_of_stream(self) -> bool:
        """Send the end of stream (again after a reconnection) and wait a moment for its
        acknowledgement. True: done (acknowledged, or given up)."""
        self._service()
        if self._q:
            return False                    # a reconnection queued batches again: those first
        if self.acked is not None:
            return True
        if self._give_up():
            return True
        sock, monitor = self._sock
        if not self.eos_sent:
            hdr = Header(probe_id=self.probe_id, shard=self.shard, flags=END_OF_STREAM, epoch=self.epoch,
                         seq=self.seq)
            try:
                sock.send_multipart([hdr.pack(), b""], zmq.NOBLOCK)
                self.eos_sent = True
            except zmq.Again:
                pass
        zmq.select([sock, monitor], [], [], 0.05)
        return False


class Publisher:
    """Records in, batches out: per shard, flushed at `batch` records or `flush_ms`, whichever first.

    The caller passes each decoded array with the shard of each record (probe.shard.Sharder),
    calls `tick()` often (at least every flush_ms) and `close()` once at the end.
    """

    def __init__(self, endpoints, *, probe_id: int = 0, batch: int = 4096, flush_ms: float = 100.0,
                 lossless: bool = False, queue_records: int = 262144, ctx: zmq.Context | None = None,
                 stop: threading.Event | None = None, grace: float = 1.0, setup=None,
                 curve: Curve | None = None, token: bytes | None = None):
        """token: what tcp links without Curve authenticate with (probe.transport.load_token)."""
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
                                       grace=grace, setup=setup, curve=curve, token=token))
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
                "queued_records": link.queued, "unacknowledged_records": link.unacked,
                "resent_batches": link.resent_batches, "queued_max": link.queued_max,
                "queue_capacity": link.queue_records,
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

