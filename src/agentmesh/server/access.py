"""A request's key: authentication, model permission, rate and budget (the server's gate).

Order, each refusal with its status: no or unknown key 401, revoked or
expired 401, over its rpm 429 (``Retry-After``), model not allowed 403, budget
left (not spent, not held by requests in flight) smaller than the request's
cheapest worst case 429. A routed call holds its worst case on the priciest
catalog model the key may reach (the conversation's estimated prompt plus
``max_tokens``, 1024 when unset, the router's own default for reservations),
or what is left when that is less; a workflow holds what is left. The hold
stays in the key store until the request settles with its actual cost (see
:mod:`agentmesh.server.keys`), and it is the call's ``remaining_budget_usd``
(a workflow's run budget), so the router never picks a call that could cost
more than was held: a key overshoots by at most the estimate's error on one
in-flight call. Near the end of a budget, concurrent requests of one key are
refused while the rest is held by one in flight.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from agentmesh.models.catalog import Catalog
from agentmesh.models.spec import ModelSpec
from agentmesh.models.tokens import estimate_message_tokens, estimate_tokens
from agentmesh.server.errors import ApiError
from agentmesh.server.keys import PREFIX, KeyRecord, KeyStore
from agentmesh.server.targets import Asked, Target

__all__ = [
    "DEFAULT_OUTPUT_TOKENS",
    "Grant",
    "authenticate",
    "generated_cost",
    "reserve",
    "reserve_cost",
    "worst_cases",
]

DEFAULT_OUTPUT_TOKENS = 1024


@dataclass(frozen=True, slots=True)
class Grant:
    """What a key was granted for one request.

    Attributes:
        record: The key.
        hold: The key store's hold to settle (``None``: nothing was reserved).
        reserved_usd: The worst case held (``None``: the key has no budget).
    """

    record: KeyRecord
    hold: str | None
    reserved_usd: float | None


def _bearer(headers: Mapping[str, str]) -> str | None:
    found = headers.get("authorization", "")
    scheme, _, token = found.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key") or None


async def authenticate(keys: KeyStore, headers: Mapping[str, str]) -> KeyRecord:
    """The request's key, counted against its rpm.

    Raises:
        ApiError: 401 missing, unknown, revoked or expired; 429 over its rpm.
    """
    key = _bearer(headers)
    if key is None:
        raise ApiError(
            401,
            "this server needs a key: send Authorization: Bearer am-... "
            "(agentmesh keys create prints one)",
            "authentication_error",
            "missing_api_key",
        )
    record = await keys.lookup(key) if key.startswith(PREFIX) else None
    if record is None:
        raise ApiError(401, "the key is not valid", "authentication_error", "invalid_api_key")
    why = record.usable(keys.now())
    if why is not None:
        raise ApiError(401, why, "authentication_error", "invalid_api_key")
    if record.spec.rpm is not None:
        wait = await keys.admit(record.id, record.spec.rpm)
        if wait is not None:
            raise ApiError(
                429,
                f"key {record.id} is over its {record.spec.rpm} requests per minute",
                "rate_limit_error",
                "rate_limited",
                retry_after=wait,
            )
    return record


def _reachable(catalog: Catalog, record: KeyRecord) -> list[ModelSpec]:
    allowed = [s for s in catalog.chat_specs if record.allows(s.id)]
    return allowed or list(catalog.chat_specs)  # a key allowing only graphs or routes: any model


def worst_cases(catalog: Catalog, record: KeyRecord, asked: Asked) -> tuple[float, float]:
    """Worst-case costs of a routed call of ``asked``: the cheapest and priciest reachable model."""
    prompt = estimate_message_tokens(asked.messages)
    output = asked.request.max_tokens or DEFAULT_OUTPUT_TOKENS
    costs = [s.cost(prompt, output) for s in _reachable(catalog, record)]
    return min(costs), max(costs)


def generated_cost(catalog: Catalog, record: KeyRecord, asked: Asked, text: str) -> float:
    """An upper estimate of what a stream cut off after ``text`` cost (the priciest model)."""
    prompt = estimate_message_tokens(asked.messages)
    output = estimate_tokens(text)
    return max(s.cost(prompt, output) for s in _reachable(catalog, record))


def _allowed(record: KeyRecord, name: str) -> None:
    if not record.allows(name):
        raise ApiError(
            403,
            f"key {record.id} may not use model {name!r} "
            f"(allowed: {', '.join(record.spec.models)})",
            "permission_error",
            "model_not_allowed",
            "model",
        )


async def _hold(keys: KeyStore, record: KeyRecord, cheapest: float, needed: float) -> Grant:
    """Hold ``needed`` USD of the key's budget (nothing to limit without one).

    Raises:
        ApiError: 429 when less than ``cheapest`` (or nothing) is left.
    """
    if record.spec.budget_usd is None:  # nothing to limit; the hold records the spending
        hold, _ = await keys.reserve(record.id, 0.0)
        return Grant(record, hold, None)
    hold = None
    remaining = record.spec.budget_usd - record.spent_usd - record.held_usd
    if needed > 0 and needed >= cheapest:
        hold, remaining = await keys.reserve(record.id, needed)
    if hold is None:
        raise ApiError(
            429,
            f"key {record.id} budget exhausted: ${max(remaining, 0):.6f} left of "
            f"${record.spec.budget_usd:.6f} (not spent or held by requests in flight), "
            f"this request may cost ${max(cheapest, 0):.6f}",
            "insufficient_quota",
            "budget_exceeded",
        )
    return Grant(record, hold, needed)


def _left(record: KeyRecord) -> float:
    budget = record.spec.budget_usd
    return 0.0 if budget is None else budget - record.spent_usd - record.held_usd


async def reserve(
    keys: KeyStore, record: KeyRecord, target: Target, asked: Asked, catalog: Catalog
) -> Grant:
    """Check the key may call ``target`` and hold the request's worst case against its budget.

    A workflow holds the key's whole remaining budget (its run is bounded by it).

    Raises:
        ApiError: 403 model not allowed; 429 budget exhausted.
    """
    _allowed(record, target.name)
    left = _left(record)
    cheapest, priciest = worst_cases(catalog, record, asked)
    needed = left if target.runs_workflow else min(left, priciest)
    return await _hold(keys, record, cheapest, needed)


async def reserve_cost(keys: KeyStore, record: KeyRecord, name: str, worst_usd: float) -> Grant:
    """Check the key may call model ``name`` and hold ``worst_usd`` (an embeddings call).

    Raises:
        ApiError: 403 model not allowed; 429 budget exhausted.
    """
    _allowed(record, name)
    left = _left(record)
    if record.spec.budget_usd is not None and worst_usd <= 0 < left:  # free: nothing to hold
        hold, _ = await keys.reserve(record.id, 0.0)
        return Grant(record, hold, None)
    return await _hold(keys, record, worst_usd, min(left, worst_usd))
