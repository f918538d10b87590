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


#: ``AUTH``, its first word, and everything after that word up to the line end.
_AUTH_LINE_RE = re.compile(rb"(?i)(?<!\S)(AUTH\s+)(\S+)(?:(\s+)(\S(?:[^\r\n]*\S)?))?")
#: RFC 4422 §3.1: a mechanism name is 1 to 20 of A-Z, 0-9, "-" and "_" (any case here).
_MECHANISM_RE = re.compile(rb"[A-Za-z0-9_-]{1,20}")


def _mask_auth_line(match: re.Match[bytes]) -> bytes:
    verb, first, gap, rest = match.groups()
    if not _MECHANISM_RE.fullmatch(first):
        # Not a mechanism: a client that left the mechanism out sent its credentials here.
        return verb + b"********"
    if rest is None:
        return match.group(0)
    # All of the rest: ``AUTH LOGIN <user> <password>`` (501) must not log the password.
    return verb + first + gap + b"********"


def sanitize(text: bytes | bytearray) -> bytes:
    """Mask the credentials of an ``AUTH <mech> <initial-response> ...`` line."""
    return _AUTH_LINE_RE.sub(_mask_auth_line, bytes(text), count=1)


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
