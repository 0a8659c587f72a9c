"""The verifier's trust state: what it has verified, kept as JSON so the next run continues.

An incremental verifier needs four things from its last run: the signed checkpoint it verified
(to prove the next one consistent with it), the right edge of that tree (to keep recomputing
tiles and roots), the last entry's log time (log time never decreases), and the protocol state
(to keep replaying statements). :class:`TrustState` holds them; :func:`save_trust_state` and
:func:`load_trust_state` keep them in a JSON file, format ``amnesty-ledger.verifier-state/v1``::

    {
      "format": "amnesty-ledger.verifier-state/v1",
      "origin": "<origin>",
      "log_vkey": "<the log's vkey>",
      "checkpoint": "<the verified signed checkpoint note, verbatim>",
      "last_log_time_ms": <int>,
      "edge_tiles": ["<base64>", ...],
      "protocol": { <protocol snapshot> },
      "tools": { <data of the tools using the state, e.g. the monitor> }
    }

``edge_tiles[L]`` holds the hashes of the tree's right-edge partial tile at tile level ``L``
(``""`` when the level has none): the compact range (frontier) of the tree is computed from
them, and loading checks that they hash to the checkpoint's root.

The ``protocol`` value is a **protocol snapshot** (format ``amnesty-ledger.protocol-snapshot/v4``),
written and read by :mod:`ledger.verifier.snapshot`, which documents the format and what loading
refuses. Then the state file's own checks apply (signed checkpoint, edge tiles against its root,
protocol size equal to the checkpoint size).

Cost (see the Verification section of ``docs/PERFORMANCE.md``): the file is written and parsed
with ``orjson``, with the cyclic garbage collector paused meanwhile (encoding or decoding the
snapshot makes millions of new containers, none garbage). A 1,000,000-entry state of 83,000
subjects (96 MB) loads in about 0.9 s and saves in about 0.8 s.
"""

from __future__ import annotations

import base64
import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson

from ledger.atomic import write_atomically
from ledger.errors import LedgerError, MalformedError
from ledger.protocol.state import ProtocolState
from ledger.tlog.checkpoint import (
    Checkpoint,
    KeyPolicy,
    LogKey,
    LogKeys,
    log_keys,
    open_checkpoint,
)
from ledger.tlog.merkle import HASH_SIZE
from ledger.tlog.tiles import TILE_HEIGHT, TILE_WIDTH, TiledTree
from ledger.verifier.log_keys import checkpoint_size, learned_keys
from ledger.verifier.snapshot import restore_protocol, snapshot_protocol

STATE_FORMAT: Final = "amnesty-ledger.verifier-state/v1"


@dataclass
class TrustState:
    """A verified checkpoint and what a verifier needs to continue from it.

    Build one from a verification result (``ledger.verifier.verify.VerifiedLog.trust_state``) or with
    :func:`load_trust_state`. ``protocol`` is advanced in place by the next verification that
    starts from this state: after a failed run, discard it and load the file again.
    """

    log_vkey: str
    checkpoint_note: bytes
    checkpoint: Checkpoint
    last_log_time_ms: int
    edge_tiles: tuple[bytes, ...]
    protocol: ProtocolState
    tools: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """The verified tree size."""
        return self.checkpoint.size

    def tree(self) -> TiledTree:
        """The verified tree's right edge, ready to append to.

        Raises :class:`MalformedError` if the edge tiles do not hash to the checkpoint's root.
        """
        edges = self.edge_tiles

        def read(level: int, index: int) -> bytes:
            return edges[level] if level < len(edges) else b""

        try:
            tree = TiledTree.load(self.size, read)
        except LedgerError as exc:
            raise MalformedError(f"couldn't load the trust state's edge tiles: {exc}") from exc
        if tree.root() != self.checkpoint.root_hash:
            raise MalformedError(
                f"couldn't load the trust state: its edge tiles hash to {tree.root().hex()}, its "
                f"checkpoint of size {self.size} says {self.checkpoint.root_hash.hex()}"
            )
        return tree

    def level0_edge(self) -> bytes:
        """The verified leaf hashes of the entries in the tree's last, partial bundle."""
        return self.edge_tiles[0] if self.edge_tiles else b""

    def to_json(self) -> dict[str, Any]:
        """The JSON object of the state file."""
        return {
            "format": STATE_FORMAT,
            "origin": self.checkpoint.origin,
            "log_vkey": self.log_vkey,
            "checkpoint": self.checkpoint_note.decode("utf-8"),
            "last_log_time_ms": self.last_log_time_ms,
            "edge_tiles": [base64.b64encode(t).decode("ascii") for t in self.edge_tiles],
            "protocol": snapshot_protocol(self.protocol),
            "tools": self.tools,
        }

    @classmethod
    def from_json(cls, value: Any, log_key: LogKey) -> TrustState:
        """Read a state file's JSON object, checking it against the log key ``log_key``.

        Steps: (1) the format and the fields' types; (2) the log vkey is ``log_key``'s; (3) the
        protocol snapshot restores; (4) the checkpoint's signature verifies under ``log_key``
        and the ML-DSA-44 key the restored history anchored, if it includes one
        (:func:`~ledger.verifier.log_keys.learned_keys`); (5) the edge tiles have the widths the
        size implies and hash to the checkpoint's root; (6) the protocol state has exactly
        ``size`` entries. Raises :class:`MalformedError` naming the first failure.

        A checkpoint from before any anchor is held to the Ed25519 key (a line of a pinned
        ML-DSA-44 key on it must still verify): this file is the verifier's own, written after
        a run that checked the checkpoint under the policy pinned then, and a log that adds its
        ML-DSA-44 key later has no such line on it; the next run holds its new checkpoint to
        the whole pinned policy.
        """
        # Step 1: shape.
        if not isinstance(value, dict) or value.get("format") != STATE_FORMAT:
            raise MalformedError(f"couldn't read the trust state: it is not {STATE_FORMAT}")
        try:
            vkey = str(value["log_vkey"])
            note = str(value["checkpoint"]).encode("utf-8")
            last = value["last_log_time_ms"]
            edges = tuple(base64.b64decode(t, validate=True) for t in value["edge_tiles"])
            tools = value.get("tools", {})
            snapshot = value["protocol"]
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedError(f"couldn't read the trust state: {exc!r}") from None
        if not isinstance(last, int) or not isinstance(tools, dict):
            raise MalformedError("couldn't read the trust state: bad last_log_time_ms or tools")
        # Steps 2-4: the log, its history, and the checkpoint's signature.
        if vkey != log_key.vkey():
            raise MalformedError(
                f"couldn't use the trust state: it is for log key {vkey}, not {log_key.vkey()}"
            )
        protocol = restore_protocol(snapshot)
        anchored = protocol.log_key
        try:
            keys: LogKey
            if anchored is not None and checkpoint_size(note) > anchored.index:
                keys = learned_keys(log_key, anchored)
            else:
                pinned = log_keys(log_key)
                keys = LogKeys(pinned.ed25519, pinned.mldsa44, KeyPolicy.ED25519)
            checkpoint = open_checkpoint(note, keys)
        except LedgerError as exc:
            raise MalformedError(f"couldn't use the trust state's checkpoint: {exc}") from exc
        # Step 5: the edge.
        for level, edge in enumerate(edges):
            width = (checkpoint.size >> (TILE_HEIGHT * level)) & (TILE_WIDTH - 1)
            if len(edge) != width * HASH_SIZE:
                raise MalformedError(
                    f"couldn't read the trust state: edge tile {level} is {len(edge)} bytes, the "
                    f"tree of size {checkpoint.size} needs {width * HASH_SIZE}"
                )
        # Step 6: the protocol.
        if protocol.size != checkpoint.size:
            raise MalformedError(
                f"couldn't read the trust state: its protocol state has {protocol.size} entries, "
                f"its checkpoint {checkpoint.size}"
            )
        state = cls(vkey, note, checkpoint, last, edges, protocol, tools)
        state.tree()
        return state


@contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector: encoding or decoding a snapshot allocates millions of
    containers and frees none, and every collection would walk them all again."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def save_trust_state(path: Path, state: TrustState) -> None:
    """Write ``state`` to ``path`` atomically (a crash leaves the old file or the new one)."""
    with _no_gc():
        value = state.to_json()
        try:
            data = orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE)
        except TypeError:  # orjson.JSONEncodeError: an integer beyond 64 bits, for one
            data = json.dumps(value, separators=(",", ":")).encode("utf-8") + b"\n"
    write_atomically(path, data)


def load_trust_state(path: Path, log_key: LogKey) -> TrustState:
    """Read and check the trust state at ``path`` (see :meth:`TrustState.from_json`)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MalformedError(f"couldn't read the trust state {path}: {exc}") from exc
    with _no_gc():
        try:
            value = orjson.loads(data)
        except ValueError as exc:  # orjson.JSONDecodeError
            raise MalformedError(f"couldn't read the trust state {path}: not JSON: {exc}") from None
        return TrustState.from_json(value, log_key)
