"""Live capture: Linux interfaces through AF_PACKET TPACKET_V3 rings (probe._ring), decoded into
record arrays - the capture source of `touchpoint probe --iface`, beside PcapReplay.

    source = LiveCapture(["eth1", "eth2"], options, workers=2, ring_mb=64, stop=stop)
    code = ProbeRun(source, settings, stop=stop).run()

Each worker is a thread with one ring on every interface and a decoder of its own. The ring is
read as a pcap byte stream: each block the kernel hands over is copied out as pcap records
(without the GIL) and given back, then decoded (without the GIL too), so the workers run on as
many cores. With more than one worker, the rings of an interface form a PACKET_FANOUT group that
spreads packets by flow hash (both directions of a flow, and all fragments of a datagram, go to
one worker), so a TCAP dialogue or a GTP transaction is seen whole by one decoder. What the
workers decode goes to the one ProbeRun that iterates this source: one publisher, one sharder,
one probe id and one sequence of batches per shard, exactly as for a replay; only `frame`
differs, counting the packets of the worker that decoded the record.
"""
import errno
import queue
import threading
from typing import Iterator

import numpy as np

from . import bpf
from .decode import CaptureError, Decoder, Options, Stats
from .record import RECORD_DTYPE

EMPTY = np.empty(0, RECORD_DTYPE)
DONE = None


class LiveError(Exception):
    """An interface cannot be captured on: `usage` when the command line is wrong (no such
    interface, a filter that does not compile), else the machine refuses (permission, memory)."""

    def __init__(self, message: str, option: str = "--iface", usage: bool = False):
        super().__init__(message)
        self.option = option
        self.usage = usage


class LiveCapture:
    """Packets of `ifaces` from now until `stop` is set, decoded into record arrays.

    bpf: None keeps what the decoder reads (bpf.default_filter); "" keeps everything; any other
    expression is compiled by libpcap. ring_mb: the ring of each socket (a worker has one per
    interface), in 1 MiB blocks that the kernel hands over when full or after retire_ms.
    Opening happens here, so a missing interface or permission is an error before anything runs.
    """

    POLL_MS = 100               # the longest a worker waits for packets before it looks at `stop`
    BUFFER = 4 << 20            # bytes of pcap records copied out of the rings per read (>= one block each)
    HANDOFF = 64                # record arrays waiting for the publisher; then the workers wait and the rings fill

    def __init__(self, ifaces, options: Options | None = None, *, workers: int = 1, ring_mb: int = 64,
                 promisc: bool = True, bpf_expr: str | None = None, retire_ms: int = 50,
                 stop: threading.Event | None = None, tick: float = 0.05):
        from . import _ring
        self._ring = _ring
        self.ifaces = list(dict.fromkeys(ifaces))
        if not self.ifaces:
            raise LiveError("no interface to capture on")
        self.options = options or Options()
        self.workers = workers
        self.stop = stop or threading.Event()
        self.tick = tick
        self.errors: list[str] = []
        self.rounds = None
        self.filter = "default" if bpf_expr is None else (bpf_expr or "none")
        self.rings: list[list] = []         # [worker][interface]
        self._decoders: list[Decoder] = []
        self._handoff: queue.Queue = queue.Queue(self.HANDOFF)
        self.handoff_waits = 0              # times a worker found the publisher behind
        try:
            for w in range(workers):
                row = []
                for i, iface in enumerate(self.ifaces):
                    fanout = None if workers == 1 else (_ring.NEW_GROUP if w == 0 else self.rings[0][i].fanout_id)
                    row.append(_ring.Ring(iface, ring_bytes=ring_mb << 20, retire_ms=retire_ms, promisc=promisc,
                                          fanout=fanout))
                self.rings.append(row)
            # One link type per decoder: Ethernet when every interface has Ethernet frames, else
            # Linux cooked records for all.
            cooked = any(r.cooked for r in self.rings[0])
            for row in self.rings:
                for r in row:
                    r.cooked = cooked
            self.linktype = self.rings[0][0].linktype
            if bpf_expr is None:
                program = bpf.default_filter(self.options.gtpc_ports, self.options.gtpu_ports)
            elif bpf_expr == "":
                program = None
            else:
                program = {kind: bpf.compile_expression(bpf_expr, ethernet=kind) for kind in (True, False)}
            for row in self.rings:
                for r in row:
                    r.set_filter(program[not r.cooked] if isinstance(program, dict) else program)
        except OSError as e:
            self.close()
            hint = " (capturing needs CAP_NET_RAW: run as root or give the interpreter cap_net_raw)" \
                if e.errno in (errno.EPERM, errno.EACCES) else ""
            raise LiveError(f"{e.strerror}{hint}", usage=e.errno == errno.ENODEV) from None
        except bpf.FilterError as e:
            self.close()
            raise LiveError(str(e), "--bpf", usage=True) from None
        except ValueError as e:                 # a name that cannot be an interface's
            self.close()
            raise LiveError(str(e), usage=True) from None
        for w in range(workers):
            name = ",".join(self.ifaces) + (f" worker {w}" if workers > 1 else "")
            self._decoders.append(Decoder(self.options, source=name))

    # the source interface

    def packets(self) -> int:
        return sum(d.frames for d in self._decoders)

    def stats(self) -> Stats:
        # read while the workers decode: the counters are plain integers, a status line may be a
        # packet behind
        s = Stats()
        for d in self._decoders:
            s.merge(d.stats())
        return s

    def capture_stats(self) -> dict:
        """Kernel and ring counters: in total and per interface (all workers together)."""
        per = {iface: {} for iface in self.ifaces}
        for row in self.rings:
            for r in row:
                st = r.stats()
                acc = per[r.iface]
                for k in ("kernel_packets", "kernel_drops", "ring_full", "socket_errors", "outgoing_skipped"):
                    acc[k] = acc.get(k, 0) + st[k]
                acc["copy_s"] = acc.get("copy_s", 0.0) + st["copy_s"]
                if st["last_error"]:
                    acc["last_error"] = st["last_error"]
        total = {k: sum(v.get(k, 0) for v in per.values())
                 for k in ("kernel_packets", "kernel_drops", "ring_full", "socket_errors", "copy_s")}
        total["copy_s"] = round(total["copy_s"], 4)
        for v in per.values():
            v["copy_s"] = round(v.get("copy_s", 0.0), 4)
        return {**total, "workers": self.workers, "worker_packets": [d.frames for d in self._decoders],
                "filter": self.filter, "linktype": self.linktype,
                "handoff_waits": self.handoff_waits, "interfaces": per}

    def __iter__(self) -> Iterator[np.ndarray]:
        threads = [threading.Thread(target=self._work, args=(w,), name=f"touchpoint-capture-{w}", daemon=True)
                   for w in range(self.workers)]
        for t in threads:
            t.start()
        running = len(threads)
        try:
            while running:
                try:
                    item = self._handoff.get(timeout=self.tick)
                except queue.Empty:
                    yield EMPTY
                    continue
                if item is DONE:
                    running -= 1
                else:
                    yield item
        finally:
            self.stop.set()                     # left early: let the workers end, whatever they still hold
            while any(t.is_alive() for t in threads):
                try:
                    self._handoff.get(timeout=0.05)
                except queue.Empty:
                    pass
            self.close()

    def close(self) -> None:
        for row in self.rings:
            for r in row:
                r.close()

    # a worker

    def _work(self, w: int) -> None:
        dec, rings, gather = self._decoders[w], self.rings[w], self._ring.gather
        buf = bytearray(max(self.BUFFER, max(r.block_size for r in rings)))
        try:
            self._feed(dec, self._ring.file_header(self.linktype))
            while not self.stop.is_set():
                n = gather(rings, buf, self.POLL_MS)
                if n:
                    self._feed(dec, buf, n)
                    self._put(dec.take())
            for records in dec.finish():        # stopped: open dialogues go out as timed out
                self._put(records)
        except CaptureError as e:               # cannot happen with the records gather() writes
            self.errors.append(str(e))
            self.stop.set()
        except Exception as e:  # noqa: BLE001 - a worker that dies stops the probe, loudly
            self.errors.append(f"{dec.source}: {type(e).__name__}: {e}")
            self.stop.set()
        finally:
            self._handoff.put(DONE)

    def _feed(self, dec: Decoder, buf, n: int = -1) -> None:
        for records in dec.feed(buf, n):
            self._put(records)

    def _put(self, records: np.ndarray) -> None:
        if not len(records):
            return
        try:
            self._handoff.put_nowait(records)
        except queue.Full:
            self.handoff_waits += 1
            self._handoff.put(records)
