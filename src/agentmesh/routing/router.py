"""`Router`: the one routing service every node of every workflow asks.

``route(request, policy)`` filters the catalog (each exclusion with its why),
lets the policy's strategy rank what is left, reserves the call's worst-case
cost against the budgets, and returns an explainable :class:`RouteDecision`.
``record(decision, outcome)`` feeds latency, errors, quality and the actual
cost back into the shared :class:`RoutingState`.

The router holds configuration only; everything that changes lives in the
state, so one router (or many, in many processes, over one shared store) gives
one routing view.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from itertools import count
from types import MappingProxyType
from typing import Any, NamedTuple

from agentmesh.models.catalog import Catalog
from agentmesh.models.spec import ModelSpec
from agentmesh.models.tokens import estimate_tokens
from agentmesh.routing.classify import Classification, Classifier, RuleClassifier
from agentmesh.routing.constraints import Constraints
from agentmesh.routing.context import Costs, PriceTable, RouteContext
from agentmesh.routing.filters import DEFAULT_FILTERS, Filter, TierFilter
from agentmesh.routing.matrix import RoutingMatrix
from agentmesh.routing.policy import BudgetLimits, Policy
from agentmesh.routing.ranked import Fallbacks, first_model
from agentmesh.routing.state import InMemoryRoutingState, ModelStats, RoutingState, Snapshot
from agentmesh.routing.strategies import Strategy, build_strategy
from agentmesh.routing.strategies.base import Ranking
from agentmesh.routing.types import (
    BudgetExceeded,
    Candidate,
    Exclusion,
    NoRoute,
    Outcome,
    RouteDecision,
    RouteRequest,
)
from agentmesh.tracing import RouteCall

__all__ = ["Router"]

_PROMPT_OVERHEAD_TOKENS = 8
_TOKEN_CACHE_SIZE = 256
"""Prompts whose token estimate a router keeps (the oldest goes first)."""
_TOKEN_CACHE_MAX_CHARS = 4096
"""Longer prompts are estimated on every decision (so the cache holds at most ~1 MiB of text)."""
_NO_BUDGETS: Mapping[str, float] = MappingProxyType({})


class _Compiled(NamedTuple):
    """What a router prepares once per policy object."""

    policy: Policy
    strategy: Strategy[Any]
    constraints: Constraints
    """The policy's bounds for requests that name no capability."""
    filters: tuple[Filter, ...]
    """The filters those bounds may activate, in order (see :func:`_may_apply`)."""


def _may_apply(check: Filter, constraints: Constraints) -> bool:
    """False when ``check`` says ``constraints`` leave it nothing to check, whatever the request.

    A filter may define ``applies(constraints) -> bool`` (the built-in ones whose
    ``active()`` reads only the constraints do); one without it is always asked.
    """
    applies = getattr(check, "applies", None)
    return applies is None or bool(applies(constraints))


class Router:
    """Chooses a model for each request, and learns from what happened.

    Args:
        catalog: The models to choose from.
        state: Where statistics, breakers, counters, budgets and quality
            observations live; in memory by default.
        policy: The policy for requests that bring none.
        matrix: How quality estimates blend priors and observations.
        classifier: Labels prompts with task and complexity (rules by default).
        budgets: Per-run and global USD limits.
        filters: The eligibility filters, in reporting order.
    """

    def __init__(
        self,
        catalog: Catalog,
        *,
        state: RoutingState | None = None,
        policy: Policy | None = None,
        matrix: RoutingMatrix | None = None,
        classifier: Classifier | None = None,
        budgets: BudgetLimits | None = None,
        filters: Sequence[Filter] = DEFAULT_FILTERS,
    ) -> None:
        if not catalog.chat_specs:
            raise ValueError(f"{catalog.source}: a router needs at least one model of kind chat")
        self.catalog = catalog
        self.state: RoutingState = state if state is not None else InMemoryRoutingState()
        self.policy = policy if policy is not None else Policy()
        self.matrix = matrix if matrix is not None else RoutingMatrix()
        self.classifier: Classifier = classifier if classifier is not None else RuleClassifier()
        self.budgets = budgets if budgets is not None else BudgetLimits()
        self._index(catalog)
        self._filters = tuple(filters)
        self._filters_own_escalation = tuple(
            TierFilter(escalate=False) if isinstance(f, TierFilter) else f for f in filters
        )
        self._strategies: dict[int, _Compiled] = {}  # by id(policy)
        self._open: dict[str, float] = {}
        # prompt -> its estimated tokens (overhead included), for prompts routed again
        # (a retry, a fallback's decision, a hedge, a loop's next round); bounded.
        self._prompt_tokens: dict[str, int] = {}
        self._prefix = os.urandom(4).hex()
        self._ids_seq = count(1)

    def _index(self, catalog: Catalog) -> None:
        """Read once what every decision needs of ``catalog``."""
        self._specs: tuple[ModelSpec, ...] = catalog.chat_specs  # never an embeddings entry
        self._ids = tuple(s.id for s in self._specs)
        self._min_tier = min(s.tier for s in self._specs)
        # The price columns every call's worst-case cost reads; (id, output cap,
        # window) for the context-window check, and the bounds under which no
        # model can overflow (so most decisions skip the check's loop).
        self._prices = PriceTable(self._specs)
        self._windows = tuple((s.id, s.max_output_tokens, s.context_window) for s in self._specs)
        self._fits_any_output = min(s.context_window - s.max_output_tokens for s in self._specs)
        self._min_window = min(s.context_window for s in self._specs)

    def use_catalog(self, catalog: Catalog, policy: Policy | None = None) -> None:
        """Route over ``catalog`` (and ``policy``, if given) from the next decision on.

        A live reload: decisions already made keep their models; what the state
        holds (statistics, breakers, budgets, quality) stays, by model id.

        Raises:
            ValueError: The catalog is empty.
        """
        if not catalog.chat_specs:
            raise ValueError(f"{catalog.source}: a router needs at least one model of kind chat")
        self._index(catalog)
        self._strategies.clear()  # strategies may index the catalog they were built on
        self.catalog = catalog
        if policy is not None:
            self.policy = policy

    def strategy_for(self, policy: Policy) -> Strategy[Any]:
        """The strategy instance of ``policy``, built once per policy object."""
        return self._compiled(policy)[1]

    def _compiled(self, policy: Policy) -> _Compiled:
        """``policy``'s strategy, plain bounds and filters, made once per policy object (frozen)."""
        found = self._strategies.get(id(policy))
        if found is None or found.policy is not policy:
            strategy = build_strategy(policy.strategy, policy.params)
            constraints = policy.constraints(RouteRequest())
            filters = self._filters_for(strategy, constraints)
            found = _Compiled(policy, strategy, constraints, filters)
            self._strategies[id(policy)] = found
        return found

    def _filters_for(self, strategy: Strategy[Any], constraints: Constraints) -> tuple[Filter, ...]:
        """The filters to ask ``active()`` under ``constraints``, in reporting order."""
        filters = self._filters_own_escalation if strategy.handles_escalation else self._filters
        return tuple(f for f in filters if _may_apply(f, constraints))

    def _estimate(self, prompt: str) -> int:
        """``prompt``'s estimated tokens plus the chat overhead, kept for prompts routed again."""
        cache = self._prompt_tokens
        tokens = cache.get(prompt)
        if tokens is None:
            tokens = estimate_tokens(prompt) + _PROMPT_OVERHEAD_TOKENS
            if len(prompt) <= _TOKEN_CACHE_MAX_CHARS:
                if len(cache) >= _TOKEN_CACHE_SIZE:
                    cache.pop(next(iter(cache), prompt), None)
                cache[prompt] = tokens
        return tokens

    async def route(self, request: RouteRequest, policy: Policy | None = None) -> RouteDecision:
        """Choose a model for ``request`` under ``policy`` (default: the router's).

        Each decision is traced as a ``route {node}`` span (strategy, chosen
        model, reason, ranked candidates, exclusions with why, fallbacks) and
        counted in ``agentmesh.route.decisions``; see :mod:`agentmesh.tracing`.

        Raises:
            BudgetExceeded: Only budgets stood between the request and a model.
            NoRoute: No model is eligible; the error lists every exclusion.
        """
        policy = policy or self.policy
        if not RouteCall.wanted():  # the idle span would do nothing
            return await self._decide(request, policy)
        with RouteCall.start(
            node=request.node,
            role=request.role,
            strategy=policy.strategy,
            round=request.round,
            escalation=request.escalation,
            run_id=request.run_id,
        ) as call:
            try:
                decision = await self._decide(request, policy)
            except NoRoute as exc:
                call.excluded(exc.excluded)
                raise
            if call.observed:
                call.decided(
                    chosen=decision.chosen,
                    strategy=decision.strategy,
                    reason=decision.reason,
                    candidates=decision.candidates,
                    excluded=decision.excluded,
                    fallbacks=decision.fallbacks,
                    selected=decision.selected,
                    task=decision.task,
                    reserved_usd=decision.reserved_usd,
                    decision_id=decision.decision_id,
                )
            return decision

    async def _decide(self, request: RouteRequest, policy: Policy) -> RouteDecision:
        _, strategy, constraints, filters = self._compiled(policy)
        if request.capabilities:
            constraints = policy.constraints(request)
            filters = self._filters_for(strategy, constraints)
        verdict = None
        if strategy.needs_classification or (
            request.task is None and (strategy.needs_task or constraints.quality_floor is not None)
        ):
            verdict = await self.classifier.classify(request.prompt)
        task = request.task if request.task is not None else (verdict.task if verdict else None)
        limits = self.budgets.keys(request.run_id, request.run_budget_usd)
        reads_stats = strategy.needs_stats or constraints.latency_slo_ms is not None
        snapshot = await self.state.snapshot(
            self._ids if reads_stats else (),
            task=task,
            budget_keys=[key for key, _ in limits] if limits else (),
            counter=strategy.counter_key(request),
        )
        ctx = self._context(request, constraints, snapshot, task, verdict, limits)
        eligible, excluded = self._eligible(ctx, filters)
        if not eligible:
            raise self._no_route(ctx, excluded)
        ranking = await strategy.rank(eligible, ctx)
        if ranking.excluded:
            excluded.extend(ranking.excluded)
        if not ranking.ranked:
            raise self._no_route(ctx, excluded)
        ranked = ranking.ranked
        first = first_model(ranked)
        selected = ranking.selected or (first,)
        if limits:
            return await self._reserve(ctx, strategy, ranking, first, selected, excluded, limits)
        return self._decision(
            ctx, strategy, ranking, ranked, selected, first, excluded, 0.0, (), self._next_id()
        )

    def _context(
        self,
        request: RouteRequest,
        constraints: Constraints,
        snapshot: Snapshot,
        task: str | None,
        verdict: Classification | None,
        limits: tuple[tuple[str, float], ...],
    ) -> RouteContext:
        """The decision's inputs: prompt tokens, models that cannot fit, budgets left, costs."""
        tokens = request.prompt_tokens
        if tokens is None:
            tokens = self._estimate(request.prompt)
        wanted = request.max_output_tokens
        exact = request.prompt_tokens_by_model
        overflowing: frozenset[str] = frozenset()
        if exact or (tokens > self._fits_any_output and tokens + wanted > self._min_window):
            overflowing = frozenset(
                model
                for model, cap, window in self._windows
                if (exact.get(model, tokens) if exact else tokens)
                + (wanted if wanted < cap else cap)
                > window
            )
        budgets: Mapping[str, float] = _NO_BUDGETS
        tightest = None
        if limits or request.remaining_budget_usd is not None:
            budgets = dict(limits)
            tightest = RouteContext.tightest_budget(
                budgets, snapshot.spent, request.remaining_budget_usd
            )
        # Every field, in order, straight into the tuple (the generated __new__ is a
        # Python frame over the same call).
        return tuple.__new__(
            RouteContext,
            (
                request,
                constraints,
                snapshot,
                self.matrix,
                task,
                verdict,
                tokens,
                budgets,
                Costs(self._prices, tokens, wanted, exact),
                overflowing,
                tightest,
                self._min_tier,
            ),
        )

    def _eligible(
        self, ctx: RouteContext, filters: tuple[Filter, ...]
    ) -> tuple[Sequence[ModelSpec], list[Exclusion]]:
        """The models every active filter lets through, and the others with the first why."""
        active = [f for f in filters if f.active(ctx)]
        eligible: Sequence[ModelSpec] = self._specs
        excluded: list[Exclusion] = []
        if active:
            eligible = []
            for spec in self._specs:
                for check in active:
                    why = check.why_not(spec, ctx)
                    if why is not None:
                        excluded.append(Exclusion(spec.id, why, check.name))
                        break
                else:
                    eligible.append(spec)
        return eligible, excluded

    def _next_id(self) -> str:
        return f"{self._prefix}-{next(self._ids_seq)}"

    def _no_route(self, ctx: RouteContext, excluded: list[Exclusion]) -> NoRoute:
        """Why nothing is left: the budget when it excluded any model the other filters let by.

        Filters run in order and the first reason excludes, so a model excluded
        by ``budget`` passed every filter before it: the budget is what stands
        between the request and that model.
        """
        over = [e for e in excluded if e.by == "budget"]
        tightest = ctx.remaining()
        if over and tightest is not None:
            scope, left = tightest
            return BudgetExceeded(
                ctx.request,
                tuple(excluded),
                scope=scope,
                needed_usd=min(ctx.worst_cost(self.catalog[e.model]) for e in over),
                remaining_usd=left,
                limit_usd=ctx.budgets.get(scope, ctx.request.remaining_budget_usd),
            )
        return NoRoute(ctx.request, tuple(excluded))

    async def _reserve(
        self,
        ctx: RouteContext,
        strategy: Strategy[Any],
        ranking: Ranking,
        first: str,
        selected: tuple[str, ...],
        excluded: list[Exclusion],
        limits: tuple[tuple[str, float], ...],
    ) -> RouteDecision:
        """Reserve the worst case of the first affordable choice and build the decision.

        ``selected`` is the strategy's choice (its first model by default); when a
        budget refuses it meanwhile, the next candidate is tried, unless the
        strategy selected models itself.
        """
        ranked: Sequence[Candidate] = ranking.ranked
        decision_id = self._next_id()
        refusals: set[str] = set()
        while True:
            amount = sum(ctx.worst_cost(self.catalog[m]) for m in selected)
            refused = await self.state.reserve(
                limits, amount, hold=decision_id, lease_s=self.budgets.lease_s
            )
            if refused is None:
                break
            why = f"reservation of ${amount:.6f} refused by budget {refused} (spent meanwhile)"
            excluded.extend(Exclusion(m, why, "budget") for m in selected)
            refusals.update(selected)
            left = [c for c in ranked if c.model not in refusals]
            if ranking.selected or not left:
                limit = dict(limits)[refused]
                raise BudgetExceeded(
                    ctx.request,
                    tuple(excluded),
                    scope=refused,
                    needed_usd=amount,
                    remaining_usd=limit - ctx.snapshot.spent.get(refused, 0.0),
                    limit_usd=limit,
                )
            ranked = tuple(left)
            selected = (ranked[0].model,)
        self._open[decision_id] = amount
        keys = tuple(key for key, _ in limits)
        return self._decision(
            ctx, strategy, ranking, ranked, selected, first, excluded, amount, keys, decision_id
        )

    @staticmethod
    def _decision(
        ctx: RouteContext,
        strategy: Strategy[Any],
        ranking: Ranking,
        ranked: Sequence[Candidate],
        selected: tuple[str, ...],
        first: str,
        excluded: list[Exclusion],
        reserved: float,
        budget_keys: tuple[str, ...],
        decision_id: str,
    ) -> RouteDecision:
        """The decision for ``selected`` (its first is the chosen model) among ``ranked``."""
        chosen = selected[0]
        return RouteDecision(  # positional, in field order (see RouteDecision.__init__)
            chosen,
            strategy.name,
            ranking.reason
            if chosen == first
            else f"{ranking.reason}; reserved budget only for {chosen}",
            ranked,
            tuple(excluded) if excluded else (),
            Fallbacks(ranked, selected),
            tuple(selected),  # a third-party strategy may have selected a list
            ctx.task,
            ctx.request,
            reserved,
            budget_keys,
            decision_id,
        )

    async def record(
        self, decision: RouteDecision, outcome: Outcome, *, failure_window_s: float = 60.0
    ) -> ModelStats:
        """Feed one call's outcome back: latency/errors, judged quality, actual cost.

        Call it for every call made on a decision (the chosen model, fallbacks,
        each consensus member); the first call settles the budget reservation.
        ``failure_window_s`` bounds failure streaks (the circuit breaker's window).
        Returns the model's statistics after this call.
        """
        stats = await self.state.observe(
            outcome.model,
            latency_ms=outcome.latency_ms if outcome.ok else None,
            error=outcome.error,
            failure_window_s=failure_window_s,
        )
        if outcome.quality is not None and decision.task is not None:
            await self.state.add_quality(decision.task, outcome.model, outcome.quality)
        if decision.budget_keys:
            held = self._open.pop(decision.decision_id, None)
            await self.state.settle(
                decision.budget_keys,
                held or 0.0,
                outcome.cost_usd,
                hold=None if held is None else decision.decision_id,
            )
        return stats

    async def score(self, task: str | None, model: str, quality: float) -> None:
        """Record a judge's score in [0, 1] for ``model``'s answer on ``task``.

        Unlike :meth:`record` this counts no call: use it when an answer that was
        already recorded is judged afterwards. Without a task nothing is stored.
        """
        if task is not None:
            await self.state.add_quality(task, model, quality)

    async def quality_estimates(self, models: Iterable[str], task: str | None) -> dict[str, float]:
        """The routing matrix's quality estimate of each catalog model for ``task`` (one read).

        Models the catalog does not list are left out.
        """
        specs = [self.catalog[m] for m in dict.fromkeys(models) if m in self.catalog]
        snapshot = await self.state.snapshot([s.id for s in specs], task=task)
        return {s.id: self.matrix.estimate(s, task, snapshot.quality.get(s.id)) for s in specs}

    async def seed_run_spending(self, run_id: str, spent_usd: float) -> None:
        """Make a resumed run's earlier spending count against its budget here too.

        Raises the run's budget key to ``spent_usd`` if the state knows less
        (another process, or a state that forgot it); never lowers it.
        """
        key = f"run:{run_id}"
        snapshot = await self.state.snapshot((), budget_keys=[key])
        known = snapshot.spent.get(key, 0.0)
        if spent_usd > known:
            await self.state.settle([key], 0.0, spent_usd - known)

    async def end_run(self, run_id: str) -> None:
        """Release a finished run's budget: its spending and holds are forgotten.

        Call it when the run is over (a workflow runner does, ok or failed); a
        resumed run re-seeds its spending (:meth:`seed_run_spending`). Until then,
        and for runs that crash before it, the state's run TTL bounds the memory.
        """
        await self.state.forget_budgets([f"run:{run_id}"])

    async def release(self, decision: RouteDecision) -> None:
        """Return a decision's reservation unused (when no call was made on it)."""
        if self._open.pop(decision.decision_id, None) is not None:
            await self.state.settle(decision.budget_keys, 0.0, 0.0, hold=decision.decision_id)

    async def hedge(self, decision: RouteDecision, model: str) -> RouteDecision | None:
        """A decision for a hedged extra call to ``model`` beside ``decision``'s own.

        The extra call's worst case is reserved against the same budgets, under
        its own hold, before it starts; record it on the returned decision.
        ``None`` when a budget refuses (then no hedge is made).
        """
        request = decision.request
        tokens = request.prompt_tokens_by_model.get(model, request.prompt_tokens)
        if tokens is None:
            tokens = self._estimate(request.prompt)
        spec = self.catalog[model]
        amount = spec.cost(tokens, min(request.max_output_tokens, spec.max_output_tokens))
        hedge_id = f"{decision.decision_id}-hedge-{model}"
        limits = self.budgets.keys(request.run_id, request.run_budget_usd)
        if limits:
            refused = await self.state.reserve(
                limits, amount, hold=hedge_id, lease_s=self.budgets.lease_s
            )
            if refused is not None:
                return None
            self._open[hedge_id] = amount
        return RouteDecision(
            chosen=model,
            strategy=decision.strategy,
            reason=f"hedge of {decision.chosen}",
            candidates=decision.candidates,
            excluded=decision.excluded,
            fallbacks=(),
            selected=(model,),
            task=decision.task,
            request=request,
            reserved_usd=amount if limits else 0.0,
            budget_keys=tuple(key for key, _ in limits),
            decision_id=hedge_id,
        )

    async def settle_cut(self, decision: RouteDecision, cost_usd: float) -> None:
        """Settle a call cut off on purpose (a hedge's loser) at what it is known to cost.

        Unlike :meth:`record` nothing is learnt about the model: it was not its fault.
        """
        held = self._open.pop(decision.decision_id, None)
        if decision.budget_keys:
            await self.state.settle(
                decision.budget_keys,
                held or 0.0,
                cost_usd,
                hold=None if held is None else decision.decision_id,
            )

    def abandon(self, decision: RouteDecision) -> None:
        """Forget a decision whose call was cut off (cancelled, deadline) before it reported.

        Its reservation is not given back: the provider may bill the call, so
        the hold counts as spent until its lease (``BudgetLimits.lease_s``) runs
        out. Only this router's record of it goes, so nothing piles up in memory.
        """
        self._open.pop(decision.decision_id, None)
