"""`hf-hundredpage merge` (book §6.2): mergekit YAML configs over the book's models and Llama.

Each method is checked against its paper's formula computed here on the parents' tensors (not against mergekit's own
output); passthrough against the first parent's block outputs; bad configs fail with one line and write nothing.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from hf_hundredpage import (
    HundredPageRNNConfig,
    HundredPageRNNForCausalLM,
    HundredPageTransformerConfig,
    HundredPageTransformerForCausalLM,
)
from hf_hundredpage.cli import main as cli
from hf_hundredpage.data import default_tokenizer_path


pytestmark = pytest.mark.usefixtures("one_thread")
pytest.importorskip("mergekit", reason="hf-hundredpage merge needs mergekit (the [merge] extra)")


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(default_tokenizer_path())


def _build(kind: str, seed: int, tokenizer, layers: int = 2):
    torch.manual_seed(seed)
    common = dict(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                  pad_token_id=tokenizer.pad_token_id)
    if kind == "transformer":
        model = HundredPageTransformerForCausalLM(HundredPageTransformerConfig(
            hidden_size=32, num_hidden_layers=layers, num_attention_heads=2, max_position_embeddings=64, **common))
    elif kind == "rnn":
        model = HundredPageRNNForCausalLM(HundredPageRNNConfig(hidden_size=32, num_hidden_layers=layers, **common))
    else:
        model = LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                                             num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                                             **common))
    with torch.no_grad():  # norms away from 1 and biases away from 0, so that every tensor takes part
        for name, param in model.named_parameters():
            if param.dim() == 1:
                param.normal_(1.0 if "norm" in name else 0.0, 0.1)
    return model


@pytest.fixture(scope="module")
def parents(tmp_path_factory, tokenizer):
    """Three saved models (seeds 0, 1, 2) of each kind; seed 0 is the base of the methods that need one."""
    root = tmp_path_factory.mktemp("parents")
    folders = {}
    for kind in ("transformer", "rnn", "llama"):
        for seed in range(3):
            folder = root / f"{kind}{seed}"
            _build(kind, seed, tokenizer).save_pretrained(folder)
            tokenizer.save_pretrained(folder)
            folders[kind, seed] = folder
    return folders


def _merge(tmp_path, config: dict, *extra: str) -> dict:
    (tmp_path / "merge.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "merged"
    assert cli(["merge", str(tmp_path / "merge.yaml"), str(out), *extra]) == 0
    return load_file(str(out / "model.safetensors"))


def _tensors(folder) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def _assert_each(merged: dict, expected: dict, atol: float = 1e-6) -> None:
    assert set(merged) == set(expected)
    for name in expected:
        torch.testing.assert_close(merged[name], expected[name], rtol=0, atol=atol, msg=name)


@pytest.mark.parametrize("kind", ["transformer", "rnn", "llama"])
def test_linear_with_weights_one_and_zero_returns_the_first_model(kind, parents, tmp_path):
    config = {"merge_method": "linear", "dtype": "float32", "models": [
        {"model": str(parents[kind, 1]), "parameters": {"weight": 1.0}},
        {"model": str(parents[kind, 2]), "parameters": {"weight": 0.0}}]}
    _assert_each(_merge(tmp_path, config), _tensors(parents[kind, 1]), atol=0)
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    assert type(model).__name__ == type(AutoModelForCausalLM.from_pretrained(parents[kind, 1])).__name__


def test_linear_is_the_normalized_weighted_average(parents, tmp_path):
    a, b = _tensors(parents["rnn", 1]), _tensors(parents["rnn", 2])
    config = {"merge_method": "linear", "dtype": "float32", "models": [
        {"model": str(parents["rnn", 1]), "parameters": {"weight": 3.0}},
        {"model": str(parents["rnn", 2]), "parameters": {"weight": 1.0}}]}
    _assert_each(_merge(tmp_path, config), {k: 0.75 * a[k] + 0.25 * b[k] for k in a})


def _slerp(t: float, v0: torch.Tensor, v1: torch.Tensor) -> torch.Tensor:
    """Shoemake's slerp between two tensors taken as one vector each (lerp where they are (anti)parallel)."""
    a, b = v0.reshape(1, -1).double(), v1.reshape(1, -1).double()
    rows = []
    for x, y in zip(a, b):
        cos = float((x / x.norm()) @ (y / y.norm())) if x.norm() > 0 and y.norm() > 0 else 1.0
        if abs(cos) > 0.9995:
            rows.append((1 - t) * x + t * y)
            continue
        theta = math.acos(max(-1.0, min(1.0, cos)))
        rows.append(math.sin((1 - t) * theta) / math.sin(theta) * x + math.sin(t * theta) / math.sin(theta) * y)
    return torch.stack(rows).reshape(v0.shape).to(v0.dtype)


@pytest.mark.parametrize("t", [0.0, 0.5, 1.0])
def test_slerp_returns_an_endpoint_at_0_and_1_and_the_formula_between(t, parents, tmp_path):
    base, other = _tensors(parents["transformer", 0]), _tensors(parents["transformer", 1])
    config = {"merge_method": "slerp", "base_model": str(parents["transformer", 0]), "dtype": "float32",
              "parameters": {"t": t}, "models": [{"model": str(parents["transformer", 0])},
                                                {"model": str(parents["transformer", 1])}]}
    merged = _merge(tmp_path, config)
    if t in (0.0, 1.0):
        _assert_each(merged, base if t == 0 else other)
    else:
        _assert_each(merged, {k: _slerp(t, base[k], other[k]) for k in base}, atol=1e-5)


@pytest.mark.parametrize("kind", ["transformer", "llama"])
def test_task_arithmetic_of_one_model_at_weight_one_returns_that_model(kind, parents, tmp_path):
    config = {"merge_method": "task_arithmetic", "base_model": str(parents[kind, 0]), "dtype": "float32",
              "models": [{"model": str(parents[kind, 1]), "parameters": {"weight": 1.0}}]}
    _assert_each(_merge(tmp_path, config), _tensors(parents[kind, 1]))


def test_task_arithmetic_adds_the_scaled_task_vectors(parents, tmp_path):
    base, a, b = (_tensors(parents["transformer", i]) for i in range(3))
    config = {"merge_method": "task_arithmetic", "base_model": str(parents["transformer", 0]), "dtype": "float32",
              "parameters": {"normalize": False, "lambda": 0.8},
              "models": [{"model": str(parents["transformer", 1]), "parameters": {"weight": 0.7}},
                         {"model": str(parents["transformer", 2]), "parameters": {"weight": 0.4}}]}
    expected = {k: base[k] + 0.8 * (0.7 * (a[k] - base[k]) + 0.4 * (b[k] - base[k])) for k in base}
    _assert_each(_merge(tmp_path, config), expected, atol=1e-5)


def _ties(base, tensors, weights, density, normalize=True):
    """TIES (Yadav et al. 2023): trim each task vector to its top-`density` magnitudes, elect the sign of each weight by
    the sum of the weighted trimmed vectors, average the weighted values that agree with it (by their weights); without
    `normalize` (DARE-TIES, mergekit's default there) the agreeing values are summed."""
    deltas = []
    for tensor in tensors:
        delta = (tensor - base).flatten()
        keep = max(1, int(density * delta.numel()))
        mask = torch.zeros_like(delta)
        mask[delta.abs().argsort(descending=True)[:keep]] = 1
        deltas.append((delta * mask).reshape(base.shape))
    weighted = torch.stack([w * d for w, d in zip(weights, deltas)])
    sign = torch.where(weighted.sum(0) >= 0, 1.0, -1.0)
    agree = (weighted.sign() == sign).to(base.dtype)
    w = torch.tensor(weights, dtype=base.dtype).reshape(-1, *[1] * base.dim())
    divisor = (w * agree).sum(0)
    divisor[divisor == 0] = 1
    return base + (weighted * agree).sum(0) / (divisor if normalize else 1)


def test_ties_matches_the_papers_trim_elect_and_disjoint_mean(parents, tmp_path):
    base, a, b = (_tensors(parents["transformer", i]) for i in range(3))
    config = {"merge_method": "ties", "base_model": str(parents["transformer", 0]), "dtype": "float32",
              "models": [{"model": str(parents["transformer", 1]), "parameters": {"weight": 0.6, "density": 0.4}},
                         {"model": str(parents["transformer", 2]), "parameters": {"weight": 0.3, "density": 0.4}}]}
    expected = {k: _ties(base[k], [a[k], b[k]], [0.6, 0.3], 0.4) for k in base}
    _assert_each(_merge(tmp_path, config), expected, atol=1e-5)


def test_dare_drops_at_the_density_rescales_and_follows_the_seed(parents, tmp_path):
    base, a = _tensors(parents["transformer", 0]), _tensors(parents["transformer", 1])
    config = {"merge_method": "dare_linear", "base_model": str(parents["transformer", 0]), "dtype": "float32",
              "models": [{"model": str(parents["transformer", 1]), "parameters": {"weight": 1.0, "density": 0.3}}]}
    runs = {}
    for name, seed in (("first", "1"), ("again", "1"), ("other", "2")):
        (tmp_path / name).mkdir()
        runs[name] = _merge(tmp_path / name, config, "--seed", seed)
    merged = runs["first"]
    kept_total = count = 0
    for name in base:
        delta, got = a[name] - base[name], merged[name] - base[name]
        kept = got.abs() > 1e-7
        # DARE (Yu et al. 2024): each entry of the task vector kept or dropped, the kept ones rescaled; mergekit's
        # rescale keeps the L1 norm of the task vector, one factor per tensor.
        scale = delta.abs().sum() / delta[kept].abs().sum()
        torch.testing.assert_close(got[kept], delta[kept] * scale, rtol=1e-4, atol=1e-6, msg=name)
        kept_total, count = kept_total + int(kept.sum()), count + delta.numel()
    assert abs(kept_total / count - 0.3) < 0.02  # Bernoulli(0.3) over all entries
    _assert_each(runs["again"], merged, atol=0)
    assert any(not torch.equal(runs["other"][k], merged[k]) for k in merged)


def test_dare_ties_with_density_one_is_the_sum_of_the_sign_elected_task_vectors(parents, tmp_path):
    base, a, b = (_tensors(parents["llama", i]) for i in range(3))
    config = {"merge_method": "dare_ties", "base_model": str(parents["llama", 0]), "dtype": "float32",
              "parameters": {"density": 1.0}, "models": [
                  {"model": str(parents["llama", 1]), "parameters": {"weight": 0.5}},
                  {"model": str(parents["llama", 2]), "parameters": {"weight": 0.5}}]}
    expected = {k: _ties(base[k], [a[k], b[k]], [0.5, 0.5], 1.0, normalize=False) for k in base}
    _assert_each(_merge(tmp_path, config), expected, atol=1e-5)


def _block_outputs(model, input_ids) -> list[torch.Tensor]:
    outputs = []
    hooks = [layer.register_forward_hook(lambda m, i, o: outputs.append(o[0] if isinstance(o, tuple) else o))
             for layer in model.model.layers]
    with torch.no_grad():
        model(input_ids)
    for hook in hooks:
        hook.remove()
    return outputs


def test_passthrough_of_two_2_layer_models_is_a_4_layer_model_whose_first_blocks_are_the_first_parents(
    parents, tmp_path
):
    config = {"merge_method": "passthrough", "dtype": "float32", "slices": [
        {"sources": [{"model": str(parents["transformer", 1]), "layer_range": [0, 2]}]},
        {"sources": [{"model": str(parents["transformer", 2]), "layer_range": [0, 2]}]}]}
    _merge(tmp_path, config)
    out = tmp_path / "merged"
    saved = json.loads((out / "config.json").read_text())
    assert saved["num_hidden_layers"] == 4 and "AutoModelForCausalLM" in saved["auto_map"]
    assert (out / "modeling_transformer.py").is_file() and (out / "mergekit_config.yml").is_file()
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    first = AutoModelForCausalLM.from_pretrained(parents["transformer", 1]).eval()
    second = AutoModelForCausalLM.from_pretrained(parents["transformer", 2])
    input_ids = torch.randint(3, 200, (2, 12), generator=torch.Generator().manual_seed(0))
    got, want = _block_outputs(merged, input_ids), _block_outputs(first, input_ids)
    for i in range(2):
        torch.testing.assert_close(got[i], want[i], rtol=0, atol=0)
    torch.testing.assert_close(merged.model.layers[3].mlp.up_proj.weight, second.model.layers[1].mlp.up_proj.weight)
    assert [layer.self_attn.layer_idx for layer in merged.model.layers] == [0, 1, 2, 3]  # one cache slot per block
    full = merged(input_ids).logits[:, -1]
    cached = merged.generate(input_ids[:, :-1], max_new_tokens=1, do_sample=False, output_logits=True,
                             return_dict_in_generate=True)
    step = merged(input_ids[:, :-1]).logits[:, -1]
    torch.testing.assert_close(cached.logits[0], step, rtol=1e-5, atol=1e-5)
    assert full.shape == step.shape


def test_the_card_embeds_the_config_and_the_evaluation_of_parents_and_merge(parents, tmp_path, capsys):
    config = {"merge_method": "linear", "dtype": "float32", "models": [
        {"model": str(parents["transformer", 1]), "parameters": {"weight": 0.5}},
        {"model": str(parents["transformer", 2]), "parameters": {"weight": 0.5}}]}
    _merge(tmp_path, config, "--evaluate", "--eval_max_documents", "5")
    printed = capsys.readouterr().out
    card = (tmp_path / "merged" / "README.md").read_text()
    assert "merge_method: linear" in card and str(parents["transformer", 2]) in card
    table = [line for line in printed.splitlines() if line.startswith("| ")]
    assert table[0] == "| model | bits_per_byte |" and len(table) == 1 + 3 and table[-1].startswith("| **merge** |")
    assert "| **merge** |" in card


BAD = [
    ({"merge_method": "frankenstein", "models": [{"model": "{t1}"}]}, "merge_method 'frankenstein' is not supported"),
    ({"merge_method": "ties", "models": [{"model": "{t1}", "parameters": {"weight": 1, "density": 0.5}}]},
     "ties needs base_model"),
    ({"merge_method": "ties", "base_model": "{t0}", "models": [{"model": "{t1}", "parameters": {"density": 1.5}}]},
     "density must be in (0, 1]"),
    ({"merge_method": "linear", "models": [{"model": "{t1}"}, {"model": "{l1}"}]}, "differ in model_type"),
    ({"merge_method": "linear", "models": [{"model": "{t1}"}, {"model": "{t3}"}]}, "differ in num_hidden_layers"),
    ({"merge_method": "passthrough", "slices": [{"sources": [{"model": "{t1}", "layer_range": [0, 3]}]}]},
     "out of range: it has 2 layers"),
    ({"merge_method": "passthrough", "slices": [{"sources": [{"model": "{t1}", "layer_range": [0, 2]}]},
                                                {"sources": [{"model": "{t1}", "layer_range": [1, 2]}]}]},
     "overlaps [0, 2]: pass --allow_repeated_layers"),
    ({"merge_method": "passthrough", "slices": [{"sources": [{"model": "{r1}", "layer_range": [0, 1]}]}]},
     "is the book's RNN"),
    ({"merge_method": "linear", "models": [{"model": "{t1}", "parameters": {"weight": "heavy"}}]},
     "(mergekit's schema)"),
]


@pytest.mark.parametrize(("config", "message"), BAD, ids=[m.split(":")[0][:30] for _, m in BAD])
def test_a_bad_config_is_one_line_and_writes_nothing(config, message, parents, tokenizer, tmp_path, capsys):
    deeper = tmp_path / "t3"
    _build("transformer", 3, tokenizer, layers=3).save_pretrained(deeper)
    names = {"{t0}": parents["transformer", 0], "{t1}": parents["transformer", 1], "{l1}": parents["llama", 1],
             "{r1}": parents["rnn", 1], "{t3}": deeper}
    text = yaml.safe_dump(config)
    for key, folder in names.items():
        text = text.replace(key, str(folder))
    (tmp_path / "merge.yaml").write_text(text)
    out = tmp_path / "out"
    capsys.readouterr()
    assert cli(["merge", str(tmp_path / "merge.yaml"), str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not out.exists() and not list(tmp_path.glob("*staging*"))


@pytest.fixture(scope="module")
def adapters(parents, tmp_path_factory):
    """Two LoRA adapters (q_proj, v_proj, rank 4) of the seed-0 transformer, with random B so that both change it."""
    from peft import LoraConfig, get_peft_model

    root = tmp_path_factory.mktemp("adapters")
    folders = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        base = AutoModelForCausalLM.from_pretrained(parents["transformer", 0])
        model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.normal_(0, 0.1)
        model.save_pretrained(root / f"lora{seed}")
        folders.append(root / f"lora{seed}")
    return folders


def _merged_weights(base_folder, adapter_folder) -> dict[str, torch.Tensor]:
    from peft import PeftModel

    base = AutoModelForCausalLM.from_pretrained(base_folder)
    return {k: v.detach().clone() for k, v in PeftModel.from_pretrained(base, adapter_folder).merge_and_unload().state_dict().items()}


def test_adapters_merge_exactly_into_the_weighted_sum_of_their_updates(parents, adapters, tmp_path):
    config = {"merge_method": "task_arithmetic", "base_model": str(parents["transformer", 0]), "models": [
        {"model": str(adapters[0]), "parameters": {"weight": 0.7}},
        {"model": str(adapters[1]), "parameters": {"weight": -0.2}}]}
    (tmp_path / "merge.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "merged"
    assert cli(["merge", str(tmp_path / "merge.yaml"), str(out)]) == 0
    assert (out / "adapter_config.json").is_file() and not (out / "model.safetensors").exists()
    base = AutoModelForCausalLM.from_pretrained(parents["transformer", 0]).state_dict()
    one, two = (_merged_weights(parents["transformer", 0], folder) for folder in adapters)
    got = _merged_weights(parents["transformer", 0], out)
    for name, tensor in base.items():
        expected = tensor + 0.7 * (one[name] - tensor) - 0.2 * (two[name] - tensor)
        torch.testing.assert_close(got[name], expected, rtol=0, atol=1e-6, msg=name)
    assert "task_arithmetic" in (out / "README.md").read_text()


def test_adapters_and_full_models_do_not_mix(parents, adapters, tmp_path, capsys):
    config = {"merge_method": "linear", "models": [{"model": str(adapters[0])}, {"model": str(parents["transformer", 1])}]}
    (tmp_path / "merge.yaml").write_text(yaml.safe_dump(config))
    assert cli(["merge", str(tmp_path / "merge.yaml"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "mix of adapters and full models" in err and not (tmp_path / "out").exists()
