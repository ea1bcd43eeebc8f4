"""Perplexity and bits per byte of causal language models and of the n-gram baseline (book §2.6).

The book measures a language model by its perplexity, `exp` of the average negative log-likelihood (NLL)
per token. Perplexities of models with different tokenizers are not comparable (a tokenizer with longer
tokens has fewer, harder predictions), so every evaluation here also reports *bits per byte*: the total NLL
in bits divided by the number of UTF-8 bytes of the evaluated text, which does not depend on the tokenizer.

Both evaluators see exactly the same tokens: each document is tokenized without special tokens and the
tokenizer's BOS token is prepended when it has one; the scored tokens are all tokens after the first one
(after the BOS, or, for a tokenizer without BOS, after the document's first token, which is then context
only). Documents longer than the model's window are scored with a sliding window, the method of the
transformers perplexity guide: windows of `max_length` tokens start every `stride` tokens, and each token
is scored exactly once, in the first window that contains it, so it sees at least `max_length - stride`
tokens of left context (or all of it, near the start of the document).

```python
>>> from hf_hundredpage.evaluation import (
...     evaluate_causal_lm, evaluate_ngram, fit_ngram_baseline, format_comparison_table
... )
>>> ngram = fit_ngram_baseline(tokenizer, train_texts, order=3)
>>> rows = {"model": evaluate_causal_lm(model, tokenizer, texts), "3-gram": evaluate_ngram(ngram, tokenizer, texts)}
>>> print(format_comparison_table(rows))
```
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Iterable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from ..metrics import load_metric
from .ngram import NGramLanguageModel


__all__ = [
    "bits_per_byte",
    "perplexity",
    "evaluate_against_ngram",
    "evaluate_causal_lm",
    "evaluate_ngram",
    "fit_ngram_baseline",
    "format_comparison_table",
    "load_metric",
]

# Tokenizers without a length limit report this sentinel (transformers' VERY_LARGE_INTEGER) or similar.
_NO_LENGTH_LIMIT = 1_000_000


def bits_per_byte(total_nll_nats: float, n_bytes: int) -> float:
    """Total negative log-likelihood in nats, converted to bits and divided by the number of bytes.

    `bits_per_byte(nll, n) = nll / ln 2 / n`: the average number of bits the model needs to encode one byte
    of the text, comparable across tokenizers (book §2.6).
    """
    if n_bytes <= 0:
        raise ValueError(f"n_bytes must be positive (the UTF-8 length of the evaluated text), got {n_bytes}")
    return float(total_nll_nats) / math.log(2) / n_bytes


def perplexity(total_nll: float, n_tokens: int) -> float:
    """`exp(total_nll / n_tokens)`: the exponential of the average NLL per token in nats (book §2.6)."""
    if n_tokens <= 0:
        raise ValueError(f"n_tokens must be positive (the number of scored tokens), got {n_tokens}")
    try:
        return math.exp(float(total_nll) / n_tokens)
    except OverflowError:
        return math.inf


def _summary(total_nll: float, n_tokens: int, n_bytes: int) -> dict:
    if n_tokens == 0:
        raise ValueError("no tokens to score: every text is empty or a single token; pass longer texts")
    return {
        "loss": total_nll / n_tokens,
        "perplexity": perplexity(total_nll, n_tokens),
        "bits_per_byte": bits_per_byte(total_nll, n_bytes),
        "n_tokens": int(n_tokens),
        "n_bytes": int(n_bytes),
    }


def _as_texts(texts: Iterable[str]) -> list[str]:
    if isinstance(texts, str):
        raise ValueError("texts must be a list of documents, not a single string: wrap it as [text]")
    texts = list(texts)
    for text in texts:
        if not isinstance(text, str):
            raise ValueError(f"texts must contain strings, found a {type(text).__name__}")
    return texts


def _tokenize_documents(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of each text, without special tokens, with the tokenizer's BOS prepended when it has one."""
    if not texts:
        return []
    encodings = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
    bos = tokenizer.bos_token_id
    if bos is None:
        return [list(ids) for ids in encodings]
    return [list(ids) if ids and ids[0] == bos else [bos, *ids] for ids in encodings]


def _num_bytes(texts: list[str]) -> int:
    return sum(len(text.encode("utf-8")) for text in texts)


def _sliding_windows(length: int, max_length: int, stride: int) -> list[tuple[int, int, int]]:
    """`(begin, end, first_target)` for each window over a document of `length` tokens.

    The window covers tokens `begin:end` and scores tokens `first_target:end`, the ones no earlier window
    scored. Token 0 is never scored (nothing precedes it). Requires `stride < max_length`, so consecutive
    windows overlap and the first scored token of a window always has some context inside it.
    """
    windows, begin, scored_until = [], 0, 1
    while scored_until < length:
        end = min(begin + max_length, length)
        windows.append((begin, end, scored_until))
        scored_until = end
        begin += stride
    return windows


def _resolve_window(model, tokenizer, max_length: int | None, stride: int | None) -> tuple[int, int]:
    if max_length is None:
        max_length = getattr(model.config, "max_position_embeddings", None)
    if max_length is None:
        model_max_length = getattr(tokenizer, "model_max_length", None)
        if model_max_length is not None and model_max_length < _NO_LENGTH_LIMIT:
            max_length = model_max_length
    if max_length is None:
        raise ValueError(
            f"{type(model).__name__}'s config has no max_position_embeddings: pass max_length (--max_length) "
            "to set the evaluation window"
        )
    if max_length < 2:
        raise ValueError(f"max_length must be at least 2 tokens, got {max_length}")
    if stride is None:
        stride = max_length // 2
    if not 1 <= stride < max_length:
        raise ValueError(
            f"stride must be in [1, max_length) = [1, {max_length}) so that consecutive windows overlap, got {stride}"
        )
    return int(max_length), int(stride)


def evaluate_causal_lm(model, tokenizer, texts: Iterable[str], **window) -> dict:
    """Loss, perplexity and bits per byte of a causal language model on `texts` (book §2.6).

    Works with any `AutoModelForCausalLM` (a forward taking `input_ids` and `attention_mask` and returning
    `.logits`). Documents longer than the window are scored with a sliding window (see the module
    docstring); windows of all documents are batched together, padded on the right. `window` takes the keyword
    arguments of `causal_lm_token_log_probs` (``max_length``, ``stride``, ``batch_size``, ``device``,
    ``show_progress``).

    Returns:
        `{"loss", "perplexity", "bits_per_byte", "n_tokens", "n_bytes"}`: the mean NLL per scored token
        (nats), its exponential, the total NLL in bits per UTF-8 byte of `texts`, the number of scored
        tokens and of bytes.
    """
    texts = _as_texts(texts)
    return summarize_log_probs(causal_lm_token_log_probs(model, tokenizer, texts, **window), texts)


def summarize_log_probs(log_probs: list[np.ndarray], texts: list[str]) -> dict:
    """`evaluate_causal_lm`'s summary of per-document token log-probabilities (nats) of `texts`."""
    total_nll = -sum(float(np.sum(doc, dtype=np.float64)) for doc in log_probs)
    return _summary(total_nll, sum(len(doc) for doc in log_probs), _num_bytes(texts))


def causal_lm_token_log_probs(
    model,
    tokenizer,
    texts: Iterable[str],
    *,
    max_length: int | None = None,
    stride: int | None = None,
    batch_size: int = 8,
    device: str | torch.device | None = None,
    show_progress: bool = False,
) -> list[np.ndarray]:
    """Natural-log probability of every scored token of each document (all tokens after the first, i.e. after
    BOS), as `evaluate_causal_lm` scores them; the same tokens as `ngram_token_log_probs`.

    Args:
        model: the causal language model; put in eval mode for the evaluation and restored afterwards.
        tokenizer: its tokenizer (a `PreTrainedTokenizerBase`).
        texts: the documents.
        max_length: window length in tokens (default: `model.config.max_position_embeddings`, else the
            tokenizer's `model_max_length` when it has a finite one).
        stride: how far each window moves (default `max_length // 2`); every token keeps at least
            `max_length - stride` tokens of left context. Must be smaller than `max_length`.
        batch_size: windows per forward pass.
        device: where to run; the model is moved there. Default: where the model already is.
        show_progress: show a tqdm progress bar over the batches.
    """
    texts = _as_texts(texts)
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    max_length, stride = _resolve_window(model, tokenizer, max_length, stride)
    documents = _tokenize_documents(tokenizer, texts)
    result = [np.zeros(max(len(ids) - 1, 0), dtype=np.float64) for ids in documents]
    windows = [
        (doc, begin, end, first_target)
        for doc, ids in enumerate(documents)
        for begin, end, first_target in _sliding_windows(len(ids), max_length, stride)
    ]
    # Longest windows first: batches of similar lengths waste little on padding.
    windows.sort(key=lambda window: window[2] - window[1], reverse=True)
    batches = [windows[i : i + batch_size] for i in range(0, len(windows), batch_size)]
    if not batches:
        return result

    if device is not None:
        model.to(device)
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    was_training = model.training
    model.eval()
    try:
        if show_progress:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc="evaluating", unit="batch")
        with torch.no_grad():
            for batch in batches:
                width = max(end - begin for _, begin, end, _ in batch)
                input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
                attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, (doc, begin, end, _) in enumerate(batch):
                    ids = torch.tensor(documents[doc][begin:end], dtype=torch.long)
                    input_ids[row, : len(ids)] = ids
                    attention_mask[row, : len(ids)] = 1
                logits = model(
                    input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), use_cache=False
                ).logits
                for row, (doc, begin, end, first_target) in enumerate(batch):
                    # Position t predicts token t + 1; only the scored positions are turned into float32.
                    positions = slice(first_target - begin - 1, end - begin - 1)
                    targets = input_ids[row, first_target - begin : end - begin].to(device)
                    scored = F.log_softmax(logits[row, positions].float(), dim=-1)
                    token_log_probs = scored.gather(-1, targets[:, None])[:, 0]
                    result[doc][first_target - 1 : end - 1] = token_log_probs.double().cpu().numpy()
    finally:
        model.train(was_training)
    return result


def fit_ngram_baseline(
    tokenizer, train_texts: Iterable[str], order: int = 3, discount: float | None = None
) -> NGramLanguageModel:
    """A Kneser-Ney n-gram model (book §2.5) fitted on `train_texts` tokenized by `tokenizer`.

    The documents are tokenized as in :func:`evaluate_ngram` (no special tokens); the model's own start
    context stands for the BOS token. The vocabulary is `len(tokenizer)`.
    """
    texts = _as_texts(train_texts)
    if not texts:
        raise ValueError("train_texts is empty: pass the training documents of the n-gram baseline")
    sequences = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
    return NGramLanguageModel(order=order, vocab_size=len(tokenizer), discount=discount).fit(sequences)


def ngram_token_log_probs(ngram_model: NGramLanguageModel, tokenizer, texts: Iterable[str]) -> list[np.ndarray]:
    """Natural-log probability of every scored token of each document under the n-gram model: the tokens
    `causal_lm_token_log_probs` scores (all after BOS, which the n-gram's start context replaces)."""
    texts = _as_texts(texts)
    has_bos = tokenizer.bos_token_id is not None
    result = []
    for ids in _tokenize_documents(tokenizer, texts):
        if len(ids) < 2:
            result.append(np.zeros(0, dtype=np.float64))
            continue
        result.append(ngram_model.token_log_probs(ids[1:]) if has_bos else ngram_model.token_log_probs(ids)[1:])
    return result


def evaluate_ngram(ngram_model: NGramLanguageModel, tokenizer, texts: Iterable[str]) -> dict:
    """Loss, perplexity and bits per byte of an n-gram model on `texts`, comparable with :func:`evaluate_causal_lm`.

    The same tokens are scored: all document tokens after the tokenizer's BOS, which the n-gram's start
    context replaces (for a tokenizer without BOS: all tokens after the first, which is context only).
    """
    texts = _as_texts(texts)
    if len(tokenizer) > ngram_model.vocab_size:
        raise ValueError(
            f"the n-gram model has vocab_size={ngram_model.vocab_size} but the tokenizer has {len(tokenizer)} "
            "tokens: fit it with fit_ngram_baseline(tokenizer, ...)"
        )
    return summarize_log_probs(ngram_token_log_probs(ngram_model, tokenizer, texts), texts)


def format_comparison_table(rows: Mapping[str, Mapping]) -> str:
    """An aligned text table of evaluation results, one row per model (e.g. a model vs the n-gram baseline).

    `rows` maps a name to a dict returned by :func:`evaluate_causal_lm` or :func:`evaluate_ngram`.
    """
    if not rows:
        raise ValueError("rows is empty: pass {name: result of evaluate_causal_lm/evaluate_ngram}")
    columns = ("loss", "perplexity", "bits_per_byte", "n_tokens")
    headers = ("loss", "perplexity", "bits/byte", "tokens")
    for name, result in rows.items():
        missing = [key for key in columns if key not in result]
        if missing:
            raise ValueError(
                f"row {name!r} lacks {', '.join(missing)}: pass results of evaluate_causal_lm/evaluate_ngram"
            )
    cells = [
        [str(name), f"{r['loss']:.4f}", f"{r['perplexity']:.2f}", f"{r['bits_per_byte']:.4f}", f"{r['n_tokens']:,}"]
        for name, r in rows.items()
    ]
    header = ["model", *headers]
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join([row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:])])

    return "\n".join([line(header), "  ".join("-" * width for width in widths), *map(line, cells)])


# ---------------------------------------------------------------------------------------------- CLI


def _texts(split, text_column: str, limit: int | None) -> list[str]:
    if hasattr(split, "select") and limit is not None:
        split = split.select(range(min(limit, len(split))))
        return list(split[text_column])
    if hasattr(split, "select"):
        return list(split[text_column])
    texts = []
    for row in split:  # a streaming split
        texts.append(row[text_column])
        if limit is not None and len(texts) >= limit:
            break
    return texts


def evaluate_against_ngram(
    model, tokenizer, raw_datasets, *, text_column: str = "text", order: int = 3, max_documents: int | None = None,
    max_length: int | None = None, ngram_train_documents: int | None = None, mixture: bool = True,
    save_ngram_to: str | os.PathLike | None = None,
) -> dict[str, float]:
    """The trained model and a Kneser-Ney n-gram (book §2.5, fitted on the same training split with the same
    tokenizer) scored on the same validation documents: loss, perplexity and bits per byte (book §2.6).

    Keys: `eval_loss`, `eval_perplexity`, `eval_bits_per_byte`, `eval_tokens`, `eval_bytes` and the same with an
    `ngram_` prefix; with `mixture`, the same with a `mixture_` prefix for ``λ·p_KN + (1 − λ)·p_NN`` (cross-fitted λ,
    `hf_hundredpage.evaluation.mixture`) and `mixture_weight` (the mean of the two fitted λ). Long documents are
    scored with a sliding window of `max_length` tokens. `save_ngram_to`: write the fitted n-gram there (``.npz``),
    for `hf_hundredpage.generation.NGramMixtureLogitsProcessor`.
    """
    from .mixture import cross_fitted_mixture

    validation = _texts(raw_datasets["validation"], text_column, max_documents)
    train = _texts(raw_datasets["train"], text_column, ngram_train_documents)
    stride = max(1, max_length // 2) if max_length else None
    nn_docs = causal_lm_token_log_probs(model, tokenizer, validation, max_length=max_length, stride=stride)
    ngram = fit_ngram_baseline(tokenizer, train, order=order)
    if save_ngram_to is not None:
        os.makedirs(os.path.dirname(os.path.abspath(save_ngram_to)), exist_ok=True)
        ngram.save(save_ngram_to)
    ngram_docs = ngram_token_log_probs(ngram, tokenizer, validation)
    scores = {"eval_": summarize_log_probs(nn_docs, validation), "ngram_eval_": summarize_log_probs(ngram_docs, validation)}
    result = {}
    if mixture and any(len(doc) for doc in nn_docs):
        mixed, weights = cross_fitted_mixture(nn_docs, ngram_docs)
        scores["mixture_eval_"] = summarize_log_probs(mixed, validation)
        result["mixture_weight"] = round(sum(weights) / 2, 4)
    for prefix, values in scores.items():
        result.update({
            f"{prefix}loss": values["loss"],
            f"{prefix}perplexity": values["perplexity"],
            f"{prefix}bits_per_byte": values["bits_per_byte"],
            f"{prefix}tokens": values["n_tokens"],
            f"{prefix}bytes": values["n_bytes"],
        })
    return result


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="model folder (AutoModelForCausalLM + its tokenizer)")
    parser.add_argument(
        "--dataset_name",
        default=None,
        help="dataset: a local .txt/.jsonl/.csv/.parquet file or folder, or a Hub id (default: the embedded corpus)",
    )
    parser.add_argument("--dataset_config", default=None, help="dataset configuration name, if it has several")
    parser.add_argument("--split", default="validation", help="split to evaluate on (default: validation)")
    parser.add_argument("--text_column", default="text", help="column holding the text (default: text)")
    parser.add_argument("--max_length", type=int, default=None, help="window length (default: the model's maximum)")
    parser.add_argument("--stride", type=int, default=None, help="window step (default: half the window)")
    parser.add_argument("--batch_size", type=int, default=8, help="windows per forward pass (default: 8)")
    parser.add_argument("--ngram_order", type=int, default=3, help="order of the Kneser-Ney baseline (default: 3)")
    parser.add_argument(
        "--max_documents",
        type=int,
        default=None,
        help="read at most this many documents from each split (train for the n-gram, the evaluated split)",
    )
    parser.add_argument("--trust_remote_code", action="store_true", help="allow the model folder's own code")


def _split_texts(dataset, split: str, text_column: str, max_documents: int | None) -> list[str]:
    if split not in dataset:
        raise ValueError(f"the dataset has no split {split!r}; pass --split with one of {sorted(dataset)}")
    data = dataset[split]
    if text_column not in data.column_names:
        raise ValueError(
            f"split {split!r} has no column {text_column!r}; pass --text_column with one of {data.column_names}"
        )
    if max_documents is not None:
        data = data.select(range(min(max_documents, len(data))))
    return list(data[text_column])


def run_from_args(args: argparse.Namespace) -> int:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..data import EMBEDDED_CORPUS, load_text_dataset
    from ..paths import resolve_model_path

    if args.max_documents is not None and args.max_documents < 1:
        raise ValueError(f"--max_documents must be a positive integer, got {args.max_documents}")
    model_dir = resolve_model_path(args.model_dir)
    dataset_name = args.dataset_name if args.dataset_name is not None else EMBEDDED_CORPUS
    dataset = load_text_dataset(dataset_name, args.dataset_config, text_column=args.text_column)
    eval_texts = _split_texts(dataset, args.split, args.text_column, args.max_documents)
    train_texts = _split_texts(dataset, "train", args.text_column, args.max_documents)
    if args.split == "train":
        print("warning: evaluating on the train split, which the n-gram baseline was fitted on")

    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=args.trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(model_dir, trust_remote_code=args.trust_remote_code)
    ngram = fit_ngram_baseline(tokenizer, train_texts, order=args.ngram_order)
    rows = {
        os.path.basename(os.path.normpath(args.model_dir)) or args.model_dir: evaluate_causal_lm(
            model,
            tokenizer,
            eval_texts,
            max_length=args.max_length,
            stride=args.stride,
            batch_size=args.batch_size,
            show_progress=True,
        ),
        f"{args.ngram_order}-gram Kneser-Ney": evaluate_ngram(ngram, tokenizer, eval_texts),
    }
    print(
        f"{dataset_name} [{args.split}]: {len(eval_texts)} documents; "
        f"n-gram fitted on {len(train_texts)} train documents"
    )
    print(format_comparison_table(rows))
    return 0
