from __future__ import annotations

import email.utils

import httpx
import pytest

from agentmesh.models._http import parse_retry_after, sse_events
from agentmesh.models.errors import ModelError, redact
from agentmesh.models.tokens import estimate_tokens


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "12"}, 12.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_seconds(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers) == expected


def test_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    header = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after({"retry-after": header}, now=now) == pytest.approx(30.0)


async def test_sse_parser_follows_the_format() -> None:
    body = (
        b": comment line\n"
        b'event: message_start\ndata: {"a": 1}\n\n'
        b"data: line one\ndata: line two\n\n"
        b"data:no-space\n\n"
        b"data: last without blank line"
    )
    response = httpx.Response(200, content=body)
    events = [e async for e in sse_events(response)]
    assert events == [
        ("message_start", '{"a": 1}'),
        ("message", "line one\nline two"),
        ("message", "no-space"),
        ("message", "last without blank line"),
    ]


def test_redact_hides_secrets_but_not_short_strings() -> None:
    assert redact("key sk-abcdef123 leaked", ["sk-abcdef123"]) == "key *** leaked"
    assert redact("a b c", ["a", None, ""]) == "a b c"


def test_model_error_str_names_model_and_status() -> None:
    error = ModelError("boom", model_id="m", status_code=500)
    assert str(error) == "m: boom (HTTP 500)"
    assert repr(error) == "ModelError('m: boom (HTTP 500)')"


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("", 0, 0),
        ("hello world", 2, 2),
        ("The quick brown fox jumps over the lazy dog.", 9, 11),
        ("1234567", 7, 7),
        ("print('hi')", 5, 7),
        ("Routing saves money when the cheap model is good enough for the step.", 13, 17),
    ],
)
def test_token_estimate_is_plausible(text: str, low: int, high: int) -> None:
    assert low <= estimate_tokens(text) <= high


def test_token_estimate_counts_at_least_one_token_per_word() -> None:
    assert estimate_tokens("pneumonoultramicroscopicsilicovolcanoconiosis") >= 1
    assert estimate_tokens("a " * 100) >= 100


def test_each_event_loop_gets_its_own_client_closed_with_the_loop() -> None:
    import asyncio

    from agentmesh.models._http import LoopClients

    made: list[httpx.AsyncClient] = []

    def factory() -> httpx.AsyncClient:
        made.append(httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(200))))
        return made[-1]

    pool = LoopClients(factory)

    async def use() -> httpx.AsyncClient:
        first = await pool.get()
        assert await pool.get() is first, "one client per loop"
        assert (await first.get("http://model.test/")).status_code == 200
        return first

    one = asyncio.run(use())
    assert one.is_closed, "closed when its loop shut down"
    two = asyncio.run(use())
    assert two is not one
    assert two.is_closed
    assert len(pool) == 0

    loop = asyncio.new_event_loop()  # closed without shutting its generators down
    three = loop.run_until_complete(use())
    loop.close()
    assert not three.is_closed

    async def last() -> None:
        await use()  # drops the closed loop's client without touching that loop
        assert len(pool) == 1
        await pool.aclose()
        assert len(pool) == 0

    asyncio.run(last())
    assert len(made) == 4


def test_closing_a_sync_loop_closes_the_http_client_made_on_it() -> None:
    from agentmesh.integrations.sync_loop import SyncLoop
    from agentmesh.models._http import LoopClients

    pool = LoopClients(
        lambda: httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(200)))
    )
    loop = SyncLoop()
    client = loop.run(pool.get())
    assert not client.is_closed
    loop.close()
    assert client.is_closed, "closed with its loop, as after asyncio.run"
    assert len(pool) == 0


@pytest.mark.parametrize(
    ("text", "at_least"),
    [
        ("人工智能是计算机科学的一个分支" * 3, 45),  # >= 1 token per CJK character
        ("吾輩は猫である。名前はまだ無い。", 16),
        ("대한민국은 동아시아의 한반도", 13),
        ("😀😃😄😁😆😅😂🤣" * 15, 240),  # >= 2 tokens per emoji
        ("Москва — столица России", 10),
        ("The 東京 office 🏢 reported 収益 growth", 12),
    ],
)
def test_estimates_never_undercount_non_latin_text(text: str, at_least: int) -> None:
    assert estimate_tokens(text) >= at_least
