"""`RoutedChatModel`: a LangChain chat model whose every call is routed by agentmesh.

Stock LangChain and LangGraph code (``create_react_agent``, chains,
``with_structured_output``) takes any ``BaseChatModel``; this one names no
model. Each call becomes a :class:`~agentmesh.routing.RouteRequest` (node,
role, task, the capabilities the call needs) and a
:class:`~agentmesh.models.ModelRequest` (the messages as they are, tools,
tool choice, JSON format, stop, limits), and goes through the shared
:class:`~agentmesh.resilience.ResilientCaller`: the router picks the model, the
caller retries, falls back and keeps the circuit breakers. The answer is an
``AIMessage`` whose ``response_metadata`` says which model served, why it was
chosen and every attempt made::

    caller = runtime.caller                      # one per process
    model = RoutedChatModel(caller=caller, node="researcher", policy=Policy(min_tier=2))
    agent = create_react_agent(model, [search])  # any LangGraph/LangChain agent

Per call, ``model.invoke(..., model="<catalog id>")`` pins the call to one
catalog model (still within the policy's filters; only a resilience policy that
allows degradation may serve it elsewhere, marked ``degraded``). ``task``,
``escalation``, ``node`` and ``role`` may be bound or passed like any other
option (``model.bind(escalation=1)``); ``agentmesh_run_id`` names the workflow
run whose budget the call counts against (``run_id`` is taken: LangChain uses
it for its callback run).

Sync methods (``invoke``, ``stream``, ``batch``) run the async ones on a
private event loop in a daemon thread, one per model instance (started on
first use, stopped by :meth:`RoutedChatModel.close`). The gateway keeps one
HTTP connection pool per event loop, so sync and async calls mix freely.

Each call outside a graph opens a ``chat_model {node}`` span, the parent of
its ``route`` and ``chat`` spans; inside a LangGraph graph run with a
``thread_id``, those spans carry it as ``gen_ai.conversation.id``. ``api_key``
and ``max_retries`` are accepted and ignored, as LangChain code passes them to
any chat model: keys are named per model in the catalog, retries belong to the
resilience policy. Reasoning that OpenAI-compatible servers return beside the
answer arrives in ``additional_kwargs["reasoning_content"]``.
"""

from __future__ import annotations

from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Iterator,
    Sequence,
)
from contextlib import AbstractContextManager, aclosing, nullcontext
from operator import itemgetter
from typing import Any, cast

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
)
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.runnables.config import ensure_config
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr

from agentmesh.integrations._convert import (
    FORCED,
    as_agentmesh_message,
    as_response_format,
    as_tool_choice,
    as_tool_spec,
    has_images,
    last_chunk,
    metadata_of,
    reasoning_of,
    usage_of,
)
from agentmesh.integrations.sync_loop import SyncLoop
from agentmesh.models.spec import Capability
from agentmesh.models.tokens import estimate_message_tokens
from agentmesh.models.types import (
    ModelRequest,
    last_user_text,
)
from agentmesh.resilience import Call, ResilientCaller, Streamed
from agentmesh.resilience.policy import ResiliencePolicy
from agentmesh.routing.policy import Policy
from agentmesh.routing.types import RouteRequest
from agentmesh.tracing import SpanScope, conversation, span
from agentmesh.tracing.attributes import NODE_KIND, NODE_NAME

__all__ = ["RoutedChatModel"]

_ROUTING_OPTIONS = ("node", "role", "task", "escalation")
_RUN_ID = "agentmesh_run_id"  # LangChain's `run_id` is its callback run's id
_IGNORED_OPTIONS = frozenset({"stream"})  # LangChain passes it through to `_stream`
_SUPPORTED_OPTIONS = (
    "tools",
    "tool_choice",
    "response_format",
    "model",
    "max_tokens",
    "temperature",
    "timeout",
    "seed",
    *_ROUTING_OPTIONS,
    _RUN_ID,
)


class RoutedChatModel(BaseChatModel):
    """A LangChain chat model that routes every call through an agentmesh `ResilientCaller`.

    The messages are sent as they are (system, human, ai with tool calls, tool
    results); bound tools and a JSON response format add the ``tools`` and
    ``json`` capabilities to the route request, images the ``vision`` one.
    Failures that survive the caller's retries and fallbacks raise its
    :class:`~agentmesh.resilience.CallFailed`, which names every attempt.

    Streaming goes through ``ResilientCaller.stream``, the same attempt routine
    as ``invoke``: the routed model's text arrives as it is generated; if the
    model fails before its first token, the next attempt (a retry or a
    fallback) is streamed instead. Once text has been sent a failure raises
    ``CallFailed`` (text cannot be taken back). Tool calls arrive complete on
    the last chunk, with usage and routing metadata (set on no other chunk).

    Attributes:
        caller: The shared resilient caller (router + gateway); never serialized.
        policy: Routing policy; ``None`` uses the router's default.
        resilience: Resilience policy of these calls; ``None`` uses the caller's.
        node: Node name in route requests, traces and per-node routing state.
        role: Role in route requests (``executor``, ``planner``...).
        task: Task label for task-aware strategies; ``None`` lets a classifier decide.
        max_tokens: Output cap of each call (also bounds the routed worst-case cost).
        temperature: Sampling temperature; ``None`` uses the provider default.
        stop: Default stop sequences.
        timeout: Total seconds per model call; ``None`` uses the catalog's limit.
        escalation: Escalation level: tiers above the cheapest acceptable one.
        streaming: Make ``invoke`` stream internally (token callbacks fire).
        api_key: Accepted and ignored, as other chat models take it: keys are
            named per model in the catalog (never serialized or shown).
        max_retries: Accepted and ignored: retries belong to the resilience policy.
    """

    model_config = ConfigDict(extra="forbid")

    caller: ResilientCaller = Field(exclude=True, repr=False)
    policy: Policy | None = None
    resilience: ResiliencePolicy | None = None
    node: str = "chat"
    role: str = "executor"
    task: str | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0)
    stop: list[str] | None = None
    timeout: float | None = Field(default=None, gt=0)
    escalation: int = Field(default=0, ge=0)
    streaming: bool = False
    api_key: SecretStr | None = Field(default=None, exclude=True, repr=False)
    max_retries: int | None = Field(default=None, exclude=True)

    _loop: SyncLoop = PrivateAttr(default_factory=SyncLoop)

    def _sync_loop(self) -> SyncLoop:
        return self._loop

    def close(self) -> None:
        """Stop the private event loop of the sync methods (``ainvoke`` & co. need none)."""
        self._loop.close()

    @property
    def _llm_type(self) -> str:
        return "agentmesh-routed"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "role": self.role,
            "task": self.task,
            "policy": None if self.policy is None else self.policy.model_dump(mode="json"),
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "escalation": self.escalation,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        pinned = kwargs.get("model")
        node = kwargs.get("node", self.node)
        params = LangSmithParams(
            ls_provider="agentmesh",
            ls_model_name=pinned if isinstance(pinned, str) else f"agentmesh:{node}",
            ls_model_type="chat",
        )
        temperature = kwargs.get("temperature", self.temperature)
        if isinstance(temperature, int | float):
            params["ls_temperature"] = temperature
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if isinstance(max_tokens, int):
            params["ls_max_tokens"] = max_tokens
        if stop or self.stop:
            params["ls_stop"] = list(stop or self.stop or ())
        return params

    # --- binding ---------------------------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | bool | dict[str, Any] | None = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (LangChain tools, functions, pydantic classes, schemas) as OpenAI tools.

        Args:
            tools: What the model may call; converted with ``convert_to_openai_tool``.
            tool_choice: ``auto``, ``none``, ``any``/``required``/``True`` (call some
                tool), or a tool name (call that one).
            strict: Passed to ``convert_to_openai_tool`` (schema strictness).
            **kwargs: Other call options to bind.

        Raises:
            ValueError: ``tool_choice`` names no bound tool, or a tool is not a function tool.
        """
        formatted = [convert_to_openai_tool(tool, strict=strict) for tool in tools]
        names = {as_tool_spec(tool).name for tool in formatted}
        choice = as_tool_choice(tool_choice)
        if choice not in (None, "auto", "none", FORCED) and choice not in names:
            raise ValueError(f"tool_choice {choice!r} names no bound tool ({sorted(names)})")
        if choice is not None:
            kwargs["tool_choice"] = choice
        return self.bind(tools=formatted, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """Answers shaped by ``schema`` (a pydantic class, ``TypedDict`` or JSON schema).

        ``method="function_calling"`` (the default) is LangChain's own
        implementation: the schema bound as the one tool the model must call.
        ``method="json_schema"`` asks the model for JSON following the schema
        (``json`` capability, the provider's native structured output);
        ``method="json_mode"`` for any JSON object (the prompt must describe it).
        ``strict`` is accepted for compatibility; adapters decide strictness.
        """
        method = kwargs.get("method") or "function_calling"
        if method == "function_calling":
            return super().with_structured_output(schema, include_raw=include_raw, **kwargs)
        if method not in ("json_schema", "json_mode"):
            raise ValueError(
                f"unknown method {method!r}; use function_calling, json_schema or json_mode"
            )
        kwargs.pop("method")
        strict = kwargs.pop("strict", None)
        if kwargs:
            raise ValueError(f"Received unsupported arguments {kwargs}")
        json_schema = convert_to_json_schema(schema)
        fmt: dict[str, Any] = (
            {
                "type": "json_schema",
                "json_schema": {
                    "name": str(json_schema.get("title") or "response"),
                    "schema": json_schema,
                },
            }
            if method == "json_schema"
            else {"type": "json_object"}
        )
        llm = self.bind(
            response_format=fmt,
            ls_structured_output_format={
                "kwargs": {"method": method, "strict": strict},
                "schema": schema,
            },
        )
        parser: Runnable[Any, Any] = (
            PydanticOutputParser(pydantic_object=cast("Any", schema))
            if isinstance(schema, type) and is_basemodel_subclass(schema)
            else JsonOutputParser()
        )
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
        )
        unparsed = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks(
            [unparsed], exception_key="parsing_error"
        )

    # --- requests --------------------------------------------------------------------

    def _requests(
        self, messages: Sequence[BaseMessage], stop: list[str] | None, options: dict[str, Any]
    ) -> tuple[RouteRequest, ModelRequest]:
        """The route request and the model request of one call."""
        options = dict(options)
        tools = tuple(as_tool_spec(tool) for tool in options.pop("tools", None) or ())
        choice = options.pop("tool_choice", None)
        tool_choice = as_tool_choice(choice) if tools else None
        response_format = as_response_format(options.pop("response_format", None))
        pinned = options.pop("model", None)
        max_tokens = options.pop("max_tokens", self.max_tokens)
        temperature = options.pop("temperature", self.temperature)
        timeout = options.pop("timeout", self.timeout)
        seed = options.pop("seed", None)
        routing = {name: options.pop(name) for name in _ROUTING_OPTIONS if name in options}
        run_id = options.pop(_RUN_ID, None)
        for name in _IGNORED_OPTIONS:
            options.pop(name, None)
        if options:
            raise TypeError(
                f"RoutedChatModel got unsupported call options {sorted(options)}; "
                f"supported: {', '.join(_SUPPORTED_OPTIONS)}"
            )
        sent = [as_agentmesh_message(message) for message in messages]
        needs: set[Capability] = set()
        if tools:
            needs.add(Capability.TOOLS)
        if response_format is not None:
            needs.add(Capability.JSON)
        if has_images(sent):
            needs.add(Capability.VISION)
        exclude: frozenset[str] = frozenset()
        if pinned is not None:
            catalog = self.caller.router.catalog
            catalog[pinned]  # UnknownModel, listing the known ids
            exclude = frozenset(model for model in catalog if model != pinned)
        route = RouteRequest(
            node=routing.get("node", self.node),
            role=routing.get("role", self.role),
            task=routing.get("task", self.task),
            prompt=last_user_text(sent),
            prompt_tokens=estimate_message_tokens(sent),
            capabilities=frozenset(needs),
            run_id=run_id,
            escalation=routing.get("escalation", self.escalation),
            exclude=exclude,
            **({"max_output_tokens": max_tokens} if max_tokens else {}),
        )
        request = ModelRequest(
            messages=sent,
            max_tokens=max_tokens,
            temperature=temperature,
            stop=tuple(stop if stop is not None else self.stop or ()),
            tools=tools,
            tool_choice=tool_choice,
            response_format=response_format,
            timeout=timeout,
            seed=seed,
        )
        return route, request

    def _call_of(self, route: RouteRequest, request: ModelRequest) -> Call:
        return Call(route, request, self.policy, self.resilience)

    @staticmethod
    def _span(route: RouteRequest) -> SpanScope:
        """The parent span of one call, so its route and chat spans share a trace."""
        return span(f"chat_model {route.node}", {NODE_NAME: route.node, NODE_KIND: "chat_model"})

    # --- generation ------------------------------------------------------------------

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        """One routed, resilient call.

        Raises:
            CallFailed: No model served it (names every attempt).
        """
        return await self._generate_in(messages, stop, _thread_of(run_manager), kwargs)

    async def _generate_in(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        thread: str | None,
        kwargs: dict[str, Any],
    ) -> ChatResult:
        route, request = self._requests(messages, stop, kwargs)
        with _conversation(thread), self._span(route):
            result = await self.caller.call(self._call_of(route, request))
        response = result.response
        message = AIMessage(
            content=response.text,
            additional_kwargs=reasoning_of(response),
            tool_calls=[
                {
                    "id": call.id,
                    "name": call.name,
                    "args": dict(call.arguments),
                    "type": "tool_call",
                }
                for call in response.tool_calls
            ],
            usage_metadata=usage_of(response),
            response_metadata=metadata_of(
                response,
                result.decision,
                result.attempts,
                cost_usd=result.cost_usd,
                degraded=result.degraded,
            ),
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        """:meth:`_agenerate` on the private event loop (LangChain already ran the callbacks)."""
        thread = _thread_of(run_manager)
        return self._sync_loop().run(self._generate_in(messages, stop, thread, kwargs))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        """Stream the routed model's answer (see the class docstring for what streams).

        Raises:
            CallFailed: No model served it, or the streaming model failed mid-answer.
        """
        inner = self._stream_in(messages, stop, _thread_of(run_manager), kwargs)
        async with aclosing(cast("AsyncGenerator[ChatGenerationChunk, None]", inner)) as chunks:
            async for chunk in chunks:  # closing this stream closes (and ends) the call's
                yield chunk

    async def _stream_in(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        thread: str | None,
        kwargs: dict[str, Any],
    ) -> AsyncIterator[ChatGenerationChunk]:
        route, request = self._requests(messages, stop, kwargs)
        scope = self._span(route)
        stream = cast(
            "AsyncGenerator[Streamed, None]", self.caller.stream(self._call_of(route, request))
        )
        try:
            async with aclosing(stream) as items:
                # the call's task starts here and inherits the span and the conversation
                with _conversation(thread), scope.current():
                    item: Streamed | None = await anext(items, None)
                while item is not None:
                    if isinstance(item, str):
                        yield ChatGenerationChunk(message=AIMessageChunk(content=item))
                    else:
                        yield last_chunk(
                            item.response,
                            item.decision,
                            item.attempts,
                            text="",
                            cost_usd=item.cost_usd,
                            degraded=item.degraded,
                        )
                    item = await anext(items, None)
        except GeneratorExit:  # the consumer stopped reading: not an error of the call
            scope.end()
            raise
        except BaseException as exc:
            scope.end(exc)
            raise
        scope.end()

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        """:meth:`_astream` driven on the private event loop."""
        stream = cast(
            "AsyncGenerator[ChatGenerationChunk, None]",
            self._stream_in(messages, stop, _thread_of(run_manager), kwargs),
        )
        yield from self._sync_loop().iterate(stream)


def _thread_of(run_manager: Any) -> str | None:
    """The LangGraph thread id a call runs in, if any.

    From the call's callback metadata; streams get no run manager, so else from
    the config of the LangGraph node running (LangChain's config context).
    """
    metadata = getattr(run_manager, "metadata", None)
    if metadata is None:
        config = ensure_config()
        metadata = {**config.get("configurable", {}), **config.get("metadata", {})}
    thread = metadata.get("thread_id")
    return str(thread) if thread is not None else None


def _conversation(thread: str | None) -> AbstractContextManager[None]:
    return conversation(thread) if thread is not None else nullcontext()
