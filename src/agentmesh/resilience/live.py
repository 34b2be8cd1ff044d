"""Live catalog: a long-running process reloads its catalog and policy when their files change.

``async with LiveCatalog(caller, "models.yaml", policy="policy.yaml"):`` checks
the files every ``interval_s`` seconds (their modification time and size) and,
when one changed, loads both again and hands them to the caller's router and
gateway: prices, tiers, limits, weights (a strategy's ``params``), new and
removed entries take effect from the next call, without a restart. What the
routing state holds (statistics, breakers, budgets) is kept, by model id.

A broken edit (invalid YAML, a bad field, an unknown strategy, an empty
catalog) changes nothing: the previous catalog and policy stay in force and
:attr:`LiveCatalog.error` says why, naming the file and line; it is also
logged (``agentmesh.live``) and traced (a ``catalog reload`` span with
``error.type``). The next good edit is picked up as usual.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from agentmesh.models.catalog import CatalogError, load_catalog
from agentmesh.resilience.background import BackgroundLoop
from agentmesh.resilience.caller import ResilientCaller
from agentmesh.resilience.policy import load_call_policy
from agentmesh.routing.policy import PolicyError
from agentmesh.routing.router import Router
from agentmesh.tracing import span

__all__ = ["LiveCatalog", "Reload"]

_log = logging.getLogger("agentmesh.live")


@dataclass(frozen=True, slots=True)
class Reload:
    """What one reload did.

    Attributes:
        applied: The new catalog (and policy) are in force.
        models: The catalog's model ids after the reload (the old ones if not applied).
        error: Why nothing changed, when not applied.
    """

    applied: bool
    models: tuple[str, ...]
    error: str | None = None


def _signature(path: Path | None) -> tuple[int, int] | None:
    if path is None:
        return None
    try:
        found = os.stat(path)
    except OSError:
        return (-1, -1)
    return (found.st_mtime_ns, found.st_size)


class LiveCatalog(BackgroundLoop):
    """Keeps ``caller`` on the current contents of a catalog file (and a policy file).

    Args:
        caller: Whose router and gateway are updated.
        catalog: The catalog YAML.
        policy: A policy YAML (routing keys and a ``resilience:`` block), if any.
        interval_s: Seconds between checks of the files.
        sleep: How to wait between checks (tests inject one).
    """

    def __init__(
        self,
        caller: ResilientCaller,
        catalog: str | Path,
        *,
        policy: str | Path | None = None,
        interval_s: float = 2.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.caller = caller
        self.catalog_path = Path(catalog)
        self.policy_path = None if policy is None else Path(policy)
        self.interval_s = interval_s
        self.error: str | None = None
        self._sleep = sleep
        self._seen = self._signatures()

    def _signatures(self) -> tuple[tuple[int, int] | None, ...]:
        return (_signature(self.catalog_path), _signature(self.policy_path))

    async def reload(self) -> Reload:
        """Load the files again and apply them, or keep what is in force and say why."""
        router, gateway = self.caller.router, self.caller.gateway
        with span("catalog reload", {"agentmesh.catalog.source": str(self.catalog_path)}) as scope:
            try:
                catalog = load_catalog(self.catalog_path)
                if self.policy_path is None:
                    routing, resilience = router.policy, self.caller.resilience
                else:
                    routing, resilience = load_call_policy(self.policy_path)
                Router(catalog, policy=routing)  # every check a new router makes
            except (CatalogError, PolicyError, ValueError) as exc:
                self.error = f"kept the previous catalog: {exc}"
                scope.set("error.type", type(exc).__name__)
                scope.set("agentmesh.catalog.error", self.error)
                _log.warning("%s", self.error)
                return Reload(False, tuple(router.catalog), self.error)
            router.use_catalog(catalog, routing)
            self.caller.resilience = resilience
            await gateway.use_catalog(catalog)
            self.error = None
            scope.set("agentmesh.catalog.models", len(catalog))
        _log.info("catalog reloaded from %s: %d models", self.catalog_path, len(catalog))
        return Reload(True, tuple(catalog))

    async def check(self) -> Reload | None:
        """Reload if a file changed since the last look; ``None`` when none did."""
        seen = self._signatures()
        if seen == self._seen:
            return None
        self._seen = seen
        return await self.reload()

    async def run(self) -> None:
        """Check forever (until cancelled)."""
        while True:
            await self._sleep(self.interval_s)
            await self.check()
