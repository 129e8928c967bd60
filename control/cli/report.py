"""`touchpoint report`: what each campaign achieved, from the engine's data directory."""

import json
from datetime import timezone

import click

from .group import data_dir_option


@click.command()
@click.argument("campaign", required=False)
@data_dir_option
@click.option("--rules", "rules_dir", type=click.Path(file_okay=False), default="rules", show_default=True,
              help="The rules directory: the campaigns' goals (a goal of a list is resolved from the list), "
                   "scorecard.yaml.")
@click.option("--since", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
              help="Only triggers from this UTC day or time on.")
@click.option("--until", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
              help="Only triggers before this UTC day or time.")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, writable=True), metavar="FILE.png",
              help="Draw it: the funnel, both groups' conversion curves, the trigger-to-send times.")
@click.option("--health", is_flag=True, help="The service health scorecard per day instead of the campaigns.")
@click.option("--forwards", is_flag=True, help="How far CAMPAIGN's seed MMS was forwarded (track_forwards).")
@click.option("--scorecard", is_flag=True, help="The service scorecard of a month (the rules' scorecard.yaml).")
@click.option("--month", type=click.DateTime(["%Y-%m"]),
              help="With --scorecard: the month (default: the latest with health lines), against the one before.")
def report(campaign, data_dir, rules_dir, since, until, as_json, plot_path, health, forwards, scorecard, month):
    """What each campaign achieved: funnel, conversion of contacted vs held out, uplift with its
    95% interval, time from trigger to send, per day.

    \b
    touchpoint report --data DIR                    # every campaign
    touchpoint report first-data --since 2026-11-01 --plot first-data.png
    touchpoint report --health --plot health.png    # penetration, activity, lifecycle segments
    touchpoint report --forwards seed-offer          # forwards of a seed MMS, by day and generation
    touchpoint report --scorecard --month 2026-11    # the service scorecard: scores, weakest first, trend
    """

    from touchpoint.control import health as health_mod
    from touchpoint.control import report as rep_mod

    ns = lambda t: int(t.replace(tzinfo=timezone.utc).timestamp()) * 10**9 if t else None
    if month and not scorecard:
        raise click.UsageError("--month goes with --scorecard")
    if forwards:
        _forwards(campaign, data_dir, rules_dir, as_json, plot_path)
        return
    if scorecard:
        if campaign or since or until or health:
            raise click.UsageError("--scorecard takes --month, --json and --plot: "
                                   "no CAMPAIGN, --since, --until or --health")
        _scorecard(data_dir, rules_dir, month.strftime("%Y-%m") if month else None, as_json, plot_path)
        return
    try:
        if health:
            days = health_mod.read(data_dir)
            if since or until:
                days = [d for d in days if (not since or d["day"] >= since.strftime("%Y-%m-%d"))
                        and (not until or d["day"] < until.strftime("%Y-%m-%d"))]
            if not days:
                raise rep_mod.ReportError(f"{data_dir}: no daily counters (the engine writes them at each day's end "
                                          "of record time and when it stops)")
            click.echo(json.dumps(days, ensure_ascii=False, indent=1) if as_json else rep_mod.render_health(days))
            if plot_path:
                click.echo(f"plot: {rep_mod.plot_health(days, plot_path)}", err=as_json)
            return
        rep = rep_mod.build(data_dir, rules_dir, campaign, ns(since), ns(until))
        click.echo(json.dumps(rep, ensure_ascii=False, indent=1) if as_json else rep_mod.render(rep))
        if plot_path:
            click.echo(f"plot: {rep_mod.plot(rep, plot_path)}", err=as_json)
    except rep_mod.ReportError as e:
        raise click.ClickException(str(e))


def _forwards(campaign, data_dir, rules_dir, as_json, plot_path) -> None:
    from touchpoint.control import forwards, rules
    from touchpoint.control import report as rep_mod

    if not campaign:
        raise click.UsageError("--forwards names the CAMPAIGN whose seed it follows")
    rs = rules.load(rules_dir)
    c = next((c for c in rs.campaigns if c.id == campaign), None)
    if c is None or c.forwards is None:
        raise click.ClickException(f"{campaign}: " + ("no such campaign in " + rules_dir if c is None else
                                                      "it does not track forwards (track_forwards in its rule)"))
    try:
        t = forwards.trail(data_dir, c)
        click.echo(json.dumps(t, ensure_ascii=False, indent=1) if as_json else forwards.render(t))
        if plot_path:
            click.echo(f"plot: {forwards.plot(t, plot_path)}", err=as_json)
    except (forwards.ForwardsError, rep_mod.ReportError) as e:
        raise click.ClickException(str(e))


def _scorecard(data_dir, rules_dir, month, as_json, plot_path) -> None:
    import os

    from touchpoint.control import report as rep_mod
    from touchpoint.control import rules
    from touchpoint.control import scorecard as sc_mod

    rs = rules.load(rules_dir)
    errors = [str(e) for e in rs.errors if os.path.basename(e.file) in sc_mod.SCORECARD_FILES]
    if errors:
        raise click.ClickException("\n".join(errors + [f"{len(errors)} errors in the scorecard "
                                                       "(touchpoint rules check)"]))
    if rs.scorecard is None:
        raise click.ClickException(f"{rules_dir}: no scorecard.yaml (docs/report.md, \"Service scorecard\")")
    if not os.path.isdir(data_dir):
        raise click.ClickException(f"{data_dir}: no such data directory (the engine's --data)")
    try:
        sc = sc_mod.compute(rs.scorecard, data_dir, month)
        click.echo(json.dumps(sc, ensure_ascii=False, indent=1) if as_json else rep_mod.render_scorecard(sc))
        if plot_path:
            click.echo(f"plot: {rep_mod.plot_scorecard(sc, plot_path)}", err=as_json)
    except (sc_mod.ScorecardError, rep_mod.ReportError) as e:
        raise click.ClickException(str(e))
