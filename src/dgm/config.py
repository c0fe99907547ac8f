"""Typed configs: dataclasses that round-trip through JSON and ``--set key=value`` strings."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, TypeVar, Union

from dgm.errors import ConfigError

C = TypeVar("C")


def field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def coerce(value: Any, tp: Any) -> Any:
    """Turn ``value`` (a string from the command line, or JSON) into type ``tp``."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        is_none = value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        if is_none and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg)
            except (ValueError, TypeError) as e:
                errors.append(str(e))
        raise ValueError("; ".join(errors) or "unsupported value")
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(map(str, choices))}")
        return value
    if origin in (tuple, list):
        if isinstance(value, str):
            text = value.strip()
            value = json.loads(text) if text.startswith("[") else [v for v in text.split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise ValueError("expected a list, e.g. 1,2,3")
        (inner, *_rest) = typing.get_args(tp) or (Any,)
        items = [v if inner is Any else coerce(v, inner) for v in value]
        return tuple(items) if origin is tuple else items
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            return _parse_bool(value)
        raise ValueError("expected true or false")
    if tp is int:
        if isinstance(value, bool):
            raise ValueError("expected an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                raise ValueError("expected an integer") from None
        raise ValueError("expected an integer")
    if tp is float:
        if isinstance(value, bool):
            raise ValueError("expected a number")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError("expected a number") from None
    if tp is str:
        if not isinstance(value, str):
            raise ValueError("expected a string")
        return value
    return value


def build(cls: type[C], values: dict[str, Any], what: str) -> C:
    """Build dataclass ``cls`` from ``values``, with one-line errors for unknown keys or types."""
    types_ = field_types(cls)
    unknown = sorted(set(values) - set(types_))
    if unknown:
        raise ConfigError(
            f"unknown {what} option {unknown[0]!r}; valid options: {', '.join(sorted(types_))}"
        )
    kwargs = {}
    for key, value in values.items():
        try:
            kwargs[key] = coerce(value, types_[key])
        except (ValueError, TypeError, json.JSONDecodeError) as e:
            raise ConfigError(f"{what} option {key}={value!r}: {e}") from None
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{what}: {e}") from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-able dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def parse_set(items: list[str]) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set hidden=128")
        out[key.strip()] = value.strip()
    return out


def opt(default: Any, help: str) -> Any:
    """A config field with a one-line description (shown by ``dgm list``)."""
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: default, metadata={"help": help})
    return dataclasses.field(default=default, metadata={"help": help})


def describe(cls: type) -> list[tuple[str, Any, str]]:
    """``(name, default, help)`` for every field of config class ``cls``."""
    out = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else None
        if isinstance(default, tuple):
            default = list(default)
        out.append((f.name, default, f.metadata.get("help", "")))
    return out
