"""The postgresql engine on a private PostgreSQL cluster with pgSphere (``pg_cluster``), over the
small archive loaded by ``diavo load-pg``: the storage corpus gives DuckDB's answers, the plan's
HEALPix ranges and pgSphere's GiST index are used, MAXREC is a LIMIT, time limits and aborts
cancel the statement on the server, queries cannot write, and the reader logs in with the
password from PGPASSWORD only.
"""
from __future__ import annotations

import math
import threading
import time

import pytest

from diavo.server.archive.model import load_model
from diavo.server.engine.base import Cancel, EngineError, Limits, QueryAborted, QueryTimeout
from diavo.server.engine.duckdb_engine import DuckDBEngine
from diavo.server.query.executor import QueryService
from tests.test_spark import HEAVY, ordered, same_rows
from tests.test_storage_corpus import CORPUS, GEOMETRY_CORPUS, uploads

#: pgSphere computes AREA with its own formula and prints polygon vertices to 15 digits, from
#: which CENTROID of a polygon is computed: on DP1-sized footprints they agree with DuckDB's to
#: 1e-7 and 1e-11 relative (micro-arcseconds).
LOOSE = {"geometry-functions": 1e-7}


@pytest.fixture(scope="module")
def services(small_archive, pg_small):
    from diavo.server.engine import open_engine

    model = load_model()
    pg = QueryService(model, open_engine(pg_small, small_archive[0], model))
    duck = QueryService(model, DuckDBEngine(small_archive[0], model))
    yield {"pg": pg, "duckdb": duck}
    pg.close()
    duck.close()


def run(service, adql, **limits):
    up = uploads() if "TAP_UPLOAD" in adql else None
    return service.run(adql, Limits(**{"maxrec": None, "timeout_s": 120, **limits}), uploads=up)


def close_rows(a: list, b: list, rel: float) -> bool:
    if len(a) != len(b):
        return False
    for ra, rb in zip(a, b, strict=True):
        for x, y in zip(ra, rb, strict=True):
            xs, ys = (x, y) if isinstance(x, list) else ([x], [y])
            for p, q in zip(xs, ys, strict=True):
                if isinstance(p, float) and isinstance(q, float):
                    if not math.isclose(p, q, rel_tol=rel):
                        return False
                elif p != q:
                    return False
    return True


@pytest.mark.parametrize("name", list(CORPUS) + list(GEOMETRY_CORPUS))
def test_the_corpus_gives_duckdbs_answers(services, name):
    adql = CORPUS.get(name) or GEOMETRY_CORPUS[name]
    got, want = run(services["pg"], adql), run(services["duckdb"], adql)
    tables = {"mine": uploads()["mine"].table} if "TAP_UPLOAD" in adql else None
    assert services["pg"].translate(adql, tables).columns == services["duckdb"].translate(adql, tables).columns
    assert got.table.column_names == want.table.column_names
    keep = "ORDER BY" in adql
    a, b = ordered(got.table, keep), ordered(want.table, keep)
    if name in LOOSE:
        assert close_rows(a, b, LOOSE[name]), name
    else:
        assert same_rows(a, b), name
    assert want.table.num_rows > 0 or name == "empty-cone"


def explain(services, adql) -> str:
    engine = services["pg"].engine
    query = services["pg"].translate(adql)
    with engine._pool.connection() as conn:
        params = {f"p{i}": v for i, v in enumerate(query.params)}
        rows = conn.execute("EXPLAIN " + query.sql_for(None, engine.dialect), params).fetchall()
    return "\n".join(r[0] for r in rows)


def test_a_cone_uses_the_healpix_btree(services):
    plan = explain(services, CORPUS["cone"])
    assert "dp1_diasource_healpix" in plan, plan


def test_a_crossmatch_uses_the_spoint_gist_index(services):
    plan = explain(services, "SELECT o.diaObjectId, s.diaSourceId FROM dp1.DiaObject AS o JOIN dp1.DiaSource AS s "
                             "ON 1 = CONTAINS(POINT(s.ra, s.dec), CIRCLE(o.ra, o.dec, 0.001)) WHERE o.nDiaSources > 30")
    assert "dp1_diasource_spoint" in plan, plan


def test_maxrec_is_a_limit_and_overflow_is_told(services):
    result = run(services["pg"], CORPUS["cone"], maxrec=5)
    assert result.table.num_rows == 5 and result.overflow
    exact = run(services["pg"], "SELECT TOP 3 diaSourceId FROM dp1.DiaSource ORDER BY diaSourceId", maxrec=3)
    assert exact.table.num_rows == 3 and not exact.overflow
    assert "LIMIT 6" in services["pg"].translate(CORPUS["cone"]).sql_for(5, services["pg"].engine.dialect)


#: Statements of the engine's other connections running now (the cursor's DECLARE or FETCH).
RUNNING = ("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND application_name = 'diavo' "
           "AND pid <> pg_backend_pid()")


def active_queries(services) -> list[str]:
    """Statements other connections of the reader run now (waiting up to a minute for a
    cancelled one to end)."""
    engine = services["pg"].engine
    deadline = time.monotonic() + 60
    while True:
        with engine._pool.connection() as conn:
            rows = conn.execute(RUNNING.replace("count(*)", "query")).fetchall()
        if not rows or time.monotonic() > deadline:
            return [r[0] for r in rows]
        time.sleep(0.2)


def test_a_time_limit_cancels_the_statement(services):
    t0 = time.monotonic()
    with pytest.raises(QueryTimeout):
        run(services["pg"], HEAVY, timeout_s=2)
    assert time.monotonic() - t0 < 60
    assert active_queries(services) == []
    assert run(services["pg"], "SELECT COUNT(*) AS n FROM dp1.Visit").table.num_rows == 1


def test_an_abort_cancels_the_statement(services):
    cancel = Cancel()
    outcome: list = []

    def work() -> None:
        try:
            services["pg"].run(HEAVY, Limits(maxrec=None, timeout_s=600), cancel)
            outcome.append("finished")
        except QueryAborted:
            outcome.append("aborted")

    thread = threading.Thread(target=work)
    thread.start()
    deadline = time.monotonic() + 60
    engine = services["pg"].engine
    while time.monotonic() < deadline:
        with engine._pool.connection() as conn:
            if conn.execute(RUNNING).fetchone()[0]:
                break
        time.sleep(0.1)
    else:
        pytest.fail("the heavy query never started")
    cancel()
    thread.join(timeout=60)
    assert outcome == ["aborted"]
    assert active_queries(services) == []


def test_queries_run_read_only(services, pg_cluster):
    """Behind the translator (which writes no DML), the transaction refuses writes: here a
    SELECT that advances a sequence the reader may use, which outside the engine's transaction
    it can."""
    from dataclasses import replace

    with pg_cluster.admin("small") as conn:
        conn.execute("CREATE SEQUENCE IF NOT EXISTS public.probe; GRANT USAGE ON SEQUENCE public.probe TO diavo_reader")
    engine = services["pg"].engine
    query = services["pg"].translate("SELECT visit FROM dp1.Visit")
    writing = replace(query, sql="SELECT nextval('public.probe') AS visit", head="")
    with pytest.raises(EngineError, match="read-only transaction"):
        engine.execute(writing, Limits(maxrec=None, timeout_s=30))
    with engine._pool.connection() as conn:
        assert conn.execute("SELECT nextval('public.probe')").fetchone()[0] >= 1
    assert run(services["pg"], "SELECT COUNT(*) AS n FROM dp1.Visit").table.column(0)[0].as_py() == 40


def test_the_reader_role_cannot_write_even_outside_the_transaction(services):
    engine = services["pg"].engine
    import psycopg

    with engine._pool.connection() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute('DELETE FROM "dp1"."Visit"')


def test_results_stream_in_batches(services):
    adql = "SELECT diaSourceId, psfFlux FROM dp1.DiaSource ORDER BY psfFlux DESC, diaSourceId"
    service = services["pg"]
    stream = service.stream(service.translate(adql), Limits(maxrec=None, timeout_s=300, batch_rows=5000))
    sizes, rows = [], []
    for batch in stream:
        sizes.append(batch.num_rows)
        rows.extend(tuple(r.values()) for r in batch.to_pylist())
    want = run(services["duckdb"], adql).table
    assert len(sizes) > 3 and max(sizes) <= 5000, sizes
    assert rows == [tuple(r.values()) for r in want.to_pylist()]


def test_a_password_in_the_url_is_refused(small_archive, pg_small):
    from diavo.server.archive.pg_store import PgStoreError
    from diavo.server.engine import open_engine

    with pytest.raises(PgStoreError, match="PGPASSWORD"):
        open_engine(pg_small.replace("diavo_reader@", "diavo_reader:secret@"), small_archive[0], load_model())


def test_the_password_comes_from_the_environment(small_archive, pg_small, monkeypatch):
    import psycopg

    from diavo.server.engine import open_engine

    monkeypatch.setenv("PGPASSWORD", "wrong")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        open_engine(pg_small, small_archive[0], load_model())


def test_describe_reports_what_a_database_lacks(pg_cluster, small_archive):
    """``load-pg --existing`` on a database with a table lacking model columns."""
    import psycopg

    from diavo.server.archive import pg_store
    from diavo.server.engine import open_engine

    pg_cluster.create_database("partial")
    with psycopg.connect(pg_cluster.admin_url("partial"), autocommit=True) as conn:
        conn.execute('CREATE SCHEMA dp1; CREATE TABLE dp1."Visit" (visit bigint)')
        report = pg_store.describe(conn, load_model())
    assert report.missing["dp1.DiaSource"] == ["*"]
    assert "airmass" in report.missing["dp1.Visit"] and "visit" not in report.missing["dp1.Visit"]
    with pytest.raises(EngineError, match="dp1.Visit: .*airmass"):
        open_engine(pg_cluster.admin_url("partial"), small_archive[0], load_model())


def test_load_pg_on_the_command_line(pg_cluster, small_archive):
    """``diavo load-pg`` copies and indexes (JSON report), ``--existing`` checks what is there;
    a URL with a password is refused before anything connects."""
    import json
    import subprocess
    import sys

    pg_cluster.create_database("cli")
    url = pg_cluster.admin_url("cli")
    cmd = [sys.executable, "-m", "diavo.server.cli", "load-pg", str(small_archive[0])]
    done = subprocess.run([*cmd, url, "--quiet"], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["tables"]["dp1.DiaSource"] > 1000 and "dp1_diasource_spoint" in report["indexes"]
    done = subprocess.run([*cmd, url, "--existing"], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0 and json.loads(done.stdout)["missing"] == {}, done.stderr
    bad = pg_cluster.reader_url("cli").replace("@", ":pw@")
    done = subprocess.run([*cmd, bad], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode != 0 and "PGPASSWORD" in done.stderr


def test_without_storage_columns_cones_are_answered_by_pgsphere(pg_cluster, small_archive, services):
    """A database loaded some other way, without the HEALPix and unit-vector columns: the plan
    has no ranges to emit, the cone is pgSphere's operator on the GiST index, same rows."""
    import psycopg

    from diavo.server.archive import pg_store
    from diavo.server.engine import open_engine

    pg_cluster.create_database("bare")
    model = load_model()
    with psycopg.connect(pg_cluster.admin_url("bare")) as conn:
        pg_store.load(small_archive[0], conn, model, progress=False)
        conn.autocommit = True
        for table in ("DiaSource", "DiaObject"):
            conn.execute(f'ALTER TABLE dp1."{table}" DROP COLUMN _healpix, DROP COLUMN _x, DROP COLUMN _y, DROP COLUMN _z')
    bare = QueryService(model, open_engine(pg_cluster.admin_url("bare"), small_archive[0], model))
    try:
        assert "_healpix" not in bare.translate(CORPUS["cone"]).sql
        got, want = run(bare, CORPUS["cone"]), run(services["duckdb"], CORPUS["cone"])
        assert sorted(got.table.to_pylist(), key=repr) == sorted(want.table.to_pylist(), key=repr)
    finally:
        bare.close()
