"""The log side of C2SP tlog-witness (httpx adapter): get a checkpoint cosigned by a witness.

:func:`request_cosignature` sends ``POST <prefix>/add-checkpoint``, follows the witness's 409
answer to the size it holds (with a proof the caller computes for that size), and returns the
cosignature line only after verifying it with the witness's key. Merge it into the checkpoint
note with :meth:`ledger.tlog.note.Note.with_signature`: the note text is unchanged, so the log's own
signature still verifies (see docs/WITNESS.md for wiring it after each checkpoint).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

import httpx

from ledger.client.source import USER_AGENT, remote_error
from ledger.errors import MalformedError, SignatureError, StorageError
from ledger.tlog.checkpoint import TIMESTAMP_SIZE, Checkpoint, verify_cosignatures
from ledger.tlog.note import (
    ALG_COSIGNATURE_V1,
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
    format_add_checkpoint,
    parse_size,
)

ProveFunction = Callable[[int], Sequence[bytes]]
"""``prove(size)``: the RFC 9162 consistency proof from ``size`` to the checkpoint's size
(empty when ``size`` is 0 or the checkpoint's size)."""

DEFAULT_ATTEMPTS: Final = 3


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
    """Ask the witness at ``witness_url`` (its submission prefix) to cosign ``checkpoint_note``.

    ``old_size`` is the size the caller believes the witness last cosigned (0 if unknown) and
    ``proof`` the consistency proof from it to the checkpoint. On 409 the witness reports its
    size ``M``: with ``prove`` the request is retried from ``M`` with ``prove(M)``, up to
    ``max_attempts`` requests in all; without it :class:`OldSizeMismatchError` is raised.

    Returns the cosignature/v1 line of ``witness_vkey``, verified over the checkpoint. Raises
    :class:`~ledger.witness.witness.ConflictingRootError` when the witness holds another root at this
    size (a split view), :class:`~ledger.witness.witness.OldSizeMismatchError` when it holds a larger
    tree than this checkpoint (or attempts ran out), :class:`~ledger.client.source.RemoteError` for any
    other error status (403, 404, 422…, with ``status``), :class:`StorageError` when the witness
    is unreachable, :class:`MalformedError` for a malformed answer, and
    :class:`~ledger.errors.SignatureError` if the answer has no valid line from the witness key.
    The log's own signature on the note is not checked here.
    """
    key = VerifierKey.parse(witness_vkey) if isinstance(witness_vkey, str) else witness_vkey
    if key.alg != ALG_COSIGNATURE_V1:
        raise MalformedError(
            f"couldn't use witness key {key.vkey()}: signature type 0x{key.alg:02x} is not "
            "0x04 (cosignature/v1)"
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
            if response.status_code == 200:
                return _verified_cosignature(response.content, note, key, url)
            if response.status_code != 409:
                raise remote_error(response, f"get {what} cosigned by {url}", peer="witness")
            latest = _conflict_size(response, url)
            if latest == old_size == checkpoint.size:
                raise ConflictingRootError(
                    f"couldn't get {what} cosigned by {url}: the witness holds a different "
                    f"root hash at size {latest} (a split view)",
                    latest,
                    None,
                )
            if latest == old_size:
                raise MalformedError(
                    f"couldn't get {what} cosigned by {url}: the witness answered 409 with "
                    f"size {latest}, the old size it was sent"
                )
            if latest > checkpoint.size:
                raise OldSizeMismatchError(
                    f"couldn't get {what} cosigned by {url}: the witness has cosigned size "
                    f"{latest}, larger than this checkpoint",
                    latest,
                )
            if prove is None:
                raise OldSizeMismatchError(
                    f"couldn't get {what} cosigned by {url}: the witness holds size {latest}, "
                    f"not {old_size}, and no proof function was given",
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


def _verified_cosignature(body: bytes, note: Note, key: VerifierKey, url: str) -> NoteSignature:
    """Parse the answer's signature lines as the checkpoint's, verify them, return key's line.

    As the spec suggests, the lines are appended to the checkpoint text and checked with a note
    verifier that knows only this witness key; lines from other keys are ignored.
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
    timestamp = verify_cosignatures(format_note(cosigned), [key]).get(key)
    if timestamp is None:
        names = sorted({f"{s.name}+{s.key_id.hex()}" for s in cosigned.signatures})
        raise SignatureError(
            f"couldn't verify witness {url}'s cosignature: no line from {key.vkey()} "
            f"(lines from: {', '.join(names)})"
        )
    stamp = timestamp.to_bytes(TIMESTAMP_SIZE, "big")
    return next(
        line
        for line in cosigned.signatures
        if line.is_from(key) and line.signature[:TIMESTAMP_SIZE] == stamp
    )
