"""Tiers: named rungs of a price ladder, cheapest first, read from TOML.

Prices change, so they live in configuration. A tier may list other model ids
that map onto it (``models``), which is how data sets from other providers are
mapped onto a generic small / medium / large ladder.
"""

from __future__ import annotations

import itertools
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from router_model.errors import ConfigError

TOKENS_PER_MTOK = 1_000_000


@dataclass(frozen=True)
class Tier:
    """One rung of the ladder with its list prices in USD per million tokens."""

    name: str
    model: str
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    models: tuple[str, ...] = ()

    def cost_usd(self, input_tokens: float, output_tokens: float) -> float:
        """Price of one call with the given token usage."""
        return (
            input_tokens * self.input_usd_per_mtok + output_tokens * self.output_usd_per_mtok
        ) / TOKENS_PER_MTOK

    def output_tokens_for(self, cost_usd: float, input_tokens: float) -> float | None:
        """The output length that ``cost_usd`` pays for at this tier's prices.

        A call that records its cost but not its usage still says how long its
        answer was; at these prices the implied length reproduces the recorded
        cost, even when the prices differ from those the cost was charged at.
        None when output is free (the cost says nothing about length).
        """
        if self.output_usd_per_mtok <= 0.0:
            return None
        output_cost = cost_usd * TOKENS_PER_MTOK - input_tokens * self.input_usd_per_mtok
        return max(0.0, output_cost / self.output_usd_per_mtok)

    def model_ids(self) -> tuple[str, ...]:
        """Every model id that maps onto this tier, the serving model first."""
        return (self.model, *self.models)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.model,
            "input_usd_per_mtok": self.input_usd_per_mtok,
            "output_usd_per_mtok": self.output_usd_per_mtok,
            "models": list(self.models),
        }


@dataclass(frozen=True)
class TierLadder:
    """An ordered ladder of tiers (cheapest first) and the pass grade."""

    tiers: tuple[Tier, ...]
    pass_grade: float = 0.5
    _by_model: dict[str, Tier] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _validate_ladder(self.tiers, self.pass_grade)
        by_model: dict[str, Tier] = {}
        for tier in self.tiers:
            for model_id in tier.model_ids():
                if model_id in by_model and by_model[model_id] is not tier:
                    raise ConfigError(
                        f"model '{model_id}' is listed under tiers "
                        f"'{by_model[model_id].name}' and '{tier.name}'"
                    )
                by_model[model_id] = tier
        object.__setattr__(self, "_by_model", by_model)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tiers)

    def __len__(self) -> int:
        return len(self.tiers)

    def index(self, name: str) -> int:
        """Column of a tier in probability arrays."""
        for i, tier in enumerate(self.tiers):
            if tier.name == name:
                return i
        raise ConfigError(f"unknown tier '{name}'; tiers are {list(self.names)}")

    def by_name(self, name: str) -> Tier:
        return self.tiers[self.index(name)]

    def tier_for_model(self, model: str) -> Tier | None:
        """The tier a model id belongs to, or None when no tier lists it."""
        return self._by_model.get(model)

    def to_dict(self) -> dict[str, Any]:
        return {"pass_grade": self.pass_grade, "tiers": [t.to_dict() for t in self.tiers]}

    def expected_costs(
        self, input_tokens: npt.NDArray[np.float64], output_tokens: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        """[N, T] USD cost of calling each tier with N known input and [N, T] output counts."""
        price_in = np.array([t.input_usd_per_mtok for t in self.tiers])
        price_out = np.array([t.output_usd_per_mtok for t in self.tiers])
        usd = np.asarray(input_tokens)[:, None] * price_in + output_tokens * price_out
        return np.asarray(usd / TOKENS_PER_MTOK, dtype=np.float64)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "tiers") -> TierLadder:
        """Build a ladder from the TOML/JSON structure, naming ``source`` in errors."""
        raw_tiers = data.get("tiers")
        if not isinstance(raw_tiers, list) or not raw_tiers:
            raise ConfigError(f"{source}: needs a non-empty [[tiers]] list")
        pass_grade = data.get("pass_grade", 0.5)
        if not _is_number(pass_grade):
            raise ConfigError(f"{source}: pass_grade must be a number in [0, 1]")
        tiers = tuple(_tier_from_dict(t, f"{source}: tiers[{i}]") for i, t in enumerate(raw_tiers))
        try:
            return cls(tiers=tiers, pass_grade=float(pass_grade))
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None


def load_tiers(path: str | Path) -> TierLadder:
    """Read and validate a tiers TOML file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"tiers file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return TierLadder.from_dict(data, source=str(path))


def _tier_from_dict(raw: Any, where: str) -> Tier:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: must be a table")
    for key in ("name", "model"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise ConfigError(f"{where}: '{key}' must be a non-empty string")
    prices = {}
    for key in ("input_usd_per_mtok", "output_usd_per_mtok"):
        value: Any = raw.get(key)
        if not _is_number(value) or float(value) < 0:
            raise ConfigError(f"{where}: '{key}' must be a non-negative number, got {value!r}")
        prices[key] = float(value)
    models = raw.get("models", [])
    if (
        not isinstance(models, Sequence)
        or isinstance(models, str)
        or not all(isinstance(m, str) and m for m in models)
    ):
        raise ConfigError(f"{where}: 'models' must be a list of model ids")
    return Tier(name=raw["name"], model=raw["model"], models=tuple(models), **prices)


def _validate_ladder(tiers: Sequence[Tier], pass_grade: float) -> None:
    if not tiers:
        raise ConfigError("a ladder needs at least one tier")
    if not 0.0 <= pass_grade <= 1.0:
        raise ConfigError(f"pass_grade must be in [0, 1], got {pass_grade}")
    names = [t.name for t in tiers]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"duplicate tier names: {duplicates}")
    for cheaper, dearer in itertools.pairwise(tiers):
        if (
            dearer.input_usd_per_mtok < cheaper.input_usd_per_mtok
            and dearer.output_usd_per_mtok < cheaper.output_usd_per_mtok
        ):
            raise ConfigError(
                f"tiers must be ordered cheapest first: '{dearer.name}' is cheaper "
                f"than '{cheaper.name}' before it"
            )


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )
