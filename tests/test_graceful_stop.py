"""Graceful stop of the controllers and the CLI (DECISIONS "graceful stop").

A transaction in progress when stop() is called still gets its 250 (coordinated with
``controller.stopping``, never a sleep); idle sessions get 421 at once; a transaction
still running at the ``shutdown_timeout`` deadline gets 421 and is not delivered.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from typing import Any

import pytest

from aiosmtpd.controller import Controller, UnthreadedController

from .prod_support import SHUTTING_DOWN, TIMEOUT, LineClient, message_of
from .test_cli import _python, running

HOST = "127.0.0.1"
BIG = 20 * 1024 * 1024


class Keeper:
    def __init__(self) -> None:
        self.contents: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.contents.append(envelope.content)
        return "250 OK kept"


def _run(target: Any, *args: Any) -> tuple[threading.Thread, list[Any]]:
    results: list[Any] = []

    def body() -> None:
        try:
            results.append(target(*args))
        except BaseException as error:  # surfaced by the test
            results.append(error)

    thread = threading.Thread(target=body)
    thread.start()
    return thread, results


def _stop_once(
    controller: Controller, ready: threading.Event, send: Callable[[], Any]
) -> list[Any]:
    """Run ``send`` in a thread, stop ``controller`` once ``ready`` is set, return its result."""
    thread, results = _run(send)
    try:
        assert ready.wait(TIMEOUT)
        controller.stop()
    finally:
        thread.join()
    return results


def test_big_message_in_flight_gets_its_250() -> None:
    handler = Keeper()
    controller = Controller(handler, hostname=HOST, port=0)
    controller.start()
    message = message_of(BIG)
    in_data = threading.Event()

    def send() -> tuple[bytes, bytes, bool]:
        with LineClient(HOST, controller.port) as client:
            client.start_data()
            client.sock.sendall(message[: 1024 * 1024])
            in_data.set()
            assert controller.stopping.wait(TIMEOUT)
            client.sock.sendall(message[1024 * 1024 :] + b".\r\n")
            return client.reply(), client.reply(), client.at_eof()

    results = _stop_once(controller, in_data, send)
    assert results == [(b"250 OK kept", SHUTTING_DOWN, True)]
    assert handler.contents == [message]


def test_running_handler_finishes_within_the_deadline() -> None:
    entered = threading.Event()
    controller: Controller

    class Slow:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            entered.set()
            stopping = await asyncio.to_thread(controller.stopping.wait, TIMEOUT)
            return "250 finished after stop" if stopping else "451 never stopped"

    controller = Controller(Slow(), hostname=HOST, port=0)
    controller.start()

    def send() -> tuple[bytes, bytes]:
        with LineClient(HOST, controller.port) as client:
            client.start_data()
            client.sock.sendall(b"Subject: s\r\n\r\nbody\r\n.\r\n")
            return client.reply(), client.reply()

    results = _stop_once(controller, entered, send)
    assert results == [(b"250 finished after stop", SHUTTING_DOWN)]


@pytest.mark.parametrize("deadline", [0.0, 0.2])
def test_past_the_deadline_the_client_gets_421_and_nothing_is_delivered(deadline: float) -> None:
    entered = threading.Event()
    delivered: list[bytes] = []

    class Stuck:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            entered.set()
            await asyncio.Event().wait()
            delivered.append(envelope.content)
            return "250 too late"

    controller = Controller(Stuck(), hostname=HOST, port=0, shutdown_timeout=deadline)
    controller.start()

    def send() -> tuple[bytes, bool]:
        with LineClient(HOST, controller.port) as client:
            client.start_data()
            client.sock.sendall(b"Subject: s\r\n\r\nbody\r\n.\r\n")
            return client.reply(), client.at_eof()

    results = _stop_once(controller, entered, send)
    assert results == [(SHUTTING_DOWN, True)]
    assert delivered == []


def test_idle_clients_get_421_at_once() -> None:
    controller = Controller(Keeper(), hostname=HOST, port=0)
    controller.start()
    try:
        with LineClient(HOST, controller.port) as fresh, LineClient(HOST, controller.port) as mid:
            assert fresh.reply().startswith(b"220")
            assert mid.reply().startswith(b"220")
            assert mid.command("EHLO c").startswith(b"250")
            assert mid.command("MAIL FROM:<a@b.c>").startswith(b"250")
            controller.stop()
            assert (fresh.reply(), fresh.at_eof()) == (SHUTTING_DOWN, True)
            assert (mid.reply(), mid.at_eof()) == (SHUTTING_DOWN, True)
    finally:
        controller.stop(no_assert=True)


def test_negative_shutdown_timeout_is_refused() -> None:
    with pytest.raises(ValueError, match="shutdown_timeout"):
        Controller(Keeper(), port=0, shutdown_timeout=-1)


def test_unthreaded_controller_end_is_graceful() -> None:
    handler = Keeper()
    loop = asyncio.new_event_loop()
    controller = UnthreadedController(handler, hostname=HOST, port=0, loop=loop)
    controller.begin()
    message = message_of(64 * 1024)

    def send() -> tuple[bytes, bytes]:
        with LineClient(HOST, controller.port) as client:
            client.start_data()
            client.sock.sendall(message[:1000])
            loop.call_soon_threadsafe(controller.end)
            assert controller.stopping.wait(TIMEOUT)
            client.sock.sendall(message[1000:] + b".\r\n")
            return client.reply(), client.reply()

    async def run() -> None:
        thread, results = _run(send)
        await asyncio.to_thread(controller.ended.wait, TIMEOUT)
        await asyncio.to_thread(thread.join)
        assert results == [(b"250 OK kept", SHUTTING_DOWN)]

    try:
        loop.run_until_complete(run())
    finally:
        loop.close()
    assert handler.contents == [message]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_cli_signal_lets_the_message_in_flight_finish(signum: int) -> None:
    argv = _python("-m", "aiosmtpd", "-n", "-d", "-c", "aiosmtpd.handlers.Sink", "-l", f"{HOST}:0")
    message = message_of(2 * 1024 * 1024)
    with running(argv) as server:
        port = server.wait_listening()
        with LineClient(HOST, port) as client, LineClient(HOST, port) as idle:
            assert idle.reply().startswith(b"220")
            client.start_data()
            client.sock.sendall(message[:4096])
            server.proc.send_signal(signum)
            # Logged in the same loop step that tells every session to stop.
            server.wait_for("Server stopping", stream="stderr")
            assert (idle.reply(), idle.at_eof()) == (SHUTTING_DOWN, True)
            client.sock.sendall(message[4096:] + b".\r\n")
            assert client.reply().startswith(b"250")
            assert (client.reply(), client.at_eof()) == (SHUTTING_DOWN, True)
        code = server.proc.wait(timeout=TIMEOUT)
        server.stop()
    assert code == 0, server.all_stderr
    assert "Traceback" not in server.all_stderr


def test_cli_rejects_a_negative_shutdown_timeout() -> None:
    import aiosmtpd.main as cli

    with pytest.raises(SystemExit) as exit_info:
        cli.parseargs(["-n", "--shutdown-timeout", "-1"])
    assert exit_info.value.code == 2
