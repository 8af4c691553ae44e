"""DALI request parameters: names case-insensitive, values kept exactly, GET and POST alike.

One ``Params`` comes from the query string plus an urlencoded or multipart body; multipart file
parts (TAP inline uploads, referenced as ``param:NAME``) are kept apart in ``files``, by their
part name exactly as sent. Blank values are kept: ``RUNID=`` is a value, not an absence.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from starlette.datastructures import UploadFile
from starlette.requests import Request

from diavo.server.errors import TooLarge, UsageFault


@dataclass
class Params:
    #: (NAME upper-cased, value) in the order received.
    pairs: list[tuple[str, str]] = field(default_factory=list)
    #: Multipart file parts: part name -> bytes.
    files: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, str]], files: dict[str, bytes] | None = None) -> Params:
        return cls([(k.upper(), v) for k, v in pairs], dict(files or {}))

    def getall(self, name: str) -> list[str]:
        key = name.upper()
        return [v for k, v in self.pairs if k == key]

    def get(self, name: str, default: str | None = None) -> str | None:
        """The single value of ``name``; more than one is a usage error (DALI 3.2)."""
        values = self.getall(name)
        if len(values) > 1 and len(set(values)) > 1:
            raise UsageFault(f"parameter {name.upper()} given more than once")
        return values[0] if values else default

    def __contains__(self, name: str) -> bool:
        return any(k == name.upper() for k, _ in self.pairs)

    def names(self) -> list[str]:
        return list(dict.fromkeys(k for k, _ in self.pairs))

    def without(self, *names: str) -> Params:
        drop = {n.upper() for n in names}
        return Params([(k, v) for k, v in self.pairs if k not in drop], dict(self.files))

    def merged(self, other: Params) -> Params:
        """Parameters of ``other`` replace same-named ones here (UWS parameter updates)."""
        replaced = set(other.names())
        kept = [(k, v) for k, v in self.pairs if k not in replaced]
        return Params(kept + list(other.pairs), {**self.files, **other.files})


async def read_params(request: Request, max_bytes: int) -> Params:
    """All parameters of a request: query string, then the body if it is a form."""
    pairs = list(request.query_params.multi_items())
    files: dict[str, bytes] = {}
    if request.method in ("POST", "PUT"):
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > max_bytes:
            raise TooLarge(f"request body of {int(length)} bytes exceeds the limit of {max_bytes} bytes")
        if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            try:
                form = await request.form(max_files=64, max_fields=1000, max_part_size=max_bytes)
            except TooLarge:
                raise
            except Exception as exc:  # malformed body: the client's fault, say what failed
                raise UsageFault(f"could not read the form body: {exc}") from None
            total = 0
            try:
                for key, value in form.multi_items():
                    if isinstance(value, UploadFile):
                        data = await value.read()
                        total += len(data)
                        if total > max_bytes:
                            raise TooLarge(f"uploaded files exceed the limit of {max_bytes} bytes")
                        files[key] = data
                        # A file part is also a parameter value for forms that send plain
                        # parameters as files (curl -F name=@file): keep the name visible.
                        if value.filename is None:
                            pairs.append((key, data.decode("utf-8", "replace")))
                    else:
                        pairs.append((key, value))
            finally:
                await form.close()
        elif ctype in ("", "text/plain") and request.method == "POST":
            body = await request.body()
            if body.strip():
                raise UsageFault("POST parameters must be sent as application/x-www-form-urlencoded "
                                 "or multipart/form-data")
    return Params.of(pairs, files)


#: Digits an integer parameter may have: 18 fit in a signed 64-bit integer, and no parameter of
#: this service means anything beyond that (Python's int() itself refuses 4,300 digits with an
#: error that must never reach a client as a 500).
MAX_INTEGER_DIGITS = 18


def integer(name: str, value: str, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` as a decimal integer in [low, high]; anything else is a UsageFault naming ``name``."""
    text = value.strip()
    digits = text.lstrip("+-")
    if not digits.isascii() or not digits.isdigit() or text[:1] in "+-" and len(text) - len(digits) > 1:
        raise UsageFault(f"{name} must be an integer, not {value[:40]!r}")
    if len(digits.lstrip("0")) > MAX_INTEGER_DIGITS:
        raise UsageFault(f"{name} is out of range: {len(digits)} digits (at most {MAX_INTEGER_DIGITS})")
    number = int(text)
    if (low is not None and number < low) or (high is not None and number > high):
        span = (f"between {low} and {high}" if low is not None and high is not None
                else f"at least {low}" if low is not None else f"at most {high}")
        raise UsageFault(f"{name} must be an integer {span}, not {number}")
    return number
