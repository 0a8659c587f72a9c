"""Helpers for tests that run real server processes against a demo log."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

from ledger.statements.demo import DemoAuthor, DemoKeys, Ref
from ledger.storage.sql import SqlLogStore
from ledger.tlog.merkle import leaf_hash

REPO = Path(__file__).resolve().parents[1]


def amnesty(
    *args: str, check: bool = True, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``amnesty ARGS`` as a process (``python -m ledger``) from the repository, in UTF-8;
    with ``check``, a non-zero exit fails the test with its stderr."""
    result = subprocess.run(
        [sys.executable, "-m", "ledger", *args],
        check=False,
        cwd=REPO,
        capture_output=True,
        encoding="utf-8",
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        input=stdin,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"amnesty {' '.join(args)} exited {result.returncode}: {result.stderr}"
        )
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_demo_log(folder: Path, url: str | None = None) -> str:
    """Create the demo log in ``folder`` (or at database ``url``); return its database URL."""
    url = url or f"sqlite:///{folder / 'ledger.db'}"
    subprocess.run(
        [sys.executable, "-m", "ledger", "demo", "--db", url, "--keys", str(folder / "keys")],
        check=True,
        cwd=REPO,
        capture_output=True,
    )
    return url


class Server:
    """An ``amnesty serve`` process on a loopback port."""

    def __init__(
        self,
        db: str,
        log_path: Path,
        *,
        read_only: bool = False,
        extra: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.db = db
        self.read_only = read_only
        self.extra = tuple(extra)
        self.env = dict(env or {})
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        env = dict(
            os.environ, AMNESTY_WRITE_RATE_PER_MINUTE="1000000", AMNESTY_WRITE_BURST="100000"
        )
        env.update(self.env)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ledger",
                    "serve",
                    "--db",
                    self.db,
                    "--port",
                    str(self.port),
                    "--log-level",
                    "warning",
                    *(["--read-only"] if self.read_only else []),
                    *self.extra,
                ],
                cwd=REPO,
                stdout=log,
                stderr=log,
                env=env,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.process.returncode}: {self.log_path.read_text()[-3000:]}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/checkpoint", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"server did not start: {self.log_path.read_text()[-3000:]}")

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@contextlib.contextmanager
def running(db: str, log_path: Path, *, read_only: bool = False) -> Iterator[Server]:
    server = Server(db, log_path, read_only=read_only)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Attester:
    """Makes a stream of valid, distinct attestation statements by the demo's first grantee."""

    def __init__(self, db: str, origin: str) -> None:
        store = SqlLogStore(db)
        entry = store.read_entries(2, 3)[0]  # the demo's first application (Prometheus-7)
        store.close()
        self.subject = Ref(2, leaf_hash(entry))
        keys = DemoKeys.deterministic()
        self.key = keys.subject("Prometheus-7")
        self.author = DemoAuthor(origin, keys, lambda datas: [], lambda: int(time.time() * 1000))
        self.period = int(time.time() * 1000) - 86_400_000

    def next(self, label: str) -> bytes:
        start = self.period
        self.period += 1
        body = self.author.attestation(self.subject, start, start + 1, f"Report {label}.")
        return self.author.by_subject(self.key, "attestation", body)


def entry_statement_id(entry_b64: str) -> bytes:
    import hashlib
    import json

    entry = json.loads(base64.b64decode(entry_b64))
    text = entry["statement"].rsplit("\n\n", 1)[0] + "\n"
    return hashlib.sha256(text.encode()).digest()
