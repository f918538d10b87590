"""Start, probe and kill the SMTP servers under test; build the aiosmtpd 1.4.6 reference venv.

Owns: the command line of every server the benchmark knows (this project on asyncio and on
uvloop, aiosmtpd 1.4.6 on both, Postfix's smtp-sink, and a bare asyncio sink), picking a free
loopback port, waiting for the 220 greeting, and killing the server's whole process group.

Invariants: every server listens on a loopback address only; every server runs in its own
session (``start_new_session``), so its process group id is its pid and ``killpg`` reaches
every worker it may fork; ``stop()`` always reaps (SIGTERM, then SIGKILL after a bound).
Must not know: what load is applied or how figures are computed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
REFERENCE_VERSION = "1.4.6"
REFERENCE_VENV = BENCH_DIR / ".venv-aiosmtpd146"
SINK_HANDLER = "aiosmtpd.handlers.Sink"

# Runs ``python -m aiosmtpd ARGS`` with uvloop's event loop policy installed first, for a
# server whose CLI has no loop option (aiosmtpd 1.4.6).
UVLOOP_LAUNCHER = (
    "import asyncio, runpy, sys, uvloop; "
    "asyncio.set_event_loop_policy(uvloop.EventLoopPolicy()); "
    "sys.argv[0] = 'aiosmtpd'; "
    "runpy.run_module('aiosmtpd', run_name='__main__', alter_sys=True)"
)


class ServerError(RuntimeError):
    """A server could not be prepared or started; the message says why."""


def require_loopback(host: str) -> None:
    if not ipaddress.ip_address(host).is_loopback:
        raise ServerError(f"refusing non-loopback address {host!r}")


def free_port(host: str) -> int:
    """A port the kernel just handed out for ``host`` (bind to port 0, read, release)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class ServerSpec:
    """How to start one server: ``{hostport}`` in ``argv`` is replaced at start."""

    name: str
    argv: tuple[str, ...]
    description: str
    env: dict[str, str] = field(default_factory=dict)

    def command(self, host: str, port: int) -> list[str]:
        where = host_port(host, port)
        return [part.replace("{hostport}", where) for part in self.argv]


class RunningServer:
    """A started server: ``with RunningServer(spec, host, log) as server: server.port``."""

    def __init__(
        self, spec: ServerSpec, host: str, log_path: Path, start_timeout: float = 20.0
    ) -> None:
        require_loopback(host)
        self.spec = spec
        self.host = host
        self.port = free_port(host)
        self.log_path = log_path
        self.start_timeout = start_timeout
        self.startup_seconds = 0.0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise ServerError(f"{self.spec.name} is not running")
        return self._process.pid

    def __enter__(self) -> RunningServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        argv = self.spec.command(self.host, self.port)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.spec.env}
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            log.write(f"# {time.ctime()} {argv}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
            )
        try:
            self._wait_for_greeting(started + self.start_timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started

    def _wait_for_greeting(self, deadline: float) -> None:
        last_error = "no attempt"
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise ServerError(
                    f"{self.spec.name} exited with status {self._process.returncode} "
                    f"before greeting; see {self.log_path}"
                )
            try:
                if greets(self.host, self.port):
                    return
                last_error = "no 220 greeting"
            except OSError as error:
                last_error = repr(error)
            time.sleep(0.05)  # polling a foreign process: there is nothing to await
        raise ServerError(
            f"{self.spec.name} did not greet within {self.start_timeout:.0f}s ({last_error}); "
            f"see {self.log_path}"
        )

    def stop(self) -> None:
        process = self._process
        if process is None:
            return
        self._process = None
        for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                process.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        # Workers that outlived the leader still carry its process group id.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def greets(host: str, port: int, timeout: float = 2.0) -> bool:
    """True when a new connection is greeted with 220 (then QUIT politely)."""
    with socket.create_connection((host, port), timeout=timeout) as connection:
        received = b""
        while b"\n" not in received or received.split(b"\n")[-2][3:4] == b"-":
            chunk = connection.recv(4096)
            if not chunk:
                return False
            received += chunk
        if not received.startswith(b"220"):
            return False
        with contextlib.suppress(OSError):
            connection.sendall(b"QUIT\r\n")
            connection.recv(4096)
        return True


def project_python() -> Path:
    """An interpreter that imports this checkout's ``aiosmtpd``: this one, else ``.venv``'s."""
    spec = importlib.util.find_spec("aiosmtpd")
    origin = Path(spec.origin).resolve() if spec is not None and spec.origin else None
    if origin is not None and origin.is_relative_to(REPO_DIR / "src"):
        return Path(sys.executable)
    return REPO_DIR / ".venv" / "bin" / "python"


def cli_has_loop_option(python: Path) -> bool:
    """Whether ``python -m aiosmtpd --help`` documents ``--loop``."""
    try:
        completed = subprocess.run(
            [str(python), "-m", "aiosmtpd", "--help"],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return completed.returncode == 0 and b"--loop" in completed.stdout


def imports_uvloop(python: Path) -> bool:
    return _succeeds([str(python), "-c", "import uvloop"])


def reference_python(venv: Path = REFERENCE_VENV) -> Path:
    return venv / "bin" / "python"


def ensure_reference_venv(venv: Path = REFERENCE_VENV, log: Path | None = None) -> Path:
    """Create ``venv`` with aiosmtpd 1.4.6 and uvloop from PyPI unless it already has them."""
    python = reference_python(venv)
    probe = f"import aiosmtpd, uvloop; assert aiosmtpd.__version__ == {REFERENCE_VERSION!r}"
    # -E: a PYTHONPATH pointing at this checkout's src/ (how the project server is run
    # from a worktree) must not shadow the reference venv's aiosmtpd 1.4.6.
    if python.exists() and _succeeds([str(python), "-E", "-c", probe]):
        return python
    print(f"creating {venv} with aiosmtpd=={REFERENCE_VERSION} and uvloop (once)", flush=True)
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            f"aiosmtpd=={REFERENCE_VERSION}",
            "uvloop",
        ],
    ]
    for step in steps:
        completed = subprocess.run(step, capture_output=True, timeout=600, check=False)
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_bytes(completed.stdout + completed.stderr)
        if completed.returncode != 0:
            raise ServerError(
                f"{' '.join(step)} failed: {completed.stderr.decode(errors='replace')[-500:]}"
            )
    if not _succeeds([str(python), "-E", "-c", probe]):
        raise ServerError(f"{venv} lacks aiosmtpd {REFERENCE_VERSION} or uvloop after install")
    return python


def _succeeds(argv: list[str]) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=60, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def aiosmtpd_spec(
    name: str,
    python: Path,
    *,
    uvloop: str | None,
    size_limit: int,
    description: str,
    extra: tuple[str, ...] = (),
    isolated: bool = False,
) -> ServerSpec:
    """``python -m aiosmtpd`` with the Sink handler; ``uvloop`` is "cli", "policy" or None.

    ``isolated`` runs the interpreter with ``-E`` (PYTHON* variables ignored), for the
    reference venv: a PYTHONPATH meant for this checkout must not replace its aiosmtpd.

    ``size_limit`` is passed as ``-s`` because the two CLIs differ in their default (1.4.6:
    unlimited; aiosmtpd 2: 32 MiB, as 1.4's help text promised), and the big messages must fit.
    """
    server_args = ("-n", "-l", "{hostport}", "-s", str(size_limit), "-c", SINK_HANDLER, *extra)
    interpreter = (str(python), "-E") if isolated else (str(python),)
    if uvloop == "policy":
        return ServerSpec(name, (*interpreter, "-c", UVLOOP_LAUNCHER, *server_args), description)
    loop_args = ("--loop", "uvloop") if uvloop == "cli" else ()
    return ServerSpec(name, (*interpreter, "-m", "aiosmtpd", *server_args, *loop_args), description)


def smtp_sink_spec(max_connections: int) -> ServerSpec | None:
    """Postfix's smtp-sink (C, single process), or None when it is not installed."""
    program = shutil.which("smtp-sink") or shutil.which("smtp-sink", path="/usr/sbin:/usr/bin")
    if program is None:
        return None
    drop = ("-u", "nobody") if os.geteuid() == 0 else ()
    argv = (program, *drop, "-m", str(max_connections), "{hostport}", "1024")
    return ServerSpec("smtp-sink", argv, "Postfix smtp-sink (C), the floor")


def bare_sink_spec(python: Path | None = None, *, uvloop: bool = False) -> ServerSpec:
    """The bare asyncio sink in this directory: plain Python with no library around it."""
    interpreter = str(python or sys.executable)
    argv: tuple[str, ...] = (interpreter, str(BENCH_DIR / "bare_sink.py"), "{hostport}")
    if uvloop:
        argv = (*argv, "--uvloop")
        return ServerSpec("bare-uvloop", argv, "the bare sink on uvloop, no library")
    return ServerSpec("bare-asyncio", argv, "a bare asyncio sink, no library")
