"""``tierwise registry``: list, add, promote and roll back the routers a server follows.

Serving dependencies only: an operator can roll back from the serving host.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("registry", help="manage a model registry (versions/, current)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        child: argparse.ArgumentParser = actions.add_parser(name, help=help_text)
        child.add_argument("--registry", type=Path, required=True, help="registry directory")
        return child

    action("list", "list registered versions").set_defaults(handler=run_list)
    add = action("add", "copy an artifact into the registry and pin its manifest hash")
    add.add_argument("artifact", type=Path, help="router artifact directory")
    add.set_defaults(handler=run_add)
    promote = action("promote", "verify a registered version and make it current")
    promote.add_argument("version")
    promote.add_argument("--reason", default="manual promotion")
    promote.set_defaults(handler=run_promote)
    rollback = action("rollback", "return to the previously promoted version")
    rollback.add_argument("--reason", default="manual rollback")
    rollback.set_defaults(handler=run_rollback)
    assert isinstance(parser, argparse.ArgumentParser)
    return parser


def run_list(args: argparse.Namespace) -> int:
    from router_model.errors import ConfigError
    from serving.registry import Registry

    if not args.registry.is_dir():
        raise ConfigError(f"registry {args.registry} does not exist")
    registry = Registry(args.registry)
    current = registry.current()
    rows = [("", "VERSION", "CREATED_AT", "HELDOUT_COST@95")]
    for info in registry.versions():
        cost = "-" if info.cost_at_95 is None else f"{info.cost_at_95:.3f}"
        rows.append(("*" if info.version == current else "", info.version, info.created_at, cost))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0


def run_add(args: argparse.Namespace) -> int:
    from serving.registry import Registry

    print(Registry(args.registry).add(args.artifact))
    return 0


def run_promote(args: argparse.Namespace) -> int:
    from serving.registry import Registry

    event = Registry(args.registry).promote(args.version, args.reason)
    print(f"current: {event.version} (was {event.previous or 'none'})")
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    from serving.registry import Registry

    event = Registry(args.registry).rollback(args.reason)
    print(f"current: {event.version} (was {event.previous or 'none'})")
    return 0
