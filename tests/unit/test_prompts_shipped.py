"""Every template in prompts/ renders for every model of every catalog in models/."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from agentmesh.models import ModelSpec, load_catalog
from agentmesh.prompts import PromptLibrary, variant_key

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = ROOT / "prompts"
LIBRARY = PromptLibrary(PROMPTS)
CATALOGS = sorted((ROOT / "models").glob("*.yaml"))
MODELS = [(path.name, spec) for path in CATALOGS for spec in load_catalog(path).specs]
NEEDED = {"plan", "execute_step", "judge", "refine", "review_code", "solve_math", "triage"}


def expected_file(name: str, spec: ModelSpec) -> str:
    """The first file on disk in resolution order (an oracle independent of the library)."""
    for key in (variant_key(spec.id), spec.family, spec.provider.value):
        if (PROMPTS / f"{name}.{key}.j2").is_file():
            return f"{name}.{key}.j2"
    return f"{name}.j2"


def test_the_repository_has_catalogs_and_the_templates_the_examples_need() -> None:
    assert {p.name for p in CATALOGS} >= {"local.yaml", "sim.yaml", "cloud.yaml"}
    assert set(LIBRARY.names) >= NEEDED
    assert any(spec.family == "gemma" for _, spec in MODELS)


@pytest.mark.parametrize("name", LIBRARY.names)
@pytest.mark.parametrize(("catalog", "spec"), MODELS, ids=[f"{c}:{s.id}" for c, s in MODELS])
def test_every_template_renders_for_every_model_of_every_catalog(
    name: str, catalog: str, spec: ModelSpec
) -> None:
    template = LIBRARY.template(name)
    rendered = LIBRARY.render(name, spec, template.example)
    assert rendered.variant == expected_file(name, spec)
    assert rendered.messages
    assert all(str(m.content).strip() for m in rendered.messages)
    if spec.family == "gemma":
        assert rendered.variant == f"{name}.gemma.j2"
        assert rendered.format == "completion"
        assert rendered.completion is not None
        assert rendered.completion.endswith(":"), "few-shot prompts end where the model continues"
        assert rendered.to_request().prompt == rendered.completion
    else:
        types = [m.type for m in rendered.messages]
        assert (types[0], types[-1]) == ("system", "human"), "system first, the user's turn last"
    assert rendered.hash == LIBRARY.resolve(name, spec).variant.hash


@pytest.mark.parametrize("name", LIBRARY.names)
def test_each_template_has_a_generic_chat_a_gemma_completion_and_a_family_variant(
    name: str,
) -> None:
    template = LIBRARY.template(name)
    assert template.generic.front_matter.format == "chat"
    assert template.variants["gemma"].front_matter.format == "completion"
    assert {"claude", "gpt"} & set(template.variants)
    assert template.description
    assert template.example, "the example inputs are what this test suite renders"
    assert len({v.hash for v in template.all_variants}) == len(template.all_variants)


@pytest.mark.parametrize("name", LIBRARY.names)
def test_family_variants_share_their_base_by_inheritance(name: str) -> None:
    template = LIBRARY.template(name)
    for key in {"claude", "gpt"} & set(template.variants):
        variant = template.variants[key]
        assert f"{name}.j2" in variant.files
        assert "_partials/chat.j2" in variant.files


@pytest.mark.parametrize("name", LIBRARY.names)
def test_gemma_variants_stay_short_for_the_embedded_model(name: str) -> None:
    (_, gemma), *_ = [(c, s) for c, s in MODELS if s.id == "gemma"]
    rendered = LIBRARY.render(name, gemma, LIBRARY.template(name).example)
    assert rendered.completion is not None
    assert len(rendered.completion) < 2000  # ~500 tokens of a 4096-token window
    assert rendered.stop, "few-shot prompts stop before the model writes the next example"


def _few_shot_json(text: str) -> list[dict[str, object]]:
    return [json.loads(m[1]) for m in re.finditer(r"^\w[\w ]*: (\{.*\})$", text, re.M)]


@pytest.mark.parametrize(
    "name", [t.name for t in LIBRARY.templates if t.generic.front_matter.output_schema]
)
def test_few_shot_json_answers_follow_the_output_schema(name: str) -> None:
    gemma = next(s for _, s in MODELS if s.family == "gemma")
    rendered = LIBRARY.render(name, gemma, LIBRARY.template(name).example)
    assert rendered.output_schema is not None
    answers = _few_shot_json(rendered.completion or "")
    assert len(answers) >= 2
    properties = list(rendered.output_schema["properties"])
    for answer in answers:
        # same keys, in the schema's order (grammar-constrained output follows it)
        assert list(answer) == properties
