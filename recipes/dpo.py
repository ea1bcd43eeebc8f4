"""Preference alignment (book §6.4) of a finetuned language model with direct preference optimization, TRL's
`DPOTrainer`, in full or with LoRA adapters (book §5.5).

    accelerate launch recipes/dpo.py --config recipes/configs/dpo/preferences_tiny.yaml --model_name_or_path out/sft

YAML keys and command-line flags are the same (the command line wins): TRL's `DPOConfig` names (`beta`, `loss_type`,
`max_length`, `precompute_ref_log_probs`, ...), TRL's `ModelConfig` names (`model_name_or_path`, `use_peft`, `lora_r`,
...; `hf_hundredpage.finetuning.HundredPageModelConfig`), `RunArguments` and the data keys below.
`dataset_name: builtin:preferences` is the built-in preference data (`pairs`, or `pairs-conversational`); a local
.jsonl file or folder of prompt/chosen/rejected rows, a URL and Hub ids work too.

The reference model is the model before DPO: with ``use_peft`` the base with its adapter disabled, else a frozen copy
(none is kept with ``precompute_ref_log_probs``). No chosen or rejected answer is ever cut: ``max_length`` grows to the
longest prompt + answer, or the run stops. The run ends with a folder ready for the Hub: the model (or the adapter),
the tokenizer, `metrics.json` (TRL's eval reward accuracy and margins, the preference rate of greedy answers on the
held-out test prompts before and after DPO, and the KL divergence from the model before DPO on the test answers,
`hf_hundredpage.alignment.kl`), `predictions.json`, `loss_curve.png` and `README.md`.
"""

import sys

import torch
from trl import DPOConfig, DPOTrainer

from hf_hundredpage.alignment import PreferenceRateArguments, reference_model
from hf_hundredpage.alignment.recipe import finish_alignment, load_alignment_inputs, train_and_rate
from hf_hundredpage.finetuning import HundredPageModelConfig, get_peft_config
from hf_hundredpage.recipe_parser import RecipeParser, recipe_errors
from hf_hundredpage.training import prepare_run, start_run
from hf_hundredpage.training.run import run_callbacks


# Every loss DPOTrainer 1.16 computes (it only rejects an unknown one at the first training step).
LOSS_TYPES = ("sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
              "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm")


# Training arguments shown in the model card, besides the usual ones (`run_config`).
CARD_KEYS = ("beta", "loss_type", "loss_weights", "max_length", "precompute_ref_log_probs")


def build_parser() -> RecipeParser:
    parser = RecipeParser((PreferenceRateArguments, HundredPageModelConfig, DPOConfig))
    if not torch.cuda.is_available():  # TRL defaults to bf16 and gradient checkpointing, both wrong on a CPU
        parser.set_defaults(use_cpu=True, bf16=False, gradient_checkpointing=False)
    return parser


@recipe_errors("dpo.py")
def main(argv=None) -> int:
    script_args, model_args, training_args = build_parser().parse_recipe_args(argv)
    unknown = [loss for loss in training_args.loss_type if loss not in LOSS_TYPES]
    if unknown:
        raise ValueError(f"loss_type {unknown[0]!r} is not a DPO loss: pass one or more of {list(LOSS_TYPES)}")
    resume = start_run(training_args, script_args)
    data, tokenizer, model = load_alignment_inputs(script_args, model_args, training_args)
    ref_model, reference = reference_model(model, use_peft=model_args.use_peft,
                                           precompute_ref_log_probs=training_args.precompute_ref_log_probs)
    run = prepare_run(training_args, overwrite_output_dir=script_args.overwrite_output_dir, resume=resume)

    trainer = DPOTrainer(
        model=model, ref_model=ref_model, args=training_args, train_dataset=data["train"],
        eval_dataset=data["validation"], processing_class=tokenizer, callbacks=run_callbacks(script_args),
        peft_config=get_peft_config(model_args, model, "CAUSAL_LM"),
    )
    outcome = train_and_rate(trainer, tokenizer, data, script_args, model_args, resume)
    if trainer.is_world_process_zero():
        finish_alignment(run, trainer, tokenizer, outcome, method="DPO", argv=argv,
                         args=(script_args, model_args, training_args), card_keys=CARD_KEYS,
                         logged=("eval_rewards/", "eval_logps/"), reference=reference,
                         plot_title="direct preference optimization")
    return 0


if __name__ == "__main__":
    sys.exit(main())
