"""The HTTP transport (httpx): a tlog-tiles :class:`~ledger.verifier.sources.LogSource` over HTTP.

:class:`HttpLogSource` reads a log's checkpoint, tiles and JSON resources and posts statements;
it verifies nothing (callers do: the verifier, or :class:`~ledger.client.json_api.LedgerClient`).
Transport failures raise :class:`~ledger.errors.StorageError`, an error status from the server
:class:`RemoteError` (see :func:`raise_for_error`), an unparsable JSON answer
:class:`~ledger.errors.MalformedError`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import httpx

from ledger.errors import LedgerError, MalformedError, StorageError
from ledger.tlog.tiles import TileID

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


_GET_RETRY_DELAYS_S = (0.2, 0.6)
_GET_RETRYABLE = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError)


class HttpLogSource:
    """Reads a log's checkpoint and tiles over HTTP from ``base_url`` (a tlog-tiles prefix)."""

    def __init__(self, base_url: str, *, client: httpx.Client | None = None, timeout: float = 120):
        self.base_url = base_url.rstrip("/")
        self._client = client or httpx.Client(
            timeout=timeout, headers={"User-Agent": USER_AGENT}, follow_redirects=False
        )

    def _fetch(self, path: str, what: str, params: dict[str, Any] | None = None) -> httpx.Response:
        """GET ``path`` under the base URL, retried (after 0.2 s, then 0.6 s) when the
        connection failed before any answer came: a GET is idempotent, and a kept-alive
        connection the server closed just as it was reused fails this way under load. A
        timeout or an answer, even an error status, is never retried."""
        url = f"{self.base_url}/{path}"
        for delay in _GET_RETRY_DELAYS_S:
            try:
                return self._client.get(url, params=params)
            except _GET_RETRYABLE:
                time.sleep(delay)
            except httpx.HTTPError as exc:
                raise StorageError(f"couldn't {what} from {self.base_url}: {exc}") from exc
        try:
            return self._client.get(url, params=params)
        except httpx.HTTPError as exc:
            raise StorageError(f"couldn't {what} from {self.base_url}: {exc}") from exc

    def _get(self, path: str, what: str) -> bytes:
        response = self._fetch(path, what)
        raise_for_error(response, what)
        return response.content

    def checkpoint(self) -> bytes:
        return self._get("checkpoint", "fetch the checkpoint")

    def tile(self, tile: TileID) -> bytes:
        return self._get(tile.path(), f"fetch {tile.path()}")

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
        try:
            response = self._client.post(
                f"{self.base_url}/v1/statements",
                content=note,
                headers={"Content-Type": "text/plain; charset=utf-8"},
            )
        except httpx.HTTPError as exc:
            raise StorageError(f"couldn't submit to {self.base_url}: {exc}") from exc
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
        try:
            response = self._client.post(f"{self.base_url}/v1/statements/batch", json=body)
        except httpx.HTTPError as exc:
            raise StorageError(f"couldn't submit to {self.base_url}: {exc}") from exc
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
