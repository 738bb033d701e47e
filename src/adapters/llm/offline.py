"""The offline provider: an extractive summary and a rule-based checklist, no network.

Deterministic and honest: every output is built from the input text. The summary
keeps the most central sentences (TF-IDF vectors; a sentence's score is the sum of
its cosine similarities to all the others, computed in linear time against the
document centroid). The checklist rewrites the source text's recommendation
sentences ("Clinicians should assess X" → "Assess X.") as short imperative items.
Usage is reported as zero: no tokens were bought.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from typing import TypeVar

from application.errors import PermanentLLMError
from application.ports import Checklist, Summary
from domain import ErrorCode, Usage

_R = TypeVar("_R")

MAX_SUMMARY_SENTENCES = 5
MAX_CHECKLIST_ITEMS = 12
MAX_ITEM_CHARS = 200
# A "sentence" longer than this (text with no punctuation) is cut into word chunks.
MAX_SENTENCE_CHARS = 500
CHUNK_CHARS = 300
# Above this size (a few ms of work) the CPU work moves to a thread so the event loop
# that serves requests and heartbeats stays responsive. Each regex call in it is short
# (linear patterns over one sentence or one scan), so the GIL is handed back often.
THREAD_THRESHOLD_CHARS = 2_000

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]|(?:(?![{_CJK}])[^\W_])+")
_BULLET_MARKS = (
    "-*\u2022\u00b7\u2023\u25e6\u25aa\u25ab\u25cf\u25cb\u25a0\u25a1\u27a2\u27a4\u25ba\u2013\u2014"
)
_BULLET = re.compile(rf"^(?:[{_BULLET_MARKS}]++|\(?\d{{1,3}}[.)]|\(?[a-zA-Z]\)|\([ivxIVX]++\))\s++")
# Every pattern here runs over client text, so each one runs in linear time: a run is
# taken whole (possessive `++`/`*+`, never given back), and a match may only start where
# a run starts (the look-behinds), so no run is rescanned from each of its positions.
# tests/unit/adapters/test_linear_regex.py holds each one to that on hostile shapes.
_BOUNDARY = re.compile(
    r"(?<![.!?\u2026])([.!?\u2026]++)[\"'\u201d\u2019)\]]*+\s++"
    r"|(?<![\u3002\uff01\uff1f])[\u3002\uff01\uff1f]++[\u300d\u300f\u201d\u2019)]*+\s*+"
)
_PREV_WORD = re.compile(r"(?<!\S)(\S++)$")
_SPACES = re.compile(r"\s+")
_TERMINAL_CHARS = r"\s.;:,!?\u3002\uff1b\uff1a\uff0c\uff01\uff1f\u2026"
_TERMINAL = re.compile(rf"(?<![{_TERMINAL_CHARS}])[{_TERMINAL_CHARS}]++$")
_ENDS_SENTENCE = re.compile(r"[.!?:;\u3002\uff01\uff1f\uff1a\uff1b]$")
_DOTTED_ACRONYM = re.compile(r"^(?:[A-Za-z]\.)++[A-Za-z]$")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Abbreviations after which a period almost never ends the sentence.
_ABBREVIATIONS = _words(
    "dr mr mrs ms prof st fig figs no nos vs e.g i.e eg ie cf approx ca p pp vol ref sect "
    "ch eq al incl esp resp dept jr sr"
)

_STOPWORDS = _words(
    "a an and are as at be been but by can could did do does for from had has have he her "
    "his how i if in into is it its may might more most no nor not of on or our should so "
    "such than that the their them then there these they this those to was we were what "
    "when where which while who will with would you your also all any each other some"
)

_CUE = re.compile(
    r"\b(?:should|must|shall|ought to|needs? to|recommend(?:s|ed)?|suggest(?:s|ed)?|"
    r"avoid|do not|don't|consider|ensure|offer|administer|monitor|assess|refer|"
    r"(?:is|are) (?:not )?(?:indicated|contraindicated|advised|required|preferred))\b"
    r"|应|必须|建议|避免|不要|推荐",
    re.IGNORECASE,
)

_IMPERATIVE_VERBS = _words(
    "avoid administer advise arrange assess ask check confirm consider continue counsel "
    "discontinue discuss document do don't ensure encourage educate evaluate examine "
    "explain follow give identify inform initiate involve keep limit maintain measure "
    "monitor obtain offer order perform prescribe provide record reduce refer reassess "
    "repeat review screen seek start stop suspend switch take test titrate treat use "
    "verify withhold"
)

_ACTORS = _words(
    "clinician clinicians physician physicians doctor doctors practitioner practitioners "
    "prescriber prescribers provider providers professional professionals nurse nurses "
    "staff team teams you we pharmacist pharmacists surgeon surgeons midwife midwives gp "
    "gps specialist specialists workers clinic clinics services service commissioners "
    "trusts"
)

_ADVERB = (
    r"(?:also|always|usually|routinely|only|then|still|first|generally|normally|preferably|"
    r"ideally|immediately|promptly|regularly|carefully|initially|subsequently|now|further|"
    r"strongly|typically)"
)
_CONNECTIVE = re.compile(
    r"^(?:however|therefore|thus|hence|in addition|additionally|also|finally|furthermore|"
    r"moreover|importantly|in general|overall|where possible|if possible),?\s++",
    re.IGNORECASE,
)
_MODAL = re.compile(
    r"\b(?P<modal>should|must|shall|ought to|needs? to|has to|have to|"
    r"(?:is|are) (?:advised|recommended|required|expected) to)\s++"
    rf"(?P<adv1>(?:{_ADVERB}\s++)*)(?P<neg>(?:not|never)\s++)?(?P<adv2>(?:{_ADVERB}\s++)*)"
    r"(?P<be>be\s++)?(?P<rest>\S.*)$",
    re.IGNORECASE,
)
_WE_RECOMMEND = re.compile(
    r"^(?:we|the (?:\w+ )?(?:panel|committee|guideline|group|authors|task force)|"
    r"this guideline|(?:the )?guidelines?)\s+(?:\w+ly\s+)?"
    r"(?P<verb>recommends?|suggests?|advises?|advocates?|endorses?)\s+"
    r"(?P<that>that\s+)?(?P<rest>\S.*)$",
    re.IGNORECASE,
)
_IT_IS = re.compile(
    r"^it is (?:\w+ly\s+)?(?:recommended|advised|suggested|essential|important|advisable|"
    r"necessary|vital|crucial)\s+(?P<link>that|to)\s+(?P<rest>\S.*)$",
    re.IGNORECASE,
)
_PASSIVE_REC = re.compile(
    r"^(?P<subj>.+?)(?<=\S)\s++(?:is|are)\s++(?P<neg>not\s++)?(?:(?:strongly|generally|usually|also|"
    r"routinely|currently|often)\s++)?(?P<verb>recommended|indicated|contraindicated|advised|"
    r"suggested|preferred)\b(?P<rest>.*)$",
    re.IGNORECASE,
)
_DETERMINERS = frozenset({"the", "all", "a", "an", "every", "each"})
_PREPOSITIONS = re.compile(
    r"\s(?:with|of|in|who|which|that|on|at|for|from|taking|receiving|aged|under|over)\s",
    re.IGNORECASE,
)


# -- sentences ---------------------------------------------------------------


def split_sentences(text: str) -> list[str]:
    """The text's sentences, in order. Lines and bullets are boundaries; a line that
    continues a hard-wrapped sentence is joined back; overlong runs are chunked."""
    sentences: list[str] = []
    for segment in _segments(text):
        for sentence in _split_segment(segment):
            sentences.extend(_chunk(sentence))
    return sentences


def _segments(text: str) -> list[str]:
    segments: list[str] = []
    current: list[str] = []

    def flush() -> None:
        if current:
            segments.append(" ".join(current))
            current.clear()

    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            flush()
            continue
        bullet = _BULLET.match(line)
        if bullet:
            flush()
            line = line[bullet.end() :].strip()
            if line:
                current.append(line)
        elif current and _continues(current[-1], line):
            current.append(line)
        else:
            flush()
            current.append(line)
    flush()
    return segments


def _continues(previous: str, line: str) -> bool:
    # A lower-case start, or a long line cut mid-sentence, reads as hard-wrapped prose;
    # a short unpunctuated line (a heading) does not.
    if line[0].islower():
        return True
    return len(previous) > 50 and not _ENDS_SENTENCE.search(previous)


def _split_segment(segment: str) -> list[str]:
    pieces: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(segment):
        if match.group(1) is not None and not _is_boundary(segment, match):
            continue
        piece = segment[start : match.end()].strip()
        if piece:
            pieces.append(piece)
        start = match.end()
    rest = segment[start:].strip()
    if rest:
        pieces.append(rest)
    return pieces


def _is_boundary(segment: str, match: re.Match[str]) -> bool:
    if "." not in match.group(1) or match.group(1) != ".":
        return True  # "!", "?", "...": always a boundary
    following = segment[match.end() : match.end() + 1]
    if following and (following.islower() or following.isdigit()):
        return False
    before = _PREV_WORD.search(segment[max(0, match.start() - 24) : match.start()])
    if before is None:
        return True
    word = before.group(1).lstrip("([\"'").lower()
    if word in _ABBREVIATIONS or _DOTTED_ACRONYM.match(word):
        return False
    return not (len(word) == 1 and word.isalpha())  # an initial: "J. Smith"


def _chunk(sentence: str) -> list[str]:
    if len(sentence) <= MAX_SENTENCE_CHARS:
        return [sentence]
    chunks: list[str] = []
    rest = sentence
    while len(rest) > MAX_SENTENCE_CHARS:
        cut = rest.rfind(" ", CHUNK_CHARS // 2, CHUNK_CHARS)
        if cut <= 0:
            cut = CHUNK_CHARS
        chunks.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    if rest:
        chunks.append(rest)
    return [c for c in chunks if c]


# -- centrality --------------------------------------------------------------


def _tokens(sentence: str) -> list[str]:
    return [
        t
        for t in _TOKEN.findall(sentence.lower())
        if t not in _STOPWORDS and (len(t) > 1 or not t.isascii())
    ]


def centrality(sentences: list[str]) -> list[float]:
    """Each sentence's summed cosine similarity to every other sentence (TF-IDF).

    Σ_j≠i cos(v_i, v_j) = v_i · (Σ_j v_j) - v_i · v_i, and v_i · v_i is 1 for a unit
    vector, so one pass against the centroid replaces the n² pairwise products.
    """
    token_lists = [_tokens(s) for s in sentences]
    n = len(sentences)
    document_frequency: Counter[str] = Counter()
    for tokens in token_lists:
        document_frequency.update(set(tokens))
    idf = {w: math.log((1 + n) / (1 + df)) + 1.0 for w, df in document_frequency.items()}
    vectors: list[dict[str, float]] = []
    for tokens in token_lists:
        weights = {w: count * idf[w] for w, count in Counter(tokens).items()}
        norm = math.sqrt(sum(x * x for x in weights.values()))
        vectors.append({w: x / norm for w, x in weights.items()} if norm else {})
    centroid: defaultdict[str, float] = defaultdict(float)
    for vector in vectors:
        for w, x in vector.items():
            centroid[w] += x
    return [
        sum(x * centroid[w] for w, x in vector.items()) - (1.0 if vector else 0.0)
        for vector in vectors
    ]


def _normalised(text: str) -> str:
    return _SPACES.sub(" ", text).strip().casefold()


def _top_in_order(sentences: list[str], k: int, scores: list[float]) -> list[int]:
    """Indices of the k best-scoring distinct sentences, in their original order."""
    ranked = sorted(range(len(sentences)), key=lambda i: (-scores[i], i))
    chosen: list[int] = []
    seen: set[str] = set()
    for i in ranked:
        key = _normalised(sentences[i])
        if key in seen:
            continue
        seen.add(key)
        chosen.append(i)
        if len(chosen) == k:
            break
    return sorted(chosen)


# -- summary -----------------------------------------------------------------


def summary_sentence_count(sentence_count: int) -> int:
    return max(1, min(MAX_SUMMARY_SENTENCES, math.ceil(sentence_count / 4)))


def summary_sentences(text: str) -> list[str]:
    """The sentences the summary keeps, in their original order."""
    sentences = split_sentences(text)
    if not sentences:
        return []
    k = summary_sentence_count(len(sentences))
    chosen = _top_in_order(sentences, k, centrality(sentences))
    return [sentences[i] for i in chosen]


def summarize_text(text: str) -> str:
    return " ".join(summary_sentences(text))


# -- checklist ---------------------------------------------------------------


def checklist_items(summary: str, source_text: str) -> tuple[str, ...]:
    """Imperative items from the source's recommendation sentences (1 to 12).

    Without any recommendation sentence, the summary's sentences stand in; the
    result is never empty for text with any content.
    """
    sentences = split_sentences(source_text)
    candidates = [i for i, s in enumerate(sentences) if _CUE.search(s)]
    items: list[str] = []
    if candidates:
        scores = centrality(sentences)
        rewritten = {i: to_imperative(sentences[i]) for i in candidates}
        ranked = sorted(candidates, key=lambda i: (-scores[i], i))
        kept = _distinct(((i, rewritten[i]) for i in ranked), MAX_CHECKLIST_ITEMS)
        items = [item for _, item in sorted(kept)]
    if not items:
        fallback = split_sentences(summary) or summary_sentences(source_text)
        kept = _distinct(enumerate(_finish(s) for s in fallback), MAX_CHECKLIST_ITEMS)
        items = [item for _, item in kept]
    if not items:
        last_resort = (summary.strip() or source_text.strip())[:MAX_ITEM_CHARS]
        items = [last_resort] if last_resort else []
    return tuple(items)


def _distinct(items: Iterable[tuple[int, str]], limit: int) -> list[tuple[int, str]]:
    kept: list[tuple[int, str]] = []
    seen: set[str] = set()
    for index, item in items:
        key = _normalised(item)
        if not item or key in seen:
            continue
        seen.add(key)
        kept.append((index, item))
        if len(kept) == limit:
            break
    return kept


def to_imperative(sentence: str) -> str:
    """Rewrite one recommendation sentence as a short imperative item."""
    core = _CONNECTIVE.sub("", _TERMINAL.sub("", _SPACES.sub(" ", sentence).strip()))
    for rule in _RULES:
        rewritten = rule(core)
        if rewritten:
            return _finish(rewritten)
    return _finish(core)


def _already_imperative(core: str) -> str | None:
    first = core.split(" ", 1)[0].lower()
    return core if first in _IMPERATIVE_VERBS else None


def _we_recommend(core: str) -> str | None:
    match = _WE_RECOMMEND.match(core)
    if match is None:
        return None
    rest = match["rest"]
    if match["that"]:
        return _clause(rest)
    weak = match["verb"].lower().startswith("suggest")
    first = rest.split(" ", 1)[0].lower()
    verb = "Consider" if weak or first.endswith("ing") else "Use"
    return f"{verb} {rest}"


def _it_is(core: str) -> str | None:
    match = _IT_IS.match(core)
    if match is None:
        return None
    return match["rest"] if match["link"].lower() == "to" else _clause(match["rest"])


def _modal(core: str) -> str | None:
    match = _MODAL.search(core)
    if match is None:
        return None
    context, subject = _split_context(core[: match.start()].strip())
    negative = bool(match["neg"])
    adverbs = f"{match['adv1']}{match['adv2']}"
    rest = match["rest"]
    if match["be"]:
        if not subject:
            return None
        verb = "are" if _plural(subject) else "is"
        head = f"Ensure {_lower_first(subject)} {verb} {'not ' if negative else ''}{adverbs}{rest}"
    elif not subject or _is_actor(subject):
        head = f"{'Do not ' if negative else ''}{adverbs}{rest}"
    else:
        helper = ("do not " if _plural(subject) else "does not ") if negative else ""
        head = f"Ensure {_lower_first(subject)} {helper}{adverbs}{rest}"
    return _with_context(context, head)


def _passive_recommendation(core: str) -> str | None:
    match = _PASSIVE_REC.match(core)
    if match is None:
        return None
    context, subject = _split_context(match["subj"])
    verb = match["verb"].lower()
    if match["neg"] or verb == "contraindicated":
        lead = "Avoid"
    elif verb in {"recommended", "preferred", "advised"}:
        lead = "Use"
    else:
        lead = "Consider"
    return _with_context(context, f"{lead} {_lower_first(subject)}{match['rest']}")


_RULES: tuple[Callable[[str], str | None], ...] = (
    _already_imperative,
    _we_recommend,
    _it_is,
    _modal,
    _passive_recommendation,
)


def _clause(clause: str) -> str:
    """A that-clause: "clinicians assess X" → "assess X"; "patients receive X" →
    "Ensure patients receive X"; a clause with a modal goes through the modal rule."""
    modal = _modal(clause)
    if modal:
        return modal
    words = clause.split(" ")
    while words and words[0].lower() in _DETERMINERS:
        words = words[1:]
    for lead in (1, 2):  # "clinicians offer X", "healthcare professionals offer X"
        if len(words) > lead and words[lead - 1].lower() in _ACTORS:
            return " ".join(words[lead:])
    if clause.split(" ", 1)[0].lower() in _IMPERATIVE_VERBS:
        return clause
    return f"Ensure {_lower_first(clause)}"


def _split_context(subject: str) -> tuple[str, str]:
    """ "In adults with CKD, clinicians" → ("In adults with CKD", "clinicians")."""
    head, comma, tail = subject.rpartition(",")
    if comma and tail.strip():
        return head.strip(), tail.strip()
    return "", subject.strip()


def _with_context(context: str, head: str) -> str:
    if not context:
        return head
    return f"{context}, {_lower_first(head)}"


def _is_actor(subject: str) -> bool:
    last = subject.split()[-1].lower().strip("'\u2019")
    return last in _ACTORS


def _plural(subject: str) -> bool:
    """Whether the subject's head noun ("adults" in "all adults with diabetes") is plural."""
    head = _PREPOSITIONS.split(f" {subject} ", maxsplit=1)[0].split()
    if not head:
        return False
    last = head[-1].lower()
    return last.endswith("s") and not last.endswith(("ss", "us", "is"))


def _lower_first(text: str) -> str:
    """Lower-case a capitalised first word ("Patients"), never an acronym ("HbA1c")."""
    first = text.split(" ", 1)[0]
    if len(first) > 1 and first[0].isupper() and first[1:].islower():
        return text[0].lower() + text[1:]
    if len(first) == 1 and first in {"A"} and len(text) > 1:
        return "a" + text[1:]
    return text


def _finish(item: str) -> str:
    """Collapse spaces, capitalise, end with one period, trim to ~200 characters."""
    text = _SPACES.sub(" ", item).strip()
    stripped = _TERMINAL.sub("", text)
    if not any(ch.isalnum() for ch in stripped):
        return text[:MAX_ITEM_CHARS]
    text = stripped[0].upper() + stripped[1:]
    stop = "。" if re.match(rf"[{_CJK}]", text[-1]) else "."
    if len(text) + 1 > MAX_ITEM_CHARS:
        cut = text.rfind(" ", 0, MAX_ITEM_CHARS - 3)
        text = _TERMINAL.sub("", text[: cut if cut > MAX_ITEM_CHARS // 2 else MAX_ITEM_CHARS - 3])
        return f"{text}..."
    return f"{text}{stop}"


# -- the port ----------------------------------------------------------------


class OfflineLLM:
    """`LLMGateway` without a network: extractive summary, rule-based checklist."""

    def __init__(self, *, thread_threshold_chars: int = THREAD_THRESHOLD_CHARS) -> None:
        self._thread_threshold = thread_threshold_chars

    async def summarize(self, text: str) -> Summary:
        if not text.strip():
            raise PermanentLLMError(ErrorCode.LLM_REJECTED, "the text has nothing to summarise")
        summary = await self._run(lambda: summarize_text(text), size=len(text))
        if not summary.strip():
            summary = text.strip()[: MAX_SENTENCE_CHARS * 2]
        return Summary(text=summary, usage=Usage())

    async def write_checklist(self, summary: str, source_text: str) -> Checklist:
        items = await self._run(
            lambda: checklist_items(summary, source_text), size=len(summary) + len(source_text)
        )
        if not items:
            raise PermanentLLMError(ErrorCode.LLM_REJECTED, "the text has nothing to list")
        return Checklist(items=items, usage=Usage())

    async def _run(self, work: Callable[[], _R], *, size: int) -> _R:
        if size > self._thread_threshold:
            return await asyncio.to_thread(work)
        return work()
