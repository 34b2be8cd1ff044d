from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from agentmesh.cli import main
from agentmesh.evaluation.cascade import (
    VALIDATORS,
    CascadeModel,
    arithmetic_steps,
    final_answer,
    safe_eval,
)
from agentmesh.evaluation.data import DataError, Row, load_csv, split_rows
from agentmesh.evaluation.feedback import feedback_rows
from agentmesh.evaluation.routers import ROUTERS, RouterSpecError, build_router
from agentmesh.routing import LearnedModel, Router

from .routing_helpers import catalog, route, spec

TWO = catalog(spec("cheap", tier=1, price=(0.1, 0.1)), spec("frontier", tier=3, price=(5, 15)))
STRONG = "big-model"
WEAK = "small-model"
PAIR = """\
models:
  - {id: big, provider: scripted, model: big, tier: 3, pricing: {input: 10, output: 30},
     context_window: 8000}
  - {id: small, provider: scripted, model: small, tier: 1, pricing: {input: 0.5, output: 0.5},
     context_window: 8000}
"""


def _rows(n: int, seed: int) -> list[dict[str, str]]:
    """Hard prompts (about proofs) beat the weak model; easy ones (about cats) do not."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        hard = rng.random() < 0.4
        topic = "prove the theorem about primes" if hard else "name a colour of cats"
        weak_ok = (not hard) if rng.random() < 0.9 else hard
        strong_ok = True if rng.random() < 0.9 else not weak_ok
        domain = "math" if hard else "pets"
        out.append(
            {
                "domain": domain,
                "prompt": f"Question {i}: {topic} {rng.choice(['now', 'please', 'today'])}",
                WEAK: str(weak_ok),
                STRONG: str(strong_ok),
                f"{WEAK}_response": "2 + 2 = 4\n#### 4" if weak_ok else "2 + 2 = 5, however",
            }
        )
    return out


def _write(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, Path]:
    return _write(tmp_path / "train.csv", _rows(120, 1)), _write(
        tmp_path / "test.csv", _rows(80, 2)
    )


# --- data --------------------------------------------------------------------------


def test_csv_columns_are_found_and_the_strong_model_is_the_more_accurate(
    data: tuple[Path, Path],
) -> None:
    loaded = load_csv(data[0])
    assert (loaded.strong, loaded.weak) == (STRONG, WEAK)
    assert loaded.accuracy("strong") > loaded.accuracy("weak")
    assert loaded.rows[0].weak_response is not None
    assert {r.domain for r in loaded.rows} == {"math", "pets"}
    swapped = load_csv(data[0], strong=WEAK)
    assert (swapped.strong, swapped.weak) == (WEAK, STRONG)


def test_bad_csvs_name_the_problem(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("text,x\nhello,True\n")
    with pytest.raises(DataError, match="no 'prompt' column"):
        load_csv(tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text("prompt,x\nhello,True\n")
    with pytest.raises(DataError, match="expected two True/False model columns"):
        load_csv(tmp_path / "b.csv")
    with pytest.raises(DataError, match="cannot read"):
        load_csv(tmp_path / "missing.csv")


def test_split_is_seeded_stratified_and_disjoint() -> None:
    rows = [Row(f"p{i}", True, True, domain="a" if i < 30 else "b") for i in range(100)]
    train, test = split_rows(rows, 0.7, seed=3, by=lambda r: r.domain)
    assert sorted(train + test) == list(range(100))
    assert sum(1 for i in train if rows[i].domain == "a") == 21
    assert split_rows(rows, 0.7, seed=3, by=lambda r: r.domain) == (train, test)
    assert split_rows(rows, 0.7, seed=4, by=lambda r: r.domain) != (train, test)


# --- routers ------------------------------------------------------------------------


def test_router_registry_builds_each_spec(data: tuple[Path, Path]) -> None:
    train = load_csv(data[0]).rows
    test = load_csv(data[1]).rows
    assert set(ROUTERS) >= {"random", "oracle", "length", "subject-prior", "learned", "cascade"}
    oracle = build_router("oracle").score(test)
    assert oracle == [float(bool(r.strong_ok)) - float(bool(r.weak_ok)) for r in test]
    assert build_router("random:7").score(test) == build_router("random:7").score(test)
    assert build_router("random:7").score(test) != build_router("random:8").score(test)
    prior = build_router("subject-prior", train).score(test)
    math_rows = [s for s, r in zip(prior, test, strict=True) if r.domain == "math"]
    pet_rows = [s for s, r in zip(prior, test, strict=True) if r.domain == "pets"]
    assert min(math_rows) > max(pet_rows)
    cascade = build_router("cascade")
    assert cascade.weak_always
    scores = cascade.score(test)
    wrong = [s for s, r in zip(scores, test, strict=True) if not r.weak_ok]
    right = [s for s, r in zip(scores, test, strict=True) if r.weak_ok]
    assert min(wrong) > max(right)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("telepathy", "unknown router 'telepathy'"),
        ("random:x", "seed must be an integer"),
        ("subject-prior", "domain"),
        ("learned:/nonexistent.json", "cannot read learned router"),
        ("cascade:/nonexistent.json", "cannot read cascade router"),
    ],
)
def test_bad_specs_say_why(spec: str, message: str) -> None:
    with pytest.raises(RouterSpecError, match=message):
        build_router(spec)


# --- CLI ----------------------------------------------------------------------------


def test_eval_router_prints_metrics_with_baselines_and_writes_scores_and_plot(
    data: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = tmp_path / "pair.yaml"
    catalog.write_text(PAIR)
    scores = tmp_path / "scores.csv"
    plot = tmp_path / "curve.png"
    code = main(
        [
            "eval-router",
            "--train",
            str(data[0]),
            "--test",
            str(data[1]),
            "--router",
            "subject-prior",
            "--router",
            "cascade",
            "--models",
            str(catalog),
            "--scores-out",
            str(scores),
            "--plot",
            str(plot),
            "--json",
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    by_name = {r["router"]: r for r in report["routers"]}
    assert list(by_name) == ["subject-prior", "cascade", "random", "oracle"]
    assert by_name["oracle"]["apgr"] >= by_name["subject-prior"]["apgr"] > 0.7
    assert 0.3 < by_name["random"]["apgr"] < 0.7
    assert report["prices"] == {
        "strong_model": "big",
        "weak_model": "small",
        "all_weak_usd": pytest.approx(report["prices"]["all_weak_usd"]),
        "all_strong_usd": pytest.approx(report["prices"]["all_strong_usd"]),
    }
    curve = by_name["subject-prior"]["curve"]
    assert curve[0]["strong_share"] == 0
    assert curve[-1]["strong_share"] == 1
    assert curve[0]["cost_usd"] == pytest.approx(report["prices"]["all_weak_usd"], rel=1e-3)
    assert curve[-1]["cost_usd"] == pytest.approx(report["prices"]["all_strong_usd"], rel=1e-3)
    # a cascade pays the weak call of every query, even at 100% strong calls
    assert by_name["cascade"]["curve"][-1]["cost_usd"] > curve[-1]["cost_usd"]
    with scores.open(encoding="utf-8") as handle:
        written = list(csv.DictReader(handle))
    test_prompts = [r.prompt for r in load_csv(data[1]).rows]
    assert [r["prompt"] for r in written] == test_prompts
    assert all(0 <= float(r["score"]) <= 1 for r in written)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_router_text_report_and_bad_input(
    data: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval-router", "--test", str(data[1]), "--router", "length"]) == 0
    out = capsys.readouterr().out
    assert "APGR" in out
    assert "oracle" in out
    assert "random" in out
    assert main(["eval-router", "--test", str(data[1]), "--router", "nope"]) == 2
    assert "unknown router" in capsys.readouterr().err
    assert main(["eval-router", "--test", "/nonexistent.csv", "--router", "length"]) == 2


def test_eval_router_bootstrap_gives_intervals_and_paired_verdicts(
    data: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("numpy", reason="--bootstrap needs numpy (the eval extra)")
    test = ["eval-router", "--train", str(data[0]), "--test", str(data[1])]
    routers = ["--router", "subject-prior", "--router", "length"]
    assert main([*test, *routers, "--bootstrap", "400", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["bootstrap"] == {"resamples": 400, "seed": 0, "level": 0.95}
    first, *others = report["routers"]
    for r in report["routers"]:
        low, high = r["apgr_ci95"]
        assert low <= r["apgr"] <= high
    assert [v["router"] for v in first["versus"]] == ["length", "random", "oracle"]
    assert all("versus" not in r for r in others)
    versus = {v["router"]: v for v in first["versus"]}
    # the prompts' topic decides the outcome: the domain prior beats random, loses to oracle
    assert versus["random"]["ci95"][0] > 0
    assert versus["oracle"]["ci95"][1] < 0
    assert versus["random"]["apgr_difference"] == pytest.approx(
        first["apgr"] - others[1]["apgr"], abs=1e-3
    )
    assert main([*test, *routers, "--bootstrap", "400"]) == 0
    out = capsys.readouterr().out
    assert "APGR 95% CI" in out
    assert "paired bootstrap, 400 draws" in out
    oracle_line = next(line for line in out.splitlines() if "vs oracle" in line)
    assert oracle_line.endswith("worse")
    assert main([*test, *routers, "--bootstrap", "20"]) == 2
    assert "at least 100 draws" in capsys.readouterr().err


def test_train_router_writes_a_file_the_learned_strategy_routes_with(
    data: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "router.json"
    holdout = tmp_path / "holdout.csv"
    code = main(
        [
            "train-router",
            "--data",
            str(data[0]),
            "--out",
            str(out),
            "--holdout",
            "0.25",
            "--seed",
            "1",
            "--holdout-out",
            str(holdout),
            "--strengths",
            "1e-3,1e-2",
            "--quiet",
        ]
    )
    assert code == 0, capsys.readouterr().err
    model = LearnedModel.load(out)
    assert model.version == 2
    assert model.ngrams
    meta = dict(model.meta)
    assert meta["data"]["train.csv"]["holdout"] == 0.25
    assert meta["data"]["train.csv"]["seed"] == 1
    assert len(load_csv(holdout).rows) == 30
    assert model.score("prove the theorem about primes") > model.score("name a colour of cats")
    router = Router(TWO)
    hard_prompt = "Question 9: prove the theorem about primes now"
    easy_prompt = "Question 9: name a colour of cats now"
    middle = (model.score(hard_prompt) + model.score(easy_prompt)) / 2
    params: dict[str, object] = {"model_file": str(out), "threshold": middle}
    hard = await_route(router, hard_prompt, params)
    easy = await_route(router, easy_prompt, params)
    assert hard == "frontier"
    assert easy == "cheap"
    assert main(["eval-router", "--test", str(holdout), "--router", f"learned:{out}"]) == 0
    assert "at its own threshold" in capsys.readouterr().out


def await_route(router: Router, prompt: str, params: dict[str, object]) -> str:
    import asyncio

    return asyncio.run(route(router, "learned", prompt=prompt, params=params)).chosen


def test_learned_model_reads_version_1_and_2_and_refuses_others(tmp_path: Path) -> None:
    v2 = LearnedModel(("math",), (1.0,), -1.0, ngrams={"primes": 3.0, "the theorem": 1.0})
    v2.save(tmp_path / "v2.json")
    loaded = LearnedModel.load(tmp_path / "v2.json")
    assert loaded == v2
    assert json.loads((tmp_path / "v2.json").read_text())["version"] == 2
    assert loaded.score("prove the theorem on primes") > loaded.score("hello")
    v1 = LearnedModel(("math",), (1.0,), -1.0)
    v1.save(tmp_path / "v1.json")
    assert json.loads((tmp_path / "v1.json").read_text())["version"] == 1
    doc = json.loads((tmp_path / "v2.json").read_text())
    doc["version"] = 9
    (tmp_path / "v9.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="unsupported learned router version 9"):
        LearnedModel.load(tmp_path / "v9.json")


def test_train_router_cascade_and_its_bad_inputs(
    data: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cascade.json"
    # One strength: the search over settings is fit_cascade's (test_evaluation_cascade.py).
    argv = ["train-router", "--data", str(data[0]), "--cascade", "--strengths", "1"]
    assert main([*argv, "--out", str(out)]) == 0
    judge = CascadeModel.load(out)
    assert judge.escalate_score("2 + 2 = 5, however", "q") > judge.escalate_score(
        "2 + 2 = 4\n#### 4", "q"
    )
    assert main(["train-router", "--out", str(out)]) == 2
    assert main(["train-router", "--data", str(data[0]), "--holdout", "1.5", "--out", "x"]) == 2
    capsys.readouterr()


# --- cascade validators --------------------------------------------------------------

GOOD = (
    "Janet has 16 - 3 = <<16-3=13>>13 eggs left.\nShe bakes with 4, so 13 - 4 = 9.\n"
    "She sells 9 * $2 = $<<9*2=18>>18.\n#### 18"
)


def test_validators_pass_a_clean_worked_answer() -> None:
    prompt = "Janet's ducks lay 16 eggs. She eats 3 and bakes with 4; eggs sell for $2."
    assert final_answer(GOOD) == 18
    assert all(check(GOOD, prompt) == 1.0 for check in VALIDATORS.values())
    assert sorted(s[1:] for s in arithmetic_steps(GOOD)) == [(9.0, 9.0), (13.0, 13.0), (18.0, 18.0)]


@pytest.mark.parametrize(
    ("response", "validator"),
    [
        ("She has 16 - 3 = 12 eggs.\n#### 12", "arithmetic"),
        ("She sells <<9*2=16>>16.\n#### 16", "arithmetic"),
        # a step right after a sentence's end is checked too
        ("She has 16 eggs. 16 - 3 = 12.\n#### 12", "arithmetic"),
        ("She has 16 - 3 = 13 eggs and 13 * 2 = 26 dollars.\n#### 40", "consistent"),
        ("She has 16 - 3 = 13 eggs, so", "answer_present"),
        ("She has 16 - 3 = 13 eggs and sells them for 13 * 2 = <<13*2=2", "complete"),
    ],
)
def test_validators_flag_crafted_mistakes(response: str, validator: str) -> None:
    assert VALIDATORS[validator](response, "16 eggs, 3 eaten") < 0.5


def test_hedging_lowers_the_score_and_the_judge_escalates_bad_answers() -> None:
    hedged = "However, assuming roughly half, I think it is approximately 9.\n#### 9"
    assert VALIDATORS["no_hedging"](hedged, "") < VALIDATORS["no_hedging"](GOOD, "")
    judge = CascadeModel.default()
    assert judge.escalate_score("16 - 3 = 12\n#### 12", "16 and 3") > judge.escalate_score(
        GOOD, "16 and 3"
    )


def test_safe_eval_only_does_arithmetic() -> None:
    assert safe_eval("2 x 60") == 120
    assert safe_eval("(93 \\* 6) - 5") == 553
    assert safe_eval("1,200 / 4") == 300
    assert safe_eval("50%*8") == 4
    assert safe_eval("__import__('os')") is None
    assert safe_eval("2 ** 100") is None
    assert safe_eval("1 / 0") is None


# --- feedback loop -------------------------------------------------------------------


def _span(name: str, n: int, attributes: dict[str, object]) -> str:
    return json.dumps(
        {
            "name": name,
            "trace_id": "ab" * 16,
            "span_id": f"{n:016x}",
            "parent_id": None,
            "kind": "CLIENT",
            "start_time_unix_nano": n,
            "end_time_unix_nano": n + 1,
            "attributes": attributes,
        }
    )


def _traffic(tmp_path: Path, runs: int) -> tuple[Path, Path]:
    """Runs of an executor judged once: hard prompts are rejected and escalated."""
    spans: list[str] = []
    records: list[str] = []
    n = 0
    for run in range(runs):
        hard = run % 2 == 0
        prompt = f"Task {run}: " + ("prove the theorem about primes" if hard else "say hello")
        steps: list[dict[str, object]] = []
        rounds = [("small", not hard)] + ([("big", True)] if hard else [])
        for number, (model, passed) in enumerate(rounds, start=1):
            n += 1
            decision = f"run{run}-{number}"
            messages = [{"role": "user", "parts": [{"type": "text", "content": prompt}]}]
            spans.append(
                _span(
                    f"chat {model}",
                    n,
                    {
                        "agentmesh.route.decision_id": decision,
                        "agentmesh.model_id": model,
                        "gen_ai.input.messages": json.dumps(messages),
                    },
                )
            )
            steps.append(
                {
                    "node": "work",
                    "kind": "executor",
                    "branch": "",
                    "round": number,
                    "model": model,
                    "route": {"decision_id": decision},
                }
            )
            verdict = {"passed": passed, "score": 1.0 if passed else 0.2, "round": number}
            steps.append(
                {
                    "node": "check",
                    "kind": "judge",
                    "branch": "",
                    "round": number,
                    "model": "judge",
                    "verdict": {**verdict, "judged_model": model},
                }
            )
        records.append(json.dumps({"run_id": f"r{run}", "steps": steps}))
    trace = tmp_path / "trace.jsonl"
    trace.write_text("\n".join(spans) + "\n")
    run_file = tmp_path / "runs.jsonl"
    run_file.write_text("\n".join(records) + "\n")
    return trace, run_file


def test_feedback_rows_join_verdicts_to_prompts(tmp_path: Path) -> None:
    trace, runs = _traffic(tmp_path, 4)
    rows = feedback_rows([trace], [runs])
    assert len(rows) == 4
    hard = [r for r in rows if "primes" in r.prompt]
    easy = [r for r in rows if "hello" in r.prompt]
    assert all(r.weak_ok is False and r.strong_ok is True for r in hard)
    assert all(r.weak_ok is True and r.strong_ok is None for r in easy)
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(DataError, match="could be joined"):
        feedback_rows([tmp_path / "empty.jsonl"], [runs])


def test_train_router_learns_from_traffic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace, runs = _traffic(tmp_path, 40)
    out = tmp_path / "traffic.json"
    code = main(
        [
            *("train-router", "--trace", str(trace), "--run", str(runs), "--out", str(out)),
            *("--strengths", "1e-2", "--quiet"),  # one strength: the search is tested above
        ]
    )
    assert code == 0, capsys.readouterr().err
    model = LearnedModel.load(out)
    meta = dict(model.meta)
    assert meta["target"] == "weak_wrong"
    assert meta["feedback"]["rows"] == 40
    assert model.score("Task 99: prove the theorem about primes") > model.score(
        "Task 99: say hello"
    )
