"""The storage contract of the log.

A store holds one log: its identity (origin and log vkey), the latest signed checkpoint and
every checkpoint ever signed, the entries (leaf data), and the hash tiles of the Merkle tree.
It knows nothing of Merkle math or signatures; the sequencer and the verifier do that.

Contract, for every implementation:

- **Durable on return.** When :meth:`AppendTransaction.commit_batch` and the surrounding
  ``with store.append_transaction()`` block have returned, the batch survives a crash (``kill -9``
  or power loss) of this process.
- **One writer at a time, and never a fork.** :meth:`LogStore.append_transaction` holds the
  store's write lock from its start to its commit (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: a row
  lock on the checkpoint row). Inside, :meth:`AppendTransaction.commit_batch` additionally replaces
  the checkpoint with a compare-and-swap on the previous checkpoint's bytes: if another writer
  changed it, nothing is written and :class:`~ledger.errors.ConflictError` is raised.
- **Atomic batches.** The entries, the tiles and the new checkpoint of one batch become visible
  together, or not at all.
- **Usable concurrently.** Readers may run while a writer appends; they see a consistent
  snapshot (a checkpoint and everything it covers).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from ledger.tlog.tiles import TileID


@dataclass(frozen=True, slots=True)
class LogIdentity:
    """What was fixed when the log was created: its origin line and the log's vkey(s).

    ``mldsa_vkey`` is the log's ML-DSA-44 key (type 0x06, named after the origin) when it was
    created with one, or once a ``log_key`` statement anchoring one is logged (set in that
    batch's transaction, :meth:`AppendTransaction.adopt_mldsa_vkey`; docs/FORMAT.md §2): then
    every checkpoint from there on carries both signatures.
    """

    origin: str
    log_vkey: str
    created_ms: int
    key_path: str | None
    mldsa_vkey: str | None = None


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """An entry as the sequencer writes it: the leaf bytes plus the columns that index it.

    ``statement_id`` is unique across the log (a statement is never logged twice).
    ``statement_type`` and ``subjects``/``signers`` are derived from the statement and only
    serve queries; the leaf bytes are the truth.
    """

    index: int
    data: bytes
    statement_id: bytes
    statement_type: str
    log_time_ms: int
    subjects: tuple[str, ...] = ()
    signers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EntryQuery:
    """A filter over entries; every field narrows the result (``None`` means any)."""

    after: int = -1
    limit: int = 100
    statement_type: str | None = None
    subject: str | None = None
    signer: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    below_size: int | None = None


class AppendTransaction(Protocol):
    """The write side of one batch, valid inside ``with store.append_transaction() as tx``."""

    def checkpoint(self) -> bytes:
        """The latest signed checkpoint note, read under the write lock."""

    def read_tile(self, level: int, index: int) -> bytes:
        """The stored hash tile (full or the current partial), or ``b""`` if there is none."""

    def read_entries(self, start: int, end: int) -> list[bytes]:
        """Leaf data of entries ``[start, end)``, in order."""

    def find_statement(self, statement_id: bytes) -> int | None:
        """The index of the entry holding this statement, if it is logged."""

    def find_statements(self, statement_ids: Sequence[bytes]) -> dict[bytes, int]:
        """The indexes of those of ``statement_ids`` that are logged (one query per batch)."""

    def commit_batch(
        self,
        previous_checkpoint: bytes,
        new_checkpoint: bytes,
        new_size: int,
        entries: Sequence[StoredEntry],
        tiles: Sequence[tuple[TileID, bytes]],
        derived: Sequence[tuple[str, bytes, bytes]] | None = None,
    ) -> None:
        """Stage entries, tiles and the new checkpoint; compare-and-swap on the old checkpoint.

        ``derived``, if given, are the derived state's record versions at ``new_size``
        (:mod:`ledger.protocol.stored`), written in the same transaction.

        Raises :class:`~ledger.errors.ConflictError` if the stored checkpoint is not
        ``previous_checkpoint`` or a checkpoint of ``new_size`` with other bytes exists.
        Durable only once the surrounding ``with`` block has exited without an exception.
        """

    def write_derived(self, size: int, rows: Sequence[tuple[str, bytes, bytes]]) -> None:
        """Stage flush point ``size`` of the derived state (a backfill: the entries below
        ``size`` are already committed). ``size`` must exceed :meth:`derived_flush_point`."""

    def derived_flush_point(self) -> int | None:
        """The largest flush point of the derived state, or ``None`` (read under the lock)."""

    def delete_derived(self) -> int:
        """Stage the deletion of all derived state; return the record rows deleted."""

    def adopt_mldsa_vkey(self, vkey: str) -> None:
        """Stage setting the log identity's ML-DSA-44 vkey to ``vkey`` (the batch holds the
        ``log_key`` statement that anchors it), so that it commits with that entry or not at
        all. Raises :class:`~ledger.errors.ConflictError` if the identity holds another."""


class LogStore(Protocol):
    """A log's durable state. Implementations: :mod:`ledger.storage.sql`."""

    def create_log(self, identity: LogIdentity, checkpoint: bytes) -> None:
        """Create the log explicitly with its size-0 checkpoint; refuses if one exists."""

    def identity(self) -> LogIdentity:
        """The log's identity; raises :class:`~ledger.errors.StorageError` if no log exists."""

    def checkpoint(self) -> bytes:
        """The latest signed checkpoint note."""

    def checkpoint_at(self, size: int) -> bytes | None:
        """The checkpoint this log signed at exactly ``size``, if it signed one."""

    def add_cosignature(self, size: int, witness: str, line: str) -> None:
        """Keep witness ``witness``'s cosignature line on the checkpoint of ``size`` (replacing
        an earlier line of the same witness key). The log's own checkpoint is untouched."""

    def cosignatures(self, size: int) -> list[str]:
        """The cosignature lines kept for the checkpoint of ``size``."""

    def has_checkpoint_between(self, low: int, high: int) -> bool:
        """Whether this log signed a checkpoint with ``low <= size < high``."""

    def read_tile(self, level: int, index: int) -> bytes:
        """The stored hash tile (full or the current partial), or ``b""`` if there is none."""

    def read_entries(self, start: int, end: int) -> list[bytes]:
        """Leaf data of entries ``[start, end)``, in order (fewer if the log is shorter)."""

    def iter_entries(self, start: int, end: int, chunk: int = 4096) -> Iterator[bytes]:
        """Stream leaf data of entries ``[start, end)`` in bounded memory."""

    def find_statement(self, statement_id: bytes) -> int | None:
        """The index of the entry holding this statement, if it is logged."""

    def query_entries(self, query: EntryQuery) -> list[tuple[int, bytes]]:
        """Entries matching ``query``, ascending by index, at most ``query.limit``."""

    def append_transaction(self) -> AbstractContextManager[AppendTransaction]:
        """Begin a batch under the store's write lock; commit on clean exit, else roll back."""

    def close(self) -> None:
        """Release connections."""
