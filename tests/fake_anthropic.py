"""A local stand-in for the Anthropic Messages API, for tests of the real SDK.

A real HTTP server on 127.0.0.1 (stdlib ``http.server`` in a thread) that
implements what the routed client and the judge use: ``POST /v1/messages``,
and the Message Batches endpoints (create, retrieve, results as JSON Lines).
Answers are scripted per test by ``answer(model, request_json) -> text``;
token counts are computed from the text, so tests can check logged usage and
cost exactly; failures (429 with ``retry-after``, 529 overloaded, 500) can be
scripted for the next N calls to exercise the SDK's retries.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anthropic

from router_model.router import Decision, DecisionRequest
from router_model.tiers import Tier, TierLadder

Answer = Callable[[str, dict[str, Any]], str]
_TOKEN = re.compile(r"\w+|[^\w\s]")
_ERRORS = {429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}


def count_tokens(text: str) -> int:
    """Words and punctuation marks: deterministic and close enough to a tokenizer."""
    return len(_TOKEN.findall(text))


def request_text(body: dict[str, Any]) -> str:
    """Everything the model reads: the system prompt and every text block of every turn."""
    parts = [_text(body.get("system"))]
    parts.extend(_text(m.get("content")) for m in body.get("messages", []))
    return "\n".join(p for p in parts if p)


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(b.get("text", "") for b in content if isinstance(b, dict))


@dataclass
class Recorded:
    method: str
    path: str
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class _Failure:
    status: int
    retry_after: float | None


@dataclass
class _Batch:
    id: str
    created_at: datetime
    results: list[dict[str, Any]]
    polls_left: int


class FakeAnthropic:
    """The fake API server; ``start()`` it, point a client at ``base_url``, ``stop()`` it."""

    def __init__(self, answer: Answer | None = None, batch_polls: int = 1) -> None:
        self.answer: Answer = answer or (lambda model, body: "ok")
        self.batch_polls = batch_polls
        self.requests: list[Recorded] = []
        self._failures: deque[_Failure] = deque()
        self._batches: dict[str, _Batch] = {}
        self._lock = threading.Lock()
        self._clients: list[anthropic.Anthropic] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> FakeAnthropic:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        for client in self._clients:
            client.close()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def client(self, max_retries: int = 0) -> anthropic.Anthropic:
        client = anthropic.Anthropic(
            base_url=self.base_url, api_key="test", max_retries=max_retries
        )
        self._clients.append(client)
        return client

    def async_client(self, max_retries: int = 0) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(
            base_url=self.base_url, api_key="test", max_retries=max_retries
        )

    # -- scripting ---------------------------------------------------------------

    def fail_next(self, status: int, times: int = 1, retry_after: float | None = None) -> None:
        """Answer the next ``times`` message calls with ``status`` (429, 500 or 529)."""
        with self._lock:
            self._failures.extend(_Failure(status, retry_after) for _ in range(times))

    def message_calls(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.path == "/v1/messages"]

    # -- behaviour ---------------------------------------------------------------

    def _message(self, body: dict[str, Any]) -> dict[str, Any]:
        model = str(body.get("model"))
        text = self.answer(model, body)
        words = _TOKEN.findall(text)
        limit = int(body.get("max_tokens", 4096))
        stop = "end_turn"
        if len(words) > limit:
            text, stop = " ".join(words[:limit]), "max_tokens"
        return {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {
                "input_tokens": count_tokens(request_text(body)),
                "output_tokens": count_tokens(text),
            },
        }

    def _next_failure(self) -> _Failure | None:
        with self._lock:
            return self._failures.popleft() if self._failures else None

    def _create_batch(self, body: dict[str, Any]) -> dict[str, Any]:
        results = []
        for item in body.get("requests", []):
            message = self._message(item["params"])
            result = {"type": "succeeded", "message": message}
            results.append({"custom_id": item["custom_id"], "result": result})
        batch = _Batch(
            id=f"msgbatch_{uuid.uuid4().hex[:24]}",
            created_at=datetime.now(UTC),
            results=results,
            polls_left=self.batch_polls,
        )
        with self._lock:
            self._batches[batch.id] = batch
        return self._batch_json(batch, ended=False)

    def _retrieve_batch(self, batch_id: str) -> dict[str, Any] | None:
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                return None
            batch.polls_left = max(batch.polls_left - 1, 0)
            return self._batch_json(batch, ended=batch.polls_left == 0)

    def _batch_json(self, batch: _Batch, ended: bool) -> dict[str, Any]:
        n = len(batch.results)
        created = batch.created_at
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": "ended" if ended else "in_progress",
            "request_counts": {
                "processing": 0 if ended else n,
                "succeeded": n if ended else 0,
                "errored": 0,
                "canceled": 0,
                "expired": 0,
            },
            "created_at": created.isoformat(),
            "expires_at": (created + timedelta(hours=24)).isoformat(),
            "ended_at": datetime.now(UTC).isoformat() if ended else None,
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": (
                f"{self.base_url}/v1/messages/batches/{batch.id}/results" if ended else None
            ),
        }

    def _batch_results(self, batch_id: str) -> list[dict[str, Any]] | None:
        with self._lock:
            batch = self._batches.get(batch_id)
            return None if batch is None or batch.polls_left else list(batch.results)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeAnthropic
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: test output shows only what tests print."""

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self._record("POST", body)
        if self.path == "/v1/messages":
            failure = self.fake._next_failure()
            if failure is not None:
                self._error(failure)
            else:
                self._json(200, self.fake._message(body))
        elif self.path == "/v1/messages/batches":
            self._json(200, self.fake._create_batch(body))
        else:
            self._json(404, _error_body("not_found_error", self.path))

    def do_GET(self) -> None:
        self._record("GET", {})
        parts = self.path.strip("/").split("/")
        if parts[:3] == ["v1", "messages", "batches"] and len(parts) == 4:
            batch = self.fake._retrieve_batch(parts[3])
            self._json(200, batch) if batch else self._json(404, _error_body("not_found_error"))
        elif parts[:3] == ["v1", "messages", "batches"] and parts[4:] == ["results"]:
            results = self.fake._batch_results(parts[3])
            if results is None:
                self._json(404, _error_body("not_found_error", "no results yet"))
            else:
                lines = "".join(json.dumps(r) + "\n" for r in results)
                self._send(200, lines.encode(), "application/binary")
        else:
            self._json(404, _error_body("not_found_error", self.path))

    def _record(self, method: str, body: dict[str, Any]) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        recorded = Recorded(method, self.path, body, headers)
        with self.fake._lock:
            self.fake.requests.append(recorded)

    def _error(self, failure: _Failure) -> None:
        kind = _ERRORS.get(failure.status, "api_error")
        headers = {}
        if failure.retry_after is not None:
            headers["retry-after"] = str(failure.retry_after)
        self._json(failure.status, _error_body(kind), headers)

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json", headers)

    def _send(
        self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", f"req_{uuid.uuid4().hex[:16]}")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)


def _error_body(kind: str, message: str = "scripted failure") -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


# -- helpers shared by the routed-client tests ------------------------------------


def fake_ladder() -> TierLadder:
    """Three rungs with made-up model ids and distinct prices, for exact cost checks."""
    return TierLadder(
        tiers=(
            Tier("small", "fake-small", 1.0, 5.0),
            Tier("medium", "fake-medium", 3.0, 15.0),
            Tier("large", "fake-large", 15.0, 75.0),
        )
    )


class FixedDecider:
    """Always decides ``tier``: exact, instant decisions for tests of everything else."""

    def __init__(
        self,
        ladder: TierLadder,
        tier: str,
        expected_cost_usd: Mapping[str, float] | None = None,
    ) -> None:
        self._ladder = ladder
        self.tier = tier
        self.expected_cost_usd = dict(expected_cost_usd or {t: 0.001 for t in ladder.names})
        self.requests: list[DecisionRequest] = []

    @property
    def ladder(self) -> TierLadder:
        return self._ladder

    def decide(self, request: DecisionRequest) -> Decision:
        self.requests.append(request)
        return Decision(
            request_id=request.request_id,
            tier=self.tier,
            model=self._ladder.by_name(self.tier).model,
            rule="fixed",
            p_success={t: 0.5 for t in self._ladder.names},
            expected_cost_usd=self.expected_cost_usd,
            router_version="fixed-1",
        )


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]
