"""The budget guard (downgrades, critical requests, windows, scopes) and the decision cache."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fake_anthropic import FakeAnthropic, FixedDecider, fake_ladder, user

from router_model.router import Decision, DecisionRequest
from router_model.text import flatten
from serving.anthropic_client import (
    BUDGET_DOWNGRADE,
    BudgetGuard,
    DecisionCache,
    MemorySink,
    RoutedAnthropic,
)

LADDER = fake_ladder()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic(answer=lambda model, body: "word " * 200).start()
    yield server
    server.stop()


def decision(tier: str = "large", request_id: str | None = None) -> Decision:
    return FixedDecider(LADDER, tier).decide(DecisionRequest(flatten("x"), request_id=request_id))


def test_budget_moves_non_critical_requests_down_one_tier(fake: FakeAnthropic) -> None:
    sink = MemorySink()
    large = LADDER.by_name("large")
    one_call = large.cost_usd(1, 200)  # "hi" is one token in, the answer 200 out
    budget = BudgetGuard(limit_usd=one_call * 2.4, soft_fraction=0.8)
    client = RoutedAnthropic(FixedDecider(LADDER, "large"), fake.client(), log=sink, budget=budget)

    tiers = []
    for critical in (False, False, False, True, False):
        reply = client.messages.create(max_tokens=512, messages=user("hi"), critical=critical)
        tiers.append((reply.tier, reply.rule))
    # 0 and 1/2.4 of the budget used: full price; 2/2.4 > 80%: one tier down from then on,
    # except for the critical request; spend keeps counting past the limit.
    assert tiers == [
        ("large", "fixed"),
        ("large", "fixed"),
        ("medium", BUDGET_DOWNGRADE),
        ("large", "fixed"),
        ("medium", BUDGET_DOWNGRADE),
    ]
    assert budget.spent_usd({}) == pytest.approx(sum(c.cost_usd or 0 for c in sink.calls))
    assert budget.fraction_used({}) > 1.0
    downgraded = sink.calls[2].extra["decision"]
    assert downgraded["tier"] == "medium" and downgraded["routed_tier"] == "large"
    assert downgraded["rule"] == BUDGET_DOWNGRADE
    assert client.metrics.downgrades == 2


def test_the_cheapest_tier_is_never_moved(fake: FakeAnthropic) -> None:
    budget = BudgetGuard(limit_usd=1e-9)
    budget.record(1.0, {})
    client = RoutedAnthropic(FixedDecider(LADDER, "small"), fake.client(), budget=budget)
    reply = client.messages.create(max_tokens=8, messages=user("hi"))
    assert (reply.tier, reply.rule) == ("small", "fixed")


def test_rolling_window_forgets_old_spend() -> None:
    clock = Clock()
    budget = BudgetGuard(limit_usd=10.0, window_s=60.0, clock=clock)
    budget.record(5.0, {})
    clock.now += 30
    budget.record(4.0, {})
    assert budget.spent_usd({}) == pytest.approx(9.0) and budget.under_pressure({})
    assert budget.adjust(decision(), LADDER, {}).rule == BUDGET_DOWNGRADE
    assert budget.adjust(decision(), LADDER, {}, critical=True).tier == "large"
    clock.now += 31  # the first 5 USD is now older than the window
    assert budget.spent_usd({}) == pytest.approx(4.0) and not budget.under_pressure({})
    assert budget.adjust(decision(), LADDER, {}).tier == "large"
    clock.now += 60
    assert budget.spent_usd({}) == 0.0


def test_lifetime_budget_never_expires() -> None:
    clock = Clock()
    budget = BudgetGuard(limit_usd=1.0, window_s=None, clock=clock)
    budget.record(0.9, {})
    clock.now += 10 * 86_400
    assert budget.fraction_used({}) == pytest.approx(0.9)


def test_each_tag_value_has_its_own_budget(fake: FakeAnthropic) -> None:
    budget = BudgetGuard(limit_usd=1.0, scope_tag="team")
    budget.record(0.95, {"team": "search"})
    assert budget.fraction_used({"team": "search"}) == pytest.approx(0.95)
    assert budget.fraction_used({"team": "ads"}) == 0.0 and budget.fraction_used({}) == 0.0
    client = RoutedAnthropic(FixedDecider(LADDER, "medium"), fake.client(), budget=budget)
    search = client.messages.create(max_tokens=8, messages=user("q"), tags={"team": "search"})
    ads = client.messages.create(max_tokens=8, messages=user("q"), tags={"team": "ads"})
    assert (search.tier, ads.tier) == ("small", "medium")
    assert budget.spent_usd({"team": "ads"}) == pytest.approx(ads.cost_usd or 0)


@pytest.mark.parametrize(
    "kwargs",
    [{"limit_usd": 0}, {"limit_usd": 1, "soft_fraction": 0}, {"limit_usd": 1, "window_s": 0}],
)
def test_budget_rejects_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        BudgetGuard(**kwargs)


def test_identical_requests_reuse_the_decision(fake: FakeAnthropic) -> None:
    decider, cache = FixedDecider(LADDER, "medium"), DecisionCache()
    client = RoutedAnthropic(decider, fake.client(), cache=cache)
    first = client.messages.create(max_tokens=8, messages=user("What is  2+2?"))
    second = client.messages.create(max_tokens=8, messages=user(" What is\n2+2? "))
    other_target = client.messages.create(
        max_tokens=8, messages=user("What is 2+2?"), quality_target=0.8
    )
    other_ceiling = client.messages.create(
        max_tokens=8, messages=user("What is 2+2?"), max_cost_usd=0.5
    )
    with_system = client.messages.create(max_tokens=8, system="s", messages=user("What is 2+2?"))
    assert len(decider.requests) == 4
    assert (cache.hits, cache.misses, len(cache)) == (1, 4, 4)
    assert cache.hit_rate == pytest.approx(0.2)
    assert not first.cached_decision and second.cached_decision
    assert second.decision is not None and second.decision.request_id == second.request_id
    assert first.request_id != second.request_id
    assert not (other_target.cached_decision or other_ceiling.cached_decision)
    assert not with_system.cached_decision


def test_budget_applies_to_cached_decisions(fake: FakeAnthropic) -> None:
    budget = BudgetGuard(limit_usd=1.0)
    client = RoutedAnthropic(
        FixedDecider(LADDER, "large"), fake.client(), cache=DecisionCache(), budget=budget
    )
    assert client.messages.create(max_tokens=8, messages=user("q")).tier == "large"
    budget.record(0.9, {})
    reply = client.messages.create(max_tokens=8, messages=user("q"))
    assert reply.cached_decision and (reply.tier, reply.rule) == ("medium", BUDGET_DOWNGRADE)
    # The cache keeps the decider's decision, not the downgrade.
    cached = client.cache.get(DecisionRequest(flatten("q"))) if client.cache else None
    assert cached is not None and cached.tier == "large"


def test_cache_expires_and_stays_bounded() -> None:
    clock = Clock()
    cache = DecisionCache(max_entries=2, ttl_s=10.0, clock=clock)
    requests = [DecisionRequest(flatten(f"q{i}")) for i in range(3)]
    for r in requests[:2]:
        cache.put(r, decision())
    assert cache.get(requests[0]) is not None  # q0 is now the most recently used
    cache.put(requests[2], decision())  # evicts q1, the least recently used
    assert cache.get(requests[1]) is None and len(cache) == 2
    clock.now += 10.5
    assert cache.get(requests[0]) is None and cache.get(requests[2]) is None
    assert len(cache) == 0 and (cache.hits, cache.misses) == (1, 3)
