"""`touchpoint dispatcher`: the dispatcher as its own process, triggers in, messages out."""

import sys

import click

from .group import Endpoint, data_dir_option, token_for, token_option


@click.command()
@click.option("--log", "log", type=click.Path(dir_okay=False), metavar="FILE",
              help="Follow an engine's trigger log (DATA/triggers-shard-N.jsonl) from where the outbox has it: "
                   "nothing is lost across a crash.")
@click.option("--triggers", "endpoint", type=Endpoint(), metavar="ENDPOINT",
              help="Take triggers from an engine's --triggers PUSH socket (connects to it).")
@click.option("--rules", "rules_dir", type=click.Path(exists=True, file_okay=False), default="rules",
              show_default=True, help="The rules directory: campaigns and policy.yaml (reloaded on SIGHUP).")
@data_dir_option
@click.option("--clock", type=click.Choice(["wall", "records"]), default="wall", show_default=True,
              help="Now is the wall clock, or the latest trigger time seen (replays, tests).")
@click.option("--status-interval", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="Seconds between status lines on stderr (0: none).")
@token_option
def dispatcher(log, endpoint, rules_dir, data_dir, clock, status_interval, token_file):
    """Run the dispatcher as its own process: triggers in, the contact policy, the outbox, the channels.

    \b
    touchpoint engine --no-dispatch --triggers tcp://0.0.0.0:5556 ...      # on the engine's host
    touchpoint dispatcher --triggers tcp://engine-host:5556 --data DIR --rules rules
    touchpoint dispatcher --log DATA/triggers-shard-0.jsonl --data DATA    # same host: lossless

    The engine runs the same dispatcher in its own process by default. Exit codes: 0, 2 usage
    (rules with errors included).
    """
    from touchpoint.control.dispatcher import serve
    from touchpoint.control.policy import make_clock

    if not log and not endpoint:
        raise click.UsageError("give --log FILE, --triggers ENDPOINT or both")
    try:
        sys.exit(serve(rules_dir, data_dir, log=log, endpoint=endpoint, clock=make_clock(clock),
                       status_interval=status_interval, token=token_for([endpoint or ""], None, token_file)))
    except ValueError as e:
        click.echo(f"touchpoint dispatcher: the rules have errors:\n{e}", err=True)
        sys.exit(2)


# --- rules ---------------------------------------------------------------------------------------
