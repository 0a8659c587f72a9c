"""C2SP tlog-checkpoint, tlog-cosignature (cosignature/v1 and subtree/v1) and tlog-policy.

Revisions followed: tlog-checkpoint v1.0.0 (with the current text's "logs SHOULD use ML-DSA-44
cosignatures"), tlog-cosignature v1.1.0-rc.1, tlog-policy as of the same C2SP tree (see
docs/FORMAT.md §2 and §checkpoints).

A checkpoint is a signed note whose text is ``origin\\nsize\\nbase64(root)\\n`` plus optional
extension lines (https://c2sp.org/tlog-checkpoint). Cosignature lines are encoded as
key ID ‖ 8-byte big-endian timestamp T ‖ signature (https://c2sp.org/tlog-cosignature):

- type 0x04 (Ed25519): the signature is over ``cosignature/v1\\ntime <T>\\n`` followed by the
  whole checkpoint text;
- type 0x06 (ML-DSA-44, pure, empty context): the signature is over the binary ``subtree/v1``
  message :func:`subtree_message` — label ``subtree/v1\\n\\0``, the cosigner name and the origin
  each with a one-byte length, T, start, end (all u64 big-endian) and the 32-byte root. It does
  not cover extension lines.

This log signs every checkpoint with its Ed25519 key (type 0x01, a plain note signature) and,
when it has one, with its ML-DSA-44 key (type 0x06, named after the origin, a ``subtree/v1``
cosignature with T = 0: the log makes no statement about time). A :class:`LogKeys` pins both
keys and says which must verify. A policy names the trusted logs and witnesses and the quorum of
witnesses a checkpoint needs (https://c2sp.org/tlog-policy).

Kept whole: the checkpoint text, the two cosigned messages over it, the log's key policy and the
witness policy that judge its signature lines are one format; split, the rule that an ML-DSA-44
signature covers no extension line would have to be restated in each part.

Rules this module enforces:

- A checkpoint's origin must equal its log key's name. tlog-checkpoint says the key name
  SHOULD match the origin and tlog-policy says it MUST; this ledger always signs that way, and a
  verifier that ignored the origin could be shown another log's tree under the same key.
- Unknown signature lines (other logs, "grease", unrelated witnesses) are ignored; a line that
  names a trusted key and fails to verify rejects the checkpoint.
- An ML-DSA-44 signature covers no extension line, so a checkpoint with extension lines is never
  signed with a 0x06 key here, and is refused by a :class:`LogKeys` whose required keys do not
  include the Ed25519 key (nothing of an accepted checkpoint goes unsigned).
- Sizes and timestamps are decimal without leading zeros and at most ``2**63 - 1``, the range Go
  verifiers accept.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, TypeAlias

from ledger.errors import MalformedError, RefusedError, SignatureError
from ledger.tlog.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    ALG_MLDSA44,
    ED25519_SIGNATURE_SIZE,
    MLDSA44_SIGNATURE_SIZE,
    Note,
    NoteSignature,
    Signer,
    VerifierKey,
    decode_base64,
    ed25519_signers,
    encode_base64,
    excerpt,
    format_note,
    index_keys,
    parse_note,
    sign_note,
    verify_note,
)

HASH_SIZE: Final = 32
MAX_INT63: Final = (1 << 63) - 1
"""Largest tree size, index or cosignature timestamp accepted (Go's ``int64``)."""

COSIGNATURE_V1_HEADER: Final = "cosignature/v1\n"
SUBTREE_V1_LABEL: Final = b"subtree/v1\n\x00"
"""The 12-byte label that starts the ML-DSA-44 ``cosigned_message`` (tlog-cosignature)."""
MAX_OPAQUE8: Final = 255
"""Longest cosigner name or origin (in UTF-8 bytes) the ``subtree/v1`` message can carry."""
TIMESTAMP_SIZE: Final = 8
COSIGNATURE_ALGS: Final = frozenset({ALG_COSIGNATURE_V1, ALG_MLDSA44})
"""Signature types of cosignature keys: 0x04 (Ed25519 cosignature/v1), 0x06 (ML-DSA-44)."""
_SIGNATURE_SIZES: Final = {
    ALG_COSIGNATURE_V1: ED25519_SIGNATURE_SIZE,
    ALG_MLDSA44: MLDSA44_SIGNATURE_SIZE,
}
QUORUM_NONE: Final = "none"
"""The predefined tlog-policy quorum that requires no cosignature."""

_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")
_CONTROL = re.compile(r"[\x00-\x1f]")


def parse_decimal(text: str, what: str) -> int:
    """Parse an ASCII decimal without sign or leading zeros, at most :data:`MAX_INT63`."""
    if not _DECIMAL.fullmatch(text) or int(text) > MAX_INT63:
        raise MalformedError(
            f"couldn't parse {what} {excerpt(text)}: want a decimal from 0 to {MAX_INT63} "
            "without leading zeros"
        )
    return int(text)


def _check_line(line: str, what: str) -> None:
    if not line:
        raise MalformedError(f"couldn't accept {what}: it is empty")
    control = _CONTROL.search(line)
    if control is not None:
        raise MalformedError(
            f"couldn't accept {what} {excerpt(line)}: control character {control.group()!r}"
        )
    try:
        line.encode("utf-8")
    except UnicodeEncodeError as err:
        raise MalformedError(f"couldn't accept {what} {excerpt(line)}: {err.reason}") from None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A log's tree head: origin, tree size, RFC 6962 root hash, and opaque extension lines.

    Construction validates the fields, so :meth:`body` is always a text that :meth:`parse`
    returns as an equal Checkpoint.
    """

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "checkpoint origin")
        if isinstance(self.size, bool) or not 0 <= self.size <= MAX_INT63:
            raise MalformedError(
                f"couldn't accept checkpoint of {excerpt(self.origin)}: size {self.size!r} "
                f"is not from 0 to {MAX_INT63}"
            )
        if len(self.root_hash) != HASH_SIZE:
            raise MalformedError(
                f"couldn't accept checkpoint of {excerpt(self.origin)}: root hash is "
                f"{len(self.root_hash)} bytes, not {HASH_SIZE}"
            )
        for extension in self.extensions:
            _check_line(extension, f"extension line of checkpoint {excerpt(self.origin)}")

    def body(self) -> str:
        """Return the note text: ``origin\\nsize\\nbase64(root)\\n`` then each extension line."""
        lines = [self.origin, str(self.size), encode_base64(self.root_hash), *self.extensions]
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse a checkpoint note text strictly (the inverse of :meth:`body`)."""
        if not text.endswith("\n"):
            raise MalformedError(
                f"couldn't parse checkpoint {excerpt(text)}: it does not end in a newline"
            )
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise MalformedError(
                f"couldn't parse checkpoint {excerpt(text)}: want origin, size and root lines"
            )
        origin, size, root, *extensions = lines
        try:
            return cls(
                origin,
                parse_decimal(size, "tree size"),
                decode_base64(root, "root hash"),
                tuple(extensions),
            )
        except MalformedError as err:
            raise MalformedError(f"couldn't parse checkpoint {excerpt(text)}: {err}") from None


def sign_checkpoint(
    checkpoint: Checkpoint, signer: Signer, extra_signers: Iterable[Signer] = ()
) -> bytes:
    """Return the checkpoint note signed by the log's ``signer`` first, then ``extra_signers``.

    This is the one function that signs a log's checkpoints. ``signer`` is the log's Ed25519
    key (type 0x01). Each extra signer of type 0x01 adds a plain note signature; each of type
    0x06 (the log's ML-DSA-44 key) adds a ``subtree/v1`` cosignature line with timestamp 0,
    after the Ed25519 lines, and must be named after the origin too (tlog-checkpoint: the log's
    key name SHOULD match the origin; this ledger requires it). A checkpoint with extension
    lines is refused an ML-DSA-44 signature, which would not cover them.

    The caller is responsible for never signing two checkpoints that are not consistent with
    each other. ML-DSA-44 signing is hedged, so two calls give different bytes (both valid).
    """
    if signer.name != checkpoint.origin:
        raise RefusedError(
            f"couldn't sign checkpoint of {excerpt(checkpoint.origin)} with {signer.vkey}: "
            "the key name is not the origin"
        )
    extras = list(extra_signers)
    note_signers = [signer, *(s for s in extras if s.verifier_key.alg != ALG_MLDSA44)]
    note = parse_note(sign_note(checkpoint.body(), note_signers))
    for extra in extras:
        if extra.verifier_key.alg != ALG_MLDSA44:
            continue
        if extra.name != checkpoint.origin:
            raise RefusedError(
                f"couldn't sign checkpoint of {excerpt(checkpoint.origin)} with ML-DSA-44 key "
                f"{extra.name}+{extra.verifier_key.key_id.hex()}: the key name is not the origin"
            )
        if checkpoint.extensions:
            raise RefusedError(
                f"couldn't sign checkpoint of {excerpt(checkpoint.origin)} with ML-DSA-44: it "
                "has extension lines, which the subtree/v1 message does not cover"
            )
        note = note.with_signature(CosignatureSigner(extra).cosign(checkpoint, 0))
    return format_note(note)


class MissingMLDSA44Signature(SignatureError):
    """A checkpoint carries no valid line of the pinned ML-DSA-44 key, which the key policy
    requires (F7.3). Under F7.4 that is also what a checkpoint of a log that added its key
    later looks like at a size up to the ``log_key`` entry: a verifier that does not replay
    the log (an offline proof) cannot tell the two apart by itself."""


class KeyPolicy(enum.Enum):
    """Which of a log's keys must have signed a checkpoint for it to be accepted."""

    ED25519 = "ed25519"
    MLDSA44 = "mldsa44"
    BOTH = "both"


@dataclass(frozen=True, slots=True)
class LogKeys:
    """A log's pinned keys — Ed25519 (type 0x01) and, optionally, ML-DSA-44 (type 0x06), both
    named after the origin — and the :class:`KeyPolicy` of which must verify.

    ``require`` defaults to both keys when the ML-DSA-44 key is pinned, else Ed25519. The
    Ed25519 key is the log's identity (:meth:`vkey`, trust states, evidence); a line from any
    pinned key that is present must verify, whether required or not (signed-note: a known key's
    bad signature rejects the note).
    """

    ed25519: VerifierKey
    mldsa44: VerifierKey | None = None
    require: KeyPolicy | None = None

    def __post_init__(self) -> None:
        if self.ed25519.alg != ALG_ED25519:
            raise MalformedError(
                f"couldn't pin log key {self.ed25519.vkey()}: signature type "
                f"0x{self.ed25519.alg:02x} is not 0x01 (Ed25519)"
            )
        if self.mldsa44 is not None:
            if self.mldsa44.alg != ALG_MLDSA44:
                raise MalformedError(
                    f"couldn't pin log key {self.mldsa44.name}+{self.mldsa44.key_id.hex()}: "
                    f"signature type 0x{self.mldsa44.alg:02x} is not 0x06 (ML-DSA-44)"
                )
            if self.mldsa44.name != self.ed25519.name:
                raise MalformedError(
                    f"couldn't pin log keys of {excerpt(self.ed25519.name)}: the ML-DSA-44 key "
                    f"is named {excerpt(self.mldsa44.name)}; both are named after the origin"
                )
        if self.policy in (KeyPolicy.MLDSA44, KeyPolicy.BOTH) and self.mldsa44 is None:
            raise MalformedError(
                f"couldn't pin log keys of {excerpt(self.ed25519.name)}: policy "
                f"{self.policy.value!r} requires an ML-DSA-44 key, and none is pinned"
            )

    @classmethod
    def parse(cls, vkeys: Iterable[str], require: KeyPolicy | str | None = None) -> LogKeys:
        """Pin the log keys given as vkeys (one of type 0x01, at most one of type 0x06)."""
        keys = [VerifierKey.parse(vkey) for vkey in vkeys]
        ed = [k for k in keys if k.alg == ALG_ED25519]
        pq = [k for k in keys if k.alg == ALG_MLDSA44]
        if len(ed) != 1 or len(pq) > 1 or len(ed) + len(pq) != len(keys):
            raise MalformedError(
                f"couldn't pin log keys: want one Ed25519 (0x01) vkey and at most one ML-DSA-44 "
                f"(0x06) vkey, got types {', '.join(f'0x{k.alg:02x}' for k in keys) or 'none'}"
            )
        policy: KeyPolicy | None
        if isinstance(require, str):
            try:
                policy = KeyPolicy(require)
            except ValueError:
                raise MalformedError(
                    f"couldn't pin log keys: policy {excerpt(require)} is not one of "
                    f"{', '.join(p.value for p in KeyPolicy)}"
                ) from None
        else:
            policy = require
        return cls(ed[0], pq[0] if pq else None, policy)

    @property
    def policy(self) -> KeyPolicy:
        """The effective policy (``require``, or its default)."""
        if self.require is not None:
            return self.require
        return KeyPolicy.BOTH if self.mldsa44 is not None else KeyPolicy.ED25519

    @property
    def name(self) -> str:
        """The log's origin (the name of its keys)."""
        return self.ed25519.name

    def vkey(self) -> str:
        """The Ed25519 vkey: the log's identity in trust states and evidence files."""
        return self.ed25519.vkey()

    def vkeys(self) -> list[str]:
        """Every pinned vkey, Ed25519 first (the order ``/v1/log`` publishes them in)."""
        return [self.ed25519.vkey()] + ([self.mldsa44.vkey()] if self.mldsa44 else [])

    def describe(self) -> str:
        """A short label for messages: the origin, the key IDs and the policy."""
        ids = "+".join(k.key_id.hex() for k in (self.ed25519, self.mldsa44) if k is not None)
        return f"{self.name} ({ids}, policy {self.policy.value})"


LogKey: TypeAlias = VerifierKey | LogKeys
"""What verifiers pin for a log: its Ed25519 key alone, or :class:`LogKeys` with a policy."""


@dataclass(frozen=True, slots=True)
class LogSigners:
    """A log's private keys, as its key file holds them: the Ed25519 key (type 0x01) and,
    for a hybrid log, the ML-DSA-44 key (type 0x06), both named after the origin.

    The key file is UTF-8 text, one ``PRIVATE+KEY+<name>+<hex8>+<base64(type ‖ seed)>`` line
    per key, the Ed25519 line first, each line ending in a newline (docs/FORMAT.md §2). A file
    of one Ed25519 line is a log key from before ML-DSA-44, still valid.
    """

    ed25519: Signer
    mldsa44: Signer | None = None

    def __post_init__(self) -> None:
        if self.ed25519.verifier_key.alg != ALG_ED25519:
            raise MalformedError(
                f"couldn't use log key {self.ed25519.vkey}: its first key has signature type "
                f"0x{self.ed25519.verifier_key.alg:02x}, not 0x01 (Ed25519)"
            )
        if self.mldsa44 is not None:
            if self.mldsa44.verifier_key.alg != ALG_MLDSA44:
                raise MalformedError(
                    f"couldn't use log key {excerpt(self.ed25519.name)}: its second key has "
                    f"signature type 0x{self.mldsa44.verifier_key.alg:02x}, not 0x06 (ML-DSA-44)"
                )
            if self.mldsa44.name != self.ed25519.name:
                raise MalformedError(
                    f"couldn't use log key {excerpt(self.ed25519.name)}: its ML-DSA-44 key is "
                    f"named {excerpt(self.mldsa44.name)}; both are named after the origin"
                )

    @classmethod
    def generate(cls, origin: str, *, mldsa44: bool = True) -> LogSigners:
        """Fresh keys for a new log of ``origin`` (hybrid unless ``mldsa44`` is false)."""
        return cls(
            Signer.generate(origin),
            Signer.generate(origin, ALG_MLDSA44) if mldsa44 else None,
        )

    @classmethod
    def parse(cls, text: str) -> LogSigners:
        """Read a key file's text (surrounding whitespace allowed, blank lines not)."""
        lines = text.strip().split("\n")
        if len(lines) > 2:
            raise MalformedError(
                f"couldn't parse log key file: {len(lines)} lines, want an Ed25519 key line "
                "and at most an ML-DSA-44 key line"
            )
        signers = [Signer.parse_private_key(line.strip()) for line in lines]
        return cls(signers[0], signers[1] if len(signers) == 2 else None)

    def text(self) -> str:
        """The key file's text, which :meth:`parse` reads back."""
        return "".join(s.private_key_text() + "\n" for s in (self.ed25519, self.mldsa44) if s)

    @property
    def name(self) -> str:
        """The log's origin."""
        return self.ed25519.name

    def extra(self) -> tuple[Signer, ...]:
        """The signers :func:`sign_checkpoint` takes beside the Ed25519 key."""
        return (self.mldsa44,) if self.mldsa44 is not None else ()

    def keys(self, require: KeyPolicy | None = None) -> LogKeys:
        """The public :class:`LogKeys` of these signers."""
        mldsa44 = self.mldsa44.verifier_key if self.mldsa44 is not None else None
        return LogKeys(self.ed25519.verifier_key, mldsa44, require)

    def sign(self, checkpoint: Checkpoint) -> bytes:
        """:func:`sign_checkpoint` with every key of the log."""
        return sign_checkpoint(checkpoint, self.ed25519, self.extra())

    def check_identity(self, log_vkey: str, mldsa_vkey: str | None) -> None:
        """Raise :class:`RefusedError` unless these are exactly the keys a log was created
        with: its Ed25519 vkey, and its ML-DSA-44 vkey or none. A hybrid log signed without
        its ML-DSA-44 key would fail every verifier that requires it; an ML-DSA-44 key the log
        has no record of would be announced out of band."""
        keys = self.keys()
        if keys.vkey() != log_vkey:
            raise RefusedError(
                f"couldn't use log key {keys.vkey()}: it is not this log's {log_vkey}"
            )
        mine = keys.mldsa44.vkey() if keys.mldsa44 is not None else None
        if mine != mldsa_vkey:
            have = "no ML-DSA-44 key" if mine is None else f"ML-DSA-44 key {keys.describe()}"
            want = "none" if mldsa_vkey is None else "another one"
            raise RefusedError(
                f"couldn't use the log keys of {excerpt(self.name)}: the key file holds {have}, "
                f"and the log was created with {want}"
            )


def pin_log_key(pinned: str | LogKey, require: KeyPolicy | str | None = None) -> LogKey:
    """What a verifier pins, from its configuration: a :data:`LogKey` as is (with ``require``
    applied), or a string of one or more vkeys separated by whitespace (``/v1/log``'s
    ``log_vkeys`` joined). A single Ed25519 vkey without ``require`` stays a bare key."""
    if isinstance(pinned, str):
        vkeys = pinned.split()
        if len(vkeys) == 1 and require is None:
            return VerifierKey.parse(vkeys[0])
        return LogKeys.parse(vkeys, require)
    if require is None:
        return pinned
    keys = log_keys(pinned)
    return LogKeys.parse(keys.vkeys(), require)


def log_keys(log_key: LogKey) -> LogKeys:
    """``log_key`` as :class:`LogKeys` (a bare Ed25519 key pins that key alone)."""
    return log_key if isinstance(log_key, LogKeys) else LogKeys(log_key)


def verified_log_keys(
    note: Note, checkpoint: Checkpoint, keys: Iterable[VerifierKey]
) -> list[VerifierKey]:
    """The log keys among ``keys`` with a valid line on ``note`` (the note of ``checkpoint``):
    type 0x01 keys by their note signature, type 0x06 keys by their ``subtree/v1`` line (any
    timestamp). Other types are ignored. A line that names one of the keys and does not verify
    raises :class:`SignatureError`. The result may be empty; an ML-DSA-44 line covers no
    extension line, which callers relying on it alone must refuse."""
    keys = list(keys)
    verified = ed25519_signers(
        note, index_keys(keys, ALG_ED25519), f"checkpoint of {excerpt(checkpoint.origin)}"
    )
    mldsa44 = [key for key in keys if key.alg == ALG_MLDSA44]
    for key in _verified_cosigners(note, checkpoint, mldsa44):
        verified[key] = None
    return list(verified)


def _open_signed(note: Note, log_keys: Iterable[VerifierKey]) -> Checkpoint:
    signers = verify_note(note, log_keys)
    checkpoint = Checkpoint.parse(note.text)
    if not any(key.name == checkpoint.origin for key in signers):
        raise RefusedError(
            f"couldn't open checkpoint of {excerpt(checkpoint.origin)}: it is signed by "
            f"{', '.join(k.vkey() for k in signers)}, whose name is not the origin"
        )
    return checkpoint


def open_checkpoint(note_bytes: bytes, log_key: LogKey) -> Checkpoint:
    """Verify the log's signature(s) on a checkpoint note and return the checkpoint.

    ``log_key`` is the log's Ed25519 key, or :class:`LogKeys` pinning its ML-DSA-44 key too
    with a policy. Steps: (1) parse the note and the checkpoint; (2) check the Ed25519 line if
    present (signed-note: a known key's bad line rejects); (3) check the ML-DSA-44 line if the
    key is pinned and the line present; (4) require every key the policy requires to have a
    valid line, and the origin to be the keys' name; (5) refuse extension lines unless the
    Ed25519 signature, which covers them, is required.

    Raises :class:`MalformedError` for a malformed note or checkpoint, :class:`SignatureError`
    if a required line is missing or a pinned key's line does not verify,
    :class:`RefusedError` if the origin is not the log key's name. Other signature lines are
    ignored here (see :func:`verify_cosignatures`).
    """
    if isinstance(log_key, VerifierKey) and log_key.alg != ALG_ED25519:
        raise MalformedError(
            f"couldn't open checkpoint with {log_key.vkey()}: a log key has signature type 0x01"
        )
    keys = log_keys(log_key)
    note = parse_note(note_bytes)
    if keys.mldsa44 is None:
        return _open_signed(note, [keys.ed25519])
    return _open_hybrid(note, keys)


def _open_hybrid(note: Note, keys: LogKeys) -> Checkpoint:
    mldsa44 = keys.mldsa44
    assert mldsa44 is not None  # the caller's branch
    checkpoint = Checkpoint.parse(note.text)
    what = f"checkpoint of {excerpt(checkpoint.origin)} size {checkpoint.size}"
    if checkpoint.origin != keys.name:
        raise RefusedError(
            f"couldn't open {what}: the origin is not the log keys' name {excerpt(keys.name)}"
        )
    ed_line = any(line.is_from(keys.ed25519) for line in note.signatures)
    ed_ok = False
    if ed_line or keys.policy is not KeyPolicy.MLDSA44:
        verify_note(note, [keys.ed25519])  # raises on a bad line, or on none if required
        ed_ok = True
    pq_ok = bool(_verified_cosigners(note, checkpoint, [mldsa44]))
    if keys.policy is not KeyPolicy.ED25519 and not pq_ok:
        raise MissingMLDSA44Signature(
            f"couldn't open {what}: no ML-DSA-44 signature from "
            f"{mldsa44.name}+{mldsa44.key_id.hex()}, which policy {keys.policy.value!r} requires"
        )
    if checkpoint.extensions and not ed_ok:
        raise RefusedError(
            f"couldn't open {what}: it has extension lines, which no required signature covers"
        )
    return checkpoint


def cosignature_message(checkpoint: Checkpoint, timestamp: int) -> bytes:
    """Return the cosignature/v1 signed message: header, ``time <T>`` line, checkpoint body."""
    return f"{COSIGNATURE_V1_HEADER}time {timestamp}\n{checkpoint.body()}".encode()


def _opaque8(value: str, what: str) -> bytes:
    raw = value.encode("utf-8")
    if not 1 <= len(raw) <= MAX_OPAQUE8:
        raise MalformedError(
            f"couldn't encode {what} {excerpt(value)} in a subtree/v1 message: it is "
            f"{len(raw)} bytes, not 1 to {MAX_OPAQUE8}"
        )
    return bytes([len(raw)]) + raw


def subtree_message(
    cosigner_name: str, timestamp: int, origin: str, start: int, end: int, root_hash: bytes
) -> bytes:
    """Return tlog-cosignature's ML-DSA-44 ``cosigned_message`` (RFC 8446 §3 encoding).

    ``label[12] = "subtree/v1\\n\\0"``, ``opaque cosigner_name<1..255>``, ``uint64 timestamp``,
    ``opaque log_origin<1..255>``, ``uint64 start``, ``uint64 end``, ``uint8 hash[32]``. For a
    checkpoint, start is 0 and end its size; a non-zero start requires a zero timestamp.
    """
    for value, what in ((timestamp, "timestamp"), (start, "start"), (end, "end")):
        if isinstance(value, bool) or not 0 <= value <= MAX_INT63:
            raise MalformedError(
                f"couldn't encode subtree/v1 {what} {value!r}: not from 0 to {MAX_INT63}"
            )
    if start > end:
        raise MalformedError(f"couldn't encode subtree/v1 [{start}, {end}): start is after end")
    if start != 0 and timestamp != 0:
        raise MalformedError(
            f"couldn't encode subtree/v1 [{start}, {end}): a subtree with a non-zero start "
            "has timestamp 0"
        )
    if len(root_hash) != HASH_SIZE:
        raise MalformedError(
            f"couldn't encode subtree/v1 hash: it is {len(root_hash)} bytes, not {HASH_SIZE}"
        )
    return b"".join(
        (
            SUBTREE_V1_LABEL,
            _opaque8(cosigner_name, "cosigner name"),
            timestamp.to_bytes(8, "big"),
            _opaque8(origin, "log origin"),
            start.to_bytes(8, "big"),
            end.to_bytes(8, "big"),
            root_hash,
        )
    )


def checkpoint_subtree_message(name: str, checkpoint: Checkpoint, timestamp: int) -> bytes:
    """The ``subtree/v1`` message of ``checkpoint`` signed by cosigner ``name`` at ``timestamp``."""
    return subtree_message(
        name, timestamp, checkpoint.origin, 0, checkpoint.size, checkpoint.root_hash
    )


class CosignatureSigner:
    """A cosigner's key — Ed25519 (type 0x04, cosignature/v1) or ML-DSA-44 (type 0x06,
    subtree/v1) — producing timestamped cosignature lines.

    Its private key text is Go's format with the type byte:
    ``PRIVATE+KEY+<name>+<hex8>+base64(0x04 ‖ seed)`` or ``…base64(0x06 ‖ ML-DSA-44 seed)``.
    """

    __slots__ = ("_signer",)

    _signer: Signer

    def __init__(self, signer: Signer) -> None:
        """Wrap ``signer``, which must have signature type 0x04 or 0x06."""
        if signer.verifier_key.alg not in COSIGNATURE_ALGS:
            raise MalformedError(
                f"couldn't use {signer.name}+{signer.verifier_key.key_id.hex()} as a cosigner: "
                f"signature type 0x{signer.verifier_key.alg:02x} is not 0x04 (cosignature/v1) "
                "or 0x06 (ML-DSA-44)"
            )
        self._signer = signer

    @classmethod
    def generate(cls, name: str, alg: int = ALG_COSIGNATURE_V1) -> CosignatureSigner:
        """Return a cosigner of type ``alg`` (0x04 or 0x06) with a fresh random seed."""
        return cls(Signer.generate(name, alg))

    @classmethod
    def from_seed(cls, name: str, seed: bytes, alg: int = ALG_COSIGNATURE_V1) -> CosignatureSigner:
        """Return the cosigner of type ``alg`` of a 32-byte ``seed``."""
        return cls(Signer.from_seed(name, seed, alg))

    @classmethod
    def parse_private_key(cls, text: str) -> CosignatureSigner:
        """Parse a ``PRIVATE+KEY+…`` text whose type byte is 0x04."""
        return cls(Signer.parse_private_key(text))

    @property
    def name(self) -> str:
        """The cosigner's name (its key name)."""
        return self._signer.name

    @property
    def verifier_key(self) -> VerifierKey:
        """The cosigner's public key (signature type 0x04 or 0x06)."""
        return self._signer.verifier_key

    @property
    def vkey(self) -> str:
        """The witness's vkey string."""
        return self._signer.vkey

    def private_key_text(self) -> str:
        """Return the ``PRIVATE+KEY+…`` text that :meth:`parse_private_key` reads back."""
        return self._signer.private_key_text()

    def cosign(self, checkpoint: Checkpoint, timestamp: int) -> NoteSignature:
        """Return the cosignature line over ``checkpoint`` at POSIX time ``timestamp`` (seconds).

        The caller asserts, by cosigning, that this is the largest consistent tree it has seen
        for the origin as of ``timestamp``.
        """
        if isinstance(timestamp, bool) or not 0 <= timestamp <= MAX_INT63:
            raise MalformedError(
                f"couldn't cosign checkpoint of {excerpt(checkpoint.origin)}: timestamp "
                f"{timestamp!r} is not from 0 to {MAX_INT63}"
            )
        key = self.verifier_key
        if key.alg == ALG_MLDSA44:
            message = checkpoint_subtree_message(key.name, checkpoint, timestamp)
        else:
            message = cosignature_message(checkpoint, timestamp)
        signature = self._signer.sign(message)
        return NoteSignature(
            key.name, key.key_id, timestamp.to_bytes(TIMESTAMP_SIZE, "big") + signature
        )

    def __repr__(self) -> str:
        return f"CosignatureSigner({self.vkey!r})"


def _verify_cosignature(key: VerifierKey, checkpoint: Checkpoint, signature: bytes) -> int:
    label = f"{key.name}+{key.key_id.hex()}"
    want = TIMESTAMP_SIZE + _SIGNATURE_SIZES[key.alg]
    if len(signature) != want:
        raise SignatureError(
            f"couldn't verify cosignature by {label}: it is {len(signature)} bytes, not {want}"
        )
    timestamp = int.from_bytes(signature[:TIMESTAMP_SIZE], "big")
    if timestamp > MAX_INT63:
        raise SignatureError(
            f"couldn't verify cosignature by {label}: timestamp {timestamp} exceeds 2**63 - 1"
        )
    if key.alg == ALG_MLDSA44:
        try:
            message = checkpoint_subtree_message(key.name, checkpoint, timestamp)
        except MalformedError as err:
            raise SignatureError(f"couldn't verify cosignature by {label}: {err}") from None
    else:
        message = cosignature_message(checkpoint, timestamp)
    key.verify_signature(message, signature[TIMESTAMP_SIZE:])
    return timestamp


def verify_cosignatures(
    note_bytes: bytes, witnesses: Iterable[VerifierKey]
) -> dict[VerifierKey, int]:
    """Return the witnesses (0x04, 0x06 keys) with a valid cosignature line, each with its
    timestamp.

    Lines from other keys are ignored (keys of other signature types in ``witnesses`` too). A
    line that names a given witness and fails to verify raises :class:`SignatureError`. If a
    witness has several valid lines, the latest timestamp is reported. The log's own signature is
    NOT checked here: open the checkpoint with :func:`open_checkpoint` as well, or use
    :func:`open_witnessed_checkpoint`. The result may be empty; quorums are the policy's job.
    """
    note = parse_note(note_bytes)
    return _verified_cosigners(note, Checkpoint.parse(note.text), witnesses)


def _verified_cosigners(
    note: Note, checkpoint: Checkpoint, witnesses: Iterable[VerifierKey]
) -> dict[VerifierKey, int]:
    witnesses = list(witnesses)
    by_id = index_keys(witnesses, ALG_COSIGNATURE_V1)
    for id_, key in index_keys(witnesses, ALG_MLDSA44).items():
        other = by_id.setdefault(id_, key)
        if other != key:
            raise MalformedError(
                f"couldn't use witness keys {other.vkey()} and {key.vkey()}: "
                "they share a key name and key id"
            )
    cosigned: dict[VerifierKey, int] = {}
    for number, line in enumerate(note.signatures, 1):
        found = by_id.get((line.name, line.key_id))
        if found is None:
            continue
        key = found
        try:
            timestamp = _verify_cosignature(key, checkpoint, line.signature)
        except SignatureError as err:
            raise SignatureError(
                f"couldn't verify cosignatures of checkpoint {excerpt(checkpoint.origin)} "
                f"size {checkpoint.size}: line {number}: {err}"
            ) from None
        cosigned[key] = max(timestamp, cosigned.get(key, timestamp))
    return cosigned


@dataclass(frozen=True, slots=True)
class PolicyLog:
    """A ``log <vkey> [<url>]`` line: a trusted log key (type 0x01, named as the origin)."""

    key: VerifierKey
    url: str | None = None


@dataclass(frozen=True, slots=True)
class PolicyWitness:
    """A ``witness <name> <vkey> [<url>]`` line: a named cosigner key (type 0x04 or 0x06)."""

    name: str
    key: VerifierKey
    url: str | None = None


@dataclass(frozen=True, slots=True)
class PolicyGroup:
    """A ``group <name> <k|all|any> <member>…`` line: witnessed iff ``threshold`` members are."""

    name: str
    threshold: int
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Policy:
    """A parsed tlog-policy: trusted logs, named witnesses and groups, and the quorum name.

    Build it with :func:`parse_policy`, which enforces the spec's structure: names defined once
    and before use, each name a group member at most once, ``1 <= threshold <= len(members)``,
    no duplicate public keys, exactly one quorum naming a witness, a group or ``none``.
    """

    logs: tuple[PolicyLog, ...]
    witnesses: tuple[PolicyWitness, ...]
    groups: tuple[PolicyGroup, ...]
    quorum: str

    def witness_keys(self) -> list[VerifierKey]:
        """The keys of every witness in the policy."""
        return [witness.key for witness in self.witnesses]

    def verify_quorum(self, cosigners: Iterable[VerifierKey]) -> None:
        """Raise :class:`SignatureError` unless the verified keys ``cosigners`` meet the quorum.

        A witness counts if its key is among ``cosigners``; a group counts if at least its
        threshold of members count; the quorum ``none`` always holds. Groups only name earlier
        definitions, so one pass in definition order evaluates them all.
        """
        signed = set(cosigners)
        counts = {witness.name: witness.key in signed for witness in self.witnesses}
        for group in self.groups:
            counts[group.name] = sum(counts[m] for m in group.members) >= group.threshold
        if self.quorum != QUORUM_NONE and not counts[self.quorum]:
            names = sorted(w.name for w in self.witnesses if w.key in signed)
            raise SignatureError(
                f"couldn't verify cosignatures: quorum {self.quorum!r} is not met "
                f"(cosigned by policy witnesses: {', '.join(names) or 'none'})"
            )


_POLICY_SPACE = re.compile(r"[ \t]+")
_POLICY_FORBIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_THRESHOLD = re.compile(r"[1-9][0-9]*")


def parse_policy(data: str | bytes) -> Policy:
    """Parse a tlog-policy file exactly as https://c2sp.org/tlog-policy specifies it.

    Fields are separated by spaces and tabs only; blank lines and lines whose first non-blank
    character is ``#`` are ignored; the only control characters allowed are tab and newline.
    Non-UTF-8 bytes are kept opaque (decoded with ``surrogateescape``), so names compare as
    octets. A numeric threshold is written without leading zeros. Raises :class:`MalformedError`
    naming the line number.
    """
    text = data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data
    logs: list[PolicyLog] = []
    witnesses: list[PolicyWitness] = []
    groups: list[PolicyGroup] = []
    defined: set[str] = set()
    in_group: set[str] = set()
    public_keys: dict[bytes, str] = {}
    quorum: str | None = None
    for number, line in enumerate(text.split("\n"), 1):
        try:
            forbidden = _POLICY_FORBIDDEN.search(line)
            if forbidden is not None:
                raise MalformedError(f"control character {forbidden.group()!r}")
            fields = _POLICY_SPACE.split(line.strip(" \t"))
            keyword, args = fields[0], fields[1:]
            if keyword == "" or keyword.startswith("#"):
                continue
            if keyword == "log":
                _want_fields(keyword, args, 1, 2)
                key = _policy_key(
                    args[0], frozenset({ALG_ED25519}), public_keys, f"log on line {number}"
                )
                logs.append(PolicyLog(key, args[1] if len(args) == 2 else None))
            elif keyword == "witness":
                _want_fields(keyword, args, 2, 3)
                _define(args[0], defined)
                key = _policy_key(args[1], COSIGNATURE_ALGS, public_keys, f"witness {args[0]}")
                witnesses.append(PolicyWitness(args[0], key, args[2] if len(args) == 3 else None))
            elif keyword == "group":
                _want_fields(keyword, args, 3, None)
                groups.append(_policy_group(args, defined, in_group))
            elif keyword == "quorum":
                _want_fields(keyword, args, 1, 1)
                if quorum is not None:
                    raise MalformedError(f"a second quorum {args[0]!r} after {quorum!r}")
                if args[0] != QUORUM_NONE and args[0] not in defined:
                    raise MalformedError(f"quorum {args[0]!r} is not defined on a preceding line")
                quorum = args[0]
            else:
                raise MalformedError(f"unknown keyword {excerpt(keyword)}")
        except MalformedError as err:
            raise MalformedError(
                f"couldn't parse policy line {number} {excerpt(line)}: {err}"
            ) from None
    if quorum is None:
        raise MalformedError("couldn't parse policy: it has no quorum line")
    return Policy(tuple(logs), tuple(witnesses), tuple(groups), quorum)


def _want_fields(keyword: str, args: list[str], least: int, most: int | None) -> None:
    if len(args) < least or (most is not None and len(args) > most):
        wanted = f"{least} to {most}" if most is not None else f"at least {least}"
        raise MalformedError(f"{keyword!r} takes {wanted} fields, not {len(args)}")


def _define(name: str, defined: set[str]) -> None:
    if name == QUORUM_NONE:
        raise MalformedError(f"the name {QUORUM_NONE!r} is predefined")
    if name in defined:
        raise MalformedError(f"the name {name!r} is already defined")
    defined.add(name)


def _policy_key(
    vkey: str, algs: frozenset[int], public_keys: dict[bytes, str], what: str
) -> VerifierKey:
    key = VerifierKey.parse(vkey)
    if key.alg not in algs:
        wanted = " or ".join(f"0x{alg:02x}" for alg in sorted(algs))
        raise MalformedError(
            f"{what} key {key.name}+{key.key_id.hex()} has signature type 0x{key.alg:02x}, "
            f"not {wanted}"
        )
    if key.public_key in public_keys:
        raise MalformedError(f"{what} has the same public key as {public_keys[key.public_key]}")
    public_keys[key.public_key] = what
    return key


def _policy_group(args: list[str], defined: set[str], in_group: set[str]) -> PolicyGroup:
    name, threshold_text, members = args[0], args[1], tuple(args[2:])
    for member in members:
        if member == QUORUM_NONE:
            raise MalformedError(f"{QUORUM_NONE!r} cannot be a group member")
        if member not in defined:
            raise MalformedError(f"member {member!r} is not defined on a preceding line")
        if member in in_group:
            raise MalformedError(f"member {member!r} is already a member of a group")
        in_group.add(member)
    if threshold_text == "all":
        threshold = len(members)
    elif threshold_text == "any":
        threshold = 1
    elif _THRESHOLD.fullmatch(threshold_text) and int(threshold_text) <= len(members):
        threshold = int(threshold_text)
    else:
        raise MalformedError(
            f"threshold {excerpt(threshold_text)} is not all, any, or a decimal from 1 to "
            f"{len(members)}"
        )
    _define(name, defined)
    return PolicyGroup(name, threshold, members)


def open_witnessed_checkpoint(note_bytes: bytes, policy: Policy) -> Checkpoint:
    """Open a checkpoint signed by one of the policy's logs and cosigned to its quorum.

    Steps: (1) parse the note; (2) verify every line from a policy log key, requiring at least
    one, and the origin to be the name of a log key that signed; (3) verify every line from a
    policy witness key; (4) require the quorum over the witnesses that cosigned. A policy without
    ``log`` lines opens nothing: use :func:`open_checkpoint` with the log key known from context,
    then :func:`verify_cosignatures` and :meth:`Policy.verify_quorum`.
    """
    note = parse_note(note_bytes)
    checkpoint = _open_signed(note, [log.key for log in policy.logs])
    cosigners = _verified_cosigners(note, checkpoint, policy.witness_keys())
    try:
        policy.verify_quorum(cosigners)
    except SignatureError as err:
        raise SignatureError(
            f"couldn't open checkpoint of {excerpt(checkpoint.origin)} size {checkpoint.size}: "
            f"{err}"
        ) from None
    return checkpoint
