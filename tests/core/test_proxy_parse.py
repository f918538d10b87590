"""The pure PROXY header parser: v1, v2, TLVs, CRC32C, limits; fed whole, split, and fuzzed."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiosmtpd._core.proxy import (
    AF,
    PROTO,
    V1_MAX_HEADER,
    V2_CMD,
    V2_MAX_HEADER,
    V2_SIGNATURE,
    MalformedTLV,
    ParsedProxyHeader,
    UnknownTypeTLV,
    crc32c,
    iter_tlvs,
    maybe_parse_proxy_header,
    parse_tlvs,
    tlv_name,
)

SMTP_AFTER = b"EHLO client.example\r\n"


# -- builders ------------------------------------------------------------------------------


def tlv(tlv_type: int, value: bytes) -> bytes:
    return struct.pack("!BH", tlv_type, len(value)) + value


def ssl_tlv(client: int, verify: int, *subs: bytes) -> bytes:
    return tlv(0x20, struct.pack("!BI", client, verify) + b"".join(subs))


def inet4_block(src: str = "192.0.2.1", dst: str = "198.51.100.2", sport=56324, dport=25):
    return IPv4Address(src).packed + IPv4Address(dst).packed + struct.pack("!HH", sport, dport)


def inet6_block(src: str = "2001:db8::1", dst: str = "2001:db8::2", sport=56324, dport=25):
    return IPv6Address(src).packed + IPv6Address(dst).packed + struct.pack("!HH", sport, dport)


def unix_block(src: bytes = b"/run/client.sock", dst: bytes = b"/run/smtpd.sock") -> bytes:
    return src.ljust(108, b"\x00") + dst.ljust(108, b"\x00")


def v2_header(
    *,
    ver_cmd: int = 0x21,
    fam_pro: int = 0x11,
    addresses: bytes | None = None,
    tlvs: bytes = b"",
    crc: bool = False,
    length: int | None = None,
) -> bytes:
    """A v2 header as haproxy builds it; with ``crc``, a CRC32C TLV goes first and is filled in."""
    if addresses is None:
        addresses = {0x11: inet4_block, 0x21: inet6_block, 0x31: unix_block}.get(
            fam_pro, lambda: b""
        )()
    if crc:
        tlvs = tlv(0x03, b"\x00" * 4) + tlvs
    block = addresses + tlvs
    size = len(block) if length is None else length
    header = bytearray(V2_SIGNATURE + struct.pack("!BBH", ver_cmd, fam_pro, size) + block)
    if crc:
        at = 16 + len(addresses) + 3
        header[at : at + 4] = crc32c(header).to_bytes(4, "big")
    return bytes(header)


def first_verdict(data: bytes, cuts: list[int]) -> tuple[ParsedProxyHeader | None, bytes]:
    """Feed ``data`` in pieces ending at ``cuts`` as an adapter would; the verdict and leftover."""
    buf = bytearray()
    previous = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        buf += data[previous:cut]
        previous = max(previous, cut)
        verdict = maybe_parse_proxy_header(buf)
        if verdict is not None:
            return verdict, bytes(buf[verdict.consumed :]) + data[previous:]
    return None, bytes(buf)


def assert_same_every_way(data: bytes) -> ParsedProxyHeader | None:
    """Whole and byte-by-byte feeding give the same verdict, at the same byte."""
    whole = maybe_parse_proxy_header(data)
    verdict, _ = first_verdict(data, list(range(len(data))))
    assert verdict == whole
    return whole


# -- version 1 -----------------------------------------------------------------------------

LONGEST_TCP6 = (
    b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
    b" 65535 65535\r\n"
)
LONGEST_UNKNOWN = LONGEST_TCP6.replace(b"TCP6", b"UNKNOWN")


@pytest.mark.parametrize(
    ("header", "family", "src", "dst", "sport", "dport"),
    [
        (
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
            AF.INET,
            IPv4Address("192.168.0.1"),
            IPv4Address("192.168.0.11"),
            56324,
            443,
        ),
        (
            b"PROXY TCP6 2001:db8::1 ::ffff:192.0.2.1 0 65535\r\n",
            AF.INET6,
            IPv6Address("2001:db8::1"),
            IPv6Address("::ffff:192.0.2.1"),
            0,
            65535,
        ),
        (
            LONGEST_TCP6,
            AF.INET6,
            IPv6Address("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            IPv6Address("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            65535,
            65535,
        ),
    ],
)
def test_v1_tcp(header, family, src, dst, sport, dport):
    result = assert_same_every_way(header + SMTP_AFTER)
    assert result is not None
    assert (result.error, result.version, result.consumed) == ("", 1, len(header))
    assert (result.family, result.protocol, result.command) == (family, PROTO.STREAM, None)
    assert (result.src_addr, result.dst_addr) == (src, dst)
    assert (result.src_port, result.dst_port) == (sport, dport)
    assert result.whole_raw == header


@pytest.mark.parametrize(
    ("header", "rest"),
    [
        (b"PROXY UNKNOWN\r\n", b""),
        (b"PROXY UNKNOWN 1.2.3.4 whatever\r\n", b" 1.2.3.4 whatever"),
        (LONGEST_UNKNOWN, LONGEST_UNKNOWN[len(b"PROXY UNKNOWN") : -2]),
    ],
)
def test_v1_unknown_ignores_the_rest_of_the_line(header, rest):
    result = assert_same_every_way(header + SMTP_AFTER)
    assert result is not None
    assert (result.error, result.family, result.protocol) == ("", AF.UNSPEC, PROTO.UNSPEC)
    assert (result.rest, result.consumed, result.src_addr) == (rest, len(header), None)


def test_v1_length_limit_under_at_over():
    assert len(LONGEST_UNKNOWN) == V1_MAX_HEADER
    under = LONGEST_UNKNOWN[:-3] + b"\r\n"
    for header in (under, LONGEST_UNKNOWN):
        result = maybe_parse_proxy_header(header)
        assert result is not None
        assert result.error == ""
    over = LONGEST_UNKNOWN[:-2] + b"f\r\n"
    result = maybe_parse_proxy_header(over)
    assert result is not None
    assert result.error == "PROXYv1 header too long"
    # Decided as soon as 107 bytes without a line end are in, not later.
    assert maybe_parse_proxy_header(over[: V1_MAX_HEADER - 1]) is None
    result = maybe_parse_proxy_header(over[:V1_MAX_HEADER])
    assert result is not None
    assert result.error == "PROXYv1 header too long"


V1_ERRORS = [
    (b"PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n", "PROXYv1 wrong signature"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "PROXYv1 malformed"),
    (b"PROXY TCP4\r\n", "PROXYv1 malformed"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "PROXYv1 malformed"),
    (b"PROXY \r\n", "PROXYv1 unrecognized family"),
    (b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "PROXYv1 unrecognized family"),
    (b"PROXY UNKNOWNX\r\n", "PROXYv1 unrecognized family"),
    (b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", "PROXYv1 unrecognized protocol"),
    (b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", "PROXYv1 unrecognized protocol"),
    (b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", "PROXYv1 address malformed"),
    (b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", "PROXYv1 address malformed"),
    (b"PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n", "PROXYv1 address malformed"),
    (b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", "PROXYv1 address malformed"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.\xff 1 2\r\n", "PROXYv1 address malformed"),
    (b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "PROXYv1 address not IPv4"),
    (b"PROXY TCP4 1.2.3.4 ::1 1 2\r\n", "PROXYv1 address not IPv4"),
    (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "PROXYv1 address not IPv6"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "PROXYv1 port malformed"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 -2\r\n", "PROXYv1 port malformed"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 x 2\r\n", "PROXYv1 port malformed"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 +2\r\n", "PROXYv1 port malformed"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 123456\r\n", "PROXYv1 port malformed"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "PROXYv1 src port out of bounds"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", "PROXYv1 dst port out of bounds"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "PROXYv1 unrecognized extraneous data"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "PROXYv1 unrecognized extraneous data"),
]


@pytest.mark.parametrize(("header", "error"), V1_ERRORS)
def test_v1_errors(header, error):
    result = assert_same_every_way(header + SMTP_AFTER)
    assert result is not None
    assert result.error == error
    assert result.version == 1


def test_v1_port_bounds_just_under_and_at():
    for port in (b"65534", b"65535"):
        result = maybe_parse_proxy_header(b"PROXY TCP4 1.2.3.4 5.6.7.8 %s %s\r\n" % (port, port))
        assert result is not None
        assert result.error == ""
        assert result.src_port == result.dst_port == int(port)


def test_v1_bare_lf_is_refused_without_waiting_for_more():
    result = maybe_parse_proxy_header(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n")
    assert result is not None
    assert result.error == "PROXYv1 malformed"


# -- signatures ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"EHLO x\r\n", b"\x16\x03\x01\x02\x00", b"X", b"PROX\r", b"\r\n\r\n\x01", b"\x00", b"\r\r"],
)
def test_unrecognized_signature_is_decided_at_the_first_wrong_byte(data):
    result = assert_same_every_way(data)
    assert result is not None
    assert result.error == "PROXY unrecognized signature"
    assert result.version is None


@pytest.mark.parametrize("data", [b"", b"P", b"PROX", b"PROXY", b"\r\n\r\n", b"\r\n\r\n\x00\r\nQ"])
def test_prefixes_of_a_signature_need_more(data):
    assert maybe_parse_proxy_header(data) is None


def test_v2_wrong_signature():
    data = V2_SIGNATURE[:8] + b"X" + V2_SIGNATURE[9:] + b"\x21\x11\x00\x0c" + inet4_block()
    result = assert_same_every_way(data)
    assert result is not None
    assert (result.error, result.version, result.consumed) == ("PROXYv2 wrong signature", 2, 9)


# -- version 2 -----------------------------------------------------------------------------


def test_v2_inet4_haproxy_shaped_with_every_tlv():
    tlvs = (
        tlv(0x01, b"h2")
        + tlv(0x02, b"mail.example.com")
        + tlv(0x05, b"C0A80001:DBC4_0A0B0C0D:0019_5F5E1000_0001:0001")
        + ssl_tlv(
            0x07,
            0,
            tlv(0x21, b"TLSv1.3"),
            tlv(0x22, b"client.example"),
            tlv(0x23, b"TLS_AES_256_GCM_SHA384"),
            tlv(0x24, b"RSA-SHA256"),
            tlv(0x25, b"RSA2048"),
        )
        + tlv(0x30, b"blue")
        + tlv(0x04, b"\x00" * 7)
    )
    header = v2_header(tlvs=tlvs, crc=True)
    result = assert_same_every_way(header + SMTP_AFTER)
    assert result is not None
    assert result.error == ""
    assert (result.version, result.command, result.family, result.protocol) == (
        2,
        V2_CMD.PROXY,
        AF.INET,
        PROTO.STREAM,
    )
    assert result.src_addr == IPv4Address("192.0.2.1")
    assert result.dst_addr == IPv4Address("198.51.100.2")
    assert (result.src_port, result.dst_port) == (56324, 25)
    assert (result.consumed, result.whole_raw) == (len(header), header)
    assert result.tlv_start == 28
    assert result.rest == header[28:]


def test_v2_inet6_dgram():
    result = maybe_parse_proxy_header(v2_header(fam_pro=0x22, addresses=inet6_block()))
    assert result is not None
    assert (result.error, result.family, result.protocol) == ("", AF.INET6, PROTO.DGRAM)
    assert result.src_addr == IPv6Address("2001:db8::1")
    assert result.tlv_start == 16 + 36


def test_v2_unix_paths_are_nul_trimmed():
    full = b"/" + b"p" * 107
    result = maybe_parse_proxy_header(
        v2_header(fam_pro=0x31, addresses=unix_block(full, b"/s\x00junk"))
    )
    assert result is not None
    assert (result.error, result.family) == ("", AF.UNIX)
    assert (result.src_addr, result.dst_addr) == (full, b"/s")
    assert (result.src_port, result.dst_port) == (None, None)
    assert result.tlv_start == 16 + 216


def test_v2_local_command_as_haproxy_health_checks_send_it():
    header = v2_header(ver_cmd=0x20, fam_pro=0x00)
    assert header == V2_SIGNATURE + b"\x20\x00\x00\x00"
    result = assert_same_every_way(header + SMTP_AFTER)
    assert result is not None
    assert (result.error, result.command, result.family, result.protocol) == (
        "",
        V2_CMD.LOCAL,
        AF.UNSPEC,
        PROTO.UNSPEC,
    )
    assert (result.src_addr, result.consumed, result.tlv_start) == (None, 16, 16)


def test_v2_unspec_with_tlvs():
    result = maybe_parse_proxy_header(v2_header(fam_pro=0x00, tlvs=tlv(0x01, b"smtp")))
    assert result is not None
    assert (result.error, result.rest) == ("", tlv(0x01, b"smtp"))


def test_v2_crc32c_good_and_bad():
    good = v2_header(tlvs=tlv(0x05, b"id"), crc=True)
    result = maybe_parse_proxy_header(good)
    assert result is not None
    assert result.error == ""
    crc_value_at = 16 + 12 + 3
    for position in (20, crc_value_at, len(good) - 1):  # an address, the CRC, a TLV value
        bad = bytearray(good)
        bad[position] ^= 0x01
        verdict = maybe_parse_proxy_header(bytes(bad))
        assert verdict is not None
        assert verdict.error == "PROXYv2 CRC32C mismatch"


def test_v2_crc32c_of_wrong_size_is_malformed():
    result = maybe_parse_proxy_header(v2_header(tlvs=tlv(0x03, b"\x00" * 3)))
    assert result is not None
    assert result.error == "PROXYv2 malformed TLV"


def test_crc32c_known_answers():
    # RFC 3720 appendix B.4 and the common check value.
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"\x00" * 32) == 0x8A9136AA
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E
    assert crc32c(b"6789", crc32c(b"12345")) == 0xE3069283


def test_v2_length_cap_under_at_over():
    def with_total(total: int) -> bytes:
        noop = tlv(0x04, b"\x00" * (total - 16 - 12 - 3))
        return v2_header(tlvs=noop)

    for total in (V2_MAX_HEADER - 1, V2_MAX_HEADER):
        result = maybe_parse_proxy_header(with_total(total))
        assert result is not None
        assert (result.error, result.consumed) == ("", total)
    over = with_total(V2_MAX_HEADER + 1)
    result = maybe_parse_proxy_header(over[:16])  # refused before the block arrives
    assert result is not None
    assert result.error == "PROXYv2 header too long"
    result = maybe_parse_proxy_header(v2_header(length=0xFFFF)[:16])
    assert result is not None
    assert result.error == "PROXYv2 header too long"


V2_ERRORS = [
    (v2_header(ver_cmd=0x11), "PROXYv2 illegal version"),
    (v2_header(ver_cmd=0x31), "PROXYv2 illegal version"),
    (v2_header(ver_cmd=0x22), "PROXYv2 unsupported command"),
    (v2_header(ver_cmd=0x2F), "PROXYv2 unsupported command"),
    (v2_header(fam_pro=0x41, addresses=inet4_block()), "PROXYv2 unsupported family"),
    (v2_header(fam_pro=0x01, addresses=inet4_block()), "PROXYv2 unsupported family"),
    (v2_header(fam_pro=0x13, addresses=inet4_block()), "PROXYv2 unsupported protocol"),
    (v2_header(fam_pro=0x10, addresses=inet4_block()), "PROXYv2 unsupported protocol"),
    (v2_header(fam_pro=0x30, addresses=unix_block()), "PROXYv2 unsupported protocol"),
    (v2_header(addresses=inet4_block()[:11]), "PROXYv2 truncated address"),
    (v2_header(fam_pro=0x21, addresses=inet4_block()), "PROXYv2 truncated address"),
    (v2_header(fam_pro=0x31, addresses=b"/x\x00"), "PROXYv2 truncated address"),
    (v2_header(tlvs=b"\x01\x00"), "PROXYv2 malformed TLV"),
    (v2_header(tlvs=b"\x01\x00\x09abc"), "PROXYv2 malformed TLV"),
    (v2_header(tlvs=tlv(0x20, b"\x01\x00\x00")), "PROXYv2 malformed TLV"),
    (v2_header(tlvs=ssl_tlv(1, 0, b"\x21\x00\x05ab")), "PROXYv2 malformed TLV"),
]


@pytest.mark.parametrize(("header", "error"), V2_ERRORS)
def test_v2_errors(header, error):
    result = assert_same_every_way(header + SMTP_AFTER)
    assert result is not None
    assert (result.error, result.version) == (error, 2)


@pytest.mark.parametrize("cut", [12, 15, 16, 27, 40])
def test_v2_truncated_header_needs_more(cut):
    header = v2_header(tlvs=tlv(0x01, b"h2") + tlv(0x05, b"x" * 20))
    assert maybe_parse_proxy_header(header[:cut]) is None


# -- TLVs ----------------------------------------------------------------------------------


def test_parse_tlvs_flattens_ssl_and_locates_every_tlv():
    block = (
        tlv(0x01, b"h2")
        + ssl_tlv(0x05, 7, tlv(0x21, b"TLSv1.2"), tlv(0x22, b"cn"))
        + tlv(0x99, b"zz")
        + tlv(0x30, b"ns")
    )
    values, locations = parse_tlvs(block)
    assert values == {
        "ALPN": b"h2",
        "SSL_CLIENT": 5,
        "SSL_VERIFY": 7,
        "SSL": True,
        "SSL_VERSION": b"TLSv1.2",
        "SSL_CN": b"cn",
        "x99": b"zz",
        "NETNS": b"ns",
    }
    for name, offset in locations.items():
        assert tlv_name(block[offset]) == name
    assert locations == {
        "ALPN": 0,
        "SSL": 5,
        "SSL_VERSION": 13,
        "SSL_CN": 23,
        "x99": 28,
        "NETNS": 33,
    }


def test_ssl_flag_follows_the_client_bit():
    values, _ = parse_tlvs(ssl_tlv(0x00, 1))
    assert (values["SSL"], values["SSL_CLIENT"], values["SSL_VERIFY"]) == (False, 0, 1)


def test_parse_tlvs_partial_and_strict():
    block = tlv(0x01, b"h2") + b"\x02\x00\x09abc"
    assert parse_tlvs(block) == ({"ALPN": b"h2"}, {"ALPN": 0})
    with pytest.raises(MalformedTLV, match="0x02"):
        parse_tlvs(block, partial_ok=False)
    with pytest.raises(MalformedTLV):
        parse_tlvs(b"\x01\x00", partial_ok=False)
    with pytest.raises(UnknownTypeTLV) as caught:
        parse_tlvs(tlv(0xEA, b"vpce-0123"), strict=True)
    assert caught.value.args == ("xEA",)
    with pytest.raises(UnknownTypeTLV):
        parse_tlvs(ssl_tlv(1, 0, tlv(0x2F, b"")), strict=True)


def test_repeated_type_keeps_the_last_value():
    assert parse_tlvs(tlv(0x30, b"") + tlv(0x30, b"z"))[0] == {"NETNS": b"z"}


def test_iter_tlvs_empty_and_zero_length():
    assert list(iter_tlvs(b"")) == []
    assert [(t.type, t.value) for t in iter_tlvs(tlv(0x04, b""))] == [(0x04, b"")]


# -- properties ----------------------------------------------------------------------------

addresses_v4 = st.builds(lambda n: str(IPv4Address(n)), st.integers(0, 2**32 - 1))
addresses_v6 = st.builds(lambda n: str(IPv6Address(n)), st.integers(0, 2**128 - 1))
ports = st.integers(0, 65535)


@st.composite
def v1_headers(draw) -> tuple[bytes, tuple]:
    six = draw(st.booleans())
    address = addresses_v6 if six else addresses_v4
    fields = (draw(address), draw(address), draw(ports), draw(ports))
    line = "PROXY TCP{} {} {} {} {}\r\n".format("6" if six else "4", *fields)
    return line.encode(), fields


any_tlv = st.builds(
    tlv,
    st.sampled_from([0x01, 0x02, 0x04, 0x05, 0x30, 0xE0, 0xEA]),
    st.binary(max_size=40),
)


@st.composite
def v2_headers(draw, crc: st.SearchStrategy[bool] | None = None) -> bytes:
    fam_pro = draw(st.sampled_from([0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32]))
    family = fam_pro >> 4
    if family == 1:
        addresses = inet4_block(draw(addresses_v4), draw(addresses_v4), draw(ports), draw(ports))
    elif family == 2:
        addresses = inet6_block(draw(addresses_v6), draw(addresses_v6), draw(ports), draw(ports))
    elif family == 3:
        paths = st.binary(max_size=108).map(lambda p: p.replace(b"\x00", b""))
        addresses = unix_block(draw(paths), draw(paths))
    else:
        addresses = b""
    tlvs = b"".join(draw(st.lists(any_tlv, max_size=5)))
    return v2_header(
        ver_cmd=draw(st.sampled_from([0x20, 0x21])),
        fam_pro=fam_pro,
        addresses=addresses,
        tlvs=tlvs,
        crc=draw(st.booleans() if crc is None else crc),
    )


@given(v1_headers(), st.binary(max_size=30), st.lists(st.integers(0, 140)))
def test_v1_at_random_splits(header_and_fields, after, cuts):
    header, (src, dst, sport, dport) = header_and_fields
    verdict, leftover = first_verdict(header + after, cuts)
    assert verdict is not None
    assert verdict.error == ""
    assert (str(verdict.src_addr), str(verdict.dst_addr)) == (src, dst)
    assert (verdict.src_port, verdict.dst_port) == (sport, dport)
    assert (verdict.consumed, leftover) == (len(header), after)


@given(v2_headers(), st.binary(max_size=30), st.lists(st.integers(0, 700)))
def test_v2_at_random_splits(header, after, cuts):
    verdict, leftover = first_verdict(header + after, cuts)
    assert verdict is not None
    assert verdict.error == ""
    assert (verdict.consumed, verdict.whole_raw, leftover) == (len(header), header, after)


@given(v2_headers(crc=st.just(True)), st.data(), st.integers(1, 255))
def test_v2_crc32c_catches_any_change_to_addresses_or_checksum(header, data, xor):
    tlv_start = 16 + {0: 0, 1: 12, 2: 36, 3: 216}[header[13] >> 4]
    covered = [*range(16, tlv_start), *range(tlv_start + 3, tlv_start + 7)]
    position = data.draw(st.sampled_from(covered))
    corrupted = bytearray(header)
    corrupted[position] ^= xor
    verdict = maybe_parse_proxy_header(bytes(corrupted))
    assert verdict is not None
    assert verdict.error == "PROXYv2 CRC32C mismatch"


prefixes = st.sampled_from([b"", b"PROXY ", b"PROXY TCP4 ", b"PROXY TCP6 ", V2_SIGNATURE])


@settings(max_examples=500)
@given(prefixes, st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=6))
def test_fuzz_never_raises_and_verdicts_are_consistent(prefix, tail, cuts):
    data = prefix + tail
    whole = maybe_parse_proxy_header(data)
    assert whole is None or isinstance(whole, ParsedProxyHeader)
    verdict, _ = first_verdict(data, cuts)
    assert verdict == whole
    if whole is not None:
        assert 0 <= whole.consumed <= max(V1_MAX_HEADER, V2_MAX_HEADER)
        assert whole.consumed <= len(data)
        assert isinstance(whole.error, str)
        if whole.error == "":
            assert whole.whole_raw == data[: whole.consumed]
            assert whole.protocol is not None


@settings(max_examples=300)
@given(
    v2_headers(),
    st.lists(st.tuples(st.integers(0, 800), st.integers(1, 255)), min_size=1, max_size=4),
    st.lists(st.integers(0, 800), max_size=6),
)
def test_fuzz_mutated_v2_headers(header, mutations, cuts):
    mutated = bytearray(header)
    for position, xor in mutations:
        mutated[position % len(mutated)] ^= xor
    data = bytes(mutated) + SMTP_AFTER
    whole = maybe_parse_proxy_header(data)
    verdict, _ = first_verdict(data, cuts)
    assert verdict == whole
    if whole is not None and whole.error == "":
        assert whole.version == 2
        assert whole.consumed == 16 + int.from_bytes(data[14:16], "big") <= V2_MAX_HEADER


v1_words = st.sampled_from(["TCP4", "TCP6", "UNKNOWN", "1.2.3.4", "::1", "0", "65535", "", " "])


@settings(max_examples=300)
@given(
    st.lists(st.one_of(v1_words, st.text(max_size=8)), max_size=8),
    st.sampled_from(["\r\n", "\n", ""]),
)
def test_fuzz_v1_lines(words, ending):
    data = ("PROXY " + " ".join(words) + ending).encode("utf-8", "surrogatepass") + SMTP_AFTER
    whole = maybe_parse_proxy_header(data)
    assert whole is not None
    assert whole.version == 1
    if whole.error == "":
        assert whole.whole_raw.endswith(b"\r\n")
        assert len(whole.whole_raw) <= V1_MAX_HEADER
