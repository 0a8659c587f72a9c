"""Report text kept in the derived state: the subjects (heads and timelines) and applications.

Most of a full precedent report's bytes are its subjects' timelines (about 112 of 164 MB at a
million entries), its applications (35 MB) and its subjects' other keys. All are text that the
report only copies:

- a timeline *event*, ``{"detail": …, "index": …, "log_time_ms": …, "type": …}``
  (:func:`event_text`), depends on its entry alone, so it never changes once the entry is
  logged;
- an *application item* (:func:`~ledger.protocol.audit.application_text`) depends on the
  application's record alone (and the version of the offer it cites, which never changes), so
  it changes exactly when the record does; so does a *subject's head*, its item but the
  timeline (:func:`~ledger.protocol.audit.subject_head_text`).

Computing them for a report means reading every entry's facts, every timeline row (a million
rows) and every application record, and formatting each; this module keeps their text instead,
written with the records they render, so that a report at any flush point reads a few thousand
rows of timeline text and one row per application, and concatenates. (The third kind of text a
report copies, each final judgement, is kept with the precedent's aggregates: ``text_ruling``,
:mod:`ledger.protocol.aggregates`, under the same marker.)

**Layout** (kinds of the derived state, versioned by flush point like every record:
``docs/ARCHITECTURE.md``, "Derived state"):

- ``text_ranges``, key ``ranges``: JSON ``{"ranges": [s0, s1, …], "until": C, "at": P}``,
  written by every flush (at flush point ``P``) of a writer that keeps report text, so a flush
  point ``Q`` keeps it exactly when the version visible there says ``"at": Q`` (absent, or
  written at an earlier flush point: a flush of an older release wrote ``Q``; a report there
  computes everything, :func:`stored_timeline_texts` and :func:`stored_application_texts`
  return ``None``, and no later flush keeps text until the store is completed again). Entries ``[0, C)`` are *closed*: their
  events are in the ``text_part`` rows of the ranges starting at ``s0 = 0 < s1 < … < C``
  (range ``i`` is ``[s_i, s_{i+1})``, the last ``[s_last, C)``).
- ``text_open``, key: the 8-byte first entry index of one flush (or of a completion's tail):
  JSON ``[[subject_id, index, "event text"], …]``, the events of that flush's entries, every
  one at index ``>= C``, in (index, subject id) order.
- ``text_part``, key: the range's 8-byte start, then the part's 8-byte number (0, 1, …):
  JSON ``[[subject_id, "event, event, …"], …]`` in ascending subject id, each item every event
  of that subject in the range, in index order, joined by ``", "``; a part holds about
  :data:`PART_BYTES` of text.
- ``text_application``, key: the application's 8-byte entry index: the UTF-8 text of its item
  in the report's ``applications`` list, written whenever the application's record is.
- ``text_subject``, key: the subject's 8-byte id: the UTF-8 text of its item in the report's
  ``subjects`` list without the timeline — the item's JSON up to the ``"timeline"`` key, a line
  feed, and the ``"vkeys"`` list (:func:`~ledger.protocol.audit.subject_head_text`) — written
  whenever the subject's record is (what else it shows, its restrictions and its offer's
  version, never changes).

**Writing** (:func:`flush_rows`, called by the flush of a
:class:`~ledger.protocol.stored.StoredProtocolState`, in the transaction that commits the
entries): the overlay's events become one ``text_open`` row and each changed application and
subject its text. When the open events span :data:`EVENT_RANGE` entries or more, they are *closed* instead:
every ``text_open`` row and the new events are grouped by subject into the parts of one new
range ``[C, size)``, the ``text_open`` rows are deleted (their versions end at this flush point)
and ``text_ranges`` is written again. So at any flush point the open events span fewer than
:data:`EVENT_RANGE` entries, and the ranges are a few per :data:`EVENT_RANGE` entries.

**Reading** (:func:`stored_timeline_texts`): a stream per range (a few parts a read), merged by
subject id with the open events grouped in memory: memory is a few parts per range and the
open events, never the timelines. The applications and the subjects' heads are one scan each,
in key order (:func:`stored_application_texts`, :func:`stored_subject_texts`). Entries replayed on top of the flush point are rendered
from the state.

Invariant (checked by :func:`report_text_difference`, which ``amnesty check-derived`` runs,
and by ``tests/test_report_text.py``): at every flush point that has ``text_ranges``, the
events of every subject, concatenated from its ranges in order and then its open events in
index order, are exactly its timeline's events as the report writes them, and the
``text_application`` and ``text_subject`` rows are exactly the applications' items and the
subjects' heads.

Kept whole: the layout and its writing, reading, completion and check are one format, whose
invariant holds only if all of them agree on it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from json.encoder import encode_basestring
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from ledger.errors import MalformedError
from ledger.protocol.tables import TYPE_NAMES

if TYPE_CHECKING:
    from ledger.protocol.state import ProtocolState

KIND_RANGES = "text_ranges"
KIND_OPEN = "text_open"
KIND_PART = "text_part"
KIND_APPLICATION = "text_application"
KIND_SUBJECT = "text_subject"
TEXT_KINDS = (KIND_RANGES, KIND_OPEN, KIND_PART, KIND_APPLICATION, KIND_SUBJECT)
"""The derived-state kinds this module writes."""
RANGES_KEY = b"ranges"

EVENT_RANGE = 65_536
"""Open events are closed into a range once they span this many entries."""
PART_BYTES = 32_768
"""About how much text one ``text_part`` row holds (a subject's events in a range, if longer,
make a part of their own)."""
PARTS_PER_READ = 16
"""Parts of one range read at a time: what a reader holds per range."""

_TYPE_TEXT = {name: encode_basestring(name) for name in TYPE_NAMES}

Event = tuple[int, int, str]
"""One event as written: ``(subject id, entry index, its text)``."""
ItemText = tuple[int, str]
"""One application's item as written: ``(its entry index, its text)``."""


class Source(Protocol):
    """What this module reads of the derived state (a
    :class:`~ledger.protocol.stored.DerivedSource`)."""

    def read(self, kind: str, key: bytes, at: int) -> bytes | None: ...

    def scan(
        self, kind: str, at: int, after: bytes = b"", before: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]: ...


def _u64(value: int) -> bytes:
    return value.to_bytes(8, "big")


def part_key(start: int, number: int) -> bytes:
    """The key of part ``number`` of the range starting at entry ``start``."""
    return _u64(start) + _u64(number)


def event_text(index: int, detail: str | None, log_time_ms: int, entry_type: str) -> str:
    """One timeline event's JSON text, exactly as ``json.dumps`` writes
    ``{"detail": detail, "index": index, "log_time_ms": log_time_ms, "type": entry_type}``
    with ``ensure_ascii=False`` and sorted keys (the report's encoding)."""
    return (
        '{"detail": '
        + ("null" if detail is None else encode_basestring(detail))
        + ', "index": '
        + str(index)
        + ', "log_time_ms": '
        + str(log_time_ms)
        + ', "type": '
        + _TYPE_TEXT[entry_type]
        + "}"
    )


def events_of(state: ProtocolState, pairs: Iterable[tuple[int, int]]) -> list[Event]:
    """The events of ``pairs`` (subject id, entry index), from ``state``'s facts, in (index,
    subject id) order."""
    ordered = sorted(pairs, key=lambda pair: (pair[1], pair[0]))
    facts = state.timeline_facts([index for _, index in ordered])
    return [
        (sid, index, event_text(index, detail, time_ms, entry_type))
        for (sid, _), (index, detail, time_ms, entry_type) in zip(ordered, facts, strict=True)
    ]


# -------------------------------------------------------------------------------- the ranges


def read_ranges(source: Source, at: int) -> tuple[list[int], int] | None:
    """The closed ranges' starts and the first open entry at flush point ``at``, or None if it
    keeps no report text: no ``text_ranges`` row, or one written at an earlier flush point (the
    flush that wrote ``at`` kept no text: a writer of an older release, during a rolling
    upgrade). :class:`MalformedError` for a record this module did not write."""
    data = source.read(KIND_RANGES, RANGES_KEY, at)
    if data is None:
        return None
    try:
        value = orjson.loads(data)
        starts, until, written = value["ranges"], value["until"], value["at"]
    except (orjson.JSONDecodeError, TypeError, KeyError):
        raise MalformedError("couldn't read the timeline text's ranges: not this format") from None
    if (
        type(until) is not int
        or type(written) is not int
        or type(starts) is not list
        or any(type(s) is not int for s in starts)
        or starts != sorted(set(starts))
        or (starts and (starts[0] != 0 or starts[-1] >= until))
        or (not starts and until != 0)
        or until > written
    ):
        raise MalformedError(f"couldn't read the timeline text's ranges: {value!r:.120}")
    if written != at:
        return None
    return starts, until


def ranges_row(starts: list[int], until: int, at: int) -> tuple[str, bytes, bytes]:
    """The ``text_ranges`` row written at flush point ``at`` for closed ranges ``starts`` and
    first open entry ``until``."""
    return KIND_RANGES, RANGES_KEY, orjson.dumps({"ranges": starts, "until": until, "at": at})


class _PartBuilder:
    """The parts of one range, built as its items arrive in ascending subject id."""

    def __init__(self, start: int) -> None:
        self.start = start
        self.number = 0
        self.items: list[tuple[int, str]] = []
        self.size = 0

    def add(self, sid: int, text: str) -> Iterator[tuple[str, bytes, bytes]]:
        """Add subject ``sid``'s events' text; the part's row once it holds
        :data:`PART_BYTES` or more."""
        self.items.append((sid, text))
        self.size += len(text) + 16
        if self.size >= PART_BYTES:
            yield from self.close()

    def close(self) -> Iterator[tuple[str, bytes, bytes]]:
        """The row of the part being built, if it holds anything."""
        if self.items:
            yield KIND_PART, part_key(self.start, self.number), orjson.dumps(self.items)
            self.number += 1
            self.items, self.size = [], 0


def _parts(start: int, items: Iterable[tuple[int, str]]) -> Iterator[tuple[str, bytes, bytes]]:
    """The ``text_part`` rows of the range at ``start`` holding ``items`` (subject id, its
    events' text), which ascend by subject id."""
    builder = _PartBuilder(start)
    for sid, text in items:
        yield from builder.add(sid, text)
    yield from builder.close()


def _grouped(events: list[Any]) -> Iterator[tuple[int, str]]:
    """``events`` as (subject id, its events' text joined), by subject id then index."""
    _check_events(events)
    events.sort(key=lambda e: (e[0], e[1]))
    run: list[str] = []
    current = -1
    for sid, _, text in events:
        if sid != current:
            if run:
                yield current, ", ".join(run)
            run, current = [], sid
        run.append(text)
    if run:
        yield current, ", ".join(run)


def _open_events(source: Source, at: int) -> list[Any]:
    """Every ``text_open`` event at ``at``, as parsed (``[subject_id, index, text]`` lists,
    checked where they are grouped: :class:`TimelineTexts`, :func:`_grouped`)."""
    events: list[Any] = []
    for _, data in source.scan(KIND_OPEN, at):
        events.extend(_rows(data))
    return events


def _check_events(events: list[Any]) -> None:
    """:class:`MalformedError` unless every event is ``(int, int, str)``."""
    try:
        valid = all(
            type(sid) is int and type(index) is int and type(text) is str
            for sid, index, text in events
        )
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise MalformedError("couldn't read the timeline text: an open event is malformed")


def _rows(data: bytes) -> list[Any]:
    try:
        rows = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise MalformedError("couldn't read the timeline text: a row is not JSON") from None
    if type(rows) is not list or any(type(row) is not list for row in rows):
        raise MalformedError("couldn't read the timeline text: a row is not a list of items")
    return rows


def flush_rows(
    source: Source,
    pinned: int,
    size: int,
    new_events: Callable[[], list[Event]],
    changed_applications: Callable[[], list[ItemText]],
    changed_subjects: Callable[[], list[ItemText]],
) -> list[tuple[str, bytes, bytes]]:
    """The report text rows of a flush from flush point ``pinned`` to size ``size``: the
    events its entries add (``new_events()``, :func:`events_of`) and the text of each
    application and subject they created or changed (``changed_applications()``,
    ``changed_subjects()``). None when ``pinned`` keeps no report text (a store of an older
    release, or written by one, until it is completed: :func:`completion_rows`) unless
    ``pinned`` is 0, the start of a log, nor when nothing was applied. The events make one
    ``text_open`` row, or — when the open events would span :data:`EVENT_RANGE` entries or
    more — a new closed range (its parts and the deletion of every ``text_open`` row); either
    way ``text_ranges`` is written again, naming ``size``."""
    if size == pinned:
        return []  # nothing applied (completing a flush point): nothing to write
    ranges = read_ranges(source, pinned)
    if ranges is None:
        if pinned != 0:
            return []
        ranges = ([], 0)
    starts, until = ranges
    rows = [
        (KIND_APPLICATION, _u64(index), text.encode("utf-8"))
        for index, text in changed_applications()
    ]
    rows.extend((KIND_SUBJECT, _u64(sid), text.encode("utf-8")) for sid, text in changed_subjects())
    events = new_events()
    if size - until < EVENT_RANGE:
        if events:
            rows.append((KIND_OPEN, _u64(pinned), orjson.dumps(events)))
        # Written at every flush: says that this flush point keeps its text too.
        rows.append(ranges_row(starts, until, size))
        return rows
    # Close [until, size): every open row's events and this flush's, grouped by subject.
    rows.extend((KIND_OPEN, key, b"") for key, _ in source.scan(KIND_OPEN, pinned))
    events = _open_events(source, pinned) + events
    rows.extend(_parts(until, _grouped(events)))
    rows.append(ranges_row([*starts, until], size, size))
    return rows


# --------------------------------------------------------------------------------- reading


def _range_stream(source: Source, at: int, start: int) -> Iterator[tuple[int, str]]:
    """The items of the range at ``start``, :data:`PARTS_PER_READ` parts a read, checked to
    ascend by subject id and their parts to be numbered without a gap."""
    number = 0
    last = -1
    while True:
        after = part_key(start, number - 1) if number else _u64(start)
        rows = list(source.scan(KIND_PART, at, after, part_key(start, number + PARTS_PER_READ)))
        for key, data in rows:
            if key != part_key(start, number):
                raise MalformedError(
                    f"couldn't read the timeline text of the range at entry {start}: part "
                    f"{number} is missing"
                )
            number += 1
            for item in _rows(data):
                sid, text = item if len(item) == 2 else (None, None)
                if type(sid) is not int or type(text) is not str or sid <= last:
                    raise MalformedError(
                        f"couldn't read the timeline text of the range at entry {start}: "
                        "its subjects do not ascend"
                    )
                last = sid
                yield sid, text
        if len(rows) < PARTS_PER_READ:
            return


class TimelineTexts:
    """Each subject's events' text at one state, taken in ascending subject id
    (:meth:`take`); :meth:`finish` checks that every event was taken."""

    def __init__(self, streams: list[Iterator[tuple[int, str]]], open_events: list[Any]):
        """``open_events``: ``(subject id, index, text)`` each, checked here."""
        self._streams = streams
        self._current: list[str] = [""] * len(streams)
        self._waiting: dict[int, list[int]] = {}
        self._open: dict[int, list[tuple[int, str]]] = defaultdict(list)
        _check_events(open_events)
        for sid, index, text in open_events:
            self._open[sid].append((index, text))
        self._last = -1
        for position in range(len(streams)):
            self._advance(position)

    def _advance(self, position: int) -> None:
        item = next(self._streams[position], None)
        if item is not None:
            sid, text = item
            self._current[position] = text
            self._waiting.setdefault(sid, []).append(position)

    def take(self, subject_id: int) -> str:
        """Subject ``subject_id``'s events, joined by ``", "`` (the inside of its timeline's
        brackets). Subject ids must ascend from call to call."""
        if subject_id <= self._last:
            raise ValueError(f"couldn't take timelines in order: {subject_id} after {self._last}")
        self._last = subject_id
        pieces: list[str] = []
        positions = self._waiting.pop(subject_id, None)
        if positions is not None:
            positions.sort()  # the ranges in entry order
            for position in positions:
                pieces.append(self._current[position])
                self._advance(position)
        events = self._open.pop(subject_id, None)
        if events is not None:
            events.sort()
            pieces.extend(text for _, text in events)
        return ", ".join(pieces)

    def finish(self) -> None:
        """:class:`MalformedError` if an event of a subject never taken is left (the text
        names a subject the state does not have)."""
        left = sorted([*self._waiting, *self._open])
        if left:
            raise MalformedError(
                f"couldn't use the timeline text: it has events of subject {left[0]}, which "
                "the state does not have"
            )


def stored_timeline_texts(
    source: Source, at: int, overlay: Callable[[], list[Event]]
) -> TimelineTexts | None:
    """The subjects' events' text at flush point ``at`` and the ``overlay`` events (entries
    replayed on top of it), or None if ``at`` keeps no timeline text."""
    ranges = read_ranges(source, at)
    if ranges is None:
        return None
    starts, _ = ranges
    streams = [_range_stream(source, at, start) for start in starts]
    return TimelineTexts(streams, _open_events(source, at) + overlay())


def stored_application_texts(
    source: Source, at: int, overlay: Callable[[], list[ItemText]]
) -> Iterator[str] | None:
    """Every application's item text at flush point ``at``, in entry order, those the
    ``overlay`` (entries replayed on top of it) created or changed taken from it; or None if
    ``at`` keeps no report text."""
    if read_ranges(source, at) is None:
        return None
    return (text for _, text in _kept_items(source, at, KIND_APPLICATION, overlay))


def stored_subject_texts(
    source: Source, at: int, overlay: Callable[[], list[ItemText]]
) -> Iterator[ItemText] | None:
    """Every subject's id and head text (:func:`~ledger.protocol.audit.subject_head_text`) at
    flush point ``at``, in id order, those the ``overlay`` created or changed taken from it; or
    None if ``at`` keeps no report text."""
    if read_ranges(source, at) is None:
        return None
    return _kept_items(source, at, KIND_SUBJECT, overlay)


def _kept_items(
    source: Source, at: int, kind: str, overlay: Callable[[], list[ItemText]]
) -> Iterator[ItemText]:
    """The ``kind`` rows at ``at`` (an 8-byte index → UTF-8 text) in key order, merged with
    ``overlay``'s, which win."""
    changed = sorted(overlay())
    position = 0
    for key, data in source.scan(kind, at):
        if len(key) != 8:
            raise MalformedError(f"couldn't read the {kind} rows: a key is no index")
        index = int.from_bytes(key, "big")
        while position < len(changed) and changed[position][0] < index:
            yield changed[position]
            position += 1
        if position < len(changed) and changed[position][0] == index:
            yield changed[position]
            position += 1
            continue
        try:
            yield index, data.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedError(f"couldn't read the {kind} row of {index}: not UTF-8") from None
    yield from changed[position:]


# ------------------------------------------------------------------------------ completion


def completion_rows(
    state: ProtocolState,
    subjects: Iterable[tuple[int, Iterable[int], str]],
    applications: Iterable[ItemText],
    size: int,
) -> Iterator[tuple[str, bytes, bytes]]:
    """The report text rows of a flush point ``size`` that has none (derived state written by
    an older release): each of ``applications``' text; from ``subjects`` (each subject id,
    ascending, with its timeline and head text) and ``state``'s facts, each subject's head and
    the ranges of :data:`EVENT_RANGE` entries below the last multiple of it, the rest as one
    ``text_open`` row; and last the ``text_ranges`` row that marks the flush point as keeping
    them. Holds a part per range and the open events."""
    for index, text in applications:
        yield KIND_APPLICATION, _u64(index), text.encode("utf-8")
    until = size // EVENT_RANGE * EVENT_RANGE
    starts = list(range(0, until, EVENT_RANGE))
    builders = [_PartBuilder(start) for start in starts]
    open_events: list[Event] = []
    for sid, timeline, head in subjects:
        yield KIND_SUBJECT, _u64(sid), head.encode("utf-8")
        runs: dict[int, list[str]] = {}
        for sid_, index, text in events_of(state, ((sid, i) for i in timeline)):
            if index < until:
                runs.setdefault(index // EVENT_RANGE, []).append(text)
            else:
                open_events.append((sid_, index, text))
        for number, texts in runs.items():
            yield from builders[number].add(sid, ", ".join(texts))
    for builder in builders:
        yield from builder.close()
    if open_events:
        open_events.sort(key=lambda e: (e[1], e[0]))
        yield KIND_OPEN, _u64(until), orjson.dumps(open_events)
    yield ranges_row(starts, until, size)


# ------------------------------------------------------------------------------ checking


def report_text_difference(
    source: Source,
    at: int,
    replayed: ProtocolState,
    application_text: Callable[[ProtocolState, Any], str],
    subject_head_text: Callable[[ProtocolState, Any], str],
) -> str | None:
    """Compare the report text kept at flush point ``at`` with ``replayed`` (the state
    replayed to size ``at``; ``application_text`` and ``subject_head_text`` render its
    records): None if every subject's head and events and every application's item are the
    replay's, else the first subject or application that differs, is missing or is extra (or
    what is malformed). Nothing to compare where ``at`` keeps no text."""
    if read_ranges(source, at) is None:
        return None
    try:
        texts = stored_timeline_texts(source, at, list)
        if texts is None:
            return None
        heads = _kept_items(source, at, KIND_SUBJECT, list)
        wanted = ((sid, subject_head_text(replayed, s)) for sid, s in replayed.subjects.items())
        for sid, difference in _item_differences(heads, wanted, "subject"):
            if difference is not None:
                return difference
            subject = replayed.subjects[sid]
            want = ", ".join(
                event_text(*fact) for fact in replayed.timeline_facts(subject.timeline)
            )
            got = texts.take(sid)
            if got != want:
                return (
                    f"timeline text of subject {sid}: stored {got[:160]!r}, replayed {want[:160]!r}"
                )
        texts.finish()
        apps = _kept_items(source, at, KIND_APPLICATION, list)
        wanted = ((i, application_text(replayed, a)) for i, a in replayed.applications.items())
        for _, difference in _item_differences(apps, wanted, "application"):
            if difference is not None:
                return difference
    except MalformedError as exc:
        return str(exc)
    return None


def _item_differences(
    kept: Iterator[ItemText], wanted: Iterable[ItemText], named: str
) -> Iterator[tuple[int, str | None]]:
    """Each wanted item's key with None where ``kept`` holds exactly its text (both in key
    order); at the first that differs, is missing or is extra, its key and the difference in
    words, and no more."""
    got = next(kept, None)
    for key, want in wanted:
        if got is not None and got[0] < key:
            yield got[0], f"text of {named} {got[0]}, which the replay does not have"
            return
        if got is None or got[0] > key:
            yield key, f"text of {named} {key}: missing, replayed {want[:160]!r}"
            return
        if got[1] != want:
            yield key, f"text of {named} {key}: stored {got[1][:160]!r}, replayed {want[:160]!r}"
            return
        yield key, None
        got = next(kept, None)
    if got is not None:
        yield got[0], f"text of {named} {got[0]}, which the replay does not have"


__all__ = [
    "EVENT_RANGE",
    "KIND_APPLICATION",
    "KIND_OPEN",
    "KIND_PART",
    "KIND_RANGES",
    "KIND_SUBJECT",
    "PARTS_PER_READ",
    "PART_BYTES",
    "TEXT_KINDS",
    "ItemText",
    "TimelineTexts",
    "completion_rows",
    "event_text",
    "events_of",
    "flush_rows",
    "part_key",
    "read_ranges",
    "report_text_difference",
    "stored_application_texts",
    "stored_subject_texts",
    "stored_timeline_texts",
]
