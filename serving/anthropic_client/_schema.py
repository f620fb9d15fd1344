"""JSON Schema checking: ``jsonschema`` when installed, else a small subset.

The subset covers what answer contracts usually need (types, required and
allowed properties, items, enums, bounds, lengths, patterns) so that a routed
service does not need another dependency for a structured-output check. It
returns the first violation as a readable path and message, which is what the
handoff prompt shows the next tier.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

Checker = Callable[[Any], str | None]

_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
}


def schema_checker(schema: Mapping[str, Any]) -> Checker:
    """A function returning the first violation of ``schema``, or None."""
    try:
        validators = importlib.import_module("jsonschema.validators")
        exceptions = importlib.import_module("jsonschema.exceptions")
    except ImportError:
        return subset_checker(schema)
    validator = validators.validator_for(schema)(schema)

    def check(value: Any) -> str | None:
        error = exceptions.best_match(validator.iter_errors(value))
        if error is None:
            return None
        path = "".join(f"[{p!r}]" for p in error.absolute_path)
        return f"${path}: {error.message}" if path else str(error.message)

    return check


def subset_checker(schema: Mapping[str, Any]) -> Checker:
    """The built-in checker of the schema subset, whether or not jsonschema is installed."""
    return lambda value: _check(schema, value, "$")


def _check(schema: Mapping[str, Any], value: Any, where: str) -> str | None:
    for keyword, rule in _RULES.items():
        if keyword in schema:
            problem = rule(schema, value, where)
            if problem is not None:
                return problem
    return None


def _type(schema: Mapping[str, Any], value: Any, where: str) -> str | None:
    wanted = schema["type"]
    names = [wanted] if isinstance(wanted, str) else list(wanted)
    if any(_TYPES[n](value) for n in names):
        return None
    return f"{where}: expected {' or '.join(names)}, got {type(value).__name__}"


def _enum(schema: Mapping[str, Any], value: Any, where: str) -> str | None:
    return None if value in schema["enum"] else f"{where}: {value!r} is not one of {schema['enum']}"


def _const(schema: Mapping[str, Any], value: Any, where: str) -> str | None:
    return None if value == schema["const"] else f"{where}: expected {schema['const']!r}"


def _required(schema: Mapping[str, Any], value: Any, where: str) -> str | None:
    if not isinstance(value, dict):
        return None
    missing = [k for k in schema["required"] if k not in value]
    return f"{where}: missing required {missing}" if missing else None


def _properties(schema: Mapping[str, Any], value: Any, where: str) -> str | None:
    if not isinstance(value, dict):
        return None
    props: Mapping[str, Any] = schema.get("properties", {})
    for key, sub in props.items():
        if key in value:
            problem = _check(sub, value[key], f"{where}.{key}")
            if problem is not None:
                return problem
    extra = schema.get("additionalProperties", True)
    unknown = [k for k in value if k not in props]
    if extra is False and unknown:
        return f"{where}: unexpected properties {unknown}"
    if isinstance(extra, Mapping):
        for key in unknown:
            problem = _check(extra, value[key], f"{where}.{key}")
            if problem is not None:
                return problem
    return None


def _items(schema: Mapping[str, Any], value: Any, where: str) -> str | None:
    if not isinstance(value, list):
        return None
    for i, item in enumerate(value):
        problem = _check(schema["items"], item, f"{where}[{i}]")
        if problem is not None:
            return problem
    return None


def _bound(keyword: str, test: Callable[[float, float], bool], says: str) -> _Rule:
    def rule(schema: Mapping[str, Any], value: Any, where: str) -> str | None:
        if not _TYPES["number"](value) or (isinstance(value, float) and math.isnan(value)):
            return None
        limit = schema[keyword]
        return None if test(value, limit) else f"{where}: {value} {says} {limit}"

    return rule


def _size(keyword: str, kind: type[Any] | tuple[type[Any], ...], longer: bool) -> _Rule:
    def rule(schema: Mapping[str, Any], value: Any, where: str) -> str | None:
        if not isinstance(value, kind):
            return None
        assert isinstance(value, Sequence)
        limit = schema[keyword]
        ok = len(value) >= limit if longer else len(value) <= limit
        side = "at least" if longer else "at most"
        return None if ok else f"{where}: length {len(value)}, expected {side} {limit}"

    return rule


def _pattern(schema: Mapping[str, Any], value: Any, where: str) -> str | None:
    if not isinstance(value, str) or re.search(schema["pattern"], value):
        return None
    return f"{where}: {value!r} does not match {schema['pattern']!r}"


_Rule = Callable[[Mapping[str, Any], Any, str], str | None]
_RULES: dict[str, _Rule] = {
    "type": _type,
    "enum": _enum,
    "const": _const,
    "required": _required,
    "properties": _properties,
    "additionalProperties": lambda s, v, w: None if "properties" in s else _properties(s, v, w),
    "items": _items,
    "minimum": _bound("minimum", lambda v, lim: v >= lim, "is below the minimum"),
    "maximum": _bound("maximum", lambda v, lim: v <= lim, "is above the maximum"),
    "minLength": _size("minLength", str, longer=True),
    "maxLength": _size("maxLength", str, longer=False),
    "minItems": _size("minItems", list, longer=True),
    "maxItems": _size("maxItems", list, longer=False),
    "pattern": _pattern,
}
