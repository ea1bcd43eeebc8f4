"""``hf-hundredpage eval-reasoning MODEL --dataset builtin:arithmetic --strategies greedy,cot,self-consistency,pal``:
the accuracy of each inference-time reasoning strategy (book §6.5) on the same held-out problems, and what it cost in
generated tokens per problem, as one markdown table (``--json`` for the numbers and every answer).

The data is any source with a ``prompt`` (text, or turns whose last user message is the question) and an ``answer``
column (``builtin:arithmetic`` by default, its ``grpo`` configuration; a local .jsonl file or folder; a Hub id); the
``test`` split is used (carved out of train when the source has none). An answer counts when its number equals the
gold answer's (`rewards.parse_number`). ``greedy`` is the baseline: the question as is, greedy decoding.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from .cli_reason import add_common_arguments, check_arguments, load_reasoning_model, strategy_options


def _question(prompt: Any) -> str:
    if isinstance(prompt, list):  # conversational: the last user turn is the question
        users = [m for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        if not users:
            raise ValueError("a conversational prompt without a user turn: the question must be in a user message")
        return str(users[-1]["content"]).strip()
    return str(prompt).strip()


def evaluate_strategies(model, tokenizer, rows: list[dict], strategies: dict[str, dict[str, Any]],
                        progress: bool = False) -> dict[str, Any]:
    """Run every strategy (name -> options) on every row (``prompt``, ``answer``).

    Returns:
        ``{"results": {name: {"accuracy", "correct", "num_examples", "tokens_per_problem", "seconds_per_problem"}},
        "examples": [{"question", "gold", name: answer, ...}]}``.
    """
    from .rewards import parse_number
    from .strategies import run_strategy

    examples = [{"question": _question(row["prompt"]), "gold": row["answer"]} for row in rows]
    results = {}
    for name, options in strategies.items():
        correct = tokens = 0
        start = time.perf_counter()
        iterator = examples
        if progress:
            from tqdm.auto import tqdm

            iterator = tqdm(examples, desc=name, leave=False)
        for example in iterator:
            result = run_strategy(name, model, tokenizer, example["question"], **options)
            example[name] = result.answer
            gold = parse_number(example["gold"])
            correct += int(gold is not None and result.value == gold)
            tokens += result.generated_tokens
        seconds = time.perf_counter() - start
        results[name] = {"accuracy": correct / len(examples), "correct": correct, "num_examples": len(examples),
                         "tokens_per_problem": tokens / len(examples), "seconds_per_problem": seconds / len(examples)}
    return {"results": results, "examples": examples}


def format_results(results: dict[str, dict], samples: int) -> str:
    """The markdown table: one row per strategy."""
    lines = ["| strategy | accuracy | correct | tokens / problem | s / problem |", "|---|---:|---:|---:|---:|"]
    for name, r in results.items():
        label = f"{name} (N={samples})" if name == "self-consistency" else name
        lines.append(f"| {label} | {r['accuracy']:.3f} | {r['correct']}/{r['num_examples']} | "
                     f"{r['tokens_per_problem']:.1f} | {r['seconds_per_problem']:.2f} |")
    return "\n".join(lines)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--dataset", default="builtin:arithmetic",
                        help="builtin:arithmetic (default), a local .jsonl file or folder, or a Hub id; needs 'prompt' "
                             "and 'answer' columns")
    parser.add_argument("--dataset_config", default=None, help="configuration (builtin:arithmetic: grpo by default)")
    parser.add_argument("--strategies", default="greedy,cot,self-consistency,pal",
                        help="comma-separated strategies (default: greedy,cot,self-consistency,pal)")
    parser.add_argument("--num_examples", type=int, default=50, help="test problems to evaluate (default: 50)")
    parser.add_argument("--dataset_num_examples", type=int, default=1000,
                        help="builtin:arithmetic: problems generated over its three splits (default: 1000)")
    parser.add_argument("--dataset_min_steps", type=int, default=1, help="builtin:arithmetic: fewest operations (default: 1)")
    parser.add_argument("--dataset_max_steps", type=int, default=3, help="builtin:arithmetic: most operations (default: 3)")
    parser.add_argument("--dataset_max_operand", type=int, default=20,
                        help="builtin:arithmetic: largest starting count and added number (default: 20)")


def run_from_args(args: argparse.Namespace) -> int:
    from .evaluate import load_prompt_dataset
    from .strategies import STRATEGIES

    check_arguments(args)
    if args.num_examples < 1:
        raise ValueError(f"--num_examples {args.num_examples} must be at least 1")
    names = [s.strip() for s in args.strategies.split(",") if s.strip()]
    unknown = [s for s in names if s not in STRATEGIES]
    if unknown or not names:
        raise ValueError(f"--strategies {args.strategies!r}: unknown {unknown}; pass some of {', '.join(STRATEGIES)}")
    strategies = {name: strategy_options(args, name) for name in dict.fromkeys(names)}
    splits = load_prompt_dataset(args.dataset, args.dataset_config, seed=args.seed,
                                 builtin_options={"num_examples": args.dataset_num_examples,
                                                  "min_steps": args.dataset_min_steps,
                                                  "max_steps": args.dataset_max_steps,
                                                  "max_operand": args.dataset_max_operand})
    test = splits["test"]
    if "answer" not in test.column_names:
        raise ValueError(f"the test split of {args.dataset} has no 'answer' column (columns: {test.column_names}): "
                         "eval-reasoning scores answers against it")
    rows = [test[i] for i in range(min(args.num_examples, len(test)))]
    model, tokenizer = load_reasoning_model(args)
    evaluation = evaluate_strategies(model, tokenizer, rows, strategies, progress=not args.json)
    if args.json:
        print(json.dumps({"model": args.model, "dataset": args.dataset, "num_examples": len(rows), "samples": args.samples,
                          **evaluation}, ensure_ascii=False, indent=2, default=str))
    else:
        print(format_results(evaluation["results"], args.samples))
    return 0
