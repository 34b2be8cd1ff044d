"""agentmesh inside other frameworks.

- :class:`RoutedChatModel`: a LangChain ``BaseChatModel`` whose every call goes
  through the shared :class:`~agentmesh.resilience.ResilientCaller` (routing,
  retries, circuit breakers, fallbacks), for stock LangChain/LangGraph agents.
- :class:`NodeUsageHandler`: a LangChain callback handler adding up token usage
  and cost per LangGraph node, for graphs run without agentmesh's runner.
"""

from __future__ import annotations

from agentmesh.integrations.langchain_chat import RoutedChatModel
from agentmesh.integrations.usage import NodeUsage, NodeUsageHandler

__all__ = ["NodeUsage", "NodeUsageHandler", "RoutedChatModel"]
