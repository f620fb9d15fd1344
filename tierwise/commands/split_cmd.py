"""``tierwise split``: hold out requests for evaluation, the same way ``train`` does.

Calls are split by request (all calls of a request land on one side): the
newest requests when timestamps vary, otherwise a stable hash of the id.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("split", help="split graded calls by request into train and test")
    parser.add_argument("--calls", type=Path, required=True, help="graded-call JSONL")
    parser.add_argument("--held-out-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-train", type=Path, required=True)
    parser.add_argument("--out-test", type=Path, required=True)
    parser.set_defaults(handler=run)
    assert isinstance(parser, argparse.ArgumentParser)
    return parser


# Independent of the hash training holds out by, so a train file written here
# still has a held-out sample for the manifest's metrics.
SALT = "split"


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from router_model.calls import read_calls, write_calls
    from training.split import split_requests

    calls = read_calls(args.calls)
    first_seen: dict[str, float] = {}
    for call in calls:
        stamp = call.timestamp.timestamp()
        first_seen[call.request_id] = min(stamp, first_seen.get(call.request_id, stamp))
    ids = list(first_seen)
    _, held = split_requests(
        ids, np.array(list(first_seen.values())), args.held_out_fraction, args.seed, SALT
    )
    held_ids = {ids[i] for i in held}
    n_test = write_calls(args.out_test, (c for c in calls if c.request_id in held_ids))
    n_train = write_calls(args.out_train, (c for c in calls if c.request_id not in held_ids))
    print(
        f"{len(ids) - len(held_ids)} requests ({n_train} calls) -> {args.out_train}; "
        f"{len(held_ids)} requests ({n_test} calls) -> {args.out_test}",
        file=sys.stderr,
    )
    return 0
