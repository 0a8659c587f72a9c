"""The edges of every request: body caps while streaming, header limits, time bounds, and
per-client write rate limiting.

FastAPI has no body limit of its own. :class:`BodySizeLimit` is ASGI middleware that refuses a
declared ``Content-Length`` above the cap at once and, for chunked bodies (no length, or a lying
one), counts bytes as they arrive and answers 413 the moment the cap is crossed, before the
route ever sees the body; a body that does not arrive within its time bound is a 408.
:class:`HeaderLimits` answers 431 to a request with too many or too large headers (the server,
``amnesty serve``, also caps the bytes of a request's head before parsing it).
:class:`RequestDeadline` bounds every request in time: an answer not begun within the bound is
a 503 problem with ``Retry-After``, whatever the request waits on (a frozen database, a lock).
:class:`SlowClientProtocol` (the HTTP protocol ``amnesty serve`` runs) closes a connection that
does not deliver a request's head in time.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import threading
import time
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.problems import PROBLEM_JSON, ProblemError, problem_document

log = logging.getLogger("api")

_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH"})


async def _send_problem(
    send: Send,
    status: int,
    title: str,
    detail: str,
    kind: str,
    headers: Mapping[str, str] | None = None,
) -> None:
    body = json.dumps(problem_document(status, title, detail, kind=kind)).encode()
    extra = [(k.lower().encode("ascii"), v.encode("ascii")) for k, v in (headers or {}).items()]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class HeaderLimits:
    """431 for a request with more than ``max_count`` headers or more than ``max_bytes`` of
    header names and values, before anything else looks at it."""

    def __init__(self, app: ASGIApp, max_count: int, max_bytes: int) -> None:
        self.app = app
        self.max_count = max_count
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = scope.get("headers", [])
            size = sum(len(name) + len(value) for name, value in headers)
            if len(headers) > self.max_count or size > self.max_bytes:
                await _send_problem(
                    send,
                    431,
                    "Request header fields too large",
                    f"couldn't read the request: {len(headers)} headers of {size} bytes (at "
                    f"most {self.max_count} headers and {self.max_bytes} bytes)",
                    "headers-too-large",
                )
                return
        await self.app(scope, receive, send)


class RequestDeadline:
    """No request waits longer than ``seconds`` for its answer to begin.

    The route runs in a task of its own; if it has not started its response when the bound
    passes, the client gets a 503 problem with ``Retry-After`` at once and whatever the route
    sends later is dropped. The route itself is not cancelled: work in a worker thread (a query
    to a frozen database) cannot be interrupted, and is bounded by the database timeouts
    (``api.settings``) instead. A submission answered 503 this way may still be logged when the
    store comes back — it was never acknowledged, so nothing acknowledged is lost, and a retry
    of the same statement gets its receipt (200, duplicate). An answer already begun (a large
    body streaming) is not interrupted.
    """

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        abandoned = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if abandoned:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        loop = asyncio.get_running_loop()
        task: asyncio.Future[None] = asyncio.ensure_future(self.app(scope, receive, guarded_send))
        # Woken by whichever comes first: the route's end or the bound (one future, one timer:
        # cheaper per request than asyncio.wait).
        woken: asyncio.Future[None] = loop.create_future()

        def wake(_: object = None) -> None:
            if not woken.done():
                woken.set_result(None)

        task.add_done_callback(wake)
        timer = loop.call_later(self.seconds, wake)
        try:
            await woken
        finally:
            timer.cancel()
        if task.done() or started:
            await task  # finished, or answering: let it finish (and raise what it raises)
            return
        abandoned = True
        task.add_done_callback(_forget)
        await _send_problem(
            send,
            503,
            "Service unavailable",
            f"couldn't answer {scope.get('method', '')} {scope.get('path', '')} within "
            f"{self.seconds:g} s: the service is waiting on its storage; retry shortly",
            "timeout",
            {"Retry-After": "2"},
        )


def _forget(task: asyncio.Future[None]) -> None:
    """Consume the outcome of an abandoned request's task (it was answered 503 already)."""
    if not task.cancelled() and task.exception() is not None:
        log.info("an abandoned request ended with %r", task.exception())


class BodySizeLimit:
    """Refuse request bodies over ``max_bytes`` with 413, counting while streaming."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        per_path: Mapping[str, int] | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        """Cap bodies at ``max_bytes``, or at ``per_path[path]`` for the paths named there; the
        whole body must arrive within ``timeout_s`` of the first read (408 otherwise: a client
        trickling bytes holds no worker for longer)."""
        self.app = app
        self.max_bytes = max_bytes
        self.per_path = dict(per_path or {})
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.per_path.get(scope.get("path", ""), self.max_bytes)
        detail = f"couldn't accept the request body: it is over the {max_bytes}-byte limit"
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _send_problem(
                        send, 400, "Bad request", "invalid Content-Length", "malformed"
                    )
                    return
                if declared > max_bytes:
                    await _send_problem(send, 413, "Payload too large", detail, "too-large")
                    return
        received = 0
        started = False
        rejected = False
        deadline: float | None = None

        async def counting_receive() -> Message:
            # Past the cap, answer 413 ourselves at once and tell the app the client has gone:
            # the route never sees more than ``max_bytes`` and nothing it sends afterwards is
            # written (the response has already been sent). Past the time bound, the same
            # with 408.
            nonlocal received, rejected, started, deadline
            if rejected:
                return {"type": "http.disconnect"}
            loop = asyncio.get_running_loop()
            if deadline is None:
                deadline = loop.time() + self.timeout_s
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                rejected = True
                if not started:
                    started = True
                    await _send_problem(
                        send,
                        408,
                        "Request timeout",
                        f"couldn't read the request body: it did not arrive within "
                        f"{self.timeout_s:g} s ({received} bytes received)",
                        "timeout",
                    )
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    rejected = True
                    if not started:
                        started = True
                        await _send_problem(send, 413, "Payload too large", detail, "too-large")
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if rejected:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counting_receive, guarded_send)


class RateLimiter:
    """A token bucket per client address, for write requests only. Thread-safe.

    ``check(client)`` returns 0 when the request may proceed, else the seconds to wait.
    """

    def __init__(self, per_minute: int, burst: int, max_clients: int = 100_000) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, client: str, now: float | None = None, cost: float = 1.0) -> float:
        """Take ``cost`` tokens (a batch of statements costs one per statement) from
        ``client``'s bucket and return 0, or take nothing and return the seconds until there
        are enough (a cost above the burst can never be paid: refused for a minute)."""
        moment = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(client, (self.burst, moment))
            tokens = min(self.burst, tokens + (moment - last) * self.rate)
            if tokens >= cost:
                self._buckets[client] = (tokens - cost, moment)
                self._evict_if_needed()
                return 0.0
            self._buckets[client] = (tokens, moment)
            if cost > self.burst:
                return 60.0
            return (cost - tokens) / self.rate

    def available(self, client: str, now: float | None = None) -> float:
        """The tokens ``client`` holds now (taking none)."""
        moment = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(client, (self.burst, moment))
            return min(self.burst, tokens + (moment - last) * self.rate)

    def spend(self, client: str, cost: float, now: float | None = None) -> None:
        """Take ``cost`` tokens from ``client``'s bucket whatever it holds: for work already
        done (signature checks of a refused statement). The bucket may go into debt, down to
        minus the burst, which must be earned back before :meth:`wait_for` allows more."""
        moment = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(client, (self.burst, moment))
            tokens = min(self.burst, tokens + (moment - last) * self.rate)
            self._buckets[client] = (max(-self.burst, tokens - cost), moment)
            self._evict_if_needed()

    def wait_for(self, client: str, cost: float, now: float | None = None) -> float:
        """The seconds until ``client`` holds ``cost`` tokens (0 if it does now; taking none)."""
        missing = cost - self.available(client, now)
        return 0.0 if missing <= 0 else missing / self.rate

    def _evict_if_needed(self) -> None:
        if len(self._buckets) > self.max_clients:
            # Drop the half that refilled longest ago: they are full buckets anyway.
            ordered = sorted(self._buckets.items(), key=lambda item: item[1][1])
            for key, _ in ordered[: len(ordered) // 2]:
                del self._buckets[key]


def rate_limited(client: str, wait: float, what: str) -> ProblemError:
    """The 429 problem for ``client``, who must wait ``wait`` seconds (from
    :meth:`RateLimiter.check`) before ``what`` is accepted; ``Retry-After`` in whole seconds,
    at least 1."""
    retry = str(max(1, int(wait + 0.999)))
    return ProblemError(
        429,
        "Too many requests",
        f"couldn't accept {what} from {client} now: retry in {retry} s",
        kind="rate-limited",
        headers={"Retry-After": retry},
    )


SIGNATURE_LINE = "\n\u2014 ".encode()
"""How a signed note's signature line begins (after the newline ending the line before)."""


def signature_lines(note: bytes) -> int:
    """How many signature lines ``note`` carries, counted without parsing it: the cost, in
    signature checks, of checking it (an upper bound: lines before the last blank line count
    too, and are refused as malformed when parsed)."""
    return note.count(SIGNATURE_LINE)


MAX_ACCOUNTED_KEYS = 64
"""Signature lines of one statement whose keys are charged separately (the rest count for the
client only)."""


def signature_accounts(client: str, note: bytes) -> dict[str, int]:
    """Who pays for checking ``note``'s signatures if it is refused, and how much (in
    signature checks): the client (``ip:<address>``) every line, and each key a line names
    (``key:<name> <key ID>``, read without parsing the note) its own lines — so neither many
    addresses with one key nor one address with many keys escapes the budget."""
    accounts = {f"ip:{client}": max(1, signature_lines(note))}
    _, _, signatures = note.rpartition(b"\n\n")
    for line in signatures.split(b"\n")[:MAX_ACCOUNTED_KEYS]:
        if not line.startswith(SIGNATURE_LINE[1:]):
            continue
        name, _, blob = line[len(SIGNATURE_LINE) - 1 :].partition(b" ")
        # The first 6 base64 characters carry the 4-byte key ID.
        key = "key:" + (name + b" " + blob[:6]).decode("utf-8", "replace")
        accounts[key] = accounts.get(key, 0) + 1
    return accounts


def is_write(scope: Scope) -> bool:
    """Whether a request is a write (rate limited)."""
    return scope.get("method", "GET") in _WRITE_METHODS


HEAD_TIMEOUT_ENV = "AMNESTY_HEADER_TIMEOUT_S"
"""The setting ``header_timeout_s`` as the server's protocol reads it (``amnesty serve`` sets
it for every worker process)."""


@functools.cache
def head_timeout_s() -> float:
    """The seconds a connection has to deliver a request's head (default 10)."""
    try:
        value = float(os.environ.get(HEAD_TIMEOUT_ENV, "10"))
    except ValueError:
        return 10.0
    return value if value > 0 else 10.0


class SlowClientProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol, with a bound on the time a connection may take to deliver a
    request's head (a client trickling header bytes, or connecting and sending nothing).

    The timer is armed when the connection opens and again when each response completes
    (waiting for the next request); when it fires with no request in progress, the connection
    is closed. A request in progress is bounded by :class:`BodySizeLimit` (its body) and
    :class:`RequestDeadline` (its answer) instead; an idle kept-alive connection by uvicorn's
    ``timeout_keep_alive``.
    """

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(head_timeout_s(), self._head_timed_out)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being served: bounded elsewhere
        if not self.transport.is_closing():
            self.transport.close()
