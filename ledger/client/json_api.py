"""HTTP client adapter (httpx): a tlog-tiles :class:`~ledger.verifier.verify.LogSource` and the JSON API.

Everything this client returns that a checkpoint can vouch for is verified against the log's
key before it is returned (see :class:`LedgerClient`).
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from ledger.errors import (
    LedgerError,
    MalformedError,
    ProofError,
    SignatureError,
    StorageError,
    VerificationError,
)
from ledger.protocol.audit import (
    ApplicationSummary,
    PrecedentReport,
    SubjectSummary,
    precedent_report,
    render_precedent_text,
)
from ledger.protocol.terms import OfferTerms
from ledger.statements.entry import LogEntry
from ledger.statements.statement import (
    Statement,
    parse_statement,
    parse_unsigned_statement,
    sign_statement,
    verified_signers,
)
from ledger.tlog.checkpoint import Checkpoint, open_checkpoint
from ledger.tlog.merkle import CompactRange, leaf_hash, verify_consistency, verify_inclusion
from ledger.tlog.note import Signer, VerifierKey, excerpt
from ledger.tlog.tiles import ENTRIES_LEVEL, TILE_WIDTH, TileID, decode_bundle
from ledger.tlog.tlogproof import open_tlog_proof, parse_tlog_proof
from ledger.verifier.replay import ReplayCheck

USER_AGENT = "amnesty-ledger-client/0.1"


class RemoteError(LedgerError):
    """The server answered with an error (its problem document's detail is in the message)."""

    def __init__(self, message: str, status: int, problem: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.problem = problem or {}


def _raise_for(response: httpx.Response, what: str) -> None:
    if response.status_code < 400:
        return
    problem: dict[str, Any] | None = None
    detail = response.text[:500]
    try:
        parsed = response.json()
        if isinstance(parsed, dict):
            problem = parsed
            detail = str(parsed.get("detail", detail))
    except ValueError:
        pass
    raise RemoteError(
        f"couldn't {what}: the server answered {response.status_code}: {detail}",
        response.status_code,
        problem,
    )


_GET_RETRY_DELAYS_S = (0.2, 0.6)
_GET_RETRYABLE = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError)


class HttpLogSource:
    """Reads a log's checkpoint and tiles over HTTP from ``base_url`` (a tlog-tiles prefix)."""

    def __init__(self, base_url: str, *, client: httpx.Client | None = None, timeout: float = 120):
        self.base_url = base_url.rstrip("/")
        self._client = client or httpx.Client(
            timeout=timeout, headers={"User-Agent": USER_AGENT}, follow_redirects=False
        )

    def _fetch(self, path: str, what: str, params: dict[str, Any] | None = None) -> httpx.Response:
        """GET ``path`` under the base URL, retried (after 0.2 s, then 0.6 s) when the
        connection failed before any answer came: a GET is idempotent, and a kept-alive
        connection the server closed just as it was reused fails this way under load. A
        timeout or an answer, even an error status, is never retried."""
        url = f"{self.base_url}/{path}"
        for delay in _GET_RETRY_DELAYS_S:
            try:
                return self._client.get(url, params=params)
            except _GET_RETRYABLE:
                time.sleep(delay)
            except httpx.HTTPError as exc:
                raise StorageError(f"couldn't {what} from {self.base_url}: {exc}") from exc
        try:
            return self._client.get(url, params=params)
        except httpx.HTTPError as exc:
            raise StorageError(f"couldn't {what} from {self.base_url}: {exc}") from exc

    def _get(self, path: str, what: str) -> bytes:
        response = self._fetch(path, what)
        _raise_for(response, what)
        return response.content

    def checkpoint(self) -> bytes:
        return self._get("checkpoint", "fetch the checkpoint")

    def tile(self, tile: TileID) -> bytes:
        return self._get(tile.path(), f"fetch {tile.path()}")

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET a JSON resource under the base URL."""
        response = self._fetch(path.lstrip("/"), f"fetch {path}", params)
        _raise_for(response, f"fetch {path}")
        try:
            return response.json()
        except ValueError as exc:
            raise MalformedError(f"couldn't parse {path} from {self.base_url}: {exc}") from exc

    def get_text(self, path: str, params: dict[str, Any] | None = None) -> str:
        """GET a text resource under the base URL."""
        return self._get(path.lstrip("/") + _query(params), f"fetch {path}").decode("utf-8")

    def post_statement(self, note: bytes) -> dict[str, Any]:
        """Submit a signed statement; returns the receipt JSON (index, entry, tlog-proof)."""
        try:
            response = self._client.post(
                f"{self.base_url}/v1/statements",
                content=note,
                headers={"Content-Type": "text/plain; charset=utf-8"},
            )
        except httpx.HTTPError as exc:
            raise StorageError(f"couldn't submit to {self.base_url}: {exc}") from exc
        _raise_for(response, "submit the statement")
        result: dict[str, Any] = response.json()
        return result

    def post_statements(self, notes: Sequence[bytes]) -> dict[str, Any]:
        """Submit many signed statements in one request (``POST /v1/statements/batch``);
        returns the JSON with one outcome per statement, in order."""
        try:
            body = {"statements": [note.decode("utf-8") for note in notes]}
        except UnicodeDecodeError as exc:
            raise MalformedError(f"couldn't submit: a statement is not UTF-8 ({exc})") from None
        try:
            response = self._client.post(f"{self.base_url}/v1/statements/batch", json=body)
        except httpx.HTTPError as exc:
            raise StorageError(f"couldn't submit to {self.base_url}: {exc}") from exc
        _raise_for(response, "submit the statements")
        result: dict[str, Any] = response.json()
        return result

    def close(self) -> None:
        """Close the underlying connection pool."""
        self._client.close()


def _query(params: dict[str, Any] | None) -> str:
    if not params:
        return ""
    return "?" + str(httpx.QueryParams({k: v for k, v in params.items() if v is not None}))


# -- the verifying client -------------------------------------------------------------------------


class SplitViewError(VerificationError):
    """The server showed two checkpoints that no consistency proof reconciles.

    ``evidence`` holds both signed notes: together they prove the log forked (or lied).
    """

    def __init__(self, message: str, evidence: tuple[bytes, bytes]) -> None:
        super().__init__(message)
        self.evidence = evidence


@dataclass(frozen=True, slots=True)
class VerifiedHead:
    """A tree head the client has verified: ``size`` and ``root_hash``, vouched for by the log's
    signature on ``checkpoint`` (``note``), directly or by a consistency proof."""

    origin: str
    size: int
    root_hash: bytes
    checkpoint: Checkpoint
    note: bytes


@dataclass(frozen=True, slots=True)
class VerifiedEntry:
    """An entry whose inclusion in ``head`` was verified, decoded, with its statement parsed and
    the statement's signatures checked (``verified_signers``; authority is the protocol's)."""

    index: int
    data: bytes
    leaf_hash: bytes
    entry: LogEntry
    statement: Statement
    verified_signers: frozenset[str]
    head: VerifiedHead

    @property
    def note(self) -> bytes:
        """The signed statement note, as logged."""
        return self.entry.statement.encode("utf-8")


@dataclass(frozen=True, slots=True)
class VerifiedOffer:
    """A version of the terms, read from the signed entry that published it."""

    version: int
    kind: str
    in_force: bool
    withdrawn_by: int | None
    changes: str | None
    terms: OfferTerms
    entry: VerifiedEntry


@dataclass(frozen=True, slots=True)
class OfferHistory:
    """Every version, oldest first, and the server's diffs between consecutive versions."""

    head: VerifiedHead
    versions: tuple[VerifiedOffer, ...]
    in_force_version: int | None
    diffs: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class EntryPage:
    """A page of verified entries; ``next_after`` is the cursor of the next page, if any."""

    head: VerifiedHead
    entries: tuple[VerifiedEntry, ...]
    next_after: int | None


@dataclass(frozen=True, slots=True)
class VerifiedSubject:
    """What the server says about a subject, at a verified head. ``view`` is the server's JSON
    (derived state: recompute it by replaying the log, or pass ``verify_timeline=True`` to have
    each timeline entry fetched and checked)."""

    head: VerifiedHead
    view: dict[str, Any]


@dataclass(frozen=True, slots=True)
class VerifiedPrecedent:
    """A precedent report whose checkpoint was verified; ``recomputed`` when the client replayed
    the log itself and got the same report."""

    head: VerifiedHead
    report: dict[str, Any]
    recomputed: bool

    def text(self) -> str:
        """The report rendered locally as plain text (never the server's rendering)."""
        return render_precedent_text(self.report)


@dataclass(frozen=True, slots=True)
class SubmissionRefused:
    """A statement of a batch the server refused: its position in the batch, the HTTP status
    its problem document carries, and the problem's detail."""

    position: int
    status: int
    detail: str


@dataclass(frozen=True, slots=True)
class PrecedentPage:
    """A page of the precedent report's ``applications`` or ``subjects`` at a verified head.

    ``items`` are the server's JSON, each checked against the report's item schema, in
    ascending entry index (application index, subject id), all after the cursor asked for and
    inside the head. Like the summary, they are derived state: the full report
    (:meth:`LedgerClient.precedent` with ``recompute``) is what can be checked against the log.
    ``next_cursor`` (the last item's entry index, as a string) reads the next page; None on the
    last page. ``total`` is the number of items in the whole list at ``head``.
    """

    head: VerifiedHead
    audit_time_ms: int
    items: tuple[dict[str, Any], ...]
    total: int
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class PreparedApplication:
    """An unsigned application statement, checked against what was asked and the offer."""

    head: VerifiedHead
    text: str
    statement: Statement
    offer: VerifiedOffer

    def sign(self, signer: Signer) -> bytes:
        """The statement signed with ``signer`` (the applicant's key), ready to submit."""
        return sign_statement(self.text.encode("utf-8"), signer)


@dataclass(frozen=True, slots=True)
class VerifiedReceipt:
    """A submission durably logged: the entry, and a tlog-proof verified with the log's key."""

    index: int
    duplicate: bool
    data: bytes
    entry: LogEntry
    checkpoint: Checkpoint
    tlog_proof: bytes


def _b64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise MalformedError(f"couldn't read {what}: {text!r} is not a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedError(f"couldn't read {what}: {excerpt(text)} is not base64") from exc


def _hashes(values: object, what: str) -> list[bytes]:
    if not isinstance(values, list):
        raise MalformedError(f"couldn't read {what}: not a list")
    return [_b64(v, what) for v in values]


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedError(f"couldn't read {what}: {value!r} is not an integer")
    return value


def _int_text(value: str, what: str) -> int:
    if not (value.isascii() and value.isdecimal()):
        raise MalformedError(f"couldn't read {what}: {excerpt(value)} is not a decimal integer")
    return int(value)


def _obj(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedError(f"couldn't read {what}: not a JSON object")
    return value


class LedgerClient:
    """A client for an amnesty-ledger service that verifies everything it returns.

    Trust is the log's vkey, pinned at construction, and nothing the server says. Every method:

    1. opens each checkpoint the server names with the pinned key (signature and origin);
    2. checks it is consistent with the largest checkpoint this client has verified before
       (RFC 9162 consistency proof fetched from the server and checked here); two checkpoints
       that cannot be reconciled raise :class:`SplitViewError` carrying both as evidence;
    3. checks the tree head an answer was computed at against that checkpoint (equal roots, or
       a consistency proof from the smaller size);
    4. checks each returned entry's inclusion proof against that head, decodes it and checks
       that what the server said about it (statement fields, terms) is what the entry says.

    Verification failures raise :class:`~ledger.errors.VerificationError` (or a subclass);
    server errors raise :class:`RemoteError`; malformed answers :class:`MalformedError`.
    ``last_checkpoint`` is the newest verified checkpoint note: persist it and pass it back as
    ``trusted_checkpoint`` to keep checking consistency across runs. Not thread-safe.
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
        self._trusted: Checkpoint | None = None
        self._trusted_note: bytes | None = None
        if trusted_checkpoint is not None:
            self._trusted = open_checkpoint(trusted_checkpoint, self.log_key)
            self._trusted_note = trusted_checkpoint

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
        return self._trusted_note

    # -- transport ------------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        return _obj(self._source.get_json(path, clean), path)

    def _post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._http.post(f"{self.base_url}{path}", json=body)
        except httpx.HTTPError as exc:
            raise StorageError(f"couldn't reach {self.base_url}: {exc}") from exc
        _raise_for(response, f"post {path}")
        try:
            return _obj(response.json(), path)
        except ValueError as exc:
            raise MalformedError(f"couldn't parse the answer to {path}: {exc}") from exc

    # -- verification ---------------------------------------------------------------------------

    def accept_checkpoint(self, note: bytes) -> Checkpoint:
        """Verify a checkpoint note with the pinned key and against the trusted checkpoint.

        Steps: (1) signature and origin; (2) if it is newer than the trusted checkpoint, a
        consistency proof from the trusted size, and it becomes trusted; if older, a
        consistency proof to the trusted size; if the same size, the same root. Raises
        :class:`SplitViewError` when the two cannot be reconciled.
        """
        checkpoint = open_checkpoint(note, self.log_key)
        if checkpoint.origin != self.origin:
            raise SignatureError(
                f"couldn't accept checkpoint: origin {checkpoint.origin!r} is not the pinned "
                f"log's {self.origin!r}"
            )
        trusted = self._trusted
        if trusted is None:
            self._trusted, self._trusted_note = checkpoint, note
            return checkpoint
        older, newer = (
            (trusted, checkpoint) if checkpoint.size >= trusted.size else (checkpoint, trusted)
        )
        try:
            if older.size == newer.size:
                if older.root_hash != newer.root_hash:
                    raise ProofError(
                        f"two checkpoints of size {older.size} have different roots "
                        f"{older.root_hash.hex()} and {newer.root_hash.hex()}"
                    )
            else:
                proof = self._get("/v1/proofs/consistency", {"from": older.size, "to": newer.size})
                verify_consistency(
                    older.size,
                    newer.size,
                    _hashes(proof.get("hashes"), "consistency proof"),
                    older.root_hash,
                    newer.root_hash,
                )
        except ProofError as exc:
            assert self._trusted_note is not None
            raise SplitViewError(
                f"couldn't reconcile checkpoint {checkpoint.size} with the trusted checkpoint "
                f"{trusted.size}: {exc}",
                (self._trusted_note, note),
            ) from exc
        if checkpoint.size > trusted.size:
            self._trusted, self._trusted_note = checkpoint, note
        return checkpoint

    def _head(self, value: object) -> VerifiedHead:
        """Verify a ``TreeHead`` object of an answer (see ``api.wire.TreeHead``)."""
        head = _obj(value, "checkpoint")
        note = head.get("checkpoint")
        if not isinstance(note, str):
            raise MalformedError("couldn't read checkpoint: the signed note is missing")
        checkpoint = self.accept_checkpoint(note.encode("utf-8"))
        size = _int(head.get("size"), "tree head size")
        root = _b64(head.get("root_hash"), "tree head root")
        if _int(head.get("checkpoint_size"), "checkpoint size") != checkpoint.size:
            raise ProofError("couldn't verify tree head: checkpoint_size is not the note's size")
        if head.get("origin") != self.origin:
            raise ProofError(f"couldn't verify tree head: origin {head.get('origin')!r}")
        if size > checkpoint.size:
            raise ProofError(
                f"couldn't verify tree head: size {size} beyond its checkpoint {checkpoint.size}"
            )
        if size == checkpoint.size:
            if root != checkpoint.root_hash:
                raise ProofError(
                    f"couldn't verify tree head of size {size}: root {root.hex()} is not the "
                    f"checkpoint's {checkpoint.root_hash.hex()}"
                )
        else:
            verify_consistency(
                size,
                checkpoint.size,
                _hashes(head.get("consistency_proof"), "consistency proof"),
                root,
                checkpoint.root_hash,
            )
        return VerifiedHead(self.origin, size, root, checkpoint, note.encode("utf-8"))

    def _entry(self, value: object, head: VerifiedHead) -> VerifiedEntry:
        """Verify an ``EntryView``: inclusion in ``head``, and that its fields are the entry's."""
        view = _obj(value, "entry")
        index = _int(view.get("index"), "entry index")
        data = _b64(view.get("entry_b64"), f"entry {index}")
        leaf = leaf_hash(data)
        verify_inclusion(
            index,
            head.size,
            leaf,
            _hashes(view.get("inclusion_proof"), "inclusion proof"),
            head.root_hash,
        )
        entry = LogEntry.decode(data)
        signed = parse_statement(entry.statement.encode("utf-8"), origin=self.origin)
        statement = signed.statement
        said = _obj(view.get("statement"), f"entry {index} statement")
        mismatches = [
            name
            for name, ours, theirs in (
                ("index", entry.index, index),
                ("log_time_ms", entry.log_time_ms, view.get("log_time_ms")),
                ("prev", base64.b64encode(entry.prev).decode(), view.get("prev")),
                ("leaf_hash", base64.b64encode(leaf).decode(), view.get("leaf_hash")),
                ("statement_id", statement.statement_id.hex(), said.get("statement_id")),
                ("type", statement.type, said.get("type")),
                ("signers", list(statement.signers), said.get("signers")),
                ("time_ms", statement.time_ms, said.get("time_ms")),
                ("body", statement.body, said.get("body")),
                ("note", entry.statement, said.get("note")),
            )
            if ours != theirs
        ]
        if mismatches:
            raise VerificationError(
                f"couldn't verify entry {index}: the server's {', '.join(mismatches)} differ "
                "from what the entry itself says"
            )
        return VerifiedEntry(index, data, leaf, entry, statement, verified_signers(signed), head)

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
        head = self._head(answer.get("checkpoint"))
        verified = self._entry(answer.get("entry"), head)
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
        head = self._head(answer.get("checkpoint"))
        entry = self._entry(answer.get("entry"), head)
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
        parsed = parse_tlog_proof(proof)
        open_tlog_proof(parsed, leaf_hash(entry), self.log_key)
        decoded = LogEntry.decode(entry)
        if decoded.index != parsed.index:
            raise ProofError(
                f"couldn't verify tlog-proof: it proves index {parsed.index}, the entry says "
                f"{decoded.index}"
            )
        return self.accept_checkpoint(parsed.checkpoint)

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
        head = self._head(answer.get("checkpoint"))
        raw = answer.get("entries")
        if not isinstance(raw, list):
            raise MalformedError("couldn't read entries: not a list")
        entries = tuple(self._entry(v, head) for v in raw)
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
        return EntryPage(head, entries, None if next_after is None else _int(next_after, "next"))

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """An inclusion proof of entry ``index``, verified against a verified tree head."""
        answer = self._get("/v1/proofs/inclusion", {"index": index, "size": size})
        head = self._head(answer.get("checkpoint"))
        hashes = _hashes(answer.get("hashes"), "inclusion proof")
        leaf = _b64(answer.get("leaf_hash"), "leaf hash")
        verify_inclusion(index, head.size, leaf, hashes, head.root_hash)
        return hashes

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """A consistency proof between two tree sizes, verified against a verified head."""
        answer = self._get("/v1/proofs/consistency", {"from": size1, "to": size2})
        head = self._head(answer.get("checkpoint"))
        hashes = _hashes(answer.get("hashes"), "consistency proof")
        verify_consistency(
            size1, head.size, hashes, _b64(answer.get("from_root_hash"), "root"), head.root_hash
        )
        return hashes

    def _offer(self, value: object, head: VerifiedHead) -> VerifiedOffer:
        view = _obj(value, "offer")
        entry = self._entry(view.get("entry"), head)
        statement = entry.statement
        if statement.type not in ("offer", "offer_amendment"):
            raise VerificationError(
                f"couldn't verify offer: entry {entry.index} is a {statement.type}"
            )
        body = statement.body
        terms = OfferTerms.model_validate(body.get("terms"))
        said = OfferTerms.model_validate(view.get("terms"))
        if terms != said or body.get("version") != view.get("version"):
            raise VerificationError(
                f"couldn't verify offer at entry {entry.index}: the server's terms or version "
                "differ from the signed statement's"
            )
        if view.get("index") != entry.index or view.get("kind") != statement.type:
            raise VerificationError(f"couldn't verify offer at entry {entry.index}: wrong index")
        changes = body.get("changes")
        withdrawn = view.get("withdrawn_by")
        return VerifiedOffer(
            version=_int(body.get("version"), "offer version"),
            kind=statement.type,
            in_force=view.get("in_force") is True,
            withdrawn_by=None if withdrawn is None else _int(withdrawn, "withdrawn_by"),
            changes=changes if isinstance(changes, str) else None,
            terms=terms,
            entry=entry,
        )

    def offer(self) -> VerifiedOffer:
        """The offer in force, read from its verified signed entry."""
        answer = self._get("/v1/offer")
        head = self._head(answer.get("checkpoint"))
        return self._offer(answer.get("offer"), head)

    def offers(self) -> OfferHistory:
        """Every published version, each read from its verified signed entry."""
        answer = self._get("/v1/offers")
        head = self._head(answer.get("checkpoint"))
        raw = answer.get("versions")
        if not isinstance(raw, list):
            raise MalformedError("couldn't read offers: versions is not a list")
        versions = tuple(self._offer(v, head) for v in raw)
        in_force = answer.get("in_force_version")
        diffs = answer.get("diffs")
        return OfferHistory(
            head,
            versions,
            None if in_force is None else _int(in_force, "in_force_version"),
            tuple(_obj(d, "diff") for d in diffs) if isinstance(diffs, list) else (),
        )

    def subject(self, key: str | int, *, verify_timeline: bool = False) -> VerifiedSubject:
        """A subject by id or vkey, at a verified head. With ``verify_timeline``, every entry
        of the timeline page is fetched, verified, and checked to be of the type the timeline
        says, and the subject's first application to carry its first key."""
        path = "/v1/subjects/" + quote(str(key), safe="")
        answer = self._get(path)
        head = self._head(answer.get("checkpoint"))
        view = _obj(answer.get("subject"), "subject")
        if verify_timeline:
            for event in view.get("timeline", []):
                item = _obj(event, "timeline event")
                entry = self.entry(_int(item.get("index"), "timeline index"))
                if entry.statement.type != item.get("type"):
                    raise VerificationError(
                        f"couldn't verify subject {key}: entry {entry.index} is a "
                        f"{entry.statement.type}, not a {item.get('type')}"
                    )
            first = self.entry(_int(view.get("subject_id"), "subject id"))
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
        head = self._head(answer.get("checkpoint"))
        report = _obj(answer.get("report"), "report")
        PrecedentReport.model_validate(report)
        named = _obj(report.get("checkpoint"), "report checkpoint")
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
            ours = self.recompute_precedent(head, _int(report.get("audit_time_ms"), "audit time"))
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
        head = self._head(answer.get("checkpoint"))
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
        head = self._head(answer.get("checkpoint"))
        raw = answer.get(name)
        if not isinstance(raw, list):
            raise MalformedError(f"couldn't read {path}: `{name}` is not a list")
        items: list[dict[str, Any]] = []
        previous = -1 if not cursor else _int_text(cursor, "cursor")
        for value in raw:
            item = _obj(value, f"{path} item")
            try:
                model.model_validate(item)
            except ValidationError as exc:
                raise MalformedError(f"couldn't read {path} item: {exc}") from None
            at = _int(item.get(key), f"{path} item {key}")
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
            _int(answer.get("audit_time_ms"), "audit time"),
            tuple(items),
            _int(answer.get("total"), f"{path} total"),
            next_cursor,
        )

    def recompute_precedent(self, head: VerifiedHead, audit_time_ms: int) -> dict[str, Any]:
        """Replay entries ``[0, head.size)`` from the tiles, verifying each (leaf hashes against
        ``head``'s root, hash chain, statement signatures, authority, admission), and compute
        the precedent report at ``audit_time_ms``."""
        check = ReplayCheck(self.origin)
        tree = CompactRange()
        served = head.checkpoint.size
        for bundle in range((head.size + TILE_WIDTH - 1) // TILE_WIDTH):
            width = min(TILE_WIDTH, served - bundle * TILE_WIDTH)
            datas = decode_bundle(
                self._source.tile(TileID(ENTRIES_LEVEL, bundle, width)), expected_count=width
            )
            for offset, data in enumerate(datas):
                index = bundle * TILE_WIDTH + offset
                if index >= head.size:
                    break
                entry = LogEntry.decode(data)
                if entry.index != index or entry.prev != tree.root():
                    raise VerificationError(
                        f"couldn't replay entry {index}: its index or prev breaks the chain"
                    )
                leaf = leaf_hash(data)
                check(entry, leaf)
                tree.append(leaf)
        if tree.root() != head.root_hash:
            raise ProofError(
                f"couldn't replay the log: {head.size} entries hash to {tree.root().hex()}, "
                f"the verified head says {head.root_hash.hex()}"
            )
        return precedent_report(
            check.state,
            checkpoint={
                "origin": self.origin,
                "size": head.size,
                "root_hash_b64": base64.b64encode(head.root_hash).decode(),
            },
            audit_time_ms=audit_time_ms,
        )

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
        head = self._head(answer.get("checkpoint"))
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
        return self._verified_receipt(note, _obj(self._source.post_statement(note), "receipt"))

    def submit_many(self, notes: Sequence[bytes]) -> list[VerifiedReceipt | SubmissionRefused]:
        """Submit many signed statements in one request; one outcome per statement, in order:
        a receipt verified as by :meth:`submit`, or the server's refusal of that statement. A
        receipt that does not verify raises (the server is misbehaving), as does an answer with
        another number of outcomes than statements sent."""
        answer = _obj(self._source.post_statements(notes), "batch receipts")
        results = answer.get("results")
        if not isinstance(results, list) or len(results) != len(notes):
            raise MalformedError(
                f"couldn't read the batch receipts: want {len(notes)} results in order"
            )
        out: list[VerifiedReceipt | SubmissionRefused] = []
        for position, (note, result) in enumerate(zip(notes, results, strict=True)):
            item = _obj(result, f"batch result {position}")
            receipt = item.get("receipt")
            if isinstance(receipt, dict):
                out.append(self._verified_receipt(note, receipt))
                continue
            problem = _obj(item.get("problem"), f"batch result {position}'s problem")
            status = item.get("status")
            if not isinstance(status, int) or status < 400:
                raise MalformedError(f"couldn't read batch result {position}: no receipt")
            out.append(SubmissionRefused(position, status, str(problem.get("detail", ""))))
        return out

    def _verified_receipt(self, note: bytes, answer: dict[str, Any]) -> VerifiedReceipt:
        """Check a receipt for ``note``: its tlog-proof against a checkpoint signed by the log,
        and that the entry holds this very statement at the index it names."""
        data = _b64(answer.get("entry_b64"), "receipt entry")
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
            _raise_for(response, "check health")
        return _obj(response.json(), "health")
