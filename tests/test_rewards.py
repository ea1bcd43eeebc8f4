"""Reward functions of hf_hundredpage.reasoning (book §6.5) on hand-made completions: exact values for the built-ins,
answer extraction from text and conversational completions, the resolver (built-in names, a user's dotted path,
one-line errors) and the length check at the first call."""

import math

import pytest

from hf_hundredpage.reasoning.rewards import (
    CheckedReward,
    LengthReward,
    correctness_reward,
    extract_answer,
    format_reward,
    parse_number,
    resolve_reward_funcs,
)


GOOD = "<reasoning>\n12 + 5 = 17\n</reasoning>\n<answer>\n17\n</answer>"


def chat(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


@pytest.mark.parametrize("completion,expected", [
    (GOOD, 17),
    ("<answer>1,234</answer>", 1234),
    ("<answer>The answer is 42.</answer>", 42),
    ("<answer>7</answer> then <answer>8</answer>", 8),  # the last answer tag
    ("12 + 5 = 17, so 17", 17),  # no tag: the last number of the text
    ("<answer>-3</answer>", -3),
    ("<answer>14.0</answer>", 14),
    ("no number at all", None),
    (chat(GOOD), 17),
    ([{"role": "assistant", "content": [{"type": "text", "text": "<answer>9</answer>"}]}], 9),
])
def test_extract_answer(completion, expected):
    assert extract_answer(completion) == expected


def test_parse_number_of_gold_answers():
    assert [parse_number(x) for x in (17, "17", "#### 72", 3.0, None, True)] == [17, 17, 72, 3, None, None]


def test_correctness_reward_exact_values():
    completions = [GOOD, "<answer>18</answer>", "so it is 17", "", chat(GOOD)]
    assert correctness_reward(completions, answer=[17, 17, "17", 17, 17]) == [1.0, 0.0, 1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="needs an 'answer' column"):
        correctness_reward(completions)


def test_format_reward_exact_values():
    completions = [
        GOOD,
        "  <reasoning>x</reasoning><answer>1</answer>\n",  # whitespace around the tags is fine
        "<reasoning>x</reasoning> text <answer>1</answer>",  # text between: all four tags, not the format
        "<answer>1</answer>",
        "<reasoning>x</reasoning>",
        "plain 17",
        GOOD + GOOD,  # twice: not the format
        chat(GOOD),
    ]
    assert format_reward(completions) == [1.0, 1.0, 0.8, 0.4, 0.4, 0.0, 0.8, 1.0]


def test_length_reward_exact_values():
    reward = LengthReward(min_tokens=4, max_tokens=8)
    ids = [[0] * n for n in (1, 4, 8, 10, 16, 40)]
    assert reward(["x"] * 6, completion_ids=ids) == [-0.75, 0.0, 0.0, -0.25, -1.0, -1.0]
    assert LengthReward(max_tokens=2)(["a b c d", "a"]) == [-1.0, 0.0]  # words without completion_ids
    with pytest.raises(ValueError, match="above max_tokens"):
        LengthReward(min_tokens=9, max_tokens=8)


def test_resolver_builtins_weights_and_names():
    funcs = resolve_reward_funcs(["correctness", "format", "length"], [2.0, 1.0, 0.5], max_tokens=3)
    assert [f.__name__ for f in funcs] == ["correctness", "format", "length"]
    assert funcs[2](["a"], completion_ids=[[1, 2, 3, 4, 5, 6]]) == [-1.0]
    with pytest.raises(ValueError, match=r"reward_weights has 1 values for 2 reward_funcs"):
        resolve_reward_funcs(["correctness", "format"], [1.0])
    with pytest.raises(ValueError, match=r"unknown reward function 'corectness' \(did you mean 'correctness'\?\)"):
        resolve_reward_funcs(["corectness"])


def test_dotted_user_reward_from_the_current_folder(tmp_path, monkeypatch):
    (tmp_path / "my_rewards_a.py").write_text(
        "def exact(completions, answer, **kwargs):\n"
        "    return [1.0 if c.strip() == str(a) else 0.0 for c, a in zip(completions, answer)]\n"
        "NOT_CALLABLE = 3\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (exact,) = resolve_reward_funcs(["my_rewards_a.exact"])
    assert exact.__name__ == "my_rewards_a.exact"
    assert exact(["5", " 6 ", "7"], answer=[5, 6, 8], prompts=["p"] * 3) == [1.0, 1.0, 0.0]
    with pytest.raises(ValueError, match=r"'my_rewards_a.NOT_CALLABLE' is a int, not a function"):
        resolve_reward_funcs(["my_rewards_a.NOT_CALLABLE"])
    with pytest.raises(ValueError, match=r"module 'my_rewards_a' has no 'missing'"):
        resolve_reward_funcs(["my_rewards_a.missing"])
    with pytest.raises(ValueError, match=r"reward function 'nope_rewards.exact': cannot import 'nope_rewards' "
                                         r"\(ModuleNotFoundError"):
        resolve_reward_funcs(["nope_rewards.exact"])


def test_wrong_length_or_type_is_one_error_at_the_first_call():
    short = CheckedReward(lambda completions, **kw: [1.0] * (len(completions) - 1), "short")
    with pytest.raises(ValueError, match=r"reward function 'short' returned 2 rewards for 3 completions"):
        short(["a", "b", "c"])
    with pytest.raises(ValueError, match=r"returned float, not a list"):
        CheckedReward(lambda completions, **kw: 1.0, "scalar")(["a"])
    with pytest.raises(ValueError, match=r"returned 'x': rewards must be floats"):
        CheckedReward(lambda completions, **kw: ["x"], "text")(["a"])
    ok = CheckedReward(lambda completions, **kw: [1, None], "ok")(["a", "b"])
    assert ok == [1.0, None] and not any(isinstance(r, float) and math.isnan(r) for r in ok)
