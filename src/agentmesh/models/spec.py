"""`ModelSpec`: what the catalog knows about one model.

Specs are frozen pydantic models; they hold no secrets (only the *name* of the
environment variable that holds a key) and no clients. Graphs and routing
policies refer to models by ``id`` only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agentmesh._redact import redact_headers, redact_url
from agentmesh.models.controls import (
    CacheSetting,
    HealthProbe,
    RateLimits,
    RedactSetting,
    SemanticCacheSetting,
    check_redact,
)

__all__ = [
    "Capability",
    "FailureKind",
    "ModelKind",
    "ModelSpec",
    "Pricing",
    "Provider",
    "ReplyRule",
    "ScriptedBehavior",
    "ScriptedToolCall",
    "expand_env",
]


class Provider(StrEnum):
    """Which adapter serves a model."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    LANGCHAIN = "langchain"
    LLAMACPP = "llamacpp"
    SCRIPTED = "scripted"


class Capability(StrEnum):
    """What a model can do beyond plain text in, text out."""

    JSON = "json"
    TOOLS = "tools"
    STREAMING = "streaming"
    VISION = "vision"


FailureKind = Literal[
    "rate_limit",
    "timeout",
    "server_error",
    "malformed",
    "content_filter",
    "auth",
    "bad_request",
    "context_overflow",
]


ModelKind = Literal["chat", "embeddings"]
"""What a catalog entry serves: chat completions, or embeddings (never routed to for chat)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Pricing(_Frozen):
    """Price in USD per one million tokens."""

    input: Annotated[float, Field(ge=0)] = 0.0
    output: Annotated[float, Field(ge=0)] = 0.0

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """USD cost of a call with these token counts."""
        return (input_tokens * self.input + output_tokens * self.output) / 1_000_000


class ScriptedToolCall(_Frozen):
    """One tool call a scripted reply makes: the tool's name and its arguments."""

    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ReplyRule(_Frozen):
    """A scripted reply used when ``match`` (a regex) is found in the conversation's user messages.

    With ``tool`` set (or ``calls``, several tool calls in one turn), a request
    offering those tools is answered by calls to them; once their results are
    in the conversation, ``reply`` answers, with ``{tool_result}`` replaced by
    them (the trailing tool results, joined by ``"; "``). With ``after`` set the
    rule applies only right after tool results matching that regex: rules with
    ``after`` placed before a rule without it script an agent's later rounds.
    """

    match: str
    reply: str = ""
    tool: str | None = None
    arguments: dict[str, Any] = Field(default_factory=dict)
    calls: tuple[ScriptedToolCall, ...] = ()
    after: str | None = None

    @field_validator("match", "after")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regex {value!r}: {exc}") from exc
        return value

    @property
    def tool_calls(self) -> tuple[ScriptedToolCall, ...]:
        """Every tool call of the rule (``tool`` first, then ``calls``)."""
        first = (ScriptedToolCall(tool=self.tool, arguments=self.arguments),) if self.tool else ()
        return (*first, *self.calls)


class ScriptedBehavior(_Frozen):
    """How a ``scripted`` model answers. Deterministic for a given ``seed``.

    ``reply`` and each rule's ``reply`` may contain ``{prompt}`` (the last user
    message) and ``{model}`` (the catalog id).
    """

    reply: str = "Simulated reply from {model}."
    replies: tuple[ReplyRule, ...] = ()
    latency_ms: Annotated[float, Field(ge=0)] = 0.0
    ms_per_output_token: Annotated[float, Field(ge=0)] = 0.0
    fail_rate: Annotated[float, Field(ge=0, le=1)] = 0.0
    fail_with: FailureKind = "server_error"
    fail_first: Annotated[int, Field(ge=0)] = 0
    down: bool = False
    retry_after: Annotated[float | None, Field(ge=0)] = None
    seed: int = 0


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: str, environ: dict[str, str] | None = None) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}`` references in ``value``.

    Raises:
        KeyError: A referenced variable is unset and has no default.
    """
    env = os.environ if environ is None else environ

    def _sub(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = env.get(name)
        if found:
            return found
        if default is not None:
            return default
        raise KeyError(name)

    return _ENV_REF.sub(_sub, value)


class ModelSpec(_Frozen):
    """One model in a catalog.

    Attributes:
        id: The name everything else uses (graphs, policies, traces).
        provider: Which adapter serves it.
        kind: ``chat`` (the default) or ``embeddings``: an embeddings entry is
            called only through ``Gateway.embed`` (the semantic cache,
            ``POST /v1/embeddings``, embedding routers) and the router never
            picks it for a chat call.
        model: The provider's wire name for the model.
        base_url: Endpoint for HTTP providers; may use ``${VAR:-default}``.
            Required for ``openai`` (there is no safe default among the many
            OpenAI-compatible servers).
        api_key_env: Name of the environment variable holding the API key.
        family: Model family (``gpt``, ``claude``, ``gemma``...) for prompt variants.
        tier: 1 is the cheapest/weakest; larger is stronger.
        pricing: USD per million input/output tokens.
        context_window: Total tokens (prompt + output) the model accepts.
        max_output_tokens: Largest completion the model produces (default 4096,
            or the context window when that is smaller; only an explicit value
            larger than the window is an error).
        capabilities: What it can do beyond text.
        tags: Free labels for allow/deny routing filters.
        quality: Prior quality per task label in [0, 1]; ``default`` for any task.
        imitates: For simulated models, which real model the entry stands for.
        description: One line for humans.
        headers: Extra HTTP headers (no secrets: use ``api_key_env``).
        timeout_s: Default total time limit for one call.
        prompt_style: ``chat`` for instruction-tuned models; ``completion`` for
            base models that need a plain transcript prompt.
        model_path: ``llamacpp`` only: path to a GGUF file; unset means the
            bundled Gemma 3 270M from the ``local`` extra.
        n_ctx: ``llamacpp`` only: context size to load (defaults to ``context_window``).
        n_threads: ``llamacpp`` only: CPU threads.
        target: ``langchain`` only: ``"module:ClassName"`` of a ``BaseChatModel``.
        params: ``langchain`` only: keyword arguments for that class.
        behavior: ``scripted`` only: how the simulated model answers.
        cache: Response caching of this model's answers (``None``: the
            caller's default; see :data:`~agentmesh.models.controls.CacheSetting`).
        ttl: Seconds a cached answer of this model lives.
        limits: Client-side rate limits (rpm, tpm, concurrency).
        redact: Redact what is sent to this model when it is tagged ``external``.
        health: Periodic health probes feeding its circuit breaker.
        semantic_cache: The opt-in semantic cache of this model's answers
            (a policy's setting wins over the entry's).
    """

    id: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")]
    provider: Provider
    kind: ModelKind = "chat"
    model: Annotated[str, Field(min_length=1)]
    base_url: str | None = None
    api_key_env: str | None = None
    family: str = "unknown"
    tier: Annotated[int, Field(ge=1, le=10)] = 1
    pricing: Pricing = Pricing()
    context_window: Annotated[int, Field(gt=0)] = 8192
    max_output_tokens: Annotated[int, Field(gt=0)] = 4096
    capabilities: frozenset[Capability] = frozenset()
    tags: frozenset[str] = frozenset()
    quality: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=dict)
    imitates: str | None = None
    description: str = ""
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: Annotated[float, Field(gt=0)] = 120.0
    prompt_style: Literal["chat", "completion"] = "chat"
    model_path: str | None = None
    n_ctx: Annotated[int | None, Field(gt=0)] = None
    n_threads: Annotated[int | None, Field(gt=0)] = None
    target: str | None = None
    params: dict[str, object] = Field(default_factory=dict)
    behavior: ScriptedBehavior | None = None
    cache: CacheSetting | None = None
    ttl: Annotated[float | None, Field(gt=0)] = None
    limits: RateLimits | None = None
    redact: RedactSetting | None = None
    health: HealthProbe | None = None
    semantic_cache: SemanticCacheSetting | None = None

    @field_validator("redact")
    @classmethod
    def _redactor(cls, value: RedactSetting | None) -> RedactSetting | None:
        return check_redact(value)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^(https?://|\$\{)", value):
            raise ValueError(f"must start with http:// or https:// (got {redact_url(value)!r})")
        return value

    @field_validator("target")
    @classmethod
    def _import_path(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[\w.]+:[\w.]+", value):
            raise ValueError(f"must look like 'package.module:ClassName' (got {value!r})")
        return value

    @model_validator(mode="before")
    @classmethod
    def _default_output_cap(cls, data: Any) -> Any:
        """Default ``max_output_tokens`` to the window when the window is below 4096."""
        if isinstance(data, dict) and data.get("max_output_tokens") is None:
            window = data.get("context_window")
            if isinstance(window, int) and not isinstance(window, bool) and 0 < window < 4096:
                return {**data, "max_output_tokens": window}
        return data

    @model_validator(mode="after")
    def _provider_fields(self) -> Self:
        needs: dict[Provider, tuple[str, ...]] = {
            Provider.OPENAI: ("base_url",),
            Provider.LANGCHAIN: ("target",),
        }
        for name in needs.get(self.provider, ()):
            if getattr(self, name) is None:
                raise ValueError(f"provider {self.provider.value!r} requires '{name}'")
        only: dict[str, Provider] = {
            "behavior": Provider.SCRIPTED,
            "model_path": Provider.LLAMACPP,
            "n_ctx": Provider.LLAMACPP,
            "n_threads": Provider.LLAMACPP,
            "target": Provider.LANGCHAIN,
        }
        for name, provider in only.items():
            if getattr(self, name) is not None and self.provider is not provider:
                raise ValueError(
                    f"'{name}' applies only to provider {provider.value!r}, "
                    f"not {self.provider.value!r}"
                )
        if self.max_output_tokens > self.context_window:
            raise ValueError(
                f"max_output_tokens ({self.max_output_tokens}) exceeds "
                f"context_window ({self.context_window})"
            )
        return self

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        """Fields for ``repr``: the URL's userinfo and sensitive header values masked."""
        for name, value in super().__repr_args__():
            if name == "base_url" and isinstance(value, str):
                yield name, redact_url(value)
            elif name == "headers" and isinstance(value, dict):
                yield name, redact_headers(value)
            else:
                yield name, value

    def shown(self) -> dict[str, Any]:
        """The spec as JSON-ready data, with credentials masked (for listings)."""
        data = self.model_dump(mode="json")
        if data.get("base_url"):
            data["base_url"] = redact_url(data["base_url"])
        data["headers"] = redact_headers(data.get("headers") or {})
        return data

    @property
    def embeds(self) -> bool:
        """True for an entry of ``kind: embeddings``."""
        return self.kind == "embeddings"

    @property
    def simulated(self) -> bool:
        """True for models whose answers are scripted, not generated."""
        return self.provider is Provider.SCRIPTED

    def supports(self, capability: Capability) -> bool:
        """Whether the model declares ``capability``."""
        return capability in self.capabilities

    def quality_for(self, task: str | None = None) -> float | None:
        """Prior quality for ``task``, else the ``default`` prior, else ``None``."""
        if task is not None and task in self.quality:
            return self.quality[task]
        return self.quality.get("default")

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """USD cost of a call with these token counts, from the catalog price."""
        return self.pricing.cost(input_tokens, output_tokens)
