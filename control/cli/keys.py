"""`touchpoint keys generate`: CurveZMQ key pairs for the probe-to-engine and ctl links."""

import os

import click


@click.group()
def keys():
    """CurveZMQ key pairs for the probe-to-engine links."""


@keys.command("generate")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--name", default="touchpoint", show_default=True,
              help="Writes NAME.key (public, to hand out) and NAME.key_secret (keep it private).")
def keys_generate(directory, name):
    """Write a key pair (zmq.auth certificate files) into DIRECTORY.

    \b
    touchpoint keys generate /etc/touchpoint --name engine      # the engines' pair
    touchpoint keys generate /etc/touchpoint --name probe-7     # one pair per probe
    """
    import zmq.auth
    if not name or "/" in name or name.startswith("."):
        raise click.BadParameter(f"{name!r} is not a file name", param_hint="--name")
    for path in (os.path.join(directory, name + ".key"), os.path.join(directory, name + ".key_secret")):
        if os.path.exists(path):
            raise click.ClickException(f"{path} exists: keys are not overwritten")
    os.makedirs(directory, exist_ok=True)
    umask = os.umask(0o077)                 # the secret is 0600 from its first byte, not chmodded after
    try:
        public, secret = zmq.auth.create_certificates(directory, name)
    finally:
        os.umask(umask)
    os.chmod(public, 0o644)                 # the public half is for handing out
    click.echo(f"wrote {public} (public) and {secret} (secret)", err=True)
