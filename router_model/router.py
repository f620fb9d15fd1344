"""A loaded router: scores requests with the ONNX graph and decides a tier.

The model is a pure function of the request: no network calls, no state
beyond the artifact. Requests are scored in length-sorted batches so that a
batch of short prompts is not padded to the length of one long prompt.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from router_model import policy
from router_model.artifact import SessionPool, open_session, open_tokenizer, read_manifest
from router_model.errors import ArtifactError
from router_model.features import estimate_tokens, scalar_features
from router_model.manifest import (
    ATTENTION_MASK,
    INPUT_IDS,
    MODEL_FILE,
    OUTPUT_TOKENS,
    P_SUCCESS,
    SCALAR_FEATURES,
    Manifest,
    batch_invariant,
)
from router_model.text import Message, RequestText
from router_model.tiers import TierLadder
from router_model.tokenize import RequestTokenizer, pad

DEFAULT_BATCH_SIZE = 32
# The fixed cost of one graph run (launch, tokeniser output to tensors, the
# head) in units of the per-token cost: about 1.5 ms against 0.15 ms per token
# on two cores; the split it drives is not sensitive to the exact value.
RUN_OVERHEAD_TOKENS = 10
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Scores:
    """Per-request model outputs; columns follow the ladder's tier order."""

    p_success: FloatArray
    output_tokens: FloatArray
    input_tokens: FloatArray


@dataclass(frozen=True)
class DecisionRequest:
    """One request to decide. ``messages``/``system`` keep the request as sent, for
    deciders that forward it elsewhere (a remote router) rather than score ``text``."""

    text: RequestText
    request_id: str | None = None
    quality_target: float | None = None
    max_cost_usd: float | None = None
    rule: str | None = None
    messages: tuple[Message, ...] = ()
    system: str | None = None


@dataclass(frozen=True)
class Decision:
    """The chosen tier with everything needed to audit or re-score it."""

    request_id: str | None
    tier: str
    model: str
    rule: str
    p_success: Mapping[str, float]
    expected_cost_usd: Mapping[str, float]
    router_version: str

    def to_json(self) -> dict[str, object]:
        return {
            "request_id": self.request_id,
            "tier": self.tier,
            "model": self.model,
            "rule": self.rule,
            "p_success": dict(self.p_success),
            "expected_cost_usd": dict(self.expected_cost_usd),
            "router_version": self.router_version,
        }


class Router:
    """A trained router artifact, loaded and validated.

    Besides its main session (``intra_op_threads``, default all cores), a
    router opens single-threaded sessions on demand, one per concurrent
    ``single_threaded`` caller. A router that scores one request per run
    (int8) is too little work per run to split between cores: two passes in
    parallel, each on one core and its own session, score 1.6x as many short
    requests as one pass on both cores (a shared single-threaded session,
    1.4x; docs/performance.md).
    """

    def __init__(self, manifest: Manifest, directory: Path, intra_op_threads: int = 0) -> None:
        self.manifest = manifest
        self.directory = directory
        self._session = open_session(directory / MODEL_FILE, intra_op_threads)
        self._single_threaded = intra_op_threads == 1
        open_one = functools.partial(open_session, directory / MODEL_FILE, intra_op_threads=1)
        self._single_threaded_sessions = SessionPool(open_one)
        self._tokenizer: RequestTokenizer = open_tokenizer(directory, manifest)
        self._check_graph()

    @classmethod
    def load(cls, directory: str | Path, intra_op_threads: int = 0) -> Router:
        """Validate every file of the artifact, then open it; raises ``ArtifactError``."""
        directory = Path(directory)
        return cls(read_manifest(directory), directory, intra_op_threads)

    @property
    def ladder(self) -> TierLadder:
        return self.manifest.ladder

    @property
    def version(self) -> str:
        return self.manifest.router_version

    @property
    def one_request_per_run(self) -> bool:
        """int8: no request's scores may depend on the others in its batch (``batch_invariant``)."""
        return not batch_invariant(self.manifest.embedder_precision)

    def score(
        self,
        requests: Sequence[RequestText],
        batch_size: int = DEFAULT_BATCH_SIZE,
        single_threaded: bool = False,
    ) -> Scores:
        """P(success) and predicted output tokens per tier for every request.

        ``single_threaded`` runs the graph on one core, on a session of this
        caller's own, for callers that score in parallel; the scores are the
        same either way.
        """
        if single_threaded and not self._single_threaded:
            with self._single_threaded_sessions.lend() as session:
                return self._score(session, requests, batch_size)
        return self._score(self._session, requests, batch_size)

    def open_single_threaded(self, count: int) -> None:
        """Open ``count`` single-threaded sessions now rather than on first use."""
        if not self._single_threaded:
            self._single_threaded_sessions.open(count)

    def _score(
        self, session: ort.InferenceSession, requests: Sequence[RequestText], batch_size: int
    ) -> Scores:
        if self.one_request_per_run:
            batch_size = 1
        n_tiers = len(self.ladder)
        p = np.zeros((len(requests), n_tiers))
        out = np.zeros((len(requests), n_tiers))
        ids = self._tokenizer.token_ids([r.text for r in requests])
        scalars = scalar_features(requests)
        for rows in _length_sorted_batches(ids, batch_size):
            encoded = pad([ids[i] for i in rows])
            p_batch, out_batch = session.run(
                [P_SUCCESS, OUTPUT_TOKENS],
                {
                    INPUT_IDS: encoded.input_ids,
                    ATTENTION_MASK: encoded.attention_mask,
                    SCALAR_FEATURES: scalars[rows],
                },
            )
            p[rows] = p_batch
            out[rows] = out_batch
        input_tokens = np.array([estimate_tokens(r.text) for r in requests], dtype=np.float64)
        return Scores(p_success=np.clip(p, 0.0, 1.0), output_tokens=out, input_tokens=input_tokens)

    def expected_costs(self, scores: Scores) -> FloatArray:
        """[N, T] expected USD cost of calling each tier: known input, predicted output."""
        return self.ladder.expected_costs(scores.input_tokens, scores.output_tokens)

    def decide(
        self, requests: Sequence[DecisionRequest], single_threaded: bool = False
    ) -> list[Decision]:
        """One decision per request; requests may carry their own targets and ceilings."""
        scores = self.score([r.text for r in requests], single_threaded=single_threaded)
        costs = self.expected_costs(scores)
        chosen = np.zeros(len(requests), dtype=np.int64)
        rules = [""] * len(requests)
        for key, rows in _group_by_controls(requests).items():
            rule, target, ceiling = key
            picked, fired = policy.decide(
                scores.p_success[rows],
                costs[rows],
                self.manifest.policy,
                rule=rule,
                quality_target=target,
                max_cost_usd=ceiling,
            )
            chosen[rows] = picked
            for row, name in zip(rows, fired, strict=True):
                rules[row] = name
        return [
            self._decision(r, int(c), rule, scores.p_success[i], costs[i])
            for i, (r, c, rule) in enumerate(zip(requests, chosen, rules, strict=True))
        ]

    def _decision(
        self, request: DecisionRequest, chosen: int, rule: str, p: FloatArray, cost: FloatArray
    ) -> Decision:
        tiers = self.ladder.tiers
        return Decision(
            request_id=request.request_id,
            tier=tiers[chosen].name,
            model=tiers[chosen].model,
            rule=rule,
            p_success={t.name: float(p[i]) for i, t in enumerate(tiers)},
            expected_cost_usd={t.name: float(cost[i]) for i, t in enumerate(tiers)},
            router_version=self.version,
        )

    def _check_graph(self) -> None:
        """Run one tiny request so an incompatible graph fails at load, not at traffic."""
        try:
            scores = self.score([RequestText(text="ok", turns=1, has_system=False)])
        except Exception as exc:  # onnxruntime raises several unrelated exception types
            raise ArtifactError(
                f"{self.directory / MODEL_FILE}: graph fails to run ({exc})"
            ) from None
        if scores.p_success.shape != (1, len(self.ladder)):
            raise ArtifactError(
                f"{self.directory / MODEL_FILE}: graph returns {scores.p_success.shape[1]} "
                f"tiers, the manifest lists {len(self.ladder)}"
            )


def _length_sorted_batches(ids: Sequence[Sequence[int]], batch_size: int) -> Iterator[list[int]]:
    """Rows in batches of at most ``batch_size`` that waste the least work on padding.

    A run costs about ``RUN_OVERHEAD_TOKENS`` plus (rows × longest row) tokens of
    work, so after sorting by length the cheapest split into contiguous batches
    is found exactly by dynamic programming: a lone long prompt gets its own
    run instead of padding thirty short ones to its length, and prompts of
    equal length stay together instead of paying the overhead twice.
    """
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    lengths = [len(ids[i]) for i in order]
    best = [0] * (len(order) + 1)  # best[j]: cheapest cost of the first j rows
    cut = [0] * (len(order) + 1)  # where the last batch of that split starts
    for end in range(1, len(order) + 1):
        longest = lengths[end - 1]
        best[end], cut[end] = min(
            (best[start] + RUN_OVERHEAD_TOKENS + (end - start) * longest, start)
            for start in range(max(0, end - batch_size), end)
        )
    bounds = []
    end = len(order)
    while end > 0:
        bounds.append((cut[end], end))
        end = cut[end]
    for start, end in reversed(bounds):
        yield order[start:end]


def _group_by_controls(
    requests: Sequence[DecisionRequest],
) -> dict[tuple[str | None, float | None, float | None], list[int]]:
    groups: dict[tuple[str | None, float | None, float | None], list[int]] = {}
    for i, r in enumerate(requests):
        groups.setdefault((r.rule, r.quality_target, r.max_cost_usd), []).append(i)
    return groups
