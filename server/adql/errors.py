"""The one error type of the ADQL front end and translator."""

from __future__ import annotations

__all__ = ["ADQLError"]


class ADQLError(ValueError):
    """A query that is not valid ADQL, or not valid against the data model.

    ``line`` and ``column`` are 1-based and point at the offending spot (0 when unknown); ``hint``
    says how to fix it, e.g. the closest existing names; ``code`` classifies the error:
    ``syntax``, ``unknown-schema``, ``unknown-table``, ``unknown-column``, ``ambiguous-column``,
    ``unknown-function``, ``arguments``, ``type``, ``unit``, ``unsupported`` or ``limit``.
    """

    def __init__(self, message: str, line: int = 0, column: int = 0, hint: str | None = None,
                 code: str = "syntax") -> None:
        self.message = message
        self.line = line
        self.column = column
        self.hint = hint
        self.code = code
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"line {self.line}, column {self.column}: {self.message}" if self.line else self.message
        if self.hint:
            text += f" ({self.hint})"
        return text

    def __reduce__(self):  # keep the fields through pickling (worker processes)
        return (type(self), (self.message, self.line, self.column, self.hint, self.code))
