"""Prompt embeddings from a model of the catalog, cached on disk per dataset (numpy: ``eval``).

An :class:`Embedder` turns prompts into vectors. :func:`embedder_for` gives a
catalog model's, through the one embeddings contract of the models layer,
:meth:`Gateway.embed <agentmesh.models.Gateway.embed>` (:class:`GatewayEmbedder`):

- ``openai``: any OpenAI-compatible ``POST {base_url}/embeddings`` (a llama.cpp
  server started with ``--embedding``, vLLM, OpenAI);
- ``llamacpp``: the GGUF of the in-process adapter (the bundled Gemma 3 270M
  unless ``model_path`` says otherwise), loaded with ``embedding=True`` and
  mean pooling (the ``local`` extra);
- ``scripted``: simulated bag-of-words vectors, for tests.

:func:`embed_prompts` reads what it can from an :class:`EmbeddingCache` (one
``.npz`` file per dataset and model: text digests and vectors) and embeds only
the prompts it lacks, in batches, saving after each batch: an interrupted run
loses at most one batch.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import httpx
import numpy as np
from numpy.typing import NDArray

from agentmesh.models import PROVIDERS, Catalog, Gateway, ModelClient, ModelSpec, Provider

__all__ = [
    "Embedder",
    "EmbeddingCache",
    "GatewayEmbedder",
    "embed_prompts",
    "embedder_for",
]

Vectors = NDArray[np.float32]


class Embedder(Protocol):
    """Prompts -> one vector each."""

    @property
    def name(self) -> str:
        """What the vectors depend on (model and pooling): part of the cache key."""

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order."""

    async def aclose(self) -> None:
        """Release what the embedder holds (connections, the loaded model)."""


def _embedder_name(spec: ModelSpec) -> str:
    """What the vectors depend on: ``llamacpp:<file name>:mean`` or ``server:<wire model>``."""
    if spec.provider is Provider.LLAMACPP:
        path = spec.model_path
        if path:
            return f"llamacpp:{Path(os.path.expanduser(path)).name}:mean"
        from agentmesh.models.llamacpp import bundled_model_path

        return f"llamacpp:{bundled_model_path().name}:mean"
    prefix = "server" if spec.provider is Provider.OPENAI else spec.provider.value
    return f"{prefix}:{spec.model}"


class GatewayEmbedder:
    """A catalog model's embeddings through :meth:`Gateway.embed <agentmesh.models.Gateway.embed>`.

    The entry is called as ``kind: embeddings`` whatever its catalog kind (a
    chat entry's weights or endpoint serve embeddings too): an ``openai``
    entry posts to ``{base_url}/embeddings``, a ``llamacpp`` entry loads its
    GGUF for embeddings (mean pooling), a ``scripted`` entry gives simulated
    bag-of-words vectors.

    Args:
        spec: The catalog entry.
        http: The HTTP client to send on (e.g. with a mock transport); default:
            the gateway's own pool, closed by :meth:`aclose`.
    """

    def __init__(self, spec: ModelSpec, http: httpx.AsyncClient | None = None) -> None:
        self.spec = spec.model_copy(update={"kind": "embeddings"})
        self._gateway = Gateway(
            Catalog([self.spec], source=f"<embeddings of {spec.id}>"), http=http
        )
        self._name: str | None = None

    @property
    def name(self) -> str:
        """``llamacpp:<file name>:mean``, ``server:<wire model>`` or ``scripted:<model>``."""
        if self._name is None:
            self._name = _embedder_name(self.spec)
        return self._name

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order.

        Raises:
            ModelError: The classified failure of the call.
        """
        found = await self._gateway.embed(self.spec.id, texts)
        return [list(v) for v in found.vectors]

    async def aclose(self) -> None:
        """Close the gateway (connections it owns, the loaded model)."""
        await self._gateway.aclose()


def embedder_for(spec: ModelSpec, http: httpx.AsyncClient | None = None) -> Embedder:
    """The embedder of a catalog model (:class:`GatewayEmbedder`).

    Raises:
        ValueError: Its provider serves no embeddings.
    """
    serving = [p.value for p, f in PROVIDERS.items() if _serves_embeddings(f)]
    if spec.provider.value not in serving:
        raise ValueError(
            f"model {spec.id!r}: provider {spec.provider.value!r} serves no embeddings "
            f"(embeddings come from: {', '.join(serving)})"
        )
    return GatewayEmbedder(spec, http)


def _serves_embeddings(factory: object) -> bool:
    """Whether an adapter class overrides :meth:`ModelClient.embed`."""
    return getattr(factory, "embed", ModelClient.embed) is not ModelClient.embed


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class EmbeddingCache:
    """One ``.npz`` file of a dataset's prompt vectors under one embedder.

    Args:
        directory: Where cache files live.
        dataset: The dataset's name (e.g. ``mmlu``); with the embedder's name, the file name.
    """

    def __init__(self, directory: str | os.PathLike[str], dataset: str, embedder: str) -> None:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{dataset}.{embedder}")
        self.path = Path(directory) / f"{safe}.npz"

    def load(self) -> dict[str, Vectors]:
        """Digest of a text -> its vector (empty when there is no file yet)."""
        if not self.path.exists():
            return {}
        with np.load(self.path) as data:
            keys, vectors = data["keys"], data["vectors"]
        return {str(k): vectors[i] for i, k in enumerate(keys)}

    def save(self, found: Mapping[str, Vectors]) -> None:
        """Write every vector (atomically: a temporary file, then a rename)."""
        if not found:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(list(found))
        vectors = np.stack([found[k] for k in keys]).astype(np.float32)
        partial = self.path.with_suffix(".partial.npz")
        np.savez(partial, keys=keys, vectors=vectors)
        partial.replace(self.path)


async def embed_prompts(
    prompts: Sequence[str],
    embedder: Embedder,
    cache: EmbeddingCache | None = None,
    *,
    batch: int = 16,
    progress: Callable[[int, int], None] | None = None,
) -> Vectors:
    """One row per prompt: from the cache, else embedded (and cached) in batches.

    Raises:
        ValueError: The embedder answered with vectors of different sizes.
    """
    found = cache.load() if cache is not None else {}
    digests = [_digest(p) for p in prompts]
    missing = list(dict.fromkeys(d for d in digests if d not in found))
    text_of = dict(zip(digests, prompts, strict=True))
    for start in range(0, len(missing), batch):
        chunk = missing[start : start + batch]
        vectors = await embedder.embed([text_of[d] for d in chunk])
        for d, v in zip(chunk, vectors, strict=True):
            found[d] = np.asarray(v, dtype=np.float32)
        if cache is not None:
            cache.save(found)
        if progress is not None:
            progress(min(start + batch, len(missing)), len(missing))
    sizes = {found[d].shape for d in digests}
    if len(sizes) > 1:
        raise ValueError(f"embeddings of different sizes: {sorted(sizes)}")
    return np.stack([found[d] for d in digests]) if digests else np.zeros((0, 0), np.float32)
