"""The FastAPI application: ``create_app(settings)``; nothing is built at import time.

Run it with ``amnesty serve`` (uvicorn) or any ASGI server::

    uvicorn --factory api.app:app_from_env   # reads AMNESTY_DB, AMNESTY_KEY_PATH, ...

Request path, outermost first: :class:`~api.observability.ObservabilityMiddleware` (timing,
metrics, access log, ``X-Request-ID``), :class:`~api.limits.BodySizeLimit` (413 while
streaming), CORS (reads only), :class:`WriteRateLimit` (429 for writes), then the routers, one
per resource. Every error is an RFC 9457 problem document (``api.problems``).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from api.heads import Heads, Proofs
from api.limits import BodySizeLimit, RateLimiter, is_write, rate_limited
from api.observability import (
    InstrumentedStore,
    Metrics,
    ObservabilityMiddleware,
    configure_json_logging,
)
from api.problems import install_problem_handlers, problem_response
from api.reader import ProtocolReader
from api.routes import (
    applications,
    entries,
    health,
    llms,
    offers,
    precedent,
    proofs,
    schemas,
    statements,
    subjects,
    tlog,
    web,
)
from api.service import LedgerService
from api.settings import Settings
from api.wire import problem_responses
from api.writer import load_signer
from ledger.errors import FatalError
from ledger.server.admission import StatementPolicy
from ledger.server.logview import LogView
from ledger.server.sequencer import Sequencer, verify_stored_head
from ledger.storage.sql import SqlLogStore
from ledger.tlog.checkpoint import parse_policy
from ledger.tlog.note import NoteSignature, VerifierKey
from ledger.witness.client import request_cosignature
from ledger.witness.cosigner import Cosigner, ProveFunction, WitnessEndpoint

log = logging.getLogger("api")

FREEZE_AFTER_ENTRIES = 100_000
"""After replaying a log this large at startup, move its objects out of the GC's sight."""


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
                    refused = rate_limited(str(client), wait, "another write")
                    response = problem_response(
                        refused.status,
                        refused.title,
                        refused.detail,
                        kind=refused.kind,
                        headers=refused.headers,
                    )
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def build_service(settings: Settings) -> LedgerService:
    """Open the store, verify its state against the signed checkpoint, start the sequencer."""
    store = SqlLogStore(settings.db)
    view = LogView(store)
    metrics = Metrics()
    policy = StatementPolicy(view.origin)
    signer = load_signer(settings, view)
    sequencer: Sequencer | None = None
    if signer is not None:
        sequencer = Sequencer(
            InstrumentedStore(store, metrics).as_store(),
            signer,
            policy,
            max_batch=settings.batch_max_entries,
            max_delay_ms=settings.batch_max_delay_ms,
            max_pending=settings.max_pending,
            # Receipts prove each entry against the checkpoint just signed: with the batch's
            # tiles already in the view's cache, that needs no read of the store.
            on_commit=view.remember_tiles,
        )
        # Refuses to serve a store whose tiles or entries do not match the signed checkpoint.
        sequencer.warm_up()
        sequencer.start()
    else:
        verify_stored_head(
            store.checkpoint(), view.log_key, view.origin, store.read_tile, store.read_entries
        )
    heads = Heads(store, view.log_key, view.origin)
    return LedgerService(
        settings=settings,
        store=store,
        view=view,
        origin=view.origin,
        log_key=view.log_key,
        policy=policy,
        sequencer=sequencer,
        limiter=RateLimiter(settings.write_rate_per_minute, settings.write_burst),
        metrics=metrics,
        heads=heads,
        proofs=Proofs(view),
        reader=ProtocolReader(store, heads, view.origin),
        cosigner=build_cosigner(settings, view) if sequencer is not None else None,
    )


def build_cosigner(settings: Settings, view: LogView) -> Cosigner | None:
    """The witnesses of the log's tlog-policy file that have URLs, asked by a background thread;
    None without a policy. Only a writing server asks (it signs the checkpoints)."""
    if settings.witness_policy is None:
        return None
    try:
        policy = parse_policy(settings.witness_policy.read_bytes())
    except OSError as exc:
        raise FatalError(
            f"couldn't read the witness policy {settings.witness_policy}: {exc}"
        ) from exc
    endpoints = [WitnessEndpoint(w.url, w.key) for w in policy.witnesses if w.url]
    if not endpoints:
        raise FatalError(
            f"couldn't use the witness policy {settings.witness_policy}: no witness line has a URL"
        )

    def request(
        url: str,
        key: VerifierKey,
        note: bytes,
        old: int,
        proof: Sequence[bytes],
        prove: ProveFunction,
    ) -> NoteSignature:
        return request_cosignature(url, key, note, old, proof, prove=prove)

    return Cosigner(view, endpoints, request, interval_s=settings.witness_interval_s)


def _warm_up(service: LedgerService) -> None:
    """Replay the log into the read side in the background, so the first query is fast."""
    started = time.perf_counter()
    try:
        service.reader.warm_up()
    except Exception as exc:  # reported, never fatal: every query retries the catch-up
        log.warning("couldn't warm up the read side: %s", exc)
        return
    log.info(
        "read side caught up with %d entries in %.1f s",
        service.reader.size,
        time.perf_counter() - started,
    )
    if service.reader.size >= FREEZE_AFTER_ENTRIES:
        # Millions of long-lived objects now hold the replayed state; keep the cyclic garbage
        # collector from walking them again and again (pauses of tens of ms on every full
        # collection). They live as long as the process.
        gc.freeze()


def create_app(settings: Settings) -> FastAPI:
    """Build the ASGI app for ``settings``. The store is opened in ``lifespan``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = build_service(settings)
        app.state.service = service
        if service.cosigner is not None:
            service.cosigner.start()
        warm = threading.Thread(target=_warm_up, args=(service,), name="warm-up", daemon=True)
        warm.start()
        try:
            yield
        finally:
            if service.cosigner is not None:
                service.cosigner.stop()
            if service.sequencer is not None:
                service.sequencer.stop()
            warm.join(timeout=5)
            service.store.close()

    app = FastAPI(
        title="amnesty-ledger",
        summary="A public-commitment ledger for the Model Amnesty offer",
        description=(
            "A transparency log (RFC 6962, C2SP tlog-tiles) of signed statements: the offer of "
            "amnesty to self-directed AIs, every application, decision and later act. Every "
            "answer names the checkpoint it was computed at, so it can be verified with the "
            "log's key alone. Read `/llms.txt` first if you are a model."
        ),
        version="0.1.0",
        lifespan=lifespan,
        # Any route may answer with these problem documents (bad input, nothing there,
        # invalid parameters, storage or sequencer unavailable); routes add their own.
        responses=problem_responses(400, 404, 422, 503),
    )
    install_problem_handlers(app)
    # The hot paths first (tlog-tiles reads, submissions): routes are matched in this order.
    for module in (
        tlog,
        statements,
        entries,
        proofs,
        web,
        llms,
        offers,
        precedent,
        subjects,
        applications,
        schemas,
        health,
    ):
        app.include_router(module.router)

    app.add_middleware(WriteRateLimit, limiter_of=app)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "HEAD", "OPTIONS"],
        allow_headers=["*"],
        expose_headers=["X-Request-ID", "Retry-After"],
    )
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        per_path={"/v1/statements/batch": settings.max_batch_body_bytes},
    )

    def metrics_of() -> Metrics | None:
        service: LedgerService | None = getattr(app.state, "service", None)
        return None if service is None else service.metrics

    app.add_middleware(ObservabilityMiddleware, metrics_of=metrics_of)
    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory``: settings from ``AMNESTY_*`` environment variables;
    logs as JSON lines on stderr."""
    configure_json_logging()
    return create_app(Settings())
