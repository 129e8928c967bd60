"""The receiving side of the transport (an engine shard, `touchpoint tap`): one ROUTER that checks
each batch, follows every probe's sequence numbers and acknowledges what it has (probe.transport.
sending keeps every batch until then, and sends it again after a reconnection): by default each
batch as it comes and the end of each stream; with `acks=False` the owner acknowledges, once what
it received is safe (the engine: in its journal), with ack() and end()."""
import json
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import zmq
from zmq.utils.monitor import recv_monitor_message

from ..record import RECORD_DTYPE, SCHEMA_VERSION
from . import HANDSHAKE_FAILED, Curve, authenticator, handshake_failure, private_ipc, secure
from .wire import ACK, END_OF_STREAM, REJECT, WIRE_VERSION, Header, WireError

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
    out_of_order: int = 0       # a sequence number below the expected one: sent again after a reconnection
    ended: bool = False
    ident: bytes = b""          # the peer's ROUTER identity, where acknowledgements go
    end_seq: int = 0            # the end of stream's sequence number

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



class Receiver:
    """The ROUTER side: binds, validates each message, tracks sequence numbers, acknowledges the
    end of each stream.  recv() returns a Received, None when nothing came in time, and raises
    WireError once for each peer whose messages it cannot read (it tells that peer with REJECT and
    ignores it from then on), and for failed handshakes (a refused Curve key, a security mismatch:
    the first of each kind, then at most every REPORT_EVERY seconds with the count)."""

    REPORT_EVERY = 10.0

    def __init__(self, endpoints, ctx: zmq.Context | None = None, setup=None, curve: Curve | None = None,
                 clients: str | None = None, acks: bool = True, token: bytes | None = None):
        """token: the secret tcp clients without Curve must give (probe.transport.load_token); it
        also lets them in on the other sockets of ctx."""
        self.acks = acks
        self._own_ctx = ctx is None
        self.ctx = ctx or zmq.Context()
        self.curve, self.token = curve, token
        self.auth = authenticator(self.ctx, clients, token) if clients or token else None
        self.clients = clients
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 1000)
        self.sock.setsockopt(zmq.HEARTBEAT_IVL, 1000)
        self.sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 5000)
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
                secure(self.sock, ep, curve, token, server=True)
                self.sock.bind(ep)
                self.endpoints.append(self.sock.last_endpoint.decode())
                private_ipc(self.endpoints[-1])
        except (zmq.ZMQError, ValueError) as e:
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
        if self.curve and self.clients:
            return f"Curve: {len(self.auth.certs.get('*', {}))} authorised client keys"
        if self.curve:
            return "Curve: any client that has this server's public key"
        return "token" if self.token else "local (ipc)"

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
        st.ident = ident
        records = np.frombuffer(frames[2].buffer, RECORD_DTYPE) if hdr.count else np.empty(0, RECORD_DTYPE)
        if hdr.flags & END_OF_STREAM:
            st.end_seq = hdr.seq
            if self.acks:
                self.end(st)
            return Received(hdr, records, st, 0, False, new)
        lost, late = 0, hdr.seq < st.next_seq
        if hdr.seq > st.next_seq:
            lost = hdr.seq - st.next_seq
            st.gaps += 1
            st.lost_batches += lost
        if late:
            st.out_of_order += 1
        else:
            st.batches += 1
            st.records += hdr.count
        st.next_seq = max(st.next_seq, hdr.seq + 1)
        if self.acks:
            self.ack(st, st.next_seq)
        return Received(hdr, records, st, lost, late, new)

    def ack(self, st: Stream, next_seq: int) -> None:
        """Tell the stream's probe that its batches below next_seq are here (it forgets them)."""
        self._send(st, Header(probe_id=st.probe_id, shard=st.shard, flags=ACK, epoch=st.epoch, seq=next_seq), b"")

    def end(self, st: Stream) -> None:
        """Acknowledge the stream's end, with what was received of it."""
        st.ended = True
        self._send(st, Header(probe_id=st.probe_id, shard=st.shard, flags=END_OF_STREAM | ACK, epoch=st.epoch,
                              seq=st.end_seq), json.dumps(st.summary()).encode())

    def _send(self, st: Stream, hdr: Header, body: bytes) -> None:
        try:
            self.sock.send_multipart([st.ident, hdr.pack(), body], zmq.NOBLOCK)
        except zmq.ZMQError:
            pass                # gone, or not reading: it sends again what it still holds

    def restore(self, streams) -> None:
        """Streams known from before a restart, (probe_id, shard, epoch, next_seq) each: their
        batches sent again are known as duplicates, and none counts as lost."""
        for probe_id, shard, epoch, next_seq in streams:
            key = (int(probe_id), int(shard), int(epoch))
            if key not in self.streams:
                self.streams[key] = Stream(*key, peer="(from before the restart)", next_seq=int(next_seq))

    def _handshake(self, ev: dict) -> None:
        reason = handshake_failure(ev["event"], ev["value"], "curve" if self.curve else "token", server=True)
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
