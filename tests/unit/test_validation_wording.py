"""One wording for pydantic errors (agentmesh._validation)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from agentmesh._validation import describe_error, describe_errors


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    inner: Inner

    @model_validator(mode="after")
    def _named(self) -> Outer:
        if self.name == "bad":
            raise ValueError("name and size disagree")
        return self


def errors_of(data: object) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        Outer.model_validate(data)
    return caught.value


def test_missing_and_unknown_fields_have_plain_words() -> None:
    exc = errors_of({"inner": {"size": 1, "colour": "blue"}})
    assert describe_errors(exc) == (
        "name: required field is missing; inner.colour: unknown field (got 'blue')"
    )


def test_a_scalar_value_is_shown_a_mapping_is_not() -> None:
    assert describe_errors(errors_of({"name": "x", "inner": {"size": "big"}})) == (
        "inner.size: Input should be a valid integer, unable to parse string as an "
        "integer (got 'big')"
    )
    assert describe_errors(errors_of({"name": "x", "inner": [1]})).startswith("inner: ")
    assert "(got" not in describe_errors(errors_of({"name": "x", "inner": [1]}))


def test_whole_object_errors_prefix_and_path_override() -> None:
    exc = errors_of({"name": "bad", "inner": {"size": 1}})
    assert describe_errors(exc) == "name and size disagree"
    # under a prefix it is that field's problem; the input (a mapping) is not shown
    assert describe_errors(exc, prefix="params") == "params: name and size disagree"
    error = errors_of({"name": 1, "inner": {"size": 1}}).errors()[0]
    assert describe_error(error, ("nodes", "a", "name")) == (
        "nodes.a.name: Input should be a valid string (got 1)"
    )
    assert describe_error(error, prefix="spec") == (
        "spec.name: Input should be a valid string (got 1)"
    )
