"""Streaming downloads with an optional progress display and an opt-in on-disk cache.

A whole difference image is ~200 MB, so a notebook should see progress on a slow link and not
download the same file twice when asked to keep it. Progress uses tqdm when it is installed
(it is not a client dependency) and a one-line stderr counter otherwise.
"""
from __future__ import annotations

import hashlib
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import requests

__all__ = ["FileCache", "Progress", "stream_response", "server_message", "ArchiveError"]

#: Downloads at least this large (or of unknown size) show progress in automatic mode.
AUTO_PROGRESS_BYTES = 8 * 1024 * 1024
#: In automatic mode nothing is shown until a download has taken this long (s): fast ones stay quiet.
AUTO_PROGRESS_DELAY_S = 1.0
CHUNK = 1 << 20


class ArchiveError(RuntimeError):
    """The service refused or failed a request; the message is the service's own when it sent one."""

    def __init__(self, message: str, status: int | None = None, url: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.url = url


_QUERY_STATUS = re.compile(rb"<INFO[^>]*name=\"QUERY_STATUS\"[^>]*>(.*?)</INFO>", re.S)


def server_message(response: requests.Response) -> str:
    """The error text of a DALI error document, or the start of whatever body came back."""
    body = response.content[:65536]
    m = _QUERY_STATUS.search(body)
    if m:
        import html

        return html.unescape(m.group(1).decode("utf-8", "replace").strip())
    text = body.decode("utf-8", "replace").strip()
    return text[:300] or response.reason or "no message"


def check(response: requests.Response, what: str) -> None:
    if response.status_code >= 400:
        raise ArchiveError(f"{what} failed with HTTP {response.status_code}: {server_message(response)}",
                           response.status_code, response.url)


class Progress:
    """Counts bytes; draws a tqdm bar or a stderr line once the download is slow or large."""

    def __init__(self, label: str, total: int | None, mode: bool | None) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._bar = None
        self._start = time.monotonic()
        self._last_line = 0.0
        big = total is None or total >= AUTO_PROGRESS_BYTES
        self.enabled = mode is True or (mode is None and big)
        self._delay = 0.0 if mode is True else AUTO_PROGRESS_DELAY_S
        if self.enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                                 desc=label, delay=self._delay, leave=False)

    def update(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self._start >= self._delay and now - self._last_line >= 0.25:
            self._last_line = now
            total = f"/{self.total / 1e6:.1f}" if self.total else ""
            sys.stderr.write(f"\r{self.label}: {self.done / 1e6:.1f}{total} MB")
            sys.stderr.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.enabled and self._last_line:
            sys.stderr.write("\n")
            sys.stderr.flush()


def stream_response(response: requests.Response, out: BinaryIO, label: str,
                    progress: bool | None) -> int:
    """Copy a streamed response body to ``out``; a body shorter than Content-Length is an error."""
    length = response.headers.get("Content-Length")
    total = int(length) if length and length.isdigit() else None
    if response.headers.get("Content-Encoding", "identity") not in ("identity", ""):
        total = None  # the length counts compressed bytes, iter_content yields decoded ones
    bar = Progress(label, total, progress)
    try:
        for chunk in response.iter_content(CHUNK):
            out.write(chunk)
            bar.update(len(chunk))
    finally:
        bar.close()
    if total is not None and bar.done != total:
        raise ArchiveError(f"{label}: download ended after {bar.done} of {total} bytes", url=response.url)
    return bar.done


class FileCache:
    """Downloaded files kept under one directory, one file per dataset ID (opt-in).

    Files are written to a temporary name and renamed into place, so a reader never sees a
    partial file; nothing expires: delete the directory to clear it.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()
        self.root.mkdir(parents=True, exist_ok=True)

    def path_for(self, ident: str, suffix: str = ".fits") -> Path:
        digest = hashlib.sha256(ident.encode("utf-8")).hexdigest()[:24]
        m = re.search(r"difference_image/(\d+)/(\d+)$", ident)
        stem = f"difference_image-{m.group(1)}-{m.group(2)}-{digest}" if m else digest
        return self.root / f"{stem}{suffix}"

    def get(self, ident: str) -> Path | None:
        path = self.path_for(ident)
        return path if path.is_file() else None

    @contextmanager
    def writing(self, ident: str) -> Iterator[BinaryIO]:
        """Yields a file to write; on success it becomes the cached file for ``ident``."""
        final = self.path_for(ident)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".part-", suffix=final.suffix)
        try:
            with os.fdopen(fd, "wb") as fh:
                yield fh
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
