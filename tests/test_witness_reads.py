"""The witness's read endpoint: ``GET <monitoring prefix>/<origin hash>/checkpoint``.

C2SP tlog-witness at commit 95978ca8 ("Monitor Retrieval Mechanism", PR #273 with PR #277's
origin hash): the latest checkpoint the witness cosigned for a log, carrying the log's
signature(s) the witness verified and the cosignature(s) add-checkpoint returned; 404 for a log
it never cosigned. The origin hash is computed here independently (``hashlib``), not with the
module under test.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from api.witness_app import WitnessSettings, create_witness_app
from ledger.tlog.checkpoint import CosignatureSigner, open_checkpoint, verify_cosignatures
from ledger.tlog.note import ALG_MLDSA44, Signer, format_note, parse_note, sign_note
from tests.support import ORIGIN, make_signer
from tests.test_witness import (
    T0,
    W1,
    Clock,
    Log,
    body,
    live_witness,
    log,
    post,
    settings_for,
)

HASHED = hashlib.sha256(ORIGIN.encode("utf-8")).hexdigest()
READ = f"/{HASHED}/checkpoint"

__all__ = ["log"]  # the fixture, shared with tests/test_witness.py


def test_404_until_the_witness_has_cosigned_the_log(tmp_path: Path, log: Log) -> None:
    with TestClient(create_witness_app(settings_for(tmp_path))) as client:
        response = client.get(READ)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        other = hashlib.sha256(b"other.example/log").hexdigest()
        assert client.get(f"/{other}/checkpoint").status_code == 404
        assert client.get(f"/{HASHED.upper()}/checkpoint").status_code == 404
        assert client.get(f"/{ORIGIN}/checkpoint").status_code == 404
        assert client.post(READ).status_code == 405
        log.grow(3)
        assert post(client, body(0, [], log.view.latest().note)).status_code == 200
        assert client.get(READ).status_code == 200


def test_serves_the_checkpoint_with_the_log_line_and_the_returned_cosignature(
    tmp_path: Path, log: Log
) -> None:
    clock = Clock()
    with TestClient(create_witness_app(settings_for(tmp_path, clock=clock))) as client:
        first = log.grow(4)
        assert post(client, body(0, [], first)).status_code == 200
        clock.now += 30
        note = log.grow(5)
        answer = post(client, body(4, log.proof(4), note))
        assert answer.status_code == 200
        response = client.get(READ)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    # Exactly the log's checkpoint followed by the very lines add-checkpoint returned.
    assert response.content == note + answer.content
    assert open_checkpoint(response.content, log.signer.verifier_key).size == 9
    assert verify_cosignatures(response.content, [W1.verifier_key]) == {W1.verifier_key: T0 + 30}


def test_only_lines_the_witness_verified_are_served(tmp_path: Path, log: Log) -> None:
    """A line of some other key on the submitted note is not served as if vouched for."""
    stranger = make_signer("stranger.example/key")
    note = parse_note(log.grow(2))
    foreign = parse_note(sign_note(note.text, [stranger])).signatures[0]
    submitted = format_note(note.with_signature(foreign))
    with TestClient(create_witness_app(settings_for(tmp_path))) as client:
        answer = post(client, body(0, [], submitted))
        assert answer.status_code == 200
        served = client.get(READ).content
    assert served == format_note(note) + answer.content
    assert foreign.line().encode() not in served


def test_both_lines_of_a_hybrid_witness_are_served_as_returned(tmp_path: Path, log: Log) -> None:
    """ML-DSA-44 signatures are randomized: serving the returned line proves it was kept."""
    pq = CosignatureSigner.from_seed(W1.name, hashlib.sha256(b"w1-pq").digest(), ALG_MLDSA44)
    settings = settings_for(tmp_path)
    settings.key_path.write_text(W1.private_key_text() + "\n" + pq.private_key_text() + "\n")
    note = log.grow(3)
    with TestClient(create_witness_app(settings)) as client:
        answer = post(client, body(0, [], note))
        served = client.get(READ).content
    with TestClient(create_witness_app(settings)) as client:  # and after a restart
        assert client.get(READ).content == served
    assert served == note + answer.content
    keys = [W1.verifier_key, pq.verifier_key]
    assert set(verify_cosignatures(served, keys)) == set(keys)


def test_a_state_kept_by_the_previous_release_is_served_too(tmp_path: Path, log: Log) -> None:
    """A record without ``cosignatures`` (written before the read endpoint existed) still opens;
    its Ed25519 line is made again at the stored timestamp, byte for byte the one returned."""
    settings = settings_for(tmp_path)
    with TestClient(create_witness_app(settings)) as client:
        answer = post(client, body(0, [], log.grow(6)))
    state = json.loads(settings.state_path.read_text(encoding="utf-8"))
    record = state["logs"][ORIGIN]
    assert record["cosignatures"] == [answer.text.rstrip("\n")]
    del record["cosignatures"]
    settings.state_path.write_text(json.dumps(state), encoding="utf-8")
    with TestClient(create_witness_app(settings)) as client:
        assert client.get(READ).content == log.view.latest().note + answer.content
        grown = log.grow(1)
        assert post(client, body(6, log.proof(6), grown)).status_code == 200


def test_a_monitoring_prefix_apart_from_the_submission_prefix(tmp_path: Path, log: Log) -> None:
    base = settings_for(tmp_path)
    settings = WitnessSettings(
        key_path=base.key_path,
        state_path=base.state_path,
        log_vkeys=base.log_vkeys,
        prefix="/submit",
        monitoring_prefix="/monitor",
        create_state=True,
        clock=Clock(),
    )
    with TestClient(create_witness_app(settings)) as client:
        assert client.post("/submit/add-checkpoint", content=body(0, [], log.grow(2))).is_success
        assert client.get(f"/monitor{READ}").status_code == 200
        assert client.get(f"/submit{READ}").status_code == 404
        assert client.get(READ).status_code == 404


def test_a_real_witness_serves_what_it_cosigned_for_each_log(tmp_path: Path, log: Log) -> None:
    """Two logs on one witness over real HTTP: each read returns that log's checkpoint."""
    other_signer = Signer.from_seed("other.example/log", hashlib.sha256(b"other").digest())
    other = Log(tmp_path / "other.db", signer=other_signer)
    try:
        settings = settings_for(tmp_path, logs=(log.signer.vkey, other_signer.vkey))
        with live_witness(settings) as url:
            for each, count in ((log, 3), (other, 5)):
                response = httpx.post(
                    f"{url}/add-checkpoint", content=body(0, [], each.grow(count))
                )
                assert response.status_code == 200
            hashed = hashlib.sha256(b"other.example/log").hexdigest()
            served = httpx.get(f"{url}/{hashed}/checkpoint")
            assert served.status_code == 200
            assert open_checkpoint(served.content, other_signer.verifier_key).size == 5
            assert (
                open_checkpoint(httpx.get(f"{url}{READ}").content, log.signer.verifier_key).size
                == 3
            )
    finally:
        other.close()
