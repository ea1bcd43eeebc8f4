"""Byte-level BPE tokenizers (book §2.3) as `transformers.PreTrainedTokenizerFast`.

The book builds its vocabulary with byte-pair encoding: start from single symbols, repeatedly merge the most
frequent adjacent pair, stop at the target vocabulary size (§2.3, "Byte-Pair Encoding"). Here the merges are
learned by the `tokenizers` library over *bytes* (the GPT-2 byte-to-unicode alphabet), so every UTF-8 string is
encodable without an unknown token and ``decode(encode(text)) == text`` holds exactly.

Special tokens (ids 0-4, in this order):

=================  ==================================================================================
``<|bos|>``        beginning of sequence; not added by ``encode`` (set ``tokenizer.add_bos_token = True`` to)
``<|eos|>``        end of a document in pretraining (`pack_dataset` puts it between documents) *and* end of a
                   chat turn, so a model trained on either data stops generating on the same id
``<|pad|>``        padding; never a training target (collators set its labels to -100)
``<|unk|>``        unknown token; kept for API completeness, byte-level BPE never produces it
``<|im_start|>``   start of a chat turn, followed by the role and a newline (ChatML layout)
=================  ==================================================================================

The chat template (`CHAT_TEMPLATE`) renders a conversation as::

    <|im_start|>system
    You are terse.<|eos|>
    <|im_start|>user
    Hi<|eos|>
    <|im_start|>assistant
    Hello.<|eos|>

ChatML ends a turn with ``<|im_end|>``; here the turn terminator is the tokenizer's EOS itself, so
``model.generate`` stops after an assistant turn with no extra ``eos_token_id`` configuration. Each assistant
reply *and its terminating EOS* sit inside ``{% generation %}...{% endgeneration %}``, which is what
``apply_chat_template(..., return_assistant_tokens_mask=True)`` and TRL's ``SFTConfig(assistant_only_loss=True)``
read to train on the assistant tokens only (including the stop token).

With ``apply_chat_template(messages, tools=[...])`` (function calling, book §6.5) the template puts the tools' JSON
schemas in a system turn (after the system message, when there is one) in the Hermes/Qwen layout, renders an
assistant message's ``tool_calls`` as ``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`` lines inside
the generation tags, and a ``tool`` message as ``<|im_start|>tool\\n<tool_response>\\n...\\n</tool_response><|eos|>``.
Without tools a conversation renders exactly as above.
"""

from __future__ import annotations

import argparse
import gzip
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast


BOS_TOKEN = "<|bos|>"
EOS_TOKEN = "<|eos|>"
PAD_TOKEN = "<|pad|>"
UNK_TOKEN = "<|unk|>"
IM_START_TOKEN = "<|im_start|>"
SPECIAL_TOKENS = [BOS_TOKEN, EOS_TOKEN, PAD_TOKEN, UNK_TOKEN, IM_START_TOKEN]

CHAT_TEMPLATE = (
    # Tools (book §6.5, function calling), Hermes/Qwen layout: the JSON schemas in the system turn (after the system
    # message, if any); the assistant calls them with <tool_call>{"name": ..., "arguments": {...}}</tool_call>.
    "{%- if tools -%}"
    "{{- '<|im_start|>system\\n' -}}"
    "{%- if messages and messages[0]['role'] == 'system' -%}{{- messages[0]['content'] + '\\n\\n' -}}{%- endif -%}"
    "{{- '# Tools\\n\\nYou may call one or more functions to answer the user. The function signatures are within '"
    " + '<tools></tools> XML tags:\\n<tools>' -}}"
    "{%- for tool in tools -%}{{- '\\n' + (tool | tojson) -}}{%- endfor -%}"
    "{{- '\\n</tools>\\n\\nFor each function call, return a JSON object with the function name and arguments within '"
    " + '<tool_call></tool_call> XML tags:\\n<tool_call>\\n{\"name\": <function-name>, \"arguments\": '"
    " + '<args-json-object>}\\n</tool_call><|eos|>\\n' -}}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- generation -%}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}{%- endif -%}"
    "{%- for tool_call in message.get('tool_calls') or [] -%}"
    "{%- if tool_call.function is defined -%}{%- set tool_call = tool_call.function -%}{%- endif -%}"
    "{%- if loop.first and message['content'] -%}{{- '\\n' -}}{%- endif -%}"
    "{%- if not loop.first -%}{{- '\\n' -}}{%- endif -%}"
    "{{- '<tool_call>\\n{\"name\": \"' + tool_call.name + '\", \"arguments\": ' -}}"
    "{%- if tool_call.arguments is string -%}{{- tool_call.arguments -}}"
    "{%- else -%}{{- tool_call.arguments | tojson -}}{%- endif -%}"
    "{{- '}\\n</tool_call>' -}}"
    "{%- endfor -%}"
    "{{- '<|eos|>' -}}"
    "{%- endgeneration -%}"
    "{{- '\\n' -}}"
    "{%- elif message['role'] == 'tool' -%}"
    "{{- '<|im_start|>tool\\n<tool_response>\\n' + message['content'] + '\\n</tool_response><|eos|>\\n' -}}"
    "{%- elif not (tools and loop.first and message['role'] == 'system') -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|eos|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

_BATCH_SIZE = 1000


def _iter_text_files(paths: list[Path]) -> Iterator[str]:
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"No such text file: {path}; pass existing .txt (or .txt.gz) files.")
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            for line in f:
                yield line.rstrip("\n")


def _batched_texts(texts, text_column: str) -> tuple[Iterator[list[str]], int | None]:
    """Normalise the accepted inputs to an iterator of lists of strings, plus the number of texts when known."""
    import datasets

    if isinstance(texts, (str, bytes)):
        raise ValueError(
            "`texts` is a single string; pass a list/iterator of strings, a `datasets.Dataset`, or text files as "
            "`pathlib.Path` objects."
        )
    if isinstance(texts, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        if "train" not in texts:
            raise ValueError(f"The DatasetDict has no 'train' split (splits: {list(texts)}); pass one split.")
        texts = texts["train"]
    if isinstance(texts, (datasets.Dataset, datasets.IterableDataset)):
        columns = texts.column_names
        if columns is not None and text_column not in columns:
            raise ValueError(f"Text column '{text_column}' not found; the dataset has columns {columns}.")
        if isinstance(texts, datasets.Dataset):
            dataset = texts.select_columns([text_column])
            batches = (dataset[i : i + _BATCH_SIZE][text_column] for i in range(0, len(dataset), _BATCH_SIZE))
            return batches, len(dataset)
        stream = texts.iter(batch_size=_BATCH_SIZE)
        return (batch[text_column] for batch in stream), None
    if isinstance(texts, os.PathLike):
        texts = [texts]
    if isinstance(texts, (list, tuple)) and texts and all(isinstance(t, os.PathLike) for t in texts):
        lines = _iter_text_files([Path(t) for t in texts])
        return _chunks(lines), None
    length = len(texts) if hasattr(texts, "__len__") else None
    return _chunks(iter(texts)), length


def _chunks(items: Iterator[str]) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"Expected strings to train the tokenizer on, got {type(item).__name__}.")
        batch.append(item)
        if len(batch) == _BATCH_SIZE:
            yield batch
            batch = []
    if batch:
        yield batch


def train_bpe_tokenizer(
    texts: Iterable[str] | os.PathLike | list[os.PathLike],
    vocab_size: int = 8192,
    min_frequency: int = 2,
    model_max_length: int = 1024,
    show_progress: bool = False,
    *,
    text_column: str = "text",
) -> PreTrainedTokenizerFast:
    """Learn a byte-level BPE vocabulary (book §2.3) and return it as a `PreTrainedTokenizerFast`.

    Args:
        texts: the training text: an iterable of strings, a `datasets.Dataset` / `IterableDataset` (or a
            `DatasetDict`, whose ``train`` split is used) read through ``text_column``, or one or more text files
            given as `pathlib.Path` (one document per line, ``.gz`` allowed).
        vocab_size: size of the final vocabulary, the 256 byte symbols and the 5 special tokens included.
        min_frequency: a pair must occur at least this often to be merged.
        model_max_length: the context length recorded in the tokenizer (used for truncation).
        show_progress: show the `tokenizers` trainer's progress bar.
        text_column: column holding the text when ``texts`` is a dataset.

    Returns:
        A tokenizer with the special tokens `<|bos|>`, `<|eos|>`, `<|pad|>`, `<|unk|>`, `<|im_start|>` (ids 0-4)
        and `CHAT_TEMPLATE`; ``save_pretrained`` output reloads with ``AutoTokenizer.from_pretrained``.
    """
    minimum = len(SPECIAL_TOKENS) + len(pre_tokenizers.ByteLevel.alphabet())
    if vocab_size < minimum:
        raise ValueError(f"vocab_size={vocab_size} is too small: byte-level BPE needs at least {minimum}.")
    if min_frequency < 1:
        raise ValueError(f"min_frequency={min_frequency} must be at least 1.")

    batches, length = _batched_texts(texts, text_column)

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=show_progress,
    )
    backend.train_from_iterator(batches, trainer=trainer, length=length)
    if backend.get_vocab_size() <= minimum:
        raise ValueError("No merge was learned: the training text is empty or too small for `min_frequency`.")

    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        extra_special_tokens=[IM_START_TOKEN],
        chat_template=CHAT_TEMPLATE,
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,  # any cleanup would break decode(encode(x)) == x
    )


# --------------------------------------------------------------------------------------------------------------
# `hf-hundredpage train-tokenizer`
# --------------------------------------------------------------------------------------------------------------


def configure_parser(parser: argparse.ArgumentParser) -> None:
    from .data import EMBEDDED_CORPUS

    parser.add_argument(
        "--dataset_name",
        default=EMBEDDED_CORPUS,
        help=f"'{EMBEDDED_CORPUS}' (embedded, default), a Hub dataset id, a local directory or a "
        ".txt/.jsonl/.json/.csv/.parquet file",
    )
    parser.add_argument("--dataset_config", default=None, help="Hub dataset configuration name")
    parser.add_argument("--text_column", default="text", help="column that holds the text (default: text)")
    parser.add_argument("--vocab_size", type=int, default=8192, help="vocabulary size (default: 8192)")
    parser.add_argument("--min_frequency", type=int, default=2, help="minimum pair count to merge (default: 2)")
    parser.add_argument("--model_max_length", type=int, default=1024, help="context length (default: 1024)")
    parser.add_argument("--max_samples", type=int, default=None, help="train on the first N rows only")
    parser.add_argument("--output_dir", required=True, help="where to save the tokenizer (save_pretrained)")
    parser.add_argument(
        "--overwrite_output_dir", action="store_true", help="write into a non-empty output directory"
    )


def run_from_args(args: argparse.Namespace) -> int:
    from .data import count_utf8_bytes, load_text_dataset
    from .outputs import check_output_dir, save_folder

    output_dir = Path(args.output_dir)
    check_output_dir(output_dir, args.overwrite_output_dir, resuming=False)
    dataset = load_text_dataset(args.dataset_name, args.dataset_config, text_column=args.text_column)
    train = dataset["train"]
    if args.max_samples is not None:
        train = train.select(range(min(args.max_samples, len(train))))
    tokenizer = train_bpe_tokenizer(
        train,
        vocab_size=args.vocab_size,
        min_frequency=args.min_frequency,
        model_max_length=args.model_max_length,
        show_progress=True,
        text_column=args.text_column,
    )
    save_folder(output_dir, tokenizer.save_pretrained)

    # Summary: how much the vocabulary compresses held-out text (bytes per token, higher is better).
    validation = dataset["validation"]
    texts = validation.select(range(min(len(validation), 2000)))[:][args.text_column]
    n_tokens = sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"])
    n_bytes = count_utf8_bytes(texts)
    print(f"{'vocabulary size':<26}{len(tokenizer):>10}")
    print(f"{'training rows':<26}{len(train):>10}")
    if n_tokens:
        print(f"{'validation bytes/token':<26}{n_bytes / n_tokens:>10.3f}")
    print(f"saved to {output_dir}")
    return 0
