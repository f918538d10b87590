"""Hostile and broken clients: every one gets a clear reply, bounded memory, no delivery.

Also pipelining (100 transactions in one write -> 100 replies in order, one write) and
the SMTP-smuggling table (each smuggling sequence followed by a smuggled transaction:
the handler sees ONE message and the smuggled MAIL is never executed).
"""

from __future__ import annotations

import asyncio

import pytest

from aiosmtpd.smtp import SMTP, Envelope, Session
from aiosmtpd.testing.transport import MemoryTransport, SMTPClient

from .util import Recorder, connect

MIB = 1024 * 1024


async def _start_data(client: SMTPClient) -> None:
    for command in ("EHLO c", "MAIL FROM:<a@b.c>", "RCPT TO:<d@e.f>", "DATA"):
        assert (await client.command(command)).code in (250, 354)


@pytest.mark.asyncio
async def test_ten_mib_command_line() -> None:
    async with connect() as client:
        line = b"NOOP " + b"x" * (10 * MIB) + b"\r\n"
        for start in range(0, len(line), 256 * 1024):
            await client.send(line[start : start + 256 * 1024])
        reply = await client.reply()
        assert (reply.code, reply.text) == (500, "Command line too long")
        assert client.protocol._conn.buffered_size < 64 * 1024  # type: ignore[attr-defined]
        assert (await client.command("NOOP")).code == 250
        assert client.pending() == b""


@pytest.mark.asyncio
async def test_one_mib_binary_garbage() -> None:
    garbage = bytes(range(256)) * 4096
    async with connect() as client:
        await client.send(garbage + b"\r\nNOOP\r\n")
        replies = []
        try:
            while not replies or replies[-1].code != 250:
                replies.append(await client.reply())
        except ConnectionResetError:
            # The garbage held at least BOGUS_LIMIT unknown "commands": goodbye.
            assert replies[-1].code == 502
        assert all(r.code >= 500 for r in replies[:-1])
        assert client.protocol._conn.buffered_size < 64 * 1024  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_nul_bytes() -> None:
    async with connect() as client:
        reply = await client.command(b"NO\x00OP")
        assert (reply.code, reply.text) == (500, "Error: bad syntax")
        reply = await client.command(b"HELO \x00x")
        assert reply.code in (250, 500, 501)
        assert (await client.command("NOOP")).code == 250


@pytest.mark.asyncio
async def test_non_ascii_without_smtputf8() -> None:
    async with connect() as client:
        await client.command("EHLO c")
        reply = await client.command("MAIL FROM:<jörg@bücher.de>".encode())
        assert (reply.code, reply.text) == (500, "Error: strict ASCII mode")
        reply = await client.command(b"MAIL FROM:<\xff@b.c>")
        assert (reply.code, reply.text) == (500, "Error: strict ASCII mode")


@pytest.mark.asyncio
async def test_forty_mib_data_over_one_mib_limit() -> None:
    handler = Recorder()
    async with connect(handler, data_size_limit=MIB) as client:
        await _start_data(client)
        block = (b"x" * 998 + b"\r\n") * 256
        for _ in range(40 * MIB // len(block)):
            await client.send(block)
            assert client.protocol._conn.buffered_size < 2 * MIB  # type: ignore[attr-defined]
        await client.send(b".\r\n")
        reply = await client.reply()
        assert (reply.code, reply.text) == (552, "Error: Too much mail data")
        assert handler.envelopes == []
        # The transaction is over; a new one works.
        assert (await client.command("MAIL FROM:<a@b.c>")).code == 250


@pytest.mark.asyncio
@pytest.mark.parametrize(("size", "code"), [(999, 250), (1000, 250), (1001, 552), (1002, 552)])
async def test_data_size_limit_edges(size: int, code: int) -> None:
    """``size`` octets of content (CRLFs included) against data_size_limit=1000."""
    handler = Recorder()
    async with connect(handler, data_size_limit=1000) as client:
        await _start_data(client)
        line = b"y" * 98 + b"\r\n"
        body = line * 9 + b"w" * (size - 900 - 2) + b"\r\n"
        assert len(body) == size
        await client.send(body + b".\r\n")
        reply = await client.reply()
        assert reply.code == code
        if code == 250:
            assert handler.envelopes[0].content == body
        else:
            assert reply.text == "Error: Too much mail data"
            assert handler.envelopes == []


@pytest.mark.asyncio
@pytest.mark.parametrize(("length", "code"), [(999, 250), (1000, 500), (1001, 500)])
async def test_data_line_length_edges(length: int, code: int) -> None:
    """A DATA line of ``length`` characters (+CRLF); 1001 octets incl. CRLF is the limit."""
    handler = Recorder()
    async with connect(handler) as client:
        await _start_data(client)
        await client.send(b"z" * length + b"\r\n.\r\n")
        reply = await client.reply()
        assert reply.code == code
        if code == 500:
            assert reply.text == "Line too long (see RFC5321 4.5.3.1.6)"
            assert handler.envelopes == []
        else:
            assert handler.envelopes[0].content == b"z" * length + b"\r\n"


@pytest.mark.asyncio
async def test_byte_a_second_client_is_cut_by_timeout() -> None:
    """A client trickling an endless command line is cut: progress is complete commands."""
    async with connect(timeout=0.2) as client:
        closed = asyncio.ensure_future(client.wait_closed())
        sent = 0
        while not closed.done():
            try:
                await client.send(b"x")
            except ConnectionResetError:
                break  # the timer fired between the check above and this byte
            sent += 1
            # Not a sleep-to-wait: the next byte goes when the previous one was handled or
            # the timer fired, whichever comes first.
            await asyncio.wait([closed], timeout=0.02)
        assert sent > 3
        await closed
        reply = await client.reply()
        assert (reply.code, reply.text) == (421, "4.4.2 mx.test Error: timeout exceeded")


@pytest.mark.asyncio
async def test_idle_timeout_sends_421() -> None:
    async with connect(timeout=0.05) as client:
        await client.wait_closed()
        reply = await client.reply()
        assert (reply.code, reply.text) == (421, "4.4.2 mx.test Error: timeout exceeded")


@pytest.mark.asyncio
async def test_timeout_not_during_slow_hook() -> None:
    gate = asyncio.Event()

    class Slow:
        async def handle_NOOP(
            self, server: SMTP, session: Session, envelope: Envelope, arg: str
        ) -> str:
            await gate.wait()
            return "250 slow OK"

    async with connect(Slow(), timeout=0.05) as client:
        await client.send(b"NOOP\r\n")
        loop = asyncio.get_running_loop()
        loop.call_later(0.2, gate.set)
        reply = await client.reply()
        assert reply.text == "slow OK"


@pytest.mark.asyncio
async def test_reset_mid_data_delivers_nothing() -> None:
    handler = Recorder()
    async with connect(handler) as client:
        await _start_data(client)
        await client.send(b"Subject: half\r\n\r\nsome content\r\n")
        client.transport.abort()
        await client.wait_closed()
        task = client.protocol._handler_coroutine  # type: ignore[attr-defined]
        await asyncio.wait([task])
    assert handler.envelopes == []


@pytest.mark.asyncio
async def test_eof_mid_data_delivers_nothing() -> None:
    handler = Recorder()
    async with connect(handler) as client:
        await _start_data(client)
        await client.send(b"Subject: half\r\n\r\nsome content\r\n")
        await client.send_eof()
        await client.wait_closed()
    assert handler.envelopes == []


@pytest.mark.asyncio
async def test_hundred_unknown_commands() -> None:
    async with connect() as client:
        await client.send(b"BOGUS\r\n" * 100)
        replies = [await client.reply() for _ in range(5)]
        assert [r.code for r in replies] == [500, 500, 500, 500, 502]
        await client.wait_closed()
        assert client.pending() == b""


@pytest.mark.asyncio
async def test_hundred_pipelined_transactions_one_write() -> None:
    handler = Recorder()
    async with connect(handler) as client:
        assert (await client.command("EHLO c")).code == 250
        group = b"".join(
            b"MAIL FROM:<s%d@a.b>\r\nRCPT TO:<r%d@c.d>\r\nDATA\r\nmsg %d\r\n.\r\n" % (i, i, i)
            for i in range(100)
        )
        writes_before = len(client.transport.writes)
        await client.send(group)
        replies = [await client.reply() for _ in range(400)]
        assert [r.code for r in replies] == [250, 250, 354, 250] * 100
        assert len(client.transport.writes) - writes_before == 1
    assert [e.mail_from for e in handler.envelopes] == [f"s{i}@a.b" for i in range(100)]
    assert [e.content for e in handler.envelopes] == [b"msg %d\r\n" % i for i in range(100)]


SMUGGLING = [
    b"\n.\n",
    b"\n.\r\n",
    b"\r.\r",
    b"\r.\n",
    b"\r\n.\n",
    b"\n.\r",
    b"\r\n.\r",
    b"\r\n\x00.\r\n",
    b"\r\n.\x00\r\n",
]


@pytest.mark.asyncio
@pytest.mark.parametrize("sequence", SMUGGLING, ids=[repr(s) for s in SMUGGLING])
async def test_smuggling(sequence: bytes) -> None:
    handler = Recorder()
    mails: list[str] = []

    class Watch(Recorder):
        async def handle_MAIL(
            self,
            server: SMTP,
            session: Session,
            envelope: Envelope,
            address: str,
            options: list[str],
        ) -> str:
            mails.append(address)
            envelope.mail_from = address
            return "250 OK"

    handler = Watch()
    async with connect(handler) as client:
        await _start_data(client)
        smuggled = b"MAIL FROM:<evil@x.y>\r\nRCPT TO:<victim@c.d>\r\nDATA\r\nSmuggled\r\n"
        await client.send(b"Subject: hi\r\n\r\nbody" + sequence + smuggled + b"\r\n.\r\n")
        reply = await client.reply()
        assert reply.code == 250
        assert (await client.command("QUIT")).code == 221
    assert len(handler.envelopes) == 1
    assert mails == ["a@b.c"]
    assert b"evil@x.y" in handler.envelopes[0].content  # type: ignore[operator]


@pytest.mark.asyncio
async def test_pipelined_after_starttls_is_not_executed() -> None:
    """No STARTTLS support without tls_context: 454, and the rest is read as commands."""
    async with connect() as client:
        await client.command("EHLO c")
        await client.send(b"STARTTLS\r\nNOOP\r\n")
        assert (await client.reply()).code == 454
        assert (await client.reply()).code == 250


@pytest.mark.asyncio
async def test_read_backpressure_pauses_and_resumes() -> None:
    gate = asyncio.Event()

    class Slow:
        async def handle_NOOP(
            self, server: SMTP, session: Session, envelope: Envelope, arg: str
        ) -> str:
            await gate.wait()
            return "250 OK"

    transport = MemoryTransport()
    async with connect(Slow(), transport=transport) as client:
        await client.send(b"NOOP\r\n")
        await client.send(b"RSET\r\n" * (300 * 1024))
        assert transport.reading_paused
        gate.set()
        for _ in range(5):
            assert (await client.reply()).code == 250
        assert not transport.reading_paused


@pytest.mark.asyncio
async def test_write_backpressure_stops_pulling_events() -> None:
    async with connect() as client:
        client.protocol.pause_writing()
        await client.send(b"NOOP\r\n" * 10)
        await asyncio.sleep(0)
        # Paused: the first reply group is flushed, then nothing more is pulled.
        assert client.transport.output.count(b"250 OK") <= 1
        client.protocol.resume_writing()
        replies = [await client.reply() for _ in range(10)]
        assert all(r.code == 250 for r in replies)
