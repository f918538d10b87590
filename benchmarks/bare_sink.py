"""A bare asyncio SMTP sink: plain Python with no library around it (a reference point).

Usage: ``python benchmarks/bare_sink.py 127.0.0.1:PORT [--uvloop]``. Accepts and discards every
message.
It shows what plain Python on asyncio reaches, so the distance between it and aiosmtpd is the
cost of the library's own work; the harness's smoke test also uses it as a local server.

Owns only its own loop; knows nothing of the benchmark. It is deliberately minimal: no size
limit, no address checks, no AUTH/TLS. Commands are buffered, so pipelined input works.
Listens on a loopback address only.
"""

from __future__ import annotations

import asyncio
import ipaddress
import signal
import sys

END_OF_DATA = b"\r\n.\r\n"
REPLIES = {
    b"HELO": b"250 bare-sink\r\n",
    b"EHLO": b"250-bare-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
    b"MAIL": b"250 OK\r\n",
    b"RCPT": b"250 OK\r\n",
    b"NOOP": b"250 OK\r\n",
    b"RSET": b"250 OK\r\n",
    b"DATA": b"354 End data with <CR><LF>.<CR><LF>\r\n",
    b"QUIT": b"221 Bye\r\n",
}


class SinkProtocol(asyncio.Protocol):
    """One connection: command mode until DATA, then content until CRLF.CRLF."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.in_data = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        transport.write(b"220 bare-sink ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        replies = bytearray()
        while self.transport is not None:
            if self.in_data:
                end = self.buffer.find(END_OF_DATA)
                if end < 0:
                    # Keep only a tail that may hold the start of the end marker.
                    del self.buffer[: max(0, len(self.buffer) - len(END_OF_DATA) + 1)]
                    break
                del self.buffer[: end + len(END_OF_DATA)]
                self.in_data = False
                replies += b"250 OK\r\n"
                continue
            newline = self.buffer.find(b"\n")
            if newline < 0:
                if len(self.buffer) > 4096:
                    replies += b"500 Line too long\r\n"
                    self.buffer.clear()
                break
            verb = bytes(self.buffer[:4]).upper()
            del self.buffer[: newline + 1]
            replies += REPLIES.get(verb, b"500 Command not recognized\r\n")
            if verb == b"DATA":
                # Content starts at a line start: a virtual CRLF lets ".\r\n" end it at once.
                self.in_data = True
                self.buffer[:0] = b"\r\n"
            elif verb == b"QUIT":
                self.transport.write(bytes(replies))
                self.transport.close()
                self.transport = None
                return
        if replies and self.transport is not None:
            self.transport.write(bytes(replies))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(host: str, port: int) -> None:
    if not ipaddress.ip_address(host).is_loopback:
        raise SystemExit(f"refusing non-loopback address {host!r}")
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await loop.create_server(SinkProtocol, host, port, backlog=1024)
    async with server:
        await stop.wait()


def main(argv: list[str]) -> int:
    use_uvloop = "--uvloop" in argv
    args = [arg for arg in argv if arg != "--uvloop"]
    if len(args) != 1:
        print("usage: bare_sink.py HOST:PORT [--uvloop]", file=sys.stderr)
        return 2
    host, _, port = args[0].rpartition(":")
    if use_uvloop:
        import uvloop

        uvloop.run(serve(host.strip("[]"), int(port)))
    else:
        asyncio.run(serve(host.strip("[]"), int(port)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
