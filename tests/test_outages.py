"""Database outages, as an operator meets them: a private PostgreSQL stopped, restarted, frozen
(SIGSTOP) and thawed under load, and a writer frozen while it holds the write lock — against a
real ``amnesty serve`` process.

What must hold: every request is answered within the configured bound (no hang), with a success
or a 503 problem carrying ``Retry-After`` (never a 500); the same process serves again, without
a restart, within seconds of the database's return; and no statement whose receipt was sent is
missing from the log afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ledger.storage.sql import SqlLogStore
from tests.livelog import REPO, Attester, Server, amnesty
from tests.private_pg import PrivatePostgres

BOUND_S = 3.0
"""AMNESTY_REQUEST_TIMEOUT_S for these servers: every answer must come within it (+ slack)."""
SLACK_S = 1.5
SETTLE_S = 1.0
"""After the database is back and /readyz passes, requests already waiting (abandoned ones, a
batch on a connection the outage broke) settle within this; only then must everything succeed."""
TIMEOUTS = {
    "AMNESTY_REQUEST_TIMEOUT_S": str(BOUND_S),
    "AMNESTY_DB_CONNECT_TIMEOUT_S": "1",
    "AMNESTY_DB_STATEMENT_TIMEOUT_S": "2",
    "AMNESTY_DB_LOCK_TIMEOUT_S": "1",
    "AMNESTY_DB_IDLE_IN_TRANSACTION_TIMEOUT_S": "3",
}
READS = ("/checkpoint", "/tile/0/000.p/{size}", "/v1/entries?limit=5", "/healthz", "/readyz")


@dataclass(frozen=True)
class Answer:
    phase: str
    what: str
    status: int  # 0: no answer (transport error or client timeout)
    seconds: float
    retry_after: bool
    statement_id: bytes | None = None


class Load:
    """Readers and a submitter hammering a server from threads, recording every answer."""

    def __init__(self, server: Server, db: str, origin: str) -> None:
        self.server = server
        self.attester = Attester(db, origin)
        self.attester_lock = threading.Lock()
        self.phase = "baseline"
        self.answers: list[Answer] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.size = 12
        self.threads = [
            threading.Thread(target=self._reader, args=(i,), daemon=True) for i in range(3)
        ] + [threading.Thread(target=self._writer, daemon=True) for _ in range(2)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(BOUND_S + 10)

    def _record(self, answer: Answer) -> None:
        with self.lock:
            self.answers.append(answer)

    def _call(self, client: httpx.Client, method: str, path: str, body: bytes | None) -> Answer:
        phase = self.phase
        started = time.monotonic()
        try:
            response = client.request(method, self.server.url + path, content=body)
            status = response.status_code
            retry = "retry-after" in response.headers
        except httpx.HTTPError:
            status, retry = 0, False
        return Answer(phase, f"{method} {path}", status, time.monotonic() - started, retry)

    def _reader(self, offset: int) -> None:
        with httpx.Client(timeout=BOUND_S + 10) as client:
            turn = offset
            while not self.stop.is_set():
                path = READS[turn % len(READS)].format(size=self.size % 256 or 1)
                self._record(self._call(client, "GET", path, None))
                turn += 1
                time.sleep(0.02)

    def _writer(self) -> None:
        with httpx.Client(timeout=BOUND_S + 10) as client:
            while not self.stop.is_set():
                with self.attester_lock:
                    note = self.attester.next(uuid.uuid4().hex[:8])
                answer = self._call(client, "POST", "/v1/statements", note)
                statement_id = None
                if answer.status in (200, 201):
                    statement_id = entry_statement_id_of(note)
                self._record(
                    Answer(
                        answer.phase,
                        answer.what,
                        answer.status,
                        answer.seconds,
                        answer.retry_after,
                        statement_id,
                    )
                )
                time.sleep(0.05)

    def of(self, phase: str) -> list[Answer]:
        with self.lock:
            return [a for a in self.answers if a.phase == phase]


def entry_statement_id_of(note: bytes) -> bytes:
    import hashlib

    text = note.decode().rsplit("\n\n", 1)[0] + "\n"
    return hashlib.sha256(text.encode()).digest()


def assert_bounded(answers: list[Answer], phase: str) -> None:
    """Every answer of ``phase`` came within the bound, as a success or a 503 with
    Retry-After; at least one was a 503 (the outage was seen)."""
    assert answers, f"no request was answered during {phase}"
    slow = [a for a in answers if a.seconds > BOUND_S + SLACK_S]
    assert not slow, f"{phase}: answers past the {BOUND_S} s bound: {slow[:5]}"
    wrong = [a for a in answers if a.status not in (200, 201, 503)]
    assert not wrong, f"{phase}: answers other than 2xx/503: {wrong[:5]}"
    bare = [a for a in answers if a.status == 503 and not a.retry_after]
    assert not bare, f"{phase}: 503 without Retry-After: {bare[:5]}"
    assert any(a.status == 503 for a in answers), f"{phase}: no 503 seen: {answers[:5]}"


def wait_ready(server: Server, within: float) -> float:
    """Seconds until ``/readyz`` answers 200 and a submission could be made; fails after
    ``within``."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        try:
            if httpx.get(server.url + "/readyz", timeout=BOUND_S + 2).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the server was not ready {within} s after the database returned")


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres()
    pg.start()
    try:
        yield pg
    finally:
        pg.remove()


@pytest.fixture
def bounded_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in TIMEOUTS.items():
        monkeypatch.setenv(name, value)


def demo_on(url: str, folder: Path) -> str:
    """``amnesty demo`` on an empty database (it creates the log); its origin."""
    amnesty("demo", "--db", url, "--keys", str(folder / "keys"))
    store = SqlLogStore(url)
    try:
        return store.identity().origin
    finally:
        store.close()


def logged(url: str, statement_ids: list[bytes]) -> list[bytes]:
    """Which of ``statement_ids`` are in the log at ``url``."""
    store = SqlLogStore(url)
    try:
        return [s for s in statement_ids if store.find_statement(s) is not None]
    finally:
        store.close()


def test_postgresql_stopped_and_frozen_under_load(
    private_pg: PrivatePostgres, bounded_env: None, tmp_path: Path
) -> None:
    """PostgreSQL stopped, then restarted; frozen (SIGSTOP), then thawed: only 2xx or 503
    with Retry-After within the bound; the same process recovers by itself; nothing
    acknowledged is lost."""
    url = private_pg.create_database("outage")
    origin = demo_on(url, tmp_path)
    server = Server(url, tmp_path / "server.log")
    server.start()
    try:
        with Load(server, url, origin) as load:
            time.sleep(1.0)
            baseline = load.of("baseline")
            assert any(a.status == 201 for a in baseline), baseline[:5]
            assert all(a.status in (200, 201) for a in baseline), baseline[:5]

            load.phase = "stopped"
            private_pg.stop()
            time.sleep(BOUND_S + 2)
            load.phase = "restarting"
            private_pg.start()
            recovered_after_restart = wait_ready(server, 20)
            time.sleep(SETTLE_S)
            load.phase = "after restart"
            time.sleep(2.0)

            load.phase = "frozen"
            private_pg.freeze()
            time.sleep(BOUND_S + 2)
            load.phase = "thawing"
            private_pg.thaw()
            recovered_after_thaw = wait_ready(server, 20)
            time.sleep(SETTLE_S)
            load.phase = "after thaw"
            time.sleep(2.0)
        assert server.process is not None and server.process.poll() is None, "server died"
        assert_bounded(load.of("stopped"), "stopped")
        assert_bounded(load.of("frozen"), "frozen")
        # While the database is down the process is live (a restart would not help) and not
        # ready (a load balancer sends it nothing). The first probes may still see the last
        # moment before the stop.
        stopped = load.of("stopped")[5:]
        assert {a.status for a in stopped if a.what == "GET /healthz"} <= {200}, stopped
        assert {a.status for a in stopped if a.what == "GET /readyz"} <= {503}, stopped
        for phase in ("after restart", "after thaw"):
            # Recovered: submissions are logged again and nearly everything succeeds. A write
            # may still meet a latency spike (an fsync on a busy disk) past the bound: it is
            # then a 503 with Retry-After like any other, never a 500 or a hang.
            answers = load.of(phase)
            log = server.log_path.read_text()[-3000:]
            assert any(a.status == 201 for a in answers), (phase, answers[:5], log)
            ok = [a for a in answers if a.status in (200, 201)]
            assert len(ok) >= 0.8 * len(answers), (phase, answers[:10], log)
            slow = [a for a in answers if a.seconds > BOUND_S + SLACK_S]
            wrong = [
                a
                for a in answers
                if a.status not in (200, 201, 503) or not (a.status != 503 or a.retry_after)
            ]
            assert not slow and not wrong, (phase, slow[:5], wrong[:5], log)
        acknowledged = [a.statement_id for a in load.answers if a.statement_id is not None]
        assert acknowledged
        missing = set(acknowledged) - set(logged(url, acknowledged))
        assert not missing, f"{len(missing)} acknowledged statements are not in the log"
        print(
            f"recovered {recovered_after_restart:.1f} s after restart, "
            f"{recovered_after_thaw:.1f} s after thaw; {len(load.answers)} answers"
        )
    finally:
        server.stop()


LOCK_HOLDER = """
import sys, time
from ledger.storage.engine import StorageTimeouts
from ledger.storage.sql import SqlLogStore
# Another amnesty writer: the same store, the same bounds as the server under test.
store = SqlLogStore(sys.argv[1], timeouts=StorageTimeouts(lock_s=1, idle_in_transaction_s=3))
with store.append_transaction() as tx:
    tx.checkpoint()
    print("locked", flush=True)
    time.sleep(3600)
"""


def hold_write_lock(url: str) -> subprocess.Popen[str]:
    """A writer process (the store's own append transaction, with the test's bounds) that
    takes the log's write lock, then is frozen (SIGSTOP) holding it."""
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, url],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    holder.send_signal(signal.SIGSTOP)
    return holder


def submit_for(server: Server, attester: Attester, seconds: float) -> list[Answer]:
    answers = []
    end = time.monotonic() + seconds
    with httpx.Client(timeout=BOUND_S + 10) as client:
        while time.monotonic() < end:
            started = time.monotonic()
            note = attester.next(uuid.uuid4().hex[:8])
            try:
                response = client.post(server.url + "/v1/statements", content=note)
                status, retry = response.status_code, "retry-after" in response.headers
            except httpx.HTTPError:
                status, retry = 0, False
            answers.append(Answer("locked", "POST", status, time.monotonic() - started, retry))
    return answers


def test_frozen_lock_holder_on_postgresql_stalls_no_writer_past_the_bound(
    private_pg: PrivatePostgres, bounded_env: None, tmp_path: Path
) -> None:
    """A process frozen while holding the write lock: submissions are answered 503 within the
    bound while it holds it, and PostgreSQL ends its idle transaction (releasing the lock)
    after ``AMNESTY_DB_IDLE_IN_TRANSACTION_TIMEOUT_S``, so writes succeed again while it is
    still frozen."""
    url = private_pg.create_database("locked")
    origin = demo_on(url, tmp_path)
    server = Server(url, tmp_path / "server.log")
    server.start()
    holder = hold_write_lock(url)
    try:
        attester = Attester(url, origin)
        during = submit_for(server, attester, 2.0)
        assert_bounded(during, "lock held")
        time.sleep(3.0)  # the idle-in-transaction timeout ends the frozen session
        after = submit_for(server, attester, 1.5)
        assert after and all(a.seconds < BOUND_S + SLACK_S for a in after), after[:5]
        assert any(a.status == 201 for a in after), after[:5]
        assert holder.poll() is None, "the holder is still frozen, not dead"
    finally:
        holder.kill()
        holder.wait(10)
        server.stop()


def test_frozen_lock_holder_on_sqlite_stalls_no_writer_past_the_bound(
    bounded_env: None, tmp_path: Path
) -> None:
    """SQLite cannot take a lock from a frozen process: while it holds the write lock every
    submission is answered 503 with Retry-After within the bound (a bounded busy wait, not a
    60 s one), reads are served, and writes succeed as soon as the holder is gone."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    origin = demo_on(url, tmp_path)
    server = Server(url, tmp_path / "server.log")
    server.start()
    holder = hold_write_lock(url)
    try:
        attester = Attester(url, origin)
        during = submit_for(server, attester, 2.5)
        assert_bounded(during, "lock held")
        assert httpx.get(server.url + "/checkpoint", timeout=BOUND_S + 2).status_code == 200
        holder.kill()
        holder.wait(10)
        after = submit_for(server, attester, 1.0)
        assert any(a.status == 201 for a in after), after[:5]
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
        server.stop()
