"""A dry run of one statement against a log: would it be admitted, and what would it break?

The body signs k-of-n, offline, and the log is append-only: a statement that breaks a commitment
— a decision past its deadline, a restriction outside the offer's categories, a revocation
before the response window ended — is admitted (the log must record what the body did) and
stays broken in the precedent forever. :func:`preview_statement` says so *before* anyone signs
(an unsigned or partly signed statement may be previewed: it is judged as if its listed
signers had all signed) or before it is sent:

1. the note parses (header, canonical JSON, signature lines);
2. it names this log's origin;
3. its body is valid for its type and version;
4. the signature lines present verify (none present: judged as if every listed signer signed);
5. the protocol admits it as the next entry (authority, references, transitions:
   :meth:`~ledger.protocol.state.ProtocolState.admit`);

and, when admitted, every commitment judged by the audit's rules
(:func:`~ledger.protocol.commitments.check_commitments`) at the same time before and after it,
naming the commitments it would newly break.

Contract: pure; the given state is never changed (the statements are applied to a copy). The
copy and the two runs of the commitment rules cost O(state) once per batch (about 0.3 s at
20,000 entries), however many statements it holds: a dry run is a deliberate act, not a hot
path.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger.errors import LedgerError
from ledger.protocol.commitments import CommitmentCheck, Status, check_commitments
from ledger.protocol.state import ProtocolState
from ledger.protocol.statements import parse_body
from ledger.protocol.stored import StoredProtocolState
from ledger.statements.entry import LogEntry
from ledger.statements.logged import statement_at
from ledger.statements.statement import (
    SignedStatement,
    Statement,
    parse_statement,
    parse_unsigned_statement,
    verified_signers,
)

ADMISSION_STEPS: tuple[str, ...] = (
    "the note parses (header, canonical JSON, signature lines)",
    "it names this log's origin",
    "its body is valid for its type and version",
    "the signature lines present verify",
    "the protocol admits it as the next entry (authority, references, transitions)",
)
"""The numbered admission steps a preview reports, in order (1-based in the output)."""


@dataclass(frozen=True, slots=True)
class AdmissionStep:
    """One numbered step: ``passed`` is ``None`` when an earlier step failed (not checked)."""

    number: int
    rule: str
    passed: bool | None
    detail: str


@dataclass(frozen=True, slots=True)
class CommitmentEffect:
    """A commitment's status before and after the statement; ``newly_broken`` the entries
    judged broken after it but not before (the statement itself, or an act it makes late)."""

    id: str
    before: Status
    after: Status
    newly_broken: tuple[int, ...]
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Preview:
    """The dry run's result (see the module). ``index`` and ``log_time_ms`` are where and when
    the statement was judged to land; ``commitments`` is empty unless it was admitted."""

    index: int
    log_time_ms: int
    statement_type: str | None
    signed: bool
    steps: tuple[AdmissionStep, ...]
    commitments: tuple[CommitmentEffect, ...]
    state_after: ProtocolState | None = field(default=None, repr=False, compare=False)
    """The state with the statement (for :func:`preview_batch`: the whole batch) applied;
    ``None`` unless it was admitted."""

    @property
    def admitted(self) -> bool:
        """Whether every admission step passed."""
        return all(step.passed for step in self.steps)

    @property
    def breaks(self) -> tuple[str, ...]:
        """The ids of the commitments the statement would newly break."""
        return tuple(c.id for c in self.commitments if c.newly_broken)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data (the shape of ``amnesty statement check --json``)."""
        return {
            "index": self.index,
            "log_time_ms": self.log_time_ms,
            "type": self.statement_type,
            "signed": self.signed,
            "admitted": self.admitted,
            "admission": [
                {"number": s.number, "rule": s.rule, "passed": s.passed, "detail": s.detail}
                for s in self.steps
            ],
            "commitments": [
                {
                    "id": c.id,
                    "before": c.before,
                    "after": c.after,
                    "newly_broken": list(c.newly_broken),
                    "reasons": list(c.reasons),
                }
                for c in self.commitments
            ],
            "breaks": list(self.breaks),
        }


def _broken(check: CommitmentCheck) -> dict[int, str]:
    return {j.index: j.reason for j in check.judgements if j.status == "broken"}


def preview_statement(
    state: ProtocolState,
    data: bytes,
    *,
    origin: str,
    prev_root: bytes,
    log_time_ms: int,
    audit_time_ms: int | None = None,
) -> Preview:
    """Preview ``data`` (a statement note, signed or not) as the next entry of the log whose
    replayed protocol is ``state`` and whose root of all entries is ``prev_root``, logged at
    ``log_time_ms`` and judged at ``audit_time_ms`` (default: ``log_time_ms``), which must not
    precede the last entry's log time. Never raises for a bad statement: a failing step says
    why."""
    (preview,) = preview_batch(
        state,
        [data],
        origin=origin,
        prev_root=prev_root,
        log_time_ms=log_time_ms,
        audit_time_ms=audit_time_ms,
    )
    return preview


def preview_batch(
    state: ProtocolState,
    datas: Sequence[bytes],
    *,
    origin: str,
    prev_root: bytes,
    log_time_ms: int,
    audit_time_ms: int | None = None,
) -> list[Preview]:
    """Preview ``datas`` as the next entries, in order (see :func:`preview_statement`): each
    one admitted is applied before the next is judged; one refused is skipped, as the
    sequencer would skip it.

    One copy of the state and two runs of the commitment rules, before and after the whole
    batch, whatever its length: a judgement newly broken is charged to the statement whose
    entry it judges, or — when it judges an earlier entry (an act that makes an old clock
    run out differently) — to the batch's first admitted statement. Every preview's
    ``commitments`` show each commitment before and after the batch, and ``state_after`` is
    the state after the whole batch.
    """
    audit = log_time_ms if audit_time_ms is None else audit_time_ms
    after = _copy(state) if datas else state
    previews: list[tuple[int, str | None, bool, tuple[AdmissionStep, ...], bool]] = []
    for data in datas:
        index = after.size
        results, statement_type, signed = _admit(after, data, origin, prev_root, log_time_ms)
        steps = tuple(
            AdmissionStep(
                n + 1,
                rule,
                results[n][0] if n < len(results) else None,
                results[n][1] if n < len(results) else "not checked: an earlier step failed",
            )
            for n, rule in enumerate(ADMISSION_STEPS)
        )
        previews.append((index, statement_type, signed, steps, all(ok for ok, _ in results)))
    admitted = [index for index, _, _, _, ok in previews if ok]
    charged: dict[int, dict[str, dict[int, str]]] = {i: {} for i in admitted}
    statuses: list[tuple[str, Status, Status]] = []
    if admitted:
        before_checks = check_commitments(state, audit_time_ms=audit)
        after_checks = check_commitments(after, audit_time_ms=audit)
        for was, now in zip(before_checks, after_checks, strict=True):
            statuses.append((now.id, was.status, now.status))
            old, new = _broken(was), _broken(now)
            for judged in sorted(set(new) - set(old)):
                to = judged if judged in charged else admitted[0]
                charged[to].setdefault(now.id, {})[judged] = new[judged]
    out = []
    for index, statement_type, signed, steps, ok in previews:
        effects: tuple[CommitmentEffect, ...] = ()
        if ok:
            mine = charged[index]
            effects = tuple(
                CommitmentEffect(
                    cid,
                    before,
                    now_status,
                    tuple(sorted(mine.get(cid, {}))),
                    tuple(mine.get(cid, {})[i] for i in sorted(mine.get(cid, {}))),
                )
                for cid, before, now_status in statuses
            )
        out.append(
            Preview(
                index,
                log_time_ms,
                statement_type,
                signed,
                steps,
                effects,
                after if ok else None,
            )
        )
    return out


def _copy(state: ProtocolState) -> ProtocolState:
    """A state equal to ``state`` sharing nothing mutable with it: a stored state forks
    (O(its overlay): its tables are in the database), an in-memory one is copied (O(state))."""
    if isinstance(state, StoredProtocolState):
        return state.fork()
    return copy.deepcopy(state)


def _admit(
    state: ProtocolState, data: bytes, origin: str, prev_root: bytes, log_time_ms: int
) -> tuple[list[tuple[bool, str]], str | None, bool]:
    """Run the admission steps of ``data`` as ``state``'s next entry and, if every one passes,
    apply it to ``state``. Returns each step's (passed, detail) up to the first failure, the
    statement's type (if it parsed) and whether it carried signature lines."""
    index = state.size
    results: list[tuple[bool, str]] = []
    statement: Statement | None = None
    signed: SignedStatement | None = None
    try:
        if b"\n\n" in data:
            signed = parse_statement(data)
            statement = signed.statement
        else:
            statement = parse_unsigned_statement(data)
        results.append((True, f"type {statement.type}, version {statement.v}"))
        if statement.origin != origin:
            raise LedgerError(f"it names origin {statement.origin!r}, not {origin!r}")
        results.append((True, origin))
        parse_body(statement.type, statement.v, statement.body, index=index)
        results.append((True, "valid"))
        if signed is not None and signed.note.signatures:
            verified = verified_signers(signed)
            listed = len(statement.signers)
            results.append((True, f"{len(verified)} of the {listed} listed signers signed"))
        else:
            verified = frozenset(statement.signers)
            results.append(
                (True, "no signature lines yet: judged as if every listed signer had signed")
            )
        # The leaf hash of the entry to be: only later statements' references read it.
        entry = LogEntry(index, log_time_ms, prev_root, statement.text)
        as_logged = statement_at(statement, verified, entry, entry.leaf_hash())
        state.admit(as_logged)  # changes nothing if it refuses
        state.apply(as_logged)
        results.append((True, f"admitted as entry {index}"))
    except LedgerError as exc:
        results.append((False, str(exc)))
    has_lines = signed is not None and bool(signed.note.signatures)
    return results, None if statement is None else statement.type, has_lines
