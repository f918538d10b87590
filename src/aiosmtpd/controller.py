"""Controllers: run an ``SMTP`` server on its own event loop (threaded) or on yours (unthreaded).

Owns: the listening server's life cycle (create, serve, stop, close), the event loop of a
threaded controller, the 1.4-compatible controller attributes (``handler``, ``loop``,
``ssl_context``, ``SMTP_kwargs``, ``smtpd``, ``server``, ``server_coro``, ``hostname``,
``port``, ``unix_socket``) and the private ones that third-party subclasses rely on
(``_thread``, ``_thread_exception``, ``_factory_invoked``, ``_factory_invoker``, ``_run``,
``_trigger_server``; see shared/spec/DECISIONS.md, "Third-party code ...").

Invariants:
  * ``start()`` returns only when the server listens and ``factory()`` has run once, and it
    proves both without a network round trip (DECISIONS row 11): the base
    ``_trigger_server()`` asks the loop thread to run ``_factory_invoker()`` once, so a bad
    ``SMTP`` keyword argument or a missing certificate is raised from ``start()``.
  * ``stop()`` (and a failed ``start()``) leave no thread, socket, task or open loop behind:
    ``cancel_tasks()`` stops accepting, aborts the connections this controller made and
    cancels the loop's tasks; ``_run`` then closes what is left and closes the loop.
  * A stopped controller can be started again (a closed loop is replaced by a new one), and
    ``__init__`` can be run again on a stopped instance.
  * Stopping is graceful (DECISIONS "graceful stop"): ``stop()`` / ``end()`` first run
    ``_graceful_stop()`` on the loop (close the listener, 421 to idle sessions, let
    transactions in progress finish for ``shutdown_timeout`` seconds, 421 to the rest),
    and only then ``cancel_tasks`` (abort what is left) and ``_close_loop``.
  * ``max_connections`` / ``max_connections_per_address`` become ONE ``ConnectionLimiter``
    shared by every ``SMTP`` object this controller builds (``connection_limiter`` in
    ``SMTP_kwargs``).

Must not know: the SMTP protocol. It only builds protocol objects with ``factory()`` and
closes their transports on shutdown.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import os
import socket
import ssl
import threading
import warnings
import weakref
from abc import ABCMeta, abstractmethod
from collections.abc import Callable, Coroutine
from contextlib import suppress
from pathlib import Path
from socket import socket as makesock
from typing import Any, Literal

from public import public

from aiosmtpd.serving import (
    DEFAULT_SHUTDOWN_TIMEOUT,
    check_shutdown_timeout,
    create_inet_server,
    drain_sessions,
    listener_ssl_context,
    serving_smtp_kwargs,
)
from aiosmtpd.serving import abort_session as _abort_transports_of
from aiosmtpd.smtp import SMTP

__all__: list[str] = []

#: Seconds ``start()`` waits for the server to listen, and again for ``factory()`` to run.
DEFAULT_READY_TIMEOUT: float = 5.0

_STARTUP_TIMEOUT = (
    "SMTP server failed to start within allotted time. This might happen if the system is "
    "too busy. Try increasing the `ready_timeout` parameter."
)
_NOT_RESPONDING = (
    "SMTP server started, but not responding within allotted time. This might happen if "
    "the system is too busy. Try increasing the `ready_timeout` parameter."
)
_SERVER_KWARGS_DEPRECATED = (
    "server_kwargs will be removed in version 2.0. Just specify the keyword arguments to "
    "forward to SMTP as kwargs to this __init__ method."
)
# How long closing waits for the listening server to report that every connection is gone
# (Python 3.12+ ``Server.wait_closed``); connections were aborted, so this is a safety net.
_CLOSE_TIMEOUT = 5.0

_ServerCoroutine = Coroutine[Any, Any, asyncio.Server]


@public
class IP6_IS:
    """errno values that tell, when binding ``::1``, whether IPv6 is usable."""

    NO = {errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT}
    YES = {errno.EADDRINUSE}


def _has_ipv6() -> bool:
    """True if a TCP socket can be bound to ``::1`` on this host."""
    if not socket.has_ipv6:
        return False
    try:
        with makesock(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError as error:
        if error.errno in IP6_IS.NO:
            return False
        if error.errno in IP6_IS.YES:
            return True
        raise
    return True


@public
def get_localhost() -> Literal["::1", "127.0.0.1"]:
    """The loopback address a controller binds by default: ``::1`` if usable, else IPv4."""
    return "::1" if _has_ipv6() else "127.0.0.1"


def _server_to_client_ssl_ctx(server_ctx: ssl.SSLContext) -> ssl.SSLContext:
    """A client context that can talk to a server using ``server_ctx`` (no verification:
    it is only ever used to reach our own listener)."""
    client_ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    client_ctx.minimum_version = server_ctx.minimum_version
    client_ctx.maximum_version = server_ctx.maximum_version
    return client_ctx


class _FakeServer(asyncio.Protocol):
    """Served instead of an ``SMTP`` object when ``factory()`` failed: hangs up at once.

    The failure itself is kept in ``controller._thread_exception`` for ``start()``.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


@public
class BaseController(metaclass=ABCMeta):
    """What every controller shares: the ``SMTP`` keyword arguments and ``factory()``."""

    smtpd: Any = None
    server: asyncio.Server | None = None
    server_coro: _ServerCoroutine | None = None
    _thread_exception: BaseException | None = None

    def __init__(
        self,
        handler: Any,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
        max_connections: int | None = None,
        max_connections_per_address: int | None = None,
        **SMTP_parameters: Any,
    ) -> None:
        self.handler = handler
        #: Seconds a stop lets a transaction in progress finish before it gets 421.
        self.shutdown_timeout = check_shutdown_timeout(shutdown_timeout)
        #: Set once a stop has closed the listener and told every session to finish.
        self.stopping = threading.Event()
        # Created on first use, so that a controller that is never started leaks no loop.
        self._loop: asyncio.AbstractEventLoop | None = loop
        #: Makes the loop when none was given (and after a stop closed it), e.g.
        #: ``loop_factory=uvloop.new_event_loop``; by default the policy's new loop.
        self._loop_factory: Callable[[], asyncio.AbstractEventLoop] = (
            SMTP_parameters.pop("loop_factory", None) or asyncio.new_event_loop
        )
        self.ssl_context = ssl_context
        self.SMTP_kwargs: dict[str, Any] = {}
        if "server_kwargs" in SMTP_parameters:
            warnings.warn(_SERVER_KWARGS_DEPRECATED, DeprecationWarning, stacklevel=2)
            self.SMTP_kwargs.update(SMTP_parameters.pop("server_kwargs") or {})
        # Passed to SMTP as given: a subclass may use (or pop) names SMTP does not know.
        self.SMTP_kwargs.update(SMTP_parameters)
        serving_smtp_kwargs(
            self.SMTP_kwargs,
            server_hostname=server_hostname,
            max_connections=max_connections,
            max_connections_per_address=max_connections_per_address,
        )
        self.smtpd = None
        self.server = None
        self.server_coro = None
        self._thread_exception = None
        self._factory_invoked: threading.Event | None = threading.Event()
        # Every protocol object this controller built, so shutdown can close their
        # connections; weak, so a finished connection is forgotten by itself.
        self._protocols: weakref.WeakSet[Any] = weakref.WeakSet()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the server runs on (a new one unless one was given)."""
        if self._loop is None:
            self._loop = self._loop_factory()
        return self._loop

    @loop.setter
    def loop(self, value: asyncio.AbstractEventLoop) -> None:
        self._loop = value

    def factory(self) -> Any:
        """Build the protocol object for one connection (override for LMTP or a subclass)."""
        return SMTP(self.handler, **self.SMTP_kwargs)

    def _factory_invoker(self) -> Any:
        """The protocol factory given to the loop: ``factory()``, with errors recorded for
        ``start()`` instead of being lost in the loop's exception handler."""
        try:
            smtpd = self.factory()
        except Exception as error:
            smtpd, self._thread_exception = None, error
        else:
            if smtpd is None:
                self._thread_exception = RuntimeError("factory() returned None")
        finally:
            if self._factory_invoked is not None:
                self._factory_invoked.set()
        if smtpd is None:
            return _FakeServer(self.loop)
        self.smtpd = smtpd
        self._protocols.add(smtpd)
        return smtpd

    @abstractmethod
    def _create_server(self) -> _ServerCoroutine:
        """The coroutine that creates the listening server (``loop.create_server`` etc.)."""

    def _server_created(self) -> None:  # noqa: B027 - an optional hook, empty by design
        """Called once ``self.server`` is listening (the Inet mixin reads the bound port)."""

    def _abort_connections(self) -> None:
        for protocol in list(self._protocols):
            _abort_transports_of(protocol)

    def _stop_serving(self) -> None:
        """Stop accepting and end every session at once (no goodbye; 1.4 behaviour)."""
        if self.server is not None:
            self.server.close()
        self._abort_connections()

    async def _graceful_stop(self) -> None:
        """Stop accepting, then end the sessions gracefully (see the module docstring)."""
        if self.server is not None:
            self.server.close()
        await drain_sessions(self._protocols, self.shutdown_timeout, notified=self.stopping.set)

    async def _graceful_stop_then_cancel(self) -> None:
        try:
            await self._graceful_stop()
        finally:
            self.cancel_tasks()

    def cancel_tasks(self, stop_loop: bool = True) -> None:
        """Stop serving, cancel every task of the loop and (by default) stop the loop.

        Runs in the loop's thread (``stop()`` schedules it there).
        """
        self._stop_serving()
        try:
            current = asyncio.current_task(self.loop)
        except RuntimeError:
            current = None
        for task in asyncio.all_tasks(self.loop):
            if task is not current:
                task.cancel()
        if stop_loop:
            self.loop.stop()

    def _close_loop(self) -> None:
        """Close the server, finish cancelled tasks and close the (stopped) loop."""
        loop = self.loop
        try:
            self._stop_serving()
            pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            if self.server is not None:
                with suppress(TimeoutError):
                    loop.run_until_complete(
                        asyncio.wait_for(self.server.wait_closed(), _CLOSE_TIMEOUT)
                    )
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()

    def _cleanup(self) -> None:
        self.smtpd = None
        self.server = None
        self.server_coro = None


@public
class BaseThreadedController(BaseController, metaclass=ABCMeta):
    """Runs the server's event loop in a daemon thread: ``start()`` / ``stop()``."""

    _thread: threading.Thread | None = None

    def __init__(
        self,
        handler: Any,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        ready_timeout: float = DEFAULT_READY_TIMEOUT,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        **SMTP_parameters: Any,
    ) -> None:
        super().__init__(
            handler,
            loop,
            ssl_context=ssl_context,
            server_hostname=server_hostname,
            **SMTP_parameters,
        )
        self.ready_timeout = float(os.environ.get("AIOSMTPD_CONTROLLER_TIMEOUT", ready_timeout))
        self._thread = None

    def _run(self, ready_event: threading.Event) -> None:
        """The thread's body: create the server, signal ready, serve until stopped, close."""
        asyncio.set_event_loop(self.loop)
        try:
            self.server_coro = self._create_server()
            self.server = self.loop.run_until_complete(self.server_coro)
            self._server_created()
        except Exception as error:
            self._thread_exception = error
            self._close_loop()
            return
        self.loop.call_soon(ready_event.set)
        try:
            self.loop.run_forever()
        finally:
            self._close_loop()

    def _thread_main(self, ready_event: threading.Event) -> None:
        try:
            self._run(ready_event)
        except BaseException as error:  # a subclass's _run; surfaced by start()
            if self._thread_exception is None:
                self._thread_exception = error
        finally:
            # Wakes start() at once when _run ended without becoming ready.
            ready_event.set()

    def _trigger_server(self) -> None:
        """Make the server build one protocol object, so ``factory()`` errors surface.

        A hook (1.4 connected to the server here). Runs after ``self.server`` is set;
        subclasses may read ``self.server.sockets`` here. No network round trip.
        """
        self.loop.call_soon_threadsafe(self._factory_invoker)

    def start(self) -> None:
        """Start serving in a thread; return once ready, or raise why not (and clean up)."""
        if self._thread is not None and self._thread.is_alive():
            raise AssertionError("SMTP daemon already running")
        if self.loop.is_closed():
            self.loop = self._loop_factory()
        self._factory_invoked = threading.Event()
        self._thread_exception = None
        self.stopping.clear()
        ready_event = threading.Event()
        self._thread = threading.Thread(
            target=self._thread_main,
            args=(ready_event,),
            name=f"aiosmtpd-{type(self).__name__}",
            daemon=True,
        )
        self._thread.start()
        try:
            self._wait_until_serving(ready_event)
        except BaseException:
            # Leave nothing running; ``_thread`` stays set so a 1.4-style stop() after a
            # failed start() still works.
            self._shut_down_thread()
            raise

    def _wait_until_serving(self, ready_event: threading.Event) -> None:
        if not ready_event.wait(self.ready_timeout):
            raise TimeoutError(_STARTUP_TIMEOUT)
        if self._thread_exception is not None:
            raise self._thread_exception
        if self._thread is None or not self._thread.is_alive() or self.server is None:
            raise RuntimeError("Unknown Error, failed to init SMTP server")
        self._trigger_server()
        factory_invoked = self._factory_invoked
        if factory_invoked is not None and not factory_invoked.wait(self.ready_timeout):
            raise TimeoutError(_NOT_RESPONDING)
        if self._thread_exception is not None:
            raise self._thread_exception

    def _shut_down_thread(self) -> None:
        """Stop the loop, join the thread, and close the loop if ``_run`` did not."""
        thread = self._thread
        loop = self._loop
        if thread is not None and thread.is_alive() and loop is not None:
            with suppress(RuntimeError):  # the loop closed in the meantime
                asyncio.run_coroutine_threadsafe(self._graceful_stop_then_cancel(), loop)
        if thread is not None:
            thread.join()
        if loop is not None and not loop.is_closed() and not loop.is_running():
            # A subclass's _run (or a failed start) can leave the loop open.
            self._close_loop()

    def stop(self, no_assert: bool = False) -> None:
        """Stop serving, join the thread, close the loop and reset the attributes."""
        if self._thread is None:
            if not no_assert:
                raise AssertionError("SMTP daemon not running")
        else:
            self._shut_down_thread()
        self._thread = None
        self._thread_exception = None
        self._factory_invoked = threading.Event()
        self._cleanup()


@public
class BaseUnthreadedController(BaseController, metaclass=ABCMeta):
    """Serves on a loop you run yourself: ``begin()``, run the loop, ``end()``."""

    def __init__(
        self,
        handler: Any,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        **SMTP_parameters: Any,
    ) -> None:
        super().__init__(
            handler,
            loop,
            ssl_context=ssl_context,
            server_hostname=server_hostname,
            **SMTP_parameters,
        )
        self.ended = threading.Event()

    def begin(self) -> None:
        """Create the listening server on the (not running) loop; does not run the loop.

        Raises ``factory()`` errors (bad ``SMTP`` arguments) here rather than on every
        connection.
        """
        asyncio.set_event_loop(self.loop)
        self.ended.clear()
        self.stopping.clear()
        self._thread_exception = None
        self.server_coro = self._create_server()
        self.server = self.loop.run_until_complete(self.server_coro)
        self._server_created()
        error = self.loop.run_until_complete(self._invoke_factory_once())
        if error is not None:
            self.loop.run_until_complete(self.finalize())
            raise error

    async def _invoke_factory_once(self) -> BaseException | None:
        # Inside the loop, so that SMTP(loop=None) finds this loop running.
        self._factory_invoker()
        error, self._thread_exception = self._thread_exception, None
        return error

    async def finalize(self) -> None:
        """Stop gracefully, close this server's connections, and set ``ended``."""
        await self._graceful_stop()
        self._stop_serving()
        if self.server is not None:
            with suppress(TimeoutError):
                await asyncio.wait_for(self.server.wait_closed(), _CLOSE_TIMEOUT)
        # One loop turn, so the aborted transports run connection_lost and close sockets.
        await asyncio.sleep(0)
        self._cleanup()
        self.ended.set()

    def end(self) -> concurrent.futures.Future[None] | None:
        """Finalize: at once if the loop is idle, else scheduled on it.

        When scheduled, returns the future of ``finalize()`` (``asyncio.wrap_future`` it to
        await it; or wait on ``ended`` from another thread).
        """
        if self.loop.is_running():
            return asyncio.run_coroutine_threadsafe(self.finalize(), self.loop)
        self.loop.run_until_complete(self.finalize())
        return None


@public
class InetMixin(BaseController, metaclass=ABCMeta):
    """Listens on TCP ``hostname``:``port`` (``port=0``: any free port, read it afterwards)."""

    def __init__(
        self,
        handler: Any,
        hostname: str | None = None,
        port: int = 8025,
        loop: asyncio.AbstractEventLoop | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, loop=loop, **kwargs)
        self._localhost = get_localhost()
        self.hostname = self._localhost if hostname is None else hostname
        self.port = port

    def _create_server(self) -> _ServerCoroutine:
        return self._create_inet_server()

    async def _create_inet_server(self) -> asyncio.Server:
        # port=0 on a host with several addresses ("" = every interface, IPv4 and IPv6):
        # one free port for all of them, held while the server binds it.
        host = self.hostname or None
        ssl_context = listener_ssl_context(self.ssl_context, self.SMTP_kwargs)
        return await create_inet_server(
            self.loop, self._factory_invoker, host, self.port, ssl_context
        )

    def _server_created(self) -> None:
        if self.port == 0 and self.server is not None and self.server.sockets:
            self.port = self.server.sockets[0].getsockname()[1]


@public
class UnixSocketMixin(BaseController, metaclass=ABCMeta):
    """Listens on the Unix domain socket ``unix_socket`` (a path; removed on close)."""

    def __init__(
        self,
        handler: Any,
        unix_socket: str | Path,
        loop: asyncio.AbstractEventLoop | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, loop=loop, **kwargs)
        self.unix_socket = str(unix_socket)

    def _create_server(self) -> _ServerCoroutine:
        return self.loop.create_unix_server(
            self._factory_invoker, path=self.unix_socket, ssl=self.ssl_context
        )

    def _cleanup(self) -> None:
        # Python < 3.13 leaves the socket file behind; remove it only if it is a socket.
        if self.server is not None:
            with suppress(OSError):
                if Path(self.unix_socket).is_socket():
                    os.unlink(self.unix_socket)
        super()._cleanup()


@public
class Controller(InetMixin, BaseThreadedController):
    """Provides a multithreaded controller that listens on an INET endpoint"""


@public
class UnixSocketController(UnixSocketMixin, BaseThreadedController):
    """Provides a multithreaded controller that listens on a Unix socket file"""


@public
class UnthreadedController(InetMixin, BaseUnthreadedController):
    """Provides an unthreaded controller that listens on an INET endpoint"""


@public
class UnixSocketUnthreadedController(UnixSocketMixin, BaseUnthreadedController):
    """Provides an unthreaded controller that listens on a Unix socket file"""
