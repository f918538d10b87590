"""aiosmtpd._core.syntax: path, mailbox, ESMTP parameter, xtext and SASL parsers."""

from __future__ import annotations

import pytest

from aiosmtpd._core import syntax as S

# (argument after FROM:/TO:, expected address or PathError, expected parameter text).
# Accepted forms are the ones aiosmtpd 1.4.6 accepted (probed).
PATHS = [
    ("<a@b.c>", "a@b.c", ""),
    ("a@b.c", "a@b.c", ""),
    ("  a@b.c  SIZE=10", "a@b.c", "SIZE=10"),
    ("<>", "<>", ""),
    ("<> SIZE=10", "<>", "SIZE=10"),
    ("<postmaster>", "postmaster", ""),
    ("<a..b@c>", "a..b@c", ""),
    ("<.a@c>", ".a@c", ""),
    ("<a.@c>", "a.@c", ""),
    ('<"john doe"@ex.com>', '"john doe"@ex.com', ""),
    ('<"john"@ex.com>', "john@ex.com", ""),
    ('<"jo\\"hn"@ex.com>', '"jo\\"hn"@ex.com', ""),
    ('<""@b.c>', '""@b.c', ""),
    ("<a@[1.2.3.4]>", "a@[1.2.3.4]", ""),
    ("<a@[IPv6:::1]>", "a@[IPv6:::1]", ""),
    ("<@r1,@r2:a@b.c>", "a@b.c", ""),
    ("<a@-b.c>", "a@-b.c", ""),
    ("<a@b_c.d>", "a@b_c.d", ""),
    ("<a@b.c>x", "a@b.c", "x"),
    ("<a@b.c>SIZE=10", "a@b.c", "SIZE=10"),
    ("< a@b.c >", "a@b.c", ""),
    ("<a%b@c>", "a%b@c", ""),
    ("<a!#$%&'*+-/=?^_`{|}~@c>", "a!#$%&'*+-/=?^_`{|}~@c", ""),
    ("<jörg@bücher.de>", "jörg@bücher.de", ""),
    ("<\udce4@b>", "\udce4@b", ""),
    ("<用户@例子.广告>", "用户@例子.广告", ""),
    ("", S.PathError.SYNTAX, None),
    ("a@b.c>", S.PathError.SYNTAX, None),
    ("<a@b.c", S.PathError.SYNTAX, None),
    ("Joe <a@b.c>", S.PathError.SYNTAX, None),
    ("<@@@>", S.PathError.MALFORMED, None),
    ("<a@>", S.PathError.MALFORMED, None),
    ("<@b.c>", S.PathError.MALFORMED, None),
    ("<a@b..c>", S.PathError.MALFORMED, None),
    ("<a@b.c.>", S.PathError.MALFORMED, None),
    ("<<a@b.c>>", S.PathError.MALFORMED, None),
    ("<a b@c>", S.PathError.MALFORMED, None),
    ("<a@b c>", S.PathError.MALFORMED, None),
    ("<a,b@c>", S.PathError.MALFORMED, None),
    ('<"unterminated@b.c>', S.PathError.MALFORMED, None),
]


@pytest.mark.parametrize(("arg", "address", "rest"), PATHS)
def test_parse_path(arg: str, address: object, rest: str | None) -> None:
    result = S.parse_path(arg)
    if isinstance(address, S.PathError):
        assert result is address
    else:
        assert result == (address, rest)


@pytest.mark.parametrize(
    ("arg", "keyword", "expected"),
    [
        ("FROM:<a@b>", "FROM:", "<a@b>"),
        ("from: <a@b>", "FROM:", "<a@b>"),
        ("FROM:", "FROM:", ""),
        ("TO:<a@b>", "FROM:", None),
        ("FROM <a@b>", "FROM:", None),
        ("", "TO:", None),
    ],
)
def test_strip_keyword(arg: str, keyword: str, expected: str | None) -> None:
    assert S.strip_keyword(arg, keyword) == expected


def test_local_part() -> None:
    assert S.local_part("abc@d.e") == "abc"
    assert S.local_part('"a@b"@c') == '"a@b"'
    assert S.local_part("postmaster") == "postmaster"


@pytest.mark.parametrize(
    ("text", "options", "values"),
    [
        ("", [], {}),
        ("SIZE=10", ["SIZE=10"], {"SIZE": "10"}),
        ("size=10 body=8bitmime", ["SIZE=10", "BODY=8BITMIME"], {"SIZE": "10", "BODY": "8bitmime"}),
        ("SMTPUTF8", ["SMTPUTF8"], {"SMTPUTF8": True}),
        ("SIZE=1 SIZE=2", ["SIZE=1", "SIZE=2"], {"SIZE": "2"}),
        ("X-FOO=a+2Bb", ["X-FOO=A+2BB"], {"X-FOO": "a+2Bb"}),
    ],
)
def test_parse_esmtp_params(text: str, options: list[str], values: dict[str, object]) -> None:
    params = S.parse_esmtp_params(text)
    assert params is not None
    assert params.options == options
    assert params.values == values


@pytest.mark.parametrize("text", ["=x", "SIZE=", "=", "<d@e.f>", "-X=1", "A=b=c=\x7f"])
def test_parse_esmtp_params_malformed(text: str) -> None:
    assert S.parse_esmtp_params(text) is None


@pytest.mark.parametrize(
    ("xtext", "decoded"),
    [("abc", "abc"), ("a+2Bb", "a+b"), ("+3D", "="), ("", ""), ("a+2b", None), ("a+", None)],
)
def test_xtext(xtext: str, decoded: str | None) -> None:
    assert S.decode_xtext(xtext) == decoded
    if decoded is not None:
        assert S.decode_xtext(S.encode_xtext(decoded)) == decoded


def test_encode_xtext() -> None:
    assert S.encode_xtext("a+b=c d") == "a+2Bb+3Dc+20d"
    assert S.encode_xtext("é") == "+C3+A9"


@pytest.mark.parametrize(
    ("line", "decoded"),
    [
        (b"AGEAYg==", b"\x00a\x00b"),
        (b"=", b""),
        (b"", b""),
        (b"  YWJj  ", b"abc"),
        (b"YW Jj", None),
        (b"A", None),
        (b"AA=", None),
        (b"*", None),
        ("YWJj", b"abc"),
    ],
)
def test_decode_sasl_line(line: bytes | str, decoded: bytes | None) -> None:
    assert S.decode_sasl_line(line) == decoded


def test_encode_sasl() -> None:
    assert S.encode_sasl("Username:") == "VXNlcm5hbWU6"
    assert S.encode_sasl(b"Password:") == "UGFzc3dvcmQ6"
