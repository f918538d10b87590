"""An asyncio program that receives mail on its own event loop: no thread, no controller.

The handler and the rest of the program share one loop, so the handler can hand each
message to an ``asyncio.Queue`` that another task consumes: no locks, no
``call_soon_threadsafe``. Stopping (Ctrl-C or SIGTERM) leaves the ``async with`` block:
the server stops accepting, lets a transaction in progress finish, and every message it
accepted is still printed before the program exits.

Run it with ``python examples/asyncio_app.py [--host H] [--port P]``; it prints
``Listening on HOST:PORT``, then one line per message, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import signal
from typing import Any

from aiosmtpd.server import SMTPServer


class QueueHandler:
    """Puts every accepted envelope on ``queue`` (the consumer runs on the same loop)."""

    def __init__(self, queue: asyncio.Queue[Any]) -> None:
        self.queue = queue

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await self.queue.put(envelope)
        return "250 OK queued"


class MailApp:
    """Serves SMTP on ``host``:``port`` and prints a line per message received."""

    def __init__(self, host: str, port: int) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.server = SMTPServer(QueueHandler(self.queue), hostname=host, port=port)
        self.received: list[str] = []
        #: Set once the server listens (``server.port`` is then the bound port).
        self.listening = asyncio.Event()

    async def print_messages(self) -> None:
        while True:
            envelope = await self.queue.get()
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
            line = f"Received from {envelope.mail_from}: {message['Subject']}"
            self.received.append(line)
            print(line, flush=True)
            self.queue.task_done()

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set; return once every accepted message is printed."""
        consumer = asyncio.create_task(self.print_messages())
        try:
            async with self.server:
                print(f"Listening on {self.server.hostname}:{self.server.port}", flush=True)
                self.listening.set()
                await stop.wait()
            await self.queue.join()
        finally:
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)


async def amain(host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await MailApp(host, port).run(stop)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    args = parser.parse_args(argv)
    asyncio.run(amain(args.host, args.port))


if __name__ == "__main__":
    main()
