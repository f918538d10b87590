"""An in-memory transport and client so SMTP handlers can be tested without sockets.

Owns: ``MemoryTransport`` (enough of :class:`asyncio.Transport` for an ``SMTP`` protocol:
every ``write`` is recorded, ``close`` calls ``connection_lost`` on the next loop turn,
reading and writing can be paused) and ``SMTPClient`` (feeds bytes to the protocol and
reads back complete replies).
Invariants: nothing here touches a socket, a thread or a timer; a test waits on futures
that the transport resolves when the server writes or closes, never on a sleep.
Must not know: SMTP semantics beyond "a reply ends with a line whose fourth byte is a
space".
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

__all__ = ["MemoryTransport", "Reply", "SMTPClient"]


class MemoryTransport(asyncio.Transport):
    """A transport that keeps what the server writes in memory."""

    def __init__(
        self,
        peername: Any = ("127.0.0.1", 54321),
        *,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        info: dict[str, Any] = {"peername": peername, "sockname": ("127.0.0.1", 25)}
        if extra:
            info.update(extra)
        super().__init__(info)
        #: Each ``write`` call's bytes, in order (so tests can count writes).
        self.writes: list[bytes] = []
        #: Everything written, concatenated.
        self.output = bytearray()
        self.reading_paused = False
        self.eof_written = False
        self._closing = False
        self._protocol: asyncio.BaseProtocol | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._closed: asyncio.Future[None] | None = None
        self._lost = False

    # --- asyncio.Transport ------------------------------------------------------------
    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing:
            return
        chunk = bytes(data)
        if not chunk:
            return
        self.writes.append(chunk)
        self.output += chunk
        self._wake()

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def write_eof(self) -> None:
        self.eof_written = True

    def can_write_eof(self) -> bool:
        return True

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._wake()
        loop = asyncio.get_running_loop()
        loop.call_soon(self._connection_lost)

    def abort(self) -> None:
        self.close()

    def pause_reading(self) -> None:
        self.reading_paused = True

    def resume_reading(self) -> None:
        self.reading_paused = False

    def is_reading(self) -> bool:
        return not self.reading_paused and not self._closing

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self._protocol is not None
        return self._protocol

    # --- test helpers -----------------------------------------------------------------
    def _connection_lost(self) -> None:
        self._lost = True
        if self._protocol is not None:
            self._protocol.connection_lost(None)
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait_for_output(self) -> None:
        """Return after the next ``write`` or ``close``."""
        if self._closing:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    async def wait_closed(self) -> None:
        """Return once the transport is closed and ``connection_lost`` was delivered."""
        if self._lost:
            return
        if self._closed is None:
            self._closed = asyncio.get_running_loop().create_future()
        await self._closed


@dataclass(frozen=True, slots=True)
class Reply:
    """One complete (possibly multi-line) reply from the server."""

    code: int
    #: The text of each line, without code, separator and CRLF.
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def __iter__(self) -> Any:
        # Unpacks like smtplib's (code, message) pairs: ``code, text = await c.command(...)``.
        return iter((self.code, self.text))


class SMTPClient:
    """Drive an ``SMTP``/``LMTP`` protocol instance through a ``MemoryTransport``.

    ``async with SMTPClient(SMTP(handler)) as client:`` connects (the greeting is read
    into ``client.greeting``) and closes the connection on exit.
    """

    def __init__(
        self,
        protocol: asyncio.Protocol,
        transport: MemoryTransport | None = None,
    ) -> None:
        self.protocol = protocol
        self.transport = transport if transport is not None else MemoryTransport()
        self.transport.set_protocol(protocol)
        self._read_pos = 0
        self.greeting: Reply | None = None

    async def connect(self, *, read_greeting: bool = True) -> Reply | None:
        """Start the connection; read the greeting unless told not to (e.g. the server
        first waits for a PROXY header)."""
        self.protocol.connection_made(self.transport)
        if read_greeting:
            self.greeting = await self.reply()
        return self.greeting

    async def send(self, data: bytes) -> None:
        """Deliver ``data`` to the server as if it arrived from the network."""
        if self.transport.is_closing():
            raise ConnectionResetError("the server closed the connection")
        self.protocol.data_received(data)
        # Let the session task run once, as a socket read would.
        await asyncio.sleep(0)

    async def send_eof(self) -> None:
        """The client shuts down its sending side."""
        keep_open = self.protocol.eof_received()
        if not keep_open:
            self.transport.close()
        await asyncio.sleep(0)

    def pending(self) -> bytes:
        """Bytes written by the server that no ``reply()`` has consumed yet."""
        return bytes(self.transport.output[self._read_pos :])

    async def reply(self) -> Reply:
        """Wait for and return the next complete reply."""
        while True:
            parsed = self._parse_reply()
            if parsed is not None:
                return parsed
            if self.transport.is_closing():
                raise ConnectionResetError(
                    f"connection closed; unconsumed output {self.pending()!r}"
                )
            await self.transport.wait_for_output()

    async def command(self, line: str | bytes) -> Reply:
        """Send one command line (CRLF added) and return its reply."""
        raw = line.encode("utf-8") if isinstance(line, str) else line
        await self.send(raw + b"\r\n")
        return await self.reply()

    async def replies(self, count: int) -> list[Reply]:
        return [await self.reply() for _ in range(count)]

    async def wait_closed(self) -> None:
        await self.transport.wait_closed()

    async def close(self) -> None:
        """Close the client side and wait until the server has seen it."""
        if not self.transport.is_closing():
            self.transport.close()
        await self.transport.wait_closed()
        task = getattr(self.protocol, "_handler_coroutine", None)
        if isinstance(task, asyncio.Task):
            await asyncio.wait([task])

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _parse_reply(self) -> Reply | None:
        buf = self.transport.output
        pos = self._read_pos
        lines: list[str] = []
        code = 0
        while True:
            end = buf.find(b"\r\n", pos)
            if end < 0:
                return None
            line = bytes(buf[pos:end]).decode("utf-8", "surrogateescape")
            pos = end + 2
            code = int(line[:3])
            lines.append(line[4:])
            if len(line) < 4 or line[3] == " ":
                self._read_pos = pos
                return Reply(code, tuple(lines))
