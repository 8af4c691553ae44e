"""Apache Spark SQL as a diavo engine, for catalogs larger than one machine.

The spatial tables are read from the archive's HATS catalogs (``DIR/hats``, or ``hats_dir``) as
Parquet: the plan names only the partitions a query's HEALPix cover meets, and Spark's Parquet
reader skips row groups by their ``_healpix_29`` statistics. The other tables (ObsCore, Visit, the
image table; a spatial table with no HATS catalog) are small: they are read once from the DuckDB
catalog and held as global temporary views, as is TAP_SCHEMA, generated from the model.

One engine per process: Spark has one context per driver, and the views are global to it.
Each query runs in a session of its own (``SparkSession.newSession``: uploads become temporary
views nobody else sees) under a job group of its own, so a time limit or a UWS abort cancels its
Spark jobs (``cancelJobGroup``). The dialect's LIMIT caps it at MAXREC+1 rows; the rows come back
as Arrow and are cast to the types the checker declared (Spark widens some: ``ceil`` is BIGINT,
``DIV`` is BIGINT).
"""
from __future__ import annotations

import contextlib
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

from diavo.server.engine.base import (
    Cancel,
    Deadlines,
    EngineError,
    EngineQuery,
    Limits,
    QueryAborted,
    QueryTimeout,
    ResultSet,
    ResultStream,
)
from diavo.server.sql.dialect import Dialect
from diavo.server.sql.spark_dialect import SPARK

#: Spark settings for a server: no web UI, UTC, Arrow transfers; operators add their own
#: (``DIAVO_SPARK_CONF``-style ``key=value`` pairs through ``conf``).
DEFAULT_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.ansi.enabled": "false",
    "spark.sql.caseSensitive": "false",
}
_ARROW_TYPES = {"boolean": "bool_", "short": "int16", "int": "int32", "long": "int64", "float": "float32",
                "double": "float64", "unsignedByte": "uint8", "char": "string"}


class SparkEngine:
    name = "spark"

    def __init__(self, root: Path, model, master: str = "local[2]", hats_dir: Path | None = None,
                 conf: dict[str, str] | None = None) -> None:
        from pyspark.sql import SparkSession

        from diavo.server.archive import store
        from diavo.server.archive.tap_schema import cached_tap_schema_tables

        self._model = model
        self.dialect: Dialect = SPARK
        hats = Path(hats_dir) if hats_dir is not None else store.own_hats_dir(Path(root))
        # the spatial tables from HATS, and the catalogs linked into the archive (diavo ingest --hats)
        self.layout, _ = store.archive_layout(model, Path(root), hats)
        builder = SparkSession.builder.master(master).appName("diavo")
        for key, value in {**DEFAULT_CONF, **(conf or {})}.items():
            builder = builder.config(key, value)
        self._spark = builder.getOrCreate()
        self._spark.sparkContext.setLogLevel("ERROR")
        in_hats = set(self.layout.partitions)
        regions = dict(self.layout.regions)
        con = store.connect(Path(root), read_only=True)
        try:
            for table in model.tables():
                if table.schema.upper() == "TAP_SCHEMA" or table.qualified_name in in_hats:
                    continue
                data = store.fetch_arrow(con, f"SELECT * FROM {_catalog_relation(table.schema, table.name)}")
                for (qualified, column), bounds in self.layout.regions.items():
                    if qualified == table.qualified_name:
                        data, name = _with_normals(data, column)
                        if name is not None:
                            regions[(qualified, column)] = replace(bounds, normals=name)
                self._view(data, SPARK.table_view(table.schema, table.name))
        finally:
            con.close()
        self.layout = replace(self.layout, regions=regions)
        for name, data in cached_tap_schema_tables(model).items():
            self._view(data, self.dialect.metadata_relation(name))
        self._deadlines = Deadlines()

    def _view(self, data, name: str) -> None:
        frame = self._spark.createDataFrame(data) if data.num_rows else self._spark.createDataFrame(
            [], schema=_spark_schema(data.schema))
        frame.cache().createOrReplaceGlobalTempView(name)

    # ---------------------------------------------------------------- queries
    def stream(self, query: EngineQuery, limits: Limits, cancel: Cancel | None = None,
               uploads: dict | None = None) -> ResultStream:
        """The rows (at most MAXREC+1, the stream tells the overflow) as Arrow batches."""
        table = self._run(query, limits, cancel, uploads)
        batches = table.to_batches(max_chunksize=limits.batch_rows)
        return ResultStream(iter(batches), table.schema, list(query.columns), limits.maxrec)

    def execute(self, query: EngineQuery, limits: Limits, cancel: Cancel | None = None,
                uploads: dict | None = None) -> ResultSet:
        t0 = time.perf_counter()
        table = self._run(query, limits, cancel, uploads)
        overflow = limits.maxrec is not None and table.num_rows > limits.maxrec
        if overflow:
            table = table.slice(0, limits.maxrec)
        return ResultSet(table=table, columns=list(query.columns), overflow=overflow,
                         elapsed_s=time.perf_counter() - t0)

    def _run(self, query: EngineQuery, limits: Limits, cancel: Cancel | None, uploads: dict | None):
        import pyarrow as pa

        session = self._spark.newSession()
        sc = self._spark.sparkContext
        group = f"diavo-{uuid.uuid4().hex}"
        timed_out = threading.Event()
        aborted = threading.Event()

        def interrupt() -> None:
            aborted.set()
            sc.cancelJobGroup(group)

        def on_timeout() -> None:
            timed_out.set()
            sc.cancelJobGroup(group)

        key = self._deadlines.schedule(limits.timeout_s, on_timeout) if limits.timeout_s else None
        if cancel is not None:
            cancel.bind(interrupt)
        try:
            if cancel is not None and cancel.cancelled:
                raise QueryAborted("query aborted")
            for name, data in (uploads or {}).items():
                session.createDataFrame(data).createOrReplaceTempView(self.dialect.upload_relation(name))
            sc.setJobGroup(group, "diavo query", interruptOnCancel=True)
            args = {f"p{i}": value for i, value in enumerate(query.params)}  # the dialect's :p<i> markers
            frame = session.sql(query.sql_for(limits.maxrec, self.dialect), args=args or None)
            table = frame.toArrow()
        except (QueryAborted, QueryTimeout):
            raise
        except Exception as exc:
            if timed_out.is_set():
                raise QueryTimeout(f"query exceeded the execution duration of {limits.timeout_s:g} s") from exc
            if aborted.is_set():
                raise QueryAborted("query aborted") from exc
            raise EngineError(_first_line(exc)) from exc
        finally:
            if key is not None:
                self._deadlines.cancel(key)
            if cancel is not None:
                cancel.unbind(interrupt)
            with contextlib.suppress(Exception):
                sc.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]  # None clears it
        return _conform(table, list(query.columns), pa)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._spark.stop()


def _catalog_relation(schema: str, name: str) -> str:
    """A table of the DuckDB catalog, quoted (the small tables are copied from there)."""
    return '"' + schema.replace('"', '""') + '"."' + name.replace('"', '""') + '"'


def _with_normals(data, column: str):
    """``data`` with the footprints of ``column`` pre-parsed as inward edge normals (Spark has no
    STC-S parser), and the new column's name; (data, None) when some footprint is not a convex
    polygon, so region tests on it are refused rather than answered wrongly."""
    import pyarrow as pa

    from diavo.server.adql.geometry import parse_region
    from diavo.server.sql.spark_dialect import convex_normals

    out: list = []
    for text in data.column(column).to_pylist():
        g = parse_region(text) if text is not None else None
        if g is None:
            out.append(None)  # no footprint: no row passes a test on it, as on DuckDB
            continue
        normals = convex_normals(g[1:]) if g[0] == 3 else None
        if normals is None:
            return data, None
        out.append([list(v) for v in normals])
    name = f"_{column}_normals"
    return data.append_column(name, pa.array(out, type=pa.list_(pa.list_(pa.float64())))), name


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().split("\n")[0]
    return text[:500] or type(exc).__name__


def _spark_schema(schema):
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema)


def _conform(table, columns: list[dict], pa):
    """Cast result columns to the scalar types the checker declared where Spark's differ (and
    UTC timestamps to the naive UTC ones the other engines return)."""
    arrays, names = [], []
    for i, meta in enumerate(columns):
        array = table.column(i)
        datatype = meta.get("datatype") or ""
        scalar = not meta.get("arraysize") or datatype == "char"
        target = getattr(pa, _ARROW_TYPES[datatype])() if scalar and datatype in _ARROW_TYPES else None
        if pa.types.is_timestamp(array.type):
            target = pa.timestamp(array.type.unit) if array.type.tz else None
        if target is not None and array.type != target:
            with contextlib.suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError):
                array = array.cast(target)
        arrays.append(array)
        names.append(meta["name"])
    return pa.table(arrays, names=names)
