"""The offline provider: an honest extractive summary and a rule-based checklist."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.llm.offline import (
    OfflineLLM,
    checklist_items,
    split_sentences,
    summary_sentence_count,
    summary_sentences,
    to_imperative,
)
from application.errors import PermanentLLMError
from domain import ErrorCode, Usage

GUIDELINE = """\
Type 2 diabetes in adults: management.
This guideline covers the care of adults with type 2 diabetes in primary care.
Metformin remains the first-line drug for most adults with type 2 diabetes.
Clinicians should assess renal function before starting metformin.
Patients must avoid excessive alcohol while taking metformin.
HbA1c should be measured every 3 to 6 months until stable.
Dr. Smith et al. reviewed the evidence, e.g. trials from the U.S. and Europe.
Blood pressure targets were discussed by the committee at length.
We recommend that clinicians offer structured education to every adult with diabetes.
Referral to a specialist is indicated when eGFR falls below 30.
"""


def test_sentences_respect_abbreviations_lines_and_bullets() -> None:
    text = "Dr. Smith et al. reviewed it, e.g. in the U.S. today. Next one!\n- Bullet one\n2) Two"
    assert split_sentences(text) == [
        "Dr. Smith et al. reviewed it, e.g. in the U.S. today.",
        "Next one!",
        "Bullet one",
        "Two",
    ]


def test_hard_wrapped_lines_are_joined() -> None:
    text = "Clinicians should assess renal function before\nstarting metformin. Then stop."
    assert split_sentences(text)[0] == (
        "Clinicians should assess renal function before starting metformin."
    )


def test_cjk_sentences_split_on_full_width_stops() -> None:
    assert split_sentences("这是第一句。这是第二句\uff01还有吗\uff1f好的") == [
        "这是第一句。",
        "这是第二句\uff01",
        "还有吗\uff1f",
        "好的",
    ]


@pytest.mark.parametrize(
    ("n", "expected"), [(1, 1), (3, 1), (4, 1), (5, 2), (8, 2), (12, 3), (20, 5), (200, 5)]
)
def test_summary_count_rule(n: int, expected: int) -> None:
    assert summary_sentence_count(n) == expected == max(1, min(5, math.ceil(n / 4)))


async def test_summary_is_made_of_input_sentences_in_order() -> None:
    sentences = split_sentences(GUIDELINE)
    chosen = summary_sentences(GUIDELINE)
    assert len(chosen) == summary_sentence_count(len(sentences))
    positions = [sentences.index(s) for s in chosen]
    assert positions == sorted(positions)
    summary = await OfflineLLM().summarize(GUIDELINE)
    assert summary.text == " ".join(chosen)
    assert summary.usage == Usage()


async def test_summary_prefers_central_sentences() -> None:
    text = (
        "Metformin is first-line therapy for type 2 diabetes. "
        "Metformin dose should be titrated for type 2 diabetes. "
        "Metformin is stopped when renal function falls in type 2 diabetes. "
        "The weather was sunny on the day of the meeting."
    )
    summary = await OfflineLLM().summarize(text)
    assert "weather" not in summary.text


async def test_deterministic() -> None:
    llm = OfflineLLM()
    first = (await llm.summarize(GUIDELINE), await llm.write_checklist("", GUIDELINE))
    second = (await llm.summarize(GUIDELINE), await llm.write_checklist("", GUIDELINE))
    assert first == second


@pytest.mark.parametrize(
    ("sentence", "item"),
    [
        (
            "Clinicians should assess renal function before starting metformin.",
            "Assess renal function before starting metformin.",
        ),
        ("Patients must avoid NSAIDs.", "Ensure patients avoid NSAIDs."),
        (
            "Patients should not drive after sedation.",
            "Ensure patients do not drive after sedation.",
        ),
        (
            "Do not prescribe antibiotics for viral infections.",
            "Do not prescribe antibiotics for viral infections.",
        ),
        ("Metformin is recommended as first-line therapy.", "Use metformin as first-line therapy."),
        ("Metformin is not recommended in pregnancy.", "Avoid metformin in pregnancy."),
        (
            "We recommend that clinicians offer statins to adults over 40.",
            "Offer statins to adults over 40.",
        ),
        (
            "Renal function should be checked annually.",
            "Ensure renal function is checked annually.",
        ),
        (
            "In adults with CKD, clinicians should not prescribe metformin.",
            "In adults with CKD, do not prescribe metformin.",
        ),
        ("It is recommended to measure HbA1c every 3 months.", "Measure HbA1c every 3 months."),
        (
            "Referral to a nephrologist is indicated when eGFR falls below 30.",
            "Consider referral to a nephrologist when eGFR falls below 30.",
        ),
        (
            "However, healthcare professionals should routinely offer smoking cessation advice",
            "Routinely offer smoking cessation advice.",
        ),
        (
            "All adults with hypertension must be assessed for cardiovascular risk.",
            "Ensure all adults with hypertension are assessed for cardiovascular risk.",
        ),
    ],
)
def test_imperative_rewrites(sentence: str, item: str) -> None:
    assert to_imperative(sentence) == item


async def test_checklist_comes_from_recommendation_sentences() -> None:
    checklist = await OfflineLLM().write_checklist("an unrelated summary", GUIDELINE)
    assert checklist.items == (
        "Assess renal function before starting metformin.",
        "Ensure patients avoid excessive alcohol while taking metformin.",
        "Ensure HbA1c is measured every 3 to 6 months until stable.",
        "Offer structured education to every adult with diabetes.",
        "Consider referral to a specialist when eGFR falls below 30.",
    )
    assert checklist.usage == Usage()


def test_checklist_items_are_deduplicated() -> None:
    text = (
        "Clinicians should assess renal function. Clinicians SHOULD  assess renal function. "
        "Assess renal function."
    )
    assert checklist_items("", text) == ("Assess renal function.",)


def test_checklist_keeps_at_most_twelve_items_in_source_order() -> None:
    text = " ".join(f"Clinicians should check marker number {i} daily." for i in range(40))
    items = checklist_items("", text)
    assert len(items) == 12
    numbers = [int(item.split()[3]) for item in items]
    assert numbers == sorted(numbers)


def test_checklist_falls_back_to_the_summary_sentences() -> None:
    text = "The sky is blue. Grass is green."
    assert checklist_items("The sky is blue.", text) == ("The sky is blue.",)


def test_items_are_trimmed_capitalised_and_end_with_a_period() -> None:
    long = "clinicians should check " + "the very long thing " * 30
    (item,) = checklist_items("", long)
    assert len(item) <= 200
    assert item[0].isupper()
    assert item.endswith(".")


@pytest.mark.parametrize(
    "text",
    [
        "no punctuation at all just a run of words that goes on",
        "One sentence only.",
        "😀 🎉 ✨",
        "患者应避免饮酒。医生应该评估肾功能。",
        "...",
        "\n\n- \n* x\n",
    ],
)
async def test_odd_inputs_give_non_empty_outputs(text: str) -> None:
    llm = OfflineLLM()
    summary = await llm.summarize(text)
    checklist = await llm.write_checklist(summary.text, text)
    assert summary.text.strip()
    assert 1 <= len(checklist.items) <= 12
    assert all(item.strip() for item in checklist.items)


async def test_blank_text_is_rejected() -> None:
    with pytest.raises(PermanentLLMError) as caught:
        await OfflineLLM().summarize(" \n\t ")
    assert caught.value.code is ErrorCode.LLM_REJECTED


async def test_huge_input_runs() -> None:
    # Not timed: a quadratic algorithm would take minutes here, so finishing is the test.
    sentence = "Clinicians should assess renal function in patient group {} before metformin. "
    text = "".join(sentence.format(i) for i in range(2600))[:200_000]
    llm = OfflineLLM()
    summary = await llm.summarize(text)
    checklist = await llm.write_checklist(summary.text, text)
    assert summary.text
    assert len(checklist.items) == 12
    unpunctuated = await llm.summarize("word " * 40_000)
    assert len(unpunctuated.text) < 5 * 500


@settings(max_examples=150, deadline=None)
@given(st.text(min_size=1, max_size=2000))
async def test_fuzz_never_raises_and_never_empty_on_non_blank_text(text: str) -> None:
    await _check_outputs(text)


async def _check_outputs(text: str) -> None:
    llm = OfflineLLM()
    if not text.strip():
        with pytest.raises(PermanentLLMError):
            await llm.summarize(text)
        return
    summary = await llm.summarize(text)
    checklist = await llm.write_checklist(summary.text, text)
    assert summary.text.strip()
    assert 1 <= len(checklist.items) <= 12
    assert all(item.strip() and len(item) <= 200 for item in checklist.items)


_PIECES = st.sampled_from(
    [
        "Clinicians",
        "should",
        "must",
        "avoid",
        "assess",
        "patients",
        "not",
        "be",
        "metformin",
        "Dr.",
        "e.g.",
        ".",
        ",",
        "!",
        "?",
        "\n",
        "- ",
        "1. ",
        "。",
        "应",
        "😀",
        "recommended",
        "is",
    ]
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_PIECES, min_size=1, max_size=120).map(" ".join))
async def test_fuzz_guideline_like_text(text: str) -> None:
    await _check_outputs(text)
