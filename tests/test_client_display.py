"""client.display: pictures of real served exposures, mask overlays and source rings."""
from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
import requests
from astropy.io.votable import parse_single_table
from astropy.table import Table

from diavo.client.display import Display, display, mask_overlay, source_pixels
from diavo.client.exposure import Exposure
from diavo.client.geom import Point2D, SpherePoint, degrees
from diavo.shared.ids import image_id

pytest.importorskip("matplotlib")

VISIT, DETECTOR = 2024110800246, 2
RA, DEC = 53.125, -27.740
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _get(url: str, **params) -> bytes:
    r = requests.get(url, params=params, timeout=60)
    r.raise_for_status()
    return r.content


@pytest.fixture(scope="module")
def cut(small_server) -> Exposure:
    """A cut-out large enough to hold DiaSources of both signs."""
    return Exposure.from_fits(_get(f"{small_server.url}/soda/sync", ID=image_id(VISIT, DETECTOR),
                                   CIRCLE=f"{RA} {DEC} 0.03"))


@pytest.fixture(scope="module")
def sources(small_server, cut) -> Table:
    text = _get(f"{small_server.url}/tap/sync", LANG="ADQL",
                QUERY=f"SELECT diaSourceId, ra, dec, x, y FROM dp1.DiaSource WHERE visit = {VISIT} "
                      f"AND detector = {DETECTOR}")
    table = parse_single_table(io.BytesIO(text)).to_table()
    inside = cut.getBBox().contains(np.asarray(table["x"]), np.asarray(table["y"]))
    return table[inside]


def _rings(fig):
    from matplotlib.collections import PatchCollection

    found = [c for c in fig.axes[0].collections if isinstance(c, PatchCollection)]
    return sum(len(c.get_paths()) for c in found)


def test_display_writes_a_png_with_rings_and_parent_axes(cut, sources, tmp_path):
    assert len(sources) >= 2
    out = tmp_path / "cut.png"
    fig = display(cut, mask_transparency=50, sources=sources, out=out)
    data = out.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000
    from matplotlib.figure import Figure
    from PIL import Image as PILImage

    assert isinstance(fig, Figure)
    with PILImage.open(out) as im:
        assert im.format == "PNG" and min(im.size) > 300
    ax = fig.axes[0]
    box = cut.getBBox()
    assert ax.get_xlim() == (box.getMinX() - 0.5, box.getEndX() - 0.5)
    assert ax.get_ylim() == (box.getMinY() - 0.5, box.getEndY() - 0.5)
    assert _rings(fig) == len(sources)
    assert str(VISIT) in ax.get_title()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "DETECTED" in labels and "EDGE" not in labels  # only planes present in the picture


def test_sky_and_pixel_columns_give_the_same_positions(cut, sources):
    sx, sy = source_pixels(sources, cut.getWcs())  # ra/dec preferred with a WCS
    px, py = source_pixels(sources, cut.getWcs(), coords="pixel")
    assert np.allclose(sx, px, atol=1e-4) and np.allclose(sy, py, atol=1e-4)
    pandas = pytest.importorskip("pandas")
    qx, _ = source_pixels(pandas.DataFrame({"x": px, "y": py}))
    assert np.array_equal(qx, px)
    points = [SpherePoint(r, d, degrees) for r, d in zip(sources["ra"], sources["dec"], strict=False)]
    tx, _ = source_pixels(points, cut.getWcs())
    assert np.allclose(tx, px, atol=1e-4)
    assert source_pixels([Point2D(1, 2)])[1].tolist() == [2.0]
    with pytest.raises(ValueError, match="ra/dec"):
        source_pixels(Table({"a": [1.0]}), cut.getWcs())


def test_mask_overlay_colours_and_transparency(cut):
    planes = cut.mask.getMaskPlaneDict()
    alphas = {"DETECTED": 1.0, "EDGE": 0.5}
    rgba, shown = mask_overlay(cut.mask.array, planes, alphas)
    detected = cut.mask.plane_array("DETECTED")
    assert shown == ["DETECTED"]  # no EDGE pixels in this cut-out
    assert detected.any()
    assert (rgba[detected] == [0, 0, 255, 255]).all()  # blue, opaque
    assert (rgba[~detected, 3] == 0).all()
    # transparency 100 hides a plane; a mapping shows only its planes
    fig = display(cut, mask_transparency=100)
    assert len(fig.axes[0].images) == 1 and fig.axes[0].get_legend() is None
    fig = display(cut, mask_transparency={"DETECTED": 0})
    assert len(fig.axes[0].images) == 2
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["DETECTED"]
    fig = display(cut, mask_transparency=0, planes=["DETECTED_NEGATIVE"], colors={"DETECTED_NEGATIVE": "red"})
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["DETECTED_NEGATIVE"]
    with pytest.raises(ValueError, match="0 \\(opaque\\) to 100"):
        display(cut, mask_transparency=150)
    with pytest.raises(KeyError, match="NOPE"):
        display(cut, planes=["NOPE"])


def test_large_images_are_binned_and_planes_draw_alone(cut, tmp_path):
    fig = display(cut, max_size=100, stretch="zscale")
    pix = fig.axes[0].images[0].get_array()
    assert max(pix.shape) <= 100
    box = cut.getBBox()
    xlo, xhi = fig.axes[0].get_xlim()
    assert xlo == box.getMinX() - 0.5 and xhi >= box.getEndX() - 0.5
    for plane in (cut.getImage(), cut.getMask(), cut.getVariance(), cut.getPsf().computeImage(Point2D(2700, 1300))):
        out = tmp_path / "plane.png"
        display(plane, out=out, stretch="linear")
        assert out.read_bytes().startswith(PNG_SIGNATURE)
    with pytest.raises(ValueError, match="stretch"):
        display(cut, stretch="sqrt")
    with pytest.raises(TypeError):
        display(np.zeros((3, 3)))


def test_draws_into_given_axes(cut):
    from matplotlib.figure import Figure

    fig = Figure()
    ax1, ax2 = fig.subplots(1, 2)
    assert display(cut, ax=ax2, legend=False) is fig
    assert len(ax2.images) >= 1 and len(ax1.images) == 0


def test_display_frame_calls(cut, sources, tmp_path):
    d = Display(frame=1)
    d.mtv(cut)
    d.setMaskTransparency(100)
    d.setMaskTransparency(0, "DETECTED")
    assert d.getMaskTransparency("DETECTED") == 0 and d.getMaskTransparency("EDGE") == 100
    assert d.getMaskPlaneColor("DETECTED") == "blue"
    with d.Buffering():
        for row in sources:
            d.dot("o", row["x"], row["y"], size=20, ctype="orange")
    fig = d.figure
    assert _rings(fig) == len(sources)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["DETECTED"]
    d.savefig(tmp_path / "frame.png")
    assert (tmp_path / "frame.png").read_bytes().startswith(PNG_SIGNATURE)
    assert d._repr_png_().startswith(PNG_SIGNATURE)
    with pytest.raises(ValueError):
        _ = Display().figure


def test_missing_matplotlib_names_the_extra(cut, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install 'diavo\[display\]'"):
        display(cut)


def test_importing_display_does_not_import_matplotlib():
    code = "import sys, diavo.client.display; sys.exit(1 if 'matplotlib' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
