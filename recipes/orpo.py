"""Preference alignment (book §6.4) without a reference model, with ORPO (odds ratio preference optimization: the SFT
loss on the chosen answer plus a log-odds-ratio term against the rejected one), TRL's experimental `ORPOTrainer`, in
full or with LoRA adapters (book §5.5).

    accelerate launch recipes/orpo.py --config recipes/configs/orpo/preferences_tiny.yaml --model_name_or_path out/sft

YAML keys and command-line flags are the same (the command line wins): TRL's `ORPOConfig` names (`beta`, the weight
of the odds-ratio term, the paper's lambda; `max_length`, ...), TRL's `ModelConfig` names and the data keys of
``recipes/dpo.py``. The never-truncate check, `metrics.json` (TRL's eval rewards, accuracies and margins, the
preference rate before and after) and the card are those of ``recipes/dpo.py``; there is no reference model.
"""

import os
import sys

import torch

from hf_hundredpage.alignment import PreferenceRateArguments
from hf_hundredpage.alignment.recipe import finish_alignment, load_alignment_inputs, train_and_rate
from hf_hundredpage.finetuning import HundredPageModelConfig, get_peft_config
from hf_hundredpage.recipe_parser import RecipeParser, recipe_errors
from hf_hundredpage.training import prepare_run, start_run
from hf_hundredpage.training.run import run_callbacks


os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # ORPO lives in trl.experimental; the recipe pins its use
from trl.experimental.orpo import ORPOConfig, ORPOTrainer  # noqa: E402


# Training arguments shown in the model card, besides the usual ones (`run_config`).
CARD_KEYS = ("beta", "max_length")


def build_parser() -> RecipeParser:
    parser = RecipeParser((PreferenceRateArguments, HundredPageModelConfig, ORPOConfig))
    if not torch.cuda.is_available():  # TRL defaults to bf16 and gradient checkpointing, both wrong on a CPU
        parser.set_defaults(use_cpu=True, bf16=False, gradient_checkpointing=False)
    return parser


@recipe_errors("orpo.py")
def main(argv=None) -> int:
    script_args, model_args, training_args = build_parser().parse_recipe_args(argv)
    resume = start_run(training_args, script_args)
    data, tokenizer, model = load_alignment_inputs(script_args, model_args, training_args)
    run = prepare_run(training_args, overwrite_output_dir=script_args.overwrite_output_dir, resume=resume)

    trainer = ORPOTrainer(
        model=model, args=training_args, train_dataset=data["train"], eval_dataset=data["validation"],
        processing_class=tokenizer, callbacks=run_callbacks(script_args),
        peft_config=get_peft_config(model_args, model, "CAUSAL_LM"),
    )
    outcome = train_and_rate(trainer, tokenizer, data, script_args, model_args, resume)
    if trainer.is_world_process_zero():
        finish_alignment(run, trainer, tokenizer, outcome, method="ORPO", argv=argv,
                         args=(script_args, model_args, training_args), card_keys=CARD_KEYS,
                         logged=("eval_rewards/", "eval_logps/", "eval_nll_loss", "eval_log_odds"),
                         plot_title="odds ratio preference optimization")
    return 0


if __name__ == "__main__":
    sys.exit(main())
