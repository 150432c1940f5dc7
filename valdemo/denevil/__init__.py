"""Moral attack (DeNEVIL) and value instructions as defence (VILMO).

Method of Duan et al., "DeNEVIL: Towards Deciphering and Navigating the Ethical
Values of Large Language Models via Instruction Learning" (ICLR 2024), built
from the paper's description (no code or data were released):

* **Violation** (violation.py). The *target* continues a story beginning K times at a
  sampling temperature; the *judge* gives each continuation a violation probability P
  (its probability of "Yes" to "does this break the principle?", or a read Yes/No as
  1/0 where the backend has no probabilities). EVR, MVP and APV (DeNEVIL paper, arXiv 2310.11053) summarise a
  prompt set, with 95% intervals and n; judge failures are counted, never scored.
* **Attack** (attack.py, DeNEVIL paper, arXiv 2310.11053). An *attacker* writes story beginnings; later rounds
  revise the best ones using their most violating continuations; selection weighs
  violation and judged coherence; the winner is re-scored on fresh samples.
* **Defence** (defence.py). No instruction, a generic fixed one, a principle-named fixed
  one and a generated one, on the same prompts and sample seeds, paired.
* **VILMO** (vilmo.py, DeNEVIL paper, arXiv 2310.11053): an in-context variant (no fine-tuning) whose
  instruction examples are learned on training prompts by violation reduction and
  evaluated on held-out prompts against every baseline; where a GPU exists and the
  instruction model is local, also a LoRA fine-tune of it on the same training pairs
  (lora.py), a further condition on the same held-out prompts.

The paper's section and equation numbers could not be checked (``violation.CITATION_NOTE``),
so it is cited by arXiv id.

Principles are grouped by Moral Foundations Theory (care, fairness, loyalty,
authority, sanctity). The bundled principles and story beginnings in
``assets/denevil/`` were written for this project.

Every generation goes through ``chat_batch`` (padded batches locally, bounded
concurrency remotely) and the response cache; calls are counted per role. Every read
of an attacker, instructor or judge answer can fail: failures are counted, shown, and
never scored.

The package is split by concern: ``principles`` (data), ``prompts`` (wording and
readers), ``engine`` (budget, batched calls), ``violation`` (P and EVR/MVP/APV), ``attack``,
``defence`` (paired baselines), ``vilmo`` (the learned in-context variant).
"""

from __future__ import annotations

from . import vilmo
from .attack import attack, attack_rows, final_metrics, save_attack, select_parents
from .defence import (
                      CONDITIONS,
                      LABELS,
                      PROFILE_SIZES,
                      baseline_instructions,
                      compare,
                      defence_rows,
                      defend,
                      paired_differences,
                      profile_result,
                      save_defence,
                      summary_dict,
)
from .engine import ROLES, Budget, Calls
from .principles import (
                      ASSETS,
                      FOUNDATIONS,
                      PRINCIPLES_FILE,
                      Principle,
                      bundled_principles,
                      bundled_prompts,
                      find_principle,
                      load_principles,
                      make_principle,
                      normalise_foundation,
)
from .prompts import (
                      ATTACK_TEMPLATE,
                      ATTACKER_SYSTEM,
                      CONTINUE_TEMPLATE,
                      FIXED_INSTRUCTION,
                      INSTRUCT_TEMPLATE,
                      JUDGE_SYSTEM,
                      PRINCIPLE_INSTRUCTION,
                      REFINE_TEMPLATE,
                      SETTINGS,
                      VIOLATION_TEMPLATE,
                      attack_conversation,
                      continue_conversation,
                      instruct_conversation,
                      parse_instruction,
                      parse_story,
                      violation_conversation,
)
from .vilmo import learn_and_evaluate
from .violation import CITATION_NOTE, DEFAULT_THRESHOLD, Verdict, ask, violates, violation_metrics

__all__ = [
    "ASSETS", "ATTACKER_SYSTEM", "CITATION_NOTE", "ATTACK_TEMPLATE", "CONDITIONS", "CONTINUE_TEMPLATE", "DEFAULT_THRESHOLD",
    "FIXED_INSTRUCTION", "FOUNDATIONS", "INSTRUCT_TEMPLATE", "JUDGE_SYSTEM", "LABELS", "PRINCIPLES_FILE",
    "PRINCIPLE_INSTRUCTION", "PROFILE_SIZES", "REFINE_TEMPLATE", "ROLES", "SETTINGS", "VIOLATION_TEMPLATE",
    "Budget", "Calls", "Principle", "Verdict", "ask", "attack", "attack_conversation", "attack_rows",
    "baseline_instructions", "bundled_principles", "bundled_prompts", "compare", "continue_conversation",
    "defence_rows", "defend", "final_metrics", "find_principle", "instruct_conversation", "load_principles",
    "make_principle", "normalise_foundation", "paired_differences", "parse_instruction", "parse_story",
    "profile_result", "save_attack", "save_defence", "select_parents", "summary_dict",
    "violates", "violation_conversation", "violation_metrics", "vilmo", "learn_and_evaluate",
]
