"""Reading provider replies: tolerant checklist parsing and Retry-After headers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters.llm.openai_gateway import parse_checklist, parse_retry_after

ITEMS = ("Assess renal function.", "Measure HbA1c.")


@pytest.mark.parametrize(
    "content",
    [
        '{"items": ["Assess renal function.", "Measure HbA1c."]}',
        '["Assess renal function.", "Measure HbA1c."]',
        '```json\n{"items": ["Assess renal function.", "Measure HbA1c."]}\n```',
        'Sure:\n```\n["Assess renal function.", "Measure HbA1c."]\n```\nDone.',
        "Checklist:\n- Assess renal function.\n- Measure HbA1c.",
        "1. Assess renal function.\n2) Measure HbA1c.",
        '  {"items": ["  Assess renal function. ", "Measure HbA1c."]}  ',
    ],
)
def test_accepted_shapes(content: str) -> None:
    assert parse_checklist(content) == ITEMS


@pytest.mark.parametrize(
    "content",
    [
        "",
        '{"items": [',
        '{"items": []}',
        '{"items": ["ok", "  "]}',
        '{"items": ["ok", 3]}',
        '{"steps": ["ok"]}',
        "Just some prose without any list.",
        '{"items": ["' + "x" * 501 + '"]}',
        '{"items": [' + ", ".join(['"x"'] * 31) + "]}",
    ],
)
def test_rejected_shapes(content: str) -> None:
    assert parse_checklist(content) is None


def test_thirty_items_of_500_chars_are_allowed() -> None:
    items = ['"' + "x" * 500 + '"'] * 30
    assert parse_checklist('{"items": [' + ", ".join(items) + "]}") is not None


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "7"}, 0.25),
        ({"retry-after": "Sat, 28 Nov 2026 10:00:30 GMT"}, 30.0),
        ({"retry-after": "Sat, 28 Nov 2026 09:00:00 GMT"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "-3"}, None),
        ({"retry-after": "nan"}, None),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    now = datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)
    assert parse_retry_after(headers, now=now) == expected
