"""The steps the policy-alignment recipes (``recipes/dpo.py``, ``kto.py``, ``orpo.py``; book §6.4) share around
their TRL trainer: load and check the data, tokenizer and model; measure the preference rate before training, train,
measure it and the KL divergence from the starting model after; then one finish (metrics.json, predictions, card).
Each recipe keeps only what differs: its config class, its trainer and the metrics its trainer logs."""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import Any

from .. import hub
from ..data.preferences import load_preference_dataset
from ..finetuning import load_model, load_tokenizer
from ..finetuning.sft import load_chat_template
from ..generation import set_generation_stop_tokens
from ..training.run import command_line, finish_run, run_config, whole_run_totals
from .kl import kl_to_reference
from .lengths import check_preference_max_length
from .preference_rate import before_after, evaluate_preference_rate


def load_alignment_inputs(script_args, model_args, training_args):
    """``(data, tokenizer, model)``: the checked preference splits, the tokenizer with its chat template, the model
    to align; ``max_length`` raised to the longest prompt + answer (or the run refused) before anything trains."""
    data = load_preference_dataset(script_args.dataset_name, script_args.dataset_config, seed=training_args.seed,
                                   num_examples=script_args.dataset_num_examples, test_size=script_args.dataset_test_size)
    tokenizer = load_tokenizer(model_args, trust_remote_code=training_args.trust_remote_code)
    load_chat_template(tokenizer, None, data["train"], model_args.model_name_or_path)
    model = load_model(model_args, trust_remote_code=training_args.trust_remote_code)
    model_max = getattr(model.config, "max_position_embeddings", None)
    print(check_preference_max_length(training_args, tokenizer, data, model_max) or "", end="")
    return data, tokenizer, model


def reference_context(trainer, model_args):
    """A callable returning a context manager that yields the model before training: the base with its adapter
    disabled (LoRA), the trainer's frozen reference, or else (precomputed reference log-probs, ORPO) the starting
    checkpoint loaded again, once."""
    model = trainer.model
    if hasattr(model, "peft_config") and hasattr(model, "disable_adapter"):
        @contextmanager
        def without_adapter():
            with model.disable_adapter():  # yields nothing: the model itself is the reference inside
                yield model

        return without_adapter
    reference = getattr(trainer, "ref_model", None)
    if reference is None:
        reference = load_model(model_args, trust_remote_code=trainer.args.trust_remote_code)
        if getattr(reference, "hf_device_map", None) is None:
            reference.to(next(model.parameters()).device)
        reference.eval().requires_grad_(False)
    return lambda: nullcontext(reference)


def train_and_rate(trainer, tokenizer, data, script_args, model_args, resume) -> dict[str, Any]:
    """Preference rate of greedy answers on the test prompts before training, training, the trainer's final
    validation, the preference rate and the KL divergence from the starting model after; the run's figures."""
    is_adapter = hasattr(trainer.model, "peft_config")
    base = trainer.model.get_base_model() if is_adapter else trainer.model
    set_generation_stop_tokens(base, tokenizer)
    limit = dict(max_examples=script_args.eval_max_examples)
    before = evaluate_preference_rate(trainer.model, tokenizer, data["test"], **limit)
    train_result = trainer.train(resume_from_checkpoint=resume)
    final_eval = trainer.evaluate()
    after = evaluate_preference_rate(trainer.model, tokenizer, data["test"], **limit)
    kl = kl_to_reference(trainer.model, reference_context(trainer, model_args), tokenizer, data["test"], **limit)
    return dict(before=before, after=after, final_eval=final_eval, train_result=train_result, kl=kl,
                is_adapter=is_adapter, base=base)


def finish_alignment(
    run,
    trainer,
    tokenizer,
    outcome: dict[str, Any],
    *,
    method: str,
    argv,
    args: tuple,
    card_keys: tuple[str, ...],
    logged: tuple[str, ...],
    reference: str | None = None,
    plot_title: str,
    table_note: str = "",
) -> None:
    """metrics.json (the trainer's `logged` validation figures, the preference rate before / after, the KL divergence
    from the starting model, the run totals), predictions.json, the loss curve and the card, through `finish_run`.

    Args:
        method: the method's short name (``"DPO"``); its lower case is the card's task.
        args: ``(script_args, model_args, training_args)``.
        logged: prefixes of the validation metrics to keep (``"eval_rewards/"``, ...).
        reference: how the trainer's reference model was made (`reference_model`), None without one (ORPO).
    """
    script_args, model_args, training_args = args
    final_eval, before, after, kl, base = (outcome[key] for key in ("final_eval", "before", "after", "kl", "base"))
    accuracy = final_eval.get("eval_rewards/accuracies")
    report = before_after(before, after, method, accuracy)
    metrics = {
        **{key: value for key, value in final_eval.items() if key.startswith(logged)},
        "eval_loss": final_eval["eval_loss"], **report["metrics"],
        "eval_kl_to_start": kl["kl"], "eval_max_kl_to_start": kl["max_kl"], "eval_kl_num_tokens": kl["num_tokens"],
        **whole_run_totals(trainer, outcome["train_result"]),
        "num_parameters": base.num_parameters(),
        "num_trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
    }
    if reference is not None:
        metrics["reference_model"] = reference
    card_metrics = {"test_preference_rate": after["chosen"], "test_kl_to_start": kl["kl"]}
    if accuracy is not None:
        card_metrics["eval_rewards/accuracies"] = accuracy
    kl_line = (f"KL(after ‖ before) on the test answers: {kl['kl']:.4f} nats/token (largest position "
               f"{kl['max_kl']:.3f}, {kl['num_tokens']} tokens)")
    finish_run(
        run, trainer, tokenizer, metrics=metrics, plot_title=plot_title, generation_config=base.generation_config,
        extra_files={"predictions.json": {"test": report["predictions"]}},
        card=dict(task=method.lower(), model_family=hub.model_family(base.config),
                  base_model=model_args.model_name_or_path, datasets=script_args.dataset_name, metrics=card_metrics,
                  baseline_metrics={"test_preference_rate": before["chosen"]}, baseline_name=f"model before {method}",
                  baseline_description=f"The baseline is the same model before {method} (the starting point), whose "
                  "greedy answers are scored on the same held-out test prompts.",
                  command=command_line(f"{method.lower()}.py", argv),
                  config=run_config(script_args, model_args, training_args, card_keys), resumed=metrics["resumed"]),
        table="\n".join(filter(None, [report["table"], kl_line, table_note])),
        summary=f"{trainer.state.global_step} steps in {metrics['train_runtime']:.0f} s. "
        f"{'Adapter' if outcome['is_adapter'] else 'Model'}.",
    )
