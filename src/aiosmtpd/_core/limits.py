"""Every protocol limit the core enforces, as a named constant citing where it comes from.

Owns: the default numbers behind ``CoreConfig`` and the allowances the adapter adds.
Invariants: lengths are in octets and, unless a name says otherwise, include the CRLF that
ends the line, because that is how RFC 5321 §4.5.3.1 states them.
Must not know: how the limits are enforced (connection.py, data.py) or reported.
"""

from __future__ import annotations

from typing import Final

#: RFC 5321 §4.5.3.1.4: "The maximum total length of a command line including the command
#: word and the <CRLF> is 512 octets."
COMMAND_LINE_LIMIT: Final = 512

#: RFC 1870 §3 (SIZE): a server advertising SIZE must accept a MAIL command line that is
#: 26 octets longer (" SIZE=" and up to 20 digits).
SIZE_EXTENSION_ALLOWANCE: Final = 26

#: RFC 6531 §3.4 (SMTPUTF8): the MAIL command line may be 10 octets longer (" SMTPUTF8").
SMTPUTF8_EXTENSION_ALLOWANCE: Final = 10

#: RFC 4954 §4: the AUTH command line and each continuation line may be up to 12,288 octets
#: (the limit the RFC asks servers to accept), including the CRLF.
AUTH_LINE_LIMIT: Final = 12_288

#: RFC 5321 §4.5.3.1.6 sets 1000 octets including CRLF as the text line limit; aiosmtpd 1.4
#: enforced 1001 (its StreamReader limit) and answered lines of 1000 characters plus CRLF
#: with 500, so 1001 is kept: a line of 999 characters plus CRLF is the longest accepted.
DATA_LINE_LIMIT: Final = 1001

#: aiosmtpd 1.4's ``DATA_SIZE_DEFAULT`` (32 MiB), the size advertised with SIZE (RFC 1870).
DATA_SIZE_LIMIT: Final = 33_554_432

#: RFC 5321 §4.5.2: the DATA terminator is a line holding one period, so with the CRLF that
#: ends the previous line the end-of-data indication is exactly these five octets.
DATA_TERMINATOR: Final = b"\r\n.\r\n"
