"""Supervised finetuning of a pretrained language model on instructions (book §5.2-§5.3), in full or with
LoRA / QLoRA adapters (book §5.5), with TRL's `SFTTrainer`.

    accelerate launch recipes/sft.py --config recipes/configs/sft/instructions_tiny.yaml --model_name_or_path out/pretrained

YAML keys and command-line flags are the same (the command line wins), as in TRL's ``trl/scripts/sft.py``: TRL's
`SFTConfig` names (`max_length`, `packing`, `assistant_only_loss`, `completion_only_loss`, `chat_template_path`, ...),
TRL's `ModelConfig` names (`model_name_or_path`, `use_peft`, `lora_r`, `load_in_4bit`, ...; see
`hf_hundredpage.finetuning.HundredPageModelConfig`), `RunArguments` and the data keys below.
`dataset_name: builtin:instructions` is the built-in instruction dataset; a local .jsonl file or folder, a URL of
JSON lines and Hub ids work too.

The loss follows the data: on the assistant turns for conversational data (``messages``), on the completion for
prompt-completion data; the run says which in one line, and only a contradicting flag set by the user is an error.
The run ends with a folder ready for the Hub: the model (or the adapter), the tokenizer with its chat template, a
generation config that stops on the chat template's end-of-turn token, `metrics.json` (eval loss, and exact match of
greedy answers on the test split before and after training), `predictions.json`, `loss_curve.png` and `README.md`.
"""

import sys
from dataclasses import dataclass, field

import torch
from trl import SFTConfig, SFTTrainer

from hf_hundredpage import hub
from hf_hundredpage.compression.qat import QATArguments
from hf_hundredpage.data.instructions import BUILTIN_INSTRUCTIONS, load_instruction_dataset
from hf_hundredpage.evaluation.exact_match import evaluate_exact_match, exact_match_by_task
from hf_hundredpage.finetuning import HundredPageModelConfig, get_peft_config, load_model, load_tokenizer
from hf_hundredpage.finetuning.sft import check_max_length, configure_loss_mask, load_chat_template
from hf_hundredpage.generation import set_generation_stop_tokens
from hf_hundredpage.recipe_parser import RecipeParser, RunArguments, recipe_errors
from hf_hundredpage.training import finish_run, format_table, prepare_run, start_run
from hf_hundredpage.training.run import command_line, run_callbacks, run_config, whole_run_totals


@dataclass
class SFTScriptArguments(QATArguments, RunArguments):
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


def build_parser() -> RecipeParser:
    parser = RecipeParser((SFTScriptArguments, HundredPageModelConfig, SFTConfig))
    if not torch.cuda.is_available():  # TRL defaults to bf16 and gradient checkpointing, both wrong on a CPU
        parser.set_defaults(use_cpu=True, bf16=False, gradient_checkpointing=False)
    return parser


@recipe_errors("sft.py")
def main(argv=None) -> int:
    script_args, model_args, training_args = build_parser().parse_recipe_args(argv)
    resume = start_run(training_args, script_args)
    data = load_instruction_dataset(
        script_args.dataset_name, script_args.dataset_config, instruction_column=script_args.instruction_column,
        response_column=script_args.response_column, num_examples=script_args.dataset_num_examples,
        tasks=script_args.dataset_tasks, test_size=script_args.dataset_test_size, seed=training_args.seed,
    )
    tokenizer = load_tokenizer(model_args, trust_remote_code=training_args.trust_remote_code)
    load_chat_template(tokenizer, training_args.chat_template_path, data["train"], model_args.model_name_or_path)
    print(configure_loss_mask(training_args, data["train"], tokenizer))
    model = load_model(model_args, trust_remote_code=training_args.trust_remote_code)
    script_args.prepare_qat(model, adapters=model_args.use_peft)  # --qat: torchao fake quantization (book §6.3)
    print(check_max_length(training_args, tokenizer, data, getattr(model.config, "max_position_embeddings", None)) or "", end="")
    run = prepare_run(training_args, overwrite_output_dir=script_args.overwrite_output_dir, resume=resume)

    trainer = SFTTrainer(
        model=model, args=training_args, train_dataset=data["train"], eval_dataset=data["validation"],
        processing_class=tokenizer, peft_config=get_peft_config(model_args, model, "CAUSAL_LM"),
        callbacks=run_callbacks(script_args),
    )
    tokenizer = trainer.processing_class  # a chat template cloned from another model may have added tokens
    is_adapter = hasattr(trainer.model, "peft_config")
    base = trainer.model.get_base_model() if is_adapter else trainer.model
    set_generation_stop_tokens(base, tokenizer)
    scoring = dict(max_new_tokens=script_args.eval_max_new_tokens, max_examples=script_args.eval_max_examples)
    base_eval, base_exact = trainer.evaluate(), evaluate_exact_match(trainer.model, tokenizer, data["test"], **scoring)

    train_result = trainer.train(resume_from_checkpoint=resume)
    final_eval, exact = trainer.evaluate(), evaluate_exact_match(trainer.model, tokenizer, data["test"], **scoring)
    if not trainer.is_world_process_zero():
        return 0

    metrics = {
        "eval_loss": final_eval["eval_loss"],
        "base_eval_loss": base_eval["eval_loss"],
        "eval_exact_match": exact["exact_match"],
        "base_eval_exact_match": base_exact["exact_match"],
        **exact_match_by_task(exact, data["test"]),
        "eval_stopped_at_eos": sum(p["stopped"] for p in exact["predictions"]) / exact["num_examples"],
        "eval_num_examples": exact["num_examples"],
        **whole_run_totals(trainer, train_result),
        "num_parameters": base.num_parameters(),
        "num_trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "generation_eos_token_id": base.generation_config.eos_token_id,
    }
    predictions = [{"prompt": tokenizer.decode(p["prompt_ids"]), "prediction": p["prediction"], "reference": p["reference"],
                    "correct": p["correct"]} for p in exact["predictions"]]
    task = ("qlora" if model_args.load_in_4bit else "lora") if is_adapter else "sft"

    finish_run(
        run, trainer, tokenizer, metrics=metrics, plot_title="supervised finetuning",
        generation_config=base.generation_config,
        extra_files={"predictions.json": {"test": predictions}},
        card=dict(task=task, model_family=hub.model_family(base.config),
                  base_model=model_args.model_name_or_path, datasets=script_args.dataset_name,
                  metrics={"eval_loss": metrics["eval_loss"], "test_exact_match": metrics["eval_exact_match"]},
                  baseline_metrics={"eval_loss": metrics["base_eval_loss"], "test_exact_match": metrics["base_eval_exact_match"]},
                  baseline_name="base model (before SFT)", command=command_line("sft.py", argv),
                  config=run_config(script_args, model_args, training_args, ("max_length", "packing", "assistant_only_loss", "completion_only_loss")),
                  baseline_description="The baseline is the same model before finetuning, scored on the same splits.",
                  resumed=metrics["resumed"]),
        table=format_table([("before SFT", f"{metrics['base_eval_loss']:.3f}", f"{metrics['base_eval_exact_match']:.3f}"),
                            ("after SFT", f"{metrics['eval_loss']:.3f}", f"{metrics['eval_exact_match']:.3f}")],
                           header=("model", "validation loss", f"test exact match ({exact['num_examples']} examples)")),
        summary=f"{trainer.state.global_step} steps in {metrics['train_runtime']:.0f} s. {'Adapter' if is_adapter else 'Model'}.",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
