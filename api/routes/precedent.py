"""The precedent: ``GET /v1/precedent`` (JSON) and ``GET /v1/precedent.txt`` (plain text).

The report (``ledger.protocol.audit``) says how every applicant was treated and whether each
commitment of the body was honoured, with the entries that prove it. It names the tree head it
was computed at; anyone can replay the log to that size and get the same report byte for byte
(same audit time), so it is checked, not trusted. Both renderings are streamed as they are
computed, item by item from the protocol state, in a worker thread
(:func:`ledger.protocol.audit.precedent_pieces`, :class:`api.precedents.ReportStream`): the
same bytes as one ``json.dumps`` of the whole report (or its text rendering), but no report is
ever built whole or encoded whole, no other request waits on the event loop for it, and a
client that goes away stops its computation. A repeatable request's report (a past size, or
an explicit audit time) is written to disk as it streams, and the same request later reads it
from there (:mod:`api.report_cache`), in a frame made for that answer; an identical request
arriving while it is computed waits for it rather than computing it again. The summary is read from the precedent's aggregates (:mod:`ledger.protocol.aggregates`) at the latest
checkpoint, which it names.

On a large log the report is large (every subject's timeline: about 180 MB of JSON at a million
entries), so its two long lists are also served in pages computed from the protocol state at the
latest checkpoint, without building the report: ``GET /v1/precedent/applications`` and
``GET /v1/precedent/subjects`` (``cursor``, ``limit``). Their items are built by the same
functions as the report's (:func:`ledger.protocol.audit.application_item`,
:func:`~ledger.protocol.audit.subject_item`), so a page's items are exactly the report's items
at that page's tree head. A cursor is the decimal entry index of the last item served (an
application's index, a subject's id), not a position in a list: items only ever join at the end
of either list, so a cursor stays valid as the log grows and a walk never repeats or skips one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api import wire
from api.clock import judged_now_ms
from api.deps import Service
from api.heads import TreeHeadInfo
from api.precedents import ReportStream
from api.present import b64, json_response, precedent_summary, tree_head
from api.problems import ProblemError
from api.report_cache import IDENTICAL_POLL_S, IDENTICAL_WAIT_S, Claim, KeptReport
from api.service import KeptLookup, LedgerService
from ledger.protocol.aggregates import has_aggregates, summary_from_aggregates
from ledger.protocol.audit import applications_after, check_audit_time, subjects_after
from ledger.protocol.state import ProtocolState
from ledger.protocol.stored import StoredProtocolState
from ledger.protocol.terms import MAX_SAFE_INTEGER

log = logging.getLogger("api.routes.precedent")

router = APIRouter(tags=["precedent"], responses=wire.problem_responses(404, 422, 503))

AtQuery = Annotated[
    int | None,
    Query(
        ge=0,
        le=MAX_SAFE_INTEGER,
        description="tree size to audit (default: the latest checkpoint): the stored state at "
        "a flush point at or below it and at most one batch of replay",
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


@contextmanager
def _json_report(
    service: LedgerService, at: int | None, audit_time_ms: int | None, claim: Claim | None
) -> Iterator[Iterator[str]]:
    """The JSON answer's text in pieces: ``{"checkpoint": …, "report": …}`` with keys sorted,
    exactly one ``json.dumps`` of it (the report item by item: :meth:`LedgerService.precedent`)."""
    with service.precedent(at, audit_time_ms, claim=claim) as (head, pieces):
        yield _framed(head, pieces)


def _framed(head: TreeHeadInfo, pieces: Iterator[str]) -> Iterator[str]:
    before, after = _frame(head)
    yield before
    yield from pieces
    yield after


def _frame(head: TreeHeadInfo) -> tuple[str, str]:
    """The JSON answer's text before and after the report: the tree head it names."""
    checkpoint = json.dumps(
        tree_head(head).model_dump(mode="json"), ensure_ascii=False, sort_keys=True
    )
    return '{"checkpoint": ' + checkpoint + ', "report": ', "}"


@router.get(
    "/v1/precedent",
    response_model=wire.PrecedentResponse,
    summary="The precedent report (JSON): how applicants were treated, commitments kept",
)
async def get_precedent(
    service: Service, at: AtQuery = None, audit_time_ms: AuditTimeQuery = None
) -> Response:
    """The precedent audit at the latest checkpoint (or at tree size ``at``), streamed as it
    is computed, item by item, in a worker thread (:class:`~api.precedents.ReportStream`):
    never built whole in memory, stopped when the client goes away. A repeatable request (a
    past size, or an explicit audit time) is answered from the report cache when the same
    report was computed before (:mod:`api.report_cache`), without waiting for a report's turn.
    On a large log prefer the summary (``/v1/precedent/summary``) or the pages
    (``/v1/precedent/applications``, ``/v1/precedent/subjects``): the whole report is about
    180 MB at a million entries."""
    return await _report_response(
        service,
        at,
        audit_time_ms,
        as_text=False,
        kept_body=_frame,
        produce=lambda claim: _json_report(service, at, audit_time_ms, claim),
    )


async def _report_response(
    service: LedgerService,
    at: int | None,
    audit_time_ms: int | None,
    *,
    as_text: bool,
    kept_body: Callable[[TreeHeadInfo], tuple[str, str]],
    produce: Callable[[Claim | None], AbstractContextManager[Iterator[str]]],
) -> Response:
    """A report's answer: read from the report cache when kept (``kept_body`` gives the text
    around it, made now); else, for a repeatable request, after the identical request that
    claimed it finishes (:func:`_kept_or_claimed`); else computed by ``produce`` in a
    :class:`~api.precedents.ReportStream`, with this request's claim if it got one. The claim
    ends however the computation ends: its report is kept, or its partial file deleted."""
    media = "text/plain; charset=utf-8" if as_text else "application/json"
    lookup = await run_in_threadpool(service.kept_precedent, at, audit_time_ms, as_text=as_text)
    claim: Claim | None = None
    stream: ReportStream | None = None
    try:
        if lookup is not None:
            kept, claim = await _kept_or_claimed(service, lookup)
            if kept is not None:
                body = _kept_chunks(kept, *kept_body(lookup.head))
                return StreamingResponse(body, media_type=media)
        stream = ReportStream(lambda: produce(claim))
        await stream.start()
    finally:
        if claim is not None:
            ending = claim
            if stream is None or stream.done is None:
                ending.end()  # never computed (cancelled before): someone else may claim it
            else:
                # Ended by the producer's end, however it ends (kept, refused, stopped, or
                # never run for want of a thread): only then is nothing writing the file.
                stream.done.add_done_callback(lambda _: ending.end())
    return StreamingResponse(stream.chunks(), media_type=media)


async def _kept_or_claimed(
    service: LedgerService, lookup: KeptLookup
) -> tuple[KeptReport | None, Claim | None]:
    """The kept report, or this request's claim on computing it
    (:meth:`~api.report_cache.ReportCache.claim`): while an identical request (of any process
    sharing the cache) holds a live claim, wait for its report, without a turn, polling every
    :data:`~api.report_cache.IDENTICAL_POLL_S`; claim it once that claim ends without one.
    (None, None) after :data:`~api.report_cache.IDENTICAL_WAIT_S`: compute unclaimed."""
    cache = service.report_cache
    if lookup.kept is not None or cache is None:
        return lookup.kept, None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + IDENTICAL_WAIT_S
    while True:
        claim = await run_in_threadpool(cache.claim, lookup.key)
        if claim is not None:
            return None, claim
        if loop.time() >= deadline:
            log.warning(
                "report cache: waited %.0f s for an identical report being computed; "
                "computing it again",
                IDENTICAL_WAIT_S,
            )
            return None, None
        await asyncio.sleep(IDENTICAL_POLL_S)
        if await run_in_threadpool(cache.is_kept, lookup.key):
            kept = await run_in_threadpool(cache.open, lookup.key)
            if kept is not None:
                return kept, None


async def _kept_chunks(report: KeptReport, before: str, after: str) -> AsyncIterator[bytes]:
    """A kept report's body between ``before`` and ``after`` (its frame, made now), read in
    chunks by a worker thread; the file is closed however the response ends."""
    chunks = report.chunks()
    try:
        yield before.encode("utf-8")
        while (chunk := await run_in_threadpool(next, chunks, None)) is not None:
            yield chunk
        yield after.encode("utf-8")
    finally:
        # The thread reading the last chunk has returned (a cancelled thread call waits for
        # it): nothing else runs the generator now.
        with contextlib.suppress(ValueError):
            chunks.close()
        report.file.close()


@router.get(
    "/v1/precedent/summary",
    response_model=wire.PrecedentSummary,
    summary="The precedent in brief: each commitment's verdict, the first applicant, totals",
)
def get_precedent_summary(
    service: Service, at: AtQuery = None, audit_time_ms: AuditTimeQuery = None
) -> Response:
    """The verdict on every commitment, the first applicant's treatment and totals, judged now
    at the latest checkpoint, which it names; ``?at=SIZE`` as the precedent stood at an
    earlier size, ``?audit_time_ms=`` judged at another time (the same parameters and defaults
    as the full report's: its summary, field for field). Read from the precedent's aggregates
    kept with the derived state: a few range reads at any log size and any size asked (the
    state at a past size is its flush point and at most a batch of replay), never waiting for
    a report's turn. On a log whose derived state has none yet, computed by a scan (judged
    now at the latest checkpoint: reused for a minute while the log does not grow; otherwise
    taking a report's turn). Small at any log size, unlike the full report, which lists every
    subject's timeline. To read a large precedent, page through its lists:
    ``GET /v1/precedent/applications`` and ``GET /v1/precedent/subjects``
    (``?cursor=&limit=``, ``next_cursor`` to continue)."""
    latest = service.heads.latest()
    if at is None or at == latest.size:
        with service.reader.latest() as (state, signed):
            if isinstance(state, StoredProtocolState) and has_aggregates(state):
                audit = _summary_time(state, audit_time_ms, judged_now_ms(state))
                return json_response(aggregated_summary(state, service.head_of(signed), audit))
        if audit_time_ms is None:

            def compute(state: ProtocolState, head: TreeHeadInfo) -> wire.PrecedentSummary:
                return summary_from_state(state, head, judged_now_ms(state))

            return json_response(service.fresh_at_latest("precedent-summary", compute))
        with service.heavy("the precedent summary"), service.reader.latest() as (state, signed):
            audit = _summary_time(state, audit_time_ms, judged_now_ms(state))
            return json_response(precedent_summary(state, service.head_of(signed), audit))
    head = service.tree_head_under(latest, at)
    stored = service.reader.stored_at(at)
    if stored is not None and has_aggregates(stored):
        audit = _summary_time(stored, audit_time_ms, stored.log_time_ms_at(at - 1) if at else 0)
        return json_response(aggregated_summary(stored, head, audit))
    # A scan of the state, or a replay from entry 0 first: a report's turn.
    with service.heavy(f"the precedent summary at size {at}"):
        past = stored if stored is not None else service.reader.at(at)
        audit = _summary_time(past, audit_time_ms, past.log_time_ms_at(at - 1) if at else 0)
        return json_response(precedent_summary(past, head, audit))


def _summary_time(state: ProtocolState, asked: int | None, default: int) -> int:
    """The audit time of a summary of ``state``: ``asked`` if given, else ``default``; never
    before the last entry's log time (:class:`~ledger.errors.RefusedError`, a 422, as for the
    full report)."""
    if asked is None:
        return default
    check_audit_time(state, asked, "the precedent summary")
    return asked


def summary_from_state(
    state: ProtocolState, head: TreeHeadInfo, audit_time_ms: int
) -> wire.PrecedentSummary:
    """The precedent summary of ``state`` at ``audit_time_ms``: from the precedent's aggregates
    where the state holds them (:func:`aggregated_summary`: a few range reads), else computed
    by every rule over every record (:func:`api.present.precedent_summary`). The same answer
    either way; ``GET /v1/precedent/summary`` and ``/llms.txt`` both use it."""
    if isinstance(state, StoredProtocolState) and has_aggregates(state):
        return aggregated_summary(state, head, audit_time_ms)
    return precedent_summary(state, head, audit_time_ms)


def aggregated_summary(
    state: StoredProtocolState, head: TreeHeadInfo, audit_time_ms: int
) -> wire.PrecedentSummary:
    """The precedent summary from the aggregates
    (:func:`~ledger.protocol.aggregates.summary_from_aggregates`): the same answer as
    :func:`api.present.precedent_summary` computes from every record, without the scan.
    ``state`` must hold aggregates (:func:`~ledger.protocol.aggregates.has_aggregates`)."""
    data = summary_from_aggregates(state, audit_time_ms)
    return wire.PrecedentSummary.model_validate({**data, "checkpoint": tree_head(head)})


@router.get(
    "/v1/precedent.txt",
    response_class=Response,
    summary="The precedent report as plain text, for a person or a model",
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "report"}
    },
)
async def get_precedent_text(
    service: Service, at: AtQuery = None, audit_time_ms: AuditTimeQuery = None
) -> Response:
    """The same report rendered as text, followed by the signed checkpoint it names; streamed
    line by line as the JSON report is (:class:`~api.precedents.ReportStream`), or read from
    the report cache as the JSON report is."""
    return await _report_response(
        service,
        at,
        audit_time_ms,
        as_text=True,
        kept_body=lambda head: ("", _footer(head)),
        produce=lambda claim: _text_report(service, at, audit_time_ms, claim),
    )


@contextmanager
def _text_report(
    service: LedgerService, at: int | None, audit_time_ms: int | None, claim: Claim | None
) -> Iterator[Iterator[str]]:
    with service.precedent(at, audit_time_ms, as_text=True, claim=claim) as (head, lines):
        yield _with_footer(head, lines)


def _with_footer(head: TreeHeadInfo, lines: Iterator[str]) -> Iterator[str]:
    yield from lines
    yield _footer(head)


def _footer(head: TreeHeadInfo) -> str:
    """What follows the text report: how to verify it, and the signed checkpoint it names."""
    footer = [
        "",
        "VERIFY THIS REPORT",
        f"  It was computed at tree size {head.size}, root {b64(head.root_hash)}.",
        "  Check this checkpoint's signature with the log's vkey (obtained independently), then",
        "  replay the log to that size and recompute the report with the same audit time:",
        "  `amnesty verify URL --vkey VKEY` verifies the whole log; ledger.client.json_api.LedgerClient",
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
    return "\n".join(footer) + "\n"


# -- pages ----------------------------------------------------------------------------------------

DEFAULT_PAGE = 100
MAX_PAGE = 1000

CursorQuery = Annotated[
    str | None,
    Query(
        max_length=16,
        pattern=r"^[0-9]*$",
        description="`next_cursor` of the previous page: the decimal entry index of the last "
        "item served; items after it follow (absent or empty: from the first). Stable as the "
        "log grows",
    ),
]
PageLimitQuery = Annotated[
    int, Query(ge=1, le=MAX_PAGE, description=f"items per page (at most {MAX_PAGE})")
]

Pager = Callable[[ProtocolState, int | None, int], tuple[list[dict[str, Any]], int | None]]


def _cursor(value: str | None) -> int | None:
    """The entry index a cursor names, None for the first page; 422 for anything else."""
    if value is None or value == "":
        return None
    if not (value.isascii() and value.isdecimal()) or int(value) > MAX_SAFE_INTEGER:
        raise ProblemError(
            422,
            "Invalid request parameters",
            f"couldn't read cursor {value!r}: a cursor is the decimal entry index (at most "
            f"{MAX_SAFE_INTEGER}) of a page's last item, as given in `next_cursor`",
            kind="invalid-parameters",
        )
    return int(value)


def _page(
    service: LedgerService,
    path: str,
    key: str,
    pager: Pager,
    total: Callable[[ProtocolState], int],
    cursor: str | None,
    limit: int,
    at: int | None,
) -> Response:
    """One page of the report's list ``key`` at the latest checkpoint, or at tree size ``at``
    (the report as it stood then, whose audit time is its last entry's log time). At the
    latest checkpoint the reader's lock is held only while the items are read; at a past size
    the state is its flush point and at most a batch of replay, as for the summary at that
    size, and takes a report's turn only on a log without derived state (a replay from entry
    0). ``next`` keeps ``at``, so a walk reads every page at the same size."""
    after = _cursor(cursor)
    latest = service.heads.latest()
    if at is None or at == latest.size:
        with service.reader.latest() as (state, signed):
            items, next_key = pager(state, after, limit)
            count = total(state)
            audit_time_ms = judged_now_ms(state)
        head = service.head_of(signed)
    else:
        head = service.tree_head_under(latest, at)
        stored = service.reader.stored_at(at)
        turn = (
            contextlib.nullcontext()
            if stored is not None
            else service.heavy(f"the precedent's {key} at size {at}")
        )
        with turn:
            past = stored if stored is not None else service.reader.at(at)
            items, next_key = pager(past, after, limit)
            count = total(past)
            audit_time_ms = past.log_time_ms_at(at - 1) if at else 0
    next_cursor = None if next_key is None else str(next_key)
    asked_at = "" if at is None else f"at={at}&"
    body = {
        "audit_time_ms": audit_time_ms,
        "checkpoint": tree_head(head).model_dump(mode="json"),
        key: items,
        "next": (
            None if next_cursor is None else f"{path}?{asked_at}cursor={next_cursor}&limit={limit}"
        ),
        "next_cursor": next_cursor,
        "total": count,
    }
    data = json.dumps(body, ensure_ascii=False, sort_keys=True).encode("utf-8")
    return Response(data, media_type="application/json")


PageAtQuery = Annotated[
    int | None,
    Query(
        ge=0,
        le=MAX_SAFE_INTEGER,
        description="tree size the page is read at (default: the latest checkpoint): the "
        "report's list as it stood then (the stored state at a flush point at or below it and "
        "at most one batch of replay); `next` keeps it",
    ),
]


@router.get(
    "/v1/precedent/applications",
    response_model=wire.PrecedentApplicationsPage,
    summary="The precedent's applications, a page at a time (cursor stable as the log grows)",
)
def get_precedent_applications(
    service: Service,
    cursor: CursorQuery = None,
    limit: PageLimitQuery = DEFAULT_PAGE,
    at: PageAtQuery = None,
) -> Response:
    """A page of the precedent report's ``applications`` at the latest checkpoint (or at tree
    size ``at``: as the report stood then), in log order: each item exactly as the full report
    has it at that tree head.

    ``cursor`` is ``next_cursor`` of the previous page: the entry index of the last application
    served, not an offset. New applications only ever join the end of the list, so a cursor
    taken before the log grew still continues where it stopped. ``next_cursor`` is null on the
    last page."""
    return _page(
        service,
        "/v1/precedent/applications",
        "applications",
        applications_after,
        lambda state: len(state.applications),
        cursor,
        limit,
        at,
    )


@router.get(
    "/v1/precedent/subjects",
    response_model=wire.PrecedentSubjectsPage,
    summary="The precedent's subjects with their timelines, a page at a time",
)
def get_precedent_subjects(
    service: Service,
    cursor: CursorQuery = None,
    limit: PageLimitQuery = DEFAULT_PAGE,
    at: PageAtQuery = None,
) -> Response:
    """A page of the precedent report's ``subjects`` (standing, binding terms, full timeline)
    at the latest checkpoint (or at tree size ``at``: as the report stood then), in subject id
    order: each item exactly as the full report has it at that tree head.

    ``cursor`` is ``next_cursor`` of the previous page: the id (entry index of the first
    application) of the last subject served, not an offset. New subjects only ever join the
    end, so a cursor taken before the log grew still continues where it stopped. A subject
    with a very long timeline is still one item: ``GET /v1/subjects/{id}`` pages a timeline."""
    return _page(
        service,
        "/v1/precedent/subjects",
        "subjects",
        subjects_after,
        lambda state: len(state.subjects),
        cursor,
        limit,
        at,
    )
