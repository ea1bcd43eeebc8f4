"""Reinforcement learning of reasoning (book §6.5) with group relative policy optimization, TRL's `GRPOTrainer`, in full
or with LoRA / QLoRA adapters (book §5.5), with programmatic rewards as in the book's companion GRPO.py.

    accelerate launch recipes/grpo.py --config recipes/configs/grpo/arithmetic_tiny.yaml --model_name_or_path out/sft

YAML keys and command-line flags are the same (the command line wins): TRL's `GRPOConfig` names (`num_generations`,
`max_completion_length`, `beta`, `loss_type`, `temperature`, `reward_weights`, ...), TRL's `ModelConfig` names
(`model_name_or_path`, `use_peft`, `lora_r`, `load_in_4bit`, ...), `RunArguments` and the keys below. ``reward_funcs``
are built-in names (``correctness``, ``format``, ``length``: `hf_hundredpage.reasoning.rewards`) or dotted import
paths to your functions (``my_rewards.exact``, importable from the current folder), with TRL's reward signature.
`dataset_name: builtin:arithmetic` is the built-in word-problem data (``grpo``, or ``grpo-conversational``); a local
.jsonl file or folder, a URL and Hub ids work too: a ``prompt`` column plus the columns the rewards read. Generation
uses transformers' ``generate`` (no vLLM).

The run ends with a folder ready for the Hub: the model (or the adapter), the tokenizer, `metrics.json` (the mean
reward of greedy answers on the held-out test prompts per function and weighted, and their accuracy when the data has
an ``answer`` column, before and after GRPO; the sampled completions' reward at the first and last logged steps),
`predictions.json`, `loss_curve.png`, `reward_curve.png` and `README.md`.
"""

import sys
from dataclasses import dataclass, field

import torch
from trl import GRPOConfig, GRPOTrainer

from hf_hundredpage import hub
from hf_hundredpage.finetuning import HundredPageModelConfig, get_peft_config, load_model, load_tokenizer
from hf_hundredpage.finetuning.sft import load_chat_template
from hf_hundredpage.generation import set_generation_stop_tokens
from hf_hundredpage.reasoning.evaluate import (
    before_after_metrics,
    before_after_table,
    card_metrics,
    evaluate_rewards,
    load_prompt_dataset,
    plot_reward_curve,
    train_reward_trend,
)
from hf_hundredpage.reasoning.rewards import resolve_reward_funcs
from hf_hundredpage.recipe_parser import RecipeParser, RunArguments, recipe_errors
from hf_hundredpage.training import finish_run, prepare_run, start_run
from hf_hundredpage.training.run import command_line, run_callbacks, run_config, whole_run_totals


# Every loss GRPOTrainer 1.16 computes (it only rejects an unknown one at the first training step).
LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")
CARD_KEYS = ("reward_weights", "num_generations", "max_completion_length", "temperature", "beta", "loss_type")


@dataclass
class GRPOScriptArguments(RunArguments):
    reward_funcs: list[str] = field(default_factory=lambda: ["correctness", "format"],
                                    metadata={"help": "correctness, format, length or dotted import paths (my_rewards.exact)"})
    length_min_tokens: int | None = field(default=None, metadata={"help": "the length reward's lower bound (none: no bound)"})
    length_max_tokens: int | None = field(default=256, metadata={"help": "the length reward's upper bound (none: no bound)"})
    dataset_name: str = field(default="builtin:arithmetic", metadata={"help": "builtin:arithmetic, a .jsonl file or folder, a URL or a Hub id"})
    dataset_config: str | None = field(default=None, metadata={"help": "Hub configuration; for builtin:arithmetic, grpo or grpo-conversational"})
    dataset_num_examples: int = field(default=1000, metadata={"help": "size of builtin:arithmetic"})
    dataset_min_steps: int = field(default=1, metadata={"help": "fewest operations of a builtin:arithmetic problem"})
    dataset_max_steps: int = field(default=3, metadata={"help": "most operations of a builtin:arithmetic problem"})
    dataset_max_operand: int = field(default=20, metadata={"help": "largest number of a builtin:arithmetic problem"})
    dataset_test_size: float = field(default=0.1, metadata={"help": "share of train carved out for a missing split"})
    eval_max_examples: int | None = field(default=None, metadata={"help": "cap the test prompts of the before/after evaluation"})


def build_parser() -> RecipeParser:
    parser = RecipeParser((GRPOScriptArguments, HundredPageModelConfig, GRPOConfig),
                          domains={"beta": (lambda v: v >= 0, "0 (no reference model) or a positive KL coefficient")})
    if not torch.cuda.is_available():  # TRL defaults to bf16 and gradient checkpointing, both wrong on a CPU
        parser.set_defaults(use_cpu=True, bf16=False, gradient_checkpointing=False)
    return parser


@recipe_errors("grpo.py")
def main(argv=None) -> int:
    script_args, model_args, training_args = build_parser().parse_recipe_args(argv)
    if training_args.loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type {training_args.loss_type!r} is not a GRPO loss: pass one of {list(LOSS_TYPES)}")
    if training_args.use_vllm:
        raise ValueError("use_vllm is not supported by this recipe: it generates with transformers (drop use_vllm)")
    rewards = resolve_reward_funcs(script_args.reward_funcs, training_args.reward_weights,
                                   min_tokens=script_args.length_min_tokens, max_tokens=script_args.length_max_tokens)
    resume = start_run(training_args, script_args)
    data = load_prompt_dataset(script_args.dataset_name, script_args.dataset_config, seed=training_args.seed,
                               test_size=script_args.dataset_test_size, builtin_options=dict(
                                   num_examples=script_args.dataset_num_examples, min_steps=script_args.dataset_min_steps,
                                   max_steps=script_args.dataset_max_steps, max_operand=script_args.dataset_max_operand))
    tokenizer = load_tokenizer(model_args, trust_remote_code=training_args.trust_remote_code)
    load_chat_template(tokenizer, None, data["train"], model_args.model_name_or_path)
    model = load_model(model_args, trust_remote_code=training_args.trust_remote_code)
    set_generation_stop_tokens(model, tokenizer)  # GRPOTrainer stops sampling on the generation config's EOS tokens
    scoring = dict(weights=training_args.reward_weights, max_new_tokens=training_args.max_completion_length,
                   max_examples=script_args.eval_max_examples)
    before = evaluate_rewards(model, tokenizer, data["test"], rewards, **scoring)  # also checks every reward once
    run = prepare_run(training_args, overwrite_output_dir=script_args.overwrite_output_dir, resume=resume)

    trainer = GRPOTrainer(
        model=model, reward_funcs=rewards, args=training_args, train_dataset=data["train"],
        eval_dataset=data["validation"] if training_args.eval_strategy != "no" else None, processing_class=tokenizer,
        peft_config=get_peft_config(model_args, model, "CAUSAL_LM"), callbacks=run_callbacks(script_args),
    )
    train_result = trainer.train(resume_from_checkpoint=resume)
    after = evaluate_rewards(trainer.model, tokenizer, data["test"], rewards, **scoring)
    if not trainer.is_world_process_zero():
        return 0

    is_adapter = hasattr(trainer.model, "peft_config")
    base = trainer.model.get_base_model() if is_adapter else trainer.model
    names = [f.__name__ for f in rewards]
    metrics = {**before_after_metrics(before, after), **train_reward_trend(trainer.state.log_history, names),
               **whole_run_totals(trainer, train_result), "reward_funcs": names,
               "reward_weights": training_args.reward_weights or [1.0] * len(names),
               "num_parameters": base.num_parameters(),
               "num_trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)}
    plot_reward_curve(trainer.state.log_history, run.work_dir / "reward_curve.png", names, title="GRPO (book §6.5)")
    finish_run(
        run, trainer, tokenizer, metrics=metrics, plot_title="GRPO", generation_config=base.generation_config,
        extra_files={"predictions.json": {"test_before": before["predictions"], "test_after": after["predictions"]}},
        card=dict(task="grpo", model_family=hub.model_family(base.config), base_model=model_args.model_name_or_path,
                  datasets=script_args.dataset_name, dataset_split="test", metrics=card_metrics(after),
                  baseline_metrics=card_metrics(before), baseline_name="model before GRPO",
                  baseline_description="The baseline is the same model before GRPO; both answer the held-out test "
                  f"prompts greedily, scored by the run's rewards ({', '.join(names)}).",
                  command=command_line("grpo.py", argv), config=run_config(script_args, model_args, training_args, CARD_KEYS),
                  extra_sections={"Reward curve": "Mean reward of the completions sampled during training (the weighted "
                                  "total and each function).\n\n![Reward curve](reward_curve.png)"},
                  resumed=metrics["resumed"]),
        table=before_after_table(before, after),
        summary=f"{trainer.state.global_step} steps in {metrics['train_runtime']:.0f} s. {'Adapter' if is_adapter else 'Model'}.",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
