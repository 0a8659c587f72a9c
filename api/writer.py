"""The write path's parts outside the sequencer: the log's signer, and waiting on submissions.

- :func:`load_signer` reads the log's private key at startup and checks it against the log's
  vkey (a key that is not the log's is fatal); a read-only server has none.
- :func:`published_for` is the signer's memory of the largest checkpoint it published
  (:mod:`ledger.server.published`), a file beside the key unless ``published_path`` says where;
  :func:`recall_witnessed` adds to it, at start, what each witness of the policy says it last
  cosigned (its read endpoint), and :func:`witness_endpoints` reads those witnesses.
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
from ledger.server.log_key import check_key_file
from ledger.server.logview import LogView
from ledger.server.published import PublishedCheckpoint, published_path_for
from ledger.server.sequencer import Receipt
from ledger.tlog.checkpoint import LogSigners, parse_policy
from ledger.tlog.note import Signer
from ledger.witness.client import fetch_cosigned_checkpoint
from ledger.witness.cosigner import WitnessEndpoint, group_endpoints, recall_cosigned

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
    against the log's identity (:func:`~ledger.server.log_key.check_key_file`): a key that is
    not the log's, or the key file of a log that signs with ML-DSA-44 (from its creation, or
    since a ``log_key`` entry) without that key, is fatal. An ML-DSA-44 key the log does not
    name yet waits for its ``log_key`` statement. None if read-only."""
    key_path = _key_path(settings, view)
    if key_path is None:
        return None
    try:
        text = key_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FatalError(f"couldn't read the log key {key_path}: {exc}") from exc
    signers = LogSigners.parse(text)
    try:
        # The identity as stored now: a log_key entry logged since this process started
        # names the key the key file must hold (/readyz asks again while running).
        check_key_file(signers, view.store.identity())
    except RefusedError as exc:
        raise FatalError(f"{exc} (key file {key_path})") from exc
    return signers


def load_signer(settings: Settings, view: LogView) -> Signer | None:
    """The log's Ed25519 signer (see :func:`load_log_signers`); None if read-only."""
    signers = load_log_signers(settings, view)
    return signers.ed25519 if signers is not None else None


def witness_endpoints(settings: Settings) -> list[WitnessEndpoint]:
    """The witnesses of the log's tlog-policy file that have URLs, one per URL (a witness
    listed with its 0x04 and 0x06 keys at one URL is asked once, for both lines); empty
    without a policy. A policy that cannot be read, or has no URL at all, is fatal."""
    if settings.witness_policy is None:
        return []
    try:
        policy = parse_policy(settings.witness_policy.read_bytes())
    except OSError as exc:
        raise FatalError(
            f"couldn't read the witness policy {settings.witness_policy}: {exc}"
        ) from exc
    endpoints = group_endpoints([(w.url, w.key) for w in policy.witnesses if w.url])
    if not endpoints:
        raise FatalError(
            f"couldn't use the witness policy {settings.witness_policy}: no witness line has a URL"
        )
    return endpoints


def recall_witnessed(
    settings: Settings, view: LogView, published: PublishedCheckpoint | None
) -> dict[str, int]:
    """Before the startup check: ask each witness of the policy for the latest checkpoint of
    this log it cosigned (``GET <url>/<origin hash>/checkpoint``, the URL taken as its
    monitoring prefix) and add it to the signer's memory, so a database behind what a witness
    cosigned is refused even if the memory file was lost. One request per witness, best effort
    (see :func:`~ledger.witness.cosigner.recall_cosigned`); nothing for a read-only server."""
    if published is None:
        return {}
    return recall_cosigned(
        witness_endpoints(settings),
        view.origin,
        lambda url, origin: fetch_cosigned_checkpoint(url, origin, timeout=5.0),
        published.remember_cosigned,
    )
