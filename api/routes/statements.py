"""``POST /v1/statements``: submit a signed statement; get its index and a proof once durable."""

from __future__ import annotations

import base64
from functools import partial
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from api.deps import Service
from api.service import LedgerService
from ledger.merkle import leaf_hash
from ledger.sequencer import Receipt

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
    # Parsing and signature checks run on the event loop: pure CPU with no I/O, bounded by the
    # body cap (well under a millisecond for a statement of a few signatures). A thread-pool hop
    # would cost more than that under the GIL.
    prepared = service.policy.prepare(body)
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
