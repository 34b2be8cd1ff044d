"""Templates cannot reach Python internals, files outside the folder, or re-parse inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
from jinja2.exceptions import SecurityError, UndefinedError

from agentmesh.limits import RenderLimits
from agentmesh.models import ModelSpec
from agentmesh.prompts import PromptError, PromptLibrary

HEADER = """---
description: payload
inputs:
  x: {type: str, required: false, default: hello}
  items: {type: list, required: false, default: [1]}
  data: {type: dict, required: false, default: {}}
---
"""
LINE = 8  # the payload's line: right after the 7-line front matter

MODEL = ModelSpec.model_validate({"id": "m", "provider": "scripted", "model": "m"})


def render(tmp_path: Path, body: str, **inputs: object) -> str:
    (tmp_path / "t.j2").write_text(HEADER + body)
    rendered = PromptLibrary(tmp_path).render("t", MODEL, inputs)
    return str(rendered.messages[0].content)


# (payload, what stops it, the attribute or variable the error names)
BLOCKED = [
    ("{{ ''.__class__.__mro__ }}", SecurityError, "__class__"),
    ("{{ ''.__class__.__base__.__subclasses__() }}", SecurityError, "__class__"),
    ("{{ cycler.__init__.__globals__ }}", SecurityError, "__init__"),
    ("{{ joiner.__init__.__globals__.os }}", SecurityError, "__init__"),
    ("{{ namespace.__init__.__globals__ }}", SecurityError, "__init__"),
    ("{{ lipsum.__globals__ }}", SecurityError, "__globals__"),
    ("{{ lipsum.__globals__['os'].popen('id').read() }}", SecurityError, "__globals__"),
    ("{{ self._TemplateReference__context }}", SecurityError, "_TemplateReference__context"),
    ("{{ self.__dict__ }}", SecurityError, "__dict__"),
    ("{{ x.__class__ }}", SecurityError, "__class__"),
    ("{{ x | attr('__class__') }}", SecurityError, "__class__"),
    ("{{ model.__class__.__init__ }}", SecurityError, None),
    ("{{ dict.mro() }}", SecurityError, "mro"),
    ("{{ '{0.__class__}'.format(x) }}", SecurityError, "__class__"),
    ("{{ '{a.__class__.__mro__}'.format_map({'a': x}) }}", SecurityError, None),
    ("{{ '%s' | format(x.__class__) }}", SecurityError, "__class__"),
    ("{{ items.append(2) }}", SecurityError, "append"),
    ("{{ data.update({'k': 1}) }}", SecurityError, "update"),
    ("{{ request }}", UndefinedError, "request"),
    ("{{ config.items() }}", UndefinedError, "config"),
    ("{{ os }}", UndefinedError, "os"),
    ("{{ __builtins__ }}", UndefinedError, "__builtins__"),
    ("{{ range.__self__ }}", UndefinedError, "__self__"),
]


@pytest.mark.parametrize(("payload", "cause", "variable"), BLOCKED)
def test_template_injection_payloads_raise_prompt_errors(
    tmp_path: Path, payload: str, cause: type[Exception], variable: str | None
) -> None:
    with pytest.raises(PromptError) as caught:
        render(tmp_path, payload)
    error = caught.value
    assert isinstance(error.__cause__, cause)
    assert (error.template, error.line) == ("t", LINE)
    if variable is not None:
        assert error.variable == variable
    if cause is SecurityError:
        assert "blocked by the sandbox" in str(error)


@pytest.mark.parametrize(
    "include",
    [
        "{% include '/etc/passwd' %}",
        "{% include '../pyproject.toml' %}",
        "{% include '../../etc/hosts' %}",
        "{% extends '/etc/passwd' %}",
        "{% import '..//secret.j2' as s %}",
        "{% include ['/etc/passwd', 'nope.j2'] %}",
    ],
)
def test_nothing_outside_the_folder_can_be_loaded(tmp_path: Path, include: str) -> None:
    (tmp_path / "secret.j2").write_text("TOP SECRET")
    folder = tmp_path / "prompts"
    folder.mkdir()
    (folder / "t.j2").write_text(HEADER + include)
    with pytest.raises(PromptError, match="is not a file of the prompts folder") as caught:
        PromptLibrary(folder)
    assert (caught.value.template, caught.value.line) == ("t", LINE)


def test_format_map_is_inert(tmp_path: Path) -> None:
    # Reading the method is allowed; the sandbox wraps it so calling it stays safe.
    assert "format_map" in render(tmp_path, "{{ x.format_map }}")


@pytest.mark.parametrize(
    "value",
    [
        "{{ 7*7 }}",
        "{% include '/etc/passwd' %}",
        "{{ ''.__class__.__mro__ }}",
        "{% raw %}{{ x }}{% endraw %}",
        "{# comment #}",
    ],
)
def test_inputs_are_data_never_parsed_as_templates(tmp_path: Path, value: str) -> None:
    assert render(tmp_path, "[{{ x }}]", x=value) == f"[{value}]"


def test_arithmetic_on_input_text_is_not_evaluated(tmp_path: Path) -> None:
    text = render(tmp_path, "{{ x }} / {{ items | join(',') }}", x="{{ 7*7 }}", items=["{{ 6*7 }}"])
    assert text == "{{ 7*7 }} / {{ 6*7 }}"
    assert "49" not in text
    assert "42" not in text


def test_inputs_cannot_be_mutated_by_templates(tmp_path: Path) -> None:
    items = [1]
    with pytest.raises(PromptError, match="blocked by the sandbox"):
        render(tmp_path, "{{ items.append(2) }}", items=items)
    assert items == [1]


# (payload, the limit it exceeds): each would take seconds to minutes and up to
# gigabytes unbounded; each is refused before the work is done.
BOMBS = [
    ("{{ ''|center(1000000000) }}", "max_chars"),
    ("{% filter center(1000000000) %}x{% endfilter %}", "max_chars"),
    ("{{ 'x'.ljust(1000000000) }}", "max_chars"),
    ("{{ '{0:>1000000000}'.format(1) }}", "max_chars"),
    ("{{ '{0:>{w}}'.format(1, w=1000000000) }}", "max_chars"),
    ("{{ '{a:.1000000000f}'.format_map({'a': 1.0}) }}", "max_chars"),
    ("{{ '%1000000000d' % 1 }}", "max_chars"),
    ("{{ '%*d' % (1000000000, 1) }}", "max_chars"),
    ("{{ '%1000000000s' | format(1) }}", "max_chars"),
    ("{{ lipsum(n=1000000) }}", "max_chars"),
    ("{{ 'x' * 1000000000 }}", "max_chars"),
    ("{{ [1] * 1000000000 }}", "max_chars"),
    ("{{ 10 ** 1000000000 }}", "max_chars"),
    ("{{ range(100000) | join('x' * 100000) }}", "max_chars"),
    ("{{ ('x' * 1000).join(range(100000) | map('string')) }}", "max_chars"),
    ("{{ ('x' * 100000).replace('', 'y' * 100) }}", "max_chars"),
    ("{{ ('x\\n' * 100000) | indent(100000) }}", "max_chars"),
    ("{{ ('\\t' * 100000).expandtabs(100000) }}", "max_chars"),
    (
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "max_chars",
    ),
    (
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}"
        "{% set ns.s %}{{ ns.s }}{{ ns.s }}{% endset %}{% endfor %}",
        "max_chars",
    ),
    (
        "{% set ns = namespace(n=3) %}{% for i in range(64) %}"
        "{% set ns.n = ns.n * ns.n %}{% endfor %}",
        "max_chars",
    ),
    (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "max_iterations",
    ),
    ("{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}", "max_chars"),
]


@pytest.mark.parametrize(("payload", "limit"), BOMBS)
def test_render_bombs_stop_at_a_limit_naming_template_and_limit(
    tmp_path: Path, payload: str, limit: str
) -> None:
    (tmp_path / "t.j2").write_text(HEADER + payload)
    library = PromptLibrary(tmp_path, limits=RenderLimits(max_chars=1_000_000))
    with pytest.raises(PromptError) as caught:
        library.render("t", MODEL, {})
    error = caught.value
    assert (error.template, error.limit, error.file) == ("t", limit, str(tmp_path / "t.j2"))
    assert f"render limit {limit}=" in str(error)
    assert error.to_dict()["limit"] == limit


def test_a_render_that_runs_too_long_stops_at_the_time_limit(tmp_path: Path) -> None:
    # 2**40 macro calls and no loop: only the clock stops it.
    body = (
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}"
    )
    (tmp_path / "t.j2").write_text(HEADER + body)
    library = PromptLibrary(tmp_path, limits=RenderLimits(max_seconds=0.2))
    with pytest.raises(PromptError, match=r"render limit max_seconds=0\.2 exceeded") as caught:
        library.render("t", MODEL, {})
    assert caught.value.limit == "max_seconds"


def test_renders_within_the_limits_are_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = "{{ '{} {:>5}'.format(x, 1) }}|{{ items | join(',') }}|{{ x | center(9) }}|{{ 'a' * 3 }}"
    assert render(tmp_path, body, items=[1, 2]) == "hello     1|1,2|  hello  |aaa"
    (tmp_path / "t.j2").write_text(HEADER + "{{ 'x' * 3000000 }}")
    with pytest.raises(PromptError, match="max_chars=2000000"):
        PromptLibrary(tmp_path).render("t", MODEL, {})
    monkeypatch.setenv("AGENTMESH_MAX_RENDER_CHARS", "4000000")
    assert len(str(PromptLibrary(tmp_path).render("t", MODEL, {}).messages[0].content)) == 3000000
