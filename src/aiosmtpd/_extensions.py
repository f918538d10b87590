"""The opt-in ESMTP extensions' switches, EHLO lines and MAIL/RCPT parameters:
ENHANCEDSTATUSCODES (RFC 2034), DSN (RFC 3461), REQUIRETLS (RFC 8689), CHUNKING and
``BODY=BINARYMIME`` (RFC 3030; BDAT itself is in ``_chunking``).

Owns: ``ExtensionsMixin`` (the switches' defaults, which extension is offered when, and
the EHLO lines), and, as pure functions, taking the parameters of the *enabled*
extensions out of a command's parameter table, validating them (a named 501 reply on a
bad or repeated value) and producing the option list handed to ``handle_MAIL`` /
``handle_RCPT`` and kept on the envelope.
Invariants: a parameter of an extension that is not enabled is left in the table, so the
caller answers it 555 as aiosmtpd 1.4 did (DECISIONS row 12).  Options keep 1.4's form,
``KEY=VALUE`` upper-cased, except the values of ENVID and ORCPT: they are case-sensitive
(RFC 3461 §4.2, §4.4), so they keep the case sent and are xtext-decoded.
Must not know: transports, hooks, reply sending (the functions know no session either).
"""

from __future__ import annotations

from ._core import replies as R
from ._core import syntax as S
from ._engine import SessionEngine

__all__ = ["ExtensionsMixin", "take_mail_params", "take_rcpt_params"]

_DSN_MAIL = ("RET", "ENVID")
_DSN_RCPT = ("NOTIFY", "ORCPT")

#: Octets MAIL may grow by when DSN is advertised: `` RET=HDRS ENVID=`` plus the 100
#: characters of ENVID (RFC 3461 §4.4); RCPT: `` NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=``
#: plus the 500 of ORCPT (RFC 3461 §4.2).  REQUIRETLS adds `` REQUIRETLS`` to MAIL.
DSN_MAIL_EXTRA = 16 + S.ENVID_MAX
DSN_RCPT_EXTRA = 36 + S.ORCPT_MAX
REQUIRETLS_MAIL_EXTRA = 11


class ExtensionsMixin(SessionEngine):
    """Mixed into ``SMTP``: which opt-in extension is offered, and its EHLO line."""

    # The switches (keyword arguments of ``SMTP`` with the same names).  Class-level
    # defaults: only a switched-on one takes a slot in a connection's instance dict.
    enable_DSN = False
    enable_REQUIRETLS = False
    enable_CHUNKING = False
    _decode_data: bool

    def _extension_ehlo_lines(self) -> list[str]:
        """The opt-in extensions' EHLO lines (all off by default: 1.4's EHLO unchanged)."""
        lines = []
        if self.enhanced_status_codes:
            lines.append("250-ENHANCEDSTATUSCODES")
        if self.enable_DSN:
            lines.append("250-DSN")
        if self.enable_CHUNKING:
            lines.append("250-CHUNKING")
            if not self._decode_data:
                lines.append("250-BINARYMIME")
        if self._requiretls_offered():
            lines.append("250-REQUIRETLS")
        return lines

    def _requiretls_offered(self) -> bool:
        """RFC 8689 §4: REQUIRETLS is offered only on a connection already under TLS."""
        return self.enable_REQUIRETLS and self._tls_active

    def _binarymime_offered(self) -> bool:
        return self.enable_CHUNKING and not self._decode_data


def _duplicate(options: list[str], keywords: tuple[str, ...]) -> R.Reply | None:
    seen: set[str] = set()
    for option in options:
        keyword = option.partition("=")[0]
        if keyword in keywords:
            if keyword in seen:
                return R.DUPLICATE_PARAMETER.with_text(
                    R.DUPLICATE_PARAMETER.text.format(keyword=keyword)
                )
            seen.add(keyword)
    return None


def _with_values(options: list[str], values: dict[str, str]) -> list[str]:
    """``options`` with ``KEY=...`` replaced by ``KEY=values[KEY]`` for the given keys."""
    if not values:
        return options
    out = []
    for option in options:
        keyword = option.partition("=")[0]
        out.append(f"{keyword}={values[keyword]}" if keyword in values else option)
    return out


def take_mail_params(
    values: dict[str, str | bool], options: list[str], *, dsn: bool, requiretls: bool
) -> R.Reply | list[str]:
    """Take RET/ENVID (if ``dsn``) and REQUIRETLS (if ``requiretls``) out of ``values``.

    Returns the reply to refuse the command with, or the options to pass to the hook.
    """
    keywords = (_DSN_MAIL if dsn else ()) + (("REQUIRETLS",) if requiretls else ())
    duplicate = _duplicate(options, keywords)
    if duplicate is not None:
        return duplicate
    kept: dict[str, str] = {}
    if dsn:
        ret = values.pop("RET", None)
        if ret is not None and (not isinstance(ret, str) or ret.upper() not in ("FULL", "HDRS")):
            return R.DSN_BAD_RET
        envid = values.pop("ENVID", None)
        if envid is not None:
            decoded = S.parse_dsn_envid(envid) if isinstance(envid, str) else None
            if decoded is None:
                return R.DSN_BAD_ENVID
            kept["ENVID"] = decoded
    if requiretls and values.pop("REQUIRETLS", None) not in (None, True):
        return R.REQUIRETLS_NO_ARGS
    return _with_values(options, kept)


def take_rcpt_params(
    values: dict[str, str | bool], options: list[str], *, dsn: bool
) -> R.Reply | list[str]:
    """Take NOTIFY/ORCPT (if ``dsn``) out of ``values``; see ``take_mail_params``."""
    if not dsn:
        return options
    duplicate = _duplicate(options, _DSN_RCPT)
    if duplicate is not None:
        return duplicate
    kept: dict[str, str] = {}
    notify = values.pop("NOTIFY", None)
    if notify is not None and (not isinstance(notify, str) or S.parse_dsn_notify(notify) is None):
        return R.DSN_BAD_NOTIFY
    orcpt = values.pop("ORCPT", None)
    if orcpt is not None:
        decoded = S.parse_dsn_orcpt(orcpt) if isinstance(orcpt, str) else None
        if decoded is None:
            return R.DSN_BAD_ORCPT
        kept["ORCPT"] = decoded
    return _with_values(options, kept)
