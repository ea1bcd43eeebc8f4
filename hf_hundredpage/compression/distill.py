"""Knowledge distillation (book §6.3), library code of ``recipes/distill.py``: its arguments, the KD loss over TRL's
`GKDTrainer` (`KDTrainer`), and the checks a run makes before it loads anything (one teacher, one student, the same
tokenizer). Imported by the recipe only (it imports ``trl.experimental.gkd``), not by `hf_hundredpage.compression`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from trl.experimental.gkd import GKDTrainer

from ..data import EMBEDDED_CORPUS
from ..recipe_parser import RunArguments
from ..training import ModelArguments


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


def check_distill_args(script_args, model_args, args) -> None:
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
