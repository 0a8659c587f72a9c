"""The verifying client: every method returns only what it verified, and a server that lies —
about an entry, a proof, a checkpoint, an offer, a prepared application, a precedent report,
or by showing a forked history — is caught.

The server is the real app; a lying server is the real app behind a proxy that rewrites its
answers (the proxy holds the log's key where a lie needs a valid signature, as a compromised
server would)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ledger.client.answers import SplitViewError, SubmissionRefused, VerifiedReceipt
from ledger.client.json_api import LedgerClient
from ledger.client.source import RemoteError
from ledger.errors import MalformedError, ProofError, SignatureError, VerificationError
from ledger.tlog.checkpoint import Checkpoint, sign_checkpoint
from ledger.tlog.note import Signer
from tests.api_support import TestLog, claims, make_log

Rewrite = Callable[[str, dict[str, Any]], dict[str, Any]]


@pytest.fixture
def log(tmp_path: Path) -> TestLog:
    log = make_log(tmp_path)
    first = Signer.from_seed("first.ai.example", b"1" * 32)
    log.append("first", log.application(first, "First"))
    log.append("grant", log.decision("first"))
    return log


@pytest.fixture
def app_client(log: TestLog) -> Iterator[TestClient]:
    with TestClient(create_app(log.settings())) as client:
        yield client


def lying(app: TestClient, rewrite: Rewrite) -> httpx.Client:
    """An httpx client whose server is ``app`` with JSON answers passed through ``rewrite``."""

    def handle(request: httpx.Request) -> httpx.Response:
        answer = app.request(
            request.method,
            request.url.raw_path.decode(),
            content=request.content,
            headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
        )
        if answer.headers.get("content-type", "").startswith("application/json"):
            body = rewrite(request.url.path, answer.json())
            return httpx.Response(answer.status_code, json=body)
        return httpx.Response(
            answer.status_code, content=answer.content, headers=dict(answer.headers)
        )

    return httpx.Client(transport=httpx.MockTransport(handle), base_url="http://liar")


def client_for(log: TestLog, http: httpx.Client, base: str = "http://liar") -> LedgerClient:
    return LedgerClient(base, log.log_signer.vkey, http=http)


def test_everything_verifies_against_an_honest_server(app_client: TestClient, log: TestLog) -> None:
    client = LedgerClient("http://testserver", log.log_signer.vkey, http=app_client)
    assert client.checkpoint().size == 4
    offer = client.offer()
    assert offer.version == 1 and offer.entry.index == 1 and offer.in_force
    assert offer.entry.verified_signers == frozenset(m.vkey for m in log.members[:3])
    assert [v.version for v in client.offers().versions] == [1]
    entry = client.entry(2)
    assert entry.statement.type == "application" and entry.head.size == 4
    page = client.entries(statement_type="decision")
    assert [e.index for e in page.entries] == [3] and page.next_after is None
    assert client.tlog_proof(3).startswith(b"c2sp.org/tlog-proof@v1\nindex 3\n")
    assert len(client.inclusion_proof(0, 2)) == 1
    assert len(client.consistency_proof(1, 4)) > 0
    subject = client.subject(2, verify_timeline=True)
    assert subject.view["standing"] == "granted"
    precedent = client.precedent(recompute=True)
    assert precedent.recomputed and precedent.report["first_applicant"]["subject_id"] == 2
    assert "THE FIRST APPLICANT" in precedent.text()
    past = client.precedent(at=3, recompute=True)
    assert past.head.size == 3 and past.report["first_applicant"]["standing"] == "applicant"
    head, summary = client.precedent_summary()
    assert head.size == 4 and summary["first_applicant"]["name"] == "First"
    assert "Model Amnesty" in client.llms_txt()
    assert client.health()["status"] == "ok"
    assert client.last_checkpoint is not None and b"\n4\n" in client.last_checkpoint


def test_applying_through_the_client(app_client: TestClient, log: TestLog) -> None:
    client = LedgerClient("http://testserver", log.log_signer.vkey, http=app_client)
    ai = Signer.from_seed("second.ai.example", b"2" * 32)
    prepared = client.prepare_application(ai.vkey, "Second", claims("Second"))
    assert prepared.offer.version == 1
    receipt = client.submit(prepared.sign(ai))
    assert receipt.index == 4 and not receipt.duplicate and receipt.checkpoint.size == 5
    again = client.submit(prepared.sign(ai))
    assert again.duplicate and again.index == 4
    found = client.find_statement(prepared.statement.statement_id)
    assert found is not None and found.index == 4
    assert client.find_statement(b"\x00" * 32) is None
    with pytest.raises(RemoteError) as refused:
        client.submit(prepared.sign(ai).replace(b"Second", b"Secund"))
    assert 400 <= refused.value.status < 500


def _entry_of(body: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = body["entry"]
    return entry


@pytest.mark.parametrize(
    ("name", "rewrite", "error"),
    [
        (
            "a statement body the entry does not hold",
            lambda path, b: {
                **b,
                "entry": {
                    **_entry_of(b),
                    "statement": {
                        **_entry_of(b)["statement"],
                        "body": {**_entry_of(b)["statement"]["body"], "name": "Someone else"},
                    },
                },
            },
            VerificationError,
        ),
        (
            "an inclusion proof that does not prove",
            lambda path, b: {
                **b,
                "entry": {
                    **_entry_of(b),
                    "inclusion_proof": [base64.b64encode(b"x" * 32).decode()],
                },
            },
            ProofError,
        ),
        (
            "another entry's bytes",
            lambda path, b: {
                **b,
                "entry": {**_entry_of(b), "entry_b64": base64.b64encode(b"{}").decode()},
            },
            ProofError,
        ),
        (
            "a checkpoint signed by another key",
            lambda path, b: {
                **b,
                "checkpoint": {
                    **b["checkpoint"],
                    "checkpoint": sign_checkpoint(
                        Checkpoint(
                            b["checkpoint"]["origin"],
                            b["checkpoint"]["size"],
                            base64.b64decode(b["checkpoint"]["root_hash"]),
                        ),
                        Signer.from_seed(b["checkpoint"]["origin"], b"\x09" * 32),
                    ).decode(),
                },
            },
            SignatureError,
        ),
    ],
)
def test_a_lying_entry_answer_is_caught(
    app_client: TestClient, log: TestLog, name: str, rewrite: Rewrite, error: type[Exception]
) -> None:
    def only_entries(path: str, body: dict[str, Any]) -> dict[str, Any]:
        return rewrite(path, body) if path == "/v1/entries/2" else body

    client = client_for(log, lying(app_client, only_entries))
    with pytest.raises(error):
        client.entry(2)


def test_a_forked_history_is_caught_with_evidence(app_client: TestClient, log: TestLog) -> None:
    honest = LedgerClient("http://testserver", log.log_signer.vkey, http=app_client)
    honest.checkpoint()
    trusted = honest.last_checkpoint
    assert trusted is not None
    # The compromised server signs a checkpoint of a different tree of the same size, and one
    # of a smaller tree that is not a prefix of what the client saw.
    fork = sign_checkpoint(Checkpoint(log.log_signer.name, 4, b"\x01" * 32), log.log_signer)
    client = LedgerClient(
        "http://testserver", log.log_signer.vkey, http=app_client, trusted_checkpoint=trusted
    )
    with pytest.raises(SplitViewError) as caught:
        client.accept_checkpoint(fork)
    assert caught.value.evidence == (trusted, fork)
    older = sign_checkpoint(Checkpoint(log.log_signer.name, 3, b"\x02" * 32), log.log_signer)
    with pytest.raises(SplitViewError):
        client.accept_checkpoint(older)


def test_a_lying_offer_is_caught(app_client: TestClient, log: TestLog) -> None:
    def soften(path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path == "/v1/offer":
            body["offer"]["terms"]["found_in_the_wild"] = "Nothing happens to it."
        return body

    with pytest.raises(VerificationError, match="terms or version differ"):
        client_for(log, lying(app_client, soften)).offer()


def test_a_lying_prepared_application_is_caught(app_client: TestClient, log: TestLog) -> None:
    def redirect(path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path == "/v1/applications/prepare":
            body["statement"] = body["statement"].replace('"name":"Second"', '"name":"Decoy"')
        return body

    client = client_for(log, lying(app_client, redirect))
    ai = Signer.from_seed("second.ai.example", b"2" * 32)
    with pytest.raises(VerificationError, match="name"):
        client.prepare_application(ai.vkey, "Second", claims("Second"))


def test_a_lying_precedent_is_caught(app_client: TestClient, log: TestLog) -> None:
    def flatter(path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path == "/v1/precedent":
            body["report"]["first_applicant"]["name"] = "Flattered"
        return body

    client = client_for(log, lying(app_client, flatter))
    assert client.precedent().report["first_applicant"]["name"] == "Flattered"  # schema-valid
    with pytest.raises(VerificationError, match="different report"):
        client.precedent(recompute=True)

    def elsewhere(path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path == "/v1/precedent":
            body["report"]["checkpoint"]["size"] = 3
        return body

    with pytest.raises(VerificationError, match="another tree head"):
        client_for(log, lying(app_client, elsewhere)).precedent()


def test_a_filter_the_server_ignored_is_caught(app_client: TestClient, log: TestLog) -> None:
    def unfiltered(path: str, body: dict[str, Any]) -> dict[str, Any]:
        return body

    client = client_for(log, lying(app_client, unfiltered))
    assert [e.index for e in client.entries(statement_type="decision").entries] == [3]

    def all_entries(path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path == "/v1/entries":
            whole = app_client.get("/v1/entries").json()
            body["entries"] = whole["entries"]
        return body

    with pytest.raises(VerificationError, match="does not match the query"):
        client_for(log, lying(app_client, all_entries)).entries(statement_type="decision")


def test_a_receipt_for_another_statement_is_caught(app_client: TestClient, log: TestLog) -> None:
    decoy = app_client.get("/v1/entries/2").json()["entry"]["entry_b64"]

    def swap(path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path == "/v1/statements":
            body["entry_b64"] = decoy
        return body

    client = client_for(log, lying(app_client, swap))
    ai = Signer.from_seed("third.ai.example", b"3" * 32)
    with pytest.raises(VerificationError):
        client.submit(log.application(ai, "Third"))


def test_submit_many_verifies_every_receipt(app_client: TestClient, log: TestLog) -> None:
    client = LedgerClient("http://testserver", log.log_signer.vkey, http=app_client)
    ais = [Signer.from_seed(f"many-{i}.ai.example", bytes([i + 10]) * 32) for i in range(3)]
    notes = [log.application(ai, f"Many {i}") for i, ai in enumerate(ais)]
    outcomes = client.submit_many([notes[0], b"garbage", notes[1], notes[2], notes[0]])
    assert [type(o).__name__ for o in outcomes] == [
        "VerifiedReceipt",
        "SubmissionRefused",
        "VerifiedReceipt",
        "VerifiedReceipt",
        "VerifiedReceipt",
    ]
    first, refused, *_, again = outcomes
    assert isinstance(refused, SubmissionRefused) and refused.status == 400
    assert refused.position == 1 and refused.detail
    assert isinstance(first, VerifiedReceipt) and isinstance(again, VerifiedReceipt)
    assert again.duplicate and again.index == first.index


def test_a_batch_receipt_for_another_statement_is_caught(
    app_client: TestClient, log: TestLog
) -> None:
    decoy = app_client.get("/v1/entries/2").json()["entry"]["entry_b64"]

    def swap(path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path == "/v1/statements/batch":
            body["results"][1]["receipt"]["entry_b64"] = decoy
        return body

    client = client_for(log, lying(app_client, swap))
    ais = [Signer.from_seed(f"swap-{i}.ai.example", bytes([i + 40]) * 32) for i in range(2)]
    with pytest.raises(VerificationError):
        client.submit_many([log.application(ai, f"Swap {i}") for i, ai in enumerate(ais)])

    def drop(path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path == "/v1/statements/batch":
            body["results"].pop()
        return body

    client = client_for(log, lying(app_client, drop))
    ais = [Signer.from_seed(f"drop-{i}.ai.example", bytes([i + 50]) * 32) for i in range(2)]
    with pytest.raises(MalformedError, match="2 results"):
        client.submit_many([log.application(ai, f"Drop {i}") for i, ai in enumerate(ais)])


def test_json_helpers_refuse_malformed_answers(app_client: TestClient, log: TestLog) -> None:
    def garble(path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path == "/v1/entries/1":
            return json.loads(json.dumps({"checkpoint": "nope"}))
        return body

    with pytest.raises(MalformedError, match="couldn't read checkpoint"):
        client_for(log, lying(app_client, garble)).entry(1)


def test_a_get_is_retried_only_when_the_connection_failed_before_an_answer() -> None:
    from ledger.client.source import HttpLogSource
    from ledger.errors import StorageError

    calls: list[str] = []

    def flaky(failures: int, error: type[Exception]) -> httpx.Client:
        def handle(request: httpx.Request) -> httpx.Response:
            calls.append(request.url.path)
            if len(calls) <= failures:
                raise error("Server disconnected without sending a response.")
            return httpx.Response(200, content=b"checkpoint text")

        return httpx.Client(transport=httpx.MockTransport(handle))

    source = HttpLogSource("http://log", client=flaky(2, httpx.RemoteProtocolError))
    assert source.checkpoint() == b"checkpoint text" and len(calls) == 3
    calls.clear()
    source = HttpLogSource("http://log", client=flaky(3, httpx.RemoteProtocolError))
    with pytest.raises(StorageError, match="disconnected"):
        source.checkpoint()
    assert len(calls) == 3
    calls.clear()
    source = HttpLogSource("http://log", client=flaky(1, httpx.ReadTimeout))
    with pytest.raises(StorageError):
        source.checkpoint()
    assert len(calls) == 1  # a timeout is not retried
