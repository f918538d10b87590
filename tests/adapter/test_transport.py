"""The public in-memory transport and client (aiosmtpd.testing.transport)."""

from __future__ import annotations

import pytest

from aiosmtpd.smtp import SMTP
from aiosmtpd.testing.transport import MemoryTransport, SMTPClient

from .util import Recorder


@pytest.mark.asyncio
async def test_client_round_trip_and_unpacking() -> None:
    handler = Recorder()
    transport = MemoryTransport(peername=("192.0.2.9", 2525))
    async with SMTPClient(SMTP(handler, hostname="mx.test"), transport) as client:
        assert client.greeting is not None
        assert client.greeting.code == 220
        code, text = await client.command("EHLO me")
        assert code == 250
        assert text.splitlines()[0] == "mx.test"
        for line in ("MAIL FROM:<a@b.c>", "RCPT TO:<d@e.f>", "DATA"):
            await client.command(line)
        code, _ = await client.command(b"Subject: t\r\n\r\nbody\r\n.")
        assert code == 250
    assert handler.sessions[0].peer == ("192.0.2.9", 2525)
    assert transport.is_closing()
    assert transport.writes[0].startswith(b"220 mx.test ")
    assert bytes(transport.output) == b"".join(transport.writes)


@pytest.mark.asyncio
async def test_transport_flow_control_flags() -> None:
    transport = MemoryTransport(extra={"sslcontext": None})
    assert transport.get_extra_info("peername") == ("127.0.0.1", 54321)
    assert transport.get_extra_info("missing", "default") == "default"
    transport.pause_reading()
    assert not transport.is_reading()
    transport.resume_reading()
    assert transport.is_reading()
    transport.write(b"")
    assert transport.writes == []


@pytest.mark.asyncio
async def test_reply_after_close_raises() -> None:
    client = SMTPClient(SMTP(Recorder(), hostname="mx.test"))
    await client.connect()
    assert (await client.command("QUIT")).code == 221
    await client.wait_closed()
    with pytest.raises(ConnectionResetError):
        await client.reply()
    with pytest.raises(ConnectionResetError):
        await client.send(b"NOOP\r\n")
    await client.close()
