"""Cheap scalar features computed from the request text.

The embedding says what a request is about; these say how big and how
structured it is, which the embedding of a truncated window cannot see: the
full length, code, maths notation, the number of turns. They are computed in
float32 exactly as the ONNX graph receives them, so training and serving see
the same numbers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from router_model.text import RequestText

CHARS_PER_TOKEN = 4.0

FEATURE_NAMES: tuple[str, ...] = (
    "log_chars",
    "log_lines",
    "log_turns",
    "has_system",
    "has_code",
    "code_symbol_ratio",
    "digit_ratio",
    "has_math",
    "question_marks",
    "options_listed",
)

_CODE = re.compile(
    r"```|^\s*(def |class |import |from \S+ import|#include|public |function |return\b)"
    r"|\bSELECT\b.+\bFROM\b|=>|;\s*$",
    re.MULTILINE,
)
_MATH = re.compile(r"\\(frac|sum|int|sqrt|cdot|times|le|ge)\b|\$[^$]+\$|\^\d|\d\s*[-+*/=]\s*\d")
_OPTION = re.compile(r"^\s*\(?[A-J][.)]\s", re.MULTILINE)
_CODE_SYMBOLS = "{}()[];=<>_"
_ASCII_DIGITS = "0123456789"
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def tokens_for_chars(chars: int) -> int:
    """The one chars→tokens rule (≈ 4 characters per token) used wherever only text is known."""
    return math.ceil(chars / CHARS_PER_TOKEN)


def estimate_tokens(text: str) -> int:
    """Provider-neutral input-token estimate used for expected costs; at least one token."""
    return max(1, tokens_for_chars(len(text)))


def scalar_features(requests: Sequence[RequestText]) -> npt.NDArray[np.float32]:
    """[N, len(FEATURE_NAMES)] float32 matrix, one row per request."""
    rows = [_row(r) for r in requests]
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), len(FEATURE_NAMES))


def _row(request: RequestText) -> list[float]:
    text = request.text
    chars = max(len(text), 1)
    return [
        math.log1p(len(text)),
        math.log1p(text.count("\n") + 1),
        math.log1p(request.turns),
        float(request.has_system),
        float(_CODE.search(text) is not None),
        sum(text.count(c) for c in _CODE_SYMBOLS) / chars,
        _digits(text) / chars,
        float(_MATH.search(text) is not None),
        math.log1p(text.count("?")),
        math.log1p(len(_OPTION.findall(text))),
    ]


def _digits(text: str) -> int:
    """Characters for which ``str.isdigit`` holds.

    Counting each ASCII digit in C is an order of magnitude faster than a
    Python loop over the characters; only the other characters (superscripts,
    digits of other scripts) are then checked one by one.
    """
    count = sum(text.count(d) for d in _ASCII_DIGITS)
    if not text.isascii():
        count += sum(c.isdigit() for c in _NON_ASCII.findall(text))
    return count
