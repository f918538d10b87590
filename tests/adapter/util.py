"""Helpers for adapter tests: a recording handler and a connected in-memory client."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session
from aiosmtpd.testing.transport import MemoryTransport, SMTPClient


class Recorder:
    """A handler that keeps every delivered envelope."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.sessions: list[Session] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        self.sessions.append(session)
        return "250 OK"


class SizeRecorder:
    """A handler that keeps only the size of the last delivered message's content."""

    def __init__(self) -> None:
        self.size = -1

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        self.size = len(envelope.content)
        return "250 OK"


@contextlib.asynccontextmanager
async def connect(
    handler: Any = None,
    *,
    cls: type[SMTP] = SMTP,
    transport: MemoryTransport | None = None,
    **kwargs: Any,
) -> AsyncIterator[SMTPClient]:
    kwargs.setdefault("hostname", "mx.test")
    server = cls(handler if handler is not None else Recorder(), **kwargs)
    async with SMTPClient(server, transport) as client:
        yield client


async def lines(client: SMTPClient, *commands: str) -> list[str]:
    """Send each command, return each reply as ``"CODE text"`` (last line of multi-line)."""
    out = []
    for command in commands:
        reply = await client.command(command)
        out.append(f"{reply.code} {reply.lines[-1]}")
    return out
