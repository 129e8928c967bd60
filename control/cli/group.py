"""The click group `touchpoint`, its --config file (a table a command) and the option types commands share."""

import importlib.util

import click


class DigitsPrefix(click.ParamType):
    """A digit string, optionally ending in '*' for a prefix match."""
    name = "digits"

    def convert(self, value, param, ctx):
        digits = value[:-1] if value.endswith("*") else value
        if not digits or len(digits) > 16 or not all(c in "0123456789*#abc" for c in digits):
            self.fail(f"{value!r} is not up to 16 digits (a trailing * matches a prefix)", param, ctx)
        return digits, value.endswith("*")


@click.group(context_settings={"auto_envvar_prefix": "TOUCHPOINT", "help_option_names": ["-h", "--help"]})
@click.version_option(package_name="touchpoint")
@click.option("--config", type=click.Path(exists=True, dir_okay=False), envvar="TOUCHPOINT_CONFIG",
              help="TOML file of option defaults, a table a command: [decode], [probe], [engine], ...")
@click.pass_context
def main(ctx, config):
    """touchpoint: signaling probe and real-time marketing engine for mobile operators.

    Options resolve from the command line, then TOUCHPOINT_<COMMAND>_<OPTION> environment
    variables, then the --config file.
    """
    if config:
        ctx.default_map = load_config(config, ctx.command)


def load_config(path: str, group: click.Group) -> dict:
    """A TOML file to click default maps: [command] tables keyed by option name (dashes or underscores)."""
    import tomllib
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise click.BadParameter(f"{path}: {e}", param_hint="--config")
    defaults = {}
    for section, values in data.items():
        cmd = group.commands.get(section)
        if cmd is None or not isinstance(values, dict):
            raise click.BadParameter(f"{path}: [{section}] is not a touchpoint command", param_hint="--config")
        names = {}
        for prm in cmd.params:
            names[prm.name] = prm.name
            for opt in prm.opts:
                names[opt.lstrip("-")] = prm.name
                names[opt.lstrip("-").replace("-", "_")] = prm.name
        out = defaults.setdefault(section, {})
        for key, value in values.items():
            if key not in names:
                raise click.BadParameter(f"{path}: unknown setting {key!r} in [{section}]", param_hint="--config")
            out[names[key]] = value
    return defaults


def decoder_options(f):
    """The decoder's options, as `decode` has them."""
    for opt in reversed([
        click.option("--messages", is_flag=True,
                     help="One record per TCAP component (like a dissector), not per dialogue."),
        click.option("--mtp3", type=click.Choice(["itu", "ansi", "japan"]), default="itu", show_default=True,
                     help="MTP3 routing label and SCCP address variant."),
        click.option("--map-ssn", "map_ssns", default="6-9,145,148-150", show_default=True,
                     help="SSNs decoded as MAP when no application context says (like tshark's gsm_map.tcap.ssn)."),
        click.option("--cap-ssn", "cap_ssns", default="146", show_default=True,
                     help="SSNs decoded as CAP when no application context says (like tshark's camel.tcap.ssn)."),
        click.option("--gtpu-port", "gtpu_ports", multiple=True, type=click.IntRange(1, 65535),
                     help="Extra UDP port carrying GTP-U besides 2152 (repeatable)."),
        click.option("--usage-interval", type=click.FloatRange(min=0), default=60.0, show_default=True,
                     help="Seconds of capture time between data-usage records of one GTP-U tunnel."),
        click.option("--dialogue-timeout", type=click.FloatRange(min=0), default=600.0, show_default=True,
                     help="Seconds of capture time before an unanswered dialogue is reported as timed out."),
        click.option("--call-timeout", type=click.FloatRange(min=0), default=14400.0, show_default=True,
                     help="Seconds of capture time an answered call (ISUP, CAP) may last before it is "
                          "reported as timed out, its end unseen."),
        click.option("--country-code", default="", metavar="CC",
                     help="Country code put in front of subscriber numbers signalled in national format "
                          "(ISUP NAI 3, type of number national), so MSISDNs are international as lists have them."),
    ]):
        f = opt(f)
    return f


def decoder_settings(messages, mtp3, map_ssns, cap_ssns, gtpu_ports, usage_interval, dialogue_timeout,
                     call_timeout, country_code="", probe_id=0):
    from touchpoint.probe.decode import Options
    if country_code and not (country_code.isascii() and country_code.isdigit() and len(country_code) <= 3):
        raise click.BadParameter(f"{country_code!r} is not a country code (1 to 3 digits)", param_hint="--country-code")
    return Options(messages=messages, mtp3=mtp3, dialogue_timeout=dialogue_timeout, call_timeout=call_timeout,
                   probe_id=probe_id,
                   map_ssns=parse_ranges(map_ssns, "--map-ssn"), cap_ssns=parse_ranges(cap_ssns, "--cap-ssn"),
                   gtpu_ports=(2152, *gtpu_ports), usage_interval=usage_interval, country_code=country_code)


def parse_ranges(text: str, what: str) -> tuple:
    """'6-9,145' -> (6, 7, 8, 9, 145)."""
    out = []
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            lo, _, hi = part.partition("-")
            out.extend(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a list of numbers and ranges like 6-9,145", param_hint=what)
    if not all(0 < x < 256 for x in out):
        raise click.BadParameter(f"{text!r}: SSNs are between 1 and 255", param_hint=what)
    return tuple(out)


class Endpoint(click.ParamType):
    """A ZeroMQ endpoint: tcp://HOST:PORT, ipc://PATH or inproc://NAME."""
    name = "endpoint"

    def convert(self, value, param, ctx):
        scheme, sep, rest = value.partition("://")
        if not sep or scheme not in ("tcp", "ipc", "inproc") or not rest:
            self.fail(f"{value!r} is not a ZeroMQ endpoint like tcp://host:5555 or ipc:///run/tp.sock", param, ctx)
        port = rest.rpartition(":")[2]
        if scheme == "tcp" and not port:
            self.fail(f"{value!r} has no port", param, ctx)
        if scheme == "tcp" and port != "*" and not (port.isdigit() and int(port) <= 65535):
            self.fail(f"{value!r}: the port must be 0 to 65535 or * (libzmq would take {port} modulo 65536)",
                      param, ctx)
        return value


class Speed(click.ParamType):
    """Replay speed: max (as fast as it goes), 1x (original timing), Nx (N times faster)."""
    name = "speed"

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)):
            factor = float(value)
        elif str(value).lower() == "max":
            return 0.0
        else:
            try:
                factor = float(str(value).lower().removesuffix("x"))
            except ValueError:
                self.fail(f"{value!r} is not max, 1x or a factor like 10x", param, ctx)
        if not factor > 0:
            self.fail(f"{value!r}: the factor must be above 0", param, ctx)
        return factor


def curve_settings(endpoints, option: str, plain: bool, server_key: str | None, key: str | None, server=False,
                   clients: str | None = None):
    """The Curve keys of a probe (client) or tap (server), after the plain-text rule: unencrypted tcp
    only to or on loopback, unless --plain. A server with keys but no client key directory lets in
    any client that knows its public key: it says so."""
    from touchpoint.probe.transport import Curve, plain_allowed
    if server and key and not clients:
        click.echo(f"{click.get_current_context().command_path}: warning: --curve-key without --curve-clients: "
                   f"{option} accepts any client that has this server's public key (give --curve-clients DIR "
                   f"to let in only yours)", err=True)
    if server_key and not key or (key and not server_key and not server):
        raise click.UsageError("--curve-server-key and --curve-key go together")
    if not key:
        remote = [ep for ep in endpoints if not plain_allowed(ep)]
        if remote and not plain:
            what = ("give --curve-key (see `touchpoint keys generate`)" if server else
                    "give --curve-server-key and --curve-key (see `touchpoint keys generate`)")
            raise click.UsageError(f"{option} {remote[0]} is not on loopback: records would cross the network "
                                   f"unencrypted; {what}, or --plain")
        return None
    if plain:
        raise click.UsageError("--plain and Curve keys exclude each other")
    try:
        return Curve.server_keys(key) if server else Curve.client(key, server_key)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--curve-key")


def token_option(f):
    return click.option("--token-file", type=click.Path(dir_okay=False), metavar="FILE", envvar="TOUCHPOINT_TOKEN_FILE",
                        help="The secret that tcp without Curve authenticates with, the same file on both sides "
                             "(mode 0600; made when absent)  [default: ~/.config/touchpoint/token]")(f)


def token_for(endpoints, curve, token_file: str | None, option: str = "--token-file") -> bytes | None:
    """The token's secret when one of endpoints is tcp without Curve, else None."""
    from touchpoint.probe.transport import load_token, needs_token
    if not needs_token(endpoints, curve):
        return None
    try:
        return load_token(token_file)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint=option)


def _seconds(value, param) -> int:
    """A duration option (48h, 1d) in seconds; 0 when not given."""
    from touchpoint.control.yamldoc import DURATION, UNITS
    if value is None:
        return 0
    m = DURATION.match(value.strip())
    if not m or not int(m.group(1)):
        raise click.BadParameter(f"{value!r} is not a duration: a number above 0 followed by s, m, h or d (1d)",
                                 param=param)
    return int(m.group(1)) * UNITS[m.group(2)]


def data_dir_option(f):
    return click.option("--data", "data_dir", type=click.Path(file_okay=False), default="touchpoint-data",
                        show_default=True, envvar="TOUCHPOINT_DATA",
                        help="The engine's data directory: lists, state snapshots, trigger log.")(f)


def need_extra(extra: str, *modules: str) -> None:
    """A clear error, before anything runs, when an optional dependency of a command is missing."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise click.ClickException(f"this needs {' and '.join(missing)} (pip install 'touchpoint[{extra}]')")
