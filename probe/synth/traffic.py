"""`generate()`: a capture of mixed traffic and its expected records; the goldens in pcaps/."""
from __future__ import annotations

import bisect
import collections
import json
import os
import random

from .dialogues import (
    _MAP_SCENARIOS, _MAY_FAIL, _TEMPLATES, DEFAULT_MIX, MAP_MIX, MIXED_SMALL_MIX, SS_MIX, _Dialogue,
    _finish_expect, _Gen, _scenario,
)
from .flows import _FLOW_SCENARIOS, S_ISUP, S_TCAP, _finish_record, _Flow, _Mixed
from .framer import _Framer, _PcapOut
from .network import _networks, _subscribers
from .user_plane import _TunnelModel


def generate(path, *, subscribers: int = 1000, packets: int = 10000, seed: int = 1,
             start_ns: int = 1_700_000_000_000_000_000, rate_pps: float = 1000.0,
             expected_path=None, mix: dict | None = None, concurrency: int = 16,
             failures: float | bool = True, user_mtu: int = 1400) -> dict:
    """Write `packets` packets to the pcap at `path`; see the module docstring.

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
    tm = _TEMPLATES
    mix = dict(mix or DEFAULT_MIX)
    unknown = [n for n in mix if n not in _MAP_SCENARIOS and n not in _FLOW_SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenario(s) {', '.join(map(repr, unknown))}")
    names = list(mix)
    weights = [mix[n] for n in names]
    cum = []
    acc = 0.0
    for w in weights:
        acc += w
        cum.append(acc)
    map_names = [n for n in names if n not in _FLOW_SCENARIOS]
    two_only = [n for n in map_names if n != "ul"] or map_names or ["sai"]
    step = 1e9 / rate_pps
    jitter = step * 0.2
    tunnels = _TunnelModel()
    by_proto = collections.Counter()
    framer = _Framer(tm)
    active: list = []
    pending = 0
    emitted = 0
    dialogues = 0
    records = 0
    expects = []
    t_off = 0.0

    out = open(path, "wb")
    exp_out = open(expected_path, "w") if expected_path is not None else None
    try:
        pcap = _PcapOut(out)

        def flush():
            nonlocal records
            pcap.flush()
            records += len(expects)
            if exp_out is not None and expects:
                exp_out.write("".join(json.dumps(e) + "\n" for e in expects))
            expects.clear()

        while emitted < packets:
            budget = packets - emitted - pending
            if budget > 0 and len(active) < concurrency:
                sub = subs[rng.randrange(len(subs))]
                name = names[bisect.bisect_right(cum, rng.random() * acc)]
                d = None
                if name in _FLOW_SCENARIOS:
                    steps = _FLOW_SCENARIOS[name](mixed, sub, budget)
                    if steps is not None:
                        d = _Flow(steps, rng.randrange(16))
                        pending += len(steps)
                    else:                              # it does not fit in what is left
                        name = rng.choice(two_only) if budget >= 2 else None
                if d is None:
                    if name == "ul" and budget < 4:
                        name = rng.choice(two_only) if budget >= 2 else None
                    if budget < 2:
                        name = None
                    if name is None:
                        outcome = "timeout"
                        name = rng.choice([n for n in names if n in _MAY_FAIL] or ["sai"])
                    else:
                        outcome = gen._outcome(name in _MAY_FAIL)
                    msgs, exp = _scenario(gen, name, sub, outcome)
                    if len(msgs) > budget:                     # cannot happen, but never overrun
                        msgs, exp = _scenario(gen, "sai", sub, "timeout")
                    d = _Dialogue(msgs, exp, rng.randrange(16), 0x81 if rng.random() < 0.8 else 0x00)
                    pending += len(msgs)
                active.append(d)
                dialogues += 1
            else:
                d = active[rng.randrange(len(active))]
            m = d.msgs[d.pos]
            d.pos += 1
            pending -= 1
            emitted += 1
            if d.__class__ is _Dialogue:
                frame = framer.tcap(m, d.sls, d.cls)
                t_off += step + (rng.random() - 0.5) * jitter
                ts = start_ns + int(t_off)
                pcap.add(frame, ts, True)
                by_proto["map"] += 1
                tunnels.sweep(ts // 1000 * 1000, emitted, expects)
                if d.pos == 1:
                    d.begin_frame = emitted
                if d.pos == len(d.msgs):
                    active.remove(d)
                    e = d.expect
                    frame_no = d.begin_frame if "timeout" in e["flags"] else emitted
                    expects.append(_finish_expect(e, frame_no))
            else:
                k = m.kind
                frame, proto = framer.step(m, d.sls, d.cls)
                by_proto[proto] += 1
                t_off += step + (rng.random() - 0.5) * jitter
                ts = start_ns + int(t_off)
                pcap.add(frame, ts, k == S_TCAP or k == S_ISUP)
                tus = ts // 1000 * 1000
                tunnels.sweep(tus, emitted, expects)
                if m.exp is not None:
                    expects.append(_finish_record(m.exp, emitted))
                if m.learn is not None:
                    for key, who in m.learn:
                        tunnels.learn(key, who, tus)
                if m.tun is not None:
                    tunnels.count(m.tun, m.size, tus, emitted, expects)
                if m.free is not None:
                    m.free[0].discard(m.free[1])
                if d.pos == len(d.msgs):
                    active.remove(d)
            if len(pcap.frames) >= 4096:
                flush()
        tunnels.flush(emitted, expects)
        flush()
    finally:
        out.close()
        if exp_out is not None:
            exp_out.close()
    return {"packets": emitted, "dialogues": dialogues, "records": records, "bytes": pcap.nbytes,
            "by_proto": dict(sorted(by_proto.items()))}


# ---------------------------------------------------------------------------
# Goldens
# ---------------------------------------------------------------------------

GOLDENS = {
    "map_mixed_small": dict(packets=300, seed=3, subscribers=60, failures=0.12, mix=MAP_MIX),
    "map_ss_ussd": dict(packets=200, seed=11, subscribers=30, mix=SS_MIX),
    "mixed_small": dict(packets=400, seed=16, subscribers=40, rate_pps=2.0, user_mtu=240, mix=MIXED_SMALL_MIX),
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
