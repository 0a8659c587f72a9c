"""Dependency aliases for route handlers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.service import LedgerService


def get_service(request: Request) -> LedgerService:
    """The process's :class:`LedgerService`, built in the app's lifespan."""
    service: LedgerService = request.app.state.service
    return service


Service = Annotated[LedgerService, Depends(get_service)]
