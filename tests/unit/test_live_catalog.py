"""Live catalog reload for long-running processes (issue: gateway controls, 6)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agentmesh.models import Gateway, ModelRequest, load_catalog
from agentmesh.resilience import Call, ResilientCaller
from agentmesh.resilience.live import LiveCatalog
from agentmesh.routing import Router, RouteRequest

ENTRY = """  - id: {id}
    provider: scripted
    model: {id}
    pricing: {{input: {price}, output: {price}}}
    behavior: {{reply: "{reply}"}}
"""


def _write(path: Path, *entries: tuple[str, float, str]) -> None:
    body = "".join(ENTRY.format(id=i, price=p, reply=r) for i, p, r in entries)
    path.write_text("models:\n" + body)


def _mesh(tmp_path: Path) -> tuple[ResilientCaller, Path]:
    path = tmp_path / "models.yaml"
    _write(path, ("a", 1.0, "from a"), ("b", 2.0, "from b"))
    catalog = load_catalog(path)
    return ResilientCaller(Router(catalog), Gateway(catalog)), path


async def _ask(caller: ResilientCaller) -> str:
    result = await caller.call(Call(RouteRequest(prompt="hi"), ModelRequest.of("hi")))
    return result.response.text


async def test_a_price_change_takes_effect_without_a_restart(tmp_path: Path) -> None:
    caller, path = _mesh(tmp_path)
    live = LiveCatalog(caller, path)
    assert await _ask(caller) == "from a"  # cheapest
    _write(path, ("a", 3.0, "from a"), ("b", 2.0, "from b"), ("c", 0.5, "from c, new"))
    done = await live.check()
    assert done is not None
    assert done.applied
    assert done.models == ("a", "b", "c")
    assert await _ask(caller) == "from c, new"
    assert caller.gateway.catalog["a"].pricing.input == 3.0


async def test_a_changed_entry_gets_a_new_client(tmp_path: Path) -> None:
    caller, path = _mesh(tmp_path)
    live = LiveCatalog(caller, path)
    assert await _ask(caller) == "from a"
    _write(path, ("a", 1.0, "from a, edited"), ("b", 2.0, "from b"))
    await live.reload()
    assert await _ask(caller) == "from a, edited"


async def test_a_broken_edit_keeps_the_old_catalog_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caller, path = _mesh(tmp_path)
    live = LiveCatalog(caller, path)
    path.write_text("models:\n  - id: a\n    provider: scripted\n    model: a\n    tier: 99\n")
    with caplog.at_level(logging.WARNING, logger="agentmesh.live"):
        done = await live.check()
    assert done is not None
    assert not done.applied
    assert done.models == ("a", "b")
    assert live.error is not None
    assert live.error.startswith("kept the previous catalog: ")
    assert "models.yaml" in live.error
    assert "tier" in live.error
    assert live.error in caplog.text
    assert await _ask(caller) == "from a"  # still served by the old catalog
    _write(path, ("b", 2.0, "from b"))  # the next good edit is applied
    fixed = await live.check()
    assert fixed is not None
    assert fixed.applied
    assert live.error is None
    assert await _ask(caller) == "from b"


async def test_an_unchanged_file_is_not_reloaded(tmp_path: Path) -> None:
    caller, path = _mesh(tmp_path)
    live = LiveCatalog(caller, path)
    assert await live.check() is None


async def test_a_policy_file_is_reloaded_with_the_catalog(tmp_path: Path) -> None:
    caller, path = _mesh(tmp_path)
    policy = tmp_path / "policy.yaml"
    policy.write_text("strategy: cheapest\n")
    live = LiveCatalog(caller, path, policy=policy)
    policy.write_text("strategy: cheapest\nmin_tier: 1\nresilience: {max_models: 1}\n")
    assert (await live.reload()).applied
    assert caller.resilience.max_models == 1
    policy.write_text("strategy: no-such-strategy\n")
    done = await live.check()
    assert done is not None
    assert not done.applied
    assert "unknown strategy" in (live.error or "")
    assert caller.router.policy.strategy == "cheapest"
