"""The in-process llama.cpp adapter never runs two generations at once, even when cancelled.

llama.cpp cannot be interrupted from another thread, and a context used by two
threads at once aborts the process. A fake ``llama_cpp`` module stands in for
the real one (the real model is exercised in tests/integration).
"""

from __future__ import annotations

import asyncio
import threading
from contextlib import aclosing
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from agentmesh.models import LlamaCppClient, ModelRequest, ModelSpec
from agentmesh.models import llamacpp as module


class FakeLlama:
    """Generates until its stopping criteria say stop (or ``release`` is set)."""

    def __init__(self, **_: Any) -> None:
        self.active = 0
        self.most_active = 0
        self.started = threading.Event()
        self.release = threading.Event()
        self.ended_by: list[str] = []  # per generation: criteria, closed or release
        self.lock = threading.Lock()

    def tokenize(self, data: bytes, add_bos: bool = True) -> list[int]:
        return list(range(len(data.split())))

    def _tokens(self, criteria: list[Any]) -> Any:
        """One item per generated "token" until stopped or released."""
        with self.lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        self.started.set()
        ended = "closed"  # the consumer stopped pulling tokens (a stream told to stop)
        try:
            while True:  # a stop request is seen before a release
                if any(c(None, None) for c in criteria):
                    ended = "criteria"
                    return
                if self.release.is_set():
                    ended = "release"
                    return
                yield {"choices": [{"text": " tok", "finish_reason": None}]}
                self.release.wait(0.001)
        finally:
            with self.lock:
                self.active -= 1
            self.ended_by.append(ended)

    def create_completion(self, prompt: str, stream: bool = False, **kwargs: Any) -> Any:
        tokens = self._tokens(kwargs.get("stopping_criteria") or [])
        if stream:
            return tokens
        for _ in tokens:
            pass
        usage = {"prompt_tokens": 3, "completion_tokens": 1}
        return {"choices": [{"text": " done", "finish_reason": "stop"}], "usage": usage}

    def close(self) -> None:
        pass


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[LlamaCppClient, FakeLlama]:
    llama = FakeLlama()
    fake_module = SimpleNamespace(
        Llama=lambda **kwargs: llama,
        StoppingCriteriaList=list,
        LlamaGrammar=None,
        llama_grammar=None,
    )
    monkeypatch.setattr(module, "_import_llama_cpp", lambda: fake_module)
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    spec = ModelSpec(
        id="local",
        provider="llamacpp",
        model="m",
        model_path=str(gguf),
        prompt_style="completion",
        context_window=4096,
        max_output_tokens=64,
    )
    return LlamaCppClient(spec), llama


async def test_a_cancelled_generation_stops_and_keeps_the_model_until_it_has(
    fake: tuple[LlamaCppClient, FakeLlama],
) -> None:
    client, llama = fake
    first = asyncio.create_task(client.invoke(ModelRequest.of("write a long story")))
    await asyncio.to_thread(llama.started.wait, 5)
    first.cancel()  # what a deadline does
    with pytest.raises(asyncio.CancelledError):
        await first
    llama.release.set()  # later calls finish at once
    second = await client.invoke(ModelRequest.of("what is 2 + 2?"))
    assert second.text == "done"
    assert llama.most_active == 1, "the second generation ran beside the cancelled one"
    assert llama.ended_by[0] == "criteria", "the cancelled generation was not told to stop"


async def test_an_abandoned_stream_stops_its_generation_before_the_next_call(
    fake: tuple[LlamaCppClient, FakeLlama],
) -> None:
    client, llama = fake

    async def consume() -> None:  # closes the stream when cancelled, as the gateway does
        async with aclosing(client.stream(ModelRequest.of("write a long story"))) as events:
            async for _ in events:
                await asyncio.Event().wait()  # a consumer that stalls after the first token

    first = asyncio.create_task(consume())
    await asyncio.to_thread(llama.started.wait, 5)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    llama.release.set()
    second = await client.invoke(ModelRequest.of("what is 2 + 2?"))
    assert second.text == "done"
    assert llama.most_active == 1
    assert llama.ended_by[0] in ("criteria", "closed"), "the abandoned stream ran on"


async def test_calls_queue_one_after_another(fake: tuple[LlamaCppClient, FakeLlama]) -> None:
    client, llama = fake
    llama.release.set()
    answers = await asyncio.gather(*(client.invoke(ModelRequest.of(f"q{i}")) for i in range(4)))
    assert [a.text for a in answers] == ["done"] * 4
    assert llama.most_active == 1
