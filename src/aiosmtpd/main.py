"""The command line: ``python -m aiosmtpd`` and the ``aiosmtpd`` console script.

Owns: the argument parser (aiosmtpd 1.4's flags, defaults and error messages, plus
``--loop`` and ``--workers``), building the handler from ``-c CLASS`` with ``from_cli``,
binding the listener, dropping privileges, running the server until SIGINT or SIGTERM then
stopping gracefully (``--shutdown-timeout``), connection caps, and the ``--workers``
process tree (workers share one SO_REUSEPORT address; the parent only binds, announces,
forwards stop signals, reaps, and replaces a worker that dies).
Invariants: every user mistake ends in ``parser.error`` (exit 2) or a one-line message and
exit 1, never a traceback; the listener is bound *before* privileges are dropped, so
``-l :25`` works when started as root; the server hostname is computed once per process;
the bound addresses are printed on stderr at start-up (so ``-l host:0`` is usable).
The ``--workers`` process tree itself lives in ``aiosmtpd._workers``.
Must not know: the SMTP protocol; it only builds ``SMTP`` objects with keyword arguments.

Module-level names ``PROGRAM``, ``pwd`` and ``partial`` exist because tests of 1.4-era
programs patch them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import ssl
import sys
import weakref
from collections.abc import Callable, Sequence
from functools import partial
from importlib import import_module
from pathlib import Path
from types import ModuleType
from typing import Any

from public import public

from aiosmtpd import __version__
from aiosmtpd._workers import STOP_SIGNALS, StartupError, reuseport_socket, run_workers
from aiosmtpd.serving import (
    DEFAULT_SHUTDOWN_TIMEOUT,
    ConnectionLimiter,
    drain_sessions,
    loopback_hosts,
    reserve_port,
)
from aiosmtpd.smtp import DATA_SIZE_DEFAULT, SMTP


def _optional_module(name: str) -> ModuleType | None:
    try:
        return import_module(name)
    except ImportError:  # pragma: no cover - pwd exists on every POSIX system
        return None


#: ``None`` where the platform has no ``pwd`` (then only ``-n`` works).
pwd: ModuleType | None = _optional_module("pwd")

#: The name ``--version`` and error messages use.
PROGRAM = (
    "aiosmtpd"
    if sys.argv and sys.argv[0].endswith("__main__.py")
    else (Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "aiosmtpd")
)

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 8025
DEFAULT_CLASS = "aiosmtpd.handlers.Debugging"
#: ``-s`` default: 1.4's help text promised it, DECISIONS row 9 makes it true.
DEFAULT_SIZE = DATA_SIZE_DEFAULT

log = logging.getLogger("mail.log")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM, description="An RFC 5321 SMTP server with extensions."
    )
    parser.add_argument("-v", "--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-n",
        "--nosetuid",
        dest="setuid",
        default=True,
        action="store_false",
        help=(
            'Do not switch to the user "nobody" after binding. Needed unless the '
            "program is started as root."
        ),
    )
    parser.add_argument(
        "-c",
        "--class",
        dest="classpath",
        metavar="CLASSPATH",
        default=DEFAULT_CLASS,
        help=(
            "Dotted import path of the handler class that receives the SMTP events. "
            f"Defaults to {DEFAULT_CLASS}, which prints each message."
        ),
    )
    parser.add_argument(
        "-s",
        "--size",
        metavar="SIZE",
        type=int,
        default=DEFAULT_SIZE,
        help=(
            "Largest message accepted, in bytes, advertised with the RFC 1870 SIZE "
            f"extension. Defaults to {DEFAULT_SIZE:,} bytes; 0 means no limit."
        ),
    )
    parser.add_argument(
        "-u",
        "--smtputf8",
        default=False,
        action="store_true",
        help="Enable the SMTPUTF8 extension (RFC 6531).",
    )
    parser.add_argument(
        "-d",
        "--debug",
        default=0,
        action="count",
        help=(
            "More logging on each use: -d logs sessions (INFO), -dd logs every "
            "command (DEBUG), -ddd also turns on asyncio's debug mode."
        ),
    )
    parser.add_argument(
        "-l",
        "--listen",
        metavar="[HOST][:PORT]",
        nargs="?",
        default=None,
        help=(
            f"Where to listen. PORT defaults to {DEFAULT_PORT} and HOST to "
            f"{DEFAULT_HOST}; write IPv6 addresses in brackets ([::1]:25). Port 0 "
            "picks a free port; the bound address is printed on stderr."
        ),
    )
    parser.add_argument(
        "--smtpscert",
        metavar="CERTFILE",
        help="Certificate file for implicit TLS (SMTPS); needs --smtpskey.",
    )
    parser.add_argument(
        "--smtpskey",
        metavar="KEYFILE",
        help="Key file for implicit TLS (SMTPS); needs --smtpscert.",
    )
    parser.add_argument(
        "--tlscert",
        metavar="CERTFILE",
        help="Certificate file for STARTTLS; needs --tlskey.",
    )
    parser.add_argument(
        "--tlskey",
        metavar="KEYFILE",
        help="Key file for STARTTLS; needs --tlscert.",
    )
    parser.add_argument(
        "--no-requiretls",
        dest="requiretls",
        default=True,
        action="store_false",
        help=(
            "With --tlscert/--tlskey, do not require STARTTLS before mail "
            "transactions (by default it is required)."
        ),
    )
    parser.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="Event loop implementation (uvloop needs the aiosmtpd[uvloop] extra).",
    )
    parser.add_argument(
        "--workers",
        metavar="N",
        type=int,
        default=1,
        help=(
            "Serve with N processes (one per core is a good start), all accepting on "
            "the same SO_REUSEPORT address. Default 1."
        ),
    )
    parser.add_argument(
        "--shutdown-timeout",
        metavar="SECONDS",
        type=float,
        default=DEFAULT_SHUTDOWN_TIMEOUT,
        help=(
            "On SIGTERM/SIGINT, how long a transaction in progress may take to finish "
            f"before it is told 421. Default {DEFAULT_SHUTDOWN_TIMEOUT:g}."
        ),
    )
    parser.add_argument(
        "--max-connections",
        metavar="N",
        type=int,
        default=None,
        help="Refuse connections beyond N at a time (421 4.7.0); per worker. No default cap.",
    )
    parser.add_argument(
        "--max-connections-per-address",
        metavar="N",
        type=int,
        default=None,
        help=(
            "Refuse a client address's connections beyond N at a time (421 4.7.0); per "
            "worker. No default cap."
        ),
    )
    parser.add_argument(
        "classargs",
        metavar="CLASSARGS",
        nargs="*",
        default=(),
        help="Extra arguments passed to the handler class's from_cli().",
    )
    return parser


def _parse_listen(parser: argparse.ArgumentParser, value: str | None) -> tuple[str, int]:
    """``[HOST][:PORT]`` the 1.4 way (split at the last colon), plus ``[v6]:port``."""
    if not value:
        return DEFAULT_HOST, DEFAULT_PORT
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            parser.error(f"Invalid address: {value}")
        port_text = rest[1:]
    else:
        host, _, port_text = value.rpartition(":")
        if not _:
            host, port_text = port_text, ""
    host = host or DEFAULT_HOST
    if not port_text:
        return host, DEFAULT_PORT
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        parser.error(f"Invalid port number: {port_text}")
    return host, port


def _load_handler(parser: argparse.ArgumentParser, classpath: str, classargs: Sequence[str]) -> Any:
    module_path, _, class_name = classpath.rpartition(".")
    if not module_path or not class_name:
        parser.error(f"Invalid handler class path: {classpath}")
    try:
        module = import_module(module_path)
    except ImportError as exc:
        parser.error(f"Cannot import module {module_path}: {exc}")
    try:
        handler_class = getattr(module, class_name)
    except AttributeError:
        parser.error(f"Module {module_path} has no class {class_name}")
    from_cli = getattr(handler_class, "from_cli", None)
    if from_cli is not None:
        return from_cli(parser, *classargs)
    if classargs:
        parser.error(f"Handler class {module_path} takes no arguments")
    return handler_class()


def _tls_context(
    parser: argparse.ArgumentParser,
    certfile: str | None,
    keyfile: str | None,
    cert_flag: str,
    key_flag: str,
) -> ssl.SSLContext | None:
    if certfile is None and keyfile is None:
        return None
    if certfile is None or keyfile is None:
        parser.error(f"{cert_flag} and {key_flag} must be specified together")
    if not Path(certfile).exists():
        parser.error(f"Cert file {certfile} not found")
    if not Path(keyfile).exists():
        parser.error(f"Key file {keyfile} not found")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile, keyfile)
    except (ssl.SSLError, OSError) as exc:
        parser.error(f"Cannot load {certfile} / {keyfile}: {exc}")
    return context


def parseargs(
    args: Sequence[str] | None = None,
) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    """Parse the command line; the namespace gains ``handler``, ``host`` and ``port``.

    Also ``tls_context`` (STARTTLS) and ``smtps_context`` (implicit TLS), each an
    :class:`ssl.SSLContext` or ``None``. Mistakes end in ``parser.error`` (exit 2).
    """
    parser = _build_parser()
    namespace = parser.parse_args(args)
    if namespace.workers < 1:
        parser.error(f"Invalid number of workers: {namespace.workers}")
    if namespace.shutdown_timeout < 0:
        parser.error(f"Invalid shutdown timeout: {namespace.shutdown_timeout:g}")
    for flag, value in (
        ("--max-connections", namespace.max_connections),
        ("--max-connections-per-address", namespace.max_connections_per_address),
    ):
        if value is not None and value < 1:
            parser.error(f"Invalid {flag}: {value}")
    if namespace.size < 0:
        parser.error(f"Invalid size: {namespace.size} (0 means no limit)")
    namespace.host, namespace.port = _parse_listen(parser, namespace.listen)
    namespace.tls_context = _tls_context(
        parser, namespace.tlscert, namespace.tlskey, "--tlscert", "--tlskey"
    )
    namespace.smtps_context = _tls_context(
        parser, namespace.smtpscert, namespace.smtpskey, "--smtpscert", "--smtpskey"
    )
    if namespace.loop == "uvloop":
        try:
            import_module("uvloop")
        except ImportError:
            parser.error("--loop uvloop needs uvloop: pip install 'aiosmtpd[uvloop]'")
    namespace.handler = _load_handler(parser, namespace.classpath, namespace.classargs)
    return parser, namespace


def _check_can_drop_privileges() -> int:
    """The uid of "nobody"; exit 1 with 1.4's messages when that cannot work."""
    if pwd is None:
        print('Cannot import module "pwd"; try running with -n option.', file=sys.stderr)
        sys.exit(1)
    try:
        return int(pwd.getpwnam("nobody").pw_uid)
    except KeyError:
        print('Cannot setuid "nobody"; try running with -n option.', file=sys.stderr)
        sys.exit(1)


def _drop_privileges(uid: int) -> None:
    try:
        os.setuid(uid)
    except PermissionError:
        print('Cannot setuid "nobody"; try running with -n option.', file=sys.stderr)
        sys.exit(1)


def _format_address(sockname: Any) -> str:
    if isinstance(sockname, tuple):
        host, port = sockname[0], sockname[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return str(sockname)


def _configure_logging(debug: int) -> None:
    logging.basicConfig(level=logging.ERROR)
    if debug >= 2:
        log.setLevel(logging.DEBUG)
    elif debug == 1:
        log.setLevel(logging.INFO)


_STOP_SIGNALS = STOP_SIGNALS


def _announce(addresses: Sequence[Any]) -> None:
    """Tell the operator (and scripts using port 0) where the server listens."""
    for address in addresses:
        print(f"{PROGRAM}: listening on {_format_address(address)}", file=sys.stderr, flush=True)
    log.info("Server listening on %s", ", ".join(_format_address(a) for a in addresses))


def _install_stop_signals(loop: asyncio.AbstractEventLoop, stop: Callable[[], None]) -> list[int]:
    installed: list[int] = []
    for signum in sorted(_STOP_SIGNALS):
        try:
            loop.add_signal_handler(signum, stop)
        except (ValueError, RuntimeError, NotImplementedError):
            # Not the main thread, or a platform without loop signal support: the
            # caller stops us through the event instead.
            continue
        installed.append(signum)
    return installed


async def _listen(
    loop: asyncio.AbstractEventLoop,
    factory: Callable[[], asyncio.Protocol],
    namespace: argparse.Namespace,
    reuseport_addresses: Sequence[tuple[int, Any]] | None,
) -> list[asyncio.Server]:
    if reuseport_addresses is None:
        # Port 0 on a host with several addresses: the same free port on all of them.
        hosts = loopback_hosts(namespace.host)
        port, reserved = reserve_port(hosts, namespace.port)
        if len(reserved) == 1:
            reserved.pop().close()
            port = 0
        try:
            server = await loop.create_server(
                factory,
                host=hosts,
                port=port,
                ssl=namespace.smtps_context,
                reuse_port=True if reserved else None,
            )
        finally:
            for sock in reserved:
                sock.close()
        return [server]
    servers = []
    for family, address in reuseport_addresses:
        sock = reuseport_socket(family, address)
        try:
            sock.listen(socket.SOMAXCONN)
            sock.setblocking(False)
            servers.append(
                await loop.create_server(factory, sock=sock, ssl=namespace.smtps_context)
            )
        except BaseException:
            sock.close()
            raise
    return servers


async def serve(
    namespace: argparse.Namespace,
    *,
    stop: asyncio.Event | None = None,
    reuseport_addresses: Sequence[tuple[int, Any]] | None = None,
    started: Callable[[list[Any]], object] | None = None,
) -> None:
    """Serve with the options of a parsed command line until ``stop`` is set.

    In the main thread SIGINT and SIGTERM also set it. ``started`` is called with the
    bound socket addresses once the server listens. ``reuseport_addresses`` (pairs of
    address family and socket address) makes this process one of several ``--workers``
    listening on the same SO_REUSEPORT addresses. Raises :class:`StartupError` when the
    listener cannot be bound.
    """
    loop = asyncio.get_running_loop()
    if namespace.debug >= 3:
        loop.set_debug(True)
    nobody_uid = _check_can_drop_privileges() if namespace.setuid else None
    # getfqdn() may wait on DNS: once per process, not once per connection.
    hostname = socket.getfqdn()
    factory = partial(
        SMTP,
        namespace.handler,
        data_size_limit=namespace.size or None,
        enable_SMTPUTF8=namespace.smtputf8,
        tls_context=namespace.tls_context,
        require_starttls=namespace.requiretls,
        hostname=hostname,
    )
    if namespace.max_connections is not None or namespace.max_connections_per_address is not None:
        factory = partial(
            factory,
            connection_limiter=ConnectionLimiter(
                namespace.max_connections, namespace.max_connections_per_address
            ),
        )
    sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()

    def new_session() -> SMTP:
        session = factory()
        sessions.add(session)
        return session

    try:
        servers = await _listen(loop, new_session, namespace, reuseport_addresses)
    except OSError as exc:
        raise StartupError(
            f"cannot listen on {namespace.host}:{namespace.port}: {exc.strerror or exc}"
        ) from exc
    stop_event = stop if stop is not None else asyncio.Event()
    installed = _install_stop_signals(loop, stop_event.set)
    # A --workers parent blocks the stop signals around fork() so that none arrives
    # before this process can handle it; from here on it can.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    try:
        if nobody_uid is not None:
            _drop_privileges(nobody_uid)
        bound = [sock.getsockname() for server in servers for sock in server.sockets]
        if reuseport_addresses is None:
            _announce(bound)
        if started is not None:
            started(bound)
        await stop_event.wait()
        log.info("Server stopping")
    finally:
        for server in servers:
            server.close()
        try:
            # The stop signals stay handled (ignored: stop_event is set) while draining,
            # so a second SIGTERM cannot kill a message half-way.
            await drain_sessions(sessions, namespace.shutdown_timeout)
            # Let connection_lost run for the transports just closed.
            await asyncio.sleep(0)
            for server in servers:
                await server.wait_closed()
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if name == "uvloop":
        uvloop = import_module("uvloop")
        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
        return factory
    return None


def _run_one(
    namespace: argparse.Namespace,
    reuseport_addresses: Sequence[tuple[int, Any]] | None = None,
    started: Callable[[list[Any]], object] | None = None,
) -> int:
    try:
        with asyncio.Runner(loop_factory=_loop_factory(namespace.loop)) as runner:
            runner.run(serve(namespace, reuseport_addresses=reuseport_addresses, started=started))
    except KeyboardInterrupt:
        pass
    except StartupError as exc:
        print(f"{PROGRAM}: {exc}", file=sys.stderr)
        return 1
    return 0


@public
def main(args: Sequence[str] | None = None) -> None:
    """Run the server from the command line ``args`` (default ``sys.argv[1:]``)."""
    _parser, namespace = parseargs(args=args)
    _configure_logging(namespace.debug)
    if namespace.workers > 1:
        try:
            status = run_workers(
                namespace,
                run_one=_run_one,
                announce=_announce,
                check_privileges=_check_can_drop_privileges,
                program=PROGRAM,
            )
        except StartupError as exc:
            print(f"{PROGRAM}: {exc}", file=sys.stderr)
            status = 1
    else:
        status = _run_one(namespace)
    if status:
        sys.exit(status)
