"""Big messages on uvloop are read through ``aiosmtpd._buffered`` (buffered reads).

uvloop reads into a protocol's buffer only for protocols that are not ``asyncio.Protocol``
instances, so a session installs ``ContentReads`` while it reads a message longer than
one read and takes it off at the end.  These tests run real sockets on a uvloop loop
(whatever ``AIOSMTPD_TEST_LOOP`` says) and check that the forwarder is really used, that
the content arrives byte for byte, and that everything that looks at the transport's
protocol (``get_protocol()``, STARTTLS, PROXY, subclasses) still sees the ``SMTP`` object.
"""

from __future__ import annotations

import asyncio
import random
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from aiosmtpd import _buffered
from aiosmtpd.smtp import SMTP, Envelope, Session
from aiosmtpd.testing.transport import MemoryTransport
from tests.support import require_module

HOST = "127.0.0.1"
LOCALHOST = "localhost"


class Keeper:
    def __init__(self) -> None:
        self.contents: list[bytes] = []
        self.sessions: list[Session] = []
        self.protocols: list[Any] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        self.contents.append(envelope.content)
        self.sessions.append(session)
        self.protocols.append(server.transport.get_protocol())
        return "250 OK kept"


#: Random octets become these: dots (stuffed on the wire), bare CR and LF (content).
ALPHABET = b"abc.xyz 0123.\r\n."
TABLE = bytes(ALPHABET[i % len(ALPHABET)] for i in range(256))


def big_message(seed: int, size: int = 3 << 20) -> bytes:
    """Random lines of 0-199 octets plus CRLF, many of them dot-led."""
    rng = random.Random(seed)
    blob = rng.randbytes(size).translate(TABLE)
    lines = []
    start = 0
    while start < size:
        end = start + rng.randrange(0, 200)
        lines.append(blob[start:end] + b"\r\n")
        start = end
    return b"".join(lines)


def wire_form(content: bytes) -> bytes:
    body = content.replace(b"\r\n.", b"\r\n..")
    return (b"." + body if body[:1] == b"." else body) + b".\r\n"


class Counted:
    """Counts the reads that went through ``ContentReads`` (monkeypatched in)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reads = 0
        original = _buffered.ContentReads.buffer_updated

        def buffer_updated(forwarder: _buffered.ContentReads, nbytes: int) -> None:
            self.reads += 1
            original(forwarder, nbytes)

        monkeypatch.setattr(_buffered.ContentReads, "buffer_updated", buffer_updated)


def run_on_uvloop(main: Callable[[], Awaitable[None]]) -> None:
    uvloop = require_module("uvloop")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(asyncio.wait_for(main(), 60))


async def expect(reader: asyncio.StreamReader, code: bytes) -> bytes:
    while True:
        line = await reader.readline()
        assert line[:3] == code, line
        if line[3:4] != b"-":
            return line


async def send_in_pieces(writer: asyncio.StreamWriter, data: bytes, seed: int) -> None:
    rng = random.Random(seed)
    view = memoryview(data)
    while view:
        size = rng.randrange(1, 300_000)
        writer.write(view[:size])
        view = view[size:]
        await writer.drain()


async def serve(factory: Callable[[], SMTP]) -> tuple[asyncio.Server, list[SMTP], int]:
    made: list[SMTP] = []

    def make() -> SMTP:
        made.append(factory())
        return made[-1]

    server = await asyncio.get_running_loop().create_server(make, HOST, 0)
    return server, made, server.sockets[0].getsockname()[1]


async def transaction(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, content: bytes, seed: int
) -> None:
    writer.write(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
    await expect(reader, b"250")
    await expect(reader, b"250")
    await expect(reader, b"354")
    await send_in_pieces(writer, wire_form(content), seed)
    await expect(reader, b"250")


async def close(server: asyncio.Server, writer: asyncio.StreamWriter) -> None:
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_big_messages_arrive_byte_for_byte_through_the_forwarder(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    counted = Counted(monkeypatch)
    handler = Keeper()
    contents = [big_message(seed), big_message(seed + 100, 1 << 20), b"small\r\n"]

    async def main() -> None:
        server, made, port = await serve(lambda: SMTP(handler, data_size_limit=None))
        reader, writer = await asyncio.open_connection(HOST, port)
        await expect(reader, b"220")
        writer.write(b"EHLO me\r\n")
        await expect(reader, b"250")
        for number, content in enumerate(contents):
            await transaction(reader, writer, content, seed * 10 + number)
            # Between messages the session is the transport's protocol again.
            assert made[0].transport.get_protocol() is made[0]
        await close(server, writer)

    run_on_uvloop(main)
    assert handler.contents == contents
    assert counted.reads > 0
    # handle_DATA runs after the content: the session is the protocol by then.
    assert all(type(protocol) is SMTP for protocol in handler.protocols)


def test_a_subclass_overriding_data_received_is_not_forwarded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counted = Counted(monkeypatch)
    handler = Keeper()
    received: list[int] = []

    class Watching(SMTP):
        def data_received(self, data: bytes) -> None:
            assert type(data) is bytes
            received.append(len(data))
            super().data_received(data)

    content = big_message(7)

    async def main() -> None:
        server, _, port = await serve(lambda: Watching(handler, data_size_limit=None))
        reader, writer = await asyncio.open_connection(HOST, port)
        await expect(reader, b"220")
        writer.write(b"HELO me\r\n")
        await expect(reader, b"250")
        await transaction(reader, writer, content, 7)
        await close(server, writer)

    run_on_uvloop(main)
    assert handler.contents == [content]
    assert counted.reads == 0
    assert sum(received) >= len(content)


def test_a_peer_gone_mid_message_reaches_the_session(monkeypatch: pytest.MonkeyPatch) -> None:
    counted = Counted(monkeypatch)
    handler = Keeper()
    lost: list[Exception | None] = []

    class Noting(SMTP):
        def connection_lost(self, exc: Exception | None) -> None:
            lost.append(exc)
            super().connection_lost(exc)

    async def main() -> None:
        server, _, port = await serve(lambda: Noting(handler, data_size_limit=None))
        reader, writer = await asyncio.open_connection(HOST, port)
        await expect(reader, b"220")
        writer.write(b"HELO me\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
        for code in (b"250", b"250", b"250", b"354"):
            await expect(reader, code)
        await send_in_pieces(writer, wire_form(big_message(9))[: 2 << 20], 9)
        # Wait until the server has switched to the forwarder, then vanish.
        while counted.reads == 0:
            await asyncio.sleep(0.01)
        writer.transport.abort()
        while not lost:
            await asyncio.sleep(0.01)
        server.close()
        await server.wait_closed()

    run_on_uvloop(main)
    assert handler.contents == []
    assert len(lost) == 1


def test_over_the_size_limit_the_forwarded_message_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counted = Counted(monkeypatch)
    handler = Keeper()
    limit = 1 << 20

    async def main() -> None:
        server, made, port = await serve(lambda: SMTP(handler, data_size_limit=limit))
        reader, writer = await asyncio.open_connection(HOST, port)
        await expect(reader, b"220")
        writer.write(b"HELO me\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
        for code in (b"250", b"250", b"250", b"354"):
            await expect(reader, code)
        await send_in_pieces(writer, wire_form(big_message(11, 2 * limit)), 11)
        await expect(reader, b"552")
        assert made[0].transport.get_protocol() is made[0]
        writer.write(b"NOOP\r\n")
        await expect(reader, b"250")
        await close(server, writer)

    run_on_uvloop(main)
    assert handler.contents == []
    assert counted.reads > 0


@pytest.fixture(scope="module")
def tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    trustme = require_module("trustme")
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(LOCALHOST).configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    return server_ctx, client_ctx


def test_starttls_after_a_forwarded_message(
    tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    counted = Counted(monkeypatch)
    server_ctx, client_ctx = tls_contexts
    handler = Keeper()
    contents = [big_message(21), big_message(22)]

    async def main() -> None:
        server, made, port = await serve(
            lambda: SMTP(handler, data_size_limit=None, tls_context=server_ctx)
        )
        reader, writer = await asyncio.open_connection(HOST, port)
        await expect(reader, b"220")
        writer.write(b"EHLO me\r\n")
        await expect(reader, b"250")
        await transaction(reader, writer, contents[0], 21)
        plain_reads = counted.reads
        assert made[0].transport.get_protocol() is made[0]
        writer.write(b"STARTTLS\r\n")
        await expect(reader, b"220")
        await writer.start_tls(client_ctx, server_hostname=LOCALHOST)
        writer.write(b"EHLO me\r\n")
        await expect(reader, b"250")
        # Over TLS the transport already reads into the session's buffer: no forwarder.
        await transaction(reader, writer, contents[1], 22)
        assert counted.reads == plain_reads > 0
        await close(server, writer)

    run_on_uvloop(main)
    assert handler.contents == contents
    assert handler.sessions[0].ssl is None
    assert handler.sessions[1].ssl is not None


class ProxyKeeper(Keeper):
    async def handle_PROXY(
        self, server: SMTP, session: Session, envelope: Envelope, proxy_data: Any
    ) -> bool:
        return True


def test_proxy_header_then_a_forwarded_message(monkeypatch: pytest.MonkeyPatch) -> None:
    counted = Counted(monkeypatch)
    handler = ProxyKeeper()
    content = big_message(31)

    async def main() -> None:
        server, _, port = await serve(
            lambda: SMTP(handler, data_size_limit=None, proxy_protocol_timeout=5)
        )
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(b"PROXY TCP4 192.0.2.1 198.51.100.2 4321 25\r\n")
        await expect(reader, b"220")
        writer.write(b"HELO me\r\n")
        await expect(reader, b"250")
        await transaction(reader, writer, content, 31)
        await close(server, writer)

    run_on_uvloop(main)
    assert handler.contents == [content]
    proxy_data = handler.sessions[0].proxy_data
    assert proxy_data is not None
    assert str(proxy_data.src_addr) == "192.0.2.1"
    assert counted.reads > 0


def test_begin_leaves_other_transports_alone() -> None:
    session = SMTP(Keeper())
    memory = MemoryTransport()
    memory.set_protocol(session)
    assert _buffered.begin(session, memory, True) is None
    assert memory.get_protocol() is session
    _buffered.end(session, memory, None)
    assert memory.get_protocol() is session
