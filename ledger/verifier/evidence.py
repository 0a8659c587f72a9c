"""Split-view evidence: two checkpoints one log signed that cannot both be true.

A log that shows two parties different histories has to sign two checkpoints for which no
consistency proof exists. This module writes what a verifier saw when it caught that, in a file
anyone holding the log's vkey can re-check with nothing else (``amnesty evidence verify``).

The file is JSON (UTF-8, keys sorted), format ``amnesty-ledger.split-view/v1``::

    {
      "format": "amnesty-ledger.split-view/v1",
      "origin": "<the log's origin>",
      "checkpoint1": "<signed checkpoint note, verbatim: the one verified first>",
      "checkpoint2": "<signed checkpoint note, verbatim: the one that contradicts it>",
      "consistency_proof": ["<base64 hash>", ...],
      "prefix_root": "<base64: root of the first size1 entries of checkpoint2's tree>",
      "failed_check": "<why checkpoint1 -> checkpoint2 does not verify (informational)>",
      "observed": "<where and when it was seen (informational, not authenticated)>"
    }

``size1 <= size2`` always. ``consistency_proof`` is the RFC 9162 proof from ``size1`` to
``size2`` that the source of ``checkpoint2`` served (computed from its tiles), empty when the
sizes are equal. The evidence **proves** a split view when, with both checkpoints' signatures
verifying under the log's key:

- the sizes are equal and the root hashes differ (then ``prefix_root`` is ``root2``); or
- ``size1 < size2``, the proof verifies from ``(size1, prefix_root)`` to ``(size2, root2)`` —
  so the tree ``checkpoint2`` commits to begins with ``size1`` entries whose root is
  ``prefix_root`` — and ``prefix_root`` differs from ``root1``. The same proof then necessarily
  fails from ``(size1, root1)``: that failure is ``failed_check``.

A consistency proof that fails against *both* roots proves nothing about the log (the source
served bad tiles): the verifier reports that as a plain verification failure, never as evidence.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Final

from ledger.errors import LedgerError, MalformedError, ProofError, VerificationError
from ledger.tlog.checkpoint import Checkpoint, LogKey, open_checkpoint
from ledger.tlog.merkle import HASH_SIZE, verify_consistency
from ledger.tlog.note import parse_note

EVIDENCE_FORMAT: Final = "amnesty-ledger.split-view/v1"

_KEYS = frozenset(
    {
        "format",
        "origin",
        "checkpoint1",
        "checkpoint2",
        "consistency_proof",
        "prefix_root",
        "failed_check",
        "observed",
    }
)


@dataclass(frozen=True, slots=True)
class SplitView:
    """Evidence of a split view (see the module docstring for what makes it conclusive)."""

    checkpoint1: bytes
    checkpoint2: bytes
    consistency_proof: tuple[bytes, ...]
    prefix_root: bytes
    failed_check: str = ""
    observed: str = ""

    def to_json(self) -> dict[str, Any]:
        """The evidence file's JSON object."""
        return {
            "format": EVIDENCE_FORMAT,
            "origin": Checkpoint.parse(_note_text(self.checkpoint1)).origin,
            "checkpoint1": self.checkpoint1.decode("utf-8"),
            "checkpoint2": self.checkpoint2.decode("utf-8"),
            "consistency_proof": [_b64(h) for h in self.consistency_proof],
            "prefix_root": _b64(self.prefix_root),
            "failed_check": self.failed_check,
            "observed": self.observed,
        }


def format_evidence(evidence: SplitView) -> bytes:
    """Encode ``evidence`` as the file :func:`parse_evidence` reads."""
    return (json.dumps(evidence.to_json(), indent=2, sort_keys=True) + "\n").encode("utf-8")


def parse_evidence(data: bytes) -> SplitView:
    """Parse an evidence file strictly; raise :class:`MalformedError` naming what is wrong.

    Parsing checks the shape only; :func:`verify_evidence` decides whether it proves anything.
    """
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedError(f"couldn't parse split-view evidence: not UTF-8 JSON: {exc}") from None
    if not isinstance(value, dict) or set(value) != _KEYS:
        keys = sorted(value) if isinstance(value, dict) else type(value).__name__
        raise MalformedError(
            f"couldn't parse split-view evidence: want keys {sorted(_KEYS)}, got {keys}"
        )
    if value["format"] != EVIDENCE_FORMAT:
        raise MalformedError(
            f"couldn't parse split-view evidence: format {value['format']!r} is not "
            f"{EVIDENCE_FORMAT!r}"
        )
    for name in ("origin", "checkpoint1", "checkpoint2", "prefix_root", "failed_check", "observed"):
        if not isinstance(value[name], str):
            raise MalformedError(f"couldn't parse split-view evidence: {name} is not a string")
    proof = value["consistency_proof"]
    if not isinstance(proof, list) or not all(isinstance(h, str) for h in proof):
        raise MalformedError(
            "couldn't parse split-view evidence: consistency_proof is not a list of strings"
        )
    evidence = SplitView(
        checkpoint1=value["checkpoint1"].encode("utf-8"),
        checkpoint2=value["checkpoint2"].encode("utf-8"),
        consistency_proof=tuple(_hash(h, "consistency_proof hash") for h in proof),
        prefix_root=_hash(value["prefix_root"], "prefix_root"),
        failed_check=value["failed_check"],
        observed=value["observed"],
    )
    origin = Checkpoint.parse(_note_text(evidence.checkpoint1)).origin
    if value["origin"] != origin:
        raise MalformedError(
            f"couldn't parse split-view evidence: origin {value['origin']!r} is not checkpoint1's "
            f"{origin!r}"
        )
    return evidence


@dataclass(frozen=True, slots=True)
class ProvenSplitView:
    """What verified evidence shows: two signed, contradictory checkpoints."""

    checkpoint1: Checkpoint
    checkpoint2: Checkpoint
    prefix_root: bytes


def verify_evidence(evidence: SplitView, log_key: LogKey) -> ProvenSplitView:
    """Check that ``evidence`` proves the log of ``log_key`` signed a split view.

    Steps:

    1. open both checkpoints: each must carry a valid signature of ``log_key`` and name its
       origin (:class:`~ledger.errors.SignatureError`, :class:`~ledger.errors.RefusedError`);
    2. require ``size1 <= size2``;
    3. equal sizes: require an empty proof, ``prefix_root == root2`` and ``root1 != root2``;
    4. otherwise require the proof to verify from ``(size1, prefix_root)`` to
       ``(size2, root2)`` and ``prefix_root != root1`` (so it fails from ``root1``).

    Returns the two checkpoints, or raises :class:`VerificationError` saying which step failed.
    """
    # Step 1: both checkpoints are the log's own.
    try:
        first = open_checkpoint(evidence.checkpoint1, log_key)
        second = open_checkpoint(evidence.checkpoint2, log_key)
    except LedgerError as exc:
        raise VerificationError(f"couldn't verify split-view evidence: {exc}") from exc
    # Step 2: ordered by size.
    if first.size > second.size:
        raise VerificationError(
            f"couldn't verify split-view evidence: checkpoint1 has size {first.size}, larger "
            f"than checkpoint2's {second.size}"
        )
    proof = list(evidence.consistency_proof)
    if first.size == second.size:
        # Step 3: one size, two roots.
        if proof or evidence.prefix_root != second.root_hash:
            raise VerificationError(
                "couldn't verify split-view evidence: for equal sizes the proof must be empty and "
                "prefix_root must be checkpoint2's root"
            )
        if first.root_hash == second.root_hash:
            raise VerificationError(
                f"couldn't verify split-view evidence: both checkpoints of size {first.size} "
                "have the same root: they agree"
            )
        return ProvenSplitView(first, second, evidence.prefix_root)
    # Step 4: checkpoint2's tree begins with a different tree of size1.
    try:
        verify_consistency(first.size, second.size, proof, evidence.prefix_root, second.root_hash)
    except ProofError as exc:
        raise VerificationError(
            "couldn't verify split-view evidence: the proof does not tie prefix_root to "
            f"checkpoint2, so it proves nothing about the log: {exc}"
        ) from exc
    if evidence.prefix_root == first.root_hash:
        raise VerificationError(
            f"couldn't verify split-view evidence: the first {first.size} entries of "
            "checkpoint2's tree have checkpoint1's root: the checkpoints are consistent"
        )
    return ProvenSplitView(first, second, evidence.prefix_root)


def _note_text(note: bytes) -> str:
    return parse_note(note).text


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _hash(text: str, what: str) -> bytes:
    try:
        value = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedError(f"couldn't parse split-view evidence: {what} is not base64") from None
    if len(value) != HASH_SIZE or _b64(value) != text:
        raise MalformedError(
            f"couldn't parse split-view evidence: {what} is not the canonical base64 of "
            f"{HASH_SIZE} bytes"
        )
    return value
