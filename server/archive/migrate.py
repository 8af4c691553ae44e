"""``diavo migrate DIR``: bring an archive written by an older diavo up to the current format.

Format 2 → 3 adds the spatial tables as HATS catalogs under ``DIR/hats`` (written from the
catalog's own copies, so the answers stay the same) and records the new format; the catalog,
images and job store are not touched. The manifest is rewritten last: an interrupted migration
leaves a format-2 archive that can be migrated again.
"""
from __future__ import annotations

import json
from pathlib import Path

from diavo.server.archive import store


def migrate(root: Path) -> str:
    """Migrate the archive at ``root`` in place; returns what was done, in one line."""
    path = Path(root) / store.MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"no archive in {root} (missing {store.MANIFEST})")
    data = json.loads(path.read_text())
    version = data.get("format_version")
    if version == store.FORMAT_VERSION:
        return f"{root} is already archive format {store.FORMAT_VERSION}"
    if version != 2:
        raise store.ArchiveFormatError(f"{root} holds archive format {version}; only format 2 migrates "
                                       f"to {store.FORMAT_VERSION} (rebuild it with 'diavo demo build')")
    from diavo.server.archive.hats_export import export_hats

    written = export_hats(Path(root), store.own_hats_dir(Path(root)))
    data["format_version"] = store.FORMAT_VERSION
    store.Manifest(**data).write(Path(root))
    tables = ", ".join(sorted(written)) or "no spatial rows"
    return f"{root}: archive format 2 → {store.FORMAT_VERSION} (HATS catalogs: {tables})"
