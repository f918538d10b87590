"""STARTTLS (RFC 3207) for the SMTP adapter, with the public ``loop.start_tls()``.

Owns: upgrading a connection's transport in place after ``220 Ready to start TLS`` and
describing a TLS transport as the ``session.ssl`` dict hooks read.
Invariants: only public asyncio API (works on uvloop, DECISIONS row 8); a failed or
timed-out handshake closes the connection; the handshake cannot last forever.
Also the implicit TLS that follows a PROXY header (``upgrade(..., early=...)``): bytes of
the client's first TLS flight already read with the header are replayed into the TLS
layer through ``_ReplayTransport``.
Must not know: SMTP replies, the core (the caller tells the core about the upgrade).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

#: Seconds a client gets to finish the TLS handshake after ``220 Ready to start TLS``.
TLS_HANDSHAKE_TIMEOUT = 60.0

_SSL_INFO_NAMES = ("peername", "sockname", "sslcontext", "ssl_object", "peercert", "cipher")


def ssl_info(transport: asyncio.BaseTransport) -> dict[str, Any]:
    """The TLS facts of a transport, as the ``session.ssl`` mapping."""
    info = {name: transport.get_extra_info(name) for name in _SSL_INFO_NAMES}
    info["compression"] = transport.get_extra_info("compression")
    return info


class TLSSetupException(Exception):
    """The STARTTLS handshake failed; the connection is closed."""


class _ReplayTransport:
    """A transport that hands ``early`` bytes to its protocol before the socket's own.

    Given to ``loop.start_tls`` when bytes of the TLS handshake were already read (with a
    PROXY header): the TLS protocol gets them when reading resumes, then the socket's.
    Everything else is the wrapped transport's.
    """

    _start_tls_compatible = True

    def __init__(self, transport: Any, early: bytes) -> None:
        self._transport = transport
        self._early = early
        self._protocol: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def set_protocol(self, protocol: Any) -> None:
        self._protocol = protocol
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> Any:
        return self._protocol

    def resume_reading(self) -> None:
        early, self._early = self._early, b""
        if early and self._protocol is not None and not self._transport.is_closing():
            _feed(self._protocol, early)
        self._transport.resume_reading()


def _feed(protocol: Any, data: bytes) -> None:
    if isinstance(protocol, asyncio.BufferedProtocol):
        view = memoryview(data)
        while view:
            buffer = memoryview(protocol.get_buffer(len(view)))
            size = min(len(buffer), len(view))
            buffer[:size] = view[:size]
            protocol.buffer_updated(size)
            view = view[size:]
    else:
        protocol.data_received(data)


async def upgrade(
    transport: asyncio.BaseTransport,
    protocol: asyncio.BaseProtocol,
    context: ssl.SSLContext,
    handshake_timeout: float = TLS_HANDSHAKE_TIMEOUT,
    early: bytes = b"",
) -> asyncio.BaseTransport:
    """Run the server side of the TLS handshake; raise ``TLSSetupException`` on failure.

    ``early``: bytes the client sent for the handshake that were already read.
    """
    loop = asyncio.get_running_loop()
    target: Any = _ReplayTransport(transport, early) if early else transport
    try:
        new = await loop.start_tls(
            target,
            protocol,
            context,
            server_side=True,
            ssl_handshake_timeout=handshake_timeout,
        )
    except (OSError, ssl.SSLError, TimeoutError, RuntimeError) as error:
        if not transport.is_closing():
            transport.close()
        raise TLSSetupException(str(error) or type(error).__name__) from error
    if new is None:
        raise TLSSetupException("connection closed during the TLS handshake")
    return new
