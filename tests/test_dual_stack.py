"""IPv4 and IPv6 on one port: ``Controller(hostname="", port=0)`` and the CLI's ``-l :PORT``.

``port=0`` on a host with several addresses binds the SAME free port on all of them
(``serving.reserve_port``); the CLI's ``localhost`` means both loopback addresses.
"""

from __future__ import annotations

import socket

import pytest

from aiosmtpd.controller import Controller
from aiosmtpd.serving import reserve_port

from .prod_support import LineClient
from .test_cli import _python, running


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not _ipv6_loopback(), reason="::1 is not usable on this host")


def _greets(host: str, port: int) -> bool:
    with LineClient(host, port) as client:
        return client.reply().startswith(b"220") and client.command("QUIT").startswith(b"221")


@needs_ipv6
def test_controller_all_interfaces_serves_ipv4_and_ipv6_on_one_port() -> None:
    controller = Controller(object(), hostname="", port=0)
    controller.start()
    try:
        assert controller.server is not None
        families = {sock.family for sock in controller.server.sockets}
        ports = {sock.getsockname()[1] for sock in controller.server.sockets}
        assert families == {socket.AF_INET, socket.AF_INET6}
        assert ports == {controller.port}
        assert _greets("127.0.0.1", controller.port)
        assert _greets("::1", controller.port)
    finally:
        controller.stop()


@needs_ipv6
def test_reserve_port_holds_one_port_on_every_address() -> None:
    port, reserved = reserve_port(["127.0.0.1", "::1"], 0)
    try:
        assert [sock.getsockname()[1] for sock in reserved] == [port, port]
        assert {sock.family for sock in reserved} == {socket.AF_INET, socket.AF_INET6}
    finally:
        for sock in reserved:
            sock.close()
    assert reserve_port("127.0.0.1", 2525) == (2525, [])


@needs_ipv6
def test_cli_listen_on_port_only_serves_both_loopbacks() -> None:
    argv = _python("-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink", "-l", ":0")
    with running(argv) as server:
        first = server.wait_for(r"listening on (\S+)", stream="stderr").group(1)
        second = server.wait_for(r"listening on (\S+)", stream="stderr").group(1)
        port = int(first.rpartition(":")[2])
        assert {first, second} == {f"127.0.0.1:{port}", f"[::1]:{port}"}
        assert _greets("127.0.0.1", port)
        assert _greets("::1", port)
        assert server.stop() == 0
