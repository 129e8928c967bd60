"""`touchpoint rules test`: which campaigns would fire for whom, when and why, on a capture,
and what the contact policy would make of each trigger, without sending anything. The capture
is decoded in-process and run through the same Engine the `engine` command runs, and the
triggers through the same ContactPolicy its dispatcher applies, on the records' time (as
`engine --clock records`), from empty state and an empty contact history: what an operator
checks before a rule goes live."""
import json
from collections import Counter
from datetime import datetime, timezone

import numpy as np

from touchpoint.probe.decode import decode_file

from .contacts import DryHistory
from .engine import Engine
from .policy import QUEUED, SUPPRESSED, ContactPolicy, RecordClock, message_id
from .replay import steps as replay_steps
from .schedule import Runs


def when(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def why(campaign, trigger) -> str:
    """The conditions that held, with the values they held for."""
    parts = [f"{trigger.event}"]
    if campaign.trigger is not None and trigger.event == campaign.trigger.event and campaign.trigger.where.fields:
        parts.append(str(campaign.trigger.where))
    if campaign.audience.lists:
        parts.append("in " + " or ".join(campaign.audience.lists))
    if campaign.audience.where is not None:
        parts.append(str(campaign.audience.where))
    parts += [str(h) for h in campaign.audience.contacted]
    if campaign.exclude.lists:
        parts.append("not in " + ", ".join(campaign.exclude.lists))
    parts += [f"not {h}" for h in campaign.exclude.contacted]
    shown = ", ".join(f"{k}={v}" for k, v in trigger.fields.items() if v not in ("", None))
    return "; ".join(parts) + (f" ({shown})" if shown else "")


def run(ruleset, pcaps, options, lists=None, fmt: str = "table", out=None, warn=None, policy: bool = True) -> tuple:
    """Decode the captures in order through one engine; print each trigger and, with policy,
    its decision. Returns ({campaign: triggers}, {campaign: Counter of outcomes}): "sent",
    "suppressed: cooldown", ... (empty without policy)."""
    engine = Engine(ruleset, lists, warn=warn)
    by_id = {c.id: c for c in engine.campaigns}
    counts = {c.id: 0 for c in engine.campaigns}
    decide = Decider(ruleset, lists, warn) if policy else None
    if decide is not None:
        engine.contacts = DryHistory(decide.decisions, warn)

    def show(triggers):
        triggers = list(triggers)
        decisions = decide(triggers) if decide else [None] * len(triggers)
        for t, d in zip(triggers, decisions):
            counts[t.campaign] += 1
            if fmt == "jsonl":
                j = t.to_json()
                j["why"] = why(by_id[t.campaign], t)
                if d is not None:
                    j["decision"] = {"id": d.id, "state": d.state, "reason": d.reason, "due_ns": d.due_ns}
                print(json.dumps(j, ensure_ascii=False), file=out)
            else:
                who = f"{t.imsi or '-'} / {t.msisdn or '-'}"
                what = f"  -> {outcome(d)}" if d is not None else ""
                print(f"{when(t.ts_ns)}  {t.campaign:<24} {who:<34} until {when(t.deadline_ns)}  "
                      f"{why(by_id[t.campaign], t)}{what}", file=out)

    runs = Runs()

    def process(records):                   # the scheduled runs due first, as the engine makes them
        for c, t in runs.due(engine.campaigns, ruleset.policy.tz, max(engine.state.clock_ns,
                                                                      int(records["ts_ns"].min()))):
            show(engine.scheduled(c, t))
        show(engine.process(records))

    carry = None                            # deciding: a minute of record time at a time, as the engine replays
    for path in pcaps:
        for batch in decode_file(path, options):
            if not len(batch):
                continue
            if not policy:
                process(batch)
                continue
            parts, carry = replay_steps(batch if carry is None else np.concatenate([carry, batch]),
                                        engine.state.clock_ns, False)
            for part in parts:
                process(part)
    if carry is not None and len(carry):
        process(carry)
    show(engine.finish())
    for c in engine.campaigns:              # a campaign that would reach nobody says so
        if c.audience.lists or c.audience.where is not None or c.exclude.lists or c.exclude.where is not None:
            steps = engine.audience(c)
            if engine.state.count and not steps[-1][1] and warn:
                warn(f"{c.id}: its audience is empty at the end of the capture (" +
                     ", ".join(f"{w}: {n:,}" for w, n in steps) + ")")
    return counts, decide.outcomes() if decide else {}


def outcome(d, at: bool = True) -> str:
    """What becomes of the message: "sent" (at its due time), "suppressed: cooldown", ..."""
    if d.state == QUEUED:
        return f"sent {when(d.due_ns)}" if at else "sent"
    return f"{d.state}: {d.reason}" if d.reason else d.state


class Decider:
    """The dispatcher's decisions without an outbox: the contact policy on the triggers' time,
    the messages it queued remembered so a later, higher priority can take over one not yet due."""

    def __init__(self, ruleset, lists, warn):
        self.policy = ContactPolicy(ruleset, lists, warn)
        self.clock = RecordClock()
        self.decisions = {}                 # id -> Decision, the first of each id
        self.policy.is_queued = lambda mid: self._waiting(mid)

    def _waiting(self, mid: str) -> bool:
        d = self.decisions.get(mid)
        return d is not None and d.state == QUEUED and d.due_ns > self.clock.now_ns()

    def __call__(self, triggers: list) -> list:
        for t in triggers:
            self.clock.see(t.ts_ns)
        now = self.clock.now_ns()
        ids = [message_id(t.campaign, t.imsi, t.msisdn, t.ts_ns) for t in triggers]
        fresh = {}
        for i, t in zip(ids, triggers):
            if i not in self.decisions:
                fresh.setdefault(i, t)
        for d in self.policy.decide(fresh.values(), now, list(fresh)):
            self.decisions[d.id] = d
        for mid, *_ in self.policy.superseded:      # taken over before it went out
            d = self.decisions[mid]
            d.state, d.reason, d.due_ns = SUPPRESSED, "arbitration", None
        self.policy.superseded = []
        self.policy.compact(now)
        return [self.decisions[i] for i in ids]

    def outcomes(self) -> dict:
        """{campaign: Counter of "sent", "suppressed: holdout", ...}."""
        out = {}
        for d in self.decisions.values():
            out.setdefault(d.trigger.campaign, Counter())[outcome(d, at=False)] += 1
        return out
