"""builtin:preferences (the rule its SFT data does not carry), the preference loader's checks, the preference-rate rule
and the max-length check of preference training (book §6.4)."""

import json

import pytest
import torch
from transformers import AutoTokenizer

from hf_hundredpage import HundredPageTransformerConfig, HundredPageTransformerForCausalLM
from hf_hundredpage.alignment import check_preference_max_length, evaluate_preference_rate, preference_lengths
from hf_hundredpage.alignment.preference_rate import classify_completion
from hf_hundredpage.data import default_tokenizer_path
from hf_hundredpage.data.builtin.preferences import make_preference_dataset
from hf_hundredpage.data.preferences import load_preference_dataset
from hf_hundredpage.data.sources import load_source


def test_builtin_preferences_prefer_the_mood_and_the_sft_data_does_not():
    pairs = make_preference_dataset(400, seed=3)
    sft = make_preference_dataset(400, seed=3, config="sft")
    assert {k: len(v) for k, v in pairs.items()} == {"train": 320, "validation": 40, "test": 40}
    for row in pairs["train"]:
        assert row["chosen"].startswith(" Great" if row["mood"] == "happy" else " Poor")
        assert row["rejected"].split()[0] != row["chosen"].split()[0]  # the answers differ at their start
    assert pairs["train"]["prompt"] == sft["train"]["prompt"]  # same prompts in every configuration
    happy_great = [r["completion"].startswith(" Great") for r in sft["train"] if r["mood"] == "happy"]
    assert 0.35 < sum(happy_great) / len(happy_great) < 0.65  # the SFT answer ignores the mood
    assert sum(r["mood"] == "happy" for r in pairs["test"]) == 20  # balanced: mood-blind rules score 0.5
    assert not set(pairs["test"]["prompt"]) & set(pairs["train"]["prompt"])  # held-out prompts
    assert make_preference_dataset(400, seed=3)["train"][:5] == pairs["train"][:5]


def test_builtin_preferences_configurations():
    conversational = load_source("builtin:preferences", "pairs-conversational", builtin_options={"num_examples": 30})
    row = conversational["train"][0]
    assert row["prompt"][0]["role"] == "user" and row["chosen"][0]["role"] == "assistant"
    messages = load_source("builtin:preferences", "sft-messages", builtin_options={"num_examples": 30})["train"][0]
    assert [m["role"] for m in messages["messages"]] == ["user", "assistant"]
    with pytest.raises(ValueError, match="dataset_config must be one of"):
        load_source("builtin:preferences", "nope")


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_loader_reads_a_file_and_carves_splits(tmp_path):
    rows = [{"prompt": f"Q{i}?", "chosen": f" yes {i}", "rejected": f" no {i}"} for i in range(30)]
    data = load_preference_dataset(str(write_jsonl(tmp_path / "prefs.jsonl", rows)), seed=1)
    assert set(data) == {"train", "validation", "test"} and sum(len(v) for v in data.values()) == 30
    # implicit prompt: conversations that share their first turn get TRL's extracted prompt
    conv = [{"chosen": [{"role": "user", "content": f"Q{i}"}, {"role": "assistant", "content": "yes"}],
             "rejected": [{"role": "user", "content": f"Q{i}"}, {"role": "assistant", "content": "no"}]} for i in range(10)]
    data = load_preference_dataset(str(write_jsonl(tmp_path / "conv.jsonl", conv)))
    assert data["train"][0]["prompt"][0]["role"] == "user" and len(data["train"][0]["chosen"]) == 1


@pytest.mark.parametrize("rows,column", [
    ([{"prompt": "Q", "answer": " a", "rejected": " b"}] * 5, "'chosen' not found"),
    ([{"prompt": "Q", "chosen": " a", "rejected": " b"}] * 4 + [{"prompt": "Q", "chosen": "  ", "rejected": " b"}],
     "column 'chosen' is empty"),
    ([{"prompt": f"Q{i}", "chosen": f" a{i}", "rejected": f" a{i}"} for i in range(5)],
     "column 'rejected' equals column 'chosen' on every row"),
], ids=["missing_column", "empty_chosen", "chosen_equals_rejected"])
def test_bad_preference_data_is_one_error_naming_the_column(rows, column, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    for split in ("train", "validation", "test"):
        write_jsonl(folder / f"{split}.jsonl", rows)
    with pytest.raises(ValueError, match=column):
        load_preference_dataset(str(folder))


def test_preference_rate_rule():
    assert classify_completion([5, 6, 7], chosen=[5, 6, 7], rejected=[8, 6, 7]) == "chosen"
    assert classify_completion([8, 6], chosen=[5, 6, 7], rejected=[8, 6, 7]) == "neither"  # stopped too early
    assert classify_completion([8, 6, 7, 9], chosen=[5, 6, 7], rejected=[8, 6, 7]) == "rejected"
    long = list(range(20))
    # only the first 8 tokens count ...
    assert classify_completion(long[:8] + [99], chosen=long, rejected=[50] + long[1:]) == "chosen"
    # ... unless the answers share more: then up to the first token where they differ
    shared = long[:10]
    assert classify_completion(shared + [1], chosen=shared + [1, 2], rejected=shared + [3]) == "chosen"
    assert classify_completion(shared + [3], chosen=shared + [1, 2], rejected=shared + [3]) == "rejected"
    assert classify_completion(shared, chosen=shared + [1], rejected=shared + [3]) == "neither"
    # one answer a prefix of the other: the longer match wins
    assert classify_completion([1, 2, 3], chosen=[1, 2], rejected=[1, 2, 3]) == "rejected"
    assert classify_completion([1, 2, 4], chosen=[1, 2], rejected=[1, 2, 3]) == "chosen"


@pytest.fixture(scope="module")
def tiny():
    tokenizer = AutoTokenizer.from_pretrained(default_tokenizer_path())
    torch.manual_seed(0)
    model = HundredPageTransformerForCausalLM(HundredPageTransformerConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_attention_heads=2, num_hidden_layers=1, max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id))
    return model, tokenizer


@pytest.mark.parametrize("config", ["pairs", "pairs-conversational"])
def test_preference_rate_of_a_model(config, tiny):
    model, tokenizer = tiny
    test = make_preference_dataset(60, seed=0, config=config)["test"]
    result = evaluate_preference_rate(model, tokenizer, test)
    assert result["num_examples"] == 6 and len(result["predictions"]) == 6
    assert result["chosen"] + result["rejected"] + result["neither"] == pytest.approx(1.0)
    assert result["neither"] == 1.0  # an untrained model says neither answer


def test_preference_max_length_grows_or_refuses(tiny):
    _, tokenizer = tiny
    data = make_preference_dataset(30, seed=0)
    lengths = preference_lengths(tokenizer, data["train"])
    assert len(lengths) == 2 * len(data["train"])

    class Args:
        max_length = 4

    args = Args()
    assert "max_length raised from 4 to" in check_preference_max_length(args, tokenizer, data, model_max=64)
    assert args.max_length == max(preference_lengths(tokenizer, data["train"]) + preference_lengths(tokenizer, data["validation"]))
    args.max_length = 4
    with pytest.raises(ValueError, match="exceeds the model's 8 positions"):
        check_preference_max_length(args, tokenizer, data, model_max=8)
