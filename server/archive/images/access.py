"""Image access: one interface over images drawn on demand and images kept as FITS files.

The archive's ``diavo.image`` table says, per (visit, detector), whether the image is synthetic
(drawn from its ImageSpec and the DiaSources in the catalog) or a file under the archive (read
with memory mapping, so a cut-out touches only its rows). Callers never learn which.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from diavo.server.archive import store
from diavo.server.archive.images.fitsio import exposure_bytes
from diavo.server.archive.images.spec import ImageSpec
from diavo.server.archive.images.synth import Planes, SourceList, render
from diavo.server.archive.obscore import great_circle_deg
from diavo.shared.healpix import cone_cells

_SPEC_FIELDS = [f for f in ImageSpec.__dataclass_fields__ if f not in ("psf", "extra")]


class ImageNotFound(KeyError):
    """No image with this (visit, detector) in the archive."""


def object_cards(field: str | None) -> list[tuple[str, object, str]]:
    """The primary-header cards the archive adds to the spec's own: the observed field."""
    return [("OBJECT", field, "observed field")] if field else []


class ImageStore:
    def __init__(self, root: Path, con=None):
        self.root = Path(root)
        self._con = con or store.connect(self.root, read_only=True)

    def _row(self, visit: int, detector: int) -> dict:
        cur = self._con.execute("SELECT * FROM diavo.image WHERE visit = ? AND detector = ?",
                                [int(visit), int(detector)])
        names = [d[0] for d in cur.description]
        row = cur.fetchone()
        if row is None:
            raise ImageNotFound(f"no difference image for visit {visit}, detector {detector}")
        return dict(zip(names, row, strict=False))

    def records(self) -> list[dict]:
        """Every row of ``diavo.image``: a served archive is read-only, so callers may keep them."""
        cur = self._con.execute("SELECT * FROM diavo.image ORDER BY visit, detector")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=False)) for row in cur.fetchall()]

    def spec(self, visit: int, detector: int) -> ImageSpec:
        return ImageSpec.from_record(self._row(visit, detector))

    def sources(self, visit: int, detector: int, spec: ImageSpec | None = None) -> SourceList:
        """The image's DiaSources. A HEALPix interval around the CCD lets DuckDB read only the
        few row groups of the HEALPix-ordered table that can hold them."""
        spec = spec or self.spec(visit, detector)
        lo, hi = self._healpix_span(spec)
        t = self._con.execute(
            f'SELECT x, y, psfFlux, diaSourceId FROM dp1."DiaSource" WHERE {store.HEALPIX_COLUMN} BETWEEN ? AND ? '
            "AND visit = ? AND detector = ? ORDER BY diaSourceId", [lo, hi, int(visit), int(detector)]).fetchnumpy()
        return SourceList(x=t["x"], y=t["y"], flux=t["psfFlux"], ids=t["diaSourceId"])

    def planes(self, visit: int, detector: int, region=None, *, record: dict | None = None,
               sources: SourceList | None = None) -> tuple[ImageSpec, Planes]:
        """Pixels of the image (or of ``region``); a caller that already holds the image's
        ``record`` and ``sources`` may pass them to skip the catalog look-ups."""
        row = record if record is not None else self._row(visit, detector)
        spec = ImageSpec.from_record(row)
        if row["kind"] == "fits":
            return spec, self._read_file(self.root / row["path"], spec, region)
        if sources is None:
            sources = self.sources(visit, detector, spec)
        return spec, render(spec, sources, region)

    def fits_bytes(self, visit: int, detector: int, region=None) -> bytes:
        row = self._row(visit, detector)
        if row["kind"] == "fits" and region is None:
            return (self.root / row["path"]).read_bytes()
        spec, planes = self.planes(visit, detector, region, record=row)
        return exposure_bytes(spec, planes, extra_cards=object_cards(row.get("field")))

    @staticmethod
    def _healpix_span(spec: ImageSpec) -> tuple[int, int]:
        """Smallest interval of depth-16 nested indices covering a cone around the CCD."""
        cra, cdec = spec.pixel_to_sky(spec.width / 2, spec.height / 2)
        kra, kdec = spec.corners_sky()
        radius = float(np.max(great_circle_deg(cra, cdec, kra, kdec))) + 0.01
        cells, depths = cone_cells(float(cra), float(cdec), radius, 10)
        shift = 2 * (store.HEALPIX_DEPTH - depths.astype(np.int64))
        cells = cells.astype(np.int64)
        return int((cells << shift).min()), int((((cells + 1) << shift) - 1).max())

    @staticmethod
    def _read_file(path: Path, spec: ImageSpec, region) -> Planes:
        from astropy.io import fits

        x0, y0, x1, y1 = region or (0, 0, spec.width, spec.height)
        x0, y0 = max(0, int(x0)), max(0, int(y0))
        x1, y1 = min(spec.width, int(x1)), min(spec.height, int(y1))
        if x1 <= x0 or y1 <= y0:
            raise ValueError("region does not overlap the image")
        with fits.open(path, memmap=True) as hdul:
            cut = [np.array(hdul[name].section[y0:y1, x0:x1]) for name in ("IMAGE", "MASK", "VARIANCE")]
        return Planes(image=cut[0].astype(np.float32), mask=cut[1].astype(np.int32),
                      variance=cut[2].astype(np.float32), x0=x0, y0=y0)

    def close(self) -> None:
        self._con.close()
