"""agentmesh."""
