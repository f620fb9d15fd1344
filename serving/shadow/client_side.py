"""Client-side shadow mode: a service keeps its model, the router's decision is only logged.

This is how a team tries a router before trusting it: nothing about the
service's calls changes, and a background thread records what the router
would have chosen for each request. Joined later with the graded answered
calls (``tierwise shadow-report``), that says what routing would have saved
and cost in quality, on the team's own traffic.

The caller's thread only enqueues (bounded; a full queue drops and counts);
parsing, scoring and logging happen on one background thread, and no failure
there ever reaches the caller.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from router_model.router import DecisionRequest
from router_model.text import content_to_text, flatten, parse_messages
from serving.anthropic_client.deciders import Decider
from serving.anthropic_client.logging_calls import CallSink
from serving.shadow.records import CURRENT, InputStats, shadow_record

log = logging.getLogger("tierwise.shadow")


@dataclass(frozen=True)
class _Observed:
    request_id: str
    messages: Any
    system: Any
    tags: Mapping[str, str]


class ShadowRouter:
    """Decides observed requests with ``decider`` in the background and logs the decisions.

    ``router`` is the label written in the records' ``router`` tag. Counters:
    ``observed``, ``logged``, ``dropped`` (queue full, closed, or the sink
    refused) and ``failed`` (the request could not be parsed or decided).
    """

    def __init__(
        self,
        decider: Decider,
        log: CallSink,
        *,
        router: str = CURRENT,
        max_queue: int = 1000,
    ) -> None:
        self.decider = decider
        self._sink = log
        self._router = router
        self._queue: queue.Queue[_Observed | threading.Event | None] = queue.Queue(max_queue)
        self._lock = threading.Lock()
        self._closed = False
        self.observed = self.logged = self.dropped = self.failed = 0
        self._thread = threading.Thread(target=self._run, name="tierwise-shadow", daemon=True)
        self._thread.start()

    def observe(
        self,
        *,
        messages: Sequence[Mapping[str, Any]],
        system: Any = None,
        request_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """Queue one request (Anthropic-style ``messages``/``system``); returns its id.

        Never blocks and never raises: pass the id the service logs its answered
        call under, so that the report can join the two.
        """
        rid = request_id or uuid.uuid4().hex
        item = _Observed(rid, messages, system, dict(tags or {}))
        with self._lock:
            self.observed += 1
            try:
                if self._closed:
                    raise queue.Full
                self._queue.put_nowait(item)
            except queue.Full:
                self.dropped += 1
        return rid

    def wrap(self, client: Any) -> ShadowedClient:
        """``client`` (an ``anthropic.Anthropic``) with every ``messages.create`` observed."""
        return ShadowedClient(client, self)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every request observed so far is decided and handed to the sink."""
        reached = threading.Event()
        try:
            self._queue.put(reached, timeout=timeout)
        except queue.Full:
            return False
        return reached.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Decide what is queued, then stop the thread (the sink is not closed)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            log.warning("shadow queue still full at close; stopping without it")
        self._thread.join(timeout)

    def __enter__(self) -> ShadowRouter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            self._handle(item)

    def _handle(self, item: _Observed) -> None:
        try:
            messages = parse_messages(item.messages)
            system = content_to_text(item.system, "system") if item.system else None
            text = flatten(messages=messages, system=system)
            request = DecisionRequest(
                text=text, request_id=item.request_id, messages=messages, system=system
            )
            decision = self.decider.decide(request)
            record = shadow_record(
                decision,
                request_id=item.request_id,
                router=self._router,
                stats=InputStats.of(text),
                tags=item.tags,
            )
            ok = bool(self._sink.submit(record))
        except Exception:  # a shadow must never fail, whatever the decider raises
            log.warning("shadow decision failed for request %s", item.request_id, exc_info=True)
            with self._lock:
                self.failed += 1
            return
        with self._lock:
            if ok:
                self.logged += 1
            else:
                self.dropped += 1


class _ShadowedMessages:
    def __init__(self, messages: Any, shadow: ShadowRouter) -> None:
        self._messages = messages
        self._shadow = shadow

    def create(self, *, shadow_request_id: str | None = None, **params: Any) -> Any:
        """Observe the request, then send it exactly as given.

        ``shadow_request_id`` (never sent) is the id the service logs the
        answered call under; without it the request is logged under a fresh id.
        """
        self._shadow.observe(
            messages=params.get("messages") or [],
            system=params.get("system"),
            request_id=shadow_request_id,
        )
        return self._messages.create(**params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._messages, name)


class ShadowedClient:
    """An Anthropic client whose ``messages.create`` calls are observed, never changed."""

    def __init__(self, client: Any, shadow: ShadowRouter) -> None:
        self._client = client
        self.messages = _ShadowedMessages(client.messages, shadow)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)
