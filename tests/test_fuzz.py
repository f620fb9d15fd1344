"""Bad input never becomes INTERNAL: generated requests, in process and over gRPC."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from grpc_support import server_config, serving_on
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from script_support import load_script

from router_model import Router
from router_model.errors import InvalidInputError
from serving._proto.tierwise.v1 import router_pb2 as pb
from serving.config import Limits
from serving.convert import decision_request, decision_requests

LIMITS = Limits(max_prompt_chars=2_000, max_batch_size=8)


texts = st.text(max_size=3_000) | st.sampled_from(["", " ", "\x00", "\u202e", "x" * 2_001])
numbers = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -0.0, 1.0])
messages = st.lists(
    st.builds(pb.Message, role=st.sampled_from(["user", "assistant", "system", ""]), content=texts),
    max_size=20,
)


@st.composite
def requests(draw: st.DrawFn) -> pb.PredictRequest:
    msg = pb.PredictRequest(messages=draw(messages))
    for name, strategy in (
        ("prompt", texts),
        ("system", texts),
        ("quality_target", numbers),
        ("max_cost_usd", numbers),
        ("rule", st.sampled_from(["cost_aware", "threshold", "", "nope"])),
        ("request_id", st.text(max_size=50)),
    ):
        if draw(st.booleans()):
            setattr(msg, name, draw(strategy))
    msg.tags.update(draw(st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=5)))
    return msg


@pytest.fixture(scope="module")
def router(logreg_router_dir: Path) -> Router:
    return Router.load(logreg_router_dir)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(msg=requests())
def test_any_request_is_refused_precisely_or_decided(
    router: Router, msg: pb.PredictRequest
) -> None:
    try:
        request = decision_request(msg, LIMITS)
    except InvalidInputError as exc:
        assert exc.field, "a refusal names its field"
        return
    assert len(request.text.text) <= LIMITS.max_prompt_chars
    target = request.quality_target
    assert target is None or (math.isfinite(target) and 0 < target <= 1)
    [decision] = router.decide([request])
    assert decision.tier in router.ladder.names
    assert all(0.0 <= p <= 1.0 for p in decision.p_success.values())


@settings(max_examples=50, deadline=None)
@given(batch=st.lists(requests(), max_size=12))
def test_batches_are_refused_whole_or_accepted_whole(batch: list[pb.PredictRequest]) -> None:
    msg = pb.PredictBatchRequest(requests=batch)
    try:
        accepted = decision_requests(msg, LIMITS)
    except InvalidInputError as exc:
        assert exc.field and exc.field.startswith("requests")
        return
    assert 1 <= len(accepted) == len(batch) <= LIMITS.max_batch_size


def test_generated_calls_against_a_live_server_never_fail_internally(
    logreg_router_dir: Path,
) -> None:
    fuzz = load_script("fuzz_grpc")
    limits = Limits(max_prompt_chars=20_000, max_batch_size=32)
    with serving_on(server_config(logreg_router_dir, limits=limits)) as thread:
        tally = fuzz.fuzz(thread.target, 400, seed=1, max_chars=20_000, max_batch=32)
    assert tally.ok, tally.failures
    assert tally.codes["OK"] > 50 and tally.codes["INVALID_ARGUMENT"] > 50
