"""What the ``model`` field of a request names: a routed call or a workflow.

One read-only mapping from every accepted name to a :class:`Target`, built at
start-up (:func:`build_targets`), so resolving a name is one dictionary look-up:

- a catalog id: that model first, then the catalog's models of the same tier
  or above as fallbacks (a pinned ``cascade`` ladder under the default
  resilience policy: retries and fallbacks, never a weaker model);
- ``auto``: the default routing policy (the policies file's ``default``, else ``cheapest``);
- ``route:<name>``: a named policy of the policies file, with its ``resilience:`` block;
- ``graph:<name>``: a workflow of the graphs folder, run with the conversation as input;
- a ``kind: embeddings`` catalog id: ``POST /v1/embeddings`` only (:class:`EmbeddingsTarget`,
  one :meth:`Gateway.embed <agentmesh.models.Gateway.embed>` call); a chat request naming
  it, or an embeddings request naming any other target, is a 400.

Every routed target calls :meth:`ResilientCaller.call` / :meth:`~ResilientCaller.stream`
and every workflow :meth:`GraphRunner.run`: the server has no call path of its own.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

from langchain_core.messages import BaseMessage

from agentmesh.graph.run import GraphRunner
from agentmesh.models.catalog import Catalog
from agentmesh.models.errors import ModelError
from agentmesh.models.gateway import Gateway
from agentmesh.models.spec import Capability
from agentmesh.models.tokens import estimate_message_tokens
from agentmesh.models.types import (
    Embeddings,
    ModelRequest,
    ModelResponse,
    last_user_text,
    message_text,
)
from agentmesh.resilience import (
    Call,
    CallFailed,
    CallResult,
    ResiliencePolicy,
    ResilientCaller,
    Streamed,
    call_policy_of,
)
from agentmesh.routing import Policy, PolicyError, RouteRequest
from agentmesh.routing.policy import policy_document
from agentmesh.server.errors import CALL_STATUSES, ApiError, call_error, model_error

__all__ = [
    "EmbeddingsTarget",
    "GraphTarget",
    "NamedPolicy",
    "RoutedTarget",
    "Served",
    "Target",
    "Targets",
    "build_targets",
    "load_policies",
]

AUTO = "auto"
_DEFAULT_OUTPUT = 1024  # RouteRequest's default: the worst case reserved when no cap is sent
SERVER_NODE = "serve"
"""``RouteRequest.node`` of the server's calls (the ``node`` label of their metrics)."""


@dataclass(frozen=True, slots=True)
class NamedPolicy:
    """A routing policy and the resilience of the calls it routes."""

    routing: Policy
    resilience: ResiliencePolicy


@dataclass(frozen=True, slots=True)
class Served:
    """A request's answer and how it was served (what the ``x-agentmesh-*`` headers say).

    Attributes:
        text: The assistant message's text.
        response: The model's response (tool calls, finish reason); ``None`` for a workflow.
        model: The catalog id(s) that served it.
        route: Strategy and reason of the decision (or the workflow's name).
        cost_usd: Cost of every attempt (every step for a workflow).
        attempts: Number of model attempts.
        usage: Prompt and completion tokens billed.
        simulated: A scripted model answered.
    """

    text: str
    response: ModelResponse | None
    model: str
    route: str
    cost_usd: float
    attempts: int
    usage: tuple[int, int]
    simulated: bool

    @classmethod
    def of(cls, result: CallResult) -> Served:
        """A routed call's result."""
        spend = result.spend
        return cls(
            result.response.text,
            result.response,
            result.model,
            f"{result.decision.strategy}: {result.decision.reason}",
            spend.cost_usd,
            len(result.attempts),
            (spend.input_tokens, spend.output_tokens),
            result.response.simulated,
        )


@dataclass(frozen=True, slots=True)
class Asked:
    """One request as targets take it."""

    messages: Sequence[BaseMessage]
    request: ModelRequest
    needs: frozenset[Capability]
    attributes: Mapping[str, Any]
    budget_usd: float | None = None
    """The most the request may spend (what its key reserved); ``None``: no limit."""


class Target(ABC):
    """What a ``model`` name serves. Subclasses: :class:`RoutedTarget`, :class:`GraphTarget`.

    Attributes:
        name: The name clients send.
        owned_by: ``owned_by`` in ``GET /v1/models``.
        runs_workflow: It runs a workflow (several calls) rather than one call.
    """

    name: str
    owned_by: str = "agentmesh"
    runs_workflow: bool = False

    @abstractmethod
    async def complete(self, asked: Asked) -> Served:
        """Serve the request.

        Raises:
            ApiError: It could not be served (status and attempts in it).
        """

    async def stream(self, asked: Asked) -> AsyncIterator[str | Served]:
        """Text deltas as they come, then the :class:`Served` (default: all at once)."""
        served = await self.complete(asked)
        if served.text:
            yield served.text
        yield served

    async def embed(self, texts: Sequence[str], attributes: Mapping[str, Any]) -> Embeddings:
        """The texts' vectors (default: refused, only embeddings models embed).

        Raises:
            ApiError: 400 ``model_not_embeddings`` (the default); a failed call's status.
        """
        raise ApiError(
            400,
            f"the model {self.name!r} is not an embeddings model "
            "(GET /v1/models lists the catalog's entries; embeddings need kind: embeddings)",
            code="model_not_embeddings",
            param="model",
        )


class RoutedTarget(Target):
    """A routed, resilient call under one routing and resilience policy."""

    def __init__(self, name: str, caller: ResilientCaller, policy: NamedPolicy, owned_by: str):
        self.name = name
        self.owned_by = owned_by
        self._caller = caller
        self._policy = policy

    def _call(self, asked: Asked) -> Call:
        request = asked.request
        route = RouteRequest(
            node=SERVER_NODE,
            role="executor",
            prompt=last_user_text(asked.messages),
            prompt_tokens=estimate_message_tokens(asked.messages),
            max_output_tokens=request.max_tokens or _DEFAULT_OUTPUT,
            capabilities=asked.needs,
            remaining_budget_usd=asked.budget_usd,
        )
        return Call(
            route,
            request,
            routing=self._policy.routing,
            resilience=self._policy.resilience,
            attributes=asked.attributes,
        )

    async def complete(self, asked: Asked) -> Served:
        """One :meth:`ResilientCaller.call` (a failed call: its status and attempts)."""
        try:
            return Served.of(await self._caller.call(self._call(asked)))
        except CallFailed as failure:
            raise call_error(failure) from None

    async def stream(self, asked: Asked) -> AsyncIterator[str | Served]:
        """One :meth:`ResilientCaller.stream`, closed when the consumer stops reading."""
        try:
            stream = cast(  # an async generator: closed with the consumer
                "AsyncGenerator[Streamed, None]", self._caller.stream(self._call(asked))
            )
            async with aclosing(stream) as items:
                async for item in items:
                    yield item if isinstance(item, str) else Served.of(item)
        except CallFailed as failure:
            raise call_error(failure) from None


class EmbeddingsTarget(Target):
    """A ``kind: embeddings`` catalog model: one :meth:`Gateway.embed` call, never a chat."""

    def __init__(self, name: str, gateway: Gateway, owned_by: str) -> None:
        self.name = name
        self.owned_by = owned_by
        self._gateway = gateway

    async def complete(self, asked: Asked) -> Served:
        """Refused: an embeddings model does not chat.

        Raises:
            ApiError: 400 ``model_not_chat``.
        """
        raise ApiError(
            400,
            f"the model {self.name!r} is an embeddings model: call POST /v1/embeddings",
            code="model_not_chat",
            param="model",
        )

    async def embed(self, texts: Sequence[str], attributes: Mapping[str, Any]) -> Embeddings:
        """One :meth:`Gateway.embed` call (a failure: the status of its error kind)."""
        try:
            return await self._gateway.embed(self.name, texts, attributes=attributes)
        except ModelError as error:
            raise model_error(error) from None


def conversation_text(messages: Sequence[BaseMessage]) -> str:
    """A workflow's input: the last user message alone, or the whole conversation as lines."""
    if len(messages) == 1:
        return message_text(messages[0])
    if sum(1 for m in messages if m.type == "human") == 1 and messages[-1].type == "human":
        system = [message_text(m) for m in messages if m.type == "system"]
        return "\n\n".join([*system, last_user_text(messages)])
    return "\n".join(f"{m.type}: {message_text(m)}" for m in messages)


class GraphTarget(Target):
    """A workflow run with the conversation as its input; its output is the answer."""

    owned_by = "agentmesh-graph"
    runs_workflow = True

    def __init__(self, name: str, runner: GraphRunner) -> None:
        self.name = name
        self._runner = runner

    async def complete(self, asked: Asked) -> Served:
        """One :meth:`GraphRunner.run` (a failed run: the status of its error type)."""
        result = await self._runner.run(
            conversation_text(asked.messages), budget_usd=asked.budget_usd
        )
        if result.status != "ok":
            error = dict(result.error or {})
            kind = str(error.get("type") or "workflow_failed")
            found = CALL_STATUSES.get(kind)
            status, type_ = (found.status, found.type) if found else (502, "workflow_error")
            where = f" at node {error['node']!r}" if error.get("node") else ""
            raise ApiError(
                status,
                f"workflow {self._runner.graph.name!r} failed{where}: {kind}: "
                f"{error.get('message', '')}",
                type_,
                kind,
                cost_usd=result.cost_usd,
            )
        models = []
        attempts = 0
        for step in result.steps:
            attempts += len(step.get("attempts") or ())
            model = step.get("model")
            if model and model not in models:
                models.append(str(model))
        return Served(
            result.output or "",
            None,
            ",".join(models),
            f"graph {self._runner.graph.name}: {len(result.steps)} steps, run {result.run_id}",
            result.cost_usd,
            attempts,
            (int(result.tokens.get("input", 0)), int(result.tokens.get("output", 0))),
            result.simulated,
        )


def load_policies(path: str | Path) -> tuple[str | None, dict[str, NamedPolicy]]:
    """The named policies of a policies file, and which one ``auto`` uses.

    The file::

        default: balanced            # optional: the policy of model "auto"
        policies:
          cheap: {strategy: cheapest}
          balanced: {strategy: quality_per_cost, resilience: {retry: {max_attempts: 2}}}

    Raises:
        PolicyError: Unreadable, invalid YAML, or an invalid policy (naming file and field).
    """
    source = str(path)
    data = policy_document(path, "policies")
    if not isinstance(data, dict) or not isinstance(data.get("policies"), dict):
        raise PolicyError(f"{source}: expected a mapping with policies: {{name: policy, ...}}")
    unknown = set(data) - {"default", "policies"}
    if unknown:
        raise PolicyError(f"{source}: unknown keys {sorted(unknown)} (expected default, policies)")
    named = {
        str(k): NamedPolicy(*call_policy_of(v, f"{source}: policies.{k}"))
        for k, v in data["policies"].items()
    }
    default = data.get("default")
    if default is not None and default not in named:
        raise PolicyError(f"{source}: default: {default!r} is not one of {sorted(named)}")
    return default, named


def _pinned(catalog: Catalog, model: str) -> Policy:
    """``model`` first, then the models of its tier or above (cheapest first) as fallbacks."""
    spec = catalog[model]
    stronger = sorted(
        (s for s in catalog.chat_specs if s.id != model and s.tier >= spec.tier),
        key=lambda s: (s.tier, s.pricing.output if s.pricing else 0.0, s.id),
    )
    return Policy(strategy="cascade", params={"ladder": [model, *(s.id for s in stronger)]})


class Targets:
    """Every name the ``model`` field accepts, resolved by one look-up."""

    def __init__(self, targets: Mapping[str, Target]) -> None:
        self._targets = MappingProxyType(dict(targets))

    def __iter__(self) -> Any:
        return iter(self._targets.values())

    def resolve(self, name: str) -> Target:
        """The target of ``name``.

        Raises:
            ApiError: 404 ``model_not_found``, listing a few accepted names.
        """
        found = self._targets.get(name)
        if found is None:
            known = ", ".join(list(self._targets)[:12])
            raise ApiError(
                404,
                f"the model {name!r} does not exist (GET /v1/models lists them: {known}, ...)",
                code="model_not_found",
                param="model",
            )
        return found


def build_targets(
    caller: ResilientCaller,
    *,
    policies: Mapping[str, NamedPolicy] | None = None,
    default: str | None = None,
    graphs: Mapping[str, GraphRunner] | None = None,
) -> Targets:
    """The targets of a catalog (the caller's), named policies and workflows."""
    policies = dict(policies or {})
    base = policies[default] if default else NamedPolicy(caller.router.policy, caller.resilience)
    catalog = caller.router.catalog
    found: dict[str, Target] = {
        spec.id: RoutedTarget(
            spec.id, caller, NamedPolicy(_pinned(catalog, spec.id), base.resilience), spec.provider
        )
        for spec in catalog.chat_specs
    }
    for spec in catalog.embedding_specs:
        found[spec.id] = EmbeddingsTarget(spec.id, caller.gateway, spec.provider)
    found[AUTO] = RoutedTarget(AUTO, caller, base, "agentmesh")
    for name, policy in policies.items():
        found[f"route:{name}"] = RoutedTarget(f"route:{name}", caller, policy, "agentmesh-route")
    for name, runner in (graphs or {}).items():
        found[f"graph:{name}"] = GraphTarget(f"graph:{name}", runner)
    return Targets(found)
