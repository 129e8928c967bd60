"""`touchpoint decode`: capture files to signaling records, filtered, as a table, JSON lines or CSV."""

import sys

import click
import numpy as np

from touchpoint.probe.record import Kind, pack

from .group import DigitsPrefix, decoder_options, decoder_settings
from .render import Writer, print_stats


KIND_NAMES = [k.name.lower() for k in Kind]


def digits_mask(values: np.ndarray, digits: str, prefix: bool) -> np.ndarray:
    want = np.uint64(pack(digits))
    if not prefix:
        return values == want
    shift = np.uint64(4 * (16 - len(digits)))
    return (values >> shift) == (want >> shift)


@click.command()
@click.argument("pcaps", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["table", "jsonl", "csv"]), default="table", show_default=True)
@click.option("--kind", "kinds", multiple=True, type=click.Choice(KIND_NAMES),
              help="Only these event kinds (repeatable).")
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
