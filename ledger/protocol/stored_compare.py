"""Comparing a stored protocol state with a replayed one, record by record.

:func:`first_difference` is what ``amnesty check-derived`` and ``amnesty fsck`` run: the derived
state stored at a flush point (:mod:`ledger.protocol.stored`) against the in-memory state a
verifier replayed from entry 0 to that size, table by table in key order, naming the first
record that differs. The replayed state is encoded with the same codec
(:mod:`ledger.protocol.codec`), so equal states give equal bytes. Where the flush point holds
the precedent's aggregates (:mod:`ledger.protocol.aggregates`), they are compared too, with
those :func:`~ledger.protocol.aggregates.expected_rows` computes from the replay; where it holds
report text, each subject's timeline text and each application's text are compared with the
replay's (:func:`~ledger.protocol.report_text.report_text_difference`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ledger.errors import MalformedError
from ledger.protocol.aggregates import AGGREGATE_KINDS, META_TALLIES, expected_rows
from ledger.protocol.audit import application_text, subject_head_text
from ledger.protocol.codec import decode_value, encode_value
from ledger.protocol.report_text import read_ranges, report_text_difference
from ledger.protocol.state import ProtocolState
from ledger.protocol.stored import (
    META_COUNTS,
    META_KEYSET,
    META_LATEST_VERSION,
    META_LOG_KEY,
    META_OFFER_IN_FORCE,
    META_SIGNATURE_STRENGTH,
    META_TYPE_COUNTS,
    DerivedSource,
    int_key,
    str_key,
    subject_without_timeline,
    timeline_key,
)


def _memory_tables(
    state: ProtocolState,
    aggregates: bool,
    signature_strength: bool = True,
    *,
    report_text: bool = True,
) -> dict[str, tuple[dict[bytes, Any], bool]]:
    """An in-memory state's tables as the stored state keeps them: kind → (rows by encoded
    key, whether values are written by reference); with the precedent's ``aggregates`` and
    the ``signature_strength`` tally if asked."""
    counts = {
        "keyset": len(state._keysets),
        "body_key": len(state._body_keys),
        "offer": len(state._offers),
        "subject": len(state._subjects),
        "key_owner": len(state._key_owner),
        "application": len(state._applications),
        "decision": len(state._decisions),
        "consent": len(state._consents),
        "finding": len(state._findings),
        "revocation": len(state._revocations),
        "enforcement": len(state._enforcement),
        "grievance": len(state._grievances),
        "pause": len(state._pause_periods),
        "detail": len(state._details),
        "timeline": sum(len(s.timeline) for s in state._subjects.values()),
    }
    meta: dict[bytes, Any] = {
        str_key(META_COUNTS): {k: v for k, v in counts.items() if v},
        str_key(META_TYPE_COUNTS): dict(state._type_counts),
    }
    if state._keyset is not None:
        meta[str_key(META_KEYSET)] = state._keyset.index
    if state._offers:
        meta[str_key(META_OFFER_IN_FORCE)] = state._offer_in_force
        meta[str_key(META_LATEST_VERSION)] = state._latest_version
    aggregate_rows: dict[str, dict[bytes, Any]] = {}
    if aggregates:
        aggregate_rows, meta[str_key(META_TALLIES)] = expected_rows(state, with_text=report_text)
    if state._log_key is not None:
        meta[str_key(META_LOG_KEY)] = state._log_key
    runs: dict[bytes, Any] = {}
    tally = state._signature_strength
    if signature_strength and tally is not None:
        flat = tally.ed25519_only_runs
        meta[str_key(META_SIGNATURE_STRENGTH)] = {
            "ed25519_only": dict(tally.ed25519_only),
            "hybrid": dict(tally.hybrid),
            "last_run": flat[-2:] or None,
        }
        runs = {int_key(flat[n]): flat[n + 1] for n in range(0, len(flat), 2)}

    def by_int(table: Iterable[tuple[int, Any]]) -> dict[bytes, Any]:
        return {int_key(k): v for k, v in table}

    return {
        "meta": (meta, False),
        "keyset": (by_int((k.index, k) for k in state._keysets), False),
        "body_key": ({bytes(k): True for k in state._body_keys}, False),
        "offer": (by_int(state._offers.items()), False),
        "subject": (
            by_int((k, subject_without_timeline(v)) for k, v in state._subjects.items()),
            False,
        ),
        "key_owner": ({bytes(k): v for k, v in state._key_owner.items()}, False),
        "application": (by_int(state._applications.items()), False),
        "decision": (by_int(state._decisions.items()), True),
        "consent": (by_int(state._consents.items()), False),
        "finding": (by_int(state._findings.items()), False),
        "revocation": (by_int(state._revocations.items()), False),
        "enforcement": (by_int(state._enforcement.items()), False),
        "grievance": (by_int(state._grievances.items()), False),
        "pause": (by_int((p.index, p) for p in state._pause_periods), False),
        "detail": (by_int(state._details.items()), False),
        "timeline": (
            {
                timeline_key(sid, index): True
                for sid, subject in state._subjects.items()
                for index in subject.timeline
            },
            False,
        ),
        "ed25519_run": (runs, False),
        **{kind: (aggregate_rows[kind], False) for kind in AGGREGATE_KINDS if aggregates},
    }


def first_difference(source: DerivedSource, at: int, replayed: ProtocolState) -> str | None:
    """Compare the derived state stored at flush point ``at`` with ``replayed``, an in-memory
    state replayed from the log to size ``at``: ``None`` if every record is equal, else the
    first difference in words (kind, key, and what each side holds). Streams the stored rows;
    what it holds in memory is ``replayed``."""
    if replayed.size != at:
        return f"the replayed state has {replayed.size} entries, not {at}"
    aggregates = source.read("meta", str_key(META_TALLIES), at) is not None
    strength = source.read("meta", str_key(META_SIGNATURE_STRENGTH), at) is not None
    if not strength and not _all_ed25519_only(replayed, at):
        # A flush point without the tally means every entry before it is Ed25519-only
        # (StoredProtocolState._signature_strength); the replay must say so too.
        return f"meta {META_SIGNATURE_STRENGTH}: missing from the stored state"
    tables = _memory_tables(
        replayed,
        aggregates,
        signature_strength=strength,
        report_text=read_ranges(source, at) is not None,
    )
    for kind, (rows, by_reference) in tables.items():
        expected = sorted(rows.items())
        position = 0
        for key, data in source.scan(kind, at):
            if position >= len(expected) or expected[position][0] > key:
                return f"{kind} {_label(kind, key)}: stored, but the replay has no such record"
            want_key, want = expected[position]
            if want_key < key:
                return f"{kind} {_label(kind, want_key)}: missing from the stored state"
            if kind == "meta":
                # Dicts here (counts by kind or type) may list their keys in another order.
                want_data = encode_value(want)
                if decode_value(data, _no_references) != want:
                    return (
                        f"meta {_label(kind, key)}: stored {_short(data)}, replayed "
                        f"{_short(want_data)}"
                    )
            else:
                want_data = encode_value(want, by_reference=by_reference)
                if want_data != data:
                    return (
                        f"{kind} {_label(kind, key)}: stored {_short(data)}, replayed "
                        f"{_short(want_data)}"
                    )
            position += 1
        if position < len(expected):
            return f"{kind} {_label(kind, expected[position][0])}: missing from the stored state"
    # The report text: the timelines' rows depend on where batches ended, so what is compared
    # is each subject's text with its replayed timeline, and each application's with its item.
    return report_text_difference(source, at, replayed, application_text, subject_head_text)


def _all_ed25519_only(state: ProtocolState, size: int) -> bool:
    """Whether ``state``'s tally is what a missing stored tally stands for: every entry of
    the ``size`` Ed25519-only, by type, in one run."""
    tally = state._signature_strength
    return tally is None or (
        not tally.hybrid
        and tally.ed25519_only == dict(state._type_counts)
        and tally.ed25519_only_runs == ([0, size] if size else [])
    )


def _no_references(tag: str, index: int) -> Any:
    raise MalformedError(f"couldn't read a meta record: it holds a reference ({tag} {index})")


def _label(kind: str, key: bytes) -> str:
    if kind == "meta":
        return key.decode("utf-8", "replace")
    if kind in ("body_key", "key_owner"):
        return "key " + key.hex()[:16]
    if kind in AGGREGATE_KINDS:
        return "key " + key.hex()
    if kind == "timeline":
        return (
            f"of subject {int.from_bytes(key[:8], 'big')} at index {int.from_bytes(key[8:], 'big')}"
        )
    return f"at index {int.from_bytes(key, 'big')}"


def _short(data: bytes, limit: int = 160) -> str:
    text = data.decode("utf-8", "replace")
    return text if len(text) <= limit else text[:limit] + "…"
