"""The signer's memory, kept outside the database: the largest checkpoint it has published.

The signer's invariant: **it never signs a checkpoint that is not a proven extension of every
checkpoint it signed before and published.** The database cannot be the only witness of what
was published — a restored backup, a PostgreSQL dump or a copied file looks like a perfectly
valid, smaller log — so the signer keeps its own record in a small file beside its key (by
default ``<key file>.published``), and checks the tree it is about to sign against it: at start,
and before every signature.

The file holds, as JSON (docs/FORMAT.md, "The signer's memory"):

- ``published``: the largest checkpoint known to be committed to the database (and so possibly
  served, cosigned, handed out in receipts);
- ``pending``: a checkpoint signed and about to be committed, written **before** the commit, so
  that a checkpoint is remembered before anyone can be served it. A crash before the commit
  leaves a ``pending`` the database never held: it was never published, and it is dropped as
  soon as the store is seen (under the write lock) to be smaller than it.

- ``witnesses`` (optional; absent in files written before it existed, which still read): for
  each configured witness, keyed by its first vkey, the latest checkpoint it cosigned for this
  log — ``{"vkeys": [...], "checkpoint": "<note>"}``, the note being the log-signed checkpoint
  with the witness's cosignature line(s). The cosigner records it after each cosignature
  (:meth:`PublishedCheckpoint.remember_cosigned`), and a starting server asks each witness's
  read endpoint for it (:func:`ledger.witness.cosigner.recall_cosigned`).

Everything is checked, not trusted: each note must verify under the log key and name the log's
origin, and each witness record must carry a valid cosignature of one of its vkeys.

The check (:meth:`PublishedCheckpoint.check`): the tree about to be signed, or stored, of ``size``
leaves must be at least as large as ``published`` and its root at ``published.size`` must be
``published``'s root (a consistency proof computed from the tree's own nodes); the same for
``pending`` when the tree is at least that large; and the same for every witness record. Anything
else is a fork, or a store that lost what was published (:class:`ForkError`): the caller refuses
to sign. The witness records close a gap the log's own lines leave: ``published`` is confirmed
lazily (when the sequencer's queue is empty), and a ``pending`` larger than the store is taken
for a commit that never happened — so a log under steady load, restored from a backup taken
after ``published`` but before ``pending``, would pass on its own lines alone; a witness that
cosigned the lost size refuses it.

Concurrency: several processes on one machine may share one key and so one file (``amnesty
serve --workers N``). Every read-modify-write holds an exclusive ``flock`` on a sidecar lock file,
and a record only ever moves forward: :meth:`confirm` never replaces a larger ``published``.
Writes are crash-safe (:func:`ledger.atomic.write_atomically`: write, fsync, rename, fsync the
folder): after a crash the file is its old or its new version, never a mix.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.atomic import write_atomically
from ledger.errors import FatalError, LedgerError, StorageError
from ledger.tlog.checkpoint import Checkpoint, open_checkpoint, verify_cosignatures
from ledger.tlog.note import VerifierKey

log = logging.getLogger("ledger.server.published")

PUBLISHED_SUFFIX = ".published"
"""The remembered checkpoint's file is the key file's name with this suffix."""

FORMAT = "amnesty-ledger.published/v1"
"""The ``format`` member of the file's JSON object."""

RootAt = Callable[[int], bytes]
"""``root_at(m)``: the root of the first ``m`` leaves of the tree being checked."""


class UntrustedStoreError(FatalError):
    """The stored state cannot be trusted: damaged (a checkpoint that does not verify, tiles or
    entries that do not hash to it), or not an extension of what this log published. A server
    refuses to start on it (``amnesty serve`` exits 3) and stops writing when it finds it later."""


class ForkError(UntrustedStoreError):
    """The tree to be signed, or the stored one, is not an extension of a checkpoint this log
    already published: signing would fork the log. Refuse, and tell the operator what to do."""


def published_path_for(key_path: Path) -> Path:
    """Where the signer with key file ``key_path`` remembers what it published."""
    return key_path.with_name(key_path.name + PUBLISHED_SUFFIX)


@dataclass(frozen=True, slots=True)
class WitnessRecord:
    """The latest checkpoint one witness cosigned for this log, as remembered: the witness's
    keys (one name; ``vkeys[0]`` is its label), the checkpoint, and the note — log-signed, with
    the witness's cosignature line(s), all verified when read."""

    vkeys: tuple[VerifierKey, ...]
    checkpoint: Checkpoint
    note: bytes

    @property
    def label(self) -> str:
        """The witness's identity in the file: its first vkey."""
        return self.vkeys[0].vkey()

    @property
    def name(self) -> str:
        """The witness's key name (shown in refusals)."""
        return self.vkeys[0].name


@dataclass(frozen=True, slots=True)
class Remembered:
    """The file's content, verified: the published checkpoint, an optional pending one, and
    the witnesses' latest cosigned checkpoints by label."""

    published: Checkpoint
    published_note: bytes
    pending: Checkpoint | None = None
    pending_note: bytes | None = None
    witnessed: Mapping[str, WitnessRecord] = field(default_factory=dict)


class PublishedCheckpoint:
    """The remembered checkpoint of one log's signer, in the file ``path``.

    Thread-safe, and safe between processes sharing the file (see the module docstring).
    """

    def __init__(self, path: Path, log_key: VerifierKey, origin: str) -> None:
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")
        self._log_key = log_key
        self._origin = origin
        self._thread_lock = threading.Lock()
        self._parsed: tuple[bytes, Remembered] | None = None  # raw file bytes → their parse

    # -- reading ------------------------------------------------------------------------------

    def read(self) -> Remembered | None:
        """The remembered checkpoints, verified; None if nothing was remembered yet.

        Raises :class:`UntrustedStoreError` naming the file if it cannot be read, does not parse, or
        holds a checkpoint that does not verify under the log key or names another origin:
        a damaged memory is not a reason to forget what was published.
        """
        with self._locked():
            raw = self._read_raw()
        return None if raw is None else self._parse(raw)

    def check(
        self, size: int, root_at: RootAt, *, doing: str, tree: str = "the database"
    ) -> Remembered | None:
        """Refuse (:class:`ForkError`) unless the tree of ``size`` leaves, whose roots at each
        size up to ``size`` ``root_at`` computes, extends every remembered checkpoint.

        ``doing`` names the act refused ("start", "sign a checkpoint of size 12"), ``tree`` what
        holds the tree checked (the database, a copy to recover from). A pending
        checkpoint larger than ``size`` is not checked: it may never have been committed (see
        :meth:`drop_void_pending`). Returns what is remembered, None if nothing yet.
        """
        remembered = self.read()
        if remembered is None:
            return None
        for label, checkpoint in (
            ("published", remembered.published),
            ("signed", remembered.pending),
        ):
            if checkpoint is None or (label == "signed" and checkpoint.size > size):
                continue
            self._refuse_unless_extended(
                checkpoint,
                size,
                root_at,
                doing=doing,
                tree=tree,
                larger=f"this log already published size {checkpoint.size}",
                differs=f"this log {label} root {_b64(checkpoint.root_hash)}",
            )
        for record in remembered.witnessed.values():
            cosigned = record.checkpoint
            self._refuse_unless_extended(
                cosigned,
                size,
                root_at,
                doing=doing,
                tree=tree,
                larger=f"witness {record.name!r} cosigned size {cosigned.size} of this log",
                differs=f"witness {record.name!r} cosigned root {_b64(cosigned.root_hash)}",
            )
        return remembered

    def _refuse_unless_extended(
        self,
        checkpoint: Checkpoint,
        size: int,
        root_at: RootAt,
        *,
        doing: str,
        tree: str,
        larger: str,
        differs: str,
    ) -> None:
        """Refuse (:class:`ForkError`) unless the tree of ``size`` leaves extends
        ``checkpoint``: ``larger`` says who vouched for a larger size, ``differs`` for another
        root at its size (see :meth:`check`)."""
        if checkpoint.size > size:
            raise ForkError(
                f"couldn't {doing}: {tree} is at size {size} but {larger} (remembered in "
                f"{self.path}); restore a newer backup, or recover the missing entries with "
                "`amnesty recover`"
            )
        here = root_at(checkpoint.size)
        if here != checkpoint.root_hash:
            raise ForkError(
                f"couldn't {doing}: {tree}'s tree at size {checkpoint.size} has root "
                f"{_b64(here)} but {differs} at that size (remembered in {self.path}): "
                f"{tree} holds another history, a fork; restore a backup of this log's own "
                "database, or recover its entries with `amnesty recover`"
            )

    # -- writing ------------------------------------------------------------------------------

    def record_pending(self, previous: bytes, note: bytes) -> None:
        """Remember ``note``, a checkpoint just signed over the stored checkpoint ``previous``
        (read under the write lock, and proved by :meth:`check` to extend the remembered ones),
        **before** ``note`` is committed.

        Crash-safety: once this returns, ``note`` is on disk. If the commit then goes through,
        the signer will never sign a tree that does not extend it, even if the process dies
        before :meth:`confirm`; if the commit never happens, the next check under the write
        lock sees a smaller store and drops it (:meth:`drop_void_pending`).
        """
        checkpoint = self._open(note, "the checkpoint to remember")
        stored = self._open(previous, "the stored checkpoint")
        with self._locked():
            raw = self._read_raw()
            current = None if raw is None else self._parse(raw)
            if current is None:
                self._write(previous, note, {})
                return
            if current.published.size > checkpoint.size:
                raise ForkError(
                    f"couldn't remember checkpoint {checkpoint.size}: this log already "
                    f"published size {current.published.size} (remembered in {self.path})"
                )
            # ``previous`` was read under the write lock: it is committed, so published. It may
            # be ahead of the file (another process sharing the file committed it and has not
            # confirmed it yet): remember it now, before its pending record is replaced.
            published = previous if stored.size > current.published.size else None
            self._write(published or current.published_note, note, current.witnessed)

    def confirm(self, note: bytes) -> None:
        """Remember ``note`` as published: it is committed (the caller read it from the store,
        or committed it itself) and proved to extend the remembered checkpoints.

        Never moves backwards: a larger ``published`` already remembered (another process
        sharing the file went further) is kept. A ``pending`` that ``note`` covers is cleared.
        """
        checkpoint = self._open(note, "the checkpoint to confirm")
        with self._locked():
            raw = self._read_raw()
            current = None if raw is None else self._parse(raw)
            if current is None:
                self._write(note, None, {})
                return
            published_note = current.published_note
            if checkpoint.size > current.published.size:
                published_note = note
            pending_note = current.pending_note
            if current.pending is not None and current.pending.size <= checkpoint.size:
                pending_note = None
            if (published_note, pending_note) != (current.published_note, current.pending_note):
                self._write(published_note, pending_note, current.witnessed)

    def drop_void_pending(self, stored_size: int) -> None:
        """Forget a pending checkpoint larger than ``stored_size``, the size of the store read
        under its write lock: its commit never happened (a crash or a failed transaction before
        it), so it was never published."""
        with self._locked():
            raw = self._read_raw()
            current = None if raw is None else self._parse(raw)
            if current is None or current.pending is None:
                return
            if current.pending.size > stored_size:
                log.warning(
                    "forgetting the pending checkpoint of size %d in %s: the store holds %d "
                    "entries, so it was never committed",
                    current.pending.size,
                    self.path,
                    stored_size,
                )
                self._write(current.published_note, None, current.witnessed)

    def remember_cosigned(self, vkeys: Sequence[VerifierKey], note: bytes) -> bool:
        """Remember ``note`` — a checkpoint of this log with a cosignature by the witness whose
        keys are ``vkeys`` (one name, first key its label) — as that witness's latest cosigned
        checkpoint, unless one at least as large is remembered already. Returns whether the
        file changed.

        The note is verified first (the log's signature, the origin, a valid cosignature line
        of one of ``vkeys``), else :class:`UntrustedStoreError` and nothing is written. A record
        never moves backwards; the published and pending checkpoints are left as they are. If
        nothing was remembered yet, ``note`` becomes the published checkpoint too: a witness
        cosigns only what the log served.
        """
        record = self._open_witnessed(tuple(vkeys), note, "the cosigned checkpoint to remember")
        with self._locked():
            raw = self._read_raw()
            current = None if raw is None else self._parse(raw)
            if current is None:
                self._write(note, None, {record.label: record})
                return True
            known = current.witnessed.get(record.label)
            if known is not None and known.checkpoint.size >= record.checkpoint.size:
                return False
            self._write(
                current.published_note,
                current.pending_note,
                {**current.witnessed, record.label: record},
            )
            return True

    # -- the file -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold this process's thread lock and the file lock shared with other processes."""
        with self._thread_lock:
            try:
                self._lock_path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                raise StorageError(f"couldn't lock {self._lock_path}: {exc}") from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # releases the flock

    def _read_raw(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise UntrustedStoreError(
                f"couldn't read the remembered checkpoint {self.path}: {exc}; the signer "
                "refuses to sign without knowing what it published"
            ) from exc

    def _parse(self, raw: bytes) -> Remembered:
        cached = self._parsed
        if cached is not None and cached[0] == raw:
            return cached[1]
        try:
            document = json.loads(raw)
            if not isinstance(document, dict) or document.get("format") != FORMAT:
                raise ValueError(f"not a {FORMAT} document")
            published_text = document["published"]
            pending_text = document.get("pending")
            if not isinstance(published_text, str) or not (
                pending_text is None or isinstance(pending_text, str)
            ):
                raise ValueError("published and pending must be checkpoint notes (strings)")
            witnesses_value = _witness_entries(document.get("witnesses", {}))
        except (ValueError, KeyError) as exc:
            raise UntrustedStoreError(
                f"couldn't read the remembered checkpoint {self.path}: {exc}; restore the file "
                "from a copy (it is the signer's only record of what it published)"
            ) from None
        published_note = published_text.encode("utf-8")
        pending_note = None if pending_text is None else pending_text.encode("utf-8")
        remembered = Remembered(
            published=self._open(published_note, f"the published checkpoint in {self.path}"),
            published_note=published_note,
            pending=None
            if pending_note is None
            else self._open(pending_note, f"the pending checkpoint in {self.path}"),
            pending_note=pending_note,
            witnessed={
                label: self._open_witnessed(
                    vkeys,
                    text.encode("utf-8"),
                    f"the checkpoint witness {label} cosigned, in {self.path}",
                )
                for label, (vkeys, text) in witnesses_value.items()
            },
        )
        self._parsed = (raw, remembered)
        return remembered

    def _open(self, note: bytes, what: str) -> Checkpoint:
        try:
            checkpoint = open_checkpoint(note, self._log_key)
        except LedgerError as exc:
            raise UntrustedStoreError(f"couldn't trust {what}: {exc}") from exc
        if checkpoint.origin != self._origin:
            raise UntrustedStoreError(
                f"couldn't trust {what}: origin {checkpoint.origin!r} is not this log's "
                f"{self._origin!r}"
            )
        return checkpoint

    def _open_witnessed(
        self, vkeys: tuple[VerifierKey, ...], note: bytes, what: str
    ) -> WitnessRecord:
        checkpoint = self._open(note, what)
        if not vkeys or len({key.name for key in vkeys}) != 1:
            raise UntrustedStoreError(f"couldn't trust {what}: want one or more keys, one name")
        try:
            cosigned = verify_cosignatures(note, vkeys)
        except LedgerError as exc:
            raise UntrustedStoreError(f"couldn't trust {what}: {exc}") from exc
        if not cosigned:
            raise UntrustedStoreError(
                f"couldn't trust {what}: it carries no cosignature of {vkeys[0].vkey()}"
            )
        return WitnessRecord(vkeys, checkpoint, note)

    def _write(
        self, published: bytes, pending: bytes | None, witnessed: Mapping[str, WitnessRecord]
    ) -> None:
        document: dict[str, Any] = {
            "format": FORMAT,
            "published": published.decode("utf-8"),
            "pending": None if pending is None else pending.decode("utf-8"),
        }
        if witnessed:  # absent otherwise: the file stays what older releases wrote and read
            document["witnesses"] = {
                label: {
                    "vkeys": [key.vkey() for key in record.vkeys],
                    "checkpoint": record.note.decode("utf-8"),
                }
                for label, record in sorted(witnessed.items())
            }
        write_atomically(self.path, (json.dumps(document, indent=1) + "\n").encode("utf-8"))


def _witness_entries(value: object) -> dict[str, tuple[tuple[VerifierKey, ...], str]]:
    """The ``witnesses`` member's shape: label → (vkeys, checkpoint note text); ValueError if
    it is not ``{"<vkey>": {"vkeys": ["<vkey>", ...], "checkpoint": "<note>"}}``."""
    if not isinstance(value, dict):
        raise ValueError("witnesses must be an object")
    entries: dict[str, tuple[tuple[VerifierKey, ...], str]] = {}
    for label, record in value.items():
        if not isinstance(record, dict) or set(record) != {"vkeys", "checkpoint"}:
            raise ValueError(f"witness {label!r}: want exactly vkeys and checkpoint")
        vkeys, note = record["vkeys"], record["checkpoint"]
        if not isinstance(note, str) or not isinstance(vkeys, list) or not vkeys:
            raise ValueError(f"witness {label!r}: vkeys must be a list, checkpoint a note")
        try:
            keys = tuple(VerifierKey.parse(vkey) for vkey in vkeys)
        except (LedgerError, TypeError) as exc:
            raise ValueError(f"witness {label!r}: {exc}") from None
        if keys[0].vkey() != label:
            raise ValueError(f"witness {label!r}: its first vkey is not its label")
        entries[label] = (keys, note)
    return entries


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")
