"""Health that tells the truth: ``/readyz`` checks every dependency afresh (a real full disk, a
log key gone, damage found), ``/healthz`` stays about the process, and ``/metrics`` exports each
readiness check.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ledger.errors import FatalError
from ledger.tlog.note import Signer
from tests.api_support import TestLog, make_log

CHECKS = {"database", "checkpoint", "integrity", "last_write", "disk", "signer", "read_side"}


def _ready_when_warm(client: TestClient) -> dict[str, object]:
    """/readyz once the read side has warmed up (a fresh app replays the log in the
    background)."""
    deadline = time.monotonic() + 20
    while True:
        body: dict[str, Any] = client.get("/readyz").json()
        if body["checks"]["read_side"]["ok"] or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def test_a_sound_server_is_ready_with_every_check(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    with TestClient(create_app(log.settings())) as client:
        body = _ready_when_warm(client)
        assert body["status"] == "ready", body
        checks = body["checks"]
        assert isinstance(checks, dict) and set(checks) == CHECKS
        assert all(c["ok"] for c in checks.values()), checks
        assert body["read_lag_entries"] == 0 and isinstance(body["disk_free_bytes"], int)
        metrics = client.get("/metrics").text
        for check in CHECKS:
            assert f'amnesty_ready{{check="{check}"}} 1.0' in metrics, check
        assert "amnesty_disk_free_bytes" in metrics


def test_readiness_fails_when_the_log_key_is_gone_and_on_too_little_disk(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    with TestClient(create_app(log.settings(min_free_disk_bytes=1 << 62))) as client:
        _ready_when_warm(client)
        os.rename(log.key_path, tmp_path / "moved.key")
        response = client.get("/readyz")
        assert response.status_code == 503 and "Retry-After" in response.headers
        checks = response.json()["checks"]
        assert not checks["signer"]["ok"] and "moved" not in checks["signer"]["detail"]
        assert not checks["disk"]["ok"] and "bytes free" in checks["disk"]["detail"]
        assert checks["database"]["ok"] and checks["checkpoint"]["ok"]
        assert 'amnesty_ready{check="signer"} 0.0' in client.get("/metrics").text
        # Liveness is about the process, which is sound.
        assert client.get("/healthz").status_code == 200


def test_damage_fails_health_and_readiness(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    with TestClient(create_app(log.settings())) as client:
        _ready_when_warm(client)
        service = client.app.state.service  # type: ignore[attr-defined]
        service.stop_writing(FatalError("entry 1 does not hash to its tile (a test)"))
        health = client.get("/healthz")
        assert health.status_code == 503 and "a test" in " ".join(health.json()["reasons"])
        ready = client.get("/readyz").json()
        assert ready["status"] == "not ready"
        assert not ready["checks"]["integrity"]["ok"]
        assert "a test" in ready["checks"]["integrity"]["detail"]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 6 MiB file system (tmpfs), which the test fills up. Mounting needs root, as on
    CI; elsewhere the test is skipped, saying so."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system to fill needs root (CI runs as root)")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder: Path) -> Path:
    """Fill the file system of ``folder`` to the last byte; return the filler file."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as out:
        for size in (1 << 20, 65536, 4096, 1):
            try:
                while True:
                    out.write(b"\0" * size)
            except OSError:
                pass
    return filler


def test_a_full_disk_fails_readiness_while_writes_fail_and_recovers(
    small_disk: Path, tmp_path: Path
) -> None:
    """The SQLite log on a real file system that fills up: submissions are answered 503 (never
    500, nothing half-written), ``/readyz`` fails naming the failed write and the disk, the
    process stays live; once space is freed the next submission commits and it is ready."""
    (tmp_path / "log").mkdir()
    log: TestLog = make_log(tmp_path / "log")
    shutil.copy(tmp_path / "log" / "log.db", small_disk / "log.db")
    log.url = f"sqlite:///{small_disk / 'log.db'}"
    ais = [Signer.from_seed(f"disk-{i}.ai.example", bytes([i + 1]) * 32) for i in range(40)]
    settings = log.settings(min_free_disk_bytes=256 * 1024)
    with TestClient(create_app(settings)) as client:
        assert _ready_when_warm(client)["status"] == "ready"
        assert client.post("/v1/statements", content=log.application(ais[0], "A0")).status_code
        filler = _fill(small_disk)
        statuses = [
            client.post("/v1/statements", content=log.application(ai, f"A{i}")).status_code
            for i, ai in enumerate(ais[1:20], start=1)
        ]
        assert 500 not in statuses and 503 in statuses, statuses
        ready = client.get("/readyz")
        assert ready.status_code == 503, ready.json()
        checks = ready.json()["checks"]
        assert not checks["last_write"]["ok"] and "full" in checks["last_write"]["detail"]
        assert not checks["disk"]["ok"]
        assert client.get("/healthz").status_code == 200
        assert "amnesty_write_failing 1.0" in client.get("/metrics").text
        filler.unlink()
        recovered = client.post("/v1/statements", content=log.application(ais[30], "A30"))
        assert recovered.status_code == 201, recovered.text
        assert client.get("/readyz").status_code == 200


def test_every_row_of_the_failure_matrix_names_a_test_that_exists() -> None:
    """docs/OPERATIONS.md's failure matrix: each row names at least one test, and each named
    test is a test function of that file."""
    import ast
    import re

    from tests.livelog import REPO

    doc = (REPO / "docs" / "OPERATIONS.md").read_text(encoding="utf-8")
    matrix = doc[doc.index("## Failure matrix") :]
    rows = [line for line in matrix.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) > 15, rows
    for row in rows[1:]:
        named = re.findall(r"`(test_\w+\.py)::(test_\w+)`", row)
        assert named, f"a row names no test: {row}"
        for file, test in named:
            tree = ast.parse((REPO / "tests" / file).read_text(encoding="utf-8"))
            functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
            assert test in functions, f"{file}::{test} (named in docs/OPERATIONS.md) not found"
