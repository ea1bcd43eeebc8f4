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
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from trl.experimental.gkd import GKDConfig, GKDTrainer

from hf_hundredpage.data import EMBEDDED_CORPUS, lm_dataset, load_text_dataset
from hf_hundredpage.evaluation import evaluate_causal_lm
from hf_hundredpage.finetuning import HundredPageModelConfig, load_model, load_tokenizer
from hf_hundredpage.recipe_parser import RecipeParser, RunArguments, recipe_errors
from hf_hundredpage.training import ModelArguments, build_model, finish_run, format_table, prepare_run, start_run
from hf_hundredpage.training.run import command_line, run_callbacks, run_config, whole_run_totals


@dataclass
class DistillScriptArguments(RunArguments):
    student_config: str | None = field(default=None, metadata={"help": "YAML/JSON of ModelArguments: a fresh student"})
    dataset_name: str = field(default=EMBEDDED_CORPUS, metadata={"help": "embedded corpus, Hub id, local dir or file"})
    dataset_config: str | None = field(default=None, metadata={"help": "Hub dataset configuration"})
    text_column: str = field(default="text")
    block_size: int = field(default=128, metadata={"help": "tokens per training sequence"})
    alpha: float = field(default=0.5, metadata={"help": "weight of the KD loss; 1 - alpha weighs the LM loss"})
    compare_no_kd: bool = field(default=False, metadata={"help": "also train the student without the teacher"})
    eval_max_documents: int | None = field(default=200, metadata={"help": "cap the validation documents scored"})


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
    check_args(script_args, model_args, args)
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


class KDTrainer(GKDTrainer):
    """GKD on the batch's own tokens (``lmbda: 0``) with a temperature and an LM term: alpha · T² · JSD_beta(T) +
    (1 - alpha) · cross-entropy; ``alpha = 0`` is plain LM training (the teacher is not run)."""

    def __init__(self, *args, alpha: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.alpha = alpha

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        logits, labels = outputs.logits[:, :-1], inputs["labels"][:, 1:]
        count = num_items_in_batch if num_items_in_batch is not None else (labels != -100).sum().clamp_min(1)
        lm_loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), reduction="sum") / count
        loss = (1 - self.alpha) * lm_loss
        if self.alpha > 0:
            self.teacher_model.eval()
            with torch.no_grad():
                teacher = self.teacher_model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
            loss = loss + self.alpha * self.temperature**2 * self.generalized_jsd_loss(
                logits, teacher.logits[:, :-1], labels, beta=self.beta, temperature=self.temperature,
                num_items_in_batch=count)
        return (loss, outputs) if return_outputs else loss


def check_args(script_args, model_args, args) -> None:
    if not args.teacher_model_name_or_path:
        raise ValueError("no teacher: pass --teacher_model_name_or_path (a causal LM folder or Hub id)")
    if bool(model_args.model_name_or_path) == bool(script_args.student_config):
        raise ValueError("pass exactly one student: --model_name_or_path (a model folder) or --student_config (a "
                         "YAML/JSON file of ModelArguments for a fresh book model)")
    if args.lmbda != 0 or args.seq_kd:
        raise ValueError("packed text has no prompts to generate from: distill.py needs lmbda 0 and seq_kd false")
    if not 0 <= script_args.alpha <= 1 or args.temperature <= 0:
        raise ValueError(f"alpha must be in [0, 1] and temperature > 0, got {script_args.alpha}, {args.temperature}")


def student_arguments(path: str) -> ModelArguments:
    """`ModelArguments` of a fresh student from a YAML/JSON file (JSON is YAML)."""
    if not Path(path).is_file():
        raise ValueError(f"student_config {path} is not a file: pass a YAML/JSON file of ModelArguments keys")
    keys = yaml.safe_load(Path(path).read_text()) or {}
    unknown = sorted(set(keys) - set(ModelArguments.__dataclass_fields__) | {"model_name_or_path"} & set(keys))
    if unknown:
        raise ValueError(f"student_config {path}: unknown keys {unknown} (use --model_name_or_path for a folder)")
    return ModelArguments(**keys)


def check_same_vocabulary(teacher_tokenizer, student_tokenizer, teacher=None, student=None) -> None:
    """KD compares distributions over the same token ids: same tokenizer (size and mapping), same vocab_size."""
    if len(teacher_tokenizer) != len(student_tokenizer):
        raise ValueError(f"teacher and student tokenizers differ: {len(teacher_tokenizer)} vs "
                         f"{len(student_tokenizer)} tokens; distillation needs the same tokenizer")
    if teacher_tokenizer.get_vocab() != student_tokenizer.get_vocab():
        raise ValueError("teacher and student tokenizers differ: the same size but other token ids; distillation "
                         "needs the same tokenizer")
    if teacher is not None and teacher.config.vocab_size != student.config.vocab_size:
        raise ValueError(f"teacher vocab_size {teacher.config.vocab_size} != student vocab_size "
                         f"{student.config.vocab_size}: distillation needs the same vocabulary")


def replace_args(args, **changes):
    """A copy of training arguments with some fields changed (no re-validation)."""
    other = copy.deepcopy(args)
    for name, value in changes.items():
        setattr(other, name, value)
    return other


if __name__ == "__main__":
    sys.exit(main())
