"""Buffered reads of message content on transports that only buffer for non-``Protocol``s.

Owns: ``ContentReads``, a forwarding protocol that a session installs on its transport
while it receives a big message (``begin``), and takes off again when the message ends
(``end``). uvloop's stream transports read into the protocol's own buffer
(``get_buffer``/``buffer_updated``) only when the protocol is *not* an
``asyncio.Protocol``; ``SMTP`` is one (1.4 programs may rely on it), so uvloop would hand
it a fresh ``bytes`` object per read, and a big message would fault fresh memory in once
more for every read (about 2.5x the page faults per GB of asyncio's buffered path). The
forwarder is not an ``asyncio.Protocol``: with it installed, uvloop reads into the shared
per-thread receive buffer (``_flow.receive_buffer``) as asyncio does.

Invariants: installed only on a plain (not TLS) uvloop stream transport whose protocol is
the session itself, only while DATA content is being read, and only when the session's
class keeps the library's own ``data_received``/``get_buffer``/``buffer_updated``; every
protocol callback the transport makes while it is installed reaches the session
unchanged, so ``transport.get_protocol()`` is the session at every other moment (STARTTLS,
PROXY and user code see the ``SMTP`` object, as on asyncio).

Must not know: SMTP, the core, what the session does with the bytes.
"""

from __future__ import annotations

from typing import Any

from ._flow import receive_buffer

#: Transport classes that read into a protocol's buffer only for non-``asyncio.Protocol``
#: protocols (uvloop's plain stream transports; its TLS transport buffers already).
_FORWARDED_TRANSPORTS = frozenset(
    {("uvloop.loop", "TCPTransport"), ("uvloop.loop", "UnixTransport")}
)


class ContentReads:
    """The transport's protocol while a session reads a big message (see the module)."""

    __slots__ = ("session",)

    def __init__(self, session: Any) -> None:
        self.session = session

    def get_buffer(self, sizehint: int) -> memoryview:
        return receive_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        self.session.buffer_updated(nbytes)

    def data_received(self, data: bytes) -> None:
        self.session.data_received(data)

    def eof_received(self) -> bool | None:
        result: bool | None = self.session.eof_received()
        return result

    def connection_made(self, transport: Any) -> None:
        self.session.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.session.connection_lost(exc)

    def pause_writing(self) -> None:
        self.session.pause_writing()

    def resume_writing(self) -> None:
        self.session.resume_writing()


def begin(session: Any, transport: Any, library_reads: bool) -> ContentReads | None:
    """Install a forwarder for ``session`` on ``transport`` if that makes reads buffered.

    ``library_reads``: the session's class keeps the library's own read callbacks (a
    subclass that overrides ``data_received`` gets ``bytes`` from the transport as in 1.4).
    """
    kind = type(transport)
    if (
        not library_reads
        or (kind.__module__, kind.__name__) not in _FORWARDED_TRANSPORTS
        or transport.is_closing()
        or transport.get_protocol() is not session
    ):
        return None
    forwarder = ContentReads(session)
    transport.set_protocol(forwarder)
    return forwarder


def end(session: Any, transport: Any, forwarder: ContentReads | None) -> None:
    """Give ``transport`` back to ``session`` (a no-op once the transport let go of it)."""
    if forwarder is not None and transport.get_protocol() is forwarder:
        transport.set_protocol(session)
