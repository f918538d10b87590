"""In-process throughput of one big message through ``SMTP`` (not a test; run by hand).

    .venv/bin/python -m tests.adapter.bench_big_message [MiB] [rounds] [kind]

Feeds a message of 78-octet lines (``base64``: no dot; ``1-in-20``: every 20th line
dot-led) in 256 KiB reads through ``get_buffer``/``buffer_updated``, as asyncio's
selector transport does, to an ``SMTP`` over the in-memory transport, and prints the
best MB/s of ``rounds`` runs.  No socket and no loop turn per read: what is left is the
library's own work (framing, checks, copies) and the page faults of the message's
storage.  For instruction counts run it under callgrind with one round::

    valgrind --tool=callgrind --instr-atstart=no \\
        .venv/bin/python -m tests.adapter.bench_big_message 50 1

(the driver switches instrumentation on around the feeding loop only, through
``callgrind_control`` if ``CALLGRIND`` is set in the environment).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

from aiosmtpd.smtp import SMTP
from aiosmtpd.testing.transport import MemoryTransport

from .util import SizeRecorder

_LINES = {
    "base64": [b"QUJD" * 19 + b"\r\n"],
    "1-in-20": [b"x" * 76 + b"\r\n"] * 19 + [b"." + b"y" * 75 + b"\r\n"],
}
READ = 256 * 1024


def feed(server: SMTP, data: bytes | memoryview) -> None:
    buffer = server.get_buffer(-1)
    buffer[: len(data)] = data
    server.buffer_updated(len(data))


def _callgrind(switch: str) -> None:
    if os.environ.get("CALLGRIND"):
        subprocess.run(["callgrind_control", "-i", switch, str(os.getpid())], check=True)


async def run_once(message: bytes, content_size: int) -> float:
    handler = SizeRecorder()
    server = SMTP(handler, data_size_limit=None)
    transport = MemoryTransport()
    server.connection_made(transport)
    await asyncio.sleep(0)
    for command in (b"EHLO a\r\n", b"MAIL FROM:<a@example.com>\r\n", b"RCPT TO:<b@x.com>\r\n"):
        feed(server, command)
        await asyncio.sleep(0)
    feed(server, b"DATA\r\n")
    await asyncio.sleep(0)
    view = memoryview(message)
    _callgrind("on")
    started = time.perf_counter()
    for offset in range(0, len(message), READ):
        feed(server, view[offset : offset + READ])
    while handler.size < 0:
        await asyncio.sleep(0)
    elapsed = time.perf_counter() - started
    _callgrind("off")
    assert handler.size == content_size, (handler.size, content_size)
    server.connection_lost(None)
    await asyncio.sleep(0)
    return len(message) / elapsed / 1e6


def main() -> None:
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    kind = sys.argv[3] if len(sys.argv) > 3 else "base64"
    block = b"".join(_LINES[kind])
    body = block * ((mib << 20) // len(block))
    content_size = len(body) - body.count(b"\r\n.") - body.startswith(b".")
    message = body + b".\r\n"
    best = max(asyncio.run(run_once(message, content_size)) for _ in range(rounds))
    print(f"{kind} {len(message) / 1e6:.1f} MB in {READ // 1024} KiB reads: {best:.0f} MB/s")


if __name__ == "__main__":
    main()
