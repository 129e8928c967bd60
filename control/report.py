"""`touchpoint report`: what each campaign achieved, measured against its hold-out group.

Read from the data directory only: the outbox (DATA/outbox.sqlite: messages and the goals'
attribution windows, `conversions`), the trigger logs (when there is no outbox yet), imported
conversion lists (goals with `list:`) and the daily scorecard counters (`--health`); the text and
plot of the service scorecard control.scorecard computes (`--scorecard`).

    rep = build(data_dir, rules_dir, campaign=None, since_ns=None, until_ns=None)
    print(render(rep)); plot(rep, "report.png")

The uplift is the difference of the conversion rates, contacted minus held out, with Newcombe's
hybrid score interval (his method 10: from the two Wilson score intervals), 95%.
"""
import json
import math
import os
import sqlite3
import unicodedata
from datetime import datetime, timezone

import numpy as np

NS = 10**9
H = 3600 * NS
DAY = 86400 * NS
Z95 = 1.959963984540054
DELAYS = (1, 12, 24, 48)             # hours: the 48-hour promise
WAITING = ("pending", "queued", "sending")


class ReportError(Exception):
    """Nothing to report: the message says why."""


def wilson(k: int, n: int, z: float = Z95) -> tuple:
    if not n:
        return (math.nan, math.nan)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z / d * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (max(0.0, c - h), min(1.0, c + h))


def newcombe(k1: int, n1: int, k0: int, n0: int, z: float = Z95) -> tuple:
    """p1 - p0 and its interval (Newcombe 1998, method 10)."""
    if not n1 or not n0:
        return (math.nan, math.nan, math.nan)
    p1, p0 = k1 / n1, k0 / n0
    l1, u1 = wilson(k1, n1, z)
    l0, u0 = wilson(k0, n0, z)
    d = p1 - p0
    return (d, d - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2))


def day_of(ns: int) -> str:
    return datetime.fromtimestamp(ns // NS, timezone.utc).strftime("%Y-%m-%d")


# ---- reading the data directory ----------------------------------------------------------------------

def _connect(data_dir: str):
    path = os.path.join(data_dir, "outbox.sqlite")
    if not os.path.exists(path):
        return None
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return db, "conversions" in tables


def _goals(rules_dir):
    if not rules_dir or not os.path.isdir(rules_dir):
        return {}
    from .rules import load
    return {c.id: c.goal for c in load(rules_dir).campaigns if c.goal is not None}


def _logged(data_dir: str, since_ns, until_ns) -> dict:
    """Triggers per campaign from the trigger logs (before any outbox exists)."""
    out = {}
    for name in sorted(os.listdir(data_dir)):
        if name.startswith("triggers-shard-") and name.endswith(".jsonl"):
            with open(os.path.join(data_dir, name), encoding="utf-8") as f:
                for line in f:
                    try:
                        t = json.loads(line)
                        ts = int(t["ts_ns"])
                    except (ValueError, KeyError, TypeError):
                        continue
                    if (since_ns is None or ts >= since_ns) and (until_ns is None or ts < until_ns):
                        out[t["campaign"]] = out.get(t["campaign"], 0) + 1
    return out


def build(data_dir: str, rules_dir: str | None = None, campaign: str | None = None,
          since_ns: int | None = None, until_ns: int | None = None) -> dict:
    """The report as a dict (what --json prints). ReportError when there is nothing to report."""
    if not os.path.isdir(data_dir):
        raise ReportError(f"{data_dir}: no such data directory (the engine's --data)")
    goals = _goals(rules_dir)
    got = _connect(data_dir)
    rep = {"data": data_dir, "since": day_of(since_ns) if since_ns else None,
           "until": day_of(until_ns) if until_ns else None, "uplift_interval": "Newcombe hybrid score (Wilson), 95%",
           "campaigns": []}
    if got is None:
        logged = _logged(data_dir, since_ns, until_ns)
        if not logged:
            raise ReportError(f"{data_dir}: nothing to report yet: no outbox and no triggers "
                              "(run `touchpoint engine --data` on it first)")
        ids = [campaign] if campaign else sorted(logged)
        for cid in ids:
            if cid not in logged:
                raise ReportError(f"no campaign {cid!r} in {data_dir}: it has {', '.join(sorted(logged))}")
            rep["campaigns"].append(
                {"id": cid, "funnel": {"triggered": logged[cid]}, "note": "no outbox: triggers only"}
            )
        return rep
    db, has_conv = got
    try:
        where, args = "1", []
        if since_ns is not None:
            where, args = where + " AND trigger_ns >= ?", args + [since_ns]
        if until_ns is not None:
            where, args = where + " AND trigger_ns < ?", args + [until_ns]
        known = [r[0] for r in db.execute("SELECT DISTINCT campaign FROM messages ORDER BY campaign")]
        if not known:
            raise ReportError(f"{data_dir}: the outbox holds no messages yet")
        if campaign and campaign not in known:
            raise ReportError(f"no campaign {campaign!r} in {data_dir}: it has {', '.join(known)}")
        now = db.execute(
            "SELECT max(max(coalesce(sent_ns, 0)), max(created_ns), max(trigger_ns)) FROM messages"
        ).fetchone()[0]
        clock = db.execute("SELECT position FROM offsets WHERE source = 'goals:clock'").fetchone()
        now = max(now, clock[0] if clock else 0)        # how far the goal events were matched
        for cid in [campaign] if campaign else known:
            rep["campaigns"].append(_campaign(db, has_conv, cid, goals.get(cid), data_dir, where, args, now))
    finally:
        db.close()
    return rep


def _campaign(db, has_conv, cid, goal, data_dir, where, args, now) -> dict:
    q = lambda sql, *a: db.execute(sql.format(w=where), (cid, *args, *a)).fetchall()
    f, reasons, held_not = _funnel(q("SELECT state, reason, holdout, sent_ns IS NOT NULL, count(*) FROM messages "
                                     "WHERE campaign = ? AND {w} GROUP BY 1, 2, 3, 4"))
    by_count = lambda d: dict(sorted(d.items(), key=lambda kv: -kv[1]))
    out = {"id": cid, "goal": _goal_text(goal), "funnel": f, "not_sent": by_count(reasons),
           "held_out_not_sendable": by_count(held_not)}
    m_where = where.replace("trigger_ns", "m.trigger_ns")
    out["conversion"], f["converted"] = _conversion(db, has_conv, cid, goal, data_dir, m_where, args, now)
    out["replies"] = _replies(db, cid, m_where, args, f["sent"])
    if goal is not None and goal.reply:       # a held-out subscriber got nothing to reply to
        out["conversion"]["uplift"] = None
        out["conversion"]["note"] = NO_REPLY_UPLIFT
    delays = np.array([r[0] for r in q("SELECT sent_ns - trigger_ns FROM messages WHERE campaign = ? AND {w} "
                                       "AND sent_ns IS NOT NULL AND holdout = 0")], np.float64) / H
    out["send_delay"] = {"sent": len(delays), "median_hours": float(np.median(delays)) if len(delays) else None,
                         **{f"within_{h}h": float((delays <= h).mean()) if len(delays) else None for h in DELAYS},
                         "hours": np.round(delays, 3).tolist()}
    out["days"] = _days(db, q, has_conv, cid, goal, m_where, args)
    return out


def _funnel(states) -> tuple:
    """The funnel of (state, reason, holdout, sent, count) rows; why those not sent were not, and
    why held-out ones would not have been sent anyway."""
    f = dict.fromkeys(("triggered", "inactive", "eligible", "held_out", "not_sent", "waiting", "sent", "delivered",
                       "converted"), 0)
    reasons, held_not = {}, {}
    for state, reason, holdout, sent, n in states:
        f["triggered"] += n
        if reason == "campaign_inactive":
            f["inactive"] += n
            continue
        f["eligible"] += n
        if holdout:
            f["held_out"] += n
            if reason != "holdout":         # held out, and the policy would not have sent it anyway
                key = f"{state}:{reason}" if state != "suppressed" else reason
                held_not[key] = held_not.get(key, 0) + n
        elif sent:
            f["sent"] += n
            f["delivered"] += n if state == "delivered" else 0
        elif state in WAITING:
            f["waiting"] += n
        else:
            f["not_sent"] += n
            key = f"{state}:{reason}" if state != "suppressed" else reason
            reasons[key] = reasons.get(key, 0) + n
    return f, reasons, held_not


def _conversion(db, has_conv, cid, goal, data_dir, m_where, args, now) -> tuple:
    """Both groups' conversions and the uplift, from the attribution windows of the messages
    reported on; and how many contacted subscribers converted."""
    groups = {0: [0, 0, 0, []], 1: [0, 0, 0, []]}      # windows, converted, still open, hours to convert
    if has_conv:
        rows = db.execute("SELECT c.holdout, c.start_ns, c.end_ns, c.converted_ns, c.msisdn, c.imsi FROM conversions c "
                          "JOIN messages m ON m.id = c.message WHERE c.campaign = ? AND {w}".format(w=m_where),
                          (cid, *args)).fetchall()
        if goal is not None and goal.list:
            rows = _from_list(rows, goal, data_dir)
        for holdout, start, end, conv, *_ in rows:
            g = groups[holdout]
            g[0] += 1
            if conv is not None:
                g[1] += 1
                g[3].append((conv - start) / H)
            elif end > now:
                g[2] += 1
    conv = {}
    for name, (n, k, open_, hours) in (("contacted", groups[0]), ("held_out", groups[1])):
        conv[name] = {
            "subscribers": n,
            "converted": k,
            "rate": k / n if n else None,
            "ci95": wilson(k, n) if n else None,
            "windows_open": open_,
            "hours_to_convert": sorted(round(h, 3) for h in hours),
        }
    d, lo, hi = newcombe(groups[0][1], groups[0][0], groups[1][1], groups[1][0])
    conv["uplift"] = None if math.isnan(d) else {"value": d, "low": lo, "high": hi}
    return conv, groups[0][1]


NO_REPLY_UPLIFT = ("a reply goal has no uplift: the held-out subscribers got no message to reply to, so "
                   "their rate is 0 by construction; compare the groups on an event or list goal")


def _replies(db, cid, m_where, args, sent: int) -> dict:
    """The contacted subscribers who replied to the campaign's messages (Outbox.reply), the
    reply rate of those sent, and the replies by word ("" other text, never stored)."""
    try:
        rows = db.execute("SELECT r.word, count(*), count(DISTINCT r.message) FROM replies r JOIN messages m "
                          "ON m.id = r.message WHERE m.campaign = ? AND {w} GROUP BY 1".format(w=m_where),
                          (cid, *args)).fetchall()
        replied = db.execute("SELECT count(DISTINCT r.message) FROM replies r JOIN messages m ON m.id = r.message "
                             "WHERE m.campaign = ? AND {w}".format(w=m_where), (cid, *args)).fetchone()[0]
    except sqlite3.OperationalError:        # an outbox of before replies were kept
        rows, replied = [], 0
    return {"contacted": sent, "replied": replied, "rate": replied / sent if sent else None,
            "by_word": {(w or "(other text)"): n for w, n, _ in sorted(rows, key=lambda r: -r[1])}}


def _days(db, q, has_conv, cid, goal, m_where, args) -> list:
    """The campaign day by day: triggered, held out, sent, delivered, converted (both groups)."""
    days = {}
    for day, holdout, sent, state, n in q(f"SELECT trigger_ns / {DAY}, holdout, sent_ns IS NOT NULL, state, count(*) "
                                          "FROM messages WHERE campaign = ? AND {w} GROUP BY 1, 2, 3, 4"):
        d = days.setdefault(int(day), dict.fromkeys(("triggered", "held_out", "sent", "delivered", "converted",
                                                     "converted_held_out"), 0))
        d["triggered"] += n
        d["held_out"] += n if holdout else 0
        d["sent"] += n if sent and not holdout else 0
        d["delivered"] += n if state == "delivered" else 0
    if has_conv:
        for day, holdout, n in db.execute(
            "SELECT m.trigger_ns / ?, c.holdout, count(*) FROM conversions c JOIN messages m "
            "ON m.id = c.message WHERE c.campaign = ? AND c.converted_ns IS NOT NULL AND {w} "
            "GROUP BY 1, 2".format(w=m_where),
            (DAY, cid, *args),
        ):
            if goal is None or not goal.list:
                days.setdefault(int(day), {})["converted_held_out" if holdout else "converted"] = n
    return [{"day": day_of(k * DAY), **v} for k, v in sorted(days.items())]


def _goal_text(goal) -> str | None:
    if goal is None:
        return None
    within = f"within {goal.within_s / 86400:g}d" if goal.within_s % 86400 == 0 else f"within {goal.within_s / 3600:g}h"
    if goal.list:
        return f"list {goal.list}" + (f" product {goal.product}" if goal.product else "") + f", {within}"
    if goal.reply:
        return f"reply {' or '.join(goal.reply)}, {within}"
    return f"{goal.event}{' (with conditions)' if getattr(goal.where, 'parts', ()) else ''}, {within}"


def _from_list(rows: list, goal, data_dir: str) -> list:
    """Windows resolved against an imported list of conversions (msisdn, product, time): the
    subscriber's row (the last of its MSISDN in the file) converts a window its time falls in."""
    from touchpoint.probe.record import pack

    from .lists import ListStore
    from .lists.layout import ListError
    try:
        lst = ListStore(data_dir).get(goal.list)
    except ListError:
        return [(h, s, e, None, m, i) for h, s, e, _, m, i in rows]
    at = lst.rows(pack([r[4] for r in rows]), pack([r[5] for r in rows])) if rows else []
    times = lst.column("time").strings(at) if "time" in lst.columns else [""] * len(rows)
    products = lst.column("product").strings(at) if "product" in lst.columns else [""] * len(rows)
    out = []
    for (h, s, e, _, m, i), t, p in zip(rows, times, products):
        ts = _time_ns(t)
        ok = ts is not None and s <= ts <= e and (not goal.product or p == goal.product)
        out.append((h, s, e, ts if ok else None, m, i))
    return out


def _time_ns(text: str) -> int | None:
    text = str(text).strip()
    if not text:
        return None
    if text.isdigit():
        return int(text) * NS
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return int(t.timestamp()) * NS


# ---- human output ------------------------------------------------------------------------------------

def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def width(text: str) -> int:
    """Columns a text takes on a terminal: a Chinese character two."""
    return sum(1 + (unicodedata.east_asian_width(c) in "WF") for c in text)


def table(header: list, rows: list, left: int = 1) -> str:
    """Aligned columns, the first `left` of them left-aligned, the others right-aligned."""
    cells = [[str(h) for h in header]] + [[str(c) for c in r] for r in rows]
    w = [max(width(r[i]) for r in cells) for i in range(len(header))]
    pad = lambda c, i: c + " " * (w[i] - width(c)) if i < left else " " * (w[i] - width(c)) + c
    fmt = lambda r: "  ".join(pad(c, i) for i, c in enumerate(r)).rstrip()
    return "\n".join([fmt(cells[0]), fmt(["-" * x for x in w])] + [fmt(r) for r in cells[1:]])


def render(rep: dict) -> str:
    out = []
    span = f" from {rep['since'] or 'the start'} until {rep['until'] or 'now'}" if rep["since"] or rep["until"] else ""
    for c in rep["campaigns"]:
        f = c["funnel"]
        out.append(f"== {c['id']}{span}" + (f" — goal: {c['goal']}" if c.get("goal") else " — no goal"))
        if "note" in c:
            out.append(f"triggered {f['triggered']:,} ({c['note']})\n")
            continue
        rows = [("triggered", f["triggered"]), ("  campaign inactive", f["inactive"]), ("eligible", f["eligible"]),
                ("  held out", f["held_out"])]
        rows += [(f"    would not have been sent: {r}", n) for r, n in c.get("held_out_not_sendable", {}).items()]
        rows += [(f"  not sent: {r}", n) for r, n in c["not_sent"].items()]
        rows += [("  waiting (pending, queued)", f["waiting"]), ("sent", f["sent"]), ("  delivered", f["delivered"]),
                 ("  converted", f["converted"])]
        out.append(table(["funnel", "subscribers"], [(k, f"{v:,}") for k, v in rows]))
        cv = c["conversion"]
        rows = []
        for name in ("contacted", "held_out"):
            g = cv[name]
            ci = f"{_pct(g['ci95'][0])} – {_pct(g['ci95'][1])}" if g["ci95"] else "–"
            rows.append((name.replace("_", " "), f"{g['subscribers']:,}", f"{g['converted']:,}", _pct(g["rate"]), ci,
                         f"{g['windows_open']:,}"))
        out.append("\n" + table(["group", "windows", "converted", "rate", "95% CI", "still open"], rows))
        u = cv["uplift"]
        out.append(
            "uplift: "
            + (
                f"– ({cv['note']})" if "note" in cv else "– (needs contacted and held-out subscribers with a goal)"
                if u is None
                else f"{100 * u['value']:+.1f} points, 95% CI {100 * u['low']:+.1f} to {100 * u['high']:+.1f} "
                f"({rep['uplift_interval']})"
            )
        )
        r = c.get("replies")
        if r and r["contacted"]:
            words = ", ".join(f"{w} {n:,}" for w, n in r["by_word"].items())
            out.append(f"replies: {r['replied']:,} of {r['contacted']:,} contacted ({_pct(r['rate'])})"
                       + (f": {words}" if words else "") + "; held out: – (no message to reply to)")
        s = c["send_delay"]
        if s["sent"]:
            out.append(f"trigger to send: median {s['median_hours']:.2f} h; " +
                       ", ".join(f"within {h} h {_pct(s[f'within_{h}h'])}" for h in DELAYS))
        out.append(
            "\n"
            + table(
                ["day", "triggered", "held out", "sent", "delivered", "converted", "converted (held out)"],
                [
                    (
                        d["day"],
                        *(
                            f"{d.get(k, 0):,}"
                            for k in ("triggered", "held_out", "sent", "delivered", "converted", "converted_held_out")
                        ),
                    )
                    for d in c["days"]
                ],
            )
        )
        out.append("")
    return "\n".join(out)


def _segments(days: list) -> list:
    """The lifecycle segments' names the days give, in their order."""
    return list(dict.fromkeys(name for d in days for name in d["segments"]))


def render_health(days: list) -> str:
    segments = _segments(days)
    rows = []
    for d in days:
        seen = d["seen"] or 1
        moves = ", ".join(
            f"{k.replace('>', '→')} {v:,}" for k, v in sorted(d["moves"].items(), key=lambda kv: -kv[1])[:3]
        )
        rows.append((d["day"] + ("" if d["complete"] else "*"), f"{d['seen']:,}", _pct(d["mms_users"] / seen),
                     _pct(d["data_users"] / seen), f"{d['records'] / seen:.1f}",
                     *(f"{d['segments'].get(s, 0):,}" for s in segments), moves or "–"))
    text = table(["day", "seen", "MMS pen.", "data pen.", "records/sub", *segments, "top moves"], rows)
    return text + ("\n* the day was not over when it was written" if any(not d["complete"] for d in days) else "")


def _value(value, unit: str) -> str:
    """A scorecard value in its unit (control.scorecard.SOURCES)."""
    if value is None:
        return "no data"
    if unit == "share":
        return f"{100 * value:.1f}%"
    if unit == "growth":
        return f"{100 * value:+.1f}%"
    return f"{value:,.2f}"


def _points(x) -> str:
    return "–" if x is None else f"{x:.1f}"


def render_scorecard(sc: dict) -> str:
    """control.scorecard.compute's scorecard: the indicators weakest first, the totals per family."""
    t = sc["total"]
    out = [f"== {sc['name']} ({sc['scorecard']}), service {sc['service']}: {sc['month']} against {sc['previous']}"]
    cover = []
    for m, c in sc["health"].items():
        span = c["first"] if c["first"] == c["last"] else f"{c['first']} to {c['last']}"
        cover.append(f"{m} {c['days']} day{'s' * (c['days'] != 1)}" + (
            f" ({span}" + (f", {c['incomplete']} not complete)" if c["incomplete"] else ")") if c["days"] else ""))
    out.append("health lines: " + ", ".join(cover) + "\n")
    rows = []
    for r in sc["indicators"]:
        u = r["unit"]
        target = (_value(r["benchmark"], u) if r["method"] == "benchmark"
                  else f"{_value(r['g1'], u)} → {_value(r['g2'], u)}")
        rows.append((r["id"], r["name"], r["family"], _value(r["value"], u), target, _points(r["score"]),
                     f"{r['weight']:g}", _points(r["lost"]), _points(r["previous"]["score"]),
                     "–" if r["trend"] is None else f"{r['trend']:+.1f}"))
    out.append(table(["indicator", "name", "family", "value", "target", "score", "weight", "lost",
                      sc["previous"], "trend"], rows, left=3))
    fams = [(f, _points(v["score"]), f"{v['weight_with_data']:g}", f"{v['weight_no_data']:g}", _pct(v["share"]))
            for f, v in [*sc["families"].items(), ("total", t)]]
    out.append("\n" + table(["family", "score", "weight with data", "no data", "score / weight"], fams))
    out.append(f"total weight {t['weight']:g}: {t['score']:.1f} points of the {t['weight_with_data']:g} with data")
    by_id = {r["id"]: r for r in sc["indicators"]}
    if sc["weakest"]:
        out.append("weakest (短板): " + ", ".join(f"{i} −{by_id[i]['lost']:.1f}" for i in sc["weakest"]))
    if sc["no_data"]:
        out.append(f"no data (weight {t['weight_no_data']:g} of {t['weight']:g}, counted apart):")
        out += [f"  {i}: {by_id[i]['no_data']}" for i in sc["no_data"]]
    return "\n".join(out)


# ---- plots -----------------------------------------------------------------------------------------

def _pyplot():
    try:
        import matplotlib
    except ImportError as e:
        raise ReportError(f"--plot needs matplotlib (pip install 'touchpoint[plot]'): {e}")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot(rep: dict, path: str) -> str:
    """Per campaign a row: the funnel, both groups' conversion curves, the trigger-to-send times."""
    plt = _pyplot()
    cs = [c for c in rep["campaigns"] if "conversion" in c]
    if not cs:
        raise ReportError("nothing to plot: no outbox")
    fig, axes = plt.subplots(len(cs), 3, figsize=(15, 3.6 * len(cs)), squeeze=False)
    for ax, c in zip(axes, cs):
        f = c["funnel"]
        names = ["triggered", "eligible", "held_out", "sent", "delivered", "converted"]
        ax[0].barh(names[::-1], [f[n] for n in names[::-1]], color="#4477aa")
        for y, n in enumerate(names[::-1]):
            ax[0].text(f[n], y, f" {f[n]:,}", va="center", fontsize=8)
        ax[0].set_title(f"{c['id']}: funnel")
        for name, color in (("contacted", "#228833"), ("held_out", "#ee6677")):
            g = c["conversion"][name]
            hours = np.array(g["hours_to_convert"])
            if g["subscribers"]:
                x = np.concatenate([[0], np.sort(hours)])
                y = np.arange(len(x)) / g["subscribers"]
                ax[1].step(x, 100 * y, where="post", color=color,
                           label=f"{name.replace('_', ' ')} ({g['converted']:,}/{g['subscribers']:,})")
        ax[1].set_xlabel("hours after contact (held out: after it would have been)")
        ax[1].set_ylabel("converted, %")
        ax[1].set_title(f"{c['id']}: conversion" + (f" — {c['goal']}" if c.get("goal") else ""), fontsize=9)
        if ax[1].lines:
            ax[1].legend(fontsize=8)
        hours = np.array(c["send_delay"]["hours"])
        if len(hours):
            ax[2].hist(np.clip(hours, 0, 60), bins=np.arange(0, 61, 1), color="#4477aa")
            for h in DELAYS:
                ax[2].axvline(h, color="#999999", linestyle=":", linewidth=1)
        ax[2].set_xlabel("hours from trigger to send (60 and more in the last bin)")
        ax[2].set_ylabel("messages")
        ax[2].set_title(f"{c['id']}: trigger to send")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_health(days: list, path: str) -> str:
    if not days:
        raise ReportError("nothing to plot: no daily counters")
    plt = _pyplot()
    x = np.arange(len(days))
    labels = [d["day"][5:] for d in days]
    fig, ax = plt.subplots(1, 3, figsize=(15, 4))
    seen = np.array([max(d["seen"], 1) for d in days], float)
    ax[0].plot(x, 100 * np.array([d["mms_users"] for d in days]) / seen, marker="o", label="MMS")
    ax[0].plot(x, 100 * np.array([d["data_users"] for d in days]) / seen, marker="o", label="data")
    ax[0].set_title("penetration: users / subscribers seen, %")
    ax[0].legend()
    ax[1].bar(x, np.array([d["records"] for d in days]) / seen, color="#4477aa")
    ax[1].set_title("records per subscriber seen")
    bottom = np.zeros(len(days))
    for s in _segments(days):
        v = np.array([d["segments"].get(s, 0) for d in days], float)
        ax[2].bar(x, v, bottom=bottom, label=s)
        bottom += v
    ax[2].set_title("lifecycle segments")
    ax[2].legend(fontsize=8)
    for a in ax:
        a.set_xticks(x, labels, rotation=45)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_scorecard(sc: dict, path: str) -> str:
    """Score against weight per indicator, the weakest at the top in red; no data hatched."""
    plt = _pyplot()
    rows = sc["indicators"][::-1]
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(rows) + 1.6))
    ax.barh(y, [r["weight"] for r in rows], color="#dddddd", label="weight")
    ax.barh(y, [r["score"] or 0 for r in rows], height=0.5, label="score",
            color=["#cc3311" if r["id"] in sc["weakest"] else "#4477aa" for r in rows])
    for k, r in enumerate(rows):
        if r["no_data"] is not None:
            ax.barh(k, r["weight"], color="none", hatch="//", edgecolor="#999999")
            ax.text(0, k, "  no data", va="center", fontsize=8, color="#666666")
    ax.set_yticks(y, [r["id"] for r in rows])
    ax.set_xlabel("points")
    t = sc["total"]
    ax.set_title(f"{sc['scorecard']} {sc['month']}: {t['score']:.1f} of the {t['weight_with_data']:g} points with "
                 f"data (total weight {t['weight']:g}); the weakest in red", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
