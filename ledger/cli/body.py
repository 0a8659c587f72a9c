"""The issuing body's console: ``due``, ``entry``, ``statement check``, ``offer export``, a
member's keys (``member keygen``, ``member sign``) and ``signature-strength``.

What a body's secretary needs before and around signing: what the body owes and by when
(:mod:`ledger.protocol.due`), what a statement would do before anyone signs it
(:mod:`ledger.statements.preview`), the Ref of any entry ready to paste, and the offer in force
(or the default) as a file to start an amendment or a new offer from.

A member's key file (``member keygen``) holds its Ed25519 key and, unless ``--ed25519-only``,
an ML-DSA-44 statement key (``ledger.tlog.statement_mldsa``), both under the member's name, one
``PRIVATE+KEY+…`` line each; ``member sign`` adds a line for each key in the file, so a member of
a keyset whose ``signatures`` is ``hybrid`` signs with both in one step. ``amnesty sign`` still
signs with a one-line Ed25519 key file, as before.

Every answer is computed here from a log verified here (the full verifier, or incrementally from
a ``--state`` trust file as ``amnesty verify --state`` keeps it), never taken on a server's word.
Exit codes: 0 ok; 1 verification failed, something is overdue (``due``), or the statement would
be refused or break a commitment (``statement check``); 2 bad usage.
"""

from __future__ import annotations

import base64
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from ledger.atomic import write_atomically
from ledger.cli.common import (
    JsonOption,
    emit,
    fail,
    fail_with,
    open_source,
    progress_bar,
    read_file,
    write_private_key,
)
from ledger.errors import LedgerError
from ledger.verifier.verify import VerifiedLog

VkeyOption = Annotated[
    str | None,
    typer.Option("--vkey", help="the log's vkey (required for URLs and mirror directories)"),
]
StateOption = Annotated[
    Path | None,
    typer.Option(
        "--state", help="trust state file: verify only what is new since it, and update it"
    ),
]
TimeOption = Annotated[
    int | None,
    typer.Option(
        "--time-ms",
        help="judge at this time (ms since the epoch; default now); never before the last entry",
    ),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")]

offer_app = typer.Typer(help="The offer's terms as editable files.", no_args_is_help=True)
member_app = typer.Typer(
    help="A body member's keys: Ed25519 and ML-DSA-44 (hybrid statements).", no_args_is_help=True
)


def now_ms() -> int:
    """This machine's clock in milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


def verified_log(
    source: str, vkey: str | None, state: Path | None, *, quiet: bool = False
) -> VerifiedLog:
    """Verify the log at ``source`` (incrementally from ``state`` if given, which is then
    updated) and return the result with its replayed protocol state; fail (exit 1) if it does
    not verify."""
    from ledger.verifier.trust import load_trust_state, save_trust_state
    from ledger.verifier.verify import verify_ledger

    log_source, log_key = open_source(source, vkey)
    trusted = None
    if state is not None and state.exists():
        try:
            trusted = load_trust_state(state, log_key)
        except LedgerError as exc:
            fail_with(exc, 2, f"couldn't use --state {state}")
    try:
        with progress_bar(quiet) as bar:
            task = bar.add_task("verifying", total=None)
            result = verify_ledger(
                log_source,
                log_key,
                trusted=trusted,
                fetch_threads=8 if source.startswith(("http://", "https://")) else 1,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except LedgerError as exc:
        fail_with(exc, 1, f"couldn't verify {source}")
    if state is not None and (trusted is None or result.entries > 0):
        try:
            save_trust_state(
                state, result.trust_state(log_key, {} if trusted is None else trusted.tools)
            )
        except LedgerError as exc:
            fail_with(exc, 2)
    return result


def checkpoint_summary(result: VerifiedLog) -> dict[str, Any]:
    """The ``checkpoint`` object reports name: origin, size, base64 root."""
    return {
        "origin": result.checkpoint.origin,
        "size": result.checkpoint.size,
        "root_hash_b64": base64.b64encode(result.checkpoint.root_hash).decode(),
    }


def judged_time(result: VerifiedLog, time_ms: int | None) -> int:
    """``time_ms``, or now (never before the last entry's log time). An explicit time before
    the last entry is refused with the API's words for the same request (422 there)."""
    if time_ms is None:
        return max(now_ms(), result.last_log_time_ms)
    if time_ms < result.last_log_time_ms:
        fail(
            f"couldn't judge at {time_ms} ms: it precedes the last entry's log time "
            f"{result.last_log_time_ms} ms (a clock is never judged before an act the log "
            "already holds)",
            2,
            kind="refused",
        )
    return time_ms


# -- due ----------------------------------------------------------------------------------------


def due(
    source: Annotated[str, typer.Argument(help="service URL, mirror directory or database URL")],
    vkey: VkeyOption = None,
    state: StateOption = None,
    time_ms: TimeOption = None,
    warn_days: Annotated[
        float | None,
        typer.Option(
            "--warn-days",
            min=0,
            help="also exit 1 when a deadline the body owes is less than this many days away",
        ),
    ] = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """What is due: every open clock of the log — decisions owed on applications, answers owed
    on grievances, reviews owed on pauses, subjects' response windows — with its deadline and
    time left, nearest first. Exit 1 when anything the body owes is overdue (or, with
    --warn-days, due that soon): for cron and monitoring."""
    from ledger.protocol.due import due_report, render_due_text

    result = verified_log(source, vkey, state, quiet=quiet)
    assert result.protocol is not None
    # An explicit time before the last entry is refused by due_report, in the words the API
    # answers 422 with for GET /v1/due?at_ms=…
    at = time_ms if time_ms is not None else max(now_ms(), result.last_log_time_ms)
    try:
        report = due_report(result.protocol, checkpoint=checkpoint_summary(result), at_ms=at)
    except LedgerError as exc:
        fail_with(exc, 2)
    soon = [
        c
        for c in report["clocks"]
        if warn_days is not None
        and c["owed_by"] == "body"
        and not c["overdue"]
        and c["time_left_ms"] < warn_days * 86_400_000
    ]
    if as_json:
        emit(report, True, "")
    else:
        sys.stdout.write(render_due_text(report))
        if soon:
            sys.stdout.write(
                f"WARNING: {len(soon)} deadline(s) the body owes within {warn_days:g} days.\n"
            )
    if report["overdue"] or soon:
        raise typer.Exit(1)


# -- entry --------------------------------------------------------------------------------------


def ref_of(index: int, leaf: bytes) -> dict[str, Any]:
    """The protocol's reference object to entry ``index``: ``{"index", "leaf_hash"}``."""
    return {"index": index, "leaf_hash": base64.b64encode(leaf).decode()}


def entry(
    source: Annotated[str, typer.Argument(help="service URL, mirror directory or database URL")],
    index: Annotated[int, typer.Argument(min=0, help="the entry's index")],
    vkey: VkeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show entry INDEX, proven in the log's signed checkpoint: its statement, who signed it,
    its leaf hash, and its Ref JSON ready to paste into a statement that cites it."""
    from ledger.protocol.quoting import quote
    from ledger.verifier.proofs import entry_proof, verify_entry_proof

    log_source, log_key = open_source(source, vkey)
    try:
        proven = verify_entry_proof(entry_proof(log_source, log_key, index), log_key)
    except LedgerError as exc:
        fail_with(exc, 1, f"couldn't read entry {index}")
    leaf = proven.entry.leaf_hash()
    ref = ref_of(index, leaf)
    result = {
        **proven.to_json(),
        "leaf_hash": ref["leaf_hash"],
        "ref": ref,
        "statement_note": proven.entry.statement,
    }
    s = proven.statement
    signers = ", ".join(quote(v) for v in sorted(proven.verified_signers))
    emit(
        result,
        as_json,
        f"entry {index} of {quote(proven.checkpoint.origin)} (proven at size "
        f"{proven.checkpoint.size}): a {s.type} v{s.v} statement, log time "
        f"{proven.entry.log_time_ms} ms\n"
        f"statement id {s.statement_id.hex()}\n"
        f"leaf hash    {ref['leaf_hash']}\n"
        f"signed by    {signers}\n"
        f"body (JSON, quoted log text): {json.dumps(s.body, ensure_ascii=True, sort_keys=True)}\n"
        f"Ref:         {json.dumps(ref, sort_keys=True)}",
    )


# -- statement check ----------------------------------------------------------------------------


def preview_against(
    result: VerifiedLog, data: bytes, at_ms: int
) -> Any:  # ledger.statements.preview.Preview
    """Preview ``data`` as the next entry of the verified log, logged and judged at ``at_ms``."""
    from ledger.statements.preview import preview_statement

    assert result.protocol is not None
    return preview_statement(
        result.protocol,
        data,
        origin=result.checkpoint.origin,
        prev_root=result.checkpoint.root_hash,
        log_time_ms=at_ms,
    )


def render_preview(preview: Any) -> str:
    """The text of a preview: each numbered admission step, then each commitment's status
    before and after, the ones it would break marked."""
    from ledger.protocol.quoting import quote

    verdict = (
        ("WOULD BREAK: " + ", ".join(preview.breaks))
        if preview.breaks
        else "would be admitted and breaks no commitment"
        if preview.admitted
        else "WOULD BE REFUSED"
    )
    lines = [
        f"{preview.statement_type or 'statement'} as entry {preview.index} at "
        f"{preview.log_time_ms} ms: {verdict}",
        "",
        "Admission:",
    ]
    for step in preview.steps:
        mark = {True: "pass", False: "FAIL", None: "----"}[step.passed]
        lines.append(f"  {step.number}. [{mark}] {step.rule}: {quote(step.detail)}")
    if preview.commitments:
        lines += ["", "Commitments (before -> after):"]
        for c in preview.commitments:
            flag = "  <-- WOULD BREAK" if c.newly_broken else ""
            lines.append(f"  {c.id}: {c.before} -> {c.after}{flag}")
            for index, reason in zip(c.newly_broken, c.reasons, strict=True):
                lines.append(f"      entry {index}: {quote(reason)}")
    return "\n".join(lines)


def statement_check(
    file: Annotated[Path, typer.Argument(help="statement file (unsigned, partly or fully signed)")],
    log: Annotated[
        str, typer.Option("--log", help="the log: service URL, mirror directory or database URL")
    ],
    vkey: VkeyOption = None,
    state: StateOption = None,
    time_ms: TimeOption = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Dry run, before anyone signs: would the statement be admitted as the log's next entry
    (each numbered admission step), and how would the audit judge every commitment with it
    appended? Exit 0 if it would be admitted and break nothing, 1 otherwise."""
    data = read_file(file)
    result = verified_log(log, vkey, state, quiet=quiet)
    preview = preview_against(result, data, judged_time(result, time_ms))
    emit(preview.to_json(), as_json, render_preview(preview))
    if not preview.admitted or preview.breaks:
        raise typer.Exit(1)


# -- offer export -------------------------------------------------------------------------------


@offer_app.command("export")
def offer_export(
    out: Annotated[Path, typer.Option("--out", help="the body file to write (not replaced)")],
    log: Annotated[
        str | None,
        typer.Option(
            "--log",
            help="a log with an offer in force: write an offer_amendment of it (default: the "
            "default offer, as a new body's first offer)",
        ),
    ] = None,
    vkey: VkeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write an offer body to edit and then pass to ``statement new``: the default offer
    (worded from the proposal; ``statement new offer --body FILE``), or with --log an
    ``offer_amendment`` of the version in force, its terms copied
    (``statement new offer_amendment --body FILE``; write what changed in ``changes``)."""
    from ledger.protocol.terms import default_offer

    if out.exists():
        fail(f"couldn't write {out}: the file exists (refusing to overwrite it)")
    statement_type = "offer"
    body: dict[str, Any]
    if log is None:
        body = default_offer()
    else:
        result = verified_log(log, vkey, None, quiet=True)
        assert result.protocol is not None
        in_force = result.protocol.offer_in_force
        if in_force is None:
            fail(
                f"couldn't export the offer of {log}: none is in force (none published, or the "
                "last withdrawn); export the default offer without --log",
                1,
                kind="not-found",
            )
        statement_type = "offer_amendment"
        body = {
            "version": in_force.version + 1,
            "amends": {
                "index": in_force.index,
                "leaf_hash": base64.b64encode(
                    result.protocol.leaf_hash_at(in_force.index)
                ).decode(),
            },
            "terms": in_force.terms.model_dump(mode="json"),
            "changes": "EDIT: say what this version changes, for future applicants",
        }
    try:
        out.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except OSError as exc:
        fail(f"couldn't write {out}: {exc.strerror or exc}")
    emit(
        {"type": statement_type, "version": body["version"], "file": str(out)},
        as_json,
        f"wrote the {statement_type} body of version {body['version']} to {out}; edit it, then: "
        f"amnesty statement new {statement_type} --body {out} …",
    )


# -- a member's keys ----------------------------------------------------------------------------


@member_app.command("keygen")
def member_keygen(
    name: Annotated[str, typer.Argument(help="the member's key name, e.g. alice.body.example")],
    out: Annotated[Path, typer.Option("--out", help="private key file to create (0600)")],
    ed25519_only: Annotated[
        bool, typer.Option("--ed25519-only", help="no ML-DSA-44 key (a member as before)")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Generate a member's keys: Ed25519 and an ML-DSA-44 statement key, both named NAME, in
    one key file. Prints the Ed25519 vkey (the member's identity, for ``members`` and
    ``--signer``), the ML-DSA-44 vkey (for ``--signer`` too) and the keyset's
    ``mldsa44_keys`` item that binds them."""
    from ledger.tlog.note import Signer
    from ledger.tlog.statement_mldsa import StatementMLDSA44Signer

    try:
        ed25519 = Signer.generate(name)
        mldsa = None if ed25519_only else StatementMLDSA44Signer.generate(name)
    except LedgerError as exc:
        fail_with(exc, 2)
    lines = [ed25519.private_key_text()]
    if mldsa is not None:
        lines.append(mldsa.private_key_text())
    write_private_key(out, "\n".join(lines))
    binding = None if mldsa is None else {"member": ed25519.vkey, "vkey": mldsa.vkey}
    result = {
        "vkey": ed25519.vkey,
        "mldsa44_vkey": None if mldsa is None else mldsa.vkey,
        "mldsa44_binding": binding,
        "key_file": str(out),
    }
    text = [f"Ed25519 vkey (the member):  {ed25519.vkey}"]
    if mldsa is not None:
        text.append(f"ML-DSA-44 statement vkey:   {mldsa.vkey}")
        text.append("keyset mldsa44_keys item:   " + json.dumps(binding, sort_keys=True))
    emit(result, as_json, "\n".join(text))


def read_member_keys(path: Path) -> list[Any]:
    """The signers of a member's key file: each ``PRIVATE+KEY+…`` line, Ed25519 or ML-DSA-44
    statement key (at most one of each)."""
    from ledger.tlog.note import Signer
    from ledger.tlog.statement_mldsa import VKEY_BASE64_PREFIX, StatementMLDSA44Signer

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"couldn't read key {path}: {exc.strerror or exc}")
    signers: list[Any] = []
    kinds: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        kind = "ML-DSA-44" if f"+{VKEY_BASE64_PREFIX}" in line else "Ed25519"
        if kind in kinds:
            fail(f"couldn't load key {path}: line {number} is a second {kind} key")
        kinds.add(kind)
        try:
            if kind == "ML-DSA-44":
                signers.append(StatementMLDSA44Signer.parse_private_key(line.strip()))
            else:
                signers.append(Signer.parse_private_key(line.strip()))
        except LedgerError as exc:
            fail_with(exc, 2, f"couldn't load key {path} (line {number})")
    if not signers:
        fail(f"couldn't load key {path}: it holds no key")
    return signers


@member_app.command("sign")
def member_sign(
    file: Annotated[
        Path, typer.Argument(help="statement file; the signature lines are added in place")
    ],
    key: Annotated[Path, typer.Option("--key", help="your key file (from `member keygen`)")],
) -> None:
    """Add a signature line for each key of your key file (Ed25519, and ML-DSA-44 if it has
    one) to a statement; idempotent for Ed25519 (an ML-DSA-44 line is replaced by a fresh one,
    ML-DSA-44 signing being hedged). Each key must be one of the statement's signers."""
    from ledger.statements.statement import sign_statement

    data = read_file(file)
    names = []
    for signer in read_member_keys(key):
        try:
            data = sign_statement(data, signer)
        except LedgerError as exc:
            fail_with(exc, 2)
        names.append(signer.vkey.split("+", 2)[1])
    try:
        write_atomically(file, data, what=f"the signed statement {file}")
    except LedgerError as exc:
        fail_with(exc, 2)
    typer.echo(f"signed {file} with key(s) {', '.join(names)}", err=True)


# -- signature strength -------------------------------------------------------------------------


def signature_strength(
    source: Annotated[str, typer.Argument(help="service URL, mirror directory or database URL")],
    vkey: VkeyOption = None,
    state: StateOption = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Which entries only Ed25519 protects (a forger of Ed25519 could have made them), and
    which carry the ML-DSA-44 signatures their authority needs too: from the log verified
    here (the audit section ``signature_strength``). Exit 0."""
    from ledger.protocol.signature_strength import render_ranges, signature_strength_item

    result = verified_log(source, vkey, state, quiet=quiet)
    assert result.protocol is not None
    tally = result.protocol._signature_strength
    if tally is None:
        fail("couldn't count signature strength: this replay keeps no tally", 1)
    section = signature_strength_item(tally)
    lines = [
        f"{section['ed25519_only']} of {result.protocol.size} entries are protected only by "
        "Ed25519"
        + (f": {render_ranges(section['ed25519_only_ranges'])}" if section["ed25519_only"] else ""),
        f"{section['hybrid']} entries are protected by Ed25519 and ML-DSA-44",
    ]
    if section["ed25519_only_by_type"]:
        lines.append(
            "Ed25519-only by type: "
            + ", ".join(f"{k} {v}" for k, v in section["ed25519_only_by_type"].items())
        )
    emit({"checkpoint": checkpoint_summary(result), **section}, as_json, "\n".join(lines))


def register(app: typer.Typer) -> None:
    """Add the body's console commands to ``app`` (``statement check`` to the statement group)."""
    from ledger.cli.statements import statement_app

    app.command()(due)
    app.command()(entry)
    app.command("signature-strength")(signature_strength)
    statement_app.command("check")(statement_check)
    app.add_typer(offer_app, name="offer")
    app.add_typer(member_app, name="member")
