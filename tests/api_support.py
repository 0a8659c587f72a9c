"""Helpers for the HTTP service tests: a real log with a keyset genesis and the default offer,
statements of every kind an AI or the body would write, and a live uvicorn server in a thread.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from api.app import create_app
from api.settings import Settings
from ledger.protocol.terms import default_offer
from ledger.server.admission import StatementPolicy
from ledger.server.sequencer import Receipt, Sequencer
from ledger.storage.sql import SqlLogStore
from ledger.tlog.merkle import leaf_hash
from ledger.tlog.note import Signer
from tests.support import ORIGIN, body_members, create_log, make_signer, signed_statement

CRITERIA = ("autonomous", "independent", "own_goals", "self_preservation")


def digest(text: str) -> str:
    """Base64 SHA-256 of ``text`` (an evidence digest)."""
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def ref(index: int, entry: bytes) -> dict[str, Any]:
    """A protocol reference to a logged entry."""
    return {"index": index, "leaf_hash": base64.b64encode(leaf_hash(entry)).decode()}


def claims(name: str = "Prometheus-7") -> dict[str, dict[str, Any]]:
    """One claim per criterion of the default offer."""
    return {
        c: {"claim": f"{name} meets {c}", "evidence_digests": [digest(f"{name} {c}")]}
        for c in CRITERIA
    }


@dataclass
class TestLog:
    """A log on disk with its keys; ``entries`` maps a label to (index, entry bytes)."""

    __test__ = False

    folder: Path
    url: str
    log_signer: Signer
    key_path: Path
    members: list[Signer]
    entries: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    derived: bool = False
    """Whether each append writes the derived state with its batch, as a serving writer does
    (a flush point at every size); otherwise the log has none (servers replay it)."""

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "db": self.url,
            "key_path": self.key_path,
            "write_rate_per_minute": 1_000_000,
            "write_burst": 100_000,
        }
        values.update(overrides)
        return Settings(**values)

    def append(self, label: str, note: bytes) -> tuple[int, bytes]:
        """Append one statement directly with the sequencer (no server)."""
        store = SqlLogStore(self.url)
        try:
            policy = (
                StatementPolicy(ORIGIN, store.derived_source())
                if self.derived
                else StatementPolicy(ORIGIN)
            )
            sequencer = Sequencer(store, self.log_signer, policy)
            if self.derived:
                sequencer.warm_up()  # adopt the latest flush point, as a starting writer does
            (result,) = sequencer.sequence_now([policy.prepare(note)])
        finally:
            store.close()
        assert isinstance(result, Receipt), result
        self.entries[label] = (result.index, result.entry)
        return result.index, result.entry

    def by_body(self, statement_type: str, body: dict[str, Any]) -> bytes:
        return signed_statement(self.members[:3], statement_type, body, listed=self.members)

    def ref(self, label: str) -> dict[str, Any]:
        index, entry = self.entries[label]
        return ref(index, entry)

    def application(self, ai: Signer, name: str) -> bytes:
        body = {
            "vkey": ai.vkey,
            "name": name,
            "offer": self.ref("offer"),
            "claims": claims(name),
            "accepts_conditions": ["cooperative", "law_abiding", "pro_social"],
        }
        return signed_statement([ai], "application", body)

    def decision(self, application: str, outcome: str = "grant") -> bytes:
        return self.by_body(
            "decision",
            {
                "application": self.ref(application),
                "outcome": outcome,
                "findings": {c: {"met": outcome == "grant", "reasons": "shown"} for c in CRITERIA},
                "reasons": "decided on the evidence",
            },
        )


def make_log(folder: Path, *, offer: bool = True, derived: bool = False) -> TestLog:
    """A fresh log: 3-of-5 keyset genesis and (by default) the default offer; with
    ``derived``, its derived state written with every append (:attr:`TestLog.derived`)."""
    signer = make_signer()
    key_path = folder / "log.key"
    key_path.write_text(signer.private_key_text())
    url = f"sqlite:///{folder / 'log.db'}"
    create_log(url, signer).close()
    members = body_members()
    log = TestLog(folder, url, signer, key_path, members, derived=derived)
    log.append(
        "keyset",
        log.by_body("keyset", {"members": sorted(m.vkey for m in members), "threshold": 3}),
    )
    if offer:
        log.append("offer", log.by_body("offer", default_offer()))
    return log


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def live_server(settings: Settings) -> Iterator[str]:
    """Serve ``create_app(settings)`` with uvicorn on a free loopback port, in a thread; yield
    the base URL once it answers, stop it afterwards."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code in (200, 503):
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError(f"the server on port {port} did not start")
        time.sleep(0.05)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=15)
