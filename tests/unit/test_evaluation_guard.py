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
from agentmesh.routing.features import extract, terms
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


SUBJECTS = {
    "astronomy": ["planet", "orbit", "star", "comet", "galaxy", "telescope"],
    "cooking": ["oven", "flour", "butter", "simmer", "recipe", "garlic"],
    "law": ["court", "statute", "plaintiff", "appeal", "verdict", "contract"],
}
UNSEEN = ["enzyme", "protein", "cell", "membrane", "gene", "mitosis"]


def _subject_rows(n: int, seed: int, subjects: dict[str, list[str]]) -> list[Row]:
    """Quiz questions of one shape whose content words name their subject."""
    rng = random.Random(seed)
    names = sorted(subjects)
    rows = []
    for k in range(n):
        subject = names[k % len(names)]
        words = " ".join(rng.sample(subjects[subject], 3))
        rows.append(
            Row(f"Which of these is right about {words}?", rng.random() < 0.6, True, subject)
        )
    return rows


def test_the_subject_profile_flags_a_subject_the_router_was_not_trained_on() -> None:
    guard = fit_domain(_subject_rows(240, 3, SUBJECTS), subject_quantile=0.95)
    assert guard.subjects is not None
    assert guard.subjects.subjects == ("astronomy", "cooking", "law")
    assert 0 < guard.subject_limit <= 1
    assert guard.subject_quantile == 0.95
    known = "Which of these is right about planet orbit comet?"
    unseen = "Which of these is right about enzyme gene mitosis?"
    grams = {"which", "of", "these", "is", "right", "about", "which of"}
    assert guard.subjects.confidence(grams | {"planet", "orbit"}) > 0.9
    assert guard.subjects.confidence(grams) == pytest.approx(1 / 3, abs=0.05)
    model = replace(train_router(_subject_rows(240, 3, SUBJECTS)).model, domain=guard)
    assert model.assess(known).distance == pytest.approx(
        max(
            guard.novelty(terms(known, 2)) / guard.novelty_limit,
            guard.feature_distance(extract(known, guard.features)) / guard.feature_limit,
            guard.subject_distance(terms(known, 2)),
        )
    )
    assert not model.assess(known).out_of_domain
    # same format, same shared words, another subject: out of domain by subject alone
    assert guard.subject_distance(terms(unseen, 2)) > 1
    assert model.assess(unseen).out_of_domain
    # about 5% of fresh in-domain prompts fall below the 95% limit, by construction
    fresh = _subject_rows(300, 11, SUBJECTS)
    assert sum(guard.subject_distance(terms(r.prompt, 2)) > 1 for r in fresh) <= 30


def test_rows_without_two_subjects_get_no_profile_and_the_profile_survives_the_file(
    tmp_path: Path,
) -> None:
    assert fit_domain(_rows(60, 4)).subjects is None  # no domain column
    assert fit_domain(_subject_rows(60, 4, SUBJECTS)).subjects is None  # off by default
    with pytest.raises(ValueError, match="subject quantile"):
        fit_domain(_subject_rows(60, 4, SUBJECTS), subject_quantile=1)
    rows = _subject_rows(120, 5, SUBJECTS)
    model = train_router(rows, TrainConfig(guard_subject_quantile=0.95)).model
    assert train_router(rows).model.domain is not None
    assert train_router(rows).model.domain.subjects is None  # the trainer's default: off
    path = tmp_path / "s.json"
    model.save(path)
    loaded = LearnedModel.load(path)
    assert loaded.domain is not None
    assert model.domain is not None
    assert loaded.domain.subjects is not None
    assert model.domain.subjects is not None
    assert loaded.domain.subjects.counts == model.domain.subjects.counts
    assert loaded.domain.subjects.log_prior == pytest.approx(model.domain.subjects.log_prior)
    assert loaded.domain.subject_limit == pytest.approx(model.domain.subject_limit, abs=1e-6)
    probe = "Which of these is right about enzyme gene court?"
    assert loaded.assess(probe).distance == pytest.approx(model.assess(probe).distance, rel=1e-4)
    doc = json.loads(path.read_text())
    doc["domain"]["subjects"]["counts"] = "not base64!"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"s\.json: domain: "):
        LearnedModel.load(path)


def test_a_summary_without_a_subject_profile_measures_what_it_did() -> None:
    guard = fit_domain(_rows(60, 6))
    doc = guard.to_dict()
    assert "subjects" not in doc
    assert "subject_limit" not in doc
    again = DomainGuard.from_dict(doc)
    assert again.subjects is None
    assert again.subject_distance({"anything"}) == 0.0
    with pytest.raises(ValueError, match="subject limit"):
        replace(fit_domain(_subject_rows(60, 4, SUBJECTS), subject_quantile=0.95), subject_limit=0)
