"""Shadow mode: log what a router would have decided without applying it.

``records`` defines the shadow-decision record (the only format both sides
write and the report reads); ``server_side`` runs a challenger beside the
current router inside ``tierwise serve``; ``client_side`` lets a service keep
calling its usual model while the router's decisions are logged. See
docs/shadow-mode.md.
"""

from serving.shadow.records import (
    CHALLENGER,
    CURRENT,
    InputStats,
    ShadowDecision,
    is_shadow,
    parse_shadow,
    shadow_record,
)

__all__ = [
    "CHALLENGER",
    "CURRENT",
    "InputStats",
    "ShadowDecision",
    "is_shadow",
    "parse_shadow",
    "shadow_record",
]
