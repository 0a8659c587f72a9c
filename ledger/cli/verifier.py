"""CLI commands of the verifier: ``verify``, ``monitor``, ``proof get|verify``,
``evidence verify``, ``export`` and ``mirror``.

A thin shell over :mod:`ledger.verifier.verify`, :mod:`ledger.verifier.monitor`, :mod:`ledger.verifier.proofs`,
:mod:`ledger.verifier.evidence` and :mod:`ledger.verifier.mirror`: results on stdout (``--json`` for machines),
progress bars and logs on stderr, and the exit code carries the verdict: 0 when everything
holds, 1 when verification (or, with ``--audit``, a commitment) fails, 2 for bad usage.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from ledger.cli.common import (
    JsonOption,
    KeyPolicyOption,
    emit,
    error_code,
    error_object,
    fail,
    fail_with,
    open_source,
    parse_vkey_option,
    progress_bar,
    stderr,
)
from ledger.errors import LedgerError, RefusedError, VerificationError
from ledger.tlog.checkpoint import LogKey
from ledger.verifier.failures import SplitViewError
from ledger.verifier.sources import LogSource
from ledger.verifier.trust import TrustState, load_trust_state, save_trust_state
from ledger.verifier.verify import Progress as ProgressCallback
from ledger.verifier.verify import VerifiedLog

VkeyOption = Annotated[
    str | None,
    typer.Option(
        "--vkey",
        help="the log's vkey, or its vkeys separated by spaces (Ed25519, ML-DSA-44) to pin a "
        "hybrid log (required for URLs and mirror directories)",
    ),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")]
WorkersOption = Annotated[
    int | None,
    typer.Option(
        "--workers", min=0, help="processes checking signatures (default: one per CPU for big runs)"
    ),
]
TimeOption = Annotated[
    int | None,
    typer.Option("--time-ms", help="judge the audit's clocks at this time (default: now)"),
]

proof_app = typer.Typer(
    help="Offline proofs of single entries (C2SP tlog-proof).", no_args_is_help=True
)
evidence_app = typer.Typer(help="Split-view evidence files.", no_args_is_help=True)

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
"""The statements' JSON Schemas published with a mirror (beside the ``ledger`` package)."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _fetch_threads(source: str) -> int:
    return 8 if source.startswith(("http://", "https://")) else 1


def _load_state(path: Path | None, log_key: LogKey) -> TrustState | None:
    if path is None or not path.exists():
        return None
    try:
        return load_trust_state(path, log_key)
    except LedgerError as exc:
        fail_with(exc, 2, f"couldn't use --state {path}")


def _evidence_path(evidence: Path | None, state: Path | None) -> Path:
    if evidence is not None:
        return evidence
    if state is not None:
        return state.with_name(state.stem + ".split-view.json")
    return Path(f"split-view-{_now_ms()}.json")


def _verification_failed(
    exc: LedgerError, as_json: bool, evidence: Path | None, state: Path | None, source: str
) -> typer.Exit:
    """Report a failed verification (writing split-view evidence) and return the exit."""
    from ledger.atomic import write_atomically
    from ledger.verifier.evidence import format_evidence

    report: dict[str, Any] = {
        "ok": False,
        "error": error_object(str(exc), error_code(exc), 1),
        "index": getattr(exc, "index", None),
        "where": getattr(exc, "where", None),
    }
    text = f"FAILED: {exc}"
    if isinstance(exc, SplitViewError):
        path = _evidence_path(evidence, state)
        observed = f"served by {source} at {_now_ms()} ms (Unix time)"
        report["split_view"] = True
        try:
            write_atomically(path, format_evidence(replace(exc.evidence, observed=observed)))
        except LedgerError as write_error:
            report["evidence_error"] = str(write_error)
            text += f"\nSPLIT VIEW, and {write_error}"
        else:
            report["evidence"] = str(path)
            text += f"\nSPLIT VIEW: evidence written to {path} (check it: amnesty evidence verify)"
    emit(report, as_json, text)
    return typer.Exit(1)


def _run(work: str, quiet: bool, verify: Any, *args: Any, **kwargs: Any) -> Any:
    """Run ``verify(*args, progress=..., **kwargs)`` under a progress bar on stderr."""
    with progress_bar(quiet) as bar:
        task = bar.add_task(work, total=None)

        def on_progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        progress: ProgressCallback = on_progress
        return verify(*args, progress=progress, **kwargs)


def _summary_text(result: VerifiedLog) -> str:
    checkpoint = result.checkpoint
    scope = (
        f"{result.entries} entries"
        if result.start_size == 0
        else f"{result.entries} new entries (from size {result.start_size})"
    )
    return (
        f"OK: {checkpoint.origin} size {checkpoint.size}: {scope} and {result.tiles_checked} "
        "tiles verified"
    )


# -- verify -------------------------------------------------------------------------------------


def verify(
    source: Annotated[str, typer.Argument(help="service URL, mirror directory or database URL")],
    vkey: VkeyOption = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
    audit: Annotated[
        bool, typer.Option("--audit", help="also compute the precedent report (exit 1 if broken)")
    ] = False,
    state: Annotated[
        Path | None,
        typer.Option("--state", help="trust state file: continue from it, and update it"),
    ] = None,
    evidence: Annotated[
        Path | None, typer.Option("--evidence", help="where to write split-view evidence")
    ] = None,
    workers: WorkersOption = None,
    time_ms: TimeOption = None,
    key_policy: KeyPolicyOption = None,
) -> None:
    """Verify a log: the checkpoint's signature, every tile and bundle, every entry's chain link,
    every statement's signatures and authority, and the protocol replayed in order.

    With --state, only what is new since the stored checkpoint is fetched and verified, after
    proving the new checkpoint consistent with it; a checkpoint that is not is a split view:
    the evidence is written to a file and the exit code is 1.
    """
    from ledger.verifier.verify import verify_ledger

    log_source, log_key = open_source(source, vkey, key_policy)
    trusted = _load_state(state, log_key)
    tools = {} if trusted is None else trusted.tools
    try:
        result: VerifiedLog = _run(
            "verifying",
            quiet,
            verify_ledger,
            log_source,
            log_key,
            trusted=trusted,
            workers=workers,
            fetch_threads=_fetch_threads(source),
        )
    except LedgerError as exc:
        raise _verification_failed(exc, as_json, evidence, state, source) from None
    if state is not None and (trusted is None or result.entries > 0):
        try:
            save_trust_state(state, result.trust_state(log_key, tools))
        except LedgerError as exc:
            fail_with(exc, 2)
    summary: dict[str, Any] = result.to_json()
    text = _summary_text(result)
    honoured = True
    if audit:
        from ledger.protocol.audit import render_precedent_text

        if time_ms is not None and time_ms < result.last_log_time_ms:
            # Refused as the audit and the API refuse it, never judged at another time.
            fail(
                f"couldn't compute the precedent report: audit time {time_ms} precedes the "
                f"last entry's log time {result.last_log_time_ms}",
                2,
                kind="refused",
            )
        try:
            report = result.precedent_report(time_ms if time_ms is not None else _now_ms())
        except LedgerError as exc:
            fail_with(exc, 1, "couldn't compute the precedent report")
        honoured = bool(report["all_commitments_honoured"])
        summary["precedent"] = report
        text += "\n\n" + render_precedent_text(report)
    emit(summary, as_json, text)
    if not honoured:
        raise typer.Exit(1)


# -- monitor ------------------------------------------------------------------------------------


def monitor(
    source: Annotated[str, typer.Argument(help="service URL (or mirror directory, database URL)")],
    state: Annotated[Path, typer.Option("--state", help="trust state file (created if missing)")],
    vkey: VkeyOption = None,
    interval: Annotated[
        float, typer.Option("--interval", min=0, help="seconds between polls")
    ] = 60.0,
    iterations: Annotated[
        int | None, typer.Option("--iterations", min=1, help="stop after this many polls")
    ] = None,
    webhook: Annotated[
        str | None, typer.Option("--webhook", help="POST each poll's events as JSON to this URL")
    ] = None,
    evidence: Annotated[
        Path | None, typer.Option("--evidence", help="where to write split-view evidence")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per event")] = False,
    workers: WorkersOption = None,
    key_policy: KeyPolicyOption = None,
    warn_days: Annotated[
        float | None,
        typer.Option(
            "--warn-days",
            min=0,
            help="also report, once each, every deadline the body owes that is less than this "
            "many days away (see `amnesty due`)",
        ),
    ] = None,
) -> None:
    """Follow a log: verify what is new at every poll and report new offer versions, keyset
    rotations, decisions, enforcement actions, findings, revocations and broken commitments
    (and, with --warn-days, deadlines coming close). Exits 1 as soon as verification fails
    (split views leave evidence)."""
    from ledger.verifier.monitor import poll_log

    log_source, log_key = open_source(source, vkey, key_policy)
    trusted = _load_state(state, log_key)  # kept in memory between polls, saved after each
    polls = 0
    while True:
        try:
            poll = poll_log(
                log_source,
                log_key,
                trusted,
                audit_time_ms=_now_ms(),
                warn_ms=None if warn_days is None else round(warn_days * 86_400_000),
                workers=workers,
                fetch_threads=_fetch_threads(source),
            )
        except LedgerError as exc:
            raise _verification_failed(exc, as_json, evidence, state, source) from None
        changed = trusted is None or poll.verified.entries > 0 or bool(poll.events)
        trusted = poll.trust
        if changed:  # an idle poll leaves the state as it was: no need to rewrite it
            try:
                save_trust_state(state, trusted)
            except LedgerError as exc:
                fail_with(exc, 2)
        checkpoint = poll.verified.checkpoint
        stderr.print(
            f"{checkpoint.origin}: size {checkpoint.size}, {poll.verified.entries} new entries "
            f"verified, {len(poll.events)} events",
            highlight=False,
        )
        for event in poll.events:
            if as_json:
                sys.stdout.write(json.dumps(event.to_json(), sort_keys=True) + "\n")
            else:
                sys.stdout.write(f"entry {event.index} [{event.kind}] {event.summary}\n")
        sys.stdout.flush()
        if webhook is not None and poll.events:
            _post(webhook, checkpoint.origin, checkpoint.size, [e.to_json() for e in poll.events])
        polls += 1
        if iterations is not None and polls >= iterations:
            return
        time.sleep(interval)


def _post(url: str, origin: str, size: int, events: list[dict[str, Any]]) -> None:
    """POST one poll's events; a failing webhook is reported, and monitoring goes on."""
    import httpx

    try:
        response = httpx.post(
            url, json={"origin": origin, "size": size, "events": events}, timeout=10
        )
        response.raise_for_status()
    except httpx.HTTPError as exc:
        stderr.print(f"[yellow]warning:[/] couldn't post events to {url}: {exc}", highlight=False)


# -- proofs -------------------------------------------------------------------------------------


@proof_app.command("get")
def proof_get(
    source: Annotated[str, typer.Argument(help="service URL, mirror directory or database URL")],
    index: Annotated[int, typer.Argument(min=0, help="the entry's index")],
    vkey: VkeyOption = None,
    no_entry: Annotated[
        bool, typer.Option("--no-entry", help="leave the entry out of the file's extra data")
    ] = False,
) -> None:
    """Write a tlog-proof file for entry INDEX to stdout, carrying the entry (and so its signed
    statement) in its extra data: one file that anyone can check offline with the log's key."""
    from ledger.verifier.proofs import entry_proof

    log_source, log_key = open_source(source, vkey)
    try:
        data = entry_proof(log_source, log_key, index, include_entry=not no_entry)
    except LedgerError as exc:
        fail_with(exc, 1, f"couldn't make a proof of entry {index}")
    sys.stdout.buffer.write(data)
    sys.stdout.flush()


@proof_app.command("verify")
def proof_verify(
    file: Annotated[Path, typer.Argument(help="a .tlog-proof file")],
    vkey: Annotated[
        str, typer.Option("--vkey", help="the log's vkey(s), separated by spaces (see verify)")
    ],
    statement: Annotated[
        Path | None, typer.Option("--statement", help="the statement the entry must hold")
    ] = None,
    entry: Annotated[
        Path | None, typer.Option("--entry", help="the entry, if the file does not carry it")
    ] = None,
    as_json: JsonOption = False,
    key_policy: KeyPolicyOption = None,
) -> None:
    """Verify a tlog-proof file offline: the checkpoint's signature, the entry's inclusion,
    the entry and its statement's signatures, and (with --statement) that it is that statement."""
    from ledger.protocol.quoting import quote
    from ledger.tlog.checkpoint import MissingMLDSA44Signature
    from ledger.verifier.proofs import verify_entry_proof

    log_key = parse_vkey_option(vkey, key_policy)
    try:
        data = file.read_bytes()
        statement_data = None if statement is None else statement.read_bytes()
        entry_data = None if entry is None else entry.read_bytes()
    except OSError as exc:
        fail(f"couldn't read {exc.filename}: {exc.strerror}")
    try:
        proven = verify_entry_proof(data, log_key, entry=entry_data, statement=statement_data)
    except LedgerError as exc:
        message = str(exc)
        if isinstance(exc, MissingMLDSA44Signature) and key_policy is None:
            # Both keys pinned, policy by default: an offline proof cannot show whether the
            # checkpoint predates a log_key entry (F7.4); say so rather than leave it a riddle.
            message += (
                ". If this log added its ML-DSA-44 key later (a log_key entry), its checkpoints "
                "up to that entry carry only the Ed25519 signature: check the entry's index "
                "(`amnesty verify` replays the log and knows it), then verify this proof with "
                "--key-policy ed25519"
            )
        emit(
            {"ok": False, "error": error_object(message, error_code(exc), 1)},
            as_json,
            f"FAILED: {message}",
        )
        raise typer.Exit(1) from None
    # Signers' vkeys are log text (a key's name is whatever its holder chose): quoted.
    signers = ", ".join(quote(v) for v in sorted(proven.verified_signers))
    emit(
        proven.to_json(),
        as_json,
        f"OK: entry {proven.entry.index} of {proven.checkpoint.origin} is in the log at size "
        f"{proven.checkpoint.size}: a {proven.statement.type} statement "
        f"{proven.statement.statement_id.hex()} signed by {signers}",
    )


@evidence_app.command("verify")
def evidence_verify(
    file: Annotated[Path, typer.Argument(help="a split-view evidence file")],
    vkey: Annotated[str, typer.Option("--vkey", help="the log's vkey")],
    as_json: JsonOption = False,
) -> None:
    """Re-check split-view evidence: exit 0 if it proves the log signed two checkpoints that
    cannot both be true, 1 if it does not."""
    from ledger.verifier.evidence import parse_evidence, verify_evidence

    log_key = parse_vkey_option(vkey)
    try:
        data = file.read_bytes()
    except OSError as exc:
        fail(f"couldn't read {file}: {exc.strerror}")
    try:
        proven = verify_evidence(parse_evidence(data), log_key)
    except LedgerError as exc:
        emit(
            {"ok": False, "error": error_object(str(exc), error_code(exc), 1)},
            as_json,
            f"NOT PROVEN: {exc}",
        )
        raise typer.Exit(1) from None
    first, second = proven.checkpoint1, proven.checkpoint2
    emit(
        {
            "ok": True,
            "origin": first.origin,
            "size1": first.size,
            "size2": second.size,
            "root1": first.root_hash.hex(),
            "root2": second.root_hash.hex(),
            "prefix_root": proven.prefix_root.hex(),
        },
        as_json,
        f"PROVEN: {first.origin} signed a checkpoint of size {first.size} with root "
        f"{first.root_hash.hex()} and one of size {second.size} whose first {first.size} entries "
        f"hash to {proven.prefix_root.hex()}: a split view",
    )


# -- static mirrors -----------------------------------------------------------------------------


def _mirror(
    source: str,
    directory: Path,
    vkey: str | None,
    *,
    fresh: bool,
    as_json: bool,
    quiet: bool,
    workers: int | None,
    time_ms: int | None,
    mirror_key: Path | None = None,
) -> None:
    from ledger.verifier.mirror import STATE_DIR, mirror_log
    from ledger.witness.witness import parse_witness_keys

    log_source: LogSource
    log_source, log_key = open_source(source, vkey)
    cosigners = []
    if mirror_key is not None:
        try:
            cosigners = list(parse_witness_keys(mirror_key.read_text(encoding="utf-8")))
        except OSError as exc:
            fail(f"couldn't read the mirror key {mirror_key}: {exc}")
        except LedgerError as exc:
            fail_with(exc, 2)
    try:
        result = _run(
            "mirroring",
            quiet,
            mirror_log,
            log_source,
            log_key,
            directory,
            fresh=fresh,
            audit_time_ms=time_ms if time_ms is not None else _now_ms(),
            schemas=SCHEMAS,
            workers=workers,
            fetch_threads=_fetch_threads(source),
            cosigners=cosigners,
        )
    except VerificationError as exc:
        evidence = directory / STATE_DIR / "split-view.json"
        raise _verification_failed(exc, as_json, evidence, None, source) from None
    except RefusedError as exc:
        fail_with(exc, 2)
    except LedgerError as exc:
        fail_with(exc, 1)
    emit(
        result.to_json(),
        as_json,
        _summary_text(result.verified)
        + f"; {result.files_written} files written to {directory}"
        + (f"; cosigned by mirror {cosigners[0].name}" if result.cosignatures else "")
        + f"; origin hash {result.to_json()['origin_hash']}",
    )


def export(
    source: Annotated[str, typer.Argument(help="service URL, mirror directory or database URL")],
    directory: Annotated[Path, typer.Argument(help="the new mirror directory")],
    vkey: VkeyOption = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
    workers: WorkersOption = None,
    time_ms: TimeOption = None,
) -> None:
    """Verify a whole log and write it as a static tlog-tiles directory (checkpoint, tiles,
    bundles) with the JSON Schemas, the precedent report and a README."""
    _mirror(
        source,
        directory,
        vkey,
        fresh=True,
        as_json=as_json,
        quiet=quiet,
        workers=workers,
        time_ms=time_ms,
    )


def mirror(
    source: Annotated[str, typer.Argument(help="service URL, mirror directory or database URL")],
    directory: Annotated[Path, typer.Argument(help="the mirror directory (created if missing)")],
    vkey: VkeyOption = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
    workers: WorkersOption = None,
    time_ms: TimeOption = None,
    key: Annotated[
        Path | None,
        typer.Option(
            "--key",
            help="the mirror's own key file (as `amnesty witness keygen` writes: a 0x04 line, "
            "optionally a 0x06 line, one name — not a witness's key): the served checkpoint "
            "then carries the mirror's cosignature (C2SP tlog-mirror)",
        ),
    ] = None,
) -> None:
    """Bring a static mirror up to date: verify what is new since its last run (proving the
    log consistent with it), then write the new files, the report and last the checkpoint,
    cosigned by the mirror with --key. Serve DIR at <monitoring prefix>/<origin hash>/."""
    _mirror(
        source,
        directory,
        vkey,
        fresh=False,
        as_json=as_json,
        quiet=quiet,
        workers=workers,
        time_ms=time_ms,
        mirror_key=key,
    )


def register(app: typer.Typer) -> None:
    """Add the verifier's commands to the ``amnesty`` app."""
    app.command()(verify)
    app.command()(monitor)
    app.command()(export)
    app.command()(mirror)
    app.add_typer(proof_app, name="proof")
    app.add_typer(evidence_app, name="evidence")
