"""Dependency aliases for route handlers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.service import LedgerService


async def get_service(request: Request) -> LedgerService:
    """The process's :class:`LedgerService`, built in the app's lifespan.

    ``async`` on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, which
    would cost every request a thread hop (and, under load, a wait for the GIL) just to read
    an attribute.
    """
    service: LedgerService = request.app.state.service
    return service


Service = Annotated[LedgerService, Depends(get_service)]
