"""The base of :class:`~ledger.client.json_api.LedgerClient`: the transport, the pinned log
key, the local verified replica, and the answers about the log itself.

:class:`LogReads` holds what every answer needs — the HTTP source
(:class:`~ledger.client.source.HttpLogSource`), the pinned key and trusted checkpoint
(:class:`~ledger.client.pinned.PinnedLog`), the local replica
(:class:`~ledger.client.replica.VerifiedReplica`) and :meth:`LogReads.sync`, which brings it to
the latest checkpoint — and answers what proofs verify on their own: checkpoints, entries,
listings of entries, inclusion and consistency proofs, tlog-proofs. Each of those is verified
here before it is returned (see :class:`~ledger.client.json_api.LedgerClient` for the steps);
answers about derived state are :class:`~ledger.client.derived.DerivedReads`'.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Self, TypeVar

import httpx

from ledger.client import views
from ledger.client.answers import (
    EntryPage,
    Provenance,
    Unverified,
    VerifiedEntry,
    VerifiedHead,
    b64_field,
    hashes_field,
    int_field,
    object_field,
)
from ledger.client.pinned import PinnedLog
from ledger.client.replica import DEFAULT_CATCH_UP, ReplicaStatus, VerifiedReplica
from ledger.client.source import USER_AGENT, HttpLogSource, RemoteError, raise_for_error
from ledger.errors import MalformedError, StorageError, VerificationError
from ledger.tlog.checkpoint import Checkpoint, KeyPolicy, LogKey, pin_log_key
from ledger.tlog.merkle import verify_consistency, verify_inclusion
from ledger.verifier.trust import TrustState

A = TypeVar("A")


class LogReads:
    """The client's base: transport, pinned key, replica, and the log's own answers.

    Arguments are :class:`~ledger.client.json_api.LedgerClient`'s (see there). Not
    thread-safe.
    """

    def __init__(
        self,
        base_url: str,
        log_vkey: str | LogKey,
        *,
        key_policy: KeyPolicy | str | None = None,
        http: httpx.Client | None = None,
        timeout: float = 30.0,
        trusted_checkpoint: bytes | None = None,
        state_path: Path | None = None,
        trust_state: TrustState | None = None,
        max_catch_up: int | None = DEFAULT_CATCH_UP,
        background_catch_up: bool = False,
        workers: int | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # One vkey, or the log's vkeys separated by whitespace (Ed25519, ML-DSA-44), and the
        # policy of which must sign (default: every pinned key).
        self.log_key = pin_log_key(log_vkey, key_policy)
        self.origin = self.log_key.name
        self._http = http or httpx.Client(
            timeout=timeout, headers={"User-Agent": USER_AGENT}, follow_redirects=False
        )
        self._source = HttpLogSource(self.base_url, client=self._http)
        self._pinned = PinnedLog(
            self.log_key, self._consistency_hashes, trusted_checkpoint=trusted_checkpoint
        )
        self.replica = VerifiedReplica(
            self._source,
            self.log_key,
            trusted=trust_state,
            state_path=state_path,
            workers=workers,
        )
        """The local verified replica the derived answers come from."""
        self.max_catch_up = max_catch_up
        self.background_catch_up = background_catch_up
        self._replica_pinned = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the replica's background run, save its state (``state_path``), and close the
        connection pool."""
        try:
            self.replica.close()
        finally:
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

    # -- the replica ----------------------------------------------------------------------------

    def sync(self, budget: int | None) -> tuple[Checkpoint, ReplicaStatus]:
        """Fetch the latest checkpoint, verify it (:meth:`accept_checkpoint`), and bring the
        replica to it if at most ``budget`` entries are new (None: all of them, now);
        otherwise start a background run if ``background_catch_up``. Returns the checkpoint
        and where the replica stands. Raises what the replica's verification raised."""
        if not self._replica_pinned:
            # A replica loaded from a file must be of the history the server shows too.
            self._learn_log_key()
            note = self.replica.checkpoint_note
            if note is not None:
                self._pinned.accept_checkpoint(note)
            self._replica_pinned = True
        note = self._source.checkpoint()
        checkpoint = self._pinned.accept_checkpoint(note)
        status = self.replica.advance(
            note, checkpoint, budget=budget, background=self.background_catch_up
        )
        self._learn_log_key()
        return checkpoint, status

    def _learn_log_key(self) -> None:
        """Have the pinned log require the ML-DSA-44 key the verified replica's history
        anchored (a ``log_key`` entry), on every checkpoint that includes that entry; the
        replica's own run checked the checkpoint it reached under it
        (:mod:`ledger.verifier.log_keys`)."""
        with self.replica.reading(0) as trusted:
            if trusted is not None:
                self._pinned.learn(trusted.protocol.log_key)

    def catch_up(self) -> ReplicaStatus:
        """Verify every new entry up to the latest checkpoint now, however many."""
        return self.sync(None)[1]

    def start_catch_up(self) -> ReplicaStatus:
        """Start verifying every new entry up to the latest checkpoint in a background thread
        (nothing to do when the replica is caught up); returns at once."""
        note = self._source.checkpoint()
        checkpoint = self._pinned.accept_checkpoint(note)
        return self.replica.advance(note, checkpoint, budget=0, background=True)

    def _synced(self) -> Checkpoint:
        """:meth:`sync` within ``max_catch_up``: the latest verified checkpoint."""
        return self.sync(self.max_catch_up)[0]

    def _unverified(self, head: VerifiedHead, checked: str | None = None) -> Provenance:
        """The provenance of an answer taken from the server at ``head``."""
        status = self.replica.status(head.size)
        return Provenance.server(
            head.size,
            status.verified_size,
            status.catching_up,
            checked=checked,
            checked_so_far=status.checked_size,
        )

    # -- reads of the log itself ----------------------------------------------------------------

    def checkpoint(self) -> Checkpoint:
        """The latest checkpoint (``GET /checkpoint``), verified and consistent."""
        return self.accept_checkpoint(self._source.checkpoint())

    def llms_txt(self) -> Unverified[str]:
        """``/llms.txt``: the service's guide for models, as it sent it (nothing in it can be
        verified)."""
        return Unverified(self._source.get_text("/llms.txt"), "the service's guide /llms.txt")

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

    def find_statement(self, statement_id: bytes) -> VerifiedEntry | Unverified[None]:
        """The verified entry holding the statement with this id; or, when the server says it
        is not logged, that claim as :class:`~ledger.client.answers.Unverified` (an absence is
        the server's word: nothing here can prove it)."""
        try:
            answer = self._get(f"/v1/statements/{statement_id.hex()}")
        except RemoteError as exc:
            if exc.status == 404:
                return Unverified(None, f"that statement {statement_id.hex()} is not logged")
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
        """A page of entries (see ``GET /v1/entries``), each verified, and each checked to
        match the filters where the entry shows it (type, signer, time, order).

        Whether the server left a matching entry out is checked against the local replica
        when it covers the page (``EntryPage.complete``; not possible with the ``subject`` or
        ``signer`` filters): an omission raises :class:`VerificationError`.
        """
        self._synced()
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
        raw_next = answer.get("next_after")
        next_after = None if raw_next is None else int_field(raw_next, "next_after")
        if next_after is not None and (not entries or next_after != previous):
            raise VerificationError(
                f"couldn't verify entries: next_after {next_after} is not the last entry's index"
            )
        complete = False
        if subject is None and signer is None:
            # The page covers (after, its last entry], or (after, head) when it is the last.
            end = previous if next_after is not None else head.size - 1
            with self.replica.reading(end + 1) as trusted:
                if trusted is not None:
                    must = views.matching_indexes(
                        trusted.protocol,
                        after,
                        end,
                        statement_type=statement_type,
                        since_ms=since_ms,
                        until_ms=until_ms,
                    )
                    left_out = sorted(set(must) - {e.index for e in entries})
                    if left_out:
                        raise VerificationError(
                            f"couldn't verify entries: the page leaves out entries {left_out[:10]}"
                            f" that match the query, as the verified replica shows"
                        )
                    complete = True
        return EntryPage(head, entries, next_after, complete)

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

    def _from_replica(
        self, size: int, read: Callable[[TrustState], A], *, exact: bool = False
    ) -> A | None:
        """``read(state)`` of the replica's verified state if it covers ``size`` entries
        (exactly, with ``exact``), under its lock; None when it does not (yet)."""
        with self.replica.reading(size, exact=exact) as trusted:
            return None if trusted is None else read(trusted)
