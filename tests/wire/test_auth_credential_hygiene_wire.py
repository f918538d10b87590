"""A client that ignores ``538`` and sends its credentials anyway, over a real socket: the
lines are answered without being echoed and never logged (the suite-wide guard in
tests/conftest.py checks every log record for the password)."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from aiosmtpd.smtp import AuthResult
from tests.support import credential_forms

from .test_smtp_clients import Box, serve

pytestmark = pytest.mark.wire


def authenticator(*args: Any) -> AuthResult:
    return AuthResult(success=False)


@pytest.mark.asyncio
async def test_blind_login_after_538_is_neither_echoed_nor_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    user = base64.b64encode(b"alice")
    password = base64.b64encode(b"Wire-Pa55w0rd")
    async with serve(Box(), authenticator=authenticator) as port:  # auth_require_tls
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"EHLO c\r\nAUTH LOGIN\r\n" + user + b"\r\n" + password + b"\r\nQUIT\r\n")
            async with asyncio.timeout(10):  # a safety net: the server closes after QUIT
                received = await reader.read()
        finally:
            writer.close()
            await writer.wait_closed()
    assert received.split(b"250 HELP\r\n", 1)[1] == (
        b"538 5.7.11 Encryption required for requested authentication mechanism\r\n"
        b'500 Error: command "********" not recognized\r\n'
        b'500 Error: command "********" not recognized\r\n'
        b"221 Bye\r\n"
    )
    for form in credential_forms("Wire-Pa55w0rd"):
        assert form.upper().encode() not in received.upper()
        assert form not in caplog.text
