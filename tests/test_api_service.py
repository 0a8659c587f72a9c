"""Service behaviour: health, metrics, pushback when the sequencer is full, read-only servers,
structured access logs, request ids, CORS for reads."""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.clock import now_ms
from api.service import LedgerService
from ledger.errors import FatalError
from ledger.tlog.note import Signer
from tests.api_support import TestLog, make_log


@pytest.fixture
def log(tmp_path: Path) -> TestLog:
    return make_log(tmp_path)


def service_of(client: TestClient) -> LedgerService:
    service: LedgerService = client.app.state.service  # type: ignore[attr-defined]
    return service


def test_an_idle_log_is_healthy_however_old_its_checkpoint(log: TestLog) -> None:
    with TestClient(create_app(log.settings(healthy_checkpoint_age_s=1))) as client:
        answer = client.get("/healthz")
        assert answer.status_code == 200, answer.text
        health = answer.json()
        assert health["status"] == "ok" and health["sequencer"] == "running"
        assert health["size"] == 2 and health["waiting_submissions"] == 0
        # Nothing was signed by this process yet, and nothing waits: still healthy.
        assert health["last_checkpoint_signed_ms"] is None


def test_a_submission_waiting_without_a_checkpoint_makes_it_unhealthy(log: TestLog) -> None:
    with TestClient(create_app(log.settings(healthy_checkpoint_age_s=1))) as client:
        service = service_of(client)
        token = service.waiting.start(at_ms=now_ms() - 5_000)  # it arrived five seconds ago
        answer = client.get("/healthz")
        assert answer.status_code == 503
        assert "waited" in answer.json()["reasons"][0]
        service.waiting.done(token)
        assert client.get("/healthz").status_code == 200


def test_a_halted_sequencer_is_unhealthy(log: TestLog) -> None:
    with TestClient(create_app(log.settings())) as client:
        sequencer = service_of(client).sequencer
        assert sequencer is not None
        sequencer._fatal = FatalError("couldn't trust the store: test")
        answer = client.get("/healthz")
        assert answer.status_code == 503 and answer.json()["sequencer"] == "halted"
        sequencer._fatal = None


def test_a_full_sequencer_queue_answers_503_with_retry_after(log: TestLog) -> None:
    ai = Signer.from_seed("queued.ai.example", b"6" * 32)
    other = Signer.from_seed("refused.ai.example", b"7" * 32)
    with TestClient(create_app(log.settings(max_pending=1))) as client:
        service = service_of(client)
        sequencer = service.sequencer
        assert sequencer is not None
        sequencer.stop()  # nobody drains the queue now
        queued = sequencer.submit(service.policy.prepare(log.application(ai, "Queued")))
        answer = client.post("/v1/statements", content=log.application(other, "Refused"))
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"] == "1"
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["type"].endswith("/busy")
        sequencer.start()
        assert queued.result(timeout=10).index == 2
        metrics = client.get("/metrics").text
        assert 'amnesty_submissions_total{outcome="unavailable"} 1.0' in metrics


def test_metrics_count_submissions_batches_and_requests(log: TestLog) -> None:
    with TestClient(create_app(log.settings())) as client:
        ai = Signer.from_seed("metered.ai.example", b"8" * 32)
        note = log.application(ai, "Metered")
        assert client.post("/v1/statements", content=note).status_code == 201
        assert client.post("/v1/statements", content=note).status_code == 200
        assert client.post("/v1/statements", content=b"garbage").status_code == 400
        assert client.get("/v1/entries/99").status_code == 404
        answer = client.get("/metrics")
        assert answer.headers["content-type"].startswith("text/plain")
        text = answer.text
        for line in (
            'amnesty_submissions_total{outcome="accepted"} 1.0',
            'amnesty_submissions_total{outcome="duplicate"} 1.0',
            'amnesty_submissions_total{outcome="refused"} 1.0',
            "amnesty_batch_entries_count 1.0",
            "amnesty_batch_entries_sum 1.0",
            'amnesty_http_errors_total{route="/v1/entries/{index}",status="404"} 1.0',
            'amnesty_http_requests_total{method="POST",route="/v1/statements",status="201"} 1.0',
            "amnesty_tree_size 3.0",
            "amnesty_sequencer_pending 0.0",
        ):
            assert line in text, line
        assert "amnesty_submission_duration_seconds_bucket" in text
        assert "amnesty_batch_commit_duration_seconds_count 1.0" in text
        assert "amnesty_http_request_duration_seconds_bucket" in text


def test_a_read_only_server_serves_reads_and_refuses_writes(log: TestLog) -> None:
    with TestClient(create_app(log.settings(read_only=True))) as client:
        assert client.get("/v1/offer").status_code == 200
        health = client.get("/healthz").json()
        assert health["sequencer"] == "none" and health["read_only"] is True
        ai = Signer.from_seed("late.ai.example", b"9" * 32)
        answer = client.post("/v1/statements", content=log.application(ai, "Late"))
        assert answer.status_code == 503 and answer.json()["type"].endswith("/read-only")


def test_access_logs_are_structured_and_requests_have_ids(
    log: TestLog, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(create_app(log.settings())) as client, caplog.at_level(logging.INFO):
        answer = client.get("/v1/entries/1", headers={"X-Request-ID": "abc-123"})
        assert answer.headers["x-request-id"] == "abc-123"
        generated = client.get("/v1/offer", headers={"X-Request-ID": "bad id\n"})
        again = client.get("/v1/offer")
        fresh = {generated.headers["x-request-id"], again.headers["x-request-id"]}
        assert len(fresh) == 2 and all(re.fullmatch(r"[0-9a-f]{12}-[0-9a-f]+", i) for i in fresh)
    records = [r for r in caplog.records if r.name == "api.access"]
    fields = [r.fields for r in records]  # type: ignore[attr-defined]
    first = next(f for f in fields if f["request_id"] == "abc-123")
    assert first["route"] == "/v1/entries/{index}" and first["status"] == 200
    assert first["method"] == "GET" and first["duration_ms"] >= 0
    message = next(r.getMessage() for r in records if "abc-123" in r.getMessage())
    assert "route=/v1/entries/{index}" in message and "status=200" in message


def test_json_log_lines(log: TestLog) -> None:
    import json

    from api.observability import JsonFormatter

    record = logging.LogRecord("api.access", logging.INFO, __file__, 1, "hello %s", ("x",), None)
    record.fields = {"route": "/v1/offer", "status": 200}
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "hello x" and line["route"] == "/v1/offer" and line["level"] == "INFO"


@pytest.fixture
def client(log: TestLog) -> Iterator[TestClient]:
    with TestClient(create_app(log.settings())) as client:
        yield client


def test_cors_allows_reads_from_anywhere_but_not_writes(client: TestClient) -> None:
    read = client.get("/v1/offer", headers={"Origin": "https://example.org"})
    assert read.headers["access-control-allow-origin"] == "*"
    preflight = client.options(
        "/v1/statements",
        headers={"Origin": "https://example.org", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 400
    assert "POST" not in preflight.headers.get("access-control-allow-methods", "")


def test_a_corrupted_entry_stops_the_read_side_instead_of_being_served(log: TestLog) -> None:
    ai = Signer.from_seed("later.ai.example", b"5" * 32)
    log.append("later", log.application(ai, "Later"))  # entry 1 is not the last one
    path = log.url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        (data,) = conn.execute("SELECT data FROM entries WHERE idx = 1").fetchone()
        flipped = data.replace(b"Model Amnesty offer", b"Model Amnesty offeR")
        conn.execute("UPDATE entries SET data = ? WHERE idx = 1", (flipped,))
    with TestClient(create_app(log.settings(read_only=True))) as client:
        answer = client.get("/v1/offer")
        assert answer.status_code == 503, answer.text
        assert "couldn't replay entry 1: it does not hash" in answer.json()["detail"]
        assert answer.headers["retry-after"] == "1"
        # What needs no protocol state is still served, for verifiers to find the damage.
        assert client.get("/checkpoint").status_code == 200


def test_every_setting_is_documented_with_its_variable() -> None:
    from api.settings import Settings
    from tests.livelog import REPO

    api_doc = (REPO / "docs" / "API.md").read_text(encoding="utf-8")
    table = api_doc[api_doc.index("## Settings") :]
    for name, field_info in Settings.model_fields.items():
        assert f"`AMNESTY_{name.upper()}`" in table, name
        assert field_info.description, f"{name} has no description"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["serve", "--db", "{tmp}/missing.db"], "no such file"),
        (["serve", "--db", "{db}", "--key", "{tmp}/none.key"], "couldn't read the log key"),
        (["serve", "--db", "{db}", "--key", "{other_key}"], "is not this log's"),
        (["verify", "{tmp}/missing.db"], "no such file"),
        (["submit", "{tmp}/none.note", "--url", "http://127.0.0.1:9"], "couldn't read"),
        (["statement", "show", "{tmp}"], "Is a directory"),
    ],
)
def test_cli_refuses_bad_paths_and_keys_in_one_line(
    tmp_path: Path, log: TestLog, args: list[str], says: str
) -> None:
    import os
    import subprocess
    import sys

    from ledger.tlog.note import Signer
    from tests.livelog import REPO

    other_key = tmp_path / "other.key"
    other_key.write_text(Signer.generate("other.example").private_key_text())
    values = {"tmp": str(tmp_path), "db": log.url, "other_key": str(other_key)}
    result = subprocess.run(
        [sys.executable, "-m", "ledger", *(a.format(**values) for a in args)],
        cwd=REPO,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode in (1, 2), result
    assert says in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "missing.db").exists()


def test_a_bad_setting_refuses_to_start_naming_it(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from tests.livelog import REPO

    result = subprocess.run(
        [sys.executable, "-m", "ledger", "serve", "--db", f"sqlite:///{tmp_path / 'x.db'}"],
        cwd=REPO,
        env=dict(os.environ, AMNESTY_WRITE_BURST="lots"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "AMNESTY_WRITE_BURST" in result.stderr and "Traceback" not in result.stderr
