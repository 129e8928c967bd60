"""Record batches on NATS JetStream (`touchpoint probe --bus nats://HOST:4222`): the deployment
beyond one host, beside the ZeroMQ path to fixed engine shards (docs/deployment.md).

The records go to the stream TOUCHPOINT_RECORDS, subject `touchpoint.records.<partition>`: P
partitions, fixed for a deployment (the stream's description holds P, `partitions=P`; the first
probe to find no stream makes it, with `--partitions` and `--bus-replicas`), a record's partition
its subscriber key's shard of P (probe.shard). A message is one batch as on the ZeroMQ path: the
48-byte wire header (probe.transport.wire, the partition in its shard field) and the records.
It carries a message id, probe-epoch-partition-seq: JetStream stores a message it has seen within
its duplicate window once, so a batch published again after its acknowledgement was lost is
stored once. A batch counts as sent when JetStream acknowledged it (stored, on R replicas).
Batches go WINDOW at a time: one published again after a failure may be stored after a later one
of its partition, so a reader orders a partition by the header's seq.

A probe that cannot reach the bus keeps its batches in the queue (`--queue` records) and, past it,
drops the oldest, counted as `engine_absent` (the bus is away) or `queue_full`; `--lossless` waits
instead. At the end, each partition gets an end-of-stream message once everything before it was
acknowledged.
"""
import asyncio
import collections
import os
import threading
import time

import numpy as np

from ..record import RECORD_DTYPE
from .sending import DROP_CAUSES, Publisher
from .wire import END_OF_STREAM, Header, batch_header

STREAM = "TOUCHPOINT_RECORDS"
SUBJECT = "touchpoint.records."
MAX_PAYLOAD = 1 << 20               # nats-server's default max_payload: a batch is cut to fit
WINDOW = 32                         # publishes awaiting their acknowledgement
RETRY_S = 0.5                       # after a publish that failed
PUBLISH_TIMEOUT_S = 2.0             # a publish not acknowledged by then is made again (the same message id)
DUPLICATE_WINDOW_S = 600            # a batch published again this much later is stored again
MAX_AGE_S = 7 * 86400               # the stream keeps a week: an engine's restart, a long outage


class Partition:
    """One partition's side of the probe: what Publisher calls a link (put, the counters the
    status line and --stats-json show)."""

    def __init__(self, bus: "BusPublisher", n: int):
        self.bus, self.shard = bus, n
        self.endpoint = f"{bus.servers[0]} {SUBJECT}{n}"
        self.seq = 0                            # batches cut
        self.cut_records = self.sent_batches = self.sent_records = 0
        self.queued = 0                         # records waiting for the bus, or its acknowledgement
        self.queued_max = 0
        self.oldest = None                      # monotonic time the oldest queued batch was cut
        self.acked = None                       # {"lost_batches": 0} once the end of stream is stored
        self.error = None
        self.drop_batches = dict.fromkeys(DROP_CAUSES, 0)      # what Publisher.drops() adds up
        self.drop_records = dict.fromkeys(DROP_CAUSES, 0)
        self.resent_batches = 0
        self.eos_sent = False

    @property
    def up(self) -> bool:
        return self.bus.connected

    def lag(self, now: float | None = None) -> float:
        return 0.0 if self.oldest is None else (now or time.monotonic()) - self.oldest

    def put(self, records: np.ndarray) -> None:
        per = (MAX_PAYLOAD - 1024) // records.dtype.itemsize
        for i in range(0, len(records), per):
            self.bus.enqueue(self, records[i:i + per])


class BusPublisher(Publisher):
    """Publisher's batching (add, tick, flush) over P partitions of the bus; one thread with an
    asyncio loop publishes, WINDOW at a time."""

    def __init__(self, servers, *, partitions: int, probe_id: int = 0, batch: int = 4096, flush_ms: float = 100.0,
                 lossless: bool = False, queue_records: int = 262144, stop: threading.Event | None = None,
                 user: str | None = None, password: str | None = None, replicas: int = 1):
        self.servers, self.user, self.password, self.replicas = list(servers), user, password, replicas
        self.partitions, self.probe_id = partitions, probe_id
        self.batch, self.flush_s, self.lossless = batch, flush_ms / 1000.0, lossless
        self.stop = stop or threading.Event()
        self.epoch = int.from_bytes(os.urandom(4), "little")
        self.budget = max(queue_records, 2 * batch)
        self.connected = False
        self.disconnects = 0
        self.failure = None                     # why the bus refused this probe
        self.items = collections.deque()        # (partition, header, payload) in order
        self.queued = 0
        self.cond = threading.Condition()
        self.closing = False
        self.aborted = False
        self.links = [Partition(self, n) for n in range(partitions)]
        self._pending = [[] for _ in range(partitions)]
        self._pending_n = [0] * partitions
        self._since = [0.0] * partitions
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="probe-bus", daemon=True)
        self.thread.start()

    @property
    def error(self) -> str | None:
        return self.failure

    # ---- the capture thread's side ------------------------------------------------------------

    def enqueue(self, part: Partition, records: np.ndarray, flags: int = 0) -> None:
        h = batch_header(records, probe_id=self.probe_id, shard=part.shard, epoch=self.epoch, seq=part.seq,
                         flags=flags)
        part.seq += 1
        part.cut_records += len(records)
        payload = h.pack() + records.tobytes()
        with self.cond:
            if self.lossless:
                while self.queued + len(records) > self.budget and self.queued and not self.aborted:
                    self.cond.wait(0.1)
            else:
                while self.queued + len(records) > self.budget and self.items:
                    self._drop(self.items.popleft(), "queue_full" if self.connected else "engine_absent")
            self.items.append((part, h, payload))
            self._count(part, len(records))

    def _count(self, part: Partition, n: int) -> None:
        self.queued += n
        part.queued += n
        part.queued_max = max(part.queued_max, part.queued)
        if part.oldest is None:
            part.oldest = time.monotonic()

    def _drop(self, item, cause: str) -> None:
        part, h, _ = item
        self._done(part, h.count)
        part.drop_batches[cause] += 1
        part.drop_records[cause] += h.count

    def _done(self, part: Partition, n: int) -> None:
        self.queued -= n
        part.queued -= n
        if not part.queued:
            part.oldest = None
        self.cond.notify_all()

    def close(self, timeout: float) -> None:
        """Flush; until `timeout` seconds from now, publish what is queued, then each partition's
        end of stream."""
        self.flush()
        deadline = time.monotonic() + timeout
        with self.cond:                 # the ends go once all before them is stored: none overtakes a batch
            while self.queued and not self.aborted and time.monotonic() < deadline:
                self.cond.wait(0.1)
        for part in self.links:
            self.enqueue(part, np.zeros(0, RECORD_DTYPE), END_OF_STREAM)
        with self.cond:
            self.closing = True
        self.thread.join(max(0.0, deadline - time.monotonic()))
        if self.thread.is_alive():
            self.abort()
            self.thread.join(2.0)

    def abort(self) -> None:
        with self.cond:
            self.aborted = True
            self.cond.notify_all()

    def shard_stats(self) -> list:
        return [{"partition": p.shard, "subject": f"{SUBJECT}{p.shard}", "connected": p.up, "batches": p.seq,
                 "records": p.cut_records, "sent_batches": p.sent_batches, "sent_records": p.sent_records,
                 "queued_records": p.queued, "queued_max": p.queued_max, "lag_s": round(p.lag(), 3),
                 "resent_batches": p.resent_batches, "bus_disconnects": self.disconnects,
                 "drops": {c: {"batches": p.drop_batches[c], "records": p.drop_records[c]} for c in DROP_CAUSES},
                 "end_of_stream_sent": p.eos_sent, "acknowledged": p.acked is not None, "error": p.error}
                for p in self.links]

    # ---- the bus's side -----------------------------------------------------------------------

    async def _main(self) -> None:
        import nats
        from nats.errors import Error as NatsError
        nc = None
        while nc is None and not self.aborted:
            # nats-py tries again by itself, a refusal of the credentials too: that one comes to _said
            task = asyncio.ensure_future(nats.connect(
                self.servers, user=self.user, password=self.password, connect_timeout=2, max_reconnect_attempts=-1,
                reconnect_time_wait=RETRY_S, allow_reconnect=True, error_cb=self._said,
                disconnected_cb=self._down, reconnected_cb=self._up))
            while not task.done() and not self.aborted:
                await asyncio.wait([task], timeout=0.2)
            if not task.done():
                task.cancel()
                return
            try:
                nc = task.result()
            except (NatsError, OSError, asyncio.TimeoutError):
                await asyncio.sleep(RETRY_S)
        if nc is None:
            return
        self.connected = True
        try:
            js = nc.jetstream()
            if await self._stream(js):
                await self._publish(js)
        finally:
            self.connected = False
            await nc.close()

    async def _said(self, e) -> None:
        """What the connection reports: a server down is tried again, a refusal is the end."""
        if "authorization" in str(e).lower():
            self._refused(f"the bus refused the credentials ({e}): check --bus-credentials")

    async def _down(self) -> None:
        self.connected = False
        self.disconnects += 1

    async def _up(self) -> None:
        self.connected = True

    async def _stream(self, js) -> bool:
        """The records' stream, made if there is none; refused if it has another partition count."""
        from nats.js.api import StorageType, StreamConfig
        from nats.js.errors import NotFoundError
        while not self.aborted:
            try:
                info = await js.stream_info(STREAM)
                break
            except NotFoundError:
                try:
                    info = await js.add_stream(StreamConfig(
                        name=STREAM, subjects=[SUBJECT + "*"], description=f"partitions={self.partitions}",
                        storage=StorageType.FILE, num_replicas=self.replicas, max_age=MAX_AGE_S,
                        duplicate_window=DUPLICATE_WINDOW_S, max_msg_size=MAX_PAYLOAD))
                    break
                except Exception:       # noqa: BLE001 - made by another probe meanwhile, or no leader yet: again
                    pass
            except Exception:               # noqa: BLE001 - no JetStream yet (a cluster electing its leader): again
                pass
            await asyncio.sleep(RETRY_S)
        else:
            return False
        got = (info.config.description or "").removeprefix("partitions=")
        if got != str(self.partitions):
            self._refused(f"the stream {STREAM} has {got or 'an unknown number of'} partitions, not --partitions "
                          f"{self.partitions}: every probe of a deployment gives the same")
            return False
        return True

    def _refused(self, why: str) -> None:
        self.failure = why
        for p in self.links:
            p.error = why
        self.abort()

    async def _publish(self, js) -> None:
        """Everything queued, WINDOW at a time, in order; what failed goes back to the front, to be
        published again after RETRY_S (its message id makes it one message); until closed and
        drained, or aborted. A batch in flight is never dropped for room."""
        while not self.aborted:
            with self.cond:
                window = [self.items.popleft() for _ in range(min(WINDOW, len(self.items)))]
                ending = self.closing and not window
            if ending:
                return
            if not window:
                await asyncio.sleep(0.005)
                continue
            results = await asyncio.gather(*(self._one(js, item) for item in window), return_exceptions=True)
            failed = [item for item, ok in zip(window, results) if ok is not True]
            with self.cond:
                self.items.extendleft(reversed(failed))
                for item, ok in zip(window, results):
                    part, h, _ = item
                    if ok is not True:
                        part.resent_batches += 1
                        continue
                    part.sent_batches += 1
                    part.sent_records += h.count
                    if h.flags & END_OF_STREAM:
                        part.eos_sent, part.acked = True, {"lost_batches": 0}
                    self._done(part, h.count)
            if failed:
                await asyncio.sleep(RETRY_S)

    async def _one(self, js, item) -> bool:
        part, h, payload = item
        await js.publish(f"{SUBJECT}{part.shard}", payload, timeout=PUBLISH_TIMEOUT_S,
                         headers={"Nats-Msg-Id": f"{self.probe_id}-{self.epoch}-{part.shard}-{h.seq}"})
        return True


def read_batch(data: bytes) -> tuple:
    """A bus message: (Header, records) (probe.record.RECORD_DTYPE)."""
    h = Header.unpack(data[:48])
    return h, np.frombuffer(data, RECORD_DTYPE, h.count, 48)
