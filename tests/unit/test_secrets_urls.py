"""Credentials in a ``base_url`` (``user:pass@``) or an ``Authorization: Basic`` header never show.

Planted values are grepped across every output a run produces: stdout and
stderr of ``run --json``, the trace file and ``trace show``, the SQLite
checkpoint, ``models list --json``, error messages and ``repr`` of specs and
clients.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

from agentmesh._redact import credential_values, redact_url, scrub_credentials
from agentmesh.cli import main
from agentmesh.models import Gateway, ModelError, ModelRequest, load_catalog
from agentmesh.models import _http as http_module

ROOT = Path(__file__).resolve().parents[2]

URL_USER, URL_PASS = "planted-url-user", "planted-url-Passw0rd"
ENV_USER, ENV_PASS = "planted-env-user", "planted-env-Passw0rd"
BASIC_USER, BASIC_PASS = "planted-basic-user", "planted-basic-Passw0rd"
BASIC = base64.b64encode(f"{BASIC_USER}:{BASIC_PASS}".encode()).decode()
PLANTED = [URL_USER, URL_PASS, ENV_USER, ENV_PASS, BASIC_USER, BASIC_PASS, BASIC]


def catalog(tmp_path: Path) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(
        "models:\n"
        "  - id: cheap\n"
        "    provider: openai\n"
        "    model: m1\n"
        f"    base_url: http://{URL_USER}:{URL_PASS}@refused.example.test/v1\n"
        f"    headers: {{Authorization: 'Basic {BASIC}'}}\n"
        "    tier: 1\n"
        "    capabilities: [json]\n"
        "  - id: strong\n"
        "    provider: openai\n"
        "    model: m2\n"
        "    base_url: ${PLANTED_URL}\n"
        f"    headers: {{Authorization: 'Basic {BASIC}'}}\n"
        "    tier: 2\n"
        "    capabilities: [json]\n"
    )
    return path


def echo(request: httpx.Request) -> httpx.Response:
    """A refused connection for one host; an error echoing URL and headers for the other."""
    told = f"url={request.url} headers={dict(request.headers)}"
    if request.url.host == "refused.example.test":
        raise httpx.ConnectError(f"cannot connect: {told}", request=request)
    return httpx.Response(500, json={"error": {"message": f"upstream failed: {told}"}})


@pytest.fixture
def echoing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANTED_URL", f"http://{ENV_USER}:{ENV_PASS}@echo.example.test/v1")
    monkeypatch.setattr(
        http_module,  # what each event loop's pooled client is built by
        "default_http_client",
        lambda: httpx.AsyncClient(transport=httpx.MockTransport(echo)),
    )


def assert_clean(where: str, text: str) -> None:
    for value in PLANTED:
        assert value not in text, f"{value!r} appears in {where}"


def test_a_failed_run_shows_no_credential_anywhere(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    echoing: None,
) -> None:
    monkeypatch.chdir(ROOT)
    models, trace, db = catalog(tmp_path), tmp_path / "trace.jsonl", tmp_path / "runs.db"
    argv = ["run", "graphs/support_triage.yaml", "--models", str(models), "--input", "ticket"]
    code = main([*argv, "--json", "--trace", str(trace), "--checkpoint", f"sqlite:{db}"])
    out, err = capsys.readouterr()
    assert code == 1, err
    result = json.loads(out)
    assert result["status"] == "failed"
    assert "***@" in result["error"]["message"], "the URL is shown, its userinfo masked"
    outputs = {"run stdout": out, "run stderr": err, "trace file": trace.read_text()}
    assert main(["trace", "show", str(trace)]) == 0
    outputs["trace show"] = capsys.readouterr().out
    outputs["checkpoint"] = db.read_bytes().decode("utf-8", "replace")
    assert main(["models", "list", "--models", str(models), "--json"]) == 0
    outputs["models list --json"] = capsys.readouterr().out
    assert "upstream failed" in outputs["trace file"], "the errors were recorded"
    assert "refused.example.test" in outputs["models list --json"]
    for where, text in outputs.items():
        assert_clean(where, text)


async def test_errors_and_reprs_mask_credentials(tmp_path: Path, echoing: None) -> None:
    cat = load_catalog(catalog(tmp_path))
    assert_clean("repr(spec)", repr(cat["cheap"]) + repr(cat["strong"]) + str(cat["cheap"]))
    async with Gateway(cat) as gateway:
        for model in ("cheap", "strong"):
            with pytest.raises(ModelError) as caught:
                await gateway.invoke(model, ModelRequest.of("hi"))
            assert_clean(f"{model}'s error", f"{caught.value} {caught.value!r}")
            assert_clean(f"{model}'s client", repr(gateway.client(model)))


def test_the_redaction_helpers() -> None:
    assert redact_url("https://u:p@h.test:8/v1?q=1") == "https://***@h.test:8/v1?q=1"
    assert redact_url("https://h.test/v1") == "https://h.test/v1"
    assert scrub_credentials("see postgres://me:hunter22@db/x") == "see postgres://***@db/x"
    assert scrub_credentials(f"Authorization: Basic {BASIC}") == "Authorization: Basic ***"
    assert scrub_credentials("Basic ideas, Bearer of news") == "Basic ideas, Bearer of news"
    values = credential_values(
        ["http://a-user:a-secret-pw@h/"], {"Authorization": f"Basic {BASIC}"}
    )
    assert {BASIC, BASIC_PASS, BASIC_USER, "a-secret-pw"} <= set(values)
