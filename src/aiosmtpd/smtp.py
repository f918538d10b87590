"""The asyncio adapter: ``SMTP``, one protocol instance per connection, over the sans-I/O core.

Owns: the aiosmtpd 1.4 public surface of ``aiosmtpd.smtp`` (``SMTP`` with every 1.4
keyword argument and its validation, the module constants and re-exported names) and the
meaning of each command: the ``smtp_<VERB>`` methods (validate -> ``handle_<VERB>`` hook
-> reply), EHLO keywords, DATA delivery.
The connection plumbing (driving the session, timers, back-pressure) is in ``_engine``
and ``_driver``, reply buffering in ``_output``; the AUTH command, ``challenge_auth`` and
PLAIN/LOGIN in ``auth``; STARTTLS in ``_tls``; deprecation shims in ``_compat``.

Invariants: arguments are parsed only by ``aiosmtpd._core.syntax``; every reply the
library sends is a named ``Reply``; a failed AUTH and a failing hook always get a reply.
The commands await ``push``, ``check_helo_needed``, ``check_auth_needed`` and
``_call_handler_hook`` (absent hooks included) whenever a class overrides any of them;
otherwise they call the synchronous cores (``_plain_steps``): same replies, same waits.
EHLO order: 1.4's lines in 1.4's order, with ``250-PIPELINING`` right after
``250-SMTPUTF8`` (i.e. after the last line 1.4 always had, before STARTTLS/AUTH), then
the opt-in extensions (off by default; docs/extensions.rst): ENHANCEDSTATUSCODES, DSN,
CHUNKING, BINARYMIME, REQUIRETLS.  Their MAIL/RCPT parameters are checked in
``_extensions``, BDAT lives in ``_chunking``.

Must not know: how the server is bound or run (controller), what handlers do.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import socket
import ssl
import warnings
from collections.abc import Callable, Iterable
from typing import Any

from . import __version__, _hooks
from . import _compat as compat
from . import _extensions as ext
from ._chunking import ChunkingMixin, verb_table_without_bdat
from ._core import replies as R
from ._core import syntax as S
from ._core.connection import ServerConnection
from ._core.events import EndOfData
from ._core_config import core_config_for
from ._engine import ALLOWED_BEFORE_STARTTLS, BOGUS_LIMIT, EMPTY_BARR, SessionEngine
from ._session import (
    MISSING,
    Envelope,
    Session,
    _ConnectionGone,
    sanitize,
    sanitized_log,
    syntax,
)
from ._tls import TLS_HANDSHAKE_TIMEOUT, TLSSetupException, upgrade
from ._transaction import TransactionMixin
from .auth import (
    VALID_AUTHMECH,
    AuthMechanismType,
    AuthResult,
    BuiltinMechanisms,
    LoginPassword,
    auth_mechanism,
    exclude_mechanisms,
    mechanism_table,
)
from .serving import ConnectionLimiter

__all__ = [
    "ALLOWED_BEFORE_STARTTLS",
    "BOGUS_LIMIT",
    "CALL_LIMIT_DEFAULT",
    "DATA_SIZE_DEFAULT",
    "EMPTY_BARR",
    "MISSING",
    "SMTP",
    "VALID_AUTHMECH",
    "AuthCallbackType",
    "AuthMechanismType",
    "AuthResult",
    "AuthenticatorType",
    "Envelope",
    "LoginPassword",
    "Session",
    "TLSSetupException",
    "__version__",
    "auth_mechanism",
    "login_always_fail",
    "make_loop",
    "sanitize",
    "sanitized_log",
    "syntax",
]

log = logging.getLogger("mail.log")

DATA_SIZE_DEFAULT = 2**25
#: Failed AUTH attempts a connection may make; the last one is answered 421 and closed.
AUTH_FAILURE_LIMIT_DEFAULT = 5
CALL_LIMIT_DEFAULT = 20
__ident__ = f"Python SMTP {__version__}"

AuthCallbackType = Callable[[str, bytes, bytes], bool]
AuthenticatorType = Callable[["SMTP", Session, Envelope, str, Any], AuthResult]


def login_always_fail(mechanism: str, login: bytes, password: bytes) -> bool:
    return False


def make_loop() -> asyncio.AbstractEventLoop:
    from . import _get_or_new_eventloop

    return _get_or_new_eventloop()


@functools.cache
def _default_hostname() -> str:
    # socket.getfqdn() can block on DNS for seconds: once per process, never per connection.
    return socket.getfqdn()


#: The coroutines every command awaits on its way (public: subclasses may override them,
#: and 1.4 programs do). A class that keeps all of the library's own has its commands
#: call their synchronous cores instead: no coroutine frame per step (``_plain_steps``).
_STEP_COROUTINES = ("push", "check_helo_needed", "check_auth_needed", "_call_handler_hook")
_LIBRARY_STEPS = {name: getattr(SessionEngine, name) for name in _STEP_COROUTINES}
_PLAIN_STEPS: dict[type, bool] = {}


def _plain_steps(cls: type) -> bool:
    """Whether ``cls`` keeps the library's ``push``, ``check_helo_needed``,
    ``check_auth_needed`` and ``_call_handler_hook`` (decided once per class)."""
    plain = _PLAIN_STEPS.get(cls)
    if plain is None:
        plain = all(getattr(cls, name) is step for name, step in _LIBRARY_STEPS.items())
        _PLAIN_STEPS[cls] = plain
    return plain


class SMTP(BuiltinMechanisms, ChunkingMixin, TransactionMixin, SessionEngine):
    """An SMTP server protocol (RFC 5321), aiosmtpd 1.4 compatible."""

    command_size_limit = 512
    line_length_limit = 1001
    local_part_limit = 0
    # DECISIONS row 5: what every other server sends (1.4 sent "User Name\0"/"Password\0").
    AuthLoginUsernameChallenge = "Username:"
    AuthLoginPasswordChallenge = "Password:"
    #: Advertise PIPELINING (RFC 2920) in EHLO (DECISIONS "Additions").
    advertise_pipelining = True
    #: The transaction whose MAIL said ``BODY=BINARYMIME`` (it must use BDAT, RFC 3030 §3).
    _binarymime_envelope: Envelope | None = None
    #: Commands the engine may serve inline, outside the session task, when neither the
    #: handler nor a subclass adds code to them (``_driver._inline_verbs``).
    #: DATA is served inline up to delivery and enters the task before ``handle_DATA``.
    _INLINE_SAFE_VERBS = frozenset({"DATA", "EHLO", "HELO", "MAIL", "NOOP", "QUIT", "RCPT", "RSET"})

    def __init__(
        self,
        handler: Any,
        *,
        data_size_limit: int | None = DATA_SIZE_DEFAULT,
        enable_SMTPUTF8: bool = False,
        decode_data: bool = False,
        hostname: str | None = None,
        ident: str | None = None,
        tls_context: Any = None,
        require_starttls: bool = False,
        timeout: float = 300,
        auth_required: bool = False,
        auth_require_tls: bool = True,
        auth_exclude_mechanism: Iterable[str] | None = None,
        auth_callback: AuthCallbackType | None = None,
        command_call_limit: int | dict[str, int] | None = None,
        authenticator: Any = None,
        proxy_protocol_timeout: float | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        connection_limiter: ConnectionLimiter | None = None,
        proxy_tls_context: ssl.SSLContext | None = None,
        tls_handshake_timeout: float = TLS_HANDSHAKE_TIMEOUT,
        auth_failure_limit: int | None = AUTH_FAILURE_LIMIT_DEFAULT,
        enhanced_status_codes: bool = False,
        enable_DSN: bool = False,
        enable_REQUIRETLS: bool = False,
        enable_CHUNKING: bool = False,
    ) -> None:
        self.__ident__ = ident or __ident__
        self._loop = loop
        self.event_handler = handler
        assert data_size_limit is None or isinstance(data_size_limit, int)
        self.data_size_limit = data_size_limit
        self.enable_SMTPUTF8 = enable_SMTPUTF8
        self._decode_data = decode_data
        self.hostname = hostname if hostname else _default_hostname()
        self.tls_context = tls_context
        if tls_context:
            if tls_context.verify_mode not in {ssl.CERT_NONE, ssl.CERT_OPTIONAL}:
                log.warning(
                    "tls_context.verify_mode not in {CERT_NONE, CERT_OPTIONAL}; "
                    "this might cause client connection problems"
                )
            elif tls_context.check_hostname:
                log.warning(
                    "tls_context.check_hostname == True; "
                    "this might cause client connection problems"
                )
        self.require_starttls = tls_context and require_starttls
        if not tls_handshake_timeout > 0:
            raise ValueError("tls_handshake_timeout must be > 0")
        self._tls_handshake_timeout = tls_handshake_timeout
        if auth_failure_limit is not None and auth_failure_limit < 1:
            raise ValueError("auth_failure_limit must be >= 1 (or None for no limit)")
        self._auth_failure_limit = auth_failure_limit
        self._timeout_duration = timeout
        self._auth_required = auth_required
        self._auth_require_tls = auth_require_tls
        self._auth_exclude_mechanism = auth_exclude_mechanism
        self._auth_callback = auth_callback or login_always_fail
        self._authenticator = authenticator
        if auth_required and not auth_require_tls:
            warnings.warn(compat.AUTH_WITHOUT_TLS, UserWarning, stacklevel=2)
            log.warning("auth_required == True but auth_require_tls == False")
        self._call_limits, self._call_limit_default = _parse_call_limit(command_call_limit)
        self._enforce_call_limit = command_call_limit is not None
        if proxy_protocol_timeout is not None:
            if proxy_protocol_timeout <= 0:
                raise ValueError("proxy_protocol_timeout must be > 0")
            if proxy_protocol_timeout < 3.0:
                log.warning("proxy_protocol_timeout < 3.0")
        self._proxy_timeout = proxy_protocol_timeout
        self._connection_limiter = connection_limiter
        if proxy_tls_context is not None and proxy_protocol_timeout is None:
            raise ValueError("proxy_tls_context needs proxy_protocol_timeout")
        #: Implicit TLS that starts after the PROXY header (a listener without ssl=).
        self._tls_after_proxy = proxy_tls_context
        # The opt-in extensions (DECISIONS "Additions"; docs/extensions.rst).  Their
        # defaults are class attributes; only a switched-on one takes a slot in the
        # instance dict, which keeps an idle connection as small as before.
        for name, enabled in (
            ("enhanced_status_codes", enhanced_status_codes),
            ("enable_DSN", enable_DSN),
            ("enable_REQUIRETLS", enable_REQUIRETLS),
            ("enable_CHUNKING", enable_CHUNKING),
        ):
            if enabled:
                setattr(self, name, True)

        self._handle_hooks = _hooks.bind_hooks(handler)
        self._ehlo_hook_arity = 5
        ehlo = self._handle_hooks.get("EHLO")
        if ehlo is not None:
            self._ehlo_hook_arity = _hooks.ehlo_arity(handler, ehlo)
            if self._ehlo_hook_arity == 4:
                compat.warn_deprecated(compat.EHLO_4_ARG)
            elif self._ehlo_hook_arity != 5:
                raise RuntimeError("Unsupported EHLO Hook")
        self._smtp_methods = _hooks.verb_table(type(self))
        if not enable_CHUNKING and self._smtp_methods.get("BDAT") is ChunkingMixin.smtp_BDAT:
            # BDAT stays an unknown command, as in 1.4, unless CHUNKING is enabled.
            self._smtp_methods = verb_table_without_bdat(type(self))
        self._auth_methods = exclude_mechanisms(
            mechanism_table(type(self), handler), auth_exclude_mechanism
        )

        self._init_connection_state()

    # --- 1.4 compatible properties ------------------------------------------------------
    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:
                self._loop = make_loop()
        return self._loop

    @loop.setter
    def loop(self, value: asyncio.AbstractEventLoop) -> None:
        self._loop = value

    @property
    def command_size_limits(self) -> dict[str, int]:
        """Per-verb line limits of this connection (read-only view, DECISIONS row 10)."""
        limits = dict.fromkeys(self._smtp_methods, self.command_size_limit)
        if self.session is not None and self.session.extended_smtp:
            limits["MAIL"] += self._mail_esmtp_extra()
            if "RCPT" in limits:
                limits["RCPT"] += self._rcpt_esmtp_extra()
        return limits

    @property
    def max_command_size_limit(self) -> int:
        return max(self.command_size_limits.values(), default=self.command_size_limit)

    def _new_core(self) -> ServerConnection:
        return ServerConnection(core_config_for(self, _LIBRARY_ESMTP_EXTRAS))

    def _mail_esmtp_extra(self) -> int:
        return (
            (26 if self.data_size_limit else 0)
            + (10 if self.enable_SMTPUTF8 else 0)
            + (ext.DSN_MAIL_EXTRA if self.enable_DSN else 0)
            + (ext.REQUIRETLS_MAIL_EXTRA if self.enable_REQUIRETLS else 0)
        )

    def _rcpt_esmtp_extra(self) -> int:
        return ext.DSN_RCPT_EXTRA if self.enable_DSN else 0

    # --- commands ----------------------------------------------------------------------------
    @syntax("HELO hostname")
    async def smtp_HELO(self, hostname: str | None) -> None:
        if not hostname:
            self._say(R.HELO_SYNTAX)
            return
        self._set_rset_state()
        self.session.extended_smtp = False
        plain = _plain_steps(type(self))
        status: Any
        if plain and "HELO" not in self._handle_hooks:
            status = MISSING
        else:
            status = await self._call_handler_hook("HELO", hostname)
        if status is MISSING:
            self.session.host_name = hostname
            status = self._render(R.HELO_OK, hostname=self.hostname)
        if not plain:
            await self.push(status)
        elif self._emit(status):
            await self._writes.wait()

    @syntax("EHLO hostname")
    async def smtp_EHLO(self, hostname: str | None) -> None:
        await self._ehlo(hostname, R.EHLO_SYNTAX)

    async def _ehlo(self, hostname: str | None, syntax_reply: R.Reply) -> None:
        if not hostname:
            self._say(syntax_reply)
            return
        self._set_rset_state()
        self.session.extended_smtp = True
        lines = self._ehlo_lines()
        if hasattr(self, "ehlo_hook"):
            compat.warn_deprecated(compat.EHLO_HOOK)
            for line in lines:
                await self.push(line)
            lines = []
            await self.ehlo_hook()
        hook_present = "EHLO" in self._handle_hooks
        if hook_present and self._ehlo_hook_arity == 4:
            for line in lines:
                await self.push(line)
            status = await self._call_handler_hook("EHLO", hostname)
            await self.push(status)
            return
        lines.append("250 HELP")
        if hook_present:
            lines = await self._call_handler_hook("EHLO", hostname, lines)
        else:
            self.session.host_name = hostname
        if not _plain_steps(type(self)):
            for line in lines:
                await self.push(line)
            return
        for line in lines:
            if self._emit(line):
                await self._writes.wait()

    def _ehlo_lines(self) -> list[str]:
        """The EHLO keyword lines; PIPELINING follows 1.4's last fixed line (SMTPUTF8)."""
        lines = [f"250-{self.hostname}"]
        if self.data_size_limit:
            lines.append(f"250-SIZE {self.data_size_limit}")
        if not self._decode_data:
            lines.append("250-8BITMIME")
        if self.enable_SMTPUTF8:
            lines.append("250-SMTPUTF8")
        if self.advertise_pipelining:
            lines.append("250-PIPELINING")
        lines.extend(self._extension_ehlo_lines())
        if self.tls_context and not self._tls_active:
            lines.append("250-STARTTLS")
        if not self._auth_require_tls or self._tls_active:
            lines.append("250-AUTH " + " ".join(sorted(self._auth_methods)))
        return lines

    @syntax("NOOP [ignored]")
    async def smtp_NOOP(self, arg: str | None) -> None:
        if _plain_steps(type(self)) and "NOOP" not in self._handle_hooks:
            if self._emit(R.OK.line(self.enhanced_status_codes)):
                await self._writes.wait()
            return
        status = await self._call_handler_hook("NOOP", arg)
        await self.push(self._render(R.OK) if status is MISSING else status)

    @syntax("QUIT")
    async def smtp_QUIT(self, arg: str | None) -> None:
        if arg:
            self._say(R.QUIT_SYNTAX)
            return
        if _plain_steps(type(self)) and "QUIT" not in self._handle_hooks:
            if self._emit(R.BYE.line(self.enhanced_status_codes)):
                await self._writes.wait()
            self._close_after_reply()
            return
        status = await self._call_handler_hook("QUIT")
        await self.push(self._render(R.BYE) if status is MISSING else status)
        self._close_after_reply()

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: str | None) -> None:
        if arg:
            self._say(R.STARTTLS_SYNTAX)
            return
        if not self.tls_context:
            self._say(R.TLS_NOT_AVAILABLE)
            return
        if self._tls_active:
            self._say(R.ALREADY_IN_TLS)
            return
        self._say(R.READY_FOR_TLS)
        self._flush()
        await self._start_tls()

    async def _start_tls(self) -> None:
        old = self._active_transport
        try:
            new = await upgrade(old, self, self.tls_context, self._tls_handshake_timeout)
        except TLSSetupException as error:
            log.info("%r STARTTLS failed: %s", self.session.peer, error)
            raise _ConnectionGone from error
        self._original_transport = old
        self.transport = new
        self._reader._transport = new
        self._writer._transport = new
        self._tls_protocol = new
        self._finish_tls_upgrade()

    @syntax("HELP [command]")
    async def smtp_HELP(self, arg: str | None) -> None:
        if not await self.check_auth_needed("HELP"):
            return
        if arg:
            method = self._smtp_methods.get(arg.upper())
            if method is not None and self._helps(method):
                text = str(getattr(method, "__smtp_syntax__", ""))
                extended = getattr(method, "__smtp_syntax_extended__", None)
                if self.session.extended_smtp and extended:
                    text += extended
                self._say(R.HELP_SYNTAX, syntax=text)
                return
        verbs = " ".join(sorted(v for v, m in self._smtp_methods.items() if self._helps(m)))
        self._say(R.HELP_UNSUPPORTED if arg else R.HELP_SUPPORTED, commands=verbs)

    def _helps(self, method: Any) -> bool:
        if getattr(method, "__smtp_syntax__", None) is None:
            return False
        when = getattr(method, "__smtp_syntax_when__", None)
        return not when or bool(getattr(self, when, None))

    @syntax("VRFY <address>")
    async def smtp_VRFY(self, arg: str | None) -> None:
        if not await self.check_auth_needed("VRFY"):
            return
        if not arg:
            self._say(R.VRFY_SYNTAX)
            return
        parsed = S.parse_path(arg)
        if isinstance(parsed, S.PathError) or parsed[1]:
            self._say(R.VRFY_COULD_NOT, arg=arg)
            return
        status = await self._call_handler_hook("VRFY", parsed[0])
        await self.push(self._render(R.VRFY_CANNOT) if status is MISSING else status)

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:
        plain = _plain_steps(type(self))
        if plain:
            if not self._helo_given() or not self._auth_satisfied("MAIL"):
                return
        elif not await self.check_helo_needed() or not await self.check_auth_needed("MAIL"):
            return
        syntax_error = R.MAIL_SYNTAX_ESMTP if self.session.extended_smtp else R.MAIL_SYNTAX
        parsed = self._parse_path_arg(arg, "FROM:", syntax_error)
        if parsed is None:
            return
        address, params = parsed
        if self.envelope.mail_from:
            self._say(R.NESTED_MAIL)
            return
        if params.options:
            checked = self._mail_params(params, syntax_error)
            if checked is None:
                return
            options, smtputf8, binarymime = checked
        else:  # no parameters (the common case): nothing to check
            options, smtputf8, binarymime = params.options, False, False
        self.envelope.smtp_utf8 = smtputf8
        # Whether the MAIL hook or the library accepts it, this transaction must use BDAT.
        self._binarymime_envelope = self.envelope if binarymime else None
        status: Any
        if plain and "MAIL" not in self._handle_hooks:
            status = MISSING
        else:
            status = await self._call_handler_hook("MAIL", address, options)
        if status is MISSING:
            self.envelope.mail_from = address
            self.envelope.mail_options.extend(options)
            status = R.OK.line(self.enhanced_status_codes)
        if not plain:
            await self.push(status)
        elif self._emit(status):
            await self._writes.wait()

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self, arg: str | None) -> None:
        plain = _plain_steps(type(self))
        if plain:
            if not self._helo_given() or not self._auth_satisfied("RCPT"):
                return
        elif not await self.check_helo_needed() or not await self.check_auth_needed("RCPT"):
            return
        if not self.envelope.mail_from:
            self._say(R.NEED_MAIL)
            return
        syntax_error = R.RCPT_SYNTAX_ESMTP if self.session.extended_smtp else R.RCPT_SYNTAX
        parsed = self._parse_path_arg(arg, "TO:", syntax_error)
        if parsed is None:
            return
        address, params = parsed
        options = params.options
        if options:
            values = dict(params.values)
            taken = ext.take_rcpt_params(values, options, dsn=self.enable_DSN)
            if isinstance(taken, R.Reply):
                self._say(taken)
                return
            if values:
                self._say(R.RCPT_PARAMS_UNRECOGNIZED)
                return
            options = taken
        status: Any
        if plain and "RCPT" not in self._handle_hooks:
            status = MISSING
        else:
            status = await self._call_handler_hook("RCPT", address, options)
        if status is MISSING:
            self.envelope.rcpt_tos.append(address)
            self.envelope.rcpt_options.extend(options)
            status = R.OK.line(self.enhanced_status_codes)
        if not plain:
            await self.push(status)
        elif self._emit(status):
            await self._writes.wait()

    @syntax("RSET")
    async def smtp_RSET(self, arg: str | None) -> None:
        if arg:
            self._say(R.RSET_SYNTAX)
            return
        self._set_rset_state()
        if hasattr(self, "rset_hook"):
            compat.warn_deprecated(compat.RSET_HOOK)
            await self.rset_hook()
        elif _plain_steps(type(self)) and "RSET" not in self._handle_hooks:
            if self._emit(R.OK.line(self.enhanced_status_codes)):
                await self._writes.wait()
            return
        status = await self._call_handler_hook("RSET")
        await self.push(self._render(R.OK) if status is MISSING else status)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str | None) -> None:
        if _plain_steps(type(self)):
            if not self._helo_given() or not self._auth_satisfied("DATA"):
                return
        elif not await self.check_helo_needed() or not await self.check_auth_needed("DATA"):
            return
        if not self.envelope.rcpt_tos:
            self._say(R.NEED_RCPT)
            return
        if arg:
            self._say(R.DATA_SYNTAX)
            return
        if self._binarymime_envelope is self.envelope:
            self._say(R.BDAT_BINARYMIME_NEEDS_BDAT)
            return
        if self._current_transfer() is not None:
            self._say(R.BDAT_DATA_AFTER_BDAT)
            return
        self._say(R.START_DATA)
        await self._receive_and_deliver()

    async def smtp_EXPN(self, arg: str | None) -> None:
        self._say(R.EXPN_NOT_IMPLEMENTED)

    async def _receive_and_deliver(self) -> None:
        received = await self._read_message()
        envelope = self.envelope
        if isinstance(received, EndOfData):
            assert received.error is not None
            self._set_rset_state()
            await self._push_data_replies(self._render(received.error), envelope)
            return
        await self._deliver_content(received[0])

    async def _deliver_content(self, content: bytes) -> None:
        """Deliver a complete message (after DATA or the LAST BDAT) and reply."""
        envelope = self.envelope
        if self._decode_data:
            try:
                envelope.content = (
                    content.decode("utf-8", "surrogateescape")
                    if self.enable_SMTPUTF8
                    else content.decode("ascii")
                )
            except UnicodeDecodeError:
                # 1.4 kept the envelope here (quirk 14): the client may RSET or retry.
                await self._push_data_replies(self._render(R.STRICT_ASCII), envelope)
                return
        else:
            envelope.content = content
        envelope.original_content = content
        try:
            status = await self._deliver()
        except (_ConnectionGone, asyncio.CancelledError):
            raise
        except Exception as error:
            status = await self.handle_exception(error)
        finally:
            self._set_rset_state()
        await self._push_data_replies(status, envelope)
        self._reply_before_release(content)

    async def _deliver(self) -> Any:
        if "DATA" in self._handle_hooks:
            return await self._call_handler_hook("DATA")
        process_message = getattr(self.event_handler, "process_message", None)
        if process_message is None:
            return self._render(R.OK)
        compat.warn_deprecated(compat.PROCESS_MESSAGE)
        await self._enter_task()
        envelope = self.envelope
        # Like a hook: the server is working, the client is not idle (no 421 mid-delivery).
        self._timer.busy += 1
        try:
            result = process_message(
                self.session.peer, envelope.mail_from, envelope.rcpt_tos, envelope.content
            )
            if inspect.isawaitable(result):
                result = await result
        finally:
            self._timer.busy -= 1
        return self._render(R.OK) if result is None else result

    async def _push_data_replies(self, status: Any, envelope: Envelope) -> None:
        """SMTP sends one reply after DATA; LMTP overrides this (one per recipient)."""
        if not _plain_steps(type(self)):
            await self.push(status)
        elif self._emit(status):
            await self._writes.wait()


#: Shared by every connection without per-verb limits (never mutated).
#: The allowances ``core_config_for`` may cache (a subclass may compute its own).
_LIBRARY_ESMTP_EXTRAS = (SMTP._mail_esmtp_extra, SMTP._rcpt_esmtp_extra)

_NO_CALL_LIMITS: dict[str, int] = {}


def _parse_call_limit(
    limit: int | dict[str, int] | None,
) -> tuple[dict[str, int], int]:
    if limit is None:
        return _NO_CALL_LIMITS, CALL_LIMIT_DEFAULT
    if isinstance(limit, int):
        return _NO_CALL_LIMITS, limit
    if isinstance(limit, dict):
        if not all(isinstance(v, int) for v in limit.values()):
            raise TypeError("All command_call_limit values must be int")
        limits = {k.upper(): v for k, v in limit.items() if k != "*"}
        return limits, limit.get("*", CALL_LIMIT_DEFAULT)
    raise TypeError("command_call_limit must be int or Dict[str, int]")
