"""Spec §7, row by row: each situation and the exact reply aiosmtpd 1.4 sends for it.

Each row: keyword arguments for ``SMTP``, the commands that set the situation up, the
command under test, and the exact last reply line expected.  The PIPELINING line and the
decisions of shared/spec/DECISIONS.md are the only intended differences from 1.4.
"""

from __future__ import annotations

import ssl
from typing import Any

import pytest

from .util import connect

EHLO = "EHLO client.test"
HELO = "HELO client.test"
MAIL = "MAIL FROM:<a@example.com>"
RCPT = "RCPT TO:<b@example.com>"

ROWS: list[tuple[str, dict[str, Any], list[str], str, str]] = [
    # (id, SMTP kwargs, setup commands, command, expected reply)
    ("empty line", {}, [], "", "500 Error: bad syntax"),
    ("non-ascii verb", {}, [], "NÖOP", "500 Error: bad syntax"),
    ("non-ascii arg", {}, [EHLO, MAIL], "RCPT TO:<jörg@x.de>", "500 Error: strict ASCII mode"),
    ("line too long", {}, [], "NOOP " + "x" * 600, "500 Command line too long"),
    ("unknown verb", {}, [], "FOO bar", '500 Error: command "FOO" not recognized'),
    ("unknown verb tab", {}, [], "NOOP\tx", '500 Error: command "NOOP\tX" not recognized'),
    ("bdat", {}, [EHLO], "BDAT 10 LAST", '500 Error: command "BDAT" not recognized'),
    (
        "require_starttls",
        {"tls_context": object(), "require_starttls": True},
        [],
        "HELO x",
        "530 Must issue a STARTTLS command first",
    ),
    (
        "require_starttls unknown",
        {"tls_context": object(), "require_starttls": True},
        [],
        "FOO",
        "530 Must issue a STARTTLS command first",
    ),
    (
        "require_starttls noop ok",
        {"tls_context": object(), "require_starttls": True},
        [],
        "NOOP",
        "250 OK",
    ),
    ("helo no arg", {}, [], "HELO", "501 Syntax: HELO hostname"),
    ("ehlo no arg", {}, [], "EHLO", "501 Syntax: EHLO hostname"),
    ("helo ok", {}, [], HELO, "250 mx.test"),
    ("ehlo ok", {}, [], EHLO, "250 HELP"),
    ("noop", {}, [], "NOOP", "250 OK"),
    ("noop arg", {}, [], "NOOP anything here", "250 OK"),
    ("rset", {}, [], "RSET", "250 OK"),
    ("rset arg", {}, [], "RSET x", "501 Syntax: RSET"),
    ("quit arg", {}, [], "QUIT x", "501 Syntax: QUIT"),
    ("starttls arg", {"tls_context": object()}, [EHLO], "STARTTLS x", "501 Syntax: STARTTLS"),
    ("starttls unavailable", {}, [EHLO], "STARTTLS", "454 TLS not available"),
    ("mail before helo", {}, [], MAIL, "503 Error: send HELO first"),
    ("rcpt before helo", {}, [], RCPT, "503 Error: send HELO first"),
    ("data before helo", {}, [], "DATA", "503 Error: send HELO first"),
    ("auth before ehlo", {}, [], "AUTH PLAIN", "503 Error: send EHLO first"),
    ("auth after helo", {}, [HELO], "AUTH PLAIN", "500 Error: command 'AUTH' not recognized"),
    (
        "auth requires tls",
        {},
        [EHLO],
        "AUTH PLAIN",
        "538 5.7.11 Encryption required for requested authentication mechanism",
    ),
    ("auth no arg", {"auth_require_tls": False}, [EHLO], "AUTH", "501 Not enough value"),
    ("auth too many", {"auth_require_tls": False}, [EHLO], "AUTH A B C", "501 Too many values"),
    (
        "auth unknown mech",
        {"auth_require_tls": False},
        [EHLO],
        "AUTH plain",
        "504 5.5.4 Unrecognized authentication type",
    ),
    (
        "auth bad base64",
        {"auth_require_tls": False},
        [EHLO],
        "AUTH PLAIN ####",
        "501 5.5.2 Can't decode base64",
    ),
    (
        "auth cannot split",
        {"auth_require_tls": False},
        [EHLO],
        "AUTH PLAIN =",
        "501 5.5.2 Can't split auth value",
    ),
    (
        "auth fails",
        {"auth_require_tls": False},
        [EHLO],
        "AUTH PLAIN AHVzZXIAcGFzcw==",
        "535 5.7.8 Authentication credentials invalid",
    ),
    *[
        (
            f"auth_required {verb}",
            {"auth_required": True, "auth_require_tls": False},
            [EHLO],
            command,
            "530 5.7.0 Authentication required",
        )
        for verb, command in [
            ("HELP", "HELP"),
            ("VRFY", "VRFY a@b"),
            ("MAIL", MAIL),
            ("RCPT", RCPT),
            ("DATA", "DATA"),
        ]
    ],
    (
        "auth_required noop",
        {"auth_required": True, "auth_require_tls": False},
        [EHLO],
        "NOOP",
        "250 OK",
    ),
    ("mail no arg", {}, [EHLO], "MAIL", "501 Syntax: MAIL FROM: <address> [SP <mail-parameters>]"),
    ("mail no arg helo", {}, [HELO], "MAIL", "501 Syntax: MAIL FROM: <address>"),
    (
        "mail no from",
        {},
        [EHLO],
        "MAIL TO:<a@b>",
        "501 Syntax: MAIL FROM: <address> [SP <mail-parameters>]",
    ),
    (
        "mail empty",
        {},
        [EHLO],
        "MAIL FROM:",
        "501 Syntax: MAIL FROM: <address> [SP <mail-parameters>]",
    ),
    ("mail params after helo", {}, [HELO], MAIL + " SIZE=10", "501 Syntax: MAIL FROM: <address>"),
    (
        "mail bad size",
        {},
        [EHLO],
        MAIL + " SIZE=abc",
        "501 Syntax: MAIL FROM: <address> [SP <mail-parameters>]",
    ),
    (
        "mail negative size",
        {},
        [EHLO],
        MAIL + " SIZE=-1",
        "501 Syntax: MAIL FROM: <address> [SP <mail-parameters>]",
    ),
    (
        "mail malformed param",
        {},
        [EHLO],
        MAIL + " =x",
        "501 Syntax: MAIL FROM: <address> [SP <mail-parameters>]",
    ),
    ("mail malformed address", {}, [EHLO], "MAIL FROM:<@@@>", "553 5.1.3 Error: malformed address"),
    ("mail local part limit", {}, [EHLO], "MAIL FROM:<" + "x" * 65 + "@b.c>", "250 OK"),
    ("mail nested", {}, [EHLO, MAIL], MAIL, "503 Error: nested MAIL command"),
    (
        "mail bad body",
        {},
        [EHLO],
        MAIL + " BODY=BINARYMIME",
        "501 Error: BODY can only be one of 7BIT, 8BITMIME",
    ),
    ("mail body decode_data", {"decode_data": True}, [EHLO], MAIL + " BODY=BINARYMIME", "250 OK"),
    ("mail body 7bit", {}, [EHLO], MAIL + " BODY=7bit", "250 OK"),
    (
        "mail smtputf8 arg",
        {"enable_SMTPUTF8": True},
        [EHLO],
        MAIL + " SMTPUTF8=x",
        "501 Error: SMTPUTF8 takes no arguments",
    ),
    ("mail smtputf8 disabled", {}, [EHLO], MAIL + " SMTPUTF8", "501 Error: SMTPUTF8 disabled"),
    (
        "mail smtputf8 ok",
        {"enable_SMTPUTF8": True},
        [EHLO],
        "MAIL FROM:<jörg@bücher.de> SMTPUTF8",
        "250 OK",
    ),
    (
        "mail size too big",
        {"data_size_limit": 100},
        [EHLO],
        MAIL + " SIZE=101",
        "552 Error: message size exceeds fixed maximum message size",
    ),
    ("mail size at limit", {"data_size_limit": 100}, [EHLO], MAIL + " SIZE=100", "250 OK"),
    (
        "mail size no limit",
        {"data_size_limit": None},
        [EHLO],
        MAIL + " SIZE=999999999999",
        "250 OK",
    ),
    (
        "mail unknown param",
        {},
        [EHLO],
        MAIL + " FOO",
        "555 MAIL FROM parameters not recognized or not implemented",
    ),
    (
        "mail dsn param",
        {},
        [EHLO],
        MAIL + " RET=HDRS",
        "555 MAIL FROM parameters not recognized or not implemented",
    ),
    ("mail null sender", {}, [EHLO], "MAIL FROM:<>", "250 OK"),
    ("mail ok", {}, [EHLO], MAIL, "250 OK"),
    ("rcpt without mail", {}, [EHLO], RCPT, "503 Error: need MAIL command"),
    (
        "rcpt syntax",
        {},
        [EHLO, MAIL],
        "RCPT",
        "501 Syntax: RCPT TO: <address> [SP <mail-parameters>]",
    ),
    ("rcpt syntax helo", {}, [HELO, MAIL], "RCPT FROM:<a@b>", "501 Syntax: RCPT TO: <address>"),
    ("rcpt params helo", {}, [HELO, MAIL], RCPT + " FOO", "501 Syntax: RCPT TO: <address>"),
    ("rcpt malformed", {}, [EHLO, MAIL], "RCPT TO:<@@>", "553 5.1.3 Error: malformed address"),
    (
        "rcpt param",
        {},
        [EHLO, MAIL],
        RCPT + " NOTIFY=NEVER",
        "555 RCPT TO parameters not recognized or not implemented",
    ),
    ("rcpt ok", {}, [EHLO, MAIL], RCPT, "250 OK"),
    ("vrfy no arg", {}, [], "VRFY", "501 Syntax: VRFY <address>"),
    ("vrfy bad", {}, [], "VRFY <@@>", "502 Could not VRFY <@@>"),
    (
        "vrfy ok",
        {},
        [],
        "VRFY <a@b>",
        "252 Cannot VRFY user, but will accept message and attempt delivery",
    ),
    ("data without rcpt", {}, [EHLO, MAIL], "DATA", "503 Error: need RCPT command"),
    ("data arg", {}, [EHLO, MAIL, RCPT], "DATA x", "501 Syntax: DATA"),
    ("data ok", {}, [EHLO, MAIL, RCPT], "DATA", "354 End data with <CR><LF>.<CR><LF>"),
    ("expn", {}, [], "EXPN list", "502 EXPN not implemented"),
    (
        "help",
        {},
        [],
        "HELP",
        "250 Supported commands: AUTH DATA EHLO HELO HELP MAIL NOOP QUIT RCPT RSET VRFY",
    ),
    (
        "help tls",
        {"tls_context": object()},
        [],
        "HELP",
        "250 Supported commands: AUTH DATA EHLO HELO HELP MAIL NOOP QUIT RCPT RSET STARTTLS VRFY",
    ),
    ("help mail helo", {}, [HELO], "HELP MAIL", "250 Syntax: MAIL FROM: <address>"),
    (
        "help mail ehlo",
        {},
        [EHLO],
        "HELP mail",
        "250 Syntax: MAIL FROM: <address> [SP <mail-parameters>]",
    ),
    ("help noop", {}, [], "HELP NOOP", "250 Syntax: NOOP [ignored]"),
    (
        "help unknown",
        {},
        [],
        "HELP FOO",
        "501 Supported commands: AUTH DATA EHLO HELO HELP MAIL NOOP QUIT RCPT RSET VRFY",
    ),
    (
        "help expn",
        {},
        [],
        "HELP EXPN",
        "501 Supported commands: AUTH DATA EHLO HELO HELP MAIL NOOP QUIT RCPT RSET VRFY",
    ),
    (
        "help starttls unavailable",
        {},
        [],
        "HELP STARTTLS",
        "501 Supported commands: AUTH DATA EHLO HELO HELP MAIL NOOP QUIT RCPT RSET VRFY",
    ),
]


@pytest.mark.asyncio
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize(
    ("kwargs", "setup", "command", "expected"),
    [pytest.param(*row[1:], id=row[0]) for row in ROWS],
)
async def test_reply(kwargs: dict[str, Any], setup: list[str], command: str, expected: str) -> None:
    if "tls_context" in kwargs:
        kwargs = {**kwargs, "tls_context": _FakeContext()}
    async with connect(**kwargs) as client:
        for line in setup:
            reply = await client.command(line)
            assert reply.code < 400, (line, reply)
        reply = await client.command(command)
        assert f"{reply.code} {reply.lines[-1]}" == expected


class _FakeContext:
    """Enough of an SSLContext for SMTP.__init__ (no handshake happens in these rows)."""

    verify_mode = ssl.CERT_NONE
    check_hostname = False


@pytest.mark.asyncio
async def test_local_part_limit() -> None:
    from aiosmtpd.smtp import SMTP

    class LimitedSMTP(SMTP):
        local_part_limit = 64

    async with connect(cls=LimitedSMTP) as client:
        await client.command(EHLO)
        ok = "x" * 64
        assert (await client.command(f"MAIL FROM:<{ok}@b.c>")).code == 250
        await client.command("RSET")
        reply = await client.command("MAIL FROM:<" + "x" * 65 + "@b.c>")
        assert (reply.code, reply.text) == (553, "5.1.3 Error: malformed address")
        await client.command(f"MAIL FROM:<{ok}@b.c>")
        reply = await client.command("RCPT TO:<" + "y" * 65 + "@b.c>")
        assert reply.code == 553
        assert (await client.command("RCPT TO:<" + "y" * 64 + "@b.c>")).code == 250


@pytest.mark.asyncio
async def test_quit_closes() -> None:
    async with connect() as client:
        reply = await client.command("QUIT")
        assert (reply.code, reply.text) == (221, "Bye")
        await client.wait_closed()


@pytest.mark.asyncio
async def test_unknown_command_limit() -> None:
    async with connect() as client:
        for _ in range(4):
            assert (await client.command("FOO")).code == 500
        reply = await client.command("FOO")
        assert (reply.code, reply.text) == (502, "5.5.1 Too many unrecognized commands, goodbye.")
        await client.wait_closed()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("limit", "allowed"),
    [(3, 3), ({"NOOP": 2}, 2), ({"*": 4}, 4), ({"MAIL": 1}, 20)],
)
async def test_command_call_limit(limit: Any, allowed: int) -> None:
    async with connect(command_call_limit=limit) as client:
        for _ in range(allowed):
            assert (await client.command("NOOP")).code == 250
        reply = await client.command("NOOP")
        assert (reply.code, reply.text) == (421, "4.7.0 NOOP sent too many times")
        await client.wait_closed()


@pytest.mark.asyncio
@pytest.mark.parametrize(("octets", "code"), [(511, 250), (512, 250), (513, 500)])
async def test_command_line_limit_edges(octets: int, code: int) -> None:
    """512 octets including CRLF (RFC 5321 §4.5.3.1.4)."""
    async with connect() as client:
        line = "NOOP " + "x" * (octets - 2 - 5)
        reply = await client.command(line)
        assert reply.code == code
        assert (await client.command("NOOP")).code == 250
