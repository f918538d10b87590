"""SMTP AUTH (RFC 4954): the command, its vocabulary and the built-in mechanisms.

Owns: ``AuthResult`` (what a mechanism or an ``authenticator`` returns), ``LoginPassword``
(credentials handed to an ``authenticator``), the ``@auth_mechanism`` decorator, the
mechanism-table builder, the AUTH command flow (gates, dispatch to a ``handle_AUTH`` hook or
an ``auth_<MECH>`` method, the failed-attempt limit, ``challenge_auth``) and the PLAIN
(RFC 4616) / LOGIN exchanges.

Invariants: credentials never reach a log or a ``repr``; a mechanism talks to the client
only through ``server.challenge_auth`` and ``server.push``; a failed authentication always
ends with a reply (DECISIONS row 1 -- the ``SMTP`` adapter enforces the last part).

Must not know: transports, the core's framing, the session task.
"""

from __future__ import annotations

import base64
import logging
import re
import warnings
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import attr

from . import _compat as compat
from ._core import replies as R
from ._core.syntax import decode_sasl_line
from ._engine import SessionEngine
from ._session import MISSING, _Missing, syntax

if TYPE_CHECKING:
    from .smtp import SMTP

__all__ = [
    "VALID_AUTHMECH",
    "AuthMechanismType",
    "AuthResult",
    "BuiltinMechanisms",
    "LoginPassword",
    "auth_mechanism",
    "mechanism_table",
]

#: A mechanism name (RFC 4422 §3.1 allows A-Z, 0-9, "-" and "_").
VALID_AUTHMECH = r"[A-Z0-9_-]+\Z"
_VALID_AUTHMECH_RE = re.compile(VALID_AUTHMECH)
log = logging.getLogger("mail.log")

AuthMechanismType = Callable[["SMTP", list[str]], Awaitable[Any]]
_F = TypeVar("_F", bound=Callable[..., Any])


@attr.s(auto_attribs=True, kw_only=True)
class AuthResult:
    """The outcome of an authentication attempt.

    ``handled=True`` means the mechanism has already sent its final reply itself;
    otherwise the server replies ``message`` or its default (235 / 535).
    """

    success: bool
    handled: bool = True
    message: str | None = None
    auth_data: Any = attr.ib(default=None, repr=lambda _: "...")


class LoginPassword(NamedTuple):
    """Credentials from PLAIN or LOGIN; ``repr`` never shows the password."""

    login: bytes
    password: bytes

    def __str__(self) -> str:
        return f"LoginPassword(login='{self.login.decode(errors='replace')}', password=...)"

    def __repr__(self) -> str:
        return str(self)


def auth_mechanism(actual_name: str) -> Callable[[_F], _F]:
    """Name an ``auth_*`` method's mechanism explicitly (``@auth_mechanism("CRAM-MD5")``)."""
    name = actual_name.upper()
    if not _VALID_AUTHMECH_RE.match(name):
        raise ValueError(f"Invalid AUTH mechanism name: {actual_name}")

    def decorator(func: _F) -> _F:
        func.__auth_mechanism_name__ = name  # type: ignore[attr-defined]
        return func

    return decorator


def mechanism_name(attribute: str, member: object) -> str:
    """The mechanism an ``auth_*`` member implements (decorator name wins)."""
    explicit = getattr(member, "__auth_mechanism_name__", None)
    if isinstance(explicit, str):
        return explicit
    return attribute.replace("auth_", "", 1).replace("__", "-")


def _auth_members(owner: type) -> dict[str, str]:
    """``{mechanism name: attribute name}`` for the callable ``auth_*`` members of a type."""
    found: dict[str, str] = {}
    for attribute in dir(owner):
        if not attribute.startswith("auth_"):
            continue
        member = getattr(owner, attribute, None)
        if callable(member):
            found[mechanism_name(attribute, member)] = attribute
    return found


_TABLE_CACHE: dict[tuple[type, type], dict[str, tuple[bool, str]]] = {}


def mechanism_table(server_type: type, handler: object) -> dict[str, tuple[bool, str]]:
    """``{name: (on_handler, attribute)}`` for every mechanism of a server and handler.

    Computed once per (server class, handler type); a handler's own instance attributes
    named ``auth_*`` are added on top (1.4 saw them via ``dir(handler)``). Handler
    mechanisms override the server's built-ins of the same name.
    """
    key = (server_type, type(handler))
    table = _TABLE_CACHE.get(key)
    if table is None:
        table = {name: (False, attribute) for name, attribute in _auth_members(server_type).items()}
        for name, attribute in _auth_members(type(handler)).items():
            table[name] = (True, attribute)
        _TABLE_CACHE[key] = table
        # Once per (server class, handler type), not per connection.
        log.info(
            "Available AUTH mechanisms: %s",
            " ".join(
                f"{n}" if on_handler else f"{n}(builtin)"
                for n, (on_handler, _) in sorted(table.items())
            ),
        )
    instance_attrs = getattr(handler, "__dict__", None)
    if instance_attrs and any(a.startswith("auth_") for a in instance_attrs):
        table = dict(table)
        for attribute, member in instance_attrs.items():
            if attribute.startswith("auth_") and callable(member):
                table[mechanism_name(attribute, member)] = (True, attribute)
    return table


def exclude_mechanisms(
    table: dict[str, tuple[bool, str]], excluded: Iterable[str] | None
) -> dict[str, tuple[bool, str]]:
    if not excluded:
        return table
    drop = {name.upper() for name in excluded}
    return {name: where for name, where in table.items() if name not in drop}


def split_plain(decoded: bytes) -> LoginPassword | None:
    """RFC 4616 ``[authzid] NUL authcid NUL passwd`` -> credentials; ``None`` if malformed."""
    parts = decoded.split(b"\x00")
    if len(parts) != 3:
        return None
    return LoginPassword(parts[1], parts[2])


class BuiltinMechanisms(SessionEngine):
    """The AUTH command (``smtp_AUTH``, ``challenge_auth``) and the built-in ``auth_PLAIN``
    and ``auth_LOGIN``, mixed into ``SMTP``.

    Each is called as ``method(server, args)`` (1.4's ``auth_PLAIN(self, _, args)``), so
    a handler's ``auth_PLAIN(self, server, args)`` can replace it transparently.
    """

    AuthLoginUsernameChallenge: str
    AuthLoginPasswordChallenge: str
    _authenticator: Any
    _auth_callback: Callable[[str, bytes, bytes], bool]
    # Set by SMTP.__init__ (declared here for the mixin's benefit).
    event_handler: Any
    _auth_require_tls: bool
    _auth_failure_limit: int | None
    _auth_methods: dict[str, tuple[bool, str]]

    @syntax("AUTH <mechanism>")
    async def smtp_AUTH(self, arg: str | None) -> None:
        if not await self.check_helo_needed("EHLO"):
            return
        if not self.session.extended_smtp:
            self._say(R.AUTH_NOT_RECOGNIZED_HELO)
            return
        if self._auth_require_tls and not self._tls_active:
            self._say(R.AUTH_ENCRYPTION_REQUIRED)
            return
        if self.session.authenticated:
            self._say(R.AUTH_ALREADY)
            return
        if self.envelope.mail_from:
            self._say(R.AUTH_IN_TRANSACTION)
            return
        if not arg:
            self._say(R.AUTH_NOT_ENOUGH)
            return
        args = arg.split()
        if len(args) > 2:
            self._say(R.AUTH_TOO_MANY)
            return
        if await self._run_auth(args) is False:
            self._count_auth_failure()

    def _count_auth_failure(self) -> None:
        """Close the connection (421) once ``auth_failure_limit`` attempts have failed."""
        self._auth_failures += 1
        limit = self._auth_failure_limit
        if limit is not None and self._auth_failures >= limit:
            log.info("%r closed after %d failed AUTH attempts", self.session.peer, limit)
            self._say(R.AUTH_TOO_MANY_FAILURES)
            self._close_after_reply()

    async def _run_auth(self, args: list[str]) -> bool | None:
        """One AUTH exchange through a hook or a mechanism; every failure gets a reply.

        Returns whether the client authenticated (for ``handle_AUTH``: got a 2xx);
        ``None`` if no exchange took place (unknown mechanism: not a failed attempt).
        """
        before = self._final_replies
        if "AUTH" in self._handle_hooks:
            status = await self._call_handler_hook("AUTH", args)
            if status is not None:
                await self.push(status)
            elif self._final_replies == before:
                self._say(R.AUTH_FAILED)
            text = status.decode("utf-8", "replace") if isinstance(status, bytes) else status
            return isinstance(text, str) and text.startswith("2")
        where = self._auth_methods.get(args[0])
        if where is None:
            self._say(R.AUTH_UNRECOGNIZED)
            return None
        on_handler, attribute = where
        method = getattr(self.event_handler if on_handler else self, attribute)
        result = await method(self, args)
        if isinstance(result, AuthResult):
            if result.success:
                # A mechanism that already sent its final reply is not answered twice.
                replied = result.handled and self._final_replies != before
                self._auth_succeeded(result.auth_data, None if replied else result.message, replied)
            elif not result.handled or self._final_replies == before:
                # DECISIONS row 1: a failure always gets a reply.
                await self.push(result.message or self._render(R.AUTH_FAILED))
        elif result is None or result is MISSING or result is False:
            if self._final_replies == before:
                self._say(R.AUTH_FAILED)
        else:
            self._auth_succeeded(None, None, self._final_replies != before)
            self.session._login_data = result
        return bool(self.session.authenticated)

    def _auth_succeeded(self, auth_data: Any, message: str | None, replied: bool) -> None:
        self.session.authenticated = True
        self.session.auth_data = auth_data
        # No credentials are coming any more: unknown lines are echoed again.
        self._after_auth = False
        # Set without the deprecation log: only *reading* login_data is the user's doing.
        self.session._login_data = getattr(auth_data, "login", None)
        if replied:
            return
        if message:
            self._send_line(message.encode("utf-8"))
        else:
            self._say(R.AUTH_SUCCESS)

    async def challenge_auth(
        self,
        challenge: str | bytes,
        encode_to_b64: bool = True,
        log_client_response: bool = False,
    ) -> bytes | _Missing:
        """Send ``334 <challenge>`` and return the client's decoded answer.

        Returns ``MISSING`` after replying ``501`` if the client aborts (``*``) or sends
        invalid base64.
        """
        raw = challenge.encode("utf-8") if isinstance(challenge, str) else challenge
        if encode_to_b64:
            raw = base64.b64encode(raw)
        await self.push(b"334 " + raw)
        line = await self._next_auth_line()
        if line is MISSING:
            return MISSING
        if log_client_response:
            warnings.warn("AUTH interaction logging is enabled!", UserWarning, stacklevel=2)
            warnings.warn("Sensitive information might be leaked!", UserWarning, stacklevel=2)
            log.info("%r responds: %r", self.session.peer, line)
        if line.strip() == b"*":
            self._say(R.AUTH_ABORTED)
            return MISSING
        decoded = decode_sasl_line(line)
        if decoded is None:
            self._say(R.AUTH_BAD_BASE64)
            return MISSING
        return decoded

    async def _auth_interact(self, msg: str | bytes) -> bytes | _Missing:
        compat.warn_deprecated(compat.AUTH_INTERACT)
        return await self.challenge_auth(msg, encode_to_b64=False)

    async def auth_PLAIN(self, _: Any, args: list[str]) -> AuthResult:
        if len(args) == 1:
            response = await self.challenge_auth("")
            if response is MISSING:
                return AuthResult(success=False)
        else:
            decoded = decode_sasl_line(args[1])
            if decoded is None:
                self._say(R.AUTH_BAD_BASE64)
                return AuthResult(success=False)
            response = decoded
        credentials = split_plain(response)
        if credentials is None:
            self._say(R.AUTH_CANT_SPLIT)
            return AuthResult(success=False)
        return self._authenticate("PLAIN", credentials)

    async def auth_LOGIN(self, _: Any, args: list[str]) -> AuthResult:
        if len(args) == 1:
            login = await self.challenge_auth(self.AuthLoginUsernameChallenge)
            if login is MISSING:
                return AuthResult(success=False)
        else:
            decoded = decode_sasl_line(args[1])
            if decoded is None:
                self._say(R.AUTH_BAD_BASE64)
                return AuthResult(success=False)
            login = decoded
        password = await self.challenge_auth(self.AuthLoginPasswordChallenge)
        if password is MISSING:
            return AuthResult(success=False)
        return self._authenticate("LOGIN", LoginPassword(login, password))

    def _authenticate(self, mechanism: str, credentials: LoginPassword) -> AuthResult:
        """Ask the ``authenticator`` (or the legacy ``auth_callback``) about credentials."""
        if self._authenticator is not None:
            result = self._authenticator(self, self.session, self.envelope, mechanism, credentials)
            if isinstance(result, AuthResult):
                if result.success:
                    return result
                # The authenticator sent nothing: the server owes the client a reply.
                return AuthResult(success=False, handled=False, message=result.message)
            if result:
                return AuthResult(success=True, auth_data=credentials)
            return AuthResult(success=False, handled=False)
        if self._auth_callback(mechanism, credentials.login, credentials.password):
            return AuthResult(success=True, auth_data=credentials)
        return AuthResult(success=False, handled=False)
