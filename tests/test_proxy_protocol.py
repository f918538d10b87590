"""aiosmtpd.proxy_protocol: 1.4's public API, get_proxy over a reader, and a real haproxy."""

from __future__ import annotations

import asyncio
import copy
import logging
import socket
import subprocess
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest

from aiosmtpd import proxy_protocol
from aiosmtpd.proxy_protocol import (
    AF,
    PROTO,
    V2_CMD,
    V2_PARSE_ADDR_FAMPRO,
    V2_SIGNATURE,
    V2_VALID_CMDS,
    V2_VALID_FAMS,
    V2_VALID_PROS,
    MalformedTLV,
    ProxyData,
    ProxyParseResult,
    ProxyTLV,
    UnknownTypeTLV,
    get_proxy,
    parse_proxy_header,
)
from tests.core.test_proxy_parse import (
    SMTP_AFTER,
    V1_ERRORS,
    V2_ERRORS,
    ssl_tlv,
    tlv,
    unix_block,
    v2_header,
)
from tests.support import require_program

V1_HEADER = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\n"
EVERY_TLV = (
    tlv(0x01, b"h2")
    + tlv(0x02, b"mail.example.com")
    + tlv(0x05, b"unique")
    + ssl_tlv(0x01, 0, tlv(0x21, b"TLSv1.3"), tlv(0x22, b"client.example"))
    + tlv(0x30, b"blue")
    + tlv(0xEA, b"vpce-0123")
)


# -- module surface ------------------------------------------------------------------------


def test_all_is_1_4s():
    assert proxy_protocol.__all__ == [
        "struct",
        "partial",
        "IPv4Address",
        "IPv6Address",
        "V2_SIGNATURE",
        "V2_CMD",
        "V2_VALID_CMDS",
        "V2_VALID_FAMS",
        "V2_VALID_PROS",
        "V2_PARSE_ADDR_FAMPRO",
        "MalformedTLV",
        "UnknownTypeTLV",
        "AsyncReader",
        "ProxyTLV",
        "ProxyData",
        "get_proxy",
    ]
    for name in [*proxy_protocol.__all__, "AF", "PROTO"]:
        assert hasattr(proxy_protocol, name)


def test_constants():
    assert V2_SIGNATURE == b"\r\n\r\n\x00\r\nQUIT\n"
    assert (V2_CMD.LOCAL, V2_CMD.PROXY) == (0, 1)
    assert [int(f) for f in (AF.UNSPEC, AF.INET, AF.INET6, AF.UNIX)] == [0, 1, 2, 3]
    assert [int(p) for p in (PROTO.UNSPEC, PROTO.STREAM, PROTO.DGRAM)] == [0, 1, 2]
    assert ({0, 1}, {0, 1, 2, 3}, {0, 1, 2}) == (V2_VALID_CMDS, V2_VALID_FAMS, V2_VALID_PROS)
    assert set(V2_PARSE_ADDR_FAMPRO) == {0x11, 0x12, 0x21, 0x22, 0x31, 0x32}
    assert issubclass(MalformedTLV, RuntimeError)
    assert issubclass(UnknownTypeTLV, KeyError)


# -- ProxyTLV ------------------------------------------------------------------------------


def test_proxytlv_from_raw_names_and_attribute_access():
    tlvs = ProxyTLV.from_raw(EVERY_TLV)
    assert tlvs is not None
    assert isinstance(tlvs, dict)
    assert tlvs.ALPN == tlvs["ALPN"] == b"h2"
    assert tlvs.AUTHORITY == b"mail.example.com"
    assert tlvs.UNIQUE_ID == b"unique"
    assert (tlvs.SSL, tlvs.SSL_CLIENT, tlvs.SSL_VERIFY) == (True, 1, 0)
    assert (tlvs.SSL_VERSION, tlvs.SSL_CN) == (b"TLSv1.3", b"client.example")
    assert tlvs.NETNS == b"blue"
    assert tlvs.xEA == b"vpce-0123"
    assert tlvs.CRC32C is None
    assert tlvs.tlv_loc["ALPN"] == 0
    assert EVERY_TLV[tlvs.tlv_loc["SSL_CN"]] == 0x22
    assert copy.deepcopy(tlvs) == tlvs


def test_proxytlv_from_raw_edges():
    assert ProxyTLV.from_raw(b"") is None
    assert ProxyTLV.from_raw(tlv(0x04, b"")) == {"NOOP": b""}
    with pytest.raises(MalformedTLV):
        ProxyTLV.from_raw(EVERY_TLV[:-1])
    with pytest.raises(UnknownTypeTLV):
        ProxyTLV.from_raw(EVERY_TLV, strict=True)


def test_proxytlv_parse_partial():
    values, locations = ProxyTLV.parse(EVERY_TLV[:-1])
    assert "xEA" not in values
    assert values["NETNS"] == b"blue"
    assert set(locations) == {"ALPN", "AUTHORITY", "UNIQUE_ID", "SSL", "SSL_VERSION"} | {
        "SSL_CN",
        "NETNS",
    }
    with pytest.raises(MalformedTLV):
        ProxyTLV.parse(EVERY_TLV[:-1], partial_ok=False)


def test_proxytlv_same_attribs():
    tlvs = ProxyTLV({"ALPN": b"h2", "SSL": True}, _tlv_loc={"ALPN": 0})
    assert tlvs.tlv_loc == {"ALPN": 0}
    assert tlvs.same_attribs(ALPN=b"h2", SSL=True)
    assert not tlvs.same_attribs(ALPN=b"h3")
    assert not tlvs.same_attribs(FOO=b"x")
    with pytest.raises(ValueError, match=r"mismatch:ALPN actual=b'h2' expect=b'h3'"):
        tlvs.same_attribs(_raises=True, ALPN=b"h3")
    with pytest.raises(KeyError, match="notfound:FOO"):
        tlvs.same_attribs(_raises=True, FOO=b"x")


def test_proxytlv_names():
    assert ProxyTLV.PP2_TYPENAME[0x20] == "SSL"
    assert ProxyTLV.name_to_num("ALPN") == 1
    assert ProxyTLV.name_to_num("SSL_KEY_ALG") == 0x25
    assert ProxyTLV.name_to_num("NETNS") == 0x30
    assert ProxyTLV.name_to_num("SSL_CLIENT") is None
    assert ProxyTLV.name_to_num("xEA") is None


# -- ProxyData -----------------------------------------------------------------------------


def test_proxydata_construction():
    data = ProxyData(version=2)
    assert (data.version, data.command, data.src_addr, data.rest, data.error) == (
        2,
        None,
        None,
        b"",
        "",
    )
    assert data.whole_raw == bytearray()
    assert data.whole_raw is not ProxyData(version=2).whole_raw
    assert not data.valid  # no protocol yet
    assert not data
    with pytest.raises(TypeError):
        ProxyData(2)  # type: ignore[misc]
    with pytest.raises(TypeError):
        ProxyData()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        ProxyData(version=1, command=1)  # type: ignore[call-arg]
    with pytest.raises(AttributeError):
        data.anything = 1  # type: ignore[attr-defined]


def test_proxydata_with_error_logs_on_mail_debug(caplog):
    caplog.set_level(logging.WARNING, logger="mail.debug")
    data = ProxyData(version=1)
    data.protocol = PROTO.STREAM
    assert data.valid
    assert data.with_error("boom") is data
    assert (data.error, data.valid, bool(data)) == ("boom", False, False)
    data.with_error("PROXY exception: lost", log_prefix=False)
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("mail.debug", "WARNING", "PROXY error: boom"),
        ("mail.debug", "WARNING", "PROXY exception: lost"),
    ]


def test_proxydata_tlv_of_a_hand_made_block():
    data = ProxyData(version=2)
    data.rest = tlv(0x01, b"h2")[:-1]
    assert data.tlv is None  # cut short: no TLVs rather than an exception
    data.rest = tlv(0x01, b"h2")
    assert data.tlv == {"ALPN": b"h2"}


def test_proxydata_same_attribs():
    data = ProxyData(version=1)
    assert data.same_attribs(version=1, error="")
    assert not data.same_attribs(version=2)
    with pytest.raises(ValueError, match="mismatch:version actual=1 expect=2"):
        data.same_attribs(_raises=True, version=2)
    with pytest.raises(KeyError, match="notfound:nope"):
        data.same_attribs(_raises=True, nope=1)


# -- parse_proxy_header (the adapter's entry point) ----------------------------------------


def test_parse_proxy_header_needs_more_then_splits_off_the_header(caplog):
    caplog.set_level(logging.DEBUG, logger="mail.debug")
    header = v2_header(tlvs=EVERY_TLV, crc=True)
    assert parse_proxy_header(header[:-1]) is None
    result = parse_proxy_header(bytearray(header + SMTP_AFTER))
    assert isinstance(result, ProxyParseResult)
    assert result.consumed == len(header)
    data = result.proxy_data
    assert data.valid
    assert data.same_attribs(
        version=2,
        command=V2_CMD.PROXY,
        family=AF.INET,
        protocol=PROTO.STREAM,
        src_addr=IPv4Address("192.0.2.1"),
        dst_addr=IPv4Address("198.51.100.2"),
        src_port=56324,
        dst_port=25,
        tlv_start=28,
        whole_raw=bytearray(header),
    )
    assert data.tlv is not None
    assert data.tlv.same_attribs(ALPN=b"h2", SSL_CN=b"client.example", UNIQUE_ID=b"unique")
    assert header[31:35] == data.tlv.CRC32C
    assert data.tlv is data.tlv  # parsed once
    assert caplog.records == []


def test_parse_proxy_header_v1_has_no_tlv():
    result = parse_proxy_header(V1_HEADER + SMTP_AFTER)
    assert result is not None
    assert result.proxy_data.valid
    assert result.proxy_data.tlv is None
    assert result.proxy_data.whole_raw == V1_HEADER


def test_parse_proxy_header_error_is_logged_once(caplog):
    caplog.set_level(logging.DEBUG, logger="mail.debug")
    result = parse_proxy_header(b"EHLO client\r\n")
    assert result is not None
    assert not result.proxy_data
    assert result.proxy_data.error == "PROXY unrecognized signature"
    assert [r.getMessage() for r in caplog.records] == ["PROXY error: PROXY unrecognized signature"]


def test_local_and_unix_through_the_public_api():
    local = parse_proxy_header(v2_header(ver_cmd=0x20, fam_pro=0x00))
    assert local is not None
    assert local.proxy_data.valid
    assert local.proxy_data.command == V2_CMD.LOCAL
    assert local.proxy_data.tlv is None
    unix = parse_proxy_header(v2_header(fam_pro=0x31, addresses=unix_block(b"/a", b"/b")))
    assert unix is not None
    assert unix.proxy_data.same_attribs(family=AF.UNIX, src_addr=b"/a", dst_addr=b"/b")


# -- get_proxy -----------------------------------------------------------------------------


def stream_with(data: bytes, *, eof: bool = True, limit: int = 2**16) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=limit)
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


class TrickleReader:
    """An AsyncReader whose ``read`` hands out one byte at a time."""

    def __init__(self, data: bytes) -> None:
        self.inner = stream_with(data)

    async def read(self, num_bytes: int = -1) -> bytes:
        return await self.inner.read(min(num_bytes, 1))

    async def readexactly(self, num_bytes: int) -> bytes:
        return await self.inner.readexactly(num_bytes)

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        return await self.inner.readuntil(separator)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "header",
    [
        V1_HEADER,
        b"PROXY UNKNOWN\r\n",
        b"PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n",
        v2_header(tlvs=EVERY_TLV, crc=True),
        v2_header(ver_cmd=0x20, fam_pro=0x00),
        v2_header(fam_pro=0x31, tlvs=tlv(0x01, b"x")),
    ],
)
@pytest.mark.parametrize("reader_type", [stream_with, TrickleReader])
async def test_get_proxy_reads_exactly_the_header(header, reader_type):
    reader = reader_type(header + SMTP_AFTER)
    data = await get_proxy(reader)
    assert data.valid, data.error
    assert data.whole_raw == header
    expected = parse_proxy_header(header)
    assert expected is not None
    assert data == expected.proxy_data
    inner = reader.inner if isinstance(reader, TrickleReader) else reader
    assert await inner.read(100) == SMTP_AFTER


@pytest.mark.asyncio
@pytest.mark.parametrize(("header", "error"), V1_ERRORS + V2_ERRORS)
async def test_get_proxy_reports_every_header_error(header, error, caplog):
    caplog.set_level(logging.WARNING, logger="mail.debug")
    data = await get_proxy(stream_with(header + SMTP_AFTER))
    assert (data.error, data.valid) == (error, False)
    assert [r.getMessage() for r in caplog.records] == [f"PROXY error: {error}"]


@pytest.mark.asyncio
async def test_get_proxy_oversized_v2_is_refused_before_its_block_is_read():
    header = v2_header(tlvs=tlv(0x04, b"\x00" * 5000))
    reader = stream_with(header)
    data = await get_proxy(reader)
    assert data.error == "PROXYv2 header too long"
    assert len(await reader.read()) == len(header) - 16


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", "PROXY exception: 0 bytes read on a total of 5 expected bytes"),
        (b"PRO", "PROXY exception: 3 bytes read on a total of 5 expected bytes"),
        (v2_header()[:10], "PROXY exception: Connection lost while waiting for tail part"),
        (v2_header()[:-1], "PROXY exception: Connection lost while waiting for tail part"),
        (
            b"PROXY TCP4 1.2.3.4",
            "PROXY exception: 13 bytes read on a total of undefined expected bytes",
        ),
        (b"XPROX", "PROXY unrecognized signature"),
    ],
)
async def test_get_proxy_connection_lost(data, error, caplog):
    caplog.set_level(logging.WARNING, logger="mail.debug")
    result = await get_proxy(stream_with(data))
    assert (result.error, result.valid) == (error, False)
    assert [r.getMessage() for r in caplog.records] == [
        error if error.startswith("PROXY exception") else f"PROXY error: {error}"
    ]


@pytest.mark.asyncio
async def test_get_proxy_reader_limit_is_an_exception():
    result = await get_proxy(stream_with(b"PROXY " + b"x" * 200 + b"\r\n", limit=64))
    assert result.error.startswith("PROXY exception: Separator is found, but chunk is longer")


class LineLosingReader(TrickleReader):
    """Breaks the AsyncReader contract: ``readuntil`` returns without the separator."""

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        return (await self.inner.readuntil(separator))[:-2]


@pytest.mark.asyncio
async def test_get_proxy_survives_a_reader_that_breaks_its_contract():
    result = await get_proxy(LineLosingReader(V1_HEADER))
    assert result.error == "PROXY exception: Connection lost while waiting for tail part"


@pytest.mark.asyncio
async def test_get_proxy_v1_too_long():
    result = await get_proxy(stream_with(b"PROXY UNKNOWN " + b"x" * 100 + b"\r\n"))
    assert result.error == "PROXYv1 header too long"


# -- a real haproxy in front of a tiny server ----------------------------------------------

HAPROXY_CONFIG = """\
global
    maxconn 16
defaults
    mode tcp
    timeout connect 5s
    timeout client 5s
    timeout server 5s
frontend smtp_in
    bind fd@{listen_fd}
    unique-id-format %{{+X}}o\\ %ci:%cp_%fi:%fp_%Ts_%rt:%pid
    default_backend smtp_servers
backend smtp_servers
    server smtpd {backend_host}:{backend_port} {server_options}
"""


@pytest.fixture
def haproxy(tmp_path) -> Iterator[Callable[[str, int, str], tuple[str, int]]]:
    """Start haproxy in front of a backend; it returns the address clients connect to.

    haproxy inherits an already listening socket (``bind fd@N``), so there is no port race
    and no readiness to wait for: connections queue in the backlog until haproxy accepts.
    """
    program = require_program("haproxy")
    processes: list[subprocess.Popen[bytes]] = []

    def start(host: str, backend_port: int, server_options: str) -> tuple[str, int]:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as listener:
            listener.bind((host, 0))
            listener.listen(16)
            backend_host = f"[{host}]" if family == socket.AF_INET6 else host
            config = tmp_path / f"haproxy{len(processes)}.cfg"
            config.write_text(
                HAPROXY_CONFIG.format(
                    listen_fd=listener.fileno(),
                    backend_host=backend_host,
                    backend_port=backend_port,
                    server_options=server_options,
                )
            )
            processes.append(
                subprocess.Popen(
                    [program, "-db", "-f", str(config)],
                    pass_fds=[listener.fileno()],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                )
            )
            return listener.getsockname()[:2]

    yield start
    for process in processes:
        process.terminate()
        process.communicate(timeout=10)


def loopback_hosts() -> list[str]:
    hosts = ["127.0.0.1"]
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        hosts.append("::1")
    except OSError:
        pass
    return hosts


@pytest.mark.wire
@pytest.mark.asyncio
@pytest.mark.parametrize("host", loopback_hosts())
@pytest.mark.parametrize(
    ("server_options", "version"),
    [
        ("send-proxy", 1),
        ("send-proxy-v2", 2),
        ("send-proxy-v2 proxy-v2-options crc32c,unique-id,ssl,cert-cn,ssl-cipher,authority", 2),
    ],
)
async def test_haproxy_header_names_the_real_client(haproxy, host, server_options, version):
    received: asyncio.Future[tuple[ProxyData, bytes, bytes]] = (
        asyncio.get_running_loop().create_future()
    )

    async def backend(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await get_proxy(reader)
        payload = await reader.readexactly(len(SMTP_AFTER))
        if not received.done():
            received.set_result((data, bytes(data.whole_raw), payload))
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(backend, host, 0)
    try:
        front = haproxy(host, server.sockets[0].getsockname()[1], server_options)
        _, writer = await asyncio.open_connection(*front)
        try:
            client_host, client_port = writer.get_extra_info("sockname")[:2]
            writer.write(SMTP_AFTER)
            await writer.drain()
            data, raw, payload = await asyncio.wait_for(received, timeout=15)
        finally:
            writer.close()
            await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()

    assert data.valid, data.error
    assert payload == SMTP_AFTER
    assert data.version == version
    assert (data.src_addr, data.src_port) == (ip_address(client_host), client_port)
    assert (data.dst_addr, data.dst_port) == (ip_address(front[0]), front[1])
    assert data.family == (AF.INET6 if isinstance(data.src_addr, IPv6Address) else AF.INET)
    assert data.protocol == PROTO.STREAM
    parsed = parse_proxy_header(raw + SMTP_AFTER)  # the pure parser agrees with get_proxy
    assert parsed is not None
    assert (parsed.proxy_data, parsed.consumed) == (data, len(raw))
    if "crc32c" in server_options:
        tlvs = data.tlv
        assert tlvs is not None
        assert tlvs.CRC32C is not None  # and it matched, or data would not be valid
        assert tlvs.UNIQUE_ID is not None
        assert b"%X" not in tlvs.UNIQUE_ID
        assert (tlvs.SSL, tlvs.SSL_CLIENT) == (False, 0)  # a plain TCP client
