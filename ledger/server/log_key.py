"""An existing log adds its ML-DSA-44 key by a logged, k-of-n-signed ``log_key`` statement.

A log created with an Ed25519 key only becomes hybrid in three steps (docs/OPERATIONS.md,
"Adding an ML-DSA-44 key to an existing log"):

1. ``amnesty add-mldsa-key`` generates the key named after the origin, writes it as the key
   file's second line (:func:`add_mldsa_key_to_file`, keeping the Ed25519 line) and prints the
   unsigned ``log_key`` statement (:func:`log_key_statement`), listing the members of the
   keyset in force as its signers;
2. the body's members sign it, ``threshold`` of them, and submit it like any statement;
3. the writing server admits it only if its key file holds that very key
   (:meth:`LogKeyPolicy.prepare`), and from the batch that logs it on signs every checkpoint
   with both keys (:meth:`LogKeyPolicy.checkpoint_signers`), recording the key in the log's
   identity in that batch's own transaction (``LogIdentity.mldsa_vkey``).

So the key is anchored in history: a verifier pinned to the Ed25519 key alone learns it from
the statement, which the body signed and the log's checkpoints commit to, and from the first
checkpoint that includes it (a size beyond its index) requires its signature
(:mod:`ledger.verifier.log_keys`).

The crash windows, and why each is safe:

- **While the key file is rewritten**: :func:`add_mldsa_key_to_file` writes a new file beside
  it, flushes it, renames it over the old one and flushes the directory, so a crash leaves the
  old file (Ed25519 only: run the command again) or the new one, never a torn key.
- **Key file holds the key, statement not yet logged** (crashed before submitting, or the
  members have not signed yet): the identity and the protocol state name no ML-DSA-44 key, so
  the server starts (:func:`check_key_file` accepts a key file one key ahead of the log) and
  signs Ed25519 only; nothing has been promised about the new key. Running the command again
  keeps the key in the file and prints the same statement.
- **Statement logged**: the entry, the checkpoint signed with both keys and the identity's new
  vkey commit in one transaction, so no state has one without the others. A checkpoint that
  includes the anchor is never signed without the ML-DSA-44 key: the server signs only with a
  key file holding it (:meth:`LogKeyPolicy.checkpoint_signers` stops the sequencer otherwise),
  and refuses to start without it (:func:`check_key_file`: a one-line refusal naming the key
  file and what to put back, exit 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ledger.atomic import write_atomically
from ledger.errors import FatalError, RefusedError, StorageError
from ledger.protocol.quoting import quote
from ledger.protocol.records import LogKeyRecord
from ledger.protocol.state import ProtocolState
from ledger.protocol.stored import DerivedSource, FactCache, StoredProtocolState
from ledger.server.admission import StatementPolicy
from ledger.server.derived import replay_into, stored_size
from ledger.server.sequencer import Prepared
from ledger.statements.logged import CheckedStatement
from ledger.statements.statement import Statement, new_statement
from ledger.storage.base import AppendTransaction, LogIdentity
from ledger.storage.sql import SqlLogStore
from ledger.tlog.checkpoint import LogSigners
from ledger.tlog.note import ALG_MLDSA44, Signer, VerifierKey, excerpt

LOG_KEY_TYPE = "log_key"
"""The statement type that adds the log's ML-DSA-44 key (PROTOCOL.md §4)."""


def vkey_label(vkey: str) -> str:
    """A vkey as messages name it: ``<name>+<key ID>`` (the key itself is 1,752 characters).
    A vkey from a submission is shown quoted (:func:`~ledger.protocol.quoting.quote`)."""
    return "+".join(vkey.split("+", 2)[:2])


def check_key_file(signers: LogSigners, identity: LogIdentity) -> None:
    """Raise :class:`RefusedError` (one line) unless ``signers`` may sign for the log
    ``identity`` names: its Ed25519 key, and its ML-DSA-44 key if the log has one (given at
    creation, or anchored by a ``log_key`` entry). A key file holding an ML-DSA-44 key the log
    does not name yet is accepted: it waits for its ``log_key`` statement, and until then the
    log signs with Ed25519 only (see the module)."""
    ed25519 = signers.ed25519.vkey
    if ed25519 != identity.log_vkey:
        raise RefusedError(
            f"couldn't use log key {ed25519}: it is not this log's {identity.log_vkey}"
        )
    wanted = identity.mldsa_vkey
    if wanted is None:
        return
    mine = signers.mldsa44
    if mine is None:
        raise RefusedError(
            f"couldn't use the log keys of {excerpt(identity.origin)}: the log signs its "
            f"checkpoints with ML-DSA-44 key {vkey_label(wanted)} too, and the key file holds no "
            "ML-DSA-44 key; put that key's PRIVATE+KEY line back as the file's second line "
            "(restore the key file from its backup), docs/OPERATIONS.md"
        )
    if mine.vkey != wanted:
        raise RefusedError(
            f"couldn't use the log keys of {excerpt(identity.origin)}: the key file holds "
            f"ML-DSA-44 key {vkey_label(mine.vkey)}, the log signs with {vkey_label(wanted)}"
        )


class LogKeyPolicy(StatementPolicy):
    """The writing server's :class:`StatementPolicy`, which also knows the log's key file.

    Beyond the protocol's rule for ``log_key`` (the body's threshold, a 0x06 key named after
    the origin, once), :meth:`prepare` refuses a ``log_key`` statement this server could not
    honour: the log already has an ML-DSA-44 key (from its creation: the protocol cannot know
    that), or the key file does not hold the key it names. :meth:`checkpoint_signers` is the
    sequencer's hook: which keys sign each batch's checkpoint beside the Ed25519 key.
    """

    def __init__(
        self,
        origin: str,
        derived: DerivedSource | None = None,
        *,
        signers: LogSigners,
        identity: LogIdentity,
        facts: FactCache | None = None,
        cache_records: int = 50_000,
    ) -> None:
        super().__init__(origin, derived, facts=facts, cache_records=cache_records)
        self.signers = signers
        self._identity_mldsa = identity.mldsa_vkey
        self._anchored: LogKeyRecord | None = None
        """The protocol state's key as of the last commit (read by :meth:`prepare` in request
        threads; written only by :meth:`committed`, in the sequencer's)."""

    def committed(self) -> None:
        super().committed()
        self._anchored = self.state.log_key

    def prepare(self, submission: bytes) -> Prepared:
        prepared = super().prepare(submission)
        if prepared.statement_type == LOG_KEY_TYPE:
            checked = prepared.context
            assert isinstance(checked, CheckedStatement)  # what StatementPolicy.prepare gives
            vkey = checked.signed.statement.body.get("vkey")
            assert isinstance(vkey, str)  # the body validated
            self._check_addable(vkey)
        return prepared

    def _check_addable(self, vkey: str) -> None:
        submitted = quote(vkey_label(vkey))  # from a submission: shown as a quotation
        anchored = self._anchored
        have = self._identity_mldsa if anchored is None else anchored.vkey
        if have is not None:
            added = "" if anchored is None else f" (added at entry {anchored.index})"
            raise RefusedError(
                f"couldn't accept log_key {submitted}: the log already signs with "
                f"ML-DSA-44 key {vkey_label(have)}{added}; a log adds one ML-DSA-44 key, once"
            )
        mine = self.signers.mldsa44
        if mine is None:
            raise RefusedError(
                f"couldn't accept log_key {submitted}: this server's key file holds no "
                "ML-DSA-44 key, so it could not sign with it (run `amnesty add-mldsa-key` and "
                "restart the server first)"
            )
        if mine.vkey != vkey:
            raise RefusedError(
                f"couldn't accept log_key {submitted}: this server's key file holds "
                f"ML-DSA-44 key {vkey_label(mine.vkey)}, not that one"
            )

    def checkpoint_signers(self, tx: AppendTransaction, old_size: int) -> Sequence[Signer]:
        """The signers of the checkpoint about to be signed beside the Ed25519 key, once the
        batch growing the log from ``old_size`` is applied (the sequencer's hook).

        - the protocol state names no ML-DSA-44 key: the key the log was created with, if
          any (:func:`check_key_file` held the key file to it at start), else none — a key
          file one key ahead waits for its statement;
        - it names one (anchored at an index below the new size): this server's key, which
          must be that one — or :class:`FatalError`, and the batch rolls back unsigned; if the
          anchor is in this batch, the identity's vkey is staged in its transaction.
        """
        record = self.state.log_key
        mine = self.signers.mldsa44
        if record is None:
            if self._identity_mldsa is None or mine is None:
                return ()
            return (mine,)
        if mine is None or mine.vkey != record.vkey:
            have = "no ML-DSA-44 key" if mine is None else f"key {vkey_label(mine.vkey)}"
            raise FatalError(
                f"couldn't sign a checkpoint of {excerpt(self.origin)}: the log anchored "
                f"ML-DSA-44 key {vkey_label(record.vkey)} at index {record.index}, and this "
                f"server's key file holds {have}; put the key's PRIVATE+KEY line in the key "
                "file and restart (docs/OPERATIONS.md)"
            )
        if record.index >= old_size:
            # The anchor is in this batch: the identity names the key from the same commit on.
            tx.adopt_mldsa_vkey(record.vkey)
        return (mine,)


def add_mldsa_key_to_file(key_path: Path) -> tuple[LogSigners, bool]:
    """Give the log key file at ``key_path`` an ML-DSA-44 key named after its Ed25519 key's
    name (the origin), keeping the Ed25519 line; return the signers and whether a key was
    added (``False``: the file held one already, which is kept — running again after a crash
    prints the same statement).

    The file is replaced atomically and durably: the new text goes to a file created 0600
    beside it, is flushed, then renamed over the old one, and the directory is flushed; a
    crash leaves the old file or the new one. Raises :class:`StorageError` naming the path.
    """
    try:
        text = key_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StorageError(f"couldn't read the log key file {key_path}: {exc}") from exc
    signers = LogSigners.parse(text)
    if signers.mldsa44 is not None:
        return signers, False
    added = LogSigners(signers.ed25519, Signer.generate(signers.name, ALG_MLDSA44))
    # A crash leaves the old key file (Ed25519 alone: the server keeps signing as before) or
    # the new one, complete and private from its first byte.
    write_atomically(
        key_path, added.text().encode("utf-8"), mode=0o600, what=f"the log key file {key_path}"
    )
    return added, True


def log_key_statement(
    origin: str, members: Sequence[str], mldsa44: VerifierKey, time_ms: int
) -> Statement:
    """The unsigned ``log_key`` statement adding ``mldsa44`` to the log ``origin``, listing
    ``members`` (the keyset in force) as its signers."""
    if mldsa44.alg != ALG_MLDSA44:
        raise RefusedError(
            f"couldn't make a log_key statement for {mldsa44.vkey()}: its type is "
            f"0x{mldsa44.alg:02x}, not 0x06 (ML-DSA-44)"
        )
    return new_statement(
        type=LOG_KEY_TYPE,
        v=1,
        origin=origin,
        signers=members,
        time_ms=time_ms,
        body={"vkey": mldsa44.vkey()},
    )


def latest_state(store: SqlLogStore, origin: str) -> ProtocolState:
    """The protocol state at the store's latest checkpoint: the derived state's latest flush
    point and the few entries after it, or a replay from entry 0 for a log without derived
    state. For tools; raises :class:`~ledger.errors.LedgerError`."""
    size = stored_size(store)
    source = store.derived_source()
    point = source.flush_point(size)
    state = ProtocolState() if point is None else StoredProtocolState(source, point)
    replay_into(state, store, origin, size)
    return state
