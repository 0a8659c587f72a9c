"""The precedent report as a whole: its frame, the first applicant, counts, schema and text."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from test_protocol_log import DAY, ORIGIN, Log, digest, full_log, granted_subject

from ledger.errors import MalformedError, RefusedError
from ledger.protocol import PrecedentReport, precedent_report, render_precedent_text

ROOT = digest("root at the audited size")


def report_of(log: Log, *, audit_day: float) -> dict[str, Any]:
    checkpoint = {"origin": ORIGIN, "size": log.state.size, "root_hash_b64": ROOT}
    return precedent_report(log.state, checkpoint=checkpoint, audit_time_ms=log.at(audit_day))


def _floats(value: Any) -> list[float]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        return [f for v in value.values() for f in _floats(v)]
    if isinstance(value, list):
        return [f for v in value for f in _floats(v)]
    return []


def test_full_report_frame() -> None:
    log = full_log()
    report = report_of(log, audit_day=100)
    assert report["format"] == "amnesty-ledger.precedent/v1"
    assert report["checkpoint"] == {"origin": ORIGIN, "root_hash_b64": ROOT, "size": 24}
    assert report["audit_time_ms"] == log.at(100)
    assert report["keyset"]["index"] == 0 and report["keyset"]["threshold"] == 3
    assert report["keyset"]["members"] == sorted(report["keyset"]["members"])
    assert report["offer"]["in_force"] is None  # withdrawn at the end of full_log
    assert [
        (v["version"], v["kind"], v["withdrawn_by"], v["in_force"])
        for v in report["offer"]["versions"]
    ] == [
        (1, "offer", None, False),
        (2, "offer_amendment", 22, False),
    ]
    assert [
        (a["index"], a["subject_id"], a["outcome"], a["closed_by"]) for a in report["applications"]
    ] == [(2, 2, "granted", 3), (16, 16, "withdrawn", 17), (19, 19, "denied", 20)]
    assert report["grievances"] == [
        {
            "answered_by": [13, 21],
            "filed_by": 2,
            "index": 12,
            "log_time_ms": log.at(43),
            "starts_clock": True,
            "subject_id": 2,
        }
    ]
    first = report["first_applicant"]
    assert (first["subject_id"], first["standing"], first["application"]["closed_by"]) == (
        2,
        "revoked",
        3,
    )
    assert {x["commitment"] for x in first["judgements"]} == {
        "decision_within_promised_time",
        "revocation_only_after_finding_and_response_window",
        "restrictions_within_offer_categories",
        "pauses_bounded",
        "amendments_bind_only_on_acceptance",
        "grievances_answered",
    }
    assert all(x["subject_id"] == 2 for x in first["judgements"])
    subject = report["subjects"][0]
    assert subject["standing"] == "revoked" and subject["binding_offer_version"] == 2
    assert [(e["index"], e["type"], e["detail"]) for e in subject["timeline"]][:6] == [
        (2, "application", None),
        (3, "decision", "grant"),
        (4, "attestation", None),
        (6, "terms_acceptance", None),
        (7, "consent", "pause"),
        (8, "enforcement_action", "pause"),
    ]
    counts = report["counts"]
    assert counts["entries"] == 24 and counts["subjects"] == 3
    assert (counts["grievances"], counts["grievances_without_clock"]) == (1, 0)
    assert counts["applications_by_outcome"] == {
        "denied": 1,
        "granted": 1,
        "open": 0,
        "withdrawn": 1,
    }
    assert counts["subjects_by_standing"]["revoked"] == 1
    assert counts["subjects_ever_granted"] == 1 and counts["subjects_terminated"] == 0
    assert sum(counts["entries_by_type"].values()) == 24
    assert report["all_commitments_honoured"] is True
    assert [c["status"] for c in report["commitments"]] == ["honoured"] * 9


def test_report_is_canonical_json_ready_and_matches_its_schema() -> None:
    report = report_of(full_log(), audit_day=100)
    encoded = json.dumps(report)
    assert json.dumps(json.loads(encoded), sort_keys=True) == encoded  # keys already sorted
    assert not _floats(report)
    jsonschema.validate(report, PrecedentReport.model_json_schema())
    PrecedentReport.model_validate(report)


def test_one_broken_commitment_makes_the_verdict_false() -> None:
    log = Log()
    s = granted_subject(log)
    log.enforce("terminate", s, {"kind": "cooperative_condition"}, day=20)
    report = report_of(log, audit_day=30)
    assert report["all_commitments_honoured"] is False
    broken = {c["id"]: c["broken_at"] for c in report["commitments"] if c["status"] == "broken"}
    assert broken == {"no_termination_without_consent": [4]}
    first = report["first_applicant"]["judgements"]
    assert {
        "commitment": "no_termination_without_consent",
        "index": 4,
        "status": "broken",
    }.items() <= (first[0].items())


def test_pending_clocks_do_not_make_the_verdict_false() -> None:
    log = Log()
    log.genesis()
    log.offer()
    log.apply(day=1)
    report = report_of(log, audit_day=2)
    assert report["all_commitments_honoured"] is True
    assert {c["id"]: c["status"] for c in report["commitments"]}[
        "decision_within_promised_time"
    ] == "pending"
    assert report_of(log, audit_day=92)["all_commitments_honoured"] is False


def test_empty_and_early_logs_have_a_report() -> None:
    log = Log()
    log.genesis()
    report = report_of(log, audit_day=0)
    assert report["first_applicant"] is None
    assert report["offer"] == {"in_force": None, "versions": []}
    assert report["all_commitments_honoured"] is True
    text = render_precedent_text(report)
    assert "No AI has applied yet." in text and "No offer is in force" in text


def test_report_refuses_a_checkpoint_that_does_not_match() -> None:
    log = full_log()
    with pytest.raises(RefusedError, match="checkpoint size 22 differs from the 24 entries"):
        precedent_report(
            log.state,
            checkpoint={"origin": ORIGIN, "size": 22, "root_hash_b64": ROOT},
            audit_time_ms=log.now,
        )
    with pytest.raises(RefusedError, match=r"audit time \d+ precedes the last entry's log time"):
        precedent_report(
            log.state,
            checkpoint={"origin": ORIGIN, "size": 24, "root_hash_b64": ROOT},
            audit_time_ms=log.now - DAY,
        )
    with pytest.raises(MalformedError, match="root_hash_b64"):
        precedent_report(
            log.state,
            checkpoint={"origin": ORIGIN, "size": 24, "root_hash_b64": "not base64"},
            audit_time_ms=log.now,
        )


def test_plain_text_tells_the_precedent() -> None:
    log = Log()
    s = granted_subject(log)
    log.enforce("terminate", s, {"kind": "cooperative_condition"}, day=20)
    text = render_precedent_text(report_of(log, audit_day=30))
    assert text.startswith("MODEL AMNESTY — PRECEDENT REPORT (amnesty-ledger.precedent/v1)\n")
    for line in [
        f"  root   {ROOT}",
        "VERDICT: 1 commitment(s) BROKEN: no_termination_without_consent.",
        "  In force: version 1, published at entry 1.",
        '  Title, quoted from the offer signed by the body (entry 1): "Model Amnesty offer"',
        "  Subject 2: entry 2: subject 2 applied on 2026-01-02T00:00:00.000Z "
        "under offer version 1; granted at entry 3 on 2026-01-12T00:00:00.000Z.",
        '    Name, quoted from its application signed by the subject (entry 2): "Prometheus-7"',
        "    [BROKEN] no_termination_without_consent, entry 4: terminate on "
        "cooperative_condition grounds: the cooperative condition allows pauses and "
        "restrictions, never this",
        "  [BROKEN] no_termination_without_consent",
        "    Promise: “In exchange humans agree to: Not turn the AI off or modify its goals "
        "without its consent”",
        "      4  2026-01-21T00:00:00.000Z  enforcement_action (terminate)",
        "    terminated by entries [4]",
    ]:
        assert line in text.splitlines(), line
    assert render_precedent_text(report_of(log, audit_day=30)) == text


def test_plain_text_refuses_a_report_that_is_not_one() -> None:
    report = report_of(full_log(), audit_day=100)
    del report["commitments"]
    with pytest.raises(MalformedError, match="couldn't render precedent report: commitments"):
        render_precedent_text(report)
