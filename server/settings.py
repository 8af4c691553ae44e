"""One settings object for the whole service, built once and passed to everything that needs it.

Every field is documented here and in docs/operations.md (a test keeps the two in step). The
command line and ``DIAVO_*`` environment variables fill it; nothing reads the environment later.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    #: The archive directory served (catalog.duckdb, archive.json, images).
    root: Path
    #: Interface and port uvicorn binds to.
    host: str = "127.0.0.1"
    port: int = 8000
    #: Public base URL (scheme://host[:port][/prefix]) written into every URL the service emits.
    #: When unset, URLs come from the request, honouring X-Forwarded-Proto/Host/Prefix.
    base_url: str | None = None
    #: Where UWS job records (jobs.sqlite) and result files live; default <root>/uws.
    state_dir: Path | None = None
    #: MAXREC when the client gives none, and the most rows any query may return.
    maxrec_default: int = 100_000
    maxrec_hard: int = 50_000_000
    #: Execution duration (s) of sync queries, and the default and limit for async jobs.
    sync_timeout_s: int = 300
    exec_default_s: int = 3600
    exec_hard_s: int = 4 * 3600
    #: How long async jobs and their results are kept (s): default and limit of DESTRUCTION.
    retention_default_s: int = 7 * 86400
    retention_hard_s: int = 30 * 86400
    #: Worker threads that run async jobs (sync queries use the server's thread pool).
    workers: int = 2
    #: Longest a UWS WAIT blocks (s), kept below common proxy and client read timeouts.
    wait_max_s: int = 50
    #: Upload limits: bytes per request (all tables together), rows per table, tables per query.
    upload_max_bytes: int = 64 * 1024 * 1024
    upload_max_rows: int = 1_000_000
    upload_max_tables: int = 8
    #: Allow UPLOAD URLs that resolve to loopback, private or link-local addresses.
    allow_private_upload_urls: bool = False
    #: Bearer tokens mapped to owner names; empty means no authentication (anonymous jobs).
    tokens: Mapping[str, str] = field(default_factory=dict)
    #: Put the ADQL text into the per-request log line (off: queries may be private).
    log_queries: bool = False
    #: The engine that runs queries (``engine.ENGINES``): DuckDB, embedded, is the default.
    engine: str = "duckdb"
    #: The Spark master the spark engine connects to: ``spark://HOST:7077`` for a standalone
    #: cluster, ``local[N]`` for N cores of this machine.
    spark_master: str = "local[2]"
    #: Extra Spark settings for the spark engine, ``key=value`` pairs separated by commas
    #: (e.g. ``spark.executor.memory=4g,spark.hadoop.fs.s3a.endpoint=...``).
    spark_conf: str = ""
    #: Where the spatial tables are read: ``native`` (the catalog's own copies, with stored unit
    #: vectors: fastest on DuckDB) or ``hats`` (the archive's HATS catalogs, DIR/hats).
    storage: str = "native"
    #: Read the spatial tables from the HATS catalogs in this directory (``diavo export --hats``)
    #: instead of the catalog's own copies (overrides ``storage``).
    hats_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.storage not in ("native", "hats"):
            raise ValueError(f"storage must be native or hats, not {self.storage!r} (DIAVO_STORAGE, --storage)")

    @property
    def spark_options(self) -> dict[str, str]:
        pairs = [p.split("=", 1) for p in self.spark_conf.split(",") if p.strip()]
        if any(len(p) != 2 for p in pairs):
            raise ValueError(f"spark_conf wants key=value pairs separated by commas, not {self.spark_conf!r}")
        return {k.strip(): v.strip() for k, v in pairs}

    @property
    def hats_source(self) -> Path | None:
        """The directory of HATS catalogs the spatial tables are read from, if any."""
        if self.hats_dir is not None:
            return Path(self.hats_dir)
        if self.storage == "hats":
            from diavo.server.archive.store import own_hats_dir

            return own_hats_dir(self.root)
        return None

    @property
    def jobs_dir(self) -> Path:
        return Path(self.state_dir) if self.state_dir else Path(self.root) / "uws"

    @property
    def auth_required(self) -> bool:
        return bool(self.tokens)

    def clamp_maxrec(self, value: int | None) -> int:
        return self.maxrec_default if value is None else min(value, self.maxrec_hard)


def read_tokens(text: str) -> dict[str, str]:
    """Token lines ``TOKEN [OWNER]``; '#' starts a comment; the owner defaults to the token's
    first 8 characters so two tokens never share jobs by accident."""
    tokens: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        token, *owner = line.split()
        tokens[token] = owner[0] if owner else f"user-{token[:8]}"
    return tokens


_ENV = {f.name: "DIAVO_" + f.name.upper() for f in fields(Settings)}


def from_environment(root: Path, env: Mapping[str, str] | None = None, **overrides) -> Settings:
    """Settings from ``DIAVO_*`` variables, then explicit overrides (the command line) on top.

    Tokens come from ``DIAVO_TOKENS`` (comma- or newline-separated ``TOKEN[:OWNER]``) or the
    file named by ``DIAVO_TOKENS_FILE``.
    """
    env = os.environ if env is None else env
    values: dict = {}
    for f in fields(Settings):
        if f.name in ("root", "tokens"):
            continue
        raw = env.get(_ENV[f.name])
        if raw is None or raw == "":
            continue
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        if "bool" in kind:
            values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
        elif "int" in kind:
            values[f.name] = int(raw)
        elif "Path" in kind:
            values[f.name] = Path(raw)
        else:
            values[f.name] = raw
    tokens: dict[str, str] = {}
    if env.get("DIAVO_TOKENS_FILE"):
        tokens.update(read_tokens(Path(env["DIAVO_TOKENS_FILE"]).read_text()))
    if env.get("DIAVO_TOKENS"):
        text = env["DIAVO_TOKENS"].replace(",", "\n").replace(":", " ")
        tokens.update(read_tokens(text))
    if tokens:
        values["tokens"] = tokens
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(root=Path(root), **values)
