"""The server's replies as test constants (1.4's ``aiosmtpd.testing.statuscodes``).

Owns: ``StatusCode`` and ``SMTP_STATUS_CODES``, a machine-readable mirror of the replies
in :mod:`aiosmtpd._core.replies` under their aiosmtpd 1.4 names (``S250_OK``,
``S503_HELO_FIRST`` ...), plus a few replies the server never sends itself but handlers
commonly do (``S450_DEST_GREYLIST``, ``S550_NO_RELAY`` ...), and the HELP command lists.
Invariants: every constant that names a server reply is *derived* from ``replies``, so the
two cannot drift; ``{placeholders}`` become ``%b`` so ``S500_CMD_UNRECOG(b"FOO")`` works as
in 1.4. Texts follow the server, including the deliberate changes of DECISIONS.md (e.g. the
AUTH LOGIN prompts ``Username:`` / ``Password:``).
Must not know: sockets or the protocol engine.
"""

from __future__ import annotations

import re
import socket
from base64 import b64encode
from collections.abc import Iterable
from typing import NamedTuple

from aiosmtpd._core import replies
from aiosmtpd._core.replies import Reply

__all__ = [
    "SMTP_STATUS_CODES",
    "SUPPORTED_COMMANDS_LMTP",
    "SUPPORTED_COMMANDS_NOTLS",
    "SUPPORTED_COMMANDS_TLS",
    "StatusCode",
    "_suppcmd",
]

_PLACEHOLDER = re.compile(r"\{[a-z_]+\}")


class StatusCode(NamedTuple):
    """One reply: ``code`` and the bytes after it (enhanced status code included)."""

    code: int
    mesg: bytes

    def __call__(self, *args: bytes) -> StatusCode:
        """Fill the ``%b`` placeholders: ``S500_CMD_UNRECOG(b"FOO")``."""
        return StatusCode(self.code, self.mesg % args)

    def to_bytes(self, crlf: bool = False) -> bytes:
        """``b"250 OK"`` (with ``b"\\r\\n"`` if ``crlf``)."""
        return str(self.code).encode("ascii") + b" " + self.mesg + (b"\r\n" if crlf else b"")

    def to_str(self, crlf: bool = False) -> str:
        """``"250 OK"`` (with ``"\\r\\n"`` if ``crlf``)."""
        return self.to_bytes(crlf).decode("utf-8", errors="surrogateescape")


def _from_reply(reply: Reply, code: int | None = None) -> StatusCode:
    """The reply exactly as the server renders it by default, ``{x}`` turned into ``%b``."""
    rendered = reply.render()
    text = rendered.split(" ", 1)[1] if " " in rendered else ""
    text = _PLACEHOLDER.sub("%b", text)
    return StatusCode(reply.code if code is None else code, text.encode("utf-8"))


def _prompt(text: str) -> StatusCode:
    return StatusCode(334, b64encode(text.encode("ascii")))


def _suppcmd(commands: Iterable[bytes]) -> bytes:
    """The text of the HELP reply that lists ``commands`` (sorted)."""
    return b"Supported commands: " + b" ".join(sorted(commands))


_COMMON_COMMANDS = [
    b"AUTH", b"DATA", b"HELP", b"MAIL", b"NOOP", b"QUIT", b"RCPT", b"RSET", b"VRFY",
]  # fmt: skip
SUPPORTED_COMMANDS_NOTLS = sorted([*_COMMON_COMMANDS, b"EHLO", b"HELO"])
SUPPORTED_COMMANDS_TLS = sorted([*SUPPORTED_COMMANDS_NOTLS, b"STARTTLS"])
SUPPORTED_COMMANDS_LMTP = sorted([*_COMMON_COMMANDS, b"LHLO"])


class SMTP_STATUS_CODES:
    """Namespace of ``StatusCode`` constants named ``S<code>_<WHAT>``."""

    S220_READY_TLS = _from_reply(replies.READY_FOR_TLS)
    S221_BYE = _from_reply(replies.BYE)
    S235_AUTH_SUCCESS = _from_reply(replies.AUTH_SUCCESS)
    S250_FQDN = StatusCode(250, socket.getfqdn().encode("utf-8"))
    S250_OK = _from_reply(replies.OK)
    S250_SUPPCMD_LMTP = StatusCode(250, _suppcmd(SUPPORTED_COMMANDS_LMTP))
    S250_SUPPCMD_NOTLS = StatusCode(250, _suppcmd(SUPPORTED_COMMANDS_NOTLS))
    S250_SUPPCMD_TLS = StatusCode(250, _suppcmd(SUPPORTED_COMMANDS_TLS))
    # HELP <verb> answers 250 with the text the 501 syntax errors use.
    S250_SYNTAX_AUTH = StatusCode(250, b"Syntax: AUTH <mechanism>")
    S250_SYNTAX_DATA = _from_reply(replies.DATA_SYNTAX, 250)
    S250_SYNTAX_EHLO = _from_reply(replies.EHLO_SYNTAX, 250)
    S250_SYNTAX_HELO = _from_reply(replies.HELO_SYNTAX, 250)
    S250_SYNTAX_MAIL = _from_reply(replies.MAIL_SYNTAX, 250)
    S250_SYNTAX_MAIL_E = _from_reply(replies.MAIL_SYNTAX_ESMTP, 250)
    S250_SYNTAX_NOOP = _from_reply(replies.NOOP_SYNTAX, 250)
    S250_SYNTAX_QUIT = _from_reply(replies.QUIT_SYNTAX, 250)
    S250_SYNTAX_RCPT = _from_reply(replies.RCPT_SYNTAX, 250)
    S250_SYNTAX_RCPT_E = _from_reply(replies.RCPT_SYNTAX_ESMTP, 250)
    S250_SYNTAX_RSET = _from_reply(replies.RSET_SYNTAX, 250)
    S250_SYNTAX_STARTTLS = _from_reply(replies.STARTTLS_SYNTAX, 250)
    S250_SYNTAX_VRFY = _from_reply(replies.VRFY_SYNTAX, 250)
    S252_CANNOT_VRFY = _from_reply(replies.VRFY_CANNOT)
    S334_AUTH_EMPTYPROMPT = StatusCode(334, b"")
    # DECISIONS row 5: the LOGIN prompts every other server sends, not 1.4's "User Name\0".
    S334_AUTH_USERNAME = _prompt("Username:")
    S334_AUTH_PASSWORD = _prompt("Password:")
    S354_DATA_ENDWITH = _from_reply(replies.START_DATA)
    S421_TOO_MANY = _from_reply(replies.CALL_LIMIT)
    S421_TIMEOUT = _from_reply(replies.TIMEOUT)
    S421_SHUTTING_DOWN = _from_reply(replies.SHUTTING_DOWN)
    S421_TOO_MANY_CONN = _from_reply(replies.TOO_MANY_CONNECTIONS)
    S450_DEST_GREYLIST = StatusCode(450, b"4.2.0 Recipient address rejected: Greylisted")
    S450_SERVICE_UNAVAIL = StatusCode(450, b"4.3.2 Service currently unavailable")
    S451_LOCAL_ERROR = _from_reply(replies.LOCAL_ERROR)
    S452_TOO_MANY_CONN = StatusCode(452, b"4.7.0 Too many connections")
    S454_TLS_NA = _from_reply(replies.TLS_NOT_AVAILABLE)
    S500_AUTH_UNRECOG = _from_reply(replies.AUTH_NOT_RECOGNIZED_HELO)
    S500_BAD_SYNTAX = _from_reply(replies.BAD_SYNTAX)
    S500_CMD_TOO_LONG = _from_reply(replies.COMMAND_TOO_LONG)
    S500_CMD_UNRECOG = _from_reply(replies.UNRECOGNIZED)
    S500_DATALINE_TOO_LONG = _from_reply(replies.DATA_LINE_TOO_LONG)
    S500_STRICT_ASCII = _from_reply(replies.STRICT_ASCII)
    S501_AUTH_ABORTED = _from_reply(replies.AUTH_ABORTED)
    S501_AUTH_CANTSPLIT = _from_reply(replies.AUTH_CANT_SPLIT)
    S501_AUTH_NOTB64 = _from_reply(replies.AUTH_BAD_BASE64)
    S501_MAIL_BODY = _from_reply(replies.BAD_BODY)
    S501_SMTPUTF8_DISABLED = _from_reply(replies.SMTPUTF8_DISABLED)
    S501_SMTPUTF8_NOARG = _from_reply(replies.SMTPUTF8_NO_ARGS)
    S501_SUPPCMD_NOTLS = StatusCode(501, _suppcmd(SUPPORTED_COMMANDS_NOTLS))
    S501_SYNTAX_DATA = _from_reply(replies.DATA_SYNTAX)
    S501_SYNTAX_EHLO = _from_reply(replies.EHLO_SYNTAX)
    S501_SYNTAX_HELO = _from_reply(replies.HELO_SYNTAX)
    S501_SYNTAX_MAIL = _from_reply(replies.MAIL_SYNTAX)
    S501_SYNTAX_MAIL_E = _from_reply(replies.MAIL_SYNTAX_ESMTP)
    S501_SYNTAX_QUIT = _from_reply(replies.QUIT_SYNTAX)
    S501_SYNTAX_RCPT = _from_reply(replies.RCPT_SYNTAX)
    S501_SYNTAX_RCPT_E = _from_reply(replies.RCPT_SYNTAX_ESMTP)
    S501_SYNTAX_RSET = _from_reply(replies.RSET_SYNTAX)
    S501_SYNTAX_STARTTLS = _from_reply(replies.STARTTLS_SYNTAX)
    S501_SYNTAX_VRFY = _from_reply(replies.VRFY_SYNTAX)
    S501_TOO_FEW = _from_reply(replies.AUTH_NOT_ENOUGH)
    S501_TOO_MANY = _from_reply(replies.AUTH_TOO_MANY)
    S502_EXPN_NOTIMPL = _from_reply(replies.EXPN_NOT_IMPLEMENTED)
    S502_TOO_MANY_UNRECOG = _from_reply(replies.TOO_MANY_UNRECOGNIZED)
    S502_VRFY_COULDNT = _from_reply(replies.VRFY_COULD_NOT)
    S503_ALREADY_AUTH = _from_reply(replies.AUTH_ALREADY)
    S503_ALREADY_TLS = _from_reply(replies.ALREADY_IN_TLS)
    S503_EHLO_FIRST = _from_reply(replies.NEED_EHLO)
    S503_HELO_FIRST = _from_reply(replies.NEED_HELO)
    S503_MAIL_NEEDED = _from_reply(replies.NEED_MAIL)
    S503_MAIL_NESTED = _from_reply(replies.NESTED_MAIL)
    S503_RCPT_NEEDED = _from_reply(replies.NEED_RCPT)
    S504_AUTH_UNRECOG = _from_reply(replies.AUTH_UNRECOGNIZED)
    S530_AUTH_REQUIRED = _from_reply(replies.AUTH_REQUIRED)
    S530_STARTTLS_FIRST = _from_reply(replies.NEED_STARTTLS)
    S535_AUTH_INVALID = _from_reply(replies.AUTH_FAILED)
    S538_AUTH_ENCRYPTREQ = _from_reply(replies.AUTH_ENCRYPTION_REQUIRED)
    S550_DEST_UNKNOWN = StatusCode(550, b"5.1.1 Recipient address rejected: User unknown")
    S550_NO_RELAY = StatusCode(550, b"5.7.1 Unable to relay")
    S552_DATA_TOO_MUCH = _from_reply(replies.TOO_MUCH_DATA)
    S552_EXCEED_SIZE = _from_reply(replies.SIZE_EXCEEDS_LIMIT)
    S553_MALFORMED = _from_reply(replies.MALFORMED_ADDRESS)
    S554_LACK_SECURITY = _from_reply(replies.LACK_OF_SECURITY)
    S555_MAIL_PARAMS_UNRECOG = _from_reply(replies.MAIL_PARAMS_UNRECOGNIZED)
    S555_RCPT_PARAMS_UNRECOG = _from_reply(replies.RCPT_PARAMS_UNRECOGNIZED)
