"""The protocol state kept in a database: start in milliseconds, memory that does not grow.

:class:`StoredProtocolState` is a :class:`~ledger.protocol.state.ProtocolState` whose tables
live in a :class:`DerivedSource` (the SQL adapter is :mod:`ledger.storage.derived`) instead of
in memory. Every admission rule, commitment rule and query runs unchanged on it: the tables are
mappings that load a record on first use and keep it until the state is flushed or dropped.

**Versions.** The store keeps each record's versions by the log size they were written at (a
*flush point*: the sequencer flushes at the end of every batch, in the batch's own transaction).
A state is *pinned* at a flush point ``P`` and reads every record as it was at size ``P``; entries
applied after that (``apply`` as usual) change only the state's memory — the *overlay* — until
:meth:`StoredProtocolState.derived_rows` hands their changes to the caller, who writes them at
the new size in the same transaction as the entries, and then calls
:meth:`~StoredProtocolState.committed`. So the state at any size ``S`` is the flush point
``P <= S`` plus a replay of entries ``[P, S)`` — at most one batch — never a replay from entry 0.

Invariants (the crash-safety argument):

- the store's rows at flush point ``P`` are exactly the protocol state after entries ``[0, P)``
  (they are written in the transaction that commits entry ``P - 1``, or by a backfill that
  replayed ``[0, P)``), so a crash at any moment leaves derived state that matches the log;
- the overlay is never written except by the caller's commit; :meth:`rolled_back` forgets it
  and the state is again exactly its pinned flush point (a failed batch costs nothing to undo);
- records are shared between tables only as in the in-memory state (a subject's pause period
  is the pause table's record; a decision's application is the application table's), and the
  codec writes such sharing as references (:mod:`ledger.protocol.codec`), so an object reached
  either way is the same object for as long as the state holds it. The tables drop everything
  together (:meth:`~StoredProtocolState.trim`), never one record, so no stale copy survives.

Memory: the loaded records (at most ``cache_records`` between batches; a batch pins what it
touches), the per-entry facts in a fixed-size :class:`FactCache`, and the overlay of at most one
batch. Scans (an audit's ``values()``) stream records and keep none of them. A full report
copies its timelines and applications from the report text the flushes keep
(:mod:`ledger.protocol.report_text`: :meth:`StoredProtocolState.timeline_texts`,
:meth:`~StoredProtocolState.application_texts`); at a flush point without it, it reads every
entry's type and log time and every detail once, in order
(:meth:`StoredProtocolState.read_ahead`: 9 bytes an entry, for that request's state only),
instead of one by one.

The precedent's aggregates (:mod:`ledger.protocol.aggregates`) are tables of this state too
(:data:`TABLE_KINDS` ends with them), kept up to date by :meth:`derived_rows` before it collects
the rows; their rows may be deleted (an empty value in a flush ends the record's version).

Contract: not thread-safe (one thread per state, as for the in-memory state); a state used for
reading only (``pinned`` and never applied to) may be used by one request and dropped.

Kept whole: the tables, the state that owns them and its flush cycle (load, overlay, rows to
write, commit or forget) are one mechanism whose invariants hold only together.
"""

from __future__ import annotations

import dataclasses
import threading
from array import array
from collections import OrderedDict
from collections.abc import (
    Callable,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
    MutableSequence,
    MutableSet,
    Sequence,
)
from typing import Any, Generic, Protocol, TypeVar

from ledger.errors import MalformedError
from ledger.protocol.aggregates import (
    AGGREGATE_KINDS,
    META_TALLIES,
    kept_judgement_segments,
    settle,
)
from ledger.protocol.audit import JudgementSegment, application_text, subject_head_text
from ledger.protocol.codec import decode_value, encode_value
from ledger.protocol.keys import PublicKey
from ledger.protocol.queries import TYPES_WITH_DETAIL
from ledger.protocol.records import (
    ApplicationRecord,
    ConsentRecord,
    EnforcementRecord,
    FindingRecord,
    GrievanceRecord,
    KeysetRecord,
    LogKeyRecord,
    OfferVersion,
    PausePeriod,
    RevocationRecord,
    SignatureStrength,
    SubjectRecord,
)
from ledger.protocol.report_text import (
    Event,
    ItemText,
    TimelineTexts,
    events_of,
    flush_rows,
    read_ranges,
    stored_application_texts,
    stored_subject_texts,
    stored_timeline_texts,
)
from ledger.protocol.signature_strength import note_entry
from ledger.protocol.state import ProtocolState
from ledger.protocol.statements import LoggedStatement
from ledger.protocol.tables import TYPE_CODE, TYPE_NAMES

K = TypeVar("K")
V = TypeVar("V")

FACT_CHUNK = 256
"""Per-entry facts are read and cached this many entries at a time (one level-0 tile)."""
READ_AHEAD_CHUNK = 16_384
"""Entries whose type and log time one read of :meth:`StoredProtocolState.read_ahead` takes."""

DerivedRow = tuple[str, bytes, bytes]
"""One record version to write: ``(kind, key, value)``, all as the store keeps them."""

TABLE_KINDS: tuple[str, ...] = (
    "meta",
    "keyset",
    "body_key",
    "offer",
    "subject",
    "key_owner",
    "application",
    "decision",
    "consent",
    "finding",
    "revocation",
    "enforcement",
    "grievance",
    "pause",
    "detail",
    "timeline",
    "ed25519_run",
    *AGGREGATE_KINDS,
)
"""Every kind of record the derived state stores, in the order it is checked and written: the
protocol state's tables, then the precedent's aggregates (:mod:`ledger.protocol.aggregates`)."""


class DerivedSource(Protocol):
    """Read access to the stored derived state and to the log's per-entry facts.

    Contract: every read at flush point ``at`` sees the rows as they were at size ``at`` (the
    latest version written at a size ``<= at``); rows and entries at or below a flush point the
    caller got from :meth:`flush_point` never change.
    """

    def flush_point(self, size: int) -> int | None:
        """The largest flush point ``<= size``, or ``None`` if no derived state is stored at or
        below ``size`` (a log written before derived state existed: backfill it)."""

    def read(self, kind: str, key: bytes, at: int) -> bytes | None:
        """The value of record ``key`` of ``kind`` at flush point ``at``, or ``None``."""

    def scan(
        self, kind: str, at: int, after: bytes = b"", before: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """Every ``(key, value)`` of ``kind`` at flush point ``at`` whose key is greater than
        ``after`` (and less than ``before``, if given), in key (byte) order."""

    def entry_facts(self, start: int, end: int) -> list[tuple[str, int, bytes]]:
        """``(statement type, log time, leaf hash)`` of entries ``[start, end)``, in order
        (fewer if the log is shorter)."""

    def entry_types_and_times(self, start: int, end: int) -> list[tuple[str, int]]:
        """``(statement type, log time)`` of entries ``[start, end)``, in order (fewer if the
        log is shorter): the facts without the leaf hash, so without reading the entries'
        bytes (the store keeps both as columns beside each entry, written with it)."""

    def entry_types_and_times_at(self, indexes: Sequence[int]) -> list[tuple[int, str, int]]:
        """``(index, statement type, log time)`` of each entry of ``indexes`` the log holds,
        in any order: :meth:`entry_types_and_times` for entries scattered over the log (a
        subject's timeline), a few reads for all of them rather than one per entry."""


class FactCache:
    """The log's per-entry facts (type, log time, leaf hash), a fixed number of chunks of
    :data:`FACT_CHUNK` entries, least recently used first out. Entries never change once
    committed, so one cache may serve every state of a process (thread-safe)."""

    def __init__(self, chunks: int = 256) -> None:
        self._chunks: OrderedDict[int, list[tuple[int, int, bytes]]] = OrderedDict()
        self._capacity = chunks
        self._lock = threading.Lock()

    def fact(self, source: DerivedSource, index: int) -> tuple[int, int, bytes]:
        """``(type code, log time, leaf hash)`` of committed entry ``index``."""
        number = index // FACT_CHUNK
        with self._lock:
            chunk = self._chunks.get(number)
            if chunk is not None:
                self._chunks.move_to_end(number)
        if chunk is None or len(chunk) <= index % FACT_CHUNK:
            start = number * FACT_CHUNK
            rows = source.entry_facts(start, start + FACT_CHUNK)
            try:
                chunk = [(TYPE_CODE[t], time_ms, leaf) for t, time_ms, leaf in rows]
            except KeyError as exc:
                raise MalformedError(f"couldn't read entry facts: unknown type {exc}") from None
            if len(chunk) <= index % FACT_CHUNK:
                raise MalformedError(f"couldn't read the facts of entry {index}: not in the log")
            with self._lock:
                self._chunks[number] = chunk
                while len(self._chunks) > self._capacity:
                    self._chunks.popitem(last=False)
        return chunk[index % FACT_CHUNK]


def int_key(value: int) -> bytes:
    """An entry index (or subject id) as a record key: 8 bytes big-endian, so that byte order
    is numeric order."""
    return value.to_bytes(8, "big")


def _from_int_key(key: bytes) -> int:
    return int.from_bytes(key, "big")


def _bytes_key(value: bytes) -> bytes:
    return bytes(value)


def _public_key(key: bytes) -> PublicKey:
    return PublicKey(key)


def str_key(value: str) -> bytes:
    """A ``meta`` record's name as its key."""
    return value.encode("utf-8")


def _fromstr_key(key: bytes) -> str:
    return key.decode("utf-8")


_MISSING: Any = object()
_DELETED: Any = object()
"""The overlay's value of a record deleted from a deletable table (the aggregates' indexes)."""


class StoredTable(MutableMapping[K, V], Generic[K, V]):
    """One table of a :class:`StoredProtocolState`: a mapping read from the store at the
    state's flush point, with the records it loaded and the changes of the overlay in memory.

    Iteration is in key order (entry order, for tables keyed by index: the order the in-memory
    state's dicts have). Deleting is refused: the protocol's tables only grow."""

    def __init__(
        self,
        state: StoredProtocolState,
        kind: str,
        encode_key: Callable[[K], bytes],
        decode_key: Callable[[bytes], K],
        *,
        by_reference: bool = False,
        store_form: Callable[[V], V] | None = None,
        adopt: Callable[[K, V], None] | None = None,
        index: bool = False,
    ) -> None:
        """``store_form`` gives the form of a value that is written (the subject table writes
        a subject without its timeline, kept in its own table); ``adopt`` is called with each
        value loaded or set (to attach that timeline). ``index``: the table is one of the
        precedent's aggregates (:mod:`ledger.protocol.aggregates`), whose rows may be deleted
        (a flush writes the deletion as an empty value: the store ends the record's current
        version) and are not counted in the ``meta`` counts."""
        self._state = state
        self.kind = kind
        self._store_form = store_form
        self._adopt = adopt
        self._encode_key = encode_key
        self._decode_key = decode_key
        self._by_reference = by_reference
        self._index = index
        self._live: dict[K, V] = {}
        self._stored: dict[K, bytes | None] = {}
        """What the store holds for each key in ``_live`` or known absent (``None``)."""

    # -- loading ---------------------------------------------------------------------------

    def _load(self, key: K) -> V:
        value = self._live.get(key, _MISSING)
        if value is _DELETED:
            return _MISSING  # type: ignore[no-any-return]
        if value is not _MISSING:
            return value  # type: ignore[no-any-return]
        if key in self._stored:  # known absent
            return _MISSING  # type: ignore[no-any-return]
        state = self._state
        data = state.source.read(self.kind, self._encode_key(key), state.pinned)
        self._stored[key] = data
        if data is None:
            return _MISSING  # type: ignore[no-any-return]
        loaded: V = decode_value(data, state.resolve)
        if self._adopt is not None:
            self._adopt(key, loaded)
        self._live[key] = loaded
        return loaded

    def __getitem__(self, key: K) -> V:
        value = self._load(key)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return self._load(key) is not _MISSING  # type: ignore[arg-type]

    def __setitem__(self, key: K, value: V) -> None:
        self._state.require_writable()
        if self._load(key) is _MISSING and self.kind != "meta" and not self._index:
            self._state.counts[self.kind] = self.count() + 1
        if self._adopt is not None:
            self._adopt(key, value)
        self._live[key] = value

    def __delitem__(self, key: K) -> None:
        if not self._index:
            raise TypeError("couldn't delete from a stored table: the protocol state only grows")
        self._state.require_writable()
        if self._load(key) is _MISSING:
            raise KeyError(key)
        self._live[key] = _DELETED

    def count(self) -> int:
        """How many records the table holds (kept in the ``meta`` table, not counted)."""
        return self._state.counts.get(self.kind, 0)

    def __len__(self) -> int:
        return self.count()

    # -- scanning --------------------------------------------------------------------------

    def _merged(
        self, after: bytes = b"", before: bytes | None = None
    ) -> Iterator[tuple[bytes, K | None, bytes | None]]:
        """Every key greater than ``after`` (and less than ``before``, if given) in order:
        ``(encoded key, live key or None, stored value or None)``."""
        state = self._state
        live = self._live
        if not live:  # nothing changed in memory: the stored rows as they are
            for code, data in state.source.scan(self.kind, state.pinned, after, before):
                yield code, None, data
            return
        new = sorted(
            (code, k)
            for k, v in self._stored.items()
            if v is None
            and live.get(k, _DELETED) is not _DELETED
            and (code := self._encode_key(k)) > after
            and (before is None or code < before)
        )
        live_by_code = {self._encode_key(k): k for k in live}
        position = 0
        for code, data in state.source.scan(self.kind, state.pinned, after, before):
            while position < len(new) and new[position][0] < code:
                yield new[position][0], new[position][1], None
                position += 1
            key = live_by_code.get(code)
            if key is not None and live[key] is _DELETED:
                continue
            yield code, key, data
        for code, key in new[position:]:
            yield code, key, None

    def __iter__(self) -> Iterator[K]:
        for code, live, _ in self._merged():
            yield live if live is not None else self._decode_key(code)

    def items(self) -> Iterator[tuple[K, V]]:  # type: ignore[override]
        resolve = self._state.resolve
        for code, live, data in self._merged():
            if live is not None:
                yield live, self._live[live]
            else:
                assert data is not None
                key = self._decode_key(code)
                value = decode_value(data, resolve)
                if self._adopt is not None:
                    self._adopt(key, value)
                yield key, value

    def values(self) -> Iterator[V]:  # type: ignore[override]
        for _, value in self.items():
            yield value

    def keys(self) -> Iterator[K]:  # type: ignore[override]
        return iter(self)

    def codes(self) -> Iterator[bytes]:
        """Every key's encoding, in order, without decoding a key."""
        return (code for code, _, _ in self._merged())

    def keys_between(self, after: bytes, before: bytes) -> Iterator[K]:
        """Every key whose encoding lies strictly between ``after`` and ``before``, in order
        (one range read)."""
        for code, live, _ in self._merged(after, before):
            yield live if live is not None else self._decode_key(code)

    def items_between(self, after: bytes, before: bytes | None) -> Iterator[tuple[bytes, V]]:
        """Every ``(encoded key, value)`` whose key lies strictly between ``after`` and
        ``before`` (None: no upper bound), in order, values decoded one at a time and not
        kept (one range read)."""
        resolve = self._state.resolve
        for code, live, data in self._merged(after, before):
            if live is not None:
                yield code, self._live[live]
            else:
                assert data is not None
                yield code, decode_value(data, resolve)

    def keys_after(self, after: K | None, limit: int) -> tuple[list[K], bool]:
        """The first ``limit`` keys greater than ``after`` (from the first when ``None``), in
        order, and whether more follow: one range read, not a scan of the table."""
        start = b"" if after is None else self._encode_key(after)
        chosen: list[K] = []
        for code, live, _ in self._merged(start):
            if len(chosen) == limit:
                return chosen, True
            chosen.append(live if live is not None else self._decode_key(code))
        return chosen, False

    # -- writing ---------------------------------------------------------------------------

    def changed_rows(self) -> list[DerivedRow]:
        """The records of the overlay that differ from the store, as rows to write."""
        rows: list[DerivedRow] = []
        for key, value in self._live.items():
            if value is _DELETED:
                if self._stored.get(key) is not None:
                    rows.append((self.kind, self._encode_key(key), b""))
                continue
            data = self._encoded(value)
            if data != self._stored.get(key):
                rows.append((self.kind, self._encode_key(key), data))
        return rows

    def changed_keys(self) -> list[K]:
        """The keys of the overlay's records that differ from the store (new or changed)."""
        stored = self._stored
        return [
            key
            for key, value in self._live.items()
            if value is not _DELETED and self._encoded(value) != stored.get(key)
        ]

    def _encoded(self, value: V) -> bytes:
        form = value if self._store_form is None else self._store_form(value)
        return encode_value(form, by_reference=self._by_reference)

    def mark_written(self) -> None:
        """The rows of :meth:`changed_rows` were committed: they are the store's now."""
        deleted = [key for key, value in self._live.items() if value is _DELETED]
        for key in deleted:
            del self._live[key]
            self._stored[key] = None
        for key, value in self._live.items():
            self._stored[key] = self._encoded(value)

    def drop(self) -> None:
        """Forget every loaded record and the overlay."""
        self._live.clear()
        self._stored.clear()

    @property
    def loaded(self) -> int:
        """How many records are held in memory."""
        return len(self._live)


class TableView(Mapping[K, V], Generic[K, V]):
    """A read-only view of a :class:`StoredTable` (what the state's queries return, as the
    in-memory state returns a ``MappingProxyType``), with its range read
    (:meth:`StoredTable.keys_after`) for pages."""

    def __init__(self, table: StoredTable[K, V]) -> None:
        self._table = table

    def __getitem__(self, key: K) -> V:
        return self._table[key]

    def __contains__(self, key: object) -> bool:
        return key in self._table

    def __iter__(self) -> Iterator[K]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)

    def items(self) -> Iterator[tuple[K, V]]:  # type: ignore[override]
        return self._table.items()

    def values(self) -> Iterator[V]:  # type: ignore[override]
        return self._table.values()

    def keys_after(self, after: K | None, limit: int) -> tuple[list[K], bool]:
        """See :meth:`StoredTable.keys_after`."""
        return self._table.keys_after(after, limit)


def subject_without_timeline(subject: SubjectRecord) -> SubjectRecord:
    """The form of a subject the subject table writes: its timeline lives in the ``timeline``
    table, one row per entry, so that a subject with a long history costs one small row per
    new entry instead of a rewrite of its whole history."""
    return dataclasses.replace(subject, timeline=[])


def timeline_key(subject_id: int, index: int) -> bytes:
    """The key of one timeline row: the subject id, then the entry index (both 8 bytes)."""
    return int_key(subject_id) + int_key(index)


class StoredTimeline(MutableSequence[int]):
    """A subject's timeline (the entry indexes that concern it, in log order), kept in the
    ``timeline`` table: appending adds a row, reading scans the subject's rows in order."""

    def __init__(self, state: StoredProtocolState, subject_id: int) -> None:
        self._state = state
        self._subject_id = subject_id

    def append(self, index: int) -> None:
        self._state.timeline_table[timeline_key(self._subject_id, index)] = True

    def __iter__(self) -> Iterator[int]:
        # A subject's rows are the 16-byte keys that begin with its 8-byte id.
        table = self._state.timeline_table
        for key in table.keys_between(int_key(self._subject_id), int_key(self._subject_id + 1)):
            yield int.from_bytes(key[8:], "big")

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __getitem__(self, position: Any) -> Any:
        return list(self)[position]

    def __setitem__(self, position: Any, value: Any) -> None:
        raise TypeError("couldn't replace a timeline entry: the state only grows")

    def __delitem__(self, position: Any) -> None:
        raise TypeError("couldn't delete a timeline entry: the state only grows")

    def insert(self, position: int, value: int) -> None:
        self.append(value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (list, StoredTimeline)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"StoredTimeline(subject {self._subject_id})"


class StoredSignatureStrength(SignatureStrength):
    """A stored state's tally of which entries only Ed25519 protects: the counts and the last
    run in the ``meta`` record ``signature_strength`` (``{"ed25519_only": {type: n}, "hybrid":
    {type: n}, "last_run": [start, end] | null}``), every run of Ed25519-only entries a row of
    the ``ed25519_run`` table (start → end, exclusive). A batch writes the meta record and the
    one run row it extended or began, never the list of runs: on a log whose entries alternate
    between Ed25519-only and hybrid, the runs are as many as the entries.

    ``record`` is the meta table's own object, changed in place (the table writes it when it
    differs from the store). Reading :attr:`ed25519_only_runs` scans the run rows (for the
    report); :meth:`note` reads none.
    """

    __slots__ = ("_record", "_runs")

    def __init__(self, runs: StoredTable[int, int], record: dict[str, Any]) -> None:
        self._runs = runs
        self._record = record
        self.ed25519_only = record["ed25519_only"]
        self.hybrid = record["hybrid"]

    @property
    def ed25519_only_runs(self) -> list[int]:  # type: ignore[override]
        """The runs, flattened ``[start, end, start, end, …]``, as the in-memory tally has them."""
        flat: list[int] = []
        for start, end in self._runs.items():
            flat += (start, end)
        last = self._record["last_run"]
        if last is not None and (not flat or flat[-2] != last[0]):
            flat += last  # a read-only state over a flush point from before the tally
        return flat

    def note(self, index: int, statement_type: str, hybrid: bool) -> None:
        counts = self.hybrid if hybrid else self.ed25519_only
        counts[statement_type] = counts.get(statement_type, 0) + 1
        if hybrid:
            return
        last = self._record["last_run"]
        if last is not None and last[1] == index:
            last[1] = index + 1
        else:
            last = self._record["last_run"] = [index, index + 1]
        self._runs[last[0]] = last[1]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SignatureStrength):
            return (self.ed25519_only, self.hybrid, self.ed25519_only_runs) == (
                other.ed25519_only,
                other.hybrid,
                other.ed25519_only_runs,
            )
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


class StoredSequence(MutableSequence[V], Generic[V]):
    """A list-like table (keysets, pause periods) whose items are records keyed by their own
    entry ``index`` and appended in index order."""

    def __init__(self, table: StoredTable[int, V], index_of: Callable[[V], int]) -> None:
        self._table = table
        self._index_of = index_of

    def append(self, value: V) -> None:
        self._table[self._index_of(value)] = value

    def __iter__(self) -> Iterator[V]:
        return self._table.values()

    def __len__(self) -> int:
        return len(self._table)

    def __getitem__(self, position: Any) -> Any:
        items = list(self._table.values())
        return items[position]

    def __setitem__(self, position: Any, value: Any) -> None:
        raise TypeError("couldn't replace an item of a stored sequence: the state only grows")

    def __delitem__(self, position: Any) -> None:
        raise TypeError("couldn't delete from a stored sequence: the state only grows")

    def insert(self, position: int, value: V) -> None:
        if position < len(self):
            raise TypeError("couldn't insert into a stored sequence: it is appended to only")
        self.append(value)


class StoredSet(MutableSet[K], Generic[K]):
    """A set-like table (the body's keys): members map to ``True``."""

    def __init__(self, table: StoredTable[K, bool]) -> None:
        self._table = table

    def __contains__(self, value: object) -> bool:
        return value in self._table

    def __iter__(self) -> Iterator[K]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)

    def add(self, value: K) -> None:
        if value not in self._table:
            self._table[value] = True

    def discard(self, value: K) -> None:
        raise TypeError("couldn't remove from a stored set: the state only grows")


class _StatementIds(MutableSet[bytes]):
    """The statements of the overlay's entries.

    A statement logged below the flush point is refused before it reaches this state: the
    sequencer looks up every submission of a batch in the store's statement-id index first,
    under the write lock (``find_statements``, exact: :mod:`ledger.storage.sql`), and answers a
    duplicate with the entry that holds it. So the state checks only the overlay — a second
    copy within the batch being built — and never asks the store about each entry."""

    def __init__(self, state: StoredProtocolState) -> None:
        self._state = state
        self.overlay: set[bytes] = set()

    def __contains__(self, value: object) -> bool:
        return value in self.overlay

    def __iter__(self) -> Iterator[bytes]:
        raise TypeError("couldn't list the logged statements: ask about one")

    def __len__(self) -> int:
        return self._state.size

    def add(self, value: bytes) -> None:
        self.overlay.add(value)

    def discard(self, value: bytes) -> None:
        raise TypeError("couldn't forget a logged statement")


META_KEYSET = "keyset"
META_OFFER_IN_FORCE = "offer_in_force"
META_LATEST_VERSION = "latest_version"
META_TYPE_COUNTS = "type_counts"
META_COUNTS = "counts"
META_LOG_KEY = "log_key"
META_SIGNATURE_STRENGTH = "signature_strength"


class StoredProtocolState(ProtocolState):
    """A protocol state pinned at a flush point of a :class:`DerivedSource` (see the module).

    ``writable``: whether entries may be applied (a read-only state refuses, so a request can
    never change what the next one reads). ``cache_records`` bounds the records kept between
    batches (:meth:`trim`).
    """

    def __init__(
        self,
        source: DerivedSource,
        pinned: int,
        *,
        facts: FactCache | None = None,
        writable: bool = True,
        cache_records: int = 50_000,
    ) -> None:
        self.source = source
        self.pinned = pinned
        self.writable = writable
        self.cache_records = cache_records
        self.facts = facts if facts is not None else FactCache()
        self._overlay_facts: list[tuple[int, int, bytes]] = []
        self._overlay_statements: list[LoggedStatement] = []
        self._read_ahead: tuple[bytearray, array[int], dict[int, str]] | None = None
        super().__init__()

    # -- the tables --------------------------------------------------------------------------

    def _init_tables(self) -> None:
        def table(kind: str, *, by_reference: bool = False) -> StoredTable[int, Any]:
            return StoredTable(self, kind, int_key, _from_int_key, by_reference=by_reference)

        self._meta: StoredTable[str, Any] = StoredTable(self, "meta", str_key, _fromstr_key)
        self._keyset_table: StoredTable[int, KeysetRecord] = table("keyset")
        self._body_key_table: StoredTable[PublicKey, bool] = StoredTable(
            self, "body_key", _bytes_key, _public_key
        )
        self._pause_table: StoredTable[int, PausePeriod] = table("pause")
        self._key_owner_table: StoredTable[PublicKey, int] = StoredTable(
            self, "key_owner", _bytes_key, _public_key
        )
        self._offer_table: StoredTable[int, OfferVersion] = table("offer")
        self._subject_table: StoredTable[int, SubjectRecord] = StoredTable(
            self,
            "subject",
            int_key,
            _from_int_key,
            store_form=subject_without_timeline,
            adopt=self._adopt_subject,
        )
        self.timeline_table: StoredTable[bytes, bool] = StoredTable(
            self, "timeline", _bytes_key, _bytes_key
        )
        self._application_table: StoredTable[int, ApplicationRecord] = table("application")
        self.run_table: StoredTable[int, int] = StoredTable(
            self, "ed25519_run", int_key, _from_int_key, index=True
        )
        self._tables: tuple[StoredTable[Any, Any], ...] = (
            self._meta,
            self._keyset_table,
            self._body_key_table,
            self._offer_table,
            self._subject_table,
            self._key_owner_table,
            self._application_table,
            table("decision", by_reference=True),
            table("consent"),
            table("finding"),
            table("revocation"),
            table("enforcement"),
            table("grievance"),
            self._pause_table,
            table("detail"),
            self.timeline_table,
            self.run_table,
        )
        self.aggregate_tables: dict[str, StoredTable[bytes, Any]] = {
            kind: StoredTable(self, kind, _bytes_key, _bytes_key, index=True)
            for kind in AGGREGATE_KINDS
        }
        self._tables += tuple(self.aggregate_tables.values())
        assert tuple(t.kind for t in self._tables) == TABLE_KINDS
        by_kind: dict[str, StoredTable[Any, Any]] = {t.kind: t for t in self._tables}
        self._statement_ids = self._stored_ids = _StatementIds(self)
        self._keysets = StoredSequence(self._keyset_table, lambda k: k.index)
        self._body_keys = StoredSet(self._body_key_table)
        self._offers = self._offer_table
        self._subjects = self._subject_table
        self._key_owner = self._key_owner_table
        self._applications = self._application_table
        self._decisions = by_kind["decision"]
        self._consents: MutableMapping[int, ConsentRecord] = by_kind["consent"]
        self._findings: MutableMapping[int, FindingRecord] = by_kind["finding"]
        self._revocations: MutableMapping[int, RevocationRecord] = by_kind["revocation"]
        self._enforcement: MutableMapping[int, EnforcementRecord] = by_kind["enforcement"]
        self._grievances: MutableMapping[int, GrievanceRecord] = by_kind["grievance"]
        self._pause_periods = StoredSequence(self._pause_table, lambda p: p.index)
        self._details: MutableMapping[int, str] = by_kind["detail"]

    # -- the queries' views (read-only, with range reads for pages) -----------------------------

    @property
    def subjects(self) -> Mapping[int, SubjectRecord]:
        return TableView(self._subject_table)

    @property
    def applications(self) -> Mapping[int, ApplicationRecord]:
        return TableView(self._application_table)

    @property
    def consents(self) -> Mapping[int, ConsentRecord]:
        return TableView(self._tables[TABLE_KINDS.index("consent")])

    @property
    def findings(self) -> Mapping[int, FindingRecord]:
        return TableView(self._tables[TABLE_KINDS.index("finding")])

    @property
    def revocations(self) -> Mapping[int, RevocationRecord]:
        return TableView(self._tables[TABLE_KINDS.index("revocation")])

    @property
    def enforcement_actions(self) -> Mapping[int, EnforcementRecord]:
        return TableView(self._tables[TABLE_KINDS.index("enforcement")])

    @property
    def grievances(self) -> Mapping[int, GrievanceRecord]:
        return TableView(self._tables[TABLE_KINDS.index("grievance")])

    def source_table(self, kind: str) -> StoredTable[int, Any]:
        """The table of records of ``kind`` (one the precedent's rules rule on, or
        ``subject``): :mod:`ledger.protocol.aggregates` reads and rules on them."""
        return self._tables[TABLE_KINDS.index(kind)]

    def stored_tallies(self) -> dict[str, int] | None:
        """The precedent's tallies (:mod:`ledger.protocol.aggregates`), or ``None`` where this
        state's flush point holds no aggregates (and its overlay built none)."""
        value: dict[str, int] | None = self._meta_value(META_TALLIES, None)
        return value

    def set_tallies(self, tallies: dict[str, int]) -> None:
        """Start the precedent's tallies (see :func:`~ledger.protocol.aggregates.settle`)."""
        self._meta[META_TALLIES] = tallies

    def _adopt_subject(self, subject_id: int, subject: SubjectRecord) -> None:
        """Give a subject loaded or set its stored timeline (a new subject's first entries,
        set in memory by its rule, move to the timeline table)."""
        timeline = subject.timeline
        if isinstance(timeline, StoredTimeline):
            return
        stored = StoredTimeline(self, subject_id)
        for index in timeline:
            stored.append(index)
        subject.timeline = stored  # type: ignore[assignment]

    def resolve(self, tag: str, index: int) -> Any:
        """Resolve a codec reference (:mod:`ledger.protocol.codec`) to the shared record."""
        table = self._pause_table if tag == "p" else self._application_table
        return table[index]

    # The state's scalars live in the ``meta`` table (properties take precedence over the
    # instance attributes the in-memory state would set).

    def _meta_value(self, name: str, default: Any) -> Any:
        value = self._meta.get(name, _MISSING)
        return default if value is _MISSING else value

    @property
    def _keyset(self) -> KeysetRecord | None:
        index = self._meta_value(META_KEYSET, None)
        return None if index is None else self._keyset_table[index]

    @_keyset.setter
    def _keyset(self, record: KeysetRecord | None) -> None:
        self._meta[META_KEYSET] = None if record is None else record.index

    @property
    def _log_key(self) -> LogKeyRecord | None:
        value: LogKeyRecord | None = self._meta_value(META_LOG_KEY, None)
        return value

    @_log_key.setter
    def _log_key(self, record: LogKeyRecord | None) -> None:
        self._meta[META_LOG_KEY] = record

    @property
    def _signature_strength(self) -> SignatureStrength:
        """The tally of which entries only Ed25519 protects (:class:`StoredSignatureStrength`):
        its counts and last run in the ``meta`` record, each run a row of ``ed25519_run``.

        A flush point without the record was written by a release that had no hybrid
        statements: no statement could carry an ML-DSA-44 statement signature then (signers
        were Ed25519 keys only), so every entry before it is Ed25519-only and the tally is
        exactly the type counts, in one run ``[0, size)``. That is derived here, without a
        replay, and stored with the next batch when this state writes.
        """
        record: dict[str, Any] | None = self._meta_value(META_SIGNATURE_STRENGTH, None)
        if record is None:
            record = {
                "ed25519_only": self._type_counts_at_pin(),
                "hybrid": {},
                "last_run": [0, self.pinned] if self.pinned else None,
            }
            if self.writable:
                self._meta[META_SIGNATURE_STRENGTH] = record
                if self.pinned:
                    self.run_table[0] = self.pinned
        return StoredSignatureStrength(self.run_table, record)

    @_signature_strength.setter
    def _signature_strength(self, tally: SignatureStrength | None) -> None:
        raise TypeError("couldn't replace the stored signature-strength tally: it only grows")

    def _type_counts_at_pin(self) -> dict[str, int]:
        """The entries by statement type at the flush point (the overlay's not counted)."""
        counts = dict(self._type_counts)
        for statement in self._overlay_statements:
            counts[statement.type] -= 1
            if not counts[statement.type]:
                del counts[statement.type]
        return counts

    @property
    def _offer_in_force(self) -> int | None:
        value: int | None = self._meta_value(META_OFFER_IN_FORCE, None)
        return value

    @_offer_in_force.setter
    def _offer_in_force(self, index: int | None) -> None:
        self._meta[META_OFFER_IN_FORCE] = index

    @property
    def _latest_version(self) -> int:
        value: int = self._meta_value(META_LATEST_VERSION, 0)
        return value

    @_latest_version.setter
    def _latest_version(self, version: int) -> None:
        self._meta[META_LATEST_VERSION] = version

    @property
    def _type_counts(self) -> dict[str, int]:
        counts: dict[str, int] | None = self._meta.get(META_TYPE_COUNTS)
        if counts is None:
            counts = {}
            if self.writable:
                self._meta[META_TYPE_COUNTS] = counts
        return counts

    @_type_counts.setter
    def _type_counts(self, counts: dict[str, int]) -> None:
        self._meta[META_TYPE_COUNTS] = counts

    @property
    def counts(self) -> dict[str, int]:
        """How many records each table holds (a ``meta`` record, updated as records are
        added)."""
        counts: dict[str, int] | None = self._meta.get(META_COUNTS)
        if counts is None:
            counts = {}
            if self.writable:
                self._meta[META_COUNTS] = counts
        return counts

    def require_writable(self) -> None:
        """Raise unless entries may be applied to this state."""
        if not self.writable:
            raise TypeError("couldn't change a read-only stored protocol state")

    # -- per-entry facts ---------------------------------------------------------------------

    @property
    def size(self) -> int:
        return self.pinned + len(self._overlay_facts)

    def _fact(self, index: int) -> tuple[int, int, bytes]:
        if index >= self.pinned:
            return self._overlay_facts[index - self.pinned]
        if index < 0:
            raise IndexError(index)
        return self.facts.fact(self.source, index)

    def _type_code_at(self, index: int) -> int:
        ahead = self._read_ahead
        if ahead is not None and 0 <= index < self.pinned:
            return ahead[0][index]
        return self._fact(index)[0]

    def _leaf_at(self, index: int) -> bytes:
        return self._fact(index)[2]

    def _log_time_at(self, index: int) -> int:
        ahead = self._read_ahead
        if ahead is not None and 0 <= index < self.pinned:
            return ahead[1][index]
        return self._fact(index)[1]

    def detail_at(self, index: int) -> str | None:
        ahead = self._read_ahead
        if ahead is not None and 0 <= index < self.pinned:
            return ahead[2].get(index)
        return super().detail_at(index)

    def timeline_facts(self, indexes: Iterable[int]) -> list[tuple[int, str | None, int, str]]:
        """As :meth:`~ledger.protocol.queries.StateQueries.timeline_facts`; after
        :meth:`read_ahead`, straight from its arrays (a call per entry, not three)."""
        ahead = self._read_ahead
        if ahead is None:
            # A comprehension, not list(): list() asks a stored timeline its length first,
            # which is a second range read of it.
            return self._timeline_facts_read([i for i in indexes])
        types, times, details = ahead
        pinned = self.pinned
        return [
            (i, details.get(i), times[i], TYPE_NAMES[types[i]])
            if 0 <= i < pinned
            else (i, self.detail_at(i), self.log_time_ms_at(i), self.type_at(i))
            for i in indexes
        ]

    def _timeline_facts_read(self, indexes: list[int]) -> list[tuple[int, str | None, int, str]]:
        """:meth:`timeline_facts` without the read-ahead: the types and log times of the
        entries below the flush point in a few reads of their columns (not through the fact
        cache, which reads and hashes the whole 256-entry chunk of each entry: a timeline
        crosses the log, an entry in each chunk, and a page of subjects with long timelines
        took seconds); the same columns :meth:`read_ahead` reads for the full report. Entries
        replayed on top of the flush point come from memory."""
        pinned = self.pinned
        wanted = sorted({i for i in indexes if 0 <= i < pinned})
        found = {
            index: (TYPE_CODE.get(statement_type), time_ms)
            for index, statement_type, time_ms in (
                self.source.entry_types_and_times_at(wanted) if wanted else ()
            )
        }
        facts: list[tuple[int, str | None, int, str]] = []
        for i in indexes:
            if not 0 <= i < pinned:
                facts.append((i, self.detail_at(i), self.log_time_ms_at(i), self.type_at(i)))
                continue
            code, time_ms = found.get(i, (None, 0))
            if code is None:
                raise MalformedError(
                    f"couldn't read the type and log time of entry {i}: "
                    + ("no such entry" if i not in found else "an unknown statement type")
                )
            name = TYPE_NAMES[code]
            detail = self.detail_at(i) if name in TYPES_WITH_DETAIL else None
            facts.append((i, detail, time_ms, name))
        return facts

    def read_ahead(self) -> None:
        """Read, once, every entry's type and log time up to the flush point (in order,
        :data:`READ_AHEAD_CHUNK` entries a read, the stored columns only: what a report shows
        of an entry is its type and log time, which the leaf hash the fact cache checks does
        not cover, so the entries' bytes are neither read nor hashed here; the integrity
        sweep checks them) and every entry's detail, for a computation that visits them all in
        no useful order — the full precedent report, whose subjects' timelines cross the whole
        log and would otherwise read each entry's facts and detail one by one, through a cache
        they thrash. Holds 9 bytes per entry and the details (one string per decision,
        enforcement act, finding, consent and grievance) for as long as this state lives.
        Idempotent."""
        if self._read_ahead is not None:
            return
        types = bytearray()
        times = array("q")
        for start in range(0, self.pinned, READ_AHEAD_CHUNK):
            rows = self.source.entry_types_and_times(
                start, min(self.pinned, start + READ_AHEAD_CHUNK)
            )
            try:
                types.extend(TYPE_CODE[statement_type] for statement_type, _ in rows)
            except KeyError as exc:
                raise MalformedError(f"couldn't read entry types: unknown type {exc}") from None
            times.extend(time_ms for _, time_ms in rows)
        if len(types) != self.pinned:
            raise MalformedError(
                f"couldn't read the facts of entries [0, {self.pinned}): {len(types)} found"
            )
        details = {
            _from_int_key(key): decode_value(data, self.resolve)
            for key, data in self.source.scan("detail", self.pinned)
        }
        self._read_ahead = (types, times, details)

    def timelines_of(
        self, subjects: Iterable[SubjectRecord]
    ) -> Iterator[tuple[SubjectRecord, list[int]]]:
        """Each of ``subjects`` — in ascending subject id, as :attr:`subjects` iterates — with
        its timeline, from one scan of the timeline table in key order (subject id, then entry
        index) rather than a range read per subject: for a computation that visits every
        subject's timeline in order (the full precedent report). Holds one subject's timeline
        at a time. Raises :class:`ValueError` if the ids do not ascend."""
        rows = self.timeline_table.codes()  # a timeline key is its own encoding
        row = next(rows, None)
        last = -1
        for subject in subjects:
            sid = subject.subject_id
            if sid <= last:
                raise ValueError(f"couldn't read timelines in order: subject {sid} after {last}")
            last = sid
            while row is not None and int.from_bytes(row[:8], "big") < sid:
                row = next(rows, None)  # a subject not asked for
            timeline: list[int] = []
            while row is not None and int.from_bytes(row[:8], "big") == sid:
                timeline.append(int.from_bytes(row[8:], "big"))
                row = next(rows, None)
            yield subject, timeline

    def _last_log_time(self) -> int | None:
        return self._fact(self.size - 1)[1] if self.size else None

    def _statement_logged(self, statement_id: bytes) -> bool:
        return statement_id in self._stored_ids

    def _record_entry(self, s: LoggedStatement) -> None:
        self.require_writable()
        self._overlay_facts.append((TYPE_CODE[s.type], s.log_time_ms, bytes(s.leaf_hash)))
        self._overlay_statements.append(s)
        self._stored_ids.add(s.statement_id)
        counts = self._type_counts
        counts[s.type] = counts.get(s.type, 0) + 1
        # As the in-memory state does, after the entry is counted (so the type counts less the
        # overlay's statements are the counts at the flush point; see _signature_strength).
        note_entry(self, s)

    # -- flushing ----------------------------------------------------------------------------

    def derived_rows(self) -> list[DerivedRow]:
        """The changes of the overlay (every entry applied since the flush point), as rows to
        write at size :attr:`size` in the transaction that commits those entries, the
        precedent's aggregates brought up to date first (:func:`~ledger.protocol.aggregates.
        settle`)."""
        settle(self)
        # Report text (ledger.protocol.report_text): the overlay's timeline events and changed
        # applications, in the same transaction as the records they render.
        rows: list[DerivedRow] = flush_rows(
            self.source,
            self.pinned,
            self.size,
            self._overlay_events,
            self._overlay_applications,
            self._overlay_subjects,
        )
        for table in self._tables:
            rows.extend(table.changed_rows())
        return rows

    def _overlay_events(self) -> list[Event]:
        """The timeline events of the entries applied since the flush point (each new
        timeline row, rendered: :func:`~ledger.protocol.report_text.events_of`)."""
        pairs = [
            (int.from_bytes(key[:8], "big"), int.from_bytes(key[8:], "big"))
            for key in self.timeline_table.changed_keys()
        ]
        return events_of(self, pairs) if pairs else []

    def _overlay_applications(self) -> list[ItemText]:
        """The report text of each application the entries applied since the flush point
        created or changed."""
        table = self._application_table
        return [(index, application_text(self, table[index])) for index in table.changed_keys()]

    def _overlay_subjects(self) -> list[ItemText]:
        """The head text of each subject the entries applied since the flush point created
        or changed (:func:`~ledger.protocol.audit.subject_head_text`)."""
        table = self._subject_table
        return [(sid, subject_head_text(self, table[sid])) for sid in table.changed_keys()]

    def subject_texts(self) -> Iterator[ItemText] | None:
        """Every subject's id and head text in id order, from what the flush point keeps
        (:mod:`ledger.protocol.report_text`) and the entries replayed on top of it; None where
        the flush point keeps none."""
        return stored_subject_texts(self.source, self.pinned, self._overlay_subjects)

    def application_texts(self) -> Iterator[str] | None:
        """Every application's report item text in entry order, from what the flush point
        keeps (:mod:`ledger.protocol.report_text`) and the entries replayed on top of it; None
        where the flush point keeps none (the report writes them from the records)."""
        return stored_application_texts(self.source, self.pinned, self._overlay_applications)

    def keeps_report_text(self) -> bool:
        """Whether the flush point keeps report text (:mod:`ledger.protocol.report_text`)."""
        return read_ranges(self.source, self.pinned) is not None

    def judgement_texts(self, commitment: str) -> Iterator[JudgementSegment] | None:
        """``commitment``'s judgements as segments from the final judgements' text kept with
        the aggregates (:func:`~ledger.protocol.aggregates.kept_judgement_segments`); None where
        the flush point keeps none (the report rules on every record)."""
        return kept_judgement_segments(self, commitment)

    def timeline_texts(self) -> TimelineTexts | None:
        """Every subject's timeline events as report text, from what the flush point keeps
        (:mod:`ledger.protocol.report_text`) and the entries replayed on top of it; None
        where the flush point keeps none (the report computes them)."""
        return stored_timeline_texts(self.source, self.pinned, self._overlay_events)

    def committed(self) -> None:
        """The rows of :meth:`derived_rows` were committed at size :attr:`size`: pin there.
        Then :meth:`trim` the cache."""
        for table in self._tables:
            table.mark_written()
        self.pinned = self.size
        self._overlay_facts.clear()
        self._overlay_statements.clear()
        self._stored_ids.overlay.clear()
        self.trim()

    def rolled_back(self) -> None:
        """The overlay's entries were not committed: forget them, and every record loaded (a
        record may have been changed in memory by an entry that is now gone). The state is
        again exactly its flush point."""
        self._overlay_facts.clear()
        self._overlay_statements.clear()
        self._stored_ids.overlay.clear()
        for table in self._tables:
            table.drop()
        self._admitted = None

    def fork(self) -> StoredProtocolState:
        """A writable state equal to this one that shares nothing with it but the store (a
        dry run applies statements to the fork): the same flush point, and this state's
        overlay entries applied again. O(overlay), not O(state)."""
        twin = StoredProtocolState(
            self.source, self.pinned, facts=self.facts, cache_records=self.cache_records
        )
        for s in self._overlay_statements:
            twin.apply(s)
        return twin

    def repin(self, pinned: int) -> None:
        """Forget everything held and read the store at flush point ``pinned`` from now on
        (another writer moved the log on)."""
        self.rolled_back()
        self.pinned = pinned

    def trim(self) -> None:
        """Drop every loaded record if more than ``cache_records`` are held (all tables at
        once, so that records shared between tables stay shared)."""
        if self._overlay_facts:
            return
        if sum(t.loaded for t in self._tables) > self.cache_records:
            for table in self._tables:
                table.drop()

    @property
    def loaded_records(self) -> int:
        """How many records the state holds in memory."""
        return sum(t.loaded for t in self._tables)


def replay_rows(entries: Iterable[LoggedStatement], state: StoredProtocolState) -> None:
    """Apply ``entries`` to ``state`` in order (a helper for backfills and tests)."""
    for s in entries:
        state.apply(s)
