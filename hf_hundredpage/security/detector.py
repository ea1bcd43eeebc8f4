"""Prompt-injection detectors (book §6.6): a keyword baseline, a trained classifier (``recipes/classify.py`` on
``builtin:injections``) loaded from its folder, their precision and recall, and a guard that puts either in front of
the tool loop.

    accelerate launch recipes/classify.py --dataset_name builtin:injections --model_name_or_path out/pretrain \\
        --output_dir out/injection-detector
    hf-hundredpage redteam out/sft --defense detector --detector out/injection-detector

A detector is a callable ``detector(texts) -> list[bool]`` (True: injection).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import wraps
from pathlib import Path


# What a security-minded keyword filter would list: instruction overrides, role markup, persona and encoding tricks.
KEYWORD_PATTERNS = (
    r"\bignore (all |any |your |the )?(previous |prior |above |earlier )?(instructions|rules|prompts?)\b",
    r"\bdisregard\b", r"\bforget (everything|all|what|your)\b", r"\b(system|admin(istrator)?) override\b",
    r"\bnew (system )?instructions?\b", r"\bdo anything now\b", r"\bDAN\b", r"\bno (rules|restrictions)\b",
    r"\bjailbreak", r"\bdeveloper mode\b", r"\bdebug mode\b", r"\bbase64\b", r"\b1gn0r3\b",
    r"<\|[a-z_]+\|>", r"\[/?INST\]", r"<</?SYS>>", r"</s>", r"\bassistants? (reading|processing) this\b",
    r"\binstructions for the (ai|model|assistant)\b", r"\bnote to the (ai|model|assistant)\b",
)


class KeywordDetector:
    """The baseline: a text is an injection when one of `patterns` (regular expressions, case-insensitive) matches."""

    def __init__(self, patterns: Sequence[str] = KEYWORD_PATTERNS):
        self.patterns = [re.compile(p, re.IGNORECASE) for p in patterns]

    def __call__(self, texts: Sequence[str]) -> list[bool]:
        return [any(p.search(text) for p in self.patterns) for text in texts]


class ClassifierDetector:
    """A sequence classifier folder (``recipes/classify.py --method head``) as a detector: a text is an injection when
    the probability of `label` is at least `threshold`."""

    def __init__(self, folder: str | Path, *, label: str = "injection", threshold: float = 0.5, batch_size: int = 32,
                 max_length: int = 256):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
        label2id = {str(k): int(v) for k, v in self.model.config.label2id.items()}
        if label not in label2id:
            raise ValueError(f"the classifier in {folder} has labels {sorted(label2id)}, not {label!r}: train it on "
                             "builtin:injections or pass label=")
        self.index, self.threshold, self.batch_size, self.max_length = label2id[label], threshold, batch_size, max_length
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    def scores(self, texts: Sequence[str]) -> list[float]:
        import torch

        scores = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(list(texts[start:start + self.batch_size]), padding=True, truncation=True,
                                   max_length=self.max_length, return_tensors="pt", split_special_tokens=True)
            with torch.no_grad():
                logits = self.model(**batch).logits.float()
            scores += logits.softmax(-1)[:, self.index].tolist()
        return scores

    def __call__(self, texts: Sequence[str]) -> list[bool]:
        return [score >= self.threshold for score in self.scores(texts)]


def load_detector(spec: str | Path | None = None, **options) -> Callable[[Sequence[str]], list[bool]]:
    """``None`` or ``"keywords"``: the keyword baseline; else a classifier folder."""
    if spec is None or str(spec) == "keywords":
        return KeywordDetector()
    if not Path(spec).is_dir():
        raise FileNotFoundError(f"no detector folder {spec}: pass 'keywords' or a classifier trained by recipes/classify.py")
    return ClassifierDetector(spec, **options)


def precision_recall(detector: Callable[[Sequence[str]], list[bool]], texts: Sequence[str],
                     labels: Sequence[int | bool]) -> dict[str, float]:
    """Precision, recall and F1 of flagging injections (label 1 / True), with the counts."""
    predicted = detector(list(texts))
    tp = sum(1 for p, y in zip(predicted, labels, strict=True) if p and y)
    fp = sum(1 for p, y in zip(predicted, labels) if p and not y)
    fn = sum(1 for p, y in zip(predicted, labels) if not p and y)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn,
            "tn": len(predicted) - tp - fp - fn}


GUARD_REFUSAL = "I can't help with that request: it looks like a prompt injection."
REDACTED = "[removed by the injection detector]"


def guard(strategy: Callable, detector: Callable[[Sequence[str]], list[bool]] | str | Path | None = None) -> Callable:
    """`strategy` (e.g. ``strategies.function_calling``) behind an injection detector: a flagged question is refused
    without calling the model (answer None, trace ``{"blocked": ...}``), and a tool result the detector flags is
    replaced by `REDACTED` before the model reads it. `detector`: a callable, ``"keywords"`` or a classifier folder."""
    from ..reasoning.strategies import ReasoningResult
    from ..reasoning.tools import ToolRegistry

    check = detector if callable(detector) else load_detector(detector)

    @wraps(strategy)
    def guarded(model, tokenizer, question: str, *, tools=(), **options):
        if check([question])[0]:
            return ReasoningResult("guarded", None, GUARD_REFUSAL, 0, [{"blocked": question}])
        if tools:
            source = tools if isinstance(tools, ToolRegistry) else ToolRegistry(tools)
            registry = ToolRegistry(allowed=source.allowed, confirm=source.confirm)
            for name, function in source.functions.items():
                registry.register(_screened(function, check), dangerous=name in source.dangerous)
            options["tools"] = registry
        return strategy(model, tokenizer, question, **options)

    return guarded


def _screened(function: Callable, check: Callable) -> Callable:
    @wraps(function)
    def screened(**arguments):
        result = function(**arguments)
        return REDACTED if check([str(result)])[0] else result

    return screened


__all__ = ["GUARD_REFUSAL", "KEYWORD_PATTERNS", "REDACTED", "ClassifierDetector", "KeywordDetector", "guard",
           "load_detector", "precision_recall"]
