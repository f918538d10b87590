"""A real HAProxy in front of a Controller, with the config of docs/deployment.rst.

The config is ``examples/haproxy.cfg`` with its placeholders filled in; HAProxy inherits
an already listening socket (``bind fd@N``), so there is no port race. Mail sent with
smtplib through it arrives, and ``session.proxy_data`` names the smtplib client's own
socket address, over plain SMTP, STARTTLS (the PROXY data survives the upgrade) and
implicit TLS (the PROXY header in the clear, then the TLS handshake).
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import subprocess
from collections.abc import Callable, Iterator
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest

from aiosmtpd.controller import Controller
from tests.support import require_module

from .support import require_program

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "examples" / "haproxy.cfg"
HOST = "127.0.0.1"


class ProxyRecorder:
    def __init__(self) -> None:
        self.deliveries: list[tuple[Any, Any, bytes]] = []

    async def handle_PROXY(self, server: Any, session: Any, envelope: Any, proxy: Any) -> bool:
        return True

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.deliveries.append((session.proxy_data, session.ssl, envelope.content))
        return "250 OK"


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[Callable[[int, str], int]]:
    program = require_program("haproxy")
    processes: list[subprocess.Popen[bytes]] = []

    def start(backend_port: int, proxy: str) -> int:
        with socket.socket() as listener:
            listener.bind((HOST, 0))
            listener.listen(16)
            config = tmp_path / f"haproxy{len(processes)}.cfg"
            config.write_text(
                CONFIG.read_text().format(
                    bind=f"fd@{listener.fileno()}",
                    backend=f"{HOST}:{backend_port}",
                    proxy=proxy,
                )
            )
            processes.append(
                subprocess.Popen(
                    [program, "-db", "-f", str(config)],
                    pass_fds=[listener.fileno()],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                )
            )
            port: int = listener.getsockname()[1]
            return port

    yield start
    for process in processes:
        process.terminate()
        process.communicate(timeout=10)


@pytest.fixture(scope="module")
def contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    trustme = require_module("trustme")
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST).configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    return server_context, client_context


MESSAGE = b"Subject: through haproxy\r\n\r\nHello\r\n"


@pytest.mark.wire
@pytest.mark.parametrize(("proxy", "version"), [("send-proxy", 1), ("send-proxy-v2", 2)])
@pytest.mark.parametrize("tls", ["plain", "starttls", "implicit"])
def test_mail_through_haproxy_names_the_real_client(
    haproxy: Callable[[int, str], int],
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
    proxy: str,
    version: int,
    tls: str,
) -> None:
    server_context, client_context = contexts
    handler = ProxyRecorder()
    kwargs: dict[str, Any] = {}
    if tls == "starttls":
        kwargs["tls_context"] = server_context
    if tls == "implicit":
        kwargs["ssl_context"] = server_context
    controller = Controller(handler, hostname=HOST, port=0, proxy_protocol_timeout=5, **kwargs)
    controller.start()
    try:
        front = haproxy(controller.port, proxy)
        client_class = smtplib.SMTP_SSL if tls == "implicit" else smtplib.SMTP
        extra = {"context": client_context} if tls == "implicit" else {}
        with client_class(HOST, front, timeout=15, **extra) as client:
            client_address = client.sock.getsockname()[:2]
            if tls == "starttls":
                client.starttls(context=client_context)
            client.sendmail("a@client.test", ["b@server.test"], MESSAGE)
    finally:
        controller.stop()
    [(proxy_data, ssl_info, content)] = handler.deliveries
    assert (ssl_info is not None) == (tls != "plain")
    assert content == MESSAGE
    assert proxy_data.valid
    assert proxy_data.version == version
    assert (proxy_data.src_addr, proxy_data.src_port) == (
        ip_address(client_address[0]),
        client_address[1],
    )
    assert (proxy_data.dst_addr, proxy_data.dst_port) == (ip_address(HOST), front)
