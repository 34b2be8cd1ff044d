"""`Gateway`: the catalog's models as clients, over one pooled HTTP client.

The gateway resolves a model id to its adapter through one registry
(:data:`PROVIDERS`: provider -> factory), builds each client once, shares one
``httpx.AsyncClient`` between all HTTP adapters, and enforces each call's total
time limit. It is the one place that knows which class serves which provider.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Self

import httpx

from agentmesh.models._http import default_http_client
from agentmesh.models.anthropic import AnthropicClient
from agentmesh.models.catalog import Catalog
from agentmesh.models.client import ClientContext, ClientFactory, ModelClient
from agentmesh.models.errors import Timeout
from agentmesh.models.langchain import LangChainClient
from agentmesh.models.llamacpp import LlamaCppClient
from agentmesh.models.openai import OpenAIClient
from agentmesh.models.scripted import ScriptedClient
from agentmesh.models.spec import Provider
from agentmesh.models.types import ModelRequest, ModelResponse, StreamEvent

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

__all__ = ["PROVIDERS", "Gateway"]


PROVIDERS: Mapping[Provider, ClientFactory] = MappingProxyType(
    {
        Provider.OPENAI: OpenAIClient,
        Provider.ANTHROPIC: AnthropicClient,
        Provider.LANGCHAIN: LangChainClient,
        Provider.LLAMACPP: LlamaCppClient,
        Provider.SCRIPTED: ScriptedClient,
    }
)
"""The one registry from provider name to the factory of its adapter."""


class Gateway:
    """Calls any catalog model by id.

    Use it as an async context manager (or call :meth:`aclose`) so pooled
    connections and loaded weights are released.

    Args:
        catalog: The models that may be called.
        http: A shared ``httpx.AsyncClient`` to use (e.g. with a mock transport);
            when omitted the gateway builds a pooled one and owns it.
        environ: Where API keys and hosts are read from; ``os.environ`` by default.
        chat_models: LangChain chat models for ``langchain`` entries, by id.
        factories: Replacement or extra adapter factories, by provider.
    """

    def __init__(
        self,
        catalog: Catalog,
        *,
        http: httpx.AsyncClient | None = None,
        environ: Mapping[str, str] | None = None,
        chat_models: Mapping[str, BaseChatModel] | None = None,
        factories: Mapping[Provider, ClientFactory] | None = None,
    ) -> None:
        self.catalog = catalog
        self._owns_http = http is None
        self._context = ClientContext(
            http=http if http is not None else default_http_client(),
            environ=os.environ if environ is None else environ,
            chat_models=dict(chat_models or {}),
        )
        self._factories = {**PROVIDERS, **(factories or {})}
        self._clients: dict[str, ModelClient] = {}

    def client(self, model_id: str) -> ModelClient:
        """The client for ``model_id``, built on first use.

        Raises:
            UnknownModel: The catalog does not list ``model_id``.
        """
        found = self._clients.get(model_id)
        if found is None:
            spec = self.catalog[model_id]
            found = self._factories[spec.provider](spec, self._context)
            self._clients[model_id] = found
        return found

    def _deadline(self, model_id: str, request: ModelRequest) -> float:
        return request.timeout if request.timeout is not None else self.catalog[model_id].timeout_s

    async def invoke(self, model_id: str, request: ModelRequest) -> ModelResponse:
        """Call ``model_id`` once, within the request's (or the spec's) total time limit.

        Raises:
            ModelError: The classified failure.
        """
        client = self.client(model_id)
        limit = self._deadline(model_id, request)
        try:
            async with asyncio.timeout(limit):
                return await client.invoke(request)
        except TimeoutError:
            raise client.error(Timeout, f"no answer within {limit:g} s") from None

    async def stream(self, model_id: str, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        """Stream ``model_id``'s answer; the total time limit covers the whole stream."""
        client = self.client(model_id)
        limit = self._deadline(model_id, request)
        try:
            async with asyncio.timeout(limit):
                async for event in client.stream(request):
                    yield event
        except TimeoutError:
            raise client.error(Timeout, f"stream not finished within {limit:g} s") from None

    def invoke_sync(self, model_id: str, request: ModelRequest) -> ModelResponse:
        """Blocking :meth:`invoke` for scripts, then :meth:`aclose`.

        It runs its own event loop, so the gateway is closed afterwards (pooled
        connections cannot outlive their loop); not for use inside a running loop.
        """

        async def run() -> ModelResponse:
            try:
                return await self.invoke(model_id, request)
            finally:
                await self.aclose()

        return asyncio.run(run())

    async def aclose(self) -> None:
        """Close every client built so far and, if the gateway owns it, the HTTP client."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()
        if self._owns_http:
            await self._context.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
