"""Butler-shaped value types: dataset types, data IDs, dataset references and time spans.

They carry no catalog of their own: a ``DatasetRef`` is built from one ObsCore row (TAP or SIA),
so a notebook written against ``lsst.daf.butler`` reads the same attributes here.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
from astropy.time import Time

from diavo.shared.camera import INSTRUMENT
from diavo.shared.ids import day_obs_of_visit, image_id

__all__ = ["DataId", "DatasetRef", "DatasetType", "DimensionNames", "MissingDatasetTypeError",
           "Timespan", "DIFFERENCE_IMAGE", "dataset_type"]

#: The order Butler prints the keys of a difference image's data ID in.
DATA_ID_KEYS = ("instrument", "detector", "visit", "band", "day_obs", "physical_filter")


class MissingDatasetTypeError(LookupError):
    """The archive has no dataset type of that name."""

    def __str__(self) -> str:  # LookupError would quote the message like a key
        return str(self.args[0]) if self.args else ""


class DimensionNames:
    """An ordered, read-only set of dimension names that prints like Butler's ``{a, b}``."""

    __slots__ = ("_names",)

    def __init__(self, names: Iterable[str]) -> None:
        self._names = tuple(dict.fromkeys(names))

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DimensionNames):
            return set(self._names) == set(other._names)
        if isinstance(other, (set, frozenset)):
            return set(self._names) == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(frozenset(self._names))

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    def __repr__(self) -> str:
        return "{" + ", ".join(self._names) + "}"


class DimensionGroup(DimensionNames):
    """All dimensions of a dataset type, with the subset that identifies one dataset."""

    __slots__ = ("required",)

    def __init__(self, names: Iterable[str], required: Iterable[str]) -> None:
        super().__init__(names)
        self.required = DimensionNames(required)


class DatasetType:
    """A kind of dataset: its name, dimensions and storage class.

    Compares equal to its name too, so ``ref.datasetType == "difference_image"`` reads naturally.
    """

    def __init__(self, name: str, dimensions: DimensionGroup, storage_class: str,
                 subtype: str, is_exposure: bool) -> None:
        self.name = name
        self.dimensions = dimensions
        self.storageClass_name = storage_class
        #: ObsCore ``dataproduct_subtype`` of this type's rows.
        self.subtype = subtype
        self.is_exposure = is_exposure

    @property
    def storageClass(self) -> str:  # noqa: N802 - Butler's spelling
        return self.storageClass_name

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DatasetType):
            return self.name == other.name
        if isinstance(other, str):
            return self.name == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"DatasetType({self.name!r}, {self.dimensions!r}, {self.storageClass_name})"


DIFFERENCE_IMAGE = DatasetType(
    "difference_image",
    DimensionGroup(("band", "instrument", "day_obs", "detector", "physical_filter", "visit"),
                   required=("instrument", "detector", "visit")),
    storage_class="ExposureF", subtype="lsst.difference_image", is_exposure=True)

_DATASET_TYPES = {DIFFERENCE_IMAGE.name: DIFFERENCE_IMAGE}


def dataset_type(name: str | DatasetType) -> DatasetType:
    """The dataset type of that name; MissingDatasetTypeError names the ones that exist."""
    if isinstance(name, DatasetType):
        return name
    found = _DATASET_TYPES.get(str(name))
    if found is None:
        known = ", ".join(sorted(_DATASET_TYPES))
        raise MissingDatasetTypeError(f"no dataset type {name!r} in this archive (known: {known})")
    return found


class DataId(Mapping[str, Any]):
    """The dimension values of one dataset, printed the way Butler prints a data coordinate."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        merged = {**(dict(values) if values is not None else {}), **kwargs}
        ordered = {k: merged[k] for k in DATA_ID_KEYS if merged.get(k) is not None}
        ordered.update({k: v for k, v in merged.items() if k not in ordered and v is not None})
        self._values = ordered

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._values.items())))

    @property
    def required(self) -> dict[str, Any]:
        """The values that identify the dataset (instrument, detector, visit)."""
        return {k: self._values[k] for k in DIFFERENCE_IMAGE.dimensions.required if k in self._values}

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{k}: {v!r}" for k, v in self._values.items()) + "}"


class Timespan:
    """A half-open time interval [begin, end) in TAI; ``None`` on either side means unbounded.

    The archive's ObsCore ``t_min``/``t_max`` are MJD in UTC (ObsCore's convention), hence ``begin_mjd``/``end_mjd``.
    """

    __slots__ = ("begin", "end")

    def __init__(self, begin: Time | None, end: Time | None) -> None:
        self.begin = _as_time(begin, "begin")
        self.end = _as_time(end, "end")
        if self.begin is not None and self.end is not None and self.end.tai.mjd < self.begin.tai.mjd:
            raise ValueError(f"timespan ends ({self.end.tai.isot}) before it begins ({self.begin.tai.isot})")

    @classmethod
    def from_mjd(cls, begin: float | None, end: float | None, scale: str = "utc") -> Timespan:
        """From MJD values, by default in UTC (the scale of ObsCore's t_min/t_max here)."""
        return cls(None if begin is None else Time(begin, format="mjd", scale=scale),
                   None if end is None else Time(end, format="mjd", scale=scale))

    @property
    def begin_mjd(self) -> float | None:
        return None if self.begin is None else float(self.begin.utc.mjd)

    @property
    def end_mjd(self) -> float | None:
        return None if self.end is None else float(self.end.utc.mjd)

    def overlaps(self, other: Timespan) -> bool:
        lo = max(v for v in (self.begin_mjd, other.begin_mjd, -math.inf) if v is not None)
        hi = min(v for v in (self.end_mjd, other.end_mjd, math.inf) if v is not None)
        return lo < hi

    def contains(self, t: Time) -> bool:
        time = _as_time(t, "time")
        assert time is not None
        mjd = float(time.utc.mjd)
        return ((self.begin_mjd is None or self.begin_mjd <= mjd)
                and (self.end_mjd is None or mjd < self.end_mjd))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Timespan):
            return NotImplemented
        return (self.begin_mjd, self.end_mjd) == (other.begin_mjd, other.end_mjd)

    def __hash__(self) -> int:
        return hash((self.begin_mjd, self.end_mjd))

    def __repr__(self) -> str:
        def show(t: Time | None) -> str:
            return "None" if t is None else t.tai.isot
        return f"Timespan(begin={show(self.begin)}, end={show(self.end)}) TAI"


def _as_time(value: Any, what: str) -> Time | None:
    if value is None or isinstance(value, Time):
        if isinstance(value, Time) and not value.isscalar:
            raise ValueError(f"timespan {what} must be a single time, not an array")
        return value
    raise TypeError(f"timespan {what} must be an astropy Time or None, not {type(value).__name__}")


class DatasetRef:
    """A reference to one dataset: type, data ID, publisher DID and access URL.

    ``id`` is the ObsCore ``obs_publisher_did`` (the ID DataLink and SODA take).
    """

    __slots__ = ("datasetType", "dataId", "id", "access_url", "access_format", "timespan", "run")

    def __init__(self, datasetType: DatasetType | str, dataId: Mapping[str, Any], id: str | None = None,  # noqa: A002,N803
                 access_url: str | None = None, access_format: str | None = None,
                 timespan: Timespan | None = None, run: str | None = None) -> None:
        self.datasetType = dataset_type(datasetType)
        if "instrument" not in dataId:  # the archive has one instrument
            dataId = DataId(dataId, instrument=INSTRUMENT)
        self.dataId = dataId if isinstance(dataId, DataId) else DataId(dataId)
        for key in self.datasetType.dimensions.required:
            if key not in self.dataId:
                raise ValueError(f"data ID {self.dataId!r} lacks required dimension {key!r}")
        self.id = id or image_id(self.dataId["visit"], self.dataId["detector"])
        self.access_url = access_url
        self.access_format = access_format
        self.timespan = timespan
        self.run = run

    @property
    def visit(self) -> int:
        return int(self.dataId["visit"])

    @property
    def detector(self) -> int:
        return int(self.dataId["detector"])

    @classmethod
    def from_row(cls, row: Any) -> DatasetRef:
        """A reference from one ObsCore row of a TAP or SIA 2.0 result.

        Accepts an astropy ``Table`` row, a pyvo record (``SIA2Record``, ``TAPRecord``) or a
        plain mapping; only ``lsst_visit`` and ``lsst_detector`` are required.
        """
        get = _row_getter(row)
        visit, detector = get("lsst_visit"), get("lsst_detector")
        if visit is None or detector is None:
            raise ValueError("an ObsCore row needs lsst_visit and lsst_detector to become a DatasetRef")
        visit, detector = int(visit), int(detector)
        band = get("lsst_band")
        physical_filter = get("lsst_filter")
        day_obs = get("lsst_day_obs")
        subtype = get("dataproduct_subtype")
        type_name = subtype.split(".", 1)[1] if isinstance(subtype, str) and subtype.startswith("lsst.") \
            else DIFFERENCE_IMAGE.name
        t_min, t_max = get("t_min"), get("t_max")
        data_id = DataId(instrument=get("instrument_name") or INSTRUMENT, detector=detector, visit=visit,
                         band=band, day_obs=int(day_obs) if day_obs is not None else day_obs_of_visit(visit),
                         physical_filter=physical_filter)
        return cls(type_name, data_id, id=get("obs_publisher_did") or image_id(visit, detector),
                   access_url=get("access_url"), access_format=get("access_format"),
                   timespan=Timespan.from_mjd(t_min, t_max) if t_min is not None and t_max is not None else None,
                   run=get("obs_collection"))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DatasetRef):
            return NotImplemented
        return (self.datasetType, self.id) == (other.datasetType, other.id)

    def __hash__(self) -> int:
        return hash((self.datasetType.name, self.id))

    def __repr__(self) -> str:
        run = f", run={self.run!r}" if self.run else ""
        return f"DatasetRef({self.datasetType!r}, {self.dataId!r}{run}, id={self.id})"


def _row_getter(row: Any):
    """A ``get(name)`` over any row kind, turning masked/empty/NaN cells into None."""
    if hasattr(row, "colnames"):  # astropy Row
        names = set(row.colnames)
    elif hasattr(row, "keys"):  # pyvo Record, dict
        names = set(row.keys())
    else:
        raise TypeError(f"cannot read ObsCore columns from a {type(row).__name__}")

    def get(name: str) -> Any:
        if name not in names:
            return None
        return _plain(row[name])
    return get


def _plain(value: Any) -> Any:
    if value is None or value is np.ma.masked:
        return None
    if hasattr(value, "item") and getattr(value, "shape", None) == ():  # numpy scalar / 0-d
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, str):
        return value or None
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral) and math.isnan(value):
        return None
    return value
