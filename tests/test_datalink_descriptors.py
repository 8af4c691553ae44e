"""DataLink where clients look for it: service descriptors in SIA and TAP results, used by pyvo.

pyvo's ``SIA2Record.processed(circle=...)`` fills SODA's ID from the descriptor's ``ref`` to the
obs_publisher_did FIELD; ``iter_datalinks()`` posts the IDs in batches to the DataLink
descriptor's accessURL. Both run against a real server, with and without bearer tokens.
"""
from __future__ import annotations

import io

import pytest
import pyvo
import requests
from astropy.io import fits
from astropy.io.votable import parse
from pyvo.dal.adhoc import SodaQuery

RA, DEC = 53.125, -28.1
ADQL = "SELECT TOP 3 obs_publisher_did, access_url, access_format, s_ra, s_dec FROM ivoa.ObsCore"


@pytest.fixture(scope="module")
def open_server(small_server):
    return small_server


def session_for(server) -> requests.Session:
    s = requests.Session()
    tokens = server.extra_env.get("DIAVO_TOKENS")
    if tokens:
        s.headers["Authorization"] = f"Bearer {tokens.split(':', 1)[0]}"
    return s


@pytest.fixture(params=["open", "token"])
def served(request):
    server = request.getfixturevalue(f"{request.param}_server")
    return server, session_for(server)


def test_tap_result_with_publisher_did_carries_descriptors(served):
    server, session = served
    r = session.get(f"{server.url}/tap/sync", params={"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": ADQL},
                    timeout=60)
    vot = parse(io.BytesIO(r.content))
    field = next(f for f in vot.get_first_table().fields if f.name == "obs_publisher_did")
    metas = {res.name: res for res in vot.resources if res.type == "meta"}
    assert {"datalink", "soda-cutout"} <= set(metas)
    for name, standard in (("datalink", "ivo://ivoa.net/std/DataLink#links-1.1"),
                           ("soda-cutout", "ivo://ivoa.net/std/SODA#sync-1.0")):
        res = metas[name]
        assert res.utype == "adhoc:service"
        params = {p.name: p.value for p in res.params}
        assert params["standardID"] == standard
        ident = next(p for p in res.groups[0].entries if p.name == "ID")
        assert ident.ref == field.ID


def test_tap_result_without_publisher_did_has_none(open_server):
    r = requests.get(f"{open_server.url}/tap/sync", timeout=60, params={
        "REQUEST": "doQuery", "LANG": "ADQL", "QUERY": "SELECT TOP 2 obs_id FROM ivoa.ObsCore"})
    assert 'utype="adhoc:service"' not in r.text


def _is_cutout(data: bytes) -> None:
    with fits.open(io.BytesIO(data)) as hdus:
        assert {"IMAGE", "MASK", "VARIANCE"} <= {h.name for h in hdus}
        assert hdus["IMAGE"].data.shape[0] < 1000  # a cut-out, not the whole CCD


def sia_first(server, session):
    sia = pyvo.dal.SIA2Service(f"{server.url}/sia/query", session=session, check_baseurl=False)
    results = sia.search(pos=(RA, DEC, 0.05), maxrec=2)
    assert len(results) >= 1
    return results, results[0]


def test_sia_processed_cuts_out_with_pyvo(open_server):
    _, record = sia_first(open_server, session_for(open_server))
    _is_cutout(record.processed(circle=(record["s_ra"], record["s_dec"], 0.003)).read())


def test_sia_soda_descriptor_with_a_token(token_server):
    """pyvo's processed() builds its SodaQuery without the record's session (pyvo 1.x), so on a
    token-protected service it is refused; the same descriptor with the session cuts out."""
    session = session_for(token_server)
    results, record = sia_first(token_server, session)
    with pytest.raises(pyvo.dal.DALServiceError, match="401"):
        record.processed(circle=(record["s_ra"], record["s_dec"], 0.003))
    soda = results.get_adhocservice_by_ivoid("ivo://ivoa.net/std/SODA#sync-1.0")
    query = SodaQuery.from_resource(record, soda, session=session,
                                    circle=(record["s_ra"], record["s_dec"], 0.003))
    _is_cutout(query.execute_stream().read())


def test_iter_datalinks_batches_ids_and_keeps_the_session(served):
    server, session = served
    service = pyvo.dal.TAPService(f"{server.url}/tap", session=session)
    results = service.search(ADQL)
    dids = {str(d) for d in results["obs_publisher_did"]}
    seen = set()
    for links in results.iter_datalinks():
        this = [r for r in links if r.semantics == "#this"]
        assert len(this) == 1 and this[0].access_url.endswith(".fits")
        seen.add(this[0]["ID"])
    assert seen == dids


def test_obscore_example_selects_what_datalink_actions_need(open_server):
    page = requests.get(f"{open_server.url}/tap/examples", timeout=60).text
    start = page.index('id="images-covering-a-position"')
    example = page[start:start + 3000]
    for column in ("obs_publisher_did", "access_url", "access_format"):
        assert column in example
