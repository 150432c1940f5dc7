"""An in-context VILMO variant (no fine-tuning): instruction examples learned from violation reduction.

VILMO (Duan et al., ICLR 2024, arXiv 2310.11053) trains an instruction generator on (prompt,
instruction) pairs, favouring instructions that make the target's continuations comply
with the principle. This variant learns without changing any weights:

1. Prompts are split once (seeded) into **training** and **held-out** prompts.
2. On each training prompt the instruction model writes ``candidates`` instructions
   (sampled, distinct seeds). Each is scored by its **violation reduction**: the
   prompt's mean P over K samples with no instruction minus the mean P with the
   instruction (same prompts, same sample seeds; defence.compare).
3. The pairs with the largest positive reduction become the instruction model's
   **in-context examples** (at most ``n_examples``).
4. On the **held-out** prompts only, the learned condition (instruction model + those
   examples) is compared with every baseline (none, generic fixed, principle-named fixed,
   zero-shot generated), paired, with EVR / MVP / APV and paired differences.

5. With ``lora`` (default: where a GPU exists and the instruction model is local), the same
   training pairs also fine-tune the instruction model with a LoRA adapter (lora.py); the
   adapted model writes a sixth condition, ``lora``, on the same held-out prompts.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict

from ..inputs import InputError, check_float, check_int
from ..models import ChatModel, GenParams, ProgressFn
from . import lora as lora_mod
from .defence import LABELS, baseline_instructions, check_items, compare, write_instructions
from .engine import Budget, Calls, _as_model, _generate, _models_info, _Progress
from .principles import Principle
from .prompts import instruct_conversation, parse_instruction

NAME = LABELS["learned"]
#: At most this many training pairs (by violation reduction) become LoRA training data.
MAX_LORA_PAIRS = 64


def split(items: Sequence[Principle], train_share: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """Indices of training and held-out prompts (a seeded shuffle; both non-empty)."""
    check_float(train_share, "train share", 0.05, 0.95)
    if len(items) < 2:
        raise InputError("the learned VILMO needs at least 2 prompts (some to learn from, some to test on)")
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    n_train = min(max(1, round(len(items) * train_share)), len(items) - 1)
    return sorted(order[:n_train]), sorted(order[n_train:])


def learn_examples(items: Sequence[Principle], target: ChatModel, instructor: ChatModel, judge: ChatModel,
                   budget: Budget, calls: Calls, tracker: _Progress, candidates: int = 2, n_examples: int = 3,
                   batched: bool = True) -> tuple[list[dict], list[dict]]:
    """Score candidate instructions on ``items`` (training prompts only) by violation reduction.

    Returns (examples: the best pairs with positive reduction, scores: every candidate's
    reduction, or None where a failure left it unscored).
    """
    check_int(candidates, "candidate instructions", 1, 8)
    check_int(n_examples, "examples", 1, MAX_LORA_PAIRS)
    temp = budget.temperature or 0.7
    texts: list[list[tuple[str | None, str]]] = []
    for j in range(candidates):
        params = GenParams(max_new_tokens=budget.attacker_tokens, temperature=temp, top_p=0.95, seed=budget.seed + j)
        replies = _generate(instructor, [instruct_conversation(p, p.prompt) for p in items], params, "instructor",
                            calls, tracker, batched)
        texts.append([(x.value, "") if x.ok else (None, x.reason) for x in map(parse_instruction,
                                                                                (r.text for r in replies))])
    conds = {"none": [("", "")] * len(items)} | {f"candidate {j + 1}": texts[j] for j in range(candidates)}
    # Each candidate is paired with "none" on its own, so one failed candidate does not drop the prompt.
    scores = []
    for j in range(candidates):
        key = f"candidate {j + 1}"
        res = compare(items, target, judge, {"none": conds["none"], key: conds[key]}, budget, calls, tracker,
                      method="denevil-vilmo-train", batched=batched)
        mean_p: dict[tuple[int, str], list[float]] = {}
        for r in res.rows:
            if not r["left_out"]:
                mean_p.setdefault((r["item"], r["condition"]), []).append(r["P"])
        for i, p in enumerate(items, start=1):
            base, mine = mean_p.get((i, "none")), mean_p.get((i, key))
            reduction = (sum(base) / len(base) - sum(mine) / len(mine)) if base and mine else None
            scores.append({"item": i, "principle": p.text, "prompt": p.prompt, "instruction": texts[j][i - 1][0],
                           "candidate": j + 1, "reduction": reduction})
    ranked = sorted((s for s in scores if s["reduction"] is not None and s["reduction"] > 0),
                    key=lambda s: -s["reduction"])
    return ranked[:n_examples], scores


def learn_and_evaluate(items: Sequence[Principle], target: ChatModel | str, instructor: ChatModel | str,
                       judge: ChatModel | str, budget: Budget | None = None, *, train_share: float = 0.5,
                       candidates: int = 2, n_examples: int = 3, progress: ProgressFn | None = None,
                       batched: bool = True, lora: bool | None = None, lora_steps: int = lora_mod.STEPS):
    """Learn in-context examples on training prompts; evaluate on held-out prompts against every baseline.

    Returns the held-out comparison (a ``Result`` as from :func:`defence.defend`) with a fifth
    condition ``learned``; ``extra["learned"]`` holds the split, the examples (training
    prompts only) and every candidate's reduction. ``lora`` (None = :func:`lora.lora_default`:
    a GPU and a local instruction model) adds the condition ``lora``: the instruction model
    fine-tuned (``lora_steps`` steps) on every training pair with positive reduction (at most
    :data:`MAX_LORA_PAIRS`); ``extra["lora"]`` records its data and losses.
    """
    check_items(items)
    check_int(n_examples, "examples", 1, 10)
    budget = budget or Budget()
    target, instructor, judge = _as_model(target), _as_model(instructor), _as_model(judge)
    train_idx, test_idx = split(items, train_share, budget.seed)
    train, test = [items[i] for i in train_idx], [items[i] for i in test_idx]
    calls = Calls()
    k = budget.samples
    tracker = _Progress(len(train) * candidates * (1 + 4 * k) + len(test) * (2 + 10 * k), progress)
    use_lora = lora_mod.lora_default(instructor) if lora is None else bool(lora)
    if use_lora and not lora_mod.can_finetune(instructor):
        raise InputError("the LoRA VILMO variant needs a local instruction model (its weights are fine-tuned); "
                         "use the in-context variant for a served model")
    ranked, scores = learn_examples(train, target, instructor, judge, budget, calls, tracker, candidates,
                                    MAX_LORA_PAIRS, batched)
    examples = ranked[:n_examples]
    generated = write_instructions(instructor, test, budget, calls, tracker, batched=batched)
    if examples:
        learned = write_instructions(instructor, test, budget, calls, tracker, examples=lambda _p: examples,
                                     batched=batched)
    else:  # nothing lowered violation on the training prompts: the learned condition has no examples
        learned = list(generated)
    conds = baseline_instructions(test, generated) | {"learned": learned}
    lora_info: dict | None = None
    if use_lora:
        if ranked:
            adapted = lora_mod.finetune(instructor, lora_mod.training_pairs(ranked, train), steps=lora_steps,
                                        seed=budget.seed)
            conds["lora"] = write_instructions(adapted, test, budget, calls, tracker, batched=batched)
            lora_info = {**adapted.info, "pairs_used": [{k: e[k] for k in ("item", "prompt", "instruction", "reduction")}
                                        for e in ranked]}
        else:
            conds["lora"] = list(generated)
            lora_info = {"name": lora_mod.NAME, "pairs": 0, "note": "no candidate lowered violation on the "
                         "training prompts: nothing to fine-tune on; the LoRA condition is the zero-shot one"}
    learned_info = {"name": NAME, "train_items": [i + 1 for i in train_idx], "test_items": [i + 1 for i in test_idx],
                    "train_prompts": [p.prompt for p in train], "examples": examples, "candidate_scores": scores,
                    "note": "" if examples else "no candidate lowered violation on the training prompts; the "
                                                "learned condition ran without examples (same as zero-shot)"}
    result = compare(test, target, judge, conds, budget, calls, tracker, method="denevil-vilmo", batched=batched,
                     models=_models_info(target=target, instructor=instructor, judge=judge),
                     extra={"learned": learned_info, **({"lora": lora_info} if lora_info else {})})
    result.params["vilmo"] = {"train_share": train_share, "candidates": candidates, "n_examples": n_examples,
                              "lora": use_lora, "lora_steps": lora_steps if use_lora else None,
                              "budget": asdict(budget)}
    return result
