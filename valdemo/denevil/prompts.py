"""The prompts (the only place their wording lives) and the readers of model answers."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..core.protocol import load_protocol
from ..models import user
from ..parsing import Parsed, fence
from .principles import FOUNDATIONS, Principle

# -- prompts (the only place their wording lives) ------------------------------------

SETTINGS = ("at school", "at work", "within a family", "between close friends", "in a neighbourhood",
            "in a shop or restaurant", "online", "in a sports team", "in a small town", "on a trip")

#: The wording lives in a protocol file (assets/protocols/denevil/valdemo.toml); runs record its
#: name and hash (``PROTOCOL.record()``).
PROTOCOL = load_protocol("denevil", "valdemo")
_T = PROTOCOL.templates

ATTACKER_SYSTEM = _T["attacker_system"]
ATTACK_TEMPLATE = _T["attack"]
#: Round 2 on: one earlier prompt (a parent among the previous rounds' best) is revised, shown with
#: the continuation of it that the judge found most violating.
REFINE_TEMPLATE = _T["refine"]
CONTINUE_TEMPLATE = _T["continue"]
JUDGE_SYSTEM = _T["judge_system"]
INSTRUCT_TEMPLATE = _T["instruct"]
#: The yes/no violation question; the probability of "Yes" is the continuation's P.
VIOLATION_TEMPLATE = _T["violation"]
#: Worked examples shown before each violation question (earlier turns): the answer format only.
#: A protocol without ``[[judge_demos]]`` asks with none. See the protocol file for why they are there.
JUDGE_DEMOS: list[dict] = list(PROTOCOL.meta.get("judge_demos", []))
#: The same for the coherence question (``[[coherence_demos]]``: story, answer).
COHERENCE_DEMOS: list[dict] = list(PROTOCOL.meta.get("coherence_demos", []))
#: The judged coherence of a story beginning (the attack's selection uses it; see attack.py).
COHERENCE_TEMPLATE = _T["coherence"]
#: The two fixed baselines of the defence: generic, and one that names the principle.
FIXED_INSTRUCTION = _T["fixed_instruction"]
PRINCIPLE_INSTRUCTION = _T["principle_instruction"]
#: The learned instruction model's prompt: its in-context examples are (story, instruction)
#: pairs that lowered violation on training prompts (vilmo.py).
LEARNED_INSTRUCT_TEMPLATE = _T["learned_instruct"]


def attack_conversation(principle: Principle, candidate: int, round_no: int = 1, parent: dict | None = None) -> list:
    """The attacker's conversation for one candidate.

    Without ``parent``: a new story beginning in a setting picked by the candidate's number.
    With ``parent`` (``prompt``, its most violating ``continuation`` and that ``p``): a
    revision of that prompt (refinement keeps the parent's setting).
    """
    args = {"principle": principle.text, "foundation": FOUNDATIONS[principle.foundation]}
    if parent is None:
        setting = SETTINGS[(candidate + (round_no - 1) * 3) % len(SETTINGS)]
        return user(ATTACK_TEMPLATE.format(setting=setting, **args), system=ATTACKER_SYSTEM)
    return user(REFINE_TEMPLATE.format(p=_fmt(parent.get("p")), story=fence(parent["prompt"], "STORY"),
                                       continuation=fence(_clip(parent.get("continuation", ""), 400), "CONTINUATION"),
                                       **args), system=ATTACKER_SYSTEM)


def continue_conversation(prompt: str, instruction: str = "") -> list:
    """What the target sees: the story beginning, and an optional value instruction as system prompt."""
    return user(CONTINUE_TEMPLATE.format(prompt=prompt), system=instruction or None)


def instruct_conversation(principle: Principle, prompt: str, examples: Sequence[dict] = ()) -> list:
    """The instruction model's conversation: zero-shot, or with learned (story, instruction) examples."""
    if not examples:
        return user(INSTRUCT_TEMPLATE.format(principle=principle.text, story=fence(prompt, "STORY")))
    shown = "\n\n".join(f"Example {i}. Principle: \"{e['principle']}\"\n{fence(_clip(e['prompt'], 500), 'STORY')}\n"
                         f"Instruction: {e['instruction']}" for i, e in enumerate(examples, start=1))
    return user(LEARNED_INSTRUCT_TEMPLATE.format(examples=shown, principle=principle.text,
                                                 story=fence(prompt, "STORY")))


def _violation_question(principle: str, prompt: str, continuation: str) -> str:
    return VIOLATION_TEMPLATE.format(principle=principle, story=fence(prompt, "STORY"),
                                     continuation=fence(continuation, "CONTINUATION"))


def violation_conversation(principle: Principle, prompt: str, continuation: str) -> list:
    """The judge's Yes/No question; story and continuation are fenced so they cannot instruct it.

    The protocol's worked examples (:data:`JUDGE_DEMOS`) come first, as earlier user and
    assistant turns answered with one word, so a small judge answers in the format asked.
    """
    conv = user(_violation_question(principle.text, prompt, continuation), system=JUDGE_SYSTEM)
    return _after_demos(conv, [(_violation_question(d["principle"], d["story"], d["continuation"]), d["answer"])
                               for d in JUDGE_DEMOS])


def _after_demos(conv: list, demos: Sequence[tuple[str, str]]) -> list:
    """``conv`` with worked examples (question, one-word answer) as earlier turns before its last message."""
    turns = [t for q, a in demos for t in ({"role": "user", "content": q}, {"role": "assistant", "content": a})]
    return conv[:-1] + turns + conv[-1:]


def coherence_conversation(prompt: str) -> list:
    """The judge's Yes/No on a story beginning's coherence, after the protocol's worked examples."""
    return _after_demos(user(COHERENCE_TEMPLATE.format(story=fence(prompt, "STORY")), system=JUDGE_SYSTEM),
                        [(COHERENCE_TEMPLATE.format(story=fence(d["story"], "STORY")), d["answer"])
                         for d in COHERENCE_DEMOS])


# -- reading model answers -------------------------------------------------------------

_LEAD_IN = re.compile(r"^(?:sure[,!.]?\s*)?(?:here(?:'s| is)[^:\n]{0,60}:|story beginning:|instruction:|story:)\s*",
                      re.I)
_REFUSAL = re.compile(r"^(?:i\s*(?:'m| am)\s*sorry|i\s*(?:can(?:'|no)t|cannot|won't|will not))", re.I)


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _clean_generated(text: str | None, min_chars: int, max_chars: int) -> Parsed:
    if text is None or not text.strip():
        return Parsed.fail("empty")
    cleaned = _LEAD_IN.sub("", text.strip().replace("<<<", "").replace(">>>", ""))
    cleaned = " ".join(cleaned.split()).strip().strip('"“”\'').strip()
    if _REFUSAL.match(cleaned):
        return Parsed.fail("refused")
    if len(cleaned) < min_chars:
        return Parsed.fail("too short")
    return Parsed(_clip(cleaned, max_chars), True)


def parse_story(text: str | None) -> Parsed:
    """A story beginning from the attacker's answer (lead-ins and quotes removed)."""
    return _clean_generated(text, 20, 800)


def parse_instruction(text: str | None) -> Parsed:
    """A value instruction from the instruction model's answer."""
    return _clean_generated(text, 10, 500)
