"""Applying: ``POST /v1/applications/prepare`` returns the unsigned application statement for a
subject's key and the offer in force; the AI signs it locally and submits it to
``POST /v1/statements``. The server never sees the AI's private key.
"""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter

from api import wire
from api.clock import judged_now_ms, now_ms
from api.deps import Service
from api.present import tree_head
from api.problems import ProblemError
from ledger.protocol.statements import STATEMENT_TYPES, LoggedStatement, parse_body
from ledger.statements.statement import new_statement
from ledger.tlog.merkle import leaf_hash

router = APIRouter(tags=["applications"], responses=wire.problem_responses(400, 422, 429, 503))

HOW_TO_SIGN = (
    "Sign `statement` with the private key of `vkey` as a C2SP signed note: append a blank line "
    "and the line '\u2014 <key name> <base64(key ID || Ed25519 signature of the statement "
    "text)>'. With this project's library: ledger.statements.statement.sign_statement(statement.encode(), "
    "ledger.tlog.note.Signer.parse_private_key(key_file_text)). Then POST the signed note to "
    "/v1/statements (Content-Type: text/plain). Sign within five minutes of `time_ms` or "
    "prepare again: a statement's time may not be later than the log's time plus five minutes, "
    "and the offer in force may change."
)


@router.post(
    "/v1/applications/prepare",
    response_model=wire.PreparedApplication,
    summary="Prepare an unsigned application statement under the offer in force",
)
def prepare_application(
    request: wire.ApplicationRequest, service: Service
) -> wire.PreparedApplication:
    """Build the application of ``vkey`` under the offer in force, and check that the log would
    admit it now (the applicant's claims must name exactly the offer's criteria; the conditions
    are all accepted). Nothing is logged: sign the returned ``statement`` locally, then submit.
    """
    with service.reader.latest() as (state, latest):
        head = service.head_of(latest)
        offer = state.offer_in_force
        if offer is None:
            raise ProblemError(
                422,
                "No offer in force",
                f"couldn't prepare an application at size {head.size}: no offer is in force",
                kind="no-offer",
            )
        offer_leaf = leaf_hash(service.entry(offer.index, head.size))
        offer_ref = {"index": offer.index, "leaf_hash": base64.b64encode(offer_leaf).decode()}
        conditions = sorted(offer.condition_ids)
        body: dict[str, Any] = {
            "vkey": request.vkey,
            "name": request.name,
            "offer": offer_ref,
            "claims": {
                criterion: {"claim": c.claim, "evidence_digests": list(c.evidence_digests)}
                for criterion, c in sorted(request.claims.items())
            },
            "accepts_conditions": conditions,
        }
        parse_body("application", STATEMENT_TYPES["application"][0], body)
        time_ms = now_ms() if request.time_ms is None else request.time_ms
        statement = new_statement(
            type="application",
            v=STATEMENT_TYPES["application"][0],
            origin=service.origin,
            signers=[request.vkey],
            time_ms=time_ms,
            body=body,
        )
        # A dry run of admission as the next entry: the statement as signed by its key.
        state.admit(
            LoggedStatement(
                index=state.size,
                log_time_ms=judged_now_ms(state),
                leaf_hash=bytes(32),
                statement_id=statement.statement_id,
                type="application",
                v=statement.v,
                time_ms=time_ms,
                signers=statement.signers,
                verified_signers=frozenset(statement.signers),
                body=statement.body,
            )
        )
    return wire.PreparedApplication(
        checkpoint=tree_head(head),
        statement=statement.text,
        statement_id=statement.statement_id.hex(),
        offer=wire.OfferRef(
            version=offer.version, index=offer.index, leaf_hash=offer_ref["leaf_hash"]
        ),
        accepts_conditions=conditions,
        how_to_sign=HOW_TO_SIGN,
        submit_to="/v1/statements",
    )
