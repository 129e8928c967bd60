"""What every channel shares: the message going out, the interface the dispatcher calls, the rate
bucket, the workers of the channels that post (control.channels has the channels, control.mms
the MMS one)."""
import queue
import sys
import threading
import time
from dataclasses import dataclass

from touchpoint.probe.logline import write_line


@dataclass(frozen=True)
class Outgoing:
    id: str                 # the outbox's message id: the idempotency key
    msisdn: str             # international format, digits only
    source: str             # the SMPP source address / service code ("": the channel's default)
    text: str
    campaign: str
    slides: tuple = ()      # a picture message's pages (campaigns.Slide: their images)


class Channel:
    """What the dispatcher calls (control.channels says how). `idempotent`: offering a message
    twice sends it once, so a message a crash left half-sent may be offered again."""
    name = ""
    idempotent = False

    def start(self, on_result, on_mo=None) -> None:
        raise NotImplementedError

    def send(self, msg: Outgoing) -> bool:
        raise NotImplementedError

    def health(self) -> dict:
        raise NotImplementedError

    def stop(self, timeout: float = 5.0) -> None:
        raise NotImplementedError


class Bucket:
    """At most `rate` takes a second (None: no limit), with a burst of a tenth of a second."""

    def __init__(self, rate: float | None):
        self.rate = rate
        self.burst = max(1.0, (rate or 0) / 10)
        self.tokens = self.burst
        self.at = time.monotonic()
        self.lock = threading.Lock()

    def wait(self) -> float:
        """0 and one token taken, or the seconds until one is there."""
        if not self.rate:
            return 0.0
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
            self.at = now
            if self.tokens >= 1:
                self.tokens -= 1
                return 0.0
            return (1 - self.tokens) / self.rate


class Posting(Channel):
    """A channel of HTTP requests: `workers` threads, each taking a message from a bounded queue
    and handing it to `_deliver(msg, conn) -> conn` (the connection it keeps, or None), which
    reports the message's outcome through `_result`. The HTTP and MMS channels are this."""

    def __init__(self, url: str, url_u, workers: int, timeout: float, rate, say, counts: dict):
        self.url, self.u = url, url_u
        self.workers, self.timeout = workers, float(timeout)
        self.bucket = Bucket(rate)
        self.say = say or say_as(self.name)
        self.queue = queue.Queue(maxsize=4 * workers)
        self.threads = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.busy = 0
        self.counts = counts
        self.last_error = ""
        self.ok_at = None

    def start(self, on_result, on_mo=None) -> None:
        self.on_result = on_result
        for i in range(self.workers):
            t = threading.Thread(target=self._work, name=f"{self.name} channel {i}", daemon=True)
            t.start()
            self.threads.append(t)

    def send(self, msg: Outgoing) -> bool:
        if self.stopping.is_set() or not self.threads:
            return False
        try:
            self.queue.put_nowait(msg)
        except queue.Full:
            return False
        return True

    def health(self) -> dict:
        return {"channel": self.name, "url": self.url, "connected": self.ok_at is not None and not self.last_error,
                "in_flight": self.busy + self.queue.qsize(), **self.counts, "last_error": self.last_error}

    def stop(self, timeout: float = 5.0) -> None:
        """Stop taking messages; what waits or is being tried again goes back as `retry`."""
        self.stopping.set()
        end = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, end - time.monotonic()) + self.timeout)
        while True:
            try:
                msg = self.queue.get_nowait()
            except queue.Empty:
                break
            self._result(msg.id, "retry", "stopped")

    def _result(self, mid, state, reason="", smsc_id=None) -> None:
        key = "retried" if state == "retry" else state
        self.counts[key] = self.counts.get(key, 0) + 1
        try:
            self.on_result(mid, state, reason, smsc_id=smsc_id)
        except Exception as e:  # noqa: BLE001 - the dispatcher's callback failing must not lose the result
            self.say(f"on_result failed: {type(e).__name__}: {e}")

    def _work(self) -> None:
        conn = None
        while not self.stopping.is_set():
            try:
                msg = self.queue.get(timeout=0.2)
            except queue.Empty:
                continue
            with self.lock:
                self.busy += 1
            try:
                conn = self._deliver(msg, conn)
            except Exception as e:      # noqa: BLE001 - a message this worker cannot send must not end it
                if conn is not None:
                    conn.close()
                conn = None
                self._result(msg.id, "failed", f"{type(e).__name__}: {e}")
            finally:
                with self.lock:
                    self.busy -= 1
        if conn is not None:
            conn.close()

    def _deliver(self, msg: Outgoing, conn):
        raise NotImplementedError


def say_as(name: str):
    return lambda line: write_line(sys.stderr, f"touchpoint {name} channel: {line}")
