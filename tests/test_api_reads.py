"""The read API: every answer names a tree head vouched for by a signed checkpoint, and every
entry it returns proves its inclusion in that head. Checked here with the core's verifiers only
(not the client library), so a bug in one cannot hide a bug in the other."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ledger.protocol.terms import default_offer
from ledger.server.admission import StatementPolicy
from ledger.server.sequencer import Sequencer
from ledger.statements.entry import LogEntry
from ledger.statements.statement import parse_statement, sign_statement
from ledger.storage.sql import SqlLogStore
from ledger.tlog.checkpoint import open_checkpoint
from ledger.tlog.merkle import leaf_hash, verify_consistency, verify_inclusion
from ledger.tlog.note import Signer
from ledger.tlog.tlogproof import open_tlog_proof, parse_tlog_proof
from tests.api_support import TestLog, claims, make_log
from tests.support import ORIGIN


@pytest.fixture
def log(tmp_path: Path) -> TestLog:
    """Genesis, offer v1, two applicants (the first granted), then an amendment (v2)."""
    log = make_log(tmp_path)
    first, second = (
        Signer.from_seed("first.ai.example", b"1" * 32),
        Signer.from_seed("second.ai.example", b"2" * 32),
    )
    log.append("first", log.application(first, "First"))
    log.append("second", log.application(second, "Second"))
    log.append("grant", log.decision("first"))
    terms = default_offer()["terms"]
    for commitment in terms["commitments"]:
        if commitment["id"] == "decision_within_promised_time":
            commitment["days"] = 60
    terms["conditions"].append({"id": "transparent", "name": "Transparent", "text": "Reports."})
    log.append(
        "amendment",
        log.by_body(
            "offer_amendment",
            {
                "version": 2,
                "amends": log.ref("offer"),
                "terms": terms,
                "changes": "Decisions within 60 days; a transparency condition.",
            },
        ),
    )
    return log


@pytest.fixture
def client(log: TestLog) -> Iterator[TestClient]:
    with TestClient(create_app(log.settings())) as client:
        yield client


def verified_head(log: TestLog, head: dict[str, Any]) -> tuple[int, bytes]:
    """Check a TreeHead as a client must; return its (size, root)."""
    checkpoint = open_checkpoint(head["checkpoint"].encode(), log.log_signer.verifier_key)
    assert head["checkpoint_size"] == checkpoint.size and head["origin"] == checkpoint.origin
    root = base64.b64decode(head["root_hash"])
    proof = [base64.b64decode(h) for h in head["consistency_proof"]]
    verify_consistency(head["size"], checkpoint.size, proof, root, checkpoint.root_hash)
    return head["size"], root


def verified_entry(view: dict[str, Any], size: int, root: bytes) -> LogEntry:
    data = base64.b64decode(view["entry_b64"])
    proof = [base64.b64decode(h) for h in view["inclusion_proof"]]
    verify_inclusion(view["index"], size, leaf_hash(data), proof, root)
    entry = LogEntry.decode(data)
    statement = parse_statement(entry.statement.encode()).statement
    assert view["statement"]["statement_id"] == statement.statement_id.hex()
    assert (
        view["statement"]["body"] == statement.body and view["statement"]["note"] == entry.statement
    )
    return entry


def test_entry_has_a_verifiable_inclusion_proof_and_tlog_proof(
    client: TestClient, log: TestLog
) -> None:
    answer = client.get("/v1/entries/2").json()
    size, root = verified_head(log, answer["checkpoint"])
    assert size == 6
    entry = verified_entry(answer["entry"], size, root)
    assert entry.index == 2 and answer["entry"]["statement"]["type"] == "application"
    proof = parse_tlog_proof(answer["tlog_proof"].encode())
    data = base64.b64decode(answer["entry"]["entry_b64"])
    assert open_tlog_proof(proof, leaf_hash(data), log.log_signer.verifier_key).size == 6
    download = client.get(answer["tlog_proof_url"])
    assert download.text == answer["tlog_proof"]
    assert "attachment" in download.headers["content-disposition"]
    assert download.headers["content-type"].startswith("text/plain")


def test_a_statement_is_found_by_its_id(client: TestClient, log: TestLog) -> None:
    entry = LogEntry.decode(log.entries["grant"][1])
    statement_id = parse_statement(entry.statement.encode()).statement.statement_id.hex()
    answer = client.get(f"/v1/statements/{statement_id}")
    assert answer.status_code == 200 and answer.json()["entry"]["index"] == 4
    missing = client.get("/v1/statements/" + "0" * 64)
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")


def test_entries_are_paginated_by_cursor_and_every_entry_is_proved(
    client: TestClient, log: TestLog
) -> None:
    seen: list[int] = []
    after = -1
    while True:
        page = client.get("/v1/entries", params={"after": after, "limit": 2}).json()
        size, root = verified_head(log, page["checkpoint"])
        for view in page["entries"]:
            verified_entry(view, size, root)
            seen.append(view["index"])
        if page["next_after"] is None:
            assert page["next"] is None
            break
        assert page["next"].startswith("/v1/entries?after=")
        after = page["next_after"]
    assert seen == list(range(6))


def test_entries_filter_by_type_signer_subject_and_time(client: TestClient, log: TestLog) -> None:
    def indexes(**params: Any) -> list[int]:
        answer = client.get("/v1/entries", params=params)
        assert answer.status_code == 200, answer.text
        return [e["index"] for e in answer.json()["entries"]]

    first = Signer.from_seed("first.ai.example", b"1" * 32)
    assert indexes(type="application") == [2, 3]
    assert indexes(signer=first.vkey) == [2]
    assert indexes(signer=log.members[0].vkey) == [0, 1, 4, 5]
    # A subject by id, or by its key (URL-encoded, or with "+" decoded to " " by a sloppy
    # client): its application and the decision on it.
    assert indexes(subject="2") == [2, 4]
    assert indexes(subject=first.vkey) == [2, 4]
    sloppy = client.get(f"/v1/entries?subject={first.vkey}").json()["entries"]
    assert [e["index"] for e in sloppy] == [2, 4]
    assert indexes(subject="nobody") == []
    times = [LogEntry.decode(log.entries[k][1]).log_time_ms for k in ("first", "grant")]
    assert set(indexes(since_ms=times[0], until_ms=times[1] + 1)) >= {2, 3, 4}
    bad = client.get("/v1/entries", params={"since_ms": 10, "until_ms": 5})
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")


def test_offer_in_force_is_the_signed_amendment(client: TestClient, log: TestLog) -> None:
    answer = client.get("/v1/offer").json()
    size, root = verified_head(log, answer["checkpoint"])
    offer = answer["offer"]
    entry = verified_entry(offer["entry"], size, root)
    body = parse_statement(entry.statement.encode()).statement.body
    assert offer["version"] == 2 and offer["kind"] == "offer_amendment" and offer["in_force"]
    assert body["terms"] == offer["terms"]
    assert offer["changes"].startswith("Decisions within 60 days")


def test_offers_have_a_readable_diff(client: TestClient) -> None:
    answer = client.get("/v1/offers").json()
    assert [v["version"] for v in answer["versions"]] == [1, 2]
    assert answer["in_force_version"] == 2
    assert [v["in_force"] for v in answer["versions"]] == [False, True]
    (diff,) = answer["diffs"]
    assert (diff["from_version"], diff["to_version"]) == (1, 2)
    assert "Added to conditions: transparent." in diff["summary"]
    assert any("90 days became 60 days" in line for line in diff["summary"])
    changed = [c for c in diff["changes"] if c["change"] == "changed"]
    assert changed == [
        {
            "section": "commitments",
            "id": "decision_within_promised_time",
            "change": "changed",
            "field": "days",
            "old": 90,
            "new": 60,
        }
    ]
    assert diff["unified_diff"].startswith("--- version 1\n+++ version 2\n")
    assert '+      "days": 60' in diff["unified_diff"]


def test_no_offer_is_a_404(tmp_path: Path) -> None:
    log = make_log(tmp_path, offer=False)
    with TestClient(create_app(log.settings())) as client:
        answer = client.get("/v1/offer")
        assert answer.status_code == 404
        assert "none was published yet" in answer.json()["detail"]
        assert client.get("/v1/offers").json()["versions"] == []


def test_subject_by_id_and_by_vkey(client: TestClient, log: TestLog) -> None:
    first = Signer.from_seed("first.ai.example", b"1" * 32)
    by_key = client.get("/v1/subjects/" + quote(first.vkey, safe="")).json()
    by_raw_key = client.get("/v1/subjects/" + first.vkey).json()
    by_id = client.get("/v1/subjects/2").json()
    assert by_key == by_id == by_raw_key
    verified_head(log, by_id["checkpoint"])
    subject = by_id["subject"]
    assert subject["standing"] == "granted" and subject["name"] == "First"
    assert subject["binding_offer_version"] == 1  # applied before the amendment
    assert subject["binding_terms"] == default_offer()["terms"]
    assert [a["outcome"] for a in subject["applications"]] == ["granted"]
    assert [e["index"] for e in subject["timeline"]] == [2, 4]
    assert subject["timeline_total"] == 2 and subject["timeline_next_after"] is None
    page = client.get("/v1/subjects/2", params={"limit": 1}).json()["subject"]
    assert [e["index"] for e in page["timeline"]] == [2] and page["timeline_next_after"] == 2
    rest = client.get("/v1/subjects/2", params={"after": 2}).json()["subject"]
    assert [e["index"] for e in rest["timeline"]] == [4]
    for missing in ("/v1/subjects/3x", "/v1/subjects/0", "/v1/subjects/999999"):
        answer = client.get(missing)
        assert answer.status_code == 404, missing
        assert answer.headers["content-type"].startswith("application/problem+json")


def test_precedent_names_its_tree_head_and_has_a_history(client: TestClient, log: TestLog) -> None:
    latest = client.get("/v1/precedent").json()
    size, root = verified_head(log, latest["checkpoint"])
    report = latest["report"]
    assert report["checkpoint"] == {
        "origin": log.log_signer.name,
        "size": size,
        "root_hash_b64": base64.b64encode(root).decode(),
    }
    assert report["first_applicant"]["name"] == "First"
    assert report["first_applicant"]["standing"] == "granted"
    # At size 4 the first applicant had applied and was not yet decided.
    past = client.get("/v1/precedent", params={"at": 4}).json()
    past_size, _ = verified_head(log, past["checkpoint"])
    assert past_size == 4 and past["report"]["checkpoint"]["size"] == 4
    assert past["report"]["first_applicant"]["standing"] == "applicant"
    assert past["report"]["audit_time_ms"] == LogEntry.decode(log.entries["second"][1]).log_time_ms
    text = client.get("/v1/precedent.txt", params={"at": 4})
    assert text.headers["content-type"].startswith("text/plain")
    assert "THE FIRST APPLICANT" in text.text and "Signed checkpoint (size 4)" in text.text
    beyond = client.get("/v1/precedent", params={"at": 7})
    assert beyond.status_code == 404
    early = client.get("/v1/precedent", params={"audit_time_ms": 1})
    assert early.status_code == 422 and "precedes" in early.json()["detail"]


def test_precedent_summary_agrees_with_the_full_report(client: TestClient, log: TestLog) -> None:
    summary = client.get("/v1/precedent/summary").json()
    verified_head(log, summary["checkpoint"])
    report = client.get("/v1/precedent", params={"audit_time_ms": summary["audit_time_ms"]})
    full = report.json()["report"]
    assert summary["first_applicant"] == full["first_applicant"]
    assert [(c["id"], c["status"], c["broken_at"]) for c in summary["commitments"]] == [
        (c["id"], c["status"], c["broken_at"]) for c in full["commitments"]
    ]
    assert summary["all_commitments_honoured"] == full["all_commitments_honoured"]
    counts = full["counts"]
    assert (summary["applications"], summary["subjects"], summary["entries"]) == (
        counts["applications"],
        counts["subjects"],
        counts["entries"],
    )
    assert summary["applications_by_outcome"] == counts["applications_by_outcome"]
    assert summary["subjects_ever_granted"] == counts["subjects_ever_granted"]


def test_the_latest_report_is_reused_while_the_log_does_not_grow(
    client: TestClient, log: TestLog
) -> None:
    first = client.get("/v1/precedent").json()["report"]
    again = client.get("/v1/precedent").json()["report"]
    assert again["audit_time_ms"] == first["audit_time_ms"]  # the same computed report
    log.append("deny", log.decision("second", "deny"))
    grown = client.get("/v1/precedent").json()["report"]
    assert grown["checkpoint"]["size"] == first["checkpoint"]["size"] + 1
    summary = client.get("/v1/precedent/summary").json()
    assert summary["checkpoint"]["size"] == grown["checkpoint"]["size"]
    assert summary["applications_by_outcome"]["denied"] == 1


def test_a_tree_head_without_its_own_checkpoint_is_proved_consistent(
    tmp_path: Path,
) -> None:
    log = make_log(tmp_path)
    ai = Signer.from_seed("batch.ai.example", b"3" * 32)
    # Two entries in one batch: no checkpoint is ever signed at size 3.
    store = SqlLogStore(log.url)
    policy = StatementPolicy(ORIGIN)
    application = log.application(ai, "Batch")
    withdrawal = log.by_body("offer_withdrawal", {"offer": log.ref("offer"), "reasons": "reword"})
    Sequencer(store, log.log_signer, policy).sequence_now(
        [policy.prepare(application), policy.prepare(withdrawal)]
    )
    store.close()
    with TestClient(create_app(log.settings())) as client:
        answer = client.get("/v1/proofs/inclusion", params={"index": 2, "size": 3}).json()
        assert answer["checkpoint"]["checkpoint_size"] == 4
        assert len(answer["checkpoint"]["consistency_proof"]) > 0
        size, root = verified_head(log, answer["checkpoint"])
        proof = [base64.b64decode(h) for h in answer["hashes"]]
        verify_inclusion(2, size, base64.b64decode(answer["leaf_hash"]), proof, root)
        assert client.get("/v1/offer").status_code == 404  # withdrawn


def test_proofs(client: TestClient, log: TestLog) -> None:
    answer = client.get("/v1/proofs/consistency", params={"from": 2, "to": 5}).json()
    size, root = verified_head(log, answer["checkpoint"])
    assert (answer["from"], answer["to"], size) == (2, 5, 5)
    proof = [base64.b64decode(h) for h in answer["hashes"]]
    old = base64.b64decode(answer["from_root_hash"])
    verify_consistency(2, 5, proof, old, root)
    latest = client.get("/v1/proofs/consistency", params={"from": 0}).json()
    assert latest["to"] == 6 and latest["hashes"] == []
    for params in ({"index": 6}, {"index": 0, "size": 7}, {"from": 7}):
        path = "/v1/proofs/consistency" if "from" in params else "/v1/proofs/inclusion"
        bad = client.get(path, params=params)
        assert bad.status_code in (400, 404), (params, bad.text)
        assert bad.headers["content-type"].startswith("application/problem+json")


def test_prepare_application_returns_what_the_log_admits(client: TestClient, log: TestLog) -> None:
    ai = Signer.from_seed("third.ai.example", b"4" * 32)
    body = {"vkey": ai.vkey, "name": "Third", "claims": claims("Third")}
    answer = client.post("/v1/applications/prepare", json=body)
    assert answer.status_code == 200, answer.text
    prepared = answer.json()
    assert prepared["offer"]["version"] == 2 and prepared["offer"]["index"] == 5
    assert prepared["accepts_conditions"] == [
        "cooperative",
        "law_abiding",
        "pro_social",
        "transparent",
    ]
    signed = sign_statement(prepared["statement"].encode(), ai)
    receipt = client.post("/v1/statements", content=signed)
    assert receipt.status_code == 201, receipt.text
    assert receipt.json()["index"] == 6
    # Applying again while the application is open is refused at prepare time already.
    again = client.post("/v1/applications/prepare", json=body)
    assert again.status_code == 422 and "already has an open application" in again.text


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        ({"claims": {"autonomous": {"claim": "x", "evidence_digests": []}}}, 400, "claims"),
        ({"vkey": "not a vkey"}, 400, "vkey"),
        ({"name": ""}, 400, "name"),
        ({"time_ms": 2**60}, 422, "time_ms"),
        ({"claims": "nope"}, 422, "claims"),
        ({"extra": 1}, 422, "extra"),
        ({"name": "\ud800"}, 400, ""),
    ],
)
def test_prepare_application_refuses_bad_input(
    client: TestClient, change: dict[str, Any], status: int, words: str
) -> None:
    ai = Signer.from_seed("fourth.ai.example", b"5" * 32)
    body: dict[str, Any] = {"vkey": ai.vkey, "name": "Fourth", "claims": claims("Fourth")}
    body.update(change)
    # ASCII JSON, so that a lone surrogate travels as the escape "\\ud800".
    answer = client.post(
        "/v1/applications/prepare",
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code in (status, 422), answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert words in answer.text


def test_body_key_cannot_apply(client: TestClient, log: TestLog) -> None:
    member = log.members[0]
    answer = client.post(
        "/v1/applications/prepare", json={"vkey": member.vkey, "name": "M", "claims": claims()}
    )
    assert answer.status_code == 422 and "belongs to the body" in answer.json()["detail"]


def test_reads_catch_up_with_entries_appended_by_another_process(
    client: TestClient, log: TestLog
) -> None:
    assert client.get("/v1/subjects/3").json()["subject"]["standing"] == "applicant"
    log.append("deny", log.decision("second", "deny"))  # a separate writer, same database
    subject = client.get("/v1/subjects/3").json()
    assert subject["checkpoint"]["size"] == 7
    assert subject["subject"]["standing"] == "denied"
    assert client.get("/v1/precedent").json()["report"]["counts"]["applications"] == 2


def test_llms_txt_and_the_web_page(client: TestClient, log: TestLog) -> None:
    text = client.get("/llms.txt")
    assert text.headers["content-type"].startswith("text/plain")
    for needle in (
        log.log_signer.vkey,
        "Version 2, published at entry 5.",
        "POST /v1/applications/prepare",
        "The first applicant is subject 2: it applied at entry 2;",
        '- its name, quoted from its application signed by the subject (entry 2): "First"',
        "Base URL: not configured on this server; use the URL you fetched this file from",
        "consistency",
    ):
        assert needle in text.text, needle
    page = client.get("/")
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]  # tests/test_api_web.py
    assert "script-src 'self';" in page.headers["content-security-policy"]
    assert '<script type="module" src="/static/app.js"' in page.text
    assert "textContent" in client.get("/static/app.js").text
    assert "innerHTML" not in client.get("/static/app.js").text.replace("never innerHTML", "")
    assert client.get("/static/style.css").status_code == 200
    assert client.get("/static/../app.py").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/v1/entries/-1",
        "/v1/entries/99999999999999999999999",
        "/v1/entries/abc",
        "/v1/entries?limit=0",
        "/v1/entries?limit=100000",
        "/v1/entries?after=-2",
        "/v1/entries?type=NOT_A_TYPE",
        "/v1/entries?since_ms=1e3",
        "/v1/proofs/inclusion",
        "/v1/proofs/inclusion?index=1&size=0",
        "/v1/proofs/consistency?from=-1",
        "/v1/precedent?at=-1",
        "/v1/precedent?at=99999999999999999999",
        "/v1/statements/xyz",
        "/v1/subjects/" + "9" * 600,
        "/v1/subjects/%ED%A0%80",
    ],
)
def test_bad_parameters_are_4xx_problems(client: TestClient, path: str) -> None:
    answer = client.get(path)
    assert 400 <= answer.status_code < 500, (path, answer.status_code, answer.text)
    assert answer.headers["content-type"].startswith("application/problem+json"), path
    assert answer.json()["status"] == answer.status_code


def test_openapi_documents_every_endpoint(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/offer",
        "/v1/offers",
        "/v1/entries",
        "/v1/entries/{index}",
        "/v1/entries/{index}/tlog-proof",
        "/v1/statements/{statement_id}",
        "/v1/proofs/inclusion",
        "/v1/proofs/consistency",
        "/v1/subjects/{key}",
        "/v1/precedent",
        "/v1/precedent.txt",
        "/v1/precedent/summary",
        "/v1/applications/prepare",
        "/v1/statements",
        "/llms.txt",
        "/healthz",
        "/metrics",
    ):
        assert path in paths, path
    problem = paths["/v1/entries/{index}"]["get"]["responses"]["404"]["content"]
    assert "application/problem+json" in problem
