"""Draw an exposure with its mask planes and sources, with matplotlib instead of Firefly.

``display(exposure, mask_transparency=50, sources=table, out="diff.png")`` returns a matplotlib
Figure. Transparency follows the pipelines' display: 0 is an opaque plane, 100 an invisible one;
give one number for every plane or a mapping {plane: transparency} (planes left out are not
drawn). Axes are parent-CCD pixels, so DiaSource ``x``/``y`` land where they belong, also on a
cut-out. matplotlib is optional for the thin client and imported only here, when drawing; figures
are built without pyplot, so nothing needs a screen.

``Display`` offers the frame-style calls of the tutorial (``mtv``, ``setMaskTransparency``,
``dot``, ``Buffering``, ``getMaskPlaneColor``) on top of ``display``.
"""
from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Mapping, Sequence

import numpy as np

from .geom import Point2D, SpherePoint
from .planes import Image, Mask, mask_plane_color

Transparency = float | Mapping[str, float]
#: Columns searched for sky and pixel positions of sources, in this order.
SKY_COLUMNS = (("ra", "dec"), ("coord_ra", "coord_dec"), ("s_ra", "s_dec"))
PIXEL_COLUMNS = (("x", "y"), ("centroid_x", "centroid_y"))
INSTALL_HINT = "pip install 'diavo[display]'"


def _matplotlib():
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure
    except ImportError as exc:  # the thin client does not depend on it
        raise ImportError(f"drawing images needs matplotlib: {INSTALL_HINT}") from exc
    return Figure


def _binned(array: np.ndarray, factor: int, how: str) -> np.ndarray:
    """Shrink by ``factor`` in both axes: mean of finite values, or bitwise OR for masks."""
    if factor == 1:
        return array
    h, w = array.shape
    ph, pw = -(-h // factor) * factor, -(-w // factor) * factor
    if how == "or":
        padded = np.zeros((ph, pw), dtype=array.dtype)
        padded[:h, :w] = array
        blocks = padded.reshape(ph // factor, factor, pw // factor, factor)
        return np.bitwise_or.reduce(np.bitwise_or.reduce(blocks, axis=3), axis=1)
    padded = np.full((ph, pw), np.nan, dtype=np.float32)
    padded[:h, :w] = array
    blocks = padded.reshape(ph // factor, factor, pw // factor, factor)
    with np.errstate(invalid="ignore"), _quiet_nanmean():
        return np.nanmean(blocks, axis=(1, 3))


@contextlib.contextmanager
def _quiet_nanmean():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN padding blocks
        yield


def _norm(values: np.ndarray, stretch):
    """An astropy ImageNormalize for a stretch name (or the caller's own normalisation)."""
    from astropy.visualization import ImageNormalize, LinearStretch, MinMaxInterval, ZScaleInterval

    if not isinstance(stretch, str):
        return stretch
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        finite = np.zeros(1, dtype=np.float32)
    if stretch == "asinh":
        # asinh about the background (median; noise sigma from the MAD): linear within about
        # +-2 sigma so the noise and faint sources of both signs show, compressed above so
        # bright sources do not saturate, up to the 99.95th percentile.
        from matplotlib.colors import FuncNorm

        sample = finite[:: max(1, finite.size // 1_000_000)]
        med = float(np.median(sample))
        sigma = 1.4826 * float(np.median(np.abs(sample - med))) or float(np.std(sample)) or 1.0
        top = max(20.0, (float(np.percentile(sample, 99.95)) - med) / sigma)
        soft = 2.0 * sigma
        return FuncNorm((lambda v: np.arcsinh((v - med) / soft), lambda u: med + soft * np.sinh(u)),
                        vmin=med - 4.0 * sigma, vmax=med + top * sigma, clip=True)
    choices = {
        "zscale": (ZScaleInterval(), LinearStretch()),
        "linear": (MinMaxInterval(), LinearStretch()),
    }
    if stretch not in choices:
        raise ValueError(f"stretch must be one of asinh, {', '.join(choices)}, not {stretch!r}")
    interval, st = choices[stretch]
    vmin, vmax = interval.get_limits(finite)
    if not vmax > vmin:
        vmin, vmax = vmin - 1.0, vmax + 1.0
    return ImageNormalize(vmin=vmin, vmax=vmax, stretch=st, clip=True)


def _alphas(mask: Mask, transparency: Transparency, planes: Sequence[str] | None) -> dict[str, float]:
    """Opacity (0-1) of each plane to draw, in bit order (later planes are drawn on top)."""
    names = sorted(mask.getMaskPlaneDict().items(), key=lambda kv: kv[1])
    wanted = None if planes is None else set(planes)
    if wanted is not None:
        unknown = wanted - {n for n, _ in names}
        if unknown:
            raise KeyError(f"no mask plane(s) {', '.join(sorted(unknown))}")
    out = {}
    for name, _ in names:
        if wanted is not None and name not in wanted:
            continue
        t = transparency.get(name, 100.0) if isinstance(transparency, Mapping) else transparency
        t = float(t)
        if not 0.0 <= t <= 100.0:
            raise ValueError(f"mask transparency is 0 (opaque) to 100 (invisible), not {t}")
        if t < 100.0:
            out[name] = 1.0 - t / 100.0
    return out


def mask_overlay(mask: np.ndarray, bits: Mapping[str, int], alphas: Mapping[str, float],
                 colors: Mapping[str, str] | None = None) -> tuple[np.ndarray, list[str]]:
    """RGBA (uint8) picture of the set planes, and the names of the planes that appear."""
    from matplotlib.colors import to_rgb

    rgba = np.zeros(mask.shape + (4,), dtype=np.uint8)
    shown = []
    for name, alpha in alphas.items():
        hit = (mask & (1 << bits[name])) != 0
        if not hit.any():
            continue
        color = (colors or {}).get(name) or mask_plane_color(name)
        rgba[hit, :3] = np.round(np.array(to_rgb(color)) * 255).astype(np.uint8)
        rgba[hit, 3] = int(round(alpha * 255))
        shown.append(name)
    return rgba, shown


def _column(table, name) -> np.ndarray:
    """A column as floats, masked entries as NaN (astropy Table, pandas, dict of arrays)."""
    values = getattr(table[name], "value", table[name])
    return np.ma.filled(np.ma.asarray(values, dtype=float), np.nan)


def _has(table, name) -> bool:
    for attr in ("colnames", "columns"):
        names = getattr(table, attr, None)
        if names is not None:
            return name in list(names)
    return isinstance(table, Mapping) and name in table


def source_pixels(sources, wcs=None, coords: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Parent pixel positions of sources: a table (astropy, pandas, dict of columns) with sky
    (ra/dec in degrees) or pixel (x/y) columns, or a list of SpherePoints or Point2Ds.

    ``coords='auto'`` prefers sky columns when there is a WCS (right on any image), pixel
    columns otherwise; 'sky' or 'pixel' forces one.
    """
    if isinstance(sources, (list, tuple)) and (not sources or isinstance(sources[0], (SpherePoint, Point2D))):
        if sources and isinstance(sources[0], SpherePoint):
            if wcs is None:
                raise ValueError("sky positions need an exposure with a WCS")
            pts = wcs.skyToPixel(list(sources))
        else:
            pts = list(sources)
        return (np.array([p.getX() for p in pts], dtype=float), np.array([p.getY() for p in pts], dtype=float))
    if coords not in ("auto", "sky", "pixel"):
        raise ValueError("coords is 'auto', 'sky' or 'pixel'")
    if coords in ("auto", "sky") and wcs is not None:
        for ra, dec in SKY_COLUMNS:
            if _has(sources, ra) and _has(sources, dec):
                return wcs.skyToPixelArray(_column(sources, ra), _column(sources, dec), degrees=True)
    if coords in ("auto", "pixel"):
        for x, y in PIXEL_COLUMNS:
            if _has(sources, x) and _has(sources, y):
                return _column(sources, x), _column(sources, y)
    raise ValueError("sources need ra/dec (with a WCS) or x/y columns, or be SpherePoints / Point2Ds")


def display(data, mask_transparency: Transparency = 50.0, sources=None, ax=None,
            out: str | os.PathLike | None = None, stretch="asinh", planes: Sequence[str] | None = None,
            *, colors: Mapping[str, str] | None = None, source_color: str = "orange",
            source_radius: float = 20.0, coords: str = "auto", title: str | None = None,
            legend: bool = True, max_size: int = 2048, figsize=(8.0, 8.0), dpi: int = 100):
    """Draw an Exposure (or a single Image or Mask plane) and return the matplotlib Figure.

    mask_transparency: 0-100 for all planes, or {plane: 0-100} (other planes hidden).
    sources: positions to ring (see ``source_pixels``); source_radius in pixels.
    ax: draw into these axes; otherwise a new Figure. out: also save it (PNG by extension).
    stretch: 'asinh' (default), 'zscale', 'linear' or an astropy/matplotlib normalisation.
    planes: only these mask planes. colors: {plane: colour} overrides the default colours.
    max_size: larger images are block-averaged (masks OR-ed) down to about this many pixels.
    """
    Figure = _matplotlib()
    image, mask, wcs = _planes_of(data)
    ref = image if image is not None else mask
    x0, y0 = ref.getX0(), ref.getY0()
    h, w = ref.array.shape
    factor = max(1, math.ceil(max(h, w) / max(int(max_size), 1)))

    if ax is None:
        fig = Figure(figsize=figsize, dpi=dpi)
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    bh, bw = -(-h // factor), -(-w // factor)
    extent = (x0 - 0.5, x0 - 0.5 + bw * factor, y0 - 0.5, y0 - 0.5 + bh * factor)

    if image is not None:
        pix = _binned(image.array, factor, "mean")
        ax.imshow(pix, origin="lower", cmap="gray", norm=_norm(pix, stretch), extent=extent,
                  interpolation="nearest")
    else:
        ax.imshow(np.zeros((bh, bw)), origin="lower", cmap="gray", vmin=0, vmax=1, extent=extent)

    shown: list[str] = []
    if mask is not None:
        transparency = mask_transparency if image is not None or isinstance(mask_transparency, Mapping) else 0.0
        alphas = _alphas(mask, transparency, planes)
        if alphas:
            rgba, shown = mask_overlay(_binned(mask.array, factor, "or"), mask.getMaskPlaneDict(), alphas, colors)
            if shown:
                ax.imshow(rgba, origin="lower", extent=extent, interpolation="nearest")

    if sources is not None:
        sx, sy = source_pixels(sources, wcs, coords)
        _rings(ax, sx, sy, source_radius, source_color)

    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_xlabel("x (CCD pixels)")
    ax.set_ylabel("y (CCD pixels)")
    ax.set_title(title if title is not None else _title(data))
    if legend and shown:
        _legend(ax, shown, colors)
    if out is not None:
        fig.savefig(out, dpi=dpi, bbox_inches="tight")
    return fig


def _planes_of(data):
    """(image, mask, wcs) of an Exposure, or of a lone plane."""
    if isinstance(data, Mask):
        return None, data, None
    if isinstance(data, Image):
        return data, None, None
    if hasattr(data, "getImage") and hasattr(data, "getMask"):
        return data.getImage(), data.getMask(), data.getWcs() if hasattr(data, "getWcs") else None
    raise TypeError(f"cannot display a {type(data).__name__}: give an Exposure, Image or Mask")


def _title(data) -> str:
    vi = getattr(data, "visitInfo", None)
    det = getattr(data, "detector", None)
    flt = getattr(data, "filter", None)
    if vi is None or det is None:
        return ""
    band = f", band {flt.bandLabel}" if flt is not None and flt.bandLabel else ""
    return f"visit {vi.id}, detector {det.id}{band}"


def _rings(ax, x, y, radius: float, color: str) -> None:
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Circle

    ok = np.isfinite(x) & np.isfinite(y)
    circles = [Circle((float(a), float(b)), radius) for a, b in zip(x[ok], y[ok], strict=False)]
    if circles:
        ax.add_collection(PatchCollection(circles, facecolor="none", edgecolor=color, linewidth=1.0))


def _legend(ax, names: Sequence[str], colors) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(color=(colors or {}).get(n) or mask_plane_color(n), label=n) for n in names]
    ax.legend(handles=handles, loc="upper right", fontsize="small", framealpha=0.6)


class Display:
    """A display frame with the tutorial's calls; it draws when asked for its figure.

    ``mtv`` shows an exposure or a plane, ``setMaskTransparency(t[, name])`` sets one plane or
    all, ``dot('o', x, y, size, ctype)`` rings a pixel position, ``Buffering()`` is a no-op
    context (drawing is deferred anyway), ``figure``/``savefig`` render. In Jupyter the frame
    shows itself as a PNG.
    """

    def __init__(self, frame: int = 1, figsize=(8.0, 8.0), dpi: int = 100, stretch="asinh") -> None:
        self.frame = frame
        self._figsize, self._dpi, self._stretch = figsize, dpi, stretch
        self._data = None
        self._title: str | None = None
        self._default = 50.0
        self._per_plane: dict[str, float] = {}
        self._colors: dict[str, str] = {}
        self._dots: list[tuple[float, float, float, str]] = []

    def mtv(self, data, title: str | None = None) -> None:
        self._data, self._title, self._dots = data, title, []

    def setMaskTransparency(self, transparency: float, name: str | None = None) -> None:
        if name is None:
            self._default, self._per_plane = float(transparency), {}
        else:
            self._per_plane[name] = float(transparency)

    def getMaskTransparency(self, name: str | None = None) -> float:
        return self._per_plane.get(name, self._default) if name else self._default

    def setMaskPlaneColor(self, name: str, color: str) -> None:
        self._colors[name] = color

    def getMaskPlaneColor(self, name: str) -> str:
        return self._colors.get(name) or mask_plane_color(name)

    def dot(self, symbol: str, x: float, y: float, size: float = 4.0, ctype: str = "orange") -> None:
        if symbol != "o":
            raise ValueError("only circles ('o') are drawn")
        self._dots.append((float(x), float(y), float(size), ctype))

    def erase(self) -> None:
        self._dots = []

    def Buffering(self):
        return contextlib.nullcontext(self)

    def _transparency(self) -> dict[str, float]:
        mask = _planes_of(self._data)[1]
        names = mask.getMaskPlaneDict() if mask is not None else {}
        return {n: self._per_plane.get(n, self._default) for n in names}

    @property
    def figure(self):
        if self._data is None:
            raise ValueError("nothing to show: call mtv() first")
        fig = display(self._data, self._transparency(), ax=None, stretch=self._stretch,
                      colors=self._colors, title=self._title, figsize=self._figsize, dpi=self._dpi)
        ax = fig.axes[0]
        for x, y, size, color in self._dots:
            _rings(ax, np.array([x]), np.array([y]), size, color)
        return fig

    def savefig(self, out: str | os.PathLike) -> None:
        self.figure.savefig(out, dpi=self._dpi, bbox_inches="tight")

    def _repr_png_(self) -> bytes | None:
        if self._data is None:
            return None
        import io

        buf = io.BytesIO()
        self.savefig(buf)
        return buf.getvalue()
