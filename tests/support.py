"""Test helpers shared by several test files (not fixtures: plain functions and classes)."""

from __future__ import annotations

import hashlib
import time

from ledger.checkpoint import Checkpoint, sign_checkpoint
from ledger.entry import LogEntry
from ledger.errors import MalformedError
from ledger.merkle import EMPTY_ROOT
from ledger.note import Signer
from ledger.sequencer import Prepared
from ledger.storage.base import LogIdentity
from ledger.storage.sql import SqlLogStore

ORIGIN = "test.example/amnesty"


class OpaquePolicy:
    """An EntryPolicy that admits any UTF-8 payload: for storage and sequencer tests only.

    Production logs admit only signed statements (``ledger.admission.StatementPolicy``).
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

    def admit(self, prepared: Prepared, index: int, log_time_ms: int) -> object:
        if prepared.statement in self.refuse:
            raise MalformedError(f"couldn't admit {prepared.statement!r}: refused by the test")
        assert index == self._size
        return None

    def apply(self, admitted: object, entry: LogEntry, leaf: bytes) -> None:
        assert entry.index == self._size
        self._size += 1


def make_signer(origin: str = ORIGIN) -> Signer:
    return Signer.from_seed(origin, hashlib.sha256(origin.encode()).digest())


def create_log(url: str, signer: Signer, origin: str = ORIGIN) -> SqlLogStore:
    store = SqlLogStore(url)
    checkpoint = sign_checkpoint(Checkpoint(origin, 0, EMPTY_ROOT), signer)
    store.create_log(
        LogIdentity(origin=origin, log_vkey=signer.vkey, created_ms=int(time.time() * 1000), key_path=None),
        checkpoint,
    )
    return store
