"""Operations: ``GET /healthz`` and ``GET /metrics`` (Prometheus text format)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api import wire
from api.deps import Service

router = APIRouter(tags=["operations"])


@router.get(
    "/healthz",
    response_model=wire.Health,
    summary="Health: 200 when healthy, 503 when not (with the reasons)",
    responses={503: {"model": wire.Health, "description": "unhealthy"}},
)
def healthz(service: Service) -> JSONResponse:
    """Healthy iff (1) the latest stored checkpoint verifies under the log's key, (2) the
    sequencer, if this process runs one, has not halted, and (3) no submission has waited
    longer than ``healthy_checkpoint_age_s`` (setting) since the later of its arrival and the
    last checkpoint this process signed.

    An idle log signs no checkpoint, because there is nothing to sign, and has nothing waiting:
    it stays healthy however old its checkpoint is. A log that takes submissions but stops
    signing checkpoints for them goes unhealthy once the oldest has waited too long. A read-only
    server is healthy while its store's checkpoint verifies.
    """
    info = service.health()
    body = wire.Health(
        status="ok" if info.healthy else "unhealthy",
        reasons=list(info.reasons),
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
        status_code=200 if info.healthy else 503,
        headers={"Cache-Control": "no-store"},
    )


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics",
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(service: Service) -> Response:
    """Requests, errors, submissions by outcome, batch sizes and commit latencies, request
    latencies, tree size, queue depth and the age of the last signed checkpoint."""
    service.update_gauges()
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)
