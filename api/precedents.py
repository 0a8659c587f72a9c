"""Computed precedent reports, kept so that repeated reads don't recompute them.

:class:`Precedent` is a report with the tree head it names and its renderings (made lazily,
once); :class:`PrecedentCache` keeps the last few by (size, audit time) and the latest default
one, which :meth:`~api.service.LedgerService.precedent` reuses for :data:`PRECEDENT_FRESH_S`
while the log does not grow (on a large log a report takes about a second to compute).

Invariant: a cached report's data is never changed (only its renderings are filled in, once),
and it is keyed by everything it depends on (the tree size and the audit time): a report judged
"now" names its own audit time, so one reused within the minute is still exactly the report of
the time it names.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from api.heads import TreeHeadInfo
from ledger.protocol.audit import render_precedent_text

PRECEDENT_FRESH_S = 60.0
"""How long the latest default precedent report (and summary) is reused at the same size."""
SYNC_BUDGET_S = 0.5
"""An answer judged "now" whose last computation took longer than this is served from the
last computation (naming its checkpoint) while the next one runs in the background."""
HEAVY_AT_ONCE = 1
"""How many computations that scan the derived state (reports, summaries) run at once."""
HEAVY_WAIT_S = 10.0
"""How long a request waits for its turn to compute before a 503 ``busy``."""


# -- precedent ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Precedent:
    """A computed precedent report, the tree head it names, and its renderings (lazily)."""

    report: dict[str, Any]
    head: TreeHeadInfo
    text: str | None = None
    body: bytes | None = None

    def rendered(self) -> str:
        """The plain-text rendering (:func:`render_precedent_text`), computed once."""
        if self.text is None:
            self.text = render_precedent_text(self.report)
        return self.text


class PrecedentCache:
    """The last few reports by (size, audit time), and the latest default one with the moment
    it was computed. Thread-safe."""

    def __init__(self, keep: int = 4) -> None:
        self._keep = keep
        self._items: OrderedDict[tuple[int, int], Precedent] = OrderedDict()
        self._latest: tuple[float, Precedent] | None = None
        self._lock = threading.Lock()

    def recent(self, size: int) -> Precedent | None:
        """The latest default report if it is of ``size`` and fresh (see PRECEDENT_FRESH_S)."""
        latest = self._latest
        if latest is None:
            return None
        computed, precedent = latest
        fresh = time.monotonic() - computed < PRECEDENT_FRESH_S
        return precedent if fresh and precedent.head.size == size else None

    def get(self, size: int, audit_time_ms: int) -> Precedent | None:
        with self._lock:
            found = self._items.get((size, audit_time_ms))
            if found is not None:
                self._items.move_to_end((size, audit_time_ms))
            return found

    def put(
        self, size: int, audit_time_ms: int, precedent: Precedent, *, latest: bool = False
    ) -> None:
        with self._lock:
            if latest:
                self._latest = (time.monotonic(), precedent)
            self._items[(size, audit_time_ms)] = precedent
            while len(self._items) > self._keep:
                self._items.popitem(last=False)
