"""Templates cannot reach Python internals, files outside the folder, or re-parse inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
from jinja2.exceptions import SecurityError, UndefinedError

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
