"""Step 5 of a verification: the new entries in log order, linked into the hash chain.

:class:`Chain` takes step 4's results (:mod:`ledger.verifier.entry_checks`) bundle by bundle,
in log order, and for each entry: its leaf hash must be the one the level-0 tile serves (else
it becomes the *suspect*), its ``log_time_ms`` must not decrease, its ``prev`` must be the root
of all entries before it; then the protocol admits and applies it (with statements) or the
caller's ``entry_check`` accepts it, and it joins the tree.

A leaf hash that differs from the served level-0 tile means one of the two was altered: the
next evidence decides which — the next entry's ``prev`` or, for the last entry, the signed root
— and :meth:`Chain.blame_suspect` names that one. Every failure raises
:class:`~ledger.verifier.failures.VerificationFailure` naming the entry and the resource.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from ledger.errors import LedgerError
from ledger.protocol.state import ProtocolState
from ledger.protocol.statements import LoggedStatement
from ledger.statements.entry import LogEntry
from ledger.tlog.merkle import HASH_SIZE
from ledger.tlog.tiles import TILE_WIDTH, TiledTree, TileID
from ledger.verifier.bundles import Bundle
from ledger.verifier.entry_checks import CheckedEntry
from ledger.verifier.failures import VerificationFailure

EntryCheck = Callable[[LogEntry, bytes], None]
"""Called for every entry, in order, with the entry and its leaf hash; raises to reject it."""


@dataclass(slots=True)
class Suspect:
    """An entry whose leaf hash differs from the one the level-0 tile serves for it."""

    index: int
    tile: TileID
    bundle: TileID


class Chain:
    """Step 5: the new entries in log order, each linked to the tree of the entries before it.

    Invariants between calls: ``tree`` is the tree of every entry accepted so far (the trusted
    ones included) and ``last_time`` the last one's log time; with statements, ``protocol`` has
    admitted and applied each of them and ``types`` counts them by type. ``suspect``, when set,
    is the last entry accepted, whose leaf hash is not the one its level-0 tile serves: which
    of the two was altered is for the next evidence to decide — the next entry's ``prev``
    (:meth:`_link`), else the signed root (the run's end), or none if step 4 refused the next
    entry (:meth:`fail`) — and :meth:`blame_suspect` always raises: such a run never succeeds.
    """

    def __init__(
        self,
        tree: TiledTree,
        last_log_time_ms: int,
        protocol: ProtocolState,
        *,
        statements: bool,
        entry_check: EntryCheck | None,
    ) -> None:
        self.tree = tree
        self.last_time = last_log_time_ms
        self.protocol = protocol
        self.statements = statements
        self.entry_check = entry_check
        self.suspect: Suspect | None = None
        self.types: Counter[str] = Counter()

    def extend(self, bundle: Bundle, items: list[Any]) -> None:
        """Accept step 4's results for ``bundle``'s new entries, in order from
        ``bundle.first``: each is linked (:meth:`_link`), then replayed (:meth:`_replay`, with
        statements) or handed to ``entry_check``, then appended to the tree."""
        base = bundle.first % TILE_WIDTH
        for offset, item in enumerate(items):
            index = bundle.first + offset
            position = (base + offset) * HASH_SIZE
            served = bundle.served[position : position + HASH_SIZE]
            if self.statements:
                leaf, prev, log_time = item[0], item[1], item[2]
            else:
                leaf, prev, log_time = item[0], item[1].prev, item[1].log_time_ms
            self._link(index, leaf, prev, log_time, served, bundle)
            try:
                if self.statements:
                    self._replay(index, item)
                elif self.entry_check is not None:
                    self.entry_check(item[1], leaf)
            except LedgerError as exc:
                raise VerificationFailure(
                    f"couldn't verify entry {index} in {bundle.tile.path()}: {exc}",
                    index=index,
                    where=bundle.tile.path(),
                ) from exc
            self.tree.append(leaf)
            self.last_time = log_time

    def fail(self, bundle: Bundle, index: int, message: str) -> NoReturn:
        """Fail the run at entry ``index`` of ``bundle``, which step 4 refused with
        ``message``; a suspect entry before it is blamed first, with no evidence either way."""
        if self.suspect is not None:
            self.blame_suspect(None)
        raise VerificationFailure(
            f"couldn't verify entry {index} in {bundle.tile.path()}: {message}",
            index=index,
            where=bundle.tile.path(),
        )

    def _link(
        self, index: int, leaf: bytes, prev: bytes, log_time: int, served: bytes, bundle: Bundle
    ) -> None:
        """Step 5's chain checks for entry ``index``, before it joins the tree."""
        root = self.tree.root()
        if self.suspect is not None:
            self.blame_suspect(prev == root)
        if leaf != served:
            self.suspect = Suspect(index, bundle.level0, bundle.tile)
        if log_time < self.last_time:
            raise VerificationFailure(
                f"couldn't verify entry {index} in {bundle.tile.path()}: log time {log_time} ms is "
                f"before the previous entry's {self.last_time} ms",
                index=index,
                where=bundle.tile.path(),
            )
        if prev != root:
            raise VerificationFailure(
                f"couldn't verify entry {index} in {bundle.tile.path()}: its prev {prev.hex()} is "
                f"not the root of the {index} entries before it ({root.hex()})",
                index=index,
                where=bundle.tile.path(),
            )

    def blame_suspect(self, entry_confirmed: bool | None) -> NoReturn:
        """Name what was altered: the suspect entry or its level-0 tile. ``entry_confirmed`` is
        whether the evidence (the next entry's ``prev``, or the signed root) agrees with the
        entry as served; ``None`` when there is no such evidence."""
        suspect = self.suspect
        assert suspect is not None
        i, tile, bundle = suspect.index, suspect.tile.path(), suspect.bundle.path()
        if entry_confirmed:
            raise VerificationFailure(
                f"couldn't verify {tile}: the hash it serves for entry {i} is not entry {i}'s "
                "leaf hash, and the rest of the log confirms the entry: the tile was altered",
                where=tile,
            )
        if entry_confirmed is None:
            raise VerificationFailure(
                f"couldn't verify entry {i} in {bundle}: its leaf hash is not the one {tile} "
                "serves for it",
                index=i,
                where=bundle,
            )
        raise VerificationFailure(
            f"couldn't verify entry {i} in {bundle}: its leaf hash is not the one {tile} serves "
            "for it, and the rest of the log commits to the tile's: the entry was altered",
            index=i,
            where=bundle,
        )

    def _replay(self, index: int, item: CheckedEntry) -> None:
        """Admit and apply entry ``index`` to the protocol, from step 4's result for it."""
        leaf, _prev, log_time, statement_id, line, mask = item
        # The line passed the strict canonical parser in step 4; plain json reads it the same.
        fields = json.loads(line)
        signers = tuple(fields["signers"])
        statement = LoggedStatement(
            index=index,
            log_time_ms=log_time,
            leaf_hash=leaf,
            statement_id=statement_id,
            type=fields["type"],
            v=fields["v"],
            time_ms=fields["time_ms"],
            signers=signers,
            verified_signers=frozenset(s for n, s in enumerate(signers) if mask >> n & 1),
            body=fields["body"],
            origin=fields["origin"],
        )
        self.protocol.admit(statement)
        self.protocol.apply(statement)
        self.types[statement.type] += 1
