"""The served model: a ``Router`` behind a ready flag, swappable while serving.

As in KServe, the model object owns loading and readiness and the servicer
only converts messages and delegates. A reload builds and validates the new
``Router`` completely before one reference assignment swaps it in: calls that
already hold the old router finish on it, new calls get the new one, and no
call ever sees a half-loaded router. A new artifact that fails validation is
refused and the old router keeps serving. Served from a registry, an artifact
must also match the manifest hash pinned when it was registered.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from router_model.errors import ArtifactError, NotReadyError
from router_model.router import Router
from serving.registry import Registry, is_registry
from serving.source import Snapshot, snapshot


@dataclass(frozen=True)
class ReloadOutcome:
    """What one look at the model directory found; ``error`` is set when loading failed."""

    changed: bool
    router: Router | None = None
    error: ArtifactError | None = None


class RouterModel:
    """Loads the artifact that ``model`` designates and keeps the current ``Router``."""

    def __init__(self, model: Path, intra_op_threads: int = 0, parallel_passes: int = 1) -> None:
        self.model = model
        self.intra_op_threads = intra_op_threads
        # A router that scores one request per run gets its single-threaded
        # sessions (one per parallel pass) before it serves, so that the first
        # burst of calls does not wait for them and a graph that cannot open
        # fails the load rather than calls.
        self.parallel_passes = parallel_passes
        self._router: Router | None = None
        # The last state attempted: a snapshot, or the error of an unresolvable pointer.
        self._seen: Snapshot | str | None = None
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        return self._router is not None

    @property
    def router(self) -> Router:
        """The router serving right now; raises ``NotReadyError`` before the first load."""
        router = self._router
        if router is None:
            raise NotReadyError("the router is still loading")
        return router

    def load(self) -> Router:
        """Load and validate the artifact; raises ``ArtifactError`` and keeps the old router."""
        with self._lock:
            current = snapshot(self.model)
            self._seen = current
            return self._swap_in(current)

    def reload_if_changed(self) -> ReloadOutcome:
        """Load the artifact again if its files changed since the last attempt.

        A broken artifact is attempted once per change, not on every poll.
        """
        with self._lock:
            try:
                current = snapshot(self.model)
            except ArtifactError as exc:
                if self._seen == str(exc):
                    return ReloadOutcome(changed=False)
                self._seen = str(exc)
                return ReloadOutcome(changed=True, error=exc)
            if current == self._seen:
                return ReloadOutcome(changed=False)
            self._seen = current
            try:
                return ReloadOutcome(changed=True, router=self._swap_in(current))
            except ArtifactError as exc:
                return ReloadOutcome(changed=True, error=exc)
            except OSError as exc:
                error = ArtifactError(f"{current.directory}: cannot be read ({exc})")
                return ReloadOutcome(changed=True, error=error)

    def _swap_in(self, current: Snapshot) -> Router:
        if is_registry(self.model):
            Registry(self.model).pinned_check(current.directory)
        router = Router.load(current.directory, self.intra_op_threads)
        if router.one_request_per_run and self.parallel_passes > 1:
            router.open_single_threaded(self.parallel_passes)
        self._router = router
        return router
