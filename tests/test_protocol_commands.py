"""Command parsing, and the client-side formatting and reply parsing that mirror it."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bleeper.protocol import codes
from bleeper.protocol.commands import (
    COMMANDS,
    Groups,
    GroupTarget,
    Help,
    Join,
    Leave,
    Name,
    ParseError,
    Ping,
    Pong,
    Push,
    Quit,
    Say,
    Tell,
    UserTarget,
    Who,
    parse_command,
    push_service,
    resolve,
)
from bleeper.protocol.incoming import Event, Message, Reply, ReplyAssembler, format_command
from bleeper.protocol.wire import event, format_time, message_event, multiline, reply


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("HELP", Help()),
        ("help tell", Help("tell")),
        ("NAME alice", Name("alice")),
        ("register alice", Name("alice")),
        ("NICK alice", Name("alice")),
        ("SAY hello   world ", Say("hello   world")),
        ("all hi", Say("hi")),
        ("BROADCAST hi", Say("hi")),
        ("TELL bob hi there", Tell(UserTarget(("bob",)), "hi there")),
        ("msg bob,carol hi", Tell(UserTarget(("bob", "carol")), "hi")),
        ("PM #icu bed 4", Tell(GroupTarget("#icu"), "bed 4")),
        ("JOIN #icu", Join("#icu")),
        ("LEAVE #icu", Leave("#icu")),
        ("part #icu", Leave("#icu")),
        ("WHO", Who()),
        ("USERS #icu", Who("#icu")),
        ("LIST", Who()),
        ("GROUPS", Groups()),
        ("PING", Ping()),
        ("PING abc", Ping("abc")),
        ("PONG 7", Pong("7")),
        ("QUIT", Quit()),
        ("bye see you", Quit("see you")),
        ("EXIT", Quit()),
        ("  SAY leading spaces", Say("leading spaces")),
    ],
)
def test_parse(line: str, expected: object) -> None:
    assert parse_command(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        "SAY",
        "SAY   ",
        "TELL bob",
        "TELL",
        "TELL , hi",
        "NAME",
        "NAME a b",
        "JOIN icu",
        "JOIN",
        "LEAVE",
        "WHO bob",
        "GROUPS x",
        "HELP a b",
    ],
)
def test_bad_syntax_gives_usage(line: str) -> None:
    result = parse_command(line)
    assert isinstance(result, ParseError)
    assert result.code == codes.BAD_SYNTAX
    assert result.message.startswith("usage: ")


def test_client_id_prefix() -> None:
    assert parse_command("ID c-1 SAY hi") == Say("hi", "c-1")
    assert parse_command("id 7f3a TELL #icu hi") == Tell(GroupTarget("#icu"), "hi", "7f3a")
    for bad in ("ID c-1 WHO", "ID bad!id SAY hi", "ID", "ID x"):
        result = parse_command(bad)
        assert isinstance(result, ParseError) and result.message.startswith("usage: ID")


def _b64(data: bytes, pad: bool = False) -> str:
    text = base64.urlsafe_b64encode(data).decode()
    return text if pad else text.rstrip("=")


KEY, AUTH = _b64(bytes([4]) + bytes(range(64))), _b64(bytes(range(16)))


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (f"PUSH ADD https://fcm.googleapis.com/fcm/send/dQw4 {KEY} {AUTH}",
         Push("add", "https://fcm.googleapis.com/fcm/send/dQw4", KEY, AUTH)),
        (f"push add https://push.example.org:8443/a?b=c {_b64(bytes([4]) + bytes(range(64)), True)} "
         f"{_b64(bytes(range(16)), True)}", Push("add", "https://push.example.org:8443/a?b=c", KEY, AUTH)),
        (f"PUSH ADD http://127.0.0.1:9000/stand-in {KEY} {AUTH}", Push("add", "http://127.0.0.1:9000/stand-in", KEY, AUTH)),
        (f"PUSH ADD http://localhost/x {KEY} {AUTH}", Push("add", "http://localhost/x", KEY, AUTH)),
        ("Push Remove https://fcm.googleapis.com/fcm/send/dQw4", Push("remove", "https://fcm.googleapis.com/fcm/send/dQw4")),
    ],
)  # fmt: skip
def test_parse_push(line: str, expected: Push) -> None:
    assert parse_command(line) == expected  # padding is accepted and dropped, as toJSON() writes keys


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("PUSH", "usage: PUSH ADD <endpoint> <p256dh> <auth> | PUSH REMOVE <endpoint>"),
        ("PUSH ADD https://p.example/x", "usage: PUSH ADD"),
        (f"PUSH REMOVE https://p.example/x {KEY}", "usage: PUSH ADD"),
        (f"PUSH SHOW https://p.example/x {KEY} {AUTH}", "usage: PUSH ADD"),
        (f"PUSH ADD http://push.example.org/x {KEY} {AUTH}", "must be an https:// URL (http:// only on this machine"),
        (f"PUSH ADD http://10.0.0.7/x {KEY} {AUTH}", "must be an https:// URL"),
        (f"PUSH ADD ftp://p.example/x {KEY} {AUTH}", "must be an https:// URL"),
        (f"PUSH ADD https:///x {KEY} {AUTH}", "must be an https:// URL"),
        (f"PUSH ADD https://p.example:99999/x {KEY} {AUTH}", "is not a URL"),
        (f"PUSH ADD https://a:b@p.example/x {KEY} {AUTH}", "user name, password or #fragment"),
        (f"PUSH ADD https://p.example/x#frag {KEY} {AUTH}", "user name, password or #fragment"),
        (f"PUSH ADD https://p.example/{'x' * 2048} {KEY} {AUTH}", "at most 2048 are accepted"),
        (f"PUSH ADD https://p.example/x {_b64(bytes(65))} {AUTH}", "p256dh must be base64url of 65 bytes"),
        (f"PUSH ADD https://p.example/x {_b64(bytes([4]) + bytes(63))} {AUTH}", "p256dh must be base64url of 65"),
        (f"PUSH ADD https://p.example/x {KEY}+ {AUTH}", "p256dh must be base64url"),
        (f"PUSH ADD https://p.example/x {KEY} {_b64(bytes(17))}", "auth must be base64url of 16 bytes"),
        (f"PUSH ADD https://p.example/x {KEY} {AUTH[:-1]}", "auth must be base64url of 16 bytes"),
    ],
)
def test_bad_push_says_what_is_wrong(line: str, says: str) -> None:
    result = parse_command(line)
    assert isinstance(result, ParseError) and result.code == codes.BAD_SYNTAX
    assert says in result.message


def test_push_service_is_the_origin_only() -> None:
    assert push_service("https://fcm.googleapis.com/fcm/send/secret-token") == "https://fcm.googleapis.com"
    assert push_service("http://127.0.0.1:9000/x?y") == "http://127.0.0.1:9000"


_endpoints = st.builds(
    "https://{}.example/{}".format,
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_/:=", max_size=300),
)


@given(_endpoints, st.binary(min_size=64, max_size=64), st.binary(min_size=16, max_size=16))
def test_any_browser_subscription_round_trips(endpoint: str, point: bytes, secret: bytes) -> None:
    command = Push("add", endpoint, _b64(bytes([4]) + point), _b64(secret))
    assert parse_command(format_command(command)) == command
    assert parse_command(format_command(Push("remove", endpoint))) == Push("remove", endpoint)


@given(st.text(max_size=120), st.text(max_size=100), st.text(max_size=30))
def test_push_accepts_only_keys_of_the_right_size(endpoint: str, p256dh: str, auth: str) -> None:
    result = parse_command(f"PUSH ADD https://p.example/{endpoint.split()[0] if endpoint.split() else 'x'} "
                           f"{p256dh.split()[0] if p256dh.split() else KEY} {auth.split()[0] if auth.split() else AUTH}")  # fmt: skip
    if isinstance(result, Push):
        key, secret = (base64.urlsafe_b64decode(k + "=" * (-len(k) % 4)) for k in (result.p256dh, result.auth))
        assert len(key) == 65 and key[0] == 4 and len(secret) == 16 and "=" not in result.p256dh + result.auth
        assert result.endpoint.startswith("https://p.example/") and len(result.endpoint) <= 2048
    else:
        assert isinstance(result, ParseError) and result.code == codes.BAD_SYNTAX


def test_unknown_command_hints_help() -> None:
    result = parse_command("FROB x")
    assert isinstance(result, ParseError)
    assert "HELP" in result.message and "FROB" in result.message


def test_every_command_and_alias_resolves_in_any_case() -> None:
    for spec in COMMANDS.values():
        for word in (spec.name, *spec.aliases):
            assert resolve(word.lower()) is spec
            assert resolve(word.title()) is spec


@given(st.text(max_size=200))
def test_parse_never_raises(line: str) -> None:
    parse_command(line)


_word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-.", min_size=1, max_size=12)
_text = st.text(alphabet=st.characters(blacklist_categories=["Cc", "Cs", "Zs", "Zl", "Zp"]), min_size=1, max_size=40)
_commands = st.one_of(
    st.builds(Help, st.none() | _word),
    st.builds(Name, _word),
    st.builds(Say, _text),
    st.builds(Say, _text, _word),
    st.builds(Tell, st.builds(UserTarget, st.lists(_word, min_size=1, max_size=4).map(tuple)), _text),
    st.builds(Tell, st.builds(GroupTarget, _word.map(lambda w: "#" + w)), _text),
    st.builds(Tell, st.builds(UserTarget, st.lists(_word, min_size=1, max_size=3).map(tuple)), _text, _word),
    st.builds(Join, _word.map(lambda w: "#" + w)),
    st.builds(Leave, _word.map(lambda w: "#" + w)),
    st.builds(Who, st.none() | _word.map(lambda w: "#" + w)),
    st.just(Groups()),
    st.builds(Ping, st.just("") | _word),
    st.builds(Pong, st.just("") | _word),
    st.builds(Quit, st.just("") | _text),
)


@given(_commands)
def test_format_then_parse_round_trips(command: object) -> None:
    assert parse_command(format_command(command)) == command  # type: ignore[arg-type]


@given(st.integers(1, 2**40), st.integers(1, 2**40), st.floats(0, 4e9), _word,
       st.sampled_from(["*", "#icu", "@bob,carol"]), _text)  # fmt: skip
def test_message_event_round_trips(seq: int, msg_id: int, ts: float, sender: str, to: str, text: str) -> None:
    stamp = format_time(ts)
    line = message_event(seq, msg_id, stamp, sender, to, text).decode()
    assert line.endswith("\r\n")
    parsed = ReplyAssembler().feed(line[:-2])
    assert parsed == Message(seq, msg_id, stamp, sender, to, text)


@given(st.integers(200, 599), st.lists(_text, max_size=5), _text)
def test_multiline_reply_round_trips(code: int, items: list[str], final: str) -> None:
    assembler = ReplyAssembler()
    results = [assembler.feed(line) for line in multiline(code, items, final).decode().split("\r\n")[:-1]]
    assert results[:-1] == [None] * len(items)
    assert results[-1] == Reply(code, final, tuple(items))


def test_reply_and_event_lines() -> None:
    assert reply(250, "1 t reached 0") == b"250 1 t reached 0\r\n"
    assert ReplyAssembler().feed("ONLINE bob") == Event("ONLINE", ("bob",))
    assert format_time(0) == "1970-01-01T00:00:00.000Z"
    assert format_time(1763737925.123) == "2025-11-21T15:12:05.123Z"
    assert format_time(1763737925.9996) == "2025-11-21T15:12:05.999Z"  # never rounds into the next second
    assert event("JOIN", "#icu", "bob") == b"JOIN #icu bob\r\n"


def test_the_protocol_document_covers_every_command_and_reply_code() -> None:
    from pathlib import Path

    from bleeper.protocol import codes

    text = (Path(__file__).parent.parent / "docs" / "protocol.md").read_text()
    for spec in COMMANDS.values():
        assert f"| `{spec.name}" in text, f"{spec.name} is missing from the command table of docs/protocol.md"
        assert f"**{spec.name}" in text, f"{spec.name} has no paragraph in docs/protocol.md"
    for name, value in vars(codes).items():
        if name.isupper():
            assert f"| {value} |" in text, f"reply code {value} ({name}) is missing from docs/protocol.md"


def test_the_protocol_documents_command_table_lists_the_replies_help_gives() -> None:
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "protocol.md").read_text()
    documented: dict[str, set[str]] = {}
    for line in text.splitlines():
        if line.startswith("| `") and line.count("|") >= 5:
            word = line[3:].split(" ", 1)[0].rstrip("`")
            documented.setdefault(word, set(line.rstrip(" |").rsplit("|", 1)[1].replace(",", " ").split()))
    for spec in COMMANDS.values():
        assert documented.get(spec.name) == set(spec.replies.split()), f"{spec.name}: table and HELP disagree"
