"""Prompt embeddings from a model of the catalog, cached on disk per dataset (numpy: ``eval``).

An :class:`Embedder` turns prompts into vectors; :data:`EMBEDDERS` maps a
catalog provider to the one that serves it:

- ``openai``: any OpenAI-compatible ``POST {base_url}/embeddings`` (a llama.cpp
  server started with ``--embedding``, vLLM, OpenAI), over an injected
  ``httpx.AsyncClient`` (:class:`ServerEmbedder`);
- ``llamacpp``: the GGUF of the in-process adapter (the bundled Gemma 3 270M
  unless ``model_path`` says otherwise), loaded with ``embedding=True`` and
  mean pooling (:class:`LlamaCppEmbedder`, the ``local`` extra).

:func:`embed_prompts` reads what it can from an :class:`EmbeddingCache` (one
``.npz`` file per dataset and model: text digests and vectors) and embeds only
the prompts it lacks, in batches, saving after each batch: an interrupted run
loses at most one batch.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import httpx
import numpy as np
from numpy.typing import NDArray

from agentmesh.models.spec import ModelSpec

__all__ = [
    "EMBEDDERS",
    "Embedder",
    "EmbeddingCache",
    "LlamaCppEmbedder",
    "ServerEmbedder",
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


class ServerEmbedder:
    """An OpenAI-compatible ``/embeddings`` endpoint (a llama.cpp server with ``--embedding``).

    Args:
        spec: The catalog entry (``base_url``, wire ``model``, ``api_key_env``, ``headers``).
        client: The HTTP client to use (default: one of its own, closed by :meth:`aclose`).
    """

    def __init__(self, spec: ModelSpec, client: httpx.AsyncClient | None = None) -> None:
        if not spec.base_url:
            raise ValueError(f"model {spec.id!r}: an embeddings server needs a base_url")
        self.spec = spec
        self._own = client is None
        self._client = client or httpx.AsyncClient(timeout=spec.timeout_s)

    @property
    def name(self) -> str:
        """``server:<wire model>``."""
        return f"server:{self.spec.model}"

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """POST the texts; the answer's ``data[i].embedding``, sorted by ``index``."""
        headers = dict(self.spec.headers)
        key = os.environ.get(self.spec.api_key_env) if self.spec.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        url = f"{(self.spec.base_url or '').rstrip('/')}/embeddings"
        body = {"model": self.spec.model, "input": list(texts)}
        response = await self._client.post(url, json=body, headers=headers)
        if response.status_code != 200:
            raise ValueError(
                f"model {self.spec.id!r}: {url} answered {response.status_code}: "
                f"{response.text[:200]}"
            )
        try:
            data = sorted(response.json()["data"], key=lambda d: int(d["index"]))
            vectors = [[float(v) for v in d["embedding"]] for d in data]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"model {self.spec.id!r}: malformed embeddings answer: {exc}"
            ) from None
        if len(vectors) != len(texts):
            raise ValueError(
                f"model {self.spec.id!r}: {len(vectors)} embeddings for {len(texts)} inputs"
            )
        return vectors

    async def aclose(self) -> None:
        """Close the HTTP client if it is this embedder's own."""
        if self._own:
            await self._client.aclose()


class LlamaCppEmbedder:
    """The in-process GGUF, mean-pooled over the prompt's tokens (truncated to ``n_ctx``)."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """``llamacpp:<file name>:mean``."""
        return f"llamacpp:{Path(self._path()).name}:mean"

    def _path(self) -> str:
        from agentmesh.models.llamacpp import bundled_model_path

        path = self.spec.model_path
        return os.path.expanduser(path) if path else str(bundled_model_path())

    def _llm(self) -> Any:
        with self._lock:
            if self._model is None:
                try:
                    import llama_cpp
                except ImportError as exc:
                    raise ImportError(
                        "llamacpp embeddings need llama-cpp-python: pip install 'agentmesh[local]'"
                    ) from exc
                self._model = llama_cpp.Llama(
                    model_path=self._path(),
                    embedding=True,
                    pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                    n_ctx=self.spec.n_ctx or min(self.spec.context_window, 2048),
                    n_threads=self.spec.n_threads or min(4, os.cpu_count() or 1),
                    verbose=False,
                    swa_full=False,  # one sequence at a time (as the llamacpp adapter loads it)
                )
            return self._model

    def _embed(self, texts: Sequence[str]) -> list[list[float]]:
        llm = self._llm()
        return [[float(v) for v in llm.embed(t, truncate=True)] for t in texts]

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed in a worker thread (one text at a time: one sequence in the context)."""
        return await asyncio.to_thread(self._embed, texts)

    async def aclose(self) -> None:
        """Drop the loaded model."""
        with self._lock:
            self._model = None


EMBEDDERS: Mapping[str, Callable[[ModelSpec], Embedder]] = MappingProxyType(
    {"openai": ServerEmbedder, "llamacpp": LlamaCppEmbedder}
)
"""Catalog provider -> the embedder of its models."""


def embedder_for(spec: ModelSpec) -> Embedder:
    """The embedder of a catalog model.

    Raises:
        ValueError: Its provider serves no embeddings.
    """
    factory = EMBEDDERS.get(spec.provider.value)
    if factory is None:
        raise ValueError(
            f"model {spec.id!r}: provider {spec.provider.value!r} serves no embeddings "
            f"(embeddings come from: {', '.join(EMBEDDERS)})"
        )
    return factory(spec)


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
