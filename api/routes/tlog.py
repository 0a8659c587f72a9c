"""The C2SP tlog-tiles read path: ``/checkpoint``, ``/tile/...``, and ``/v1/log``.

These are the URLs existing tlog-tiles clients, monitors and witnesses read, to the letter of
the spec: ``text/plain; charset=utf-8`` checkpoints with a short cache, and
``application/octet-stream`` tiles and entry bundles with immutable cache headers.
"""

from __future__ import annotations

import base64

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from api.deps import Service
from ledger.tlog.tiles import parse_tile_path

router = APIRouter(tags=["tlog-tiles"])

CHECKPOINT_CACHE = "public, max-age=2"
IMMUTABLE_CACHE = "public, max-age=31536000, immutable"


@router.get(
    "/checkpoint",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "the signed checkpoint"}},
    summary="The latest signed checkpoint (C2SP tlog-checkpoint)",
)
async def get_checkpoint(service: Service) -> Response:
    """The latest checkpoint note, signed by the log, with any witness cosignatures."""

    def witnessed_latest() -> bytes:
        return service.view.witnessed(service.view.latest())

    note = await run_in_threadpool(witnessed_latest)
    return Response(
        note,
        media_type="text/plain; charset=utf-8",
        headers={"Cache-Control": CHECKPOINT_CACHE},
    )


@router.get(
    "/tile/{tile_path:path}",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "tile or bundle"},
        404: {"description": "no such tile in this log"},
    },
    summary="A Merkle hash tile or entry bundle (C2SP tlog-tiles)",
)
async def get_tile(tile_path: str, service: Service) -> Response:
    """``/tile/<L>/<N>[.p/<W>]`` or ``/tile/entries/<N>[.p/<W>]``."""
    tile = parse_tile_path("tile/" + tile_path)
    data = await run_in_threadpool(service.view.tile, tile)
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Cache-Control": IMMUTABLE_CACHE},
    )


class LogInfo(BaseModel):
    """Who this log is and how big it is now."""

    origin: str
    log_vkey: str
    size: int
    root_hash: str
    checkpoint: str
    read_only: bool


@router.get("/v1/log", response_model=LogInfo, tags=["log"], summary="The log's identity and size")
async def get_log(service: Service) -> LogInfo:
    """Origin, log vkey and the latest checkpoint."""
    signed = await run_in_threadpool(service.view.latest)
    return LogInfo(
        origin=service.view.origin,
        log_vkey=service.view.identity.log_vkey,
        size=signed.size,
        root_hash=base64.b64encode(signed.checkpoint.root_hash).decode(),
        checkpoint=signed.note.decode(),
        read_only=service.sequencer is None,
    )
