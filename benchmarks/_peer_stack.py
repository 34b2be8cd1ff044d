"""The peer stack of ``node_overhead.py``: what the nodes of the same LangGraph graphs call.

Every *peer* arm calls one loopback OpenAI-compatible stub (``_stub_server.py``,
a separate process), so the models are served identically to every stack:

* ``httpx_ask``: a bare ``httpx.AsyncClient`` POST and ``response.json()``;
* ``gateway_ask``: ``agentmesh.models.Gateway.invoke`` on an ``openai`` entry;
* ``litellm_routers``: ``litellm.Router`` over the same two-model pool as
  agentmesh's catalog (``stub_catalog``): the same prices, the same retries
  (3 calls of a model), cooldown after 5 failures, fallbacks to the other model;
* agentmesh itself runs over ``stub_catalog`` (``openai`` entries with ``base_url``).

Each arm tags its requests (header ``x-bench-arm``) so that the stub counts the
requests of every arm: one request per node execution means no arm retried or
fell back. :func:`guard_loopback` blocks and records every network access that is
not to a loopback address (an audit hook), so that what is measured is proven
offline; LiteLLM is imported with its local cost map.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = [
    "ARM_HEADER",
    "LITELLM_ENV",
    "Ask",
    "NetworkGuard",
    "aclose_routers",
    "PeerModel",
    "gateway_ask",
    "guard_loopback",
    "httpx_ask",
    "import_litellm",
    "latency_history",
    "litellm_ask",
    "litellm_routers",
    "stub_catalog",
    "stub_catalog_text",
]

Ask = Callable[[str], Awaitable[str]]
"""What a node of the raw graphs awaits: one prompt in, the model's text out."""

ARM_HEADER = "x-bench-arm"


@dataclass(frozen=True, slots=True)
class PeerModel:
    """One model of the two-model pool (USD per million tokens)."""

    id: str
    tier: int
    input_per_m: float
    output_per_m: float


POOL = (PeerModel("cheap", 1, 0.15, 0.60), PeerModel("dear", 2, 2.50, 10.00))
"""The pool both stacks get: agentmesh's ``cheapest`` picks ``cheap``, then falls back."""
STUB_MODEL = "stub"
TIMEOUT_S = 30.0
RETRIES = 2
"""Retries after the first call of a model: agentmesh's default ``max_attempts`` is 3."""
ALLOWED_FAILS = 4
"""LiteLLM cools a deployment down after more than this: agentmesh's breaker opens at 5."""
COOLDOWN_S = 30.0

LITELLM_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOG": "ERROR",
    "LITELLM_TELEMETRY": "False",
    "LITELLM_DONT_SHOW_FEEDBACK_BOX": "True",
}
"""Set before litellm is imported: the bundled cost map, no telemetry, quiet logs."""

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
_NETWORK_EVENTS = frozenset(
    {"socket.connect", "socket.sendto", "socket.getaddrinfo", "socket.gethostbyname"}
)


def _is_loopback(host: object) -> bool:
    """Whether ``host`` (a name, an address or ``None`` for a passive lookup) stays local."""
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


@dataclass(slots=True)
class NetworkGuard:
    """What the audit hook saw: refused (non-loopback) accesses and the events it inspected."""

    refused: list[str] = field(default_factory=list)
    events: int = 0

    def report(self) -> dict[str, Any]:
        """The JSON summary."""
        return {"non_loopback_refused": self.refused[:20], "network_events": self.events}


def guard_loopback() -> NetworkGuard:
    """Install an audit hook that refuses any connection or lookup not on loopback.

    The hook cannot be removed (audit hooks live as long as the process), so call
    it once, in a process that only benchmarks. A refused access raises
    ``PermissionError`` where it was attempted and is recorded in the guard.
    """
    guard = NetworkGuard()

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event not in _NETWORK_EVENTS:
            return
        guard.events += 1
        if event in ("socket.connect", "socket.sendto"):
            address = args[-1]
            if not isinstance(address, tuple):  # AF_UNIX paths are local
                return
            host = address[0]
        else:
            host = args[0]
        if not _is_loopback(host):
            guard.refused.append(f"{event} {host!r}")
            raise PermissionError(f"benchmark: network access to {host!r} refused (loopback only)")

    sys.addaudithook(hook)
    return guard


def stub_catalog_text(base_url: str, arm: str) -> str:
    """The two-model pool as the text of a catalog of ``openai`` entries on the stub."""
    lines = ["description: Two-model pool on the loopback stub (node_overhead.py).", "models:"]
    for model in POOL:
        lines += [
            f"  - id: {model.id}",
            "    provider: openai",
            f"    model: {STUB_MODEL}",
            f"    base_url: {base_url}",
            f"    tier: {model.tier}",
            f"    pricing: {{input: {model.input_per_m}, output: {model.output_per_m}}}",
            f"    timeout_s: {TIMEOUT_S}",
            "    capabilities: [json]",
            f"    headers: {{{ARM_HEADER}: {arm}}}",
        ]
    return "\n".join(lines) + "\n"


def stub_catalog(base_url: str, arm: str) -> Any:
    """The two-model pool as an agentmesh catalog of ``openai`` entries on the stub.

    Written as a catalog file and loaded with ``load_catalog``, the way users do.
    """
    from agentmesh.models import load_catalog

    with tempfile.TemporaryDirectory(prefix="agentmesh-peer-") as folder:
        path = Path(folder) / "catalog.yaml"
        path.write_text(stub_catalog_text(base_url, arm), encoding="utf-8")
        return load_catalog(path)


def gateway_ask(gateway: Any, model_id: str) -> Ask:
    """``gateway.invoke(model_id, ModelRequest.of(prompt))``, its text."""
    from agentmesh.models import ModelRequest

    async def ask(prompt: str) -> str:
        response = await gateway.invoke(model_id, ModelRequest.of(prompt))
        text: str = response.text
        return text

    return ask


@contextlib.asynccontextmanager
async def httpx_ask(base_url: str, arm: str) -> AsyncIterator[Ask]:
    """A bare ``httpx`` POST per call on one pooled client (closed on exit)."""
    import httpx

    url = f"{base_url}/chat/completions"
    async with httpx.AsyncClient(headers={ARM_HEADER: arm}, timeout=TIMEOUT_S) as client:

        async def ask(prompt: str) -> str:
            body = {"model": STUB_MODEL, "messages": [{"role": "user", "content": prompt}]}
            response = await client.post(url, json=body)
            response.raise_for_status()
            text: str = response.json()["choices"][0]["message"]["content"]
            return text

        yield ask


def import_litellm(env: Mapping[str, str] = LITELLM_ENV) -> tuple[ModuleType | None, str]:
    """Import litellm offline and quietly; return it (or ``None``) and its version or why not.

    ``env`` is set first (litellm reads it at import): by default the offline,
    quiet settings; a benchmark may add its own (``faults.py``: backoff constants).
    """
    os.environ.update(env)
    try:
        import litellm
    except ImportError as exc:
        return None, f"litellm is not installed ({exc}); install it with: pip install -e '.[bench]'"
    except Exception as exc:  # a broken install is a reason to skip, not to crash
        return None, f"importing litellm failed: {type(exc).__name__}: {exc}"
    litellm.suppress_debug_info = True
    litellm.telemetry = False
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "litellm"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        found = version("litellm")
    except PackageNotFoundError:
        found = str(getattr(litellm, "__version__", "unknown"))
    return litellm, found


def _deployment(base_url: str, arm: str, group: str, model: PeerModel) -> dict[str, Any]:
    """One LiteLLM deployment of ``model`` on the stub, priced like agentmesh's entry.

    The prices matter: for a model missing from its cost map LiteLLM runs a
    zero-cost diagnostic over the whole map on every call (milliseconds).
    """
    return {
        "model_name": group,
        "litellm_params": {
            "model": f"openai/{STUB_MODEL}",
            "api_base": base_url,
            "api_key": "unused",
            "max_retries": 0,  # the OpenAI SDK's own retries: the Router retries
            "timeout": TIMEOUT_S,
            "extra_headers": {ARM_HEADER: arm},
            "input_cost_per_token": model.input_per_m / 1e6,
            "output_cost_per_token": model.output_per_m / 1e6,
        },
        "model_info": {"id": f"{group}-{model.id}"},
    }


LATENCY_GROUP = "pool"


def litellm_routers(
    litellm: ModuleType, base_url: str, arm: str, *, latency: bool = True
) -> dict[str, tuple[Any, str]]:
    """LiteLLM Routers over the pool: ``{mode: (router, model group to call)}``.

    ``router``: one model group per model, ``cheap`` falling back to ``dear``
    (LiteLLM's default ``simple-shuffle`` has one deployment to pick from: the
    cheapest LiteLLM setup with fallbacks). ``latency``: both models in one group,
    ``latency-based-routing`` choosing from the latency history its own success
    callback records from these very calls.
    """
    settings: dict[str, Any] = {
        "num_retries": RETRIES,
        "allowed_fails": ALLOWED_FAILS,
        "cooldown_time": COOLDOWN_S,
        "timeout": TIMEOUT_S,
    }
    cheap, dear = POOL
    router = litellm.Router(
        model_list=[_deployment(base_url, arm, m.id, m) for m in POOL],
        fallbacks=[{cheap.id: [dear.id]}],
        **settings,
    )
    routers = {"router": (router, cheap.id)}
    if latency:
        by_latency = litellm.Router(
            model_list=[_deployment(base_url, arm, LATENCY_GROUP, m) for m in POOL],
            routing_strategy="latency-based-routing",
            **settings,
        )
        routers["latency"] = (by_latency, LATENCY_GROUP)
    return routers


def litellm_ask(router: Any, group: str) -> Ask:
    """``await router.acompletion(model=group, messages=[user prompt])``, its text."""

    async def ask(prompt: str) -> str:
        response = await router.acompletion(
            model=group, messages=[{"role": "user", "content": prompt}]
        )
        text: str = response.choices[0].message.content
        return text

    return ask


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def latency_history(router: Any) -> dict[str, Any]:
    """The latency history LiteLLM's latency-based routing holds per deployment.

    LiteLLM keeps it in its router cache under ``<group>_map``, one list per
    deployment; the list's key has changed between versions (``latency``, now
    ``latency_normalized``), so every list-valued key is reported with its length.
    """
    with _quiet():
        selector = getattr(router, "lowestlatency_logger", None)
        cache = getattr(selector, "router_cache", None)
        if cache is None:
            return {"error": "no lowestlatency_logger.router_cache on this LiteLLM Router"}
        stored = cache.get_cache(key=f"{LATENCY_GROUP}_map") or {}
    return {
        deployment: {k: len(v) for k, v in entry.items() if isinstance(v, list)}
        for deployment, entry in stored.items()
        if isinstance(entry, Mapping)
    }


async def aclose_routers(routers: Mapping[str, tuple[Any, str]]) -> None:
    """Drop the routers' process-wide registrations and close LiteLLM's pooled clients."""
    with _quiet():
        for router, _ in routers.values():
            close = getattr(router, "retire", None) or getattr(router, "discard", None)
            if close is not None:
                close()
    with contextlib.suppress(Exception):  # best effort: the process ends next
        from litellm.llms.custom_httpx.async_client_cleanup import close_litellm_async_clients

        await close_litellm_async_clients()  # type: ignore[no-untyped-call]
