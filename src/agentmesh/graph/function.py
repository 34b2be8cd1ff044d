"""The ``function`` node kind: a Python function on values of the run, no model.

.. code-block:: yaml

    publish:
      kind: function
      function: approval_steps.py:publish     # or package.module.function, module:function
      inputs: {text: $draft, approved_by: $review.feedback}

The function reads the run through its ``inputs`` (references resolved) and
updates it through what it returns: the node's answer, as any node's. It may
be sync or async; a sync one runs on the event loop, so it should be quick
(wrap slow work in ``asyncio.to_thread`` in an async function).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from agentmesh.graph.nodes import NodeFailed, NodeRunner, answer
from agentmesh.graph.records import usage_update
from agentmesh.graph.runtime import Runtime
from agentmesh.graph.spec import FunctionNode, GraphSpec
from agentmesh.graph.state import Branch, RunState
from agentmesh.tracing import SpanScope

__all__ = ["FunctionRunner", "import_object", "load_callable"]


def import_object(target: str, base: Path | None = None) -> Any:
    """The object ``target`` names: ``module:attr``, ``file.py:attr`` or ``package.module.attr``.

    Args:
        target: The path.
        base: The folder a relative ``file.py`` is in (default: the current one).

    Raises:
        ImportError: The module or file cannot be loaded.
        AttributeError: It has no such attribute.
    """
    where, colon, attribute = target.rpartition(":")
    if not colon:
        where, _, attribute = target.rpartition(".")
    if where.endswith(".py"):
        file = ((base or Path.cwd()) / where).resolve()
        spec = importlib.util.spec_from_file_location(f"agentmesh_user_{file.stem}", file)
        if spec is None or spec.loader is None:
            raise ImportError(f"{file} is not a Python file")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    return getattr(module, attribute)


def load_callable(target: str | Callable[..., Any], base: Path | None = None) -> Callable[..., Any]:
    """The callable ``target`` names (see :func:`import_object`), or ``target`` itself.

    Raises:
        ImportError: The module or file cannot be loaded.
        AttributeError: It has no such attribute.
        TypeError: The attribute is not callable.
    """
    if callable(target):
        return target
    found = import_object(target, base)
    if not callable(found):
        raise TypeError(f"{target!r} is a {type(found).__name__}, not a function")
    return cast("Callable[..., Any]", found)


class FunctionRunner(NodeRunner):
    """Calls the node's function with its resolved inputs; its return value is the answer."""

    kind = "function"
    node: FunctionNode

    def __init__(self, name: str, node: Any, graph: GraphSpec, runtime: Runtime) -> None:
        super().__init__(name, node, graph, runtime)
        self.function = load_callable(node.function)

    async def run(self, state: RunState, branch: Branch, scope: SpanScope) -> dict[str, Any]:
        """Resolve the inputs, call (await a coroutine), record the answer.

        Raises:
            NodeFailed: The function raised (``function_error``, naming it).
        """
        kwargs = {k: self.resolve(v, state, branch) for k, v in self.node.inputs.items()}
        try:
            value = self.function(**kwargs)
            if inspect.isawaitable(value):
                value = await value
        except Exception as exc:  # a user's function: any failure fails the node, named
            what = getattr(self.function, "__qualname__", repr(self.function))
            raise NodeFailed(
                self.name, "function_error", f"{what} raised {type(exc).__name__}: {exc}"
            ) from exc
        data = value if isinstance(value, dict | list) else None
        if data is not None:
            text = json.dumps(value, ensure_ascii=False, default=str)
        else:
            text = "" if value is None else str(value)
        record = self.step(branch, [], output=data if data is not None else text)
        result = answer(text, None, branch, data=data)
        return {"results": {self.name: {branch["key"]: result}}, **usage_update([record])}
