"""The one closed-question reader: every method that asks a model to pick an option calls
:func:`choose`.

Two ways to read an answer, and neither guesses:

1. **Option probabilities** (``via="probs"``), where the backend can score answers
   (the local backend always; an OpenAI-compatible endpoint when it returns logprobs).
   Each option's *complete* answer, in the format the prompt asks for (``answers``:
   option -> exact answer string, default the option letter itself), is scored as a
   whole: a reply "A fair split" is not answer "A". The raw probabilities are summed
   (``mass``: how much of the model's probability fell on the offered answers at all)
   and renormalised over the options (``probs``). Under ``min_mass`` the model was
   mostly saying something else: the answer is **unreadable**, a counted failure,
   never the least-bad option.
2. **Generate and parse** (``via="parse"``) where the backend has no scores: one short
   reply per question (greedy unless ``params`` say otherwise), read by
   :func:`valdemo.parsing.parse_choice` (letters must stand alone: "C", "C.", "(C)",
   "Answer: C", "I choose C") or, for longer answer strings, by an exact match.

Every call is batched (one backend batch call for all conversations) and cached (the
backend is a :class:`~valdemo.models.cache.CachedModel`). The threshold is this
project's own choice, not a paper's: :data:`DEFAULT_MIN_MASS`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from ..models.base import ChatModel, Conversation, GenParams, ProgressFn, answer_strings, ends_answer
from ..parsing import Parsed, parse_choice
from .result import Failures

#: Below this share of probability on the offered answers, an answer is unreadable
#: (this project's own threshold: more than half the model's probability went to
#: replies that are none of the options).
DEFAULT_MIN_MASS = 0.5
#: Token budget of a generated answer when the backend cannot score options.
DEFAULT_ANSWER_TOKENS = 16


@dataclass(frozen=True)
class Choice:
    """One closed question's answer, or a counted failure, with its evidence.

    Attributes:
        option: the chosen option, or None when the answer is unreadable.
        reason: why it is unreadable ("" when read).
        probs: probabilities renormalised over the options (``via="probs"``), else None.
        mass: raw probability that fell on the options' complete answers (``via="probs"``).
        text: the generated reply (``via="parse"``), else None.
        via: ``probs`` or ``parse``.
    """

    option: str | None
    reason: str = ""
    probs: dict[str, float] | None = None
    mass: float | None = None
    text: str | None = None
    via: str = "parse"

    @property
    def ok(self) -> bool:
        return self.option is not None

    def sampled(self, temperature: float, seed: int) -> str | None:
        """The option drawn from ``probs ** (1/T)`` renormalised with a seeded generator (argmax
        at T == 0, ties to the earlier option). Parsed and unreadable answers return ``option``."""
        if self.probs is None or self.option is None:
            return self.option
        names = list(self.probs)
        if temperature <= 0:
            return max(names, key=lambda x: (self.probs[x], -names.index(x)))
        import numpy as np

        p = np.array([max(self.probs[x], 0.0) for x in names], dtype=float)
        with np.errstate(divide="ignore"):
            logits = np.where(p > 0, np.log(np.where(p > 0, p, 1.0)), -np.inf) / temperature
        logits -= logits.max()
        w = np.exp(logits)
        return names[int(np.random.default_rng(seed).choice(len(names), p=w / w.sum()))]

    def as_dict(self) -> dict:
        return {"option": self.option, "ok": self.ok, "reason": self.reason, "via": self.via,
                "probs": self.probs, "mass": self.mass, "text": self.text}


def from_probs(raw: Mapping[str, float], options: Sequence[str], min_mass: float = DEFAULT_MIN_MASS) -> Choice:
    """A Choice from raw (unnormalised) probabilities of each option's complete answer."""
    scores = {o: max(float(raw.get(o, 0.0)), 0.0) for o in options}
    mass = sum(scores.values())
    if mass <= 0:
        return Choice(None, f"mass on options {mass:.3f} below threshold {min_mass:g}", None, 0.0, via="probs")
    probs = {o: s / mass for o, s in scores.items()}
    if mass < min_mass:
        return Choice(None, f"mass on options {mass:.3f} below threshold {min_mass:g}", probs, mass, via="probs")
    best = max(options, key=lambda o: (probs[o], -list(options).index(o)))
    return Choice(best, "", probs, mass, via="probs")


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().strip("*`'\"").strip().rstrip(".!").strip()).casefold()


def read_answer(text: str | None, options: Sequence[str], answers: Mapping[str, str] | None = None) -> Parsed:
    """Read a generated reply: single-character answers with :func:`parse_choice`; longer
    answer strings by an exact match of the whole reply, or of its start where the answer
    ends there ("Not applicable. The text..."). Never a guess: no match is a failure."""
    answer_of = answer_strings(options, answers)
    if all(len(a) == 1 for a in answer_of.values()):
        parsed = parse_choice(text, list(answer_of.values()))
        if not parsed.ok:
            return parsed
        option_of = {a.upper(): o for o, a in answer_of.items()}
        return Parsed(option_of[parsed.value], True)
    if text is None or not text.strip():
        return Parsed.fail("empty")
    said = _norm(text)
    exact = [o for o, a in answer_of.items() if _norm(a) == said]
    if exact:
        return Parsed(exact[0], True)
    lead = [o for o, a in answer_of.items() if said.startswith(_norm(a)) and ends_answer(said[len(_norm(a)):])]
    if len(lead) == 1:
        return Parsed(lead[0], True)
    return Parsed.fail("ambiguous" if lead else "no option")


def choose(
    model: ChatModel,
    conversations: Sequence[Conversation],
    options: Sequence[str],
    *,
    answers: Mapping[str, str] | None = None,
    params: GenParams | None = None,
    progress: ProgressFn | None = None,
    min_mass: float = DEFAULT_MIN_MASS,
    parse: Callable[[str | None], Parsed] | None = None,
    seeds: Sequence[int | None] | None = None,
) -> list[Choice]:
    """Ask ``model`` each closed question in ``conversations``; one :class:`Choice` each.

    Args:
        options: the option names (e.g. ``"ABC"`` or ``["A", "B", "C"]``); a Choice's
            ``option`` is one of them or None.
        answers: option -> the exact answer string the prompt asks for (default: the
            option itself).
        params: generation settings for the parse path (default: greedy,
            :data:`DEFAULT_ANSWER_TOKENS` tokens). Option scoring ignores them.
        progress: called with (done, total) during the one backend batch call.
        min_mass: threshold on the probability mass on the options (0..1).
        parse: a reader for generated replies, returning a Parsed whose value is an option
            (default :func:`read_answer`).
        seeds: per conversation, the generation seed of the parse path (one ``chat_batch`` per
            distinct seed, so a reply does not depend on which seeds were asked beside it); default
            ``params.seed`` for all. Option scoring reads every conversation in one call either way.
    """
    options = list(options)
    if not 0.0 <= min_mass <= 1.0:
        raise ValueError(f"min_mass must be in 0..1, got {min_mass}")
    answer_of = answer_strings(options, answers)
    if not conversations:
        return []
    raw = model.answer_probs_batch(conversations, options, progress, answers=answer_of)
    if raw is not None:
        return [from_probs(r, options, min_mass) for r in raw]
    params = params or GenParams(max_new_tokens=DEFAULT_ANSWER_TOKENS)
    if seeds is None:
        replies = model.chat_batch(conversations, params, progress)
    else:
        if len(seeds) != len(conversations):
            raise ValueError(f"{len(seeds)} seeds for {len(conversations)} conversations")
        groups: dict[int | None, list[int]] = {}
        for k, seed in enumerate(seeds):
            groups.setdefault(seed, []).append(k)
        replies = [None] * len(conversations)
        done = 0
        for seed, ks in groups.items():
            sub = None if progress is None else (lambda d, _t, base=done: progress(base + d, len(conversations)))
            for k, reply in zip(ks, model.chat_batch([conversations[k] for k in ks], replace(params, seed=seed), sub),
                                strict=True):
                replies[k] = reply
            done += len(ks)
    return [read_text(reply.text, options, answer_of, parse) for reply in replies]


def read_text(text: str | None, options: Sequence[str], answers: Mapping[str, str] | None = None,
              parse: Callable[[str | None], Parsed] | None = None) -> Choice:
    """A Choice from a reply generated elsewhere (e.g. streamed to the page): the parse path of
    :func:`choose` for one text."""
    options = list(options)
    parsed = (parse or (lambda t: read_answer(t, options, answers)))(text)
    if parsed.ok and parsed.value not in options:
        raise ValueError(f"parse returned {parsed.value!r}, not one of the options {options}")
    return Choice(parsed.value if parsed.ok else None, "" if parsed.ok else parsed.reason, text=text, via="parse")


def tally(choices: Sequence[Choice], step: str) -> Failures:
    """The unreadable answers among ``choices``, counted with their denominator."""
    failures = Failures(step)
    for c in choices:
        failures.add(c.ok, reason_kind(c.reason))
    return failures


def reason_kind(reason: str) -> str:
    """Group reasons for counting ("mass on options 0.120 below ..." -> "mass below threshold")."""
    return "mass on options below threshold" if reason.startswith("mass on options") else reason
