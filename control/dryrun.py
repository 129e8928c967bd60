"""`touchpoint rules test`: which campaigns would fire for whom, when and why, on a capture,
without sending anything. The capture is decoded in-process and run through the same Engine
the `engine` command runs, from empty state: what an operator checks before a rule goes live."""
import json
from datetime import datetime, timezone

from touchpoint.probe.decode import decode_file

from .engine import Engine


def when(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def why(campaign, trigger) -> str:
    """The conditions that held, with the values they held for."""
    parts = [f"{trigger.event}"]
    if campaign.trigger.where.fields:
        parts.append(str(campaign.trigger.where))
    if campaign.audience.lists:
        parts.append("in " + " or ".join(campaign.audience.lists))
    if campaign.audience.where is not None:
        parts.append(str(campaign.audience.where))
    if campaign.exclude.lists:
        parts.append("not in " + ", ".join(campaign.exclude.lists))
    shown = ", ".join(f"{k}={v}" for k, v in trigger.fields.items() if v not in ("", None))
    return "; ".join(parts) + (f" ({shown})" if shown else "")


def run(ruleset, pcaps, options, lists=None, fmt: str = "table", out=None, warn=None) -> dict:
    """Decode the captures in order through one engine; print each trigger. Returns the count of
    triggers per campaign."""
    engine = Engine(ruleset, lists, warn=warn)
    by_id = {c.id: c for c in engine.campaigns}
    counts = {c.id: 0 for c in engine.campaigns}

    def show(triggers):
        for t in triggers:
            counts[t.campaign] += 1
            if fmt == "jsonl":
                d = t.to_json()
                d["why"] = why(by_id[t.campaign], t)
                print(json.dumps(d, ensure_ascii=False), file=out)
            else:
                who = f"{t.imsi or '-'} / {t.msisdn or '-'}"
                print(f"{when(t.ts_ns)}  {t.campaign:<24} {who:<34} until {when(t.deadline_ns)}  "
                      f"{why(by_id[t.campaign], t)}", file=out)

    for path in pcaps:
        for batch in decode_file(path, options):
            show(engine.process(batch))
    show(engine.finish())
    for c in engine.campaigns:              # a campaign that would reach nobody says so
        if c.audience.lists or c.audience.where is not None or c.exclude.lists or c.exclude.where is not None:
            steps = engine.audience(c)
            if engine.state.count and not steps[-1][1] and warn:
                warn(f"{c.id}: its audience is empty at the end of the capture (" +
                     ", ".join(f"{w}: {n:,}" for w, n in steps) + ")")
    return counts
