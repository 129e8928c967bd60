"""`touchpoint probe`: decode captures or live interfaces and push the records to the engine shards."""

import sys

import click

from .group import Endpoint, Speed, curve_settings, decoder_options, decoder_settings, token_for, token_option


@click.command()
@click.argument("more_pcaps", nargs=-1, type=click.Path(exists=True, dir_okay=False), metavar="[FILE]...")
@click.option("--pcap", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Capture file (pcap or pcapng) to replay; more files may follow it.")
@click.option("--push", multiple=True, type=Endpoint(), metavar="ENDPOINT",
              help="Engine shard to send records to (repeatable: one per shard, in shard order).")
@click.option("--bus", multiple=True, metavar="nats://HOST:PORT",
              help="Publish to NATS JetStream instead (repeatable: the cluster's servers; docs/deployment.md).")
@click.option("--partitions", type=click.IntRange(1, 4096), default=16, show_default=True,
              help="With --bus: the deployment's partitions (the stream says them; every probe gives the same).")
@click.option("--bus-credentials", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help="With --bus: a file of one line, USER:PASSWORD.")
@click.option("--bus-replicas", type=click.IntRange(1, 5), default=1, show_default=True,
              help="With --bus: the records' stream's replicas when this probe makes it (3: a cluster).")
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
              help="Follow a directory of rotating capture files (dumpcap -b, tcpdump -C/-G), each file once, "
                   "in order.")
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
@token_option
@decoder_options
def probe(more_pcaps, pcap, push, bus, partitions, bus_credentials, bus_replicas, speed, loop, lossless, batch,
          flush_ms, probe_id, key_map, bindings, queue, ack_timeout, status_interval, stats_json, iface, bpf,
          workers, ring_mb, promisc, watch, globs, state, curve_server_key, curve_key, plain, metrics_port,
          token_file, **decoder):
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
    `touchpoint keys generate`); without Curve, tcp gives the token of --token-file. Exit codes:
    0 done, 1 a capture could not be read, 2 usage, 3 an engine rejected the stream or this probe's
    key or token or, with --lossless, did not acknowledge its end.
    """
    from touchpoint.probe.run import ProbeRun, ProbeSettings

    files = list(pcap) + list(more_pcaps)
    check_sources(files, more_pcaps, pcap, iface, watch, globs, state, bpf, push or bus)
    if push and bus:
        raise click.UsageError("--push (engine shards over ZeroMQ) or --bus (NATS JetStream), not both")
    user = password = None
    if bus_credentials:
        with open(bus_credentials, encoding="utf-8") as f:
            user, sep, password = f.readline().strip().partition(":")
        if not sep or not user:
            raise click.BadParameter(f"{bus_credentials}: one line USER:PASSWORD", param_hint="--bus-credentials")
    curve = curve_settings(push, "--push", plain, curve_server_key, curve_key)
    opts = decoder_settings(probe_id=probe_id, **decoder)
    kmap = load_key_map(key_map) if key_map else None
    settings = ProbeSettings(push=list(push), probe_id=probe_id, batch=batch, flush_ms=flush_ms,
                             lossless=lossless, queue=queue, ack_timeout=ack_timeout,
                             status_interval=status_interval, stats_json=stats_json, key_map=kmap,
                             bindings=bindings, curve=curve, token=token_for(push, curve, token_file),
                             bus=tuple(bus), partitions=partitions, bus_user=user, bus_password=password,
                             bus_replicas=bus_replicas)
    source = open_source(files, opts, speed, loop, iface, workers, ring_mb, promisc, bpf, watch, globs, state)
    metrics = open_metrics(metrics_port) if metrics_port else None
    run = ProbeRun(source, settings, stop=source.stop, metrics=metrics)
    try:
        code = run.run()
    except ValueError as e:                 # an endpoint libzmq cannot use
        raise click.BadParameter(str(e), param_hint="--push")
    sys.exit(code)


def check_sources(files, more_pcaps, pcap, iface, watch, globs, state, bpf, push) -> None:
    """One capture source, the options that go with it, and somewhere to push."""
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
        raise click.UsageError("at least one --push ENDPOINT (an engine shard, or `touchpoint tap --listen`), "
                               "or --bus nats://HOST:PORT")


def load_key_map(key_map: str):
    """--key-map FILE, its malformed rows counted on stderr."""
    from touchpoint.probe.shard import KeyMap
    try:
        kmap = KeyMap.load(key_map)
    except OSError as e:
        raise click.BadParameter(f"{key_map}: {e.strerror or e}", param_hint="--key-map")
    if kmap.bad_rows:
        click.echo(f"touchpoint probe: --key-map: {kmap.bad_rows} malformed rows skipped, the first "
                   f"{kmap.first_bad}", err=True)
    return kmap


def open_source(files, opts, speed, loop, iface, workers, ring_mb, promisc, bpf, watch, globs, state):
    """The capture source the options name: live interfaces, a watched directory or capture files."""
    from touchpoint.probe.source import PcapReplay
    if iface:
        from touchpoint.probe.live import LiveCapture, LiveError
        try:
            return LiveCapture(iface, opts, workers=workers, ring_mb=ring_mb, promisc=promisc, bpf_expr=bpf)
        except LiveError as e:
            if e.usage:                     # no such interface, a bad filter expression
                raise click.BadParameter(str(e), param_hint=e.option)
            raise click.ClickException(f"{e.option}: {e}")
    elif watch:
        from touchpoint.probe.watch import PATTERNS, WatchDir
        try:
            return WatchDir(watch, opts, patterns=globs or PATTERNS, state=state)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--state")
    else:
        return PcapReplay(files, opts, speed=speed, loop=loop)


def open_metrics(metrics_port: str):
    """The Prometheus endpoint of --metrics-port."""
    from touchpoint.probe.metrics import MetricsServer
    try:
        metrics = MetricsServer(metrics_port)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--metrics-port")
    click.echo(f"touchpoint probe: metrics on {metrics.url}", err=True)
    return metrics
