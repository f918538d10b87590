"""Deliver every received message into a Maildir with the bundled ``Mailbox`` handler.

Any mail reader that understands Maildir (mutt, Thunderbird with a Maildir account,
Python's :mod:`mailbox`) can then read the messages.

Run it with ``python examples/mailbox_server.py [--port P] [--maildir DIR]``; it prints
``Listening on HOST:PORT`` and serves until Ctrl-C.
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox


def make_controller(maildir: Path, host: str = "127.0.0.1", port: int = 8025) -> Controller:
    """A controller whose handler stores each message as a file under ``maildir``."""
    return Controller(Mailbox(maildir), hostname=host, port=port)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--maildir", type=Path, default=Path("Maildir"))
    args = parser.parse_args(argv)

    controller = make_controller(args.maildir, args.host, args.port)
    controller.start()
    print(f"Listening on {args.host}:{controller.port}, storing into {args.maildir}", flush=True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM acts like Ctrl-C
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
