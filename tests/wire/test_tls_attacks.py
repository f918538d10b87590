"""STARTTLS over real sockets with real handshakes: injection, timeouts, asyncio clients.

The STARTTLS command injection (CVE-2011-0411 class) is tried in both forms -- plaintext
pipelined in the STARTTLS packet, and plaintext sent in a later packet before the
ClientHello -- against this server, and against a deliberately vulnerable subclass to
prove the check catches a server that keeps the plaintext.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from aiosmtpd._core.connection import Mode
from aiosmtpd.smtp import SMTP, Envelope, Session
from tests.support import require_module

pytestmark = pytest.mark.wire

Certificates = tuple[ssl.SSLContext, ssl.SSLContext, Path]
INJECTED = b"EHLO evil.test\r\nMAIL FROM:<evil@example.com>\r\n"


class Recorder:
    def __init__(self) -> None:
        self.helos: list[str] = []
        self.mail_froms: list[str] = []

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, lines: list[str]
    ) -> list[str]:
        session.host_name = hostname
        self.helos.append(hostname)
        return lines

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.mail_froms.append(address)
        envelope.mail_from = address
        return "250 OK"


class LateHandshakeSMTP(SMTP):
    """Starts the handshake only once plaintext has arrived after the 220.

    This is the window a plugin's ``smtp_STARTTLS`` (or a ``start_tls`` that first
    drains the write buffer) leaves open; the test makes it deterministic.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plaintext_arrived = asyncio.Event()
        self.tls_layer_ready = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        pending = self._conn is not None and self._conn.mode is Mode.TLS_PENDING
        if pending and self._plaintext_after_starttls():
            self.plaintext_arrived.set()
        super().data_received(data)

    async def _start_tls(self) -> None:
        await self.plaintext_arrived.wait()
        # loop.start_tls hands the transport to its TLS layer before its first await:
        # a callback scheduled now runs once the layer is there to read a ClientHello.
        asyncio.get_running_loop().call_soon(self.tls_layer_ready.set)
        await super()._start_tls()


class KeepsPlaintextMixin(SMTP):
    """A deliberately broken server: feeds the plaintext after STARTTLS to the TLS session."""

    cleartext = b""

    def data_received(self, data: bytes) -> None:
        cleartext = self._conn is not None and not self._tls_active
        if cleartext and (
            self._conn.mode is not Mode.TLS_PENDING or self._plaintext_after_starttls()
        ):
            self.cleartext += data
        super().data_received(data)

    def _finish_tls_upgrade(self) -> None:
        _, _, after = self.cleartext.rpartition(b"STARTTLS\r\n")
        self._tls_early_input = [after, *(self._tls_early_input or [])]
        super()._finish_tls_upgrade()


class VulnerableSMTP(KeepsPlaintextMixin, SMTP):
    pass


class VulnerableLateSMTP(KeepsPlaintextMixin, LateHandshakeSMTP):
    pass


@contextlib.asynccontextmanager
async def serve(
    handler: Any, cls: type[SMTP] = SMTP, ssl_context: ssl.SSLContext | None = None, **kwargs: Any
) -> AsyncIterator[tuple[int, list[SMTP]]]:
    loop = asyncio.get_running_loop()
    protocols: list[SMTP] = []

    def factory() -> SMTP:
        protocol = cls(handler, hostname="mx.test", **kwargs)
        protocols.append(protocol)
        return protocol

    server = await loop.create_server(factory, "127.0.0.1", 0, ssl=ssl_context)
    try:
        yield server.sockets[0].getsockname()[1], protocols
    finally:
        server.close()
        await server.wait_closed()
        tasks = [p._handler_coroutine for p in protocols if p._handler_coroutine is not None]
        if tasks:
            await asyncio.wait(tasks)


async def read_reply(reader: asyncio.StreamReader) -> list[bytes]:
    """One (possibly multi-line) reply; a guard timeout, not a wait."""
    lines = []
    async with asyncio.timeout(10):
        while True:
            line = await reader.readline()
            if not line:
                raise ConnectionError(f"closed after {lines!r}")
            lines.append(line)
            if line[3:4] != b"-":
                return lines


async def _ready_at_once() -> None:
    return None


async def attempt_injection(
    port: int,
    client_context: ssl.SSLContext,
    *,
    split: bool,
    server_ready: Callable[[], Awaitable[Any]] = _ready_at_once,
) -> bytes:
    """Try the STARTTLS injection; return everything the server said over TLS."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await read_reply(reader)
        writer.write(b"EHLO client.test\r\n")
        await read_reply(reader)
        if split:
            writer.write(b"STARTTLS\r\n")
            assert (await read_reply(reader))[0].startswith(b"220 ")
            writer.write(INJECTED)  # a later packet, before the ClientHello
            await writer.drain()
        else:
            writer.write(b"STARTTLS\r\n" + INJECTED)
            assert (await read_reply(reader))[0].startswith(b"220 ")
        async with asyncio.timeout(10):
            await server_ready()
        await writer.start_tls(client_context, server_hostname="mx.test")
        writer.write(b"EHLO client.test\r\nMAIL FROM:<good@example.com>\r\nQUIT\r\n")
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()


def _layer_ready(protocols: list[SMTP]) -> Callable[[], Awaitable[Any]]:
    async def wait() -> None:
        (protocol,) = protocols
        if isinstance(protocol, LateHandshakeSMTP):
            await protocol.tls_layer_ready.wait()

    return wait


INJECTION_CASES = [
    pytest.param(False, SMTP, VulnerableSMTP, id="same-packet"),
    pytest.param(True, LateHandshakeSMTP, VulnerableLateSMTP, id="later-packet"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("split", "safe_class", "vulnerable_class"), INJECTION_CASES)
async def test_starttls_injection_fails(
    tls_certificates: Certificates, split: bool, safe_class: type[SMTP], vulnerable_class: Any
) -> None:
    server_context, client_context, _ = tls_certificates
    handler = Recorder()
    async with serve(handler, safe_class, tls_context=server_context) as (port, protocols):
        over_tls = await attempt_injection(
            port, client_context, split=split, server_ready=_layer_ready(protocols)
        )
    assert handler.helos == ["client.test", "client.test"]
    assert handler.mail_froms == ["good@example.com"]
    assert over_tls.startswith(b"250-mx.test\r\n")
    assert over_tls.endswith(b"250 HELP\r\n250 OK\r\n221 Bye\r\n")


@pytest.mark.asyncio
@pytest.mark.parametrize(("split", "safe_class", "vulnerable_class"), INJECTION_CASES)
async def test_injection_check_catches_a_vulnerable_server(
    tls_certificates: Certificates, split: bool, safe_class: type[SMTP], vulnerable_class: Any
) -> None:
    server_context, client_context, _ = tls_certificates
    handler = Recorder()
    async with serve(handler, vulnerable_class, tls_context=server_context) as (port, protocols):
        over_tls = await attempt_injection(
            port, client_context, split=split, server_ready=_layer_ready(protocols)
        )
    assert handler.mail_froms[0] == "evil@example.com"
    assert "evil.test" in handler.helos
    assert handler.mail_froms == ["evil@example.com", "good@example.com"]
    assert over_tls.count(b"250 HELP\r\n") == 2  # the injected EHLO was answered over TLS


@pytest.mark.asyncio
async def test_handshake_timeout_cuts_a_silent_client(tls_certificates: Certificates) -> None:
    server_context, _, _ = tls_certificates
    async with serve(Recorder(), tls_context=server_context, tls_handshake_timeout=0.05) as (
        port,
        protocols,
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await read_reply(reader)
        writer.write(b"EHLO c\r\nSTARTTLS\r\n")
        await read_reply(reader)
        assert (await read_reply(reader))[0].startswith(b"220 ")
        # Never send a ClientHello: the server must close (guard timeout, not a wait).
        async with asyncio.timeout(10):
            assert await reader.read() == b""
            await protocols[0]._handler_coroutine  # type: ignore[misc]
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    assert protocols[0]._tls_protocol is None


def test_handshake_timeout_is_validated() -> None:
    with pytest.raises(ValueError, match="tls_handshake_timeout"):
        SMTP(Recorder(), tls_handshake_timeout=0)
    assert SMTP(Recorder())._tls_handshake_timeout == 60.0


@pytest.mark.asyncio
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_asyncio_stream_start_tls_client(
    tls_certificates: Certificates, version: ssl.TLSVersion
) -> None:
    """Python 3.11's ``StreamWriter.start_tls()``: EHLO right after the handshake is answered.

    The client writes EHLO (and more, pipelined) the moment its side of the handshake is
    done, so it can reach the server in the same read as the handshake's last flight.
    """
    server_context, _, ca_file = tls_certificates
    context = ssl.create_default_context()
    context.load_verify_locations(cadata=None, cafile=str(ca_file))
    context.minimum_version = context.maximum_version = version
    handler = Recorder()
    async with serve(handler, tls_context=server_context) as (port, _):
        for _ in range(5):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await read_reply(reader)
            writer.write(b"EHLO c\r\n")
            await read_reply(reader)
            writer.write(b"STARTTLS\r\n")
            assert (await read_reply(reader))[0].startswith(b"220 ")
            await writer.start_tls(context, server_hostname="mx.test")
            writer.write(b"EHLO tls.test\r\nMAIL FROM:<a@example.com>\r\n")
            ehlo = await read_reply(reader)
            assert ehlo[0] == b"250-mx.test\r\n"
            assert b"250-STARTTLS\r\n" not in ehlo
            assert await read_reply(reader) == [b"250 OK\r\n"]
            writer.write(b"QUIT\r\n")
            assert await read_reply(reader) == [b"221 Bye\r\n"]
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()
    assert handler.helos.count("tls.test") == 5


def test_on_uvloop(tls_certificates: Certificates) -> None:
    uvloop = require_module("uvloop")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        for split, safe, _ in (p.values for p in INJECTION_CASES):
            runner.run(test_starttls_injection_fails(tls_certificates, split, safe, None))
        runner.run(test_handshake_timeout_cuts_a_silent_client(tls_certificates))
        runner.run(test_asyncio_stream_start_tls_client(tls_certificates, ssl.TLSVersion.TLSv1_3))
