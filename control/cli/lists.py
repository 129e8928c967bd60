"""`touchpoint lists`: import, list, show and remove the static lists and the TAC table."""

import click
import numpy as np

from .group import data_dir_option
from .render import mask_digits


class ColumnType(click.ParamType):
    """COLUMN=TYPE: a list column's type, forced."""
    name = "column=type"

    def convert(self, value, param, ctx):
        from touchpoint.control.lists import TYPES
        col, sep, typ = value.partition("=")
        if not sep or not col.strip() or typ.strip() not in TYPES:
            self.fail(f"{value!r} is not COLUMN=TYPE with a type of {', '.join(TYPES)}", param, ctx)
        return col.strip().lower(), typ.strip()


@click.group()
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
@click.option("--max-shrink", type=click.IntRange(0, 100), default=50, show_default=True, metavar="PERCENT",
              help="Refuse an import that leaves this much fewer rows than the list has.")
@click.option("--force", is_flag=True, help="Import even when the list shrinks by more than --max-shrink or a "
                                            "CSV field runs over lines (an unclosed quote, most often).")
@data_dir_option
def lists_import(name, file, types, errors, max_shrink, force, data_dir):
    """Import a list from a CSV or Parquet file, or replace it (atomically).

    \b
    touchpoint lists import postpaid rules/lists/postpaid.csv
    touchpoint lists import vip vip.parquet --type level=int --errors vip-bad.txt

    The file has an msisdn or an imsi column, or both, and attribute columns. Bad rows are
    reported as FILE:LINE: why and skipped; the rest is imported. A CSV field that runs over
    lines (a quote not closed) and an import that would shrink the list by more than
    --max-shrink are refused unless --force. Exit codes: 0 imported (with or without bad rows),
    1 nothing imported (the list stays as it was), 2 usage.
    """
    from touchpoint.control.lists import ListError, check_name, import_list

    try:
        check_name(name)
    except ListError as e:
        raise click.BadParameter(str(e), param_hint="NAME")
    run_import(lambda out: import_list(data_dir, name, file, dict(types), errors=out, force=force,
                                       max_shrink=max_shrink / 100), errors)


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
