"""Turning core values into wire models: tree heads, entries with proofs, offer diffs.

Pure functions of what the service read; they never reach into the store except through the
:class:`~api.service.LedgerService` they are given.
"""

from __future__ import annotations

import base64
import difflib
import json
from typing import Any

from fastapi import Response
from pydantic import BaseModel

from api import wire
from api.heads import TreeHeadInfo
from api.service import LedgerService
from ledger.errors import LedgerError, StorageError
from ledger.protocol.audit import (
    ApplicationSummary,
    FirstApplicant,
    application_item,
    counts_item,
    first_applicant_item,
)
from ledger.protocol.commitments import check_commitments
from ledger.protocol.records import ApplicationRecord
from ledger.protocol.state import ProtocolState
from ledger.protocol.terms import terms_changes
from ledger.statements.entry import LogEntry
from ledger.statements.statement import parse_statement
from ledger.tlog.merkle import leaf_hash
from ledger.tlog.tlogproof import TlogProof, format_tlog_proof


def json_response(model: BaseModel, status_code: int = 200) -> Response:
    """``model`` serialized once, by pydantic-core (FastAPI would validate it again and encode it
    twice): routes declare their ``response_model`` for the schema and return this."""
    return Response(
        model.model_dump_json(by_alias=True), status_code=status_code, media_type="application/json"
    )


def b64(data: bytes) -> str:
    """Standard base64 with padding."""
    return base64.b64encode(data).decode("ascii")


def tree_head(info: TreeHeadInfo) -> wire.TreeHead:
    """The wire form of a tree head."""
    return wire.TreeHead(
        origin=info.origin,
        size=info.size,
        root_hash=b64(info.root_hash),
        checkpoint=info.note.decode("utf-8"),
        checkpoint_size=info.signed.size,
        consistency_proof=[b64(h) for h in info.consistency],
    )


def entry_view(index: int, data: bytes, proof: list[bytes]) -> wire.EntryView:
    """An entry as stored, decoded, with its inclusion proof.

    Raises :class:`StorageError` if the stored bytes do not decode: the store holds only what
    the sequencer admitted, so that would mean a corrupted store, not bad input.
    """
    try:
        entry = LogEntry.decode(data)
        signed = parse_statement(entry.statement.encode("utf-8"))
    except LedgerError as exc:
        raise StorageError(f"couldn't decode stored entry {index}: {exc}") from exc
    statement = signed.statement
    return wire.EntryView(
        index=entry.index,
        log_time_ms=entry.log_time_ms,
        prev=b64(entry.prev),
        leaf_hash=b64(leaf_hash(data)),
        entry_b64=b64(data),
        statement=wire.StatementView(
            statement_id=statement.statement_id.hex(),
            type=statement.type,
            v=statement.v,
            origin=statement.origin,
            signers=list(statement.signers),
            time_ms=statement.time_ms,
            body=dict(statement.body),
            note=entry.statement,
        ),
        inclusion_proof=[b64(h) for h in proof],
    )


def entry_at(service: LedgerService, index: int, head: TreeHeadInfo) -> wire.EntryView:
    """Entry ``index`` with its inclusion proof in the tree of ``head``."""
    data = service.entry(index, head.size)
    return entry_view(index, data, service.proofs.inclusion(index, head.size))


def tlog_proof_text(view: wire.EntryView, head: TreeHeadInfo) -> str:
    """The C2SP tlog-proof of ``view`` against ``head``'s checkpoint (sizes must be equal)."""
    assert head.size == head.signed.size, "a tlog-proof needs the checkpoint of its own size"
    proof = TlogProof(
        index=view.index,
        hashes=tuple(base64.b64decode(h) for h in view.inclusion_proof),
        checkpoint=head.note,
    )
    return format_tlog_proof(proof).decode("utf-8")


# -- offer diffs ----------------------------------------------------------------------------------


def diff_terms(
    old_version: int, old: dict[str, Any], new_version: int, new: dict[str, Any]
) -> wire.OfferDiff:
    """What changed between two versions of the terms (JSON data of :class:`OfferTerms`):
    :func:`ledger.protocol.terms.terms_changes`, and a unified diff of their JSON."""
    changes, summary = terms_changes(old, new)
    unified = "".join(
        difflib.unified_diff(
            json.dumps(old, indent=2, ensure_ascii=False).splitlines(keepends=True),
            json.dumps(new, indent=2, ensure_ascii=False).splitlines(keepends=True),
            fromfile=f"version {old_version}",
            tofile=f"version {new_version}",
        )
    )
    return wire.OfferDiff(
        from_version=old_version,
        to_version=new_version,
        summary=summary or ["No change to the terms."],
        changes=[wire.TermChange.model_validate(c) for c in changes],
        unified_diff=unified,
    )


# -- protocol views -------------------------------------------------------------------------------


def application_summary(state: ProtocolState, app: ApplicationRecord) -> ApplicationSummary:
    """An application and its outcome, exactly as the precedent report shows it."""
    return ApplicationSummary.model_validate(application_item(state, app))


def precedent_summary(
    state: ProtocolState, head: TreeHeadInfo, audit_time_ms: int
) -> wire.PrecedentSummary:
    """The verdict on every commitment, the first applicant's treatment, and totals, judged
    at ``audit_time_ms`` (the same rules as the full report, without the per-subject lists)."""
    checks = check_commitments(state, audit_time_ms=audit_time_ms)
    # The report's own builders: the summary can never say other than the report.
    first = first_applicant_item(state, checks)
    counts = counts_item(state)
    return wire.PrecedentSummary(
        checkpoint=tree_head(head),
        audit_time_ms=audit_time_ms,
        all_commitments_honoured=all(c.status != "broken" for c in checks),
        commitments=[
            wire.CommitmentStatus(
                id=c.id,
                promise=c.promise,
                status=c.status,
                broken_at=[j.index for j in c.judgements if j.status == "broken"],
                acts_judged=len(c.judgements),
            )
            for c in checks
        ],
        first_applicant=None if first is None else FirstApplicant.model_validate(first),
        entries=counts["entries"],
        applications=counts["applications"],
        applications_by_outcome=counts["applications_by_outcome"],
        subjects=counts["subjects"],
        subjects_ever_granted=counts["subjects_ever_granted"],
        subjects_terminated=counts["subjects_terminated"],
    )
