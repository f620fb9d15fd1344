"""How a request becomes the text the router reads.

A request arrives as a plain prompt or as Anthropic-style messages with an
optional system prompt. The router sees one flattened string: the system
prompt, then each turn prefixed by its role, so that multi-turn context and
instructions both reach the embedding. Content blocks other than text (images,
tool results' binary parts) contribute nothing but are counted as turns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from router_model.errors import InvalidInputError

ROLES = ("user", "assistant")


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True)
class RequestText:
    """The flattened text of a request plus the structure features need."""

    text: str
    turns: int
    has_system: bool


def content_to_text(content: Any, field: str) -> str:
    """Accept a string or a list of content blocks (``{"type": "text", ...}``)."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts: list[str] = []
        for i, block in enumerate(content):
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, Mapping):
                text = block.get("text")
                if block.get("type", "text") == "text":
                    if not isinstance(text, str):
                        raise InvalidInputError("text block needs a string 'text'", f"{field}[{i}]")
                    parts.append(text)
            else:
                raise InvalidInputError("content block must be an object", f"{field}[{i}]")
        return "\n".join(parts)
    raise InvalidInputError("content must be a string or a list of blocks", field)


def parse_messages(raw: Any, field: str = "messages") -> tuple[Message, ...]:
    """Validate Anthropic-style messages, naming the offending element."""
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
        raise InvalidInputError("must be a list of {role, content} objects", field)
    if not raw:
        raise InvalidInputError("must not be empty", field)
    messages = []
    for i, item in enumerate(raw):
        where = f"{field}[{i}]"
        if not isinstance(item, Mapping):
            raise InvalidInputError("must be an object with 'role' and 'content'", where)
        role = item.get("role")
        if role not in ROLES:
            raise InvalidInputError(f"role must be one of {list(ROLES)}, got {role!r}", where)
        if "content" not in item:
            raise InvalidInputError("missing 'content'", where)
        messages.append(Message(role=role, content=content_to_text(item["content"], where)))
    return tuple(messages)


def flatten(
    prompt: str | None = None,
    messages: Sequence[Message] = (),
    system: str | None = None,
) -> RequestText:
    """One string per request: ``system`` first, then the turns in order."""
    if prompt is not None and messages:
        raise InvalidInputError("give either 'prompt' or 'messages', not both", "prompt")
    if prompt is None and not messages:
        raise InvalidInputError("a request needs 'prompt' or 'messages'", "prompt")
    parts = [system] if system else []
    if prompt is not None:
        parts.append(prompt)
        turns = 1
    elif len(messages) == 1:
        parts.append(messages[0].content)
        turns = 1
    else:
        parts.extend(f"{m.role}: {m.content}" for m in messages)
        turns = sum(1 for m in messages if m.role == "user")
    return RequestText(text="\n\n".join(parts), turns=max(turns, 1), has_system=bool(system))
