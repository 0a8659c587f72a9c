"""C2SP signed-note: verifier keys, Ed25519 and ML-DSA-44 signers, and notes (text and signature
lines).

A signed note is a UTF-8 text ending in a newline, a blank line, then one or more lines
``— <key name> base64(key ID ‖ signature)``. It carries checkpoints, cosignatures and the
ledger's statements, so this module is the one place where signature lines are parsed,
formatted, created and checked (https://c2sp.org/signed-note).

Kept whole: keys, signature lines and notes are one format, and splitting them would put the
strict parser and the formatter it must mirror in different rooms.

Invariants this module keeps:

- Parsing is strict and canonical: :func:`parse_note` accepts exactly the byte strings that
  :func:`format_note` produces, so ``format_note(parse_note(b)) == b`` for every accepted ``b``.
  Malformed signature lines reject the whole note; they are never skipped.
- A :class:`VerifierKey` exists only for a well-formed name, a supported signature type, a key ID
  that matches ``SHA-256(name ‖ 0x0A ‖ type ‖ public key)[:4]``, and a public key of the type's
  algorithm: for 0x01 and 0x04 a canonical Ed25519 point in the prime-order subgroup (so never
  one of the small-order points, with which a signature with R = identity and S = 0 would verify
  every message); for 0x06 a 1,312-byte ML-DSA-44 public key (FIPS 204).
- Ed25519 verification goes through libsodium, which also rejects non-canonical S and small-order
  R; ML-DSA-44 through pyca/cryptography (OpenSSL), always *pure* ML-DSA with the empty context
  string, as C2SP tlog-cosignature v1.1.0-rc.1 requires.
- A key of type 0x06 signs only the ``subtree/v1`` cosigned message (``ledger.tlog.checkpoint``),
  never a note text: :func:`sign_note` and :func:`verify_note` handle type 0x01 only.
- vkeys are written with a lowercase hex key ID and canonical padded base64; only that exact
  spelling parses, so a key has one vkey string and vkeys can be compared as strings.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

import nacl.bindings
import nacl.exceptions
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA44PrivateKey, MLDSA44PublicKey

from ledger.errors import MalformedError, SignatureError

ALG_ED25519: Final = 0x01
"""Signature type of plain Ed25519 note signatures (checkpoints, statements)."""

ALG_COSIGNATURE_V1: Final = 0x04
"""Signature type of timestamped Ed25519 witness cosignatures (c2sp.org/tlog-cosignature)."""

ALG_MLDSA44: Final = 0x06
"""Signature type of ML-DSA-44 cosignatures over the ``subtree/v1`` message
(c2sp.org/tlog-cosignature v1.1.0-rc.1): a log's post-quantum checkpoint signature and a
witness's post-quantum cosignature."""

SUPPORTED_ALGS: Final = frozenset({ALG_ED25519, ALG_COSIGNATURE_V1, ALG_MLDSA44})
_ALG_NAMES: Final = "0x01 (Ed25519), 0x04 (cosignature/v1) or 0x06 (ML-DSA-44)"

MAX_SIGNATURES: Final = 100
"""A note with more signature lines than this is rejected (the spec requires accepting 16)."""

SIGNATURE_PREFIX: Final = "— "
"""Every signature line starts with an em dash (U+2014) and a space."""

KEY_ID_SIZE: Final = 4
ED25519_PUBLIC_KEY_SIZE: Final = 32
ED25519_SEED_SIZE: Final = 32
ED25519_SIGNATURE_SIZE: Final = 64
MLDSA44_PUBLIC_KEY_SIZE: Final = 1312
MLDSA44_SEED_SIZE: Final = 32
"""An ML-DSA-44 private key is kept in its FIPS 204 seed form (ξ, 32 bytes)."""
MLDSA44_SIGNATURE_SIZE: Final = 2420
MLDSA44_CONTEXT: Final = b""
"""tlog-cosignature: pure ML-DSA-44 with the empty context string."""

_PUBLIC_KEY_SIZES: Final = {
    ALG_ED25519: ED25519_PUBLIC_KEY_SIZE,
    ALG_COSIGNATURE_V1: ED25519_PUBLIC_KEY_SIZE,
    ALG_MLDSA44: MLDSA44_PUBLIC_KEY_SIZE,
}
_SEED_SIZES: Final = {
    ALG_ED25519: ED25519_SEED_SIZE,
    ALG_COSIGNATURE_V1: ED25519_SEED_SIZE,
    ALG_MLDSA44: MLDSA44_SEED_SIZE,
}

PRIVATE_KEY_PREFIX: Final = "PRIVATE+KEY+"

_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_CONTROL_BYTES = bytes(range(0x0A)) + bytes(range(0x0B, 0x20))
"""The bytes :data:`_CONTROL` matches. In UTF-8 they only ever encode those very characters
(every byte of a multi-byte sequence is >= 0x80), so a UTF-8 encoding without them is a text
without a match: :func:`_find_control` checks the bytes at C speed and runs the regex only to
locate a character it found."""
_HEX8 = re.compile(r"[0-9a-f]{8}")
_EXCERPT_CHARS = 80


def _find_control(text: str, encoded: bytes) -> re.Match[str] | None:
    """``_CONTROL.search(text)``, given ``encoded``, the UTF-8 (or ``surrogatepass``) encoding
    of ``text``: deleting the control bytes changes the length only if there is one."""
    if len(encoded.translate(None, _CONTROL_BYTES)) == len(encoded):
        return None
    return _CONTROL.search(text)


def excerpt(value: str | bytes) -> str:
    """Return ``repr(value)``, cut to a bounded length, for error messages about hostile input."""
    if len(value) <= _EXCERPT_CHARS:
        return repr(value)
    return repr(value[:_EXCERPT_CHARS]) + f"… ({len(value)} long)"


def decode_base64(text: str, what: str) -> bytes:
    """Decode standard padded base64 (RFC 4648 §4) that is in its one canonical spelling.

    Rejects characters outside the alphabet, missing or extra padding, and non-zero padding bits,
    so that every byte string has exactly one accepted encoding. ``what`` names the field in the
    :class:`MalformedError` message.
    """
    try:
        raw = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError) as err:
        raise MalformedError(f"couldn't decode {what} {excerpt(text)}: {err}") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise MalformedError(f"couldn't decode {what} {excerpt(text)}: not canonical base64")
    return raw


def encode_base64(data: bytes) -> str:
    """Encode ``data`` as standard padded base64, the inverse of :func:`decode_base64`."""
    return base64.b64encode(data).decode("ascii")


def check_key_name(name: str) -> None:
    """Raise :class:`MalformedError` unless ``name`` is a valid signed-note key name.

    Valid: non-empty, encodable as UTF-8, no ``+``, no Unicode space (``str.isspace``, a superset
    of Go's ``unicode.IsSpace``) and no ASCII control character (a note may not contain one).
    Valid names of up to :data:`_CACHED_NAME_CHARS` characters are remembered
    (:func:`_check_str_key_name`): a verifier meets the same few names on a million signature
    lines.
    """
    if type(name) is str and len(name) <= _CACHED_NAME_CHARS:
        _check_str_key_name(name)
    else:
        _check_key_name(name)


_CACHED_NAME_CHARS: Final = 256
"""Longest key name :func:`check_key_name` remembers, so that its cache stays small."""


@functools.lru_cache(maxsize=4096)
def _check_str_key_name(name: str) -> None:
    """:func:`_check_key_name`, cached for valid names (a refusal raises, so is never cached)."""
    _check_key_name(name)


def _check_key_name(name: str) -> None:
    if not name:
        raise MalformedError("couldn't accept key name '': it is empty")
    if "+" in name:
        raise MalformedError(f"couldn't accept key name {excerpt(name)}: it contains '+'")
    if any(c.isspace() or c < "\x20" for c in name):
        raise MalformedError(
            f"couldn't accept key name {excerpt(name)}: it contains a space or control character"
        )
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as err:
        raise MalformedError(f"couldn't accept key name {excerpt(name)}: {err.reason}") from None


def key_id(name: str, alg: int, public_key: bytes) -> bytes:
    """Return the 4-byte key ID ``SHA-256(name ‖ 0x0A ‖ alg ‖ public_key)[:4]``."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([alg]) + public_key).digest()
    return digest[:KEY_ID_SIZE]


@functools.lru_cache(maxsize=64)
def _mldsa44_public_key(public_key: bytes) -> MLDSA44PublicKey:
    """The parsed ML-DSA-44 key of ``public_key`` (cached: a verifier meets the same few keys on
    every checkpoint, and parsing expands the 1,312 bytes)."""
    return MLDSA44PublicKey.from_public_bytes(public_key)


def _check_mldsa44_key(public_key: bytes, name: str) -> None:
    if len(public_key) != MLDSA44_PUBLIC_KEY_SIZE:
        raise MalformedError(
            f"couldn't accept ML-DSA-44 public key of {excerpt(name)}: it is "
            f"{len(public_key)} bytes, not {MLDSA44_PUBLIC_KEY_SIZE}"
        )
    try:
        _mldsa44_public_key(public_key)
    except ValueError as err:
        raise MalformedError(
            f"couldn't accept ML-DSA-44 public key of {excerpt(name)}: {err}"
        ) from None


def _check_public_key(alg: int, public_key: bytes, name: str) -> None:
    if alg == ALG_MLDSA44:
        _check_mldsa44_key(public_key, name)
    else:
        _check_ed25519_point(public_key, name)


def _check_ed25519_point(public_key: bytes, name: str) -> None:
    if len(public_key) != ED25519_PUBLIC_KEY_SIZE:
        raise MalformedError(
            f"couldn't accept public key of {excerpt(name)}: it is {len(public_key)} bytes, "
            f"not {ED25519_PUBLIC_KEY_SIZE}"
        )
    # libsodium: canonical encoding, on the curve, in the prime-order subgroup, not small order.
    if not nacl.bindings.crypto_core_ed25519_is_valid_point(public_key):
        raise MalformedError(
            f"couldn't accept public key {public_key.hex()} of {excerpt(name)}: "
            "not a canonical Ed25519 point of prime order"
        )


@dataclass(frozen=True, slots=True, repr=False)
class VerifierKey:
    """A public key that checks note signatures, as named by a C2SP vkey.

    Construction validates every field (see the module invariants), so holding a VerifierKey
    means holding a usable key. Two VerifierKeys are equal exactly when their vkeys are equal.
    """

    name: str
    key_id: bytes
    alg: int
    public_key: bytes

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if self.alg not in SUPPORTED_ALGS:
            raise MalformedError(
                f"couldn't accept key {excerpt(self.name)}: signature type 0x{self.alg:02x} "
                f"is not {_ALG_NAMES}"
            )
        _check_public_key(self.alg, self.public_key, self.name)
        expected = key_id(self.name, self.alg, self.public_key)
        if self.key_id != expected:
            raise MalformedError(
                f"couldn't accept key {excerpt(self.name)}: key id {self.key_id.hex()} "
                f"is not {expected.hex()}, the hash of its name and public key"
            )

    @classmethod
    def from_public_key(cls, name: str, alg: int, public_key: bytes) -> VerifierKey:
        """Build the key of ``name`` for signature type ``alg``, computing its key ID."""
        check_key_name(name)
        return cls(name, key_id(name, alg, public_key), alg, public_key)

    @classmethod
    def parse(cls, vkey: str) -> VerifierKey:
        """Parse ``<name>+<hex8 key ID>+<base64(type ‖ public key)>``, strictly.

        The string is split on its first two ``+`` only, since base64 may contain ``+``.
        """
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
        if not raw or raw[0] not in SUPPORTED_ALGS:
            kind = f"0x{raw[0]:02x}" if raw else "missing"
            raise MalformedError(
                f"couldn't parse vkey {excerpt(vkey)}: signature type {kind} is not {_ALG_NAMES}"
            )
        size = _PUBLIC_KEY_SIZES[raw[0]]
        if len(raw) != 1 + size:
            raise MalformedError(
                f"couldn't parse vkey {excerpt(vkey)}: key data is {len(raw)} bytes, "
                f"not {1 + size} (type byte 0x{raw[0]:02x} and a {size}-byte key)"
            )
        return cls(name, bytes.fromhex(hex8), raw[0], raw[1:])

    def vkey(self) -> str:
        """Return the vkey string; ``VerifierKey.parse(k.vkey()) == k``."""
        key64 = encode_base64(bytes([self.alg]) + self.public_key)
        return f"{self.name}+{self.key_id.hex()}+{key64}"

    def __repr__(self) -> str:
        return f"VerifierKey({self.vkey()!r})"

    def _verify_mldsa44(self, message: bytes, signature: bytes) -> None:
        if len(signature) != MLDSA44_SIGNATURE_SIZE:
            raise SignatureError(
                f"couldn't verify signature by {self.name}+{self.key_id.hex()}: it is "
                f"{len(signature)} bytes, not {MLDSA44_SIGNATURE_SIZE}"
            )
        try:
            _mldsa44_public_key(self.public_key).verify(signature, message, MLDSA44_CONTEXT)
        except InvalidSignature:
            raise SignatureError(
                f"couldn't verify signature by {self.name}+{self.key_id.hex()}: "
                "ML-DSA-44 verification failed"
            ) from None

    def verify_signature(self, message: bytes, signature: bytes) -> None:
        """Check a raw ``signature`` over ``message``; raise SignatureError if not.

        This is the bare check of the key's algorithm: Ed25519 (64 bytes) for types 0x01 and
        0x04, pure ML-DSA-44 with the empty context (2,420 bytes) for type 0x06. For a
        cosignature key (0x04, 0x06) the caller passes the framed message (see
        ``ledger.tlog.checkpoint``).
        """
        if self.alg == ALG_MLDSA44:
            self._verify_mldsa44(message, signature)
            return
        if len(signature) != ED25519_SIGNATURE_SIZE:
            raise SignatureError(
                f"couldn't verify signature by {self.vkey()}: it is {len(signature)} bytes, "
                f"not {ED25519_SIGNATURE_SIZE}"
            )
        try:
            nacl.bindings.crypto_sign_open(signature + message, self.public_key)
        except nacl.exceptions.BadSignatureError:
            raise SignatureError(
                f"couldn't verify signature by {self.vkey()}: Ed25519 verification failed"
            ) from None


def parse_private_key_line(text: str) -> tuple[str, str, bytes]:
    """Split a ``PRIVATE+KEY+<name>+<hex8>+<base64 key data>`` line, strictly: the key name
    valid, the key ID 8 lowercase hex digits, the key data canonical base64. Returns the name,
    the key ID as written and the decoded key data (type and seed: each key type checks its
    own). Messages never include key material; no surrounding whitespace is accepted."""
    if not text.startswith(PRIVATE_KEY_PREFIX):
        raise MalformedError("couldn't parse private key: it does not start with PRIVATE+KEY+")
    parts = text[len(PRIVATE_KEY_PREFIX) :].split("+", 2)
    if len(parts) != 3:
        raise MalformedError(
            "couldn't parse private key: want PRIVATE+KEY+<name>+<hex8>+<base64 key>"
        )
    name, hex8, key64 = parts
    check_key_name(name)
    if not _HEX8.fullmatch(hex8):
        raise MalformedError(
            f"couldn't parse private key of {excerpt(name)}: key id is not 8 lowercase hex digits"
        )
    try:
        raw = decode_base64(key64, "private key")
    except MalformedError:
        raise MalformedError(
            f"couldn't parse private key of {excerpt(name)}: key data is not canonical base64"
        ) from None
    return name, hex8, raw


def check_private_key_id(name: str, hex8: str, key_id: bytes) -> None:
    """Refuse a private key line whose key ID (``hex8``) is not ``key_id``, the ID of the
    public key its seed derives."""
    if key_id.hex() != hex8:
        raise MalformedError(
            f"couldn't parse private key of {excerpt(name)}: key id {hex8} is not "
            f"{key_id.hex()}, the id of its public key"
        )


class Signer:
    """A private key with its key name and signature type: Ed25519 or ML-DSA-44.

    ``alg`` is :data:`ALG_ED25519` for note signatures; ``ledger.tlog.checkpoint`` wraps a signer of
    type :data:`ALG_COSIGNATURE_V1` (Ed25519) or :data:`ALG_MLDSA44` for cosignatures, and a log's
    ML-DSA-44 key (type 0x06, named after the origin) signs its checkpoints' ``subtree/v1``
    messages. Both keys are kept as their 32-byte seeds (Ed25519: RFC 8032; ML-DSA-44: the FIPS
    204 seed ξ). The repr never shows the seed.
    """

    __slots__ = ("_mldsa44", "_secret_key", "_seed", "verifier_key")

    verifier_key: VerifierKey
    _seed: bytes
    _secret_key: bytes
    _mldsa44: MLDSA44PrivateKey | None

    def __init__(self, name: str, seed: bytes, alg: int = ALG_ED25519) -> None:
        """Derive the key pair of ``seed`` (32 bytes) under ``name`` and signature type ``alg``."""
        check_key_name(name)
        if alg not in SUPPORTED_ALGS:
            raise MalformedError(
                f"couldn't build signer {excerpt(name)}: signature type 0x{alg:02x} is not "
                f"{_ALG_NAMES}"
            )
        if len(seed) != _SEED_SIZES[alg]:
            raise MalformedError(
                f"couldn't build signer {excerpt(name)}: seed is {len(seed)} bytes, "
                f"not {_SEED_SIZES[alg]}"
            )
        self._seed = seed
        if alg == ALG_MLDSA44:
            self._mldsa44 = MLDSA44PrivateKey.from_seed_bytes(seed)
            self._secret_key = b""
            public_key = self._mldsa44.public_key().public_bytes_raw()
        else:
            self._mldsa44 = None
            public_key, self._secret_key = nacl.bindings.crypto_sign_seed_keypair(seed)
        self.verifier_key = VerifierKey.from_public_key(name, alg, public_key)

    @classmethod
    def generate(cls, name: str, alg: int = ALG_ED25519) -> Signer:
        """Return a signer with a fresh random seed from the OS CSPRNG."""
        if alg not in _SEED_SIZES:
            raise MalformedError(
                f"couldn't generate key {excerpt(name)}: signature type 0x{alg:02x} is not "
                f"{_ALG_NAMES}"
            )
        return cls(name, secrets.token_bytes(_SEED_SIZES[alg]), alg)

    @classmethod
    def from_seed(cls, name: str, seed: bytes, alg: int = ALG_ED25519) -> Signer:
        """Return the deterministic signer of a 32-byte ``seed``."""
        return cls(name, seed, alg)

    @classmethod
    def parse_private_key(cls, text: str) -> Signer:
        """Parse Go's ``PRIVATE+KEY+<name>+<hex8>+<base64(type ‖ seed)>`` format, strictly.

        For type 0x06 the seed is the 32-byte FIPS 204 ML-DSA-44 seed ξ, in the same layout
        (this project's extension of Go's format; see docs/FORMAT.md §2). The key ID must be the
        ID of the derived public key. Error messages never include the key material. No
        surrounding whitespace is accepted: callers strip file contents.
        """
        name, hex8, raw = parse_private_key_line(text)
        alg = raw[0] if raw else -1
        if alg not in SUPPORTED_ALGS:
            raise MalformedError(
                f"couldn't parse private key of {excerpt(name)}: signature type "
                f"{f'0x{alg:02x}' if raw else 'missing'} is not {_ALG_NAMES}"
            )
        if len(raw) != 1 + _SEED_SIZES[alg]:
            raise MalformedError(
                f"couldn't parse private key of {excerpt(name)}: key data is {len(raw)} bytes, "
                f"not {1 + _SEED_SIZES[alg]} (type byte and a {_SEED_SIZES[alg]}-byte seed)"
            )
        signer = cls(name, raw[1:], alg)
        check_private_key_id(name, hex8, signer.verifier_key.key_id)
        return signer

    @property
    def name(self) -> str:
        """The key name written on signature lines."""
        return self.verifier_key.name

    @property
    def vkey(self) -> str:
        """The public vkey string of this signer."""
        return self.verifier_key.vkey()

    def private_key_text(self) -> str:
        """Return the ``PRIVATE+KEY+…`` text that :meth:`parse_private_key` reads back."""
        key = self.verifier_key
        data = encode_base64(bytes([key.alg]) + self._seed)
        return f"{PRIVATE_KEY_PREFIX}{key.name}+{key.key_id.hex()}+{data}"

    def sign(self, message: bytes) -> bytes:
        """Return the raw signature of ``message``: Ed25519 (64 bytes, deterministic) or, for a
        type 0x06 key, pure ML-DSA-44 with the empty context (2,420 bytes, hedged: OpenSSL mixes
        fresh randomness in, so two signatures of one message differ and both verify)."""
        if self._mldsa44 is not None:
            return self._mldsa44.sign(message, MLDSA44_CONTEXT)
        signed: bytes = nacl.bindings.crypto_sign(message, self._secret_key)
        return signed[:ED25519_SIGNATURE_SIZE]

    def __repr__(self) -> str:
        return f"Signer({self.vkey!r})"


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: the key name, the 4-byte key ID, and the signature bytes after it."""

    name: str
    key_id: bytes
    signature: bytes

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if len(self.key_id) != KEY_ID_SIZE:
            raise MalformedError(
                f"couldn't accept signature by {excerpt(self.name)}: key id is "
                f"{len(self.key_id)} bytes, not {KEY_ID_SIZE}"
            )
        if not self.signature:
            raise MalformedError(
                f"couldn't accept signature by {excerpt(self.name)}: the signature is empty"
            )

    def line(self) -> str:
        """Return the signature line, ``— <name> base64(key ID ‖ signature)\\n``."""
        return f"{SIGNATURE_PREFIX}{self.name} {encode_base64(self.key_id + self.signature)}\n"

    def is_from(self, key: VerifierKey) -> bool:
        """Whether this line names ``key`` by key name and key ID (its signature is unchecked)."""
        return self.name == key.name and self.key_id == key.key_id


def _check_text(text: str, what: str, encoded: bytes | None = None) -> None:
    """Refuse a note text that does not end in a newline or holds a control character.
    ``encoded``, when given, is ``text`` encoded as UTF-8 (see :func:`_find_control`)."""
    if not text.endswith("\n"):
        raise MalformedError(
            f"couldn't accept {what} {excerpt(text)}: it does not end in a newline"
        )
    control = _CONTROL.search(text) if encoded is None else _find_control(text, encoded)
    if control is not None:
        raise MalformedError(
            f"couldn't accept {what} {excerpt(text)}: control character "
            f"{control.group()!r} at offset {control.start()}"
        )


@dataclass(frozen=True, slots=True)
class Note:
    """A signed note: ``text`` (ending in a newline) and its signature lines, in order.

    Construction enforces what :func:`parse_note` enforces, so every Note formats to bytes that
    parse back to an equal Note.
    """

    text: str
    signatures: tuple[NoteSignature, ...]

    def __post_init__(self) -> None:
        # Encode first (its failure is reported after _check_text's refusals, as before), so
        # that _check_text can look for control characters in the bytes.
        encoded: bytes | None = None
        encode_error: UnicodeEncodeError | None = None
        if type(self.text) is str:
            try:
                encoded = self.text.encode("utf-8")
            except UnicodeEncodeError as err:
                encode_error = err
        _check_text(self.text, "note text", encoded)
        if encode_error is not None:
            raise MalformedError(f"couldn't accept note text: {encode_error.reason}") from None
        if encoded is None:
            try:
                self.text.encode("utf-8")
            except UnicodeEncodeError as err:
                raise MalformedError(f"couldn't accept note text: {err.reason}") from None
        if not self.signatures:
            raise MalformedError(f"couldn't accept note {excerpt(self.text)}: it has no signature")
        if len(self.signatures) > MAX_SIGNATURES:
            raise MalformedError(
                f"couldn't accept note {excerpt(self.text)}: {len(self.signatures)} signatures, "
                f"more than {MAX_SIGNATURES}"
            )

    def with_signature(self, signature: NoteSignature) -> Note:
        """Return this note with ``signature`` added, once per key.

        A line with the same key name and key ID is replaced in place (and any further ones
        dropped); otherwise the line is appended. Adding the same signature twice is a no-op.
        """
        kept: list[NoteSignature] = []
        replaced = False
        for existing in self.signatures:
            if existing.name == signature.name and existing.key_id == signature.key_id:
                if not replaced:
                    kept.append(signature)
                    replaced = True
            else:
                kept.append(existing)
        if not replaced:
            kept.append(signature)
        return Note(self.text, tuple(kept))


def parse_note(data: bytes | str) -> Note:
    """Parse a signed note strictly; raise :class:`MalformedError` for anything malformed.

    Rules: valid UTF-8; no ASCII control character but ``\\n`` (so no ``\\r``); split at the
    LAST blank line; the text ends in ``\\n``; every signature line is exactly
    ``— <name> <base64(key ID ‖ signature)>`` with a valid key name and canonical base64 of at
    least 5 bytes; between 1 and :data:`MAX_SIGNATURES` lines. Signatures are not verified here.
    """
    if isinstance(data, bytes):
        try:
            message = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise MalformedError(
                f"couldn't parse note: invalid UTF-8 at byte {err.start}: {err.reason}"
            ) from None
        control = _find_control(message, data)
    else:
        message = data
        control = (
            _find_control(message, message.encode("utf-8", "surrogatepass"))
            if type(message) is str
            else _CONTROL.search(message)
        )
    if control is not None:
        raise MalformedError(
            f"couldn't parse note {excerpt(message)}: control character "
            f"{control.group()!r} at offset {control.start()}"
        )
    split = message.rfind("\n\n")
    if split < 0:
        raise MalformedError(
            f"couldn't parse note {excerpt(message)}: no blank line before the signatures"
        )
    text, block = message[: split + 1], message[split + 2 :]
    if not block.endswith("\n"):
        raise MalformedError(
            f"couldn't parse note {excerpt(message)}: the signature block {excerpt(block)} "
            "is empty or does not end in a newline"
        )
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedError(
            f"couldn't parse note {excerpt(text)}: {len(lines)} signature lines, "
            f"more than {MAX_SIGNATURES}"
        )
    signatures = tuple(_parse_signature_line(number, line) for number, line in enumerate(lines, 1))
    try:
        return Note(text, signatures)
    except MalformedError as err:
        raise MalformedError(f"couldn't parse note: {err}") from None


def parse_signature_line(line: str) -> NoteSignature:
    """Parse one signature line (``— <name> <base64>``, with or without its newline)."""
    return _parse_signature_line(1, line.removesuffix("\n"))


def _parse_signature_line(number: int, line: str) -> NoteSignature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise MalformedError(
            f"couldn't parse signature line {number} {excerpt(line)}: "
            "it does not start with an em dash and a space"
        )
    fields = line[len(SIGNATURE_PREFIX) :].split(" ")
    if len(fields) != 2:
        raise MalformedError(
            f"couldn't parse signature line {number} {excerpt(line)}: "
            "want exactly a key name and a signature separated by one space"
        )
    name, sig64 = fields
    try:
        check_key_name(name)
        raw = decode_base64(sig64, "signature")
    except MalformedError as err:
        raise MalformedError(f"couldn't parse signature line {number}: {err}") from None
    if len(raw) <= KEY_ID_SIZE:
        raise MalformedError(
            f"couldn't parse signature line {number} {excerpt(line)}: {len(raw)} bytes "
            f"is too short for a {KEY_ID_SIZE}-byte key id and a signature"
        )
    return NoteSignature(name, raw[:KEY_ID_SIZE], raw[KEY_ID_SIZE:])


def format_note(note: Note) -> bytes:
    """Encode ``note``: text, blank line, signature lines; the inverse of :func:`parse_note`."""
    return (note.text + "\n" + "".join(s.line() for s in note.signatures)).encode("utf-8")


def _note_signature(text: str, signer: Signer) -> NoteSignature:
    key = signer.verifier_key
    if key.alg != ALG_ED25519:
        raise MalformedError(
            f"couldn't sign note with {key.vkey()}: signature type 0x{key.alg:02x} "
            "is not 0x01 (Ed25519)"
        )
    return NoteSignature(key.name, key.key_id, signer.sign(text.encode("utf-8")))


def sign_note(text: str, signers: Iterable[Signer]) -> bytes:
    """Sign ``text`` with each signer (0x01 keys only), one line per distinct key, in order."""
    _check_text(text, "note text")
    signatures: dict[VerifierKey, NoteSignature] = {}
    for signer in signers:
        if signer.verifier_key not in signatures:
            signatures[signer.verifier_key] = _note_signature(text, signer)
    return format_note(Note(text, tuple(signatures.values())))


def add_signature(note_bytes: bytes, signer: Signer) -> bytes:
    """Parse ``note_bytes`` and add the signer's line (see :meth:`Note.with_signature`).

    Idempotent: a note already carrying this key's (deterministic) signature is returned
    byte-identical. Existing signatures are not verified.
    """
    note = parse_note(note_bytes)
    return format_note(note.with_signature(_note_signature(note.text, signer)))


def index_keys(known: Iterable[VerifierKey], alg: int) -> dict[tuple[str, bytes], VerifierKey]:
    """Index the keys of signature type ``alg`` by (name, key ID); other types are left out.

    Raises :class:`MalformedError` if two different keys share a name and key ID (a 32-bit ID
    collision in a trusted key list means the list cannot be used).
    """
    index: dict[tuple[str, bytes], VerifierKey] = {}
    for key in known:
        if key.alg != alg:
            continue
        other = index.setdefault((key.name, key.key_id), key)
        if other != key:
            raise MalformedError(
                f"couldn't use known keys {other.vkey()} and {key.vkey()}: "
                "they share a key name and key id"
            )
    return index


def ed25519_signers(
    note: Note, by_id: Mapping[tuple[str, bytes], VerifierKey], what: str
) -> dict[VerifierKey, None]:
    """The keys of ``by_id`` (Ed25519 keys by name and key ID, :func:`index_keys`) whose lines
    on ``note`` verify, distinct, in line order (dict keys). Lines of other keys are ignored; a
    line naming one of them that does not verify raises :class:`SignatureError` as
    ``couldn't verify {what}: line N: …``. The result may be empty."""
    message = note.text.encode("utf-8")
    verified: dict[VerifierKey, None] = {}
    for number, signature in enumerate(note.signatures, 1):
        key = by_id.get((signature.name, signature.key_id))
        if key is None:
            continue
        try:
            key.verify_signature(message, signature.signature)
        except SignatureError as err:
            raise SignatureError(f"couldn't verify {what}: line {number}: {err}") from None
        verified[key] = None
    return verified


def verify_note(note: Note, known: Iterable[VerifierKey]) -> list[VerifierKey]:
    """Return the known Ed25519 (0x01) keys that signed ``note``, distinct, in line order.

    Lines from unknown keys (including keys of other signature types, such as cosignature keys)
    are ignored. A line whose key name and key ID match a known key must verify, or the whole
    note is rejected with :class:`SignatureError`; so is a note with no verified known signature.
    """
    by_id = index_keys(known, ALG_ED25519)
    verified = ed25519_signers(note, by_id, f"note {excerpt(note.text)}")
    if not verified:
        names = sorted({f"{s.name}+{s.key_id.hex()}" for s in note.signatures})
        raise SignatureError(
            f"couldn't verify note {excerpt(note.text)}: no signature from a known key "
            f"(signed by {', '.join(names)}; known: {', '.join(k.vkey() for k in by_id.values())})"
        )
    return list(verified)
