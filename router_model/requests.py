"""Parsing a routing request (a JSON object) into a ``DecisionRequest``.

Used by ``tierwise predict`` for its input lines and by anything else that
accepts requests as JSON; errors name the offending field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from router_model.errors import InvalidInputError
from router_model.router import DecisionRequest
from router_model.text import flatten, parse_messages


def parse_request(obj: Any) -> DecisionRequest:
    """``{prompt | messages, system?, request_id?, quality_target?, max_cost_usd?, rule?}``."""
    if not isinstance(obj, Mapping):
        raise InvalidInputError("a request must be a JSON object")
    prompt = obj.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise InvalidInputError("must be a string", "prompt")
    raw_messages = obj.get("messages")
    messages = parse_messages(raw_messages) if raw_messages is not None else ()
    system = obj.get("system")
    if system is not None and not isinstance(system, str):
        raise InvalidInputError("must be a string", "system")
    request_id = obj.get("request_id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInputError("must be a string", "request_id")
    rule = obj.get("rule")
    if rule is not None and not isinstance(rule, str):
        raise InvalidInputError("must be a string", "rule")
    return DecisionRequest(
        text=flatten(prompt, messages, system),
        request_id=request_id,
        quality_target=_optional_float(obj, "quality_target"),
        max_cost_usd=_optional_float(obj, "max_cost_usd"),
        rule=rule,
    )


def _optional_float(obj: Mapping[str, Any], key: str) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInputError(f"must be a finite number, got {value!r}", key)
    return float(value)
