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

tcp without Curve still authenticates, even on loopback, where any local user could otherwise
feed an engine or steer it: with a secret token (ZMTP's PLAIN mechanism, user `touchpoint`), read
from the token file (`token_path`: per user, mode 0600, made by whichever side needs it first). An
ipc socket is left to its file's mode: the binding side makes it 0600.
"""
import hmac
import ipaddress
import os
import secrets
from dataclasses import dataclass

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

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


def handshake_failure(event: int, value: int, mechanism: str = "", server: bool = False) -> str:
    """What a failed ZMTP handshake means, for a person; mechanism is what this side uses: "curve"
    or "token"."""
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        if mechanism == "token":
            return f"the token was refused (status {value}): not the same token file as the other side's " \
                   f"(see --token-file)"
        return f"the Curve key was refused (status {value}: not among the authorised client keys)"
    if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
        if value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
            return "security mismatch: the two sides use different mechanisms (Curve, a token, none)"
        if value == zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
            return "Curve handshake failed: the client does not have this server's public key"
        return f"handshake protocol error 0x{value:x}"
    if server:
        return "the connection closed during the handshake (by the client)"
    if mechanism == "token":
        return "the connection closed during the handshake (a server that takes no token?)"
    return "the connection closed during the handshake (wrong Curve server key, or a server without Curve?)"


# --- the token ---------------------------------------------------------------------------------

TOKEN_USER = "touchpoint"


def token_path() -> str:
    """$TOUCHPOINT_TOKEN_FILE, else $XDG_CONFIG_HOME/touchpoint/token (~/.config/touchpoint/token):
    one per user, so that the same user's engines, probes and ctl find each other's."""
    path = os.environ.get("TOUCHPOINT_TOKEN_FILE")
    if path:
        return path
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "touchpoint", "token")


def load_token(path: str | None = None) -> bytes:
    """The secret of the token file (made, 0600 in a 0700 directory, when there is none yet).
    Raises ValueError when it cannot be read or others may read it."""
    path = path or token_path()
    try:
        if not os.path.exists(path):
            _make_token(path)
        st = os.stat(path)
        if st.st_mode & 0o007:
            raise ValueError(f"others may read it (mode {st.st_mode & 0o777:o}): chmod 600 {path}")
        with open(path, "rb") as f:
            secret = f.read(1024).strip()
    except OSError as e:
        raise ValueError(f"token file {path}: {e.strerror or e}") from None
    except ValueError as e:
        raise ValueError(f"token file {path}: {e}") from None
    if not secret:
        raise ValueError(f"token file {path} is empty")
    return secret


def _make_token(path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
    write_once(path, secrets.token_urlsafe(32).encode() + b"\n")


def write_once(path: str, content: bytes) -> None:
    """A file of its owner's alone (0600), written aside, then linked into place: a side reading
    it at the same moment gets the whole content or makes its own attempt, which loses to the
    first one (the token; the data pool's id and key)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


def needs_token(endpoints, curve) -> bool:
    """tcp endpoints without Curve authenticate with the token."""
    return curve is None and any(ep.startswith("tcp://") for ep in endpoints)


def secure(sock: zmq.Socket, endpoint: str, curve, token: bytes | None, *, server: bool) -> str:
    """Set sock's security for the next bind or connect to endpoint (libzmq takes the options as they
    are then); returns the mechanism: "curve", "token" or "none" (ipc, inproc: local)."""
    if curve is not None:
        curve.apply(sock)
        return "curve"
    if endpoint.startswith("tcp://"):
        if token is None:
            raise ValueError(f"{endpoint}: tcp needs the token (or Curve keys)")
        if server:
            sock.plain_server = True
        else:
            sock.plain_username = TOKEN_USER.encode()
            sock.plain_password = token
        return "token"
    if server:
        sock.plain_server = False                   # back to NULL
    return "none"


def private_ipc(endpoint: str) -> None:
    """A bound ipc socket's file, for its owner only."""
    if endpoint.startswith("ipc://") and not endpoint[6:].startswith("@"):     # @: abstract, no file
        os.chmod(endpoint[6:], 0o600)


class _Authenticator(ThreadAuthenticator):
    """ZAP for a context's sockets: the token (compared in constant time) and the Curve client
    keys; a Curve client is known by its key file's name."""

    def __init__(self, ctx, token: bytes | None, names: dict):
        super().__init__(ctx)
        self.token = token
        self.names = names

    def _authenticate_plain(self, domain, username, password):
        if self.token is not None and username == TOKEN_USER and \
                hmac.compare_digest(password.encode("utf-8", "replace"), self.token):
            return True, b"OK"
        return False, b"wrong token"

    def curve_user_id(self, client_public_key: bytes) -> str:
        key = z85.encode(client_public_key)
        return self.names.get(key, "key " + key.decode()[:8])


def authenticator(ctx: zmq.Context, clients: str | None = None, token: bytes | None = None):
    """A ZAP authenticator on ctx: tcp clients with the token get in, and Curve clients whose
    public keys (*.key) are in the directory `clients` (read now), or any Curve client without
    `clients` (its sockets check the server key only)."""
    names = {}
    if clients:
        for name in sorted(os.listdir(clients)):
            if name.endswith(".key"):
                try:
                    names[zmq.auth.load_certificate(os.path.join(clients, name))[0]] = name
                except (OSError, ValueError):
                    pass                            # zmq.auth passes over it too
    auth = _Authenticator(ctx, token, names)
    auth.start()
    auth.configure_curve(domain="*", location=clients or zmq.auth.CURVE_ALLOW_ANY)
    return auth
