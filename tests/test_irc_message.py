"""IRC lines read and written (protocol/irc/message.py): the grammar clients use, its limits, and a round
trip for any message a server could send. Pure: strings in, strings out."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bleeper.protocol.irc.message import (
    MAX_BODY,
    MAX_CLIENT_TAGS,
    IrcMessage,
    IrcParseError,
    body_room,
    encode,
    escape_tag,
    format_line,
    parse,
    unescape_tag,
)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("PING", IrcMessage("PING")),
        ("ping token", IrcMessage("PING", ("token",))),
        ("PRIVMSG #icu :bed 4 alarm", IrcMessage("PRIVMSG", ("#icu", "bed 4 alarm"))),
        ("PRIVMSG #icu bed", IrcMessage("PRIVMSG", ("#icu", "bed"))),
        ("PRIVMSG   #icu    :two  spaces ", IrcMessage("PRIVMSG", ("#icu", "two  spaces "))),
        ("PRIVMSG #icu :", IrcMessage("PRIVMSG", ("#icu", ""))),
        ("PRIVMSG #icu ::-)", IrcMessage("PRIVMSG", ("#icu", ":-)"))),
        ("PRIVMSG a:b :x :y", IrcMessage("PRIVMSG", ("a:b", "x :y"))),
        (":ann!a@ward7 PRIVMSG bob :hi", IrcMessage("PRIVMSG", ("bob", "hi"), "ann!a@ward7")),
        (":bleeper.test 001 ann :Welcome", IrcMessage("001", ("ann", "Welcome"), "bleeper.test")),
        ("@time=2026-11-30T04:00:00.000Z;msgid=42 :s NOTICE * :x",
         IrcMessage("NOTICE", ("*", "x"), "s", {"time": "2026-11-30T04:00:00.000Z", "msgid": "42"})),
        ("@+draft/reply=7;+example.com/flag TAGMSG #icu",
         IrcMessage("TAGMSG", ("#icu",), None, {"+draft/reply": "7", "+example.com/flag": ""})),
        ("@a=one\\stwo\\:three\\\\four\\r\\n;b=\\x;c=end\\ PING", IrcMessage(
            "PING", (), None, {"a": "one two;three\\four\r\n", "b": "x", "c": "end"})),
        ("@a=1;a=2 PING", IrcMessage("PING", (), None, {"a": "2"})),
        ("@a=;b PING", IrcMessage("PING", (), None, {"a": "", "b": ""})),
        ("CAP LS 302", IrcMessage("CAP", ("LS", "302"))),
    ],
)  # fmt: skip
def test_lines_as_clients_send_them(line: str, expected: IrcMessage) -> None:
    assert parse(line) == expected


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("", "malformed"),
        ("   ", "malformed"),
        (":source", "malformed"),
        (": PRIVMSG x", "malformed"),
        (":src :trailing only", "malformed"),
        ("PRIV-MSG x", "malformed"),
        ("1234 x", "malformed"),
        ("@bad key=1 PING", "malformed"),
        ("@=1 PING", "malformed"),
        ("PRIVMSG #icu :" + "x" * 500, "too-long"),
        ("@a=" + "x" * MAX_CLIENT_TAGS + " PING", "tags-too-long"),
    ],
)
def test_what_is_not_an_irc_line_says_why(line: str, reason: str) -> None:
    with pytest.raises(IrcParseError) as caught:
        parse(line)
    assert caught.value.reason == reason and str(caught.value)


def test_the_limits_are_in_bytes_and_count_the_crlf() -> None:
    fits = "PRIVMSG #icu :" + "x" * (MAX_BODY - 2 - len("PRIVMSG #icu :"))
    assert parse(fits).params[1].startswith("x")
    with pytest.raises(IrcParseError):
        parse(fits + "x")
    with pytest.raises(IrcParseError):
        parse(fits[:-1] + "é")  # one character, two bytes
    long_tags = "@a=" + "x" * (MAX_CLIENT_TAGS + 100)
    assert parse(long_tags + " PING", from_client=False).tags["a"].startswith("x")  # a server may send more


def test_a_sixteenth_parameter_joins_the_fifteenth() -> None:
    words = [str(n) for n in range(1, 18)]
    message = parse("CMD " + " ".join(words))
    assert len(message.params) == 15 and message.params[-1] == "15 16 17"


def test_lines_as_the_server_writes_them() -> None:
    assert format_line(IrcMessage("001", ("ann", "Welcome to Bleeper"), "bleeper.test")) == (
        ":bleeper.test 001 ann :Welcome to Bleeper"
    )
    assert (
        format_line(IrcMessage("PRIVMSG", ("#icu", "hello"), "ann!ann@bleeper"))
        == ":ann!ann@bleeper PRIVMSG #icu hello"
    )
    assert format_line(IrcMessage("PRIVMSG", ("#icu", ""))) == "PRIVMSG #icu :"
    assert format_line(IrcMessage("PRIVMSG", ("#icu", ":)"))) == "PRIVMSG #icu ::)"
    assert format_line(IrcMessage("PING", (), None, {"time": "t", "x": "", "y": "a b;c"})) == (
        "@time=t;x;y=a\\sb\\:c PING"
    )
    assert encode(IrcMessage("PONG", ("bleeper.test", "tok"))) == b"PONG bleeper.test tok\r\n"


@pytest.mark.parametrize("params", [("a b", "x"), ("", "x"), (":a", "x"), ("x", "a\r\nQUIT"), ("a\0",)])
def test_parameters_no_line_can_carry_are_refused(params: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="parameter"):
        format_line(IrcMessage("PRIVMSG", params))


def test_body_room_is_what_fits_in_one_line() -> None:
    room = body_room("ann!ann@bleeper", "PRIVMSG", "#icu")
    line = format_line(IrcMessage("PRIVMSG", ("#icu", "x y" + "z" * (room - 3)), "ann!ann@bleeper"))
    assert len(line.encode()) + 2 == MAX_BODY


# properties ------------------------------------------------------------------------------------------------

_word = st.text(st.characters(blacklist_characters=" \r\n\0", blacklist_categories=("Cs",)), min_size=1,
                max_size=20).filter(lambda w: not w.startswith(":"))  # fmt: skip
_trailing = st.text(st.characters(blacklist_characters="\r\n\0", blacklist_categories=("Cs",)), max_size=60)
_tag_key = st.from_regex(r"\A\+?([a-z0-9]{1,8}\.[a-z]{2,3}/)?[A-Za-z0-9-]{1,12}\Z")
_tag_value = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=30)
_messages = st.builds(
    IrcMessage,
    command=st.one_of(st.from_regex(r"\A[A-Z]{1,10}\Z"), st.from_regex(r"\A[0-9]{3}\Z")),
    params=st.tuples(st.lists(_word, max_size=5), _trailing).map(lambda p: (*p[0], p[1])),
    source=st.one_of(st.none(), _word),
    tags=st.dictionaries(_tag_key, _tag_value, max_size=4),
)


@given(_messages)
def test_any_message_written_reads_back_the_same(message: IrcMessage) -> None:
    line = format_line(message)
    assert parse(line, from_client=False) == message


@given(st.text(max_size=600))
def test_any_text_is_read_or_refused_with_a_reason(line: str) -> None:
    try:
        message = parse(line)
    except IrcParseError as exc:
        assert exc.reason in ("malformed", "too-long", "tags-too-long")
    else:
        assert message.command == message.command.upper() and len(message.params) <= 15


@given(_tag_value)
def test_tag_values_escape_and_unescape(value: str) -> None:
    escaped = escape_tag(value)
    assert " " not in escaped and ";" not in escaped and "\r" not in escaped and "\n" not in escaped
    assert unescape_tag(escaped) == value
