"""SMPP 3.4 ESME client: the SMS channel's connection to an operator's SMSC.

    client = SmppClient(host, port, system_id, password, on_result=..., on_mo=...)
    client.start()                       # an I/O thread: connect, bind, keep the session alive
    client.send(msg)                     # never blocks: False when not bound, the window is full
    client.health()                      # or the SMSC is throttling; the caller offers it later
    client.stop(5.0)

One thread runs an asyncio loop for the session. submit_sm goes out asynchronously, up to
`window` outstanding and matched to their submit_sm_resp by sequence number; enquire_link keeps
the link alive both ways; a lost connection, a bind refused or an SMSC that stops answering
reconnects with exponential back-off. ESME_RTHROTTLED and ESME_RMSGQFUL slow the sending down
(pause, halve the rate, win it back second by second) and the part is submitted again; every
other error status fails the message with the status's name.

Texts are encoded by control.sms_text (GSM 03.38 or UCS-2, long texts in concatenated parts,
esm_class 0x40); PDUs by control.smpp_pdu. Delivery receipts and MO messages come back on the
same transceiver bind.

Spec: SMPP v3.4 (issue 1.2, 1999).
"""
import asyncio
import os
import sys
import threading
import time
from collections import deque

from touchpoint.probe.logline import write_line

from .smpp_pdu import (BINDS, DELIVER_SM, ENQUIRE_LINK, ESM_RECEIPT, ESM_TYPE, ESM_UDHI, ESME_RINVCMDID,
                       ESME_ROK, ESME_RX_P_APPN, FINAL, GENERIC_NACK, HEADER, MAX_PDU, RESP, SLOW_DOWN, SUBMIT_SM,
                       TLV_MESSAGE_PAYLOAD, TON_NATIONAL, UNBIND, PduError, ShortMessage, address_type, bind_body,
                       c_octets, pack, parse_receipt, resp_id, status_name)
from .sms_text import decode_text, encode_text, split_udh, udh_concat


class SessionError(Exception):
    """The session cannot go on: the connection is closed and opened again."""


class Pacer:
    """Spaces submit_sm out: at most `limit` a second (None: as fast as the window allows).
    A throttling answer pauses the sending (0.1 s, doubling while the answers go on, at most
    10 s) and halves the rate from what was being sent; each second without one gives back a
    quarter, up to the limit."""
    PAUSE_MIN, PAUSE_MAX, GAIN = 0.1, 10.0, 1.25

    def __init__(self, limit: float | None):
        self.limit = limit
        self.rate = limit
        self.pause = self.PAUSE_MIN
        self.next_at = 0.0
        self.resume_at = 0.0
        self.last_throttle = 0.0
        self.second = (0.0, 0, 0)           # (start, submits in it, submits in the one before)

    def delay(self, now: float) -> float:
        return max(self.resume_at - now, self.next_at - now if self.rate else 0.0, 0.0)

    def sent(self, now: float) -> None:
        start, n, before = self.second
        if now - start >= 1.0:
            self.second = (now, 1, n if now - start < 2.0 else 0)
            if self.rate and now - self.last_throttle >= 1.0 and (self.limit is None or self.rate < self.limit):
                self.rate *= self.GAIN
                if self.limit is not None:
                    self.rate = min(self.rate, self.limit)
                elif self.rate > 1e6:
                    self.rate = None
        else:
            self.second = (start, n + 1, before)
        if self.rate:
            self.next_at = max(self.next_at + 1.0 / self.rate, now - 0.05)   # a little burst at most

    def throttled(self, now: float) -> None:
        if now < self.resume_at:
            return                          # answers to what was already out: one slow-down
        self.pause = min(self.pause * 2, self.PAUSE_MAX) if now - self.last_throttle < 2.0 else self.PAUSE_MIN
        self.last_throttle = now
        self.resume_at = now + self.pause
        start, n, before = self.second
        recent = max(n / max(now - start, 0.1), before, 1.0)
        self.rate = max(1.0, min(self.rate or recent, recent) / 2)


class Message:
    """A message the client holds from send() until its final answer."""
    __slots__ = ("out", "bodies", "ids", "acked", "done", "delivered", "undelivered")

    def __init__(self, out, bodies: list):
        self.out = out
        self.bodies = bodies                # submit_sm body of each part
        self.ids = [None] * len(bodies)
        self.acked = 0
        self.done = False
        self.delivered = 0                  # parts with a DELIVRD receipt; -1 once one failed
        self.undelivered = ""               # a failed part's receipt that came before `sent`

    @property
    def started(self) -> bool:
        return self.acked > 0


class SmppClient:
    """An ESME session to one SMSC (see the module's docstring).

    on_result(message_id, state, reason, smsc_id=None) is called from the client's thread:
    `sent` (every part answered ESME_ROK; smsc_id is the first part's id), `failed` (a
    permanent error status, by name, or a message that cannot be encoded), `retry` (the
    connection dropped or the client stopped before any part was taken: offer it again), and
    later `delivered` / `failed` from delivery receipts; message_id is None for a receipt of a
    message this client does not know (sent before a restart): match it by smsc_id.
    on_mo(msisdn, text, national, to) gets the MO messages (national: the sender's TON says so; to:
    the address they were sent to, a service code with any extension).
    """

    def __init__(self, host: str, port: int, system_id: str, password: str = "", *,
                 system_type: str = "", bind: str = "transceiver", window: int = 64,
                 rate: float | None = None, on_result=None, on_mo=None, say=None,
                 enquire_link: float = 30.0, response_timeout: float = 10.0,
                 connect_timeout: float = 5.0, reconnect: tuple = (1.0, 60.0),
                 service_type: str = "", receipts_tracked: int = 200_000):
        if bind not in BINDS:
            raise ValueError(f"bind: {bind!r}, expected one of {', '.join(BINDS)}")
        try:
            bind_body(system_id, password, system_type)
            c_octets(service_type, 6, "service_type")
        except PduError as e:
            raise ValueError(str(e)) from None
        if window < 1:
            raise ValueError(f"window: {window}, must be at least 1")
        if rate is not None and rate <= 0:
            raise ValueError(f"rate: {rate}, must be above 0")
        self.host, self.port = host, port
        self.system_id, self.password, self.system_type = system_id, password, system_type
        self.bind, self.window, self.rate = bind, window, rate
        self.service_type = service_type
        self.on_result = on_result or (lambda *a, **k: None)
        self.on_mo = on_mo or (lambda msisdn, text, national, to: None)
        self.say = say or (lambda line: write_line(sys.stderr, f"touchpoint smpp {host}:{port}: {line}"))
        self.enquire_link, self.response_timeout = enquire_link, response_timeout
        self.connect_timeout, self.reconnect = connect_timeout, reconnect
        self.capacity = 2 * window          # messages held: the window and as many waiting for it
        self.lock = threading.Lock()
        self.queue = deque()                # (Message, part) to write, in order
        self.inflight = {}                  # sequence number -> (Message, part, written at)
        self.held = 0
        self.bound = False
        self.stopping = False
        self.stop_by = 0.0
        self.drained = False
        self.thread = None
        self.loop = None
        self.wake = None
        self.woken = False
        self.seq = 0
        self.ref = 0
        self.pacer = Pacer(rate)
        self.receipts = {}                  # part's smsc id -> Message, oldest first
        self.early = {}                     # smsc id -> (stat, err, at): a receipt ahead of its submit_sm_resp
        self.receipts_tracked = receipts_tracked
        self.counts = dict(sent=0, parts=0, failed=0, retried=0, throttled=0, delivered=0,
                           undelivered=0, receipts_unmatched=0, mo=0, connects=0, bad_pdus=0)
        self.last_error = ""
        self.connected_since = None

    # --- the caller's side (any thread) --------------------------------------------------

    def start(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.wake = asyncio.Event()
        self.thread = threading.Thread(target=self._run, name=f"smpp {self.host}:{self.port}", daemon=True)
        self.thread.start()

    def send(self, out) -> bool:
        """Take `out` (an Outgoing) for sending, or say False: not bound, stopping, the window
        and its queue full, or paused by throttling. Never blocks on the network."""
        if not self.bound or self.stopping or self.held >= self.capacity \
                or self.pacer.resume_at > time.monotonic():
            return False
        try:
            bodies = self.bodies(out)
        except (ValueError, PduError) as e:
            self.counts["failed"] += 1
            self.on_result(out.id, "failed", str(e), smsc_id=None)
            return True
        m = Message(out, bodies)
        with self.lock:
            if not self.bound or self.stopping:
                return False
            self.held += 1
            self.queue.extend((m, i) for i in range(len(bodies)))
            if not self.woken:
                self.woken = True
                self.loop.call_soon_threadsafe(self.wake.set)
        return True

    def bodies(self, out) -> list:
        """The submit_sm body of each part of `out`."""
        dc, payloads = encode_text(out.text)
        esm = 0
        if len(payloads) > 1:
            with self.lock:
                self.ref = (self.ref + 1) & 0xFF
                ref = self.ref
            esm = ESM_UDHI
            payloads = [udh_concat(ref, len(payloads), i + 1) + p for i, p in enumerate(payloads)]
        source_ton, source_npi, source = address_type(out.source)
        dest_ton, dest_npi, dest = address_type(out.msisdn)
        return [ShortMessage(
            source_addr=source, source_addr_ton=source_ton, source_addr_npi=source_npi,
            destination_addr=dest, dest_addr_ton=dest_ton, dest_addr_npi=dest_npi,
            service_type=self.service_type, esm_class=esm, registered_delivery=1,
            data_coding=dc, short_message=p).encode() for p in payloads]

    def health(self) -> dict:
        return {"channel": "smpp", "smsc": f"{self.host}:{self.port}", "bind": self.bind,
                "connected": self.bound,
                "up_s": round(time.monotonic() - self.connected_since, 1) if self.connected_since else 0.0,
                "in_flight": len(self.inflight), "held": self.held, "window": self.window,
                "rate": round(self.pacer.rate, 1) if self.pacer.rate else None,
                **self.counts, "last_error": self.last_error}

    def stop(self, timeout: float = 5.0) -> None:
        """Stop taking messages, give back (`retry`) what has not gone out, wait up to
        `timeout` for the answers to what has, unbind and end the thread."""
        with self.lock:
            self.stopping = True
            self.stop_by = time.monotonic() + timeout
        if self.thread is None:
            return
        self.loop.call_soon_threadsafe(self.wake.set)
        self.thread.join(timeout + self.response_timeout + 1.0)
        if self.thread.is_alive():
            self.say("the I/O thread did not end")

    # --- the I/O thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self.loop.run_until_complete(self._main())
        finally:
            self.loop.close()

    async def _main(self) -> None:
        backoff = self.reconnect[0]
        while not self.stopping:
            reason = None
            try:
                await self._session()
            except asyncio.IncompleteReadError:
                reason = "the SMSC closed the connection"
            except (OSError, asyncio.TimeoutError, PduError, SessionError) as e:
                reason = str(e) or type(e).__name__
            except Exception as e:  # noqa: BLE001 - a bug must not end the channel for good
                reason = f"internal error: {type(e).__name__}: {e}"
            was_bound = self.connected_since is not None
            self._lost(reason)
            if self.stopping:
                break
            if was_bound:
                backoff = self.reconnect[0]
            self._error(reason or "connection closed")
            try:
                await asyncio.wait_for(self._stop_requested(), backoff)
            except asyncio.TimeoutError:
                pass
            backoff = min(backoff * 2, self.reconnect[1])
        self._give_back("stopped")

    async def _stop_requested(self) -> None:
        while not self.stopping:
            self.wake.clear()
            await self.wake.wait()

    def _error(self, reason: str) -> None:
        # A dead SMSC must not flood the log: a reason is told when it changes.
        if reason != self.last_error:
            self.say(reason + (", reconnecting" if not self.stopping else ""))
        self.last_error = reason

    def _next_seq(self) -> int:
        self.seq = self.seq % 0x7FFFFFFF + 1
        return self.seq

    async def _session(self) -> None:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port),
                                                    self.connect_timeout)
        except asyncio.TimeoutError:
            raise SessionError(f"cannot connect: no answer within {self.connect_timeout:g} s") from None
        except OSError as e:
            raise SessionError(f"cannot connect: {os.strerror(e.errno) if e.errno else e}") from None
        try:
            seq = self._next_seq()
            writer.write(pack(BINDS[self.bind], seq, bind_body(self.system_id, self.password, self.system_type)))
            try:
                await asyncio.wait_for(self._bind_resp(reader, writer, seq), self.response_timeout)
            except asyncio.TimeoutError:
                raise SessionError(f"no bind response within {self.response_timeout:g} s") from None
            self.connected_since = time.monotonic()
            self.counts["connects"] += 1
            self.say(f"bound as {self.bind} ({self.system_id})")
            self.last_error = ""
            self.alive_at = time.monotonic()
            self.enquiry = None                 # (sequence, written at) of our enquire_link
            with self.lock:
                self.bound = True
            tasks = [asyncio.ensure_future(c) for c in
                     (self._read(reader, writer), self._write(writer), self._keepalive(writer))]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    t.result()
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            writer.close()

    async def _bind_resp(self, reader, writer, seq: int) -> None:
        while True:
            cid, status, rseq, body = await self._read_pdu(reader)
            if cid == BINDS[self.bind] | RESP and rseq == seq:
                if status != ESME_ROK:
                    raise SessionError(f"bind refused: {status_name(status)}")
                return
            if cid == ENQUIRE_LINK:
                writer.write(pack(ENQUIRE_LINK | RESP, rseq))
            elif cid == GENERIC_NACK:
                raise SessionError(f"bind answered with generic_nack {status_name(status)}")

    async def _read_pdu(self, reader) -> tuple:
        length, cid, status, seq = HEADER.unpack(await reader.readexactly(16))
        if not 16 <= length <= MAX_PDU:
            raise PduError(f"command_length {length} (command_id 0x{cid:08x}): the stream is out of step")
        return cid, status, seq, await reader.readexactly(length - 16) if length > 16 else b""

    async def _read(self, reader, writer) -> None:
        while True:
            cid, status, seq, body = await self._read_pdu(reader)
            self.alive_at = time.monotonic()
            if cid == SUBMIT_SM | RESP:
                self._submit_resp(seq, status, body)
            elif cid == DELIVER_SM:
                writer.write(pack(DELIVER_SM | RESP, seq, b"\0", self._deliver(body)))
            elif cid == ENQUIRE_LINK:
                writer.write(pack(ENQUIRE_LINK | RESP, seq))
            elif cid == ENQUIRE_LINK | RESP:
                if self.enquiry and self.enquiry[0] == seq:
                    self.enquiry = None
            elif cid == UNBIND:
                writer.write(pack(UNBIND | RESP, seq))
                await writer.drain()
                raise SessionError("the SMSC unbound")
            elif cid == UNBIND | RESP:
                if self.stopping:
                    raise SessionError("")
            elif cid == GENERIC_NACK:
                if seq in self.inflight:
                    self._submit_resp(seq, status or ESME_RINVCMDID, b"")
                else:
                    self.counts["bad_pdus"] += 1
                    self.say(f"generic_nack {status_name(status)} for sequence {seq}")
            elif cid & RESP:
                self.counts["bad_pdus"] += 1      # an answer to nothing asked
            else:
                writer.write(pack(GENERIC_NACK, seq, status=ESME_RINVCMDID))

    async def _write(self, writer) -> None:
        inflight, queue, pacer = self.inflight, self.queue, self.pacer
        while True:
            now = time.monotonic()
            if self.stopping:
                if not self.drained:
                    self._drain()
                if not queue and not inflight or now >= self.stop_by:
                    seq = self._next_seq()
                    writer.write(pack(UNBIND, seq))
                    await writer.drain()
                    await asyncio.sleep(min(1.0, max(0.0, self.stop_by - now)))   # the read side ends it sooner
                    raise SessionError("")
            wait = pacer.delay(now)
            if not queue or len(inflight) >= self.window or wait > 0:
                self.wake.clear()
                self.woken = False
                if queue and len(inflight) < self.window and wait <= 0:
                    continue                # a send() came in between
                try:
                    await asyncio.wait_for(self.wake.wait(), wait if wait > 0 and queue else 1.0)
                except asyncio.TimeoutError:
                    pass
                continue
            m, i = queue.popleft()
            if m.done:
                continue
            seq = self._next_seq()
            inflight[seq] = (m, i, now)
            writer.write(pack(SUBMIT_SM, seq, m.bodies[i]))
            pacer.sent(now)
            if writer.transport.get_write_buffer_size() > 1 << 16:
                await writer.drain()

    def _drain(self) -> None:
        """Stopping: messages not yet started and not out go back; partly sent ones finish."""
        self.drained = True
        out = {id(m) for m, _, _ in self.inflight.values()}
        back = {id(m): m for m, _ in self.queue if not m.started and id(m) not in out}
        keep = [(m, i) for m, i in self.queue if id(m) not in back]
        self.queue.clear()
        self.queue.extend(keep)
        for m in back.values():
            self._finish(m, "retry", "stopped")

    async def _keepalive(self, writer) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.enquire_link))
            now = time.monotonic()
            if self.inflight:
                _, _, at = next(iter(self.inflight.values()))
                if now - at > self.response_timeout:
                    raise SessionError(f"no submit_sm_resp within {self.response_timeout:g} s")
            if self.enquiry:
                if now - self.enquiry[1] > self.response_timeout:
                    raise SessionError(f"no enquire_link_resp within {self.response_timeout:g} s")
            elif now - self.alive_at >= self.enquire_link:
                self.enquiry = (self._next_seq(), now)
                writer.write(pack(ENQUIRE_LINK, self.enquiry[0]))
            for smsc_id, (stat, err, at) in list(self.early.items()):
                if now - at > self.response_timeout:
                    del self.early[smsc_id]
                    self._receipt(smsc_id, stat, err, parked=True)

    def _submit_resp(self, seq: int, status: int, body: bytes) -> None:
        entry = self.inflight.pop(seq, None)
        if entry is None:
            self.counts["bad_pdus"] += 1
            return
        m, i, _ = entry
        self.wake.set()
        if m.done:
            return
        if status == ESME_ROK:
            try:
                m.ids[i] = resp_id(body, "message_id")
            except PduError:
                m.ids[i] = ""
            m.acked += 1
            self.counts["parts"] += 1
            self._track(m, i)
            if m.acked == len(m.bodies):
                self.counts["sent"] += 1
                self._finish(m, "sent", "", m.ids[0])
                if m.undelivered:
                    self._report(m.out.id, "failed", m.undelivered, m.ids[0])
            if m.ids[i] in self.early:
                self._receipt(m.ids[i], *self.early.pop(m.ids[i])[:2])
        elif status in SLOW_DOWN:
            self.counts["throttled"] += 1
            self.pacer.throttled(time.monotonic())
            self.queue.appendleft((m, i))
        else:
            self.counts["failed"] += 1
            self._finish(m, "failed", status_name(status))

    def _finish(self, m: Message, state: str, reason: str, smsc_id=None) -> None:
        m.done = True
        with self.lock:
            self.held -= 1
        if state == "retry":
            self.counts["retried"] += 1
        self._report(m.out.id, state, reason, smsc_id)

    def _lost(self, reason) -> None:
        """The session ended: messages with no part taken go back to the caller; a message
        with parts taken keeps its place and sends the rest on the next session (SMPP 7.2: a
        request without a response was not processed)."""
        with self.lock:
            self.bound = False
        self.connected_since = None
        for seq in sorted(self.inflight, reverse=True):
            m, i, _ = self.inflight[seq]
            self.queue.appendleft((m, i))
        self.inflight.clear()
        back = {id(m): m for m, _ in self.queue if not m.started and not m.done}
        keep = [(m, i) for m, i in self.queue if id(m) not in back and not m.done]
        self.queue.clear()
        self.queue.extend(keep)
        for m in back.values():
            self._finish(m, "retry", reason or "disconnected")

    def _give_back(self, reason: str) -> None:
        for m in {id(m): m for m, _ in self.queue}.values():
            if not m.done:
                self.counts["failed"] += 1
                self._finish(m, "failed", f"incomplete: {m.acked} of {len(m.bodies)} parts sent when {reason}")
        self.queue.clear()

    # --- receipts and MO -----------------------------------------------------------------

    def _track(self, m: Message, i: int) -> None:
        if self.bind != "transceiver" or not m.ids[i]:
            return                          # receipts come only on a transceiver bind
        self.receipts[m.ids[i]] = m
        while len(self.receipts) > self.receipts_tracked:
            del self.receipts[next(iter(self.receipts))]

    def _deliver(self, body: bytes) -> int:
        """Handle a deliver_sm; the status to answer it with."""
        try:
            sm = ShortMessage.decode(body)
            if sm.esm_class & ESM_TYPE == ESM_RECEIPT:
                receipt = parse_receipt(sm)
                if receipt is None:
                    raise PduError("delivery receipt without a message id")
                self._receipt(*receipt)
                return ESME_ROK
            data = sm.short_message or sm.tlvs.get(TLV_MESSAGE_PAYLOAD, b"")
            if sm.esm_class & ESM_UDHI:
                data = split_udh(data)[1]
            text = decode_text(data, sm.data_coding)
        except PduError as e:
            self.counts["bad_pdus"] += 1
            self.say(f"deliver_sm refused: {e}")
            return ESME_RX_P_APPN       # permanent: the SMSC should not offer it again
        self.counts["mo"] += 1
        try:
            self.on_mo(address_type(sm.source_addr)[2], text, sm.source_addr_ton == TON_NATIONAL,
                       address_type(sm.destination_addr)[2])
        except Exception as e:  # noqa: BLE001 - a failing callback must not drop the SMSC's MO
            self.say(f"on_mo failed: {type(e).__name__}: {e}")
        return ESME_ROK

    def _receipt(self, smsc_id: str, stat: str, err: str, parked: bool = False) -> None:
        state = FINAL.get(stat)
        if state is None:
            return                          # ENROUTE, ACCEPTD: not the end yet
        m = self.receipts.pop(smsc_id, None)
        if m is None:
            if self.inflight and not parked and len(self.early) < 4 * self.capacity:
                # The receipt may have overtaken its submit_sm_resp: wait for it a while.
                self.early[smsc_id] = (stat, err, time.monotonic())
                return
            self.counts["receipts_unmatched"] += 1
            m = None
        self.counts["delivered" if state == "delivered" else "undelivered"] += 1    # parts
        reason = "" if state == "delivered" else stat.lower() + (f" err:{err}" if err else "")
        if m is None:
            self._report(None, state, reason, smsc_id)
            return
        # A message is delivered when every part is; one failed part fails it, once, and the
        # receipts of its other parts are then swallowed.
        if m.delivered < 0:
            return
        if state == "failed":
            m.delivered = -1
            if not m.done:
                m.undelivered = reason      # told right after `sent`
                return
        else:
            m.delivered += 1
            if m.delivered < len(m.bodies):
                return
        self._report(m.out.id, state, reason, m.ids[0])

    def _report(self, mid, state, reason, smsc_id) -> None:
        try:
            self.on_result(mid, state, reason, smsc_id=smsc_id)
        except Exception as e:  # noqa: BLE001 - a failing callback must not drop the receipt
            self.say(f"on_result failed: {type(e).__name__}: {e}")
