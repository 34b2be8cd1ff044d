"""Redaction of what models receive (issue: gateway controls, 4)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh import tracing
from agentmesh.models import CatalogError, Gateway, ModelRequest, load_catalog
from agentmesh.resilience import Call, CallFailed, ResilientCaller
from agentmesh.resilience.redaction import Redaction, redact_text
from agentmesh.routing import Policy, Router, RouteRequest
from agentmesh.testing import scripted_catalog, scripted_model

from .test_tracing_support import by_name, span_fixture

PLANTED = {
    "email": "jane.doe+bank@example.co.uk",
    "card": "4111 1111 1111 1111",
    "phone": "+1 415-555-0142",
    "key": "sk-proj-9f8e7d6c5b4a39281706",
}
MESSAGE = (
    f"Mail {PLANTED['email']} or call {PLANTED['phone']}; card {PLANTED['card']}, "
    f"key {PLANTED['key']}. Order 12345 ships in 3 days."
)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    yield from span_fixture()


def mask_digits(text: str) -> str:
    """A custom redactor (named as tests.unit.test_redaction:mask_digits)."""
    return "".join("#" if c.isdigit() else c for c in text)


def _caller(**fields: Any) -> ResilientCaller:
    echo = scripted_model("echo", fields=fields, reply="heard: {prompt}")
    catalog = scripted_catalog(echo)
    return ResilientCaller(Router(catalog), Gateway(catalog))


def _call(policy: Policy | None = None) -> Call:
    return Call(RouteRequest(prompt=MESSAGE), ModelRequest.of(MESSAGE), routing=policy)


def test_the_built_in_patterns_replace_each_planted_value_by_a_placeholder() -> None:
    redaction = Redaction()
    out = redact_text(MESSAGE, redaction)
    for value in PLANTED.values():
        assert value not in out
    assert "<EMAIL_1>" in out
    assert "<CARD_1>" in out
    assert "<PHONE_1>" in out
    assert "<API_KEY_1>" in out
    assert "Order 12345 ships in 3 days." in out  # ordinary numbers are left alone
    assert redaction.restore(out) == MESSAGE


def test_a_number_that_fails_the_luhn_check_is_not_a_card() -> None:
    assert redact_text("ref 4111 1111 1111 1112", Redaction()) == "ref 4111 1111 1111 1112"


async def test_an_entry_with_redact_true_never_receives_the_planted_values(spans) -> None:
    caller = _caller(redact=True)
    with tracing.content_capture(True):
        result = await caller.call(_call())
    for value in PLANTED.values():
        assert value not in result.response.text  # the model echoed what it received
    assert "<EMAIL_1>" in result.response.text
    captured = " ".join(str(dict(s.attributes)) for s in by_name(spans, "chat echo"))
    assert "<EMAIL_1>" in captured
    for value in PLANTED.values():
        assert value not in captured  # nor does the trace's captured content


async def test_unredact_puts_the_values_back_into_the_answer() -> None:
    caller = _caller(redact=True)
    result = await caller.call(_call(Policy(unredact=True)))
    assert result.response.text == f"heard: {MESSAGE}"


async def test_a_policy_redacts_only_for_models_tagged_external() -> None:
    policy = Policy(redact=True)
    internal = await _caller().call(_call(policy))
    assert PLANTED["email"] in internal.response.text
    external = await _caller(tags=["external"]).call(_call(policy))
    assert PLANTED["email"] not in external.response.text
    opted_out = await _caller(tags=["external"], redact=False).call(_call(policy))
    assert PLANTED["email"] in opted_out.response.text  # the entry's own word wins


async def test_a_custom_redactor_is_named_by_its_import_path() -> None:
    caller = _caller(redact="tests.unit.test_redaction:mask_digits")
    result = await caller.call(_call())
    assert "4111" not in result.response.text
    assert "#### #### #### ####" in result.response.text


async def test_a_redactor_that_cannot_be_imported_fails_the_call_clearly() -> None:
    caller = _caller(redact="tests.unit.test_redaction:no_such_function")
    with pytest.raises(CallFailed, match=r"redact: tests\.unit\.test_redaction:no_such_function"):
        await caller.call(_call())


def test_a_malformed_redact_value_names_the_field(tmp_path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text("models:\n  - id: m\n    provider: scripted\n    model: m\n    redact: yes!\n")
    with pytest.raises(CatalogError, match="redact"):
        load_catalog(path)
