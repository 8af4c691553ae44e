"""The DuckDB engine adapter on a real catalog file: limits, overflow, timeout, abort, lock-down."""
from __future__ import annotations

import threading
import time

import pytest

from diavo.server.archive import store
from diavo.server.engine.base import Cancel, EngineError, EngineQuery, Limits, QueryAborted, QueryTimeout
from diavo.server.engine.duckdb_engine import DuckDBEngine

SLOW = "SELECT count(*) FROM range(20000000000) a"


@pytest.fixture(scope="module")
def engine(small_archive):
    e = DuckDBEngine(small_archive[0])
    yield e
    e.close()


def test_rows_and_overflow(engine, small_archive):
    con = store.connect(small_archive[0])
    n = con.execute("SELECT count(*) FROM dp1.DiaSource WHERE visit = 2024110800246 AND detector = 2").fetchone()[0]
    q = EngineQuery('SELECT "diaSourceId", "x", "y" FROM "dp1"."DiaSource" WHERE "visit" = ? AND "detector" = ?',
                    (2024110800246, 2))
    exact = engine.execute(q, Limits(maxrec=n))
    assert exact.table.num_rows == n and not exact.overflow
    cut = engine.execute(q, Limits(maxrec=n - 1))
    assert cut.table.num_rows == n - 1 and cut.overflow
    free = engine.execute(q, Limits(maxrec=None))
    assert free.table.num_rows == n and not free.overflow
    assert free.table.column_names == ["diaSourceId", "x", "y"]


def test_maxrec_zero_gives_the_columns_only(engine):
    r = engine.execute(EngineQuery('SELECT * FROM "dp1"."Visit"'), Limits(maxrec=0))
    assert r.table.num_rows == 0 and r.overflow
    assert "visit" in r.table.column_names


def test_timeout_interrupts(engine):
    t0 = time.perf_counter()
    with pytest.raises(QueryTimeout, match="execution duration"):
        engine.execute(EngineQuery(SLOW), Limits(timeout_s=0.3))
    assert time.perf_counter() - t0 < 30  # it stops (SLOW alone runs for minutes); not a speed test


def test_abort_from_another_thread(engine):
    cancel = Cancel()
    threading.Timer(0.3, cancel).start()
    with pytest.raises(QueryAborted):
        engine.execute(EngineQuery(SLOW), Limits(timeout_s=60), cancel=cancel)


@pytest.mark.parametrize("sql", [
    "CREATE TABLE x AS SELECT 1",
    'DELETE FROM "dp1"."Visit"',
    "SET enable_external_access = true",
    "SELECT * FROM read_csv('/etc/hostname')",
    "COPY \"dp1\".\"Visit\" TO 'stolen.csv'",
])
def test_engine_connection_is_locked_down(engine, sql):
    with pytest.raises(EngineError):
        engine.execute(EngineQuery(sql), Limits())


def test_python_udfs_survive_many_cursors(engine):
    """Each query runs on a fresh cursor; the geometry UDFs must keep working on every one
    (a UDF registered on a short-lived cursor dangles once that cursor is gone)."""
    from diavo.server.query.executor import translate

    t = translate("SELECT lsst_visit FROM ivoa.ObsCore WHERE INTERSECTS(s_region, CIRCLE(53.125, -27.74, 0.001)) = 1")
    q = EngineQuery(t.sql, tuple(t.params), tuple(t.columns))
    counts = {engine.execute(q, Limits()).table.num_rows for _ in range(5)}
    assert len(counts) == 1 and counts.pop() > 5


def test_a_late_cancel_does_not_touch_the_next_query(engine):
    """Cursors are reused per thread, so a Cancel fired after its query ended must not
    interrupt whatever that cursor runs next."""
    cancel = Cancel()
    engine.execute(EngineQuery('SELECT count(*) FROM "dp1"."Visit"'), Limits(), cancel=cancel)
    cancel()
    r = engine.execute(EngineQuery("SELECT count(*) FROM range(30000000)"), Limits(timeout_s=30))
    assert r.table.column(0)[0].as_py() == 30000000


def test_engine_serves_several_threads(engine):
    from concurrent.futures import ThreadPoolExecutor

    q = EngineQuery('SELECT count(*) FROM "dp1"."DiaSource" WHERE "band" = ?', ("r",))
    with ThreadPoolExecutor(4) as pool:
        counts = list(pool.map(lambda _: engine.execute(q, Limits()).table.column(0)[0].as_py(), range(12)))
    assert len(set(counts)) == 1 and counts[0] > 0


def test_cursor_is_reusable_after_a_stream_cut_at_maxrec(engine):
    """A stream stopped at MAXREC leaves DuckDB mid-result; the next query on the pool must run."""
    q = EngineQuery('SELECT "diaSourceId" FROM "dp1"."DiaSource"')
    for _ in range(3):
        stream = engine.stream(q, Limits(maxrec=10, batch_rows=4))
        assert sum(b.num_rows for b in stream) == 10 and stream.overflow
    stream = engine.stream(q, Limits(maxrec=5))
    next(iter(stream))
    stream.close()  # abandoned midway by its consumer
    assert engine.execute(EngineQuery("SELECT 42 AS x"), Limits()).table.column(0).to_pylist() == [42]


def test_engines_are_built_from_settings_by_name(small_archive):
    from diavo.server.archive.model import load_model
    from diavo.server.engine import ENGINES, open_engine

    model = load_model()
    assert "duckdb" in ENGINES
    e = open_engine("DuckDB", small_archive[0], model)
    try:
        assert e.name == "duckdb" and "dp1.DiaSource" in e.layout.spatial
        assert e.layout.spatial["dp1.DiaSource"].ra == "ra"
        assert ("ivoa.ObsCore", "s_region") in e.layout.regions
    finally:
        e.close()
    with pytest.raises(ValueError, match="unknown engine 'nosuch'"):
        open_engine("nosuch", small_archive[0], model)
