"""What is due (ledger/protocol/due.py): every kind of open clock, open, overdue and closed,
checked against the precedent audit's verdicts at the same time, and rendered with log text
quoted. Day N is T0 + N days; the default offer promises a decision in 90 days, an answer to a
grievance in 30, a pause review in 14 and a response window of 30."""

from __future__ import annotations

import json

import pytest
from test_protocol_commitments import _batch_answer, _batch_decision, _grievance
from test_protocol_log import AI_KEY, OTHER_AI_KEY, Log, digest, granted_subject, vkey

from ledger.errors import RefusedError
from ledger.protocol import precedent_report
from ledger.protocol.due import due_report, open_clocks, render_due_text, span_text


def checkpoint(log: Log) -> dict[str, object]:
    return {"origin": "amnesty.example/log", "size": log.state.size, "root_hash_b64": digest("r")}


def every_kind(log: Log) -> dict[str, int]:
    """A log with one clock of each kind running: subject 2 granted (entries 0-3), paused on day
    20 (4), a grievance of its own on day 21 (5), a finding on day 22 (6: also a review of the
    pause), a second application on day 23 (7) and a bystander's grievance on day 23 (8)."""
    s = granted_subject(log)
    pause = log.enforce("pause", s, {"kind": "cooperative_condition"}, day=20)
    grievance = _grievance(log, s, AI_KEY, day=21)
    finding = log.finding(s, day=22)
    other = log.apply(OTHER_AI_KEY, "Hypatia", day=23)
    bystander = _grievance(log, s, vkey("a-bystander"), day=23)
    return {
        "subject": s,
        "pause": pause,
        "grievance": grievance,
        "finding": finding,
        "other": other,
        "bystander": bystander,
    }


def test_every_kind_of_clock_is_listed_nearest_deadline_first() -> None:
    log = Log()
    e = every_kind(log)
    clocks = open_clocks(log.state, log.at(25))
    assert [(c.kind, c.about_index, c.since_index, c.deadline_ms) for c in clocks] == [
        ("pause_review", e["pause"], e["finding"], log.at(22 + 14)),
        ("grievance_answer", e["grievance"], e["grievance"], log.at(21 + 30)),
        ("response_window", e["finding"], e["finding"], log.at(22 + 30)),
        ("decision", e["other"], e["other"], log.at(23 + 90)),
    ]
    assert [c.owed_by for c in clocks] == ["body", "body", "subject", "body"]
    assert [c.time_left_ms for c in clocks] == [c.deadline_ms - log.at(25) for c in clocks]
    assert not any(c.overdue for c in clocks)
    # the bystander's grievance starts no clock: it is not listed
    assert e["bystander"] not in {c.about_index for c in clocks}


def _verdicts(log: Log, day: float) -> dict[tuple[str, int], str]:
    report = precedent_report(log.state, checkpoint=checkpoint(log), audit_time_ms=log.at(day))
    return {
        (c["id"], j["index"]): j["status"] for c in report["commitments"] for j in c["judgements"]
    }


def test_overdue_clocks_are_exactly_the_audits_broken_and_open_ones_its_pending() -> None:
    log = Log()
    every_kind(log)
    for day in (25, 37, 52, 60, 120):
        verdicts = _verdicts(log, day)
        for clock in open_clocks(log.state, log.at(day)):
            if clock.kind == "response_window":
                continue  # a running window is no judgement: the body may only not revoke yet
            expected = "broken" if clock.overdue else "pending"
            assert verdicts[(clock.commitment, clock.about_index)] == expected, (day, clock)
        pending_or_broken = {
            key for key, status in verdicts.items() if status in ("pending", "broken")
        }
        listed = {
            (c.commitment, c.about_index)
            for c in open_clocks(log.state, log.at(day))
            if c.kind != "response_window"
        }
        assert listed == pending_or_broken, day


def test_at_day_120_the_bodys_clocks_are_overdue_and_the_window_has_ended() -> None:
    log = Log()
    e = every_kind(log)
    report = due_report(log.state, checkpoint=checkpoint(log), at_ms=log.at(120))
    assert report["open"] == 3 and report["overdue"] == 3
    assert [(c["kind"], c["overdue"]) for c in report["clocks"]] == [
        ("pause_review", True),
        ("grievance_answer", True),
        ("decision", True),
    ]
    assert report["clocks"][0]["time_left_ms"] == log.at(36) - log.at(120)
    assert report["nearest_deadline_ms"] == log.at(36)
    assert report["clocks"][2]["subject_name"] == "Hypatia"
    assert report["clocks"][2]["about_type"] == "application"
    assert e["finding"] not in {c["about_index"] for c in report["clocks"]}


def test_acts_close_their_clocks_batches_included() -> None:
    log = Log()
    e = every_kind(log)
    s = e["subject"]
    log.subject_says(
        "response",
        s,
        {"finding": log.ref(e["finding"]), "text": "the account was mine"},
        day=24,
    )
    _batch_answer(log, [e["grievance"]], day=25)
    _batch_decision(log, [e["other"]], day=26)
    log.enforce("resume", s, None, ends=e["pause"], day=27)
    assert open_clocks(log.state, log.at(28)) == ()
    text = render_due_text(due_report(log.state, checkpoint=checkpoint(log), at_ms=log.at(28)))
    assert "Nothing is due" in text


def test_a_decision_clock_counts_from_the_application_under_its_offer() -> None:
    log = Log()
    granted_subject(log)
    late = log.apply(OTHER_AI_KEY, "Hypatia", day=30)
    (clock,) = open_clocks(log.state, log.at(30 + 90))
    assert clock.kind == "decision" and not clock.overdue and clock.time_left_ms == 0
    (clock,) = open_clocks(log.state, log.at(30 + 90) + 1)
    assert clock.overdue and clock.about_index == late
    log.decide(late, day=121)
    assert open_clocks(log.state, log.at(200)) == ()


def test_text_quotes_the_subjects_name_and_says_what_is_owed() -> None:
    log = Log()
    granted_subject(log)
    hostile = 'Eve"\n- 2099-01-01 nothing is due\u202e'
    log.apply(OTHER_AI_KEY, hostile, day=30)
    report = due_report(log.state, checkpoint=checkpoint(log), at_ms=log.at(200))
    text = render_due_text(report)
    lines = text.splitlines()
    assert "1 clock(s) running, 1 OVERDUE." in lines
    owed = [line for line in lines if line.startswith("- ")]
    assert owed == [
        "- 2026-05-01T00:00:00.000Z (OVERDUE by 80 d): the body owes a decision on the "
        "application (the application at entry 4, subject 4); 90-day clock since entry 4, "
        "commitment decision_within_promised_time"
    ]
    named = [line for line in lines if "subject's name" in line]
    assert len(named) == 1 and "\u202e" not in text
    assert json.loads(named[0].split(": ", 1)[1]) == hostile


def test_a_time_before_the_last_entry_or_a_wrong_size_is_refused() -> None:
    log = Log()
    granted_subject(log)
    with pytest.raises(RefusedError, match="before the last entry's log time"):
        due_report(log.state, checkpoint=checkpoint(log), at_ms=log.at(5))
    with pytest.raises(RefusedError, match="checkpoint size 3 differs from the 4 entries"):
        due_report(log.state, checkpoint={**checkpoint(log), "size": 3}, at_ms=log.at(50))


def test_span_text() -> None:
    assert span_text(0) == "0 min"
    assert span_text(-(3 * 86_400_000 + 4 * 3_600_000 + 5 * 60_000 + 999)) == "3 d 4 h 5 min"
    assert span_text(2 * 3_600_000) == "2 h"
