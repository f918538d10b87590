"""Helpers for the production-serving tests: a blocking line-level SMTP client on a socket.

Used from threads (a message in flight while the test thread stops the server), so it is
plain blocking I/O with a timeout; every socket is closed by ``with``.
"""

from __future__ import annotations

import socket
from types import TracebackType

TIMEOUT = 30.0
SHUTTING_DOWN = b"421 4.3.2 Service shutting down"
TOO_MANY = b"421 4.7.0 Too many connections"


class LineClient:
    """A raw SMTP client: send lines, read replies (the last line of a multi-line one)."""

    def __init__(
        self, host: str, port: int, *, source: str | None = None, header: bytes = b""
    ) -> None:
        self.sock = socket.create_connection(
            (host, port), timeout=TIMEOUT, source_address=(source, 0) if source else None
        )
        self.file = self.sock.makefile("rb")
        if header:
            self.sock.sendall(header)

    def __enter__(self) -> LineClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def reply(self) -> bytes:
        """The final line of the next reply, without CRLF; ``b""`` at EOF."""
        while True:
            line = self.file.readline()
            if not line:
                return b""
            if line[3:4] != b"-":
                return line.rstrip(b"\r\n")

    def command(self, line: str) -> bytes:
        self.sock.sendall(line.encode("ascii") + b"\r\n")
        return self.reply()

    def start_data(self, rcpts: int = 1) -> None:
        """EHLO, MAIL, RCPT(s), DATA; asserts each step succeeds."""
        assert self.reply().startswith(b"220")
        assert self.command("EHLO client.test").startswith(b"250")
        assert self.command("MAIL FROM:<a@client.test>").startswith(b"250")
        for number in range(rcpts):
            assert self.command(f"RCPT TO:<r{number}@server.test>").startswith(b"250")
        assert self.command("DATA").startswith(b"354")

    def at_eof(self) -> bool:
        return self.file.read() == b""


def message_of(size: int) -> bytes:
    """A message of about ``size`` bytes in 100-byte lines (headers included)."""
    line = b"x" * 98 + b"\r\n"
    return b"Subject: big\r\n\r\n" + line * (size // len(line))
