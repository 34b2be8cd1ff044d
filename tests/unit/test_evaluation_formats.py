"""Graded (numeric) and pairwise (A wins / B wins / tie) data in eval-router and train-router."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from agentmesh.cli import main
from agentmesh.evaluation.data import (
    DataError,
    concat,
    infer_scale,
    load_csv,
    parse_scale,
    write_csv,
)
from agentmesh.evaluation.metrics import apgr
from agentmesh.routing import LearnedModel

STRONG, WEAK = "big-model", "small-model"


def _write(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _graded(path: Path, n: int, seed: int) -> Path:
    """MT-Bench-like grades 1-10: the weak model does badly on proofs, well on cats."""
    rng = random.Random(seed)
    rows: list[list[object]] = []
    for i in range(n):
        hard = rng.random() < 0.4
        topic = "prove the theorem about primes" if hard else "name a colour of cats"
        weak = rng.choice([2, 3, 4]) if hard else rng.choice([7, 8, 9])
        strong = rng.choice([8, 9, 10])
        rows.append(["math" if hard else "pets", f"Q{i}: {topic} {rng.random():.3f}", weak, strong])
    return _write(path, ["domain", "prompt", WEAK, STRONG], rows)


def _pairwise(path: Path, n: int, seed: int, extra_model: bool = False) -> Path:
    rng = random.Random(seed)
    rows: list[list[object]] = []
    for i in range(n):
        hard = rng.random() < 0.4
        topic = "prove the theorem about primes" if hard else "name a colour of cats"
        a, b = (STRONG, WEAK) if rng.random() < 0.5 else (WEAK, STRONG)
        winner = "tie" if not hard else ("model_a" if a == STRONG else "model_b")
        rows.append([f"P{i}: {topic}", a, b, winner])
    if extra_model:
        rows.append(["odd one out", "third-model", WEAK, "model_a"])
    return _write(path, ["prompt", "model_a", "model_b", "winner"], rows)


# --- reading -----------------------------------------------------------------------


def test_graded_columns_are_told_apart_by_content_and_normalised_on_their_scale(
    tmp_path: Path,
) -> None:
    data = load_csv(_graded(tmp_path / "g.csv", 50, 1))
    assert data.kind == "graded"
    assert (data.strong, data.weak) == (STRONG, WEAK)
    assert data.extra["scale"] == "1-10 (inferred)"
    row = data.rows[0]
    assert row.weak_quality is not None
    assert 0 <= row.weak_quality <= 1
    assert row.weak_value == row.weak_quality
    assert row.weak_ok == (row.weak_quality >= 0.5)
    declared = load_csv(tmp_path / "g.csv", scale=(0, 10))
    assert declared.extra["scale"] == "0-10"
    first = next(r for r in declared.rows)
    assert first.strong_quality == pytest.approx(
        float(next(csv.DictReader((tmp_path / "g.csv").open()))[STRONG]) / 10
    )


def test_true_false_columns_are_still_correctness_data(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "c.csv",
        ["prompt", WEAK, STRONG],
        [["a", "True", "True"], ["b", "False", "True"], ["c", "False", "False"]],
    )
    data = load_csv(path)
    assert data.kind == "correctness"
    assert [r.weak_quality for r in data.rows] == [None, None, None]
    assert [r.strong_value for r in data.rows] == [1.0, 1.0, 0.0]


@pytest.mark.parametrize(
    ("cells", "scale", "message"),
    [
        (["7", "x8"], None, r"g\.csv: row 2, column 'big-model': 'x8' is not a number"),
        (["7", "12"], (1, 10), r"row 2, column 'big-model': 12 is outside the scale 1-10"),
        (["7", "250"], None, r"cannot infer the scale .*\(values 5 to 250\).*--scale MIN-MAX"),
    ],
)
def test_bad_graded_cells_name_file_row_and_column(
    tmp_path: Path, cells: list[str], scale: tuple[float, float] | None, message: str
) -> None:
    rows = [["p1", "5", cells[0]], ["p2", "6", cells[1]], ["p3", "5", "9"]]
    path = _write(tmp_path / "g.csv", ["prompt", WEAK, STRONG], rows)
    with pytest.raises(DataError, match=message):
        load_csv(path, scale=scale)


def test_scales_parse_and_infer() -> None:
    assert parse_scale("1-10") == (1.0, 10.0)
    assert parse_scale("-5--1") == (-5.0, -1.0)
    for bad in ("10-1", "a-b", "7"):
        with pytest.raises(ValueError, match="MIN-MAX"):
            parse_scale(bad)
    assert infer_scale([0.2, 0.9]) == (0.0, 1.0)
    assert infer_scale([1, 7.5]) == (1.0, 10.0)
    assert infer_scale([0, 7]) == (0.0, 10.0)
    assert infer_scale([3, 77]) == (0.0, 100.0)
    assert infer_scale([-1, 3]) is None


def test_pairwise_rows_give_the_winner_quality_one_and_ties_both(tmp_path: Path) -> None:
    data = load_csv(_pairwise(tmp_path / "p.csv", 60, 2))
    assert data.kind == "pairwise"
    assert (data.strong, data.weak) == (STRONG, WEAK)  # the higher win rate
    hard = [r for r in data.rows if "primes" in r.prompt]
    easy = [r for r in data.rows if "cats" in r.prompt]
    assert all((r.strong_value, r.weak_value) == (1.0, 0.0) for r in hard)
    assert all((r.strong_value, r.weak_value) == (1.0, 1.0) for r in easy)
    # knowing the topic is knowing the gain here: as good as the oracle
    weak = [r.weak_value or 0.0 for r in data.rows]
    strong = [r.strong_value or 0.0 for r in data.rows]
    topic = [1.0 if "primes" in r.prompt else 0.0 for r in data.rows]
    oracle = [s - w for s, w in zip(strong, weak, strict=True)]
    assert apgr(topic, weak, strong) == pytest.approx(apgr(oracle, weak, strong))
    assert apgr(topic, weak, strong) > apgr([1.0 - t for t in topic], weak, strong) + 0.5


def test_pairwise_problems_are_named(tmp_path: Path) -> None:
    path = _pairwise(tmp_path / "p.csv", 10, 3, extra_model=True)
    with pytest.raises(DataError, match=r"3 models .* --strong-column/--weak-column"):
        load_csv(path)
    named = load_csv(path, strong=STRONG, weak=WEAK)
    assert len(named.rows) == 10
    assert named.extra["skipped_rows"] == "1"
    with pytest.raises(DataError, match=r"no model 'nobody'"):
        load_csv(path, strong="nobody", weak=WEAK)
    bad = _write(
        tmp_path / "w.csv",
        ["prompt", "model_a", "model_b", "winner"],
        [
            ["q", STRONG, WEAK, "model_a"],
            ["q2", STRONG, WEAK, "A"],
        ],
    )
    with pytest.raises(DataError, match=r"w\.csv: row 2, column 'winner': 'A' is not one of"):
        load_csv(bad)


def test_graded_rows_round_trip_and_concatenate(tmp_path: Path) -> None:
    graded = load_csv(_graded(tmp_path / "g.csv", 30, 4))
    write_csv(graded, tmp_path / "out.csv")
    again = load_csv(tmp_path / "out.csv")
    assert again.kind == "graded"
    assert [r.weak_quality for r in again.rows] == pytest.approx(
        [r.weak_quality for r in graded.rows]
    )
    both = concat([graded, load_csv(_pairwise(tmp_path / "p.csv", 20, 5))])
    assert len(both) == 50
    assert both.kind == "mixed"
    assert both.source.endswith("g.csv + " + str(tmp_path / "p.csv"))


# --- the commands ------------------------------------------------------------------


def test_eval_router_reads_graded_test_rows_and_repeated_train_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train_g = _graded(tmp_path / "train-g.csv", 120, 6)
    train_p = _pairwise(tmp_path / "train-p.csv", 120, 7)
    test = _graded(tmp_path / "test.csv", 80, 8)
    scores = tmp_path / "scores.csv"
    code = main(
        [
            *("eval-router", "--test", str(test), "--train", str(train_g)),
            *("--train", str(train_p), "--router", "learned", "--json"),
            *("--scores-out", str(scores)),
        ]
    )
    assert code == 0, capsys.readouterr().err
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "graded"
    assert out["scale"] == "1-10 (inferred)"
    assert out["train_rows"] == 240
    assert out["train_kind"] == "mixed"
    learned = next(r for r in out["routers"] if r["router"] == "learned")
    rows = load_csv(test).rows
    topic = [1.0 if "primes" in r.prompt else 0.0 for r in rows]
    best = apgr(topic, [r.weak_value or 0 for r in rows], [r.strong_value or 0 for r in rows])
    assert learned["apgr"] >= best - 0.02  # it found the topic from the mixed files
    assert len(scores.read_text().splitlines()) == 81  # header + one score per test row


def test_eval_router_bad_cell_exits_2_naming_file_row_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        tmp_path / "bad.csv", ["prompt", WEAK, STRONG], [["a", "3", "9"], ["b", "4", "n/a"]]
    )
    assert main(["eval-router", "--test", str(path), "--router", "length"]) == 2
    err = capsys.readouterr().err
    assert "bad.csv: row 2, column 'big-model': 'n/a' is not a number" in err
    assert "Traceback" not in err
    with pytest.raises(SystemExit) as exited:  # argparse's own usage error
        main(["eval-router", "--test", str(path), "--router", "length", "--scale", "9-1"])
    assert exited.value.code == 2
    assert "argument --scale: scale must be MIN-MAX with MIN < MAX" in capsys.readouterr().err


def test_train_router_learns_from_graded_and_pairwise_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "router.json"
    code = main(
        [
            *("train-router", "--train", str(_graded(tmp_path / "g.csv", 100, 9))),
            *("--train", str(_pairwise(tmp_path / "p.csv", 100, 10))),
            *("--out", str(out), "--strengths", "1e-2", "--quiet"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    model = LearnedModel.load(out)
    meta = dict(model.meta)
    assert meta["rows"] == 200
    assert meta["target"] == "gain"
    assert {d["kind"] for d in meta["data"].values()} == {"graded", "pairwise"}
    assert model.score("Q: prove the theorem about primes") > model.score(
        "Q: name a colour of cats"
    )
