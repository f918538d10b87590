"""STARTTLS (RFC 3207) for the SMTP adapter, with the public ``loop.start_tls()``.

Owns: upgrading a connection's transport in place after ``220 Ready to start TLS`` and
describing a TLS transport as the ``session.ssl`` dict hooks read.
Invariants: only public asyncio API (works on uvloop, DECISIONS row 8); a failed or
timed-out handshake closes the connection; the handshake cannot last forever.
Also the implicit TLS that follows a PROXY header (``upgrade(..., early=...)``): bytes of
the client's first TLS flight already read with the header are handed to the TLS protocol
that ``start_tls()`` installs, before the socket's next bytes (``_replay_early``). No
wrapper transport: uvloop's ``start_tls()`` accepts only its own transports.
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


def _feed(protocol: Any, data: bytes) -> None:
    # Duck-typed: uvloop's TLS protocol is buffered without subclassing BufferedProtocol.
    if hasattr(protocol, "get_buffer") and hasattr(protocol, "buffer_updated"):
        view = memoryview(data)
        while view:
            buffer = memoryview(protocol.get_buffer(len(view)))
            size = min(len(buffer), len(view))
            buffer[:size] = view[:size]
            protocol.buffer_updated(size)
            view = view[size:]
    else:
        protocol.data_received(data)


def _replay_early(
    transport: asyncio.BaseTransport,
    original: asyncio.BaseProtocol,
    early: bytes,
    handshake: asyncio.Future[Any],
) -> None:
    """Feed ``early`` to the TLS protocol once ``start_tls()`` has installed it.

    Both asyncio and uvloop install their TLS protocol with ``set_protocol()`` in the
    first step of ``start_tls()`` and schedule its ``connection_made`` (then
    ``resume_reading``) with ``call_soon``; feeding from a later ``call_soon`` puts the
    early bytes after ``connection_made`` and before anything read from the socket.
    """
    if handshake.done() or transport.is_closing():
        return
    loop = asyncio.get_running_loop()
    tls_protocol = transport.get_protocol()
    if tls_protocol is original:  # start_tls() has not taken its first step yet
        loop.call_soon(_replay_early, transport, original, early, handshake)
        return
    loop.call_soon(_feed, tls_protocol, early)


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
    # start_tls() pauses reading in its first step; until then nothing may reach the
    # plaintext protocol (a ClientHello read there would be lost), so pause here already.
    transport.pause_reading()  # type: ignore[attr-defined]
    handshake = asyncio.ensure_future(
        loop.start_tls(
            transport,  # type: ignore[arg-type]
            protocol,
            context,
            server_side=True,
            ssl_handshake_timeout=handshake_timeout,
        )
    )
    if early:
        loop.call_soon(_replay_early, transport, protocol, early, handshake)
    try:
        new = await handshake
    except (OSError, ssl.SSLError, TimeoutError, RuntimeError) as error:
        if not transport.is_closing():
            transport.close()
        raise TLSSetupException(str(error) or type(error).__name__) from error
    if new is None:
        raise TLSSetupException("connection closed during the TLS handshake")
    return new
