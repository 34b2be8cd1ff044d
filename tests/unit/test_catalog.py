from __future__ import annotations

from pathlib import Path

import pytest

from agentmesh.models import (
    Capability,
    Catalog,
    CatalogError,
    ModelSpec,
    Provider,
    UnknownModel,
    load_catalog,
)

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
models:
  - id: small
    provider: openai
    model: gpt-4o-mini
    base_url: https://api.openai.com/v1
    api_key_env: OPENAI_API_KEY
    family: gpt
    tier: 1
    pricing: {input: 0.15, output: 0.60}
    context_window: 128000
    max_output_tokens: 16384
    capabilities: [json, tools, streaming]
    quality: {default: 0.7, math: 0.6}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(text)
    return path


def test_the_issue_example_loads(tmp_path: Path) -> None:
    catalog = load_catalog(write(tmp_path, GOOD))
    spec = catalog["small"]
    assert spec.provider is Provider.OPENAI
    assert spec.capabilities == {Capability.JSON, Capability.TOOLS, Capability.STREAMING}
    assert spec.quality_for("math") == 0.6
    assert spec.quality_for("poetry") == 0.7
    assert spec.cost(1_000_000, 1_000_000) == pytest.approx(0.75)
    assert list(catalog) == ["small"]


def test_specs_are_immutable(tmp_path: Path) -> None:
    spec = load_catalog(write(tmp_path, GOOD))["small"]
    with pytest.raises(ValueError, match="frozen"):
        spec.tier = 3  # type: ignore[misc]


def entry(**fields: object) -> str:
    base: dict[str, object] = {"id": "m1", "provider": "scripted", "model": "x"}
    base.update(fields)
    lines = ["models:"]
    first = True
    for key, value in base.items():
        prefix = "  - " if first else "    "
        first = False
        lines.append(f"{prefix}{key}: {value}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            entry(provider="gemini"),
            r"models\.yaml:2: model 'm1' \(entry 1\): provider: Input should be",
        ),
        (
            entry(provider="openai"),
            r"model 'm1' \(entry 1\): provider 'openai' requires 'base_url'",
        ),
        (
            entry(pricing="{input: -1, output: 2}"),
            r"pricing\.input: Input should be greater than or equal to 0 \(got -1\)",
        ),
        (entry(tier=0), r"tier: Input should be greater than or equal to 1"),
        (
            entry(context_window=100, max_output_tokens=200),
            r"max_output_tokens \(200\) exceeds context_window \(100\)",
        ),
        (entry(capabilites="[json]"), r"capabilites: unknown field"),
        (entry(capabilities="[telepathy]"), r"capabilities\.0: Input should be"),
        (
            entry(behavior="{reply: hi}", provider="openai", base_url="http://x"),
            r"'behavior' applies only to provider 'scripted'",
        ),
        (entry(base_url="ftp://x", provider="openai"), r"base_url: .*must start with http"),
        (entry(provider="langchain"), r"provider 'langchain' requires 'target'"),
        (entry(behavior="{fail_with: meltdown}"), r"behavior\.fail_with: Input should be"),
        (
            entry(behavior="{fail_rate: 1.5}"),
            r"behavior\.fail_rate: Input should be less than or equal to 1",
        ),
        (entry(behavior="{replies: [{match: '(', reply: x}]}"), r"invalid regex"),
        (
            "models:\n  - id: m1\n    provider: scripted\n",
            r"model 'm1' \(entry 1\): model: required field is missing",
        ),
        ("models: [1]\n", r"entry 1: expected a mapping"),
        ("nothing: here\n", r"expected a top-level 'models:' list"),
        ("models: []\nextra: 1\n", r"unknown top-level keys: extra"),
        ("models:\n  - id: [unclosed\n", r"models\.yaml:\d+: not valid YAML"),
    ],
)
def test_bad_catalogs_name_file_line_entry_and_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(CatalogError, match=expected) as info:
        load_catalog(path)
    assert str(path) in str(info.value)


def test_duplicate_ids_name_both_entries(tmp_path: Path) -> None:
    text = "models:\n" + "".join(
        f"  - id: same\n    provider: scripted\n    model: m{i}\n" for i in range(2)
    )
    with pytest.raises(
        CatalogError,
        match=r":5: model 'same' \(entry 2\): duplicate id 'same' \(first at entry 1\)",
    ):
        load_catalog(write(tmp_path, text))


def test_missing_file_is_a_catalog_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot read catalog"):
        load_catalog(tmp_path / "absent.yaml")


def test_unknown_model_lists_what_exists(tmp_path: Path) -> None:
    catalog = load_catalog(write(tmp_path, GOOD))
    with pytest.raises(UnknownModel, match=r"unknown model 'big'; the catalog lists: small"):
        catalog["big"]


def test_python_catalog_rejects_duplicates() -> None:
    spec = ModelSpec(id="a", provider=Provider.SCRIPTED, model="a")
    with pytest.raises(CatalogError, match="duplicate"):
        Catalog([spec, spec])


@pytest.mark.parametrize("name", ["local", "sim", "cloud", "llamacpp-server"])
def test_shipped_catalogs_load(name: str) -> None:
    catalog = load_catalog(ROOT / "models" / f"{name}.yaml")
    assert len(catalog) >= 1


def test_sim_pool_has_four_tiers_each_imitating_a_real_priced_model() -> None:
    catalog = load_catalog(ROOT / "models" / "sim.yaml")
    assert len({s.tier for s in catalog.specs}) >= 4
    for spec in catalog.specs:
        assert spec.simulated
        assert spec.imitates, f"{spec.id} must say which real model it imitates"
        assert spec.pricing.input > 0
        assert spec.pricing.output > 0
    assert [s.tier for s in catalog.by_tier()] == sorted(s.tier for s in catalog.specs)


def test_cloud_catalog_covers_openai_anthropic_and_ollama() -> None:
    catalog = load_catalog(ROOT / "models" / "cloud.yaml")
    providers = {s.provider for s in catalog.specs}
    assert {Provider.OPENAI, Provider.ANTHROPIC} <= providers
    assert any("11434" in (s.base_url or "") for s in catalog.specs), "an Ollama entry"
    keyed = [s for s in catalog.specs if s.provider is Provider.ANTHROPIC]
    assert all(s.api_key_env == "ANTHROPIC_API_KEY" for s in keyed)


def test_catalog_is_a_well_behaved_mapping(tmp_path: Path) -> None:
    catalog = load_catalog(write(tmp_path, GOOD))
    assert "small" in catalog
    assert "big" not in catalog
    assert catalog.get("big") is None
    assert catalog.get("small") is catalog["small"]


def test_the_simulated_pool_says_how_many_tiers_it_has() -> None:
    import yaml

    path = ROOT / "models" / "sim.yaml"
    tiers = len({s.tier for s in load_catalog(path).specs})
    words = {3: "three", 4: "four", 5: "five", 6: "six"}
    description = yaml.safe_load(path.read_text())["description"]
    assert f"{words[tiers]} tiers" in description
