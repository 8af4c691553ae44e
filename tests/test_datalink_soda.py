"""DataLink {links}, SODA cut-outs and image files, over real HTTP with pyvo, astropy and STILTS.

One uvicorn server (in a thread) serves the small demo archive; pyvo and requests talk to it as a
user would. One image is downloaded whole once and is the reference for Range requests, cut-out
pixels and previews.
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import struct
import subprocess
import threading
import time
import zlib
from urllib.parse import quote

import numpy as np
import pytest
import requests
import uvicorn
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.io.votable import parse as parse_votable
from astropy.wcs import WCS
from pyvo.dal.adhoc import DatalinkResults, SodaQuery

from diavo.server.app import create_app
from diavo.server.archive import store
from diavo.server.archive.images.access import ImageStore, object_cards
from diavo.server.archive.images.fitsio import ExposureWriter, exposure_bytes
from diavo.server.archive.images.regions import RegionError, parse_polygon, parse_pos, pixel_box
from diavo.server.archive.images.service import ByteCache
from diavo.server.archive.images.spec import ImageSpec
from diavo.server.archive.ingest import ingest
from diavo.server.settings import Settings
from diavo.shared.camera import CCD_HEIGHT, CCD_WIDTH
from diavo.shared.ids import image_id

SODA_IVOID = "ivo://ivoa.net/std/SODA#sync-1"
BAD_IDS = ["../../etc/passwd", "ivo://diavo.local/dp1?difference_image/1/../../x", "%2e%2e",
           "ivo://diavo.local/dp1?difference_image/1/2/", "/etc/passwd", "ivo://other.org/x?difference_image/1/2",
           "ivo://diavo.local/dp1?difference_image/1\x00/2", "ivo://diavo.local/dp1?difference_image/١/2"]


# ------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def archive(small_archive):
    """(root, [(visit, detector, ImageSpec), ...]) of the first images of the small archive."""
    root = small_archive[0]
    con = store.connect(root, read_only=True)
    cur = con.execute("SELECT * FROM diavo.image ORDER BY visit, detector LIMIT 3")
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r, strict=False)) for r in cur.fetchall()]
    con.close()
    return root, [(r["visit"], r["detector"], ImageSpec.from_record(r)) for r in rows]


@contextlib.contextmanager
def running(root, state_dir):
    """Base URL of a real uvicorn server (in a thread, on a free port) serving an archive."""
    app = create_app(Settings(root=root, state_dir=state_dir))
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{srv.servers[0].sockets[0].getsockname()[1]}"
    finally:
        srv.should_exit = True
        thread.join(15)
        # Close the image service's DuckDB handles now, not whenever the collector gets to them
        # while a later test queries the same catalog.
        service = getattr(app.state, "image_service", None)
        if service is not None:
            service.close()


@pytest.fixture(scope="module")
def server(archive, tmp_path_factory):
    with running(archive[0], tmp_path_factory.mktemp("uws")) as url:
        yield url


@pytest.fixture(scope="module")
def image(archive):
    visit, detector, spec = archive[1][0]
    return image_id(visit, detector), visit, detector, spec


@pytest.fixture(scope="module")
def links(server, image):
    return DatalinkResults.from_result_url(f"{server}/datalink/links?ID={quote(image[0], safe='')}")


@pytest.fixture(scope="module")
def full(links):
    """The #this download: (bytes, response headers)."""
    this = next(links.bysemantics("#this", include_narrower=False))
    r = requests.get(this.access_url, timeout=120)
    assert r.status_code == 200
    return r.content, r.headers


@pytest.fixture(scope="module")
def full_planes(full):
    with fits.open(io.BytesIO(full[0])) as hdul:
        return {name: np.array(hdul[name].data) for name in ("IMAGE", "MASK", "VARIANCE")}


def stilts_path() -> str:
    path = shutil.which("stilts")
    if path is None:
        if os.environ.get("DIAVO_REQUIRE_STILTS", "") not in ("", "0"):
            pytest.fail("stilts is not on PATH and DIAVO_REQUIRE_STILTS is set")
        pytest.skip("stilts is not on PATH (Debian: apt-get install stilts)")
    return path


def votlint(tmp_path, name: str, content: bytes) -> None:
    path = tmp_path / f"{name}.vot"
    path.write_bytes(content)
    proc = subprocess.run([stilts_path(), "votlint", f"votable={path}", "ucd=true", "unit=true"],
                          capture_output=True, text=True, timeout=120)
    problems = [line for line in (proc.stdout + proc.stderr).splitlines()
                if line.strip() and not line.startswith("INFO")]
    assert not problems, f"votlint on {name}:\n" + "\n".join(problems[:40])


def empty(value) -> bool:
    return value is None or value in ("", b"") or np.ma.is_masked(value)


def sky(spec: ImageSpec, x: float, y: float) -> tuple[float, float]:
    ra, dec = spec.pixel_to_sky(x, y)
    return float(ra), float(dec)


# -------------------------------------------------------------------------------- DataLink
def test_links_for_one_id(server, image, links):
    ident, visit, detector, _ = image
    assert [r.semantics for r in links] == ["#this", "#cutout", "#preview", "#thumbnail", "#detached-header",
                                            "#derivation"]
    assert all(r.id == ident and not r.error_message for r in links)
    info = {i.name: i.value for i in links.votable.resources[0].infos}
    assert info["standardID"] == "ivo://ivoa.net/std/DataLink#links-1.1"
    this = next(links.bysemantics("#this", include_narrower=False))
    assert this.access_url == f"{server}/images/{visit}/{detector}.fits"
    assert this.content_type == "application/fits"
    head = requests.head(this.access_url, timeout=30)
    assert head.status_code == 200 and int(head.headers["content-length"]) == this.content_length
    fields = {f.name: f for f in links.votable.get_first_table().fields}
    assert fields["content_length"].datatype == "long" and str(fields["content_length"].unit) == "byte"
    assert fields["ID"].ucd == "meta.id;meta.main" and fields["access_url"].ucd == "meta.ref.url"
    # The #cutout row points at a SODA descriptor whose ID comes from the links table.
    proc = links.get_first_proc()
    assert proc.semantics == "#cutout"
    soda = links.get_adhocservice_by_id(proc.service_def)
    assert soda is links.get_adhocservice_by_ivoid(SODA_IVOID)
    params = {p.name: p for p in soda.params}
    assert params["accessURL"].value == f"{server}/soda/sync"
    group = next(g for g in soda.groups if g.name == "inputParams")
    inputs = {p.name: p for p in group.entries}
    assert inputs["ID"].ref == "dlID"
    assert inputs["CIRCLE"].xtype == "circle" and str(inputs["CIRCLE"].unit) == "deg"
    assert inputs["POLYGON"].xtype == "polygon" and "POS" in inputs and "PIXEL" in inputs
    # The DiaSource link runs a TAP query for exactly this image's sources.
    dia = next(links.bysemantics("#derivation", include_narrower=False))
    r = requests.get(dia.access_url, timeout=60)
    table = parse_votable(io.BytesIO(r.content)).get_first_table().to_table()
    assert len(table) > 0 and set(table["visit"]) == {visit} and set(table["detector"]) == {detector}


def test_links_for_several_ids_and_bad_ones(server, archive, tmp_path):
    good = [image_id(v, d) for v, d, _ in archive[1][:2]]
    missing = image_id(1, 2)
    ids = [good[0], *BAD_IDS, missing, good[1], good[0]]
    r = requests.post(f"{server}/datalink/links", data={"ID": ids}, timeout=60)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/x-votable+xml;content=datalink"
    votlint(tmp_path, "several", r.content)
    dl = DatalinkResults(parse_votable(io.BytesIO(r.content)))
    rows = list(dl)
    # Every distinct ID answered once, its rows consecutive, in request order.
    order = [row.id for i, row in enumerate(rows) if i == 0 or rows[i - 1].id != row.id]
    echoed = [i.replace("\x00", "%00").replace("١", "%D9%A1") for i in dict.fromkeys(ids)]
    assert order == echoed
    by_id = {}
    for row in rows:
        by_id.setdefault(row.id, []).append(row)
    for ident in good:
        assert len(by_id[ident]) == 6 and not any(row.error_message for row in by_id[ident])
    for ident in echoed[1:-2]:  # the bad ones: one error row each, no link
        (row,) = by_id[ident]
        assert row.semantics == "#this" and empty(row.get("access_url")) and empty(row.get("service_def"))
        assert row.error_message.startswith(("UsageFault:", "NotFoundFault:")), row.error_message
    assert by_id[missing][0].error_message.startswith("NotFoundFault:")
    assert by_id["../../etc/passwd"][0].error_message.startswith("UsageFault:")
    # One SODA descriptor per image, each referenced by that image's #cutout row.
    services = list(dl.iter_adhocservices())
    assert sorted(s.ID for s in services) == sorted(row.service_def for row in dl.iter_procs())
    assert len(services) == 2


def test_links_without_id_maxrec_and_responseformat(server, image, archive, tmp_path):
    r = requests.get(f"{server}/datalink/links", timeout=30)
    assert r.status_code == 200
    votlint(tmp_path, "empty", r.content)
    vot = parse_votable(io.BytesIO(r.content))
    assert len(vot.get_first_table().array) == 0
    assert any(res.utype == "adhoc:this" for res in vot.resources)

    two = [image_id(v, d) for v, d, _ in archive[1][:2]]
    r = requests.get(f"{server}/datalink/links", params={"ID": two, "MAXREC": "7"}, timeout=30)
    votlint(tmp_path, "overflow", r.content)
    vot = parse_votable(io.BytesIO(r.content))
    status = [i.value for i in vot.resources[0].infos if i.name == "QUERY_STATUS"]
    assert status == ["OK", "OVERFLOW"] and len(vot.get_first_table().array) == 6  # never half an ID
    r = requests.get(f"{server}/datalink/links", params={"ID": two, "MAXREC": "12"}, timeout=30)
    assert b"OVERFLOW" not in r.content

    r = requests.get(f"{server}/datalink/links", params={"ID": image[0], "RESPONSEFORMAT": "votable"}, timeout=30)
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-votable+xml"
    r = requests.get(f"{server}/datalink/links", params={"ID": image[0], "RESPONSEFORMAT": "text/csv"}, timeout=30)
    assert r.status_code == 400 and b"UsageFault" in r.content
    votlint(tmp_path, "error", r.content)


def test_links_document_passes_votlint(links, tmp_path, server, image):
    r = requests.get(f"{server}/datalink/links", params={"ID": image[0]}, timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-votable+xml")
    assert b"#this" in r.content
    votlint(tmp_path, "one", r.content)


# ------------------------------------------------------------------------------ image files
def test_full_fits(full, links):
    data, headers = full
    this = next(links.bysemantics("#this", include_narrower=False))
    assert len(data) == int(headers["content-length"]) == this.content_length
    assert headers["content-type"] == "application/fits" and headers["accept-ranges"] == "bytes"
    assert headers["etag"].startswith('"') and "last-modified" in headers
    with fits.open(io.BytesIO(data)) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "IMAGE", "MASK", "VARIANCE"]
        for name in ("IMAGE", "MASK", "VARIANCE"):
            assert hdul[name].data.shape == (CCD_HEIGHT, CCD_WIDTH) == (4000, 4072)
        assert hdul["IMAGE"].header["LTV1"] == 0 and hdul[0].header["BUNIT"] == "nJy"


def test_range_requests(full, links):
    data, headers = full
    url = next(links.bysemantics("#this", include_narrower=False)).access_url
    size = len(data)
    r = requests.get(url, headers={"Range": "bytes=0-99"}, timeout=30)
    assert r.status_code == 206 and r.content == data[:100]
    assert r.headers["content-range"] == f"bytes 0-99/{size}" and r.headers["content-length"] == "100"
    r = requests.get(url, headers={"Range": "bytes=-500"}, timeout=30)
    assert r.status_code == 206 and r.content == data[-500:]
    r = requests.get(url, headers={"Range": f"bytes={size - 10}-"}, timeout=30)
    assert r.status_code == 206 and r.content == data[-10:]
    r = requests.get(url, headers={"Range": f"bytes=2880-{size + 100}"}, stream=True, timeout=30)
    assert r.status_code == 206 and r.headers["content-range"] == f"bytes 2880-{size - 1}/{size}"
    r.close()
    for bad in (f"bytes={size}-", f"bytes={size + 5}-{size + 9}", "bytes=-0"):
        r = requests.get(url, headers={"Range": bad}, timeout=30)
        assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{size}", bad
    # A changed file (If-Range mismatch) is sent whole; HEAD answers without a body.
    r = requests.head(url, headers={"Range": "bytes=0-9", "If-Range": '"stale"'}, timeout=30)
    assert r.status_code == 200 and int(r.headers["content-length"]) == size
    r = requests.head(url, headers={"Range": "bytes=0-9", "If-Range": headers["etag"]}, timeout=30)
    assert r.status_code == 206 and r.headers["content-length"] == "10"
    r = requests.get(url, headers={"If-None-Match": headers["etag"]}, timeout=30)
    assert r.status_code == 304 and not r.content


@pytest.mark.parametrize("path", ["/images/../../etc/passwd", "/images/1/2.fits", "/images/abc/1.fits",
                                  "/images/99999999999999999999/1.fits", "/images/%2e%2e/1.fits",
                                  "/images/1/2.png", "/images/1/..%2f..%2fetc.header"])
def test_image_paths_cannot_escape(server, path):
    r = requests.get(server + path, timeout=30)
    assert r.status_code == 404


def png_info(data: bytes) -> tuple[int, int, int, bytes]:
    """(width, height, colour type, raw filtered scanlines) of a PNG, checking every chunk CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert ihdr is not None and kind == b"IEND"
    return ihdr[0], ihdr[1], ihdr[3], zlib.decompress(idat)


def test_png_previews(server, links, full):
    preview = next(links.bysemantics("#preview", include_narrower=False))
    r = requests.get(preview.access_url, timeout=60)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    w, h, colour, raw = png_info(r.content)
    assert (w, h, colour) == (1018, 1000, 2) and len(raw) == h * (1 + 3 * w)  # 4x4 blocks, RGB
    thumb = next(links.bysemantics("#thumbnail", include_narrower=False))
    w, h, colour, raw = png_info(requests.get(thumb.access_url, timeout=60).content)
    assert (w, h, colour) == (255, 250, 0) and len(raw) == h * (1 + w)  # 16x16 blocks, grey
    base = preview.access_url.split("?")[0]
    r = requests.get(base, params={"stretch": "zscale", "mask": "BAD,SAT,EDGE", "size": "512"}, timeout=60)
    assert r.status_code == 200 and png_info(r.content)[:3] == (509, 500, 2)
    for bad in ({"stretch": "log"}, {"size": "5"}, {"mask": "NOPE"}, {"sources": "maybe"}):
        r = requests.get(base, params=bad, timeout=30)
        assert r.status_code == 400, bad


def test_detached_header(server, links):
    hdr = next(links.bysemantics("#detached-header", include_narrower=False))
    text = requests.get(hdr.access_url, timeout=30).text
    lines = text.splitlines()
    assert lines[0].startswith("SIMPLE  =") and sum(line.rstrip() == "END" for line in lines) == 4
    assert any(line.startswith("NAXIS1  =") and line.split("=")[1].split("/")[0].strip() == "4072" for line in lines)


# ------------------------------------------------------------------------------------ SODA
def test_soda_circle_with_pyvo(links, image, full_planes):
    _, _, _, spec = image
    ra, dec = sky(spec, 1000.3, 2000.7)
    proc = links.get_first_proc()
    query = SodaQuery.from_resource(proc, links.get_adhocservice_by_ivoid(SODA_IVOID),
                                    circle=(ra * u.deg, dec * u.deg, 20 * u.arcsec))
    data = query.execute_stream().read()
    query.raise_if_error()
    assert data == proc.processed(circle=(ra * u.deg, dec * u.deg, 20 * u.arcsec)).read()
    with fits.open(io.BytesIO(data)) as hdul:
        x0, y0 = -hdul["IMAGE"].header["LTV1"], -hdul["IMAGE"].header["LTV2"]
        cut = {name: np.array(hdul[name].data) for name in ("IMAGE", "MASK", "VARIANCE")}
        wcs = WCS(hdul["IMAGE"].header)
        assert WCS(hdul["MASK"].header, key="A").pixel_to_world_values(0, 0) == pytest.approx((x0, y0))
    h, w = cut["IMAGE"].shape
    assert 200 <= w <= 203 and 200 <= h <= 203  # a 40 arcsec circle at 0.2 arcsec/pixel
    # The cut-out is exactly the same slice of the whole image, plane by plane.
    for name, plane in cut.items():
        assert np.array_equal(plane, full_planes[name][y0:y0 + h, x0:x0 + w]), name
    # The requested centre keeps its pixel: parent (1000.3, 2000.7) is cut-out (x - x0, y - y0).
    px, py = wcs.world_to_pixel_values(ra, dec)
    assert px + x0 == pytest.approx(1000.3, abs=1e-3) and py + y0 == pytest.approx(2000.7, abs=1e-3)
    back = SkyCoord(*wcs.pixel_to_world_values(1000.3 - x0, 2000.7 - y0), unit="deg")
    assert back.separation(SkyCoord(ra, dec, unit="deg")).arcsec < 0.01
    # ... and the cut-out is centred on it (to the half pixel the box rounding allows).
    centre = SkyCoord(*wcs.pixel_to_world_values((w - 1) / 2, (h - 1) / 2), unit="deg")
    assert centre.separation(SkyCoord(ra, dec, unit="deg")).arcsec < 0.2


def soda(server, **params):
    return requests.get(f"{server}/soda/sync", params=params, timeout=60)


def cut_box(response) -> tuple[int, int, int, int]:
    assert response.status_code == 200, response.text[:300]
    with fits.open(io.BytesIO(response.content)) as hdul:
        hdr = hdul["IMAGE"].header
        return -hdr["LTV1"], -hdr["LTV2"], hdr["NAXIS1"], hdr["NAXIS2"]


def test_soda_shapes(server, image, full_planes):
    ident, _, _, spec = image
    r = soda(server, ID=ident, PIXEL="10 209 20 219")
    assert cut_box(r) == (10, 20, 200, 200)
    with fits.open(io.BytesIO(r.content)) as hdul:
        assert np.array_equal(hdul["VARIANCE"].data, full_planes["VARIANCE"][20:220, 10:210])
    assert cut_box(soda(server, ID=ident, PIXEL="-50 99 3950 4100")) == (0, 3950, 100, 50)  # clipped
    corners = [sky(spec, x, y) for x, y in ((500, 600), (700, 600), (700, 900), (500, 900))]
    polygon = " ".join(f"{a:.9f} {d:.9f}" for a, d in corners)
    x0, y0, w, h = cut_box(soda(server, ID=ident, POLYGON=polygon))
    assert (x0, y0) == (500, 600) and (w, h) == (201, 301)
    assert cut_box(soda(server, ID=ident, POS="POLYGON " + polygon)) == (x0, y0, w, h)
    ra, dec = sky(spec, 3000, 1500)
    assert cut_box(soda(server, ID=ident, POS=f"CIRCLE {ra} {dec} 0.002")) == \
        cut_box(soda(server, ID=ident, CIRCLE=f"{ra} {dec} 0.002"))
    ras, decs = zip(*corners, strict=False)
    x0, y0, w, h = cut_box(soda(server, ID=ident, POS=f"RANGE {min(ras)} {max(ras)} {min(decs)} {max(decs)}"))
    for x, y in ((500, 600), (700, 600), (700, 900), (500, 900)):  # the range covers the polygon
        assert x0 <= x < x0 + w and y0 <= y < y0 + h
    whole = cut_box(soda(server, ID=ident, POS="RANGE 0 360 -90 90"))
    assert whole == (0, 0, CCD_WIDTH, CCD_HEIGHT)


def test_soda_nothing_on_the_image_is_204(server, image):
    ident, _, _, spec = image
    ra, dec = sky(spec, 2000, 2000)
    for params in ({"CIRCLE": f"{(ra + 180) % 360} {-dec} 0.01"}, {"PIXEL": "5000 5100 0 10"},
                   {"POS": f"RANGE {(ra + 10) % 360} {(ra + 10) % 360 + 0.01} {dec} {dec + 0.01}"},
                   {"CIRCLE": f"{ra} {dec} 0.01", "BAND": "1e-3 2e-3"},
                   {"CIRCLE": f"{ra} {dec} 0.01", "TIME": "40000 40001"}):
        r = soda(server, ID=ident, **params)
        assert r.status_code == 204 and r.content == b"", params
    # Off a corner: the circle's bounding box overlaps the CCD, the circle does not.
    ra, dec = sky(spec, -40, -40)
    assert soda(server, ID=ident, CIRCLE=f"{ra} {dec} {50 * 0.2 / 3600}").status_code == 204
    assert soda(server, ID=ident, CIRCLE=f"{ra} {dec} {60 * 0.2 / 3600}").status_code == 200


@pytest.mark.parametrize("params,status,label", [
    ({}, 400, "UsageError"),
    ({"ID": "ivo://diavo.local/dp1?difference_image/1/2", "CIRCLE": "1 1 1"}, 404, "UsageError"),
    ({"ID": "../../etc/passwd", "CIRCLE": "1 1 1"}, 400, "UsageError"),
    ({"ID": "GOOD", "CIRCLE": ["1 1 1", "2 2 2"]}, 400, "MultiValuedParamNotSupported"),
    ({"ID": ["GOOD", "ivo://diavo.local/dp1?difference_image/1/2"]}, 400, "MultiValuedParamNotSupported"),
    ({"ID": "GOOD", "CIRCLE": "1 1 1", "POLYGON": "1 1 2 1 2 2"}, 400, "MultiValuedParamNotSupported"),
    ({"ID": "GOOD", "CIRCLE": "a b c"}, 400, "UsageError"),
    ({"ID": "GOOD", "CIRCLE": "10 95 1"}, 400, "UsageError"),
    ({"ID": "GOOD", "CIRCLE": "10 10 -1"}, 400, "UsageError"),
    ({"ID": "GOOD", "POLYGON": " ".join(["10 10 11 10 11 11"] * 400)}, 400, "UsageError"),
    ({"ID": "GOOD", "POLYGON": "0 0 90 0 180 0 270 0"}, 400, "UsageError"),
    ({"ID": "GOOD", "POLYGON": "10 0 11 0 12 0"}, 400, "UsageError"),  # one great circle
    ({"ID": "GOOD", "POS": "RANGE 20 10 0 1"}, 400, "UsageError"),
    ({"ID": "GOOD", "POS": "BOX 1 2 3 4"}, 400, "UsageError"),
    ({"ID": "GOOD", "PIXEL": "1 2 3"}, 400, "UsageError"),
    ({"ID": "GOOD", "BAND": "2 1"}, 400, "UsageError"),
    ({"ID": "GOOD", "RESPONSEFORMAT": "votable"}, 400, "UsageError"),
])
def test_soda_errors(server, image, params, status, label):
    def good(value):
        return image[0] if value == "GOOD" else value

    params = {k: [good(x) for x in v] if isinstance(v, list) else good(v) for k, v in params.items()}
    r = requests.post(f"{server}/soda/sync", data=params, timeout=30)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("text/plain") and r.text.startswith(label + ":"), r.text


def test_soda_vosi(server):
    r = requests.get(f"{server}/soda/capabilities", timeout=30)
    assert r.status_code == 200 and "ivo://ivoa.net/std/SODA#sync-1.0" in r.text
    assert f"<accessURL use=\"full\">{server}/soda/sync</accessURL>" in r.text
    assert requests.get(f"{server}/soda/availability", timeout=30).status_code == 200


def test_file_backed_image(full, full_planes, image, tmp_path):
    """An image ingested as a FITS file is served from its file: Range, cut-outs, previews."""
    ident, visit, detector, spec = image
    path = tmp_path / "diff.fits"
    path.write_bytes(full[0])
    root = tmp_path / "archive"
    ingest(root, images=[path])
    with running(root, tmp_path / "uws") as base:
        url = f"{base}/images/{visit}/{detector}.fits"
        r = requests.get(url, headers={"Range": "bytes=100-199"}, timeout=30)
        assert r.status_code == 206 and r.content == full[0][100:200]
        assert requests.head(url, timeout=30).headers["content-length"] == str(len(full[0]))
        links = DatalinkResults.from_result_url(f"{base}/datalink/links?ID={quote(ident, safe='')}")
        this = next(links.bysemantics("#this", include_narrower=False))
        assert this.access_url == url and this.content_length == len(full[0])
        r = requests.get(f"{base}/soda/sync", params={"ID": ident, "PIXEL": "100 299 50 149"}, timeout=30)
        with fits.open(io.BytesIO(r.content)) as hdul:
            assert np.array_equal(hdul["IMAGE"].data, full_planes["IMAGE"][50:150, 100:300])
            assert hdul["IMAGE"].header["LTV1"] == -100 and hdul["IMAGE"].header["LTV2"] == -50
        png = requests.get(f"{base}/images/{visit}/{detector}.png?size=128", timeout=60).content
        assert png_info(png)[:2] == (128, 125)  # 32x32 blocks


def test_cutout_writer_matches_astropy(image, archive):
    """The header-template writer SODA uses gives exactly the bytes of exposure_bytes."""
    _, visit, detector, spec = image
    disk = ImageStore(archive[0])
    try:
        for box in [(1000, 1000, 1200, 1200), (0, 3990, 4072, 4000), (4071, 0, 4072, 1)]:
            _, planes = disk.planes(visit, detector, box)
            extra = object_cards("SOMEFIELD")
            assert ExposureWriter(spec, extra).bytes(planes) == exposure_bytes(spec, planes, extra_cards=extra)
    finally:
        disk.close()


# ---------------------------------------------------------------------------- building blocks
def test_pixel_box_of_sky_shapes(image):
    spec = image[3]
    ra, dec = sky(spec, 1500, 1200)
    box = pixel_box(parse_pos(f"CIRCLE {ra} {dec} {37.3 * 0.2 / 3600}"), spec)
    assert box == (1463, 1163, 1538, 1238)  # pixels whose area the circle touches
    assert pixel_box(parse_pos(f"CIRCLE {ra} {dec} 120"), spec) == (0, 0, spec.width, spec.height)
    with pytest.raises(RegionError):
        parse_polygon("0 0 90 0 180 0 270 0")  # a great circle: no hemisphere holds it
    with pytest.raises(RegionError):
        parse_pos("CIRCLE 1 2 nan")


def test_byte_cache_single_flight_and_eviction():
    cache = ByteCache(max_bytes=100)
    calls, barrier = [], threading.Barrier(8)

    def make():
        calls.append(1)
        time.sleep(0.05)
        return b"x" * 60

    def worker(out):
        barrier.wait()
        out.append(cache.get("a", make))

    out: list = []
    threads = [threading.Thread(target=worker, args=(out,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(out) == 8 and all(v == b"x" * 60 for v in out)
    cache.get("b", lambda: b"y" * 60)  # 120 bytes > 100: "a" goes
    assert cache.peek("a") is None and cache.peek("b") == b"y" * 60 and cache.size == 60
    assert cache.get("big", lambda: b"z" * 500) == b"z" * 500 and cache.peek("big") is None
