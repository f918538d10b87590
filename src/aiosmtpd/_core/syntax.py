"""Pure parsers for the arguments of SMTP commands.

Owns: the ``FROM:``/``TO:`` path argument (RFC 5321 §4.1.2 Reverse-path / Forward-path,
plus the forms aiosmtpd 1.4 accepted: a bare address without angle brackets, a space
after the colon, a source route that is dropped, a domain-less local part such as
``postmaster``), RFC 5321 Mailbox parsing (dot-string or quoted-string local part; domain
or address literal; any non-ASCII character counts as ``atext`` so SMTPUTF8 addresses
pass, RFC 6531 §3.3), ESMTP parameters (``KEY[=VALUE]``, RFC 5321 §4.1.2), xtext
(RFC 3461 §4) and base64 SASL lines (RFC 4954 §4).

Invariants: every function is synchronous and pure (no I/O, no logging, no asyncio, no
global state). Peer mistakes are returned as values (``PathError``, ``None``), never
raised. Whether non-ASCII is *allowed* is not decided here: the core already refused it
when SMTPUTF8 is off.

Must not know: replies, sessions, hooks, configuration.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
from dataclasses import dataclass

__all__ = [
    "EsmtpParams",
    "PathError",
    "decode_sasl_line",
    "decode_xtext",
    "encode_sasl",
    "encode_xtext",
    "local_part",
    "parse_dsn_envid",
    "parse_dsn_notify",
    "parse_dsn_orcpt",
    "parse_esmtp_params",
    "parse_mailbox",
    "parse_path",
    "parse_path_argument",
    "strip_keyword",
]


class PathError(enum.Enum):
    """Why a path argument was refused."""

    #: Not a path at all (empty, stray ``<``/``>``): the command's syntax reply (501).
    SYNTAX = "syntax"
    #: A path whose mailbox does not parse: ``553 5.1.3 Error: malformed address``.
    MALFORMED = "malformed"


# RFC 5321 §4.1.2 atext (RFC 5322 §3.2.3) plus every non-ASCII code point (RFC 6531 §3.3,
# surrogate escapes included: the core decodes with ``surrogateescape``).
_ATEXT = r"A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\U0010ffff"
# Dots are accepted anywhere in the local part (``a..b``, ``.a``, ``a.``) as aiosmtpd 1.4
# did; real mail from misconfigured senders depends on it.
_LOCAL_DOTS_RE = re.compile(rf"[{_ATEXT}.]+")
_QUOTED_RE = re.compile(r'"((?:[^"\\\r\n]|\\[\x20-\x7e\u0080-\U0010ffff])*)"')
_DOT_ATOM_RE = re.compile(rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*")
_DOMAIN_RE = re.compile(rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*")
# RFC 5321 §4.1.3 address literal; the inside is dtext (no brackets, no backslash).
_LITERAL_RE = re.compile(r"\[[\x21-\x5a\x5e-\x7e]*\]")
# A source route "@a,@b:" (RFC 5321 §4.1.2 A-d-l, obsolete; §C says drop it).
_ROUTE_RE = re.compile(rf"@[{_ATEXT}.\[\]:]+(?:,\s*@[{_ATEXT}.\[\]:]+)*:")
# The common case, checked first: <dot-atom@domain> with nothing unusual.
_SIMPLE_MAILBOX_RE = re.compile(rf"[{_ATEXT}.]+@[{_ATEXT}]+(?:\.[{_ATEXT}]+)*")

# The common MAIL/RCPT argument, all ASCII: ``FROM:<dot-atom@domain> params`` (any case
# of the keyword, optional spaces).  ASCII only on purpose: no character in these classes
# is whitespace, ``<``, ``>`` or ``@``, so whatever this matches, ``strip_keyword`` +
# ``parse_path`` take the same way through (no stripping inside the brackets, no route,
# ``_SIMPLE_MAILBOX_RE``) and give the same result; anything else takes the full parser.
_ASCII_ATEXT = r"A-Za-z0-9!#$%&'*+\-/=?^_`{|}~"
_FAST_MAILBOX = rf"<([{_ASCII_ATEXT}.]+@[{_ASCII_ATEXT}]+(?:\.[{_ASCII_ATEXT}]+)*)>(.*)"
_FAST_PATH_ARGUMENTS = {
    "FROM:": re.compile(rf"[Ff][Rr][Oo][Mm]:\s*{_FAST_MAILBOX}", re.DOTALL),
    "TO:": re.compile(rf"[Tt][Oo]:\s*{_FAST_MAILBOX}", re.DOTALL),
}

# RFC 5321 §4.1.2: esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-");
# esmtp-value = 1*(%d33-60 / %d62-126), widened to non-ASCII for SMTPUTF8 (RFC 6531 §3.3).
_ESMTP_KEYWORD_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_ESMTP_VALUE_RE = re.compile(r"[\x21-\x3c\x3e-\x7e\u0080-\U0010ffff]+")


def strip_keyword(arg: str, keyword: str) -> str | None:
    """``"FROM:<a@b>"`` with keyword ``"FROM:"`` -> ``"<a@b>"``; ``None`` if absent.

    The keyword is matched case-insensitively; whitespace after it is skipped (1.4
    accepted ``MAIL FROM: <a@b>``). An empty remainder is returned as ``""``.
    """
    if arg[: len(keyword)].upper() != keyword:
        return None
    return arg[len(keyword) :].strip()


def parse_mailbox(text: str) -> str | None:
    """Parse an RFC 5321 Mailbox (or a bare local part); return its canonical form.

    A quoted local part that is also a valid dot-atom loses its quotes
    (``"john"@example.com`` -> ``john@example.com``); any other quoted local part keeps
    them, escapes included. Returns ``None`` if ``text`` is not a mailbox.
    """
    if _SIMPLE_MAILBOX_RE.fullmatch(text):
        return text
    if text.startswith('"'):
        quoted = _QUOTED_RE.match(text)
        if quoted is None:
            return None
        inner = quoted.group(1)
        rest = text[quoted.end() :]
        local = inner if inner and _DOT_ATOM_RE.fullmatch(inner) else quoted.group(0)
    else:
        at = text.rfind("@")
        local_text = text if at < 0 else text[:at]
        if not _LOCAL_DOTS_RE.fullmatch(local_text):
            return None
        local = local_text
        rest = "" if at < 0 else text[at:]
    if not rest:
        return local
    if rest[0] != "@":
        return None
    domain = rest[1:]
    if not (_DOMAIN_RE.fullmatch(domain) or _LITERAL_RE.fullmatch(domain)):
        return None
    return f"{local}@{domain}"


def parse_path(arg: str) -> tuple[str, str] | PathError:
    """Split a MAIL/RCPT argument (after ``FROM:``/``TO:``) into (address, parameters).

    ``<>`` gives the address ``"<>"`` (the null reverse-path, as 1.4 stored it). The
    parameter text is whatever follows the path, stripped; it may be empty.
    """
    text = arg.strip()
    if not text:
        return PathError.SYNTAX
    if text[0] == "<":
        close = text.find(">")
        if close < 0:
            return PathError.SYNTAX
        inner = text[1:close].strip()
        rest = text[close + 1 :].strip()
        if not inner:
            return "<>", rest
        route = _ROUTE_RE.match(inner)
        if route is not None:
            inner = inner[route.end() :].lstrip()
        if "<" in inner:
            return PathError.MALFORMED
        address = parse_mailbox(inner)
        if address is None:
            return PathError.MALFORMED
        return address, rest
    word, _, rest = text.partition(" ")
    if "<" in word or ">" in word or rest.lstrip().startswith("<"):
        # "Joe <a@b>": a display name, not a path.
        return PathError.SYNTAX
    address = parse_mailbox(word)
    if address is None:
        return PathError.MALFORMED
    return address, rest.strip()


def parse_path_argument(arg: str, keyword: str) -> tuple[str, str] | PathError:
    """A whole MAIL/RCPT argument (``"FROM:<a@b> SIZE=1"``) -> (address, parameters).

    Exactly ``parse_path(strip_keyword(arg, keyword))``, with a missing keyword or an
    empty path being ``PathError.SYNTAX``; ``keyword`` is ``"FROM:"`` or ``"TO:"`` (any
    other keyword is accepted and takes the general way).  The common all-ASCII form is
    matched by one regular expression.
    """
    fast = _FAST_PATH_ARGUMENTS.get(keyword)
    if fast is not None:
        match = fast.match(arg)
        if match is not None:
            address, params = match.groups()
            return address, params.strip()
    text = strip_keyword(arg, keyword)
    return parse_path(text) if text else PathError.SYNTAX


def local_part(address: str) -> str:
    """The local part of a canonical address (everything before the last ``@``)."""
    at = address.rfind("@")
    return address if at < 0 else address[:at]


@dataclass(frozen=True, slots=True)
class EsmtpParams:
    """Parsed ESMTP parameters of one MAIL or RCPT command."""

    #: Each parameter upper-cased, in order, as aiosmtpd 1.4 gave them to hooks
    #: (``["SIZE=20", "BODY=8BITMIME", "SMTPUTF8"]``).
    options: list[str]
    #: Upper-cased keyword -> value as sent (``True`` for a keyword without ``=``); a
    #: repeated keyword keeps its last value.
    values: dict[str, str | bool]


def parse_esmtp_params(text: str) -> EsmtpParams | None:
    """Parse ``"SIZE=10 BODY=8BITMIME"``; ``None`` if any parameter is malformed."""
    if not text:
        return EsmtpParams([], {})
    options: list[str] = []
    values: dict[str, str | bool] = {}
    for word in text.split():
        keyword, eq, value = word.partition("=")
        if not _ESMTP_KEYWORD_RE.fullmatch(keyword):
            return None
        if eq and not _ESMTP_VALUE_RE.fullmatch(value):
            return None
        options.append(word.upper())
        values[keyword.upper()] = value if eq else True
    return EsmtpParams(options, values)


_XTEXT_HEX_RE = re.compile(r"\+([0-9A-F]{2})")
_XTEXT_VALID_RE = re.compile(r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})*")


def decode_xtext(text: str) -> str | None:
    """Decode RFC 3461 §4 xtext (``"a+2Bb"`` -> ``"a+b"``); ``None`` if malformed."""
    if not _XTEXT_VALID_RE.fullmatch(text):
        return None
    return _XTEXT_HEX_RE.sub(lambda m: chr(int(m.group(1), 16)), text)


def encode_xtext(text: str) -> str:
    """Encode as RFC 3461 §4 xtext: ``+``, ``=``, controls and non-ASCII as ``+XX``."""
    out: list[str] = []
    for char in text:
        code = ord(char)
        if 0x21 <= code <= 0x7E and char not in "+=":
            out.append(char)
        else:
            out.extend(f"+{byte:02X}" for byte in char.encode("utf-8"))
    return "".join(out)


#: RFC 3461 §4.1: NOTIFY="NEVER" / 1#("SUCCESS" / "FAILURE" / "DELAY"), case-insensitive.
_NOTIFY_KEYWORDS = frozenset({"SUCCESS", "FAILURE", "DELAY"})
#: RFC 3461 §4.2 addr-type is an RFC 822 atom (no specials, no controls, no space).
_ADDR_TYPE_RE = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+")
#: RFC 3461 §4.2 / §4.4: the longest ORCPT and ENVID values (as sent, xtext-encoded).
ORCPT_MAX = 500
ENVID_MAX = 100


def parse_dsn_notify(value: str) -> str | None:
    """Validate an RFC 3461 §4.1 NOTIFY value; the upper-cased value or ``None``.

    ``NEVER`` must stand alone; the other keywords may be combined once each.
    """
    words = value.upper().split(",")
    if words == ["NEVER"]:
        return "NEVER"
    if not all(word in _NOTIFY_KEYWORDS for word in words) or len(set(words)) != len(words):
        return None
    return ",".join(words)


def parse_dsn_orcpt(value: str) -> str | None:
    """Validate and decode an RFC 3461 §4.2 ORCPT value: ``addr-type;xtext``.

    Returns ``"addr-type;decoded address"`` (case kept as sent) or ``None``.
    """
    if len(value) > ORCPT_MAX:
        return None
    addr_type, semicolon, xtext = value.partition(";")
    if not semicolon or not xtext or not _ADDR_TYPE_RE.fullmatch(addr_type):
        return None
    decoded = decode_xtext(xtext)
    return None if decoded is None else f"{addr_type};{decoded}"


def parse_dsn_envid(value: str) -> str | None:
    """Validate and decode an RFC 3461 §4.4 ENVID value (xtext, at most 100 characters)."""
    if not value or len(value) > ENVID_MAX:
        return None
    return decode_xtext(value)


def decode_sasl_line(line: bytes | str) -> bytes | None:
    """Decode one base64 SASL line (RFC 4954 §4); ``None`` if it is not valid base64.

    A lone ``=`` is the RFC's encoding of an empty response and decodes to ``b""``.
    Surrounding whitespace is ignored; whitespace inside is not (it is not base64).
    """
    data = line.strip().encode("ascii", "replace") if isinstance(line, str) else line.strip()
    if data == b"=":
        return b""
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None


def encode_sasl(data: bytes | str) -> str:
    """Base64-encode a SASL challenge (``str`` is encoded as UTF-8 first)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return base64.b64encode(raw).decode("ascii")
