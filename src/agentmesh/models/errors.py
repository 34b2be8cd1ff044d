"""One error taxonomy for every provider.

Adapters translate whatever their provider raises (HTTP statuses, timeouts,
refused connections, unparseable bodies, SDK exceptions) into exactly one of the
classes below, so the layers above (resilience, routing) decide what to do from
the class alone: ``retryable`` says whether the same model may be tried again,
``fallback`` whether another model may be tried instead.

Messages never contain API keys: adapters pass every message through
:func:`redact` with the secrets they hold before raising.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from agentmesh._redact import scrub_credentials

__all__ = [
    "AuthError",
    "BadRequest",
    "ContentFiltered",
    "ContextOverflow",
    "MalformedResponse",
    "ModelError",
    "RateLimited",
    "Timeout",
    "Unavailable",
    "redact",
]


class ModelError(Exception):
    """Base of every classified model-call failure.

    Attributes:
        kind: Stable snake_case name of the error class; used as ``error.type``
            in traces and in the CLI's JSON output.
        retryable: The same model may succeed if called again.
        fallback: Another model may serve the request instead.
        model_id: Catalog id of the model that failed, when known.
        provider: Provider name of that model, when known.
        status_code: HTTP status that caused the error, when there was one.
    """

    kind: ClassVar[str] = "model_error"
    retryable: ClassVar[bool] = False
    fallback: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        model_id: str | None = None,
        provider: str | None = None,
        status_code: int | None = None,
    ) -> None:
        message = scrub_credentials(message)  # a URL's userinfo or a Basic token, wherever from
        super().__init__(message)
        self.message = message
        self.model_id = model_id
        self.provider = provider
        self.status_code = status_code

    def __str__(self) -> str:
        where = f"{self.model_id}: " if self.model_id else ""
        status = f" (HTTP {self.status_code})" if self.status_code is not None else ""
        return f"{where}{self.message}{status}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class RateLimited(ModelError):
    """The provider throttled the call (HTTP 429).

    Attributes:
        retry_after: Seconds the provider asked to wait, if it said.
    """

    kind = "rate_limited"
    retryable = True
    fallback = True

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        model_id: str | None = None,
        provider: str | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message, model_id=model_id, provider=provider, status_code=status_code)
        self.retry_after = retry_after


class Timeout(ModelError):
    """The call did not finish within its connect, read or total time limit."""

    kind = "timeout"
    retryable = True
    fallback = True


class Unavailable(ModelError):
    """The provider could not serve the call: 5xx, overload, refused or dropped connection."""

    kind = "unavailable"
    retryable = True
    fallback = True


class AuthError(ModelError):
    """Credentials are missing, invalid or not allowed to use the model. Fails fast."""

    kind = "auth_error"


class BadRequest(ModelError):
    """The request itself is wrong (unknown model, invalid parameter). Fails fast."""

    kind = "bad_request"


class ContextOverflow(ModelError):
    """The prompt plus requested output does not fit the model's context window.

    Not worth retrying on the same model; a model with a larger window may serve it.
    """

    kind = "context_overflow"
    fallback = True


class ContentFiltered(ModelError):
    """The provider refused or filtered the content.

    Never retried and, by default, never silently sent to another model: whether
    a refusal may fall back is a policy decision, not the adapter's.
    """

    kind = "content_filtered"


class MalformedResponse(ModelError):
    """The provider answered with something that could not be parsed or was cut short."""

    kind = "malformed_response"
    retryable = True
    fallback = True


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Return ``text`` with every non-trivial secret replaced by ``***``.

    Args:
        text: Any message that may echo request data (an error body, a URL).
        secrets: Values that must never be shown; ``None`` and very short
            strings (under 6 characters, too likely to match ordinary words)
            are skipped.
    """
    for secret in secrets:
        if secret and len(secret) >= 6:
            text = text.replace(secret, "***")
    return scrub_credentials(text)
