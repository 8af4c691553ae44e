"""The service's faults, one per DALI/UWS outcome, each with the HTTP status it is sent with.

Handlers raise these; one renderer (``app``) turns them into a VOTable error document with
QUERY_STATUS=ERROR, so every endpoint fails the same way.
"""
from __future__ import annotations


class DaliError(Exception):
    status = 400

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class UsageFault(DaliError):
    """The request is wrong: bad parameter, bad ADQL, unsupported format."""

    status = 400


class Unauthorized(DaliError):
    status = 401


class Forbidden(DaliError):
    """Allowed request, wrong moment or wrong owner (UWS: illegal in this phase, another's job)."""

    status = 403


class NotFound(DaliError):
    status = 404


class TooLarge(DaliError):
    status = 413


class TransientFault(DaliError):
    """Try again later: the service is overloaded or a query ran out of time."""

    status = 503


class FatalFault(DaliError):
    status = 500
