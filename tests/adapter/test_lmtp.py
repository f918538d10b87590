"""LMTP (RFC 2033): LHLO, HELO/EHLO refused, one reply per recipient (DECISIONS row 6)."""

from __future__ import annotations

from typing import Any

import pytest

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from .util import Recorder, connect


async def _transaction(client: Any, recipients: int) -> None:
    assert (await client.command("LHLO c")).code == 250
    assert (await client.command("MAIL FROM:<a@b.c>")).code == 250
    for i in range(recipients):
        assert (await client.command(f"RCPT TO:<r{i}@d.e>")).code == 250
    assert (await client.command("DATA")).code == 354
    await client.send(b"hello\r\n.\r\n")


@pytest.mark.asyncio
async def test_lhlo_lines_and_helo_refused() -> None:
    async with connect(cls=LMTP) as client:
        for verb in ("HELO", "EHLO"):
            reply = await client.command(f"{verb} c")
            assert (reply.code, reply.text) == (500, f'Error: command "{verb}" not recognized')
        assert (await client.command("LHLO")).text == "Syntax: LHLO hostname"
        reply = await client.command("LHLO c")
        assert reply.lines == ("mx.test", "SIZE 33554432", "8BITMIME", "PIPELINING", "HELP")
        reply = await client.command("HELP")
        assert reply.text == "Supported commands: AUTH DATA HELP LHLO MAIL NOOP QUIT RCPT RSET VRFY"


@pytest.mark.asyncio
async def test_one_reply_per_recipient_from_a_string() -> None:
    handler = Recorder()
    async with connect(handler, cls=LMTP) as client:
        await _transaction(client, 3)
        replies = [await client.reply() for _ in range(3)]
        assert [r.code for r in replies] == [250, 250, 250]
        assert (await client.command("NOOP")).code == 250
    assert len(handler.envelopes) == 1


@pytest.mark.asyncio
async def test_list_of_replies_in_rcpt_order() -> None:
    class PerRecipient:
        async def handle_DATA(
            self, server: SMTP, session: Session, envelope: Envelope
        ) -> list[str]:
            return [
                f"250 delivered to {r}" if i % 2 == 0 else f"550 no such user {r}"
                for i, r in enumerate(envelope.rcpt_tos)
            ]

    async with connect(PerRecipient(), cls=LMTP) as client:
        await _transaction(client, 3)
        replies = [await client.reply() for _ in range(3)]
        assert [f"{r.code} {r.text}" for r in replies] == [
            "250 delivered to r0@d.e",
            "550 no such user r1@d.e",
            "250 delivered to r2@d.e",
        ]


@pytest.mark.asyncio
async def test_short_list_is_padded_with_temporary_errors() -> None:
    class Short:
        async def handle_DATA(self, *args: Any) -> list[str]:
            return ["250 only one"]

    async with connect(Short(), cls=LMTP) as client:
        await _transaction(client, 2)
        replies = [await client.reply() for _ in range(2)]
        assert [r.code for r in replies] == [250, 451]


@pytest.mark.asyncio
async def test_data_error_is_sent_per_recipient() -> None:
    handler = Recorder()
    async with connect(handler, cls=LMTP, data_size_limit=3) as client:
        await _transaction(client, 2)
        replies = [await client.reply() for _ in range(2)]
        assert [(r.code, r.text) for r in replies] == [(552, "Error: Too much mail data")] * 2
    assert handler.envelopes == []
