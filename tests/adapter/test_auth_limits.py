"""AUTH limits and refusals in memory: failed-attempt limit (421), 503 in a transaction,
538 before TLS, LMTP's LHLO before STARTTLS, and no credential in any log record."""

from __future__ import annotations

import base64
import logging
import ssl
from typing import Any

import pytest

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import AUTH_FAILURE_LIMIT_DEFAULT, SMTP, AuthResult, LoginPassword
from tests.support import leaked_credentials

from .util import connect

PASSWORD = "Mem0ry-Pa55"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Checker:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, server: Any, session: Any, envelope: Any, mech: str, data: Any) -> Any:
        self.calls += 1
        assert isinstance(data, LoginPassword)
        return AuthResult(success=data == (b"alice", PASSWORD.encode()))


def bad(n: int) -> str:
    return "AUTH PLAIN " + b64(b"\0alice\0wrong" + str(n).encode())


GOOD = "AUTH PLAIN " + b64(b"\0alice\0" + PASSWORD.encode())


@pytest.mark.asyncio
async def test_under_the_failure_limit_the_client_may_still_log_in() -> None:
    async with connect(auth_require_tls=False, authenticator=Checker(), auth_failure_limit=3) as c:
        await c.command("EHLO c")
        for n in range(2):
            assert (await c.command(bad(n))).code == 535
        assert (await c.command(GOOD)).code == 235


@pytest.mark.asyncio
async def test_at_the_failure_limit_421_and_close() -> None:
    checker = Checker()
    async with connect(auth_require_tls=False, authenticator=checker, auth_failure_limit=3) as c:
        await c.command("EHLO c")
        for n in range(2):
            assert (await c.command(bad(n))).code == 535
        await c.send(f"{bad(2)}\r\n".encode())
        assert (await c.reply()).code == 535
        last = await c.reply()
        assert (last.code, last.text) == (421, "4.7.0 Too many authentication failures")
        await c.wait_closed()
    assert checker.calls == 3


@pytest.mark.asyncio
async def test_over_the_failure_limit_nothing_more_is_tried() -> None:
    checker = Checker()
    async with connect(auth_require_tls=False, authenticator=checker, auth_failure_limit=3) as c:
        await c.command("EHLO c")
        await c.send("".join(f"{bad(n)}\r\n" for n in range(3)).encode() + f"{GOOD}\r\n".encode())
        await c.wait_closed()
        out = bytes(c.transport.output)
    assert checker.calls == 3
    assert out.count(b"535 ") == 3
    assert b"235 " not in out
    assert out.endswith(b"421 4.7.0 Too many authentication failures\r\n")


@pytest.mark.asyncio
async def test_default_limit_cancel_and_bad_base64_count_unknown_mechanism_does_not() -> None:
    assert AUTH_FAILURE_LIMIT_DEFAULT == 5
    async with connect(auth_require_tls=False, authenticator=Checker()) as c:
        await c.command("EHLO c")
        assert (await c.command("AUTH NOSUCH")).code == 504
        assert (await c.command("AUTH LOGIN")).code == 334
        assert (await c.command("*")).code == 501
        assert (await c.command("AUTH PLAIN ???")).code == 501
        for n in range(2):
            assert (await c.command(bad(n))).code == 535
        assert (await c.command("AUTH NOSUCH")).code == 504
        await c.send(f"{bad(9)}\r\n".encode())
        assert (await c.reply()).code == 535
        assert (await c.reply()).code == 421
        await c.wait_closed()


@pytest.mark.asyncio
async def test_no_limit() -> None:
    async with connect(
        auth_require_tls=False, authenticator=Checker(), auth_failure_limit=None
    ) as c:
        await c.command("EHLO c")
        for n in range(12):
            assert (await c.command(bad(n))).code == 535
        assert (await c.command(GOOD)).code == 235


def test_limit_is_validated() -> None:
    with pytest.raises(ValueError, match="auth_failure_limit"):
        SMTP(object(), auth_failure_limit=0)


@pytest.mark.asyncio
async def test_auth_inside_a_transaction_is_503() -> None:
    async with connect(auth_require_tls=False, authenticator=Checker()) as c:
        await c.command("EHLO c")
        assert (await c.command("MAIL FROM:<a@example.com>")).code == 250
        reply = await c.command(GOOD)
        assert (reply.code, reply.text) == (
            503,
            "5.5.1 AUTH not permitted during a mail transaction",
        )
        assert (await c.command("RSET")).code == 250
        assert (await c.command(GOOD)).code == 235


@pytest.mark.asyncio
async def test_auth_before_tls_is_538_when_tls_is_required() -> None:
    checker = Checker()
    async with connect(authenticator=checker) as c:
        ehlo = await c.command("EHLO c")
        assert not any(line.startswith("AUTH") for line in ehlo.lines)
        reply = await c.command(GOOD)
        assert reply.code == 538
    assert checker.calls == 0


class _Ctx:
    verify_mode = ssl.CERT_NONE
    check_hostname = False


@pytest.mark.asyncio
async def test_lmtp_lhlo_allowed_before_starttls() -> None:
    async with connect(cls=LMTP, tls_context=_Ctx(), require_starttls=True) as c:
        lhlo = await c.command("LHLO c")
        assert lhlo.code == 250
        assert "STARTTLS" in lhlo.lines
        assert (await c.command("MAIL FROM:<a@example.com>")).code == 530


@pytest.mark.asyncio
async def test_no_credentials_in_any_log_record(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = PASSWORD.encode()
    async with connect(auth_require_tls=False, authenticator=Checker()) as c:
        await c.command("EHLO c")
        assert (await c.command("AUTH PLAIN " + b64(b"\0alice\0" + secret))).code == 235
    async with connect(auth_require_tls=False, authenticator=Checker()) as c:
        await c.command("EHLO c")
        await c.command("AUTH PLAIN")
        assert (await c.command(b64(b"\0alice\0" + secret))).code == 235
    async with connect(auth_require_tls=False, authenticator=Checker()) as c:
        await c.command("EHLO c")
        await c.command(f"AUTH LOGIN {b64(b'alice')}")
        assert (await c.command(b64(secret))).code == 235
    assert "AUTH PLAIN" in caplog.text  # the capture works: commands are logged
    assert leaked_credentials(caplog.text, (PASSWORD,)) == []


@pytest.mark.credentials_logged_on_purpose
@pytest.mark.asyncio
async def test_the_leak_check_catches_a_logging_mechanism(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)

    class Leaky(SMTP):
        async def auth_LEAKY(self, server: Any, args: list[str]) -> AuthResult:
            with pytest.warns(UserWarning, match="AUTH interaction logging|Sensitive"):
                await self.challenge_auth("", log_client_response=True)
            return AuthResult(success=False)

    async with connect(cls=Leaky, auth_require_tls=False) as c:
        await c.command("EHLO c")
        await c.command("AUTH LEAKY")
        await c.command(b64(PASSWORD.encode()))
    assert leaked_credentials(caplog.text, (PASSWORD,)) != []
