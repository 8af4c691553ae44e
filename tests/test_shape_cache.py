"""The parsed-tree cache by query shape never changes an answer: for queries of the corpus with
their numbers replaced by random ones (other lengths, exponents, out-of-range values), the
cached translation equals a fresh parse's SQL, parameters and columns, and an error is the same
error, message and position."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diavo.server.adql.errors import ADQLError
from diavo.server.adql.shape import lift
from diavo.server.archive.model import load_model
from diavo.server.engine.duckdb_engine import DuckDBEngine
from diavo.server.protocols.examples import EXAMPLES
from diavo.server.query.executor import QueryService
from tests.test_storage_corpus import CORPUS, GEOMETRY_CORPUS

TEMPLATES = [q for q in [*CORPUS.values(), *GEOMETRY_CORPUS.values(), *(e.query for e in EXAMPLES)]
             if "TAP_UPLOAD" not in q and lift(q)[1]]


@pytest.fixture(scope="module")
def service(small_archive):
    s = QueryService(load_model(), DuckDBEngine(small_archive[0], load_model()))
    yield s
    s.close()


def outcome(fn, adql):
    try:
        q = fn(adql)
    except ADQLError as exc:
        return ("error", str(exc), exc.line, exc.column, exc.code)
    return (q.sql, q.params, q.columns)


def substitute(template: str, numbers: list[str]) -> str:
    key, _ = lift(template)
    pieces = key.split("\0")
    out = [pieces[0]]
    for number, piece in zip(numbers, pieces[1:], strict=True):
        out.append(number + piece[1:])  # piece starts with the kind letter
    return "".join(out)


def numbers_for(template: str):
    kinds = [piece[0] for piece in lift(template)[0].split("\0")[1:]]
    integer = st.one_of(st.integers(0, 3), st.integers(0, 10**12)).map(str)
    real = st.one_of(
        st.floats(0, 400, allow_nan=False).map(lambda x: f"{x:.6f}"),
        st.floats(1e-6, 1e3, allow_nan=False).map(lambda x: f"{x:.3e}"),
        st.integers(0, 99).map(lambda i: f"{i}.5"),
        st.integers(0, 9).map(lambda i: f".{i}5"),
    )
    return st.tuples(*(real if k == "r" else integer for k in kinds)).map(list)


@st.composite
def variants(draw):
    template = draw(st.sampled_from(TEMPLATES))
    return template, substitute(template, draw(numbers_for(template)))


def test_the_shape_of_a_query_keeps_its_kinds_and_leaves_counts():
    key, numbers = lift("SELECT TOP 5 ra FROM t WHERE x > 1.5 AND y = 2 AND \"c1\" = 'a 3' -- 4\nOFFSET 7")
    assert numbers == ("1.5", "2") and "TOP 5" in key and "OFFSET 7" in key and "'a 3'" in key
    assert lift("SELECT ra FROM t WHERE x > 1")[0] != lift("SELECT ra FROM t WHERE x > 1.0")[0]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(variants())
def test_cached_and_fresh_translations_are_equal(service, case):
    template, adql = case
    service.translate(template)  # keeps the template's shape
    assert lift(adql)[0] in service._shapes or lift(template)[0] not in service._shapes
    assert outcome(service.translate, adql) == outcome(service._compile, adql)


def test_a_reused_shape_skips_the_parser_and_errors_point_at_the_new_text(service):
    base = "SELECT ra FROM dp1.DiaSource WHERE CONTAINS(POINT(ra, dec), CIRCLE(10.0, 20.0, 1.0)) = 1"
    service.translate(base)
    assert lift(base)[0] in service._shapes
    far = "SELECT ra FROM dp1.DiaSource WHERE CONTAINS(POINT(ra, dec), CIRCLE(10.00000, 95.0, 1.0)) = 1"
    assert outcome(service.translate, far) == outcome(service._compile, far)
