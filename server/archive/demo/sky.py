"""The demo sky: variable objects per field, and what each difference image detects of them.

Every DiaSource is measured from a known truth: a persistent variable object (sinusoidal light
curve, per-band amplitude) or a one-off detection (an artefact or short transient, which gets a
DiaObject of its own). Errors follow from the image's variance and PSF, measured values scatter
by those errors, and only 5-sigma detections are kept, as the difference-imaging pipeline does.
Positions are measured in pixels first and mapped to the sky through the image's WCS, so a
DiaSource's (ra, dec) and (x, y) agree exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from diavo.server.archive.images.spec import ImageSpec, sky_to_tangent
from diavo.shared.bands import BANDS
from diavo.shared.camera import CCD_GAP, CCD_HEIGHT, CCD_WIDTH, PIXEL_SCALE_ARCSEC

FIELD_RADIUS_DEG = 0.75
DETECTION_SIGMA = 5.0
#: Packs (visit, detector, counter) into a diaSourceId, as Rubin packs its source ids.
COUNTER_BITS = 12


@dataclass(frozen=True)
class FieldObjects:
    ids: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    amp: np.ndarray  # nJy, r-band amplitude of the difference flux
    colour: np.ndarray  # (n, 6) per-band factors on amp
    period: np.ndarray  # days
    phase: np.ndarray
    template: np.ndarray  # nJy, flux in the template

    def diff_flux(self, band: str, mjd: float) -> np.ndarray:
        b = BANDS.index(band)
        return self.amp * self.colour[:, b] * np.sin(2 * np.pi * mjd / self.period + self.phase)


def field_objects(seed: int, field_index: int, ra0: float, dec0: float, density: float) -> FieldObjects:
    """Persistent variable objects scattered over a field (density per square degree)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 3, field_index]))
    area = np.pi * FIELD_RADIUS_DEG**2
    n = int(rng.poisson(density * area))
    r = FIELD_RADIUS_DEG * np.sqrt(rng.uniform(size=n))
    th = rng.uniform(0, 2 * np.pi, n)
    dec = dec0 + r * np.sin(th)
    ra = (ra0 + r * np.cos(th) / np.cos(np.deg2rad(dec))) % 360.0
    ids = (np.int64(field_index + 1) << np.int64(48)) + np.arange(n, dtype=np.int64)
    return FieldObjects(
        ids=ids, ra=ra, dec=dec,
        amp=np.exp(rng.uniform(np.log(300.0), np.log(60000.0), n)),
        colour=np.exp(rng.normal(0.0, 0.3, (n, len(BANDS)))),
        period=np.exp(rng.uniform(np.log(0.3), np.log(60.0), n)),
        phase=rng.uniform(0, 2 * np.pi, n),
        template=np.exp(rng.normal(np.log(3000.0), 1.0, n)),
    )


def source_id(visit: int, detector: int, counter: np.ndarray) -> np.ndarray:
    return ((np.int64(visit) * 16 + np.int64(detector)) << np.int64(COUNTER_BITS)) + counter.astype(np.int64)


def focal_plane_pixels(spec0: ImageSpec, ra, dec):
    """Boresight-centred focal-plane pixel coordinates shared by all detectors of a visit."""
    xi, eta = sky_to_tangent(ra, dec, spec0.boresight_ra, spec0.boresight_dec)
    inv = np.linalg.inv(spec0.cd)
    return inv[0, 0] * xi + inv[0, 1] * eta, inv[1, 0] * xi + inv[1, 1] * eta


def measure_image(spec: ImageSpec, truth_x, truth_y, truth_flux, template, object_ids,
                  n_spurious: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The DiaSources one image yields: measured quantities for detections above 5 sigma."""
    W, H = spec.width, spec.height
    k = int(rng.poisson(n_spurious))
    sx = rng.uniform(0, W - 1, k)
    sy = rng.uniform(0, H - 1, k)
    u = (np.concatenate([truth_x, sx]) - W / 2) / W
    v = (np.concatenate([truth_y, sy]) - H / 2) / H
    x = np.concatenate([truth_x, sx])
    y = np.concatenate([truth_y, sy])
    ixx, iyy, ixy = spec.psf.moments(x, y)
    det_r = (ixx * iyy - ixy**2) ** 0.25
    var = spec.var_level * (1 + spec.var_grad_x * u + spec.var_grad_y * v)
    err = np.sqrt(var * 4 * np.pi) * det_r
    sign = np.where(rng.uniform(size=k) < 0.5, -1.0, 1.0)
    spur_flux = sign * err[len(truth_x):] * rng.uniform(5.0, 7.5, k)
    true_flux = np.concatenate([truth_flux, spur_flux])
    flux = true_flux + err * rng.standard_normal(x.size)
    snr = np.abs(flux) / err
    keep = snr >= DETECTION_SIGMA
    pos_err = np.maximum(det_r / np.maximum(snr, 1e-3), 0.005)
    mx = x + pos_err * rng.standard_normal(x.size)
    my = y + pos_err * 1.05 * rng.standard_normal(x.size)
    keep &= (mx >= 0) & (mx <= W - 1) & (my >= 0) & (my <= H - 1)
    is_spur = np.arange(x.size) >= len(truth_x)
    obj = np.concatenate([object_ids, np.zeros(k, dtype=np.int64)])
    tmpl = np.concatenate([template, rng.uniform(0, 200, k)])
    idx = np.nonzero(keep)[0]
    n = idx.size
    counter = np.arange(n)
    ids = source_id(spec.visit, spec.detector, counter)
    obj = obj[idx]
    obj = np.where(is_spur[idx], ids, obj)  # one-off detections own their DiaObject
    ra, dec = spec.pixel_to_sky(mx[idx], my[idx])
    scale_deg = PIXEL_SCALE_ARCSEC / 3600.0
    xerr = pos_err[idx]
    yerr = pos_err[idx] * 1.05
    # Propagate the pixel covariance to (ra, dec) through the local CD matrix.
    cd = spec.cd.copy()
    cosd = np.cos(np.deg2rad(dec))
    j11, j12 = cd[0, 0] / cosd, cd[0, 1] / cosd
    j21, j22 = cd[1, 0], cd[1, 1]
    var_ra = j11**2 * xerr**2 + j12**2 * yerr**2
    var_dec = j21**2 * xerr**2 + j22**2 * yerr**2
    cov = j11 * j21 * xerr**2 + j12 * j22 * yerr**2
    f = flux[idx]
    e = err[idx]
    ap_err = np.sqrt(var[idx] * np.pi * 12.0**2)
    psf_ndata = np.ceil(np.pi * (3 * det_r[idx]) ** 2).astype(np.int32)
    shape_noise = 1 + 0.5 / np.maximum(snr[idx], 1) * rng.standard_normal((3, n))
    return {
        "diaSourceId": ids,
        "visit": np.full(n, spec.visit, np.int64),
        "detector": np.full(n, spec.detector, np.int64),
        "diaObjectId": obj.astype(np.int64),
        "midpointMjdTai": np.full(n, spec.obs_mid_mjd_tai),
        "ra": ra, "dec": dec,
        "raErr": np.sqrt(var_ra).astype(np.float32), "decErr": np.sqrt(var_dec).astype(np.float32),
        "ra_dec_Cov": cov.astype(np.float32),
        "x": mx[idx], "y": my[idx],
        "xErr": xerr.astype(np.float32), "yErr": yerr.astype(np.float32),
        "psfFlux": f.astype(np.float32), "psfFluxErr": e.astype(np.float32),
        "apFlux": (0.97 * true_flux[idx] + ap_err * rng.standard_normal(n)).astype(np.float32),
        "apFluxErr": ap_err.astype(np.float32),
        "snr": snr[idx],
        "psfChi2": rng.chisquare(np.maximum(psf_ndata - 1, 1)).astype(np.float32),
        "psfNdata": psf_ndata,
        "scienceFlux": (tmpl[idx] + f).astype(np.float32),
        "scienceFluxErr": (0.8 * e).astype(np.float32),
        "ixx": ixx[idx] * shape_noise[0] * scale_deg**2 * 3600**2,
        "iyy": iyy[idx] * shape_noise[1] * scale_deg**2 * 3600**2,
        "ixy": ixy[idx] * shape_noise[2] * scale_deg**2 * 3600**2,
        "ixxPSF": ixx[idx] * (PIXEL_SCALE_ARCSEC**2),
        "iyyPSF": iyy[idx] * (PIXEL_SCALE_ARCSEC**2),
        "ixyPSF": ixy[idx] * (PIXEL_SCALE_ARCSEC**2),
        "bboxSize": (2 * np.ceil(3 * det_r[idx] * np.sqrt(np.maximum(snr[idx], 1) / 5))).astype(np.int64),
        "reliability": np.clip(np.where(is_spur[idx], 0.35, 0.9) + 0.1 * rng.standard_normal(n),
                               0, 1).astype(np.float32),
    }


def assign_detectors(fx, fy):
    """Detector index (or -1 in a gap or off the raft) and CCD pixel coordinates."""
    col = np.floor((fx + 1.5 * CCD_WIDTH + CCD_GAP) / (CCD_WIDTH + CCD_GAP)).astype(int)
    row = np.floor((fy + 1.5 * CCD_HEIGHT + CCD_GAP) / (CCD_HEIGHT + CCD_GAP)).astype(int)
    x = fx - ((col - 1) * (CCD_WIDTH + CCD_GAP) - CCD_WIDTH / 2)
    y = fy - ((row - 1) * (CCD_HEIGHT + CCD_GAP) - CCD_HEIGHT / 2)
    ok = ((col >= 0) & (col < 3) & (row >= 0) & (row < 3)
          & (x >= 0) & (x <= CCD_WIDTH - 1) & (y >= 0) & (y <= CCD_HEIGHT - 1))
    det = np.where(ok, row * 3 + col, -1)
    return det, x, y
