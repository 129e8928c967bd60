"""`generate()`: a capture of mixed traffic and its expected records; the goldens in pcaps/."""
from __future__ import annotations

import bisect
import collections
import contextlib
import json
import os
import random

from .dialogues import (
    _MAP_SCENARIOS, _MAY_FAIL, _TEMPLATES, DEFAULT_MIX, MAP_MIX, MIXED_SMALL_MIX, SS_MIX, _Dialogue,
    _finish_expect, _Gen, _scenario,
)
from .flows import _FLOW_SCENARIOS, S_ISUP, S_TCAP, _Flow, _Mixed, _step_record
from .framer import _Framer, _PcapOut
from .network import _networks, _subscribers
from .user_plane import _TunnelModel


def generate(path, *, subscribers: int = 1000, packets: int = 10000, seed: int = 1,
             start_ns: int = 1_700_000_000_000_000_000, rate_pps: float = 1000.0,
             expected_path=None, mix: dict | None = None, concurrency: int = 16,
             failures: float | bool = True, user_mtu: int = 1400) -> dict:
    """Write `packets` packets to the pcap at `path`; see the package docstring.

    mix: scenario name -> weight of a new dialogue / flow (default DEFAULT_MIX, MAP,
    CAP, ISUP, SMS and GTP; MAP_MIX for MAP only); concurrency: dialogues and flows open
    at once (interleaving); failures: share of the MAP dialogues that may fail which get
    a TCAP Abort or no answer at all (True: 3 %, False: none); user_mtu: the largest
    inner IP packet a G-PDU carries (at least 100).
    Returns {"packets", "dialogues" (dialogues and flows started), "records" (expected
    records), "bytes", "by_proto" (packets per protocol)}."""
    if packets < 0 or subscribers < 1:
        raise ValueError("packets must be >= 0 and subscribers >= 1")
    if not 100 <= user_mtu <= 1600:
        raise ValueError("user_mtu must be between 100 and 1600")
    rng = random.Random(seed)
    nets = _networks()
    subs = _subscribers(rng, nets, subscribers)
    gen = _Gen(rng, nets, subs)
    gen.fail_rate = 0.03 if failures is True else 0.0 if failures is False else float(failures)
    mixed = _Mixed(gen)
    mixed.mtu = user_mtu
    run = _Run(rng, gen, mixed, subs, _Mix(mix or DEFAULT_MIX), start_ns, 1e9 / rate_pps, concurrency)
    with open(path, "wb") as out, \
            open(expected_path, "w") if expected_path is not None else contextlib.nullcontext() as exp_out:
        run.write(out, exp_out, packets)
    return {"packets": run.emitted, "dialogues": run.dialogues, "records": run.records, "bytes": run.pcap.nbytes,
            "by_proto": dict(sorted(run.by_proto.items()))}


class _Mix:
    """The scenarios of a mix and their cumulative weights, to draw a new dialogue or flow from."""

    def __init__(self, mix: dict):
        mix = dict(mix)
        unknown = [n for n in mix if n not in _MAP_SCENARIOS and n not in _FLOW_SCENARIOS]
        if unknown:
            raise ValueError(f"unknown scenario(s) {', '.join(map(repr, unknown))}")
        self.names = list(mix)
        self.cum = []
        self.acc = 0.0
        for n in self.names:
            self.acc += mix[n]
            self.cum.append(self.acc)
        map_names = [n for n in self.names if n not in _FLOW_SCENARIOS]
        self.two_only = [n for n in map_names if n != "ul"] or map_names or ["sai"]   # two-message dialogues

    def draw(self, rng: random.Random) -> str:
        return self.names[bisect.bisect_right(self.cum, rng.random() * self.acc)]


class _Run:
    """One generate(): the dialogues and flows open at once, interleaved packet by packet, the
    capture clock, the user plane's counters and the expected records. Near the end only what
    still fits is started, so every dialogue in the file is complete."""

    def __init__(self, rng, gen, mixed, subs, mix: _Mix, start_ns: int, step: float, concurrency: int):
        self.rng, self.gen, self.mixed, self.subs, self.mix = rng, gen, mixed, subs, mix
        self.start_ns, self.step, self.jitter, self.concurrency = start_ns, step, step * 0.2, concurrency
        self.tunnels = _TunnelModel()
        self.by_proto = collections.Counter()
        self.framer = _Framer(_TEMPLATES)
        self.active: list = []
        self.pending = self.emitted = self.dialogues = self.records = 0
        self.expects = []
        self.t_off = 0.0
        self.pcap = None

    def write(self, out, exp_out, packets: int) -> None:
        rng = self.rng
        self.pcap = _PcapOut(out)
        while self.emitted < packets:
            budget = packets - self.emitted - self.pending
            if budget > 0 and len(self.active) < self.concurrency:
                d = self._start(budget)
                self.active.append(d)
                self.dialogues += 1
            else:
                d = self.active[rng.randrange(len(self.active))]
            m = d.msgs[d.pos]
            d.pos += 1
            self.pending -= 1
            self.emitted += 1
            if d.__class__ is _Dialogue:
                self._dialogue_message(d, m)
            else:
                self._flow_step(d, m)
            if len(self.pcap.frames) >= 4096:
                self._flush(exp_out)
        self.tunnels.flush(self.emitted, self.expects)
        self._flush(exp_out)

    def _start(self, budget: int):
        """A new dialogue or flow that fits in `budget` packets."""
        rng, mix = self.rng, self.mix
        sub = self.subs[rng.randrange(len(self.subs))]
        name = mix.draw(rng)
        if name in _FLOW_SCENARIOS:
            steps = _FLOW_SCENARIOS[name](self.mixed, sub, budget)
            if steps is not None:
                self.pending += len(steps)
                return _Flow(steps, rng.randrange(16))
            name = rng.choice(mix.two_only) if budget >= 2 else None     # it does not fit in what is left
        if name == "ul" and budget < 4:
            name = rng.choice(mix.two_only) if budget >= 2 else None
        if budget < 2:
            name = None
        if name is None:
            outcome = "timeout"
            name = rng.choice([n for n in mix.names if n in _MAY_FAIL] or ["sai"])
        else:
            outcome = self.gen._outcome(name in _MAY_FAIL)
        msgs, exp = _scenario(self.gen, name, sub, outcome)
        if len(msgs) > budget:                     # cannot happen, but never overrun
            msgs, exp = _scenario(self.gen, "sai", sub, "timeout")
        self.pending += len(msgs)
        return _Dialogue(msgs, exp, rng.randrange(16), 0x81 if rng.random() < 0.8 else 0x00)

    def _tick(self) -> int:
        self.t_off += self.step + (self.rng.random() - 0.5) * self.jitter
        return self.start_ns + int(self.t_off)

    def _dialogue_message(self, d, m) -> None:
        frame = self.framer.tcap(m, d.sls, d.cls)
        ts = self._tick()
        self.pcap.add(frame, ts, True)
        self.by_proto["map"] += 1
        self.tunnels.sweep(ts // 1000 * 1000, self.emitted, self.expects)
        if d.pos == 1:
            d.begin_frame = self.emitted
        if d.pos == len(d.msgs):
            self.active.remove(d)
            e = d.expect
            frame_no = d.begin_frame if "timeout" in e["flags"] else self.emitted
            self.expects.append(_finish_expect(e, frame_no))

    def _flow_step(self, d, m) -> None:
        k = m.kind
        frame, proto = self.framer.step(m, d.sls, d.cls)
        self.by_proto[proto] += 1
        ts = self._tick()
        self.pcap.add(frame, ts, k == S_TCAP or k == S_ISUP)
        tus = ts // 1000 * 1000
        self.tunnels.sweep(tus, self.emitted, self.expects)
        rec = _step_record(m, self.emitted, tus)
        if rec is not None:
            self.expects.append(rec)
        if m.learn is not None:
            for key, who in m.learn:
                self.tunnels.learn(key, who, tus)
        if m.tun is not None:
            self.tunnels.count(m.tun, m.size, tus, self.emitted, self.expects)
        if m.free is not None:
            m.free[0].discard(m.free[1])
        if d.pos == len(d.msgs):
            self.active.remove(d)

    def _flush(self, exp_out) -> None:
        self.pcap.flush()
        self.records += len(self.expects)
        if exp_out is not None and self.expects:
            exp_out.write("".join(json.dumps(e) + "\n" for e in self.expects))
        self.expects.clear()


# ---------------------------------------------------------------------------
# Goldens
# ---------------------------------------------------------------------------

GOLDENS = {
    "map_mixed_small": dict(packets=300, seed=3, subscribers=60, failures=0.12, mix=MAP_MIX),
    "map_ss_ussd": dict(packets=200, seed=11, subscribers=30, mix=SS_MIX),
    "mixed_small": dict(packets=400, seed=4, subscribers=40, rate_pps=2.0, user_mtu=240, mix=MIXED_SMALL_MIX),
}


MIXES = {"default": DEFAULT_MIX, "map": MAP_MIX, "ss": SS_MIX}


def _repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def regen_goldens(directory: str | None = None) -> list:
    """(Re)write pcaps/<name>.pcap and pcaps/<name>.expected.jsonl from the generator."""
    directory = directory or os.path.join(_repo_root(), "pcaps")
    os.makedirs(directory, exist_ok=True)
    written = []
    for name, kw in GOLDENS.items():
        p = os.path.join(directory, name + ".pcap")
        e = os.path.join(directory, name + ".expected.jsonl")
        generate(p, expected_path=e, **kw)
        written += [p, e]
    return written
