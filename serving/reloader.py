"""Hot reload: poll the model directory and swap in a changed artifact.

Loading runs in a thread of its own (hashing and opening a 90 MB graph takes
about a second), so the event loop and the scoring pool keep serving the old
router until the new one is complete. A refused artifact is logged and
counted, and polling goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from router_model.router import Router
from serving.logs import fields
from serving.metrics import Metrics
from serving.model import RouterModel

logger = logging.getLogger("tierwise.serving.reload")


async def watch(
    model: RouterModel,
    interval_s: float,
    metrics: Metrics,
    on_swap: Callable[[Router], None],
    stop: asyncio.Event,
) -> None:
    """Look for a changed artifact every ``interval_s`` seconds until ``stop`` is set."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
            return
        except TimeoutError:
            pass
        await check_once(model, metrics, on_swap)


async def check_once(
    model: RouterModel, metrics: Metrics, on_swap: Callable[[Router], None]
) -> None:
    old = model.router.version if model.ready else None
    try:
        outcome = await asyncio.to_thread(model.reload_if_changed)
    except Exception:
        metrics.reloads.labels("failure").inc()
        logger.exception("reload failed; the current router keeps serving")
        return
    if not outcome.changed:
        return
    if outcome.router is not None:
        metrics.reloads.labels("success").inc()
        on_swap(outcome.router)
        logger.info(
            "router reloaded",
            extra=fields(
                router_version=outcome.router.version,
                previous_version=old,
                directory=str(outcome.router.directory),
            ),
        )
    else:
        metrics.reloads.labels("failure").inc()
        logger.error(
            "new artifact refused; the current router keeps serving",
            extra=fields(error=str(outcome.error), router_version=old),
        )
