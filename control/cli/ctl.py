"""`touchpoint ctl`: steer a running engine over its control socket (client: control.ctlclient)."""

import json
import sys

import click

from .group import Endpoint, curve_settings, data_dir_option, token_for, token_option


class CtlValue(click.ParamType):
    """A value control.ctl checks with one of its patterns (what the engine would refuse is a
    usage error here); the pattern's group, if any, is the value ('+86...' -> '86...')."""

    def __init__(self, name: str, pattern: str, what: str):
        self.name, self.pattern, self.what = name, pattern, what

    def convert(self, value, param, ctx):
        from touchpoint.control import ctl
        m = getattr(ctl, self.pattern).fullmatch(value)
        if m is None:
            self.fail(f"{value!r} is not {self.what}", param, ctx)
        return m.group(m.lastindex or 0)


CAMPAIGN = CtlValue("campaign", "CAMPAIGN_RE", "a campaign id ([a-z0-9_-]+)")
MSISDN = CtlValue("msisdn", "MSISDN_RE", "an MSISDN (up to 15 digits, + optional)")
MESSAGE_ID = CtlValue("id", "MESSAGE_ID_RE", "a message id (hex, as `ctl pending` shows)")


@click.group()
@click.option("--socket", "endpoint", type=Endpoint(), metavar="ENDPOINT",
              help="The engine's control socket  [default: ipc://DATA/ctl.sock]")
@data_dir_option
@click.option("--shard", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="The engine shard whose default socket to use (ctl-N.sock for N > 0).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON, for scripts.")
@click.option("--curve-server-key", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help="The engine's Curve public key (its .key file), for a tcp socket.")
@click.option("--curve-key", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help="Your Curve key pair (its .key_secret file), with --curve-server-key.")
@token_option
@click.pass_context
def ctl(ctx, endpoint, data_dir, shard, as_json, curve_server_key, curve_key, token_file):
    """Steer a running engine: status, campaigns, opt-outs, approvals.

    \b
    touchpoint ctl status
    touchpoint ctl pause hotline-caller
    touchpoint ctl --json pending --campaign first-5g
    touchpoint ctl --socket tcp://engine1:5560 --curve-server-key engine-ctl.key \\
        --curve-key ops.key_secret status

    Exit codes: 0, 1 the engine refused or could not carry out the command, 2 usage, 3 no answer
    from the control socket within 5 s (or a refused Curve key or token). A tcp socket on loopback
    takes the token of --token-file; the engine logs each command with who sent it.
    """
    from touchpoint.control.ctl import default_endpoint
    from touchpoint.probe.transport import plain_allowed
    ep = endpoint or default_endpoint(data_dir, shard)
    curve = None
    if curve_server_key or curve_key:
        curve = curve_settings([ep], "--socket", False, curve_server_key, curve_key)
    elif not plain_allowed(ep):
        raise click.UsageError(f"--socket {ep} is not on loopback: give --curve-server-key and --curve-key "
                               f"(see `touchpoint keys generate`)")
    hint = (f"is `touchpoint engine` running with --ctl {endpoint}?" if endpoint else
            f"is `touchpoint engine` running with --data {data_dir}" + (f" --shard {shard}" if shard else "") +
            "? (or give its --ctl endpoint with --socket)")
    ctx.obj = {"endpoint": ep, "curve": curve, "token": token_for([ep], curve, token_file), "json": as_json,
               "hint": hint}


def ctl_call(cmd: str, shown=None, **args) -> None:
    """Send one command, print its result (through shown(result), if given); exit 1 when
    refused, 3 when nobody answers."""
    from touchpoint.control.ctlclient import Unreachable, request

    from .ctlrender import render

    ctx = click.get_current_context()
    obj = ctx.obj
    name = f"touchpoint ctl {ctx.command_path.split(' ctl ', 1)[-1]}"
    args = {k: v for k, v in args.items() if v is not None}
    try:
        reply = request(obj["endpoint"], cmd, args, curve=obj["curve"], token=obj["token"])
    except Unreachable as e:
        hint = obj["hint"]
        if e.keys:
            hint = ("check the keys: --curve-server-key is the engine's public key, --curve-key a pair whose "
                    "public key is in the engine's --ctl-curve-clients" if obj["curve"] else
                    "check the keys: an engine with --ctl-curve-key needs --curve-server-key and --curve-key, "
                    "one without takes the token of its own --token-file")
        click.echo(f"{name}: {obj['endpoint']}: {e}; {hint}", err=True)
        sys.exit(3)
    if not reply["ok"]:
        click.echo(f"{name}: {reply.get('error')}", err=True)
        sys.exit(1)
    result = shown(reply["result"]) if shown else reply["result"]
    if obj["json"]:
        click.echo(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        click.echo(render(cmd, result, args))


@ctl.command("status")
def ctl_status():
    """Records, subscribers, memory, probe streams; queues, suppressions and channels."""
    ctl_call("status")


@ctl.command("campaigns")
def ctl_campaigns():
    """Every campaign: status (a ctl pause shows as such), triggers, pending, sent."""
    ctl_call("campaigns")


@ctl.command("audience")
@click.argument("campaign", type=CAMPAIGN)
def ctl_audience(campaign):
    """How many subscribers a campaign's audience holds now, condition by condition."""
    ctl_call("audience", campaign=campaign)


@ctl.command("subscriber")
@click.argument("msisdn", type=MSISDN)
@click.option("--reveal", is_flag=True, help="Print the MSISDN, IMSI and IMEI in full (they are personal data).")
def ctl_subscriber(msisdn, reveal):
    """One subscriber: where it is, its handset, its profile (today, 7 and 30 days), and its
    marketing trail (messages, their outcomes, opt-outs). Numbers masked unless --reveal."""
    from .render import mask_digits

    def masked(r: dict) -> dict:
        if reveal:
            return r
        state = r["state"] and {**r["state"], **{k: mask_digits(r["state"][k]) for k in ("imsi", "msisdn", "imei")}}
        return {**r, "msisdn": mask_digits(r["msisdn"]), "state": state}
    ctl_call("subscriber", shown=masked, msisdn=msisdn)


@ctl.command("pause")
@click.argument("campaign", type=CAMPAIGN)
def ctl_pause(campaign):
    """Pause a campaign: its triggers are suppressed until resumed (kept across restarts)."""
    ctl_call("pause", campaign=campaign)


@ctl.command("resume")
@click.argument("campaign", type=CAMPAIGN)
def ctl_resume(campaign):
    """Resume a campaign paused with `ctl pause`."""
    ctl_call("resume", campaign=campaign)


@ctl.command("export")
def ctl_export():
    """Write the marketing data pool now (an engine started with --export POOL), as each --export-every does."""
    ctl_call("export")


@ctl.command("reload")
def ctl_reload():
    """Reload the rules and the lists, as SIGHUP does; rule errors are the answer (and the rules stay)."""
    ctl_call("reload")


@ctl.group("optout")
def ctl_optout():
    """Opt-outs: numbers no campaign (or one campaign) may message."""


@ctl_optout.command("add")
@click.argument("msisdn", type=MSISDN)
@click.option("--campaign", type=CAMPAIGN, help="Only this campaign (default: all of them).")
def ctl_optout_add(msisdn, campaign):
    """Opt a number out of all campaigns, or of one."""
    ctl_call("optout", action="add", msisdn=msisdn, campaign=campaign)


@ctl_optout.command("remove")
@click.argument("msisdn", type=MSISDN)
@click.option("--campaign", type=CAMPAIGN, help="The campaign the opt-out was for (default: all campaigns).")
def ctl_optout_remove(msisdn, campaign):
    """Remove an opt-out set by ctl."""
    ctl_call("optout", action="remove", msisdn=msisdn, campaign=campaign)


@ctl_optout.command("check")
@click.argument("msisdn", type=MSISDN)
def ctl_optout_check(msisdn):
    """The opt-outs of a number: which campaigns, set how (ctl, an MO reply, a list) and when."""
    ctl_call("optout", action="check", msisdn=msisdn)


@ctl.command("lists")
def ctl_lists():
    """The imported lists: rows, columns, generation, the campaigns that use them."""
    ctl_call("lists")


@ctl.command("pending")
@click.option("--campaign", type=CAMPAIGN, help="Only this campaign.")
def ctl_pending(campaign):
    """Messages of `send: approve` campaigns waiting for `ctl approve` or `ctl reject`."""
    ctl_call("pending", campaign=campaign)


@ctl.command("send")
@click.argument("campaign", type=CAMPAIGN)
@click.option("--limit", type=click.IntRange(1), help="At most this many subscribers of the audience.")
@click.option("--dry-run", is_flag=True, help="Print the audience's funnel and how many it would reach; send nothing.")
def ctl_send(campaign, limit, dry_run):
    """Send a campaign to its audience now (scheduled or not), through the contact policy:
    hold-out, opt-outs, cooldown, caps, quota, quiet hours, send windows and approve mode."""
    ctl_call("send", campaign=campaign, limit=limit, dry_run=dry_run)


def decide(verb: str, campaign, message_id) -> None:
    if (campaign is None) == (message_id is None):
        raise click.UsageError("name a CAMPAIGN or a message --id, one of them")
    ctl_call(verb, campaign=campaign, id=message_id)


@ctl.command("approve")
@click.argument("campaign", type=CAMPAIGN, required=False)
@click.option("--id", "message_id", type=MESSAGE_ID, help="One pending message, by the id `ctl pending` shows.")
def ctl_approve(campaign, message_id):
    """Send a campaign's pending messages (or one): each is checked again against the policy."""
    decide("approve", campaign, message_id)


@ctl.command("reject")
@click.argument("campaign", type=CAMPAIGN, required=False)
@click.option("--id", "message_id", type=MESSAGE_ID, help="One pending message, by the id `ctl pending` shows.")
def ctl_reject(campaign, message_id):
    """Drop a campaign's pending messages (or one): they are recorded as rejected, never sent."""
    decide("reject", campaign, message_id)
