"""Can an embeddings model of the catalog tell paraphrases from near-misses?

What is measured
    Cosine similarities, through ``Gateway.embed``, of paraphrase pairs (the
    same question in other words: a semantic cache should answer one with the
    other's answer) and near-miss pairs (the same words with another number or
    a negation: it must not). The model is a ``kind: embeddings`` entry of
    ``--models`` (default: ``gemma-embed`` of ``models/local.yaml``, the bundled
    Gemma 3 270M, mean-pooled, in process).

How to read the output (one JSON object on stdout)
    ``paraphrase`` and ``near_miss``: each pair's similarity; ``separable``:
    whether some threshold admits every paraphrase and no near-miss (the
    lowest paraphrase above the highest near-miss); ``threshold``: the largest
    multiple of 0.05 at or below the lowest paraphrase (what lets every
    paraphrase hit); ``near_misses_admitted``: how many near-misses that
    threshold alone would admit (the semantic cache's guard, equal numbers and
    negations, is what keeps them out).

    python benchmarks/semantic_cache.py [--models models/local.yaml] [--model gemma-embed]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
from collections.abc import Sequence

from agentmesh.models import Gateway, load_catalog

PARAPHRASES = (
    ("How do I reset my password?", "How can I reset my password?"),
    ("What is the capital of France?", "Which city is the capital of France?"),
    (
        "Summarise this article in three sentences.",
        "Give a three-sentence summary of this article.",
    ),
    ("How long does shipping to Canada take?", "How many days does delivery to Canada take?"),
    ("Can I cancel my plan at any time?", "Is it possible to cancel my plan whenever I want?"),
    ("What are the opening hours of the store?", "When is the store open?"),
)
NEAR_MISSES = (
    ("What is 12 times 7?", "What is 12 times 8?"),
    ("Refund 12 euros to my card.", "Refund 120 euros to my card."),
    ("Is the store open on Sunday?", "Is the store not open on Sunday?"),
    ("Can I pay by card?", "Can't I pay by card?"),
    ("Book a table for 2 people at 7 pm.", "Book a table for 4 people at 7 pm."),
    ("Should I take the medicine with food?", "Should I never take the medicine with food?"),
)


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


async def _similarities(
    gateway: Gateway, model: str, pairs: Sequence[tuple[str, str]]
) -> list[float]:
    found = []
    for a, b in pairs:  # one pair per request: llama-cpp-python's server batches wrongly
        vectors = (await gateway.embed(model, [a, b])).vectors
        found.append(round(_cosine(vectors[0], vectors[1]), 4))
    return found


async def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="models/local.yaml")
    parser.add_argument("--model", default="gemma-embed")
    args = parser.parse_args(argv)
    async with Gateway(load_catalog(args.models)) as gateway:
        paraphrase = await _similarities(gateway, args.model, PARAPHRASES)
        near = await _similarities(gateway, args.model, NEAR_MISSES)
    threshold = math.floor(min(paraphrase) * 20) / 20
    print(
        json.dumps(
            {
                "model": args.model,
                "paraphrase": paraphrase,
                "near_miss": near,
                "separable": min(paraphrase) > max(near),
                "threshold": threshold,
                "near_misses_admitted": sum(s >= threshold for s in near),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
