"""The gateway layer: one contract over every model provider.

Catalog (:class:`ModelSpec`, :func:`load_catalog`), the :class:`ModelClient`
contract with its adapters, the error taxonomy, and the :class:`Gateway`.
"""

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
    ModelRequest,
    ModelResponse,
    ResponseFormat,
    StreamEvent,
    ToolCall,
    ToolSpec,
    Usage,
)

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
