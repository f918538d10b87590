"""Real TLS clients against the server: swaks (PLAIN, --tlsc), curl (smtps://),
openssl s_client -starttls smtp, and the CLI at -ddd with no credential in its output."""

from __future__ import annotations

import asyncio
import base64
import smtplib
import ssl
import sys
from pathlib import Path
from typing import Any

import pytest

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session
from tests.support import leaked_credentials, require_module, require_program
from tests.test_cli import TIMEOUT, running
from tests.wire.test_tls_attacks import serve

pytestmark = pytest.mark.wire

Certificates = tuple[ssl.SSLContext, ssl.SSLContext, Path]
PASSWORD = "Wire-Pa55w0rd"
MESSAGE = b"From: alice@example.com\r\nSubject: real\r\n\r\nHello.\r\n"


class Box:
    def __init__(self) -> None:
        self.sessions: list[Session] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.sessions.append(session)
        return "250 OK"


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    return AuthResult(success=(data.login, data.password) == (b"alice", PASSWORD.encode()))


async def run(*argv: str, stdin: bytes | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(stdin), 30)
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


SWAKS_AUTH = ["--auth-user", "alice", "--auth-password", PASSWORD]


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", ["--tls", "--tlsc"])
async def test_swaks_auth_plain(tls_certificates: Certificates, mode: str) -> None:
    swaks = require_program("swaks")
    server_context, _, _ = tls_certificates
    box = Box()
    implicit = mode == "--tlsc"
    async with serve(
        box,
        tls_context=server_context,
        ssl_context=server_context if implicit else None,
        authenticator=authenticator,
        auth_required=True,
    ) as (port, _):
        code, output = await run(
            swaks, "--server", "127.0.0.1", "--port", str(port), "--from", "a@example.com",
            "--to", "b@example.com", mode, "--auth", "PLAIN", *SWAKS_AUTH,
        )  # fmt: skip
    assert code == 0, output
    (session,) = box.sessions
    assert session.authenticated is True
    assert session.ssl is not None


@pytest.mark.asyncio
async def test_curl_smtps(tmp_path: Path, tls_certificates: Certificates) -> None:
    curl = require_program("curl")
    server_context, _, ca_file = tls_certificates
    message = tmp_path / "m.eml"
    message.write_bytes(MESSAGE)
    box = Box()
    async with serve(
        box, ssl_context=server_context, tls_context=server_context, authenticator=authenticator
    ) as (port, _):
        code, output = await run(
            curl, "--silent", "--show-error", f"smtps://127.0.0.1:{port}", "--cacert",
            str(ca_file), "--user", f"alice:{PASSWORD}", "--mail-from", "a@example.com",
            "--mail-rcpt", "b@example.com", "-T", str(message),
        )  # fmt: skip
    assert code == 0, output
    assert box.sessions[0].authenticated is True


@pytest.mark.asyncio
async def test_openssl_s_client_starttls(tls_certificates: Certificates) -> None:
    openssl = require_program("openssl")
    server_context, _, ca_file = tls_certificates
    plain = base64.b64encode(b"\0alice\0" + PASSWORD.encode())
    wrong = base64.b64encode(b"\0alice\0nope")
    dialogue = b"EHLO c\r\nAUTH PLAIN " + wrong + b"\r\nAUTH PLAIN " + plain + b"\r\nQUIT\r\n"
    async with serve(
        Box(), tls_context=server_context, require_starttls=True, authenticator=authenticator
    ) as (port, _):
        code, output = await run(
            openssl, "s_client", "-starttls", "smtp", "-connect", f"127.0.0.1:{port}",
            "-CAfile", str(ca_file), "-verify_return_error", "-quiet", "-ign_eof",
            stdin=dialogue,
        )  # fmt: skip
    assert code == 0, output
    assert "250-AUTH LOGIN PLAIN" in output
    assert "535 5.7.8 Authentication credentials invalid" in output
    assert "235 2.7.0 Authentication successful" in output
    assert "221 Bye" in output


def _cli_login(port: int, client_context: ssl.SSLContext, mechanism: str) -> int:
    with smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT) as client:
        client.starttls(context=client_context)
        client.ehlo("c")
        client.user, client.password = "alice", PASSWORD
        auth = getattr(client, "auth_" + mechanism.lower())
        try:
            client.auth(mechanism, auth, initial_response_ok=mechanism == "PLAIN")
        except smtplib.SMTPAuthenticationError as error:
            return error.smtp_code
        return 235


def test_cli_ddd_logs_no_credentials(tmp_path: Path) -> None:
    trustme = require_module("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    argv = [sys.executable, "-X", "dev", "-m", "aiosmtpd", "-n", "-l", "127.0.0.1:0", "-ddd"]
    argv += ["-c", "aiosmtpd.handlers.Sink", "--tlscert", str(cert_file)]
    argv += ["--tlskey", str(key_file)]
    with running(argv) as server:
        port = server.wait_listening()
        # The CLI has no authenticator: both attempts fail, after carrying the password.
        assert _cli_login(port, client_context, "PLAIN") == 535
        assert _cli_login(port, client_context, "LOGIN") == 535
        server.stop()
    output = server.all_stderr + server.all_stdout
    assert "AUTH PLAIN" in output  # -ddd logs every command
    assert leaked_credentials(output, (PASSWORD,)) == []
