"""The write path's parts outside the sequencer: the log's signer, and waiting on submissions.

- :func:`load_signer` reads the log's private key at startup and checks it against the log's
  vkey (a key that is not the log's is fatal); a read-only server has none.
- :class:`Waiting` counts the submissions this process is waiting on, and since when (the
  health rule's input).
- :func:`settler` bridges a sequencer future (settled in the sequencer's thread) to an asyncio
  future (awaited on the event loop); :meth:`~api.service.LedgerService.submit` uses it.

Invariant: an outcome of the sequencer — a receipt or an exception — is never lost on its way
to the waiting request, unless the request went away (cancelled) or the loop has closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from api.clock import now_ms
from api.settings import Settings
from ledger.errors import FatalError
from ledger.server.logview import LogView
from ledger.server.sequencer import Receipt
from ledger.tlog.note import Signer

T = TypeVar("T")


# -- submissions in flight ------------------------------------------------------------------------


class Waiting:
    """Submissions this process is waiting on, and since when (for /healthz). Thread-safe."""

    def __init__(self) -> None:
        self._since: dict[int, int] = {}
        self._next = 0
        self._lock = threading.Lock()

    def start(self, at_ms: int | None = None) -> int:
        """Register a submission that arrived at ``at_ms`` (default now); return its token."""
        with self._lock:
            self._next += 1
            self._since[self._next] = now_ms() if at_ms is None else at_ms
            return self._next

    def done(self, token: int) -> None:
        with self._lock:
            self._since.pop(token, None)

    def count(self) -> int:
        return len(self._since)

    def oldest_ms(self) -> int | None:
        with self._lock:
            return min(self._since.values(), default=None)


def settler(
    loop: asyncio.AbstractEventLoop,
    answer: asyncio.Future[tuple[Receipt, T]],
    finish: Callable[[Receipt], T],
) -> Callable[[Future[Receipt]], None]:
    """A done-callback for a sequencer future: in the sequencer's thread (or at once, if the
    future is already done) it runs ``finish`` on the receipt and hands the outcome — or the
    exception, never lost — to ``answer`` on its loop."""

    def settle(done: Future[Receipt]) -> None:
        try:
            receipt = done.result()
            outcome: tuple[Receipt, T] | BaseException = (receipt, finish(receipt))
        except BaseException as exc:
            outcome = exc
        # RuntimeError: the loop has closed (shutting down) and nobody waits any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_resolve, answer, outcome)

    return settle


def _resolve(answer: asyncio.Future[Any], outcome: object) -> None:
    """Settle ``answer`` (on its loop) with a result or an exception, unless it was cancelled
    (the client went away)."""
    if answer.done():
        return
    if isinstance(outcome, BaseException):
        answer.set_exception(outcome)
    else:
        answer.set_result(outcome)


def load_signer(settings: Settings, view: LogView) -> Signer | None:
    """The log's signer from its key file, checked against the log's vkey; None if read-only."""
    if settings.read_only:
        return None
    key_path = settings.key_path
    if key_path is None and view.identity.key_path:
        key_path = Path(view.identity.key_path)
    if key_path is None:
        return None
    try:
        text = key_path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise FatalError(f"couldn't read the log key {key_path}: {exc}") from exc
    signer = Signer.parse_private_key(text)
    if signer.vkey != view.identity.log_vkey:
        raise FatalError(
            f"couldn't use key {key_path}: its vkey {signer.vkey} is not this log's "
            f"{view.identity.log_vkey}"
        )
    return signer
