"""Credentials never reach a log or a reply, whatever path the client takes (RFC 4954 §4,
§14: a server must not echo or record authentication data).

The suite-wide guard (tests/conftest.py) fails any test whose log records hold a test
password; each test here also checks the replies the client got, since the reply to an
unknown command echoes it (1.4's ``500 Error: command "<VERB>" not recognized``) and a
credential line sent after a refused AUTH is read as a command.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session
from aiosmtpd.testing.transport import MemoryTransport, SMTPClient
from tests.support import credential_forms

from .test_auth import _Ctx
from .util import connect, lines

USER, PASSWORD = b"alice", b"wonderland"
PLAIN = base64.b64encode(b"\0" + USER + b"\0" + PASSWORD).decode()
LOGIN_USER = base64.b64encode(USER).decode()
LOGIN_PASSWORD = base64.b64encode(PASSWORD).decode()
MASKED_UNKNOWN = '500 Error: command "********" not recognized'


def authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    return AuthResult(success=tuple(data) == (USER, PASSWORD))


def assert_no_credentials(client: SMTPClient, caplog: pytest.LogCaptureFixture) -> None:
    """Neither the output (case-insensitively: 1.4 upper-cases an echoed verb) nor any
    log record holds a form of the password."""
    output = client.transport.output.decode("ascii", "replace").upper()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for form in credential_forms(PASSWORD.decode()):
        assert form.upper() not in output
        assert form not in logged


@pytest.mark.asyncio
async def test_plain_credentials_after_538_are_not_echoed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with connect(authenticator=authenticator) as client:  # auth_require_tls=True
        await client.command("EHLO c")
        assert await lines(client, "AUTH PLAIN", PLAIN) == [
            "538 5.7.11 Encryption required for requested authentication mechanism",
            MASKED_UNKNOWN,
        ]
        assert_no_credentials(client, caplog)
        assert "'********'" in caplog.text


@pytest.mark.asyncio
async def test_login_user_and_password_after_538_are_not_echoed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A blind client sends both LOGIN lines: the second is as secret as the first."""
    async with connect(authenticator=authenticator) as client:
        await client.command("EHLO c")
        got = await lines(client, "AUTH LOGIN", LOGIN_USER, LOGIN_PASSWORD)
        assert got[1:] == [MASKED_UNKNOWN, MASKED_UNKNOWN]
        assert_no_credentials(client, caplog)


@pytest.mark.asyncio
async def test_credentials_after_530_require_starttls(caplog: pytest.LogCaptureFixture) -> None:
    """The require_starttls gate answers before smtp_AUTH runs: still nothing logged."""
    async with connect(
        authenticator=authenticator, require_starttls=True, tls_context=_Ctx()
    ) as client:
        await client.command("EHLO c")
        got = await lines(client, "AUTH LOGIN", LOGIN_USER, LOGIN_PASSWORD)
        assert [g[:3] for g in got] == ["530", "530", "530"]
        assert_no_credentials(client, caplog)


@pytest.mark.parametrize(
    ("setup", "auth", "refusal"),
    [
        ([], "AUTH PLAIN", "503"),  # no EHLO yet
        (["HELO c"], "AUTH PLAIN", "500"),  # AUTH is not an SMTP (HELO) command
        (["EHLO c"], "AUTH CRAM-MD5", "504"),  # the client falls back to sending PLAIN
        (["EHLO c", "MAIL FROM:<a@b.c>"], "AUTH PLAIN", "503"),  # inside a transaction
    ],
)
@pytest.mark.asyncio
async def test_credentials_after_other_refusals(
    caplog: pytest.LogCaptureFixture, setup: list[str], auth: str, refusal: str
) -> None:
    async with connect(authenticator=authenticator, auth_require_tls=False) as client:
        for line in setup:
            await client.command(line)
        got = await lines(client, auth, PLAIN)
        assert got[0][:3] == refusal
        assert got[1] == MASKED_UNKNOWN
        assert_no_credentials(client, caplog)


@pytest.mark.asyncio
async def test_password_after_a_failed_login_username(caplog: pytest.LogCaptureFixture) -> None:
    """LOGIN ends at a bad username (501); the password line that follows is a command."""
    async with connect(authenticator=authenticator, auth_require_tls=False) as client:
        await client.command("EHLO c")
        got = await lines(client, "AUTH LOGIN", "not base64!", LOGIN_PASSWORD)
        assert got == [
            "334 VXNlcm5hbWU6",
            "501 5.5.2 Can't decode base64",
            MASKED_UNKNOWN,
        ]
        assert_no_credentials(client, caplog)


@pytest.mark.asyncio
async def test_pipelined_credentials_after_538(caplog: pytest.LogCaptureFixture) -> None:
    async with connect(authenticator=authenticator) as client:
        await client.command("EHLO c")
        await client.send(f"AUTH LOGIN\r\n{LOGIN_USER}\r\n{LOGIN_PASSWORD}\r\nNOOP\r\n".encode())
        got = [f"{r.code} {r.text}" for r in await client.replies(4)]
        assert got[1:] == [MASKED_UNKNOWN, MASKED_UNKNOWN, "250 OK"]
        assert_no_credentials(client, caplog)


@pytest.mark.asyncio
async def test_login_with_both_credentials_on_the_auth_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``AUTH LOGIN <user> <password>`` (not RFC 4954): 501, and the whole line is masked."""
    async with connect(authenticator=authenticator, auth_require_tls=False) as client:
        await client.command("EHLO c")
        reply = await client.command(f"AUTH LOGIN {LOGIN_USER} {LOGIN_PASSWORD}")
        assert (reply.code, reply.text) == (501, "Too many values")
        assert_no_credentials(client, caplog)
        assert "b'AUTH LOGIN ********'" in caplog.text


@pytest.mark.asyncio
async def test_auth_line_split_by_tabs_is_not_echoed(caplog: pytest.LogCaptureFixture) -> None:
    """The core splits a command at its first space only: ``AUTH<TAB>PLAIN<TAB><cred>`` is
    one unknown verb, whose echo would hold the (upper-cased) credentials."""
    async with connect(authenticator=authenticator, auth_require_tls=False) as client:
        await client.command("EHLO c")
        reply = await client.command(f"AUTH\tPLAIN\t{PLAIN}")
        assert f"{reply.code} {reply.text}" == MASKED_UNKNOWN
        assert_no_credentials(client, caplog)


@pytest.mark.parametrize("require_tls", [False, True])
@pytest.mark.asyncio
async def test_initial_response_is_masked_in_the_log(
    caplog: pytest.LogCaptureFixture, require_tls: bool
) -> None:
    """``AUTH PLAIN <initial-response>``: masked on success, on failure, and when refused
    before TLS; over (implicit) TLS as well."""
    transport = MemoryTransport(extra={"ssl_object": object()}) if require_tls else None
    bad = base64.b64encode(b"\0alice\0nope").decode()
    async with connect(
        authenticator=authenticator, auth_require_tls=require_tls, transport=transport
    ) as client:
        await client.command("EHLO c")
        assert (await client.command(f"AUTH PLAIN {bad}")).code == 535
        assert (await client.command(f"auth PLAIN {PLAIN}")).code == 235
        assert_no_credentials(client, caplog)
    for form in credential_forms("nope"):
        assert form not in caplog.text
    assert caplog.text.count("PLAIN ********") == 2


@pytest.mark.asyncio
async def test_initial_response_refused_before_tls_is_masked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with connect(authenticator=authenticator) as client:
        await client.command("EHLO c")
        assert (await client.command(f"AUTH PLAIN {PLAIN}")).code == 538
        assert_no_credentials(client, caplog)
        assert "b'AUTH PLAIN ********'" in caplog.text


@pytest.mark.asyncio
async def test_unknown_commands_are_still_echoed_outside_auth(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """1.4's reply is kept for an unknown verb that does not follow AUTH, including one
    after an AUTH exchange was followed by a known command."""
    caplog.set_level(logging.INFO, logger="mail.log")
    async with connect(authenticator=authenticator, auth_require_tls=False) as client:
        assert await lines(client, "FOOBAR", "EHLO c", "AUTH PLAIN", PLAIN, "ETRN") == [
            '500 Error: command "FOOBAR" not recognized',
            "250 HELP",
            "334 ",
            "235 2.7.0 Authentication successful",
            '500 Error: command "ETRN" not recognized',
        ]
        assert await lines(client, "AUTH LOGIN", "XYZZ", "NOOP", "XYZZ") == [
            "503 Already authenticated",
            MASKED_UNKNOWN,
            "250 OK",
            '500 Error: command "XYZZ" not recognized',
        ]
    assert "b'FOOBAR'" in caplog.text


@pytest.mark.asyncio
async def test_credentials_in_place_of_the_mechanism_are_masked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``AUTH <initial-response>`` (the mechanism left out): 504, and the word that is no
    mechanism name (RFC 4422 §3.1: 1-20 of A-Z 0-9 - _) is masked in the log."""
    async with connect(authenticator=authenticator, auth_require_tls=False) as client:
        await client.command("EHLO c")
        reply = await client.command(f"AUTH {PLAIN}")
        assert (reply.code, reply.text) == (504, "5.5.4 Unrecognized authentication type")
        assert_no_credentials(client, caplog)
        assert "b'AUTH ********'" in caplog.text


@pytest.mark.parametrize(
    ("line", "logged"),
    [
        (b"AUTH PLAIN", b"AUTH PLAIN"),
        (b"AUTH CRAM-MD5", b"AUTH CRAM-MD5"),
        (b"auth login YWxpY2U=", b"auth login ********"),
        (b"AUTH PLAIN AGFiYwBkZWY=\r\n", b"AUTH PLAIN ********\r\n"),
        (b"AUTH LOGIN dXNlcg== cGFzcw==\r\n", b"AUTH LOGIN ********\r\n"),
        (b"AUTH\tPLAIN\tAGFiYwBkZWY=", b"AUTH\tPLAIN\t********"),
        (b"AUTH AGFsaWNlAHdvbmRlcmxhbmQ=", b"AUTH ********"),
        (b"AUTH " + b"X" * 21, b"AUTH ********"),  # just over the mechanism name limit
        (b"AUTH " + b"X" * 20, b"AUTH " + b"X" * 20),  # at it
        (b"RCPT TO:<auth x@example.com>", b"RCPT TO:<auth x@example.com>"),
        (b"MAIL FROM:<a@example.com> AUTH=<>", b"MAIL FROM:<a@example.com> AUTH=<>"),
    ],
)
def test_sanitize(line: bytes, logged: bytes) -> None:
    from aiosmtpd.smtp import sanitize

    assert sanitize(line) == logged
