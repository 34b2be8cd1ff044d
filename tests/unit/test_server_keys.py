"""Virtual keys: the SQLite store's atomic limits and the server's gate (401/403/429)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from starlette.testclient import TestClient

from agentmesh.cli import main
from agentmesh.server import ServeConfig, create_app
from agentmesh.server.keys import KeySpec, SqliteKeyStore, hash_key

ROOT = Path(__file__).resolve().parents[2]
SIM = str(ROOT / "models" / "sim.yaml")
HELLO = [{"role": "user", "content": "hi"}]


def _on_disk(folder: Path) -> bytes:
    """Every byte of the key store: the database file and its write-ahead log."""
    return b"".join(p.read_bytes() for p in folder.glob("keys.db*"))


async def test_keys_are_stored_hashed_and_found_by_the_key(tmp_path: Path) -> None:
    store = SqliteKeyStore(tmp_path / "keys.db")
    key, record = await store.create(KeySpec("team", 1.0, ("sim-*",), 10))
    found = await store.lookup(key)
    assert found is not None
    assert found.id == record.id
    assert found.spec == KeySpec("team", 1.0, ("sim-*",), 10)
    assert await store.lookup(key + "x") is None
    raw = _on_disk(tmp_path)
    assert key.split(".", 1)[1].encode() not in raw  # the secret is not on disk
    assert hash_key(key).encode() in raw
    assert await store.revoke(record.id)
    assert not await store.revoke(record.id)
    revoked = await store.lookup(key)
    assert revoked is not None
    assert revoked.usable(store.now()) == "the key was revoked"
    await store.aclose()


async def test_budget_holds_under_concurrency_from_two_stores_on_one_file(tmp_path: Path) -> None:
    first = SqliteKeyStore(tmp_path / "keys.db")
    second = SqliteKeyStore(tmp_path / "keys.db")  # another process's connection
    _, record = await first.create(KeySpec(budget_usd=1.0))

    async def spend(store: SqliteKeyStore) -> bool:
        hold, _ = await store.reserve(record.id, 0.3)
        if hold is None:
            return False
        await store.settle(record.id, hold, 0.25)
        return True

    granted = await asyncio.gather(*(spend(s) for s in [first, second] * 10))
    final = await first.get(record.id)
    assert final is not None
    assert final.spent_usd == pytest.approx(0.25 * sum(granted))
    assert final.spent_usd <= 1.0  # never more than the budget
    assert sum(granted) >= 3  # at least the holds that fit side by side were granted
    assert final.held_usd == 0
    await first.aclose()
    await second.aclose()


async def test_rpm_is_a_fixed_minute_window(tmp_path: Path) -> None:
    now = [600.0]
    store = SqliteKeyStore(tmp_path / "keys.db", clock=lambda: now[0])
    _, record = await store.create(KeySpec(rpm=2))
    assert await store.admit(record.id, 2) is None
    assert await store.admit(record.id, 2) is None
    now[0] = 630.0
    assert await store.admit(record.id, 2) == pytest.approx(30.0)
    now[0] = 660.0
    assert await store.admit(record.id, 2) is None
    await store.aclose()


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[tuple[TestClient, str]]:
    url = f"sqlite:{tmp_path / 'keys.db'}"
    with TestClient(create_app(ServeConfig(models=SIM, keys=url))) as client:
        yield client, url


def _create(url: str, *options: str, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert main(["keys", "create", "--keys", url, "--json", *options]) == 0
    created: dict[str, object] = json.loads(capsys.readouterr().out)
    return created


def _sdk(client: TestClient, key: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url="http://testserver/v1", api_key=key, http_client=client, max_retries=0
    )


def test_missing_and_invalid_keys_are_401(keyed: tuple[TestClient, str]) -> None:
    client, _ = keyed
    missing = client.post("/v1/chat/completions", json={"model": "auto", "messages": HELLO})
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "missing_api_key"
    with pytest.raises(openai.AuthenticationError):
        _sdk(client, "am-nope.nope").models.list()
    assert client.get("/health").status_code == 200  # probes need no key


def test_a_key_is_limited_to_its_models_and_its_budget(
    keyed: tuple[TestClient, str], capsys: pytest.CaptureFixture[str]
) -> None:
    client, url = keyed
    made = _create(url, "--models", "sim-nano,auto", "--budget", "0.0001", capsys=capsys)
    sdk = _sdk(client, str(made["key"]))
    with pytest.raises(openai.PermissionDeniedError) as denied:
        sdk.chat.completions.create(model="sim-opus", messages=HELLO)
    assert denied.value.code == "model_not_allowed"
    spent, refused = 0.0, None
    for _ in range(400):
        try:
            raw = sdk.chat.completions.with_raw_response.create(
                model="auto", messages=HELLO, max_tokens=64
            )
        except openai.RateLimitError as exc:
            refused = exc
            break
        spent += float(raw.headers["x-agentmesh-cost-usd"])
    assert refused is not None
    assert refused.code == "budget_exceeded"
    assert 0 < spent <= 0.0001
    assert main(["keys", "list", "--keys", url, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["spent_usd"] == pytest.approx(spent)
    assert listed[0]["held_usd"] == 0
    metrics = client.get("/metrics").text
    assert (
        f'agentmesh_server_requests_total{{endpoint="/v1/chat/completions",key="{made["id"]}"'
        in (metrics)
    )


def test_rpm_refusal_says_when_to_retry(
    keyed: tuple[TestClient, str], capsys: pytest.CaptureFixture[str]
) -> None:
    client, url = keyed
    made = _create(url, "--rpm", "1", capsys=capsys)
    headers = {"authorization": f"Bearer {made['key']}"}
    body = {"model": "auto", "messages": HELLO}
    assert client.post("/v1/chat/completions", json=body, headers=headers).status_code == 200
    second = client.post("/v1/chat/completions", json=body, headers=headers)
    assert second.status_code == 429
    assert 1 <= int(second.headers["retry-after"]) <= 60


def test_revoked_and_expired_keys_are_refused(
    keyed: tuple[TestClient, str], capsys: pytest.CaptureFixture[str]
) -> None:
    client, url = keyed
    made = _create(url, capsys=capsys)
    assert main(["keys", "revoke", "--keys", url, str(made["id"])]) == 0
    gone = _create(url, "--expires", "2001-01-01", capsys=capsys)
    for key in (made["key"], gone["key"]):
        response = client.get("/v1/models", headers={"authorization": f"Bearer {key}"})
        assert response.status_code == 401


def test_serve_refuses_a_public_bind_without_keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--models", SIM, "--host", "0.0.0.0"]) == 2
    assert "refusing to bind 0.0.0.0" in capsys.readouterr().err
    assert main(["serve", "--models", SIM, "--workers", "2"]) == 2
    assert "needs a shared --state" in capsys.readouterr().err
    assert main(["serve", "--models", str(ROOT / "README.md")]) == 2
    assert "Traceback" not in capsys.readouterr().err
