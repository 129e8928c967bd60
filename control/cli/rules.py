"""`touchpoint rules check` and `rules test`: validate campaign rules, dry-run them on captures."""

import sys

import click

from .group import data_dir_option, decoder_options, decoder_settings


@click.group()
def rules():
    """Campaign rules: write them in YAML (docs/rules.md), check them here."""


@rules.command("check")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--lists", "data_dir", type=click.Path(file_okay=False), envvar="TOUCHPOINT_DATA",
              help="Data directory whose imported lists the audiences are checked against (a column or list "
                   "none has is an error); without: list columns are not checked, and said so.")
def rules_check(directory, data_dir):
    """Check a rules directory: every campaign file (*.yaml), places.yaml, policy.yaml and scorecard.yaml.

    \b
    touchpoint rules check rules/
    touchpoint rules check rules/ --lists touchpoint-data

    Prints every error as FILE:LINE: FIELD: WHY, then what could not be checked (warnings),
    then a summary. Exit codes: 0 no errors, 1 errors, 2 usage.
    """
    from collections import Counter

    from touchpoint.control.rules import load

    rs = load(directory, _catalogue(data_dir))
    for e in rs.errors:
        click.echo(str(e))
    for w in rs.warnings:
        click.echo(f"{w} (a warning)")
    status = Counter(c.status for c in rs.campaigns)
    p = rs.places
    summary = (f"{len(rs.campaigns)} campaigns ({status['active']} active, {status['draft']} draft, "
               f"{status['paused']} paused); places: {len(p.regions)} regions, {len(p.areas)} areas, "
               f"{len(p.hotlines)} hotlines, {len(p.home)} home networks")
    if (card := rs.scorecard) is not None:
        summary += f"; scorecard {card.id}: {len(card.indicators)} indicators, weight {card.weight:g}"
    if rs.errors:
        files = len({e.file for e in rs.errors})
        click.echo(f"{len(rs.errors)} error{'s' * (len(rs.errors) > 1)} in {files} file{'s' * (files > 1)}; "
                   f"without errors: {summary}")
        sys.exit(1)
    unchecked = f"; {len(rs.warnings)} warning{'s' * (len(rs.warnings) > 1)}" if rs.warnings else ""
    click.echo(f"ok: {summary}{unchecked}")


@rules.command("test")
@click.option("--rules", "rules_dir", type=click.Path(exists=True, file_okay=False), default="rules",
              show_default=True, help="The campaign rules directory.")
@click.option("--pcap", "pcaps", multiple=True, required=True, type=click.Path(exists=True, dir_okay=False),
              help="Capture to run the rules on (repeatable: in order, as one stream).")
@click.option("--lists", "data_dir", type=click.Path(file_okay=False), envvar="TOUCHPOINT_DATA",
              help="Data directory whose imported lists and TAC table audiences use (default: none, "
                   "so audiences that name lists are empty).")
@click.option("--format", "fmt", type=click.Choice(["table", "jsonl"]), default="table", show_default=True)
@click.option("--no-policy", "policy", flag_value=False, default=True,
              help="The triggers alone, without what the contact policy would make of them.")
@decoder_options
def rules_test(rules_dir, pcaps, data_dir, fmt, policy, **decoder):
    """Dry-run the rules on captures: which campaigns would fire for whom, when and why, and
    what the contact policy would make of each trigger (sent, held out, suppressed and why).

    \b
    touchpoint rules test --rules rules --pcap day.pcap --lists touchpoint-data

    Nothing is sent and nothing is stored: the captures are decoded here and run through the
    engine from empty state, the triggers through the dispatcher's contact policy on the
    records' time (as `engine --clock records`) from an empty contact history. Exit codes: 0,
    1 the rules have errors, 2 usage.
    """
    from touchpoint.control import dryrun
    from touchpoint.control.lists import ListStore
    from touchpoint.control.rules import load

    rs = load(rules_dir, _catalogue(data_dir))
    for w in rs.warnings:
        click.echo(f"touchpoint rules test: {w} (a warning)", err=True)
    if rs.errors:
        for e in rs.errors:
            click.echo(str(e), err=True)
        click.echo(f"touchpoint rules test: {len(rs.errors)} errors in {rules_dir} (see `touchpoint rules check`)",
                   err=True)
        sys.exit(1)
    warn = lambda line: click.echo(f"touchpoint rules test: {line}", err=True)
    counts, outcomes = dryrun.run(rs, pcaps, decoder_settings(**decoder), ListStore(data_dir) if data_dir else None,
                                  fmt=fmt, out=sys.stdout, warn=warn, policy=policy)
    fired = ", ".join(f"{cid} {n:,}" for cid, n in counts.items() if n) or "none"
    click.echo(f"touchpoint rules test: {sum(counts.values()):,} triggers from {len(counts)} active campaigns "
               f"({fired})", err=True)
    for cid, got in outcomes.items():       # what the contact policy makes of them
        click.echo(f"touchpoint rules test: {cid}: " + ", ".join(f"{what} {n:,}" for what, n in sorted(
            got.items(), key=lambda kv: (kv[0] != "sent", -kv[1], kv[0]))), err=True)


# --- lists ---------------------------------------------------------------------------------------


def _catalogue(data_dir):
    """The imported lists' columns of a data directory (None: none given, or none imported)."""
    from touchpoint.control.lists import ListStore
    return ListStore(data_dir).catalogue() if data_dir else None


@rules.command("audience")
@click.argument("campaign")
@click.option("--rules", "rules_dir", type=click.Path(exists=True, file_okay=False), default="rules",
              show_default=True, help="The campaign rules directory.")
@data_dir_option
@click.option("--shard", type=click.IntRange(0, 1023), default=0, show_default=True,
              help="The engine shard whose last snapshot is read.")
def rules_audience(campaign, rules_dir, data_dir, shard):
    """How many subscribers a campaign's audience holds, condition by condition, in the last
    snapshot of an engine's data directory (the dry-run `ctl audience`: no engine needed).

    \b
    touchpoint rules audience roaming-in-shanghai --rules rules --data touchpoint-data

    Exit codes: 0, 1 no such campaign, rules with errors or no snapshot, 2 usage.
    """
    import os

    from touchpoint.control.engine import Engine
    from touchpoint.control.lists import ListStore
    from touchpoint.control.profiles import Days
    from touchpoint.control.rules import load

    lists = ListStore(data_dir)
    rs = load(rules_dir, lists.catalogue())
    found = [c for c in rs.campaigns if c.id == campaign and c.status == "active"]
    snapshot = os.path.join(data_dir, "state", f"shard-{shard}.npz")
    why = (f"{len(rs.errors)} errors in {rules_dir} (see `touchpoint rules check`)" if rs.errors else
           f"no active campaign {campaign!r} in {rules_dir}" if not found else
           f"no snapshot of shard {shard} in {data_dir} (an engine writes it every minute and when it stops)"
           if not os.path.exists(snapshot) else "")
    if why:
        click.echo(f"touchpoint rules audience: {why}", err=True)
        sys.exit(1)
    engine = Engine(rs, lists, days=Days(os.path.join(data_dir, "profiles", f"shard-{shard}")))
    engine.restore(snapshot)
    steps = engine.audience(found[0])
    for what, n in steps:
        click.echo(f"{n:>12,}  {what}")
    click.echo(f"{campaign}: {steps[-1][1]:,} subscribers in the audience (snapshot of shard {shard})")
