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

from hf_hundredpage.alignment import PreferenceRateArguments, reference_model
from hf_hundredpage.alignment.recipe import finish_alignment, load_alignment_inputs, train_and_rate
from hf_hundredpage.finetuning import HundredPageModelConfig, get_peft_config
from hf_hundredpage.recipe_parser import RecipeParser, recipe_errors
from hf_hundredpage.training import prepare_run, start_run
from hf_hundredpage.training.run import run_callbacks


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
    data, tokenizer, model = load_alignment_inputs(script_args, model_args, training_args)
    ref_model, reference = reference_model(model, use_peft=model_args.use_peft,
                                           precompute_ref_log_probs=training_args.precompute_ref_log_probs)
    run = prepare_run(training_args, overwrite_output_dir=script_args.overwrite_output_dir, resume=resume)

    trainer = KTOTrainer(
        model=model, ref_model=ref_model, args=training_args, train_dataset=unpair_preference_dataset(data["train"]),
        eval_dataset=unpair_preference_dataset(data["validation"]), processing_class=tokenizer,
        callbacks=run_callbacks(script_args), peft_config=get_peft_config(model_args, model, "CAUSAL_LM"),
    )
    outcome = train_and_rate(trainer, tokenizer, data, script_args, model_args, resume)
    if trainer.is_world_process_zero():
        margin = outcome["final_eval"].get("eval_rewards/margins", float("nan"))
        finish_alignment(run, trainer, tokenizer, outcome, method="KTO", argv=argv,
                         args=(script_args, model_args, training_args), card_keys=CARD_KEYS,
                         logged=("eval_rewards/", "eval_logps/", "eval_kl"), reference=reference,
                         plot_title="Kahneman-Tversky optimization",
                         table_note=f"validation reward margin (desirable - undesirable): {margin:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
