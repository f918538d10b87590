"""A former ``smtpd.SMTPServer`` program, moved to aiosmtpd (docs/migrating.rst).

The old program overrode ``process_message(peer, mailfrom, rcpttos, data)`` and ran
``asyncore.loop()``; both modules are gone since Python 3.12. Here the same printing
logic lives in a handler's ``handle_DATA`` and a ``Controller`` runs the server in a
background thread.

Run it with ``python examples/migrate_from_smtpd.py [--host H] [--port P]`` (``--port 0``
picks a free port); it prints ``Listening on HOST:PORT`` and serves until Ctrl-C.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any, TextIO

from aiosmtpd.controller import Controller


class PrintingHandler:
    """What ``process_message`` used to do: print who sent what to whom."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        out = self.stream if self.stream is not None else sys.stdout
        # process_message(peer, mailfrom, rcpttos, data) arguments, as aiosmtpd names them:
        peer = session.peer
        mailfrom = envelope.mail_from
        rcpttos = envelope.rcpt_tos
        data = envelope.content  # bytes, as smtpd gave with decode_data=False
        print(f"Message from {peer} sent by {mailfrom} to {', '.join(rcpttos)}", file=out)
        print(data.decode("utf-8", errors="replace"), file=out)
        print("---- end of message ----", file=out, flush=True)
        # process_message returned None for success; a handler returns the reply itself.
        return "250 OK"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    args = parser.parse_args(argv)

    controller = Controller(PrintingHandler(), hostname=args.host, port=args.port)
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
