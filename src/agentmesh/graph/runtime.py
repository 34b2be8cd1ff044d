"""`Runtime`: what compiled workflows share in a process — one caller, prompts, tools.

A graph names no model and holds no client; the runtime supplies the shared
:class:`~agentmesh.resilience.ResilientCaller` (and through it the one router
and gateway), the prompt library, and the registries of tools and custom
rule validators that nodes refer to by name.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict, Unpack

from langchain_core.tools import BaseTool, StructuredTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ValidationError

from agentmesh._validation import describe_errors
from agentmesh.graph.validators import Check
from agentmesh.integrations.sync_loop import SyncLoop
from agentmesh.models.catalog import Catalog
from agentmesh.models.gateway import Gateway
from agentmesh.models.types import ToolSpec
from agentmesh.prompts import PromptLibrary
from agentmesh.resilience import RateLimiter, ResiliencePolicy, ResilientCaller, ResponseCache
from agentmesh.routing import Router
from agentmesh.routing.policy import BudgetLimits
from agentmesh.routing.state import RoutingState

__all__ = ["Runtime", "RuntimeOptions", "Tool", "ToolArgumentsError", "as_tool"]


class ToolArgumentsError(ValueError):
    """A tool was called with arguments its schema rejects; names the tool and fields."""


class RuntimeOptions(TypedDict, total=False):
    """Keyword options of :meth:`Runtime.build` and :meth:`Runtime.open`."""

    prompts: PromptLibrary | str | Path | None
    tools: Mapping[str, BaseTool | Callable[..., Any]] | None
    validators: Mapping[str, Check] | None
    state: RoutingState | None
    budgets: BudgetLimits | None
    resilience: ResiliencePolicy | None
    cache: ResponseCache | None
    limiter: RateLimiter | None


@dataclass(frozen=True, slots=True)
class Tool:
    """A tool as nodes use it: a LangChain tool with its schema for models.

    Attributes:
        tool: The LangChain tool (Python callables are wrapped in ``StructuredTool``).
    """

    tool: BaseTool

    @property
    def name(self) -> str:
        """The tool's name."""
        return self.tool.name

    def spec(self) -> ToolSpec:
        """What a model is told about the tool."""
        function = convert_to_openai_tool(self.tool)["function"]
        parameters = dict(function.get("parameters") or {"type": "object"})
        return ToolSpec(self.tool.name, function.get("description") or "", parameters)

    async def run(self, arguments: Mapping[str, Any]) -> Any:
        """Validate ``arguments`` and run the tool.

        Raises:
            ToolArgumentsError: The arguments do not fit the tool's schema.
        """
        try:
            return await self.tool.ainvoke(dict(arguments))
        except ValidationError as exc:
            problems = describe_errors(exc)
            raise ToolArgumentsError(f"tool {self.name!r}: bad arguments: {problems}") from None

    @staticmethod
    def render(value: Any) -> str:
        """A tool result as text for a model (JSON unless a string)."""
        return value if isinstance(value, str) else json.dumps(value, default=str)


def as_tool(value: BaseTool | Callable[..., Any], name: str | None = None) -> Tool:
    """Wrap a LangChain tool, or a (sync or async) typed Python function, as a :class:`Tool`."""
    if isinstance(value, Tool):
        return value
    if isinstance(value, BaseTool):
        return Tool(value)
    if not callable(value):
        raise TypeError(f"tool {name!r}: expected a LangChain tool or a function, got {value!r}")
    if inspect.iscoroutinefunction(value):
        return Tool(StructuredTool.from_function(coroutine=value, name=name))
    return Tool(StructuredTool.from_function(func=value, name=name))


@dataclass(frozen=True)
class Runtime:
    """The shared services compiled workflows use.

    Attributes:
        caller: Routes and calls models (holds the router and gateway).
        prompts: The prompt library nodes render from.
        tools: Tools by name (what ``tool:`` nodes and executors' ``tools:`` name).
        validators: Custom rule checks by name (judges' ``validators:``).
        sync_loop: Where the sync API of compiled graphs (``invoke``, ``stream``)
            runs the nodes, which are async: one private loop in a thread, so
            the gateway's connection pools live on one loop (started on first
            use; :meth:`close` or :meth:`aclose` stops it).
    """

    caller: ResilientCaller
    prompts: PromptLibrary
    tools: Mapping[str, Tool] = field(default_factory=dict)
    validators: Mapping[str, Check] = field(default_factory=dict)
    sync_loop: SyncLoop = field(default_factory=SyncLoop, repr=False, compare=False)

    @property
    def router(self) -> Router:
        """The shared router."""
        return self.caller.router

    @property
    def catalog(self) -> Catalog:
        """The models routing chooses from."""
        return self.caller.router.catalog

    @classmethod
    def build(
        cls,
        catalog: Catalog,
        *,
        prompts: PromptLibrary | str | Path | None = None,
        tools: Mapping[str, BaseTool | Callable[..., Any]] | None = None,
        validators: Mapping[str, Check] | None = None,
        state: RoutingState | None = None,
        budgets: BudgetLimits | None = None,
        resilience: ResiliencePolicy | None = None,
        cache: ResponseCache | None = None,
        limiter: RateLimiter | None = None,
    ) -> Runtime:
        """A runtime over a new router and gateway; :meth:`aclose` it when done.

        Prefer :meth:`open` (``async with``); ``build`` is for objects that live as
        long as the process, such as the graphs a LangGraph server imports.
        ``prompts`` is a library or its folder; ``None`` (the default) is the
        shipped templates (:func:`~agentmesh.prompts.shipped_prompts`).
        ``cache`` is the response cache of every call (``--cache``) and
        ``limiter`` enforces the catalog's ``limits`` (shared with ``--state``);
        the runtime closes neither.

        Raises:
            PromptError: The prompts folder is missing or invalid.
        """
        library = prompts if isinstance(prompts, PromptLibrary) else PromptLibrary(prompts)
        router = Router(catalog, state=state, budgets=budgets)
        return cls(
            ResilientCaller(router, Gateway(catalog), resilience, cache=cache, limiter=limiter),
            library,
            {name: as_tool(t, name) for name, t in (tools or {}).items()},
            dict(validators or {}),
        )

    async def aclose(self) -> None:
        """Close the gateway (pooled connections, loaded weights) and the sync API's loop."""
        await self.caller.gateway.aclose()
        await asyncio.to_thread(self.sync_loop.close)

    def close(self) -> None:
        """:meth:`aclose` for sync code (after ``invoke``/``stream`` of compiled graphs).

        On a thread whose event loop is running, prefer ``await aclose()``:
        this blocks that loop until the gateway is closed.
        """
        self.sync_loop.run(self.caller.gateway.aclose())
        self.sync_loop.close()

    @classmethod
    @asynccontextmanager
    async def open(
        cls, catalog: Catalog, **options: Unpack[RuntimeOptions]
    ) -> AsyncIterator[Runtime]:
        """A runtime over a new router and gateway, closed on exit (options: :meth:`build`).

        Raises:
            PromptError: The prompts folder is missing or invalid.
        """
        runtime = cls.build(catalog, **options)
        try:
            yield runtime
        finally:
            await runtime.aclose()
