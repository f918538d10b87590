"""Implicit TLS behind a PROXY header, with the header and the ClientHello in ONE packet.

The client side is an ``ssl.MemoryBIO`` TLS client, so the test decides exactly which
bytes go out together: the session must hand the bytes that followed the header to the
TLS layer instead of losing them.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from typing import Any

import pytest

from aiosmtpd.controller import Controller
from tests.support import require_module

HOST = "127.0.0.1"
HEADER = b"PROXY TCP4 192.0.2.7 127.0.0.1 40123 465\r\n"


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[Any, Any]] = []

    async def handle_PROXY(self, server: Any, session: Any, envelope: Any, proxy: Any) -> bool:
        return True

    async def handle_NOOP(self, server: Any, session: Any, envelope: Any, arg: str) -> str:
        self.seen.append((session.proxy_data, session.ssl))
        return "250 noted"


class BioClient:
    def __init__(self, sock: socket.socket, context: ssl.SSLContext) -> None:
        self.sock = sock
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname=HOST)

    def _pump(self) -> None:
        self.sock.sendall(self.outgoing.read())
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        self.incoming.write(data)

    def handshake(self, prefix: bytes) -> None:
        with pytest.raises(ssl.SSLWantReadError):
            self.tls.do_handshake()
        self.sock.sendall(prefix + self.outgoing.read())  # header + ClientHello together
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._pump()
        self.sock.sendall(self.outgoing.read())

    def line(self) -> bytes:
        data = b""
        while not data.endswith(b"\r\n"):
            try:
                data += self.tls.read(1)
            except ssl.SSLWantReadError:
                self._pump()
        return data

    def send(self, data: bytes) -> None:
        self.tls.write(data)
        self.sock.sendall(self.outgoing.read())


@pytest.fixture(scope="module")
def contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    trustme = require_module("trustme")
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST).configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    return server_context, client_context


def test_header_and_client_hello_in_one_packet(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_context, client_context = contexts
    handler = Recorder()
    controller = Controller(
        handler, hostname=HOST, port=0, ssl_context=server_context, proxy_protocol_timeout=5
    )
    controller.start()
    try:
        with socket.create_connection((HOST, controller.port), timeout=10) as sock:
            client = BioClient(sock, client_context)
            client.handshake(HEADER)
            assert client.line().startswith(b"220 ")
            client.send(b"NOOP\r\n")
            assert client.line() == b"250 noted\r\n"
    finally:
        controller.stop()
    [(proxy_data, ssl_info)] = handler.seen
    assert (str(proxy_data.src_addr), proxy_data.src_port) == ("192.0.2.7", 40123)
    assert ssl_info is not None
    assert ssl_info["cipher"] is not None


def test_garbage_instead_of_a_handshake_closes_with_the_reason_logged(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext], caplog: pytest.LogCaptureFixture
) -> None:
    server_context, _client_context = contexts
    reason_logged = threading.Event()

    class ReasonWatcher(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "TLS handshake after PROXY header failed" in record.getMessage():
                reason_logged.set()

    # The TLS layer closes the connection itself when the handshake fails, so the client
    # may see the close before the server's session gets to log why: wait for the record.
    watcher = ReasonWatcher()
    logging.getLogger("mail.log").addHandler(watcher)
    controller = Controller(
        Recorder(), hostname=HOST, port=0, ssl_context=server_context, proxy_protocol_timeout=5
    )
    controller.start()
    try:
        with caplog.at_level(logging.INFO, logger="mail.log"):
            with socket.create_connection((HOST, controller.port), timeout=10) as sock:
                sock.sendall(HEADER + b"EHLO not-tls\r\n" * 20)
                assert sock.recv(100) == b""
            assert reason_logged.wait(10)
    finally:
        controller.stop()
        logging.getLogger("mail.log").removeHandler(watcher)


def test_proxy_tls_context_needs_proxy_protocol() -> None:
    from aiosmtpd.smtp import SMTP

    with pytest.raises(ValueError, match="proxy_protocol_timeout"):
        SMTP(Recorder(), proxy_tls_context=ssl.create_default_context(ssl.Purpose.CLIENT_AUTH))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"PROXY TCP4 nonsense\r\n", "PROXYv1 malformed"),
        (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x05abcde", "PROXYv2 truncated address"),
        (b"GET / HTTP/1.0\r\n\r\n", "PROXY unrecognized signature"),
        (b"PROXY TCP4 192.0.2.1", "connection closed before the header was complete"),
    ],
)
def test_every_malformed_header_closes_with_the_reason_logged(
    data: bytes, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    controller = Controller(Recorder(), hostname=HOST, port=0, proxy_protocol_timeout=5)
    controller.start()
    try:
        with caplog.at_level(logging.INFO, logger="mail.debug"):
            with socket.create_connection((HOST, controller.port), timeout=10) as sock:
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
                assert sock.recv(100) == b""
    finally:
        controller.stop()
    assert [r.getMessage() for r in caplog.records if r.name == "mail.debug"] == [
        f"PROXY error: {reason}"
    ]
