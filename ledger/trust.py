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

The **protocol snapshot** (format ``amnesty-ledger.protocol-snapshot/v1``) is the
:class:`~ledger.protocol.state.ProtocolState` written out attribute by attribute::

    {"format": ..., "classes": {"<record class>": ["<field>", ...]},
     "models": [["<body model class>", "<its JSON>"], ...], "attributes": {"<name>": <value>}}

with values in a small typed JSON encoding: strings, integers, booleans, null and lists as
themselves, everything else an object tagged by ``"@"``:

==========================================  ============================================
``{"@": "t", "v": [...]}``                  tuple
``{"@": "s" or "f", "v": [...]}``           set or frozenset (elements sorted)
``{"@": "d", "v": [[key, value], ...]}``    dict (keys in insertion order)
``{"@": "b" or "B", "v": "<base64>"}``      bytes or bytearray
``{"@": "a", "t": "<code>", "v": "<b64>"}`` ``array.array`` (little-endian items)
``{"@": "r", "c": "<class>", "i": n,``      record number ``n``: a dataclass of
``"v": [<field values in order>]}``         :mod:`ledger.protocol.records`
``{"@": "p", "i": n}``                      record number ``n`` again (shared, not copied)
``{"@": "m", "i": k}``                      body model ``k`` of ``models`` (frozen values)
==========================================  ============================================

No pickle: loading a trust file runs no code; it only builds the record classes and body models
it names, looked up in :mod:`ledger.protocol`. The record classes' field lists are stored so
that a snapshot written by another version of the protocol is refused instead of misread.

Cost: the snapshot is proportional to the protocol state — about 41 bytes per entry for the
per-entry arrays (one base64 string each), plus every subject, application, decision and other
record. Saving and loading it are the part of an incremental run that grows with the log: see
the Verification section of ``docs/PERFORMANCE.md``.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import sys
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel

from ledger.atomic import write_atomically
from ledger.checkpoint import Checkpoint, open_checkpoint
from ledger.errors import LedgerError, MalformedError
from ledger.merkle import HASH_SIZE
from ledger.note import VerifierKey
from ledger.protocol import records, statements, terms
from ledger.protocol.state import ProtocolState
from ledger.tiles import TILE_HEIGHT, TILE_WIDTH, TiledTree

STATE_FORMAT: Final = "amnesty-ledger.verifier-state/v1"
SNAPSHOT_FORMAT: Final = "amnesty-ledger.protocol-snapshot/v1"


# ------------------------------------------------------------------------- the trust state


@dataclass
class TrustState:
    """A verified checkpoint and what a verifier needs to continue from it.

    Build one from a verification result (``ledger.verify.VerifiedLog.trust_state``) or with
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
    def from_json(cls, value: Any, log_key: VerifierKey) -> TrustState:
        """Read a state file's JSON object, checking it against the log key ``log_key``.

        Steps: (1) the format and the fields' types; (2) the log vkey is ``log_key``; (3) the
        checkpoint's signature verifies under it; (4) the edge tiles have the widths the size
        implies and hash to the checkpoint's root; (5) the protocol snapshot restores to a state
        of exactly ``size`` entries. Raises :class:`MalformedError` naming the first failure.
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
        # Steps 2-3: the log and its signature.
        if vkey != log_key.vkey():
            raise MalformedError(
                f"couldn't use the trust state: it is for log key {vkey}, not {log_key.vkey()}"
            )
        try:
            checkpoint = open_checkpoint(note, log_key)
        except LedgerError as exc:
            raise MalformedError(f"couldn't use the trust state's checkpoint: {exc}") from exc
        # Step 4: the edge.
        for level, edge in enumerate(edges):
            width = (checkpoint.size >> (TILE_HEIGHT * level)) & (TILE_WIDTH - 1)
            if len(edge) != width * HASH_SIZE:
                raise MalformedError(
                    f"couldn't read the trust state: edge tile {level} is {len(edge)} bytes, the "
                    f"tree of size {checkpoint.size} needs {width * HASH_SIZE}"
                )
        # Step 5: the protocol.
        protocol = restore_protocol(snapshot)
        if protocol.size != checkpoint.size:
            raise MalformedError(
                f"couldn't read the trust state: its protocol state has {protocol.size} entries, "
                f"its checkpoint {checkpoint.size}"
            )
        state = cls(vkey, note, checkpoint, last, edges, protocol, tools)
        state.tree()
        return state


def save_trust_state(path: Path, state: TrustState) -> None:
    """Write ``state`` to ``path`` atomically (a crash leaves the old file or the new one)."""
    text = json.dumps(state.to_json(), separators=(",", ":"), sort_keys=False)
    write_atomically(path, text.encode("utf-8") + b"\n")


def load_trust_state(path: Path, log_key: VerifierKey) -> TrustState:
    """Read and check the trust state at ``path`` (see :meth:`TrustState.from_json`)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MalformedError(f"couldn't read the trust state {path}: {exc}") from exc
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise MalformedError(f"couldn't read the trust state {path}: not JSON: {exc}") from None
    return TrustState.from_json(value, log_key)


# ---------------------------------------------------------------------- protocol snapshots

_SCALARS: Final = (str, int, bool, type(None))


def _registry() -> tuple[dict[str, type[Any]], dict[str, type[BaseModel]]]:
    """The record dataclasses and body models a snapshot may name, by class name."""
    dataclass_types = {
        name: obj
        for name, obj in vars(records).items()
        if isinstance(obj, type)
        and dataclasses.is_dataclass(obj)
        and obj.__module__ == records.__name__
    }
    models = {
        name: obj
        for module in (statements, terms)
        for name, obj in vars(module).items()
        if isinstance(obj, type)
        and issubclass(obj, BaseModel)
        and obj.__module__ == module.__name__
    }
    return dataclass_types, models


def snapshot_protocol(state: ProtocolState) -> dict[str, Any]:
    """Encode ``state`` as JSON data that :func:`restore_protocol` turns back into an equal state.

    Raises :class:`MalformedError` if the state holds a value of a type the encoding does not
    know (a new kind of record added to the protocol without updating this module).
    """
    encoder = _Encoder()
    attributes = {name: encoder.encode(value, name) for name, value in vars(state).items()}
    return {
        "format": SNAPSHOT_FORMAT,
        "classes": {
            name: [f.name for f in dataclasses.fields(cls)]
            for name, cls in sorted(encoder.classes.items())
        },
        "models": encoder.model_table,
        "attributes": attributes,
    }


def restore_protocol(snapshot: Any) -> ProtocolState:
    """Rebuild the :class:`ProtocolState` that :func:`snapshot_protocol` encoded.

    Refused with :class:`MalformedError`: another snapshot format, attributes that are not the
    current state's, and record classes whose fields differ from the current ones (a snapshot
    written by another version: verify from scratch instead).
    """
    if not isinstance(snapshot, dict) or snapshot.get("format") != SNAPSHOT_FORMAT:
        raise MalformedError(f"couldn't restore the protocol state: it is not {SNAPSHOT_FORMAT}")
    classes, models = _registry()
    layouts = snapshot.get("classes")
    attributes = snapshot.get("attributes")
    if not isinstance(layouts, dict) or not isinstance(attributes, dict):
        raise MalformedError("couldn't restore the protocol state: classes or attributes missing")
    for name, fields in layouts.items():
        cls = classes.get(name)
        current = None if cls is None else [f.name for f in dataclasses.fields(cls)]
        if current != fields:
            raise MalformedError(
                f"couldn't restore the protocol state: record {name} has fields {fields} in the "
                f"snapshot but {current} in this version; verify from scratch"
            )
    state = ProtocolState()
    expected = set(vars(state))
    if set(attributes) != expected:
        raise MalformedError(
            "couldn't restore the protocol state: the snapshot has attributes "
            f"{sorted(set(attributes) - expected)} this version lacks and lacks "
            f"{sorted(expected - set(attributes))}; verify from scratch"
        )
    try:
        decoder = _Decoder(classes, models, snapshot.get("models", []))
        for name, value in attributes.items():
            setattr(state, name, decoder.decode(value))
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise MalformedError(f"couldn't restore the protocol state: {exc!r}") from None
    return state


class _Encoder:
    """Typed JSON encoding; dataclass instances are numbered so that sharing survives.

    Scalars are tested inline before every recursive call: most values in a state are scalars,
    and a snapshot of a large log encodes millions of them.
    """

    def __init__(self) -> None:
        self.dataclasses, self.models = _registry()
        self.classes: dict[str, type[Any]] = {}
        self.model_table: list[list[str]] = []
        self._model_ids: dict[tuple[str, str], int] = {}
        self._fields: dict[type[Any], tuple[str, ...]] = {}
        self._ids: dict[int, int] = {}
        self._keep: list[object] = []  # keeps encoded objects alive so their ids stay unique

    def encode(self, value: Any, where: str) -> Any:
        kind = type(value)
        if kind in _SCALARS:
            return value
        enc = self.encode
        if kind is list:
            return [v if type(v) in _SCALARS else enc(v, where) for v in value]
        if kind is tuple:
            return {"@": "t", "v": [v if type(v) in _SCALARS else enc(v, where) for v in value]}
        if kind is set or kind is frozenset:
            items = [enc(v, where) for v in value]
            items.sort(key=lambda v: json.dumps(v, sort_keys=True))
            return {"@": "s" if kind is set else "f", "v": items}
        if kind is dict:
            return {
                "@": "d",
                "v": [
                    [
                        k if type(k) in _SCALARS else enc(k, where),
                        v if type(v) in _SCALARS else enc(v, where),
                    ]
                    for k, v in value.items()
                ],
            }
        if kind is bytes or kind is bytearray:
            return {"@": "b" if kind is bytes else "B", "v": base64.b64encode(value).decode()}
        if kind is array:
            data = array(value.typecode, value)
            if sys.byteorder != "little":
                data.byteswap()
            return {"@": "a", "t": value.typecode, "v": base64.b64encode(data.tobytes()).decode()}
        name = kind.__name__
        if self.dataclasses.get(name) is kind:
            return self._record(value, kind, name, where)
        if self.models.get(name) is kind:
            # Body models are frozen values: each distinct one is written once, in "models".
            key = (name, value.model_dump_json())
            if key not in self._model_ids:
                self._model_ids[key] = len(self.model_table)
                self.model_table.append(list(key))
            return {"@": "m", "i": self._model_ids[key]}
        raise MalformedError(
            f"couldn't snapshot the protocol state: {where} holds a {kind.__module__}.{name}, "
            "which the snapshot encoding does not know"
        )

    def _record(self, value: Any, kind: type[Any], name: str, where: str) -> Any:
        known = self._ids.get(id(value))
        if known is not None:
            return {"@": "p", "i": known}
        number = len(self._ids)
        self._ids[id(value)] = number
        self._keep.append(value)
        fields = self._fields.get(kind)
        if fields is None:
            fields = self._fields[kind] = tuple(f.name for f in dataclasses.fields(kind))
            self.classes[name] = kind
        enc = self.encode
        values = [getattr(value, f) for f in fields]
        return {
            "@": "r",
            "c": name,
            "i": number,
            "v": [v if type(v) in _SCALARS else enc(v, where) for v in values],
        }


class _Decoder:
    def __init__(
        self,
        classes: dict[str, type[Any]],
        models: dict[str, type[BaseModel]],
        model_table: list[list[str]],
    ) -> None:
        self._classes = classes
        self._objects: dict[int, Any] = {}
        self._models = [models[name].model_validate_json(text) for name, text in model_table]

    def decode(self, value: Any) -> Any:
        kind = type(value)
        dec = self.decode
        if kind is list:
            return [v if type(v) in _SCALARS else dec(v) for v in value]
        if kind is not dict:
            return value
        tag = value["@"]
        if tag == "r":
            cls = self._classes[value["c"]]
            obj = cls(*[v if type(v) in _SCALARS else dec(v) for v in value["v"]])
            self._objects[value["i"]] = obj
            return obj
        if tag == "d":
            return {
                k if type(k) in _SCALARS else dec(k): v if type(v) in _SCALARS else dec(v)
                for k, v in value["v"]
            }
        if tag == "p":
            return self._objects[value["i"]]
        if tag == "m":
            return self._models[value["i"]]
        if tag == "t":
            return tuple(v if type(v) in _SCALARS else dec(v) for v in value["v"])
        if tag == "s":
            return {dec(v) for v in value["v"]}
        if tag == "f":
            return frozenset(dec(v) for v in value["v"])
        if tag in ("b", "B"):
            raw = base64.b64decode(value["v"], validate=True)
            return raw if tag == "b" else bytearray(raw)
        if tag == "a":
            data = array(value["t"])
            data.frombytes(base64.b64decode(value["v"], validate=True))
            if sys.byteorder != "little":
                data.byteswap()
            return data
        raise ValueError(f"unknown tag {tag!r}")
