"""Every program in examples/ works, imported and run as a script; README matches CI.

Each example is imported from its file and driven in-process with ``port=0``, then run
as ``python examples/X.py --port 0`` and sent mail with smtplib (the migration example
also with swaks and curl). Subprocesses are always stopped and reaped by ``running()``.
"""

from __future__ import annotations

import importlib.util
import io
import mailbox
import re
import signal
import smtplib
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from aiosmtpd.controller import Controller
from tests.support import require_program
from tests.test_cli import REPO, TIMEOUT, RunningServer, running

EXAMPLES = REPO / "examples"
LISTENING = r"Listening on [^:\s]+:(\d+)"
MESSAGE = (
    "From: me@example.org\r\nTo: you@example.com\r\nSubject: {subject}\r\n\r\nHello there.\r\n"
)


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered first: dataclasses resolve string annotations through sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def start_example(name: str, *args: str) -> RunningServer:
    return RunningServer([sys.executable, "-X", "dev", str(EXAMPLES / f"{name}.py"), *args])


def listening_port(server: RunningServer) -> int:
    return int(server.wait_for(LISTENING).group(1))


def stop_cleanly(server: RunningServer, signum: int = signal.SIGTERM) -> None:
    code = server.stop(signum)
    assert code == 0, server.all_stderr
    assert "Traceback" not in server.all_stderr
    assert "ResourceWarning" not in server.all_stderr


def send(port: int, subject: str, rcpts: list[str] | None = None) -> dict[str, Any]:
    with smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT) as client:
        return client.sendmail(
            "me@example.org", rcpts or ["you@example.com"], MESSAGE.format(subject=subject)
        )


def started(handler: Any) -> Controller:
    controller = Controller(handler, hostname="127.0.0.1", port=0)
    controller.start()
    return controller


# --- migrate_from_smtpd.py ---------------------------------------------------------------


def test_migration_handler_in_process() -> None:
    example = load_example("migrate_from_smtpd")
    out = io.StringIO()
    controller = started(example.PrintingHandler(out))
    try:
        assert send(controller.port, "imported") == {}
    finally:
        controller.stop()
    text = out.getvalue()
    assert "sent by me@example.org to you@example.com" in text
    assert "Subject: imported" in text
    assert "Hello there." in text


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_migration_script_with_smtplib(signum: int) -> None:
    server = start_example("migrate_from_smtpd", "--port", "0")
    try:
        port = listening_port(server)
        send(port, "from smtplib")
        server.wait_for("end of message")
    finally:
        stop_cleanly(server, signum)
    assert "Subject: from smtplib" in server.all_stdout
    assert "sent by me@example.org to you@example.com" in server.all_stdout


def test_migration_script_with_swaks() -> None:
    swaks = require_program("swaks")
    with running(
        [sys.executable, str(EXAMPLES / "migrate_from_smtpd.py"), "--port", "0"]
    ) as server:
        port = listening_port(server)
        result = subprocess.run(
            [swaks, "--server", f"127.0.0.1:{port}", "--from", "me@example.org",
             "--to", "you@example.com", "--header", "Subject: from swaks", "--body", "hi"],
            capture_output=True, text=True, timeout=TIMEOUT, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        server.wait_for("end of message")
        stop_cleanly(server)
    assert "Subject: from swaks" in server.all_stdout


def test_migration_script_with_curl(tmp_path: Path) -> None:
    curl = require_program("curl")
    message = tmp_path / "message.txt"
    message.write_bytes(MESSAGE.format(subject="from curl").encode())
    with running(
        [sys.executable, str(EXAMPLES / "migrate_from_smtpd.py"), "--port", "0"]
    ) as server:
        port = listening_port(server)
        result = subprocess.run(
            [curl, "--silent", "--show-error", f"smtp://127.0.0.1:{port}/client.test",
             "--mail-from", "me@example.org", "--mail-rcpt", "you@example.com",
             "--upload-file", str(message)],
            capture_output=True, text=True, timeout=TIMEOUT, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        server.wait_for("end of message")
        stop_cleanly(server)
    assert "Subject: from curl" in server.all_stdout


# --- custom_handler.py -------------------------------------------------------------------


def test_custom_handler_in_process() -> None:
    example = load_example("custom_handler")
    handler = example.LocalDomainsHandler(["example.com", "Example.NET"])
    controller = started(handler)
    try:
        with smtplib.SMTP("127.0.0.1", controller.port, timeout=TIMEOUT) as client:
            client.ehlo("client.test")
            assert client.mail("me@example.org")[0] == 250
            refused = client.rcpt("them@elsewhere.test")
            assert refused == (550, b"5.7.1 Relaying denied: not a local domain")
            assert client.rcpt("you@example.com")[0] == 250
            assert client.rcpt("also@EXAMPLE.net")[0] == 250
            code, text = client.data(MESSAGE.format(subject="custom").encode())
            assert (code, text) == (250, b"2.0.0 Stored as message #1")
    finally:
        controller.stop()
    [stored] = handler.messages
    assert stored.mail_from == "me@example.org"
    assert stored.rcpt_tos == ("you@example.com", "also@EXAMPLE.net")
    assert b"Subject: custom" in stored.content


def test_custom_handler_all_refused() -> None:
    example = load_example("custom_handler")
    handler = example.LocalDomainsHandler(["example.com"])
    controller = started(handler)
    try:
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            send(controller.port, "nobody here", ["x@elsewhere.test"])
    finally:
        controller.stop()
    assert handler.messages == []


def test_custom_handler_script() -> None:
    server = start_example("custom_handler", "--port", "0", "--domain", "example.com")
    try:
        port = listening_port(server)
        refused = send(port, "scripted", ["you@example.com", "them@elsewhere.test"])
        assert set(refused) == {"them@elsewhere.test"}
        line = server.wait_for(r"Stored message #1 from (\S+) for (.+) \(\d+ bytes\)")
        assert line.groups() == ("me@example.org", "you@example.com")
    finally:
        stop_cleanly(server)


# --- mailbox_server.py -------------------------------------------------------------------


def _subjects(maildir: Path) -> list[str]:
    return sorted(str(message["Subject"]) for message in mailbox.Maildir(maildir).values())


def test_mailbox_server_in_process(tmp_path: Path) -> None:
    example = load_example("mailbox_server")
    controller = example.make_controller(tmp_path / "Maildir", port=0)
    controller.start()
    try:
        send(controller.port, "first")
        send(controller.port, "second")
    finally:
        controller.stop()
    assert _subjects(tmp_path / "Maildir") == ["first", "second"]
    [message, *_] = mailbox.Maildir(tmp_path / "Maildir").values()
    assert message["X-MailFrom"] == "me@example.org"
    assert message["X-RcptTo"] == "you@example.com"


def test_mailbox_server_script(tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    server = start_example("mailbox_server", "--port", "0", "--maildir", str(maildir))
    try:
        port = listening_port(server)
        send(port, "to the maildir")
    finally:
        stop_cleanly(server)
    # sendmail returned after the 250, which is sent once the message is stored.
    assert _subjects(maildir) == ["to the maildir"]


# --- README and CI agree -----------------------------------------------------------------


def _readme_commands() -> list[str]:
    readme = (REPO / "README.rst").read_text()
    return re.findall(r"^    (python3 -m venv .*)$", readme, flags=re.MULTILINE)


def test_readme_opens_with_the_two_commands() -> None:
    serve_command, test_command = _readme_commands()[:2]
    assert serve_command.endswith("-m aiosmtpd -n -l 127.0.0.1:8025")
    assert test_command.endswith("-m pytest")


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    test_command = _readme_commands()[1]
    ci_lines = (REPO / ".ci" / "run").read_text().splitlines()
    assert test_command in ci_lines
