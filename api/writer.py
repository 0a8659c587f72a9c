"""The write path's parts outside the sequencer: the log's signer, and waiting on submissions.

- :func:`load_signer` reads the log's private key at startup and checks it against the log's
  vkey (a key that is not the log's is fatal); a read-only server has none.
- :func:`published_for` is the signer's memory of the largest checkpoint it published
  (:mod:`ledger.server.published`), a file beside the key unless ``published_path`` says where.
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
from ledger.errors import FatalError, RefusedError
from ledger.server.logview import LogView
from ledger.server.published import PublishedCheckpoint, published_path_for
from ledger.server.sequencer import Receipt
from ledger.tlog.checkpoint import LogSigners
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


def _key_path(settings: Settings, view: LogView) -> Path | None:
    """The log key file this server signs with: the setting, else the one given to ``init``;
    None for a read-only server."""
    if settings.read_only:
        return None
    key_path = settings.key_path
    if key_path is None and view.identity.key_path:
        key_path = Path(view.identity.key_path)
    return key_path


def published_for(settings: Settings, view: LogView) -> PublishedCheckpoint | None:
    """The signer's remembered checkpoint: ``settings.published_path``, else the key file's
    name + ``.published``; None for a read-only server (it signs nothing)."""
    key_path = _key_path(settings, view)
    if key_path is None:
        return None
    path = settings.published_path or published_path_for(key_path)
    return PublishedCheckpoint(path, view.log_key, view.origin)


def load_log_signers(settings: Settings, view: LogView) -> LogSigners | None:
    """The log's keys from its key file (Ed25519, and ML-DSA-44 for a hybrid log), checked
    against the log's identity: a key that is not the log's, or a hybrid log's key file without
    its ML-DSA-44 line, is fatal. None if read-only."""
    key_path = _key_path(settings, view)
    if key_path is None:
        return None
    try:
        text = key_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FatalError(f"couldn't read the log key {key_path}: {exc}") from exc
    signers = LogSigners.parse(text)
    try:
        signers.check_identity(view.identity.log_vkey, view.identity.mldsa_vkey)
    except RefusedError as exc:
        raise FatalError(f"{exc} (key file {key_path})") from exc
    return signers


def load_signer(settings: Settings, view: LogView) -> Signer | None:
    """The log's Ed25519 signer (see :func:`load_log_signers`); None if read-only."""
    signers = load_log_signers(settings, view)
    return signers.ed25519 if signers is not None else None
