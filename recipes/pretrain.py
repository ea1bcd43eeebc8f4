"""Pretrain one of the book's language models (ch. 3 RNN, ch. 4 transformer) with `accelerate launch`.

    accelerate launch recipes/pretrain.py --config recipes/configs/pretrain/quickstart.yaml --output_dir out/quickstart

YAML keys and command-line flags are the same (the command line wins): the `TrainingArguments` names
(`max_steps`, `learning_rate`, `per_device_train_batch_size`, ...), the architecture keys of
`hf_hundredpage.training.ModelArguments`, `RunArguments` and the data keys below. The run ends with a folder ready
for the Hub: safetensors weights, config with `auto_map` and code files, tokenizer, generation config,
`metrics.json` (model vs the count-based n-gram baseline of book §2.5), `loss_curve.png`, `samples.json` and
`README.md`.
"""

import sys
from dataclasses import dataclass, field

from transformers import AutoTokenizer, TrainingArguments

from hf_hundredpage.compression.qat import QATArguments
from hf_hundredpage.data import EMBEDDED_CORPUS, default_tokenizer_path, lm_dataset, load_text_dataset
from hf_hundredpage.evaluation import evaluate_against_ngram
from hf_hundredpage.evaluation.mixture import mixture_section
from hf_hundredpage.evaluation.moe import expert_load_section
from hf_hundredpage.paths import resolve_model_path
from hf_hundredpage.recipe_parser import RecipeParser, RunArguments, recipe_errors
from hf_hundredpage.training import (
    HundredPageTrainer,
    ModelArguments,
    SampleGenerationCallback,
    build_model,
    finish_run,
    format_table,
    prepare_run,
    start_run,
    weights_identical_across_ranks,
)
from hf_hundredpage.training.run import command_line, run_callbacks, run_config, whole_run_totals


@dataclass
class PretrainArguments(QATArguments, RunArguments):
    dataset_name: str = field(default=EMBEDDED_CORPUS, metadata={"help": "embedded corpus, Hub id, local dir or file"})
    dataset_config: str | None = field(default=None, metadata={"help": "Hub dataset configuration"})
    text_column: str = field(default="text")
    block_size: int = field(default=128, metadata={"help": "tokens per training sequence (context size)"})
    packing: bool = field(default=True, metadata={"help": "pack documents into blocks; false = the book's one sentence per row"})
    streaming: bool = field(default=False, metadata={"help": "stream the dataset instead of caching it (needs max_steps)"})
    sample_prompts: list[str] = field(default_factory=lambda: ["The", "In 1905,", "The city of"])
    sample_max_new_tokens: int = field(default=24)
    ngram_order: int = field(default=3, metadata={"help": "order of the Kneser-Ney n-gram baseline"})
    ngram_mixture: bool = field(default=True, metadata={"help": "also report λ·p_KN + (1-λ)·p_NN and save the n-gram"})
    eval_max_documents: int | None = field(default=None, metadata={"help": "cap the documents of the final evaluation"})


@recipe_errors("pretrain.py")
def main(argv=None) -> int:
    script_args, model_args, training_args = RecipeParser((PretrainArguments, ModelArguments, TrainingArguments)).parse_recipe_args(argv)
    resume = start_run(training_args, script_args)
    if script_args.streaming and training_args.max_steps <= 0:
        raise ValueError("streaming datasets have no length: set max_steps")
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(
        model_args.tokenizer_name_or_path or model_args.model_name_or_path or default_tokenizer_path(), "tokenizer folder"))
    raw = load_text_dataset(script_args.dataset_name, script_args.dataset_config, text_column=script_args.text_column,
                            streaming=script_args.streaming)
    model = build_model(model_args, tokenizer, script_args.block_size)
    script_args.prepare_qat(model)  # --qat: torchao fake quantization (book §6.3)
    run = prepare_run(training_args, overwrite_output_dir=script_args.overwrite_output_dir, resume=resume)

    with training_args.main_process_first(desc="tokenize and pack"):
        data, collator = lm_dataset(raw, tokenizer, script_args.block_size, packing=script_args.packing,
                                    text_column=script_args.text_column)
    samples = SampleGenerationCallback(tokenizer, script_args.sample_prompts, script_args.sample_max_new_tokens)
    callbacks = [samples, *run_callbacks(script_args)]
    trainer = HundredPageTrainer(
        model=model, args=training_args, train_dataset=data["train"], eval_dataset=data["validation"],
        data_collator=collator, processing_class=tokenizer, callbacks=callbacks, block_size=script_args.block_size,
    )

    train_result = trainer.train(resume_from_checkpoint=resume)
    tokens_per_second = trainer.training_throughput(train_result.metrics["train_runtime"])  # before evaluation below
    block_eval = trainer.evaluate()
    identical = weights_identical_across_ranks(trainer.model)
    if not trainer.is_world_process_zero():
        return 0

    model = trainer.model
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        setattr(model.generation_config, name, getattr(tokenizer, name))
    metrics = {
        **evaluate_against_ngram(model, tokenizer, raw, text_column=script_args.text_column, order=script_args.ngram_order,
                                 max_documents=script_args.eval_max_documents or (2000 if script_args.streaming else None),
                                 max_length=script_args.block_size, mixture=script_args.ngram_mixture,
                                 save_ngram_to=run.work_dir / "ngram_baseline.npz" if script_args.ngram_mixture else None),
        "block_eval_loss": block_eval["eval_loss"],
        **whole_run_totals(trainer, train_result),
        "train_tokens": trainer.state.global_step * trainer.tokens_per_step,
        "train_tokens_per_second": round(tokens_per_second, 1),
        "num_parameters": model.num_parameters(),
        "world_size": training_args.world_size,
        "weights_identical_across_ranks": identical,
    }
    moe_metrics, moe_sections = expert_load_section(  # a mixture of experts (§6.1): how its routers spread tokens
        model, tokenizer, raw, run.work_dir, text_column=script_args.text_column, max_length=script_args.block_size,
        max_documents=script_args.eval_max_documents)
    metrics.update(moe_metrics)
    ngram = f"{script_args.ngram_order}-gram (Kneser-Ney)"
    rows = [(name, f"{metrics[p + 'eval_loss']:.3f}", f"{metrics[p + 'eval_perplexity']:.1f}", f"{metrics[p + 'eval_bits_per_byte']:.3f}")
            for name, p in ((model_args.model_type, ""), (f"{script_args.ngram_order}-gram KN baseline", "ngram_"),
                            (f"mixture (λ={metrics.get('mixture_weight')})", "mixture_")) if p + "eval_loss" in metrics]
    finish_run(
        run, trainer, tokenizer, metrics=metrics, plot_title=f"{model_args.model_type} pretraining",
        extra_files={"samples.json": {"prompts": script_args.sample_prompts, "evaluations": samples.samples}},
        card=dict(task="pretrain", model_family=model_args.model_type, datasets=script_args.dataset_name,
                  metrics={k: v for k, v in metrics.items() if k.startswith("eval_")},
                  baseline_metrics={k[len("ngram_"):]: v for k, v in metrics.items() if k.startswith("ngram_eval_")},
                  baseline_name=ngram, command=command_line("pretrain.py", argv),
                  extra_sections={"Count-based model and mixture": mixture_section(metrics, model_args.model_type, ngram),
                                  **moe_sections},
                  config=run_config(script_args, model_args, training_args), resumed=metrics["resumed"]),
        table=format_table(rows, header=("validation", "loss", "perplexity", "bits/byte")),
        summary=f"{metrics['train_tokens']:,} tokens in {metrics['train_runtime']:.0f} s "
                f"({metrics['train_tokens_per_second']:,.0f} tok/s).",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
