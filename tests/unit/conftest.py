"""Unit tests never touch the network, by construction.

Any attempt to open an IP connection (TCP or UDP, any address) fails the test;
HTTP adapters are tested through ``httpx.MockTransport`` and models through the
scripted provider.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest


class NetworkBlocked(RuntimeError):
    pass


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise NetworkBlocked(f"unit tests must not open network connections (to {address!r})")
        return real_connect(self, address)

    def no_dns(*args: Any, **kwargs: Any) -> Any:
        raise NetworkBlocked(f"unit tests must not resolve names ({args[0]!r})")

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    return
