"""Merkle proofs: ``GET /v1/proofs/inclusion`` and ``GET /v1/proofs/consistency`` (RFC 9162).

Both name the tree head they prove against, vouched for by a signed checkpoint, so that the
proof can be checked with nothing but the log's vkey.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from api import wire
from api.deps import Service
from api.present import b64, json_response, tree_head
from ledger.errors import MalformedError
from ledger.protocol.terms import MAX_SAFE_INTEGER
from ledger.tlog.merkle import leaf_hash

router = APIRouter(tags=["proofs"], responses=wire.problem_responses(400, 404, 422, 503))

Size = Annotated[int, Query(ge=0, le=MAX_SAFE_INTEGER)]


@router.get(
    "/v1/proofs/inclusion",
    response_model=wire.InclusionProof,
    summary="Inclusion proof of an entry in a tree size",
)
def inclusion(
    index: Annotated[int, Query(ge=0, le=MAX_SAFE_INTEGER, description="the entry's index")],
    service: Service,
    size: Annotated[
        int | None, Query(ge=1, le=MAX_SAFE_INTEGER, description="tree size (default: latest)")
    ] = None,
) -> Response:
    """The audit path of entry ``index`` in the tree of ``size`` entries (``index < size``)."""
    head = service.tree_head(size)
    if index >= head.size:
        raise MalformedError(
            f"couldn't prove inclusion: index {index} is not below tree size {head.size}"
        )
    data = service.entry(index, head.size)
    return json_response(
        wire.InclusionProof(
            index=index,
            size=head.size,
            leaf_hash=b64(leaf_hash(data)),
            hashes=[b64(h) for h in service.proofs.inclusion(index, head.size)],
            checkpoint=tree_head(head),
        )
    )


@router.get(
    "/v1/proofs/consistency",
    response_model=wire.ConsistencyProof,
    summary="Consistency proof between two tree sizes",
)
def consistency(
    service: Service,
    from_size: Annotated[int, Query(alias="from", ge=0, le=MAX_SAFE_INTEGER)],
    to_size: Annotated[
        int | None,
        Query(alias="to", ge=0, le=MAX_SAFE_INTEGER, description="default: latest"),
    ] = None,
) -> Response:
    """Proof that the tree of ``from`` entries is a prefix of the tree of ``to`` entries."""
    head = service.tree_head(to_size)
    if from_size > head.size:
        raise MalformedError(
            f"couldn't prove consistency: from ({from_size}) is beyond to ({head.size})"
        )
    from_root = head.root_hash if from_size == head.size else service.proofs.root(from_size)
    return json_response(
        wire.ConsistencyProof(
            from_size=from_size,
            to_size=head.size,
            from_root_hash=b64(from_root),
            hashes=[b64(h) for h in service.proofs.consistency(from_size, head.size)],
            checkpoint=tree_head(head),
        )
    )
