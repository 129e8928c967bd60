"""`touchpoint demo`: the whole product on a sample day (control.demo)."""

import click

from .group import need_extra


@click.command()
@click.option("--out", "out_dir", default="touchpoint-demo", show_default=True, type=click.Path(file_okay=False),
              help="The demo's directory: wiped and created (captures, lists, rules, data, logs, plots).")
@click.option("--subscribers", type=click.IntRange(50, 100_000), default=3000, show_default=True,
              help="Subscribers of the sample day (a quarter of them background).")
@click.option("--seed", type=int, default=1, show_default=True, help="The same seed gives the same day.")
@click.option("--port", type=click.IntRange(0, 65535), default=0,
              help="The engine's port on 127.0.0.1 (default: a free one).")
def demo(out_dir, subscribers, seed, port):
    """The whole product on a sample day: story, lists, probe -> engine -> dispatcher, report.

    \b
    touchpoint demo                          # into ./touchpoint-demo
    touchpoint demo --out /tmp/d --subscribers 500

    Generates a day of signaling where subscribers live every example campaign's scenario,
    imports the sample lists, runs `touchpoint engine` (dispatcher in-process, --clock records)
    and `touchpoint probe` over ZeroMQ on loopback with the campaigns of rules/, approves what
    waits for approval, then prints the report and writes the plots. Exit code 1 when a step
    fails (a port in use, a process that died), with its reason.
    """
    need_extra("demo", "pycrate_asn1dir", "pycrate_mobile", "matplotlib")
    from touchpoint.control.demo import DemoError, report, run as run_demo

    try:
        summary = run_demo(out_dir, subscribers, seed, port)
        plots = report(out_dir, summary)
    except DemoError as e:
        raise click.ClickException(str(e))
    for path in plots:
        click.echo(f"plot: {path}")
