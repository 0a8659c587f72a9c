"""Service settings: explicit values, environment overrides (``AMNESTY_*``), failing closed."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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
        default=0.5, gt=0, description="seconds between rounds of asking the witnesses to cosign"
    )
    public_url: str | None = Field(
        default=None,
        max_length=2048,
        pattern=PUBLIC_URL_PATTERN,
        description="the service's public base URL (https://host[:port][/path]), stated in "
        "/llms.txt; none: /llms.txt states no base URL (never the request's Host header)",
    )

    @field_validator("public_url")
    @classmethod
    def _without_trailing_slash(cls, value: str | None) -> str | None:
        return None if value is None else value.rstrip("/")
