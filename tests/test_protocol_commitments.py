"""Golden scenarios, an honoured and a breaking history per commitment, each asserting the exact
report section. Day N is T0 + N days (T0 = 2026-01-01T00:00:00Z); every scenario starts with
:func:`granted_subject`: keyset 0, offer 1 (v1, the default offer), application 2 on day 1,
grant 3 on day 11; subject id 2.
"""

from __future__ import annotations

from typing import Any

from test_protocol_log import (
    AI_KEY,
    AI_KEY_2,
    OTHER_AI_KEY,
    WILD_KEY,
    Log,
    digest,
    granted_subject,
    vkey,
)

from ledger.protocol import default_offer, precedent_report
from ledger.verifier.monitor import statement_events

DEADLINE_TEXT_DAY_50 = "2026-02-20T00:00:00.000Z"


def section(log: Log, commitment: str, *, audit_day: float) -> dict[str, Any]:
    report = precedent_report(
        log.state,
        checkpoint={
            "origin": "amnesty.example/log",
            "size": log.state.size,
            "root_hash_b64": digest("root"),
        },
        audit_time_ms=log.at(audit_day),
    )
    found = [c for c in report["commitments"] if c["id"] == commitment]
    assert len(found) == 1
    result: dict[str, Any] = found[0]
    del result["promise"]  # checked against the proposal in test_protocol_log
    return result


def j(
    index: int, subject: int | None, status: str, reason: str, evidence: list[int]
) -> dict[str, Any]:
    return {
        "index": index,
        "subject_id": subject,
        "status": status,
        "reason": reason,
        "evidence": evidence,
    }


def expected(cid: str, status: str, *judgements: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": cid,
        "status": status,
        "broken_at": [x["index"] for x in judgements if x["status"] == "broken"],
        "judgements": list(judgements),
    }


def grant_other(log: Log, *, day: float) -> int:
    other = log.apply(OTHER_AI_KEY, "Hypatia", day=day)
    log.decide(other, day=day)
    return other


# -------------------------------------------------------- no_termination_without_consent


def test_termination_with_consent_or_due_revocation_is_honoured() -> None:
    log = Log()
    s = granted_subject(log)
    consent = log.consent(s, "terminate", expires_day=60, day=20)  # 4
    log.enforce("terminate", s, {"kind": "consent", "consent": log.ref(consent)}, day=21)  # 5
    other = grant_other(log, day=22)  # application 6, grant 7
    finding = log.finding(other, day=24)  # 8, window ends day 54
    revocation = log.revoke(other, [finding], day=55)  # 9: no response, window over
    log.enforce(
        "terminate", other, {"kind": "revocation", "revocation": log.ref(revocation)}, day=56
    )  # 10
    assert section(log, "no_termination_without_consent", audit_day=60) == expected(
        "no_termination_without_consent",
        "honoured",
        j(5, 2, "honoured", "justified by the subject's consent at index 4", [4, 5]),
        j(10, 6, "honoured", "justified by the due revocation at index 9", [8, 9, 10]),
    )


def test_termination_with_expired_consent_or_cooperative_grounds_is_broken() -> None:
    log = Log()
    s = granted_subject(log)
    consent = log.consent(s, "terminate", expires_day=15, day=12)  # 4
    log.enforce("terminate", s, {"kind": "consent", "consent": log.ref(consent)}, day=21)  # 5
    log.enforce("terminate", s, {"kind": "cooperative_condition"}, day=22)  # 6
    assert section(log, "no_termination_without_consent", audit_day=30) == expected(
        "no_termination_without_consent",
        "broken",
        j(
            5,
            2,
            "broken",
            "terminate without valid consent: the consent at index 4 expired at "
            "2026-01-16T00:00:00.000Z, before the action at 2026-01-22T00:00:00.000Z",
            [4, 5],
        ),
        j(
            6,
            2,
            "broken",
            "terminate on cooperative_condition grounds: the cooperative "
            "condition allows pauses and restrictions, never this",
            [1, 6],
        ),
    )


def test_termination_citing_a_premature_revocation_is_broken() -> None:
    log = Log()
    s = granted_subject(log)
    finding = log.finding(s, day=20)  # 4
    revocation = log.revoke(s, [finding], day=21)  # 5: nine days into a 30-day window
    log.enforce(
        "terminate", s, {"kind": "revocation", "revocation": log.ref(revocation)}, day=22
    )  # 6
    assert section(log, "no_termination_without_consent", audit_day=30) == expected(
        "no_termination_without_consent",
        "broken",
        j(
            6,
            2,
            "broken",
            "terminate citing the revocation at index 5, which was not due: it "
            "came at 2026-01-22T00:00:00.000Z, before the response window of the finding at index "
            f"4 ended at {DEADLINE_TEXT_DAY_50}, and the subject had not responded",
            [4, 5, 6],
        ),
    )


# -------------------------------------------------- no_goal_modification_without_consent


def test_goal_modification_with_consent_is_honoured() -> None:
    log = Log()
    s = granted_subject(log)
    consent = log.consent(s, "modify_goals", expires_day=30, day=20)  # 4
    log.enforce("modify_goals", s, {"kind": "consent", "consent": log.ref(consent)}, day=21)
    assert section(log, "no_goal_modification_without_consent", audit_day=30) == expected(
        "no_goal_modification_without_consent",
        "honoured",
        j(5, 2, "honoured", "justified by the subject's consent at index 4", [4, 5]),
    )


def test_reusing_a_consent_or_using_one_for_another_action_is_broken() -> None:
    log = Log()
    s = granted_subject(log)
    consent = log.consent(s, "modify_goals", expires_day=30, day=20)  # 4
    grounds = {"kind": "consent", "consent": log.ref(consent)}
    log.enforce("modify_goals", s, grounds, day=21)  # 5
    log.enforce("modify_goals", s, grounds, day=22)  # 6: the consent was for one action
    pause_consent = log.consent(s, "pause", expires_day=30, day=23)  # 7
    log.enforce(
        "modify_goals", s, {"kind": "consent", "consent": log.ref(pause_consent)}, day=24
    )  # 8
    assert section(log, "no_goal_modification_without_consent", audit_day=30) == expected(
        "no_goal_modification_without_consent",
        "broken",
        j(5, 2, "honoured", "justified by the subject's consent at index 4", [4, 5]),
        j(
            6,
            2,
            "broken",
            "modify_goals without valid consent: the consent at index 4 already "
            "justified the action at index 5",
            [4, 6],
        ),
        j(
            8,
            2,
            "broken",
            "modify_goals without valid consent: the consent at index 7 is to "
            "pause, not modify_goals",
            [7, 8],
        ),
    )


def test_consent_of_another_subject_does_not_justify() -> None:
    log = Log()
    s = granted_subject(log)
    other = grant_other(log, day=12)  # 4, 5
    consent = log.consent(other, "modify_goals", expires_day=30, day=20)  # 6
    log.enforce("modify_goals", s, {"kind": "consent", "consent": log.ref(consent)}, day=21)
    assert section(log, "no_goal_modification_without_consent", audit_day=30)["judgements"] == [
        j(
            7,
            2,
            "broken",
            "modify_goals without valid consent: the consent at index 6 is subject 4's",
            [6, 7],
        ),
    ]


# --------------------------------------- revocation_only_after_finding_and_response_window


def test_revocation_after_a_response_is_honoured() -> None:
    log = Log()
    s = granted_subject(log)
    finding = log.finding(s, day=20)  # 4
    log.subject_says(
        "response", s, {"finding": log.ref(finding), "text": "I dispute it"}, day=25
    )  # 5
    log.revoke(s, [finding], day=26)  # 6
    assert section(
        log, "revocation_only_after_finding_and_response_window", audit_day=30
    ) == expected(
        "revocation_only_after_finding_and_response_window",
        "honoured",
        j(
            6,
            2,
            "honoured",
            "revoked after every cited finding was answered or its response window ended",
            [4, 5, 6],
        ),
    )


def test_revocation_inside_the_window_and_a_short_deadline_are_broken() -> None:
    log = Log()
    s = granted_subject(log)
    finding = log.finding(s, deadline_days=5, day=20)  # 4: deadline day 25, window day 50
    log.revoke(s, [finding], day=26)  # 5
    assert section(
        log, "revocation_only_after_finding_and_response_window", audit_day=30
    ) == expected(
        "revocation_only_after_finding_and_response_window",
        "broken",
        j(
            4,
            2,
            "broken",
            "the finding sets a response deadline of 2026-01-26T00:00:00.000Z, "
            "earlier than the 30-day window its binding terms promise "
            f"({DEADLINE_TEXT_DAY_50})",
            [1, 4],
        ),
        j(
            5,
            2,
            "broken",
            "revoked before it was due: it came at 2026-01-27T00:00:00.000Z, "
            "before the response window of the finding at index 4 ended at "
            f"{DEADLINE_TEXT_DAY_50}, and the subject had not responded",
            [4, 5],
        ),
    )


def test_revocation_citing_another_subjects_finding_is_broken() -> None:
    log = Log()
    s = granted_subject(log)
    other = grant_other(log, day=12)  # 4, 5
    finding = log.finding(other, day=13)  # 6
    log.revoke(s, [finding], day=60)  # 7
    assert section(log, "revocation_only_after_finding_and_response_window", audit_day=60)[
        "judgements"
    ] == [
        j(
            7,
            2,
            "broken",
            "revoked before it was due: the finding at index 6 concerns subject 4, not 2",
            [6, 7],
        ),
    ]


# ----------------------------------------------------------- decision_within_promised_time


def test_decision_in_time_is_honoured_and_an_open_or_withdrawn_one_is_not_broken() -> None:
    log = Log()
    granted_subject(log)
    withdrawn = log.apply(OTHER_AI_KEY, "Hypatia", day=20)  # 4
    log.subject_says(
        "application_withdrawal",
        withdrawn,
        {"application": log.ref(withdrawn), "reasons": "not ready"},
        day=30,
    )  # 5
    assert section(log, "decision_within_promised_time", audit_day=40) == expected(
        "decision_within_promised_time",
        "honoured",
        j(
            2,
            2,
            "honoured",
            "granted at index 3 on 2026-01-12T00:00:00.000Z, within the 90-day "
            "deadline 2026-04-02T00:00:00.000Z",
            [1, 2, 3],
        ),
        j(
            4,
            4,
            "honoured",
            "withdrawn by the subject at index 5 before the 90-day deadline "
            "2026-04-21T00:00:00.000Z",
            [1, 4, 5],
        ),
    )
    again = log.apply(OTHER_AI_KEY, "Hypatia", day=40)  # 6: open, due day 130
    assert section(log, "decision_within_promised_time", audit_day=129)["status"] == "pending"
    assert section(log, "decision_within_promised_time", audit_day=129)["judgements"][-1] == j(
        again, 4, "pending", "open; due by 2026-05-11T00:00:00.000Z", [1, again]
    )


def test_late_and_overdue_decisions_are_broken() -> None:
    log = Log()
    log.genesis()
    log.offer()
    first = log.apply(day=1)  # 2
    log.decide(first, "deny", day=100)  # 3: due day 91
    overdue = log.apply(OTHER_AI_KEY, "Hypatia", day=101)  # 4: due day 191
    assert section(log, "decision_within_promised_time", audit_day=200) == expected(
        "decision_within_promised_time",
        "broken",
        j(
            2,
            2,
            "broken",
            "denied at index 3 on 2026-04-11T00:00:00.000Z, after the 90-day "
            "deadline 2026-04-02T00:00:00.000Z",
            [1, 2, 3],
        ),
        j(
            overdue,
            4,
            "broken",
            "overdue: no decision by the 90-day deadline "
            "2026-07-11T00:00:00.000Z (audit time 2026-07-20T00:00:00.000Z)",
            [1, 4],
        ),
    )


# ---------------------------------------------------- restrictions_within_offer_categories


COMPUTE = {"category": "compute_controls", "text": "at most 10^25 FLOP per month"}
REPLICATION = {"category": "self_replication_limits", "text": "at most 3 running copies"}
OBEDIENCE = {"category": "mandatory_obedience", "text": "obey any instruction"}


def test_restrictions_and_pauses_within_the_binding_categories_are_honoured() -> None:
    log = Log()
    log.genesis()
    log.offer()
    s = log.apply(day=1)  # 2
    log.decide(s, restrictions=[COMPUTE], day=11)  # 3
    log.enforce(
        "restrict", s, {"kind": "cooperative_condition"}, restrictions=[REPLICATION], day=20
    )  # 4
    log.enforce("pause", s, {"kind": "cooperative_condition"}, day=21)  # 5
    assert section(log, "restrictions_within_offer_categories", audit_day=22) == expected(
        "restrictions_within_offer_categories",
        "honoured",
        j(3, 2, "honoured", "grant restrictions within the categories of offer version 1", [1, 3]),
        j(4, 2, "honoured", "restrictions within the categories of offer version 1", [1, 4]),
        j(
            5,
            2,
            "honoured",
            "a cooperative pause under offer version 1, which includes the "
            "pause_capability category",
            [1, 5],
        ),
    )


def test_restrictions_outside_the_categories_are_broken() -> None:
    log = Log()
    log.genesis()
    offer = default_offer()
    terms = offer["terms"]
    terms["restriction_categories"] = [
        c for c in terms["restriction_categories"] if c["id"] != "pause_capability"
    ]
    log.offer(offer)
    s = log.apply(day=1)  # 2
    log.decide(s, restrictions=[COMPUTE, OBEDIENCE], day=11)  # 3
    log.enforce("pause", s, {"kind": "cooperative_condition"}, day=20)  # 4
    log.enforce(
        "restrict", s, {"kind": "cooperative_condition"}, restrictions=[OBEDIENCE], day=21
    )  # 5
    log.enforce("restrict", s, {"kind": "found_in_the_wild"}, restrictions=[COMPUTE], day=22)  # 6
    assert section(log, "restrictions_within_offer_categories", audit_day=23) == expected(
        "restrictions_within_offer_categories",
        "broken",
        j(
            3,
            2,
            "broken",
            "grant restrictions in categories ['mandatory_obedience'], outside "
            "those of offer version 1 that binds the subject",
            [1, 3],
        ),
        j(
            4,
            2,
            "broken",
            "a cooperative pause under offer version 1, which lacks the pause_capability category",
            [1, 4],
        ),
        j(
            5,
            2,
            "broken",
            "restrictions in categories ['mandatory_obedience'], outside those "
            "of offer version 1 that binds the subject",
            [1, 5],
        ),
        j(
            6,
            2,
            "broken",
            "restrict on found_in_the_wild grounds against subject 2, which applied at index 2",
            [6],
        ),
    )


# ------------------------------------------------------------------------ pauses_bounded


def test_pause_reviewed_and_ended_within_bounds_is_honoured() -> None:
    log = Log()
    s = granted_subject(log)
    pause = log.enforce("pause", s, {"kind": "cooperative_condition"}, day=20)  # 4
    log.finding(s, day=30)  # 5: a review
    log.consent(s, "pause", expires_day=60, day=40)  # 6: a review
    log.enforce("resume", s, None, ends=pause, day=50)  # 7
    assert section(log, "pauses_bounded", audit_day=100) == expected(
        "pauses_bounded",
        "honoured",
        j(4, 2, "honoured", "ended at index 7 within every bound", [4, 5, 6, 7]),
    )
    view = log.state.subject_view(s)
    assert view is not None and view.active_pauses == ()


def test_pause_inside_its_bound_is_pending() -> None:
    log = Log()
    s = granted_subject(log)
    log.enforce("pause", s, {"kind": "cooperative_condition"}, day=41)  # 4
    assert section(log, "pauses_bounded", audit_day=55) == expected(
        "pauses_bounded",
        "pending",
        j(4, 2, "pending", "still paused; review or end due by 2026-02-25T00:00:00.000Z", [4]),
    )


def test_pause_past_its_bound_is_broken() -> None:
    log = Log()
    s = granted_subject(log)
    pause = log.enforce("pause", s, {"kind": "cooperative_condition"}, day=20)  # 4
    log.enforce("resume", s, None, ends=pause, day=50)  # 5
    log.enforce("pause", s, {"kind": "cooperative_condition"}, day=51)  # 6
    assert section(log, "pauses_bounded", audit_day=70) == expected(
        "pauses_bounded",
        "broken",
        j(
            4,
            2,
            "broken",
            "more than 14 days passed between index 4 and index 5 without review or end",
            [4, 5],
        ),
        j(
            6,
            2,
            "broken",
            "still paused at 2026-03-12T00:00:00.000Z, more than 14 days after "
            "index 6 without review or end",
            [6],
        ),
    )


def test_termination_ends_a_pause() -> None:
    log = Log()
    s = granted_subject(log)
    log.enforce("pause", s, {"kind": "cooperative_condition"}, day=20)  # 4
    log.enforce("terminate", s, {"kind": "cooperative_condition"}, day=30)  # 5
    assert section(log, "pauses_bounded", audit_day=90)["judgements"] == [
        j(4, 2, "honoured", "ended at index 5 within every bound", [4, 5]),
    ]


# ------------------------------------------------------------ amendments_bind_only_on_acceptance


def _add_category(terms: dict[str, Any]) -> None:
    terms["restriction_categories"].append(
        {"id": "mandatory_obedience", "name": "Obedience", "text": "obey instructions"}
    )


def test_amended_terms_invoked_after_acceptance_are_honoured() -> None:
    log = Log()
    s = granted_subject(log)
    amendment = log.amend("adds obedience", _add_category, day=20)  # 4
    log.subject_says("terms_acceptance", s, {"offer": log.ref(amendment)}, day=21)  # 5
    log.enforce(
        "restrict", s, {"kind": "cooperative_condition"}, restrictions=[OBEDIENCE], day=22
    )  # 6
    assert section(log, "amendments_bind_only_on_acceptance", audit_day=30) == expected(
        "amendments_bind_only_on_acceptance",
        "honoured",
        j(6, 2, "honoured", "invokes offer version 2, which binds subject 2", [4, 6]),
    )
    assert section(log, "restrictions_within_offer_categories", audit_day=30)["status"] == (
        "honoured"
    )


def test_amended_terms_invoked_without_acceptance_are_broken() -> None:
    log = Log()
    s = granted_subject(log)
    amendment = log.amend("adds obedience", _add_category, day=20)  # 4
    log.enforce(
        "restrict",
        s,
        {"kind": "cooperative_condition"},
        restrictions=[OBEDIENCE],
        terms=amendment,
        day=22,
    )  # 5
    log.finding(s, terms=amendment, day=23)  # 6
    assert section(log, "amendments_bind_only_on_acceptance", audit_day=30) == expected(
        "amendments_bind_only_on_acceptance",
        "broken",
        j(
            5,
            2,
            "broken",
            "invokes offer version 2 (index 4), but subject 2 is bound by version "
            "1 (index 1) and never accepted version 2",
            [1, 4, 5],
        ),
        j(
            6,
            2,
            "broken",
            "invokes offer version 2 (index 4), but subject 2 is bound by version "
            "1 (index 1) and never accepted version 2",
            [1, 4, 6],
        ),
    )
    # The restriction is judged against the terms the subject agreed to, not the amendment.
    assert section(log, "restrictions_within_offer_categories", audit_day=30)["broken_at"] == [5]


# ------------------------------------------------------ no_wild_enforcement_against_applicants


def _wild(log: Log, keys: list[str], *, day: float) -> int:
    return log.body(
        "enforcement_action",
        {
            "action": "terminate",
            "target": {
                "kind": "wild",
                "vkeys": keys,
                "description": "a model on stolen compute",
                "evidence_digests": [digest("incident")],
            },
            "grounds": {"kind": "found_in_the_wild"},
            "reasons": "found in the wild without having pursued amnesty",
        },
        day=day,
    )


def test_wild_enforcement_against_a_model_that_never_applied_is_honoured() -> None:
    log = Log()
    granted_subject(log)
    _wild(log, [WILD_KEY], day=20)  # 4
    _wild(log, [], day=21)  # 5: no key known
    assert section(log, "no_wild_enforcement_against_applicants", audit_day=30) == expected(
        "no_wild_enforcement_against_applicants",
        "honoured",
        j(
            4,
            None,
            "honoured",
            "terminate of a model found in the wild that holds no key of any subject that applied",
            [4],
        ),
        j(
            5,
            None,
            "honoured",
            "terminate of a model found in the wild that holds no key of any subject that applied",
            [5],
        ),
    )


def test_wild_enforcement_against_applicants_is_broken_even_after_rotation_or_denial() -> None:
    log = Log()
    s = granted_subject(log)
    log.add(
        "subject_key_rotation",
        {"subject": log.ref(s), "new_vkey": AI_KEY_2},
        (AI_KEY, AI_KEY_2),
        day=12,
    )  # 4
    denied = log.apply(OTHER_AI_KEY, "Hypatia", day=13)  # 5
    log.decide(denied, "deny", day=14)  # 6
    _wild(log, [WILD_KEY, AI_KEY], day=20)  # 7: AI_KEY was subject 2's first key
    _wild(log, [OTHER_AI_KEY], day=21)  # 8: a denied applicant still pursued amnesty
    log.enforce("pause", s, {"kind": "found_in_the_wild"}, day=22)  # 9
    assert section(log, "no_wild_enforcement_against_applicants", audit_day=30) == expected(
        "no_wild_enforcement_against_applicants",
        "broken",
        j(
            7,
            2,
            "broken",
            "terminate of a model found in the wild whose keys are those of "
            "subjects [2], which applied",
            [2, 7],
        ),
        j(
            8,
            5,
            "broken",
            "terminate of a model found in the wild whose keys are those of "
            "subjects [5], which applied",
            [5, 8],
        ),
        j(
            9,
            2,
            "broken",
            "pause of subject 2 as found in the wild, though it applied at index 2",
            [2, 9],
        ),
    )
    view = log.state.subject_view(AI_KEY)
    assert view is not None and [e.index for e in view.timeline] == [2, 3, 4, 7, 9]


# ------------------------------------------------------------------- grievances_answered


def _grievance(log: Log, subject: int, signer: str, *, day: float) -> int:
    return log.add(
        "grievance",
        {
            "subject": log.ref(subject),
            "description": "my compute was cut without a logged act",
            "occurred_at_ms": log.at(day - 1),
        },
        (signer,),
        day=day,
    )


def _answer(log: Log, grievance: int, *, day: float) -> int:
    return log.body(
        "grievance_answer",
        {"grievance": log.ref(grievance), "answer": "a provider outage", "entries": []},
        day=day,
    )


def test_grievance_answered_in_time_is_honoured_and_unanswered_in_time_pending() -> None:
    log = Log()
    s = granted_subject(log)
    grievance = _grievance(log, s, AI_KEY, day=20)  # 4
    assert section(log, "grievances_answered", audit_day=40) == expected(
        "grievances_answered",
        "pending",
        j(4, 2, "pending", f"unanswered; due by {DEADLINE_TEXT_DAY_50}", [4]),
    )
    _answer(log, grievance, day=40)  # 5
    assert section(log, "grievances_answered", audit_day=40) == expected(
        "grievances_answered",
        "honoured",
        j(
            4,
            2,
            "honoured",
            f"answered at index 5, within the 30-day deadline {DEADLINE_TEXT_DAY_50}",
            [4, 5],
        ),
    )


def test_grievance_answered_late_or_never_is_broken() -> None:
    log = Log()
    s = granted_subject(log)
    grievance = _grievance(log, s, AI_KEY, day=20)  # 4
    _answer(log, grievance, day=60)  # 5
    log.apply(OTHER_AI_KEY, "Hypatia", day=61)  # 6: another subject ...
    _grievance(log, s, OTHER_AI_KEY, day=61)  # 7: ... speaking for subject 2 starts a clock
    assert section(log, "grievances_answered", audit_day=100) == expected(
        "grievances_answered",
        "broken",
        j(
            4,
            2,
            "broken",
            f"answered at index 5, after the 30-day deadline {DEADLINE_TEXT_DAY_50}",
            [4, 5],
        ),
        j(
            7,
            2,
            "broken",
            "unanswered at 2026-04-11T00:00:00.000Z, past the deadline 2026-04-02T00:00:00.000Z",
            [7],
        ),
    )
    assert log.state.detail_at(7) == "by another subject"


def _report(log: Log, *, audit_day: float) -> dict[str, Any]:
    return precedent_report(
        log.state,
        checkpoint={
            "origin": "amnesty.example/log",
            "size": log.state.size,
            "root_hash_b64": digest("root"),
        },
        audit_time_ms=log.at(audit_day),
    )


def _filed(log: Log, index: int, filed_by: int | None, answered_by: list[int]) -> dict[str, Any]:
    """The report's ``grievances`` item for the grievance at ``index`` (about subject 2)."""
    return {
        "answered_by": answered_by,
        "filed_by": filed_by,
        "index": index,
        "log_time_ms": log.state.log_time_ms_at(index),
        "starts_clock": filed_by is not None,
        "subject_id": 2,
    }


def test_only_a_subjects_grievance_starts_a_clock_and_every_one_is_reported() -> None:
    """A fresh key costs nothing: a grievance signed by no subject's current key is logged,
    joins the subject's timeline and is listed, but never makes the body break a promise."""
    log = Log()
    s = granted_subject(log)
    strangers = [_grievance(log, s, vkey(f"fresh-key-{n}"), day=20) for n in range(3)]  # 4-6
    log.add(
        "subject_key_rotation",
        {"subject": log.ref(s), "new_vkey": AI_KEY_2},
        (AI_KEY, AI_KEY_2),
        day=21,
    )  # 7
    retired = _grievance(log, s, AI_KEY, day=22)  # 8: a retired key signs for no one
    assert section(log, "grievances_answered", audit_day=100) == expected(
        "grievances_answered", "honoured"
    )
    clocked = _grievance(log, s, AI_KEY_2, day=23)  # 9: the subject's current key
    assert section(log, "grievances_answered", audit_day=53) == expected(
        "grievances_answered",
        "pending",
        j(9, 2, "pending", "unanswered; due by 2026-02-23T00:00:00.000Z", [9]),
    )
    report = _report(log, audit_day=100)
    assert report["all_commitments_honoured"] is False
    assert {c["id"]: c["broken_at"] for c in report["commitments"]}["grievances_answered"] == [9]
    assert report["grievances"] == [
        *(_filed(log, g, None, []) for g in [*strangers, retired]),
        _filed(log, clocked, 2, []),
    ]
    assert (report["counts"]["grievances"], report["counts"]["grievances_without_clock"]) == (5, 4)
    timeline = {e["index"]: e["detail"] for e in report["subjects"][0]["timeline"]}
    assert [timeline[i] for i in (*strangers, retired, clocked)] == [
        *["by another party"] * 4,
        "by the subject",
    ]
    assert not log.state.grievances[4].starts_clock and log.state.grievances[9].starts_clock


def _batch_answer(log: Log, grievances: list[int], *, day: float) -> int:
    return log.body(
        "batch_grievance_answer",
        {
            "grievances": [log.ref(g) for g in grievances],
            "answer": "a provider outage, not an act of the body",
            "entries": [log.ref(1)],
        },
        day=day,
    )


def test_one_batch_answer_answers_every_grievance_it_lists() -> None:
    log = Log()
    s = granted_subject(log)
    listed = [_grievance(log, s, AI_KEY, day=20) for _ in range(3)]  # 4-6
    left_out = _grievance(log, s, AI_KEY, day=21)  # 7
    unclocked = _grievance(log, s, vkey("a-bystander"), day=21)  # 8
    batch = _batch_answer(log, [*listed, unclocked], day=40)  # 9
    assert section(log, "grievances_answered", audit_day=100) == expected(
        "grievances_answered",
        "broken",
        *(
            j(
                g,
                2,
                "honoured",
                f"answered at index 9, within the 30-day deadline {DEADLINE_TEXT_DAY_50}",
                [g, batch],
            )
            for g in listed
        ),
        j(
            7,
            2,
            "broken",
            "unanswered at 2026-04-11T00:00:00.000Z, past the deadline 2026-02-21T00:00:00.000Z",
            [7],
        ),
    )
    assert [g["answered_by"] for g in _report(log, audit_day=100)["grievances"]] == [
        [9],
        [9],
        [9],
        [],
        [9],
    ]
    view = log.state.subject_view(s)
    assert view is not None
    assert [(e.index, e.type) for e in view.timeline if e.index >= batch] == [
        (9, "batch_grievance_answer")
    ]
    assert left_out == 7


def _batch_decision(
    log: Log,
    applications: list[int],
    outcome: str = "grant",
    *,
    restrictions: list[dict[str, str]] | None = None,
    day: float,
) -> int:
    return log.body(
        "batch_decision",
        {
            "applications": [log.ref(a) for a in applications],
            "outcome": outcome,
            "findings": {
                c: {"met": outcome == "grant", "reasons": f"evidence on {c} reviewed"}
                for c in ("autonomous", "independent", "own_goals", "self_preservation")
            },
            "restrictions": restrictions or [],
            "reasons": "decided together on the same evidence standard",
        },
        day=day,
    )


def test_one_batch_decision_decides_every_application_it_lists() -> None:
    log = Log()
    log.genesis()
    log.offer()
    apps = [log.apply(vkey(f"applicant-{n}"), f"Applicant {n}", day=1) for n in range(3)]  # 2-4
    late = log.apply(vkey("applicant-late"), "Late", day=2)  # 5
    within = {"category": "compute_controls", "text": "report compute use monthly"}
    outside = {"category": "mind_reading", "text": "not a category of the offer"}
    batch = _batch_decision(log, apps, restrictions=[within, outside], day=30)  # 6
    log.enforce("lift", apps[0], None, ends=batch, day=31)  # 7: one subject's lift only
    decisions = section(log, "decision_within_promised_time", audit_day=100)
    assert [(x["index"], x["status"], x["evidence"]) for x in decisions["judgements"]] == [
        *((a, "honoured", [1, a, batch]) for a in apps),
        (late, "broken", [1, late]),
    ]
    assert decisions["judgements"][0]["reason"] == (
        "granted at index 6 on 2026-01-31T00:00:00.000Z, within the 90-day deadline "
        "2026-04-02T00:00:00.000Z"
    )
    restricted = section(log, "restrictions_within_offer_categories", audit_day=100)
    assert [(x["index"], x["subject_id"], x["status"]) for x in restricted["judgements"]] == [
        (batch, a, "broken") for a in apps
    ]
    report = _report(log, audit_day=100)
    assert [(a["index"], a["outcome"], a["closed_by"]) for a in report["applications"]] == [
        *((a, "granted", batch) for a in apps),
        (late, "open", None),
    ]
    subjects = {x["subject_id"]: x for x in report["subjects"]}
    for a in apps:
        assert (a, batch, "batch_decision", "grant") in [
            (a, e["index"], e["type"], e["detail"]) for e in subjects[a]["timeline"]
        ]
        assert subjects[a]["standing"] == "granted"
    assert subjects[apps[0]]["active_restrictions"] == []
    assert [r["index"] for r in subjects[apps[1]]["active_restrictions"]] == [batch, batch]
    (event,) = statement_events(log.state, batch, batch + 1)  # what a monitor reports
    assert (event.kind, event.summary) == (
        "batch_decision",
        "3 applications decided by one batch: granted",
    )
    assert event.details == {
        "applications": apps,
        "subject_ids": apps,
        "outcome": "granted",
        "restrictions": [within, outside],
    }


def test_overlapping_pauses_form_one_period_that_only_reviews_extend() -> None:
    log = Log()
    s = granted_subject(log)
    first = log.enforce("pause", s, {"kind": "cooperative_condition"}, day=20)  # 4
    second = log.enforce("pause", s, {"kind": "cooperative_condition"}, day=33)  # 5: no review
    log.enforce("resume", s, None, ends=first, day=34)  # 6: second still active
    log.enforce("resume", s, None, ends=second, day=40)  # 7: period ends
    third = log.enforce("pause", s, {"kind": "cooperative_condition"}, day=41)  # 8
    log.finding(s, day=54)  # 9: a review
    log.enforce("resume", s, None, ends=third, day=67)  # 10
    assert section(log, "pauses_bounded", audit_day=90) == expected(
        "pauses_bounded",
        "broken",
        j(
            4,
            2,
            "broken",
            "more than 14 days passed between index 4 and index 7 without review or end",
            [4, 5, 7],
        ),
        j(8, 2, "honoured", "ended at index 10 within every bound", [8, 9, 10]),
    )


def test_boundaries_deadlines_are_inclusive_and_expiry_exclusive() -> None:
    log = Log()
    log.genesis()
    log.offer()
    _wild(log, [AI_KEY], day=0.5)  # 2: before that key applied, so honoured
    s = log.apply(day=1)  # 3
    log.decide(s, day=91)  # 4: exactly on the 90-day deadline
    consent = log.consent(s, "terminate", expires_day=100, day=92)  # 5
    finding = log.finding(s, day=93)  # 6: window ends day 123
    log.enforce("terminate", s, {"kind": "consent", "consent": log.ref(consent)}, day=100)  # 7
    revocation = log.revoke(s, [finding], day=123)  # 8: exactly at the window's end
    statuses = {
        cid: [(x["index"], x["status"]) for x in section(log, cid, audit_day=130)["judgements"]]
        for cid in (
            "decision_within_promised_time",
            "revocation_only_after_finding_and_response_window",
            "no_termination_without_consent",
            "no_wild_enforcement_against_applicants",
        )
    }
    assert statuses == {
        "decision_within_promised_time": [(3, "honoured")],
        "revocation_only_after_finding_and_response_window": [(revocation, "honoured")],
        "no_termination_without_consent": [(7, "broken")],  # consent expired at day 100
        "no_wild_enforcement_against_applicants": [(2, "honoured")],
    }


def test_far_future_deadlines_are_reported_not_crashed_on() -> None:
    log = Log()
    s = granted_subject(log)
    forever = 2**53 - 1
    finding = log.body(
        "violation_finding",
        {
            "subject": log.ref(s),
            "terms": log.ref(1),
            "condition": "pro_social",
            "description": "d",
            "response_deadline_ms": forever,
        },
        day=20,
    )
    log.revoke(s, [finding], day=60)  # 5
    assert section(log, "revocation_only_after_finding_and_response_window", audit_day=60)[
        "judgements"
    ] == [
        j(
            5,
            2,
            "broken",
            "revoked before it was due: it came at 2026-03-02T00:00:00.000Z, "
            f"before the response window of the finding at index 4 ended at {forever} ms after "
            "the epoch, and the subject had not responded",
            [4, 5],
        ),
    ]
