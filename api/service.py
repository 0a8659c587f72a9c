"""The service's wiring: store, log view, protocol policy, sequencer — built in ``lifespan``."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from api.limits import RateLimiter
from api.settings import Settings
from ledger.errors import FatalError
from ledger.logview import LogView
from ledger.note import Signer
from ledger.sequencer import EntryPolicy, Prepared, Receipt, Sequencer
from ledger.storage.sql import SqlLogStore

log = logging.getLogger("api.service")


@dataclass
class LedgerService:
    """Everything a request handler needs; one per process."""

    settings: Settings
    store: SqlLogStore
    view: LogView
    policy: EntryPolicy
    sequencer: Sequencer | None
    limiter: RateLimiter
    started_ms: int = 0
    extra: dict[str, object] = field(default_factory=dict)

    async def submit(self, prepared: Prepared) -> Receipt:
        """Queue a prepared submission and wait until it is durably committed."""
        if self.sequencer is None:
            raise FatalError("couldn't accept submissions: this server is read-only (no log key)")
        future = self.sequencer.submit(prepared)
        return await asyncio.wrap_future(future)


def load_signer(settings: Settings, view: LogView) -> Signer | None:
    """The log's signer from its key file, checked against the log's vkey; None if read-only."""
    if settings.read_only:
        return None
    key_path = settings.key_path
    if key_path is None and view.identity.key_path:
        from pathlib import Path

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
