"""The FastAPI application: ``create_app(settings)``; nothing is built at import time.

Run it with ``amnesty serve`` (uvicorn) or any ASGI server::

    uvicorn --factory api.app:app_from_env   # reads AMNESTY_DB, AMNESTY_KEY_PATH, ...

Request path, outermost first: :class:`~api.observability.ObservabilityMiddleware` (timing,
metrics, access log, ``X-Request-ID``), :class:`~api.limits.HeaderLimits` (431),
:class:`~api.limits.RequestDeadline` (503 with ``Retry-After`` for an answer not begun within
``request_timeout_s``), :class:`~api.limits.BodySizeLimit` (413 while streaming, 408 for a body
too slow), CORS (reads only), :class:`WriteRateLimit` (429 for writes), then the routers, one
per resource. Every error is an RFC 9457 problem document (``api.problems``).
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from api.heads import Heads, Proofs
from api.limits import (
    BodySizeLimit,
    HeaderLimits,
    RateLimiter,
    RequestDeadline,
    is_write,
    rate_limited,
)
from api.observability import (
    InstrumentedStore,
    Metrics,
    ObservabilityMiddleware,
    configure_json_logging,
)
from api.problems import install_problem_handlers, problem_response
from api.reader import ProtocolReader
from api.report_cache import ReportCache, default_folder
from api.routes import (
    applications,
    due,
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
from api.writer import (
    load_log_signers,
    load_signer,
    published_for,
    recall_witnessed,
    witness_endpoints,
)
from ledger.errors import FatalError, LedgerError
from ledger.protocol.stored import FactCache
from ledger.server.admission import StatementPolicy
from ledger.server.derived import backfill_derived
from ledger.server.integrity import check_stored_state, sweep_entries
from ledger.server.log_key import LogKeyPolicy
from ledger.server.logview import LogView
from ledger.server.published import PublishedCheckpoint, UntrustedStoreError
from ledger.server.sequencer import Sequencer
from ledger.storage.engine import set_sqlite_cache_budget
from ledger.storage.sql import SqlLogStore
from ledger.tlog.note import NoteSignature, VerifierKey
from ledger.witness.client import request_cosignatures
from ledger.witness.cosigner import Cosigner, Pacing, ProveFunction

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
    set_sqlite_cache_budget(settings.sqlite_cache_mib)
    store = SqlLogStore(settings.db, timeouts=settings.storage_timeouts())
    view = LogView(store)
    metrics = Metrics()
    facts = FactCache()
    # The protocol state lives in the store's derived state (ledger.protocol.stored): the
    # sequencer starts from its latest flush point instead of replaying the log.
    signers = load_log_signers(settings, view)
    policy = StatementPolicy(view.origin, store.derived_source(), facts=facts)
    published = published_for(settings, view) if signers is not None else None
    recall_witnessed(settings, view, published)  # what the witnesses cosigned, into the memory
    sequencer: Sequencer | None = None
    if signers is not None:
        # A writer's policy knows the key file: the ML-DSA-44 key signs from the creation of
        # a hybrid log, or from the log_key entry that anchors it (ledger.server.log_key).
        policy = LogKeyPolicy(
            view.origin,
            store.derived_source(),
            signers=signers,
            identity=view.identity,
            facts=facts,
        )
        sequencer = Sequencer(
            InstrumentedStore(store, metrics).as_store(),
            signers.ed25519,
            policy,
            checkpoint_signers=policy.checkpoint_signers,
            max_batch=settings.batch_max_entries,
            max_delay_ms=settings.batch_max_delay_ms,
            max_pending=settings.max_pending,
            # Receipts prove each entry against the checkpoint just signed: with the batch's
            # tiles already in the view's cache, that needs no read of the store.
            on_commit=view.remember_tiles,
            published=published,
        )
        # Refuses to serve a store whose tiles or entries do not match the signed checkpoint,
        # or whose tree does not extend the checkpoint this signer remembers publishing.
        check_stored_state(store, view.log_key, view.origin, published)
        # A log written before derived state existed gets it now, once (later starts find it
        # current). Each chunk is its own transaction: a crash keeps what was written.
        backfill_derived(store, view.origin)
        sequencer.warm_up()
        sequencer.start()
    else:
        check_stored_state(store, view.log_key, view.origin, None)
    heads = Heads(store, view.log_key, view.origin)
    service = LedgerService(
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
        reader=ProtocolReader(store, heads, view.origin, facts=facts),
        cosigner=build_cosigner(settings, view, published) if sequencer is not None else None,
        report_cache=report_cache_for(settings, store),
    )
    if sequencer is not None:
        sequencer.on_fatal = service.stop_writing
    service.reader.on_damage = service.stop_writing
    return service


def report_cache_for(settings: Settings, store: SqlLogStore) -> ReportCache | None:
    """The report cache the settings ask for (:mod:`api.report_cache`), or None (0 MiB)."""
    if settings.report_cache_mib == 0:
        return None
    folder = settings.report_cache_dir or default_folder(store.database_file(), store.url)
    return ReportCache(
        folder,
        budget_bytes=settings.report_cache_mib << 20,
        min_free_bytes=settings.min_free_disk_bytes,
    )


def preflight(settings: Settings) -> None:
    """What ``amnesty serve`` checks before starting any server process, so that a refusal is
    one line and an exit code, not a traceback from the application's startup: the database
    opens and holds a log, the key exists and is this log's, and the stored state passes the
    startup check (:func:`~ledger.server.integrity.check_stored_state`: the latest checkpoint
    verifies and matches the tiles and the last entry, and the tree extends the checkpoint the
    signer remembers publishing). Raises :class:`~ledger.errors.LedgerError`
    (:class:`~ledger.errors.FatalError` for a store that cannot be trusted)."""
    store = SqlLogStore(settings.db, timeouts=settings.storage_timeouts())
    try:
        view = LogView(store)
        signer = load_signer(settings, view)
        published = published_for(settings, view) if signer is not None else None
        recall_witnessed(settings, view, published)
        check_stored_state(store, view.log_key, view.origin, published)
    finally:
        store.close()


def build_cosigner(
    settings: Settings, view: LogView, published: PublishedCheckpoint | None = None
) -> Cosigner | None:
    """The witnesses of the log's tlog-policy file that have URLs, asked by a background thread;
    None without a policy. Only a writing server asks (it signs the checkpoints). Each new
    cosignature is also kept in the signer's memory (``published``), outside the database."""
    endpoints = witness_endpoints(settings)
    if not endpoints:
        return None

    def request(
        url: str,
        keys: tuple[VerifierKey, ...],
        note: bytes,
        old: int,
        proof: Sequence[bytes],
        prove: ProveFunction,
    ) -> Sequence[NoteSignature]:
        # One HTTP request per call: a 409 is resynced by the cosigner at the witness's next
        # allowed time, so the witness never gets more than the declared qpd.
        return request_cosignatures(url, keys, note, old, proof, prove=prove, max_attempts=1)

    return Cosigner(
        view,
        endpoints,
        request,
        interval_s=settings.witness_interval_s,
        pacing=Pacing(min_interval_s=settings.witness_min_interval_s),
        remember=published.remember_cosigned if published is not None else None,
    )


def _integrity_sweep(service: LedgerService) -> None:
    """Check every entry up to the latest checkpoint against its stored level-0 tile
    (:func:`~ledger.server.integrity.sweep_entries`); on damage, stop writing and say why
    (``integrity_failure``: submissions 503 ``halted``, health and readiness fail). A storage
    error ends the sweep with a warning (the next start sweeps again)."""
    started = time.perf_counter()
    try:
        size = service.heads.latest().size
        sweep_entries(service.store.read_tile, service.store.read_entries, size)
    except FatalError as exc:
        service.stop_writing(exc)
        return
    except LedgerError as exc:
        log.warning("the integrity sweep stopped early: %s", exc)
        return
    log.info(
        "integrity sweep: every entry up to size %d matches its tile (%.1f s)",
        size,
        time.perf_counter() - started,
    )


def _warm_up(service: LedgerService, warmed: threading.Event) -> None:
    """Replay the log into the read side in the background, so the first query is fast; set
    ``warmed`` once it has caught up (``/readyz`` waits for it)."""
    started = time.perf_counter()
    delay = 0.5
    while True:
        try:
            service.reader.warm_up()
            break
        except Exception as exc:  # reported, never fatal: every query retries the catch-up
            # Retried with backoff (a database down at startup comes back): /readyz reports
            # the read side not ready until it has caught up once.
            log.warning("couldn't warm up the read side (retry in %.1f s): %s", delay, exc)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)
    warmed.set()
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


def _without_refusal_traceback(record: logging.LogRecord) -> bool:
    """A logging filter: drop the startup-failure traceback of a refused store (its one-line
    reason was logged already)."""
    return "UntrustedStoreError" not in record.getMessage() and (
        "ForkError" not in record.getMessage()
    )


def create_app(settings: Settings) -> FastAPI:
    """Build the ASGI app for ``settings``. The store is opened in ``lifespan``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            service = build_service(settings)
        except UntrustedStoreError as exc:
            # A store that cannot be trusted (damage the full replay found, or a fork) is
            # refused with one line; the traceback uvicorn would log after it says nothing more.
            log.critical("couldn't start: %s", exc)
            logging.getLogger("uvicorn.error").addFilter(_without_refusal_traceback)
            raise
        app.state.service = service
        if service.cosigner is not None:
            service.cosigner.start()
        app.state.warmed = warmed = threading.Event()
        warm = threading.Thread(
            target=_warm_up, args=(service, warmed), name="warm-up", daemon=True
        )
        warm.start()
        # Every stored entry against its tile, in the background: start-up reads the protocol
        # state from the derived state and replays nothing, so this is where an old entry's
        # damage (a flipped bit on disk) is found; writing stops at once if it is.
        sweep = threading.Thread(
            target=_integrity_sweep, args=(service,), name="integrity-sweep", daemon=True
        )
        sweep.start()
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
    # Signature checks spent on refused statements, per client (api.routes.statements).
    app.state.signature_budget = RateLimiter(
        settings.refused_signature_budget, settings.refused_signature_budget
    )
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
        due,
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
        timeout_s=settings.body_timeout_s,
    )
    app.add_middleware(RequestDeadline, seconds=settings.request_timeout_s)
    app.add_middleware(
        HeaderLimits, max_count=settings.max_header_count, max_bytes=settings.max_header_bytes
    )

    def metrics_of() -> Metrics | None:
        service: LedgerService | None = getattr(app.state, "service", None)
        return None if service is None else service.metrics

    app.add_middleware(ObservabilityMiddleware, metrics_of=metrics_of)
    return app


SUPERVISOR_ENV = "AMNESTY_SERVE_SUPERVISOR_PID"
"""Set by ``amnesty serve --workers N`` to its own process id, for the workers it starts."""


def die_with_supervisor(supervisor_pid: int, grace_s: float) -> None:
    """Make this worker process exit when its supervisor ``supervisor_pid`` does.

    On Linux the kernel sends SIGTERM when the parent dies (``PR_SET_PDEATHSIG``); everywhere,
    a watcher thread checks twice a second that the parent is still the supervisor (it also
    covers a supervisor that died before the first, and a parent-death signal that did not
    arrive). Either way the worker shuts down as on SIGTERM — stops taking connections, drains
    — and if that has not ended the process after ``grace_s``, it exits at once: a worker
    orphaned by a ``kill -9`` of its supervisor never goes on serving and writing.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError) as exc:
            log.warning("couldn't ask for a parent-death signal: %s", exc)

    def watch() -> None:
        while os.getppid() == supervisor_pid:
            time.sleep(0.5)
        log.error("the supervisor (pid %d) is gone: shutting this worker down", supervisor_pid)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace_s)
        os._exit(1)

    threading.Thread(target=watch, name="supervisor-watch", daemon=True).start()


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory``: settings from ``AMNESTY_*`` environment variables;
    logs as JSON lines on stderr. A worker of ``amnesty serve --workers N`` (``SUPERVISOR_ENV``
    set) dies with its supervisor."""
    configure_json_logging()
    settings = Settings()
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if supervisor is not None and supervisor.isdecimal():
        die_with_supervisor(int(supervisor), settings.shutdown_timeout_s + 5)
    return create_app(settings)
