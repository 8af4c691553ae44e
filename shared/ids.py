"""Dataset identifiers: the ivo:// URI of a difference image and its (visit, detector).

The URI is opaque to users but parsed by the server; parse_image_id accepts only two integers, so
an identifier can never name a file path.
"""
from __future__ import annotations

import re
from urllib.parse import quote

AUTHORITY = "ivo://diavo.local/dp1"
_ID_RE = re.compile(r"^ivo://[^?#\s]+\?difference_image/(\d{1,15})/(\d{1,4})$")


def image_id(visit: int, detector: int, authority: str = AUTHORITY) -> str:
    return f"{authority}?difference_image/{int(visit)}/{int(detector)}"


def parse_image_id(value: str) -> tuple[int, int]:
    m = _ID_RE.match(value.strip())
    if not m:
        raise ValueError(f"not a diavo difference-image identifier: {value!r}")
    return int(m.group(1)), int(m.group(2))


def datalink_url(base_url: str, ident: str) -> str:
    return f"{base_url.rstrip('/')}/datalink/links?ID={quote(ident, safe='')}"


def day_obs_of_visit(visit: int) -> int:
    """Rubin visit ids are day_obs * 100000 + sequence number."""
    return int(visit) // 100000
