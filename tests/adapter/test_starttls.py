"""STARTTLS in memory: the upgrade is faked, the adapter's bookkeeping is real.

Real handshakes are covered by tests/wire (smtplib, swaks, curl with trustme certs).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import pytest

from aiosmtpd import smtp as smtp_module
from aiosmtpd.smtp import SMTP, Envelope, Session, TLSSetupException
from aiosmtpd.testing.transport import MemoryTransport, SMTPClient

from .util import Recorder


class _Ctx:
    verify_mode = ssl.CERT_NONE
    check_hostname = False


class TLSHandler(Recorder):
    def __init__(self, accept: bool = True) -> None:
        super().__init__()
        self.accept = accept
        self.starttls_sessions: list[Session] = []

    def handle_STARTTLS(self, server: SMTP, session: Session, envelope: Envelope) -> bool:
        self.starttls_sessions.append(session)
        return self.accept


def fake_upgrade(early: bytes = b"", fail: bool = False) -> Any:
    async def upgrade(transport: Any, protocol: Any, context: Any, *_: Any) -> MemoryTransport:
        await asyncio.sleep(0)
        if fail:
            transport.close()
            raise TLSSetupException("handshake failed")
        # As loop.start_tls does: the TLS layer takes the cleartext transport over.
        transport.set_protocol(asyncio.Protocol())
        new = MemoryTransport(extra={"ssl_object": object(), "cipher": ("C", "TLSv1.3", 256)})
        new.set_protocol(protocol)
        # Decrypted bytes delivered before the session task resumes (TLS 1.3 early EHLO).
        if early:
            protocol.data_received(early)
        upgraded.append(new)
        ready.set()
        return new

    upgraded: list[MemoryTransport] = []
    ready = asyncio.Event()
    upgrade.upgraded = upgraded  # type: ignore[attr-defined]
    upgrade.ready = ready  # type: ignore[attr-defined]
    return upgrade


async def _output_until(transport: MemoryTransport, marker: bytes) -> bytes:
    while marker not in transport.output:
        await transport.wait_for_output()
    return bytes(transport.output)


@pytest.mark.asyncio
async def test_starttls_resets_session_and_keeps_early_data(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    upgrade = fake_upgrade(early=b"EHLO again\r\n")
    monkeypatch.setattr(smtp_module, "upgrade", upgrade)
    handler = TLSHandler()
    plain = MemoryTransport()
    server = SMTP(handler, hostname="mx.test", tls_context=_Ctx(), auth_require_tls=True)
    async with SMTPClient(server, plain) as client:
        ehlo = await client.command("EHLO c")
        assert "STARTTLS" in ehlo.lines
        assert not any(line.startswith("AUTH") for line in ehlo.lines)
        # Plaintext pipelined after STARTTLS is discarded (CVE-2011-0411 class).
        await client.send(b"STARTTLS\r\nMAIL FROM:<injected@x.y>\r\n")
        reply = await client.reply()
        assert (reply.code, reply.text) == (220, "Ready to start TLS")
        await upgrade.ready.wait()
        (tls,) = upgrade.upgraded
        # A guard, not a wait: without the early-input stash the EHLO would be lost.
        async with asyncio.timeout(5):
            out = await _output_until(tls, b"250 HELP\r\n")
        assert out.startswith(b"250-mx.test\r\n")
        assert b"250-STARTTLS" not in out
        assert b"250-AUTH LOGIN PLAIN\r\n" in out
        assert server.transport is tls
        assert server._original_transport is plain
        assert server._tls_protocol
        assert server.session.ssl["cipher"] == ("C", "TLSv1.3", 256)
        assert server.session.host_name == "again"
        assert handler.starttls_sessions == [server.session]
        assert plain.output.count(b"\r\n") == 1 + len(ehlo.lines) + 1
        tls.close()
        await tls.wait_closed()
        await asyncio.wait([server._handler_coroutine])  # type: ignore[list-item]
    assert plain.is_closing()


@pytest.mark.asyncio
async def test_handle_starttls_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    upgrade = fake_upgrade(early=b"NOOP\r\nQUIT\r\n")
    monkeypatch.setattr(smtp_module, "upgrade", upgrade)
    server = SMTP(TLSHandler(accept=False), hostname="mx.test", tls_context=_Ctx())
    async with SMTPClient(server) as client:
        await client.command("EHLO c")
        assert (await client.command("STARTTLS")).code == 220
        await asyncio.wait([server._handler_coroutine])  # type: ignore[list-item]
        (tls,) = upgrade.upgraded
        assert tls.output == b"554 Command refused due to lack of security\r\n221 Bye\r\n"


@pytest.mark.asyncio
async def test_failed_handshake_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(smtp_module, "upgrade", fake_upgrade(fail=True))
    server = SMTP(Recorder(), hostname="mx.test", tls_context=_Ctx())
    async with SMTPClient(server) as client:
        await client.command("EHLO c")
        assert (await client.command("STARTTLS")).code == 220
        await client.wait_closed()
        await asyncio.wait([server._handler_coroutine])  # type: ignore[list-item]
        assert server._tls_protocol is None
