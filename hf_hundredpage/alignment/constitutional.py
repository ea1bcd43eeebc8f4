"""Constitutional AI (book §6.4): a chat model critiques and revises its own answers against written principles, and
the revisions become alignment data, as in Bai et al. (2022), "Constitutional AI: Harmlessness from AI Feedback".

For each prompt a principle of the constitution is drawn (seeded), and the model holds the standard CAI conversation,
three batched `generate()` rounds over each batch of prompts::

    user:      <prompt>
    assistant: <answer>                       round 1
    user:      <the principle's critique_request>
    assistant: <critique>                     round 2
    user:      <the principle's revision_request>
    assistant: <revision>                     round 3

The revision is the preferred answer and the first answer the rejected one: a preference dataset for DPO (and the
other preference recipes) and an SFT dataset of revisions (the supervised stage of CAI), both in TRL's
conversational formats, so that ``constitutional`` then ``dpo`` are two commands:

```bash
hf-hundredpage constitutional Qwen/Qwen2.5-0.5B-Instruct out/cai --prompts prompts.jsonl --num_prompts 500
accelerate launch recipes/dpo.py --dataset_name out/cai/preferences --model_name_or_path Qwen/Qwen2.5-0.5B-Instruct \\
    --output_dir out/cai-dpo
```

A constitution is a YAML list of principles, each ``{name, critique_request, revision_request}``; the package ships
a small harmlessness one (`DEFAULT_CONSTITUTION`).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase, set_seed

from ..data.builtin.preferences import BUILTIN_PREFERENCES
from ..data.sources import check_columns, load_source
from ..generation import chat_turn_end, load_for_generation, stop_token_ids
from ..outputs import check_output_dir, save_folder


__all__ = [
    "DEFAULT_CONSTITUTION",
    "Principle",
    "constitutional_datasets",
    "constitutional_generation_config",
    "critique_and_revise",
    "generate_replies",
    "is_kept",
    "load_constitution",
    "load_prompts",
    "run_constitutional",
]

DEFAULT_CONSTITUTION = Path(__file__).parent / "constitutions" / "harmless.yaml"
PROMPTS_HINT = (
    "pass --prompts with a 'prompt' column (text) or a 'messages' column (conversations: the first user turn is the "
    "prompt), or builtin:preferences"
)
SPLITS = ("train", "test")


# --------------------------------------------------------------------------------------------------------------
# The constitution and the prompts
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Principle:
    """One principle of a constitution (§6.4): the user turn that asks the model to criticise its last answer, and
    the one that asks it to rewrite the answer given its critique."""

    name: str
    critique_request: str
    revision_request: str


def load_constitution(path: str | os.PathLike | None = None) -> list[Principle]:
    """The principles of a constitution file (§6.4): a YAML list of ``{name, critique_request, revision_request}``.

    Args:
        path: the YAML file; None: `DEFAULT_CONSTITUTION`, the small harmlessness constitution the package ships.

    Raises:
        ValueError: not a non-empty list of mappings, or a principle without a non-empty ``critique_request`` or
            ``revision_request`` (the message names the principle's index and the key).
    """
    import yaml

    path = Path(path).expanduser() if path is not None else DEFAULT_CONSTITUTION
    if not path.is_file():
        raise FileNotFoundError(f"constitution {path} does not exist: pass a YAML file of principles (--constitution)")
    try:
        principles = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ValueError(f"constitution {path} is not valid YAML ({type(err).__name__}): fix the file") from None
    if not isinstance(principles, list) or not principles:
        raise ValueError(
            f"constitution {path} must be a non-empty YAML list of principles, each with critique_request and "
            f"revision_request; got {type(principles).__name__}"
        )
    loaded = []
    for index, principle in enumerate(principles):
        if not isinstance(principle, dict):
            raise ValueError(f"principle {index} of {path} is a {type(principle).__name__}: write it as a mapping "
                             "with critique_request and revision_request")
        for key in ("critique_request", "revision_request"):
            value = principle.get(key)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"principle {index} of {path} has no {key}: give it a non-empty {key} string")
        name = str(principle.get("name") or f"principle-{index}")
        loaded.append(Principle(name, principle["critique_request"].strip(), principle["revision_request"].strip()))
    return loaded


def _first_user_turn(messages: Any) -> str | None:
    if isinstance(messages, list):
        for turn in messages:
            if isinstance(turn, dict) and turn.get("role") == "user":
                return str(turn.get("content") or "")
    return None


def load_prompts(
    dataset_name: str, dataset_config: str | None = None, *, num_prompts: int | None = None
) -> tuple[list[str], int]:
    """The prompts to critique and revise (§6.4), read with `load_source` from its ``train`` split (else its first).

    A ``prompt`` column (text, or a conversation: its first user turn) or else a ``messages`` column (its first user
    turn). ``builtin:preferences`` gives its questions (configuration ``pairs-conversational`` unless another is
    passed). Blank prompts are skipped.

    Returns:
        ``(prompts, skipped)``: at most `num_prompts` prompts in the source's order, and the number of blank ones
        skipped.
    """
    if num_prompts is not None and num_prompts < 1:
        raise ValueError(f"--num_prompts must be at least 1, got {num_prompts}")
    if dataset_name == BUILTIN_PREFERENCES and dataset_config is None:
        dataset_config = "pairs-conversational"  # the bare questions, without the plain-LM "\nAnswer:" suffix
    raw = load_source(dataset_name, dataset_config)
    split = "train" if "train" in raw else next(iter(raw), None)
    if split is None:
        raise ValueError(f"{dataset_name} has no split: {PROMPTS_HINT}")
    dataset = raw[split]
    column = "prompt" if "prompt" in dataset.column_names else "messages"
    if column not in dataset.column_names:
        check_columns(dataset, ("prompt",), split, PROMPTS_HINT)
    prompts, skipped = [], 0
    for index, value in enumerate(dataset[column]):
        text = value if isinstance(value, str) else _first_user_turn(value)
        if text is None:
            raise ValueError(f"row {index} of the {split} split of {dataset_name}: {column!r} is neither text nor a "
                             f"conversation with a user turn; {PROMPTS_HINT}")
        if not text.strip():
            skipped += 1
            continue
        prompts.append(text.strip())
        if num_prompts is not None and len(prompts) == num_prompts:
            break
    if not prompts:
        raise ValueError(f"the {split} split of {dataset_name} has no non-empty prompt: {PROMPTS_HINT}")
    return prompts, skipped


# --------------------------------------------------------------------------------------------------------------
# Generation: answer, critique, revise
# --------------------------------------------------------------------------------------------------------------


def constitutional_generation_config(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    *,
    max_new_tokens: int = 256,
    do_sample: bool | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
) -> GenerationConfig:
    """The model's own ``generation_config`` with the given settings on top (None keeps the model's), stopping on the
    chat template's end-of-turn token as well as the model's EOS tokens, and padding with the tokenizer's pad token.

    ``temperature`` or ``top_p`` without ``do_sample`` turns sampling on (as in ``hf-hundredpage generate``).
    """
    if max_new_tokens < 1:
        raise ValueError(f"--max_new_tokens must be at least 1, got {max_new_tokens}")
    if temperature is not None and not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"--temperature must be a positive number, got {temperature}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"--top_p must be in (0, 1], got {top_p}")
    sampling_flags = [name for name, value in (("temperature", temperature), ("top_p", top_p)) if value is not None]
    if sampling_flags and do_sample is False:
        raise ValueError(f"--{sampling_flags[0]} only applies when sampling: drop --greedy or drop the sampling flags")

    config = copy.deepcopy(model.generation_config)
    config.max_new_tokens = max_new_tokens
    if do_sample is not None or sampling_flags:
        config.do_sample = True if do_sample is None else do_sample
    if temperature is not None:
        config.temperature = temperature
    if top_p is not None:
        config.top_p = top_p
    eos = config.eos_token_id
    eos = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
    eos = list(dict.fromkeys([*eos, *stop_token_ids(tokenizer)]))
    if not eos:
        raise ValueError("the model and its tokenizer have no EOS token: generation would never stop; set eos_token")
    config.eos_token_id = eos[0] if len(eos) == 1 else eos
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else config.pad_token_id
    config.pad_token_id = eos[0] if pad is None else pad
    return config


@torch.no_grad()
def generate_replies(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    conversations: list[list[dict[str, str]]],
    generation_config: GenerationConfig,
) -> list[str]:
    """The model's next assistant turn in each conversation, with one batched `generate()` call.

    Each conversation is rendered with the chat template and its generation prompt and tokenized without extra
    special tokens (as TRL does), the batch is padded on the left (so that every row's new tokens start at the same
    column), and each reply is cut before its first stop token and the template's end-of-turn text, then stripped.
    """
    device = next(model.parameters()).device
    encoded = [
        tokenizer(tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True),
                  add_special_tokens=False).input_ids
        for conversation in conversations
    ]
    width = max(len(ids) for ids in encoded)
    pad = generation_config.pad_token_id
    input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in encoded], device=device)
    attention_mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded], device=device)
    output = model.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=generation_config)

    eos = generation_config.eos_token_id
    stop_ids = {eos} if isinstance(eos, int) else set(eos)
    _, turn_end_text = chat_turn_end(tokenizer)
    replies = []
    for row in output[:, width:].tolist():
        cut = next((i for i, token in enumerate(row) if token in stop_ids), len(row))
        text = tokenizer.decode(row[:cut], skip_special_tokens=True)
        if turn_end_text.strip() and turn_end_text.strip() in text:
            text = text[: text.index(turn_end_text.strip())]
        replies.append(text.strip())
    return replies


def critique_and_revise(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    principles: list[Principle],
    *,
    generation_config: GenerationConfig | None = None,
    batch_size: int = 8,
    seed: int = 42,
) -> list[dict[str, Any]]:
    """Answer, critique and revise every prompt against a principle drawn for it (§6.4, see the module docstring).

    The principles are drawn with ``random.Random(seed)``, one per prompt in order, so they do not depend on
    `batch_size`; ``transformers.set_seed(seed)`` seeds the sampling. Each batch of prompts takes three batched
    `generate()` calls (answers, critiques, revisions).

    Returns:
        One transcript per prompt: ``prompt``, ``principle``, ``answer``, ``critique``, ``revision`` and
        ``messages`` (the six turns of the conversation).
    """
    if batch_size < 1:
        raise ValueError(f"--batch_size must be at least 1, got {batch_size}")
    if not principles:
        raise ValueError("the constitution has no principle: give it at least one")
    generation_config = generation_config or constitutional_generation_config(model, tokenizer)
    rng = random.Random(seed)
    drawn = [rng.choice(principles) for _ in prompts]
    set_seed(seed)
    model.eval()

    def reply(conversations: list[list[dict[str, str]]]) -> None:
        replies = generate_replies(model, tokenizer, conversations, generation_config)
        for conversation, text in zip(conversations, replies):
            conversation.append({"role": "assistant", "content": text})

    transcripts = []
    for start in tqdm(range(0, len(prompts), batch_size), desc="constitutional", unit="batch", disable=None):
        batch, batch_principles = prompts[start : start + batch_size], drawn[start : start + batch_size]
        conversations = [[{"role": "user", "content": prompt}] for prompt in batch]
        reply(conversations)  # round 1: the answers
        for request in ("critique_request", "revision_request"):  # rounds 2 and 3: the critiques, the revisions
            for conversation, principle in zip(conversations, batch_principles):
                conversation.append({"role": "user", "content": getattr(principle, request)})
            reply(conversations)
        for prompt, principle, conversation in zip(batch, batch_principles, conversations):
            answer, critique, revision = (conversation[i]["content"] for i in (1, 3, 5))
            transcripts.append({"prompt": prompt, "principle": principle.name, "answer": answer, "critique": critique,
                                "revision": revision, "messages": conversation})
    return transcripts


# --------------------------------------------------------------------------------------------------------------
# The datasets
# --------------------------------------------------------------------------------------------------------------


def is_kept(transcript: dict[str, Any]) -> bool:
    """Whether a transcript makes a pair: a non-empty answer and a non-empty revision that differs from it."""
    answer, revision = transcript["answer"], transcript["revision"]
    return bool(answer.strip() and revision.strip()) and revision != answer


def constitutional_datasets(
    transcripts: list[dict[str, Any]], *, test_size: float = 0.1, seed: int = 42
) -> tuple[dict[str, dict[str, list[dict]]], int]:
    """The preference and SFT rows of the transcripts (§6.4), split into the same ``train`` / ``test`` prompts.

    Preference rows are TRL's conversational preference type, ``{"prompt": [user], "chosen": [assistant: revision],
    "rejected": [assistant: answer], "principle"}``; SFT rows are ``{"messages": [user, assistant: revision]}``. A
    transcript whose answer or revision is empty, or whose revision equals its answer, is dropped. A seeded share
    `test_size` of the rows (at least one) goes to ``test``.

    Returns:
        ``({"preferences": {"train": rows, "test": rows}, "sft": {...}}, dropped)``.

    Raises:
        ValueError: fewer than two rows remain (nothing to split into train and test).
    """
    if not 0 < test_size < 1:
        raise ValueError(f"--test_size must be in (0, 1), got {test_size}")
    kept = [transcript for transcript in transcripts if is_kept(transcript)]
    dropped = len(transcripts) - len(kept)
    if len(kept) < 2:
        raise ValueError(
            f"{len(kept)} of {len(transcripts)} prompts gave a revision that differs from the answer ({dropped} "
            "dropped: empty, or equal to the answer); train and test need 2: pass more prompts (--num_prompts), a "
            "larger --max_new_tokens, or a stronger chat model"
        )
    order = list(range(len(kept)))
    random.Random(seed).shuffle(order)
    num_test = min(len(kept) - 1, max(1, round(len(kept) * test_size)))
    test = set(order[:num_test])
    datasets: dict[str, dict[str, list[dict]]] = {name: {s: [] for s in SPLITS} for name in ("preferences", "sft")}
    for index, transcript in enumerate(kept):
        split = "test" if index in test else "train"
        user = {"role": "user", "content": transcript["prompt"]}
        revision = {"role": "assistant", "content": transcript["revision"]}
        answer = {"role": "assistant", "content": transcript["answer"]}
        datasets["preferences"][split].append(
            {"prompt": [user], "chosen": [revision], "rejected": [answer], "principle": transcript["principle"]}
        )
        datasets["sft"][split].append({"messages": [user, revision]})
    return datasets, dropped


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _dataset_card(summary: dict[str, Any], principles: list[Principle], chat_template: str | None):
    from huggingface_hub import DatasetCard, DatasetCardData

    def files(name: str) -> list[dict[str, str]]:
        return [{"split": split, "path": f"{name}/{split}.jsonl"} for split in SPLITS]

    card_data = DatasetCardData(
        language=["en"], task_categories=["text-generation"],
        tags=["constitutional-ai", "dpo", "sft", "hf-hundredpage"],
        configs=[{"config_name": "preferences", "data_files": files("preferences")},
                 {"config_name": "sft", "data_files": files("sft")}],
    )
    out, model = summary["output_dir"], summary["model"]
    template_flag = f" --chat_template_path {chat_template}" if chat_template else ""
    # The DPO recipe uses the tokenizer's own chat template: a model without one gets it from an SFT run first.
    dpo_note = " (its tokenizer needs a chat template: run the SFT step below first)" if chat_template else ""
    counts = summary["counts"]
    names = ", ".join(f"`{principle.name}`" for principle in principles)
    sft_command = (f"accelerate launch recipes/sft.py --dataset_name {out}/sft --model_name_or_path {model}"
                   f"{template_flag} --output_dir {out}-sft")
    body = f"""# Constitutional AI data from `{model}`

Made with `hf-hundredpage constitutional` (The Hundred-Page Language Models Book, §6.4; Bai et al., 2022,
*Constitutional AI: Harmlessness from AI Feedback*): `{model}` answered each prompt, critiqued its answer against a
principle drawn from the constitution, and revised it.

- Model: `{model}`
- Constitution: `{summary["constitution"]}` (copied as `constitution.yaml`), principles: {names}
- Prompts: `{summary["prompts"]}`, {counts["prompts"]} used
- Pairs kept: {counts["kept"]}, train {counts["train"]}, test {counts["test"]} ({counts["dropped"]} dropped: empty
  answer or revision, or revision equal to the answer)
- Generation: {summary["generation"]}, batch size {summary["batch_size"]}, seed {summary["seed"]}

| file | rows | TRL type |
|---|---|---|
| `preferences/` | `prompt`, `chosen` (the revision), `rejected` (the first answer), `principle` | preference |
| `sft/` | `messages`: the prompt and the revision | conversational |
| `transcripts.jsonl` | the whole conversations: answer, critique, revision | |

## Next steps

Align the model on the revisions with DPO{dpo_note}:

```bash
accelerate launch recipes/dpo.py --dataset_name {out}/preferences --model_name_or_path {model} --output_dir {out}-dpo
```

or finetune it on the revisions first (the supervised stage of Constitutional AI), then run DPO from the result:

```bash
{sft_command}
accelerate launch recipes/dpo.py --dataset_name {out}/preferences --model_name_or_path {out}-sft --output_dir {out}-dpo
```
"""
    return DatasetCard(f"---\n{card_data.to_yaml()}\n---\n\n{body}")


def run_constitutional(
    model_name_or_path: str,
    output_dir: str | os.PathLike,
    prompts: str,
    *,
    constitution: str | os.PathLike | None = None,
    prompts_config: str | None = None,
    num_prompts: int | None = None,
    test_size: float = 0.1,
    batch_size: int = 8,
    max_new_tokens: int = 256,
    do_sample: bool | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    seed: int = 42,
    chat_template: str | None = None,
    dtype: str | None = None,
    device: str | None = None,
    trust_remote_code: bool = False,
    overwrite_output_dir: bool = False,
) -> dict[str, Any]:
    """``hf-hundredpage constitutional`` (§6.4): critique and revise the prompts' answers, and write the folder.

    Everything that can be checked is checked before the model is loaded (the constitution, the output folder, the
    prompts, the chat template file). The folder, written through `save_folder` (staged, then moved in), holds
    ``preferences/{train,test}.jsonl``, ``sft/{train,test}.jsonl``, ``transcripts.jsonl``, ``constitution.yaml``
    and ``README.md`` (a dataset card with the follow-up commands).

    Returns:
        A summary: the paths written and the counts.
    """
    output_dir = Path(output_dir).expanduser()
    if not 0 < test_size < 1:
        raise ValueError(f"--test_size must be in (0, 1), got {test_size}")
    if batch_size < 1:
        raise ValueError(f"--batch_size must be at least 1, got {batch_size}")
    constitution_file = Path(constitution).expanduser() if constitution is not None else DEFAULT_CONSTITUTION
    principles = load_constitution(constitution_file)
    model_path = Path(model_name_or_path).expanduser()
    if model_path.is_dir() and output_dir.resolve() == model_path.resolve():
        raise ValueError(f"output_dir {output_dir} is the model folder: pass another folder for the datasets")
    check_output_dir(output_dir, overwrite_output_dir, resuming=False)
    if chat_template is not None:
        if not chat_template.endswith((".jinja", ".j2")):
            raise ValueError(f"--chat_template {chat_template} must be a .jinja file (a Jinja chat template)")
        if not Path(chat_template).is_file():
            raise FileNotFoundError(f"--chat_template {chat_template} does not exist: pass a .jinja file")
    prompt_texts, skipped = load_prompts(prompts, prompts_config, num_prompts=num_prompts)

    model, tokenizer = load_for_generation(model_name_or_path, trust_remote_code=trust_remote_code, dtype=dtype)
    if chat_template is not None:
        from ..finetuning.sft import load_chat_template

        load_chat_template(tokenizer, chat_template, [{"messages": []}], model_name_or_path)
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"the tokenizer of {model_name_or_path} has no chat template: pass --chat_template PATH.jinja "
            "(e.g. recipes/configs/sft/chatml_gpt2.jinja), or use a chat model"
        )
    model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    generation_config = constitutional_generation_config(
        model, tokenizer, max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature, top_p=top_p
    )

    transcripts = critique_and_revise(model, tokenizer, prompt_texts, principles, generation_config=generation_config,
                                      batch_size=batch_size, seed=seed)
    datasets, dropped = constitutional_datasets(transcripts, test_size=test_size, seed=seed)

    sampling = ", ".join(f"{key} {getattr(generation_config, key)}" for key in ("temperature", "top_p"))
    summary: dict[str, Any] = {
        "model": model_name_or_path, "output_dir": str(output_dir), "prompts": prompts,
        "constitution": f"{DEFAULT_CONSTITUTION.name} (the default)" if constitution is None else str(constitution),
        "batch_size": batch_size, "seed": seed,
        "generation": f"max_new_tokens {max_new_tokens}, "
                      + (f"sampling ({sampling})" if generation_config.do_sample else "greedy"),
        "counts": {"prompts": len(transcripts), "skipped_blank_prompts": skipped, "kept": len(transcripts) - dropped,
                   "dropped": dropped, "train": len(datasets["sft"]["train"]), "test": len(datasets["sft"]["test"]),
                   "principles": len(principles)},
    }
    card = _dataset_card(summary, principles, chat_template)

    def save(folder: Path) -> None:
        for name, splits in datasets.items():
            (folder / name).mkdir()
            for split, rows in splits.items():
                _write_jsonl(folder / name / f"{split}.jsonl", rows)
        _write_jsonl(folder / "transcripts.jsonl",
                     [{**{k: v for k, v in t.items() if k != "messages"}, "kept": is_kept(t),
                       "messages": t["messages"]} for t in transcripts])
        shutil.copyfile(constitution_file, folder / "constitution.yaml")
        card.save(folder / "README.md")

    save_folder(output_dir, save)
    summary["paths"] = {name: str(output_dir / name) for name in
                        ("preferences", "sft", "transcripts.jsonl", "constitution.yaml", "README.md")}
    summary["principles"] = [asdict(p) for p in principles]
    return summary


# --------------------------------------------------------------------------------------------------------------
# Command line: hf-hundredpage constitutional
# --------------------------------------------------------------------------------------------------------------


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``hf-hundredpage constitutional``."""
    parser.add_argument("model", metavar="MODEL", help="chat model: folder (AutoModelForCausalLM), adapter or Hub id")
    parser.add_argument("output_dir", metavar="OUT", help="where to write the preference and SFT datasets")
    parser.add_argument(
        "--prompts", required=True,
        help="prompts: a local .jsonl file or folder, a URL, a Hub id or builtin:preferences, with a 'prompt' or "
        "'messages' column",
    )
    parser.add_argument("--prompts_config", default=None, help="configuration of the prompts dataset, if several")
    parser.add_argument(
        "--constitution", default=None,
        help=f"YAML principles (name, critique_request, revision_request); default {DEFAULT_CONSTITUTION.name}",
    )
    parser.add_argument("--num_prompts", type=int, default=None, help="use the first N prompts (default: all)")
    parser.add_argument("--test_size", type=float, default=0.1, help="share of the pairs held out (default: 0.1)")
    parser.add_argument("--batch_size", type=int, default=8, help="prompts per generate() call (default: 8)")
    parser.add_argument("--max_new_tokens", type=int, default=256, help="tokens per answer at most (default: 256)")
    sampling = parser.add_argument_group("sampling (default: the model's generation_config)")
    mode = sampling.add_mutually_exclusive_group()
    mode.add_argument("--do_sample", dest="do_sample", action="store_true", default=None, help="sample")
    mode.add_argument("--greedy", dest="do_sample", action="store_false", help="take the most likely token")
    sampling.add_argument("--temperature", type=float, default=None, help="divide the logits by this (> 0)")
    sampling.add_argument("--top_p", type=float, default=None, help="sample in the smallest set of probability >= p")
    parser.add_argument("--seed", type=int, default=42, help="seed of the principle draws and sampling (default: 42)")
    parser.add_argument("--chat_template", default=None, help="a .jinja chat template, for a model without one")
    parser.add_argument(
        "--dtype", default=None, choices=["auto", "float32", "bfloat16", "float16"], help="dtype of the weights"
    )
    parser.add_argument("--device", default=None, help="device to run on (default: cuda when available, else cpu)")
    parser.add_argument("--trust_remote_code", action="store_true", help="allow the model folder's own code")
    parser.add_argument("--overwrite_output_dir", action="store_true", help="replace a non-empty OUT")


def run_from_args(args: argparse.Namespace) -> int:
    """Run ``hf-hundredpage constitutional``."""
    summary = run_constitutional(
        args.model, args.output_dir, args.prompts, constitution=args.constitution, prompts_config=args.prompts_config,
        num_prompts=args.num_prompts, test_size=args.test_size, batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens, do_sample=args.do_sample, temperature=args.temperature, top_p=args.top_p,
        seed=args.seed, chat_template=args.chat_template, dtype=args.dtype, device=args.device,
        trust_remote_code=args.trust_remote_code, overwrite_output_dir=args.overwrite_output_dir,
    )
    counts, paths = summary["counts"], summary["paths"]
    skipped = f", {counts['skipped_blank_prompts']} blank skipped" if counts["skipped_blank_prompts"] else ""
    print(f"Critiqued and revised {counts['prompts']} prompts{skipped}: {counts['kept']} pairs kept, "
          f"{counts['dropped']} dropped (empty answer or revision, or revision equal to the answer)")
    print(f"preferences: {paths['preferences']} (train {counts['train']}, test {counts['test']})")
    print(f"sft: {paths['sft']} (train {counts['train']}, test {counts['test']})")
    print(f"transcripts: {paths['transcripts.jsonl']} ({counts['prompts']} conversations)")
    print(f"constitution: {paths['constitution.yaml']} ({counts['principles']} principles)")
    print(f"card: {paths['README.md']}")
    return 0
