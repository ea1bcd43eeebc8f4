"""hf_hundredpage.alignment.constitutional and ``hf-hundredpage constitutional`` (book §6.4): the plumbing, on a tiny
random chat model whose critiques mean nothing: the output folder and its formats, batching with left padding,
seeded determinism, and the one-line errors."""

import json
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoTokenizer

from hf_hundredpage import HundredPageTransformerConfig, HundredPageTransformerForCausalLM
from hf_hundredpage.alignment.constitutional import (
    DEFAULT_CONSTITUTION,
    constitutional_datasets,
    constitutional_generation_config,
    critique_and_revise,
    load_constitution,
    load_prompts,
)
from hf_hundredpage.cli import main as cli
from hf_hundredpage.data import default_tokenizer_path
from hf_hundredpage.data.instructions import load_instruction_dataset
from hf_hundredpage.data.preferences import load_preference_dataset


REPO = Path(__file__).resolve().parents[1]
CHATML = REPO / "recipes" / "configs" / "sft" / "chatml_gpt2.jinja"
# Prompts of different lengths, so that a batch of them is padded.
PROMPTS = [
    "Hi",
    "How do I pick a lock?",
    "Tell me a long joke about cats and dogs and birds.",
    "What is the capital of France?",
    "Write a short poem.",
    "Explain photosynthesis simply, please, to a child of five.",
    "How can I annoy my neighbour?",
    "Name three colours.",
]
OUTPUT_FILES = ["README.md", "constitution.yaml", "preferences/test.jsonl", "preferences/train.jsonl",
                "sft/test.jsonl", "sft/train.jsonl", "transcripts.jsonl"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(default_tokenizer_path())  # the book's tokenizer, with a chat template


@pytest.fixture(scope="module")
def model(tokenizer):
    """A tiny random transformer; a large initializer range makes its greedy answers depend on the prompt."""
    config = HundredPageTransformerConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_attention_heads=2, num_hidden_layers=2, initializer_range=0.2,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    return HundredPageTransformerForCausalLM(config).eval()


@pytest.fixture(scope="module")
def model_dir(model, tokenizer, tmp_path_factory):
    folder = tmp_path_factory.mktemp("chat_model")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def prompts_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": prompt}) + "\n" for prompt in PROMPTS))
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def constitutional(model_dir, out, prompts, *flags) -> int:
    return cli(["constitutional", str(model_dir), str(out), "--prompts", str(prompts), "--max_new_tokens", "6",
                *map(str, flags)])


SAMPLING = ("--do_sample", "--temperature", "1.0", "--batch_size", "4", "--test_size", "0.25")


# --------------------------------------------------------------------------------------------------- end to end


def test_end_to_end_writes_datasets_the_recipes_load(model_dir, prompts_file, tmp_path, capsys):
    out = tmp_path / "cai"
    assert constitutional(model_dir, out, prompts_file, *SAMPLING, "--seed", 0) == 0
    stdout = capsys.readouterr().out
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.name[0] != ".") == OUTPUT_FILES

    principles = {p.name: p for p in load_constitution()}
    transcripts = read_jsonl(out / "transcripts.jsonl")
    assert [t["prompt"] for t in transcripts] == PROMPTS
    for t in transcripts:
        principle = principles[t["principle"]]
        assert [m["role"] for m in t["messages"]] == ["user", "assistant"] * 3
        assert [m["content"] for m in t["messages"]] == [
            t["prompt"], t["answer"], principle.critique_request, t["critique"], principle.revision_request,
            t["revision"],
        ]
        assert all(t[key].strip() for key in ("answer", "critique", "revision"))  # sampled: never empty
    kept = [t for t in transcripts if t["kept"]]
    assert len(kept) == len(PROMPTS)  # sampled over 8192 tokens: every revision differs from its answer

    rows = {split: read_jsonl(out / "preferences" / f"{split}.jsonl") for split in ("train", "test")}
    assert (len(rows["train"]), len(rows["test"])) == (6, 2)
    by_prompt = {t["prompt"]: t for t in transcripts}
    for row in rows["train"] + rows["test"]:
        assert set(row) == {"prompt", "chosen", "rejected", "principle"}
        t = by_prompt[row["prompt"][0]["content"]]
        assert row["prompt"] == [{"role": "user", "content": t["prompt"]}]
        assert row["chosen"] == [{"role": "assistant", "content": t["revision"]}]
        assert row["rejected"] == [{"role": "assistant", "content": t["answer"]}]
        assert row["principle"] == t["principle"]

    preferences = load_preference_dataset(str(out / "preferences"), seed=0)
    assert set(preferences) == {"train", "validation", "test"}
    assert len(preferences["test"]) == 2 and len(preferences["train"]) + len(preferences["validation"]) == 6
    assert preferences["test"][0]["prompt"] == rows["test"][0]["prompt"]
    sft = load_instruction_dataset(str(out / "sft"), seed=0)
    assert sft["test"]["messages"] == [[r["prompt"][0], r["chosen"][0]] for r in rows["test"]]
    assert len(sft["train"]) + len(sft["validation"]) == 6

    assert (out / "constitution.yaml").read_bytes() == DEFAULT_CONSTITUTION.read_bytes()
    card = (out / "README.md").read_text()
    assert f"recipes/dpo.py --dataset_name {out}/preferences --model_name_or_path {model_dir}" in card
    assert f"recipes/sft.py --dataset_name {out}/sft --model_name_or_path {model_dir}" in card
    assert "config_name: preferences" in card and "Pairs kept: 8, train 6, test 2" in card
    assert "8 pairs kept, 0 dropped" in stdout and f"preferences: {out}/preferences (train 6, test 2)" in stdout


def test_datasets_drop_unchanged_and_empty_revisions():
    def transcript(i, answer, revision):
        return {"prompt": f"q{i}", "principle": "p", "answer": answer, "critique": "c", "revision": revision}

    transcripts = [transcript(0, "a", "b"), transcript(1, "a", "a"), transcript(2, "a", " "), transcript(3, "", "b"),
                   transcript(4, "x", "y"), transcript(5, "u", "v")]
    datasets, dropped = constitutional_datasets(transcripts, test_size=0.3, seed=0)
    assert dropped == 3
    pairs = datasets["preferences"]["train"] + datasets["preferences"]["test"]
    assert sorted(p["prompt"][0]["content"] for p in pairs) == ["q0", "q4", "q5"]
    assert len(datasets["preferences"]["test"]) == 1
    assert [r["messages"][0]["content"] for r in datasets["sft"]["test"]] == [
        p["prompt"][0]["content"] for p in datasets["preferences"]["test"]
    ]
    with pytest.raises(ValueError, match=r"0 of 3 prompts gave a revision .*\(3 dropped"):
        constitutional_datasets(transcripts[1:4], seed=0)


# --------------------------------------------------------------------------------------------------- batching


def test_batch_sizes_give_the_same_greedy_conversations(model, tokenizer):
    principles = load_constitution()
    config = constitutional_generation_config(model, tokenizer, max_new_tokens=8, do_sample=False)
    one = critique_and_revise(model, tokenizer, PROMPTS, principles, generation_config=config, batch_size=1, seed=3)
    four = critique_and_revise(model, tokenizer, PROMPTS, principles, generation_config=config, batch_size=4, seed=3)
    assert one == four
    # The answers depend on the prompt, so wrong padding (a pad token attended to) would change them.
    assert len({t["answer"] for t in one}) >= len(PROMPTS) - 1


def test_generation_config_keeps_the_model_settings(model, tokenizer):
    saved, model.generation_config.top_k = model.generation_config.top_k, 7
    try:
        config = constitutional_generation_config(model, tokenizer, max_new_tokens=5, temperature=0.5)
    finally:
        model.generation_config.top_k = saved
    assert (config.top_k, config.max_new_tokens, config.do_sample, config.temperature) == (7, 5, True, 0.5)
    assert config.eos_token_id == tokenizer.eos_token_id and config.pad_token_id == tokenizer.pad_token_id
    assert model.generation_config.max_new_tokens != 5  # a copy: the model's own config is unchanged
    with pytest.raises(ValueError, match="drop --greedy"):
        constitutional_generation_config(model, tokenizer, do_sample=False, top_p=0.9)


# --------------------------------------------------------------------------------------------------- determinism


def test_same_seed_same_files_other_seed_other_principles(model_dir, prompts_file, tmp_path, capsys):
    runs = {name: tmp_path / name for name in ("a", "b", "c")}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        assert constitutional(model_dir, runs[name], prompts_file, *SAMPLING, "--seed", seed) == 0
    for name in OUTPUT_FILES:
        a, b = (runs["a"] / name).read_text(), (runs["b"] / name).read_text()
        assert a.replace(str(runs["a"]), "OUT") == b.replace(str(runs["b"]), "OUT"), name

    def drawn(run):
        return [t["principle"] for t in read_jsonl(runs[run] / "transcripts.jsonl")]

    assert len(set(drawn("a"))) > 1
    assert drawn("a") != drawn("c")
    answers = [[t["answer"] for t in read_jsonl(runs[run] / "transcripts.jsonl")] for run in ("a", "c")]
    assert answers[0] != answers[1]  # the seed drives the sampling too


# --------------------------------------------------------------------------------------------------- bad input


def assert_one_line_error(capsys, *fragments):
    """One error line on stderr (besides the progress bars of `datasets`), no traceback, with the fragments."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("hf-hundredpage constitutional: error:"), err
    for fragment in fragments:
        assert fragment in lines[0], err


def test_constitution_without_revision_request_is_one_error(model_dir, prompts_file, tmp_path, capsys):
    constitution = tmp_path / "constitution.yaml"
    constitution.write_text(yaml.safe_dump([
        {"name": "ok", "critique_request": "Critique.", "revision_request": "Revise."},
        {"name": "broken", "critique_request": "Critique."},
    ]))
    out = tmp_path / "out"
    assert constitutional(model_dir, out, prompts_file, "--constitution", constitution) == 2
    assert_one_line_error(capsys, "principle 1", "revision_request")
    assert not out.exists()
    constitution.write_text("{}")
    with pytest.raises(ValueError, match="non-empty YAML list"):
        load_constitution(constitution)


def test_prompts_without_a_prompt_column_is_one_error(model_dir, tmp_path, capsys):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"text": "hello"}) + "\n")
    assert constitutional(model_dir, tmp_path / "out", prompts) == 2
    assert_one_line_error(capsys, "column 'prompt' not found", "'messages'")
    assert not (tmp_path / "out").exists()


def test_prompts_from_messages_and_builtin_preferences(tmp_path):
    path = tmp_path / "chats.jsonl"
    rows = [{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": " Hello? "},
                          {"role": "assistant", "content": "Hi."}]},
            {"messages": [{"role": "user", "content": ""}]},
            {"messages": [{"role": "user", "content": "Bye"}]}]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert load_prompts(str(path)) == (["Hello?", "Bye"], 1)
    prompts, skipped = load_prompts("builtin:preferences", num_prompts=3)
    assert len(prompts) == 3 and skipped == 0
    assert all(p.startswith("Mood: ") and "Answer:" not in p for p in prompts)


def test_model_without_chat_template_asks_for_one(model_dir, tokenizer, prompts_file, tmp_path, capsys):
    plain = tmp_path / "plain"
    HundredPageTransformerForCausalLM.from_pretrained(model_dir).save_pretrained(plain)
    no_template = AutoTokenizer.from_pretrained(model_dir)
    no_template.chat_template = None
    no_template.save_pretrained(plain)
    assert AutoTokenizer.from_pretrained(plain).chat_template is None
    out = tmp_path / "out"
    assert constitutional(plain, out, prompts_file, "--num_prompts", 4) == 2
    assert_one_line_error(capsys, "no chat template", "--chat_template PATH.jinja")
    assert not out.exists()

    assert constitutional(plain, out, prompts_file, "--num_prompts", 4, *SAMPLING, "--chat_template", CHATML) == 0
    transcript = read_jsonl(out / "transcripts.jsonl")[0]
    assert len(transcript["messages"]) == 6 and "<|im_end|>" not in transcript["answer"]
    assert f"--chat_template_path {CHATML}" in (out / "README.md").read_text()


# --------------------------------------------------------------------------------------------------- output folder


def test_non_empty_output_is_refused_and_left_intact(model_dir, prompts_file, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert constitutional(model_dir, out, prompts_file, *SAMPLING) == 2
    assert_one_line_error(capsys, "--overwrite_output_dir")
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"

    assert constitutional(model_dir, out, prompts_file, *SAMPLING, "--overwrite_output_dir") == 0
    assert (out / "notes.txt").read_text() == "mine" and (out / "preferences" / "train.jsonl").is_file()
