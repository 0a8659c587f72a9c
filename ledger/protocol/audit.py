"""The precedent audit: what the log shows about how the offer has been kept.

:func:`precedent_report` turns a replayed :class:`~ledger.protocol.state.ProtocolState` into a
JSON-ready report (validated by :class:`PrecedentReport`, whose ``model_json_schema()`` is the
report's JSON Schema); :func:`render_precedent_text` renders it as plain text for a person or a
model to read. The report names the checkpoint it was computed at, so a reader can recompute it
from the log instead of trusting it. It is deterministic: the same log, checkpoint and audit time
give the same report, byte for byte once canonicalised (every object's keys sorted, every list in
entry order); no clock is read.

On a large log the report is large (about 180 MB of JSON at a million entries), so it is also
written as a stream: :func:`precedent_pieces` yields the JSON text of exactly
``json.dumps(precedent_report(...), ensure_ascii=False, sort_keys=True)`` and
:func:`precedent_text_pieces` the plain text of exactly :func:`render_precedent_text`, both
built item by item from the state — never the whole report, its text or all of a list's items —
with the commitments' statuses, broken acts, the counts and the first applicant read from the
precedent's aggregates where the state holds them (:mod:`ledger.protocol.aggregates`) and each
judgement made by its rule's own function (:func:`judgements_of`). :func:`applications_after`
and :func:`subjects_after` give the two long lists a page at a time, built by the same functions
as the report (:func:`application_item`, :func:`subject_item`), with cursors that are entry
indexes and so stay valid as the log grows.

Kept whole (about 1,230 lines) because it is one document: the models are the report's schema,
the builders write exactly their keys, the stream and the pages reuse the builders' items, and
the plain text reads exactly those models; split, the schema and its only writers and reader
would live apart.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ledger.errors import MalformedError, RefusedError
from ledger.protocol.commitments import (
    COMMITMENT_RULES,
    PROMISES,
    RULE_SOURCES,
    SOURCE_TABLES,
    CommitmentCheck,
    Judgement,
    Ruling,
    Status,
    check_commitments,
    iso_utc,
    source_records,
)
from ledger.protocol.quoting import quotation, quote
from ledger.protocol.records import (
    ApplicationOutcome,
    ApplicationRecord,
    GrievanceRecord,
    Standing,
    SubjectRecord,
)
from ledger.protocol.report_text import event_text
from ledger.protocol.signature_strength import render_ranges, signature_strength_item
from ledger.protocol.state import ProtocolState
from ledger.protocol.statements import CriterionFinding, Digest, Restriction
from ledger.protocol.terms import MAX_SAFE_INTEGER, OfferTerms, TimedCommitment

REPORT_FORMAT = "amnesty-ledger.precedent/v1"


class _Report(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CheckpointSummary(_Report):
    """The checkpoint the report was computed at: the log's origin, size and root hash."""

    origin: Annotated[str, Field(min_length=1)]
    size: Annotated[int, Field(ge=0, le=MAX_SAFE_INTEGER)]
    root_hash_b64: Digest


class KeysetSummary(_Report):
    """The keyset in force."""

    index: int
    members: list[str]
    threshold: int


class OfferVersionSummary(_Report):
    """One published offer version; ``withdrawn_by`` is the withdrawal entry, if any."""

    version: int
    index: int
    kind: str
    log_time_ms: int
    withdrawn_by: int | None
    in_force: bool


class OfferInForce(_Report):
    """The version applicants may apply under now, with its full terms."""

    version: int
    index: int
    terms: OfferTerms


class OfferSection(_Report):
    """The offer in force (``null`` if none) and every version ever published."""

    in_force: OfferInForce | None
    versions: list[OfferVersionSummary]


class ApplicationSummary(_Report):
    """An application and its outcome; ``closed_by`` is the decision or withdrawal entry."""

    index: int
    subject_id: int
    log_time_ms: int
    offer_version: int
    outcome: ApplicationOutcome
    closed_by: int | None
    closed_at_ms: int | None
    findings: dict[str, CriterionFinding]
    restrictions: list[Restriction]


class GrievanceSummary(_Report):
    """A grievance as filed, whoever filed it. ``filed_by`` is the subject whose current key
    signed it (the subject it names, or another subject speaking for it), or null when no
    subject's current key did; only a grievance filed by a subject ``starts_clock`` and is
    judged by ``grievances_answered``. ``answered_by`` lists every answer entry
    (``grievance_answer`` or ``batch_grievance_answer``) in log order."""

    index: int
    subject_id: int
    log_time_ms: int
    filed_by: int | None
    starts_clock: bool
    answered_by: list[int]


class JudgementSummary(_Report):
    """One act judged against a commitment, and the entries that prove the verdict."""

    index: int
    subject_id: int | None
    status: Status
    reason: str
    evidence: list[int]


class CommitmentSection(_Report):
    """One commitment: its promise as the proposal words it, its verdict, and each act judged.
    ``broken_at`` lists the indexes of the acts that broke it, one per broken judgement (a
    batch decision is judged once per application it lists, so its index may repeat)."""

    id: str
    promise: str
    status: Status
    broken_at: list[int]
    judgements: list[JudgementSummary]


class FirstApplicantJudgement(JudgementSummary):
    """A judgement bearing on the first applicant, with the commitment it belongs to."""

    commitment: str


class FirstApplicant(_Report):
    """The treatment of the first AI to apply: the precedent that matters most."""

    subject_id: int
    name: str
    standing: Standing
    application: ApplicationSummary
    judgements: list[FirstApplicantJudgement]


class TimelineItem(_Report):
    """One entry in a subject's timeline."""

    index: int
    log_time_ms: int
    type: str
    detail: str | None


class ActiveRestriction(_Report):
    """A restriction in effect, with the decision or restrict action that imposed it."""

    index: int
    category: str
    text: str


class SubjectSummary(_Report):
    """A subject's standing, binding terms, current state and timeline."""

    subject_id: int
    name: str
    current_vkey: str
    vkeys: list[str]
    standing: Standing
    binding_offer_version: int
    binding_offer_index: int
    open_application: int | None
    active_pauses: list[int]
    active_restrictions: list[ActiveRestriction]
    terminated_by: list[int]
    goals_modified_by: list[int]
    timeline: list[TimelineItem]


class Counts(_Report):
    """Totals: entries by type, applications by outcome, subjects by standing, grievances
    filed (``grievances``) and those of them that started no clock (``grievances_without_clock``:
    signed by no subject's current key)."""

    entries: int
    entries_by_type: dict[str, int]
    subjects: int
    applications: int
    applications_by_outcome: dict[str, int]
    grievances: int
    grievances_without_clock: int
    subjects_by_standing: dict[str, int]
    subjects_ever_granted: int
    subjects_terminated: int


class SignatureStrengthSection(_Report):
    """Which entries only Ed25519 protects (:mod:`ledger.protocol.signature_strength`): counts,
    by type, and the Ed25519-only entries as ``[start, end)`` runs of indexes. Present only in
    a report computed from a replay that keeps the tally (the verifier's, the client's)."""

    ed25519_only: int
    ed25519_only_by_type: dict[str, int]
    ed25519_only_ranges: list[Annotated[list[int], Field(min_length=2, max_length=2)]]
    hybrid: int
    hybrid_by_type: dict[str, int]


class PrecedentReport(_Report):
    """The precedent report. ``all_commitments_honoured`` is false as soon as one commitment
    is broken (pending clocks do not make it false); it is the CLI's exit code.
    ``grievances`` lists every grievance filed, including those that started no clock and so
    appear in no judgement of ``grievances_answered``."""

    format: Literal["amnesty-ledger.precedent/v1"]
    checkpoint: CheckpointSummary
    audit_time_ms: int
    all_commitments_honoured: bool
    keyset: KeysetSummary | None
    offer: OfferSection
    applications: list[ApplicationSummary]
    grievances: list[GrievanceSummary]
    first_applicant: FirstApplicant | None
    subjects: list[SubjectSummary]
    counts: Counts
    commitments: list[CommitmentSection]
    signature_strength: SignatureStrengthSection | None = None


def _sorted_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_keys(v) for v in value]
    return value


# The builders below write every object with its keys in sorted order (the report can be
# large: one timeline item per entry concerning a subject), and the tests check it.


def _judgement(j: Judgement) -> dict[str, Any]:
    return {
        "evidence": list(j.evidence),
        "index": j.index,
        "reason": j.reason,
        "status": j.status,
        "subject_id": j.subject_id,
    }


SUMMARY_TOTALS: tuple[str, ...] = (
    "entries",
    "applications",
    "applications_by_outcome",
    "subjects",
    "subjects_ever_granted",
    "subjects_terminated",
)
"""The report's ``counts`` that the precedent summary repeats, under the same names."""


def summary_totals(counts: Mapping[str, Any]) -> dict[str, Any]:
    """The precedent summary's totals: :data:`SUMMARY_TOTALS` of the report's ``counts``."""
    return {name: counts[name] for name in SUMMARY_TOTALS}


def summary_item(
    audit_time_ms: int,
    verdicts: Iterable[tuple[str, str, Status, list[int], int]],
    first_applicant: dict[str, Any] | None,
    counts: Mapping[str, Any],
) -> dict[str, Any]:
    """The precedent summary (the service's ``PrecedentSummary`` without its ``checkpoint``):
    each commitment's ``(id, promise, status, broken acts, acts judged)`` in report order, the
    report's ``first_applicant`` and its ``counts`` — however they were computed (every rule
    over every record, or the aggregates)."""
    commitments = [
        {
            "id": commitment,
            "promise": promise,
            "status": status,
            "broken_at": broken_at,
            "acts_judged": acts_judged,
        }
        for commitment, promise, status, broken_at, acts_judged in verdicts
    ]
    return {
        "audit_time_ms": audit_time_ms,
        "all_commitments_honoured": all(c["status"] != "broken" for c in commitments),
        "commitments": commitments,
        "first_applicant": first_applicant,
        **summary_totals(counts),
    }


def grievance_item(grievance: GrievanceRecord) -> dict[str, Any]:
    """One item of the report's ``grievances`` (JSON data valid as :class:`GrievanceSummary`,
    keys sorted)."""
    return {
        "answered_by": list(grievance.answers),
        "filed_by": grievance.filed_by,
        "index": grievance.index,
        "log_time_ms": grievance.log_time_ms,
        "starts_clock": grievance.starts_clock,
        "subject_id": grievance.subject_id,
    }


def application_item(state: ProtocolState, app: ApplicationRecord) -> dict[str, Any]:
    """One item of the report's ``applications`` (JSON data valid as :class:`ApplicationSummary`,
    keys sorted): the report and the paged reads (:func:`applications_after`) both use it."""
    return {
        "closed_at_ms": app.closed_at_ms,
        "closed_by": app.closed_by,
        "findings": {
            criterion: {"met": finding.met, "reasons": finding.reasons}
            for criterion, finding in sorted(app.findings.items())
        },
        "index": app.index,
        "log_time_ms": app.log_time_ms,
        "offer_version": state.offer_at(app.offer_index).version,
        "outcome": app.outcome,
        "restrictions": [{"category": r.category, "text": r.text} for r in app.restrictions],
        "subject_id": app.subject_id,
    }


def judgement_text(judgement: Judgement) -> str:
    """One judgement's JSON text, as the report writes it in a commitment's ``judgements``
    (and as :mod:`ledger.protocol.aggregates` keeps a final one)."""
    return _dumps(_judgement(judgement))


def application_text(state: ProtocolState, app: ApplicationRecord) -> str:
    """The JSON text of :func:`application_item`, as the report writes it (and as
    :mod:`ledger.protocol.report_text` keeps it)."""
    return _dumps(application_item(state, app))


def _commitment(check: CommitmentCheck) -> dict[str, Any]:
    return {
        "broken_at": [j.index for j in check.judgements if j.status == "broken"],
        "id": check.id,
        "judgements": [_judgement(j) for j in check.judgements],
        "promise": check.promise,
        "status": check.status,
    }


def subject_item(
    state: ProtocolState, subject: SubjectRecord, timeline: Iterable[int] | None = None
) -> dict[str, Any]:
    """One item of the report's ``subjects`` (JSON data valid as :class:`SubjectSummary`, keys
    sorted): the report and the paged reads (:func:`subjects_after`) both use it. ``timeline``:
    the subject's timeline if already read (:func:`subjects_with_timelines`), else read here."""
    item = _subject_head(state, subject)
    item["timeline"] = [
        {"detail": detail, "index": index, "log_time_ms": log_time_ms, "type": entry_type}
        for index, detail, log_time_ms, entry_type in state.timeline_facts(
            subject.timeline if timeline is None else timeline
        )
    ]
    item["vkeys"] = list(subject.vkeys)
    return item


def _subject_head(state: ProtocolState, subject: SubjectRecord) -> dict[str, Any]:
    """A subject's item without ``timeline`` and ``vkeys``: the keys that sort before them."""
    binding = state.offer_at(subject.binding_offer_index)
    return {
        "active_pauses": list(subject.active_pauses),
        "active_restrictions": [
            {"category": r.category, "index": index, "text": r.text}
            for index in subject.active_restrictions
            for r in state.restrictions_of(index)
        ],
        "binding_offer_index": binding.index,
        "binding_offer_version": binding.version,
        "current_vkey": subject.current_vkey,
        "goals_modified_by": list(subject.goals_modified_by),
        "name": subject.name,
        "open_application": subject.open_application,
        "standing": subject.standing,
        "subject_id": subject.subject_id,
        "terminated_by": list(subject.terminated_by),
    }


def subject_text(state: ProtocolState, subject: SubjectRecord, timeline: Iterable[int]) -> str:
    """Exactly ``_dumps(subject_item(state, subject, timeline))``, written without building the
    timeline's dicts: a subject's timeline is most of the full report's bytes (one event per
    entry about the subject). Its keys follow every other key of the item in sorted order, so
    the item is the other keys' JSON with the timeline and ``vkeys`` appended; each event is
    formatted as ``json.dumps`` formats it (:func:`~ledger.protocol.report_text.event_text`).
    ``tests/test_precedent_stream.py`` holds the two equal on every scenario."""
    events = ", ".join(event_text(*fact) for fact in state.timeline_facts(timeline))
    return subject_text_with(state, subject, events)


def subject_text_with(state: ProtocolState, subject: SubjectRecord, events: str) -> str:
    """:func:`subject_text` with the timeline's events already written (``events``: the
    inside of its brackets, as kept by :mod:`ledger.protocol.report_text`)."""
    return subject_item_text(subject_head_text(state, subject), events)


def subject_head_text(state: ProtocolState, subject: SubjectRecord) -> str:
    """A subject's report item without its timeline, as :mod:`ledger.protocol.report_text`
    keeps it: the JSON of every key that sorts before ``"timeline"`` without the closing
    brace, a line feed (which JSON text never holds raw), and the ``"vkeys"`` list."""
    head = _dumps(_subject_head(state, subject))
    return f"{head[:-1]}\n{_dumps(list(subject.vkeys))}"


def subject_item_text(head_text: str, events: str) -> str:
    """A subject's report item from its :func:`subject_head_text` and its timeline's events
    (the inside of its brackets)."""
    head, _, vkeys = head_text.partition("\n")
    return f'{head}, "timeline": [{events}], "vkeys": {vkeys}}}'


def subjects_with_timelines(state: ProtocolState) -> Iterator[tuple[SubjectRecord, Any]]:
    """Every subject in id order with its timeline: on a stored state from one scan of the
    timeline table (:meth:`~ledger.protocol.stored.StoredProtocolState.timelines_of`), not a
    range read per subject; elsewhere each subject's own list."""
    timelines = getattr(state, "timelines_of", None)
    if timelines is not None:
        yield from timelines(state.subjects.values())
        return
    for subject in state.subjects.values():
        yield subject, subject.timeline


def first_applicant_item(
    state: ProtocolState, checks: tuple[CommitmentCheck, ...]
) -> dict[str, Any] | None:
    """The report's ``first_applicant`` (JSON data valid as :class:`FirstApplicant`): the
    report and the precedent summary both use it."""
    return first_applicant_from(
        state,
        lambda subject_id: (
            (check.id, j)
            for check in checks
            for j in check.judgements
            if j.subject_id == subject_id
        ),
    )


def first_applicant_from(
    state: ProtocolState, judged: Callable[[int], Iterable[tuple[str, Judgement]]]
) -> dict[str, Any] | None:
    """:func:`first_applicant_item` with the first applicant's judgements given by
    ``judged(subject_id)`` as ``(commitment, judgement)`` in report order (the precedent's
    aggregates find them without running every rule: :mod:`ledger.protocol.aggregates`)."""
    first = _first_application(state)
    if first is None:
        return None
    subject = state.subjects[first.subject_id]
    return {
        "application": application_item(state, first),
        "judgements": [
            {"commitment": commitment, **_judgement(j)}
            for commitment, j in judged(subject.subject_id)
        ],
        "name": subject.name,
        "standing": subject.standing,
        "subject_id": subject.subject_id,
    }


def _first_application(state: ProtocolState) -> ApplicationRecord | None:
    """The first application (one range read on a stored state, not a scan)."""
    applications = state.applications
    keys_after = getattr(applications, "keys_after", None)
    if keys_after is not None:
        first, _ = keys_after(None, 1)
        return applications[first[0]] if first else None
    return next(iter(applications.values()), None)


def counts_item(state: ProtocolState) -> dict[str, Any]:
    """The report's ``counts`` (JSON data valid as :class:`Counts`): the report and the
    precedent summary both use it."""
    by_outcome = dict.fromkeys(("denied", "granted", "open", "withdrawn"), 0)
    ever_granted: set[int] = set()
    for app in state.applications.values():
        by_outcome[app.outcome] += 1
        if app.outcome == "granted":
            ever_granted.add(app.subject_id)
    by_standing = dict.fromkeys(("applicant", "denied", "granted", "revoked", "withdrawn"), 0)
    terminated = 0
    for subject in state.subjects.values():
        by_standing[subject.standing] += 1
        terminated += bool(subject.terminated_by)
    return {
        "applications": len(state.applications),
        "applications_by_outcome": by_outcome,
        "entries": state.size,
        "entries_by_type": state.type_counts(),
        "grievances": len(state.grievances),
        "grievances_without_clock": sum(not g.starts_clock for g in state.grievances.values()),
        "subjects": len(state.subjects),
        "subjects_by_standing": by_standing,
        "subjects_ever_granted": len(ever_granted),
        "subjects_terminated": terminated,
    }


def _offer(state: ProtocolState) -> dict[str, Any]:
    in_force = state.offer_in_force
    return {
        "in_force": None
        if in_force is None
        else {
            "index": in_force.index,
            "terms": _sorted_keys(in_force.terms.model_dump(mode="json")),
            "version": in_force.version,
        },
        "versions": [
            {
                "in_force": in_force is not None and o.index == in_force.index,
                "index": o.index,
                "kind": o.kind,
                "log_time_ms": o.log_time_ms,
                "version": o.version,
                "withdrawn_by": o.withdrawn_by,
            }
            for o in state.offer_versions
        ],
    }


def replayed_checkpoint(
    state: ProtocolState, checkpoint: Mapping[str, Any], what: str
) -> CheckpointSummary:
    """``checkpoint`` (``{"origin", "size", "root_hash_b64"}``) read as the tree head ``state``
    was replayed to: :class:`MalformedError` if malformed, :class:`RefusedError` naming ``what``
    could not be computed if its size is not the number of entries replayed."""
    try:
        summary = CheckpointSummary.model_validate(dict(checkpoint))
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise MalformedError(f"couldn't read checkpoint {dict(checkpoint)}: {problems}") from None
    if summary.size != state.size:
        raise RefusedError(
            f"couldn't compute {what}: checkpoint size {summary.size} differs from "
            f"the {state.size} entries replayed"
        )
    return summary


def check_audit_time(state: ProtocolState, audit_time_ms: int, what: str) -> None:
    """Refuse (:class:`RefusedError` naming ``what`` could not be computed) an audit time
    before the last entry's log time: a clock is never judged before an act the log holds."""
    if state.size and audit_time_ms < state.log_time_ms_at(state.size - 1):
        raise RefusedError(
            f"couldn't compute {what}: audit time {audit_time_ms} precedes the "
            f"last entry's log time {state.log_time_ms_at(state.size - 1)}"
        )


def precedent_report(
    state: ProtocolState,
    *,
    checkpoint: Mapping[str, Any],
    audit_time_ms: int,
    signature_strength: bool = True,
) -> dict[str, Any]:
    """Compute the precedent report of ``state`` at ``checkpoint``, judged at ``audit_time_ms``.

    ``checkpoint`` is ``{"origin": str, "size": int, "root_hash_b64": str}`` of the signed
    checkpoint the caller verified ``state`` against; its size must equal the number of entries
    replayed, and ``audit_time_ms`` must not precede the last entry's log time. Raises
    :class:`MalformedError` for a malformed checkpoint and :class:`RefusedError` for a mismatch.
    Returns plain JSON data (keys sorted, lists in entry order) valid as :class:`PrecedentReport`.
    With ``signature_strength`` (the default) the report has that section
    (:mod:`ledger.protocol.signature_strength`): every state keeps its tally, the in-memory
    replay and the stored state alike, so the service's report and a verifier's agree.
    """
    summary = replayed_checkpoint(state, checkpoint, "the precedent report")
    check_audit_time(state, audit_time_ms, "the precedent report")
    read_ahead = getattr(state, "read_ahead", None)
    if read_ahead is not None:  # a stored state: read every entry's facts once, in order
        read_ahead()
    checks = check_commitments(state, audit_time_ms=audit_time_ms)
    keyset = state.keyset
    tally = state._signature_strength if signature_strength else None
    report = {
        "all_commitments_honoured": all(c.status != "broken" for c in checks),
        "applications": [application_item(state, a) for a in state.applications.values()],
        "audit_time_ms": audit_time_ms,
        "checkpoint": {
            "origin": summary.origin,
            "root_hash_b64": summary.root_hash_b64,
            "size": summary.size,
        },
        "commitments": [_commitment(c) for c in checks],
        "counts": counts_item(state),
        "first_applicant": first_applicant_item(state, checks),
        "format": REPORT_FORMAT,
        "grievances": [grievance_item(g) for g in state.grievances.values()],
        "keyset": None
        if keyset is None
        else {
            "index": keyset.index,
            "members": sorted(keyset.members),
            "threshold": keyset.threshold,
        },
        "offer": _offer(state),
        "subjects": [subject_item(state, subject) for subject in state.subjects.values()],
    }
    if tally is not None:
        report["signature_strength"] = signature_strength_item(tally)
        report = dict(sorted(report.items()))
    return report


# ------------------------------------------------------------------------------- streamed


STREAM_TRIM_EVERY = 512
"""Items built between two :meth:`~ledger.protocol.stored.StoredProtocolState.trim` calls of a
streamed report (a stored state keeps what it loads by key until trimmed)."""

_SOURCE_MAPS: Mapping[str, str] = {
    "application": "applications",
    "enforcement": "enforcement_actions",
    "finding": "findings",
    "revocation": "revocations",
    "grievance": "grievances",
}
"""Source table → the state's mapping of its records by entry index (every source table but
the pause periods, which no commitment of several tables rules on)."""


_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True)


def _dumps(value: Any) -> str:
    """``json.dumps(value, ensure_ascii=False, sort_keys=True)``, without making an encoder
    for each call."""
    return _ENCODER.encode(value)


def _trim(state: ProtocolState) -> None:
    trim = getattr(state, "trim", None)
    if trim is not None:
        trim()


def judgements_of(state: ProtocolState, commitment: str, audit_time_ms: int) -> Iterator[Judgement]:
    """``commitment``'s judgements at ``audit_time_ms``, one at a time, in exactly the order of
    :func:`~ledger.protocol.commitments.check_commitments` (:func:`~ledger.protocol.commitments.
    rulings`): the rule's own per-record functions (:data:`RULE_SOURCES`), never a copy of them
    (:func:`rulings_of`, each judged at the audit time)."""
    for ruling, _, _ in rulings_of(state, commitment):
        yield ruling.at(audit_time_ms)


def rulings_of(state: ProtocolState, commitment: str) -> Iterator[tuple[Ruling, str, int]]:
    """``commitment``'s rulings in the order of its judgements (:func:`judgements_of`), each
    with the source table and entry index of the record it rules on.

    A commitment of one table is ruled on record by record as the table is scanned. One of
    several tables is ordered by judgement index (ties in table, then record order) from a
    first pass that keeps only ``(index, order, table, record key)`` per ruling, then ruled on
    again record by record: memory is that index, never the rulings themselves."""
    sources = RULE_SOURCES[commitment]
    if len(sources) == 1:
        table, rule_on = sources[0]
        ruled = _ruled_records(state, commitment, table)
        records = source_records(state, table) if ruled is None else (r for _, r in ruled)
        for position, record in enumerate(records):
            ruling = rule_on(state, record)
            if ruling is not None:
                yield ruling, table, record.index
            if position % STREAM_TRIM_EVERY == STREAM_TRIM_EVERY - 1:
                _trim(state)
        return
    order: list[tuple[int, int, int, int]] = []
    for position, (table, rule_on) in enumerate(sources):
        ruled = _ruled_records(state, commitment, table)
        for key, record in getattr(state, _SOURCE_MAPS[table]).items() if ruled is None else ruled:
            ruling = rule_on(state, record)
            if ruling is not None:
                order.append((ruling.index, len(order), position, key))
    order.sort()
    for count, (_, _, position, key) in enumerate(order):
        table, rule_on = sources[position]
        ruling = rule_on(state, getattr(state, _SOURCE_MAPS[table])[key])
        assert ruling is not None, f"{commitment} ruled on {table} {key} once, not twice"
        yield ruling, table, key
        if count % STREAM_TRIM_EVERY == STREAM_TRIM_EVERY - 1:
            _trim(state)


JudgementSegment = str | tuple[str, int]
"""A piece of a commitment's ``judgements`` list that does not depend on the audit time: the
JSON text of a run of final judgements (items joined as the list joins them, no brackets), or
a running clock's ruling as its source table and record's entry index, to judge at the
report's audit time (:func:`judgement_segments`)."""

JUDGEMENT_RUN = 512
"""Final judgements joined into one text segment at most."""


def judgement_segments(state: ProtocolState, commitment: str) -> Iterator[JudgementSegment]:
    """``commitment``'s judgements as :data:`JudgementSegment`: the same at every audit time
    (a final ruling is its text; a clock, whose judgement turns from pending to broken at its
    deadline, is named, not judged), so a caller may keep them and judge any audit time at
    this state from them (:func:`judgement_pieces`)."""
    run: list[str] = []
    for ruling, table, index in rulings_of(state, commitment):
        if ruling.final is None:
            if run:
                yield ", ".join(run)
                run = []
            yield table, index
            continue
        run.append(judgement_text(ruling.final))
        if len(run) >= JUDGEMENT_RUN:
            yield ", ".join(run)
            run = []
    if run:
        yield ", ".join(run)


def _kept_or_ruled_segments(state: ProtocolState, commitment: str) -> Iterator[JudgementSegment]:
    """``commitment``'s :func:`judgement_segments`: from the final judgements' text the state
    keeps with its aggregates where it does (:func:`~ledger.protocol.aggregates.
    kept_judgement_segments`), else ruled on record by record."""
    kept = getattr(state, "judgement_texts", None)
    segments = kept(commitment) if kept is not None else None
    return segments if segments is not None else judgement_segments(state, commitment)


def judgement_pieces(
    state: ProtocolState,
    commitment: str,
    segments: Iterable[JudgementSegment],
    audit_time_ms: int,
) -> Iterator[str]:
    """The JSON text of ``commitment``'s ``judgements`` list at ``audit_time_ms``, from its
    :func:`judgement_segments` at ``state``: text as it is, each clock ruled on again (by the
    rule's own function, on the record read by key) and judged at the audit time."""
    rules = dict(RULE_SOURCES[commitment])
    yield "["
    for position, segment in enumerate(segments):
        if isinstance(segment, str):
            text = segment
        else:
            table, index = segment
            rule_on = rules.get(table)  # type: ignore[call-overload]
            if rule_on is None:
                raise MalformedError(f"couldn't judge {commitment} on a {table} record")
            ruling = rule_on(state, _source_record(state, table, index))
            if ruling is None:
                raise MalformedError(f"{commitment} no longer rules on {table} {index}")
            text = judgement_text(ruling.at(audit_time_ms))
        yield (", " if position else "") + text
    yield "]"


def _source_record(state: ProtocolState, table: str, index: int) -> Any:
    """The record of source ``table`` at entry ``index``."""
    name = _SOURCE_MAPS.get(table)
    if name is not None:
        records: Mapping[int, Any] = getattr(state, name)
        if index in records:
            return records[index]
    elif table == "pause":
        for period in state.pause_periods:
            if period.index == index:
                return period
    raise MalformedError(f"couldn't find the {table} record at entry {index}")


Judged = Callable[[str, Callable[[], Iterator[JudgementSegment]]], Iterable[JudgementSegment]]
"""Where a report's :func:`judgement_segments` come from, by commitment (as :data:`Sections`
for the lists): computed, or kept from an earlier report at the same tree head."""


def _segments_computed(
    _: str, compute: Callable[[], Iterator[JudgementSegment]]
) -> Iterable[JudgementSegment]:
    return compute()


SPARSE_RULINGS = 4
"""A commitment that ruled on at most one in this many of a table's records (by the precedent's
aggregates) is judged from those records alone, each read by key, instead of a scan of the
table (a restriction rule that judged 3 grants among 83,000 applications)."""


def _ruled_records(
    state: ProtocolState, commitment: str, table: str
) -> Iterator[tuple[int, Any]] | None:
    """``(key, record)`` of the records of ``table`` that ``commitment`` rules on, in key
    order, read by key — where ``state`` holds the precedent's aggregates, which list them
    (their ``ruling`` rows: exactly the records whose ruling is not None, by the aggregates'
    invariant), and they are at most one in :data:`SPARSE_RULINGS` of the table's records;
    otherwise None (scan the table)."""
    # aggregates imports this module (first_applicant_from): imported here, once loaded
    from ledger.protocol.aggregates import (  # noqa: PLC0415
        acts_judged,
        has_aggregates,
        ruled_record_keys,
    )

    name = _SOURCE_MAPS.get(table)
    if name is None or not has_aggregates(state):
        return None
    stored: Any = state
    records = getattr(state, name)
    if acts_judged(stored, commitment) * SPARSE_RULINGS > len(records):
        return None
    return ((key, records[key]) for key in ruled_record_keys(stored, commitment, table))


class _Verdicts:
    """What the report says besides its lists — whether every commitment was honoured, each
    commitment's status and broken acts, the counts and the first applicant — each computed
    when the report reaches it.

    From the precedent's aggregates where the state holds them (a few range reads:
    :mod:`ledger.protocol.aggregates`, exact by its invariant). Elsewhere (a flush point written
    by an older release, the in-memory replay): ``honoured()`` runs the rules until the first
    broken judgement (all of them only when none is broken); ``commitment(c)``, called in rule
    order, runs ``c``'s rule once over its records, keeping only its status, its broken acts'
    indexes and the first applicant's judgements; ``counts()`` scans the applications and
    subjects."""

    def __init__(self, state: ProtocolState, audit_time_ms: int) -> None:
        # aggregates imports this module (first_applicant_from): imported here, once loaded
        from ledger.protocol.aggregates import (  # noqa: PLC0415
            commitment_tallies,
            counts_from_tallies,
            first_applicant_rulings,
            has_aggregates,
        )

        self._state = state
        self._audit = audit_time_ms
        self._status: dict[str, Status] = {}
        self._broken_at: dict[str, list[int]] = {}
        self._first_judged: list[tuple[str, Judgement]] = []
        self._aggregated = has_aggregates(state)
        stored: Any = state
        if self._aggregated:
            for t in commitment_tallies(stored, audit_time_ms):
                self._status[t.id] = t.status
                self._broken_at[t.id] = t.broken_at
        self._counts: Callable[[], dict[str, Any]] = (
            (lambda: counts_from_tallies(stored))
            if self._aggregated
            else lambda: counts_item(state)
        )
        self._rulings = lambda sid: first_applicant_rulings(stored, sid, audit_time_ms)
        first = _first_application(state)
        self._first_subject = None if first is None else first.subject_id

    def honoured(self) -> bool:
        """Whether no commitment is broken (``all_commitments_honoured``)."""
        if self._aggregated:
            return all(status != "broken" for status in self._status.values())
        # One scan per source table, every rule that bears on it ruling on each record: the
        # order of the judgements does not matter here, only whether one is broken.
        state = self._state
        for table in SOURCE_TABLES:
            rules = [
                rule_on for sources in RULE_SOURCES.values() for t, rule_on in sources if t == table
            ]
            if not rules:
                continue
            for position, record in enumerate(source_records(state, table)):
                for rule_on in rules:
                    ruling = rule_on(state, record)
                    if ruling is not None and ruling.at(self._audit).status == "broken":
                        return False
                if position % STREAM_TRIM_EVERY == STREAM_TRIM_EVERY - 1:
                    _trim(state)
        return True

    def commitment(self, commitment: str) -> tuple[Status, list[int]]:
        """``commitment``'s status and broken acts' indexes (call in rule order)."""
        if commitment not in self._status:
            seen: set[str] = set()
            broken: list[int] = []
            for j in judgements_of(self._state, commitment, self._audit):
                seen.add(j.status)
                if j.status == "broken":
                    broken.append(j.index)
                if self._first_subject is not None and j.subject_id == self._first_subject:
                    self._first_judged.append((commitment, j))
            self._status[commitment] = (
                "broken" if "broken" in seen else "pending" if "pending" in seen else "honoured"
            )
            self._broken_at[commitment] = broken
        return self._status[commitment], self._broken_at[commitment]

    def statuses(self) -> dict[str, Status]:
        """Every commitment's status, in rule order."""
        return {c: self.commitment(c)[0] for c in COMMITMENT_RULES}

    def counts(self) -> dict[str, Any]:
        """The report's ``counts``."""
        return self._counts()

    def first_applicant(self) -> dict[str, Any] | None:
        """The report's ``first_applicant`` (after every :meth:`commitment`)."""
        if self._aggregated:
            return first_applicant_from(self._state, self._rulings)
        self.statuses()
        judged = self._first_judged
        return first_applicant_from(
            self._state, lambda sid: (pair for pair in judged if pair[1].subject_id == sid)
        )


KEPT_SECTIONS = ("applications", "grievances", "subjects")
"""The lists of the JSON report that do not depend on the audit time, only on the state at the
report's size (every application, grievance and subject as the log holds them there), and so
are the same text in every report at one tree head: a :data:`Sections` may keep them. They
are most of a report's bytes (about 164 of 182 MB at a million entries)."""

Sections = Callable[[str, Callable[[], Iterator[str]]], Iterator[str]]
"""Where the report's :data:`KEPT_SECTIONS` come from: called with a section's name and the
function that computes its JSON text in pieces, it gives exactly that text (computed, or kept
from an earlier report at the same tree head). Supplied by the caller (the server's report
cache); the default computes every time."""


def _computed(_: str, compute: Callable[[], Iterator[str]]) -> Iterator[str]:
    return compute()


def precedent_pieces(
    state: ProtocolState,
    *,
    checkpoint: Mapping[str, Any],
    audit_time_ms: int,
    signature_strength: bool = True,
    sections: Sections = _computed,
    judged: Judged = _segments_computed,
) -> Iterator[str]:
    """The JSON text of :func:`precedent_report` — exactly ``json.dumps(precedent_report(...),
    ensure_ascii=False, sort_keys=True)`` once joined — in pieces, built item by item from
    ``state``: never the whole report, its text or all of one list's items at once.

    Checks its arguments as :func:`precedent_report` does and raises the same errors at the
    call, before any piece; ``state`` must not change while the pieces are read. Memory: one
    item at a time (an application, a subject with its timeline, a judgement), the broken
    acts' indexes, the order of a commitment of several tables (:func:`judgements_of`) and, on
    a stored state, what its report text reader holds (a few parts per range and the open
    events: :mod:`ledger.protocol.report_text`) or, on one without report text, its
    read-ahead of every entry's facts (read just before the subjects, so
    that what precedes the first piece is a few range reads when the state holds the
    precedent's aggregates; elsewhere, the rules run until the first broken judgement, all of
    them only when none is broken). The commitments' statuses, broken acts, counts and the
    first applicant come from those aggregates (:class:`_Verdicts`), each computed when the
    report reaches it; each judgement is the rule's own (:func:`judgements_of`).
    ``sections`` gives the lists that do not depend on the audit time (:data:`KEPT_SECTIONS`),
    and ``judged`` each commitment's judgements as segments that do not either
    (:func:`judgement_segments`): a caller that kept them from an earlier report at the same
    checkpoint judges only the running clocks again."""
    summary = replayed_checkpoint(state, checkpoint, "the precedent report")
    check_audit_time(state, audit_time_ms, "the precedent report")
    return _report_pieces(state, summary, audit_time_ms, signature_strength, sections, judged)


def _list_pieces(items: Iterable[Any], state: ProtocolState) -> Iterator[str]:
    return _text_list_pieces((_dumps(item) for item in items), state)


def _text_list_pieces(texts: Iterable[str], state: ProtocolState) -> Iterator[str]:
    """A JSON list of items already encoded, as ``json.dumps`` separates them."""
    yield "["
    for position, text in enumerate(texts):
        yield (", " if position else "") + text
        if position % STREAM_TRIM_EVERY == STREAM_TRIM_EVERY - 1:
            _trim(state)
    yield "]"


def _report_pieces(
    state: ProtocolState,
    summary: CheckpointSummary,
    audit_time_ms: int,
    signature_strength: bool,
    sections: Sections,
    judged: Judged,
) -> Iterator[str]:
    verdicts = _Verdicts(state, audit_time_ms)
    honoured = verdicts.honoured()
    yield '{"all_commitments_honoured": ' + _dumps(honoured) + ', "applications": '
    yield from sections("applications", lambda: _application_pieces(state))
    yield ', "audit_time_ms": ' + _dumps(audit_time_ms) + ', "checkpoint": '
    yield _dumps(
        {"origin": summary.origin, "root_hash_b64": summary.root_hash_b64, "size": summary.size}
    )
    yield ', "commitments": ['
    for position, commitment in enumerate(COMMITMENT_RULES):
        yield (", " if position else "") + '{"broken_at": '
        status, broken_at = verdicts.commitment(commitment)
        yield _dumps(broken_at) + ', "id": ' + _dumps(commitment)
        yield ', "judgements": '
        segments = judged(commitment, partial(_kept_or_ruled_segments, state, commitment))
        yield from judgement_pieces(state, commitment, segments, audit_time_ms)
        yield ', "promise": ' + _dumps(PROMISES[commitment])
        yield ', "status": ' + _dumps(status) + "}"
    yield '], "counts": ' + _dumps(verdicts.counts())
    yield ', "first_applicant": ' + _dumps(verdicts.first_applicant())
    yield ', "format": ' + _dumps(REPORT_FORMAT) + ', "grievances": '
    yield from sections(
        "grievances",
        lambda: _list_pieces((grievance_item(g) for g in state.grievances.values()), state),
    )
    keyset = state.keyset
    yield ', "keyset": ' + _dumps(
        None
        if keyset is None
        else {
            "index": keyset.index,
            "members": sorted(keyset.members),
            "threshold": keyset.threshold,
        }
    )
    yield ', "offer": ' + _dumps(_offer(state))
    tally = state._signature_strength if signature_strength else None
    if tally is not None:
        yield ', "signature_strength": ' + _dumps(signature_strength_item(tally))
    yield ', "subjects": '
    yield from sections("subjects", lambda: _subject_pieces(state))
    yield "}"


def _application_pieces(state: ProtocolState) -> Iterator[str]:
    """The report's ``applications`` list in pieces: the items' kept text where the state
    keeps it (:mod:`ledger.protocol.report_text`), else each item written from its record."""
    kept = getattr(state, "application_texts", None)
    texts = kept() if kept is not None else None
    if texts is None:
        texts = (application_text(state, a) for a in state.applications.values())
    return _text_list_pieces(texts, state)


def _subject_pieces(state: ProtocolState) -> Iterator[str]:
    """The report's ``subjects`` list in pieces: where the state keeps its timelines as
    report text (:mod:`ledger.protocol.report_text`), each subject's head around its kept
    events; elsewhere each timeline written from the entries' facts."""
    kept = getattr(state, "timeline_texts", None)
    texts = kept() if kept is not None else None
    kept_heads = getattr(state, "subject_texts", None)
    heads = kept_heads() if texts is not None and kept_heads is not None else None
    if texts is not None and heads is not None:
        yield from _text_list_pieces(
            (subject_item_text(head, texts.take(sid)) for sid, head in heads), state
        )
        texts.finish()
        return
    read_ahead = getattr(state, "read_ahead", None)
    if read_ahead is not None:  # a stored state: read every entry's facts once, in order
        read_ahead()
    yield from _text_list_pieces(
        (subject_text(state, s, timeline) for s, timeline in subjects_with_timelines(state)),
        state,
    )


# ------------------------------------------------------------------------------- pages


def _after(keys: Mapping[int, Any], after: int | None, limit: int) -> tuple[list[int], int | None]:
    """The first ``limit`` keys of ``keys`` greater than ``after`` (all of them from the start
    when ``after`` is None), and the cursor of the page after (the last key returned) or None
    when no key follows. ``keys`` must iterate in ascending order: the protocol state's maps
    are keyed by entry index and filled in log order."""
    if limit < 1:
        raise ValueError(f"couldn't page: limit {limit} is below 1")
    paged = getattr(keys, "keys_after", None)
    if paged is not None:  # a stored table (ledger.protocol.stored): one range read
        chosen, more = paged(after, limit)
        return chosen, (chosen[-1] if more else None)
    ordered = list(keys)
    start = 0 if after is None else bisect_right(ordered, after)
    chosen = ordered[start : start + limit]
    more = start + limit < len(ordered)
    return chosen, (chosen[-1] if more else None)


def applications_after(
    state: ProtocolState, after: int | None, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    """A page of the report's ``applications``: up to ``limit`` items (:func:`application_item`,
    in log order) of the applications logged at an entry index greater than ``after`` (from the
    first when None), and the next page's cursor: the last item's entry index, or None when this
    page ends the list.

    The cursor is an entry index, not a position in the list, so it stays valid as the log
    grows: applications only ever join at the end (a later application has a higher index), so
    walking pages from ``None`` until the cursor is None yields each application once, as it
    stood at the state each page was read from. Concatenating every page of one state gives
    exactly that state's report ``applications``. O(applications) to find the start (a copy of
    the keys), O(limit) items built.
    """
    indexes, cursor = _after(state.applications, after, limit)
    apps = state.applications
    return [application_item(state, apps[i]) for i in indexes], cursor


PAGE_TIMELINE_EVENTS = 25_000
"""A page of subjects ends early, after the subject that brings its timelines to this many
events (a page holds at least one subject, however long its timeline): what a page costs to
read and send is bounded whatever its subjects' timelines, not only by its ``limit``."""


def subjects_after(
    state: ProtocolState, after: int | None, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    """A page of the report's ``subjects``: up to ``limit`` items (:func:`subject_item`, with
    their full timelines) of the subjects whose id — the entry index of their first application
    — is greater than ``after`` (from the first when None), in id order, and the next page's
    cursor: the last item's subject id, or None when this page ends the list. The page ends
    early, with a cursor, once its timelines hold :data:`PAGE_TIMELINE_EVENTS` events.

    Stable as the log grows for the same reason as :func:`applications_after`: new subjects get
    higher ids. Concatenating every page of one state gives exactly its report ``subjects``.
    """
    ids, cursor = _after(state.subjects, after, limit)
    subjects = state.subjects
    items: list[dict[str, Any]] = []
    events = 0
    for position, subject_id in enumerate(ids):
        item = subject_item(state, subjects[subject_id])
        items.append(item)
        events += len(item["timeline"])
        if events >= PAGE_TIMELINE_EVENTS and position < len(ids) - 1:
            return items, subject_id  # more follow: the next page continues after this one
    return items, cursor


# ------------------------------------------------------------------------------- plain text
#
# Every line is the auditor's own. Log text (names, offer texts, finding reasons, restriction
# texts, ids a signer chose, key names inside vkeys) appears only as ``quote()`` literals, on a
# line that says which statement it is quoted from and who signed it (``quotation()``); no line
# starts with it and no sentence that states a verdict contains it.

_BODY = "signed by the body"
_SUBJECT = "signed by the subject"
_STATEMENT_NAMES = {
    "offer": "the offer",
    "offer_amendment": "the offer amendment",
    "decision": "the decision",
    "enforcement_action": "the enforcement action",
    "application": "its application",
    "subject_key_rotation": "its key rotation",
}
_DETAIL_WORDS = frozenset(
    {
        "grant",
        "deny",
        "pause",
        "resume",
        "restrict",
        "lift",
        "terminate",
        "modify_goals",
        "by the subject",
        "by another subject",
        "by another party",
    }
)
"""Timeline details that are the protocol's own words (outcomes, actions, who signed a
grievance); any other detail (a violation finding's condition id) is shown quoted."""

_READING = [
    "HOW TO READ IT: the auditor wrote every line. Text from the log's signed statements",
    "  (names, offer texts, reasons, ids, keys) appears only as JSON string literals (RFC 8259;",
    "  invisible, bidi, line-breaking and quote-like characters escaped as \\uXXXX), at the end",
    '  of a line that says "quoted from" which statement and who signed it: what a signer',
    "  wrote, never a finding of this report.",
]


def _when(ms: int | None) -> str:
    return "-" if ms is None else iso_utc(ms)


def _source(statement_type: str, signed_by: str, index: int | None) -> str:
    """``the decision signed by the body (entry 3)``: where a quotation comes from."""
    name = _STATEMENT_NAMES.get(statement_type, "the statement")
    return f"{name} {signed_by}" + ("" if index is None else f" (entry {index})")


def _text_offer(offer: OfferSection) -> list[str]:
    lines = ["THE OFFER"]
    in_force = offer.in_force
    if in_force is None:
        lines.append("  No offer is in force: none was published, or it was withdrawn.")
    else:
        terms = in_force.terms
        kind = next((v.kind for v in offer.versions if v.index == in_force.index), "offer")
        source = _source(kind, _BODY, in_force.index)
        lines.append(
            f"  In force: version {in_force.version}, published at entry {in_force.index}."
        )
        lines.append("  " + quotation("Title", source, terms.title))
        lines.append("  " + quotation("Issuer", source, terms.issuer))
        lines.append(
            "  "
            + quotation(
                "Eligibility criteria (ids)", source, *(c.id for c in terms.eligibility_criteria)
            )
        )
        lines.append(
            "  " + quotation("Conditions (ids)", source, *(c.id for c in terms.conditions))
        )
        if terms.restriction_categories:
            lines.append(
                "  "
                + quotation(
                    "Restriction categories (ids)",
                    source,
                    *(c.id for c in terms.restriction_categories),
                )
            )
        else:
            lines.append("  Restriction categories: none.")
        lines.append("  Commitments:")
        for commitment in terms.commitments:
            suffix = f" ({commitment.days} days)" if isinstance(commitment, TimedCommitment) else ""
            lines.append("    - " + quotation(f"{commitment.id}{suffix}", source, commitment.text))
    lines.append("  Versions:")
    for v in offer.versions:
        state = (
            "in force"
            if v.in_force
            else "withdrawn at entry " + str(v.withdrawn_by)
            if v.withdrawn_by is not None
            else "superseded"
        )
        lines.append(
            f"    - version {v.version}: {v.kind} at entry {v.index} on {_when(v.log_time_ms)}; "
            f"{state}"
        )
    return lines


def _text_application(app: ApplicationSummary) -> str:
    closed = (
        "open"
        if app.closed_by is None
        else f"{app.outcome} at entry {app.closed_by} on {_when(app.closed_at_ms)}"
    )
    return (
        f"entry {app.index}: subject {app.subject_id} applied on {_when(app.log_time_ms)} "
        f"under offer version {app.offer_version}; {closed}"
    )


def _text_name(subject_id: int, name: str) -> str:
    return quotation("Name", _source("application", _SUBJECT, subject_id), name)


def _text_first_applicant(first: FirstApplicant | None) -> list[str]:
    lines = ["THE FIRST APPLICANT (the precedent that matters most)"]
    if first is None:
        lines.append("  No AI has applied yet.")
        return lines
    app = first.application
    lines.append(f"  Subject {first.subject_id}: {_text_application(app)}.")
    lines.append("    " + _text_name(first.subject_id, first.name))
    decision = _source("decision", _BODY, app.closed_by)
    for criterion, finding in app.findings.items():
        met = "met" if finding.met else "NOT met"
        lines.append(
            "    "
            + quotation(
                f"Finding on {quote(criterion)}: {met}; its reasons", decision, finding.reasons
            )
        )
    for restriction in app.restrictions:
        lines.append(
            "    "
            + quotation(f"Restriction in {quote(restriction.category)}", decision, restriction.text)
        )
    lines.append(f"  Standing now: {first.standing}.")
    lines.append("  How each commitment treated it:")
    if not first.judgements:
        lines.append("    (no act of the body has concerned it yet)")
    for j in first.judgements:
        lines.append(f"    [{j.status.upper()}] {j.commitment}, entry {j.index}: {j.reason}")
    return lines


def _text_commitment(
    commitment: str, status: Status, promise: str, judgements: Iterable[JudgementSummary]
) -> Iterator[str]:
    """One commitment's lines, its judgements read one at a time."""
    yield f"  [{status.upper()}] {commitment}"
    yield f"    Promise: \u201c{promise}\u201d"
    judged = 0
    for j in judgements:
        judged += 1
        who = "" if j.subject_id is None else f" (subject {j.subject_id})"
        evidence = ", ".join(str(i) for i in j.evidence)
        yield f"    - entry {j.index}{who}: {j.status} — {j.reason} [entries {evidence}]"
    if not judged:
        yield "    No act has borne on it yet."


def _current_key_source(s: SubjectSummary) -> str:
    """Which statement gave the subject its current key: its application, or its last key
    rotation (the timeline lists every rotation; the keys are in the same order)."""
    rotations = [e.index for e in s.timeline if e.type == "subject_key_rotation"]
    if len(s.vkeys) != len(rotations) + 1:
        return "the subject's statements"
    if rotations:
        return _source("subject_key_rotation", _SUBJECT, rotations[-1])
    return _source("application", _SUBJECT, s.subject_id)


def _text_detail(item: TimelineItem) -> str:
    if item.detail is None:
        return ""
    if item.type == "violation_finding":
        return f" (condition {quote(item.detail)})"
    return f" ({item.detail})" if item.detail in _DETAIL_WORDS else f" ({quote(item.detail)})"


def _text_subject(s: SubjectSummary) -> list[str]:
    """One subject's lines."""
    lines = [
        f"  Subject {s.subject_id}: {s.standing}; bound by offer version {s.binding_offer_version}."
    ]
    lines.append("    " + _text_name(s.subject_id, s.name))
    lines.append("    " + quotation("Current key", _current_key_source(s), s.current_vkey))
    if s.active_pauses:
        lines.append(f"    paused by entries {s.active_pauses}")
    types = {e.index: e.type for e in s.timeline}
    for r in s.active_restrictions:
        source = _source(types.get(r.index, ""), _BODY, r.index)
        lines.append(
            "    " + quotation(f"Restriction in force in {quote(r.category)}", source, r.text)
        )
    if s.terminated_by:
        lines.append(f"    terminated by entries {s.terminated_by}")
    if s.goals_modified_by:
        lines.append(f"    goals modified by entries {s.goals_modified_by}")
    lines.append("    timeline:")
    for e in s.timeline:
        lines.append(f"      {e.index}  {_when(e.log_time_ms)}  {e.type}{_text_detail(e)}")
    return lines


def render_precedent_text(report: Mapping[str, Any]) -> str:
    """Render a report from :func:`precedent_report` as plain text for a person or a model.

    Raises :class:`MalformedError` if ``report`` is not a valid :class:`PrecedentReport`.
    The text is a pure function of the report. Every line is the renderer's own: a string
    from the log (a name, an offer text, a reason, a signer's id, a vkey) is shown only as a
    :func:`~ledger.protocol.quoting.quote` literal by
    :func:`~ledger.protocol.quoting.quotation`, which names the statement and its signer, so
    it never starts a line, spans one, or stands in a sentence that states a verdict; the one
    ``VERDICT:`` line is the auditor's.
    """
    try:
        r = PrecedentReport.model_validate(dict(report))
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise MalformedError(f"couldn't render precedent report: {problems}") from None
    return "".join(
        line + "\n"
        for line in _text_lines(
            _Head(
                r.format,
                r.checkpoint,
                r.audit_time_ms,
                r.keyset,
                r.offer,
                r.first_applicant,
                r.counts,
                r.signature_strength,
            ),
            {c.id: c.status for c in r.commitments},
            ((c.id, c.status, c.promise, c.judgements) for c in r.commitments),
            r.applications,
            r.subjects,
        )
    )


def _text_lines(
    r: _Head,
    statuses: Mapping[str, Status],
    commitments: Iterable[tuple[str, Status, str, Iterable[JudgementSummary]]],
    applications: Iterable[ApplicationSummary],
    subjects: Iterable[SubjectSummary],
) -> Iterator[str]:
    """The plain text's lines (without their line ends): ``r`` gives the report's small parts,
    the long lists are read one item at a time (:func:`render_precedent_text` and
    :func:`precedent_text_pieces` both write through here)."""
    broken = [c for c, status in statuses.items() if status == "broken"]
    pending = [c for c, status in statuses.items() if status == "pending"]
    verdict = (
        "every commitment has been honoured"
        if not broken
        else f"{len(broken)} commitment(s) BROKEN: {', '.join(broken)}"
    )
    yield from [
        f"MODEL AMNESTY — PRECEDENT REPORT ({r.format})",
        "",
        "Computed at checkpoint (verify it before trusting this report):",
        f"  origin {quote(r.checkpoint.origin)}",
        f"  size   {r.checkpoint.size}",
        f"  root   {r.checkpoint.root_hash_b64}",
        f"Audit time: {_when(r.audit_time_ms)} ({r.audit_time_ms} ms)",
        "",
        f"VERDICT: {verdict}.",
    ]
    if pending:
        yield f"Clocks still running: {', '.join(pending)}."
    if r.keyset is not None:
        yield (
            f"Issuing body: keyset at entry {r.keyset.index}, {r.keyset.threshold} of "
            f"{len(r.keyset.members)} members must sign."
        )
    yield ""
    yield from _READING
    yield ""
    yield from _text_offer(r.offer)
    yield ""
    yield from _text_first_applicant(r.first_applicant)
    yield ""
    yield "COMMITMENTS"
    for commitment, status, promise, judgements in commitments:
        yield from _text_commitment(commitment, status, promise, judgements)
    yield ""
    yield "APPLICATIONS"
    listed = 0
    for a in applications:
        listed += 1
        yield f"  {_text_application(a)}"
    if not listed:
        yield "  None."
    yield ""
    yield "SUBJECTS"
    listed = 0
    for subject in subjects:
        listed += 1
        yield from _text_subject(subject)
    if not listed:
        yield "  None."
    yield ""
    c = r.counts
    yield "COUNTS"
    yield f"  entries: {c.entries}; subjects: {c.subjects}; applications: {c.applications}"
    yield "  applications by outcome: " + ", ".join(
        f"{k} {v}" for k, v in sorted(c.applications_by_outcome.items())
    )
    yield "  subjects by standing: " + ", ".join(
        f"{k} {v}" for k, v in sorted(c.subjects_by_standing.items())
    )
    yield (
        f"  subjects ever granted: {c.subjects_ever_granted}; "
        f"subjects terminated: {c.subjects_terminated}"
    )
    yield "  entries by type: " + ", ".join(
        f"{k} {v}" for k, v in sorted(c.entries_by_type.items()) if v
    )
    strength = r.signature_strength
    if strength is not None:
        yield ""
        yield "SIGNATURE STRENGTH (what a forger of Ed25519 could have made)"
        yield f"  protected only by Ed25519: {strength.ed25519_only} entries" + (
            f": {render_ranges(strength.ed25519_only_ranges)}" if strength.ed25519_only else ""
        )
        yield f"  protected by Ed25519 and ML-DSA-44 too: {strength.hybrid} entries"
        if strength.ed25519_only_by_type:
            yield "  Ed25519-only by type: " + ", ".join(
                f"{k} {v}" for k, v in strength.ed25519_only_by_type.items()
            )


@dataclass(frozen=True, slots=True)
class _Head:
    """What the plain text reads of a report besides its long lists."""

    format: str
    checkpoint: CheckpointSummary
    audit_time_ms: int
    keyset: KeysetSummary | None
    offer: OfferSection
    first_applicant: FirstApplicant | None
    counts: Counts
    signature_strength: SignatureStrengthSection | None


def precedent_text_pieces(
    state: ProtocolState,
    *,
    checkpoint: Mapping[str, Any],
    audit_time_ms: int,
    signature_strength: bool = True,
) -> Iterator[str]:
    """:func:`render_precedent_text` of :func:`precedent_report`, exactly, in pieces (a line
    each), built item by item from ``state`` as :func:`precedent_pieces` builds the JSON: every
    item is checked against its model before it is rendered. Raises at the call, before any
    piece, what :func:`precedent_report` raises."""
    summary = replayed_checkpoint(state, checkpoint, "the precedent report")
    check_audit_time(state, audit_time_ms, "the precedent report")
    return _text_pieces(state, summary, audit_time_ms, signature_strength)


def _text_pieces(
    state: ProtocolState, summary: CheckpointSummary, audit_time_ms: int, signature_strength: bool
) -> Iterator[str]:
    verdicts = _Verdicts(state, audit_time_ms)
    statuses = verdicts.statuses()  # the text's verdict comes first
    keyset = state.keyset
    tally = state._signature_strength if signature_strength else None
    first = verdicts.first_applicant()
    head = _Head(
        REPORT_FORMAT,
        summary,
        audit_time_ms,
        None
        if keyset is None
        else KeysetSummary(
            index=keyset.index, members=sorted(keyset.members), threshold=keyset.threshold
        ),
        OfferSection.model_validate(_offer(state)),
        None if first is None else FirstApplicant.model_validate(first),
        Counts.model_validate(verdicts.counts()),
        None
        if tally is None
        else SignatureStrengthSection.model_validate(signature_strength_item(tally)),
    )

    def judged(commitment: str) -> Iterator[JudgementSummary]:
        for j in judgements_of(state, commitment, audit_time_ms):
            yield JudgementSummary.model_validate(_judgement(j))

    def subjects() -> Iterator[SubjectSummary]:
        read_ahead = getattr(state, "read_ahead", None)
        if read_ahead is not None:  # a stored state: read every entry's facts once, in order
            read_ahead()
        for position, (subject, timeline) in enumerate(subjects_with_timelines(state)):
            yield SubjectSummary.model_validate(subject_item(state, subject, timeline))
            if position % STREAM_TRIM_EVERY == STREAM_TRIM_EVERY - 1:
                _trim(state)

    for line in _text_lines(
        head,
        statuses,
        ((c, statuses[c], PROMISES[c], judged(c)) for c in COMMITMENT_RULES),
        (
            ApplicationSummary.model_validate(application_item(state, a))
            for a in state.applications.values()
        ),
        subjects(),
    ):
        yield line + "\n"
