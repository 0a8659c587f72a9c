"""``GET /v1/schemas`` and ``GET /v1/schemas/{name}``: the published JSON Schemas."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.problems import ProblemError
from schemas import published_schemas

router = APIRouter(tags=["schemas"])


@lru_cache(maxsize=1)
def _schemas() -> dict[str, str]:
    return published_schemas()


@router.get("/v1/schemas", summary="Index of the published JSON Schemas")
async def list_schemas() -> dict[str, Any]:
    """Names of every schema file, and the index document mapping statement types to schemas."""
    schemas = _schemas()
    return {"schemas": sorted(schemas), "index": json.loads(schemas["index.json"])}


@router.get(
    "/v1/schemas/{name}",
    summary="One JSON Schema (entry, statement types, precedent report)",
    response_class=JSONResponse,
    responses={404: {"description": "no such schema"}},
)
async def get_schema(name: str) -> JSONResponse:
    """The schema file ``name`` (e.g. ``statement-offer.json``), exactly as published."""
    text = _schemas().get(name)
    if text is None:
        raise ProblemError(404, "Not found", f"couldn't find schema {name!r}", kind="not-found")
    return JSONResponse(
        json.loads(text),
        media_type="application/schema+json",
        headers={"Cache-Control": "public, max-age=3600"},
    )
