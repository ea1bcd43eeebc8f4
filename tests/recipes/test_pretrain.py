"""recipes/pretrain.py end to end: the output contract, bad input, resume after SIGKILL, 2-process DDP."""

import json
import shutil
import signal
import subprocess
import time

import pytest
import torch
from huggingface_hub import ModelCard
from transformers import AutoModelForCausalLM

from .helpers import REPO, load_recipe, recipe_command, run, run_env, weights


TINY = REPO / "recipes" / "configs" / "pretrain" / "tiny_test.yaml"
pretrain = load_recipe("pretrain")

EXPECTED_FILES = {
    "model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
    "metrics.json", "loss_curve.png", "README.md", "samples.json",
}
METRIC_KEYS = {
    "eval_loss", "eval_perplexity", "eval_bits_per_byte", "ngram_eval_perplexity", "ngram_eval_bits_per_byte",
    "train_runtime", "train_tokens_per_second",
}


@pytest.mark.parametrize(
    "model_type,extra",
    [("transformer", []), ("rnn", ["--model_type", "rnn", "--packing", "false", "--hidden_size", "24"])],
)
def test_end_to_end_writes_the_whole_contract(tmp_path, model_type, extra, capsys):
    out = tmp_path / "run"
    assert pretrain.main(["--config", str(TINY), "--output_dir", str(out), "--disable_tqdm", "true", *extra]) == 0
    printed = capsys.readouterr().out
    assert "3-gram KN baseline" in printed and str(out) in printed
    files = {p.name for p in out.iterdir()}
    assert EXPECTED_FILES <= files
    assert {f"configuration_{model_type}.py", f"modeling_{model_type}.py"} <= files
    assert {"checkpoint-3", "checkpoint-6"} <= files and ".staging" not in files

    metrics = json.loads((out / "metrics.json").read_text())
    assert METRIC_KEYS <= set(metrics)
    assert metrics["eval_perplexity"] == pytest.approx(torch.tensor(metrics["eval_loss"]).exp().item(), rel=1e-6)
    assert metrics["eval_tokens"] == metrics["ngram_eval_tokens"] and metrics["eval_bytes"] == metrics["ngram_eval_bytes"]
    assert metrics["train_steps"] == 6 and metrics["train_tokens_per_second"] > 0

    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == f"hundredpage_{model_type}" and "AutoModelForCausalLM" in config["auto_map"]
    generation = json.loads((out / "generation_config.json").read_text())
    assert generation["eos_token_id"] == 1 and generation["pad_token_id"] == 2
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.model_type == f"hundredpage_{model_type}"

    card = ModelCard.load(out / "README.md")
    results = card.data.to_dict()["model-index"][0]["results"]
    values = {m["type"]: m["value"] for r in results for m in r["metrics"]}
    assert values["perplexity"] == pytest.approx(metrics["eval_perplexity"], rel=1e-3)
    assert "accelerate launch recipes/pretrain.py" in card.text and "loss_curve.png" in card.text


def test_refuses_non_empty_output_dir(tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert pretrain.main(["--config", str(TINY), "--output_dir", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--overwrite_output_dir" in err and len(err.splitlines()) == 1
    assert (out / "notes.txt").read_text() == "keep me" and len(list(out.iterdir())) == 1


@pytest.mark.parametrize(
    "args,message",
    [
        (["--no_such_flag", "1"], "unknown command-line argument '--no_such_flag'"),
        (["--max_steps", "ten"], "invalid int value: 'ten'"),
        (["--model_type", "lstm"], "model_type must be one of"),
        (["--dataset_name", "/nonexistent/corpus.txt"], "/nonexistent/corpus.txt"),
        (["--resume_from_checkpoint", "/nonexistent/ckpt"], "not a checkpoint folder"),
    ],
)
def test_bad_flags_give_one_clear_error(tmp_path, args, message, capsys):
    assert pretrain.main(["--config", str(TINY), "--output_dir", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize(
    "yaml_text,message",
    [
        ("learning_rat: 0.1\n", "unknown key 'learning_rat' in"),
        ("max_steps: [1, 2]\n", "invalid int value"),
        ("- just\n- a list\n", "must be a YAML mapping"),
        ("max_steps: : :\n", "is not valid YAML"),
    ],
)
def test_bad_yaml_gives_one_clear_error(tmp_path, yaml_text, message, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml_text)
    assert pretrain.main(["--config", str(config), "--output_dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    if "learning_rat" in yaml_text:
        assert "did you mean 'learning_rate'" in err


RESUME_ARGS = [
    "--config", str(TINY), "--max_steps", "80", "--save_steps", "10", "--eval_strategy", "no", "--logging_steps", "10",
    "--eval_max_documents", "3", "--sample_prompts", "The", "--disable_tqdm", "true", "--dataloader_num_workers", "0",
]


def test_sigkill_mid_run_then_resume_gives_the_same_weights(tmp_path):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    proc = subprocess.Popen(
        recipe_command("pretrain", *RESUME_ARGS, "--output_dir", killed), env=run_env(), cwd=REPO,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.time() + 300
    while not (killed / "checkpoint-10").is_dir():
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert not (killed / "model.safetensors").exists(), "the run finished before it could be killed"
    checkpoints = sorted(p.name for p in killed.glob("checkpoint-*"))
    assert "checkpoint-80" not in checkpoints

    resumed = run(recipe_command("pretrain", *RESUME_ARGS, "--output_dir", killed, "--resume_from_checkpoint", "true"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    straight = run(recipe_command("pretrain", *RESUME_ARGS, "--output_dir", reference))
    assert straight.returncode == 0, straight.stderr[-3000:]
    a, b = weights(killed), weights(reference)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6)
    metrics = json.loads((killed / "metrics.json").read_text())
    assert metrics["train_steps"] == 80
    # the card and metrics report the whole run, not the resumed segment: two sessions, and every logged loss
    reference_metrics = json.loads((reference / "metrics.json").read_text())
    assert metrics["resumed"] and metrics["train_sessions"] == 2 and not reference_metrics["resumed"]
    logged = [e["loss"] for e in json.loads((killed / "checkpoint-80" / "trainer_state.json").read_text())["log_history"]
              if "loss" in e] if (killed / "checkpoint-80").is_dir() else None
    if logged:
        assert metrics["train_loss"] == pytest.approx(sum(logged) / len(logged))
    assert "resumed from a checkpoint" in (killed / "README.md").read_text()
    assert "FutureWarning" not in resumed.stderr  # library deprecation noise is silenced at the entry point


def test_two_process_cpu_ddp_ends_with_identical_weights(tmp_path):
    out = tmp_path / "ddp"
    launcher = ["accelerate", "launch", "--config_file", str(REPO / "recipes/accelerate/cpu_ddp.yaml")]
    if shutil.which("accelerate") is None:
        pytest.fail("the accelerate CLI is not on PATH")
    result = run(recipe_command("pretrain", "--config", TINY, "--output_dir", out, "--disable_tqdm", "true",
                                launcher=launcher), ACCELERATE_USE_CPU="true")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["weights_identical_across_ranks"] is True
    # Two ranks of 4 sequences each: 8 sequences per optimizer step.
    assert metrics["train_tokens"] == 6 * 2 * 4 * 32


def test_early_stopping_on_validation_loss(tmp_path):
    out = tmp_path / "early"
    args = ["--config", str(TINY), "--output_dir", str(out), "--disable_tqdm", "true", "--max_steps", "30",
            "--eval_steps", "2", "--save_steps", "2", "--learning_rate", "0", "--warmup_steps", "0",
            "--early_stopping_patience", "1"]
    assert pretrain.main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    # lr 0: the loss never improves, so the run stops at the second evaluation (patience 1), not at step 30.
    assert metrics["train_steps"] == 4


def test_a_mixture_of_experts_reports_its_expert_load(tmp_path):
    """quickstart_moe.yaml's options on the tiny config: trained with the load-balancing loss, the card and
    metrics.json show how the routers spread validation tokens (book §6.1)."""
    out = tmp_path / "moe"
    assert pretrain.main(["--config", str(TINY), "--output_dir", str(out), "--num_local_experts", "4",
                          "--num_experts_per_tok", "2", "--router_aux_loss_coef", "0.01", "--disable_tqdm", "true",
                          "--ngram_mixture", "false"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["num_local_experts"] == 4 and config["output_router_logits"] is True
    metrics = json.loads((out / "metrics.json").read_text())
    load = metrics["expert_load"]
    assert set(load) == {"0"} and len(load["0"]) == 4 and sum(load["0"]) == pytest.approx(1.0)
    assert metrics["expert_load_balance"] == pytest.approx(max(load["0"]) / min(load["0"]))
    assert 0 < metrics["eval_aux_loss"] < 4  # Mixtral's E * sum(load * probability): top-k (2) when balanced, at most E
    assert (out / "expert_load.png").read_bytes()[:4] == b"\x89PNG"
    assert "Expert load (§6.1)" in (out / "README.md").read_text()


def test_a_bad_moe_option_is_one_line_before_any_output(tmp_path, capsys):
    out = tmp_path / "moe"
    assert pretrain.main(["--config", str(TINY), "--output_dir", str(out), "--num_local_experts", "2",
                          "--num_experts_per_tok", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "num_experts_per_tok (3) must be between 1 and num_local_experts (2)" in err
    assert not out.exists()
