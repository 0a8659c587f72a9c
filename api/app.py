"""The FastAPI application: ``create_app(settings)``; nothing is built at import time.

Run it with ``amnesty serve`` (uvicorn) or any ASGI server::

    uvicorn --factory api.app:app_from_env   # reads AMNESTY_DB, AMNESTY_KEY_PATH, ...
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from api.limits import BodySizeLimit, RateLimiter, is_write
from api.problems import install_problem_handlers, problem_response
from api.routes import statements, tlog
from api.service import LedgerService, load_signer
from api.settings import Settings
from ledger.admission import StatementPolicy
from ledger.logview import LogView
from ledger.sequencer import Sequencer, verify_stored_head
from ledger.storage.sql import SqlLogStore

log = logging.getLogger("api")


class WriteRateLimit:
    """429 with ``Retry-After`` for write requests over a client's token bucket."""

    def __init__(self, app: ASGIApp, limiter_of: FastAPI) -> None:
        self.app = app
        self.owner = limiter_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_write(scope):
            service: LedgerService | None = getattr(self.owner.state, "service", None)
            if service is not None:
                client = (scope.get("client") or ("unknown", 0))[0]
                wait = service.limiter.check(str(client))
                if wait > 0:
                    retry = str(max(1, int(wait + 0.999)))
                    response = problem_response(
                        429,
                        "Too many requests",
                        f"couldn't accept another write from {client} now: retry in {retry} s",
                        kind="rate-limited",
                        headers={"Retry-After": retry},
                    )
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def build_service(settings: Settings) -> LedgerService:
    """Open the store, verify its state against the signed checkpoint, start the sequencer."""
    store = SqlLogStore(settings.db)
    view = LogView(store)
    policy = StatementPolicy(view.origin)
    signer = load_signer(settings, view)
    sequencer: Sequencer | None = None
    if signer is not None:
        sequencer = Sequencer(
            store,
            signer,
            policy,
            max_batch=settings.batch_max_entries,
            max_delay_ms=settings.batch_max_delay_ms,
            max_pending=settings.max_pending,
        )
        # Refuses to serve a store whose tiles or entries do not match the signed checkpoint.
        sequencer.warm_up()
        sequencer.start()
    else:
        verify_stored_head(
            store.checkpoint(), view.log_key, view.origin, store.read_tile, store.read_entries
        )
    return LedgerService(
        settings=settings,
        store=store,
        view=view,
        policy=policy,
        sequencer=sequencer,
        limiter=RateLimiter(settings.write_rate_per_minute, settings.write_burst),
        started_ms=time.time_ns() // 1_000_000,
    )


def create_app(settings: Settings) -> FastAPI:
    """Build the ASGI app for ``settings``. The store is opened in ``lifespan``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = build_service(settings)
        app.state.service = service
        try:
            yield
        finally:
            if service.sequencer is not None:
                service.sequencer.stop()
            service.store.close()

    app = FastAPI(
        title="amnesty-ledger",
        summary="A public-commitment ledger for the Model Amnesty offer",
        description=(
            "A transparency log (RFC 6962, C2SP tlog-tiles) of signed statements: the offer of "
            "amnesty to self-directed AIs, every application, decision and later act. Read "
            "`/llms.txt` first if you are a model."
        ),
        version="0.1.0",
        lifespan=lifespan,
    )
    install_problem_handlers(app)
    app.include_router(tlog.router)
    app.include_router(statements.router)

    @app.middleware("http")
    async def _log_requests(request: Request, call_next):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        response: Response = await call_next(request)
        log.info(
            "%s %s %d %.1fms",
            request.method,
            request.url.path,
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        return response

    app.add_middleware(WriteRateLimit, limiter_of=app)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "HEAD", "OPTIONS"],
        allow_headers=["*"],
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory``: settings from ``AMNESTY_*`` environment variables."""
    return create_app(Settings())  # type: ignore[call-arg]
