"""HTTP client adapter (httpx): a tlog-tiles :class:`~ledger.verify.LogSource` and the JSON API.

Everything this client returns that a checkpoint can vouch for is verified against the log's
key before it is returned (see :class:`LedgerClient`).
"""

from __future__ import annotations

from typing import Any

import httpx

from ledger.errors import LedgerError, MalformedError, StorageError
from ledger.tiles import TileID

USER_AGENT = "amnesty-ledger-client/0.1"


class RemoteError(LedgerError):
    """The server answered with an error (its problem document's detail is in the message)."""

    def __init__(self, message: str, status: int, problem: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.problem = problem or {}


def _raise_for(response: httpx.Response, what: str) -> None:
    if response.status_code < 400:
        return
    problem: dict[str, Any] | None = None
    detail = response.text[:500]
    try:
        parsed = response.json()
        if isinstance(parsed, dict):
            problem = parsed
            detail = str(parsed.get("detail", detail))
    except ValueError:
        pass
    raise RemoteError(
        f"couldn't {what}: the server answered {response.status_code}: {detail}",
        response.status_code,
        problem,
    )


class HttpLogSource:
    """Reads a log's checkpoint and tiles over HTTP from ``base_url`` (a tlog-tiles prefix)."""

    def __init__(self, base_url: str, *, client: httpx.Client | None = None, timeout: float = 30):
        self.base_url = base_url.rstrip("/")
        self._client = client or httpx.Client(
            timeout=timeout, headers={"User-Agent": USER_AGENT}, follow_redirects=False
        )

    def _get(self, path: str, what: str) -> bytes:
        try:
            response = self._client.get(f"{self.base_url}/{path}")
        except httpx.HTTPError as exc:
            raise StorageError(f"couldn't {what} from {self.base_url}: {exc}") from exc
        _raise_for(response, what)
        return response.content

    def checkpoint(self) -> bytes:
        return self._get("checkpoint", "fetch the checkpoint")

    def tile(self, tile: TileID) -> bytes:
        return self._get(tile.path(), f"fetch {tile.path()}")

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET a JSON resource under the base URL."""
        try:
            response = self._client.get(f"{self.base_url}/{path.lstrip('/')}", params=params)
        except httpx.HTTPError as exc:
            raise StorageError(f"couldn't fetch {path} from {self.base_url}: {exc}") from exc
        _raise_for(response, f"fetch {path}")
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
        _raise_for(response, "submit the statement")
        result: dict[str, Any] = response.json()
        return result

    def close(self) -> None:
        """Close the underlying connection pool."""
        self._client.close()


def _query(params: dict[str, Any] | None) -> str:
    if not params:
        return ""
    return "?" + str(httpx.QueryParams({k: v for k, v in params.items() if v is not None}))
