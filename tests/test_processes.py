"""Processes that behave, as real ``amnesty serve`` processes: workers die with their supervisor,
SIGTERM drains and exits within its bound, and an empty database is a one-line error naming the
command that initialises it (``amnesty demo`` initialises it, on PostgreSQL as on SQLite).
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

import httpx
import psutil
import pytest

from ledger.storage.sql import SqlLogStore
from tests.livelog import Attester, Server, amnesty, make_demo_log
from tests.test_outages import entry_statement_id_of


def _children(server: Server) -> list[psutil.Process]:
    assert server.process is not None
    return psutil.Process(server.process.pid).children(recursive=True)


def _wait_gone(processes: list[psutil.Process], within: float) -> list[psutil.Process]:
    _, alive = psutil.wait_procs(processes, timeout=within)
    return alive


def test_killing_the_supervisor_leaves_nothing_serving(tmp_path: Path) -> None:
    """``kill -9`` of the ``serve --workers 2`` supervisor: every worker exits within seconds,
    and nothing answers on the port any more."""
    db = make_demo_log(tmp_path)
    server = Server(db, tmp_path / "server.log", extra=["--workers", "2"])
    server.start()
    workers: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 20
        while len(workers) < 2 and time.monotonic() < deadline:
            workers = [p for p in _children(server) if "python" in p.name().lower()]
            time.sleep(0.1)
        assert len(workers) >= 2, [p.cmdline() for p in _children(server)]
        server.kill9()
        alive = _wait_gone(workers, 10)
        assert not alive, f"workers still running after their supervisor died: {alive}"
        with pytest.raises(httpx.HTTPError):
            httpx.get(server.url + "/checkpoint", timeout=2)
    finally:
        for process in workers:
            if process.is_running():
                process.kill()


def test_sigterm_drains_submissions_and_exits_within_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM to ``serve --workers 2`` under a stream of submissions: the supervisor and its
    workers exit 0 within ``AMNESTY_SHUTDOWN_TIMEOUT_S`` (+ slack), and every statement whose
    receipt was sent is in the log."""
    monkeypatch.setenv("AMNESTY_SHUTDOWN_TIMEOUT_S", "3")
    db = make_demo_log(tmp_path)
    store = SqlLogStore(db)
    origin = store.identity().origin
    store.close()
    server = Server(db, tmp_path / "server.log", extra=["--workers", "2"])
    server.start()
    attester = Attester(db, origin)
    lock = threading.Lock()
    acknowledged: list[bytes] = []
    stop = threading.Event()

    def submit() -> None:
        with httpx.Client(timeout=15) as client:
            while not stop.is_set():
                with lock:
                    note = attester.next(uuid.uuid4().hex[:8])
                try:
                    response = client.post(server.url + "/v1/statements", content=note)
                except httpx.HTTPError:
                    continue
                if response.status_code in (200, 201):
                    with lock:
                        acknowledged.append(entry_statement_id_of(note))

    threads = [threading.Thread(target=submit, daemon=True) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.5)
        assert server.process is not None
        processes = [psutil.Process(server.process.pid), *_children(server)]
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(15)
        took = time.monotonic() - started
        assert code == 0, (code, server.log_path.read_text()[-2000:])
        assert took < 3 + 5, f"took {took:.1f} s to stop"
        assert not _wait_gone(processes, 5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(20)
        server.stop()
    assert acknowledged
    store = SqlLogStore(db)
    try:
        missing = [s for s in acknowledged if store.find_statement(s) is None]
    finally:
        store.close()
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged statements are lost"


def test_serve_on_an_empty_postgresql_database_names_the_init_command(pg_url: str) -> None:
    """``amnesty serve`` on an empty PostgreSQL database: one line naming ``amnesty init``,
    exit 1, no traceback."""
    result = amnesty("serve", "--db", pg_url, "--port", "1", check=False, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert any("amnesty init" in line and "no log here" in line for line in lines), lines
    assert len(lines) <= 3, lines


def test_demo_initialises_an_empty_postgresql_database(pg_url: str, tmp_path: Path) -> None:
    """``amnesty demo`` on an empty PostgreSQL database creates the demo log, as on SQLite."""
    amnesty("demo", "--db", pg_url, "--keys", str(tmp_path / "keys"))
    store = SqlLogStore(pg_url)
    try:
        assert store.read_entries(0, 1), "the demo log is empty"
    finally:
        store.close()
    assert os.path.exists(tmp_path / "keys" / "log.key")


def test_amnesty_read_only_in_the_environment_makes_serve_read_only(tmp_path: Path) -> None:
    """``AMNESTY_READ_ONLY=true`` applies without ``--read-only`` (docs/API.md, Settings),
    even when the log records a key file that could sign."""
    db = make_demo_log(tmp_path)
    server = Server(db, tmp_path / "server.log", env={"AMNESTY_READ_ONLY": "true"})
    server.start()
    try:
        attester = Attester(db, SqlLogStore(db).identity().origin)
        answer = httpx.post(server.url + "/v1/statements", content=attester.next("x"), timeout=10)
        assert answer.status_code == 503 and "read-only" in answer.json()["type"], answer.text
    finally:
        server.stop()
