"""The service's faults: one set of classes for every protocol, each with its HTTP status.

Handlers raise these with a plain message; each protocol renders them in its required form from
the same object:

- TAP, UWS, VOSI: a VOTable with QUERY_STATUS=ERROR holding the message (``app``);
- SIA 2.0 §3.2 and DataLink 1.1 §3.4: the same VOTable, the message starting with the DALI fault
  name (``prefixed()``: ``UsageFault: ...``, ``NotFoundFault: ...``);
- SODA 1.0 §5.2: ``text/plain`` starting with SODA's error code (``soda_code``: ``UsageError: ...``).
"""
from __future__ import annotations

#: The DALI fault names a message may already start with.
FAULT_NAMES = ("UsageFault", "TransientFault", "FatalFault", "DefaultFault", "NotFoundFault")


class DaliError(Exception):
    status = 400
    #: The DALI fault name (SIA, DataLink).
    fault = "UsageFault"
    #: SODA's error code when the status alone does not say it.
    soda_error: str | None = None

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    def prefixed(self) -> str:
        """The message as SIA and DataLink send it: starting with the fault's name."""
        if self.message.startswith(FAULT_NAMES):
            return self.message
        fault = self.fault
        if fault == "UsageFault" and self.status >= 500:  # a generic error with a server status
            fault = "TransientFault" if self.status == 503 else "FatalFault"
        return f"{fault}: {self.message}"

    @property
    def soda_code(self) -> str:
        """SODA 1.0 §5.2's error code for this fault."""
        if self.soda_error:
            return self.soda_error
        return {401: "AuthenticationError", 403: "AuthorizationError", 503: "ServiceUnavailable"}.get(
            self.status, "Error" if self.status >= 500 else "UsageError")


class UsageFault(DaliError):
    """The request is wrong: bad parameter, bad ADQL, unsupported format."""

    status = 400


class MultiValuedParam(UsageFault):
    """A parameter given more often than the service takes it."""

    soda_error = "MultiValuedParamNotSupported"


class Unauthorized(DaliError):
    status = 401


class Forbidden(DaliError):
    """Allowed request, wrong moment or wrong owner (UWS: illegal in this phase, another's job)."""

    status = 403


class NotFound(DaliError):
    status = 404
    fault = "NotFoundFault"


class TooLarge(DaliError):
    status = 413


class TransientFault(DaliError):
    """Try again later: the service is overloaded or a query ran out of time."""

    status = 503
    fault = "TransientFault"


class FatalFault(DaliError):
    status = 500
    fault = "FatalFault"
