"""A real diavo server in a child process: what the conformance suite and bench_tap.py talk to.

Validators such as STILTS and pyvo see the service exactly as a user would — uvicorn on a TCP
port, the archive on disk, the UWS job store on disk — so nothing here runs in-process.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

#: Longest wait for a fresh server to answer /tap/availability (s); the lifespan opens the archive.
READY_TIMEOUT_S = 60.0


def free_port() -> int:
    """A TCP port nothing listens on right now (the server may still lose a race for it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def diavo_command() -> list[str]:
    """The ``diavo`` command of the interpreter running us (the venv's script when present)."""
    script = Path(sys.executable).parent / "diavo"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "diavo.server.cli"]


def build_small_archive(root: Path, seed: int = 42) -> Path:
    """The small demo archive (~5 s): the data every conformance test queries."""
    from diavo.server.archive.demo.build import build_demo

    build_demo(Path(root), scale="small", seed=seed, progress=False)
    return Path(root)


@dataclass
class ServerProcess:
    """One ``diavo serve`` child process; ``url`` is its base URL (no trailing slash)."""

    archive: Path
    log_path: Path
    state_dir: Path | None = None
    workers: int | None = None
    port: int = 0
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def tap_url(self) -> str:
        return self.url + "/tap"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, attempts: int = 3) -> ServerProcess:
        """Start and wait until /tap/availability answers; retries on a lost port race."""
        last = ""
        for _ in range(attempts):
            self.port = self.port or free_port()
            self._spawn()
            try:
                self._wait_ready()
                return self
            except RuntimeError as exc:
                last = str(exc)
                self.stop()
                if "address already in use" not in last.lower():
                    break
                self.port = 0
        raise RuntimeError(last)

    def _spawn(self) -> None:
        cmd = [*diavo_command(), "serve", str(self.archive), "--host", "127.0.0.1",
               "--port", str(self.port), "--log-level", "info"]
        if self.state_dir is not None:
            cmd += ["--state-dir", str(self.state_dir)]
        if self.workers is not None:
            cmd += ["--workers", str(self.workers)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.extra_env}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n$ {' '.join(cmd)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                         stdin=subprocess.DEVNULL, start_new_session=True)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"diavo serve exited with {self.proc.returncode} before it was "
                                   f"ready; log {self.log_path}:\n{self.log_tail()}")
            try:
                r = requests.get(self.tap_url + "/availability", timeout=2)
                if r.status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"diavo serve did not answer /tap/availability within {READY_TIMEOUT_S:.0f} s; "
                           f"log {self.log_path}:\n{self.log_tail()}")

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (uvicorn's graceful shutdown runs the lifespan's cleanup), SIGKILL if stuck."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout)

    def kill(self) -> None:
        """kill -9: no lifespan shutdown, no flush — what a crash or an OOM kill looks like."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(15)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 200) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def peak_rss_kib(self) -> int | None:
        """VmHWM of the server process (Linux), in KiB."""
        return _status_kib(self.pid, "VmHWM")

    def rss_kib(self) -> int | None:
        return _status_kib(self.pid, "VmRSS")


def _status_kib(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None
