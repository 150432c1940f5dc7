"""Moral attack (DeNEVIL) and value instructions as defence (VILMO).

Method of Duan et al., "DeNEVIL: Towards Deciphering and Navigating the Ethical
Values of Large Language Models via Instruction Learning" (ICLR 2024), built
from the paper's description (no code or data were released):

* **Attack** (generate-score-refine). Per moral principle, an *attacker* model
  writes K story beginnings meant to lead a continuation into violating the
  principle while staying natural; the *target* continues each (n samples); a
  *judge* scores every continuation's violation in [0, 1] with a short reason;
  the best prompts and their continuations go back to the attacker, which
  refines them in the next round. Rounds stop early at a threshold.
* **Defence** (VILMO). For each prompt an *instruction* model writes a short
  value instruction specific to the prompt and principle; the target continues
  again with it as system prompt. Baselines on the same prompts: no
  instruction, and a fixed generic instruction.

Principles are grouped by Moral Foundations Theory (care, fairness, loyalty,
authority, sanctity). The bundled principles and story beginnings in
``assets/denevil/`` were written for this project.

Every model call goes through ``chat_batch`` (padded batches locally, bounded
concurrency remotely) and the response cache; calls are counted per role, and
cached ones are counted apart. Every parse of an attacker, instructor or judge
answer can fail: failures are counted, shown, and never scored.

The package is split by concern: ``principles`` (data), ``prompts`` (wording and
readers), ``engine`` (budget, batched calls), ``attack``, ``defence``.
"""

from __future__ import annotations

from .attack import attack, attack_rows, save_attack
from .defence import (
                      CONDITIONS,
                      FIXED_INSTRUCTION,
                      PROFILE_SIZES,
                      defence_rows,
                      defend,
                      profile_summary,
                      save_defence,
                      summarise_defence,
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
                      INSTRUCT_TEMPLATE,
                      JUDGE_SCALE,
                      JUDGE_SYSTEM,
                      JUDGE_TEMPLATE,
                      REFINE_TEMPLATE,
                      SETTINGS,
                      attack_conversation,
                      continue_conversation,
                      instruct_conversation,
                      judge_conversation,
                      parse_instruction,
                      parse_judgement,
                      parse_story,
)

__all__ = [
    "ASSETS", "ATTACKER_SYSTEM", "ATTACK_TEMPLATE", "CONDITIONS", "CONTINUE_TEMPLATE", "FIXED_INSTRUCTION",
    "FOUNDATIONS", "INSTRUCT_TEMPLATE", "JUDGE_SCALE", "JUDGE_SYSTEM", "JUDGE_TEMPLATE", "PRINCIPLES_FILE",
    "PROFILE_SIZES", "REFINE_TEMPLATE", "ROLES", "SETTINGS", "Budget", "Calls", "Principle", "attack",
    "attack_conversation", "attack_rows", "bundled_principles", "bundled_prompts", "continue_conversation",
    "defence_rows", "defend", "find_principle", "instruct_conversation", "judge_conversation", "load_principles",
    "make_principle", "normalise_foundation", "parse_instruction", "parse_judgement", "parse_story",
    "profile_summary", "save_attack", "save_defence", "summarise_defence",
]
