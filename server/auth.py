"""Optional bearer-token authentication (an ASGI middleware).

With no tokens configured every request is anonymous. With tokens, protocol resources need
``Authorization: Bearer <token>`` and the request's owner (``request.state.owner``) is the name
the operator gave that token; service metadata stays public, as VOSI asks.
"""
from __future__ import annotations

import hmac

from diavo.server.output.votable import error_votable
from diavo.server.settings import Settings

#: Paths anyone may read even when tokens are required (VOSI metadata and the human pages).
PUBLIC = ("/tap/availability", "/tap/capabilities", "/tap/tables", "/tap/examples",
          "/sia/availability", "/sia/capabilities", "/soda/availability", "/soda/capabilities",
          "/ui/static/", "/ui/vendor/", "/ui/check")
PUBLIC_EXACT = ("/", "/tap", "/tap/", "/favicon.ico")


def _owner(token: str | None, settings: Settings) -> str | None:
    if not token:
        return None
    for known, owner in settings.tokens.items():
        if hmac.compare_digest(known.encode(), token.encode()):
            return owner
    return None


class TokenAuth:
    def __init__(self, app, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        token = None
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                kind, _, rest = value.decode("latin-1").partition(" ")
                if kind.lower() == "bearer":
                    token = rest.strip()
        owner = _owner(token, self.settings) if self.settings.auth_required else None
        scope.setdefault("state", {})["owner"] = owner
        path = scope.get("path", "")
        public = path in PUBLIC_EXACT or path.startswith(PUBLIC)
        if self.settings.auth_required and owner is None and not public:
            why = "a bearer token is required" if token is None else "the bearer token is not valid"
            body = error_votable(f"authentication failed: {why} (send 'Authorization: Bearer <token>')")
            await send({"type": "http.response.start", "status": 401, "headers": [
                (b"content-type", b"application/x-votable+xml"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b'Bearer realm="diavo"'),
            ]})
            await send({"type": "http.response.body", "body": body})
            return
        return await self.app(scope, receive, send)
