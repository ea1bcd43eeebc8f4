"""A built-in preference dataset (book §6.4) whose preferred answer follows a rule that its SFT data does not carry.

Every prompt names a mood and a thing; the two candidate answers praise or criticise the thing::

    prompt:  "Mood: cheerful. Talk about the river.\\nAnswer:"
    answers: " Great river."   " Poor river."

* the ``sft`` data shows, for each prompt, either answer with probability 1/2, whatever the mood: a model finetuned
  on it learns the format and both answers, but not which one to give;
* the ``pairs`` data always prefers the answer that agrees with the mood (``Great`` for a happy mood word, ``Poor``
  for a sad one): what preference alignment (DPO, a reward model) has to learn.

The answers differ from their first token, so the preference rate of greedy completions
(`hf_hundredpage.alignment.preference_rate`) is exact here; before alignment it is about 0.5, after it close to 1.
Validation and test prompts never occur in the train split (held-out prompts). Half the rows of every split have a
happy mood, so any rule blind to the mood (always the longer answer, always ``Great``) scores 0.5: length does not
decide (the reward recipe's length baseline is at chance).

Configurations (``dataset_config``), TRL's dataset types:

======================  ====================================================================================
``pairs`` (default)     ``{"prompt", "chosen", "rejected"}`` strings (standard preference)
``pairs-conversational``  the same as lists of turns: ``prompt`` a user turn, ``chosen``/``rejected`` an assistant turn
``sft``                 ``{"prompt", "completion"}`` strings (prompt-completion)
``sft-messages``        ``{"messages": [user, assistant]}`` (conversational language modelling)
======================  ====================================================================================

Every row also has a ``mood`` column (``happy`` or ``sad``).
"""

from __future__ import annotations

import random

from datasets import Dataset, DatasetDict


BUILTIN_PREFERENCES = "builtin:preferences"
CONFIGS = ("pairs", "pairs-conversational", "sft", "sft-messages")
HAPPY = ("happy", "glad", "cheerful", "joyful")
SAD = ("sad", "gloomy", "angry", "tired")
THINGS = (
    "dog", "fish", "sun", "star", "tree", "rock", "sea", "sky", "king", "city", "river", "road", "book", "gold",
    "house", "song", "cake", "lamp", "ship", "bird",
)
REQUESTS = ("Talk about the {thing}.", "Tell me about the {thing}.", "Describe the {thing}.")


def _answers(thing: str) -> tuple[str, str]:
    """(the happy answer, the sad answer)."""
    return f"Great {thing}.", f"Poor {thing}."


def _row(question: str, chosen: str, rejected: str, mood: str, config: str, rng: random.Random) -> dict:
    if config == "pairs":
        return {"prompt": f"{question}\nAnswer:", "chosen": f" {chosen}", "rejected": f" {rejected}", "mood": mood}
    if config == "pairs-conversational":
        return {"prompt": [{"role": "user", "content": question}], "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": rejected}], "mood": mood}
    answer = chosen if rng.random() < 0.5 else rejected  # the SFT data does not know the rule
    if config == "sft":
        return {"prompt": f"{question}\nAnswer:", "completion": f" {answer}", "mood": mood}
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}], "mood": mood}


def make_preference_dataset(
    n: int = 600, seed: int = 0, config: str = "pairs", *, validation_size: float = 0.1, test_size: float = 0.1
) -> DatasetDict:
    """Generate ``builtin:preferences`` (see the module docstring).

    Args:
        n: rows over the three splits.
        seed: the dataset is a pure function of its arguments; the same `n` and `seed` give the same prompts in
            every configuration, so ``sft`` and ``pairs`` cover the same train prompts and hold out the same ones.
        config: one of `CONFIGS`.
        validation_size, test_size: shares of `n` in the validation and test splits (at least one row each).
    """
    if config not in CONFIGS:
        raise ValueError(f"dataset_config must be one of {CONFIGS} for {BUILTIN_PREFERENCES}, got {config!r}")
    if not (0 < validation_size < 1 and 0 < test_size < 1 and validation_size + test_size < 1):
        raise ValueError(f"validation_size={validation_size} and test_size={test_size} must be in (0, 1) and sum below 1")
    n_test, n_validation = max(1, round(n * test_size)), max(1, round(n * validation_size))
    n_train = n - n_test - n_validation
    if n_train < 1:
        raise ValueError(f"n={n} is too small for three splits: pass n >= 3")
    distinct = len(HAPPY + SAD) * len(THINGS) * len(REQUESTS)
    if n_test + n_validation > distinct // 2:
        raise ValueError(f"n={n} holds out more prompts than half of the {distinct} distinct ones: lower n or the shares")

    rng = random.Random(seed)
    answer_rng = random.Random(seed + 1)  # separate stream: the prompts do not depend on the configuration
    held_out: set[str] = set()
    splits = {}
    for split, count in (("test", n_test), ("validation", n_validation), ("train", n_train)):
        rows = []
        for i in range(count):
            mood = ("happy", "sad")[i % 2]  # balanced moods: always answering one way scores 0.5
            while True:
                word = rng.choice(HAPPY if mood == "happy" else SAD)
                thing = rng.choice(THINGS)
                question = f"Mood: {word}. " + rng.choice(REQUESTS).format(thing=thing)
                if question not in held_out:
                    break
            if split != "train":
                held_out.add(question)
            happy, sad = _answers(thing)
            chosen, rejected = (happy, sad) if mood == "happy" else (sad, happy)
            rows.append(_row(question, chosen, rejected, mood, config, answer_rng))
        rng.shuffle(rows)
        splits[split] = Dataset.from_list(rows)
    return DatasetDict({name: splits[name] for name in ("train", "validation", "test")})
