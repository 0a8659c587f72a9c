"""``POST /v1/statements``: submit a signed statement; get its index and a proof once durable."""

from __future__ import annotations

import base64
from functools import partial
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from api.clock import now_ms
from api.deps import Service
from api.heads import TreeHeadInfo
from api.limits import RateLimiter, rate_limited, signature_accounts, signature_lines
from api.present import json_response, tree_head
from api.problems import ProblemError, problem_document, status_for
from api.service import LedgerService
from api.wire import StatementPreview, StatementPreviewResponse, problem_responses
from ledger.errors import LedgerError, MalformedError
from ledger.server.sequencer import Prepared, Receipt
from ledger.statements.preview import preview_statement
from ledger.tlog.merkle import leaf_hash

router = APIRouter(tags=["statements"])


class SubmissionReceipt(BaseModel):
    """What a submitter gets back once its statement is durably in the log."""

    index: int = Field(description="the entry's index in the log")
    duplicate: bool = Field(description="true if the statement was already logged (at index)")
    leaf_hash: str = Field(description="base64 RFC 6962 leaf hash of the entry")
    entry: dict[str, Any] = Field(description="the log entry (decoded canonical JSON)")
    entry_b64: str = Field(description="base64 of the exact entry bytes (the leaf data)")
    checkpoint: str = Field(description="the signed checkpoint the proof is against")
    tlog_proof: str = Field(description="C2SP tlog-proof of the entry against the checkpoint")


_EXAMPLE_NOTE = "amnesty-ledger.statement/v1\n{...canonical JSON...}\n\n— signer base64sig\n"


@router.post(
    "/v1/statements",
    response_model=SubmissionReceipt,
    status_code=201,
    summary="Submit a signed statement",
    responses={
        200: {"description": "already logged: the existing entry", "model": SubmissionReceipt},
        400: {"description": "malformed statement (problem document)"},
        403: {"description": "signature or authority check failed (problem document)"},
        413: {"description": "body over the size limit (problem document)"},
        422: {"description": "refused by the protocol's admission rules (problem document)"},
        429: {"description": "rate limited; see Retry-After"},
        503: {"description": "sequencer busy or halted; see Retry-After"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/plain": {"schema": {"type": "string"}, "example": _EXAMPLE_NOTE}},
        }
    },
)
async def submit_statement(request: Request, service: Service) -> Response:
    """The body is the signed statement note (C2SP signed-note; see docs/FORMAT.md).

    The response comes only after the entry is durably committed under a signed checkpoint;
    it carries a C2SP ``tlog-proof`` that verifies offline with the log's vkey. 201 for a new
    entry, 200 (``duplicate``) for a statement already logged.
    """
    body = await request.body()
    client = _client(request)
    budget = signature_budget(request)
    signatures = signature_lines(body)
    accounts = signature_accounts(client, body)
    # A client, or a key, whose refused statements have used up its budget of signature
    # checks is refused before anything is checked: bad signatures cost the server, not the
    # sender.
    wait = max(budget.wait_for(account, 1) for account in accounts)
    if wait > 0:
        raise rate_limited(client, wait, "more statements after refused ones (signature budget)")
    try:
        if signatures <= INLINE_SIGNATURES:
            # On the event loop: pure CPU, well under a millisecond for a few signatures, less
            # than a thread-pool hop would cost under the GIL.
            prepared = service.policy.prepare(body)
        else:
            # Many signature lines: off the event loop, so no request waits behind them.
            prepared = await run_in_threadpool(service.policy.prepare, body)
    except LedgerError:
        for account, cost in accounts.items():
            budget.spend(account, cost)
        raise
    receipt, data = await service.submit(prepared, partial(receipt_json, service))
    return Response(
        data, status_code=200 if receipt.duplicate else 201, media_type="application/json"
    )


def receipt_fields(service: LedgerService, receipt: Receipt) -> dict[str, Any]:
    """The receipt as JSON fields (:class:`SubmissionReceipt`), with a tlog-proof against the
    checkpoint that covers the entry. ``entry`` is the entry's canonical JSON spliced in as is
    (an :class:`orjson.Fragment`): it is already valid JSON, so it is not parsed again."""
    signed = service.view.open(receipt.checkpoint)
    proof = service.view.tlog_proof(receipt.index, signed, with_cosignatures=False)
    return {
        "index": receipt.index,
        "duplicate": receipt.duplicate,
        "leaf_hash": base64.b64encode(leaf_hash(receipt.entry)).decode(),
        "entry": orjson.Fragment(receipt.entry),
        "entry_b64": base64.b64encode(receipt.entry).decode(),
        "checkpoint": receipt.checkpoint.decode(),
        "tlog_proof": proof.decode(),
    }


def receipt_json(service: LedgerService, receipt: Receipt) -> bytes:
    """The receipt document (:class:`SubmissionReceipt`) as JSON bytes."""
    return orjson.dumps(receipt_fields(service, receipt))


# -- many statements in one request ---------------------------------------------------------------


class BatchSubmission(BaseModel):
    """``POST /v1/statements/batch``: signed statements, each a C2SP signed note as text."""

    statements: list[str] = Field(
        description="signed statement notes (the text POST /v1/statements takes), at most "
        "max_batch_statements (1,000 by default) and max_batch_body_bytes in all"
    )


class BatchOutcome(BaseModel):
    """One statement's outcome: its receipt (201 new, 200 already logged) or a problem."""

    status: int = Field(description="201, 200, or the problem's status (400, 403, 422, 503…)")
    receipt: SubmissionReceipt | None = Field(default=None, description="when logged")
    problem: dict[str, Any] | None = Field(
        default=None, description="RFC 9457 problem document when refused"
    )


class BatchReceipts(BaseModel):
    """The outcomes, in the order the statements were given."""

    results: list[BatchOutcome]


INLINE_SIGNATURES = 8
"""Statements with at most this many signature lines are checked on the event loop."""


def _client(request: Request) -> str:
    return str((request.client.host if request.client else None) or "unknown")


def signature_budget(request: Request) -> RateLimiter:
    """The budget of signature checks spent on refused statements, per client and per key
    (setting ``refused_signature_budget`` a minute each; :func:`~api.limits.signature_accounts`):
    each statement refused before it is queued costs its signature lines; an empty budget
    answers 429 before checking anything more."""
    budget: RateLimiter = request.app.state.signature_budget
    return budget


def _problem_for(exc: LedgerError) -> dict[str, Any]:
    status, title, kind = status_for(exc)
    return problem_document(status, title, str(exc), kind=kind)


def _prepare_all(service: LedgerService, notes: list[str]) -> list[Prepared | LedgerError]:
    """Parse and check every statement (a refusal is that statement's outcome, not the
    request's)."""
    out: list[Prepared | LedgerError] = []
    for position, note in enumerate(notes):
        try:
            data = note.encode("utf-8")
        except UnicodeEncodeError:
            out.append(MalformedError(f"couldn't read statement {position}: not valid UTF-8"))
            continue
        try:
            out.append(service.policy.prepare(data))
        except LedgerError as exc:
            out.append(exc)
    return out


@router.post(
    "/v1/statements/batch",
    response_model=BatchReceipts,
    summary="Submit many signed statements in one request",
    responses={
        400: {"description": "the body is not the JSON object described (problem document)"},
        413: {"description": "body over the batch size limit (problem document)"},
        422: {"description": "no statements, or more than the limit (problem document)"},
        429: {"description": "rate limited (one token per statement); see Retry-After"},
        503: {"description": "read-only server; see Retry-After"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": BatchSubmission.model_json_schema(),
                    "example": {"statements": [_EXAMPLE_NOTE]},
                }
            },
        }
    },
)
async def submit_statements(request: Request, service: Service) -> Response:
    """Each statement is checked and logged exactly as by ``POST /v1/statements`` and gets its
    own outcome, in order: a receipt with a C2SP ``tlog-proof`` (sent only once every logged
    statement of the request is durably committed), or a problem document. One refused
    statement does not refuse the others; nothing is written for a refused one. The request
    itself is refused (and nothing written) when its body is not ``{"statements": [text,
    …]}`` with 1 to ``max_batch_statements`` items, or when the client's write rate allows
    fewer statements than it holds (one token per statement).
    """
    body = await request.body()
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ProblemError(
            400, "Malformed input", f"couldn't read the batch: not JSON ({exc})", kind="malformed"
        ) from None
    notes = parsed.get("statements") if isinstance(parsed, dict) else None
    if (
        not isinstance(parsed, dict)
        or set(parsed) != {"statements"}
        or not isinstance(notes, list)
        or not all(isinstance(n, str) for n in notes)
    ):
        raise ProblemError(
            400,
            "Malformed input",
            'couldn\'t read the batch: the body must be {"statements": [text, ...]}, each text '
            "a signed statement note",
            kind="malformed",
        )
    limit = service.settings.max_batch_statements
    if not 1 <= len(notes) <= limit:
        raise ProblemError(
            422,
            "Invalid request parameters",
            f"couldn't accept a batch of {len(notes)} statements: send 1 to {limit}",
            kind="invalid-parameters",
        )
    # The rate-limit middleware took one token for the request; a batch pays one a statement.
    client = _client(request)
    wait = service.limiter.check(client, cost=len(notes) - 1) if len(notes) > 1 else 0.0
    if wait > 0:
        raise rate_limited(client, wait, f"{len(notes)} statements")
    budget = signature_budget(request)
    accounts = [signature_accounts(client, note.encode("utf-8", "replace")) for note in notes]
    wait = max(budget.wait_for(a, 1) for charged in accounts for a in charged)
    if wait > 0:
        raise rate_limited(client, wait, "more statements after refused ones (signature budget)")
    # Off the event loop: a thousand statements take a few hundred milliseconds to check.
    prepared = await run_in_threadpool(_prepare_all, service, notes)
    for charged, item in zip(accounts, prepared, strict=True):
        if isinstance(item, LedgerError):
            for account, cost in charged.items():
                budget.spend(account, cost)
    ready = [p for p in prepared if isinstance(p, Prepared)]
    logged = iter(await service.submit_many(ready, partial(receipt_json, service)) if ready else [])
    results: list[dict[str, Any]] = []
    for item in prepared:
        outcome = next(logged) if isinstance(item, Prepared) else item
        if isinstance(outcome, LedgerError):
            problem = _problem_for(outcome)
            results.append({"status": problem["status"], "problem": problem})
        else:
            receipt, data = outcome
            results.append(
                {"status": 200 if receipt.duplicate else 201, "receipt": orjson.Fragment(data)}
            )
    return Response(orjson.dumps({"results": results}), media_type="application/json")


@router.post(
    "/v1/statements/preview",
    response_model=StatementPreviewResponse,
    summary="Dry run: would this statement be admitted, and what would it do to the audit?",
    responses=problem_responses(413, 429, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/plain": {"schema": {"type": "string"}, "example": _EXAMPLE_NOTE}},
        }
    },
)
async def preview_statement_route(request: Request, service: Service) -> Response:
    """The body is a statement note, signed or not yet (members preview before they sign).
    Nothing is logged. The answer says, for the statement as the next entry at the latest
    checkpoint and logged now: each numbered admission step and whether it passes, and each
    commitment's verdict before and after it, naming the acts it would newly make broken —
    the same preview as ``amnesty statement check``, computed here (``computed_by``). A bad
    statement is not an error: its failing step says why. Costs a scan of the protocol state,
    so at most one such computation runs at a time (503 ``busy`` with ``Retry-After``); like
    a submission, each takes a token of the client's write rate (429)."""
    body = await request.body()  # a write: capped, and one token of the client's write rate
    preview, head = await run_in_threadpool(_preview, service, body)
    answer = StatementPreviewResponse(
        checkpoint=tree_head(head),
        computed_by="server",
        preview=StatementPreview.model_validate(preview.to_json()),
    )
    return json_response(answer)


def _preview(service: LedgerService, body: bytes) -> tuple[Any, TreeHeadInfo]:
    with service.heavy("a statement preview"), service.reader.latest() as (state, signed):
        head = service.head_of(signed)
        last = state.log_time_ms_at(state.size - 1) if state.size else 0
        at = max(now_ms(), last)
        preview = preview_statement(
            state,
            body,
            origin=service.origin,
            prev_root=signed.checkpoint.root_hash,
            log_time_ms=at,
        )
    return preview, head
