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

PublicKey = NewType("PublicKey", bytes)
"""The 32 bytes of an Ed25519 public key: a key's identity."""


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
    """The public keys of ``vkeys`` (see :func:`public_key`)."""
    return frozenset(public_key(v) for v in vkeys)


def key_label(key: PublicKey) -> str:
    """A public key as a reader sees it in a message: its standard base64."""
    return base64.b64encode(key).decode("ascii")
