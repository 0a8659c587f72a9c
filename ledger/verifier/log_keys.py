"""The keys a checkpoint must verify under, once the verified history names the log's ML-DSA-44 key.

A verifier pins the log's Ed25519 key (and, for a log created hybrid, its ML-DSA-44 key), with
a :class:`~ledger.tlog.checkpoint.KeyPolicy`. A log created with Ed25519 alone adds its
ML-DSA-44 key by a ``log_key`` entry at some index A, signed by the body's threshold
(PROTOCOL.md §4): the key is then part of the history the verifier replays, not announced out
of band. From that entry on, the verifier knows the key
(:attr:`~ledger.protocol.state.ProtocolState.log_key`), and:

- a checkpoint of size > A (it includes the anchor) is checked under both keys with the pinned
  policy — by default ``both``, so a missing or bad ML-DSA-44 line fails it; an explicit
  ``--key-policy ed25519`` still requires only the Ed25519 line (a present ML-DSA-44 line must
  verify all the same: signed-note);
- a checkpoint of size <= A predates the key: it is checked under the Ed25519 key, and a line
  of a pinned ML-DSA-44 key on it must verify;
- a pinned ML-DSA-44 key that is not the anchored one fails: the history contradicts the pin.

Pure: no I/O. Raises :class:`~ledger.errors.SignatureError` (a
:class:`~ledger.errors.VerificationError`) for a pin the history contradicts.
"""

from __future__ import annotations

from ledger.errors import SignatureError
from ledger.protocol.records import LogKeyRecord
from ledger.tlog.checkpoint import Checkpoint, KeyPolicy, LogKey, LogKeys, log_keys, open_checkpoint
from ledger.tlog.note import VerifierKey, excerpt, parse_note


def learned_keys(pinned: LogKey, anchored: LogKeyRecord) -> LogKeys:
    """``pinned`` with the ML-DSA-44 key the history anchored, under the pinned policy (by
    default both keys). Raises :class:`SignatureError` if ``pinned`` names another ML-DSA-44
    key, or the anchored key is not named after the pinned log."""
    keys = log_keys(pinned)
    learned = VerifierKey.parse(anchored.vkey)
    if keys.mldsa44 is not None and keys.mldsa44 != learned:
        raise SignatureError(
            f"couldn't use the pinned ML-DSA-44 key {keys.mldsa44.name}+"
            f"{keys.mldsa44.key_id.hex()}: the log's entry {anchored.index} added "
            f"{learned.name}+{learned.key_id.hex()}"
        )
    if learned.name != keys.name:
        raise SignatureError(
            f"couldn't use the ML-DSA-44 key of entry {anchored.index}: it is named "
            f"{excerpt(learned.name)}, the pinned log {excerpt(keys.name)}"
        )
    return LogKeys(keys.ed25519, learned, keys.require)


def keys_at(pinned: LogKey, anchored: LogKeyRecord | None, size: int) -> LogKey:
    """The keys a checkpoint of ``size`` must verify under (see the module): ``pinned`` if the
    history names no ML-DSA-44 key, :func:`learned_keys` if the checkpoint includes the entry
    that anchored it, and the Ed25519 key (lines of a pinned ML-DSA-44 key checked if present)
    if it predates that entry."""
    if anchored is None:
        return pinned
    if size > anchored.index:
        return learned_keys(pinned, anchored)
    keys = log_keys(pinned)
    if keys.mldsa44 is None:
        return pinned
    return LogKeys(keys.ed25519, keys.mldsa44, KeyPolicy.ED25519)


def checkpoint_size(note: bytes) -> int:
    """The size a checkpoint note claims, unverified (to choose the keys that verify it)."""
    return Checkpoint.parse(parse_note(note).text).size


def open_checkpoint_at(note: bytes, pinned: LogKey, anchored: LogKeyRecord | None) -> Checkpoint:
    """:func:`~ledger.tlog.checkpoint.open_checkpoint` under :func:`keys_at` the size the note
    claims (which the signatures then vouch for)."""
    return open_checkpoint(note, keys_at(pinned, anchored, checkpoint_size(note)))
