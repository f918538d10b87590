"""AUTH (RFC 4954; spec §5, DECISIONS rows 1, 4 and 5)."""

from __future__ import annotations

import base64
import logging
import ssl
from typing import Any

import pytest

from aiosmtpd.smtp import (
    SMTP,
    AuthResult,
    Envelope,
    LoginPassword,
    Session,
    auth_mechanism,
)
from aiosmtpd.testing.transport import MemoryTransport

from .util import Recorder, connect


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


PLAIN_OK = b64(b"\x00alice\x00wonderland")
PLAIN_BAD = b64(b"\x00alice\x00nope")


def authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    assert isinstance(data, LoginPassword)
    if data == (b"alice", b"wonderland"):
        return AuthResult(success=True, auth_data={"user": "alice", "mech": mechanism})
    return AuthResult(success=False)


def kwargs(**extra: Any) -> dict[str, Any]:
    return {"auth_require_tls": False, "authenticator": authenticator, **extra}


@pytest.mark.asyncio
async def test_plain_initial_response() -> None:
    handler = Recorder()
    async with connect(handler, **kwargs()) as client:
        ehlo = await client.command("EHLO c")
        assert "AUTH LOGIN PLAIN" in ehlo.lines
        reply = await client.command(f"AUTH PLAIN {PLAIN_OK}")
        assert (reply.code, reply.text) == (235, "2.7.0 Authentication successful")
        session = client.protocol.session  # type: ignore[attr-defined]
        assert session.authenticated is True
        assert session.auth_data == {"user": "alice", "mech": "PLAIN"}
        reply = await client.command(f"AUTH PLAIN {PLAIN_OK}")
        assert (reply.code, reply.text) == (503, "Already authenticated")


@pytest.mark.asyncio
async def test_plain_challenge() -> None:
    async with connect(**kwargs()) as client:
        await client.command("EHLO c")
        reply = await client.command("AUTH PLAIN")
        assert (reply.code, reply.lines) == (334, ("",))
        assert client.transport.output.endswith(b"334 \r\n")
        assert (await client.command(PLAIN_OK)).code == 235


@pytest.mark.asyncio
async def test_failed_authenticator_always_gets_a_reply() -> None:
    """DECISIONS row 1: AuthResult(success=False) from an authenticator => 535."""
    async with connect(**kwargs()) as client:
        await client.command("EHLO c")
        reply = await client.command(f"AUTH PLAIN {PLAIN_BAD}")
        assert (reply.code, reply.text) == (535, "5.7.8 Authentication credentials invalid")
        assert client.protocol.session.authenticated is None  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_failed_authenticator_message() -> None:
    def deny(*args: Any) -> AuthResult:
        return AuthResult(success=False, message="454 4.7.0 Try later")

    async with connect(auth_require_tls=False, authenticator=deny) as client:
        await client.command("EHLO c")
        reply = await client.command(f"AUTH PLAIN {PLAIN_OK}")
        assert (reply.code, reply.text) == (454, "4.7.0 Try later")


@pytest.mark.asyncio
async def test_login_challenges() -> None:
    """DECISIONS row 5: Username: / Password: challenges."""
    async with connect(**kwargs()) as client:
        await client.command("EHLO c")
        reply = await client.command("AUTH LOGIN")
        assert (reply.code, reply.text) == (334, "VXNlcm5hbWU6")
        reply = await client.command(b64(b"alice"))
        assert (reply.code, reply.text) == (334, "UGFzc3dvcmQ6")
        reply = await client.command(b64(b"wonderland"))
        assert reply.code == 235


@pytest.mark.asyncio
async def test_login_initial_username() -> None:
    async with connect(**kwargs()) as client:
        await client.command("EHLO c")
        reply = await client.command("AUTH LOGIN " + b64(b"alice"))
        assert (reply.code, reply.text) == (334, "UGFzc3dvcmQ6")
        assert (await client.command(b64(b"wrong"))).code == 535


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("answer", "expected"),
    [("*", "501 5.7.0 Auth aborted"), ("not base64!", "501 5.5.2 Can't decode base64")],
)
async def test_challenge_abort_and_bad_base64(answer: str, expected: str) -> None:
    async with connect(**kwargs()) as client:
        await client.command("EHLO c")
        await client.command("AUTH LOGIN")
        reply = await client.command(answer)
        assert f"{reply.code} {reply.text}" == expected
        # Exactly one reply: the next command is answered normally.
        assert (await client.command("NOOP")).code == 250


@pytest.mark.asyncio
@pytest.mark.parametrize(("accept", "code"), [(True, 235), (False, 535)])
async def test_legacy_auth_callback(accept: bool, code: int) -> None:
    seen: list[tuple[str, bytes, bytes]] = []

    def callback(mechanism: str, login: bytes, password: bytes) -> bool:
        seen.append((mechanism, login, password))
        return accept

    async with connect(auth_require_tls=False, auth_callback=callback) as client:
        await client.command("EHLO c")
        assert (await client.command(f"AUTH PLAIN {PLAIN_OK}")).code == code
    assert seen == [("PLAIN", b"alice", b"wonderland")]


@pytest.mark.asyncio
async def test_default_rejects_everyone() -> None:
    async with connect(auth_require_tls=False) as client:
        await client.command("EHLO c")
        assert (await client.command(f"AUTH PLAIN {PLAIN_OK}")).code == 535


class CramHandler(Recorder):
    @auth_mechanism("CRAM-MD5")
    async def auth_CRAM_MD5(self, server: SMTP, args: list[str]) -> AuthResult:
        answer = await server.challenge_auth(f"<1.2@{server.hostname}>")
        if answer == b"alice digest":
            return AuthResult(success=True, auth_data="alice")
        return AuthResult(success=False, handled=False)

    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:
        await server.push("235 handler plain")
        return AuthResult(success=True, handled=True, auth_data="plain-override")

    async def auth_NULL(self, server: SMTP, args: list[str]) -> None:
        return None


@pytest.mark.asyncio
async def test_handler_mechanisms_and_overrides() -> None:
    async with connect(
        CramHandler(), auth_require_tls=False, auth_exclude_mechanism=["LOGIN"]
    ) as client:
        ehlo = await client.command("EHLO c")
        assert "AUTH CRAM-MD5 NULL PLAIN" in ehlo.lines
        assert (await client.command("AUTH LOGIN")).code == 504
        reply = await client.command("AUTH CRAM-MD5")
        assert reply.code == 334
        assert base64.b64decode(reply.text) == b"<1.2@mx.test>"
        assert (await client.command(b64(b"wrong"))).code == 535
        # A mechanism returning None sent nothing: the server still answers (row 1).
        assert (await client.command("AUTH NULL")).code == 535
        reply = await client.command("AUTH CRAM-MD5")
        assert (await client.command(b64(b"alice digest"))).code == 235
        assert client.protocol.session.auth_data == "alice"  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_handler_plain_override_sends_its_own_reply() -> None:
    async with connect(CramHandler(), auth_require_tls=False) as client:
        await client.command("EHLO c")
        reply = await client.command("AUTH PLAIN xyz")
        assert reply.text == "handler plain"
        assert client.pending() == b""


@pytest.mark.asyncio
async def test_handle_auth_hook_replaces_dispatch() -> None:
    class Hooked(Recorder):
        async def handle_AUTH(
            self, server: SMTP, session: Session, envelope: Envelope, args: list[str]
        ) -> str:
            session.authenticated = True
            return "235 hooked " + " ".join(args)

    async with connect(Hooked(), auth_require_tls=False) as client:
        await client.command("EHLO c")
        assert (await client.command("AUTH WHATEVER x")).text == "hooked WHATEVER x"


@pytest.mark.asyncio
async def test_auth_required_then_authenticated() -> None:
    with pytest.warns(UserWarning, match="Requiring AUTH while not requiring TLS"):
        server = SMTP(
            Recorder(),
            hostname="x",
            auth_required=True,
            auth_require_tls=False,
            authenticator=authenticator,
        )
    from aiosmtpd.testing.transport import SMTPClient

    async with SMTPClient(server) as client:
        await client.command("EHLO c")
        assert (await client.command("MAIL FROM:<a@b.c>")).code == 530
        assert (await client.command(f"AUTH PLAIN {PLAIN_OK}")).code == 235
        assert (await client.command("MAIL FROM:<a@b.c>")).code == 250


@pytest.mark.asyncio
async def test_auth_not_advertised_without_tls() -> None:
    async with connect(authenticator=authenticator) as client:
        ehlo = await client.command("EHLO c")
        assert not any(line.startswith("AUTH") for line in ehlo.lines)


class _Ctx:
    verify_mode = ssl.CERT_NONE
    check_hostname = False


@pytest.mark.asyncio
async def test_implicit_tls_counts_as_tls() -> None:
    """DECISIONS row 4: a transport with an ssl_object is TLS."""
    transport = MemoryTransport(extra={"ssl_object": object(), "cipher": ("TLS_X", "TLSv1.3", 256)})
    async with connect(
        transport=transport, tls_context=_Ctx(), authenticator=authenticator
    ) as client:
        ehlo = await client.command("EHLO c")
        assert "AUTH LOGIN PLAIN" in ehlo.lines
        assert "STARTTLS" not in ehlo.lines
        reply = await client.command("STARTTLS")
        assert (reply.code, reply.text) == (503, "5.5.1 Already in TLS")
        assert (await client.command(f"AUTH PLAIN {PLAIN_OK}")).code == 235
        assert client.protocol.session.ssl["cipher"] == ("TLS_X", "TLSv1.3", 256)  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_credentials_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        async with connect(**kwargs()) as client:
            await client.command("EHLO c")
            await client.command(f"AUTH PLAIN {PLAIN_OK}")
            await client.command("RSET")
            await client.command("AUTH LOGIN")
    text = caplog.text
    assert PLAIN_OK not in text
    assert "wonderland" not in text
    assert "AUTH PLAIN ********" in text


def test_value_types_hide_secrets() -> None:
    credentials = LoginPassword(b"alice", b"wonderland")
    assert "wonderland" not in repr(credentials)
    assert str(credentials) == "LoginPassword(login='alice', password=...)"
    result = AuthResult(success=True, auth_data=credentials)
    assert "alice" not in repr(result)
    assert result.handled is True
    assert result.message is None
    with pytest.raises(TypeError):
        AuthResult(True)  # type: ignore[misc]


def test_auth_mechanism_names() -> None:
    with pytest.raises(ValueError, match="Invalid AUTH mechanism name: bad name"):
        auth_mechanism("bad name")
    assert auth_mechanism("x-oauth2")(lambda: None).__auth_mechanism_name__ == "X-OAUTH2"  # type: ignore[attr-defined]
