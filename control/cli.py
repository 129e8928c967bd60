"""The `touchpoint` command: one click group, one subcommand per job.

Every option can also come from the environment as TOUCHPOINT_<COMMAND>_<OPTION>
(for example TOUCHPOINT_DECODE_MTP3=japan).
"""
import csv
import json
import os
import sys
from datetime import datetime, timezone

import click
import numpy as np

from touchpoint.probe.record import Kind, pack

KIND_NAMES = [k.name.lower() for k in Kind]


class DigitsPrefix(click.ParamType):
    """A digit string, optionally ending in '*' for a prefix match."""
    name = "digits"

    def convert(self, value, param, ctx):
        digits = value[:-1] if value.endswith("*") else value
        if not digits or len(digits) > 16 or not all(c in "0123456789*#abc" for c in digits):
            self.fail(f"{value!r} is not up to 16 digits (a trailing * matches a prefix)", param, ctx)
        return digits, value.endswith("*")


def digits_mask(values: np.ndarray, digits: str, prefix: bool) -> np.ndarray:
    want = np.uint64(pack(digits))
    if not prefix:
        return values == want
    shift = np.uint64(4 * (16 - len(digits)))
    return (values >> shift) == (want >> shift)


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


def run():
    """Console entry point: a closed pipe (| head) ends output quietly, like tshark."""
    try:
        main()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)


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
        click.option("--country-code", default="", metavar="CC",
                     help="Country code put in front of subscriber numbers signalled in national format "
                          "(ISUP NAI 3, type of number national), so MSISDNs are international as lists have them."),
    ]):
        f = opt(f)
    return f


def decoder_settings(messages, mtp3, map_ssns, cap_ssns, gtpu_ports, usage_interval, dialogue_timeout,
                     country_code="", probe_id=0):
    from touchpoint.probe.decode import Options
    if country_code and not (country_code.isascii() and country_code.isdigit() and len(country_code) <= 3):
        raise click.BadParameter(f"{country_code!r} is not a country code (1 to 3 digits)", param_hint="--country-code")
    return Options(messages=messages, mtp3=mtp3, dialogue_timeout=dialogue_timeout, probe_id=probe_id,
                   map_ssns=parse_ranges(map_ssns, "--map-ssn"), cap_ssns=parse_ranges(cap_ssns, "--cap-ssn"),
                   gtpu_ports=(2152, *gtpu_ports), usage_interval=usage_interval, country_code=country_code)


@main.command()
@click.argument("pcaps", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["table", "jsonl", "csv"]), default="table", show_default=True)
@click.option("--kind", "kinds", multiple=True, type=click.Choice(KIND_NAMES), help="Only these event kinds (repeatable).")
@click.option("--imsi", type=DigitsPrefix(), help="Only this IMSI (a trailing * matches a prefix).")
@click.option("--msisdn", type=DigitsPrefix(), help="Only this MSISDN (a trailing * matches a prefix).")
@click.option("--limit", type=click.IntRange(min=0), help="Stop after this many records.")
@click.option("--count", is_flag=True, help="Decode everything, print only the number of records.")
@click.option("--stats", is_flag=True, help="Per-layer counts and the top anomalies, on stderr.")
@decoder_options
def decode(pcaps, fmt, kinds, imsi, msisdn, limit, count, stats, **decoder):
    """Decode capture files (pcap or pcapng) into signaling records: MAP, GTP-C, GTP-U usage."""
    from touchpoint.probe.decode import CaptureError, Stats, decode_file

    opts = decoder_settings(**decoder)
    out = Writer(fmt, sys.stdout) if not count else None
    total = Stats()
    shown = 0
    failed = False
    kind_values = np.array([Kind[k.upper()].value for k in kinds], np.uint16)
    for path in pcaps:
        try:
            for batch in decode_file(path, opts, stats=total):
                if len(kind_values):
                    batch = batch[np.isin(batch["kind"], kind_values)]
                if imsi:
                    batch = batch[digits_mask(batch["imsi"], *imsi)]
                if msisdn:
                    batch = batch[digits_mask(batch["msisdn"], *msisdn)]
                if limit is not None:
                    batch = batch[:limit - shown]
                shown += len(batch)
                if out:
                    out.write(batch)
                if limit is not None and shown >= limit:
                    break
        except CaptureError as e:
            click.echo(f"touchpoint decode: {e}", err=True)
            failed = True
        except BrokenPipeError:
            raise
        except OSError as e:
            click.echo(f"touchpoint decode: {path}: {e.strerror}", err=True)
            failed = True
        if limit is not None and shown >= limit:
            break
    if count:
        click.echo(shown)
    if stats:
        print_stats(total)
    sys.exit(1 if failed else 0)


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


class Writer:
    """Records to text as table, jsonl or csv."""

    def __init__(self, fmt: str, stream):
        self.fmt = fmt
        self.stream = stream
        self.started = False

    def write(self, batch: np.ndarray) -> None:
        from touchpoint.probe.format import COLUMNS, to_dicts
        if not len(batch):
            return
        dicts = to_dicts(batch)
        w = self.stream.write
        if self.fmt == "jsonl":
            w("".join(json.dumps(d, separators=(",", ":")) + "\n" for d in dicts))
        elif self.fmt == "csv":
            writer = csv.DictWriter(self.stream, COLUMNS, extrasaction="ignore", lineterminator="\n")
            if not self.started:
                writer.writeheader()
            for d in dicts:
                d["flags"] = "|".join(d["flags"])
            writer.writerows(dicts)
        else:
            if not self.started:
                w(TABLE.format(frame="frame", time="time (UTC)", kind="kind", op="op", flags="flags",
                               imsi="imsi", msisdn="msisdn", peer="peer", node="node", extra="more") + "\n")
            for d in dicts:
                w(table_row(d) + "\n")
        self.started = True


TABLE = "{frame:>8} {time:<23} {kind:<21} {op:>3} {flags:<6} {imsi:<16} {msisdn:<16} {peer:<16} {node:<16} {extra}"
FLAG_LETTERS = {"request": "Q", "response": "R", "error": "E", "abort": "A", "timeout": "T", "partial": "P",
                "correlated": "C"}


EXTRA = (("imei", "imei={}"), ("ss_code", "ss=0x{:02x}"), ("cause", "cause={}"), ("apn", "apn={}"),
         ("rat", "rat={}"), ("service_key", "key={}"), ("event", "event={}"), ("packets", "pkts={}"),
         ("octets", "bytes={}"), ("parts", "parts={}"), ("part", "part={}"), ("app_port", "port={}"),
         ("version", "v{}"))


def table_row(d: dict) -> str:
    extra = [fmt.format(d[k]) for k, fmt in EXTRA if k in d]
    if "loc_type" in d:
        extra.append(f"{d['loc_type']}={d.get('mcc', '')}-{d.get('mnc', '')}-{d['lac_tac']}-{d['cell']}")
    t = datetime.fromtimestamp(d["ts_ns"] / 1e9, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:23]
    return TABLE.format(frame=d["frame"], time=t, kind=d["kind"], op=d["op"],
                        flags="".join(FLAG_LETTERS[f] for f in d["flags"]), imsi=d.get("imsi", "-"),
                        msisdn=d.get("msisdn", "-"), peer=d.get("peer", "-"), node=d.get("node", "-"),
                        extra=" ".join(extra))


def print_stats(s) -> None:
    from touchpoint.probe.decode import ANOMALY_INFO
    echo = lambda line="": click.echo(line, err=True)
    echo(f"frames {s.frames}  bytes {s.bytes}  records {s.records}")
    cols = ("packets", "decoded", "truncated", "malformed", "unsupported", "other", "evicted")
    echo(f"{'layer':<8}" + "".join(f"{c:>12}" for c in cols))
    for layer, row in s.by_layer().items():
        if any(row.values()):
            echo(f"{layer:<8}" + "".join(f"{row[c]:>12}" for c in cols))
    if s.anomalies:
        echo("top anomalies:")
        for a, n in s.anomalies.most_common(10):
            layer, cls, text = ANOMALY_INFO[a.value]
            echo(f"  {n:>10}  {layer}/{cls}: {a.name} ({text})")
    bad = [r for r in s.recent if ANOMALY_INFO[r[2].value][1] in ("truncated", "malformed")]
    if bad:
        echo("last truncated or malformed (file, frame, anomaly, byte offset in frame):")
        for src, frame, a, off in bad[-5:]:
            echo(f"  {src} frame {frame}: {a.name} at byte {off}")


@main.command()
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
              help="Render this story (YAML, see rules/README.md) instead of random traffic; "
                   "--subscribers, --packets, --rate and --mix do not apply.")
@click.option("--expect", type=click.Path(dir_okay=False, writable=True),
              help="With --scenario: write the story's steps (subscriber, step, time, records) as JSONL.")
@click.pass_context
def synth(ctx, out, subscribers, packets, seed, rate_pps, mix, expected, scenario, expect):
    """Write a realistic test capture for N subscribers, with the records it must decode to."""
    try:
        from touchpoint.probe.synth import MIXES, generate
    except ImportError as e:
        raise click.ClickException(f"synth needs the test extras (pip install '.[synth]'): {e}")
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
    from touchpoint.probe.story import StoryError, render
    try:
        st = render(scenario, out, seed=seed, expect_path=expect, expected_path=expected)
    except StoryError as e:
        raise click.ClickException(str(e))
    click.echo(f"wrote {out}: {st['steps']} story steps, {st['packets']} packets, {st['bytes']} bytes", err=True)


# --- probe and tap -------------------------------------------------------------------------------

class Endpoint(click.ParamType):
    """A ZeroMQ endpoint: tcp://HOST:PORT, ipc://PATH or inproc://NAME."""
    name = "endpoint"

    def convert(self, value, param, ctx):
        scheme, sep, rest = value.partition("://")
        if not sep or scheme not in ("tcp", "ipc", "inproc") or not rest:
            self.fail(f"{value!r} is not a ZeroMQ endpoint like tcp://host:5555 or ipc:///run/tp.sock", param, ctx)
        if scheme == "tcp" and not rest.rpartition(":")[2]:
            self.fail(f"{value!r} has no port", param, ctx)
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


@main.command()
@click.argument("more_pcaps", nargs=-1, type=click.Path(exists=True, dir_okay=False), metavar="[FILE]...")
@click.option("--pcap", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Capture file (pcap or pcapng) to replay; more files may follow it.")
@click.option("--push", multiple=True, type=Endpoint(), metavar="ENDPOINT",
              help="Engine shard to send records to (repeatable: one per shard, in shard order).")
@click.option("--speed", type=Speed(), default="max", show_default=True,
              help="Replay pace: max, 1x (the capture's own timing) or Nx (N times faster).")
@click.option("--loop", type=click.IntRange(min=0), default=1, show_default=True,
              help="Replay the files N times (0: until stopped).")
@click.option("--lossless", is_flag=True,
              help="Wait for the engines instead of dropping (replays, tests); exit 3 without their acknowledgement.")
@click.option("--batch", type=click.IntRange(1, 1_000_000), default=4096, show_default=True,
              help="Records a message holds at most; a shard's batch goes out when full ...")
@click.option("--flush-ms", type=click.FloatRange(min=1), default=100.0, show_default=True,
              help="... or when its oldest record has waited this long.")
@click.option("--probe-id", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="This probe's number, in every record and message header.")
@click.option("--key-map", type=click.Path(exists=True, dir_okay=False),
              help="CSV of msisdn,imsi: the shard key of records with an MSISDN only.")
@click.option("--bindings", type=click.IntRange(min=1024), default=1 << 20, show_default=True,
              help="MSISDN-to-IMSI bindings remembered from the records (24 bytes each).")
@click.option("--queue", type=click.IntRange(min=1), default=262144, show_default=True,
              help="Records queued (all shards together, each its share) while engines are slow or absent; "
                   "then the oldest are dropped.")
@click.option("--ack-timeout", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="Seconds, at the end, for the engines to take what is queued and acknowledge the end of stream.")
@click.option("--status-interval", type=click.FloatRange(min=0), default=5.0, show_default=True,
              help="Seconds between status lines on stderr (0: none).")
@click.option("--stats-json", type=click.Path(dir_okay=False, writable=True),
              help="Write the counters here (at every status line and at the end).")
@click.option("--iface", multiple=True, metavar="IF",
              help="Capture live on this Linux interface (repeatable; AF_PACKET, needs CAP_NET_RAW).")
@click.option("--bpf", metavar="EXPR",
              help="Capture filter (tcpdump syntax, compiled by libpcap); default: SCTP, UDP/TCP on the GTP "
                   "ports, IP fragments; '' keeps everything.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Capture threads per interface, sharing its packets by flow hash (PACKET_FANOUT).")
@click.option("--ring-mb", type=click.IntRange(1, 65536), default=64, show_default=True,
              help="Receive ring of each capture socket (a worker has one per interface), in MiB.")
@click.option("--promisc/--no-promisc", default=True, show_default=True,
              help="Put the interfaces in promiscuous mode while capturing.")
@click.option("--watch", type=click.Path(exists=True, file_okay=False), metavar="DIR",
              help="Follow a directory of rotating capture files (dumpcap -b, tcpdump -C/-G), each file once, in order.")
@click.option("--glob", "globs", multiple=True, metavar="PATTERN",
              help="Names --watch follows (repeatable)  [default: *.pcap*, *.cap*]")
@click.option("--state", type=click.Path(dir_okay=False), metavar="FILE",
              help="Where --watch remembers its progress  [default: DIR/.touchpoint-probe-<probe-id>.json]")
@click.option("--curve-server-key", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help="The engines' Curve public key (its .key file): encrypt and authenticate the links.")
@click.option("--curve-key", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help="This probe's Curve key pair (its .key_secret file), with --curve-server-key.")
@click.option("--plain", is_flag=True,
              help="Allow unencrypted tcp to engines that are not on loopback.")
@click.option("--metrics-port", metavar="[HOST:]PORT",
              help="Serve Prometheus metrics on http://HOST:PORT/metrics (PORT alone: every interface).")
@decoder_options
def probe(more_pcaps, pcap, push, speed, loop, lossless, batch, flush_ms, probe_id, key_map, bindings, queue,
          ack_timeout, status_interval, stats_json, iface, bpf, workers, ring_mb, promisc, watch, globs, state,
          curve_server_key, curve_key, plain, metrics_port, **decoder):
    """Decode captures and publish the records to the engine shards over ZeroMQ.

    \b
    touchpoint probe --pcap day.pcap --push tcp://engine1:5555 --push tcp://engine2:5555 \\
        --curve-server-key engine.key --curve-key probe.key_secret
    touchpoint probe --pcap a.pcap b.pcap --speed 1x --loop 0 --push tcp://127.0.0.1:5555
    touchpoint probe --iface eth1 --workers 2 --push tcp://127.0.0.1:5555
    touchpoint probe --watch /var/spool/dumpcap --push tcp://127.0.0.1:5555

    Each record goes to the shard of its subscriber: a stable hash of the IMSI, else of the IMSI
    learned for its MSISDN, else of the IMSI the --key-map names, else of the MSISDN; records without
    a subscriber go to shard 0. Unencrypted tcp goes only to loopback unless --plain (Curve keys:
    `touchpoint keys generate`). Exit codes: 0 done, 1 a capture could not be read, 2 usage,
    3 an engine rejected the stream or this probe's key or, with --lossless, did not acknowledge its end.
    """
    from touchpoint.probe.run import ProbeRun, ProbeSettings
    from touchpoint.probe.shard import KeyMap
    from touchpoint.probe.source import PcapReplay

    files = list(pcap) + list(more_pcaps)
    if more_pcaps and not pcap:
        raise click.UsageError("name the capture files with --pcap FILE...")
    if sum(map(bool, (files, iface, watch))) > 1:
        raise click.UsageError("one capture source at a time: --pcap, --watch or --iface")
    if not files and not iface and not watch:
        raise click.UsageError("a capture source is needed: --pcap FILE..., --watch DIR or --iface IF")
    if (globs or state) and not watch:
        raise click.UsageError("--glob and --state go with --watch DIR")
    if bpf is not None and not iface:
        raise click.UsageError("--bpf filters live capture (--iface)")
    if not push:
        raise click.UsageError("at least one --push ENDPOINT (an engine shard, or `touchpoint tap --listen`)")
    curve = curve_settings(push, "--push", plain, curve_server_key, curve_key)
    opts = decoder_settings(probe_id=probe_id, **decoder)
    kmap = None
    if key_map:
        try:
            kmap = KeyMap.load(key_map)
        except OSError as e:
            raise click.BadParameter(f"{key_map}: {e.strerror or e}", param_hint="--key-map")
        if kmap.bad_rows:
            click.echo(f"touchpoint probe: --key-map: {kmap.bad_rows} malformed rows skipped, the first "
                       f"{kmap.first_bad}", err=True)
    settings = ProbeSettings(push=list(push), probe_id=probe_id, batch=batch, flush_ms=flush_ms,
                             lossless=lossless, queue=queue, ack_timeout=ack_timeout,
                             status_interval=status_interval, stats_json=stats_json, key_map=kmap,
                             bindings=bindings, curve=curve)
    if iface:
        from touchpoint.probe.live import LiveCapture, LiveError
        try:
            source = LiveCapture(iface, opts, workers=workers, ring_mb=ring_mb, promisc=promisc, bpf_expr=bpf)
        except LiveError as e:
            if e.usage:                     # no such interface, a bad filter expression
                raise click.BadParameter(str(e), param_hint=e.option)
            raise click.ClickException(f"{e.option}: {e}")
    elif watch:
        from touchpoint.probe.watch import PATTERNS, WatchDir
        try:
            source = WatchDir(watch, opts, patterns=globs or PATTERNS, state=state)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--state")
    else:
        source = PcapReplay(files, opts, speed=speed, loop=loop)
    metrics = None
    if metrics_port:
        from touchpoint.probe.metrics import MetricsServer
        try:
            metrics = MetricsServer(metrics_port)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--metrics-port")
        click.echo(f"touchpoint probe: metrics on {metrics.url}", err=True)
    run = ProbeRun(source, settings, stop=source.stop, metrics=metrics)
    try:
        code = run.run()
    except ValueError as e:                 # an endpoint libzmq cannot use
        raise click.BadParameter(str(e), param_hint="--push")
    sys.exit(code)


def curve_settings(endpoints, option: str, plain: bool, server_key: str | None, key: str | None, server=False):
    """The Curve keys of a probe (client) or tap (server), after the plain-text rule: unencrypted tcp
    only to or on loopback, unless --plain."""
    from touchpoint.probe.transport import Curve, plain_allowed
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


@main.group()
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
    public, secret = zmq.auth.create_certificates(directory, name)
    os.chmod(secret, 0o600)
    click.echo(f"wrote {public} (public) and {secret} (secret)", err=True)


@main.command()
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
def tap(listen, fmt, count, expect_eos, curve_key, curve_clients, plain):
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
    curve = curve_settings(listen, "--listen", plain, None, curve_key, server=True)
    try:
        code = tap_run(list(listen), None if count else Writer(fmt, sys.stdout), expect_eos=expect_eos,
                       curve=curve, clients=curve_clients)
    except ValueError as e:
        raise click.ClickException(str(e))
    sys.exit(code)


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


@main.command()
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
def engine(listen, rules_dir, data_dir, shard, triggers_endpoint, snapshot_interval, status_interval, expect_eos,
           capacity, curve_key, curve_clients, plain, ctl_endpoint, ctl_curve_key, ctl_curve_clients, no_dispatch,
           clock, report_every):
    """Run one engine shard: records from the probes in, campaign triggers out.

    \b
    touchpoint engine --rules rules --data /var/lib/touchpoint --listen tcp://0.0.0.0:5555
    touchpoint probe --pcap day.pcap --push tcp://127.0.0.1:5555

    Triggers are appended to DATA/triggers-shard-N.jsonl and handed to the dispatcher in this
    process (contact policy, DATA/outbox.sqlite, the channels of rules/policy.yaml) unless
    --no-dispatch. The subscriber state is snapshotted to DATA/state/ and restored at start.
    SIGHUP reloads the rules. `touchpoint ctl` steers it
    through the control socket (tcp only with --ctl-curve-key and --ctl-curve-clients, except on
    loopback). Exit codes: 0, 1 when batches were lost or a probe's stream could not be read,
    2 usage (rules with errors included).
    """
    from touchpoint.control import rules
    from touchpoint.control.ctl import CtlError, check_security, default_endpoint
    from touchpoint.control.lists import ListStore
    from touchpoint.control.server import EngineServer, EngineSettings
    from touchpoint.probe.transport import Curve

    ctl_curve = None
    if ctl_curve_key:
        try:
            ctl_curve = Curve.server_keys(ctl_curve_key)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--ctl-curve-key")
    try:
        check_security(ctl_endpoint or default_endpoint(data_dir, shard), ctl_curve, ctl_curve_clients)
    except CtlError as e:
        raise click.UsageError(str(e))
    listen = list(listen) or ["tcp://127.0.0.1:5555"]
    if curve_clients and not curve_key:
        raise click.UsageError("--curve-clients goes with --curve-key")
    curve = curve_settings(listen, "--listen", plain, None, curve_key, server=True)
    cfg = EngineSettings(listen=listen, rules_dir=rules_dir, data_dir=data_dir,
                         shard=shard, triggers_endpoint=triggers_endpoint, snapshot_interval=snapshot_interval,
                         status_interval=status_interval, expect_eos=expect_eos, capacity=capacity,
                         ctl=ctl_endpoint, ctl_curve=ctl_curve, ctl_clients=ctl_curve_clients, curve=curve,
                         curve_clients=curve_clients, dispatch=not no_dispatch, clock=clock,
                         report_every=report_every)
    load = lambda path: (lambda rs: (rs, rs.errors))(rules.load(path))
    try:
        server = EngineServer(cfg, load, ListStore(data_dir))
    except ValueError as e:
        click.echo(f"touchpoint engine: the rules have errors:\n{e}", err=True)
        sys.exit(2)
    try:
        code = server.run()
    except CtlError as e:
        raise click.BadParameter(str(e), param_hint="--ctl")
    except ValueError as e:                 # an endpoint libzmq cannot use
        raise click.BadParameter(str(e), param_hint="--listen")
    sys.exit(code)


@main.command()
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
def dispatcher(log, endpoint, rules_dir, data_dir, clock, status_interval):
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
                       status_interval=status_interval))
    except ValueError as e:
        click.echo(f"touchpoint dispatcher: the rules have errors:\n{e}", err=True)
        sys.exit(2)


# --- rules ---------------------------------------------------------------------------------------

@main.group()
def rules():
    """Campaign rules: write them in YAML (rules/README.md), check them here."""


@rules.command("check")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
def rules_check(directory):
    """Check a rules directory: every campaign file (*.yaml) and places.yaml.

    \b
    touchpoint rules check rules/

    Prints every error as FILE:LINE: FIELD: WHY, then a summary. Exit codes: 0 no errors,
    1 errors, 2 usage.
    """
    from collections import Counter

    from touchpoint.control.rules import load

    rs = load(directory)
    for e in rs.errors:
        click.echo(str(e))
    status = Counter(c.status for c in rs.campaigns)
    p = rs.places
    summary = (f"{len(rs.campaigns)} campaigns ({status['active']} active, {status['draft']} draft, "
               f"{status['paused']} paused); places: {len(p.regions)} regions, {len(p.areas)} areas, "
               f"{len(p.hotlines)} hotlines, {len(p.home)} home networks")
    if rs.errors:
        files = len({e.file for e in rs.errors})
        click.echo(f"{len(rs.errors)} error{'s' * (len(rs.errors) > 1)} in {files} file{'s' * (files > 1)}; "
                   f"without errors: {summary}")
        sys.exit(1)
    click.echo(f"ok: {summary}")


@rules.command("test")
@click.option("--rules", "rules_dir", type=click.Path(exists=True, file_okay=False), default="rules",
              show_default=True, help="The campaign rules directory.")
@click.option("--pcap", "pcaps", multiple=True, required=True, type=click.Path(exists=True, dir_okay=False),
              help="Capture to run the rules on (repeatable: in order, as one stream).")
@click.option("--lists", "data_dir", type=click.Path(file_okay=False), envvar="TOUCHPOINT_DATA",
              help="Data directory whose imported lists and TAC table audiences use (default: none, "
                   "so audiences that name lists are empty).")
@click.option("--format", "fmt", type=click.Choice(["table", "jsonl"]), default="table", show_default=True)
@decoder_options
def rules_test(rules_dir, pcaps, data_dir, fmt, **decoder):
    """Dry-run the rules on captures: which campaigns would fire for whom, when and why.

    \b
    touchpoint rules test --rules rules --pcap day.pcap --lists touchpoint-data

    Nothing is sent and nothing is stored: the captures are decoded here and run through the
    engine from empty state. Exit codes: 0, 1 the rules have errors, 2 usage.
    """
    from touchpoint.control import dryrun
    from touchpoint.control.lists import ListStore
    from touchpoint.control.rules import load

    rs = load(rules_dir)
    if rs.errors:
        for e in rs.errors:
            click.echo(str(e), err=True)
        click.echo(f"touchpoint rules test: {len(rs.errors)} errors in {rules_dir} (see `touchpoint rules check`)",
                   err=True)
        sys.exit(1)
    warn = lambda line: click.echo(f"touchpoint rules test: {line}", err=True)
    counts = dryrun.run(rs, pcaps, decoder_settings(**decoder), ListStore(data_dir) if data_dir else None, fmt=fmt,
                        out=sys.stdout, warn=warn)
    fired = ", ".join(f"{cid} {n:,}" for cid, n in counts.items() if n) or "none"
    click.echo(f"touchpoint rules test: {sum(counts.values()):,} triggers from {len(counts)} active campaigns "
               f"({fired})", err=True)


# --- lists ---------------------------------------------------------------------------------------

class ColumnType(click.ParamType):
    """COLUMN=TYPE: a list column's type, forced."""
    name = "column=type"

    def convert(self, value, param, ctx):
        from touchpoint.control.lists import TYPES
        col, sep, typ = value.partition("=")
        if not sep or not col.strip() or typ.strip() not in TYPES:
            self.fail(f"{value!r} is not COLUMN=TYPE with a type of {', '.join(TYPES)}", param, ctx)
        return col.strip().lower(), typ.strip()


@main.group()
def lists():
    """Static lists for campaign audiences, and the TAC table (README: Lists)."""


def run_import(do, errors: str | None) -> None:
    """Runs an import (`do(errors_stream)`), then reports: bad rows on stderr, a summary on stdout."""
    from touchpoint.control.lists import ListError

    try:
        out = open(errors, "w", encoding="utf-8") if errors else None
    except OSError as e:
        raise click.BadParameter(f"{errors}: {e.strerror}", param_hint="--errors")
    try:
        meta = do(out)
    except ListError as e:
        for line in getattr(e, "first_bad", []):
            click.echo(line, err=True)
        raise click.ClickException(str(e))
    finally:
        if out:
            out.close()
    for line in meta["first_bad"]:
        click.echo(line, err=True)
    if meta["bad_rows"] > len(meta["first_bad"]):
        more = f"all in {errors}" if errors else "--errors FILE writes them all"
        click.echo(f"... {meta['bad_rows'] - len(meta['first_bad']):,} more bad rows ({more})", err=True)
    keys = ", ".join(f"{k} {n:,}" + (f" ({meta['duplicates'][k]:,} listed again: the last row wins)"
                                     if meta["duplicates"][k] else "") for k, n in meta["keys"].items())
    what = "the TAC table" if meta["kind"] == "tac" else f"list {meta['name']}"
    click.echo(f"imported {what}: {meta['rows']:,} rows, {meta['bad_rows']:,} bad rows skipped, "
               f"{meta['seconds']:.1f} s; keys: {keys}")
    for c in meta["columns"]:
        click.echo(f"  {c['name']:<16} {describe_column(c, meta)}")


def describe_column(c: dict, meta: dict) -> str:
    if c["type"] == "bitmask":
        return f"capabilities: {', '.join(meta.get('capabilities', [])) or 'none'}"
    text = c["type"]
    if "categories" in c:
        text += f", {c['categories']:,} categories"
    elif c["type"] == "text":
        text += f", up to {c['dtype'].lstrip('|S')} bytes"
    if "min" in c:
        text += f", {c['min']:g} to {c['max']:g}"
    if c["missing"]:
        text += f", {c['missing']:,} missing"
    return text


@lists.command("import")
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--type", "types", multiple=True, type=ColumnType(),
              help="Force a column's type instead of inferring it: age=int (repeatable; int, float, bool, text).")
@click.option("--errors", type=click.Path(dir_okay=False), help="Write every bad row here, not only the first 20.")
@data_dir_option
def lists_import(name, file, types, errors, data_dir):
    """Import a list from a CSV or Parquet file, or replace it (atomically).

    \b
    touchpoint lists import postpaid rules/lists/postpaid.csv
    touchpoint lists import vip vip.parquet --type level=int --errors vip-bad.txt

    The file has an msisdn or an imsi column, or both, and attribute columns. Bad rows are
    reported as FILE:LINE: why and skipped; the rest is imported. Exit codes: 0 imported
    (with or without bad rows), 1 nothing imported (the list stays as it was), 2 usage.
    """
    from touchpoint.control.lists import ListError, check_name, import_list

    try:
        check_name(name)
    except ListError as e:
        raise click.BadParameter(str(e), param_hint="NAME")
    run_import(lambda out: import_list(data_dir, name, file, dict(types), errors=out), errors)


@lists.command("import-tac")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--errors", type=click.Path(dir_okay=False), help="Write every bad row here, not only the first 20.")
@data_dir_option
def lists_import_tac(file, errors, data_dir):
    """Import the TAC table (handset brand, model and capabilities by TAC), or replace it.

    \b
    touchpoint lists import-tac rules/lists/tac.csv

    CSV or Parquet with the columns tac (8 digits), brand and model, and optionally
    capabilities ("5g;volte;esim") and flag columns (a column named after a capability holding
    yes/no, true/false or 1/0). Exit codes as for `lists import`.
    """
    from touchpoint.control.lists import import_tac

    run_import(lambda out: import_tac(data_dir, file, errors=out), errors)


@lists.command("ls")
@data_dir_option
def lists_ls(data_dir):
    """The imported lists and the TAC table: rows, columns, when and from where."""
    from touchpoint.control.lists import TAC, ListError, ListStore

    store = ListStore(data_dir)
    names = store.names() + ([TAC] if store.tac() is not None else [])
    if not names:
        click.echo(f"no lists in {data_dir} (touchpoint lists import NAME FILE)")
        return
    click.echo(f"{'name':<20} {'rows':>12}  {'imported (UTC)':<25} columns")
    for name in names:
        try:
            m = store.get(name).meta
        except ListError as e:
            click.echo(f"{name:<20} {'?':>12}  {e}")
            continue
        cols = ", ".join(c["name"] for c in m["columns"])
        click.echo(f"{name:<20} {m['rows']:>12,}  {m['imported_at']:<25} {cols}")


@lists.command("show")
@click.argument("name")
@click.option("--rows", "sample", type=click.IntRange(min=0), default=5, show_default=True,
              help="Sample rows to print (the first ones of the file).")
@click.option("--reveal", is_flag=True, help="Print MSISDNs and IMSIs in full (they are personal data).")
@data_dir_option
def lists_show(name, sample, reveal, data_dir):
    """A list (or `_tac`, the TAC table): its source, keys, columns and a few rows."""
    from touchpoint.control.lists import ListError, ListStore

    try:
        lst = ListStore(data_dir).get(name)
    except ListError as e:
        raise click.ClickException(str(e))
    m = lst.meta
    click.echo(f"list {name}: {m['rows']:,} rows from {m['source']} ({m['format']}), imported "
               f"{m['imported_at']} in {m['seconds']:.1f} s; {m['bad_rows']:,} bad rows skipped, "
               f"{m['blank_lines']:,} blank lines")
    for k, n in m["keys"].items():
        dup = f" ({m['duplicates'][k]:,} listed again: the last row wins)" if m["duplicates"][k] else ""
        click.echo(f"  key {k:<12} {n:,} distinct{dup}")
    for c in m["columns"]:
        click.echo(f"  {c['name']:<16} {describe_column(c, m)}")
    rows = np.arange(min(sample, len(lst)))
    if not len(rows):
        return
    from touchpoint.probe.record import unpack
    table = {k: [f"{v:08d}" for v in lst.key_of(k, rows)] if k == "tac" else
             [v if reveal and v else mask_digits(v) for v in unpack(lst.key_of(k, rows))] for k in lst.keys}
    for c in lst.columns.values():
        table[c.name] = list(lst.capability_names(rows) if c.type == "bitmask" else c.strings(rows))
    click.echo("\t".join(["#", *table]))
    for i, r in enumerate(rows):
        click.echo("\t".join([str(r + 1), *(str(v[i]) for v in table.values())]))


def mask_digits(digits: str) -> str:
    """8613800138000 -> 86138******00: enough to tell rows apart, not to call anyone."""
    if len(digits) > 9:
        return digits[:5] + "*" * (len(digits) - 7) + digits[-2:]
    return digits[:3] + "*" * (len(digits) - 3) if digits else "-"


@lists.command("rm")
@click.argument("name")
@data_dir_option
def lists_rm(name, data_dir):
    """Remove a list (or `_tac`, the TAC table). A running engine keeps it until it reloads."""
    from touchpoint.control.lists import ListError, remove_list

    try:
        remove_list(data_dir, name)
    except ListError as e:
        raise click.ClickException(str(e))
    click.echo(f"removed {name}")


# --- ctl -----------------------------------------------------------------------------------------

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


@main.group()
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
@click.pass_context
def ctl(ctx, endpoint, data_dir, shard, as_json, curve_server_key, curve_key):
    """Steer a running engine: status, campaigns, opt-outs, approvals.

    \b
    touchpoint ctl status
    touchpoint ctl pause hotline-caller
    touchpoint ctl --json pending --campaign first-5g
    touchpoint ctl --socket tcp://engine1:5560 --curve-server-key engine-ctl.key \\
        --curve-key ops.key_secret status

    Exit codes: 0, 1 the engine refused or could not carry out the command, 2 usage, 3 no answer
    from the control socket within 5 s (or a refused Curve key).
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
    ctx.obj = {"endpoint": ep, "curve": curve, "json": as_json, "hint": hint}


def ctl_call(cmd: str, **args) -> None:
    """Send one command, print its result; exit 1 when refused, 3 when nobody answers."""
    from touchpoint.control.ctl import Unreachable, render, request
    ctx = click.get_current_context()
    obj = ctx.obj
    name = f"touchpoint ctl {ctx.command_path.split(' ctl ', 1)[-1]}"
    args = {k: v for k, v in args.items() if v is not None}
    try:
        reply = request(obj["endpoint"], cmd, args, curve=obj["curve"])
    except Unreachable as e:
        hint = ("check the keys: --curve-server-key is the engine's public key, --curve-key a pair whose "
                "public key is in the engine's --ctl-curve-clients" if e.keys else obj["hint"])
        click.echo(f"{name}: {obj['endpoint']}: {e}; {hint}", err=True)
        sys.exit(3)
    if not reply["ok"]:
        click.echo(f"{name}: {reply.get('error')}", err=True)
        sys.exit(1)
    if obj["json"]:
        click.echo(json.dumps(reply["result"], ensure_ascii=False, indent=2))
    else:
        click.echo(render(cmd, reply["result"], args))


@ctl.command("status")
def ctl_status():
    """Records, subscribers, memory, probe streams; queues, suppressions and channels."""
    ctl_call("status")


@ctl.command("campaigns")
def ctl_campaigns():
    """Every campaign: status (a ctl pause shows as such), triggers, pending, sent."""
    ctl_call("campaigns")


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


@main.command()
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
    from touchpoint.control.demo import DemoError, report, run as run_demo

    try:
        summary = run_demo(out_dir, subscribers, seed, port)
        plots = report(out_dir, summary)
    except DemoError as e:
        raise click.ClickException(str(e))
    for path in plots:
        click.echo(f"plot: {path}")


@main.command()
@click.argument("campaign", required=False)
@data_dir_option
@click.option("--rules", "rules_dir", type=click.Path(file_okay=False), default="rules", show_default=True,
              help="The rules directory: the campaigns' goals (a goal of a list is resolved from the list).")
@click.option("--since", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
              help="Only triggers from this UTC day or time on.")
@click.option("--until", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
              help="Only triggers before this UTC day or time.")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, writable=True), metavar="FILE.png",
              help="Draw it: the funnel, both groups' conversion curves, the trigger-to-send times.")
@click.option("--health", is_flag=True, help="The service health scorecard per day instead of the campaigns.")
def report(campaign, data_dir, rules_dir, since, until, as_json, plot_path, health):
    """What each campaign achieved: funnel, conversion of contacted vs held out, uplift with its
    95% interval, time from trigger to send, per day.

    \b
    touchpoint report --data DIR                    # every campaign
    touchpoint report first-data --since 2026-11-01 --plot first-data.png
    touchpoint report --health --plot health.png    # penetration, activity, lifecycle segments
    """
    from datetime import timezone

    from touchpoint.control import health as health_mod
    from touchpoint.control import report as rep_mod

    ns = lambda t: int(t.replace(tzinfo=timezone.utc).timestamp()) * 10**9 if t else None
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
