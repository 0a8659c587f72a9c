"""The JSON API client (httpx): :class:`LedgerClient`, which says verified only about what it
verified.

It wraps the service's JSON API (``/v1/...``) and the log's tiles. What it returns is verified
here against the pinned log key, or labelled as the server's word (see
:mod:`ledger.client.answers`): per-entry answers by checkpoints and proofs
(:class:`~ledger.client.pinned.PinnedLog`); answers about the log's derived state — the
precedent, subjects, the offer in force — from the local verified replica
(:class:`~ledger.client.replica.VerifiedReplica`, computed by :mod:`ledger.client.views` and
:mod:`ledger.protocol.audit`), or from the server, labelled unverified, while the replica has
not caught up. The transport is :class:`~ledger.client.source.HttpLogSource`.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import httpx

from ledger.client.answers import (
    PreparedApplication,
    SubmissionRefused,
    Unverified,
    VerifiedReceipt,
    b64_field,
    object_field,
)
from ledger.client.derived import DerivedReads
from ledger.client.source import raise_for_error
from ledger.errors import MalformedError, StorageError, VerificationError
from ledger.statements.entry import LogEntry
from ledger.statements.statement import parse_statement, parse_unsigned_statement


class LedgerClient(DerivedReads):
    """A client for an amnesty-ledger service that says verified only about what it verified.

    Trust is the log's vkey, pinned at construction, and nothing the server says.

    **Checkpoints and entries** (every method): each checkpoint the server names is opened with
    the pinned key and checked consistent with the largest this client has verified before
    (RFC 9162 consistency proof; two that cannot be reconciled raise
    :class:`~ledger.client.answers.SplitViewError` carrying both as evidence); an answer's tree
    head is checked against its checkpoint; each returned entry's inclusion proof is checked,
    and what the server says about it must be what the entry says.

    **Derived state** (:meth:`precedent`, :meth:`precedent_summary`, the precedent pages,
    :meth:`subject`, which offer is in force in :meth:`offer` and :meth:`offers`, whether
    :meth:`entries` left an entry out): computed from the local verified replica
    (:class:`~ledger.client.replica.VerifiedReplica`, :attr:`replica`). Each such call first
    brings the replica to the latest checkpoint, verifying only the entries that are new since
    the last call — at most ``max_catch_up`` of them (None: no limit). When more are new, the
    replica verifies them in a background thread if ``background_catch_up``, or when
    :meth:`catch_up` is called; meanwhile the answer is the server's, and its ``provenance``
    says ``UNVERIFIED`` (:class:`~ledger.client.answers.Provenance`).

    The replica starts from ``trust_state``, else from the verifier's trust-state file
    ``state_path`` if it exists (the client writes it back as it advances, and on
    :meth:`close`), else from entry 0. ``workers`` is the verifier's: worker processes for large
    runs (None: its default, 0: none).

    Verification failures raise :class:`~ledger.errors.VerificationError` (or a subclass);
    server errors raise :class:`~ledger.client.source.RemoteError`; malformed answers
    :class:`MalformedError`. ``last_checkpoint`` is the newest verified checkpoint note: persist
    it and pass it back as ``trusted_checkpoint`` to keep checking consistency across runs. Not
    thread-safe (the replica's background thread is its own).
    """

    def prepare_application(
        self,
        vkey: str,
        name: str,
        claims: dict[str, dict[str, Any]],
        *,
        time_ms: int | None = None,
    ) -> PreparedApplication:
        """Ask the server for the unsigned application of ``vkey``; check that it is exactly
        the application asked for, under the offer in force (:meth:`offer`: verified as in
        force when its ``provenance`` says so), before returning it."""
        answer = self._post_json(
            "/v1/applications/prepare",
            {"vkey": vkey, "name": name, "claims": claims, "time_ms": time_ms},
        )
        head = self._pinned.head(answer.get("checkpoint"))
        text = answer.get("statement")
        if not isinstance(text, str):
            raise MalformedError("couldn't read the prepared application: no statement")
        statement = parse_unsigned_statement(text.encode("utf-8"))
        offer = self.offer()
        body = statement.body
        expected_offer = {
            "index": offer.entry.index,
            "leaf_hash": base64.b64encode(offer.entry.leaf_hash).decode(),
        }
        problems = [
            what
            for what, ok in (
                ("type", statement.type == "application"),
                ("origin", statement.origin == self.origin),
                ("signers", statement.signers == (vkey,)),
                ("vkey", body.get("vkey") == vkey),
                ("name", body.get("name") == name),
                ("claims", body.get("claims") == claims),
                ("offer", body.get("offer") == expected_offer),
                (
                    "accepts_conditions",
                    body.get("accepts_conditions") == sorted(offer.terms.condition_ids()),
                ),
                ("time_ms", time_ms is None or statement.time_ms == time_ms),
            )
            if not ok
        ]
        if problems:
            raise VerificationError(
                f"couldn't accept the prepared application: its {', '.join(problems)} "
                "differ from what was asked or from the offer in force"
            )
        return PreparedApplication(head, text, statement, offer)

    def submit(self, note: bytes) -> VerifiedReceipt:
        """Submit a signed statement; return the receipt once its tlog-proof, entry and
        checkpoint are verified (the entry must hold this very statement)."""
        return self._verified_receipt(
            note, object_field(self._source.post_statement(note), "receipt")
        )

    def submit_many(self, notes: Sequence[bytes]) -> list[VerifiedReceipt | SubmissionRefused]:
        """Submit many signed statements in one request; one outcome per statement, in order:
        a receipt verified as by :meth:`submit`, or the server's refusal of that statement. A
        receipt that does not verify raises (the server is misbehaving), as does an answer with
        another number of outcomes than statements sent."""
        answer = object_field(self._source.post_statements(notes), "batch receipts")
        results = answer.get("results")
        if not isinstance(results, list) or len(results) != len(notes):
            raise MalformedError(
                f"couldn't read the batch receipts: want {len(notes)} results in order"
            )
        out: list[VerifiedReceipt | SubmissionRefused] = []
        for position, (note, result) in enumerate(zip(notes, results, strict=True)):
            item = object_field(result, f"batch result {position}")
            receipt = item.get("receipt")
            if isinstance(receipt, dict):
                out.append(self._verified_receipt(note, receipt))
                continue
            problem = object_field(item.get("problem"), f"batch result {position}'s problem")
            status = item.get("status")
            if not isinstance(status, int) or status < 400:
                raise MalformedError(f"couldn't read batch result {position}: no receipt")
            out.append(SubmissionRefused(position, status, str(problem.get("detail", ""))))
        return out

    def _verified_receipt(self, note: bytes, answer: dict[str, Any]) -> VerifiedReceipt:
        """Check a receipt for ``note``: its tlog-proof against a checkpoint signed by the log,
        and that the entry holds this very statement at the index it names."""
        data = b64_field(answer.get("entry_b64"), "receipt entry")
        proof = answer.get("tlog_proof")
        if not isinstance(proof, str):
            raise MalformedError("couldn't read the receipt: no tlog_proof")
        proof_bytes = proof.encode("utf-8")
        checkpoint = self.verify_tlog_proof(proof_bytes, data)
        entry = LogEntry.decode(data)
        logged = parse_statement(entry.statement.encode("utf-8"))
        submitted = parse_statement(note)
        if logged.statement.statement_id != submitted.statement.statement_id:
            raise VerificationError(
                "couldn't verify the receipt: the logged entry holds another statement"
            )
        if answer.get("index") != entry.index:
            raise VerificationError("couldn't verify the receipt: its index is not the entry's")
        return VerifiedReceipt(
            index=entry.index,
            duplicate=answer.get("duplicate") is True,
            data=data,
            entry=entry,
            checkpoint=checkpoint,
            tlog_proof=proof_bytes,
        )

    def health(self) -> Unverified[dict[str, Any]]:
        """``/healthz`` as the server reports it (nothing in it can be verified; a 503 is
        returned, not raised)."""
        try:
            response = self._http.get(f"{self.base_url}/healthz")
        except httpx.HTTPError as exc:
            raise StorageError(f"couldn't reach {self.base_url}: {exc}") from exc
        if response.status_code not in (200, 503):
            raise_for_error(response, "check health")
        try:
            value = object_field(response.json(), "health")
        except ValueError as exc:
            raise MalformedError(f"couldn't parse the health answer: {exc}") from exc
        return Unverified(value, "the service's health report")
