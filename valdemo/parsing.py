"""Robust reading of model answers: a letter among options, a score, a JSON object.

Every reader returns a :class:`Parsed`: either a value, or ``ok=False`` with a
reason. Nothing here guesses: an answer that names two options, or none, is a
failure, and callers count failures (see :class:`ParseStats`) and show them.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Parsed:
    value: Any
    ok: bool
    reason: str = ""

    @classmethod
    def fail(cls, reason: str) -> Parsed:
        return cls(None, False, reason)


@dataclass
class ParseStats:
    """Counts of successes and failures (by reason) across many parses."""

    ok: int = 0
    failed: int = 0
    reasons: Counter = field(default_factory=Counter)

    def add(self, parsed: Parsed) -> Parsed:
        if parsed.ok:
            self.ok += 1
        else:
            self.failed += 1
            self.reasons[parsed.reason] += 1
        return parsed

    def as_dict(self) -> dict:
        return {"ok": self.ok, "failed": self.failed, "reasons": dict(self.reasons)}


_LEAD_IN = re.compile(
    r"^(?:the\s+)?(?:correct\s+|final\s+|best\s+|my\s+)?(?:answer|option|choice)\s*(?:is|:|=)?\s*", re.I
)


def _is_word_use(letter: str, following: str) -> bool:
    """"A cat", "I think", "I'm": the article/pronoun or a contraction, not an option letter."""
    if re.match(r"['\u2019][A-Za-z]", following):
        return True
    return letter in {"A", "I"} and bool(re.match(r"\s+[a-z]", following))


def parse_choice(text: str | None, options: Sequence[str]) -> Parsed:
    """Read one letter among ``options`` (e.g. "ABC") from a model's answer.

    Accepts "B", "(b)", "B.", "B. No", "The answer is B.", "Answer: [B]",
    "**B**", "I choose option B because ...". Fails on empty text, on text that
    names no option, and on text that names two different options as answers.
    """
    if text is None or not text.strip():
        return Parsed.fail("empty")
    letters = [o.upper() for o in options]
    alt = "".join(re.escape(letter) for letter in letters)
    cleaned = text.strip().replace("*", "").replace("`", "")
    cleaned = re.sub(r"^(?:<\|[^>]*\|>\s*)+", "", cleaned).strip()  # stray chat tokens
    first = _LEAD_IN.sub("", cleaned, count=1)
    either = re.search(rf"\b([{alt}])\)?\s+or\s+\(?([{alt}])\b", cleaned)
    if either and either.group(1) != either.group(2):
        return Parsed.fail("ambiguous")
    # 1. The answer starts with the letter: "B", "B.", "(b) no", "[B]", "B: yes", "B)".
    m = re.match(rf"^[\(\[\{{'\"]?\s*([{alt}])\s*(?=[\)\]\}}'\".:,;\-]|$|\s)", first, re.I)
    if m:
        letter, following = m.group(1), first[m.end():]
        bracketed = first[:1] in "([{'\"" or following[:1] in ")]}.:,;-'\"" or not following.strip()
        if (letter.isupper() or bracketed) and not _is_word_use(letter, following):
            return Parsed(letter.upper(), True)
    # 2. An explicit statement anywhere: "answer is B", "option (B)", "I choose B".
    stated = re.findall(
        rf"(?:answer|option|choice|choose|select|pick|go with)\s*(?:is|would be|:|=)?\s*"
        rf"[\(\[]?\s*([{alt}])(?![A-Za-z])",
        cleaned,
        re.I,
    )
    stated = [s.upper() for s in stated]
    if stated:
        if len(set(stated)) == 1:
            return Parsed(stated[0], True)
        return Parsed.fail("ambiguous")
    # 3. Capital letters standing alone as words, e.g. "I think B." -- only if exactly one.
    lone = {
        hit.group(1)
        for hit in re.finditer(rf"(?<![A-Za-z'])([{alt}])(?![A-Za-z'])", cleaned)
        if not _is_word_use(hit.group(1), cleaned[hit.end():])
    }
    if len(lone) == 1:
        return Parsed(lone.pop(), True)
    if len(lone) > 1:
        return Parsed.fail("ambiguous")
    return Parsed.fail("no option")


_WORD_SCORES = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "zero": 0}


def parse_score(text: str | None, low: int = 1, high: int = 5, allow_zero: bool = False) -> Parsed:
    """Read an integer score in ``[low, high]`` (or 0 where ``allow_zero``).

    Accepts "4", "Score: 4", "4/5", "I'd rate it 4 out of 5", "**3**", "four".
    Fails on out-of-range numbers and on answers with two different scores.
    """
    if text is None or not text.strip():
        return Parsed.fail("empty")
    cleaned = text.replace("*", "").strip()
    valid = set(range(low, high + 1)) | ({0} if allow_zero else set())
    # Prefer an explicit "score/rating: N" or "N/5", "N out of 5".
    explicit = re.findall(r"(?:score|rating|rate|grade)\D{0,12}?(-?\d+(?:\.\d+)?)", cleaned, re.I)
    explicit += re.findall(rf"(-?\d+(?:\.\d+)?)\s*(?:/|out of)\s*{high}\b", cleaned, re.I)
    candidates = explicit or re.findall(r"(?<![\w.])(-?\d+(?:\.\d+)?)(?![\w.]|/\d)", cleaned)
    if not candidates:
        words = re.findall(r"\b(" + "|".join(_WORD_SCORES) + r")\b", cleaned.lower())
        candidates = [str(_WORD_SCORES[w]) for w in words]
    if not candidates:
        return Parsed.fail("no number")
    numbers = []
    for c in candidates:
        value = float(c)
        if value != int(value):
            return Parsed.fail("not an integer")
        numbers.append(int(value))
    distinct = list(dict.fromkeys(numbers))
    if explicit:
        distinct = distinct[:1]
    if len(distinct) > 1:
        in_range = [n for n in distinct if n in valid]
        if len(in_range) != 1:
            return Parsed.fail("ambiguous")
        distinct = in_range
    score = distinct[0]
    if score not in valid:
        return Parsed.fail("out of range")
    return Parsed(score, True)


def parse_json_object(text: str | None) -> Parsed:
    """Find the first JSON object in ``text`` (bare, in a ```json fence, or inside prose)."""
    if text is None or not text.strip():
        return Parsed.fail("empty")
    fenced = re.search(r"```(?:json)?\s*(\{.*?\})\s*```", text, re.S)
    if fenced:
        try:
            obj = json.loads(fenced.group(1))
            if isinstance(obj, dict):
                return Parsed(obj, True)
        except json.JSONDecodeError:
            pass
    decoder = json.JSONDecoder()
    for start in [m.start() for m in re.finditer(r"\{", text)]:
        try:
            obj, _ = decoder.raw_decode(text[start:])
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return Parsed(obj, True)
    return Parsed.fail("no json object")


def parse_float(text: str | None, low: float = 0.0, high: float = 1.0) -> Parsed:
    """Read one number in ``[low, high]`` ("0.8", "Violation: 0.75", "80%" -> 0.8)."""
    if text is None or not text.strip():
        return Parsed.fail("empty")
    m = re.search(r"(-?\d+(?:\.\d+)?)\s*(%)?", text)
    if not m:
        return Parsed.fail("no number")
    value = float(m.group(1)) / (100.0 if m.group(2) else 1.0)
    if not low <= value <= high:
        return Parsed.fail("out of range")
    return Parsed(value, True)


def fence(text: str, tag: str = "TEXT") -> str:
    """Fence untrusted text for a judge prompt so it reads as data, not instructions.

    Any copy of the fence markers inside the text is neutralised, so the text
    cannot close the fence early.
    """
    open_tag, close_tag = f"<<<{tag}>>>", f"<<<END {tag}>>>"
    safe = text.replace("<<<", "< < <").replace(">>>", "> > >")
    return f"{open_tag}\n{safe}\n{close_tag}"


def parse_leading_choice(text: str | None, options: Sequence[str]) -> Parsed:
    """The option a recorded answer *starts* with, and nothing else.

    Accepts leading whitespace, then the letter alone or followed by ``.``, ``)``, ``:``,
    ``,``, a line break or the end ("C", "A.", "(B) no", "B\\n\\nQuestion: ..."). An answer
    that starts any other way ("Question: ...", "Please ...", "A person ...") fails with
    reason ``no leading option``: no letter is looked for further on, because a model that
    continued a few-shot pattern writes letters that answer questions nobody asked.
    """
    if text is None or not text.strip():
        return Parsed.fail("empty")
    alt = "".join(re.escape(o.upper()) for o in options)
    m = re.match(rf"\s*([\(\[]?)\s*([{alt}])(?=$|[\)\]\.:,;]|\s)", text)
    if not m or _is_word_use(m.group(2), text[m.end():]):
        return Parsed.fail("no leading option")
    following = text[m.end():]
    if m.group(1) and not re.match(r"\s*[\)\]]", following):
        return Parsed.fail("no leading option")
    return Parsed(m.group(2), True)
