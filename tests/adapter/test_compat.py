"""The 1.4 construction surface and the internals third-party plugins reach into."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from typing import Any
from unittest import mock

import pytest

from aiosmtpd import smtp as smtp_module
from aiosmtpd.smtp import (
    ALLOWED_BEFORE_STARTTLS,
    BOGUS_LIMIT,
    CALL_LIMIT_DEFAULT,
    DATA_SIZE_DEFAULT,
    SMTP,
    __ident__,
    sanitize,
    syntax,
)
from aiosmtpd.testing.transport import MemoryTransport, SMTPClient

from .util import Recorder


def test_constants() -> None:
    assert DATA_SIZE_DEFAULT == 33554432
    assert CALL_LIMIT_DEFAULT == 20
    assert BOGUS_LIMIT == 5
    assert {"NOOP", "EHLO", "STARTTLS", "QUIT"} == ALLOWED_BEFORE_STARTTLS
    assert __ident__.startswith("Python SMTP ")
    for name in ("AuthResult", "LoginPassword", "auth_mechanism", "MISSING", "Session", "Envelope"):
        assert hasattr(smtp_module, name)


def test_init_with_mock_loop_and_mock_tls_context() -> None:
    loop = mock.Mock(spec=asyncio.AbstractEventLoop)
    context = mock.Mock()
    context.verify_mode = ssl.CERT_NONE
    context.check_hostname = False
    authenticator = object()  # plugins pass non-callables and use them themselves
    server = SMTP(
        Recorder(), loop=loop, tls_context=context, authenticator=authenticator, hostname="h"
    )
    assert server.loop is loop
    assert server._authenticator is authenticator
    assert server.tls_context is context
    assert loop.mock_calls == []
    assert server.require_starttls is False


def test_hostname_default_computed_once() -> None:
    smtp_module._default_hostname.cache_clear()
    with mock.patch.object(socket, "getfqdn", return_value="fq.example") as getfqdn:
        assert SMTP(Recorder()).hostname == "fq.example"
        assert SMTP(Recorder()).hostname == "fq.example"
    assert getfqdn.call_count == 1
    smtp_module._default_hostname.cache_clear()


@pytest.mark.parametrize(
    ("limit", "error"),
    [
        ({"NOOP": "x"}, "All command_call_limit values must be int"),
        ("10", "command_call_limit must be int or Dict\\[str, int\\]"),
    ],
)
def test_call_limit_validation(limit: Any, error: str) -> None:
    with pytest.raises(TypeError, match=error):
        SMTP(Recorder(), hostname="h", command_call_limit=limit)


def test_proxy_timeout_validation(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ValueError, match="proxy_protocol_timeout must be > 0"):
        SMTP(Recorder(), hostname="h", proxy_protocol_timeout=0)
    with caplog.at_level(logging.WARNING, logger="mail.log"):
        SMTP(Recorder(), hostname="h", proxy_protocol_timeout=1)
    assert "proxy_protocol_timeout < 3.0" in caplog.messages


def test_tls_context_warnings(caplog: pytest.LogCaptureFixture) -> None:
    required = mock.Mock(verify_mode=ssl.CERT_REQUIRED, check_hostname=False)
    checking = mock.Mock(verify_mode=ssl.CERT_NONE, check_hostname=True)
    with caplog.at_level(logging.WARNING, logger="mail.log"):
        SMTP(Recorder(), hostname="h", tls_context=required)
        SMTP(Recorder(), hostname="h", tls_context=checking)
    tail = "this might cause client connection problems"
    assert caplog.messages == [
        f"tls_context.verify_mode not in {{CERT_NONE, CERT_OPTIONAL}}; {tail}",
        f"tls_context.check_hostname == True; {tail}",
    ]


def test_sanitize() -> None:
    assert sanitize(b"AUTH PLAIN AGFiYwBkZWY=\r\n") == b"AUTH PLAIN ********\r\n"
    assert sanitize(b"auth login YWxpY2U=") == b"auth login ********"
    assert sanitize(b"MAIL FROM:<a@b>") == b"MAIL FROM:<a@b>"


def test_syntax_decorator() -> None:
    @syntax("PING [x]", extended=" more", when="tls_context")
    async def smtp_PING(self: Any, arg: str) -> None:
        pass

    assert smtp_PING.__smtp_syntax__ == "PING [x]"  # type: ignore[attr-defined]
    assert smtp_PING.__smtp_syntax_extended__ == " more"  # type: ignore[attr-defined]
    assert smtp_PING.__smtp_syntax_when__ == "tls_context"  # type: ignore[attr-defined]


def test_command_size_limits_are_per_connection() -> None:
    server = SMTP(Recorder(), hostname="h", enable_SMTPUTF8=True)
    assert server.command_size_limits["MAIL"] == 512
    assert server.max_command_size_limit == 512
    other = SMTP(Recorder(), hostname="h")
    assert other.command_size_limits["MAIL"] == 512


@pytest.mark.asyncio
async def test_mail_line_limit_grows_after_ehlo() -> None:
    """512 octets for MAIL after HELO; 512+26+10 after EHLO with SIZE and SMTPUTF8."""
    server = SMTP(Recorder(), hostname="h", enable_SMTPUTF8=True)
    async with SMTPClient(server) as client:
        await client.command("HELO c")
        prefix = "MAIL FROM:<"
        at_base = prefix + "a" * (510 - len(prefix) - len("@b>")) + "@b>"
        assert len(at_base) + 2 == 512
        assert (await client.command(at_base)).code == 250
        await client.command("RSET")
        assert (await client.command(at_base[:-3] + "a@b>")).text == "Command line too long"
        await client.command("EHLO c")
        assert server.command_size_limits["MAIL"] == 548
        longest = prefix + "a" * (546 - len(prefix) - len("@b>")) + "@b>"
        assert (await client.command(longest)).code == 250
        await client.command("RSET")
        assert (await client.command(longest[:-3] + "a@b>")).text == "Command line too long"


@pytest.mark.asyncio
async def test_plugin_internals() -> None:
    transport = MemoryTransport()
    server = SMTP(Recorder(), hostname="h")
    async with SMTPClient(server, transport) as client:
        assert server.transport is transport
        assert server._reader._transport is transport
        assert server._writer._transport is transport
        # 1.4's session task: now a future that is done when the session is (there is
        # no task per connection); awaiting and cancelling it work as before.
        session_end = server._handler_coroutine
        assert isinstance(session_end, asyncio.Future)
        assert not session_end.done()
        assert server._handler_coroutine is session_end
        assert server._tls_protocol is None
        assert server.event_handler is not None
        # A plugin's own STARTTLS swaps the transport: writes follow the new one.
        swapped = MemoryTransport()
        swapped.set_protocol(server)
        server.transport = swapped
        server._reader._transport = swapped
        server._writer._transport = swapped
        server._tls_protocol = object()
        server._original_transport = transport
        await client.send(b"EHLO c\r\n")
        while b"250 HELP" not in swapped.output:
            await swapped.wait_for_output()
        assert b"250-STARTTLS" not in swapped.output
        assert b"250 HELP" in swapped.output
        swapped.close()
        await swapped.wait_closed()
        # connection_lost closed the original transport too.
        assert transport.is_closing()
        await client.close()
        await session_end


@pytest.mark.asyncio
async def test_starttls_gate_uses_tls_protocol() -> None:
    context = mock.Mock(verify_mode=ssl.CERT_NONE, check_hostname=False)
    server = SMTP(Recorder(), hostname="h", tls_context=context, require_starttls=True)
    async with SMTPClient(server) as client:
        assert (await client.command("EHLO c")).code == 250
        assert (await client.command("MAIL FROM:<a@b>")).code == 530
        server._tls_protocol = object()
        assert (await client.command("MAIL FROM:<a@b>")).code == 250


@pytest.mark.asyncio
async def test_handle_starttls_refusal_gates_commands() -> None:
    server = SMTP(Recorder(), hostname="h")
    async with SMTPClient(server) as client:
        server._tls_handshake_okay = False
        reply = await client.command("NOOP")
        assert (reply.code, reply.text) == (554, "Command refused due to lack of security")
        assert (await client.command("QUIT")).code == 221


@pytest.mark.asyncio
async def test_challenge_auth_logging_warns() -> None:
    server = SMTP(Recorder(), hostname="h", auth_require_tls=False)
    async with SMTPClient(server) as client:
        await client.command("EHLO c")
        result: list[Any] = []

        async def run() -> None:
            result.append(await server.challenge_auth("Q", log_client_response=True))

        # Drive challenge_auth inside a NOOP-like custom flow: call it from a hook.
        async def handle_NOOP(*args: Any) -> str:
            with pytest.warns(UserWarning, match="AUTH interaction|Sensitive") as record:
                await run()
            assert [str(w.message) for w in record] == [
                "AUTH interaction logging is enabled!",
                "Sensitive information might be leaked!",
            ]
            return "250 done"

        server._handle_hooks = {**server._handle_hooks, "NOOP": handle_NOOP}
        await client.send(b"NOOP\r\n")
        assert (await client.reply()).code == 334
        assert (await client.command("YWJj")).text == "done"
    assert result == [b"abc"]
