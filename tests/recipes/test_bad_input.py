"""Every recipe and every folder-writing ``hf-hundredpage`` subcommand against the same bad inputs: non-zero exit, one
line that names what to fix, no traceback, and the output folder byte-identical to before. Plus the output-folder
rules (user files survive an overwrite, a failed run leaves the old result) and the loss mask / truncation checks of
the finetuning recipes. New recipes join the tables when they land."""

import hashlib
import json
import time
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from hf_hundredpage import HundredPageTransformerConfig, HundredPageTransformerForCausalLM
from hf_hundredpage.cli import main as cli
from hf_hundredpage.data import default_tokenizer_path
from hf_hundredpage.data.builtin.instructions import save_instruction_dataset
from hf_hundredpage.training.run import MANIFEST

from .helpers import REPO, load_recipe, recipe_command, run


pytestmark = pytest.mark.usefixtures("one_thread")

RECIPES = {name: load_recipe(name) for name in ("pretrain", "sft", "classify", "dpo", "kto", "orpo", "reward")}
CONFIGS = {
    "pretrain": REPO / "recipes/configs/pretrain/tiny_test.yaml",
    "sft": REPO / "recipes/configs/sft/instructions_tiny.yaml",
    "classify": REPO / "recipes/configs/classify/emotions_tiny.yaml",
    "dpo": REPO / "recipes/configs/dpo/preferences_tiny.yaml",
    "kto": REPO / "recipes/configs/kto/preferences_tiny.yaml",
    "orpo": REPO / "recipes/configs/orpo/preferences_tiny.yaml",
    "reward": REPO / "recipes/configs/reward/preferences_tiny.yaml",
}
DATASET_FILE = {"pretrain": "text", "sft": "prompt", "classify": "text", "dpo": "prompt", "kto": "prompt",
                "orpo": "prompt", "reward": "prompt"}


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bad_input") / "model"
    tokenizer = AutoTokenizer.from_pretrained(default_tokenizer_path())
    HundredPageTransformerForCausalLM(HundredPageTransformerConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_attention_heads=2, num_hidden_layers=1, max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def snapshot(folder: Path) -> dict[str, str]:
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


def busy_folder(tmp_path: Path) -> Path:
    out = tmp_path / "busy"
    (out / "sub").mkdir(parents=True)
    (out / "important.txt").write_text("precious")
    (out / "sub" / "data.csv").write_text("a,b\n1,2\n")
    return out


def base_args(recipe: str, model: Path) -> list[str]:
    args = ["--config", str(CONFIGS[recipe]), "--disable_tqdm", "true", "--report_to", "none"]
    return args + ([] if recipe == "pretrain" else ["--model_name_or_path", str(model)])


# (case id, extra args builder (tmp_path, recipe) -> args, expected text in the error line)
CASES = [
    ("missing_model", lambda tmp, r: ["--model_name_or_path", str(tmp / "out" / "nope")], "does not exist"),
    ("empty_dataset", lambda tmp, r: ["--dataset_name", str(_empty(tmp))], "is empty"),
    ("missing_dataset", lambda tmp, r: ["--dataset_name", str(tmp / "missing.jsonl")], "o such file or directory"),
    ("wrong_column", lambda tmp, r: _wrong_column(tmp, r), "column"),
    ("negative_max_steps", lambda tmp, r: ["--max_steps", "-5"], "max_steps=-5 is out of range"),
    ("zero_batch", lambda tmp, r: ["--per_device_train_batch_size", "0"], "per_device_train_batch_size=0 is out of range"),
    ("unknown_flag", lambda tmp, r: ["--learning_rat", "1e-3"], "did you mean --learning_rate"),
    ("no_overwrite", lambda tmp, r: ["--overwrite_output_dir", "false"], "is not empty: pass --overwrite_output_dir"),
]


def _wrong_column(tmp: Path, recipe: str) -> list[str]:
    """A data file whose columns are not the ones the recipe reads."""
    rows = [json.dumps({"body": f"some text {i}", "category": "x", "question": "q"}) for i in range(12)]
    (tmp / "wrong.jsonl").write_text("\n".join(rows) + "\n")
    return ["--dataset_name", str(tmp / "wrong.jsonl")]


def _empty(tmp: Path) -> Path:
    (tmp / "empty.jsonl").write_text("")
    return tmp / "empty.jsonl"


@pytest.mark.parametrize("recipe", sorted(RECIPES))
@pytest.mark.parametrize("case,extra,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_touches_nothing(recipe, case, extra, expected, model, tmp_path, capsys):
    out = busy_folder(tmp_path)
    before = snapshot(out)
    code = RECIPES[recipe].main([*base_args(recipe, model), "--output_dir", str(out), "--overwrite_output_dir", "true",
                                 *extra(tmp_path, recipe)])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith(f"{recipe}.py: error: ")]
    assert code == 2 and len(err) == 1 and expected in err[0], err
    assert snapshot(out) == before
    assert not list(tmp_path.glob(".busy*"))  # no staging folder left behind


@pytest.mark.parametrize("recipe", sorted(RECIPES))
@pytest.mark.parametrize("output", [".", "~", "project"])
def test_current_home_and_project_folders_are_refused(recipe, output, model, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "pyproject.toml").write_text("[project]\n")
    before = snapshot(tmp_path)
    code = RECIPES[recipe].main([*base_args(recipe, model), "--output_dir", output, "--overwrite_output_dir", "true"])
    err = capsys.readouterr().err
    assert code == 2 and ("current, home or root folder" in err or "holds pyproject.toml" in err), err
    assert snapshot(tmp_path) == before


def test_overwrite_keeps_user_files_and_replaces_only_our_results(tmp_path, capsys):
    pretrain = RECIPES["pretrain"]
    out = tmp_path / "run"
    args = [*base_args("pretrain", None), "--output_dir", str(out), "--max_steps", "2", "--eval_steps", "2",
            "--save_steps", "2", "--eval_max_documents", "4", "--sample_prompts", "The", "--sample_max_new_tokens", "2"]
    assert pretrain.main(args) == 0
    first = json.loads((out / MANIFEST).read_text())["files"]
    assert "model.safetensors" in first and "metrics.json" in first
    (out / "important.txt").write_text("precious")
    (out / "sub").mkdir()
    (out / "sub" / "data.csv").write_text("a,b\n")
    (out / "checkpoint-999").mkdir()  # looks like ours, but no manifest lists it
    old_weights = (out / "model.safetensors").read_bytes()

    # a failed overwrite (bad value found after the data is loaded) leaves everything as it was
    before = snapshot(out)
    assert pretrain.main([*args, "--overwrite_output_dir", "true", "--text_column", "body"]) == 2
    assert snapshot(out) == before

    assert pretrain.main([*args, "--overwrite_output_dir", "true", "--seed", "7"]) == 0
    assert (out / "important.txt").read_text() == "precious" and (out / "sub" / "data.csv").is_file()
    assert (out / "checkpoint-999").is_dir()
    assert (out / "model.safetensors").read_bytes() != old_weights
    assert not list(tmp_path.glob(".run*"))


def test_accelerate_launch_quiet_shows_one_error_line(tmp_path):
    out = tmp_path / "o"
    result = run(recipe_command("pretrain", "--config", CONFIGS["pretrain"], "--output_dir", out, "--max_steps", "-5",
                                launcher=["accelerate", "launch", "-q", "--num_processes", "1", "--cpu"]))
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    ours = [line for line in lines if "error" in line.lower() or "Traceback" in line]
    assert result.returncode != 0
    # accelerate's own notice about launcher defaults may come first; the only error line is ours, and it is last
    assert ours == lines[-1:] == ["pretrain.py: error: max_steps=-5 is out of range: pass -1 (train for "
                                  "num_train_epochs) or a positive number of steps"], result.stderr
    assert not out.exists()


@pytest.mark.parametrize("argv_of", [
    lambda tmp, m: ["merge-adapter", str(tmp / "nope"), str(tmp / "busy")],
    lambda tmp, m: ["evaluate", str(tmp / "out" / "nope")],
    lambda tmp, m: ["train-tokenizer", "--dataset_name", str(_empty(tmp)), "--output_dir", str(tmp / "busy"),
                    "--overwrite_output_dir"],
    lambda tmp, m: ["convert-book", str(tmp / "nope.pth"), str(tmp / "busy")],
    lambda tmp, m: ["generate", str(tmp / "out" / "nope"), "--prompt", "x"],
], ids=["merge-adapter", "evaluate", "train-tokenizer", "convert-book", "generate"])
def test_subcommands_bad_input_is_one_line_and_touches_nothing(argv_of, model, tmp_path, capsys):
    (tmp_path / "out").mkdir()
    out = busy_folder(tmp_path)
    before = snapshot(out)
    argv = argv_of(tmp_path, model)
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"hf-hundredpage {argv[0]}: error: "), err
    assert snapshot(out) == before


def test_sft_loss_follows_prompt_completion_data(model, tmp_path, capsys):
    """The shipped config on prompt-completion data trains (completion-only loss); forcing assistant_only_loss on
    it is one clear error."""
    data = tmp_path / "pc"
    save_instruction_dataset(data, n=60, seed=1, format="prompt-completion", tasks=["copy"])
    sft = RECIPES["sft"]
    common = [*base_args("sft", model), "--dataset_name", str(data), "--max_steps", "1", "--eval_steps", "1",
              "--save_steps", "1", "--eval_max_examples", "2", "--eval_max_new_tokens", "2"]
    assert sft.main([*common, "--output_dir", str(tmp_path / "ok")]) == 0
    assert "loss: on the completion only (prompt-completion data)" in capsys.readouterr().out
    assert sft.main([*common, "--output_dir", str(tmp_path / "bad"), "--assistant_only_loss", "true"]) == 2
    assert "assistant_only_loss needs conversational (messages) data" in capsys.readouterr().err


def test_label_generation_never_truncates_the_label(model, tmp_path, capsys):
    classify = RECIPES["classify"]
    code = classify.main([*base_args("classify", model), "--method", "generation", "--max_length", "8",
                          "--max_steps", "1", "--max_train_samples", "16", "--max_eval_samples", "8",
                          "--output_dir", str(tmp_path / "gen")])
    assert code == 0
    out = capsys.readouterr().out
    assert "max_length raised from 8 to" in out and "their answers would have been cut" in out


def test_subcommand_overwrite_keeps_user_files(tmp_path, capsys):
    """Commands follow the recipes' rule: an overwrite replaces their own results and nothing else."""
    out = busy_folder(tmp_path)
    argv = ["train-tokenizer", "--max_samples", "200", "--vocab_size", "400", "--output_dir", str(out)]
    assert cli(argv) == 2 and "is not empty" in capsys.readouterr().err
    assert cli([*argv, "--overwrite_output_dir"]) == 0
    assert (out / "important.txt").read_text() == "precious" and (out / "sub" / "data.csv").is_file()
    assert (out / "tokenizer.json").is_file() and "tokenizer.json" in json.loads((out / MANIFEST).read_text())["files"]
    assert cli([*argv, "--overwrite_output_dir", "--vocab_size", "300"]) == 0
    assert (out / "important.txt").read_text() == "precious" and not list(tmp_path.glob(".busy*"))


@pytest.mark.parametrize("recipe", ["dpo", "kto", "orpo", "reward"])
@pytest.mark.parametrize("rows,expected", [
    ([{"prompt": "Q", "answer": " a", "rejected": " b"}] * 6, "column 'chosen' not found in the train split"),
    ([{"prompt": f"Q{i}", "chosen": "", "rejected": " b"} for i in range(6)], "column 'chosen' is empty in 4 of 4 rows of the train split"),
    ([{"prompt": f"Q{i}", "chosen": f" a{i}", "rejected": f" a{i}"} for i in range(6)],
     "column 'rejected' equals column 'chosen' on every row"),
], ids=["missing_column", "empty_chosen", "chosen_equals_rejected"])
def test_bad_preference_data_is_one_line_naming_the_column(recipe, rows, expected, model, tmp_path, capsys):
    data = tmp_path / "prefs.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = busy_folder(tmp_path)
    before = snapshot(out)
    code = RECIPES[recipe].main([*base_args(recipe, model), "--output_dir", str(out), "--overwrite_output_dir", "true",
                                 "--dataset_name", str(data)])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith(f"{recipe}.py: error: ")]
    assert code == 2 and len(err) == 1 and expected in err[0], err
    assert snapshot(out) == before


@pytest.mark.parametrize("recipe", ["sft", "classify"])
def test_relative_model_path_under_an_existing_folder_fails_at_once(recipe, tmp_path, monkeypatch, capsys):
    """`out/nope` (or the classify config's default `out/pretrain-tiny`) beside an existing `out/` is a local path,
    not a Hub id to retry for a minute."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    args = [a for a in base_args(recipe, tmp_path) if a != str(tmp_path)]
    args = args[:-1] if args[-1] == "--model_name_or_path" else args
    if recipe == "sft":
        args += ["--model_name_or_path", "out/nope"]
    start = time.perf_counter()
    assert RECIPES[recipe].main([*args, "--output_dir", "run"]) == 2
    err = capsys.readouterr().err
    expected = "out/nope" if recipe == "sft" else "out/pretrain-tiny"
    assert f"model folder {expected} does not exist" in err and time.perf_counter() - start < 30
    assert not (tmp_path / "run").exists()
