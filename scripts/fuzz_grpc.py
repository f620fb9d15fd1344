"""Fuzz a running tierwise server with generated requests, good and bad.

    python scripts/fuzz_grpc.py --target 127.0.0.1:50051 [--requests 10000] [--seed 0]
    python scripts/fuzz_grpc.py --model models/default     # starts its own loopback server

Every request must end OK, INVALID_ARGUMENT or RESOURCE_EXHAUSTED; anything
else (INTERNAL, UNKNOWN, a dropped connection) is a failure, and so is a
server that stops answering health checks. The generator mixes random Unicode
(control characters, combining marks, emoji, right-to-left text), empty and
blank prompts, prompts past the size limit, long message lists with bad roles,
NaN, infinite, negative and zero quality targets and cost ceilings, unknown
rules, odd tags and request ids, and batches past the batch limit. Traffic
goes only to loopback. The exit status is 1 when any request failed.
"""

from __future__ import annotations

import argparse
import collections
import math
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

import bench_grpc  # noqa: E402  (a sibling script: loopback check, server start and stop)

from serving._proto.tierwise.v1 import router_pb2 as pb  # noqa: E402
from serving._proto.tierwise.v1 import router_pb2_grpc  # noqa: E402

ALLOWED = frozenset(
    {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}
)
ODD_TEXT = (
    "",
    " ",
    "\n\t\r",
    "\x00",
    "\u202e\u05e9\u05dc\u05d5\u05dd",  # right-to-left override + Hebrew
    "e\u0301\u0301\u0301",  # stacked combining marks
    "\U0001f600" * 50,
    "\ufeff\ufffe\uffff",
    "```python\nimport os\n```",
    "SELECT * FROM t; DROP TABLE t;--",
)
ODD_NUMBERS = (math.nan, math.inf, -math.inf, -1.0, 0.0, 1e-300, 1.0, 1.5, 1e300, -0.0)


@dataclass
class Tally:
    """Status codes seen, and the first example of every code that is not allowed."""

    codes: collections.Counter[str] = field(default_factory=collections.Counter)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def record(self, code: grpc.StatusCode, what: str) -> None:
        self.codes[code.name] += 1
        if code not in ALLOWED and len(self.failures) < 20:
            self.failures.append(f"{code.name}: {what}")


def random_text(rng: random.Random, max_chars: int) -> str:
    """Mostly plausible text, sometimes hostile, now and then past ``max_chars``."""
    roll = rng.random()
    if roll < 0.15:
        return rng.choice(ODD_TEXT)
    if roll < 0.20:
        return "x" * (max_chars + rng.randint(1, 1000))
    if roll < 0.50:
        return "".join(_code_point(rng) for _ in range(rng.randint(1, 200)))
    words = ("what", "is", "the", "capital", "of", "def", "f(x):", "λ", "∑", "?", "\n")
    return " ".join(rng.choice(words) for _ in range(rng.randint(1, 400)))


def _code_point(rng: random.Random) -> str:
    """Any character protobuf can carry: every code point but the surrogates."""
    point = rng.randint(1, 0x2FFFF)
    return chr(point + 0x800 if 0xD800 <= point <= 0xDFFF else point)


def random_request(rng: random.Random, max_chars: int) -> pb.PredictRequest:
    msg = pb.PredictRequest()
    shape = rng.random()
    if shape < 0.45 or shape > 0.95:
        msg.prompt = random_text(rng, max_chars)
    if shape >= 0.45:
        for _ in range(rng.choice((0, 1, 2, 5, 50, 2000))):
            role = rng.choice(("user", "assistant", "user", "system", "", "tool", "USER"))
            msg.messages.add(role=role, content=random_text(rng, max_chars // 100))
    if rng.random() < 0.3:
        msg.system = random_text(rng, max_chars)
    if rng.random() < 0.4:
        msg.quality_target = rng.choice((*ODD_NUMBERS, rng.random()))
    if rng.random() < 0.3:
        msg.max_cost_usd = rng.choice((*ODD_NUMBERS, rng.random() / 100))
    if rng.random() < 0.3:
        msg.rule = rng.choice(("cost_aware", "threshold", "", "fastest", "\x00", "COST_AWARE"))
    for _ in range(rng.choice((0, 0, 1, 3, 100))):
        msg.tags[random_text(rng, 64)[:64]] = random_text(rng, 64)[:256]
    if rng.random() < 0.5:
        msg.request_id = random_text(rng, 128)[:128]
    return msg


def random_batch(rng: random.Random, max_chars: int, max_batch: int) -> pb.PredictBatchRequest:
    size = rng.choice((0, 1, 3, 16, max_batch + 1))
    batch = pb.PredictBatchRequest()
    for _ in range(size):
        batch.requests.append(
            random_request(rng, max_chars) if size < 50 else pb.PredictRequest(prompt="hi")
        )
    return batch


def calls(seed: int, n: int, max_chars: int, max_batch: int) -> Iterator[tuple[str, object]]:
    rng = random.Random(seed)
    for _ in range(n):
        if rng.random() < 0.1:
            yield "PredictBatch", random_batch(rng, max_chars, max_batch)
        else:
            yield "Predict", random_request(rng, max_chars)


def fuzz(
    target: str,
    n: int,
    seed: int = 0,
    max_chars: int = 1_000_000,
    max_batch: int = 1024,
    progress: Callable[[int], None] | None = None,
) -> Tally:
    """Send ``n`` generated calls to ``target`` (loopback only) and tally their codes."""
    bench_grpc.check_loopback(target)
    tally = Tally()
    options = [("grpc.max_send_message_length", 64 * 1024 * 1024)]
    with grpc.insecure_channel(target, options) as channel:
        stub = router_pb2_grpc.RouterStub(channel)
        for i, (method, request) in enumerate(calls(seed, n, max_chars, max_batch)):
            try:
                getattr(stub, method)(request, timeout=30)
                code = grpc.StatusCode.OK
            except grpc.RpcError as error:
                code = error.code()
            tally.record(code, f"call {i} ({method}, seed {seed})")
            if progress is not None and (i + 1) % 1000 == 0:
                progress(i + 1)
        tally.record(_health(channel), "health check after the fuzz")
    return tally


def _health(channel: grpc.Channel) -> grpc.StatusCode:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    try:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10
        )
    except grpc.RpcError as error:
        return error.code()
    serving = reply.status == health_pb2.HealthCheckResponse.SERVING
    return grpc.StatusCode.OK if serving else grpc.StatusCode.UNAVAILABLE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    bench_grpc.add_target_arguments(parser)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    bench_grpc.add_server_arguments(parser)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.model is not None:
        proc, target = bench_grpc.start_server(args.model, args)
    else:
        proc, target = None, args.target
    try:
        tally = fuzz(
            target,
            args.requests,
            args.seed,
            progress=lambda i: print(f"[fuzz] {i} calls", file=sys.stderr),
        )
    finally:
        if proc is not None:
            bench_grpc.stop_server(proc)
    seconds = time.perf_counter() - started
    print(f"{args.requests} calls in {seconds:.0f} s; codes: {dict(tally.codes)}")
    for failure in tally.failures:
        print(f"FAILED {failure}")
    return 0 if tally.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
