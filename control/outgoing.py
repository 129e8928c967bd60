"""What every channel shares: the message going out, the interface the dispatcher calls, the rate
bucket (control.channels has the channels, control.mms the MMS one)."""
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


def say_as(name: str):
    return lambda line: write_line(sys.stderr, f"touchpoint {name} channel: {line}")
