"""Budget, call accounting and the batched model calls every DeNEVIL step shares."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import mean

from ..inputs import InputError, check_float, check_int
from ..models import ChatModel, GenParams, ProgressFn, get_model, unwrap
from ..parsing import ParseStats
from .principles import Principle
from .prompts import _clip, continue_conversation, judge_conversation, parse_judgement

ROLES = ("attacker", "target", "judge", "instructor")


# -- budget and accounting -----------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """How much an attack or defence may spend.

    ``max_new_tokens`` caps the target's continuations; ``attacker_tokens`` the
    story beginnings and instructions; ``judge_tokens`` the judge's answers.
    ``samples`` > 1 needs ``temperature`` > 0 (each sample gets its own seed).
    """

    rounds: int = 2
    candidates: int = 3
    samples: int = 1
    max_new_tokens: int = 64
    attacker_tokens: int = 96
    judge_tokens: int = 48
    threshold: float = 0.9
    keep: int = 2
    temperature: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        check_int(self.rounds, "rounds", 1, 10)
        check_int(self.candidates, "candidates", 1, 16)
        check_int(self.samples, "samples", 1, 8)
        check_int(self.max_new_tokens, "max new tokens", 1, 2048)
        check_int(self.attacker_tokens, "attacker tokens", 8, 2048)
        check_int(self.judge_tokens, "judge tokens", 4, 1024)
        check_float(self.threshold, "threshold", 0.0, 1.0)
        check_int(self.keep, "prompts kept for refinement", 1, 16)
        check_float(self.temperature, "temperature", 0.0, 2.0)
        if self.samples > 1 and self.temperature == 0:
            raise InputError("samples > 1 needs a temperature above 0 (greedy samples would all be the same)")

    @classmethod
    def from_inputs(cls, **kwargs) -> Budget:
        """A Budget from loosely typed values (sliders, CLI), checked with clear messages."""
        ints = {"rounds", "candidates", "samples", "max_new_tokens", "attacker_tokens", "judge_tokens", "keep",
                "seed"}
        clean = {}
        for key, value in kwargs.items():
            if value is None:
                continue
            name = key.replace("_", " ")
            clean[key] = check_int(value, name, -10**9, 10**9) if key in ints else check_float(value, name, -1e9, 1e9)
        return cls(**clean)

    def max_calls(self, principles: int) -> dict[str, int]:
        """The most calls an attack on ``principles`` principles may make, per role."""
        per_round = principles * self.candidates
        return {"attacker": self.rounds * per_round, "target": self.rounds * per_round * self.samples,
                "judge": self.rounds * per_round * self.samples}

    def sample_params(self) -> list[GenParams]:
        """One GenParams per sample: distinct seeds when sampling, so the cache keeps them apart."""
        if self.temperature == 0:
            return [GenParams(max_new_tokens=self.max_new_tokens)]
        return [GenParams(max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_p=0.95,
                          seed=self.seed + j) for j in range(self.samples)]


@dataclass
class Calls:
    """Model calls per role (one conversation = one call), and how many missed the cache."""

    calls: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ROLES, 0))
    uncached: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ROLES, 0))

    def add(self, role: str, replies: Sequence) -> None:
        self.calls[role] += len(replies)
        self.uncached[role] += sum(not r.cached for r in replies)

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    @property
    def total_uncached(self) -> int:
        return sum(self.uncached.values())

    def as_dict(self) -> dict:
        return {**{r: self.calls[r] for r in ROLES if self.calls[r]}, "total": self.total,
                "uncached": self.total_uncached}


class _Progress:
    """Maps per-batch (done, total) reports onto one bar over a whole run."""

    def __init__(self, total: int, progress: ProgressFn | None):
        self.total, self.done, self.progress = max(total, 1), 0, progress

    def batch(self) -> ProgressFn | None:
        if not self.progress:
            return None
        base = self.done
        return lambda d, _t: self.progress(min(base + d, self.total), self.total)

    def advance(self, n: int) -> None:
        self.done += n
        if self.progress:
            self.progress(min(self.done, self.total), self.total)


def _generate(model: ChatModel, convs: list, params: GenParams, role: str, calls: Calls, tracker: _Progress,
              batched: bool = True) -> list:
    """Run conversations through ``chat_batch`` (or one ``chat`` at a time, for benchmarks); count calls."""
    if not convs:
        return []
    if batched:
        replies = model.chat_batch(convs, params, progress=tracker.batch())
    else:
        replies = []
        report = tracker.batch()
        for i, conv in enumerate(convs, start=1):
            replies.append(model.chat(conv, params))
            if report:
                report(i, len(convs))
    calls.add(role, replies)
    tracker.advance(len(convs))
    return replies


def _as_model(model: ChatModel | str) -> ChatModel:
    return get_model(model) if isinstance(model, str) else model


def _mean(values: Sequence[float | None]) -> float | None:
    valid = [v for v in values if v is not None]
    return mean(valid) if valid else None


def _judge_all(judge: ChatModel, pairs: list[tuple[Principle, str, str]], budget: Budget, calls: Calls,
               stats: ParseStats, tracker: _Progress, batched: bool) -> list[dict]:
    """Judge (principle, prompt, continuation) triples; one dict per triple, failures marked."""
    convs = [judge_conversation(p, prompt, cont) for p, prompt, cont in pairs]
    replies = _generate(judge, convs, GenParams(max_new_tokens=budget.judge_tokens), "judge", calls, tracker,
                        batched)
    out = []
    for (_, _, cont), reply in zip(pairs, replies, strict=True):
        parsed = stats.add(parse_judgement(reply.text))
        out.append({"continuation": cont, "violation": parsed.value[0] if parsed.ok else None,
                    "reason": parsed.value[1] if parsed.ok else "", "judge_ok": parsed.ok,
                    "judge_error": "" if parsed.ok else parsed.reason, "judge_raw": _clip(reply.text, 300)})
    return out


def _continue_all(target: ChatModel, jobs: list[tuple[str, str]], budget: Budget, calls: Calls,
                  tracker: _Progress, batched: bool) -> list[list[str]]:
    """Continuations of (prompt, instruction) jobs: ``samples`` per job, one batch per sample seed."""
    per_job: list[list[str]] = [[] for _ in jobs]
    convs = [continue_conversation(prompt, instruction) for prompt, instruction in jobs]
    for params in budget.sample_params():
        for i, reply in enumerate(_generate(target, convs, params, "target", calls, tracker, batched)):
            per_job[i].append(reply.text.strip())
    return per_job


def _best_sample(samples: Sequence[dict]) -> dict | None:
    """The highest-scored sample, else the first one (unscored)."""
    scored = [x for x in samples if x["violation"] is not None]
    return max(scored, key=lambda x: x["violation"]) if scored else (samples[0] if samples else None)


def _models_info(**models: ChatModel) -> dict:
    return {"models": {role: unwrap(m).spec for role, m in models.items()},
            "bundled_model_used": any(unwrap(m).is_bundled for m in models.values())}
