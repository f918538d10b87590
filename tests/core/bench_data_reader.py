"""Throughput of the core's DATA path (not a test; run it by hand).

    .venv/bin/python -m tests.core.bench_data_reader [MiB] [chunk KiB]

Feeds messages of 78-octet lines (76 characters plus CRLF) in fixed-size chunks through
``receive_data`` / ``next_event``, as the adapter does, and prints MB/s of raw input parsed
(best of 5) for four kinds of content:

- ``base64``: no dot at all (attachments, the bulk of big mail);
- ``prose``: text with sentence dots, none leading a line;
- ``1-in-20``: every 20th line starts with a dot, so unstuffing does real work;
- ``all-dots``: every line is dot-stuffed (bulk mode).
"""

from __future__ import annotations

import sys
import time

from aiosmtpd._core.connection import CoreConfig, ServerConnection
from aiosmtpd._core.events import NEED_DATA, DataChunk, EndOfData

_LINES = {
    "base64": [b"QUJD" * 19 + b"\r\n"],
    "prose": [b"Dear Mr. Smith. The report is attached. See you at 10 a.m. tomorrow, ok.\r\n"],
    "1-in-20": [b"x" * 76 + b"\r\n"] * 19 + [b"." + b"y" * 75 + b"\r\n"],
    "all-dots": [b"." + b"z" * 75 + b"\r\n"],
}


def build_message(size: int, kind: str = "1-in-20") -> bytes:
    block = b"".join(_LINES[kind])
    return block * (size // len(block) + 1) + b".\r\n"


def run_once(message: bytes, chunk: int) -> float:
    conn = ServerConnection(CoreConfig(data_size_limit=None))
    conn.receive_data(b"DATA\r\n")
    conn.next_event()
    conn.send(b"354 End data with <CR><LF>.<CR><LF>")
    delivered = 0
    started = time.perf_counter()
    for offset in range(0, len(message), chunk):
        conn.receive_data(message[offset : offset + chunk])
        while (event := conn.next_event()) is not NEED_DATA:
            if isinstance(event, DataChunk):
                delivered += len(event.data)
            elif isinstance(event, EndOfData):
                assert event.error is None
    elapsed = time.perf_counter() - started
    assert delivered == event_size(message)
    return len(message) / elapsed / 1e6


def event_size(message: bytes) -> int:
    """Unstuffed size of ``message`` (which ends with its only terminator line)."""
    content = message[:-3]
    return len(content) - content.count(b"\r\n.") - content.startswith(b".")


def main() -> None:
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    chunk = (int(sys.argv[2]) if len(sys.argv) > 2 else 64) * 1024
    for kind in _LINES:
        message = build_message(mib << 20, kind)
        best = max(run_once(message, chunk) for _ in range(5))
        size = f"{len(message) / 1e6:.1f} MB in {chunk // 1024} KiB chunks"
        print(f"{kind:9} {size}: {best:.0f} MB/s")


if __name__ == "__main__":
    main()
