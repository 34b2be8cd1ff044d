"""PromptLibrary: folder loading, variant resolution, inputs, undefined variables, requests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from agentmesh.models import ModelRequest, ModelSpec, ResponseFormat
from agentmesh.prompts import PromptError, PromptLibrary

HEADER = "---\ndescription: test template\n---\n"


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


def spec(
    model_id: str = "m", family: str = "fam", provider: str = "scripted", **fields: Any
) -> ModelSpec:
    return ModelSpec.model_validate(
        {"id": model_id, "provider": provider, "model": "wire", "family": family, **fields}
    )


def library(tmp_path: Path, files: dict[str, str]) -> PromptLibrary:
    return PromptLibrary(write(tmp_path, files))


# --- resolution ---------------------------------------------------------------------------


@pytest.fixture
def four_levels(tmp_path: Path) -> PromptLibrary:
    return library(
        tmp_path,
        {
            "t.j2": HEADER + "generic",
            "t.m-1.j2": "model id",
            "t.fam.j2": "family",
            "t.anthropic.j2": "provider",
        },
    )


@pytest.mark.parametrize(
    ("model", "variant", "matched", "text"),
    [
        (spec("m-1", "fam", "anthropic"), "t.m-1.j2", "model-id", "model id"),
        (spec("other", "fam", "anthropic"), "t.fam.j2", "family", "family"),
        (spec("other", "zzz", "anthropic"), "t.anthropic.j2", "provider", "provider"),
        (spec("other", "zzz", "scripted"), "t.j2", "generic", "generic"),
    ],
)
def test_resolution_order_model_id_family_provider_generic(
    four_levels: PromptLibrary, model: ModelSpec, variant: str, matched: str, text: str
) -> None:
    rendered = four_levels.render("t", model)
    assert (rendered.variant, rendered.matched) == (variant, matched)
    assert rendered.messages == (HumanMessage(content=text),)
    assert four_levels.resolve("t", model).variant.file == variant


def test_resolution_reason_says_what_matched(four_levels: PromptLibrary) -> None:
    assert four_levels.resolve("t", spec("x", "fam")).reason == "matched family 'fam'"
    generic = four_levels.resolve("t", spec("x", "zzz")).reason
    assert generic == ("generic: no variant for model id 'x', family 'zzz' or provider 'scripted'")


def test_dotted_model_ids_match_exact_file_names_only(tmp_path: Path) -> None:
    lib = library(
        tmp_path,
        {
            "t.j2": HEADER + "generic",
            "t.gpt.j2": "family gpt",
            "t.gpt-4.1.j2": "exactly gpt-4.1",
            "t.openai_gpt-4o.j2": "slash id",
        },
    )
    assert lib.render("t", spec("gpt-4.1", "gpt")).variant == "t.gpt-4.1.j2"
    # no prefix matching: gpt-4.1-mini is not gpt-4.1
    assert lib.render("t", spec("gpt-4.1-mini", "gpt")).variant == "t.gpt.j2"
    assert lib.render("t", spec("gpt-4", "llama")).variant == "t.j2"
    # '/' and ':' are written '_' in file names
    assert lib.render("t", spec("openai/gpt-4o", "gpt")).variant == "t.openai_gpt-4o.j2"
    assert set(lib.template("t").variants) == {"gpt", "gpt-4.1", "openai_gpt-4o"}


# --- folder and names ---------------------------------------------------------------------


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PromptError, match=r"prompts folder '.*nope' does not exist"):
        PromptLibrary(tmp_path / "nope")


def test_unknown_template_lists_the_known_ones(tmp_path: Path) -> None:
    lib = library(tmp_path, {"a.j2": HEADER + "a", "b.j2": HEADER + "b"})
    with pytest.raises(PromptError, match=r"unknown template 'c'.*known templates: a, b"):
        lib.render("c", spec())


def test_partials_are_not_templates(tmp_path: Path) -> None:
    lib = library(
        tmp_path,
        {
            "t.j2": HEADER + "{% include '_partials/p.j2' %}{% include '_q.j2' %}",
            "_partials/p.j2": "P",
            "_q.j2": "Q",
        },
    )
    assert lib.names == ("t",)
    assert lib.render("t", spec()).messages[0].content == "PQ"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"t.gemma.j2": "x"}, "a variant needs the generic template t.j2"),
        ({"my plan.j2": HEADER}, "not a valid template file name"),
        ({"t.j2": HEADER + "{% include name %}"}, "needs a literal file name"),
        ({"t.j2": HEADER + "{% include 'missing.j2' %}"}, "'missing.j2' is not a file"),
        ({"t.j2": HEADER + "{% if %}"}, "syntax error"),
        ({"t.j2": HEADER + "{{ x | no_such_filter }}"}, "syntax error: No filter named"),
    ],
)
def test_broken_folders_fail_when_loading(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    with pytest.raises(PromptError, match=message):
        library(tmp_path, files)


def test_syntax_errors_name_template_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(PromptError) as caught:
        library(tmp_path, {"t.j2": HEADER + "line 4\n{% for x in %}\n"})
    assert (caught.value.template, caught.value.line) == ("t", 5)
    assert str(caught.value).startswith(f"{tmp_path}/t.j2:5: template 't': syntax error")


def test_symlinks_out_of_the_folder_are_refused(tmp_path: Path) -> None:
    outside = tmp_path / "secret.j2"
    outside.write_text("secret")
    folder = write(tmp_path / "prompts", {"t.j2": HEADER + "x"})
    (folder / "_leak.j2").symlink_to(outside)
    with pytest.raises(PromptError, match="links outside the prompts folder"):
        PromptLibrary(folder)


# --- inputs -------------------------------------------------------------------------------

TYPED = """---
description: typed inputs
inputs:
  n: {type: int}
  ratio: {type: float, required: false, default: 0.5}
  flag: {type: bool, required: false, default: false}
  items: {type: list, required: false, default: [a]}
  extra: {type: dict, required: false}
  note: {type: str, required: false}
---
{{ n + 1 }}|{{ ratio * 2 }}|{{ flag }}|{{ items | join(',') }}|{{ extra }}|{{ note }}
"""


@pytest.mark.parametrize(
    ("inputs", "text"),
    [
        ({"n": 3}, "4|1.0|False|a|None|None"),
        ({"n": "3", "ratio": "0.25", "flag": "yes"}, "4|0.5|True|a|None|None"),
        ({"n": 1, "items": '["x", "y"]', "extra": '{"k": 1}'}, "2|1.0|False|x,y|{'k': 1}|None"),
        ({"n": 1, "items": ("p", "q"), "note": "hi"}, "2|1.0|False|p,q|None|hi"),
    ],
)
def test_inputs_are_coerced_to_their_declared_types(
    tmp_path: Path, inputs: dict[str, object], text: str
) -> None:
    lib = library(tmp_path, {"t.j2": TYPED})
    assert lib.render("t", spec(), inputs).messages[0].content == text


def test_missing_required_input_names_template_variable_and_declaration_line(
    tmp_path: Path,
) -> None:
    lib = library(tmp_path, {"t.j2": TYPED})
    with pytest.raises(PromptError) as caught:
        lib.render("t", spec(), {"ratio": 1.0})
    error = caught.value
    assert (error.template, error.variable, error.line) == ("t", "n", 4)
    assert str(error) == f"{tmp_path}/t.j2:4: template 't': missing required input 'n' (int)"


@pytest.mark.parametrize(
    ("inputs", "variable", "message"),
    [
        ({"n": "three"}, "n", "input 'n' \\(int\\): expected an integer, got 'three'"),
        ({"n": True}, "n", "expected an integer"),
        ({"n": 1, "flag": "maybe"}, "flag", "expected true or false"),
        ({"n": 1, "items": "not json"}, "items", "expected a JSON list"),
        ({"n": 1, "extra": "[1]"}, "extra", "expected a JSON dict"),
        ({"n": 1, "note": 5}, "note", "expected a string, got int"),
        ({"n": 1, "bogus": 1, "zzz": 2}, "bogus", "unknown input\\(s\\) 'bogus', 'zzz'"),
    ],
)
def test_bad_inputs_are_errors_naming_the_variable(
    tmp_path: Path, inputs: dict[str, object], variable: str, message: str
) -> None:
    lib = library(tmp_path, {"t.j2": TYPED})
    with pytest.raises(PromptError, match=message) as caught:
        lib.render("t", spec(), inputs)
    assert (caught.value.template, caught.value.variable) == ("t", variable)


def test_list_and_dict_inputs_are_copied_not_shared(tmp_path: Path) -> None:
    lib = library(tmp_path, {"t.j2": TYPED})
    items = ["a"]
    lib.render("t", spec(), {"n": 1, "items": items})
    assert items == ["a"]


# --- undefined variables ------------------------------------------------------------------


def test_undefined_variable_names_template_variable_and_exact_line(tmp_path: Path) -> None:
    text = (
        "---\ndescription: d\ninputs: {goal: {type: str}}\n---\nline 5 {{ goal }}\n\n{{ nope }}\n"
    )
    lib = library(tmp_path, {"t.j2": text})
    with pytest.raises(PromptError) as caught:
        lib.render("t", spec(), {"goal": "g"})
    error = caught.value
    assert (error.template, error.variable, error.line) == ("t", "nope", 7)
    assert str(error) == f"{tmp_path}/t.j2:7: template 't': undefined variable 'nope'"


def test_undefined_never_renders_empty_even_in_filters_and_tests(tmp_path: Path) -> None:
    lib = library(tmp_path, {"t.j2": HEADER + "\n{{ nope | default('x') if false else nope }}"})
    with pytest.raises(PromptError, match="undefined variable 'nope'"):
        lib.render("t", spec())


def test_undefined_inside_a_partial_points_into_the_partial(tmp_path: Path) -> None:
    lib = library(
        tmp_path,
        {
            "t.gemma.j2": "one\n{% include '_partials/p.j2' %}",
            "t.j2": HEADER + "x",
            "_partials/p.j2": "a\nb\n{{ missing }}",
        },
    )
    with pytest.raises(PromptError) as caught:
        lib.render("t", spec("g", "gemma"))
    error = caught.value
    assert (error.file, error.line, error.variable) == (f"{tmp_path}/_partials/p.j2", 3, "missing")
    assert "template 't'" in str(error)


def test_undefined_in_a_block_of_an_extended_base_points_at_the_child(tmp_path: Path) -> None:
    lib = library(
        tmp_path,
        {
            "_base.j2": "{% user %}{% block body %}{% endblock %}{% enduser %}",
            "t.j2": HEADER + "{% extends '_base.j2' %}\n{% block body %}\n{{ model.nope }}\n"
            "{% endblock %}",
        },
    )
    with pytest.raises(PromptError) as caught:
        lib.render("t", spec())
    assert (caught.value.file, caught.value.line) == (f"{tmp_path}/t.j2", 6)
    assert caught.value.variable == "nope"
    assert "undefined attribute 'nope'" in str(caught.value)


# --- what templates see -------------------------------------------------------------------


def test_templates_see_a_plain_view_of_the_model(tmp_path: Path) -> None:
    body = (
        "{{ model.id }} {{ model.family }} {{ model.provider }} {{ model.tier }} "
        "{{ model.capabilities | join(',') }} {{ model.context_window }} "
        "{{ model.max_output_tokens }} {{ model.tags | join(',') }}"
    )
    lib = library(tmp_path, {"t.j2": HEADER + body})
    model = spec(
        "m",
        "claude",
        "anthropic",
        tier=3,
        capabilities=["tools", "json"],
        context_window=1000,
        max_output_tokens=100,
        tags=["b", "a"],
    )
    text = lib.render("t", model).messages[0].content
    assert text == "m claude anthropic 3 json,tools 1000 100 a,b"


@pytest.mark.parametrize("field", ["base_url", "api_key_env", "headers", "pricing", "behavior"])
def test_templates_cannot_see_provider_settings(tmp_path: Path, field: str) -> None:
    lib = library(tmp_path, {"t.j2": HEADER + f"{{{{ model.{field} }}}}"})
    with pytest.raises(PromptError, match=f"undefined attribute '{field}'"):
        lib.render("t", spec())


# --- completion format and requests -------------------------------------------------------

SCHEMA = '{"type": "object", "properties": {"a": {"type": "string"}}}'
CHAT = """---
description: chat
inputs: {q: {type: str}}
output_schema: schemas/out.json
stop: ["END"]
---
{% system %}Be brief.{% endsystem %}
{% user %}{{ q }}{% enduser %}
"""
FEW_SHOT = """---
format: completion
stop: ["\\nQ:"]
---
Q: 1+1?
A: 2

Q: {{ q }}
A:
"""


@pytest.fixture
def bridge(tmp_path: Path) -> PromptLibrary:
    files = {"t.j2": CHAT, "t.gemma.j2": FEW_SHOT, "schemas/out.json": SCHEMA}
    return library(tmp_path, files)


def test_completion_variant_renders_one_prompt(bridge: PromptLibrary) -> None:
    rendered = bridge.render("t", spec("g", "gemma"), {"q": "2+2?"})
    assert rendered.format == "completion"
    assert rendered.completion == "Q: 1+1?\nA: 2\n\nQ: 2+2?\nA:"
    assert rendered.messages == (HumanMessage(content=rendered.completion),)
    assert rendered.text == rendered.completion
    assert rendered.stop == ("\nQ:",)


def test_to_request_for_a_completion_prompt_sets_prompt_verbatim(bridge: PromptLibrary) -> None:
    rendered = bridge.render("t", spec("g", "gemma"), {"q": "2+2?"})
    request = rendered.to_request(max_tokens=64, temperature=0.0)
    assert isinstance(request, ModelRequest)
    assert request.prompt == rendered.completion
    assert list(request.messages) == [HumanMessage(content=rendered.completion)]
    assert (request.max_tokens, request.temperature, tuple(request.stop)) == (64, 0.0, ("\nQ:",))
    assert request.response_format == ResponseFormat(
        schema={"type": "object", "properties": {"a": {"type": "string"}}}, name="t"
    )


def test_to_request_for_chat_keeps_messages_and_applies_schema_and_stop(
    bridge: PromptLibrary,
) -> None:
    rendered = bridge.render("t", spec(), {"q": "hello"})
    request = rendered.to_request()
    assert list(request.messages) == [
        SystemMessage(content="Be brief."),
        HumanMessage(content="hello"),
    ]
    assert request.prompt is None
    assert tuple(request.stop) == ("END",)
    assert request.response_format is not None
    assert request.response_format.schema == {
        "type": "object",
        "properties": {"a": {"type": "string"}},
    }


def test_to_request_options_override_the_template(bridge: PromptLibrary) -> None:
    rendered = bridge.render("t", spec(), {"q": "hello"})
    request = rendered.to_request(stop=["X"], response_format=None, seed=7)
    assert (list(request.stop), request.response_format, request.seed) == (["X"], None, 7)


def test_the_output_schema_is_a_private_copy(bridge: PromptLibrary) -> None:
    first = bridge.render("t", spec(), {"q": "a"})
    assert first.output_schema is not None
    first.output_schema["properties"]["a"]["type"] = "number"  # type: ignore[index]
    assert bridge.render("t", spec(), {"q": "a"}).output_schema == {
        "type": "object",
        "properties": {"a": {"type": "string"}},
    }


def test_trace_attributes_identify_the_prompt(bridge: PromptLibrary) -> None:
    rendered = bridge.render("t", spec("g", "gemma"), {"q": "x"})
    assert rendered.trace_attributes() == {
        "agentmesh.prompt.template": "t",
        "agentmesh.prompt.variant": "t.gemma.j2",
        "agentmesh.prompt.hash": rendered.hash,
    }


async def test_rendered_requests_run_through_the_gateway(bridge: PromptLibrary) -> None:
    from agentmesh.models import Gateway
    from agentmesh.testing import scripted_catalog, scripted_model

    model = scripted_model("sim", reply="echo: {prompt}")
    rendered = bridge.render("t", model, {"q": "ping"})
    async with Gateway(scripted_catalog(model)) as gateway:
        response = await gateway.invoke("sim", rendered.to_request(response_format=None))
    assert response.text == "echo: ping"
    assert isinstance(rendered.to_request().messages[0], SystemMessage)
    assert not isinstance(rendered.messages[-1], AIMessage)


# --- public surface -----------------------------------------------------------------------

PROMPT_MODULES = [
    "errors",
    "frontmatter",
    "inputs",
    "library",
    "messages",
    "rendered",
    "source",
    "templates",
]


@pytest.mark.parametrize("name", PROMPT_MODULES)
def test_prompt_modules_are_documented_and_export_what_they_name(name: str) -> None:
    import importlib

    module = importlib.import_module(f"agentmesh.prompts.{name}")
    assert module.__doc__
    assert all(hasattr(module, symbol) for symbol in module.__all__)
    package = importlib.import_module("agentmesh.prompts")
    if name in ("errors", "library", "rendered"):
        assert {s for s in module.__all__ if s[0].isupper()} <= set(package.__all__)


def test_one_library_serves_entries_sharing_an_id_each_its_own_variant_and_view(
    tmp_path: Path,
) -> None:
    # Two catalogs may give one id to different models: no render reuses another's.
    lib = library(
        tmp_path,
        {"t.j2": HEADER + "generic {{ model.tier }}", "t.fam.j2": "family {{ model.tier }}"},
    )
    renders = [
        lib.render("t", spec("m", "fam", tier=1)),
        lib.render("t", spec("m", "zzz", tier=2)),
        lib.render("t", spec("m", "fam", tier=3)),
    ]
    assert [r.variant for r in renders] == ["t.fam.j2", "t.j2", "t.fam.j2"]
    assert [r.text for r in renders] == ["family 1", "generic 2", "family 3"]
