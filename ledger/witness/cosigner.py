"""The log side of witnessing: ask each configured witness to cosign the latest checkpoint,
at a rate the public witness network accepts.

After the sequencer has durably committed a checkpoint, the cosigner (a background thread of the
service, never in the sequencer's or a submitter's path) asks every witness to cosign it
(C2SP tlog-witness), with a consistency proof from the size that witness last cosigned, and keeps
the returned cosignature lines beside the log's own checkpoint (the store's ``cosignatures``).
``LogView.witnessed`` merges them into the note that ``/checkpoint`` and tlog-proof files serve:
the text is unchanged, so the log signature and every proof stay valid.

Pacing (a good citizen of the witness network, whose witnesses take a declared number of
requests per day, ``qpd``): each witness has a :class:`WitnessPacer`. A witness is asked at most
once per :attr:`Pacing.min_interval_s` (default 60 s), whatever it answers; after a failure the
wait grows exponentially (doubling from the interval up to :attr:`Pacing.max_backoff_s`) with
jitter, and is never shorter than a ``Retry-After`` the witness sent with 429 or 503; a 404
("this log is not configured here yet") waits :attr:`Pacing.not_configured_s`. A 409 teaches the
size the witness holds: the next request, at the next allowed time, starts from it. So a witness
gets at most ``Pacing.qpd`` requests in any day, the figure ``amnesty witness log-list-entry``
declares — provided the request function makes one HTTP request per call (the service's does:
``max_attempts=1``).

The HTTP request itself is an adapter (``ledger.witness.client.request_cosignatures``) passed in
as :data:`RequestCosignatures`, so this module does no I/O of its own but through the store.

The signer's memory (:mod:`ledger.server.published`) keeps each witness's latest cosigned
checkpoint outside the database: the cosigner hands every new cosignature to ``remember``
(:meth:`~ledger.server.published.PublishedCheckpoint.remember_cosigned`), and a starting server
calls :func:`recall_cosigned`, which reads each witness's read endpoint (the adapter
``ledger.witness.client.fetch_cosigned_checkpoint``) and remembers what it returns, so that the
startup check refuses a database behind what any witness cosigned — even when the memory file
itself was lost or restored from an old copy.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

from ledger.errors import LedgerError, MalformedError
from ledger.server.logview import LogView
from ledger.tlog.checkpoint import Checkpoint
from ledger.tlog.note import NoteSignature, VerifierKey, format_note, parse_note
from ledger.witness.client import WitnessBusyError, WitnessNotConfiguredError
from ledger.witness.witness import ConflictingRootError, OldSizeMismatchError

log = logging.getLogger("ledger.witness.cosigner")

SECONDS_PER_DAY: Final = 86_400

ProveFunction = Callable[[int], list[bytes]]
RequestCosignatures = Callable[
    [str, tuple[VerifierKey, ...], bytes, int, Sequence[bytes], ProveFunction],
    Sequence[NoteSignature],
]
"""(witness URL, witness keys, checkpoint note, old size, proof, prove) -> the verified lines,
one per key."""

RememberCosigned = Callable[[Sequence[VerifierKey], bytes], object]
"""(witness keys, the log's checkpoint note with that witness's lines) -> anything: keeps it."""

FetchCosigned = Callable[[str, str], bytes | None]
"""(witness URL, origin) -> the checkpoint the witness serves as its latest cosigned one for
``origin`` (unverified), or None if it has none."""


@dataclass(frozen=True, slots=True)
class WitnessEndpoint:
    """A witness to ask: its submission URL prefix and its cosignature keys (0x04 and/or 0x06,
    under one name: one request gets a line per key)."""

    url: str
    keys: tuple[VerifierKey, ...]

    def __post_init__(self) -> None:
        if not self.keys or len({key.name for key in self.keys}) != 1:
            raise MalformedError(
                f"couldn't use witness {self.url}: want one or more keys under one name"
            )

    @classmethod
    def parse(cls, spec: str) -> WitnessEndpoint:
        """Parse ``"<vkey> [<vkey>…] <url>"`` (a tlog-policy ``witness`` line's last fields)."""
        fields = spec.split()
        if len(fields) < 2:
            raise MalformedError(f"couldn't parse witness {spec!r}: want '<vkey>… <url>'")
        return cls(
            url=fields[-1].rstrip("/"), keys=tuple(VerifierKey.parse(f) for f in fields[:-1])
        )

    @property
    def label(self) -> str:
        """The witness's identity in ``known`` and ``failures``: its first key's vkey."""
        return self.keys[0].vkey()


def group_endpoints(witnesses: Sequence[tuple[str, VerifierKey]]) -> list[WitnessEndpoint]:
    """One endpoint per URL, from (URL, key) pairs such as a tlog-policy's witness lines: a
    witness listed with its 0x04 and its 0x06 key is asked once, for both lines."""
    by_url: dict[str, list[VerifierKey]] = {}
    for url, key in witnesses:
        by_url.setdefault(url.rstrip("/"), []).append(key)
    return [WitnessEndpoint(url, tuple(keys)) for url, keys in by_url.items()]


@dataclass(frozen=True, slots=True)
class Pacing:
    """How often one witness may be asked (see the module docstring)."""

    min_interval_s: float = 60.0
    max_backoff_s: float = 3_600.0
    not_configured_s: float = 3_600.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_interval_s <= self.max_backoff_s:
            raise MalformedError(
                f"couldn't pace witness requests: want 0 <= min_interval_s "
                f"({self.min_interval_s}) <= max_backoff_s ({self.max_backoff_s})"
            )

    @property
    def qpd(self) -> int:
        """The most requests one witness gets in a day: one per interval."""
        if self.min_interval_s == 0:
            raise MalformedError("couldn't declare a qpd: the minimum interval is 0")
        return math.ceil(SECONDS_PER_DAY / self.min_interval_s)


class WitnessPacer:
    """When one witness may next be asked. Times are seconds on the caller's clock.

    Invariant: after every request, :attr:`next_at` is at least ``min_interval_s`` later than
    the request's time, so requests to this witness are at least that far apart.
    """

    def __init__(self, pacing: Pacing, rng: random.Random) -> None:
        self.pacing = pacing
        self.rng = rng
        self.next_at = -math.inf
        self.failures = 0

    def due(self, now: float) -> bool:
        """Whether a request may be sent at ``now``."""
        return now >= self.next_at

    def answered(self, now: float) -> None:
        """The witness answered (a cosignature, or a 409 to resync from): wait the interval."""
        self.failures = 0
        self.next_at = now + self.pacing.min_interval_s

    def failed(
        self, now: float, *, retry_after_s: float | None = None, not_configured: bool = False
    ) -> float:
        """The request failed: back off exponentially with jitter; return the delay chosen.

        The delay is ``min_interval · 2^(failures-1)`` capped at ``max_backoff_s``, times a
        jitter factor in [0.5, 1), and never less than the interval, a ``Retry-After`` or,
        for a 404, ``not_configured_s``.
        """
        pacing = self.pacing
        self.failures += 1
        backoff = min(
            pacing.max_backoff_s, math.ldexp(pacing.min_interval_s, min(self.failures - 1, 60))
        )
        jitter: float = 0.5 + self.rng.random() / 2
        delay = max(pacing.min_interval_s, backoff * jitter)
        if retry_after_s is not None:
            delay = max(delay, retry_after_s)
        if not_configured:
            delay = max(delay, pacing.not_configured_s)
        self.next_at = now + delay
        return delay


class Cosigner:
    """Keeps the latest checkpoint cosigned by every reachable witness, at a paced rate.

    :meth:`cosign_latest` does one round (tests call it directly, with a simulated ``clock``);
    :meth:`start` runs rounds in a daemon thread every ``interval_s`` seconds (a round only
    sends to witnesses that are due). ``known`` remembers, per witness, the size it last
    cosigned (0 after a restart: the witness's 409 tells the real size, and the next request
    starts from it).
    """

    def __init__(
        self,
        view: LogView,
        witnesses: Sequence[WitnessEndpoint],
        request: RequestCosignatures,
        *,
        interval_s: float = 0.5,
        pacing: Pacing | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        remember: RememberCosigned | None = None,
    ) -> None:
        """``remember``, if given, is called with each witness's keys and the checkpoint note
        with its new lines after every cosignature (the signer's memory); its failure is logged
        and never stops a round."""
        self.view = view
        self.remember = remember
        self.witnesses = tuple(witnesses)
        self.request = request
        self.interval_s = interval_s
        self.pacing = pacing if pacing is not None else Pacing()
        self.clock = clock
        shared_rng = rng if rng is not None else random.Random()
        self.pacers = {w.label: WitnessPacer(self.pacing, shared_rng) for w in self.witnesses}
        self.known: dict[str, int] = {w.label: 0 for w in self.witnesses}
        self.failures: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def cosign_latest(self) -> int:
        """Ask every due witness that has not cosigned the latest checkpoint; return how many
        did."""
        signed = self.view.latest()
        size = signed.size
        done = 0
        if size == 0:
            return 0  # an empty log has nothing to witness
        for witness in self.witnesses:
            name = witness.label
            old = self.known[name]
            pacer = self.pacers[name]
            now = self.clock()
            if old == size or not pacer.due(now):
                continue
            try:
                proof = self.view.consistency_proof(old, size) if 0 < old <= size else []
                lines = self.request(
                    witness.url,
                    witness.keys,
                    signed.note,
                    old,
                    proof,
                    lambda m: self.view.consistency_proof(m, size),
                )
            except OldSizeMismatchError as exc:
                self._failed(witness, exc)
                if exc.latest_size <= size:
                    # Resync: the next request, one interval from now, starts from its size.
                    self.known[name] = exc.latest_size
                    pacer.answered(now)
                else:
                    pacer.failed(now)
                continue
            except WitnessBusyError as exc:
                self._failed(witness, exc)
                pacer.failed(now, retry_after_s=exc.retry_after_s)
                continue
            except WitnessNotConfiguredError as exc:
                self._failed(witness, exc)
                pacer.failed(now, not_configured=True)
                continue
            except ConflictingRootError as exc:
                log.error("witness %s holds a split view of this log: %s", witness.url, exc)
                self._failed(witness, exc)
                pacer.failed(now)
                continue
            except LedgerError as exc:
                self._failed(witness, exc)
                pacer.failed(now)
                continue
            pacer.answered(now)
            for line in lines:
                key = next(k for k in witness.keys if line.is_from(k))
                self.view.store.add_cosignature(size, key.vkey(), line.line())
            self._remember(witness, signed.note, lines)
            self.known[name] = size
            self.failures.pop(name, None)
            done += 1
        return done

    def _remember(
        self, witness: WitnessEndpoint, note_bytes: bytes, lines: Sequence[NoteSignature]
    ) -> None:
        """Hand the cosigned checkpoint to the signer's memory, if there is one."""
        if self.remember is None:
            return
        note = parse_note(note_bytes)
        for line in lines:
            note = note.with_signature(line)
        try:
            self.remember(witness.keys, format_note(note))
        except LedgerError as exc:
            log.error("couldn't remember witness %s's cosignature: %s", witness.url, exc)

    def _failed(self, witness: WitnessEndpoint, exc: LedgerError) -> None:
        """Remember and log a failed request (retried when the witness is next due)."""
        self.failures[witness.label] = str(exc)
        log.warning("witness %s did not cosign: %s", witness.url, exc)

    def start(self) -> None:
        """Run rounds in a daemon thread until :meth:`stop`."""
        if self._thread is None and self.witnesses:
            self._thread = threading.Thread(target=self._run, name="cosigner", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread after its current round."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.cosign_latest()
            except Exception:  # the cosigner must never take the service down
                log.exception("cosigning round failed")


def recall_cosigned(
    witnesses: Sequence[WitnessEndpoint],
    origin: str,
    fetch: FetchCosigned,
    remember: RememberCosigned,
) -> dict[str, int]:
    """Ask each witness for the latest checkpoint it cosigned for ``origin`` (its read endpoint,
    at its URL taken as its monitoring prefix) and ``remember`` it; return the sizes learned,
    by witness label.

    Meant for start-up, before the stored tree is checked against the signer's memory. Best
    effort: a witness that is unreachable, has no read endpoint or nothing for this log is
    skipped with a log line (the memory file still holds what the cosigner kept), and so is one
    whose answer does not verify (``remember`` refuses it). One request per witness, all of
    them at once (a start waits for the slowest witness, never for the sum of their
    timeouts); the answers are remembered one at a time, in the policy's order.
    """

    def ask(witness: WitnessEndpoint) -> bytes | LedgerError | None:
        try:
            return fetch(witness.url, origin)
        except LedgerError as exc:
            return exc

    with ThreadPoolExecutor(
        max_workers=max(1, min(len(witnesses), 16)), thread_name_prefix="recall-witness"
    ) as pool:
        answers = list(pool.map(ask, witnesses))
    learned: dict[str, int] = {}
    for witness, note in zip(witnesses, answers, strict=True):
        if isinstance(note, LedgerError):
            log.warning("couldn't ask witness %s what it cosigned: %s", witness.url, note)
            continue
        if note is None:
            log.info("witness %s has no cosigned checkpoint of this log to show", witness.url)
            continue
        try:
            remember(witness.keys, note)
            size = Checkpoint.parse(parse_note(note).text).size
        except LedgerError as exc:
            log.warning("ignoring what witness %s says it cosigned: %s", witness.url, exc)
            continue
        learned[witness.label] = size
        log.info("witness %s cosigned size %d of this log", witness.url, size)
    return learned
