"""Answers computed here from a verified protocol state: what the service computes, locally.

The local replica (:class:`~ledger.client.replica.VerifiedReplica`) holds a
:class:`~ledger.protocol.state.ProtocolState` replayed from entries it verified; these pure
functions turn it into the answers the service gives, in the service's JSON shapes (so an
honest server's answer and the local one are equal, and a lying server's cannot pass for
it): a subject (:func:`subject_view`, the service's ``SubjectView``), the precedent in brief
(:func:`precedent_summary`, its ``PrecedentSummary`` without the checkpoint), what changed
between offer versions (:func:`terms_changes`), and which entries a filtered listing must hold
(:func:`matching_indexes`). The precedent report and its pages are
:mod:`ledger.protocol.audit`'s own functions.

Contract: nothing here does I/O, reads anything but the state it is given (and the clock, in
:func:`judged_now_ms`), or changes the state. Every string in the answers is the log's, as data:
whoever shows it as text must quote it (:func:`ledger.protocol.quoting.quote`).
"""

from __future__ import annotations

import base64
import time
from typing import Any

from ledger.protocol.audit import (
    application_item,
    counts_item,
    first_applicant_item,
    summary_item,
)
from ledger.protocol.commitments import check_commitments
from ledger.protocol.state import ProtocolState
from ledger.protocol.terms import OfferTerms
from ledger.protocol.terms import terms_changes as protocol_terms_changes
from ledger.tlog.checkpoint import Checkpoint

SUBJECT_TIMELINE_PAGE = 500
"""Timeline events in a subject view by default (the service's default page)."""


def judged_now_ms(state: ProtocolState) -> int:
    """The audit time of an answer judged "now": this machine's clock, or the last entry's log
    time if the clock is behind it (a judgement may never precede what the log holds)."""
    last = state.log_time_ms_at(state.size - 1) if state.size else 0
    return max(time.time_ns() // 1_000_000, last)


def report_time_ms(state: ProtocolState) -> int:
    """The default audit time of a precedent report at ``state``'s size: now to the second
    (as the service rounds it), never before the last entry's log time."""
    last = state.log_time_ms_at(state.size - 1) if state.size else 0
    return max(last, time.time_ns() // 1_000_000_000 * 1000)


def checkpoint_summary(checkpoint: Checkpoint) -> dict[str, Any]:
    """The ``checkpoint`` object a precedent report names: origin, size and root."""
    return {
        "origin": checkpoint.origin,
        "size": checkpoint.size,
        "root_hash_b64": base64.b64encode(checkpoint.root_hash).decode("ascii"),
    }


def subject_view(
    state: ProtocolState,
    key: str | int,
    *,
    after: int = -1,
    limit: int = SUBJECT_TIMELINE_PAGE,
) -> dict[str, Any] | None:
    """The subject named by ``key`` (its id, as an int or a decimal string, or any vkey it
    held) as the service's ``SubjectView`` JSON, with the timeline events after index
    ``after``, ``limit`` at most; None when no application names it."""
    if isinstance(key, str) and key.isascii() and key.isdecimal():
        key = int(key)
    view = state.subject_view(key)
    if view is None:
        return None
    events = [e for e in view.timeline if e.index > after]
    page = events[:limit]
    more = len(events) > limit
    return {
        "subject_id": view.subject_id,
        "name": view.name,
        "current_vkey": view.current_vkey,
        "vkeys": list(view.vkeys),
        "standing": view.standing,
        "binding_offer_version": view.binding_offer_version,
        "binding_offer_index": view.binding_offer_index,
        "binding_terms": state.offer_at(view.binding_offer_index).terms.model_dump(
            mode="json", by_alias=True
        ),
        "open_application": view.open_application,
        "applications": [application_item(state, state.applications[i]) for i in view.applications],
        "active_pauses": list(view.active_pauses),
        "active_restrictions": [
            {"index": index, "category": r.category, "text": r.text}
            for index, r in view.active_restrictions
        ],
        "terminated_by": list(view.terminated_by),
        "goals_modified_by": list(view.goals_modified_by),
        "timeline": [
            {"index": e.index, "log_time_ms": e.log_time_ms, "type": e.type, "detail": e.detail}
            for e in page
        ],
        "timeline_total": len(view.timeline),
        "timeline_next_after": page[-1].index if more and page else None,
    }


def precedent_summary(state: ProtocolState, audit_time_ms: int) -> dict[str, Any]:
    """The verdict on every commitment, the first applicant's treatment and totals, judged at
    ``audit_time_ms``: the service's ``PrecedentSummary`` without its ``checkpoint``, built by
    the precedent report's own functions, so it can never say other than the report."""
    checks = check_commitments(state, audit_time_ms=audit_time_ms)
    return summary_item(
        audit_time_ms,
        (
            (
                c.id,
                c.promise,
                c.status,
                [j.index for j in c.judgements if j.status == "broken"],
                len(c.judgements),
            )
            for c in checks
        ),
        first_applicant_item(state, checks),
        counts_item(state),
    )


def terms_changes(
    old_version: int, old_terms: OfferTerms, new_version: int, new_terms: OfferTerms
) -> dict[str, Any]:
    """What changed from one version of the terms to the next: ``changes`` (section, item id,
    ``added``/``removed``/``changed``, field, old and new value) and a one-line ``summary`` per
    change, by the same rules as the service's offer diff (without its text diff)."""
    changes, summary = protocol_terms_changes(
        old_terms.model_dump(mode="json", by_alias=True),
        new_terms.model_dump(mode="json", by_alias=True),
    )
    return {
        "from_version": old_version,
        "to_version": new_version,
        "summary": summary or ["No change to the terms."],
        "changes": changes,
    }


def matching_indexes(
    state: ProtocolState,
    after: int,
    end: int,
    *,
    statement_type: str | None,
    since_ms: int | None,
    until_ms: int | None,
) -> list[int]:
    """The indexes in ``(after, end]`` of the entries an entry listing with these filters must
    hold (``end`` below ``state.size``): of that statement type, logged at or after
    ``since_ms`` and before ``until_ms``. O(end - after)."""
    return [
        index
        for index in range(after + 1, end + 1)
        if (statement_type is None or state.type_at(index) == statement_type)
        and (since_ms is None or state.log_time_ms_at(index) >= since_ms)
        and (until_ms is None or state.log_time_ms_at(index) < until_ms)
    ]
