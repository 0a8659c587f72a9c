"""Service settings: explicit values, environment overrides (``AMNESTY_*``), failing closed."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ledger.storage.engine import SQLITE_CACHE_BUDGET_MIB, StorageTimeouts

PUBLIC_URL_PATTERN = (
    r"^https?://([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?"  # scheme, host, port
    r"(/[A-Za-z0-9._~%!$&'()*+,;=:@/\-]*)?$"  # path: no query, no fragment
)
"""An http(s) URL without query or fragment, in printable ASCII only: it is printed as is."""


class Settings(BaseSettings):
    """Everything the service needs to start. No defaults that could silently expose a log:
    the database must be named; without a key file the service serves reads only."""

    model_config = SettingsConfigDict(env_prefix="AMNESTY_", frozen=True)

    db: str = Field(description="database URL (sqlite:///file.db, postgresql://...) or a path")
    key_path: Path | None = Field(
        default=None, description="the log's private key file; None means read-only"
    )
    read_only: bool = Field(default=False, description="serve reads only, even with a key")
    published_path: Path | None = Field(
        default=None,
        description="where the signer remembers the largest checkpoint it published (it refuses "
        "to sign anything that does not extend it); default: the key file's name + .published",
    )
    max_body_bytes: int = Field(
        default=256 * 1024, ge=1024, description="body cap of every other request (413 above)"
    )
    max_batch_statements: int = Field(
        default=1000, ge=1, description="statements in one POST /v1/statements/batch"
    )
    max_batch_body_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, description="body cap of POST /v1/statements/batch"
    )
    batch_max_entries: int = Field(
        default=1024, ge=1, description="most entries the sequencer commits under one checkpoint"
    )
    batch_max_delay_ms: int = Field(
        default=10, ge=0, description="how long the sequencer waits to fill a batch"
    )
    max_pending: int = Field(
        default=20_000, ge=1, description="queued submissions before 503 + Retry-After"
    )
    write_rate_per_minute: int = Field(
        default=6_000, ge=1, description="write tokens a client (IP address) earns per minute"
    )
    write_burst: int = Field(
        default=1_000, ge=1, description="write tokens a client may hold (429 when empty)"
    )
    healthy_checkpoint_age_s: int = Field(
        default=3600,
        ge=1,
        description="/healthz fails when a submission has waited this long for a checkpoint",
    )
    cors_origins: tuple[str, ...] = Field(
        default=("*",), description="origins allowed to read cross-origin (JSON list)"
    )
    witness_policy: Path | None = Field(
        default=None,
        description="a C2SP tlog-policy file; every `witness <name> <vkey> <url>` line with a "
        "URL is asked to cosign each new checkpoint (C2SP tlog-witness)",
    )
    witness_interval_s: float = Field(
        default=0.5,
        gt=0,
        description="seconds between rounds of asking the due witnesses to cosign",
    )
    witness_min_interval_s: float = Field(
        default=60.0,
        gt=0,
        description="the least time between two requests to one witness (its qpd is "
        "86400 / this; failures back off from it exponentially, docs/WITNESS.md)",
    )
    request_timeout_s: float = Field(
        default=15.0,
        gt=0,
        le=300,
        description="no request waits longer: past it, an answer not yet begun is a 503 "
        "problem with Retry-After (the work it waited on finishes or fails by itself)",
    )
    sqlite_cache_mib: int = Field(
        default=SQLITE_CACHE_BUDGET_MIB,
        ge=1,
        le=1 << 20,
        description="SQLite only: the page caches of all of a server process's database "
        "connections together, in MiB (SQLite's soft heap limit); memory does not grow "
        "with the log beyond it",
    )
    report_cache_mib: int = Field(
        default=1024,
        ge=0,
        le=1 << 24,
        description="disk space, in MiB, for finished precedent reports kept so that an "
        "identical repeatable request (a past size, or an explicit audit time) is read, not "
        "computed again (api.report_cache); 0 keeps none",
    )
    report_cache_dir: Path | None = Field(
        default=None,
        description="folder of the kept reports (processes on one machine may share it); "
        "default: beside a SQLite database file (FILE.reports), else under /var/tmp",
    )
    db_connect_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="bound on opening a database connection (and the pool's wait)",
    )
    db_statement_timeout_s: float = Field(
        default=10.0, gt=0, description="PostgreSQL statement_timeout of every session"
    )
    db_lock_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="longest wait for the write lock (PostgreSQL lock_timeout, SQLite busy_timeout)",
    )
    db_idle_in_transaction_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="PostgreSQL ends a session idle this long inside a transaction (a frozen "
        "writer), releasing its write lock",
    )
    min_free_disk_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=0,
        description="/readyz fails when the SQLite database's file system has less free space",
    )
    max_header_count: int = Field(
        default=64, ge=8, le=1000, description="request headers allowed (431 above)"
    )
    max_header_bytes: int = Field(
        default=16 * 1024,
        ge=1024,
        le=1024 * 1024,
        description="size of a request's head: request line and headers (431 above)",
    )
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="a connection must deliver a request's head within this time (slow clients "
        "are disconnected)",
    )
    body_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="a request's body must arrive within this time (408 problem above)",
    )
    keep_alive_s: float = Field(
        default=5.0, gt=0, description="an idle kept-alive connection is closed after this"
    )
    shutdown_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="on SIGTERM, in-flight requests get this long to finish before exit",
    )
    refused_signature_budget: int = Field(
        default=20_000,
        ge=1,
        description="signature checks refused statements may cost per minute, per client (IP "
        "address) and per key (429 above)",
    )
    public_url: str | None = Field(
        default=None,
        max_length=2048,
        pattern=PUBLIC_URL_PATTERN,
        description="the service's public base URL (https://host[:port][/path]), stated in "
        "/llms.txt; none: /llms.txt states no base URL (never the request's Host header)",
    )

    def storage_timeouts(self) -> StorageTimeouts:
        """The database bounds these settings name, for :class:`~ledger.storage.sql.SqlLogStore`."""
        return StorageTimeouts(
            connect_s=self.db_connect_timeout_s,
            statement_s=self.db_statement_timeout_s,
            lock_s=self.db_lock_timeout_s,
            idle_in_transaction_s=self.db_idle_in_transaction_timeout_s,
        )

    @field_validator("public_url")
    @classmethod
    def _without_trailing_slash(cls, value: str | None) -> str | None:
        return None if value is None else value.rstrip("/")
