"""C2SP tlog-witness: the witness's rules for ``add-checkpoint``, and its durable state.

A witness cosigns a log's checkpoint only if it is consistent with the latest checkpoint of that
log it cosigned before, so a log that shows two histories to two parties cannot get both
cosigned by the same witness (https://c2sp.org/tlog-witness, as amended by C2SP PR #280 of
July 2026: a same-size checkpoint with another root is answered 422, not 409, so that every 409
means "your old size is wrong"). This module is the whole protocol,
free of HTTP: :func:`parse_add_checkpoint` reads a request body, :class:`Witness` decides, and
the HTTP adapter (``api/witness_app.py``) only maps the errors below to status codes:

=========================================  ======  ==========================================
raised                                     status  when
=========================================  ======  ==========================================
:class:`~ledger.errors.MalformedError`     400     the body does not parse; ``old`` > size
:class:`UnknownLogError`                   404     no configured log key for the origin
:class:`~ledger.errors.SignatureError`     403     no trusted log signature verifies (or a
                                                   trusted key's line is bad)
:class:`OldSizeMismatchError`              409     ``old`` is not the size the witness holds
:class:`ConflictingRootError`              422     same size as held, different root hash
:class:`~ledger.errors.ProofError`         422     the consistency proof does not verify (a
                                                   size-0 checkpoint whose root is not the
                                                   empty tree's, a non-empty proof from 0)
:class:`StaleTimestampError`               503     the clock is behind the last cosignature
=========================================  ======  ==========================================

A 409 answer carries the witness's size (``text/x.tlog.size``, ``<size>\\n``), and only a 409
does. A witness may hold two keys under one name — Ed25519 (type 0x04, cosignature/v1) and
ML-DSA-44 (type 0x06, subtree/v1) — and then answers with both lines.

The optional read endpoint (C2SP PR #273 as amended by PR #277, July 2026):
:meth:`Witness.cosigned_checkpoint` is the latest checkpoint cosigned for a log, with the log's
verified lines and the witness's lines as returned, served at ``GET <monitoring
prefix>/<origin hash>/checkpoint`` (:func:`checkpoint_path`), 404 for a log never cosigned.

Kept whole: the request's format, the state's compare-and-swap contract and the rules that decide
between them are one protocol; the race the spec warns about is only answered by reading the
swap and the checks it protects side by side.

Invariants:

- The check of ``old`` against the stored size and the write of the new checkpoint are one
  compare-and-swap (:meth:`WitnessState.compare_and_swap`); a request that loses the race is
  checked again against the state that won. So two racing requests can never roll the state
  back or get two inconsistent checkpoints cosigned (the race in the spec's last section).
- The new checkpoint and its cosignature lines are durable before the lines are returned.
- For one origin, cosignature timestamps never decrease.
- A smaller checkpoint than the stored one is never cosigned: ``old`` must equal the stored size
  (else 409) and must not exceed the checkpoint's size (else 400).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from ledger.atomic import write_atomically
from ledger.errors import (
    ConflictError,
    FatalError,
    MalformedError,
    ProofError,
    RefusedError,
    SignatureError,
    StorageError,
)
from ledger.tlog.checkpoint import (
    MAX_INT63,
    Checkpoint,
    CosignatureSigner,
    parse_decimal,
    verified_log_keys,
)
from ledger.tlog.merkle import EMPTY_ROOT, HASH_SIZE, verify_consistency
from ledger.tlog.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    ALG_MLDSA44,
    Note,
    NoteSignature,
    VerifierKey,
    decode_base64,
    encode_base64,
    excerpt,
    format_note,
    parse_note,
    parse_signature_line,
)
from ledger.verifier.evidence import SplitView
from ledger.verifier.mirror import origin_hash

ADD_CHECKPOINT_PATH: Final = "/add-checkpoint"
"""Appended to the witness's submission prefix."""

CHECKPOINT_PATH_SUFFIX: Final = "/checkpoint"
"""The read endpoint is ``GET <monitoring prefix>/<origin hash>`` + this (C2SP PR #273, #277)."""

SIZE_CONTENT_TYPE: Final = "text/x.tlog.size"
"""Content type of a 409 answer, whose body is the witness's tree size and a newline."""

MAX_PROOF_LINES: Final = 63
"""A client MUST NOT send more consistency proof lines than this."""

STATE_FORMAT: Final = "amnesty-ledger.witness-state/v1"

_OLD_PREFIX: Final = "old "
_CAS_ATTEMPTS: Final = 16


class UnknownLogError(RefusedError):
    """The checkpoint's origin is not one of the witness's configured logs (404)."""


class WitnessConflictError(RefusedError):
    """The witness refuses with 409 Conflict; ``latest_size`` is the size it has cosigned."""

    def __init__(self, message: str, latest_size: int) -> None:
        super().__init__(message)
        self.latest_size = latest_size


class OldSizeMismatchError(WitnessConflictError):
    """``old`` is not the size of the latest checkpoint the witness cosigned for the origin.

    The client should retry with ``old`` = ``latest_size`` and a proof from that size, unless
    ``latest_size`` exceeds its checkpoint's size (then the witness has seen a larger tree).
    """


class ConflictingRootError(ProofError):
    """A checkpoint of the size the witness holds, with a different root hash: a split view.

    An inconsistent request like a failed proof, hence 422 (tlog-witness since C2SP PR #280).
    ``latest_size`` is that size. ``evidence`` holds both signed checkpoints when the witness
    has them (the witness side); it is ``None`` where only the answer is known (the client).
    """

    def __init__(self, message: str, latest_size: int, evidence: SplitView | None) -> None:
        super().__init__(message)
        self.latest_size = latest_size
        self.evidence = evidence


class StaleTimestampError(RefusedError):
    """The cosignature time is earlier than the last one for this origin (the clock went back).

    Cosigning anyway would claim that a larger tree was the largest seen at an earlier time
    than a smaller one; the witness refuses until its clock has caught up.
    """


# -- the add-checkpoint request -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AddCheckpointRequest:
    """A parsed add-checkpoint body: ``old`` size, consistency proof, and the checkpoint note.

    Construction checks what the body's syntax promises: ``0 <= old_size <= 2**63 - 1``, at most
    :data:`MAX_PROOF_LINES` hashes of 32 bytes each, and a note whose text is a checkpoint.
    Nothing is verified here (that is :meth:`Witness.add_checkpoint`).
    """

    old_size: int
    proof: tuple[bytes, ...]
    note: Note

    def __post_init__(self) -> None:
        if isinstance(self.old_size, bool) or not 0 <= self.old_size <= MAX_INT63:
            raise MalformedError(
                f"couldn't accept add-checkpoint request: old size {self.old_size!r} is not "
                f"from 0 to {MAX_INT63}"
            )
        if len(self.proof) > MAX_PROOF_LINES:
            raise MalformedError(
                f"couldn't accept add-checkpoint request: {len(self.proof)} consistency proof "
                f"lines, more than {MAX_PROOF_LINES}"
            )
        for number, node in enumerate(self.proof, 1):
            if len(node) != HASH_SIZE:
                raise MalformedError(
                    f"couldn't accept add-checkpoint request: proof line {number} is "
                    f"{len(node)} bytes, not {HASH_SIZE}"
                )
        self.checkpoint()

    def checkpoint(self) -> Checkpoint:
        """The checkpoint the note's text encodes (its signatures unchecked)."""
        return Checkpoint.parse(self.note.text)


def parse_add_checkpoint(body: bytes) -> AddCheckpointRequest:
    """Parse an add-checkpoint request body exactly as tlog-witness specifies it.

    The body is ``old <N>\\n``, zero to 63 lines of one base64 hash each, an empty line, then a
    checkpoint note (text, blank line, signature lines). ``N`` is decimal without leading zeros;
    hashes are canonical padded base64 of exactly 32 bytes; every line ends in ``\\n``; the note
    is parsed strictly (:func:`ledger.tlog.note.parse_note`). The first empty line ends the proof, so
    the note's own blank line is never mistaken for it. Raises :class:`MalformedError`.
    """
    header_end = body.find(b"\n\n")
    if header_end < 0:
        raise MalformedError(
            f"couldn't parse add-checkpoint request {excerpt(body)}: no empty line after the "
            "old size and proof lines"
        )
    try:
        header = body[: header_end + 1].decode("ascii")
    except UnicodeDecodeError as err:
        raise MalformedError(
            f"couldn't parse add-checkpoint request: byte {err.start} of the old size and proof "
            "lines is not ASCII"
        ) from None
    old_line, *proof_lines = header[:-1].split("\n")
    if not old_line.startswith(_OLD_PREFIX):
        raise MalformedError(
            f"couldn't parse add-checkpoint request: first line {excerpt(old_line)} is not "
            "'old <size>'"
        )
    if len(proof_lines) > MAX_PROOF_LINES:
        raise MalformedError(
            f"couldn't parse add-checkpoint request: {len(proof_lines)} consistency proof lines, "
            f"more than {MAX_PROOF_LINES}"
        )
    try:
        old_size = parse_decimal(old_line[len(_OLD_PREFIX) :], "old size")
        proof = tuple(
            decode_base64(line, f"consistency proof line {number}")
            for number, line in enumerate(proof_lines, 1)
        )
        return AddCheckpointRequest(old_size, proof, parse_note(body[header_end + 2 :]))
    except MalformedError as err:
        raise MalformedError(f"couldn't parse add-checkpoint request: {err}") from None


def format_add_checkpoint(request: AddCheckpointRequest) -> bytes:
    """Encode ``request`` as a body; :func:`parse_add_checkpoint` returns an equal request."""
    lines = [f"{_OLD_PREFIX}{request.old_size}", *(encode_base64(h) for h in request.proof)]
    return ("\n".join(lines) + "\n\n").encode("ascii") + format_note(request.note)


def checkpoint_path(origin: str) -> str:
    """``/<origin hash>/checkpoint``: where, under the monitoring prefix, the latest checkpoint
    a witness cosigned for ``origin`` is read."""
    return f"/{origin_hash(origin)}{CHECKPOINT_PATH_SUFFIX}"


def format_size(size: int) -> bytes:
    """The body of a 409 answer: ``size`` in decimal and a newline."""
    return f"{size}\n".encode("ascii")


def parse_size(body: bytes) -> int:
    """Parse the body of a 409 answer (decimal without leading zeros, then ``\\n``), strictly."""
    if not body.endswith(b"\n"):
        raise MalformedError(
            f"couldn't parse tree size {excerpt(body)}: it does not end in a newline"
        )
    try:
        text = body[:-1].decode("ascii")
    except UnicodeDecodeError:
        raise MalformedError(f"couldn't parse tree size {excerpt(body)}: not ASCII") from None
    return parse_decimal(text, "tree size")


# -- state --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WitnessedCheckpoint:
    """The latest checkpoint a witness cosigned for one log: the note as the log submitted it
    (its signatures, verbatim), the parsed checkpoint, the cosignature's timestamp, and the
    cosignature lines the witness returned for it (empty in a record written before the read
    endpoint existed: they are then made again from the timestamp, see
    :meth:`Witness.cosigned_checkpoint`)."""

    note: bytes
    checkpoint: Checkpoint
    timestamp: int
    cosignatures: tuple[NoteSignature, ...] = ()


class WitnessState(Protocol):
    """Where a witness keeps the latest checkpoint it cosigned, per origin.

    Contract: usable concurrently from several threads (and, for a shared store, processes);
    :meth:`compare_and_swap` is atomic and durable once it returns.
    """

    def latest(self, origin: str) -> WitnessedCheckpoint | None:
        """The latest checkpoint cosigned for ``origin``, or ``None`` if there is none."""
        ...

    def compare_and_swap(
        self, origin: str, old: WitnessedCheckpoint | None, new: WitnessedCheckpoint
    ) -> None:
        """Replace the record of ``origin`` by ``new`` iff it is still exactly ``old``.

        Raises :class:`~ledger.errors.ConflictError` (nothing written) if another writer changed
        it first, :class:`~ledger.errors.StorageError` if the write failed.
        """
        ...


class JsonFileWitnessState:
    """A :class:`WitnessState` in one JSON file, replaced atomically on every update.

    The file (UTF-8, keys sorted) is::

        {"format": "amnesty-ledger.witness-state/v1",
         "witness": "<the witness's vkey>",
         "logs": {"<origin>": {"checkpoint": "<signed checkpoint note>", "timestamp": <int>,
                               "cosignatures": ["— <name> <base64>", ...]}}}

    ``cosignatures`` (the lines returned for that checkpoint, without their newline) is absent
    from records written before the read endpoint existed; such a file still opens.

    Every read and write takes an ``fcntl`` lock on a sibling file ``.<name>.lock`` (shared to
    read, exclusive to swap) plus a thread lock, and each swap re-reads the file under the
    exclusive lock, so the compare-and-swap holds across threads and processes sharing the file.
    A write goes to a temporary file that is fsynced, then renamed over the state, then the
    directory is fsynced (:func:`ledger.atomic.write_atomically`): a crash leaves the old state
    or the new one, never a torn file. POSIX only.

    The state names the witness key it belongs to; opening it with another key is refused, as
    is a file that does not parse: a witness must never guess what it cosigned before.
    """

    def __init__(self, path: Path, witness: VerifierKey, *, create_missing: bool = False) -> None:
        """Open the state at ``path`` for ``witness``.

        If the file does not exist, it is created empty when ``create_missing`` is true, else
        :class:`~ledger.errors.StorageError` is raised. A file that exists but does not parse,
        or belongs to another witness key, raises :class:`~ledger.errors.FatalError`.
        """
        self.path = path
        self.witness = witness
        self._lock_path = path.with_name(f".{path.name}.lock")
        self._thread_lock = threading.Lock()
        self._cache: tuple[tuple[int, int, int], dict[str, WitnessedCheckpoint]] | None = None
        if create_missing:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(f"couldn't create witness state {path}: {exc}") from exc
        with self._locked(exclusive=True):
            if not path.exists():
                if not create_missing:
                    raise StorageError(
                        f"couldn't open witness state {path}: the file does not exist"
                    )
                self._write({})
            self._read(fresh=True)

    def latest(self, origin: str) -> WitnessedCheckpoint | None:
        """The stored checkpoint of ``origin`` as the file holds it now."""
        with self._locked(exclusive=False):
            return self._read().get(origin)

    def origins(self) -> list[str]:
        """Every origin the state holds a checkpoint for, sorted."""
        with self._locked(exclusive=False):
            return sorted(self._read())

    def compare_and_swap(
        self, origin: str, old: WitnessedCheckpoint | None, new: WitnessedCheckpoint
    ) -> None:
        """See :meth:`WitnessState.compare_and_swap`."""
        if new.checkpoint.origin != origin:
            raise MalformedError(
                f"couldn't update witness state for {excerpt(origin)}: the checkpoint is of "
                f"{excerpt(new.checkpoint.origin)}"
            )
        with self._locked(exclusive=True):
            # Read the file itself, never the cache: the comparison must see the latest write
            # of any process sharing the file.
            logs = self._read(fresh=True)
            current = logs.get(origin)
            if current != old:
                raise ConflictError(
                    f"couldn't update witness state for {excerpt(origin)}: it holds size "
                    f"{_size(current)}, not the expected size {_size(old)}"
                )
            logs[origin] = new
            # Durable once write_atomically returns (fsync of the file and of the directory);
            # a crash before the rename leaves the previous state, which is still consistent
            # with everything this witness has returned.
            self._write(logs)

    @contextlib.contextmanager
    def _locked(self, *, exclusive: bool) -> Iterator[None]:
        with self._thread_lock:
            try:
                fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                raise StorageError(f"couldn't lock witness state {self.path}: {exc}") from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
                yield
            finally:
                os.close(fd)  # closing the descriptor releases the flock

    def _read(self, *, fresh: bool = False) -> dict[str, WitnessedCheckpoint]:
        try:
            info = os.stat(self.path)
            stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
            cached = self._cache
            if not fresh and cached is not None and cached[0] == stamp:
                return dict(cached[1])
            data = self.path.read_bytes()
        except OSError as exc:
            raise StorageError(f"couldn't read witness state {self.path}: {exc}") from exc
        logs = self._decode(data)
        self._cache = (stamp, logs)
        return dict(logs)

    def _decode(self, data: bytes) -> dict[str, WitnessedCheckpoint]:
        try:
            return _decode_state(data, self.witness)
        except (MalformedError, FatalError) as err:
            raise FatalError(f"couldn't load witness state {self.path}: {err}") from None

    def _write(self, logs: Mapping[str, WitnessedCheckpoint]) -> None:
        write_atomically(self.path, _encode_state(logs, self.witness))
        self._cache = None


def _size(record: WitnessedCheckpoint | None) -> str:
    return "none" if record is None else str(record.checkpoint.size)


def _encode_state(logs: Mapping[str, WitnessedCheckpoint], witness: VerifierKey) -> bytes:
    value = {
        "format": STATE_FORMAT,
        "witness": witness.vkey(),
        "logs": {origin: _encode_record(record) for origin, record in logs.items()},
    }
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _encode_record(record: WitnessedCheckpoint) -> dict[str, Any]:
    value: dict[str, Any] = {
        "checkpoint": record.note.decode("utf-8"),
        "timestamp": record.timestamp,
    }
    if record.cosignatures:
        value["cosignatures"] = [line.line()[:-1] for line in record.cosignatures]
    return value


def _decode_cosignatures(origin: str, value: Any) -> tuple[NoteSignature, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise MalformedError(f"log {origin!r}: cosignatures is not a non-empty list of lines")
    return tuple(parse_signature_line(line) for line in value)


def _decode_state(data: bytes, witness: VerifierKey) -> dict[str, WitnessedCheckpoint]:
    try:
        value: Any = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedError(f"not UTF-8 JSON: {exc}") from None
    if not isinstance(value, dict) or set(value) != {"format", "witness", "logs"}:
        raise MalformedError("want an object with exactly format, witness and logs")
    if value["format"] != STATE_FORMAT:
        raise MalformedError(f"format {value['format']!r} is not {STATE_FORMAT!r}")
    if value["witness"] != witness.vkey():
        raise FatalError(
            f"it belongs to witness {value['witness']!r}, not {witness.vkey()}: a witness key "
            "must keep its own state"
        )
    if not isinstance(value["logs"], dict):
        raise MalformedError("logs is not an object")
    logs: dict[str, WitnessedCheckpoint] = {}
    for origin, record in value["logs"].items():
        if not isinstance(record, dict) or not (
            {"checkpoint", "timestamp"}
            <= set(record)
            <= {"checkpoint", "timestamp", "cosignatures"}
        ):
            raise MalformedError(
                f"log {origin!r}: want checkpoint, timestamp and optionally cosignatures"
            )
        note, timestamp = record["checkpoint"], record["timestamp"]
        lines = (
            _decode_cosignatures(origin, record["cosignatures"]) if "cosignatures" in record else ()
        )
        if not isinstance(note, str):
            raise MalformedError(f"log {origin!r}: checkpoint is not a string")
        if type(timestamp) is not int or not 0 <= timestamp <= MAX_INT63:
            raise MalformedError(f"log {origin!r}: timestamp {timestamp!r} is not an int63")
        note_bytes = note.encode("utf-8")
        checkpoint = Checkpoint.parse(parse_note(note_bytes).text)
        if checkpoint.origin != origin:
            raise MalformedError(
                f"log {origin!r} holds a checkpoint of {excerpt(checkpoint.origin)}"
            )
        logs[origin] = WitnessedCheckpoint(note_bytes, checkpoint, timestamp, lines)
    return logs


# -- the witness --------------------------------------------------------------------------------


def parse_witness_keys(text: str) -> tuple[CosignatureSigner, ...]:
    """Read a witness key file: one ``PRIVATE+KEY+…`` line per key, all under the witness's
    name — the Ed25519 key (type 0x04) first, then optionally its ML-DSA-44 key (type 0x06).
    Surrounding whitespace is allowed, blank lines are not."""
    lines = text.strip().split("\n")
    if len(lines) > 2:
        raise MalformedError(
            f"couldn't parse witness key file: {len(lines)} lines, want a 0x04 key line and at "
            "most a 0x06 key line"
        )
    signers = tuple(CosignatureSigner.parse_private_key(line.strip()) for line in lines)
    if signers[0].verifier_key.alg != ALG_COSIGNATURE_V1:
        raise MalformedError(
            f"couldn't parse witness key file of {excerpt(signers[0].name)}: its first key has "
            f"signature type 0x{signers[0].verifier_key.alg:02x}, not 0x04 (cosignature/v1)"
        )
    return signers


class Witness:
    """The tlog-witness rules: decides an add-checkpoint request and cosigns it.

    Thread-safe as long as ``state`` is (see the module invariants). Callers that read a clock
    for ``timestamp`` should read it and call :meth:`add_checkpoint` under one lock; otherwise a
    caller that lost a race with a later timestamp gets :class:`StaleTimestampError`.
    """

    def __init__(
        self,
        signer: CosignatureSigner,
        logs: Iterable[VerifierKey],
        state: WitnessState,
        *,
        extra_signers: Iterable[CosignatureSigner] = (),
    ) -> None:
        """Witness with ``signer`` the logs whose keys are ``logs`` (type 0x01 Ed25519 or 0x06
        ML-DSA-44, named after their origin; several keys may share an origin: any of them
        may sign), keeping its record in ``state``.

        ``extra_signers`` are further keys of this witness under the same name, of other
        signature types (its ML-DSA-44 key, type 0x06, beside the Ed25519 0x04 key): every
        cosignature is made by all of them, one line each, in this order. The state belongs to
        ``signer``."""
        self.signer = signer
        self.signers: tuple[CosignatureSigner, ...] = (signer, *extra_signers)
        algs = [s.verifier_key.alg for s in self.signers]
        if len(set(algs)) != len(algs) or any(s.name != signer.name for s in self.signers):
            raise MalformedError(
                f"couldn't build witness {excerpt(signer.name)}: its keys must share its name "
                f"and have distinct signature types (got {', '.join(f'0x{a:02x}' for a in algs)})"
            )
        self.state = state
        self._logs: dict[str, list[VerifierKey]] = {}
        for key in logs:
            if key.alg not in (ALG_ED25519, ALG_MLDSA44):
                raise MalformedError(
                    f"couldn't witness log key {key.name}+{key.key_id.hex()}: signature type "
                    f"0x{key.alg:02x} is not 0x01 (Ed25519) or 0x06 (ML-DSA-44)"
                )
            known = self._logs.setdefault(key.name, [])
            if key not in known:
                known.append(key)

    @property
    def origins(self) -> list[str]:
        """The origins of the configured logs, sorted."""
        return sorted(self._logs)

    def add_checkpoint(
        self, request: AddCheckpointRequest, timestamp: int
    ) -> tuple[NoteSignature, ...]:
        """Check ``request`` against the stored state, persist it, and cosign it at ``timestamp``.

        Steps, in the order the spec gives its answers: (1) the origin is a configured log
        (else :class:`UnknownLogError`); (2) a trusted key of the origin signed the note and no
        trusted key's line is bad (else :class:`SignatureError`); (3) ``old <= size`` (else
        :class:`MalformedError`); then, atomically with the write: (4) ``old`` is the stored size,
        0 if none (else :class:`OldSizeMismatchError`); (5) at equal sizes the proof is empty
        and the roots are equal (else :class:`ProofError`, :class:`ConflictingRootError`), at
        larger ones the proof verifies from the stored checkpoint (else :class:`ProofError`);
        (6) ``timestamp`` is not before the stored one (else :class:`StaleTimestampError`);
        (7) the state is swapped to this checkpoint and the cosignature lines over it at
        ``timestamp`` (POSIX seconds), one per key of the witness (cosignature/v1 for 0x04,
        subtree/v1 for 0x06), durably; (8) those lines are returned.
        """
        checkpoint = request.checkpoint()
        what = f"checkpoint of {excerpt(checkpoint.origin)} size {checkpoint.size}"
        if isinstance(timestamp, bool) or not 0 <= timestamp <= MAX_INT63:
            raise MalformedError(
                f"couldn't cosign {what}: timestamp {timestamp!r} is not from 0 to {MAX_INT63}"
            )
        keys = self._logs.get(checkpoint.origin)
        if keys is None:
            raise UnknownLogError(
                f"couldn't add {what}: the origin is not a log this witness knows "
                f"(known: {', '.join(self.origins) or 'none'})"
            )
        try:
            signed_by = verified_log_keys(request.note, checkpoint, keys)
        except SignatureError as err:
            raise SignatureError(f"couldn't add {what}: {err}") from None
        if not signed_by:
            names = sorted({f"{s.name}+{s.key_id.hex()}" for s in request.note.signatures})
            raise SignatureError(
                f"couldn't add {what}: no signature from a configured key of the log "
                f"(signed by {', '.join(names)})"
            )
        if checkpoint.extensions and all(key.alg == ALG_MLDSA44 for key in signed_by):
            # An ML-DSA-44 line covers no extension line: nothing vouches for them.
            raise SignatureError(
                f"couldn't add {what}: it has extension lines and only ML-DSA-44 signatures, "
                "which do not cover them"
            )
        if request.old_size > checkpoint.size:
            raise MalformedError(
                f"couldn't add {what}: old size {request.old_size} is larger than the checkpoint"
            )
        note = format_note(request.note)
        lines: tuple[NoteSignature, ...] | None = None
        for _ in range(_CAS_ATTEMPTS):
            stored = self.state.latest(checkpoint.origin)
            self._check_consistency(request, checkpoint, note, stored, what)
            if stored is not None and timestamp < stored.timestamp:
                raise StaleTimestampError(
                    f"couldn't cosign {what}: timestamp {timestamp} is before {stored.timestamp}, "
                    "the time of the last cosignature for this log"
                )
            if lines is None:
                # Computed, not yet returned: the read endpoint serves these very lines.
                lines = tuple(signer.cosign(checkpoint, timestamp) for signer in self.signers)
            try:
                self.state.compare_and_swap(
                    checkpoint.origin,
                    stored,
                    WitnessedCheckpoint(note, checkpoint, timestamp, lines),
                )
            except ConflictError:
                # Another request changed the state between our read and our write: nothing
                # was written; check this request again against the state that won.
                continue
            # The checkpoint and its cosignature are durable. A crash from here on loses only
            # this answer: the log retries, gets 409 with this size, and resubmits with
            # old == size, which step 5 accepts and cosigns again.
            return lines
        raise StorageError(
            f"couldn't add {what}: the witness state kept changing ({_CAS_ATTEMPTS} attempts)"
        )

    def log_for_hash(self, hashed: str) -> str | None:
        """The origin of the configured log whose :func:`origin_hash` is ``hashed``, if any."""
        return next((origin for origin in self._logs if origin_hash(origin) == hashed), None)

    def cosigned_checkpoint(self, origin: str) -> bytes | None:
        """The latest checkpoint this witness cosigned for ``origin``, as the read endpoint
        serves it; ``None`` if the origin is not a configured log or was never cosigned.

        The note is the checkpoint's text, then the log's signature lines that verify under a
        configured key of the origin (as the log submitted them; other lines are dropped: the
        witness vouches only for what it verified), then this witness's cosignature lines as
        :meth:`add_checkpoint` returned them. A record kept by an older release has no lines:
        they are made again at its stored timestamp (byte for byte the same for Ed25519, whose
        signatures are deterministic; a new signature over the same message for ML-DSA-44).
        Raises :class:`~ledger.errors.FatalError` if the stored log lines no longer verify
        under the configured keys (the state or the configuration changed under it).
        """
        keys = self._logs.get(origin)
        if keys is None:
            return None
        stored = self.state.latest(origin)
        if stored is None:
            return None
        note = parse_note(stored.note)
        try:
            verified = verified_log_keys(note, stored.checkpoint, keys)
        except SignatureError as err:
            raise FatalError(
                f"couldn't serve the cosigned checkpoint of {excerpt(origin)}: {err}"
            ) from None
        log_lines = [line for line in note.signatures if any(line.is_from(k) for k in verified)]
        if not log_lines:
            raise FatalError(
                f"couldn't serve the cosigned checkpoint of {excerpt(origin)}: no line of it "
                "verifies under the log keys configured now"
            )
        own = stored.cosignatures or tuple(
            signer.cosign(stored.checkpoint, stored.timestamp) for signer in self.signers
        )
        return format_note(Note(note.text, (*log_lines, *own)))

    def _check_consistency(
        self,
        request: AddCheckpointRequest,
        checkpoint: Checkpoint,
        note: bytes,
        stored: WitnessedCheckpoint | None,
        what: str,
    ) -> None:
        latest_size = 0 if stored is None else stored.checkpoint.size
        if request.old_size != latest_size:
            raise OldSizeMismatchError(
                f"couldn't add {what}: old size {request.old_size} is not {latest_size}, the "
                "size of the latest checkpoint this witness cosigned for the log",
                latest_size,
            )
        if stored is not None and checkpoint.size == latest_size:
            if request.proof:
                raise ProofError(
                    f"couldn't add {what}: a proof between equal sizes must be empty, it has "
                    f"{len(request.proof)} hashes"
                )
            old_root = stored.checkpoint.root_hash
            if checkpoint.root_hash != old_root:
                failed = (
                    f"equal sizes {latest_size} with root {old_root.hex()} cosigned before and "
                    f"root {checkpoint.root_hash.hex()} submitted"
                )
                raise ConflictingRootError(
                    f"couldn't add {what}: split view: {failed}",
                    latest_size,
                    SplitView(
                        checkpoint1=stored.note,
                        checkpoint2=note,
                        consistency_proof=(),
                        prefix_root=checkpoint.root_hash,
                        failed_check=failed,
                        observed=f"add-checkpoint request to witness {self.signer.vkey}",
                    ),
                )
            return
        old_root = EMPTY_ROOT if stored is None else stored.checkpoint.root_hash
        try:
            verify_consistency(
                latest_size, checkpoint.size, request.proof, old_root, checkpoint.root_hash
            )
        except ProofError as err:
            raise ProofError(f"couldn't add {what}: {err}") from None
