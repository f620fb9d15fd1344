"""Importers: public per-prompt grade tables turned into graded calls.

Each bundled data set (see ``data/README.md``) is an evaluation run: the same
prompts answered by several models, each answer graded. An importer streams
one source and yields ``GradedCall`` records in the graded-call log format, so
training reads public data and a team's own call log the same way.

Formats and what ``src`` is:

``mmlu-pro-wide``  ``data/mmlu_pro/graded_wide.csv.gz``
``llmrouter``      ``data/llmrouter/train.jsonl.gz``
``routellm``       ``data/routellm/binary_correctness.csv.gz``
``mt-bench``       the folder ``data/routellm/`` holding both MT-bench files
                   (a path to either file means its folder)

Files may be gzipped or plain. By default only the models of the format's own
ladder (``ladder_toml``) are emitted; ``all_models=True`` emits every model in
the source. Every request id is prefixed by its source, so calls from several
sets can share one log. A malformed record raises ``DataFileError`` naming the
file and line; a model with no record for a prompt simply yields no call.

The sources publish no call times, so every call of a set carries one fixed,
nominal time near its evaluation run (a constant also keeps re-imports
byte-identical): MMLU-Pro 2024-10-01, LLMRouter 2025-06-01, RouteLLM and
MT-bench 2024-05-01, all at 00:00Z (each module's ``TIMESTAMP``). Token
counts are estimates at about four characters per token.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from router_model.calls import GradedCall
from router_model.errors import ConfigError, DataFileError
from training.importers import llmrouter, mmlu_pro, mt_bench, routellm
from training.importers._common import ladder_models, ladder_text

__all__ = ["FORMATS", "import_calls", "ladder_model_names", "ladder_toml"]


class _Importer(Protocol):
    def __call__(self, src: Path, *, all_models: bool = False) -> Iterator[GradedCall]: ...


_IMPORTERS: dict[str, tuple[_Importer, str]] = {
    "mmlu-pro-wide": (mmlu_pro.iter_calls, mmlu_pro.TIERS_FILE),
    "llmrouter": (llmrouter.iter_calls, llmrouter.TIERS_FILE),
    "routellm": (routellm.iter_calls, routellm.TIERS_FILE),
    "mt-bench": (mt_bench.iter_calls, mt_bench.TIERS_FILE),
}
FORMATS: tuple[str, ...] = tuple(_IMPORTERS)


def import_calls(fmt: str, src: Path, *, all_models: bool = False) -> Iterator[GradedCall]:
    """Stream the graded calls of ``src`` read as format ``fmt``.

    An unknown format or a missing source fails here, before any output is
    written; defects inside the source surface while iterating.
    """
    importer, _ = _lookup(fmt)
    src = Path(src)
    if not src.exists():
        raise DataFileError(str(src), None, "file not found")
    return importer(src, all_models=all_models)


def ladder_toml(fmt: str) -> str:
    """The tiers file (TOML text) that prices the models format ``fmt`` emits by default."""
    _, tiers_file = _lookup(fmt)
    return ladder_text(tiers_file)


def ladder_model_names(fmt: str) -> tuple[str, ...]:
    """The models that format ``fmt``'s tiers file maps onto tiers."""
    _, tiers_file = _lookup(fmt)
    return ladder_models(tiers_file)


def _lookup(fmt: str) -> tuple[_Importer, str]:
    try:
        return _IMPORTERS[fmt]
    except KeyError:
        raise ConfigError(
            f"unknown import format {fmt!r}; known formats are {', '.join(FORMATS)}"
        ) from None
