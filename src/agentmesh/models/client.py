"""The `ModelClient` contract every provider adapter implements.

One required method, :meth:`ModelClient.invoke`. :meth:`ModelClient.stream`
has a default (one delta with the whole text, then the response) that
streaming adapters override; :meth:`ModelClient.embed` (entries of ``kind:
embeddings``) refuses by default and is overridden by the adapters that serve
embeddings (``openai``, ``llamacpp``, ``scripted``); :meth:`ModelClient.aclose`
releases resources.
Adapters are built from a :class:`ModelSpec` and a :class:`ClientContext` by a
:data:`ClientFactory`; the gateway keeps the registry of factories.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, TypeVar

import httpx

from agentmesh.models.errors import AuthError, BadRequest, MalformedResponse, ModelError
from agentmesh.models.spec import ModelSpec
from agentmesh.models.types import (
    Embeddings,
    FinishReason,
    ModelRequest,
    ModelResponse,
    StreamEvent,
    ToolCall,
    Usage,
)

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from agentmesh.models._http import LoopClients

__all__ = [
    "MAX_REPORTED_TOKENS",
    "ClientContext",
    "ClientFactory",
    "ModelClient",
    "Stopwatch",
    "token_count",
]

MAX_REPORTED_TOKENS = 100_000_000
"""Largest token count one call may report: more is an absurd answer, not a bill."""


def token_count(value: object, field: str) -> int | str:
    """``value`` if it is a plausible token count, else why not (for a malformed answer).

    A count is an ``int`` (not a bool, not a numeric string) in
    ``[0, MAX_REPORTED_TOKENS]``.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        return f"usage {field} is not an integer (got {value!r:.40})"
    if not 0 <= value <= MAX_REPORTED_TOKENS:
        return f"usage {field} is out of range (got {value})"
    return value


E = TypeVar("E", bound=ModelError)


@dataclass(frozen=True, slots=True)
class ClientContext:
    """What adapters may share and read when they are built.

    Attributes:
        http: The pooled ``httpx.AsyncClient`` all HTTP adapters share: one
            injected client, or the gateway's :class:`~agentmesh.models._http.LoopClients`
            (one client per event loop, closed with its loop).
        environ: Where API keys and hosts are read from (``os.environ`` by default).
        chat_models: LangChain chat models handed over in Python, by catalog id;
            the ``langchain`` adapter uses these before importing ``target``.
    """

    http: httpx.AsyncClient | LoopClients
    environ: Mapping[str, str]
    chat_models: Mapping[str, BaseChatModel] = field(default_factory=dict)

    def api_key(self, spec: ModelSpec, *, required: bool = False) -> str | None:
        """The API key named by ``spec.api_key_env``; ``None`` when the spec names none.

        Raises:
            AuthError: The spec names a variable that is unset or empty, or
                names none although ``required``; the message names the
                variable, never a value.
        """
        if spec.api_key_env is None:
            if required:
                raise AuthError(
                    "no api_key_env is set in the catalog for this model",
                    model_id=spec.id,
                    provider=spec.provider.value,
                )
            return None
        key = self.environ.get(spec.api_key_env) or None
        if key is None:
            raise AuthError(
                f"environment variable {spec.api_key_env} is not set",
                model_id=spec.id,
                provider=spec.provider.value,
            )
        return key


class ModelClient(ABC):
    """One model behind one provider, called asynchronously.

    Attributes:
        spec: The catalog entry this client serves.
    """

    counts_tokens: ClassVar[bool] = False
    """Whether :meth:`count_prompt_tokens` counts with the model's own tokenizer."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec

    def count_prompt_tokens(self, request: ModelRequest) -> int | None:
        """The prompt tokens of ``request`` as this model bills them, when it can tell.

        Adapters whose tokenizer is at hand (``llamacpp``: the GGUF's own) count
        exactly; the default is ``None``: routing then uses the estimate.
        """
        return None

    @abstractmethod
    async def invoke(self, request: ModelRequest) -> ModelResponse:
        """Run one call and return the whole response.

        Raises:
            ModelError: A subclass naming what went wrong (never a provider's own type).
        """

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        """Run one call, yielding text deltas, then one event with the response.

        The default implementation does not stream: it yields the whole text at
        once. Adapters for providers that stream override it.
        """
        response = await self.invoke(request)
        if response.text:
            yield StreamEvent(delta=response.text)
        yield StreamEvent(response=response)

    async def embed(self, texts: Sequence[str]) -> Embeddings:
        """One vector per text, in order (build the answer with :meth:`embedded`).

        Raises:
            BadRequest: This provider serves no embeddings (the default).
            ModelError: The classified failure of an adapter that does.
        """
        raise self.error(BadRequest, f"provider {self.spec.provider.value!r} serves no embeddings")

    def embedded(
        self,
        vectors: Sequence[Sequence[float]],
        *,
        texts: int,
        input_tokens: int,
        watch: Stopwatch,
        served_model: str | None = None,
        estimated: bool = False,
    ) -> Embeddings:
        """An embeddings answer of this client's model, checked, costed from the catalog price.

        Raises:
            MalformedResponse: Not one vector per text, vectors of different
                lengths, empty or non-finite vectors, or an implausible token count.
        """
        if len(vectors) != texts:
            raise self.error(MalformedResponse, f"{len(vectors)} embeddings for {texts} inputs")
        try:
            rows = tuple(tuple(float(v) for v in row) for row in vectors)
        except (TypeError, ValueError) as exc:
            raise self.error(MalformedResponse, f"an embedding is not numbers: {exc}") from None
        sizes = {len(row) for row in rows}
        if len(sizes) > 1 or 0 in sizes:
            raise self.error(MalformedResponse, f"embeddings of sizes {sorted(sizes)}")
        if not all(math.isfinite(v) for row in rows for v in row):
            raise self.error(MalformedResponse, "an embedding holds a non-finite number")
        problem = token_count(input_tokens, "input")
        if isinstance(problem, str):
            raise self.error(MalformedResponse, problem)
        latency_ms, _ = watch.read()
        return Embeddings(
            model_id=self.spec.id,
            provider=self.spec.provider.value,
            served_model=served_model or self.spec.model,
            vectors=rows,
            usage=Usage(input_tokens, 0, estimated),
            latency_ms=latency_ms,
            cost_usd=self.spec.cost(input_tokens, 0),
            simulated=self.spec.simulated,
        )

    async def aclose(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Release what the client holds (loaded weights, private connections)."""

    def respond(
        self,
        *,
        text: str,
        usage: Usage,
        finish_reason: FinishReason,
        watch: Stopwatch,
        served_model: str | None = None,
        tool_calls: tuple[ToolCall, ...] = (),
        reasoning: str = "",
    ) -> ModelResponse:
        """A response of this client's model: timings read now, cost from the catalog price.

        Raises:
            MalformedResponse: The usage is not two plausible token counts,
                the text is not a string, or the cost is not a finite amount
                >= 0 (so a provider's answer never books a negative or absurd
                cost; the failure retries or falls back like any other).
        """
        for value, name in ((usage.input_tokens, "input"), (usage.output_tokens, "output")):
            problem = token_count(value, name)
            if isinstance(problem, str):
                raise self.error(MalformedResponse, problem)
        if not isinstance(text, str):
            raise self.error(MalformedResponse, f"text is not a string (got {type(text).__name__})")
        cost = self.spec.cost(usage.input_tokens, usage.output_tokens)
        if not (math.isfinite(cost) and cost >= 0):
            raise self.error(MalformedResponse, f"the answer would cost {cost} USD")
        latency_ms, ttft_ms = watch.read()
        return ModelResponse(
            model_id=self.spec.id,
            provider=self.spec.provider.value,
            served_model=served_model or self.spec.model,
            text=text,
            tool_calls=tool_calls,
            usage=usage,
            finish_reason=finish_reason,
            latency_ms=latency_ms,
            ttft_ms=ttft_ms,
            cost_usd=cost,
            simulated=self.spec.simulated,
            reasoning=reasoning,
        )

    def error(self, error_type: type[E], message: str, *, status_code: int | None = None) -> E:
        """An error of ``error_type`` attributed to this client's model."""
        return error_type(
            message,
            model_id=self.spec.id,
            provider=self.spec.provider.value,
            status_code=status_code,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.spec.id!r}, model={self.spec.model!r})"


ClientFactory = Callable[[ModelSpec, ClientContext], ModelClient]
"""Builds the client for one spec; registered per provider in the gateway."""


class Stopwatch:
    """Measures a call's latency and time to first token, in milliseconds."""

    __slots__ = ("_first", "_start")

    def __init__(self) -> None:
        self._start = time.perf_counter()
        self._first: float | None = None

    def mark_first(self) -> None:
        """Record the first token's arrival (only the first call counts)."""
        if self._first is None:
            self._first = time.perf_counter()

    def read(self) -> tuple[float, float]:
        """``(latency_ms, ttft_ms)`` from one clock reading.

        Without a marked first token, the time to first token is the whole
        latency (the answer arrived all at once), so it never exceeds it.
        """
        now = time.perf_counter()
        first = now if self._first is None else self._first
        return (now - self._start) * 1000.0, (first - self._start) * 1000.0
