"""The built-in asyncio SMTP load generator (loads that smtp-source cannot produce).

Owns: reading SMTP replies, and three loads: pipelined transactions (RFC 2920: each write
carries the previous message's content and end-of-data dot plus the next MAIL, RCPT, DATA,
so one round trip per transaction), huge messages (10 / 50 MiB, one blocking ``sendall``),
and many idle connections after EHLO that must all still answer NOOP.

Invariants: every loop is bounded by a count AND by a deadline (``asyncio.timeout`` or a
socket timeout); every
socket opened is closed before a function returns; only the caller's (loopback) address is
dialled. Must not know: which server is under test or how the server is measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

SENDER = b"sender@bench.example"
RECIPIENT = b"rcpt@bench.example"
LINE_LENGTH = 78


class SMTPLoadError(RuntimeError):
    """The server answered with an unexpected reply or went away."""


def message_body(size: int, tag: bytes = b"x") -> bytes:
    """A message of exactly ``size`` bytes (headers, CRLF lines of 78 characters), no dot."""
    header = b"Subject: benchmark " + tag + b"\r\nFrom: <" + SENDER + b">\r\n\r\n"
    line = (b"0123456789abcdefghijklmnopqrstuvwxyz" * 3)[:LINE_LENGTH] + b"\r\n"
    remaining = max(0, size - len(header))
    lines, tail = divmod(remaining, len(line))
    body = header + line * lines
    if tail >= 2:
        body += b"z" * (tail - 2) + b"\r\n"
    elif tail == 1:
        body += b"\n"  # a bare LF is still content, and keeps the size exact
    return body


def parse_reply_code(lines: list[bytes]) -> int:
    """The code of a complete reply given as its lines (``250-a``, ``250 b``)."""
    last = lines[-1]
    if len(last) < 3 or not last[:3].isdigit():
        raise SMTPLoadError(f"malformed reply line {last[:80]!r}")
    return int(last[:3])


async def read_reply(reader: asyncio.StreamReader) -> int:
    """Read one (possibly multi-line) reply and return its code."""
    lines: list[bytes] = []
    while True:
        line = await reader.readline()
        if not line:
            raise SMTPLoadError("server closed the connection")
        lines.append(line.rstrip(b"\r\n"))
        if line[3:4] != b"-":
            return parse_reply_code(lines)


async def expect(reader: asyncio.StreamReader, *codes: int) -> None:
    for wanted in codes:
        code = await read_reply(reader)
        if code != wanted:
            raise SMTPLoadError(f"expected {wanted}, got {code}")


async def open_session(
    host: str, port: int, helo: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect, read the greeting and EHLO; the caller closes the writer."""
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
    try:
        await expect(reader, 220)
        writer.write(b"EHLO " + helo + b"\r\n")
        await expect(reader, 250)
    except BaseException:
        writer.close()
        raise
    return reader, writer


async def close_session(writer: asyncio.StreamWriter, reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(OSError, SMTPLoadError, TimeoutError):
        writer.write(b"QUIT\r\n")
        async with asyncio.timeout(5):
            await expect(reader, 221)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


ENVELOPE = b"MAIL FROM:<" + SENDER + b">\r\nRCPT TO:<" + RECIPIENT + b">\r\nDATA\r\n"


async def pipelined(host: str, port: int, transactions: int, size: int, limit: float) -> int:
    """Send ``transactions`` messages of ``size`` bytes, one round trip each; return the count.

    Stops early (returning fewer) when ``limit`` seconds pass.
    """
    body = message_body(size) + b".\r\n"
    done = 0
    reader, writer = await open_session(host, port, b"pipelined.bench.example")
    deadline = time.monotonic() + limit
    try:
        async with asyncio.timeout(limit + 10):
            writer.write(ENVELOPE)
            await expect(reader, 250, 250, 354)
            while done < transactions - 1 and time.monotonic() < deadline:
                writer.write(body + ENVELOPE)
                await expect(reader, 250, 250, 250, 354)
                done += 1
            writer.write(body)
            await expect(reader, 250)
            done += 1
    finally:
        await close_session(writer, reader)
    return done


@dataclass(frozen=True)
class BigMessageResult:
    size: int
    seconds: float


def big_message_text(size: int) -> bytes:
    """The DATA text ``big_message`` sends: a ``size``-byte message plus the terminator."""
    return message_body(size, tag=b"big") + b".\r\n"


def big_message(
    host: str, port: int, size: int, limit: float, text: bytes | None = None
) -> BigMessageResult:
    """Send one message of ``size`` bytes; time from the 354 to the final 250.

    A blocking socket on purpose: ``sendall`` hands the kernel slices of one buffer without
    copying them into a transport buffer, so the client is not what limits MB/s (measured:
    0.1-0.2 CPU-s/GB, nearly all in the kernel, while the transfer runs).  Building the
    text costs far more (about 2 CPU-s/GB, mostly faulting its memory in): pass ``text``
    from ``big_message_text(size)`` to build it before a measurement starts.
    """
    body = big_message_text(size) if text is None else text
    deadline = time.monotonic() + limit
    with socket.create_connection((host, port), timeout=limit) as connection:
        replies = BlockingReplies(connection, deadline)
        replies.expect(220)
        connection.sendall(b"EHLO big.bench.example\r\n")
        replies.expect(250)
        connection.sendall(ENVELOPE)
        replies.expect(250, 250, 354)
        started = time.perf_counter()
        connection.sendall(body)
        replies.expect(250)
        elapsed = time.perf_counter() - started
        with contextlib.suppress(OSError, SMTPLoadError):
            connection.sendall(b"QUIT\r\n")
            replies.expect(221)
    return BigMessageResult(size, elapsed)


class BlockingReplies:
    """Reply reader on a blocking socket, bounded by an absolute deadline."""

    def __init__(self, connection: socket.socket, deadline: float) -> None:
        self.connection = connection
        self.deadline = deadline
        self.buffer = b""

    def read_line(self) -> bytes:
        while b"\n" not in self.buffer:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("deadline passed while waiting for a reply")
            self.connection.settimeout(remaining)
            chunk = self.connection.recv(65536)
            if not chunk:
                raise SMTPLoadError("server closed the connection")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.rstrip(b"\r")

    def expect(self, *codes: int) -> None:
        for wanted in codes:
            lines = [self.read_line()]
            while lines[-1][3:4] == b"-":
                lines.append(self.read_line())
            code = parse_reply_code(lines)
            if code != wanted:
                raise SMTPLoadError(f"expected {wanted}, got {code}")


@dataclass(frozen=True)
class IdleResult:
    wanted: int
    held: int
    noop_ok: int
    connect_seconds: float
    errors: dict[str, int]


async def idle_connections(
    host: str,
    port: int,
    count: int,
    concurrency: int,
    limit: float,
    while_held: Callable[[], Awaitable[None]],
) -> IdleResult:
    """Open ``count`` connections (greeting + EHLO each), await ``while_held()``, then NOOP all.

    ``while_held`` is where the caller measures the server with every connection open.
    """
    gate = asyncio.Semaphore(concurrency)
    sessions: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    errors: dict[str, int] = {}
    deadline = time.monotonic() + limit

    def count_error(error: BaseException) -> None:
        key = f"{type(error).__name__}: {error}"[:80]
        errors[key] = errors.get(key, 0) + 1

    async def open_one(index: int) -> None:
        async with gate:
            if time.monotonic() > deadline:
                raise TimeoutError("idle scenario deadline passed while connecting")
            async with asyncio.timeout(30):
                sessions.append(await open_session(host, port, b"idle%d.bench.example" % index))

    async def noop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        async with gate, asyncio.timeout(30):
            writer.write(b"NOOP\r\n")
            return await read_reply(reader) == 250

    started = time.perf_counter()
    try:
        outcomes = await asyncio.gather(
            *(open_one(i) for i in range(count)), return_exceptions=True
        )
        connect_seconds = time.perf_counter() - started
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                count_error(outcome)
        await while_held()
        answers = await asyncio.gather(*(noop(r, w) for r, w in sessions), return_exceptions=True)
        noop_ok = sum(1 for answer in answers if answer is True)
        for answer in answers:
            if isinstance(answer, BaseException):
                count_error(answer)
    finally:
        for _, writer in sessions:
            writer.close()
        await asyncio.gather(
            *(writer.wait_closed() for _, writer in sessions), return_exceptions=True
        )
    return IdleResult(count, len(sessions), noop_ok, connect_seconds, errors)
