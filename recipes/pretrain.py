"""Pretrain one of the book's language models (ch. 3 RNN, ch. 4 transformer) with `accelerate launch`.

    accelerate launch recipes/pretrain.py --config recipes/configs/pretrain/quickstart.yaml --output_dir out/quickstart

YAML keys and command-line flags are the same (the command line wins): the `TrainingArguments` names
(`max_steps`, `learning_rate`, `per_device_train_batch_size`, ...), the architecture keys of
`hf_hundredpage.training.ModelArguments`, and the data keys below. The run ends with a folder ready for the Hub:
safetensors weights, config with `auto_map` and code files, tokenizer, generation config, `metrics.json`
(model vs the count-based n-gram baseline of book §2.5), `loss_curve.png`, `samples.json` and `README.md`.
"""

from __future__ import annotations

import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from transformers import AutoTokenizer, EarlyStoppingCallback, ProgressCallback, TrainingArguments, default_data_collator

from hf_hundredpage import hub
from hf_hundredpage.config import RecipeConfigError, RecipeParser, check_output_dir, resolve_resume
from hf_hundredpage.data import EMBEDDED_CORPUS, default_tokenizer_path, load_text_dataset, pack_dataset, pad_collator, sentence_dataset
from hf_hundredpage.training import (
    HundredPageTrainer,
    ModelArguments,
    SampleGenerationCallback,
    ThroughputProgressCallback,
    build_model,
    evaluate_against_ngram,
    format_table,
    model_flops_per_token,
    plot_loss_curve,
    prepare_run,
    weights_identical_across_ranks,
    write_json,
)


@dataclass
class PretrainArguments:
    dataset_name: str = field(default=EMBEDDED_CORPUS, metadata={"help": "embedded corpus, Hub id, local dir or file"})
    dataset_config: str | None = field(default=None, metadata={"help": "Hub dataset configuration"})
    text_column: str = field(default="text")
    block_size: int = field(default=128, metadata={"help": "tokens per training sequence (context size)"})
    packing: bool = field(default=True, metadata={"help": "pack documents into blocks; false = the book's one sentence per row"})
    streaming: bool = field(default=False, metadata={"help": "stream the dataset instead of caching it (needs max_steps)"})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "replace a non-empty output_dir"})
    early_stopping_patience: int | None = field(default=None, metadata={"help": "stop after N evaluations without improvement (book §6.8)"})
    sample_prompts: list[str] = field(default_factory=lambda: ["The", "In 1905,", "The city of"])
    sample_max_new_tokens: int = field(default=24)
    ngram_order: int = field(default=3, metadata={"help": "order of the Kneser-Ney n-gram baseline"})
    eval_max_documents: int | None = field(default=None, metadata={"help": "cap the documents of the final evaluation"})


def main(argv=None) -> int:
    parser = RecipeParser((PretrainArguments, ModelArguments, TrainingArguments))
    try:
        script_args, model_args, training_args = parser.parse_recipe_args(argv)
        resume = resolve_resume(training_args.resume_from_checkpoint)
        if script_args.streaming and training_args.max_steps <= 0:
            raise RecipeConfigError("streaming datasets have no length: set max_steps")
        check_output_dir(training_args.output_dir, script_args.overwrite_output_dir, resuming=bool(resume))
    except RecipeConfigError as err:
        print(f"pretrain.py: error: {err}", file=sys.stderr)
        return 2

    push_to_hub = prepare_run(training_args, overwrite_output_dir=script_args.overwrite_output_dir, resume=resume)
    output_dir = Path(training_args.output_dir)

    tokenizer = AutoTokenizer.from_pretrained(
        model_args.tokenizer_name_or_path or model_args.model_name_or_path or default_tokenizer_path()
    )
    try:
        raw = load_text_dataset(script_args.dataset_name, script_args.dataset_config, text_column=script_args.text_column,
                                streaming=script_args.streaming)
    except (ValueError, FileNotFoundError) as err:
        print(f"pretrain.py: error: {err}", file=sys.stderr)
        return 2
    with training_args.main_process_first(desc="tokenize and pack"):
        if script_args.packing:
            data = pack_dataset(raw, tokenizer, script_args.block_size, text_column=script_args.text_column)
            collator = default_data_collator
        else:
            data = sentence_dataset(raw, tokenizer, script_args.block_size, text_column=script_args.text_column)
            collator = pad_collator(tokenizer)

    model = build_model(model_args, tokenizer, script_args.block_size)
    tokens_per_step = (training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps
                       * training_args.world_size * script_args.block_size)
    samples = SampleGenerationCallback(tokenizer, script_args.sample_prompts, script_args.sample_max_new_tokens)
    callbacks = [samples]
    if script_args.early_stopping_patience:
        training_args.load_best_model_at_end, training_args.metric_for_best_model = True, "eval_loss"
        callbacks.append(EarlyStoppingCallback(script_args.early_stopping_patience))
    trainer = HundredPageTrainer(
        model=model, args=training_args, train_dataset=data["train"], eval_dataset=data["validation"],
        data_collator=collator, processing_class=tokenizer, callbacks=callbacks, tokens_per_step=tokens_per_step,
        flops_per_token=model_flops_per_token(model, script_args.block_size),
    )
    trainer.remove_callback(ProgressCallback)
    if not training_args.disable_tqdm:
        trainer.add_callback(ThroughputProgressCallback())

    start = time.perf_counter()
    train_result = trainer.train(resume_from_checkpoint=resume)
    train_runtime = time.perf_counter() - start
    tokens_per_second = trainer.training_throughput(train_runtime)  # before the final evaluation below
    block_eval = trainer.evaluate()
    identical = weights_identical_across_ranks(trainer.model)
    if not trainer.is_world_process_zero():
        return 0

    model = trainer.model
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        setattr(model.generation_config, name, getattr(tokenizer, name))
    trainer.save_model(str(output_dir))
    tokenizer.save_pretrained(output_dir)
    comparison = evaluate_against_ngram(
        model, tokenizer, raw, text_column=script_args.text_column, order=script_args.ngram_order,
        max_documents=script_args.eval_max_documents or (2000 if script_args.streaming else None),
        max_length=script_args.block_size,
    )
    metrics = {
        **comparison,
        "block_eval_loss": block_eval["eval_loss"],
        "train_loss": train_result.training_loss,
        "train_runtime": round(train_runtime, 2),
        "train_steps": trainer.state.global_step,
        "train_tokens": trainer.state.global_step * tokens_per_step,
        "train_tokens_per_second": round(tokens_per_second, 1),
        "num_parameters": model.num_parameters(),
        "world_size": training_args.world_size,
        "weights_identical_across_ranks": identical,
    }
    write_json(output_dir / "metrics.json", metrics)
    write_json(output_dir / "samples.json", {"prompts": script_args.sample_prompts, "evaluations": samples.samples})
    plot_loss_curve(trainer.state.log_history, output_dir / "loss_curve.png", title=f"{model_args.model_type} pretraining")
    command = "accelerate launch recipes/pretrain.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    config = {**asdict(script_args), **{k: v for k, v in asdict(model_args).items() if v is not None},
              **{k: getattr(training_args, k) for k in ("max_steps", "num_train_epochs", "per_device_train_batch_size",
                 "gradient_accumulation_steps", "learning_rate", "lr_scheduler_type", "warmup_steps", "weight_decay", "seed")}}
    hub.write_model_card(
        output_dir, model_name=training_args.hub_model_id or output_dir.name, task="pretrain",
        model_family=model_args.model_type, datasets=script_args.dataset_name,
        metrics={k: v for k, v in metrics.items() if k.startswith("eval_")},
        baseline_metrics={k[len("ngram_"):]: v for k, v in metrics.items() if k.startswith("ngram_eval_")},
        baseline_name=f"{script_args.ngram_order}-gram (Kneser-Ney)", command=command, config=config,
        train_runtime=train_runtime,
    )
    print("\n" + format_table(
        [(model_args.model_type, f"{metrics['eval_loss']:.3f}", f"{metrics['eval_perplexity']:.1f}", f"{metrics['eval_bits_per_byte']:.3f}"),
         (f"{script_args.ngram_order}-gram KN baseline", f"{metrics['ngram_eval_loss']:.3f}",
          f"{metrics['ngram_eval_perplexity']:.1f}", f"{metrics['ngram_eval_bits_per_byte']:.3f}")],
        header=("validation", "loss", "perplexity", "bits/byte"),
    ))
    print(f"\n{metrics['train_tokens']:,} tokens in {train_runtime:.0f} s ({metrics['train_tokens_per_second']:,.0f} tok/s). "
          f"Model folder: {output_dir}")
    if push_to_hub:
        training_args.push_to_hub = True
        print(f"pushed: {hub.maybe_push_to_hub(output_dir, training_args)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
