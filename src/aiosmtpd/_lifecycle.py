"""The beginning and the end of a session: admission, timeouts, stops, ``_handler_coroutine``.

Owns: admitting a connection against the server's ``ConnectionLimiter`` (``admit``: the
PROXY header's source address counts when there is one), ending a session from outside a
command (the idle and PROXY-header timeouts, a peer that stopped reading its replies, a
closing reply: ``close_with``), the graceful-stop entry points
(``begin_shutdown``, ``shutdown_now``) and the future that stands for
1.4's per-connection task (``session_end``): done when the session is over, and
cancelling it ends the session at once.
Invariants: a slot taken is released exactly once (``SessionEngine._end_connection``);
``session_end`` is made only when somebody asks for it, so an idle connection holds no
future.
Must not know: SMTP commands, the core.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ._core import replies as R

if TYPE_CHECKING:
    from ._engine import SessionEngine

log = logging.getLogger("mail.log")


#: Rendered greetings by (hostname, ident): one per server, not one ``format`` per connection.
_GREETINGS: dict[tuple[str, str], bytes] = {}
_GREETINGS_MAX = 64


def greeting_line(hostname: str, ident: str) -> bytes:
    """The ``220 <hostname> <ident>`` line (no CRLF) a session starts with."""
    key = (hostname, ident)
    line = _GREETINGS.get(key)
    if line is None:
        text = R.GREETING.text.format(hostname=hostname, ident=ident)
        line = R.GREETING.with_text(text).render().encode("utf-8")
        if len(_GREETINGS) >= _GREETINGS_MAX:
            _GREETINGS.clear()
        _GREETINGS[key] = line
    return line


def client_address(engine: SessionEngine) -> str:
    """The address connection caps count: the PROXY header's source, else the peer's."""
    proxy = engine.session.proxy_data
    source = getattr(proxy, "src_addr", None)
    if source is not None:
        return str(source)
    peer = engine.session.peer
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)


def admit(engine: SessionEngine) -> bool:
    """Take a slot of the connection caps, or answer 421 4.7.0 and close."""
    limiter = engine._connection_limiter
    if limiter is None:
        return True
    address = client_address(engine)
    if limiter.acquire(address):
        engine._limiter_key = address
        return True
    log.warning("%r refused: too many connections", engine.session.peer)
    engine._close_with(R.TOO_MANY_CONNECTIONS)
    return False


def session_end(engine: SessionEngine) -> asyncio.Future[None]:
    """The future behind ``_handler_coroutine``, made on first use."""
    ended = engine._ended
    if ended is None:
        ended = engine._ended = (engine._loop or asyncio.get_running_loop()).create_future()
        if engine._conn is not None and engine._session_over():
            ended.set_result(None)
        else:
            ended.add_done_callback(lambda future: _cancelled(engine, future))
    return ended


def _cancelled(engine: SessionEngine, ended: asyncio.Future[None]) -> None:
    """``_handler_coroutine.cancel()``: end the session now, as cancelling 1.4's task did."""
    if not ended.cancelled():
        return
    engine._closing = True
    if engine._task is not None:
        engine._task.cancel()
    transport = engine._active_transport
    if transport is not None and not transport.is_closing():
        transport.abort()
    if engine._task is None:
        engine._end_connection()


def _stop(engine: SessionEngine) -> None:
    if engine._proxy_buffer is not None and engine._tls_after_proxy is not None:
        # TLS has not started: a cleartext 421 would be junk to the client's TLS stack.
        engine._closing = True
        transport = engine._active_transport
        if transport is not None and not transport.is_closing():
            engine._close_transport(transport)
        engine._wake()
    else:
        engine._close_with(R.SHUTTING_DOWN)


def begin_shutdown(engine: SessionEngine) -> None:
    """421 and close now if the session waits for a command; else after the command."""
    engine._shutdown_requested = True
    between_commands = engine._task is None and engine._suspended is None
    waiting = between_commands or engine._proxy_buffer is not None
    if waiting and not engine._closing and not engine._lost:
        _stop(engine)


def shutdown_now(engine: SessionEngine) -> None:
    """421 and close, whatever is in progress."""
    engine._shutdown_requested = True
    if not engine._closing and not engine._lost:
        _stop(engine)


def drop_stalled(engine: SessionEngine) -> None:
    """The peer has not read its replies for a whole ``timeout``: abort its connection."""
    log.info("%r stopped reading its replies; connection dropped", engine.session.peer)
    engine._closing = True
    if engine._conn is not None:
        engine._conn.close()
    transport = engine._active_transport
    if transport is not None:
        transport.abort()
    engine._writes.release()
    engine._kick()


def proxy_timeout(engine: SessionEngine) -> None:
    """No complete PROXY header within ``proxy_protocol_timeout``: close without a reply."""
    if engine._proxy_buffer is None:
        return
    log.info("%r PROXY header timeout", engine.session.peer)
    engine._closing = True
    if not engine._active_transport.is_closing():
        engine._active_transport.close()
    engine._wake()


def idle_timeout(engine: SessionEngine) -> None:
    """The idle timer fired: 421 and close (the PROXY stage has its own timeout)."""
    if engine._proxy_buffer is not None:
        engine._on_proxy_timeout()
        return
    if engine._closing or engine._lost:
        return
    log.info("%r connection timeout", engine.session.peer)
    engine._close_with(R.TIMEOUT, hostname=engine.hostname)


def close_with(engine: SessionEngine, reply: R.Reply, **fields: Any) -> None:
    """Write ``reply`` after whatever is buffered, then close and end the session."""
    engine._flush()
    engine._closing = True
    if engine._conn is not None:
        engine._conn.close()
    transport = engine._active_transport
    if transport is not None and not transport.is_closing():
        transport.write((engine._render(reply, **fields) + "\r\n").encode("utf-8"))
        engine._close_transport(transport)
    if engine._task is not None:
        engine._wake()  # the task sees _closing and ends the session
    else:
        engine._end_connection()


def close_transport(engine: SessionEngine, transport: Any) -> None:
    """Close, or abort if the peer has stopped reading.

    ``close()`` waits for the write buffer to drain, which never happens for a client that
    stopped reading: its connection (and its connection-cap slot) would live forever.
    Nothing waits on the write gate any more either way.
    """
    if engine._writes.paused:
        transport.abort()
        engine._writes.release()
    else:
        transport.close()  # (a gate that is not paused holds no waiter and no timer)
