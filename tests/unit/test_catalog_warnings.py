"""``validate`` warns, without failing, about catalog entries that will surprise."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentmesh.cli import main
from agentmesh.models import load_catalog
from agentmesh.models.lint import catalog_warnings

ROOT = Path(__file__).resolve().parents[2]
GRAPH = str(ROOT / "graphs" / "support_triage.yaml")

CATALOG = """\
models:
  - id: unpriced
    provider: scripted
    model: m
    capabilities: [json]
  - id: free
    provider: scripted
    model: m
    pricing: {input: 0, output: 0}
    capabilities: [json]
  - id: llama-server
    provider: openai
    model: gemma
    base_url: ${LLAMACPP_BASE_URL:-http://127.0.0.1:8080/v1}
    pricing: {input: 0, output: 0}
    capabilities: [json]
  - id: llama-server-ok
    provider: openai
    model: gemma
    base_url: http://127.0.0.1:8080/llama.cpp/v1
    pricing: {input: 0, output: 0}
    capabilities: [json]
    params: {json_format: json_object+schema}
  - id: openai
    provider: openai
    model: gpt-4o-mini
    base_url: https://api.openai.com/v1
    pricing: {input: 0.15, output: 0.6}
    capabilities: [json]
"""


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(CATALOG)
    return path


def test_the_warnings_name_the_entry_and_what_will_happen(catalog: Path) -> None:
    unpriced, llama = catalog_warnings(load_catalog(catalog))
    assert unpriced.startswith(f"{catalog}: model 'unpriced': no pricing: every call counts as $0")
    assert "budgets never stop it" in unpriced
    assert llama.startswith(f"{catalog}: model 'llama-server': declares json but no ")
    assert "llama.cpp's server" in llama
    assert "HTTP 500" in llama
    assert "add params: {json_format: json_object+schema}" in llama


def test_the_shipped_catalogs_draw_no_warning() -> None:
    for path in sorted((ROOT / "models").glob("*.yaml")):
        assert catalog_warnings(load_catalog(path)) == [], path.name


def test_validate_prints_the_warnings_and_still_passes(
    capsys: pytest.CaptureFixture[str], catalog: Path
) -> None:
    prompts = str(ROOT / "prompts")
    code = main(["validate", GRAPH, "--models", str(catalog), "--prompts", prompts])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert ": ok" in out
    warnings = err.splitlines()
    assert len(warnings) == 2
    assert all(w.startswith("agentmesh: warning: ") for w in warnings)
