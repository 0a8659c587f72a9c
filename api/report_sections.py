"""What a precedent report computes once per checkpoint, kept for every audit time.

A JSON report at one tree head differs between audit times only in its verdicts, counts and
running clocks: its applications, grievances and subjects (:data:`~ledger.protocol.audit.
KEPT_SECTIONS`, about 164 of 182 MB at a million entries) and its final judgements do not
depend on the audit time. :func:`report_pieces` computes a report with the report cache
(:mod:`api.report_cache`) as where those come from: the first report at a tree head, judged now
included, keeps each list (a file named ``s-…``, :func:`section_key`) and each commitment's
judgements as segments (``j-…``, :func:`judgement_key`; one line each: the text of a run of
final judgements, or a running clock named to be judged again at the report's audit time,
:func:`~ledger.protocol.audit.judgement_segments`); every later JSON report at that tree head,
at any audit time, reads them and computes only its verdicts, counts and running clocks.

They are named by the code fingerprint, origin, size and root hash, so they are never stale,
checked against their digest before use, and share the reports' budget
(:class:`~api.report_cache.ReportCache`). The text rendering computes everything each time.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from api.heads import TreeHeadInfo
from api.report_cache import ReportCache, code_fingerprint
from ledger.protocol.audit import (
    JudgementSegment,
    precedent_pieces,
    precedent_text_pieces,
)
from ledger.protocol.state import ProtocolState

_KEY_TAGS = {
    "s-": "amnesty-ledger precedent report section v1",
    "j-": "amnesty-ledger precedent judgement segments v1",
}


def _tree_head_key(prefix: str, name: str, origin: str, size: int, root_hash: bytes) -> str:
    """``prefix`` and the hex SHA-256 of its tag, ``name``, the code fingerprint and the tree
    head: exactly what determines the bytes of what is kept under it."""
    parts = (_KEY_TAGS[prefix], name, code_fingerprint(), origin, str(size), root_hash.hex())
    return prefix + hashlib.sha256("\n".join(parts).encode()).hexdigest()


def section_key(name: str, origin: str, size: int, root_hash: bytes) -> str:
    """The name of one section of the JSON report that does not depend on the audit time
    (:data:`~ledger.protocol.audit.KEPT_SECTIONS`) at this tree head: ``s-…`` (the prefix
    tells an operator's listing sections from whole reports)."""
    return _tree_head_key("s-", name, origin, size, root_hash)


def judgement_key(commitment: str, origin: str, size: int, root_hash: bytes) -> str:
    """The name of one commitment's judgement segments
    (:func:`~ledger.protocol.audit.judgement_segments`) at this tree head: ``j-…``."""
    return _tree_head_key("j-", commitment, origin, size, root_hash)


def segment_line(segment: JudgementSegment) -> str:
    """A judgement segment as a line of its file: ``T`` and the text (JSON text holds no line
    feed: ``json.dumps`` escapes it), or ``C``, the source table, a space and the entry index."""
    if isinstance(segment, str):
        return f"T{segment}\n"
    table, index = segment
    return f"C{table} {index}\n"


def parse_segment_line(line: str) -> JudgementSegment:
    """The segment of a line written by :func:`segment_line`; ValueError for anything else."""
    if line.startswith("T") and line.endswith("\n"):
        return line[1:-1]
    table, _, index = line[1:-1].partition(" ")
    if line.startswith("C") and line.endswith("\n") and table and index.isdigit():
        return table, int(index)
    raise ValueError(f"not a judgement segment line: {line[:40]!r}")


def checkpoint_summary(head: TreeHeadInfo) -> dict[str, Any]:
    """The checkpoint a report at ``head`` names (its ``checkpoint``: origin, size, root)."""
    return {
        "origin": head.origin,
        "size": head.size,
        "root_hash_b64": base64.b64encode(head.root_hash).decode(),
    }


def kept_judgement_segments(
    cache: ReportCache, key: str, compute: Callable[[], Iterator[JudgementSegment]]
) -> Iterator[JudgementSegment]:
    """One commitment's judgement segments named ``key`` (:func:`judgement_key`): read back
    when kept (checked against its digest), else ``compute()``, kept as they pass."""
    kept = cache.open(key)
    lines = kept.lines() if kept is not None else cache.keeping(key, map(segment_line, compute()))
    return map(parse_segment_line, lines)


def report_pieces(
    state: ProtocolState,
    head: TreeHeadInfo,
    audit_time_ms: int,
    *,
    as_text: bool,
    cache: ReportCache | None,
) -> Iterator[str]:
    """The precedent report of ``state`` at ``head`` (its JSON text, or with ``as_text`` its
    plain text) in pieces, as :func:`~ledger.protocol.audit.precedent_pieces` computes it; a
    JSON report reads and keeps in ``cache`` what does not depend on the audit time."""
    checkpoint = checkpoint_summary(head)
    if as_text:
        return precedent_text_pieces(state, checkpoint=checkpoint, audit_time_ms=audit_time_ms)
    if cache is None:
        return precedent_pieces(state, checkpoint=checkpoint, audit_time_ms=audit_time_ms)
    at = (head.origin, head.size, head.root_hash)

    def section(name: str, compute: Callable[[], Iterator[str]]) -> Iterator[str]:
        return cache.kept_or_keeping(section_key(name, *at), compute)

    def judged(
        commitment: str, compute: Callable[[], Iterator[JudgementSegment]]
    ) -> Iterable[JudgementSegment]:
        return kept_judgement_segments(cache, judgement_key(commitment, *at), compute)

    return precedent_pieces(
        state,
        checkpoint=checkpoint,
        audit_time_ms=audit_time_ms,
        sections=section,
        judged=judged,
    )


__all__ = [
    "checkpoint_summary",
    "judgement_key",
    "kept_judgement_segments",
    "parse_segment_line",
    "report_pieces",
    "section_key",
    "segment_line",
]
