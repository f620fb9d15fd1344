"""An int8 router served with its default passes: concurrent calls scored side by
side on single-threaded sessions get the decisions the plain path gives."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_support import server_config, serving_on

from router_model import Router
from router_model.calls import read_calls
from router_model.router import DecisionRequest
from router_model.text import RequestText
from serving._proto.tierwise.v1 import router_pb2 as pb
from serving._proto.tierwise.v1 import router_pb2_grpc


def _texts(calls: Path, n: int) -> list[str]:
    return list({c.request_id: c.request_text().text for c in read_calls(calls)}.values())[:n]


def text_of(prompt: str) -> RequestText:
    return RequestText(prompt, turns=1, has_system=False)


@pytest.mark.parametrize("fixture", ["logreg_router_dir", "int8_router_dir"])
def test_single_threaded_sessions_score_as_the_main_session(
    fixture: str, request: pytest.FixtureRequest, mmlu_calls: Path
) -> None:
    router = Router.load(request.getfixturevalue(fixture))
    texts = [c.request_text() for c in read_calls(mmlu_calls)][:30]
    main = np.vstack([router.score([t]).p_success for t in texts])
    with ThreadPoolExecutor(3) as pool:
        rows = list(pool.map(lambda t: router.score([t], single_threaded=True).p_success, texts))
    if router.one_request_per_run:
        np.testing.assert_array_equal(np.vstack(rows), main)
    else:  # another summation order across threads
        np.testing.assert_allclose(np.vstack(rows), main, rtol=0, atol=1e-5)


def test_concurrent_calls_to_an_int8_router_decide_as_in_process(
    int8_router_dir: Path, mmlu_calls: Path
) -> None:
    texts = _texts(mmlu_calls, 48)
    expected = Router.load(int8_router_dir).decide([DecisionRequest(text_of(t)) for t in texts])
    with serving_on(server_config(int8_router_dir, workers=None)) as server:
        with grpc.insecure_channel(server.target) as channel:
            stub = router_pb2_grpc.RouterStub(channel)
            calls = [stub.Predict.future(pb.PredictRequest(prompt=t), timeout=60) for t in texts]
            answers = [call.result() for call in calls]
        side_by_side = server.metric("tierwise_scoring_passes_total", {"threads": "one"})
    assert side_by_side > 0, "no pass ran beside another"
    assert [a.tier for a in answers] == [d.tier for d in expected]
    for answer, decision in zip(answers, expected, strict=True):
        assert [s.p_success for s in answer.scores] == pytest.approx(
            list(decision.p_success.values()), abs=1e-6
        )
