"""Sampling controls of the book's §5.4 for `model.generate()`, and the ``hf-hundredpage generate`` command.

transformers already implements most of the controls the book describes for sampling from a language model:
temperature, top-k, top-p (nucleus), min-p and the multiplicative repetition penalty are arguments of
`generate()`. What it lacks are the two additive penalties of the OpenAI API that the book also presents,

    logits[t] -= presence_penalty  * (count[t] > 0)
    logits[t] -= frequency_penalty * count[t]

where `count[t]` is how many times token `t` occurs in the tokens seen so far. They are provided here as
[`~transformers.LogitsProcessor`]s. Pass them with `generate(..., logits_processor=...)`: `generate()` runs
custom processors after its own processors (repetition penalty, ...) and *before* its warpers (temperature,
top-k, top-p, min-p), so the penalties act on the raw logits, as in the OpenAI API, and then the temperature
scales the penalised logits.

```python
>>> from hf_hundredpage.generation import build_logits_processors, load_for_generation
>>> model, tokenizer = load_for_generation("path/to/model_or_adapter")
>>> inputs = tokenizer("The history of", return_tensors="pt")
>>> out = model.generate(
...     **inputs, do_sample=True, temperature=0.8, top_p=0.95, max_new_tokens=50,
...     logits_processor=build_logits_processors(presence_penalty=0.5, frequency_penalty=0.3),
... )
```

From the command line: ``hf-hundredpage generate MODEL --prompt "The history of" --temperature 0.8
--frequency_penalty 0.3``.
"""

from __future__ import annotations

import argparse
import json
import math
import numbers
import os
import sys

import torch
from transformers import LogitsProcessor, LogitsProcessorList, PreTrainedModel, PreTrainedTokenizerBase

from .paths import looks_like_local_path, resolve_model_path


__all__ = [
    "PresencePenaltyLogitsProcessor",
    "FrequencyPenaltyLogitsProcessor",
    "build_logits_processors",
    "load_for_generation",
]

# Files whose presence means a folder holds a tokenizer (fast, slow, sentencepiece or tiktoken-style).
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "tiktoken.model")
# The flags that only mean something when sampling: any of them switches `--do_sample` on by default.
_SAMPLING_FLAGS = ("temperature", "top_k", "top_p", "min_p")


# --------------------------------------------------------------------------------------------------------------
# Presence and frequency penalties
# --------------------------------------------------------------------------------------------------------------


def _check_penalty(penalty, name: str) -> float:
    if isinstance(penalty, bool) or not isinstance(penalty, numbers.Real) or not math.isfinite(penalty):
        raise ValueError(f"`{name}` must be a finite float (negative values encourage repetition), got {penalty!r}")
    return float(penalty)


class _TokenCountPenaltyLogitsProcessor(LogitsProcessor):
    """Shared part of the additive penalties: how many times each vocabulary token occurs in each row."""

    supports_continuous_batching = False
    _name = "penalty"

    def __init__(self, penalty: float, pad_token_id: int | None = None, prompt_ignore_length: int | None = None):
        self.penalty = _check_penalty(penalty, self._name)
        if pad_token_id is not None and (isinstance(pad_token_id, bool) or not isinstance(pad_token_id, int)):
            raise ValueError(f"`pad_token_id` must be an integer token id or None, got {pad_token_id!r}")
        length = prompt_ignore_length
        if length is not None and (isinstance(length, bool) or not isinstance(length, int) or length < 0):
            raise ValueError(f"`prompt_ignore_length` must be a non-negative integer or None, got {length!r}")
        self.pad_token_id = pad_token_id
        self.prompt_ignore_length = prompt_ignore_length

    def token_counts(self, input_ids: torch.LongTensor, vocab_size: int) -> torch.LongTensor:
        """`(batch, vocab_size)` counts of each token in each row of `input_ids`, pads and the prompt left out.

        Ids that are `pad_token_id`, that lie in the first `prompt_ignore_length` columns, or that are not below
        `vocab_size` (an embedding larger than the output layer) are sent to an extra column that is dropped.
        """
        if input_ids.dim() != 2:
            raise ValueError(f"`input_ids` must have shape (batch, sequence), got {tuple(input_ids.shape)}")
        if self.prompt_ignore_length:
            input_ids = input_ids[:, self.prompt_ignore_length :]
        ignored = input_ids >= vocab_size
        if self.pad_token_id is not None:
            ignored |= input_ids == self.pad_token_id
        input_ids = input_ids.masked_fill(ignored, vocab_size)
        counts = torch.zeros((input_ids.shape[0], vocab_size + 1), dtype=torch.long, device=input_ids.device)
        counts.scatter_add_(1, input_ids, torch.ones_like(input_ids))
        return counts[:, :vocab_size]


class PresencePenaltyLogitsProcessor(_TokenCountPenaltyLogitsProcessor):
    r"""
    [`LogitsProcessor`] that subtracts a fixed `penalty` from the logit of every token already present in the row
    (book §5.4, the OpenAI API's `presence_penalty`): `logits[t] -= penalty * (count[t] > 0)`.

    Unlike the frequency penalty, how often the token occurred does not matter, only whether it did: the penalty
    pushes the model towards tokens (topics) it has not used yet. Positive values discourage repetition, negative
    values encourage it, `0.0` changes nothing.

    Which tokens count: every token of each row of `input_ids`, that is the prompt *and* the tokens generated so
    far, as transformers' [`RepetitionPenaltyLogitsProcessor`] does. The OpenAI API counts only the generated
    tokens: pass `prompt_ignore_length=input_ids.shape[1]` (the padded prompt length) for those semantics.

    Args:
        penalty (`float`):
            Subtracted once from the logit of each token that occurs in the row. Must be finite.
        pad_token_id (`int`, *optional*):
            Token id never counted, so that the pads of a left-padded batch (and of rows that already finished)
            are not penalised. Leave it `None` when the pad token is also a real token of the text.
        prompt_ignore_length (`int`, *optional*):
            Number of leading columns of `input_ids` not counted (the prompt). `None` counts everything.

    Example:

    ```python
    >>> import torch
    >>> from hf_hundredpage.generation import PresencePenaltyLogitsProcessor
    >>> processor = PresencePenaltyLogitsProcessor(0.5)
    >>> processor(torch.tensor([[1, 1, 3]]), torch.zeros(1, 5))
    tensor([[ 0.0000, -0.5000,  0.0000, -0.5000,  0.0000]])
    ```
    """

    _name = "presence_penalty"

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        counts = self.token_counts(input_ids, scores.shape[-1])
        return scores - self.penalty * (counts > 0).to(scores.dtype)


class FrequencyPenaltyLogitsProcessor(_TokenCountPenaltyLogitsProcessor):
    r"""
    [`LogitsProcessor`] that subtracts `penalty` times the number of occurrences of each token in the row from its
    logit (book §5.4, the OpenAI API's `frequency_penalty`): `logits[t] -= penalty * count[t]`.

    The more often a token was used, the less likely it becomes, which breaks the loops ("the the the ...") that
    greedy decoding of small models falls into. Positive values discourage repetition, negative values encourage
    it, `0.0` changes nothing.

    Which tokens count: every token of each row of `input_ids` (prompt and generated tokens), as for
    [`PresencePenaltyLogitsProcessor`]; pass `prompt_ignore_length` to count only the generated ones.

    Args:
        penalty (`float`):
            Subtracted from the logit of a token once per occurrence of the token in the row. Must be finite.
        pad_token_id (`int`, *optional*):
            Token id never counted (the pads of a left-padded batch).
        prompt_ignore_length (`int`, *optional*):
            Number of leading columns of `input_ids` not counted (the prompt). `None` counts everything.

    Example:

    ```python
    >>> import torch
    >>> from hf_hundredpage.generation import FrequencyPenaltyLogitsProcessor
    >>> processor = FrequencyPenaltyLogitsProcessor(0.5)
    >>> processor(torch.tensor([[1, 1, 3]]), torch.zeros(1, 5))
    tensor([[ 0.0000, -1.0000,  0.0000, -0.5000,  0.0000]])
    ```
    """

    _name = "frequency_penalty"

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        counts = self.token_counts(input_ids, scores.shape[-1])
        return scores - self.penalty * counts.to(scores.dtype)


class NGramMixtureLogitsProcessor(LogitsProcessor):
    r"""
    [`LogitsProcessor`] that samples from the mixture of the model and a count-based n-gram model (book §2.5 × §4):
    the next-token log-probabilities become `log(weight * p_ngram + (1 - weight) * softmax(logits))`.

    The n-gram (`hf_hundredpage.evaluation.ngram.NGramLanguageModel`, e.g. the ``ngram_baseline.npz`` the pretraining
    recipe saves) sees each row without its special tokens (BOS, padding), as it was fitted on documents without
    them. `weight=0` leaves the model's distribution unchanged; `weight=1` is the n-gram alone. Use the cross-fitted
    ``mixture_weight`` of the run's metrics.json.
    """

    supports_continuous_batching = False

    def __init__(self, ngram_model, weight: float, skip_token_ids: list[int] | None = None):
        if not 0.0 <= float(weight) <= 1.0:
            raise ValueError(f"the n-gram mixture weight must be in [0, 1], got {weight}")
        self.ngram, self.weight = ngram_model, float(weight)
        self.skip = set(skip_token_ids or [])

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        import numpy as np

        log_p_model = scores.float().log_softmax(dim=-1)
        if self.weight == 0.0:
            return log_p_model.to(scores.dtype)
        context = self.ngram.order - 1
        rows = []
        for row in input_ids.tolist():
            tokens = [t for t in row if t not in self.skip][-context:] if context else []
            rows.append(self.ngram.next_token_distribution(tokens))
        p_ngram = torch.zeros_like(log_p_model)
        width = min(p_ngram.shape[-1], self.ngram.vocab_size)
        p_ngram[:, :width] = torch.from_numpy(np.stack(rows)[:, :width]).to(p_ngram)
        log_p_ngram = p_ngram.log()
        if self.weight == 1.0:
            return log_p_ngram.to(scores.dtype)
        mixed = torch.logaddexp(math.log(self.weight) + log_p_ngram, math.log1p(-self.weight) + log_p_model)
        return mixed.to(scores.dtype)


def build_logits_processors(
    presence_penalty: float = 0.0,
    frequency_penalty: float = 0.0,
    pad_token_id: int | None = None,
    prompt_ignore_length: int | None = None,
) -> LogitsProcessorList:
    """The book's additive penalties (§5.4) as a list for `model.generate(..., logits_processor=...)`.

    Zero penalties add no processor, so the list is empty when both are `0.0`. Inside `generate()` these run
    after transformers' own processors (e.g. `repetition_penalty`) and before its warpers (`temperature`,
    `top_k`, `top_p`, `min_p`). See [`PresencePenaltyLogitsProcessor`] for `pad_token_id` and
    `prompt_ignore_length`.
    """
    presence_penalty = _check_penalty(presence_penalty, "presence_penalty")
    frequency_penalty = _check_penalty(frequency_penalty, "frequency_penalty")
    processors = LogitsProcessorList()
    if presence_penalty != 0.0:
        processors.append(PresencePenaltyLogitsProcessor(presence_penalty, pad_token_id, prompt_ignore_length))
    if frequency_penalty != 0.0:
        processors.append(FrequencyPenaltyLogitsProcessor(frequency_penalty, pad_token_id, prompt_ignore_length))
    return processors


# --------------------------------------------------------------------------------------------------------------
# Loading a model or an adapter
# --------------------------------------------------------------------------------------------------------------


def _has_tokenizer(folder: str) -> bool:
    return any(os.path.isfile(os.path.join(folder, name)) for name in _TOKENIZER_FILES)


def _resolve_adapter_base(adapter_dir: str) -> str:
    """`base_model_name_or_path` of an adapter folder; a relative path is tried from the adapter folder too."""
    with open(os.path.join(adapter_dir, "adapter_config.json"), encoding="utf-8") as f:
        base = json.load(f).get("base_model_name_or_path")
    if not base:
        raise ValueError(
            f"adapter {adapter_dir} does not say which base model it adapts: set `base_model_name_or_path` in its "
            "adapter_config.json to the base model's folder or Hub id"
        )
    if os.path.isdir(base):
        return base
    beside = os.path.normpath(os.path.join(adapter_dir, base))
    if not os.path.isabs(base) and os.path.isdir(beside):
        return beside
    if looks_like_local_path(base):
        raise FileNotFoundError(
            f"base model {base} of adapter {adapter_dir} does not exist: fix `base_model_name_or_path` in its "
            "adapter_config.json"
        )
    return base  # a Hub id


def load_for_generation(model_name_or_path: str, *, trust_remote_code: bool = False, dtype=None):
    """A causal LM and its tokenizer, ready for `generate()`: a full model folder (or Hub id) or a PEFT adapter.

    A folder with an `adapter_config.json` is a PEFT adapter (e.g. the output of LoRA finetuning, book §5.5): the
    base model named by its `base_model_name_or_path` is loaded first, then the adapter on top of it with
    `peft.PeftModel.from_pretrained`. The tokenizer comes from the folder when it has one, else from the base.
    The book's model types resolve through the Auto classes without remote code, since importing this module
    imports `hf_hundredpage`, which registers them.

    Args:
        model_name_or_path (`str`): model folder, adapter folder or Hub id.
        trust_remote_code (`bool`, defaults to `False`): allow the folder's own modeling code.
        dtype (`str` or `torch.dtype`, *optional*): dtype to load the weights in (`"auto"`, `torch.bfloat16`, ...);
            `None` keeps transformers' default.

    Returns:
        `(model, tokenizer)`, the model in eval mode.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = resolve_model_path(os.path.expanduser(os.fspath(model_name_or_path)))
    load_kwargs = {"trust_remote_code": trust_remote_code}
    if dtype is not None:
        load_kwargs["dtype"] = dtype

    if os.path.isfile(os.path.join(name, "adapter_config.json")):
        from peft import PeftModel

        base_name = _resolve_adapter_base(name)
        model = AutoModelForCausalLM.from_pretrained(base_name, **load_kwargs)
        model = PeftModel.from_pretrained(model, name)
        tokenizer_source = name if _has_tokenizer(name) else base_name
    else:
        model = AutoModelForCausalLM.from_pretrained(name, **load_kwargs)
        tokenizer_source = name
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source, trust_remote_code=trust_remote_code)
    model.eval()
    return model, tokenizer


# --------------------------------------------------------------------------------------------------------------
# Command line: hf-hundredpage generate
# --------------------------------------------------------------------------------------------------------------


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="model folder, PEFT adapter folder or Hub id")
    parser.add_argument("--prompt", required=True, help="text to continue (or the user message with --chat)")
    parser.add_argument("--chat", action="store_true", help="wrap the prompt in the tokenizer's chat template")
    parser.add_argument("--system", default=None, help="system message (with --chat)")
    parser.add_argument("--max_new_tokens", type=int, default=64, help="tokens to generate at most (default: 64)")
    controls = parser.add_argument_group("sampling controls (book §5.4)")
    controls.add_argument("--temperature", type=float, default=None, help="divide the logits by this (> 0)")
    controls.add_argument("--top_k", type=int, default=None, help="sample among the k most likely tokens")
    controls.add_argument("--top_p", type=float, default=None, help="sample in the smallest set of probability >= p")
    controls.add_argument("--min_p", type=float, default=None, help="drop tokens below min_p x the top probability")
    controls.add_argument(
        "--repetition_penalty", type=float, default=None, help="transformers' multiplicative penalty (> 1 discourages)"
    )
    controls.add_argument(
        "--presence_penalty", type=float, default=0.0, help="subtract this from the logit of every token already used"
    )
    controls.add_argument(
        "--frequency_penalty", type=float, default=0.0, help="subtract this times the token's count so far"
    )
    controls.add_argument(
        "--penalize_prompt",
        action="store_true",
        help="count the prompt's tokens in the presence/frequency penalties (default: only the generated ones, "
        "as the OpenAI API)",
    )
    controls.add_argument("--num_beams", type=int, default=None, help="beam search with this many beams (no streaming)")
    mode = controls.add_mutually_exclusive_group()
    mode.add_argument(
        "--do_sample",
        dest="do_sample",
        action="store_true",
        default=None,
        help="sample (the default when --temperature/--top_k/--top_p/--min_p is given)",
    )
    mode.add_argument(
        "--greedy", dest="do_sample", action="store_false", help="take the most likely token (the default)"
    )
    mixture = parser.add_argument_group("count-based mixture (book §2.5 × §4)")
    mixture.add_argument("--ngram", default=None, help="an n-gram model file (.npz, e.g. the run's ngram_baseline.npz)")
    mixture.add_argument(
        "--ngram_weight", type=float, default=None,
        help="weight of the n-gram in the mixture (default: mixture_weight of the model folder's metrics.json)",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed, for reproducible sampling")
    parser.add_argument(
        "--dtype", default=None, choices=["auto", "float32", "bfloat16", "float16"], help="dtype of the weights"
    )
    parser.add_argument("--device", default=None, help="device to run on (default: cuda when available, else cpu)")
    parser.add_argument("--trust_remote_code", action="store_true", help="allow the model folder's own code")
    parser.add_argument("--no_stream", action="store_true", help="print the completion at the end instead of streaming")


def _generation_kwargs(args: argparse.Namespace) -> dict:
    """`generate()` arguments from the command line flags, validated with messages naming the flag to fix."""
    if args.max_new_tokens < 1:
        raise ValueError(f"--max_new_tokens must be at least 1, got {args.max_new_tokens}")
    checks = {
        "temperature": (lambda v: math.isfinite(v) and v > 0, "a positive number"),
        "top_k": (lambda v: v >= 1, "a positive integer"),
        "top_p": (lambda v: 0 < v <= 1, "in (0, 1]"),
        "min_p": (lambda v: 0 <= v <= 1, "in [0, 1]"),
        "repetition_penalty": (lambda v: math.isfinite(v) and v > 0, "a positive number"),
        "num_beams": (lambda v: v >= 1, "a positive integer"),
    }
    for flag, (is_valid, expected) in checks.items():
        value = getattr(args, flag)
        if value is not None and not is_valid(value):
            raise ValueError(f"--{flag} must be {expected}, got {value}")
    for flag in ("presence_penalty", "frequency_penalty"):
        if not math.isfinite(getattr(args, flag)):
            raise ValueError(f"--{flag} must be a finite number, got {getattr(args, flag)}")

    given = [flag for flag in _SAMPLING_FLAGS if getattr(args, flag) is not None]
    do_sample = bool(given) if args.do_sample is None else args.do_sample
    if given and not do_sample:
        raise ValueError(f"--{given[0]} only applies when sampling: drop --greedy or drop the sampling flags")
    kwargs = {"max_new_tokens": args.max_new_tokens, "do_sample": do_sample}
    for flag in (*_SAMPLING_FLAGS, "repetition_penalty", "num_beams"):
        if getattr(args, flag) is not None:
            kwargs[flag] = getattr(args, flag)
    return kwargs


def chat_turn_end(tokenizer: PreTrainedTokenizerBase) -> tuple[int | None, str]:
    """The token id that ends an assistant turn in the tokenizer's chat template, and the plain text that the
    template puts between the answer and that token (book §5.3).

    The template is rendered on a one-turn conversation; the first special token after the assistant's answer is
    the stop token (``<|eos|>`` for the book's tokenizer, ``<|im_end|>`` for ChatML, ``<|eot_id|>`` for Llama 3).
    `generate()` only stops on it when ``generation_config.eos_token_id`` contains it. Without a chat template, or
    when no special token follows the answer, the tokenizer's EOS token (and an empty text) is returned.
    """
    if not getattr(tokenizer, "chat_template", None):
        return tokenizer.eos_token_id, ""
    sentinel = "QZXJV-42"
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": sentinel}], tokenize=False
    )
    if sentinel not in rendered:
        return tokenizer.eos_token_id, ""
    after = rendered[rendered.index(sentinel) + len(sentinel):]
    special = {tokenizer.convert_ids_to_tokens(i): i for i in tokenizer.all_special_ids}
    special.update({t.content: i for i, t in tokenizer.added_tokens_decoder.items() if t.special})
    first = min(((after.find(text), text) for text in special if text and text in after), default=None)
    if first is None:
        return tokenizer.eos_token_id, ""
    position, text = first
    return special[text], after[:position]


def stop_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The end-of-turn token of the chat template, then the tokenizer's EOS token when it is another one."""
    turn_end, _ = chat_turn_end(tokenizer)
    ids = [i for i in (turn_end, tokenizer.eos_token_id) if i is not None]
    return list(dict.fromkeys(ids))


def set_generation_stop_tokens(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Write the chat template's end-of-turn token (and EOS) into ``generation_config.eos_token_id`` and the pad
    token into ``pad_token_id``, so `generate()` on the saved model stops where training taught it to."""
    ids = stop_token_ids(tokenizer)
    model.generation_config.eos_token_id = ids[0] if len(ids) == 1 else ids
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return ids


@torch.no_grad()
def greedy_complete(
    model, prompts: list[list[int]], *, max_new_tokens: int, stop_ids: list[int], pad_token_id: int | None = None,
    batch_size: int = 32,
) -> list[tuple[list[int], bool]]:
    """Greedy continuations of token-id prompts: the one greedy loop behind exact match, label generation and the
    training samples.

    Prompts are batched by length, so no padding is involved and the result is the same for every architecture (the
    RNN included) and batch size. Each continuation is cut before its first stop token.

    Returns:
        For each prompt, in order, ``(new_token_ids, stopped)``; ``stopped`` says whether a stop token ended it.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be at least 1.")
    by_length: dict[int, list[int]] = {}
    for index, ids in enumerate(prompts):
        by_length.setdefault(len(ids), []).append(index)
    pad_token_id = pad_token_id if pad_token_id is not None else (stop_ids[0] if stop_ids else None)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    results: list[tuple[list[int], bool] | None] = [None] * len(prompts)
    try:
        for length in sorted(by_length):
            group = by_length[length]
            for start in range(0, len(group), batch_size):
                chunk = group[start : start + batch_size]
                input_ids = torch.tensor([prompts[i] for i in chunk], device=device)
                output = model.generate(
                    input_ids=input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=max_new_tokens,
                    do_sample=False, num_beams=1, pad_token_id=pad_token_id,
                    eos_token_id=(stop_ids[0] if len(stop_ids) == 1 else stop_ids) or None,
                )
                for index, row in zip(chunk, output[:, length:].tolist()):
                    cut = next((i for i, token in enumerate(row) if token in stop_ids), None)
                    results[index] = (row if cut is None else row[:cut], cut is not None)
    finally:
        model.train(was_training)
    return results  # type: ignore[return-value]


def encode_text_prompt(tokenizer, text: str) -> torch.Tensor:
    """`(1, T)` ids of a plain-text prompt, started like a pretraining document (`pack_dataset(add_bos=True)`):
    with the tokenizer's BOS token when it has one and the text does not already begin with it."""
    input_ids = tokenizer(text, return_tensors="pt")["input_ids"]
    bos = tokenizer.bos_token_id
    if bos is not None and (input_ids.shape[1] == 0 or input_ids[0, 0] != bos):
        input_ids = torch.cat([torch.tensor([[bos]], dtype=input_ids.dtype), input_ids], dim=1)
    return input_ids


def _encode_prompt(tokenizer, args: argparse.Namespace, model_name: str) -> dict:
    if args.system is not None and not args.chat:
        raise ValueError("--system needs --chat (the system message goes through the chat template)")
    if args.chat:
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(f"the tokenizer of {model_name} has no chat template: drop --chat, or use a chat model")
        messages = [{"role": "system", "content": args.system}] if args.system is not None else []
        messages.append({"role": "user", "content": args.prompt})
        return dict(
            tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True, return_tensors="pt")
        )
    input_ids = encode_text_prompt(tokenizer, args.prompt)
    if input_ids.shape[1] == 0:
        raise ValueError("--prompt is empty and the tokenizer has no BOS token to start from: pass some text")
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}


def _ngram_mixture(args: argparse.Namespace, tokenizer) -> NGramMixtureLogitsProcessor:
    from .evaluation.ngram import NGramLanguageModel

    weight = args.ngram_weight
    metrics_file = os.path.join(args.model, "metrics.json")
    if weight is None and os.path.isfile(metrics_file):
        with open(metrics_file, encoding="utf-8") as f:
            weight = json.load(f).get("mixture_weight")
    if weight is None:
        raise ValueError("--ngram needs --ngram_weight (the model folder's metrics.json has no mixture_weight)")
    skip = [t for t in (tokenizer.bos_token_id, tokenizer.pad_token_id) if t is not None]
    return NGramMixtureLogitsProcessor(NGramLanguageModel.load(args.ngram), weight, skip_token_ids=skip)


def run_from_args(args: argparse.Namespace) -> int:
    from transformers import TextStreamer, set_seed

    generate_kwargs = _generation_kwargs(args)
    model, tokenizer = load_for_generation(args.model, trust_remote_code=args.trust_remote_code, dtype=args.dtype)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    inputs = {key: value.to(device) for key, value in _encode_prompt(tokenizer, args, args.model).items()}
    prompt_length = inputs["input_ids"].shape[1]

    generation_config = model.generation_config
    if generation_config.eos_token_id is None and tokenizer.eos_token_id is not None:
        generate_kwargs["eos_token_id"] = tokenizer.eos_token_id
    pad_token_id = tokenizer.pad_token_id
    if pad_token_id is None:
        pad_token_id = generation_config.pad_token_id
    if pad_token_id is None:
        pad_token_id = generate_kwargs.get("eos_token_id", generation_config.eos_token_id)
    if isinstance(pad_token_id, list):
        pad_token_id = pad_token_id[0]
    if pad_token_id is not None:
        generate_kwargs["pad_token_id"] = pad_token_id

    generate_kwargs["logits_processor"] = build_logits_processors(
        presence_penalty=args.presence_penalty,
        frequency_penalty=args.frequency_penalty,
        pad_token_id=tokenizer.pad_token_id,
        prompt_ignore_length=None if args.penalize_prompt else prompt_length,
    )
    if args.ngram:
        generate_kwargs["logits_processor"].append(_ngram_mixture(args, tokenizer))
    # transformers' streamers take one sequence at a time, which beam search does not produce.
    stream = not args.no_stream and generate_kwargs.get("num_beams", 1) == 1
    if stream:
        generate_kwargs["streamer"] = TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    if args.seed is not None:
        set_seed(args.seed)

    with torch.no_grad():
        output = model.generate(**inputs, **generate_kwargs)
    if not stream:
        print(tokenizer.decode(output[0, prompt_length:], skip_special_tokens=True))
    sys.stdout.flush()
    return 0
