"""Resilience: runs survive provider failures and bad answers.

Retries with full-jitter backoff and a retry budget, per-call and per-node
deadlines, a circuit breaker per model kept in the shared routing state,
failure-recovery escalation along the decision's fallbacks, step-specific
escalation driven by a check, and graceful degradation; every attempt recorded.
"""

from agentmesh.resilience.breaker import Admission, BreakerEvent, CircuitBreaker
from agentmesh.resilience.cache import (
    CachedAnswer,
    CacheError,
    CacheRule,
    MemoryCache,
    RedisCache,
    ResponseCache,
    maybe_cache,
    open_cache,
)
from agentmesh.resilience.call import Attempt, Call, CallFailed, CallResult, RequestBuilder, Spend
from agentmesh.resilience.caller import ResilientCaller, Streamed
from agentmesh.resilience.classifier import LLMClassifier
from agentmesh.resilience.escalation import (
    Check,
    EscalationResult,
    Round,
    Verdict,
    call_until,
    with_feedback,
)
from agentmesh.resilience.health import HealthProber
from agentmesh.resilience.limiter import (
    LimiterError,
    Permit,
    RateLimiter,
    maybe_limiter,
    open_limiter,
)
from agentmesh.resilience.live import LiveCatalog, Reload
from agentmesh.resilience.policy import (
    DEFAULT_ACTIONS,
    Action,
    BreakerPolicy,
    DegradePolicy,
    ResiliencePolicy,
    RetryBudgetPolicy,
    RetryPolicy,
    call_policy_of,
    load_call_policy,
)
from agentmesh.resilience.retry import RetryBudget, backoff_delay

__all__ = [
    "DEFAULT_ACTIONS",
    "Action",
    "Admission",
    "Attempt",
    "BreakerEvent",
    "Call",
    "BreakerPolicy",
    "CacheError",
    "CacheRule",
    "CachedAnswer",
    "MemoryCache",
    "RedisCache",
    "ResponseCache",
    "maybe_cache",
    "open_cache",
    "HealthProber",
    "LimiterError",
    "LiveCatalog",
    "Reload",
    "Permit",
    "RateLimiter",
    "maybe_limiter",
    "open_limiter",
    "CallFailed",
    "CallResult",
    "Check",
    "CircuitBreaker",
    "DegradePolicy",
    "RequestBuilder",
    "EscalationResult",
    "LLMClassifier",
    "ResiliencePolicy",
    "ResilientCaller",
    "RetryBudget",
    "RetryBudgetPolicy",
    "RetryPolicy",
    "Round",
    "Spend",
    "Streamed",
    "Verdict",
    "backoff_delay",
    "call_policy_of",
    "load_call_policy",
    "call_until",
    "with_feedback",
]
