"""Key identity: **a key is its public key**. Names and key IDs are labels.

Every vkey the protocol reads — a keyset's members, an applicant's key, a rotation's new key, a
wild target's keys, a statement's verified signers — is a C2SP Ed25519 vkey
``<name>+<hex8 key ID>+<base64(0x01 ‖ 32-byte public key)>``. The rules, applied everywhere the
protocol, the audit, admission and thresholds compare keys:

- **A vkey in a statement body is a real key** (:func:`checked_vkey`, the validator of
  :data:`~ledger.protocol.statements.VKey`): a valid key name, the key ID equal to
  ``SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4]``, signature type 0x01, and a canonical
  Ed25519 point of prime order (never one of the small-order points). Anything else refuses
  the statement at parsing.
- **Two vkeys are the same key exactly when their public keys are equal**
  (:func:`public_key`), whatever their names: ``alice+…+K`` and ``bob+…+K`` are one key. So a
  keyset's members are distinct public keys, a threshold counts public keys, and a key a
  subject ever held can never become another subject's or a body member's under any name.

**ML-DSA-44 bindings** (issue 18). A keyset member or a subject stays identified by its Ed25519
key; it may also bind one ML-DSA-44 statement key (``ledger.tlog.statement_mldsa``: vkey type
``0xff ‖ "amnesty-ledger/ml-dsa44"``) in the logged statement that names it. Such a key is
likewise its 1,312-byte public key (:func:`mldsa44_public_key`, checked by
:func:`checked_mldsa44_vkey`), and once bound to one identity it is never another's. Public keys
of both kinds share the protocol's key tables: their lengths (32 and 1,312 bytes) never collide.
:func:`ed25519_vkeys` and :func:`mldsa44_vkeys` split a statement's verified signers by kind.

Pure apart from the point check, which :class:`~ledger.tlog.note.VerifierKey` delegates to
libsodium; both functions cache, since the same keys recur on every entry.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Iterable
from typing import NewType

from ledger.errors import MalformedError
from ledger.tlog.note import ALG_ED25519, VerifierKey
from ledger.tlog.statement_mldsa import StatementMLDSA44Key, is_statement_mldsa44_vkey

PublicKey = NewType("PublicKey", bytes)
"""The 32 bytes of an Ed25519 public key: a key's identity."""

MLDSA44Key = NewType("MLDSA44Key", bytes)
"""The 1,312 bytes of an ML-DSA-44 statement key bound to an identity."""


@functools.lru_cache(maxsize=65536)
def checked_vkey(vkey: str) -> str:
    """Return ``vkey`` if it is a real Ed25519 key (see the module); raise ``ValueError``
    naming what is wrong otherwise (pydantic reports it at the field's path)."""
    try:
        key = VerifierKey.parse(vkey)
    except MalformedError as err:
        raise ValueError(str(err).removeprefix("couldn't ")) from None
    if key.alg != ALG_ED25519:
        raise ValueError(f"key type 0x{key.alg:02x} is not 0x01 (Ed25519)")
    return vkey


@functools.lru_cache(maxsize=65536)
def public_key(vkey: str) -> PublicKey:
    """The public key of ``vkey``, a vkey already checked (a body's vkeys are checked when the
    body is parsed, and verified signers when their signatures verified)."""
    encoded = vkey.split("+", 2)[2]
    return PublicKey(base64.b64decode(encoded, validate=True)[1:])


def public_keys(vkeys: Iterable[str]) -> frozenset[PublicKey]:
    """The Ed25519 public keys of ``vkeys`` (see :func:`public_key`): the identities among
    them. ML-DSA-44 statement vkeys (a hybrid statement's verified signers hold both kinds)
    are left out; :func:`mldsa44_vkeys` gives those."""
    return frozenset(public_key(v) for v in vkeys if not is_statement_mldsa44_vkey(v))


def key_label(key: PublicKey) -> str:
    """A public key as a reader sees it in a message: its standard base64."""
    return base64.b64encode(key).decode("ascii")


@functools.lru_cache(maxsize=4096)
def checked_mldsa44_vkey(vkey: str) -> str:
    """Return ``vkey`` if it is a real ML-DSA-44 statement key (name, key ID, type
    ``0xff ‖ "amnesty-ledger/ml-dsa44"``, a 1,312-byte key OpenSSL accepts); raise
    ``ValueError`` naming what is wrong otherwise."""
    try:
        StatementMLDSA44Key.parse(vkey)
    except MalformedError as err:
        raise ValueError(str(err).removeprefix("couldn't ")) from None
    return vkey


is_mldsa44_vkey = is_statement_mldsa44_vkey
"""Whether a vkey is of the ML-DSA-44 statement key type (else it is Ed25519): constant time,
no copy (:func:`ledger.tlog.statement_mldsa.is_statement_mldsa44_vkey`)."""


@functools.lru_cache(maxsize=4096)
def mldsa44_public_key(vkey: str) -> MLDSA44Key:
    """The 1,312-byte public key of an ML-DSA-44 statement vkey already checked."""
    encoded = vkey.split("+", 2)[2]
    return MLDSA44Key(base64.b64decode(encoded, validate=True)[24:])


def ed25519_vkeys(vkeys: Iterable[str]) -> frozenset[str]:
    """The Ed25519 vkeys among ``vkeys`` (a statement's signers may be of both kinds)."""
    return frozenset(v for v in vkeys if not is_statement_mldsa44_vkey(v))


def mldsa44_vkeys(vkeys: Iterable[str]) -> frozenset[str]:
    """The ML-DSA-44 statement vkeys among ``vkeys``."""
    return frozenset(v for v in vkeys if is_statement_mldsa44_vkey(v))
