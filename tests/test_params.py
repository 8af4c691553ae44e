"""DALI parameter reading: case-insensitive names, exact values, GET/urlencoded/multipart alike."""
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from diavo.server.errors import DaliError, UsageFault
from diavo.server.params import Params, read_params


async def echo(request):
    p = await read_params(request, max_bytes=1000)
    return JSONResponse({"pairs": p.pairs, "files": {k: v.decode() for k, v in p.files.items()}})


async def fault(request, exc: DaliError):
    return Response(exc.message, status_code=exc.status)


@pytest.fixture(scope="module")
def client():
    app = Starlette(routes=[Route("/p", echo, methods=["GET", "POST"])], exception_handlers={DaliError: fault})
    return TestClient(app)


def test_names_fold_values_stay(client):
    r = client.get("/p?maxRec=5&Query=SELECT%20x&runid=")
    assert r.json()["pairs"] == [["MAXREC", "5"], ["QUERY", "SELECT x"], ["RUNID", ""]]


def test_urlencoded_and_query_string_combine(client):
    r = client.post("/p?lang=ADQL", data={"query": "SELECT 'a&b'", "upload": ["a,param:a", "b,http://x/y"]})
    assert r.json()["pairs"] == [["LANG", "ADQL"], ["QUERY", "SELECT 'a&b'"],
                                 ["UPLOAD", "a,param:a"], ["UPLOAD", "b,http://x/y"]]


def test_multipart_files_keep_part_names(client):
    r = client.post("/p", data={"LANG": "ADQL"}, files={"T1": ("t1.vot", b"<VOTABLE/>", "text/xml")})
    body = r.json()
    assert body["pairs"] == [["LANG", "ADQL"]] and body["files"] == {"T1": "<VOTABLE/>"}


def test_body_over_limit_is_413(client):
    r = client.post("/p", data={"QUERY": "x" * 5000})
    assert r.status_code == 413 and "limit" in r.text


def test_plain_text_body_is_refused(client):
    r = client.post("/p", content=b"QUERY=1", headers={"content-type": "text/plain"})
    assert r.status_code == 400 and "form" in r.text


def test_single_valued_parameters():
    p = Params.of([("maxrec", "1"), ("MAXREC", "2"), ("lang", "ADQL"), ("LANG", "ADQL")])
    with pytest.raises(UsageFault, match="MAXREC"):
        p.get("MaxRec")
    assert p.get("lang") == "ADQL" and "LANG" in p and "QUERY" not in p
    merged = Params.of([("A", "1"), ("B", "2")]).merged(Params.of([("b", "3")]))
    assert merged.pairs == [("A", "1"), ("B", "3")] and merged.without("a").pairs == [("B", "3")]
