"""Put an archive's dp1.DiaSource into a GAVO DaCHS on this machine, for ``bench_vs_dachs.py``.

    python bench/dachs_setup.py --archive DIR [--resdir diavo_bench]

Once per machine (Debian bookworm, as root):

    apt-get install gavodachs2-server
        # the package's set-up needs the Debian cluster running (``pg_ctlcluster 15 main start``)
        # and a pgSphere whose CREATE EXTENSION works on PostgreSQL 15.18: bookworm's 1.2.0
        # script defines two obsolete ``@(..., smoc)`` operators the server refuses; delete those
        # two CREATE OPERATOR statements from /usr/share/postgresql/15/extension/pg_sphere--1.2.0.sql
        # (what conformance/pg_cluster.py does for diavo's own test cluster), then
        # ``dpkg --configure -a``
    python bench/dachs_setup.py --archive DIR
    dachs serve start                      # TAP at http://localhost:8080/tap

This script writes a resource descriptor (``/var/gavo/inputs/RESDIR/q.rd``) whose table has
diavo's columns of dp1.DiaSource with their units, UCDs and descriptions and the pgSphere index
on (ra, dec), lets ``dachs imp`` create the (empty) table and its TAP metadata, copies the rows
in with a binary COPY from the archive (DaCHS's own row-by-row import would take most of an hour
for 1M rows of 87 columns), clusters the table on that index and runs ANALYZE. Both services then hold the same rows.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

INPUTS = Path("/var/gavo/inputs")
FEED = Path("/var/gavo/etc/feed")
DSN = Path("/var/gavo/etc/dsn")


def _dachs_type(pg: str) -> str:
    return {"double precision": "double precision", "timestamptz": "timestamp"}.get(pg, pg)


def resource_descriptor(columns, arrow_schema) -> str:
    from diavo.server.archive.pg_store import pg_type

    lines = ['<resource schema="dp1">',
             '  <meta name="title">diavo benchmark: DP1-style DiaSources</meta>',
             '  <meta name="description">The DiaSources of a diavo archive, for side-by-side benchmarks.</meta>',
             '  <meta name="creationDate">2026-12-04T00:00:00</meta>',
             '  <meta name="subject">transients</meta>',
             '  <table id="DiaSource" onDisk="True" adql="True">',
             '    <meta name="description">DiaSources (diavo demo archive).</meta>',
             '    <FEED source="//scs#spoint-index-def" ra="ra" dec="dec"/>']
    for col, field in zip(columns, arrow_schema, strict=True):
        attrs = {"name": col["name"], "type": _dachs_type(pg_type(field.type))}
        for key in ("unit", "ucd"):
            if col.get(key):
                attrs[key] = col[key]
        head = " ".join(f"{k}={quoteattr(str(v))}" for k, v in attrs.items())
        desc = col.get("description") or ""
        lines.append(f"    <column {head}><description>{escape(desc)}</description></column>")
    lines += ['  </table>',
              '  <data id="import">',
              '    <sources item="none"/>',
              '    <embeddedGrammar><iterator><code>',
              '      return iter(())',
              '    </code></iterator></embeddedGrammar>',
              '    <make table="DiaSource"/>',
              '  </data>',
              '</resource>', '']
    return "\n".join(lines)


def _conninfo() -> str:
    settings = {}
    for path in (DSN, FEED):
        for line in path.read_text().splitlines():
            if "=" in line and not line.startswith("include"):
                k, v = (s.strip() for s in line.split("=", 1))
                settings[k] = v
    return (f"host={settings.get('host', 'localhost')} port={settings.get('port', '5432')} "
            f"dbname={settings['database']} user={settings['user']} password={settings['password']}")


def main() -> None:
    import psycopg
    import pyarrow as pa

    from diavo.server.archive.pg_store import copy_batches
    from diavo.server.engine.base import Limits
    from diavo.server.query.executor import open_service

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archive", required=True, type=Path)
    ap.add_argument("--resdir", default="diavo_bench")
    args = ap.parse_args()

    service = open_service(args.archive)
    query = service.translate("SELECT * FROM dp1.DiaSource")
    stream = service.stream(query, Limits(maxrec=10**9))
    lowered = pa.schema([f.with_name(f.name.lower()) for f in stream.schema])
    rd_dir = INPUTS / args.resdir
    rd_dir.mkdir(parents=True, exist_ok=True)
    (rd_dir / "q.rd").write_text(resource_descriptor(query.columns, stream.schema))
    subprocess.run(["dachs", "imp", f"{args.resdir}/q"], check=True)
    t0 = time.perf_counter()
    with psycopg.connect(_conninfo(), autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("TRUNCATE dp1.diasource")
        n = copy_batches(cur, "dp1.diasource", lowered,
                         (pa.RecordBatch.from_arrays(b.columns, schema=lowered) for b in stream))
        # what DaCHS's own import ends with (the index is declared cluster="True")
        cur.execute("CLUSTER dp1.diasource USING diasource_spoint_diasource")
        cur.execute("VACUUM ANALYZE dp1.diasource")
    stream.close()
    service.close()
    print(f"copied {n:,} rows into dp1.diasource in {time.perf_counter() - t0:.1f} s; "
          "now `dachs serve start` (TAP at http://localhost:8080/tap)")


if __name__ == "__main__":
    main()
