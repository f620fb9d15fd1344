"""What a store keeps of the request text: all of it, a keyed hash, or nothing.

A keyed hash (HMAC-SHA256) rather than a plain SHA-256 because request texts
are guessable: anyone holding the log could hash a candidate prompt and look
for it. Without the key that test is impossible, while equal prompts still get
equal hashes, so feedback can be joined and duplicates counted. A hash cannot
be turned back into text, so hashed calls cannot train a router.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field, replace
from typing import Literal, cast, get_args

from router_model.calls import GradedCall
from router_model.errors import ConfigError

PromptMode = Literal["text", "hash", "none"]
PROMPT_MODES: tuple[str, ...] = get_args(PromptMode)
HASH_KEY_ENV = "TIERWISE_PROMPT_HASH_KEY"
HASH_PREFIX = "hmac-sha256:"
MIN_KEY_BYTES = 16


def prompt_hmac(text: str, key: bytes) -> str:
    """``hmac-sha256:<hex>`` of ``text``; the value stored in place of the prompt."""
    digest = hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()
    return HASH_PREFIX + digest


@dataclass(frozen=True)
class PromptPolicy:
    """How a store rewrites a call's request before storing it."""

    mode: PromptMode = "text"
    key: bytes | None = field(default=None, repr=False)

    @classmethod
    def create(cls, mode: str = "text", key: str | bytes | None = None) -> PromptPolicy:
        """Check the mode; ``hash`` reads its key from ``key`` or ``$TIERWISE_PROMPT_HASH_KEY``."""
        if mode not in PROMPT_MODES:
            raise ConfigError(f"prompt_mode must be one of {list(PROMPT_MODES)}, got {mode!r}")
        if mode != "hash":
            return cls(cast(PromptMode, mode))
        raw = key if key is not None else os.environ.get(HASH_KEY_ENV, "")
        secret = raw.encode("utf-8") if isinstance(raw, str) else raw
        if len(secret) < MIN_KEY_BYTES:
            raise ConfigError(
                f"prompt_mode 'hash' needs a secret key of at least {MIN_KEY_BYTES} bytes "
                f"(pass hash_key or set {HASH_KEY_ENV})"
            )
        return cls("hash", secret)

    def apply(self, call: GradedCall) -> GradedCall:
        """The call as it is stored: prompt, messages and system replaced per the mode.

        Tags and extra fields are stored as given: a caller that needs them
        private must leave user text out of them.
        """
        if self.mode == "text":
            return call
        if self.mode == "none":
            return replace(call, prompt="", messages=(), system=None)
        assert self.key is not None
        hashed = prompt_hmac(call.request_text().text, self.key)
        return replace(call, prompt=hashed, messages=(), system=None)
