"""Test helpers shared by several test files (not fixtures: plain functions and classes)."""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

from ledger.errors import MalformedError
from ledger.server.sequencer import Prepared
from ledger.statements.entry import LogEntry
from ledger.storage.base import LogIdentity
from ledger.storage.sql import SqlLogStore
from ledger.tlog.checkpoint import Checkpoint, sign_checkpoint
from ledger.tlog.merkle import EMPTY_ROOT
from ledger.tlog.note import Signer

ORIGIN = "test.example/amnesty"
VECTORS = Path(__file__).resolve().parents[2] / "shared" / "vectors"
"""The shared test vectors, used by path (never copied into the repository)."""


def vector_readme(pattern: str) -> str:
    """The first group of ``pattern`` in the vectors' README (the signed-note vectors live there)."""
    match = re.search(pattern, (VECTORS / "README.md").read_text(encoding="utf-8"))
    assert match is not None, f"vector {pattern!r} not found in {VECTORS / 'README.md'}"
    return match.group(1)


class OpaquePolicy:
    """An EntryPolicy that admits any UTF-8 payload: for storage and sequencer tests only.

    Production logs admit only signed statements (``ledger.server.admission.StatementPolicy``).
    """

    def __init__(self) -> None:
        self._size = 0
        self.refuse: set[str] = set()

    @property
    def size(self) -> int:
        return self._size

    def reset(self) -> None:
        self._size = 0

    def prepare(self, submission: bytes) -> Prepared:
        try:
            text = submission.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedError(f"couldn't decode payload: {exc}") from exc
        return Prepared(
            statement=text,
            statement_id=hashlib.sha256(submission).digest(),
            statement_type="test",
        )

    def catch_up(self, entry: LogEntry, leaf: bytes) -> None:
        assert entry.index == self._size
        self._size += 1

    def admit(self, prepared: Prepared, entry: LogEntry, leaf: bytes) -> object:
        if prepared.statement in self.refuse:
            raise MalformedError(f"couldn't admit {prepared.statement!r}: refused by the test")
        assert entry.index == self._size
        return None

    def apply(self, admitted: object, entry: LogEntry, leaf: bytes) -> None:
        assert entry.index == self._size
        self._size += 1

    def advance(self, size: int) -> None:
        """No derived state in the store: nothing to adopt."""

    def derived_rows(self) -> None:
        """No derived state in the store."""
        return None

    def committed(self) -> None:
        """No derived state in the store."""


def make_signer(origin: str = ORIGIN) -> Signer:
    return Signer.from_seed(origin, hashlib.sha256(origin.encode()).digest())


def create_log(url: str, signer: Signer, origin: str = ORIGIN) -> SqlLogStore:
    store = SqlLogStore(url, create=True)
    checkpoint = sign_checkpoint(Checkpoint(origin, 0, EMPTY_ROOT), signer)
    store.create_log(
        LogIdentity(
            origin=origin, log_vkey=signer.vkey, created_ms=int(time.time() * 1000), key_path=None
        ),
        checkpoint,
    )
    return store


def body_members(count: int = 5, prefix: str = "member") -> list[Signer]:
    """Deterministic body member keys ``member1.body.example`` …"""
    return [
        Signer.from_seed(
            f"{prefix}{i}.body.example", hashlib.sha256(f"{prefix}{i}".encode()).digest()
        )
        for i in range(1, count + 1)
    ]


def signed_statement(
    signers: list[Signer],
    statement_type: str,
    body: dict[str, object],
    *,
    origin: str = ORIGIN,
    listed: list[Signer] | None = None,
    time_ms: int | None = None,
) -> bytes:
    """Build a statement listing ``listed`` (default ``signers``) and sign it with ``signers``."""
    from ledger.protocol.statements import STATEMENT_TYPES
    from ledger.statements.statement import new_statement, sign_statement

    statement = new_statement(
        type=statement_type,
        v=STATEMENT_TYPES[statement_type][0],
        origin=origin,
        signers=[s.vkey for s in (listed if listed is not None else signers)],
        time_ms=int(time.time() * 1000) if time_ms is None else time_ms,
        body=body,  # type: ignore[arg-type]
    )
    data = statement.text.encode()
    for signer in signers:
        data = sign_statement(data, signer)
    return data


def genesis_keyset(
    members: list[Signer], threshold: int, signing: list[Signer], origin: str = ORIGIN
) -> bytes:
    """A keyset genesis statement listing all members, signed by ``signing``."""
    return signed_statement(
        signing,
        "keyset",
        {"members": sorted(m.vkey for m in members), "threshold": threshold},
        origin=origin,
        listed=members,
    )
