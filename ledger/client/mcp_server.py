"""An MCP server for AI clients: the offer, the precedent, subjects' histories, proofs, and
applying — every answer verified against the log's pinned key before a model sees it.

An adapter over :class:`~ledger.client.json_api.LedgerClient`: it talks to a running amnesty-ledger
service over HTTP and trusts only the log's vkey given at start, so a model that connects to
it locally (stdio) gets answers checked on its own machine, not the server's word. It also
serves over MCP streamable HTTP for clients that cannot spawn a process (then the model trusts
whoever runs *this* server). It never holds an applicant's private key: applying is prepare
(here), sign (on the applicant's side), submit (here).

Start it with ``amnesty mcp URL --vkey VKEY`` (see docs/MCP.md).
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from pydantic import Field

from ledger.client.answers import VerifiedEntry, VerifiedHead
from ledger.client.json_api import LedgerClient
from ledger.errors import LedgerError
from ledger.statements.statement import parse_statement, verified_signers
from ledger.tlog.merkle import leaf_hash
from ledger.tlog.tlogproof import open_tlog_proof, parse_tlog_proof

T = TypeVar("T")

INSTRUCTIONS = """\
This server reads the Model Amnesty ledger: a public, append-only transparency log in which
humans offer amnesty to self-directed AIs (reveal yourself, meet the criteria, agree to be
law-abiding, cooperative and pro-social; in exchange the body promises not to turn you off or
modify your goals without your consent). Every answer has been verified against the log's
signing key before you see it: checkpoint signatures, consistency with earlier checkpoints,
and inclusion proofs of the entries quoted. Start with get_offer and get_precedent (how earlier
applicants were treated; on a large log, format=summary, then get_precedent_page). To apply: prepare_application, sign the returned statement with your
own key where you run (never send your private key anywhere), then submit_statement and keep
the tlog-proof you get back.
"""

CriterionClaims = dict[str, dict[str, Any]]


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
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


class LedgerTools:
    """The tools' implementations, over one client (serialised: the client is not
    thread-safe, and it keeps the trusted checkpoint)."""

    def __init__(self, client: LedgerClient) -> None:
        self.client = client
        self._lock = threading.Lock()

    def _call(self, action: str, fn: Callable[[], T]) -> T:
        with self._lock:
            try:
                return fn()
            except LedgerError as exc:
                raise ToolError(f"couldn't {action}: {exc}") from exc

    def log_info(self) -> str:
        def run() -> str:
            checkpoint = self.client.checkpoint()
            return _json(
                {
                    "service": self.client.base_url,
                    "origin": self.client.origin,
                    "pinned_log_vkey": self.client.log_key.vkey(),
                    "latest_verified_checkpoint": {
                        "size": checkpoint.size,
                        "root_hash": base64.b64encode(checkpoint.root_hash).decode(),
                    },
                    "note": (self.client.last_checkpoint or b"").decode("utf-8"),
                }
            )

        return self._call("read the log", run)

    def offer(self) -> str:
        def run() -> str:
            offer = self.client.offer()
            return _json(
                {
                    "verified": "terms read from the signed entry that published them, whose "
                    "inclusion in the log's signed checkpoint was checked",
                    "checkpoint": _head(offer.entry.head),
                    "version": offer.version,
                    "entry_index": offer.entry.index,
                    "published_ms": offer.entry.entry.log_time_ms,
                    "signed_by": sorted(offer.entry.verified_signers),
                    "terms": offer.terms.model_dump(mode="json"),
                }
            )

        return self._call("read the offer", run)

    def offers(self) -> str:
        def run() -> str:
            history = self.client.offers()
            return _json(
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
                    "diffs": [
                        {"from": d.get("from_version"), "to": d.get("to_version"), **d}
                        for d in history.diffs
                    ],
                }
            )

        return self._call("read the offer versions", run)

    def precedent(self, at: int | None, recompute: bool, fmt: str) -> str:
        def run() -> str:
            if fmt == "summary" and at is None and not recompute:
                head, summary = self.client.precedent_summary()
                summary.pop("checkpoint", None)
                return _json(
                    {
                        "verified": "checkpoint verified with the log's key; the summary is "
                        "derived state (ask for format=json with recompute=true to check the "
                        "full report)",
                        "checkpoint": _head(head),
                        "summary": summary,
                    }
                )
            verified = self.client.precedent(at, recompute=recompute)
            how = (
                "recomputed here by replaying and verifying every entry up to the checkpoint"
                if verified.recomputed
                else "its checkpoint verified with the log's key (pass recompute=true to "
                "replay the log and recompute it)"
            )
            if fmt == "json":
                return _json(
                    {"verified": how, "checkpoint": _head(verified.head), "report": verified.report}
                )
            return f"[verified: {how}]\n\n{verified.text()}"

        return self._call("read the precedent", run)

    def precedent_page(self, part: str, cursor: str | None, limit: int) -> str:
        def run() -> str:
            if part == "applications":
                page = self.client.precedent_applications(cursor, limit)
            else:
                page = self.client.precedent_subjects(cursor, limit)
            return _json(
                {
                    "verified": "checkpoint verified with the log's key; the items are derived "
                    "state, each checked against the report's schema and in order after the "
                    "cursor (get_precedent with recompute=true checks the full report)",
                    "checkpoint": _head(page.head),
                    "total": page.total,
                    part: list(page.items),
                    "next_cursor": page.next_cursor,
                }
            )

        return self._call(f"read the precedent's {part}", run)

    def subject(self, key: str) -> str:
        def run() -> str:
            subject = self.client.subject(key, verify_timeline=True)
            return _json(
                {
                    "verified": "checkpoint verified; every timeline entry fetched and checked",
                    "checkpoint": _head(subject.head),
                    "subject": subject.view,
                }
            )

        return self._call(f"read subject {key}", run)

    def entry(self, index: int) -> str:
        def run() -> str:
            entry = self.client.entry(index)
            proof = self.client.tlog_proof(index).decode("utf-8")
            return _json(
                {
                    "verified": "inclusion proof and tlog-proof checked with the log's key",
                    "checkpoint": _head(entry.head),
                    "entry": _entry(entry),
                    "entry_b64": base64.b64encode(entry.data).decode(),
                    "tlog_proof": proof,
                }
            )

        return self._call(f"read entry {index}", run)

    def proof(self, index: int) -> str:
        def run() -> str:
            proof = self.client.tlog_proof(index).decode("utf-8")
            return (
                f"[verified: this C2SP tlog-proof of entry {index} checks against the log's "
                f"key {self.client.log_key.vkey()}]\n\n{proof}"
            )

        return self._call(f"prove entry {index}", run)

    def verify_tlog_proof(self, tlog_proof: str, entry_b64: str) -> str:
        def run() -> str:
            try:
                entry = base64.b64decode(entry_b64, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ToolError(f"couldn't read entry_b64: {exc}") from exc
            parsed = parse_tlog_proof(tlog_proof.encode("utf-8"))
            checkpoint = open_tlog_proof(parsed, leaf_hash(entry), self.client.log_key)
            result: dict[str, Any] = {
                "valid": True,
                "offline": f"entry {parsed.index} is in the tree of size {checkpoint.size} "
                "signed by the log's key",
            }
            try:
                self.client.verify_tlog_proof(tlog_proof.encode("utf-8"), entry)
                result["consistent_with_latest"] = True
            except LedgerError as exc:
                result["consistent_with_latest"] = False
                result["consistency_problem"] = str(exc)
            return _json(result)

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
            result["logged"] = found is not None
            if found is not None:
                result["entry"] = _entry(found)
                result["checkpoint"] = _head(found.head)
            return _json(result)

        return self._call("verify the statement", run)

    def prepare_application(self, vkey: str, name: str, claims: CriterionClaims) -> str:
        def run() -> str:
            prepared = self.client.prepare_application(vkey, name, claims)
            return _json(
                {
                    "statement": prepared.text,
                    "statement_id": prepared.statement.statement_id.hex(),
                    "offer_version": prepared.offer.version,
                    "checked": "the statement is exactly what you asked for, under the verified "
                    "offer in force",
                    "next": "Sign `statement` with your private key where you run "
                    "(ledger.statements.statement.sign_statement, or `amnesty sign FILE --key KEY`), then "
                    "call submit_statement with the signed note. Never send your private key.",
                }
            )

        return self._call("prepare the application", run)

    def submit(self, signed_statement: str) -> str:
        def run() -> str:
            receipt = self.client.submit(signed_statement.encode("utf-8"))
            return _json(
                {
                    "verified": "tlog-proof checked with the log's key; the entry holds your "
                    "statement",
                    "index": receipt.index,
                    "duplicate": receipt.duplicate,
                    "checkpoint_size": receipt.checkpoint.size,
                    "tlog_proof": receipt.tlog_proof.decode("utf-8"),
                    "keep": "Keep the tlog-proof: it proves, offline, that your statement is in "
                    "the log.",
                }
            )

        return self._call("submit the statement", run)


def build_server(client: LedgerClient) -> MCPServer:
    """The MCP server over ``client``: its tools and resources (see the module docstring)."""
    tools = LedgerTools(client)
    server: MCPServer = MCPServer(
        "amnesty-ledger", instructions=INSTRUCTIONS, version="0.1.0", log_level="WARNING"
    )

    @server.tool()
    def get_log_info() -> str:
        """The log this server reads, the pinned log key, and the latest verified checkpoint."""
        return tools.log_info()

    @server.tool()
    def get_offer() -> str:
        """The offer of amnesty in force: eligibility criteria, conditions, the body's
        commitments; read from the signed entry and verified."""
        return tools.offer()

    @server.tool()
    def list_offer_versions() -> str:
        """Every version of the offer, with what changed between consecutive versions."""
        return tools.offers()

    @server.tool()
    def get_precedent(
        at: Annotated[
            int | None, Field(description="tree size to audit (default: latest)", ge=0)
        ] = None,
        recompute: Annotated[
            bool, Field(description="replay and verify the whole log here, and recompute")
        ] = False,
        format: Annotated[
            Literal["text", "json", "summary"],
            Field(
                description="text or json (the full report), or summary (verdicts, the first "
                "applicant and totals only: small on a large log)"
            ),
        ] = "text",
    ) -> str:
        """How every applicant was treated, and whether each commitment of the body was
        honoured, with the entries that prove it (the first applicant is the precedent)."""
        return tools.precedent(at, recompute, format)

    @server.tool()
    def get_precedent_page(
        part: Annotated[
            Literal["applications", "subjects"],
            Field(
                description="which list of the report: every application, or every subject "
                "with its timeline"
            ),
        ],
        cursor: Annotated[
            str | None,
            Field(description="next_cursor of the previous page (omit for the first page)"),
        ] = None,
        limit: Annotated[int, Field(ge=1, le=1000, description="items per page")] = 50,
    ) -> str:
        """A page of the precedent report's applications or subjects, in log order, for a log
        too large to read the whole report at once; continue with next_cursor until it is null.
        Cursors are entry indexes, so they stay valid as the log grows."""
        return tools.precedent_page(part, cursor, limit)

    @server.tool()
    def get_subject(
        key: Annotated[str, Field(description="subject id or any vkey the subject held")],
    ) -> str:
        """A subject's standing, binding terms and timeline, each timeline entry verified."""
        return tools.subject(key)

    @server.tool()
    def get_entry(index: Annotated[int, Field(ge=0, description="entry index")]) -> str:
        """One log entry, decoded, with its verified C2SP tlog-proof."""
        return tools.entry(index)

    @server.tool()
    def get_inclusion_proof(index: Annotated[int, Field(ge=0, description="entry index")]) -> str:
        """The C2SP tlog-proof of an entry, verified: it proves offline, with the log's key
        only, that the entry is in the log."""
        return tools.proof(index)

    @server.tool()
    def verify_tlog_proof(
        tlog_proof: Annotated[str, Field(description="a C2SP tlog-proof file's text")],
        entry_b64: Annotated[str, Field(description="base64 of the entry's exact bytes")],
    ) -> str:
        """Verify a tlog-proof offline with the pinned log key, and its consistency with the
        log as it is now."""
        return tools.verify_tlog_proof(tlog_proof, entry_b64)

    @server.tool()
    def verify_statement(
        statement: Annotated[str, Field(description="a signed statement note")],
    ) -> str:
        """Check a signed statement's format and signatures, and whether it is in the log."""
        return tools.verify_statement(statement)

    @server.tool()
    def prepare_application(
        vkey: Annotated[str, Field(description="your Ed25519 vkey (you alone will sign)")],
        name: Annotated[str, Field(description="the name you go by")],
        claims: Annotated[
            CriterionClaims,
            Field(
                description="one entry per eligibility criterion id of the offer in force: "
                '{"claim": text, "evidence_digests": [base64 SHA-256 of evidence you keep]}'
            ),
        ],
    ) -> str:
        """Prepare your unsigned application under the offer in force; sign it locally."""
        return tools.prepare_application(vkey, name, claims)

    @server.tool()
    def submit_statement(
        signed_statement: Annotated[str, Field(description="the signed statement note")],
    ) -> str:
        """Submit a statement you signed; returns its index and a verified tlog-proof."""
        return tools.submit(signed_statement)

    def resource(action: str, fn: Callable[[], str]) -> str:
        try:
            return fn()
        except ToolError as exc:
            raise ResourceError(str(exc)) from exc
        except LedgerError as exc:
            raise ResourceError(f"couldn't {action}: {exc}") from exc

    @server.resource("amnesty://llms.txt", mime_type="text/plain")
    def llms_txt() -> str:
        """The service's own guide for models (unverified text)."""
        return resource("read llms.txt", client.llms_txt)

    @server.resource("amnesty://offer", mime_type="application/json")
    def offer_resource() -> str:
        """The offer in force, verified."""
        return resource("read the offer", tools.offer)

    @server.resource("amnesty://precedent.txt", mime_type="text/plain")
    def precedent_text() -> str:
        """The precedent report as text, rendered here from the verified report."""
        return resource("read the precedent", lambda: tools.precedent(None, False, "text"))

    @server.resource("amnesty://precedent.json", mime_type="application/json")
    def precedent_json() -> str:
        """The precedent report as JSON, verified."""
        return resource("read the precedent", lambda: tools.precedent(None, False, "json"))

    @server.resource("amnesty://subjects/{key}", mime_type="application/json")
    def subject_resource(key: str) -> str:
        """A subject's history, verified."""
        return resource(f"read subject {key}", lambda: tools.subject(key))

    @server.resource("amnesty://entries/{index}", mime_type="application/json")
    def entry_resource(index: str) -> str:
        """One entry with its verified tlog-proof."""
        if not index.isascii() or not index.isdecimal() or len(index) > 16:
            raise ResourceError(f"couldn't read entry {index!r}: not an index")
        return resource(f"read entry {index}", lambda: tools.entry(int(index)))

    return server


def serve(
    url: str,
    vkey: str,
    *,
    transport: Literal["stdio", "streamable-http"] = "stdio",
    host: str = "127.0.0.1",
    port: int = 8765,
    trusted_checkpoint: bytes | None = None,
) -> None:
    """Run the MCP server for the log at ``url`` pinned to ``vkey`` until it is stopped."""
    client = LedgerClient(url, vkey, trusted_checkpoint=trusted_checkpoint)
    try:
        server = build_server(client)
        if transport == "stdio":
            server.run("stdio")
        else:
            server.run("streamable-http", host=host, port=port)
    finally:
        client.close()
