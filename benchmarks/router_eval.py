"""Held-out figures of the shipped routers (models/routers/) on the RouteLLM data.

Recomputes the split that ``agentmesh train-router --holdout 0.3 --seed 0`` made
(stratified by domain for MMLU), scores the held-out rows with each router and
prints one JSON table: APGR (with its 95% bootstrap interval), CPT(50%),
CPT(80%) for the learned router (with its out-of-domain guard, the default, and
without), the cascade, the simple baselines, random and oracle, and each
shipped router's APGR minus each baseline's with its paired bootstrap interval
(2000 draws of the held-out rows, seed 0): an interval that excludes 0 is a
lead the luck of the split does not explain. ``--write-meta`` stores the
figures in the model files' ``meta.heldout``.

    python benchmarks/router_eval.py [--data DIR] [--write-meta]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from agentmesh.evaluation.data import Dataset, load_csv, split_rows, subset
from agentmesh.evaluation.report import evaluate
from agentmesh.evaluation.routers import build_router

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models" / "routers"
HOLDOUT = 0.3
SEED = 0
DRAWS = 2000
SETS = {
    # file, then groups: a shipped router first, the routers it is compared with after it
    "mmlu": (
        "mmlu.csv",
        [["learned:{m}/mmlu.json", "learned-unguarded:{m}/mmlu.json", "subject-prior", "length"]],
    ),
    "gsm8k": (
        "gsm8k.csv",
        [
            ["learned:{m}/gsm8k.json", "learned-unguarded:{m}/gsm8k.json", "length"],
            ["cascade:{m}/gsm8k-cascade.json", "cascade", "learned:{m}/gsm8k.json", "length"],
        ],
    ),
}


def split(data: Dataset) -> tuple[Dataset, Dataset]:
    stratify = any(r.domain for r in data.rows)
    train, test = split_rows(
        data.rows, 1 - HOLDOUT, SEED, (lambda r: r.domain) if stratify else None
    )
    return subset(data, train), subset(data, test)


def table(data_dir: Path) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for name, (file, groups) in SETS.items():
        train, test = split(load_csv(data_dir / file))
        figures: dict[str, dict[str, object]] = {}
        versus: dict[str, object] = {}
        for specs in groups:
            routers = [build_router(s.format(m=MODELS), train.rows) for s in specs]
            routers += [build_router("random"), build_router("oracle")]
            # the same seed: the same draws of the test rows in every group
            summary, results = evaluate(test, routers, resamples=DRAWS, seed=SEED)
            for r in results:
                figures[_short(r.name)] = {
                    "apgr": round(r.apgr, 4),
                    "apgr_ci95": [round(v, 4) for v in r.apgr_ci or ()],
                    "cpt50": round(r.cpt50, 4),
                    "cpt80": round(r.cpt80, 4),
                }
            versus[_short(results[0].name)] = [
                {**c.to_dict(), "router": _short(c.router)} for c in results[0].comparisons
            ]
        out[name] = {
            "split": {
                "holdout": HOLDOUT,
                "seed": SEED,
                "train_rows": len(train),
                "test_rows": len(test),
            },
            "weak_accuracy": summary["weak_accuracy"],
            "strong_accuracy": summary["strong_accuracy"],
            "bootstrap": summary["bootstrap"],
            "routers": figures,
            "versus": versus,
        }
    return out


def _short(spec: str) -> str:
    return spec.replace(str(MODELS) + "/", "")


def write_meta(figures: dict[str, dict[str, object]]) -> None:
    for name in SETS:
        routers = figures[name]["routers"]
        versus = figures[name]["versus"]
        assert isinstance(routers, dict)
        assert isinstance(versus, dict)
        for file, spec in (
            (f"{name}.json", f"learned:{name}.json"),
            (f"{name}-cascade.json", f"cascade:{name}-cascade.json"),
        ):
            path = MODELS / file
            if not path.exists() or spec not in routers:
                continue
            doc = json.loads(path.read_text(encoding="utf-8"))
            doc["meta"]["heldout"] = {
                "split": figures[name]["split"],
                "weak_accuracy": figures[name]["weak_accuracy"],
                "strong_accuracy": figures[name]["strong_accuracy"],
                **routers[spec],
                "versus": versus.get(spec, []),
                "baselines": {k: v for k, v in routers.items() if k != spec},
            }
            indent = 1 if doc.get("format") == "agentmesh-learned-router" else 2
            path.write_text(json.dumps(doc, indent=indent) + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "routellm")
    parser.add_argument("--write-meta", action="store_true")
    args = parser.parse_args()
    if not (args.data / "mmlu.csv").exists():
        print(f"no RouteLLM data in {args.data}", file=sys.stderr)
        return 2
    figures = table(args.data)
    if args.write_meta:
        write_meta(figures)
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
