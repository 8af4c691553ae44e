"""Image access for the HTTP layer: identifiers, exact file sizes, cached renders, cut-outs, previews.

One ImageService per app, built on first use by the protocol layer. It opens the archive with
``store.connect(root, read_only=True)`` (one DuckDB configuration per process) and gives every
worker thread its own cursor, so the blocking work can run in Starlette's thread pool. A served
archive is read-only, so its image table is read once and kept.

Synthetic images are drawn on demand (about a second for a whole CCD). The FITS bytes of recently
used whole images, their previews and headers sit in one LRU bounded by total bytes, so HTTP
Range requests, previews and cut-outs of an image just fetched do not draw it again; concurrent
requests for the same image wait for one render. A cut-out of an image not in the cache draws
only the tiles it covers.

Identifiers are parsed by ``shared.ids.parse_image_id`` (two integers) and must be exactly the
archive's canonical form; nothing a client sends ever becomes part of a file path.
"""
from __future__ import annotations

import contextlib
import io
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diavo.server.archive import store
from diavo.server.archive.images.access import ImageNotFound, ImageStore, object_cards
from diavo.server.archive.images.fitsio import (
    ExposureWriter,
    exposure_hdulist,
    exposure_headers,
    padded,
    pixel_views,
    primary_cards,
)
from diavo.server.archive.images.preview import render_png
from diavo.server.archive.images.spec import ImageSpec
from diavo.server.archive.images.synth import Planes, SourceList
from diavo.shared.ids import image_id, parse_image_id
from diavo.shared.masks import MASK_PLANES

__all__ = ["ImageService", "ImageInfo", "ImageNotFound", "BadIdentifier", "ByteCache",
           "DEFAULT_CACHE_BYTES", "FITS_TYPE"]

#: Bytes of rendered FITS files, previews and headers kept (one whole synthetic CCD is ~195 MB).
DEFAULT_CACHE_BYTES = 256 * 2**20
#: Whole-CCD renders allowed at once: each briefly needs ~3x the file size in memory.
RENDER_SLOTS = 1
#: Images whose DiaSource lists are kept (a few hundred sources each).
SOURCE_CACHE_ENTRIES = 512
#: Images whose cut-out header templates are kept (~25 kB each; ~25 ms to build one).
WRITER_CACHE_ENTRIES = 256
FITS_TYPE = "application/fits"
#: Bytes per pixel of IMAGE (float32), MASK (int32) and VARIANCE (float32).
PLANE_BYTES = (4, 4, 4)


class BadIdentifier(ValueError):
    """The text is not a dataset identifier of this service at all (a usage error)."""


@dataclass(frozen=True, eq=False)
class ImageInfo:
    """What the HTTP layer needs to know about one image without touching its pixels."""

    visit: int
    detector: int
    kind: str               # "synthetic" (drawn on demand) or "fits" (a file in the archive)
    path: Path | None       # the file, for kind "fits"
    field: str | None
    spec: ImageSpec
    record: dict

    @property
    def ident(self) -> str:
        return image_id(self.visit, self.detector)

    @property
    def width(self) -> int:
        return int(self.spec.width)

    @property
    def height(self) -> int:
        return int(self.spec.height)


class _Pending:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


def _nbytes(value: Any) -> int:
    return memoryview(value).nbytes


class ByteCache:
    """LRU of bytes-like values bounded by their total size; one producer per missing key."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._size = 0
        self._pending: dict[Hashable, _Pending] = {}
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        return self._size

    def peek(self, key: Hashable) -> Any | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """The cached value, or ``make()``'s (concurrent callers for one key share one call)."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            pending = self._pending.get(key)
            owner = pending is None
            if owner:
                pending = self._pending[key] = _Pending()
        assert pending is not None
        if not owner:
            pending.event.wait()
            if pending.error is not None:
                raise pending.error
            return pending.value
        try:
            pending.value = make()
            self._put(key, pending.value)
            return pending.value
        except BaseException as exc:
            pending.error = exc
            raise
        finally:
            with self._lock:
                self._pending.pop(key, None)
            pending.event.set()

    def _put(self, key: Hashable, value: Any) -> None:
        size = _nbytes(value)
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._size -= _nbytes(old)
            self._items[key] = value
            self._size += size
            while self._size > self.max_bytes and self._items:
                _, dropped = self._items.popitem(last=False)
                self._size -= _nbytes(dropped)


class ImageService:
    def __init__(self, root: Path, cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.root = Path(root)
        self._con = store.connect(self.root, read_only=True)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._cursors: list = []
        self._records: dict[tuple[int, int], dict] | None = None
        self._infos: dict[tuple[int, int], ImageInfo] = {}
        self._sizes: dict[tuple[int, int], int] = {}
        self._layouts: dict[tuple, int] = {}
        self._sources: OrderedDict[tuple[int, int], SourceList] = OrderedDict()
        self._writers: OrderedDict[tuple[int, int], ExposureWriter] = OrderedDict()
        self._render_slots = threading.BoundedSemaphore(RENDER_SLOTS)
        self.cache = ByteCache(cache_bytes)
        catalog = self.root / store.CATALOG
        self._catalog_mtime = catalog.stat().st_mtime
        self._stamp = f"{catalog.stat().st_mtime_ns:x}-{_software()}"

    # -- plumbing ------------------------------------------------------------------------------
    def _store(self) -> ImageStore:
        """This thread's ImageStore, over its own DuckDB cursor."""
        st = getattr(self._local, "store", None)
        if st is None:
            with self._lock:
                cursor = self._con.cursor()
                self._cursors.append(cursor)
            st = self._local.store = ImageStore(self.root, con=cursor)
        return st

    def _all_records(self) -> dict[tuple[int, int], dict]:
        recs = self._records
        if recs is None:
            rows = self._store().records()
            with self._lock:
                if self._records is None:
                    self._records = {(int(r["visit"]), int(r["detector"])): r for r in rows}
                recs = self._records
        return recs

    def close(self) -> None:
        with self._lock:
            for cursor in self._cursors:
                with contextlib.suppress(Exception):  # closing is best effort
                    cursor.close()
            self._cursors.clear()
        self._con.close()

    # -- identifiers and metadata -----------------------------------------------------------------
    def info(self, visit: int, detector: int) -> ImageInfo:
        key = (int(visit), int(detector))
        found = self._infos.get(key)
        if found is not None:
            return found
        row = self._all_records().get(key)
        if row is None:
            raise ImageNotFound(f"no difference image for visit {key[0]}, detector {key[1]}")
        # The path is archive metadata written by ``diavo ingest`` (relative to the root, or
        # absolute for --link), never client text.
        path = self.root / str(row["path"]) if row["kind"] == "fits" else None
        found = ImageInfo(visit=key[0], detector=key[1], kind=str(row["kind"]), path=path,
                          field=row.get("field"), spec=ImageSpec.from_record(row), record=row)
        self._infos[key] = found
        return found

    def resolve(self, ident: str) -> ImageInfo:
        """The image an identifier names. BadIdentifier if it is not one of ours at all,
        ImageNotFound if it is well formed but names no image of this archive."""
        try:
            visit, detector = parse_image_id(ident)
        except ValueError:
            raise BadIdentifier("not a difference-image identifier of this service "
                                f"(expected {image_id(0, 0).rsplit('/', 2)[0]}/VISIT/DETECTOR)") from None
        if image_id(visit, detector) != ident:
            raise ImageNotFound("no dataset with this identifier")
        return self.info(visit, detector)

    def fits_size(self, info: ImageInfo) -> int:
        """Exact byte length of the whole-image FITS file, without drawing it."""
        key = (info.visit, info.detector)
        size = self._sizes.get(key)
        if size is not None:
            return size
        if info.kind == "fits":
            assert info.path is not None
            size = info.path.stat().st_size
        else:
            extra = object_cards(info.field)
            cards = primary_cards(info.spec) + extra
            # Header length depends only on the card layout, never on numeric values.
            sig = (info.width, info.height) + tuple(
                (k, type(v).__name__, len(v) if isinstance(v, str) else 0) for k, v, _ in cards)
            head = self._layouts.get(sig)
            if head is None:
                headers = exposure_headers(info.spec, info.width, info.height, extra_cards=extra)
                head = self._layouts[sig] = sum(len(h.tostring()) for h in headers)
            size = head + sum(padded(info.width * info.height * b) for b in PLANE_BYTES)
        self._sizes[key] = size
        return size

    def validators(self, info: ImageInfo) -> tuple[str, float]:
        """(strong ETag, modification time) of the whole-image file."""
        if info.kind == "fits":
            assert info.path is not None
            st = info.path.stat()
            return f'"f-{info.visit}-{info.detector}-{st.st_mtime_ns:x}-{st.st_size:x}"', st.st_mtime
        return f'"s-{info.visit}-{info.detector}-{self._stamp}"', self._catalog_mtime

    def _memo(self, table: OrderedDict, limit: int, key, make: Callable[[], Any]) -> Any:
        """A small LRU by entry count (a rare duplicate build under a race is harmless)."""
        with self._lock:
            found = table.get(key)
            if found is not None:
                table.move_to_end(key)
                return found
        found = make()
        with self._lock:
            table[key] = found
            while len(table) > limit:
                table.popitem(last=False)
        return found

    def sources(self, info: ImageInfo) -> SourceList:
        return self._memo(self._sources, SOURCE_CACHE_ENTRIES, (info.visit, info.detector),
                          lambda: self._store().sources(info.visit, info.detector, info.spec))

    def _writer(self, info: ImageInfo) -> ExposureWriter:
        return self._memo(self._writers, WRITER_CACHE_ENTRIES, (info.visit, info.detector),
                          lambda: ExposureWriter(info.spec, object_cards(info.field)))

    # -- pixels -----------------------------------------------------------------------------------
    def full_fits(self, info: ImageInfo):
        """The whole synthetic image as FITS bytes (bytes-like), drawn at most once while cached."""
        if info.kind == "fits":
            raise ValueError("file-backed images are served from their file")
        return self.cache.get(("fits", info.visit, info.detector), lambda: self._render_full(info))

    def _render_full(self, info: ImageInfo):
        with self._render_slots:
            spec, planes = self._store().planes(info.visit, info.detector, record=info.record,
                                                sources=self.sources(info))
            hdul = exposure_hdulist(spec, planes, extra_cards=object_cards(info.field))
            del planes  # the HDUs hold big-endian copies; let the native-order planes go
            buf = io.BytesIO()
            hdul.writeto(buf, output_verify="silentfix")
            del hdul
            return buf.getbuffer()

    def _cached_planes(self, info: ImageInfo, box=None) -> Planes | None:
        """Planes sliced from the cached whole-image FITS, if it is cached (no drawing)."""
        if info.kind == "fits":
            return None
        buf = self.cache.peek(("fits", info.visit, info.detector))
        if buf is None:
            return None
        views = pixel_views(buf)
        x0, y0, x1, y1 = box or (0, 0, info.width, info.height)
        sl = (slice(y0, y1), slice(x0, x1))
        return Planes(image=views["IMAGE"][sl], mask=views["MASK"][sl], variance=views["VARIANCE"][sl],
                      x0=x0, y0=y0)

    def cutout(self, info: ImageInfo, box: tuple[int, int, int, int]) -> bytes:
        """FITS bytes of the three planes over ``box`` = (x0, y0, x1, y1), half-open parent pixels
        already clipped to the CCD, with the WCS and LTV/'A' cards of the cut-out."""
        planes = self._cached_planes(info, box)
        if planes is None:
            sources = None if info.kind == "fits" else self.sources(info)
            _, planes = self._store().planes(info.visit, info.detector, box, record=info.record,
                                             sources=sources)
        return self._writer(info).bytes(planes)

    def header_text(self, info: ImageInfo) -> bytes:
        """Every HDU header of the whole-image file as text, one 80-character card a line."""
        def make() -> bytes:
            if info.kind == "fits":
                from astropy.io import fits

                with fits.open(info.path, lazy_load_hdus=True, memmap=True) as hdul:
                    headers = [hdu.header for hdu in hdul]
                    text = [h.tostring(sep="\n", endcard=True, padding=False) for h in headers]
            else:
                headers = exposure_headers(info.spec, info.width, info.height,
                                           extra_cards=object_cards(info.field))
                text = [h.tostring(sep="\n", endcard=True, padding=False) for h in headers]
            return ("\n".join(text) + "\n").encode("ascii", "replace")
        return self.cache.get(("header", info.visit, info.detector), make)

    def preview(self, info: ImageInfo, *, stretch: str, mask_names: tuple[str, ...] = (),
                show_sources: bool = False, size: int = 1024) -> bytes:
        """A PNG preview (see images.preview.render_png); cached like the FITS bytes."""
        key = ("png", info.visit, info.detector, stretch, tuple(mask_names), bool(show_sources), int(size))

        def make() -> bytes:
            if info.kind == "fits":
                _, planes = self._store().planes(info.visit, info.detector, record=info.record)
            else:
                self.full_fits(info)
                cached = self._cached_planes(info)
                if cached is not None:
                    planes = cached
                else:  # evicted at once (cache smaller than one image): draw it
                    _, planes = self._store().planes(info.visit, info.detector, record=info.record,
                                                     sources=self.sources(info))
            srcs = self.sources(info) if show_sources else None
            return render_png(planes.image, planes.mask, kind=stretch, mask_names=mask_names,
                              planes=MASK_PLANES, sources=srcs, size=size)
        return self.cache.get(key, make)


def _software() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("diavo")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "dev"
