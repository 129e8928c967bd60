"""A probe run: a capture source, decoded records sharded by subscriber and published to the
engine shards; a status line while it runs, a summary and an exit code when it ends.

    source = PcapReplay(paths, options, speed=0.0, loop=1, stop=stop)
    code = ProbeRun(source, ProbeSettings(push=["tcp://engine:5555"]), stop=stop).run()
"""
import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass

from .logline import write_line
from .shard import KeyMap, Sharder
from .signals import on_signals
from .transport.bus import BusPublisher
from .transport.sending import DROP_CAUSES, Publisher

EXIT_OK = 0
EXIT_INPUT = 1          # a capture could not be read (to its end)
EXIT_USAGE = 2          # click's code for a usage error
EXIT_ENGINE = 3         # lossless and an engine never acknowledged the end of stream, or one rejected it


@dataclass
class ProbeSettings:
    push: list
    probe_id: int = 0
    batch: int = 4096
    flush_ms: float = 100.0
    lossless: bool = False
    queue: int = 262144             # records queued (all shards together) before drops start
    ack_timeout: float = 10.0       # seconds, at the end, for what is queued and the acknowledgements
    status_interval: float = 5.0    # seconds between status lines; 0: none
    stats_json: str | None = None
    key_map: KeyMap | None = None
    bindings: int = 1 << 20
    curve: object = None            # probe.transport.Curve: encrypt the links to the engines
    token: bytes | None = None      # or authenticate them (probe.transport.load_token)
    bus: tuple = ()                 # NATS servers: publish to JetStream instead (probe.transport.bus)
    partitions: int = 16            # the bus's partitions (fixed for a deployment)
    bus_user: str | None = None
    bus_password: str | None = None
    bus_replicas: int = 1           # the records' stream's replicas, if this probe makes it


class ProbeRun:
    METRICS_EVERY = 1.0                             # seconds between snapshots for the metrics endpoint

    def __init__(self, source, settings: ProbeSettings, stop: threading.Event | None = None, err=None,
                 name: str = "touchpoint probe", metrics=None):
        self.source = source
        self.metrics = metrics                      # probe.metrics.MetricsServer, or None
        self.cfg = settings
        self.stop = stop or threading.Event()
        self.err = err or sys.stderr
        self.name = name
        self.sharder = Sharder(settings.partitions if settings.bus else len(settings.push), settings.key_map,
                               settings.bindings)
        self.publisher: Publisher | None = None
        self.records = 0
        self.source_s = 0.0                         # time in the source: reading, decoding, pacing
        self.publish_s = 0.0                        # time sharding, batching and queueing (capture thread)
        self.started = time.monotonic()
        self.finished: float | None = None
        self.interrupted = False
        self.code: int | None = None
        self._last = (self.started, 0, 0)           # (time, packets, records) of the last status line

    # the run

    def run(self) -> int:
        cfg = self.cfg
        if cfg.bus:
            self.publisher = BusPublisher(cfg.bus, partitions=cfg.partitions, probe_id=cfg.probe_id, batch=cfg.batch,
                                          flush_ms=cfg.flush_ms, lossless=cfg.lossless, queue_records=cfg.queue,
                                          stop=self.stop, user=cfg.bus_user, password=cfg.bus_password,
                                          replicas=cfg.bus_replicas)
        else:
            self.publisher = Publisher(cfg.push, probe_id=cfg.probe_id, batch=cfg.batch, flush_ms=cfg.flush_ms,
                                       lossless=cfg.lossless, queue_records=cfg.queue, stop=self.stop,
                                       curve=cfg.curve, token=cfg.token)
        restore = self._signals()
        try:
            self._loop()
            self.publisher.close(cfg.ack_timeout)
        finally:
            restore()
        self.finished = time.monotonic()
        self.code = self._exit_code()
        self._summary()
        self._write_stats()
        if self.metrics:
            self.metrics.update(self.snapshot())
            self.metrics.close()
        return self.code

    def _loop(self) -> None:
        pub, sharder = self.publisher, self.sharder
        next_status = self.started + self.cfg.status_interval if self.cfg.status_interval else float("inf")
        next_metrics = self.started if self.metrics else float("inf")
        clock = time.perf_counter
        source = iter(self.source)
        try:
            self._run_source(source, pub, sharder, next_status, next_metrics, clock)
        finally:
            if hasattr(source, "close"):            # a generator: let the source save where it got to
                source.close()

    def _run_source(self, source, pub, sharder, next_status, next_metrics, clock) -> None:
        while True:
            t0 = clock()
            records = next(source, None)
            t1 = clock()
            self.source_s += t1 - t0
            if records is None:
                break
            if len(records):
                pub.add(records, sharder.assign(records))
                self.records += len(records)
            now = time.monotonic()
            pub.tick(now)
            self.publish_s += clock() - t1
            if now >= next_status:
                self._status(now)
                self._write_stats()
                next_status = now + self.cfg.status_interval
            if now >= next_metrics:
                self.metrics.update(self.snapshot())
                next_metrics = now + self.METRICS_EVERY
            if pub.error:               # stopped, the source still hands over what it holds, then ends
                break

    def _signals(self):
        def interrupt():
            if self.stop.is_set():                  # the second time: do not wait for the engines
                if self.publisher:
                    self.publisher.abort()
            self.interrupted = True
            self.stop.set()

        return on_signals({signal.SIGINT: interrupt, signal.SIGTERM: interrupt})

    def _exit_code(self) -> int:
        pub = self.publisher
        if pub.error:
            return EXIT_ENGINE
        if self.cfg.lossless and (not all(link.acked is not None for link in pub.links) or self._engine_lost()):
            return EXIT_ENGINE
        if self.source.errors:
            return EXIT_INPUT
        return EXIT_OK

    # what it tells

    def snapshot(self) -> dict:
        """Everything the probe counts, as written to --stats-json."""
        now = self.finished or time.monotonic()
        stats = self.source.stats()
        pub = self.publisher
        shards = pub.shard_stats() if pub else []
        return {
            "probe_id": self.cfg.probe_id,
            "running": self.finished is None,
            "elapsed_s": round(now - self.started, 3),
            "packets": stats.frames,
            "bytes": stats.bytes,
            "records": self.records,
            "source_s": round(self.source_s, 4),
            "publish_s": round(self.publish_s, 4),
            "rounds": getattr(self.source, "rounds", None),
            "errors": list(self.source.errors),
            "source": self.source.counters() if hasattr(self.source, "counters") else None,
            "capture": _capture(self.source),
            "drops": pub.drops() if pub else {},
            "shards": shards,
            "keys": self.sharder.counts(),
            "layers": {k: v for k, v in stats.by_layer().items() if any(v.values())},
            "anomalies": {a.name: n for a, n in stats.anomalies.most_common()},
            "interrupted": self.interrupted,
            "exit_code": self.code,
        }

    def _status(self, now: float) -> None:
        t0, p0, r0 = self._last
        stats = self.source.stats()
        packets = stats.frames
        dt = max(now - t0, 1e-9)
        pub = self.publisher
        up = sum(link.up for link in pub.links)
        queued = "/".join(f"{link.queued:,}" for link in pub.links)
        lag = "/".join(f"{link.lag(now):.1f}" for link in pub.links)
        line = (f"{self.name} {self.cfg.probe_id}: {now - self.started:.0f} s  "
                f"{packets:,} packets ({(packets - p0) / dt:,.0f}/s)  "
                f"{self.records:,} records ({(self.records - r0) / dt:,.0f}/s)  "
                f"anomalies {sum(stats.anomalies.values()):,}  {_kernel(self.source)}"
                f"queued {queued} (lag {lag} s)  engines up {up}/{len(pub.links)}  drops: {_drops(pub.drops())}")
        write_line(self.err, line)
        self._last = (now, packets, self.records)

    def _engine_lost(self) -> int:
        """Batches the engines said, at the end of stream, they never received."""
        return sum((link.acked or {}).get("lost_batches", 0) for link in self.publisher.links)

    def _summary(self) -> None:
        pub = self.publisher
        stats = self.source.stats()
        elapsed = self.finished - self.started
        drops = _drops(pub.drops())
        engine_lost = self._engine_lost()
        if engine_lost:                 # lost between here and there: never "none"
            drops = ("none here" if drops == "none" else drops) + f", {engine_lost:,} batches the engines never got"
        acked = sum(link.acked is not None for link in pub.links)
        per_shard = "/".join(str(link.seq) for link in pub.links)
        how = "stopped" if self.interrupted else "done"
        line = (f"{self.name} {self.cfg.probe_id}: {how} in {elapsed:.{2 if elapsed < 10 else 0}f} s: "
                f"{stats.frames:,} packets, "
                f"{self.records:,} records, batches per shard {per_shard}, {_kernel(self.source, ', ')}"
                f"drops: {drops}, end of stream acknowledged by {acked}/{len(pub.links)} shards")
        if pub.error:
            line += f"; {pub.error}"
        elif self.cfg.lossless and acked < len(pub.links):
            late = [f"{link.shard} ({link.endpoint})" for link in pub.links if link.acked is None]
            line += (f"; --lossless: no acknowledgement within --ack-timeout {self.cfg.ack_timeout:g} s "
                     f"from shard {', '.join(late)}")
        elif self.cfg.lossless and engine_lost:
            line += "; --lossless: the engines missed batches"
        for e in self.source.errors:
            write_line(self.err, f"{self.name}: {e}")
        write_line(self.err, line)

    def _write_stats(self) -> None:
        path = self.cfg.stats_json
        if not path:
            return
        tmp = f"{path}.tmp{os.getpid()}"
        try:
            with open(tmp, "w") as f:
                json.dump(self.snapshot(), f, indent=1)
                f.write("\n")
            os.replace(tmp, path)
        except OSError as e:
            write_line(self.err, f"{self.name}: --stats-json {path}: {e.strerror or e}")


def _capture(source) -> dict | None:
    """Kernel and ring counters of a live source."""
    return source.capture_stats() if hasattr(source, "capture_stats") else None


def _kernel(source, sep: str = "  ") -> str:
    """'kernel drops 0 (ring full 0)' and sep for a live source, else ''."""
    c = _capture(source)
    return f"kernel drops {c['kernel_drops']:,} (ring full {c['ring_full']:,}){sep}" if c else ""


def _drops(drops: dict) -> str:
    """'none', or 'engine absent 2 batches (144 records), queue full ...'."""
    parts = [f"{c.replace('_', ' ')} {drops[c]['batches']:,} batches ({drops[c]['records']:,} records)"
             for c in DROP_CAUSES if drops.get(c, {}).get("batches")]
    return ", ".join(parts) or "none"
