"""An independent tlog-tiles client accepts the log this project serves.

The client is Go's reference transparency-log code (golang.org/x/mod/sumdb/note and
golang.org/x/mod/sumdb/tlog, from Debian's golang-golang-x-mod-dev, which scripts/setup
installs) driven by tests/interop/tlogclient.go over real HTTP against ``amnesty serve``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.storage.sql import SqlLogStore
from tests.livelog import REPO, make_demo_log, running

GOPATH = "/usr/share/gocode"


def build_client(out: Path) -> Path:
    go = shutil.which("go")
    if go is None or not Path(GOPATH, "src/golang.org/x/mod/sumdb/tlog").is_dir():
        pytest.fail("Go and golang-golang-x-mod-dev are required (scripts/setup installs them)")
    env = dict(
        os.environ, GOPATH=GOPATH, GO111MODULE="off", GOFLAGS="", GOCACHE=str(out / "gocache")
    )
    binary = out / "tlogclient"
    subprocess.run(
        [go, "build", "-o", str(binary), "tlogclient.go"],
        cwd=REPO / "tests" / "interop",
        env=env,
        check=True,
        capture_output=True,
    )
    return binary


def test_go_reference_client_verifies_the_served_log(tmp_path: Path) -> None:
    client = build_client(tmp_path)
    db = make_demo_log(tmp_path)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "ledger",
            "demo",
            "--db",
            db,
            "--keys",
            str(tmp_path / "keys"),
            "--scale",
            "700",
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    store = SqlLogStore(db)
    vkey = store.identity().log_vkey
    store.close()
    with running(db, tmp_path / "server.log") as server:
        result = subprocess.run(
            [str(client), server.url, vkey],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout and "size 715" in result.stdout, result.stdout


def test_go_reference_client_rejects_a_wrong_key(tmp_path: Path) -> None:
    client = build_client(tmp_path)
    db = make_demo_log(tmp_path)
    other = "demo.amnesty-ledger.example/log+5c08cdee+ASepmR3t1czP9HSyPj+UhkkAKd8hamn+wccot70EM84z"
    with running(db, tmp_path / "server.log") as server:
        result = subprocess.run(
            [str(client), server.url, other],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode != 0
    assert "checkpoint signature" in result.stderr or "vkey" in result.stderr
