"""Train a reward model (book §6.4): a language model with a one-output head that scores an answer, trained with TRL's
`RewardTrainer` so that the chosen answer of each preference pair scores higher than the rejected one (in full or with
LoRA adapters, book §5.5), and compare it with the "longer answer wins" baseline.

    accelerate launch recipes/reward.py --config recipes/configs/reward/preferences_tiny.yaml --model_name_or_path out/sft

YAML keys and command-line flags are the same (the command line wins): TRL's `RewardConfig` names (`max_length`,
`center_rewards_coefficient`, `chat_template_path`, ...), TRL's `ModelConfig` names (`model_name_or_path`,
`use_peft`, ...; `hf_hundredpage.finetuning.HundredPageModelConfig`), `RunArguments` and the data keys below.
`dataset_name: builtin:preferences` is the built-in preference data; local .jsonl files or folders of
prompt/chosen/rejected rows, URLs and Hub ids work too.

The model is loaded with `AutoModelForSequenceClassification` and ``num_labels=1``. No pair is dropped or cut: TRL
drops pairs longer than ``max_length``, so ``max_length`` grows to the longest prompt + answer, or the run stops. The
run ends with a folder ready for the Hub and `metrics.json`: pairwise accuracy and mean margin (chosen - rejected) on
the TEST split as ``eval_accuracy`` / ``eval_margin``, and the length baseline's accuracy (``length_eval_accuracy``).
"""

import sys

import torch
from trl import RewardConfig, RewardTrainer

from hf_hundredpage import hub
from hf_hundredpage.alignment import check_preference_max_length, length_baseline_accuracy
from hf_hundredpage.data.preferences import PreferenceDataArguments, load_preference_dataset
from hf_hundredpage.finetuning import HundredPageModelConfig, get_peft_config, load_model, load_tokenizer
from hf_hundredpage.finetuning.sft import load_chat_template
from hf_hundredpage.recipe_parser import RecipeParser, recipe_errors
from hf_hundredpage.training import finish_run, format_table, prepare_run, start_run
from hf_hundredpage.training.run import command_line, run_callbacks, run_config, whole_run_totals


# Training arguments shown in the model card, besides the usual ones (`run_config`).
CARD_KEYS = ("max_length", "center_rewards_coefficient")


def build_parser() -> RecipeParser:
    parser = RecipeParser((PreferenceDataArguments, HundredPageModelConfig, RewardConfig))
    if not torch.cuda.is_available():  # TRL defaults to bf16 and gradient checkpointing, both wrong on a CPU
        parser.set_defaults(use_cpu=True, bf16=False, gradient_checkpointing=False)
    return parser


@recipe_errors("reward.py")
def main(argv=None) -> int:
    script_args, model_args, training_args = build_parser().parse_recipe_args(argv)
    resume = start_run(training_args, script_args)
    data = load_preference_dataset(script_args.dataset_name, script_args.dataset_config, seed=training_args.seed,
                                   num_examples=script_args.dataset_num_examples, test_size=script_args.dataset_test_size)
    tokenizer = load_tokenizer(model_args, trust_remote_code=training_args.trust_remote_code)
    load_chat_template(tokenizer, training_args.chat_template_path, data["train"], model_args.model_name_or_path)
    model = load_model(model_args, task="sequence-classification", trust_remote_code=training_args.trust_remote_code,
                       num_labels=1, pad_token_id=tokenizer.pad_token_id)
    print(check_preference_max_length(training_args, tokenizer, data, getattr(model.config, "max_position_embeddings", None))
          or "", end="")
    length_accuracy = length_baseline_accuracy(data["test"])
    run = prepare_run(training_args, overwrite_output_dir=script_args.overwrite_output_dir, resume=resume)

    trainer = RewardTrainer(
        model=model, args=training_args, train_dataset=data["train"], eval_dataset=data["validation"],
        processing_class=tokenizer, peft_config=get_peft_config(model_args, model, "SEQ_CLS"),
        callbacks=run_callbacks(script_args),
    )
    is_adapter = hasattr(trainer.model, "peft_config")
    base = trainer.model.get_base_model() if is_adapter else trainer.model
    train_result = trainer.train(resume_from_checkpoint=resume)
    trainer.evaluate(data["test"], metric_key_prefix="test")
    # TRL logs its accuracy / margin with an "eval_" prefix and leaves them out of evaluate()'s result: read the log
    test = next(entry for entry in reversed(trainer.state.log_history) if "test_loss" in entry)
    if not trainer.is_world_process_zero():
        return 0

    metrics = {
        "eval_accuracy": test["eval_accuracy"], "eval_margin": test["eval_margin"], "eval_loss": test["test_loss"],
        "length_eval_accuracy": length_accuracy,
        "eval_num_examples": len(data["test"]),
        **whole_run_totals(trainer, train_result),
        "num_parameters": base.num_parameters(),
        "num_trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
    }
    finish_run(
        run, trainer, tokenizer, metrics=metrics, plot_title="reward model",
        card=dict(task="reward", model_family=hub.model_family(base.config), base_model=model_args.model_name_or_path,
                  datasets=script_args.dataset_name, dataset_split="test",
                  metrics={"eval_accuracy": metrics["eval_accuracy"], "eval_margin": metrics["eval_margin"]},
                  baseline_metrics={"eval_accuracy": length_accuracy}, baseline_name="longer answer wins",
                  baseline_description="The baseline prefers the longer answer of each pair (in characters; ties count "
                  "one half), scored on the same test pairs.",
                  command=command_line("reward.py", argv),
                  config=run_config(script_args, model_args, training_args, CARD_KEYS), resumed=metrics["resumed"]),
        table=format_table([("longer answer wins", f"{length_accuracy:.3f}", "–"),
                            ("reward model", f"{metrics['eval_accuracy']:.3f}", f"{metrics['eval_margin']:.3f}")],
                           header=("scorer", f"test pairwise accuracy ({len(data['test'])} pairs)", "mean margin")),
        summary=f"{trainer.state.global_step} steps in {metrics['train_runtime']:.0f} s. {'Adapter' if is_adapter else 'Model'}.",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
