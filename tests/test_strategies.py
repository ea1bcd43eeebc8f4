"""Inference-time reasoning strategies (book §6.5): each on a tiny model built here (plumbing, determinism with a
seed, token counts), and with a scripted fake model where the behaviour must be exact: answer extraction, the
self-consistency vote (one ``generate`` call), PAL through the sandbox, the tool loop (call -> tool executed -> tool
message -> final answer), ReAct, tree-of-thoughts search; the ``eval-reasoning`` and ``reason`` command lines."""

import argparse
import json

import pytest
import torch
from transformers import AutoTokenizer

from hf_hundredpage import HundredPageTransformerConfig, HundredPageTransformerForCausalLM
from hf_hundredpage.data import default_tokenizer_path
from hf_hundredpage.reasoning import cli_eval, cli_reason
from hf_hundredpage.reasoning.strategies import (
    BOOK_FORMAT_PROMPT,
    STRATEGIES,
    cot,
    extract_final_answer,
    extract_program,
    function_calling,
    generate_texts,
    majority_vote,
    model_scorer,
    pal,
    react,
    run_strategy,
    self_consistency,
    tot,
)
from hf_hundredpage.reasoning.tools import ToolRegistry, calculator, parse_tool_calls


pytestmark = pytest.mark.usefixtures("one_thread")
QUESTION = "Mia has 12 coins. She finds 5 more. How many coins does Mia have now?"


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(default_tokenizer_path())


@pytest.fixture(scope="module")
def tiny(tokenizer):
    torch.manual_seed(0)
    config = HundredPageTransformerConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_attention_heads=2, num_hidden_layers=1,
        max_position_embeddings=2048, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id)
    return HundredPageTransformerForCausalLM(config).eval()


class FakeModel:
    """A stand-in for a causal LM: each ``generate`` call returns the next scripted reply (a string, or a list of
    strings for ``num_return_sequences``) after the prompt, ended by EOS and padded; it records every prompt."""

    def __init__(self, tokenizer, replies):
        self.tokenizer, self.replies, self.prompts, self.calls = tokenizer, list(replies), [], []
        self.device, self.training = torch.device("cpu"), False

    def generate(self, input_ids, num_return_sequences=1, max_new_tokens=256, **kwargs):
        self.prompts.append(self.tokenizer.decode(input_ids[0]))
        self.calls.append(dict(kwargs, num_return_sequences=num_return_sequences))
        reply = self.replies.pop(0)
        texts = [reply] * num_return_sequences if isinstance(reply, str) else reply
        assert len(texts) == num_return_sequences
        rows = [(self.tokenizer(t, add_special_tokens=False).input_ids + [self.tokenizer.eos_token_id])[:max_new_tokens]
                for t in texts]
        width = max(map(len, rows))
        rows = [r + [self.tokenizer.pad_token_id] * (width - len(r)) for r in rows]
        return torch.cat([input_ids.repeat(num_return_sequences, 1), torch.tensor(rows)], dim=1)


def n_tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False).input_ids)


# ------------------------------------------------------------------------------------------------ answers and votes


@pytest.mark.parametrize("text,expected", [
    ("<reasoning>\n12 + 5 = 17\n</reasoning>\n<answer>\n17\n</answer>", "17"),
    ("<answer>3</answer> no, <answer> 4 </answer>", "4"),
    ("<reasoning>x</reasoning><answer>\n21", "21"),  # the last answer tag left open at max_new_tokens
    ("Thought: done\nFinal Answer: Paris.", "Paris"),
    ("12 + 5 is 17, so the answer is 17.", "17"),
    ("we get 3 then 9", "9"),
    ("Paris", "Paris"),
    ("", None),
    ("<reasoning>\n", None),  # the primed start of a chain, no further
])
def test_extract_final_answer(text, expected):
    assert extract_final_answer(text) == expected


@pytest.mark.parametrize("answers,winner,votes", [
    (["14", "15", "14", None], "14", {"14": 2, "15": 1}),
    (["15", "14", "14", "15"], "15", {"15": 2, "14": 2}),  # tie: the answer sampled first wins
    (["14 apples", "<b>", "14", "15"], "14 apples", {"14": 2, "<b>": 1, "15": 1}),  # "14 apples" and "14" agree
    (["Paris.", "paris", "Rome"], "Paris.", {"paris": 2, "rome": 1}),
    ([None, None], None, {}),
])
def test_majority_vote_on_hand_made_samples(answers, winner, votes):
    assert majority_vote(answers) == (winner, votes)


# ------------------------------------------------------------------------------------------------ fake model: exact


def test_cot_primes_the_books_format_and_extracts_the_answer(tokenizer):
    fake = FakeModel(tokenizer, ["12 + 5 = 17\n</reasoning>\n<answer>\n17\n</answer>"])
    result = cot(fake, tokenizer, QUESTION)
    assert result.answer == "17" and result.value == 17
    assert result.text == "<reasoning>\n12 + 5 = 17\n</reasoning>\n<answer>\n17\n</answer>"
    assert result.generated_tokens == n_tokens(tokenizer, "12 + 5 = 17\n</reasoning>\n<answer>\n17\n</answer>") + 1
    assert fake.prompts[0] == (f"<|im_start|>system\n{BOOK_FORMAT_PROMPT}<|eos|>\n<|im_start|>user\n{QUESTION}<|eos|>\n"
                               "<|im_start|>assistant\n<reasoning>\n")
    assert fake.calls[0]["do_sample"] is False


def test_cot_as_plain_text_and_step_by_step(tokenizer):
    fake = FakeModel(tokenizer, ["17\n</reasoning>", "12 + 5 = 17. The answer is 17."])
    assert cot(fake, tokenizer, QUESTION, chat=False).answer == "17"
    assert fake.prompts[0] == f"{QUESTION}\n<reasoning>\n"
    assert cot(fake, tokenizer, QUESTION, style="steps", chat=False).answer == "17"
    assert fake.prompts[1] == f"Q: {QUESTION}\nA: Let's think step by step."


def test_self_consistency_votes_over_one_generate_call(tokenizer):
    samples = ["<answer>16</answer>", "x <answer>17</answer>", "<answer>17</answer>", "", "<answer>17 </answer>"]
    fake = FakeModel(tokenizer, [samples])
    result = self_consistency(fake, tokenizer, QUESTION, num_samples=5, seed=3)
    assert len(fake.calls) == 1 and fake.calls[0]["num_return_sequences"] == 5 and fake.calls[0]["do_sample"] is True
    assert result.answer == "17" and result.text == "<reasoning>\nx <answer>17</answer>"  # the first chain voting 17
    assert result.trace[-1] == {"votes": {"16": 1, "17": 3}}
    assert result.generated_tokens == sum(n_tokens(tokenizer, s) + 1 for s in samples)


def test_pal_runs_the_models_program_in_the_sandbox(tokenizer):
    fake = FakeModel(tokenizer, ["print(17+25)\n```", "import os\nprint(os.getpid())\nraise SystemExit(3)\n```",
                                 "while True: pass"])
    result = pal(fake, tokenizer, "What is 17 + 25?")
    assert (result.answer, result.value, result.trace[0]["program"]) == ("42", 42, "print(17+25)")
    assert fake.prompts[0].endswith("<|im_start|>assistant\n```python\n")
    assert fake.calls[0]["stop_strings"] == ["\n```"]
    failed = pal(fake, tokenizer, "What is 17 + 25?")
    assert failed.answer is None and failed.trace[0]["error"] == "exit status 3"
    timed_out = pal(fake, tokenizer, "loop", timeout_s=0.5)
    assert timed_out.answer is None and timed_out.trace[0]["timed_out"]


@pytest.mark.parametrize("text,program", [
    ("```python\nprint(1)\n```\nmore text", "print(1)"),
    ("Here:\n```\nx = 2\nprint(x)\n```", "x = 2\nprint(x)"),
    ("print(3)", "print(3)"),
])
def test_extract_program(text, program):
    assert extract_program(text) == program


def get_current_temperature(location: str, unit: str = "celsius") -> float:
    """
    Get the current temperature at a location.

    Args:
        location: The location, "City, Country"
        unit: The unit of the temperature. (choices: ["celsius", "fahrenheit"])
    """
    CALLED.append((location, unit))
    return 22.5


CALLED: list = []
TEMPERATURE_CALL = ('<tool_call>\n{"name": "get_current_temperature", "arguments": {"location": "Paris, France"}}\n'
                    '</tool_call>')


def test_the_tool_loop_executes_the_call_and_returns_the_result_as_a_tool_message(tokenizer):
    CALLED.clear()
    fake = FakeModel(tokenizer, [TEMPERATURE_CALL, "It is 22.5 degrees in Paris."])
    result = function_calling(fake, tokenizer, "How warm is Paris?", tools=[get_current_temperature])
    assert CALLED == [("Paris, France", "celsius")]
    assert result.answer == "22.5" and result.text == "It is 22.5 degrees in Paris."
    assert '<tools>\n{"type": "function", "function": {"name": "get_current_temperature"' in fake.prompts[0]
    second = fake.prompts[1]
    assert second.endswith(
        "<|im_start|>user\nHow warm is Paris?<|eos|>\n<|im_start|>assistant\n" + TEMPERATURE_CALL + "<|eos|>\n"
        "<|im_start|>tool\n<tool_response>\n22.5\n</tool_response><|eos|>\n<|im_start|>assistant\n")
    assert result.trace[1] == {"tool": "get_current_temperature", "arguments": {"location": "Paris, France"},
                               "result": "22.5"}
    assert result.generated_tokens == n_tokens(tokenizer, TEMPERATURE_CALL) + n_tokens(tokenizer, result.text) + 2


def test_bad_tool_calls_are_answered_with_the_error_and_the_loop_goes_on(tokenizer):
    fake = FakeModel(tokenizer, ['<tool_call>\n{"name": "get_temperature", "arguments": {"location": "Rome"}}\n</tool_call>',
                                 '<tool_call>\n{"name": "get_current_temperature", "arguments": {"city": "Rome"}}\n</tool_call>',
                                 "<tool_call>not json</tool_call>", "I cannot tell."])
    result = function_calling(fake, tokenizer, "How warm is Rome?", tools=[get_current_temperature])
    assert result.answer == "I cannot tell."
    assert "error: no tool named 'get_temperature' (did you mean 'get_current_temperature'?)" in fake.prompts[1]
    assert "unknown ['city']; missing ['location']" in fake.prompts[2]
    assert "error: could not parse the tool call 'not json'" in fake.prompts[3]


def test_the_tool_loop_stops_at_the_step_limit(tokenizer):
    fake = FakeModel(tokenizer, [TEMPERATURE_CALL] * 3)
    result = function_calling(fake, tokenizer, "How warm is Paris?", tools=[get_current_temperature], max_steps=3)
    assert result.answer is None and len(fake.prompts) == 3
    assert result.trace[-1]["stopped"] == "no final answer after 3 steps"


def test_tool_calls_parse_with_arguments_as_a_json_string_and_an_unclosed_block():
    content, calls, errors = parse_tool_calls('Let me check.\n<tool_call>{"name": "f", "arguments": "{\\"x\\": 1}"}')
    assert (content, [(c.name, c.arguments) for c in calls], errors) == ("Let me check.", [("f", {"x": 1})], [])


def test_the_calculator_tool_evaluates_arithmetic_and_refuses_code():
    registry = ToolRegistry([calculator])
    assert registry.call("calculator", {"expression": "(12 + 5) * 3 - 2 ** 3"}) == "43"
    assert registry.call("calculator", {"expression": "__import__('os').system('true')"}).startswith(
        "error: ValueError: unsupported expression")


def test_react_runs_the_action_and_feeds_the_observation_back(tokenizer):
    fake = FakeModel(tokenizer, [' I need to add.\nAction: calculator\nAction Input: {"expression": "17 + 25"}\n',
                                 " I know the answer\nFinal Answer: 42"])
    result = react(fake, tokenizer, "What is 17 + 25?", tools=[calculator], chat=False)
    assert result.answer == "42"
    assert fake.prompts[1].endswith('Action Input: {"expression": "17 + 25"}\nObservation: 42\nThought:')
    assert fake.prompts[0].startswith("Answer the question. You can use these tools:\ncalculator(expression): Evaluate")
    assert result.trace[0]["observation"] == "42" and fake.calls[0]["stop_strings"] == ["Observation:"]


def test_react_takes_a_bare_input_for_a_one_argument_tool_and_stops_at_the_limit(tokenizer):
    fake = FakeModel(tokenizer, [" add\nAction: calculator\nAction Input: 2 + 2"] * 2)
    result = react(fake, tokenizer, "2 + 2?", tools=[calculator], max_steps=2, chat=False)
    assert [step["observation"] for step in result.trace[:2]] == ["4", "4"]
    assert result.answer is None and result.trace[-1] == {"stopped": "no final answer after 2 actions"}


def test_tot_keeps_the_best_chains_by_the_scorer(tokenizer):
    scores = {"start A": 0.9, "start B": 0.1, "then A": 0.5, "then B": 0.6}

    def scorer(question, steps):
        return scores[steps[-1]]

    chosen = {}
    for search in ("bfs", "beam"):
        fake = FakeModel(tokenizer, [["start A", "start B"], ["then A", "then A"], ["then B", "then B"], " 5."])
        result = tot(fake, tokenizer, "q?", breadth=2, branching=2, depth=2, search=search, scorer=scorer)
        chosen[search] = result.trace[-1]["best"]
        assert result.answer == "5" and fake.prompts[-1].endswith("Therefore, the answer is")
        assert result.trace[0]["kept"] == [["start A"], ["start B"]]
    assert chosen == {"bfs": ["start B", "then B"], "beam": ["start A", "then A"]}  # own score vs path sum


# ------------------------------------------------------------------------------------------------ tiny real model


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_each_strategy_runs_on_a_tiny_model_and_repeats_exactly(tiny, tokenizer, name):
    options = {"max_new_tokens": 12}
    options.update({"tools": [calculator]} if name in ("tools", "react") else {})
    options.update({"depth": 2, "branching": 2, "max_step_tokens": 6} if name == "tot" else {})
    options.update({"num_samples": 3} if name == "self-consistency" else {})
    first = run_strategy(name, tiny, tokenizer, QUESTION, **options)
    second = run_strategy(name, tiny, tokenizer, QUESTION, **options)
    assert first.strategy == name and first.trace
    assert 0 < first.generated_tokens
    assert (first.answer, first.text, first.generated_tokens) == (second.answer, second.text, second.generated_tokens)


def test_greedy_cot_equals_generate_and_counts_every_token(tiny, tokenizer):
    result = cot(tiny, tokenizer, QUESTION, max_new_tokens=10)
    prompt = tokenizer.apply_chat_template([{"role": "system", "content": BOOK_FORMAT_PROMPT},
                                            {"role": "user", "content": QUESTION}], tokenize=False,
                                           add_generation_prompt=True) + "<reasoning>\n"
    ids = torch.tensor([tokenizer(prompt, add_special_tokens=False).input_ids])
    reference = tiny.generate(input_ids=ids, max_new_tokens=10, do_sample=False, eos_token_id=tokenizer.eos_token_id,
                              pad_token_id=tokenizer.pad_token_id)[0, ids.shape[1]:].tolist()
    assert result.generated_tokens == len(reference) == 10  # the random model never says EOS in 10 tokens
    assert result.text == "<reasoning>\n" + tokenizer.decode(reference, skip_special_tokens=True)


def test_self_consistency_is_seeded_and_leaves_the_global_rng_alone(tiny, tokenizer):
    calls = []
    original = tiny.generate

    def counting(*args, **kwargs):
        calls.append(kwargs["num_return_sequences"])
        return original(*args, **kwargs)

    tiny.generate = counting
    try:
        torch.manual_seed(123)
        expected_next = torch.rand(1)
        torch.manual_seed(123)
        a = self_consistency(tiny, tokenizer, QUESTION, num_samples=4, seed=1, max_new_tokens=8)
        assert torch.equal(torch.rand(1), expected_next)
        b = self_consistency(tiny, tokenizer, QUESTION, num_samples=4, seed=1, max_new_tokens=8)
        c = self_consistency(tiny, tokenizer, QUESTION, num_samples=4, seed=2, max_new_tokens=8)
    finally:
        del tiny.generate
    assert calls == [4, 4, 4]
    samples = [[step["sample"] for step in r.trace[1:-1]] for r in (a, b, c)]
    assert samples[0] == samples[1] and samples[0] != samples[2]
    assert len(set(samples[0])) > 1  # sampled, not four copies of the greedy chain
    assert a.generated_tokens == 4 * 8


def test_the_models_own_tot_score_is_an_expected_label_value(tiny, tokenizer):
    value = model_scorer(tiny, tokenizer)(QUESTION, ["12 + 5 = 17"])
    assert 0.0 < value < 1.0


def test_generate_texts_cuts_at_a_stop_string(tokenizer):
    fake = FakeModel(tokenizer, ["Thought: add\nObservation: 4\nThought: more"])
    (text,), _ = generate_texts(fake, tokenizer, "x", stop_strings=["Observation:"])
    assert text == "Thought: add\nObservation:"


# ------------------------------------------------------------------------------------------------ command lines


@pytest.fixture(scope="module")
def tiny_folder(tiny, tokenizer, tmp_path_factory):
    folder = tmp_path_factory.mktemp("reasoning") / "tiny"
    tiny.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def run_cli(module, argv):
    parser = argparse.ArgumentParser()
    module.configure_parser(parser)
    return module.run_from_args(parser.parse_args(argv))


def test_eval_reasoning_prints_one_table_row_per_strategy(tiny_folder, capsys):
    assert run_cli(cli_eval, [str(tiny_folder), "--num_examples", "2", "--samples", "3", "--max_new_tokens", "8",
                              "--dataset_num_examples", "100"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[:2] == ["| strategy | accuracy | correct | tokens / problem | s / problem |", "|---|---:|---:|---:|---:|"]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
    assert [row[0] for row in rows] == ["greedy", "cot", "self-consistency (N=3)", "pal"]
    for name, accuracy, correct, tokens, _ in rows:
        assert 0.0 <= float(accuracy) <= 1.0 and correct.endswith("/2")
    assert float(rows[0][3]) <= 8 and float(rows[2][3]) == 3 * 8  # the random model never stops early when sampling


def test_eval_reasoning_json_holds_every_answer(tiny_folder, capsys):
    assert run_cli(cli_eval, [str(tiny_folder), "--num_examples", "2", "--strategies", "greedy,pal", "--json",
                              "--max_new_tokens", "4", "--dataset_num_examples", "100"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["results"]) == {"greedy", "pal"} and report["num_examples"] == 2
    assert all({"question", "gold", "greedy", "pal"} <= set(e) for e in report["examples"])


def test_accuracy_counts_answers_equal_to_the_gold_number(tokenizer):
    fake = FakeModel(tokenizer, ["print(40 + 2)", "print(1)"])
    rows = [{"prompt": "What is 40 + 2?", "answer": 42}, {"prompt": [{"role": "user", "content": "6 + 1?"}], "answer": 7}]
    evaluation = cli_eval.evaluate_strategies(fake, tokenizer, rows, {"pal": {}})
    assert evaluation["results"]["pal"]["accuracy"] == 0.5 and evaluation["results"]["pal"]["correct"] == 1
    assert [e["pal"] for e in evaluation["examples"]] == ["42", "1"] and fake.prompts[1].count("6 + 1?") == 1


def test_reason_prints_the_answer_as_json(tiny_folder, capsys):
    assert run_cli(cli_reason, [str(tiny_folder), "--strategy", "cot", "--prompt", QUESTION, "--max_new_tokens", "6",
                                "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["strategy"] == "cot" and report["generated_tokens"] == 6 and report["text"].startswith("<reasoning>")


def test_unknown_strategy_is_one_clear_error(tiny, tokenizer):
    with pytest.raises(ValueError, match="unknown strategy 'cott' \\(did you mean 'cot'\\?\\)"):
        run_strategy("cott", tiny, tokenizer, QUESTION)


def test_tools_resolve_by_builtin_name_or_dotted_path(tmp_path, monkeypatch):
    from hf_hundredpage.reasoning.tools import resolve_tools

    (tmp_path / "my_reasoning_tools.py").write_text(
        'def double(x: int) -> int:\n    """\n    Double a number.\n\n    Args:\n        x: The number\n    """\n'
        "    return 2 * x\n")
    monkeypatch.chdir(tmp_path)
    registry = ToolRegistry(resolve_tools(["calculator", "my_reasoning_tools.double"]))
    assert registry.call("double", {"x": 21}) == "42"
    with pytest.raises(ValueError, match="unknown tool 'calculatr'"):
        resolve_tools(["calculatr"])


def test_through_hf_hundredpage_main_a_bad_strategy_list_is_one_error_line(tiny_folder, capsys):
    from hf_hundredpage import cli

    assert {"reason", "eval-reasoning"} <= set(cli.COMMANDS)
    assert cli.main(["eval-reasoning", str(tiny_folder), "--strategies", "greedy,cott"]) == 2
    assert capsys.readouterr().err == ("hf-hundredpage eval-reasoning: error: --strategies 'greedy,cott': unknown "
                                       "['cott']; pass some of greedy, cot, self-consistency, pal, tools, react, tot\n")
    assert cli.main(["reason", str(tiny_folder), "--strategy", "pal", "--prompt", "1 + 1?", "--max_new_tokens", "3"]) == 0
    assert "strategy: pal, tokens generated: 3" in capsys.readouterr().out
