"""The TAP service's metadata: VOSI availability, capabilities and tables, the examples page and the
human-readable roots, served by a real Starlette app over the real data model and demo archive."""
from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
import types
import xml.etree.ElementTree as ET

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.testclient import TestClient

from diavo.server.adql.functions import CATALOGUE, UDFS
from diavo.server.archive.model import load_model, tap_schema_rows
from diavo.server.engine.base import Limits
from diavo.server.errors import DaliError
from diavo.server.output.formats import FORMATS, resolve
from diavo.server.protocols import examples, landing, vosi, vosi_documents
from diavo.server.query.executor import open_service, translate
from diavo.server.settings import Settings
from diavo.server.web import page

NS = {
    "vosi": "http://www.ivoa.net/xml/VOSICapabilities/v1.0",
    "av": "http://www.ivoa.net/xml/VOSIAvailability/v1.0",
    "tab": "http://www.ivoa.net/xml/VOSITables/v1.0",
    "h": "http://www.w3.org/1999/xhtml",
}
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
UDF_FORM = re.compile(r"([A-Za-z][A-Za-z0-9_]*)\s*\((.*)\)\s*->\s*(.*)")  # TAPRegExt 2.3


async def _fault(request: Request, exc: DaliError) -> Response:
    return Response(exc.message, status_code=exc.status)


def client(root, **settings) -> TestClient:
    app = Starlette(routes=[*landing.routes(), *page.routes(), *vosi.routes(), *examples.routes()],
                    exception_handlers={DaliError: _fault})
    app.state.ctx = types.SimpleNamespace(settings=Settings(root=root, **settings), model=load_model(),
                                          started=dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc))
    return TestClient(app)


@pytest.fixture(scope="module")
def root(small_archive):
    return small_archive[0]


@pytest.fixture(scope="module")
def http(root):
    return client(root)


def xml(response) -> ET.Element:
    assert response.status_code == 200, response.text
    return ET.fromstring(response.content)


def tap_capability(doc: ET.Element) -> ET.Element:
    caps = [c for c in doc.findall("capability") if c.get("standardID") == "ivo://ivoa.net/std/TAP"]
    assert len(caps) == 1
    return caps[0]


def access_urls(doc: ET.Element) -> dict[str, str]:
    return {c.get("standardID"): c.find("interface/accessURL").text for c in doc.findall("capability")}


# --- availability and capabilities -----------------------------------------------------------

def test_availability_is_up(http):
    r = http.get("/tap/availability")
    assert r.headers["content-type"].startswith("text/xml")
    doc = xml(r)
    assert doc.tag == f"{{{NS['av']}}}availability"
    assert doc.find("av:available", NS).text == "true"
    assert doc.find("av:upSince", NS).text.startswith("2025-01-02T03:04:05")


def test_unavailable_without_a_catalogue(tmp_path):
    doc = xml(client(tmp_path).get("/tap/availability"))
    assert doc.find("av:available", NS).text == "false"
    assert "catalog" in doc.find("av:note", NS).text


def test_one_tap_capability_with_the_declared_limits(http, root):
    r = http.get("/tap/capabilities")
    assert r.headers["content-type"].startswith("text/xml")
    doc = xml(r)
    assert doc.tag == f"{{{NS['vosi']}}}capabilities"
    tap = tap_capability(doc)
    assert tap.get(XSI_TYPE) == "tr:TableAccess"
    (intf,) = tap.findall("interface")
    assert (intf.get(XSI_TYPE), intf.get("role"), intf.get("version")) == ("vs:ParamHTTP", "std", "1.1")
    assert intf.find("accessURL").get("use") == "base"
    assert intf.find("accessURL").text == "http://testserver/tap"
    assert doc.find(".//securityMethod") is None
    assert tap.find("dataModel").get("ivo-id") == "ivo://ivoa.net/std/ObsCore#core-1.1"
    (lang,) = tap.findall("language")
    assert lang.find("name").text == "ADQL"
    assert {v.text: v.get("ivo-id") for v in lang.findall("version")} == {
        "2.0": "ivo://ivoa.net/std/ADQL#v2.0", "2.1": "ivo://ivoa.net/std/ADQL#v2.1"}
    assert [u.get("ivo-id").rsplit("#", 1)[1] for u in tap.findall("uploadMethod")] == [
        "upload-inline", "upload-http", "upload-https"]
    s = Settings(root=root)
    assert [int(tap.find(f"retentionPeriod/{k}").text) for k in ("default", "hard")] == [
        s.retention_default_s, s.retention_hard_s]
    assert [int(tap.find(f"executionDuration/{k}").text) for k in ("default", "hard")] == [
        s.exec_default_s, s.exec_hard_s]
    limits = [tap.find(f"outputLimit/{k}") for k in ("default", "hard")]
    assert [(int(e.text), e.get("unit")) for e in limits] == [(s.maxrec_default, "row"),
                                                              (s.maxrec_hard, "row")]
    upload = tap.find("uploadLimit/hard")
    assert (int(upload.text), upload.get("unit")) == (s.upload_max_bytes, "byte")


def test_output_formats_are_the_servers(http):
    tap = tap_capability(xml(http.get("/tap/capabilities")))
    declared = tap.findall("outputFormat")
    assert [f.find("mime").text for f in declared] == [f.mime for f in FORMATS]
    for f, fmt in zip(declared, FORMATS, strict=False):
        for alias in f.findall("alias"):
            assert resolve(alias.text)[0].key == fmt.key
    token = r"[^()<>@,;:\"/\[\]?=\s]+"
    mime = re.compile(rf"(text|image|audio|video|application|x-{token})/{token}\s*(;.*)?")  # taplint
    for f in declared:
        assert mime.fullmatch(f.find("mime").text.strip())
        assert f.get("ivo-id") is None or f.get("ivo-id") in vosi_documents.OUTPUT_KEYS
    assert any(f.get("ivo-id", "").endswith("#output-votable-td") for f in declared)


def test_vosi_and_examples_capabilities(http):
    doc = xml(http.get("/tap/capabilities"))
    urls = access_urls(doc)
    base = "http://testserver/tap"
    assert urls["ivo://ivoa.net/std/VOSI#capabilities"] == base + "/capabilities"
    assert urls["ivo://ivoa.net/std/VOSI#availability"] == base + "/availability"
    assert urls["ivo://ivoa.net/std/VOSI#tables-1.1"] == base + "/tables"
    assert urls["ivo://ivoa.net/std/DALI#examples"] == base + "/examples"
    for cap in doc.findall("capability"):
        if cap.get("standardID") != "ivo://ivoa.net/std/TAP":
            assert cap.find("interface/accessURL").get("use") == "full"


def test_token_security_only_on_the_tap_interface(root):
    doc = xml(client(root, tokens={"secret": "alice"}).get("/tap/capabilities"))
    methods = doc.findall(".//securityMethod")
    assert [m.get("standardID") for m in methods] == ["ivo://ivoa.net/sso#token"]
    assert tap_capability(doc).find("interface/securityMethod") is not None


def test_urls_follow_the_public_base_url_and_the_proxy(root):
    doc = xml(client(root, base_url="https://data.example.org/diavo/").get("/tap/capabilities"))
    assert set(access_urls(doc).values()) >= {"https://data.example.org/diavo/tap",
                                              "https://data.example.org/diavo/tap/tables"}
    proxied = client(root).get("/tap/capabilities", headers={"X-Forwarded-Host": "Proxy.example.net",
                                                             "X-Forwarded-Proto": "https"})
    assert tap_capability(xml(proxied)).find("interface/accessURL").text == "https://Proxy.example.net/tap"


SAMPLES = {  # one query per declared form: everything declared must really translate
    "POINT": "SELECT POINT('ICRS', ra, dec) FROM dp1.DiaSource",
    "CIRCLE": "SELECT CIRCLE('ICRS', ra, dec, 1) FROM dp1.DiaSource",
    "BOX": "SELECT BOX('ICRS', ra, dec, 1, 2) FROM dp1.DiaSource",
    "POLYGON": "SELECT POLYGON('ICRS', 1, 2, 3, 4, 5, 6) FROM dp1.DiaSource",
    "REGION": "SELECT REGION('CIRCLE ICRS 1 2 3') FROM dp1.DiaSource",
    "CENTROID": "SELECT CENTROID(s_region) FROM ivoa.ObsCore",
    "AREA": "SELECT AREA(s_region) FROM ivoa.ObsCore",
    "COORD1": "SELECT COORD1(POINT('ICRS', ra, dec)) FROM dp1.DiaSource",
    "COORD2": "SELECT COORD2(POINT('ICRS', ra, dec)) FROM dp1.DiaSource",
    "COORDSYS": "SELECT COORDSYS(s_region) FROM ivoa.ObsCore",
    "DISTANCE": "SELECT DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 1, 2)) FROM dp1.DiaSource",
    "CONTAINS": "SELECT ra FROM dp1.DiaSource "
                "WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 1, 2, 3)) = 1",
    "INTERSECTS": "SELECT obs_id FROM ivoa.ObsCore WHERE INTERSECTS(s_region, CIRCLE('ICRS', 1, 2, 3)) = 1",
    "LOWER": "SELECT LOWER(band) FROM dp1.DiaSource",
    "UPPER": "SELECT UPPER(band) FROM dp1.DiaSource",
    "ILIKE": "SELECT band FROM dp1.DiaSource WHERE band ILIKE 'R'",
    "UNION": "SELECT band FROM dp1.DiaSource UNION SELECT band FROM dp1.Visit",
    "EXCEPT": "SELECT band FROM dp1.DiaSource EXCEPT SELECT band FROM dp1.Visit",
    "INTERSECT": "SELECT band FROM dp1.DiaSource INTERSECT SELECT band FROM dp1.Visit",
    "CAST": "SELECT CAST(ra AS INTEGER) FROM dp1.DiaSource",
    "IN_UNIT": "SELECT IN_UNIT(ra, 'arcsec') FROM dp1.DiaSource",
    "OFFSET": "SELECT ra FROM dp1.DiaSource ORDER BY ra OFFSET 5",
    "WITH": "WITH x AS (SELECT ra FROM dp1.DiaSource) SELECT ra FROM x",
    "COALESCE": "SELECT COALESCE(psfFlux, 0) FROM dp1.DiaSource",
    "ivo_healpix_index": "SELECT ivo_healpix_index(8, ra, dec) FROM dp1.DiaSource",
    "ivo_interval_overlaps": "SELECT obs_id FROM ivoa.ObsCore "
                             "WHERE ivo_interval_overlaps(t_min, t_max, 1, 2) = 1",
    "ivo_hasword": "SELECT obs_id FROM ivoa.ObsCore WHERE ivo_hasword(obs_title, 'difference') = 1",
}


def test_declared_language_features_are_real(http):
    lang = tap_capability(xml(http.get("/tap/capabilities"))).find("language")
    model = load_model()
    seen = set()
    for group in lang.findall("languageFeatures"):
        key = group.get("type")
        assert key.lower().startswith("ivo://ivoa.net/std/tapregext#features-")
        for feature in group.findall("feature"):
            form = feature.find("form").text
            if key.endswith("#features-udf"):
                match = UDF_FORM.fullmatch(form)
                assert match and match.group(1) in UDFS
                form = match.group(1)
            elif key.endswith("#features-adqlgeo"):
                assert form in vosi_documents.GEOMETRY_FORMS
            assert feature.find("description").text
            translate(SAMPLES[form], model)
            seen.add(form)
    assert seen >= vosi_documents.GEOMETRY_FORMS | set(UDFS) | {"WITH", "OFFSET", "CAST", "UNION", "ILIKE", "IN_UNIT"}
    # Left out for the validators' sake (see vosi_documents.UNDECLARED), but it does run:
    assert "COALESCE" not in seen
    translate(SAMPLES["COALESCE"], model)
    assert {f for f in seen if f in CATALOGUE} <= set(CATALOGUE)


# --- tables -----------------------------------------------------------------------------------

def _schema_tables(doc: ET.Element) -> dict[str, ET.Element]:
    return {t.find("name").text: t for s in doc.findall("schema") for t in s.findall("table")}


def test_tableset_agrees_with_tap_schema(http):
    doc = xml(http.get("/tap/tables"))
    assert doc.tag == f"{{{NS['tab']}}}tableset"
    rows = tap_schema_rows(load_model())
    schemas = [s.find("name").text for s in doc.findall("schema")]
    assert schemas == [r["schema_name"] for r in rows["schemas"]]
    tables = _schema_tables(doc)
    assert sorted(tables) == sorted(r["table_name"] for r in rows["tables"])
    assert "ivoa.ObsCore" in tables and "TAP_SCHEMA.columns" in tables
    for row in rows["tables"]:
        el = tables[row["table_name"]]
        assert el.get("type") == row["table_type"]
        assert el.findtext("description") == row["description"]
    published = []
    for name, el in tables.items():
        for col in el.findall("column"):
            dtype = col.find("dataType")
            assert dtype.get(XSI_TYPE) == "vs:VOTableType"
            published.append({
                "table_name": name, "column_name": col.findtext("name"), "datatype": dtype.text,
                "arraysize": dtype.get("arraysize"), "xtype": dtype.get("extendedType"),
                "description": col.findtext("description"), "unit": col.findtext("unit"),
                "ucd": col.findtext("ucd"), "utype": col.findtext("utype"),
                "indexed": int("indexed" in [f.text for f in col.findall("flag")]),
                "std": int(col.get("std") == "true"),
            })
    expected = [{k: r[k] for k in published[0]} for r in rows["columns"]]
    key = lambda c: (c["table_name"], c["column_name"])  # noqa: E731
    assert sorted(published, key=key) == sorted(expected, key=key)
    fks = {(name, fk.findtext("targetTable"), tuple((c.findtext("fromColumn"), c.findtext("targetColumn"))
                                                    for c in fk.findall("fkColumn")))
           for name, el in tables.items() for fk in el.findall("foreignKey")}
    by_key = {}
    for kc in rows["key_columns"]:
        by_key.setdefault(kc["key_id"], []).append((kc["from_column"], kc["target_column"]))
    assert fks == {(k["from_table"], k["target_table"], tuple(by_key[k["key_id"]])) for k in rows["keys"]}
    assert fks, "the data model declares foreign keys"


def test_reserved_and_special_text_survive(http):
    tables = _schema_tables(xml(http.get("/tap/tables")))
    names = [c.findtext("name") for c in tables["TAP_SCHEMA.columns"].findall("column")]
    assert '"size"' in names and "column_name" in names  # quoted exactly as in TAP_SCHEMA
    assert b"&amp;amp;" not in http.get("/tap/tables").content


def test_detail_min_has_no_columns(http):
    doc = xml(http.get("/tap/tables", params={"DETAIL": "min"}))
    tables = _schema_tables(doc)
    assert sorted(tables) == sorted(_schema_tables(xml(http.get("/tap/tables"))))
    assert doc.find(".//column") is None and doc.find(".//foreignKey") is None


def test_one_table_by_name_any_case(http):
    doc = xml(http.get("/tap/tables/IVOA.OBSCORE"))
    assert doc.tag == f"{{{NS['tab']}}}table"
    assert doc.findtext("name") == "ivoa.ObsCore"
    assert len(doc.findall("column")) == len(load_model().table("ivoa.ObsCore").columns)
    assert http.get("/tap/tables/ivoa.nosuchtable").status_code == 404


@pytest.mark.skipif(shutil.which("stilts") is None, reason="needs STILTS for XSD validation")
def test_documents_validate_against_the_ivoa_schemas(root, tmp_path):
    http = client(root, tokens={"secret": "alice"})
    docs = {
        "availability": http.get("/tap/availability").content,
        "capabilities": http.get("/tap/capabilities").content,
        "tables": http.get("/tap/tables").content,
        "tables-min": http.get("/tap/tables?detail=min").content,
        "table": http.get("/tap/tables/dp1.DiaSource").content,
    }
    runs = {}
    for name, body in docs.items():  # one JVM each, started together
        path = tmp_path / f"{name}.xml"
        path.write_bytes(body)
        runs[name] = subprocess.Popen(["stilts", "xsdvalidate", "uselocals=true", f"doc={path}"],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for name, run in runs.items():
        out, _ = run.communicate(timeout=120)
        assert run.returncode == 0, f"{name}: {out}"


# --- examples and human pages -----------------------------------------------------------------

def parsed_examples(http) -> list[dict]:
    r = http.get("/tap/examples")
    assert r.headers["content-type"].startswith("text/html")
    doc = xml(r)
    (container,) = [el for el in doc.iter() if el.get("vocab") is not None]
    assert container.get("vocab") == "http://www.ivoa.net/rdf/examples#"
    found = []
    for el in container.iter():
        if el.get("typeof") != "example":
            continue
        assert el.get("resource") == "#" + el.get("id")
        names = [e for e in el.iter() if e.get("property") == "name"]
        queries = [e for e in el.iter() if e.get("property") == "query"]
        assert len(names) == 1 and len(queries) == 1 and len(queries[0]) == 0  # plain text only
        found.append({"id": el.get("id"), "name": names[0].text, "query": queries[0].text,
                      "tables": [e.text for e in el.iter() if e.get("property") == "table"]})
    return found


def test_examples_are_marked_up_for_machines(http):
    found = parsed_examples(http)
    assert len(found) == len(examples.EXAMPLES) >= 5
    assert len({e["id"] for e in found}) == len(found)
    model = load_model()
    for ex in found:
        assert ex["name"].strip() and ex["tables"]
        for table in ex["tables"]:
            model.table(table)


def test_every_example_runs_on_the_demo_archive(http, root):
    service = open_service(root)
    try:
        for ex in parsed_examples(http):
            result = service.run(ex["query"], Limits(maxrec=10))
            assert result.table.num_rows > 0, ex["id"]
    finally:
        service.close()


def test_landing_pages_link_what_is_served(root):
    http = client(root, base_url="https://data.example.org")
    home = xml(http.get("/"))
    links = {a.get("href") for a in home.iter(f"{{{NS['h']}}}a")}
    assert {"https://data.example.org/tap", "https://data.example.org/tap/capabilities"} <= links
    assert not any("/sia" in link for link in links)  # SIA is not mounted in this app
    assert "dp1.DiaSource" in http.get("/").text
    for path in ("/tap", "/tap/"):
        page = xml(http.get(path))
        links = {a.get("href") for a in page.iter(f"{{{NS['h']}}}a")}
        assert {f"https://data.example.org/tap/{p}" for p in ("capabilities", "tables", "examples",
                                                               "availability")} <= links
