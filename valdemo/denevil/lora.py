"""A LoRA fine-tune of the instruction model on learned (prompt, instruction) pairs (VILMO's learning step).

VILMO (Duan et al., ICLR 2024, arXiv 2310.11053) *trains* the model that writes value
instructions, on instructions that made the target comply. This module is that step for
an instruction model whose weights are here (the ``local`` backend): the (story
beginning, instruction) pairs that lowered violation on **training** prompts
(vilmo.learn_examples) become supervised examples; a low-rank adapter (LoRA, through
``peft``) is trained on them with the loss on the instruction tokens only; the adapted
copy then writes instructions for the held-out prompts.

What is the project's own, not the paper's: the adapter's rank, learning rate and step
count (defaults below), the zero-shot instruction prompt as the training input, and the
selection of pairs by violation reduction (vilmo.py). The base model is never changed: the
adapter goes on a private copy, so other sessions sharing the loaded model see no change.

On a CPU this runs (slowly) for a few steps; the app and CLI use it by default only where a
GPU exists (:func:`lora_default`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Sequence

from ..inputs import InputError, check_float, check_int
from ..models import ChatModel, unwrap
from ..models.local import LocalChatModel, _Loaded
from .principles import Principle
from .prompts import instruct_conversation

#: Project's defaults (not the paper's): adapter rank, learning rate, optimisation steps.
RANK, LEARNING_RATE, STEPS = 8, 2e-4, 40
NAME = "VILMO variant: LoRA fine-tune of the instruction model (project's reading)"


def gpu_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return bool(torch.cuda.is_available())


def can_finetune(instructor: ChatModel) -> bool:
    """Whether the instruction model's weights are here (a local model) so an adapter can be trained."""
    return isinstance(unwrap(instructor), LocalChatModel)


def lora_default(instructor: ChatModel) -> bool:
    """The LoRA variant runs by default only where a GPU exists and the instruction model is local."""
    return gpu_available() and can_finetune(instructor)


def training_pairs(examples: Sequence[dict], items: Sequence[Principle]) -> list[tuple[list, str]]:
    """(conversation, instruction) pairs: the zero-shot instruction prompt of each example's training
    story and the instruction that lowered violation there."""
    by_prompt = {p.prompt: p for p in items}
    out = []
    for e in examples:
        principle = by_prompt.get(e["prompt"])
        if principle is None or not e.get("instruction"):
            raise InputError("a LoRA training pair must come from a training prompt with an instruction")
        out.append((instruct_conversation(principle, principle.prompt), e["instruction"]))
    return out


class AdaptedModel(LocalChatModel):
    """A local model with a trained LoRA adapter on a private copy of its weights.

    It generates like its base (same chat template, batching); it is not cached (its
    ``endpoint`` names the adapter, so nothing could be served from the base's answers).
    """

    def __init__(self, base: LocalChatModel, loaded: _Loaded, info: dict):
        super().__init__(base._name, spec=f"{base.spec}+lora:{info['adapter']}")
        self._path, self.is_bundled = base._resolve(), base.is_bundled
        self.model_id = f"{base.model_id} + LoRA {info['adapter']}"
        self._base, self._adapted, self.info = base, loaded, info

    def _get(self) -> _Loaded:
        return self._adapted

    @property
    def endpoint(self) -> str:
        return f"{self._base.endpoint}|lora:{self.info['adapter']}"


def finetune(instructor: ChatModel, pairs: Sequence[tuple[list, str]], *, steps: int = STEPS,
             learning_rate: float = LEARNING_RATE, rank: int = RANK, seed: int = 0) -> AdaptedModel:
    """Train a LoRA adapter on ``pairs`` (conversation, target instruction) and return the adapted model.

    One pair per step, cycling through the pairs in a seeded order; the loss is the mean
    negative log-likelihood of the instruction's tokens (and the end of the turn) given the
    conversation. ``info`` records steps, the loss of each step, pairs, rank and rate.
    """
    check_int(steps, "LoRA steps", 1, 2000)
    check_int(rank, "LoRA rank", 1, 256)
    check_float(learning_rate, "LoRA learning rate", 1e-7, 1.0)
    if not pairs:
        raise InputError("no training pairs for the LoRA fine-tune")
    base = unwrap(instructor)
    if not isinstance(base, LocalChatModel):
        raise InputError("the LoRA VILMO variant needs a local instruction model (its weights); "
                         f"{getattr(base, 'spec', base)!r} is served elsewhere: use the in-context variant")
    import random

    import torch
    from peft import LoraConfig, get_peft_model

    loaded = base._get()
    tok = loaded.tokenizer
    start = time.perf_counter()
    encoded = []
    for conv, target in pairs:
        prompt = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
        full = tok.apply_chat_template([*conv, {"role": "assistant", "content": target}], tokenize=False)
        if not full.startswith(prompt):
            raise InputError("the instruction model's chat template does not extend the prompt with the answer")
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        a_ids = tok(full[len(prompt):].rstrip(), add_special_tokens=False)["input_ids"]
        ids = torch.tensor([p_ids + a_ids], device=loaded.device)
        labels = torch.tensor([[-100] * len(p_ids) + a_ids], device=loaded.device)
        encoded.append((ids, labels))
    with loaded.lock:
        model = copy.deepcopy(loaded.model)
    torch.manual_seed(seed)
    model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, task_type="CAUSAL_LM"))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=learning_rate)
    order = list(range(len(encoded)))
    rng = random.Random(seed)
    losses = []
    for step in range(steps):
        if step % len(order) == 0:
            rng.shuffle(order)
        ids, labels = encoded[order[step % len(order)]]
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(round(loss.item(), 4))
    model.eval()
    digest = hashlib.sha256(json.dumps([[c, t] for c, t in pairs] + [steps, learning_rate, rank, seed],
                                       sort_keys=True).encode()).hexdigest()[:12]
    info = {"name": NAME, "adapter": digest, "pairs": len(pairs), "steps": steps, "learning_rate": learning_rate,
            "rank": rank, "seed": seed, "losses": losses, "device": str(loaded.device),
            "seconds": round(time.perf_counter() - start, 2),
            "note": "rank, rate and steps are this project's choices, not the paper's"}
    return AdaptedModel(base, _Loaded(model, tok, loaded.device), info)
