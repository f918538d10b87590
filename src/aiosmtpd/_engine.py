"""The session engine under ``SMTP``: the protocol callbacks driving the sans-I/O core.

Owns: the protocol callbacks (``connection_made`` ... ``resume_writing``, and the
``BufferedProtocol`` reads into the shared per-thread buffer), taking core events in
order (``_poll``, ``_ready_event``, ``_next_event``) and dispatching commands to
``smtp_<VERB>`` methods, the verb gates that apply to every command (require_starttls,
unknown-command limit, ``command_call_limit``), hook invocation and ``handle_exception``,
ending a session (``_end_connection``) and back-pressure in both directions.
Elsewhere: reply buffering (one ``transport.write`` per pipelined group) in ``_output``;
when a session needs a task at all (only while user code runs or a command awaits
something other than input) in ``_driver``, and the library's own commands served as
plain functions in ``_fastlane``; admission, timeouts, closing replies (``_close_with``),
graceful stop and ``_handler_coroutine`` in ``_lifecycle``; the idle timer in ``_flow``;
STARTTLS input in ``_starttls``; the PROXY header stage (and implicit TLS after it) in
``_proxy_stage``; big-message reads on uvloop in ``_buffered``.
(The 1.4 value types ``Session``, ``Envelope``, ``MISSING``, ``@syntax`` and ``sanitize``
live in ``_session``.)

Invariants: ``next_event()`` is called only after the previous command finished; bytes
are framed only by the core; the transport written to is ``self._writer._transport``
(falling back to ``self.transport``): plugins that replace ``smtp_STARTTLS`` swap it
(smtpdfix sets only the stream ones); no sleeping tasks, only ``call_later``.

Must not know: what each command means (``aiosmtpd.smtp``), AUTH mechanisms.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from . import _compat as compat
from . import _lifecycle as lifecycle
from . import _starttls as starttls
from ._core import replies as R
from ._core.connection import Mode, ServerConnection
from ._core.events import (
    NEED_DATA,
    PAUSED,
    AuthLine,
    Command,
    ConnectionClosed,
    Event,
    Rejected,
    Sentinel,
)
from ._driver import ENTER_TASK, WAIT_FOR_INPUT, abandon, drive, resume, start_task_for
from ._flow import IdleTimer, WriteGate, receive_buffers
from ._output import ReplyOutput
from ._proxy_stage import accept_proxy_header
from ._session import (
    MISSING,
    Envelope,
    Session,
    _ConnectionGone,
    _Missing,
    sanitized_log,
)
from ._tls import ssl_info

log = logging.getLogger("mail.log")

BOGUS_LIMIT = 5
ALLOWED_BEFORE_STARTTLS = {"NOOP", "EHLO", "STARTTLS", "QUIT"}
EMPTY_BARR = bytearray()
#: Stop reading from the socket while this much unparsed input is buffered (a client
#: pipelining faster than its commands are served); resume when the core needs data.
READ_HIGH_WATER = 1024 * 1024


def _reply(reply: R.Reply, **fields: Any) -> str:
    return reply.with_text(reply.text.format(**fields)).render() if fields else reply.render()


class SessionEngine(ReplyOutput, asyncio.Protocol, asyncio.BufferedProtocol):
    """Connection plumbing shared by ``SMTP`` and ``LMTP``; see the module docstring."""

    # The per-connection state lives in slots: one protocol object exists per connection,
    # and a plain instance dict holding this many attributes loses CPython's compact
    # shared-key layout (~1.5 kB per idle connection). Subclasses (``SMTP`` and user
    # subclasses) still have a ``__dict__`` for their own attributes.
    __slots__ = (
        "_after_auth",
        "_auth_failures",
        "_bogus",
        "_call_counts",
        "_closing",
        "_conn",
        "_driving",
        "_ended",
        "_envelope",
        "_implicit_tls",
        "_input_waiter",
        "_limiter_key",
        "_lost",
        "_original_transport",
        "_proxy_buffer",
        "_proxy_eof",
        "_proxy_timer",
        "_reading_paused",
        "_released",
        "_shutdown_requested",
        "_stepping",
        "_suspended",
        "_task",
        "_timer",
        "_tls_early_input",
        "_tls_handshake_okay",
        "_tls_protocol",
        "_writes",
        "session",
        "transport",
    )

    # Set by SMTP.__init__ (declared here for the engine's benefit).
    hostname: str
    __ident__: str
    enable_SMTPUTF8: bool
    require_starttls: Any
    tls_context: Any
    data_size_limit: int | None
    _auth_required: bool
    _call_limits: dict[str, int]
    _call_limit_default: int
    _enforce_call_limit: bool
    _handle_hooks: dict[str, Callable[..., Any]]
    _smtp_methods: dict[str, Callable[..., Any]]
    _loop: asyncio.AbstractEventLoop | None
    _timeout_duration: float | None
    _proxy_timeout: float | None
    _connection_limiter: Any
    _tls_after_proxy: Any
    #: Verbs ``require_starttls`` lets through before TLS (LMTP adds LHLO).
    allowed_before_starttls: frozenset[str] = frozenset(ALLOWED_BEFORE_STARTTLS)
    #: ENHANCEDSTATUSCODES (RFC 2034): library replies carry their RFC 3463 code.
    enhanced_status_codes: bool = False

    def _init_connection_state(self) -> None:
        self.transport: Any = None
        #: 1.4's ``_reader``/``_writer`` stand-ins, made when first asked for.
        self._streams: tuple[compat.CompatStream, compat.CompatStream] | None = None
        self._tls_protocol: Any = None
        self._original_transport: Any = None
        self._implicit_tls = False
        self._tls_handshake_okay = True
        #: The session task, while one runs (``_driver``); ``None`` while idle.
        self._task: asyncio.Task[None] | None = None
        #: A library command waiting for input without a task (``_driver.resume``).
        self._suspended: Coroutine[Any, Any, None] | None = None
        self._driving = False
        #: ``_driver._step`` is running a command outside any task: only then may a
        #: library coroutine yield the driver's markers (anywhere else it awaits futures).
        self._stepping = False
        #: Resolved when the session is over (``_handler_coroutine``); made on demand.
        self._ended: asyncio.Future[None] | None = None
        self.session: Session = None  # type: ignore[assignment]
        self._envelope: Envelope | None = None
        self._conn: ServerConnection = None  # type: ignore[assignment]
        self._out: list[bytes] | None = None
        self._out_size = 0
        self._final_replies = 0
        self._bogus = 0
        self._call_counts: dict[str, int] | None = None
        self._closing = False
        #: ``_end_connection`` finished with no task or suspended command left: the
        #: session is over and holds nothing (``connection_lost`` has nothing to do).
        self._released = False
        self._lost = False
        self._reading_paused = False
        self._input_waiter: asyncio.Future[None] | None = None
        self._writes = WriteGate()
        self._timer: IdleTimer = None  # type: ignore[assignment]
        #: Decrypted bytes that arrive after the handshake but before the session task
        #: could tell the core (a TLS 1.3 client may send EHLO in the flight of its
        #: Finished message). Plaintext sent after STARTTLS never gets here: see
        #: ``_plaintext_after_starttls``.
        self._tls_early_input: list[bytes] | None = None
        #: The cleartext transport 220 to STARTTLS was written on, until the upgrade ends.
        self._tls_plain_transport: Any = None
        self._auth_failures = 0
        #: The last known command was AUTH: until the next known command, an unknown line
        #: may be credentials sent after a refused or cut-short AUTH (538, 530, 501...).
        self._after_auth = False
        #: Bytes received before the PROXY header was complete; ``None`` once it was (or
        #: when no PROXY header is expected).
        self._proxy_buffer: bytearray | None = None
        self._proxy_eof = False
        self._proxy_timer: asyncio.TimerHandle | None = None
        self._shutdown_requested = False
        #: The client address this connection holds a ConnectionLimiter slot for.
        self._limiter_key: str | None = None

    def _create_session(self) -> Session:
        return Session(self._loop or asyncio.get_running_loop())

    def _create_envelope(self) -> Envelope:
        return Envelope()

    def _set_rset_state(self) -> None:
        # A fresh envelope is made when first used: an idle session holds none.
        self._envelope = None

    @property
    def envelope(self) -> Envelope:
        """The current transaction's ``Envelope`` (1.4 attribute), made on first use."""
        envelope = self._envelope
        if envelope is None:
            envelope = self._envelope = self._create_envelope()
        return envelope

    @envelope.setter
    def envelope(self, envelope: Envelope) -> None:
        self._envelope = envelope

    def _new_core(self) -> ServerConnection:
        raise NotImplementedError

    @property
    def _tls_active(self) -> bool:
        return bool(self._tls_protocol) or self._implicit_tls

    # --- asyncio.Protocol -----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        loop = self._loop
        if loop is None:
            # What ``loop`` (1.4) would find on first use anyway; set now so that nothing
            # of this connection asks asyncio for the running loop again.
            # (``_loop`` is an instance attribute of ``SMTP``, not one of these slots.)
            loop = self._loop = asyncio.get_running_loop()  # type: ignore[misc]
        self.transport = transport
        self._streams = None
        implicit_tls = self._implicit_tls = transport.get_extra_info("ssl_object") is not None
        session = self.session = self._create_session()
        session.peer = transport.get_extra_info("peername")
        if implicit_tls:
            session.ssl = ssl_info(transport)
        self._set_rset_state()
        self._conn = self._new_core()
        timer = self._timer = IdleTimer(loop, self._timeout_duration, self)
        timer.touch()
        if self._proxy_timeout is not None:
            self._proxy_buffer = bytearray()
            self._proxy_timer = loop.call_later(self._proxy_timeout, self._on_proxy_timeout)
            start_task_for(self, self._proxy_stage())
            return
        if self._admit_connection():
            self._send_line(lifecycle.greeting_line(self.hostname, self.__ident__))
            self._flush()
        else:
            self._end_connection()

    async def _proxy_stage(self) -> None:
        """Before the greeting: the PROXY header, ``handle_PROXY`` and the caps."""
        if not await self._accept_proxy_header():
            raise _ConnectionGone
        if not self._admit_connection():
            raise _ConnectionGone
        self._send_line(lifecycle.greeting_line(self.hostname, self.__ident__))

    def get_buffer(self, sizehint: int) -> memoryview:
        return receive_buffers.view  # receive_buffer(), without the call

    def buffer_updated(self, nbytes: int) -> None:
        data = receive_buffers.view[:nbytes]
        if type(self).data_received is SessionEngine.data_received:
            self._on_input(data)
        else:
            # A subclass that overrides data_received (1.4 programs may) gets bytes.
            self.data_received(bytes(data))

    def data_received(self, data: bytes) -> None:
        self._on_input(data)

    def _on_input(self, data: bytes | memoryview) -> None:
        """Bytes from the transport; ``data`` is valid only during this call."""
        if self._conn is None or self._closing:
            return
        if self._conn.mode is Mode.TLS_PENDING:
            if self._plaintext_after_starttls():
                # RFC 3207 §4.2 / CVE-2011-0411: never execute what came before the
                # handshake, whether in the STARTTLS packet (the core drops it) or later.
                log.info(
                    "%r discarded %d plaintext bytes sent after STARTTLS",
                    self.session.peer,
                    len(data),
                )
                return
            self._keep_early_tls_input(bytes(data))
            return
        if self._proxy_buffer is not None:
            self._proxy_buffer += data
            if not self._reading_paused and len(self._proxy_buffer) > READ_HIGH_WATER:
                # A handle_PROXY hook is still deciding: do not buffer without bound.
                self._reading_paused = True
                self._active_transport.pause_reading()
            self._wake()
            return
        self._conn.receive_data(data)
        # _kick, inlined (once per receive).
        if self._task is not None:
            self._wake()
        elif self._suspended is None:
            drive(self)
        elif not self._driving:
            resume(self)
        # Input can only pile up while something else holds the session (a task, a
        # suspended command, paused writes, an outer drive): once drive stopped for want
        # of input, what is left is shorter than the longest command line.
        if (
            not self._reading_paused
            and not self._closing
            and (
                self._task is not None
                or self._suspended is not None
                or self._writes.paused
                or self._driving
            )
            and self._conn.buffered_size > READ_HIGH_WATER
        ):
            self._reading_paused = True
            self._active_transport.pause_reading()

    def _keep_early_tls_input(self, data: bytes) -> None:
        if self._tls_early_input is None:
            self._tls_early_input = []
        self._tls_early_input.append(data)

    def _plaintext_after_starttls(self) -> bool:
        """Whether the cleartext transport is delivering: plaintext after ``220``."""
        return starttls.plaintext_after_starttls(self)

    def eof_received(self) -> bool | None:
        if self._proxy_buffer is not None:
            self._proxy_eof = True
            self._wake()
        elif self._conn is not None and self._conn.mode is Mode.TLS_PENDING:
            self._keep_early_tls_input(b"")
        elif self._conn is not None and not self._lost:
            self._conn.receive_data(b"")
            self._kick()
        # Keep the transport open so pipelined replies can still be written; the session
        # closes it after ConnectionClosed. (SSL transports ignore the request.)
        return None if self._tls_active else True

    def connection_lost(self, exc: Exception | None) -> None:
        if self._original_transport is not None and not self._original_transport.is_closing():
            self._original_transport.close()
        if self._released:
            # The session ended first (QUIT, 421...): it let go of everything then.
            self._lost = True
            if self._writes.paused:
                self._writes.release()
            return
        if not self._lost:
            self._lost = True
            if self._conn is not None:
                self._conn.receive_data(b"")
        self._writes.release()
        if self._conn is not None:
            self._kick()

    def pause_writing(self) -> None:
        self._writes.pause(self._timeout_duration, self._on_write_stall)

    def _on_write_stall(self) -> None:
        """The peer has not read its replies for a whole ``timeout``: drop it."""
        lifecycle.drop_stalled(self)

    def resume_writing(self) -> None:
        self._writes.resume()
        if self._conn is not None and self._task is None and self._suspended is None:
            drive(self)

    # --- driving the session (see _driver) ---------------------------------------------------
    def _kick(self) -> None:
        """Input or EOF arrived: wake whoever waits for it, or serve it right here."""
        if self._task is not None:
            self._wake()
        elif self._suspended is not None:
            if not self._driving:
                resume(self)
        else:
            drive(self)

    def _wake(self) -> None:
        waiter = self._input_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def _handler_coroutine(self) -> asyncio.Future[None]:
        """1.4's session task, as something to await or cancel: done when the session is.

        (There is no task per connection any more; see ``_driver``.) Cancelling it ends
        the session at once, as cancelling 1.4's task did.
        """
        return lifecycle.session_end(self)

    def _session_over(self) -> bool:
        return self._closing and self._task is None and self._suspended is None

    async def _enter_task(self) -> None:
        """Continue inside the session task (before user code runs; see ``_driver``)."""
        if self._stepping:
            await ENTER_TASK

    async def _wait_for_input(self) -> None:
        if self._reading_paused and not self._lost:
            self._reading_paused = False
            self._active_transport.resume_reading()
        if self._stepping:
            await WAIT_FOR_INPUT  # task-less: _driver.resume continues us
            return
        waiter = asyncio.get_running_loop().create_future()
        self._input_waiter = waiter
        try:
            await waiter
        finally:
            self._input_waiter = None

    def _poll(self) -> Event | Sentinel:
        """The core's next event (or ``NEED_DATA``/``PAUSED``); activity restarts the timer."""
        conn = self._conn
        while True:
            event = conn.next_event()
            if event is PAUSED and conn.mode is Mode.COMMAND:
                # The last command got no final reply line (a hook returned only "250-"
                # lines, say): the client would wait forever. Answer for it.
                log.error("%r command left without a final reply", self.session.peer)
                self._say(R.LOCAL_ERROR)
                continue
            if event is not NEED_DATA and event is not PAUSED:
                self._timer.touch()
            return event

    def _ready_event(self) -> Event | None:
        """The next event between commands, or ``None``: nothing to serve now.

        ``None`` when the core needs input (replies are flushed first), while writes are
        paused (``resume_writing`` drives again), and once the connection is closing.
        """
        if self._closing:
            return None
        if self._shutdown_requested:
            self._close_with(R.SHUTTING_DOWN)
            return None
        if self._writes.paused:
            self._flush()
            return None
        event = self._poll()
        if event is NEED_DATA:
            self._input_drained()
            return None
        return None if event is PAUSED else event

    def _input_drained(self) -> None:
        """The core needs more input: send the replies of the group, read again."""
        self._flush()
        if self._reading_paused and not self._lost:
            self._reading_paused = False
            self._active_transport.resume_reading()

    async def _next_event(self) -> Event | None:
        """The next core event inside a command (DATA content, an AUTH line, a chunk),
        flushing replies first when input must be awaited.

        ``None`` means the connection is over (closed by either side).
        """
        while True:
            if self._writes.paused:
                self._flush()
                await self._writes.wait()
            if self._closing:
                return None
            event = self._poll()
            if event is NEED_DATA:
                self._flush()
                await self._wait_for_input()
                continue
            return None if event is PAUSED else event

    def _admit_connection(self) -> bool:
        """Take a slot of the connection caps, or answer 421 4.7.0 and close."""
        return self._connection_limiter is None or lifecycle.admit(self)

    def _end_connection(self) -> None:
        """The session is over: release everything it holds (idempotent)."""
        if self._released:
            return
        self._closing = True
        if self._suspended is not None:
            abandon(self)
        if self._limiter_key is not None:
            self._connection_limiter.release(self._limiter_key)
            self._limiter_key = None
        if self._proxy_timer is not None:
            self._proxy_timer.cancel()
        if self._timer is not None:
            self._timer.cancel()
        self._flush()
        conn = self._conn
        if conn is not None and conn.mode is not Mode.CLOSED:
            # (After 221 or 421 the core closed itself: it holds and accepts nothing.)
            conn.close()
        transport = self._active_transport
        if transport is not None and not transport.is_closing():
            self._close_transport(transport)
        if self._task is None:
            self._released = True
            ended = self._ended
            if ended is not None and not ended.done():
                ended.set_result(None)

    def _close_after_reply(self) -> None:
        self._closing = True

    def _finish_tls_upgrade(self) -> None:
        """After ``220`` to STARTTLS and the handshake: restart the core and the session."""
        starttls.finish_upgrade(self)

    async def _accept_proxy_header(self) -> bool:
        return await accept_proxy_header(self)

    def _on_proxy_timeout(self) -> None:
        lifecycle.proxy_timeout(self)

    def _on_timeout(self) -> None:
        lifecycle.idle_timeout(self)

    def _close_with(self, reply: R.Reply, **fields: Any) -> None:
        """Write ``reply`` after whatever is buffered, then close (421 on timeout/stop)."""
        lifecycle.close_with(self, reply, **fields)

    def _close_transport(self, transport: Any) -> None:
        """Close, or abort if the peer has stopped reading (see ``_lifecycle``)."""
        lifecycle.close_transport(self, transport)

    def begin_shutdown(self) -> None:
        """Graceful stop (DECISIONS "graceful stop"), for servers and controllers.

        A session waiting for its next command is answered ``421 4.3.2 Service shutting
        down`` and closed at once; one whose DATA is being received or whose hook is
        running finishes that command first (the client gets its 250 or its error), then
        gets the 421. Await ``_handler_coroutine`` for the end; call ``shutdown_now()``
        when a deadline passes.
        """
        lifecycle.begin_shutdown(self)

    def shutdown_now(self) -> None:
        """Answer ``421 4.3.2 Service shutting down`` and close, whatever is in progress.

        A message whose DATA had not been answered is not delivered.
        """
        lifecycle.shutdown_now(self)

    async def _dispatch(self, event: Event) -> None:
        if isinstance(event, Command):
            await self._on_command(event)
        elif isinstance(event, Rejected):
            self._say(event.reply)
            if event.close:
                self._close_after_reply()
        elif isinstance(event, ConnectionClosed):
            self._closing = True
        else:
            # DataChunk / EndOfData / AuthLine only occur inside DATA and AUTH exchanges.
            log.error("%r unexpected core event %r", self.session.peer, type(event).__name__)

    async def _on_command(self, command: Command) -> None:
        verb, arg = command.verb, command.arg
        method = self._smtp_methods.get(verb)
        if method is not None or verb == "AUTH":
            self._after_auth = verb == "AUTH"
        # Credentials after a refused AUTH, or in an AUTH line the core could not split
        # (``AUTH<TAB>PLAIN<TAB>...``), are neither logged nor echoed.
        masked = method is None and (self._after_auth or verb.startswith("AUTH\t"))
        if log.isEnabledFor(logging.INFO):
            raw = b"********" if masked else command.raw
            sanitized_log(log.info, "%r >> %r", self.session.peer, raw)
        if (
            self.require_starttls
            and not self._tls_active
            and verb not in self.allowed_before_starttls
        ):
            self._say(R.NEED_STARTTLS)
            return
        if not self._tls_handshake_okay and verb != "QUIT":
            self._say(R.LACK_OF_SECURITY)
            return
        if method is None:
            self._bogus += 1
            if self._bogus >= BOGUS_LIMIT:
                self._say(R.TOO_MANY_UNRECOGNIZED)
                self._close_after_reply()
            else:
                self._say(R.UNRECOGNIZED, verb="********" if masked else verb)
            return
        if self._enforce_call_limit:
            if self._call_counts is None:
                self._call_counts = {}
            count = self._call_counts.get(verb, 0) + 1
            self._call_counts[verb] = count
            if count > self._call_limits.get(verb, self._call_limit_default):
                self._say(R.CALL_LIMIT, verb=verb)
                self._close_after_reply()
                return
        try:
            await method(self, arg)
            if self._conn.mode is Mode.TLS_PENDING:
                self._finish_tls_upgrade()
        except (_ConnectionGone, asyncio.CancelledError):
            raise
        except Exception as error:
            await self.push(await self.handle_exception(error))

    async def handle_exception(self, error: Exception) -> str:
        """The reply for an exception raised while serving a command (DECISIONS 2, 3)."""
        hook = self._handle_hooks.get("exception")
        if hook is not None:
            try:
                status = await hook(error)
            except Exception:
                log.exception("%r handle_exception() failed", self.session.peer)
                status = None
            if status is not None:
                return str(status)
        log.error("%r SMTP session exception", self.session.peer, exc_info=error)
        return self._render(R.LOCAL_ERROR)

    async def _call_handler_hook(self, command: str, *args: Any) -> Any:
        hook = self._handle_hooks.get(command)
        if hook is None:
            return MISSING
        if self._stepping:
            await ENTER_TASK  # user code runs in the session task (see _driver)
        assert self._timer is not None
        self._timer.busy += 1
        try:
            return await hook(self, self.session, self.envelope, *args)
        finally:
            self._timer.busy -= 1

    async def check_helo_needed(self, helo: str = "HELO") -> bool:
        return self._helo_given(helo)

    async def check_auth_needed(self, caller: str) -> bool:
        return self._auth_satisfied(caller)

    # The synchronous cores of the two checks above, which the library's own commands
    # call directly when the class keeps both coroutines (``smtp._plain_steps``).
    def _helo_given(self, helo: str = "HELO") -> bool:
        if not self.session.host_name:
            self._say(R.NEED_EHLO if helo == "EHLO" else R.NEED_HELO)
            return False
        return True

    def _auth_satisfied(self, caller: str) -> bool:
        if self._auth_required and not self.session.authenticated:
            log.info("%r %s refused: not authenticated", self.session.peer, caller)
            self._say(R.AUTH_REQUIRED)
            return False
        return True

    async def _next_auth_line(self) -> bytes | _Missing:
        """The client's answer to a 334 challenge; MISSING (after a reply) if refused."""
        event = await self._next_event()
        if isinstance(event, AuthLine):
            return event.line
        if isinstance(event, Rejected):
            self._say(event.reply)
            if event.close:
                self._close_after_reply()
            return MISSING
        raise _ConnectionGone
