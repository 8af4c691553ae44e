"""``get_tap_service("tap")`` the way Rubin notebooks call it, pointed at a diavo server.

Where the service is and which token to send come from the arguments or the environment:

* ``DIAVO_URL`` — the diavo service's base URL (``http://host:8000``; a URL ending in ``/tap``
  is taken as the TAP endpoint itself), with ``DIAVO_TOKEN`` as its bearer token;
* otherwise ``EXTERNAL_TAP_URL`` — the TAP endpoint, the variable Rubin's ``lsst.rsp`` reads —
  with ``ACCESS_TOKEN``, the token variable ``lsst.rsp`` reads.

A token from the environment is only sent to the URL from the same place in the environment,
never to a URL passed as an argument, so a Rubin token cannot leak to another host.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests
import requests.auth

if TYPE_CHECKING:
    import pyvo

    from .archive import Archive

__all__ = ["BearerAuth", "bearer_session", "get_tap_service", "get_archive", "service_from_env", "tap_url_of"]


def _user_agent() -> str:
    try:
        ours = version("diavo")
    except PackageNotFoundError:
        ours = "0"
    return f"diavo-client/{ours} python-requests/{requests.__version__}"


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


class BearerAuth(requests.auth.AuthBase):
    """Adds ``Authorization: Bearer`` to requests for the service's origin only.

    A DataLink document may point anywhere; the token must not follow it to another host.
    """

    def __init__(self, token: str, origins: Iterable[str] | None = None) -> None:
        self._header = f"Bearer {token}"
        self._origins = None if origins is None else {_origin(u) for u in origins}

    def allow(self, url: str) -> None:
        """Also send the token to ``url``'s origin (an endpoint the service itself declared)."""
        if self._origins is not None:
            self._origins.add(_origin(url))

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if self._origins is None or _origin(request.url or "") in self._origins:
            request.headers["Authorization"] = self._header
        return request


def bearer_session(token: str | None = None, url: str | None = None) -> requests.Session:
    """A requests session sending ``Authorization: Bearer <token>`` (when given).

    With ``url`` the token goes only to that URL's scheme, host and port (the service), on
    every request there; pass the session as ``session=`` to any pyvo service.
    """
    session = requests.Session()
    session.headers["User-Agent"] = _user_agent()
    if token:
        token = token.strip()
        if not token or any(c in token for c in "\r\n"):
            raise ValueError("a bearer token must be one non-empty line")
        session.auth = BearerAuth(token, None if url is None else [url])
    return session


def service_from_env(env: Mapping[str, str] | None = None) -> tuple[str, str | None] | None:
    """(URL, token) from DIAVO_URL/DIAVO_TOKEN, else EXTERNAL_TAP_URL/ACCESS_TOKEN, else None."""
    env = os.environ if env is None else env
    if env.get("DIAVO_URL", "").strip():
        return env["DIAVO_URL"].strip(), env.get("DIAVO_TOKEN", "").strip() or None
    if env.get("EXTERNAL_TAP_URL", "").strip():
        return env["EXTERNAL_TAP_URL"].strip(), env.get("ACCESS_TOKEN", "").strip() or None
    return None


def tap_url_of(url: str) -> str:
    """The TAP endpoint for a service base URL (unchanged when it already ends in /tap)."""
    url = url.rstrip("/")
    return url if url.endswith("/tap") else url + "/tap"


def _where(url: str | None, token: str | None) -> tuple[str, str | None]:
    if url:
        return url, token
    found = service_from_env()
    if found is None:
        raise RuntimeError("no service URL: pass url=..., or set DIAVO_URL (e.g. http://127.0.0.1:8000 "
                           "for `diavo demo`) or EXTERNAL_TAP_URL")
    env_url, env_token = found
    return env_url, token or env_token


def get_tap_service(database: str = "tap", *, url: str | None = None,
                    token: str | None = None) -> pyvo.dal.TAPService:
    """A pyvo TAPService for the diavo server (``database`` is Rubin's label; only "tap")."""
    import pyvo

    if database != "tap":
        raise ValueError(f"diavo serves one TAP service, 'tap', not {database!r}")
    where, bearer = _where(url, token)
    return pyvo.dal.TAPService(tap_url_of(where), session=bearer_session(bearer, where))


def get_archive(url: str | None = None, token: str | None = None, **kwargs) -> Archive:
    """An Archive for the URL given or found in the environment (see this module's docstring)."""
    from .archive import Archive

    where, bearer = _where(url, token)
    return Archive(where, token=bearer, **kwargs)
