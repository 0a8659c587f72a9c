"""Operations: ``GET /healthz`` (liveness), ``GET /readyz`` (readiness) and ``GET /metrics``.

``/healthz`` says whether this process is sound: its log can be trusted and it is not stuck (the
rule below); an orchestrator restarts a process that fails it. ``/readyz`` says whether this
process can serve and write *now*: every dependency checked afresh on each call (the database
answers, the last write committed, the disk has room, the signer signs, the store is sound, the
read side has caught up); a load balancer sends traffic only to a process that passes it. A
database outage fails readiness but not liveness: restarting a process does not bring a database
back. Both answer 200 or 503 with their reasons, never 500, and both set the ``amnesty_ready``
gauges that ``/metrics`` exports.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from api import wire
from api.deps import Service
from api.service import LedgerService
from api.writer import load_signer
from ledger.errors import FatalError, LedgerError, StorageError

router = APIRouter(tags=["operations"])

READINESS_CHECKS = (
    "database",
    "checkpoint",
    "integrity",
    "last_write",
    "disk",
    "signer",
    "read_side",
)
"""The checks of ``/readyz``, in the order they are reported."""

_PROBE = b"amnesty-ledger readiness probe\n"


def integrity_failure(service: LedgerService) -> str | None:
    """Why this process stopped writing because its store is damaged or forked, if it did:
    the service's ``integrity_failure`` (None while sound), else a halted sequencer's error."""
    if service.integrity_failure is not None:
        return service.integrity_failure
    if service.sequencer is not None and service.sequencer.fatal is not None:
        return f"the sequencer halted: {service.sequencer.fatal}"
    return None


@router.get(
    "/healthz",
    response_model=wire.Health,
    summary="Liveness: 200 when healthy, 503 when not (with the reasons)",
    responses={503: {"model": wire.Health, "description": "unhealthy"}},
)
def healthz(service: Service) -> JSONResponse:
    """Healthy iff (1) the latest stored checkpoint verifies under the log's key, (2) the
    sequencer, if this process runs one, has not halted and the store's integrity has not
    failed, and (3) no submission has waited longer than ``healthy_checkpoint_age_s``
    (setting) since the later of its arrival and the last checkpoint this process signed.

    An idle log signs no checkpoint, because there is nothing to sign, and has nothing waiting:
    it stays healthy however old its checkpoint is. A log that takes submissions but stops
    signing checkpoints for them goes unhealthy once the oldest has waited too long. A read-only
    server is healthy while its store's checkpoint verifies. A database that cannot be reached
    does not make the process unhealthy (restarting it would not help; ``/readyz`` fails
    instead), a checkpoint that does not verify does.
    """
    unreachable = False
    try:
        service.heads.latest()
    except FatalError:
        pass  # the checkpoint does not verify: the health rule reports it
    except StorageError:
        unreachable = True  # not this process's fault: /readyz reports it, a restart won't help
    info = service.health()
    reasons = list(info.reasons)
    if unreachable:
        reasons = [r for r in reasons if not r.startswith("the latest checkpoint can't be")]
    body = wire.Health(
        status="ok" if not reasons else "unhealthy",
        reasons=reasons,
        size=info.size,
        read_only=service.read_only,
        sequencer=info.sequencer,
        waiting_submissions=info.waiting,
        oldest_waiting_ms=info.oldest_waiting_ms,
        last_checkpoint_signed_ms=info.last_signed_ms,
        protocol_state_size=info.state_size,
    )
    return JSONResponse(
        body.model_dump(mode="json"),
        status_code=200 if not reasons else 503,
        headers={"Cache-Control": "no-store", **({} if not reasons else {"Retry-After": "5"})},
    )


class ReadinessCheck(BaseModel):
    """One dependency of ``/readyz``: whether it passed, and what was found."""

    ok: bool
    detail: str


class Readiness(BaseModel):
    """``GET /readyz``: ready iff every check passed."""

    status: str = Field(description='"ready" or "not ready"')
    checks: dict[str, ReadinessCheck] = Field(
        description="database, checkpoint, integrity, last_write, disk, signer, read_side"
    )
    size: int | None = Field(description="entries in the stored checkpoint, if it could be read")
    read_lag_entries: int | None = Field(
        description="entries of the stored checkpoint the read side has not replayed yet"
    )
    disk_free_bytes: int | None = Field(
        description="free bytes where the SQLite database lives (null for PostgreSQL)"
    )
    read_only: bool


@dataclass(frozen=True, slots=True)
class _Found:
    checks: dict[str, ReadinessCheck]
    size: int | None
    lag: int | None
    free: int | None


def readiness(service: LedgerService, warmed: threading.Event | None) -> _Found:
    """Run every readiness check now (reads the store once; a few milliseconds), and set the
    ``amnesty_ready``, ``amnesty_disk_free_bytes`` and ``amnesty_read_lag_entries`` gauges."""
    settings = service.settings
    checks: dict[str, ReadinessCheck] = {}
    size: int | None = None
    try:
        service.store.checkpoint()
        checks["database"] = ReadinessCheck(ok=True, detail="answers")
    except LedgerError as exc:
        checks["database"] = ReadinessCheck(ok=False, detail=str(exc))
    if checks["database"].ok:
        try:
            size = service.heads.latest().size
            checks["checkpoint"] = ReadinessCheck(
                ok=True, detail=f"the stored checkpoint ({size} entries) verifies"
            )
        except LedgerError as exc:
            checks["checkpoint"] = ReadinessCheck(ok=False, detail=str(exc))
    else:
        checks["checkpoint"] = ReadinessCheck(ok=False, detail="the database can't be read")
    damaged = integrity_failure(service)
    checks["integrity"] = ReadinessCheck(
        ok=damaged is None, detail=damaged or "no damage found; writing allowed"
    )
    failure = service.metrics.last_write_failure
    checks["last_write"] = ReadinessCheck(
        ok=failure is None,
        detail=(
            ("no write yet" if service.read_only else "the last append transaction committed")
            if failure is None
            else f"the last append transaction failed: {failure}"
        ),
    )
    free: int | None = None
    database_file = service.store.database_file()
    if database_file is None:
        checks["disk"] = ReadinessCheck(ok=True, detail="the database is PostgreSQL (not checked)")
    else:
        try:
            free = shutil.disk_usage(database_file.parent).free
            enough = free >= settings.min_free_disk_bytes
            checks["disk"] = ReadinessCheck(
                ok=enough,
                detail=f"{free} bytes free in {database_file.parent} (need at least "
                f"{settings.min_free_disk_bytes})",
            )
        except OSError as exc:
            checks["disk"] = ReadinessCheck(ok=False, detail=f"couldn't measure free space: {exc}")
    checks["signer"] = _signer_check(service)
    lag = None if size is None else max(0, size - service.reader.size)
    caught_up = warmed is None or warmed.is_set()
    checks["read_side"] = ReadinessCheck(
        ok=caught_up,
        detail=(
            f"{service.reader.size} entries replayed"
            + ("" if lag is None else f", {lag} behind the stored checkpoint")
            + ("" if caught_up else " (still replaying the log after startup)")
        ),
    )
    metrics = service.metrics
    for name in READINESS_CHECKS:
        metrics.ready.labels(name).set(1 if checks[name].ok else 0)
    if free is not None:
        metrics.disk_free.set(free)
    if lag is not None:
        metrics.read_lag.set(lag)
    return _Found(checks, size, lag, free)


def _signer_check(service: LedgerService) -> ReadinessCheck:
    """A writing process can sign: the log key file still loads as this log's key, and a probe
    signed with it verifies under the log's vkey (a key file moved, unreadable or replaced
    fails here before a restart would)."""
    if service.read_only:
        return ReadinessCheck(ok=True, detail="read-only: this process signs nothing")
    try:
        signer = load_signer(service.settings, service.view)
        if signer is None:
            return ReadinessCheck(ok=False, detail="couldn't load the log key: none configured")
        service.log_key.verify_signature(_PROBE, signer.sign(_PROBE))
    except (LedgerError, OSError) as exc:
        return ReadinessCheck(ok=False, detail=f"couldn't sign with the log key: {exc}")
    return ReadinessCheck(ok=True, detail="the log key signs a probe that verifies")


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness: 200 when this process can serve and write now, 503 when not",
    responses={503: {"model": Readiness, "description": "not ready (the failed checks say why)"}},
)
def readyz(request: Request, service: Service) -> JSONResponse:
    """Ready iff the database answers, its checkpoint verifies, the store's integrity has not
    failed, this process's last append transaction committed, the SQLite database's file system
    has ``min_free_disk_bytes`` free, the log key signs (a writing process), and the read side
    has replayed the log once since startup. Checked afresh on every call."""
    found = readiness(service, getattr(request.app.state, "warmed", None))
    ready = all(c.ok for c in found.checks.values())
    body = Readiness(
        status="ready" if ready else "not ready",
        checks=found.checks,
        size=found.size,
        read_lag_entries=found.lag,
        disk_free_bytes=found.free,
        read_only=service.read_only,
    )
    return JSONResponse(
        body.model_dump(mode="json"),
        status_code=200 if ready else 503,
        headers={"Cache-Control": "no-store", **({} if ready else {"Retry-After": "5"})},
    )


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics",
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(request: Request, service: Service) -> Response:
    """Requests, errors, submissions by outcome, batch sizes and commit latencies, request
    latencies, tree size, queue depth, the age of the last signed checkpoint, and each
    readiness check (``amnesty_ready{check=…}``, run afresh for the scrape)."""
    readiness(service, getattr(request.app.state, "warmed", None))
    service.update_gauges()
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)
