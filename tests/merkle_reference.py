"""A tiny RFC 6962 §2.1 reference, written straight from the RFC's recursive definitions.

Used only by the tests, to cross-check the fast bit-arithmetic code in ``ledger.tlog.merkle`` and
``ledger.tlog.tiles``. It is deliberately naive (recursion over slices, memoised per range) and shares
no code with the implementation under test: it hashes with ``hashlib`` directly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cache


def ref_leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def _largest_power_of_two_below(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class ReferenceTree:
    """The Merkle tree over a fixed list of leaf hashes, per RFC 6962 §2.1.

    ``mth(lo, hi)`` is the Merkle Tree Hash of leaves ``[lo, hi)``; ``path`` and ``proof`` are the
    RFC's PATH(m, D[n]) and PROOF(m, D[n]) for the prefix of ``n`` leaves.
    """

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        self.leaves = list(leaf_hashes)
        self.mth = cache(self._mth)

    def _mth(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n == 0:
            return hashlib.sha256(b"").digest()
        if n == 1:
            return self.leaves[lo]
        k = _largest_power_of_two_below(n)
        return hashlib.sha256(b"\x01" + self.mth(lo, lo + k) + self.mth(lo + k, hi)).digest()

    def root(self, n: int) -> bytes:
        """``MTH(D[0:n])``."""
        return self.mth(0, n)

    def path(self, m: int, n: int) -> list[bytes]:
        """``PATH(m, D[0:n])``, the audit path of leaf ``m``."""
        return self._path(m, 0, n)

    def _path(self, m: int, lo: int, hi: int) -> list[bytes]:
        n = hi - lo
        if n == 1:
            return []
        k = _largest_power_of_two_below(n)
        if m < k:
            return [*self._path(m, lo, lo + k), self.mth(lo + k, hi)]
        return [*self._path(m - k, lo + k, hi), self.mth(lo, lo + k)]

    def proof(self, m: int, n: int) -> list[bytes]:
        """``PROOF(m, D[0:n])`` for ``0 < m < n``; empty when ``m == n``."""
        return self._subproof(m, 0, n, True)

    def _subproof(self, m: int, lo: int, hi: int, b: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if b else [self.mth(lo, hi)]
        k = _largest_power_of_two_below(n)
        if m <= k:
            return [*self._subproof(m, lo, lo + k, b), self.mth(lo + k, hi)]
        return [*self._subproof(m - k, lo + k, hi, False), self.mth(lo, lo + k)]

    def node(self, level: int, index: int) -> bytes:
        """The hash of the perfect subtree of ``2**level`` leaves starting at ``index << level``."""
        return self.mth(index << level, (index + 1) << level)
