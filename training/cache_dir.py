"""Where tierwise keeps what is expensive to rebuild: the exported embedder and embeddings."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$TIERWISE_CACHE_DIR``, else ``$XDG_CACHE_HOME/tierwise``, else ``~/.cache/tierwise``."""
    explicit = os.environ.get("TIERWISE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tierwise"
