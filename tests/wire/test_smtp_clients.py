"""Real clients (smtplib, swaks, curl) over real sockets on port 0 deliver to a handler.

The server is started here with ``loop.create_server(lambda: SMTP(...))`` (no Controller),
and every connection's session task is awaited before the test ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session, syntax
from tests.support import require_module, require_program

pytestmark = pytest.mark.wire

MESSAGE = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: wire\r\n\r\nHello.\r\n..dot\r\n"


class Box:
    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.sessions: list[Session] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        self.sessions.append(session)
        return "250 OK queued"

    def assert_one_message(self, marker: bytes) -> None:
        """Exactly one a@example.com -> b@example.com message arrived, containing ``marker``."""
        (envelope,) = self.envelopes
        assert envelope.mail_from == "a@example.com"
        assert envelope.rcpt_tos == ["b@example.com"]
        assert marker in envelope.content  # type: ignore[operator]


@contextlib.asynccontextmanager
async def serve(
    handler: Any, cls: type[SMTP] = SMTP, ssl_context: ssl.SSLContext | None = None, **kwargs: Any
) -> AsyncIterator[int]:
    loop = asyncio.get_running_loop()
    protocols: list[SMTP] = []

    def factory() -> SMTP:
        protocol = cls(handler, hostname="mx.test", **kwargs)
        protocols.append(protocol)
        return protocol

    server = await loop.create_server(factory, "127.0.0.1", 0, ssl=ssl_context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()
        tasks = [p._handler_coroutine for p in protocols if p._handler_coroutine is not None]
        if tasks:
            await asyncio.wait(tasks)


def _smtplib_send(port: int) -> dict[str, tuple[int, bytes]]:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("client.test")
        assert client.has_extn("pipelining")
        assert client.has_extn("size")
        return client.sendmail("a@example.com", ["b@example.com", "c@example.com"], MESSAGE)


@pytest.mark.asyncio
async def test_smtplib_delivers() -> None:
    box = Box()
    async with serve(box) as port:
        refused = await asyncio.to_thread(_smtplib_send, port)
    assert refused == {}
    (envelope,) = box.envelopes
    assert envelope.mail_from == "a@example.com"
    assert envelope.rcpt_tos == ["b@example.com", "c@example.com"]
    assert envelope.content == MESSAGE  # smtplib stuffs the dot, the server unstuffs it
    assert box.sessions[0].host_name == "client.test"
    assert box.sessions[0].peer[0] == "127.0.0.1"


@pytest.mark.asyncio
async def test_smtplib_starttls_and_auth(
    tls_certificates: tuple[ssl.SSLContext, ssl.SSLContext, Path],
) -> None:
    server_context, client_context, _ = tls_certificates
    box = Box()
    tls_states: list[bool] = []

    class Handler(Box):
        def handle_STARTTLS(self, server: SMTP, session: Session, envelope: Envelope) -> bool:
            tls_states.append(session.ssl is not None)
            return True

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        return AuthResult(success=data.password == b"secret", auth_data=data.login)

    handler = Handler()

    def run(port: int) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.ehlo("c")
            assert client.has_extn("starttls")
            assert not client.has_extn("auth")
            client.starttls(context=client_context)
            client.ehlo("c")
            assert not client.has_extn("starttls")
            assert client.has_extn("auth")
            with pytest.raises(smtplib.SMTPAuthenticationError) as excinfo:
                client.login("alice", "wrong")
            assert excinfo.value.smtp_code == 535
            client.login("alice", "secret")
            client.sendmail("a@example.com", ["b@example.com"], MESSAGE)

    async with serve(
        handler, tls_context=server_context, require_starttls=True, authenticator=authenticator
    ) as port:
        await asyncio.to_thread(run, port)
    assert tls_states == [True]
    assert handler.sessions[0].authenticated is True
    assert handler.sessions[0].auth_data == b"alice"
    assert handler.sessions[0].ssl is not None
    assert box.envelopes == []


@pytest.mark.asyncio
async def test_smtplib_implicit_tls(
    tls_certificates: tuple[ssl.SSLContext, ssl.SSLContext, Path],
) -> None:
    server_context, client_context, _ = tls_certificates
    box = Box()

    def run(port: int) -> bool:
        with smtplib.SMTP_SSL("127.0.0.1", port, timeout=10, context=client_context) as client:
            client.ehlo("c")
            advertised = client.has_extn("auth") and not client.has_extn("starttls")
            client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
            return advertised

    async with serve(box, ssl_context=server_context, tls_context=server_context) as port:
        assert await asyncio.to_thread(run, port)
    assert len(box.envelopes) == 1


@pytest.mark.asyncio
async def test_lmtp_over_the_wire() -> None:
    """smtplib.LMTP reads one reply after DATA, so the RFC 2033 exchange is driven by hand."""
    box = Box()
    async with serve(box, cls=LMTP) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(
                b"LHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
                b"RCPT TO:<c@example.com>\r\nDATA\r\n"
            )
            lines = [await reader.readline() for _ in range(10)]  # greeting, 5 LHLO, 4
            assert lines[-1] == b"354 End data with <CR><LF>.<CR><LF>\r\n"
            writer.write(MESSAGE + b".\r\nQUIT\r\n")
            replies = [await reader.readline() for _ in range(3)]
            assert replies == [b"250 OK queued\r\n", b"250 OK queued\r\n", b"221 Bye\r\n"]
            assert await reader.read() == b""
        finally:
            writer.close()
            await writer.wait_closed()
    assert len(box.envelopes) == 1


async def _run(*argv: str, stdin: bytes | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(stdin), 30)
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


def _swaks_to(swaks: str, port: int) -> tuple[str, ...]:
    """swaks sending a@example.com -> b@example.com to our server on ``port``."""
    return (
        swaks,
        *("--server", "127.0.0.1", "--port", str(port)),
        *("--from", "a@example.com", "--to", "b@example.com"),
    )


@pytest.mark.asyncio
async def test_swaks_delivers() -> None:
    swaks = require_program("swaks")
    box = Box()
    async with serve(box) as port:
        code, output = await _run(
            *_swaks_to(swaks, port),
            "--helo",
            "swaks.test",
            "--pipeline",
            "--body",
            "hello from swaks",
        )
    assert code == 0, output
    box.assert_one_message(b"hello from swaks")


@pytest.mark.asyncio
async def test_swaks_starttls_auth_login(
    tls_certificates: tuple[ssl.SSLContext, ssl.SSLContext, Path],
) -> None:
    swaks = require_program("swaks")
    server_context, _, _ = tls_certificates
    box = Box()

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        return AuthResult(
            success=(mechanism, data.login, data.password) == ("LOGIN", b"alice", b"secret")
        )

    async with serve(box, tls_context=server_context, authenticator=authenticator) as port:
        code, output = await _run(
            *_swaks_to(swaks, port),
            "--tls",
            "--auth",
            "LOGIN",
            "--auth-user",
            "alice",
            "--auth-password",
            "secret",
            "--body",
            "tls body",
        )
    assert code == 0, output
    assert len(box.envelopes) == 1
    assert box.sessions[0].authenticated is True


@pytest.mark.asyncio
async def test_curl_delivers(tmp_path: Path) -> None:
    curl = require_program("curl")
    message = tmp_path / "message.eml"
    message.write_bytes(MESSAGE)
    box = Box()
    async with serve(box) as port:
        code, output = await _run(
            curl,
            "--silent",
            "--show-error",
            f"smtp://127.0.0.1:{port}/curl.test",
            "--mail-from",
            "a@example.com",
            "--mail-rcpt",
            "b@example.com",
            "-T",
            str(message),
        )
    assert code == 0, output
    box.assert_one_message(b"Subject: wire")


@pytest.mark.asyncio
async def test_curl_auth_login_over_starttls(
    tmp_path: Path, tls_certificates: tuple[ssl.SSLContext, ssl.SSLContext, Path]
) -> None:
    curl = require_program("curl")
    server_context, _, ca_file = tls_certificates
    message = tmp_path / "message.eml"
    message.write_bytes(MESSAGE)
    box = Box()

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        return AuthResult(success=(data.login, data.password) == (b"alice", b"secret"))

    async with serve(box, tls_context=server_context, authenticator=authenticator) as port:
        code, output = await _run(
            curl,
            "--silent",
            "--show-error",
            f"smtp://127.0.0.1:{port}",
            "--ssl-reqd",
            "--cacert",
            str(ca_file),
            "--login-options",
            "AUTH=LOGIN",
            "--user",
            "alice:secret",
            "--mail-from",
            "a@example.com",
            "--mail-rcpt",
            "b@example.com",
            "-T",
            str(message),
        )
    assert code == 0, output
    assert len(box.envelopes) == 1


class PluginStyleSMTP(SMTP):
    """A third-party subclass (as smtpdfix 0.5.3 does) running its own STARTTLS.

    It pushes 220, awaits ``loop.start_tls`` itself and then only swaps the stream
    objects' transports and ``_tls_protocol``; the server must carry on over TLS.
    """

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: str | None) -> None:
        await self.push("220 Ready to start TLS")
        self._original_transport = self.transport
        new_transport = await self.loop.start_tls(
            transport=self.transport,
            protocol=self,
            sslcontext=self.tls_context,
            server_side=True,
            ssl_handshake_timeout=5.0,
        )
        self._reader._transport = new_transport
        self._writer._transport = new_transport
        self._tls_protocol = new_transport.get_protocol()


@pytest.mark.asyncio
async def test_plugin_replacing_starttls(
    tls_certificates: tuple[ssl.SSLContext, ssl.SSLContext, Path],
) -> None:
    server_context, client_context, _ = tls_certificates
    box = Box()

    def run(port: int) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.starttls(context=client_context)
            client.ehlo("c")
            assert not client.has_extn("starttls")
            client.sendmail("a@example.com", ["b@example.com"], MESSAGE)

    async with serve(box, cls=PluginStyleSMTP, tls_context=server_context) as port:
        await asyncio.to_thread(run, port)
    assert len(box.envelopes) == 1
    assert box.sessions[0].ssl is not None


@pytest.mark.parametrize(
    "scenario",
    [test_smtplib_delivers, test_smtplib_starttls_and_auth, test_plugin_replacing_starttls],
    ids=lambda f: f.__name__,
)
def test_on_uvloop(
    scenario: Any, tls_certificates: tuple[ssl.SSLContext, ssl.SSLContext, Path]
) -> None:
    """STARTTLS through the public loop.start_tls() works on uvloop (DECISIONS row 8)."""
    uvloop = require_module("uvloop")
    args = () if scenario is test_smtplib_delivers else (tls_certificates,)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario(*args))
