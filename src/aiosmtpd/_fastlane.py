"""The fast lane: the library's own commands as plain functions, when nothing is around them.

Owns: ``fast_verbs``, which says per class which verbs ``_driver.drive`` may serve
by calling a synchronous function here instead of running the general path
(``_on_command`` -> the ``smtp_<VERB>`` coroutine -> ``_step``), and those functions:
HELO, EHLO, MAIL, RCPT, RSET, NOOP, QUIT and DATA up to its ``354`` (the content is then
collected by a coroutine, as in the general path, but a single one when the message
needs no user code: ``_receive``; and none at all when the core holds that message
whole and it needs no unstuffing: ``_receive_whole``).

Why: for the common case the general path creates and steps two coroutines per command
and re-checks, per command, things that cannot change during a connection (overrides,
hooks). Here they are decided once per class (``fast_verbs``) and once per batch of
input (in ``drive``).

Invariants: a function here does exactly what ``SMTP.smtp_<VERB>`` does when the class
keeps the library's ``smtp_<VERB>``, its helpers (``_driver._inline_verbs``), ``push``,
``_call_handler_hook`` and the checks (``smtp._plain_steps``), and the handler has no
``handle_<VERB>`` hook: the same replies, in the same order, through the same helpers
(``_say``, ``_emit``, ``_parse_path_arg`` ...), and the same state changes. Its
constant replies (``250 OK`` to MAIL, ``354`` to DATA ...) are worked out once per verb
(``_known``) and go out through ``_send_known``, which skips the per-line lookups of
``_send_line``; the core checks each was made for the command it answers. Anything
else (a hook, an override, ``handle_exception``, ``require_starttls`` before TLS, a
failed TLS check, a call limit reached, an unknown verb) takes the general path. A
function never awaits: where the general path would wait for the peer to read
(``_emit`` returned True), ``drive`` has the session task wait instead, as the general
path does. EHLO's lines are all queued before that wait (the general path may wait
between them): the same bytes, in the same order. EHLO's continuation lines and HELO's
reply are rendered once per value of everything they are made of (``_EHLO_BLOCKS``,
``_HELO_LINES``: hostname, limits, options, TLS state, AUTH mechanisms) and EHLO's are
queued as one piece; the core is handed only the final ``250 HELP``, the one line of
the reply it acts on (``ReplyOutput._send_continuations``). ``tests/adapter/test_fastlane.py``
runs scripted sessions through both paths and compares bytes and hook calls.
Must not know: the core's framing, transports, the session task.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from functools import partial
from typing import TYPE_CHECKING, Any

from ._core import replies as R
from ._core import syntax as S
from ._core.connection import KnownReply, known_reply
from ._core.events import EndOfData

if TYPE_CHECKING:
    from ._engine import SessionEngine
    from .smtp import SMTP

#: What ``drive`` calls: ``None`` when the command is done, or what makes the coroutine
#: that goes on with it (DATA's content) for ``_driver._step`` to run. That coroutine
#: starts by reading the content: ``drive`` makes it only once some has arrived. The maker
#: may return ``None`` instead: it has served the content at once, nothing goes on.
#: (The engine is an ``SMTP``: ``fast_verbs`` hands out commands only for those.)
ContentStart = Callable[[], "Coroutine[Any, None, None] | None"]
FastCommand = Callable[[Any, "str | None"], "ContentStart | None"]

#: The per-connection gates are checked by ``_driver.drive`` (once per batch of input):
#: no ``handle_exception`` hook, the TLS check passed, ``require_starttls`` satisfied.
#: Checked per command there too: the verb's hook (DATA's may exist: it runs after the
#: content, behind the same coroutine as in the general path) and the call limit.


def fast_verbs(cls: type, inline: frozenset[str]) -> dict[str, FastCommand]:
    """The fast-lane commands of ``cls`` (decided once per class): those of ``inline``
    (the verbs ``drive`` may serve at all, ``_driver._inline_verbs``) whose
    ``smtp_<VERB>`` is ``SMTP``'s own, if the class keeps the ``envelope`` property."""
    from ._engine import SessionEngine
    from .smtp import SMTP

    if not issubclass(cls, SMTP) or cls.envelope is not SessionEngine.envelope:
        return {}
    return {
        verb: command
        for verb, command in _COMMANDS.items()
        if verb in inline and getattr(cls, "smtp_" + verb) is getattr(SMTP, "smtp_" + verb)
    }


def within_call_limit(engine: SessionEngine, verb: str) -> bool:
    """Count the call as ``_on_command`` does; ``False`` (count undone) when the limit is
    passed: the general path then counts it again and answers it."""
    counts = engine._call_counts
    if counts is None:
        counts = engine._call_counts = {}
    count = counts.get(verb, 0) + 1
    if count > engine._call_limits.get(verb, engine._call_limit_default):
        return False
    counts[verb] = count
    return True


async def answer_error(engine: SessionEngine, error: Exception) -> None:
    """A fast command raised: what ``_on_command`` does with it."""
    await engine.push(await engine.handle_exception(error))


# --- the commands (each mirrors its smtp_<VERB> with no hook and no override) ---------


#: ``R.OK.line(enhanced_status_codes)`` (what ``_say`` sends) and the like, indexed by
#: that flag.
_OK = (R.OK.line(False), R.OK.line(True))


def _known(reply: R.Reply, verb: str | None) -> tuple[KnownReply, KnownReply]:
    """``reply`` as sent to ``verb``, worked out ahead for ``_send_known``, by
    ``enhanced_status_codes``."""
    lines = (reply.line(False), reply.line(True))
    if verb == "STARTTLS" or any(line.startswith(b"334") for line in lines):
        raise ValueError("_send_known takes neither a 334 nor a reply to STARTTLS")
    return (known_reply(lines[0], verb), known_reply(lines[1], verb))


_MAIL_OK = _known(R.OK, "MAIL")
_RCPT_OK = _known(R.OK, "RCPT")
_RSET_OK = _known(R.OK, "RSET")
_NOOP_OK = _known(R.OK, "NOOP")
_QUIT_BYE = _known(R.BYE, "QUIT")
_DATA_GO = _known(R.START_DATA, "DATA")
#: The reply to a message's content: ``EndOfData`` cleared the current command.
_CONTENT_OK = _known(R.OK, None)
#: ``parse_esmtp_params("")`` (never mutated: without options nothing is added to it).
_NO_PARAMS = S.EsmtpParams([], {})


#: Bounds the reply caches below (a server has one hostname, a few TLS/AUTH states).
_CACHE_SIZE = 64
#: ``250 <hostname>`` to HELO as sent, per (hostname, enhanced codes, SMTPUTF8).
_HELO_LINES: dict[tuple[str, bool, bool], bytes] = {}
#: EHLO's continuation lines as ``_send_line`` would queue them (joined) and how many,
#: per ``_ehlo_key``: everything ``SMTP._ehlo_lines`` reads (a class that overrides it
#: or its helpers is not in the fast lane: ``_driver._INLINE_HELPERS``).
_EHLO_BLOCKS: dict[tuple[Any, ...], tuple[bytes, int]] = {}
_HELP = b"250 HELP"


def _helo(engine: SMTP, hostname: str | None) -> None:
    if not hostname:
        engine._say(R.HELO_SYNTAX)
        return
    engine._set_rset_state()
    session = engine.session
    session.extended_smtp = False
    session.host_name = hostname
    server_name = engine.hostname
    key = (server_name, engine.enhanced_status_codes, engine.enable_SMTPUTF8)
    line = _HELO_LINES.get(key) if type(server_name) is str else None
    if line is None:
        reply = engine._render(R.HELO_OK, hostname=server_name)
        line = reply.encode("utf-8" if engine.enable_SMTPUTF8 else "ascii")
        if b"\n" in line or b"\r" in line or type(server_name) is not str:
            engine._emit(line)  # (its lines, one by one; never cached)
            return
        if len(_HELO_LINES) >= _CACHE_SIZE:
            _HELO_LINES.clear()
        _HELO_LINES[key] = line
    engine._send_line(line)


def _ehlo_key(engine: SMTP) -> tuple[Any, ...] | None:
    """What EHLO's lines depend on; ``None`` when a value's text is not its identity
    (a ``hostname`` that is not a ``str``, a ``data_size_limit`` that is not an ``int``)."""
    hostname, size = engine.hostname, engine.data_size_limit
    if type(hostname) is not str or (size is not None and type(size) is not int):
        return None
    tls_active = engine._tls_active
    return (
        hostname,
        size,
        not engine._decode_data,
        not engine.enable_SMTPUTF8,
        not engine.advertise_pipelining,
        not engine.enhanced_status_codes,
        not engine.enable_DSN,
        not engine.enable_CHUNKING,
        not engine.enable_REQUIRETLS,
        not engine.tls_context,
        tls_active,
        tuple(engine._auth_methods) if tls_active or not engine._auth_require_tls else None,
    )


def _ehlo(engine: SMTP, hostname: str | None) -> None:
    if not hostname:
        engine._say(R.EHLO_SYNTAX)
        return
    engine._set_rset_state()
    session = engine.session
    session.extended_smtp = True
    key = _ehlo_key(engine)
    cached = _EHLO_BLOCKS.get(key) if key is not None else None
    if cached is None:
        lines = engine._ehlo_lines()
        encoding = "utf-8" if engine.enable_SMTPUTF8 else "ascii"
        try:
            encoded = [line.encode(encoding) for line in lines]
        except UnicodeError:
            encoded = None  # the line-by-line path raises what the general path raises
        if (
            key is None
            or encoded is None
            or any(b"\n" in line or b"\r" in line for line in encoded)
        ):
            session.host_name = hostname
            lines.append("250 HELP")
            _send_each(engine, lines, encoding)
            return
        cached = (b"".join([line + b"\r\n" for line in encoded]), len(encoded))
        if len(_EHLO_BLOCKS) >= _CACHE_SIZE:
            _EHLO_BLOCKS.clear()
        _EHLO_BLOCKS[key] = cached
    session.host_name = hostname
    engine._send_continuations(*cached)
    engine._send_line(_HELP)


def _send_each(engine: SMTP, lines: list[str], encoding: str) -> None:
    """_emit for each line, with the checks it makes once for all of them."""
    for line in lines:
        data = line.encode(encoding)
        if b"\n" in data or b"\r" in data:
            engine._emit(data)
        else:
            engine._send_line(data)


def _noop(engine: SMTP, arg: str | None) -> None:
    engine._send_known(_NOOP_OK[engine.enhanced_status_codes])


def _quit(engine: SMTP, arg: str | None) -> None:
    if arg:
        engine._say(R.QUIT_SYNTAX)
        return
    engine._send_known(_QUIT_BYE[engine.enhanced_status_codes])
    engine._closing = True  # _close_after_reply (kept by the class), inlined


def _rset(engine: SMTP, arg: str | None) -> None:
    if arg:
        engine._say(R.RSET_SYNTAX)
        return
    engine._set_rset_state()
    engine._send_known(_RSET_OK[engine.enhanced_status_codes])


def _mail(engine: SMTP, arg: str | None) -> None:
    session = engine.session
    # _helo_given() and _auth_satisfied(), called only when one of them refuses.
    if (not session.host_name or (engine._auth_required and not session.authenticated)) and (
        not engine._helo_given() or not engine._auth_satisfied("MAIL")
    ):
        return
    syntax_error = R.MAIL_SYNTAX_ESMTP if session.extended_smtp else R.MAIL_SYNTAX
    path = S.parse_path_argument(arg or "", "FROM:")
    if type(path) is tuple and not path[1] and not engine.local_part_limit:
        address, params = path[0], _NO_PARAMS  # what _parse_path_arg makes of it
    else:
        parsed = engine._parse_path_arg(arg, "FROM:", syntax_error)
        if parsed is None:
            return
        address, params = parsed
    envelope = engine._envelope  # the envelope property (kept by the class), inlined
    if envelope is None:
        envelope = engine._envelope = engine._create_envelope()
    if envelope.mail_from:
        engine._say(R.NESTED_MAIL)
        return
    if params.options:
        checked = engine._mail_params(params, syntax_error)
        if checked is None:
            return
        options, smtputf8, binarymime = checked
    else:
        options, smtputf8, binarymime = params.options, False, False
    envelope.smtp_utf8 = smtputf8
    engine._binarymime_envelope = envelope if binarymime else None
    envelope.mail_from = address
    envelope.mail_options.extend(options)
    engine._send_known(_MAIL_OK[engine.enhanced_status_codes])


def _rcpt(engine: SMTP, arg: str | None) -> None:
    session = engine.session
    # _helo_given() and _auth_satisfied(), called only when one of them refuses.
    if (not session.host_name or (engine._auth_required and not session.authenticated)) and (
        not engine._helo_given() or not engine._auth_satisfied("RCPT")
    ):
        return
    envelope = engine._envelope  # the envelope property (kept by the class), inlined
    if envelope is None:
        envelope = engine.envelope
    if not envelope.mail_from:
        engine._say(R.NEED_MAIL)
        return
    syntax_error = R.RCPT_SYNTAX_ESMTP if session.extended_smtp else R.RCPT_SYNTAX
    path = S.parse_path_argument(arg or "", "TO:")
    if type(path) is tuple and not path[1] and not engine.local_part_limit:
        address, params = path[0], _NO_PARAMS  # what _parse_path_arg makes of it
    else:
        parsed = engine._parse_path_arg(arg, "TO:", syntax_error)
        if parsed is None:
            return
        address, params = parsed
    options = params.options
    if options:
        from ._extensions import take_rcpt_params  # (imports _engine, which imports us)

        values = dict(params.values)
        taken = take_rcpt_params(values, options, dsn=engine.enable_DSN)
        if isinstance(taken, R.Reply):
            engine._say(taken)
            return
        if values:
            engine._say(R.RCPT_PARAMS_UNRECOGNIZED)
            return
        options = taken
    envelope.rcpt_tos.append(address)
    envelope.rcpt_options.extend(options)
    engine._send_known(_RCPT_OK[engine.enhanced_status_codes])


def _data(engine: SMTP, arg: str | None) -> ContentStart | None:
    session = engine.session
    # _helo_given() and _auth_satisfied(), called only when one of them refuses.
    if (not session.host_name or (engine._auth_required and not session.authenticated)) and (
        not engine._helo_given() or not engine._auth_satisfied("DATA")
    ):
        return None
    envelope = engine._envelope  # the envelope property (kept by the class), inlined
    if envelope is None:
        envelope = engine.envelope
    if not envelope.rcpt_tos:
        engine._say(R.NEED_RCPT)
        return None
    if arg:
        engine._say(R.DATA_SYNTAX)
        return None
    if engine._binarymime_envelope is envelope:
        engine._say(R.BDAT_BINARYMIME_NEEDS_BDAT)
        return None
    transfer = engine._chunk_transfer  # engine._current_transfer(), without the call
    if transfer is not None and transfer.envelope is envelope:
        engine._say(R.BDAT_DATA_AFTER_BDAT)
        return None
    engine._send_known(_DATA_GO[engine.enhanced_status_codes])
    if (
        engine._decode_data
        or "DATA" in engine._handle_hooks
        or getattr(engine.event_handler, "process_message", None) is not None
    ):
        return engine._receive_and_deliver  # user code, or decoding: the general path
    return partial(_receive_whole, engine)


def _receive_whole(engine: SMTP) -> Coroutine[Any, None, None] | None:
    """Start receiving the content (``drive`` or ``resume`` calls this once some is here):
    a message the core holds whole is taken and answered at once, with no event and no
    coroutine (what ``_receive`` would do with it): ``None``, or the wait for the peer to
    read when writes are paused; else ``_receive``."""
    writes = engine._writes
    content = None if writes.paused or engine._closing else engine._conn.whole_message()
    if content is None:
        return _receive(engine)
    if not engine._driving:
        # As _read_message on its first event.  ``drive`` (the only caller that runs with
        # ``_driving`` set) already restarted the timer for the DATA command in this
        # batch, and no time passed since; ``resume`` starts us before it sets it.
        engine._timer.touch()
    envelope = engine._envelope  # the envelope property (kept by the class), inlined
    if envelope is None:
        envelope = engine.envelope
    envelope.content = content
    envelope.original_content = content
    engine._set_rset_state()
    engine._send_known(_CONTENT_OK[engine.enhanced_status_codes])
    if writes.paused:
        engine._flush()
        return writes.wait()
    return None


async def _receive(engine: SMTP) -> None:
    """``_receive_and_deliver`` for a message that no user code sees: collect, answer."""
    received = await engine._read_message()
    envelope = engine._envelope  # the envelope property (kept by the class), inlined
    if envelope is None:
        envelope = engine.envelope
    if isinstance(received, EndOfData):
        assert received.error is not None
        engine._set_rset_state()
        status = received.error.line(engine.enhanced_status_codes)
    else:
        content = received[0]
        envelope.content = content
        envelope.original_content = content
        engine._set_rset_state()
        status = _OK[engine.enhanced_status_codes]
    engine._send_line(status)  # _emit, for a line known to be one line of bytes
    if engine._writes.paused:
        engine._flush()
        await engine._writes.wait()
    elif not isinstance(received, EndOfData):
        engine._reply_before_release(received[0])


_COMMANDS: dict[str, FastCommand] = {
    "DATA": _data,
    "EHLO": _ehlo,
    "HELO": _helo,
    "MAIL": _mail,
    "NOOP": _noop,
    "QUIT": _quit,
    "RCPT": _rcpt,
    "RSET": _rset,
}
