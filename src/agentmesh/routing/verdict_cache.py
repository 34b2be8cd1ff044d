"""`CachedClassifier`: cached routing verdicts, so identical requests skip the classifier.

An identical request (the same prompt text) within ``ttl_s`` reuses the
previous verdict instead of classifying again — the expensive part of a
decision when the classifier is a model (``LLMClassifier``) or embeddings.
Concurrent identical requests share one classification (single flight).

What is *not* reused is the rest of the decision: breakers, budgets, local
rate limits and observed latencies change from one call to the next, so the
router filters and ranks every request afresh (in microseconds) over the
cached verdict. Keys are a SHA-256 of the text; nothing else is kept.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace

from agentmesh.routing.classify import Classification, Classifier

__all__ = ["CachedClassifier"]


class CachedClassifier:
    """Wraps a classifier, reusing its verdict on identical text for ``ttl_s`` seconds.

    Args:
        inner: The classifier whose verdicts are cached.
        ttl_s: How long a verdict is reused.
        max_entries: Most verdicts kept (least recently used go first).
        clock: Monotonic seconds (tests inject one).

    Attributes:
        hits: Verdicts served from the cache.
        misses: Verdicts the inner classifier made.
    """

    def __init__(
        self,
        inner: Classifier,
        *,
        ttl_s: float = 300.0,
        max_entries: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s <= 0 or max_entries < 1:
            raise ValueError("CachedClassifier needs ttl_s > 0 and max_entries >= 1")
        self.inner = inner
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._verdicts: OrderedDict[str, tuple[float, Classification]] = OrderedDict()
        self._flying: dict[str, asyncio.Future[Classification]] = {}
        self.hits = 0
        self.misses = 0

    async def classify(self, text: str) -> Classification:
        """The verdict on ``text``: cached (``evidence`` says so) or the inner classifier's."""
        key = hashlib.sha256(text.encode()).hexdigest()
        found = self._verdicts.get(key)
        if found is not None and self._clock() < found[0]:
            self._verdicts.move_to_end(key)
            self.hits += 1
            return replace(found[1], evidence=f"{found[1].evidence}; cached verdict")
        flying = self._flying.get(key)
        if flying is not None:
            self.hits += 1
            return await asyncio.shield(flying)
        future: asyncio.Future[Classification] = asyncio.get_running_loop().create_future()
        self._flying[key] = future
        try:
            verdict = await self.inner.classify(text)
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # marked retrieved: the waiters get it, no warning
            raise
        except BaseException:
            future.cancel()  # cancelled: waiters are cancelled too, and try again
            raise
        finally:
            self._flying.pop(key, None)
        self.misses += 1
        future.set_result(verdict)
        self._verdicts[key] = (self._clock() + self.ttl_s, verdict)
        self._verdicts.move_to_end(key)
        while len(self._verdicts) > self.max_entries:
            self._verdicts.popitem(last=False)
        return verdict
