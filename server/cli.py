"""The ``diavo`` command. Subcommands import their machinery lazily, so ``diavo --help`` works
on a client-only install and a missing server extra is reported plainly."""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
from pathlib import Path

DEFAULT_DEMO_DIR = "diavo-demo"


def _need_server_extra() -> None:
    try:
        import duckdb  # noqa: F401
        import pyarrow  # noqa: F401
    except ImportError as exc:  # pragma: no cover - exercised only on a client-only install
        sys.exit(f"diavo: this command needs the server extra ({exc.name} is missing): "
                 "pip install 'diavo[server]'")


def _cmd_demo_build(args) -> int:
    _need_server_extra()
    from diavo.server.archive.demo.build import build_demo

    out = build_demo(Path(args.dir), scale=args.scale, seed=args.seed, base_url=args.base_url,
                     n_sources=args.n_sources, progress=not args.quiet)
    print(json.dumps(out))
    return 0


def _cmd_demo(args) -> int:
    """Build the default demo archive if it is missing, then serve it (the README's first command)."""
    _need_server_extra()
    from diavo.server.archive.store import MANIFEST

    root = Path(args.dir or os.environ.get("DIAVO_DEMO_DIR", DEFAULT_DEMO_DIR))
    if (root / MANIFEST).exists():
        print(f"demo archive ready in {root}", flush=True)
    else:
        from diavo.server.archive.demo.build import build_demo

        out = build_demo(root, scale=args.scale, seed=args.seed,
                         base_url=args.base_url or f"http://{args.host}:{args.port}")
        print(f"demo archive built in {root}: {json.dumps(out)}", flush=True)
    if args.no_serve:
        return 0
    args.dir = str(root)
    return _cmd_serve(args)


def _cmd_serve(args) -> int:
    _need_server_extra()
    from diavo.server.app import serve
    from diavo.server.archive.store import MANIFEST, Manifest
    from diavo.server.settings import from_environment

    root = Path(args.dir)
    if not (root / MANIFEST).is_file():
        raise FileNotFoundError(f"no archive in {root} (missing {MANIFEST}); build one with 'diavo demo build {root}'")
    Manifest.read(root)  # refuses an archive of another format with a one-line message
    settings = from_environment(root, host=args.host, port=args.port, base_url=args.base_url,
                                state_dir=Path(args.state_dir) if getattr(args, "state_dir", None) else None,
                                workers=getattr(args, "workers", None))
    if getattr(args, "log_queries", False):
        settings = dataclasses.replace(settings, log_queries=True)
    if getattr(args, "engine", None):
        from diavo.server.engine import engine_name

        try:
            settings = dataclasses.replace(settings, engine=engine_name(args.engine))
        except ValueError as exc:
            sys.exit(f"diavo serve: {exc}")
    if getattr(args, "hats", None):
        settings = dataclasses.replace(settings, hats_dir=Path(args.hats))
    if getattr(args, "storage", None):
        settings = dataclasses.replace(settings, storage=args.storage)
    if getattr(args, "spark_master", None):
        settings = dataclasses.replace(settings, spark_master=args.spark_master)
    print(f"diavo serving {root} at {settings.base_url or f'http://{settings.host}:{settings.port}'}/ "
          f"(TAP: /tap)", flush=True)
    serve(settings, log_level=args.log_level)
    return 0


def _cmd_ingest(args) -> int:
    _need_server_extra()
    from diavo.server.archive.ingest import ingest

    tables = []
    for spec in args.table or []:
        name, sep, path = spec.partition("=")
        if not sep:
            sys.exit(f"diavo ingest: --table wants SCHEMA.TABLE=FILE, got {spec!r}")
        tables.append((name, Path(path)))
    out: dict = {}
    if tables or args.images:
        out = ingest(Path(args.dir), images=[Path(p) for p in args.images or []], tables=tables,
                     base_url=args.base_url, copy=not args.link)
    for spec in args.hats or []:
        from diavo.server.archive.linked import LinkError, link

        name, sep, path = spec.partition("=")
        if not sep:
            sys.exit(f"diavo ingest: --hats wants SCHEMA.TABLE=PATH, got {spec!r}")
        try:
            linked = link(Path(args.dir), name, Path(path))
        except (LinkError, OSError) as exc:
            sys.exit(f"diavo ingest: {exc}")
        out.setdefault("linked", {})[name] = str(linked.path)
    if not out:
        sys.exit("diavo ingest: give --images, --table or --hats")
    print(json.dumps(out))
    return 0


def _cmd_load_pg(args) -> int:
    """Copy an archive's catalogs into PostgreSQL (or, with --existing, check tables loaded some
    other way) and print what was found or done as JSON."""
    _need_server_extra()
    from diavo.server.archive import pg_store
    from diavo.server.archive.linked import archive_model

    try:
        import psycopg
    except ImportError as exc:
        sys.exit(f"diavo load-pg: needs psycopg: pip install 'diavo[postgresql]' ({exc})")
    try:
        url = pg_store.check_url(args.url)
        model = archive_model(Path(args.dir))
        with psycopg.connect(url, connect_timeout=30) as conn:
            if args.existing:
                report = pg_store.describe(conn, model)
            else:
                report = pg_store.load(Path(args.dir), conn, model, reader=args.reader, progress=not args.quiet)
    except (pg_store.PgStoreError, psycopg.Error) as exc:
        sys.exit(f"diavo load-pg: {str(exc).strip()}")
    print(json.dumps(dataclasses.asdict(report)))
    return 1 if report.missing else 0


def _cmd_export(args) -> int:
    _need_server_extra()
    if not (args.parquet or args.hats):
        sys.exit("diavo export: give --parquet OUTDIR, --hats OUTDIR or both")
    out: dict[str, str] = {}
    if args.parquet:
        from diavo.server.archive.export import export_parquet

        out.update({k: str(v) for k, v in export_parquet(Path(args.dir), Path(args.parquet)).items()})
    if args.hats:
        from diavo.server.archive.hats_export import export_hats

        written = export_hats(Path(args.dir), Path(args.hats), margin_arcsec=args.margin)
        out.update({f"{k} (HATS)": str(v) for k, v in written.items()})
    print(json.dumps(out))
    return 0


def _cmd_migrate(args) -> int:
    _need_server_extra()
    from diavo.server.archive.migrate import migrate

    print(migrate(Path(args.dir)))
    return 0


def _query_text(value: str) -> str:
    return sys.stdin.read() if value == "-" else value


def _cmd_adql_check(args) -> int:
    """Syntax only: no archive, no table lookups."""
    from diavo.server.adql.errors import ADQLError
    from diavo.server.adql.parser import parse

    try:
        parse(_query_text(args.query), syntax_only=True)
    except ADQLError as exc:
        print(f"invalid ADQL: {exc}", file=sys.stderr)
        return 1
    print("valid ADQL 2.1")
    return 0


def _cmd_adql_translate(args) -> int:
    _need_server_extra()
    from diavo.server.adql.errors import ADQLError
    from diavo.server.archive.model import load_model
    from diavo.server.query.executor import translate

    try:
        t = translate(_query_text(args.query), load_model())
    except ADQLError as exc:
        print(f"invalid ADQL: {exc}", file=sys.stderr)
        return 1
    print(t.sql)
    if t.params:
        print(f"-- parameters: {t.params!r}")
    return 0


def _cmd_adql_run(args) -> int:
    _need_server_extra()
    from diavo.server.adql.errors import ADQLError
    from diavo.server.engine.base import EngineError, Limits
    from diavo.server.query.executor import open_service

    service = open_service(Path(args.archive))
    try:
        result = service.run(_query_text(args.query), Limits(maxrec=args.maxrec, timeout_s=args.timeout))
    except ADQLError as exc:
        print(f"invalid ADQL: {exc}", file=sys.stderr)
        return 1
    except EngineError as exc:
        print(f"query failed: {exc}", file=sys.stderr)
        return 1
    finally:
        service.engine.close()
    _print_table(result)
    return 0


def _print_table(result) -> None:
    from astropy.table import Table

    cols = {}
    for name, col in zip(result.table.column_names, result.table.columns, strict=False):
        values = col.to_pylist()
        cols[name] = values
    table = Table(cols) if cols and result.table.num_rows else Table(names=result.table.column_names)
    for meta in result.columns:
        name = meta.get("name")
        if name in table.colnames and meta.get("unit"):
            with contextlib.suppress(ValueError):
                table[name].unit = meta["unit"]
    table.pprint(max_lines=-1, max_width=-1)
    note = " (truncated at MAXREC)" if result.overflow else ""
    print(f"-- {result.table.num_rows} row(s){note} in {result.elapsed_s * 1000:.1f} ms")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="diavo", description="TAP/SIA service and tools for Rubin-style difference images")
    sub = p.add_subparsers(dest="command", required=True)

    def serve_options(sp, with_state: bool = True) -> None:
        sp.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
        sp.add_argument("--port", type=int, default=8000)
        sp.add_argument("--base-url", default=None,
                        help="public base URL written into every link (default: from the request, "
                             "honouring X-Forwarded-* headers)")
        sp.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
        sp.add_argument("--log-queries", action="store_true",
                        help="put each query's ADQL text into its request log line")
        sp.add_argument("--engine", default=None,
                        help="query engine: duckdb (the default, embedded), spark (over the archive's HATS) or "
                             "postgresql://USER@HOST:PORT/DB (tables loaded with 'diavo load-pg'; password "
                             "from PGPASSWORD or a pgpass file)")
        sp.add_argument("--spark-master", default=None,
                        help="with --engine spark: spark://HOST:7077 (a standalone cluster) or local[N]")
        sp.add_argument("--storage", choices=["native", "hats"], default=None,
                        help="where the spatial tables are read: the catalog's own copies (native, the "
                             "default: fastest on DuckDB) or the archive's HATS catalogs (DIR/hats)")
        sp.add_argument("--hats", default=None,
                        help="read the spatial tables from the HATS catalogs in this directory (diavo export --hats)")
        if with_state:
            sp.add_argument("--state-dir", default=None, help="UWS job store (default DIR/uws)")
            sp.add_argument("--workers", type=int, default=None, help="async job worker threads")

    srv = sub.add_parser("serve", help="serve an archive over TAP (and the other VO protocols)")
    srv.add_argument("dir")
    serve_options(srv)
    srv.set_defaults(func=_cmd_serve)

    demo = sub.add_parser("demo", help="build the demo archive if missing, then serve it")
    demo.add_argument("--dir", help=f"archive directory (default $DIAVO_DEMO_DIR or ./{DEFAULT_DEMO_DIR})")
    demo.add_argument("--scale", choices=["small", "dp1"], default="small")
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument("--no-serve", action="store_true", help="only build the archive")
    serve_options(demo)
    demo.set_defaults(func=_cmd_demo)
    demo_sub = demo.add_subparsers(dest="demo_command")
    b = demo_sub.add_parser("build", help="build a deterministic DP1-like demo archive into DIR")
    b.add_argument("dir")
    # SUPPRESS: 'diavo demo --scale dp1 build DIR' keeps the scale given before 'build'.
    b.add_argument("--scale", choices=["small", "dp1"], default=argparse.SUPPRESS)
    b.add_argument("--seed", type=int, default=argparse.SUPPRESS)
    b.add_argument("--n-sources", type=int, default=None, help="aim for about this many DiaSources (benchmarks)")
    b.add_argument("--base-url", default=None, help="public base URL written into ObsCore access_url")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=_cmd_demo_build)

    ing = sub.add_parser("ingest", help="build or extend an archive from FITS images and tables")
    ing.add_argument("dir")
    ing.add_argument("--images", nargs="+", help="LSST-style difference-image FITS files")
    ing.add_argument("--table", action="append", help="SCHEMA.TABLE=FILE (.parquet, .csv, .xml/.vot)")
    ing.add_argument("--base-url", default=None)
    ing.add_argument("--link", action="store_true", help="reference the FITS files in place instead of copying")
    ing.add_argument("--hats", action="append",
                     help="SCHEMA.TABLE=PATH: serve the HATS catalog (or collection) at PATH in place")
    ing.set_defaults(func=_cmd_ingest)

    adql = sub.add_parser("adql", help="check, translate or run ADQL 2.1 queries")
    adql_sub = adql.add_subparsers(dest="adql_command", required=True)
    chk = adql_sub.add_parser("check", help="exit 0 if the query is valid ADQL 2.1 syntax, 1 with the position if not")
    chk.add_argument("query", help="the query, or - to read it from standard input")
    chk.set_defaults(func=_cmd_adql_check)
    tr = adql_sub.add_parser("translate", help="print the engine SQL for a query")
    tr.add_argument("query", help="the query, or - for standard input")
    tr.add_argument("--archive", help="archive directory (the data model is the same for every archive)")
    tr.set_defaults(func=_cmd_adql_translate)
    run = adql_sub.add_parser("run", help="run a query on an archive and print the result")
    run.add_argument("query", help="the query, or - for standard input")
    run.add_argument("--archive", required=True)
    run.add_argument("--maxrec", type=int, default=1000)
    run.add_argument("--timeout", type=float, default=60.0, help="seconds")
    run.set_defaults(func=_cmd_adql_run)

    ex = sub.add_parser("export", help="write the catalog tables as Parquet, the spatial ones as HATS")
    ex.add_argument("dir")
    ex.add_argument("--parquet", help="output directory for one Parquet file per table")
    ex.add_argument("--hats", help="output directory for HATS catalogs of the spatial tables (LSDB opens them)")
    ex.add_argument("--margin", type=float, default=None, metavar="ARCSEC",
                    help="with --hats: also write each catalog's margin cache of this width, as a collection")
    ex.set_defaults(func=_cmd_export)

    lpg = sub.add_parser("load-pg", help="copy an archive's catalogs into PostgreSQL with pgSphere, indexed")
    lpg.add_argument("dir")
    lpg.add_argument("url", help="postgresql://USER@HOST:PORT/DB (the password from PGPASSWORD or a pgpass file)")
    lpg.add_argument("--reader", default=None, help="a role to grant what serving needs (SELECT, TEMPORARY)")
    lpg.add_argument("--existing", action="store_true",
                     help="copy nothing: check that the database's tables hold the model's columns")
    lpg.add_argument("--quiet", action="store_true", help="no progress bar")
    lpg.set_defaults(func=_cmd_load_pg)

    mig = sub.add_parser("migrate", help="bring an archive of an older format up to this diavo's (in place)")
    mig.add_argument("dir")
    mig.set_defaults(func=_cmd_migrate)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        # Bad input (a missing archive, an unreadable file, an unknown table): one line, no traceback.
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"diavo: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
