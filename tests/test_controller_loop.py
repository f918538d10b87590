"""The controllers' ``loop_factory``: which event loop a threaded controller runs on."""

from __future__ import annotations

import asyncio
import smtplib

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Sink
from tests.support import require_module

LOCALHOST = "127.0.0.1"


class CountingFactory:
    def __init__(self) -> None:
        self.loops: list[asyncio.AbstractEventLoop] = []

    def __call__(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.new_event_loop()
        self.loops.append(loop)
        return loop


def _noop(controller: Controller) -> int:
    with smtplib.SMTP(LOCALHOST, controller.port, timeout=10) as client:
        code, _ = client.noop()
    return code


def test_loop_factory_makes_the_loop_and_its_replacement() -> None:
    factory = CountingFactory()
    controller = Controller(Sink(), hostname=LOCALHOST, port=0, loop_factory=factory)
    assert factory.loops == []  # no loop until one is needed
    controller.start()
    try:
        assert controller.loop is factory.loops[0]
        assert _noop(controller) == 250
    finally:
        controller.stop()
    # A stopped controller's loop is closed; starting again asks the factory for a new one.
    controller.start()
    try:
        assert len(factory.loops) == 2
        assert controller.loop is factory.loops[1]
        assert _noop(controller) == 250
    finally:
        controller.stop()
    assert all(loop.is_closed() for loop in factory.loops)


def test_loop_factory_is_not_an_smtp_parameter() -> None:
    controller = Controller(Sink(), loop_factory=asyncio.new_event_loop)
    assert "loop_factory" not in controller.SMTP_kwargs


def test_given_loop_wins_over_the_factory() -> None:
    loop = asyncio.new_event_loop()
    try:
        controller = Controller(Sink(), loop=loop, loop_factory=CountingFactory())
        assert controller.loop is loop
    finally:
        loop.close()


def test_uvloop_factory_runs_the_server() -> None:
    uvloop = require_module("uvloop")
    controller = Controller(Sink(), hostname=LOCALHOST, port=0, loop_factory=uvloop.new_event_loop)
    controller.start()
    try:
        assert isinstance(controller.loop, uvloop.Loop)
        assert _noop(controller) == 250
    finally:
        controller.stop()
