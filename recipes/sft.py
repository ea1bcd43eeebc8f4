"""Supervised finetuning of a pretrained language model on instructions (book §5.2-§5.3), in full or with
LoRA / QLoRA adapters (book §5.5), with TRL's `SFTTrainer`.

    accelerate launch recipes/sft.py --config recipes/configs/sft/instructions_tiny.yaml --model_name_or_path out/pretrained

YAML keys and command-line flags are the same (the command line wins): TRL's `SFTConfig` names (`max_length`,
`packing`, `assistant_only_loss`, `completion_only_loss`, `chat_template_path`, `learning_rate`, ...), the model keys
of `hf_hundredpage.finetuning.FinetuneModelArguments` (`use_peft`, `lora_r`, `load_in_4bit`, ...) and the data keys
below. `dataset_name: builtin:instructions` is the built-in instruction dataset
(`hf_hundredpage.data.instructions`); a local .jsonl file or folder, a URL of JSON lines and Hub ids work too.

The run ends with a folder ready for the Hub: the model (or the adapter, whose `base_model_name_or_path` is the
base's absolute path or Hub id), the tokenizer with its chat template, a generation config that stops on the chat
template's end-of-turn token, `metrics.json` (eval loss, and exact match of greedy answers on the test split before
and after training), `predictions.json`, `loss_curve.png` and `README.md`.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from transformers import EarlyStoppingCallback
from trl import SFTConfig, SFTTrainer

from hf_hundredpage import hub
from hf_hundredpage.config import RecipeConfigError, RecipeParser, check_output_dir, resolve_resume
from hf_hundredpage.data.instructions import BUILTIN_INSTRUCTIONS, load_instruction_dataset
from hf_hundredpage.finetuning import (
    FinetuneModelArguments,
    evaluate_exact_match,
    get_peft_config,
    load_model,
    load_tokenizer,
    set_generation_stop_tokens,
)
from hf_hundredpage.training import format_table, plot_loss_curve, prepare_run, write_json


@dataclass
class SFTScriptArguments:
    dataset_name: str = field(
        default=BUILTIN_INSTRUCTIONS, metadata={"help": "builtin:instructions, a local .jsonl file or folder, a URL or a Hub id"}
    )
    dataset_config: str | None = field(
        default=None, metadata={"help": "Hub configuration; for builtin:instructions, messages or prompt-completion"}
    )
    instruction_column: str | None = field(default=None, metadata={"help": "build messages: this column is the user turn"})
    response_column: str | None = field(default=None, metadata={"help": "... and this one the assistant turn"})
    dataset_num_examples: int = field(default=1200, metadata={"help": "size of builtin:instructions"})
    dataset_tasks: list[str] | None = field(default=None, metadata={"help": "families of builtin:instructions (default: all)"})
    dataset_test_size: float = field(default=0.1, metadata={"help": "share of train carved out for a missing split"})
    eval_max_new_tokens: int = field(default=32, metadata={"help": "generation budget of the exact-match evaluation"})
    eval_max_examples: int | None = field(default=None, metadata={"help": "cap the test examples scored by exact match"})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "replace a non-empty output_dir"})
    early_stopping_patience: int | None = field(
        default=None, metadata={"help": "stop after N evaluations without a lower eval_loss"}
    )


@dataclass
class SFTRecipeConfig(SFTConfig):
    """`SFTConfig` whose `trust_remote_code` comes from the model arguments (one flag, not two clashing ones)."""

    trust_remote_code: bool = field(default=False, init=False)


def exact_match_by_task(result: dict, dataset) -> dict[str, float]:
    """Exact match per task family, when the dataset has a `task` column (the built-in one does)."""
    if "task" not in dataset.column_names:
        return {}
    hits = defaultdict(list)
    for task, prediction in zip(dataset["task"], result["predictions"]):
        hits[task].append(prediction["correct"])
    return {f"eval_exact_match_{task}": sum(v) / len(v) for task, v in sorted(hits.items())}


def build_parser() -> RecipeParser:
    parser = RecipeParser((SFTScriptArguments, FinetuneModelArguments, SFTRecipeConfig))
    if not torch.cuda.is_available():  # TRL defaults to bf16 and gradient checkpointing, both wrong on a CPU
        parser.set_defaults(use_cpu=True, bf16=False, gradient_checkpointing=False)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    try:
        script_args, model_args, training_args = parser.parse_recipe_args(argv)
        training_args.trust_remote_code = model_args.trust_remote_code
        resume = resolve_resume(training_args.resume_from_checkpoint)
        if script_args.early_stopping_patience:
            strategy = training_args.eval_strategy.value
            if strategy == "no" or training_args.save_strategy.value != strategy:
                raise RecipeConfigError(
                    "early_stopping_patience needs eval_strategy steps or epoch, and save_strategy equal to it"
                )
            if strategy == "steps" and training_args.save_steps % training_args.eval_steps:
                raise RecipeConfigError("early_stopping_patience needs save_steps to be a multiple of eval_steps")
            training_args.load_best_model_at_end, training_args.metric_for_best_model = True, "eval_loss"
            training_args.greater_is_better = False
        check_output_dir(training_args.output_dir, script_args.overwrite_output_dir, resuming=bool(resume))
    except RecipeConfigError as err:
        print(f"sft.py: error: {err}", file=sys.stderr)
        return 2

    push_to_hub = prepare_run(training_args, overwrite_output_dir=script_args.overwrite_output_dir, resume=resume)
    output_dir = Path(training_args.output_dir)
    try:
        data = load_instruction_dataset(
            script_args.dataset_name, script_args.dataset_config, instruction_column=script_args.instruction_column,
            response_column=script_args.response_column, num_examples=script_args.dataset_num_examples,
            tasks=script_args.dataset_tasks, test_size=script_args.dataset_test_size, seed=training_args.seed,
        )
        tokenizer = load_tokenizer(model_args)
        template = training_args.chat_template_path
        if template and template.endswith((".jinja", ".j2")):  # TRL sets it too; the baseline evaluation needs it now
            if not Path(template).is_file():
                raise FileNotFoundError(f"chat_template_path {template} does not exist: pass a .jinja file or a model id")
            tokenizer.chat_template = Path(template).read_text()
        first = data["train"][0]
        conversational = "messages" in first or isinstance(first.get("prompt"), list)
        if conversational and not tokenizer.chat_template and not template:
            raise ValueError(
                f"{model_args.model_name_or_path} has no chat template for a conversational dataset: pass chat_template_path"
            )
        model = load_model(model_args)
    except (ValueError, OSError) as err:  # OSError: missing files, an unreachable Hub (transformers' messages)
        print(f"sft.py: error: {(str(err).strip().splitlines() or [type(err).__name__])[0]}", file=sys.stderr)
        return 2

    trainer = SFTTrainer(
        model=model, args=training_args, train_dataset=data["train"], eval_dataset=data["validation"],
        processing_class=tokenizer, peft_config=get_peft_config(model_args, model, "CAUSAL_LM"),
        callbacks=[EarlyStoppingCallback(script_args.early_stopping_patience)]
        if script_args.early_stopping_patience else None,
    )
    tokenizer = trainer.processing_class  # a chat template cloned from another model may have added tokens
    is_adapter = hasattr(trainer.model, "peft_config")
    base = trainer.model.get_base_model() if is_adapter else trainer.model
    set_generation_stop_tokens(base, tokenizer)
    evaluate_generation = dict(max_new_tokens=script_args.eval_max_new_tokens, max_examples=script_args.eval_max_examples)
    base_eval = trainer.evaluate()
    base_exact = evaluate_exact_match(trainer.model, tokenizer, data["test"], **evaluate_generation)

    start = time.perf_counter()
    train_result = trainer.train(resume_from_checkpoint=resume)
    train_runtime = time.perf_counter() - start
    final_eval = trainer.evaluate()
    exact = evaluate_exact_match(trainer.model, tokenizer, data["test"], **evaluate_generation)
    if not trainer.is_world_process_zero():
        return 0

    trainer.save_model(str(output_dir))
    tokenizer.save_pretrained(output_dir)
    base.generation_config.save_pretrained(output_dir)
    metrics = {
        "eval_loss": final_eval["eval_loss"],
        "base_eval_loss": base_eval["eval_loss"],
        "eval_exact_match": exact["exact_match"],
        "base_eval_exact_match": base_exact["exact_match"],
        **exact_match_by_task(exact, data["test"]),
        "eval_stopped_at_eos": sum(p["stopped"] for p in exact["predictions"]) / exact["num_examples"],
        "eval_num_examples": exact["num_examples"],
        "train_loss": train_result.training_loss,
        "train_runtime": round(train_runtime, 2),
        "train_steps": trainer.state.global_step,
        "num_parameters": base.num_parameters(),
        "num_trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "generation_eos_token_id": base.generation_config.eos_token_id,
    }
    write_json(output_dir / "metrics.json", metrics)
    write_json(output_dir / "predictions.json", {"test": [
        {"prompt": tokenizer.decode(p["prompt_ids"]), "prediction": p["prediction"], "reference": p["reference"],
         "correct": p["correct"]} for p in exact["predictions"]]})
    plot_loss_curve(trainer.state.log_history, output_dir / "loss_curve.png", title="supervised finetuning")
    command = "accelerate launch recipes/sft.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    config = {**asdict(script_args), **{k: v for k, v in asdict(model_args).items() if v is not None},
              **{k: getattr(training_args, k) for k in ("max_steps", "num_train_epochs", "per_device_train_batch_size",
                 "learning_rate", "max_length", "packing", "assistant_only_loss", "completion_only_loss", "seed")}}
    hub.write_model_card(
        output_dir, model_name=training_args.hub_model_id or output_dir.name,
        task="qlora" if model_args.load_in_4bit and is_adapter else "sft", model_family=hub.model_family(base.config),
        base_model=model_args.model_name_or_path, datasets=script_args.dataset_name,
        metrics={"eval_loss": metrics["eval_loss"], "test_exact_match": metrics["eval_exact_match"]},
        baseline_metrics={"eval_loss": metrics["base_eval_loss"], "test_exact_match": metrics["base_eval_exact_match"]},
        baseline_name="base model (before SFT)", command=command, config=config, train_runtime=train_runtime,
        baseline_description="The baseline is the same model before finetuning, scored on the same splits.",
    )
    print("\n" + format_table(
        [("before SFT", f"{metrics['base_eval_loss']:.3f}", f"{metrics['base_eval_exact_match']:.3f}"),
         ("after SFT", f"{metrics['eval_loss']:.3f}", f"{metrics['eval_exact_match']:.3f}")],
        header=("model", "validation loss", f"test exact match ({exact['num_examples']} examples)"),
    ))
    print(f"\n{trainer.state.global_step} steps in {train_runtime:.0f} s. "
          f"{'Adapter' if is_adapter else 'Model'} folder: {output_dir}")
    if push_to_hub:
        training_args.push_to_hub = True
        print(f"pushed: {hub.maybe_push_to_hub(output_dir, training_args)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
