"""BDAT framing (RFC 3030 §2): the octets of a chunk are never read as commands.

A BDAT whose size cannot be parsed announces a chunk of unknown length: the stream cannot
be resynchronised, so the server answers and closes (go-smtp: ``501 Malformed size`` and
close). Before this, the chunk that followed a ``501`` was executed line by line.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import pytest

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP
from aiosmtpd.testing.transport import SMTPClient

from .util import Recorder, connect, lines

CHUNKING = {"enable_CHUNKING": True}
SYNTAX = "501 Syntax: BDAT <chunk-size> [LAST]"
#: A chunk that would start a second transaction and deliver it if read as commands.
SMUGGLED = b"RSET\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<b@example.com>\r\nDATA\r\nevil\r\n.\r\n"


async def transaction(client: SMTPClient) -> None:
    assert await lines(
        client, "EHLO client", "MAIL FROM:<a@example.com>", "RCPT TO:<b@example.com>"
    ) == ["250 HELP", "250 OK", "250 OK"]


async def assert_answered_then_closed(client: SMTPClient, expected: str) -> None:
    reply = await client.reply()
    assert f"{reply.code} {reply.lines[-1]}" == expected
    try:
        # A safety net only (the close follows the reply at once): fail, do not hang.
        async with asyncio.timeout(5):
            await client.wait_closed()
    except TimeoutError:
        pytest.fail(f"still open; then answered {client.pending()!r}")
    assert client.pending() == b"", "nothing may be answered after the close"


@pytest.mark.parametrize(
    "line",
    [
        b"BDAT",
        b"BDAT ",
        b"BDAT x",
        b"BDAT -5",
        b"BDAT +5",
        b"BDAT 0x10",
        b"BDAT 5.0",
        b"BDAT 5\tLAST",
        b"BDAT 5 FIRST",
        b"BDAT 5 LAST x",
        b"BDAT " + b"9" * 19,
    ],
)
@pytest.mark.asyncio
async def test_unparsable_size_closes_before_the_chunk_is_read(line: bytes) -> None:
    handler = Recorder()
    async with connect(handler, **CHUNKING) as client:
        await transaction(client)
        await client.send(line + b"\r\n" + SMUGGLED)
        await assert_answered_then_closed(client, SYNTAX)
    assert handler.envelopes == []


@pytest.mark.parametrize(("digits", "parsed"), [(17, True), (18, True), (19, False)])
@pytest.mark.asyncio
async def test_size_digits_just_under_at_and_over_the_cap(digits: int, parsed: bool) -> None:
    """Sizes are parsed up to 18 digits (cheap whatever the client sends); a 19-digit
    size is unparsable even with leading zeros."""
    handler = Recorder()
    async with connect(handler, **CHUNKING) as client:
        await transaction(client)
        await client.send(b"BDAT " + b"3".rjust(digits, b"0") + b" LAST\r\nabcNOOP\r\n")
        if parsed:
            assert [(await client.reply()).code, (await client.reply()).code] == [250, 250]
        else:
            await assert_answered_then_closed(client, SYNTAX)
    assert [e.content for e in handler.envelopes] == ([b"abc"] if parsed else [])


@pytest.mark.asyncio
async def test_unparsable_size_mid_message_delivers_nothing() -> None:
    handler = Recorder()
    async with connect(handler, **CHUNKING) as client:
        await transaction(client)
        await client.send(b"BDAT 3\r\nabc")
        assert (await client.reply()).code == 250
        await client.send(b"BDAT three LAST\r\nabc")
        await assert_answered_then_closed(client, SYNTAX)
    assert handler.envelopes == []


@pytest.mark.asyncio
async def test_unparsable_size_refused_by_a_gate_also_closes() -> None:
    """require_starttls answers before smtp_BDAT runs: the chunk is still unframed."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    async with connect(tls_context=context, require_starttls=True, **CHUNKING) as client:
        await client.command("EHLO c")
        await client.send(b"BDAT x\r\nNOOP\r\nNOOP\r\n")
        await assert_answered_then_closed(client, "530 Must issue a STARTTLS command first")


@pytest.mark.asyncio
async def test_parsable_size_refused_by_a_gate_keeps_the_connection() -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    async with connect(tls_context=context, require_starttls=True, **CHUNKING) as client:
        await client.command("EHLO c")
        await client.send(b"BDAT 6\r\nQUIT\r\nNOOP\r\n")
        assert [r.code for r in await client.replies(2)] == [530, 250]


@pytest.mark.asyncio
async def test_lmtp_unparsable_size_closes() -> None:
    handler = Recorder()
    async with SMTPClient(LMTP(handler, hostname="mx.test", **CHUNKING)) as client:
        await lines(client, "LHLO c", "MAIL FROM:<a@example.com>", "RCPT TO:<b@example.com>")
        await client.send(b"BDAT 1O LAST\r\n" + SMUGGLED)
        await assert_answered_then_closed(client, SYNTAX)
    assert handler.envelopes == []


@pytest.mark.asyncio
async def test_subclass_bdat_with_chunking_enabled_reads_its_own_input() -> None:
    """A subclass's smtp_BDAT is not second-guessed: nothing after it is discarded."""

    class Custom(SMTP):
        async def smtp_BDAT(self, arg: Any) -> None:
            await self.push("250 custom")

    async with SMTPClient(Custom(Recorder(), hostname="mx.test", **CHUNKING)) as client:
        await client.send(b"BDAT 5\r\nNOOP\r\n")
        assert [f"{r.code} {r.text}" for r in await client.replies(2)] == [
            "250 custom",
            "250 OK",
        ]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"BDAT 5\xe9", "500 Error: strict ASCII mode"),
        (b"Bdat 5\xff LAST", "500 Error: strict ASCII mode"),
        (b"BDAT " + b"0" * 600 + b"5", "500 Command line too long"),
        (b"bdat " + b"0" * 600 + b"5 LAST", "500 Command line too long"),
    ],
)
@pytest.mark.asyncio
async def test_bdat_line_refused_by_the_core_closes(line: bytes, expected: str) -> None:
    """The core refuses the line before any BDAT code sees it: the chunk is just as
    unframed, so the core asks for the close itself."""
    handler = Recorder()
    async with connect(handler, **CHUNKING) as client:
        await transaction(client)
        await client.send(line + b"\r\n" + SMUGGLED)
        await assert_answered_then_closed(client, expected)
    assert handler.envelopes == []


@pytest.mark.asyncio
async def test_overlong_bdat_line_closes_before_its_end_arrives() -> None:
    async with connect(**CHUNKING) as client:
        await transaction(client)
        await client.send(b"BDAT " + b"0" * 2000)
        await assert_answered_then_closed(client, "500 Command line too long")


@pytest.mark.asyncio
async def test_other_overlong_lines_keep_the_connection() -> None:
    async with connect(**CHUNKING) as client:
        await transaction(client)
        await client.send(b"NOOP " + b"0" * 600 + b"\r\nNOOP\r\n")
        assert [f"{r.code} {r.text}" for r in await client.replies(2)] == [
            "500 Command line too long",
            "250 OK",
        ]
