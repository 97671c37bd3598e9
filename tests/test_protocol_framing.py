"""The framer: lines, limits, telnet bytes, bad encodings. Pure: bytes in, lines out."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bleeper.protocol.framing import InvalidEncoding, LineFramer, LineTooLong
from bleeper.protocol.text import clean_text


def feed_all(framer: LineFramer, *chunks: bytes) -> list[object]:
    out: list[object] = []
    for chunk in chunks:
        out.extend(framer.feed(chunk))
    return out


def test_lf_and_crlf_lines() -> None:
    assert LineFramer().feed(b"one\ntwo\r\nthree") == ["one", "two"]


def test_line_split_across_chunks() -> None:
    framer = LineFramer()
    assert feed_all(framer, b"SA", b"Y hel", b"lo\r", b"\n") == ["SAY hello"]


def test_crlf_split_between_chunks_at_the_limit() -> None:
    framer = LineFramer(max_line=5)
    assert feed_all(framer, b"abcde\r", b"\n") == ["abcde"]


def test_line_at_limit_passes_and_one_more_byte_fails() -> None:
    framer = LineFramer(max_line=8)
    assert framer.feed(b"12345678\n") == ["12345678"]
    assert framer.feed(b"123456789\n") == [LineTooLong(8)]


def test_too_long_line_reported_once_then_discarded_to_newline() -> None:
    framer = LineFramer(max_line=10)
    out = feed_all(framer, b"x" * 50, b"y" * 5000, b"zz\nSAY ok\n")
    assert out == [LineTooLong(10), "SAY ok"]
    assert framer.buffered == 0


def test_ten_megabytes_without_newline_keep_memory_bounded() -> None:
    framer = LineFramer()
    out = feed_all(framer, *([b"a" * 65536] * 160))
    assert out == [LineTooLong(4096)]
    assert framer.buffered == 0


def test_invalid_utf8_dropped_with_error_and_next_line_survives() -> None:
    out = LineFramer().feed(b"SAY \xc3\x28 bad\nSAY good\n")
    assert isinstance(out[0], InvalidEncoding)
    assert out[1] == "SAY good"


def test_utf8_character_split_across_chunks() -> None:
    data = "SAY café ✓\n".encode()
    framer = LineFramer()
    assert feed_all(framer, data[:7], data[7:12], data[12:]) == ["SAY café ✓"]


def test_telnet_negotiation_removed() -> None:
    # IAC DO ECHO, IAC WILL SUPPRESS-GO-AHEAD, IAC SB NAWS ... IAC SE, IAC NOP
    data = b"\xff\xfd\x01\xff\xfb\x03NAME \xff\xfa\x1f\x00\x50\x00\x18\xff\xf0bob\xff\xf1\r\n"
    assert LineFramer().feed(data) == ["NAME bob"]


def test_telnet_sequence_split_across_chunks() -> None:
    framer = LineFramer()
    assert feed_all(framer, b"PI\xff", b"\xfd", b"\x01NG\n") == ["PING"]


def test_stray_subnegotiation_cannot_swallow_later_lines() -> None:
    framer = LineFramer()
    assert feed_all(framer, b"junk\xff\xfa\x01garbage\n", b"QUIT\n") == ["junk", "QUIT"]


def test_escaped_iac_is_a_data_byte_and_therefore_invalid_utf8() -> None:
    out = LineFramer().feed(b"SAY \xff\xff\n")
    assert len(out) == 1 and isinstance(out[0], InvalidEncoding)


def test_control_and_escape_characters_removed() -> None:
    assert LineFramer().feed(b"SAY \x1b[2J\x1b]0;pwned\x07hi\x00\x7f\tthere\n") == ["SAY [2J]0;pwnedhi there"]


def test_bidi_override_removed_but_emoji_joiner_kept() -> None:
    assert clean_text("abc\u202edcba") == "abcdcba"
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert clean_text(f"hi {family}") == f"hi {family}"


def test_c1_controls_removed() -> None:
    assert clean_text("a\u009bb\u0085c") == "ab c"


@given(st.lists(st.binary(max_size=300), max_size=20), st.integers(min_value=1, max_value=200))
def test_arbitrary_bytes_never_raise_and_stay_bounded(chunks: list[bytes], limit: int) -> None:
    framer = LineFramer(max_line=limit)
    for chunk in chunks:
        for item in framer.feed(chunk):
            if isinstance(item, str):
                assert len(item.encode()) <= limit
                assert "\n" not in item and "\r" not in item and "\x1b" not in item
            else:
                assert isinstance(item, LineTooLong | InvalidEncoding)
        assert framer.buffered <= limit + 1


@given(
    st.lists(st.text(alphabet=st.characters(blacklist_categories=["Cc", "Cs"]), max_size=60), max_size=10), st.data()
)
def test_lines_survive_any_chunking(lines: list[str], data: st.DataObject) -> None:
    lines = [clean_text(line) for line in lines]
    stream = "".join(line + "\r\n" for line in lines).encode()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert feed_all(LineFramer(max_line=1000), *chunks) == lines


@given(st.binary(max_size=500))
def test_clean_text_is_idempotent_and_printable_safe(raw: bytes) -> None:
    text = raw.decode("utf-8", "replace")
    once = clean_text(text)
    assert clean_text(once) == once
    assert not any(ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 for ch in once)
