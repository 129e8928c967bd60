"""The control socket: `touchpoint ctl` steers a running engine over ZeroMQ REQ/REP.

A request is one JSON object `{"cmd": NAME, "args": {...}}`; the reply is `{"ok": true, "result":
...}` or `{"ok": false, "error": "why"}`. The engine binds a REP socket (`ControlServer`, by default
ipc://DATA/ctl.sock) and answers from its own loop, between batches: the engine's state is only
ever touched by that one thread. `Commands` translates each request into calls on the engine
server and its dispatcher and nothing more. The client is control.ctlclient, its tables
control.cli.ctlrender.

tcp goes only with CurveZMQ (the engine a Curve server with a key pair from `touchpoint keys
generate`, and only the client keys of a directory get in), except on loopback, as for the
probe links (probe.transport.plain_allowed), where the client gives the token instead; the ipc
socket is for its owner only. Each request is logged with who made it: the name the socket
authenticated (the Curve key's file, or `touchpoint` for the token), the peer's address, and
the user and process the client says it runs as.
"""
import json
import os
import re
import time

import zmq

from touchpoint.probe.transport import Curve, authenticator, plain_allowed, private_ipc, secure

MAX_REQUEST = 64 << 10              # bytes: a larger request drops the connection (libzmq MAXMSGSIZE)
MSISDN_RE = re.compile(r"\+?(\d{1,15})")
CAMPAIGN_RE = re.compile(r"[a-z0-9_-]+")
MESSAGE_ID_RE = re.compile(r"[0-9a-f]{8,64}")


def default_endpoint(data_dir: str, shard: int = 0) -> str:
    """ipc://DATA/ctl.sock (ctl-N.sock for shard N > 0: shards may share a data directory)."""
    name = "ctl.sock" if shard == 0 else f"ctl-{shard}.sock"
    return "ipc://" + os.path.join(os.path.abspath(data_dir), name)


class CtlError(ValueError):
    """The control socket cannot be set up (an endpoint, a key): a usage error of the engine."""


class Refused(Exception):
    """A request the engine will not carry out; the message says why."""


def check_security(endpoint: str, curve: Curve | None, clients: str | None) -> None:
    """tcp off loopback only with Curve and a client key directory: ctl can pause campaigns."""
    if curve is None and not plain_allowed(endpoint):
        raise CtlError(f"{endpoint} is not on loopback: the control socket needs --ctl-curve-key and "
                       f"--ctl-curve-clients there (see `touchpoint keys generate`)")
    if curve is not None and not clients:
        raise CtlError("--ctl-curve-key needs --ctl-curve-clients DIR: the public keys of who may steer the engine")
    if clients and curve is None:
        raise CtlError("--ctl-curve-clients goes with --ctl-curve-key")


# --- the engine's side ---------------------------------------------------------------------------

class ControlServer:
    """A REP socket, in a context of its own (its Curve authenticator must not judge the probes'
    links). The engine polls `sock` with its receiver and calls `serve()` in its loop."""

    def __init__(self, endpoint: str, handle, *, curve: Curve | None = None, clients: str | None = None,
                 token: bytes | None = None, say=None):
        check_security(endpoint, curve, clients)
        self.handle = handle                # (cmd, args) -> result; raises Refused
        self.say = say or (lambda line: None)
        self.ctx = zmq.Context()
        self.auth = None
        try:
            self.sock = self.ctx.socket(zmq.REP)
            self.sock.setsockopt(zmq.LINGER, 0)
            self.sock.setsockopt(zmq.MAXMSGSIZE, MAX_REQUEST)
            self.mechanism = secure(self.sock, endpoint, curve, token, server=True)
            if clients or self.mechanism == "token":
                self.auth = authenticator(self.ctx, clients, token)
            self.sock.bind(endpoint)
            self.endpoint = self.sock.last_endpoint.decode()
            private_ipc(self.endpoint)
        except ValueError as e:
            self.close()
            raise CtlError(str(e)) from None
        except zmq.ZMQError as e:
            self.close()
            raise CtlError(f"cannot bind the control socket on {endpoint}: {e}") from None

    def serve(self) -> int:
        """Answer the requests that are waiting, without blocking; returns how many."""
        n = 0
        while self.sock.poll(0, zmq.POLLIN):
            frames = self.sock.recv_multipart(copy=False)
            self.sock.send(json.dumps(self._answer(frames), ensure_ascii=False, default=str).encode())
            n += 1
        return n

    def _answer(self, frames) -> dict:
        try:
            cmd, args, claim = parse_request([f.bytes for f in frames])
            self.say(f"ctl {describe(cmd, args)} by {self.who(frames[0], claim)}")
            return {"ok": True, "result": self.handle(cmd, args)}
        except Refused as e:
            return {"ok": False, "error": str(e)}
        except Exception as e:  # noqa: BLE001 - a bug must not take the engine down with it
            self.say(f"ctl: internal error: {type(e).__name__}: {e}")
            return {"ok": False, "error": f"internal error: {type(e).__name__}: {e} (see the engine's log)"}

    def security(self) -> str:
        return {"curve": "Curve: the client keys of a directory", "token": "token"}.get(self.mechanism, "local (ipc)")

    def who(self, frame: zmq.Frame, claim: dict) -> str:
        """Who sent a request: what the socket knows of the peer, then what the client says."""
        known = {"token": "the token", "curve": f"Curve key {_property(frame, 'User-Id')}"}.get(
            self.mechanism, "the local socket")
        peer = _property(frame, "Peer-Address") if self.mechanism != "none" else ""
        said = f"{claim.get('user')!s:.32} pid {claim.get('pid')!s:.10}" if claim else "a client that did not say"
        return f"{said} ({known}{', from ' + peer if peer else ''})"

    def close(self) -> None:
        if getattr(self, "sock", None) is not None:
            self.sock.close(linger=0)
        if self.auth:
            self.auth.stop()
        self.ctx.term()


def _property(frame: zmq.Frame, name: str) -> str:
    try:
        return frame.get(name)
    except zmq.ZMQError:                    # not set for this transport or mechanism
        return ""


def describe(cmd: str, args: dict) -> str:
    """A request for the log: its command and campaign, never a subscriber's number."""
    campaign = args.get("campaign")
    return f"{cmd!s:.32}" + (f" {args.get('action')!s:.8}" if "action" in args else "") + \
        (f" campaign {campaign!s:.64}" if campaign else "")


def parse_request(frames) -> tuple:
    """(cmd, args, what the client says of itself)."""
    if len(frames) != 1:
        raise Refused(f"a request of {len(frames)} parts: send one JSON object")
    try:
        req = json.loads(frames[0])
    except ValueError as e:
        raise Refused(f"the request is not JSON: {e}")
    if not isinstance(req, dict) or not isinstance(req.get("cmd"), str):
        raise Refused('a request is {"cmd": NAME, "args": {...}}')
    args = req.get("args", {})
    if not isinstance(args, dict):
        raise Refused(f"{req['cmd']}: args must be an object")
    claim = req.get("from")
    return req["cmd"], args, claim if isinstance(claim, dict) else {}


def arg(args: dict, name: str, pattern: re.Pattern, what: str, required: bool = True) -> str | None:
    v = args.get(name)
    if v is None:
        if required:
            raise Refused(f"{name} is needed ({what})")
        return None
    m = pattern.fullmatch(v) if isinstance(v, str) else None
    if m is None:
        raise Refused(f"{name} {v!r} is not {what}")
    return m.group(m.lastindex or 0)


class Commands:
    """Each command is a method; its arguments are checked here, the work is the engine's
    (`srv`, a control.server.EngineServer) and its dispatcher's."""

    NAMES = ("status", "campaigns", "audience", "subscriber", "pause", "resume", "reload", "optout", "lists", "pending",
             "approve", "reject", "send", "export")
    ARGS = {"optout": {"action", "msisdn", "campaign"}, "pause": {"campaign"}, "resume": {"campaign"},
            "audience": {"campaign"}, "subscriber": {"msisdn"},
            "pending": {"campaign"}, "approve": {"campaign", "id"}, "reject": {"campaign", "id"},
            "send": {"campaign", "limit", "dry_run"}}

    def __init__(self, srv):
        self.srv = srv

    def __call__(self, cmd: str, args: dict):
        if cmd not in self.NAMES:
            raise Refused(f"unknown command {cmd!r} (commands: {', '.join(self.NAMES)})")
        extra = set(args) - self.ARGS.get(cmd, set())
        if extra:
            raise Refused(f"{cmd}: unknown argument {sorted(extra)[0]!r}")
        return getattr(self, cmd)(args)

    @property
    def dispatcher(self):
        d = getattr(self.srv, "dispatcher", None)
        if d is None:
            raise Refused("this engine runs without a dispatcher")
        return d

    def campaign(self, args: dict, required: bool = True) -> str | None:
        cid = arg(args, "campaign", CAMPAIGN_RE, "a campaign id", required)
        if cid is not None and cid not in self.srv.campaigns():
            known = ", ".join(sorted(self.srv.campaigns())) or "none"
            raise Refused(f"no campaign {cid!r} in {self.srv.cfg.rules_dir} (campaigns: {known})")
        return cid

    def status(self, args: dict) -> dict:
        srv, e = self.srv, self.srv.engine
        up = time.monotonic() - srv.started
        m = e.memory()
        streams = [{"probe": s.probe_id, "shard": s.shard, "epoch": s.epoch, "peer": s.peer, "ended": s.ended,
                    **s.summary()} for s in (srv.rx.streams.values() if srv.rx else ())]
        engine = {"shard": srv.cfg.shard, "uptime_s": round(up, 1), "records": e.records,
                  "records_per_s": round(e.records / up, 1) if up else 0.0, "subscribers": m["subscribers"],
                  "state_bytes": m["allocated_bytes"], "rss_bytes": rss_bytes(), "triggers": e.triggers,
                  "batches_lost": srv.lost, "stream_errors": srv.errors, "active_campaigns": len(e.campaigns),
                  "lists_reloaded": e.lists.generation if e.lists is not None else 0,
                  "missing_lists": sorted(e.missing_lists), "streams": streams}
        d = getattr(srv, "dispatcher", None)
        return {"engine": engine, "dispatcher": d.status() if d is not None else None}

    def campaigns(self, args: dict) -> list:
        d = getattr(self.srv, "dispatcher", None)
        overrides = d.overrides() if d is not None else {}
        counts = d.campaign_counts() if d is not None else {}
        out = []
        active = {c.id for c in self.srv.engine.campaigns}
        for c in self.srv.campaigns().values():
            n = counts.get(c.id, {})
            audience = self.srv.engine.audience(c)[-1][1] if c.id in active else None
            out.append({"id": c.id, "name": c.name, "status": overrides.get(c.id, c.status), "rule_status": c.status,
                        "override": overrides.get(c.id), "send": c.send, "priority": c.priority,
                        "triggers": self.srv.fired.get(c.id, 0), "sent": n.get("sent", 0) + n.get("delivered", 0),
                        "pending": n.get("pending", 0), "queued": n.get("queued", 0), "expired": n.get("expired", 0),
                        "suppressed": n.get("suppressed", 0), "audience": audience})
        return out

    def audience(self, args: dict) -> dict:
        cid = self.campaign(args)
        try:
            steps = self.srv.engine.audience(self.srv.campaigns()[cid])
        except LookupError as e:
            raise Refused(str(e)) from None
        return {"campaign": cid, "steps": [{"what": w, "subscribers": n} for w, n in steps],
                "audience": steps[-1][1]}

    def subscriber(self, args: dict) -> dict:
        """One subscriber's state, profile and marketing trail (the client masks the numbers)."""
        msisdn = arg(args, "msisdn", MSISDN_RE, "an MSISDN (up to 15 digits)")
        known = self.srv.engine.subscriber(msisdn)
        d = getattr(self.srv, "dispatcher", None)
        trail = d.trail(msisdn) if d is not None else []
        if known is None and not trail:
            raise Refused("no such subscriber in this engine's state or outbox")
        return {"msisdn": msisdn, "state": known, "trail": trail,
                "optouts": d.optout_check(msisdn) if d is not None else []}

    def pause(self, args: dict) -> dict:
        cid = self.campaign(args)
        self.dispatcher.pause(cid)
        self.srv.say(f"ctl: campaign {cid} paused")
        return {"campaign": cid, "status": "paused"}

    def resume(self, args: dict) -> dict:
        cid = self.campaign(args)
        c = self.srv.campaigns()[cid]
        if c.status != "active":
            raise Refused(f"campaign {cid} is {c.status!r} in {c.file}: set `status: active` there and reload")
        self.dispatcher.resume(cid)
        self.srv.say(f"ctl: campaign {cid} resumed")
        return {"campaign": cid, "status": "active"}

    def export(self, args: dict) -> dict:
        """--export: the marketing data pool now (control.pool), as each --export-every does."""
        if self.srv.events is None:
            raise Refused("this engine does not export: start it with --export POOL")
        return self.srv._export()

    def reload(self, args: dict) -> dict:
        errors, summary = self.srv.reload_rules()
        if errors:
            more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
            raise Refused(f"rules not reloaded, the rules in force stay: {len(errors)} errors{more}:\n" +
                          "\n".join(errors[:10]))
        return summary

    def optout(self, args: dict):
        action = args.get("action")
        if action not in ("add", "remove", "check"):
            raise Refused(f"optout: action {action!r} is not add, remove or check")
        msisdn = arg(args, "msisdn", MSISDN_RE, "an MSISDN (up to 15 digits)")
        cid = self.campaign(args, required=False)
        d = self.dispatcher
        if action == "check":
            return {"msisdn": msisdn, "optouts": d.optout_check(msisdn)}
        stopped = 0
        if action == "add":
            stopped = d.optout_add(msisdn, cid or "*")
        elif not d.optout_remove(msisdn, cid or "*"):
            raise Refused(f"{msisdn} has no opt-out " + (f"for campaign {cid}" if cid else "from all campaigns") +
                          " set by ctl")
        self.srv.say(f"ctl: opt-out {'added' if action == 'add' else 'removed'}"
                     + (f" for campaign {cid}" if cid else "") + (f", {stopped} messages stopped" if stopped else ""))
        return {"msisdn": msisdn, "campaign": cid or "*", "action": action, "stopped": stopped}

    def lists(self, args: dict) -> list:
        from .lists import TAC, ListError, read_meta
        store = self.srv.engine.lists
        if store is None:
            return []
        used = {}
        for c in self.srv.campaigns().values():
            for name in (*c.audience.lists, *c.exclude.lists):
                used.setdefault(name, []).append(c.id)
        names = store.names() + ([TAC] if store.tac() is not None else [])
        out = []
        for name in sorted(set(names) | set(used)):
            row = {"name": name, "used_by": used.get(name, [])}
            try:
                m = read_meta(store.root / name)
                row.update(rows=m["rows"], columns=[c["name"] for c in m["columns"]], generation=m["generation"],
                           imported_at=m["imported_at"], source=m["source"])
            except ListError as e:
                row["error"] = str(e) if name in names else f"not imported (touchpoint lists import {name} FILE)"
            out.append(row)
        return out

    def send(self, args: dict) -> dict:
        """A campaign to its audience now, through the contact policy (`dry_run`: the funnel only)."""
        cid = self.campaign(args)
        limit, dry_run = args.get("limit"), args.get("dry_run", False)
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
            raise Refused(f"send: limit {limit!r} is not a whole number of subscribers, 1 or more")
        if not isinstance(dry_run, bool):
            raise Refused(f"send: dry_run {dry_run!r} is not true or false")
        c = self.srv.campaigns()[cid]
        if c.status != "active":
            raise Refused(f"campaign {cid} is {c.status!r} in {c.file}: set `status: active` there and reload")
        d = getattr(self.srv, "dispatcher", None)
        if not dry_run and d is not None and cid in d.policy.paused:
            raise Refused(f"campaign {cid} is paused: `ctl resume {cid}` first")
        try:
            return self.srv.send_now(c, limit, dry_run)
        except LookupError as e:
            raise Refused(str(e)) from None

    def pending(self, args: dict) -> dict:
        cid = self.campaign(args, required=False)
        return self.dispatcher.pending(cid)

    def approve(self, args: dict) -> dict:
        return self._decide(args, "approve")

    def reject(self, args: dict) -> dict:
        return self._decide(args, "reject")

    def _decide(self, args: dict, verb: str) -> dict:
        mid = arg(args, "id", MESSAGE_ID_RE, "a message id (hex, as `ctl pending` shows)", required=False)
        cid = self.campaign(args, required=False)
        if (mid is None) == (cid is None):
            raise Refused(f"{verb}: name a campaign or a message --id (one of them)")
        n = getattr(self.dispatcher, verb)(campaign=cid, id=mid)
        if not n:
            raise Refused("nothing pending " + (f"for campaign {cid}" if cid else f"with id {mid}"))
        done = {"approve": "approved", "reject": "rejected"}[verb]
        self.srv.say(f"ctl: {n} pending messages {done}" + (f" for campaign {cid}" if cid else ""))
        return {"campaign": cid, "id": mid, done: n}


def rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None
