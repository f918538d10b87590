"""The small aiosmtpd 1.4 value types every layer above the core shares.

Owns: ``MISSING`` (a hook is absent), ``Session`` (per-connection facts handed to hooks),
``Envelope`` (one mail transaction), the ``@syntax`` decorator for ``smtp_<VERB>`` help
texts, and ``sanitize`` / ``sanitized_log`` (credential masking for command logging).
Invariants: behaviour-free but for 1.4's ``login_data`` deprecation log; re-exported by
``aiosmtpd.smtp`` under their 1.4 names.
Must not know: the core, transports, the session engine.
"""

from __future__ import annotations

import asyncio
import enum
import re
from collections.abc import Callable
from typing import Any, TypeVar

from . import _compat as compat

_F = TypeVar("_F", bound=Callable[..., Any])


class _Missing(enum.Enum):
    MISSING = object()

    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing.MISSING


class _ConnectionGone(Exception):
    """The peer went away while a command was waiting for more input."""


#: Everything after the mechanism up to the line end: a client that sends ``AUTH LOGIN
#: <user> <password>`` (501 Too many values) must not have its password logged either.
_SANITIZE_RE = re.compile(rb"(?i)(\s*AUTH\s+\S+\s+)(\S(?:[^\r\n]*\S)?)")


def sanitize(text: bytes | bytearray) -> bytes:
    """Mask the credentials of an ``AUTH <mech> <initial-response> ...`` line."""
    return _SANITIZE_RE.sub(rb"\1********", bytes(text), count=1)


def sanitized_log(func: Callable[..., Any], msg: Any, *args: Any, **kwargs: Any) -> None:
    func(msg, *(sanitize(a) if isinstance(a, bytes | bytearray) else a for a in args), **kwargs)


def syntax(text: str, extended: str | None = None, when: str | None = None) -> Callable[[_F], _F]:
    """Declare a verb's HELP text; ``when`` names an attribute that must be truthy."""

    def decorator(func: _F) -> _F:
        func.__smtp_syntax__ = text  # type: ignore[attr-defined]
        func.__smtp_syntax_extended__ = extended  # type: ignore[attr-defined]
        func.__smtp_syntax_when__ = when  # type: ignore[attr-defined]
        return func

    return decorator


class Session:
    """Per-connection state visible to hooks (reset by STARTTLS)."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.peer: Any = None
        self.ssl: dict[str, Any] | None = None
        self.host_name: str | None = None
        self.extended_smtp = False
        self.loop = loop
        self.proxy_data: Any = None
        self.auth_data: Any = None
        self.authenticated: bool | None = None
        self._login_data: Any = None

    @property
    def login_data(self) -> Any:
        compat.log_login_data()
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        compat.log_login_data()
        self._login_data = value


class Envelope:
    """Per-transaction state visible to hooks (renewed by HELO/EHLO/RSET/after DATA)."""

    def __init__(self) -> None:
        self.mail_from: str | None = None
        self.mail_options: list[str] = []
        self.smtp_utf8 = False
        self.content: bytes | str | None = None
        self.original_content: bytes | None = None
        self.rcpt_tos: list[str] = []
        self.rcpt_options: list[str] = []
