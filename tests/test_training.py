"""Library pieces the recipes share: thread count under `accelerate launch`, resume flags, report_to, plots."""

import json
import os
from types import SimpleNamespace

import pytest
import torch
from transformers import TrainingArguments

from hf_hundredpage.training import (
    model_flops_per_token,
    plot_loss_curve,
    resolve_report_to,
    resolve_resume,
    set_cpu_threads,
    write_json,
)


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def cpu_args(world_size=1):
    return SimpleNamespace(world_size=world_size, device=torch.device("cpu"))


def test_single_cpu_process_under_accelerate_launch_uses_every_core(monkeypatch, restore_threads):
    cores = len(os.sched_getaffinity(0))
    monkeypatch.delenv("HF_HUNDREDPAGE_NUM_THREADS", raising=False)
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")  # what `accelerate launch` sets in its child
    torch.set_num_threads(1)  # what its default OMP_NUM_THREADS=1 gives
    assert set_cpu_threads(cpu_args()) == cores
    torch.set_num_threads(1)
    assert set_cpu_threads(cpu_args(world_size=2)) == 1  # DDP keeps the launcher's split of the cores
    monkeypatch.setenv("HF_HUNDREDPAGE_NUM_THREADS", "1")
    assert set_cpu_threads(cpu_args()) == 1  # an explicit request wins


def test_plain_python_keeps_torch_default(monkeypatch, restore_threads):
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    monkeypatch.delenv("HF_HUNDREDPAGE_NUM_THREADS", raising=False)
    torch.set_num_threads(1)
    assert set_cpu_threads(cpu_args()) == 1


def test_resolve_resume(tmp_path):
    assert resolve_resume(None) is None and resolve_resume("false") is None
    assert resolve_resume("true") is True and resolve_resume("True") is True
    assert resolve_resume(str(tmp_path)) == str(tmp_path)
    with pytest.raises(ValueError, match="not a checkpoint folder"):
        resolve_resume(str(tmp_path / "missing"))


def test_resolve_report_to_keeps_installed_loggers(capsys):
    assert resolve_report_to("none") == [] and resolve_report_to([]) == []
    assert resolve_report_to(["tensorboard", "surely_not_a_logger"]) == ["tensorboard"]
    assert "surely_not_a_logger is not installed" in capsys.readouterr().err


def test_flops_per_token_is_nanogpts_estimate():
    from hf_hundredpage import HundredPageTransformerConfig, HundredPageTransformerForCausalLM

    config = HundredPageTransformerConfig(vocab_size=100, hidden_size=16, num_attention_heads=2, num_hidden_layers=2)
    model = HundredPageTransformerForCausalLM(config)
    non_embedding = sum(p.numel() for p in model.parameters()) - 100 * 16
    assert model_flops_per_token(model, seq_len=32) == 6 * non_embedding + 12 * 2 * 16 * 32


def test_loss_plot_and_atomic_json(tmp_path):
    history = [{"step": s, "loss": 5 - s / 10} for s in range(1, 11)] + [{"step": 10, "eval_loss": 4.2}]
    path = plot_loss_curve(history, tmp_path / "loss.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    write_json(tmp_path / "m.json", {"b": 1, "a": 2.5})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 2.5, "b": 1}
    assert not list(tmp_path.glob(".*.tmp"))


def test_prepare_run_leaves_push_to_hub_and_hub_strategy_to_the_trainer(tmp_path):
    """The user's hub_strategy reaches the Trainer (it used to be switched off); the repo is named after the output
    folder, not after the staging folder of an overwrite."""
    from transformers import TrainingArguments

    from hf_hundredpage.training import prepare_run

    out = tmp_path / "my-model"
    out.mkdir()
    (out / "old.txt").write_text("x")
    args = TrainingArguments(output_dir=str(out), push_to_hub=True, hub_strategy="checkpoint", use_cpu=True,
                             report_to="none")
    run = prepare_run(args, overwrite_output_dir=True, resume=None)
    assert args.push_to_hub and args.hub_strategy == "checkpoint" and run.push_to_hub
    assert args.hub_model_id == "my-model" and run.staged and args.output_dir == str(run.work_dir)


def test_commit_removes_only_what_the_previous_run_wrote(tmp_path):
    from hf_hundredpage.training.run import MANIFEST, Run, read_manifest

    out, work = tmp_path / "out", tmp_path / ".out.staging"
    out.mkdir()
    work.mkdir()
    (out / MANIFEST).write_text(json.dumps({"files": ["model.safetensors", "checkpoint-5", "../escape"]}))
    (out / "model.safetensors").write_text("old")
    (out / "checkpoint-5").mkdir()
    (out / "notes.txt").write_text("mine")
    (tmp_path / "escape").write_text("outside")
    (work / "model.safetensors").write_text("new")
    (work / "metrics.json").write_text("{}")
    Run(output_dir=out, work_dir=work, push_to_hub=False).commit()
    assert sorted(p.name for p in out.iterdir()) == sorted([MANIFEST, "metrics.json", "model.safetensors", "notes.txt"])
    assert (out / "model.safetensors").read_text() == "new" and (tmp_path / "escape").read_text() == "outside"
    assert read_manifest(out) == ["metrics.json", "model.safetensors"] and not work.exists()


@pytest.mark.parametrize("value,expected", [
    (["--max_steps", "-5"], "max_steps=-5 is out of range"),
    (["--max_steps", "0"], "max_steps=0 is out of range"),
    (["--lora_dropout", "1.5"], "lora_dropout=1.5 is out of range"),
    (["--learning_rate", "-1"], "learning_rate=-1.0 is out of range"),
])
def test_recipe_parser_refuses_out_of_domain_numbers(value, expected):
    from hf_hundredpage.finetuning import HundredPageModelConfig
    from hf_hundredpage.recipe_parser import RecipeConfigError, RecipeParser

    parser = RecipeParser((HundredPageModelConfig, TrainingArguments))
    with pytest.raises(RecipeConfigError, match=expected):
        parser.parse_recipe_args(["--output_dir", "x", "--use_cpu", "true", *value])


def test_recipe_parser_yaml_values_are_checked_like_flags(tmp_path):
    from hf_hundredpage.recipe_parser import RecipeConfigError, RecipeParser

    config = tmp_path / "c.yaml"
    config.write_text("max_step: 3\n")
    with pytest.raises(RecipeConfigError, match="unknown key 'max_step' in .*c.yaml \\(did you mean 'max_steps'\\?\\)"):
        RecipeParser((TrainingArguments,)).parse_recipe_args(["--config", str(config), "--output_dir", "x"])
    config.write_text("max_steps: many\n")
    with pytest.raises(RecipeConfigError, match="max_steps in .*c.yaml: invalid int value"):
        RecipeParser((TrainingArguments,)).parse_recipe_args(["--config", str(config), "--output_dir", "x"])


def test_flops_per_token_of_a_mixture_of_experts_counts_the_active_experts():
    """8 experts, top-2: a token runs through 2 experts' weights, as many as a dense model with an MLP twice as wide."""
    from hf_hundredpage import HundredPageTransformerConfig, HundredPageTransformerForCausalLM

    common = dict(vocab_size=100, hidden_size=16, num_attention_heads=2, num_hidden_layers=2, mlp_bias=False)
    moe = HundredPageTransformerForCausalLM(HundredPageTransformerConfig(
        intermediate_size=64, num_local_experts=8, num_experts_per_tok=2, **common))
    dense = HundredPageTransformerForCausalLM(HundredPageTransformerConfig(intermediate_size=128, **common))
    router = 2 * 16 * 8  # two routers of hidden x experts, counted in full
    assert model_flops_per_token(moe, seq_len=32) == model_flops_per_token(dense, seq_len=32) + 6 * router
