"""The IVOA ADQL test-query collection (lyonetia) as a conformance test.

The collection is GPL-3 and is read at run time from ``../shared/reference/lyonetia`` beside the
repository; it is never copied into the repository. Every query marked valid must parse, every one
marked invalid must raise ADQLError. Its tables are fictional (parser tests), so validity is
syntax; the queries that name only tables of diavo's model (ivoa.ObsCore) are also checked and
translated when all their columns exist here.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from diavo.server.adql import nodes as n
from diavo.server.adql.check import require_join_condition
from diavo.server.adql.errors import ADQLError
from diavo.server.adql.parser import parse

ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "lyonetia"

# Queries we cannot support yet: {(file name, query number in the file): reason}. Empty: 100%.
XFAIL: dict[tuple[str, int], str] = {}


def _udf_names(element) -> list[str]:
    names = []
    for form in element.findall("./functions/function/form"):
        m = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)", form.text or "")
        if m:
            names.append(m.group(1))
    return names


def _cases():
    if not ROOT.is_dir():
        return []
    cases = []
    for path in sorted(ROOT.rglob("*.xml")):
        root = ET.parse(path).getroot()
        file_udfs = _udf_names(root)
        for i, q in enumerate(root.iter("query")):
            adql = q.find("adql")
            if adql is None or adql.text is None:
                continue
            valid = adql.get("valid", "false") == "true"
            udfs = file_udfs + _udf_names(q)
            cases.append(pytest.param(path.name, i, adql.text, valid, udfs,
                                      id=f"{path.parent.name}/{path.stem}#{i}-{'valid' if valid else 'invalid'}"))
    return cases


CASES = _cases()
_results: dict[str, bool] = {}


def _accepts(text: str, udfs) -> bool:
    """Valid syntax, and the check-stage rules that need no data model (a join's condition)."""
    try:
        tree = parse(text, functions=udfs)
        for node in n.walk(tree):
            if isinstance(node, n.Join):
                require_join_condition(node)
        return True
    except ADQLError:
        return False


@pytest.mark.skipif(not CASES, reason="lyonetia collection not found beside the repository")
@pytest.mark.parametrize("fname,index,text,valid,udfs", CASES)
def test_lyonetia(fname, index, text, valid, udfs):
    if (fname, index) in XFAIL:
        pytest.xfail(XFAIL[(fname, index)])
    accepted = _accepts(text, udfs)
    _results[f"{fname}#{index}"] = accepted == valid
    if valid:
        parse(text, functions=udfs)  # raises with the message when it fails
    else:
        assert not accepted, "an invalid query was accepted"


@pytest.mark.skipif(not CASES, reason="lyonetia collection not found beside the repository")
def test_lyonetia_pass_rate(capsys):
    assert len(CASES) > 200, f"the lyonetia collection was not found (or is incomplete) at {ROOT}"
    ok = {"valid": 0, "invalid": 0}
    total = {"valid": 0, "invalid": 0}
    for p in CASES:
        fname, index, text, valid, udfs = p.values
        kind = "valid" if valid else "invalid"
        total[kind] += 1
        ok[kind] += _accepts(text, udfs) == valid
    rate = (ok["valid"] + ok["invalid"]) / (total["valid"] + total["invalid"])
    with capsys.disabled():
        print(f"\nlyonetia: {ok['valid']}/{total['valid']} valid accepted, "
              f"{ok['invalid']}/{total['invalid']} invalid rejected, pass rate {rate:.1%}")
    assert rate == 1.0


def _obscore_cases():
    out = []
    for p in CASES:
        fname, index, text, valid, udfs = p.values
        if valid and fname.startswith("X1_obscore") and re.search(r"ivoa\.obscore", text, re.I):
            out.append(pytest.param(text, id=f"{fname}#{index}"))
    return out


@pytest.mark.parametrize("text", _obscore_cases())
def test_obscore_queries_check_or_name_missing_columns(text):
    """ESO's ObsCore queries: either they check and translate against our ivoa.ObsCore, or the
    checker names an ESO-only table/column/function (never any other failure)."""
    from diavo.server.query.executor import translate

    try:
        t = translate(text)
    except ADQLError as exc:
        assert exc.code in ("unknown-table", "unknown-column", "unknown-schema", "unknown-function", "type"), str(exc)
        if exc.code == "type":  # DISTANCE(s_region, point): ESO's extension, not ADQL 2.1
            assert "DISTANCE" in exc.message, str(exc)
        return
    assert t.sql.startswith(("SELECT", "WITH"))
