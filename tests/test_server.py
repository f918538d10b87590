"""``aiosmtpd.server.SMTPServer``: serving on the test's own running loop, no thread.

Clients are smtplib (blocking, so run with ``asyncio.to_thread``) or asyncio streams on
the same loop. Stops are coordinated with ``server.stopping`` and handler events, never
a sleep. The suite's ``-W error::ResourceWarning`` catches any socket left open.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import tempfile
from pathlib import Path
from typing import Any

import pytest

from aiosmtpd.controller import get_localhost
from aiosmtpd.lmtp import LMTP
from aiosmtpd.server import SMTPServer
from aiosmtpd.smtp import SMTP
from tests.support import require_module

from .prod_support import SHUTTING_DOWN, TIMEOUT, TOO_MANY
from .test_examples import listening_port, load_example, send, start_example, stop_cleanly

HOST = "127.0.0.1"
MESSAGE = "From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nHello.\r\n"


class Keeper:
    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 OK kept"


class Gate(Keeper):
    """Holds handle_DATA until released, so a stop can happen mid-transaction."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.entered.set()
        await self.release.wait()
        return await super().handle_DATA(server, session, envelope)


def send_mail(port: int, rcpts: list[str] | None = None) -> dict[str, Any]:
    with smtplib.SMTP(HOST, port, timeout=TIMEOUT) as client:
        return client.sendmail("a@example.org", rcpts or ["b@example.org"], MESSAGE)


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection(HOST, port), TIMEOUT)


async def line(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readline(), TIMEOUT)


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    await writer.wait_closed()


async def start_transaction(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await connect(port)
    assert (await line(reader)).startswith(b"220")
    writer.write(b"HELO me\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
    for code in (b"250", b"250", b"250", b"354"):
        assert (await line(reader)).startswith(code)
    writer.write(MESSAGE.encode() + b".\r\n")
    return reader, writer


def only_this_task_left() -> bool:
    return asyncio.all_tasks() == {asyncio.current_task()}


# --- serving --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_async_with_delivers_on_port_zero() -> None:
    handler = Keeper()
    async with SMTPServer(handler, hostname=HOST, port=0) as server:
        assert server.is_serving
        assert server.port
        assert server.sockets[0].getsockname()[1] == server.port
        refused = await asyncio.to_thread(send_mail, server.port)
    assert refused == {}
    assert not server.is_serving
    assert [e.rcpt_tos for e in handler.envelopes] == [["b@example.org"]]
    assert handler.envelopes[0].content.endswith(b"Hello.\r\n")
    assert only_this_task_left()


@pytest.mark.asyncio
async def test_smtp_kwargs_and_controller_defaults() -> None:
    server = SMTPServer(Keeper(), hostname=HOST, port=0, server_hostname="mx.test", ident="X")
    assert server.SMTP_kwargs["enable_SMTPUTF8"] is True
    async with server:
        reader, writer = await connect(server.port or 0)
        banner = await line(reader)
        writer.write(b"EHLO me\r\n")
        ehlo = [await line(reader)]
        while ehlo[-1][3:4] == b"-":
            ehlo.append(await line(reader))
        await close(writer)
    assert banner.startswith(b"220 mx.test X")
    assert any(b"SMTPUTF8" in reply for reply in ehlo)


@pytest.mark.asyncio
async def test_lmtp_protocol_class() -> None:
    handler = Keeper()
    async with SMTPServer(handler, hostname=HOST, port=0, protocol_class=LMTP) as server:

        def lmtp() -> tuple[int, bytes]:
            with smtplib.LMTP(HOST, server.port or 0, timeout=TIMEOUT) as client:
                reply = client.ehlo()
                client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
                return reply

        code, _text = await asyncio.to_thread(lmtp)
    assert code == 250
    assert len(handler.envelopes) == 1


@pytest.mark.asyncio
async def test_factory_override() -> None:
    built: list[SMTP] = []

    class Counting(SMTPServer):
        def factory(self) -> Any:
            protocol = super().factory()
            built.append(protocol)
            return protocol

    async with Counting(Keeper(), hostname=HOST, port=0) as server:
        await asyncio.to_thread(send_mail, server.port or 0)
    # Once by start() (to surface errors early), once for the connection.
    assert len(built) == 2


@pytest.mark.asyncio
async def test_unix_socket() -> None:
    handler = Keeper()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "lmtp.sock"
        async with SMTPServer(handler, unix_socket=path, protocol_class=LMTP) as server:
            assert path.is_socket()
            assert server.port is None

            def lmtp() -> None:
                with smtplib.LMTP(str(path), timeout=TIMEOUT) as client:
                    client.sendmail("a@example.org", ["b@example.org"], MESSAGE)

            await asyncio.to_thread(lmtp)
        assert not path.exists()
    assert len(handler.envelopes) == 1


@pytest.mark.asyncio
async def test_implicit_tls() -> None:
    trustme = require_module("trustme")
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST).configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    handler = Keeper()
    async with SMTPServer(handler, hostname=HOST, port=0, ssl_context=server_context) as server:

        def send() -> None:
            with smtplib.SMTP_SSL(
                HOST, server.port or 0, context=client_context, timeout=TIMEOUT
            ) as client:
                client.sendmail("a@example.org", ["b@example.org"], MESSAGE)

        await asyncio.to_thread(send)
    assert len(handler.envelopes) == 1


@pytest.mark.asyncio
async def test_max_connections_shared_by_sessions() -> None:
    async with SMTPServer(Keeper(), hostname=HOST, port=0, max_connections=1) as server:
        first_reader, first = await connect(server.port or 0)
        assert (await line(first_reader)).startswith(b"220")
        second_reader, second = await connect(server.port or 0)
        assert (await line(second_reader)).startswith(TOO_MANY)
        await close(second)
        await close(first)


# --- stopping -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_idle_client_gets_421_when_the_block_ends() -> None:
    async with SMTPServer(Keeper(), hostname=HOST, port=0) as server:
        reader, writer = await connect(server.port or 0)
        assert (await line(reader)).startswith(b"220")
    assert (await line(reader)).startswith(SHUTTING_DOWN)
    assert await reader.read() == b""
    await close(writer)
    with pytest.raises(OSError):
        await connect(server.port or 0)
    assert only_this_task_left()


@pytest.mark.asyncio
async def test_transaction_in_flight_finishes_within_shutdown_timeout() -> None:
    handler = Gate()
    server = SMTPServer(handler, hostname=HOST, port=0, shutdown_timeout=TIMEOUT)
    await server.start()
    reader, writer = await start_transaction(server.port or 0)
    await handler.entered.wait()
    stopping = asyncio.create_task(server.stop())
    assert server.stopping is not None
    await server.stopping.wait()
    handler.release.set()
    await stopping
    assert (await line(reader)).startswith(b"250 OK kept")
    await close(writer)
    assert len(handler.envelopes) == 1


@pytest.mark.asyncio
async def test_transaction_past_the_deadline_gets_421() -> None:
    handler = Gate()
    async with SMTPServer(handler, hostname=HOST, port=0, shutdown_timeout=0) as server:
        reader, writer = await start_transaction(server.port or 0)
        await handler.entered.wait()
    assert (await line(reader)).startswith(SHUTTING_DOWN)
    await close(writer)
    assert handler.envelopes == []
    assert only_this_task_left()


@pytest.mark.asyncio
async def test_exception_in_block_still_closes_everything() -> None:
    handler = Gate()
    server = SMTPServer(handler, hostname=HOST, port=0, shutdown_timeout=0)
    clients: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def serve_then_fail() -> None:
        async with server:
            clients.append(await connect(server.port or 0))
            assert (await line(clients[0][0])).startswith(b"220")
            clients.append(await start_transaction(server.port or 0))
            await handler.entered.wait()
            raise LookupError("boom")

    with pytest.raises(LookupError, match="boom"):
        await serve_then_fail()
    (idle_reader, idle), (busy_reader, busy) = clients
    assert not server.is_serving
    assert (await line(idle_reader)).startswith(SHUTTING_DOWN)
    assert (await line(busy_reader)).startswith(SHUTTING_DOWN)
    await close(idle)
    await close(busy)
    with pytest.raises(OSError):
        await connect(server.port or 0)
    assert only_this_task_left()


@pytest.mark.asyncio
async def test_serve_forever_until_stop_or_cancel() -> None:
    server = SMTPServer(Keeper(), hostname=HOST, port=0)
    await server.start()
    serving = asyncio.create_task(server.serve_forever())
    await asyncio.to_thread(send_mail, server.port or 0)
    await server.stop()
    await serving
    assert not server.is_serving

    await server.start()  # a stopped server starts again
    serving = asyncio.create_task(server.serve_forever())
    reader, writer = await connect(server.port or 0)
    assert (await line(reader)).startswith(b"220")
    serving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await serving
    assert not server.is_serving
    assert (await line(reader)).startswith(SHUTTING_DOWN)
    await close(writer)


# --- misuse ---------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_bad_smtp_argument_raises_from_start_and_leaves_nothing() -> None:
    server = SMTPServer(Keeper(), hostname=HOST, port=0, no_such_argument=1)
    with pytest.raises(TypeError):
        async with server:
            pytest.fail("the block must not run")
    assert not server.is_serving
    assert only_this_task_left()


@pytest.mark.asyncio
async def test_start_twice_is_an_error_and_stop_is_idempotent() -> None:
    async with SMTPServer(Keeper(), hostname=HOST, port=0) as server:
        with pytest.raises(RuntimeError, match="already serving"):
            await server.start()
        await server.stop()
        await server.stop()


def test_default_address_is_the_controllers() -> None:
    server = SMTPServer(Keeper())
    assert (server.hostname, server.port) == (get_localhost(), 8025)
    assert (server.SMTP_kwargs, server.unix_socket) == ({"enable_SMTPUTF8": True}, None)


@pytest.mark.asyncio
async def test_every_interface_with_port_zero() -> None:
    handler = Keeper()
    async with SMTPServer(handler, hostname="", port=0) as server:
        assert {sock.getsockname()[1] for sock in server.sockets} == {server.port}
        await asyncio.to_thread(send_mail, server.port or 0)
    assert len(handler.envelopes) == 1


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unix_socket"):
        SMTPServer(Keeper(), port=0, unix_socket="/tmp/x.sock")
    with pytest.raises(ValueError, match="shutdown_timeout"):
        SMTPServer(Keeper(), shutdown_timeout=-1)
    with pytest.raises(ValueError, match="max_connections"):
        SMTPServer(Keeper(), max_connections=0)


# --- examples/asyncio_app.py ----------------------------------------------------------------


@pytest.mark.asyncio
async def test_asyncio_app_example_in_process() -> None:
    example = load_example("asyncio_app")
    app = example.MailApp(HOST, 0)
    stop = asyncio.Event()
    running = asyncio.create_task(app.run(stop))
    await app.listening.wait()
    await asyncio.to_thread(send, app.server.port, "in process")
    stop.set()
    await running
    assert app.received == ["Received from me@example.org: in process"]
    assert not app.server.is_serving


def test_asyncio_app_example_script() -> None:
    server = start_example("asyncio_app", "--port", "0")
    try:
        port = listening_port(server)
        assert send(port, "scripted") == {}
        line = server.wait_for(r"Received from (\S+): (.+)")
        assert line.groups() == ("me@example.org", "scripted")
    finally:
        stop_cleanly(server)


def test_implicit_tls_behind_a_proxy_header_is_started_by_the_session() -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    plain = SMTPServer(Keeper(), ssl_context=context)
    assert "proxy_tls_context" not in plain.SMTP_kwargs
    proxied = SMTPServer(Keeper(), ssl_context=context, proxy_protocol_timeout=5)
    # The listener must not wrap: HAProxy sends the header in the clear, then TLS.
    assert proxied.SMTP_kwargs["proxy_tls_context"] is context
