"""Where the data of a table physically is, as far as the SQL emitter needs to know.

The ADQL core checks queries against the data model; what makes a query fast depends on how a
storage keeps the tables: a HEALPix index column at some order that the rows are sorted or
partitioned by, a position stored as a unit vector, a footprint with a bounding cap. Storage
(``archive.store``) derives a ``Layout`` from the model and its own choices; engines hand it to
the emitter. A table absent from the layout is only read plainly (exact answers, no pruning).
These are types only: the values come from the storage that holds the tables.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SpatialIndex:
    """A table whose rows carry a HEALPix index of their position."""

    #: The model columns giving the position (degrees, ICRS).
    ra: str
    dec: str
    #: Storage column holding the nested HEALPix index of (ra, dec) at ``order``.
    healpix: str
    order: int
    #: Storage columns holding the position as a unit vector (x, y, z), when stored: a cone is
    #: then one dot product per row; without them the exact test is the generic one.
    unit_vector: tuple[str, str, str] | None = None
    #: The order at which a region's cover is computed (at most ``order``; the ranges are then
    #: shifted to ``order``): HATS's order 29 is far finer than any useful cover.
    cover_order: int | None = None


@dataclass(frozen=True)
class RegionBounds:
    """A footprint column (STC-S) with a centre and a diameter that bound it (ObsCore's s_ra,
    s_dec, s_fov), so a region test can first keep only the rows whose cap is near."""

    ra: str
    dec: str
    diameter: str
    #: A storage column with the footprint's inward edge normals (unit vectors, ARRAY of
    #: (x, y, z)), where the storage keeps footprints pre-parsed (engines without an STC-S parser).
    normals: str | None = None


@dataclass(frozen=True)
class Partition:
    """One file of a HEALPix-partitioned table: the rows whose position lies in cell ``pixel`` of
    ``order`` (nested scheme)."""

    order: int
    pixel: int
    path: str

    def index_range(self, order: int) -> tuple[int, int]:
        """The cell as an inclusive range of the index at ``order`` (at least this order)."""
        shift = 2 * (order - self.order)
        return self.pixel << shift, ((self.pixel + 1) << shift) - 1


@dataclass(frozen=True)
class Layout:
    #: Qualified model table name -> its HEALPix index.
    spatial: Mapping[str, SpatialIndex] = field(default_factory=dict)
    #: (qualified table, footprint column) -> the columns that bound it.
    regions: Mapping[tuple[str, str], RegionBounds] = field(default_factory=dict)
    #: Qualified table -> the Parquet files it is read from instead of the catalog's own table: a
    #: HATS catalog's partitions, each the HEALPix cell (order, pixel) it holds and its file.
    partitions: Mapping[str, tuple[Partition, ...]] = field(default_factory=dict)


#: A layout that knows nothing: every query is answered by plain scans.
PLAIN = Layout()
