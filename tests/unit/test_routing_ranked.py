"""Lazy rankings: the best model at once, the order and the notes only when read."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh.cli.route import _show
from agentmesh.models import ModelSpec
from agentmesh.routing import InMemoryRoutingState, Policy, Router, RouteRequest, Snapshot
from agentmesh.routing.context import Costs, PriceTable
from agentmesh.routing.ranked import Fallbacks, Ranked, first_model
from agentmesh.routing.strategies import basic
from agentmesh.tracing import attributes as A
from agentmesh.tracing import decision as decision_span

from .routing_helpers import catalog, request, route, spec
from .test_tracing_support import span_fixture


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    yield from span_fixture()


def _specs() -> list[ModelSpec]:
    return [spec("c", tier=2), spec("a", tier=1), spec("b", tier=1), spec("d", tier=3)]


def test_best_first_then_cheaper_lower_tier_id_on_ties() -> None:
    specs = _specs()
    costs = {"a": 2.0, "b": 1.0, "c": 1.0, "d": 0.5}
    noted: list[str] = []

    def note(s: ModelSpec, score: float) -> str:
        noted.append(s.id)
        return f"{s.id}={score:g}"

    ranked = Ranked(specs, [1.0, 1.0, 1.0, 0.0], costs, note)
    assert first_model(ranked) == "b", "tied on score: b is cheaper than a, lower tier than c"
    assert noted == [], "nothing formatted to find the best"
    assert ranked.models() == ["b", "c", "a", "d"]
    assert [c.note for c in ranked[:2]] == ["b=1", "c=1"]
    assert noted == ["b", "c"], "only the candidates read are noted"
    assert ranked[-1].model == "d"
    assert len(ranked) == 4
    assert ranked == [tuple(c) for c in ranked], "compares by value"
    assert hash(ranked) == hash(Ranked(specs, [1.0, 1.0, 1.0, 0.0], costs, note))


def test_an_ordered_rotation_is_kept_as_given() -> None:
    specs = _specs()
    ranked = Ranked(specs, range(4, 0, -1), {}, in_order=True)
    assert ranked.models() == ["c", "a", "b", "d"]
    assert [c.score for c in ranked] == [4.0, 3.0, 2.0, 1.0]


def test_one_score_per_candidate() -> None:
    with pytest.raises(ValueError, match="2 candidates but 1 scores"):
        Ranked(_specs()[:2], [1.0], {})


def test_fallbacks_are_the_rest_in_rank_order() -> None:
    ranked = Ranked(_specs(), [0.1, 0.4, 0.3, 0.2], {"a": 0, "b": 0, "c": 0, "d": 0})
    fallbacks = Fallbacks(ranked, ("a",))
    assert list(fallbacks) == ["b", "d", "c"]
    assert fallbacks[:1] == ("b",)
    assert len(fallbacks) == 3
    assert fallbacks == ["b", "d", "c"]


async def test_route_formats_no_note_until_the_decision_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    original = basic._cost_note

    def counting(s: ModelSpec, score: float) -> str:
        calls.append(s.id)
        return original(s, score)

    monkeypatch.setattr(basic, "_cost_note", counting)
    # An untraced process (an earlier test may have installed a global provider).
    monkeypatch.setattr(decision_span, "spans_on", lambda: False)
    monkeypatch.setattr(decision_span, "metrics_on", lambda: False)
    router = Router(catalog(*(spec(f"m{i}", price=(1.0 + i, 2.0)) for i in range(50))))
    decision = await route(router, "cheapest")
    assert decision.chosen == "m0"
    assert calls == [], "the untraced route formatted notes"
    assert list(decision.fallbacks)[:2] == ["m1", "m2"]
    assert len(decision.fallbacks) == 49
    shown = _show(decision)  # what `agentmesh route` prints
    assert "m0" in shown
    assert f"{decision.candidates[0].note}" in shown
    assert decision.candidates[0].note.endswith("worst case")
    notes = [c["note"] for c in decision.to_dict()["candidates"]]  # type: ignore[union-attr]
    assert len(notes) == 50
    assert all(n.startswith("$") for n in notes)


async def test_traced_route_lists_each_candidates_note(spans: InMemorySpanExporter) -> None:
    router = Router(catalog(spec("x", price=(1.0, 1.0)), spec("y", price=(2.0, 2.0))))
    decision = await router.route(
        request(node="n"), Policy(strategy="least_latency", params={"explore": True})
    )
    (span,) = [s for s in spans.get_finished_spans() if s.name == "route n"]
    attrs = span.attributes or {}
    assert attrs[A.ROUTE_CANDIDATE_NOTES] == ("no latency observed yet",) * 2
    assert attrs[A.ROUTE_CANDIDATES] == tuple(c.model for c in decision.candidates)


async def test_round_robin_rotates_the_same_over_the_cached_index() -> None:
    router = Router(catalog(spec("a"), spec("b"), spec("c")))
    policy = Policy(strategy="round_robin", params={"weights": {"a": 2}})
    chosen = [(await router.route(RouteRequest(node="n"), policy)).chosen for _ in range(8)]
    assert chosen == ["a", "a", "b", "c", "a", "a", "b", "c"]
    excluded = await router.route(RouteRequest(node="n", exclude=frozenset({"a"})), policy)
    assert excluded.chosen in {"b", "c"}
    assert "a" not in excluded.fallbacks


@pytest.mark.parametrize(
    ("wanted", "exact"), [(100, {}), (5000, {}), (100, {"b": 7}), (5000, {"a": 3000})]
)
def test_costs_read_one_or_all_match_each_models_own_cost(
    wanted: int, exact: dict[str, int]
) -> None:
    specs = [spec("a", price=(1.0, 3.0), max_out=4096), spec("b", price=(2.0, 1.0), max_out=512)]
    table = PriceTable(specs)
    want = {s.id: s.cost(exact.get(s.id, 40), min(wanted, s.max_output_tokens)) for s in specs}
    one = Costs(table, 40, wanted, exact)
    assert {m: one[m] for m in ("b", "a")} == pytest.approx(want), "one model at a time"
    many = Costs(table, 40, wanted, exact)
    reads = [many[m] for _ in range(10) for m in ("a", "b")]  # past 8: one pass for all
    assert reads == pytest.approx([want["a"], want["b"]] * 10)
    bulk = Costs(table, 40, wanted, exact)
    assert bulk.column(table.specs) == pytest.approx([want["a"], want["b"]])
    assert bulk.column([specs[1]]) == pytest.approx([want["b"]])
    assert bulk.all() == pytest.approx(want)
    assert bulk["b"] == pytest.approx(want["b"])
    assert set(bulk) == {"a", "b"}
    assert len(bulk) == 2
    assert "a" in bulk


class _Recording(InMemoryRoutingState):
    """Records the models each snapshot was asked to read statistics for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[tuple[str, ...]] = []

    async def snapshot(self, models: Sequence[str], **kwargs: Any) -> Snapshot:
        self.asked.append(tuple(models))
        return await super().snapshot(models, **kwargs)


@pytest.mark.parametrize(
    ("strategy", "fields", "reads"),
    [
        ("cheapest", {}, False),
        ("round_robin", {}, False),
        ("least_latency", {}, True),
        ("cheapest", {"latency_slo_ms": 500.0}, True),
    ],
)
async def test_only_routes_that_read_statistics_ask_the_state_for_them(
    strategy: str, fields: dict[str, Any], reads: bool
) -> None:
    state = _Recording()
    await state.observe("a", latency_ms=900.0, error=None)
    router = Router(catalog(spec("a"), spec("b")), state=state)
    decision = await route(router, strategy, **fields)
    assert state.asked == [("a", "b") if reads else ()]
    if fields:
        assert decision.chosen == "b", "the latency filter still saw a's p95"
