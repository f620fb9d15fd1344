"""What a trained tierwise router is and how it decides.

Depends only on numpy, onnxruntime and tokenizers, so that a service which
routes its calls installs neither torch nor scikit-learn.
"""

from router_model.errors import (
    ArtifactError,
    ConfigError,
    DataFileError,
    InvalidInputError,
    NotReadyError,
    TierwiseError,
)
from router_model.router import Decision, DecisionRequest, Router, Scores
from router_model.text import RequestText, flatten
from router_model.tiers import Tier, TierLadder, load_tiers

__all__ = [
    "ArtifactError",
    "ConfigError",
    "DataFileError",
    "Decision",
    "DecisionRequest",
    "InvalidInputError",
    "NotReadyError",
    "RequestText",
    "Router",
    "Scores",
    "Tier",
    "TierLadder",
    "TierwiseError",
    "flatten",
    "load_tiers",
]
