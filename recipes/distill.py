"""Knowledge distillation (book §6.3): a small student learns a teacher's next-token distributions on a text corpus,
with TRL's `GKDTrainer` (``trl.experimental.gkd``).

    accelerate launch recipes/distill.py --config recipes/configs/distill/quickstart_tiny.yaml \\
        --teacher_model_name_or_path out/quickstart --output_dir out/distilled

The student is ``model_name_or_path`` (any causal LM folder, e.g. a pruned model) or a fresh book model built from
``student_config`` (a YAML/JSON file of `hf_hundredpage.training.ModelArguments` keys) with the teacher's tokenizer;
teacher and student must share the tokenizer and the vocabulary. The data is packed into ``block_size`` blocks as for
pretraining (`hf_hundredpage.data.lm_dataset`).

Why `GKDTrainer`: TRL 1.16's stable `DistillationTrainer` is on-policy only (it generates completions from a
``prompt`` column), whereas `GKDTrainer` with ``lmbda: 0`` and ``seq_kd: false`` never generates and scores the
teacher on the batch's own sequences: supervised token-level KD on the corpus, with TRL's teacher loading, vocabulary
check and generalized JSD (``beta: 0`` = KL(teacher ‖ student), 1 = reverse KL). GKD's loss has no temperature and
no LM term, so `KDTrainer` below overrides `compute_loss` only: ``alpha · T² · JSD_beta(T) + (1 - alpha) · CE`` as
in Hinton et al. (2015), with ``temperature`` (GKD's sampling temperature, unused without sampling) as T.
`metrics.json` has the validation bits per byte of the teacher, of the student before and after distillation and,
with ``compare_no_kd``, of the same student trained as long on the data alone (``alpha: 0``), the card's baseline.
"""

import copy
import sys
import tempfile
from dataclasses import replace

import torch
from trl.experimental.gkd import GKDConfig

from hf_hundredpage.compression.distill import (
    DistillScriptArguments,
    KDTrainer,
    check_distill_args,
    check_same_vocabulary,
    replace_args,
    student_arguments,
)
from hf_hundredpage.data import lm_dataset, load_text_dataset
from hf_hundredpage.evaluation import evaluate_causal_lm
from hf_hundredpage.finetuning import HundredPageModelConfig, load_model, load_tokenizer
from hf_hundredpage.recipe_parser import RecipeParser, recipe_errors
from hf_hundredpage.training import build_model, finish_run, format_table, prepare_run, start_run
from hf_hundredpage.training.run import command_line, run_callbacks, run_config, whole_run_totals


# Training arguments shown in the model card, besides the usual ones (`run_config`).
CARD_KEYS = ("teacher_model_name_or_path", "beta", "temperature", "lmbda")


def build_parser() -> RecipeParser:
    # GKD's beta is a JSD interpolation in [0, 1] (0 = forward KL), not the positive DPO beta of DOMAINS
    jsd = (lambda v: 0 <= v <= 1, "a value in [0, 1] (0 = KL(teacher ‖ student), 1 = reverse KL)")
    parser = RecipeParser((DistillScriptArguments, HundredPageModelConfig, GKDConfig), domains={"beta": jsd})
    parser.set_defaults(lmbda=0.0, beta=0.0, temperature=1.0)  # supervised KD on the data, forward KL, T = 1
    if not torch.cuda.is_available():  # TRL defaults to bf16 and gradient checkpointing, both wrong on a CPU
        parser.set_defaults(use_cpu=True, bf16=False, gradient_checkpointing=False)
    return parser


@recipe_errors("distill.py")
def main(argv=None) -> int:
    script_args, model_args, args = build_parser().parse_recipe_args(argv)
    check_distill_args(script_args, model_args, args)
    resume = start_run(args, script_args)
    tokenizer = load_tokenizer(replace(model_args, model_name_or_path=args.teacher_model_name_or_path,
                                       tokenizer_name_or_path=None), trust_remote_code=args.trust_remote_code)
    if script_args.student_config:
        student_args = student_arguments(script_args.student_config)
    else:  # checked before any model is loaded
        check_same_vocabulary(tokenizer, load_tokenizer(model_args, trust_remote_code=args.trust_remote_code))
    teacher = load_model(replace(model_args, model_name_or_path=args.teacher_model_name_or_path),
                         trust_remote_code=args.trust_remote_code)
    student = (build_model(student_args, tokenizer, script_args.block_size) if script_args.student_config
               else load_model(model_args, trust_remote_code=args.trust_remote_code))
    check_same_vocabulary(tokenizer, tokenizer, teacher, student)
    raw = load_text_dataset(script_args.dataset_name, script_args.dataset_config, text_column=script_args.text_column)
    texts = list(raw["validation"][script_args.text_column][: script_args.eval_max_documents])
    score = lambda model: evaluate_causal_lm(model, tokenizer, texts, max_length=script_args.block_size)  # noqa: E731
    untrained = copy.deepcopy(student) if script_args.compare_no_kd else None
    run = prepare_run(args, overwrite_output_dir=script_args.overwrite_output_dir, resume=resume)

    with args.main_process_first(desc="tokenize and pack"):
        data, collator = lm_dataset(raw, tokenizer, script_args.block_size, text_column=script_args.text_column)
    teacher_eval, before = score(teacher), score(student)
    common = dict(teacher_model=teacher, data_collator=collator, train_dataset=data["train"],
                  processing_class=tokenizer)
    trainer = KDTrainer(model=student, args=args, eval_dataset=data["validation"], alpha=script_args.alpha,
                        callbacks=run_callbacks(script_args), **common)
    train_result = trainer.train(resume_from_checkpoint=resume)
    kd_eval, after = trainer.evaluate(), score(trainer.model)
    metrics = {"eval_bits_per_byte": after["bits_per_byte"], "eval_loss": after["loss"],
               "eval_perplexity": after["perplexity"], "eval_kd_loss": kd_eval["eval_loss"],
               "student_before_eval_bits_per_byte": before["bits_per_byte"],
               "teacher_eval_bits_per_byte": teacher_eval["bits_per_byte"], "eval_num_documents": len(texts),
               **whole_run_totals(trainer, train_result), "num_parameters": trainer.model.num_parameters(),
               "teacher_num_parameters": teacher.num_parameters()}
    if untrained is not None:
        with tempfile.TemporaryDirectory() as scratch:
            alone = replace_args(args, output_dir=scratch, save_strategy="no", eval_strategy="no", report_to=[])
            KDTrainer(model=untrained, args=alone, alpha=0.0, **common).train()
        metrics["no_kd_eval_bits_per_byte"] = score(untrained)["bits_per_byte"]
    if not trainer.is_world_process_zero():
        return 0

    baseline = ("no_kd_", "same student without the teacher") if untrained is not None else (
        "student_before_", "student before distillation")
    rows = [("teacher", metrics["teacher_eval_bits_per_byte"]), ("student before", before["bits_per_byte"]),
            *([("student, data alone", metrics["no_kd_eval_bits_per_byte"])] if untrained is not None else []),
            ("student, distilled", after["bits_per_byte"])]
    finish_run(
        run, trainer, tokenizer, metrics=metrics, plot_title="knowledge distillation",
        card=dict(task="distill", model_family=getattr(student.config, "model_type", "transformer"),
                  base_model=model_args.model_name_or_path, datasets=script_args.dataset_name,
                  metrics={"eval_bits_per_byte": after["bits_per_byte"]},
                  baseline_metrics={"eval_bits_per_byte": metrics[baseline[0] + "eval_bits_per_byte"]},
                  baseline_name=baseline[1], command=command_line("distill.py", argv),
                  baseline_description=f"Distilled from {args.teacher_model_name_or_path} (book §6.3), whose "
                  f"validation bits per byte are {metrics['teacher_eval_bits_per_byte']:.3f}; the baseline is the "
                  f"{baseline[1]}, on the same validation documents.",
                  config=run_config(script_args, model_args, args, CARD_KEYS),
                  resumed=metrics["resumed"]),
        table=format_table([(name, f"{bpb:.3f}") for name, bpb in rows], header=("model", "validation bits/byte")),
        summary=f"{trainer.state.global_step} steps in {metrics['train_runtime']:.0f} s.",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
