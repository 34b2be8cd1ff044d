"""A Jinja sandbox whose renders are bounded in size, time and loop iterations.

Jinja's sandbox stops templates reaching Python internals but not from asking
for a gigabyte (``{{ ''|center(10**9) }}``, ``'{0:>1000000000}'.format(1)``,
``'x' * 10**9``, ``lipsum(n=10**6)``) or for 10^10 loop iterations (nested
``range`` loops). :class:`BoundedSandbox` refuses those before the work is
done, with the :class:`~agentmesh.limits.RenderLimits` of its library:

* every string or list an operator, call or filter would build is checked
  against ``max_chars`` first where its size is known in advance (repetition,
  padding, formatting widths, ``join``, ``replace``, ``indent``...), and after
  otherwise (so it cannot grow by doubling);
* every ``for`` loop counts its iterations against ``max_iterations`` (the
  template's AST is rewritten at parse time so each loop's iterable passes a
  guard; nested loops multiply, so their product is what is bounded);
* the rendered text is produced piece by piece and stops at ``max_chars``;
* the wall clock is checked at every loop iteration, call and piece
  (``max_seconds``).

Exceeding a limit raises :class:`RenderLimitExceeded`, which the library turns
into a :class:`~agentmesh.prompts.PromptError` naming the template and the limit.
Constant folding is off, so nothing of this runs when a template is compiled.
"""

from __future__ import annotations

import math
import re
import string
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from functools import update_wrapper
from typing import Any

from jinja2 import TemplateSyntaxError, nodes
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.utils import generate_lorem_ipsum
from jinja2.visitor import NodeTransformer

from agentmesh.limits import RenderLimits

__all__ = ["BoundedSandbox", "RenderLimitExceeded", "render_bounded"]

_LOOP_FILTER = "_agentmesh_bounded_loop"
_SIZE_FILTER = "_agentmesh_bounded_size"
_TOO_DEEP = "expressions or blocks nested too deeply to compile"
_INT_BITS = 100_000
"""Largest integer an expression may build, in bits (about 30,000 digits)."""


class RenderLimitExceeded(Exception):
    """A render went past one of its :class:`~agentmesh.limits.RenderLimits`.

    Attributes:
        limit: Which limit (``max_chars``, ``max_seconds``, ``max_iterations``).
        detail: What was refused, naming the limit's value and variable.
    """

    def __init__(self, limit: str, detail: str) -> None:
        self.limit = limit
        self.detail = detail
        super().__init__(detail)


_VARIABLE = {
    "max_chars": "AGENTMESH_MAX_RENDER_CHARS",
    "max_seconds": "AGENTMESH_MAX_RENDER_SECONDS",
    "max_iterations": "AGENTMESH_MAX_RENDER_ITERATIONS",
}


class _Budget:
    """What one render has spent so far."""

    def __init__(self, limits: RenderLimits) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.max_seconds
        self.iterations = 0
        self.output = 0

    def exceeded(self, limit: str, what: str) -> RenderLimitExceeded:
        value = getattr(self.limits, limit)
        return RenderLimitExceeded(
            limit,
            f"render limit {limit}={value} exceeded: {what} (raise it with {_VARIABLE[limit]})",
        )

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise self.exceeded("max_seconds", f"the render ran past {self.limits.max_seconds} s")

    def allow(self, chars: int | float, what: str) -> None:
        if chars > self.limits.max_chars:
            raise self.exceeded("max_chars", f"{what} would be {int(chars)} characters long")

    def allow_int(self, bits: int | float, what: str) -> None:
        if bits > _INT_BITS:
            raise self.exceeded("max_chars", f"{what} would be a {int(bits)}-bit integer")

    def check(self, value: object, what: str) -> object:
        if isinstance(value, str | bytes | list | tuple | dict | set | frozenset):
            self.allow(len(value), what)
        elif isinstance(value, int) and not isinstance(value, bool):
            self.allow_int(value.bit_length(), what)
        return value


_CURRENT: ContextVar[_Budget | None] = ContextVar("agentmesh_render_budget", default=None)


def _budget() -> _Budget:
    """The budget of the render in progress (a fresh default one outside a render)."""
    return _CURRENT.get() or _Budget(RenderLimits())


def render_bounded(template: Any, context: Mapping[str, Any], limits: RenderLimits) -> str:
    """Render ``template`` (of a :class:`BoundedSandbox`) within ``limits``.

    Raises:
        RenderLimitExceeded: Output, time or loop iterations past the limits.
    """
    budget = _Budget(limits)
    token = _CURRENT.set(budget)
    try:
        parts: list[str] = []
        for part in template.generate(context):
            budget.output += len(part)
            budget.allow(budget.output, "the rendered text")
            budget.tick()
            parts.append(part)
        return "".join(parts)
    finally:
        _CURRENT.reset(token)


def _bounded_loop(iterable: Iterable[Any]) -> Iterator[Any]:
    budget = _budget()
    for item in iterable:
        budget.iterations += 1
        if budget.iterations > budget.limits.max_iterations:
            raise budget.exceeded(
                "max_iterations", f"loops ran more than {budget.limits.max_iterations} iterations"
            )
        budget.tick()
        yield item


def _bounded_size(value: Any) -> Any:
    return _budget().check(value, "a joined string")


def _size_of(value: object) -> int:
    return len(value) if isinstance(value, str | list | tuple) else len(str(value))


_PRINTF = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_NUMBER = re.compile(r"\d+")


def _check_printf(budget: _Budget, spec: str, what: str) -> None:
    for match in _PRINTF.finditer(spec):
        for part in match.groups():
            if part == "*":
                raise budget.exceeded("max_chars", f"{what}: '*' widths are not allowed")
            if part is not None:
                budget.allow(int(part), f"{what} (width {part})")


def _check_spec(budget: _Budget, spec: str, what: str) -> None:
    for number in _NUMBER.findall(spec):
        budget.allow(int(number), f"{what} (width {number})")


class _BoundedFormatter(SandboxedFormatter):
    """``str.format`` in the sandbox, refusing widths and precisions past ``max_chars``."""

    def format_field(self, value: Any, format_spec: str) -> Any:
        budget = _budget()
        _check_spec(budget, format_spec, "a format field")
        return budget.check(super().format_field(value, format_spec), "a format field")


def _check_str_method(budget: _Budget, name: str, text: str, args: tuple[Any, ...]) -> None:
    """Refuse a ``str`` method call whose result would exceed ``max_chars``."""
    what = f"str.{name}()"
    if name in ("center", "ljust", "rjust", "zfill") and args and isinstance(args[0], int):
        budget.allow(args[0], what)
    elif name == "expandtabs":
        tab = args[0] if args and isinstance(args[0], int) else 8
        budget.allow(len(text) + text.count("\t") * tab, what)
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], str):
        count = len(text) + 1 if not args[0] else text.count(args[0])
        budget.allow(len(text) + count * (_size_of(args[1]) - len(args[0])), what)
    elif name == "translate" and args and isinstance(args[0], Mapping):
        longest = max((_size_of(v) for v in args[0].values() if v is not None), default=1)
        budget.allow(len(text) * longest, what)


def _join_size(separator: str, items: list[Any]) -> int:
    return sum(_size_of(item) for item in items) + max(len(items) - 1, 0) * len(separator)


class _Guard(NodeTransformer):
    """Rewrite a template's AST so loops, joins and captured blocks pass a guard."""

    def _wrap(self, node: nodes.Node | None, name: str, lineno: int) -> nodes.Filter:
        return nodes.Filter(node, name, [], [], None, None, lineno=lineno)

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = self._wrap(node.iter, _LOOP_FILTER, node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return self._wrap(node, _SIZE_FILTER, node.lineno)

    def visit_AssignBlock(self, node: nodes.AssignBlock) -> nodes.Node:
        self.generic_visit(node)
        node.filter = self._wrap(node.filter, _SIZE_FILTER, node.lineno)
        return node


def _guard_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` (a Jinja filter) with its arguments and result checked."""
    check = _FILTER_CHECKS.get(name)
    passes_first = getattr(function, "jinja_pass_arg", None) is not None  # context/environment

    def guarded(*args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.tick()
        values = list(args[1:] if passes_first else args)
        for value in (*values[1:], *kwargs.values()):
            if isinstance(value, int) and not isinstance(value, bool):
                budget.allow(value, f"filter {name!r} (argument {value})")
        if check is not None and values:
            check(budget, values[0], values[1:], kwargs)
        return budget.check(function(*args, **kwargs), f"filter {name!r}")

    return update_wrapper(guarded, function)  # keeps Jinja's pass_context marks


def _check_join(budget: _Budget, value: Any, args: list[Any], kwargs: Mapping[str, Any]) -> None:
    separator = args[0] if args else kwargs.get("d", "")
    if isinstance(value, list | tuple | range):
        budget.allow(_join_size(str(separator), list(value)), "filter 'join'")


def _check_replace(budget: _Budget, value: Any, args: list[Any], kwargs: Mapping[str, Any]) -> None:
    if isinstance(value, str) and len(args) >= 2:
        _check_str_method(budget, "replace", value, (str(args[0]), str(args[1])))


def _check_indent(budget: _Budget, value: Any, args: list[Any], kwargs: Mapping[str, Any]) -> None:
    width = args[0] if args else kwargs.get("width", 4)
    pad = width if isinstance(width, int) else _size_of(width)  # spaces, or the string itself
    text = str(value)
    budget.allow(len(text) + (text.count("\n") + 1) * pad, "filter 'indent'")


def _check_format(budget: _Budget, value: Any, args: list[Any], kwargs: Mapping[str, Any]) -> None:
    _check_printf(budget, str(value), "filter 'format'")


def _check_wordwrap(
    budget: _Budget, value: Any, args: list[Any], kwargs: Mapping[str, Any]
) -> None:
    text = str(value)
    wrap = args[2] if len(args) > 2 else kwargs.get("wrapstring") or "\n"
    budget.allow(len(text) * (1 + _size_of(wrap)), "filter 'wordwrap'")


def _check_tojson(budget: _Budget, value: Any, args: list[Any], kwargs: Mapping[str, Any]) -> None:
    indent = args[0] if args else kwargs.get("indent")
    if isinstance(indent, int) and indent > 16:
        raise budget.exceeded("max_chars", f"filter 'tojson' (indent {indent} > 16)")


_FILTER_CHECKS: Mapping[str, Callable[[_Budget, Any, list[Any], Mapping[str, Any]], None]] = {
    "join": _check_join,
    "replace": _check_replace,
    "indent": _check_indent,
    "format": _check_format,
    "wordwrap": _check_wordwrap,
    "tojson": _check_tojson,
}


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    budget = _budget()
    budget.allow(n * max * 12, f"lipsum(n={n}, max={max})")
    return generate_lorem_ipsum(n=n, html=html, min=min, max=max)


def _check_binop(budget: _Budget, operator: str, left: Any, right: Any) -> None:
    numbers = isinstance(left, int) and isinstance(right, int)
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, str | list | tuple) and isinstance(times, int):
                budget.allow(len(seq) * times, "a repetition ('*')")
        if numbers:
            budget.allow_int(abs(left).bit_length() + abs(right).bit_length(), "a product")
    elif operator == "**" and numbers and right > 0 and abs(left) > 1:
        budget.allow_int(right * math.log2(abs(left)), "a power ('**')")
    elif operator == "%" and isinstance(left, str):
        _check_printf(budget, left, "a '%' format")


def _deepest_line(source: str) -> int:
    """1-based line where brackets nest deepest (where a too-deep template goes wrong)."""
    depth, deepest, line, at = 0, 0, 1, 1
    for char in source:
        if char == "\n":
            line += 1
        elif char in "([{":
            depth += 1
            if depth > deepest:
                deepest, at = depth, line
        elif char in ")]}":
            depth -= 1
    return at


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with renders bounded by :class:`~agentmesh.limits.RenderLimits`.

    Render with :func:`render_bounded`; a plain ``Template.render`` still has
    every per-operation check, with the default limits.
    """

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, **options: Any) -> None:
        super().__init__(optimized=False, **options)
        self.filters = {name: _guard_filter(name, f) for name, f in self.filters.items()}
        self.filters[_LOOP_FILTER] = _bounded_loop
        self.filters[_SIZE_FILTER] = _bounded_size
        self.globals["lipsum"] = _lipsum

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        try:
            template = super()._parse(source, name, filename)
            guarded: nodes.Template = _Guard().visit(template)
        except RecursionError:  # Jinja's parser recurses once per nesting level
            raise TemplateSyntaxError(_TOO_DEEP, _deepest_line(source), name, filename) from None
        return guarded

    def _generate(
        self,
        source: nodes.Template,
        name: str | None,
        filename: str | None,
        defer_init: bool = False,
    ) -> str:
        try:
            return super()._generate(source, name, filename, defer_init)
        except RecursionError:  # so does its code generator
            raise TemplateSyntaxError(_TOO_DEEP, 1, name, filename) from None

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """``left operator right``, refused if its result would exceed the limits."""
        budget = _budget()
        _check_binop(budget, operator, left, right)
        return budget.check(super().call_binop(context, operator, left, right), repr(operator))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``str.format``/``format_map`` with widths checked against ``max_chars``."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None or not isinstance(value.__self__, str):
            return wrapped
        text: str = value.__self__
        is_map = value.__name__ == "format_map"
        formatter = _BoundedFormatter(self)

        def bounded(*args: Any, **kwargs: Any) -> str:
            if is_map and (kwargs or len(args) != 1):
                raise TypeError("format_map() takes exactly one argument")
            positional, named = ((), args[0]) if is_map else (args, kwargs)
            budget = _budget()
            for _, _, spec, _ in string.Formatter().parse(text):
                _check_spec(budget, spec or "", "a format field")
            result = str(formatter.vformat(text, positional, named))
            budget.check(result, f"str.{value.__name__}()")
            return result

        return update_wrapper(bounded, wrapped)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Call ``__obj`` from the template, refused if it would exceed the limits."""
        budget = _budget()
        budget.tick()
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str) and isinstance(getattr(__obj, "__name__", None), str):
            name = __obj.__name__
            if name == "join" and args:
                items = list(args[0])
                budget.allow(_join_size(owner, items), "str.join()")
                args = (items, *args[1:])
            else:
                _check_str_method(budget, name, owner, args)
        return budget.check(super().call(__context, __obj, *args, **kwargs), "a call's result")
