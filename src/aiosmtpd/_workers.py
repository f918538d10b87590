"""The ``--workers`` process tree of the command line, and SO_REUSEPORT listeners.

Owns: reserving the listening addresses once in the parent (so port 0 means one port for
every worker), forking the workers, announcing the address once every worker listens,
replacing a worker that dies (giving up when they keep dying), and forwarding SIGTERM and
SIGINT so each worker stops gracefully.
Invariants: the stop signals are blocked around every ``fork()`` (a worker handles them
only once it can stop gracefully); a child never returns into the parent's code.
Must not know: how one worker serves (``run_one`` is handed in by ``aiosmtpd.main``), the
SMTP protocol, argument parsing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from aiosmtpd.serving import loopback_hosts

#: Serve as one worker: (namespace, SO_REUSEPORT addresses, started callback) -> exit code.
RunOne = Callable[
    [argparse.Namespace, Sequence[tuple[int, Any]], Callable[[list[Any]], object] | None], int
]

STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


class StartupError(Exception):
    """The server could not start (e.g. the address is in use); main() exits 1."""


def reuseport_socket(family: int, address: Any) -> socket.socket:
    """A socket bound to ``address`` in the SO_REUSEPORT group of that address."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


def reserve_addresses(host: str, port: int) -> list[socket.socket]:
    """Bind (without listening) one SO_REUSEPORT socket per address of ``host``.

    They fix the port (when 0 was asked for) that every worker then binds too.
    """
    hosts = loopback_hosts(host)
    try:
        infos = [
            info
            for name in ([hosts] if isinstance(hosts, str) else hosts)
            for info in socket.getaddrinfo(
                name, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
        ]
    except OSError as exc:
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    reserved: list[socket.socket] = []
    seen = set()
    try:
        for family, _type, _proto, _canon, resolved in infos:
            if (family, resolved) in seen:
                continue
            seen.add((family, resolved))
            address = resolved
            if port == 0 and reserved:
                # Every address of the host on the one port the first bind picked.
                address = (resolved[0], reserved[0].getsockname()[1], *resolved[2:])
            reserved.append(reuseport_socket(family, address))
    except OSError as exc:
        for sock in reserved:
            sock.close()
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return reserved


def _ready(ready_fd: int, _bound: object) -> None:
    os.write(ready_fd, b"+")
    os.close(ready_fd)


def _replacement_ready(program: str, _bound: object) -> None:
    # Until a replacement listens, a port whose other workers died too refuses
    # connections: say when it does (operators and tests wait for this line).
    print(f"{program}: worker {os.getpid()} listening", file=sys.stderr, flush=True)


#: A worker that dies is replaced; more than this many deaths within
#: ``_RESTART_WINDOW`` seconds means something is wrong with every worker: give up.
_MAX_RESTARTS = 10
_RESTART_WINDOW = 60.0


def _fork_worker(
    namespace: argparse.Namespace,
    reserved: Sequence[socket.socket],
    addresses: Sequence[tuple[int, Any]],
    ready_write: int | None,
    ready_read: int | None,
    *,
    run_one: RunOne,
    program: str = "aiosmtpd",
) -> int:
    """Fork one serving process (stop signals must be blocked); the parent gets its pid."""
    pid = os.fork()
    if pid != 0:
        return pid
    # The child (tested through a subprocess): serve, never return into the parent code.
    if ready_read is not None:
        os.close(ready_read)
    for sock in reserved:
        sock.close()
    code = 1
    try:
        if ready_write is not None:
            started = partial(_ready, ready_write)
        else:
            started = partial(_replacement_ready, program)
        code = run_one(namespace, addresses, started)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def run_workers(
    namespace: argparse.Namespace,
    *,
    run_one: RunOne,
    announce: Callable[[Sequence[Any]], None],
    check_privileges: Callable[[], object],
    program: str,
) -> int:
    """Fork ``namespace.workers`` serving processes, replace any that dies, forward stop
    signals (each worker then stops gracefully) and reap them."""
    if namespace.setuid:
        check_privileges()
    reserved = reserve_addresses(namespace.host, namespace.port)
    addresses = [(sock.family, sock.getsockname()) for sock in reserved]
    children: set[int] = set()
    stopping = False
    # Each worker writes one byte here once it listens; the parent announces the address
    # only when all of them do, so a client never meets a refused connection.
    ready_read, ready_write = os.pipe()
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        for _ in range(namespace.workers):
            children.add(
                _fork_worker(
                    namespace, reserved, addresses, ready_write, ready_read, run_one=run_one
                )
            )

        def forward(signum: int, _frame: object) -> None:
            nonlocal stopping
            stopping = True
            for child in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGTERM)

        for signum in STOP_SIGNALS:
            signal.signal(signum, forward)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    os.close(ready_write)
    with os.fdopen(ready_read, "rb") as ready:
        # EOF before every byte arrived means a worker died before listening.
        all_ready = len(ready.read(namespace.workers)) == namespace.workers
    if all_ready:
        announce([address for _family, address in addresses])
    else:
        forward(signal.SIGTERM, None)
    status = 0 if all_ready else 1
    deaths: list[float] = []
    try:
        while children:
            pid, wait_status = os.wait()
            if pid not in children:
                continue
            children.discard(pid)
            code = os.waitstatus_to_exitcode(wait_status)
            if stopping:
                if code != 0:
                    status = 1
                continue
            now = time.monotonic()
            deaths = [when for when in deaths if now - when < _RESTART_WINDOW] + [now]
            if len(deaths) > _MAX_RESTARTS:
                print(f"{program}: workers keep dying; stopping", file=sys.stderr, flush=True)
                status = 1
                forward(signal.SIGTERM, None)
                continue
            signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
            try:
                replacement = _fork_worker(
                    namespace, reserved, addresses, None, None, run_one=run_one, program=program
                )
                children.add(replacement)
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            print(
                f"{program}: worker {pid} exited ({code}); started worker {replacement}",
                file=sys.stderr,
                flush=True,
            )
    finally:
        for signum in STOP_SIGNALS:
            signal.signal(
                signum, signal.SIG_DFL if signum != signal.SIGINT else signal.default_int_handler
            )
        for sock in reserved:
            sock.close()
    return status
