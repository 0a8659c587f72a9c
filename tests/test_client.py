"""The verifying client: what it calls verified it verified, and a server that lies — about an
entry, a proof, a checkpoint, an offer, a prepared application, a precedent report, a listing,
or by showing a forked history — is caught, or its word is labelled unverified.

The server is the real app; a lying server is the real app behind a proxy that rewrites its
answers (the proxy holds the log's key where a lie needs a valid signature, as a compromised
server would). The local verified replica is tested here too: its answers are the service's,
it verifies only what is new, it keeps its state in a file, it catches up in the background,
and it refuses a forked history. ``tests/test_lying_proxy.py`` runs every method against a
lying HTTP proxy."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ledger.client.answers import (
    SplitViewError,
    SubmissionRefused,
    Unverified,
    VerifiedEntry,
    VerifiedReceipt,
)
from ledger.client.json_api import LedgerClient
from ledger.client.replica import VerifiedReplica
from ledger.client.source import HttpLogSource, RemoteError
from ledger.errors import MalformedError, ProofError, SignatureError, VerificationError
from ledger.protocol.terms import default_offer
from ledger.server.admission import StatementPolicy
from ledger.server.sequencer import Receipt, Sequencer
from ledger.statements.entry import LogEntry
from ledger.storage.sql import SqlLogStore
from ledger.tlog.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from ledger.tlog.note import Signer
from ledger.verifier.failures import SplitViewError as VerifierSplitViewError
from ledger.verifier.trust import TrustState
from tests.api_support import TestLog, claims, make_log
from tests.support import ORIGIN

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


def client_for(
    log: TestLog, http: httpx.Client, base: str = "http://liar", **options: Any
) -> LedgerClient:
    """A client of ``http``; by default one whose replica never verifies anything
    (``max_catch_up=0``), so that its derived answers are the server's, checked only for what
    a single answer can show, and labelled unverified."""
    return LedgerClient(base, log.log_signer.vkey, http=http, **({"max_catch_up": 0} | options))


def recording(app: TestClient, paths: list[str]) -> httpx.Client:
    """An httpx client of ``app`` that appends the path of every request to ``paths``."""

    def handle(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        answer = app.request(request.method, request.url.raw_path.decode(), content=request.content)
        return httpx.Response(
            answer.status_code, content=answer.content, headers=dict(answer.headers)
        )

    return httpx.Client(transport=httpx.MockTransport(handle), base_url="http://recorded")


def test_everything_verifies_against_an_honest_server(app_client: TestClient, log: TestLog) -> None:
    client = LedgerClient("http://testserver", log.log_signer.vkey, http=app_client)
    assert client.checkpoint().size == 4
    offer = client.offer()
    assert offer.version == 1 and offer.entry.index == 1 and offer.in_force and offer.verified
    assert offer.entry.verified_signers == frozenset(m.vkey for m in log.members[:3])
    offers = client.offers()
    assert [v.version for v in offers.versions] == [1] and offers.verified
    entry = client.entry(2)
    assert entry.statement.type == "application" and entry.head.size == 4
    page = client.entries(statement_type="decision")
    assert [e.index for e in page.entries] == [3] and page.next_after is None and page.complete
    assert not client.entries(signer=log.members[0].vkey).complete  # not checkable: the word
    assert client.tlog_proof(3).startswith(b"c2sp.org/tlog-proof@v1\nindex 3\n")
    assert len(client.inclusion_proof(0, 2)) == 1
    assert len(client.consistency_proof(1, 4)) > 0
    subject = client.subject(2, verify_timeline=True)
    assert subject.view["standing"] == "granted" and subject.verified
    assert subject.provenance.label.startswith("verified: computed here from the local replica")
    precedent = client.precedent(recompute=True)
    assert precedent.recomputed and precedent.report["first_applicant"]["subject_id"] == 2
    assert precedent.verified and "THE FIRST APPLICANT" in precedent.text()
    past = client.precedent(at=3, recompute=True)
    assert past.head.size == 3 and past.report["first_applicant"]["standing"] == "applicant"
    assert past.verified and past.provenance.label.startswith("verified: recomputed here")
    summary = client.precedent_summary()
    assert summary.head.size == 4 and summary.summary["first_applicant"]["name"] == "First"
    assert summary.verified
    guide = client.llms_txt()
    assert "Model Amnesty" in guide.value and guide.label.startswith("UNVERIFIED")
    assert client.health().value["status"] == "ok"
    assert client.last_checkpoint is not None and b"\n4\n" in client.last_checkpoint
    # Everything derived came from one verification of the 4 entries.
    assert [(r.start_size, r.end_size) for r in client.replica.runs] == [(0, 4)]


def test_the_local_answers_are_the_service_s(log: TestLog) -> None:
    """On an honest server, what the client computes from its replica is what the service
    says, field for field (only the time a summary is judged at differs)."""
    ai = Signer.from_seed("second.ai.example", b"2" * 32)
    log.append("second", log.application(ai, "Second"))
    terms = default_offer()["terms"]
    for commitment in terms["commitments"]:
        if commitment["id"] == "decision_within_promised_time":
            commitment["days"] = 60
    terms["conditions"].append({"id": "transparent", "name": "Transparent", "text": "Reports."})
    amendment = {"version": 2, "amends": log.ref("offer"), "terms": terms, "changes": "60 days."}
    log.append("amendment", log.by_body("offer_amendment", amendment))
    with TestClient(create_app(log.settings())) as app:
        client = LedgerClient("http://testserver", log.log_signer.vkey, http=app)
        for key in ("2", ai.vkey, "4"):
            local = client.subject(key)
            assert local.verified
            assert local.view == app.get(f"/v1/subjects/{quote(key, safe='')}").json()["subject"]
        served = app.get("/v1/precedent/summary").json()
        summary = client.precedent_summary()
        assert summary.verified
        assert {k: v for k, v in summary.summary.items() if k != "audit_time_ms"} == {
            k: v for k, v in served.items() if k not in ("audit_time_ms", "checkpoint")
        }
        for part in ("applications", "subjects"):
            page = app.get(f"/v1/precedent/{part}", params={"limit": 1}).json()
            ours = getattr(client, f"precedent_{part}")(None, 1)
            assert ours.verified and list(ours.items) == page[part]
            assert (ours.next_cursor, ours.total) == (page["next_cursor"], page["total"])
        offers = client.offers()
        assert offers.verified and offers.in_force_version == 2
        assert [(v.version, v.in_force) for v in offers.versions] == [(1, False), (2, True)]
        (diff,) = app.get("/v1/offers").json()["diffs"]
        assert offers.diffs == (
            {k: diff[k] for k in ("from_version", "to_version", "summary", "changes")},
        )
        assert "Added to conditions: transparent." in offers.diffs[0]["summary"]
        assert any("days became 60 days" in line for line in offers.diffs[0]["summary"])
        report = app.get("/v1/precedent").json()["report"]
        ours_report = client.precedent(audit_time_ms=report["audit_time_ms"]).report
        assert ours_report == report
        assert client.offer().version == 2


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
    assert isinstance(found, VerifiedEntry) and found.index == 4
    absent = client.find_statement(b"\x00" * 32)
    assert isinstance(absent, Unverified) and absent.value is None and not absent.verified
    assert absent.label == (
        f"UNVERIFIED: that statement {'00' * 32} is not logged, as the server sent it; nothing "
        "in it can be checked"
    )
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


def test_a_lying_precedent_is_labelled_ignored_or_caught(
    app_client: TestClient, log: TestLog
) -> None:
    def flatter(path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path == "/v1/precedent":
            body["report"]["first_applicant"]["name"] = "Flattered"
        return body

    # Not verified here: the server's (schema-valid) report, and labelled so.
    behind = client_for(log, lying(app_client, flatter))
    word = behind.precedent()
    assert word.report["first_applicant"]["name"] == "Flattered" and not word.verified
    assert word.provenance.label.startswith(
        "UNVERIFIED: taken on the server's word; the local replica has verified 0 of 4 entries"
    )
    # Caught up: the report is computed here, and the lie never reaches the answer ...
    local = client_for(log, lying(app_client, flatter), max_catch_up=None)
    ours = local.precedent()
    assert ours.verified and ours.report["first_applicant"]["name"] == "First"
    # ... and with recompute the server's report is checked too: the lie is caught.
    with pytest.raises(VerificationError, match="different report"):
        local.precedent(recompute=True)
    with pytest.raises(VerificationError, match="different report"):
        behind.precedent(recompute=True)

    def elsewhere(path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path == "/v1/precedent":
            body["report"]["checkpoint"]["size"] = 3
        return body

    with pytest.raises(VerificationError, match="another tree head"):
        client_for(log, lying(app_client, elsewhere)).precedent()


def test_a_past_report_is_judged_at_its_own_time_not_the_server_s(
    app_client: TestClient, log: TestLog
) -> None:
    def postdate(path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path == "/v1/precedent":  # a later audit time could make a pending clock broken
            body["report"]["audit_time_ms"] += 400 * 86_400_000
        return body

    client = client_for(log, lying(app_client, postdate), max_catch_up=None)
    past = client.precedent(at=3)  # replayed here: the first 3 entries, as they stood then
    assert past.verified and past.provenance.label.startswith("verified: recomputed here")
    assert past.report["audit_time_ms"] == LogEntry.decode(log.entries["first"][1]).log_time_ms
    with pytest.raises(VerificationError, match="different report"):
        client.precedent(at=3, recompute=True)


def test_answers_are_unverified_until_the_replica_catches_up(
    app_client: TestClient, log: TestLog
) -> None:
    client = client_for(log, app_client, "http://testserver", max_catch_up=3)
    assert not client.precedent().verified  # 4 new entries, 3 allowed per call
    assert not client.subject(2).verified and not client.precedent_summary().verified
    assert not client.offer().verified and not client.offers().verified
    assert not client.precedent_subjects().verified
    page = client.entries(statement_type="decision")
    assert not page.complete and [e.index for e in page.entries] == [3]
    assert client.replica.size == 0 and client.replica.runs == []
    status = client.catch_up()
    assert status.caught_up and status.verified_size == 4
    assert client.precedent().verified and client.subject(2).verified
    assert client.entries(statement_type="decision").complete
    # One new entry is within the budget: verified within the call.
    log.append("third", log.application(Signer.from_seed("t.ai.example", b"t" * 32), "Third"))
    assert client.subject(4).verified
    assert [(r.start_size, r.end_size) for r in client.replica.runs] == [(0, 4), (4, 5)]


def test_the_replica_catches_up_in_the_background(app_client: TestClient, log: TestLog) -> None:
    client = client_for(
        log, app_client, "http://testserver", max_catch_up=0, background_catch_up=True
    )
    first = client.precedent()
    if not first.verified:  # the background run had not finished: the answer says so
        assert first.provenance.label.startswith("UNVERIFIED: taken on the server's word")
    client.replica.wait(30)
    assert client.precedent().verified
    assert [(r.start_size, r.end_size, r.background) for r in client.replica.runs] == [(0, 4, True)]
    client.close()


def test_an_omitted_entry_is_caught_by_the_replica(app_client: TestClient, log: TestLog) -> None:
    def omit(path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path == "/v1/entries":
            body["entries"] = [e for e in body["entries"] if e["index"] != 3]
        return body

    # A single answer cannot show the omission: the page says it is not known complete.
    page = client_for(log, lying(app_client, omit)).entries()
    assert [e.index for e in page.entries] == [0, 1, 2] and not page.complete
    with pytest.raises(VerificationError, match=r"leaves out entries \[3\]"):
        client_for(log, lying(app_client, omit), max_catch_up=None).entries()
    with pytest.raises(VerificationError, match=r"leaves out entries \[3\]"):
        client_for(log, lying(app_client, omit), max_catch_up=None).entries(
            statement_type="decision"
        )


def append_applications(log: TestLog, count: int, first: int = 0) -> None:
    """Append ``count`` applications in one batch of the sequencer, by new AIs numbered from
    ``first``."""
    store = SqlLogStore(log.url)
    try:
        policy = StatementPolicy(ORIGIN)
        sequencer = Sequencer(store, log.log_signer, policy)
        notes = [
            log.application(Signer.from_seed(f"many{i}.ai.example", i.to_bytes(32, "big")), f"M{i}")
            for i in range(first, first + count)
        ]
        results = sequencer.sequence_now([policy.prepare(n) for n in notes])
    finally:
        store.close()
    assert all(isinstance(r, Receipt) for r in results)


def test_the_replica_verifies_only_what_is_new(log: TestLog, tmp_path: Path) -> None:
    append_applications(log, 300)  # 304 entries: a full bundle and a partial one
    paths: list[str] = []
    state = tmp_path / "replica.json"
    with TestClient(create_app(log.settings())) as app:
        client = client_for(log, recording(app, paths), max_catch_up=None, state_path=state)
        assert client.precedent().verified
        assert "/tile/entries/000" in paths and "/tile/entries/001.p/48" in paths
        assert [(r.start_size, r.end_size) for r in client.replica.runs] == [(0, 304)]
        assert state.exists()  # written after the first verification
        paths.clear()
        append_applications(log, 5, 300)
        assert client.subject(304).verified  # one of the new applicants
        # Only the partial bundle holding the new entries was fetched, not the full one.
        bundles = [p for p in paths if p.startswith("/tile/entries/")]
        assert bundles == ["/tile/entries/001.p/53"]
        assert [(r.start_size, r.end_size) for r in client.replica.runs][-1] == (304, 309)
        client.close()  # saves the state
        # A new client (a restart) starts from the file and verifies only what is new since.
        append_applications(log, 2, 305)
        paths.clear()
        again = client_for(log, recording(app, paths), max_catch_up=None, state_path=state)
        assert again.replica.size == 309
        assert again.precedent_summary().verified
        assert [(r.start_size, r.end_size) for r in again.replica.runs] == [(309, 311)]
        assert [p for p in paths if p.startswith("/tile/entries/")] == ["/tile/entries/001.p/55"]
        again.close()


def test_a_replica_of_another_history_is_refused(tmp_path: Path) -> None:
    """Two logs under the same key (a forked log): a replica verified on one cannot follow
    the other; neither the replica on its own nor the client accepts it."""
    (tmp_path / "ours").mkdir()
    (tmp_path / "fork").mkdir()
    ours = make_log(tmp_path / "ours")
    fork = make_log(tmp_path / "fork")
    fork.append("other", fork.application(Signer.from_seed("o.ai.example", b"o" * 32), "Other"))
    key = ours.log_signer.verifier_key
    with TestClient(create_app(ours.settings())) as app:
        client = LedgerClient("http://testserver", key, http=app)
        client.catch_up()
        with client.replica.reading(2) as trusted:
            assert trusted is not None
            saved = trusted.to_json()
    with TestClient(create_app(fork.settings())) as app:
        source = HttpLogSource("http://testserver", client=app)
        replica = VerifiedReplica(source, key, trusted=TrustState.from_json(saved, key))
        note = source.checkpoint()
        with pytest.raises(VerifierSplitViewError) as caught:
            replica.advance(note, open_checkpoint(note, key), budget=None, background=False)
        evidence = caught.value.evidence
        assert (evidence.checkpoint1, evidence.checkpoint2) == (saved["checkpoint"].encode(), note)
        assert replica.size == 2  # the refused run changed nothing
        forked = LedgerClient(
            "http://testserver", key, http=app, trust_state=TrustState.from_json(saved, key)
        )
        with pytest.raises(SplitViewError) as refused:
            forked.precedent()
        assert refused.value.evidence == (saved["checkpoint"].encode(), note)


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
