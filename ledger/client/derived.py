"""Answers about the log's derived state: the offer in force, subjects, the precedent.

:class:`DerivedReads` computes each from the local verified replica
(:class:`~ledger.client.replica.VerifiedReplica`) when it has caught up with the latest
checkpoint — :mod:`ledger.client.views` and :mod:`ledger.protocol.audit` over its protocol
state, the same functions the service uses — so that a server that edits its JSON cannot change
the answer. Until then the answer is the server's, its tree head verified and its shape
checked, and its :class:`~ledger.client.answers.Provenance` says ``UNVERIFIED``. The signed
terms of an offer are always read from the entry that published them.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Final
from urllib.parse import quote

from pydantic import ValidationError

from ledger.client import replica, views
from ledger.client.answers import (
    NotFoundError,
    OfferHistory,
    PrecedentAnswer,
    PrecedentPage,
    PrecedentSummary,
    Provenance,
    SubjectAnswer,
    VerifiedHead,
    VerifiedOffer,
    int_field,
    int_text_field,
    object_field,
)
from ledger.client.log_reads import LogReads
from ledger.client.pinned import offer_from_entry
from ledger.errors import MalformedError, VerificationError
from ledger.protocol.audit import (
    ApplicationSummary,
    PrecedentReport,
    SubjectSummary,
    applications_after,
    precedent_report,
    subjects_after,
)
from ledger.protocol.due import DueReport, due_report
from ledger.verifier.trust import TrustState


@dataclass(frozen=True, slots=True)
class DueAnswer:
    """What is due at ``head`` (a :class:`~ledger.protocol.due.DueReport` as JSON data), and
    whether it was computed here from the verified replica (``provenance``)."""

    head: VerifiedHead
    report: dict[str, Any]
    provenance: Provenance

    @property
    def verified(self) -> bool:
        """Whether the report was computed from the verified replica."""
        return self.provenance.verified


PAGE_DEFAULT: Final = 100
PAGE_MAX: Final = 1000
"""The precedent pages' default and largest ``limit`` (the service's)."""

_TERMS: Final = "the terms, read from the signed entry that published them"


class DerivedReads(LogReads):
    """Answers about derived state, from the replica or labelled unverified (see the module).
    Not thread-safe."""

    def offer(self) -> VerifiedOffer:
        """The offer in force. Its terms are always read from the signed entry that published
        it (inclusion verified); that it is the version in force is verified by the replica
        when it has caught up, else the server's word (``provenance``).

        Raises :class:`~ledger.client.answers.NotFoundError` when the replica shows no offer
        in force (none published, or the last withdrawn)."""
        checkpoint = self._synced()

        def in_force(trusted: TrustState) -> tuple[VerifiedHead, int | None]:
            offer = trusted.protocol.offer_in_force
            return self.replica.head(trusted), None if offer is None else offer.index

        local = self._from_replica(checkpoint.size, in_force)
        if local is not None:
            head, index = local
            if index is None:
                raise NotFoundError(
                    f"couldn't find an offer in force at verified size {head.size}: none was "
                    "published, or the last version was withdrawn"
                )
            entry = self.entry(index)
            return offer_from_entry(
                entry, in_force=True, withdrawn_by=None, provenance=Provenance.replica(head.size)
            )
        answer = self._get("/v1/offer")
        head = self._pinned.head(answer.get("checkpoint"))
        return self._pinned.offer(answer.get("offer"), head, self._unverified(head, _TERMS))

    def offers(self) -> OfferHistory:
        """Every published version, oldest first, each read from its verified signed entry;
        which versions exist and which is in force from the replica when it has caught up,
        else the server's word (``provenance``). The diffs are computed here from the signed
        terms (:func:`ledger.client.views.terms_changes`)."""
        checkpoint = self._synced()

        def listed(trusted: TrustState) -> tuple[VerifiedHead, list[tuple[int, bool, int | None]]]:
            live = trusted.protocol.offer_in_force
            return self.replica.head(trusted), [
                (o.index, live is not None and o.index == live.index, o.withdrawn_by)
                for o in trusted.protocol.offer_versions
            ]

        local = self._from_replica(checkpoint.size, listed)
        if local is not None:
            head, published = local
            provenance = Provenance.replica(head.size)
            versions = tuple(
                offer_from_entry(
                    self.entry(index), in_force=live, withdrawn_by=gone, provenance=provenance
                )
                for index, live, gone in published
            )
            in_force_version = next((v.version for v in versions if v.in_force), None)
        else:
            answer = self._get("/v1/offers")
            head = self._pinned.head(answer.get("checkpoint"))
            provenance = self._unverified(head, _TERMS)
            raw = answer.get("versions")
            if not isinstance(raw, list):
                raise MalformedError("couldn't read offers: versions is not a list")
            versions = tuple(self._pinned.offer(v, head, provenance) for v in raw)
            said = answer.get("in_force_version")
            in_force_version = None if said is None else int_field(said, "in_force_version")
        diffs = tuple(
            views.terms_changes(a.version, a.terms, b.version, b.terms)
            for a, b in pairwise(versions)
        )
        return OfferHistory(head, versions, in_force_version, diffs, provenance)

    def subject(self, key: str | int, *, verify_timeline: bool = False) -> SubjectAnswer:
        """A subject by id or by any vkey it held: standing, binding terms, applications and
        timeline (the first 500 events), computed from the replica when it has caught up.

        Otherwise the server's word (``provenance``); with ``verify_timeline``, every entry
        of the timeline the server lists is then fetched, verified, and checked to be of the
        type it says, and the first application to carry the subject's first key — which
        still cannot show that the server left an entry out.

        Raises :class:`~ledger.client.answers.NotFoundError` when the replica shows no such
        subject (a server's 404 is a :class:`RemoteError`)."""
        checkpoint = self._synced()
        local = self._from_replica(
            checkpoint.size,
            lambda trusted: (self.replica.head(trusted), views.subject_view(trusted.protocol, key)),
        )
        if local is not None:
            head, view = local
            if view is None:
                raise NotFoundError(
                    f"couldn't find subject {key!r} at verified size {head.size}: no "
                    "application was logged with that id or key"
                )
            return SubjectAnswer(head, view, Provenance.replica(head.size))
        answer = self._get("/v1/subjects/" + quote(str(key), safe=""))
        head = self._pinned.head(answer.get("checkpoint"))
        view = object_field(answer.get("subject"), "subject")
        if verify_timeline:
            self._check_timeline(key, view)
        checked = "each timeline entry listed was fetched and verified" if verify_timeline else None
        return SubjectAnswer(head, view, self._unverified(head, checked))

    def _check_timeline(self, key: str | int, view: dict[str, Any]) -> None:
        """Fetch and verify every timeline entry a server's subject view lists, and its first
        application; raise if one is not what the view says."""
        for event in view.get("timeline", []):
            item = object_field(event, "timeline event")
            entry = self.entry(int_field(item.get("index"), "timeline index"))
            if entry.statement.type != item.get("type"):
                raise VerificationError(
                    f"couldn't verify subject {key!r}: entry {entry.index} is a "
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
                f"couldn't verify subject {key!r}: its first application is not its key's"
            )

    def precedent(
        self, at: int | None = None, *, audit_time_ms: int | None = None, recompute: bool = False
    ) -> PrecedentAnswer:
        """The precedent report at the latest checkpoint (or at tree size ``at``), judged at
        ``audit_time_ms`` (default: now at the latest checkpoint, the last entry's log time at
        a past size).

        At the replica's size it is computed from the replica; at another size ``at`` of at
        most ``max_catch_up`` entries, by replaying and verifying that prefix of the log
        (:func:`replica.recompute_precedent`). Otherwise it is the server's report, its head
        verified and its schema checked, labelled unverified.

        ``recompute`` verifies however many entries that takes, now, and also fetches the
        server's report at the same size and audit time and requires it to be identical
        (``recomputed``): a server that lies about the precedent is caught, not just ignored.
        """
        checkpoint, _ = self.sync(None if recompute else self.max_catch_up)

        def report_of(trusted: TrustState) -> tuple[VerifiedHead, dict[str, Any]]:
            state = trusted.protocol
            if audit_time_ms is not None:
                audit = audit_time_ms
            elif at is None or at == checkpoint.size:
                audit = views.report_time_ms(state)
            else:
                audit = state.log_time_ms_at(at - 1) if at else 0
            summary = views.checkpoint_summary(trusted.checkpoint)
            report = precedent_report(state, checkpoint=summary, audit_time_ms=audit)
            return self.replica.head(trusted), report

        size = checkpoint.size if at is None else at
        local = self._from_replica(size, report_of, exact=at is not None)
        if local is not None:
            head, report = local
            if recompute:
                self._server_report(head, report)
            return PrecedentAnswer(head, report, Provenance.replica(head.size), recompute)
        answer = self._get("/v1/precedent", {"at": at, "audit_time_ms": audit_time_ms})
        head = self._pinned.head(answer.get("checkpoint"))
        report = self._named_report(answer, head)
        budget = self.max_catch_up
        if recompute or (at is not None and (budget is None or head.size <= budget)):
            # At a past size the audit time is the caller's, or the last entry's log time
            # (never one the server picked); at the latest, now is the server's clock's.
            said = int_field(report.get("audit_time_ms"), "audit time")
            ours = self.recompute_precedent(
                head, audit_time_ms if audit_time_ms is not None or at is not None else said
            )
            if recompute and ours != report:
                raise VerificationError(
                    f"couldn't verify the precedent report at size {head.size}: replaying the "
                    "log gives a different report"
                )
            return PrecedentAnswer(
                head, ours, Provenance.replayed(head.size, self.replica.size), recompute
            )
        return PrecedentAnswer(head, report, self._unverified(head))

    def _named_report(self, answer: dict[str, Any], head: VerifiedHead) -> dict[str, Any]:
        """The report of a ``/v1/precedent`` answer, checked against the report's schema and
        to name ``head``."""
        report = object_field(answer.get("report"), "report")
        try:
            PrecedentReport.model_validate(report)
        except ValidationError as exc:
            raise MalformedError(f"couldn't read the precedent report: {exc}") from None
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
        return report

    def _server_report(self, head: VerifiedHead, ours: dict[str, Any]) -> None:
        """Require the server's report at ``head`` and ``ours``'s audit time to be ``ours``."""
        answer = self._get(
            "/v1/precedent", {"at": head.size, "audit_time_ms": ours["audit_time_ms"]}
        )
        if self._named_report(answer, self._pinned.head(answer.get("checkpoint"))) != ours:
            raise VerificationError(
                f"couldn't verify the precedent report at size {head.size}: replaying the log "
                "gives a different report"
            )

    def precedent_summary(self) -> PrecedentSummary:
        """The precedent in brief (each commitment's verdict, the first applicant, totals),
        judged now at the latest checkpoint: from the replica when it has caught up, else the
        server's word (``provenance``)."""
        checkpoint = self._synced()

        def summary_of(trusted: TrustState) -> PrecedentSummary:
            state = trusted.protocol
            summary = views.precedent_summary(state, views.judged_now_ms(state))
            return PrecedentSummary(
                self.replica.head(trusted), summary, Provenance.replica(trusted.size)
            )

        local = self._from_replica(checkpoint.size, summary_of)
        if local is not None:
            return local
        answer = self._get("/v1/precedent/summary")
        head = self._pinned.head(answer.get("checkpoint"))
        summary = {k: v for k, v in answer.items() if k != "checkpoint"}
        return PrecedentSummary(head, summary, self._unverified(head))

    def due(self, at_ms: int | None = None) -> DueAnswer:
        """What is due at the latest checkpoint (:func:`ledger.protocol.due.due_report`): every
        open clock, nearest deadline first, judged at ``at_ms`` (default now, never before the
        last entry's log time). Computed from the replica when it has caught up; else the
        server's ``GET /v1/due``, its head verified, its shape checked and its report required
        to name that head, labelled unverified (``provenance``)."""
        checkpoint = self._synced()

        def due_of(trusted: TrustState) -> DueAnswer:
            state = trusted.protocol
            at = at_ms if at_ms is not None else views.judged_now_ms(state)
            summary = views.checkpoint_summary(trusted.checkpoint)
            report = due_report(state, checkpoint=summary, at_ms=at)
            return DueAnswer(self.replica.head(trusted), report, Provenance.replica(trusted.size))

        local = self._from_replica(checkpoint.size, due_of)
        if local is not None:
            return local
        answer = self._get("/v1/due", {"at_ms": at_ms})
        head = self._pinned.head(answer.get("checkpoint"))
        report = object_field(answer.get("due"), "due")
        try:
            DueReport.model_validate(report)
        except ValidationError as exc:
            raise MalformedError(f"couldn't read what is due: {exc}") from None
        if report.get("checkpoint") != {
            "origin": self.origin,
            "size": head.size,
            "root_hash_b64": base64.b64encode(head.root_hash).decode(),
        }:
            raise VerificationError(
                "couldn't verify what is due: the report names another tree head than the "
                "verified one"
            )
        return DueAnswer(head, report, self._unverified(head))

    def precedent_applications(
        self, cursor: str | None = None, limit: int | None = None, *, at: int | None = None
    ) -> PrecedentPage:
        """A page of the precedent report's ``applications`` at the latest checkpoint (or at
        tree size ``at``: as the report stood then, from the server, its head verified to be of
        exactly that size), after ``cursor`` (a previous page's ``next_cursor``; None for the
        first page), ``limit`` items at most (default 100, at most 1,000). See
        :class:`PrecedentPage`."""
        return self._precedent_page("applications", "index", ApplicationSummary, cursor, limit, at)

    def precedent_subjects(
        self, cursor: str | None = None, limit: int | None = None, *, at: int | None = None
    ) -> PrecedentPage:
        """A page of the precedent report's ``subjects`` with their timelines at the latest
        checkpoint (or at tree size ``at``, as :meth:`precedent_applications`), after
        ``cursor`` (a previous page's ``next_cursor``; None for the first page). See
        :class:`PrecedentPage`."""
        return self._precedent_page("subjects", "subject_id", SubjectSummary, cursor, limit, at)

    def iter_precedent_applications(
        self, limit: int | None = None, *, at: int | None = None
    ) -> Iterator[PrecedentPage]:
        """Every page of the precedent's applications, first to last (see
        :meth:`precedent_applications`). Without ``at``, each page is read at the latest
        checkpoint when it is asked for: if the log grows during the walk, later pages name
        larger heads, every checkpoint is checked consistent with the ones before, and cursors
        (entry indexes) continue where they stopped, so each application is yielded once. With
        ``at``, every page is read at that size."""
        return self._walk_pages(
            lambda cursor, size: self.precedent_applications(cursor, size, at=at), limit
        )

    def iter_precedent_subjects(
        self, limit: int | None = None, *, at: int | None = None
    ) -> Iterator[PrecedentPage]:
        """Every page of the precedent's subjects, first to last (see
        :meth:`iter_precedent_applications` for a walk across log growth, and ``at``)."""
        return self._walk_pages(
            lambda cursor, size: self.precedent_subjects(cursor, size, at=at), limit
        )

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
        at: int | None = None,
    ) -> PrecedentPage:
        """The page from the replica (:func:`~ledger.protocol.audit.applications_after`,
        :func:`~ledger.protocol.audit.subjects_after`) when it has caught up (and no ``at`` is
        asked); else ``/v1/precedent/{name}`` with its head verified (of exactly size ``at``
        when asked), each item checked against ``model``, the items following ``cursor`` in
        ascending ``key`` inside the head, and ``next_cursor`` the last item's key (or null)."""
        after = int_text_field(cursor, "cursor") if cursor else None
        if limit is not None and not 1 <= limit <= PAGE_MAX:
            raise MalformedError(f"couldn't read a page of {limit} items: 1 to {PAGE_MAX}")
        if at is None:  # the replica answers at its own size only
            checkpoint = self._synced()

            def page_of(trusted: TrustState) -> PrecedentPage:
                state = trusted.protocol
                pager = applications_after if name == "applications" else subjects_after
                items, next_key = pager(state, after, limit or PAGE_DEFAULT)
                total = len(state.applications if name == "applications" else state.subjects)
                return PrecedentPage(
                    self.replica.head(trusted),
                    views.judged_now_ms(state),
                    tuple(items),
                    total,
                    None if next_key is None else str(next_key),
                    Provenance.replica(trusted.size),
                )

            local = self._from_replica(checkpoint.size, page_of)
            if local is not None:
                return local
        path = f"/v1/precedent/{name}"
        answer = self._get(path, {"cursor": cursor, "limit": limit, "at": at})
        head = self._pinned.head(answer.get("checkpoint"))
        if at is not None and head.size != at:
            raise VerificationError(
                f"couldn't verify {path}: the page names tree size {head.size}, not the "
                f"size {at} asked for"
            )
        raw = answer.get(name)
        if not isinstance(raw, list):
            raise MalformedError(f"couldn't read {path}: `{name}` is not a list")
        items_read: list[dict[str, Any]] = []
        previous = -1 if after is None else after
        for value in raw:
            item = object_field(value, f"{path} item")
            try:
                model.model_validate(item)
            except ValidationError as exc:
                raise MalformedError(f"couldn't read {path} item: {exc}") from None
            item_key = int_field(item.get(key), f"{path} item {key}")
            if not previous < item_key < head.size:
                raise VerificationError(
                    f"couldn't verify {path}: item {key} {item_key} is not after {previous} and "
                    f"inside the verified tree of {head.size} entries"
                )
            previous = item_key
            items_read.append(item)
        next_cursor = answer.get("next_cursor")
        if next_cursor is not None and (not items_read or next_cursor != str(previous)):
            raise VerificationError(
                f"couldn't verify {path}: next_cursor {next_cursor!r} is not the last item's {key}"
            )
        return PrecedentPage(
            head,
            int_field(answer.get("audit_time_ms"), "audit time"),
            tuple(items_read),
            int_field(answer.get("total"), f"{path} total"),
            next_cursor,
            self._unverified(head, "the items' schema and order"),
        )

    def recompute_precedent(
        self, head: VerifiedHead, audit_time_ms: int | None = None
    ) -> dict[str, Any]:
        """Replay entries ``[0, head.size)`` from the tiles, verifying each (leaf hashes against
        ``head``'s root, hash chain, statement signatures, authority, admission), and compute
        the precedent report at ``audit_time_ms`` (see :func:`replica.recompute_precedent`)."""
        return replica.recompute_precedent(self._source, self.origin, head, audit_time_ms)
