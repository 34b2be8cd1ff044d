"""Errors in OpenAI's JSON shape, each with its HTTP status.

Every failure a client can cause or meet becomes an :class:`ApiError`
(``{"error": {"message", "type", "code", "param"}}``); a failed call's status
comes from one table over the error kinds of the call path
(:data:`CALL_STATUSES`), never from string comparisons spread over handlers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from agentmesh.models.errors import ModelError, RateLimited
from agentmesh.resilience.call import Attempt, CallFailed

__all__ = ["CALL_STATUSES", "ApiError", "call_error", "model_error"]


class ApiError(Exception):
    """One error response (raise it from a handler; the app answers with it).

    Attributes:
        status: The HTTP status.
        message: What went wrong, for a person (never a stack trace, never a secret).
        type: OpenAI's ``error.type`` (``invalid_request_error``, ...).
        code: A stable machine-readable code.
        param: The request field at fault, if one is.
        retry_after: Seconds for a ``Retry-After`` header, when known.
        attempts: The attempts of a failed call (listed in the body).
        cost_usd: What the failed attempts were billed (charged to the key).
    """

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        *,
        retry_after: float | None = None,
        attempts: Sequence[Mapping[str, Any]] = (),
        cost_usd: float = 0.0,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.retry_after = retry_after
        self.attempts = tuple(attempts)
        self.cost_usd = cost_usd

    def body(self) -> dict[str, Any]:
        """The JSON body."""
        error: dict[str, Any] = {
            "message": self.message,
            "type": self.type,
            "code": self.code,
            "param": self.param,
        }
        if self.attempts:
            error["attempts"] = list(self.attempts)
        return {"error": error}

    def headers(self) -> dict[str, str]:
        """``Retry-After`` when known (whole seconds, rounded up)."""
        if self.retry_after is None:
            return {}
        return {"retry-after": str(max(1, int(-(-self.retry_after // 1))))}


@dataclass(frozen=True, slots=True)
class _Status:
    status: int
    type: str


CALL_STATUSES: Mapping[str, _Status] = MappingProxyType(
    {
        "bad_request": _Status(400, "invalid_request_error"),
        "content_filtered": _Status(400, "content_filter"),
        "context_overflow": _Status(413, "invalid_request_error"),
        "rate_limited": _Status(429, "rate_limit_error"),
        "budget_exceeded": _Status(429, "insufficient_quota"),
        "no_route": _Status(503, "service_unavailable"),
        "unavailable": _Status(502, "upstream_error"),
        "malformed_response": _Status(502, "upstream_error"),
        "auth_error": _Status(502, "upstream_error"),
        "timeout": _Status(504, "timeout"),
    }
)
"""HTTP status and ``error.type`` of a failed call, by :attr:`CallFailed.kind`.

Upstream authentication failures are 502: the client's own key was accepted,
the catalog's credentials were not (a server configuration problem).
"""
_UPSTREAM = _Status(502, "upstream_error")
_CODES: Mapping[str, str] = MappingProxyType(
    {"context_overflow": "context_length_exceeded", "content_filtered": "content_filter"}
)


def _attempt(attempt: Attempt) -> dict[str, Any]:
    shown = attempt.to_dict()
    return {k: shown[k] for k in ("model", "outcome", "error_type", "message", "reason")}


def call_error(failure: CallFailed) -> ApiError:
    """The response of a call no model served (its attempts listed, Retry-After when known)."""
    kind = failure.kind
    found = CALL_STATUSES.get(kind, _UPSTREAM)
    retry_after = failure.error.retry_after if isinstance(failure.error, RateLimited) else None
    attempts = [_attempt(a) for a in failure.attempts]
    if kind == "no_route" and attempts:  # models were tried and failed: an upstream failure
        found = _UPSTREAM
    return ApiError(
        found.status,
        str(failure),
        found.type,
        _CODES.get(kind, kind),
        retry_after=retry_after,
        attempts=attempts,
        cost_usd=failure.spend.cost_usd,
    )


def model_error(error: ModelError) -> ApiError:
    """The response of one direct model call that failed (an embeddings call)."""
    found = CALL_STATUSES.get(error.kind, _UPSTREAM)
    return ApiError(
        found.status,
        str(error),
        found.type,
        _CODES.get(error.kind, error.kind),
        retry_after=error.retry_after if isinstance(error, RateLimited) else None,
    )
