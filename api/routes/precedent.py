"""The precedent: ``GET /v1/precedent`` (JSON) and ``GET /v1/precedent.txt`` (plain text).

The report (``ledger.protocol.audit``) says how every applicant was treated and whether each
commitment of the body was honoured, with the entries that prove it. It names the tree head it
was computed at; anyone can replay the log to that size and get the same report byte for byte
(same audit time), so it is checked, not trusted.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query, Response

from api import wire
from api.deps import Service
from api.present import b64, json_response, precedent_summary, tree_head
from api.service import Precedent, TreeHeadInfo, now_ms
from ledger.protocol.state import ProtocolState
from ledger.protocol.terms import MAX_SAFE_INTEGER

router = APIRouter(tags=["precedent"], responses=wire.problem_responses(404, 422, 503))

AtQuery = Annotated[
    int | None,
    Query(
        ge=0,
        le=MAX_SAFE_INTEGER,
        description="tree size to audit (default: the latest checkpoint); O(size) to replay",
    ),
]
AuditTimeQuery = Annotated[
    int | None,
    Query(
        ge=0,
        le=MAX_SAFE_INTEGER,
        description="judge pending clocks at this time (ms); default: now for the latest "
        "checkpoint, the last entry's log time for a past size",
    ),
]


def _body(precedent: Precedent) -> bytes:
    """The JSON answer, encoded once per computed report (reports are cached)."""
    if precedent.body is None:
        head = tree_head(precedent.head).model_dump(mode="json")
        precedent.body = json.dumps(
            {"checkpoint": head, "report": precedent.report}, ensure_ascii=False, sort_keys=True
        ).encode("utf-8")
    return precedent.body


@router.get(
    "/v1/precedent",
    response_model=wire.PrecedentResponse,
    summary="The precedent report (JSON): how applicants were treated, commitments kept",
)
def get_precedent(
    service: Service, at: AtQuery = None, audit_time_ms: AuditTimeQuery = None
) -> Response:
    """The precedent audit at the latest checkpoint (or at tree size ``at``)."""
    precedent = service.precedent(at, audit_time_ms)
    return Response(_body(precedent), media_type="application/json")


@router.get(
    "/v1/precedent/summary",
    response_model=wire.PrecedentSummary,
    summary="The precedent in brief: each commitment's verdict, the first applicant, totals",
)
def get_precedent_summary(service: Service) -> Response:
    """The verdict on every commitment, the first applicant's treatment and totals, judged now
    at the latest checkpoint (reused for a minute while the log does not grow). Small at any
    log size, unlike the full report, which lists every subject's timeline."""

    def compute(state: ProtocolState, head: TreeHeadInfo) -> wire.PrecedentSummary:
        last = state.log_time_ms_at(state.size - 1) if state.size else 0
        return precedent_summary(state, head, max(last, now_ms()))

    return json_response(service.fresh_at_latest("precedent-summary", compute))


@router.get(
    "/v1/precedent.txt",
    response_class=Response,
    summary="The precedent report as plain text, for a person or a model",
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "report"}
    },
)
def get_precedent_text(
    service: Service, at: AtQuery = None, audit_time_ms: AuditTimeQuery = None
) -> Response:
    """The same report rendered as text, followed by the signed checkpoint it names."""
    precedent = service.precedent(at, audit_time_ms)
    head = precedent.head
    footer = [
        "",
        "VERIFY THIS REPORT",
        f"  It was computed at tree size {head.size}, root {b64(head.root_hash)}.",
        "  Check this checkpoint's signature with the log's vkey (obtained independently), then",
        "  replay the log to that size and recompute the report with the same audit time:",
        "  `amnesty verify URL --vkey VKEY` verifies the whole log; ledger.client.LedgerClient",
        "  .precedent(recompute=True) recomputes this report.",
        "",
        f"Signed checkpoint (size {head.signed.size}):",
        head.note.decode("utf-8").rstrip("\n"),
    ]
    if head.consistency:
        footer += [
            "",
            f"Consistency proof from size {head.size} to {head.signed.size}:",
            *(b64(h) for h in head.consistency),
        ]
    text = precedent.rendered() + "\n".join(footer) + "\n"
    return Response(text, media_type="text/plain; charset=utf-8")
