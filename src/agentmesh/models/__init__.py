"""The gateway layer: one contract over every model provider.

Catalog (:class:`ModelSpec`, :func:`load_catalog`), the :class:`ModelClient`
contract with its adapters, the error taxonomy, and the :class:`Gateway`.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING

from agentmesh._lazy import lazy_exports

if TYPE_CHECKING:
    from agentmesh.models._transport import PoolLimits
    from agentmesh.models.anthropic import AnthropicClient
    from agentmesh.models.catalog import Catalog, CatalogError, UnknownModel, load_catalog
    from agentmesh.models.client import ClientContext, ClientFactory, ModelClient
    from agentmesh.models.errors import (
        AuthError,
        BadRequest,
        ContentFiltered,
        ContextOverflow,
        MalformedResponse,
        ModelError,
        RateLimited,
        Timeout,
        Unavailable,
    )
    from agentmesh.models.gateway import PROVIDERS, Gateway
    from agentmesh.models.langchain import LangChainClient
    from agentmesh.models.llamacpp import LlamaCppClient
    from agentmesh.models.openai import OpenAIClient
    from agentmesh.models.scripted import ScriptedClient
    from agentmesh.models.spec import (
        Capability,
        ModelSpec,
        Pricing,
        Provider,
        ReplyRule,
        ScriptedBehavior,
    )
    from agentmesh.models.tokens import estimate_message_tokens, estimate_tokens
    from agentmesh.models.types import (
        Embeddings,
        ModelRequest,
        ModelResponse,
        ResponseFormat,
        StreamEvent,
        ToolCall,
        ToolSpec,
        Usage,
    )

EXPORTS = MappingProxyType(
    {
        "AnthropicClient": "agentmesh.models.anthropic",
        "Catalog": "agentmesh.models.catalog",
        "CatalogError": "agentmesh.models.catalog",
        "UnknownModel": "agentmesh.models.catalog",
        "load_catalog": "agentmesh.models.catalog",
        "ClientContext": "agentmesh.models.client",
        "ClientFactory": "agentmesh.models.client",
        "ModelClient": "agentmesh.models.client",
        "AuthError": "agentmesh.models.errors",
        "BadRequest": "agentmesh.models.errors",
        "ContentFiltered": "agentmesh.models.errors",
        "ContextOverflow": "agentmesh.models.errors",
        "MalformedResponse": "agentmesh.models.errors",
        "ModelError": "agentmesh.models.errors",
        "RateLimited": "agentmesh.models.errors",
        "Timeout": "agentmesh.models.errors",
        "Unavailable": "agentmesh.models.errors",
        "Gateway": "agentmesh.models.gateway",
        "PoolLimits": "agentmesh.models._transport",
        "PROVIDERS": "agentmesh.models.gateway",
        "LangChainClient": "agentmesh.models.langchain",
        "LlamaCppClient": "agentmesh.models.llamacpp",
        "OpenAIClient": "agentmesh.models.openai",
        "ScriptedClient": "agentmesh.models.scripted",
        "Capability": "agentmesh.models.spec",
        "ModelSpec": "agentmesh.models.spec",
        "Pricing": "agentmesh.models.spec",
        "Provider": "agentmesh.models.spec",
        "ReplyRule": "agentmesh.models.spec",
        "ScriptedBehavior": "agentmesh.models.spec",
        "estimate_message_tokens": "agentmesh.models.tokens",
        "estimate_tokens": "agentmesh.models.tokens",
        "Embeddings": "agentmesh.models.types",
        "ModelRequest": "agentmesh.models.types",
        "ModelResponse": "agentmesh.models.types",
        "ResponseFormat": "agentmesh.models.types",
        "StreamEvent": "agentmesh.models.types",
        "ToolCall": "agentmesh.models.types",
        "ToolSpec": "agentmesh.models.types",
        "Usage": "agentmesh.models.types",
    }
)
"""Public name -> the module that defines it (imported on first use: PEP 562)."""

if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_exports(__name__, EXPORTS)

__all__ = [
    "PROVIDERS",
    "AnthropicClient",
    "AuthError",
    "BadRequest",
    "Capability",
    "Catalog",
    "CatalogError",
    "ClientContext",
    "ClientFactory",
    "ContentFiltered",
    "ContextOverflow",
    "Embeddings",
    "Gateway",
    "LangChainClient",
    "LlamaCppClient",
    "MalformedResponse",
    "ModelClient",
    "ModelError",
    "ModelRequest",
    "ModelResponse",
    "ModelSpec",
    "OpenAIClient",
    "PoolLimits",
    "Pricing",
    "Provider",
    "RateLimited",
    "ReplyRule",
    "ResponseFormat",
    "ScriptedBehavior",
    "ScriptedClient",
    "StreamEvent",
    "Timeout",
    "ToolCall",
    "ToolSpec",
    "Unavailable",
    "UnknownModel",
    "Usage",
    "estimate_message_tokens",
    "estimate_tokens",
    "load_catalog",
]
