"""The PROXY protocol stage of a connection: before the greeting, and before TLS.

Owns: reading the PROXY header from the engine's buffer with the pure parser
(``proxy_protocol.parse_proxy_header``), asking ``handle_PROXY``, handing the bytes after the
header to the core, and, on an implicit-TLS listener behind a proxy, starting TLS once
the header is read (the early handshake bytes are replayed by ``_tls.upgrade``).
Invariants: a bad header, EOF, a timeout, a missing hook or a falsy hook result means the
connection closes without a reply (as in 1.4), with the reason logged; the header is
never parsed by anything but the pure parser.
Must not know: SMTP commands, the core's framing.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ._session import MISSING
from ._tls import TLS_HANDSHAKE_TIMEOUT, TLSSetupException, ssl_info, upgrade
from .proxy_protocol import parse_proxy_header

if TYPE_CHECKING:
    from ._engine import SessionEngine

log = logging.getLogger("mail.log")


async def accept_proxy_header(engine: SessionEngine) -> bool:
    """Read the PROXY header (haproxy proxy-protocol.txt) and ask ``handle_PROXY``.

    ``False`` (close without a reply, as 1.4 did) on a bad header, EOF, timeout, a
    missing hook or a falsy hook result.
    """
    while True:
        assert engine._proxy_buffer is not None
        result = parse_proxy_header(engine._proxy_buffer)
        if result is not None:
            break
        if engine._proxy_eof or engine._lost or engine._closing:
            if not engine._closing:
                logging.getLogger("mail.debug").warning(
                    "PROXY error: connection closed before the header was complete"
                )
            return False
        await engine._wait_for_input()
    if engine._proxy_timer is not None:
        engine._proxy_timer.cancel()
    if engine._tls_after_proxy is not None:
        return await _accept_proxy_then_tls(engine, result.proxy_data, result.consumed)
    rest = bytes(engine._proxy_buffer[result.consumed :])
    engine._proxy_buffer = None
    if not result.proxy_data.valid:
        return False
    engine.session.proxy_data = result.proxy_data
    if rest:
        engine._conn.receive_data(rest)
    if engine._proxy_eof:
        engine._conn.receive_data(b"")
    status = await engine._call_handler_hook("PROXY", result.proxy_data)
    return status is not MISSING and bool(status)


async def _accept_proxy_then_tls(engine: SessionEngine, proxy_data: Any, consumed: int) -> bool:
    """Implicit TLS behind a PROXY header: the header is in the clear, then the handshake.

    Bytes after the header stay buffered (they belong to the handshake) until
    ``loop.start_tls`` takes the transport over, in the same step as they are taken.
    """
    assert engine._proxy_buffer is not None
    assert engine._tls_after_proxy is not None
    del engine._proxy_buffer[:consumed]
    if not proxy_data.valid:
        return False
    engine.session.proxy_data = proxy_data
    status = await engine._call_handler_hook("PROXY", proxy_data)
    if status is MISSING or not status or engine._proxy_eof or engine._lost or engine._closing:
        return False
    early = bytes(engine._proxy_buffer)
    engine._proxy_buffer = None
    transport = engine.transport
    # SMTP's tls_handshake_timeout bounds this handshake as it bounds STARTTLS's.
    timeout = float(getattr(engine, "_tls_handshake_timeout", TLS_HANDSHAKE_TIMEOUT))
    try:
        new = await upgrade(transport, engine, engine._tls_after_proxy, timeout, early=early)
    except TLSSetupException as error:
        log.info("%r TLS handshake after PROXY header failed: %s", engine.session.peer, error)
        return False
    engine._original_transport = transport
    engine.transport = new
    engine._reader._transport = new
    engine._writer._transport = new
    engine._implicit_tls = True
    engine.session.ssl = ssl_info(new)
    # start_tls() resumed reading on the socket and the TLS transport was never paused:
    # a pause taken while handle_PROXY decided must not be believed to hold any more, or
    # the high-water check in data_received would never pause the TLS transport.
    engine._reading_paused = False
    return True
