"""The read-only queries of the protocol state: what a verifier, the audit and the API read.

:class:`StateQueries` answers from the tables of :class:`~ledger.protocol.tables.StateTables`
(where :attr:`~ledger.protocol.tables.StateTables.size` lives, as admission needs it too):
per-entry facts by index, the keyset and offer versions, the records by entry index, and
:class:`~ledger.protocol.records.SubjectView` snapshots of subjects.

Contract: nothing here changes the state. The mappings are read-only live views of the tables
(they grow as entries are applied) and the tuples are copies; the records in either are the
state's own objects, which callers must not change — :meth:`StateQueries.view_of` gives an
immutable snapshot of a subject. Like the state, not thread-safe against a concurrent
``apply``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from ledger.protocol.keys import checked_vkey, public_key
from ledger.protocol.records import (
    ApplicationRecord,
    ConsentRecord,
    EnforcementRecord,
    FindingRecord,
    GrievanceRecord,
    KeysetRecord,
    OfferVersion,
    PausePeriod,
    RevocationRecord,
    SubjectRecord,
    SubjectView,
    TimelineEvent,
)
from ledger.protocol.statements import Restriction
from ledger.protocol.tables import TYPE_NAMES, StateTables

TYPES_WITH_DETAIL = frozenset(
    {
        "decision",
        "batch_decision",
        "enforcement_action",
        "violation_finding",
        "consent",
        "grievance",
    }
)
"""The statement types whose entries have a :meth:`StateQueries.detail_at` (no other entry has
one): a timeline read from storage looks up the details of these alone."""


class StateQueries(StateTables):
    """Read-only queries of the protocol state."""

    def log_time_ms_at(self, index: int) -> int:
        """The log time of entry ``index`` (which must have been applied)."""
        return self._log_time_at(index)

    def leaf_hash_at(self, index: int) -> bytes:
        """The leaf hash of entry ``index`` (which must have been applied): what a reference
        to it carries."""
        return self._leaf_at(index)

    def type_at(self, index: int) -> str:
        """The statement type of entry ``index`` (which must have been applied)."""
        return TYPE_NAMES[self._type_code_at(index)]

    def detail_at(self, index: int) -> str | None:
        """What entry ``index`` did, for timelines: a decision's or a batch decision's outcome
        (``grant``/``deny``), an enforcement action's or a consent's action, a finding's
        condition, who filed a grievance (``by the subject``, ``by another subject``, ``by
        another party``); ``None`` for other entries."""
        return self._details.get(index)

    def timeline_facts(self, indexes: Iterable[int]) -> list[tuple[int, str | None, int, str]]:
        """``(index, detail, log time, type)`` of each entry of ``indexes`` (which must have
        been applied), in order: what a subject's timeline shows of each (:meth:`detail_at`,
        :meth:`log_time_ms_at`, :meth:`type_at`), in one call for the whole timeline."""
        return [(i, self.detail_at(i), self.log_time_ms_at(i), self.type_at(i)) for i in indexes]

    def type_counts(self) -> dict[str, int]:
        """How many entries of each statement type have been applied (absent types: 0)."""
        return {name: self._type_counts.get(name, 0) for name in sorted(TYPE_NAMES)}

    @property
    def keyset(self) -> KeysetRecord | None:
        """The keyset in force (``None`` only before the genesis entry)."""
        return self._keyset

    @property
    def keysets(self) -> tuple[KeysetRecord, ...]:
        """Every keyset in log order, the last being in force."""
        return tuple(self._keysets)

    @property
    def offer_in_force(self) -> OfferVersion | None:
        """The version applicants may apply under, or ``None`` (none yet, or withdrawn)."""
        return None if self._offer_in_force is None else self._offers[self._offer_in_force]

    @property
    def offer_versions(self) -> tuple[OfferVersion, ...]:
        """Every published version, oldest first."""
        return tuple(self._offers.values())

    def offer_at(self, index: int) -> OfferVersion:
        """The offer version published by entry ``index``."""
        return self._offers[index]

    @property
    def subjects(self) -> Mapping[int, SubjectRecord]:
        """Subjects by subject id, in order of first application."""
        return MappingProxyType(self._subjects)

    @property
    def applications(self) -> Mapping[int, ApplicationRecord]:
        """Applications by entry index, in log order."""
        return MappingProxyType(self._applications)

    @property
    def consents(self) -> Mapping[int, ConsentRecord]:
        """Consents by entry index, in log order."""
        return MappingProxyType(self._consents)

    @property
    def findings(self) -> Mapping[int, FindingRecord]:
        """Violation findings by entry index, in log order."""
        return MappingProxyType(self._findings)

    @property
    def revocations(self) -> Mapping[int, RevocationRecord]:
        """Revocations by entry index, in log order."""
        return MappingProxyType(self._revocations)

    @property
    def enforcement_actions(self) -> Mapping[int, EnforcementRecord]:
        """Enforcement actions by entry index, in log order."""
        return MappingProxyType(self._enforcement)

    @property
    def grievances(self) -> Mapping[int, GrievanceRecord]:
        """Grievances by entry index, in log order."""
        return MappingProxyType(self._grievances)

    @property
    def pause_periods(self) -> tuple[PausePeriod, ...]:
        """Every stretch during which a subject was paused, in order of start."""
        return tuple(self._pause_periods)

    def subject_id_of(self, key: int | str) -> int | None:
        """The subject id named by ``key``: a subject id, or a vkey of any key the subject ever
        held (by public key, whatever name the vkey gives it; a string that is not a valid
        vkey names no subject)."""
        if isinstance(key, str):
            try:
                return self._key_owner.get(public_key(checked_vkey(key)))
            except ValueError:
                return None
        return key if key in self._subjects else None

    def subject_view(self, key: int | str) -> SubjectView | None:
        """A snapshot of the subject named by ``key`` (see :meth:`subject_id_of`), or ``None``."""
        subject_id = self.subject_id_of(key)
        return None if subject_id is None else self.view_of(self._subjects[subject_id])

    def view_of(self, subject: SubjectRecord) -> SubjectView:
        """A snapshot of ``subject``, one of this state's :attr:`subjects`."""
        return SubjectView(
            subject_id=subject.subject_id,
            name=subject.name,
            current_vkey=subject.current_vkey,
            vkeys=tuple(subject.vkeys),
            standing=subject.standing,
            binding_offer_version=self._offers[subject.binding_offer_index].version,
            binding_offer_index=subject.binding_offer_index,
            open_application=subject.open_application,
            applications=tuple(subject.applications),
            active_pauses=tuple(subject.active_pauses),
            active_restrictions=tuple(
                (index, restriction)
                for index in subject.active_restrictions
                for restriction in self.restrictions_of(index)
            ),
            terminated_by=tuple(subject.terminated_by),
            goals_modified_by=tuple(subject.goals_modified_by),
            timeline=tuple(
                TimelineEvent(i, log_time_ms, entry_type, detail)
                for i, detail, log_time_ms, entry_type in self.timeline_facts(subject.timeline)
            ),
        )

    def restrictions_of(self, index: int) -> tuple[Restriction, ...]:
        """The restrictions imposed by entry ``index``, a grant decision or a restrict action."""
        action = self._enforcement.get(index)
        return action.restrictions if action is not None else self._decisions[index].restrictions
