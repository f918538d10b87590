"""Connection caps (DECISIONS "connection limits"): total and per client address.

Each cap is tested under, at and over; the per-address cap counts the PROXY header's
source address when there is one. A refused client reads ``421 4.7.0`` then EOF.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

import pytest

from aiosmtpd.controller import Controller
from aiosmtpd.serving import ConnectionLimiter

from .prod_support import TOO_MANY, LineClient
from .test_cli import _python, running

HOST = "127.0.0.1"


class Sink:
    async def handle_PROXY(self, server: Any, session: Any, envelope: Any, proxy: Any) -> bool:
        return True


def _open(stack: ExitStack, port: int, count: int, **kwargs: Any) -> list[LineClient]:
    clients = [stack.enter_context(LineClient(HOST, port, **kwargs)) for _ in range(count)]
    for client in clients:
        assert client.reply().startswith(b"220")
    return clients


def _refused(client: LineClient) -> bool:
    return client.reply() == TOO_MANY and client.at_eof()


def test_limiter_under_at_over_and_release() -> None:
    limiter = ConnectionLimiter(max_connections=3, max_connections_per_address=2)
    assert limiter.acquire("a")  # under both
    assert limiter.acquire("a")  # at the per-address cap
    assert not limiter.acquire("a")  # over it
    assert limiter.acquire("b")  # at the total cap
    assert not limiter.acquire("c")  # over it
    assert (limiter.total, limiter.count("a"), limiter.count("c")) == (3, 2, 0)
    limiter.release("a")
    assert limiter.acquire("c")
    with pytest.raises(RuntimeError):
        limiter.release("nobody")


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_limiter_refuses_bad_caps(bad: Any) -> None:
    with pytest.raises(ValueError):
        ConnectionLimiter(max_connections=bad)
    with pytest.raises(ValueError):
        ConnectionLimiter(max_connections_per_address=bad)


def test_total_cap_under_at_over() -> None:
    controller = Controller(Sink(), hostname=HOST, port=0, max_connections=2)
    controller.start()
    try:
        with ExitStack() as stack:
            first, _second = _open(stack, controller.port, 2)  # under, then at the cap
            over = stack.enter_context(LineClient(HOST, controller.port))
            assert _refused(over)
            # A freed slot is given to the next client.
            assert first.command("QUIT").startswith(b"221")
            assert first.at_eof()
            _open(stack, controller.port, 1)
    finally:
        controller.stop()


def test_per_address_cap_counts_the_peer_address() -> None:
    controller = Controller(Sink(), hostname=HOST, port=0, max_connections_per_address=2)
    controller.start()
    try:
        with ExitStack() as stack:
            _open(stack, controller.port, 2, source="127.0.0.1")
            assert _refused(stack.enter_context(LineClient(HOST, controller.port)))
            # Another address has its own count.
            _open(stack, controller.port, 2, source="127.0.0.2")
    finally:
        controller.stop()


def test_per_address_cap_counts_the_proxy_address() -> None:
    controller = Controller(
        Sink(), hostname=HOST, port=0, max_connections_per_address=1, proxy_protocol_timeout=5
    )
    controller.start()

    def header(source: str) -> bytes:
        return f"PROXY TCP4 {source} 127.0.0.1 40000 25\r\n".encode()

    try:
        with ExitStack() as stack:
            _open(stack, controller.port, 1, header=header("192.0.2.1"))
            _open(stack, controller.port, 1, header=header("192.0.2.2"))
            again = stack.enter_context(
                LineClient(HOST, controller.port, header=header("192.0.2.1"))
            )
            assert _refused(again)
    finally:
        controller.stop()


def test_cli_flags() -> None:
    argv = _python(
        "-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink", "-l", f"{HOST}:0",
        "--max-connections", "3", "--max-connections-per-address", "1",
    )  # fmt: skip
    with running(argv) as server:
        port = server.wait_listening()
        with ExitStack() as stack:
            _open(stack, port, 1, source="127.0.0.1")
            assert _refused(stack.enter_context(LineClient(HOST, port, source="127.0.0.1")))
            _open(stack, port, 1, source="127.0.0.2")
            _open(stack, port, 1, source="127.0.0.3")
            assert _refused(stack.enter_context(LineClient(HOST, port, source="127.0.0.4")))
        assert server.stop() == 0


@pytest.mark.parametrize("flag", ["--max-connections", "--max-connections-per-address"])
def test_cli_refuses_a_zero_cap(flag: str) -> None:
    import aiosmtpd.main as cli

    with pytest.raises(SystemExit) as exit_info:
        cli.parseargs(["-n", flag, "0"])
    assert exit_info.value.code == 2
