"""The scalar features, as the ONNX graph receives them from training and serving."""

from __future__ import annotations

import math

import numpy as np

from router_model.features import FEATURE_NAMES, scalar_features
from router_model.text import RequestText

SYMBOLS = set("{}()[];=<>_")


def _features(text: str, turns: int = 1, has_system: bool = False) -> dict[str, float]:
    row = scalar_features([RequestText(text, turns, has_system)])[0]
    return dict(zip(FEATURE_NAMES, row.tolist(), strict=True))


def test_digit_and_symbol_ratios_count_every_character_as_str_methods_do() -> None:
    texts = [
        "def f(x): return x[0] + 42;",
        "x² + y³ = z, ٣٤ apples and １２ pears, ① ② ③",  # superscripts, Arabic-Indic, fullwidth
        "Ünïcödé without digits {braces} <tags>",
        "",
        "0123456789" * 3,
    ]
    rows = scalar_features([RequestText(t, 1, False) for t in texts])
    for text, row in zip(texts, rows, strict=True):
        chars = max(len(text), 1)
        digits = sum(c.isdigit() for c in text) / chars
        symbols = sum(c in SYMBOLS for c in text) / chars
        named = dict(zip(FEATURE_NAMES, row.tolist(), strict=True))
        assert named["digit_ratio"] == np.float32(digits), text
        assert named["code_symbol_ratio"] == np.float32(symbols), text
    assert _features(texts[1])["digit_ratio"] > 0.2  # ² ³ ٣ ٤ １ ２ ① ② ③ all count


def test_structure_features_see_code_maths_options_and_turns() -> None:
    code = _features("Fix this:\n```\ndef add(a, b):\n    return a - b\n```")
    prose = _features("Tell me a story about a cat.")
    assert code["has_code"] == 1.0 and prose["has_code"] == 0.0
    assert _features("Compute \\frac{1}{2} + 3")["has_math"] == 1.0
    assert prose["has_math"] == 0.0
    question = "Which is largest?\nA. 1\nB. 2\nC. 3\nD. 4"
    assert _features(question)["options_listed"] == np.float32(math.log1p(4))
    assert _features(question)["question_marks"] == np.float32(math.log1p(1))
    chat = _features("hi", turns=3, has_system=True)
    assert chat["log_turns"] == np.float32(math.log1p(3)) and chat["has_system"] == 1.0
    assert prose["log_chars"] == np.float32(math.log1p(len("Tell me a story about a cat.")))
