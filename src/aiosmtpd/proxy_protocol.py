"""The PROXY protocol (haproxy's proxy-protocol.txt, v1 and v2): aiosmtpd 1.4's public API.

Owns: ``ProxyData`` (what a connection's PROXY header said), ``ProxyTLV`` (its v2 TLVs by
name), ``get_proxy`` (1.4's reader-based entry point) and ``parse_proxy_header``, the entry
point for the asyncio adapter. All parsing is done by the pure ``aiosmtpd._core.proxy``.

For the adapter (``aiosmtpd.smtp``), on a connection that must start with a PROXY header::

    result = parse_proxy_header(receive_buffer)   # bytes | bytearray received so far
    if result is None:        # need more bytes (apply proxy_protocol_timeout meanwhile)
        ...
    elif not result.proxy_data.valid:   # error already logged on mail.debug; close
        ...
    else:                     # session.proxy_data = result.proxy_data
        del receive_buffer[: result.consumed]   # the rest is SMTP (or a TLS handshake)

The verdict comes as early as the bytes allow (see ``aiosmtpd._core.proxy``), so the
adapter need not cap the buffer itself: a v1 header is at most 107 bytes, a v2 header at
most ``V2_MAX_HEADER`` (4096) bytes, and anything longer is an error at once.

Deliberate differences from 1.4 (each tested): a v2 header is refused when a TLV is cut
short (``PROXYv2 malformed TLV``), when its CRC32C TLV does not match (``PROXYv2 CRC32C
mismatch``), when it is longer than ``V2_MAX_HEADER`` (``PROXYv2 header too long``), or when
its family/protocol pair is not one of the seven the spec allows; a v1 line with too few
fields is ``PROXYv1 malformed`` (1.4 failed with an internal exception); UNIX paths are
NUL-trimmed; ``tlv.SSL`` follows the TLV's PP2_CLIENT_SSL bit (haproxy sends the SSL TLV
with the bit clear for plain TCP clients, where 1.4 said True); ``tlv_loc`` gives SSL
sub-TLVs their own offsets; ``tlv_start`` is set for UNSPEC too.

Invariants: errors are logged once, as WARNING ``PROXY error: <reason>`` on ``mail.debug``;
``get_proxy`` never reads past the header (so what follows stays in the reader).
Must not know: SMTP, sessions, transports.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from functools import partial
from ipaddress import IPv4Address, IPv6Address
from typing import Any, Protocol

import attrs
from public import public

from ._core import proxy as _proxy
from ._core.proxy import (
    PP2_TYPENAME,
    PP2_TYPENUM,
    V2_CMD,
    V2_FIXED_SIZE,
    V2_PARSE_ADDR_FAMPRO,
    V2_SIGNATURE,
    V2_VALID_CMDS,
    V2_VALID_FAMS,
    V2_VALID_PROS,
    Address,
    MalformedTLV,
    ParsedProxyHeader,
    UnknownTypeTLV,
    maybe_parse_proxy_header,
    parse_tlvs,
)

# Module-level in 1.4 but outside __all__.
AF = _proxy.AF
PROTO = _proxy.PROTO
#: The cap on a whole v2 header, in bytes (see ``aiosmtpd._core.proxy``).
V2_MAX_HEADER = _proxy.V2_MAX_HEADER

# 1.4's __all__, in 1.4's order; AF, PROTO, parse_proxy_header and the rest stay outside.
__all__ = ["struct", "partial", "IPv4Address", "IPv6Address"]  # noqa: RUF022
public(
    V2_SIGNATURE=V2_SIGNATURE,
    V2_CMD=V2_CMD,
    V2_VALID_CMDS=V2_VALID_CMDS,
    V2_VALID_FAMS=V2_VALID_FAMS,
    V2_VALID_PROS=V2_VALID_PROS,
    V2_PARSE_ADDR_FAMPRO=V2_PARSE_ADDR_FAMPRO,
    MalformedTLV=MalformedTLV,
    UnknownTypeTLV=UnknownTypeTLV,
)

log = logging.getLogger("mail.debug")

_TAIL_LOST = "Connection lost while waiting for tail part"
_NOT_FOUND = object()


@public
class AsyncReader(Protocol):
    """What ``get_proxy`` reads from: an ``asyncio.StreamReader`` or anything alike."""

    # Positional-only, so that asyncio.StreamReader (``n``) and others all match.
    async def read(self, n: int = -1, /) -> bytes: ...

    async def readexactly(self, n: int, /) -> bytes: ...

    async def readuntil(self, separator: bytes = b"\n", /) -> bytes: ...


def _compare(name: str, actual: Any, expected: Any, *, raises: bool) -> bool:
    if actual is _NOT_FOUND:
        if raises:
            raise KeyError(f"notfound:{name}")
        return False
    if actual != expected:
        if raises:
            raise ValueError(f"mismatch:{name} actual={actual!r} expect={expected!r}")
        return False
    return True


@public
class ProxyTLV(dict[str, Any]):
    """The TLVs of a v2 header by name; ``tlv.ALPN`` is ``tlv.get("ALPN")``.

    Names are ``PP2_TYPENAME``'s, or ``"xNN"`` (hex) for other types. The SSL TLV becomes
    ``SSL`` (the client connected over TLS), ``SSL_CLIENT`` (flags byte), ``SSL_VERIFY``
    (verify result, 0 = success) and its sub-TLVs (``SSL_VERSION``, ``SSL_CN``, ...).
    ``tlv_loc`` maps each name to the offset of its type byte in the parsed block.
    """

    PP2_TYPENAME = PP2_TYPENAME

    def __init__(self, *args: Any, _tlv_loc: dict[str, int] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tlv_loc: dict[str, int] = {} if _tlv_loc is None else _tlv_loc

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            # Keep copy/pickle protocol probes (``__deepcopy__``...) honest.
            raise AttributeError(name)
        return self.get(name)

    def same_attribs(self, _raises: bool = False, **kwargs: Any) -> bool:
        """Whether every ``name=value`` matches; with ``_raises``, say which one does not."""
        return all(
            _compare(name, self.get(name, _NOT_FOUND), value, raises=_raises)
            for name, value in kwargs.items()
        )

    @classmethod
    def parse(
        cls, data: bytes | bytearray, partial_ok: bool = True, strict: bool = False
    ) -> tuple[dict[str, Any], dict[str, int]]:
        """``({name: value}, {name: offset})`` of a TLV block (see ``_core.proxy``)."""
        return parse_tlvs(data, partial_ok=partial_ok, strict=strict)

    @classmethod
    def from_raw(cls, raw: bytes | bytearray, strict: bool = False) -> ProxyTLV | None:
        """A ``ProxyTLV`` of a whole TLV block; ``None`` if it is empty.

        Raises ``MalformedTLV`` if the block is cut short, ``UnknownTypeTLV`` if ``strict``
        and a type is unknown.
        """
        if not raw:
            return None
        values, locations = cls.parse(raw, partial_ok=False, strict=strict)
        return cls(values, _tlv_loc=locations)

    @classmethod
    def name_to_num(cls, name: str) -> int | None:
        """The type number of a ``PP2_TYPENAME`` name, else ``None``."""
        return PP2_TYPENUM.get(name)


@public
@attrs.define(slots=True)
class ProxyData:
    """What a PROXY header told about the connection (1.4's class, same fields).

    ``valid`` (and truthiness) means: parsed without error. For v2 with ``command`` LOCAL
    the sender asks for the real connection endpoints to be used; addresses may be absent.
    """

    version: int | None = attrs.field(kw_only=True)
    command: int | None = attrs.field(init=False, default=None)
    family: int | None = attrs.field(init=False, default=None)
    protocol: int | None = attrs.field(init=False, default=None)
    src_addr: Address | None = attrs.field(init=False, default=None)
    dst_addr: Address | None = attrs.field(init=False, default=None)
    src_port: int | None = attrs.field(init=False, default=None)
    dst_port: int | None = attrs.field(init=False, default=None)
    rest: bytes | bytearray = attrs.field(init=False, default=b"")
    whole_raw: bytearray = attrs.field(init=False, factory=bytearray)
    tlv_start: int | None = attrs.field(init=False, default=None)
    error: str = attrs.field(init=False, default="")
    _tlv: ProxyTLV | None = attrs.field(init=False, default=None, eq=False)

    @property
    def valid(self) -> bool:
        return not (self.error or self.version is None or self.protocol is None)

    @property
    def tlv(self) -> ProxyTLV | None:
        """The v2 TLVs (``None`` for v1, for none, or for a block that does not parse)."""
        if self._tlv is None and self.version == 2:
            try:
                self._tlv = ProxyTLV.from_raw(self.rest)
            except MalformedTLV:
                return None
        return self._tlv

    def with_error(self, error_msg: str, log_prefix: bool = True) -> ProxyData:
        """Record ``error_msg``, log it as WARNING on ``mail.debug``, return ``self``."""
        self.error = error_msg
        if log_prefix:
            log.warning("PROXY error: %s", error_msg)
        else:
            log.warning(error_msg)
        return self

    def same_attribs(self, _raises: bool = False, **kwargs: Any) -> bool:
        """Whether every ``name=value`` matches; with ``_raises``, say which one does not."""
        return all(
            _compare(name, getattr(self, name, _NOT_FOUND), value, raises=_raises)
            for name, value in kwargs.items()
        )

    def __bool__(self) -> bool:
        return self.valid


def _to_proxy_data(parsed: ParsedProxyHeader) -> ProxyData:
    data = ProxyData(version=parsed.version)
    data.command = parsed.command
    data.family = parsed.family
    data.protocol = parsed.protocol
    data.src_addr = parsed.src_addr
    data.dst_addr = parsed.dst_addr
    data.src_port = parsed.src_port
    data.dst_port = parsed.dst_port
    data.rest = parsed.rest
    data.whole_raw = bytearray(parsed.whole_raw)
    data.tlv_start = parsed.tlv_start
    if parsed.error:
        data.with_error(parsed.error)
    return data


@dataclass(frozen=True, slots=True)
class ProxyParseResult:
    """A verdict of ``parse_proxy_header``."""

    #: The header's content; ``proxy_data.valid`` is false (and ``.error`` says why) if the
    #: header is bad, in which case the connection must be closed.
    proxy_data: ProxyData
    #: How many bytes of the buffer the header took (on error: how many were examined).
    consumed: int


def parse_proxy_header(buf: bytes | bytearray) -> ProxyParseResult | None:
    """Judge the PROXY header at the start of ``buf``; ``None`` means "need more bytes".

    Pure apart from logging the error, if any, on ``mail.debug``. Never raises.
    """
    parsed = maybe_parse_proxy_header(buf)
    if parsed is None:
        return None
    return ProxyParseResult(_to_proxy_data(parsed), parsed.consumed)


async def _read_fully(reader: AsyncReader, num_bytes: int) -> bytes:
    """``num_bytes`` through ``read`` (which may return less); lost connection raises."""
    chunks = bytearray()
    while len(chunks) < num_bytes:
        chunk = await reader.read(num_bytes - len(chunks))
        if not chunk:
            raise ConnectionError(_TAIL_LOST)
        chunks += chunk
    return bytes(chunks)


async def _read_header(reader: AsyncReader) -> ParsedProxyHeader:
    """Read exactly the header's bytes from ``reader`` and judge them."""
    buf = bytearray(await reader.readexactly(5))
    parsed = maybe_parse_proxy_header(buf)
    if parsed is None and buf.startswith(b"PROXY"):
        buf += await reader.readuntil(b"\r\n")
        parsed = maybe_parse_proxy_header(buf)
    elif parsed is None:
        buf += await _read_fully(reader, V2_FIXED_SIZE - len(buf))
        parsed = maybe_parse_proxy_header(buf)
        if parsed is None:
            (length,) = struct.unpack_from("!H", buf, V2_FIXED_SIZE - 2)
            buf += await _read_fully(reader, length)
            parsed = maybe_parse_proxy_header(buf)
    if parsed is None:  # only a reader that breaks its own contract gets here
        raise ConnectionError(_TAIL_LOST)
    return parsed


@public
async def get_proxy(reader_func: AsyncReader) -> ProxyData:
    """Read and parse a PROXY header from ``reader_func``; never reads past it.

    A failure to read (connection lost, reader limit) gives a ``ProxyData`` whose error is
    ``PROXY exception: <what happened>``; a bad header gives the parser's error.
    """
    try:
        parsed = await _read_header(reader_func)
    except Exception as exc:
        return ProxyData(version=None).with_error(f"PROXY exception: {exc}", log_prefix=False)
    return _to_proxy_data(parsed)
