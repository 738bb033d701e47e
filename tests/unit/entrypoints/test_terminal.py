"""Text from a job is printed with its control characters escaped."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from entrypoints.terminal import one_line, safe, safe_json

UNSAFE = [chr(c) for c in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if chr(c) not in "\t\n"]
UNSAFE += ["\u061c", "\u200e", "\u200f", "\u2028", "\u2029", *map(chr, range(0x202A, 0x202F))]
UNSAFE += list(map(chr, range(0x2066, 0x206A)))


def test_escape_sequences_become_visible() -> None:
    assert safe("red \x1b[31mtext\x1b[0m") == "red \\x1b[31mtext\\x1b[0m"
    assert safe("csi \x9b2J, bell \x07, rtl \u202eabc") == "csi \\x9b2J, bell \\x07, rtl \\u202eabc"
    assert safe("line one\r\nline two\tend\r") == "line one\nline two\tend\\x0d"
    assert one_line("a\n b\t\x1bc") == "a b \\x1bc"


@given(st.text())
def test_no_unsafe_character_survives(text: str) -> None:
    for output in (safe(text), one_line(text), safe_json({"text": text, text: [text]})):
        assert not [c for c in UNSAFE if c in output]


@given(st.text())
def test_json_stays_the_same_value(text: str) -> None:
    value = {"summary": text, "checklist": [text, "x"], text: None}
    assert json.loads(safe_json(value)) == value
