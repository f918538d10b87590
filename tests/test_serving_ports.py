"""``serving.reserve_port``: port 0 on several addresses is one port free on all of them.

A port the kernel picks on the first address can be taken on another; reserving then
tries another port instead of failing the server's start (seen as a rare CI failure).
"""

from __future__ import annotations

import errno
from typing import Any

import pytest

from aiosmtpd import serving

LOOPBACKS = ["127.0.0.1", "::1"]


def test_a_port_taken_on_another_address_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    real = serving._reserve_on_all
    attempts: list[int] = []

    def collide_once(addresses: Any) -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError(errno.EADDRINUSE, "Address already in use")
        return real(addresses)

    monkeypatch.setattr(serving, "_reserve_on_all", collide_once)
    port, reserved = serving.reserve_port(LOOPBACKS, 0)
    try:
        assert len(attempts) == 2
        assert port != 0
        assert {sock.getsockname()[1] for sock in reserved} == {port}
    finally:
        for sock in reserved:
            sock.close()


def test_it_gives_up_after_its_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    def always_taken(addresses: Any) -> Any:
        raise OSError(errno.EADDRINUSE, "Address already in use")

    monkeypatch.setattr(serving, "_reserve_on_all", always_taken)
    with pytest.raises(OSError, match="already in use"):
        serving.reserve_port(LOOPBACKS, 0)


def test_other_errors_are_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[int] = []

    def not_available(addresses: Any) -> Any:
        attempts.append(1)
        raise OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")

    monkeypatch.setattr(serving, "_reserve_on_all", not_available)
    with pytest.raises(OSError, match="Cannot assign"):
        serving.reserve_port(LOOPBACKS, 0)
    assert attempts == [1]
