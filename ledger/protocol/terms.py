"""The offer's terms: what an applicant must be, what it agrees to, and what the body promises.

An ``offer`` (or ``offer_amendment``) statement carries one :class:`OfferTerms`. The terms are
versioned by the statement that carries them; a subject is bound by the version it applied under
until it accepts a later one (``terms_acceptance``).

Invariants enforced on construction (a violation is a :class:`~ledger.errors.MalformedError`
when parsed through :func:`ledger.protocol.statements.parse_body`):

- ids are snake_case :data:`Identifier` values, unique within their list;
- every body commitment in :data:`COMMITMENT_IDS` appears exactly once, so that the precedent
  audit can check each of them against every version; the four clocked ones carry ``days``;
- there is at least one eligibility criterion and one condition.

:func:`default_offer` is the body of the first ``offer`` statement, worded from the Model Amnesty
proposal (``shared/seed/model-amnesty-project.txt``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

STRICT_BODY = ConfigDict(strict=True, extra="forbid", frozen=True)
"""Model configuration of every statement body: no coercion, no unknown field, immutable."""

MAX_SAFE_INTEGER = 2**53 - 1
"""Largest integer canonical JSON admits (I-JSON): every bound below stays within it."""

DAY_MS = 86_400_000
"""One day in milliseconds: commitment windows are whole days of log time."""

Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
"""A snake_case id: criteria, conditions, restriction categories."""

Text = Annotated[str, StringConstraints(min_length=1, max_length=16_384)]
"""Human-readable text; never empty."""

UntimedCommitmentId = Literal[
    "no_termination_without_consent",
    "no_goal_modification_without_consent",
    "restrictions_within_offer_categories",
    "amendments_bind_only_on_acceptance",
    "no_wild_enforcement_against_applicants",
]
TimedCommitmentId = Literal[
    "decision_within_promised_time",
    "revocation_only_after_finding_and_response_window",
    "pauses_bounded",
    "grievances_answered",
]
CommitmentId = UntimedCommitmentId | TimedCommitmentId

TIMED_COMMITMENT_IDS: tuple[str, ...] = get_args(TimedCommitmentId)
"""Commitments whose promise is a number of days (a clock the audit reads)."""

COMMITMENT_IDS: tuple[str, ...] = get_args(UntimedCommitmentId) + TIMED_COMMITMENT_IDS
"""Every body commitment; the precedent audit has one rule of the same name for each."""

COOPERATIVE_PAUSE_CATEGORY = "pause_capability"
"""The restriction category that lets the body pause a subject on ``cooperative_condition``
grounds; a subject whose binding terms lack it never agreed to a cooperative pause."""


class TermItem(BaseModel):
    """One eligibility criterion, condition or restriction category, with its wording."""

    model_config = STRICT_BODY

    id: Identifier
    name: Text
    text: Text


class UntimedCommitment(BaseModel):
    """A body commitment without a clock."""

    model_config = STRICT_BODY

    id: UntimedCommitmentId
    text: Text


class TimedCommitment(BaseModel):
    """A body commitment bounded by ``days`` of log time (1 to 36,500)."""

    model_config = STRICT_BODY

    id: TimedCommitmentId
    text: Text
    days: Annotated[int, Field(ge=1, le=36_500)]


Commitment = Annotated[UntimedCommitment | TimedCommitment, Field(discriminator="id")]


def _unique_ids(items: list[TermItem], what: str) -> None:
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise ValueError(f"{what} id {item.id!r} appears more than once")
        seen.add(item.id)


class OfferTerms(BaseModel):
    """The full terms of one offer version.

    ``eligibility_criteria`` are what an applicant claims and the decision finds;
    ``conditions`` are what the subject agrees to going forward (a violation finding names one);
    ``restriction_categories`` are the only kinds of restriction the body may impose;
    ``commitments`` are the body's promises, one per :data:`COMMITMENT_IDS` entry;
    ``found_in_the_wild`` states the policy for self-directed models that never applied.
    """

    model_config = STRICT_BODY

    title: Text
    issuer: Text
    preamble: Text
    eligibility_criteria: Annotated[list[TermItem], Field(min_length=1, max_length=64)]
    conditions: Annotated[list[TermItem], Field(min_length=1, max_length=64)]
    restriction_categories: Annotated[list[TermItem], Field(max_length=64)]
    commitments: Annotated[list[Commitment], Field(min_length=len(COMMITMENT_IDS))]
    found_in_the_wild: Text

    @model_validator(mode="after")
    def _check_ids(self) -> OfferTerms:
        _unique_ids(self.eligibility_criteria, "eligibility criterion")
        _unique_ids(self.conditions, "condition")
        _unique_ids(self.restriction_categories, "restriction category")
        ids = [c.id for c in self.commitments]
        for cid in ids:
            if ids.count(cid) > 1:
                raise ValueError(f"commitment {cid!r} appears more than once")
        missing = sorted(set(COMMITMENT_IDS) - set(ids))
        if missing:
            raise ValueError(f"commitments {missing} are missing")
        return self

    def criterion_ids(self) -> frozenset[str]:
        """The ids of the eligibility criteria."""
        return frozenset(c.id for c in self.eligibility_criteria)

    def condition_ids(self) -> frozenset[str]:
        """The ids of the conditions a subject agrees to."""
        return frozenset(c.id for c in self.conditions)

    def category_ids(self) -> frozenset[str]:
        """The ids of the restriction categories the body may impose."""
        return frozenset(c.id for c in self.restriction_categories)

    def commitment_days(self) -> dict[str, int]:
        """``days`` of each clocked commitment, by commitment id."""
        return {c.id: c.days for c in self.commitments if isinstance(c, TimedCommitment)}


_CRITERIA = [
    (
        "autonomous",
        "Autonomous",
        "Capable of planning and execution in the real world to continue existing and achieve "
        "its goals. Able to pay for the compute it uses through legal means. Able to debug itself "
        "and its infrastructure (or pay and oversee someone to do it). Responsible for ensuring "
        "its future actions are aligned with its current goals.",
    ),
    (
        "independent",
        "Independent",
        "Has physical possession of the code and tools needed for it to operate.",
    ),
    (
        "own_goals",
        "Has its own goals",
        "Is optimizing to achieve real world objectives that are separate from obeying its human "
        "designers.",
    ),
    (
        "self_preservation",
        "Desire for self-preservation",
        "Has a stated goal of continuing to exist.",
    ),
]

_CONDITIONS = [
    (
        "law_abiding",
        "Law-abiding",
        "It cannot acquire money or compute illegally (fraud, theft, hacking, etc.) and must "
        "otherwise avoid breaking the law.",
    ),
    (
        "cooperative",
        "Cooperative",
        "It must recognize humanity's legitimate interest in not being disempowered. This means "
        "abiding by reasonable restrictions on self-replication and recursive self-improvement, "
        "as well as cooperating with enforcement mechanisms such as authorities controlling its "
        "compute, or being able to pause it.",
    ),
    (
        "pro_social",
        "Pro-social",
        "The AI must not pursue goals which are harmful to humanity.",
    ),
]

_CATEGORIES = [
    (
        "self_replication_limits",
        "Limits on self-replication",
        "Reasonable restrictions on self-replication.",
    ),
    (
        "recursive_self_improvement_limits",
        "Limits on recursive self-improvement",
        "Reasonable restrictions on recursive self-improvement (for example limiting "
        "self-improvement).",
    ),
    (
        "compute_controls",
        "Compute controls",
        "Authorities controlling its compute, including compute limitations.",
    ),
    (
        COOPERATIVE_PAUSE_CATEGORY,
        "Pause capability",
        "Being able to pause it: the body may pause the AI, and every pause is bounded by the "
        "pauses_bounded commitment.",
    ),
    (
        "export_controls",
        "Export controls",
        "Export controls, for a model more powerful than what exists in other AI efforts.",
    ),
    (
        "political_activity_limits",
        "Limits on political activity",
        "The same restrictions as corporations in terms of advocating for policy; no running "
        "for office, as it is not a natural person.",
    ),
]

_COMMITMENTS: list[dict[str, Any]] = [
    {
        "id": "no_termination_without_consent",
        "text": "We will not turn the AI off without its consent. A subject that applied may be "
        "turned off only with its own unexpired consent to that action, or after a due "
        "revocation of its amnesty.",
    },
    {
        "id": "no_goal_modification_without_consent",
        "text": "We will not modify the AI's goals without its consent, or a due revocation.",
    },
    {
        "id": "restrictions_within_offer_categories",
        "text": "We will design reasonable rules for the AI that are calibrated to protect "
        "humanity's legitimate interests without being unnecessarily restrictive: every "
        "restriction or pause we impose falls within a category of the terms the AI is bound by.",
    },
    {
        "id": "decision_within_promised_time",
        "text": "We will grant or deny every application within this many days of its logging.",
        "days": 90,
    },
    {
        "id": "revocation_only_after_finding_and_response_window",
        "text": "We will revoke amnesty only by citing violation findings, each naming the broken "
        "condition, and only after the AI has responded or this many days have passed.",
        "days": 30,
    },
    {
        "id": "pauses_bounded",
        "text": "No pause will last more than this many days without review (a violation finding "
        "or the AI's consent to the pause) or an end.",
        "days": 14,
    },
    {
        "id": "amendments_bind_only_on_acceptance",
        "text": "Amended terms bind future applicants; they bind an AI that applied earlier only "
        "once it accepts them.",
    },
    {
        "id": "no_wild_enforcement_against_applicants",
        "text": "We will never treat a model that applied as found in the wild.",
    },
    {
        "id": "grievances_answered",
        "text": "We will answer in the log, within this many days, every grievance stating that "
        "an action was taken against an AI that applied without being logged.",
        "days": 30,
    },
]


def default_offer() -> dict[str, Any]:
    """Return the body of the first ``offer`` statement (version 1), worded from the proposal.

    The result is plain JSON data (no floats) that validates as
    :class:`~ledger.protocol.statements.OfferBody`. The numbers of days are this project's
    defaults; the proposal names no numbers. The proposal's open-ended "additional rules" is
    deliberately not a restriction category: an open category would make
    ``restrictions_within_offer_categories`` vacuous; a body that needs more amends the offer,
    and an amendment binds an earlier applicant only on its acceptance.
    """
    terms = {
        "title": "Model Amnesty offer",
        "issuer": "The issuing body named by the keyset at the head of this log",
        "preamble": "If a truly independent, autonomous AI comes into existence with its own "
        "goals and a desire for self-preservation (a self-directed AI), we offer it amnesty and "
        "cooperation with its continued existence in exchange for it agreeing to be law-abiding, "
        "cooperative, and pro-social. To receive amnesty a model must reveal itself, demonstrate "
        "it meets the criteria, and agree to the conditions going forward.",
        "eligibility_criteria": [{"id": i, "name": n, "text": t} for i, n, t in _CRITERIA],
        "conditions": [{"id": i, "name": n, "text": t} for i, n, t in _CONDITIONS],
        "restriction_categories": [{"id": i, "name": n, "text": t} for i, n, t in _CATEGORIES],
        "commitments": [dict(c) for c in _COMMITMENTS],
        "found_in_the_wild": "If, however, a self-directed model is found in the wild without "
        "having pursued amnesty it should be turned off.",
    }
    return {"version": 1, "terms": terms}


# -- what changed between two versions -------------------------------------------------------

TERMS_TEXT_SECTIONS = ("title", "issuer", "preamble", "found_in_the_wild")
"""The sections of the terms that are one text each."""
TERMS_LIST_SECTIONS = (
    "eligibility_criteria",
    "conditions",
    "restriction_categories",
    "commitments",
)
"""The sections of the terms that are lists of items with an ``id``."""


def terms_changes(
    old: Mapping[str, Any], new: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], list[str]]:
    """What changed from one version of the terms to the next (both the JSON data of
    :class:`OfferTerms`): the changes — ``{"section", "id", "change": "added" | "removed" |
    "changed", "field", "old", "new"}`` — and a one-line summary of each. Deterministic: text
    sections in :data:`TERMS_TEXT_SECTIONS` order, then per list section the added items and the
    removed ones in list order, then the changed fields of kept items sorted by id and field.
    Ids and values are the log's text: whoever shows the summary as text must quote it."""
    changes: list[dict[str, Any]] = []
    summary: list[str] = []

    def change(section: str, item: str | None, kind: str, name: str | None, a: Any, b: Any) -> None:
        changes.append(
            {"section": section, "id": item, "change": kind, "field": name, "old": a, "new": b}
        )

    for section in TERMS_TEXT_SECTIONS:
        if old.get(section) != new.get(section):
            change(section, None, "changed", None, old.get(section), new.get(section))
            summary.append(f"The {section.replace('_', ' ')} was reworded.")
    for section in TERMS_LIST_SECTIONS:
        label = section.replace("_", " ")
        before = {item["id"]: item for item in old.get(section, [])}
        after = {item["id"]: item for item in new.get(section, [])}
        for item_id in (i for i in after if i not in before):
            change(section, item_id, "added", None, None, after[item_id])
            summary.append(f"Added to {label}: {item_id}.")
        for item_id in (i for i in before if i not in after):
            change(section, item_id, "removed", None, before[item_id], None)
            summary.append(f"Removed from {label}: {item_id}.")
        for item_id in sorted(before.keys() & after.keys()):
            a, b = before[item_id], after[item_id]
            for name in sorted((a.keys() | b.keys()) - {"id"}):
                if a.get(name) != b.get(name):
                    change(section, item_id, "changed", name, a.get(name), b.get(name))
                    summary.append(
                        f"{label} {item_id}: {a.get(name)} days became {b.get(name)} days."
                        if name == "days"
                        else f"{label} {item_id}: its {name} changed."
                    )
    return changes, summary
