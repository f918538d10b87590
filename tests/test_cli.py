"""The command line (aiosmtpd.main): parsing, in-process serving and a real subprocess.

In-process tests run ``serve()`` on the test's loop (port 0, a stop event) or ``main()``
in the main thread stopped by a real SIGTERM; subprocess tests run ``python -m aiosmtpd``
and read the bound address it prints. ``RunningServer`` (also used by test_examples.py)
owns a subprocess and its output readers and always reaps them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import queue
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import aiosmtpd.main as cli
from aiosmtpd import __version__
from tests.support import require_module

REPO = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"listening on (\[[^\]]+\]|[^\s:]+):(\d+)")
TIMEOUT = 30.0


# --- helpers ---------------------------------------------------------------------------


class RunningServer:
    """A server subprocess whose stdout/stderr lines are read by two threads."""

    def __init__(self, argv: Sequence[str], *, cwd: Path | None = None) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=cwd or REPO,
            env=env,
        )
        self.stdout: queue.Queue[str | None] = queue.Queue()
        self.stderr: queue.Queue[str | None] = queue.Queue()
        self.stdout_seen: list[str] = []
        self.stderr_seen: list[str] = []
        self._stopped = False
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        self._readers = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.stdout)),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr)),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _pump(stream: Any, lines: queue.Queue[str | None]) -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)

    def wait_for(self, pattern: str | re.Pattern[str], *, stream: str = "stdout") -> re.Match[str]:
        """Block until a line of ``stream`` matches ``pattern`` (fail at EOF or timeout)."""
        lines = self.stdout if stream == "stdout" else self.stderr
        seen = self.stdout_seen if stream == "stdout" else self.stderr_seen
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        while True:
            try:
                line = lines.get(timeout=TIMEOUT)
            except queue.Empty:
                pytest.fail(f"no line matching {regex.pattern!r} on {stream}; saw {seen}")
            if line is None:
                lines.put(None)  # keep EOF visible to later calls
                pytest.fail(
                    f"{stream} closed before {regex.pattern!r}; saw {seen}; "
                    f"stderr {self.stderr_seen}"
                )
            seen.append(line)
            match = regex.search(line)
            if match:
                return match

    def wait_listening(self, stream: str = "stderr") -> int:
        return int(self.wait_for(LISTENING, stream=stream).group(2))

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Signal the process, wait for it, reap the readers; return the exit code."""
        if self._stopped:
            return self.proc.returncode
        self._stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for reader in self._readers:
            reader.join()
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        self.proc.stdout.close()
        self.proc.stderr.close()
        for lines, seen in ((self.stdout, self.stdout_seen), (self.stderr, self.stderr_seen)):
            while (line := lines.get()) is not None:
                seen.append(line)
        return self.proc.returncode

    @property
    def all_stderr(self) -> str:
        return "".join(self.stderr_seen)

    @property
    def all_stdout(self) -> str:
        return "".join(self.stdout_seen)


@contextlib.contextmanager
def running(argv: Sequence[str], *, cwd: Path | None = None) -> Iterator[RunningServer]:
    server = RunningServer(argv, cwd=cwd)
    try:
        yield server
    finally:
        server.stop()


class LineClient:
    """A minimal asyncio SMTP client for in-process tests (replies as lists of lines)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, address: Any, ssl_context: ssl.SSLContext | None = None) -> LineClient:
        reader, writer = await asyncio.open_connection(address[0], address[1], ssl=ssl_context)
        return cls(reader, writer)

    async def reply(self) -> list[str]:
        lines = []
        while True:
            line = (await asyncio.wait_for(self.reader.readline(), TIMEOUT)).decode()
            if not line:
                raise ConnectionResetError(f"closed after {lines}")
            lines.append(line.rstrip("\r\n"))
            if line[3:4] != "-":
                return lines

    async def command(self, text: str) -> list[str]:
        self.writer.write(text.encode() + b"\r\n")
        await self.writer.drain()
        return await self.reply()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()


@contextlib.asynccontextmanager
async def serving(args: Sequence[str]) -> AsyncIterator[Any]:
    """Run ``serve()`` for the command line ``args`` on this loop; yield its address."""
    _parser, namespace = cli.parseargs(["-n", "-l", "127.0.0.1:0", *args])
    loop = asyncio.get_running_loop()
    bound: asyncio.Future[list[Any]] = loop.create_future()
    stop = asyncio.Event()
    task = asyncio.create_task(cli.serve(namespace, stop=stop, started=bound.set_result))
    await asyncio.wait({bound, task}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # raises what prevented the start
        pytest.fail("serve() returned before listening")
    try:
        yield bound.result()[0]
    finally:
        stop.set()
        await task


class RecordingHandler:
    """A handler class for ``-c``: records what ``from_cli`` received."""

    def __init__(self, parser: argparse.ArgumentParser, args: tuple[str, ...]) -> None:
        self.parser, self.args = parser, args

    @classmethod
    def from_cli(cls, parser: argparse.ArgumentParser, *args: str) -> RecordingHandler:
        return cls(parser, args)


class PlainHandler:
    """A handler class without ``from_cli``."""


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path, ssl.SSLContext]:
    trustme = require_module("trustme")
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    leaf.private_key_and_cert_chain_pem.write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    return cert, key, client_context


@pytest.fixture
def mail_log_level() -> Iterator[None]:
    logger = logging.getLogger("mail.log")
    level = logger.level
    yield
    logger.setLevel(level)


# --- parsing ---------------------------------------------------------------------------


def test_defaults() -> None:
    _parser, ns = cli.parseargs([])
    from aiosmtpd.handlers import Debugging

    assert isinstance(ns.handler, Debugging)
    assert (ns.host, ns.port) == ("localhost", 8025)
    assert ns.size == 33_554_432
    assert ns.setuid is True
    assert ns.requiretls is True
    assert ns.smtputf8 is False
    assert ns.debug == 0
    assert ns.tls_context is None
    assert ns.smtps_context is None
    assert ns.loop == "asyncio"
    assert ns.workers == 1


def test_size_default_matches_smtp_default() -> None:
    from aiosmtpd.smtp import DATA_SIZE_DEFAULT

    assert cli.DEFAULT_SIZE == DATA_SIZE_DEFAULT


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        (None, "localhost", 8025),
        (":25", "localhost", 25),
        ("example.test", "example.test", 8025),
        ("example.test:2525", "example.test", 2525),
        ("::0:25", "::0", 25),  # 1.4's split at the last colon
        ("[::1]:2525", "::1", 2525),
        ("[::1]", "::1", 8025),
        ("127.0.0.1:0", "127.0.0.1", 0),
        ("127.0.0.1:65535", "127.0.0.1", 65535),
    ],
)
def test_listen(listen: str | None, host: str, port: int) -> None:
    args = ["-l"] if listen is None else ["-l", listen]
    _parser, ns = cli.parseargs(args)
    assert (ns.host, ns.port) == (host, port)


def test_version(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "PROGRAM", "aiosmtpd")
    with pytest.raises(SystemExit) as exc_info:
        cli.parseargs(["-v"])
    assert exc_info.value.code == 0
    assert capsys.readouterr().out == f"aiosmtpd {__version__}\n"


def test_classargs_go_to_from_cli() -> None:
    parser, ns = cli.parseargs(["-c", "tests.test_cli.RecordingHandler", "a", "b c"])
    assert isinstance(ns.handler, RecordingHandler)
    assert ns.handler.args == ("a", "b c")
    assert ns.handler.parser is parser


def test_class_without_from_cli() -> None:
    _parser, ns = cli.parseargs(["-c", "tests.test_cli.PlainHandler"])
    assert isinstance(ns.handler, PlainHandler)


def test_mailbox_from_cli(tmp_path: Path) -> None:
    _parser, ns = cli.parseargs(["-c", "aiosmtpd.handlers.Mailbox", str(tmp_path / "md")])
    assert str(ns.handler.mail_dir) == str(tmp_path / "md")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["-c", "tests.test_cli.PlainHandler", "x"],
            "Handler class tests.test_cli takes no arguments",
        ),
        (["-c", "aiosmtpd.handlers.Sink", "x"], "Sink handler does not accept arguments"),
        (["-c", "aiosmtpd.handlers.Debugging", "nowhere"], "Debugging usage: [stdout|stderr]"),
        (["-c", "aiosmtpd.handlers.Mailbox"], "The directory for the maildir is required"),
        (["-c", "no_such_module_here.Handler"], "Cannot import module no_such_module_here"),
        (["-c", "aiosmtpd.handlers.NoSuchHandler"], "Module aiosmtpd.handlers has no class"),
        (["-c", "Bare"], "Invalid handler class path: Bare"),
        (["-l", "example.test:smtp"], "Invalid port number: smtp"),
        (["-l", "example.test:65536"], "Invalid port number: 65536"),
        (["-l", "example.test:-1"], "Invalid port number: -1"),
        (["-l", "[::1"], "Invalid address: [::1"),
        (["-l", "[::1]x"], "Invalid address: [::1]x"),
        (["-s", "-1"], "Invalid size: -1"),
        (["-s", "big"], "argument -s/--size: invalid int value"),
        (["--workers", "0"], "Invalid number of workers: 0"),
        (["--tlscert", "c.pem"], "--tlscert and --tlskey must be specified together"),
        (["--tlskey", "k.pem"], "--tlscert and --tlskey must be specified together"),
        (["--smtpscert", "c.pem"], "--smtpscert and --smtpskey must be specified together"),
        (["--smtpskey", "k.pem"], "--smtpscert and --smtpskey must be specified together"),
        (
            ["--tlscert", "/nonexistent/c.pem", "--tlskey", "k"],
            "Cert file /nonexistent/c.pem not found",
        ),
        (
            ["--smtpscert", "/nonexistent/c", "--smtpskey", "k"],
            "Cert file /nonexistent/c not found",
        ),
        (["--loop", "tokio"], "argument --loop: invalid choice"),
    ],
)
def test_usage_errors(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc_info:
        cli.parseargs(args)
    assert exc_info.value.code == 2
    assert message in capsys.readouterr().err


def test_key_file_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("not really")
    with pytest.raises(SystemExit):
        cli.parseargs(["--tlscert", str(cert), "--tlskey", str(tmp_path / "nokey")])
    assert f"Key file {tmp_path / 'nokey'} not found" in capsys.readouterr().err


def test_unloadable_certificate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("garbage")
    key.write_text("garbage")
    with pytest.raises(SystemExit) as exc_info:
        cli.parseargs(["--tlscert", str(cert), "--tlskey", str(key)])
    assert exc_info.value.code == 2
    assert "Cannot load" in capsys.readouterr().err


def test_uvloop_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # makes "import uvloop" fail
    with pytest.raises(SystemExit) as exc_info:
        cli.parseargs(["--loop", "uvloop"])
    assert exc_info.value.code == 2
    assert "pip install 'aiosmtpd[uvloop]'" in capsys.readouterr().err


def test_tls_contexts(certificate: tuple[Path, Path, ssl.SSLContext]) -> None:
    cert, key, _client = certificate
    _parser, ns = cli.parseargs(["--tlscert", str(cert), "--tlskey", str(key)])
    assert isinstance(ns.tls_context, ssl.SSLContext)
    assert ns.smtps_context is None
    _parser, ns = cli.parseargs(["--smtpscert", str(cert), "--smtpskey", str(key)])
    assert isinstance(ns.smtps_context, ssl.SSLContext)
    assert ns.tls_context is None


@pytest.mark.parametrize(
    ("debug", "level"),
    [(0, logging.NOTSET), (1, logging.INFO), (2, logging.DEBUG), (3, logging.DEBUG)],
)
def test_debug_levels(debug: int, level: int, mail_log_level: None) -> None:
    logging.getLogger("mail.log").setLevel(logging.NOTSET)
    cli._configure_logging(debug)
    assert logging.getLogger("mail.log").level == level


# --- serving in-process ----------------------------------------------------------------


async def _ehlo(address: Any) -> list[str]:
    client = await LineClient.connect(address)
    try:
        assert (await client.reply())[0].startswith("220 ")
        return await client.command("EHLO client.test")
    finally:
        await client.close()


@pytest.mark.asyncio
async def test_default_size_is_advertised_and_enforced() -> None:
    async with serving(["-c", "aiosmtpd.handlers.Sink"]) as address:
        assert "250-SIZE 33554432" in await _ehlo(address)
        client = await LineClient.connect(address)
        await client.reply()
        await client.command("EHLO client.test")
        assert (await client.command("MAIL FROM:<a@x.test> SIZE=33554432"))[0].startswith("250")
        await client.command("RSET")
        over = await client.command("MAIL FROM:<a@x.test> SIZE=33554433")
        assert over == ["552 Error: message size exceeds fixed maximum message size"]
        await client.close()


@pytest.mark.asyncio
@pytest.mark.parametrize(("size", "accepted"), [(999, True), (1000, True), (1001, False)])
async def test_size_option(size: int, accepted: bool) -> None:
    async with serving(["-c", "aiosmtpd.handlers.Sink", "-s", "1000"]) as address:
        client = await LineClient.connect(address)
        await client.reply()
        assert "250-SIZE 1000" in await client.command("EHLO client.test")
        reply = await client.command(f"MAIL FROM:<a@x.test> SIZE={size}")
        assert reply[0].startswith("250" if accepted else "552")
        await client.close()


@pytest.mark.asyncio
async def test_size_zero_means_no_limit() -> None:
    async with serving(["-c", "aiosmtpd.handlers.Sink", "-s", "0"]) as address:
        lines = await _ehlo(address)
        assert not any("SIZE" in line for line in lines)


@pytest.mark.asyncio
async def test_smtputf8_option() -> None:
    async with serving(["-c", "aiosmtpd.handlers.Sink"]) as address:
        assert not any("SMTPUTF8" in line for line in await _ehlo(address))
    async with serving(["-c", "aiosmtpd.handlers.Sink", "-u"]) as address:
        assert any("SMTPUTF8" in line for line in await _ehlo(address))


@pytest.mark.asyncio
async def test_hostname_computed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_getfqdn(name: str = "") -> str:
        calls.append(name)
        return "mx.cli.test"

    monkeypatch.setattr(socket, "getfqdn", fake_getfqdn)
    async with serving(["-c", "aiosmtpd.handlers.Sink"]) as address:
        for _ in range(3):
            lines = await _ehlo(address)
            assert lines[0] == "250-mx.cli.test"
    assert len(calls) == 1


@pytest.mark.asyncio
async def test_loop_debug_with_ddd(mail_log_level: None) -> None:
    loop = asyncio.get_running_loop()
    async with serving(["-c", "aiosmtpd.handlers.Sink", "-ddd"]):
        assert loop.get_debug()
    loop.set_debug(False)


def _starttls_dialogue(address: Any, client_context: ssl.SSLContext) -> list[int]:
    """MAIL before and after STARTTLS, with smtplib (run in a thread)."""
    with smtplib.SMTP(address[0], address[1], timeout=TIMEOUT) as client:
        features = client.ehlo("client.test")[1]
        assert b"STARTTLS" in features
        before = client.mail("a@x.test")[0]
        client.starttls(context=client_context)
        client.ehlo("client.test")
        after = client.mail("a@x.test")[0]
        return [before, after]


@pytest.mark.asyncio
async def test_starttls_required_by_default(certificate: tuple[Path, Path, ssl.SSLContext]) -> None:
    cert, key, client_context = certificate
    args = ["-c", "aiosmtpd.handlers.Sink", "--tlscert", str(cert), "--tlskey", str(key)]
    async with serving(args) as address:
        codes = await asyncio.to_thread(_starttls_dialogue, address, client_context)
    assert codes == [530, 250]


@pytest.mark.asyncio
async def test_no_requiretls(certificate: tuple[Path, Path, ssl.SSLContext]) -> None:
    cert, key, _client_context = certificate
    args = ["-c", "aiosmtpd.handlers.Sink", "--tlscert", str(cert), "--tlskey", str(key)]
    async with serving([*args, "--no-requiretls"]) as address:
        client = await LineClient.connect(address)
        await client.reply()
        assert "250-STARTTLS" in await client.command("EHLO client.test")
        assert (await client.command("MAIL FROM:<a@x.test>"))[0].startswith("250")
        await client.close()


@pytest.mark.asyncio
async def test_smtps(certificate: tuple[Path, Path, ssl.SSLContext]) -> None:
    cert, key, client_context = certificate
    args = ["-c", "aiosmtpd.handlers.Sink", "--smtpscert", str(cert), "--smtpskey", str(key)]
    async with serving(args) as address:
        client = await LineClient.connect(address, ssl_context=client_context)
        assert (await client.reply())[0].startswith("220 ")
        lines = await client.command("EHLO client.test")
        assert not any("STARTTLS" in line for line in lines)  # DECISIONS row 4
        await client.close()


@pytest.mark.asyncio
async def test_stop_closes_open_sessions() -> None:
    async with serving(["-c", "aiosmtpd.handlers.Sink"]) as address:
        client = await LineClient.connect(address)
        await client.reply()
    # serve() has returned: the idle session must have been ended, not left open.
    rest = await asyncio.wait_for(client.reader.read(), TIMEOUT)
    assert rest in {b"", b"421 4.3.2 Service shutting down\r\n"}
    await client.close()


@pytest.mark.asyncio
async def test_bind_failure_is_a_startup_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        _parser, ns = cli.parseargs(["-n", "-l", f"127.0.0.1:{port}"])
        with pytest.raises(cli.StartupError, match=f"cannot listen on 127.0.0.1:{port}"):
            await cli.serve(ns)


# --- main() in-process: real signals, setuid ----------------------------------------------


def _run_main_with_client(
    args: list[str], monkeypatch: pytest.MonkeyPatch, send: bool = True
) -> list[Any]:
    """Run main(args) here; a thread sends one message, then SIGTERMs this process."""
    bound: queue.Queue[Any] = queue.Queue()
    errors: list[BaseException] = []
    real_announce = cli._announce

    def announce(addresses: Sequence[Any]) -> None:
        real_announce(addresses)
        bound.put(addresses[0])

    monkeypatch.setattr(cli, "_announce", announce)

    def client() -> None:
        try:
            address = bound.get(timeout=TIMEOUT)
        except queue.Empty:
            return
        if address is None:  # main() ended without listening
            return
        # From here main() listens with its SIGTERM handler installed: signalling is safe.
        try:
            if send:
                with smtplib.SMTP(address[0], address[1], timeout=TIMEOUT) as smtp:
                    smtp.sendmail("a@x.test", ["b@y.test"], "Subject: in-process\r\n\r\nHi\r\n")
        except BaseException as exc:
            errors.append(exc)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=client)
    thread.start()
    try:
        cli.main(args)
    finally:
        bound.put(None)
        thread.join()
    return errors


def test_main_serves_until_sigterm(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = signal.getsignal(signal.SIGTERM)
    errors = _run_main_with_client(["-n", "-l", "127.0.0.1:0"], monkeypatch)
    assert errors == []
    out, err = capsys.readouterr()
    assert "Subject: in-process" in out
    assert "------------ END MESSAGE ------------" in out
    assert re.search(r"listening on 127\.0\.0\.1:\d+", err)
    # main() gave the signal dispositions back.
    assert signal.getsignal(signal.SIGTERM) == before


def test_setuid_after_bind(monkeypatch: pytest.MonkeyPatch) -> None:
    uids: list[int] = []
    monkeypatch.setattr(os, "setuid", uids.append)
    errors = _run_main_with_client(
        ["-l", "127.0.0.1:0", "-c", "aiosmtpd.handlers.Sink"], monkeypatch
    )
    assert errors == []
    assert cli.pwd is not None
    assert uids == [cli.pwd.getpwnam("nobody").pw_uid]


def test_setuid_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(uid: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "setuid", refuse)
    with pytest.raises(SystemExit) as exc_info:
        cli.main(["-l", "127.0.0.1:0", "-c", "aiosmtpd.handlers.Sink"])
    assert exc_info.value.code == 1
    assert 'Cannot setuid "nobody"; try running with -n option.' in capsys.readouterr().err


def test_no_pwd_module(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "pwd", None)
    with pytest.raises(SystemExit) as exc_info:
        cli.main(["-l", "127.0.0.1:0", "-c", "aiosmtpd.handlers.Sink"])
    assert exc_info.value.code == 1
    assert 'Cannot import module "pwd"; try running with -n option.' in capsys.readouterr().err


def test_main_bind_failure_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit) as exc_info:
            cli.main(["-n", "-l", f"127.0.0.1:{port}"])
    assert exc_info.value.code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


# --- python -m aiosmtpd as a subprocess ------------------------------------------------------


def _python(*args: str) -> list[str]:
    return [sys.executable, "-X", "dev", *args]


def _send(port: int, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT) as client:
        client.sendmail("a@x.test", ["b@y.test"], f"Subject: {subject}\r\n\r\nBody\r\n")


def _assert_clean_exit(server: RunningServer, code: int) -> None:
    assert code == 0, server.all_stderr
    assert "Traceback" not in server.all_stderr
    assert "ResourceWarning" not in server.all_stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_subprocess_debugging_server(signum: int) -> None:
    with running(_python("-m", "aiosmtpd", "-n", "-l", "127.0.0.1:0")) as server:
        port = server.wait_listening()
        _send(port, "over the wire")
        server.wait_for("END MESSAGE")
        code = server.stop(signum)
    assert "Subject: over the wire" in server.all_stdout
    assert "X-Peer: " in server.all_stdout
    _assert_clean_exit(server, code)


def test_subprocess_version() -> None:
    result = subprocess.run(
        _python("-m", "aiosmtpd", "--version"),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout == f"aiosmtpd {__version__}\n"


def test_subprocess_workers() -> None:
    argv = _python("-m", "aiosmtpd", "-n", "-l", "127.0.0.1:0", "--workers", "2")
    with running(argv) as server:
        port = server.wait_listening()
        for number in range(4):
            _send(port, f"message {number}")
        for _number in range(4):
            server.wait_for("END MESSAGE")
        code = server.stop()
    for number in range(4):
        assert f"Subject: message {number}" in server.all_stdout
    _assert_clean_exit(server, code)


def test_subprocess_uvloop() -> None:
    require_module("uvloop")
    argv = _python("-m", "aiosmtpd", "-n", "-l", "127.0.0.1:0", "--loop", "uvloop")
    with running(argv) as server:
        port = server.wait_listening()
        _send(port, "on uvloop")
        server.wait_for("END MESSAGE")
        code = server.stop()
    assert "Subject: on uvloop" in server.all_stdout
    _assert_clean_exit(server, code)
