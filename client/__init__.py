"""diavo client: Butler-style access to a diavo (or Rubin-like) TAP/SIA service, built on pyvo.

``Archive`` finds datasets and fetches them; ``get_tap_service("tap")`` is the notebook helper.
The exposure, geometry and display names load on first use, so ``import diavo.client`` stays
light (matplotlib is only needed by ``display``).
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

from .archive import Archive, ArchiveError, Endpoints
from .query import QueryExpressionError
from .refs import DataId, DatasetRef, DatasetType, MissingDatasetTypeError, Timespan
from .rsp import get_archive, get_tap_service

#: Names served lazily from other modules of the client (loaded on first access).
_LAZY = {
    "Exposure": "exposure",
    "SpherePoint": "geom",
    "Point2D": "geom",
    "Point2I": "geom",
    "Box2I": "geom",
    "Extent2I": "geom",
    "Angle": "geom",
    "degrees": "geom",
    "radians": "geom",
    "arcminutes": "geom",
    "arcseconds": "geom",
    "display": "display",
    "Display": "display",
}

__all__ = ["Archive", "ArchiveError", "DataId", "DatasetRef", "DatasetType", "Endpoints",
           "MissingDatasetTypeError", "QueryExpressionError", "Timespan", "get_archive",
           "get_tap_service", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        value = getattr(import_module(f".{module}", __name__), name)
    except (ModuleNotFoundError, AttributeError) as exc:
        if isinstance(exc, ModuleNotFoundError) and exc.name != f"{__name__}.{module}":
            raise
        raise AttributeError(f"{__name__}.{name} is not available ({exc})") from exc
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
