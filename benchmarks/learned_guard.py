"""Cost of the out-of-domain guard: a learned router's score alone against score + distance.

Scores the first ``--prompts`` MMLU prompts of the shared data (or short
built-in prompts when the data is absent) with the shipped MMLU router,
``LearnedModel.score`` (the unguarded decision) and ``LearnedModel.assess``
(the guarded one: the same score and the distance to the training domain, the
prompt read once), ``--repeats`` times each, interleaved; prints JSON with the
median microseconds per prompt of each and their ratio.

``--router FILE`` measures another router file (one whose guard has the
subject profile: ``benchmarks/router_ood.py --subject-quantile`` writes
``mmlu-subjects.json`` to its work directory).

    python benchmarks/learned_guard.py [--prompts N] [--repeats N] [--router FILE]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from agentmesh.routing import LearnedModel

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "routellm" / "mmlu.csv"


def _prompts(n: int) -> tuple[list[str], str]:
    if DATA.exists():
        with DATA.open(encoding="utf-8", newline="") as handle:
            return [r["prompt"] for r in csv.DictReader(handle)][:n], str(DATA)
    base = "Which of the following is true of prime numbers?\nA. one\nB. two\nC. three\nD. four"
    return [f"{base} ({i})" for i in range(n)], "built-in prompts"


def _per_prompt(work: Callable[[str], object], prompts: list[str]) -> float:
    started = time.perf_counter()
    for p in prompts:
        work(p)
    return (time.perf_counter() - started) / len(prompts) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--router", type=Path, default=ROOT / "models" / "routers" / "mmlu.json")
    args = parser.parse_args()
    model = LearnedModel.load(args.router)
    prompts, source = _prompts(args.prompts)
    score: list[float] = []
    assess: list[float] = []
    for _ in range(args.repeats):
        score.append(_per_prompt(model.score, prompts))
        assess.append(_per_prompt(model.assess, prompts))
    median_score, median_assess = statistics.median(score), statistics.median(assess)
    print(
        json.dumps(
            {
                "prompts": len(prompts),
                "source": source,
                "router": str(args.router),
                "repeats": args.repeats,
                "score_us": round(median_score, 2),
                "score_and_distance_us": round(median_assess, 2),
                "ratio": round(median_assess / median_score, 3),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
