"""CHUNKING and BINARYMIME (RFC 3030) through the adapter: ``enable_CHUNKING``."""

from __future__ import annotations

from typing import Any

import pytest

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP
from aiosmtpd.testing.transport import SMTPClient

from .util import Recorder, connect, lines

CHUNKING = {"enable_CHUNKING": True}


async def transaction(client: SMTPClient, mail: str = "MAIL FROM:<a@example.com>") -> None:
    assert await lines(client, "EHLO client", mail, "RCPT TO:<b@example.com>") == [
        "250 HELP",
        "250 OK",
        "250 OK",
    ]


async def bdat(client: SMTPClient, content: bytes, last: bool = False) -> str:
    await client.send(b"BDAT %d%s\r\n" % (len(content), b" LAST" if last else b"") + content)
    reply = await client.reply()
    return f"{reply.code} {reply.lines[-1]}"


@pytest.mark.asyncio
async def test_off_by_default_bdat_is_unknown() -> None:
    async with connect() as client:
        ehlo = await client.command("EHLO client")
        assert "CHUNKING" not in ehlo.lines
        assert "BINARYMIME" not in ehlo.lines
        assert await lines(client, "BDAT 10 LAST") == ['500 Error: command "BDAT" not recognized']
        assert "BDAT" not in (await client.command("HELP")).lines[-1]


@pytest.mark.asyncio
async def test_advertised_when_enabled() -> None:
    async with connect(**CHUNKING) as client:
        ehlo = await client.command("EHLO client")
        assert list(ehlo.lines[-3:]) == ["CHUNKING", "BINARYMIME", "HELP"]
        assert "BDAT" in (await client.command("HELP")).lines[-1]
        assert await lines(client, "HELP BDAT") == ["250 Syntax: BDAT <chunk-size> [LAST]"]
    async with connect(decode_data=True, **CHUNKING) as client:
        ehlo = await client.command("EHLO client")
        assert "CHUNKING" in ehlo.lines
        assert "BINARYMIME" not in ehlo.lines


@pytest.mark.asyncio
async def test_chunks_deliver_one_message() -> None:
    handler = Recorder()
    async with connect(handler, **CHUNKING) as client:
        await transaction(client)
        assert await bdat(client, b"Subject: x\r\n\r\n") == "250 14 octets received"
        assert await bdat(client, b".line\r\n\x00\xff") == "250 9 octets received"
        assert await bdat(client, b"") == "250 0 octets received"
        assert await bdat(client, b"end\r\n", last=True) == "250 OK"
        assert await lines(client, "NOOP") == ["250 OK"]
    (envelope,) = handler.envelopes
    assert envelope.content == b"Subject: x\r\n\r\n.line\r\n\x00\xffend\r\n"
    assert envelope.original_content == envelope.content
    assert envelope.mail_from == "a@example.com"
    assert envelope.rcpt_tos == ["b@example.com"]


@pytest.mark.asyncio
async def test_empty_last_chunk_and_pipelining() -> None:
    handler = Recorder()
    async with connect(handler, **CHUNKING) as client:
        await client.send(
            b"EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
            b"BDAT 2\r\nhiBDAT 0 last\r\nQUIT\r\n"
        )
        replies = [await client.reply() for _ in range(6)]
    assert [r.code for r in replies] == [250, 250, 250, 250, 250, 221]
    assert handler.envelopes[0].content == b"hi"


@pytest.mark.asyncio
async def test_decode_data_gives_str() -> None:
    handler = Recorder()
    async with connect(handler, decode_data=True, **CHUNKING) as client:
        await transaction(client)
        assert await bdat(client, b"hello\r\n", last=True) == "250 OK"
    assert handler.envelopes[0].content == "hello\r\n"
    assert handler.envelopes[0].original_content == b"hello\r\n"


@pytest.mark.asyncio
async def test_data_after_bdat_is_refused() -> None:
    handler = Recorder()
    async with connect(handler, **CHUNKING) as client:
        await transaction(client)
        assert await bdat(client, b"abc") == "250 3 octets received"
        assert await lines(client, "DATA") == ["503 Error: DATA not allowed after BDAT"]
        assert await bdat(client, b"def", last=True) == "250 OK"
    assert handler.envelopes[0].content == b"abcdef"


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ([], "503 Error: send HELO first"),
        (["EHLO c"], "503 Error: need MAIL command"),
        (["EHLO c", "MAIL FROM:<a@example.com>"], "503 Error: need RCPT command"),
    ],
)
@pytest.mark.asyncio
async def test_refused_bdat_consumes_its_chunk(setup: list[str], expected: str) -> None:
    async with connect(**CHUNKING) as client:
        await lines(client, *setup)
        # The chunk looks like a command: it must be discarded, not executed.
        assert await bdat(client, b"QUIT\r\n") == expected
        assert await lines(client, "NOOP") == ["250 OK"]


@pytest.mark.asyncio
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_refused_bdat_needs_auth_first() -> None:
    async with connect(**CHUNKING, auth_required=True, auth_require_tls=False) as client:
        await client.command("EHLO c")
        assert await bdat(client, b"QUIT\r\n") == "530 5.7.0 Authentication required"
        assert await lines(client, "NOOP") == ["250 OK"]


@pytest.mark.parametrize(
    "arg",
    ["BDAT", "BDAT ", "BDAT x", "BDAT -1", "BDAT 1 FIRST", "BDAT 1 LAST x", "BDAT " + "9" * 19],
)
@pytest.mark.asyncio
async def test_bad_size_argument(arg: str) -> None:
    async with connect(**CHUNKING) as client:
        await transaction(client)
        assert await lines(client, arg) == ["501 Syntax: BDAT <chunk-size> [LAST]"]


@pytest.mark.parametrize(("second", "ok"), [(9, True), (10, True), (11, False)])
@pytest.mark.asyncio
async def test_size_limit_just_under_at_and_over(second: int, ok: bool) -> None:
    handler = Recorder()
    async with connect(handler, data_size_limit=20, **CHUNKING) as client:
        await transaction(client)
        assert await bdat(client, b"a" * 10) == "250 10 octets received"
        reply = await bdat(client, b"b" * second, last=True)
        if ok:
            assert reply == "250 OK"
            assert handler.envelopes[0].content == b"a" * 10 + b"b" * second
        else:
            assert reply == "552 Error: Too much mail data"
            assert not handler.envelopes
            # The transaction is over; the octets were read, the session goes on.
            assert await lines(client, "RCPT TO:<b@example.com>", "NOOP") == [
                "503 Error: need MAIL command",
                "250 OK",
            ]


@pytest.mark.asyncio
async def test_over_limit_in_one_chunk_reads_everything() -> None:
    async with connect(data_size_limit=100, **CHUNKING) as client:
        await transaction(client)
        assert await bdat(client, b"QUIT\r\n" * 1000, last=True) == "552 Error: Too much mail data"
        assert await lines(client, "NOOP") == ["250 OK"]
        assert client.protocol._chunk_transfer is None


@pytest.mark.asyncio
async def test_rset_drops_the_chunks() -> None:
    async with connect(**CHUNKING) as client:
        await transaction(client)
        assert await bdat(client, b"abc") == "250 3 octets received"
        assert await lines(client, "RSET") == ["250 OK"]
        assert client.protocol._chunk_transfer is None
        assert await bdat(client, b"def", last=True) == "503 Error: need MAIL command"


@pytest.mark.asyncio
async def test_binarymime_requires_bdat() -> None:
    handler = Recorder()
    async with connect(handler, **CHUNKING) as client:
        await transaction(client, "MAIL FROM:<a@example.com> BODY=binarymime")
        assert await lines(client, "DATA") == ["503 Error: BODY=BINARYMIME requires BDAT"]
        assert await bdat(client, b"\x00\x01", last=True) == "250 OK"
        # The next transaction may use DATA again.
        await lines(client, "MAIL FROM:<a@example.com>", "RCPT TO:<b@example.com>")
        assert (await client.command("DATA")).code == 354
    assert handler.envelopes[0].mail_options == ["BODY=BINARYMIME"]


@pytest.mark.asyncio
async def test_binarymime_only_with_chunking() -> None:
    async with connect() as client:
        await client.command("EHLO c")
        assert await lines(client, "MAIL FROM:<a@example.com> BODY=BINARYMIME") == [
            "501 Error: BODY can only be one of 7BIT, 8BITMIME"
        ]
    async with connect(**CHUNKING) as client:
        await client.command("EHLO c")
        assert await lines(client, "MAIL FROM:<a@example.com> BODY=9BIT") == [
            "501 Error: BODY can only be one of 7BIT, 8BITMIME, BINARYMIME"
        ]


@pytest.mark.asyncio
async def test_enhanced_codes_on_bdat_replies() -> None:
    async with connect(NoHooks(), enhanced_status_codes=True, **CHUNKING) as client:
        await lines(client, "EHLO c", "MAIL FROM:<a@example.com>", "RCPT TO:<b@example.com>")
        assert await bdat(client, b"abc") == "250 2.0.0 3 octets received"
        assert await bdat(client, b"", last=True) == "250 2.0.0 OK"
        assert await lines(client, "BDAT x") == ["501 5.5.4 Syntax: BDAT <chunk-size> [LAST]"]


class NoHooks:
    pass


@pytest.mark.asyncio
async def test_lmtp_bdat_answers_per_recipient() -> None:
    handler = Recorder()
    server = LMTP(handler, hostname="mx.test", enable_CHUNKING=True)
    async with SMTPClient(server) as client:
        assert "CHUNKING" in (await client.command("LHLO c")).lines
        await lines(client, "MAIL FROM:<a@example.com>", "RCPT TO:<b@example.com>", "RCPT TO:<c@x>")
        await client.send(b"BDAT 2 LAST\r\nhi")
        assert [r.code for r in [await client.reply(), await client.reply()]] == [250, 250]
    assert handler.envelopes[0].content == b"hi"


@pytest.mark.asyncio
async def test_user_subclass_bdat_is_kept() -> None:
    class Custom(SMTP):
        async def smtp_BDAT(self, arg: Any) -> None:
            await self.push("250 custom")

    async with SMTPClient(Custom(Recorder(), hostname="mx.test")) as client:
        assert await lines(client, "BDAT 1") == ["250 custom"]


@pytest.mark.asyncio
async def test_bdat_refused_by_require_starttls_consumes_its_chunk() -> None:
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    async with connect(tls_context=context, require_starttls=True, **CHUNKING) as client:
        await client.command("EHLO c")
        assert await bdat(client, b"NOOP\r\n") == "530 Must issue a STARTTLS command first"
        assert await lines(client, "NOOP") == ["250 OK"]
        assert await bdat(client, b"NOOP\r\n") == "530 Must issue a STARTTLS command first"
        await client.send(b"BDAT x\r\n")
        assert (await client.reply()).code == 530


@pytest.mark.asyncio
async def test_binarymime_recorded_when_a_mail_hook_accepts() -> None:
    class MailHook(Recorder):
        async def handle_MAIL(
            self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
        ) -> str:
            envelope.mail_from = address
            return "250 OK"

    async with connect(MailHook(), **CHUNKING) as client:
        await transaction(client, "MAIL FROM:<a@example.com> BODY=BINARYMIME")
        assert await lines(client, "DATA") == ["503 Error: BODY=BINARYMIME requires BDAT"]
