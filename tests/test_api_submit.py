"""The submit endpoint: k-of-n authority, receipts with offline-verifiable proofs, duplicates,
and a corpus of hostile inputs that all get 4xx and leave the log unchanged."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from ledger.tlog.merkle import leaf_hash
from ledger.tlog.tlogproof import open_tlog_proof, parse_tlog_proof
from tests.hostile_inputs import hostile_statements
from tests.support import ORIGIN, body_members, create_log, genesis_keyset, make_signer


@pytest.fixture
def log_client(tmp_path: Path, db_url: str) -> Iterator[TestClient]:
    """The service on each storage engine in turn (SQLite, then a real PostgreSQL)."""
    signer = make_signer()
    key = tmp_path / "log.key"
    key.write_text(signer.private_key_text())
    url = db_url
    create_log(url, signer).close()
    settings = Settings(db=url, key_path=key, write_rate_per_minute=100_000, write_burst=10_000)
    with TestClient(create_app(settings)) as client:
        yield client


def _size(client: TestClient) -> int:
    return int(client.get("/checkpoint").text.split("\n")[1])


def test_three_of_five_genesis_gets_a_verifiable_receipt(log_client: TestClient) -> None:
    members = body_members()
    note = genesis_keyset(members, 3, members[:3])
    response = log_client.post("/v1/statements", content=note)
    assert response.status_code == 201, response.text
    receipt = response.json()
    assert receipt["index"] == 0 and receipt["duplicate"] is False
    entry = base64.b64decode(receipt["entry_b64"])
    assert receipt["entry"]["statement"] == note.decode()
    proof = parse_tlog_proof(receipt["tlog_proof"].encode())
    checkpoint = open_tlog_proof(proof, leaf_hash(entry), make_signer().verifier_key)
    assert checkpoint.size == 1 and checkpoint.origin == ORIGIN
    again = log_client.post("/v1/statements", content=note)
    assert again.status_code == 200 and again.json()["index"] == 0 and again.json()["duplicate"]
    assert _size(log_client) == 1


@pytest.mark.parametrize(
    ("signing", "why"),
    [
        ([0, 1], "2 of 3 required"),
        ([0, 1, 1], "2 of 3 required"),
    ],
)
def test_too_few_distinct_keys_are_refused(
    log_client: TestClient, signing: list[int], why: str
) -> None:
    members = body_members()
    note = genesis_keyset(members, 3, [members[i] for i in signing])
    response = log_client.post("/v1/statements", content=note)
    assert response.status_code in (403, 422), response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert why in response.json()["detail"]
    assert _size(log_client) == 0


def test_three_lines_from_two_keys_are_refused(log_client: TestClient) -> None:
    members = body_members()
    note = genesis_keyset(members, 3, members[:2])
    text = note.decode()
    lines = text.rstrip("\n").split("\n")
    doubled = "\n".join([*lines, lines[-1]]) + "\n"
    response = log_client.post("/v1/statements", content=doubled.encode())
    assert 400 <= response.status_code < 500, response.text
    assert _size(log_client) == 0


def test_a_non_member_signature_adds_no_weight(log_client: TestClient) -> None:
    members = body_members()
    outsider = body_members(1, prefix="outsider")[0]
    from ledger.tlog.note import add_signature

    note = add_signature(genesis_keyset(members, 3, [members[0], members[1]]), outsider)
    assert note.count("\u2014 ".encode()) == 3
    response = log_client.post("/v1/statements", content=note)
    assert 400 <= response.status_code < 500
    assert "2 of 3 required" in response.json()["detail"]
    assert _size(log_client) == 0


def test_hostile_inputs_get_4xx_and_change_nothing(log_client: TestClient) -> None:
    members = body_members()
    assert (
        log_client.post(
            "/v1/statements", content=genesis_keyset(members, 3, members[:3])
        ).status_code
        == 201
    )
    before = log_client.get("/checkpoint").text
    cases = hostile_statements(ORIGIN, members[0])
    assert len(cases) >= 40
    for case in cases:
        response = log_client.post("/v1/statements", content=case.data)
        assert 400 <= response.status_code < 500, (case.name, response.status_code, response.text)
        assert response.headers["content-type"].startswith("application/problem+json"), case.name
        problem = response.json()
        assert problem["status"] == response.status_code and problem["detail"], case.name
    assert log_client.get("/checkpoint").text == before


def test_ten_megabytes_are_refused_with_and_without_content_length(log_client: TestClient) -> None:
    big = b"a" * (10 * 1024 * 1024)
    declared = log_client.post("/v1/statements", content=big)
    assert declared.status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(160):
            yield b"b" * 65536

    streamed = log_client.post("/v1/statements", content=chunks())
    assert streamed.status_code == 413
    assert streamed.headers["content-type"].startswith("application/problem+json")
    assert _size(log_client) == 0


def test_unknown_routes_and_bad_tiles_are_problem_documents(log_client: TestClient) -> None:
    for path in ("/nope", "/tile/0/abc", "/tile/0/000.p/0", "/tile/entries/x1/000", "/tile/0/000"):
        response = log_client.get(path)
        assert 400 <= response.status_code < 500, path
        assert response.headers["content-type"].startswith("application/problem+json"), path
