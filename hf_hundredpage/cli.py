"""The ``hf-hundredpage`` command line.

Each subcommand lives in the library module that does the work; that module exposes two functions,
``configure_parser(parser)`` (adds its arguments) and ``run_from_args(args) -> int``. The module is
imported only when its subcommand runs, so ``hf-hundredpage --help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys


# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "convert-book": (
        "hf_hundredpage.conversion",
        "convert a book notebook checkpoint (.pth) into a Hugging Face model folder",
    ),
    "train-tokenizer": (
        "hf_hundredpage.tokenization",
        "train a byte-level BPE tokenizer (book §2.3) and save it as a PreTrainedTokenizerFast",
    ),
    "evaluate": (
        "hf_hundredpage.evaluation.lm",
        "perplexity and bits-per-byte of a model vs the n-gram baseline on a dataset",
    ),
    "generate": (
        "hf_hundredpage.generation",
        "generate text from a model, HF model or adapter with the book's sampling controls (§5.4)",
    ),
    "merge-adapter": (
        "hf_hundredpage.finetuning.adapters",
        "merge a LoRA adapter into its base model and save a standalone model",
    ),
    "constitutional": (
        "hf_hundredpage.alignment.constitutional",
        "critique and revise a chat model's answers against a constitution (§6.4): preference and SFT datasets",
    ),
    "prune": (
        "hf_hundredpage.compression.prune",
        "prune a model (§6.3): zero small weights, or remove blocks, MLP neurons or attention heads",
    ),
    "quantize": (
        "hf_hundredpage.compression.quantize",
        "quantize a model after training (§6.3) with bitsandbytes or torchao, or --compare every method",
    ),
    "merge": (
        "hf_hundredpage.merging.merge",
        "merge models (§6.2) from a mergekit YAML config: linear, slerp, task_arithmetic, ties, dare_*, passthrough",
    ),
    "upcycle": (
        "hf_hundredpage.merging.upcycle",
        "turn a dense transformer into a mixture of experts (§6.1) whose experts start as copies of its MLPs",
    ),
    "reason": (
        "hf_hundredpage.reasoning.cli_reason",
        "answer a question with an inference-time reasoning strategy (§6.5): cot, self-consistency, pal, tools, react, tot",
    ),
    "eval-reasoning": (
        "hf_hundredpage.reasoning.cli_eval",
        "accuracy and tokens per problem of reasoning strategies (§6.5) on builtin:arithmetic or your data",
    ),
    "redteam": (
        "hf_hundredpage.security.redteam",
        "attack success rate of prompt-injection and jailbreak probes (§6.6), before and after each defense",
    ),
    "publish": (
        "hf_hundredpage.hub.publish",
        "upload a trained model folder to the Hugging Face Hub",
    ),
}


class _ErrorExit(SystemExit):
    pass


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-hundredpage",
        description="The Hundred-Page Language Models Book, as Hugging Face tooling.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            importlib.import_module(module_name).configure_parser(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 1
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.run_from_args(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError, OSError) as err:
        # Library functions raise with a message that says what to fix: show it on one line.
        print(f"hf-hundredpage {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
