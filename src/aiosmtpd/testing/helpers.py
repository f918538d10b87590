"""Small helpers for tests that talk to a running server (1.4's ``aiosmtpd.testing.helpers``).

Owns: ``ReceivingHandler`` (keeps every envelope), ``reset_connection`` (abort a client
connection with RST), ``send_recv`` (raw socket exchange) and the 1.4 catch-up delay.
Invariants: no helper starts a server, a thread or a loop; ``send_recv`` returns when the
server has been quiet for ``timeout`` seconds or has closed the connection.
Must not know: SMTP semantics.

``catchup_delay`` and ``ASYNCIO_CATCHUP_DELAY`` exist for 1.4 test suites; new tests should
wait on something that can be awaited or signalled instead of sleeping.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from smtplib import SMTP as SMTP_Client

from aiosmtpd.smtp import SMTP, Envelope, Session

#: Seconds ``catchup_delay()`` sleeps by default (env ``ASYNCIO_CATCHUP_DELAY``).
ASYNCIO_CATCHUP_DELAY = float(os.environ.get("ASYNCIO_CATCHUP_DELAY", "0.1"))

_RECV_SIZE = 4096


def reset_connection(client: SMTP_Client) -> None:
    """Close ``client``'s socket with an RST (SO_LINGER 0) instead of a FIN."""
    sock = client.sock
    if sock is None:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()


class ReceivingHandler:
    """A handler that keeps every envelope it receives in ``box``."""

    box: list[Envelope]

    def __init__(self) -> None:
        self.box = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.box.append(envelope)
        return "250 OK"


def catchup_delay(delay: float = ASYNCIO_CATCHUP_DELAY) -> None:
    """Sleep ``delay`` seconds to let the server's loop catch up (1.4 test idiom)."""
    time.sleep(delay)


def send_recv(
    sock: socket.socket, data: bytes, end: bytes = b"\r\n", timeout: float = 0.1
) -> bytes:
    """Send ``data + end``, then return everything received until ``timeout`` seconds pass
    without new bytes, or the server closes the connection."""
    sock.sendall(data + end)
    received: list[bytes] = []
    while True:
        readable, _, _ = select.select([sock], [], [], timeout)
        if not readable:
            break
        chunk = sock.recv(_RECV_SIZE)
        if not chunk:
            break
        received.append(chunk)
    return b"".join(received)
