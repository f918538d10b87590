"""The hot path's shortcuts (``smtp._plain_steps``) must not change what anyone sees.

The library's commands call the synchronous cores of ``push``, ``check_helo_needed``,
``check_auth_needed`` and ``_call_handler_hook`` only when the class keeps all four: a
subclass overriding any of them (1.4 programs do) still has it awaited at every step, a
paused transport still suspends the command until the peer reads, and MAIL/RCPT without
parameters behave exactly as with them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aiosmtpd import smtp as smtp_module
from aiosmtpd._flow import IdleTimer
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session
from aiosmtpd.testing.transport import SMTPClient

from .util import Recorder

SESSION = [
    "EHLO me",
    "NOOP",
    "MAIL FROM:<a@example.com>",
    "RCPT TO:<b@example.com>",
    "DATA",
    "hello\r\n.",
    "RSET",
    "HELO me",
    "QUIT",
]


class NoHooks:
    """No hooks at all: every command of ``SESSION`` is served inline."""


class OwnPush(SMTP):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pushed: list[str | bytes] = []

    async def push(self, status: str | bytes) -> None:
        self.pushed.append(status)
        await super().push(status)


class OwnChecks(SMTP):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.checks: list[str] = []

    async def check_helo_needed(self, helo: str = "HELO") -> bool:
        self.checks.append("helo")
        return await super().check_helo_needed(helo)

    async def check_auth_needed(self, caller: str) -> bool:
        self.checks.append("auth " + caller)
        return await super().check_auth_needed(caller)


class OwnHookCall(SMTP):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hook_calls: list[str] = []

    async def _call_handler_hook(self, command: str, *args: Any) -> Any:
        self.hook_calls.append(command)
        return await super()._call_handler_hook(command, *args)


async def _run_session(server: SMTP, lines: list[str] = SESSION) -> bytes:
    async with SMTPClient(server) as client:
        for line in lines:
            await client.send(line.encode() + b"\r\n")
            await client.reply()
        await client.wait_closed()
    return bytes(client.transport.output)


def test_plain_steps_is_decided_per_class() -> None:
    assert smtp_module._plain_steps(SMTP)
    assert smtp_module._plain_steps(LMTP)
    assert not smtp_module._plain_steps(OwnPush)
    assert not smtp_module._plain_steps(OwnChecks)
    assert not smtp_module._plain_steps(OwnHookCall)


@pytest.mark.asyncio
async def test_overridden_push_gets_every_reply_of_the_hot_commands() -> None:
    stock = await _run_session(SMTP(NoHooks(), hostname="mx.test"))
    server = OwnPush(NoHooks(), hostname="mx.test")
    assert await _run_session(server) == stock
    pushed = [p if isinstance(p, str) else p.decode() for p in server.pushed]
    # EHLO's lines, NOOP, MAIL, RCPT, the reply after the content, RSET, HELO, QUIT (354
    # is a library reply that 1.4 did not push either).
    assert pushed[:2] == ["250-mx.test", "250-SIZE 33554432"]
    assert pushed[-7:] == [
        "250 OK",
        "250 OK",
        "250 OK",
        "250 OK",
        "250 OK",
        "250 mx.test",
        "221 Bye",
    ]


@pytest.mark.asyncio
async def test_overridden_checks_are_awaited_by_mail_rcpt_and_data() -> None:
    stock = await _run_session(SMTP(NoHooks(), hostname="mx.test"))
    server = OwnChecks(NoHooks(), hostname="mx.test")
    assert await _run_session(server) == stock
    assert server.checks == ["helo", "auth MAIL", "helo", "auth RCPT", "helo", "auth DATA"]


@pytest.mark.asyncio
async def test_overridden_hook_call_is_made_even_without_a_hook() -> None:
    stock = await _run_session(SMTP(NoHooks(), hostname="mx.test"))
    server = OwnHookCall(NoHooks(), hostname="mx.test")
    assert await _run_session(server) == stock
    # (Without a DATA hook 1.4 delivered without calling it; EHLO likewise.)
    assert server.hook_calls == ["NOOP", "MAIL", "RCPT", "RSET", "HELO", "QUIT"]


@pytest.mark.asyncio
async def test_refusals_without_helo_or_auth_are_unchanged_on_the_fast_path() -> None:
    lines = ["MAIL FROM:<a@x>", "RCPT TO:<b@x>", "DATA", "EHLO me", "MAIL FROM:<a@x>", "QUIT"]
    for server_type in (SMTP, OwnChecks):
        server = server_type(NoHooks(), hostname="mx.test", auth_required=True)
        output = await _run_session(server, lines)
        replies = [line[:3] for line in output.split(b"\r\n") if line[3:4] == b" "]
        assert replies == [b"220", b"503", b"503", b"503", b"250", b"530", b"221"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("mail", "rcpt"),
    [
        ("MAIL FROM:<a@example.com>", "RCPT TO:<b@example.com>"),
        ("MAIL FROM:<a@example.com> SIZE=10 BODY=8BITMIME", "RCPT TO:<b@example.com>"),
    ],
    ids=["no-parameters", "parameters"],
)
async def test_mail_and_rcpt_options_reach_hook_and_envelope(mail: str, rcpt: str) -> None:
    seen: list[Any] = []

    class Handler(Recorder):
        async def handle_MAIL(
            self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
        ) -> str:
            seen.append(("MAIL", address, list(options)))
            envelope.mail_from = address
            envelope.mail_options.extend(options)
            return "250 mail ok"

    handler = Handler()
    await _run_session(SMTP(handler, hostname="mx.test"), ["EHLO me", mail, rcpt, "QUIT"])
    plain = SMTP(NoHooks(), hostname="mx.test")
    async with SMTPClient(plain) as client:
        await client.command("EHLO me")
        assert (await client.command(mail)).code == 250
        assert (await client.command(rcpt)).code == 250
        envelope = plain.envelope
        assert envelope.mail_options == seen[0][2]
        assert envelope.rcpt_options == []
        assert envelope.smtp_utf8 is False
    expected = mail.upper().split()[2:]
    assert seen == [("MAIL", "a@example.com", expected)]


@pytest.mark.asyncio
async def test_binarymime_mark_is_cleared_by_a_mail_without_parameters() -> None:
    server = SMTP(NoHooks(), hostname="mx.test", enable_CHUNKING=True)
    async with SMTPClient(server) as client:
        await client.command("EHLO me")
        assert (await client.command("MAIL FROM:<a@x> BODY=BINARYMIME")).code == 250
        assert (await client.command("RCPT TO:<b@x>")).code == 250
        assert (await client.command("DATA")).code == 503
        assert (await client.command("RSET")).code == 250
        assert (await client.command("MAIL FROM:<a@x>")).code == 250
        assert (await client.command("RCPT TO:<b@x>")).code == 250
        assert (await client.command("DATA")).code == 354


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("verb", "arg"),
    [
        ("NOOP", None),
        ("MAIL", "FROM:<a@x>"),
        ("RCPT", "TO:<c@x>"),
        ("RSET", None),
        ("HELO", "me"),
        ("EHLO", "me"),
        ("QUIT", None),
    ],
)
async def test_a_reply_while_writes_are_paused_suspends_the_command(
    verb: str, arg: str | None
) -> None:
    """The shortcut for ``push`` still waits while the peer is not reading."""
    server = SMTP(NoHooks(), hostname="mx.test")
    async with SMTPClient(server) as client:
        await client.command("EHLO me")
        if verb == "RCPT":
            assert (await client.command("MAIL FROM:<a@x>")).code == 250
        server.pause_writing()
        command = asyncio.ensure_future(getattr(server, "smtp_" + verb)(arg))
        for _ in range(3):
            await asyncio.sleep(0)
        assert not command.done()  # the reply is out, the command waits for the peer
        server.resume_writing()
        await command
        server._flush()  # what the driver does at the end of a group (EHLO's later lines)
        reply = await client.reply()
        assert reply.code == (221 if verb == "QUIT" else 250)


@pytest.mark.asyncio
async def test_the_reply_after_data_while_writes_are_paused_suspends_delivery() -> None:
    server = SMTP(NoHooks(), hostname="mx.test")
    async with SMTPClient(server) as client:
        await client.command("EHLO me")
        server.pause_writing()
        replying = asyncio.ensure_future(server._push_data_replies("250 OK", server.envelope))
        for _ in range(3):
            await asyncio.sleep(0)
        assert not replying.done()
        server.resume_writing()
        await replying
        assert (await client.reply()).code == 250


@pytest.mark.asyncio
async def test_content_that_keeps_coming_keeps_the_session_alive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The content events taken straight from the core still count as progress: a message
    trickling in for longer than ``timeout`` is received (each line within it)."""
    touches: list[object] = []
    touch = IdleTimer.touch

    def counting_touch(timer: IdleTimer) -> None:
        touches.append(timer)
        touch(timer)

    # Counted, not read off the deadline: uvloop's clock may not move between two lines.
    monkeypatch.setattr(IdleTimer, "touch", counting_touch)
    handler = Recorder()
    server = SMTP(handler, hostname="mx.test", timeout=0.2)
    async with SMTPClient(server) as client:
        await client.command("EHLO me")
        await client.send(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n")
        assert [r.code for r in await client.replies(3)] == [250, 250, 354]
        closed = asyncio.ensure_future(client.wait_closed())
        for number in range(6):
            before = len(touches)
            await client.send(b"line %d\r\n" % number)
            assert len(touches) > before  # the content line touched the timer
            # Not a sleep-to-wait: pacing, cut short if the session were closed.
            await asyncio.wait([closed], timeout=0.08)
            assert not closed.done()
        await client.send(b".\r\n")
        assert (await client.reply()).code == 250
    await closed
    assert handler.envelopes[0].content == b"".join(b"line %d\r\n" % n for n in range(6))
