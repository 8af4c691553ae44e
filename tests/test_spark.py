"""The spark engine on a real standalone cluster (a master and two workers on loopback) over the
small archive's HATS catalogs in small partitions: the storage corpus gives DuckDB's answers,
a cone reads only the partitions its cover meets, MAXREC is a LIMIT, time limits and aborts
cancel the Spark jobs, and what has no SQL form on Spark is refused with a message.
"""
from __future__ import annotations

import math
import threading
import time

import pytest

from diavo.server.adql.errors import ADQLError
from diavo.server.archive.model import load_model
from diavo.server.engine.base import Cancel, Limits, QueryAborted, QueryTimeout
from diavo.server.engine.duckdb_engine import DuckDBEngine
from diavo.server.query.executor import QueryService
from tests.test_storage_corpus import CORPUS, GEOMETRY_CORPUS, uploads

#: A query that keeps two cores busy for minutes: every pair of DiaSources.
HEAVY = ("SELECT COUNT(*) FROM dp1.DiaSource AS a, dp1.DiaSource AS b "
         "WHERE a.psfFlux * b.psfFlux > 1e300 OR a.psfFluxErr + b.psfFluxErr < -1e300")


#: Parquet splits of 256 KiB: a scan of the small catalogs has a dozen partitions, not two, so
#: results come from several partitions in turn.
CONF = {"spark.sql.files.maxPartitionBytes": "262144", "spark.sql.files.openCostInBytes": "65536"}


@pytest.fixture(scope="module")
def services(small_archive, small_hats, spark_cluster):
    from conformance.spark_cluster import driver_conf
    from diavo.server.engine import open_engine

    model = load_model()
    spark = QueryService(model, open_engine("spark", small_archive[0], model, hats_dir=small_hats,
                                            spark_master=spark_cluster.url, spark_conf=CONF | driver_conf(spark_cluster)))
    duck = QueryService(model, DuckDBEngine(small_archive[0], model))
    yield {"spark": spark, "duckdb": duck}
    spark.close()
    duck.close()


def run(service, adql, **limits):
    up = uploads() if "TAP_UPLOAD" in adql else None
    return service.run(adql, Limits(**{"maxrec": None, "timeout_s": 300, **limits}), uploads=up)


def same_rows(a: list, b: list) -> bool:
    """Equal rows; a computed double may differ in its last bits (Java's and C's libm round
    sin/cos/atan2 differently), so doubles compare to 1e-12 relative."""
    if len(a) != len(b):
        return False
    for ra, rb in zip(a, b, strict=True):
        for x, y in zip(ra, rb, strict=True):
            if isinstance(x, list) and isinstance(y, list):
                if len(x) != len(y) or not all(math.isclose(p, q, rel_tol=1e-12) for p, q in zip(x, y, strict=True)):
                    return False
            elif isinstance(x, float) and isinstance(y, float):
                if not math.isclose(x, y, rel_tol=1e-12, abs_tol=1e-300):
                    return False
            elif x != y:
                return False
    return True


def ordered(table, keep_order: bool) -> list:
    rows = [tuple(r.values()) for r in table.to_pylist()]
    return rows if keep_order else sorted(rows, key=lambda r: repr(tuple(round(v, 9) if isinstance(v, float) else v
                                                                            for v in r)))


@pytest.mark.parametrize("name", list(CORPUS))
def test_the_corpus_gives_duckdbs_answers(services, name):
    adql = CORPUS[name]
    got, want = run(services["spark"], adql), run(services["duckdb"], adql)
    tables = {"mine": uploads()["mine"].table} if "TAP_UPLOAD" in adql else None
    assert services["spark"].translate(adql, tables).columns == services["duckdb"].translate(adql, tables).columns
    assert got.table.column_names == want.table.column_names
    keep = "ORDER BY" in adql
    assert same_rows(ordered(got.table, keep), ordered(want.table, keep)), name


#: What Spark refuses of the geometry corpus (AREA, CENTROID, REGION, a circle against footprints).
SPARK_REFUSES = {"geometry-functions", "region", "footprint-circle"}


@pytest.mark.parametrize("name", list(GEOMETRY_CORPUS))
def test_every_geometry_function_is_answered_as_on_duckdb_or_refused(services, name):
    adql = GEOMETRY_CORPUS[name]
    if name in SPARK_REFUSES:
        with pytest.raises(ADQLError, match="not available on the spark engine"):
            run(services["spark"], adql)
        return
    got, want = run(services["spark"], adql), run(services["duckdb"], adql)
    keep = "ORDER BY" in adql
    assert got.table.column_names == want.table.column_names
    assert same_rows(ordered(got.table, keep), ordered(want.table, keep)), name


def test_a_cone_reads_only_the_partitions_its_cover_meets(services):
    engine = services["spark"].engine
    total = len(engine.layout.partitions["dp1.DiaSource"])
    sql = services["spark"].translate(CORPUS["cone"]).sql
    named = sql.count("Npix=")
    assert total > 3 and 0 < named < total, (named, total)
    # a query that reads the whole catalog names the view listed once at start, not every file
    whole = services["spark"].translate("SELECT COUNT(*) AS n FROM dp1.DiaSource WHERE psfFlux > 0").sql
    assert "global_temp.`hats__dp1__DiaSource`" in whole and "Npix=" not in whole


def test_maxrec_is_the_dialects_limit_and_overflow_is_told(services):
    result = run(services["spark"], CORPUS["cone"], maxrec=5)
    assert result.table.num_rows == 5 and result.overflow
    exact = run(services["spark"], "SELECT TOP 3 diaSourceId FROM dp1.DiaSource ORDER BY diaSourceId", maxrec=3)
    assert exact.table.num_rows == 3 and not exact.overflow


def active_jobs(services) -> list[int]:
    tracker = services["spark"].engine._spark.sparkContext.statusTracker()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        jobs = list(tracker.getActiveJobsIds())
        if not jobs:
            return []
        time.sleep(0.5)
    return jobs


def test_a_time_limit_cancels_the_spark_job(services):
    t0 = time.monotonic()
    with pytest.raises(QueryTimeout):
        run(services["spark"], HEAVY, timeout_s=3)
    assert time.monotonic() - t0 < 120
    assert active_jobs(services) == []


def test_an_abort_cancels_the_spark_job(services):
    cancel = Cancel()
    outcome: list = []

    def work() -> None:
        try:
            services["spark"].run(HEAVY, Limits(maxrec=None, timeout_s=600), cancel)
            outcome.append("finished")
        except QueryAborted:
            outcome.append("aborted")

    thread = threading.Thread(target=work)
    thread.start()
    tracker = services["spark"].engine._spark.sparkContext.statusTracker()
    deadline = time.monotonic() + 60
    while not tracker.getActiveJobsIds() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert tracker.getActiveJobsIds(), "the heavy query never started a job"
    cancel()
    thread.join(timeout=120)
    assert outcome == ["aborted"]
    assert active_jobs(services) == []


@pytest.mark.parametrize("adql", [
    # the tutorial's image search: a point in the pre-parsed convex footprints
    "SELECT obs_id, lsst_visit, lsst_detector FROM ivoa.ObsCore WHERE CONTAINS(POINT('ICRS', 53.125, -27.74), "
    "s_region) = 1 AND dataproduct_subtype = 'lsst.difference_image'",
    "SELECT obs_id FROM ivoa.ObsCore WHERE INTERSECTS(s_region, POINT(59.1, -48.8)) = 1",
    "SELECT obs_id FROM ivoa.ObsCore WHERE 1 = INTERSECTS(POINT(10.0, 10.0), s_region)",
])
def test_footprints_hold_points_as_on_duckdb(services, adql):
    got, want = run(services["spark"], adql), run(services["duckdb"], adql)
    assert "forall(" in services["spark"].translate(adql).sql
    assert sorted(got.table.to_pylist(), key=repr) == sorted(want.table.to_pylist(), key=repr)
    if "10.0" not in adql:
        assert want.table.num_rows > 0


@pytest.mark.parametrize("adql", [
    "SELECT AREA(s_region) FROM ivoa.ObsCore",
    "SELECT obs_id FROM ivoa.ObsCore WHERE CONTAINS(s_region, CIRCLE(53.1, -27.8, 0.1)) = 1",
    "SELECT CENTROID(CIRCLE(ra, dec, 1.0)) FROM dp1.DiaSource",
])
def test_what_has_no_sql_form_on_spark_is_refused_clearly(services, adql):
    with pytest.raises(ADQLError, match="not available on the spark engine"):
        services["spark"].translate(adql)


def test_results_stream_in_batches_in_the_order_of_order_by(services):
    adql = "SELECT diaSourceId, psfFlux FROM dp1.DiaSource ORDER BY psfFlux DESC, diaSourceId"
    service = services["spark"]
    stream = service.stream(service.translate(adql), Limits(maxrec=None, timeout_s=300, batch_rows=500))
    sizes, rows = [], []
    for batch in stream:
        sizes.append(batch.num_rows)
        rows.extend(tuple(r.values()) for r in batch.to_pylist())
    want = run(services["duckdb"], adql).table
    assert len(sizes) > 3 and max(sizes) <= 500, sizes
    assert rows == [tuple(r.values()) for r in want.to_pylist()]
    assert stream.schema.names == ["diaSourceId", "psfFlux"] and not stream.overflow


def test_a_reader_that_leaves_early_stops_the_spark_jobs(services):
    """Partitions are fetched as they are read (the next one prefetched), not collected: a
    reader that leaves after one batch ran jobs for only the first partitions."""
    service = services["spark"]
    query = service.translate("SELECT diaSourceId, ra, dec FROM dp1.DiaSource")
    session = service.engine._spark.newSession()
    partitions = session.sql(query.sql_for(None, service.engine.dialect))._jdf.toArrowBatchRdd().getNumPartitions()
    assert partitions >= 6, partitions
    tracker = service.engine._spark.sparkContext.statusTracker()
    whole = service.stream(query, Limits(maxrec=None, timeout_s=300, batch_rows=100))
    assert sum(b.num_rows for b in whole) == run(services["duckdb"], "SELECT COUNT(*) AS n FROM dp1.DiaSource").table[0][0].as_py()
    jobs_whole = len(tracker.getJobIdsForGroup(whole.label))  # planning, then one per partition
    stream = service.stream(query, Limits(maxrec=None, timeout_s=300, batch_rows=100))
    first = next(iter(stream))
    assert first.num_rows == 100
    stream.close()
    assert active_jobs(services) == []
    jobs_early = len(tracker.getJobIdsForGroup(stream.label))
    assert jobs_whole >= partitions and jobs_whole - jobs_early >= partitions - 3, (jobs_whole, jobs_early)
    # the engine still answers after a stream was cut short
    assert run(service, "SELECT COUNT(*) AS n FROM dp1.Visit").table.num_rows == 1
