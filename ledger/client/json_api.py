"""The JSON API client (httpx): :class:`LedgerClient`, which verifies everything it returns.

It wraps the service's JSON API (``/v1/...``) and returns only what a checkpoint signed with
the pinned log key vouches for, as :mod:`ledger.client.answers` types. The transport is
:class:`~ledger.client.source.HttpLogSource`; verification against the pinned key and the
trusted checkpoint is :class:`~ledger.client.pinned.PinnedLog`; replaying the log to recompute
the precedent report is :func:`ledger.client.replica.recompute_precedent`.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from ledger.client import replica
from ledger.client.answers import (
    EntryPage,
    OfferHistory,
    PrecedentPage,
    PreparedApplication,
    SubmissionRefused,
    VerifiedEntry,
    VerifiedHead,
    VerifiedOffer,
    VerifiedPrecedent,
    VerifiedReceipt,
    VerifiedSubject,
    b64_field,
    hashes_field,
    int_field,
    int_text_field,
    object_field,
)
from ledger.client.pinned import PinnedLog
from ledger.client.source import USER_AGENT, HttpLogSource, RemoteError, raise_for_error
from ledger.errors import MalformedError, StorageError, VerificationError
from ledger.protocol.audit import ApplicationSummary, PrecedentReport, SubjectSummary
from ledger.statements.entry import LogEntry
from ledger.statements.statement import parse_statement, parse_unsigned_statement
from ledger.tlog.checkpoint import Checkpoint
from ledger.tlog.merkle import verify_consistency, verify_inclusion
from ledger.tlog.note import VerifierKey


class LedgerClient:
    """A client for an amnesty-ledger service that verifies everything it returns.

    Trust is the log's vkey, pinned at construction, and nothing the server says. Every method:

    1. opens each checkpoint the server names with the pinned key (signature and origin);
    2. checks it is consistent with the largest checkpoint this client has verified before
       (RFC 9162 consistency proof fetched from the server and checked here); two checkpoints
       that cannot be reconciled raise :class:`~ledger.client.answers.SplitViewError` carrying
       both as evidence;
    3. checks the tree head an answer was computed at against that checkpoint (equal roots, or
       a consistency proof from the smaller size);
    4. checks each returned entry's inclusion proof against that head, decodes it and checks
       that what the server said about it (statement fields, terms) is what the entry says.

    Verification failures raise :class:`~ledger.errors.VerificationError` (or a subclass);
    server errors raise :class:`~ledger.client.source.RemoteError`; malformed answers
    :class:`MalformedError`. ``last_checkpoint`` is the newest verified checkpoint note: persist
    it and pass it back as ``trusted_checkpoint`` to keep checking consistency across runs. Not
    thread-safe.
    """

    def __init__(
        self,
        base_url: str,
        log_vkey: str | VerifierKey,
        *,
        http: httpx.Client | None = None,
        timeout: float = 30.0,
        trusted_checkpoint: bytes | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.log_key = (
            log_vkey if isinstance(log_vkey, VerifierKey) else VerifierKey.parse(log_vkey)
        )
        self.origin = self.log_key.name
        self._http = http or httpx.Client(
            timeout=timeout, headers={"User-Agent": USER_AGENT}, follow_redirects=False
        )
        self._source = HttpLogSource(self.base_url, client=self._http)
        self._pinned = PinnedLog(
            self.log_key, self._consistency_hashes, trusted_checkpoint=trusted_checkpoint
        )

    def __enter__(self) -> LedgerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    @property
    def last_checkpoint(self) -> bytes | None:
        """The newest checkpoint note this client has verified (persist it between runs)."""
        return self._pinned.trusted_note

    # -- transport ------------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        return object_field(self._source.get_json(path, clean), path)

    def _post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._http.post(f"{self.base_url}{path}", json=body)
        except httpx.HTTPError as exc:
            raise StorageError(f"couldn't reach {self.base_url}: {exc}") from exc
        raise_for_error(response, f"post {path}")
        try:
            return object_field(response.json(), path)
        except ValueError as exc:
            raise MalformedError(f"couldn't parse the answer to {path}: {exc}") from exc

    # -- verification ---------------------------------------------------------------------------

    def _consistency_hashes(self, size1: int, size2: int) -> list[bytes]:
        """The server's consistency proof between two sizes, unverified (:class:`PinnedLog`
        checks it)."""
        proof = self._get("/v1/proofs/consistency", {"from": size1, "to": size2})
        return hashes_field(proof.get("hashes"), "consistency proof")

    def accept_checkpoint(self, note: bytes) -> Checkpoint:
        """Verify a checkpoint note with the pinned key and against the trusted checkpoint.

        Steps: (1) signature and origin; (2) if it is newer than the trusted checkpoint, a
        consistency proof from the trusted size, and it becomes trusted; if older, a
        consistency proof to the trusted size; if the same size, the same root. Raises
        :class:`~ledger.client.answers.SplitViewError` when the two cannot be reconciled.
        """
        return self._pinned.accept_checkpoint(note)

    # -- reads ----------------------------------------------------------------------------------

    def checkpoint(self) -> Checkpoint:
        """The latest checkpoint (``GET /checkpoint``), verified and consistent."""
        return self.accept_checkpoint(self._source.checkpoint())

    def llms_txt(self) -> str:
        """``/llms.txt`` (plain text for models; nothing in it is verified)."""
        return self._source.get_text("/llms.txt")

    def entry(self, index: int) -> VerifiedEntry:
        """Entry ``index`` with its inclusion proof and tlog-proof both verified."""
        answer = self._get(f"/v1/entries/{index}")
        head = self._pinned.head(answer.get("checkpoint"))
        verified = self._pinned.entry(answer.get("entry"), head)
        proof_text = answer.get("tlog_proof")
        if not isinstance(proof_text, str):
            raise MalformedError(f"couldn't read entry {index}: tlog_proof is missing")
        self.verify_tlog_proof(proof_text.encode("utf-8"), verified.data)
        if verified.index != index:
            raise VerificationError(f"couldn't verify entry {index}: got entry {verified.index}")
        return verified

    def find_statement(self, statement_id: bytes) -> VerifiedEntry | None:
        """The verified entry holding the statement with this id, or ``None`` if the server
        says it is not logged (a claim of absence cannot be verified from one answer)."""
        try:
            answer = self._get(f"/v1/statements/{statement_id.hex()}")
        except RemoteError as exc:
            if exc.status == 404:
                return None
            raise
        head = self._pinned.head(answer.get("checkpoint"))
        entry = self._pinned.entry(answer.get("entry"), head)
        if entry.statement.statement_id != statement_id:
            raise VerificationError(
                f"couldn't verify statement {statement_id.hex()}: the server returned entry "
                f"{entry.index}, which holds another statement"
            )
        return entry

    def tlog_proof(self, index: int) -> bytes:
        """The downloadable C2SP tlog-proof of entry ``index``, verified against the entry."""
        entry = self.entry(index)
        proof = self._source.get_text(f"/v1/entries/{index}/tlog-proof").encode("utf-8")
        self.verify_tlog_proof(proof, entry.data)
        return proof

    def verify_tlog_proof(self, proof: bytes, entry: bytes) -> Checkpoint:
        """Verify a C2SP tlog-proof for ``entry`` (its leaf bytes) offline with the pinned key,
        then its checkpoint against the trusted one. Returns the proof's checkpoint."""
        return self._pinned.verify_tlog_proof(proof, entry)

    def entries(
        self,
        *,
        after: int = -1,
        limit: int = 50,
        statement_type: str | None = None,
        subject: str | None = None,
        signer: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
    ) -> EntryPage:
        """A page of entries (see ``GET /v1/entries``), each verified; filters are checked on
        what the entries say where they can be (type, signer, time, order)."""
        answer = self._get(
            "/v1/entries",
            {
                "after": after,
                "limit": limit,
                "type": statement_type,
                "subject": subject,
                "signer": signer,
                "since_ms": since_ms,
                "until_ms": until_ms,
            },
        )
        head = self._pinned.head(answer.get("checkpoint"))
        raw = answer.get("entries")
        if not isinstance(raw, list):
            raise MalformedError("couldn't read entries: not a list")
        entries = tuple(self._pinned.entry(v, head) for v in raw)
        previous = after
        for e in entries:
            wrong = (
                e.index <= previous
                or (statement_type is not None and e.statement.type != statement_type)
                or (signer is not None and signer not in e.statement.signers)
                or (since_ms is not None and e.entry.log_time_ms < since_ms)
                or (until_ms is not None and e.entry.log_time_ms >= until_ms)
            )
            if wrong:
                raise VerificationError(
                    f"couldn't verify entries: entry {e.index} does not match the query"
                )
            previous = e.index
        if len(entries) > limit:
            raise VerificationError(f"couldn't verify entries: more than {limit} returned")
        next_after = answer.get("next_after")
        return EntryPage(
            head, entries, None if next_after is None else int_field(next_after, "next")
        )

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """An inclusion proof of entry ``index``, verified against a verified tree head."""
        answer = self._get("/v1/proofs/inclusion", {"index": index, "size": size})
        head = self._pinned.head(answer.get("checkpoint"))
        hashes = hashes_field(answer.get("hashes"), "inclusion proof")
        leaf = b64_field(answer.get("leaf_hash"), "leaf hash")
        verify_inclusion(index, head.size, leaf, hashes, head.root_hash)
        return hashes

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """A consistency proof between two tree sizes, verified against a verified head."""
        answer = self._get("/v1/proofs/consistency", {"from": size1, "to": size2})
        head = self._pinned.head(answer.get("checkpoint"))
        hashes = hashes_field(answer.get("hashes"), "consistency proof")
        verify_consistency(
            size1,
            head.size,
            hashes,
            b64_field(answer.get("from_root_hash"), "root"),
            head.root_hash,
        )
        return hashes

    def offer(self) -> VerifiedOffer:
        """The offer in force, read from its verified signed entry."""
        answer = self._get("/v1/offer")
        head = self._pinned.head(answer.get("checkpoint"))
        return self._pinned.offer(answer.get("offer"), head)

    def offers(self) -> OfferHistory:
        """Every published version, each read from its verified signed entry."""
        answer = self._get("/v1/offers")
        head = self._pinned.head(answer.get("checkpoint"))
        raw = answer.get("versions")
        if not isinstance(raw, list):
            raise MalformedError("couldn't read offers: versions is not a list")
        versions = tuple(self._pinned.offer(v, head) for v in raw)
        in_force = answer.get("in_force_version")
        diffs = answer.get("diffs")
        return OfferHistory(
            head,
            versions,
            None if in_force is None else int_field(in_force, "in_force_version"),
            tuple(object_field(d, "diff") for d in diffs) if isinstance(diffs, list) else (),
        )

    def subject(self, key: str | int, *, verify_timeline: bool = False) -> VerifiedSubject:
        """A subject by id or vkey, at a verified head. With ``verify_timeline``, every entry
        of the timeline page is fetched, verified, and checked to be of the type the timeline
        says, and the subject's first application to carry its first key."""
        path = "/v1/subjects/" + quote(str(key), safe="")
        answer = self._get(path)
        head = self._pinned.head(answer.get("checkpoint"))
        view = object_field(answer.get("subject"), "subject")
        if verify_timeline:
            for event in view.get("timeline", []):
                item = object_field(event, "timeline event")
                entry = self.entry(int_field(item.get("index"), "timeline index"))
                if entry.statement.type != item.get("type"):
                    raise VerificationError(
                        f"couldn't verify subject {key}: entry {entry.index} is a "
                        f"{entry.statement.type}, not a {item.get('type')}"
                    )
            first = self.entry(int_field(view.get("subject_id"), "subject id"))
            vkeys = view.get("vkeys")
            if not (
                first.statement.type == "application"
                and isinstance(vkeys, list)
                and vkeys
                and first.statement.body.get("vkey") == vkeys[0]
            ):
                raise VerificationError(
                    f"couldn't verify subject {key}: its first application is not its key's"
                )
        return VerifiedSubject(head, view)

    def precedent(
        self, at: int | None = None, *, audit_time_ms: int | None = None, recompute: bool = False
    ) -> VerifiedPrecedent:
        """The precedent report, its tree head verified and its schema checked. With
        ``recompute``, the client fetches every entry up to that size from the tiles, verifies
        them (hash chain, signatures, authority, protocol admission), replays the audit with
        the report's audit time and requires the very same report."""
        answer = self._get("/v1/precedent", {"at": at, "audit_time_ms": audit_time_ms})
        head = self._pinned.head(answer.get("checkpoint"))
        report = object_field(answer.get("report"), "report")
        PrecedentReport.model_validate(report)
        named = object_field(report.get("checkpoint"), "report checkpoint")
        if named != {
            "origin": self.origin,
            "size": head.size,
            "root_hash_b64": base64.b64encode(head.root_hash).decode(),
        }:
            raise VerificationError(
                "couldn't verify the precedent report: it names another tree head than the "
                "verified one"
            )
        if recompute:
            ours = self.recompute_precedent(
                head, int_field(report.get("audit_time_ms"), "audit time")
            )
            if ours != report:
                raise VerificationError(
                    f"couldn't verify the precedent report at size {head.size}: replaying the "
                    "log gives a different report"
                )
        return VerifiedPrecedent(head, report, recompute)

    def precedent_summary(self) -> tuple[VerifiedHead, dict[str, Any]]:
        """The precedent summary (verdicts, first applicant, totals) at a verified head. Derived
        state: the full report (:meth:`precedent` with ``recompute``) is what can be checked."""
        answer = self._get("/v1/precedent/summary")
        head = self._pinned.head(answer.get("checkpoint"))
        return head, answer

    def precedent_applications(
        self, cursor: str | None = None, limit: int | None = None
    ) -> PrecedentPage:
        """A page of the precedent report's ``applications`` (``GET /v1/precedent/applications``)
        at a verified head, after ``cursor`` (a previous page's ``next_cursor``; None for the
        first page). See :class:`PrecedentPage` for what is checked."""
        return self._precedent_page("applications", "index", ApplicationSummary, cursor, limit)

    def precedent_subjects(
        self, cursor: str | None = None, limit: int | None = None
    ) -> PrecedentPage:
        """A page of the precedent report's ``subjects`` with their timelines
        (``GET /v1/precedent/subjects``) at a verified head, after ``cursor`` (a previous page's
        ``next_cursor``; None for the first page). See :class:`PrecedentPage`."""
        return self._precedent_page("subjects", "subject_id", SubjectSummary, cursor, limit)

    def iter_precedent_applications(self, limit: int | None = None) -> Iterator[PrecedentPage]:
        """Every page of the precedent's applications, first to last, each verified as
        :meth:`precedent_applications` verifies it. Each page is read at the latest checkpoint
        when it is asked for: if the log grows during the walk, later pages name larger heads,
        every checkpoint is checked consistent with the ones before, and cursors (entry
        indexes) continue where they stopped, so each application is yielded once."""
        return self._walk_pages(self.precedent_applications, limit)

    def iter_precedent_subjects(self, limit: int | None = None) -> Iterator[PrecedentPage]:
        """Every page of the precedent's subjects, first to last, each verified as
        :meth:`precedent_subjects` verifies it (see :meth:`iter_precedent_applications` for a
        walk across log growth)."""
        return self._walk_pages(self.precedent_subjects, limit)

    @staticmethod
    def _walk_pages(
        read: Callable[[str | None, int | None], PrecedentPage], limit: int | None
    ) -> Iterator[PrecedentPage]:
        """Read page after page with ``read(cursor, limit)`` until one has no next cursor."""
        cursor: str | None = None
        while True:
            page = read(cursor, limit)
            yield page
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def _precedent_page(
        self,
        name: str,
        key: str,
        model: type[ApplicationSummary] | type[SubjectSummary],
        cursor: str | None,
        limit: int | None,
    ) -> PrecedentPage:
        """Fetch ``/v1/precedent/{name}``; verify its head, each item's schema, that the items
        follow ``cursor`` in ascending ``key`` inside the head, and that ``next_cursor`` is the
        last item's key (or null)."""
        path = f"/v1/precedent/{name}"
        answer = self._get(path, {"cursor": cursor, "limit": limit})
        head = self._pinned.head(answer.get("checkpoint"))
        raw = answer.get(name)
        if not isinstance(raw, list):
            raise MalformedError(f"couldn't read {path}: `{name}` is not a list")
        items: list[dict[str, Any]] = []
        previous = -1 if not cursor else int_text_field(cursor, "cursor")
        for value in raw:
            item = object_field(value, f"{path} item")
            try:
                model.model_validate(item)
            except ValidationError as exc:
                raise MalformedError(f"couldn't read {path} item: {exc}") from None
            at = int_field(item.get(key), f"{path} item {key}")
            if not previous < at < head.size:
                raise VerificationError(
                    f"couldn't verify {path}: item {key} {at} is not after {previous} and "
                    f"inside the verified tree of {head.size} entries"
                )
            previous = at
            items.append(item)
        next_cursor = answer.get("next_cursor")
        if next_cursor is not None and (not items or next_cursor != str(previous)):
            raise VerificationError(
                f"couldn't verify {path}: next_cursor {next_cursor!r} is not the last item's {key}"
            )
        return PrecedentPage(
            head,
            int_field(answer.get("audit_time_ms"), "audit time"),
            tuple(items),
            int_field(answer.get("total"), f"{path} total"),
            next_cursor,
        )

    def recompute_precedent(self, head: VerifiedHead, audit_time_ms: int) -> dict[str, Any]:
        """Replay entries ``[0, head.size)`` from the tiles, verifying each (leaf hashes against
        ``head``'s root, hash chain, statement signatures, authority, admission), and compute
        the precedent report at ``audit_time_ms`` (see :func:`replica.recompute_precedent`)."""
        return replica.recompute_precedent(self._source, self.origin, head, audit_time_ms)

    # -- writes ---------------------------------------------------------------------------------

    def prepare_application(
        self,
        vkey: str,
        name: str,
        claims: dict[str, dict[str, Any]],
        *,
        time_ms: int | None = None,
    ) -> PreparedApplication:
        """Ask the server for the unsigned application of ``vkey``; check that it is exactly
        the application asked for, under the verified offer in force, before returning it."""
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

    def health(self) -> dict[str, Any]:
        """``/healthz`` as the server reports it (not verifiable; 503 is returned, not raised)."""
        try:
            response = self._http.get(f"{self.base_url}/healthz")
        except httpx.HTTPError as exc:
            raise StorageError(f"couldn't reach {self.base_url}: {exc}") from exc
        if response.status_code not in (200, 503):
            raise_for_error(response, "check health")
        return object_field(response.json(), "health")
