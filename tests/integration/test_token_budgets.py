# ruff: noqa: RUF001, E501  # CJK test text: full-width punctuation, wide characters
"""Budgets hold on CJK and emoji prompts billed by a real tokenizer (the bundled Gemma's).

The router reserves a call's worst case from the token estimate and settles on
the provider's reported usage. An estimate that undercounts non-Latin text (it
once counted 1 token for 40 CJK characters) lets the last calls overspend the
budget; the estimate now never undercounts, so the overshoot stays within 5%.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentmesh.models import (
    Catalog,
    Gateway,
    ModelClient,
    ModelRequest,
    ModelResponse,
    ModelSpec,
    Provider,
    Usage,
    estimate_tokens,
)
from agentmesh.models.client import Stopwatch
from agentmesh.models.types import message_text
from agentmesh.resilience import Call, CallFailed, ResilientCaller
from agentmesh.routing import Policy, Router, RouteRequest, RoutingError
from agentmesh.testing import scripted_model

LOCAL = Path(__file__).resolve().parents[2] / "models" / "local.yaml"
CHAT_TEMPLATE_TOKENS = 8  # what Gemma's chat template adds around one user turn

PROMPTS = {
    "chinese": "人工智能是计算机科学的一个分支，它企图了解智能的实质，并生产出一种新的能以人类智能"
    "相似的方式做出反应的智能机器。该领域的研究包括机器人、语言识别、图像识别、自然语言处理和专家系统等。"
    * 3,
    "japanese": "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。何でも薄暗いじめじめ"
    "した所でニャーニャー泣いていた事だけは記憶している。" * 4,
    "emoji": "😀😃😄😁😆😅😂🤣🥲☺️😊😇🙂🙃😉😌😍🥰😘😗😙😚😋😛😝😜🤪🤨🧐🤓😎🥸🤩🥳👨‍👩‍👧‍👦🏳️‍🌈👍🏽"
    * 4,
    "mixed": "The 東京 office 🏢 reported 収益 growth of 12% — great news! 🎉🎉 " * 10,
}


class TokenizerBilled(ModelClient):
    """Answers one token and bills the prompt as the GGUF's tokenizer counts it."""

    def __init__(self, spec: ModelSpec, llm: Any) -> None:
        super().__init__(spec)
        self.llm = llm

    async def invoke(self, request: ModelRequest) -> ModelResponse:
        watch = Stopwatch()
        text = "".join(message_text(m) for m in request.messages)
        tokens = len(self.llm.tokenize(text.encode(), add_bos=True, special=False))
        usage = Usage(tokens + CHAT_TEMPLATE_TOKENS, 1)
        return self.respond(text="ok", usage=usage, finish_reason="stop", watch=watch)


@pytest.fixture(scope="module")
def gemma(gguf_path: Path) -> Any:
    from llama_cpp import Llama

    return Llama(model_path=str(gguf_path), vocab_only=True, verbose=False)


@pytest.mark.parametrize("language", sorted(PROMPTS))
async def test_budget_overshoot_on_non_latin_prompts_is_at_most_5_percent(
    gemma: Any, language: str
) -> None:
    prompt = PROMPTS[language]
    real = len(gemma.tokenize(prompt.encode(), add_bos=True)) + CHAT_TEMPLATE_TOKENS
    assert estimate_tokens(prompt) >= real, "the estimate does not undercount"
    spec = scripted_model("m", fields={"pricing": {"input": 100.0, "output": 100.0}})
    catalog = Catalog([spec])
    per_call = spec.cost(real, 1)
    budget = 3.5 * per_call  # three calls fit; a fourth would overspend by 14%
    async with Gateway(
        catalog, factories={Provider.SCRIPTED: lambda s, _: TokenizerBilled(s, gemma)}
    ) as gateway:
        caller = ResilientCaller(Router(catalog), gateway)
        spent, calls = 0.0, 0
        for _ in range(100):
            route = RouteRequest(
                node="n", prompt=prompt, max_output_tokens=1, run_id="r", run_budget_usd=budget
            )
            try:
                result = await caller.call(
                    Call(route, ModelRequest.of(prompt, max_tokens=1), Policy(strategy="cheapest"))
                )
            except (CallFailed, RoutingError):
                break
            spent += result.cost_usd
            calls += 1
    overshoot = (spent - budget) / budget
    assert calls >= 1, "the budget allows calls"
    assert overshoot <= 0.05, f"{language}: spent {spent:.6f} of {budget:.6f} in {calls} calls"


async def test_a_llamacpp_model_s_reservation_counts_with_its_own_tokenizer(
    gguf_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The router reserves what the GGUF's tokenizer counts, not the inflated estimate.

    The conservative estimate (never undercounting non-Latin text) is up to 3x
    Gemma's count on CJK; with the model's own tokenizer at hand the node's
    route request carries the exact count, which is what the call then bills.
    """
    from agentmesh.graph import Runtime, Workflow, run_graph
    from agentmesh.models import load_catalog
    from agentmesh.prompts import PromptLibrary
    from agentmesh.routing import RouteDecision

    seen: list[RouteRequest] = []

    class Recording(Router):
        async def route(self, request: RouteRequest, policy: Any = None) -> RouteDecision:
            seen.append(request)
            return await super().route(request, policy)

    catalog = load_catalog(LOCAL)
    gateway = Gateway(catalog)
    assert gateway.token_counting_models() == ("gemma",)
    wf = Workflow("cjk", policy=Policy(strategy="cheapest"))
    wf.executor("say", prompt="execute_step", inputs={"question": "$input", "step": "answer"},
                max_output_tokens=2)  # fmt: skip
    runtime = Runtime(ResilientCaller(Recording(catalog), gateway), PromptLibrary())
    try:
        result = await run_graph(wf.spec(), runtime, PROMPTS["chinese"])
    finally:
        await gateway.aclose()
    assert result.status == "ok", result.error
    (request,) = seen
    exact = request.prompt_tokens_by_model["gemma"]
    billed = result.steps[0]["attempts"][-1]["input_tokens"]
    assert exact == billed, "the reservation's prompt is what the call bills"
    assert request.prompt_tokens is not None
    assert request.prompt_tokens > 1.5 * exact, "the estimate alone would over-reserve"
    assert "llama_context" not in capfd.readouterr().err, "the vocabulary loads quietly"
