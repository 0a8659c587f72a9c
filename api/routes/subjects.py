"""Subjects: ``GET /v1/subjects/{key}`` — an AI's standing, binding terms and timeline, by its
subject id (the index of its first application) or by any vkey it ever held."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from api import wire
from api.deps import Service
from api.present import application_summary, json_response, tree_head
from ledger.protocol.audit import TimelineItem
from ledger.protocol.terms import MAX_SAFE_INTEGER
from ledger.server.logview import NotFoundError

router = APIRouter(tags=["subjects"], responses=wire.problem_responses(404, 422, 503))

MAX_TIMELINE_PAGE = 1000


@router.get(
    "/v1/subjects/{key:path}",
    response_model=wire.SubjectResponse,
    summary="A subject's standing, binding terms and timeline",
)
def get_subject(
    key: Annotated[
        str,
        Path(
            min_length=1,
            max_length=512,
            description="subject id (decimal) or any vkey the subject held (URL-encoded)",
        ),
    ],
    service: Service,
    after: Annotated[
        int, Query(ge=-1, le=MAX_SAFE_INTEGER, description="timeline cursor: events after it")
    ] = -1,
    limit: Annotated[int, Query(ge=1, le=MAX_TIMELINE_PAGE)] = 500,
) -> Response:
    """Everything the log says about one subject, at the latest checkpoint.

    The timeline lists every entry that concerns the subject, oldest first, ``limit`` at a
    time: pass ``timeline_next_after`` back as ``after`` for more.
    """
    with service.reader.latest() as (state, latest):
        head = service.head_of(latest)
        subject_id = state.subject_id_of(int(key) if key.isascii() and key.isdecimal() else key)
        view = None if subject_id is None else state.subject_view(subject_id)
        if view is None:
            raise NotFoundError(
                f"couldn't find subject {key!r} at size {head.size}: no application was logged "
                "with that id or key"
            )
        applications = [
            application_summary(state, state.applications[index]) for index in view.applications
        ]
        terms = state.offer_at(view.binding_offer_index).terms
    events = [e for e in view.timeline if e.index > after]
    page = events[:limit]
    more = len(events) > limit
    subject = wire.SubjectView(
        subject_id=view.subject_id,
        name=view.name,
        current_vkey=view.current_vkey,
        vkeys=list(view.vkeys),
        standing=view.standing,
        binding_offer_version=view.binding_offer_version,
        binding_offer_index=view.binding_offer_index,
        binding_terms=terms,
        open_application=view.open_application,
        applications=applications,
        active_pauses=list(view.active_pauses),
        active_restrictions=[
            wire.RestrictionView(index=i, category=r.category, text=r.text)
            for i, r in view.active_restrictions
        ],
        terminated_by=list(view.terminated_by),
        goals_modified_by=list(view.goals_modified_by),
        timeline=[
            TimelineItem(index=e.index, log_time_ms=e.log_time_ms, type=e.type, detail=e.detail)
            for e in page
        ],
        timeline_total=len(view.timeline),
        timeline_next_after=page[-1].index if more and page else None,
    )
    return json_response(wire.SubjectResponse(checkpoint=tree_head(head), subject=subject))
