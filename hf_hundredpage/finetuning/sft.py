"""What supervised finetuning (book §5.2-§5.3) checks before it trains: the chat template, which tokens the loss is
on, and that no answer is cut by ``max_length``. An answer cut short trains a model that never learns to finish (the
loss looks great and the accuracy is 0), so a run that would truncate completions is resized or refused, loudly."""

from __future__ import annotations

from pathlib import Path


def is_conversational(dataset) -> bool:
    """TRL's conversational types: a ``messages`` column, or ``prompt`` as a list of turns."""
    first = dataset[0]
    return "messages" in first or isinstance(first.get("prompt"), list)


def load_chat_template(tokenizer, chat_template_path: str | None, train, model_name: str | None) -> None:
    """Put a ``.jinja`` chat template on the tokenizer now (TRL does it too, but the baseline evaluation runs first);
    refuse conversational data without any chat template."""
    if chat_template_path and chat_template_path.endswith((".jinja", ".j2")):
        if not Path(chat_template_path).is_file():
            raise FileNotFoundError(f"chat_template_path {chat_template_path} does not exist: pass a .jinja file or a model id")
        tokenizer.chat_template = Path(chat_template_path).read_text()
    if is_conversational(train) and not tokenizer.chat_template and not chat_template_path:
        raise ValueError(f"{model_name} has no chat template for a conversational dataset: pass chat_template_path")


def configure_loss_mask(training_args, train, tokenizer) -> str:
    """Make the loss follow the data and return the one line that says where it is.

    Conversational data: the assistant turns (``assistant_only_loss``) when the chat template marks them with
    ``{% generation %}``, else the whole conversation. Prompt-completion data: the completion
    (``completion_only_loss``), unless the user set ``completion_only_loss: false``. ``assistant_only_loss: true``
    on prompt-completion data contradicts the data and is an error.
    """
    if not is_conversational(train):
        if training_args.assistant_only_loss:
            raise ValueError(
                "assistant_only_loss needs conversational (messages) data, and this dataset is prompt-completion: "
                "drop assistant_only_loss (the loss is then on the completion)"
            )
        if training_args.completion_only_loss is False:
            return "loss: on prompt and completion (completion_only_loss: false)"
        training_args.completion_only_loss = True
        return "loss: on the completion only (prompt-completion data)"
    if training_args.assistant_only_loss:
        return "loss: on the assistant turns only (conversational data, assistant_only_loss)"
    if "generation" in _template_tags(tokenizer.chat_template or ""):
        training_args.assistant_only_loss = True
        return "loss: on the assistant turns only (conversational data; the chat template marks them)"
    return "loss: on the whole conversation (the chat template has no {% generation %} tags to mark the answers)"


def _template_tags(template: str) -> set[str]:
    import re

    return set(re.findall(r"{%-?\s*(\w+)", template))


def example_lengths(tokenizer, dataset) -> list[int]:
    """Tokens of each full example as TRL's SFTTrainer builds it (chat template, or prompt + completion + EOS)."""
    lengths = []
    for row in dataset:
        if "messages" in row:
            lengths.append(len(tokenizer.apply_chat_template(row["messages"], tokenize=True, return_dict=False)))
        elif isinstance(row.get("prompt"), list):
            lengths.append(len(tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=True, return_dict=False)))
        else:
            prompt = tokenizer(row["prompt"]).input_ids
            completion = tokenizer(row["completion"], add_special_tokens=False).input_ids
            lengths.append(len(prompt) + len(completion) + 1)  # + EOS, as SFTTrainer appends it
    return lengths


def check_max_length(training_args, tokenizer, data, model_max: int | None, lengths_of=example_lengths) -> str:
    """Never train on cut answers: raise ``max_length`` to the longest example when the model's context allows it
    (returning the warning line, with the count of rows affected), else refuse with the count. `lengths_of`
    (tokenizer, split) gives the token count of each sequence the trainer builds (`example_lengths` for SFT)."""
    lengths = [n for split in ("train", "validation") if split in data for n in lengths_of(tokenizer, data[split])]
    if not lengths or training_args.max_length is None:
        return ""
    longest = max(lengths)
    over = sum(n > training_args.max_length for n in lengths)
    if not over:
        return ""
    if model_max is not None and longest > model_max:
        raise ValueError(
            f"{over} of {len(lengths)} examples are longer than max_length={training_args.max_length} and the longest "
            f"({longest} tokens) exceeds the model's {model_max} positions: shorten or drop them, so no answer is cut"
        )
    message = (f"warning: max_length raised from {training_args.max_length} to {longest}: {over} of {len(lengths)} "
               "examples were longer, and their answers would have been cut")
    training_args.max_length = longest
    return message
