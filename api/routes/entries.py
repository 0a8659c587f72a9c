"""Entries: ``GET /v1/entries`` (filtered, cursor-paginated), ``GET /v1/entries/{index}`` (with
an inclusion proof and a C2SP tlog-proof), the tlog-proof file itself, and the entry holding a
statement (``GET /v1/statements/{statement_id}``).

Every answer is computed at the latest checkpoint and names it, so a client can check each
entry's inclusion proof against a checkpoint it verified with the log's key.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Response

from api import wire
from api.deps import Service
from api.present import entry_at, entry_view, json_response, tlog_proof_text, tree_head
from api.problems import ProblemError
from api.service import entry_index_key
from ledger.protocol.terms import MAX_SAFE_INTEGER
from ledger.server.logview import NotFoundError
from ledger.storage.base import EntryQuery

router = APIRouter(tags=["entries"], responses=wire.problem_responses(404, 422, 503))

MAX_PAGE = 200
IndexPath = Annotated[int, Path(ge=0, le=MAX_SAFE_INTEGER, description="the entry's index")]
TimeQuery = Annotated[int | None, Query(ge=0, le=MAX_SAFE_INTEGER)]


def _entry_response(service: Service, index: int) -> wire.EntryResponse:
    latest = service.heads.latest()
    head = service.head_of(latest)
    view = entry_at(service, index, head)
    return wire.EntryResponse(
        checkpoint=tree_head(head),
        entry=view,
        tlog_proof=tlog_proof_text(view, head),
        tlog_proof_url=f"/v1/entries/{index}/tlog-proof",
    )


@router.get(
    "/v1/entries",
    response_model=wire.EntryPage,
    summary="Entries in index order, filtered, with inclusion proofs",
)
def list_entries(
    service: Service,
    after: Annotated[
        int, Query(ge=-1, le=MAX_SAFE_INTEGER, description="cursor: return entries after it")
    ] = -1,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    statement_type: Annotated[
        str | None,
        Query(alias="type", pattern=r"^[a-z][a-z_]{0,63}$", description="statement type"),
    ] = None,
    subject: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=512,
            description="a subject id (index of its first application) or a vkey of any key it "
            "held; also any other vkey an entry names (e.g. a wild model's); vkeys are matched "
            "by public key",
        ),
    ] = None,
    signer: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=512,
            description="a signer's vkey, matched by public key (under any name it signed)",
        ),
    ] = None,
    since_ms: Annotated[TimeQuery, Query(description="log time at or after (ms)")] = None,
    until_ms: Annotated[TimeQuery, Query(description="log time before (ms)")] = None,
) -> Response:
    """A page of entries at the latest checkpoint, oldest first, each with its inclusion proof.

    Pass ``next_after`` back as ``after`` for the next page. Filters combine (AND).
    """
    if since_ms is not None and until_ms is not None and until_ms < since_ms:
        raise ProblemError(
            422,
            "Invalid request parameters",
            f"couldn't list entries: until_ms {until_ms} is before since_ms {since_ms}",
            kind="invalid-parameters",
        )
    # A vkey's "+" arrives as a space when a client forgets to percent-encode it; neither key
    # names nor base64 contain spaces, so the repair is unambiguous.
    subject = None if subject is None else subject.replace(" ", "+")
    signer = None if signer is None else signer.replace(" ", "+")
    latest = service.heads.latest()
    head = service.head_of(latest)
    found = service.query_entries(
        EntryQuery(
            after=after,
            limit=limit + 1,
            statement_type=statement_type,
            subject=subject,
            signer=None if signer is None else entry_index_key(signer),
            since_ms=since_ms,
            until_ms=until_ms,
            below_size=head.size,
        )
    )
    more = len(found) > limit
    page = found[:limit]
    entries = [
        entry_view(index, data, service.proofs.inclusion(index, head.size)) for index, data in page
    ]
    next_after = page[-1][0] if more and page else None
    next_link = None
    if next_after is not None:
        params = {
            "after": next_after,
            "limit": limit,
            "type": statement_type,
            "subject": subject,
            "signer": signer,
            "since_ms": since_ms,
            "until_ms": until_ms,
        }
        query = urlencode({k: v for k, v in params.items() if v is not None})
        next_link = f"/v1/entries?{query}"
    return json_response(
        wire.EntryPage(
            checkpoint=tree_head(head), entries=entries, next_after=next_after, next=next_link
        )
    )


@router.get(
    "/v1/entries/{index}",
    response_model=wire.EntryResponse,
    summary="One entry, decoded, with its inclusion proof and C2SP tlog-proof",
)
def get_entry(index: IndexPath, service: Service) -> Response:
    """The entry, its decoded statement, and proofs against the latest checkpoint.

    ``tlog_proof`` verifies offline with only the log's vkey (C2SP tlog-proof).
    """
    return json_response(_entry_response(service, index))


@router.get(
    "/v1/entries/{index}/tlog-proof",
    response_class=Response,
    summary="Download the C2SP tlog-proof of an entry",
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "proof"}
    },
)
def get_tlog_proof(index: IndexPath, service: Service) -> Response:
    """A ``.tlog-proof`` file: the entry's inclusion proof and the signed checkpoint."""
    response = _entry_response(service, index)
    return Response(
        response.tlog_proof,
        media_type="text/plain; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="entry-{index}.tlog-proof"'},
    )


@router.get(
    "/v1/statements/{statement_id}",
    response_model=wire.EntryResponse,
    summary="The entry holding a statement, by statement id",
)
def get_statement(
    statement_id: Annotated[
        str,
        Path(pattern=r"^[0-9a-f]{64}$", description="hex SHA-256 of the statement text"),
    ],
    service: Service,
) -> Response:
    """Is this statement logged? The entry that holds it, with proofs (404 if it is not)."""
    index = service.store.find_statement(bytes.fromhex(statement_id))
    if index is None or index >= service.heads.latest().size:
        raise NotFoundError(f"couldn't find statement {statement_id} in this log")
    return json_response(_entry_response(service, index))
