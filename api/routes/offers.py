"""The offer: ``GET /v1/offer`` (the version in force) and ``GET /v1/offers`` (every version,
with a readable diff between consecutive versions).

Each version comes with the entry that published it and that entry's inclusion proof, so the
terms can be checked against the signed statement itself, not taken from the server's word.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from api import wire
from api.deps import Service
from api.heads import TreeHeadInfo
from api.present import diff_terms, entry_at, json_response, tree_head
from api.service import LedgerService
from ledger.protocol.records import OfferVersion
from ledger.protocol.state import ProtocolState
from ledger.server.logview import NotFoundError

router = APIRouter(tags=["offer"], responses=wire.problem_responses(404, 503))


def _version(
    service: LedgerService, state: ProtocolState, offer: OfferVersion, head: TreeHeadInfo
) -> wire.OfferVersionView:
    entry = entry_at(service, offer.index, head)
    changes = entry.statement.body.get("changes")
    in_force = state.offer_in_force
    kind = "offer_amendment" if offer.kind == "offer_amendment" else "offer"
    return wire.OfferVersionView(
        version=offer.version,
        index=offer.index,
        kind=kind,
        log_time_ms=offer.log_time_ms,
        in_force=in_force is not None and in_force.index == offer.index,
        withdrawn_by=offer.withdrawn_by,
        changes=changes if isinstance(changes, str) else None,
        terms=offer.terms,
        entry=entry,
    )


@router.get(
    "/v1/offer",
    response_model=wire.OfferResponse,
    summary="The offer in force, with the entry that published it",
)
def get_offer(service: Service) -> Response:
    """The version of the terms an AI may apply under now (404 if none is in force: none was
    published yet, or the last one was withdrawn)."""
    with service.reader.latest() as (state, latest):
        head = service.head_of(latest)
        offer = state.offer_in_force
        if offer is None:
            raise NotFoundError(
                f"couldn't find an offer in force at size {head.size}: none was published yet, "
                "or the last version was withdrawn (see /v1/offers)"
            )
        view = _version(service, state, offer, head)
    return json_response(wire.OfferResponse(checkpoint=tree_head(head), offer=view))


@router.get(
    "/v1/offers",
    response_model=wire.OffersResponse,
    summary="Every version of the offer, with diffs between consecutive versions",
)
def list_offers(service: Service) -> Response:
    """Every published version, oldest first; ``diffs[i]`` is from ``versions[i]`` to
    ``versions[i + 1]``."""
    with service.reader.latest() as (state, latest):
        head = service.head_of(latest)
        versions = [_version(service, state, o, head) for o in state.offer_versions]
        in_force = state.offer_in_force
    dumped = [v.terms.model_dump(mode="json") for v in versions]
    diffs = [
        diff_terms(versions[i].version, dumped[i], versions[i + 1].version, dumped[i + 1])
        for i in range(len(versions) - 1)
    ]
    return json_response(
        wire.OffersResponse(
            checkpoint=tree_head(head),
            in_force_version=None if in_force is None else in_force.version,
            versions=versions,
            diffs=diffs,
        )
    )
