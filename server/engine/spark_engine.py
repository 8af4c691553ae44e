"""Apache Spark SQL as a diavo engine, for catalogs larger than one machine.

The spatial tables are read from the archive's HATS catalogs (``DIR/hats``, or ``hats_dir``) as
Parquet: the plan names only the partitions a query's HEALPix cover meets, and Spark's Parquet
reader skips row groups by their ``_healpix_29`` statistics; a query that reads a whole catalog
names a global view over all its files, listed (and its schema read) once at start. The other
tables (ObsCore, Visit, the image table; a spatial table with no HATS catalog) are small: they are
read once from the DuckDB catalog and held as global temporary views, as is TAP_SCHEMA, generated
from the model.

One engine per process: Spark has one context per driver, and the views are global to it.
Each query runs in a session of its own (``SparkSession.newSession``: uploads become temporary
views nobody else sees) under a job group of its own, so a time limit or a UWS abort cancels its
Spark jobs (``cancelJobGroup``). The dialect's LIMIT caps it at MAXREC+1 rows; the rows stream
back as Arrow batches, partition after partition, cast to the types the checker declared (Spark
widens some: ``ceil`` is BIGINT, ``DIV`` is BIGINT).
"""
from __future__ import annotations

import contextlib
import itertools
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

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
        whole = {}
        for qualified, parts in self.layout.partitions.items():
            files = tuple(p.path for p in parts)
            if not SPARK.nameable(files):
                continue  # the dialect refuses such a catalog with a message
            view = "hats__" + qualified.replace(".", "__")
            self._spark.read.parquet(*files).createOrReplaceGlobalTempView(view)
            whole[files] = view
        self.dialect = SPARK.with_views(whole)
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
        """The rows (at most MAXREC+1; the stream tells the overflow) as Arrow batches, fetched
        from Spark one partition at a time as the caller reads them. The first batch is read
        here, so an error Spark finds early raises before any output is written."""
        import pyarrow as pa

        run = _Run(self._spark, self._deadlines, limits, cancel)
        try:
            batches = run.start(query, self.dialect, uploads)
            first = next(batches, None)
        except BaseException:
            run.release()
            raise
        columns = list(query.columns)
        schema = _conform(run.schema.empty_table(), columns, pa).schema
        rest = (_conform(b, columns, pa) for b in batches)
        head = [] if first is None else [_conform(first, columns, pa)]
        return ResultStream(itertools.chain(head, rest), schema, columns, limits.maxrec,
                            on_close=run.release, label=run.group)

    def execute(self, query: EngineQuery, limits: Limits, cancel: Cancel | None = None,
                uploads: dict | None = None) -> ResultSet:
        import pyarrow as pa

        t0 = time.perf_counter()
        stream = self.stream(query, limits, cancel, uploads)
        table = pa.Table.from_batches(list(stream), schema=stream.schema)
        return ResultSet(table=table, columns=list(query.columns), overflow=stream.overflow,
                         elapsed_s=time.perf_counter() - t0)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._spark.stop()


class _Run:
    """One query on Spark: its session (uploads are that session's temporary views), its job
    group (which a time limit or an abort cancels) and the socket its batches come through.

    pyspark's own Arrow collect (``toArrow``) holds every batch until the last has arrived (they
    come out of order); here the Arrow batch RDD is served one partition after another (the next
    one prefetched), which keeps the order of an ORDER BY and the memory of two partitions.
    """

    def __init__(self, spark, deadlines: Deadlines, limits: Limits, cancel: Cancel | None) -> None:
        self._spark = spark
        self._sc = spark.sparkContext
        self._deadlines = deadlines
        self._limits = limits
        self._cancel = cancel
        self.group = f"diavo-{uuid.uuid4().hex}"
        self._timed_out = threading.Event()
        self._aborted = threading.Event()
        self._finished = threading.Event()
        self._released = threading.Lock()
        self._key = deadlines.schedule(limits.timeout_s, self._on_timeout) if limits.timeout_s else None
        self.schema: Any = None  # pyarrow.Schema of Spark's batches, known once planned
        if cancel is not None:
            cancel.bind(self._interrupt)

    def _interrupt(self) -> None:
        self._aborted.set()
        self._sc.cancelJobGroup(self.group)

    def _on_timeout(self) -> None:
        self._timed_out.set()
        self._sc.cancelJobGroup(self.group)

    def start(self, query: EngineQuery, dialect: Dialect, uploads: dict | None) -> Iterator:
        """Plan the query and serve its batches; Spark runs a stage before the last one here."""
        from pyspark.serializers import NoOpSerializer
        from pyspark.sql.pandas.types import to_arrow_schema
        from pyspark.util import _local_iterator_from_socket

        session = self._spark.newSession()
        # The job group covers every job of the query: those that list and read Parquet footers
        # while planning, the stages before the last, and (the serving thread the JVM starts
        # inherits it) the jobs that fetch each partition.
        self._sc.setJobGroup(self.group, "diavo query", interruptOnCancel=True)
        try:
            with self._errors():
                self._check()
                session.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(self._limits.batch_rows))
                for name, data in (uploads or {}).items():
                    session.createDataFrame(data).createOrReplaceTempView(dialect.upload_relation(name))
                args = {f"p{i}": value for i, value in enumerate(query.params)}  # the dialect's :p<i> markers
                frame = session.sql(query.sql_for(self._limits.maxrec, dialect), args=args or None)
                large = session.conf.get("spark.sql.execution.arrow.useLargeVarTypes", "false") == "true"
                self.schema = to_arrow_schema(frame.schema, timezone="UTC", prefers_large_types=large)
                self._check()
                rdd = frame._jdf.toArrowBatchRdd()
                served = self._sc._jvm.PythonRDD.toLocalIteratorAndServe(rdd, True)
        finally:
            with contextlib.suppress(Exception):
                self._sc.setLocalProperty("spark.jobGroup.id", None)  # None clears it
        return self._batches(_local_iterator_from_socket(served, NoOpSerializer()))

    def _batches(self, messages) -> Iterator:
        import pyarrow as pa

        with self._errors():
            for message in messages:
                self._check()
                yield pa.ipc.read_record_batch(pa.py_buffer(message), self.schema)
            self._check()
        self._finished.set()

    def _check(self) -> None:
        """Cancelling a job group stops the jobs running then, not those started after: a limit
        or an abort that fell between two jobs is seen here."""
        if self._timed_out.is_set():
            raise QueryTimeout(f"query exceeded the execution duration of {self._limits.timeout_s:g} s")
        if self._aborted.is_set() or (self._cancel is not None and self._cancel.cancelled):
            raise QueryAborted("query aborted")

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Spark's exceptions as the engine's: a cancelled job is a timeout or an abort."""
        try:
            yield
        except (QueryAborted, QueryTimeout):
            raise
        except Exception as exc:
            if self._timed_out.is_set():
                raise QueryTimeout(f"query exceeded the execution duration of {self._limits.timeout_s:g} s") from exc
            if self._aborted.is_set():
                raise QueryAborted("query aborted") from exc
            raise EngineError(_first_line(exc)) from exc

    def release(self) -> None:
        """Stop what still runs (a reader that left early) and forget the hooks; idempotent."""
        if not self._released.acquire(blocking=False):
            return
        if not self._finished.is_set():
            with contextlib.suppress(Exception):
                self._sc.cancelJobGroup(self.group)
        if self._key is not None:
            self._deadlines.cancel(self._key)
        if self._cancel is not None:
            self._cancel.unbind(self._interrupt)


def _catalog_relation(schema: str, name: str) -> str:
    """A table of the DuckDB catalog, quoted (the small tables are copied from there)."""
    return '"' + schema.replace('"', '""') + '"."' + name.replace('"', '""') + '"'


def _with_normals(data, column: str):
    """``data`` with the footprints of ``column`` pre-parsed as inward edge normals (Spark has no
    STC-S parser), and the new column's name; (data, None) when some footprint is not a convex
    polygon, so region tests on it are refused rather than answered wrongly."""
    import pyarrow as pa

    from diavo.server.adql.geometry import POLYGON, region_shapes
    from diavo.server.sql.spark_dialect import polygons_normals

    texts = data.column(column).to_pylist()
    shapes = region_shapes(texts)
    if any(s is not None and s.kind != POLYGON for s in shapes):
        return data, None
    normals = polygons_normals([None if s is None else s.poly for s in shapes])
    if any(n is None and s is not None for n, s in zip(normals, shapes, strict=True)):
        return data, None
    # no footprint (or one that is not a region): no row passes a test on it, as on DuckDB
    out = [None if n is None else [list(v) for v in n] for n in normals]
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
    if isinstance(table, pa.RecordBatch):
        return pa.RecordBatch.from_arrays(arrays, names=names)
    return pa.table(arrays, names=names)
