"""`touchpoint synth`: write a test capture (the generator, touchpoint.probe.synth, or a story)."""

import click

from .group import need_extra


@click.command()
@click.argument("out", type=click.Path(dir_okay=False, writable=True))
@click.option("--subscribers", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--packets", type=click.IntRange(min=1), default=10000, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--rate", "rate_pps", type=click.FloatRange(min=0.001), default=1000.0, show_default=True,
              help="Packets per second of capture time.")
@click.option("--mix", type=click.Choice(["default", "map", "ss"]), default="default", show_default=True,
              help="default: MAP, CAP, ISUP, SMS/MMS and GTP-C/GTP-U mixed; map: MAP dialogues only; "
                   "ss: weighted to supplementary services and USSD.")
@click.option("--expected", type=click.Path(dir_okay=False, writable=True),
              help="Also write the records the capture must decode to (JSONL, dialogue mode).")
@click.option("--scenario", type=click.Path(exists=True, dir_okay=False),
              help="Render this story (YAML, see docs/rules.md) instead of random traffic; "
                   "--subscribers, --packets, --rate and --mix do not apply.")
@click.option("--expect", type=click.Path(dir_okay=False, writable=True),
              help="With --scenario: write the story's steps (subscriber, step, time, records) as JSONL.")
@click.pass_context
def synth(ctx, out, subscribers, packets, seed, rate_pps, mix, expected, scenario, expect):
    """Write a realistic test capture for N subscribers, with the records it must decode to."""
    need_extra("synth", "pycrate_asn1dir", "pycrate_mobile")
    from touchpoint.probe.synth import MIXES, generate
    if scenario is None:
        if expect:
            raise click.UsageError("--expect needs --scenario")
        st = generate(out, subscribers=subscribers, packets=packets, seed=seed, rate_pps=rate_pps,
                      expected_path=expected, mix=MIXES[mix])
        click.echo(f"wrote {out}: {st['packets']} packets, {st['dialogues']} dialogues, {st['bytes']} bytes",
                   err=True)
        return
    given = [f"--{n.replace('_pps', '').replace('_', '-')}" for n in ("subscribers", "packets", "rate_pps", "mix")
             if ctx.get_parameter_source(n) is click.core.ParameterSource.COMMANDLINE]
    if given:
        raise click.UsageError(f"{', '.join(given)} do not apply to --scenario (the story says who does what)")
    from touchpoint.probe.synth.story import StoryError, render
    try:
        st = render(scenario, out, seed=seed, expect_path=expect, expected_path=expected)
    except StoryError as e:
        raise click.ClickException(str(e))
    click.echo(f"wrote {out}: {st['steps']} story steps, {st['packets']} packets, {st['bytes']} bytes", err=True)


# --- probe and tap -------------------------------------------------------------------------------
