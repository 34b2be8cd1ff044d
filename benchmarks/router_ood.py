"""Learned routers in and out of their training domain, with and without the guard.

On the shared RouteLLM rows (``../shared/data/routellm``), prints one JSON table
of APGR (95% bootstrap interval, 2000 draws, seed 0), CPT(50%) and CPT(80%) of
each learned router with its out-of-domain guard (the default: fallback to the
strong model), without it, with the guard falling back to the prior win rate,
prompt length and random routing, and the test rows' median distance to the
router's training domain (with the training prompts' own median), on:

- **in domain**: the shipped routers (``models/routers/mmlu.json``,
  ``gsm8k.json``) on their held-out rows (30%, seed 0);
- **across data sets**: the shipped GSM8K router on every MMLU row, the
  shipped MMLU router on every GSM8K row (neither saw any of them);
- **within MMLU**: for each subject group of :data:`MMLU_GROUPS` (STEM,
  humanities, social sciences, other), a router trained on the MMLU training
  rows of the three other groups (the shipped router's settings: strength
  3e-4, the same split) and scored on every row of the held-out group.

Random routing is one seeded draw (its expectation is exactly 0.5); a router
whose guard flags every row scores exactly 0.5 (one score for all: the
diagonal). Routers trained here are kept in ``--work DIR`` and reused.

``--subject-quantile Q`` measures the guard with subject familiarity too
(:class:`~agentmesh.routing.domain.SubjectProfile`, ``Q`` of the training
prompts inside its limit): every guard, the shipped MMLU router's included, is
then refitted on its training rows in ``--work`` (weights unchanged).

    python benchmarks/router_ood.py [--data DIR] [--work DIR] [--subject-quantile Q]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from agentmesh.evaluation.data import Dataset, load_csv, split_rows, subset
from agentmesh.evaluation.domain_fit import fit_domain
from agentmesh.evaluation.domains import mmlu_group
from agentmesh.evaluation.report import evaluate
from agentmesh.evaluation.routers import build_router
from agentmesh.evaluation.trainer import TrainConfig, train_router
from agentmesh.routing import LearnedModel

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models" / "routers"
HOLDOUT = 0.3
SEED = 0
DRAWS = 2000
GROUPS = ("stem", "humanities", "social_sciences", "other")


def _split(data: Dataset) -> tuple[Dataset, Dataset]:
    stratify = any(r.domain for r in data.rows)
    train, test = split_rows(
        data.rows, 1 - HOLDOUT, SEED, (lambda r: r.domain) if stratify else None
    )
    return subset(data, train), subset(data, test)


def _prior_variant(router_file: Path, work: Path) -> Path:
    """The same router and domain, falling back to the prior win rate instead."""
    model = LearnedModel.load(router_file)
    assert model.domain is not None, f"{router_file} records no training domain"
    path = work / f"{router_file.stem}-prior.json"
    replace(model, domain=replace(model.domain, fallback="prior")).save(path)
    return path


def _figures(test: Dataset, router_file: Path, work: Path) -> dict[str, object]:
    prior = _prior_variant(router_file, work)
    specs = [
        f"learned:{router_file}",
        f"learned-unguarded:{router_file}",
        f"learned:{prior}",
        "length",
        "random",
    ]
    routers = [build_router(s) for s in specs]
    summary, results = evaluate(test, routers, resamples=DRAWS, seed=SEED)
    out: dict[str, object] = {
        "rows": summary["rows"],
        "weak_accuracy": summary["weak_accuracy"],
        "strong_accuracy": summary["strong_accuracy"],
    }
    names = ("guarded", "unguarded", "guarded_prior", "length", "random")
    for name, r in zip(names, results, strict=True):
        out[name] = {
            "apgr": round(r.apgr, 4),
            "apgr_ci95": [round(v, 4) for v in r.apgr_ci or ()],
            "cpt50": round(r.cpt50, 4),
            "cpt80": round(r.cpt80, 4),
            **({"out_of_domain_rows": r.out_of_domain} if r.out_of_domain is not None else {}),
            **(
                {"median_distance": round(r.median_distance, 3)}
                if r.median_distance is not None
                else {}
            ),
        }
    guard = LearnedModel.load(router_file).domain
    out["training_median_distance"] = None if guard is None else guard.typical
    guard_vs = next(c for c in results[0].comparisons if c.router == results[1].name)
    out["guarded_minus_unguarded"] = {
        "apgr": round(guard_vs.difference, 4),
        "ci95": [round(guard_vs.low, 4), round(guard_vs.high, 4)],
    }
    return out


def _refitted(router_file: Path, train: Dataset, work: Path, subjects: float) -> Path:
    """``router_file`` with its domain refitted on ``train`` with the subject profile."""
    model = LearnedModel.load(router_file)
    path = work / f"{router_file.stem}-subjects.json"
    domain = fit_domain(train.rows, features=model.features, subject_quantile=subjects)
    replace(model, domain=domain).save(path)
    return path


def _group_router(train: Dataset, group: str, work: Path, subjects: float | None) -> Path:
    path = work / f"mmlu-without-{group}.json"
    rows = [r for r in train.rows if mmlu_group(r.domain) != group]
    if not path.exists():
        config = TrainConfig(strengths=(3e-4,), guard=False)
        meta = {"data": {"mmlu.csv": {"train_rows": len(rows), "without_group": group}}}
        train_router(rows, config, meta=meta).model.save(path)
    model = LearnedModel.load(path)  # the domain is refitted on every run (seconds)
    domain = fit_domain(rows, features=model.features, subject_quantile=subjects)
    replace(model, domain=domain).save(path)
    return path


def table(
    data_dir: Path, work: Path, subjects: float | None = None
) -> dict[str, dict[str, object]]:
    mmlu = load_csv(data_dir / "mmlu.csv")
    gsm8k = load_csv(data_dir / "gsm8k.csv")
    mmlu_train, mmlu_test = _split(mmlu)
    _, gsm8k_test = _split(gsm8k)
    mmlu_router = (
        MODELS / "mmlu.json"
        if subjects is None
        else _refitted(MODELS / "mmlu.json", mmlu_train, work, subjects)
    )
    out: dict[str, dict[str, object]] = {
        "in domain: MMLU (mmlu.json, held-out rows)": _figures(mmlu_test, mmlu_router, work),
        "in domain: GSM8K (gsm8k.json, held-out rows)": _figures(
            gsm8k_test, MODELS / "gsm8k.json", work
        ),
        "GSM8K -> MMLU (gsm8k.json, every MMLU row)": _figures(mmlu, MODELS / "gsm8k.json", work),
        "MMLU -> GSM8K (mmlu.json, every GSM8K row)": _figures(gsm8k, mmlu_router, work),
    }
    for group in GROUPS:
        router = _group_router(mmlu_train, group, work, subjects)
        held = Dataset(
            tuple(r for r in mmlu.rows if mmlu_group(r.domain) == group),
            mmlu.strong,
            mmlu.weak,
            f"mmlu.csv [{group}]",
        )
        out[f"MMLU without {group} -> {group} (every {group} row)"] = _figures(held, router, work)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "routellm")
    parser.add_argument("--work", type=Path, default=Path("router-ood-work"))
    parser.add_argument("--subject-quantile", type=float, default=None)
    args = parser.parse_args()
    if not (args.data / "mmlu.csv").exists():
        print(f"no RouteLLM data in {args.data}", file=sys.stderr)
        return 2
    args.work.mkdir(parents=True, exist_ok=True)
    print(json.dumps(table(args.data, args.work, args.subject_quantile), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
