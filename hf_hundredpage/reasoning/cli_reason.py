"""``hf-hundredpage reason MODEL --strategy cot|self-consistency|pal|tools|react|tot --prompt "..."``: one question
answered with one reasoning strategy at inference time (book §6.5); prints the answer, the tokens generated and,
with ``--trace``, every step (``--json`` for all of it as JSON).

The argument helpers here (`add_common_arguments`, `strategy_options`, `load_reasoning_model`) are shared with
``hf-hundredpage eval-reasoning`` (`cli_eval`).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


PROMPT_FORMATS = ("auto", "chat", "text")


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The model and the strategies' settings, shared by ``reason`` and ``eval-reasoning``."""
    parser.add_argument("model", help="model folder, PEFT adapter folder or Hub id (any causal LM)")
    parser.add_argument("--prompt_format", choices=PROMPT_FORMATS, default="auto",
                        help="'chat': through the tokenizer's chat template; 'text': plain text (e.g. a model finetuned "
                             "on builtin:arithmetic's sft prompts); 'auto' (default): chat when the tokenizer has a template")
    parser.add_argument("--max_new_tokens", type=int, default=256, help="most tokens per generation (default: 256)")
    parser.add_argument("--samples", type=int, default=8, help="self-consistency: chains sampled per question (default: 8)")
    parser.add_argument("--temperature", type=float, default=0.7, help="sampling temperature (self-consistency, tot)")
    parser.add_argument("--top_p", type=float, default=1.0, help="nucleus sampling for self-consistency (default: 1.0)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling strategies (default: 0)")
    parser.add_argument("--style", choices=("tags", "steps"), default="tags",
                        help="chain-of-thought prompt: the book's <reasoning>/<answer> format (default) or "
                             "\"Let's think step by step\"")
    parser.add_argument("--tools", default="calculator,python",
                        help="tools/react: comma-separated built-in tools (calculator, python) or dotted import paths "
                             "of your functions (type hints + a docstring with Args:) (default: calculator,python)")
    parser.add_argument("--max_steps", type=int, default=5, help="tools/react: most model turns (default: 5)")
    parser.add_argument("--timeout_s", type=float, default=5.0, help="pal: the program's time limit in seconds")
    parser.add_argument("--breadth", type=int, default=2, help="tot: chains kept per level (default: 2)")
    parser.add_argument("--branching", type=int, default=3, help="tot: next steps sampled per chain (default: 3)")
    parser.add_argument("--depth", type=int, default=3, help="tot: levels (default: 3)")
    parser.add_argument("--search", choices=("bfs", "beam"), default="bfs",
                        help="tot: rank chains by their own score (bfs) or by the sum along the path (beam)")
    parser.add_argument("--trust_remote_code", action="store_true", help="allow the model folder's own code")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def strategy_options(args: argparse.Namespace, name: str) -> dict[str, Any]:
    """The keyword arguments of strategy `name` from the command line."""
    chat = {"auto": None, "chat": True, "text": False}[args.prompt_format]
    options: dict[str, Any] = {"max_new_tokens": args.max_new_tokens, "chat": chat}
    if name == "cot":
        options.update(style=args.style)
    elif name == "self-consistency":
        options.update(num_samples=args.samples, temperature=args.temperature, top_p=args.top_p, seed=args.seed,
                       style=args.style)
    elif name == "pal":
        options.update(timeout_s=args.timeout_s)
    elif name in ("tools", "react"):
        from .tools import resolve_tools

        options.update(tools=resolve_tools([t.strip() for t in args.tools.split(",") if t.strip()]),
                       max_steps=args.max_steps)
    elif name == "tot":
        options.update(breadth=args.breadth, branching=args.branching, depth=args.depth, search=args.search,
                       temperature=args.temperature, seed=args.seed, max_step_tokens=min(48, args.max_new_tokens))
    return options


def check_arguments(args: argparse.Namespace) -> None:
    for flag in ("max_new_tokens", "samples", "max_steps", "breadth", "branching", "depth"):
        if getattr(args, flag) < 1:
            raise ValueError(f"--{flag} {getattr(args, flag)} must be at least 1")
    if args.temperature <= 0:
        raise ValueError(f"--temperature {args.temperature} must be positive (the sampling strategies sample)")


def load_reasoning_model(args: argparse.Namespace):
    from ..generation import load_for_generation

    return load_for_generation(args.model, trust_remote_code=args.trust_remote_code)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    from .strategies import STRATEGIES

    add_common_arguments(parser)
    parser.add_argument("--strategy", required=True, choices=[s for s in STRATEGIES],
                        help="how to reason: " + ", ".join(STRATEGIES))
    parser.add_argument("--prompt", required=True, help="the question")
    parser.add_argument("--trace", action="store_true", help="print every step of the strategy")


def run_from_args(args: argparse.Namespace) -> int:
    from .strategies import run_strategy

    check_arguments(args)
    options = strategy_options(args, args.strategy)
    model, tokenizer = load_reasoning_model(args)
    result = run_strategy(args.strategy, model, tokenizer, args.prompt, **options)
    if args.json:
        print(json.dumps({"strategy": result.strategy, "answer": result.answer, "text": result.text,
                          "generated_tokens": result.generated_tokens, "trace": result.trace},
                         ensure_ascii=False, indent=2, default=str))
        return 0
    if args.trace:
        for step in result.trace:
            print(json.dumps(step, ensure_ascii=False, default=str), file=sys.stderr)
    print(result.text.strip())
    print(f"\nanswer: {result.answer}")
    print(f"strategy: {result.strategy}, tokens generated: {result.generated_tokens}")
    return 0
