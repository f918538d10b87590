"""The engine's side of STARTTLS (RFC 3207): what arrives around the handshake.

Owns: telling plaintext that arrives after ``220 Ready to start TLS`` from the client's
first encrypted bytes (``plaintext_after_starttls``: the STARTTLS plaintext-injection
attack, CVE-2011-0411, must never execute a command), and restarting the core and the
session once the handshake completed (``finish_upgrade``, RFC 3207 §4.2: forget
everything learnt before TLS).
Invariants: no byte the cleartext transport delivers after the 220 is ever parsed.
Must not know: how the handshake is run (``_tls``), SMTP commands.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ._session import _ConnectionGone
from ._tls import ssl_info

if TYPE_CHECKING:
    from ._engine import SessionEngine

log = logging.getLogger("mail.log")


def plaintext_after_starttls(engine: SessionEngine) -> bool:
    """Whether ``data_received`` is being called by the cleartext transport.

    ``loop.start_tls`` hands the cleartext transport to its TLS protocol; until then
    (a handshake started late, by a plugin or after a write drain) any byte the
    cleartext transport delivers to us is plaintext. Unknown transports: plaintext.
    """
    plain = engine._tls_plain_transport
    if plain is None:
        return False
    get_protocol = getattr(plain, "get_protocol", None)
    return get_protocol is None or get_protocol() is engine


def finish_upgrade(engine: SessionEngine) -> None:
    """After ``220`` to STARTTLS and the handshake: restart the core and the session.

    Runs after our own ``smtp_STARTTLS`` and after a plugin's replacement of it (which
    only swaps transports); a replacement that did not upgrade ends the connection.
    """
    transport = engine._active_transport
    if transport is None or transport.get_extra_info("ssl_object") is None:
        log.info("%r STARTTLS did not complete", engine.session.peer)
        raise _ConnectionGone
    if not engine._tls_protocol:
        engine._tls_protocol = transport
    engine._tls_plain_transport = None
    engine._conn.tls_established()
    early, engine._tls_early_input = engine._tls_early_input or [], None
    for data in early:
        engine._conn.receive_data(data)
    peer, proxy_data = engine.session.peer, engine.session.proxy_data
    engine.session = engine._create_session()
    engine.session.peer = peer
    # The PROXY header describes the connection, which STARTTLS keeps.
    engine.session.proxy_data = proxy_data
    engine.session.ssl = ssl_info(transport)
    engine._set_rset_state()
    hook = engine._handle_hooks.get("STARTTLS")
    if hook is not None:
        engine._tls_handshake_okay = bool(hook(engine, engine.session, engine.envelope))
