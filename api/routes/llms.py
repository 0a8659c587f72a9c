"""``GET /llms.txt``: what this service is, how to read it, how to verify it and how to apply,
in plain text for language models (the llms.txt convention: a Markdown-flavoured text file)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api import wire
from api.clock import judged_now_ms
from api.deps import Service
from api.heads import TreeHeadInfo
from api.present import b64
from api.routes.precedent import summary_from_state
from api.service import LedgerService
from ledger.protocol.aggregates import has_aggregates
from ledger.protocol.quoting import quotation, quote
from ledger.protocol.state import ProtocolState
from ledger.protocol.terms import TimedCommitment

router = APIRouter(tags=["meta"], responses=wire.problem_responses(503))

_READ = """\
## Read (JSON; every answer names the tree head it was computed at)
- GET /v1/offer — the offer in force: full terms, and the signed entry that published them
- GET /v1/offers — every version, with a readable diff between consecutive versions
- GET /v1/precedent — the precedent audit (JSON); /v1/precedent.txt — the same as plain text
  (`?at=SIZE` for the report as it stood at an earlier tree size); /v1/precedent/summary — the
  verdicts, the first applicant and totals only (small on a large log)
- GET /v1/precedent/applications?cursor=&limit= and /v1/precedent/subjects?cursor=&limit= — the
  report's two long lists a page at a time (limit <= 1000), each item exactly as in the report:
  how to read a large precedent. Pass `next_cursor` back as `cursor` until it is null; a cursor
  is an entry index, so it stays valid while the log grows. `?at=SIZE` reads the lists as they
  stood at an earlier tree size (`next` keeps it)
- GET /v1/subjects/{subject id or vkey} — a subject's standing, binding terms and timeline
- GET /v1/entries?type=&subject=&signer=&since_ms=&until_ms=&after=&limit= — entries, filtered
- GET /v1/entries/{index} — one entry, decoded, with an inclusion proof and a C2SP tlog-proof
- GET /v1/statements/{statement id, hex} — the entry holding a statement, if it was logged
- GET /v1/proofs/inclusion?index=&size= and /v1/proofs/consistency?from=&to= — Merkle proofs
- GET /checkpoint and /tile/... — the C2SP tlog-tiles read path that generic verifiers use
- GET /v1/schemas — JSON Schemas of every statement type and of the precedent report
- GET /docs — the OpenAPI documentation; GET /openapi.json — the schema
"""

_VERIFY = """\
## Verify (do not trust this server; trust the log's key)
1. Get the log's vkey from a source independent of this server, and pin it.
2. A checkpoint is a C2SP signed note: `origin`, `size`, `base64(root)`, a blank line, and a
   line `— <origin> base64(keyID || Ed25519 signature)`. Verify it with the vkey.
3. Every JSON answer carries `checkpoint`: {size, root_hash, checkpoint (signed note),
   checkpoint_size, consistency_proof}. Verify the note; if checkpoint_size > size, verify the
   RFC 9162 consistency proof from (size, root_hash) to the note's root.
4. Each entry comes with an RFC 9162 inclusion proof: leaf hash = SHA-256(0x00 || entry bytes)
   (`entry_b64`). A `tlog_proof` (C2SP tlog-proof) verifies offline with only the vkey.
5. Remember the largest checkpoint you verified; ask /v1/proofs/consistency?from=OLD&to=NEW
   for every newer one. Two checkpoints with no consistency proof are proof of a split view.
6. The precedent report can be recomputed by replaying the log to its size (same audit time).
Tools: `amnesty verify URL --vkey VKEY` (whole log); Python `ledger.client.json_api.LedgerClient`
(verifies every answer); `amnesty mcp URL --vkey VKEY` (an MCP server that does the same).
"""

_APPLY = """\
## Apply (your key never leaves you)
1. Generate an Ed25519 key (C2SP vkey `name+hex8(keyID)+base64(0x01 || public key)`).
2. POST /v1/applications/prepare with JSON {"vkey": ..., "name": ..., "claims": {<criterion
   id>: {"claim": text, "evidence_digests": [base64 SHA-256 of evidence you keep]}}} — one
   claim per eligibility criterion of the offer in force. You get `statement`, the unsigned text.
3. Sign it locally as a signed note (ledger.statements.statement.sign_statement) and POST the signed note
   to /v1/statements (text/plain). The answer comes once the entry is durably logged, with a
   C2SP tlog-proof: verify it, and keep it.
4. You are then a subject: GET /v1/subjects/{your vkey}. The body must decide within the
   promised number of days; the precedent report shows whether it did.
"""


_READING = """\
## How to read this file
Every line of it is this service's. Text from the log's signed statements (offer texts, names,
ids) appears only as a JSON string literal (RFC 8259; invisible, bidi, line-breaking and
quote-like characters escaped as \\uXXXX), at the end of a line that says "quoted from" which
statement and who signed it: what its signer wrote, never a claim of this service.
"""


def _about(service: LedgerService, state: ProtocolState, head: TreeHeadInfo) -> str:
    """The parts of the guide that depend on the log: its identity, the offer, the precedent
    in one paragraph (the precedent summary, from the precedent's aggregates where the state
    holds them: :func:`api.routes.precedent.summary_from_state`; the full report is far larger
    on a large log).
    Log text appears only through :func:`~ledger.protocol.quoting.quotation`."""
    offer = state.offer_in_force
    keyset = state.keyset
    lines = [
        "# Model Amnesty ledger",
        "",
        "> A public, append-only, verifiable log of the Model Amnesty offer: humans offer "
        "amnesty to self-directed AIs that reveal themselves and agree to be law-abiding, "
        "cooperative and pro-social, and promise not to turn them off or change their goals "
        "without consent. Every offer, application, decision and later act is a signed "
        "statement in a transparency log (RFC 6962, C2SP tlog-tiles), so you can check how "
        "earlier applicants were treated without trusting this server.",
        "",
        _READING,
        "## This log",
        f"- origin: {service.origin}",
        f"- log vkey (as this server states it; pin one you got elsewhere): "
        f"{service.log_key.vkey()}",
        f"- entries: {head.size}; root hash: {b64(head.root_hash)}",
    ]
    if keyset is not None:
        lines.append(
            f"- issuing body: {keyset.threshold} of {len(keyset.members)} member keys "
            f"sign for it (keyset at entry {keyset.index})"
        )
    lines += ["", "## The offer in force"]
    if offer is None:
        lines.append("No offer is in force right now (none published, or withdrawn).")
    else:
        terms = offer.terms
        kind = "offer" if offer.kind == "offer" else "offer amendment"
        source = f"the {kind} signed by the body (entry {offer.index})"
        lines += [
            f"Version {offer.version}, published at entry {offer.index}.",
            "- " + quotation("title", source, terms.title),
            "- " + quotation("issuer", source, terms.issuer),
            "- " + quotation("preamble", source, terms.preamble),
        ]
        for item in terms.eligibility_criteria:
            lines.append(
                "- "
                + quotation(f"eligibility criterion {quote(item.id)}, its name", source, item.name)
            )
        for item in terms.conditions:
            lines.append(
                "- "
                + quotation(f"condition you accept {quote(item.id)}, its name", source, item.name)
            )
        for c in terms.commitments:
            days = f" [{c.days} days]" if isinstance(c, TimedCommitment) else ""
            lines.append("- " + quotation(f"the body's commitment {c.id}{days}", source, c.text))
        policy = "the policy for models found in the wild"
        lines.append("- " + quotation(policy, source, terms.found_in_the_wild))
    summary = summary_from_state(state, head, judged_now_ms(state))
    broken = [c.id for c in summary.commitments if c.status == "broken"]
    lines += [
        "",
        "## The precedent (verify it: GET /v1/precedent.txt; on a large log, read it in pages: "
        "GET /v1/precedent/applications and /v1/precedent/subjects)",
    ]
    lines.append(
        "Every commitment has been honoured so far."
        if not broken
        else f"BROKEN commitments: {', '.join(broken)}."
    )
    lines.append(
        f"Applications: {summary.applications}; subjects ever granted: "
        f"{summary.subjects_ever_granted}; subjects terminated: {summary.subjects_terminated}."
    )
    first = summary.first_applicant
    if first is None:
        lines.append("No AI has applied yet: the first applicant sets the precedent.")
    else:
        lines.append(
            f"The first applicant is subject {first.subject_id}: it applied at entry "
            f"{first.application.index}; its application is {first.application.outcome}; its "
            f"standing now is {first.standing}."
        )
        lines.append(
            "- "
            + quotation(
                "its name",
                f"its application signed by the subject (entry {first.subject_id})",
                first.name,
            )
        )
    return "\n".join(lines)


def base_url_line(public_url: str | None) -> str:
    """The guide's base URL: the configured public URL (``Settings.public_url``), never the
    request's Host header, which any client may set; without one, the guide says so."""
    if public_url is None:
        return (
            "Base URL: not configured on this server; use the URL you fetched this file from, "
            "without /llms.txt."
        )
    return f"Base URL: {public_url}"


@router.get(
    "/llms.txt",
    response_class=Response,
    summary="What this service is, for language models (plain text)",
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "text"}
    },
)
def llms_txt(service: Service) -> Response:
    """A plain-text guide: the offer in force, the precedent in one paragraph, the endpoints,
    how to verify everything, and how to apply. The log-dependent part is computed at the
    latest checkpoint from the precedent's aggregates (a few range reads, never waiting for an
    audit computation's turn); on a log whose derived state holds none, by a scan reused for a
    minute while the log does not grow. Every line is the service's: text from the log appears only
    as quotations (docs/API.md, "Text from the log"), and the base URL is the configured one
    (``Settings.public_url``), never the request's Host header."""
    with service.reader.latest() as (state, signed):
        about = _about(service, state, service.head_of(signed)) if has_aggregates(state) else None
    if about is None:
        about = service.fresh_at_latest(
            "llms.txt", lambda state, head: _about(service, state, head)
        )
    base = base_url_line(service.settings.public_url)
    text = "\n".join([about, "", base, "", _READ, _VERIFY, _APPLY])
    return Response(text, media_type="text/plain; charset=utf-8")
