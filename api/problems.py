"""RFC 9457 problem documents for every error the service returns.

Every error, including bad input the framework rejects before our code runs, is answered with
``application/problem+json``: ``type``, ``title``, ``status`` and a ``detail`` that says what was
wrong with the values in it. Bad input is never a 500.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from ledger.errors import (
    AuthorityError,
    ConflictError,
    DuplicateError,
    FatalError,
    LedgerError,
    MalformedError,
    RefusedError,
    SignatureError,
    StorageError,
    VerificationError,
)
from ledger.server.logview import NotFoundError
from ledger.server.sequencer import QueueFullError

log = logging.getLogger("api")

PROBLEM_JSON = "application/problem+json"
_TYPE_BASE = "https://amnesty-ledger.invalid/problems/"


class ProblemError(Exception):
    """Raise from a route to answer with a problem document."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        kind: str = "error",
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.kind = kind
        self.headers = headers or {}
        self.extra = extra or {}


def retry_later(title: str, detail: str, *, kind: str, retry_after_s: int) -> ProblemError:
    """A 503 problem that tells the client when to come back (``Retry-After``, in seconds):
    for a server that is busy or catching up, never for one that is broken."""
    return ProblemError(503, title, detail, kind=kind, headers={"Retry-After": str(retry_after_s)})


class ProblemJSONResponse(JSONResponse):
    """``application/problem+json``, rendered as ASCII: a detail that quotes the client's input
    (which may hold lone surrogates, not encodable as UTF-8) can never turn a 4xx into a 500."""

    media_type = PROBLEM_JSON

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def problem_document(
    status: int,
    title: str,
    detail: str,
    *,
    kind: str,
    instance: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An RFC 9457 problem document (the JSON object): every problem this service answers,
    whole (:func:`problem_response`) or per statement of a batch, is built here."""
    body: dict[str, Any] = {
        "type": _TYPE_BASE + kind,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance is not None:
        body["instance"] = instance
    if extra:
        body.update(extra)
    return body


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    kind: str,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    """A ``application/problem+json`` response."""
    body = problem_document(status, title, detail, kind=kind, instance=instance, extra=extra)
    return ProblemJSONResponse(body, status_code=status, headers=headers)


def status_for(exc: LedgerError) -> tuple[int, str, str]:
    """Map a core error family to (HTTP status, title, problem kind)."""
    if isinstance(exc, NotFoundError):
        return 404, "Not found", "not-found"
    if isinstance(exc, DuplicateError):
        return 409, "Already logged", "duplicate"
    if isinstance(exc, SignatureError | AuthorityError):
        return 403, "Signature or authority check failed", "signature"
    if isinstance(exc, VerificationError):
        return 422, "Verification failed", "verification"
    if isinstance(exc, MalformedError):
        return 400, "Malformed input", "malformed"
    if isinstance(exc, RefusedError):
        return 422, "Refused by the protocol's admission rules", "refused"
    if isinstance(exc, QueueFullError):
        return 503, "Sequencer busy", "busy"
    if isinstance(exc, FatalError):
        return 503, "Log halted", "halted"
    if isinstance(exc, ConflictError | StorageError):
        return 503, "Storage unavailable", "storage"
    return 400, "Bad request", "bad-request"


def install_problem_handlers(app: FastAPI) -> None:
    """Route every exception type to a problem document."""

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(
            exc.status,
            exc.title,
            exc.detail,
            kind=exc.kind,
            instance=request.url.path,
            headers=exc.headers,
            extra=exc.extra,
        )

    @app.exception_handler(LedgerError)
    async def _ledger(request: Request, exc: LedgerError) -> JSONResponse:
        status, title, kind = status_for(exc)
        headers = {"Retry-After": "1"} if status == 503 else None
        return problem_response(
            status, title, str(exc), kind=kind, instance=request.url.path, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors)
        return problem_response(
            422,
            "Invalid request parameters",
            detail,
            kind="invalid-parameters",
            instance=request.url.path,
            extra={"errors": errors},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(
            exc.status_code,
            str(exc.detail) if exc.status_code != 404 else "Not found",
            str(exc.detail),
            kind="http-" + str(exc.status_code),
            instance=request.url.path,
            headers=dict(exc.headers) if exc.headers else None,
        )

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect) -> Response:
        # The client went away (or BodySizeLimit already answered 413): nothing to say.
        return Response(status_code=499)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return problem_response(
            500,
            "Internal error",
            f"couldn't serve {request.url.path}: an internal error occurred",
            kind="internal",
            instance=request.url.path,
        )
