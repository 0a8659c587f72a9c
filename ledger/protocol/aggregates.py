"""The precedent's aggregates: each commitment's rulings and the report's counts, kept with the
derived state so that the summary costs no scan of the log's records.

A :class:`~ledger.protocol.stored.StoredProtocolState` keeps, next to its tables, the rulings of
every commitment rule (:data:`~ledger.protocol.commitments.RULE_SOURCES`) on every record it
bears on, made by the rule's own per-record function and indexed so that a verdict at any audit
time is a few range reads:

- ``ruling``: rule, source table, record → the ruling in brief: ``[index, subject_id, status,
  due_ms]`` (``status`` null for a running clock, which is pending at audit times up to
  ``due_ms`` and broken after);
- ``broken``: rule, judgement index, source, record — the final rulings that are broken;
- ``clock``: rule, ``due_ms``, index, source, record — the running clocks, by deadline;
- ``by_subject``: subject, rule, index, source, record — every ruling naming a subject (the
  first applicant's treatment);
- ``facet``: source, record → what the report's counts count of an application, a subject or a
  grievance (:func:`facets_of`);
- the ``meta`` record ``tallies``: per rule the acts judged, honoured, broken and clocks, and
  the counts' totals (only non-zero values). Its presence says the aggregates are complete at
  that flush point;
- ``text_ruling``: rule, order (the judgement index for a rule of several tables, else 0),
  the source's position in the rule's sources, record → the final judgement's JSON text as the
  report writes it (:func:`~ledger.protocol.audit.judgement_text`), or ``true`` for a running
  clock: in key order, a rule's judgements in the report's order
  (:func:`~ledger.protocol.audit.rulings_of`), so that a full report copies them
  (:func:`kept_judgement_segments`). Kept only where the flush point keeps report text
  (:mod:`ledger.protocol.report_text`; a flush point of an older release has none, and
  :func:`~ledger.server.derived.complete_report_text` writes them with the rest of it).

**Upkeep** (:func:`settle`): before a flush writes a batch, every record of a source table the
batch created or changed is ruled on again (and every subject, application or grievance
faceted again), and the indexes and tallies move by the difference. A ruling depends only on
its record and on what cannot change later (log times, offer versions, the records its act
cited when it was logged), so a record the batch did not touch keeps its ruling (a subject's
facet reads its applications, but an entry that changes an application's outcome changes its
subject's standing too). ``tests/test_precedent_aggregates.py`` checks this against the full
computation after every entry of every golden scenario and after random batches. A state
pinned at a flush point without aggregates (written by an older release) builds them all in
its next flush, from a scan.

**Reading** (:func:`summary_from_aggregates`, built on :func:`commitment_tallies`,
:func:`first_applicant_rulings` and :func:`counts_from_tallies`): the verdict of a commitment at audit time ``t`` is the tallies,
its broken rows and the clocks with ``due_ms < t``; no record is decoded but the first
applicant's. :func:`expected_rows` computes every aggregate row from any state with the same
functions (``amnesty check-derived`` compares them with the stored ones).

Invariant: at every flush point with ``tallies``, the aggregate rows are exactly
:func:`expected_rows` of the protocol state there.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ledger.errors import MalformedError
from ledger.protocol.audit import (
    JUDGEMENT_RUN,
    JudgementSegment,
    first_applicant_from,
    judgement_text,
    summary_item,
)
from ledger.protocol.commitments import (
    COMMITMENT_RULES,
    PROMISES,
    RULE_SOURCES,
    SOURCE_TABLES,
    Judgement,
    Ruling,
    SourceTable,
    Status,
    source_records,
)
from ledger.protocol.records import ApplicationRecord, GrievanceRecord, SubjectRecord
from ledger.protocol.report_text import read_ranges

if TYPE_CHECKING:
    from ledger.protocol.state import ProtocolState
    from ledger.protocol.stored import StoredProtocolState, StoredTable

TEXT_RULING = "text_ruling"
AGGREGATE_KINDS: tuple[str, ...] = ("ruling", "broken", "clock", "by_subject", "facet", TEXT_RULING)
"""The derived state's kinds of aggregate rows, in the order they are checked and written."""
META_TALLIES = "tallies"
"""The ``meta`` record of the tallies; absent where the aggregates are not stored."""

RULE_CODES: Mapping[str, int] = {rule: code for code, rule in enumerate(COMMITMENT_RULES)}
"""Commitment id → the byte that starts its rows' keys (rules in report order)."""
SOURCE_CODES: Mapping[str, int] = {table: code for code, table in enumerate(SOURCE_TABLES)}
"""Source table → its byte in the rows' keys."""
SUBJECT_FACET = 0xFF
"""The facet rows' source byte for a subject (no rule rules on a subject record)."""
_DUE_BIAS = 1 << 63
"""Added to a (signed) deadline so that its 8 big-endian bytes sort as the deadlines do."""

_RULES_OF: Mapping[str, tuple[tuple[str, Any], ...]] = {
    table: tuple(
        (rule, rule_on)
        for rule, sources in RULE_SOURCES.items()
        for source, rule_on in sources
        if source == table
    )
    for table in SOURCE_TABLES
}
"""Source table → the rules that rule on its records, each with its per-record function."""


def _u64(value: int) -> bytes:
    return value.to_bytes(8, "big")


def _act(index: int, table: str, record: int) -> bytes:
    """An act's 17-byte identity, sorting as the rules order their judgements."""
    return _u64(index) + bytes((SOURCE_CODES[table],)) + _u64(record)


Brief = list[Any]
"""A ruling in brief, as stored: ``[index, subject_id, status or None, due_ms or None]``."""


def brief(ruling: Ruling) -> Brief:
    """``ruling`` as the ``ruling`` rows keep it."""
    if ruling.final is not None:
        return [ruling.index, ruling.subject_id, ruling.final.status, None]
    return [ruling.index, ruling.subject_id, None, ruling.due_ms]


def _index_rows(rule: str, table: str, record: int, b: Brief) -> list[tuple[str, bytes]]:
    """The index rows ``(kind, key)`` of one ruling in brief."""
    code = bytes((RULE_CODES[rule],))
    index, subject_id, status, due = b
    act = _act(index, table, record)
    rows = []
    if status == "broken":
        rows.append(("broken", code + act))
    elif status is None:
        rows.append(("clock", code + _u64(due + _DUE_BIAS) + act))
    if subject_id is not None:
        rows.append(("by_subject", _u64(subject_id) + code + act))
    return rows


def ruling_text_key(rule: str, table: str, record: int, index: int) -> bytes:
    """The key of a ruling's ``text_ruling`` row: sorts as :func:`~ledger.protocol.audit.
    rulings_of` orders the rule's judgements (by record for a rule of one table; by judgement
    index, then the source's position, then record for a rule of several)."""
    sources = RULE_SOURCES[rule]
    position = next(n for n, (source, _) in enumerate(sources) if source == table)
    order = index if len(sources) > 1 else 0
    return bytes((RULE_CODES[rule],)) + _u64(order) + bytes((position,)) + _u64(record)


def ruling_text(ruling: Ruling) -> str | bool:
    """A ruling's ``text_ruling`` value: its final judgement's text, or True for a clock."""
    return True if ruling.final is None else judgement_text(ruling.final)


def _tally_changes(rule: str, b: Brief) -> dict[str, int]:
    status = b[2]
    kind = "clocks" if status is None else status
    changes = {f"acts:{rule}": 1}
    if kind != "pending":
        changes[f"{kind}:{rule}"] = 1
    return changes


def facets_of(state: ProtocolState, table: str, record: Any) -> dict[str, int]:
    """What the report's counts (:func:`~ledger.protocol.audit.counts_item`) count of one
    record: an application's outcome; a subject's standing, whether it was terminated and
    whether any of its applications was granted; whether a grievance started no clock."""
    if table == "application":
        assert isinstance(record, ApplicationRecord)
        return {f"outcome:{record.outcome}": 1}
    if table == "grievance":
        assert isinstance(record, GrievanceRecord)
        return {"without_clock": 1} if not record.starts_clock else {}
    assert isinstance(record, SubjectRecord)
    facets = {f"standing:{record.standing}": 1}
    if record.terminated_by:
        facets["terminated"] = 1
    apps = state.applications
    if any(apps[i].outcome == "granted" for i in record.applications):
        facets["ever_granted"] = 1
    return facets


def _add(tallies: dict[str, int], changes: Mapping[str, int], sign: int) -> None:
    for name, value in changes.items():
        total = tallies.get(name, 0) + sign * value
        if total:
            tallies[name] = total
        else:
            tallies.pop(name, None)


# -- upkeep --------------------------------------------------------------------------------


class _Upkeep:
    """The aggregate tables of one writable stored state, and the moves that keep them."""

    def __init__(self, state: StoredProtocolState, tallies: dict[str, int]) -> None:
        self.state = state
        self.tallies = tallies
        self.tables: Mapping[str, StoredTable[bytes, Any]] = state.aggregate_tables
        # The judgements' text is kept where the flush point keeps report text (or at the
        # start of a log): elsewhere only some rulings would have it.
        self.keep_text = state.pinned == 0 or read_ranges(state.source, state.pinned) is not None

    def rule_again(self, table: SourceTable, record: Any) -> None:
        """Rule on ``record`` (of ``table``) with every rule that bears on its table."""
        key = record.index
        for rule, rule_on in _RULES_OF[table]:
            ruling = rule_on(self.state, record)
            old = self._put_ruling(rule, table, key, None if ruling is None else brief(ruling))
            if self.keep_text:
                self._put_text(rule, table, key, old, ruling)

    def _put_ruling(self, rule: str, table: str, record: int, new: Brief | None) -> Brief | None:
        """Keep ``new`` as the ruling of ``rule`` on ``record``; returns the one it replaced."""
        rulings = self.tables["ruling"]
        key = bytes((RULE_CODES[rule], SOURCE_CODES[table])) + _u64(record)
        old: Brief | None = rulings.get(key)
        if old == new:
            return old
        if old is not None:
            for kind, row in _index_rows(rule, table, record, old):
                del self.tables[kind][row]
            _add(self.tallies, _tally_changes(rule, old), -1)
        if new is None:
            del rulings[key]
            return old
        for kind, row in _index_rows(rule, table, record, new):
            self.tables[kind][row] = True
        _add(self.tallies, _tally_changes(rule, new), +1)
        rulings[key] = new
        return old

    def _put_text(
        self, rule: str, table: str, record: int, old: Brief | None, ruling: Ruling | None
    ) -> None:
        """Keep ``ruling``'s text (its key moves with its judgement index), replacing the text
        of the ruling ``old`` in brief; a flush writes only the rows whose bytes changed."""
        texts = self.tables[TEXT_RULING]
        new_key = None if ruling is None else ruling_text_key(rule, table, record, ruling.index)
        if old is not None:
            old_key = ruling_text_key(rule, table, record, old[0])
            if old_key != new_key and old_key in texts:
                del texts[old_key]
        if ruling is not None and new_key is not None:
            texts[new_key] = ruling_text(ruling)

    def facet_again(self, table: str, record: Any, key: int) -> None:
        """Count ``record`` (an application, grievance or subject: ``table``) again."""
        facets = self.tables["facet"]
        code = SUBJECT_FACET if table == "subject" else SOURCE_CODES[table]
        row = bytes((code,)) + _u64(key)
        new = facets_of(self.state, table, record)
        old: dict[str, int] | None = facets.get(row)
        if old == new:
            return
        if old is not None:
            _add(self.tallies, old, -1)
        _add(self.tallies, new, +1)
        facets[row] = new


_FACETED = ("application", "grievance")


def settle(state: StoredProtocolState, *, build: bool = True) -> None:
    """Bring ``state``'s aggregates up to date with its overlay (see the module): rule on and
    count again every record the overlay created or changed. Idempotent; a read-only state is
    left alone. On a state pinned where no aggregates are stored, builds them all (a scan) if
    ``build``, else does nothing (a reader: the summary is then computed by a scan)."""
    if not state.writable:
        return
    tallies: dict[str, int] | None = state.stored_tallies()
    if tallies is None:
        if state.pinned > 0 and not build:
            return
        tallies = {}
        state.set_tallies(tallies)
        if state.pinned > 0:
            _build(_Upkeep(state, tallies))
            return
    upkeep = _Upkeep(state, tallies)
    for table in SOURCE_TABLES:
        source = state.source_table(table)
        for key in source.changed_keys():
            record = source[key]
            upkeep.rule_again(table, record)
            if table in _FACETED:
                upkeep.facet_again(table, record, key)
    subjects = state.source_table("subject")
    for key in subjects.changed_keys():
        upkeep.facet_again("subject", subjects[key], key)


def _build(upkeep: _Upkeep) -> None:
    state = upkeep.state
    for table in SOURCE_TABLES:
        for record in source_records(state, table):
            upkeep.rule_again(table, record)
            if table in _FACETED:
                upkeep.facet_again(table, record, record.index)
    for subject_id, subject in state.subjects.items():
        upkeep.facet_again("subject", subject, subject_id)


# -- the full computation, for checks ----------------------------------------------------------


def expected_rows(
    state: ProtocolState, *, with_text: bool = True
) -> tuple[dict[str, dict[bytes, Any]], dict[str, int]]:
    """Every aggregate row of ``state`` (any protocol state: the in-memory one a verifier
    replays), computed from scratch with the same functions as :func:`settle`: kind → rows by
    key, and the tallies; the ``text_ruling`` rows only ``with_text``."""
    rows: dict[str, dict[bytes, Any]] = {kind: {} for kind in AGGREGATE_KINDS}
    tallies: dict[str, int] = {}
    for table in SOURCE_TABLES:
        for record in source_records(state, table):
            for rule, rule_on in _RULES_OF[table]:
                ruling = rule_on(state, record)
                if ruling is None:
                    continue
                b = brief(ruling)
                code = bytes((RULE_CODES[rule], SOURCE_CODES[table]))
                rows["ruling"][code + _u64(record.index)] = b
                if with_text:
                    key = ruling_text_key(rule, table, record.index, ruling.index)
                    rows[TEXT_RULING][key] = ruling_text(ruling)
                for kind, key in _index_rows(rule, table, record.index, b):
                    rows[kind][key] = True
                _add(tallies, _tally_changes(rule, b), +1)
            if table in _FACETED:
                facets = facets_of(state, table, record)
                code = bytes((SOURCE_CODES[table],))
                rows["facet"][code + _u64(record.index)] = facets
                _add(tallies, facets, +1)
    for subject_id, subject in state.subjects.items():
        facets = facets_of(state, "subject", subject)
        rows["facet"][bytes((SUBJECT_FACET,)) + _u64(subject_id)] = facets
        _add(tallies, facets, +1)
    return rows, tallies


# -- reading -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CommitmentTally:
    """One commitment's verdict at an audit time, from the aggregates: what the precedent
    summary says of it (the same as the full check's ``status``, ``broken_at`` and number of
    judgements)."""

    id: str
    promise: str
    status: Status
    broken_at: list[int]
    acts_judged: int


def ruling_text_rows(state: ProtocolState) -> Iterator[tuple[bytes, str | bool]]:
    """Every ``text_ruling`` row of ``state`` (key, value), from one pass of the rules over
    the records: what a flush point kept without them gets
    (:func:`~ledger.server.derived.complete_report_text`)."""
    for table in SOURCE_TABLES:
        for record in source_records(state, table):
            for rule, rule_on in _RULES_OF[table]:
                ruling = rule_on(state, record)
                if ruling is not None:
                    key = ruling_text_key(rule, table, record.index, ruling.index)
                    yield key, ruling_text(ruling)


def kept_judgement_segments(
    state: StoredProtocolState, rule: str
) -> Iterator[JudgementSegment] | None:
    """``rule``'s :func:`~ledger.protocol.audit.judgement_segments`, from its ``text_ruling``
    rows (the final judgements' text in runs, each clock named by its source and record), or
    None where the state keeps no judgement text (no aggregates, or no report text)."""
    if state.stored_tallies() is None or read_ranges(state.source, state.pinned) is None:
        return None
    return _kept_segments(state, rule)


def _kept_segments(state: StoredProtocolState, rule: str) -> Iterator[JudgementSegment]:
    sources = RULE_SOURCES[rule]
    prefix = bytes((RULE_CODES[rule],))
    end = _after_prefix(prefix)
    run: list[str] = []
    for key, value in state.aggregate_tables[TEXT_RULING].items_between(prefix, end):
        if type(value) is str:
            run.append(value)
            if len(run) >= JUDGEMENT_RUN:
                yield ", ".join(run)
                run = []
            continue
        if value is not True or len(key) != 18 or key[9] >= len(sources):
            raise MalformedError(f"couldn't read the judgement text of {rule}: key {key.hex()}")
        if run:
            yield ", ".join(run)
            run = []
        yield sources[key[9]][0], int.from_bytes(key[10:], "big")
    if run:
        yield ", ".join(run)


def has_aggregates(state: ProtocolState) -> bool:
    """Whether ``state`` is a stored state whose flush point holds the aggregates."""
    stored_tallies = getattr(state, "stored_tallies", None)
    return stored_tallies is not None and stored_tallies() is not None


def _tallies(state: StoredProtocolState) -> dict[str, int]:
    tallies = state.stored_tallies()
    if tallies is None:
        raise ValueError("couldn't read the precedent's aggregates: none are stored here")
    return tallies


def _prefixed(
    table: StoredTable[bytes, Any], prefix: bytes, before: bytes | None = None
) -> Iterator[bytes]:
    end = before if before is not None else _after_prefix(prefix)
    return table.keys_between(prefix, end) if end is not None else iter(())


def _after_prefix(prefix: bytes) -> bytes | None:
    """The smallest key above every key that starts with ``prefix`` (None: no such key)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes((stripped[-1] + 1,))


def acts_judged(state: StoredProtocolState, rule: str) -> int:
    """How many acts ``rule`` judges (its rulings on every table), from the tallies."""
    return _tallies(state).get(f"acts:{rule}", 0)


def ruled_record_keys(state: StoredProtocolState, rule: str, table: str) -> Iterator[int]:
    """The keys of the records of ``table`` that ``rule`` rules on (its ``ruling`` rows), in
    key order: one range read."""
    prefix = bytes((RULE_CODES[rule], SOURCE_CODES[table]))
    for key in _prefixed(state.aggregate_tables["ruling"], prefix):
        yield int.from_bytes(key[2:], "big")


def commitment_tallies(state: StoredProtocolState, audit_time_ms: int) -> list[CommitmentTally]:
    """Every commitment's verdict at ``audit_time_ms``, in report order, from the aggregates
    (:class:`ValueError` where none are stored: :func:`has_aggregates`). Reads the tallies,
    the broken rows and the clocks past due; O(broken acts + running clocks past due)."""
    tallies = _tallies(state)
    tables = state.aggregate_tables
    found = []
    for rule, code in RULE_CODES.items():
        prefix = bytes((code,))
        clocks = tallies.get(f"clocks:{rule}", 0)
        # Only the rows the tallies say exist are read: most commitments have none.
        broken = (
            [key[1:] for key in _prefixed(tables["broken"], prefix)]
            if tallies.get(f"broken:{rule}", 0)
            else []
        )
        # A clock is broken at audit time t once its deadline is before t.
        due_before = prefix + _u64(audit_time_ms + _DUE_BIAS)
        overdue = (
            [key[9:] for key in _prefixed(tables["clock"], prefix, due_before)] if clocks else []
        )
        acts = sorted(broken + overdue)
        status: Status
        if acts:
            status = "broken"
        elif clocks > len(overdue):
            status = "pending"
        else:
            status = "honoured"
        found.append(
            CommitmentTally(
                rule,
                PROMISES[rule],
                status,
                [int.from_bytes(act[:8], "big") for act in acts],
                tallies.get(f"acts:{rule}", 0),
            )
        )
    return found


def first_applicant_rulings(
    state: StoredProtocolState, subject_id: int, audit_time_ms: int
) -> Iterable[tuple[str, Judgement]]:
    """Every judgement naming subject ``subject_id``, as ``(commitment, judgement)`` in report
    order (rule by rule, each in its judgements' order): the rulings indexed under the subject,
    each made again by its rule's per-record function and judged at ``audit_time_ms``."""
    names = {code: rule for rule, code in RULE_CODES.items()}
    tables: dict[int, SourceTable] = {SOURCE_CODES[t]: t for t in SOURCE_TABLES}
    rules_on = {
        (rule, table): rule_on
        for rule, sources in RULE_SOURCES.items()
        for table, rule_on in sources
    }
    for key in _prefixed(state.aggregate_tables["by_subject"], _u64(subject_id)):
        rule = names[key[8]]
        table = tables[key[17]]
        record = state.source_table(table)[int.from_bytes(key[18:26], "big")]
        ruling = rules_on[(rule, table)](state, record)
        assert ruling is not None
        yield rule, ruling.at(audit_time_ms)


def counts_from_tallies(state: StoredProtocolState) -> dict[str, Any]:
    """The report's ``counts`` (as :func:`~ledger.protocol.audit.counts_item` computes them
    from a scan) from the tallies and the tables' record counts."""
    tallies = _tallies(state)
    counts = state.counts
    outcomes = ("denied", "granted", "open", "withdrawn")
    standings = ("applicant", "denied", "granted", "revoked", "withdrawn")
    return {
        "applications": counts.get("application", 0),
        "applications_by_outcome": {o: tallies.get(f"outcome:{o}", 0) for o in outcomes},
        "entries": state.size,
        "entries_by_type": state.type_counts(),
        "grievances": counts.get("grievance", 0),
        "grievances_without_clock": tallies.get("without_clock", 0),
        "subjects": counts.get("subject", 0),
        "subjects_by_standing": {s: tallies.get(f"standing:{s}", 0) for s in standings},
        "subjects_ever_granted": tallies.get("ever_granted", 0),
        "subjects_terminated": tallies.get("terminated", 0),
    }


def summary_from_aggregates(state: StoredProtocolState, audit_time_ms: int) -> dict[str, Any]:
    """The precedent summary judged at ``audit_time_ms`` — the same data as
    :func:`ledger.client.views.precedent_summary` computes with every rule over every record
    (the service's ``PrecedentSummary`` without its ``checkpoint``) — from the aggregates:
    the tallies, the broken and overdue acts, the first applicant's rulings made again, and
    the counts. ``state`` must hold aggregates (:func:`has_aggregates`)."""
    return summary_item(
        audit_time_ms,
        (
            (t.id, t.promise, t.status, t.broken_at, t.acts_judged)
            for t in commitment_tallies(state, audit_time_ms)
        ),
        first_applicant_from(
            state, lambda subject_id: first_applicant_rulings(state, subject_id, audit_time_ms)
        ),
        counts_from_tallies(state),
    )
