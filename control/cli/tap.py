"""`touchpoint tap`: receive the probes' record stream, check it and print it."""

import sys

import click

from .group import Endpoint, curve_settings, token_for, token_option
from .render import Writer


@click.command()
@click.option("--listen", multiple=True, type=Endpoint(), metavar="ENDPOINT",
              help="Where the probes push (repeatable: several shards into one tap).")
@click.option("--format", "fmt", type=click.Choice(["table", "jsonl", "csv"]), default="table", show_default=True)
@click.option("--count", is_flag=True, help="Print only the number of records received.")
@click.option("--expect-eos", type=click.IntRange(min=1),
              help="Exit after this many ends of stream (one per probe run and shard).")
@click.option("--curve-key", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help="This engine's Curve key pair (its .key_secret file): only Curve probes get in.")
@click.option("--curve-clients", type=click.Path(exists=True, file_okay=False), metavar="DIR",
              help="Accept only the probes whose public keys (*.key) are in DIR (read at start).")
@click.option("--plain", is_flag=True, help="Allow unencrypted tcp on addresses other than loopback.")
@token_option
def tap(listen, fmt, count, expect_eos, curve_key, curve_clients, plain, token_file):
    """Receive the probes' record stream, check it and print it, like tcpdump.

    \b
    touchpoint tap --listen tcp://0.0.0.0:5555 --curve-key engine.key_secret --format jsonl
    touchpoint tap --listen tcp://127.0.0.1:5555 --count --expect-eos 1

    Reports lost batches (sequence gaps) and unreadable streams on stderr. Exit codes: 0, 1 when
    batches were lost or a probe's stream could not be read, 2 usage.
    """
    from touchpoint.control.tap import run as tap_run

    if not listen:
        raise click.UsageError("--listen ENDPOINT is needed")
    if curve_clients and not curve_key:
        raise click.UsageError("--curve-clients goes with --curve-key")
    curve = curve_settings(listen, "--listen", plain, None, curve_key, server=True, clients=curve_clients)
    try:
        code = tap_run(list(listen), None if count else Writer(fmt, sys.stdout), expect_eos=expect_eos,
                       curve=curve, clients=curve_clients, token=token_for(listen, curve, token_file))
    except ValueError as e:
        raise click.ClickException(str(e))
    sys.exit(code)
