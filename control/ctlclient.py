"""The control socket's client: one request to a running engine (`touchpoint ctl`, the demo).

The engine's side is control.ctl; the human tables of the replies are control.cli.ctlrender.
"""

import getpass
import json
import os
import time

import zmq
from zmq.utils.monitor import recv_monitor_message

from touchpoint.probe.transport import HANDSHAKE_FAILED, Curve, handshake_failure, secure

TIMEOUT = 5.0                       # seconds the client waits for a reply


class Unreachable(Exception):
    """No reply from the control socket: nothing there, a timeout, or (`keys`) a failed handshake."""

    def __init__(self, message: str, keys: bool = False):
        super().__init__(message)
        self.keys = keys


def request(endpoint: str, cmd: str, args: dict | None = None, *, curve: Curve | None = None,
            token: bytes | None = None, timeout: float = TIMEOUT) -> dict:
    """Send one request, wait for its reply. Raises Unreachable with what to check. tcp without
    Curve gives the token (probe.transport.load_token)."""
    if endpoint.startswith("ipc://") and not os.path.exists(endpoint[6:]):
        raise Unreachable(f"no control socket at {endpoint[6:]}")
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        mechanism = secure(sock, endpoint, curve, token, server=False)
    except ValueError as e:
        sock.close(linger=0)
        ctx.term()
        raise Unreachable(str(e), keys=True) from None
    monitor = sock.get_monitor_socket(HANDSHAKE_FAILED)     # a refused key: say so now, not in 5 s
    try:
        try:
            sock.connect(endpoint)
        except zmq.ZMQError as e:
            raise Unreachable(f"cannot connect to {endpoint}: {e}") from None
        claim = {"user": _user(), "pid": os.getpid()}
        sock.send(json.dumps({"cmd": cmd, "args": args or {}, "from": claim}, ensure_ascii=False).encode())
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            ready = dict(poller.poll(int(left * 1000) + 1))
            if monitor in ready:
                ev = recv_monitor_message(monitor)
                raise Unreachable(handshake_failure(ev["event"], ev["value"], mechanism), keys=True)
            if sock in ready:
                try:
                    reply = json.loads(sock.recv())
                except ValueError as e:
                    raise Unreachable(f"{endpoint} answered something that is not a ctl reply ({e})") from None
                if not isinstance(reply, dict) or "ok" not in reply:
                    raise Unreachable(f"{endpoint} answered something that is not a ctl reply")
                return reply
        raise Unreachable(f"no answer within {timeout:g} s")
    finally:
        sock.disable_monitor()
        monitor.close(linger=0)
        sock.close(linger=0)
        ctx.term()


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):             # a uid without a name (containers)
        return f"uid {os.getuid()}"
