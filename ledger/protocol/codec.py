"""The record codec of the derived state: one protocol record as compact JSON bytes.

:mod:`ledger.protocol.stored` keeps the protocol state's tables in a database, one row per
record and version; this module turns a record into the bytes of that row and back. It is a
data format only (no pickle, no eval): decoding builds nothing but the record dataclasses of
:mod:`ledger.protocol.records` and the body models of :mod:`ledger.protocol.statements` and
:mod:`ledger.protocol.terms`, looked up by class name, and refuses anything else with
:class:`~ledger.errors.MalformedError`.

Values are JSON scalars (never floats) and lists as themselves; everything else is an object
tagged by ``"@"``: ``t`` tuple, ``f`` frozenset, ``s`` set, ``d`` dict (``k`` keys, ``v``
values), ``b`` bytes (base64), ``m`` a body model (``c`` class, ``v`` its JSON), ``r`` a record
(``c`` class, ``v`` its field values in declaration order).

Records that another record *shares* are written by reference, so that the decoded objects are
shared again (the state mutates them through either path): ``{"@": "p", "k": i}`` is the pause
period starting at entry ``i`` (a subject's ``pause_period``), ``{"@": "a", "k": i}`` the
application at entry ``i`` (what a decision entry decided). The caller resolves references with
the ``resolve`` function it passes to :func:`decode_value`.

Contract: ``decode_value(encode_value(v), resolve)`` is equal to ``v`` for every value the
protocol state holds, and ``encode_value`` is deterministic (sets are written sorted), so equal
values give equal bytes — the store compares bytes to skip writing unchanged records.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable
from functools import cache
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from ledger.errors import MalformedError
from ledger.protocol import records, statements, terms

Resolve = Callable[[str, int], Any]
"""Resolves a reference: ``("p", index)`` to a pause period, ``("a", index)`` to an
application record."""


@cache
def record_classes() -> tuple[dict[str, type[Any]], dict[str, type[BaseModel]]]:
    """The record dataclasses of :mod:`ledger.protocol.records` and the body models of
    :mod:`ledger.protocol.statements` and :mod:`ledger.protocol.terms`, by class name: the
    only classes a decoder of protocol state builds (this codec, and the verifier's
    snapshot)."""
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


_FIELDS: dict[type[Any], tuple[str, ...]] = {}


def _field_names(cls: type[Any]) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def _defaulted(cls: type[Any], given: int) -> bool:
    """Whether every field of ``cls`` after the first ``given`` has a default."""
    return all(
        f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        for f in dataclasses.fields(cls)[given:]
    )


def _encode(value: Any, top: bool) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, list):
        return [_encode(v, False) for v in value]
    if isinstance(value, tuple):
        return {"@": "t", "v": [_encode(v, False) for v in value]}
    if isinstance(value, dict):
        return {
            "@": "d",
            "k": [_encode(k, False) for k in value],
            "v": [_encode(v, False) for v in value.values()],
        }
    if isinstance(value, (set, frozenset)):
        tag = "f" if isinstance(value, frozenset) else "s"
        return {"@": tag, "v": [_encode(v, False) for v in sorted(value)]}
    if isinstance(value, (bytes, bytearray)):
        return {"@": "b", "v": base64.b64encode(value).decode("ascii")}
    if isinstance(value, BaseModel):
        return {"@": "m", "c": type(value).__name__, "v": value.model_dump(mode="json")}
    if not top and isinstance(value, records.PausePeriod):
        return {"@": "p", "k": value.index}
    if not top and isinstance(value, records.ApplicationRecord):
        return {"@": "a", "k": value.index}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        return {
            "@": "r",
            "c": cls.__name__,
            "v": [_encode(getattr(value, name), False) for name in _field_names(cls)],
        }
    raise MalformedError(f"couldn't encode a {type(value).__name__} in the derived state")


def encode_value(value: Any, *, by_reference: bool = False) -> bytes:
    """``value`` as the bytes of a derived-state row. A shared record (a pause period, an
    application) is written in full unless ``by_reference`` (a table whose values are shared
    records owned by another table, such as decisions → applications)."""
    return orjson.dumps(_encode(value, not by_reference))


_SCALARS = (int, str, bool, type(None))


def _decode(value: Any, resolve: Resolve) -> Any:
    kind = type(value)
    if kind is int or kind is str or kind is bool or value is None:
        return value
    if kind is list:
        if all(type(v) in _SCALARS for v in value):
            return value  # a fresh list from the parser: no one else holds it
        return [v if type(v) in _SCALARS else _decode(v, resolve) for v in value]
    if kind is not dict:
        raise MalformedError(f"couldn't decode a derived-state value of type {kind.__name__}")
    tag = value.get("@")
    if tag == "r":
        dataclass_types, _ = record_classes()
        cls = dataclass_types.get(value["c"])
        if cls is None:
            raise MalformedError(f"couldn't decode a derived-state record {value['c']!r}")
        fields = value["v"]
        if len(fields) != len(_field_names(cls)) and not (
            # A row written before trailing fields with defaults were added (the ML-DSA-44
            # bindings of keysets and subjects): those fields take their defaults.
            len(fields) < len(_field_names(cls)) and _defaulted(cls, len(fields))
        ):
            raise MalformedError(
                f"couldn't decode a derived-state {value['c']}: {len(fields)} fields, not "
                f"{len(_field_names(cls))} (written by another version?)"
            )
        # Scalars inline: most fields are, and a call per field was most of a report's decoding.
        return cls(*[v if type(v) in _SCALARS else _decode(v, resolve) for v in fields])
    if tag == "d":
        keys, values = value["k"], value["v"]
        if len(keys) != len(values):
            raise MalformedError("couldn't decode a derived-state dict: keys and values differ")
        return {
            (k if type(k) in _SCALARS else _decode(k, resolve)): (
                v if type(v) in _SCALARS else _decode(v, resolve)
            )
            for k, v in zip(keys, values, strict=True)
        }
    if tag == "t":
        return tuple(v if type(v) in _SCALARS else _decode(v, resolve) for v in value["v"])
    if tag == "f":
        return frozenset(_decode(v, resolve) for v in value["v"])
    if tag == "s":
        return {_decode(v, resolve) for v in value["v"]}
    if tag == "b":
        return base64.b64decode(value["v"], validate=True)
    if tag in ("p", "a"):
        key = value["k"]
        if type(key) is not int:
            raise MalformedError("couldn't decode a derived-state reference: its key is no index")
        return resolve(tag, key)
    if tag == "m":
        _, models = record_classes()
        model = models.get(value["c"])
        if model is None:
            raise MalformedError(f"couldn't decode a derived-state model {value['c']!r}")
        data = value["v"]
        if type(data) is not dict:
            raise MalformedError("couldn't decode a derived-state model: its value is no object")
        return model.model_validate(data)
    raise MalformedError(f"couldn't decode a derived-state value tagged {tag!r}")


def decode_value(data: bytes, resolve: Resolve) -> Any:
    """The value of a derived-state row (see :func:`encode_value`); references are resolved by
    ``resolve``. Raises :class:`MalformedError` for bytes this codec did not write."""
    try:
        return _decode(orjson.loads(data), resolve)
    except (KeyError, TypeError, ValueError, ValidationError, orjson.JSONDecodeError) as exc:
        raise MalformedError(f"couldn't decode a derived-state row: {exc}") from None
