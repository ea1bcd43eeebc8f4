"""Preference alignment (book §6.4) from unpaired feedback, with TRL's `KTOTrainer` (Kahneman-Tversky optimization):
each answer is only labelled desirable or not, in full or with LoRA adapters (book §5.5).

    accelerate launch recipes/kto.py --config recipes/configs/kto/preferences_tiny.yaml --model_name_or_path out/sft

YAML keys and command-line flags are the same (the command line wins): TRL's `KTOConfig` names (`beta`, `loss_type`,
`desirable_weight`, `undesirable_weight`, `max_length`, `precompute_ref_log_probs`, ...), TRL's `ModelConfig` names
and the data keys of ``recipes/dpo.py``. Preference pairs (``builtin:preferences``, or any prompt/chosen/rejected data)
are unpaired with TRL's `unpair_preference_dataset` (chosen -> label true, rejected -> label false); the held-out test
pairs stay paired for the preference rate. The reference model, the never-truncate check, `metrics.json` (TRL's eval
rewards and KL, the preference rate before and after) and the card are those of ``recipes/dpo.py``.
"""

import sys

import torch
from trl import KTOConfig, KTOTrainer
from trl.data_utils import unpair_preference_dataset

from hf_hundredpage import hub
from hf_hundredpage.alignment import (
    PreferenceRateArguments,
    before_after,
    check_preference_max_length,
    evaluate_preference_rate,
    reference_model,
)
from hf_hundredpage.data.preferences import load_preference_dataset
from hf_hundredpage.finetuning import HundredPageModelConfig, get_peft_config, load_model, load_tokenizer
from hf_hundredpage.finetuning.sft import load_chat_template
from hf_hundredpage.generation import set_generation_stop_tokens
from hf_hundredpage.recipe_parser import RecipeParser, recipe_errors
from hf_hundredpage.training import finish_run, prepare_run, start_run
from hf_hundredpage.training.run import command_line, run_callbacks, run_config, whole_run_totals


# Training arguments shown in the model card, besides the usual ones (`run_config`).
CARD_KEYS = ("beta", "loss_type", "desirable_weight", "undesirable_weight", "max_length",
             "precompute_ref_log_probs")


def build_parser() -> RecipeParser:
    parser = RecipeParser((PreferenceRateArguments, HundredPageModelConfig, KTOConfig))
    if not torch.cuda.is_available():  # TRL defaults to bf16 and gradient checkpointing, both wrong on a CPU
        parser.set_defaults(use_cpu=True, bf16=False, gradient_checkpointing=False)
    return parser


@recipe_errors("kto.py")
def main(argv=None) -> int:
    script_args, model_args, training_args = build_parser().parse_recipe_args(argv)
    resume = start_run(training_args, script_args)
    data = load_preference_dataset(script_args.dataset_name, script_args.dataset_config, seed=training_args.seed,
                                   num_examples=script_args.dataset_num_examples, test_size=script_args.dataset_test_size)
    tokenizer = load_tokenizer(model_args, trust_remote_code=training_args.trust_remote_code)
    load_chat_template(tokenizer, None, data["train"], model_args.model_name_or_path)
    model = load_model(model_args, trust_remote_code=training_args.trust_remote_code)
    print(check_preference_max_length(training_args, tokenizer, data, getattr(model.config, "max_position_embeddings", None))
          or "", end="")
    ref_model, reference = reference_model(model, use_peft=model_args.use_peft,
                                           precompute_ref_log_probs=training_args.precompute_ref_log_probs)
    run = prepare_run(training_args, overwrite_output_dir=script_args.overwrite_output_dir, resume=resume)

    trainer = KTOTrainer(
        model=model, ref_model=ref_model, args=training_args, train_dataset=unpair_preference_dataset(data["train"]),
        eval_dataset=unpair_preference_dataset(data["validation"]), processing_class=tokenizer,
        callbacks=run_callbacks(script_args),
        peft_config=get_peft_config(model_args, model, "CAUSAL_LM"),
    )
    is_adapter = hasattr(trainer.model, "peft_config")
    base = trainer.model.get_base_model() if is_adapter else trainer.model
    set_generation_stop_tokens(base, tokenizer)
    rate = dict(max_examples=script_args.eval_max_examples)
    before = evaluate_preference_rate(trainer.model, tokenizer, data["test"], **rate)
    train_result = trainer.train(resume_from_checkpoint=resume)
    final_eval, after = trainer.evaluate(), evaluate_preference_rate(trainer.model, tokenizer, data["test"], **rate)
    if not trainer.is_world_process_zero():
        return 0

    margin = final_eval.get("eval_rewards/margins", float("nan"))
    report = before_after(before, after, "KTO")  # KTO logs no pairwise accuracy: its pairs are unpaired
    metrics = {
        **{key: value for key, value in final_eval.items() if key.startswith(("eval_rewards/", "eval_logps/", "eval_kl"))},
        "eval_loss": final_eval["eval_loss"], **report["metrics"], **whole_run_totals(trainer, train_result),
        "num_parameters": base.num_parameters(),
        "num_trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "reference_model": reference,
    }

    finish_run(
        run, trainer, tokenizer, metrics=metrics, plot_title="Kahneman-Tversky optimization",
        generation_config=base.generation_config,
        extra_files={"predictions.json": {"test": report["predictions"]}},
        card=dict(task="kto", model_family=hub.model_family(base.config), base_model=model_args.model_name_or_path,
                  datasets=script_args.dataset_name, metrics={"test_preference_rate": after["chosen"]},
                  baseline_metrics={"test_preference_rate": before["chosen"]}, baseline_name="model before KTO",
                  baseline_description="The baseline is the same model before KTO (the reference model), whose "
                  "greedy answers are scored on the same held-out test prompts.",
                  command=command_line("kto.py", argv),
                  config=run_config(script_args, model_args, training_args, CARD_KEYS), resumed=metrics["resumed"]),
        table=report["table"] + f"\nvalidation reward margin (desirable - undesirable): {margin:.3f}",
        summary=f"{trainer.state.global_step} steps in {metrics['train_runtime']:.0f} s. {'Adapter' if is_adapter else 'Model'}.",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
