"""C2SP tlog-checkpoint, tlog-cosignature (cosignature/v1) and tlog-policy.

A checkpoint is a signed note whose text is ``origin\\nsize\\nbase64(root)\\n`` plus optional
extension lines (https://c2sp.org/tlog-checkpoint). Witnesses add cosignature/v1 lines: Ed25519
signatures, under keys of signature type 0x04, over ``cosignature/v1\\ntime <T>\\n`` followed by
the checkpoint text, encoded as key ID ‖ 8-byte big-endian T ‖ signature
(https://c2sp.org/tlog-cosignature). A policy names the trusted logs and witnesses and the
quorum of witnesses a checkpoint needs (https://c2sp.org/tlog-policy).

Rules this module enforces:

- A checkpoint's origin must equal its log key's name. tlog-checkpoint says the key name
  SHOULD match the origin and tlog-policy says it MUST; this ledger always signs that way, and a
  verifier that ignored the origin could be shown another log's tree under the same key.
- Unknown signature lines (other logs, "grease", unrelated witnesses) are ignored; a line that
  names a trusted key and fails to verify rejects the checkpoint.
- Sizes and timestamps are decimal without leading zeros and at most ``2**63 - 1``, the range Go
  verifiers accept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from ledger.errors import MalformedError, RefusedError, SignatureError
from ledger.tlog.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    ED25519_SIGNATURE_SIZE,
    Note,
    NoteSignature,
    Signer,
    VerifierKey,
    decode_base64,
    encode_base64,
    excerpt,
    index_keys,
    parse_note,
    sign_note,
    verify_note,
)

HASH_SIZE: Final = 32
MAX_INT63: Final = (1 << 63) - 1
"""Largest tree size, index or cosignature timestamp accepted (Go's ``int64``)."""

COSIGNATURE_V1_HEADER: Final = "cosignature/v1\n"
TIMESTAMP_SIZE: Final = 8
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

    The log key's name must be the origin (see the module rules). The caller is responsible for
    never signing two checkpoints that are not consistent with each other.
    """
    if signer.name != checkpoint.origin:
        raise RefusedError(
            f"couldn't sign checkpoint of {excerpt(checkpoint.origin)} with {signer.vkey}: "
            "the key name is not the origin"
        )
    return sign_note(checkpoint.body(), [signer, *extra_signers])


def _open_signed(note: Note, log_keys: Iterable[VerifierKey]) -> Checkpoint:
    signers = verify_note(note, log_keys)
    checkpoint = Checkpoint.parse(note.text)
    if not any(key.name == checkpoint.origin for key in signers):
        raise RefusedError(
            f"couldn't open checkpoint of {excerpt(checkpoint.origin)}: it is signed by "
            f"{', '.join(k.vkey() for k in signers)}, whose name is not the origin"
        )
    return checkpoint


def open_checkpoint(note_bytes: bytes, log_key: VerifierKey) -> Checkpoint:
    """Verify the log's signature on a checkpoint note and return the checkpoint.

    Raises :class:`MalformedError` for a malformed note or checkpoint, :class:`SignatureError`
    if the log's line is missing or does not verify, :class:`RefusedError` if the origin is not
    the log key's name. Other signature lines are ignored here (see :func:`verify_cosignatures`).
    """
    if log_key.alg != ALG_ED25519:
        raise MalformedError(
            f"couldn't open checkpoint with {log_key.vkey()}: a log key has signature type 0x01"
        )
    return _open_signed(parse_note(note_bytes), [log_key])


def cosignature_message(checkpoint: Checkpoint, timestamp: int) -> bytes:
    """Return the cosignature/v1 signed message: header, ``time <T>`` line, checkpoint body."""
    return f"{COSIGNATURE_V1_HEADER}time {timestamp}\n{checkpoint.body()}".encode()


class CosignatureSigner:
    """A witness's Ed25519 key of signature type 0x04, producing cosignature/v1 lines.

    Its private key text is Go's format with type byte 0x04:
    ``PRIVATE+KEY+<name>+<hex8>+base64(0x04 ‖ seed)``.
    """

    __slots__ = ("_signer",)

    _signer: Signer

    def __init__(self, signer: Signer) -> None:
        """Wrap ``signer``, which must have signature type :data:`ALG_COSIGNATURE_V1`."""
        if signer.verifier_key.alg != ALG_COSIGNATURE_V1:
            raise MalformedError(
                f"couldn't use {signer.vkey} as a cosigner: signature type "
                f"0x{signer.verifier_key.alg:02x} is not 0x04 (cosignature/v1)"
            )
        self._signer = signer

    @classmethod
    def generate(cls, name: str) -> CosignatureSigner:
        """Return a cosigner with a fresh random seed."""
        return cls(Signer.generate(name, ALG_COSIGNATURE_V1))

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> CosignatureSigner:
        """Return the deterministic cosigner of a 32-byte ``seed``."""
        return cls(Signer.from_seed(name, seed, ALG_COSIGNATURE_V1))

    @classmethod
    def parse_private_key(cls, text: str) -> CosignatureSigner:
        """Parse a ``PRIVATE+KEY+…`` text whose type byte is 0x04."""
        return cls(Signer.parse_private_key(text))

    @property
    def verifier_key(self) -> VerifierKey:
        """The witness's public key (signature type 0x04)."""
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
        signature = self._signer.sign(cosignature_message(checkpoint, timestamp))
        key = self.verifier_key
        return NoteSignature(
            key.name, key.key_id, timestamp.to_bytes(TIMESTAMP_SIZE, "big") + signature
        )

    def __repr__(self) -> str:
        return f"CosignatureSigner({self.vkey!r})"


def _verify_cosignature(key: VerifierKey, checkpoint: Checkpoint, signature: bytes) -> int:
    if len(signature) != TIMESTAMP_SIZE + ED25519_SIGNATURE_SIZE:
        raise SignatureError(
            f"couldn't verify cosignature by {key.vkey()}: it is {len(signature)} bytes, "
            f"not {TIMESTAMP_SIZE + ED25519_SIGNATURE_SIZE}"
        )
    timestamp = int.from_bytes(signature[:TIMESTAMP_SIZE], "big")
    if timestamp > MAX_INT63:
        raise SignatureError(
            f"couldn't verify cosignature by {key.vkey()}: timestamp {timestamp} exceeds 2**63 - 1"
        )
    key.verify_signature(cosignature_message(checkpoint, timestamp), signature[TIMESTAMP_SIZE:])
    return timestamp


def verify_cosignatures(
    note_bytes: bytes, witnesses: Iterable[VerifierKey]
) -> dict[VerifierKey, int]:
    """Return the witnesses (0x04 keys) with a valid cosignature line, each with its timestamp.

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
    by_id = index_keys(witnesses, ALG_COSIGNATURE_V1)
    cosigned: dict[VerifierKey, int] = {}
    for number, line in enumerate(note.signatures, 1):
        key = by_id.get((line.name, line.key_id))
        if key is None:
            continue
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
    """A ``witness <name> <vkey> [<url>]`` line: a named cosigner key (type 0x04)."""

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
                key = _policy_key(args[0], ALG_ED25519, public_keys, f"log on line {number}")
                logs.append(PolicyLog(key, args[1] if len(args) == 2 else None))
            elif keyword == "witness":
                _want_fields(keyword, args, 2, 3)
                _define(args[0], defined)
                key = _policy_key(args[1], ALG_COSIGNATURE_V1, public_keys, f"witness {args[0]}")
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


def _policy_key(vkey: str, alg: int, public_keys: dict[bytes, str], what: str) -> VerifierKey:
    key = VerifierKey.parse(vkey)
    if key.alg != alg:
        raise MalformedError(
            f"{what} key {key.vkey()} has signature type 0x{key.alg:02x}, not 0x{alg:02x}"
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
