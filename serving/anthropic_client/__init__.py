"""Routed Anthropic calls: the Messages API with the model tier chosen per request.

Needs the ``anthropic`` extra. Everything a caller uses is exported here; the
modules behind it are free to change.
"""

from serving.anthropic_client.budget import BUDGET_DOWNGRADE, BudgetGuard
from serving.anthropic_client.cache import DecisionCache
from serving.anthropic_client.deciders import (
    AsyncDecider,
    Decider,
    InProcessDecider,
    ThreadedDecider,
    as_async,
)
from serving.anthropic_client.escalation import (
    CONFIDENCE_GATE,
    CallableValidator,
    Escalation,
    JsonSchemaValidator,
    RegexValidator,
    Validator,
)
from serving.anthropic_client.exploration import EXPLORE, Exploration
from serving.anthropic_client.judge import AsyncJudge, Judge, JudgeBatch, Verdict
from serving.anthropic_client.logging_calls import CallLogger, CallSink, MemorySink
from serving.anthropic_client.metrics import RoutingMetrics
from serving.anthropic_client.result import EXPLICIT_MODEL, Attempt, RoutedMessage
from serving.anthropic_client.routed import RoutedAnthropic
from serving.anthropic_client.routed_async import AsyncRoutedAnthropic

__all__ = [
    "BUDGET_DOWNGRADE",
    "CONFIDENCE_GATE",
    "EXPLICIT_MODEL",
    "EXPLORE",
    "AsyncDecider",
    "AsyncJudge",
    "AsyncRoutedAnthropic",
    "Attempt",
    "BudgetGuard",
    "CallLogger",
    "CallSink",
    "CallableValidator",
    "Decider",
    "DecisionCache",
    "Escalation",
    "Exploration",
    "InProcessDecider",
    "JsonSchemaValidator",
    "Judge",
    "JudgeBatch",
    "MemorySink",
    "RegexValidator",
    "RoutedAnthropic",
    "RoutedMessage",
    "RoutingMetrics",
    "ThreadedDecider",
    "Validator",
    "Verdict",
    "as_async",
]
