"""The HTTP transport (httpx): a tlog-tiles :class:`~ledger.verifier.sources.LogSource` over HTTP.

:class:`HttpLogSource` reads a log's checkpoint, tiles and JSON resources and posts statements;
it verifies nothing (callers do: the verifier, or :class:`~ledger.client.json_api.LedgerClient`).
Transport failures raise :class:`~ledger.errors.StorageError` (an answer over its size cap or
not whole within the deadline too), an error status from the server :class:`RemoteError` (see
:func:`raise_for_error`), an unparsable JSON answer :class:`~ledger.errors.MalformedError`.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Sequence
from typing import Any

import httpx

from ledger.errors import LedgerError, MalformedError, StorageError
from ledger.tlog.tiles import TileID
from ledger.verifier.sources import MAX_CHECKPOINT_BYTES, tile_limit

USER_AGENT = "amnesty-ledger-client/0.1"


class RemoteError(LedgerError):
    """The server answered with an error (its problem document's detail is in the message)."""

    def __init__(self, message: str, status: int, problem: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.problem = problem or {}


def remote_error(response: httpx.Response, what: str, *, peer: str = "server") -> RemoteError:
    """The :class:`RemoteError` for an error ``response`` from ``peer`` ("server", "witness"),
    with the problem document's detail (or the start of the body) in the message; ``what`` is
    the action that failed ("fetch the checkpoint")."""
    problem: dict[str, Any] | None = None
    detail = response.text[:500]
    try:
        parsed = response.json()
        if isinstance(parsed, dict):
            problem = parsed
            detail = str(parsed.get("detail", detail))
    except ValueError:
        pass
    return RemoteError(
        f"couldn't {what}: the {peer} answered {response.status_code}: {detail}",
        response.status_code,
        problem,
    )


def raise_for_error(response: httpx.Response, what: str) -> None:
    """Raise :func:`remote_error` if ``response`` has an error status (400 or above)."""
    if response.status_code >= 400:
        raise remote_error(response, what)


MAX_DOCUMENT_BYTES = 256 << 20
"""The largest JSON or text answer read from a server (a full precedent report of a
million-entry log is about 180 MB)."""
RETRIES = 2
"""Retries of one request after the first attempt (see :meth:`HttpLogSource._request`)."""
BACKOFF_S = 0.2
"""The first retry's base delay; each later one triples it, with full jitter."""
MAX_RETRY_AFTER_S = 10.0
"""The longest ``Retry-After`` a request waits out before retrying; a longer one is answered."""
_RETRYABLE = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError)
"""Failures of the connection before any answer came (nothing was processed, or an idempotent
request may be sent again)."""


def retry_after_s(response: httpx.Response) -> float | None:
    """The seconds a 429 or 503 ``response`` asks to wait (``Retry-After``: delay seconds or
    an HTTP date), or None: another status, no or unreadable header."""
    if response.status_code not in (429, 503):
        return None
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdecimal():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff_s(attempt: int) -> float:
    """The delay before retry ``attempt`` (0-based) after a failed connection: exponential
    (0.2 s, 0.6 s, 1.8 s, …) with full jitter, so that clients failed by one outage do not all
    come back at the same instant."""
    return random.uniform(0, BACKOFF_S * 3**attempt) + BACKOFF_S / 2


class HttpLogSource:
    """Reads a log's checkpoint and tiles over HTTP from ``base_url`` (a tlog-tiles prefix).

    Everything read from the server is bounded: in size (a checkpoint at most
    :data:`MAX_CHECKPOINT_BYTES`, a tile at most what its width allows, any other answer at
    most ``max_document_bytes``), refused as soon as the bound is crossed, and in time (each
    request, retries included, within ``deadline_s``; each read within the client's
    ``timeout``). A server that is overloaded (429/503 with ``Retry-After``) or whose connection
    failed before answering is retried at most :data:`RETRIES` times, with jittered backoff.
    """

    def __init__(
        self,
        base_url: str,
        *,
        client: httpx.Client | None = None,
        timeout: float = 120,
        deadline_s: float = 300,
        max_document_bytes: int = MAX_DOCUMENT_BYTES,
    ):
        self.base_url = base_url.rstrip("/")
        self._client = client or httpx.Client(
            timeout=timeout, headers={"User-Agent": USER_AGENT}, follow_redirects=False
        )
        self.deadline_s = deadline_s
        self.max_document_bytes = max_document_bytes

    def _request(
        self, method: str, url: str, what: str, limit: int, **kwargs: Any
    ) -> httpx.Response:
        """Send one request and read its answer, at most ``limit`` bytes, within the deadline.

        Retried (at most :data:`RETRIES` times) when the connection failed before any answer
        came — every request this source sends is idempotent: reads, and submissions of a
        statement that is logged at most once (a repeat gets its receipt) — with jittered
        exponential backoff, and when the server answered 429 or 503 with a ``Retry-After`` of
        at most :data:`MAX_RETRY_AFTER_S`, after waiting it out (plus jitter). A timeout, an
        answer too large, or any other answer (error statuses included) is never retried.
        """
        deadline = time.monotonic() + self.deadline_s
        for attempt in range(RETRIES + 1):
            last = attempt == RETRIES
            try:
                response = self._read(method, url, what, limit, deadline, **kwargs)
            except _RETRYABLE as exc:
                delay = backoff_s(attempt)
                if last or time.monotonic() + delay > deadline:
                    raise StorageError(f"couldn't {what} from {self.base_url}: {exc}") from exc
                time.sleep(delay)
                continue
            except httpx.HTTPError as exc:
                raise StorageError(f"couldn't {what} from {self.base_url}: {exc}") from exc
            wait = retry_after_s(response)
            if wait is None or wait > MAX_RETRY_AFTER_S or last:
                return response
            delay = wait + random.uniform(0, BACKOFF_S)
            if time.monotonic() + delay > deadline:
                return response
            time.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _read(
        self, method: str, url: str, what: str, limit: int, deadline: float, **kwargs: Any
    ) -> httpx.Response:
        """One attempt: the answer read whole, refused past ``limit`` bytes or ``deadline``."""
        with self._client.stream(method, url, **kwargs) as streamed:
            declared = streamed.headers.get("content-length", "")
            if declared.isdecimal() and int(declared) > limit:
                raise StorageError(
                    f"couldn't {what} from {self.base_url}: the answer is {declared} bytes, "
                    f"over the {limit}-byte limit"
                )
            chunks: list[bytes] = []
            received = 0
            for chunk in streamed.iter_bytes():
                received += len(chunk)
                if received > limit:
                    raise StorageError(
                        f"couldn't {what} from {self.base_url}: the answer is over the "
                        f"{limit}-byte limit"
                    )
                if time.monotonic() > deadline:
                    raise StorageError(
                        f"couldn't {what} from {self.base_url}: no whole answer within "
                        f"{self.deadline_s:g} s ({received} bytes so far)"
                    )
                chunks.append(chunk)
            # The body is decoded already: drop what described its encoded form.
            headers = [
                (k, v)
                for k, v in streamed.headers.multi_items()
                if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
            ]
            return httpx.Response(
                streamed.status_code,
                headers=headers,
                content=b"".join(chunks),
                request=streamed.request,
            )

    def _fetch(
        self, path: str, what: str, params: dict[str, Any] | None = None, *, limit: int = 0
    ) -> httpx.Response:
        """GET ``path`` under the base URL (see :meth:`_request`); ``limit`` defaults to
        ``max_document_bytes``."""
        url = f"{self.base_url}/{path}"
        return self._request("GET", url, what, limit or self.max_document_bytes, params=params)

    def _get(self, path: str, what: str, limit: int = 0) -> bytes:
        response = self._fetch(path, what, limit=limit)
        raise_for_error(response, what)
        return response.content

    def checkpoint(self) -> bytes:
        return self._get("checkpoint", "fetch the checkpoint", MAX_CHECKPOINT_BYTES)

    def tile(self, tile: TileID) -> bytes:
        return self._get(tile.path(), f"fetch {tile.path()}", tile_limit(tile))

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET a JSON resource under the base URL."""
        response = self._fetch(path.lstrip("/"), f"fetch {path}", params)
        raise_for_error(response, f"fetch {path}")
        try:
            return response.json()
        except ValueError as exc:
            raise MalformedError(f"couldn't parse {path} from {self.base_url}: {exc}") from exc

    def get_text(self, path: str, params: dict[str, Any] | None = None) -> str:
        """GET a text resource under the base URL."""
        return self._get(path.lstrip("/") + _query(params), f"fetch {path}").decode("utf-8")

    def post_statement(self, note: bytes) -> dict[str, Any]:
        """Submit a signed statement; returns the receipt JSON (index, entry, tlog-proof)."""
        response = self._request(
            "POST",
            f"{self.base_url}/v1/statements",
            "submit the statement",
            self.max_document_bytes,
            content=note,
            headers={"Content-Type": "text/plain; charset=utf-8"},
        )
        raise_for_error(response, "submit the statement")
        result: dict[str, Any] = response.json()
        return result

    def post_statements(self, notes: Sequence[bytes]) -> dict[str, Any]:
        """Submit many signed statements in one request (``POST /v1/statements/batch``);
        returns the JSON with one outcome per statement, in order."""
        try:
            body = {"statements": [note.decode("utf-8") for note in notes]}
        except UnicodeDecodeError as exc:
            raise MalformedError(f"couldn't submit: a statement is not UTF-8 ({exc})") from None
        response = self._request(
            "POST",
            f"{self.base_url}/v1/statements/batch",
            "submit the statements",
            self.max_document_bytes,
            json=body,
        )
        raise_for_error(response, "submit the statements")
        result: dict[str, Any] = response.json()
        return result

    def close(self) -> None:
        """Close the underlying connection pool."""
        self._client.close()


def _query(params: dict[str, Any] | None) -> str:
    if not params:
        return ""
    return "?" + str(httpx.QueryParams({k: v for k, v in params.items() if v is not None}))
