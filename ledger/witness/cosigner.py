"""The log side of witnessing: ask each configured witness to cosign the latest checkpoint.

After the sequencer has durably committed a checkpoint, the cosigner (a background thread of the
service, never in the sequencer's or a submitter's path) asks every witness to cosign it
(C2SP tlog-witness), with a consistency proof from the size that witness last cosigned, and keeps
the returned cosignature lines beside the log's own checkpoint (the store's ``cosignatures``).
``LogView.witnessed`` merges them into the note that ``/checkpoint`` and tlog-proof files serve:
the text is unchanged, so the log signature and every proof stay valid.

The HTTP request itself is an adapter (``ledger.witness.client.request_cosignature``) passed in
as :data:`RequestCosignature`, so this module does no I/O of its own but through the store.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ledger.errors import LedgerError
from ledger.server.logview import LogView
from ledger.tlog.note import NoteSignature, VerifierKey

log = logging.getLogger("ledger.witness.cosigner")

ProveFunction = Callable[[int], list[bytes]]
RequestCosignature = Callable[
    [str, VerifierKey, bytes, int, Sequence[bytes], ProveFunction], NoteSignature
]
"""(witness URL, witness key, checkpoint note, old size, proof, prove) -> the verified line."""


@dataclass(frozen=True, slots=True)
class WitnessEndpoint:
    """A witness to ask: its submission URL prefix and its cosignature (0x04) vkey."""

    url: str
    key: VerifierKey

    @classmethod
    def parse(cls, spec: str) -> WitnessEndpoint:
        """Parse ``"<vkey> <url>"`` (the order of a tlog-policy ``witness`` line's last fields)."""
        fields = spec.split()
        if len(fields) != 2:
            raise LedgerError(f"couldn't parse witness {spec!r}: want '<vkey> <url>'")
        return cls(url=fields[1].rstrip("/"), key=VerifierKey.parse(fields[0]))


class Cosigner:
    """Keeps the latest checkpoint cosigned by every reachable witness.

    :meth:`cosign_latest` does one round (tests call it directly); :meth:`start` runs rounds in a
    daemon thread every ``interval_s`` seconds. ``known`` remembers, per witness, the size it last
    cosigned (0 after a restart: the witness's 409 tells the real size and the request is retried
    with a proof from there).
    """

    def __init__(
        self,
        view: LogView,
        witnesses: Sequence[WitnessEndpoint],
        request: RequestCosignature,
        *,
        interval_s: float = 0.5,
    ) -> None:
        self.view = view
        self.witnesses = tuple(witnesses)
        self.request = request
        self.interval_s = interval_s
        self.known: dict[str, int] = {w.key.vkey(): 0 for w in self.witnesses}
        self.failures: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def cosign_latest(self) -> int:
        """Ask every witness that has not cosigned the latest checkpoint; return how many did."""
        signed = self.view.latest()
        size = signed.size
        done = 0
        if size == 0:
            return 0  # an empty log has nothing to witness
        for witness in self.witnesses:
            name = witness.key.vkey()
            old = self.known[name]
            if old == size:
                continue
            try:
                proof = self.view.consistency_proof(old, size) if 0 < old <= size else []
                line = self.request(
                    witness.url,
                    witness.key,
                    signed.note,
                    old,
                    proof,
                    lambda m: self.view.consistency_proof(m, size),
                )
            except LedgerError as exc:
                # Logged and retried with the next round; a conflicting root is an incident.
                self.failures[name] = str(exc)
                log.warning("witness %s did not cosign size %d: %s", witness.url, size, exc)
                continue
            self.view.store.add_cosignature(size, name, line.line())
            self.known[name] = size
            self.failures.pop(name, None)
            done += 1
        return done

    def start(self) -> None:
        """Run rounds in a daemon thread until :meth:`stop`."""
        if self._thread is None and self.witnesses:
            self._thread = threading.Thread(target=self._run, name="cosigner", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread after its current round."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.cosign_latest()
            except Exception:  # the cosigner must never take the service down
                log.exception("cosigning round failed")
