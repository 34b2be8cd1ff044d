"""The ASGI application: OpenAI's endpoints over the service's targets (Starlette).

Every handler runs inside :func:`_guarded`, which turns an :class:`ApiError`
into its OpenAI-shaped JSON body and anything unexpected into a 500 that names
only the request id (the log gets one line at ERROR, the traceback at DEBUG),
and counts the request in the service's metrics. Each request gets an id
(``x-request-id``, the client's when it sent a sane one) and a ``SERVER`` span
whose parent is the client's W3C ``traceparent``, so the route, chat and
workflow spans of the request share the client's trace.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from contextvars import Token
from typing import Any

import anyio
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from agentmesh.models.tokens import estimate_tokens
from agentmesh.server.access import Grant, authenticate, generated_cost, reserve, reserve_cost
from agentmesh.server.embeddings import embeddings_body, parse_embeddings_request
from agentmesh.server.errors import ApiError
from agentmesh.server.keys import KeyRecord
from agentmesh.server.service import ServeConfig, Service, environment_config, open_service
from agentmesh.server.targets import Asked, Served, Target
from agentmesh.server.wire import (
    ChatCompletionRequest,
    chunk_body,
    completion_body,
    finish_reason,
    parse_chat_request,
    to_messages,
    to_model_request,
    tool_call_deltas,
)
from agentmesh.tracing import record_error, span

__all__ = ["app_from_environment", "build_app", "create_app"]

Streamed = str | Served

_log = logging.getLogger("agentmesh.server")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_HEADER_LIMIT = 512
_GONE = 499  # the status counted for a client that closed the connection first
UNKNOWN_MODEL = "unknown"
"""The ``model`` label of requests that named no known target (bounded cardinality)."""


class _Exchange:
    """One request's id, span, timing and what the metrics will say about it."""

    def __init__(self, request: Request, endpoint: str, traced: bool) -> None:
        sent = request.headers.get("x-request-id", "")
        self.id = sent if _REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex
        self.endpoint = endpoint
        self.started = time.perf_counter()
        self.model = UNKNOWN_MODEL
        self.key = ""
        self.record: KeyRecord | None = None
        self.grant: Grant | None = None
        self.asked: Asked | None = None
        self.cost_usd = 0.0
        self.cost_known = False  # cost_usd is the call's own (not an estimate to make)
        self.streamed: list[str] = []  # text sent so far (a stream cut off is charged for it)
        self.span: Span = INVALID_SPAN  # probes and scrapes make no trace
        if traced:
            token = otel_context.attach(propagate.extract(dict(request.headers)))
            try:
                self.span = span(
                    f"{request.method} {endpoint}",
                    {
                        "http.request.method": request.method,
                        "url.path": request.url.path,
                        "agentmesh.request.id": self.id,
                    },
                    kind=SpanKind.SERVER,
                ).span
            finally:
                otel_context.detach(token)
        self._token: Token[Context] | None = None

    def attach(self) -> None:
        """Make the request's span current (its children: route, chat, workflow spans)."""
        self._token = otel_context.attach(trace.set_span_in_context(self.span))

    def detach(self) -> None:
        if self._token is not None:
            otel_context.detach(self._token)
            self._token = None

    def headers(self) -> dict[str, str]:
        found = {"x-request-id": self.id}
        context = self.span.get_span_context()
        if context.is_valid:
            found["x-agentmesh-trace-id"] = format(context.trace_id, "032x")
        return found

    async def finish(
        self, service: Service, status: int, error: BaseException | None = None
    ) -> None:
        """End the span, settle the key's hold, count the request."""
        if isinstance(error, ApiError):
            self.cost_usd, self.cost_known = error.cost_usd, True
        grant = self.grant
        if grant is not None and grant.hold is not None and service.keys is not None:
            if not self.cost_known and self.asked is not None:  # cut off: what was generated
                cost = generated_cost(
                    service.runtime.catalog, grant.record, self.asked, "".join(self.streamed)
                )
                self.cost_usd = min(cost, grant.reserved_usd or cost)
            try:
                await service.keys.settle(grant.record.id, grant.hold, self.cost_usd)
            except Exception as exc:  # the store is down: the hold lapses with its lease
                _log.error("request %s: key %s not settled: %s", self.id, grant.record.id, exc)
        span_ = self.span
        span_.set_attribute("http.response.status_code", status)
        if error is not None and status >= 500:
            record_error(span_, error)
        span_.end()
        service.metrics.observe_request(
            self.endpoint,
            self.model,
            self.key,
            status,
            time.perf_counter() - self.started,
            self.cost_usd,
        )


def _error_response(exchange: _Exchange, error: ApiError) -> JSONResponse:
    return JSONResponse(
        error.body(), status_code=error.status, headers={**exchange.headers(), **error.headers()}
    )


Handler = Callable[[Service, Request, _Exchange], Awaitable[Response]]


def _guarded(
    endpoint: str, handler: Handler, api: bool
) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint: ``handler`` with OpenAI-shaped errors and metrics (``api``: span, key)."""

    async def endpoint_fn(request: Request) -> Response:
        service: Service = request.app.state.service
        exchange = _Exchange(request, endpoint, traced=api)
        exchange.attach()
        try:
            if api and service.keys is not None:
                exchange.record = await authenticate(service.keys, request.headers)
                exchange.key = exchange.record.id
                exchange.span.set_attribute("agentmesh.key.id", exchange.key)
            response = await handler(service, request, exchange)
        except ApiError as exc:
            await exchange.finish(service, exc.status, exc)
            return _error_response(exchange, exc)
        except ClientDisconnect:
            await exchange.finish(service, _GONE)
            return Response(status_code=_GONE)
        except Exception as exc:  # a bug: the client gets the request id, never the traceback
            _log.error(
                "request %s failed: %s (traceback at DEBUG)", exchange.id, type(exc).__name__
            )
            _log.debug("request %s failed", exchange.id, exc_info=True)
            await exchange.finish(service, 500, exc)
            return _error_response(
                exchange,
                ApiError(
                    500,
                    f"internal error (request {exchange.id})",
                    "server_error",
                    "internal_error",
                ),
            )
        finally:
            exchange.detach()
        if not isinstance(response, StreamingResponse):  # a stream finishes when it ends
            await exchange.finish(service, response.status_code)
        response.headers.update(exchange.headers())
        return response

    return endpoint_fn


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes (read no further)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the body is larger than {limit} bytes", code="request_too_large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the body is larger than {limit} bytes", code="request_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def _safe(value: str) -> str:
    """A header value: printable ASCII, one line, at most 512 characters."""
    text = value.encode("ascii", "replace").decode("ascii")
    return re.sub(r"[\x00-\x1f\x7f]+", " ", text)[:_HEADER_LIMIT]


def _served_headers(served: Served, ignored: tuple[str, ...]) -> dict[str, str]:
    headers = {
        "x-agentmesh-model": _safe(served.model),
        "x-agentmesh-route": _safe(served.route),
        "x-agentmesh-cost-usd": f"{served.cost_usd:.10f}",
        "x-agentmesh-attempts": str(served.attempts),
    }
    if served.simulated:
        headers["x-agentmesh-simulated"] = "true"
    if ignored:
        headers["x-agentmesh-ignored"] = _safe(",".join(ignored))
    return headers


def _extra(served: Served) -> dict[str, Any]:
    return {
        "model": served.model,
        "route": served.route,
        "cost_usd": served.cost_usd,
        "attempts": served.attempts,
        "simulated": served.simulated,
    }


def _asked(request: ChatCompletionRequest, exchange: _Exchange) -> Asked:
    messages = to_messages(request.messages)
    model_request, needs = to_model_request(request, messages)
    attributes: dict[str, Any] = {"agentmesh.request.id": exchange.id}
    if request.user:
        attributes["agentmesh.request.user"] = request.user
    for key, value in list((request.metadata or {}).items())[:16]:
        attributes[f"agentmesh.request.metadata.{key[:64]}"] = value[:512]
    return Asked(messages, model_request, needs, attributes)


async def _chat(service: Service, request: Request, exchange: _Exchange) -> Response:
    body = await _body(request, service.config.max_body_bytes)
    parsed, ignored = parse_chat_request(body)
    target = service.targets.resolve(parsed.model)
    exchange.model = target.name
    exchange.span.set_attribute("agentmesh.request.model", target.name)
    asked = exchange.asked = _asked(parsed, exchange)
    if exchange.record is not None and service.keys is not None:
        grant = exchange.grant = await reserve(
            service.keys, exchange.record, target, asked, service.runtime.catalog
        )
        if grant.reserved_usd is not None:
            asked = dataclasses.replace(asked, budget_usd=grant.reserved_usd)
    completion_id = f"chatcmpl-{exchange.id}"
    if parsed.stream:
        return await _stream(service, target, asked, parsed, exchange, completion_id, ignored)
    served = await target.complete(asked)
    exchange.cost_usd, exchange.cost_known = served.cost_usd, True
    body_out = completion_body(
        completion_id,
        served.model or target.name,
        served.text,
        served.response,
        served.usage,
        _extra(served),
    )
    return JSONResponse(body_out, headers=_served_headers(served, ignored))


def _sse(data: dict[str, Any] | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {text}\n\n".encode()


async def _stream(
    service: Service,
    target: Target,
    asked: Asked,
    parsed: ChatCompletionRequest,
    exchange: _Exchange,
    completion_id: str,
    ignored: tuple[str, ...],
) -> Response:
    """An SSE response; errors before the first item are ordinary error responses.

    The first item is awaited before the response starts, so a call that
    fails before any text (no route, every model down, budget) gets its HTTP
    status; a failure after it is an ``error`` event, the stream's last.
    """
    stack = AsyncExitStack()
    items = await stack.enter_async_context(_closing(target.stream(asked)))
    try:
        first = await anext(items)
    except BaseException:
        await stack.aclose()
        raise
    include_usage = bool(parsed.stream_options and parsed.stream_options.include_usage)
    headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
    if isinstance(first, Served):
        headers.update(_served_headers(first, ignored))
    created = int(time.time())

    def chunk(**fields: Any) -> bytes:
        return _sse(chunk_body(completion_id, target.name, created, **fields))

    async def events() -> AsyncIterator[bytes]:
        status = 200
        error: BaseException | None = None
        item: str | Served = first
        try:
            yield chunk(delta={"role": "assistant", "content": ""})
            while isinstance(item, str):
                yield chunk(delta={"content": item})
                exchange.streamed.append(item)
                item = await anext(items)
            served = item
            exchange.cost_usd, exchange.cost_known = served.cost_usd, True
            if served.response is not None and served.response.tool_calls:
                yield chunk(delta={"tool_calls": tool_call_deltas(served.response)})
            reason = finish_reason(served.response) if served.response else "stop"
            yield chunk(delta={}, finish=reason, extra=_extra(served))
            if include_usage:
                yield chunk(usage=served.usage)
            yield _sse("[DONE]")
        except ApiError as exc:
            status, error = exc.status, exc
            yield _sse(exc.body())
        except BaseException as exc:  # the client went away (cancelled) or a bug
            status, error = _GONE, exc
            raise
        finally:
            with anyio.CancelScope(shield=True):  # settle even while being cancelled
                await stack.aclose()
                await exchange.finish(service, status, error)

    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


@asynccontextmanager
async def _closing(
    items: AsyncIterator[str | Served],
) -> AsyncIterator[AsyncIterator[str | Served]]:
    try:
        yield items
    finally:
        close = getattr(items, "aclose", None)
        if close is not None:
            with suppress(RuntimeError):  # closed while running elsewhere: already ending
                await close()


async def _models(service: Service, request: Request, exchange: _Exchange) -> Response:
    data = [
        {"id": t.name, "object": "model", "created": 0, "owned_by": t.owned_by}
        for t in service.targets
    ]
    return JSONResponse({"object": "list", "data": data})


async def _model(service: Service, request: Request, exchange: _Exchange) -> Response:
    target = service.targets.resolve(request.path_params["model"])
    return JSONResponse(
        {"id": target.name, "object": "model", "created": 0, "owned_by": target.owned_by}
    )


async def _health(service: Service, request: Request, exchange: _Exchange) -> Response:
    return JSONResponse({"status": "ok"})


async def _ready(service: Service, request: Request, exchange: _Exchange) -> Response:
    catalog = service.runtime.catalog
    try:
        await service.state.snapshot([s.id for s in catalog.specs])
    except Exception as exc:  # any failure of the store means "not ready", with why
        raise ApiError(
            503,
            f"routing state unreachable: {type(exc).__name__}: {exc}",
            "service_unavailable",
            "state_unreachable",
        ) from None
    return JSONResponse({"status": "ready", "models": len(catalog.specs)})


async def _metrics(service: Service, request: Request, exchange: _Exchange) -> Response:
    catalog = service.runtime.catalog
    with suppress(Exception):  # a scrape still answers when the store is down
        snapshot = await service.state.snapshot([s.id for s in catalog.specs])
        for spec in catalog.specs:
            found = snapshot.breakers.get(spec.id)
            service.metrics.set_breaker(spec.id, found.state if found else "closed")
    return Response(service.metrics.exposition(), media_type=service.metrics.content_type)


async def _embeddings(service: Service, request: Request, exchange: _Exchange) -> Response:
    body = await _body(request, service.config.max_body_bytes)
    parsed, ignored = parse_embeddings_request(body)
    target = service.targets.resolve(parsed.model)
    exchange.model = target.name
    exchange.span.set_attribute("agentmesh.request.model", target.name)
    texts = parsed.texts
    if exchange.record is not None and service.keys is not None:
        spec = service.runtime.catalog.get(target.name)
        worst = spec.cost(sum(estimate_tokens(t) for t in texts), 0) if spec else 0.0
        exchange.grant = await reserve_cost(service.keys, exchange.record, target.name, worst)
    attributes: dict[str, Any] = {"agentmesh.request.id": exchange.id}
    if parsed.user:
        attributes["agentmesh.request.user"] = parsed.user
    found = await target.embed(texts, attributes)
    exchange.cost_usd, exchange.cost_known = found.cost_usd, True
    extra = {"model": found.model_id, "cost_usd": found.cost_usd, "simulated": found.simulated}
    headers = {
        "x-agentmesh-model": _safe(found.model_id),
        "x-agentmesh-cost-usd": f"{found.cost_usd:.10f}",
    }
    if found.simulated:
        headers["x-agentmesh-simulated"] = "true"
    if ignored:
        headers["x-agentmesh-ignored"] = _safe(",".join(ignored))
    return JSONResponse(embeddings_body(parsed, found, extra), headers=headers)


async def _not_found(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    message = {405: "method not allowed"}.get(status, f"no such endpoint {request.url.path}")
    return JSONResponse(
        ApiError(
            status, message, code="not_found" if status == 404 else "method_not_allowed"
        ).body(),
        status_code=status,
    )


_ROUTES: tuple[tuple[str, str, Handler, str, bool], ...] = (
    ("/v1/chat/completions", "POST", _chat, "/v1/chat/completions", True),
    ("/v1/models", "GET", _models, "/v1/models", True),
    ("/v1/models/{model:path}", "GET", _model, "/v1/models/{model}", True),
    ("/v1/embeddings", "POST", _embeddings, "/v1/embeddings", True),
    ("/health", "GET", _health, "/health", False),
    ("/ready", "GET", _ready, "/ready", False),
    ("/metrics", "GET", _metrics, "/metrics", False),
)
"""Path, method, handler, endpoint name (the metrics label), and whether it is an API
endpoint (traced, and keyed when keys are on) rather than a probe or a scrape."""


def _application(lifespan: Callable[[Starlette], Any] | None = None) -> Starlette:
    return Starlette(
        routes=[
            Route(path, _guarded(name, handler, api), methods=[method])
            for path, method, handler, name, api in _ROUTES
        ],
        exception_handlers={404: _not_found, 405: _not_found},
        lifespan=lifespan,
    )


def build_app(service: Service) -> Starlette:
    """The application over an open service (the caller owns the service's lifetime)."""
    app = _application()
    app.state.service = service
    return app


def create_app(config: ServeConfig) -> Starlette:
    """An application that opens its service at start-up and closes it at shutdown."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_service(config) as service:
            app.state.service = service
            yield

    return _application(lifespan)


def app_from_environment() -> Starlette:
    """The uvicorn factory of worker processes (configuration in ``AGENTMESH_SERVE_CONFIG``)."""
    import os

    return create_app(environment_config(os.environ))
