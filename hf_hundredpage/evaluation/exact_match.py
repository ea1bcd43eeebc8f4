"""Exact-match accuracy of greedy answers on an instruction dataset (book §5.3's evaluation of a finetuned model)."""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..generation import chat_turn_end, greedy_complete, stop_token_ids


def _is_conversation(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict) and "role" in value[0]


def prompt_and_reference(example: dict[str, Any], tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], str]:
    """The prompt token ids that generation starts from, and the reference answer, for one example.

    ``messages``: everything before the last assistant turn, rendered with the chat template and its generation
    prompt; the reference is that turn's content. ``prompt``/``completion``: the prompt (rendered like TRL's
    SFTTrainer renders it: through the chat template when conversational, tokenized as is otherwise).
    """
    if "messages" in example:
        messages = example["messages"]
        last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
        if last is None:
            raise ValueError("a messages example has no assistant turn: every example needs the reference answer")
        prompt, reference = messages[:last], messages[last]["content"]
    elif "prompt" in example and "completion" in example:
        prompt, completion = example["prompt"], example["completion"]
        reference = completion[-1]["content"] if _is_conversation(completion) else completion
    else:
        raise ValueError(f"examples need a 'messages' column or 'prompt' and 'completion' columns, got {sorted(example)}")
    if _is_conversation(prompt):
        text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        ids = tokenizer(text, add_special_tokens=False).input_ids
    else:
        ids = tokenizer(prompt).input_ids
    return ids, reference


def evaluate_exact_match(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    dataset,
    *,
    max_new_tokens: int = 32,
    batch_size: int = 32,
    max_examples: int | None = None,
) -> dict[str, Any]:
    """Exact-match accuracy of greedy decoding on an instruction dataset (book §5.3's evaluation).

    Each prompt is completed greedily until the chat template's end-of-turn token (or `max_new_tokens`); the
    answer is the decoded text without special tokens, cut before the template's end-of-turn text, stripped, and
    compared with the stripped reference. Prompts go through `greedy_complete` (batched by length, no padding).

    Returns:
        ``{"exact_match": float, "num_examples": int, "predictions": [{"prompt_ids", "prediction", "reference",
        "correct", "stopped"}]}``; ``stopped`` says whether generation ended on a stop token.
    """
    examples = [dataset[i] for i in range(len(dataset) if max_examples is None else min(max_examples, len(dataset)))]
    if not examples:
        raise ValueError("the evaluation dataset is empty: pass a test split with at least one example")
    stop_ids = stop_token_ids(tokenizer)
    _, turn_end_text = chat_turn_end(tokenizer)
    prompts, references = zip(*(prompt_and_reference(example, tokenizer) for example in examples))
    completions = greedy_complete(model, list(prompts), max_new_tokens=max_new_tokens, stop_ids=stop_ids,
                                  pad_token_id=tokenizer.pad_token_id, batch_size=batch_size)
    results = []
    for ids, reference, (tokens, stopped) in zip(prompts, references, completions):
        answer = tokenizer.decode(tokens, skip_special_tokens=True)
        if turn_end_text.strip() and turn_end_text.strip() in answer:
            answer = answer[: answer.index(turn_end_text.strip())]
        prediction = answer.strip()
        results.append({"prompt_ids": ids, "prediction": prediction, "reference": reference.strip(),
                        "correct": prediction == reference.strip(), "stopped": stopped})
    correct = sum(r["correct"] for r in results)
    return {"exact_match": correct / len(results), "num_examples": len(results), "predictions": results}


def exact_match_by_task(result: dict, dataset) -> dict[str, float]:
    """Exact match per task family (``eval_exact_match_<task>``), when the dataset has a ``task`` column."""
    if "task" not in dataset.column_names:
        return {}
    hits: dict[str, list[bool]] = {}
    for task, prediction in zip(dataset["task"], result["predictions"]):
        hits.setdefault(task, []).append(prediction["correct"])
    return {f"eval_exact_match_{task}": sum(v) / len(v) for task, v in sorted(hits.items())}
