"""`touchpoint export`: a data directory's analysis results into the marketing data pool."""

import click

from .group import data_dir_option


@click.command()
@data_dir_option
@click.option("--rules", "rules_dir", type=click.Path(exists=True, file_okay=False), default="rules",
              show_default=True, help="The rules directory: the names of the areas.")
@click.option("--out", "pool_dir", type=click.Path(file_okay=False), required=True, metavar="POOL",
              help="The pool: a directory of Parquet files partitioned by day (made if need be).")
@click.option("--shard", "shards", type=click.IntRange(0, 65535), multiple=True,
              help="Only this shard (repeatable)  [default: every shard with a snapshot]")
@click.option("--ids", type=click.Choice(["clear", "hashed"]), default="clear", show_default=True,
              help="IMSIs and MSISDNs as the engine holds them, or keyed hashes (DATA/pool.key).")
def export(data_dir, rules_dir, pool_dir, shards, ids):
    """The triggers, outcomes (sent, delivered, replied, converted) and daily profiles of a data
    directory into the marketing data pool, as Parquet files DuckDB and pyarrow read
    (docs/pool.md). Each row goes in once however often it is run; the scenario events come
    from the engine itself (`touchpoint engine --export POOL`): the data directory keeps none.

    \b
    touchpoint export --data touchpoint-data --out pool
    duckdb -c "SELECT campaign, count(*) FROM 'pool/outcomes/*/*.parquet' GROUP BY 1"
    """
    from touchpoint.control import rules
    from touchpoint.control.lists import ListStore
    from touchpoint.control.pool import PoolError, export as export_pool

    ruleset = rules.load(rules_dir, ListStore(data_dir).catalogue())
    if not ruleset.ok:
        raise click.ClickException(f"{rules_dir}: the rules have errors (see `touchpoint rules check`)")
    warn = lambda line: click.echo(f"touchpoint export: {line}", err=True)
    try:
        n = export_pool(data_dir, pool_dir, ruleset, only=list(shards) or None, ids=ids, warn=warn)
    except (PoolError, OSError) as e:
        raise click.ClickException(str(e))
    click.echo(f"exported {data_dir} to {pool_dir}: " + ", ".join(f"{k} {v:,} rows" for k, v in n.items()))
