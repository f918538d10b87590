"""Controller mechanics: start/stop, errors from start(), port 0, Unix sockets, unthreaded.

Most tests serve a tiny protocol of their own (``Greeter``) so that they test the
controller and nothing else; the last section sends real mail through ``SMTP``.
Every test checks, through the ``no_leftovers`` fixture, that no controller thread survives.
"""

from __future__ import annotations

import asyncio
import errno
import smtplib
import socket
import ssl
import threading
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from aiosmtpd import controller as controller_module
from aiosmtpd.controller import (
    DEFAULT_READY_TIMEOUT,
    IP6_IS,
    BaseController,
    Controller,
    UnixSocketController,
    UnixSocketUnthreadedController,
    UnthreadedController,
    _FakeServer,
    _has_ipv6,
    _server_to_client_ssl_ctx,
    get_localhost,
)
from tests.support import require_module

LOCALHOST = "127.0.0.1"


class Greeter(asyncio.Protocol):
    """Greets, answers every line ``250 OK`` and ``QUIT`` with ``221 Bye`` + close."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport: check the duck type.
        assert callable(getattr(transport, "write", None))
        self.transport = transport  # type: ignore[assignment]
        transport.write(b"220 greeter\r\n")

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        if data.upper().startswith(b"QUIT"):
            self.transport.write(b"221 Bye\r\n")
            self.transport.close()
        else:
            self.transport.write(b"250 OK\r\n")


class GreeterController(Controller):
    def factory(self) -> Greeter:
        return Greeter()


class GreeterUnixController(UnixSocketController):
    def factory(self) -> Greeter:
        return Greeter()


def controller_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("aiosmtpd-")]


@pytest.fixture(autouse=True)
def no_leftovers() -> Any:
    before = set(controller_threads())
    yield
    assert set(controller_threads()) <= before


def read_line(sock: socket.socket) -> bytes:
    line = b""
    while not line.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        line += chunk
    return line


def greeting_of(port: int, host: str = LOCALHOST) -> bytes:
    with socket.create_connection((host, port), timeout=5) as sock:
        greeting = read_line(sock)
        sock.sendall(b"QUIT\r\n")
        assert read_line(sock) == b"221 Bye\r\n"
    return greeting


def assert_fully_stopped(cont: Controller) -> None:
    assert cont._thread is None
    assert cont.server is None
    assert cont.server_coro is None
    assert cont.smtpd is None
    assert cont._thread_exception is None
    assert cont.loop.is_closed()


# --- start / stop ------------------------------------------------------------------------


def test_port_zero_start_serve_stop() -> None:
    cont = GreeterController(None, hostname=LOCALHOST, port=0)
    cont.start()
    try:
        assert cont.port != 0
        assert cont.server is not None
        assert cont.server.sockets[0].getsockname()[1] == cont.port
        assert isinstance(cont.smtpd, Greeter)  # factory() ran once during start()
        assert len(controller_threads()) == 1
        assert greeting_of(cont.port) == b"220 greeter\r\n"
    finally:
        cont.stop()
    assert_fully_stopped(cont)
    assert controller_threads() == []
    with pytest.raises(OSError):
        socket.create_connection((LOCALHOST, cont.port), timeout=5).close()


def test_start_does_not_connect_to_the_server() -> None:
    connections: list[Greeter] = []

    class Counting(GreeterController):
        def factory(self) -> Greeter:
            protocol = super().factory()
            connections.append(protocol)
            return protocol

    cont = Counting(None, hostname=LOCALHOST, port=0)
    cont.start()
    try:
        assert len(connections) == 1
        assert connections[0].transport is None  # built, never connected
    finally:
        cont.stop()


def test_restart_after_stop_uses_a_new_loop() -> None:
    cont = GreeterController(None, hostname=LOCALHOST, port=0)
    cont.start()
    first_loop = cont.loop
    cont.stop()
    cont.start()
    try:
        assert cont.loop is not first_loop
        assert greeting_of(cont.port) == b"220 greeter\r\n"
    finally:
        cont.stop()
    assert_fully_stopped(cont)


def test_rerunning_init_after_stop_works() -> None:
    cont = GreeterController(None, hostname=LOCALHOST, port=0)
    cont.start()
    cont.stop()
    cont.__init__(None, hostname=LOCALHOST, port=0)  # type: ignore[misc]
    cont.start()
    try:
        assert greeting_of(cont.port) == b"220 greeter\r\n"
    finally:
        cont.stop()


def test_stop_when_not_running_asserts() -> None:
    cont = GreeterController(None, hostname=LOCALHOST, port=0)
    with pytest.raises(AssertionError, match="SMTP daemon not running"):
        cont.stop()
    cont.stop(no_assert=True)
    cont.start()
    cont.stop()
    with pytest.raises(AssertionError, match="SMTP daemon not running"):
        cont.stop()


def test_start_twice_asserts() -> None:
    cont = GreeterController(None, hostname=LOCALHOST, port=0)
    cont.start()
    try:
        with pytest.raises(AssertionError, match="SMTP daemon already running"):
            cont.start()
    finally:
        cont.stop()


def test_stop_closes_open_connections() -> None:
    cont = GreeterController(None, hostname=LOCALHOST, port=0)
    cont.start()
    with socket.create_connection((LOCALHOST, cont.port), timeout=5) as sock:
        assert read_line(sock) == b"220 greeter\r\n"
        cont.stop()
        assert sock.recv(1024) == b""  # the server hung up
    assert_fully_stopped(cont)


def test_stop_cancels_the_loops_tasks() -> None:
    cont = GreeterController(None, hostname=LOCALHOST, port=0)
    cont.start()
    started = threading.Event()
    cancelled = threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    asyncio.run_coroutine_threadsafe(forever(), cont.loop)
    assert started.wait(5)
    cont.stop()
    assert cancelled.is_set()


def test_cancel_tasks_without_stopping_the_loop() -> None:
    cont = GreeterController(None, hostname=LOCALHOST, port=0)
    cont.start()
    try:
        done = threading.Event()

        def cancel_and_report() -> None:
            cont.cancel_tasks(stop_loop=False)
            cont.loop.call_soon(done.set)  # runs only if the loop keeps running

        cont.loop.call_soon_threadsafe(cancel_and_report)
        assert done.wait(5)
        assert cont.loop.is_running()
    finally:
        cont.stop()


def test_trigger_server_runs_after_server_is_set() -> None:
    seen: list[int] = []

    class Recording(GreeterController):
        def _trigger_server(self) -> None:
            assert self.server is not None
            seen.append(self.server.sockets[0].getsockname()[1])
            super()._trigger_server()

    cont = Recording(None, hostname=LOCALHOST, port=0)
    cont.start()
    try:
        assert seen == [cont.port]
    finally:
        cont.stop()


# --- errors surfaced by start() ----------------------------------------------------------


def test_factory_error_is_raised_by_start_and_cleaned_up() -> None:
    class Broken(Controller):
        def factory(self) -> Any:
            raise TypeError("unexpected keyword argument 'bogus'")

    cont = Broken(None, hostname=LOCALHOST, port=0)
    with pytest.raises(TypeError, match="bogus"):
        cont.start()
    assert cont.loop.is_closed()
    assert controller_threads() == []
    cont.stop()  # 1.4 pattern: stop() after a failed start() is allowed
    assert_fully_stopped(cont)


def test_factory_returning_none() -> None:
    class ReturnsNone(Controller):
        def factory(self) -> Any:
            return None

    cont = ReturnsNone(None, hostname=LOCALHOST, port=0)
    with pytest.raises(RuntimeError, match=r"^factory\(\) returned None$"):
        cont.start()
    cont.stop()


def test_missing_certificate_surfaces_from_start(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"

    class NeedsCert(GreeterController):
        def factory(self) -> Greeter:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(missing)
            return super().factory()

    cont = NeedsCert(None, hostname=LOCALHOST, port=0)
    with pytest.raises(FileNotFoundError):
        cont.start()
    cont.stop()


def test_bind_error() -> None:
    with socket.socket() as taken:
        taken.bind((LOCALHOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        cont = GreeterController(None, hostname=LOCALHOST, port=port)
        with pytest.raises(OSError, match="error while attempting to bind on address") as info:
            cont.start()
        assert info.value.errno == errno.EADDRINUSE
        cont.stop()


def test_startup_timeout() -> None:
    class Slow(GreeterController):
        async def _slow_create(self) -> asyncio.Server:
            await asyncio.Event().wait()  # never ready: start() must give up
            raise AssertionError("unreachable")

        def _create_server(self) -> Any:
            return self._slow_create()

    cont = Slow(None, hostname=LOCALHOST, port=0, ready_timeout=0.05)
    with pytest.raises(TimeoutError, match="failed to start within allotted time"):
        cont.start()
    assert cont.loop.is_closed()
    cont.stop()


def test_not_responding_timeout() -> None:
    class Silent(GreeterController):
        def _trigger_server(self) -> None:
            pass  # factory() never runs, so _factory_invoked is never set

    cont = Silent(None, hostname=LOCALHOST, port=0, ready_timeout=0.05)
    with pytest.raises(TimeoutError, match="started, but not responding within allotted"):
        cont.start()
    assert cont.loop.is_closed()
    cont.stop()


def test_factory_failure_after_start_serves_fake_server() -> None:
    calls = 0

    class FailsLater(GreeterController):
        def factory(self) -> Greeter:
            nonlocal calls
            calls += 1
            if calls > 1:
                raise ValueError("second connection")
            return super().factory()

    cont = FailsLater(None, hostname=LOCALHOST, port=0)
    cont.start()
    try:
        with socket.create_connection((LOCALHOST, cont.port), timeout=5) as sock:
            assert sock.recv(1024) == b""  # _FakeServer hangs up at once
        assert isinstance(cont._thread_exception, ValueError)
    finally:
        cont.stop()


def test_fake_server_closes_the_transport() -> None:
    transport = mock.Mock()
    _FakeServer(mock.Mock()).connection_made(transport)
    transport.close.assert_called_once_with()


# --- configuration -------------------------------------------------------------------------


def test_ready_timeout_default_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIOSMTPD_CONTROLLER_TIMEOUT", raising=False)
    assert DEFAULT_READY_TIMEOUT == 5.0
    assert Controller(None).ready_timeout == 5.0
    assert Controller(None, ready_timeout=2).ready_timeout == 2.0
    monkeypatch.setenv("AIOSMTPD_CONTROLLER_TIMEOUT", "7.5")
    assert Controller(None, ready_timeout=2).ready_timeout == 7.5


def test_smtp_kwargs() -> None:
    cont = Controller(None, server_hostname="mx.example", data_size_limit=10, frobnicate=1)
    assert cont.SMTP_kwargs == {
        "hostname": "mx.example",
        "data_size_limit": 10,
        "frobnicate": 1,  # passed on unvalidated: a subclass may pop it
        "enable_SMTPUTF8": True,
    }
    assert Controller(None, enable_SMTPUTF8=False).SMTP_kwargs["enable_SMTPUTF8"] is False


def test_server_kwargs_is_deprecated_and_explicit_kwargs_win() -> None:
    with pytest.warns(DeprecationWarning, match="server_kwargs will be removed in version 2.0"):
        cont = Controller(None, server_kwargs={"ident": "old", "timeout": 9}, ident="new")
    assert cont.SMTP_kwargs["ident"] == "new"
    assert cont.SMTP_kwargs["timeout"] == 9


def test_factory_builds_smtp_with_the_kwargs() -> None:
    handler = object()
    cont = Controller(handler, decode_data=True)
    with mock.patch.object(controller_module, "SMTP") as smtp:
        assert cont.factory() is smtp.return_value
    smtp.assert_called_once_with(handler, decode_data=True, enable_SMTPUTF8=True)


def test_attributes_a_subclass_set_before_init_survive() -> None:
    class Plugin(Controller):
        def __init__(self) -> None:
            self.config = "config"
            self._messages: list[Any] = []
            self._ssl_context = "ctx"
            self._authenticator = "auth"
            super().__init__(None, hostname=LOCALHOST, port=0, messages=self._messages)

    cont = Plugin()
    assert (cont.config, cont._messages, cont._ssl_context, cont._authenticator) == (
        "config",
        [],
        "ctx",
        "auth",
    )
    assert cont.ssl_context is None


def test_hostname_defaults() -> None:
    assert Controller(None).hostname == get_localhost()
    assert Controller(None).port == 8025
    assert Controller(None, hostname="").hostname == ""


def test_unstarted_controller_creates_no_loop() -> None:
    cont = Controller(None)
    assert cont._loop is None


def test_given_loop_is_used() -> None:
    loop = asyncio.new_event_loop()
    try:
        assert Controller(None, loop=loop).loop is loop
    finally:
        loop.close()


def test_base_controller_is_abstract() -> None:
    with pytest.raises(TypeError):
        BaseController(None)  # type: ignore[abstract]


# --- localhost detection ---------------------------------------------------------------------


def test_get_localhost_follows_ipv6_availability() -> None:
    with mock.patch.object(controller_module, "_has_ipv6", return_value=True):
        assert get_localhost() == "::1"
    with mock.patch.object(controller_module, "_has_ipv6", return_value=False):
        assert get_localhost() == "127.0.0.1"


@pytest.mark.parametrize(
    ("error", "expected"),
    [(errno.EADDRNOTAVAIL, False), (errno.EAFNOSUPPORT, False), (errno.EADDRINUSE, True)],
)
def test_has_ipv6_reads_the_bind_errno(error: int, expected: bool) -> None:
    assert error in (IP6_IS.NO | IP6_IS.YES)
    with mock.patch.object(controller_module, "makesock") as makesock:
        makesock.return_value.__enter__.return_value.bind.side_effect = OSError(error, "x")
        assert _has_ipv6() is expected


def test_has_ipv6_reraises_other_errors() -> None:
    with mock.patch.object(controller_module, "makesock") as makesock:
        makesock.return_value.__enter__.return_value.bind.side_effect = OSError(errno.EPERM, "x")
        with pytest.raises(OSError, match="x"):
            _has_ipv6()


def test_has_ipv6_false_without_ipv6_support() -> None:
    with mock.patch.object(controller_module.socket, "has_ipv6", False):
        assert _has_ipv6() is False


def test_default_hostname_serves() -> None:
    cont = GreeterController(None, port=0)
    cont.start()
    try:
        assert greeting_of(cont.port, cont.hostname) == b"220 greeter\r\n"
    finally:
        cont.stop()


# --- implicit TLS ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    trustme = require_module("trustme")
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(LOCALHOST).configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    return server_ctx, client_ctx


def test_ssl_context_serves_implicit_tls(tls_contexts: tuple[ssl.SSLContext, ...]) -> None:
    server_ctx, client_ctx = tls_contexts
    cont = GreeterController(None, hostname=LOCALHOST, port=0, ssl_context=server_ctx)
    cont.start()
    try:
        raw = socket.create_connection((LOCALHOST, cont.port), timeout=5)
        with client_ctx.wrap_socket(raw, server_hostname=LOCALHOST) as sock:
            assert read_line(sock) == b"220 greeter\r\n"
            cont.stop()  # with the TLS connection still open
            assert sock.recv(1024) == b""
    finally:
        cont.stop(no_assert=True)


def test_server_to_client_ssl_ctx(tls_contexts: tuple[ssl.SSLContext, ...]) -> None:
    server_ctx, _ = tls_contexts
    client_ctx = _server_to_client_ssl_ctx(server_ctx)
    assert client_ctx.verify_mode == ssl.CERT_NONE
    assert client_ctx.check_hostname is False
    cont = GreeterController(None, hostname=LOCALHOST, port=0, ssl_context=server_ctx)
    cont.start()
    try:
        raw = socket.create_connection((LOCALHOST, cont.port), timeout=5)
        with client_ctx.wrap_socket(raw) as sock:
            assert read_line(sock) == b"220 greeter\r\n"
    finally:
        cont.stop()


# --- Unix sockets ----------------------------------------------------------------------------


def test_unix_socket_controller(tmp_path: Path) -> None:
    path = tmp_path / "smtp.sock"
    cont = GreeterUnixController(None, unix_socket=path)
    assert cont.unix_socket == str(path)
    cont.start()
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(path))
            assert read_line(sock) == b"220 greeter\r\n"
    finally:
        cont.stop()
    assert not path.exists()
    assert_fully_stopped(cont)  # type: ignore[arg-type]


# --- unthreaded --------------------------------------------------------------------------------


async def _exchange(host: str, port: int) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    greeting = await reader.readline()
    writer.write(b"QUIT\r\n")
    assert await reader.readline() == b"221 Bye\r\n"
    writer.close()
    await writer.wait_closed()
    return greeting


class GreeterUnthreaded(UnthreadedController):
    def factory(self) -> Greeter:
        return Greeter()


def test_unthreaded_begin_serve_end() -> None:
    loop = asyncio.new_event_loop()
    try:
        cont = GreeterUnthreaded(None, hostname=LOCALHOST, port=0, loop=loop)
        cont.begin()
        assert cont.port != 0
        assert not loop.is_running()
        assert loop.run_until_complete(_exchange(LOCALHOST, cont.port)) == b"220 greeter\r\n"
        cont.end()
        assert cont.ended.is_set()
        assert cont.server is None
        with pytest.raises(OSError):
            loop.run_until_complete(asyncio.open_connection(LOCALHOST, cont.port))
    finally:
        loop.close()


def test_unthreaded_end_while_loop_runs() -> None:
    loop = asyncio.new_event_loop()
    try:
        cont = GreeterUnthreaded(None, hostname=LOCALHOST, port=0, loop=loop)
        cont.begin()

        async def serve_then_end() -> None:
            # An open connection must be closed by end().
            reader, writer = await asyncio.open_connection(LOCALHOST, cont.port)
            assert await reader.readline() == b"220 greeter\r\n"
            finalizing = cont.end()
            assert finalizing is not None
            assert await reader.read() == b""
            writer.close()
            await writer.wait_closed()
            await asyncio.wrap_future(finalizing)

        loop.run_until_complete(serve_then_end())
        assert cont.ended.is_set()
        assert cont.server is None
    finally:
        loop.close()


def test_unthreaded_begin_raises_factory_errors() -> None:
    class Broken(UnthreadedController):
        def factory(self) -> Any:
            raise TypeError("bad kwarg")

    loop = asyncio.new_event_loop()
    try:
        cont = Broken(None, hostname=LOCALHOST, port=0, loop=loop)
        with pytest.raises(TypeError, match="bad kwarg"):
            cont.begin()
        assert cont.server is None
    finally:
        loop.close()


def test_unix_socket_unthreaded(tmp_path: Path) -> None:
    class Unix(UnixSocketUnthreadedController):
        def factory(self) -> Greeter:
            return Greeter()

    path = tmp_path / "u.sock"
    loop = asyncio.new_event_loop()
    try:
        cont = Unix(None, unix_socket=path, loop=loop)
        cont.begin()

        async def exchange() -> bytes:
            reader, writer = await asyncio.open_unix_connection(str(path))
            line = await reader.readline()
            writer.close()
            await writer.wait_closed()
            return line

        assert loop.run_until_complete(exchange()) == b"220 greeter\r\n"
        cont.end()
        assert not path.exists()
    finally:
        loop.close()


# --- real SMTP end to end ------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 OK"


def test_smtplib_sends_through_controller() -> None:
    handler = Recorder()
    cont = Controller(handler, hostname=LOCALHOST, port=0)
    cont.start()
    try:
        with smtplib.SMTP(LOCALHOST, cont.port, timeout=5) as client:
            refused = client.sendmail(
                "a@example.com", ["b@example.com"], b"Subject: t\r\n\r\nhi\r\n"
            )
        assert refused == {}
    finally:
        cont.stop()
    [envelope] = handler.envelopes
    assert envelope.mail_from == "a@example.com"
    assert envelope.rcpt_tos == ["b@example.com"]
    assert envelope.content == b"Subject: t\r\n\r\nhi\r\n"


def test_controller_enables_smtputf8_by_default() -> None:
    cont = Controller(Recorder(), hostname=LOCALHOST, port=0)
    cont.start()
    try:
        with smtplib.SMTP(LOCALHOST, cont.port, timeout=5) as client:
            client.ehlo()
            assert client.has_extn("smtputf8")
    finally:
        cont.stop()


def test_bad_smtp_kwarg_raises_from_start() -> None:
    cont = Controller(Recorder(), hostname=LOCALHOST, port=0, no_such_option=True)
    with pytest.raises(TypeError, match="no_such_option"):
        cont.start()
    cont.stop()


def test_stop_during_a_session_with_real_smtp() -> None:
    cont = Controller(Recorder(), hostname=LOCALHOST, port=0)
    cont.start()
    client = smtplib.SMTP(LOCALHOST, cont.port, timeout=5)
    try:
        client.ehlo()
        cont.stop()
        # Graceful stop (DECISIONS): the idle session was told before the close.
        assert client.noop() == (421, b"4.3.2 Service shutting down")
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()
    finally:
        client.close()
