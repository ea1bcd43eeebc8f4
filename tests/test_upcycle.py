"""`hf-hundredpage upcycle` (book §6.1): a dense transformer becomes a mixture of experts that computes the dense model's
function right after upcycling; experts from several finetuned models; routers from prompts; bad input."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from hf_hundredpage import (
    HundredPageRNNConfig,
    HundredPageRNNForCausalLM,
    HundredPageTransformerConfig,
    HundredPageTransformerForCausalLM,
)
from hf_hundredpage.cli import main as cli
from hf_hundredpage.data import default_tokenizer_path


pytestmark = pytest.mark.usefixtures("one_thread")


def _save(model, folder, tokenizer):
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def dense(tmp_path_factory):
    """A dense book transformer (SwiGLU MLPs) and two 'finetuned' copies whose MLPs moved apart."""
    tokenizer = AutoTokenizer.from_pretrained(default_tokenizer_path())
    root = tmp_path_factory.mktemp("dense")
    torch.manual_seed(0)
    config = HundredPageTransformerConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                                          num_attention_heads=2, gated_mlp=True, hidden_act="silu",
                                          max_position_embeddings=64)
    base = HundredPageTransformerForCausalLM(config)
    folders = {"base": _save(base, root / "base", tokenizer)}
    for k in (1, 2):
        tuned = HundredPageTransformerForCausalLM(config)
        tuned.load_state_dict(base.state_dict())
        with torch.no_grad():
            for name, param in tuned.named_parameters():
                if ".mlp." in name:
                    param.add_(torch.randn_like(param) * 0.05)
        folders[f"tuned{k}"] = _save(tuned, root / f"tuned{k}", tokenizer)
    return folders


def test_right_after_upcycling_the_moe_computes_the_dense_models_logits(dense, tmp_path):
    out = tmp_path / "moe"
    assert cli(["upcycle", str(dense["base"]), str(out), "--num_local_experts", "4", "--num_experts_per_tok", "2"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["num_local_experts"] == 4 and config["num_experts_per_tok"] == 2 and "auto_map" in config
    moe = AutoModelForCausalLM.from_pretrained(out).eval()
    base = AutoModelForCausalLM.from_pretrained(dense["base"]).eval()
    assert len(moe.model.layers[0].mlp.experts) == 4 and moe.model.layers[0].mlp.gate.weight.abs().max() > 0
    input_ids = torch.randint(3, 500, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(moe(input_ids).logits, base(input_ids).logits, rtol=1e-5, atol=1e-5)
    # Fewer active than total parameters: 4 experts per block, 2 per token.
    assert moe.num_parameters() > base.num_parameters()
    assert "Sparse upcycling" in (out / "README.md").read_text()


def test_experts_from_finetuned_models_with_routers_from_prompts(dense, tmp_path):
    out = tmp_path / "moe"
    prompts = ["The history of the city", "2 + 2 = 4 and 3 * 3 = 9"]
    assert cli(["upcycle", str(dense["base"]), str(out), "--experts_from", str(dense["tuned1"]), str(dense["tuned2"]),
                "--expert_prompts", *prompts, "--num_experts_per_tok", "1"]) == 0
    moe = AutoModelForCausalLM.from_pretrained(out).eval()
    base = AutoModelForCausalLM.from_pretrained(dense["base"]).eval()
    for j, name in enumerate(("tuned1", "tuned2")):
        tuned = AutoModelForCausalLM.from_pretrained(dense[name])
        for i in range(2):
            torch.testing.assert_close(moe.model.layers[i].mlp.experts[j].up_proj.weight,
                                       tuned.model.layers[i].mlp.up_proj.weight, rtol=0, atol=0)
    torch.testing.assert_close(moe.model.layers[1].self_attn.q_proj.weight, base.model.layers[1].self_attn.q_proj.weight)
    # Router row j of block i: the normalised mean of block i's MLP input over prompt j, run through the base model.
    tokenizer = AutoTokenizer.from_pretrained(dense["base"])
    for j, prompt in enumerate(prompts):
        seen = {}
        hook = base.model.layers[1].post_attention_layernorm.register_forward_hook(
            lambda m, a, o: seen.__setitem__("x", o[0].mean(0)))
        with torch.no_grad():
            base(input_ids=tokenizer(prompt, return_tensors="pt")["input_ids"])
        hook.remove()
        torch.testing.assert_close(moe.model.layers[1].mlp.gate.weight[j], seen["x"] / seen["x"].norm())


def test_bad_input_is_one_line_and_writes_nothing(dense, tmp_path, capsys):
    tokenizer = AutoTokenizer.from_pretrained(default_tokenizer_path())
    rnn = _save(HundredPageRNNForCausalLM(HundredPageRNNConfig(vocab_size=len(tokenizer), hidden_size=16)),
                tmp_path / "rnn", tokenizer)
    moe = tmp_path / "moe"
    assert cli(["upcycle", str(dense["base"]), str(moe), "--num_local_experts", "2"]) == 0
    cases = [
        ([str(rnn)], "the RNN has no MLP"),
        ([str(moe)], "already a mixture of experts"),
        ([str(dense["base"]), "--num_local_experts", "2", "--num_experts_per_tok", "3"], "num_experts_per_tok (3)"),
        ([str(dense["base"]), "--num_local_experts", "1"], "at least 2"),
        ([str(dense["base"]), "--experts_from", str(dense["tuned1"]), "--expert_prompts", "a", "b"], "one per expert"),
    ]
    capsys.readouterr()
    for args, message in cases:
        out = tmp_path / "out"
        assert cli(["upcycle", args[0], str(out), *args[1:]]) == 2, args
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
        assert not out.exists()
