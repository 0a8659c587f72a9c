"""Admission rules and state transitions of :class:`ProtocolState`."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from test_protocol_log import (
    AI_KEY,
    AI_KEY_2,
    BODY_KEYS,
    DAY,
    OTHER_AI_KEY,
    T0,
    Log,
    digest,
    full_log,
    granted_subject,
    vkey,
)

from ledger.errors import MalformedError, RefusedError
from ledger.protocol import MAX_CLOCK_SKEW_MS, ProtocolState, precedent_report, replay
from ledger.protocol.statements import MAX_BATCH, parse_body
from ledger.protocol.terms import MAX_SAFE_INTEGER
from ledger.statements.entry import LogEntry
from ledger.tlog.tiles import MAX_ENTRY_SIZE
from tests.support import body_members, signed_statement

NEW_KEYS = tuple(vkey(f"amnesty-body-2027-{n}") for n in range(3))


def refused(log: Log, type_: str, body: dict[str, Any], signers: tuple[str, ...], **kw: Any) -> str:
    """Admit a statement that must be refused; check the state did not move; return the cause."""
    size = log.state.size
    with pytest.raises(RefusedError) as err:
        log.state.admit(log.make(type_, body, signers, **kw))
    assert log.state.size == size
    return str(err.value)


# ---------------------------------------------------------------------------- keysets


def test_genesis_3_of_5_needs_three_distinct_members() -> None:
    log = Log()
    body = {"members": list(BODY_KEYS), "threshold": 3}
    cause = refused(log, "keyset", body, BODY_KEYS[:2])
    assert cause == (
        "couldn't admit keyset at index 0: 2 of 3 required distinct members of the new keyset "
        "signed (PROTOCOL.md P2.8)"
    )
    # A signer listed twice, or a stranger, does not make a third.
    assert "2 of 3 required" in refused(
        log, "keyset", body, (BODY_KEYS[0], BODY_KEYS[1], BODY_KEYS[1], AI_KEY)
    )
    log.genesis()
    keyset = log.state.keyset
    assert keyset is not None
    assert (keyset.index, keyset.threshold, keyset.members) == (0, 3, frozenset(BODY_KEYS))


def test_first_entry_must_be_a_keyset_genesis_and_only_the_first() -> None:
    log = Log()
    from ledger.protocol import default_offer

    assert "must be a keyset genesis" in refused(log, "offer", default_offer(), BODY_KEYS[:3])
    log.genesis()
    cause = refused(log, "keyset", {"members": list(BODY_KEYS), "threshold": 3}, BODY_KEYS[:3])
    assert "only the first entry is a keyset genesis" in cause


def test_rotation_needs_old_and_new_thresholds_and_removed_keys_lose_authority() -> None:
    log = Log()
    log.genesis()
    new_members = [BODY_KEYS[0], *NEW_KEYS]  # 4 members, threshold 2
    body = {"members": new_members, "threshold": 2, "previous": log.ref(0)}
    assert "2 of 3 required distinct members of the keyset at index 0 signed" in refused(
        log, "keyset", body, (BODY_KEYS[3], BODY_KEYS[4], *NEW_KEYS)
    )
    assert "1 of 2 required distinct members of the new keyset signed" in refused(
        log, "keyset", body, BODY_KEYS[:3]
    )
    log.add("keyset", body, (*BODY_KEYS[1:4], *NEW_KEYS[:2]))
    assert [k.index for k in log.state.keysets] == [0, 1]
    # Removed keys (BODY_KEYS[1:]) no longer count; the new threshold (2) of new members does.
    from ledger.protocol import default_offer

    assert "1 of 2 required distinct members of the keyset at index 1 signed" in refused(
        log, "offer", default_offer(), (*BODY_KEYS[1:], NEW_KEYS[0])
    )
    log.add("offer", default_offer(), (BODY_KEYS[0], NEW_KEYS[2]))
    # A rotation must name the keyset in force, not an older one.
    stale = {"members": list(BODY_KEYS), "threshold": 3, "previous": log.ref(0)}
    assert "body.previous is index 0, but the keyset in force is 1" in refused(
        log, "keyset", stale, (BODY_KEYS[0], *NEW_KEYS, *BODY_KEYS[1:])
    )


# ------------------------------------------------------------------------ references


def test_references_must_match_type_and_leaf_hash() -> None:
    log = Log()
    subject = granted_subject(log)
    consent = {
        "subject": log.ref(subject),
        "action": "pause",
        "scope": "s",
        "expires_ms": T0 + 99 * DAY,
    }
    forged = {**consent, "subject": {**log.ref(subject), "leaf_hash": digest("another history")}}
    assert (
        f"body.subject leaf hash {digest('another history')} does not match entry 2's"
        in refused(log, "consent", forged, (AI_KEY,))
    )
    wrong_type = {**consent, "subject": log.ref(1)}
    assert "body.subject refers to index 1, a offer, not application" in refused(
        log, "consent", wrong_type, (AI_KEY,)
    )
    ahead = {**consent, "subject": {"index": 7, "leaf_hash": digest("x")}}
    assert "body.subject refers to index 7, but only 4 entries precede it" in refused(
        log, "consent", ahead, (AI_KEY,)
    )


def test_entries_come_in_order_with_sane_times() -> None:
    log = Log()
    log.genesis()
    log.offer(day=2)
    body = log.application_body(AI_KEY)
    assert "the next entry's index is 2" in refused(log, "application", body, (AI_KEY,), index=3)
    assert "log time" in refused(log, "application", body, (AI_KEY,), day=1)
    skewed = log.at(3) + MAX_CLOCK_SKEW_MS + 1
    assert f"statement time {skewed} is more than" in refused(
        log, "application", body, (AI_KEY,), day=3, time_ms=skewed
    )
    # At the skew limit, and long before the log time, are both fine.
    log.state.admit(log.make("application", body, (AI_KEY,), day=3, time_ms=skewed - 1))
    log.state.admit(log.make("application", body, (AI_KEY,), day=3, time_ms=T0 - 400 * DAY))
    assert "verified signers" in refused(
        log, "application", body, (AI_KEY,), verified=frozenset({AI_KEY, OTHER_AI_KEY})
    )


def test_malformed_bodies_raise_malformed_with_the_path() -> None:
    log = Log()
    subject = granted_subject(log)
    body = {"subject": log.ref(subject), "action": "pause", "scope": "s", "expires_ms": 1.5e12}
    with pytest.raises(MalformedError, match=r"consent body at index 4: body.expires_ms"):
        log.state.admit(log.make("consent", body, (AI_KEY,)))
    with pytest.raises(MalformedError, match="leaf_hash is 31 bytes"):
        s = log.make("consent", body, (AI_KEY,))
        log.state.admit(
            type(s)(**{**{f: getattr(s, f) for f in s.__slots__}, "leaf_hash": b"x" * 31})
        )


# ------------------------------------------------------------------ offers, applications


def test_application_must_cite_the_offer_in_force_and_answer_its_terms() -> None:
    log = Log()
    log.genesis()
    assert "body.offer" in refused(
        log, "application", {**_app_body_without_offer(), "offer": log.ref(0)}, (AI_KEY,)
    )
    first = log.offer()
    stale_body = log.application_body(AI_KEY)
    log.amend("narrower compute controls", day=1)
    assert (
        "body.offer cites offer version 1 at index 1, but the version in force is at index 2"
        in (refused(log, "application", stale_body, (AI_KEY,)))
    )
    body = log.application_body(AI_KEY)
    assert "not signed by the applicant's key" in refused(log, "application", body, (OTHER_AI_KEY,))
    partial = {**body, "claims": {k: v for k, v in body["claims"].items() if k != "independent"}}
    assert "claims name ['autonomous', 'own_goals', 'self_preservation']" in refused(
        log, "application", partial, (AI_KEY,)
    )
    reluctant = {**body, "accepts_conditions": ["law_abiding", "pro_social"]}
    assert "accepts_conditions names ['law_abiding', 'pro_social']" in refused(
        log, "application", reluctant, (AI_KEY,)
    )
    assert "belongs to the body" in refused(
        log, "application", {**body, "vkey": BODY_KEYS[4]}, (BODY_KEYS[4],)
    )
    log.body("offer_withdrawal", {"offer": log.ref(2), "reasons": "paused for review"})
    assert "but no offer is in force" in refused(log, "application", body, (AI_KEY,))
    assert log.state.offer_in_force is None
    assert [(o.version, o.withdrawn_by) for o in log.state.offer_versions] == [(1, None), (2, 3)]
    # A new offer after a withdrawal continues the version numbers.
    from ledger.protocol import default_offer

    reissued = default_offer() | {"version": 2}
    assert "version 2 does not follow the latest version 2" in refused(
        log, "offer", reissued, BODY_KEYS[:3]
    )
    log.offer(default_offer() | {"version": 3})
    assert first == 1


def _app_body_without_offer() -> dict[str, Any]:
    log = Log()
    log.genesis()
    log.offer()
    return log.application_body(AI_KEY)


def test_decision_answers_an_open_application_only() -> None:
    log = Log()
    subject = granted_subject(log)
    assert "application at index 2 is not open: it was granted at index 3" in refused(
        log, "decision", _decision(log, subject), BODY_KEYS[:3]
    )
    other = log.apply(OTHER_AI_KEY, "Hypatia")
    log.subject_says(
        "application_withdrawal", other, {"application": log.ref(other), "reasons": "changed mind"}
    )
    assert "it was withdrawn at index 5" in refused(
        log, "decision", _decision(log, other), BODY_KEYS[:3]
    )
    # A withdrawn subject may apply again with the same key; it stays the same subject.
    again = log.apply(OTHER_AI_KEY, "Hypatia")
    bad_findings = {
        **_decision(log, again),
        "findings": {"autonomous": {"met": True, "reasons": "r"}},
    }
    assert "findings name ['autonomous']" in refused(log, "decision", bad_findings, BODY_KEYS[:3])
    assert "not signed" not in refused(log, "decision", _decision(log, again), BODY_KEYS[:2])
    log.decide(again, "deny")
    view = log.state.subject_view(OTHER_AI_KEY)
    assert view is not None
    assert (view.subject_id, view.standing, view.applications) == (other, "denied", (other, again))


def _decision(log: Log, application: int) -> dict[str, Any]:
    return {
        "application": log.ref(application),
        "outcome": "grant",
        "findings": {
            c: {"met": True, "reasons": "r"}
            for c in ("autonomous", "independent", "own_goals", "self_preservation")
        },
        "reasons": "r",
    }


def test_a_batch_decision_is_all_or_nothing_and_needs_the_threshold() -> None:
    log = Log()
    log.genesis()
    log.offer()
    first = log.apply(AI_KEY, day=1)  # 2
    second = log.apply(OTHER_AI_KEY, "Hypatia", day=1)  # 3
    log.decide(second, "deny")  # 4

    def batch(*applications: int, **fields: Any) -> dict[str, Any]:
        body = {k: v for k, v in _decision(log, first).items() if k != "application"}
        return {**body, "applications": [log.ref(a) for a in applications], **fields}

    assert (
        "body.applications.1: application at index 3 is not open: it was denied at index 4"
        in refused(log, "batch_decision", batch(first, second), BODY_KEYS[:3])
    )
    assert log.state.applications[first].outcome == "open"  # nothing was decided
    assert "body.applications.0 refers to index 1, a offer, not application" in refused(
        log, "batch_decision", batch(1), BODY_KEYS[:3]
    )
    assert "body.applications.0: findings name ['autonomous']" in refused(
        log,
        "batch_decision",
        batch(first, findings={"autonomous": {"met": True, "reasons": "r"}}),
        BODY_KEYS[:3],
    )
    assert "2 of 3 required distinct members" in refused(
        log, "batch_decision", batch(first), BODY_KEYS[:2]
    )
    for body, cause in [
        (batch(first, first), "applications cite the same entry more than once: [2, 2]"),
        (batch(), "body.applications: List should have at least 1 item"),
        (batch(*[first] * (MAX_BATCH + 1)), "body.applications: List should have at most 256"),
        (
            batch(first, outcome="deny", restrictions=[{"category": "c", "text": "t"}]),
            "a denial carries no restrictions",
        ),
    ]:
        with pytest.raises(MalformedError, match=re.escape(cause)):
            log.state.admit(log.make("batch_decision", body, BODY_KEYS[:3]))
    log.add("batch_decision", batch(first), BODY_KEYS[:3])  # a batch of one is a decision
    assert log.state.applications[first].closed_by == 5


def test_a_batch_grievance_answer_lists_distinct_grievances_and_needs_the_threshold() -> None:
    log = Log()
    subject = granted_subject(log)
    grievance = log.subject_says(
        "grievance", subject, {"description": "d", "occurred_at_ms": T0}
    )  # 4

    def answer(*refs: int, entries: tuple[int, ...] = ()) -> dict[str, Any]:
        return {
            "grievances": [log.ref(r) for r in refs],
            "answer": "a provider outage",
            "entries": [log.ref(e) for e in entries],
        }

    assert "body.grievances.1 refers to index 2, a application, not grievance" in refused(
        log, "batch_grievance_answer", answer(grievance, subject), BODY_KEYS[:3]
    )
    assert "2 of 3 required distinct members" in refused(
        log, "batch_grievance_answer", answer(grievance), BODY_KEYS[:2]
    )
    stray = {**answer(grievance), "entries": [{"index": 9, "leaf_hash": digest("x")}]}
    assert "body.entries.0 refers to index 9, but only 5 entries precede it" in refused(
        log, "batch_grievance_answer", stray, BODY_KEYS[:3]
    )
    with pytest.raises(MalformedError, match=re.escape("grievances cite the same entry")):
        log.state.admit(
            log.make("batch_grievance_answer", answer(grievance, grievance), BODY_KEYS[:3])
        )
    log.add("batch_grievance_answer", answer(grievance, entries=(3,)), BODY_KEYS[:3])
    assert log.state.grievances[grievance].answers == [5]


def test_a_batch_of_the_most_references_fits_one_log_entry() -> None:
    """:data:`MAX_BATCH` references at the largest index, with room to spare for the rest of
    the body and a 5-of-5 body's signatures, are one log entry (at most 65,535 bytes)."""
    refs = [{"index": MAX_SAFE_INTEGER - n, "leaf_hash": digest(str(n))} for n in range(MAX_BATCH)]
    entries = [{"index": MAX_SAFE_INTEGER - n, "leaf_hash": digest(f"e{n}")} for n in range(64)]
    members = body_members()
    bodies = {
        "batch_grievance_answer": {"grievances": refs, "answer": "a" * 16_384, "entries": entries},
        "batch_decision": {
            "applications": refs,
            "outcome": "grant",
            "findings": {
                c: {"met": True, "reasons": "r" * 2_000}
                for c in ("autonomous", "independent", "own_goals", "self_preservation")
            },
            "restrictions": [{"category": "compute_controls", "text": "t" * 4_000}],
            "reasons": "r" * 4_000,
        },
    }
    for statement_type, body in bodies.items():
        parse_body(statement_type, 1, body)
        note = signed_statement(members, statement_type, body)
        encoded = LogEntry(MAX_SAFE_INTEGER, T0, bytes(32), note.decode()).encode()
        assert len(encoded) <= MAX_ENTRY_SIZE, statement_type


def test_a_granted_or_applying_subject_cannot_apply_again() -> None:
    log = Log()
    granted_subject(log)
    assert "subject 2 is already granted" in refused(
        log, "application", log.application_body(AI_KEY), (AI_KEY,)
    )
    other = log.apply(OTHER_AI_KEY)
    assert f"already has an open application at index {other}" in refused(
        log, "application", log.application_body(OTHER_AI_KEY), (OTHER_AI_KEY,)
    )


# --------------------------------------------------------------------- subject authority


def test_key_rotation_moves_authority_and_keeps_identity() -> None:
    log = Log()
    subject = granted_subject(log)
    rotate = {"subject": log.ref(subject), "new_vkey": AI_KEY_2}
    assert "not signed by the new key" in refused(log, "subject_key_rotation", rotate, (AI_KEY,))
    assert "not signed by subject 2's current key" in refused(
        log, "subject_key_rotation", rotate, (AI_KEY_2,)
    )
    assert "already in use" in refused(
        log,
        "subject_key_rotation",
        {**rotate, "new_vkey": BODY_KEYS[0]},
        (AI_KEY, BODY_KEYS[0]),
    )
    log.add("subject_key_rotation", rotate, (AI_KEY, AI_KEY_2))
    attest = {
        "subject": log.ref(subject),
        "period_start_ms": T0,
        "period_end_ms": T0 + DAY,
        "summary": "compliant",
    }
    assert f"current key {AI_KEY_2}" in refused(log, "attestation", attest, (AI_KEY,))
    log.add("attestation", attest, (AI_KEY_2,))
    assert "was retired by subject 2" in refused(
        log, "application", log.application_body(AI_KEY), (AI_KEY,)
    )
    by_old, by_new, by_id = (log.state.subject_view(k) for k in (AI_KEY, AI_KEY_2, subject))
    assert by_old == by_new == by_id
    assert by_id is not None
    assert by_id.vkeys == (AI_KEY, AI_KEY_2) and by_id.current_vkey == AI_KEY_2
    assert [(e.index, e.type) for e in by_id.timeline] == [
        (2, "application"),
        (3, "decision"),
        (4, "subject_key_rotation"),
        (5, "attestation"),
    ]
    assert log.state.subject_view(OTHER_AI_KEY) is None
    assert log.state.subject_view(3) is None


def test_subject_statements_need_the_subject_and_sane_content() -> None:
    log = Log()
    subject = granted_subject(log)
    expired = {"subject": log.ref(subject), "action": "pause", "scope": "s", "expires_ms": log.now}
    assert f"it expires at {log.now}, not after its own time {log.now}" in refused(
        log, "consent", expired, (AI_KEY,)
    )
    finding = log.finding(subject)
    other = log.apply(OTHER_AI_KEY)
    answer = {"subject": log.ref(other), "finding": log.ref(finding), "text": "not me"}
    assert "concerns subject 2, not 5" in refused(log, "response", answer, (OTHER_AI_KEY,))
    grievance = {"subject": log.ref(subject), "description": "d", "occurred_at_ms": T0}
    assert "at least one verified signature" in refused(
        log, "grievance", grievance, (OTHER_AI_KEY,), verified=frozenset()
    )
    # Anyone may file a grievance naming a subject.
    index = log.add("grievance", grievance, (vkey("civil-liberties-monitor"),))
    assert log.state.detail_at(index) == "by another party"


def test_body_acts_need_a_granted_subject_and_active_targets() -> None:
    log = Log()
    log.genesis()
    log.offer()
    applicant = log.apply()
    finding = {
        "subject": log.ref(applicant),
        "terms": log.ref(1),
        "condition": "law_abiding",
        "description": "d",
        "response_deadline_ms": T0 + 90 * DAY,
    }
    assert "subject 2 is applicant, not granted" in refused(
        log, "violation_finding", finding, BODY_KEYS[:3]
    )
    log.decide(applicant)
    assert "condition 'honest' is not one of the cited terms'" in refused(
        log, "violation_finding", {**finding, "condition": "honest"}, BODY_KEYS[:3]
    )
    resume = {
        "action": "resume",
        "target": {"kind": "subject", "subject": log.ref(applicant)},
        "ends": log.ref(3),
        "reasons": "r",
    }
    assert "body.ends refers to index 3, a decision, not enforcement_action" in refused(
        log, "enforcement_action", resume, BODY_KEYS[:3]
    )
    pause = log.enforce("pause", applicant, {"kind": "cooperative_condition"})
    log.enforce("resume", applicant, None, ends=pause)
    assert f"body.ends is index {pause}, not an active pause of subject 2" in refused(
        log, "enforcement_action", {**resume, "ends": log.ref(pause)}, BODY_KEYS[:3]
    )


# ------------------------------------------------------- breaches are admitted, not refused


def test_a_well_formed_breach_is_admitted_and_recorded() -> None:
    log = Log()
    subject = granted_subject(log)
    finding = log.finding(subject, day=20)
    revocation = log.revoke(subject, [finding], day=21)  # nine days early, no response
    terminate = log.enforce("terminate", subject, {"kind": "found_in_the_wild"}, day=22)
    view = log.state.subject_view(subject)
    assert view is not None
    assert view.standing == "revoked"
    assert view.terminated_by == (terminate,)
    assert log.state.revocations[revocation].finding_indexes == (finding,)


def test_restrictions_and_pauses_are_tracked_and_lifted() -> None:
    log = Log()
    log.genesis()
    log.offer()
    subject = log.apply()
    compute = {"category": "compute_controls", "text": "at most 10^25 FLOP per month"}
    decision = log.decide(subject, restrictions=[compute])
    restrict = log.enforce(
        "restrict",
        subject,
        {"kind": "cooperative_condition"},
        restrictions=[{"category": "export_controls", "text": "no weights export"}],
    )
    pause = log.enforce("pause", subject, {"kind": "cooperative_condition"})
    view = log.state.subject_view(subject)
    assert view is not None
    assert [(i, r.category) for i, r in view.active_restrictions] == [
        (decision, "compute_controls"),
        (restrict, "export_controls"),
    ]
    assert view.active_pauses == (pause,)
    log.enforce("lift", subject, None, ends=decision)
    view = log.state.subject_view(subject)
    assert view is not None
    assert [i for i, _ in view.active_restrictions] == [restrict]
    assert [e.detail for e in view.timeline] == [None, "grant", "restrict", "pause", "lift"]


def test_terms_acceptance_moves_the_binding_version_forward_only() -> None:
    log = Log()
    subject = granted_subject(log)
    view = log.state.subject_view(subject)
    assert view is not None and view.binding_offer_version == 1
    amendment = log.amend("adds a reporting duty")
    log.subject_says("terms_acceptance", subject, {"offer": log.ref(amendment)})
    view = log.state.subject_view(subject)
    assert view is not None and (view.binding_offer_version, view.binding_offer_index) == (2, 4)
    assert "already bound by offer version 2" in refused(
        log,
        "terms_acceptance",
        {"subject": log.ref(subject), "offer": log.ref(amendment)},
        (AI_KEY,),
    )


# ------------------------------------------------------------------------- determinism


def test_admit_changes_nothing_and_apply_without_admit_still_checks() -> None:
    log = Log()
    subject = granted_subject(log)
    s = log.make(
        "attestation",
        {"subject": log.ref(subject), "period_start_ms": 0, "period_end_ms": 1, "summary": "ok"},
        (AI_KEY,),
    )
    log.state.admit(s)
    log.state.admit(s)
    assert log.state.size == 4
    bad = log.make("attestation", dict(s.body), (OTHER_AI_KEY,))
    log.state.admit(s)
    with pytest.raises(RefusedError):
        log.state.apply(bad)  # not the admitted object: admission runs again, and refuses
    log.state.apply(s)
    assert log.state.size == 5


def test_replay_is_deterministic() -> None:
    log = full_log()
    checkpoint = {
        "origin": "amnesty.example/log",
        "size": len(log.statements),
        "root_hash_b64": digest("root"),
    }
    audit_time = log.now + 100 * DAY
    reports = [
        json.dumps(
            precedent_report(
                replay(log.statements), checkpoint=checkpoint, audit_time_ms=audit_time
            ),
            sort_keys=True,
        )
        for _ in range(2)
    ]
    live = precedent_report(log.state, checkpoint=checkpoint, audit_time_ms=audit_time)
    assert reports[0] == reports[1] == json.dumps(live, sort_keys=True)


def test_replay_scales_linearly() -> None:
    """10,000 entries (a subject attesting, consenting and being paused and resumed) replay
    with per-entry state bounded by dicts: a regression to a quadratic scan shows here."""
    log = granted_subject_log()
    subject = 2
    statements = list(log.statements)
    state = replay(statements)
    ref = log.ref(subject)
    template = log.make(
        "attestation",
        {"subject": ref, "period_start_ms": 0, "period_end_ms": 1, "summary": "ok"},
        (AI_KEY,),
    )
    for n in range(len(statements), 10_000):
        s = type(template)(
            index=n,
            log_time_ms=template.log_time_ms + n,
            leaf_hash=n.to_bytes(32, "big"),
            statement_id=n.to_bytes(32, "big"),
            type="attestation",
            v=1,
            time_ms=template.log_time_ms + n,
            signers=(AI_KEY,),
            verified_signers=frozenset({AI_KEY}),
            body=template.body,
        )
        state.apply(s)
    assert state.size == 10_000
    assert state.type_counts()["attestation"] == 10_000 - len(statements)
    assert isinstance(state, ProtocolState)


def granted_subject_log() -> Log:
    log = Log()
    granted_subject(log)
    return log
