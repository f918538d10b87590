"""Handler hooks (spec §4), MISSING semantics, deprecations and override points."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session

from .util import Recorder, connect


class Everything:
    """A handler with every hook; each records its call and returns a marked reply."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def handle_HELO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str
    ) -> str:
        self.calls.append(("HELO", hostname))
        session.host_name = hostname
        return "250 helo-hook"

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        self.calls.append(("EHLO", hostname, list(responses)))
        session.host_name = hostname
        return [*responses[:-1], "250-X-CUSTOM", responses[-1]]

    async def handle_NOOP(
        self, server: SMTP, session: Session, envelope: Envelope, arg: str
    ) -> str:
        self.calls.append(("NOOP", arg))
        return "250 noop-hook"

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.calls.append(("QUIT",))
        return "221 quit-hook"

    async def handle_VRFY(
        self, server: SMTP, session: Session, envelope: Envelope, address: str
    ) -> str:
        self.calls.append(("VRFY", address))
        return "252 vrfy-hook"

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.calls.append(("MAIL", address, options, envelope.smtp_utf8))
        envelope.mail_from = address
        return "250 mail-hook"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.calls.append(("RCPT", address, options))
        envelope.rcpt_tos.append(address)
        return "250 rcpt-hook"

    async def handle_RSET(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.calls.append(("RSET", envelope.mail_from))
        return "250 rset-hook"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.calls.append(("DATA", envelope.content, envelope.original_content))
        return "250 data-hook"


@pytest.mark.asyncio
async def test_every_hook_is_called_with_its_arguments() -> None:
    handler = Everything()
    async with connect(handler, enable_SMTPUTF8=True) as client:
        assert (await client.command("HELO h1")).text == "helo-hook"
        ehlo = await client.command("EHLO h2")
        assert ehlo.lines == (
            "mx.test",
            "SIZE 33554432",
            "8BITMIME",
            "SMTPUTF8",
            "PIPELINING",
            "X-CUSTOM",
            "HELP",
        )
        assert (await client.command("NOOP hello")).text == "noop-hook"
        assert (await client.command("VRFY <u@v.w>")).text == "vrfy-hook"
        assert (
            await client.command("mail from:<a@b.c> smtputf8 body=8bitmime")
        ).text == "mail-hook"
        assert (await client.command("RCPT TO:<d@e.f>")).text == "rcpt-hook"
        assert (await client.command("DATA")).code == 354
        await client.send(b"x\r\n.\r\n")
        assert (await client.reply()).text == "data-hook"
        assert (await client.command("RSET")).text == "rset-hook"
        assert (await client.command("QUIT")).text == "quit-hook"
    assert handler.calls == [
        ("HELO", "h1"),
        (
            "EHLO",
            "h2",
            [
                "250-mx.test",
                "250-SIZE 33554432",
                "250-8BITMIME",
                "250-SMTPUTF8",
                "250-PIPELINING",
                "250 HELP",
            ],
        ),
        ("NOOP", "hello"),
        ("VRFY", "u@v.w"),
        ("MAIL", "a@b.c", ["SMTPUTF8", "BODY=8BITMIME"], True),
        ("RCPT", "d@e.f", []),
        ("DATA", b"x\r\n", b"x\r\n"),
        ("RSET", None),
        ("QUIT",),
    ]


@pytest.mark.asyncio
async def test_missing_hooks_apply_defaults() -> None:
    handler = Recorder()
    async with connect(handler) as client:
        await client.command("EHLO h")
        await client.command("MAIL FROM:<a@b.c> SIZE=5")
        await client.command("RCPT TO:<d@e.f>")
        await client.command("RCPT TO:<g@h.i>")
        await client.command("DATA")
        await client.send(b"hi\r\n.\r\n")
        assert (await client.reply()).code == 250
    (envelope,) = handler.envelopes
    assert envelope.mail_from == "a@b.c"
    assert envelope.mail_options == ["SIZE=5"]
    assert envelope.rcpt_tos == ["d@e.f", "g@h.i"]
    assert envelope.content is envelope.original_content
    assert handler.sessions[0].host_name == "h"
    assert handler.sessions[0].extended_smtp is True
    assert handler.sessions[0].peer == ("127.0.0.1", 54321)


@pytest.mark.asyncio
async def test_hook_that_does_not_set_state_owns_it() -> None:
    class Lazy:
        async def handle_MAIL(
            self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
        ) -> str:
            return "250 accepted but not recorded"

    async with connect(Lazy()) as client:
        await client.command("EHLO h")
        await client.command("MAIL FROM:<a@b.c>")
        assert (await client.command("RCPT TO:<d@e.f>")).code == 503


@pytest.mark.asyncio
async def test_decode_data() -> None:
    handler = Recorder()
    async with connect(handler, decode_data=True) as client:
        ehlo = await client.command("EHLO h")
        assert "8BITMIME" not in ehlo.lines
        await client.command("MAIL FROM:<a@b.c>")
        await client.command("RCPT TO:<d@e.f>")
        await client.command("DATA")
        await client.send(b"caf\xc3\xa9\r\n.\r\n")
        reply = await client.reply()
        assert (reply.code, reply.text) == (500, "Error: strict ASCII mode")
        await client.command("DATA")
        await client.send(b"plain\r\n.\r\n")
        assert (await client.reply()).code == 250
    assert handler.envelopes[0].content == "plain\r\n"
    assert handler.envelopes[0].original_content == b"plain\r\n"


@pytest.mark.asyncio
async def test_decode_data_smtputf8() -> None:
    handler = Recorder()
    async with connect(handler, decode_data=True, enable_SMTPUTF8=True) as client:
        await client.command("EHLO h")
        await client.command("MAIL FROM:<a@b.c>")
        await client.command("RCPT TO:<d@e.f>")
        await client.command("DATA")
        await client.send(b"caf\xc3\xa9 \xff\r\n.\r\n")
        assert (await client.reply()).code == 250
    assert handler.envelopes[0].content == "café \udcff\r\n"


@pytest.mark.asyncio
async def test_ehlo_4_arg_hook_deprecated() -> None:
    class Old:
        async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str) -> str:
            session.host_name = hostname
            return "250 old-style"

    with pytest.warns(DeprecationWarning, match="5-argument handle_EHLO"):
        server = SMTP(Old(), hostname="mx.test")
    from aiosmtpd.testing.transport import SMTPClient

    async with SMTPClient(server) as client:
        reply = await client.command("EHLO h")
        assert reply.lines == ("mx.test", "SIZE 33554432", "8BITMIME", "PIPELINING", "old-style")


def test_ehlo_hook_bad_arity() -> None:
    class Bad:
        async def handle_EHLO(self, server: Any, session: Any) -> str:
            return "250 x"

    with pytest.raises(RuntimeError, match="Unsupported EHLO Hook"):
        SMTP(Bad(), hostname="x")


@pytest.mark.asyncio
async def test_process_message_fallback() -> None:
    got: list[tuple[Any, ...]] = []

    class Legacy:
        def process_message(
            self, peer: Any, mail_from: str, rcpt_tos: list[str], data: bytes
        ) -> None:
            got.append((peer, mail_from, rcpt_tos, data))

    async with connect(Legacy()) as client:
        await client.command("HELO h")
        await client.command("MAIL FROM:<a@b.c>")
        await client.command("RCPT TO:<d@e.f>")
        await client.command("DATA")
        with pytest.warns(DeprecationWarning, match=r"handle_DATA\(\) instead of .process_message"):
            reply = await client.command(b"m\r\n.")
        assert (reply.code, reply.text) == (250, "OK")
    assert got == [(("127.0.0.1", 54321), "a@b.c", ["d@e.f"], b"m\r\n")]


@pytest.mark.asyncio
async def test_ehlo_hook_and_rset_hook_deprecated() -> None:
    class Old(SMTP):
        async def ehlo_hook(self) -> None:
            await self.push("250-X-OLD")

        async def rset_hook(self) -> None:
            self.rset_called = True

    from aiosmtpd.testing.transport import SMTPClient

    async with SMTPClient(Old(Recorder(), hostname="mx.test")) as client:
        with pytest.warns(DeprecationWarning, match=r"handle_EHLO\(\) instead of .ehlo_hook"):
            reply = await client.command("EHLO h")
        assert reply.lines[-2:] == ("X-OLD", "HELP")
        with pytest.warns(DeprecationWarning, match=r"handle_RSET\(\) instead of .rset_hook"):
            assert (await client.command("RSET")).code == 250
        assert client.protocol.rset_called  # type: ignore[attr-defined]


def test_login_data_logs_deprecation(caplog: pytest.LogCaptureFixture) -> None:
    session = Session(None)
    with caplog.at_level(logging.WARNING, logger="mail.log"):
        session.login_data = b"x"
        assert session.login_data == b"x"
    assert (
        caplog.messages.count("Session.login_data is deprecated and will be removed in version 2.0")
        == 2
    )


@pytest.mark.asyncio
async def test_exception_default_reply_and_traceback(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        async def handle_NOOP(self, *args: Any) -> str:
            raise ValueError("private internals")

    async with connect(Broken()) as client:
        with caplog.at_level(logging.ERROR, logger="mail.log"):
            reply = await client.command("NOOP")
        assert (reply.code, reply.text) == (451, "4.3.0 Error: local error in processing")
        assert "private" not in client.transport.output.decode()
        assert (await client.command("NOOP")).code == 451
    assert any(r.exc_info and r.exc_info[0] is ValueError for r in caplog.records)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("returned", "expected"),
    [(None, "451 4.3.0 Error: local error in processing"), ("421 custom", "421 custom")],
)
async def test_handle_exception_hook(returned: str | None, expected: str) -> None:
    errors: list[Exception] = []

    class Handler(Recorder):
        async def handle_DATA(self, *args: Any) -> str:
            raise RuntimeError("boom")

        async def handle_exception(self, error: Exception) -> str | None:
            errors.append(error)
            return returned

    async with connect(Handler()) as client:
        await client.command("HELO h")
        await client.command("MAIL FROM:<a@b.c>")
        await client.command("RCPT TO:<d@e.f>")
        await client.command("DATA")
        await client.send(b"m\r\n.\r\n")
        reply = await client.reply()
        assert f"{reply.code} {reply.text}" == expected
        # The envelope was reset: a new transaction may start.
        assert (await client.command("MAIL FROM:<a@b.c>")).code == 250
    assert [type(e) for e in errors] == [RuntimeError]


@pytest.mark.asyncio
async def test_create_session_and_envelope_override() -> None:
    class MySession(Session):
        pass

    class MyEnvelope(Envelope):
        pass

    class Custom(SMTP):
        def _create_session(self) -> Session:
            return MySession(self.loop)

        def _create_envelope(self) -> Envelope:
            return MyEnvelope()

    handler = Recorder()
    from aiosmtpd.testing.transport import SMTPClient

    async with SMTPClient(Custom(handler, hostname="x")) as client:
        for line in ("HELO h", "MAIL FROM:<a@b.c>", "RCPT TO:<d@e.f>", "DATA"):
            await client.command(line)
        await client.send(b"m\r\n.\r\n")
        await client.reply()
    assert isinstance(handler.envelopes[0], MyEnvelope)
    assert isinstance(handler.sessions[0], MySession)


@pytest.mark.asyncio
async def test_custom_verb_and_push_bytes() -> None:
    class Pinging(SMTP):
        async def smtp_PING(self, arg: str | None) -> None:
            await self.push(b"250 PONG " + (arg or "").encode())

    from aiosmtpd.testing.transport import SMTPClient

    async with SMTPClient(Pinging(Recorder(), hostname="x")) as client:
        assert (await client.command("ping me")).text == "PONG me"
        # Undecorated verbs are not in HELP.
        assert "PING" not in (await client.command("HELP")).text


@pytest.mark.asyncio
async def test_missing_is_returned_for_absent_hook() -> None:
    async with connect(Recorder()) as client:
        server = client.protocol
        assert await server._call_handler_hook("NOOP", "") is MISSING  # type: ignore[attr-defined]
        assert repr(MISSING) == "MISSING"


@pytest.mark.asyncio
async def test_hooks_set_on_the_instance_are_found() -> None:
    handler = Recorder()

    async def handle_NOOP(server: Any, session: Any, envelope: Any, arg: str) -> str:
        return "250 instance hook"

    handler.handle_NOOP = handle_NOOP  # type: ignore[attr-defined]
    async with connect(handler) as client:
        assert (await client.command("NOOP")).text == "instance hook"


@pytest.mark.asyncio
async def test_multiline_status_from_a_hook() -> None:
    class Multi:
        async def handle_NOOP(self, *args: Any) -> str:
            return "250-first\r\n250 second"

    async with connect(Multi()) as client:
        assert (await client.command("NOOP")).lines == ("first", "second")
        assert (await client.command("NOOP x")).lines == ("first", "second")


@pytest.mark.asyncio
async def test_ehlo_hook_without_final_line_still_gets_an_answer() -> None:
    class Broken:
        async def handle_EHLO(
            self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
        ) -> list[str]:
            session.host_name = hostname
            return ["250-only continuation"]

    async with connect(Broken()) as client:
        reply = await client.command("EHLO c")
        assert reply.lines == ("only continuation", "4.3.0 Error: local error in processing")
        assert reply.code == 451
        assert (await client.command("NOOP")).code == 250
