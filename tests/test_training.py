"""Library pieces the recipes share: thread count under `accelerate launch`, resume flags, report_to, plots."""

import json
import os
from types import SimpleNamespace

import pytest
import torch

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
