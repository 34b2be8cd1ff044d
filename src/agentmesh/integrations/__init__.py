"""agentmesh inside other frameworks.

- :class:`RoutedChatModel`: a LangChain ``BaseChatModel`` whose every call goes
  through the shared :class:`~agentmesh.resilience.ResilientCaller` (routing,
  retries, circuit breakers, fallbacks), for stock LangChain/LangGraph agents.
"""

from __future__ import annotations

from agentmesh.integrations.langchain_chat import RoutedChatModel

__all__ = ["RoutedChatModel"]
