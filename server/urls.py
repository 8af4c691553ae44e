"""Absolute URLs for everything the service writes, correct behind a reverse proxy.

The configured public base URL wins; otherwise the request's own scheme and host, overridden by
X-Forwarded-Proto / X-Forwarded-Host / X-Forwarded-Prefix when a proxy sets them.
"""
from __future__ import annotations

from starlette.requests import Request

from diavo.server.settings import Settings

#: Paths, below the base URL, of the services result documents point to.
DATALINK_LINKS_PATH = "/datalink/links"
SODA_SYNC_PATH = "/soda/sync"


def base_url(request: Request, settings: Settings) -> str:
    """The service root without a trailing slash, e.g. ``https://data.example.org/diavo``."""
    if settings.base_url:
        return settings.base_url.rstrip("/")
    h = request.headers
    scheme = (h.get("x-forwarded-proto") or request.url.scheme).split(",")[0].strip()
    host = (h.get("x-forwarded-host") or h.get("host") or request.url.netloc).split(",")[0].strip()
    prefix = (h.get("x-forwarded-prefix") or request.scope.get("root_path") or "").split(",")[0].strip()
    return f"{scheme}://{host}{prefix.rstrip('/')}"


def tap_url(request: Request, settings: Settings) -> str:
    return base_url(request, settings) + "/tap"
