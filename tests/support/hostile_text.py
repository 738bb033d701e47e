"""Text built to be slow for a backtracking regex engine (shared by tests and bench/).

The five shapes of issue 10 (a run of dots, alternating runs of `!` and spaces, one
line of spaces, one endless sentence, 50,000 short lines) plus a few aimed at single
patterns (a modal before white space, a list line with inner white space, an
unclosed code fence, a run of closing tags). Each is `size` characters long.
"""

from __future__ import annotations

from collections.abc import Callable

SIZE = 200_000


def _fit(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


SHAPES: dict[str, Callable[[int], str]] = {
    "dots": lambda n: "a" + "." * (n - 1),
    "bangs_and_spaces": lambda n: _fit("!" * 50 + " " * 50, n),
    "line_of_spaces": lambda n: "a" + " " * (n - 2) + "b",
    "endless_sentence": lambda n: _fit("word ", n),
    "short_lines": lambda n: _fit("abc\n", n),  # 50,000 lines at 200,000 characters
    "modal_then_spaces": lambda n: "Staff should" + " " * (n - 13) + ".",
    "list_line_inner_spaces": lambda n: "- a" + " " * (n - 4) + "b",
    "unclosed_fence": lambda n: "```" + "a" * (n - 3),
    "closing_tags": lambda n: _fit("</ ", n),
    "dotted_words": lambda n: _fit("a.", n),
    "mixed_punctuation": lambda n: _fit('.!?\u2026"\u201d) \u3002\u300d', n),
}


def shapes(size: int = SIZE) -> dict[str, str]:
    """Every shape at `size` characters."""
    built = {name: make(size) for name, make in SHAPES.items()}
    assert all(len(text) == size for text in built.values())
    return built
