"""Text from a job, made safe to print: no control characters reach a terminal.

A guideline (and so its summary and checklist) may hold escape sequences, carriage
returns or bidirectional overrides that would rewrite what a terminal shows. Each such
character is shown as a visible escape (`\\x1b`, `\\u202e`) instead; line feeds and tabs
stay, and CRLF line ends become LF.
"""

from __future__ import annotations

import json
import re
from typing import Any

# C0 (but tab and line feed), DEL, C1, and the invisible direction controls and line
# separators of Unicode.
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
# The same, minus what `json.dumps` escapes already (C0 characters).
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(text: object) -> str:
    """`text` as a string with every control character shown as an escape."""
    return _UNSAFE.sub(_escape, str(text).replace("\r\n", "\n"))


def one_line(text: object) -> str:
    """`safe(text)` on one line (line feeds and tabs become spaces)."""
    return " ".join(safe(text).split())


def safe_json(value: Any) -> str:
    """Indented JSON whose strings carry no raw control character (all are `\\uXXXX`)."""
    encoded = json.dumps(value, ensure_ascii=False, indent=2)
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", encoded)
