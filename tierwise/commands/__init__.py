"""One module per subcommand; each exposes ``register(subparsers)``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from tierwise.commands import (
    evaluate_cmd,
    import_cmd,
    logs_cmd,
    predict_cmd,
    registry_cmd,
    retrain_cmd,
    serve_cmd,
    shadow_cmd,
    split_cmd,
    train_cmd,
)

Subparsers = Any  # argparse's _SubParsersAction is private
REGISTRY: tuple[Callable[[Subparsers], argparse.ArgumentParser], ...] = (
    import_cmd.register,
    split_cmd.register,
    train_cmd.register,
    predict_cmd.register,
    evaluate_cmd.register,
    serve_cmd.register,
    logs_cmd.register,
    registry_cmd.register,
    retrain_cmd.register,
    shadow_cmd.register,
)
