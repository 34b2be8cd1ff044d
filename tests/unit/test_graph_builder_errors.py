"""Python builder mistakes name the node, the wrong keyword and the right one."""

from __future__ import annotations

import pytest

from agentmesh.graph import GraphError, Workflow


def problems(call: object) -> list[str]:
    assert isinstance(call, GraphError)
    return call.problems


def test_a_wrong_executor_keyword_names_the_node_and_the_right_one() -> None:
    wf = Workflow("w")
    with pytest.raises(GraphError) as info:
        wf.executor("solve", prompt="execute_step", input={"question": "$input"})
    assert problems(info.value) == [
        "executor node 'solve': unknown keyword input=; did you mean inputs=?"
    ]
    assert "Extra inputs are not permitted" not in str(info.value)


def test_merge_from_underscore_points_at_sources() -> None:
    wf = Workflow("w")
    with pytest.raises(GraphError) as info:
        wf.merge("final", from_="solve", synthesis="vote")
    assert problems(info.value) == [
        "merge node 'final': unknown keyword from_=; did you mean sources=?"
    ]
    assert "Field required" not in str(info.value)


def test_a_missing_or_invalid_keyword_is_named_by_its_python_name() -> None:
    wf = Workflow("w")
    with pytest.raises(GraphError) as info:
        wf.merge("final", synthesis="vote")
    assert problems(info.value) == ["merge node 'final': sources=: required field is missing"]
    with pytest.raises(GraphError) as info:
        wf.executor("solve", prompt="p", max_iterations=0)
    (problem,) = problems(info.value)
    assert problem.startswith("executor node 'solve': max_iterations=: ")
    assert "(got 0)" in problem


def test_unrecognisable_keywords_list_the_known_ones() -> None:
    with pytest.raises(GraphError) as info:
        Workflow("w").tool("t", tool="shout", zzz=1)
    (problem,) = problems(info.value)
    assert problem.startswith("tool node 't': unknown keyword zzz= (known: arguments, ")


def test_graph_keywords_are_checked_when_the_workflow_is_made() -> None:
    with pytest.raises(GraphError) as info:
        Workflow("w", budget=0.1)
    assert problems(info.value) == [
        "workflow 'w': unknown keyword budget=; did you mean budget_usd=?"
    ]
    wf = Workflow("w", budget_usd=-1).executor("a", prompt="p")
    with pytest.raises(GraphError) as info:
        wf.spec()
    (problem,) = problems(info.value)
    assert problem.startswith("workflow 'w': budget_usd=: ")


def test_a_node_name_given_twice_is_named() -> None:
    wf = Workflow("w").executor("a", prompt="p")
    with pytest.raises(GraphError, match="executor node 'a': a node 'a' is already defined"):
        wf.executor("a", prompt="p")


def test_one_problem_is_one_problem() -> None:
    assert str(GraphError("g", ["x"])).startswith("graph 'g' is invalid (1 problem):")
    assert "(2 problems)" in str(GraphError("g", ["x", "y"]))


def test_the_yaml_alias_from_still_works_in_python() -> None:
    wf = Workflow("w").executor("a", prompt="p").merge("m", **{"from": "a"}, synthesis="vote")
    assert wf.spec().nodes["m"].sources == ("a",)  # type: ignore[union-attr]
