"""Cost of the core's command and reply path per transaction (not a test; run it by hand).

    .venv/bin/python -m tests.core.bench_commands [transactions] [profile]

Drives ``ServerConnection`` as the adapter does for a pipelined transaction (RFC 2920): one
receive holds the previous message's content and terminator plus ``MAIL FROM``, ``RCPT TO``
and ``DATA``; every event is answered with its canonical reply (250, 250, 250, 354), the
MAIL/RCPT arguments are parsed with ``syntax`` as the adapter parses them.  Prints
microseconds and Python function calls per transaction (best of 5); with a second argument,
a cProfile listing.  No asyncio, no handler: only the core's own cost.
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import time
from collections.abc import Callable

from aiosmtpd._core import replies, syntax
from aiosmtpd._core.connection import CoreConfig, ServerConnection
from aiosmtpd._core.events import NEED_DATA, Command, DataChunk, EndOfData

ENVELOPE = b"MAIL FROM:<sender@example.com>\r\nRCPT TO:<recipient@example.org>\r\nDATA\r\n"
LINE = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123\r\n"
BODY = b"Subject: benchmark\r\nFrom: <sender@example.com>\r\n\r\n" + LINE * 12 + b".\r\n"


def _reply_bytes() -> Callable[[replies.Reply], bytes]:
    if hasattr(replies.Reply, "line"):
        return lambda reply: reply.line(False)
    return lambda reply: reply.render(False).encode("utf-8")


def _path_parser() -> Callable[[str, str], tuple[str, str] | syntax.PathError]:
    combined = getattr(syntax, "parse_path_argument", None)
    if combined is not None:
        return combined  # type: ignore[no-any-return]

    def parse(arg: str, keyword: str) -> tuple[str, str] | syntax.PathError:
        text = syntax.strip_keyword(arg, keyword)
        return syntax.parse_path(text) if text else syntax.PathError.SYNTAX

    return parse


def run(transactions: int) -> float:
    """Seconds for ``transactions`` pipelined transactions after EHLO and the first envelope."""
    conn = ServerConnection(CoreConfig(mail_esmtp_extra=26))
    say = _reply_bytes()
    parse_path = _path_parser()
    sent: list[bytes] = []
    ok, start_data = replies.OK, replies.START_DATA

    def serve() -> None:
        while (event := conn.next_event()) is not NEED_DATA:
            if type(event) is Command:
                verb = event.verb
                if verb == "MAIL" or verb == "RCPT":
                    parsed = parse_path(event.arg or "", "FROM:" if verb == "MAIL" else "TO:")
                    assert not isinstance(parsed, syntax.PathError)
                    assert syntax.parse_esmtp_params(parsed[1]) is not None
                    sent.append(conn.send(say(ok)))
                elif verb == "DATA":
                    sent.append(conn.send(say(start_data)))
                else:
                    sent.append(conn.send(b"250-mail.example"))
                    sent.append(conn.send(b"250 SIZE 33554432"))
            elif type(event) is EndOfData:
                sent.append(conn.send(say(ok)))
            else:
                assert type(event) is DataChunk

    conn.receive_data(b"EHLO client.example\r\n" + ENVELOPE)
    serve()
    pipelined = BODY + ENVELOPE
    started = time.perf_counter()
    for _ in range(transactions):
        conn.receive_data(pipelined)
        serve()
        del sent[:]
    return time.perf_counter() - started


def count_calls(transactions: int) -> float:
    profile = cProfile.Profile()
    profile.runcall(run, transactions)
    stats = pstats.Stats(profile)
    return stats.total_calls / transactions  # type: ignore[attr-defined,no-any-return]


def main() -> None:
    transactions = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    best = min(run(transactions) for _ in range(5))
    calls = count_calls(transactions)
    print(f"{best / transactions * 1e6:.2f} us, {calls:.1f} calls per transaction")
    if len(sys.argv) > 2:
        profile = cProfile.Profile()
        profile.runcall(run, transactions)
        pstats.Stats(profile).sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    main()
