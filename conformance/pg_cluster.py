"""A private PostgreSQL cluster for the tests: initdb in a temporary directory, a loopback port
and a socket there, pgSphere installed, stopped (and its files removed with the directory) at
the end.

Two roles: ``diavo_admin`` (the cluster's superuser, trusted on the socket only) loads the
archives; ``diavo_reader`` logs in over TCP with a password (scram-sha-256), given to libpq in
PGPASSWORD, never in a URL, and may only read what ``diavo load-pg --reader`` granted it.

PostgreSQL refuses to run as root: under root (CI) the cluster runs as the ``postgres`` account
Debian's package creates.
"""
from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

ADMIN = "diavo_admin"
READER = "diavo_reader"
READER_PASSWORD = "reader-secret"  # a throwaway cluster's; travels only in PGPASSWORD


def find_bindir() -> Path | None:
    """The directory of initdb/pg_ctl/postgres (Debian keeps them off PATH)."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(candidates[-1]).parent if candidates else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    def __init__(self, workdir: Path, bindir: Path) -> None:
        self.bindir = bindir
        self._own_dir = os.geteuid() == 0
        if self._own_dir:  # pytest's directories are root's alone: a directory postgres can enter
            workdir = Path(tempfile.mkdtemp(prefix="diavo-pg-"))
        self.workdir = Path(workdir)
        self.data = self.workdir / "data"
        self.socket_dir = self.workdir
        self.port = free_port()
        self._user = None
        if os.geteuid() == 0:
            self._user = pwd.getpwnam("postgres")
            os.chown(self.workdir, self._user.pw_uid, self._user.pw_gid)

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self._user is not None:
            cmd = ["runuser", "-u", self._user.pw_name, "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=self.workdir, check=False)
        if done.returncode:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
        return done

    def start(self) -> PgCluster:
        self._run("initdb", "-D", str(self.data), "-U", ADMIN, "-A", "trust", "--auth-host=scram-sha-256",
                  "-E", "UTF8", "--locale=C.UTF-8")
        hba = self.data / "pg_hba.conf"
        # the socket trusts the superuser only; everyone else authenticates over loopback TCP
        lines = [ln for ln in hba.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        kept = [ln for ln in lines if not ln.startswith("local")]
        hba.write_text("\n".join([f"local all {ADMIN} trust", *kept]) + "\n")
        options = (f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c max_connections=60 -c shared_buffers=64MB")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.workdir / "server.log"),
                  "-w", "-t", "120", "start")
        with self.admin("postgres") as conn:
            conn.execute(f"CREATE ROLE {READER} LOGIN PASSWORD '{READER_PASSWORD}'")
        return self

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def admin_url(self, db: str) -> str:
        return f"postgresql://{ADMIN}@/{db}?host={self.socket_dir}&port={self.port}"

    def reader_url(self, db: str) -> str:
        return f"postgresql://{READER}@127.0.0.1:{self.port}/{db}"

    def admin(self, db: str):
        import psycopg

        return psycopg.connect(self.admin_url(db), autocommit=True)

    def create_database(self, db: str) -> str:
        """A new database with pgSphere; the reader's URL."""
        with self.admin("postgres") as conn:
            conn.execute(f'CREATE DATABASE "{db}"')
        with self.admin(db) as conn:
            install_pgsphere(conn)
        return self.reader_url(db)


def install_pgsphere(conn) -> None:
    """CREATE EXTENSION pg_sphere; where the installed script defines the two obsolete
    ``@(bigint|spoint, smoc)`` operators that PostgreSQL 15.8 and later refuse (pgSphere dropped
    them upstream; Debian bookworm's package still has them), run the installed script without
    those two statements instead."""
    import psycopg

    try:
        conn.execute("CREATE EXTENSION pg_sphere")
        return
    except (psycopg.errors.InvalidObjectDefinition, psycopg.errors.InvalidFunctionDefinition) as exc:
        if "commutator" not in str(exc):
            raise
    (version,) = conn.execute("SHOW server_version_num").fetchone()
    extension = Path(f"/usr/share/postgresql/{int(version) // 10000}/extension")
    control = (extension / "pg_sphere.control").read_text()
    default = re.search(r"default_version\s*=\s*'([^']+)'", control)
    if default is None:
        raise RuntimeError(f"no default_version in {extension / 'pg_sphere.control'}")
    text = (extension / f"pg_sphere--{default.group(1)}.sql").read_text()
    text = "\n".join(ln for ln in text.splitlines() if not ln.startswith("\\echo"))
    text = text.replace("MODULE_PATHNAME", "$libdir/pg_sphere")
    for block in re.findall(r"CREATE OPERATOR @ \([^;]*?\);", text):
        if re.search(r"RIGHTARG\s*=\s*smoc", block):
            text = text.replace(block, "")
    conn.execute(text)
