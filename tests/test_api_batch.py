"""``POST /v1/statements/batch``: many statements in one request, each with its own outcome
(a verifiable receipt or a problem), refused statements leaving no trace, and the request-level
limits (shape, count, bytes, write rate) refusing the whole request before anything is written.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ledger.tlog.merkle import leaf_hash
from ledger.tlog.note import Signer
from ledger.tlog.tlogproof import open_tlog_proof, parse_tlog_proof
from tests.api_support import TestLog, make_log

BATCH = "/v1/statements/batch"


def _ai(name: str) -> Signer:
    return Signer.from_seed(name, hashlib.sha256(b"batch " + name.encode()).digest())


def _size(client: TestClient) -> int:
    return int(client.get("/checkpoint").text.split("\n")[1])


@pytest.fixture
def log(tmp_path: Path) -> TestLog:
    return make_log(tmp_path)


def test_each_statement_gets_its_own_outcome_in_order(log: TestLog) -> None:
    already = log.application(_ai("already"), "Already")
    log.append("already", already)
    fresh = [log.application(_ai(f"ai-{i}"), f"Model {i}") for i in range(5)]
    other_origin = fresh[0].replace(b"example", b"elsewhere", 1)
    notes = [
        fresh[0].decode(),
        "not a signed note",
        fresh[1].decode(),
        already.decode(),  # logged before: 200 with its index
        fresh[2].decode(),
        fresh[2].decode(),  # twice in one request: logged once
        other_origin.decode(),
        fresh[3].decode(),
        fresh[4].decode(),
    ]
    with TestClient(create_app(log.settings())) as client:
        before = _size(client)
        answer = client.post(BATCH, json={"statements": notes})
        assert answer.status_code == 200, answer.text
        results = answer.json()["results"]
        assert [r["status"] for r in results] == [201, 400, 201, 200, 201, 200, 422, 201, 201]
        assert _size(client) == before + 5
        for note, result in zip(notes, results, strict=True):
            if "receipt" not in result:
                assert result["problem"]["status"] == result["status"]
                assert result["problem"]["type"].startswith("https://")
                assert result["problem"]["detail"]
                continue
            receipt = result["receipt"]
            entry = base64.b64decode(receipt["entry_b64"])
            assert receipt["entry"]["statement"] == note
            proof = parse_tlog_proof(receipt["tlog_proof"].encode())
            checkpoint = open_tlog_proof(proof, leaf_hash(entry), log.log_signer.verifier_key)
            assert checkpoint.size >= receipt["index"] + 1
        assert results[3]["receipt"]["index"] == log.entries["already"][0]
        assert results[5]["receipt"]["index"] == results[4]["receipt"]["index"]
        assert results[5]["receipt"]["duplicate"] is True
        # Each logged statement is found where its receipt says.
        for result in results:
            if result["status"] == 201:
                index = result["receipt"]["index"]
                got = client.get(f"/v1/entries/{index}").json()
                assert got["entry"]["entry_b64"] == result["receipt"]["entry_b64"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 400),
        (b"[]", 400),
        (b'{"statements": "one"}', 400),
        (b'{"statements": [1, 2]}', 400),
        (b'{"statements": [], "extra": 1}', 400),
        (b'{"statements": []}', 422),
        (b'{"statements": ["\\ud800"]}', 400),
    ],
)
def test_a_malformed_request_is_refused_whole(log: TestLog, body: bytes, status: int) -> None:
    with TestClient(create_app(log.settings())) as client:
        before = _size(client)
        answer = client.post(BATCH, content=body, headers={"Content-Type": "application/json"})
        assert answer.status_code in (status, 200) if b"ud800" in body else status
        if answer.status_code != 200:
            assert answer.headers["content-type"].startswith("application/problem+json")
            assert answer.json()["status"] == answer.status_code
        else:  # a lone surrogate may parse; then that statement alone is refused
            assert answer.json()["results"][0]["status"] == 400
        assert _size(client) == before


def test_count_bytes_and_rate_limits_refuse_before_writing(log: TestLog) -> None:
    notes = [log.application(_ai(f"limit-{i}"), f"Limit {i}").decode() for i in range(4)]
    settings = log.settings(max_batch_statements=3, max_batch_body_bytes=64 * 1024)
    with TestClient(create_app(settings)) as client:
        before = _size(client)
        too_many = client.post(BATCH, json={"statements": notes})
        assert too_many.status_code == 422 and "1 to 3" in too_many.json()["detail"]
        too_big = client.post(BATCH, json={"statements": ["x" * (70 * 1024)]})
        assert too_big.status_code == 413
        assert _size(client) == before
    # The batch cap is the batch route's own: a single statement keeps the smaller cap.
    with TestClient(create_app(log.settings(max_body_bytes=1024))) as client:
        assert client.post("/v1/statements", content=b"x" * 2048).status_code == 413
        assert client.post(BATCH, json={"statements": ["y" * 2048]}).status_code == 200
    # One token a statement: a burst of 3 pays for 3 statements, not for 4. A refused
    # request still costs the one token every write request costs, so 2 are left.
    with TestClient(create_app(log.settings(write_burst=3, write_rate_per_minute=1))) as client:
        before = _size(client)
        refused = client.post(BATCH, json={"statements": notes})
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert _size(client) == before
        accepted = client.post(BATCH, json={"statements": notes[:2]})
        assert accepted.status_code == 200
        assert [r["status"] for r in accepted.json()["results"]] == [201, 201]
        assert client.post("/v1/statements", content=notes[3].encode()).status_code == 429


def test_the_batch_route_is_documented(log: TestLog) -> None:
    with TestClient(create_app(log.settings())) as client:
        schema = client.get("/openapi.json").json()
    operation = schema["paths"][BATCH]["post"]
    body = operation["requestBody"]["content"]["application/json"]
    assert "statements" in json.dumps(body["schema"])
    assert "BatchReceipts" in json.dumps(operation["responses"]["200"])
