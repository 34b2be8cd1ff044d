"""Embeddings vs today's n-gram features for the learned router, on the shared rows.

For GSM8K and MMLU (``../shared/data/routellm``), on the split the shipped
routers use (30% held out, seed 0), this trains two routers on the same
training rows, the n-gram router of ``agentmesh train-router`` and a ridge
router on a catalog model's prompt embeddings
(:mod:`agentmesh.evaluation.embeddings`, default: the bundled Gemma 3 270M in
process, ``models/local.yaml`` id ``gemma``), and scores both on the same
held-out rows with ``eval-router``'s paired bootstrap (2000 draws, seed 0):
their APGR, CPT(50%), CPT(80%), the embeddings' lead and its 95% interval,
and which one is kept (embeddings only when the interval excludes 0 in their
favour). Embeddings are cached per dataset in ``--cache DIR``; the time spent
embedding what was not cached is reported.

Embedding all 8,560 MMLU prompts (about 1M tokens) with the 270M model takes
most of an hour on two shared cores, so MMLU is measured on a seeded sample of
its split (``--mmlu-train``, ``--mmlu-test`` rows); GSM8K uses every row.

    python benchmarks/router_embeddings.py [--data DIR] [--models FILE] [--model ID]
        [--cache DIR] [--mmlu-train N] [--mmlu-test N] [--sets gsm8k,mmlu]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path

from agentmesh.evaluation.data import Dataset, Row, load_csv, split_rows, subset
from agentmesh.evaluation.embedding_router import fit_embedding_router
from agentmesh.evaluation.embeddings import EmbeddingCache, embed_prompts, embedder_for
from agentmesh.evaluation.report import evaluate
from agentmesh.evaluation.routers import Scorer, build_router
from agentmesh.evaluation.trainer import TrainConfig, train_router
from agentmesh.models import load_catalog

ROOT = Path(__file__).resolve().parents[1]
HOLDOUT = 0.3
SEED = 0
DRAWS = 2000
STRENGTHS = {"mmlu": (3e-4,), "gsm8k": TrainConfig().strengths}


def _split(data: Dataset) -> tuple[Dataset, Dataset]:
    stratify = any(r.domain for r in data.rows)
    train, test = split_rows(
        data.rows, 1 - HOLDOUT, SEED, (lambda r: r.domain) if stratify else None
    )
    return subset(data, train), subset(data, test)


def _sample(data: Dataset, n: int | None) -> Dataset:
    if n is None or n >= len(data):
        return data
    keep = sorted(random.Random(SEED).sample(range(len(data)), n))
    return subset(data, keep)


def _figures(r: object) -> dict[str, object]:
    from agentmesh.evaluation.report import RouterResult

    assert isinstance(r, RouterResult)
    return {
        "apgr": round(r.apgr, 4),
        "apgr_ci95": [round(v, 4) for v in r.apgr_ci or ()],
        "cpt50": round(r.cpt50, 4),
        "cpt80": round(r.cpt80, 4),
    }


async def compare(
    name: str, train: Dataset, test: Dataset, args: argparse.Namespace
) -> dict[str, object]:
    spec = load_catalog(args.models)[args.model]
    embedder = embedder_for(spec)
    cache = EmbeddingCache(args.cache, name, embedder.name)
    prompts = [r.prompt for r in train.rows] + [r.prompt for r in test.rows]
    started = time.perf_counter()
    cached = len(cache.load())
    vectors = await embed_prompts(prompts, embedder, cache)
    seconds = time.perf_counter() - started
    await embedder.aclose()
    embedded = max(0, len(set(prompts)) - cached)
    router = fit_embedding_router(vectors[: len(train)], train.rows)
    by_prompt = dict(zip(prompts, router.score(vectors).tolist(), strict=True))

    def score(rows: list[Row] | tuple[Row, ...]) -> list[float]:
        return [by_prompt[r.prompt] for r in rows]

    embedding = Scorer(f"embeddings:{args.model}", score, note=f"ridge, L2 {router.strength:g}")
    ngrams = train_router(train.rows, TrainConfig(strengths=STRENGTHS[name])).model
    tfidf = Scorer(
        "ngrams", lambda rows: [ngrams.score(r.prompt) for r in rows], note="train-router"
    )
    _, results = evaluate(
        test, [embedding, tfidf, build_router("random")], resamples=DRAWS, seed=SEED
    )
    lead = results[0].comparisons[0]
    kept = "embeddings" if lead.low > 0 else "ngrams"
    return {
        "train_rows": len(train),
        "test_rows": len(test),
        "embedder": embedder.name,
        "dimensions": int(vectors.shape[1]),
        "embedded_now": embedded,
        "embedding_seconds": round(seconds, 1),
        "prompts_per_second": round(embedded / seconds, 2) if embedded else None,
        "embeddings": {**_figures(results[0]), "cv": router.cv},
        "ngrams": _figures(results[1]),
        "random": _figures(results[2]),
        "embeddings_minus_ngrams": {
            "apgr": round(lead.difference, 4),
            "ci95": [round(lead.low, 4), round(lead.high, 4)],
        },
        "kept": kept,
    }


async def run(args: argparse.Namespace) -> dict[str, object]:
    out: dict[str, object] = {}
    for name in args.sets.split(","):
        train, test = _split(load_csv(args.data / f"{name}.csv"))
        if name == "mmlu":
            train, test = _sample(train, args.mmlu_train), _sample(test, args.mmlu_test)
        out[name] = await compare(name, train, test, args)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "routellm")
    parser.add_argument("--models", default=str(ROOT / "models" / "local.yaml"))
    parser.add_argument("--model", default="gemma")
    parser.add_argument("--cache", type=Path, default=Path("embedding-cache"))
    parser.add_argument("--mmlu-train", type=int, default=1000)
    parser.add_argument("--mmlu-test", type=int, default=500)
    parser.add_argument("--sets", default="gsm8k,mmlu")
    args = parser.parse_args()
    if not (args.data / "mmlu.csv").exists():
        print(f"no RouteLLM data in {args.data}", file=sys.stderr)
        return 2
    print(json.dumps(asyncio.run(run(args)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
