"""What one serving process holds: configuration, runtime, targets, metrics.

:class:`ServeConfig` is the frozen configuration ``agentmesh serve`` builds
from its options (and passes to worker processes as JSON);
:func:`open_service` loads the catalog, policies and graphs, opens the routing
state, the gateway and tracing (with the Prometheus feed), and closes them on
exit. Everything a request needs is on the :class:`Service`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

from agentmesh.graph import GraphRunner, Runtime, load_graph
from agentmesh.models import Gateway, load_catalog
from agentmesh.models._http import PoolLimits, default_http_client
from agentmesh.prompts import PromptLibrary
from agentmesh.resilience import ResilientCaller
from agentmesh.routing import BudgetLimits, Router, RoutingState, open_state
from agentmesh.server.keys import KeyStore, open_key_store
from agentmesh.server.targets import NamedPolicy, Targets, build_targets, load_policies
from agentmesh.tracing import configure
from agentmesh.tracing.prometheus import Metrics, RecordUnsampled

__all__ = ["CONFIG_VARIABLE", "ServeConfig", "Service", "open_service"]

CONFIG_VARIABLE = "AGENTMESH_SERVE_CONFIG"
"""The environment variable carrying a :class:`ServeConfig` (JSON) to worker processes."""

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """How to serve.

    Attributes:
        models: The catalog file.
        policies: A policies file (named policies for ``route:<name>``; its
            ``default`` is ``auto``'s).
        graphs: A folder of workflow YAML files (``graph:<name>``).
        state: The routing state URL (``memory`` or ``redis://...``).
        prompts: The prompt templates folder (default: the shipped ones).
        host: The address to bind.
        port: The port to bind.
        workers: Worker processes (share their state through ``state``).
        max_body_bytes: Largest request body accepted (413 above).
        global_budget_usd: Limit on everything spent through the routing state.
        trace: Append every span to this JSONL file.
        otlp_endpoint: Export spans over OTLP/HTTP to this collector.
        keys: The virtual keys store (``sqlite:PATH``, ``postgresql://...``);
            ``None`` serves without keys (loopback only).
    """

    models: str
    policies: str | None = None
    graphs: str | None = None
    state: str = "memory"
    prompts: str | None = None
    host: str = "127.0.0.1"
    port: int = 4000
    workers: int = 1
    max_body_bytes: int = 4 * 1024 * 1024
    global_budget_usd: float | None = None
    trace: str | None = None
    otlp_endpoint: str | None = None
    keys: str | None = None

    def to_json(self) -> str:
        """The configuration as JSON (for :data:`CONFIG_VARIABLE`)."""
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        """The configuration :meth:`to_json` wrote."""
        data: dict[str, Any] = json.loads(text)
        return cls(**data)

    @property
    def loopback(self) -> bool:
        """The bind address is a loopback one."""
        return self.host in LOOPBACK or self.host.startswith("127.")


@dataclass(frozen=True, slots=True)
class Service:
    """What requests are served with.

    Attributes:
        config: The configuration.
        runtime: The shared caller (router, gateway), prompts and tools.
        targets: Every accepted ``model`` name.
        metrics: The Prometheus registry of this process.
        state: The routing state (also probed by ``/ready``).
        keys: The virtual keys store, when keys are required.
    """

    config: ServeConfig
    runtime: Runtime
    targets: Targets
    metrics: Metrics
    state: RoutingState
    keys: KeyStore | None = None


def server_http_client() -> httpx.AsyncClient:
    """The gateway's HTTP client in a server: the pooled client, sized for many callers.

    It sends over aiohttp's pool (``httpx-aiohttp`` comes with the ``server``
    extra): httpcore's pool spent most of a server's CPU under 64 calls in
    flight (profiled: ~4.3 M ``is_idle`` calls for 750 requests), see
    :mod:`agentmesh.models._transport`.
    """
    return default_http_client(PoolLimits(connections=1024, per_host=1024))


def _graphs(folder: str | None, runtime: Runtime) -> dict[str, GraphRunner]:
    if folder is None:
        return {}
    runners: dict[str, GraphRunner] = {}
    for path in sorted(Path(folder).glob("*.yaml")):
        loaded = load_graph(path)
        tools = loaded.tools()
        graph_runtime = (
            dataclasses.replace(runtime, tools={**runtime.tools, **tools}) if tools else runtime
        )
        runners[loaded.spec.name] = GraphRunner(loaded.spec, graph_runtime, locate=loaded.locate)
    return runners


@asynccontextmanager
async def open_service(
    config: ServeConfig, *, metrics: Metrics | None = None
) -> AsyncIterator[Service]:
    """Load, open and trace everything ``config`` names; close it all on exit.

    Raises:
        CatalogError, PolicyError, GraphError, PromptError, StateError: A file
            or the state store is unusable (each names what and where).
    """
    catalog = load_catalog(config.models)
    default, policies = (
        load_policies(config.policies) if config.policies else (None, dict[str, NamedPolicy]())
    )
    metrics = metrics or Metrics()
    async with AsyncExitStack() as stack:
        state = await stack.enter_async_context(open_state(config.state))
        base = policies[default] if default else None
        http = server_http_client()
        stack.push_async_callback(http.aclose)
        gateway = Gateway(catalog, http=http)
        stack.push_async_callback(gateway.aclose)
        router = Router(
            catalog, state=state, budgets=BudgetLimits(global_usd=config.global_budget_usd)
        )
        runtime = Runtime(
            ResilientCaller(router, gateway, base.resilience if base else None),
            PromptLibrary(config.prompts),
        )
        tracing = configure(
            jsonl=config.trace,
            otlp_endpoint=config.otlp_endpoint,
            processors=[metrics.span_processor()],
            sampler=RecordUnsampled(ParentBased(ALWAYS_ON)),
        )
        stack.callback(tracing.shutdown)
        targets = build_targets(
            runtime.caller,
            policies=policies,
            default=default,
            graphs=_graphs(config.graphs, runtime),
        )
        keys = None
        if config.keys is not None:
            keys = open_key_store(config.keys)
            stack.push_async_callback(keys.aclose)
        yield Service(config, runtime, targets, metrics, state, keys)


def environment_config(environ: Mapping[str, str]) -> ServeConfig:
    """The configuration a worker process was started with.

    Raises:
        RuntimeError: The variable is not set (the app factory was started by hand).
    """
    text = environ.get(CONFIG_VARIABLE)
    if not text:
        raise RuntimeError(f"{CONFIG_VARIABLE} is not set: start the server with agentmesh serve")
    return ServeConfig.from_json(text)
