"""Ranking strategies, and the one registry that maps policy names to them."""

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from agentmesh.routing.strategies.adaptive import (
    CascadeStrategy,
    ComplexityStrategy,
    ConsensusStrategy,
    LearnedModel,
    LearnedStrategy,
    TaskStrategy,
)
from agentmesh.routing.strategies.base import NoParams, Ranking, Strategy, StrategyParams, ordered
from agentmesh.routing.strategies.basic import (
    BudgetStrategy,
    CheapestStrategy,
    LeastLatencyStrategy,
    QualityPerCostStrategy,
    RoundRobinStrategy,
)

__all__ = [
    "STRATEGIES",
    "BudgetStrategy",
    "CascadeStrategy",
    "CheapestStrategy",
    "ComplexityStrategy",
    "ConsensusStrategy",
    "LeastLatencyStrategy",
    "LearnedModel",
    "LearnedStrategy",
    "NoParams",
    "QualityPerCostStrategy",
    "Ranking",
    "RoundRobinStrategy",
    "Strategy",
    "StrategyParams",
    "TaskStrategy",
    "build_strategy",
    "ordered",
]

STRATEGIES: Mapping[str, type[Strategy[Any]]] = MappingProxyType(
    {
        cls.name: cls
        for cls in (
            RoundRobinStrategy,
            LeastLatencyStrategy,
            CheapestStrategy,
            QualityPerCostStrategy,
            TaskStrategy,
            ComplexityStrategy,
            BudgetStrategy,
            CascadeStrategy,
            ConsensusStrategy,
            LearnedStrategy,
        )
    }
)
"""The one place a policy's ``strategy:`` name is resolved to a class."""


def build_strategy(name: str, params: Mapping[str, Any]) -> Strategy[Any]:
    """Instantiate the strategy registered as ``name`` with validated ``params``.

    Raises:
        KeyError: No strategy has that name.
        pydantic.ValidationError: The parameters are invalid.
    """
    cls = STRATEGIES[name]
    return cls(cls.Params.model_validate(dict(params)))
