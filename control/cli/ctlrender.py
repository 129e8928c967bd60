"""Human tables of the control socket's replies (`touchpoint ctl` without --json)."""

import json
from datetime import datetime, timezone

from .render import mask_digits


def render(cmd: str, result, args: dict) -> str:
    """The reply's result as text for a person (`--json` prints it as it came)."""
    return RENDER.get(cmd, lambda r, a: json.dumps(r, ensure_ascii=False, indent=2))(result, args)


def table(rows: list, columns: list) -> str:
    """Rows of dicts as aligned columns: [(key, header)]; numbers right-aligned."""
    cells = [[cell(r.get(k)) for k, _ in columns] for r in rows]
    width = [max([len(h)] + [len(c[i]) for c in cells]) for i, (_, h) in enumerate(columns)]
    numeric = [all(isinstance(r.get(k), (int, float, type(None))) for r in rows) for k, _ in columns]
    line = lambda vals: "  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(vals, width, numeric)).rstrip()
    return "\n".join([line([h for _, h in columns])] + [line(c) for c in cells])


def cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.1f}"
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v)) or "-"
    if isinstance(v, dict):
        return ", ".join(f"{k} {cell(x)}" for k, x in v.items()) or "-"
    return str(v)


def duration(s: float) -> str:
    s = int(s)
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 86400}d {s % 86400 // 3600}h {s % 3600 // 60:02d}m" if s >= 86400 else \
        f"{s // 3600}h {s % 3600 // 60:02d}m"


def mb(n) -> str:
    return "?" if n is None else f"{n / 2**20:,.1f} MB"


def when(ns) -> str:
    if not ns:
        return "-"
    return datetime.fromtimestamp(ns / 1e9, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def render_status(r: dict, args) -> str:
    e = r["engine"]
    out = [f"engine shard {e['shard']}: up {duration(e['uptime_s'])}, {e['records']:,} records "
           f"({e['records_per_s']:,.1f}/s since start), {e['subscribers']:,} subscribers "
           f"({mb(e['state_bytes'])} of state, {mb(e['rss_bytes'])} resident), {e['triggers']:,} triggers, "
           f"{e['batches_lost']:,} batches lost, {e['stream_errors']:,} stream errors",
           f"  {e['active_campaigns']} active campaigns; lists reloaded {e['lists_reloaded']} times"
           + (f"; missing lists: {', '.join(e['missing_lists'])}" if e["missing_lists"] else "")]
    if e["streams"]:
        out += ["probe streams:", indent(table(e["streams"], [
            ("probe", "probe"), ("shard", "shard"), ("peer", "peer"), ("batches", "batches"), ("records", "records"),
            ("lost_batches", "lost"), ("gaps", "gaps"), ("out_of_order", "out of order"), ("ended", "ended")]))]
    else:
        out.append("probe streams: none yet")
    d = r.get("dispatcher")
    if d is None:
        out.append("dispatcher: none in this engine")
    else:
        out.append("dispatcher:")
        for key, value in d.items():
            out.append(indent(section(key, value)))
    return "\n".join(out)


def section(name: str, value) -> str:
    """A part of the dispatcher's status whatever its shape: a value, a dict of numbers (one
    line), a dict of dicts (a table, one row a key; one line a key when they are many columns)."""
    label = name.replace("_", " ")
    if name == "clock" and isinstance(value, str) and value.partition(" ")[2].isdigit():
        kind, _, ns = value.partition(" ")
        return f"clock: {kind}, now {when(int(ns))} UTC"
    if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
        keys = list(dict.fromkeys(k for v in value.values() for k in v))
        if len(keys) > 8:
            return f"{label}:\n" + "\n".join(f"  {k}: " + cell({x: y for x, y in v.items() if y not in (None, "")})
                                              for k, v in value.items())
        rows = [{"": k, **v} for k, v in value.items()]
        return f"{label}:\n" + indent(table(rows, [("", "")] + [(k, k.replace("_", " ")) for k in keys]))
    return f"{label}: {cell(value) if value not in ({}, []) else 'none'}"


def indent(text: str, by: str = "  ") -> str:
    return "\n".join(by + line for line in text.splitlines())


def render_campaigns(rows: list, args) -> str:
    if not rows:
        return "no campaigns in the rules directory"
    for r in rows:
        r["shown_status"] = r["status"] + (" (ctl)" if r["override"] else "")
    return table(rows, [("id", "campaign"), ("shown_status", "status"), ("send", "send"), ("priority", "priority"),
                        ("triggers", "triggers"), ("pending", "pending"), ("queued", "queued"), ("sent", "sent"),
                        ("expired", "expired"), ("suppressed", "suppressed"), ("audience", "audience now")])


def render_optout(r: dict, args) -> str:
    if "optouts" not in r:
        scope = f"campaign {r['campaign']}" if r["campaign"] != "*" else "all campaigns"
        stopped = f"; {r['stopped']:,} queued or pending messages stopped" if r["stopped"] else ""
        return f"{r['msisdn']}: opt-out {'added' if r['action'] == 'add' else 'removed'} ({scope}){stopped}"
    if not r["optouts"]:
        return f"{r['msisdn']}: no opt-out; campaigns may reach this number"
    rows = [{**o, "at": when(o["at"]) if isinstance(o.get("at"), int) else o.get("at")} for o in r["optouts"]]
    return f"{r['msisdn']}: opted out\n" + indent(table(rows, [
        ("campaign", "campaign"), ("source", "source"), ("at", "since (UTC)")]))


def render_lists(rows: list, args) -> str:
    if not rows:
        return "no lists (touchpoint lists import NAME FILE)"
    for r in rows:
        r.setdefault("columns", r.get("error", ""))
        r["generation"] = str(r.get("generation", "-"))      # an id (microseconds), not a quantity
    return table(rows, [("name", "list"), ("rows", "rows"), ("generation", "generation"), ("imported_at", "imported"),
                        ("columns", "columns"), ("used_by", "used by")])


def render_pending(reply: dict, args) -> str:
    rows = reply["pending"]
    expired = (f"\n{reply['expired_unapproved']:,} expired waiting for an approval, the last at "
               f"{when(reply['last_expired_ns'])} UTC" if reply["expired_unapproved"] else "")
    if not rows:
        return "nothing pending" + (f" for campaign {args['campaign']}" if args.get("campaign") else "") + expired
    # numbers half hidden, as `lists show` does; --json has them whole
    shown = [{**r, "msisdn": mask_digits(r.get("msisdn") or ""), "trigger": when(r.get("trigger_ns")),
              "deadline": when(r.get("deadline_ns")), "text": shorten(r.get("text") or "", 40)} for r in rows]
    more = " shown (the oldest; `ctl status` counts them all)" if len(rows) >= 1000 else ""
    return table(shown, [("id", "id"), ("campaign", "campaign"), ("msisdn", "msisdn"), ("trigger", "trigger (UTC)"),
                         ("deadline", "deadline (UTC)"), ("text", "text")]) + f"\n{len(rows):,} pending{more}{expired}"


def messages(n: int) -> str:
    return f"{n:,} message" + "s" * (n != 1)


def shorten(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n - 1] + "…"


def render_audience(r: dict, args) -> str:
    steps = table(r["steps"], [("what", "step"), ("subscribers", "subscribers")])
    return steps + f"\n{r['campaign']}: {r['audience']:,} subscribers in the audience now"


def render_send(r: dict, args) -> str:
    steps = table(r["steps"], [("what", "step"), ("subscribers", "subscribers")])
    reach = f"{r['campaign']}: {r['triggers']:,} subscribers with an MSISDN" + \
        (f" (--limit {args['limit']:,})" if args.get("limit") else "")
    if r["dry_run"]:
        return f"{steps}\n{reach} would be offered to the contact policy; nothing sent (--dry-run)"
    outcomes = ", ".join(f"{k.replace(':', ': ')} {n:,}" for k, n in sorted(r.get("outcomes", {}).items()))
    return f"{steps}\n{reach} at {when(r['at_ns'])} UTC: " + (outcomes or "nothing decided yet (the dispatcher "
                                                                      "catches up from the trigger log)")


def render_subscriber(r: dict, args) -> str:
    s = r["state"]
    lines = [f"subscriber {r['msisdn']}"]
    if s is None:
        lines.append("  not in the state (only in the outbox)")
    else:
        lines.append(f"  imsi {s['imsi'] or '-'}, imei {s['imei'] or '-'}, lifecycle {s['lifecycle'] or '-'}, "
                     f"segment {s['segment']}, {'roaming' if s['roaming'] else 'at home'}")
        since = f" for {duration(s['in_region_for_s'])}" if s["region"] else ""
        age = duration(s["handset_age_s"]) if s["handset_age_s"] is not None else "-"
        lines.append(f"  region {s['region'] or '-'}{since}, area {s['area'] or '-'}; handset seen for {age}")
        rows = [{"what": k, "today": v[0], "7 days": v[1], "30 days": v[2]} for k, v in s["profile"].items()]
        lines.append(indent(table(rows, [("what", "profile"), ("today", "today"), ("7 days", "7 days"),
                                         ("30 days", "30 days")])))
        for area, v in s["areas_today"].items():
            lines.append(f"  today in {area}: {v['visits']} visits, {v['minutes']} minutes")
    lines.append(f"messages: {len(r['trail'])}" + (" (the newest first)" if r["trail"] else ""))
    if r["trail"]:
        rows = [{"trigger": when(m["trigger_ns"]), "campaign": m["campaign"], "state": m["state"],
                 "reason": m["reason"] or "-", "converted": when(m["converted_ns"]) if m["converted_ns"] else "-"}
                for m in r["trail"]]
        lines.append(indent(table(rows, [(k, k) for k in ("trigger", "campaign", "state", "reason", "converted")])))
    if r["optouts"]:
        lines.append("opt-outs: " + ", ".join(f"{o['campaign']} ({o['source']})" for o in r["optouts"]))
    return "\n".join(lines)


RENDER = {
    "status": render_status,
    "campaigns": render_campaigns,
    "pause": lambda r, a: f"campaign {r['campaign']} paused: its triggers are suppressed until `ctl resume`",
    "resume": lambda r, a: f"campaign {r['campaign']} resumed",
    "reload": lambda r, a: f"reloaded: {r['campaigns']} campaigns ({r['active']} active); lists changed: "
                           f"{', '.join(r['lists_changed']) or 'none'}",
    "optout": render_optout,
    "export": lambda r, a: f"exported to {r['pool']}: events {r['events']:,} in all; "
                           + ", ".join(f"{k} {r[k]:,}" for k in ("triggers", "outcomes", "profiles", "areas")),
    "lists": render_lists,
    "audience": render_audience,
    "subscriber": render_subscriber,
    "pending": render_pending,
    "send": render_send,
    "approve": lambda r, a: f"approved {messages(r['approved'])} (each checked again against the policy)",
    "reject": lambda r, a: f"rejected {messages(r['rejected'])}",
}
