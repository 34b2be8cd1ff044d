"""``agentmesh serve``: the routing service as an OpenAI-compatible HTTP gateway.

A thin ASGI layer (Starlette, served by uvicorn; extra ``server``) over the
one call path: each request's ``model`` resolves to a routed call
(:meth:`~agentmesh.resilience.ResilientCaller.call` / ``stream``) or a
workflow (:meth:`~agentmesh.graph.GraphRunner.run`); the server holds no
routing logic of its own.

- :mod:`~agentmesh.server.wire`: OpenAI's request and response shapes.
- :mod:`~agentmesh.server.targets`: what a ``model`` name serves.
- :mod:`~agentmesh.server.errors`: OpenAI-shaped errors and their statuses.
- :mod:`~agentmesh.server.keys`, :mod:`~agentmesh.server.access`: virtual keys and their gate.
- :mod:`~agentmesh.server.service`: configuration and the per-process service.
- :mod:`~agentmesh.server.app`: the endpoints.
"""

from agentmesh.server.app import app_from_environment, build_app, create_app
from agentmesh.server.errors import CALL_STATUSES, ApiError, call_error
from agentmesh.server.keys import (
    KEY_STORES,
    KeyRecord,
    KeySpec,
    KeyStore,
    KeyStoreError,
    PostgresKeyStore,
    SqliteKeyStore,
    open_key_store,
)
from agentmesh.server.service import ServeConfig, Service, open_service
from agentmesh.server.targets import (
    GraphTarget,
    NamedPolicy,
    RoutedTarget,
    Served,
    Target,
    Targets,
    build_targets,
    load_policies,
)

__all__ = [
    "CALL_STATUSES",
    "KEY_STORES",
    "ApiError",
    "KeyRecord",
    "KeySpec",
    "KeyStore",
    "KeyStoreError",
    "PostgresKeyStore",
    "SqliteKeyStore",
    "GraphTarget",
    "NamedPolicy",
    "RoutedTarget",
    "ServeConfig",
    "Served",
    "Service",
    "Target",
    "Targets",
    "app_from_environment",
    "build_app",
    "build_targets",
    "call_error",
    "create_app",
    "load_policies",
    "open_key_store",
    "open_service",
]
