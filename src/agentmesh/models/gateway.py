"""`Gateway`: the catalog's models as clients, over pooled HTTP clients.

The gateway resolves a model id to its adapter through one registry
(:data:`PROVIDERS`: provider -> factory), builds each client once, shares one
pooled ``httpx.AsyncClient`` per event loop between all HTTP adapters (made on
the loop's first call, closed with the loop, see
:class:`~agentmesh.models._http.LoopClients`), and enforces each call's total
time limit. It is the one place that knows which class serves which provider.

Every call is traced: a ``chat {model}`` span (OpenTelemetry GenAI conventions,
see :mod:`agentmesh.tracing`) with the request, the served model, usage, cost
and finish reason, or ``error.type`` on failure; callers add their own
attributes (attempt, fallback, node, prompt template) with ``attributes=``.
:meth:`Gateway.embed` calls an entry of ``kind: embeddings`` (an
``embeddings {model}`` span, GenAI operation ``embeddings``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from functools import partial
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Self

import httpx

from agentmesh._redact import credential_values
from agentmesh.models._http import LoopClients, PoolLimits, default_http_client
from agentmesh.models.anthropic import AnthropicClient
from agentmesh.models.catalog import Catalog
from agentmesh.models.client import ClientContext, ClientFactory, ModelClient
from agentmesh.models.errors import BadRequest, Timeout
from agentmesh.models.langchain import LangChainClient
from agentmesh.models.llamacpp import LlamaCppClient
from agentmesh.models.openai import OpenAIClient
from agentmesh.models.scripted import ScriptedClient
from agentmesh.models.spec import ModelSpec, Provider, expand_env
from agentmesh.models.tokens import estimate_message_tokens, estimate_tokens
from agentmesh.models.types import Embeddings, ModelRequest, ModelResponse, StreamEvent
from agentmesh.tracing import Attributes, ChatCall, embeddings_done, embeddings_span

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

__all__ = ["PROVIDERS", "Gateway", "cut_usage"]


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
        http: A shared ``httpx.AsyncClient`` to use on every loop (e.g. with a
            mock transport); when omitted the gateway builds a pooled one per
            event loop, on first use there, and owns them.
        environ: Where API keys and hosts are read from; ``os.environ`` by default.
        chat_models: LangChain chat models for ``langchain`` entries, by id.
        factories: Replacement or extra adapter factories, by provider.
        pool: The size of the pooled clients the gateway builds (default
            :class:`~agentmesh.models.PoolLimits`: 256 connections, 256 to one
            host); size it to the calls in flight at once. Not with ``http``.
    """

    def __init__(
        self,
        catalog: Catalog,
        *,
        http: httpx.AsyncClient | None = None,
        environ: Mapping[str, str] | None = None,
        chat_models: Mapping[str, BaseChatModel] | None = None,
        factories: Mapping[Provider, ClientFactory] | None = None,
        pool: PoolLimits | None = None,
    ) -> None:
        if http is not None and pool is not None:
            raise ValueError("Gateway: pass either http (your client) or pool (its size), not both")
        self.catalog = catalog
        self._owns_http = http is None
        own = LoopClients() if pool is None else LoopClients(partial(default_http_client, pool))
        self._context = ClientContext(
            http=http if http is not None else own,
            environ=os.environ if environ is None else environ,
            chat_models=dict(chat_models or {}),
        )
        self._factories = {**PROVIDERS, **(factories or {})}
        self._counting: tuple[str, ...] | None = None
        self._clients: dict[str, ModelClient] = {}

    async def use_catalog(self, catalog: Catalog) -> None:
        """Call the models of ``catalog`` from now on (a live reload).

        Clients of entries that changed or left are closed and built again on
        their next call (HTTP calls under way finish on the shared pool; an
        in-process model's weights are freed, so its call under way may fail
        and fall back).
        """
        old, self.catalog = self.catalog, catalog
        self._counting = None
        for model_id in list(self._clients):
            if model_id not in catalog or catalog[model_id] != old.get(model_id):
                await self._clients.pop(model_id).aclose()

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

    def _chat_client(self, model_id: str) -> ModelClient:
        """The client of a chat entry.

        Raises:
            BadRequest: ``model_id`` is an embeddings entry (``kind: embeddings``).
        """
        spec = self.catalog[model_id]
        if spec.embeds:
            raise BadRequest(
                "is an embeddings model (kind: embeddings): call Gateway.embed",
                model_id=model_id,
                provider=spec.provider.value,
            )
        return self.client(model_id)

    def token_counting_models(self) -> tuple[str, ...]:
        """Chat models of the catalog whose adapter counts prompt tokens with their own tokenizer.

        Embeddings entries are left out: no routed chat request is ever sent to them.
        """
        if self._counting is None:
            self._counting = tuple(
                s.id
                for s in self.catalog.chat_specs
                if getattr(self._factories[s.provider], "counts_tokens", False)
            )
        return self._counting

    def count_prompt_tokens(self, model_id: str, request: ModelRequest) -> int | None:
        """``request``'s prompt tokens by ``model_id``'s own tokenizer, or ``None``."""
        return self.client(model_id).count_prompt_tokens(request)

    def _deadline(self, model_id: str, request: ModelRequest) -> float:
        return request.timeout if request.timeout is not None else self.catalog[model_id].timeout_s

    def _secrets(self, spec: ModelSpec) -> tuple[str | None, ...]:
        """Values never to record for ``spec``: its API key and extra header values."""
        key = self._context.environ.get(spec.api_key_env) if spec.api_key_env else None
        try:
            url = expand_env(spec.base_url, dict(self._context.environ)) if spec.base_url else None
        except KeyError:  # the adapter reports the unset variable
            url = spec.base_url
        return (key, *spec.headers.values(), *credential_values([url], spec.headers))

    def _chat_call(
        self, spec: ModelSpec, request: ModelRequest, attributes: Attributes | None, stream: bool
    ) -> ChatCall:
        call = ChatCall.start(spec.id, spec.provider.value, spec.model, attributes)
        if call.recording:
            if request.labels:
                call.span.set_attributes(request.labels)
            call.describe_request(
                stream=stream,
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                seed=request.seed,
                json_output=request.response_format is not None,
                server_url=spec.base_url,
                messages=request.messages,
                prompt=request.prompt if spec.prompt_style == "completion" else None,
                secrets=self._secrets(spec),
            )
        return call

    @staticmethod
    def _succeeded(call: ChatCall, response: ModelResponse, stream: bool) -> None:
        usage = response.usage
        if not call.recording:
            call.ok(
                response.served_model, usage.input_tokens, usage.output_tokens, response.cost_usd
            )
            return
        call.ok(
            response.served_model,
            usage.input_tokens,
            usage.output_tokens,
            response.cost_usd,
            finish_reason=response.finish_reason,
            simulated=response.simulated,
            usage_estimated=usage.estimated,
            ttft_ms=response.ttft_ms if stream else None,
            text=response.text,
            tool_calls=[(c.id, c.name, c.arguments) for c in response.tool_calls],
        )

    async def invoke(
        self,
        model_id: str,
        request: ModelRequest,
        *,
        attributes: Attributes | None = None,
    ) -> ModelResponse:
        """Call ``model_id`` once, within the request's (or the spec's) total time limit.

        Args:
            model_id: Catalog id of the model to call.
            request: The call.
            attributes: Set on the call's ``chat`` span: e.g.
                ``agentmesh.tracing.attempt_attributes(...)`` (attempt, fallback,
                escalation level, node) and ``RenderedPrompt.trace_attributes()``.

        Raises:
            ModelError: The classified failure.
        """
        client = self._chat_client(model_id)
        limit = self._deadline(model_id, request)
        call = self._chat_call(client.spec, request, attributes, False)
        try:
            with call:
                async with asyncio.timeout(limit):
                    response = await client.invoke(request)
        except TimeoutError:
            error = client.error(Timeout, f"no answer within {limit:g} s")
            call.failed(error)
            raise error from None
        except BaseException as exc:
            call.failed(exc)
            raise
        self._succeeded(call, response, False)
        return response

    async def stream(
        self,
        model_id: str,
        request: ModelRequest,
        *,
        attributes: Attributes | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """Stream ``model_id``'s answer; the total time limit covers the whole stream.

        ``attributes`` are set on the call's ``chat`` span, as for :meth:`invoke`.
        """
        client = self._chat_client(model_id)
        limit = self._deadline(model_id, request)
        call = self._chat_call(client.spec, request, attributes, True)
        events = call.iterate(client.stream(request))
        streamed: list[str] = []  # what a stream cut off mid-answer is known to have generated
        try:
            async with asyncio.timeout(limit):
                async for event in events:
                    if event.response is not None:
                        self._succeeded(call, event.response, True)
                    elif event.delta:
                        streamed.append(event.delta)
                    yield event
        except TimeoutError:
            error = client.error(Timeout, f"stream not finished within {limit:g} s")
            call.failed(error)
            raise error from None
        except GeneratorExit:
            if streamed:
                call.cut_off(*cut_usage(client.spec, request, "".join(streamed)))
            raise
        except asyncio.CancelledError as exc:
            if streamed:
                call.cut_off(*cut_usage(client.spec, request, "".join(streamed)))
            call.failed(exc)
            raise
        except BaseException as exc:
            call.failed(exc)
            raise
        finally:
            call.end()  # a consumer that stopped reading: the span ends without an outcome
            await events.aclose()

    async def embed(
        self,
        model_id: str,
        texts: Sequence[str],
        *,
        attributes: Attributes | None = None,
    ) -> Embeddings:
        """Embed ``texts`` with the ``kind: embeddings`` entry ``model_id``, within its time limit.

        Args:
            model_id: Catalog id of an embeddings model.
            texts: The inputs; one vector each comes back, in order.
            attributes: Set on the call's ``embeddings {model}`` span.

        Raises:
            UnknownModel: The catalog does not list ``model_id``.
            BadRequest: ``model_id`` is a chat model, or its provider serves no embeddings.
            ModelError: The classified failure.
        """
        spec = self.catalog[model_id]
        if not spec.embeds:
            raise BadRequest(
                "is a chat model (kind: chat); embeddings need an entry of kind: embeddings",
                model_id=model_id,
                provider=spec.provider.value,
            )
        client = self.client(model_id)
        limit = spec.timeout_s
        with embeddings_span(spec.id, spec.provider.value, spec.model, attributes) as scope:
            try:
                async with asyncio.timeout(limit):
                    found = await client.embed(texts)
            except TimeoutError:
                raise client.error(Timeout, f"no embeddings within {limit:g} s") from None
            embeddings_done(
                scope,
                response_model=found.served_model,
                input_tokens=found.usage.input_tokens,
                cost_usd=found.cost_usd,
                dimensions=found.dimensions,
                simulated=found.simulated,
                usage_estimated=found.usage.estimated,
            )
        return found

    async def aclose(self) -> None:
        """Close every client built so far and the HTTP clients the gateway owns.

        The gateway stays usable: a later call builds what it needs again.
        """
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


def cut_usage(spec: ModelSpec, request: ModelRequest, streamed: str) -> tuple[int, int, float]:
    """``(input tokens, output tokens, cost)`` of a stream cut off after sending ``streamed``.

    A provider reports usage only with a stream's last event, so a stream cut
    off mid-answer is estimated: the prompt (the provider received all of it)
    and the text streamed so far, with the project's token estimator, at the
    model's price. The ``chat`` span of the cut attempt and the routing budgets
    are charged the same figures.
    """
    if spec.prompt_style == "completion" and request.prompt is not None:
        prompt = estimate_tokens(request.prompt)
    else:
        prompt = estimate_message_tokens(request.messages)
    output = estimate_tokens(streamed)
    return prompt, output, spec.cost(prompt, output)
