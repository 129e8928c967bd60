"""`touchpoint tap`: the receiving end of the probes' record stream, for engineers and tests.

Like tcpdump for the record stream: binds a ROUTER where the probes push, checks every message
(magic, schema version, record size; a mismatch is reported naming the probe, which is told so
and ignored), reports lost batches (sequence gaps) per probe and shard, acknowledges each end
of stream, and prints the records in the `decode` formats, or only counts them.

With Curve keys it is a Curve server: every probe needs the server's public key, and with a
directory of client keys only the probes whose public keys are there get in (ZAP, checked by
zmq.auth.thread.ThreadAuthenticator); refused handshakes are reported. Without Curve, tcp clients
give the token (probe.transport.load_token).
"""
import signal
import sys
import threading


from touchpoint.probe.logline import write_line
from touchpoint.probe.signals import on_signals
from touchpoint.probe.transport import Curve
from touchpoint.probe.transport.receiving import Receiver
from touchpoint.probe.transport.wire import WireError

NAME = "touchpoint tap"


def run(listen, writer=None, *, expect_eos: int | None = None, out=None, err=None,
        stop: threading.Event | None = None, on_ready=None, curve: Curve | None = None,
        clients: str | None = None, token: bytes | None = None) -> int:
    """Receive until `expect_eos` ends of stream (None: until stopped or SIGINT/SIGTERM).

    With `curve` (this side's key pair) only Curve clients get in; with `clients` (a directory
    of public key files), only those; without, tcp clients give `token`.

    Records go to writer (a control.cli.render.Writer) or, without one, are counted and the count
    printed at the end. Returns the exit code: 0, or 1 when batches were lost or a probe's
    messages could not be read."""
    out = out or sys.stdout
    err = err or sys.stderr
    stop = stop or threading.Event()
    say = lambda line: write_line(err, f"{NAME}: {line}")
    rx = Receiver(listen, curve=curve, clients=clients, token=token)
    restore = _signals(stop)                # before telling anyone where to find us
    say("listening on " + ", ".join(rx.endpoints))
    say("security: " + rx.security() + (f" from {clients}" if clients else ""))
    if on_ready:
        on_ready(rx)
    count = eos = errors = 0
    try:
        while not stop.is_set():
            try:
                got = rx.recv(100)
            except WireError as e:
                errors += 1
                say(str(e))
                continue
            if got is None:
                continue
            st = got.stream
            who = f"probe {st.probe_id} shard {st.shard}"
            if got.lost:
                first = got.header.seq - got.lost
                say(f"{who}: {got.lost} batches lost (sequence {first} to {got.header.seq - 1})")
            if got.late:                # sent again after a reconnection: it is here already
                continue
            if got.end_of_stream:
                eos += 1
                say(f"{who}: end of stream: {st.batches:,} batches, {st.records:,} records, "
                    f"{st.lost_batches:,} batches lost")
                if expect_eos and eos >= expect_eos:
                    break
                continue
            count += len(got.records)
            if writer is not None:
                writer.write(got.records)
                out.flush()
    finally:
        restore()
        rx.close()
    lost = sum(s.lost_batches for s in rx.streams.values())
    for s in rx.streams.values():
        if not s.ended:
            say(f"probe {s.probe_id} shard {s.shard}: {s.batches:,} batches, {s.records:,} records, "
                f"{s.lost_batches:,} batches lost, no end of stream")
    if writer is None:
        write_line(out, str(count))
    say(f"{count:,} records from {len({(s.probe_id, s.epoch) for s in rx.streams.values()})} probe runs, "
        f"{lost:,} batches lost, {rx.rejected_messages:,} messages rejected")
    return 1 if lost or errors else 0


def _signals(stop: threading.Event):
    return on_signals({signal.SIGINT: stop.set, signal.SIGTERM: stop.set})
