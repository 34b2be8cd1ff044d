"""The routing service: every node picks its model through one shared `Router`.

Policies (filters' bounds + one strategy) say what a node needs; the router
answers with an explainable :class:`RouteDecision` and learns from each
recorded :class:`Outcome` through a shared :class:`RoutingState`.
"""

from agentmesh.routing.classify import (
    Classification,
    Classifier,
    RuleClassifier,
)
from agentmesh.routing.constraints import Constraints
from agentmesh.routing.context import RouteContext
from agentmesh.routing.filters import DEFAULT_FILTERS, Filter
from agentmesh.routing.matrix import MatrixError, RoutingMatrix
from agentmesh.routing.policy import (
    BudgetLimits,
    Policy,
    PolicyError,
    load_policy,
    read_policy_file,
)
from agentmesh.routing.redis_state import RedisRoutingState
from agentmesh.routing.router import Router
from agentmesh.routing.state import (
    BreakerState,
    InMemoryRoutingState,
    ModelStats,
    QualityCell,
    RoutingState,
    Snapshot,
)
from agentmesh.routing.stores import STATE_STORES, StateError, open_state
from agentmesh.routing.strategies import STRATEGIES, LearnedModel, Ranking, Strategy
from agentmesh.routing.types import (
    BudgetExceeded,
    Candidate,
    Exclusion,
    NoRoute,
    Outcome,
    RouteDecision,
    RouteRequest,
    RoutingError,
)

__all__ = [
    "DEFAULT_FILTERS",
    "STRATEGIES",
    "BreakerState",
    "BudgetExceeded",
    "BudgetLimits",
    "Candidate",
    "Classification",
    "Classifier",
    "Constraints",
    "Exclusion",
    "Filter",
    "InMemoryRoutingState",
    "LearnedModel",
    "MatrixError",
    "ModelStats",
    "NoRoute",
    "Outcome",
    "Policy",
    "PolicyError",
    "QualityCell",
    "Ranking",
    "RouteContext",
    "RouteDecision",
    "RouteRequest",
    "Router",
    "RoutingError",
    "RoutingMatrix",
    "RoutingState",
    "Snapshot",
    "Strategy",
    "RuleClassifier",
    "load_policy",
    "read_policy_file",
    "RedisRoutingState",
    "STATE_STORES",
    "StateError",
    "open_state",
]
