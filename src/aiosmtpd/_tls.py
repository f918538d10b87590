"""STARTTLS (RFC 3207) for the SMTP adapter, with the public ``loop.start_tls()``.

Owns: upgrading a connection's transport in place after ``220 Ready to start TLS`` and
describing a TLS transport as the ``session.ssl`` dict hooks read.
Invariants: only public asyncio API (works on uvloop, DECISIONS row 8); a failed or
timed-out handshake closes the connection; the handshake cannot last forever.
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


async def upgrade(
    transport: asyncio.BaseTransport,
    protocol: asyncio.BaseProtocol,
    context: ssl.SSLContext,
    handshake_timeout: float = TLS_HANDSHAKE_TIMEOUT,
) -> asyncio.BaseTransport:
    """Run the server side of the TLS handshake; raise ``TLSSetupException`` on failure."""
    loop = asyncio.get_running_loop()
    try:
        new = await loop.start_tls(
            transport,  # type: ignore[arg-type]
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
