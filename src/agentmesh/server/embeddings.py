"""OpenAI's embeddings wire format: ``POST /v1/embeddings`` parsed, answered.

``input`` is a string or a list of strings (token-id arrays are refused with
400: the catalog's models take text); ``encoding_format`` ``float`` (lists of
numbers) or ``base64`` (little-endian float32 bytes, what OpenAI's SDKs ask
for by default and decode themselves); ``dimensions`` is refused unless it is
the model's own length (nothing here truncates vectors).
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentmesh.models.types import Embeddings
from agentmesh.server.errors import ApiError
from agentmesh.server.wire import parse_request

__all__ = ["EmbeddingsRequest", "embeddings_body", "parse_embeddings_request"]

MAX_INPUTS = 2048
"""Most texts in one request (OpenAI's limit)."""


class EmbeddingsRequest(BaseModel):
    """The fields of ``POST /v1/embeddings`` that agentmesh reads (strict, as chat's)."""

    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    model: Annotated[str, Field(min_length=1, max_length=256)]
    input: str | Annotated[list[str], Field(min_length=1, max_length=MAX_INPUTS)]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int | None, Field(ge=1)] = None
    user: Annotated[str | None, Field(max_length=256)] = None

    @property
    def texts(self) -> list[str]:
        """The inputs as a list."""
        return [self.input] if isinstance(self.input, str) else list(self.input)


def parse_embeddings_request(body: bytes) -> tuple[EmbeddingsRequest, tuple[str, ...]]:
    """The request and its ignored top-level fields.

    Raises:
        ApiError: 400 for invalid JSON or fields (token-id arrays name ``input``).
    """
    request, ignored = parse_request(EmbeddingsRequest, body)
    if any(not text for text in request.texts):
        raise ApiError(400, "input: an empty string has no embedding", param="input")
    return request, ignored


def _encoded(vector: tuple[float, ...], encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return list(vector)


def embeddings_body(
    request: EmbeddingsRequest, found: Embeddings, extra: Mapping[str, Any]
) -> dict[str, Any]:
    """OpenAI's ``list`` of ``embedding`` objects, with ``usage`` and agentmesh's extras.

    Raises:
        ApiError: 400 when ``dimensions`` asks for another length than the model's.
    """
    if request.dimensions is not None and request.dimensions != found.dimensions:
        raise ApiError(
            400,
            f"dimensions: the model {found.model_id!r} makes vectors of {found.dimensions} "
            f"numbers (got {request.dimensions})",
            code="invalid_value",
            param="dimensions",
        )
    data = [
        {"object": "embedding", "index": i, "embedding": _encoded(v, request.encoding_format)}
        for i, v in enumerate(found.vectors)
    ]
    tokens = found.usage.input_tokens
    return {
        "object": "list",
        "data": data,
        "model": found.model_id,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        "agentmesh": dict(extra),
    }
