"""Issue 11, clocks only a real party can start, over HTTP: a flood of applications and of
grievances from fresh keys costs the body one batch statement, never a broken promise; each
trick against the batches is refused at submission with a 4xx naming the rule."""

from __future__ import annotations

import base64
import hashlib
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from api.app import create_app
from ledger.tlog.note import Signer
from tests.api_support import CRITERIA, TestLog, make_log, ref
from tests.support import signed_statement

DAY_MS = 86_400_000
FLOOD = 50


def _key(name: str) -> Signer:
    return Signer.from_seed(name, hashlib.sha256(name.encode()).digest())


def _submit(client: TestClient, note: bytes) -> dict[str, Any]:
    """Submit ``note``, which must be logged; return its reference."""
    response = client.post("/v1/statements", content=note)
    assert response.status_code == 201, response.text
    receipt = response.json()
    return ref(receipt["index"], base64.b64decode(receipt["entry_b64"]))


def _refused(client: TestClient, note: bytes, rule: str) -> None:
    """Submit ``note``, which must be refused with a problem document naming ``rule``."""
    before = client.get("/checkpoint").text
    response = client.post("/v1/statements", content=note)
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert rule in response.json()["detail"], response.json()["detail"]
    assert client.get("/checkpoint").text == before


def _grievance(subject: dict[str, Any], filer: Signer, what: str) -> bytes:
    body = {
        "subject": subject,
        "description": what,
        "occurred_at_ms": int(time.time() * 1000) - DAY_MS,
    }
    return signed_statement([filer], "grievance", body)


def _batch_decision(log: TestLog, applications: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "applications": applications,
        "outcome": "grant",
        "findings": {c: {"met": True, "reasons": "shown by the evidence"} for c in CRITERIA},
        "reasons": "every applicant in this batch meets every criterion",
    }


def test_a_flood_costs_the_body_one_batch_and_breaks_no_promise(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    with TestClient(create_app(log.settings())) as client:
        applicants = [_key(f"applicant-{n}.example") for n in range(FLOOD)]
        apps = [
            _submit(client, log.application(ai, f"Applicant {n}"))
            for n, ai in enumerate(applicants)
        ]
        # Fresh keys name the subjects in grievances: logged, but no clock for the body.
        stranger_grievances = [
            _submit(client, _grievance(apps[n], _key(f"stranger-{n}.example"), "I was cut off"))
            for n in range(FLOOD)
        ]
        own = _submit(client, _grievance(apps[0], applicants[0], "my compute was throttled"))

        # The body answers the whole flood with two statements.
        batch = _submit(client, log.by_body("batch_decision", _batch_decision(log, apps)))
        answer = {
            "grievances": [own, *stranger_grievances[:3]],
            "answer": "a provider outage, not an act of the body",
            "entries": [],
        }
        _submit(client, log.by_body("batch_grievance_answer", answer))

        # Each trick is refused with the rule it breaks, and logs nothing.
        _refused(
            client,
            log.by_body("batch_decision", _batch_decision(log, [apps[1]])),
            f"body.applications.0: application at index {apps[1]['index']} is not open: it was "
            f"granted at index {batch['index']}",
        )
        _refused(
            client,
            log.by_body("batch_decision", _batch_decision(log, [apps[2], apps[2]])),
            "applications cite the same entry more than once",
        )
        _refused(
            client,
            signed_statement(
                log.members[:2],
                "batch_grievance_answer",
                {**answer, "grievances": stranger_grievances[3:]},
                listed=log.members,
            ),
            "2 of 3 required distinct members",
        )
        _refused(
            client,
            log.by_body("batch_grievance_answer", {**answer, "grievances": apps[:1]}),
            "body.grievances.0 refers to index",
        )

        later = int(time.time() * 1000) + 100 * DAY_MS
        response = client.get("/v1/precedent", params={"audit_time_ms": later})
        assert response.status_code == 200, response.text
        report = response.json()["report"]
        assert report["all_commitments_honoured"] is True
        commitments = {c["id"]: c for c in report["commitments"]}
        decisions = commitments["decision_within_promised_time"]["judgements"]
        assert [(j["index"], j["status"]) for j in decisions] == [
            (a["index"], "honoured") for a in apps
        ]
        assert all(j["evidence"][-1] == batch["index"] for j in decisions)
        grievances = commitments["grievances_answered"]["judgements"]
        assert [(j["index"], j["status"]) for j in grievances] == [(own["index"], "honoured")]
        # The audit still reports every filing.
        filed = {g["index"]: g for g in report["grievances"]}
        assert sorted(filed) == sorted(g["index"] for g in [*stranger_grievances, own])
        assert [filed[g["index"]]["starts_clock"] for g in stranger_grievances] == [False] * FLOOD
        assert filed[own["index"]]["filed_by"] == apps[0]["index"]
        counts = report["counts"]
        assert (counts["grievances"], counts["grievances_without_clock"]) == (FLOOD + 1, FLOOD)
        assert counts["entries_by_type"]["batch_decision"] == 1
        assert counts["applications_by_outcome"]["granted"] == FLOOD

        # The batch is each listed subject's decision in the read API too.
        subject = apps[7]["index"]
        page = client.get("/v1/entries", params={"subject": str(subject)}).json()
        assert [e["statement"]["type"] for e in page["entries"]] == [
            "application",
            "grievance",
            "batch_decision",
        ]
        typed = client.get("/v1/entries", params={"type": "batch_decision"}).json()
        assert [e["index"] for e in typed["entries"]] == [batch["index"]]
        view = client.get(f"/v1/subjects/{subject}").json()["subject"]
        assert view["standing"] == "granted"
        assert view["applications"][0]["closed_by"] == batch["index"]
        assert [(e["type"], e["detail"]) for e in view["timeline"]] == [
            ("application", None),
            ("grievance", "by another party"),
            ("batch_decision", "grant"),
        ]
