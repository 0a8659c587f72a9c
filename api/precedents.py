"""Precedent reports streamed from a worker thread, and the limits on audit computations.

A full precedent report is never built whole nor kept: :func:`ledger.protocol.audit.
precedent_pieces` writes its JSON text item by item from the protocol state, and
:class:`ReportStream` runs that computation in a thread of its own and hands its text to the
event loop through a queue of at most :data:`QUEUE_CHUNKS` chunks of about
:data:`CHUNK_BYTES`. So a report costs memory for the chunks in flight, the item being built and
the state's own read-ahead, whatever its size; no other request waits for it on the event loop
(``/checkpoint``, tiles, entries and proofs are answered between its chunks: the producer blocks,
and so lets the interpreter go, each time it hands over a chunk); and a client that goes away
stops it: the response's cancellation sets the stream's stop flag, which the producer reads
between chunks, and the computation ends there (closing the report's generator).

Invariant: a :class:`ReportStream` runs its producer once, in one of :data:`REPORT_THREADS`
threads kept for the process (so that what a thread keeps — its connection to the derived state —
is bounded by that number, not by the reports served), and it ends — on the last chunk, on an
error, or on :meth:`ReportStream.close` — and the chunks it yields, joined, are exactly the pieces
the producer made, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import AbstractContextManager
from typing import Final

from api.problems import retry_later

log = logging.getLogger("api.precedents")

PRECEDENT_FRESH_S = 60.0
"""How long an answer judged "now" (the summary of a log without aggregates, what is due,
/llms.txt) is reused at the same size (:meth:`~api.service.LedgerService.fresh_at_latest`)."""
SYNC_BUDGET_S = 0.5
"""An answer judged "now" whose last computation took longer than this is served from the
last computation (naming its checkpoint) while the next one runs in the background."""
HEAVY_AT_ONCE = 1
"""How many computations that scan the derived state (reports, summaries) run at once."""
HEAVY_WAIT_S = 10.0
"""How long a request waits for its turn to compute before a 503 ``busy``."""
QUEUE_CHUNKS = 4
"""Chunks of a streamed report waiting for the client at most (the producer waits beyond)."""
CHUNK_BYTES = 1 << 20
"""Characters gathered into one chunk of a streamed report (a MiB: a 164 MB report in 160 hand-
overs to the event loop rather than 2,500, about a tenth faster whole; at most
:data:`QUEUE_CHUNKS` of them wait)."""
HAND_OVER_S = 0.5
"""How often a producer waiting for room in the queue looks at its stop flag."""
REPORT_THREADS = HEAVY_AT_ONCE
"""Threads that compute streamed reports, kept for the life of the process: as many as may
compute at once (:data:`HEAVY_AT_ONCE`); a report waits for a free one at most
:data:`HEAVY_WAIT_S`, then is refused 503 ``busy``. Fixed, because each thread keeps its own
connection to the derived state (:class:`~ledger.storage.derived.SqlDerivedSource`: one per
thread, with its page cache of up to 64 MiB on SQLite); a new thread per report left one more
each time."""

_WORKERS = ThreadPoolExecutor(max_workers=REPORT_THREADS, thread_name_prefix="precedent-report")

Producer = Callable[[], AbstractContextManager[Iterator[str]]]
"""Opens a report: entering it takes whatever the computation holds (a turn, a state) and
raises what refuses the request (before any piece); it gives the report's pieces."""


class _Closable:
    """``pieces`` with a ``close()`` that closes it if it is a generator: the computation's
    ``finally`` blocks run as soon as the stream ends, not when the generator is collected."""

    def __init__(self, pieces: Iterator[str]) -> None:
        self.pieces = pieces

    def close(self) -> None:
        close = getattr(self.pieces, "close", None)
        if close is not None:
            close()


_READY: Final = object()
_END: Final = object()


class ReportStream:
    """One report computed in a producer thread and read by the event loop (see the module).

    ``await start()`` runs the producer in one of :data:`REPORT_THREADS` threads until it has
    opened the report and raises whatever refused it (so the handler can still answer with an
    error status): a 503 ``busy`` when no thread is free within ``wait_s`` (the producer, when
    it gets a thread, then returns at once); then ``chunks()`` gives
    the report's text, encoded, until the end. Leaving ``chunks()`` early (the client went
    away: the response is cancelled) or calling :meth:`close` stops the producer at its next
    chunk."""

    def __init__(
        self,
        produce: Producer,
        *,
        queue_chunks: int = QUEUE_CHUNKS,
        chunk_bytes: int = CHUNK_BYTES,
        workers: ThreadPoolExecutor | None = None,
        wait_s: float = HEAVY_WAIT_S,
    ) -> None:
        self._produce = produce
        self._workers = workers if workers is not None else _WORKERS
        self._wait_s = wait_s
        self._chunk_bytes = chunk_bytes
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize=queue_chunks)
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = threading.Event()
        self.done: Future[None] | None = None
        """The producer's run (done once it ended, however)."""

    @property
    def stopped(self) -> bool:
        """Whether the producer was told to stop (the reader went away or closed it)."""
        return self._stop.is_set()

    def close(self) -> None:
        """Stop the producer at its next chunk (idempotent; it ends on its own otherwise)."""
        self._stop.set()

    async def start(self) -> None:
        """Start the producer and wait until the report is open; raise what refused it."""
        self._loop = asyncio.get_running_loop()
        self.done = self._workers.submit(self._run)
        try:
            first = await asyncio.wait_for(self._queue.get(), self._wait_s)
        except TimeoutError:
            if self._running.is_set():  # it has a thread: its own turn's wait decides
                first = await self._wait_started()
            else:
                self.close()
                raise retry_later(
                    "Busy",
                    f"couldn't compute the precedent report now: {REPORT_THREADS} report(s) "
                    "are being computed or waiting; retry shortly",
                    kind="busy",
                    retry_after_s=5,
                ) from None
        except BaseException:
            self.close()
            raise
        if isinstance(first, BaseException):
            raise first
        assert first is _READY

    async def chunks(self) -> AsyncIterator[bytes]:
        """The report's text in chunks of about ``chunk_bytes`` characters, UTF-8 encoded."""
        try:
            while True:
                item = await self._queue.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, bytes)
                yield item
        finally:
            self.close()

    # -- the producer's thread ---------------------------------------------------------------

    def _hand_over(self, item: object) -> bool:
        """Put ``item`` in the queue, waiting for room; False once told to stop."""
        loop = self._loop
        assert loop is not None
        try:
            future = asyncio.run_coroutine_threadsafe(self._queue.put(item), loop)
        except RuntimeError:  # the loop is closed: nobody reads any more
            return False
        while True:
            try:
                future.result(timeout=HAND_OVER_S)
                return True
            except FutureTimeout:
                if self._stop.is_set() or loop.is_closed():
                    future.cancel()
                    return False
            except RuntimeError:  # the loop stopped
                return False

    async def _wait_started(self) -> object:
        try:
            return await self._queue.get()
        except BaseException:
            self.close()
            raise

    def _run(self) -> None:
        if self._stop.is_set():  # given up on while waiting for a thread
            return
        self._running.set()
        try:
            with self._produce() as pieces, contextlib.closing(_Closable(pieces)):
                if not self._hand_over(_READY):
                    return
                gathered: list[str] = []
                size = 0
                for piece in pieces:
                    gathered.append(piece)
                    size += len(piece)
                    if size >= self._chunk_bytes:
                        if self._stop.is_set():
                            return
                        if not self._hand_over("".join(gathered).encode("utf-8")):
                            return
                        gathered, size = [], 0
                last = "".join(gathered).encode("utf-8")
                if last and (self._stop.is_set() or not self._hand_over(last)):
                    return
            self._hand_over(_END)
        except BaseException as exc:  # handed to the request, which raises it
            if not self._stop.is_set():
                self._hand_over(exc)
            else:
                log.debug("a stopped report ended with %r", exc)
