"""The opt-in ESMTP extensions: ENHANCEDSTATUSCODES, DSN and REQUIRETLS (docs/extensions.rst)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from aiosmtpd.smtp import SMTP, Envelope, Session
from aiosmtpd.testing.transport import MemoryTransport, SMTPClient

from .util import connect, lines

ENHANCED = re.compile(r"^[245]\.\d{1,3}\.\d{1,3} ")


class NoHooks:
    """A handler without hooks: every reply of the session is the library's own."""


class OptionsRecorder:
    """Records the options MAIL and RCPT hooks receive, and accepts like the library."""

    def __init__(self) -> None:
        self.mail_options: list[list[str]] = []
        self.rcpt_options: list[list[str]] = []
        self.envelopes: list[Envelope] = []

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.mail_options.append(list(options))
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.rcpt_options.append(list(options))
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Delivered"


# --- ENHANCEDSTATUSCODES ------------------------------------------------------------------

#: (command, or bytes sent raw after a 354) covering every library reply path of a session.
SESSION: list[str | bytes] = [
    "NOOP",
    "HELO",
    "EHLO",
    "HELP",
    "HELP FOO",
    "VRFY",
    "VRFY <a@example.com>",
    "MAIL",
    "RCPT TO:<b@example.com>",
    "DATA",
    "EXPN x",
    "BOGUS",
    "MAIL FROM:<a@example.com> FOO=1",
    "MAIL FROM:<a@example.com> BODY=9BIT",
    "MAIL FROM:<a@example.com> SIZE=999999999999",
    "MAIL FROM:<a@example.com>",
    "MAIL FROM:<a@example.com>",
    "RCPT TO:<b@example.com> X=Y",
    "RCPT TO:<@bad",
    "RCPT TO:<b@example.com>",
    "DATA x",
    "DATA",
    b"Subject: hi\r\n\r\nbody\r\n.\r\n",
    "RSET x",
    "RSET",
    "STARTTLS",
    "AUTH PLAIN",
    "QUIT x",
    "QUIT",
]


async def run_session(**kwargs: Any) -> list[str]:
    """Every reply of SESSION (after ``EHLO client``) as ``"CODE text"``."""
    out = []
    async with connect(NoHooks(), **kwargs) as client:
        await client.command("EHLO client")
        for step in SESSION:
            if isinstance(step, bytes):
                await client.send(step)
                reply = await client.reply()
            else:
                reply = await client.command(step)
            assert len(reply.lines) == 1
            out.append(f"{reply.code} {reply.lines[0]}")
    return out


@pytest.mark.asyncio
async def test_enhanced_status_codes_on_every_library_reply() -> None:
    on = await run_session(enhanced_status_codes=True)
    for line in on:
        code, text = line.split(" ", 1)
        if code == "354":  # RFC 2034 §3: only 2xx, 4xx and 5xx replies carry a code
            assert not ENHANCED.match(text)
            continue
        assert ENHANCED.match(text), line
        assert text[0] == code[0], line  # the class digit agrees with the reply code


@pytest.mark.asyncio
async def test_enhanced_status_codes_off_keeps_14_texts() -> None:
    off = await run_session()
    on = await run_session(enhanced_status_codes=True)
    for plain, enhanced in zip(off, on, strict=True):
        code, text = enhanced.split(" ", 1)
        # Replies 1.4 already sent with a code keep it; the others lose exactly the code.
        assert plain in (enhanced, f"{code} {ENHANCED.sub('', text)}")
    assert off[0] == "250 OK"
    assert off[1] == "501 Syntax: HELO hostname"
    assert off[11] == '500 Error: command "BOGUS" not recognized'
    assert off[16] == "503 Error: nested MAIL command"
    assert off[-1] == "221 Bye"
    assert on[0] == "250 2.0.0 OK"
    assert on[16] == "503 5.5.1 Error: nested MAIL command"
    assert on[-1] == "221 2.0.0 Bye"


@pytest.mark.asyncio
async def test_enhanced_status_codes_ehlo_and_greeting() -> None:
    async with connect(NoHooks(), enhanced_status_codes=True) as client:
        assert client.greeting is not None
        assert not ENHANCED.match(client.greeting.lines[0])
        ehlo = await client.command("EHLO client")
        assert "ENHANCEDSTATUSCODES" in ehlo.lines
        assert ehlo.lines[0] == "mx.test"  # RFC 2034 §3: EHLO replies carry no code
        assert ehlo.lines[-1] == "HELP"
    async with connect(NoHooks()) as client:
        assert "ENHANCEDSTATUSCODES" not in (await client.command("EHLO client")).lines


@pytest.mark.asyncio
async def test_enhanced_status_codes_leave_hook_replies_alone() -> None:
    handler = OptionsRecorder()
    async with connect(handler, enhanced_status_codes=True) as client:
        assert await lines(
            client,
            "EHLO client",
            "MAIL FROM:<a@example.com>",
            "RCPT TO:<b@example.com>",
            "DATA",
        ) == ["250 HELP", "250 OK", "250 OK", "354 End data with <CR><LF>.<CR><LF>"]
        await client.send(b"x\r\n.\r\n")
        assert (await client.reply()).lines == ("Delivered",)


@pytest.mark.asyncio
async def test_enhanced_status_codes_on_timeout() -> None:
    async with connect(NoHooks(), enhanced_status_codes=True, timeout=0.01) as client:
        reply = await client.reply()
        assert (reply.code, reply.lines) == (421, ("4.4.2 mx.test Error: timeout exceeded",))


# --- DSN ------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_dsn_advertised_only_when_enabled() -> None:
    async with connect(NoHooks(), enable_DSN=True) as client:
        ehlo = await client.command("EHLO client")
        assert list(ehlo.lines[1:]) == ["SIZE 33554432", "8BITMIME", "PIPELINING", "DSN", "HELP"]
    async with connect(NoHooks()) as client:
        assert "DSN" not in (await client.command("EHLO client")).lines


@pytest.mark.asyncio
async def test_dsn_parameters_reach_hooks_and_envelope() -> None:
    handler = OptionsRecorder()
    async with connect(handler, enable_DSN=True) as client:
        assert await lines(
            client,
            "EHLO client",
            "MAIL FROM:<a@example.com> RET=hdrs ENVID=Ab+2Bc SIZE=10",
            "RCPT TO:<b@example.com> NOTIFY=success,Delay ORCPT=rfc822;B+40Example.COM",
            "RCPT TO:<c@example.com> NOTIFY=never",
            "DATA",
        ) == [
            "250 HELP",
            "250 OK",
            "250 OK",
            "250 OK",
            "354 End data with <CR><LF>.<CR><LF>",
        ]
        await client.send(b"x\r\n.\r\n")
        assert (await client.reply()).code == 250
    assert handler.mail_options == [["RET=HDRS", "ENVID=Ab+c", "SIZE=10"]]
    assert handler.rcpt_options == [
        ["NOTIFY=SUCCESS,DELAY", "ORCPT=rfc822;B@Example.COM"],
        ["NOTIFY=NEVER"],
    ]
    envelope = handler.envelopes[0]
    assert envelope.rcpt_options == [
        "NOTIFY=SUCCESS,DELAY",
        "ORCPT=rfc822;B@Example.COM",
        "NOTIFY=NEVER",
    ]


@pytest.mark.asyncio
async def test_dsn_parameters_without_hooks_are_kept_on_the_envelope() -> None:
    async with connect(enable_DSN=True) as client:
        await client.command("EHLO client")
        assert (await client.command("MAIL FROM:<> RET=FULL")).code == 250
        assert (
            await client.command("RCPT TO:<b@example.com> ORCPT=rfc822;b@example.com")
        ).code == 250
        assert client.protocol.envelope.mail_options == ["RET=FULL"]
        assert client.protocol.envelope.rcpt_options == ["ORCPT=rfc822;b@example.com"]


ENVID_100 = "e" * 100
ORCPT_500 = "rfc822;" + "o" * 493


@pytest.mark.parametrize(
    ("mail_params", "expected"),
    [
        ("RET=FULL", "250 OK"),
        ("RET=HEADERS", "501 Error: RET can only be one of FULL, HDRS"),
        ("RET", "501 Error: RET can only be one of FULL, HDRS"),
        ("RET=FULL RET=HDRS", "501 Error: duplicate RET parameter"),
        (f"ENVID={ENVID_100}", "250 OK"),
        (f"ENVID={ENVID_100}e", "501 Error: ENVID must be xtext of at most 100 characters"),
        ("ENVID=a+2b", "501 Error: ENVID must be xtext of at most 100 characters"),
        ("ENVID=a+", "501 Error: ENVID must be xtext of at most 100 characters"),
        ("ENVID", "501 Error: ENVID must be xtext of at most 100 characters"),
        ("ENVID=a ENVID=b", "501 Error: duplicate ENVID parameter"),
        ("NOTIFY=NEVER", "555 MAIL FROM parameters not recognized or not implemented"),
        ("REQUIRETLS", "555 MAIL FROM parameters not recognized or not implemented"),
    ],
)
@pytest.mark.asyncio
async def test_dsn_mail_parameter_validation(mail_params: str, expected: str) -> None:
    async with connect(NoHooks(), enable_DSN=True) as client:
        await client.command("EHLO client")
        assert await lines(client, f"MAIL FROM:<a@example.com> {mail_params}") == [expected]


@pytest.mark.parametrize(
    ("rcpt_params", "expected"),
    [
        ("NOTIFY=FAILURE", "250 OK"),
        ("NOTIFY=SUCCESS,FAILURE,DELAY", "250 OK"),
        (
            "NOTIFY=NEVER,SUCCESS",
            "501 Error: NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY",
        ),
        (
            "NOTIFY=SUCCESS,SUCCESS",
            "501 Error: NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY",
        ),
        (
            "NOTIFY=SOMETIMES",
            "501 Error: NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY",
        ),
        ("NOTIFY=SUCCESS,", "501 Error: NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY"),
        ("NOTIFY", "501 Error: NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY"),
        ("NOTIFY=DELAY NOTIFY=DELAY", "501 Error: duplicate NOTIFY parameter"),
        (f"ORCPT={ORCPT_500}", "250 OK"),
        (
            f"ORCPT={ORCPT_500}o",
            "501 Error: ORCPT must be addr-type;xtext of at most 500 characters",
        ),
        ("ORCPT=rfc822", "501 Error: ORCPT must be addr-type;xtext of at most 500 characters"),
        ("ORCPT=rfc822;", "501 Error: ORCPT must be addr-type;xtext of at most 500 characters"),
        ("ORCPT=;a@b", "501 Error: ORCPT must be addr-type;xtext of at most 500 characters"),
        ("ORCPT=rfc822;a+zz", "501 Error: ORCPT must be addr-type;xtext of at most 500 characters"),
        ("ORCPT=rfc822;a ORCPT=rfc822;b", "501 Error: duplicate ORCPT parameter"),
        ("RET=FULL", "555 RCPT TO parameters not recognized or not implemented"),
    ],
)
@pytest.mark.asyncio
async def test_dsn_rcpt_parameter_validation(rcpt_params: str, expected: str) -> None:
    async with connect(NoHooks(), enable_DSN=True) as client:
        await client.command("EHLO client")
        await client.command("MAIL FROM:<a@example.com>")
        assert await lines(client, f"RCPT TO:<b@example.com> {rcpt_params}") == [expected]


@pytest.mark.asyncio
async def test_dsn_bad_value_enhanced_code() -> None:
    async with connect(NoHooks(), enable_DSN=True, enhanced_status_codes=True) as client:
        await client.command("EHLO client")
        reply = await client.command("MAIL FROM:<a@example.com> RET=NO")
        assert (reply.code, reply.lines) == (
            501,
            ("5.5.4 Error: RET can only be one of FULL, HDRS",),
        )


@pytest.mark.parametrize(
    "command",
    [
        "MAIL FROM:<a@example.com> RET=FULL",
        "MAIL FROM:<a@example.com> ENVID=x",
        "RCPT TO:<b@example.com> NOTIFY=NEVER",
        "RCPT TO:<b@example.com> ORCPT=rfc822;b@example.com",
    ],
)
@pytest.mark.asyncio
async def test_dsn_parameters_refused_when_disabled(command: str) -> None:
    async with connect(NoHooks()) as client:
        await client.command("EHLO client")
        if command.startswith("RCPT"):
            await client.command("MAIL FROM:<a@example.com>")
        reply = await client.command(command)
        assert reply.code == 555


def _longest_rcpt() -> str:
    return f"RCPT TO:<{'r' * 60}@example.com> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT={ORCPT_500}"


@pytest.mark.asyncio
async def test_dsn_widens_the_rcpt_and_mail_line_limits() -> None:
    mail = f"MAIL FROM:<{'m' * 64}@example.com> RET=HDRS ENVID={ENVID_100} SIZE=100"
    async with connect(NoHooks(), enable_DSN=True) as client:
        await client.command("EHLO client")
        assert (await client.command(mail)).code == 250
        assert (await client.command(_longest_rcpt())).code == 250
        assert len(_longest_rcpt()) + 2 > 512
    async with connect(NoHooks()) as client:
        await client.command("EHLO client")
        await client.command("MAIL FROM:<a@example.com>")
        assert await lines(client, _longest_rcpt()) == ["500 Command line too long"]
    assert client.protocol.command_size_limits["RCPT"] == 512


@pytest.mark.asyncio
async def test_dsn_rcpt_limit_just_over() -> None:
    async with connect(NoHooks(), enable_DSN=True) as client:
        await client.command("EHLO client")
        await client.command("MAIL FROM:<a@example.com>")
        limit = client.protocol.command_size_limits["RCPT"]
        assert limit == 512 + 36 + 500
        head = "RCPT TO:<b@example.com> ORCPT=rfc822;"
        at_limit = head + "x" * (limit - 2 - len(head))
        reply = await client.command(at_limit)
        assert reply.code == 501  # fits the line, but the ORCPT value is over 500
        assert await lines(client, at_limit + "x") == ["500 Command line too long"]


# --- REQUIRETLS -------------------------------------------------------------------------------


def tls_transport() -> MemoryTransport:
    return MemoryTransport(extra={"ssl_object": object(), "cipher": ("C", "TLSv1.3", 256)})


@pytest.mark.asyncio
async def test_requiretls_offered_and_accepted_only_under_tls() -> None:
    handler = OptionsRecorder()
    async with connect(handler, enable_REQUIRETLS=True, transport=tls_transport()) as client:
        ehlo = await client.command("EHLO client")
        assert list(ehlo.lines[-3:]) == ["REQUIRETLS", "AUTH LOGIN PLAIN", "HELP"]
        assert await lines(client, "MAIL FROM:<a@example.com> REQUIRETLS") == ["250 OK"]
    assert handler.mail_options == [["REQUIRETLS"]]


@pytest.mark.asyncio
async def test_requiretls_refused_in_plaintext() -> None:
    async with connect(NoHooks(), enable_REQUIRETLS=True) as client:
        assert "REQUIRETLS" not in (await client.command("EHLO client")).lines
        assert await lines(client, "MAIL FROM:<a@example.com> REQUIRETLS") == [
            "555 MAIL FROM parameters not recognized or not implemented"
        ]


@pytest.mark.asyncio
async def test_requiretls_disabled_under_tls() -> None:
    async with connect(NoHooks(), transport=tls_transport()) as client:
        assert "REQUIRETLS" not in (await client.command("EHLO client")).lines
        reply = await client.command("MAIL FROM:<a@example.com> REQUIRETLS")
        assert reply.code == 555


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ("REQUIRETLS=YES", "501 Error: REQUIRETLS takes no arguments"),
        ("REQUIRETLS REQUIRETLS", "501 Error: duplicate REQUIRETLS parameter"),
        ("REQUIRETLS RET=FULL", "555 MAIL FROM parameters not recognized or not implemented"),
    ],
)
@pytest.mark.asyncio
async def test_requiretls_validation(params: str, expected: str) -> None:
    async with connect(NoHooks(), enable_REQUIRETLS=True, transport=tls_transport()) as client:
        await client.command("EHLO client")
        assert await lines(client, f"MAIL FROM:<a@example.com> {params}") == [expected]


@pytest.mark.asyncio
async def test_all_extensions_ehlo_order() -> None:
    kwargs: dict[str, Any] = {
        "enhanced_status_codes": True,
        "enable_DSN": True,
        "enable_REQUIRETLS": True,
        "transport": tls_transport(),
    }
    server = SMTP(
        NoHooks(), hostname="mx.test", **{k: v for k, v in kwargs.items() if k != "transport"}
    )
    async with SMTPClient(server, kwargs["transport"]) as client:
        ehlo = await client.command("EHLO client")
    assert list(ehlo.lines) == [
        "mx.test",
        "SIZE 33554432",
        "8BITMIME",
        "PIPELINING",
        "ENHANCEDSTATUSCODES",
        "DSN",
        "REQUIRETLS",
        "AUTH LOGIN PLAIN",
        "HELP",
    ]
