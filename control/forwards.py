"""Seed-MMS forwards: how far a campaign's picture message travelled (`track_forwards`).

The engine notes each MMS notification that carries a tracked seed, by its subject's hash (the
record's subject_hash: the forward prefixes off) or, without a subject, by its size within the
seed's tolerance, in DATA/forwards-shard-N.jsonl: campaign, ts_ns, to (the recipient's MSISDN),
from (the sender's), octets. Its shard sees only its own recipients, so who forwarded whose copy
is worked out here, from every shard's notes and the outbox, in time order (trail()):

- generation 0 holds the seed: those the campaign's message was sent to (the outbox), and those
  notified of it from the seed's own address (`from`, the campaign's source);
- a notification to B from a holder A is a forward; B becomes a holder of A's generation + 1,
  unless it already holds one (a loop or a second copy is a forward, not a new reach);
- a notification from someone who holds no copy (it came from outside the network, or before
  its sender was seen) is counted apart, `unlinked`.

A note is made again when the engine replays its journal after a crash: trail() takes each
(campaign, ts_ns, to, from) once.

With a goal, the campaign's conversions are shown for three groups: those the seed was sent to,
those held out, and those a forward reached (from the window control.goals opened at the first
notification of the seed each recipient got; a reply goal has none, their copy is no message of
the campaign to answer).
"""
import glob
import json
import os
from datetime import datetime, timedelta, timezone

import numpy as np

from touchpoint.probe.record import NO_DIGITS, unpack

from .events import Event
from .goals import REACHED
from .report import _connect, _from_list, _goal_text, _pct, _pyplot, day_of, wilson

HOUR_NS = 3600 * 10**9


class ForwardLog:
    """The engine's side: the notifications of the tracked seeds, appended as they come."""

    def __init__(self, data_dir: str, shard: int = 0):
        self.path = os.path.join(data_dir, f"forwards-shard-{shard}.jsonl")
        self.noted = 0

    def observe(self, campaigns, records: np.ndarray, events: np.ndarray, rows: np.ndarray) -> list:
        """Note the MMS notifications among `records` (the engine's `events` of them, `rows` its
        state's rows) that carry a tracked seed. Returns their recipients as control.goals takes
        them, (campaign, ts_ns, imsi, msisdn) arrays: whoever a forward reached gets a window to
        reach the campaign's goal in (those trail() finds reached are counted)."""
        tracked = [c for c in campaigns if c.forwards is not None]
        if not tracked or not len(events):
            return []
        ev = events[(events["event"] == Event.MMS_MT) & (events["rec"] >= 0)]
        if not len(ev):
            return []
        rec = records[ev["rec"]]
        lines, notified = [], []
        for c in tracked:
            f = c.forwards
            hit = (rec["subject_hash"] == np.uint64(f.subject_hash)) if f.subject_hash else np.zeros(len(rec), bool)
            if f.size:
                size = rec["octets"].astype(np.float64)
                hit |= (rec["subject_hash"] == 0) & (np.abs(size - f.size) <= f.tolerance * f.size)
            if not hit.any():
                continue
            known = rows["msisdn"][ev["sub"][hit]]
            to = np.where(known != NO_DIGITS, known, rec["msisdn"][hit])
            imsi = rows["imsi"][ev["sub"][hit]]
            notified.append((c.id, rec["ts_ns"][hit], np.where(imsi != NO_DIGITS, imsi, rec["imsi"][hit]), to))
            for ts, t, sender, size in zip(rec["ts_ns"][hit].tolist(), unpack(to).tolist(),
                                           unpack(rec["peer"][hit]).tolist(), rec["octets"][hit].tolist()):
                if t:                   # a recipient without an MSISDN cannot be followed further
                    lines.append(json.dumps({"campaign": c.id, "ts_ns": ts, "to": t, "from": sender,
                                             "octets": size}) + "\n")
        if lines:
            with open(self.path, "a", encoding="utf-8") as out:
                out.writelines(lines)
            self.noted += len(lines)
        return notified


class ForwardsError(Exception):
    """No trail to show: the message says why."""


def trail(data_dir: str, campaign) -> dict:
    """The forwards of `campaign`'s seed (a Campaign with forwards) from the data directory."""
    seeded, windows = {}, []
    if got := _connect(data_dir):
        db, has_conv = got
        try:
            seeded = dict(db.execute("SELECT msisdn, min(sent_ns) FROM messages WHERE campaign = ? "
                                     "AND sent_ns IS NOT NULL GROUP BY msisdn", (campaign.id,)))
            if has_conv and campaign.goal is not None:
                windows = db.execute("SELECT c.holdout, c.start_ns, c.end_ns, c.converted_ns, c.msisdn, c.imsi "
                                     "FROM conversions c LEFT JOIN messages m ON m.id = c.message "
                                     "WHERE c.campaign = ? AND (m.id IS NOT NULL OR c.holdout = ?)",
                                     (campaign.id, REACHED)).fetchall()
        finally:
            db.close()
    notes = set()
    for path in sorted(glob.glob(os.path.join(data_dir, "forwards-shard-*.jsonl"))):
        with open(path, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                try:
                    x = json.loads(line)
                    if x["campaign"] == campaign.id:
                        notes.add((int(x["ts_ns"]), str(x["to"]), str(x["from"]), int(x.get("octets", 0))))
                except (ValueError, KeyError, TypeError):
                    raise ForwardsError(f"{path}:{n}: not a forward note: {line[:60]!r}") from None
    if not seeded and not notes:
        raise ForwardsError(f"{campaign.id}: no seed sent and no notification of it seen in {data_dir}")
    holders = {m: (0, t) for m, t in seeded.items()}        # msisdn -> (generation, since)
    days, hours, by_sender, gens = {}, {}, {}, {0: len(holders)}
    unlinked = 0
    sender = campaign.forwards.sender
    for ts, to, frm, _ in sorted(notes):
        day = days.setdefault(day_of(ts), {"forwards": 0, "reached": 0, "seeded": 0})
        hour = hours.setdefault(ts // HOUR_NS, [0, 0])
        if sender and frm == sender:                            # the seed itself, notified
            if to not in holders:
                holders[to] = (0, ts)
                gens[0] = gens.get(0, 0) + 1
                day["seeded"] += 1
            continue
        if frm not in holders or holders[frm][1] > ts:
            unlinked += 1
            continue
        day["forwards"] += 1
        hour[0] += 1
        by_sender[frm] = by_sender.get(frm, 0) + 1
        if to not in holders:
            g = holders[frm][0] + 1
            holders[to] = (g, ts)
            gens[g] = gens.get(g, 0) + 1
            day["reached"] += 1
            hour[1] += 1
    table, forwards, reached = [], 0, 0
    for day in sorted(days):
        d = days[day]
        forwards += d["forwards"]
        reached += d["reached"]
        table.append({"day": day, **d, "forwards_total": forwards, "reached_total": reached})
    top = sorted(by_sender.items(), key=lambda x: (-x[1], x[0]))[:10]
    return {"campaign": campaign.id, "seeded": gens.get(0, 0), "forwards": forwards, "reached": reached,
            "unlinked": unlinked, "generations": {str(g): n for g, n in sorted(gens.items())},
            "days": table, "hours": [{"hour": datetime.fromtimestamp(h * 3600, timezone.utc).strftime("%Y-%m-%dT%H"),
                                      "forwards": f, "reached": r} for h, (f, r) in sorted(hours.items()) if f],
            "top_forwarders": [{"msisdn": _masked(m), "forwards": n} for m, n in top],
            "conversion": _conversion(campaign, windows, {m for m, (g, _) in holders.items() if g}, data_dir)}


def _conversion(campaign, windows: list, reached: set, data_dir: str) -> dict | None:
    """The goal reached by the contacted, the held out and those a forward reached (their
    windows: report's attribution windows, (holdout, start, end, converted, msisdn, imsi))."""
    goal = campaign.goal
    if goal is None:
        return None
    if goal.list:
        windows = _from_list(windows, goal, data_dir)
    groups = {"contacted": [0, 0], "held_out": [0, 0], "reached": [0, 0]}
    for holdout, _, _, conv, msisdn, _ in windows:
        if holdout == REACHED and msisdn not in reached:
            continue                        # a copy from no known holder, or the seed itself
        g = groups[("contacted", "held_out", "reached")[holdout]]
        g[0] += 1
        g[1] += conv is not None
    out = {"goal": _goal_text(goal)}
    for name, (n, k) in groups.items():
        out[name] = {"subscribers": n, "converted": k, "rate": k / n if n else None,
                     "ci95": wilson(k, n) if n else None}
    return out


def _masked(msisdn: str) -> str:
    """A number as the report shows it: its middle four digits hidden (personal data)."""
    return msisdn[:-8] + "****" + msisdn[-4:] if len(msisdn) > 8 else "****"


def render(t: dict) -> str:
    out = [f"== {t['campaign']} — forwards of the seed",
           f"seeded {t['seeded']:,}; forwards {t['forwards']:,}; reached {t['reached']:,} more"
           + (f"; unlinked {t['unlinked']:,} (from no known holder)" if t["unlinked"] else ""),
           "generations: " + ", ".join(f"{g}: {n:,}" for g, n in t["generations"].items()), "",
           f"{'day':<10}  {'forwards':>8}  {'total':>8}  {'reached':>7}  {'total':>7}",
           f"{'-' * 10}  {'-' * 8}  {'-' * 8}  {'-' * 7}  {'-' * 7}"]
    out += [f"{d['day']:<10}  {d['forwards']:>8,}  {d['forwards_total']:>8,}  {d['reached']:>7,}  "
            f"{d['reached_total']:>7,}" for d in t["days"]]
    if t["top_forwarders"]:
        out += ["", "best forwarders: " + ", ".join(f"{x['msisdn']} {x['forwards']:,}" for x in t["top_forwarders"])]
    if c := t.get("conversion"):
        out += ["", f"goal {c['goal']}: " + "; ".join(
            f"{name.replace('_', ' ')} {c[name]['converted']:,} of {c[name]['subscribers']:,} "
            f"({_pct(c[name]['rate'])})" for name in ("reached", "contacted", "held_out"))]
    return "\n".join(out)


def plot(t: dict, path: str) -> str:
    """The forwards and the reach over the days (each day's and the running totals; by the hour
    when they are one or two days), and the holders of each generation."""
    plt = _pyplot()
    days, by_hour = t["days"], len(t["days"]) <= 2
    labels = [d["day"][5:] for d in days]
    if by_hour and t["hours"]:              # every hour from the first forward's to the last's
        seen = {datetime.strptime(h["hour"], "%Y-%m-%dT%H"): h for h in t["hours"]}
        first, n = min(seen), int((max(seen) - min(seen)).total_seconds() // 3600) + 1
        hours = [seen.get(first + timedelta(hours=i), {"forwards": 0, "reached": 0}) for i in range(n)]
        f, r = (np.cumsum([h[k] for h in hours]) for k in ("forwards", "reached"))
        days = [{**h, "forwards_total": a, "reached_total": b} for h, a, b in zip(hours, f, r)]
        labels = [(first + timedelta(hours=i)).strftime("%m-%d %Hh") for i in range(n)]
    x = np.arange(len(days))
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    ax[0].bar(x - 0.2, [d["forwards"] for d in days], 0.4, label="forwards", color="#4477aa")
    ax[0].bar(x + 0.2, [d["reached"] for d in days], 0.4, label="reached", color="#ee6677")
    ax[0].plot(x, [d["forwards_total"] for d in days], marker="o", color="#4477aa", label="forwards, in all")
    ax[0].plot(x, [d["reached_total"] for d in days], marker="o", color="#ee6677", label="reached, in all")
    ax[0].set_xticks(x, labels, rotation=45)
    ax[0].set_title(f"{t['campaign']}: forwards and reach per {'hour (UTC)' if by_hour else 'day'}")
    ax[0].legend(fontsize=8)
    gens = t["generations"]
    ax[1].bar(list(gens), list(gens.values()), color="#228833")
    ax[1].set_title("holders by generation (0: seeded)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
