"""A handler that refuses some recipients at RCPT time and keeps the messages it accepts.

Refusing in ``handle_RCPT`` (rather than after the data) costs the sender nothing: it
learns at once which addresses are not accepted here, and the message is sent only for
the others.

Run it with ``python examples/custom_handler.py [--port P] [--domain example.com ...]``;
it prints ``Listening on HOST:PORT``, then one line per stored message, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class StoredMessage:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes


class LocalDomainsHandler:
    """Accepts recipients in ``domains`` only; stores each accepted message in memory."""

    def __init__(self, domains: Iterable[str], *, announce: bool = False) -> None:
        self.domains = frozenset(domain.lower() for domain in domains)
        self.messages: list[StoredMessage] = []
        self.announce = announce

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        _local, _at, domain = address.rpartition("@")
        if domain.lower() not in self.domains:
            # Leave the envelope alone: the recipient is not added.
            return "550 5.7.1 Relaying denied: not a local domain"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        stored = StoredMessage(envelope.mail_from, tuple(envelope.rcpt_tos), envelope.content)
        self.messages.append(stored)
        if self.announce:
            print(
                f"Stored message #{len(self.messages)} from {stored.mail_from} "
                f"for {', '.join(stored.rcpt_tos)} ({len(stored.content)} bytes)",
                flush=True,
            )
        return f"250 2.0.0 Stored as message #{len(self.messages)}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument(
        "--domain", action="append", help="a local domain (repeatable; default example.com)"
    )
    args = parser.parse_args(argv)

    handler = LocalDomainsHandler(args.domain or ["example.com"], announce=True)
    controller = Controller(handler, hostname=args.host, port=args.port)
    controller.start()
    print(f"Listening on {args.host}:{controller.port}", flush=True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM acts like Ctrl-C
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
