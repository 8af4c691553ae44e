"""``diavo ingest``: build or extend an archive from real files.

Images: LSST-style multi-extension FITS difference images (IMAGE, MASK, VARIANCE extensions, a
TAN WCS, visit/detector and exposure cards). Their ObsCore rows come from the header and WCS
through the same code the demo generator uses, so both routes describe an image identically.
Tables: Parquet, CSV or VOTable files loaded into a served table by column name.
"""
from __future__ import annotations

import math
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from diavo.server.archive import store
from diavo.server.archive.images.spec import ImageSpec
from diavo.server.archive.obscore import obscore_row
from diavo.shared.bands import band_of_filter
from diavo.shared.psf import GaussianPsfModel


class IngestError(ValueError):
    """A file diavo cannot describe; the message says what is missing."""


def _card(hdr, *names, required=True):
    for n in names:
        if n in hdr:
            return hdr[n]
    if required:
        raise IngestError(f"header lacks {' / '.join(names)}")
    return None


def spec_from_fits(path: Path) -> tuple[ImageSpec, object, str | None]:
    """An ImageSpec describing a FITS difference image, its astropy WCS and target name."""
    from astropy.io import fits
    from astropy.wcs import WCS

    with fits.open(path, memmap=True) as hdul:
        names = [h.name for h in hdul]
        for ext in ("IMAGE", "MASK", "VARIANCE"):
            if ext not in names:
                raise IngestError(f"{path.name}: no {ext} extension (found {names})")
        hdr = hdul[0].header
        target = hdr.get("OBJECT") or None
        img = hdul["IMAGE"].header
        wcs = WCS(img)
        if not wcs.has_celestial:
            raise IngestError(f"{path.name}: the IMAGE extension has no celestial WCS")
        height, width = hdul["IMAGE"].shape
        cy, cx = height // 2, width // 2
        var_sample = np.asarray(hdul["VARIANCE"].section[max(0, cy - 256):cy + 256, max(0, cx - 256):cx + 256])
        try:
            ctx = f"{path.name}: "
            physical_filter = str(_card(hdr, "FILTER", "PHYSICAL_FILTER"))
            band = str(_card(hdr, "BAND", required=False) or band_of_filter(physical_filter))
            visit = int(_card(hdr, "VISIT", "HIERARCH LSST BUTLER DATAID VISIT"))
            cd = wcs.wcs.cd if wcs.wcs.has_cd() else wcs.wcs.get_pc() * wcs.wcs.cdelt[:, None]
            spec = ImageSpec(
                visit=visit,
                detector=int(_card(hdr, "DETECTOR")),
                band=band, physical_filter=physical_filter,
                day_obs=int(_card(hdr, "DAY_OBS", required=False) or visit // 100000),
                boresight_ra=float(_card(hdr, "BORE-RA", required=False) or wcs.wcs.crval[0]),
                boresight_dec=float(_card(hdr, "BORE-DEC", required=False) or wcs.wcs.crval[1]),
                rotation_deg=float(_card(hdr, "BORE-ROTANG", required=False)
                                   or math.degrees(math.atan2(cd[1, 0], cd[1, 1])) % 360.0),
                obs_start_mjd_tai=float(_card(hdr, "MJD-BEG", "MJD-OBS")),
                exp_time=float(_card(hdr, "EXPTIME")),
                airmass=float(_card(hdr, "AIRMASS", required=False) or float("nan")),
                par_angle_rad=float(_card(hdr, "BORE-PA-RAD", required=False)
                                    or math.radians(_card(hdr, "BORE-PA", required=False) or float("nan"))),
                altitude_deg=float(_card(hdr, "ALTITUDE", required=False) or float("nan")),
                azimuth_deg=float(_card(hdr, "AZIMUTH", required=False) or float("nan")),
                air_pressure_pa=float(_card(hdr, "PRESSURE", required=False) or float("nan")),
                air_temperature_c=float(_card(hdr, "AIRTEMP", required=False) or float("nan")),
                humidity_pct=float(_card(hdr, "HUMIDITY", required=False) or float("nan")),
                psf=GaussianPsfModel.from_header(hdr),
                var_level=float(np.median(var_sample)), var_grad_x=0.0, var_grad_y=0.0, seed=0,
                width=int(width), height=int(height),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise IngestError(f"{ctx}{exc}") from exc
    return spec, wcs, target


def _follows_layout(spec: ImageSpec, wcs) -> bool:
    """True when the file's WCS is the boresight-centred TAN the spec reproduces exactly."""
    cx, cy = spec.crpix0
    return (abs(wcs.wcs.crpix[0] - 1 - cx) < 1e-6 and abs(wcs.wcs.crpix[1] - 1 - cy) < 1e-6
            and np.allclose(wcs.wcs.crval, [spec.boresight_ra, spec.boresight_dec], atol=1e-12, rtol=0))


def read_table(path: Path):
    """A Parquet, CSV or VOTable file as an Arrow table."""
    import pyarrow as pa

    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        return pq.read_table(path)
    if suffix in (".csv", ".tsv"):
        import pyarrow.csv as pcsv

        opts = pcsv.ParseOptions(delimiter="\t" if suffix == ".tsv" else ",")
        return pcsv.read_csv(path, parse_options=opts)
    if suffix in (".xml", ".vot", ".votable"):
        from astropy.table import Table

        t = Table.read(path, format="votable")
        cols = {}
        for name in t.colnames:
            col = t[name]
            data = np.ma.getdata(col)
            mask = np.ma.getmaskarray(col) if np.ma.isMaskedArray(col) else None
            cols[name] = pa.array(data.tolist() if data.dtype.kind in "OSU" else data, mask=mask)
        return pa.table(cols)
    raise IngestError(f"{path.name}: unknown table format (use .parquet, .csv, .tsv or .xml/.vot)")


def ingest(root: Path, images: Sequence[Path] = (), tables: Sequence[tuple[str, Path]] = (),
           base_url: str | None = None, copy: bool = True) -> dict:
    import pyarrow as pa

    from diavo.server.archive.model import load_model

    model = load_model()
    root = Path(root)
    if (root / store.MANIFEST).exists():
        manifest = store.Manifest.read(root)
        con = store.connect(root, read_only=False)
    else:
        manifest = store.Manifest(scale="ingest", seed=None, base_url=base_url or store.DEFAULT_BASE_URL)
        con = store.create_catalog(root, model)
    base_url = base_url or manifest.base_url
    n_images = 0
    try:
        rows, recs = [], []
        for path in images:
            spec, wcs, target = spec_from_fits(Path(path))
            row = obscore_row(spec, base_url=base_url, field=target,
                              wcs=None if _follows_layout(spec, wcs) else wcs)
            if copy:
                dest = Path(store.IMAGES_DIR) / f"{spec.visit}_{spec.detector}.fits"
                (root / store.IMAGES_DIR).mkdir(exist_ok=True)
                shutil.copyfile(path, root / dest)
                stored = str(dest)
            else:
                stored = str(Path(path).resolve())
            rec = spec.to_record()
            rec.update(kind="fits", path=stored, field=target)
            con.execute('DELETE FROM ivoa."ObsCore" WHERE lsst_visit = ? AND lsst_detector = ?',
                        [spec.visit, spec.detector])
            con.execute("DELETE FROM diavo.image WHERE visit = ? AND detector = ?", [spec.visit, spec.detector])
            rows.append(row)
            recs.append(rec)
        if rows:
            store.insert_arrow(con, model, "ivoa.ObsCore", pa.Table.from_pylist(rows),
                               order_by="lsst_visit, lsst_detector")
            con.register("_img", pa.Table.from_pylist(recs))
            cols = ", ".join(recs[0].keys())
            con.execute(f"INSERT INTO diavo.image ({cols}) SELECT {cols} FROM _img")
            con.unregister("_img")
            n_images = len(rows)
        loaded = {}
        for name, path in tables:
            table = model.table(name)
            qualified = f"{table.schema}.{table.name}"
            data = read_table(Path(path))
            missing = [c.name for c in table.columns if not c.nullable and c.name not in data.column_names]
            if missing:
                raise IngestError(f"{Path(path).name}: {qualified} needs column(s) {', '.join(missing)}")
            if qualified in store.SPATIAL_TABLES:
                ra, dec = store.SPATIAL_TABLES[qualified]
                lon, lat = (data[c].to_numpy(zero_copy_only=False) for c in (ra, dec))
                data = data.append_column(store.HEALPIX_COLUMN, pa.array(store.healpix_index(lon, lat)))
            loaded[qualified] = store.insert_arrow(con, model, qualified, data)
            if qualified in store.SPATIAL_TABLES:
                store.resort_spatial(con, model, qualified)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    if loaded.keys() & store.SPATIAL_TABLES.keys() or not store.own_hats_dir(root).exists():
        from diavo.server.archive.hats_export import export_hats

        export_hats(root, store.own_hats_dir(root))  # the spatial tables as HATS (archive format 3)
    manifest.write(root)
    return {"images": n_images, "tables": loaded}
