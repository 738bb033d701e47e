"""Every regular expression that runs over client text or LLM output takes linear time.

Each pattern of the offline provider, the OpenAI gateway, the HTTP request schema
and the HTTP problem handler is run (search, match, finditer, sub) over
200,000-character shapes built to be slow, and over Hypothesis-generated runs of
the characters the patterns care about, within a generous CPU bound. The rewritten
patterns are checked against the original (backtracking) ones on short inputs:
same matches, same results.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.support.hostile_text import shapes

from adapters.http import problems, schemas
from adapters.llm import offline, openai_gateway

# Measured: ≤ 0.1 s per pattern and shape on the 2-core CI machine; 20x headroom.
CPU_BOUND_S = 2.0
STEP_CPU_BOUND_S = 2.0


def _patterns() -> Iterator[tuple[str, re.Pattern[str]]]:
    for module in (offline, openai_gateway):
        for name, value in vars(module).items():
            if isinstance(value, re.Pattern) and isinstance(value.pattern, str):
                yield f"{module.__name__.rsplit('.', 1)[-1]}.{name}", value
    # Built per call in the gateway; the same pattern for both tags.
    yield "openai_gateway._data_block", re.compile(r"</\s*+guideline", re.IGNORECASE)
    # The request schema's patterns, which msgspec checks with `re` on every body.
    for name in ("NON_BLANK_NO_NUL", "IDEMPOTENCY_KEY_PATTERN", "CALLBACK_URL_PATTERN",
                 "NO_CONTROL_CHARS"):  # fmt: skip
        yield f"schemas.{name}", re.compile(getattr(schemas, name))


PATTERNS = dict(_patterns())
SHAPES = shapes()


def _exercise(pattern: re.Pattern[str], text: str) -> None:
    pattern.search(text)
    pattern.match(text)
    for _ in pattern.finditer(text):
        pass
    pattern.sub("", text)


def test_every_pattern_of_the_text_modules_is_covered() -> None:
    # A new pattern lands in PATTERNS by itself; this guards against an empty scan.
    assert {"offline._BOUNDARY", "offline._TERMINAL", "openai_gateway._FENCE"} <= set(PATTERNS)
    assert len(PATTERNS) >= 15


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_pattern_is_fast_on_a_hostile_shape(name: str, shape: str) -> None:
    started = time.process_time()
    _exercise(PATTERNS[name], SHAPES[shape])
    assert time.process_time() - started < CPU_BOUND_S


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_lone_surrogate_scan_is_fast_on_a_hostile_shape(shape: str) -> None:
    body = SHAPES[shape].encode()
    started = time.process_time()
    assert problems._LONE_SURROGATE.search(body) is None
    assert problems._LONE_SURROGATE.search(b"\\ud800" * 50_000) is not None
    assert time.process_time() - started < CPU_BOUND_S


# Runs of the characters the patterns turn on: punctuation, quotes, white space, tags,
# fences, bullets and the words the rules look for.
_PIECES = st.sampled_from(
    [".", "!", "?", "\u2026", "\u3002", "\u300d", '"', ")", " ", "\t", "\n", "a", "A", "1",
     "-", "*", "\u2022", "`", "</", "[", "]", "x", ",", ";", "should ", "is ", "are ",
     "not ", "recommended", "also ", "be ", "guideline", "we ", "e.g."]
)  # fmt: skip


@st.composite
def _hostile_runs(draw: st.DrawFn) -> str:
    """A few long runs of a piece each: 20,000 to 60,000 characters in all."""
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        piece = draw(_PIECES)
        parts.append(piece * (draw(st.integers(5_000, 15_000)) // len(piece) + 1))
    return "".join(parts)


@settings(max_examples=30, deadline=None)
@given(text=_hostile_runs())
def test_every_pattern_is_fast_on_generated_runs(text: str) -> None:
    for name, pattern in PATTERNS.items():
        started = time.process_time()
        _exercise(pattern, text)
        assert time.process_time() - started < CPU_BOUND_S, name


# -- the rewritten patterns find what the original ones found -----------------

_ORIGINAL = {
    "_BOUNDARY": re.compile(
        r"([.!?\u2026]+)[\"'\u201d\u2019)\]]*\s+|[\u3002\uff01\uff1f]+[\u300d\u300f\u201d\u2019)]*\s*"
    ),
    "_PREV_WORD": re.compile(r"(\S+)$"),
    "_TERMINAL": re.compile(r"[\s.;:,!?\u3002\uff1b\uff1a\uff0c\uff01\uff1f\u2026]+$"),
    "_DOTTED_ACRONYM": re.compile(r"^(?:[A-Za-z]\.)+[A-Za-z]$"),
    "_BULLET": re.compile(
        rf"^(?:[{offline._BULLET_MARKS}]+|\(?\d{{1,3}}[.)]|\(?[a-zA-Z]\)|\([ivxIVX]+\))\s+"
    ),
    "_CONNECTIVE": re.compile(
        r"^(?:however|therefore|thus|hence|in addition|additionally|also|finally|furthermore|"
        r"moreover|importantly|in general|overall|where possible|if possible),?\s+",
        re.IGNORECASE,
    ),
    "_MODAL": re.compile(
        r"\b(?P<modal>should|must|shall|ought to|needs? to|has to|have to|"
        r"(?:is|are) (?:advised|recommended|required|expected) to)\s+"
        rf"(?P<adv1>(?:{offline._ADVERB}\s+)*)(?P<neg>(?:not|never)\s+)?"
        rf"(?P<adv2>(?:{offline._ADVERB}\s+)*)(?P<be>be\s+)?(?P<rest>\S.*)$",
        re.IGNORECASE,
    ),
    "_PASSIVE_REC": re.compile(
        r"^(?P<subj>.+?)\s+(?:is|are)\s+(?P<neg>not\s+)?(?:(?:strongly|generally|usually|also|"
        r"routinely|currently|often)\s+)?(?P<verb>recommended|indicated|contraindicated|advised|"
        r"suggested|preferred)\b(?P<rest>.*)$",
        re.IGNORECASE,
    ),
}
_ORIGINAL_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n?(.*?)```", re.DOTALL)
_ORIGINAL_LIST_LINE = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)]|\[[ xX]?\])\s+(?P<item>.+?)\s*$")

_SHORT_TEXT = st.lists(_PIECES | st.text(max_size=3), max_size=25).map("".join)


def _spans(pattern: re.Pattern[str], text: str) -> list[tuple[tuple[int, int], dict[str, str]]]:
    return [(m.span(), m.groupdict()) for m in pattern.finditer(text)]


@settings(max_examples=400, deadline=None)
@given(text=_SHORT_TEXT)
def test_rewritten_patterns_match_as_the_original_ones_did(text: str) -> None:
    for name, original in _ORIGINAL.items():
        rewritten: re.Pattern[str] = getattr(offline, name)
        assert _spans(rewritten, text) == _spans(original, text), name
        single = " ".join(text.split())  # the rules see one line of single spaces
        for probe in (rewritten.match, rewritten.search):
            expected = getattr(original, probe.__name__)(single)
            got = probe(single)
            assert (got and (got.span(), got.groups())) == (
                expected and (expected.span(), expected.groups())
            ), name
    assert [m.group(1) for m in openai_gateway._FENCE.finditer(text)] == [
        m.group(1) for m in _ORIGINAL_FENCE.finditer(text)
    ]
    for line in text.splitlines():
        original_match = _ORIGINAL_LIST_LINE.match(line)
        expected_item = original_match["item"].strip() if original_match else None
        assert openai_gateway.list_item(line) == expected_item, line


# -- each offline step on each shape -----------------------------------------


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_each_offline_step_takes_under_two_cpu_seconds(shape: str) -> None:
    text = SHAPES[shape]
    started = time.process_time()
    sentences = offline.summary_sentences(text)
    summary = " ".join(sentences)  # what summarize_text returns
    summary_cpu = time.process_time() - started
    started = time.process_time()
    items = offline.checklist_items(summary, text)
    checklist_cpu = time.process_time() - started
    assert summary_cpu < STEP_CPU_BOUND_S
    assert checklist_cpu < STEP_CPU_BOUND_S
    # Correct results: an extractive summary built from the text, 1 to 12 short items.
    flat = " ".join(text.split())
    assert sentences
    assert all(" ".join(sentence.split()) in flat for sentence in sentences)
    assert 1 <= len(items) <= offline.MAX_CHECKLIST_ITEMS
    assert all(0 < len(item) <= offline.MAX_ITEM_CHARS for item in items)


def test_a_run_of_dots_is_one_sentence_and_a_spaced_run_ends_one() -> None:
    assert offline.split_sentences("Wait" + "." * 400) == ["Wait" + "." * 400]
    assert offline.split_sentences("Stop!!! " * 3 + "Go.") == ["Stop!!!"] * 3 + ["Go."]
