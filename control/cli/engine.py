"""`touchpoint engine`: run one engine shard (records in, campaign triggers out, the ctl socket)."""

import sys

import click

from .group import Endpoint, _seconds, curve_settings, data_dir_option, token_for, token_option


@click.command()
@click.option("--listen", multiple=True, type=Endpoint(), metavar="ENDPOINT",
              help="Where the probes push to this shard (repeatable)  [default: tcp://127.0.0.1:5555]")
@click.option("--rules", "rules_dir", type=click.Path(exists=True, file_okay=False), default="rules",
              show_default=True, help="The campaign rules directory (reloaded on SIGHUP).")
@data_dir_option
@click.option("--shard", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="This engine's shard number: its snapshot and trigger log are named by it.")
@click.option("--triggers", "triggers_endpoint", type=Endpoint(), metavar="ENDPOINT",
              help="Also send each trigger (JSON) on a ZeroMQ PUSH socket bound here, for the dispatcher.")
@click.option("--snapshot-interval", type=click.FloatRange(min=1), default=60.0, show_default=True,
              help="Seconds between state snapshots: what a crash can lose at most.")
@click.option("--status-interval", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="Seconds between status lines on stderr (0: none).")
@click.option("--expect-eos", type=click.IntRange(min=1),
              help="Exit after this many ends of stream (replays, tests); dwell timers due by then fire.")
@click.option("--capacity", type=click.IntRange(min=1024), default=1 << 16, show_default=True,
              help="Subscribers to make room for at start (the state grows beyond it as needed).")
@click.option("--curve-key", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help="This engine's Curve key pair (its .key_secret file): only Curve probes get in.")
@click.option("--curve-clients", type=click.Path(exists=True, file_okay=False), metavar="DIR",
              help="Accept only the probes whose public keys (*.key) are in DIR (read at start).")
@click.option("--plain", is_flag=True, help="Allow unencrypted tcp from probes on addresses other than loopback.")
@click.option("--ctl", "ctl_endpoint", type=Endpoint(), metavar="ENDPOINT",
              help="The control socket for `touchpoint ctl`  [default: ipc://DATA/ctl.sock; ctl-N.sock for shard N]")
@click.option("--ctl-curve-key", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help="This engine's Curve key pair (.key_secret) for a tcp control socket.")
@click.option("--ctl-curve-clients", type=click.Path(exists=True, file_okay=False), metavar="DIR",
              help="The public keys (*.key) of those who may use the tcp control socket.")
@click.option("--no-dispatch", is_flag=True,
              help="Run no dispatcher here (one runs as `touchpoint dispatcher`, or none: triggers only).")
@click.option("--clock", type=click.Choice(["wall", "records"]), default="wall", show_default=True,
              help="The dispatcher's now (quiet hours, windows, caps): the wall clock, or the records' time "
                   "(replays, tests).")
@click.option("--report-every", metavar="DURATION", callback=lambda ctx, param, v: _seconds(v, param),
              help="Write `touchpoint report --json` to DATA/reports/report-PERIOD.json as each period (1d, 6h; "
                   "of --clock time, UTC) ends, and at shutdown.  [default: off]")
@click.option("--export", "export_dir", type=click.Path(file_okay=False), metavar="POOL",
              help="Write the marketing data pool (Parquet: events, triggers, outcomes, profiles; docs/pool.md) "
                   "into POOL every --export-every, and at shutdown.")
@click.option("--export-every", metavar="DURATION", default="1h", show_default=True,
              callback=lambda ctx, param, v: _seconds(v, param), help="Wall time between exports.")
@click.option("--export-ids", type=click.Choice(["clear", "hashed"]), default="clear", show_default=True,
              help="The pool's IMSIs and MSISDNs: as the engine holds them, or keyed hashes (DATA/pool.key).")
@token_option
def engine(listen, rules_dir, data_dir, shard, triggers_endpoint, snapshot_interval, status_interval, expect_eos,
           capacity, curve_key, curve_clients, plain, ctl_endpoint, ctl_curve_key, ctl_curve_clients, no_dispatch,
           clock, report_every, export_dir, export_every, export_ids, token_file):
    """Run one engine shard: records from the probes in, campaign triggers out.

    \b
    touchpoint engine --rules rules --data /var/lib/touchpoint --listen tcp://0.0.0.0:5555
    touchpoint probe --pcap day.pcap --push tcp://127.0.0.1:5555

    Triggers are appended to DATA/triggers-shard-N.jsonl and handed to the dispatcher in this
    process (contact policy, DATA/outbox.sqlite, the channels of rules/policy.yaml) unless
    --no-dispatch. The subscriber state is snapshotted to DATA/state/ and restored at start.
    SIGHUP reloads the rules. `touchpoint ctl` steers it
    through the control socket (tcp only with --ctl-curve-key and --ctl-curve-clients, except on
    loopback). tcp without Curve, loopback included, lets in only clients with the token of
    --token-file. Exit codes: 0, 1 when batches were lost or a probe's stream could not be read,
    2 usage (rules with errors included).
    """
    from touchpoint.control import rules
    from touchpoint.control.ctl import CtlError, check_security, default_endpoint
    from touchpoint.control.lists import ListStore
    from touchpoint.control.server import DataInUse, EngineServer, EngineSettings, Unusable
    from touchpoint.probe.transport import Curve

    ctl_curve = None
    if ctl_curve_key:
        try:
            ctl_curve = Curve.server_keys(ctl_curve_key)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--ctl-curve-key")
    ctl_endpoint = ctl_endpoint or default_endpoint(data_dir, shard)
    try:
        check_security(ctl_endpoint, ctl_curve, ctl_curve_clients)
    except CtlError as e:
        raise click.UsageError(str(e))
    listen = list(listen) or ["tcp://127.0.0.1:5555"]
    if curve_clients and not curve_key:
        raise click.UsageError("--curve-clients goes with --curve-key")
    curve = curve_settings(listen, "--listen", plain, None, curve_key, server=True, clients=curve_clients)
    plain_sockets = ([] if curve else listen) + ([] if ctl_curve else [ctl_endpoint]) + [triggers_endpoint or ""]
    token = token_for(plain_sockets, None, token_file)
    cfg = EngineSettings(listen=listen, rules_dir=rules_dir, data_dir=data_dir,
                         shard=shard, triggers_endpoint=triggers_endpoint, snapshot_interval=snapshot_interval,
                         status_interval=status_interval, expect_eos=expect_eos, capacity=capacity,
                         ctl=ctl_endpoint, ctl_curve=ctl_curve, ctl_clients=ctl_curve_clients, curve=curve,
                         curve_clients=curve_clients, dispatch=not no_dispatch, clock=clock,
                         report_every=report_every, export_dir=export_dir, export_every=export_every,
                         export_ids=export_ids, token=token)
    lists = ListStore(data_dir)
    load = lambda path: (lambda rs: (rs, rs.errors))(rules.load(path, lists.catalogue()))
    try:
        server = EngineServer(cfg, load, lists)
    except (DataInUse, Unusable) as e:
        click.echo(f"touchpoint engine: {e}", err=True)
        sys.exit(2)
    except ValueError as e:
        click.echo(f"touchpoint engine: the rules have errors:\n{e}", err=True)
        sys.exit(2)
    try:
        code = server.run()
    except Unusable as e:
        click.echo(f"touchpoint engine: {e}", err=True)
        sys.exit(2)
    sys.exit(code)
