"""The shipped routers (models/routers/) reproduce their held-out figures on the RouteLLM data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentmesh.evaluation.data import Dataset, load_csv, split_rows, subset
from agentmesh.evaluation.report import evaluate
from agentmesh.evaluation.routers import build_router
from agentmesh.routing import LearnedModel

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "routellm"
MODELS = REPO / "models" / "routers"

pytestmark = pytest.mark.skipif(
    not (DATA / "mmlu.csv").exists(),
    reason=f"RouteLLM data not present at {DATA} (../shared/ beside the repository)",
)


def _split(data: Dataset, meta: dict[str, object]) -> tuple[Dataset, Dataset]:
    split = meta["split"]
    assert isinstance(split, dict)
    stratify = any(r.domain for r in data.rows)
    train, test = split_rows(
        data.rows, 1 - split["holdout"], split["seed"], (lambda r: r.domain) if stratify else None
    )
    assert len(test) == split["test_rows"]
    return subset(data, train), subset(data, test)


@pytest.mark.parametrize(
    ("data_file", "model_file", "spec"),
    [
        ("mmlu.csv", "mmlu.json", "learned"),
        ("gsm8k.csv", "gsm8k.json", "learned"),
        ("gsm8k.csv", "gsm8k-cascade.json", "cascade"),
    ],
)
def test_shipped_router_reproduces_its_heldout_figures(
    data_file: str, model_file: str, spec: str
) -> None:
    doc = json.loads((MODELS / model_file).read_text(encoding="utf-8"))
    heldout = doc["meta"]["heldout"]
    train, test = _split(load_csv(DATA / data_file), heldout)
    # the held-out rows were not trained on
    trained = doc["meta"]["data"][data_file]
    assert trained["train_rows"] == len(train)
    assert trained["holdout"] == heldout["split"]["holdout"]
    routers = [build_router(f"{spec}:{MODELS / model_file}"), build_router("random")]
    summary, (router, random) = evaluate(test, routers)
    assert summary["weak_accuracy"] == heldout["weak_accuracy"]
    assert router.apgr == pytest.approx(heldout["apgr"], abs=1e-3)
    assert router.cpt50 == pytest.approx(heldout["cpt50"], abs=1e-3)
    assert router.cpt80 == pytest.approx(heldout["cpt80"], abs=1e-3)
    assert random.apgr == pytest.approx(0.5, abs=0.08)
    assert router.apgr > random.apgr + 0.05


def test_learned_files_load_in_the_routing_strategy() -> None:
    for name in ("mmlu.json", "gsm8k.json"):
        model = LearnedModel.load(MODELS / name)
        assert model.version == 2
        assert 0 < model.threshold < 1
        assert 0 < model.score("What is 2 + 2?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer:") < 1
