"""Steps of graphs/approval.yaml that need no model (``kind: function`` nodes)."""

from __future__ import annotations

import hashlib
from typing import Any


def publish(text: str, notes: str | None = None) -> dict[str, Any]:
    """Publish an approved draft: here, return it with a stable id (a real one would post it)."""
    body = text.split(": ", 1)[1] if text.startswith(("Draft (", "Revised draft (")) else text
    post_id = hashlib.sha256(body.encode("utf-8")).hexdigest()[:8]
    return {"status": "published", "id": f"post-{post_id}", "text": body, "notes": notes}


def announce(post_id: str, channels: str = "blog, newsletter") -> dict[str, Any]:
    """Schedule a published post on the channels (here: say where it would go)."""
    return {"post": post_id, "channels": [c.strip() for c in channels.split(",") if c.strip()]}
