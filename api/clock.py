"""The server's wall clock, for the answers that are judged "now".

The protocol and the audit never read a clock (the audit time is a parameter); the log's
service reads one through these two functions: :func:`now_ms` (the health rule, when a
submission arrived, a default audit or statement time) and :func:`judged_now_ms`, for a
judgement, which may never precede what the log already holds. Caches measure freshness with
:func:`time.monotonic` instead, which setting the clock does not move.
"""

from __future__ import annotations

import time

from ledger.protocol.state import ProtocolState


def now_ms() -> int:
    """The server clock in milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


def judged_now_ms(state: ProtocolState) -> int:
    """The time answers "judged now" use: the server clock, or the last entry's log time if the
    clock is behind it (a judgement may never precede what the log already holds)."""
    last = state.log_time_ms_at(state.size - 1) if state.size else 0
    return max(now_ms(), last)
