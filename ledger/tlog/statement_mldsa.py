"""ML-DSA-44 keys that sign statement notes: a signed-note key type of this application.

C2SP signed-note allocates 0x06 to the timestamped ML-DSA-44 ``subtree/v1`` cosignature of
checkpoints (``ledger.tlog.note``); a statement is not a checkpoint, so its post-quantum
signature is a different key type. signed-note reserves the type byte ``0xff`` for "signature
types without an identifier byte assigned by this specification", RECOMMENDED to be followed by
a longer identifier that is unlikely to collide. This module is that type:

- **type** = ``0xff ‖ "amnesty-ledger/ml-dsa44"`` (:data:`STATEMENT_MLDSA44_TYPE`, 24 bytes);
- **vkey** = ``<name>+<hex8 key ID>+<base64(type ‖ 1,312-byte ML-DSA-44 public key)>``: the
  base64 always starts ``/2FtbmVzdHktbGVkZ2VyL21sLWRzYTQ0`` and is 1,784 characters;
- **key ID** = ``SHA-256(name ‖ 0x0A ‖ type ‖ public key)[:4]`` (signed-note's recommended key
  ID, with the whole 24-byte type where its one type byte goes);
- **signature line** = ``— <name> base64(key ID ‖ 2,420-byte signature)``, the signature being
  FIPS 204 ``ML-DSA.Sign`` (pure, hedged) over the **note text** bytes with the context string
  ``"amnesty-ledger.statement/v1"`` (:data:`STATEMENT_MLDSA44_CONTEXT`). The context separates
  these signatures from every other use of an ML-DSA-44 key (tlog-cosignature's have the empty
  context), so a key misused for both still cannot turn one kind into the other;
- **private key file line** = ``PRIVATE+KEY+<name>+<hex8 key ID>+<base64(type ‖ 32-byte seed
  ξ)>``, as the other key types of this project (docs/FORMAT.md §2).

A verifier that does not know this type ignores its lines (signed-note: lines of unknown keys
are ignored), so an Ed25519-only verifier reads hybrid statements as it always did.

Invariants: a :class:`StatementMLDSA44Key` exists only for a valid key name, a 1,312-byte
public key that OpenSSL accepts, and the key ID of its name and key; ``parse(k.vkey()) == k``;
only the canonical spelling parses. Keys are compared by their public key (``public_key``).
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA44PrivateKey, MLDSA44PublicKey

from ledger.errors import MalformedError, SignatureError
from ledger.tlog.note import (
    MLDSA44_PUBLIC_KEY_SIZE,
    MLDSA44_SEED_SIZE,
    MLDSA44_SIGNATURE_SIZE,
    PRIVATE_KEY_PREFIX,
    check_key_name,
    check_private_key_id,
    decode_base64,
    encode_base64,
    excerpt,
    parse_private_key_line,
)

STATEMENT_MLDSA44_TYPE: Final = b"\xffamnesty-ledger/ml-dsa44"
"""signed-note type ``0xff`` followed by this application's identifier (24 bytes in all)."""

STATEMENT_MLDSA44_CONTEXT: Final = b"amnesty-ledger.statement/v1"
"""The FIPS 204 context string of every statement ML-DSA-44 signature (the statement header)."""

VKEY_BASE64_PREFIX: Final = encode_base64(STATEMENT_MLDSA44_TYPE)
"""``/2FtbmVzdHktbGVkZ2VyL21sLWRzYTQ0``: how the third part of every such vkey begins (the type
is 24 bytes, a whole number of base64 groups)."""

STATEMENT_MLDSA44_VKEY_PATTERN: Final = (
    r"^[^+\x00-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+"
    r"\+[0-9a-f]{8}\+"
    + VKEY_BASE64_PREFIX  # base64 letters and "/" only: no regex syntax
    + r"[A-Za-z0-9+/]{1749}[AQgw]==$"
)
"""The spelling of such a vkey (a name, a key ID, base64 of the type and 1,312 bytes), in the
dialect of docs/FORMAT.md's patterns."""


_HEX8 = re.compile(r"[0-9a-f]{8}")


_VKEY_KEY_CHARS: Final = 1784
"""Characters of the key part of such a vkey (base64 of 1,336 bytes)."""


def is_statement_mldsa44_vkey(vkey: str) -> bool:
    """Whether ``vkey`` has the shape of this key type: its last 1,784 characters are the key
    part (a ``+`` before them, the type's base64 at their start). Constant time and no copy:
    called for every signer of every entry a verifier replays. A key name never holds ``+``,
    so in an Ed25519 vkey that position is inside the name or the key ID (or before the
    string). A vkey of this shape may still be malformed (:meth:`StatementMLDSA44Key.parse`
    decides)."""
    start = len(vkey) - _VKEY_KEY_CHARS
    return start > 0 and vkey[start - 1] == "+" and vkey.startswith(VKEY_BASE64_PREFIX, start)


def statement_mldsa44_key_id(name: str, public_key: bytes) -> bytes:
    """``SHA-256(name ‖ 0x0A ‖ type ‖ public key)[:4]``."""
    data = name.encode("utf-8") + b"\n" + STATEMENT_MLDSA44_TYPE + public_key
    return hashlib.sha256(data).digest()[:4]


@functools.lru_cache(maxsize=256)
def _public(public_key: bytes) -> MLDSA44PublicKey:
    return MLDSA44PublicKey.from_public_bytes(public_key)


@dataclass(frozen=True, slots=True, repr=False)
class StatementMLDSA44Key:
    """An ML-DSA-44 public key that signs statement notes (see the module)."""

    name: str
    key_id: bytes
    public_key: bytes

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if len(self.public_key) != MLDSA44_PUBLIC_KEY_SIZE:
            raise MalformedError(
                f"couldn't accept ML-DSA-44 statement key {excerpt(self.name)}: it is "
                f"{len(self.public_key)} bytes, not {MLDSA44_PUBLIC_KEY_SIZE}"
            )
        try:
            _public(self.public_key)
        except ValueError as err:
            raise MalformedError(
                f"couldn't accept ML-DSA-44 statement key {excerpt(self.name)}: {err}"
            ) from None
        expected = statement_mldsa44_key_id(self.name, self.public_key)
        if self.key_id != expected:
            raise MalformedError(
                f"couldn't accept ML-DSA-44 statement key {excerpt(self.name)}: key id "
                f"{self.key_id.hex()} is not {expected.hex()}, the hash of its name and key"
            )

    @classmethod
    def from_public_key(cls, name: str, public_key: bytes) -> StatementMLDSA44Key:
        """The key of ``name`` and ``public_key``, its key ID computed."""
        check_key_name(name)
        return cls(name, statement_mldsa44_key_id(name, public_key), public_key)

    @classmethod
    def parse(cls, vkey: str) -> StatementMLDSA44Key:
        """Parse ``<name>+<hex8>+<base64(type ‖ public key)>`` strictly (canonical base64,
        lowercase key ID, this type exactly, a 1,312-byte key)."""
        parts = vkey.split("+", 2)
        if len(parts) != 3:
            raise MalformedError(
                f"couldn't parse vkey {excerpt(vkey)}: want <name>+<hex8>+<base64 key>"
            )
        name, hex8, key64 = parts
        check_key_name(name)
        if not _HEX8.fullmatch(hex8):
            raise MalformedError(
                f"couldn't parse vkey {excerpt(vkey)}: key id {excerpt(hex8)} "
                "is not 8 lowercase hex digits"
            )
        raw = decode_base64(key64, "vkey public key")
        if not raw.startswith(STATEMENT_MLDSA44_TYPE):
            raise MalformedError(
                f"couldn't parse vkey {excerpt(vkey)}: its type is not 0xff "
                "'amnesty-ledger/ml-dsa44' (an ML-DSA-44 statement key)"
            )
        size = len(STATEMENT_MLDSA44_TYPE) + MLDSA44_PUBLIC_KEY_SIZE
        if len(raw) != size:
            raise MalformedError(
                f"couldn't parse vkey {excerpt(vkey)}: key data is {len(raw)} bytes, not {size} "
                f"(the 24-byte type and a {MLDSA44_PUBLIC_KEY_SIZE}-byte ML-DSA-44 key)"
            )
        return cls(name, bytes.fromhex(hex8), raw[len(STATEMENT_MLDSA44_TYPE) :])

    def vkey(self) -> str:
        """The vkey string; ``StatementMLDSA44Key.parse(k.vkey()) == k``."""
        key64 = encode_base64(STATEMENT_MLDSA44_TYPE + self.public_key)
        return f"{self.name}+{self.key_id.hex()}+{key64}"

    def __repr__(self) -> str:
        return f"StatementMLDSA44Key({self.name}+{self.key_id.hex()})"

    def verify_signature(self, message: bytes, signature: bytes) -> None:
        """Check ``signature`` (2,420 bytes) over ``message`` (the note text) with the
        statement context; raise :class:`SignatureError` if it does not verify."""
        if len(signature) != MLDSA44_SIGNATURE_SIZE:
            raise SignatureError(
                f"couldn't verify signature by {self.name}+{self.key_id.hex()}: it is "
                f"{len(signature)} bytes, not {MLDSA44_SIGNATURE_SIZE}"
            )
        try:
            _public(self.public_key).verify(signature, message, STATEMENT_MLDSA44_CONTEXT)
        except InvalidSignature:
            raise SignatureError(
                f"couldn't verify signature by {self.name}+{self.key_id.hex()}: "
                "ML-DSA-44 verification failed"
            ) from None


class StatementMLDSA44Signer:
    """The private half of a :class:`StatementMLDSA44Key`, kept as its FIPS 204 seed ξ (32
    bytes). Signing is hedged (OpenSSL mixes in fresh randomness): two signatures of one text
    differ, and both verify. The repr never shows the seed."""

    __slots__ = ("_private", "_seed", "verifier_key")

    verifier_key: StatementMLDSA44Key

    def __init__(self, name: str, seed: bytes) -> None:
        check_key_name(name)
        if len(seed) != MLDSA44_SEED_SIZE:
            raise MalformedError(
                f"couldn't build ML-DSA-44 signer {excerpt(name)}: seed is {len(seed)} bytes, "
                f"not {MLDSA44_SEED_SIZE}"
            )
        self._seed = seed
        self._private = MLDSA44PrivateKey.from_seed_bytes(seed)
        public = self._private.public_key().public_bytes_raw()
        self.verifier_key = StatementMLDSA44Key.from_public_key(name, public)

    @classmethod
    def generate(cls, name: str) -> StatementMLDSA44Signer:
        """A signer with a fresh seed from the OS CSPRNG."""
        return cls(name, secrets.token_bytes(MLDSA44_SEED_SIZE))

    @classmethod
    def parse_private_key(cls, text: str) -> StatementMLDSA44Signer:
        """Parse ``PRIVATE+KEY+<name>+<hex8>+<base64(type ‖ seed)>`` strictly; the key ID must
        be the derived public key's. Messages never include key material."""
        name, hex8, raw = parse_private_key_line(text)
        if not raw.startswith(STATEMENT_MLDSA44_TYPE) or len(raw) != 24 + MLDSA44_SEED_SIZE:
            raise MalformedError(
                f"couldn't parse private key of {excerpt(name)}: not an ML-DSA-44 statement key "
                f"(the 24-byte type and a {MLDSA44_SEED_SIZE}-byte seed)"
            )
        signer = cls(name, raw[len(STATEMENT_MLDSA44_TYPE) :])
        check_private_key_id(name, hex8, signer.verifier_key.key_id)
        return signer

    @property
    def name(self) -> str:
        """The key name written on signature lines."""
        return self.verifier_key.name

    @property
    def vkey(self) -> str:
        """The public vkey string."""
        return self.verifier_key.vkey()

    def private_key_text(self) -> str:
        """The ``PRIVATE+KEY+…`` line :meth:`parse_private_key` reads back."""
        key = self.verifier_key
        data = encode_base64(STATEMENT_MLDSA44_TYPE + self._seed)
        return f"{PRIVATE_KEY_PREFIX}{key.name}+{key.key_id.hex()}+{data}"

    def sign(self, message: bytes) -> bytes:
        """The 2,420-byte signature of ``message`` (a statement's note text)."""
        return self._private.sign(message, STATEMENT_MLDSA44_CONTEXT)

    def __repr__(self) -> str:
        return f"StatementMLDSA44Signer({self.name}+{self.verifier_key.key_id.hex()})"
