"""LSSTComCam geometry, the facts the demo archive and the client agree on.

ComCam is a single raft of nine ITL CCDs (detectors 0-8) in a 3x3 layout. The numbers here are
public instrument facts; the gap between CCDs is an approximation good enough for footprints.
"""
from __future__ import annotations

from dataclasses import dataclass

INSTRUMENT = "LSSTComCam"
FACILITY = "Rubin:Simonyi"
#: Cerro Pachón, for altitude/azimuth and parallactic angle of the demo visits.
SITE_LAT_DEG = -30.244639
SITE_LON_DEG = -70.749417
SITE_HEIGHT_M = 2663.0

CCD_WIDTH = 4072
CCD_HEIGHT = 4000
PIXEL_SCALE_ARCSEC = 0.2
#: Gap between neighbouring CCDs, in pixels (about 1 mm of 10 µm pixels).
CCD_GAP = 100
DETECTORS = tuple(range(9))


@dataclass(frozen=True)
class DetectorLayout:
    """Where a detector's pixel (0, 0) sits in the raft's focal-plane pixel frame.

    The focal-plane frame has its origin on the boresight; all nine detectors share one tangent
    plane per visit, so a detector's WCS differs from its neighbours only by this offset.
    """

    detector: int
    x0: float
    y0: float

    @property
    def name(self) -> str:
        row, col = divmod(self.detector, 3)
        return f"R22_S{row}{col}"


def detector_layout(detector: int) -> DetectorLayout:
    if detector not in DETECTORS:
        raise ValueError(f"LSSTComCam has detectors 0-8, not {detector}")
    row, col = divmod(detector, 3)
    x0 = (col - 1) * (CCD_WIDTH + CCD_GAP) - CCD_WIDTH / 2
    y0 = (row - 1) * (CCD_HEIGHT + CCD_GAP) - CCD_HEIGHT / 2
    return DetectorLayout(detector, x0, y0)
