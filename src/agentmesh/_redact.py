"""Credentials that URLs and headers carry, and their redaction wherever text is shown.

A catalog may hold ``base_url: http://user:pass@host/v1`` (also through
``${VAR}``) or ``headers: {Authorization: "Basic dXNlcjpwYXNz"}``. The values
are sent as given; everything shown (error messages, span attributes and
events, ``repr``, ``models list --json``, checkpoints of failed runs) goes
through these functions first:

* :func:`redact_url`: the URL with its userinfo replaced by ``***``;
* :func:`redact_headers`: sensitive header values (``Authorization``,
  anything naming a key, token, secret, cookie or password) replaced by ``***``;
* :func:`credential_values`: the exact strings to scrub from free text (the
  userinfo, its password, a Basic token and what it decodes to);
* :func:`scrub_credentials`: a last pass over any text, masking
  ``scheme://userinfo@`` and ``Basic``/``Bearer`` tokens it finds.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = [
    "credential_values",
    "redact_headers",
    "redact_url",
    "scrub_credentials",
    "sensitive_header",
]

MASK = "***"
_SENSITIVE = re.compile(r"auth|key|token|secret|cookie|password|passwd|session|signature", re.I)
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^\s/@?#'\"]+)@")
_BASIC = re.compile(r"\b(?P<scheme>Basic)\s+(?P<token>[A-Za-z0-9+/]{4,}={0,2})", re.I)
_BEARER = re.compile(r"\b(?P<scheme>Bearer)\s+[A-Za-z0-9._~+/=\-]{16,}", re.I)


def sensitive_header(name: str) -> bool:
    """Whether a header's value is a credential (``Authorization``, ``X-Api-Key``...)."""
    return bool(_SENSITIVE.search(name))


def redact_url(url: str) -> str:
    """``url`` with any userinfo (``user:pass@``) replaced by ``***@``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", url)
    if "@" not in parts.netloc:
        return _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{MASK}@{host}"))


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` with the value of every sensitive one replaced by ``***``."""
    return {k: MASK if sensitive_header(k) else v for k, v in headers.items()}


def _userinfo_values(url: str) -> list[str]:
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        return []
    userinfo, at, _ = netloc.rpartition("@")
    if not at:
        return []
    user, _, password = userinfo.partition(":")
    return [userinfo, unquote(userinfo), password, unquote(password), user, unquote(user)]


def _basic_values(value: str) -> list[str]:
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() not in ("basic", "bearer") or not token:
        return []
    found = [token]
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(token, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return found
        user, _, password = decoded.partition(":")
        found += [decoded, password, user]
    return found


def credential_values(
    urls: Iterable[str | None] = (), headers: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """Every credential string the URLs and headers hold, longest first (for scrubbing)."""
    found: list[str] = []
    for url in urls:
        if url:
            found += _userinfo_values(url)
    for name, value in (headers or {}).items():
        if sensitive_header(name):
            found += [value, *_basic_values(value)]
    unique = {v for v in found if len(v) >= 6}
    return tuple(sorted(unique, key=len, reverse=True))


def scrub_credentials(text: str) -> str:
    """``text`` with ``scheme://userinfo@`` and ``Basic``/``Bearer`` tokens masked."""
    if "@" in text:
        text = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    text = _BEARER.sub(lambda m: f"{m['scheme']} {MASK}", text)
    return _BASIC.sub(_mask_basic, text)


def _mask_basic(match: re.Match[str]) -> str:
    """A ``Basic`` token masked if it decodes to ``user:password`` (not "Basic ideas")."""
    try:
        decoded = base64.b64decode(match["token"], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return match[0]
    return f"{match['scheme']} {MASK}" if ":" in decoded else match[0]
