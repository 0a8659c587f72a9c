"""The log side of C2SP tlog-witness (httpx adapter): get a checkpoint cosigned by a witness.

:func:`request_cosignatures` sends ``POST <prefix>/add-checkpoint``, follows the witness's 409
answer to the size it holds (with a proof the caller computes for that size), and returns the
cosignature lines only after verifying them with the witness's keys — Ed25519 (type 0x04) and,
for a witness that has one, ML-DSA-44 (type 0x06), under one name. Merge them into the
checkpoint note with :meth:`ledger.tlog.note.Note.with_signature`: the note text is unchanged, so
the log's own signatures still verify (see docs/WITNESS.md for wiring it after each checkpoint).

Answers are read as tlog-witness says since C2SP PR #280 (July 2026): 409 with
``text/x.tlog.size`` means "your old size is wrong" (resync from the size it states); 422 means
an inconsistent request — a bad proof or, when ``old`` was the checkpoint's own size, another
root at that size (a split view). An older witness's 409 at ``old`` = size is still read as a
split view. 429 and 503 raise :class:`WitnessBusyError` with the ``Retry-After`` they carry,
404 raises :class:`WitnessNotConfiguredError` (the witness does not know this log yet); the
caller backs off (``ledger.witness.cosigner``).

:func:`fetch_cosigned_checkpoint` reads a witness's latest cosigned checkpoint of a log from its
read endpoint (``GET <monitoring prefix>/<origin hash>/checkpoint``, C2SP PR #273/#277).
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import httpx

from ledger.client.source import USER_AGENT, RemoteError, remote_error
from ledger.errors import MalformedError, SignatureError, StorageError
from ledger.tlog.checkpoint import (
    COSIGNATURE_ALGS,
    TIMESTAMP_SIZE,
    Checkpoint,
    verify_cosignatures,
)
from ledger.tlog.note import (
    Note,
    NoteSignature,
    VerifierKey,
    excerpt,
    format_note,
    parse_note,
)
from ledger.witness.witness import (
    ADD_CHECKPOINT_PATH,
    SIZE_CONTENT_TYPE,
    AddCheckpointRequest,
    ConflictingRootError,
    OldSizeMismatchError,
    checkpoint_path,
    format_add_checkpoint,
    parse_size,
)

ProveFunction = Callable[[int], Sequence[bytes]]
"""``prove(size)``: the RFC 9162 consistency proof from ``size`` to the checkpoint's size
(empty when ``size`` is 0 or the checkpoint's size)."""

DEFAULT_ATTEMPTS: Final = 3
MAX_RETRY_AFTER_S: Final = 86_400.0
"""A ``Retry-After`` longer than a day is read as a day."""


class WitnessBusyError(RemoteError):
    """The witness answered 429 (too many requests) or 503 (unavailable).

    ``retry_after_s`` is the delay its ``Retry-After`` header asks for (seconds, at most
    :data:`MAX_RETRY_AFTER_S`), or ``None`` if it sent none or an unreadable one.
    """

    def __init__(
        self,
        message: str,
        status: int,
        problem: dict[str, Any] | None,
        retry_after_s: float | None,
    ) -> None:
        super().__init__(message, status, problem)
        self.retry_after_s = retry_after_s


class WitnessNotConfiguredError(RemoteError):
    """The witness answered 404: it does not (yet) witness this log's origin."""


def parse_retry_after(value: str | None, now_s: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (RFC 9110 §10.2.3: delay-seconds or an
    HTTP-date, read against ``now_s``, POSIX seconds); ``None`` if absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdecimal():
        return min(float(int(text)), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return min(max(0.0, when.timestamp() - now_s), MAX_RETRY_AFTER_S)


def request_cosignature(
    witness_url: str,
    witness_vkey: str | VerifierKey,
    checkpoint_note: bytes,
    old_size: int,
    proof: Sequence[bytes],
    *,
    prove: ProveFunction | None = None,
    client: httpx.Client | None = None,
    timeout: float = 10.0,
    max_attempts: int = DEFAULT_ATTEMPTS,
) -> NoteSignature:
    """:func:`request_cosignatures` for a witness known by one key: that key's line."""
    key = VerifierKey.parse(witness_vkey) if isinstance(witness_vkey, str) else witness_vkey
    (line,) = request_cosignatures(
        witness_url,
        (key,),
        checkpoint_note,
        old_size,
        proof,
        prove=prove,
        client=client,
        timeout=timeout,
        max_attempts=max_attempts,
    )
    return line


def request_cosignatures(
    witness_url: str,
    witness_keys: Sequence[VerifierKey],
    checkpoint_note: bytes,
    old_size: int,
    proof: Sequence[bytes],
    *,
    prove: ProveFunction | None = None,
    client: httpx.Client | None = None,
    timeout: float = 10.0,
    max_attempts: int = DEFAULT_ATTEMPTS,
    clock: Callable[[], float] = time.time,
) -> tuple[NoteSignature, ...]:
    """Ask the witness at ``witness_url`` (its submission prefix) to cosign ``checkpoint_note``.

    ``witness_keys`` are the witness's keys (0x04 and/or 0x06; several only under one name,
    as one witness answers with a line per key). ``old_size`` is the size the caller believes
    the witness last cosigned (0 if unknown) and ``proof`` the consistency proof from it to
    the checkpoint. On 409 the witness reports its size ``M``: with ``prove`` the request is
    retried from ``M`` with ``prove(M)``, up to ``max_attempts`` requests in all; without it
    :class:`OldSizeMismatchError` is raised (its ``latest_size`` is ``M``: resync from there).

    Returns one verified line per key of ``witness_keys``, in that order. Raises
    :class:`~ledger.witness.witness.ConflictingRootError` when the witness holds another root at
    this size (a split view), :class:`~ledger.witness.witness.OldSizeMismatchError` when it holds
    a larger tree than this checkpoint (or attempts ran out), :class:`WitnessBusyError` (429,
    503), :class:`WitnessNotConfiguredError` (404), :class:`~ledger.client.source.RemoteError`
    for any other error status (403, 422…, with ``status``), :class:`StorageError` when the
    witness is unreachable, :class:`MalformedError` for a malformed answer, and
    :class:`~ledger.errors.SignatureError` if the answer lacks a valid line from a key. The
    log's own signature on the note is not checked here.
    """
    keys = tuple(witness_keys)
    if not keys or len({key.name for key in keys}) != 1:
        raise MalformedError(
            f"couldn't ask witness {witness_url}: want one or more keys under one name, got "
            f"{', '.join(key.name for key in keys) or 'none'}"
        )
    for key in keys:
        if key.alg not in COSIGNATURE_ALGS:
            raise MalformedError(
                f"couldn't use witness key {key.name}+{key.key_id.hex()}: signature type "
                f"0x{key.alg:02x} is not 0x04 (cosignature/v1) or 0x06 (ML-DSA-44)"
            )
    note = parse_note(checkpoint_note)
    checkpoint = Checkpoint.parse(note.text)
    what = f"checkpoint of {excerpt(checkpoint.origin)} size {checkpoint.size}"
    url = witness_url.rstrip("/") + ADD_CHECKPOINT_PATH
    http = client if client is not None else httpx.Client(timeout=timeout)
    try:
        for _ in range(max_attempts):
            body = format_add_checkpoint(AddCheckpointRequest(old_size, tuple(proof), note))
            try:
                response = http.post(url, content=body, headers={"User-Agent": USER_AGENT})
            except httpx.HTTPError as exc:
                raise StorageError(f"couldn't send {what} to witness {url}: {exc}") from exc
            status = response.status_code
            if status == 200:
                return _verified_cosignatures(response.content, note, keys, url)
            action = f"get {what} cosigned by {url}"
            if status in (429, 503):
                error = remote_error(response, action, peer="witness")
                retry = parse_retry_after(response.headers.get("retry-after"), clock())
                raise WitnessBusyError(str(error), status, error.problem, retry)
            if status == 404:
                error = remote_error(response, action, peer="witness")
                raise WitnessNotConfiguredError(str(error), status, error.problem)
            if status == 422 and old_size == checkpoint.size:
                error = remote_error(response, action, peer="witness")
                raise ConflictingRootError(
                    f"couldn't {action}: the witness holds a different root hash at size "
                    f"{old_size} (a split view): {error}",
                    old_size,
                    None,
                )
            if status != 409:
                raise remote_error(response, action, peer="witness")
            latest = _conflict_size(response, url)
            if latest == old_size == checkpoint.size:
                # A witness from before C2SP PR #280 answers a same-size fork with 409.
                raise ConflictingRootError(
                    f"couldn't {action}: the witness holds a different root hash at size "
                    f"{latest} (a split view)",
                    latest,
                    None,
                )
            if latest == old_size:
                raise MalformedError(
                    f"couldn't {action}: the witness answered 409 with size {latest}, the old "
                    "size it was sent"
                )
            if latest > checkpoint.size:
                raise OldSizeMismatchError(
                    f"couldn't {action}: the witness has cosigned size {latest}, larger than "
                    "this checkpoint",
                    latest,
                )
            if prove is None:
                raise OldSizeMismatchError(
                    f"couldn't {action}: the witness holds size {latest}, not {old_size}, and "
                    "no proof function was given",
                    latest,
                )
            old_size, proof = latest, prove(latest)
        raise OldSizeMismatchError(
            f"couldn't get {what} cosigned by {url}: the witness's size kept changing "
            f"({max_attempts} attempts, last {old_size})",
            old_size,
        )
    finally:
        if client is None:
            http.close()


def fetch_cosigned_checkpoint(
    monitoring_url: str,
    origin: str,
    *,
    client: httpx.Client | None = None,
    timeout: float = 5.0,
) -> bytes | None:
    """Read the latest checkpoint the witness at ``monitoring_url`` (its monitoring prefix)
    cosigned for ``origin``: ``GET <prefix>/<origin hash>/checkpoint`` (tlog-witness's read
    endpoint). Returns the note as served, unverified (the caller opens it with the log key and
    the witness's keys), or ``None`` on 404 (never cosigned, or a witness without the endpoint).

    Raises :class:`WitnessBusyError` (429, 503), :class:`~ledger.client.source.RemoteError` for
    another error status, :class:`StorageError` when the witness is unreachable.
    """
    url = monitoring_url.rstrip("/") + checkpoint_path(origin)
    http = client if client is not None else httpx.Client(timeout=timeout)
    try:
        try:
            response = http.get(url, headers={"User-Agent": USER_AGENT})
        except httpx.HTTPError as exc:
            raise StorageError(f"couldn't read witness checkpoint {url}: {exc}") from exc
    finally:
        if client is None:
            http.close()
    action = f"read the checkpoint witness {url} cosigned"
    if response.status_code == 404:
        return None
    if response.status_code in (429, 503):
        error = remote_error(response, action, peer="witness")
        retry = parse_retry_after(response.headers.get("retry-after"), time.time())
        raise WitnessBusyError(str(error), response.status_code, error.problem, retry)
    if response.status_code != 200:
        raise remote_error(response, action, peer="witness")
    return response.content


def _conflict_size(response: httpx.Response, url: str) -> int:
    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != SIZE_CONTENT_TYPE:
        raise MalformedError(
            f"couldn't read witness {url}'s 409 answer: content type {media_type!r} is not "
            f"{SIZE_CONTENT_TYPE!r}"
        )
    try:
        return parse_size(response.content)
    except MalformedError as err:
        raise MalformedError(f"couldn't read witness {url}'s 409 answer: {err}") from None


def _verified_cosignatures(
    body: bytes, note: Note, keys: tuple[VerifierKey, ...], url: str
) -> tuple[NoteSignature, ...]:
    """Parse the answer's signature lines as the checkpoint's, verify them, return the keys'.

    As the spec suggests, the lines are appended to the checkpoint text and checked with a note
    verifier that knows only this witness's keys; lines from other keys are ignored.
    """
    try:
        cosigned = parse_note(note.text.encode("utf-8") + b"\n" + body)
    except MalformedError as err:
        raise MalformedError(f"couldn't read witness {url}'s cosignature: {err}") from None
    if cosigned.text != note.text:
        raise MalformedError(
            f"couldn't read witness {url}'s cosignature: the answer {excerpt(body)} is not "
            "only signature lines"
        )
    timestamps = verify_cosignatures(format_note(cosigned), keys)
    lines: list[NoteSignature] = []
    for key in keys:
        timestamp = timestamps.get(key)
        if timestamp is None:
            names = sorted({f"{s.name}+{s.key_id.hex()}" for s in cosigned.signatures})
            raise SignatureError(
                f"couldn't verify witness {url}'s cosignature: no line from "
                f"{key.name}+{key.key_id.hex()} (lines from: {', '.join(names)})"
            )
        stamp = timestamp.to_bytes(TIMESTAMP_SIZE, "big")
        lines.append(
            next(
                line
                for line in cosigned.signatures
                if line.is_from(key) and line.signature[:TIMESTAMP_SIZE] == stamp
            )
        )
    return tuple(lines)
