"""The out-of-domain guard of learned routers: fitted by train-router, on by default."""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh.cli import main
from agentmesh.evaluation.data import Row
from agentmesh.evaluation.domain_fit import fit_domain, prior_win_rate
from agentmesh.evaluation.trainer import TrainConfig, train_router
from agentmesh.routing import LearnedModel, Router
from agentmesh.routing.domain import DomainGuard
from agentmesh.tracing.attributes import ROUTE_DOMAIN_DISTANCE, ROUTE_OUT_OF_DOMAIN

from .routing_helpers import catalog, route, spec
from .test_tracing_support import span_fixture

TWO = catalog(spec("cheap", tier=1, price=(0.1, 0.1)), spec("frontier", tier=3, price=(5, 15)))
WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "sigma",
]
CODE = (
    "def handler(event):\n    for key in event:\n        yield key.upper()\n"
    "class Store:\n    pass\n" * 6
)


def _rows(n: int, seed: int) -> list[Row]:
    """Short quiz questions: proofs beat the weak model, colours do not."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        hard = rng.random() < 0.4
        topic = "prove the theorem about primes" if hard else "name a colour of cats"
        words = " ".join(rng.sample(WORDS, 3))
        weak_ok = (not hard) if rng.random() < 0.9 else hard
        rows.append(Row(f"Question: {topic} {words}?", weak_ok, rng.random() < 0.9))
    return rows


@pytest.fixture(scope="module")
def trained() -> LearnedModel:
    return train_router(_rows(200, 1), TrainConfig(strengths=(1e-2,))).model


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    yield from span_fixture()


def test_the_trainer_records_the_training_domain_and_prompts_outside_it_fall_back(
    trained: LearnedModel,
) -> None:
    guard = trained.domain
    assert guard is not None
    assert guard.rows == 200
    assert (guard.fallback, guard.quantile) == ("strong", 0.99)
    assert guard.typical is not None
    assert 0 < guard.typical < 1  # the median training prompt lies inside its own domain
    inside = trained.assess("Question: prove the theorem about primes beta gamma kappa?")
    assert inside.distance is not None
    assert inside.distance <= 1
    assert not inside.out_of_domain
    assert inside.routed_score == inside.score
    outside = trained.assess(CODE)
    assert outside.out_of_domain
    assert outside.distance is not None
    assert outside.distance > 2
    assert outside.routed_score == 1.0  # the strong model
    assert trained.assess(CODE, "prior").routed_score == guard.prior
    # about 1% of in-domain prompts lie past the 99% limits, by construction
    fresh = _rows(300, 9)
    flagged = sum(trained.assess(r.prompt).out_of_domain for r in fresh)
    assert flagged <= 15


def test_the_summary_survives_the_file_and_bad_summaries_name_the_file(
    trained: LearnedModel, tmp_path: Path
) -> None:
    path = tmp_path / "r.json"
    trained.save(path)
    loaded = LearnedModel.load(path)
    assert loaded.domain is not None
    assert trained.domain is not None
    assert loaded.domain.typical == pytest.approx(trained.domain.typical, abs=1e-6)
    assert loaded.assess(CODE).distance == pytest.approx(trained.assess(CODE).distance, rel=1e-4)
    doc = json.loads(path.read_text())
    doc["domain"]["fallback"] = "weak"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"r\.json: .*unknown fallback 'weak'"):
        LearnedModel.load(path)
    doc["domain"] = "everything"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"r\.json: domain must be an object"):
        LearnedModel.load(path)


def test_prior_win_rate_counts_ties_half() -> None:
    rows = [
        Row("a", False, True),
        Row("b", True, True),
        Row("c", True, False),
        Row("d", None, True),
    ]
    assert prior_win_rate(rows) == pytest.approx((1 + 0.5 + 0) / 3)
    with pytest.raises(ValueError, match="quantile"):
        fit_domain(_rows(20, 2), quantile=0)


async def test_the_learned_strategy_falls_back_out_of_domain_and_says_so(
    trained: LearnedModel, tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    path = tmp_path / "r.json"
    # a threshold no in-domain prompt reaches: everything inside goes cheap
    replace(trained, threshold=1.0).save(path)
    router = Router(TWO)
    params: dict[str, object] = {"model_file": str(path)}
    inside = await route(
        router, "learned", prompt="Question: name a colour of cats eta?", params=params
    )
    assert inside.chosen == "cheap"
    assert "domain distance" in inside.reason
    outside = await route(router, "learned", prompt=CODE, params=params)
    assert outside.chosen == "frontier"
    assert "out_of_domain: true, distance" in outside.reason
    assert "fallback strong" in outside.reason
    unguarded = await route(router, "learned", prompt=CODE, params={**params, "guard": False})
    assert unguarded.chosen == "cheap"
    assert "out_of_domain" not in unguarded.reason
    routes = [s for s in spans.get_finished_spans() if s.name.startswith("route")]
    assert routes[0].attributes is not None
    assert routes[0].attributes[ROUTE_OUT_OF_DOMAIN] is False
    assert routes[1].attributes is not None
    assert routes[1].attributes[ROUTE_OUT_OF_DOMAIN] is True
    distance = routes[1].attributes[ROUTE_DOMAIN_DISTANCE]
    assert isinstance(distance, float)
    assert distance > 1
    assert ROUTE_OUT_OF_DOMAIN not in (routes[2].attributes or {})


async def test_a_router_file_without_a_summary_still_routes_unguarded(
    trained: LearnedModel, tmp_path: Path
) -> None:
    path = tmp_path / "old.json"
    replace(trained, domain=None, threshold=1.0).save(path)
    assert "domain" not in json.loads(path.read_text())
    decision = await route(Router(TWO), "learned", prompt=CODE, params={"model_file": str(path)})
    assert decision.chosen == "cheap"
    assert "out_of_domain" not in decision.reason


def _csv(path: Path, rows: list[Row]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "weak", "strong"])
        writer.writerows([r.prompt, r.weak_ok, r.strong_ok] for r in rows)
    return path


def test_eval_router_scores_the_guarded_router_and_counts_rows_out_of_domain(
    trained: LearnedModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "r.json"
    trained.save(path)
    rng = random.Random(3)
    code = [
        Row(CODE + f"\n# case {i}\n", rng.random() < 0.5, rng.random() < 0.8) for i in range(60)
    ]
    test = _csv(tmp_path / "code.csv", code)
    args = ["eval-router", "--test", str(test), "--router", f"learned:{path}"]
    assert main([*args, "--router", f"learned-unguarded:{path}", "--json"]) == 0
    out = {r["router"].split(":")[0]: r for r in json.loads(capsys.readouterr().out)["routers"]}
    assert out["learned"]["out_of_domain_rows"] == 60
    assert out["learned"]["median_domain_distance"] > 1
    assert out["learned"]["apgr"] == pytest.approx(0.5)  # one safe score: the diagonal
    assert "out_of_domain_rows" not in out["learned-unguarded"]
    assert main(args) == 0
    assert "60 rows out of domain, median distance" in capsys.readouterr().out


def test_add_guard_keeps_the_weights_and_adds_the_domain(
    trained: LearnedModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = tmp_path / "old.json"
    replace(trained, domain=None).save(old)
    data = _csv(tmp_path / "train.csv", _rows(120, 4))
    out = tmp_path / "guarded.json"
    code = main(
        [
            *("train-router", "--data", str(data), "--add-guard", str(old), "--out", str(out)),
            *("--fallback", "prior", "--guard-quantile", "0.95"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert "written to" in capsys.readouterr().out
    guarded = LearnedModel.load(out)
    assert guarded.ngrams == LearnedModel.load(old).ngrams
    assert isinstance(guarded.domain, DomainGuard)
    assert (guarded.domain.fallback, guarded.domain.quantile, guarded.domain.rows) == (
        "prior",
        0.95,
        120,
    )
    bad = ["train-router", "--data", str(data), "--out", str(out), "--guard-quantile", "2"]
    assert main(bad) == 2
    assert "--guard-quantile must be in (0, 1]" in capsys.readouterr().err
