"""Fine-tune a language model as a text classifier (book §5.6) and compare it with a bag-of-words baseline (§2.1).

    accelerate launch recipes/classify.py --config recipes/configs/classify/emotions_tiny.yaml --output_dir out/emotions
    accelerate launch recipes/classify.py --config recipes/configs/classify/gpt2_emotion.yaml --output_dir out/gpt2-emotion

Two routes, as in the book's notebooks (``--method``):

* ``head`` (``emotion_GPT2_as_classifier``): `AutoModelForSequenceClassification` puts a linear ``score`` layer on
  the last real token's hidden state; trained with `transformers.Trainer` on cross-entropy over the classes, in
  full or with LoRA (``use_peft``: the adapters and the new head are trained);
* ``generation`` (``emotion_GPT2_as_text_generator``): TRL's `SFTTrainer` teaches the causal LM to complete
  ``prompt_template`` with the label name (loss on the completion only; ``max_length`` grows to fit the longest
  prompt + label, so no label is ever cut); a prediction is the greedy completion.

Both are scored on the TEST split next to a logistic regression on bag-of-words features and the majority class,
all fitted on the same train split. Keys: the ``ClassifyArguments`` below, TRL's `ModelConfig` names (model, LoRA,
4-/8-bit; `hf_hundredpage.finetuning.HundredPageModelConfig`) and `ClassifyConfig` (`TrainingArguments` plus
``max_length``, with `TrainingArguments`' defaults for both routes).
"""

import sys
from dataclasses import dataclass, field

import torch
from transformers import DataCollatorWithPadding, Trainer
from trl import SFTConfig, SFTTrainer

from hf_hundredpage import hub
from hf_hundredpage.data.classification import (
    DEFAULT_PROMPT_TEMPLATE,
    describe_labels,
    load_classification_dataset,
    to_prompt_completion,
    tokenize_texts,
)
from hf_hundredpage.evaluation.classification import (
    BagOfWordsBaseline,
    baseline_report,
    classification_metrics,
    compute_classification_metrics,
    generate_labels,
)
from hf_hundredpage.finetuning import HundredPageModelConfig, apply_peft, get_peft_config, load_model, load_tokenizer
from hf_hundredpage.finetuning.sft import check_max_length
from hf_hundredpage.recipe_parser import RecipeConfigError, RecipeParser, RunArguments, recipe_errors
from hf_hundredpage.training import finish_run, format_table, prepare_run, start_run
from hf_hundredpage.training.run import command_line, run_callbacks, run_config, whole_run_totals


METHODS = ("head", "generation")


@dataclass
class ClassifyArguments(RunArguments):
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


@dataclass
class ClassifyConfig(SFTConfig):
    """`SFTConfig` (the generation route's trainer config; the head route's `Trainer` reads its `TrainingArguments`
    part) with `TrainingArguments`' own defaults where SFTConfig changes them, and texts truncated to 128 tokens."""

    learning_rate: float = field(default=5e-5, metadata={"help": "The initial learning rate for AdamW."})
    logging_steps: float = field(default=500, metadata={"help": "Log every X updates steps."})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "Trade compute for memory."})
    max_length: int | None = field(default=128, metadata={"help": "head: truncate texts; generation: the minimum context"})


def build_parser() -> RecipeParser:
    parser = RecipeParser((ClassifyArguments, HundredPageModelConfig, ClassifyConfig))
    if not torch.cuda.is_available():  # TRL defaults to bf16, wrong on a CPU
        parser.set_defaults(use_cpu=True, bf16=False)
    return parser


@recipe_errors("classify.py")
def main(argv=None) -> int:
    script_args, model_args, training_args = build_parser().parse_recipe_args(argv)
    resume = start_run(training_args, script_args)
    if (model_args.load_in_4bit or model_args.load_in_8bit) and not model_args.use_peft:
        raise RecipeConfigError("a 4-/8-bit base model trains only through adapters: add --use_peft true")
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
    tokenizer = load_tokenizer(model_args, trust_remote_code=training_args.trust_remote_code)
    head = script_args.method == "head"
    if head:
        model = load_model(model_args, task="sequence-classification", trust_remote_code=training_args.trust_remote_code,
                           num_labels=len(id2label), id2label=id2label, label2id=label2id, pad_token_id=tokenizer.pad_token_id)
    else:
        training_args.completion_only_loss, training_args.packing = True, False
        model = load_model(model_args, task="causal-lm", trust_remote_code=training_args.trust_remote_code)
        prompts = to_prompt_completion(dataset, id2label, script_args.prompt_template)
        print(check_max_length(training_args, tokenizer, prompts, getattr(model.config, "max_position_embeddings", None)) or "", end="")
    run = prepare_run(training_args, overwrite_output_dir=script_args.overwrite_output_dir, resume=resume)
    callbacks = run_callbacks(script_args)

    label_names = [id2label[i] for i in range(len(id2label))]
    if head:
        model = apply_peft(model, model_args, "SEQ_CLS", training_args.gradient_checkpointing)
        with training_args.main_process_first(desc="tokenize"):
            tokenized = tokenize_texts(dataset, tokenizer, training_args.max_length)
        trainer = Trainer(
            model=model, args=training_args, train_dataset=tokenized["train"], eval_dataset=tokenized["validation"],
            data_collator=DataCollatorWithPadding(tokenizer), processing_class=tokenizer,
            compute_metrics=compute_classification_metrics, callbacks=callbacks,
        )
        train_result = trainer.train(resume_from_checkpoint=resume)
        scores = {**trainer.evaluate(tokenized["validation"], metric_key_prefix="validation"),
                  **trainer.evaluate(tokenized["test"], metric_key_prefix="eval")}
    else:
        trainer = SFTTrainer(
            model=model, args=training_args, train_dataset=prompts["train"], eval_dataset=prompts["validation"],
            processing_class=tokenizer, peft_config=get_peft_config(model_args, model, task_type="CAUSAL_LM"),
            callbacks=callbacks,
        )
        train_result = trainer.train(resume_from_checkpoint=resume)
        predictions = generate_labels(trainer.model, tokenizer, list(prompts["test"]["prompt"]),
                                      max_new_tokens=script_args.max_new_tokens,
                                      batch_size=training_args.per_device_eval_batch_size)
        scores = {**trainer.evaluate(metric_key_prefix="validation"), **classification_metrics(
            [id2label[i] for i in dataset["test"]["label"]], predictions, labels=label_names)}
        trainer.model.generation_config.pad_token_id = tokenizer.pad_token_id
        trainer.model.generation_config.eos_token_id = tokenizer.eos_token_id
    if not trainer.is_world_process_zero():
        return 0

    metrics, rows, baselines = baseline_report(scores, dataset, method=script_args.method, bow=bow,
                                               model_type=trainer.model.config.model_type)
    metrics.update({
        "method": script_args.method, "labels": label_names,
        "num_train_examples": len(dataset["train"]), "num_test_examples": len(dataset["test"]),
        **whole_run_totals(trainer, train_result),
        "num_parameters": trainer.model.num_parameters(),
        "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
    })
    labels = describe_labels(label_names, None if head else script_args.prompt_template, head and model_args.use_peft)
    finish_run(
        run, trainer, tokenizer, metrics=metrics, plot_title=f"classification ({script_args.method})",
        card=dict(task="classify", model_family=hub.model_family(trainer.model.config),
                  base_model=model_args.model_name_or_path, datasets=script_args.dataset_name, dataset_split="test",
                  pipeline_tag="text-classification" if head else "text-generation",
                  prompt_template=None if head else script_args.prompt_template,
                  metrics={k: v for k, v in metrics.items() if k.startswith("eval_")},
                  baseline_metrics={k[len("bow_"):]: v for k, v in metrics.items() if k.startswith("bow_eval_")},
                  baseline_name="bag-of-words logistic regression", command=command_line("classify.py", argv),
                  config=run_config(script_args, model_args, training_args, ("max_length",)), resumed=metrics["resumed"],
                  baseline_description="The baseline is the book's section 2.1 classifier: a bag-of-words logistic "
                                       "regression trained on the same training split and scored on the same test split.",
                  extra_sections={"Labels": labels, "Baselines": baselines}),
        table=format_table([(name, f"{metrics[p + 'accuracy']:.4f}", f"{metrics[p + 'macro_f1']:.4f}") for name, p in rows],
                           header=("test split", "accuracy", "macro F1")),
        summary=f"{metrics['train_steps']} steps in {metrics['train_runtime']:.0f} s.",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
