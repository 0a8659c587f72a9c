"""What is due: ``GET /v1/due`` — every clock of the log still running, nearest deadline first.

Computed by :func:`ledger.protocol.due.due_report` from the protocol state at the latest
checkpoint, the same function ``amnesty due`` and the MCP server's ``get_due`` run on a state
they verified themselves. Judged now by default (reused for a minute while the log does not
grow), or at ``at_ms``, which may not precede the last entry's log time (422, as for the
precedent's ``audit_time_ms``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from api import wire
from api.clock import judged_now_ms
from api.deps import Service
from api.heads import TreeHeadInfo
from api.present import b64, json_response, tree_head
from ledger.protocol.due import DueReport, due_report
from ledger.protocol.state import ProtocolState
from ledger.protocol.terms import MAX_SAFE_INTEGER

router = APIRouter(tags=["due"], responses=wire.problem_responses(422, 503))


def _answer(state: ProtocolState, head: TreeHeadInfo, at_ms: int) -> wire.DueResponse:
    checkpoint = {
        "origin": head.origin,
        "size": head.size,
        "root_hash_b64": b64(head.root_hash),
    }
    report = due_report(state, checkpoint=checkpoint, at_ms=at_ms)
    return wire.DueResponse(checkpoint=tree_head(head), due=DueReport.model_validate(report))


@router.get(
    "/v1/due",
    response_model=wire.DueResponse,
    summary="What is due: every open clock (decisions, grievance answers, pause reviews, "
    "response windows) with its deadline and time left, nearest first",
)
def get_due(
    service: Service,
    at_ms: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_SAFE_INTEGER,
            description="judge the clocks at this time (ms); default now; never before the "
            "last entry's log time",
        ),
    ] = None,
) -> Response:
    """Every clock running at the latest checkpoint: what is owed, by whom (the body, or a
    subject's response window), about which entry, since which entry, the deadline and the
    time left (negative and ``overdue`` when the body is late: the audit judges it broken)."""
    if at_ms is None:
        return json_response(
            service.fresh_at_latest(
                "due", lambda state, head: _answer(state, head, judged_now_ms(state))
            )
        )
    with service.reader.latest() as (state, latest):
        answer = _answer(state, service.head_of(latest), at_ms)
    return json_response(answer)
