"""Request body caps enforced while streaming, and per-client write rate limiting.

FastAPI has no body limit of its own. :class:`BodySizeLimit` is ASGI middleware that refuses a
declared ``Content-Length`` above the cap at once and, for chunked bodies (no length, or a lying
one), counts bytes as they arrive and answers 413 the moment the cap is crossed, before the
route ever sees the body.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import PROBLEM_JSON, ProblemError, problem_document

_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH"})


async def _send_problem(send: Send, status: int, title: str, detail: str, kind: str) -> None:
    body = json.dumps(problem_document(status, title, detail, kind=kind)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodySizeLimit:
    """Refuse request bodies over ``max_bytes`` with 413, counting while streaming."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, per_path: Mapping[str, int] | None = None
    ) -> None:
        """Cap bodies at ``max_bytes``, or at ``per_path[path]`` for the paths named there."""
        self.app = app
        self.max_bytes = max_bytes
        self.per_path = dict(per_path or {})

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

        async def counting_receive() -> Message:
            # Past the cap, answer 413 ourselves at once and tell the app the client has gone:
            # the route never sees more than ``max_bytes`` and nothing it sends afterwards is
            # written (the response has already been sent).
            nonlocal received, rejected, started
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
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


def is_write(scope: Scope) -> bool:
    """Whether a request is a write (rate limited)."""
    return scope.get("method", "GET") in _WRITE_METHODS
