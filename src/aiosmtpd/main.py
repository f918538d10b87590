"""The command line: ``python -m aiosmtpd`` and the ``aiosmtpd`` console script.

Owns: the argument parser (aiosmtpd 1.4's flags, defaults and error messages, plus
``--loop``), building the handler from ``-c CLASS`` with ``from_cli``, binding the listener,
dropping privileges, and running the server until SIGINT or SIGTERM.
Invariants: every user mistake ends in ``parser.error`` (exit 2) or a one-line message and
exit 1, never a traceback; the listener is bound *before* privileges are dropped, so
``-l :25`` works when started as root; the server hostname is computed once per process;
the bound addresses are printed on stderr at start-up (so ``-l host:0`` is usable).
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
from aiosmtpd.smtp import SMTP


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
#: ``-s`` default; the same as ``aiosmtpd.smtp.DATA_SIZE_DEFAULT`` (the help text of 1.4
#: promised it, DECISIONS row 9 makes it true).
DEFAULT_SIZE = 33_554_432
#: How long a SIGTERM/SIGINT stop lets transactions in progress finish (seconds).
STOP_GRACE_SECONDS = 30.0

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


class StartupError(Exception):
    """The server could not start (e.g. the address is in use); main() exits 1."""


def _announce(addresses: Sequence[Any]) -> None:
    """Tell the operator (and scripts using port 0) where the server listens."""
    for address in addresses:
        print(f"{PROGRAM}: listening on {_format_address(address)}", file=sys.stderr, flush=True)
    log.info("Server listening on %s", ", ".join(_format_address(a) for a in addresses))


def _install_stop_signals(loop: asyncio.AbstractEventLoop, stop: Callable[[], None]) -> list[int]:
    installed: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop)
        except (ValueError, RuntimeError, NotImplementedError):
            # Not the main thread, or a platform without loop signal support: the
            # caller stops us through the event instead.
            continue
        installed.append(signum)
    return installed


async def _close_sessions(sessions: weakref.WeakSet[SMTP]) -> None:
    for session in list(sessions):
        transport = getattr(session, "transport", None)
        if transport is not None and not transport.is_closing():
            transport.close()
    # Let connection_lost run for the transports just closed.
    await asyncio.sleep(0)


async def serve(namespace: argparse.Namespace, *, stop: asyncio.Event | None = None) -> None:
    """Serve with the options of a parsed command line until ``stop`` is set.

    In the main thread SIGINT and SIGTERM also set it. Raises :class:`StartupError` when
    the listener cannot be bound.
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
    sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()

    def new_session() -> SMTP:
        session = factory()
        sessions.add(session)
        return session

    try:
        server = await loop.create_server(
            new_session, host=namespace.host, port=namespace.port, ssl=namespace.smtps_context
        )
    except OSError as exc:
        raise StartupError(
            f"cannot listen on {namespace.host}:{namespace.port}: {exc.strerror or exc}"
        ) from exc
    stop_event = stop if stop is not None else asyncio.Event()
    installed = _install_stop_signals(loop, stop_event.set)
    try:
        if nobody_uid is not None:
            _drop_privileges(nobody_uid)
        _announce([sock.getsockname() for sock in server.sockets])
        await stop_event.wait()
        log.info("Server stopping")
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
        server.close()
        await _close_sessions(sessions)
        await server.wait_closed()


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if name == "uvloop":
        uvloop = import_module("uvloop")
        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
        return factory
    return None


@public
def main(args: Sequence[str] | None = None) -> None:
    """Run the server from the command line ``args`` (default ``sys.argv[1:]``)."""
    _parser, namespace = parseargs(args=args)
    _configure_logging(namespace.debug)
    try:
        with asyncio.Runner(loop_factory=_loop_factory(namespace.loop)) as runner:
            runner.run(serve(namespace))
    except KeyboardInterrupt:
        pass
    except StartupError as exc:
        print(f"{PROGRAM}: {exc}", file=sys.stderr)
        sys.exit(1)
