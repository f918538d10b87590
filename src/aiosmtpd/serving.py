"""Server-wide serving policy: connection caps, graceful drain, one port on many addresses.

Owns: ``ConnectionLimiter`` (the connection counts one listener shares between all its
sessions: a total and one per client address), ``drain_sessions()`` (the graceful stop of
DECISIONS "graceful stop" applied to every session of a server, with a deadline),
``reserve_port()`` (binding ``port=0`` to the SAME free port on every address of a host,
so a dual-stack listener has one port number), and what every server object (the
controllers, ``aiosmtpd.server.SMTPServer``) does alike: ``serving_smtp_kwargs()`` (the
``SMTP`` arguments a server adds), ``listener_ssl_context()`` (implicit TLS behind a PROXY
header), ``create_inet_server()`` and ``abort_session()``.

Invariants: a limiter counts only admitted connections and each admitted connection
releases its slot exactly once; it is used from one event loop (one per process: with
``--workers`` each worker counts its own connections). ``drain_sessions`` never returns
while a session it was given can still deliver a message: sessions still busy at the
deadline are told 421 and their tasks are cancelled and awaited.

Must not know: SMTP commands. It only calls the protocol's ``begin_shutdown()`` /
``shutdown_now()`` and awaits its session task (``_handler_coroutine``).
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from public import public

#: Seconds a graceful stop lets a transaction in progress finish (controllers and CLI).
DEFAULT_SHUTDOWN_TIMEOUT: float = 30.0


def _check_cap(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer or None, not {value!r}")
    return value


@public
class ConnectionLimiter:
    """Caps on the connections of one server: in total and per client address.

    Create one per listening server and give it to every ``SMTP`` object the server builds
    (``SMTP(..., connection_limiter=limiter)``; the controllers and the CLI do this for
    ``max_connections`` / ``max_connections_per_address``). The client address is the one
    a PROXY header names when there is one. ``None`` means no cap.
    """

    def __init__(
        self, max_connections: int | None = None, max_connections_per_address: int | None = None
    ) -> None:
        self.max_connections = _check_cap("max_connections", max_connections)
        self.max_connections_per_address = _check_cap(
            "max_connections_per_address", max_connections_per_address
        )
        self._total = 0
        self._per_address: dict[str, int] = {}

    @property
    def total(self) -> int:
        """Connections admitted and not yet released."""
        return self._total

    def count(self, address: str) -> int:
        """Admitted connections from ``address``."""
        return self._per_address.get(address, 0)

    def acquire(self, address: str) -> bool:
        """Admit one connection from ``address``; ``False`` (nothing counted) if over a cap."""
        if self.max_connections is not None and self._total >= self.max_connections:
            return False
        current = self._per_address.get(address, 0)
        if (
            self.max_connections_per_address is not None
            and current >= self.max_connections_per_address
        ):
            return False
        self._total += 1
        self._per_address[address] = current + 1
        return True

    def release(self, address: str) -> None:
        """Forget one admitted connection from ``address``."""
        current = self._per_address.get(address, 0)
        if current <= 0:
            raise RuntimeError(f"release() without acquire() for {address!r}")
        if current == 1:
            del self._per_address[address]
        else:
            self._per_address[address] = current - 1
        self._total -= 1


def _session_task(protocol: Any) -> asyncio.Future[Any] | None:
    task = getattr(protocol, "_handler_coroutine", None)
    if isinstance(task, asyncio.Future) and not task.done():
        return task
    return None


async def drain_sessions(
    protocols: Iterable[Any],
    timeout: float,
    *,
    notified: Callable[[], object] | None = None,
) -> None:
    """Gracefully end ``protocols`` (DECISIONS "graceful stop"); the listener is closed first.

    Idle sessions get ``421 4.3.2`` at once (``begin_shutdown``); a transaction whose DATA
    is being received or whose hook runs may finish for ``timeout`` seconds; then the rest
    get the 421 (``shutdown_now``) and their tasks are cancelled and awaited. ``notified``
    is called once every session has been told to stop.
    """
    sessions = list(protocols)
    for protocol in sessions:
        begin = getattr(protocol, "begin_shutdown", None)
        if callable(begin):
            begin()
    if notified is not None:
        notified()
    tasks = {task: protocol for protocol in sessions if (task := _session_task(protocol))}
    if not tasks:
        return
    _done, pending = await asyncio.wait(tasks, timeout=max(timeout, 0.0))
    for task in pending:
        now = getattr(tasks[task], "shutdown_now", None)
        if callable(now):
            now()
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)


def loopback_hosts(host: str) -> str | list[str]:
    """``localhost`` as every loopback address this machine has (IPv4 and, if usable, IPv6).

    The CLI's default host (and ``-l :PORT``) is ``localhost``; resolvers often map it to
    127.0.0.1 only, which would leave IPv6 clients of the same machine out.
    """
    if host != "localhost" or not socket.has_ipv6:
        return host
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return host
    return ["127.0.0.1", "::1"]


def reserve_port(host: str | Sequence[str] | None, port: int) -> tuple[int, list[socket.socket]]:
    """Pick one port free on every address of ``host`` (``port=0``) and hold it.

    Returns the port and SO_REUSEPORT sockets bound (not listening) to it, one per
    address: a listener created with ``reuse_port=True`` on that port can then bind every
    address without a race; close the sockets once it listens. A port other than 0 is
    returned as is, with no socket.
    """
    if port != 0:
        return port, []
    hosts = [host] if host is None or isinstance(host, str) else list(host)
    infos = [
        info
        for name in hosts
        for info in socket.getaddrinfo(name, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    ]
    addresses = list(
        dict.fromkeys((info[0], info[4]) for info in infos)  # (family, sockaddr), deduplicated
    )
    for _attempt in range(PORT_ATTEMPTS - 1):
        try:
            return _reserve_on_all(addresses)
        except OSError as error:
            # The port picked on the first address was taken on another: pick again.
            if error.errno != errno.EADDRINUSE:
                raise
    return _reserve_on_all(addresses)


#: How many ports ``reserve_port`` tries before it gives up (a port free on the first
#: address may be in use on another; a handful of tries makes that vanishingly rare).
PORT_ATTEMPTS = 8


def _reserve_on_all(addresses: Sequence[tuple[int, Any]]) -> tuple[int, list[socket.socket]]:
    """Bind the port the first address gets on every other address, or raise."""
    reserved: list[socket.socket] = []
    chosen = 0
    try:
        for family, address in addresses:
            sock = socket.socket(family, socket.SOCK_STREAM)
            reserved.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address[0], chosen, *address[2:]))
            chosen = sock.getsockname()[1]
    except BaseException:
        for sock in reserved:
            sock.close()
        raise
    return chosen, reserved


def check_shutdown_timeout(shutdown_timeout: float) -> float:
    """``shutdown_timeout`` as a float; a negative one is a ``ValueError``."""
    if shutdown_timeout < 0:
        raise ValueError("shutdown_timeout must be >= 0")
    return float(shutdown_timeout)


def serving_smtp_kwargs(
    smtp_kwargs: dict[str, Any],
    *,
    server_hostname: str | None,
    max_connections: int | None,
    max_connections_per_address: int | None,
) -> dict[str, Any]:
    """Add to ``smtp_kwargs`` (in place, and return it) what a server gives every ``SMTP``.

    ``server_hostname`` becomes ``hostname``; ``enable_SMTPUTF8`` defaults to True; the
    connection caps become ONE ``ConnectionLimiter`` shared by all the server's sessions.
    """
    if server_hostname:
        smtp_kwargs["hostname"] = server_hostname
    smtp_kwargs.setdefault("enable_SMTPUTF8", True)
    if max_connections is not None or max_connections_per_address is not None:
        smtp_kwargs["connection_limiter"] = ConnectionLimiter(
            max_connections, max_connections_per_address
        )
    return smtp_kwargs


def listener_ssl_context(
    ssl_context: ssl.SSLContext | None, smtp_kwargs: dict[str, Any]
) -> ssl.SSLContext | None:
    """The context the listener itself wraps connections in (implicit TLS), or None.

    HAProxy sends the PROXY header in the clear, before the TLS handshake: with
    ``proxy_protocol_timeout`` set, the session reads the header and then starts TLS
    itself (``proxy_tls_context``, set here in ``smtp_kwargs``), so the listener must not.
    """
    if ssl_context is not None and smtp_kwargs.get("proxy_protocol_timeout"):
        smtp_kwargs["proxy_tls_context"] = ssl_context
        return None
    return ssl_context


async def create_inet_server(
    loop: asyncio.AbstractEventLoop,
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    host: str | Sequence[str] | None,
    port: int,
    ssl_context: ssl.SSLContext | None,
) -> asyncio.Server:
    """Listen on TCP ``host``:``port``; ``port=0`` is ONE free port on every address."""
    port, reserved = reserve_port(host, port)
    if len(reserved) == 1:
        # One address: let the kernel pick as usual.
        reserved.pop().close()
        port = 0
    try:
        return await loop.create_server(
            protocol_factory,
            host=host,
            port=port,
            ssl=ssl_context,
            reuse_port=True if reserved else None,
        )
    finally:
        for sock in reserved:
            sock.close()


def abort_session(protocol: object) -> None:
    """End one session at once: abort its transports, cancel its task (no goodbye)."""
    # 1.4-style subclasses keep the live transport in ``transport`` and, after their own
    # STARTTLS, the socket's transport in ``_original_transport``: close both, at once.
    for name in ("transport", "_original_transport"):
        transport = getattr(protocol, name, None)
        abort = getattr(transport, "abort", None)
        if callable(abort):
            abort()
    session_task = getattr(protocol, "_handler_coroutine", None)
    if isinstance(session_task, asyncio.Future) and not session_task.done():
        session_task.cancel()
