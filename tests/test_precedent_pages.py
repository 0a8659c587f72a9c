"""The precedent in pages: ``GET /v1/precedent/applications`` and ``/v1/precedent/subjects``.

Walked with small limits, their pages concatenate to exactly the full report's ``applications``
and ``subjects``; a cursor taken before the log grew continues without repeating or skipping;
bad cursors and limits are 422 problems; and the client's iterators verify every page's head
and that its items follow the cursor (a lying server is caught)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api import wire
from api.app import create_app
from ledger.client.answers import PrecedentPage
from ledger.client.json_api import LedgerClient
from ledger.errors import MalformedError, ProofError, SignatureError, VerificationError
from ledger.protocol import audit
from ledger.protocol.audit import (
    applications_after,
    precedent_report,
    subjects_after,
    summary_totals,
)
from ledger.protocol.state import ProtocolState
from ledger.server.derived import replay_into
from ledger.storage.sql import SqlLogStore
from ledger.tlog.note import Signer, sign_note
from tests.api_support import TestLog, make_log
from tests.test_client import client_for, lying

BOTH_STATES = pytest.mark.parametrize(
    "log", [False, True], ids=["replayed", "derived"], indirect=True
)
"""Run a test on the log written without derived state and with it (the fixture ``log``)."""

APPS = "/v1/precedent/applications"
SUBJECTS = "/v1/precedent/subjects"


def ai(n: int) -> Signer:
    return Signer.from_seed(f"ai{n}.example", bytes([48 + n]) * 32)


@pytest.fixture
def log(tmp_path: Path, request: pytest.FixtureRequest) -> TestLog:
    """Genesis, offer, then four applicants: one granted, one denied who applies again, one
    open, one granted; five applications by four subjects (ids 2, 3, 6, 8). Written without
    derived state (the writing server backfills it when it starts: one flush point at the
    latest size, earlier sizes replayed from entry 0), and with it written at every size (the
    precedent's aggregates included), as a serving writer writes it (the tests marked
    ``BOTH_STATES``)."""
    log = make_log(tmp_path, derived=getattr(request, "param", False))
    log.append("a", log.application(ai(1), "Alpha"))  # 2
    log.append("b", log.application(ai(2), "Bravo"))  # 3
    log.append("grant-a", log.decision("a"))  # 4
    log.append("deny-b", log.decision("b", "deny"))  # 5
    log.append("c", log.application(ai(3), "Charlie"))  # 6
    log.append("b-again", log.application(ai(2), "Bravo, again"))  # 7
    log.append("d", log.application(ai(4), "Delta"))  # 8
    log.append("grant-d", log.decision("d"))  # 9
    return log


@pytest.fixture
def client(log: TestLog) -> Iterator[TestClient]:
    with TestClient(create_app(log.settings())) as client:
        yield client


def walk(client: TestClient, path: str, key: str, limit: int) -> list[dict[str, Any]]:
    """Every page of ``path`` from the first; checks each page's shape on the way."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        answer = client.get(path, params=params)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        model = (
            wire.PrecedentApplicationsPage if key == "applications" else wire.PrecedentSubjectsPage
        )
        model.model_validate(page)
        assert len(page[key]) <= limit
        items += page[key]
        cursor = page["next_cursor"]
        if cursor is None:
            assert page["next"] is None
            return items
        assert cursor == str(page[key][-1]["index" if key == "applications" else "subject_id"])
        assert page["next"] == f"{path}?cursor={cursor}&limit={limit}"


@BOTH_STATES
def test_pages_concatenate_to_the_full_report(client: TestClient) -> None:
    full = client.get("/v1/precedent").json()
    report = full["report"]
    assert len(report["applications"]) == 5 and len(report["subjects"]) == 4
    for limit in (1, 2, 3, 1000):
        assert walk(client, APPS, "applications", limit) == report["applications"], limit
        assert walk(client, SUBJECTS, "subjects", limit) == report["subjects"], limit
    page = client.get(APPS).json()  # default limit 100: one page
    assert page["checkpoint"] == full["checkpoint"]
    assert page["total"] == 5 and page["next_cursor"] is None
    assert page["audit_time_ms"] >= report["audit_time_ms"]
    subjects = client.get(SUBJECTS, params={"cursor": ""}).json()  # empty cursor: the first page
    assert subjects["total"] == 4 and subjects["subjects"] == report["subjects"]
    # Items are byte for byte the report's (same builder, keys sorted).
    assert json.dumps(page["applications"], sort_keys=True) == json.dumps(
        report["applications"], sort_keys=True
    )


def test_a_cursor_need_not_be_an_item_and_may_lie_beyond_the_tree(client: TestClient) -> None:
    report = client.get("/v1/precedent").json()["report"]
    # Subject ids are 2, 3, 6, 8: a cursor of 4 continues with 6.
    after4 = client.get(SUBJECTS, params={"cursor": "4"}).json()
    assert [s["subject_id"] for s in after4["subjects"]] == [6, 8]
    assert after4["subjects"] == report["subjects"][2:]
    beyond = client.get(APPS, params={"cursor": "123456"}).json()
    assert beyond["applications"] == [] and beyond["next_cursor"] is None


def test_a_cursor_taken_before_the_log_grew_continues(client: TestClient, log: TestLog) -> None:
    first = client.get(APPS, params={"limit": 2}).json()
    cursor = first["next_cursor"]
    assert cursor == "3" and first["checkpoint"]["size"] == 10
    subjects_first = client.get(SUBJECTS, params={"limit": 3}).json()
    assert subjects_first["next_cursor"] == "6"
    log.append("e", log.application(ai(5), "Echo"))  # 10
    log.append("deny-c", log.decision("c", "deny"))  # 11: changes an item after the cursor
    rest = client.get(APPS, params={"cursor": cursor, "limit": 2})
    assert rest.json()["checkpoint"]["size"] == 12
    items = list(first["applications"])
    next_cursor: str | None = cursor
    while next_cursor is not None:
        page = client.get(APPS, params={"cursor": next_cursor, "limit": 2}).json()
        items += page["applications"]
        next_cursor = page["next_cursor"]
    grown = client.get("/v1/precedent").json()["report"]
    assert [a["index"] for a in items] == [2, 3, 6, 7, 8, 10]
    assert items[2:] == grown["applications"][2:]  # the rest as it stands at the new head
    assert items[2]["outcome"] == "denied"
    subjects_rest = client.get(SUBJECTS, params={"cursor": "6"}).json()
    assert [s["subject_id"] for s in subjects_rest["subjects"]] == [8, 10]
    assert subjects_rest["subjects"] == grown["subjects"][3:]


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "abc"},
        {"cursor": "-1"},
        {"cursor": "1.5"},
        {"cursor": " 3"},
        {"cursor": "\u0663"},  # an Arabic-Indic digit: not an ASCII decimal
        {"cursor": "9007199254740992"},  # 2**53: beyond the largest entry index
        {"cursor": "1" * 17},
        {"cursor": "1" * 5000},
        {"limit": "0"},
        {"limit": "1001"},
        {"limit": "-5"},
        {"limit": "ten"},
    ],
)
@pytest.mark.parametrize("path", [APPS, SUBJECTS])
def test_bad_cursors_and_limits_are_422_problems(
    client: TestClient, path: str, params: dict[str, str]
) -> None:
    answer = client.get(path, params=params)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["status"] == 422 and problem["type"].endswith("/invalid-parameters")
    assert problem["detail"]


def test_the_limit_bounds_are_accepted(client: TestClient) -> None:
    assert len(client.get(APPS, params={"limit": 1}).json()["applications"]) == 1
    assert client.get(APPS, params={"limit": 1000}).status_code == 200
    largest = client.get(APPS, params={"cursor": "9007199254740991"})
    assert largest.status_code == 200 and largest.json()["applications"] == []


@BOTH_STATES
def test_the_core_pages_are_the_report_s_lists(client: TestClient, log: TestLog) -> None:
    """``applications_after`` and ``subjects_after`` over a state, for every cursor and limit."""
    store = SqlLogStore(log.url)
    try:
        state = ProtocolState()
        size = max(index for index, _ in log.entries.values()) + 1
        replay_into(state, store, log.log_signer.name, size)
    finally:
        store.close()
    checkpoint = {
        "origin": log.log_signer.name,
        "size": state.size,
        "root_hash_b64": "A" * 43 + "=",
    }
    report = precedent_report(state, checkpoint=checkpoint, audit_time_ms=2**52)
    for pager, key, name in (
        (applications_after, "index", "applications"),
        (subjects_after, "subject_id", "subjects"),
    ):
        expected = report[name]
        for after in (None, -1, 0, 2, 3, 5, 8, 9, 100):
            tail = [i for i in expected if after is None or i[key] > after]
            for limit in (1, 2, 4, 100):
                items, cursor = pager(state, after, limit)
                assert items == tail[:limit], (name, after, limit)
                assert cursor == (items[-1][key] if len(tail) > limit else None)
        with pytest.raises(ValueError, match="limit"):
            pager(state, None, 0)


def test_openapi_and_guides_document_the_pages(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path, model in ((APPS, "PrecedentApplicationsPage"), (SUBJECTS, "PrecedentSubjectsPage")):
        get = paths[path]["get"]
        schema = get["responses"]["200"]["content"]["application/json"]["schema"]
        assert schema["$ref"].endswith("/" + model)
        names = {p["name"] for p in get["parameters"]}
        assert names == {"cursor", "limit", "at"}
        assert "422" in get["responses"]
    assert APPS in paths["/v1/precedent/summary"]["get"]["description"]
    guide = client.get("/llms.txt").text
    assert "/v1/precedent/applications?cursor=&limit=" in guide
    assert "/v1/precedent/subjects?cursor=&limit=" in guide
    assert (Path(__file__).resolve().parents[1] / "docs" / "API.md").read_text().count(APPS) >= 2


# -- the client -----------------------------------------------------------------------------------


def honest(client: TestClient, log: TestLog) -> LedgerClient:
    return LedgerClient("http://testserver", log.log_signer.vkey, http=client)


@BOTH_STATES
def test_the_client_walks_every_page_and_verifies_each_head(
    client: TestClient, log: TestLog
) -> None:
    ledger = honest(client, log)
    report = ledger.precedent().report
    pages = list(ledger.iter_precedent_applications(limit=2))
    assert [len(p.items) for p in pages] == [2, 2, 1]
    assert [i for p in pages for i in p.items] == report["applications"]
    assert all(isinstance(p, PrecedentPage) and p.head.size == 10 for p in pages)
    assert all(p.head.root_hash == ledger.checkpoint().root_hash for p in pages)
    assert [p.next_cursor for p in pages] == ["3", "7", None] and pages[0].total == 5
    subjects = list(ledger.iter_precedent_subjects(limit=3))
    assert [i for p in subjects for i in p.items] == report["subjects"]
    one = ledger.precedent_subjects(cursor="3", limit=1)
    assert [s["subject_id"] for s in one.items] == [6] and one.next_cursor == "6"
    # Across log growth: the walk continues at the new head, checked consistent with the old.
    first = ledger.precedent_applications(limit=4)
    log.append("e", log.application(ai(5), "Echo"))
    rest = ledger.precedent_applications(first.next_cursor, limit=4)
    assert rest.head.size == 11 and ledger.checkpoint().size == 11
    assert [a["index"] for a in first.items + rest.items] == [2, 3, 6, 7, 8, 10]


def test_the_client_catches_a_page_at_a_forged_head(client: TestClient, log: TestLog) -> None:
    def forged_root(path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path == APPS:
            body["checkpoint"]["root_hash"] = "A" * 43 + "="
        return body

    with pytest.raises(ProofError):
        list(client_for(log, lying(client, forged_root)).iter_precedent_applications())

    impostor = Signer.from_seed(log.log_signer.name, b"9" * 32)

    def forged_note(path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path == SUBJECTS:
            text = body["checkpoint"]["checkpoint"].split("\n\n")[0] + "\n"
            body["checkpoint"]["checkpoint"] = sign_note(text, [impostor]).decode()
        return body

    with pytest.raises(SignatureError):
        list(client_for(log, lying(client, forged_note)).iter_precedent_subjects())


@pytest.mark.parametrize(
    ("lie", "caught"),
    [
        ("cursor-skips-ahead", "next_cursor"),
        ("reorder", "is not after"),
        ("replay-first-page", "is not after"),
        ("item-beyond-head", "inside the verified tree"),
        ("bad-schema", "couldn't read /v1/precedent/applications item"),
    ],
)
def test_the_client_catches_pages_that_do_not_follow_the_cursor(
    client: TestClient, log: TestLog, lie: str, caught: str
) -> None:
    def rewrite(path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path != APPS:
            return body
        items = body["applications"]
        if lie == "cursor-skips-ahead" and body["next_cursor"]:
            body["next_cursor"] = str(int(body["next_cursor"]) + 1000)
        elif lie == "reorder" and len(items) > 1:
            items.reverse()
        elif lie == "replay-first-page":
            first = client.get(APPS, params={"limit": 2}).json()
            body["applications"], body["next_cursor"] = first["applications"], "3"
        elif lie == "item-beyond-head" and items:
            items[-1]["index"] = 10_000
            if body["next_cursor"]:
                body["next_cursor"] = "10000"
        elif lie == "bad-schema" and items:
            items[0]["outcome"] = "pardoned"
        return body

    liar = client_for(log, lying(client, rewrite))
    with pytest.raises((VerificationError, MalformedError), match=caught):
        for _ in zip(range(20), liar.iter_precedent_applications(limit=2), strict=False):
            pass


SUMMARY = "/v1/precedent/summary"
YEAR_MS = 365 * 24 * 3600 * 1000


def _in_brief(report: dict[str, Any]) -> dict[str, Any]:
    """What the summary says of a full report: verdicts, first applicant, counts."""
    counts = report["counts"]
    return {
        "audit_time_ms": report["audit_time_ms"],
        "all_commitments_honoured": report["all_commitments_honoured"],
        "commitments": [(c["id"], c["status"], c["broken_at"]) for c in report["commitments"]],
        "first_applicant": report["first_applicant"],
        **summary_totals(counts),
    }


def _summary_in_brief(summary: dict[str, Any]) -> dict[str, Any]:
    return {
        **{key: summary[key] for key in summary if key not in ("checkpoint", "commitments")},
        "commitments": [(c["id"], c["status"], c["broken_at"]) for c in summary["commitments"]],
    }


@BOTH_STATES
def test_the_summary_at_any_size_and_time_is_the_full_reports_in_brief(
    client: TestClient,
) -> None:
    """``/v1/precedent/summary?at=&audit_time_ms=`` takes the full report's parameters with
    its defaults and says what that report says in brief, naming the same tree head: at every
    size of the log, judged then and a year later (clocks run out)."""
    latest = client.get("/v1/precedent").json()["checkpoint"]["size"]
    for size in range(1, latest):
        full = client.get("/v1/precedent", params={"at": size}).json()
        summary = client.get(SUMMARY, params={"at": size})
        assert summary.status_code == 200, summary.text
        wire.PrecedentSummary.model_validate(summary.json())
        assert summary.json()["checkpoint"] == full["checkpoint"]
        assert _summary_in_brief(summary.json()) == _in_brief(full["report"]), size
        later = {"at": size, "audit_time_ms": full["report"]["audit_time_ms"] + YEAR_MS}
        full_later = client.get("/v1/precedent", params=later).json()["report"]
        assert _summary_in_brief(client.get(SUMMARY, params=later).json()) == _in_brief(full_later)
    now = client.get(SUMMARY).json()
    judged = {"audit_time_ms": now["audit_time_ms"] + YEAR_MS}
    assert _summary_in_brief(client.get(SUMMARY, params=judged).json()) == _in_brief(
        client.get("/v1/precedent", params=judged).json()["report"]
    )


@BOTH_STATES
def test_the_summary_refuses_what_the_report_refuses(client: TestClient) -> None:
    """A size beyond the tree is 404, an audit time before the last entry's log time is 422
    ``refused``, a malformed parameter 422: each with the report's own answer."""
    latest = client.get(SUMMARY).json()["checkpoint"]["size"]
    beyond = client.get(SUMMARY, params={"at": latest + 1})
    assert (
        beyond.status_code
        == 404
        == client.get("/v1/precedent", params={"at": latest + 1}).status_code
    )
    early = client.get(SUMMARY, params={"audit_time_ms": 1})
    assert early.status_code == 422 and "precedes" in early.json()["detail"]
    early_past = client.get(SUMMARY, params={"at": 3, "audit_time_ms": 1})
    assert early_past.status_code == 422 and "precedes" in early_past.json()["detail"]
    for bad in ({"at": "-1"}, {"at": "x"}, {"audit_time_ms": "soon"}):
        assert client.get(SUMMARY, params=bad).status_code == 422, bad


@BOTH_STATES
def test_a_size_below_the_first_flush_point_is_no_missing_derived_state(
    client: TestClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Size 0 lies below every flush point and is replayed from entry 0 (nothing to replay):
    the operator is not told the log has no derived state (the writing server has written
    some: with every append, or by its backfill at start). A read-only server on a log that
    has none says so, once."""
    with caplog.at_level("DEBUG", logger="api.reader"):
        for path in (SUMMARY, "/v1/precedent"):
            answer = client.get(path, params={"at": 0})
            assert answer.status_code == 200, answer.text
    assert not [r for r in caplog.records if "has no derived state" in r.getMessage()]
    (tmp_path / "bare").mkdir()
    bare = make_log(tmp_path / "bare")
    with (
        caplog.at_level("INFO", logger="api.reader"),
        TestClient(create_app(bare.settings(read_only=True))) as reader,
    ):
        for size in (0, 1, 2):
            assert reader.get(SUMMARY, params={"at": size}).status_code == 200
    warned = [r for r in caplog.records if "has no derived state" in r.getMessage()]
    assert len(warned) == 1


def walk_at(client: TestClient, path: str, key: str, limit: int, at: int) -> list[dict[str, Any]]:
    """Every page of ``path`` at tree size ``at``, following each page's ``next``."""
    items: list[dict[str, Any]] = []
    url = f"{path}?at={at}&limit={limit}"
    while url is not None:
        answer = client.get(url)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert page["checkpoint"]["size"] == at
        assert len(page[key]) <= limit
        items += page[key]
        url = page["next"]
        assert url is None or url.startswith(f"{path}?at={at}&cursor=")
    return items


@BOTH_STATES
def test_pages_at_any_size_concatenate_to_the_report_at_that_size(
    client: TestClient, log: TestLog
) -> None:
    """The report's lists as they stood at every size of the log, walked a page at a time,
    are the full report's at that size (``/v1/precedent?at=SIZE``), with its audit time (the
    last entry's log time: every size is a past one once the log has grown)."""
    log.append("e", log.application(ai(5), "Echo"))  # 10: the latest is now 11
    sizes = range(1, 11)
    reports = {at: client.get("/v1/precedent", params={"at": at}).json() for at in sizes}
    for at in sizes:
        report = reports[at]["report"]
        for limit in (1, 3):
            assert walk_at(client, APPS, "applications", limit, at) == report["applications"]
            assert walk_at(client, SUBJECTS, "subjects", limit, at) == report["subjects"]
        page = client.get(SUBJECTS, params={"at": at}).json()
        assert page["audit_time_ms"] == report["audit_time_ms"]
        assert page["total"] == len(report["subjects"])
        assert page["checkpoint"]["root_hash"] == reports[at]["checkpoint"]["root_hash"]


@BOTH_STATES
def test_pages_at_a_size_refuse_what_the_report_refuses(client: TestClient) -> None:
    for path in (APPS, SUBJECTS):
        assert client.get(path, params={"at": 11}).status_code == 404
        for bad in ("-1", "x", str(2**53)):
            assert client.get(path, params={"at": bad}).status_code == 422
        empty = client.get(path, params={"at": 0}).json()
        assert empty["total"] == 0 and empty["next_cursor"] is None


@BOTH_STATES
def test_the_client_walks_pages_at_a_size_and_catches_another_size(
    client: TestClient, log: TestLog
) -> None:
    ledger = honest(client, log)
    at = 6
    report = ledger.precedent(at=at).report
    pages = list(ledger.iter_precedent_applications(limit=1, at=at))
    assert [i for p in pages for i in p.items] == report["applications"]
    assert all(p.head.size == at for p in pages)
    subjects = list(ledger.iter_precedent_subjects(limit=2, at=at))
    assert [i for p in subjects for i in p.items] == report["subjects"]

    def the_latest_instead(path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path == APPS:
            return dict(client.get(APPS).json())
        return body

    liar = client_for(log, lying(client, the_latest_instead))
    with pytest.raises(VerificationError, match="not the size 6 asked for"):
        liar.precedent_applications(at=at)


@BOTH_STATES
def test_a_page_of_subjects_ends_early_once_its_timelines_are_long(
    client: TestClient, log: TestLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a budget of 3 timeline events a page, pages hold fewer subjects than ``limit``
    asks (at least one each), every cursor continues after the page's last subject, and the
    pages still concatenate to the report's subjects, on the server and in the client."""
    monkeypatch.setattr(audit, "PAGE_TIMELINE_EVENTS", 3)
    report = client.get("/v1/precedent").json()["report"]
    assert walk(client, SUBJECTS, "subjects", 1000) == report["subjects"]
    first = client.get(SUBJECTS, params={"limit": 1000}).json()
    assert 1 <= len(first["subjects"]) < len(report["subjects"])
    assert sum(len(s["timeline"]) for s in first["subjects"][:-1]) < 3
    assert first["next_cursor"] == str(first["subjects"][-1]["subject_id"])
    pages = list(honest(client, log).iter_precedent_subjects(limit=1000))
    assert len(pages) > 1 and [i for p in pages for i in p.items] == report["subjects"]
