"""The protocol snapshot codec: a :class:`~ledger.protocol.state.ProtocolState` as JSON data.

:func:`snapshot_protocol` encodes a protocol state and :func:`restore_protocol` rebuilds it; the
verifier's trust-state file (:mod:`ledger.verifier.trust`) keeps the snapshot under
``"protocol"``. Contract: ``restore_protocol`` of a snapshot, also after a round trip through
JSON, is a state equal to the one encoded; a state the encoding cannot hold, or a snapshot it
cannot trust, is refused with :class:`~ledger.errors.MalformedError`. Pure: no I/O (the caller
reads and writes the file).

The **protocol snapshot** (format ``amnesty-ledger.protocol-snapshot/v4``) is the
:class:`~ledger.protocol.state.ProtocolState` written out attribute by attribute, with its
records gathered into one table per class, stored by column::

    {"format": "amnesty-ledger.protocol-snapshot/v4",
     "classes": {"<record class>": ["<field>", ...]},
     "models": [["<body model class>", "<its JSON>"], ...],
     "records": {"<record class>": {"n": <count>, "columns": [<list>, ...]}},
     "attributes": {"<name>": <value>}}

``records[C]["columns"][j]`` is a *list encoding* (below) of field ``j`` (in the order of
``classes[C]``) of records ``0 .. n-1`` of class ``C``; record ``i`` is built as
``C(*(column[i] for column in columns))``. Every class in ``classes`` has a table and the
reverse. A table may refer to records of other classes (never, even indirectly, to its own:
the encoder refuses such a state), so tables are rebuilt on first use, referenced ones first.

Values are in a small typed JSON encoding: strings, integers, booleans and null as themselves
(never floats), a JSON list is a ``list`` of the values it holds, and everything else is an
object tagged by ``"@"``:

==============================================  ==================================================
``{"@": "t", "v": <list>}``                     tuple
``{"@": "s" or "f", "v": <list>}``              set or frozenset (elements sorted when they can be)
``{"@": "d", "k": <list>, "v": <list>}``        dict: keys and values in insertion order
``{"@": "b" or "B", "v": "<base64>"}``          bytes or bytearray
``{"@": "a", "t": "<code>", "v": "<b64>"}``     ``array.array`` (little-endian items)
``{"@": "r", "c": "<class>", "i": n}``          record ``n`` of ``records[<class>]`` (shared,
                                                not copied, wherever it is referred to)
``{"@": "m", "i": k}``                          body model ``k`` of ``models`` (frozen values,
                                                each distinct one written once)
==============================================  ==================================================

A *list encoding* (the ``<list>`` above, and every column) is a JSON list as above, or one of
these objects, which stand for a list and are also allowed wherever a value is:

==============================================  ==================================================
``{"@": "R", "c": "<class>", "i": [n, ...]}``   records ``n, ...`` of one class
``{"@": "M", "i": [k, ...]}``                   body models ``k, ...``
``{"@": "D", "n": [len, ...],``                 dicts, the ``i``-th with ``n[i]`` items: the
``"k": <list>, "v": <list>}``                   keys and values of all of them, concatenated
``{"@": "T", "n": [len, ...], "v": <list>}``    tuples, the items of all of them concatenated
==============================================  ==================================================

A snapshot is a data format only: no pickle, no marshal, no eval. Loading runs no code of the
file's; it only builds the record classes and body models it names, looked up in
:mod:`ledger.protocol`, and refuses anything else: another snapshot format, attributes that
are not the current state's, record classes whose field lists differ from the current ones (a
snapshot written by another version: verify from scratch), tables whose columns do not match
their class or ``n``, references out of range, lengths that do not add up, unknown tags and
non-integer numbers. Then the state file's checks apply
(:meth:`~ledger.verifier.trust.TrustState.from_json`: signed checkpoint, edge tiles against its
root, protocol size equal to the checkpoint size).

Cost (see the Verification section of ``docs/PERFORMANCE.md``): the snapshot is still
proportional to the protocol state — about 55 bytes per entry for the per-entry arrays (base64
strings) plus the record tables — but it is encoded and decoded a column at a time, with the
type checks and copies of the common columns (all scalars, all lists of scalars) done by loops
in C, written and parsed with ``orjson``, and with the cyclic garbage collector paused
meanwhile (millions of new containers, none garbage; :mod:`ledger.verifier.trust` does both).
A 1,000,000-entry state of 83,000 subjects (96 MB) loads in about 0.9 s and saves in about
0.8 s, against 7 s each for ``protocol-snapshot/v1`` (one tagged JSON object per record), which
this version refuses.
"""

from __future__ import annotations

import base64
import dataclasses
import sys
from array import array
from itertools import chain, islice
from operator import attrgetter
from typing import Any, Final

from pydantic import BaseModel

from ledger.errors import MalformedError
from ledger.protocol.codec import record_classes
from ledger.protocol.state import ProtocolState

SNAPSHOT_FORMAT: Final = "amnesty-ledger.protocol-snapshot/v4"
"""v4 (issue 18): the state holds the log's ML-DSA-44 key anchored by a ``log_key`` entry
(``_log_key``); v3 (keys compared by public key) and older are refused: verify from scratch."""

_SCALARS: Final = (str, int, bool, type(None))
_SCALAR_SET: Final = frozenset(_SCALARS)
_LIST_SET: Final = frozenset({list})
_INT_SET: Final = frozenset({int})


def _registry() -> tuple[dict[str, type[Any]], dict[str, type[BaseModel]]]:
    """The record dataclasses and body models a snapshot may name, by class name (the same
    classes the derived state's codec may build)."""
    return record_classes()


def snapshot_protocol(state: ProtocolState) -> dict[str, Any]:
    """Encode ``state`` as JSON data that :func:`restore_protocol` turns back into an equal state.

    Raises :class:`MalformedError` if the state holds a value of a type the encoding does not
    know (a new kind of record added to the protocol without updating this module), or records
    whose classes refer to each other in a cycle (the tables could not be rebuilt in order).
    """
    encoder = _Encoder()
    attributes = {name: encoder.encode(value, name) for name, value in vars(state).items()}
    tables = encoder.tables()  # before "classes": encoding the tables may meet more classes
    return {
        "format": SNAPSHOT_FORMAT,
        "classes": {
            name: [f.name for f in dataclasses.fields(cls)]
            for name, cls in sorted(encoder.classes.items())
        },
        "models": encoder.model_table,
        "records": tables,
        "attributes": attributes,
    }


def restore_protocol(snapshot: Any) -> ProtocolState:
    """Rebuild the :class:`ProtocolState` that :func:`snapshot_protocol` encoded.

    Refused with :class:`MalformedError`: another snapshot format, attributes that are not the
    current state's, record classes whose fields differ from the current ones (a snapshot
    written by another version: verify from scratch instead), and record tables that are not
    one column per field of equal lengths or that refer to each other in a cycle.

    The restored state takes over lists of ``snapshot`` (lists of scalars are used as they
    are, not copied): pass a snapshot fresh from the parser, and do not use it afterwards.
    """
    if not isinstance(snapshot, dict) or snapshot.get("format") != SNAPSHOT_FORMAT:
        written = snapshot.get("format") if isinstance(snapshot, dict) else None
        older = f" but {written!r}, written by another version" if isinstance(written, str) else ""
        raise MalformedError(
            f"couldn't restore the protocol state: it is not {SNAPSHOT_FORMAT}{older} (which "
            "does not record a log key anchored in the log); verify from scratch"
        )
    classes, models = _registry()
    layouts = snapshot.get("classes")
    tables = snapshot.get("records")
    attributes = snapshot.get("attributes")
    if not isinstance(layouts, dict) or not isinstance(tables, dict):
        raise MalformedError("couldn't restore the protocol state: classes or records missing")
    if not isinstance(attributes, dict):
        raise MalformedError("couldn't restore the protocol state: attributes missing")
    for name, fields in layouts.items():
        cls = classes.get(name)
        current = None if cls is None else [f.name for f in dataclasses.fields(cls)]
        if current != fields:
            raise MalformedError(
                f"couldn't restore the protocol state: record {name} has fields {fields} in the "
                f"snapshot but {current} in this version; verify from scratch"
            )
    if set(tables) != set(layouts):
        raise MalformedError(
            f"couldn't restore the protocol state: it has record tables {sorted(tables)} for "
            f"the classes {sorted(layouts)}"
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
        decoder = _Decoder(
            {name: classes[name] for name in layouts}, models, snapshot.get("models", []), tables
        )
        for name, value in attributes.items():
            setattr(state, name, decoder.decode(value))
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise MalformedError(f"couldn't restore the protocol state: {exc!r}") from None
    return state


class _Encoder:
    """Typed JSON encoding with records in per-class tables and body models in one table.

    Records are numbered when first met and encoded later, a column at a time (one
    ``attrgetter`` over the class's records per field), so that the common columns — all
    scalars, all lists of scalars, all dicts of scalars — are recognised and copied by loops in
    C. Records and models are numbered by object identity (a restored state shares them), so
    each is encoded once.
    """

    def __init__(self) -> None:
        self.dataclasses, self.models = _registry()
        self.classes: dict[str, type[Any]] = {}
        self.model_table: list[list[str]] = []
        self._model_ids: dict[tuple[str, str], int] = {}
        self._model_by_id: dict[int, int] = {}
        self._fields: dict[str, tuple[str, ...]] = {}
        self._objects: dict[str, list[Any]] = {}  # class -> its records, by number
        self._done: dict[str, int] = {}  # class -> how many of its records are encoded
        self._chunks: dict[str, list[list[Any]]] = {}  # class -> encoded column chunks
        self._ids: dict[int, int] = {}
        self._keep: list[object] = []  # keeps encoded objects alive so their ids stay unique
        self._depends: dict[str, set[str]] = {}  # record class -> classes its fields refer to
        self._inside: str | None = None  # the class whose columns are being encoded

    def encode(self, value: Any, where: str) -> Any:
        kind = type(value)
        if kind in _SCALARS:
            return value
        if kind is list:
            return self.sequence(value, where)
        if kind is tuple:
            return {"@": "t", "v": self.sequence(list(value), where)}
        if kind is set or kind is frozenset:
            try:
                ordered = sorted(value)
            except TypeError:
                ordered = list(value)
            return {"@": "s" if kind is set else "f", "v": self.sequence(ordered, where)}
        if kind is dict:
            return {
                "@": "d",
                "k": self.sequence(list(value), where),
                "v": self.sequence(list(value.values()), where),
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
            return {"@": "r", "c": name, "i": self._record(value, kind, name)}
        if self.models.get(name) is kind:
            return {"@": "m", "i": self._model(value, name)}
        raise MalformedError(
            f"couldn't snapshot the protocol state: {where} holds a {kind.__module__}.{name}, "
            "which the snapshot encoding does not know"
        )

    def sequence(self, values: list[Any], where: str) -> Any:
        """A list encoding of ``values``: a JSON list, or ``{"@": "R" | "M" | "D", ...}`` when
        every item is a record of one class, a body model, or a dict."""
        if _SCALAR_SET.issuperset(map(type, values)):
            return list(values)
        types = set(map(type, values))
        if len(types) == 1:
            kind = next(iter(types))
            if kind is list and _SCALAR_SET.issuperset(map(type, chain.from_iterable(values))):
                return list(map(list.copy, values))
            if kind is dict or kind is tuple:
                flat = list(chain.from_iterable(values))
                out = {"@": "D" if kind is dict else "T", "n": list(map(len, values))}
                if kind is dict:
                    out["k"] = self.sequence(flat, where)
                    flat = list(chain.from_iterable(map(dict.values, values)))
                out["v"] = self.sequence(flat, where)
                return out
            name = kind.__name__
            if self.dataclasses.get(name) is kind:
                if self._inside is not None:
                    self._depends[self._inside].add(name)
                numbers = list(map(self._ids.get, map(id, values)))
                if None in numbers:
                    record = self._record
                    numbers = [record(v, kind, name) for v in values]
                return {"@": "R", "c": name, "i": numbers}
            if self.models.get(name) is kind:
                numbers = list(map(self._model_by_id.get, map(id, values)))
                if None in numbers:
                    model = self._model
                    numbers = [model(v, name) for v in values]
                return {"@": "M", "i": numbers}
        enc = self.encode
        return [v if type(v) in _SCALARS else enc(v, where) for v in values]

    def _model(self, value: Any, name: str) -> int:
        # Body models are frozen values: each distinct one is written once, in "models".
        number = self._model_by_id.get(id(value))
        if number is None:
            key = (name, value.model_dump_json())
            number = self._model_ids.get(key)
            if number is None:
                number = self._model_ids[key] = len(self.model_table)
                self.model_table.append(list(key))
            self._model_by_id[id(value)] = number
            self._keep.append(value)
        return number

    def _record(self, value: Any, kind: type[Any], name: str) -> int:
        if self._inside is not None:
            self._depends[self._inside].add(name)
        known = self._ids.get(id(value))
        if known is not None:
            return known
        objects = self._objects.get(name)
        if objects is None:
            self._fields[name] = tuple(f.name for f in dataclasses.fields(kind))
            self.classes[name] = kind
            objects = self._objects[name] = []
            self._done[name] = 0
            self._chunks[name] = []
            self._depends[name] = set()
        number = len(objects)
        self._ids[id(value)] = number
        objects.append(value)
        return number

    def tables(self) -> dict[str, Any]:
        """Encode the records met so far (and those they refer to) and return the tables,
        ``{"<class>": {"n": count, "columns": [...]}}``, after checking that no class depends
        on itself through its fields."""
        while True:
            pending = [n for n in sorted(self._objects) if self._done[n] < len(self._objects[n])]
            if not pending:
                break
            for name in pending:
                objects = self._objects[name][self._done[name] :]
                self._done[name] += len(objects)
                self._inside = name
                self._chunks[name].append(
                    [
                        self.sequence(list(map(attrgetter(f), objects)), f"{name}.{f}")
                        for f in self._fields[name]
                    ]
                )
                self._inside = None
        done: set[str] = set()

        def visit(name: str, path: tuple[str, ...]) -> None:
            if name in path:
                raise MalformedError(
                    "couldn't snapshot the protocol state: records refer to each other in a "
                    f"cycle ({' -> '.join((*path, name))}), which the record tables cannot hold"
                )
            if name not in done:
                for other in sorted(self._depends[name]):
                    visit(other, (*path, name))
                done.add(name)

        for name in sorted(self._objects):
            visit(name, ())
        out: dict[str, Any] = {}
        for name in sorted(self._objects):
            chunks = self._chunks[name]
            if len(chunks) == 1:
                columns = chunks[0]
            else:  # records met while encoding other tables: join the chunks as plain lists
                columns = [
                    [v for chunk in chunks for v in _unpack(chunk[i])]
                    for i in range(len(self._fields[name]))
                ]
            out[name] = {"n": len(self._objects[name]), "columns": columns}
        return out


def _unpack(column: Any) -> list[Any]:
    """A list encoding as a JSON list of the items' own encodings."""
    if type(column) is list:
        return column
    tag = column["@"]
    if tag == "R":
        return [{"@": "r", "c": column["c"], "i": n} for n in column["i"]]
    if tag == "M":
        return [{"@": "m", "i": n} for n in column["i"]]
    # "D" or "T": the items of each dict or tuple, as JSON lists of their encodings.
    items = _unpack(column["v"])
    keys = _unpack(column["k"]) if tag == "D" else []
    out: list[Any] = []
    start = 0
    for n in column["n"]:
        end = start + n
        if tag == "D":
            out.append({"@": "d", "k": keys[start:end], "v": items[start:end]})
        else:
            out.append({"@": "t", "v": items[start:end]})
        start = end
    return out


class _Decoder:
    def __init__(
        self,
        classes: dict[str, type[Any]],
        models: dict[str, type[BaseModel]],
        model_table: list[list[str]],
        tables: dict[str, Any],
    ) -> None:
        self._classes = classes
        self._tables = tables
        self._built: dict[str, list[Any]] = {}
        self._building: set[str] = set()
        self._models = [models[name].model_validate_json(text) for name, text in model_table]

    def table(self, name: str) -> list[Any]:
        """The records of class ``name``, built (with the tables they refer to) on first use."""
        built = self._built.get(name)
        if built is not None:
            return built
        if name in self._building:
            raise ValueError(f"the record tables refer to each other in a cycle through {name}")
        self._building.add(name)
        cls = self._classes[name]
        table = self._tables[name]
        count = table["n"]
        columns = [self.sequence(c) for c in table["columns"]]
        width = len(dataclasses.fields(cls))
        if type(count) is not int or len(columns) != width:
            raise ValueError(f"table {name} has {len(columns)} columns, its class {width} fields")
        if any(len(c) != count for c in columns):
            raise ValueError(f"table {name}'s columns are not all {count} long")
        built = list(map(cls, *columns)) if width else [cls() for _ in range(count)]
        self._building.discard(name)
        self._built[name] = built
        return built

    def sequence(self, value: Any) -> list[Any]:
        """A list from a list encoding (see :meth:`_Encoder.sequence`)."""
        kind = type(value)
        if isinstance(value, list):
            # Fast paths, type checks in C: a list of scalars, or of lists of scalars, is taken
            # as it is (the lists are the parser's own, shared with nothing else).
            types = set(map(type, value))
            if types <= _SCALAR_SET:
                return value
            if types == _LIST_SET and set(map(type, chain.from_iterable(value))) <= _SCALAR_SET:
                return value
            dec = self.decode
            return [v if type(v) in _SCALARS else dec(v) for v in value]
        if kind is not dict:
            raise ValueError(f"expected a list encoding, not {value!r:.40}")
        tag = value["@"]
        if tag in {"D", "T"}:
            lengths = value["n"]
            items = self.sequence(value["v"])
            if type(lengths) is not list or not _INT_SET.issuperset(map(type, lengths)):
                raise ValueError(f"expected a list of lengths in {tag!r}")
            if (lengths and min(lengths) < 0) or sum(lengths) != len(items):
                raise ValueError(f"the lengths in {tag!r} do not add up to {len(items)} items")
            if tag == "T":
                flat = iter(items)
                return [tuple(islice(flat, n)) for n in lengths]
            keys = self.sequence(value["k"])
            if len(keys) != len(items):
                raise ValueError(f"'D' has {len(keys)} keys for {len(items)} values")
            pairs = zip(keys, items, strict=True)
            return [dict(islice(pairs, n)) for n in lengths]
        numbers = value["i"]
        if type(numbers) is not list:
            raise ValueError(f"expected a list of numbers in {tag!r}")
        if tag == "R":
            table = self.table(value["c"])
        elif tag == "M":
            table = self._models
        else:
            raise ValueError(f"expected a list encoding, not tag {tag!r}")
        for n in numbers:
            if type(n) is not int or n < 0:
                raise ValueError(f"bad reference {n!r} in {tag!r}")
        return [table[n] for n in numbers]

    def decode(self, value: Any) -> Any:
        kind = type(value)
        if kind is list:
            return self.sequence(value)
        if kind is not dict:
            if kind in _SCALARS:
                return value
            raise ValueError(f"unexpected JSON value {value!r:.40}")
        tag = value["@"]
        if tag == "r":
            number = value["i"]
            if type(number) is not int or number < 0:
                raise ValueError(f"bad record reference {number!r}")
            return self.table(value["c"])[number]
        if tag == "m":
            number = value["i"]
            if type(number) is not int or number < 0:
                raise ValueError(f"bad model reference {number!r}")
            return self._models[number]
        if tag == "d":
            return dict(zip(self.sequence(value["k"]), self.sequence(value["v"]), strict=True))
        if tag == "t":
            return tuple(self.sequence(value["v"]))
        if tag == "s":
            return set(self.sequence(value["v"]))
        if tag == "f":
            return frozenset(self.sequence(value["v"]))
        if tag in {"R", "M", "D", "T"}:
            return self.sequence(value)
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
