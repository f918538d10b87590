"""Pure parser of the PROXY protocol header (haproxy's proxy-protocol.txt, versions 1 and 2).

Owns: recognising a v1 or v2 header at the start of a byte buffer, validating every field,
the TLV walker (with the SSL sub-TLVs), and CRC32C.

Contract: ``maybe_parse_proxy_header(buf)`` looks at the bytes received so far and returns
``None`` while more bytes are needed, or a ``ParsedProxyHeader`` that is either complete
(``error == ""``; ``consumed`` bytes belong to the header, the rest of ``buf`` is SMTP
traffic or a TLS handshake) or failed (``error`` names the reason; the connection must be
closed, ``consumed`` only says how much was looked at). It never raises for any input.

Invariants:
- A verdict is given as early as the bytes allow: a wrong signature after its first wrong
  byte, a v2 length over the cap as soon as the 16-byte fixed part is in, a v1 line with no
  LF in its first 107 bytes at once. So memory per connection is bounded by the caps below,
  and a client that speaks SMTP or TLS first is refused without waiting for a timeout.
- Error strings are aiosmtpd 1.4's (``PROXYv1 ...``, ``PROXYv2 ...``), plus three this
  implementation adds because it checks more: ``PROXYv2 header too long``,
  ``PROXYv2 malformed TLV`` and ``PROXYv2 CRC32C mismatch``.

Must not know: asyncio, sockets, logging, ``ProxyData`` (the public API builds that).
"""

from __future__ import annotations

import enum
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any, Final

V2_SIGNATURE: Final = b"\r\n\r\n\x00\r\nQUIT\n"
V1_SIGNATURE: Final = b"PROXY"

#: proxy-protocol.txt §2.1: "a receiver may reject an incomplete line which does not
#: contain the CRLF sequence in the first 107 characters" (the worst case, TCP6, is 104+CRLF).
V1_MAX_HEADER: Final = 107

#: The v2 fixed part: signature, version/command, family/protocol, 16-bit length.
V2_FIXED_SIZE: Final = 16

#: Cap on a whole v2 header (fixed part + addresses + TLVs). The 16-bit length would allow
#: 65551 bytes; a real sender needs far less (UNIX addresses are 216 bytes; haproxy's TLVs,
#: ALPN, AUTHORITY (SNI, <= 255), UNIQUE_ID (<= 128), SSL with its sub-TLVs, NETNS, CRC32C,
#: and the cloud vendors' TLVs add well under 2 KiB). One page keeps what a connection can
#: make the server buffer before it is authenticated small, with room to spare.
V2_MAX_HEADER: Final = 4096


class V2_CMD(enum.IntEnum):
    LOCAL = 0
    PROXY = 1


class AF(enum.IntEnum):
    UNSPEC = 0
    INET = 1
    INET6 = 2
    UNIX = 3


class PROTO(enum.IntEnum):
    UNSPEC = 0
    STREAM = 1
    DGRAM = 2


V2_VALID_CMDS: Final = {int(c) for c in V2_CMD}
V2_VALID_FAMS: Final = {int(f) for f in AF}
V2_VALID_PROS: Final = {int(p) for p in PROTO}

#: The address block layout of each (family << 4 | protocol) byte that carries addresses.
#: ``0x00`` (UNSPEC/UNSPEC) carries none; every other combination must be rejected (§2.2).
V2_PARSE_ADDR_FAMPRO: Final = {
    0x11: "!4s4sHH",
    0x12: "!4s4sHH",
    0x21: "!16s16sHH",
    0x22: "!16s16sHH",
    0x31: "!108s108s",
    0x32: "!108s108s",
}

PP2_TYPE_ALPN: Final = 0x01
PP2_TYPE_AUTHORITY: Final = 0x02
PP2_TYPE_CRC32C: Final = 0x03
PP2_TYPE_NOOP: Final = 0x04
PP2_TYPE_UNIQUE_ID: Final = 0x05
PP2_TYPE_SSL: Final = 0x20
PP2_TYPE_NETNS: Final = 0x30
#: ``pp2_tlv_ssl.client`` bit: the client connected over SSL/TLS.
PP2_CLIENT_SSL: Final = 0x01
#: ``pp2_tlv_ssl``: one byte of client flags, then a 32-bit verify result, then sub-TLVs.
SSL_FIXED_SIZE: Final = 5

PP2_TYPENAME: Final[dict[int, str]] = {
    0x01: "ALPN",
    0x02: "AUTHORITY",
    0x03: "CRC32C",
    0x04: "NOOP",
    0x05: "UNIQUE_ID",
    0x20: "SSL",
    0x21: "SSL_VERSION",
    0x22: "SSL_CN",
    0x23: "SSL_CIPHER",
    0x24: "SSL_SIG_ALG",
    0x25: "SSL_KEY_ALG",
    0x30: "NETNS",
}
PP2_TYPENUM: Final[dict[str, int]] = {name: num for num, name in PP2_TYPENAME.items()}

_TLV_HEADER = struct.Struct("!BH")
_V2_FIXED = struct.Struct("!12sBBH")


class MalformedTLV(RuntimeError):
    """A TLV's declared length runs past the end of its enclosing block."""


class UnknownTypeTLV(KeyError):
    """A TLV type outside ``PP2_TYPENAME`` met while parsing strictly."""


def tlv_name(tlv_type: int) -> str:
    """The ``PP2_TYPENAME`` name of ``tlv_type``, or ``"xNN"`` (two hex digits)."""
    return PP2_TYPENAME.get(tlv_type, f"x{tlv_type:02X}")


# ---------------------------------------------------------------------------------------
# CRC32C (Castagnoli), as PP2_TYPE_CRC32C requires; headers are small, so a table is enough.


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for index in range(256):
        crc = index
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE: Final = _crc32c_table()


def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC32C of ``data``; pass a previous result as ``crc`` to continue over more data."""
    table = _CRC32C_TABLE
    crc ^= 0xFFFFFFFF
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# ---------------------------------------------------------------------------------------
# TLVs


@dataclass(frozen=True, slots=True)
class RawTLV:
    """One top-level or SSL sub-TLV as found in a buffer."""

    #: The type byte.
    type: int
    #: Offset of the type byte, relative to the start of the buffer given to the walker.
    offset: int
    #: The value bytes.
    value: bytes


def iter_tlvs(data: bytes | bytearray, start: int = 0, end: int | None = None) -> Iterator[RawTLV]:
    """Walk the TLVs in ``data[start:end]``; raise ``MalformedTLV`` where one is cut short."""
    stop = len(data) if end is None else end
    pos = start
    while pos < stop:
        if stop - pos < _TLV_HEADER.size:
            raise MalformedTLV(f"TLV at offset {pos} is malformed!")
        tlv_type, length = _TLV_HEADER.unpack_from(data, pos)
        value_end = pos + _TLV_HEADER.size + length
        if value_end > stop:
            raise MalformedTLV(f"TLV 0x{tlv_type:02X} is malformed!")
        yield RawTLV(tlv_type, pos, bytes(data[pos + _TLV_HEADER.size : value_end]))
        pos = value_end


def parse_tlvs(
    data: bytes | bytearray, *, partial_ok: bool = True, strict: bool = False
) -> tuple[dict[str, Any], dict[str, int]]:
    """Parse a TLV block into ``({name: value}, {name: offset})`` the way 1.4's ProxyTLV does.

    The SSL TLV is flattened: ``SSL_CLIENT`` (the client flags byte), ``SSL_VERIFY`` (the
    verify result), ``SSL`` (whether the client connected over TLS, from ``SSL_CLIENT``) and
    each sub-TLV under its own name. A repeated type keeps its last value. Offsets are of
    the type byte within ``data``. ``partial_ok`` returns what precedes a malformed TLV
    instead of raising ``MalformedTLV``; ``strict`` raises ``UnknownTypeTLV`` on a type
    outside ``PP2_TYPENAME``.
    """
    values: dict[str, Any] = {}
    locations: dict[str, int] = {}
    try:
        for tlv in iter_tlvs(data):
            _store_tlv(tlv, values, locations, strict=strict)
            if tlv.type == PP2_TYPE_SSL:
                _store_ssl(tlv, values, locations, strict=strict)
    except MalformedTLV:
        if not partial_ok:
            raise
    return values, locations


def _store_tlv(
    tlv: RawTLV, values: dict[str, Any], locations: dict[str, int], *, strict: bool
) -> None:
    if strict and tlv.type not in PP2_TYPENAME:
        raise UnknownTypeTLV(tlv_name(tlv.type))
    name = tlv_name(tlv.type)
    locations[name] = tlv.offset
    if tlv.type != PP2_TYPE_SSL:
        values[name] = tlv.value


def _store_ssl(
    tlv: RawTLV, values: dict[str, Any], locations: dict[str, int], *, strict: bool
) -> None:
    if len(tlv.value) < SSL_FIXED_SIZE:
        raise MalformedTLV(f"TLV 0x{tlv.type:02X} is malformed!")
    client, verify = struct.unpack_from("!BI", tlv.value)
    values["SSL_CLIENT"] = client
    values["SSL_VERIFY"] = verify
    values["SSL"] = bool(client & PP2_CLIENT_SSL)
    sub_base = tlv.offset + _TLV_HEADER.size + SSL_FIXED_SIZE
    for sub in iter_tlvs(tlv.value, SSL_FIXED_SIZE):
        shifted = RawTLV(sub.type, sub_base + sub.offset - SSL_FIXED_SIZE, sub.value)
        _store_tlv(shifted, values, locations, strict=strict)


# ---------------------------------------------------------------------------------------
# The header


Address = IPv4Address | IPv6Address | bytes


@dataclass(frozen=True, slots=True)
class ParsedProxyHeader:
    """The verdict on a PROXY header; the fields mirror 1.4's ``ProxyData``."""

    #: 1 or 2; ``None`` when the signature matched neither.
    version: int | None
    #: Bytes of the buffer that form the header (on error: the bytes that were examined).
    consumed: int
    #: ``""`` when the header is valid, else the reason (one of the documented strings).
    error: str = ""
    #: v2 only: ``V2_CMD`` (LOCAL means "use the real connection endpoints").
    command: int | None = None
    family: int | None = None
    protocol: int | None = None
    #: IPv4Address/IPv6Address for INET/INET6, the NUL-trimmed path (bytes) for UNIX.
    src_addr: Address | None = None
    dst_addr: Address | None = None
    src_port: int | None = None
    dst_port: int | None = None
    #: v2: the TLV bytes after the addresses; v1 UNKNOWN: the text after ``UNKNOWN``.
    rest: bytes = b""
    #: The header bytes themselves.
    whole_raw: bytes = b""
    #: v2: offset of the TLV block within ``whole_raw``.
    tlv_start: int | None = None


def maybe_parse_proxy_header(buf: bytes | bytearray) -> ParsedProxyHeader | None:
    """Judge the PROXY header at the start of ``buf``; ``None`` means "need more bytes"."""
    head = bytes(buf[: len(V1_SIGNATURE)])
    if V1_SIGNATURE.startswith(head):
        return None if len(head) < len(V1_SIGNATURE) else _maybe_parse_v1(buf)
    if V2_SIGNATURE.startswith(head):
        return None if len(head) < len(V1_SIGNATURE) else _maybe_parse_v2(buf)
    return ParsedProxyHeader(
        version=None,
        consumed=max(_common_prefix(head, V1_SIGNATURE), _common_prefix(head, V2_SIGNATURE)) + 1,
        error="PROXY unrecognized signature",
    )


def _common_prefix(data: bytes, signature: bytes) -> int:
    """How many leading bytes of ``data`` match ``signature``."""
    for index, byte in enumerate(data[: len(signature)]):
        if byte != signature[index]:
            return index
    return min(len(data), len(signature))


# -- version 1 ---------------------------------------------------------------------------

_V1_ADDRESS_CHARS = re.compile(r"[0-9A-Fa-f:.]+")
#: Decimal, no sign, no leading zero (haproxy never sends one; it keeps the form canonical).
_V1_PORT = re.compile(r"0|[1-9][0-9]{0,4}")
_V1_FAMILIES: Final[dict[str, tuple[AF, type[IPv4Address | IPv6Address]]]] = {
    "4": (AF.INET, IPv4Address),
    "6": (AF.INET6, IPv6Address),
}


class _V1Error(Exception):
    """Internal: carries a v1 error string and the fields parsed before it."""

    def __init__(self, message: str, fields: dict[str, Any]) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields


def _maybe_parse_v1(buf: bytes | bytearray) -> ParsedProxyHeader | None:
    if len(buf) > len(V1_SIGNATURE) and buf[len(V1_SIGNATURE)] != ord(" "):
        return _v1_failure(buf[: len(V1_SIGNATURE) + 1], "PROXYv1 wrong signature", {})
    lf = buf.find(b"\n", 0, V1_MAX_HEADER)
    if lf < 0:
        if len(buf) >= V1_MAX_HEADER:
            return _v1_failure(buf[:V1_MAX_HEADER], "PROXYv1 header too long", {})
        return None
    whole = bytes(buf[: lf + 1])
    if buf[lf - 1] != ord("\r"):
        return _v1_failure(whole, "PROXYv1 malformed", {})
    fields: dict[str, Any] = {}
    try:
        _parse_v1_line(whole[len(V1_SIGNATURE) + 1 : -2].decode("latin-1"), fields)
    except _V1Error as exc:
        return _v1_failure(whole, exc.message, exc.fields)
    return ParsedProxyHeader(version=1, consumed=len(whole), whole_raw=whole, **fields)


def _v1_failure(
    whole: bytes | bytearray, message: str, fields: dict[str, Any]
) -> ParsedProxyHeader:
    raw = bytes(whole)
    return ParsedProxyHeader(version=1, consumed=len(raw), error=message, whole_raw=raw, **fields)


def _parse_v1_line(line: str, fields: dict[str, Any]) -> None:
    """Fill ``fields`` from ``<PROTO><FAM> <src> <dst> <sport> <dport>``; raise _V1Error."""
    proto_fam, _, _ = line.partition(" ")
    if proto_fam == "UNKNOWN":
        # §2.1: with UNKNOWN the receiver must ignore everything up to the CRLF.
        fields.update(family=AF.UNSPEC, protocol=PROTO.UNSPEC)
        fields["rest"] = line[len("UNKNOWN") :].encode("latin-1")
        return
    family_and_type = _V1_FAMILIES.get(proto_fam[-1:])
    if family_and_type is None:
        raise _V1Error("PROXYv1 unrecognized family", fields)
    family, address_type = family_and_type
    fields["family"] = family
    if proto_fam[:-1] != "TCP":
        raise _V1Error("PROXYv1 unrecognized protocol", fields)
    fields["protocol"] = PROTO.STREAM
    parts = line.split(" ")
    if len(parts) < 5:
        raise _V1Error("PROXYv1 malformed", fields)
    _, src, dst, src_port, dst_port, *extra = parts
    for key, text in (("src_addr", src), ("dst_addr", dst)):
        fields[key] = _v1_address(text, address_type, fields)
    if not (_V1_PORT.fullmatch(src_port) and _V1_PORT.fullmatch(dst_port)):
        raise _V1Error("PROXYv1 port malformed", fields)
    fields["src_port"] = int(src_port)
    fields["dst_port"] = int(dst_port)
    if fields["src_port"] > 0xFFFF:
        raise _V1Error("PROXYv1 src port out of bounds", fields)
    if fields["dst_port"] > 0xFFFF:
        raise _V1Error("PROXYv1 dst port out of bounds", fields)
    if extra:
        raise _V1Error("PROXYv1 unrecognized extraneous data", fields)


def _v1_address(
    text: str, address_type: type[IPv4Address | IPv6Address], fields: dict[str, Any]
) -> IPv4Address | IPv6Address:
    # The character check keeps out what ipaddress would also take (scope ids, "%eth0").
    if not _V1_ADDRESS_CHARS.fullmatch(text):
        raise _V1Error("PROXYv1 address malformed", fields)
    try:
        address = ip_address(text)
    except ValueError:
        raise _V1Error("PROXYv1 address malformed", fields) from None
    if not isinstance(address, address_type):
        raise _V1Error(f"PROXYv1 address not IPv{address_type(0).version}", fields)
    return address


# -- version 2 ---------------------------------------------------------------------------


def _maybe_parse_v2(buf: bytes | bytearray) -> ParsedProxyHeader | None:
    matching = _common_prefix(bytes(buf[: len(V2_SIGNATURE)]), V2_SIGNATURE)
    if matching < min(len(buf), len(V2_SIGNATURE)):
        return _v2_failure(bytes(buf[: matching + 1]), "PROXYv2 wrong signature")
    if len(buf) < V2_FIXED_SIZE:
        return None
    _, ver_cmd, fam_pro, length = _V2_FIXED.unpack_from(buf)
    fixed = bytes(buf[:V2_FIXED_SIZE])
    if ver_cmd >> 4 != 2:
        return _v2_failure(fixed, "PROXYv2 illegal version")
    command = ver_cmd & 0x0F
    if command not in V2_VALID_CMDS:
        return _v2_failure(fixed, "PROXYv2 unsupported command", command=command)
    cmd = V2_CMD(command)
    family, protocol = fam_pro >> 4, fam_pro & 0x0F
    if family not in V2_VALID_FAMS:
        return _v2_failure(fixed, "PROXYv2 unsupported family", command=cmd, family=family)
    fam = AF(family)
    if protocol not in V2_VALID_PROS:
        return _v2_failure(
            fixed, "PROXYv2 unsupported protocol", command=cmd, family=fam, protocol=protocol
        )
    proto = PROTO(protocol)
    if fam_pro != 0 and fam_pro not in V2_PARSE_ADDR_FAMPRO:
        # §2.2: only UNSPEC/UNSPEC and the six real pairs exist; others must be rejected.
        reason = "protocol" if proto == PROTO.UNSPEC else "family"
        return _v2_failure(
            fixed, f"PROXYv2 unsupported {reason}", command=cmd, family=fam, protocol=proto
        )
    total = V2_FIXED_SIZE + length
    if total > V2_MAX_HEADER:
        return _v2_failure(
            fixed, "PROXYv2 header too long", command=cmd, family=fam, protocol=proto
        )
    if len(buf) < total:
        return None
    return _parse_v2_block(bytes(buf[:total]), cmd, fam, proto, fam_pro)


def _v2_failure(whole: bytes, message: str, **fields: Any) -> ParsedProxyHeader:
    return ParsedProxyHeader(
        version=2, consumed=len(whole), error=message, whole_raw=whole, **fields
    )


def _parse_v2_block(
    whole: bytes, command: V2_CMD, family: AF, protocol: PROTO, fam_pro: int
) -> ParsedProxyHeader:
    known = {"command": command, "family": family, "protocol": protocol}
    addresses: dict[str, Any] = {}
    address_size = 0
    address_format = V2_PARSE_ADDR_FAMPRO.get(fam_pro)
    if address_format is not None:
        address_size = struct.calcsize(address_format)
        if len(whole) - V2_FIXED_SIZE < address_size:
            return _v2_failure(whole, "PROXYv2 truncated address", **known)
        addresses = _v2_addresses(family, struct.unpack_from(address_format, whole, 16))
    tlv_start = V2_FIXED_SIZE + address_size
    fields = dict(known, **addresses, rest=whole[tlv_start:], tlv_start=tlv_start)
    try:
        crc_tlvs = [t for t in iter_tlvs(whole, tlv_start) if t.type == PP2_TYPE_CRC32C]
        parse_tlvs(whole[tlv_start:], partial_ok=False)
    except MalformedTLV:
        return _v2_failure(whole, "PROXYv2 malformed TLV", **fields)
    for crc_tlv in crc_tlvs:
        if len(crc_tlv.value) != 4:
            return _v2_failure(whole, "PROXYv2 malformed TLV", **fields)
        if not _crc_matches(whole, crc_tlv):
            return _v2_failure(whole, "PROXYv2 CRC32C mismatch", **fields)
    return ParsedProxyHeader(version=2, consumed=len(whole), whole_raw=whole, **fields)


def _v2_addresses(family: AF, unpacked: tuple[Any, ...]) -> dict[str, Any]:
    if family == AF.UNIX:
        src, dst = (path.partition(b"\x00")[0] for path in unpacked)
        return {"src_addr": src, "dst_addr": dst}
    address_type = IPv4Address if family == AF.INET else IPv6Address
    src, dst, src_port, dst_port = unpacked
    return {
        "src_addr": address_type(src),
        "dst_addr": address_type(dst),
        "src_port": src_port,
        "dst_port": dst_port,
    }


def _crc_matches(whole: bytes, crc_tlv: RawTLV) -> bool:
    """§2.2.5: the CRC covers the whole header with the checksum field itself zeroed."""
    value_at = crc_tlv.offset + _TLV_HEADER.size
    zeroed = whole[:value_at] + b"\x00\x00\x00\x00" + whole[value_at + 4 :]
    return crc32c(zeroed) == int.from_bytes(crc_tlv.value, "big")
