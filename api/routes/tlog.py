"""The C2SP tlog-tiles read path: ``/checkpoint``, ``/tile/...``, and ``/v1/log``.

These are the URLs existing tlog-tiles clients, monitors and witnesses read, to the letter of
the spec: ``text/plain; charset=utf-8`` checkpoints with a short cache, and
``application/octet-stream`` tiles and entry bundles with immutable cache headers.
"""

from __future__ import annotations

import base64

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from api.deps import Service
from ledger.errors import MalformedError
from ledger.protocol.records import LogKeyRecord
from ledger.server.logview import NotFoundError, SignedCheckpoint
from ledger.tlog.tiles import ENTRIES_LEVEL, TILE_WIDTH, parse_tile_path

MAX_TILE_PATH = 64
"""Longer than the longest canonical tile path after ``/tile/`` (``entries/`` and six index
groups and ``.p/255``): anything longer is refused before it is parsed."""
MAX_STORED_LEAVES = 2**63
"""Entries are indexed by a signed 64-bit integer in storage: no tile starts beyond."""

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
    """``/tile/<L>/<N>[.p/<W>]`` or ``/tile/entries/<N>[.p/<W>]``.

    The path is checked before anything reaches storage: longer than any canonical tile path,
    or not canonical, is a 400; a tile no tree this log could hold has (its first leaf at
    2**63 or beyond) is a 404."""
    if len(tile_path) > MAX_TILE_PATH:
        raise MalformedError(
            f"couldn't parse tile path: {len(tile_path)} characters, longer than any tile's "
            f"({MAX_TILE_PATH})"
        )
    tile = parse_tile_path("tile/" + tile_path)
    level = 0 if tile.level == ENTRIES_LEVEL else tile.level
    if tile.index * TILE_WIDTH ** (level + 1) >= MAX_STORED_LEAVES:
        raise NotFoundError(f"couldn't find {tile.path()}: beyond any tree this log can hold")
    data = await run_in_threadpool(service.view.tile, tile)
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Cache-Control": IMMUTABLE_CACHE},
    )


class LogInfo(BaseModel):
    """Who this log is and how big it is now."""

    origin: str
    log_vkey: str = Field(description="the log's Ed25519 vkey (type 0x01), its identity")
    log_vkeys: list[str] = Field(
        description="every key that signs the log's checkpoints, Ed25519 first, then the "
        "ML-DSA-44 vkey (type 0x06, C2SP tlog-cosignature subtree/v1) of a hybrid log"
    )
    mldsa_key_entry: int | None = Field(
        default=None,
        description="the index of the log_key entry that added the ML-DSA-44 key to this "
        "log (checkpoints of a larger size carry its signature); null when the log was "
        "created with it, or has none",
    )
    size: int
    root_hash: str
    checkpoint: str
    read_only: bool


@router.get("/v1/log", response_model=LogInfo, tags=["log"], summary="The log's identity and size")
async def get_log(service: Service) -> LogInfo:
    """Origin, log vkeys and the latest checkpoint. The ML-DSA-44 key is the one the log was
    created with, or the one a ``log_key`` entry the checkpoint covers added (from the
    protocol state at that checkpoint: a server started before the entry publishes it too)."""

    def at_latest() -> tuple[SignedCheckpoint, LogKeyRecord | None]:
        with service.reader.latest() as (state, head):
            return head, state.log_key

    signed, anchored = await run_in_threadpool(at_latest)
    vkeys = service.view.log_keys.vkeys()
    if anchored is not None and anchored.vkey not in vkeys:
        vkeys.append(anchored.vkey)
    return LogInfo(
        origin=service.view.origin,
        log_vkey=service.view.identity.log_vkey,
        log_vkeys=vkeys,
        mldsa_key_entry=None if anchored is None else anchored.index,
        size=signed.size,
        root_hash=base64.b64encode(signed.checkpoint.root_hash).decode(),
        checkpoint=signed.note.decode(),
        read_only=service.sequencer is None,
    )
