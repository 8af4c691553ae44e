"""The observing plan of the demo archive: which field, band and pointing each visit had, and when.

The plan imitates LSSTComCam's DP1 campaign: seven fields, six bands, nights from 2024-10-24 to
2024-12-11, 30 s exposures, visit ids day_obs * 100000 + sequence number. Altitude, azimuth,
airmass and parallactic angle come from the pointing and the time at Cerro Pachón, so they agree
with each other. One block is pinned: on night 20241108 the ECDFS is observed in r from sequence
246 at 06:12:56 TAI, so the tutorial's query finds images at the same place and time.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from diavo.shared.bands import BANDS, PHYSICAL_FILTER
from diavo.shared.camera import SITE_LAT_DEG, SITE_LON_DEG

#: Approximate centres (deg) of the seven DP1 fields.
FIELDS: dict[str, tuple[float, float]] = {
    "47_Tuc": (6.10, -72.10),
    "ECDFS": (53.13, -28.10),
    "EDFS": (59.15, -48.73),
    "Fornax_dSph": (40.08, -34.45),
    "Rubin_SV_95_-25": (95.04, -25.00),
    "Rubin_SV_38_7": (37.98, 7.02),
    "Seagull": (106.30, -10.51),
}

FIRST_NIGHT = date(2024, 10, 24)
LAST_NIGHT = date(2024, 12, 11)
EXPOSURE_S = 30.0
CADENCE_S = 38.0  # exposure plus readout and slew between dithers
DITHER_RADIUS_DEG = 0.2
TAI_MINUS_UTC_S = 37.0
MJD_UNIX_EPOCH = 40587.0

TUTORIAL_NIGHT = 20241108
TUTORIAL_SEQ = 246
TUTORIAL_START_TAI = "2024-11-09T06:12:56"
TUTORIAL_VISITS = 30
#: The tutorial's first image: visit 2024110800246, detector 2, whose WCS has this sky origin
#: (its boresight); the demo points that visit there and turns the camera so that the tutorial's
#: position (RA 53.125, Dec -27.740) falls on detector 2 too.
TUTORIAL_BORESIGHT = (53.3274246637, -28.0723466054)
TUTORIAL_POSITION = (53.125, -27.740)
TUTORIAL_DETECTOR = 2


@dataclass(frozen=True)
class Block:
    field: str
    band: str
    start_mjd_tai: float
    n_visits: int


@dataclass(frozen=True)
class VisitPlan:
    visit: int
    day_obs: int
    seq: int
    field: str
    band: str
    physical_filter: str
    ra: float
    dec: float
    rotation_deg: float
    obs_start_mjd_tai: float
    exp_time: float

    @property
    def obs_mid_mjd_tai(self) -> float:
        return self.obs_start_mjd_tai + self.exp_time / 2 / 86400


def day_obs_int(d: date) -> int:
    return d.year * 10000 + d.month * 100 + d.day


def mjd_of_date(d: date) -> float:
    return (d - date(1858, 11, 17)).days * 1.0


def isot_to_mjd(value: str) -> float:
    """MJD of an ISO time without time-scale conversion (the caller knows the scale)."""
    d, t = value.split("T")
    y, m, dd = (int(p) for p in d.split("-"))
    hh, mm, ss = t.split(":")
    return mjd_of_date(date(y, m, dd)) + (int(hh) * 3600 + int(mm) * 60 + float(ss)) / 86400


def local_sidereal_deg(mjd_utc) -> np.ndarray:
    """Local mean sidereal time at the site (deg); accurate to a few arcsec, enough here."""
    d = np.asarray(mjd_utc, dtype=float) - 51544.5
    gmst = 280.46061837 + 360.98564736629 * d
    return (gmst + SITE_LON_DEG) % 360.0


def horizontal(ra, dec, mjd_tai):
    """Altitude, azimuth (deg, from north through east) and parallactic angle (rad)."""
    lst = local_sidereal_deg(np.asarray(mjd_tai) - TAI_MINUS_UTC_S / 86400)
    h = np.deg2rad(lst - np.asarray(ra))
    d = np.deg2rad(np.asarray(dec))
    phi = np.deg2rad(SITE_LAT_DEG)
    sin_alt = np.sin(phi) * np.sin(d) + np.cos(phi) * np.cos(d) * np.cos(h)
    alt = np.arcsin(np.clip(sin_alt, -1, 1))
    az = np.arctan2(-np.cos(d) * np.sin(h), np.sin(d) * np.cos(phi) - np.cos(d) * np.sin(phi) * np.cos(h))
    q = np.arctan2(np.sin(h), np.tan(phi) * np.cos(d) - np.sin(d) * np.cos(h))
    return np.rad2deg(alt), np.rad2deg(az) % 360.0, q


def airmass(alt_deg) -> np.ndarray:
    """Kasten & Young (1989) airmass, finite down to the horizon."""
    alt = np.asarray(alt_deg, dtype=float)
    return 1.0 / (np.sin(np.deg2rad(alt)) + 0.50572 * np.power(np.maximum(alt, 0) + 6.07995, -1.6364))


def _night_window(d: date) -> tuple[float, float]:
    """Astronomical night at Cerro Pachón in this season, in MJD (TAI), roughly."""
    m = mjd_of_date(d + timedelta(days=1))
    return m + 0.5 / 24 + 0.0, m + 8.7 / 24


def _night_blocks(rng: np.random.Generator, d: date, target: int, done: dict[str, int]) -> list[Block]:
    """Blocks of dithered visits spread over the night, each on a field well above the horizon.

    Fields observed less so far are preferred, so all seven fields gather visits over the run.
    """
    t, t_end = _night_window(d)
    n_blocks = max(1, round(target / 9.5))
    slack = max(0.0, (t_end - t) - target * CADENCE_S / 86400) / n_blocks
    t += rng.uniform(0, 0.5) * slack
    blocks: list[Block] = []
    total = 0
    names = list(FIELDS)
    band_p = np.array([0.10, 0.2, 0.22, 0.22, 0.14, 0.12])
    ra = np.array([FIELDS[n][0] for n in names])
    dec = np.array([FIELDS[n][1] for n in names])
    while total < target and t < t_end - 0.5 / 24:
        alt, _, _ = horizontal(ra, dec, t + 0.1 / 24)
        ok = [n for n, a in zip(names, alt, strict=False) if a > 40]
        if ok:
            w = np.array([1.0 / (1 + done.get(n, 0)) for n in ok])
            field = str(rng.choice(ok, p=w / w.sum()))
        else:
            field = names[int(np.argmax(alt))]
        band = str(rng.choice(BANDS, p=band_p))
        n = int(rng.integers(5, 15))
        n = min(n, target - total) if target - total >= 5 else n
        blocks.append(Block(field, band, t, n))
        done[field] = done.get(field, 0) + n
        total += n
        t += n * CADENCE_S / 86400 + rng.uniform(0.3, 1.7) * slack
    return blocks


def _pinned_tutorial_block() -> Block:
    return Block("ECDFS", "r", isot_to_mjd(TUTORIAL_START_TAI), TUTORIAL_VISITS)


def _tutorial_rotation() -> float:
    """Sky rotation that puts the tutorial position on the centre line of detector 2.

    With CD = s * flip * R(theta), focal-plane vectors turn by -theta as theta grows, so the
    rotation is the angle between the position's unrotated focal vector and the detector's.
    """
    from diavo.server.archive.images.spec import sky_to_tangent
    from diavo.shared.camera import CCD_HEIGHT, CCD_WIDTH, detector_layout

    xi, eta = sky_to_tangent(*TUTORIAL_POSITION, *TUTORIAL_BORESIGHT)
    lay = detector_layout(TUTORIAL_DETECTOR)
    target = np.arctan2(lay.y0 + CCD_HEIGHT / 2, lay.x0 + CCD_WIDTH / 2)
    unrotated = np.arctan2(eta, -xi)
    return float(np.rad2deg(unrotated - target) % 360.0)


def _visits_of_night(rng: np.random.Generator, d: date, blocks: list[Block], seed: int) -> list[VisitPlan]:
    """Lay out the visits of one night; sequence numbers count up with gaps between blocks."""
    day_obs = day_obs_int(d)
    blocks = sorted(blocks, key=lambda b: b.start_mjd_tai)
    seqs: list[list[int]] = []
    seq = int(rng.integers(20, 140))
    for b in blocks:
        seqs.append(list(range(seq, seq + b.n_visits)))
        seq += b.n_visits + int(rng.integers(1, 12))
    pinned = [i for i, b in enumerate(blocks) if b == _pinned_tutorial_block()]
    if pinned:
        shift = TUTORIAL_SEQ - seqs[pinned[0]][0]
        seqs = [[s + shift for s in ss] for ss in seqs]
    out = []
    for b, ss in zip(blocks, seqs, strict=False):
        if ss[0] < 1:
            continue
        c_ra, c_dec = FIELDS[b.field]
        for k, s in enumerate(ss):
            # Pointing drawn per visit id, so a visit points alike at every scale.
            vrng = np.random.default_rng(np.random.SeedSequence([seed, 8, day_obs * 100000 + s]))
            r = DITHER_RADIUS_DEG * np.sqrt(vrng.uniform())
            th = vrng.uniform(0, 2 * np.pi)
            dec = c_dec + r * np.sin(th)
            ra = (c_ra + r * np.cos(th) / np.cos(np.deg2rad(dec))) % 360.0
            rot = vrng.uniform(0, 360)
            if day_obs == TUTORIAL_NIGHT and s == TUTORIAL_SEQ:
                (ra, dec), rot = TUTORIAL_BORESIGHT, _tutorial_rotation()
            out.append(VisitPlan(
                visit=day_obs * 100000 + s, day_obs=day_obs, seq=s, field=b.field, band=b.band,
                physical_filter=PHYSICAL_FILTER[b.band], ra=float(ra), dec=float(dec),
                rotation_deg=float(rot),
                obs_start_mjd_tai=b.start_mjd_tai + k * CADENCE_S / 86400,
                exp_time=EXPOSURE_S,
            ))
    return out


def plan_visits(scale: str, seed: int) -> list[VisitPlan]:
    """All visits of the demo archive in time order.

    ``dp1``: 48 nights, about 1,800 visits. ``small``: the tutorial night's pinned ECDFS r block
    and a couple of short blocks on two other nights, a few hundred images in all.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    nights = [FIRST_NIGHT + timedelta(days=i) for i in range((LAST_NIGHT - FIRST_NIGHT).days + 1)]
    skipped = nights[1 + int(rng.integers(0, len(nights) - 2))]
    nights = [n for n in nights if n != skipped and day_obs_int(n) != TUTORIAL_NIGHT]
    visits: list[VisitPlan] = []
    done: dict[str, int] = {}
    if scale == "dp1":
        for d in sorted(nights + [date(2024, 11, 8)]):
            blocks = _night_blocks(rng, d, int(rng.integers(30, 47)), done)
            if day_obs_int(d) == TUTORIAL_NIGHT:
                pin = _pinned_tutorial_block()
                end = pin.start_mjd_tai + pin.n_visits * CADENCE_S / 86400
                blocks = [b for b in blocks
                          if b.start_mjd_tai + b.n_visits * CADENCE_S / 86400 < pin.start_mjd_tai - 0.003
                          or b.start_mjd_tai > end + 0.003] + [pin]
            visits += _visits_of_night(rng, d, blocks, seed)
    elif scale == "small":
        t1 = _night_window(date(2024, 11, 8))[0]
        visits += _visits_of_night(rng, date(2024, 11, 8), [
            Block("EDFS", "g", t1 + 0.03, 4), _pinned_tutorial_block()], seed)
        for d, field, band in ((date(2024, 11, 27), "Fornax_dSph", "i"), (date(2024, 12, 3), "ECDFS", "z")):
            t0 = _night_window(d)[0] + 0.1
            visits += _visits_of_night(rng, d, [Block(field, band, t0, 3)], seed)
    else:
        raise ValueError(f"unknown scale {scale!r}: use 'small' or 'dp1'")
    visits.sort(key=lambda v: v.obs_start_mjd_tai)
    return visits
