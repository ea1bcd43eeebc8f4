"""builtin:arithmetic (book §6.5): seeded, disjoint splits whatever the seed, gold answers that follow from the
problem's structure, the book's chain-of-thought format, PAL programs that print the gold answer in the sandbox, and
the six configurations through the one loader."""

import re

import pytest
import torch

from hf_hundredpage.data.builtin.arithmetic import (
    CONFIGS,
    PAL_SYSTEM_PROMPT,
    SYSTEM_PROMPT,
    apply_steps,
    format_program,
    format_solution,
    make_arithmetic_dataset,
)
from hf_hundredpage.data.instructions import load_instruction_dataset
from hf_hundredpage.data.sources import load_source
from hf_hundredpage.reasoning.rewards import extract_answer, format_reward
from hf_hundredpage.reasoning.sandbox import execute_python
from hf_hundredpage.reasoning.strategies import PAL_PROMPT, extract_program
from hf_hundredpage.reasoning.strategies import pal as pal_strategy
from hf_hundredpage.tokenization import train_bpe_tokenizer


def structures(split) -> set[tuple]:
    return {(row["start"], tuple(row["steps"])) for row in split}


def test_same_seed_same_data_other_seed_other_data():
    a, b = make_arithmetic_dataset(120, seed=5), make_arithmetic_dataset(120, seed=5)
    assert all(a[s].to_list() == b[s].to_list() for s in ("train", "validation", "test"))
    assert a["train"]["prompt"] != make_arithmetic_dataset(120, seed=6)["train"]["prompt"]
    assert {s: len(a[s]) for s in a} == {"train": 96, "validation": 12, "test": 12}


def test_splits_are_disjoint_within_a_dataset_and_across_seeds_and_configs():
    data = make_arithmetic_dataset(400, seed=1, min_steps=1, max_steps=2, max_operand=9)
    train, validation, test = (structures(data[s]) for s in ("train", "validation", "test"))
    assert len(train) == len(data["train"]) and len(test) == len(data["test"])  # no duplicate inside a split
    assert not train & test and not train & validation and not validation & test
    # The split is a function of the problem: an SFT set made with another seed never trains on this test split.
    other = make_arithmetic_dataset(400, seed=99, config="sft", min_steps=1, max_steps=2, max_operand=9)
    assert not structures(other["train"]) & test and not structures(other["test"]) & train


def test_gold_answers_follow_the_problem():
    data = make_arithmetic_dataset(200, seed=2, max_steps=4, max_operand=30)
    for row in data["train"]:
        value = row["start"]
        numbers = [int(n) for n in re.findall(r"\d+", row["prompt"])]
        assert numbers[0] == row["start"]
        for step in row["steps"]:
            op, operand = step.split()
            value = {"+": value + int(operand), "-": value - int(operand), "*": value * int(operand)}[op]
            assert value >= 0  # counts never go negative
            if op == "*":
                assert ("doubles" if operand == "2" else "triples") in row["prompt"]
            else:
                assert int(operand) in numbers
        assert row["answer"] == value == apply_steps(row["start"], row["steps"])
        assert 1 <= len(row["steps"]) <= 4 and row["prompt"].endswith("have now?\n")


def test_chain_of_thought_is_the_books_format_and_parses():
    solution = format_solution(12, ["+ 5", "- 3", "* 2"])
    assert solution == "<reasoning>\n12 + 5 = 17\n17 - 3 = 14\n14 * 2 = 28\n</reasoning>\n<answer>\n28\n</answer>"
    sft = make_arithmetic_dataset(60, seed=3, config="sft")
    for row in sft["train"]:
        assert extract_answer(row["completion"]) == row["answer"]
        assert format_reward([row["completion"]]) == [1.0]
        lines = row["completion"].split("\n")[1:-4]
        assert len(lines) == len(row["steps"]) and all(re.fullmatch(r"\d+ [-+*] \d+ = \d+", line) for line in lines)


def test_configurations_share_problems_and_have_trl_columns():
    by_config = {config: make_arithmetic_dataset(40, seed=4, config=config) for config in CONFIGS}
    assert by_config["grpo"]["test"]["prompt"] == by_config["sft"]["test"]["prompt"]  # SFT warm start -> GRPO prompts
    assert set(by_config["grpo"]["train"].column_names) == {"prompt", "answer", "start", "steps"}
    assert {"prompt", "completion", "answer"} <= set(by_config["sft"]["train"].column_names)
    turns = by_config["grpo-conversational"]["train"][0]["prompt"]
    assert [t["role"] for t in turns] == ["system", "user"] and turns[0]["content"] == SYSTEM_PROMPT
    messages = by_config["sft-messages"]["train"][0]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    assert extract_answer(messages[-1]["content"]) == by_config["sft-messages"]["train"][0]["answer"]


def test_builtin_name_and_config_dispatch_through_the_one_loader():
    data = load_source("builtin:arithmetic", builtin_options={"num_examples": 30, "seed": 0, "max_steps": 1})
    assert "answer" in data["train"].column_names and all(len(s) == 1 for s in data["train"]["steps"])
    sft = load_instruction_dataset("builtin:arithmetic", "sft", num_examples=30, seed=0)  # what recipes/sft.py calls
    assert {"prompt", "completion"} <= set(sft["train"].column_names)


@pytest.mark.parametrize("kwargs,expected", [
    (dict(config="cot"), "dataset_config must be one of"),
    (dict(min_steps=3, max_steps=2), "min_steps=3 and max_steps=2"),
    (dict(operations=("divide",)), "operations must be among"),
    (dict(n=2), "too small"),
    (dict(n=500, max_steps=1, max_operand=2, operations=("add",)), "could not draw 500 distinct problems"),
])
def test_bad_arguments_are_one_clear_error(kwargs, expected):
    with pytest.raises(ValueError, match=re.escape(expected)):
        make_arithmetic_dataset(**{"n": 50, **kwargs})


def test_pal_programs_print_the_gold_answer_in_the_sandbox():
    assert format_program(12, ["+ 5", "- 3", "* 2"]) == "```python\nx = 12\nx = x + 5\nx = x - 3\nx = x * 2\nprint(x)\n```"
    pal = make_arithmetic_dataset(200, seed=7, config="pal", max_steps=4, max_operand=50)
    rows = pal["train"].select(range(17)).to_list() + pal["test"].select(range(3)).to_list()
    for row in rows:  # ~20 sandboxed runs (a fresh interpreter each): a sample keeps the test fast
        program = extract_program(row["completion"])
        assert program.startswith(f"x = {row['start']}\n") and program.count("\n") == len(row["steps"]) + 1
        result = execute_python(program, timeout_s=10)
        assert result.ok and result.stdout.strip() == str(row["answer"]), (program, result)


def test_pal_configurations_share_prompts_and_splits_with_sft():
    kwargs = dict(n=120, seed=8, max_steps=3)
    sft, pal = make_arithmetic_dataset(config="sft", **kwargs), make_arithmetic_dataset(config="pal", **kwargs)
    pal_messages = make_arithmetic_dataset(config="pal-messages", **kwargs)
    for split in ("train", "validation", "test"):
        assert pal[split]["prompt"] == sft[split]["prompt"] and structures(pal[split]) == structures(sft[split])
        assert pal[split]["answer"] == sft[split]["answer"] and len(pal_messages[split]) == len(sft[split])
        assert [m[1]["content"] + "\n" for m in pal_messages[split]["messages"]] == sft[split]["prompt"]
        assert [m[2]["content"] for m in pal_messages[split]["messages"]] == pal[split]["completion"]
    assert set(pal["train"].column_names) == set(sft["train"].column_names)
    assert all(c.startswith("```python\n") and c.endswith("\nprint(x)\n```") for c in pal["train"]["completion"])
    # The system prompt is the pal strategy's, so a chat model finetuned on pal-messages sees the prompt it is run with.
    assert pal_messages["train"][0]["messages"][0] == {"role": "system", "content": PAL_SYSTEM_PROMPT}
    assert PAL_SYSTEM_PROMPT == PAL_PROMPT
    via_loader = load_instruction_dataset("builtin:arithmetic", "pal", num_examples=30, seed=0)  # as recipes/sft.py does
    assert via_loader["train"][0]["completion"].startswith("```python\n")


def test_the_pal_strategy_runs_a_model_that_writes_the_target_program():
    """The pal strategy with plain prompts primes ``problem\\n```python\\n`` and stops at the closing fence: a model that
    continues the ``pal`` prompt with its target gets the gold answer."""
    row = make_arithmetic_dataset(30, seed=9, config="pal")["test"][0]

    class Writer:  # a "model" that writes the dataset's own program after the primed fence
        device = torch.device("cpu")

        def generate(self, input_ids, **kwargs):
            prompt = tokenizer.decode(input_ids[0])
            assert prompt == row["prompt"] + "```python\n"
            reply = tokenizer(row["completion"].removeprefix("```python\n"), add_special_tokens=False).input_ids
            return torch.cat([input_ids, torch.tensor([reply])], dim=1)

    tokenizer = train_bpe_tokenizer([row["prompt"] + row["completion"]], vocab_size=300)
    result = pal_strategy(Writer(), tokenizer, row["prompt"].strip(), chat=False)
    assert result.value == row["answer"] and result.trace[0]["error"] is None
