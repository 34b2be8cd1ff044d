"""Held-out figures of the shipped routers (models/routers/) on the RouteLLM data.

Recomputes the split that ``agentmesh train-router --holdout 0.3 --seed 0`` made
(stratified by domain for MMLU), scores the held-out rows with each router and
prints one JSON table: APGR, CPT(50%), CPT(80%) for the learned router, the
cascade, the simple baselines, random and oracle. ``--write-meta`` stores the
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
SETS = {
    "mmlu": ("mmlu.csv", ["learned:{m}/mmlu.json", "subject-prior", "length"]),
    "gsm8k": (
        "gsm8k.csv",
        ["learned:{m}/gsm8k.json", "cascade:{m}/gsm8k-cascade.json", "cascade", "length"],
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
    for name, (file, specs) in SETS.items():
        train, test = split(load_csv(data_dir / file))
        routers = [build_router(s.format(m=MODELS), train.rows) for s in specs]
        routers += [build_router("random"), build_router("oracle")]
        summary, results = evaluate(test, routers)
        out[name] = {
            "split": {
                "holdout": HOLDOUT,
                "seed": SEED,
                "train_rows": len(train),
                "test_rows": len(test),
            },
            "weak_accuracy": summary["weak_accuracy"],
            "strong_accuracy": summary["strong_accuracy"],
            "routers": {
                r.name.replace(str(MODELS) + "/", ""): {
                    "apgr": round(r.apgr, 4),
                    "cpt50": round(r.cpt50, 4),
                    "cpt80": round(r.cpt80, 4),
                }
                for r in results
            },
        }
    return out


def write_meta(figures: dict[str, dict[str, object]]) -> None:
    for name in SETS:
        routers = figures[name]["routers"]
        assert isinstance(routers, dict)
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
