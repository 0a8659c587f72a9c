"""The MCP server's tools, as text: each answer labelled with what was verified here.

:class:`LedgerTools` implements every tool of :mod:`ledger.client.mcp_server` over one
:class:`~ledger.client.json_api.LedgerClient`. An answer is one ``[label]`` line — ``[verified:
…]`` only for what this process verified against the pinned log key (by proofs, or from the
client's local verified replica), ``[UNVERIFIED: …]`` for anything taken on the server's word —
then a blank line, then either a JSON document carrying the same ``verified`` flag and label
(``ensure_ascii``: no character from the log in it can break, reorder or hide a line) or the
precedent report rendered by :func:`ledger.protocol.audit.render_precedent_text`, which quotes
every string from the log. Anything else from the log or the server shown as text — an error's
cause, the service's guide — is quoted with :func:`ledger.protocol.quoting.quote`.

Contract: a method returns the answer text, or raises
:class:`~mcp.server.mcpserver.exceptions.ToolError` saying what went wrong.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from mcp.server.mcpserver.exceptions import ToolError

from ledger.client.answers import Provenance, VerifiedEntry, VerifiedHead
from ledger.client.json_api import LedgerClient
from ledger.errors import LedgerError
from ledger.protocol.due import render_due_text
from ledger.protocol.quoting import quote
from ledger.statements.statement import parse_statement, verified_signers
from ledger.tlog.merkle import leaf_hash
from ledger.tlog.tlogproof import open_tlog_proof, parse_tlog_proof

T = TypeVar("T")

CriterionClaims = dict[str, dict[str, Any]]

_PROOF_CHECKED = (
    "the entry's inclusion proof and its C2SP tlog-proof checked with the pinned log key"
)


def _head(head: VerifiedHead) -> dict[str, Any]:
    return {
        "origin": head.origin,
        "size": head.size,
        "root_hash": base64.b64encode(head.root_hash).decode(),
        "signed_checkpoint_size": head.checkpoint.size,
    }


def _entry(entry: VerifiedEntry) -> dict[str, Any]:
    s = entry.statement
    return {
        "index": entry.index,
        "log_time_ms": entry.entry.log_time_ms,
        "leaf_hash": base64.b64encode(entry.leaf_hash).decode(),
        "statement_id": s.statement_id.hex(),
        "type": s.type,
        "signers": list(s.signers),
        "signatures_verified_for": sorted(entry.verified_signers),
        "time_ms": s.time_ms,
        "body": s.body,
    }


def _json(value: Any) -> str:
    """JSON with every non-ASCII character escaped: no line separator, bidi control or
    invisible character from the log reaches the reader raw."""
    return json.dumps(value, indent=2, ensure_ascii=True, sort_keys=True)


def answer(label: str, body: str) -> str:
    """An answer: its ``[label]`` line, a blank line, then ``body``."""
    return f"[{label}]\n\n{body}"


def labelled(label: str, document: dict[str, Any], *, verified: bool) -> str:
    """An answer whose body is ``document`` as JSON, with ``verified`` and ``provenance``
    (the label) in it too."""
    return answer(label, _json({"verified": verified, "provenance": label, **document}))


def _provenanced(provenance: Provenance, document: dict[str, Any]) -> str:
    return labelled(provenance.label, document, verified=provenance.verified)


class LedgerTools:
    """The tools' implementations, over one client (serialised: the client is not
    thread-safe, and it keeps the trusted checkpoint and the replica)."""

    def __init__(self, client: LedgerClient) -> None:
        self.client = client
        self._lock = threading.Lock()

    def _call(self, action: str, fn: Callable[[], T]) -> T:
        with self._lock:
            try:
                return fn()
            except LedgerError as exc:
                raise ToolError(f"couldn't {action}: {quote(str(exc))}") from exc

    def log_info(self) -> str:
        def run() -> str:
            checkpoint, status = self.client.sync(self.client.max_catch_up)
            state = self.client.replica.state_path
            return labelled(
                "verified: the checkpoint's signature with the pinned log key, and its "
                "consistency with every checkpoint seen before",
                {
                    "service": self.client.base_url,
                    "origin": self.client.origin,
                    "pinned_log_vkey": self.client.log_key.vkey(),
                    "latest_verified_checkpoint": {
                        "size": checkpoint.size,
                        "root_hash": base64.b64encode(checkpoint.root_hash).decode(),
                        "note": (self.client.last_checkpoint or b"").decode("utf-8"),
                    },
                    "local_replica": {
                        "verified_entries": status.verified_size,
                        "caught_up": status.caught_up,
                        "catching_up_in_background": status.catching_up,
                        "checked_so_far": status.checked_size,
                        "state_file": None if state is None else str(state),
                    },
                },
                verified=True,
            )

        return self._call("read the log", run)

    def offer(self) -> str:
        def run() -> str:
            offer = self.client.offer()
            return _provenanced(
                offer.provenance,
                {
                    "terms_from": "the signed entry that published them, whose inclusion in "
                    "the log's signed checkpoint was verified",
                    "entry_checkpoint": _head(offer.entry.head),
                    "version": offer.version,
                    "in_force": offer.in_force,
                    "entry_index": offer.entry.index,
                    "published_ms": offer.entry.entry.log_time_ms,
                    "signed_by": sorted(offer.entry.verified_signers),
                    "terms": offer.terms.model_dump(mode="json"),
                },
            )

        return self._call("read the offer", run)

    def offers(self) -> str:
        def run() -> str:
            history = self.client.offers()
            return _provenanced(
                history.provenance,
                {
                    "checkpoint": _head(history.head),
                    "in_force_version": history.in_force_version,
                    "versions": [
                        {
                            "version": v.version,
                            "entry_index": v.entry.index,
                            "kind": v.kind,
                            "in_force": v.in_force,
                            "withdrawn_by": v.withdrawn_by,
                            "changes": v.changes,
                        }
                        for v in history.versions
                    ],
                    "diffs": list(history.diffs),
                    "diffs_from": "computed here from the signed terms of each version",
                },
            )

        return self._call("read the offer versions", run)

    def precedent(self, at: int | None, recompute: bool, fmt: str) -> str:
        def run() -> str:
            if fmt == "summary" and at is None and not recompute:
                summary = self.client.precedent_summary()
                return _provenanced(
                    summary.provenance,
                    {"checkpoint": _head(summary.head), "summary": summary.summary},
                )
            precedent = self.client.precedent(at, recompute=recompute)
            label = precedent.provenance.label
            if precedent.recomputed:
                label += "; the server's own report was fetched too, and it is identical"
            if fmt == "text":
                return answer(label, precedent.text())
            return labelled(
                label,
                {"checkpoint": _head(precedent.head), "report": precedent.report},
                verified=precedent.verified,
            )

        return self._call("read the precedent", run)

    def due(self, fmt: str) -> str:
        def run() -> str:
            due = self.client.due()
            if fmt == "text":
                return answer(due.provenance.label, render_due_text(due.report))
            return _provenanced(due.provenance, {"checkpoint": _head(due.head), "due": due.report})

        return self._call("read what is due", run)

    def precedent_page(
        self, part: str, cursor: str | None, limit: int, at: int | None = None
    ) -> str:
        def run() -> str:
            if part == "applications":
                page = self.client.precedent_applications(cursor, limit, at=at)
            else:
                page = self.client.precedent_subjects(cursor, limit, at=at)
            return _provenanced(
                page.provenance,
                {
                    "checkpoint": _head(page.head),
                    "audit_time_ms": page.audit_time_ms,
                    "total": page.total,
                    part: list(page.items),
                    "next_cursor": page.next_cursor,
                },
            )

        return self._call(f"read the precedent's {part}", run)

    def subject(self, key: str) -> str:
        def run() -> str:
            subject = self.client.subject(key, verify_timeline=True)
            return _provenanced(
                subject.provenance, {"checkpoint": _head(subject.head), "subject": subject.view}
            )

        return self._call(f"read subject {quote(key)}", run)

    def entry(self, index: int) -> str:
        def run() -> str:
            entry = self.client.entry(index)
            proof = self.client.tlog_proof(index).decode("utf-8")
            return labelled(
                f"verified: {_PROOF_CHECKED}",
                {
                    "checkpoint": _head(entry.head),
                    "entry": _entry(entry),
                    "entry_b64": base64.b64encode(entry.data).decode(),
                    "tlog_proof": proof,
                },
                verified=True,
            )

        return self._call(f"read entry {index}", run)

    def proof(self, index: int) -> str:
        def run() -> str:
            proof = self.client.tlog_proof(index).decode("utf-8")
            return labelled(
                f"verified: this C2SP tlog-proof of entry {index} checks against the log's key "
                f"{self.client.log_key.vkey()}",
                {"index": index, "tlog_proof": proof},
                verified=True,
            )

        return self._call(f"prove entry {index}", run)

    def verify_tlog_proof(self, tlog_proof: str, entry_b64: str) -> str:
        def run() -> str:
            try:
                entry = base64.b64decode(entry_b64, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ToolError(f"couldn't read entry_b64: {quote(str(exc))}") from exc
            parsed = parse_tlog_proof(tlog_proof.encode("utf-8"))
            checkpoint = open_tlog_proof(parsed, leaf_hash(entry), self.client.log_key)
            result: dict[str, Any] = {
                "valid": True,
                "offline": f"entry {parsed.index} is in the tree of size {checkpoint.size} "
                "signed by the log's key",
            }
            label = "verified: the proof checks offline with the pinned log key"
            try:
                self.client.verify_tlog_proof(tlog_proof.encode("utf-8"), entry)
                result["consistent_with_latest"] = True
                label += ", and its checkpoint is consistent with the log as it is now"
            except LedgerError as exc:
                result["consistent_with_latest"] = False
                result["consistency_problem"] = str(exc)
                label += "; its checkpoint is NOT consistent with the log the server shows now"
            return labelled(label, result, verified=True)

        return self._call("verify the tlog-proof", run)

    def verify_statement(self, statement: str) -> str:
        def run() -> str:
            signed = parse_statement(statement.encode("utf-8"))
            s = signed.statement
            result: dict[str, Any] = {
                "statement_id": s.statement_id.hex(),
                "type": s.type,
                "origin": s.origin,
                "for_this_log": s.origin == self.client.origin,
                "signers": list(s.signers),
                "signatures_verified_for": sorted(verified_signers(signed)),
            }
            found = self.client.find_statement(s.statement_id)
            result["logged"] = isinstance(found, VerifiedEntry)
            if not isinstance(found, VerifiedEntry):
                return labelled(
                    "UNVERIFIED: the signatures were checked here, but that the statement is "
                    "not logged is the server's word (an absence cannot be proven here)",
                    result,
                    verified=False,
                )
            result["entry"] = _entry(found)
            result["checkpoint"] = _head(found.head)
            return labelled(
                f"verified: the signatures checked here; logged at entry {found.index}, its "
                "inclusion proof checked with the pinned log key",
                result,
                verified=True,
            )

        return self._call("verify the statement", run)

    def prepare_application(self, vkey: str, name: str, claims: CriterionClaims) -> str:
        def run() -> str:
            prepared = self.client.prepare_application(vkey, name, claims)
            offer = prepared.offer.provenance
            label = (
                "verified: the statement is exactly what you asked for, and it applies under "
                "the offer in force, " + offer.how
                if offer.verified
                else "UNVERIFIED: the statement is exactly what you asked for, but that the "
                "offer it applies under is the one in force is the server's word; " + offer.how
            )
            return labelled(
                label,
                {
                    "statement": prepared.text,
                    "statement_id": prepared.statement.statement_id.hex(),
                    "offer_version": prepared.offer.version,
                    "offer_entry_index": prepared.offer.entry.index,
                    "next": "Sign `statement` with your private key where you run "
                    "(ledger.statements.statement.sign_statement, or `amnesty sign FILE --key "
                    "KEY`), then call submit_statement with the signed note. Never send your "
                    "private key.",
                },
                verified=offer.verified,
            )

        return self._call("prepare the application", run)

    def submit(self, signed_statement: str) -> str:
        def run() -> str:
            receipt = self.client.submit(signed_statement.encode("utf-8"))
            return labelled(
                "verified: the receipt's tlog-proof checked with the pinned log key; the "
                "entry holds your statement",
                {
                    "index": receipt.index,
                    "duplicate": receipt.duplicate,
                    "checkpoint_size": receipt.checkpoint.size,
                    "tlog_proof": receipt.tlog_proof.decode("utf-8"),
                    "keep": "Keep the tlog-proof: it proves, offline, that your statement is in "
                    "the log.",
                },
                verified=True,
            )

        return self._call("submit the statement", run)

    def llms_txt(self) -> str:
        def run() -> str:
            guide = self.client.llms_txt()
            return answer(guide.label, quote(guide.value))

        return self._call("read llms.txt", run)
