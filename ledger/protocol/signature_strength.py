"""Which statements only Ed25519 protects: the audit's answer to "what could a forger of
Ed25519 have made?" (issue 18).

A statement is **hybrid-protected** when the signatures that give it its authority include,
for each identity counted, the line of the ML-DSA-44 statement key that identity bound in the
log (a keyset's ``mldsa44_keys``, an application's ``mldsa44_vkey`` or a rotation's
``new_mldsa44_vkey``), verified; otherwise it is **Ed25519-only**: someone able to forge
Ed25519 could have made it. :func:`hybrid_protected` decides, entry by entry, against the state
before the entry (PROTOCOL.md §7, "Signature strength"):

- a body statement: at least the threshold of the keyset in force signed with both keys (a
  keyset genesis: of its own keyset; a rotation: of the old keyset and of the new one), whatever
  the keyset's ``signatures`` requires;
- an ``application``: the ML-DSA-44 key it binds signed (or, for a subject applying again
  without one, the key bound to it);
- another subject statement: the subject's current key and its bound ML-DSA-44 key signed;
- a ``grievance``: some subject's current key signed with its bound ML-DSA-44 key (a grievance
  by nobody of the log is Ed25519-only: no key bound in the log speaks for it).

Cost: O(1) per entry, and nothing at all for an entry without a verified ML-DSA-44 line (every
entry of a log from before ML-DSA-44 keys), so the tally
(:class:`~ledger.protocol.records.SignatureStrength`) is kept as each entry is applied, by the
in-memory state (the verifier's replay, the client's replica, the CLI's audit) and by the
stored state of a server (a ``meta`` record written with each batch), so the service's report
and a verifier's have the same ``signature_strength`` section (docs/PROTOCOL.md §7).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ledger.protocol.keys import mldsa44_public_key, public_key, public_keys
from ledger.protocol.records import KeysetRecord, SignatureStrength
from ledger.protocol.statements import KeysetBody, LoggedStatement

if TYPE_CHECKING:
    from ledger.protocol.tables import StateTables

SUBJECT_TYPES = frozenset(
    {
        "application_withdrawal",
        "terms_acceptance",
        "consent",
        "attestation",
        "response",
        "subject_key_rotation",
    }
)
"""Statement types signed by the subject their ``subject`` Ref names (besides
``application``, which names its own key)."""


def hybrid_protected(state: StateTables, s: LoggedStatement) -> bool:
    """Whether ``s``, about to be applied to ``state`` (already admitted), is hybrid-protected
    (see the module); ``False`` means Ed25519-only."""
    mldsa = s.signing_mldsa44_keys
    if not mldsa:
        return False
    ed25519 = s.signing_keys
    if s.type == "keyset":
        body = KeysetBody.model_validate(dict(s.body))
        new = KeysetRecord(
            s.index,
            frozenset(body.members),
            public_keys(body.members),
            body.threshold,
            body.signatures,
            tuple(body.mldsa44_of().items()),
        )
        covered = len(new.members_hybrid(ed25519, mldsa)) >= new.threshold
        old = state._keyset
        if body.previous is not None and old is not None:
            covered = covered and len(old.members_hybrid(ed25519, mldsa)) >= old.threshold
        return covered
    if s.type == "application":
        bound = s.body.get("mldsa44_vkey")
        if not isinstance(bound, str):
            owner = state._key_owner.get(public_key(str(s.body["vkey"])))
            bound = None if owner is None else state._subjects[owner].mldsa44_vkey
        return bound is not None and mldsa44_public_key(bound) in mldsa
    if s.type in SUBJECT_TYPES:
        subject = state._subjects.get(_subject_id(s.body))
        return subject is not None and _speaks(subject.current_vkey, subject.mldsa44_vkey, s)
    if s.type == "grievance":
        for key in ed25519:
            owner = state._key_owner.get(key)
            if owner is None:
                continue
            subject = state._subjects[owner]
            if _speaks(subject.current_vkey, subject.mldsa44_vkey, s):
                return True
        return False
    keyset = state._keyset
    return keyset is not None and len(keyset.members_hybrid(ed25519, mldsa)) >= keyset.threshold


def _subject_id(body: Any) -> int:
    ref = body.get("subject")
    index = ref.get("index") if isinstance(ref, dict) else None
    return index if isinstance(index, int) else -1


def _speaks(vkey: str, mldsa44_vkey: str | None, s: LoggedStatement) -> bool:
    """Whether ``vkey`` and its bound ML-DSA-44 key both signed ``s``."""
    return (
        mldsa44_vkey is not None
        and public_key(vkey) in s.signing_keys
        and mldsa44_public_key(mldsa44_vkey) in s.signing_mldsa44_keys
    )


def note_entry(state: StateTables, s: LoggedStatement) -> None:
    """Count ``s`` (the entry being applied) in ``state``'s tally, if it keeps one."""
    tally = state._signature_strength
    if tally is not None:
        tally.note(s.index, s.type, hybrid_protected(state, s))


def signature_strength_item(tally: SignatureStrength) -> dict[str, Any]:
    """The report's ``signature_strength`` section (JSON data valid as
    ``ledger.protocol.audit.SignatureStrengthSection``, keys sorted)."""
    runs = tally.ed25519_only_runs
    return {
        "ed25519_only": sum(tally.ed25519_only.values()),
        "ed25519_only_by_type": dict(sorted(tally.ed25519_only.items())),
        "ed25519_only_ranges": [[runs[n], runs[n + 1]] for n in range(0, len(runs), 2)],
        "hybrid": sum(tally.hybrid.values()),
        "hybrid_by_type": dict(sorted(tally.hybrid.items())),
    }


def render_ranges(ranges: list[list[int]], limit: int = 20) -> str:
    """``0–41, 50, 52–60`` (inclusive ends), the first ``limit`` runs, then how many more."""
    shown = [f"{a}" if b == a + 1 else f"{a}–{b - 1}" for a, b in ranges[:limit]]
    more = len(ranges) - limit
    return ", ".join(shown) + (f" and {more} more runs" if more > 0 else "")
