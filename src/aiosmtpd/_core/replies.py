"""Every reply the library sends on its own, named, in one place.

Owns: the ``Reply`` type and the canonical replies (texts kept exactly as aiosmtpd 1.4
sends them, except where shared/spec/DECISIONS.md changes them on purpose).
Invariants: no reply literal appears at a call site elsewhere; a reply knows its RFC 3463
enhanced status code even when 1.4 did not print it, so ENHANCEDSTATUSCODES (RFC 2034)
can be switched on without touching call sites.
Must not know: sockets, asyncio, logging, the session state.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Reply:
    """One SMTP reply line (multi-line replies are sent as several ``Reply``).

    ``render()`` gives the text; ``line()`` the wire bytes, rendered once per object and
    flag (the canonical replies are module constants, so a session pays for the f-string
    and the encoding once per process, not once per reply).
    """

    #: The three-digit reply code (RFC 5321 §4.2).
    code: int
    #: Human-readable text, without the code and without the enhanced status code.
    text: str
    #: The RFC 3463 enhanced status code (``"5.5.1"``) or ``None``.
    enhanced: str | None = None
    #: aiosmtpd 1.4 printed ``enhanced`` even without ENHANCEDSTATUSCODES; keep doing so.
    always_enhanced: bool = False
    #: ``line()``'s memo for ``False`` and ``True`` (not part of equality or ``repr``).
    _line_plain: bytes | None = field(default=None, init=False, repr=False, compare=False)
    _line_enhanced: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def render(self, enhanced_status_codes: bool = False) -> str:
        """The reply line without CRLF (``"250 OK"``, ``"530 5.7.0 Authentication ..."``)."""
        if self.enhanced and (self.always_enhanced or enhanced_status_codes):
            return f"{self.code} {self.enhanced} {self.text}"
        return f"{self.code} {self.text}"

    def line(self, enhanced_status_codes: bool = False) -> bytes:
        """``render(enhanced_status_codes)`` as sent: UTF-8 bytes, without CRLF.

        Computed on the first call for each flag and kept on the (immutable) reply, so a
        driver can pass it straight to ``ServerConnection.send`` for every canonical reply:
        ``conn.send(reply.line(enhanced_status_codes))``.
        """
        if enhanced_status_codes:
            cached = self._line_enhanced
            if cached is None:
                cached = self.render(True).encode("utf-8")
                object.__setattr__(self, "_line_enhanced", cached)
            return cached
        cached = self._line_plain
        if cached is None:
            cached = self.render(False).encode("utf-8")
            object.__setattr__(self, "_line_plain", cached)
        return cached

    def __str__(self) -> str:
        return self.render()

    def with_text(self, text: str) -> Reply:
        """The same code and enhanced code with another text (for ``<substitutions>``)."""
        return Reply(self.code, text, self.enhanced, self.always_enhanced)


def _r(code: int, text: str, enhanced: str | None = None, *, always: bool = False) -> Reply:
    return Reply(code, text, enhanced, always)


# --- connection-level -------------------------------------------------------------------
BAD_SYNTAX = _r(500, "Error: bad syntax", "5.5.2")
STRICT_ASCII = _r(500, "Error: strict ASCII mode", "5.5.2")
COMMAND_TOO_LONG = _r(500, "Command line too long", "5.5.2")
UNRECOGNIZED = _r(500, 'Error: command "{verb}" not recognized', "5.5.1")
TOO_MANY_UNRECOGNIZED = _r(502, "Too many unrecognized commands, goodbye.", "5.5.1", always=True)
CALL_LIMIT = _r(421, "{verb} sent too many times", "4.7.0", always=True)
TIMEOUT = _r(421, "{hostname} Error: timeout exceeded", "4.4.2", always=True)
SHUTTING_DOWN = _r(421, "Service shutting down", "4.3.2", always=True)
TOO_MANY_CONNECTIONS = _r(421, "Too many connections", "4.7.0", always=True)
LOCAL_ERROR = _r(451, "Error: local error in processing", "4.3.0", always=True)
NEED_STARTTLS = _r(530, "Must issue a STARTTLS command first", "5.7.0")
LACK_OF_SECURITY = _r(554, "Command refused due to lack of security", "5.7.0")
AUTH_REQUIRED = _r(530, "Authentication required", "5.7.0", always=True)

# --- greeting, HELO/EHLO, simple commands -------------------------------------------------
GREETING = _r(220, "{hostname} {ident}")
OK = _r(250, "OK", "2.0.0")
BYE = _r(221, "Bye", "2.0.0")
HELO_SYNTAX = _r(501, "Syntax: HELO hostname", "5.5.4")
EHLO_SYNTAX = _r(501, "Syntax: EHLO hostname", "5.5.4")
LHLO_SYNTAX = _r(501, "Syntax: LHLO hostname", "5.5.4")
NOOP_SYNTAX = _r(501, "Syntax: NOOP [ignored]", "5.5.4")
RSET_SYNTAX = _r(501, "Syntax: RSET", "5.5.4")
QUIT_SYNTAX = _r(501, "Syntax: QUIT", "5.5.4")
DATA_SYNTAX = _r(501, "Syntax: DATA", "5.5.4")
STARTTLS_SYNTAX = _r(501, "Syntax: STARTTLS", "5.5.4")
VRFY_SYNTAX = _r(501, "Syntax: VRFY <address>", "5.5.4")
EXPN_NOT_IMPLEMENTED = _r(502, "EXPN not implemented", "5.5.1")
VRFY_CANNOT = _r(252, "Cannot VRFY user, but will accept message and attempt delivery", "2.0.0")
VRFY_COULD_NOT = _r(502, "Could not VRFY {arg}", "5.5.1")
NEED_HELO = _r(503, "Error: send HELO first", "5.5.1")
NEED_EHLO = _r(503, "Error: send EHLO first", "5.5.1")

# --- STARTTLS -----------------------------------------------------------------------------
READY_FOR_TLS = _r(220, "Ready to start TLS", "2.0.0")
TLS_NOT_AVAILABLE = _r(454, "TLS not available", "4.7.0")
ALREADY_IN_TLS = _r(503, "Already in TLS", "5.5.1", always=True)

# --- MAIL / RCPT ----------------------------------------------------------------------------
MAIL_SYNTAX = _r(501, "Syntax: MAIL FROM: <address>", "5.5.4")
MAIL_SYNTAX_ESMTP = _r(501, "Syntax: MAIL FROM: <address> [SP <mail-parameters>]", "5.5.4")
RCPT_SYNTAX = _r(501, "Syntax: RCPT TO: <address>", "5.5.4")
RCPT_SYNTAX_ESMTP = _r(501, "Syntax: RCPT TO: <address> [SP <mail-parameters>]", "5.5.4")
MALFORMED_ADDRESS = _r(553, "Error: malformed address", "5.1.3", always=True)
NESTED_MAIL = _r(503, "Error: nested MAIL command", "5.5.1")
NEED_MAIL = _r(503, "Error: need MAIL command", "5.5.1")
NEED_RCPT = _r(503, "Error: need RCPT command", "5.5.1")
BAD_BODY = _r(501, "Error: BODY can only be one of 7BIT, 8BITMIME", "5.5.4")
SMTPUTF8_NO_ARGS = _r(501, "Error: SMTPUTF8 takes no arguments", "5.5.4")
SMTPUTF8_DISABLED = _r(501, "Error: SMTPUTF8 disabled", "5.5.4")
SIZE_EXCEEDS_LIMIT = _r(552, "Error: message size exceeds fixed maximum message size", "5.3.4")
MAIL_PARAMS_UNRECOGNIZED = _r(
    555, "MAIL FROM parameters not recognized or not implemented", "5.5.4"
)
RCPT_PARAMS_UNRECOGNIZED = _r(555, "RCPT TO parameters not recognized or not implemented", "5.5.4")

# --- opt-in extensions: DSN (RFC 3461), REQUIRETLS (RFC 8689), BINARYMIME (RFC 3030) -------
BAD_BODY_BINARYMIME = _r(501, "Error: BODY can only be one of 7BIT, 8BITMIME, BINARYMIME", "5.5.4")
DSN_BAD_ENVID = _r(501, "Error: ENVID must be xtext of at most 100 characters", "5.5.4")
DSN_BAD_NOTIFY = _r(
    501, "Error: NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY", "5.5.4"
)
DSN_BAD_ORCPT = _r(501, "Error: ORCPT must be addr-type;xtext of at most 500 characters", "5.5.4")
DSN_BAD_RET = _r(501, "Error: RET can only be one of FULL, HDRS", "5.5.4")
DUPLICATE_PARAMETER = _r(501, "Error: duplicate {keyword} parameter", "5.5.4")
REQUIRETLS_NO_ARGS = _r(501, "Error: REQUIRETLS takes no arguments", "5.5.4")

# --- DATA ---------------------------------------------------------------------------------
START_DATA = _r(354, "End data with <CR><LF>.<CR><LF>")
TOO_MUCH_DATA = _r(552, "Error: Too much mail data", "5.3.4")
DATA_LINE_TOO_LONG = _r(500, "Line too long (see RFC5321 4.5.3.1.6)", "5.5.6")

# --- BDAT (CHUNKING, RFC 3030) ------------------------------------------------------------
BDAT_BINARYMIME_NEEDS_BDAT = _r(503, "Error: BODY=BINARYMIME requires BDAT", "5.5.1")
BDAT_CHUNK_RECEIVED = _r(250, "{size} octets received", "2.0.0")
BDAT_DATA_AFTER_BDAT = _r(503, "Error: DATA not allowed after BDAT", "5.5.1")
BDAT_SYNTAX = _r(501, "Syntax: BDAT <chunk-size> [LAST]", "5.5.4")

# --- AUTH (RFC 4954) ------------------------------------------------------------------------
AUTH_SUCCESS = _r(235, "Authentication successful", "2.7.0", always=True)
AUTH_FAILED = _r(535, "Authentication credentials invalid", "5.7.8", always=True)
AUTH_ENCRYPTION_REQUIRED = _r(
    538, "Encryption required for requested authentication mechanism", "5.7.11", always=True
)
AUTH_ALREADY = _r(503, "Already authenticated", "5.5.1")
AUTH_NOT_ENOUGH = _r(501, "Not enough value", "5.5.4")
AUTH_TOO_MANY = _r(501, "Too many values", "5.5.4")
AUTH_UNRECOGNIZED = _r(504, "Unrecognized authentication type", "5.5.4", always=True)
AUTH_ABORTED = _r(501, "Auth aborted", "5.7.0", always=True)
AUTH_BAD_BASE64 = _r(501, "Can't decode base64", "5.5.2", always=True)
AUTH_CANT_SPLIT = _r(501, "Can't split auth value", "5.5.2", always=True)
AUTH_TOO_MANY_FAILURES = _r(421, "Too many authentication failures", "4.7.0", always=True)
AUTH_NOT_RECOGNIZED_HELO = _r(500, "Error: command 'AUTH' not recognized", "5.5.1")
AUTH_IN_TRANSACTION = _r(503, "AUTH not permitted during a mail transaction", "5.5.1", always=True)

# --- added by the SMTP adapter (HELO / HELP texts of aiosmtpd 1.4) -------------------------
HELO_OK = _r(250, "{hostname}")
HELP_SYNTAX = _r(250, "Syntax: {syntax}", "2.0.0")
HELP_SUPPORTED = _r(250, "Supported commands: {commands}", "2.0.0")
HELP_UNSUPPORTED = _r(501, "Supported commands: {commands}", "5.5.4")
