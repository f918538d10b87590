"""An SMTP/LMTP server for a program that already runs an asyncio loop: ``async with``.

Owns: ``SMTPServer``, a listening server on the CURRENT running loop (no thread, no loop
of its own): ``start()`` / ``stop()`` / ``serve_forever()`` and ``async with``. It listens
on TCP ``hostname``:``port`` or on a Unix socket, optionally with implicit TLS, and builds
one protocol object (``protocol_class``, ``SMTP`` by default; override ``factory()`` for
more) per connection with the same ``SMTP`` keyword arguments a controller would pass
(``aiosmtpd.serving.serving_smtp_kwargs``).

Invariants:
  * ``start()`` returns once the server listens and ``factory()`` has run once, so a bad
    ``SMTP`` keyword argument is raised from ``start()`` (and nothing is left listening).
  * ``stop()`` is graceful (DECISIONS "graceful stop", ``serving.drain_sessions``): stop
    accepting, 421 to idle sessions, transactions in progress may finish for
    ``shutdown_timeout`` seconds, 421 to the rest; then every connection still open is
    aborted and the listener closed. After ``stop()`` no socket or task of this server is
    left, whatever ended the ``async with`` block (an exception, a cancellation).
  * ``stop()`` is idempotent; a stopped server can be started again.

Must not know: the SMTP protocol, threads, or how a loop is created.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import weakref
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import Any

from public import public

from aiosmtpd.controller import get_localhost
from aiosmtpd.serving import (
    DEFAULT_SHUTDOWN_TIMEOUT,
    abort_session,
    check_shutdown_timeout,
    create_inet_server,
    drain_sessions,
    listener_ssl_context,
    serving_smtp_kwargs,
)
from aiosmtpd.smtp import SMTP

__all__: list[str] = []

#: The TCP port used when neither ``port`` nor ``unix_socket`` is given (as the controllers).
DEFAULT_PORT = 8025
# How long stop() waits for the listener to report every connection gone; the connections
# were aborted already, so this is a safety net, not a policy.
_CLOSE_TIMEOUT = 5.0


@public
class SMTPServer:
    """Serve SMTP (or LMTP) on the running event loop while an ``async with`` block runs.

    ::

        async with SMTPServer(handler, hostname="127.0.0.1", port=0) as server:
            print(server.port)  # the bound port
            ...                 # the server serves while the block runs

    ``hostname`` / ``port`` (TCP; ``port=0`` picks a free port, read ``port`` afterwards;
    ``hostname=""`` is every interface) or ``unix_socket`` (a path, removed on stop).
    ``ssl_context`` wraps every connection in TLS from the first byte (implicit TLS, port
    465 style; for STARTTLS pass ``tls_context=`` to ``SMTP`` instead). ``protocol_class``
    is the protocol built per connection, e.g. ``aiosmtpd.lmtp.LMTP``. ``server_hostname``,
    ``max_connections``, ``max_connections_per_address`` and ``shutdown_timeout`` mean
    what they mean for ``aiosmtpd.controller.Controller``; every other keyword argument
    is passed to ``protocol_class`` (``enable_SMTPUTF8`` defaults to True).
    """

    def __init__(
        self,
        handler: Any,
        hostname: str | None = None,
        port: int | None = None,
        *,
        unix_socket: str | os.PathLike[str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        protocol_class: type[SMTP] = SMTP,
        server_hostname: str | None = None,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
        max_connections: int | None = None,
        max_connections_per_address: int | None = None,
        **SMTP_parameters: Any,
    ) -> None:
        if unix_socket is not None and (hostname is not None or port is not None):
            raise ValueError("give either unix_socket or hostname/port, not both")
        self.handler = handler
        #: The TCP address listened on (as for a Controller, ``None`` given means the
        #: loopback address, ``""`` every interface); None with ``unix_socket``.
        self.hostname: str | None = None
        if unix_socket is None:
            self.hostname = get_localhost() if hostname is None else hostname
        #: The TCP port; once started with ``port=0``, the port actually bound.
        self.port: int | None = (
            None if unix_socket is not None else (DEFAULT_PORT if port is None else port)
        )
        self._requested_port = self.port
        self.unix_socket: str | None = None if unix_socket is None else os.fspath(unix_socket)
        self.ssl_context = ssl_context
        self.protocol_class = protocol_class
        #: Seconds a stop lets a transaction in progress finish before it gets 421.
        self.shutdown_timeout = check_shutdown_timeout(shutdown_timeout)
        #: The keyword arguments ``factory()`` passes to ``protocol_class``.
        self.SMTP_kwargs: dict[str, Any] = serving_smtp_kwargs(
            dict(SMTP_parameters),
            server_hostname=server_hostname,
            max_connections=max_connections,
            max_connections_per_address=max_connections_per_address,
        )
        self._listener_ssl = listener_ssl_context(ssl_context, self.SMTP_kwargs)
        #: The listening ``asyncio.Server`` while started, else None.
        self.server: asyncio.Server | None = None
        # Every protocol object built, so stop() can end their sessions; weak, so a
        # finished connection is forgotten by itself.
        self._protocols: weakref.WeakSet[Any] = weakref.WeakSet()
        self._stopped: asyncio.Event | None = None
        #: Set (during ``stop()``) once the listener is closed and every session has been
        #: told to finish; created by ``start()``.
        self.stopping: asyncio.Event | None = None

    # --- what to serve -------------------------------------------------------------------

    def factory(self) -> Any:
        """Build the protocol object for one connection (override for a custom one)."""
        return self.protocol_class(self.handler, **self.SMTP_kwargs)

    def _build_protocol(self) -> Any:
        protocol = self.factory()
        self._protocols.add(protocol)
        return protocol

    # --- life cycle ----------------------------------------------------------------------

    @property
    def is_serving(self) -> bool:
        """True between a successful ``start()`` and ``stop()``."""
        return self.server is not None

    @property
    def sockets(self) -> tuple[Any, ...]:
        """The listening sockets (empty when not serving)."""
        return tuple(self.server.sockets) if self.server is not None else ()

    async def start(self) -> None:
        """Listen; return once listening and ``factory()`` has run once (its errors raise)."""
        if self.server is not None:
            raise RuntimeError("SMTPServer is already serving")
        loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self.stopping = asyncio.Event()
        self.port = self._requested_port
        self.server = await self._listen(loop)
        try:
            self.factory()
        except BaseException:
            await self.stop()
            raise
        if self.port == 0 and self.server.sockets:
            self.port = self.server.sockets[0].getsockname()[1]

    async def _listen(self, loop: asyncio.AbstractEventLoop) -> asyncio.Server:
        if self.unix_socket is not None:
            return await loop.create_unix_server(
                self._build_protocol, path=self.unix_socket, ssl=self._listener_ssl
            )
        assert self.port is not None
        return await create_inet_server(
            loop, self._build_protocol, self.hostname or None, self.port, self._listener_ssl
        )

    async def stop(self) -> None:
        """Stop gracefully (see the module docstring); nothing of the server is left."""
        server, self.server = self.server, None
        if server is None:
            return
        try:
            server.close()
            await drain_sessions(
                list(self._protocols),
                self.shutdown_timeout,
                notified=self.stopping.set if self.stopping is not None else None,
            )
        finally:
            for protocol in list(self._protocols):
                abort_session(protocol)
            with suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), _CLOSE_TIMEOUT)
            # One loop turn, so aborted transports run connection_lost and close sockets.
            await asyncio.sleep(0)
            self._remove_unix_socket()
            if self._stopped is not None:
                self._stopped.set()

    def _remove_unix_socket(self) -> None:
        # Python < 3.13 leaves the socket file behind; remove it only if it is a socket.
        if self.unix_socket is not None:
            with suppress(OSError):
                if Path(self.unix_socket).is_socket():
                    os.unlink(self.unix_socket)

    async def serve_forever(self) -> None:
        """Serve (starting if needed) until ``stop()`` is called or this task is cancelled.

        Cancelling it stops the server gracefully before the cancellation propagates.
        """
        if self.server is None:
            await self.start()
        stopped = self._stopped
        assert stopped is not None
        try:
            await stopped.wait()
        finally:
            await self.stop()

    async def __aenter__(self) -> SMTPServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
