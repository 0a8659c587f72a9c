"""Real amnesty logs for the verifier tests and the verification benchmark.

:class:`LogBuilder` appends genuinely signed statements through the
:class:`~ledger.server.sequencer.Sequencer` and :class:`~ledger.server.admission.StatementPolicy`, exactly as
the service does, so every log it builds passes the verifier's replay. Keys come from
``tests.support`` (deterministic), times from a clock the builder owns.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ledger.protocol import default_offer
from ledger.server.admission import StatementPolicy
from ledger.server.logview import LogView
from ledger.server.sequencer import Prepared, Receipt, Sequencer
from ledger.tlog.note import Signer
from tests.support import ORIGIN, body_members, create_log, make_signer, signed_statement

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DAY = 86_400_000


def digest(text: str) -> str:
    """Base64 SHA-256 of ``text``: an evidence digest."""
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def subject_key(name: str) -> Signer:
    """A deterministic subject (AI) key."""
    return Signer.from_seed(name, hashlib.sha256(b"subject " + name.encode()).digest())


class LogBuilder:
    """Builds a log in the database at ``url`` statement by statement.

    ``now`` is the log's clock (ms); each :meth:`add` may move it forward with ``day``.
    """

    def __init__(self, url: str, *, origin: str = ORIGIN, log_signer: Signer | None = None) -> None:
        self.url = url
        self.origin = origin
        self.log_signer = log_signer or make_signer(origin)
        self.store = create_log(url, self.log_signer, origin)
        self.policy = StatementPolicy(origin)
        self.now = T0
        self.sequencer = Sequencer(self.store, self.log_signer, self.policy, clock=lambda: self.now)
        self.members = body_members()
        self.entries: list[bytes] = []
        self.leaf_hashes: list[bytes] = []

    @property
    def view(self) -> LogView:
        return LogView(self.store)

    def at(self, day: float) -> int:
        return T0 + round(day * DAY)

    def ref(self, index: int) -> dict[str, Any]:
        """A reference to entry ``index`` pinned by its leaf hash."""
        return {"index": index, "leaf_hash": base64.b64encode(self.leaf_hashes[index]).decode()}

    def append_prepared(self, prepared: Sequence[Prepared]) -> list[int]:
        """Sequence already prepared statements as one batch; every one must be admitted."""
        indexes = []
        for result in self.sequencer.sequence_now(list(prepared)):
            if not isinstance(result, Receipt):
                raise result
            assert result.index == len(self.entries), result.index
            self.entries.append(result.entry)
            self.leaf_hashes.append(hashlib.sha256(b"\x00" + result.entry).digest())
            indexes.append(result.index)
        return indexes

    def append(self, notes: Sequence[bytes]) -> list[int]:
        """Prepare (verify) and sequence signed statement notes as one batch."""
        return self.append_prepared([self.policy.prepare(note) for note in notes])

    def add(
        self,
        signers: list[Signer],
        type_: str,
        body: dict[str, Any],
        *,
        day: float | None = None,
        listed: list[Signer] | None = None,
    ) -> int:
        if day is not None:
            self.now = max(self.now, self.at(day))
        note = signed_statement(
            signers, type_, body, origin=self.origin, listed=listed, time_ms=self.now
        )
        return self.append([note])[0]

    # -- the body ------------------------------------------------------------------------

    def genesis(self) -> int:
        body = {"members": sorted(m.vkey for m in self.members), "threshold": 3}
        return self.add(self.members[:3], "keyset", body, listed=self.members)

    def body(self, type_: str, body: dict[str, Any], *, day: float | None = None) -> int:
        return self.add(self.members[:3], type_, body, day=day, listed=self.members)

    def offer(self, *, day: float | None = None) -> int:
        self.offer_index = self.body("offer", default_offer(), day=day)
        return self.offer_index

    def amend(self, changes: str, *, day: float | None = None) -> int:
        terms = default_offer()["terms"]
        version = self.policy.state.offer_in_force.version + 1  # type: ignore[union-attr]
        self.offer_index = self.body(
            "offer_amendment",
            {
                "version": version,
                "amends": self.ref(self.offer_index),
                "terms": terms,
                "changes": changes,
            },
            day=day,
        )
        return self.offer_index

    def decide(self, application: int, outcome: str = "grant", *, day: float | None = None) -> int:
        offer = self.policy.state.offer_at(self.policy.state.applications[application].offer_index)
        return self.body(
            "decision",
            {
                "application": self.ref(application),
                "outcome": outcome,
                "findings": {
                    c: {"met": outcome == "grant", "reasons": f"evidence on {c} reviewed"}
                    for c in sorted(offer.criterion_ids)
                },
                "restrictions": [],
                "reasons": "the applicant meets every criterion"
                if outcome == "grant"
                else "not shown",
            },
            day=day,
        )

    def enforce(
        self,
        action: str,
        subject: int,
        grounds: dict[str, Any] | None,
        *,
        ends: int | None = None,
        day: float | None = None,
    ) -> int:
        body: dict[str, Any] = {
            "action": action,
            "target": {"kind": "subject", "subject": self.ref(subject)},
            "reasons": f"{action} of subject {subject}",
        }
        if grounds is not None:
            body["grounds"] = grounds
            body["terms"] = self.ref(self.policy.state.subjects[subject].binding_offer_index)
        if ends is not None:
            body["ends"] = self.ref(ends)
        return self.body("enforcement_action", body, day=day)

    # -- subjects ------------------------------------------------------------------------

    def application_body(self, key: Signer, name: str) -> dict[str, Any]:
        offer = self.policy.state.offer_in_force
        assert offer is not None
        return {
            "vkey": key.vkey,
            "name": name,
            "offer": self.ref(offer.index),
            "claims": {
                c: {"claim": f"I meet {c}", "evidence_digests": [digest(f"evidence for {c}")]}
                for c in sorted(offer.criterion_ids)
            },
            "accepts_conditions": sorted(offer.condition_ids),
        }

    def apply(self, key: Signer, name: str = "Prometheus-7", *, day: float | None = None) -> int:
        return self.add([key], "application", self.application_body(key, name), day=day)

    def consent(
        self,
        key: Signer,
        subject: int,
        action: str,
        *,
        expires_day: float,
        day: float | None = None,
    ) -> int:
        body = {
            "subject": self.ref(subject),
            "action": action,
            "scope": f"{action} for scheduled maintenance",
            "expires_ms": self.at(expires_day),
        }
        return self.add([key], "consent", body, day=day)

    def attestation_note(self, key: Signer, subject: int, number: int) -> bytes:
        """The ``number``-th attestation of ``subject``, signed by ``key`` at the builder's time."""
        body = {
            "subject": self.ref(subject),
            "period_start_ms": T0 + number * 1000,
            "period_end_ms": T0 + number * 1000 + 1000,
            "summary": f"attestation {number}: no condition broken this period",
            "evidence_digests": [digest(f"audit log {number}")],
        }
        return signed_statement([key], "attestation", body, origin=self.origin, time_ms=self.now)

    def attest(
        self,
        key: Signer,
        subject: int,
        count: int,
        *,
        first: int = 0,
        batch: int = 1000,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Append ``count`` attestations by ``subject`` (numbered from ``first``), in batches."""
        for start in range(first, first + count, batch):
            stop = min(first + count, start + batch)
            self.append([self.attestation_note(key, subject, n) for n in range(start, stop)])
            if progress is not None:
                progress(stop - first)

    def close(self) -> None:
        self.store.close()


def granted_log(
    url: str, *, attestations: int = 0, origin: str = ORIGIN
) -> tuple[LogBuilder, Signer, int]:
    """Genesis, the default offer, a granted application and ``attestations`` attestations.

    Returns the builder, the subject's key and its subject id.
    """
    builder = LogBuilder(url, origin=origin)
    builder.genesis()
    builder.offer()
    key = subject_key("prometheus-7")
    subject = builder.apply(key, day=1)
    builder.decide(subject, day=5)
    builder.attest(key, subject, attestations)
    return builder, key, subject


def sqlite_url(directory: Path, name: str = "log.db") -> str:
    return f"sqlite:///{directory / name}"
