"""Tokenization with the head-and-tail truncation rule.

MiniLM reads at most ``max_tokens`` tokens (256 for all-MiniLM-L6-v2), but a
request is often far longer. What predicts difficulty sits at both ends: the
head holds the system prompt and the task statement, the tail holds the actual
question or the latest turn (and, in multiple choice, the options). So a long
request keeps its first ``head_tokens`` and its last ``tail_tokens`` word
pieces and drops the middle; short requests are untouched.

Tokenizing a giant prompt costs time proportional to its length, so text
longer than ``max_chars`` is first cut to its first and last ``max_chars / 2``
characters; that cut never reaches the tokens kept, because even one character
per token leaves far more characters than the rule keeps.

Training and serving both encode through this class, so the rule is applied
identically on both sides; its parameters are stored in the manifest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from router_model.errors import ArtifactError, ConfigError


@dataclass(frozen=True)
class TruncationRule:
    """How many word pieces a request keeps from each end (specials excluded)."""

    max_tokens: int = 256
    head_tokens: int = 128
    max_chars: int = 32_768

    def __post_init__(self) -> None:
        if self.max_tokens < 8 or not 0 <= self.head_tokens <= self.max_tokens - 2:
            raise ConfigError(
                f"invalid truncation rule: max_tokens={self.max_tokens}, "
                f"head_tokens={self.head_tokens}"
            )

    @property
    def body_tokens(self) -> int:
        """Word pieces kept in all: the model's window minus [CLS] and [SEP]."""
        return self.max_tokens - 2

    @property
    def tail_tokens(self) -> int:
        return self.body_tokens - self.head_tokens

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": "head_tail",
            "max_tokens": self.max_tokens,
            "head_tokens": self.head_tokens,
            "tail_tokens": self.tail_tokens,
            "max_chars": self.max_chars,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TruncationRule:
        return cls(
            max_tokens=int(data["max_tokens"]),
            head_tokens=int(data["head_tokens"]),
            max_chars=int(data["max_chars"]),
        )

    def cut_text(self, text: str) -> str:
        if len(text) <= self.max_chars:
            return text
        half = self.max_chars // 2
        return text[:half] + text[-half:]

    def cut_ids(self, ids: Sequence[int]) -> list[int]:
        if len(ids) <= self.body_tokens:
            return list(ids)
        tail = list(ids[len(ids) - self.tail_tokens :]) if self.tail_tokens else []
        return list(ids[: self.head_tokens]) + tail


@dataclass(frozen=True)
class Encoded:
    """A padded batch: ``input_ids`` and ``attention_mask`` are int64 [N, L]."""

    input_ids: npt.NDArray[np.int64]
    attention_mask: npt.NDArray[np.int64]


class RequestTokenizer:
    """The embedder's WordPiece tokenizer plus the head-and-tail rule."""

    def __init__(self, tokenizer: Tokenizer, rule: TruncationRule) -> None:
        self._tokenizer = tokenizer
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        self.rule = rule
        self._cls = self._special_id("[CLS]")
        self._sep = self._special_id("[SEP]")

    @classmethod
    def from_file(cls, path: str | Path, rule: TruncationRule) -> RequestTokenizer:
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # the tokenizers library raises bare Exceptions
            raise ArtifactError(f"{path}: not a valid tokenizer.json ({exc})") from None
        return cls(tokenizer, rule)

    def _special_id(self, token: str) -> int:
        token_id = self._tokenizer.token_to_id(token)
        if token_id is None:
            raise ArtifactError(f"tokenizer has no {token} token")
        return int(token_id)

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Unpadded ids with specials, after the truncation rule."""
        cut = [self.rule.cut_text(t) for t in texts]
        encodings = self._tokenizer.encode_batch(cut, add_special_tokens=False)
        return [[self._cls, *self.rule.cut_ids(e.ids), self._sep] for e in encodings]

    def encode(self, texts: Sequence[str]) -> Encoded:
        return pad(self.token_ids(texts))


def pad(ids: Sequence[Sequence[int]]) -> Encoded:
    """Right-pad a batch to its longest member (mean pooling ignores padding)."""
    width = max((len(x) for x in ids), default=1)
    input_ids = np.zeros((len(ids), width), dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return Encoded(input_ids=input_ids, attention_mask=mask)
