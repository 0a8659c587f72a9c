"""A tlog-witness HTTP server: ``create_witness_app(settings)``; nothing is built at import time.

Two routes over the rules in :mod:`ledger.witness.witness`, following https://c2sp.org/tlog-witness
at C2SP/C2SP commit 95978ca8 (July 2026: PR #273's read endpoint, PR #277's origin hash, PR
#280's 409/422). ``POST <prefix>/add-checkpoint`` answers:

- 200, ``text/plain; charset=utf-8``: the cosignature lines, each ``— <name> <base64>\\n``: one
  per key of the witness (Ed25519 cosignature/v1, and ML-DSA-44 subtree/v1 if it has one);
- 409, ``Content-Type: text/x.tlog.size`` exactly: the witness's tree size and a newline (only
  when ``old`` is not the size it holds);
- 422: the proof does not verify, or a same-size checkpoint has another root (a split view);
- 400, 403, 404, 413, 503: RFC 9457 problem documents (``api.problems``).

``GET <monitoring prefix>/<origin hash>/checkpoint`` (the spec's optional read endpoint for
monitors; ``<origin hash>`` is the lower-case hex SHA-256 of the log's origin) answers:

- 200, ``text/plain; charset=utf-8``, ``Cache-Control: no-cache``: the latest checkpoint the
  witness cosigned for that log, with the log's verified signature lines and the witness's
  cosignature lines as ``add-checkpoint`` returned them;
- 404 (a problem document): no configured log has that origin hash, or the witness never
  cosigned a checkpoint of it. The monitoring prefix is the submission prefix unless set.

A witness keeps no database: its whole state is one JSON file
(:class:`ledger.witness.witness.JsonFileWitnessState`). Requests are decided one at a time under a lock,
with the clock read inside it, so cosignature timestamps follow the order of the state's writes.
Reads take no such lock: the state file's own lock gives them a complete record.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.limits import BodySizeLimit
from api.problems import install_problem_handlers, problem_response
from ledger.atomic import write_atomically
from ledger.errors import (
    FatalError,
    LedgerError,
    MalformedError,
    ProofError,
    SignatureError,
    StorageError,
)
from ledger.tlog.note import VerifierKey, excerpt
from ledger.verifier.evidence import SplitView, format_evidence
from ledger.witness.witness import (
    ADD_CHECKPOINT_PATH,
    CHECKPOINT_PATH_SUFFIX,
    SIZE_CONTENT_TYPE,
    ConflictingRootError,
    JsonFileWitnessState,
    StaleTimestampError,
    UnknownLogError,
    Witness,
    WitnessConflictError,
    format_size,
    parse_add_checkpoint,
    parse_witness_keys,
)

log = logging.getLogger("witness")

COSIGNATURE_CONTENT_TYPE = "text/plain; charset=utf-8"


def posix_seconds() -> int:
    """The current POSIX time in whole seconds (the cosignature timestamp unit)."""
    return time.time_ns() // 1_000_000_000


@dataclass(frozen=True, slots=True)
class WitnessSettings:
    """Everything a witness server needs.

    ``key_path``: the witness's key file: a ``PRIVATE+KEY+…`` line of type 0x04, then
    optionally one of type 0x06 under the same name (``parse_witness_keys``). ``state_path``: its JSON
    state; created empty only if ``create_state`` (otherwise a missing file is an error).
    ``log_vkeys``: the vkeys of the logs it witnesses (type 0x01 or 0x06, named after their
    origin).
    ``prefix``: the submission prefix, ``""`` or ``/path`` without a trailing slash.
    ``monitoring_prefix``: the read endpoint's prefix, same form; ``None``: the submission prefix.
    ``evidence_dir``: where split views it refuses are written as evidence files, if set.
    ``clock``: POSIX seconds for cosignature timestamps.
    """

    key_path: Path
    state_path: Path
    log_vkeys: tuple[str, ...]
    prefix: str = ""
    monitoring_prefix: str | None = None
    create_state: bool = False
    evidence_dir: Path | None = None
    max_body_bytes: int = 64 * 1024
    clock: Callable[[], int] = posix_seconds


def monitoring(settings: WitnessSettings) -> str:
    """The monitoring prefix in effect: the setting, else the submission prefix."""
    return settings.prefix if settings.monitoring_prefix is None else settings.monitoring_prefix


def build_witness(settings: WitnessSettings) -> Witness:
    """Load the key, parse the log keys, open the state; raise a LedgerError on any problem."""
    for what, prefix in (("prefix", settings.prefix), ("monitoring prefix", monitoring(settings))):
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise MalformedError(
                f"couldn't use witness {what} {prefix!r}: want '' or '/path' without a "
                "trailing slash"
            )
    if not settings.log_vkeys:
        raise MalformedError("couldn't start witness: no log keys configured")
    try:
        key_text = settings.key_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StorageError(f"couldn't read witness key {settings.key_path}: {exc}") from exc
    signer, *extra = parse_witness_keys(key_text)
    logs = [VerifierKey.parse(vkey) for vkey in settings.log_vkeys]
    state = JsonFileWitnessState(
        settings.state_path, signer.verifier_key, create_missing=settings.create_state
    )
    return Witness(signer, logs, state, extra_signers=extra)


def _problem(status: int, title: str, exc: LedgerError, kind: str, path: str) -> JSONResponse:
    headers = {"Retry-After": "1"} if status == 503 else None
    return problem_response(status, title, str(exc), kind=kind, instance=path, headers=headers)


def _error_response(exc: LedgerError, path: str) -> Response:
    """Map a witness error to the status tlog-witness specifies for it."""
    if isinstance(exc, WitnessConflictError):
        return Response(
            content=format_size(exc.latest_size),
            status_code=409,
            headers={"Content-Type": SIZE_CONTENT_TYPE},
        )
    if isinstance(exc, ConflictingRootError):
        return _problem(422, "Split view: another root at this size", exc, "split-view", path)
    if isinstance(exc, UnknownLogError):
        return _problem(404, "Unknown log", exc, "unknown-log", path)
    if isinstance(exc, SignatureError):
        return _problem(403, "Log signature check failed", exc, "signature", path)
    if isinstance(exc, ProofError):
        return _problem(422, "Consistency proof failed", exc, "consistency", path)
    if isinstance(exc, MalformedError):
        return _problem(400, "Malformed add-checkpoint request", exc, "malformed", path)
    if isinstance(exc, StaleTimestampError):
        return _problem(503, "Witness clock is behind", exc, "clock", path)
    if isinstance(exc, FatalError | StorageError):
        return _problem(503, "Witness state unavailable", exc, "storage", path)
    return _problem(400, "Refused", exc, "refused", path)


def _keep_evidence(directory: Path, evidence: SplitView) -> Path:
    """Write split-view evidence, named by the refused checkpoint's hash (idempotent)."""
    name = hashlib.sha256(evidence.checkpoint2).hexdigest()[:32]
    path = directory / f"split-view-{name}.json"
    write_atomically(path, format_evidence(evidence))
    return path


def create_witness_app(settings: WitnessSettings) -> FastAPI:
    """Build the witness's ASGI app for ``settings``; the key and state are opened in lifespan.

    Call :func:`build_witness` first to fail fast with a clear error: a lifespan failure only
    stops the server.
    """
    decide = threading.Lock()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        witness = build_witness(settings)
        app.state.witness = witness
        log.info(
            "witness %s serving %s on %s%s; reads on %s/<origin hash>%s",
            witness.signer.vkey,
            ", ".join(witness.origins),
            settings.prefix,
            ADD_CHECKPOINT_PATH,
            monitoring(settings),
            CHECKPOINT_PATH_SUFFIX,
        )
        yield

    app = FastAPI(
        title="amnesty-ledger witness",
        summary="A C2SP tlog-witness: cosigns checkpoints consistent with those it saw before",
        version="0.1.0",
        lifespan=lifespan,
    )
    install_problem_handlers(app)
    router = APIRouter(prefix=settings.prefix)

    def add(witness: Witness, body: bytes) -> bytes:
        with decide:
            request = parse_add_checkpoint(body)
            lines = witness.add_checkpoint(request, settings.clock())
            return "".join(line.line() for line in lines).encode("utf-8")

    @router.post(
        ADD_CHECKPOINT_PATH,
        summary="Submit a checkpoint with a consistency proof; get a cosignature",
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {}}, "description": "cosignature line(s)"},
            409: {"content": {SIZE_CONTENT_TYPE: {}}, "description": "the witness's size"},
        },
    )
    async def add_checkpoint(request: Request) -> Response:
        """Body: ``old <N>``, proof lines (base64), an empty line, the checkpoint note."""
        witness: Witness = request.app.state.witness
        body = await request.body()
        path = request.url.path
        try:
            lines = await run_in_threadpool(add, witness, body)
        except ConflictingRootError as exc:
            log.warning("refused a split view: %s", exc)
            if settings.evidence_dir is not None and exc.evidence is not None:
                try:
                    kept = await run_in_threadpool(
                        _keep_evidence, settings.evidence_dir, exc.evidence
                    )
                    log.warning("split-view evidence written to %s", kept)
                except StorageError as err:
                    log.error("couldn't keep split-view evidence: %s", err)
            return _error_response(exc, path)
        except ProofError as exc:
            # The log signed this checkpoint, so the request may be evidence of misbehaviour.
            log.warning("refused an inconsistent checkpoint: %s; request: %r", exc, body)
            return _error_response(exc, path)
        except LedgerError as exc:
            log.info("refused add-checkpoint: %s", exc)
            return _error_response(exc, path)
        return Response(content=lines, headers={"Content-Type": COSIGNATURE_CONTENT_TYPE})

    app.include_router(router)
    reads = APIRouter(prefix=monitoring(settings))

    @reads.get(
        "/{hashed}" + CHECKPOINT_PATH_SUFFIX,
        summary="The latest checkpoint this witness cosigned for a log, with its cosignatures",
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {}}, "description": "the cosigned checkpoint"},
            404: {"description": "no such log, or never cosigned"},
        },
    )
    async def cosigned_checkpoint(hashed: str, request: Request) -> Response:
        """``hashed``: the lower-case hex SHA-256 of the log's origin."""
        witness: Witness = request.app.state.witness
        path = request.url.path
        origin = witness.log_for_hash(hashed)
        try:
            note = (
                None
                if origin is None
                else await run_in_threadpool(witness.cosigned_checkpoint, origin)
            )
        except LedgerError as exc:
            log.error("couldn't serve a cosigned checkpoint: %s", exc)
            return _error_response(exc, path)
        if note is None:
            return _problem(
                404,
                "No cosigned checkpoint",
                UnknownLogError(
                    f"couldn't find a cosigned checkpoint for origin hash {excerpt(hashed)}: no "
                    "log this witness knows has it, or the witness never cosigned its checkpoint"
                ),
                "unknown-log",
                path,
            )
        return Response(
            content=note,
            headers={"Content-Type": COSIGNATURE_CONTENT_TYPE, "Cache-Control": "no-cache"},
        )

    app.include_router(reads)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app
