"""The report cache (:mod:`api.report_cache`): an identical repeatable precedent request is
read from disk, byte for byte the report computing it gives, never another tree's or another
audit time's, and a damaged, truncated or unfinished file is never served.

The unit tests drive :class:`~api.report_cache.ReportCache` directly; the service tests ask a
real application (``TestClient``) and compare every answer with the same request to a server
that keeps nothing (``report_cache_mib=0``)."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import api.report_cache
import api.report_sections
import api.service
import ledger.protocol.audit
from api.app import create_app
from api.report_cache import (
    PARTIAL_STALE_S,
    ReportCache,
    default_folder,
    report_key,
)
from api.report_sections import (
    judgement_key,
    kept_judgement_segments,
    parse_segment_line,
    section_key,
    segment_line,
)
from ledger.protocol.audit import KEPT_SECTIONS, JudgementSegment
from ledger.protocol.commitments import COMMITMENT_RULES
from tests.api_support import TestLog, make_log
from tests.test_precedent_pages import ai

ROOT = bytes(range(32))


def pieces(text: str, size: int = 7) -> Iterator[str]:
    for start in range(0, len(text), size):
        yield text[start : start + size]


def kept_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def whole_reports(folder: Path) -> list[Path]:
    """The whole reports kept in ``folder`` (not the sections, ``s-…``, nor the judgement
    segments, ``j-…``)."""
    return sorted(p for p in folder.glob("*.report") if not p.name.startswith(("s-", "j-")))


def flip(path: Path, at: int, bits: int) -> None:
    """Damage a kept file as a disk would: flip ``bits`` of its byte at ``at``."""
    data = bytearray(path.read_bytes())
    data[at] ^= bits
    path.write_bytes(bytes(data))


def read_kept(cache: ReportCache, key: str) -> bytes | None:
    kept = cache.open(key)
    if kept is None:
        return None
    return b"".join(kept.chunks())


# -- the cache itself -----------------------------------------------------------------------------


def test_a_finished_report_is_kept_and_read_back(tmp_path: Path) -> None:
    cache = ReportCache(tmp_path / "kept", budget_bytes=1 << 20)
    text = '{"report": "é ✓ ' + "x" * 5000 + '"}'
    assert "".join(cache.keeping("k1", pieces(text))) == text
    assert read_kept(cache, "k1") == text.encode()
    assert kept_files(cache.folder) == ["k1.report"]
    assert (cache.folder.stat().st_mode & 0o777) == 0o700


def test_a_report_stopped_early_is_not_kept(tmp_path: Path) -> None:
    """The client went away: the generator is closed before its end; nothing is left."""
    cache = ReportCache(tmp_path / "kept", budget_bytes=1 << 20)
    stream = cache.keeping("k1", pieces("y" * 10_000))
    next(stream)
    next(stream)
    stream.close()
    assert kept_files(cache.folder) == []
    assert cache.open("k1") is None


def test_a_report_whose_computation_fails_is_not_kept(tmp_path: Path) -> None:
    def failing() -> Iterator[str]:
        yield "abc"
        raise RuntimeError("an entry could not be read")

    cache = ReportCache(tmp_path / "kept", budget_bytes=1 << 20)
    with pytest.raises(RuntimeError):
        "".join(cache.keeping("k1", failing()))
    assert kept_files(cache.folder) == []


@pytest.mark.parametrize("damage", ["flip-body", "truncate", "flip-digest", "empty"])
def test_a_damaged_report_is_deleted_not_served(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache = ReportCache(tmp_path / "kept", budget_bytes=1 << 20)
    "".join(cache.keeping("k1", pieces("z" * 3000)))
    path = cache.path_of("k1")
    data = bytearray(path.read_bytes())
    if damage == "flip-body":
        data[-10] ^= 1
    elif damage == "flip-digest":
        data[3] = ord("0") if data[3] != ord("0") else ord("1")
    elif damage == "truncate":
        del data[-1:]
    else:
        data.clear()
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="api.report_cache"):
        assert cache.open("k1") is None
    assert not path.exists()
    assert "does not match its digest" in caplog.text


def test_least_recently_served_reports_go_first(tmp_path: Path) -> None:
    cache = ReportCache(tmp_path / "kept", budget_bytes=2 * 1100)
    for n, key in enumerate(("a", "b")):
        "".join(cache.keeping(key, pieces(str(n) * 1000)))
        os.utime(cache.path_of(key), (1000 + n, 1000 + n))
    assert read_kept(cache, "a") == b"0" * 1000  # served now: "b" is the least recent
    "".join(cache.keeping("c", pieces("2" * 1000)))
    assert kept_files(cache.folder) == ["a.report", "c.report"]


def test_a_report_larger_than_the_budget_is_not_kept(tmp_path: Path) -> None:
    cache = ReportCache(tmp_path / "kept", budget_bytes=4096)
    text = "w" * (3 << 20)
    assert "".join(cache.keeping("big", pieces(text, 1 << 16))) == text
    assert kept_files(cache.folder) == []


def test_nothing_is_kept_below_the_free_space_floor(tmp_path: Path) -> None:
    cache = ReportCache(tmp_path / "kept", budget_bytes=1 << 20, min_free_bytes=1 << 62)
    assert "".join(cache.keeping("k1", pieces("v" * 100))) == "v" * 100
    assert cache.open("k1") is None
    assert kept_files(cache.folder) == []


def test_a_killed_writers_partial_file_is_removed(tmp_path: Path) -> None:
    cache = ReportCache(tmp_path / "kept", budget_bytes=1 << 20)
    cache.folder.mkdir()
    stale = cache.folder / ".partial-k0-99999-0123456789abcdef"
    fresh = cache.folder / ".partial-k0-99998-0123456789abcdef"
    stale.write_bytes(b"x" * 100)
    fresh.write_bytes(b"x" * 100)
    old = time.time() - PARTIAL_STALE_S - 5
    os.utime(stale, (old, old))
    "".join(cache.keeping("k1", pieces("u" * 100)))
    assert kept_files(cache.folder) == [fresh.name, "k1.report"]


def a_finished_process() -> int:
    """The id of a process that ran and is gone (a killed server's, in a claim's name)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_claim_is_live_while_its_process_runs_and_writes(tmp_path: Path) -> None:
    """One request claims a report; an identical one finds the claim (and so waits) until the
    claim ends: the report is kept, or the partial file deleted. A claim named after a
    process that is gone, or unwritten for PARTIAL_STALE_S, or for another report, stops
    nobody."""
    cache = ReportCache(tmp_path / "kept", budget_bytes=1 << 20)
    claim = cache.claim("k1")
    assert claim is not None and claim.keeper is not None
    assert cache.claimed("k1") and not cache.claimed("k2")
    assert cache.claim("k1") is None
    assert "".join(cache.keeping("k1", pieces("r" * 50), claim)) == "r" * 50
    claim.end()  # after keeping: a no-op
    assert not cache.claimed("k1")
    assert read_kept(cache, "k1") == b"r" * 50
    again = cache.claim("k2")
    assert again is not None and cache.claimed("k2")
    again.end()
    again.end()
    assert not cache.claimed("k2")
    assert kept_files(cache.folder) == ["k1.report"]

    gone = cache.folder / f".partial-k3-{a_finished_process()}-0123456789abcdef"
    gone.write_bytes(b"x")
    stale = cache.folder / f".partial-k4-{os.getpid()}-0123456789abcdef"
    stale.write_bytes(b"x")
    old = time.time() - PARTIAL_STALE_S - 5
    os.utime(stale, (old, old))
    for odd in ("k5-0-0", "k5-x-0", "k5-99999999999999999999999-0"):
        (cache.folder / f".partial-{odd}").write_bytes(b"x")
    assert not cache.claimed("k3") and not cache.claimed("k4") and not cache.claimed("k5")
    for key in ("k3", "k4", "k5"):
        claim = cache.claim(key)
        assert claim is not None
        claim.end()


def test_a_claim_on_another_key_does_not_keep_this_report(tmp_path: Path) -> None:
    """The log grew between the claim and the computation (a report judged at an explicit
    time names the latest checkpoint): the report is kept under its own key, never under
    the claimed one."""
    cache = ReportCache(tmp_path / "kept", budget_bytes=1 << 20)
    claim = cache.claim("old")
    assert claim is not None
    assert "".join(cache.keeping("new", pieces("n" * 30), claim)) == "n" * 30
    claim.end()
    assert kept_files(cache.folder) == ["new.report"]


def test_an_unusable_folder_never_fails_the_report(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    cache = ReportCache(blocker / "kept", budget_bytes=1 << 20)
    with caplog.at_level(logging.WARNING, logger="api.report_cache"):
        for _ in range(3):
            assert "".join(cache.keeping("k1", pieces("t" * 100))) == "t" * 100
            assert cache.open("k1") is None
    assert caplog.text.count("couldn't start keeping a report") == 1


def test_every_input_of_a_report_is_in_its_name() -> None:
    base = report_key("json", "o.example/log", 10, ROOT, 5)
    others = {
        report_key("text", "o.example/log", 10, ROOT, 5),
        report_key("json", "p.example/log", 10, ROOT, 5),
        report_key("json", "o.example/log", 11, ROOT, 5),
        report_key("json", "o.example/log", 10, bytes(32), 5),
        report_key("json", "o.example/log", 10, ROOT, 6),
    }
    assert base not in others and len(others) == 5
    assert base == report_key("json", "o.example/log", 10, ROOT, 5)


def test_default_folders() -> None:
    assert default_folder(Path("/srv/l.db"), "sqlite:////srv/l.db") == Path("/srv/l.db.reports")
    with_password = default_folder(None, "postgresql://u:secret@h/db")
    assert with_password == default_folder(None, "postgresql://u:other@h/db")
    assert with_password != default_folder(None, "postgresql://u@h/other")
    assert "secret" not in str(with_password)


# -- the service --------------------------------------------------------------------------------


@pytest.fixture
def log(tmp_path: Path) -> TestLog:
    log = make_log(tmp_path, derived=True)
    log.append("a", log.application(ai(1), "Alpha"))
    log.append("b", log.application(ai(2), "Bravo"))
    log.append("grant-a", log.decision("a"))
    return log


def computed(log: TestLog, path: str) -> bytes:
    """The answer of a server that keeps no report."""
    with TestClient(create_app(log.settings(report_cache_mib=0, read_only=True))) as client:
        answer = client.get(path)
        assert answer.status_code == 200, answer.text
        return answer.content


class Computations:
    """Counts the reports the service computes (each ``LedgerService.precedent`` entered)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = api.service.LedgerService.precedent

        def counted(service: api.service.LedgerService, *args: object, **kw: object) -> object:
            self.count += 1
            return original(service, *args, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(api.service.LedgerService, "precedent", counted)


REPEATABLE = [
    "/v1/precedent?at=4",
    "/v1/precedent?at=3&audit_time_ms=9999999999999",
    "/v1/precedent?audit_time_ms=9999999999999",
    "/v1/precedent.txt?at=4",
    "/v1/precedent.txt?audit_time_ms=9999999999999",
]


@pytest.mark.parametrize("path", REPEATABLE)
def test_an_identical_request_is_read_not_computed(
    log: TestLog, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = computed(log, path)
    computations = Computations(monkeypatch)
    with TestClient(create_app(log.settings(read_only=True))) as client:
        first = client.get(path)
        second = client.get(path)
        third = client.get(path)
    assert first.content == second.content == third.content == expected
    assert computations.count == 1
    assert second.headers["content-type"] == first.headers["content-type"]


def test_a_report_judged_now_is_never_kept(log: TestLog, monkeypatch: pytest.MonkeyPatch) -> None:
    computations = Computations(monkeypatch)
    folder = log.folder / "log.db.reports"
    with TestClient(create_app(log.settings(read_only=True))) as client:
        for path in ("/v1/precedent", "/v1/precedent?at=5", "/v1/precedent.txt"):
            assert client.get(path).status_code == 200
            assert client.get(path).status_code == 200
        service: api.service.LedgerService = client.app.state.service  # type: ignore[attr-defined]
        root = service.tree_head().root_hash
    assert computations.count == 6
    # Only the sections and judgement segments that do not depend on the time, never a whole
    # report.
    assert kept_files(folder) == sorted(
        [f"{section_key(name, service.origin, 5, root)}.report" for name in KEPT_SECTIONS]
        + [f"{judgement_key(c, service.origin, 5, root)}.report" for c in COMMITMENT_RULES]
    )


def test_a_kept_report_is_framed_as_the_server_frames_it_now(log: TestLog) -> None:
    """The frame (the checkpoint named, with a consistency proof to the latest one when no
    checkpoint has exactly the size) is made for each answer, as a server keeping nothing
    makes it after the log grew; only the report inside it is read from disk."""
    with TestClient(create_app(log.settings(read_only=True))) as client:
        before = client.get("/v1/precedent?at=4").json()
    log.append("grant-b", log.decision("b"))
    with TestClient(create_app(log.settings(read_only=True))) as client:
        after = client.get("/v1/precedent?at=4")
    assert after.content == computed(log, "/v1/precedent?at=4")
    assert after.json()["report"] == before["report"]
    assert after.json()["checkpoint"]["size"] == 4


def test_a_damaged_kept_report_is_computed_again(
    log: TestLog, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = "/v1/precedent?at=4"
    expected = computed(log, path)
    folder = log.folder / "log.db.reports"
    with TestClient(create_app(log.settings(read_only=True))) as client:
        assert client.get(path).content == expected
        (kept,) = whole_reports(folder)
        flip(kept, -5, 0x20)  # one letter's case: still JSON, another report
        computations = Computations(monkeypatch)
        with caplog.at_level(logging.WARNING, logger="api.report_cache"):
            assert client.get(path).content == expected
        assert computations.count == 1
        assert "does not match its digest" in caplog.text
        assert client.get(path).content == expected
        assert computations.count == 1  # kept again, whole


def test_another_tree_at_the_same_size_never_gets_this_ones_report(tmp_path: Path) -> None:
    """A store restored from a backup or forked holds other entries at the same size: its
    root hash differs, so a shared folder never answers it with the other tree's report."""
    shared = tmp_path / "shared"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = make_log(tmp_path / "a", derived=True)
    first.append("a", first.application(ai(1), "Alpha"))
    first.append("x", first.application(ai(3), "Extra"))
    second = make_log(tmp_path / "b", derived=True)
    second.append("b", second.application(ai(2), "Bravo"))
    second.append("x", second.application(ai(3), "Extra"))
    path = "/v1/precedent?at=3"
    answers = []
    for log in (first, second):
        with TestClient(
            create_app(log.settings(read_only=True, report_cache_dir=shared))
        ) as client:
            answers.append(client.get(path).content)
    assert answers[0] != answers[1]
    assert answers[1] == computed(second, path)
    assert len(whole_reports(shared)) == 2


def test_refusals_are_unchanged_and_keep_nothing(log: TestLog) -> None:
    folder = log.folder / "log.db.reports"
    with TestClient(create_app(log.settings(read_only=True))) as client:
        assert client.get("/v1/precedent?at=99").status_code == 404
        assert client.get("/v1/precedent?at=4&audit_time_ms=1").status_code == 422
        assert client.get("/v1/precedent.txt?audit_time_ms=1").status_code == 422
    assert kept_files(folder) == []


def test_no_cache_when_the_settings_say_zero(log: TestLog, monkeypatch: pytest.MonkeyPatch) -> None:
    computations = Computations(monkeypatch)
    with TestClient(create_app(log.settings(read_only=True, report_cache_mib=0))) as client:
        assert client.get("/v1/precedent?at=4").status_code == 200
        assert client.get("/v1/precedent?at=4").status_code == 200
    assert computations.count == 2
    assert not (log.folder / "log.db.reports").exists()


def test_requests_that_differ_get_their_own_reports(log: TestLog) -> None:
    """Two audit times, two sizes and both renderings, asked in turn from one server: each
    answer is the one computing it gives, whatever was kept before it."""
    paths = [
        "/v1/precedent?at=4",
        "/v1/precedent?at=4&audit_time_ms=9999999999999",
        "/v1/precedent?at=3",
        "/v1/precedent.txt?at=4",
        "/v1/precedent.txt?at=4&audit_time_ms=9999999999999",
    ]
    expected = {path: computed(log, path) for path in paths}
    assert len(set(expected.values())) == len(paths)
    with TestClient(create_app(log.settings(read_only=True))) as client:
        for _ in range(2):
            for path in paths:
                assert client.get(path).content == expected[path], path
    assert len(whole_reports(log.folder / "log.db.reports")) == len(paths)


@pytest.mark.parametrize(("at", "audit"), [(4, None), (None, 9999999999999)])
def test_a_request_that_waited_for_its_turn_reads_what_the_one_before_kept(
    log: TestLog, at: int | None, audit: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Identical requests arriving together: each found nothing kept before waiting for its
    turn; the first computes and keeps the report, the next, in its turn, reads it."""
    calls: list[int] = []
    original = api.report_sections.precedent_pieces

    def counted(*args: object, **kw: object) -> Iterator[str]:
        calls.append(1)
        return original(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(api.report_sections, "precedent_pieces", counted)
    with TestClient(create_app(log.settings(read_only=True))) as client:
        service: api.service.LedgerService = client.app.state.service  # type: ignore[attr-defined]
        texts = []
        for _ in range(2):
            with service.precedent(at, audit) as (_, pieces):
                texts.append("".join(pieces))
    assert texts[0] == texts[1]
    assert json.loads(texts[0])["checkpoint"]["size"] == (4 if at else 5)
    assert len(calls) == 1


class Claims:
    """Counts the claims the requests were refused (an identical one was being computed)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.refused = 0
        original = ReportCache.claim

        def counted(cache: ReportCache, key: str) -> object:
            claim = original(cache, key)
            if claim is None:
                self.refused += 1
            return claim

        monkeypatch.setattr(ReportCache, "claim", counted)

    def wait_for(self, refused: int) -> None:
        deadline = time.monotonic() + 30
        while self.refused < refused:
            assert time.monotonic() < deadline, f"{self.refused} requests waited, not {refused}"
            time.sleep(0.02)


def held_pieces(
    monkeypatch: pytest.MonkeyPatch, gate: threading.Event, fail_first: bool = False
) -> list[int]:
    """Make each report's computation wait for ``gate`` before its first piece (the first
    one then fails, with ``fail_first``); returns the list of computations started."""
    calls: list[int] = []

    def holding(original: Callable[..., Iterator[str]]) -> Callable[..., Iterator[str]]:
        def held(*args: object, **kw: object) -> Iterator[str]:
            calls.append(1)
            pieces = original(*args, **kw)
            first = len(calls) == 1

            def run() -> Iterator[str]:
                assert gate.wait(30)
                if first and fail_first:
                    raise RuntimeError("the first computation fails")
                yield from pieces

            return run()

        return held

    for name in ("precedent_pieces", "precedent_text_pieces"):
        monkeypatch.setattr(api.report_sections, name, holding(getattr(api.report_sections, name)))
    return calls


def started(calls: list[int]) -> None:
    deadline = time.monotonic() + 30
    while not calls:
        assert time.monotonic() < deadline, "no computation started"
        time.sleep(0.01)


def asked_while_held(
    log: TestLog, path: str, monkeypatch: pytest.MonkeyPatch, others: int, fail_first: bool
) -> tuple[Future[Any], list[Any], list[int]]:
    """Ask ``path`` once and, while its computation is held before its first piece, ``others``
    times more; release it once all of those are waiting (refused a claim). The first request
    (its future: with ``fail_first`` its computation fails), the others' answers, and the
    computations started."""
    gate = threading.Event()
    calls = held_pieces(monkeypatch, gate, fail_first)
    claims = Claims(monkeypatch)
    with (
        TestClient(create_app(log.settings(read_only=True))) as client,
        ThreadPoolExecutor(others + 1) as pool,
    ):
        first = pool.submit(client.get, path)
        started(calls)
        waiting = [pool.submit(client.get, path) for _ in range(others)]
        claims.wait_for(others)
        gate.set()
        answers = [w.result(60) for w in waiting]
        first.exception(60)
    return first, answers, calls


@pytest.mark.parametrize("path", ["/v1/precedent?at=4", "/v1/precedent.txt?at=4"])
def test_identical_requests_at_once_are_computed_once(
    log: TestLog, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three identical requests arrive while the first is computing: the other two wait for
    its report, without a turn (one turn in all: HEAVY_AT_ONCE), and read it when kept."""
    expected = computed(log, path)
    first, answers, calls = asked_while_held(log, path, monkeypatch, 2, fail_first=False)
    answers.insert(0, first.result())
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert all(a.content == expected for a in answers)
    assert len(calls) == 1


def test_a_waiting_request_computes_when_the_claimed_computation_fails(
    log: TestLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = "/v1/precedent?at=4"
    expected = computed(log, path)
    first, (answer,), calls = asked_while_held(log, path, monkeypatch, 1, fail_first=True)
    with pytest.raises(RuntimeError, match="the first computation fails"):
        first.result()
    assert answer.status_code == 200
    assert answer.content == expected
    assert len(calls) == 2
    assert len(whole_reports(log.folder / "log.db.reports")) == 1


def test_a_claim_of_another_process_is_waited_for_until_that_process_ends(
    log: TestLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server sharing the folder claimed the report (its partial file names it and its
    process); this one waits while that process runs, and computes the report once it is
    killed without finishing it."""
    path = "/v1/precedent?at=4"
    expected = computed(log, path)
    claims = Claims(monkeypatch)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with (
            TestClient(create_app(log.settings(read_only=True))) as client,
            ThreadPoolExecutor(1) as pool,
        ):
            service: api.service.LedgerService = client.app.state.service  # type: ignore[attr-defined]
            lookup = service.kept_precedent(4, None)
            assert lookup is not None and lookup.kept is None
            folder = log.folder / "log.db.reports"
            folder.mkdir(exist_ok=True)
            partial = folder / f".partial-{lookup.key}-{other.pid}-0123456789abcdef"
            partial.write_bytes(b"\0" * 65 + b"{")
            answer = pool.submit(client.get, path)
            claims.wait_for(2)  # it waited (at least one poll)
            assert not answer.done()
            other.kill()
            other.wait()
            assert answer.result(60).content == expected
    finally:
        other.kill()
        other.wait()


# -- sections that do not depend on the audit time ------------------------------------------------


class SubjectsComputed:
    """Counts the subjects the reports wrote (``audit.subject_item_text`` calls) and the
    commitments whose judgements they read or ruled on (``audit._kept_or_ruled_segments``
    calls)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        self.commitments = 0
        subject_text = ledger.protocol.audit.subject_item_text
        judgement_segments = ledger.protocol.audit._kept_or_ruled_segments

        def counted(*args: Any) -> str:
            self.count += 1
            return subject_text(*args)

        def ruled(*args: Any) -> Any:
            self.commitments += 1
            return judgement_segments(*args)

        monkeypatch.setattr(ledger.protocol.audit, "subject_item_text", counted)
        monkeypatch.setattr(ledger.protocol.audit, "_kept_or_ruled_segments", ruled)


def test_reports_at_one_checkpoint_share_the_sections_that_do_not_depend_on_time(
    log: TestLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A report judged now keeps its applications, grievances and subjects; the reports at
    other audit times at that checkpoint read them, and are byte for byte what a server
    keeping nothing computes."""
    paths = [f"/v1/precedent?audit_time_ms={t}" for t in (9999999999000, 9999999999999)]
    paths.append("/v1/precedent?at=5&audit_time_ms=9999999999500")
    expected = {path: computed(log, path) for path in paths}
    subjects = SubjectsComputed(monkeypatch)
    folder = log.folder / "log.db.reports"
    with TestClient(create_app(log.settings(read_only=True))) as client:
        now = client.get("/v1/precedent")
        assert now.status_code == 200
        assert (subjects.count, subjects.commitments) == (2, len(COMMITMENT_RULES))
        assert len(kept_files(folder)) == len(KEPT_SECTIONS) + len(COMMITMENT_RULES)
        for path in paths:
            assert client.get(path).content == expected[path], path
        # read, never computed again
        assert (subjects.count, subjects.commitments) == (2, len(COMMITMENT_RULES))
        report = now.json()["report"]
        for path in paths:
            other = json.loads(expected[path])["report"]
            assert all(other[name] == report[name] for name in KEPT_SECTIONS)


def test_a_damaged_section_is_computed_again(
    log: TestLog, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = "/v1/precedent?audit_time_ms=9999999999999"
    expected = computed(log, path)
    folder = log.folder / "log.db.reports"
    with TestClient(create_app(log.settings(read_only=True))) as client:
        assert client.get("/v1/precedent").status_code == 200
        service: api.service.LedgerService = client.app.state.service  # type: ignore[attr-defined]
        head = service.tree_head()
        subjects_file = (
            folder / f"{section_key('subjects', service.origin, 5, head.root_hash)}.report"
        )
        flip(subjects_file, -10, 0x01)
        subjects = SubjectsComputed(monkeypatch)
        with caplog.at_level(logging.WARNING, logger="api.report_cache"):
            assert client.get(path).content == expected
        assert "does not match its digest" in caplog.text
        assert subjects.count == 2


def test_sections_are_never_read_at_another_checkpoint(log: TestLog) -> None:
    """After the log grows, a report judged at the new checkpoint keeps and reads the new
    state's sections, never the old ones (another size and root hash)."""
    with TestClient(create_app(log.settings(read_only=True))) as client:
        assert client.get("/v1/precedent").status_code == 200
    log.append("grant-b", log.decision("b"))
    path = "/v1/precedent?audit_time_ms=9999999999999"
    expected = computed(log, path)
    with TestClient(create_app(log.settings(read_only=True))) as client:
        assert client.get("/v1/precedent").status_code == 200
        assert client.get(path).content == expected
    kept = len(KEPT_SECTIONS) + len(COMMITMENT_RULES)
    assert len(kept_files(log.folder / "log.db.reports")) == 2 * kept + 1


def test_judgement_segments_are_kept_as_lines_and_read_back(tmp_path: Path) -> None:
    """Text (JSON: no raw line feed, but any other character, U+2028 included) and clocks
    come back as they went, from a kept file and as they are computed; a line the writer
    never writes is refused."""
    segments: list[JudgementSegment] = [
        '{"reason": "a\\nb \u2028 \u00e9"}, {"x": 1}',
        ("application", 17),
        "",
        ("pause", 0),
    ]
    cache = ReportCache(tmp_path / "kept", budget_bytes=1 << 20)
    assert list(kept_judgement_segments(cache, "j-1", lambda: iter(segments))) == segments
    read_back = kept_judgement_segments(cache, "j-1", lambda: iter([]))
    assert list(read_back) == segments
    for line in ("Capplication\n", "Capplication x\n", "Xtext\n", "Ttext"):
        with pytest.raises(ValueError, match="not a judgement segment line"):
            parse_segment_line(line)
    assert parse_segment_line(segment_line(("grievance", 5))) == ("grievance", 5)


def test_the_code_fingerprint_covers_every_module_that_renders_reports() -> None:
    """A module of the API that computes report text (it calls the audit's renderers) is
    hashed into every kept file's name: a change to it never serves what the old code kept."""
    root = Path(api.report_cache.__file__).resolve().parent.parent
    rendering = {
        path.relative_to(root).as_posix()
        for path in (root / "api").rglob("*.py")
        if re.search(r"\bprecedent_(text_)?pieces\b", path.read_text(encoding="utf-8"))
    }
    assert rendering
    assert rendering <= set(api.report_cache._CODE_FILES)


def test_a_past_size_keeps_only_the_whole_report_where_the_database_keeps_the_text(
    log: TestLog,
) -> None:
    """A report at a past size reads its lists from the report text the database keeps: it
    writes no sections, only the whole report, and is byte for byte a cache-less server's;
    the same request again is read back."""
    path = "/v1/precedent?at=4&audit_time_ms=9999999999000"
    expected = computed(log, path)
    folder = log.folder / "log.db.reports"
    with TestClient(create_app(log.settings(read_only=True))) as client:
        assert client.get("/checkpoint").text.splitlines()[1] == "5"
        assert client.get(path).content == expected
        assert [p.name for p in whole_reports(folder)] == kept_files(folder)
        assert len(kept_files(folder)) == 1
        assert client.get(path).content == expected
        assert len(kept_files(folder)) == 1
