"""Build the demo archive: plan the visits, measure the sky in every image, load the catalog.

Everything random is drawn from generators keyed by (seed, purpose, visit, detector), so the
archive does not depend on loop order and two builds with one seed are identical.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from diavo.server.archive import store
from diavo.server.archive.demo.plan import FIELDS, VisitPlan, airmass, horizontal, plan_visits
from diavo.server.archive.demo.sky import assign_detectors, field_objects, focal_plane_pixels, measure_image
from diavo.server.archive.images.spec import ImageSpec
from diavo.server.archive.obscore import obscore_row
from diavo.shared.bands import BANDS
from diavo.shared.camera import CCD_HEIGHT, CCD_WIDTH, DETECTORS
from diavo.shared.psf import GaussianPsfModel, moments

MJD_EPOCH = datetime(1858, 11, 17)
EDGE_PX = 20


@dataclass(frozen=True)
class ScaleParams:
    object_density: float  # persistent variable objects per deg²
    spurious_per_image: float  # one-off detections per image
    failure_rate: float  # fraction of images the pipeline failed to produce


SCALES = {
    "small": ScaleParams(object_density=2200.0, spurious_per_image=45.0, failure_rate=0.0),
    "dp1": ScaleParams(object_density=4400.0, spurious_per_image=80.0, failure_rate=0.0097),
}
#: Relative background variance per band (the r band is the tutorial's ~300 nJy²).
BAND_VARIANCE = dict(zip(BANDS, (0.55, 0.8, 1.0, 1.35, 1.9, 2.6), strict=False))


def mjd_to_datetime64(mjd) -> np.ndarray:
    us = np.round((np.asarray(mjd, dtype=float) - 40587.0) * 86400e6).astype(np.int64)
    return us.astype("datetime64[us]")


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


def image_specs(visit: VisitPlan, seed: int, scale: ScaleParams) -> list[ImageSpec]:
    """The difference images one visit produced, with their conditions, PSF and noise."""
    alt, az, q = horizontal(visit.ra, visit.dec, visit.obs_mid_mjd_tai)
    wrng = _rng(seed, 4, visit.day_obs)
    base_p, base_t, base_h = wrng.normal(74000, 150), wrng.normal(12.0, 2.5), wrng.uniform(5, 60)
    vrng = _rng(seed, 5, visit.visit)
    pressure = base_p + vrng.normal(0, 20)
    temperature = base_t + vrng.normal(0, 0.3)
    humidity = float(np.clip(base_h + vrng.normal(0, 2), 1, 99))
    seeing = vrng.uniform(0.85, 1.2)
    specs = []
    for det in DETECTORS:
        rng = _rng(seed, 6, visit.visit, det)
        if rng.uniform() < scale.failure_rate:
            continue
        psf = GaussianPsfModel.random(rng, CCD_WIDTH, CCD_HEIGHT)
        ixx, iyy, ixy = (moments(c * seeing**2 for c in m) for m in (psf.ixx, psf.iyy, psf.ixy))
        psf = GaussianPsfModel(ixx, iyy, ixy, width=psf.width, height=psf.height)
        specs.append(ImageSpec(
            visit=visit.visit, detector=det, band=visit.band, physical_filter=visit.physical_filter,
            day_obs=visit.day_obs, boresight_ra=visit.ra, boresight_dec=visit.dec,
            rotation_deg=visit.rotation_deg, obs_start_mjd_tai=visit.obs_start_mjd_tai,
            exp_time=visit.exp_time, airmass=float(airmass(alt)), par_angle_rad=float(q),
            altitude_deg=float(alt), azimuth_deg=float(az), air_pressure_pa=float(round(pressure, 1)),
            air_temperature_c=float(round(temperature, 3)), humidity_pct=humidity, psf=psf,
            var_level=float(300.0 * BAND_VARIANCE[visit.band] * rng.uniform(0.85, 1.15)),
            var_grad_x=float(rng.uniform(-0.08, 0.08)), var_grad_y=float(rng.uniform(-0.08, 0.08)),
            seed=int(rng.integers(0, 2**62)),
        ))
    return specs


def visit_row(v: VisitPlan, spec: ImageSpec) -> dict:
    return {
        "visit": v.visit, "physical_filter": v.physical_filter, "band": v.band, "ra": v.ra, "dec": v.dec,
        "skyRotation": v.rotation_deg, "azimuth": spec.azimuth_deg, "altitude": spec.altitude_deg,
        "zenithDistance": 90.0 - spec.altitude_deg, "airmass": spec.airmass, "expTime": v.exp_time,
        "expMidptMJD": v.obs_mid_mjd_tai, "obsStartMJD": v.obs_start_mjd_tai,
    }


#: DiaSource columns derived in SQL from the measured ones (flags from position and flux).
_EDGE = f"(x < {EDGE_PX} OR y < {EDGE_PX} OR x > {CCD_WIDTH - 1 - EDGE_PX} OR y > {CCD_HEIGHT - 1 - EDGE_PX})"
_APER = f"(x < 12 OR y < 12 OR x > {CCD_WIDTH - 13} OR y > {CCD_HEIGHT - 13})"
DIASOURCE_EXPRS = {
    "parentDiaSourceId": "0",
    "coord_ra": "ra", "coord_dec": "dec",
    "extendedness": "0.0",
    "isDipole": "false", "dipoleFitAttempted": "false",
    "pixelFlags": _EDGE, "pixelFlags_offimage": "false", "pixelFlags_edge": _EDGE,
    "pixelFlags_interpolated": "false", "pixelFlags_saturated": "false", "pixelFlags_cr": "false",
    "pixelFlags_bad": "false", "pixelFlags_suspect": "false", "pixelFlags_interpolatedCenter": "false",
    "pixelFlags_saturatedCenter": "false", "pixelFlags_crCenter": "false", "pixelFlags_suspectCenter": "false",
    "pixelFlags_streak": "false", "pixelFlags_streakCenter": "false", "pixelFlags_injected": "false",
    "pixelFlags_injectedCenter": "false", "pixelFlags_injected_template": "false",
    "pixelFlags_injected_templateCenter": "false", "pixelFlags_nodata": "false", "pixelFlags_nodataCenter": "false",
    "centroid_flag": "false", "apFlux_flag": _APER, "apFlux_flag_apertureTruncated": _APER,
    "psfFlux_flag": "false", "psfFlux_flag_noGoodPixels": "false", "psfFlux_flag_edge": _EDGE,
    "shape_flag": "false", "shape_flag_no_pixels": "false", "shape_flag_not_contained": "false",
    "shape_flag_parent_source": "false",
}


def _healpix_udf(ra, dec):
    """DuckDB UDF: the storage HEALPix index of Arrow ra/dec columns."""
    import pyarrow as pa

    return pa.array(store.healpix_index(ra.to_numpy(zero_copy_only=False), dec.to_numpy(zero_copy_only=False)))


def _concat_sorted(chunks: list[dict]) -> dict[str, np.ndarray]:
    """Concatenate per-image columns into HEALPix order, one column at a time.

    Sorting in numpy and freeing each column's chunks as it is joined keeps the peak near one
    copy of the catalog; DuckDB then appends rows in the order given (one writer thread).
    """
    names = list(chunks[0])
    ra = np.concatenate([c["ra"] for c in chunks])
    dec = np.concatenate([c["dec"] for c in chunks])
    hpx = store.healpix_index(ra, dec)
    ids = np.concatenate([c["diaSourceId"] for c in chunks])
    order = np.lexsort((ids, hpx))
    core = {store.HEALPIX_COLUMN: hpx[order]}
    del ra, dec, ids, hpx
    for name in names:
        core[name] = np.concatenate([c[name] for c in chunks])[order]
        for c in chunks:
            del c[name]
    core["time_processed"] = mjd_to_datetime64(np.floor(core["midpointMjdTai"]) + 1.5)
    return core


def build_demo(root: Path, scale: str = "small", seed: int = 42, base_url: str | None = None,
               n_sources: int | None = None, progress: bool = True) -> dict:
    """Build the demo archive in ``root``; returns counts and timings.

    ``n_sources`` scales the sky so the archive holds about that many DiaSources (benchmarks).
    """
    import pyarrow as pa

    from diavo.server.archive.diaobject import create_diaobject_table
    from diavo.server.archive.model import load_model

    t0 = time.perf_counter()
    params = SCALES[scale]
    visits = plan_visits(scale, seed)
    if n_sources:
        # About 68% of the persistent objects on a CCD (0.05 deg²) are detected in a visit.
        expected = 9 * len(visits) * (params.object_density * 0.05 * 0.68 + params.spurious_per_image)
        f = n_sources / expected
        params = ScaleParams(params.object_density * f, params.spurious_per_image * f, params.failure_rate)
    objects = {name: field_objects(seed, i, ra, dec, params.object_density)
               for i, (name, (ra, dec)) in enumerate(FIELDS.items())}
    model = load_model()
    root = Path(root)
    con = store.create_catalog(root, model)
    base_url = base_url or store.DEFAULT_BASE_URL

    chunks: list[dict] = []
    obscore_rows, visit_rows, image_rows = [], [], []
    iterator = visits
    if progress:
        from tqdm import tqdm

        iterator = tqdm(visits, desc=f"demo {scale}", unit="visit")
    for v in iterator:
        specs = image_specs(v, seed, params)
        if not specs:
            continue
        visit_rows.append(visit_row(v, specs[0]))
        objs = objects[v.field]
        fx, fy = focal_plane_pixels(specs[0], objs.ra, objs.dec)
        det, x, y = assign_detectors(fx, fy)
        flux = objs.diff_flux(v.band, specs[0].obs_mid_mjd_tai)
        for spec in specs:
            sel = det == spec.detector
            rng = _rng(seed, 7, v.visit, spec.detector)
            src = measure_image(spec, x[sel], y[sel], flux[sel], objs.template[sel], objs.ids[sel],
                                params.spurious_per_image, rng)
            src["band"] = np.full(src["visit"].size, v.band)
            chunks.append(src)
            obscore_rows.append(obscore_row(spec, base_url=base_url, field=v.field))
            rec = spec.to_record()
            rec.update(kind="synthetic", path=None, field=v.field)
            image_rows.append(rec)
    t_sky = time.perf_counter() - t0

    visit_tab = pa.Table.from_pylist(visit_rows)
    visit_tab = visit_tab.append_column("expMidpt", pa.array(mjd_to_datetime64(visit_tab["expMidptMJD"].to_numpy())))
    visit_tab = visit_tab.append_column("obsStart", pa.array(mjd_to_datetime64(visit_tab["obsStartMJD"].to_numpy())))
    store.insert_arrow(con, model, "dp1.Visit", visit_tab, order_by="visit")
    store.insert_arrow(con, model, "ivoa.ObsCore", pa.Table.from_pylist(obscore_rows),
                       order_by="lsst_visit, lsst_detector")
    con.register("_img", pa.Table.from_pylist(image_rows))
    cols = ", ".join(image_rows[0].keys())
    con.execute(f"INSERT INTO diavo.image ({cols}) SELECT {cols} FROM _img ORDER BY visit, detector")
    con.unregister("_img")

    t_meta = time.perf_counter()
    core = _concat_sorted(chunks)
    del chunks
    n_src = store.insert_arrow(con, model, "dp1.DiaSource", pa.table(core), exprs=DIASOURCE_EXPRS)
    del core

    t_src = time.perf_counter()
    # DiaObjects stay inside DuckDB (which spills to disk past its memory limit): at 10M
    # DiaSources, pulling them into Python as Arrow would cost gigabytes.
    con.create_function("_diavo_healpix", _healpix_udf, ["DOUBLE", "DOUBLE"], "BIGINT", type="arrow")
    create_diaobject_table(con, "_diaobject", f", _diavo_healpix(ra, dec) AS {store.HEALPIX_COLUMN}")
    names = [d[0] for d in con.execute("SELECT * FROM _diaobject LIMIT 0").description]
    store.insert_from(con, model, "dp1.DiaObject", "_diaobject", names,
                      order_by=f"{store.HEALPIX_COLUMN}, diaObjectId")
    n_obj = con.execute("SELECT count(*) FROM _diaobject").fetchone()[0]
    con.execute("DROP TABLE _diaobject")
    t_obj = time.perf_counter()
    con.execute("CHECKPOINT")
    con.close()
    from diavo.server.archive.hats_export import export_hats

    export_hats(root, store.own_hats_dir(root))  # the spatial tables as HATS (archive format 3)
    t_hats = time.perf_counter()
    store.Manifest(scale=scale, seed=seed, base_url=base_url).write(root)
    return {"visits": len(visit_rows), "images": len(image_rows), "diasources": n_src, "diaobjects": n_obj,
            "seconds_sky": round(t_sky, 2), "seconds_tables": round(t_meta - t0 - t_sky, 2),
            "seconds_diasource": round(t_src - t_meta, 2), "seconds_diaobject": round(t_obj - t_src, 2),
            "seconds_hats": round(t_hats - t_obj, 2),
            "seconds_total": round(time.perf_counter() - t0, 2)}
