"""The layer profile benchmarks/node_overhead.py and run_concurrency.py print."""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SITE = "/venv/lib/python3.11/site-packages"


@pytest.fixture
def profiling(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("_layer_profile")


@pytest.mark.parametrize(
    ("filename", "group"),
    [
        ("/repo/src/agentmesh/graph/nodes.py", "graph"),
        ("/repo/src/agentmesh/graph/memory_saver.py", "checkpointer"),
        ("/repo/src/agentmesh/prompts/library.py", "prompts"),
        ("/repo/src/agentmesh/limits.py", "agentmesh_other"),
        (f"{SITE}/langgraph/pregel/_algo.py", "langgraph"),
        (f"{SITE}/langgraph/checkpoint/memory/__init__.py", "checkpointer"),
        (f"{SITE}/langchain_core/runnables/config.py", "langgraph"),
        (f"{SITE}/jinja2/runtime.py", "prompts"),
        (f"{SITE}/opentelemetry/sdk/trace/__init__.py", "tracing"),
        ("/usr/lib/python3.11/asyncio/base_events.py", "event_loop"),
        ("/repo/prompts/execute_step.j2", "prompts"),
        ("/usr/lib/python3.11/dataclasses.py", None),
        ("~", None),
    ],
)
def test_each_file_belongs_to_its_layer_and_the_rest_to_their_callers(
    profiling: ModuleType, filename: str, group: str | None
) -> None:
    assert profiling.group_of(filename) == group


def test_a_builtin_called_by_two_layers_is_shared_by_what_each_spent_in_it(
    profiling: ModuleType,
) -> None:
    graph = ("/repo/src/agentmesh/graph/nodes.py", 1, "run")
    prompts = ("/repo/src/agentmesh/prompts/library.py", 1, "render")
    builtin = ("~", 0, "<built-in method builtins.isinstance>")
    stats = {
        graph: (1, 1, 0.003, 0.006, {}),
        prompts: (1, 1, 0.001, 0.004, {}),
        builtin: (4, 4, 0.004, 0.004, {graph: (3, 3, 0.003, 0.003), prompts: (1, 1, 0.001, 0.001)}),
    }
    own, calls, _ = profiling._Attribution(stats).groups()
    assert own == pytest.approx({"graph": 0.006, "prompts": 0.002})
    assert calls == pytest.approx({"graph": 4, "prompts": 2})


def test_a_breakdown_adds_up_to_the_measured_time_with_the_collector_apart(
    profiling: ModuleType,
) -> None:
    profile = {"us": {"langgraph": 30.0, "prompts": 10.0}, "calls": {}, "top": {}}
    found = profiling.breakdown(100.0, 20.0, [profile])
    assert found["us"] == {"langgraph": 60.0, "prompts": 20.0, "gc": 20.0}
    extra = profiling.difference(found["us"], {"langgraph": 50.0, "gc": 5.0})
    assert extra == {"prompts": 20.0, "gc": 15.0, "langgraph": 10.0}


def test_the_collector_clock_counts_each_collection_by_generation(profiling: ModuleType) -> None:
    import gc

    with profiling.GcClock() as clock:
        gc.collect(0)
        gc.collect(2)
    assert clock.collections[0] >= 1
    assert clock.collections[2] >= 1
    assert clock.total_ns > 0


def test_a_profile_of_awaited_runs_is_given_per_unit(profiling: ModuleType) -> None:
    async def run() -> None:
        await asyncio.sleep(0)

    profile = asyncio.run(profiling.profiled(run, 4))
    found = profiling.attribute(profile, 4, 0.0)
    assert found["calls"]["event_loop"] > 0
    assert set(found["us"]) <= set(profiling.GROUPS)
