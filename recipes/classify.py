"""Fine-tune a language model as a text classifier (book §5.6) and compare it with a bag-of-words baseline (§2.1).

    accelerate launch recipes/classify.py --config recipes/configs/classify/emotions_tiny.yaml --output_dir out/emotions
    accelerate launch recipes/classify.py --config recipes/configs/classify/gpt2_emotion.yaml --output_dir out/gpt2-emotion

Two routes, as in the book's notebooks (``--method``):

* ``head`` (``emotion_GPT2_as_classifier``): `AutoModelForSequenceClassification` puts a linear ``score`` layer on
  the last real token's hidden state; trained with `transformers.Trainer` on cross-entropy over the classes, in
  full or with LoRA (``use_peft``: the adapters and the new head are trained);
* ``generation`` (``emotion_GPT2_as_text_generator``): TRL's `SFTTrainer` teaches the causal LM to complete
  ``prompt_template`` with the label name (loss on the completion only); a prediction is the greedy completion.

Both are scored on the TEST split next to a logistic regression on bag-of-words features and the majority class,
all fitted on the same train split. The output folder holds the model (or LoRA adapter), tokenizer,
``metrics.json`` (``eval_accuracy``, ``eval_macro_f1``, ``bow_eval_*``, ``majority_eval_*``), ``loss_curve.png``
and a ``README.md`` model card. Keys: the ``ClassifyArguments`` below, `FinetuneModelArguments` (model, LoRA,
4-/8-bit) and `TrainingArguments` plus ``max_length`` (truncation, in tokens).
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from transformers import DataCollatorWithPadding, EarlyStoppingCallback, Trainer, TrainingArguments

import hf_hundredpage  # noqa: F401  (registers the book's models with the Auto classes)
from hf_hundredpage import hub
from hf_hundredpage.classification import (
    DEFAULT_PROMPT_TEMPLATE,
    BagOfWordsBaseline,
    classification_metrics,
    compute_classification_metrics,
    generate_labels,
    load_classification_dataset,
    majority_class_metrics,
    to_prompt_completion,
)
from hf_hundredpage.config import RecipeConfigError, RecipeParser, check_output_dir, resolve_resume
from hf_hundredpage.finetuning import FinetuneModelArguments, get_peft_config, load_model, load_tokenizer
from hf_hundredpage.training import format_table, plot_loss_curve, prepare_run, write_json

METHODS = ("head", "generation")


@dataclass
class ClassifyArguments:
    dataset_name: str = field(default="builtin:emotions", metadata={"help": "builtin:emotions, Hub id, local dir or file"})
    dataset_config: str | None = field(default=None, metadata={"help": "Hub dataset configuration"})
    text_column: str = field(default="text")
    label_column: str = field(default="label", metadata={"help": "class names or integer ids"})
    validation_fraction: float = field(default=0.1, metadata={"help": "carved from train when there is no validation split"})
    test_fraction: float = field(default=0.1, metadata={"help": "carved from train when there is no test split"})
    max_train_samples: int | None = field(default=None, metadata={"help": "train on a seeded subset of this size"})
    max_eval_samples: int | None = field(default=None, metadata={"help": "evaluate on subsets of this size"})
    method: str = field(default="head", metadata={"help": "head (classification layer) or generation (label as text)",
                                                   "choices": list(METHODS)})
    prompt_template: str = field(default=DEFAULT_PROMPT_TEMPLATE, metadata={"help": "generation: prompt with {text}"})
    max_new_tokens: int = field(default=8, metadata={"help": "generation: tokens generated per prediction"})
    bow_vectorizer: str = field(default="count", metadata={"help": "baseline features: count or tfidf"})
    bow_max_ngram: int = field(default=1, metadata={"help": "baseline: 2 adds bigrams"})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "replace a non-empty output_dir"})
    early_stopping_patience: int | None = field(default=None, metadata={"help": "stop after N evaluations without improvement"})


@dataclass
class ClassifyTrainingArguments(TrainingArguments):
    """`TrainingArguments` plus the truncation length, named as in TRL's `SFTConfig` / `RewardConfig`."""

    max_length: int = field(default=128, metadata={"help": "truncate texts (generation: prompt + label) to this many tokens"})


def sft_config(training_args: TrainingArguments, **overrides):
    """TRL's `SFTConfig` with every `TrainingArguments` value of `training_args` (generation route).

    Both routes parse one set of flags; `SFTConfig` cannot be parsed next to `FinetuneModelArguments` (both define
    ``trust_remote_code``), so the generation route builds it from the parsed arguments.
    """
    from trl import SFTConfig

    names = {f.name for f in dataclasses.fields(SFTConfig) if f.init}
    values = {f.name: getattr(training_args, f.name) for f in dataclasses.fields(training_args) if f.init and f.name in names}
    return SFTConfig(**{**values, **overrides})


def build_parser() -> RecipeParser:
    parser = RecipeParser((ClassifyArguments, FinetuneModelArguments, ClassifyTrainingArguments))
    if not torch.cuda.is_available():
        parser.set_defaults(use_cpu=True, bf16=False)
    return parser


def error(err: BaseException | str) -> int:
    print(f"classify.py: error: {(str(err).strip().splitlines() or [''])[0]}", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    try:
        script_args, model_args, training_args = build_parser().parse_recipe_args(argv)
        resume = resolve_resume(training_args.resume_from_checkpoint)
        check_output_dir(training_args.output_dir, script_args.overwrite_output_dir, resuming=bool(resume))
        if (model_args.load_in_4bit or model_args.load_in_8bit) and not model_args.use_peft:
            raise RecipeConfigError("a 4-/8-bit base model trains only through adapters: add --use_peft true")
        if script_args.early_stopping_patience and (
            training_args.eval_strategy.value == "no" or training_args.save_strategy.value != training_args.eval_strategy.value
        ):
            raise RecipeConfigError("early_stopping_patience needs eval_strategy steps or epoch, and save_strategy equal to it")
        if script_args.method == "generation" and "{text}" not in script_args.prompt_template:
            raise RecipeConfigError(f"prompt_template {script_args.prompt_template!r} has no {{text}} placeholder for the text")
        bow = BagOfWordsBaseline(vectorizer=script_args.bow_vectorizer, ngram_range=(1, script_args.bow_max_ngram),
                                 random_state=training_args.seed)
        dataset, id2label, label2id = load_classification_dataset(
            script_args.dataset_name, script_args.dataset_config, text_column=script_args.text_column,
            label_column=script_args.label_column, validation_fraction=script_args.validation_fraction,
            test_fraction=script_args.test_fraction, seed=training_args.seed,
            max_train_samples=script_args.max_train_samples, max_eval_samples=script_args.max_eval_samples,
        )
        tokenizer = load_tokenizer(model_args)
    except (ValueError, OSError) as err:  # RecipeConfigError is a ValueError, FileNotFoundError an OSError
        return error(err)

    push_to_hub = prepare_run(training_args, overwrite_output_dir=script_args.overwrite_output_dir, resume=resume)
    output_dir = Path(training_args.output_dir)
    callbacks = []
    if script_args.early_stopping_patience:
        training_args.load_best_model_at_end = True
        if training_args.metric_for_best_model is None:
            training_args.metric_for_best_model, training_args.greater_is_better = "eval_loss", False
        callbacks.append(EarlyStoppingCallback(script_args.early_stopping_patience))

    try:
        if script_args.method == "head":
            model = load_model(model_args, task="sequence-classification", num_labels=len(id2label), id2label=id2label,
                               label2id=label2id, pad_token_id=tokenizer.pad_token_id)
        else:
            sft_args = sft_config(training_args, completion_only_loss=True, packing=False,
                                  trust_remote_code=model_args.trust_remote_code)
            model = load_model(model_args, task="causal-lm")
    except (ValueError, OSError) as err:  # a model that cannot be found or read, SFTConfig's own checks
        return error(err)

    label_names = [id2label[i] for i in range(len(id2label))]
    test_labels = list(dataset["test"]["label"])
    start = time.perf_counter()
    if script_args.method == "head":
        peft_config = get_peft_config(model_args, model, task_type="SEQ_CLS")
        if peft_config is not None:
            from peft import get_peft_model, prepare_model_for_kbit_training

            if model_args.load_in_4bit or model_args.load_in_8bit:
                model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=training_args.gradient_checkpointing)
            model = get_peft_model(model, peft_config)
        with training_args.main_process_first(desc="tokenize"):
            tokenized = dataset.map(lambda batch: tokenizer(batch["text"], truncation=True, max_length=training_args.max_length),
                                    batched=True, remove_columns=["text"])
        trainer = Trainer(
            model=model, args=training_args, train_dataset=tokenized["train"], eval_dataset=tokenized["validation"],
            data_collator=DataCollatorWithPadding(tokenizer), processing_class=tokenizer,
            compute_metrics=compute_classification_metrics, callbacks=callbacks,
        )
        train_result = trainer.train(resume_from_checkpoint=resume)
        train_runtime = time.perf_counter() - start
        scores = {**trainer.evaluate(tokenized["validation"], metric_key_prefix="validation"),
                  **trainer.evaluate(tokenized["test"], metric_key_prefix="eval")}
    else:
        from trl import SFTTrainer

        prompts = to_prompt_completion(dataset, id2label, script_args.prompt_template)
        trainer = SFTTrainer(
            model=model, args=sft_args, train_dataset=prompts["train"], eval_dataset=prompts["validation"],
            processing_class=tokenizer, peft_config=get_peft_config(model_args, model, task_type="CAUSAL_LM"),
            callbacks=callbacks,
        )
        train_result = trainer.train(resume_from_checkpoint=resume)
        train_runtime = time.perf_counter() - start
        scores = trainer.evaluate(metric_key_prefix="validation")
        predictions = generate_labels(trainer.model, tokenizer, list(prompts["test"]["prompt"]),
                                      max_new_tokens=script_args.max_new_tokens,
                                      batch_size=training_args.per_device_eval_batch_size)
        scores.update(classification_metrics([id2label[i] for i in test_labels], predictions, labels=label_names))
        trainer.model.generation_config.pad_token_id = tokenizer.pad_token_id
        trainer.model.generation_config.eos_token_id = tokenizer.eos_token_id
    if not trainer.is_world_process_zero():
        return 0

    bow.fit(list(dataset["train"]["text"]), list(dataset["train"]["label"]))
    metrics = {
        **{k: v for k, v in scores.items()
           if k.startswith(("eval_", "validation_")) and not k.endswith(("_runtime", "per_second"))},
        **bow.evaluate(list(dataset["test"]["text"]), test_labels, prefix="bow_eval_"),
        **majority_class_metrics(list(dataset["train"]["label"]), test_labels, prefix="majority_eval_"),
        "method": script_args.method,
        "labels": label_names,
        "num_train_examples": len(dataset["train"]),
        "num_test_examples": len(dataset["test"]),
        "train_loss": train_result.training_loss,
        "train_runtime": round(train_runtime, 2),
        "train_steps": trainer.state.global_step,
        "num_parameters": trainer.model.num_parameters(),
        "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
    }
    trainer.save_model(str(output_dir))
    tokenizer.save_pretrained(output_dir)
    write_json(output_dir / "metrics.json", metrics)
    plot_loss_curve(trainer.state.log_history, output_dir / "loss_curve.png", title=f"classification ({script_args.method})")

    model_type = trainer.model.config.model_type
    command = "accelerate launch recipes/classify.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    config = {**asdict(script_args), **{k: v for k, v in asdict(model_args).items() if v is not None},
              **{k: getattr(training_args, k) for k in ("num_train_epochs", "max_steps", "per_device_train_batch_size",
                 "learning_rate", "lr_scheduler_type", "warmup_steps", "weight_decay", "max_length", "seed")}}
    baselines = "\n".join([
        "Scores on the test split; the baselines are fitted on the same train split.", "",
        "| model | accuracy | macro F1 |", "|---|---|---|",
        f"| this model ({script_args.method}) | {metrics['eval_accuracy']:.4f} | {metrics['eval_macro_f1']:.4f} |",
        f"| bag-of-words logistic regression (§2.1) | {metrics['bow_eval_accuracy']:.4f} "
        f"| {metrics['bow_eval_macro_f1']:.4f} |",
        f"| majority class | {metrics['majority_eval_accuracy']:.4f} | {metrics['majority_eval_macro_f1']:.4f} |",
    ])
    labels = f"Label ids: {', '.join(f'{i} = `{name}`' for i, name in enumerate(label_names))}."
    if script_args.method == "generation":
        labels += f" The model writes the label name after this prompt:\n\n```\n{script_args.prompt_template}\n```"
    elif model_args.use_peft:
        labels += (f" The adapter's base has no classification head: load it with `num_labels={len(label_names)}` "
                   "(and these `id2label` / `label2id`) before `PeftModel.from_pretrained`.")
    hub.write_model_card(
        output_dir, model_name=training_args.hub_model_id or output_dir.name, task="classify",
        model_family=hub.model_family(trainer.model.config),
        base_model=model_args.model_name_or_path, datasets=script_args.dataset_name, dataset_split="test",
        pipeline_tag="text-generation" if script_args.method == "generation" else "text-classification",
        metrics={k: v for k, v in metrics.items() if k.startswith("eval_")},
        baseline_metrics={k[len("bow_"):]: v for k, v in metrics.items() if k.startswith("bow_eval_")},
        baseline_name="bag-of-words logistic regression", command=command, config=config,
        baseline_description="The baseline is the book's section 2.1 classifier: a bag-of-words logistic regression "
                             "trained on the same training split and scored on the same test split.",
        train_runtime=train_runtime, extra_sections={"Labels": labels, "Baselines": baselines},
    )
    print("\n" + format_table(
        [(f"{model_type} ({script_args.method})", f"{metrics['eval_accuracy']:.4f}", f"{metrics['eval_macro_f1']:.4f}"),
         ("bag-of-words LR", f"{metrics['bow_eval_accuracy']:.4f}", f"{metrics['bow_eval_macro_f1']:.4f}"),
         ("majority class", f"{metrics['majority_eval_accuracy']:.4f}", f"{metrics['majority_eval_macro_f1']:.4f}")],
        header=("test split", "accuracy", "macro F1"),
    ))
    print(f"\n{metrics['train_steps']} steps in {train_runtime:.0f} s. Model folder: {output_dir}")
    if push_to_hub:
        training_args.push_to_hub = True
        print(f"pushed: {hub.maybe_push_to_hub(output_dir, training_args)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
