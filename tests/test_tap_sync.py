"""/tap/sync in process: the whole app (real DuckDB archive, real writers) over ASGI."""
from __future__ import annotations

import io

import pytest
from astropy.io.votable import parse
from starlette.testclient import TestClient

from diavo.server.app import create_app
from diavo.server.settings import Settings

TUTORIAL = "SELECT ra, dec, diaSourceId FROM dp1.DiaSource WHERE visit = 2024110800246 AND detector = 2"


@pytest.fixture(scope="module")
def client(small_archive, tmp_path_factory):
    settings = Settings(root=small_archive[0], state_dir=tmp_path_factory.mktemp("uws"), maxrec_default=1000,
                        maxrec_hard=5000)
    with TestClient(create_app(settings)) as c:
        yield c


def votable(resp):
    vot = parse(io.BytesIO(resp.content), verify="warn")
    status = [i for i in vot.resources[0].infos if i.name == "QUERY_STATUS"]
    return vot, status


def test_tutorial_query_get_and_post_agree(client):
    g = client.get("/tap/sync", params={"LANG": "ADQL", "QUERY": TUTORIAL})
    p = client.post("/tap/sync", data={"lang": "ADQL", "query": TUTORIAL, "request": "doQuery"})
    assert g.status_code == p.status_code == 200
    assert g.headers["content-type"].startswith("application/x-votable+xml")
    assert g.headers["server"].startswith("diavo/")
    tg, tp = votable(g)[0].get_first_table().to_table(), votable(p)[0].get_first_table().to_table()
    assert len(tg) > 0 and list(tg["diaSourceId"]) == list(tp["diaSourceId"])
    fields = {f.name: f for f in votable(g)[0].get_first_table().fields}
    assert fields["ra"].unit == "deg" and fields["ra"].ucd.startswith("pos.eq.ra")


def test_maxrec_overflow_and_exact_fit(client):
    q = "SELECT TOP 7 diaSourceId FROM dp1.DiaSource ORDER BY diaSourceId"
    vot, status = votable(client.get("/tap/sync", params={"LANG": "ADQL", "QUERY": q, "MAXREC": "3"}))
    assert len(vot.get_first_table().array) == 3 and [s.value for s in status] == ["OK", "OVERFLOW"]
    vot, status = votable(client.get("/tap/sync", params={"LANG": "ADQL", "QUERY": q, "MAXREC": "7"}))
    assert len(vot.get_first_table().array) == 7 and [s.value for s in status] == ["OK"]
    vot, status = votable(client.get("/tap/sync", params={"LANG": "ADQL", "QUERY": q, "MAXREC": "0"}))
    assert len(vot.get_first_table().array) == 0 and "OVERFLOW" in [s.value for s in status]
    assert [f.name for f in vot.get_first_table().fields] == ["diaSourceId"]


def test_hard_limit_caps_maxrec(client):
    q = "SELECT TOP 6000 diaSourceId FROM dp1.DiaSource"
    vot, status = votable(client.get("/tap/sync", params={"LANG": "ADQL", "QUERY": q, "MAXREC": "999999"}))
    assert len(vot.get_first_table().array) == 5000 and status[-1].value == "OVERFLOW"


@pytest.mark.parametrize("params,needle", [
    ({"LANG": "ADQL", "QUERY": "SELEKT * FROM dp1.DiaSource"}, "invalid ADQL"),
    ({"LANG": "OOBLECK", "QUERY": "SELECT 1 FROM dp1.Visit"}, "unknown query language"),
    ({"LANG": "ADQL"}, "missing parameter QUERY"),
    ({"QUERY": "SELECT TOP 1 * FROM dp1.Visit"}, "missing parameter LANG"),
    ({"LANG": "ADQL", "QUERY": "SELECT TOP 1 * FROM dp1.Visit", "MAXREC": "-1"}, "MAXREC"),
    ({"LANG": "ADQL", "QUERY": "SELECT TOP 1 * FROM dp1.Visit", "RESPONSEFORMAT": "xls"}, "xls"),
    ({"LANG": "ADQL", "QUERY": "SELECT TOP 1 * FROM dp1.Nope"}, "Nope"),
    ({"LANG": "ADQL", "QUERY": "SELECT TOP 1 * FROM TAP_UPLOAD.t1", "UPLOAD": "t1,param:t1"}, "t1"),
])
def test_errors_are_votables_with_400(client, params, needle):
    r = client.get("/tap/sync", params=params)
    assert r.status_code == 400, r.text
    vot, status = votable(r)
    assert [s.value for s in status] == ["ERROR"] and needle in status[0].content
    assert not vot.resources[0].tables


def test_unknown_parameters_are_ignored_and_versions_accepted(client):
    for lang in ("ADQL", "ADQL-2.0", "ADQL-2.1"):
        r = client.get("/tap/sync", params={"LANG": lang, "QUERY": "SELECT TOP 2 visit FROM dp1.Visit",
                                            "DUMMY": "ignore-me"})
        assert r.status_code == 200 and len(votable(r)[0].get_first_table().array) == 2


def test_tap_schema_is_queryable(client):
    q = "SELECT table_name, table_index FROM TAP_SCHEMA.tables ORDER BY table_index"
    t = votable(client.get("/tap/sync", params={"LANG": "ADQL", "QUERY": q}))[0].get_first_table().to_table()
    names = {str(n) for n in t["table_name"]}
    assert {"ivoa.ObsCore", "dp1.DiaSource", "TAP_SCHEMA.columns"} <= names
    q = 'SELECT COUNT(*) AS n FROM TAP_SCHEMA.columns WHERE table_name = \'dp1.DiaSource\''
    t = votable(client.get("/tap/sync", params={"LANG": "ADQL", "QUERY": q}))[0].get_first_table().to_table()
    assert int(t["n"][0]) == 87


def test_access_url_follows_the_public_base_url(client):
    q = "SELECT TOP 1 access_url FROM ivoa.ObsCore"
    r = client.get("/tap/sync", params={"LANG": "ADQL", "QUERY": q},
                   headers={"x-forwarded-host": "data.example.org", "x-forwarded-proto": "https"})
    url = str(votable(r)[0].get_first_table().array["access_url"][0])
    assert url.startswith("https://data.example.org/datalink/"), url


@pytest.mark.parametrize(("query", "needle"), [
    ("SELECT my_own_udf(ra) FROM dp1.DiaSource", "line 1, column 8: unknown function"),
    ("SELECT POINT(1, 'two') FROM dp1.DiaSource", "line 1, column 17: a coordinate of POINT cannot be a string"),
    ("SELECT v.visit FROM dp1.Visit AS v JOIN dp1.DiaSource AS s", "a JOIN needs ON &lt;condition&gt; or USING"),
    ("SELECT v.visit FROM dp1.Visit AS v LEFT JOIN (SELECT visit FROM dp1.Visit) AS w", "a JOIN needs ON"),
])
def test_service_refuses_what_the_syntax_allows(client, query, needle):
    r = client.get("/tap/sync", params={"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": query})
    assert r.status_code == 400 and needle in r.text
