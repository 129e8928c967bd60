"""Record batches over ZeroMQ, from probes to engines: `wire` is the message (a header and the raw
records), `sending` the probe's side (Link, Publisher), `receiving` the engine's (Receiver); this
module is what both sides share, their security.

The probe connects one DEALER per engine shard; the engine (or `touchpoint tap`) binds a ROUTER.
The end-of-stream message is acknowledged by the receiver on the same connection, with a header
carrying ACK and, as second part, JSON of what it received of that stream; a receiver that cannot
read the stream (another schema, another record size) answers its first message with REJECT and
the reason. PUSH/PULL is not used: a PUSH socket that closes while its peer is behind loses the
tail of the stream even with linger (seen with pyzmq 27.3 / libzmq 4.3.5), and it has no way back.

Sequence numbers are given when a batch is cut, before it is queued, so every batch lost after
that - dropped by the probe because a queue was full or the engine absent, or lost on a link that
broke - is a gap at the receiver.

Security: CurveZMQ (`Curve`), the engine the server, each probe a client with a key pair of its own
(zmq.auth certificate files, `touchpoint keys generate`); the engine may accept only the client
keys of a directory (ZAP, zmq.auth.thread.ThreadAuthenticator). A probe whose key is refused,
that has the wrong server key, or whose security does not match the engine's stops with the
reason (as for a rejected stream); the receiver reports each failed handshake. tcp without Curve
is allowed by default only to loopback addresses (`plain_allowed`): ipc and inproc stay local.
"""
import ipaddress
from dataclasses import dataclass

import zmq
import zmq.auth

HANDSHAKE_FAILED = zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | \
    zmq.EVENT_HANDSHAKE_FAILED_AUTH
HANDSHAKE_TRIES = 3         # handshakes failing without detail before a Curve probe gives up


def plain_allowed(endpoint: str) -> bool:
    """Whether records may travel to/from endpoint unencrypted without an explicit --plain:
    ipc and inproc (this host), tcp to or on a loopback address (127.0.0.0/8, ::1, localhost)."""
    scheme, _, rest = endpoint.partition("://")
    if scheme != "tcp":
        return True
    host = rest.rpartition(";")[2].rpartition(":")[0].strip("[]")   # tcp://[src;]host:port
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False                            # a name or an interface: may be anywhere


def load_key(path: str, secret: bool) -> tuple:
    """(public, secret) Z85 keys of a zmq.auth certificate file; secret None unless asked for."""
    try:
        public, sec = zmq.auth.load_certificate(path)
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"{path}: not a Curve key file ({e})") from None
    if secret and not sec:
        raise ValueError(f"{path} holds no secret key: give the .key_secret file of the pair")
    return public, sec


@dataclass
class Curve:
    """This side's key pair and, on a probe (client), the engine's public key."""
    public: bytes
    secret: bytes
    server: bytes | None = None

    @classmethod
    def client(cls, key_file: str, server_key_file: str) -> "Curve":
        return cls(*load_key(key_file, secret=True), server=load_key(server_key_file, secret=False)[0])

    @classmethod
    def server_keys(cls, key_file: str) -> "Curve":
        return cls(*load_key(key_file, secret=True))

    def apply(self, sock: zmq.Socket) -> None:
        sock.curve_publickey = self.public
        sock.curve_secretkey = self.secret
        if self.server is None:
            sock.curve_server = True
        else:
            sock.curve_serverkey = self.server


def handshake_failure(event: int, value: int) -> str:
    """What a failed ZMTP handshake means, for a person."""
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return f"the Curve key was refused (status {value}: not among the authorised client keys)"
    if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
        if value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
            return "security mismatch: one side uses Curve, the other does not"
        if value == zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
            return "Curve handshake failed: the client does not have this server's public key"
        return f"handshake protocol error 0x{value:x}"
    return "the connection closed during the handshake (wrong Curve server key, or a server without Curve?)"



def authenticator(ctx: zmq.Context, clients: str):
    """A ZAP authenticator on ctx that lets in only the Curve clients whose public keys (*.key)
    are in the directory `clients` (read now)."""
    from zmq.auth.thread import ThreadAuthenticator
    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.configure_curve(domain="*", location=clients)
    return auth
