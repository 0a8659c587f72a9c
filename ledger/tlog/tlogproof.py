"""C2SP tlog-proof: an offline-verifiable proof that an entry is in a (witnessed) log.

The file (https://c2sp.org/tlog-proof, suggested extension ``.tlog-proof``) is::

    c2sp.org/tlog-proof@v1
    extra <base64 opaque data>        (optional, NOT authenticated)
    index <leaf index, decimal>
    <base64 inclusion proof hash>     (zero or more, leaf's sibling first)

    <signed checkpoint note, verbatim, with any cosignatures>

Everything before the first blank line is ASCII; the checkpoint note after it is kept as the
exact bytes it was signed and cosigned as. Parsing is strict and canonical:
``format_tlog_proof(parse_tlog_proof(b)) == b`` for every accepted ``b``, and an empty ``extra``
is written by leaving the line out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ledger.errors import MalformedError
from ledger.tlog import merkle
from ledger.tlog.checkpoint import (
    MAX_INT63,
    Checkpoint,
    LogKey,
    Policy,
    open_checkpoint,
    open_witnessed_checkpoint,
    parse_decimal,
)
from ledger.tlog.note import decode_base64, encode_base64, excerpt, parse_note

HEADER: Final = "c2sp.org/tlog-proof@v1"
MAX_PROOF_HASHES: Final = 64
"""The longest audit path, that of a tree of 2**64 - 1 leaves."""

_EXTRA_PREFIX = "extra "
_INDEX_PREFIX = "index "


@dataclass(frozen=True, slots=True)
class TlogProof:
    """A parsed tlog-proof file.

    ``checkpoint`` is the signed checkpoint note as bytes, verbatim; construction checks that it
    parses as a note carrying a checkpoint (not that it verifies: see :func:`open_tlog_proof`).
    ``extra`` is unauthenticated application data, empty when absent.
    """

    index: int
    hashes: tuple[bytes, ...]
    checkpoint: bytes
    extra: bytes = b""

    def __post_init__(self) -> None:
        if isinstance(self.index, bool) or not 0 <= self.index <= MAX_INT63:
            raise MalformedError(
                f"couldn't accept tlog-proof: index {self.index!r} is not from 0 to {MAX_INT63}"
            )
        if len(self.hashes) > MAX_PROOF_HASHES:
            raise MalformedError(
                f"couldn't accept tlog-proof for index {self.index}: {len(self.hashes)} proof "
                f"hashes, more than {MAX_PROOF_HASHES}"
            )
        for position, value in enumerate(self.hashes):
            if len(value) != merkle.HASH_SIZE:
                raise MalformedError(
                    f"couldn't accept tlog-proof for index {self.index}: proof hash {position} "
                    f"is {len(value)} bytes, not {merkle.HASH_SIZE}"
                )
        try:
            Checkpoint.parse(parse_note(self.checkpoint).text)
        except MalformedError as err:
            raise MalformedError(
                f"couldn't accept tlog-proof for index {self.index}: its checkpoint: {err}"
            ) from None


def format_tlog_proof(proof: TlogProof) -> bytes:
    """Encode ``proof`` as a tlog-proof file; the inverse of :func:`parse_tlog_proof`."""
    lines = [HEADER]
    if proof.extra:
        lines.append(_EXTRA_PREFIX + encode_base64(proof.extra))
    lines.append(f"{_INDEX_PREFIX}{proof.index}")
    lines.extend(encode_base64(value) for value in proof.hashes)
    return ("\n".join(lines) + "\n\n").encode("ascii") + proof.checkpoint


def parse_tlog_proof(data: bytes) -> TlogProof:
    """Parse a tlog-proof file strictly; raise :class:`MalformedError` naming what is wrong.

    Requires the exact header line, at most one non-empty ``extra`` line, an ``index`` line in
    decimal without leading zeros, canonical base64 hashes of 32 bytes each, a blank line, and a
    checkpoint note after it. Verification is :func:`open_tlog_proof`'s job.
    """
    split = data.find(b"\n\n")
    if split < 0:
        raise MalformedError(
            f"couldn't parse tlog-proof {excerpt(data)}: no blank line before the checkpoint"
        )
    head, checkpoint = data[:split], data[split + 2 :]
    try:
        lines = head.decode("ascii").split("\n")
    except UnicodeDecodeError:
        raise MalformedError(
            f"couldn't parse tlog-proof {excerpt(head)}: non-ASCII byte before the checkpoint"
        ) from None
    if lines[0] != HEADER:
        raise MalformedError(
            f"couldn't parse tlog-proof: first line {excerpt(lines[0])} is not {HEADER!r}"
        )
    rest = lines[1:]
    extra = b""
    if rest and rest[0].startswith(_EXTRA_PREFIX):
        extra = decode_base64(rest[0][len(_EXTRA_PREFIX) :], "tlog-proof extra data")
        if not extra:
            raise MalformedError("couldn't parse tlog-proof: the extra line is empty")
        rest = rest[1:]
    if not rest or not rest[0].startswith(_INDEX_PREFIX):
        found = excerpt(rest[0]) if rest else "nothing"
        raise MalformedError(f"couldn't parse tlog-proof: want an index line, found {found}")
    index = parse_decimal(rest[0][len(_INDEX_PREFIX) :], "tlog-proof index")
    if len(rest) - 1 > MAX_PROOF_HASHES:
        raise MalformedError(
            f"couldn't parse tlog-proof for index {index}: {len(rest) - 1} proof lines, "
            f"more than {MAX_PROOF_HASHES}"
        )
    hashes = tuple(decode_base64(line, "tlog-proof hash") for line in rest[1:])
    return TlogProof(index, hashes, checkpoint, extra)


def open_tlog_proof(proof: TlogProof, leaf_hash: bytes, trust: LogKey | Policy) -> Checkpoint:
    """Verify ``proof`` for the leaf with hash ``leaf_hash`` and return its checkpoint.

    ``leaf_hash`` is the RFC 6962 leaf hash, ``ledger.tlog.merkle.leaf_hash(entry)`` for the entry's
    bytes. ``trust`` is either the log's key (the checkpoint needs the log's signature and origin
    only) or a tlog-policy (a policy log's signature, and the policy's witness quorum).

    Steps: (1) open the checkpoint under ``trust`` (:class:`SignatureError`,
    :class:`RefusedError`); (2) verify the inclusion of leaf ``index`` in the tree of the
    checkpoint's size and root (:class:`ProofError`). The ``extra`` data is not looked at.
    """
    if isinstance(trust, Policy):
        checkpoint = open_witnessed_checkpoint(proof.checkpoint, trust)
    else:
        checkpoint = open_checkpoint(proof.checkpoint, trust)
    merkle.verify_inclusion(
        proof.index, checkpoint.size, leaf_hash, proof.hashes, checkpoint.root_hash
    )
    return checkpoint
