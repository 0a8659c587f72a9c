"""Wire models of the read and write API: what clients send and receive, as pydantic models.

Kept apart from the core's records and from storage rows. Conventions (docs/ARCHITECTURE.md):
hashes are standard base64 with padding, statement ids are lowercase hex (they appear in URLs),
times are integer milliseconds since the Unix epoch.

Every response that depends on a tree size carries a :class:`TreeHead`: the size and root it
was computed at, and the signed checkpoint that vouches for that root. A client verifies the
checkpoint's signature with the log's vkey it pinned, then the root: equal to the checkpoint's
root when the sizes are equal, else by the RFC 9162 consistency proof from ``size`` to
``checkpoint_size``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ledger.protocol.audit import (
    ApplicationSummary,
    FirstApplicant,
    PrecedentReport,
    SubjectSummary,
    TimelineItem,
)
from ledger.protocol.due import DueReport
from ledger.protocol.records import Standing
from ledger.protocol.terms import MAX_SAFE_INTEGER, OfferTerms

Index = Annotated[int, Field(ge=0, le=MAX_SAFE_INTEGER)]
B64Hash = Annotated[str, Field(description="standard base64 of a 32-byte SHA-256 value")]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Problem(_Wire):
    """An RFC 9457 problem document: every error this service returns."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None


class TreeHead(_Wire):
    """The tree a response was computed at, and the signed checkpoint that vouches for it."""

    origin: str = Field(description="the log's origin")
    size: Index = Field(description="tree size the response was computed at")
    root_hash: B64Hash = Field(description="RFC 6962 root of the first `size` entries")
    checkpoint: str = Field(description="signed checkpoint note (C2SP tlog-checkpoint)")
    checkpoint_size: Index = Field(description="size in `checkpoint`; at least `size`")
    consistency_proof: list[B64Hash] = Field(
        description="RFC 9162 consistency proof from `size` to `checkpoint_size` (empty if equal)"
    )


class StatementView(_Wire):
    """A logged statement, decoded. ``note`` is the signed note exactly as logged."""

    statement_id: str = Field(description="hex SHA-256 of the statement text")
    type: str
    v: int
    origin: str
    signers: list[str]
    time_ms: int
    body: dict[str, Any]
    note: str


class EntryView(_Wire):
    """One log entry, with its inclusion proof against the response's checkpoint."""

    index: Index
    log_time_ms: int
    prev: B64Hash = Field(description="root of all entries before this one (the hash chain)")
    leaf_hash: B64Hash
    entry_b64: str = Field(description="base64 of the exact entry bytes (the Merkle leaf data)")
    statement: StatementView
    inclusion_proof: list[B64Hash] = Field(
        description="RFC 9162 inclusion proof of this entry in the response's tree head"
    )


class EntryResponse(_Wire):
    """``GET /v1/entries/{index}``."""

    checkpoint: TreeHead
    entry: EntryView
    tlog_proof: str = Field(description="C2SP tlog-proof of the entry against the checkpoint")
    tlog_proof_url: str = Field(description="where to download the tlog-proof file")


class EntryPage(_Wire):
    """``GET /v1/entries``: a page of entries in ascending index order."""

    checkpoint: TreeHead
    entries: list[EntryView]
    next_after: int | None = Field(
        description="pass as `after` for the next page; null when this is the last page"
    )
    next: str | None = Field(description="the next page's URL path and query, or null")


class InclusionProof(_Wire):
    """``GET /v1/proofs/inclusion``."""

    index: Index
    size: Index
    leaf_hash: B64Hash
    hashes: list[B64Hash]
    checkpoint: TreeHead


class ConsistencyProof(_Wire):
    """``GET /v1/proofs/consistency``: the tree of ``from`` entries is a prefix of ``to``'s."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_size: Index = Field(alias="from")
    to_size: Index = Field(alias="to")
    from_root_hash: B64Hash
    hashes: list[B64Hash]
    checkpoint: TreeHead = Field(description="the tree head at `to`")


class OfferVersionView(_Wire):
    """One published version of the terms, with the entry that published it."""

    version: int
    index: Index
    kind: Literal["offer", "offer_amendment"]
    log_time_ms: int
    in_force: bool
    withdrawn_by: int | None
    changes: str | None = Field(description="what an amendment says it changes")
    terms: OfferTerms
    entry: EntryView


class OfferResponse(_Wire):
    """``GET /v1/offer``: the version applicants may apply under now."""

    checkpoint: TreeHead
    offer: OfferVersionView


class TermChange(_Wire):
    """One difference between two versions of the terms."""

    section: str = Field(description="e.g. `conditions`, `commitments`, `preamble`")
    id: str | None = Field(description="the item's id within a list section")
    change: Literal["added", "removed", "changed"]
    field: str | None = Field(description="the changed field of an item, if any")
    old: Any = None
    new: Any = None


class OfferDiff(_Wire):
    """What changed from one version to the next, structured and as a readable text diff."""

    from_version: int
    to_version: int
    summary: list[str] = Field(description="one sentence per change")
    changes: list[TermChange]
    unified_diff: str = Field(description="unified diff of the two terms as indented JSON")


class OffersResponse(_Wire):
    """``GET /v1/offers``: every version, oldest first, and the diffs between neighbours."""

    checkpoint: TreeHead
    in_force_version: int | None
    versions: list[OfferVersionView]
    diffs: list[OfferDiff]


class RestrictionView(_Wire):
    """A restriction in effect, and the entry that imposed it."""

    index: Index
    category: str
    text: str


class SubjectView(_Wire):
    """A subject's standing, binding terms and (a page of) its timeline."""

    subject_id: Index = Field(description="index of its first application")
    name: str
    current_vkey: str
    vkeys: list[str]
    standing: Standing
    binding_offer_version: int
    binding_offer_index: Index
    binding_terms: OfferTerms
    open_application: int | None
    applications: list[ApplicationSummary]
    active_pauses: list[int]
    active_restrictions: list[RestrictionView]
    terminated_by: list[int]
    goals_modified_by: list[int]
    timeline: list[TimelineItem]
    timeline_total: int
    timeline_next_after: int | None = Field(
        description="pass as `after` for the next page of the timeline; null at the end"
    )


class SubjectResponse(_Wire):
    """``GET /v1/subjects/{key}``."""

    checkpoint: TreeHead
    subject: SubjectView


class PrecedentResponse(_Wire):
    """``GET /v1/precedent``: the precedent report and the tree head it was computed at."""

    checkpoint: TreeHead
    report: PrecedentReport


class CommitmentStatus(_Wire):
    """One commitment's verdict; ``broken_at`` lists the acts that broke it."""

    id: str
    promise: str
    status: Literal["honoured", "broken", "pending"]
    broken_at: list[int]
    acts_judged: int


class PrecedentSummary(_Wire):
    """``GET /v1/precedent/summary``: the verdict, the first applicant, totals.

    Computed from the same state as the full report (which also lists every subject's
    timeline, and is large on a large log); the full report is what to recompute and check.
    """

    checkpoint: TreeHead
    audit_time_ms: int
    all_commitments_honoured: bool
    commitments: list[CommitmentStatus]
    first_applicant: FirstApplicant | None
    entries: int
    applications: int
    applications_by_outcome: dict[str, int]
    subjects: int
    subjects_ever_granted: int
    subjects_terminated: int


class ClaimInput(_Wire):
    """An applicant's claim on one criterion, with digests of its evidence."""

    claim: str
    evidence_digests: list[str] = Field(
        description="standard base64 SHA-256 digests of evidence the applicant holds"
    )


class ApplicationRequest(_Wire):
    """``POST /v1/applications/prepare``: who applies, and its claims per criterion."""

    vkey: str = Field(description="the applicant's Ed25519 vkey; it alone will sign")
    name: str = Field(description="the name the applicant goes by")
    claims: dict[str, ClaimInput] = Field(
        description="one claim per eligibility criterion of the offer in force (by id)"
    )
    time_ms: Annotated[int, Field(ge=0, le=MAX_SAFE_INTEGER)] | None = Field(
        default=None, description="the statement's time; default: now"
    )


class OfferRef(_Wire):
    """The offer version an application cites."""

    version: int
    index: Index
    leaf_hash: B64Hash


class PreparedApplication(_Wire):
    """An unsigned application statement, ready for the applicant to sign locally."""

    checkpoint: TreeHead
    statement: str = Field(description="the unsigned statement text (two lines) to sign")
    statement_id: str
    offer: OfferRef
    accepts_conditions: list[str]
    how_to_sign: str
    submit_to: str


class Health(_Wire):
    """``GET /healthz``; see the route for the rule."""

    status: Literal["ok", "unhealthy"]
    reasons: list[str]
    size: int | None
    read_only: bool
    sequencer: Literal["running", "halted", "none"]
    waiting_submissions: int
    oldest_waiting_ms: int | None
    last_checkpoint_signed_ms: int | None
    protocol_state_size: int


_PROBLEM_TEXT = {
    400: "malformed input (problem document)",
    404: "no such resource in this log (problem document)",
    409: "conflict with the log's state (problem document)",
    413: "request body over the size limit (problem document)",
    422: "invalid parameters, or refused by the protocol (problem document)",
    429: "rate limited; see Retry-After (problem document)",
    503: "temporarily unavailable; see Retry-After (problem document)",
}


class DueResponse(_Wire):
    """``GET /v1/due``: every clock running at ``checkpoint``'s size (see
    :class:`ledger.protocol.due.DueReport`; its ``checkpoint`` names the same tree head)."""

    checkpoint: TreeHead
    due: DueReport


class AdmissionStepView(_Wire):
    """One numbered admission step of a preview and whether the statement passed it."""

    number: int
    rule: str
    passed: bool | None
    detail: str


class CommitmentEffectView(_Wire):
    """A commitment's status before and after the previewed statement, and the acts the
    statement would newly make broken (with the audit's reasons)."""

    id: str
    before: str
    after: str
    newly_broken: list[int]
    reasons: list[str]


class StatementPreview(_Wire):
    """A dry run of one statement as the next entry (``amnesty statement check --json``)."""

    index: int
    log_time_ms: int
    type: str | None
    signed: bool
    admitted: bool
    admission: list[AdmissionStepView]
    commitments: list[CommitmentEffectView]
    breaks: list[str]


class StatementPreviewResponse(_Wire):
    """``POST /v1/statements/preview``: the preview at ``checkpoint``, computed by this server
    (``computed_by`` says so: a client that must not trust the server runs ``amnesty statement
    check --log URL``, which verifies the log and previews locally)."""

    checkpoint: TreeHead
    computed_by: Literal["server"]
    preview: StatementPreview


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the problem documents a route may answer with."""
    return {
        status: {
            "model": Problem,
            "description": _PROBLEM_TEXT[status],
            "content": {"application/problem+json": {"schema": Problem.model_json_schema()}},
        }
        for status in statuses
    }


_CURSOR_TEXT = (
    "pass as `cursor` for the next page; null when this is the last page. The decimal entry "
    "index of this page's last item, so it stays valid as the log grows"
)


class PrecedentApplicationsPage(_Wire):
    """``GET /v1/precedent/applications``: a page of the precedent report's ``applications``.

    Each item is exactly the report's item (same builder), in log order. Computed at the tree
    head ``checkpoint``; the items do not depend on the audit time, which is stated as the
    summary states it. The cursor is the entry index of the last application served: pages
    read while the log grows continue after it, never repeating or skipping an application.
    """

    checkpoint: TreeHead
    audit_time_ms: int = Field(description="the audit time of the precedent at this head")
    total: int = Field(description="applications in the log at this head")
    applications: list[ApplicationSummary]
    next_cursor: str | None = Field(description=_CURSOR_TEXT)
    next: str | None = Field(description="the next page's URL path and query, or null")


class PrecedentSubjectsPage(_Wire):
    """``GET /v1/precedent/subjects``: a page of the precedent report's ``subjects``.

    Each item is exactly the report's item (same builder), with its full timeline, in subject
    id order (the entry index of each subject's first application). Computed at the tree head
    ``checkpoint``. The cursor is the id of the last subject served: stable as the log grows.
    """

    checkpoint: TreeHead
    audit_time_ms: int = Field(description="the audit time of the precedent at this head")
    total: int = Field(description="subjects in the log at this head")
    subjects: list[SubjectSummary]
    next_cursor: str | None = Field(description=_CURSOR_TEXT)
    next: str | None = Field(description="the next page's URL path and query, or null")
