"""A test SMSC: the server side of smpp34 (PyPI, Rust-backed SMPP 3.4), written by others.

As a process (so a test can kill it):

    python3 tests/smsc.py --port P [--receipts text|tlv] [--max-rate N] [--hold-after N] ...

prints one JSON object a line on stdout: {"ready": port}, {"bind": ...}, {"submit": ...} for
every submit_sm it accepted (printed before the answer, so an accepted message is always
seen), {"held": n}; reads commands from stdin: {"mo": {"from": ..., "to": ..., "text": ...}}.

In a test, `Smsc(port, ...)` runs it and collects what it prints.
"""
import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


# --- the server process --------------------------------------------------------------------

def emit(obj) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


async def serve(args) -> None:
    import smpp34
    server = smpp34.Server(host="127.0.0.1", port=args.port, system_id="TESTSMSC")
    await server.start()
    emit({"ready": args.port})
    smsc = _Server(args, smpp34)
    loop = asyncio.get_running_loop()
    threading.Thread(target=lambda: [loop.call_soon_threadsafe(smsc.commands.put_nowait, line)
                                     for line in sys.stdin], daemon=True).start()
    smsc.spawn(smsc.command_loop())
    while True:
        ev = await server.next()
        if isinstance(ev, smpp34.Esme):
            smsc.sessions[ev.session_id] = ev
            emit({"bind": {"system_id": ev.system_id, "session": ev.session_id, "can_receive": ev.can_receive}})
        elif isinstance(ev, smpp34.Unbound):
            smsc.sessions.pop(ev.session_id, None)
            emit({"unbound": ev.session_id})
        elif isinstance(ev, smpp34.SubmitSmEvent):
            await smsc.submit(ev)


class _Server:
    """What the SMSC keeps between events: the bound sessions, the held and answered submits,
    the rate limiter's tokens, the receipts and MO messages under way."""

    def __init__(self, args, smpp34):
        self.args, self.smpp34 = args, smpp34
        self.sessions, self.held, self.tasks = {}, [], set()
        self.prefix = f"{os.getpid():x}-"
        self.accepted = self.rejected = 0
        self.tokens, self.refill_at = float(args.burst), time.monotonic()
        self.commands = asyncio.Queue()

    def spawn(self, coro) -> None:
        t = asyncio.ensure_future(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    async def command_loop(self) -> None:
        while True:
            cmd = json.loads(await self.commands.get())
            if "mo" in cmd:
                await self.mo(cmd["mo"])

    async def mo(self, cmd) -> None:
        text = cmd["text"]
        try:
            sm, dc = text.encode("ascii"), 0
        except UnicodeEncodeError:
            sm, dc = text.encode("utf-16-be"), 8
        for esme in list(self.sessions.values()):
            if esme.can_receive:
                r = await esme.deliver_sm(cmd["to"], sm, source_addr=cmd["from"], source_addr_ton=cmd.get("ton", 1),
                                          source_addr_npi=1, data_coding=dc)
                emit({"mo_sent": r.command_status})

    def _throttled(self) -> bool:
        """--max-rate: a token bucket of --burst tokens."""
        now = time.monotonic()
        self.tokens = min(self.args.burst, self.tokens + (now - self.refill_at) * self.args.max_rate)
        self.refill_at = now
        if self.tokens < 1:
            return True
        self.tokens -= 1
        return False

    async def submit(self, ev) -> None:
        args, smpp34 = self.args, self.smpp34
        if args.hold_after is not None and self.accepted >= args.hold_after:
            self.held.append(ev)             # kept unanswered: dropping it would answer it
            if len(self.held) == 1:
                await asyncio.sleep(0.3)    # the last answers leave before the test is told
                emit({"held": self.accepted})
            return
        if args.max_rate and self._throttled():
            self.rejected += 1
            ev.reject(smpp34.ESME_RTHROTTLED)
            return
        if args.reject_dest and ev.destination_addr.startswith(args.reject_dest):
            ev.reject(smpp34.ESME_RINVDSTADR)
            return
        self.accepted += 1
        mid = f"{self.prefix}{self.accepted:x}"
        if not args.quiet:
            emit({"submit": {
                "id": mid, "t": time.monotonic(), "session": ev.session_id,
                "source": ev.source_addr, "source_ton": ev.source_addr_ton,
                "source_npi": ev.source_addr_npi, "dest": ev.destination_addr,
                "dest_ton": ev.dest_addr_ton, "dest_npi": ev.dest_addr_npi,
                "esm_class": ev.esm_class, "data_coding": ev.data_coding,
                "registered_delivery": ev.registered_delivery,
                "sm": ev.short_message.hex(), "rejected": self.rejected}})
        elif self.accepted % 1000 == 0:
            emit({"accepted": self.accepted, "t": time.monotonic()})
        ev.accept(message_id=mid)
        if args.receipts and ev.registered_delivery & 1:
            esme = self.sessions.get(ev.session_id)
            if esme is not None and esme.can_receive:
                self.spawn(self.receipt(esme, ev, mid))

    async def receipt(self, esme, ev, mid) -> None:
        args, smpp34 = self.args, self.smpp34
        stat = "UNDELIV" if args.undeliverable and ev.destination_addr.startswith(args.undeliverable) else "DELIVRD"
        if args.receipts == "tlv":
            tlvs = [smpp34.Tlv(smpp34.TLV_RECEIPTED_MESSAGE_ID, mid.encode() + b"\0"),
                    smpp34.Tlv(smpp34.TLV_MESSAGE_STATE, bytes([2 if stat == "DELIVRD" else 5]))]
            body = b""
        else:
            tlvs = []
            body = (f"id:{mid} sub:001 dlvrd:{int(stat == 'DELIVRD'):03d} submit date:2611291000 "
                    f"done date:2611291000 stat:{stat} err:000 text:").encode()
        await esme.deliver_sm(ev.source_addr, body, source_addr=ev.destination_addr,
                              esm_class=0x04, tlvs=tlvs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--receipts", choices=("text", "tlv"))
    ap.add_argument("--undeliverable", help="receipts say UNDELIV for destinations with this prefix")
    ap.add_argument("--reject-dest", help="answer ESME_RINVDSTADR for destinations with this prefix")
    ap.add_argument("--max-rate", type=float, help="accept at most this many a second, ESME_RTHROTTLED past it")
    ap.add_argument("--burst", type=float, default=10)
    ap.add_argument("--hold-after", type=int, help="after this many accepted, answer nothing")
    ap.add_argument("--quiet", action="store_true", help="print a count every 1000, not each message")
    args = ap.parse_args()
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass


# --- the test's side -------------------------------------------------------------------------

class Smsc:
    """Runs tests/smsc.py on loopback and gathers what it prints."""

    def __init__(self, port: int, *args: str):
        self.port = port
        self.args = args
        self.events = []                    # everything printed, by every run
        self.cond = threading.Condition()
        self.proc = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "smsc.py"), "--port", str(self.port), *self.args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        threading.Thread(target=self._gather, args=(self.proc,), daemon=True).start()
        self.wait(lambda ev: any("ready" in e for e in ev[self.mark:]), what="the SMSC to start")

    def _gather(self, proc) -> None:
        for line in proc.stdout:
            with self.cond:
                self.events.append(json.loads(line))
                self.cond.notify_all()

    @property
    def mark(self) -> int:
        return getattr(self, "_mark", 0)

    def wait(self, pred, timeout: float = 20.0, what: str = "the SMSC") -> list:
        """Wait until pred(events) holds; fails the test after `timeout` seconds."""
        with self.cond:
            if not self.cond.wait_for(lambda: pred(self.events), timeout):
                raise AssertionError(
                    f"timed out after {timeout:g} s waiting for {what}; last events: {self.events[-3:]}"
                )
            return list(self.events)

    def submits(self) -> list:
        with self.cond:
            return [e["submit"] for e in self.events if "submit" in e]

    def command(self, obj) -> None:
        self.proc.stdin.write(json.dumps(obj, ensure_ascii=False) + "\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def restart(self, *args: str) -> None:
        if self.proc.poll() is None:
            self.kill()
        self.args = args or self.args
        with self.cond:
            self._mark = len(self.events)
        self.start()

    def close(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.kill()


class Feeder:
    """What the dispatcher does with a channel, in small: offers each message until the channel
    takes it, offers a `retry` again, and records every result."""

    def __init__(self, channel, messages):
        from collections import deque
        self.channel = channel
        self.byid = {m.id: m for m in messages}
        self.todo = deque(messages)
        self.results = {}                   # id -> [(state, reason, smsc_id), ...]
        self.unmatched = []                 # receipts with no message id
        self.mo = []
        self.cond = threading.Condition()

    def on_result(self, mid, state, reason, smsc_id=None) -> None:
        with self.cond:
            if mid is None:
                self.unmatched.append((state, reason, smsc_id))
            else:
                self.results.setdefault(mid, []).append((state, reason, smsc_id))
                if state == "retry":
                    self.todo.append(self.byid[mid])
            self.cond.notify_all()

    def on_mo(self, msisdn, text, national=False, to="") -> None:
        with self.cond:
            self.mo.append((msisdn, text, to) + (("national",) if national else ()))
            self.cond.notify_all()

    def final(self, mid):
        """The message's state after submission: sent / failed, or None while it has none."""
        states = [s for s, _, _ in self.results.get(mid, ()) if s in ("sent", "failed")]
        return states[-1] if states else None

    def run(self, done, timeout: float = 30.0, what: str = "the messages") -> None:
        """Offer messages until done(self) holds; fails the test after `timeout` seconds."""
        end = time.monotonic() + timeout
        while True:
            with self.cond:
                if done(self):
                    return
                msg = self.todo.popleft() if self.todo else None
            if time.monotonic() > end:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}: "
                                     f"{len(self.todo)} to offer, health {self.channel.health()}")
            if msg is not None and self.channel.send(msg):
                continue
            with self.cond:
                if msg is not None:
                    self.todo.appendleft(msg)
                self.cond.wait(0.005)

    def all_final(self, state: str = "sent"):
        return lambda f: all(f.final(mid) == state for mid in f.byid)


if __name__ == "__main__":
    main()
