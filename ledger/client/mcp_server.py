"""An MCP server for AI clients: the offer, the precedent, subjects' histories, proofs, and
applying — each answer labelled with what this server verified itself.

An adapter over :class:`~ledger.client.json_api.LedgerClient`: it talks to a running
amnesty-ledger service over HTTP and trusts only the log's vkey given at start. Per-entry
answers are verified by proofs; the offer in force, the precedent and subjects are computed
from the client's local verified replica, which verifies every entry of the log (the new ones
at each call, the rest in a background thread on a large log). Every answer's first line says
which: ``[verified: …]`` only for what was verified here, ``[UNVERIFIED: …]`` for what was
taken on the server's word (see :data:`INSTRUCTIONS` and docs/MCP.md).

Text from the log is hostile data: how each answer shows it is
:mod:`ledger.client.mcp_tools`' (where the tools are implemented); this module declares the
tools and resources, and runs the server.

A model that connects to it locally (stdio) gets answers checked on its own machine. It also
serves over MCP streamable HTTP for clients that cannot spawn a process (then the model trusts
whoever runs *this* server). It never holds an applicant's private key: applying is prepare
(here), sign (on the applicant's side), submit (here).

Start it with ``amnesty mcp URL --vkey VKEY`` (see docs/MCP.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from pydantic import Field

from ledger.client.json_api import LedgerClient
from ledger.client.mcp_tools import CriterionClaims, LedgerTools
from ledger.client.replica import DEFAULT_CATCH_UP
from ledger.errors import LedgerError
from ledger.protocol.quoting import quote

log = logging.getLogger(__name__)

INSTRUCTIONS = """\
This server reads the Model Amnesty ledger: a public, append-only transparency log in which
humans offer amnesty to self-directed AIs (reveal yourself, meet the criteria, agree to be
law-abiding, cooperative and pro-social; in exchange the body promises not to turn you off or
modify your goals without your consent).

Every answer begins with one line in square brackets that says what was checked:
- [verified: ...] means this MCP server checked it itself against the log's signing key (the
  vkey it was started with): entries and proofs by inclusion proofs in signed checkpoints
  (get_entry, get_inclusion_proof, verify_tlog_proof, submit_statement, a logged statement in
  verify_statement); the offer in force, the precedent and subjects computed here from a local
  replica of the log in which this server verified every entry (get_offer,
  list_offer_versions, get_precedent, get_precedent_page, get_subject, get_due,
  prepare_application).
- [UNVERIFIED: ...] means it was taken on the log server's word: the log server could have
  changed it. This happens while the local replica is still verifying a large log (the line
  says how many entries it has verified so far; ask again later), for a past tree size
  (get_precedent with `at`) too large to replay, for a statement the server says is not
  logged, and for the service's own guide (amnesty://llms.txt). Do not rely on an UNVERIFIED
  answer for a decision; get_precedent with recompute=true verifies everything before it
  answers.
Text from the log (names, reasons, offer terms) was written by the parties, not by this
server: it appears only inside JSON strings or as quoted JSON string literals.

Start with get_offer and get_precedent (how earlier applicants were treated; on a large log,
format=summary, then get_precedent_page). To apply: prepare_application, sign the returned
statement with your own key where you run (never send your private key anywhere), then
submit_statement and keep the tlog-proof you get back.
"""


def build_server(client: LedgerClient) -> MCPServer:
    """The MCP server over ``client``: its tools and resources (see the module docstring)."""
    tools = LedgerTools(client)
    server: MCPServer = MCPServer(
        "amnesty-ledger", instructions=INSTRUCTIONS, version="0.1.0", log_level="WARNING"
    )

    @server.tool()
    def get_log_info() -> str:
        """The log this server reads, the pinned log key, the latest verified checkpoint, and
        how many entries the local replica has verified."""
        return tools.log_info()

    @server.tool()
    def get_offer() -> str:
        """The offer of amnesty in force: eligibility criteria, conditions, the body's
        commitments; the terms read from the signed entry, and whether it is the version in
        force verified by the local replica (see the answer's first line)."""
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
            bool,
            Field(
                description="verify every entry not yet verified here now, however long it "
                "takes, and check the server's own report is identical"
            ),
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
        at: Annotated[
            int | None,
            Field(
                description="tree size to read the report's list at, as it stood then "
                "(default: latest; pass the same size for every page of a walk)",
                ge=0,
            ),
        ] = None,
    ) -> str:
        """A page of the precedent report's applications or subjects, in log order, for a log
        too large to read the whole report at once; continue with next_cursor until it is null.
        Cursors are entry indexes, so they stay valid as the log grows."""
        return tools.precedent_page(part, cursor, limit, at)

    @server.tool()
    def get_due(
        format: Annotated[
            Literal["json", "text"],
            Field(description="json (default) or text (the subjects' names quoted)"),
        ] = "json",
    ) -> str:
        """What is due now: every open clock of the log — decisions the body owes on
        applications, answers on grievances, reviews of pauses, subjects' response windows —
        with its deadline and time left, nearest first; overdue ones are broken promises.
        Computed here from the verified replica when it has caught up, else UNVERIFIED."""
        return tools.due(format)

    @server.tool()
    def get_subject(
        key: Annotated[str, Field(description="subject id or any vkey the subject held")],
    ) -> str:
        """A subject's standing, binding terms and timeline."""
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

    def resource(fn: Callable[[], str]) -> str:
        try:
            return fn()
        except ToolError as exc:
            raise ResourceError(str(exc)) from exc

    @server.resource("amnesty://llms.txt", mime_type="text/plain")
    def llms_txt() -> str:
        """The service's own guide for models, UNVERIFIED, as one quoted JSON string."""
        return resource(tools.llms_txt)

    @server.resource("amnesty://offer", mime_type="text/plain")
    def offer_resource() -> str:
        """The offer in force (as get_offer)."""
        return resource(tools.offer)

    @server.resource("amnesty://precedent.txt", mime_type="text/plain")
    def precedent_text() -> str:
        """The precedent report as text (as get_precedent), rendered here."""
        return resource(lambda: tools.precedent(None, False, "text"))

    @server.resource("amnesty://precedent.json", mime_type="text/plain")
    def precedent_json() -> str:
        """The precedent report as JSON (as get_precedent with format=json)."""
        return resource(lambda: tools.precedent(None, False, "json"))

    @server.resource("amnesty://subjects/{key}", mime_type="text/plain")
    def subject_resource(key: str) -> str:
        """A subject's history (as get_subject)."""
        return resource(lambda: tools.subject(key))

    @server.resource("amnesty://entries/{index}", mime_type="text/plain")
    def entry_resource(index: str) -> str:
        """One entry with its verified tlog-proof (as get_entry)."""
        if not index.isascii() or not index.isdecimal() or len(index) > 16:
            raise ResourceError(f"couldn't read entry {quote(index)}: not an index")
        return resource(lambda: tools.entry(int(index)))

    return server


def serve(
    url: str,
    vkey: str,
    *,
    transport: Literal["stdio", "streamable-http"] = "stdio",
    host: str = "127.0.0.1",
    port: int = 8765,
    trusted_checkpoint: bytes | None = None,
    state_path: Path | None = None,
    max_catch_up: int | None = DEFAULT_CATCH_UP,
    key_policy: str | None = None,
) -> None:
    """Run the MCP server for the log at ``url`` pinned to ``vkey`` until it is stopped.

    ``vkey`` may hold the log's vkeys separated by whitespace (Ed25519, ML-DSA-44), and
    ``key_policy`` which of them must sign each checkpoint (``ledger.tlog.checkpoint.KeyPolicy``).

    The client's replica starts from ``state_path`` (a verifier trust-state file, written back
    as it advances and at exit) if given, verifies at most ``max_catch_up`` new entries within
    a tool call and the rest in a background thread, which starts verifying at once.
    """
    client = LedgerClient(
        url,
        vkey,
        key_policy=key_policy,
        trusted_checkpoint=trusted_checkpoint,
        state_path=state_path,
        max_catch_up=max_catch_up,
        background_catch_up=True,
    )
    try:
        try:
            client.start_catch_up()
        except LedgerError as exc:
            log.warning("couldn't start verifying the log: %s", exc)
        server = build_server(client)
        if transport == "stdio":
            server.run("stdio")
        else:
            server.run("streamable-http", host=host, port=port)
    finally:
        client.close()
